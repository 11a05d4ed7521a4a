//! Malformed and refused descriptions, error texts, and mutated inputs that must never panic.

use super::*;

#[test]
fn malformed_and_refused_inputs() {
    let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    let err = |body: &str| plan_of(&format!("{head}{body}")).unwrap_err();
    // Not SDP at all.
    let e = plan_of("v=0\r\no=- 1 x IN IP4 h\r\n").unwrap_err();
    assert_eq!(
        (e, e.status()),
        (AnchorError::Sdp(SdpError::BadOrigin { line: 2 }), 400)
    );
    assert_eq!(plan_of("").unwrap_err().status(), 400);
    // No c= for an active stream; a rejected one needs none.
    let e = err("m=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(
        (e, e.status()),
        (AnchorError::NoConnection { media: 0 }, 400)
    );
    assert!(plan_of(&format!("{head}m=audio 0 RTP/AVP 0\r\n")).is_ok());
    let e = err("m=audio 0 RTP/AVP 0\r\nm=video 4000 RTP/AVP 96\r\n");
    assert_eq!(e, AnchorError::NoConnection { media: 1 });
    // Multicast, foreign network types, several ports.
    let e = err("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127\r\n");
    assert_eq!((e, e.status()), (AnchorError::Multicast { media: 0 }, 488));
    let e = err("m=audio 4000 RTP/AVP 0\r\nc=ATM NSAP 47.0091.8100.0000.0060.3e64.fd01\r\n");
    assert_eq!(
        (e, e.status()),
        (AnchorError::UnsupportedAddress { media: 0 }, 488)
    );
    let e = err("m=audio 4000/2 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n");
    assert_eq!((e, e.status()), (AnchorError::PortCount { media: 0 }, 488));
    assert!(plan_of(&format!(
        "{head}c=IN IP4 192.0.2.1\r\nm=audio 4000/1 RTP/AVP 0\r\n"
    ))
    .is_ok());
    // Too many m= lines, too many streams.
    let many = |n: usize, port: u16| {
        let mut s = format!("{head}c=IN IP4 192.0.2.1\r\n");
        for _ in 0..n {
            s.push_str(&format!("m=audio {port} RTP/AVP 0\r\n"));
        }
        s
    };
    let e = plan_of(&many(17, 4000)).unwrap_err();
    assert_eq!(
        (e, e.status()),
        (AnchorError::TooManyMedia { count: 17, max: 16 }, 488)
    );
    let e = plan_of(&many(9, 4000)).unwrap_err();
    assert_eq!(
        (e, e.status()),
        (AnchorError::TooManyStreams { count: 9, max: 8 }, 488)
    );
    assert_eq!(plan_of(&many(16, 0)).unwrap().stream_count(), 0);
    assert_eq!(plan_of(&many(8, 4000)).unwrap().stream_count(), 8);
    // A session allocated for fewer streams than a re-offer needs.
    let p = plan_of(&many(2, 4000)).unwrap();
    let relay = FakeMedia::new(30000, 30019);
    let e = p
        .local_ports(&relay, SessionHandle::from_raw(0), MediaSide::A)
        .unwrap_err();
    assert_eq!(
        (e, e.status()),
        (
            AnchorError::SessionTooSmall {
                needed: 2,
                streams: 0
            },
            500
        )
    );
}

#[test]
fn error_texts() {
    let cases = [
        (
            AnchorError::Sdp(SdpError::BadConnection { line: 3 }),
            "bad c= line (line 3)",
        ),
        (
            AnchorError::TooManyMedia { count: 17, max: 16 },
            "too many m= lines (17, at most 16)",
        ),
        (
            AnchorError::NoConnection { media: 1 },
            "no c= for an active stream (media 1)",
        ),
        (
            AnchorError::Multicast { media: 0 },
            "multicast media address (media 0)",
        ),
        (
            AnchorError::SessionTooSmall {
                needed: 2,
                streams: 1,
            },
            "media session too small (needs 2, has 1)",
        ),
        (
            AnchorError::Rewrite(SdpError::BadValue {
                what: "origin field",
            }),
            "SDP rewrite failed: bad value for SDP edit: origin field",
        ),
    ];
    for (e, shown) in cases {
        assert_eq!(e.to_string(), shown);
    }
    assert_eq!(AnchorError::from(SdpError::Empty).reason(), "empty SDP");
}

/// Deterministic xorshift, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Plan and rewrite with several option sets; whatever is written must parse again and keep
/// the m= lines. Must never panic.
fn exercise(body: &[u8], ports: &[Option<RelayPorts>]) {
    let Ok(sdp) = Sdp::parse(body) else {
        return;
    };
    let plans = [
        PlanOptions::default(),
        PlanOptions {
            address: RemoteAddress::SipSource(OUTSIDE),
            non_rtp: NonRtp::Refuse,
            max_media: 3,
            max_streams: 2,
            ..PlanOptions::default()
        },
    ];
    for p in &plans {
        let _ = plan(&sdp, p);
    }
    let rewrites = [
        RewriteOptions::default(),
        RewriteOptions {
            origin: OriginMode::Address,
            session_connection: true,
            zero_address: true,
            keep_ice: true,
            rtcp_with_mux: true,
            full_rtcp_attribute: true,
        },
    ];
    for (opts, local) in rewrites
        .iter()
        .zip([OUTSIDE, IpAddr::V6(Ipv6Addr::LOCALHOST)])
    {
        let mut out = sdp.clone();
        let mut origin = OriginState::new(1, 1);
        if rewrite(&mut out, local, ports, &mut origin, opts).is_ok() {
            let text = out.to_vec();
            let again = Sdp::parse(&text)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
            assert_eq!(again.media_count(), sdp.media_count());
        }
    }
}

#[test]
fn truncations_and_mutations_never_panic() {
    let seeds = [
        g711_offer(),
        webrtc_like_offer(),
        media_level_conns(),
        t38_reinvite(),
        hold_base("a=inactive").replace("192.0.2.10\r\nt=", "0.0.0.0\r\nt="),
        text(&[
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::5",
            "s=-",
            "t=0 0",
            "m=audio 7078/1 RTP/SAVP 0",
            "c=IN IP6 2001:db8::5",
            "a=rtcp:7079 IN IP6 2001:db8::6",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31",
            "m=video 0 RTP/AVP 96",
            "c=IN IP4 224.2.1.1/127",
        ]),
    ];
    let ports = pairs(3);
    let alphabet = b" \r\n\t0123456789:/=.-amcoIPN\xff\x00";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        let bytes = seed.as_bytes();
        for cut in 0..=bytes.len() {
            exercise(&bytes[..cut], &ports);
        }
        for _ in 0..1500 {
            let mut m = bytes.to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len());
                match rng.below(4) {
                    0 => m[at] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, alphabet[rng.below(alphabet.len())]),
                    _ => {
                        let end = (at + rng.below(40)).min(m.len());
                        let chunk = m[at..end].to_vec();
                        let to = rng.below(m.len());
                        m.splice(to..to, chunk);
                    }
                }
                if m.is_empty() {
                    break;
                }
            }
            exercise(&m, &ports);
            exercise(&m, &ports[..1]);
        }
    }
}
