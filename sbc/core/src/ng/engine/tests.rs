//! The engine's tests, on the core's recording relay: every command, option and expiry.

use super::*;
use crate::media::testing::{callee_sdp, caller_sdp, rtp_packet, FakeMedia};
use crate::media::StreamStats as RelayStream;
use crate::ng::codec::{encode_request, ReceivedFrom, ReplyView, ResultCode};
use std::net::Ipv4Addr;

const MEDIA: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
/// Ports of the test relay: 30000..=30019, ten pairs.
const PORTS: usize = 20;

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn text(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

/// A reply, read back into owned values.
#[derive(Debug)]
struct Got {
    cookie: String,
    result: ResultCode,
    sdp: Option<String>,
    warning: Option<String>,
    error: Option<String>,
    created: Option<i64>,
    totals: Option<Totals>,
    calls: Vec<String>,
}

impl Got {
    fn sdp(&self) -> &str {
        assert_eq!(self.result, ResultCode::Ok, "{self:?}");
        self.sdp.as_deref().unwrap()
    }

    fn error(&self) -> &str {
        assert_eq!(self.result, ResultCode::Error, "{self:?}");
        self.error.as_deref().unwrap()
    }
}

fn read(raw: &[u8]) -> Got {
    let mut codec = Codec::default();
    let (cookie, view): (&[u8], ReplyView<'_>) = codec.parse_reply(raw).unwrap();
    let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    Got {
        cookie: String::from_utf8(cookie.to_vec()).unwrap(),
        result: view.result,
        sdp: s(view.sdp),
        warning: s(view.warning),
        error: s(view.error_reason),
        created: view.created,
        totals: view.totals,
        calls: view.calls.iter().map(|c| s(Some(c)).unwrap()).collect(),
    }
}

struct Bench {
    engine: NgEngine,
    relay: FakeMedia,
    now: Instant,
    source: SocketAddr,
    n: u32,
}

impl Bench {
    fn new() -> Self {
        Self::with(NgConfig::new(MEDIA), FakeMedia::new(30000, 30019))
    }

    fn with(config: NgConfig, relay: FakeMedia) -> Self {
        Self {
            engine: NgEngine::new(config),
            relay,
            now: t0(),
            source: sock("127.0.0.1:40000"),
            n: 0,
        }
    }

    fn raw(&mut self, datagram: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.engine
            .handle(&mut self.relay, datagram, self.source, self.now, &mut out);
        out
    }

    /// Send `req` under `cookie`; the raw reply.
    fn send_as(&mut self, cookie: &str, req: &Request<'_>) -> Vec<u8> {
        let mut datagram = Vec::new();
        encode_request(cookie.as_bytes(), req, &mut datagram);
        self.raw(&datagram)
    }

    /// Send `req` under a fresh cookie; the reply, checked to echo the cookie.
    fn send(&mut self, req: &Request<'_>) -> Got {
        self.n += 1;
        let cookie = format!("{}_{}", std::process::id(), self.n);
        let got = read(&self.send_as(&cookie, req));
        assert_eq!(got.cookie, cookie);
        got
    }

    fn later(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    fn streams(&self, call: &str) -> Vec<RelayStream> {
        let handle = self
            .engine
            .calls
            .get(call.as_bytes())
            .unwrap()
            .session
            .unwrap();
        self.relay.streams(handle)
    }
}

fn offer<'a>(call: &'a str, from: &'a str, sdp: &'a str) -> Request<'a> {
    let mut r = Request::new(Command::Offer);
    r.call_id = Some(call.as_bytes());
    r.from_tag = Some(from.as_bytes());
    r.sdp = Some(sdp.as_bytes());
    r
}

fn answer<'a>(call: &'a str, from: &'a str, to: &'a str, sdp: &'a str) -> Request<'a> {
    let mut r = Request::new(Command::Answer);
    r.call_id = Some(call.as_bytes());
    r.from_tag = Some(from.as_bytes());
    r.to_tag = Some(to.as_bytes());
    r.sdp = Some(sdp.as_bytes());
    r
}

fn delete<'a>(call: &'a str, from: Option<&'a str>, to: Option<&'a str>) -> Request<'a> {
    let mut r = Request::new(Command::Delete);
    r.call_id = Some(call.as_bytes());
    r.from_tag = from.map(str::as_bytes);
    r.to_tag = to.map(str::as_bytes);
    r
}

fn query(call: &str) -> Request<'_> {
    let mut r = Request::new(Command::Query);
    r.call_id = Some(call.as_bytes());
    r
}

/// The caller's offer and the callee's answer of call `c1`; the offer's and answer's SDP.
fn established(b: &mut Bench) -> (String, String) {
    let o = b
        .send(&offer("c1", "alice", &caller_sdp()))
        .sdp()
        .to_owned();
    let a = b
        .send(&answer("c1", "alice", "bob", &callee_sdp()))
        .sdp()
        .to_owned();
    (o, a)
}

#[test]
fn offer_answer_query_delete_with_exact_ports() {
    let mut b = Bench::new();
    let (o, a) = established(&mut b);
    // The offer goes to the callee: leg B's ports (the second pair); the o= line is kept.
    assert_eq!(
        o,
        text(&[
            "v=0",
            "o=alice 2890844526 2890844526 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30002 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendrecv",
        ])
    );
    // The answer goes to the caller: leg A's ports.
    assert_eq!(
        a,
        text(&[
            "v=0",
            "o=bob 1 1 IN IP4 10.0.0.2",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
        ])
    );
    let s = b.streams("c1")[0];
    assert_eq!(s.leg(MediaSide::A).ports.rtp(), 30000);
    assert_eq!(s.leg(MediaSide::B).ports.rtp(), 30002);
    assert_eq!(s.leg(MediaSide::A).rtp.sdp, Some(sock("198.51.100.7:4000")));
    assert_eq!(s.leg(MediaSide::B).rtp.sdp, Some(sock("10.0.0.2:6000")));

    // Media from the caller is counted (the binary's relay adapter checks, on the real relay,
    // that it reaches the callee from leg B's port).
    b.later(1);
    let pkt = rtp_packet(1);
    b.relay
        .receive(30000, sock("198.51.100.7:4000"), pkt.len(), b.now);
    let q = b.send(&query("c1"));
    assert_eq!(q.result, ResultCode::Ok, "{q:?}");
    let totals = q.totals.unwrap();
    assert_eq!(totals.rtp.packets, 1);
    assert_eq!(totals.rtp.bytes, pkt.len() as u64);
    assert_eq!(totals.rtcp, Counters::default());

    // The whole reply, for the tags and streams Kamailio and tools read.
    let mut raw = Vec::new();
    encode_request(b"full", &query("c1"), &mut raw);
    let reply = b.raw(&raw);
    let reply = String::from_utf8_lossy(&reply);
    for needle in [
        "5:alice",
        "3:bob",
        "16:in dialogue with3:bob",
        "10:local porti30000e",
        "10:local porti30003e",
        "4:type5:audio",
        "8:protocol7:RTP/AVP",
    ] {
        assert!(reply.contains(needle), "{needle} in {reply}");
    }

    let d = b.send(&delete("c1", Some("alice"), Some("bob")));
    assert_eq!(d.result, ResultCode::Ok, "{d:?}");
    assert_eq!(d.totals.unwrap().rtp.packets, 1);
    assert!(b.engine.is_empty());
    assert!(b.relay.sessions() == 0);
    assert_eq!(b.relay.ports_free(), PORTS);
    assert_eq!(b.engine.counters().calls_deleted, 1);
}

#[test]
fn repeated_offer_and_answer_reuse_the_session() {
    let mut b = Bench::new();
    let (o1, a1) = established(&mut b);
    b.later(2);
    // A re-INVITE from the caller (or the proxy retrying under a new cookie).
    let (o2, a2) = established(&mut b);
    assert_eq!((o1, a1), (o2, a2));
    assert_eq!(b.relay.allocated, 1);
    assert_eq!(b.relay.sessions(), 1);
    assert_eq!(b.engine.len(), 1);
}

#[test]
fn reoffer_from_the_callee_carries_leg_a_ports() {
    let mut b = Bench::new();
    established(&mut b);
    // The callee's re-INVITE: its tag in from-tag, its new address in the SDP.
    let moved = callee_sdp().replace("10.0.0.2", "10.0.0.3");
    let mut re = offer("c1", "bob", &moved);
    re.to_tag = Some(b"alice");
    let o = b.send(&re);
    assert!(o.sdp().contains("m=audio 30000 "), "{o:?}");
    let back = caller_sdp().replace("4000", "4002");
    let a = b.send(&answer("c1", "bob", "alice", &back));
    assert!(a.sdp().contains("m=audio 30002 "), "{a:?}");
    let s = b.streams("c1")[0];
    assert_eq!(s.leg(MediaSide::B).rtp.sdp, Some(sock("10.0.0.3:6000")));
    assert_eq!(s.leg(MediaSide::A).rtp.sdp, Some(sock("198.51.100.7:4002")));
    assert_eq!(b.relay.allocated, 1);
}

#[test]
fn retransmission_is_answered_from_the_cache() {
    let mut b = Bench::new();
    let sdp = caller_sdp();
    let first = b.send_as("77_1", &offer("c1", "alice", &sdp));
    b.later(1);
    let again = b.send_as("77_1", &offer("c1", "alice", &sdp));
    assert_eq!(first, again);
    assert_eq!(b.engine.counters().retransmissions, 1);
    assert_eq!(b.relay.allocated, 1);
    assert_eq!(b.engine.cached_replies(), 1);

    // The same cookie from another client is another request.
    b.source = sock("127.0.0.2:40000");
    let other = b.send_as("77_1", &offer("c1", "alice", &sdp));
    assert_eq!(read(&other).sdp, read(&first).sdp);
    assert_eq!(b.engine.counters().retransmissions, 1);

    // A delete retransmitted after the call is gone gets the first reply, not a warning.
    let d1 = b.send_as("77_2", &delete("c1", None, None));
    let d2 = b.send_as("77_2", &delete("c1", None, None));
    assert_eq!(d1, d2);
    assert_eq!(read(&d2).warning, None);

    // Cached replies expire.
    b.later(31);
    b.engine.handle_timeout(&mut b.relay, b.now);
    assert_eq!(b.engine.cached_replies(), 0);
}

#[test]
fn reply_cache_is_bounded() {
    let config = NgConfig {
        reply_cache: 3,
        ..NgConfig::new(MEDIA)
    };
    let mut b = Bench::with(config, FakeMedia::new(30000, 30019));
    for i in 0..10 {
        let call = format!("c{i}");
        b.send(&delete(&call, None, None));
    }
    assert_eq!(b.engine.cached_replies(), 3);
}

#[test]
fn answer_without_offer_is_an_unknown_call() {
    let mut b = Bench::new();
    let got = b.send(&answer("nope", "alice", "bob", &callee_sdp()));
    assert_eq!(got.error(), "Unknown call-id");
    assert!(b.relay.sessions() == 0);
}

#[test]
fn delete_of_an_unknown_call_warns_or_fails_when_fatal() {
    let mut b = Bench::new();
    let got = b.send(&delete("nope", Some("alice"), None));
    assert_eq!(got.result, ResultCode::Ok);
    assert_eq!(got.warning.as_deref(), Some(NOT_FOUND));
    let mut fatal = delete("nope", Some("alice"), None);
    fatal.flags.insert(Flag::Fatal);
    let got = b.send(&fatal);
    assert!(got.error().starts_with("Call-ID not found"), "{got:?}");
    assert_eq!(b.send(&query("nope")).error(), "Unknown call-id");
}

#[test]
fn delete_for_another_fork_branch_leaves_the_call() {
    let mut b = Bench::new();
    established(&mut b);
    // The 487 of a cancelled branch names a to-tag the call never saw.
    let got = b.send(&delete("c1", Some("alice"), Some("branch2")));
    assert_eq!(got.warning.as_deref(), Some(NOT_FOUND));
    assert_eq!(b.engine.len(), 1);
    // Unknown from-tag: no match either.
    b.send(&delete("c1", Some("mallory"), None));
    assert_eq!(b.engine.len(), 1);
    // The BYE from the callee names both tags the other way round.
    let got = b.send(&delete("c1", Some("bob"), Some("alice")));
    assert_eq!(got.warning, None);
    assert!(b.engine.is_empty());
}

#[test]
fn failure_before_any_answer_deletes_the_call() {
    let mut b = Bench::new();
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    // A 486 from the only branch: to-tag never seen, nobody answered.
    let got = b.send(&delete("c1", Some("alice"), Some("busy")));
    assert_eq!(got.warning, None, "{got:?}");
    assert!(b.engine.is_empty());
    assert_eq!(b.relay.ports_free(), PORTS);
}

#[test]
fn a_full_table_refuses_new_calls() {
    let config = NgConfig {
        max_calls: 2,
        ..NgConfig::new(MEDIA)
    };
    let mut b = Bench::with(config, FakeMedia::new(30000, 30019));
    let sdp = caller_sdp();
    b.send(&offer("c1", "a1", &sdp)).sdp();
    b.send(&offer("c2", "a2", &sdp)).sdp();
    let got = b.send(&offer("c3", "a3", &sdp));
    assert_eq!(got.error(), "Parallel session limit reached");
    assert_eq!(b.engine.counters().rejected_full, 1);
    // Known calls still work.
    b.send(&offer("c1", "a1", &sdp)).sdp();
    // Room again once a call is gone.
    b.send(&delete("c2", None, None));
    b.send(&offer("c3", "a3", &sdp)).sdp();
    assert_eq!(b.engine.len(), 2);
}

#[test]
fn running_out_of_ports_is_an_error_and_leaves_nothing() {
    let mut b = Bench::with(NgConfig::new(MEDIA), FakeMedia::new(30000, 30003));
    let sdp = caller_sdp();
    b.send(&offer("c1", "a1", &sdp)).sdp();
    let got = b.send(&offer("c2", "a2", &sdp));
    assert_eq!(got.error(), "Ran out of ports");
    assert_eq!(b.engine.len(), 1);
    assert_eq!(b.relay.allocation_failures, 1);
}

#[test]
fn idle_calls_expire_and_free_their_ports() {
    let mut b = Bench::new();
    let start = b.now;
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    b.send(&offer("c2", "carol", &caller_sdp())).sdp();
    assert_eq!(b.relay.ports_free(), PORTS - 8);
    assert_eq!(
        b.engine.poll_timeout(),
        Some(start + Duration::from_secs(60))
    );

    // Media on c2 keeps it alive; c1 has neither signal nor media.
    b.later(50);
    let ports = b.streams("c2")[0].leg(MediaSide::A).ports.rtp();
    let pkt = rtp_packet(1);
    b.relay
        .receive(ports, sock("198.51.100.7:4000"), pkt.len(), b.now);
    b.later(9);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 0);
    b.later(1);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 1);
    assert_eq!(b.engine.len(), 1);
    assert_eq!(b.engine.counters().calls_expired, 1);
    assert_eq!(b.send(&query("c1")).error(), "Unknown call-id");
    // c2's deadline moved to its last packet + 60 s.
    assert_eq!(
        b.engine.poll_timeout(),
        Some(start + Duration::from_secs(110))
    );
    b.later(50);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 1);
    assert!(b.engine.is_empty());
    assert_eq!(b.engine.poll_timeout(), None);
    assert_eq!(b.relay.ports_free(), PORTS);
}

#[test]
fn a_call_on_hold_gets_the_hold_timeout() {
    let mut b = Bench::new();
    let start = b.now;
    established(&mut b);
    let hold = caller_sdp().replace("a=sendrecv", "a=inactive");
    b.send(&offer("c1", "alice", &hold)).sdp();
    b.send(&answer(
        "c1",
        "alice",
        "bob",
        &callee_sdp().replace("t=0 0", "t=0 0\r\na=inactive"),
    ))
    .sdp();
    b.later(61);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 0);
    assert_eq!(
        b.engine.poll_timeout(),
        Some(start + Duration::from_secs(3600))
    );
    // Resumed: the short timeout again, from the resuming offer.
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    b.send(&answer("c1", "alice", "bob", &callee_sdp())).sdp();
    assert_eq!(
        b.engine.poll_timeout(),
        Some(b.now + Duration::from_secs(60))
    );
    b.later(60);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 1);
    assert_eq!(b.relay.ports_free(), PORTS);
}

#[test]
fn delete_delay_keeps_the_call_then_releases_it() {
    let mut b = Bench::new();
    established(&mut b);
    let mut d = delete("c1", None, None);
    d.delete_delay = Some(5);
    assert_eq!(b.send(&d).result, ResultCode::Ok);
    // Still relaying and queryable, no longer listed.
    assert_eq!(b.relay.sessions(), 1);
    assert_eq!(b.send(&query("c1")).result, ResultCode::Ok);
    assert!(b.send(&Request::new(Command::List)).calls.is_empty());
    b.later(4);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 0);
    b.later(1);
    assert_eq!(b.engine.handle_timeout(&mut b.relay, b.now), 1);
    assert!(b.engine.is_empty());
    assert_eq!(b.relay.ports_free(), PORTS);
    assert_eq!(b.engine.counters().calls_expired, 0);

    // The configured default applies when the request names none, capped by the maximum.
    let config = NgConfig {
        delete_delay: Duration::from_secs(30),
        max_delete_delay: Duration::from_secs(10),
        ..NgConfig::new(MEDIA)
    };
    let mut b = Bench::with(config, FakeMedia::new(30000, 30019));
    established(&mut b);
    b.send(&delete("c1", None, None));
    assert_eq!(
        b.engine.poll_timeout(),
        Some(b.now + Duration::from_secs(10))
    );
    // Offered again under its own tags, it revives.
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    assert_eq!(b.send(&Request::new(Command::List)).calls, ["c1"]);
}

#[test]
fn a_reoffer_with_more_streams_moves_to_a_larger_session() {
    let mut b = Bench::new();
    established(&mut b);
    let mut two = caller_sdp();
    two.push_str(&text(&[
        "m=video 4010 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
    ]));
    let o = b.send(&offer("c1", "alice", &two));
    // A new session: the next four pairs, streams in order, leg A then leg B.
    assert!(o.sdp().contains("m=audio 30006 "), "{o:?}");
    assert!(o.sdp().contains("m=video 30010 "), "{o:?}");
    assert_eq!(b.relay.sessions(), 2);
    let mut back = callee_sdp();
    back.push_str(&text(&["m=video 6010 RTP/AVP 96"]));
    let a = b.send(&answer("c1", "alice", "bob", &back));
    assert!(a.sdp().contains("m=audio 30004 "), "{a:?}");
    assert!(a.sdp().contains("m=video 30008 "), "{a:?}");
    // The old session is gone once answered.
    assert_eq!(b.relay.sessions(), 1);
    assert_eq!(b.relay.ports_free(), PORTS - 8);
    b.send(&delete("c1", None, None));
    assert_eq!(b.relay.ports_free(), PORTS);
}

#[test]
fn a_forked_answer_replaces_the_first() {
    let mut b = Bench::new();
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    b.send(&answer("c1", "alice", "early", &callee_sdp())).sdp();
    let other = callee_sdp().replace("10.0.0.2", "10.0.0.9");
    b.send(&answer("c1", "alice", "final", &other)).sdp();
    let s = b.streams("c1")[0];
    assert_eq!(s.leg(MediaSide::B).rtp.sdp, Some(sock("10.0.0.9:6000")));
    // The first branch's tag is no longer part of the call.
    b.send(&delete("c1", Some("alice"), Some("early")));
    assert_eq!(b.engine.len(), 1);
}

#[test]
fn malformed_datagrams_get_error_replies_or_nothing() {
    let mut b = Bench::new();
    // No cookie: nothing can be matched, nothing is sent.
    for raw in [
        &b""[..],
        b"nospace",
        b" d7:command4:pinge",
        b"\x01 d7:command4:pinge",
    ] {
        assert!(b.raw(raw).is_empty(), "{raw:?}");
    }
    assert_eq!(b.engine.counters().dropped, 4);
    let cases: [(&[u8], &str); 9] = [
        (b"c1 xyz", "Could not decode bencode dictionary"),
        (b"c1 le", "Could not decode bencode dictionary"),
        (b"c1 d3:foo3:bare", "No command in message"),
        (b"c1 d7:command3:fooe", "Unrecognized command"),
        (b"c1 d7:command5:offere", "No SDP body in message"),
        (b"c1 d7:command10:block DTMF7:call-id1:xe", "unsupported"),
        (
            b"c1 d7:command5:offer7:call-id1:x8:from-tag1:a3:sdp5:helloe",
            "Failed to parse SDP",
        ),
        (
            b"c1 d7:command5:offer7:call-id1:x8:from-tag0:3:sdp3:v=0e",
            "Empty Call-ID or tag",
        ),
        (
            b"c1 d7:command6:answer7:call-id1:x8:from-tag1:a3:sdp3:v=0e",
            "No to-tag in message",
        ),
    ];
    for (i, (raw, reason)) in cases.into_iter().enumerate() {
        // A cookie of its own each: offers with the same cookie would be retransmissions.
        b.source = SocketAddr::new(b.source.ip(), 41000 + i as u16);
        let got = read(&b.raw(raw));
        assert_eq!(got.cookie, "c1");
        assert!(got.error().starts_with(reason), "{got:?} for {raw:?}");
    }
    // A long Call-ID is refused, not stored.
    let long = "x".repeat(MAX_ID_LEN + 1);
    let got = b.send(&offer(&long, "alice", &caller_sdp()));
    assert_eq!(got.error(), "Call-ID or tag too long");
    // An SDP the relay cannot anchor.
    let multicast = caller_sdp().replace("198.51.100.7", "224.2.1.1");
    let got = b.send(&offer("c2", "alice", &multicast));
    assert!(got.error().starts_with("Unsupported SDP"), "{got:?}");
    assert!(b.engine.is_empty());
    assert!(b.relay.sessions() == 0);
    // Garbage of every length never panics and never leaves a call.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..300 {
        let mut raw = b"k ".to_vec();
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let alphabet = b"d7:command5:offerle0123456789:ie";
            raw.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let out = b.raw(&raw);
        assert!(out.starts_with(b"k "));
    }
    assert!(b.relay.sessions() == 0);
}

#[test]
fn a_reply_too_large_for_a_datagram_is_an_error() {
    let mut b = Bench::new();
    // A request near the size limit whose SDP the rewrite grows past one datagram: sixteen
    // c= lines with a short address, each rewritten to the relay's longer one.
    let mut big = caller_sdp().replace("198.51.100.7", "1.2.3.4");
    for k in 0..15 {
        big.push_str(&format!(
            "m=audio 0 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\na=x:{k}\r\n"
        ));
    }
    let size = |sdp: &str| {
        let mut raw = Vec::new();
        encode_request(b"big", &offer("c1", "alice", sdp), &mut raw);
        raw.len()
    };
    while size(&big) < 65_440 {
        big.push_str("a=x-pad:0123456789012345678901234567890123456789\r\n");
    }
    while size(&big) < 65_500 {
        big.push_str("a=x:0\r\n");
    }
    assert!(size(&big) <= 65_535);
    let got = b.send(&offer("c1", "alice", &big));
    assert_eq!(got.error(), "Reply too large for one datagram");
}

#[test]
fn ping_list_and_limit() {
    let mut b = Bench::new();
    assert_eq!(
        b.send(&Request::new(Command::Ping)).result,
        ResultCode::Pong
    );
    for i in 0..4 {
        let (call, tag) = (format!("call-{i}"), format!("t{i}"));
        b.send(&offer(&call, &tag, &caller_sdp())).sdp();
    }
    let mut all = b.send(&Request::new(Command::List)).calls;
    all.sort();
    assert_eq!(all, ["call-0", "call-1", "call-2", "call-3"]);
    let mut list = Request::new(Command::List);
    list.limit = Some(2);
    assert_eq!(b.send(&list).calls.len(), 2);
    assert_eq!(b.engine.release_all(&mut b.relay, b.now), 4);
    assert!(b.engine.is_empty());
    assert_eq!(b.relay.ports_free(), PORTS);
    assert!(b.send(&Request::new(Command::List)).calls.is_empty());
}

#[test]
fn ice_is_removed_unless_forced() {
    let mut b = Bench::new();
    let mut ice = caller_sdp();
    ice.push_str(&text(&[
        "a=ice-ufrag:abcd",
        "a=ice-pwd:0123456789012345678901",
        "a=candidate:1 1 UDP 2130706431 198.51.100.7 4000 typ host",
    ]));
    let got = b.send(&offer("c1", "alice", &ice));
    assert!(!got.sdp().contains("a=candidate"), "{got:?}");
    assert_eq!(got.warning, None);
    let mut forced = offer("c2", "carol", &ice);
    forced.ice = Some(Ice::Force);
    let got = b.send(&forced);
    assert!(got.sdp().contains("a=candidate:1 1 UDP"), "{got:?}");
    assert!(got.warning.unwrap().contains("ICE"));
}

#[test]
fn address_options_choose_the_remote() {
    let mut b = Bench::new();
    let private = caller_sdp().replace("198.51.100.7", "192.168.1.20");
    let mut o = offer("c1", "alice", &private);
    o.flags.insert(Flag::SipSourceAddress);
    o.received_from = Some(ReceivedFrom {
        family: Some(AddressFamily::Ip4),
        address: "198.51.100.99".parse().unwrap(),
    });
    b.send(&o).sdp();
    let s = b.streams("c1")[0];
    assert_eq!(
        s.leg(MediaSide::A).rtp.sdp,
        Some(sock("198.51.100.99:4000"))
    );

    // trust-address (the default) keeps the SDP's even with received-from.
    let mut o = offer("c2", "carol", &private);
    o.received_from = Some(ReceivedFrom {
        family: None,
        address: "198.51.100.99".parse().unwrap(),
    });
    b.send(&o).sdp();
    let s = b.streams("c2")[0];
    assert_eq!(s.leg(MediaSide::A).rtp.sdp, Some(sock("192.168.1.20:4000")));
    // and received-from ranks the SIP source's IP in the learning window (latching)
    let handle = b.engine.calls.get(&b"c2"[..]).unwrap().session.unwrap();
    let spec = b.relay.remote(handle, 0, MediaSide::A).unwrap();
    assert_eq!(spec.signal, Some("198.51.100.99".parse().unwrap()));

    // media-address overrides both.
    let mut o = offer("c3", "dave", &private);
    o.media_address = Some("198.51.100.50".parse().unwrap());
    b.send(&o).sdp();
    let s = b.streams("c3")[0];
    assert_eq!(
        s.leg(MediaSide::A).rtp.sdp,
        Some(sock("198.51.100.50:4000"))
    );
}

#[test]
fn replace_and_rtcp_options_edit_the_sdp() {
    let mut b = Bench::with(NgConfig::new(MEDIA), FakeMedia::new(30000, 30099));
    let base = caller_sdp();
    let mut o = offer("c1", "alice", &base);
    o.replace.insert(Replace::Origin);
    o.replace.insert(Replace::SessionConnection);
    let got = b.send(&o);
    assert!(
        got.sdp()
            .contains("o=alice 2890844526 2890844526 IN IP4 203.0.113.10"),
        "{got:?}"
    );

    // The relay's own o= per side, with a version that moves only on change.
    let base = caller_sdp();
    let mut o = offer("c2", "carol", &base);
    o.replace.insert(Replace::OriginFull);
    let first = b.send(&o).sdp().to_owned();
    let again = b.send(&o).sdp().to_owned();
    assert_eq!(first, again);
    assert!(first.contains("o=- "), "{first}");
    assert!(!first.contains("alice"), "{first}");

    // rtcp-mux demux: not offered onward.
    let mut muxed = caller_sdp();
    muxed.push_str("a=rtcp-mux\r\n");
    let mut o = offer("c3", "dave", &muxed);
    o.rtcp_mux.insert(RtcpMux::Demux);
    let got = b.send(&o);
    assert!(!got.sdp().contains("rtcp-mux"), "{got:?}");

    // rtcp-mux offer: offered onward, and kept out of the answer to a caller that did not ask.
    let base = caller_sdp();
    let mut o = offer("c4", "erin", &base);
    o.rtcp_mux.insert(RtcpMux::Offer);
    let got = b.send(&o);
    assert!(got.sdp().contains("a=rtcp-mux"), "{got:?}");
    let mut back = callee_sdp();
    back.push_str("a=rtcp-mux\r\n");
    let got = b.send(&answer("c4", "erin", "frank", &back));
    assert!(!got.sdp().contains("rtcp-mux"), "{got:?}");
    assert!(b.streams("c4")[0].leg(MediaSide::B).rtcp_mux);
    assert!(!b.streams("c4")[0].leg(MediaSide::A).rtcp_mux);

    // no-rtcp-attribute.
    let mut with_rtcp = caller_sdp();
    with_rtcp.push_str("a=rtcp:4001\r\n");
    let mut o = offer("c5", "gina", &with_rtcp);
    let got = b.send(&o);
    assert!(got.sdp().contains("a=rtcp:30019"), "{got:?}");
    o.call_id = Some(b"c6");
    o.flags.insert(Flag::NoRtcpAttribute);
    let got = b.send(&o);
    assert!(!got.sdp().contains("a=rtcp"), "{got:?}");
}

#[test]
fn query_reports_unix_times_from_the_wall_clock() {
    let mut b = Bench::new();
    b.engine
        .set_wall_clock(b.now, Duration::from_secs(1_700_000_000));
    b.later(3);
    b.send(&offer("c1", "alice", &caller_sdp())).sdp();
    let q = b.send(&query("c1"));
    assert_eq!(q.created, Some(1_700_000_003));
}

#[test]
fn labels_and_tags_are_reported() {
    let mut b = Bench::new();
    let base = caller_sdp();
    let mut o = offer("c1", "alice", &base);
    o.label = Some(b"caller");
    b.send(&o).sdp();
    let mut raw = Vec::new();
    encode_request(b"q", &query("c1"), &mut raw);
    let reply = b.raw(&raw);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("5:label6:caller"), "{reply}");
    // The callee has not signalled yet: only the caller's tag.
    assert!(!reply.contains("in dialogue with"), "{reply}");
}

/// SRTP bridging over ng (`transport-protocol`, see `ng::bridge`).
mod srtp_bridge {
    use super::*;
    use sbc_sip::sdp::sdes::{crypto_value, InlineKey};
    use sbc_sip::sdp::Crypto;

    const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

    /// The `a=crypto` lines of the first `m=` section: (tag, suite, key||salt).
    fn cryptos(sdp: &str) -> Vec<(u32, String, Vec<u8>)> {
        sdp.lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
            .map(|v| {
                let c = Crypto::parse(v).unwrap();
                let k = InlineKey::parse(c.key_params).unwrap();
                (c.tag, c.suite.to_owned(), k.key_salt)
            })
            .collect()
    }

    fn srtp_sdp(plain: &str, tag: u32, key: &[u8]) -> String {
        let line = format!("a=crypto:{}\r\n", crypto_value(tag, SUITE, key));
        format!("{}{line}", plain.replace("RTP/AVP", "RTP/SAVP"))
    }

    fn key(k: &crate::media::SrtpKey) -> (&str, &[u8]) {
        (&k.suite, &k.key_salt)
    }

    #[test]
    fn rtp_caller_to_srtp_callee_installs_both_stages_after_the_answer() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        let got = b.send(&o);
        assert_eq!(got.warning, None, "{got:?}");
        let to_bob = got.sdp().to_owned();
        assert!(to_bob.contains(" RTP/SAVP 0 101"), "{to_bob}");
        let lines = cryptos(&to_bob);
        assert_eq!(lines.len(), crate::media::sdes::SUITES.len(), "{to_bob}");
        assert_eq!((lines[0].0, lines[0].1.as_str()), (1, SUITE));
        assert_ne!(lines[0].2, lines[1].2, "a fresh key per suite");
        assert!(b.relay.srtp.is_empty(), "stages wait for the answer");

        // Bob keeps line 1 and sends with his own key.
        let bob_key = [7u8; 30];
        let ans = srtp_sdp(&callee_sdp(), 1, &bob_key);
        let to_alice = b.send(&answer("c1", "alice", "bob", &ans)).sdp().to_owned();
        assert!(to_alice.contains("m=audio 30000 RTP/AVP 0"), "{to_alice}");
        assert!(cryptos(&to_alice).is_empty(), "{to_alice}");

        let stages = &b.relay.srtp;
        assert_eq!(stages.len(), 2, "{stages:?}");
        let leg = |side: MediaSide| {
            stages
                .iter()
                .find(|s| s.2 == side && s.1 == 0)
                .and_then(|s| s.3.clone())
                .unwrap()
        };
        // Leg A (alice, plain): her RTP leaves toward bob protected with the key bob was given.
        let a = leg(MediaSide::A);
        assert!(a.unprotect.is_none());
        assert_eq!(key(a.protect.as_ref().unwrap()), (SUITE, &lines[0].2[..]));
        // Leg B (bob, SRTP): his SRTP is unprotected with his key and leaves in clear.
        let bb = leg(MediaSide::B);
        assert_eq!(key(bb.unprotect.as_ref().unwrap()), (SUITE, &bob_key[..]));
        assert!(bb.protect.is_none());
    }

    #[test]
    fn srtp_caller_to_rtp_callee_answers_the_callers_line_with_the_relays_key() {
        let mut b = Bench::new();
        let alice_key = [3u8; 30];
        let mut o_sdp = srtp_sdp(&caller_sdp(), 4, &alice_key);
        // A suite the relay does not do comes first: the first usable line is chosen.
        o_sdp.push_str(
            "a=crypto:5 F8_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n",
        );
        let mut o = offer("c1", "alice", &o_sdp);
        o.transport_protocol = Some(TransportProtocol::RtpAvp);
        let to_bob = b.send(&o).sdp().to_owned();
        assert!(
            to_bob.contains(" RTP/AVP 0 101") && cryptos(&to_bob).is_empty(),
            "{to_bob}"
        );
        let to_alice = b
            .send(&answer("c1", "alice", "bob", &callee_sdp()))
            .sdp()
            .to_owned();
        assert!(to_alice.contains(" RTP/SAVP 0"), "{to_alice}");
        let lines = cryptos(&to_alice);
        assert_eq!(lines.len(), 1, "{to_alice}");
        assert_eq!((lines[0].0, lines[0].1.as_str()), (4, SUITE));
        assert_ne!(lines[0].2, alice_key);

        let stages = &b.relay.srtp;
        let a = stages.iter().find(|s| s.2 == MediaSide::A).unwrap();
        let a = a.3.clone().unwrap();
        assert_eq!(key(a.unprotect.as_ref().unwrap()), (SUITE, &alice_key[..]));
        assert!(a.protect.is_none());
        let bb = stages.iter().find(|s| s.2 == MediaSide::B).unwrap();
        let bb = bb.3.clone().unwrap();
        assert!(bb.unprotect.is_none());
        assert_eq!(key(bb.protect.as_ref().unwrap()), (SUITE, &lines[0].2[..]));
    }

    #[test]
    fn sdes_options_filter_the_offered_suites_or_turn_sdes_off() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        o.sdes = vec![b"only-AES_CM_128_HMAC_SHA1_80"];
        let sdp = b.send(&o).sdp().to_owned();
        let lines = cryptos(&sdp);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1, SUITE);

        o.call_id = Some(b"c2");
        o.sdes = vec![b"no-AES_CM_128_HMAC_SHA1_80", b"no-AEAD_AES_256_GCM"];
        let sdp = b.send(&o).sdp().to_owned();
        let suites: Vec<String> = cryptos(&sdp).into_iter().map(|c| c.1).collect();
        assert_eq!(suites.len(), crate::media::sdes::SUITES.len() - 2);
        assert!(!suites.iter().any(|s| s == SUITE || s == "AEAD_AES_256_GCM"));

        o.call_id = Some(b"c3");
        o.sdes = vec![b"only-F8_128_HMAC_SHA1_80"];
        assert!(b.send(&o).error().contains("exclude"));

        o.call_id = Some(b"c4");
        o.sdes = vec![b"off"];
        let got = b.send(&o);
        assert!(got.warning.as_deref().unwrap_or("").contains("SDES-off"));
        let sdp = got.sdp();
        assert!(
            sdp.contains(" RTP/AVP 0 101") && cryptos(sdp).is_empty(),
            "{sdp}"
        );
    }

    #[test]
    fn an_srtp_answer_without_a_usable_line_is_refused_and_installs_nothing() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        b.send(&o).sdp();
        // Bob answers with a tag the relay did not offer.
        let ans = srtp_sdp(&callee_sdp(), 9, &[7u8; 30]);
        let got = b.send(&answer("c1", "alice", "bob", &ans));
        assert!(got.error().contains("SRTP"), "{got:?}");
        assert!(b.relay.srtp.is_empty());
        // Plain RTP from a side that must speak SRTP: refused too.
        let got = b.send(&answer("c1", "alice", "bob", &callee_sdp()));
        assert!(got.error().contains("SRTP"), "{got:?}");
    }

    #[test]
    fn a_reoffer_from_the_srtp_side_keeps_the_bridge_and_the_keys() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        let to_bob = b.send(&o).sdp().to_owned();
        let relay_key = cryptos(&to_bob)[0].2.clone();
        let bob_key = [7u8; 30];
        let bob_sdp = srtp_sdp(&callee_sdp(), 1, &bob_key);
        b.send(&answer("c1", "alice", "bob", &bob_sdp)).sdp();
        assert_eq!(b.relay.srtp.len(), 2);

        // Bob re-offers (a re-INVITE) with the same key; no transport-protocol this time.
        let to_alice = b.send(&offer("c1", "bob", &bob_sdp)).sdp().to_owned();
        assert!(to_alice.contains(" RTP/AVP 0") && cryptos(&to_alice).is_empty());
        let back = b
            .send(&answer("c1", "bob", "alice", &caller_sdp()))
            .sdp()
            .to_owned();
        let lines = cryptos(&back);
        assert_eq!(lines.len(), 1, "{back}");
        assert_eq!(
            (lines[0].0, &lines[0].2),
            (1, &relay_key),
            "the relay's key is kept"
        );
        assert!(back.contains(" RTP/SAVP 0"));
        assert_eq!(
            b.relay.srtp.len(),
            2,
            "same keys: the stages are not replaced"
        );
    }

    #[test]
    fn a_reoffer_asking_the_sdps_own_protocol_ends_the_bridge_and_its_stages() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        let first_key = cryptos(b.send(&o).sdp())[0].2.clone();
        let bob_sdp = srtp_sdp(&callee_sdp(), 1, &[7u8; 30]);
        b.send(&answer("c1", "alice", "bob", &bob_sdp)).sdp();
        assert_eq!(b.relay.srtp.len(), 2);

        // Alice re-offers plain RTP for both sides: both legs relay plain again, at once.
        o.transport_protocol = Some(TransportProtocol::RtpAvp);
        let to_bob = b.send(&o).sdp().to_owned();
        assert!(to_bob.contains(" RTP/AVP 0 101") && cryptos(&to_bob).is_empty());
        let reset: Vec<_> = b.relay.srtp[2..]
            .iter()
            .map(|s| (s.2, s.3.clone()))
            .collect();
        assert_eq!(reset, [(MediaSide::A, None), (MediaSide::B, None)]);
        let back = b
            .send(&answer("c1", "alice", "bob", &callee_sdp()))
            .sdp()
            .to_owned();
        assert!(back.contains(" RTP/AVP 0") && cryptos(&back).is_empty());
        assert_eq!(b.relay.srtp.len(), 4, "a plain answer gives no stage");

        // Bridged again: fresh keys, stages given again.
        o.transport_protocol = Some(TransportProtocol::RtpSavp);
        let again = cryptos(b.send(&o).sdp())[0].2.clone();
        assert_ne!(again, first_key);
        b.send(&answer("c1", "alice", "bob", &bob_sdp)).sdp();
        assert_eq!(b.relay.srtp.len(), 6);
    }

    #[test]
    fn the_same_protocol_is_not_bridged_and_dtls_is_a_warning() {
        let mut b = Bench::new();
        let caller = caller_sdp();
        let mut o = offer("c1", "alice", &caller);
        o.transport_protocol = Some(TransportProtocol::RtpAvp);
        let got = b.send(&o);
        assert_eq!(got.warning, None);
        assert!(cryptos(got.sdp()).is_empty());
        b.send(&answer("c1", "alice", "bob", &callee_sdp())).sdp();
        assert!(b.relay.srtp.is_empty());
        o.call_id = Some(b"c2");
        o.transport_protocol = Some(TransportProtocol::UdpTlsRtpSavp);
        let got = b.send(&o);
        assert!(got.warning.unwrap().contains("not supported"));
    }
}
