//! The guard end to end: the real `sbc` binary in front of a test PBX (a Rust UDP peer in this
//! file), attacked by floods, password guessers and the real SIPVicious, while legitimate callers
//! (sipp) and phones keep working. Each test on its own loopback addresses, 127.36.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP) |
//! | `.11:5080` | the SBC, inside (workers on 5081, 5082) |
//! | `.2:5090` | the PBX ([`Pbx`]) |
//! | `.3:5070` | the legitimate caller (sipp UAC) |
//! | `.4` | a carrier trunk's outbound proxy |
//! | `.5` | a site of phones behind one address |
//! | `.6..=.9`, `.16..=.19` | attackers |
//!
//! The PBX answers INVITE to 1000 (180, 200) and challenges REGISTER and INVITE of the ten users
//! 100..=109 (401, whatever the credentials: no password is ever right); users `site*` are
//! challenged until they send credentials, then registered (200); anyone else is unknown (404). It
//! counts what it receives. The flood over 1,000 sources uses 127.0.x.y (this file only).

mod common;
// For its reader of the exit counters (`counter`).
#[path = "common/rtp.rs"]
mod rtp;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{finish, scenario, Sbc, TempDir};
use rtp::counter;

fn ip(n: u8, host: u8) -> String {
    format!("127.36.{n}.{host}")
}

fn sa(n: u8, host: u8, port: u16) -> SocketAddr {
    format!("{}:{port}", ip(n, host)).parse().unwrap()
}

/// The SBC of test `n`: calls from the outside go to the PBX (not probed); media not anchored;
/// `extra` is more configuration (trunks, routes, `[guard]`).
fn start_sbc(n: u8, name: &str, extra: &str) -> Sbc {
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{}:5060\"]\ntcp = []\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nenabled = false\n\
         {extra}",
        ip(n, 1),
        ip(n, 11),
        ip(n, 2)
    );
    Sbc::start_in(TempDir::new(name), "auto", 5060, &text)
}

/// A header's value in a SIP text (full names only, which is what the SBC and our peers write).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The user of the first `sip:` URI in `s`.
fn user_of(s: &str) -> &str {
    let at = s.find("sip:").map_or(0, |i| i + 4);
    let rest = &s[at..];
    rest.split(['@', '>', ';', ' ']).next().unwrap_or_default()
}

/// What the PBX received.
#[derive(Debug, Default)]
struct Seen {
    /// Requests by method.
    methods: HashMap<String, u64>,
    /// Requests whose From user is `flood`.
    flood: u64,
    /// Requests for users 100..=109 or other non-site, non-1000 users (what a scanner sends).
    probes: u64,
    /// REGISTERs of site users.
    site: u64,
    /// INVITEs to 1000.
    calls: u64,
}

/// The test PBX: a thread answering on `addr` until stopped.
struct Pbx {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Pbx {
    fn start(addr: SocketAddr) -> Self {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, c) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut tag = 0u64;
            while !s.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
                if msg.starts_with("SIP/2.0") {
                    continue;
                }
                tag += 1;
                for reply in Self::answer(&msg, addr, tag, &c) {
                    let _ = sock.send_to(reply.as_bytes(), from);
                }
            }
        });
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The answers to request `msg`, counting it.
    fn answer(msg: &str, me: SocketAddr, tag: u64, seen: &Mutex<Seen>) -> Vec<String> {
        let method = msg.split(' ').next().unwrap_or_default().to_owned();
        let from_user = user_of(header(msg, "From").unwrap_or_default()).to_owned();
        let to_user = user_of(header(msg, "To").unwrap_or_default()).to_owned();
        let ruri_user = user_of(msg.lines().next().unwrap_or_default()).to_owned();
        let creds = header(msg, "Authorization").is_some();
        let mut s = seen.lock().unwrap();
        *s.methods.entry(method.clone()).or_default() += 1;
        if from_user == "flood" {
            s.flood += 1;
        }
        let user = if method == "REGISTER" {
            to_user
        } else {
            ruri_user
        };
        let existing = (100..=109).any(|u| user == u.to_string());
        let site = user.starts_with("site");
        match method.as_str() {
            "REGISTER" | "INVITE" if site => s.site += 1,
            "INVITE" if user == "1000" => s.calls += 1,
            "REGISTER" | "INVITE" if from_user != "flood" => s.probes += 1,
            _ => {}
        }
        drop(s);
        let resp = |code: &str, extra: &str, body: &str| {
            let mut out = format!("SIP/2.0 {code}\r\n");
            for l in msg.split("\r\n").skip(1) {
                let name = l.split(':').next().unwrap_or_default().trim();
                if ["Via", "From", "Call-ID", "CSeq"]
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(name))
                {
                    out.push_str(l);
                    out.push_str("\r\n");
                } else if name.eq_ignore_ascii_case("To") {
                    out.push_str(l);
                    if !l.contains(";tag=") {
                        out.push_str(&format!(";tag=pbx{tag}"));
                    }
                    out.push_str("\r\n");
                }
            }
            out.push_str(extra);
            out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            out
        };
        let challenge = format!(
            "WWW-Authenticate: Digest realm=\"pbx.test\", nonce=\"n{tag:08x}\", algorithm=MD5\r\n"
        );
        match method.as_str() {
            "ACK" => vec![],
            "INVITE" if user == "1000" => {
                let contact =
                    format!("Contact: <sip:1000@{me}>\r\nContent-Type: application/sdp\r\n");
                let sdp = format!(
                    "v=0\r\no=pbx 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                    me.ip()
                );
                vec![
                    resp("180 Ringing", &format!("Contact: <sip:1000@{me}>\r\n"), ""),
                    resp("200 OK", &contact, &sdp),
                ]
            }
            "INVITE" | "REGISTER" if existing => vec![resp("401 Unauthorized", &challenge, "")],
            "INVITE" | "REGISTER" if site && !creds => {
                vec![resp("401 Unauthorized", &challenge, "")]
            }
            "REGISTER" if site => {
                let contact = header(msg, "Contact").unwrap_or_default();
                vec![resp(
                    "200 OK",
                    &format!("Contact: {contact};expires=3600\r\n"),
                    "",
                )]
            }
            "INVITE" | "REGISTER" => vec![resp("404 Not Found", "", "")],
            _ => vec![resp("200 OK", "", "")],
        }
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request of `method` from `from` (a socket's address) to the SBC at `sbc`, for `user`; the
/// From user is `user`, or `flood` for the flood's requests (`id` with [`FLOOD`] set).
fn request(
    method: &str,
    user: &str,
    from: SocketAddr,
    sbc: SocketAddr,
    id: u64,
    extra: &str,
) -> String {
    let (to, ruri) = if method == "REGISTER" {
        (
            format!("<sip:{user}@{}>", sbc.ip()),
            format!("sip:{}", sbc.ip()),
        )
    } else {
        (
            format!("<sip:{user}@{}>", sbc.ip()),
            format!("sip:{user}@{sbc}"),
        )
    };
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{id:x}x{};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{}@{}>;tag=t{id}\r\nTo: {to}\r\nCall-ID: c{id}x{}@{}\r\nCSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{from}>\r\nUser-Agent: Yealink SIP-T46S 66.86.0.15\r\n{extra}\
         Content-Length: 0\r\n\r\n",
        from.port(),
        if id & FLOOD != 0 { "flood" } else { user },
        from.ip(),
        from.port(),
        from.ip(),
    )
}

/// Set in the `id` of the flood's requests.
const FLOOD: u64 = 1 << 40;

/// The status of a response's text.
fn status(text: &str) -> u16 {
    text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Send a flood from `socks` to `sbc`: `pps` datagrams a second in all, for `secs`, cycling
/// INVITE, REGISTER, OPTIONS and garbage, every request from user `flood` to a random user.
/// Returns (sent, answers received).
fn flood(socks: &[UdpSocket], sbc: SocketAddr, pps: u64, secs: u64) -> (u64, u64) {
    for s in socks {
        s.set_nonblocking(true).unwrap();
    }
    let start = Instant::now();
    let total = pps * secs;
    let (mut sent, mut answers) = (0u64, 0u64);
    let mut buf = [0u8; 4096];
    let mut i = 0u64;
    while sent < total {
        // Pace: send what is due by now (1 ms granularity).
        let due = (start.elapsed().as_micros() as u64 * pps / 1_000_000).min(total);
        while sent < due {
            // Each source sends every kind in turn.
            let sock = &socks[((i / 4) % socks.len() as u64) as usize];
            let from = sock.local_addr().unwrap();
            let pkt = match i % 4 {
                0 => request("INVITE", &format!("9{i}"), from, sbc, i | FLOOD, ""),
                1 => request("REGISTER", &format!("9{i}"), from, sbc, i | FLOOD, ""),
                2 => request("OPTIONS", &format!("9{i}"), from, sbc, i | FLOOD, ""),
                _ => format!("\u{1}\u{2}garbage {i} \u{0}"),
            };
            let _ = sock.send_to(pkt.as_bytes(), sbc);
            sent += 1;
            i += 1;
        }
        for s in socks.iter().take(64) {
            while s.recv_from(&mut buf).is_ok() {
                answers += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    // What was still on its way.
    std::thread::sleep(Duration::from_millis(200));
    for s in socks {
        while s.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
    }
    (sent, answers)
}

/// sipp placing `calls` calls at `rate` a second from `.3:5070` through the SBC of test `n` to the
/// PBX's 1000, each 200 ms long.
fn sipp_calls(n: u8, dir: &Path, calls: u32, rate: u32) -> Child {
    Command::new("timeout")
        .args(["60", "sipp", "-sf"])
        .arg(scenario("uac_basic.xml"))
        .args(["-i", &ip(n, 3), "-p", "5070", "-nostdin", "-s", "1000"])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-d",
            "200",
        ])
        .args([
            "-timeout",
            "50s",
            "-timeout_error",
            "-trace_screen",
            "-trace_err",
        ])
        .arg(format!("{}:5060", ip(n, 1)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The successful calls in sipp's screen log in `dir`.
fn sipp_successes(dir: &Path) -> (u64, String) {
    let mut text = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("_screen.log") || name.ends_with("_errors.log") {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let ok = text
        .lines()
        .filter(|l| l.trim_start().starts_with("Successful call"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    (ok, text)
}

/// Resident memory of process `pid`, kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Send `text` from `sock` and wait up to `wait` for an answer that is not provisional.
fn ask(sock: &UdpSocket, to: SocketAddr, text: &str, wait: Duration) -> Option<String> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    sock.send_to(text.as_bytes(), to).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..len]).into_owned();
            if status(&t) >= 200 {
                return Some(t);
            }
        }
    }
    None
}

/// 17.2: the inside takes requests only from the inside. A stranger's INVITE to the inside port
/// is refused (403) and never reaches the carrier the inside's calls are routed to; the PBX's own
/// INVITE on the same port does.
#[test]
fn a_stranger_on_the_inside_port_is_refused_and_never_reaches_a_carrier() {
    let n = 1;
    let carrier = UdpSocket::bind(sa(n, 4, 5090)).unwrap();
    carrier
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let sbc = start_sbc(
        n,
        "guard-inside",
        &format!(
            "[[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{}:5090\" }}\noptions_interval_secs = 0\n\
             [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
            ip(n, 4)
        ),
    );
    let inside = sa(n, 11, 5080);
    // Strangers: an outside address, and one next to the PBX's.
    for host in [9, 3] {
        let stranger = UdpSocket::bind(sa(n, host, 5070)).unwrap();
        let from = stranger.local_addr().unwrap();
        let invite = request("INVITE", "0049301234567", from, inside, u64::from(host), "");
        let answer = ask(&stranger, inside, &invite, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no answer on the inside:\n{}", sbc.log_text()));
        assert_eq!(status(&answer), 403, "{answer}");
    }
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok((len, _)) = carrier.recv_from(&mut buf) {
            panic!("the carrier got: {}", String::from_utf8_lossy(&buf[..len]));
        }
    }
    // The PBX (the inside target's address) is let through to the carrier.
    let pbx = UdpSocket::bind(sa(n, 2, 5090)).unwrap();
    let from = pbx.local_addr().unwrap();
    pbx.send_to(
        request("INVITE", "0049301234567", from, inside, 77, "").as_bytes(),
        inside,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut reached = false;
    while Instant::now() < deadline && !reached {
        if let Ok((len, _)) = carrier.recv_from(&mut buf) {
            reached = String::from_utf8_lossy(&buf[..len]).starts_with("INVITE ");
        }
    }
    let log = sbc.stop();
    assert!(reached, "the PBX's call did not reach the carrier:\n{log}");
    assert_eq!(counter(&log, "inside_refused"), 2, "{log}");
}

/// Issue 18, done when (a): one source floods INVITE, REGISTER, OPTIONS and garbage at 20,000
/// packets a second for 10 s while another places calls through the SBC: the calls succeed, the
/// PBX sees at most 1 % of the flood, the flood's answers are far fewer than its packets, and the
/// ban (3 s here) ends on time: it is renewed while the flood lasts, and lifted 3 s after.
/// The flood, scanner and site tests each load both cores; run at once they starve each other's
/// legitimate traffic and memory readings, so they take turns.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn a_flood_from_one_source_is_banned_while_calls_go_on() {
    let _heavy = heavy();
    let n = 2;
    let pbx = Pbx::start(sa(n, 2, 5090));
    let sbc = start_sbc(
        n,
        "guard-flood",
        "[guard]\nban_secs = 3\nmax_ban_secs = 3\n",
    );
    let dir = sbc.dir.path().to_owned();
    let target = sbc_addr(n);
    let caller = sipp_calls(n, &dir, 100, 10);
    std::thread::sleep(Duration::from_millis(300));
    let attacker = UdpSocket::bind(sa(n, 9, 5070)).unwrap();
    let (sent, answers) = flood(std::slice::from_ref(&attacker), target, 20_000, 10);
    let flood_end = Instant::now();
    // The ban ends within its length after the flood stopped: an OPTIONS from the attacker is
    // answered again by then.
    attacker.set_nonblocking(false).unwrap();
    let mut lifted = None;
    let mut k = 0;
    while flood_end.elapsed() < Duration::from_secs(5) && lifted.is_none() {
        k += 1;
        let from = attacker.local_addr().unwrap();
        let opt = request("OPTIONS", "ping", from, target, 1_000_000 + k, "");
        if ask(&attacker, target, &opt, Duration::from_millis(200)).is_some() {
            lifted = Some(flood_end.elapsed());
        }
    }
    let (status, err) = finish(caller);
    let (ok, screen) = sipp_successes(&dir);
    let flood_at_pbx = pbx.seen(|s| s.flood);
    let calls_at_pbx = pbx.seen(|s| s.calls);
    let log = sbc.stop();
    assert!(sent >= 200_000, "{sent}");
    assert!(
        ok >= 99,
        "legitimate calls: {ok}/100 ({status} {err})\n{screen}\n{log}"
    );
    assert!(calls_at_pbx >= 99, "{calls_at_pbx}");
    assert!(
        flood_at_pbx * 100 <= sent,
        "the PBX saw {flood_at_pbx} of {sent}\n{log}"
    );
    // Never more packets out than in (the answers include the retransmitted final responses
    // to the INVITEs that got through, which the flood never acknowledges).
    assert!(answers * 10 <= sent, "{answers} answers to {sent}\n{log}");
    let lifted = lifted.unwrap_or_else(|| panic!("still banned 5 s after the flood\n{log}"));
    assert!(lifted <= Duration::from_millis(3500), "{lifted:?}");
    // Banned, lifted after 3 s and banned again while the flood lasted: 10 s hold 3 to 5 bans.
    let bans = counter(&log, "bans_flood") + counter(&log, "bans_unknown_users");
    assert!((3..=8).contains(&bans), "{bans} bans\n{log}");
    eprintln!("flood: {sent} sent, {answers} answers, the PBX saw {flood_at_pbx}, {bans} bans, lifted {lifted:?} after");
    assert!(counter(&log, "guard_banned_dropped") > 150_000, "{log}");
    assert!(counter(&log, "guard_dropped") > 150_000, "{log}");
}

fn sbc_addr(n: u8) -> SocketAddr {
    sa(n, 1, 5060)
}

/// Raise the soft limit of open files to the hard limit (1,000 sockets of the spread flood).
fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

/// Issue 18, done when (a) over 1,000 sources: the same flood spread over 127.0.10-13.1-250, each
/// source under its own budgets (20 packets a second): the legitimate calls still succeed, every
/// source is banned by what the PBX answers it (unknown users), and the SBC's memory stays
/// bounded: its resident size does not grow between the flood's fourth second and its end.
#[test]
fn a_flood_spread_over_1000_sources_keeps_memory_bounded_and_calls_going() {
    let _heavy = heavy();
    let n = 3;
    raise_nofile();
    let pbx = Pbx::start(sa(n, 2, 5090));
    let sbc = start_sbc(n, "guard-spread", "");
    let pid = sbc_pid(&sbc);
    let dir = sbc.dir.path().to_owned();
    let target = sbc_addr(n);
    let socks: Vec<UdpSocket> = (10..14)
        .flat_map(|c| (1..=250).map(move |d| format!("127.0.{c}.{d}:0")))
        .map(|a| UdpSocket::bind(a.as_str()).unwrap())
        .collect();
    assert_eq!(socks.len(), 1000);
    let before = rss_kb(pid);
    let caller = sipp_calls(n, &dir, 100, 10);
    std::thread::sleep(Duration::from_millis(300));
    let flooding = std::thread::spawn(move || flood(&socks, target, 20_000, 10));
    // Memory once the flood has reached every source (and the receive buffers have all been
    // used), then at its end: no growth in between, whatever the number of sources.
    std::thread::sleep(Duration::from_secs(4));
    let during = rss_kb(pid);
    let (sent, _) = flooding.join().unwrap();
    let after = rss_kb(pid);
    let (status, err) = finish(caller);
    let (ok, screen) = sipp_successes(&dir);
    let flood_at_pbx = pbx.seen(|s| s.flood);
    let log = sbc.stop();
    assert!(sent >= 200_000, "{sent}");
    assert!(
        ok >= 99,
        "legitimate calls: {ok}/100 ({status} {err})\n{screen}\n{log}"
    );
    assert!(
        after < during + 8 * 1024 && after < 256 * 1024,
        "RSS {before} kB, {during} kB after 4 s of flood, {after} kB at its end\n{log}"
    );
    // Every source learnt to be a scanner from its unknown users, and was banned.
    assert!(counter(&log, "bans_unknown_users") >= 900, "{log}");
    assert!(counter(&log, "guard_sources") <= 2 * 16_384, "{log}");
    eprintln!(
        "spread flood: RSS {before} kB, {during} kB at 4 s, {after} kB at 10 s; the PBX saw {flood_at_pbx} of {sent}"
    );
}

fn sbc_pid(sbc: &Sbc) -> u32 {
    // The binary logs nothing of its PID: find it by its config path.
    let cfg = sbc.dir.path().join("sbc.toml");
    let cfg = cfg.to_string_lossy();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(cfg.as_ref()) {
            return pid;
        }
    }
    panic!("sbc process not found");
}

/// Run a SIPVicious tool from `bind` against the SBC of test `n`, as `ua` (None: its own
/// User-Agent, "friendly-scanner"); its output. Bounded to 40 s.
fn sipvicious(n: u8, tool: &str, ua: Option<&str>, bind: &str, args: &[&str]) -> String {
    let runner =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/guard/sipvicious_as.py");
    let mut cmd = Command::new("timeout");
    cmd.args(["40", "python3"]).arg(&runner);
    cmd.arg(ua.unwrap_or("friendly-scanner"))
        .arg(bind)
        .arg(tool);
    cmd.args(["-p", "5060"]).args(args).arg(ip(n, 1));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("python3 sipvicious: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "SIPVicious is not installed (.ci/setup: pip install sipvicious==0.3.4):\n{text}"
    );
    text
}

/// Issue 18, done when (c): the real SIPVicious 0.3.4 (svmap, svwar over 100 extensions, svcrack,
/// and svwar with `--force`) against the SBC in front of a PBX with ten users: svwar finds no
/// extension, svcrack no password, and the PBX sees at most 3 of each tool's requests; again with
/// the scanner disguised as a Yealink phone. Each tool runs from an address of its own.
#[test]
fn sipvicious_finds_nothing_and_barely_reaches_the_pbx() {
    let _heavy = heavy();
    let n = 4;
    let pbx = Pbx::start(sa(n, 2, 5090));
    let sbc = start_sbc(n, "guard-sipvicious", "");
    let mut report = String::new();
    const WAR: &[&str] = &["-e", "100-199", "-m", "REGISTER", "--maximumtime", "3"];
    const CRACK: &[&str] = &["-u", "100", "-r", "1-200", "--maximumtime", "3"];
    // svwar told to go on past its sanity check, last: the unknown users ban it.
    const FORCED: &[&str] = &[
        "-e",
        "100-199",
        "-m",
        "REGISTER",
        "--maximumtime",
        "3",
        "--force",
    ];
    let runs: [(&str, &[&str]); 4] = [
        ("svmap", &[]),
        ("svwar", WAR),
        ("svcrack", CRACK),
        ("svwar", FORCED),
    ];
    for (ua, first_host) in [(None, 6), (Some("Yealink SIP-T46S 66.86.0.15"), 16)] {
        let mut out = Vec::new();
        let mut at_pbx = Vec::new();
        // Each tool from an address of its own.
        for (host, (tool, args)) in (first_host..).zip(runs) {
            let before = pbx.seen(|s| s.probes);
            let text = sipvicious(n, tool, ua, &ip(n, host), args);
            at_pbx.push(pbx.seen(|s| s.probes) - before);
            report.push_str(&format!("--- {tool} {args:?} as {ua:?}\n{text}\n"));
            out.push(text);
        }
        report.push_str(&format!(
            "==== as {ua:?}: the PBX saw {at_pbx:?} (svmap, svwar, svcrack, svwar --force)\n"
        ));
        for ext in 100..=109 {
            for war in [&out[1], &out[3]] {
                assert!(
                    !war.contains(&format!("| {ext} "))
                        && !war.contains(&format!("'{ext}' exists")),
                    "svwar found {ext}:\n{report}"
                );
            }
        }
        assert!(!out[2].contains("The password for"), "{report}");
        assert!(
            at_pbx.iter().all(|n| *n <= 3),
            "the PBX saw {at_pbx:?} of the scanner's requests\n{report}"
        );
    }
    let log = sbc.stop();
    assert!(counter(&log, "bans_scanner") >= 1, "{report}\n{log}");
    assert!(counter(&log, "guard_scanner_dropped") >= 1, "{log}");
    eprintln!("{report}");
}

/// Issue 18, done when (d): a site of 2,000 phones behind one address registers within 10 s (each
/// challenged once, then registered) and is neither banned nor refused; a password guesser from
/// another address is banned at its second refused password, and the PBX sees at most 3 of its
/// requests.
#[test]
fn a_site_of_2000_phones_is_not_banned_but_a_password_guesser_is() {
    let _heavy = heavy();
    let n = 5;
    let pbx = Pbx::start(sa(n, 2, 5090));
    let sbc = start_sbc(n, "guard-site", "[registrar]\ncapacity = 10000\n");
    let target = sbc_addr(n);
    // The site: one socket, 2,000 phones, all REGISTERs sent within 10 s (200 a second), each
    // answered with credentials when challenged.
    let site = UdpSocket::bind(sa(n, 5, 5060)).unwrap();
    site.set_nonblocking(true).unwrap();
    let from = site.local_addr().unwrap();
    let start = Instant::now();
    let (mut next, mut other) = (0u64, Vec::new());
    let (mut registered, mut challenged) = (HashSet::new(), HashSet::new());
    let mut buf = [0u8; 8192];
    while registered.len() + other.len() < 2000 && start.elapsed() < Duration::from_secs(20) {
        let due = (start.elapsed().as_millis() as u64 / 5).min(2000);
        while next < due {
            let reg = request(
                "REGISTER",
                &format!("site{next}"),
                from,
                target,
                next,
                "Expires: 3600\r\n",
            );
            site.send_to(reg.as_bytes(), target).unwrap();
            next += 1;
        }
        while let Ok((len, _)) = site.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..len]).into_owned();
            let user = user_of(header(&t, "To").unwrap_or_default()).to_owned();
            let id: u64 = user.trim_start_matches("site").parse().unwrap_or(0);
            match status(&t) {
                401 if challenged.insert(id) => {
                    let auth = format!(
                        "Authorization: Digest username=\"{user}\", realm=\"pbx.test\", nonce=\"x\", \
                         uri=\"sip:{}\", response=\"00000000000000000000000000000000\"\r\nExpires: 3600\r\n",
                        target.ip()
                    );
                    let reg = request("REGISTER", &user, from, target, id, &auth)
                        .replace("CSeq: 1 REGISTER", "CSeq: 2 REGISTER")
                        .replacen(";branch=z9hG4bK", ";branch=z9hG4bKcred-", 1);
                    site.send_to(reg.as_bytes(), target).unwrap();
                }
                200 => {
                    registered.insert(id);
                }
                s if s >= 200 => other.push(t.lines().next().unwrap_or_default().to_owned()),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    let missing: Vec<u64> = (0..2000)
        .filter(|i| !registered.contains(i))
        .take(20)
        .collect();
    // The guesser: password after password for user 100, one at a time.
    let guesser = UdpSocket::bind(sa(n, 6, 5060)).unwrap();
    let gfrom = guesser.local_addr().unwrap();
    let before = pbx.seen(|s| s.probes);
    let mut answered = 0;
    for k in 0..10u64 {
        let auth = format!(
            "Authorization: Digest username=\"100\", realm=\"pbx.test\", nonce=\"x\", \
             uri=\"sip:{}\", response=\"{k:032x}\"\r\n",
            target.ip()
        );
        let reg = request("REGISTER", "100", gfrom, target, 50_000 + k, &auth);
        if ask(&guesser, target, &reg, Duration::from_millis(500)).is_some() {
            answered += 1;
        }
    }
    let guesses_at_pbx = pbx.seen(|s| s.probes) - before;
    // The site is still served after all that.
    let still = ask(
        &site,
        target,
        &request("OPTIONS", "site0", from, target, 99_999, ""),
        Duration::from_secs(1),
    );
    let site_at_pbx = pbx.seen(|s| s.site);
    let log = sbc.stop();
    assert_eq!(
        (registered.len(), challenged.len()),
        (2000, 2000),
        "site: {} registered, {} challenged (missing {missing:?}), others {other:?} in {took:?}, \
         PBX saw {site_at_pbx}\n{log}",
        registered.len(),
        challenged.len()
    );
    assert!(took < Duration::from_secs(11), "{took:?}");
    assert!(
        still.is_some(),
        "the site is refused after registering\n{log}"
    );
    assert_eq!(answered, 2, "the guesser got {answered} answers\n{log}");
    assert!(guesses_at_pbx <= 3, "the PBX saw {guesses_at_pbx} guesses");
    assert_eq!(counter(&log, "bans_auth_failures"), 1, "{log}");
    assert_eq!(counter(&log, "bans_unknown_users"), 0, "{log}");
    assert_eq!(counter(&log, "bans_sweep"), 0, "{log}");
    assert_eq!(counter(&log, "guard_rate_refused"), 0, "{log}");
}

/// Every final answer `sock` receives within `wait` (first lines).
fn finals_within(sock: &UdpSocket, wait: Duration) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    let mut out = Vec::new();
    while Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..len]).into_owned();
            if status(&t) >= 200 {
                out.push(t);
            }
        }
    }
    out
}

/// `hide_unknown_users`: an unknown user's INVITE and REGISTER get the 401 an existing user gets,
/// in the PBX's realm (`guard.realm`: the unknown user is asked first, before the PBX has
/// challenged anyone), also when the final answer is retransmitted (INVITE not acknowledged,
/// REGISTER sent again): never a 404.
#[test]
fn an_unknown_user_looks_like_an_existing_one_even_when_retransmitted() {
    let n = 6;
    let pbx = Pbx::start(sa(n, 2, 5090));
    let sbc = start_sbc(n, "guard-hide", "[guard]\nrealm = \"pbx.test\"\n");
    let target = sbc_addr(n);
    let mut seen = Vec::new();
    for (host, user) in [(20, "555"), (21, "105")] {
        let sock = UdpSocket::bind(sa(n, host, 5070)).unwrap();
        let from = sock.local_addr().unwrap();
        // An INVITE never acknowledged: its final answer is retransmitted (Timer G).
        sock.send_to(
            request("INVITE", user, from, target, 1, "").as_bytes(),
            target,
        )
        .unwrap();
        let invite_answers = finals_within(&sock, Duration::from_millis(2500));
        // A REGISTER sent twice (a retransmission): the second is answered from the transaction.
        let reg = request("REGISTER", user, from, target, 2, "");
        sock.send_to(reg.as_bytes(), target).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        sock.send_to(reg.as_bytes(), target).unwrap();
        let reg_answers = finals_within(&sock, Duration::from_millis(500));
        seen.push((user, invite_answers, reg_answers));
    }
    let probes = pbx.seen(|s| s.probes);
    let log = sbc.stop();
    for (user, invite, reg) in &seen {
        assert!(invite.len() >= 2, "{user}: {invite:?}\n{log}");
        assert_eq!(reg.len(), 2, "{user}: {reg:?}\n{log}");
        for a in invite.iter().chain(reg) {
            assert_eq!(status(a), 401, "{user}: {a}");
            let challenge = header(a, "WWW-Authenticate").unwrap_or_default();
            assert!(challenge.contains("realm=\"pbx.test\""), "{user}: {a}");
        }
        // A retransmission is the same answer, byte for byte.
        assert!(invite.iter().all(|a| a == &invite[0]), "{user}: {invite:?}");
        assert_eq!(reg[0], reg[1], "{user}");
    }
    assert_eq!(probes, 4, "{log}");
    assert_eq!(counter(&log, "unknown_users_hidden"), 2, "{log}");
}
