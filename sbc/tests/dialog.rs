//! Dialog edges and fail-over with the real `sbc` binary between real peers, each test on its own
//! loopback addresses (127.32.<n>.x):
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP) |
//! | `.11:5080` | the SBC, inside (shared port; the worker on 5081) |
//! | `.2:5090` | the first PBX |
//! | `.6:5090` | the second PBX |
//! | `.8:5090` | the carrier trunk |
//! | `.3:5070` | the caller outside |
//! | `.4:5070` | the PBX placing a call |
//!
//! - the ACK (and PRACK) on leg B carry the CSeq of the INVITE they answer after a 407 challenge
//!   and after a fail-over (checked by the sipp callee);
//! - a call placed right after the first PBX went silent is answered by the second within 5 s,
//!   and the next call goes to the second at once (the first is down);
//! - a stop drains: new calls get 503, a live call gets BYE on both legs when the drain ends.

mod common;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{finish, Sbc, TempDir};
use sbc_sip::Message;

fn ip(n: u8, host: u8) -> String {
    format!("127.32.{n}.{host}")
}

fn scenario(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(dir)
        .join(name)
}

/// The SBC of test `n` (one worker): calls from the outside go to the group `pbx` of
/// `targets` (TOML inline tables); `more` is appended (sections of its own).
fn start(n: u8, name: &str, targets: &str, group: &str, more: &str) -> Sbc {
    let text = format!(
        "workers = 1\n\
         [sip]\nudp = [\"{}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [media]\nport_min = 20000\nport_max = 20099\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{targets}]\n{group}\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         {more}\n\
         [guard]\ninside_networks = [\"{}\"]\n",
        ip(n, 1),
        ip(n, 11),
        // The PBX places its calls from .4, not from its target address.
        ip(n, 4)
    );
    Sbc::start_in(TempDir::new(name), "auto", 5060, &text)
}

fn member(n: u8, host: u8, priority: u8) -> String {
    format!(
        "{{ address = \"{}:5090\", priority = {priority} }}",
        ip(n, host)
    )
}

/// sipp running `scen` at `local`, toward `remote` (a UAS when `None`), logging into `dir`;
/// killed after 45 s at the latest.
fn sipp(
    dir: &Path,
    scen: &Path,
    local: (&str, u16),
    remote: Option<&str>,
    extra: &[&str],
) -> Child {
    let mut cmd = Command::new("timeout");
    cmd.args(["45", "sipp", "-sf"])
        .arg(scen)
        .args(["-i", local.0, "-p", &local.1.to_string(), "-nostdin"])
        .args(["-trace_err", "-trace_msg", "-trace_logs"])
        .args(extra);
    if let Some(r) = remote {
        cmd.arg(r);
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sipp: {e}"))
}

const ONE_CALL: [&str; 4] = ["-m", "1", "-timeout", "35s"];

/// The sipp logs in `dir` whose name starts with `prefix`, concatenated.
fn logs(dir: &Path, prefix: &str) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".log")
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            format!(
                "==== {}\n{}",
                p.display(),
                std::fs::read_to_string(p).unwrap()
            )
        })
        .collect()
}

/// 17.9: a call from the PBX to a carrier that challenges with 407: the INVITE is sent again with
/// credentials and CSeq 2, and the ACK of the carrier's 200 carries CSeq 2 (the carrier's sipp
/// fails the call otherwise).
#[test]
fn the_ack_after_a_407_challenge_carries_the_cseq_of_the_invite() {
    let n = 1;
    let trunk = format!(
        "[[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{}:5090\" }}\n\
         username = \"trunkuser\"\npassword = \"s3cret\"\noptions_interval_secs = 0\n\
         [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
        ip(n, 8)
    );
    let sbc = start(
        n,
        "ack-cseq-407",
        &member(n, 2, 0),
        "options_interval_secs = 0",
        &trunk,
    );
    let dir = sbc.dir.path().to_owned();
    let carrier_scen = scenario("dialog", "uas_trunk_407_cseq.xml");
    let carrier = sipp(&dir, &carrier_scen, (&ip(n, 8), 5090), None, &ONE_CALL);
    std::thread::sleep(Duration::from_millis(300));
    let pbx = sipp(
        &dir,
        &scenario("b2bua", "pbx_call_out.xml"),
        (&ip(n, 4), 5070),
        Some(&format!("{}:5080", ip(n, 11))),
        &[&ONE_CALL[..], &["-s", "15551234567", "-d", "300"]].concat(),
    );
    let (pbx_status, pbx_err) = finish(pbx);
    let (carrier_status, carrier_err) = finish(carrier);
    let carrier_log = logs(&dir, "uas_trunk_407_cseq");
    let all = logs(&dir, "");
    let log = sbc.stop();
    assert!(
        pbx_status.success() && carrier_status.success(),
        "pbx: {pbx_status} {pbx_err}\ncarrier: {carrier_status} {carrier_err}\n{all}\n{log}"
    );
    assert!(
        carrier_log.contains("ack cseq 2 invite cseq 2"),
        "{carrier_log}"
    );
    assert!(log.contains("trunk_auth_answered: 1,"), "{log}");
}

/// 17.9: the first PBX refuses the call with 503, the second takes it with a reliable 183: its
/// INVITE has CSeq 2, and the PRACK's RAck and the ACK name CSeq 2 (checked by its sipp).
#[test]
fn ack_and_prack_after_a_fail_over_carry_the_cseq_of_the_invite() {
    let n = 2;
    let targets = format!("{}, {}", member(n, 2, 0), member(n, 6, 1));
    let sbc = start(
        n,
        "ack-cseq-failover",
        &targets,
        "options_interval_secs = 0",
        "",
    );
    let dir = sbc.dir.path().to_owned();
    let refusing = sipp(
        &dir,
        &scenario("b2bua", "uas_503.xml"),
        (&ip(n, 2), 5090),
        None,
        &ONE_CALL,
    );
    let taking = sipp(
        &dir,
        &scenario("dialog", "uas_prack_cseq.xml"),
        (&ip(n, 6), 5090),
        None,
        &ONE_CALL,
    );
    std::thread::sleep(Duration::from_millis(300));
    let caller = sipp(
        &dir,
        &scenario("b2bua", "uac_prack.xml"),
        (&ip(n, 3), 5070),
        Some(&format!("{}:5060", ip(n, 1))),
        &[&ONE_CALL[..], &["-s", "1000", "-d", "300"]].concat(),
    );
    let (cs, ce) = finish(caller);
    let (rs, re) = finish(refusing);
    let (ts, te) = finish(taking);
    let callee_log = logs(&dir, "uas_prack_cseq");
    let all = logs(&dir, "");
    let log = sbc.stop();
    assert!(
        cs.success() && rs.success() && ts.success(),
        "caller: {cs} {ce}\nfirst: {rs} {re}\nsecond: {ts} {te}\n{all}\n{log}"
    );
    assert!(
        callee_log.contains("prack rack 2 invite cseq 2"),
        "{callee_log}"
    );
    assert!(
        callee_log.contains("ack cseq 2 invite cseq 2"),
        "{callee_log}"
    );
    assert!(log.contains("call_failovers: 1"), "{log}");
}

/// A PBX that answers OPTIONS but lets every INVITE go unanswered; it counts the calls (Call-IDs)
/// it was sent.
struct SilentPbx {
    calls: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentPbx {
    fn start(addr: &str) -> Self {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let calls = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, done) = (calls.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !done.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..len])) else {
                    continue;
                };
                match msg.method().map(|m| m.as_str()) {
                    Some("INVITE") => {
                        seen.lock().unwrap().insert(msg.call_id().to_owned());
                    }
                    Some("OPTIONS") => {
                        let mut out = Vec::new();
                        sbc_sip::build::response(&msg, 200, "OK", Some("silent"), &mut out)
                            .finish(None, b"");
                        let _ = sock.send_to(&out, from);
                    }
                    _ => {}
                }
            }
        });
        Self {
            calls,
            stop,
            thread: Some(thread),
        }
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

impl Drop for SilentPbx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 17.11: the preferred PBX answers its probes but not a new call. The call is sent on to the
/// second PBX when the first has not answered within the first-response time (4 s by default),
/// so the caller has its 200 within 5 s; the first PBX is then down, and the next call goes to
/// the second at once.
#[test]
fn a_call_after_the_first_pbx_goes_silent_is_answered_by_the_second_within_5_s() {
    let n = 3;
    let silent = SilentPbx::start(&format!("{}:5090", ip(n, 2)));
    let targets = format!("{}, {}", member(n, 2, 0), member(n, 6, 1));
    let probes = "options_interval_secs = 60\noptions_timeout_secs = 5";
    let sbc = start(n, "first-response", &targets, probes, "");
    let dir = sbc.dir.path().to_owned();
    // The second PBX answers the probes by itself (-aa), so it runs without -m and is stopped
    // at the end; the callers' success shows that it took the calls.
    let second = sipp(
        &dir,
        &scenario("b2bua", "uas_basic.xml"),
        (&ip(n, 6), 5090),
        None,
        &["-aa"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let place_call = || {
        let started = Instant::now();
        let caller = sipp(
            &dir,
            &scenario("b2bua", "uac_basic.xml"),
            (&ip(n, 3), 5070),
            Some(&format!("{}:5060", ip(n, 1))),
            &[&ONE_CALL[..], &["-s", "1000", "-d", "100"]].concat(),
        );
        let (status, err) = finish(caller);
        (status, err, started.elapsed())
    };
    let (first_status, first_err, first_took) = place_call();
    let (second_status, second_err, second_took) = place_call();
    // SAFETY: signalling our own child (the `timeout` wrapper, which passes it on to sipp).
    unsafe { libc::kill(second.id() as libc::pid_t, libc::SIGTERM) };
    let _ = finish(second);
    let all = logs(&dir, "");
    let log = sbc.stop();
    assert!(
        first_status.success() && second_status.success(),
        "first: {first_status} {first_err}\nsecond: {second_status} {second_err}\n{all}\n{log}"
    );
    // The whole first call (INVITE, 4 s of silence, the second PBX's answer, 100 ms, BYE) took
    // less than 5 s, and it did wait for the first PBX.
    assert!(
        first_took < Duration::from_secs(5) && first_took >= Duration::from_millis(3500),
        "first call took {first_took:?}\n{log}"
    );
    // The second call went straight to the second PBX: the first was never sent it.
    assert!(
        second_took < Duration::from_secs(2),
        "second call took {second_took:?}\n{log}"
    );
    assert_eq!(silent.calls(), 1, "{log}");
    assert!(log.contains("call_failovers: 1"), "{log}");
}

/// 17.14: SIGTERM with a call up: new calls get 503 during the drain (`limits.drain_secs`), then
/// the call gets BYE on both legs and the SBC exits with no call left.
#[test]
fn a_stop_drains_then_ends_a_live_call_on_both_legs() {
    let n = 4;
    let sbc = start(
        n,
        "drain",
        &member(n, 2, 0),
        "options_interval_secs = 0",
        "[limits]\ndrain_secs = 2\n",
    );
    // The SBC's directory goes with it when it stops: the sipp logs are kept in their own.
    let sipp_dir = TempDir::new("drain-sipp");
    let dir = sipp_dir.path().to_owned();
    let callee = sipp(
        &dir,
        &scenario("b2bua", "uas_basic.xml"),
        (&ip(n, 2), 5090),
        None,
        &ONE_CALL,
    );
    std::thread::sleep(Duration::from_millis(300));
    let sbc_out = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        &dir,
        &scenario("b2bua", "uac_wait_bye.xml"),
        (&ip(n, 3), 5070),
        Some(&sbc_out),
        &[&ONE_CALL[..], &["-s", "1000"]].concat(),
    );
    std::thread::sleep(Duration::from_millis(1000));
    // A new call during the drain.
    let late = std::thread::spawn({
        let (sbc_out, local) = (sbc_out.clone(), format!("{}:5070", ip(n, 5)));
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let sock = UdpSocket::bind(&local).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let invite = format!(
                "INVITE sip:1000@{sbc_out} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bKlate1;rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:late@{local}>;tag=late1\r\n\
                 To: <sip:1000@{sbc_out}>\r\n\
                 Call-ID: late-call@{local}\r\n\
                 CSeq: 1 INVITE\r\n\
                 Contact: <sip:late@{local}>\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            sock.send_to(invite.as_bytes(), &sbc_out).unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while let Ok((len, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                let first = text.lines().next().unwrap_or_default().to_owned();
                seen.push(first.clone());
                if !first.starts_with("SIP/2.0 1") {
                    break;
                }
            }
            seen
        }
    });
    let stopping = Instant::now();
    let log = sbc.stop();
    let stop_took = stopping.elapsed();
    let late_answers = late.join().unwrap();
    let (cs, ce) = finish(caller);
    let (us, ue) = finish(callee);
    let all = logs(&dir, "");
    assert!(
        cs.success() && us.success(),
        "caller: {cs} {ce}\ncallee: {us} {ue}\n{all}\n{log}"
    );
    assert_eq!(
        late_answers.last().map(String::as_str),
        Some("SIP/2.0 503 Service Unavailable"),
        "{late_answers:?}\n{log}"
    );
    assert!(
        stop_took >= Duration::from_millis(1800),
        "the drain did not wait: {stop_took:?}\n{log}"
    );
    assert!(log.contains("drain over"), "{log}");
    assert!(log.contains("live_calls: 0,"), "{log}");
}
