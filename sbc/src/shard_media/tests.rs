//! The core's anchoring and ng paths run against the real relay shard: what the core's tests check
//! on a recording double (the remote given to the relay, a packet counted) is checked here on the
//! relay's latches and packet decisions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use media_plane::{Action, MediaShard, ShardConfig};
use sbc_core::media::anchor::{plan, rewrite, OriginState, PlanOptions, RewriteOptions};
use sbc_core::media::testing::{
    audio_video_offer, callee_sdp, caller_sdp, rtp_packet, t38_reinvite, video_rejecting_answer,
    zero_address_offer,
};
use sbc_core::media::{MediaControl, MediaError, MediaSide, SessionHandle};
use sbc_core::ng::codec::{encode_request, Codec, Command, Request, ResultCode, Totals};
use sbc_core::ng::{NgConfig, NgEngine};
use sbc_sip::sdp::Sdp;

use super::{session, side, ShardMedia};

const MEDIA: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
/// Ports of the test shard: 30000..=30019, ten pairs.
const PORTS: usize = 20;

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn relay(min: u16, max: u16) -> ShardMedia {
    ShardMedia::new(MediaShard::new(ShardConfig::new(min, max)).unwrap())
}

/// The SDP address the relay's latch holds for the RTP of `side` in `stream`.
fn latch_sdp(m: &ShardMedia, h: SessionHandle, stream: usize, s: MediaSide) -> Option<SocketAddr> {
    m.shard().streams(session(h)).unwrap()[stream]
        .leg(side(s))
        .rtp_latch()
        .sdp()
}

#[test]
fn audio_video_offer_and_answer_on_the_real_relay() {
    let now = t0();
    let mut m = relay(30000, 30099);
    let offer = audio_video_offer();
    let mut sdp = Sdp::parse_str(&offer).unwrap();
    let p = plan(&sdp, &PlanOptions::default()).unwrap();
    let h = m.allocate(now, p.stream_count()).unwrap();
    p.set_remotes(&mut m, h, MediaSide::A, now).unwrap();
    assert_eq!(
        latch_sdp(&m, h, 1, MediaSide::A),
        Some(sock("10.1.0.7:5006"))
    );
    let streams = m.shard().streams(session(h)).unwrap();
    assert_eq!(
        (streams[0].clock_rate(), streams[1].clock_rate()),
        (8000, 90000)
    );
    let ports = p.local_ports(&m, h, MediaSide::B).unwrap();
    rewrite(
        &mut sdp,
        MEDIA,
        &ports,
        &mut OriginState::new(1, 1),
        &RewriteOptions::default(),
    )
    .unwrap();
    let out = sdp.to_string();
    assert!(out.contains("m=audio 30002 RTP/AVP 9 0 101"), "{out}");
    assert!(out.contains("m=video 30006 RTP/AVP 96"), "{out}");

    let answer = video_rejecting_answer();
    let sdp = Sdp::parse_str(&answer).unwrap();
    let p = plan(&sdp, &PlanOptions::default()).unwrap();
    p.set_remotes(&mut m, h, MediaSide::B, now).unwrap();
    assert_eq!(
        latch_sdp(&m, h, 0, MediaSide::B),
        Some(sock("172.16.0.5:40000"))
    );
    assert_eq!(
        latch_sdp(&m, h, 1, MediaSide::B),
        None,
        "the rejected video"
    );
    let ports = p.local_ports(&m, h, MediaSide::A).unwrap();
    assert_eq!(ports[0].map(|p| p.rtp()), Some(30000));
    assert_eq!(ports[1], None);
    // Teardown is the relay's: the handle dies with the session.
    m.release(h, now).unwrap();
    assert_eq!(
        p.set_remotes(&mut m, h, MediaSide::B, now),
        Err(MediaError::UnknownSession)
    );
    assert_eq!(m.ports_free(), 100);
}

#[test]
fn a_zero_address_gives_the_real_relay_no_destination() {
    let now = t0();
    let offer = zero_address_offer();
    let p = plan(&Sdp::parse_str(&offer).unwrap(), &PlanOptions::default()).unwrap();
    let mut m = relay(30000, 30099);
    let h = m.allocate(now, 1).unwrap();
    p.set_remotes(&mut m, h, MediaSide::A, now).unwrap();
    assert_eq!(latch_sdp(&m, h, 0, MediaSide::A), None);
}

#[test]
fn t38_datagrams_pass_the_real_relay_as_opaque_udp() {
    let input = t38_reinvite();
    let p = plan(&Sdp::parse_str(&input).unwrap(), &PlanOptions::default()).unwrap();
    let t = t0();
    let mut m = relay(30000, 30019);
    let h = m.allocate(t, p.stream_count()).unwrap();
    p.set_remotes(&mut m, h, MediaSide::A, t).unwrap();
    p.set_remotes(&mut m, h, MediaSide::B, t).unwrap();
    let port = m.local_ports(h, 1, MediaSide::A).unwrap().rtp();
    // UDPTL: a sequence number and an IFP packet, not an RTP header.
    let mut udptl = [0x00, 0x01, 0x06, 0x00, 0x10, 0x44];
    assert!(matches!(
        m.shard_mut()
            .on_packet(port, sock("192.0.2.9:4000"), &mut udptl, t),
        Action::Forward { .. }
    ));
}

/// An ng engine over a real relay of ten pairs.
struct Ng {
    engine: NgEngine,
    relay: ShardMedia,
    now: Instant,
    /// Requests sent: each gets its own cookie (a repeated one is answered from the reply cache).
    sent: u32,
}

impl Ng {
    fn new() -> Self {
        Self {
            engine: NgEngine::new(NgConfig::new(MEDIA)),
            relay: relay(30000, 30019),
            now: t0(),
            sent: 0,
        }
    }

    /// Send `req`; the result, and the totals when the reply has some.
    fn send(&mut self, req: &Request<'_>) -> (ResultCode, Option<Totals>) {
        self.sent += 1;
        let mut datagram = Vec::new();
        encode_request(format!("c{}", self.sent).as_bytes(), req, &mut datagram);
        let mut out = Vec::new();
        self.engine.handle(
            &mut self.relay,
            &datagram,
            sock("127.0.0.1:40000"),
            self.now,
            &mut out,
        );
        let mut codec = Codec::default();
        let (_, view) = codec.parse_reply(&out).unwrap();
        (view.result, view.totals)
    }

    fn offer(&mut self, call: &str, from: &str) {
        let sdp = caller_sdp();
        let mut r = Request::new(Command::Offer);
        r.call_id = Some(call.as_bytes());
        r.from_tag = Some(from.as_bytes());
        r.sdp = Some(sdp.as_bytes());
        assert_eq!(self.send(&r).0, ResultCode::Ok);
    }

    fn answer(&mut self, call: &str, from: &str, to: &str) {
        let sdp = callee_sdp();
        let mut r = Request::new(Command::Answer);
        r.call_id = Some(call.as_bytes());
        r.from_tag = Some(from.as_bytes());
        r.to_tag = Some(to.as_bytes());
        r.sdp = Some(sdp.as_bytes());
        assert_eq!(self.send(&r).0, ResultCode::Ok);
    }
}

#[test]
fn ng_media_is_relayed_counted_and_freed_on_the_real_relay() {
    let mut ng = Ng::new();
    ng.offer("c1", "alice");
    ng.answer("c1", "alice", "bob");
    // Media from the caller reaches the callee from leg B's port, and is counted.
    ng.now += Duration::from_secs(1);
    let mut pkt = rtp_packet(1);
    let action = ng
        .relay
        .shard_mut()
        .on_packet(30000, sock("198.51.100.7:4000"), &mut pkt, ng.now);
    assert_eq!(
        action,
        Action::Forward {
            from_port: 30002,
            to: sock("10.0.0.2:6000"),
            len: pkt.len()
        }
    );
    let mut query = Request::new(Command::Query);
    query.call_id = Some(b"c1");
    let (result, totals) = ng.send(&query);
    assert_eq!(result, ResultCode::Ok);
    let totals = totals.unwrap();
    assert_eq!(totals.rtp.packets, 1);
    assert_eq!(totals.rtp.bytes, pkt.len() as u64);

    let mut delete = Request::new(Command::Delete);
    delete.call_id = Some(b"c1");
    delete.from_tag = Some(b"alice");
    delete.to_tag = Some(b"bob");
    let (result, totals) = ng.send(&delete);
    assert_eq!(result, ResultCode::Ok);
    assert_eq!(totals.unwrap().rtp.packets, 1);
    assert!(ng.relay.shard().is_empty());
    assert_eq!(ng.relay.ports_free(), PORTS);
}

#[test]
fn ng_media_on_the_real_relay_keeps_a_call_alive() {
    let mut ng = Ng::new();
    let start = ng.now;
    ng.offer("c1", "alice");
    ng.offer("c2", "carol");
    assert_eq!(ng.relay.ports_free(), PORTS - 8);
    // Media on c2 keeps it alive; c1 has neither signal nor media.
    ng.now += Duration::from_secs(50);
    let port = ng.relay.shard().streams(ng_session(&ng.relay, 1)).unwrap()[0]
        .leg(side(MediaSide::A))
        .ports()
        .rtp();
    let mut pkt = rtp_packet(1);
    let _ = ng
        .relay
        .shard_mut()
        .on_packet(port, sock("198.51.100.7:4000"), &mut pkt, ng.now);
    ng.now += Duration::from_secs(10);
    assert_eq!(ng.engine.handle_timeout(&mut ng.relay, ng.now), 1);
    assert_eq!(ng.engine.len(), 1);
    assert_eq!(ng.relay.ports_free(), PORTS - 4);
    assert_eq!(
        ng.engine.poll_timeout(),
        Some(start + Duration::from_secs(110))
    );
    ng.now += Duration::from_secs(50);
    assert_eq!(ng.engine.handle_timeout(&mut ng.relay, ng.now), 1);
    assert_eq!(ng.relay.ports_free(), PORTS);
}

/// The shard's handle of the `n`-th session allocated on a fresh shard (slots in order).
fn ng_session(m: &ShardMedia, n: u64) -> media_plane::SessionHandle {
    let h = media_plane::SessionHandle::from_bits(n);
    assert!(m.shard().streams(h).is_ok());
    h
}
