//! Golden offer/answer tests for the SDP model: an input SDP under `tests/data/sdp/`, a set of edits the
//! SBC makes when it anchors media, and the expected output with `{IP}`, `{PORTn}`, `{RTCPn}` and `{KEY}`
//! placeholders filled in here. Fixture files are written with LF; the tests feed both LF and CRLF
//! versions and expect CRLF out.
//!
//! Plus: byte-exact round trips of every fixture, and a hostile-input sweep (every prefix and byte-flipped
//! variants of every fixture) that collects every panic and every broken invariant and reports them all.

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sbc_sip::sdp::{Connection, Crypto, Direction, RtpMap, Scope, Sdp, SdpError};

const SBC_IP: &str = "203.0.113.1";
const SBC_PORT_BASE: u16 = 40000;
const SBC_KEY: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

/// Every fixture: (name, text).
const FIXTURES: &[(&str, &str)] = &[
    ("phone_offer.sdp", include_str!("data/sdp/phone_offer.sdp")),
    (
        "webrtc_offer.sdp",
        include_str!("data/sdp/webrtc_offer.sdp"),
    ),
    (
        "srtp_sdes_offer.sdp",
        include_str!("data/sdp/srtp_sdes_offer.sdp"),
    ),
    ("ipv6_offer.sdp", include_str!("data/sdp/ipv6_offer.sdp")),
    (
        "hold_reinvite.sdp",
        include_str!("data/sdp/hold_reinvite.sdp"),
    ),
    (
        "hold_rfc2543.sdp",
        include_str!("data/sdp/hold_rfc2543.sdp"),
    ),
    (
        "rejected_stream.sdp",
        include_str!("data/sdp/rejected_stream.sdp"),
    ),
    (
        "vendor_lines.sdp",
        include_str!("data/sdp/vendor_lines.sdp"),
    ),
    ("multicast.sdp", include_str!("data/sdp/multicast.sdp")),
];

fn crlf(lf: &str) -> String {
    lf.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn sbc_ip() -> IpAddr {
    SBC_IP.parse().unwrap()
}

/// The SBC's media port for media section `k` (RTP on even ports, RTCP on the next one).
fn port(k: usize) -> u16 {
    SBC_PORT_BASE + 2 * u16::try_from(k).unwrap()
}

/// Fill the placeholders of an expected file and turn it into CRLF.
fn fill(expected: &str) -> String {
    let mut s = expected.replace("{IP}", SBC_IP).replace("{KEY}", SBC_KEY);
    for k in 0..4 {
        s = s.replace(&format!("{{PORT{k}}}"), &port(k).to_string());
        s = s.replace(&format!("{{RTCP{k}}}"), &(port(k) + 1).to_string());
    }
    crlf(&s)
}

/// The edits every anchored SDP gets: origin address hidden and version bumped, every existing `c=`
/// pointed at the SBC, every stream that is not rejected moved to an SBC port, `a=rtcp` rewritten to
/// the SBC's RTCP port and address.
fn anchor(sdp: &mut Sdp<'_>) {
    let ip = sbc_ip();
    sdp.set_origin_address(ip);
    sdp.bump_origin_version();
    sdp.set_all_connection_addrs(ip);
    for k in 0..sdp.media_count() {
        if sdp.media(k).unwrap().is_rejected() {
            continue;
        }
        sdp.set_media_port(k, port(k)).unwrap();
        if sdp.rtcp(k).is_some() {
            sdp.set_rtcp(k, port(k) + 1, Some(ip)).unwrap();
        }
    }
}

/// Parse `input` (as LF and as CRLF), apply `edit`, compare with the filled `expected`.
fn golden(name: &str, input: &str, expected: &str, edit: impl Fn(&mut Sdp<'_>)) {
    let want = fill(expected);
    for text in [input.to_string(), crlf(input)] {
        let mut sdp = Sdp::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        edit(&mut sdp);
        let got = String::from_utf8(sdp.to_vec()).unwrap();
        if got != want {
            let diff: Vec<String> = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .map(|(i, (g, w))| format!("  line {}: got {g:?}, want {w:?}", i + 1))
                .collect();
            panic!(
                "{name}: output differs ({} vs {} lines)\n{}\n--- got ---\n{got}",
                got.lines().count(),
                want.lines().count(),
                diff.join("\n")
            );
        }
        // What the SBC writes must parse again, to the same bytes.
        let again = Sdp::parse(got.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: output does not re-parse: {e}"));
        assert_eq!(
            again.to_vec(),
            got.as_bytes(),
            "{name}: output is not stable"
        );
    }
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("data/sdp/", $name))
    };
}

// -------------------------------------------------------------------------------------------------
// Round trips

#[test]
fn every_fixture_round_trips_byte_exact() {
    for (name, text) in FIXTURES {
        let want = crlf(text);
        for input in [text.to_string(), want.clone()] {
            let sdp = Sdp::parse_str(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(String::from_utf8(sdp.to_vec()).unwrap(), want, "{name}");
            assert_eq!(sdp.encoded_len(), want.len(), "{name}");
            assert_eq!(sdp.line_count(), want.lines().count(), "{name}");
        }
    }
}

#[test]
fn round_trip_keeps_lines_in_order_including_unknown_ones() {
    let text = crlf(fixture!("vendor_lines.sdp"));
    let sdp = Sdp::parse_str(&text).unwrap();
    let got: Vec<&[u8]> = sdp.lines().collect();
    let want: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    assert_eq!(got, want);
    assert_eq!(sdp.media_count(), 2);
    assert_eq!(
        sdp.attribute_values(Scope::Session, "x-nat")
            .collect::<Vec<_>>(),
        ["0"]
    );
    assert_eq!(
        sdp.attribute(Scope::Media(1), "x-unknown").unwrap().value,
        None
    );
}

// -------------------------------------------------------------------------------------------------
// Golden offer/answer edits

#[test]
fn phone_offer_anchored_and_codecs_filtered() {
    golden(
        "phone_offer",
        fixture!("phone_offer.sdp"),
        fixture!("phone_offer.out.sdp"),
        |sdp| {
            anchor(sdp);
            // G.729 is not licensed on the outside trunk: offer G.722, PCMU, PCMA and DTMF only.
            assert_eq!(sdp.retain_payload_types(0, &[9, 0, 8, 101]).unwrap(), 1);
        },
    );
}

#[test]
fn phone_offer_typed_reads() {
    let sdp = Sdp::parse_str(fixture!("phone_offer.sdp")).unwrap();
    let o = sdp.origin();
    assert_eq!(
        (o.username, o.session_id, o.session_version, o.address),
        ("-", "20518", 0, "192.168.1.50")
    );
    let m = sdp.media(0).unwrap();
    assert_eq!((m.media, m.port, m.proto), ("audio", 11780, "RTP/AVP"));
    assert_eq!(
        m.formats().collect::<Vec<_>>(),
        ["9", "0", "8", "18", "101"]
    );
    let names: Vec<_> = sdp.rtpmaps(0).map(|r| r.encoding).collect();
    assert_eq!(names, ["G722", "PCMU", "PCMA", "G729", "telephone-event"]);
    assert_eq!(sdp.fmtp(0, "18"), Some("annexb=no"));
    assert_eq!(sdp.ptime(Scope::Media(0)), Some(20));
    assert_eq!(sdp.maxptime(Scope::Media(0)), Some(150));
    assert_eq!(sdp.effective_direction(0), Direction::SendRecv);
    assert_eq!(
        sdp.effective_connection(0).unwrap().ip(),
        Some("192.168.1.50".parse().unwrap())
    );
    assert!(sdp.connection(Scope::Media(0)).is_none());
}

#[test]
fn phone_put_on_hold() {
    golden(
        "phone_hold",
        fixture!("phone_offer.sdp"),
        fixture!("phone_hold.out.sdp"),
        |sdp| {
            anchor(sdp);
            for k in 0..sdp.media_count() {
                let held = sdp.effective_direction(k).on_hold();
                sdp.set_direction(Scope::Media(k), held).unwrap();
            }
        },
    );
}

#[test]
fn webrtc_offer_to_sip_trunk() {
    golden(
        "webrtc_offer",
        fixture!("webrtc_offer.sdp"),
        fixture!("webrtc_offer.out.sdp"),
        |sdp| {
            anchor(sdp);
            // The SBC terminates ICE and DTLS-SRTP toward the browser; the trunk gets plain RTP.
            assert_eq!(sdp.remove_ice(), 11);
            for k in 0..sdp.media_count() {
                sdp.remove_attribute(Scope::Media(k), "fingerprint");
                sdp.remove_attribute(Scope::Media(k), "setup");
                sdp.set_media_proto(k, "RTP/AVP").unwrap();
            }
            assert_eq!(sdp.retain_payload_types(0, &[0, 8, 126]).unwrap(), 5);
            assert_eq!(
                sdp.retain_formats(1, |f| f == "102" || f == "103").unwrap(),
                3
            );
        },
    );
}

#[test]
fn webrtc_offer_typed_reads() {
    let sdp = Sdp::parse_str(fixture!("webrtc_offer.sdp")).unwrap();
    assert_eq!(
        sdp.attribute(Scope::Session, "group").unwrap().value,
        Some("BUNDLE 0 1")
    );
    assert_eq!(sdp.media(1).unwrap().proto, "UDP/TLS/RTP/SAVPF");
    assert!(sdp.rtcp_mux(0) && sdp.rtcp_mux(1));
    let rtcp = sdp.rtcp(0).unwrap();
    assert_eq!(
        (rtcp.port, rtcp.connection.unwrap().is_unspecified()),
        (9, true)
    );
    assert_eq!(
        sdp.attribute_values(Scope::Media(0), "candidate").count(),
        3
    );
    assert_eq!(
        sdp.attribute(Scope::Media(0), "ice-ufrag").unwrap().value,
        Some("Oyef")
    );
    assert_eq!(
        sdp.rtpmap(0, 111),
        Some(RtpMap {
            payload_type: 111,
            encoding: "opus",
            clock_rate: 48000,
            params: Some("2")
        })
    );
    assert_eq!(sdp.fmtp(1, "97"), Some("apt=96"));
    assert_eq!(sdp.attribute_values(Scope::Media(1), "ssrc").count(), 4);
}

#[test]
fn srtp_offer_terminated_to_plain_rtp() {
    golden(
        "srtp_to_rtp",
        fixture!("srtp_sdes_offer.sdp"),
        fixture!("srtp_to_rtp.out.sdp"),
        |sdp| {
            anchor(sdp);
            assert_eq!(sdp.remove_crypto(0, None), 2);
            sdp.set_media_proto(0, "RTP/AVP").unwrap();
        },
    );
}

#[test]
fn srtp_offer_rekeyed_by_sbc() {
    golden(
        "srtp_rekey",
        fixture!("srtp_sdes_offer.sdp"),
        fixture!("srtp_rekey.out.sdp"),
        |sdp| {
            anchor(sdp);
            let tags: Vec<u32> = sdp.cryptos(0).map(|c| c.tag).collect();
            assert_eq!(tags, [1, 2]);
            assert_eq!(sdp.remove_crypto(0, Some(2)), 1);
            let key = format!("inline:{SBC_KEY}");
            let mine = Crypto {
                tag: 1,
                suite: "AES_CM_128_HMAC_SHA1_80",
                key_params: &key,
                session_params: None,
            };
            sdp.set_crypto(0, &mine).unwrap();
        },
    );
}

#[test]
fn srtp_offer_typed_reads() {
    let sdp = Sdp::parse_str(fixture!("srtp_sdes_offer.sdp")).unwrap();
    let c: Vec<Crypto<'_>> = sdp.cryptos(0).collect();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].suite, "AES_CM_128_HMAC_SHA1_80");
    assert_eq!(
        c[0].inline_keys().collect::<Vec<_>>(),
        ["WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4"]
    );
    assert_eq!(
        (c[1].tag, c[1].session_params),
        (2, Some("KDR=1 UNENCRYPTED_SRTCP"))
    );
}

#[test]
fn ipv6_offer_to_ipv4_side() {
    golden(
        "ipv6_offer",
        fixture!("ipv6_offer.sdp"),
        fixture!("ipv6_offer.out.sdp"),
        anchor,
    );
    let sdp = Sdp::parse_str(fixture!("ipv6_offer.sdp")).unwrap();
    let c = sdp.connection(Scope::Session).unwrap();
    assert_eq!(
        (c.addr_type, c.ip()),
        ("IP6", Some("2001:db8::20".parse().unwrap()))
    );
    let r = sdp.rtcp(0).unwrap();
    assert_eq!((r.port, r.connection.unwrap().addr_type), (20001, "IP6"));
}

#[test]
fn hold_reinvite_sendonly() {
    let sdp = Sdp::parse_str(fixture!("hold_reinvite.sdp")).unwrap();
    assert_eq!(sdp.effective_direction(0), Direction::SendOnly);
    // The answer to a sendonly offer is recvonly (RFC 3264 §6.1).
    assert_eq!(sdp.effective_direction(0).reversed(), Direction::RecvOnly);
    golden(
        "hold_reinvite",
        fixture!("hold_reinvite.sdp"),
        fixture!("hold_reinvite.out.sdp"),
        anchor,
    );
}

#[test]
fn hold_rfc2543_zero_address_normalised() {
    let sdp = Sdp::parse_str(fixture!("hold_rfc2543.sdp")).unwrap();
    assert!(sdp.effective_connection(0).unwrap().is_unspecified());
    assert_eq!(sdp.direction(Scope::Media(0)), None);
    golden(
        "hold_rfc2543",
        fixture!("hold_rfc2543.sdp"),
        fixture!("hold_rfc2543.out.sdp"),
        |sdp| {
            // Read the old-style hold before the address is replaced, then say it with an attribute.
            let held = sdp.effective_connection(0).unwrap().is_unspecified();
            anchor(sdp);
            if held {
                sdp.set_direction(Scope::Media(0), Direction::SendOnly)
                    .unwrap();
            }
        },
    );
}

#[test]
fn rejected_streams_keep_port_zero() {
    let sdp = Sdp::parse_str(fixture!("rejected_stream.sdp")).unwrap();
    let rejected: Vec<bool> = sdp.media_lines().map(|m| m.is_rejected()).collect();
    assert_eq!(rejected, [false, true, true]);
    assert!(!sdp.media(2).unwrap().is_rtp());
    golden(
        "rejected_stream",
        fixture!("rejected_stream.sdp"),
        fixture!("rejected_stream.out.sdp"),
        anchor,
    );
}

#[test]
fn rejecting_a_stream_in_an_answer() {
    let mut sdp = Sdp::parse_str(fixture!("webrtc_offer.sdp")).unwrap();
    sdp.reject_media(1).unwrap();
    let m = sdp.media(1).unwrap();
    assert!(m.is_rejected());
    assert_eq!(m.formats().count(), 5);
    let before = crlf(fixture!("webrtc_offer.sdp"));
    let after = String::from_utf8(sdp.to_vec()).unwrap();
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        [(
            "m=video 50202 UDP/TLS/RTP/SAVPF 96 97 102 103 45",
            "m=video 0 UDP/TLS/RTP/SAVPF 96 97 102 103 45"
        )]
    );
}

#[test]
fn vendor_lines_untouched_by_anchoring() {
    golden(
        "vendor_lines",
        fixture!("vendor_lines.sdp"),
        fixture!("vendor_lines.out.sdp"),
        |sdp| {
            anchor(sdp);
            // Media-level c= everywhere: the video section gets one, placed right after its m= line.
            for k in 0..sdp.media_count() {
                sdp.set_connection_addr(Scope::Media(k), sbc_ip()).unwrap();
            }
        },
    );
    let sdp = Sdp::parse_str(fixture!("vendor_lines.sdp")).unwrap();
    assert_eq!(sdp.direction(Scope::Session), Some(Direction::RecvOnly));
    assert_eq!(sdp.effective_direction(1), Direction::RecvOnly);
}

#[test]
fn multicast_ttl_and_count_kept() {
    let sdp = Sdp::parse_str(fixture!("multicast.sdp")).unwrap();
    let c = sdp.connection(Scope::Session).unwrap();
    assert_eq!(
        (c.address, c.ttl, c.count),
        ("233.252.0.1", Some(127), Some(2))
    );
    let c6 = sdp.effective_connection(1).unwrap();
    assert_eq!((c6.address, c6.ttl, c6.count), ("FF15::101", None, Some(3)));
    assert_eq!(sdp.media(0).unwrap().port_count, Some(2));
    let c = Connection {
        net_type: "IN",
        addr_type: "IP4",
        address: "233.252.0.9",
        ttl: Some(127),
        count: Some(2),
    };
    let mut sdp = sdp;
    sdp.set_connection(Scope::Session, &c).unwrap();
    assert_eq!(sdp.lines().nth(3).unwrap(), b"c=IN IP4 233.252.0.9/127/2");
}

#[test]
fn edits_touch_only_their_lines() {
    let text = crlf(fixture!("webrtc_offer.sdp"));
    let mut sdp = Sdp::parse_str(&text).unwrap();
    sdp.set_media_port(0, 4000).unwrap();
    sdp.set_direction(Scope::Media(1), Direction::Inactive)
        .unwrap();
    sdp.set_ptime(Scope::Media(0), 20).unwrap();
    let out = String::from_utf8(sdp.to_vec()).unwrap();
    let before: Vec<&str> = text.lines().collect();
    let after: Vec<&str> = out.lines().collect();
    assert_eq!(after.len(), before.len() + 1);
    // ptime was added at the end of the audio section, just before the video m= line.
    let video = before
        .iter()
        .position(|l| l.starts_with("m=video"))
        .unwrap();
    assert_eq!(after[video], "a=ptime:20");
    let mut changed = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < before.len() && j < after.len() {
        if j == video {
            j += 1;
            continue;
        }
        if before[i] != after[j] {
            changed.push((before[i], after[j]));
        }
        i += 1;
        j += 1;
    }
    assert_eq!(
        changed,
        [
            (
                "m=audio 50202 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
                "m=audio 4000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126"
            ),
            ("a=sendrecv", "a=inactive")
        ]
    );
}

#[test]
fn strict_lines_report_their_fault() {
    let base = crlf(fixture!("phone_offer.sdp"));
    let cases: &[(&str, &str, SdpError)] = &[
        ("v=0", "v=2", SdpError::BadVersion { line: 1 }),
        (
            "o=- 20518 0 IN IP4 192.168.1.50",
            "o=- 20518 zero IN IP4 192.168.1.50",
            SdpError::BadOrigin { line: 2 },
        ),
        (
            "o=- 20518 0 IN IP4 192.168.1.50",
            "o=- 20518 0 IN IP4",
            SdpError::BadOrigin { line: 2 },
        ),
        (
            "c=IN IP4 192.168.1.50",
            "c=IN IP4 192.168.1.500",
            SdpError::BadConnection { line: 4 },
        ),
        (
            "c=IN IP4 192.168.1.50",
            "c=IN IP6 192.168.1.50",
            SdpError::BadConnection { line: 4 },
        ),
        (
            "m=audio 11780 RTP/AVP",
            "m=audio 117800 RTP/AVP",
            SdpError::BadPort { line: 6 },
        ),
        (
            "m=audio 11780 RTP/AVP",
            "m=audio -1 RTP/AVP",
            SdpError::BadPort { line: 6 },
        ),
        (
            "m=audio 11780 RTP/AVP 9 0 8 18 101",
            "m=audio 11780 RTP/AVP",
            SdpError::BadMedia { line: 6 },
        ),
        ("a=sendrecv", "sendrecv", SdpError::BadLine { line: 16 }),
    ];
    for (from, to, want) in cases {
        let text = base.replacen(from, to, 1);
        assert_eq!(Sdp::parse_str(&text).unwrap_err(), *want, "{to}");
    }
    // Liberal with what the SBC does not edit: a broken rtpmap is kept and merely skipped by accessors.
    let text = base.replacen("a=rtpmap:18 G729/8000", "a=rtpmap:18 G729", 1);
    let sdp = Sdp::parse_str(&text).unwrap();
    assert!(sdp.rtpmap(0, 18).is_none());
    assert_eq!(sdp.to_vec(), text.as_bytes());
}

// -------------------------------------------------------------------------------------------------
// Hostile input

/// Everything the SBC might do with a parsed SDP; must never panic, and its output must re-parse.
fn exercise(input: &[u8]) -> Result<(), String> {
    let Ok(mut sdp) = Sdp::parse(input) else {
        return Ok(());
    };
    let before = sdp.to_vec();
    let again =
        Sdp::parse(&before).map_err(|e| format!("unmodified output does not re-parse: {e}"))?;
    if again.to_vec() != before {
        return Err("unmodified output is not stable".into());
    }
    let ip = sbc_ip();
    let _ = sdp.origin();
    let _ = sdp.connection(Scope::Session);
    for k in 0..sdp.media_count() + 1 {
        let _ = sdp.media(k);
        let _ = sdp.effective_connection(k);
        let _ = sdp.effective_direction(k);
        let _ = sdp.rtpmaps(k).count();
        let _ = sdp.fmtp(k, "101");
        let _ = sdp.cryptos(k).count();
        let _ = sdp.rtcp(k);
        let _ = sdp.rtcp_mux(k);
        let _ = sdp.ptime(Scope::Media(k));
        let _ = sdp.maxptime(Scope::Media(k));
        let _ = sdp.attributes(Scope::Media(k)).count();
    }
    anchor_lenient(&mut sdp, ip);
    sdp.remove_ice();
    for k in 0..sdp.media_count() {
        let _ = sdp.retain_formats(k, |f| f != "0");
        let _ = sdp.set_direction(Scope::Media(k), Direction::SendOnly);
        let _ = sdp.set_connection_addr(Scope::Media(k), ip);
        let _ = sdp.set_fmtp(k, "8", "x=1");
        let _ = sdp.set_crypto(
            k,
            &Crypto {
                tag: 1,
                suite: "S",
                key_params: "inline:K",
                session_params: None,
            },
        );
        let _ = sdp.remove_crypto(k, Some(2));
        let _ = sdp.set_ptime(Scope::Media(k), 30);
    }
    let _ = sdp.set_direction(Scope::Session, Direction::Inactive);
    let _ = sdp.remove_connection(Scope::Session);
    let out = sdp.to_vec();
    let again = Sdp::parse(&out).map_err(|e| format!("edited output does not re-parse: {e}"))?;
    if again.to_vec() != out {
        return Err("edited output is not stable".into());
    }
    Ok(())
}

fn anchor_lenient(sdp: &mut Sdp<'_>, ip: IpAddr) {
    sdp.set_origin_address(ip);
    sdp.bump_origin_version();
    sdp.set_all_connection_addrs(ip);
    for k in 0..sdp.media_count() {
        let _ = sdp.set_media_port(k, port(k));
        if sdp.rtcp(k).is_some() {
            let _ = sdp.set_rtcp(k, port(k) + 1, Some(ip));
        }
    }
}

#[test]
fn hostile_prefixes_and_byte_flips_never_panic() {
    const REPLACEMENTS: &[u8] = b"\x00\xff \n=/:9";
    let mut failures: Vec<String> = Vec::new();
    let mut cases = 0usize;
    let mut run = |label: String, input: &[u8]| {
        cases += 1;
        match catch_unwind(AssertUnwindSafe(|| exercise(input))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("{label}: {why}")),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{label}: panic: {msg}"));
            }
        }
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, text) in FIXTURES {
        let bytes = crlf(text).into_bytes();
        for len in 0..=bytes.len() {
            run(format!("{name} prefix {len}"), &bytes[..len]);
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            for &r in REPLACEMENTS.iter().chain([bytes[at] ^ 0x20].iter()) {
                if r == bytes[at] {
                    continue;
                }
                flipped[at] = r;
                run(format!("{name} byte {at} = {r:#04x}"), &flipped);
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(cases > 50_000, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hostile_shapes() {
    let big_port = "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 65535/65535 RTP/AVP 0\r\n".to_string();
    let many_formats = format!(
        "v=0\r\no=- 1 18446744073709551615 IN IP4 h\r\nm=audio 1 RTP/AVP{}\r\n",
        " 96".repeat(2000)
    );
    let long_line = format!("v=0\r\no=- 1 1 IN IP4 h\r\na=x:{}\r\n", "y".repeat(60_000));
    let only_cr = "v=0\ro=- 1 1 IN IP4 h\r".to_string();
    let nul = "v=0\r\no=- 1 1 IN IP4 h\r\na=\0\r\n".to_string();
    for s in [big_port, many_formats, long_line, only_cr, nul] {
        exercise(s.as_bytes()).unwrap();
    }
    // The session version saturates instead of wrapping or panicking.
    let mut sdp = Sdp::parse_str("v=0\r\no=- 1 18446744073709551615 IN IP4 h\r\n").unwrap();
    assert_eq!(sdp.bump_origin_version(), u64::MAX);
}

// -------------------------------------------------------------------------------------------------
// Rough timing (run with `cargo test --release -p sbc-sip --test sdp -- --ignored --nocapture`)

#[test]
#[ignore]
// A wall-clock measurement is the point of this test; protocol code never reads the clock.
#[allow(clippy::disallowed_methods)]
fn timing_parse_anchor_write() {
    let inputs = [
        crlf(fixture!("phone_offer.sdp")),
        crlf(fixture!("webrtc_offer.sdp")),
    ];
    let mut out = Vec::with_capacity(8192);
    for input in &inputs {
        let rounds = 50_000u32;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            let sdp = Sdp::parse(std::hint::black_box(input.as_bytes())).unwrap();
            std::hint::black_box(&sdp);
        }
        let parse = start.elapsed() / rounds;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            out.clear();
            let mut sdp = Sdp::parse(std::hint::black_box(input.as_bytes())).unwrap();
            anchor(&mut sdp);
            sdp.remove_ice();
            sdp.write_to(&mut out);
            std::hint::black_box(&out);
        }
        let full = start.elapsed() / rounds;
        println!(
            "{} bytes, {} lines: parse {parse:?}, parse+anchor+write {full:?}",
            input.len(),
            input.lines().count()
        );
    }
}
