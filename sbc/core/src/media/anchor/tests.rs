//! The plan and rewrite on real-world descriptions: offers, answers, hold, RTCP, ICE, T.38.

use super::*;
use crate::media::testing::{
    audio_video_offer, t38_reinvite, video_rejecting_answer, zero_address_offer, FakeMedia,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The SBC's outside address (toward leg A) and inside address (toward leg B).
const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1));

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

/// Lines joined with CRLF, as the SDP writer ends them.
fn text(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

/// `n` relay pairs as a fresh relay hands them out: 30000, 30002, ...
fn pairs(n: usize) -> Vec<Option<RelayPorts>> {
    (0..n as u16)
        .map(|k| Some(RelayPorts::new(30000 + 2 * k, 30001 + 2 * k)))
        .collect()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Parse, plan with the defaults, rewrite toward `local` with `ports`; the output text.
fn run(
    input: &str,
    local: IpAddr,
    ports: &[Option<RelayPorts>],
    origin: &mut OriginState,
    opts: &RewriteOptions,
) -> String {
    let mut sdp = Sdp::parse_str(input).unwrap();
    plan(&sdp, &PlanOptions::default()).unwrap();
    rewrite(&mut sdp, local, ports, origin, opts).unwrap();
    let out = String::from_utf8(sdp.to_vec()).unwrap();
    // Whatever the SBC writes, it can read back.
    assert!(Sdp::parse_str(&out).is_ok(), "{out}");
    out
}

/// [`run`] with `n` fresh pairs and a fresh origin (session id 1, version 1).
fn anchored_with(input: &str, local: IpAddr, n: usize, opts: &RewriteOptions) -> String {
    run(input, local, &pairs(n), &mut OriginState::new(1, 1), opts)
}

/// [`anchored_with`] the B2BUA's defaults.
fn anchored(input: &str, local: IpAddr, n: usize) -> String {
    anchored_with(input, local, n, &RewriteOptions::default())
}

fn plan_of(input: &str) -> Result<MediaPlan, AnchorError> {
    plan(&Sdp::parse_str(input)?, &PlanOptions::default())
}

fn relay(input: &str, k: usize) -> RemoteSdp {
    plan_of(input).unwrap().entries()[k].remote().unwrap()
}

fn g711_offer() -> String {
    text(&[
        "v=0",
        "o=yealink 1612 1612 IN IP4 192.168.1.23",
        "s=SIP Call",
        "c=IN IP4 192.168.1.23",
        "t=0 0",
        "m=audio 11780 RTP/AVP 0 8 18 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ])
}

#[test]
fn basic_g711_offer() {
    let input = g711_offer();
    let p = plan_of(&input).unwrap();
    assert_eq!(p.stream_count(), 1);
    let e = p.entries()[0];
    assert_eq!(e.transport, Transport::RtpAvp);
    assert_eq!(
        e.remote(),
        Some(RemoteSdp {
            rtp: sock("192.168.1.23:11780"),
            rtcp: None,
            rtcp_mux: false,
        })
    );
    assert_eq!(
        (e.direction, e.on_hold(), e.clock_rate),
        (Direction::SendRecv, false, 8000)
    );

    let mut origin = OriginState::new(4242, 1);
    let out = run(
        &input,
        OUTSIDE,
        &pairs(1),
        &mut origin,
        &RewriteOptions::default(),
    );
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 4242 1 IN IP4 203.0.113.10",
            "s=SIP Call",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 8 18 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:18 G729/8000",
            "a=fmtp:18 annexb=no",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ])
    );
}

/// Offer with audio and video through the relay, then an answer that rejects the video. (The
/// binary's relay adapter runs the same exchange through the real relay.)
#[test]
fn audio_video_offer_and_answer_rejecting_video() {
    let now = t0();
    let mut media = FakeMedia::new(30000, 30099);
    let offer = audio_video_offer();
    let mut sdp = Sdp::parse_str(&offer).unwrap();
    let p = plan(&sdp, &PlanOptions::default()).unwrap();
    assert_eq!(p.stream_count(), 2);
    let h = media.allocate(now, p.stream_count()).unwrap();
    p.set_remotes(&mut media, h, MediaSide::A, now).unwrap();
    let given = |media: &FakeMedia, k, side| media.remote(h, k, side).unwrap();
    assert_eq!(
        given(&media, 1, MediaSide::A).sdp.rtp,
        sock("10.1.0.7:5006")
    );
    assert_eq!(
        (
            given(&media, 0, MediaSide::A).clock_rate,
            given(&media, 1, MediaSide::A).clock_rate
        ),
        (Some(8000), Some(90000))
    );
    let ports = p.local_ports(&media, h, MediaSide::B).unwrap();
    let mut origin_b = OriginState::new(77, 5);
    rewrite(
        &mut sdp,
        INSIDE,
        &ports,
        &mut origin_b,
        &RewriteOptions::default(),
    )
    .unwrap();
    assert_eq!(
        sdp.to_string(),
        text(&[
            "v=0",
            "o=- 77 5 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 10.255.0.1",
            "b=AS:2048",
            "t=0 0",
            "m=audio 30002 RTP/AVP 9 0 101",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "m=video 30006 RTP/AVP 96",
            "b=TIAS:1920000",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",
            "a=rtcp-fb:96 nack pli",
        ])
    );

    let answer = video_rejecting_answer();
    let mut sdp = Sdp::parse_str(&answer).unwrap();
    let p = plan(&sdp, &PlanOptions::default()).unwrap();
    assert_eq!(p.entries()[1].disposition, Disposition::Rejected);
    assert_eq!(p.stream_count(), 1);
    p.set_remotes(&mut media, h, MediaSide::B, now).unwrap();
    assert_eq!(
        given(&media, 0, MediaSide::B).sdp.rtp,
        sock("172.16.0.5:40000")
    );
    assert_eq!(media.remote(h, 1, MediaSide::B), None, "the rejected video");
    let ports = p.local_ports(&media, h, MediaSide::A).unwrap();
    assert_eq!(ports[1], None);
    let mut origin_a = OriginState::new(88, 1);
    rewrite(
        &mut sdp,
        OUTSIDE,
        &ports,
        &mut origin_a,
        &RewriteOptions::default(),
    )
    .unwrap();
    assert_eq!(
        sdp.to_string(),
        text(&[
            "v=0",
            "o=- 88 1 IN IP4 203.0.113.10",
            "s=PBX",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 9 101",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "m=video 0 RTP/AVP 96",
        ])
    );
    // Teardown is the relay's: the handle dies with the session.
    media.release(h, now).unwrap();
    assert_eq!(
        p.set_remotes(&mut media, h, MediaSide::B, now),
        Err(MediaError::UnknownSession)
    );
}

#[test]
fn rejected_line_keeps_port_zero_and_loses_its_inside_address() {
    let answer = text(&[
        "v=0",
        "o=- 1 1 IN IP4 172.16.0.5",
        "s=-",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0",
        "c=IN IP4 172.16.0.5",
        "a=rtcp:40001",
        "m=video 0 RTP/AVP 96",
        "c=IN IP4 172.16.0.5",
        "a=rtcp:40003 IN IP4 172.16.0.5",
    ]);
    // Even if the caller hands ports for it, a line at port 0 stays there.
    let out = anchored(&answer, OUTSIDE, 2);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "c=IN IP4 203.0.113.10",
            "a=rtcp:30001",
            "m=video 0 RTP/AVP 96",
            "c=IN IP4 203.0.113.10",
        ])
    );
}

#[test]
fn rtcp_mux_offer() {
    let offer = text(&[
        "v=0",
        "o=- 20 20 IN IP4 198.51.100.4",
        "s=-",
        "c=IN IP4 198.51.100.4",
        "t=0 0",
        "m=audio 16384 RTP/AVP 0 101",
        "a=rtcp:16384",
        "a=rtcp-mux",
        "a=rtpmap:101 telephone-event/8000",
    ]);
    assert_eq!(
        relay(&offer, 0),
        RemoteSdp {
            rtp: sock("198.51.100.4:16384"),
            rtcp: Some(sock("198.51.100.4:16384")),
            rtcp_mux: true,
        }
    );
    let out = anchored(&offer, INSIDE, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 10.255.0.1",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 101",
            "a=rtcp-mux",
            "a=rtpmap:101 telephone-event/8000",
        ])
    );
    // Kept on request: an a=rtcp that named the RTP port names the SBC's RTP port, any other
    // port the SBC's RTCP port.
    let keep = RewriteOptions {
        rtcp_with_mux: true,
        ..RewriteOptions::default()
    };
    let out = anchored_with(&offer, INSIDE, 1, &keep);
    assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\na=rtcp:30000\r\na=rtcp-mux\r\n"));
    let other = offer.replace("a=rtcp:16384", "a=rtcp:16385");
    let out = anchored_with(&other, INSIDE, 1, &keep);
    assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\na=rtcp:30001\r\na=rtcp-mux\r\n"));
}

#[test]
fn rtcp_with_explicit_address() {
    let offer = text(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.50",
        "s=-",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0",
        "a=rtcp:53020 IN IP4 198.51.100.20",
    ]);
    assert_eq!(relay(&offer, 0).rtcp, Some(sock("198.51.100.20:53020")));
    let out = anchored(&offer, OUTSIDE, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=rtcp:30001 IN IP4 203.0.113.10",
        ])
    );
    // Without an address, the port alone; with full-rtcp-attribute, always the address.
    let bare = offer.replace("a=rtcp:53020 IN IP4 198.51.100.20", "a=rtcp:53020");
    assert_eq!(relay(&bare, 0).rtcp, Some(sock("192.0.2.50:53020")));
    let out = anchored(&bare, OUTSIDE, 1);
    assert!(out.ends_with("m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\n"));
    let full = RewriteOptions {
        full_rtcp_attribute: true,
        ..RewriteOptions::default()
    };
    let out = anchored_with(&bare, OUTSIDE, 1, &full);
    assert!(out.ends_with("a=rtcp:30001 IN IP4 203.0.113.10\r\n"));
    // IPv6 RTCP address, bridged to an IPv4 SBC address.
    let v6 = offer.replace("IN IP4 198.51.100.20", "IN IP6 2001:db8::20");
    assert_eq!(relay(&v6, 0).rtcp, Some(sock("[2001:db8::20]:53020")));
    // A broken a=rtcp is ignored by the plan and replaced by the rewrite.
    let broken = offer.replace("a=rtcp:53020 IN IP4 198.51.100.20", "a=rtcp:x");
    assert_eq!(relay(&broken, 0).rtcp, None);
    let out = anchored(&broken, OUTSIDE, 1);
    assert!(out.ends_with("a=rtcp:30001\r\n"));
}

fn webrtc_like_offer() -> String {
    text(&[
        "v=0",
        "o=- 6412 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-options:trickle",
        "m=audio 52000 RTP/AVP 111 0",
        "c=IN IP4 198.51.100.7",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 192.168.1.40 52000 typ host",
        "a=candidate:2 1 udp 1686052607 198.51.100.7 52000 typ srflx raddr 192.168.1.40 rport 52000",
        "a=ice-ufrag:Wq3e",
        "a=ice-pwd:0c9d1bd8a0f54b5c9c1ec5a2",
        "a=end-of-candidates",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
    ])
}

#[test]
fn ice_attributes_removed() {
    let offer = webrtc_like_offer();
    let p = plan_of(&offer).unwrap();
    let e = p.entries()[0];
    assert_eq!(e.clock_rate, 48000);
    assert_eq!(
        e.remote(),
        Some(RemoteSdp {
            rtp: sock("198.51.100.7:52000"),
            rtcp: Some(sock("0.0.0.0:9")),
            rtcp_mux: true,
        })
    );
    let out = anchored(&offer, INSIDE, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "t=0 0",
            "m=audio 30000 RTP/AVP 111 0",
            "c=IN IP4 10.255.0.1",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000",
        ])
    );
    // Kept on request (the candidates still name the caller's addresses).
    let keep = RewriteOptions {
        keep_ice: true,
        ..RewriteOptions::default()
    };
    let out = anchored_with(&offer, INSIDE, 1, &keep);
    assert_eq!(out.matches("a=candidate:").count(), 2);
    assert!(out.contains("a=ice-options:trickle\r\n") && out.contains("a=ice-ufrag:Wq3e\r\n"));
}

fn hold_base(direction: &str) -> String {
    text(&[
        "v=0",
        "o=alice 2890844526 2890844527 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        direction,
    ])
}

#[test]
fn hold_sendonly_passes() {
    let offer = hold_base("a=sendonly");
    let e = plan_of(&offer).unwrap().entries()[0];
    assert_eq!(
        (e.direction, e.zero_address, e.on_hold()),
        (Direction::SendOnly, false, true)
    );
    let out = anchored(&offer, INSIDE, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 10.255.0.1",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendonly",
        ])
    );
    // The answer to a hold: recvonly is not a hold by its author.
    let answer = plan_of(&hold_base("a=recvonly")).unwrap().entries()[0];
    assert!(!answer.on_hold());
}

#[test]
fn hold_inactive_at_session_level_passes() {
    let offer = text(&[
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "a=inactive",
        "m=audio 49170 RTP/AVP 8",
        "m=video 49172 RTP/AVP 31",
    ]);
    let p = plan_of(&offer).unwrap();
    for e in p.entries() {
        assert_eq!((e.direction, e.on_hold()), (Direction::Inactive, true));
    }
    assert_eq!(p.entries()[1].clock_rate, 90000);
    let out = anchored(&offer, INSIDE, 2);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 10.255.0.1",
            "t=0 0",
            "a=inactive",
            "m=audio 30000 RTP/AVP 8",
            "m=video 30002 RTP/AVP 31",
        ])
    );
}

#[test]
fn hold_zero_address_passes() {
    let now = t0();
    let offer = zero_address_offer();
    let p = plan_of(&offer).unwrap();
    let e = p.entries()[0];
    assert_eq!(
        (e.direction, e.zero_address, e.on_hold()),
        (Direction::SendRecv, true, true)
    );
    assert_eq!(e.remote().unwrap().rtp, sock("0.0.0.0:49170"));
    // The relay is given the unspecified address, from which it learns no destination (the
    // binary's relay adapter checks this on the real relay).
    let mut media = FakeMedia::new(30000, 30099);
    let h = media.allocate(now, 1).unwrap();
    p.set_remotes(&mut media, h, MediaSide::A, now).unwrap();
    assert_eq!(
        media.remote(h, 0, MediaSide::A).unwrap().sdp.rtp,
        sock("0.0.0.0:49170")
    );
    assert_eq!(media.streams(h)[0].a.rtp.destination(), None);
    // Even a SIP-source address does not undo the hold.
    let source = PlanOptions {
        address: RemoteAddress::SipSource(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
        ..PlanOptions::default()
    };
    let sdp = Sdp::parse_str(&offer).unwrap();
    let e = plan(&sdp, &source).unwrap().entries()[0];
    assert_eq!(e.remote().unwrap().rtp, sock("0.0.0.0:49170"));

    let out = anchored(&offer, INSIDE, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
        ])
    );
    let zero = RewriteOptions {
        zero_address: true,
        ..RewriteOptions::default()
    };
    let out = anchored_with(&offer, INSIDE, 1, &zero);
    assert!(out.contains("c=IN IP4 10.255.0.1\r\n"));
    // IPv6 hold.
    let v6 = offer.replace("c=IN IP4 0.0.0.0", "c=IN IP6 ::");
    assert!(plan_of(&v6).unwrap().entries()[0].on_hold());
    let out = anchored(&v6, INSIDE, 1);
    assert!(out.contains("c=IN IP6 ::\r\n"));
}

fn media_level_conns() -> String {
    text(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
        "c=IN IP4 192.0.2.2",
        "a=ptime:20",
        "m=video 6002 RTP/AVP 96",
        "c=IN IP4 192.0.2.3",
        "a=rtpmap:96 VP8/90000",
    ])
}

#[test]
fn session_level_and_media_level_connections() {
    let input = media_level_conns();
    assert_eq!(relay(&input, 0).rtp, sock("192.0.2.2:6000"));
    assert_eq!(relay(&input, 1).rtp, sock("192.0.2.3:6002"));
    // In place: every c= names the SBC.
    let out = anchored(&input, OUTSIDE, 2);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "c=IN IP4 203.0.113.10",
            "a=ptime:20",
            "m=video 30002 RTP/AVP 96",
            "c=IN IP4 203.0.113.10",
            "a=rtpmap:96 VP8/90000",
        ])
    );
    // replace session-connection: one session-level c= serves every stream.
    let one = RewriteOptions {
        session_connection: true,
        ..RewriteOptions::default()
    };
    let expected = text(&[
        "v=0",
        "o=- 1 1 IN IP4 203.0.113.10",
        "s=-",
        "c=IN IP4 203.0.113.10",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0",
        "a=ptime:20",
        "m=video 30002 RTP/AVP 96",
        "a=rtpmap:96 VP8/90000",
    ]);
    let out = anchored_with(&input, OUTSIDE, 2, &one);
    assert_eq!(out, expected);
    // Without a session-level c= to begin with: in place adds none, session-connection inserts
    // it before t=.
    let no_session = input.replace("c=IN IP4 192.0.2.1\r\n", "");
    let out = anchored(&no_session, OUTSIDE, 2);
    assert_eq!(out.matches("c=IN IP4 203.0.113.10").count(), 2);
    assert!(out.starts_with("v=0\r\no=- 1 1 IN IP4 203.0.113.10\r\ns=-\r\nt=0 0\r\n"));
    let out = anchored_with(&no_session, OUTSIDE, 2, &one);
    assert_eq!(out, expected);
}

#[test]
fn session_connection_keeps_a_per_stream_hold() {
    let input = text(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
        "a=ptime:20",
        "m=video 6002 RTP/AVP 96",
        "c=IN IP4 192.0.2.3",
    ]);
    let p = plan_of(&input).unwrap();
    assert!(p.entries()[0].on_hold() && !p.entries()[1].on_hold());
    let out = anchored(&input, OUTSIDE, 2);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=ptime:20",
            "m=video 30002 RTP/AVP 96",
            "c=IN IP4 203.0.113.10",
        ])
    );
    let one = RewriteOptions {
        session_connection: true,
        ..RewriteOptions::default()
    };
    let out = anchored_with(&input, OUTSIDE, 2, &one);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "c=IN IP4 0.0.0.0",
            "a=ptime:20",
            "m=video 30002 RTP/AVP 96",
        ])
    );
}

#[test]
fn ipv6_connection() {
    let offer = text(&[
        "v=0",
        "o=bob 7 7 IN IP6 2001:db8::5",
        "s=-",
        "c=IN IP6 2001:db8::5",
        "t=0 0",
        "m=audio 7078 RTP/AVP 0 8",
        "a=rtcp:7079",
    ]);
    assert_eq!(relay(&offer, 0).rtp, sock("[2001:db8::5]:7078"));
    assert_eq!(relay(&offer, 0).rtcp, Some(sock("[2001:db8::5]:7079")));
    let sbc6 = IpAddr::V6("2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap());
    let out = anchored(&offer, sbc6, 1);
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP6 2001:db8:ffff::1",
            "s=-",
            "c=IN IP6 2001:db8:ffff::1",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 8",
            "a=rtcp:30001",
        ])
    );
    // Bridged to an IPv4 leg.
    let out = anchored(&offer, INSIDE, 1);
    assert!(out.starts_with("v=0\r\no=- 1 1 IN IP4 10.255.0.1\r\ns=-\r\nc=IN IP4 10.255.0.1\r\n"));
}

#[test]
fn origin_version_changes_only_with_the_description() {
    let opts = RewriteOptions::default();
    let mut origin = OriginState::new(9000, 9000);
    let sent = |input: &str, ports: &[Option<RelayPorts>], origin: &mut OriginState| {
        let out = run(input, OUTSIDE, ports, origin, &opts);
        out.lines().nth(1).unwrap().to_string()
    };
    let first = pairs(1);
    let offer = hold_base("a=sendrecv");
    assert_eq!(
        sent(&offer, &first, &mut origin),
        "o=- 9000 9000 IN IP4 203.0.113.10"
    );
    // A refresh re-INVITE: the peer bumped its own version, nothing else changed.
    let refresh = offer.replace("2890844527", "2890844528");
    assert_eq!(
        sent(&refresh, &first, &mut origin),
        "o=- 9000 9000 IN IP4 203.0.113.10"
    );
    // Hold, twice: one increment.
    let hold = hold_base("a=sendonly");
    assert_eq!(
        sent(&hold, &first, &mut origin),
        "o=- 9000 9001 IN IP4 203.0.113.10"
    );
    assert_eq!(
        sent(&hold, &first, &mut origin),
        "o=- 9000 9001 IN IP4 203.0.113.10"
    );
    // Resume.
    assert_eq!(
        sent(&offer, &first, &mut origin),
        "o=- 9000 9002 IN IP4 203.0.113.10"
    );
    // New relay ports.
    let moved = pairs(2)[1..].to_vec();
    assert_eq!(
        sent(&offer, &moved, &mut origin),
        "o=- 9000 9003 IN IP4 203.0.113.10"
    );
    assert_eq!(origin.version(), 9003);
    assert_eq!((origin.session_id(), origin.username()), (9000, "-"));

    // A bad username fails the rewrite and leaves the state alone.
    let mut bad = OriginState::new(1, 1).with_username("two words");
    let mut sdp = Sdp::parse_str(&offer).unwrap();
    let e = rewrite(&mut sdp, OUTSIDE, &first, &mut bad, &opts).unwrap_err();
    assert_eq!((e.status(), bad.version()), (500, 1));
    let mut named = OriginState::new(1, 1).with_username("sbc");
    assert_eq!(
        sent(&offer, &first, &mut named),
        "o=sbc 1 1 IN IP4 203.0.113.10"
    );
}

#[test]
fn origin_modes_for_the_ng_protocol() {
    let offer = g711_offer();
    let mut origin = OriginState::new(1, 1);
    let out = run(
        &offer,
        OUTSIDE,
        &pairs(1),
        &mut origin,
        &RewriteOptions::ng(),
    );
    assert!(out.contains("o=yealink 1612 1612 IN IP4 192.168.1.23\r\n"));
    let address = RewriteOptions {
        origin: OriginMode::Address,
        ..RewriteOptions::ng()
    };
    let out = run(&offer, OUTSIDE, &pairs(1), &mut origin, &address);
    assert!(out.contains("o=yealink 1612 1612 IN IP4 203.0.113.10\r\n"));
    // The state is untouched outside the own-origin mode.
    assert_eq!(origin, OriginState::new(1, 1));
}

#[test]
fn t38_image_line_relayed_as_udp() {
    let input = t38_reinvite();
    let p = plan_of(&input).unwrap();
    let e = p.entries()[1];
    assert_eq!((e.transport, e.clock_rate), (Transport::Udptl, 0));
    assert_eq!(e.remote().unwrap().rtp, sock("192.0.2.9:4000"));
    assert_eq!(p.stream_count(), 2);
    let ports = pairs(2);
    let out = run(
        &input,
        INSIDE,
        &[None, ports[1]],
        &mut OriginState::new(1, 1),
        &RewriteOptions::default(),
    );
    assert_eq!(
        out,
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 10.255.0.1",
            "s=-",
            "c=IN IP4 10.255.0.1",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
            "m=image 30002 udptl t38",
            "a=T38FaxVersion:0",
            "a=T38MaxBitRate:14400",
            "a=T38FaxRateManagement:transferredTCF",
            "a=T38FaxMaxDatagram:316",
            "a=T38FaxUdpEC:t38UDPRedundancy",
        ])
    );
}

/// The T.38 stream is given to the relay as opaque datagrams on both sides (the binary's relay
/// adapter relays a UDPTL packet through the real relay).
#[test]
fn t38_datagrams_pass_the_relay_as_opaque_udp() {
    let input = t38_reinvite();
    let p = plan_of(&input).unwrap();
    let t = t0();
    let mut media = FakeMedia::new(30000, 30019);
    let h = media.allocate(t, p.stream_count()).unwrap();
    p.set_remotes(&mut media, h, MediaSide::A, t).unwrap();
    p.set_remotes(&mut media, h, MediaSide::B, t).unwrap();
    for side in [MediaSide::A, MediaSide::B] {
        let given = media.remote(h, 1, side).unwrap();
        assert_eq!(given.validation, Some(Validation::Opaque));
        assert_eq!(given.clock_rate, None);
    }
}

#[test]
fn non_rtp_refused_by_option_and_tcp_always() {
    let refuse = PlanOptions {
        non_rtp: NonRtp::Refuse,
        ..PlanOptions::default()
    };
    let input = t38_reinvite();
    let sdp = Sdp::parse_str(&input).unwrap();
    let p = plan(&sdp, &refuse).unwrap();
    assert_eq!(p.entries()[1].disposition, Disposition::Refused);
    assert_eq!(p.stream_count(), 0);
    assert!(!p.any_relayed());
    // No session: the relay knows none by this handle.
    let none = SessionHandle::from_raw(0);
    let ports = p
        .local_ports(&FakeMedia::new(30000, 30019), none, MediaSide::B)
        .unwrap();
    assert_eq!(ports, [None, None]);
    let out = run(
        &t38_reinvite(),
        INSIDE,
        &ports,
        &mut OriginState::new(1, 1),
        &RewriteOptions::default(),
    );
    assert!(out.contains("m=audio 0 RTP/AVP 0\r\nm=image 0 udptl t38\r\n"));

    let msrp = text(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.9",
        "s=-",
        "c=IN IP4 192.0.2.9",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "m=message 2855 TCP/MSRP *",
        "a=path:msrp://192.0.2.9:2855/kjhd37s2s20w2a;tcp",
    ]);
    let p = plan_of(&msrp).unwrap();
    assert_eq!(p.entries()[1].disposition, Disposition::Refused);
    assert_eq!(p.stream_count(), 1);
    let out = anchored(&msrp, INSIDE, 1);
    assert!(out.contains("m=audio 30000 RTP/AVP 0\r\nm=message 0 TCP/MSRP *\r\n"));
}

#[test]
fn transports() {
    let cases = [
        ("RTP/AVP", Transport::RtpAvp),
        ("rtp/avp", Transport::RtpAvp),
        ("RTP/AVPF", Transport::RtpAvpf),
        ("RTP/SAVP", Transport::RtpSavp),
        ("RTP/SAVPF", Transport::RtpSavpf),
        ("UDP/TLS/RTP/SAVP", Transport::UdpTlsRtpSavp),
        ("UDP/TLS/RTP/SAVPF", Transport::UdpTlsRtpSavpf),
        ("udptl", Transport::Udptl),
        ("UDPTL", Transport::Udptl),
        ("udp", Transport::Udp),
        ("UDP/BFCP", Transport::Udp),
        ("UDP/TLS/UDPTL", Transport::Udp),
        ("TCP/MSRP", Transport::Unsupported),
        ("TCP/RTP/AVP", Transport::Unsupported),
        ("RTP/XYZ", Transport::Unsupported),
        ("DCCP/RTP/AVP", Transport::Unsupported),
        ("é/x", Transport::Unsupported),
    ];
    for (proto, t) in cases {
        assert_eq!(Transport::of(proto), t, "{proto}");
    }
    assert!(Transport::RtpSavpf.is_secure() && !Transport::RtpAvpf.is_secure());
    assert!(Transport::UdpTlsRtpSavp.is_rtp() && !Transport::Udptl.is_rtp());
}

#[test]
fn sip_source_and_media_address() {
    let offer = text(&[
        "v=0",
        "o=- 1 1 IN IP4 192.168.1.23",
        "s=-",
        "c=IN IP4 192.168.1.23",
        "t=0 0",
        "m=audio 11780 RTP/AVP 0",
        "a=rtcp:11791 IN IP4 192.168.1.23",
    ]);
    let sdp = Sdp::parse_str(&offer).unwrap();
    let source = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77));
    let opts = PlanOptions {
        address: RemoteAddress::SipSource(source),
        ..PlanOptions::default()
    };
    let r = plan(&sdp, &opts).unwrap().entries()[0].remote().unwrap();
    assert_eq!(
        (r.rtp, r.rtcp),
        (
            sock("198.51.100.77:11780"),
            Some(sock("198.51.100.77:11791"))
        )
    );
    let opts = PlanOptions {
        media_address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))),
        ..opts
    };
    let r = plan(&sdp, &opts).unwrap().entries()[0].remote().unwrap();
    assert_eq!(r.rtp, sock("192.0.2.200:11780"));
    // A host name is usable only when it is not used.
    let named = offer.replace("c=IN IP4 192.168.1.23", "c=IN IP4 media.example.com");
    let sdp = Sdp::parse_str(&named).unwrap();
    assert_eq!(
        plan(&sdp, &PlanOptions::default()),
        Err(AnchorError::UnsupportedAddress { media: 0 })
    );
    assert!(plan(&sdp, &opts).is_ok());
}

mod inputs;
