//! Wire-level tests of the ng codec: exact datagrams as clients send them, replies byte for byte,
//! round trips, and every way a datagram can be refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::bencode::{self, DecodeError, Value};
use super::*;

/// An offer as Kamailio's `rtpengine` module builds it for
/// `rtpengine_offer("trust-address symmetric replace-origin replace-session-connection ICE=force
/// RTP/AVP rtcp-mux-demux")`: keys in the order the module adds them (`sdp` first, `command`
/// last), so not sorted.
const KAMAILIO_OFFER: &[u8] = b"2093_7_1 d3:sdp156:v=0\r\n\
o=- 1545997027 1 IN IP4 198.51.100.1\r\n\
s=-\r\n\
c=IN IP4 198.51.100.1\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n\
3:ICE5:force5:flagsl13:trust-address9:symmetrice7:replacel6:origin18:session-connectione\
18:transport-protocol7:RTP/AVP8:rtcp-muxl5:demuxe7:call-id31:a84b4c76e66710@pc33.example.com\
10:via-branch16:z9hG4bK776asdhds13:received-froml3:IP411:203.0.113.7e8:from-tag10:1928301774\
7:command5:offere";

/// The complete offer example of rtpengine's protocol description, keys spelled with spaces.
const DOC_OFFER: &[u8] = b"cookie1 d7:command5:offer7:call-id15:cfBXzDSZqhYNcXM\
8:from-tag10:mS9rSAn0Cr3:sdp10:v=0\r\no=...10:via-branch13:5KiTRPZHH1nL6\
5:flagsl13:trust addresse7:replacel6:origin18:session connectione14:address family3:IP6\
13:received-froml3:IP411:10.65.31.43e3:ICE5:force18:transport protocol9:RTP/SAVPF\
13:media address17:2001:d8::6f24:65b4:DTLS7:passivee";

fn parse(datagram: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    Codec::default().parse_request(datagram)
}

fn request(datagram: &[u8]) -> Request<'_> {
    parse(datagram).expect("valid request").request
}

fn refused(datagram: &[u8]) -> ParseError<'_> {
    parse(datagram).expect_err("refused request")
}

#[test]
fn ping_and_pong_exact_bytes() {
    let msg = parse(b"5323_1 d7:command4:pinge").unwrap();
    assert_eq!(msg.cookie, b"5323_1");
    assert_eq!(msg.request.command, Command::Ping);
    let mut out = Vec::new();
    encode_reply(msg.cookie, &Reply::Pong, &mut out);
    assert_eq!(out, b"5323_1 d6:result4:ponge");
}

#[test]
fn kamailio_offer_with_unsorted_keys() {
    let msg = parse(KAMAILIO_OFFER).unwrap();
    assert_eq!(msg.cookie, b"2093_7_1");
    let r = msg.request;
    assert_eq!(r.command, Command::Offer);
    assert!(r.command.is_supported());
    assert_eq!(r.call_id, Some(&b"a84b4c76e66710@pc33.example.com"[..]));
    assert_eq!(r.from_tag, Some(&b"1928301774"[..]));
    assert_eq!(r.to_tag, None);
    assert_eq!(r.via_branch, Some(&b"z9hG4bK776asdhds"[..]));
    let sdp = r.sdp.unwrap();
    assert!(sdp.starts_with(b"v=0\r\n") && sdp.ends_with(b"a=sendrecv\r\n"));
    assert_eq!(sdp.len(), 156);
    assert!(r.flags.contains(Flag::TrustAddress));
    assert!(r.flags.contains(Flag::Symmetric));
    assert!(!r.flags.contains(Flag::Asymmetric));
    assert!(r.replace.contains(Replace::Origin));
    assert!(r.replace.contains(Replace::SessionConnection));
    assert_eq!(r.ice, Some(Ice::Force));
    assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpAvp));
    assert!(r.rtcp_mux.contains(RtcpMux::Demux));
    assert_eq!(
        r.received_from,
        Some(ReceivedFrom {
            family: Some(AddressFamily::Ip4),
            address: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        })
    );
    assert!(r.other_flags.is_empty());
    assert!(r.ignored_keys.is_empty());
    assert!(r.invalid_values.is_empty());
}

#[test]
fn documented_offer_with_spaced_keys() {
    let r = request(DOC_OFFER);
    assert_eq!(r.command, Command::Offer);
    assert_eq!(r.call_id, Some(&b"cfBXzDSZqhYNcXM"[..]));
    assert_eq!(r.sdp, Some(&b"v=0\r\no=..."[..]));
    assert!(r.flags.contains(Flag::TrustAddress));
    assert!(r.replace.contains(Replace::Origin));
    assert!(r.replace.contains(Replace::SessionConnection));
    assert_eq!(r.address_family, Some(AddressFamily::Ip6));
    assert_eq!(r.ice, Some(Ice::Force));
    assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpSavpf));
    assert_eq!(
        r.media_address,
        Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xd8, 0, 0, 0, 0, 0x6f24, 0x65b
        )))
    );
    // DTLS is a real rtpengine key the media plane does not act on: skipped, and listed.
    assert_eq!(r.ignored_keys, [&b"DTLS"[..]]);
    assert!(r.invalid_values.is_empty());
}

#[test]
fn answer_delete_query_list() {
    let r = request(b"c d7:command6:answer7:call-id1:x8:from-tag1:f6:to-tag1:t3:sdp3:v=0e");
    assert_eq!(r.command, Command::Answer);
    assert_eq!(r.to_tag, Some(&b"t"[..]));

    let r = request(b"c d7:command6:delete7:call-id1:x5:flagsl3:all5:fatale12:delete-delayi0ee");
    assert_eq!(r.command, Command::Delete);
    assert!(r.flags.contains(Flag::All) && r.flags.contains(Flag::Fatal));
    assert_eq!(r.delete_delay, Some(0));

    // delete-delay as a string, spelled with a space, and `all` as a key.
    let r = request(b"c d7:command6:delete7:call-id1:x12:delete delay2:303:all3:alle");
    assert_eq!(r.delete_delay, Some(30));
    assert!(r.flags.contains(Flag::All));

    let r = request(b"c d7:command5:query7:call-id1:x8:from-tag1:fe");
    assert_eq!(r.command, Command::Query);

    let r = request(b"c d7:command4:list5:limiti10ee");
    assert_eq!(r.command, Command::List);
    assert_eq!(r.limit, Some(10));
}

#[test]
fn liberal_spellings_and_shapes() {
    // Case and separators in keys and keywords, a comma-separated string for a list, integers
    // given as strings, received-from as a bare address, direction and label.
    let r = request(
        b"c d7:COMMAND5:OFFER7:Call_ID1:x8:from tag1:f3:SDP1:v\
          5:flags40:trust address,Strict_Source,loop-protect\
          8:RTCP mux13:offer,require3:ice11:force_relay\
          13:received from9:192.0.2.19:directionl3:pub4:prive5:label6:caller\
          11:record call3:yes4:SDESl3:offe\
          e",
    );
    assert_eq!(r.command, Command::Offer);
    assert_eq!(r.call_id, Some(&b"x"[..]));
    assert!(r.flags.contains(Flag::TrustAddress));
    assert!(r.flags.contains(Flag::StrictSource));
    assert!(r.flags.contains(Flag::LoopProtect));
    assert!(r.rtcp_mux.contains(RtcpMux::Offer) && r.rtcp_mux.contains(RtcpMux::Require));
    assert_eq!(r.ice, Some(Ice::ForceRelay));
    assert_eq!(
        r.received_from,
        Some(ReceivedFrom {
            family: None,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        })
    );
    assert_eq!(r.direction, [Some(&b"pub"[..]), Some(&b"priv"[..])]);
    assert_eq!(r.label, Some(&b"caller"[..]));
    assert_eq!(r.record_call, Some(true));
    assert_eq!(r.sdes, [&b"off"[..]]);
    assert!(r.ignored_keys.is_empty() && r.invalid_values.is_empty());
}

#[test]
fn flag_aliases_and_unknown_flags() {
    let r = request(
        b"c d7:command5:offer7:call-id1:x8:from-tag1:f3:sdp1:v5:flagsl\
          14:replace-origin14:rtcp-mux-demux8:SDES-off10:ICE-reject14:media handover\
          13:port-latching17:no-rtcp-attribute19:full-rtcp-attribute8:fragment\
          10:asymmetric16:codec-strip-opus10:mystery-ok\
          ee",
    );
    assert!(r.replace.contains(Replace::Origin));
    assert!(r.rtcp_mux.contains(RtcpMux::Demux));
    assert_eq!(r.sdes, [&b"off"[..]]);
    for flag in [
        Flag::RejectIce,
        Flag::MediaHandover,
        Flag::PortLatching,
        Flag::NoRtcpAttribute,
        Flag::FullRtcpAttribute,
        Flag::Fragment,
        Flag::Asymmetric,
    ] {
        assert!(r.flags.contains(flag), "{flag:?}");
    }
    assert_eq!(r.other_flags, [&b"codec-strip-opus"[..], b"mystery-ok"]);
}

#[test]
fn rtpp_flags_string() {
    let r = request(
        b"c d7:command5:offer7:call-id1:x8:from-tag1:f3:sdp1:v10:rtpp-flags\
          95:replace-origin strict-source label=caller ICE=remove RTP/SAVP address-family=IP4 rtcp-mux-offer\
          e",
    );
    assert!(r.replace.contains(Replace::Origin));
    assert!(r.flags.contains(Flag::StrictSource));
    assert_eq!(r.label, Some(&b"caller"[..]));
    assert_eq!(r.ice, Some(Ice::Remove));
    assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpSavp));
    assert_eq!(r.address_family, Some(AddressFamily::Ip4));
    assert!(r.rtcp_mux.contains(RtcpMux::Offer));
}

#[test]
fn nested_rtpp_flags_are_not_followed() {
    let mut nested = b"c d7:command4:ping10:rtpp-flags".to_vec();
    let value = b"rtpp-flags=".repeat(5_000);
    bencode::put_bytes(&mut nested, &value);
    nested.push(b'e');
    let r = request(&nested);
    assert_eq!(r.invalid_values, [&b"rtpp-flags"[..]]);
}

#[test]
fn unknown_keys_and_unusable_values_are_listed() {
    let r = request(
        b"c d7:command5:offer7:call-id1:x8:from-tag1:f3:sdp1:v\
          3:TOSi184e3:ICE5:bogus13:media-address9:not-an-ip5:flagsi1e6:to-tagi5ee",
    );
    assert_eq!(r.ignored_keys, [&b"TOS"[..]]);
    assert_eq!(
        r.invalid_values,
        [&b"ICE"[..], b"media-address", b"flags", b"to-tag"]
    );
    assert_eq!(r.ice, None);
    assert_eq!(r.to_tag, None);
}

#[test]
fn unsupported_commands_are_parsed_and_answered_unsupported() {
    for (wire, command) in [
        (&b"start recording"[..], Command::StartRecording),
        (b"block DTMF", Command::BlockDtmf),
        (b"unblock-dtmf", Command::UnblockDtmf),
        (b"play media", Command::PlayMedia),
    ] {
        let mut datagram = b"k1 d7:command".to_vec();
        bencode::put_bytes(&mut datagram, wire);
        datagram.extend_from_slice(b"7:call-id1:xe");
        let msg = parse(&datagram).unwrap();
        assert_eq!(msg.request.command, command);
        assert!(!command.is_supported());
        let mut out = Vec::new();
        encode_error(msg.cookie, &NgError::Unsupported(command), &mut out);
        assert_eq!(out, b"k1 d12:error-reason11:unsupported6:result5:errore");
    }
}

#[test]
fn refusals_keep_the_cookie_when_there_is_one() {
    let cases: &[(&[u8], NgError)] = &[
        (
            b"c1 d7:command4:ping",
            NgError::Bencode(DecodeError::Truncated),
        ),
        (b"c1 ", NgError::Bencode(DecodeError::Truncated)),
        (b"c1 i1e", NgError::NotDictionary),
        (b"c1 l4:pinge", NgError::NotDictionary),
        (b"c1 d3:foo3:bare", NgError::NoCommand),
        (b"c1 d7:commandi1ee", NgError::NoCommand),
        (
            b"c1 d7:command4:pongee",
            NgError::Bencode(DecodeError::TrailingBytes { offset: 17 }),
        ),
        (b"c1 d7:command4:ponge", NgError::UnknownCommand),
        (
            b"c1 d7:command5:offer7:call-id1:x8:from-tag1:fe",
            NgError::Missing(Field::Sdp),
        ),
        (
            b"c1 d7:command5:offer3:sdp1:v8:from-tag1:fe",
            NgError::Missing(Field::CallId),
        ),
        (
            b"c1 d7:command5:offer3:sdp1:v7:call-id1:xe",
            NgError::Missing(Field::FromTag),
        ),
        (
            b"c1 d7:command6:answer3:sdp1:v7:call-id1:x8:from-tag1:fe",
            NgError::Missing(Field::ToTag),
        ),
        (b"c1 d7:command6:deletee", NgError::Missing(Field::CallId)),
        (b"c1 d7:command5:querye", NgError::Missing(Field::CallId)),
        // Bad length prefixes.
        (
            b"c1 d7:command05:offere",
            NgError::Bencode(DecodeError::BadLength { offset: 10 }),
        ),
        (
            b"c1 d7:command9:pinge",
            NgError::Bencode(DecodeError::Truncated),
        ),
        (
            b"c1 d7:command99999999999999999999999:pinge",
            NgError::Bencode(DecodeError::BadLength { offset: 10 }),
        ),
        (
            b"c1 d7:command4294967295:pinge",
            NgError::Bencode(DecodeError::StringTooLong {
                offset: 10,
                len: 4_294_967_295,
            }),
        ),
        (
            b"c1 d7:command4x:pinge",
            NgError::Bencode(DecodeError::UnexpectedByte {
                offset: 11,
                byte: b'x',
            }),
        ),
        // Integers with a leading zero, negative zero.
        (
            b"c1 d7:command4:ping5:limiti07ee",
            NgError::Bencode(DecodeError::BadInteger { offset: 23 }),
        ),
        (
            b"c1 d7:command4:ping5:limiti-0ee",
            NgError::Bencode(DecodeError::BadInteger { offset: 23 }),
        ),
        // A key that is not a string, a key without a value.
        (
            b"c1 di1e4:pinge",
            NgError::Bencode(DecodeError::KeyNotString { offset: 1 }),
        ),
        (
            b"c1 d7:command4:ping5:limite",
            NgError::Bencode(DecodeError::MissingValue { offset: 23 }),
        ),
    ];
    for (datagram, error) in cases {
        let e = refused(datagram);
        assert_eq!(
            e.cookie,
            Some(&b"c1"[..]),
            "{:?}",
            String::from_utf8_lossy(datagram)
        );
        assert_eq!(e.error, *error, "{:?}", String::from_utf8_lossy(datagram));
        // The caller can always answer with the reason.
        let mut out = Vec::new();
        encode_error(b"c1", &e.error, &mut out);
        let (cookie, view) = Codec::default().parse_reply(&out).unwrap();
        assert_eq!(cookie, b"c1");
        assert_eq!(view.result, ResultCode::Error);
        assert_eq!(view.error_reason, Some(e.error.reason().as_bytes()));
    }
}

#[test]
fn missing_or_bad_cookie_cannot_be_answered() {
    for datagram in [
        &b""[..],
        b"d7:command4:pinge",
        b" d7:command4:pinge",
        b"c\x01 d7:command4:pinge",
        b"\t d7:command4:pinge",
    ] {
        let e = refused(datagram);
        assert_eq!(e.cookie, None);
        assert_eq!(e.error, NgError::NoCookie);
    }
    let mut long = vec![b'a'; 129];
    long.extend_from_slice(b" d7:command4:pinge");
    let e = refused(&long);
    assert_eq!(e.cookie, None);
    assert_eq!(e.error, NgError::CookieTooLong { max: 128 });
    // 128 bytes is allowed.
    assert!(parse(&long[1..]).is_ok());
}

#[test]
fn oversized_datagram_is_refused_with_its_cookie() {
    let mut codec = Codec::new(Limits {
        max_datagram: 64,
        ..Limits::default()
    });
    let mut big = b"big1 d7:command4:ping3:pad".to_vec();
    bencode::put_bytes(&mut big, &[b'x'; 100]);
    big.push(b'e');
    let e = codec.parse_request(&big).unwrap_err();
    assert_eq!(e.cookie, Some(&b"big1"[..]));
    assert_eq!(
        e.error,
        NgError::TooLarge {
            len: big.len(),
            max: 64
        }
    );
}

#[test]
fn nesting_bomb_and_item_flood_are_refused() {
    let mut bomb = b"c1 d3:padl".to_vec();
    bomb.extend(std::iter::repeat_n(b'l', 50_000));
    let e = refused(&bomb);
    assert_eq!(e.cookie, Some(&b"c1"[..]));
    assert!(matches!(
        e.error,
        NgError::Bencode(DecodeError::TooDeep { .. })
    ));

    let mut flood = b"c1 d7:command4:ping3:padl".to_vec();
    for _ in 0..5_000 {
        flood.extend_from_slice(b"i1e");
    }
    flood.extend_from_slice(b"ee");
    assert_eq!(
        refused(&flood).error,
        NgError::Bencode(DecodeError::TooManyItems)
    );
}

#[test]
fn trailing_newline_is_tolerated() {
    let r = request(b"c d7:command4:pinge\r\n");
    assert_eq!(r.command, Command::Ping);
}

#[test]
fn every_truncation_of_an_offer_is_refused() {
    let mut codec = Codec::default();
    assert!(codec.parse_request(KAMAILIO_OFFER).is_ok());
    let space = KAMAILIO_OFFER.iter().position(|&b| b == b' ').unwrap();
    for cut in 0..KAMAILIO_OFFER.len() {
        let e = codec
            .parse_request(&KAMAILIO_OFFER[..cut])
            .expect_err("a truncated datagram is refused");
        if cut > space {
            assert_eq!(e.cookie, Some(&b"2093_7_1"[..]), "cut at {cut}");
        } else {
            assert_eq!(e.cookie, None, "cut at {cut}");
        }
    }
}

#[test]
fn no_byte_substitution_panics() {
    // Not a fuzzer, but every single-byte change of a real offer must parse or be refused.
    let mut codec = Codec::default();
    let mut datagram = KAMAILIO_OFFER.to_vec();
    for i in 0..datagram.len() {
        let original = datagram[i];
        for byte in [b'e', b'd', b'l', b'i', b'0', b'9', b':', b'-', b' ', 0xff] {
            datagram[i] = byte;
            let _ = codec.parse_request(&datagram);
            let _ = codec.parse_reply(&datagram);
        }
        datagram[i] = original;
    }
}

#[test]
fn request_round_trip() {
    let mut req = Request::new(Command::Offer);
    req.call_id = Some(b"call-1@host");
    req.from_tag = Some(b"ft");
    req.to_tag = Some(b"tt");
    req.via_branch = Some(b"z9hG4bK1");
    req.sdp = Some(b"v=0\r\n");
    req.label = Some(b"caller");
    req.flags = [Flag::TrustAddress, Flag::StrictSource, Flag::LoopProtect]
        .into_iter()
        .collect();
    req.other_flags = vec![b"codec-strip-all"];
    req.replace = EnumSet::new()
        .with(Replace::Origin)
        .with(Replace::SessionConnection);
    req.rtcp_mux = EnumSet::new().with(RtcpMux::Accept);
    req.sdes = vec![b"off"];
    req.direction = [Some(b"pub"), Some(b"priv")];
    req.ice = Some(Ice::Remove);
    req.transport_protocol = Some(TransportProtocol::UdpTlsRtpSavpf);
    req.media_address = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    req.address_family = Some(AddressFamily::Ip6);
    req.received_from = Some(ReceivedFrom {
        family: Some(AddressFamily::Ip4),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    });
    req.record_call = Some(false);
    req.delete_delay = Some(5);
    req.limit = Some(3);

    let mut out = Vec::new();
    encode_request(b"rt-1", &req, &mut out);
    let msg = parse(&out).unwrap();
    assert_eq!(msg.cookie, b"rt-1");
    assert_eq!(msg.request, req);
    assert_sorted_keys(out.get(5..).unwrap());

    // A lone interface is written as from-interface / to-interface.
    let mut one = Request::new(Command::Ping);
    one.direction = [None, Some(b"priv")];
    let mut out = Vec::new();
    one.encode(&mut out);
    assert_eq!(out, b"d7:command4:ping12:to-interface4:prive");
    let mut d = bencode::Decoder::default();
    let parsed = Request::from_dict(d.decode(&out).unwrap().as_dict().unwrap()).unwrap();
    assert_eq!(parsed, one);
}

#[test]
fn offer_reply_exact_bytes_and_view() {
    let mut out = Vec::new();
    encode_reply(
        b"2093_7_1",
        &Reply::Sdp {
            sdp: b"v=0\r\n",
            warning: None,
        },
        &mut out,
    );
    assert_eq!(out, b"2093_7_1 d6:result2:ok3:sdp5:v=0\r\ne");
    let (cookie, view) = Codec::default().parse_reply(&out).unwrap();
    assert_eq!(cookie, b"2093_7_1");
    assert_eq!(view.result, ResultCode::Ok);
    assert_eq!(view.sdp, Some(&b"v=0\r\n"[..]));

    out.clear();
    encode_reply(
        b"c",
        &Reply::Ok {
            warning: Some("Call-ID not found"),
        },
        &mut out,
    );
    assert_eq!(out, b"c d6:result2:ok7:warning17:Call-ID not founde");

    out.clear();
    encode_reply(
        b"c",
        &Reply::List {
            calls: &[b"a", b"bb"],
        },
        &mut out,
    );
    assert_eq!(out, b"c d5:callsl1:a2:bbe6:result2:oke");
    let (_, view) = Codec::default().parse_reply(&out).unwrap();
    assert_eq!(view.calls, [&b"a"[..], b"bb"]);
}

#[test]
fn query_reply_has_the_shape_kamailio_reads() {
    let streams = [
        StreamStats {
            local_port: Some(30018),
            endpoint: Some(SocketAddr::from(([10, 0, 0, 5], 57370))),
            advertised_endpoint: Some(SocketAddr::from(([10, 0, 0, 5], 57370))),
            crypto_suite: None,
            last_packet: Some(1_402_064_124),
            flags: &["RTP", "filled", "confirmed"],
            stats: Counters {
                packets: 343,
                bytes: 56950,
                errors: 0,
            },
        },
        StreamStats {
            local_port: Some(30019),
            flags: &["RTCP"],
            stats: Counters {
                packets: 2,
                bytes: 164,
                errors: 0,
            },
            ..StreamStats::default()
        },
    ];
    let medias = [MediaStats {
        index: 1,
        media_type: "audio",
        protocol: Some("RTP/AVP"),
        flags: &["initialized"],
        streams: &streams,
    }];
    let tags = [
        TagStats {
            tag: b"0f0d2e18",
            created: 1_402_064_111,
            label: None,
            in_dialogue_with: Some(b"cs6kn1rloc"),
            medias: &[],
        },
        TagStats {
            tag: b"cs6kn1rloc",
            created: 1_402_064_111,
            label: Some(b"caller"),
            in_dialogue_with: Some(b"0f0d2e18"),
            medias: &medias,
        },
    ];
    let stats = CallStats {
        created: 1_402_064_111,
        created_us: Some(343_987),
        last_signal: 1_402_064_116,
        tags: &tags,
        totals: Totals {
            rtp: Counters {
                packets: 705,
                bytes: 100_287,
                errors: 0,
            },
            rtcp: Counters {
                packets: 22,
                bytes: 2244,
                errors: 1,
            },
        },
    };
    let mut out = Vec::new();
    encode_reply(
        b"q1",
        &Reply::Stats {
            stats: &stats,
            warning: None,
        },
        &mut out,
    );
    // The head of the reply and the totals, byte for byte.
    assert!(out.starts_with(
        b"q1 d7:createdi1402064111e10:created_usi343987e11:last signali1402064116e6:result2:ok4:tagsd"
    ));
    assert!(out.ends_with(
        b"6:totalsd4:RTCPd5:bytesi2244e6:errorsi1e7:packetsi22ee\
          3:RTPd5:bytesi100287e6:errorsi0e7:packetsi705eeee"
    ));
    assert_sorted_keys(out.get(3..).unwrap());

    // What Kamailio's $rtpstat reads: totals -> RTP / RTCP -> bytes, packets, errors.
    let mut d = bencode::Decoder::default();
    let root = d.decode(out.get(3..).unwrap()).unwrap().as_dict().unwrap();
    let totals = root.get(b"totals").unwrap().as_dict().unwrap();
    let rtp = totals.get(b"RTP").unwrap().as_dict().unwrap();
    assert_eq!(rtp.get(b"bytes").unwrap().as_int(), Some(100_287));
    assert_eq!(rtp.get(b"packets").unwrap().as_int(), Some(705));
    assert_eq!(rtp.get(b"errors").unwrap().as_int(), Some(0));
    let tag = root
        .get(b"tags")
        .unwrap()
        .as_dict()
        .unwrap()
        .get(b"cs6kn1rloc")
        .unwrap()
        .as_dict()
        .unwrap();
    assert_eq!(
        tag.get(b"tag").unwrap().as_bytes(),
        Some(&b"cs6kn1rloc"[..])
    );
    assert_eq!(tag.get(b"label").unwrap().as_bytes(), Some(&b"caller"[..]));
    let media = tag
        .get(b"medias")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .as_dict()
        .unwrap();
    let stream = media
        .get(b"streams")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .as_dict()
        .unwrap();
    assert_eq!(stream.get(b"local port").unwrap().as_int(), Some(30018));
    let endpoint = stream.get(b"endpoint").unwrap().as_dict().unwrap();
    assert_eq!(
        endpoint.get(b"family").unwrap().as_bytes(),
        Some(&b"IPv4"[..])
    );
    assert_eq!(
        endpoint.get(b"address").unwrap().as_bytes(),
        Some(&b"10.0.0.5"[..])
    );
    assert_eq!(endpoint.get(b"port").unwrap().as_int(), Some(57370));

    // And the load tester's view of it.
    let (cookie, view) = Codec::default().parse_reply(&out).unwrap();
    assert_eq!(cookie, b"q1");
    assert_eq!(view.result, ResultCode::Ok);
    assert_eq!(view.created, Some(1_402_064_111));
    assert_eq!(view.last_signal, Some(1_402_064_116));
    assert_eq!(view.totals, Some(stats.totals));
}

#[test]
fn reply_views_of_rtpengine_answers() {
    let mut codec = Codec::default();
    let (_, v) = codec.parse_reply(b"x d6:result4:ponge").unwrap();
    assert_eq!(v.result, ResultCode::Pong);
    let (_, v) = codec
        .parse_reply(b"x d6:result5:error12:error-reason15:Unknown call-ide")
        .unwrap();
    assert_eq!(v.result, ResultCode::Error);
    assert_eq!(v.error_reason, Some(&b"Unknown call-id"[..]));
    let (_, v) = codec.parse_reply(b"x d6:result10:load limite").unwrap();
    assert_eq!(v.result, ResultCode::LoadLimit);
    // rtpengine's JSON examples spell `last_signal`; both spellings are read.
    let (_, v) = codec
        .parse_reply(b"x d11:last_signali7e6:result2:oke")
        .unwrap();
    assert_eq!(v.last_signal, Some(7));
    let e = codec.parse_reply(b"x d3:sdp1:ve").unwrap_err();
    assert_eq!(e.cookie, Some(&b"x"[..]));
    assert_eq!(e.error, NgError::NoResult);
}

#[test]
fn every_error_has_a_reason() {
    let errors = [
        NgError::TooLarge { len: 2, max: 1 },
        NgError::NoCookie,
        NgError::CookieTooLong { max: 1 },
        NgError::Bencode(DecodeError::Truncated),
        NgError::NotDictionary,
        NgError::NoCommand,
        NgError::UnknownCommand,
        NgError::Unsupported(Command::Publish),
        NgError::Missing(Field::Sdp),
        NgError::Missing(Field::CallId),
        NgError::Missing(Field::FromTag),
        NgError::Missing(Field::ToTag),
        NgError::NoResult,
    ];
    for e in errors {
        assert!(!e.reason().is_empty());
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn keywords_round_trip_through_their_names() {
    for &c in Command::ALL {
        assert_eq!(Command::parse(c.name().as_bytes()), Some(c));
    }
    for &f in Flag::ALL {
        assert_eq!(Flag::parse(f.name().as_bytes()), Some(f));
    }
    for &r in Replace::ALL {
        assert_eq!(Replace::parse(r.name().as_bytes()), Some(r));
    }
    for &r in RtcpMux::ALL {
        assert_eq!(RtcpMux::parse(r.name().as_bytes()), Some(r));
    }
    for &i in Ice::ALL {
        assert_eq!(Ice::parse(i.name().as_bytes()), Some(i));
    }
    for &t in TransportProtocol::ALL {
        assert_eq!(TransportProtocol::parse(t.name().as_bytes()), Some(t));
    }
    assert_eq!(Flag::parse(b"trust address"), Some(Flag::TrustAddress));
    assert_eq!(Flag::parse(b"TRUST_ADDRESS"), Some(Flag::TrustAddress));
    assert_eq!(Flag::parse(b"trust-addresss"), None);
    assert_eq!(
        Replace::parse(b"session connection"),
        Some(Replace::SessionConnection)
    );
    assert_eq!(Replace::parse(b"SDP version"), Some(Replace::SdpVersion));
}

/// Every dictionary in `encoded` (except the SIP-tag-keyed `tags`) has its keys in byte order.
fn assert_sorted_keys(encoded: &[u8]) {
    fn walk(value: Value<'_, '_>, parent_key: &[u8]) {
        match value {
            Value::Dict(d) => {
                let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
                if parent_key != b"tags" {
                    assert!(
                        keys.windows(2).all(|w| w[0] < w[1]),
                        "unsorted keys {:?}",
                        keys.iter()
                            .map(|k| String::from_utf8_lossy(k))
                            .collect::<Vec<_>>()
                    );
                }
                for (k, v) in d.iter() {
                    walk(v, k);
                }
            }
            Value::List(l) => l.iter().for_each(|v| walk(v, b"")),
            _ => {}
        }
    }
    let mut d = bencode::Decoder::default();
    walk(d.decode(encoded).unwrap(), b"");
}
