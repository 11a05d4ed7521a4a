//! The media guards end to end: the real `sbc` binary between callers and PBXs written here on raw
//! UDP (`common/rtp.rs`). Each test uses its own loopback addresses 127.33.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside SIP; `.1:2223` its ng control socket |
//! | `.11:5080` | the SBC, inside SIP |
//! | `.21` | the SBC's media address |
//! | `.2:5090` | the PBX of numbers `1...`; its RTP on `.2:6000` |
//! | `.6:5090` | the PBX of numbers `2...` (the legitimate call's); its RTP on `.6:6000` |
//! | `.3:5070` | the caller (or the flooder); its RTP on `.3:7000`, `.3:7002` |
//! | `.4:5070` | the legitimate caller; its RTP on `.4:7000` |
//! | `.5`, `.7` | ng clients; `.7` also a stranger spraying the relay ports |

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use rtp::{
    counter, of_ssrc, sdp_body, send_streams, summary, udp, Caller, Pbx, SdpSeen, Sink, Stream, Ua,
};
use sbc_sip::{Message, Method};

/// Bound on every SIP exchange.
const T: Duration = Duration::from_secs(5);
/// How long sinks keep receiving after the last packet was sent.
const LINGER: Duration = Duration::from_millis(300);

const CALLER_SSRC: u32 = 0xCA11_E400;
const PBX_SSRC: u32 = 0x0BB0_0B00;
const SPRAY_SSRC: u32 = 0xBAD0_0BAD;

fn ip(n: u8, host: u8) -> String {
    format!("127.33.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// The SBC of test `n` on one worker: calls to `1...` go to the PBX at `.2:5090`, calls to `2...`
/// to the one at `.6:5090`; `media` is added to the `[media]` section (media address `.21`, relay
/// ports 20000-20095: 48 pairs).
fn start(n: u8, name: &str, media: &str) -> Sbc {
    let text = format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\", \"pbx2\"]\n\
         [limits]\nmax_cps = 0\n\
         [media]\nenabled = true\naddress = \"{media_ip}\"\nport_min = 20000\nport_max = 20095\n\
         {media}\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[target_group]]\nname = \"pbx2\"\n\
         targets = [{{ address = \"{pbx2}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"legit\"\nfrom = \"outside\"\nprefix = \"2\"\ntarget_group = \"pbx2\"\n\
         [[route]]\nname = \"rest\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n",
        out = ip(n, 1),
        inside = ip(n, 11),
        media_ip = ip(n, 21),
        pbx = ip(n, 2),
        pbx2 = ip(n, 6),
    );
    Sbc::start_in(TempDir::new(name), "epoll", 5060, &text)
}

/// An SDP offer with `count` audio streams from `ip`, ports 4000, 4002, ...
fn many_streams(ip: &str, count: u16) -> String {
    let mut s = format!("v=0\r\no=f 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n");
    for k in 0..count {
        s.push_str(&format!(
            "m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            4000 + 2 * k
        ));
    }
    s
}

/// A fresh INVITE (new Call-ID, tags, branch) from `local` to number `called` at `sbc`.
fn invite(local: SocketAddr, sbc: SocketAddr, called: &str, i: u32, body: &str) -> Vec<u8> {
    format!(
        "INVITE sip:{called}@{sbc} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKflood{i}x{pid};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:flood@{local}>;tag=fl{i}\r\n\
         To: <sip:{called}@{sbc}>\r\n\
         Call-ID: flood-{i}-{pid}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:flood@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len(),
        pid = std::process::id(),
    )
    .into_bytes()
}

/// A response to `req` with no body.
fn respond(sock: &UdpSocket, req: &Message, to: SocketAddr, code: u16, extra: &str) {
    let mut out = Vec::new();
    let reason = sbc_sip::build::reason_phrase(code);
    let mut w = sbc_sip::build::response(req, code, reason, Some("pbxtag"), &mut out);
    if !extra.is_empty() {
        w.header("Proxy-Authenticate", extra);
    }
    w.finish(None, b"");
    sock.send_to(&out, to).unwrap();
}

/// Every SIP message that reaches `sock` within `wait`, with its source.
fn each_message(sock: &UdpSocket, wait: Duration, mut f: impl FnMut(Message, SocketAddr)) {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Ok(m) = Message::parse(bytes::Bytes::copy_from_slice(&buf[..len])) {
            f(m, from);
        }
    }
}

/// What the flooding caller got back: final statuses by Call-ID.
fn finals(sock: &UdpSocket, wait: Duration) -> Vec<(String, u16)> {
    let mut got: Vec<(String, u16)> = Vec::new();
    each_message(sock, wait, |m, _| {
        let code = m.status().unwrap_or(0);
        if code >= 200 && !got.iter().any(|(c, _)| c == m.call_id()) {
            got.push((m.call_id().to_owned(), code));
        }
    });
    got
}

/// The INVITEs that reach a PBX socket within `wait` (retransmissions counted once), each passed
/// to `on_invite` with its source.
fn take_invites(
    sock: &UdpSocket,
    wait: Duration,
    mut on_invite: impl FnMut(&Message, SocketAddr),
) -> usize {
    let mut seen: Vec<String> = Vec::new();
    each_message(sock, wait, |m, from| {
        if m.method() == Some(&Method::Invite) && !seen.iter().any(|c| c == m.call_id()) {
            seen.push(m.call_id().to_owned());
            on_invite(&m, from);
        }
    });
    seen.len()
}

/// A flooding caller on `.3` and the PBX of its calls on `.2` in test `n`, INVITEs with 8 audio
/// streams each.
struct Flood {
    flooder: UdpSocket,
    pbx: UdpSocket,
    sbc: SocketAddr,
    body: String,
}

impl Flood {
    fn new(n: u8) -> Self {
        Self {
            flooder: udp(&ip(n, 3), 5070),
            pbx: udp(&ip(n, 2), 5090),
            sbc: sa(&ip(n, 1), 5060),
            body: many_streams(&ip(n, 3), 8),
        }
    }

    /// Send INVITE number `i`.
    fn send(&self, i: u32) {
        let local = self.flooder.local_addr().unwrap();
        let msg = invite(local, self.sbc, "1000", i, &self.body);
        self.flooder.send_to(&msg, self.sbc).unwrap();
    }
}

/// A legitimate call from `.4` to number 2000 at the PBX on `.6`, then RTP both ways through the
/// relay: panics unless it is answered with relay ports and 20 packets reach each side.
fn legit_call_with_media(n: u8) {
    let media = ip(n, 21);
    let (caller_ip, pbx_ip) = (ip(n, 4), ip(n, 6));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "2000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    caller.send_invite(&sdp_body("alice", 1, &caller_ip, 7000, "sendrecv", false));
    let got = pbx
        .sip
        .recv_where(T, |m| m.method() == Some(&Method::Invite));
    let Some((inv, from)) = got else {
        let answer = caller.finish_invite(T);
        panic!(
            "the legitimate call never reached its PBX: {:?}\n{}",
            answer.status(),
            caller.sip.trace()
        );
    };
    let offer = SdpSeen::of(&inv);
    pbx.respond(
        &inv,
        from,
        200,
        Some(&sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false)),
    );
    let ok = caller.finish_invite(T);
    let trace = format!("{}{}", caller.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    let answer = SdpSeen::of(&ok);
    assert!(offer.port != 0 && answer.port != 0, "{trace}");
    let sinks = [&caller_rtp, &pbx_rtp].map(Sink::spawn);
    send_streams(
        &[
            Stream {
                sock: &caller_rtp,
                to: sa(&media, answer.port),
                ssrc: CALLER_SSRC,
                first_seq: 1,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, offer.port),
                ssrc: PBX_SSRC,
                first_seq: 1,
            },
        ],
        20,
    );
    let [at_caller, at_pbx] = sinks.map(|s| s.finish(LINGER));
    assert_eq!(
        of_ssrc(&at_pbx, CALLER_SSRC).len(),
        20,
        "{}",
        summary(&at_pbx)
    );
    assert_eq!(
        of_ssrc(&at_caller, PBX_SSRC).len(),
        20,
        "{}",
        summary(&at_caller)
    );
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some(), "{trace}");
    caller.finish_bye(T);
}

/// An answered call of test `n` from the caller on `.3` (its SDP naming `sdp_ip:7000`) to the
/// PBX on `.2` (RTP on 6000): the parties and the relay ports toward the PBX and the caller.
fn answered_call(n: u8, sdp_ip: &str) -> (Caller, Pbx, u16, u16) {
    let pbx_ip = ip(n, 2);
    let mut caller = Ua::caller(sa(&ip(n, 3), 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    caller.send_invite(&sdp_body("alice", 1, sdp_ip, 7000, "sendrecv", false));
    let inv = pbx.answer_invite(T, |_| sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false));
    let ok = caller.finish_invite(T);
    assert_eq!(ok.status(), Some(200), "{}", caller.sip.trace());
    pbx.expect_ack(T);
    let (port_b, port_a) = (SdpSeen::of(&inv).port, SdpSeen::of(&ok).port);
    (caller, pbx, port_b, port_a)
}

// -------------------------------------------------------------------------------------------------
// 17.3 Relay ports before authentication

/// A PBX that challenges every call (407): INVITEs with 8 audio streams each, one after the other
/// from one source. Each used to take 16 pairs, quarantined for 5 s after the 407: three of them
/// held the whole range of 48 pairs, and a legitimate call right after got 503. Now an unanswered
/// call takes 4 streams and its ports are free again at the 407.
#[test]
fn challenged_invites_with_many_streams_leave_ports_for_a_real_call() {
    let n = 1;
    let sbc = start(n, "guard-challenged", "");
    let f = Flood::new(n);
    let mut challenged = 0;
    for i in 0..6 {
        f.send(i);
        challenged += take_invites(&f.pbx, Duration::from_millis(300), |m, from| {
            let streams = SdpSeen::of(m);
            assert_eq!(streams.media_count, 8, "{}", streams.text);
            respond(&f.pbx, m, from, 407, "Digest realm=\"pbx\", nonce=\"abc\"");
        });
    }
    let statuses = finals(&f.flooder, Duration::from_millis(300));
    assert_eq!(challenged, 6, "every INVITE reached the PBX: {statuses:?}");
    assert!(
        statuses.iter().all(|(_, c)| *c == 407),
        "the caller got the PBX's challenges: {statuses:?}"
    );
    legit_call_with_media(n);
    let log = sbc.stop();
    assert!(counter(&log, "media_released_unanswered") >= 6, "{log}");
    assert!(counter(&log, "media_early_streams_refused") >= 24, "{log}");
}

/// A PBX that does not answer the flood at all (the calls stay unanswered): one source may hold 16
/// pairs in unanswered calls (`media.early_pairs_per_source`), its further INVITEs get 503, and a
/// legitimate call from another source gets media ports meanwhile.
#[test]
fn one_source_cannot_hold_the_relay_with_unanswered_calls() {
    let n = 2;
    let sbc = start(n, "guard-silent", "early_pairs_per_source = 16\n");
    let f = Flood::new(n);
    for i in 0..10 {
        f.send(i);
    }
    // The PBX stays silent; the SBC refuses what is over the source's share.
    let reached = take_invites(&f.pbx, Duration::from_millis(800), |_, _| {});
    let statuses = finals(&f.flooder, Duration::from_millis(300));
    assert_eq!(
        reached, 2,
        "two calls of 8 pairs fit the share: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|(_, c)| *c == 503).count(),
        8,
        "{statuses:?}"
    );
    legit_call_with_media(n);
    let log = sbc.stop();
    assert_eq!(counter(&log, "media_early_source_refused"), 8, "{log}");
}

// -------------------------------------------------------------------------------------------------
// 17.4 The ng control port

/// An ng `ping` with cookie `cookie`.
fn ng_ping(cookie: &str) -> Vec<u8> {
    format!("{cookie} d7:command4:pinge").into_bytes()
}

/// The ng socket answers `ping` from a source in `media.ng_allowed` with `pong`, and nothing to a
/// loopback source that is not in it (dropped, counted).
#[test]
fn ng_answers_only_allowed_sources() {
    let n = 3;
    let ng = sa(&ip(n, 1), 2223);
    let sbc = start(
        n,
        "guard-ng",
        &format!("ng_listen = \"{ng}\"\nng_allowed = [\"{}\"]\n", ip(n, 5)),
    );
    let ask = |from: &str, cookie: &str| -> Option<String> {
        let sock = udp(from, 0);
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        sock.send_to(&ng_ping(cookie), ng).unwrap();
        let mut buf = [0u8; 2048];
        sock.recv_from(&mut buf)
            .ok()
            .map(|(len, _)| String::from_utf8_lossy(&buf[..len]).into_owned())
    };
    assert_eq!(
        ask(&ip(n, 7), "c1"),
        None,
        "a source not allowed got an answer"
    );
    let reply = ask(&ip(n, 5), "c2").expect("no answer to the allowed source");
    assert!(
        reply.starts_with("c2 ") && reply.contains("pong"),
        "{reply}"
    );
    assert_eq!(ask(&ip(n, 7), "c3"), None);
    let log = sbc.stop();
    assert_eq!(counter(&log, "ng_refused"), 2, "{log}");
    assert_eq!(counter(&log, "ng_requests"), 1, "{log}");
}

// -------------------------------------------------------------------------------------------------
// 17.5 Latching

/// A caller behind NAT (SDP 192.168.1.50:7000, SIP and RTP from `.3`). A stranger on `.7` sprays
/// the caller's relay port first: the caller's own packets, from its SIP address, take the stream
/// back, and the PBX's media reaches the caller, not the stranger.
#[test]
fn a_sprayer_that_sends_first_does_not_keep_the_stream() {
    let n = 4;
    let media = ip(n, 21);
    let sbc = start(n, "guard-latch", "");
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7002);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let sprayer = udp(&ip(n, 7), 9000);
    let (mut caller, mut pbx, port_b, port_a) = answered_call(n, "192.168.1.50");
    let sinks = [&caller_rtp, &pbx_rtp, &sprayer].map(Sink::spawn);
    let to_a = sa(&media, port_a);
    send_streams(
        &[Stream {
            sock: &sprayer,
            to: to_a,
            ssrc: SPRAY_SSRC,
            first_seq: 1,
        }],
        5,
    );
    send_streams(
        &[Stream {
            sock: &caller_rtp,
            to: to_a,
            ssrc: CALLER_SSRC,
            first_seq: 1,
        }],
        5,
    );
    send_streams(
        &[
            Stream {
                sock: &caller_rtp,
                to: to_a,
                ssrc: CALLER_SSRC,
                first_seq: 6,
            },
            Stream {
                sock: &sprayer,
                to: to_a,
                ssrc: SPRAY_SSRC,
                first_seq: 6,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq: 1,
            },
        ],
        20,
    );
    let [at_caller, at_pbx, at_sprayer] = sinks.map(|s| s.finish(LINGER));
    caller.send_bye();
    pbx.expect_bye(T);
    caller.finish_bye(T);
    let log = sbc.stop();
    assert_eq!(
        of_ssrc(&at_caller, PBX_SSRC).len(),
        20,
        "the PBX's media must reach the caller: {}\n{log}",
        summary(&at_caller)
    );
    assert!(
        of_ssrc(&at_sprayer, PBX_SSRC).is_empty(),
        "the sprayer got the PBX's media: {}",
        summary(&at_sprayer)
    );
    assert_eq!(
        of_ssrc(&at_pbx, CALLER_SSRC).len(),
        25,
        "{}",
        summary(&at_pbx)
    );
    assert!(
        of_ssrc(&at_pbx, SPRAY_SSRC).len() <= 5,
        "once the caller latched, the sprayer is dropped: {}",
        summary(&at_pbx)
    );
}

// -------------------------------------------------------------------------------------------------
// 17.13 Re-INVITE adding streams, refused; hold and the no-media timer

/// An answered call with media; the caller re-INVITEs with audio + video and the PBX refuses
/// (488): the call's audio goes on through the ports it had.
#[test]
fn a_refused_reinvite_adding_video_keeps_the_audio() {
    let n = 5;
    let media = ip(n, 21);
    let sbc = start(n, "guard-reinvite", "");
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let (mut caller, mut pbx, port_b, port_a) = answered_call(n, &caller_ip);
    let streams = |first_seq| {
        [
            Stream {
                sock: &caller_rtp,
                to: sa(&media, port_a),
                ssrc: CALLER_SSRC,
                first_seq,
            },
            Stream {
                sock: &pbx_rtp,
                to: sa(&media, port_b),
                ssrc: PBX_SSRC,
                first_seq,
            },
        ]
    };
    let sinks = [&caller_rtp, &pbx_rtp].map(Sink::spawn);
    send_streams(&streams(1), 10);

    let mut video = sdp_body("alice", 2, &caller_ip, 7000, "sendrecv", false);
    video.push_str("m=video 7010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    caller.send_invite(&video);
    let (reinv, from) = pbx.recv_invite(T);
    assert_eq!(SdpSeen::of(&reinv).media_count, 2);
    pbx.respond(&reinv, from, 488, None);
    let refused = caller.finish_invite(T);
    assert_eq!(refused.status(), Some(488), "{}", caller.sip.trace());

    send_streams(&streams(11), 20);
    let [at_caller, at_pbx] = sinks.map(|s| s.finish(LINGER));
    caller.send_bye();
    pbx.expect_bye(T);
    caller.finish_bye(T);
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();
    let after = |got: &[rtp::Got], ssrc| of_ssrc(got, ssrc).iter().filter(|g| g.seq >= 11).count();
    assert_eq!(
        after(&at_pbx, CALLER_SSRC),
        20,
        "{}\n{log}",
        summary(&at_pbx)
    );
    assert_eq!(after(&at_caller, PBX_SSRC), 20, "{}", summary(&at_caller));
    assert_eq!(counter(&log, "media_pending_discarded"), 1, "{log}");
    assert_eq!(counter(&log, "media_ports_in_use"), 0, "{log}");
}

/// With a 2 s no-media timeout, a call put on hold both ways (`inactive`) with no packet at all is
/// not ended within 5 s; the caller's BYE ends it.
#[test]
fn a_call_on_hold_outlives_the_no_media_timeout() {
    let n = 6;
    let sbc = start(n, "guard-hold", "no_media_timeout_secs = 2\n");
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let (mut caller, mut pbx, _, _) = answered_call(n, &caller_ip);
    caller.send_invite(&sdp_body("alice", 2, &caller_ip, 7000, "inactive", false));
    pbx.answer_invite(T, |_| sdp_body("pbx", 2, &pbx_ip, 6000, "inactive", false));
    assert_eq!(caller.finish_invite(T).status(), Some(200));
    pbx.expect_ack(T);
    let bye = pbx.recv_request(&Method::Bye, Duration::from_secs(5));
    assert!(
        bye.is_none(),
        "a held call was ended: {:?}\n{}",
        bye.map(|(m, _)| m.call_id().to_owned()),
        pbx.sip.trace()
    );
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some(), "{}", pbx.sip.trace());
    assert_eq!(caller.finish_bye(T).status(), Some(200));
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();
    assert!(counter(&log, "media_held_kept") >= 1, "{log}");
    assert_eq!(counter(&log, "media_no_media_ends"), 0, "{log}");
}
