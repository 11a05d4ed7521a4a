//! The B2BUA end to end: the real `sbc` binary between `sipp` instances, each test on its own
//! loopback addresses (127.21.<n>.x) so tests run in parallel without sharing a port:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP and TCP) |
//! | `.11:5080` | the SBC, inside (shared port; workers on 5081, 5082) |
//! | `.2:5090` | the PBX (sipp UAS, or the registrar) |
//! | `.3:5070` | the caller outside (sipp UAC) |
//! | `.4:5070` | the PBX placing a call (sipp UAC) |
//! | `.5:5070` | the phone behind NAT (sipp UAC, registers a 192.168.1.50 Contact) |
//!
//! Every test checks that both sipp ends succeeded and that the SBC ended with no call left.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{finish, logs, scenario, sipp, sipp_with, Sbc, TempDir};
use sbc_sip::Message;

fn ip(n: u8, host: u8) -> String {
    format!("127.21.{n}.{host}")
}

/// The SBC of test `n`: every call from the outside goes to the PBX group, which is `pbx_targets`
/// (TOML inline tables) probed as `probe` says.
fn start_sbc(n: u8, name: &str, driver: &str, pbx_targets: &str, probe: &str) -> Sbc {
    start_sbc_with(n, name, driver, pbx_targets, probe, "")
}

/// [`start_sbc`] with more top-level settings (`extra`, TOML placed before the first section).
fn start_sbc_with(
    n: u8,
    name: &str,
    driver: &str,
    pbx_targets: &str,
    probe: &str,
    extra: &str,
) -> Sbc {
    let outside = ip(n, 1);
    let text = format!(
        "workers = 2\n{extra}\n\
         [sip]\nudp = [\"{outside}:5060\"]\ntcp = [\"{outside}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{pbx_targets}]\n{probe}\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nport_min = 20000\nport_max = 20399\n\
         [guard]\ninside_networks = [\"{}\"]\n",
        ip(n, 11),
        // The PBX places calls from .4, an address of its own besides the target's.
        ip(n, 4)
    );
    Sbc::start_in(TempDir::new(name), driver, 5060, &text)
}

fn one_pbx(n: u8) -> String {
    format!("{{ address = \"{}:5090\", transport = \"udp\" }}", ip(n, 2))
}

const NO_PROBES: &str = "options_interval_secs = 0";

/// Stop the SBC and check that no call or transaction-bound state was left behind.
fn stop_clean(sbc: Sbc) -> String {
    let log = sbc.stop();
    assert!(
        log.contains("live_calls: 0,"),
        "calls left in the SBC:\n{log}"
    );
    log
}

/// Run one UAC/UAS pair through the SBC of test `n` and assert both succeeded.
fn call_pair(n: u8, name: &str, driver: &str, uas: &str, uac: &str, uac_extra: &[&str]) {
    let sbc = start_sbc(n, name, driver, &one_pbx(n), NO_PROBES);
    let dir = sbc.dir.path().to_owned();
    let callee = sipp(&dir, uas, (&ip(n, 2), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let mut args = vec!["-s", "1000"];
    args.extend_from_slice(uac_extra);
    let caller = sipp(&dir, uac, (&ip(n, 3), 5070), Some(&target), &args);
    let (uac_status, uac_err) = finish(caller);
    let (uas_status, uas_err) = finish(callee);
    let sipp_logs = logs(&dir, "u");
    let log = stop_clean(sbc);
    assert!(
        uac_status.success() && uas_status.success(),
        "{uac}: {uac_status} {uac_err}\n{uas}: {uas_status} {uas_err}\n{sipp_logs}\n{log}"
    );
}

#[test]
fn basic_call_bye_from_caller() {
    call_pair(
        1,
        "basic",
        "auto",
        "uas_basic.xml",
        "uac_basic.xml",
        &["-d", "300"],
    );
}

#[test]
fn basic_call_on_the_epoll_driver() {
    call_pair(
        2,
        "basic-epoll",
        "epoll",
        "uas_basic.xml",
        "uac_basic.xml",
        &["-d", "300"],
    );
}

/// 60 calls at 8/s with io_uring completion batching on (`transport.batch_wait_us`): every call
/// completes and none is left behind. (The rate stays within the test's 200 media port pairs: each
/// call holds two pairs, quarantined 5 s after it ends.)
#[test]
fn calls_complete_with_completion_batching() {
    let n = 16;
    let sbc = start_sbc_with(
        n,
        "batching",
        "io_uring",
        &one_pbx(n),
        NO_PROBES,
        "[transport]\nbatch_wait_us = 200\n",
    );
    let dir = sbc.dir.path().to_owned();
    let calls = ["-m", "60", "-timeout", "35s", "-timeout_error"];
    let callee = sipp_with(&dir, "uas_basic.xml", (&ip(n, 2), 5090), None, &calls);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let mut args = vec!["-s", "1000", "-r", "8", "-d", "100"];
    args.extend_from_slice(&calls);
    let caller = sipp_with(
        &dir,
        "uac_basic.xml",
        (&ip(n, 3), 5070),
        Some(&target),
        &args,
    );
    let (uac_status, uac_err) = finish(caller);
    let (uas_status, uas_err) = finish(callee);
    let log = stop_clean(sbc);
    assert!(
        uac_status.success() && uas_status.success(),
        "caller: {uac_status} {uac_err}\ncallee: {uas_status} {uas_err}\n{log}"
    );
    assert!(log.contains("calls_ended: 60,"), "{log}");
}

#[test]
fn callee_hangs_up() {
    call_pair(3, "bye-b", "auto", "uas_bye.xml", "uac_wait_bye.xml", &[]);
}

#[test]
fn cancel_before_answer_gives_487() {
    call_pair(
        4,
        "cancel",
        "auto",
        "uas_ring_forever.xml",
        "uac_cancel.xml",
        &[],
    );
}

#[test]
fn busy_486_from_the_pbx_is_relayed() {
    call_pair(5, "busy", "auto", "uas_486.xml", "uac_expect_486.xml", &[]);
}

#[test]
fn reinvite_is_relayed() {
    call_pair(
        6,
        "reinvite",
        "auto",
        "uas_reinvite.xml",
        "uac_reinvite.xml",
        &["-d", "200"],
    );
}

#[test]
fn update_is_relayed() {
    call_pair(
        7,
        "update",
        "auto",
        "uas_update.xml",
        "uac_update.xml",
        &["-d", "200"],
    );
}

#[test]
fn prack_with_reliable_183_is_relayed() {
    call_pair(
        8,
        "prack",
        "auto",
        "uas_prack.xml",
        "uac_prack.xml",
        &["-d", "200"],
    );
}

#[test]
fn refer_and_notify_pass_through() {
    call_pair(
        9,
        "refer",
        "auto",
        "uas_refer.xml",
        "uac_refer.xml",
        &["-d", "200"],
    );
}

#[test]
fn caller_over_tcp_callee_hangs_up() {
    // Leg A on TCP: the SBC's BYE must go out on the caller's connection.
    call_pair(
        10,
        "tcp-bye-b",
        "auto",
        "uas_bye.xml",
        "uac_wait_bye.xml",
        &["-t", "t1"],
    );
}

/// A phone behind NAT registers through the SBC (private Contact, sent from loopback); the PBX's
/// registrar sees only the SBC's Contact; the PBX then calls that Contact and the call reaches the
/// phone at the address its REGISTER came from.
#[test]
fn nated_phone_registers_and_is_called_back() {
    let n = 11;
    let sbc = start_sbc(n, "register", "auto", &one_pbx(n), NO_PROBES);
    let dir = sbc.dir.path().to_owned();
    let registrar = sipp(&dir, "reg_registrar.xml", (&ip(n, 2), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let sbc_out = format!("{}:5060", ip(n, 1));
    let phone = sipp(
        &dir,
        "reg_then_answer.xml",
        (&ip(n, 5), 5070),
        Some(&sbc_out),
        &[
            "-oocsf",
            scenario("reg_then_answer_ooc.xml").to_str().unwrap(),
        ],
    );
    let (reg_status, reg_err) = finish(registrar);
    let reg_logs = logs(&dir, "reg_registrar");
    assert!(
        reg_status.success(),
        "registrar: {reg_status} {reg_err}\n{reg_logs}"
    );
    // What the registrar behind the SBC saw: the SBC's Contact on its inside address, nothing of
    // the phone's.
    let contact = reg_logs
        .lines()
        .find_map(|l| l.strip_prefix("registrar got Contact: "))
        .unwrap_or_else(|| panic!("no Contact logged:\n{reg_logs}"))
        .trim()
        .to_owned();
    let inside = ip(n, 11);
    assert!(contact.contains(&format!("@{inside}:508")), "{contact}");
    assert!(!reg_logs.contains("192.168.1.50"), "{reg_logs}");
    assert!(!reg_logs.contains(&ip(n, 5)), "{reg_logs}");
    // <sip:TOKEN@inside:port>
    let uri = contact.trim_start_matches('<').split('>').next().unwrap();
    let (user, hostport) = uri.trim_start_matches("sip:").split_once('@').unwrap();
    let pbx = sipp(
        &dir,
        "pbx_call_out.xml",
        (&ip(n, 4), 5070),
        Some(hostport),
        &["-s", user, "-d", "300"],
    );
    let (pbx_status, pbx_err) = finish(pbx);
    let (phone_status, phone_err) = finish(phone);
    let all = logs(&dir, "");
    let phone_log = logs(&dir, "reg_then_answer");
    let log = stop_clean(sbc);
    assert!(
        pbx_status.success() && phone_status.success(),
        "pbx: {pbx_status} {pbx_err}\nphone: {phone_status} {phone_err}\n{all}\n{log}"
    );
    // The phone is behind NAT: it was granted the short expiry, not the PBX's 3600 s.
    assert!(phone_log.contains("Expires: 60"), "{phone_log}");
    // The call reached it at its Contact URI (Request-URI), sent to its real source.
    assert!(
        phone_log.contains("INVITE sip:alice@192.168.1.50:5062 SIP/2.0"),
        "{phone_log}"
    );
}

/// A PBX that answers OPTIONS (and INVITE with 486) until told to go silent.
struct DyingPbx {
    answering: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    invites: Arc<std::sync::atomic::AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DyingPbx {
    fn start(addr: &str) -> Self {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let answering = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let invites = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (a, s, i) = (answering.clone(), stop.clone(), invites.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if !a.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..len])) else {
                    continue;
                };
                let code = match msg.method().map(|m| m.as_str()) {
                    Some("OPTIONS") => 200,
                    Some("INVITE") => {
                        i.fetch_add(1, Ordering::Relaxed);
                        486
                    }
                    _ => continue,
                };
                let mut out = Vec::new();
                sbc_sip::build::response(&msg, code, "X", Some("dying1"), &mut out)
                    .finish(None, b"");
                let _ = sock.send_to(&out, from);
            }
        });
        Self {
            answering,
            stop,
            invites,
            thread: Some(thread),
        }
    }
}

impl Drop for DyingPbx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two PBXs in one group: the preferred one takes calls while it answers OPTIONS; once it goes
/// silent, new calls go to the second.
#[test]
fn failover_when_the_first_pbx_stops_answering_options() {
    let n = 12;
    let first = format!("{}:5090", ip(n, 2));
    let second = format!("{}:5090", ip(n, 6));
    let dying = DyingPbx::start(&first);
    let targets = format!(
        "{{ address = \"{first}\", priority = 0 }}, {{ address = \"{second}\", priority = 1 }}"
    );
    let probe = "options_interval_secs = 1\noptions_timeout_secs = 1\ndown_after = 2\nup_after = 2";
    let sbc = start_sbc(n, "failover", "auto", &targets, probe);
    let dir = sbc.dir.path().to_owned();
    let sbc_out = format!("{}:5060", ip(n, 1));
    // The second PBX answers the probes by itself (-aa) and takes the call. sipp counts each
    // probe as a call, so it runs without -m and is stopped at the end; the caller's success
    // shows that it answered.
    let backup = sipp_with(&dir, "uas_basic.xml", (&ip(n, 6), 5090), None, &["-aa"]);
    std::thread::sleep(Duration::from_millis(1500));
    // While the first answers, it gets the call (and says busy).
    let caller = sipp(
        &dir,
        "uac_expect_486.xml",
        (&ip(n, 3), 5070),
        Some(&sbc_out),
        &["-s", "1000"],
    );
    let (st, err) = finish(caller);
    assert!(st.success(), "first call: {st} {err}\n{}", logs(&dir, ""));
    assert_eq!(dying.invites.load(Ordering::Relaxed), 1);
    // It stops answering; after two failed probes (1 s apart, 1 s timeout) it is down everywhere.
    dying.answering.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(4500));
    let caller = sipp(
        &dir,
        "uac_basic.xml",
        (&ip(n, 3), 5071),
        Some(&sbc_out),
        &["-s", "1000", "-d", "200"],
    );
    let (st, err) = finish(caller);
    // SAFETY: signalling our own child (the `timeout` wrapper, which passes it on to sipp).
    unsafe { libc::kill(backup.id() as libc::pid_t, libc::SIGTERM) };
    let _ = finish(backup);
    let all = logs(&dir, "");
    let log = stop_clean(sbc);
    assert!(st.success(), "second call: {st} {err}\n{all}\n{log}");
    assert!(all.contains("uas_basic"), "{all}");
    assert_eq!(dying.invites.load(Ordering::Relaxed), 1, "{log}");
}

/// Two PBXs in one group: the preferred one refuses a new call with 503, and the SBC sends the
/// same call on to the second, which takes it. The caller never sees the 503.
#[test]
fn a_call_refused_with_503_goes_to_the_next_pbx() {
    let n = 18;
    let first = format!("{}:5090", ip(n, 2));
    let second = format!("{}:5090", ip(n, 6));
    let targets = format!(
        "{{ address = \"{first}\", priority = 0 }}, {{ address = \"{second}\", priority = 1 }}"
    );
    let sbc = start_sbc(n, "failover-503", "auto", &targets, NO_PROBES);
    let dir = sbc.dir.path().to_owned();
    let refusing = sipp(&dir, "uas_503.xml", (&ip(n, 2), 5090), None, &[]);
    let taking = sipp(&dir, "uas_basic.xml", (&ip(n, 6), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let caller = sipp(
        &dir,
        "uac_basic.xml",
        (&ip(n, 3), 5070),
        Some(&format!("{}:5060", ip(n, 1))),
        &["-s", "1000", "-d", "200"],
    );
    let (cs, ce) = finish(caller);
    let (rs, re) = finish(refusing);
    let (ts, te) = finish(taking);
    let all = logs(&dir, "");
    let caller_log = logs(&dir, "uac_basic");
    let log = stop_clean(sbc);
    assert!(
        cs.success() && rs.success() && ts.success(),
        "caller: {cs} {ce}\nfirst: {rs} {re}\nsecond: {ts} {te}\n{all}\n{log}"
    );
    assert!(log.contains("call_failovers: 1"), "{log}");
    assert!(caller_log.contains("SIP/2.0 200"), "{caller_log}");
    assert!(!caller_log.contains("SIP/2.0 503"), "{caller_log}");
}

/// The SIP headers of the UDP payloads in a pcap, read back by tshark, one message per entry.
fn captured_messages(pcap: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args(["-T", "fields", "-e", "udp.payload"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|hex| {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            // Whole messages: headers and the anchored SDP bodies.
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, name: &str, filter: &str) -> Self {
        let file = dir.join(format!("{name}.pcap"));
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", filter, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark");
        // Wait for "Capturing on 'Loopback'".
        let mut err = child.stderr.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while !seen.contains("Capturing on") {
            assert!(Instant::now() < deadline, "tshark did not start: {seen}");
            match err.read(&mut buf) {
                Ok(0) => panic!("tshark exited: {seen}"),
                Ok(k) => seen.push_str(&String::from_utf8_lossy(&buf[..k])),
                Err(_) => break,
            }
        }
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        Self { child, file }
    }

    fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signalling our own child by PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        captured_messages(&self.file)
    }
}

/// A call, captured on both legs with tshark: no address, port or identifier of the inside appears
/// in any message on the outside leg (headers or SDP), and none of the outside on the inside leg.
#[test]
fn topology_is_hidden_in_both_directions() {
    let n = 13;
    let sbc = start_sbc(n, "leaks", "auto", &one_pbx(n), NO_PROBES);
    let dir = sbc.dir.path().to_owned();
    let outside_leg = Capture::start(&dir, "outside", &format!("udp and host {}", ip(n, 3)));
    let inside_leg = Capture::start(&dir, "inside", &format!("udp and host {}", ip(n, 2)));
    let callee = sipp(&dir, "uas_bye.xml", (&ip(n, 2), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let caller = sipp(
        &dir,
        "uac_wait_bye.xml",
        (&ip(n, 3), 5070),
        Some(&format!("{}:5060", ip(n, 1))),
        &["-s", "1000"],
    );
    let (cs, ce) = finish(caller);
    let (us, ue) = finish(callee);
    let out_msgs = outside_leg.stop();
    let in_msgs = inside_leg.stop();
    let log = stop_clean(sbc);
    assert!(cs.success() && us.success(), "{cs} {ce}\n{us} {ue}\n{log}");
    // INVITE, 180, 200, ACK, BYE, 200 (the SBC sends no 100 when the PBX rings at once; the
    // PBX's sipp sends one).
    assert!(out_msgs.len() >= 6, "outside leg: {out_msgs:#?}");
    assert!(in_msgs.len() >= 7, "inside leg: {in_msgs:#?}");

    // The identifiers each leg's own peer made: sipp writes Call-ID <n>-<pid>@<ip> and tags
    // <pid>SIPpTag0<0 caller|1 callee><call>.
    let call_id_of = |msgs: &[String], host: &str| -> String {
        msgs.iter()
            .flat_map(|m| m.lines())
            .filter_map(|l| l.strip_prefix("Call-ID: "))
            .find(|c| c.ends_with(host))
            .unwrap_or_else(|| panic!("no Call-ID of {host}: {msgs:#?}"))
            .to_owned()
    };
    let inside_call_id = in_msgs
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix("Call-ID: "))
        .next()
        .unwrap()
        .to_owned();
    let outside_call_id = call_id_of(&out_msgs, &ip(n, 3));
    let inside_markers = [
        ip(n, 11),
        ip(n, 2),
        ":5090".to_owned(),
        ":5081".to_owned(),
        ":5082".to_owned(),
        "SIPpTag01".to_owned(),
        inside_call_id,
        // The PBX's SDP session details, its ring tone, its identity's host (uas_bye.xml).
        "pbx-cluster-7".to_owned(),
        "Alert-Info".to_owned(),
        "ring-internal".to_owned(),
    ];
    let outside_markers = [
        ip(n, 3),
        ":5070".to_owned(),
        "SIPpTag00".to_owned(),
        outside_call_id,
    ];
    // The markers are real: each one appears on its own leg.
    let joined_in = in_msgs.join("\n");
    let joined_out = out_msgs.join("\n");
    for k in &inside_markers[..2] {
        assert!(joined_in.contains(k.as_str()), "{k} not on the inside leg");
    }
    assert!(joined_in.contains("SIPpTag01") && joined_out.contains("SIPpTag00"));
    for k in [
        "pbx-cluster-7",
        "Alert-Info",
        "a=tool:",
        "P-Asserted-Identity",
    ] {
        assert!(joined_in.contains(k), "{k} not on the inside leg");
    }
    // What the outside gets instead: the PBX's identity (name and number) on the SBC's host, and
    // an SDP session line that says nothing.
    assert!(
        joined_out.contains(&format!(
            "P-Asserted-Identity: \"Front Desk\" <sip:200@{}",
            ip(n, 1)
        )),
        "{joined_out}"
    );
    for m in out_msgs.iter().filter(|m| m.contains("\r\n\r\nv=0")) {
        assert!(m.contains("\ns=-\r") || m.contains("\ns=-\n"), "{m}");
        for line in ["\ni=", "\nu=", "\ne=", "a=tool"] {
            assert!(!m.contains(line), "{line:?} crossed:\n{m}");
        }
    }
    assert!(joined_out.contains(&ip(n, 3)));
    // Both SDPs were anchored: each side sees the SBC's media address (the outside one, by
    // default) in c=, never the other side's.
    let sbc_media = format!("c=IN IP4 {}", ip(n, 1));
    assert!(
        joined_in.contains(&sbc_media),
        "offer not anchored:\n{joined_in}"
    );
    assert!(
        joined_out.contains(&sbc_media),
        "answer not anchored:\n{joined_out}"
    );
    for m in &out_msgs {
        for k in &inside_markers {
            assert!(!m.contains(k.as_str()), "inside {k:?} leaked outside:\n{m}");
        }
    }
    for m in &in_msgs {
        for k in &outside_markers {
            assert!(!m.contains(k.as_str()), "outside {k:?} leaked inside:\n{m}");
        }
    }
}

/// A call from the PBX to a carrier trunk that authenticates: the SBC answers the trunk's 401 with
/// the trunk's credentials (checked by sipp's own digest verification), the PBX never sees the
/// challenge, and the call completes.
#[test]
fn trunk_challenge_is_answered_with_the_trunk_credentials() {
    let n = 14;
    let trunk = format!(
        "{NO_PROBES}\n\
         [[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{}:5090\" }}\n\
         username = \"trunkuser\"\npassword = \"s3cret\"\noptions_interval_secs = 0\n\
         [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
        ip(n, 8)
    );
    let sbc = start_sbc(n, "trunk-auth", "auto", &one_pbx(n), &trunk);
    let dir = sbc.dir.path().to_owned();
    let carrier = sipp(&dir, "uas_trunk_auth.xml", (&ip(n, 8), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let sbc_inside = format!("{}:5080", ip(n, 11));
    let pbx = sipp(
        &dir,
        "pbx_call_out.xml",
        (&ip(n, 4), 5070),
        Some(&sbc_inside),
        &["-s", "15551234567", "-d", "300"],
    );
    let (pbx_status, pbx_err) = finish(pbx);
    let (carrier_status, carrier_err) = finish(carrier);
    let all = logs(&dir, "");
    let carrier_log = logs(&dir, "uas_trunk_auth");
    let pbx_log = logs(&dir, "pbx_call_out");
    let log = stop_clean(sbc);
    assert!(
        pbx_status.success() && carrier_status.success(),
        "pbx: {pbx_status} {pbx_err}\ncarrier: {carrier_status} {carrier_err}\n{all}\n{log}"
    );
    assert!(log.contains("trunk_auth_answered: 1,"), "{log}");
    assert!(
        carrier_log.contains("trunk auth valid: true"),
        "{carrier_log}"
    );
    assert!(
        carrier_log.contains("username=\"trunkuser\""),
        "{carrier_log}"
    );
    // The PBX never saw the carrier's challenge, nor the credentials.
    assert!(!pbx_log.contains("SIP/2.0 401"), "{pbx_log}");
    assert!(!pbx_log.contains("carrier.example"), "{pbx_log}");
}

/// A counter of the SBC's last "sbc stopped" line (the totals of every worker).
fn total(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("sbc stopped"))
        .unwrap_or_else(|| panic!("no 'sbc stopped' line:\n{log}"));
    let key = format!(" {name}: ");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name}: {line}"));
    line[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The PBX places calls toward a UDP carrier trunk from ten source ports at once, so the kernel's
/// `SO_REUSEPORT` hash puts them on both workers, while every answer of the carrier (one source)
/// reaches one worker: the answers and requests of the calls the other worker owns are handed to
/// it by the ids in their top Via branch or To tag. Every call completes; some were handed over.
fn pbx_calls_reach_a_udp_trunk_from_many_ports(n: u8, driver: &str) {
    const PBX_PORTS: u16 = 10;
    let calls = PBX_PORTS.to_string();
    let trunk = format!(
        "{NO_PROBES}\n\
         [[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{}:5090\" }}\noptions_interval_secs = 0\n\
         [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
        ip(n, 8)
    );
    let sbc = start_sbc(
        n,
        &format!("handover-{driver}"),
        driver,
        &one_pbx(n),
        &trunk,
    );
    let dir = sbc.dir.path().to_owned();
    let carrier = sipp_with(
        &dir,
        "uas_basic.xml",
        (&ip(n, 8), 5090),
        None,
        &["-m", &calls, "-timeout", "30s", "-timeout_error"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let sbc_inside = format!("{}:5080", ip(n, 11));
    let pbx_ip = ip(n, 4);
    let pbxs: Vec<Child> = (0..PBX_PORTS)
        .map(|i| {
            sipp(
                &dir,
                "pbx_call_out.xml",
                (&pbx_ip, 5070 + i),
                Some(&sbc_inside),
                &["-s", "15551234567", "-d", "300"],
            )
        })
        .collect();
    let pbx_results: Vec<_> = pbxs.into_iter().map(finish).collect();
    let (carrier_status, carrier_err) = finish(carrier);
    let all = logs(&dir, "");
    let log = stop_clean(sbc);
    for (i, (status, err)) in pbx_results.iter().enumerate() {
        assert!(
            status.success(),
            "pbx on port {}: {status} {err}\n{all}\n{log}",
            5070 + i
        );
    }
    assert!(
        carrier_status.success(),
        "carrier: {carrier_status} {carrier_err}\n{all}\n{log}"
    );
    assert_eq!(total(&log, "calls_ended"), u64::from(PBX_PORTS), "{log}");
    assert!(total(&log, "handed_over") > 0, "{log}");
    assert_eq!(
        total(&log, "handed_over"),
        total(&log, "handed_in"),
        "{log}"
    );
    assert_eq!(total(&log, "handover_dropped"), 0, "{log}");
}

#[test]
fn pbx_calls_reach_a_udp_trunk_from_many_ports_on_io_uring() {
    pbx_calls_reach_a_udp_trunk_from_many_ports(19, "auto");
}

#[test]
fn pbx_calls_reach_a_udp_trunk_from_many_ports_on_epoll() {
    pbx_calls_reach_a_udp_trunk_from_many_ports(20, "epoll");
}

/// The settings of a carrier trunk at 127.21.n.8 that the SBC registers with (trunkuser/s3cret).
fn registering_trunk(n: u8) -> String {
    format!(
        "{NO_PROBES}\n\
         [[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{}:5090\" }}\n\
         username = \"trunkuser\"\npassword = \"s3cret\"\nregister = true\nregister_expires = 300\noptions_interval_secs = 0\n",
        ip(n, 8)
    )
}

/// The carrier's registrar of [`registering_trunk`], running `scen`, up before the SBC starts.
fn start_registrar(n: u8, scen: &str) -> (TempDir, Child) {
    let dir = TempDir::new(&format!("{}-sipp", scen.trim_end_matches(".xml")));
    let registrar = sipp(dir.path(), scen, (&ip(n, 8), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    (dir, registrar)
}

/// A trunk with `register = true`: the SBC registers its outside address with the carrier,
/// answering the carrier's challenge with the trunk's credentials (verified by sipp).
#[test]
fn the_sbc_registers_with_a_carrier_trunk() {
    let n = 15;
    let trunk = registering_trunk(n);
    // The registrar is up first; the SBC registers as it starts.
    let (dir, registrar) = start_registrar(n, "uas_trunk_register.xml");
    let sbc = start_sbc(n, "trunk-register", "auto", &one_pbx(n), &trunk);
    let (status, err) = finish(registrar);
    let reg_log = logs(dir.path(), "uas_trunk_register");
    let log = stop_clean(sbc);
    assert!(
        status.success(),
        "registrar: {status} {err}\n{reg_log}\n{log}"
    );
    assert!(
        reg_log.contains("trunk register auth valid: true"),
        "{reg_log}"
    );
    // The SBC registered its own outside address as the trunk account's Contact.
    assert!(
        reg_log.contains(&format!(
            "registrar got Contact: <sip:trunkuser@{}:5060>",
            ip(n, 1)
        )),
        "{reg_log}"
    );
    assert!(log.contains("trunk_registrations: 1,"), "{log}");
    assert!(log.contains("trunk_register_challenges: 1,"), "{log}");
}

/// When the SBC stops, it removes its binding with a carrier it registered with: a REGISTER with
/// `Expires: 0`, answered before the process exits.
#[test]
fn the_sbc_removes_its_carrier_registration_when_it_stops() {
    let n = 17;
    let trunk = registering_trunk(n);
    let (dir, registrar) = start_registrar(n, "uas_trunk_deregister.xml");
    let sbc = start_sbc(n, "trunk-deregister", "auto", &one_pbx(n), &trunk);
    // registered at start; then the SBC is stopped
    std::thread::sleep(Duration::from_millis(1500));
    let log = stop_clean(sbc);
    let (status, err) = finish(registrar);
    let reg_log = logs(dir.path(), "uas_trunk_deregister");
    assert!(
        status.success(),
        "registrar: {status} {err}\n{reg_log}\n{log}"
    );
    assert!(reg_log.contains("removal: Expires: 0"), "{reg_log}");
    assert!(log.contains("trunk_registrations: 1,"), "{log}");
}
