//! Media anchoring end to end: the real `sbc` binary between a caller and a PBX written here on raw
//! UDP (SIP + SDP + RTP, `common/rtp.rs`), and a sipp run for port leaks. Each test uses its own
//! loopback addresses 127.22.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside SIP (and the media address when `media.address` is not set) |
//! | `.11:5080` | the SBC, inside SIP (workers on 5081, 5082) |
//! | `.21` | the SBC's media address (`media.address`) when set |
//! | `.2:5090` | the PBX; its RTP on `.2:6000` (RTCP 6001) |
//! | `.3:5070` | the caller; its RTP on `.3:7000` (RTCP 7001) |
//! | `.5` | the caller's real RTP source behind NAT (its SDP says 192.168.1.50) |
//! | `.7` | a stranger sending to the relay ports |
//! | `.3`-`.5`, `.2`/`.6`/`.7` `:5090` | leak test: sipp callers; sipp PBXs answering, busy, ringing |
//!
//! After every call the SBC is stopped and its exit counters must show no call, no media session and
//! no relay port left in use. Tests run on both drivers where a run costs a second or two.

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{finish, scenario, Sbc, TempDir};
use rtp::{
    counter, of_ssrc, rtcp_rr, sdp_body, send_streams, summary, udp, Caller, Got, Pbx, SdpSeen,
    Sink, Stream, Ua,
};
use sbc_sip::sdp::Direction;
use sbc_sip::Method;

/// Bound on every SIP exchange.
const T: Duration = Duration::from_secs(5);
/// How long sinks keep receiving after the last packet was sent.
const LINGER: Duration = Duration::from_millis(300);

const CALLER_SSRC: u32 = 0xCA11_E400;
const PBX_SSRC: u32 = 0x0BB0_0B00;

fn ip(n: u8, host: u8) -> String {
    format!("127.22.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// The `[media]` section: relay ports 20000-20399, `address` when given.
fn media_section(address: Option<&str>, no_media_secs: u32, latching: &str) -> String {
    let mut s = String::from("enabled = true\n");
    if let Some(a) = address {
        s.push_str(&format!("address = \"{a}\"\n"));
    }
    s.push_str(&format!(
        "port_min = 20000\nport_max = 20399\nno_media_timeout_secs = {no_media_secs}\n\
         latching = \"{latching}\"\n"
    ));
    s
}

/// The SBC of test `n`: every call from the outside goes to the PBX at `.2:5090`, unless `extra`
/// (more target groups and routes) routes it elsewhere; `inside` lists the inside target groups.
fn config(n: u8, workers: u8, media: &str, inside: &str, extra: &str) -> String {
    let out = ip(n, 1);
    format!(
        "workers = {workers}\n\
         [sip]\nudp = [\"{out}:5060\"]\ntcp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [{inside}]\n\
         [limits]\nmax_cps = 0\n\
         [media]\n{media}\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         {extra}\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n",
        ip(n, 11),
        ip(n, 2),
    )
}

fn start(n: u8, name: &str, driver: &str, media: &str) -> Sbc {
    let text = config(n, 2, media, "\"pbx\"", "");
    let sbc = Sbc::start_in(TempDir::new(name), driver, 5060, &text);
    let log = sbc.log_text();
    assert!(
        log.contains(&format!("transport driver: {driver}")),
        "not on the {driver} driver:\n{log}"
    );
    sbc
}

/// Assert that `seen` (the SDP one side received) names only the SBC: every `c=` is `media`, the
/// port is an even relay port, `a=rtcp` is absent or RTP + 1 on the SBC, no ICE attribute, and
/// none of `foreign` (the other side's addresses) appears anywhere. Returns the relay port.
fn assert_anchored(who: &str, seen: &SdpSeen, media: &str, foreign: &[&str], trace: &str) -> u16 {
    let ctx = || {
        format!(
            "SDP received by {who}:\n{}\n---- SIP trace\n{trace}",
            seen.text
        )
    };
    assert!(!seen.connections.is_empty(), "no c= line; {}", ctx());
    for c in &seen.connections {
        assert_eq!(c, media, "c= is not the SBC's media address; {}", ctx());
    }
    assert_eq!(seen.ip, Some(media.parse::<IpAddr>().unwrap()), "{}", ctx());
    let port = seen.port;
    assert!(
        (20000..=20398).contains(&port) && port % 2 == 0,
        "m= port {port} is not an even relay port of 20000-20399; {}",
        ctx()
    );
    if let Some((rtcp, addr)) = &seen.rtcp {
        assert_eq!(*rtcp, port + 1, "a=rtcp is not RTP + 1; {}", ctx());
        if let Some(a) = addr {
            assert_eq!(a, media, "a=rtcp address; {}", ctx());
        }
    }
    assert!(
        seen.ice.is_empty(),
        "ICE attributes left: {:?}; {}",
        seen.ice,
        ctx()
    );
    for f in foreign.iter().chain(&["198.51.100.7", "192.168.1.50"]) {
        assert!(!names_address(&seen.text, f), "{f} leaked; {}", ctx());
    }
    for w in seen
        .text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.parse::<std::net::Ipv4Addr>().is_ok())
    {
        assert_eq!(w, media, "an address other than the SBC's; {}", ctx());
    }
    port
}

/// Whether `text` has `ip` as a whole address (`127.22.1.2` is not in `127.22.1.21`).
fn names_address(text: &str, ip: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| w == ip)
}

/// Every RTP packet of `ssrc` with sequence numbers `first..first + count` arrived once, unchanged,
/// from `from`.
fn assert_stream(what: &str, got: &[Got], ssrc: u32, first: u16, count: u16, from: SocketAddr) {
    let pkts = of_ssrc(got, ssrc);
    let mut seqs: Vec<u16> = pkts.iter().map(|g| g.seq).collect();
    seqs.sort_unstable();
    let want: Vec<u16> = (0..count).map(|k| first.wrapping_add(k)).collect();
    assert_eq!(seqs, want, "{what}: sequence numbers; {}", summary(got));
    for g in pkts {
        assert_eq!(g.from, from, "{what}: source; {}", summary(got));
        assert!(g.intact, "{what}: packet changed: {g:?}");
    }
}

/// The exit counters that say nothing is left behind.
fn assert_clean_exit(log: &str) {
    for name in ["live_calls", "media_sessions", "media_ports_in_use"] {
        assert_eq!(counter(log, name), 0, "{name} at exit:\n{log}");
    }
}

/// A counter that is not part of the tested contract but guards a test against passing vacuously;
/// checked only when the SBC logs it.
fn counter_if_logged(log: &str, name: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("sbc stopped"))?;
    line.contains(&format!(" {name}: "))
        .then(|| counter(log, name))
}

fn traces(caller: &Ua, pbx: &Ua) -> String {
    format!(
        "==== caller\n{}==== pbx\n{}",
        caller.sip.trace(),
        pbx.sip.trace()
    )
}

/// A call set up through the SBC: the caller's offer and the PBX's answer, ACKed.
struct Call {
    caller: Caller,
    pbx: Pbx,
    /// What the PBX received (the INVITE's SDP) and what the caller received (the 200's SDP).
    offer: SdpSeen,
    answer: SdpSeen,
}

impl Call {
    fn trace(&self) -> String {
        traces(&self.caller, &self.pbx)
    }

    /// INVITE with `offer`, the PBX answers `answer`, ACK.
    fn setup(n: u8, offer: &str, answer: &str) -> Self {
        let mut caller = Ua::caller(sa(&ip(n, 3), 5070), sa(&ip(n, 1), 5060), "1000");
        let mut pbx = Ua::pbx(sa(&ip(n, 2), 5090));
        caller.send_invite(offer);
        let invite = pbx.answer_invite(T, |_| answer.to_owned());
        let ok = caller.finish_invite(T);
        let mut call = Self {
            offer: SdpSeen::of(&invite),
            answer: if ok.body().is_empty() {
                panic!(
                    "200 without SDP: {ok:?}\n{}{}",
                    caller.sip.trace(),
                    pbx.sip.trace()
                )
            } else {
                SdpSeen::of(&ok)
            },
            caller,
            pbx,
        };
        assert_eq!(ok.status(), Some(200), "{}", call.trace());
        call.pbx.expect_ack(T);
        call
    }

    /// Re-INVITE from the caller with `offer`; the PBX answers `answer`. Returns the SDP each got.
    fn reinvite(&mut self, offer: &str, answer: &str) -> (SdpSeen, SdpSeen) {
        self.caller.send_invite(offer);
        let invite = self.pbx.answer_invite(T, |_| answer.to_owned());
        let ok = self.caller.finish_invite(T);
        assert_eq!(ok.status(), Some(200), "{}", self.trace());
        self.pbx.expect_ack(T);
        (SdpSeen::of(&invite), SdpSeen::of(&ok))
    }

    /// BYE from the caller, through to the PBX, answered.
    fn hang_up(&mut self) {
        self.caller.send_bye();
        assert!(self.pbx.expect_bye(T).is_some(), "{}", self.trace());
        let r = self.caller.finish_bye(T);
        assert_eq!(r.status(), Some(200), "{}", self.trace());
        // The SBC answers the caller at once and ends the call when the PBX's 200 has arrived:
        // give it that moment before it is stopped and its live counters are read.
        std::thread::sleep(Duration::from_millis(300));
    }
}

// -------------------------------------------------------------------------------------------------
// 1. Basic call

/// A call with RTP both ways (50 packets each) and one RTCP report each way: the SDP on each side
/// names only the SBC (c=, m=, a=rtcp; ICE removed), every packet arrives unchanged from the port
/// the SBC announced to that side, and nothing is left at exit.
fn basic_call(n: u8, driver: &str) {
    let media = ip(n, 21);
    let sbc = start(
        n,
        &format!("media-basic-{driver}"),
        driver,
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let caller_rtcp = udp(&caller_ip, 7001);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let pbx_rtcp = udp(&pbx_ip, 6001);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", true),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", true),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    assert_ne!(port_a, port_b, "{trace}");
    assert_eq!(call.offer.direction, Direction::SendRecv, "{trace}");
    assert_eq!(call.answer.direction, Direction::SendRecv, "{trace}");

    let sinks = [&caller_rtp, &caller_rtcp, &pbx_rtp, &pbx_rtcp].map(Sink::spawn);
    send_streams(
        &[
            Stream {
                sock: &caller_rtp,
                to: sa(&media, port_a),
                ssrc: CALLER_SSRC,
                first_seq: 1000,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq: 5000,
            },
        ],
        50,
    );
    caller_rtcp
        .send_to(&rtcp_rr(CALLER_SSRC), sa(&media, port_a + 1))
        .unwrap();
    pbx_rtcp
        .send_to(&rtcp_rr(PBX_SSRC), sa(&media, port_b + 1))
        .unwrap();
    let [at_caller, at_caller_rtcp, at_pbx, at_pbx_rtcp] = sinks.map(|s| s.finish(LINGER));
    call.hang_up();
    let log = sbc.stop();

    assert_stream(
        "caller -> PBX",
        &at_pbx,
        CALLER_SSRC,
        1000,
        50,
        sa(&media, port_b),
    );
    assert_stream(
        "PBX -> caller",
        &at_caller,
        PBX_SSRC,
        5000,
        50,
        sa(&media, port_a),
    );
    assert!(
        at_pbx_rtcp
            .iter()
            .any(|g| g.rtcp && g.ssrc == CALLER_SSRC && g.from == sa(&media, port_b + 1)),
        "caller's RTCP not relayed to the PBX's RTCP port from the SBC's: {}",
        summary(&at_pbx_rtcp)
    );
    assert!(
        at_caller_rtcp
            .iter()
            .any(|g| g.rtcp && g.ssrc == PBX_SSRC && g.from == sa(&media, port_a + 1)),
        "PBX's RTCP not relayed to the caller's RTCP port from the SBC's: {}",
        summary(&at_caller_rtcp)
    );
    assert_clean_exit(&log);
    assert!(counter(&log, "media_forwarded") >= 102, "{log}");
}

#[test]
fn basic_call_relays_rtp_both_ways_io_uring() {
    basic_call(1, "io_uring");
}

#[test]
fn basic_call_relays_rtp_both_ways_epoll() {
    basic_call(2, "epoll");
}

// -------------------------------------------------------------------------------------------------
// 2. NAT

/// The caller's SDP says 192.168.1.50:7000, its RTP comes from 127.22.n.5: once it has sent, the
/// PBX's media reaches that real source. Media address left to its default (the outside address).
fn caller_behind_nat(n: u8, driver: &str) {
    let media = ip(n, 1);
    let sbc = start(
        n,
        &format!("media-nat-{driver}"),
        driver,
        &media_section(None, 60, "strict"),
    );
    let pbx_ip = ip(n, 2);
    let real = udp(&ip(n, 5), 7002);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, "192.168.1.50", 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&ip(n, 5)], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);

    let sinks = [&real, &pbx_rtp].map(Sink::spawn);
    let caller_stream = |first_seq| Stream {
        sock: &real,
        to: sa(&media, port_a),
        ssrc: CALLER_SSRC,
        first_seq,
    };
    // The caller speaks first (the SBC learns where it is), then both ways.
    send_streams(&[caller_stream(100)], 5);
    send_streams(
        &[
            caller_stream(105),
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq: 9000,
            },
        ],
        50,
    );
    let [at_real, at_pbx] = sinks.map(|s| s.finish(LINGER));
    call.hang_up();
    let log = sbc.stop();
    assert_stream(
        "caller (NAT) -> PBX",
        &at_pbx,
        CALLER_SSRC,
        100,
        55,
        sa(&media, port_b),
    );
    assert_stream(
        "PBX -> caller's real source",
        &at_real,
        PBX_SSRC,
        9000,
        50,
        sa(&media, port_a),
    );
    assert_clean_exit(&log);
}

#[test]
fn media_reaches_a_caller_behind_nat_io_uring() {
    caller_behind_nat(3, "io_uring");
}

#[test]
fn media_reaches_a_caller_behind_nat_epoll() {
    caller_behind_nat(4, "epoll");
}

// -------------------------------------------------------------------------------------------------
// 3. Strict latching

/// After both legs latched, strangers send to both relay ports (one from another host, one from the
/// caller's own IP on another port): strict mode forwards none of their packets, the call's streams
/// go on complete, and the drops are counted.
fn strict_source(n: u8, driver: &str) {
    let media = ip(n, 21);
    let sbc = start(
        n,
        &format!("media-strict-{driver}"),
        driver,
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let stranger = udp(&ip(n, 7), 7100);
    let neighbour = udp(&caller_ip, 7010);
    let stranger_b = udp(&ip(n, 7), 7102);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);

    let sinks = [&caller_rtp, &pbx_rtp, &stranger, &neighbour, &stranger_b].map(Sink::spawn);
    let legit = |first: u16| {
        [
            Stream {
                sock: &caller_rtp,
                to: sa(&media, port_a),
                ssrc: CALLER_SSRC,
                first_seq: 1000 + first,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq: 5000 + first,
            },
        ]
    };
    send_streams(&legit(0), 10);
    let [c, p] = legit(10);
    send_streams(
        &[
            c,
            p,
            Stream {
                sock: &stranger,
                to: sa(&media, port_a),
                ssrc: 0xBAD0_0001,
                first_seq: 1,
            },
            Stream {
                sock: &neighbour,
                to: sa(&media, port_a),
                ssrc: 0xBAD0_0002,
                first_seq: 1,
            },
            Stream {
                sock: &stranger_b,
                to: sa(&media, port_b),
                ssrc: 0xBAD0_0003,
                first_seq: 1,
            },
        ],
        40,
    );
    let [at_caller, at_pbx, at_stranger, at_neighbour, at_stranger_b] =
        sinks.map(|s| s.finish(LINGER));
    call.hang_up();
    let log = sbc.stop();
    let foreign = |g: &&Got| g.ssrc & 0xFFFF_0000 == 0xBAD0_0000;
    assert_eq!(
        at_pbx.iter().filter(foreign).count(),
        0,
        "strangers' packets reached the PBX: {}",
        summary(&at_pbx)
    );
    assert_eq!(
        at_caller.iter().filter(foreign).count(),
        0,
        "strangers' packets reached the caller: {}",
        summary(&at_caller)
    );
    for (who, got) in [
        ("stranger", &at_stranger),
        ("neighbour", &at_neighbour),
        ("stranger on leg B", &at_stranger_b),
    ] {
        assert!(
            got.is_empty(),
            "the call's media was sent to the {who}: {}",
            summary(got)
        );
    }
    assert_stream(
        "caller -> PBX",
        &at_pbx,
        CALLER_SSRC,
        1000,
        50,
        sa(&media, port_b),
    );
    assert_stream(
        "PBX -> caller",
        &at_caller,
        PBX_SSRC,
        5000,
        50,
        sa(&media, port_a),
    );
    assert_clean_exit(&log);
    assert!(
        counter(&log, "media_dropped") >= 120,
        "120 strangers' packets, dropped count:\n{log}"
    );
}

#[test]
fn strict_latching_drops_other_sources_io_uring() {
    strict_source(5, "io_uring");
}

#[test]
fn strict_latching_drops_other_sources_epoll() {
    strict_source(6, "epoll");
}

// -------------------------------------------------------------------------------------------------
// 4. No-media timeout

/// `no_media_timeout_secs = 2` and no RTP: the SBC ends the call with a BYE to each side within
/// a few seconds (not before the timeout), and frees everything.
#[test]
fn no_media_ends_the_call_with_bye_on_both_legs() {
    let n = 7;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-timeout",
        "io_uring",
        &media_section(Some(&media), 2, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let t0 = Instant::now();
    let (mut at_caller, mut at_pbx) = (None, None);
    while (at_caller.is_none() || at_pbx.is_none()) && t0.elapsed() < Duration::from_secs(8) {
        if at_caller.is_none() {
            if let Some(bye) = call.caller.expect_bye(Duration::from_millis(50)) {
                at_caller = Some((t0.elapsed(), bye));
            }
        }
        if at_pbx.is_none() {
            if let Some(bye) = call.pbx.expect_bye(Duration::from_millis(50)) {
                at_pbx = Some((t0.elapsed(), bye));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();
    let ctx = format!("{}\n---- sbc log\n{log}", call.trace());
    let (t_caller, bye) = at_caller.unwrap_or_else(|| panic!("no BYE to the caller; {ctx}"));
    assert_eq!(bye.call_id(), call.caller.call_id(), "{ctx}");
    let (t_pbx, _) = at_pbx.unwrap_or_else(|| panic!("no BYE to the PBX; {ctx}"));
    for (who, t) in [("caller", t_caller), ("PBX", t_pbx)] {
        assert!(
            t >= Duration::from_millis(1500) && t <= Duration::from_secs(6),
            "BYE to the {who} {t:?} after the ACK (timeout 2 s); {ctx}"
        );
    }
    assert_clean_exit(&log);
    assert!(counter(&log, "calls_ended") >= 1, "{log}");
    if let Some(ends) = counter_if_logged(&log, "media_no_media_ends") {
        assert_eq!(ends, 1, "{log}");
    }
}

/// The same 2 s timeout does not end a call whose media flows: 4 s of RTP both ways, no BYE.
#[test]
fn rtp_keeps_a_call_past_the_no_media_timeout() {
    let n = 8;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-alive",
        "io_uring",
        &media_section(Some(&media), 2, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    let sinks = [&caller_rtp, &pbx_rtp].map(Sink::spawn);
    send_streams(
        &[
            Stream {
                sock: &caller_rtp,
                to: sa(&media, port_a),
                ssrc: CALLER_SSRC,
                first_seq: 0,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq: 0,
            },
        ],
        200,
    );
    let [at_caller, at_pbx] = sinks.map(|s| s.finish(LINGER));
    let early_caller = call.caller.expect_bye(Duration::from_millis(10));
    let early_pbx = call.pbx.expect_bye(Duration::from_millis(10));
    assert!(
        early_caller.is_none() && early_pbx.is_none(),
        "call ended while RTP flowed; {}",
        call.trace()
    );
    call.hang_up();
    let log = sbc.stop();
    assert_eq!(
        of_ssrc(&at_pbx, CALLER_SSRC).len(),
        200,
        "{}",
        summary(&at_pbx)
    );
    assert_eq!(
        of_ssrc(&at_caller, PBX_SSRC).len(),
        200,
        "{}",
        summary(&at_caller)
    );
    assert_clean_exit(&log);
}

// -------------------------------------------------------------------------------------------------
// 5. Hold and resume

/// The caller puts the call on hold (re-INVITE a=sendonly) and resumes it (a=sendrecv): each
/// re-offer reaches the PBX with its direction, the SBC's address and the same relay port, each
/// answer the caller likewise, and media keeps flowing through the same ports.
fn hold_and_resume(n: u8, driver: &str) {
    let media = ip(n, 21);
    let sbc = start(
        n,
        &format!("media-hold-{driver}"),
        driver,
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    let from_caller = |first_seq| Stream {
        sock: &caller_rtp,
        to: sa(&media, port_a),
        ssrc: CALLER_SSRC,
        first_seq,
    };
    let from_pbx = |first_seq| Stream {
        sock: &pbx_rtp,
        to: sa(&media, port_b),
        ssrc: PBX_SSRC,
        first_seq,
    };
    let sinks = [&caller_rtp, &pbx_rtp].map(Sink::spawn);
    send_streams(&[from_caller(0), from_pbx(0)], 10);

    // Hold.
    let (offer, answer) = call.reinvite(
        &sdp_body("caller", 2, &caller_ip, 7000, "sendonly", false),
        &sdp_body("pbx", 2, &pbx_ip, 6000, "recvonly", false),
    );
    let trace = call.trace();
    assert_eq!(
        offer.direction,
        Direction::SendOnly,
        "hold offer at the PBX:\n{}\n{trace}",
        offer.text
    );
    assert_eq!(
        answer.direction,
        Direction::RecvOnly,
        "hold answer at the caller:\n{}\n{trace}",
        answer.text
    );
    assert_eq!(
        assert_anchored("the PBX (hold)", &offer, &media, &[&caller_ip], &trace),
        port_b,
        "relay port toward the PBX changed"
    );
    assert_eq!(
        assert_anchored("the caller (hold)", &answer, &media, &[&pbx_ip], &trace),
        port_a,
        "relay port toward the caller changed"
    );
    // On hold the caller still sends (sendonly).
    send_streams(&[from_caller(10)], 10);

    // Resume.
    let (offer, answer) = call.reinvite(
        &sdp_body("caller", 3, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 3, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    assert_eq!(
        offer.direction,
        Direction::SendRecv,
        "{}\n{trace}",
        offer.text
    );
    assert_eq!(
        answer.direction,
        Direction::SendRecv,
        "{}\n{trace}",
        answer.text
    );
    assert_eq!(
        assert_anchored("the PBX (resume)", &offer, &media, &[&caller_ip], &trace),
        port_b
    );
    assert_eq!(
        assert_anchored("the caller (resume)", &answer, &media, &[&pbx_ip], &trace),
        port_a
    );
    send_streams(&[from_caller(20), from_pbx(10)], 10);
    let [at_caller, at_pbx] = sinks.map(|s| s.finish(LINGER));
    call.hang_up();
    let log = sbc.stop();
    assert_stream(
        "caller -> PBX (before, on and after hold)",
        &at_pbx,
        CALLER_SSRC,
        0,
        30,
        sa(&media, port_b),
    );
    assert_stream(
        "PBX -> caller (before and after hold)",
        &at_caller,
        PBX_SSRC,
        0,
        20,
        sa(&media, port_a),
    );
    assert_clean_exit(&log);
}

#[test]
fn hold_and_resume_keep_the_relay_ports_io_uring() {
    hold_and_resume(9, "io_uring");
}

#[test]
fn hold_and_resume_keep_the_relay_ports_epoll() {
    hold_and_resume(10, "epoll");
}

/// Hold with UPDATE (RFC 3311) instead of re-INVITE: the offer reaches the PBX anchored with its
/// direction and the same relay port, the answer reaches the caller likewise.
#[test]
fn update_with_sdp_is_anchored() {
    let n = 12;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-update",
        "io_uring",
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    call.caller.send_request(
        "UPDATE",
        Some(&sdp_body("caller", 2, &caller_ip, 7000, "sendonly", true)),
    );
    let update = call.pbx.answer_request(
        &Method::Update,
        T,
        Some(&sdp_body("pbx", 2, &pbx_ip, 6000, "recvonly", false)),
    );
    let ok = call.caller.finish(T);
    let trace = call.trace();
    assert_eq!(ok.status(), Some(200), "{trace}");
    let (offer, answer) = (SdpSeen::of(&update), SdpSeen::of(&ok));
    assert_eq!(offer.direction, Direction::SendOnly, "{trace}");
    assert_eq!(answer.direction, Direction::RecvOnly, "{trace}");
    assert_eq!(
        assert_anchored("the PBX (UPDATE)", &offer, &media, &[&caller_ip], &trace),
        port_b
    );
    assert_eq!(
        assert_anchored(
            "the caller (200 UPDATE)",
            &answer,
            &media,
            &[&pbx_ip],
            &trace
        ),
        port_a
    );
    let sink = Sink::spawn(&pbx_rtp);
    send_streams(
        &[Stream {
            sock: &caller_rtp,
            to: sa(&media, port_a),
            ssrc: CALLER_SSRC,
            first_seq: 0,
        }],
        10,
    );
    let at_pbx = sink.finish(LINGER);
    call.hang_up();
    let log = sbc.stop();
    assert_stream(
        "caller -> PBX after UPDATE",
        &at_pbx,
        CALLER_SSRC,
        0,
        10,
        sa(&media, port_b),
    );
    assert_clean_exit(&log);
}

/// The PBX puts the caller on hold (re-INVITE from the inside leg): the caller gets the offer with
/// the SBC's address and its relay port, the PBX the answer with its own; media from the PBX goes
/// on; the PBX hangs up.
#[test]
fn hold_from_the_pbx_side_is_anchored() {
    let n = 13;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-pbx-hold",
        "epoll",
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    call.pbx
        .send_invite(&sdp_body("pbx", 2, &pbx_ip, 6000, "sendonly", true));
    let reinvite = call.caller.answer_invite(T, |_| {
        sdp_body("caller", 2, &caller_ip, 7000, "recvonly", false)
    });
    let ok = call.pbx.finish_invite(T);
    let trace = call.trace();
    assert_eq!(ok.status(), Some(200), "{trace}");
    call.caller.expect_ack(T);
    let (offer, answer) = (SdpSeen::of(&reinvite), SdpSeen::of(&ok));
    assert_eq!(offer.direction, Direction::SendOnly, "{trace}");
    assert_eq!(answer.direction, Direction::RecvOnly, "{trace}");
    assert_eq!(
        assert_anchored(
            "the caller (PBX's hold)",
            &offer,
            &media,
            &[&pbx_ip],
            &trace
        ),
        port_a
    );
    assert_eq!(
        assert_anchored(
            "the PBX (caller's answer)",
            &answer,
            &media,
            &[&caller_ip],
            &trace
        ),
        port_b
    );
    let sink = Sink::spawn(&caller_rtp);
    send_streams(
        &[Stream {
            sock: &pbx_rtp,
            to: sa(&media, port_b),
            ssrc: PBX_SSRC,
            first_seq: 0,
        }],
        10,
    );
    let at_caller = sink.finish(LINGER);
    call.pbx.send_bye();
    assert!(call.caller.expect_bye(T).is_some(), "{}", call.trace());
    assert_eq!(
        call.pbx.finish_bye(T).status(),
        Some(200),
        "{}",
        call.trace()
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();
    assert_stream(
        "PBX -> caller on hold",
        &at_caller,
        PBX_SSRC,
        0,
        10,
        sa(&media, port_a),
    );
    assert_clean_exit(&log);
}

/// A 183 with SDP (early media) reaches the caller anchored; the PBX's early RTP reaches the
/// caller; the 200 then names the same relay port.
#[test]
fn early_media_in_183_is_anchored() {
    let n = 14;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-early",
        "io_uring",
        &media_section(Some(&media), 60, "strict"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    caller.send_invite(&sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false));
    let (invite, from) = pbx.recv_invite(T);
    let answer = sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false);
    pbx.respond(&invite, from, 183, Some(&answer));
    let progress = caller
        .sip
        .recv_where(T, |m| m.status() == Some(183))
        .map(|(m, _)| m);
    let progress =
        progress.unwrap_or_else(|| panic!("no 183 at the caller\n{}", traces(&caller, &pbx)));
    assert!(
        !progress.body().is_empty(),
        "183 without SDP\n{}",
        traces(&caller, &pbx)
    );
    let offer = SdpSeen::of(&invite);
    let early = SdpSeen::of(&progress);
    let port_b = assert_anchored(
        "the PBX",
        &offer,
        &media,
        &[&caller_ip],
        &traces(&caller, &pbx),
    );
    let port_a = assert_anchored(
        "the caller (183)",
        &early,
        &media,
        &[&pbx_ip],
        &traces(&caller, &pbx),
    );
    let sink = Sink::spawn(&caller_rtp);
    send_streams(
        &[Stream {
            sock: &pbx_rtp,
            to: sa(&media, port_b),
            ssrc: PBX_SSRC,
            first_seq: 0,
        }],
        10,
    );
    let at_caller = sink.finish(LINGER);
    pbx.respond(&invite, from, 200, Some(&answer));
    let ok = caller.finish_invite(T);
    assert_eq!(ok.status(), Some(200), "{}", traces(&caller, &pbx));
    pbx.expect_ack(T);
    let fin = SdpSeen::of(&ok);
    assert_eq!(
        assert_anchored(
            "the caller (200)",
            &fin,
            &media,
            &[&pbx_ip],
            &traces(&caller, &pbx)
        ),
        port_a,
        "the 200 names another port than the 183"
    );
    let mut call = Call {
        caller,
        pbx,
        offer,
        answer: fin,
    };
    call.hang_up();
    let log = sbc.stop();
    assert_stream(
        "early media PBX -> caller",
        &at_caller,
        PBX_SSRC,
        0,
        10,
        sa(&media, port_a),
    );
    assert_clean_exit(&log);
}

/// `latching = "loose"`: a stranger's packets to the caller's relay port are forwarded, but do not
/// take the caller's stream (inside the learning window, the caller's exact SDP source outranks
/// it): the PBX's media still goes to the caller only.
#[test]
fn loose_latching_forwards_other_sources_without_following_them() {
    let n = 15;
    let media = ip(n, 21);
    let sbc = start(
        n,
        "media-loose",
        "io_uring",
        &media_section(Some(&media), 60, "loose"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let stranger = udp(&ip(n, 7), 7100);
    let mut call = Call::setup(
        n,
        &sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false),
        &sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false),
    );
    let trace = call.trace();
    let port_b = assert_anchored("the PBX", &call.offer, &media, &[&caller_ip], &trace);
    let port_a = assert_anchored("the caller", &call.answer, &media, &[&pbx_ip], &trace);
    let sinks = [&caller_rtp, &pbx_rtp, &stranger].map(Sink::spawn);
    let caller_s = |first_seq| Stream {
        sock: &caller_rtp,
        to: sa(&media, port_a),
        ssrc: CALLER_SSRC,
        first_seq,
    };
    let pbx_s = |first_seq| Stream {
        sock: &pbx_rtp,
        to: sa(&media, port_b),
        ssrc: PBX_SSRC,
        first_seq,
    };
    send_streams(&[caller_s(0), pbx_s(0)], 10);
    send_streams(
        &[
            caller_s(10),
            pbx_s(10),
            Stream {
                sock: &stranger,
                to: sa(&media, port_a),
                ssrc: 0xBAD0_0001,
                first_seq: 0,
            },
        ],
        20,
    );
    let [at_caller, at_pbx, at_stranger] = sinks.map(|s| s.finish(LINGER));
    call.hang_up();
    let log = sbc.stop();
    assert_stream(
        "stranger -> PBX (loose)",
        &at_pbx,
        0xBAD0_0001,
        0,
        20,
        sa(&media, port_b),
    );
    assert_stream(
        "caller -> PBX",
        &at_pbx,
        CALLER_SSRC,
        0,
        30,
        sa(&media, port_b),
    );
    assert_stream(
        "PBX -> caller",
        &at_caller,
        PBX_SSRC,
        0,
        30,
        sa(&media, port_a),
    );
    assert!(
        at_stranger.is_empty(),
        "the call's media went to the stranger: {}",
        summary(&at_stranger)
    );
    assert_clean_exit(&log);
}

// -------------------------------------------------------------------------------------------------
// 6. Leaks under load (sipp)

/// sipp on `local` running `scen`, killed after 60 s at the latest.
fn sipp(dir: &Path, scen: &str, local: (&str, u16), remote: Option<&str>, extra: &[&str]) -> Child {
    let port = local.1.to_string();
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "sipp", "-sf"])
        .arg(scenario(scen))
        .args(["-i", local.0, "-p", &port, "-nostdin", "-trace_err"])
        .args(["-timeout", "50s", "-timeout_error"]);
    if let Some(r) = remote {
        cmd.arg(r);
    }
    cmd.args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sipp: {e}"))
}

/// The sipp error logs in `dir`, at most a few KB each.
fn sipp_errors(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("_errors.log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let cut: String = text.chars().take(4000).collect();
            out.push_str(&format!("==== {name}\n{cut}\n"));
        }
    }
    out
}

/// 10,000 calls with SDP at about 500 calls/s: 8,000 answered and hung up by the caller, 1,000
/// refused with 486 by a busy PBX, 1,000 cancelled while ringing. Afterwards no call, no media
/// session and no relay port is left.
///
/// One worker: a released pair stays in quarantine for 5 s, so 500 calls/s with two pairs each
/// hold about 5,000 pairs; one worker owning the whole range (6,000 pairs) cannot run short
/// whichever way the kernel would have spread the callers over workers.
#[test]
fn no_port_leaks_after_10000_calls() {
    let n = 16;
    // The one caller holds hundreds of ringing calls at once when the machine is slow: past the
    // default share of relay pairs one outside source may hold unanswered (256 per worker).
    let media = "enabled = true\nport_min = 20000\nport_max = 31999\nno_media_timeout_secs = 60\n\
                 latching = \"strict\"\nearly_pairs_per_source = 4096\n";
    let group = |name: &str, host: u8| {
        format!(
            "[[target_group]]\nname = \"{name}\"\n\
             targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\n\
             options_interval_secs = 0\n",
            ip(n, host)
        )
    };
    let route = |name: &str, prefix: &str| {
        format!(
            "[[route]]\nname = \"to-{name}\"\nfrom = \"outside\"\nprefix = \"{prefix}\"\n\
             target_group = \"{name}\"\n"
        )
    };
    // One caller address places 400 calls/s held 100 ms: past the default limit of concurrent calls
    // from one untrusted address (`fraud.untrusted_max_calls`, 50) when the machine is slow.
    // The callers are load generators: trusted, with budgets far above its rate, so that a slow
    // machine's retransmissions never get it banned as a flood (the guard has its own tests).
    let extra = format!(
        "[fraud]\nuntrusted_max_calls = 0\n\
         [guard]\nallow = [\"{}\", \"{}\", \"{}\"]\n[guard.trusted]\ninvite = {{ rate = 100000, burst = 200000 }}\n\
         other = {{ rate = 400000, burst = 800000 }}\n{}{}{}{}",
        ip(n, 3),
        ip(n, 4),
        ip(n, 5),
        group("busy", 6),
        group("ring", 7),
        route("busy", "4"),
        route("ring", "5")
    );
    let text = config(n, 1, media, "\"pbx\", \"busy\", \"ring\"", &extra);
    let sbc = Sbc::start_in(TempDir::new("media-leaks"), "auto", 5060, &text);
    let dir = sbc.dir.path().to_owned();
    let target = format!("{}:5060", ip(n, 1));
    let (basic, busy, cancel) = ("8000", "1000", "1000");
    let uas = [
        sipp(
            &dir,
            "uas_basic.xml",
            (&ip(n, 2), 5090),
            None,
            &["-m", basic],
        ),
        sipp(&dir, "uas_486.xml", (&ip(n, 6), 5090), None, &["-m", busy]),
        sipp(
            &dir,
            "uas_ring_forever.xml",
            (&ip(n, 7), 5090),
            None,
            &["-m", cancel],
        ),
    ];
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let uac = [
        sipp(
            &dir,
            "uac_basic.xml",
            (&ip(n, 3), 5070),
            Some(&target),
            &["-s", "1000", "-m", basic, "-r", "400", "-d", "100"],
        ),
        sipp(
            &dir,
            "uac_expect_486.xml",
            (&ip(n, 4), 5070),
            Some(&target),
            &["-s", "4000", "-m", busy, "-r", "50"],
        ),
        sipp(
            &dir,
            "uac_cancel.xml",
            (&ip(n, 5), 5070),
            Some(&target),
            &["-s", "5000", "-m", cancel, "-r", "50"],
        ),
    ];
    let uac: Vec<_> = uac.into_iter().map(finish).collect();
    let uas: Vec<_> = uas.into_iter().map(finish).collect();
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let errors = sipp_errors(&dir);
    let log = sbc.stop();
    let stopped = log
        .lines()
        .filter(|l| l.contains("stopped"))
        .collect::<Vec<_>>()
        .join("\n");
    for (who, (status, err)) in [
        "uac basic",
        "uac 486",
        "uac cancel",
        "uas basic",
        "uas 486",
        "uas ring",
    ]
    .iter()
    .zip(uac.iter().chain(&uas))
    {
        assert!(
            status.success(),
            "sipp {who}: {status} {err}\n{errors}\n{stopped}"
        );
    }
    assert_clean_exit(&log);
    assert!(counter(&log, "calls_started") >= 10_000, "{stopped}");
    assert_eq!(counter(&log, "cps_refused"), 0, "{stopped}");
    // The SDP of every call was anchored: 10,000 offers and 8,000 answers.
    if let Some(rewritten) = counter_if_logged(&log, "media_sdp_rewritten") {
        assert!(rewritten >= 18_000, "{stopped}");
    }
    eprintln!("10,000 calls in {took:?}\n{stopped}");
}
