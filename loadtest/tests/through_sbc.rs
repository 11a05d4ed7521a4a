//! The load tester replays the captures through the SBC binary (media anchored) to its own UAS:
//! caller 127.46.20.3 → SBC outside 127.46.20.1:5060 → inside 127.46.20.11 → PBX group = the
//! tester's UAS on 127.46.20.2:5090. Every call completes and the RTP each side receives is the
//! other side's recorded payloads; the REGISTER with its digest challenge passes too. The SBC is the workspace's own binary, built beside `loadtest`
//! (`cargo test --workspace` or `cargo build -p sbc` builds it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Sbc(Child, PathBuf);

impl Drop for Sbc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The SBC on 127.46.`net`.x with its SIP listeners and toward its PBX target on `transport`
/// (`[sip] tcp` always listens too); `extra` is more configuration (sections at the end).
fn start_sbc() -> Sbc {
    start_sbc_with(20, "udp", "")
}

fn start_sbc_with(net: u8, transport: &str, extra: &str) -> Sbc {
    start_sbc_sip(net, "", transport, extra)
}

/// [`start_sbc_with`] with `sip` more lines of its `[sip]` section (e.g. a TLS listener).
fn start_sbc_sip(net: u8, sip: &str, transport: &str, extra: &str) -> Sbc {
    let bin = Path::new(env!("CARGO_BIN_EXE_loadtest")).with_file_name("sbc");
    assert!(
        bin.exists(),
        "{} missing: build the SBC first (cargo build -p sbc)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("loadtest-sbc-{}-{net}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sbc.toml");
    std::fs::write(
        &cfg,
        format!(
            "workers = 2\n\
         [sip]\nudp = [\"127.46.{net}.1:5060\"]\ntcp = [\"127.46.{net}.1:5060\"]\n{sip}\
         [inside]\naddress = \"127.46.{net}.11\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"127.46.{net}.2:5090\", transport = \"{transport}\" }}]\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\naddress = \"127.46.{net}.21\"\nport_min = 30000\nport_max = 30399\n\
         [guard]\ninside_networks = [\"127.46.{net}.2\"]\n{extra}"
        ),
    )
    .unwrap();
    let log = dir.join("sbc.log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sbc = Sbc(child, log);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&sbc.1)
        .unwrap_or_default()
        .contains("sbc listening")
    {
        assert!(Instant::now() < deadline, "sbc did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    sbc
}

fn replay(name: &str, calls: u32) -> Value {
    replay_with(20, name, calls, &[])
}

/// Runs `loadtest` through the SBC of `start_sbc_with(net, ..)`; `extra` are more options.
fn replay_with(net: u8, name: &str, calls: u32, extra: &[&str]) -> Value {
    let run = run_with(net, name, calls, extra);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{name}: {out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

fn run_with(net: u8, name: &str, calls: u32, extra: &[&str]) -> std::process::Output {
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps")
        .join(name);
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--pcap")
        .arg(pcap)
        .args(["--target", &format!("127.46.{net}.1:5060")])
        .args(["--uas", &format!("127.46.{net}.2:5090")])
        .args(["--local-ip", &format!("127.46.{net}.3")])
        .args(["--calls", &calls.to_string()])
        .args([
            "--cps",
            "10",
            "--threads",
            "2",
            "--media-ports",
            "200",
            "--timeout",
            "5",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// One SBC for all captures, one after the other (they share its addresses).
#[test]
fn every_call_capture_replays_through_the_sbc() {
    let sbc = start_sbc();
    for (name, media) in [
        ("g711-rtcp.pcap", true),
        ("hold-resume.pcap", true),
        ("dtmf-rfc4733.pcap", true),
        ("cancel.pcap", false),
        ("opus-baresip.pcap", true),
        // The SBC relays the REGISTER to its PBX target (the tester's UAS, playing the registrar)
        // with its own Call-ID and Contact; after the challenge, the answering REGISTER may reach
        // the registrar on a new Call-ID (no binding yet) or on the first call's (binding known).
        ("register-digest.pcap", false),
    ] {
        let s = replay(name, 3);
        let log = std::fs::read_to_string(&sbc.1).unwrap_or_default();
        assert_eq!(s["answered"], 3, "{name}: {s}\n{log}");
        assert_eq!(s["failed"], 0, "{name}: {s}");
        assert_eq!(s["uas_failed"], 0, "{name}: {s}");
        if media {
            let sent = s["rtp_sent"].as_u64().unwrap();
            assert!(sent > 0, "{name}: {s}");
            assert_eq!(s["rtp_received"].as_u64().unwrap(), sent, "{name}: {s}");
            assert_eq!(s["rtp_payload_mismatches"], 0, "{name}: {s}");
        }
        if name == "g711-rtcp.pcap" {
            // The SBC relays RTCP too: each leg measures its one-way latency through it from the
            // other's report blocks (the recorded RTCP, its blocks replaced by the leg's own).
            let lat = &s["latency_ms"];
            assert_eq!(lat["count"], 6, "{s}");
            assert!(lat["max"].as_f64().unwrap() < 20.0, "{s}");
        }
    }
}

/// SIP over TCP end to end: the tester's caller connects to the SBC's TCP listener (one
/// connection per call), the SBC connects to the tester's callee listening on TCP (its PBX target
/// with `transport = "tcp"`); every call completes with its media.
#[test]
fn calls_over_tcp_through_the_sbc() {
    let sbc = start_sbc_with(22, "tcp", "");
    let s = replay_with(22, "g711-rtcp.pcap", 3, &["--transport", "tcp"]);
    let log = std::fs::read_to_string(&sbc.1).unwrap_or_default();
    assert_eq!(s["answered"], 3, "{s}\n{log}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["uas_legs"], 3, "{s}");
    assert_eq!(s["uas_failed"], 0, "{s}");
    assert_eq!(s["tcp_connections"], 3, "{s}");
    assert_eq!(s["tcp_failures"], 0, "{s}");
    let sent = s["rtp_sent"].as_u64().unwrap();
    assert!(sent > 0, "{s}");
    assert_eq!(s["rtp_received"].as_u64().unwrap(), sent, "{s}");
    assert_eq!(s["rtp_payload_mismatches"], 0, "{s}");
}

/// SIP over TLS toward the SBC: the tester's caller opens one TLS connection per call to the SBC's
/// TLS listener (verifying its certificate, made here with `openssl`, by name), the SBC relays to
/// the tester's callee over UDP, run as a second `loadtest` process (`--uas-only`). Every call
/// completes on its own TLS connection and the caller receives the callee's recorded payloads.
#[test]
fn calls_over_tls_to_the_sbc() {
    let net = 25;
    let dir = std::env::temp_dir().join(format!("loadtest-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=sbc.test"])
        .args(["-addext", "subjectAltName=DNS:sbc.test"])
        // A leaf, not a CA: rustls refuses a CA:TRUE certificate as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let sip = format!("tls = [\"127.46.{net}.1:5061\"]\n");
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let sbc = start_sbc_sip(net, &sip, "udp", &tls);
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/g711-rtcp.pcap");
    let mut callee = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--pcap")
        .arg(&pcap)
        .args(["--uas-only", "--uas", &format!("127.46.{net}.2:5090")])
        .args(["--local-ip", &format!("127.46.{net}.2")])
        .args([
            "--calls",
            "3",
            "--cps",
            "10",
            "--threads",
            "1",
            "--timeout",
            "5",
        ])
        .args(["--media-port", "24000", "--media-ports", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let caller = |name: &str, calls: &str| {
        Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .arg("--pcap")
            .arg(&pcap)
            .args(["--uac-only", "--target", &format!("127.46.{net}.1:5061")])
            .args(["--transport", "tls", "--tls-name", name, "--tls-ca"])
            .arg(&cert)
            .args(["--local-ip", &format!("127.46.{net}.3")])
            .args(["--calls", calls, "--cps", "10", "--threads", "1"])
            .args(["--timeout", "5", "--media-ports", "200"])
            .output()
            .unwrap()
    };
    // The caller asks for another name than the certificate's: refused, and the reason says so.
    let wrong = caller("other.test", "1");
    let out = String::from_utf8_lossy(&wrong.stdout);
    assert_eq!(wrong.status.code(), Some(1), "{out}");
    let s: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let reasons: Vec<&String> = s["failures"].as_object().unwrap().keys().collect();
    assert!(
        reasons.len() == 1 && reasons[0].starts_with("TLS error: invalid peer certificate"),
        "{s}"
    );
    let run = caller("sbc.test", "3");
    let _ = callee.kill();
    let _ = callee.wait();
    let out = String::from_utf8_lossy(&run.stdout);
    let log = std::fs::read_to_string(&sbc.1).unwrap_or_default();
    assert!(
        run.status.success(),
        "{out}\n{}\n{log}",
        String::from_utf8_lossy(&run.stderr)
    );
    let s: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(s["answered"], 3, "{s}\n{log}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["tls_connections"], 3, "{s}");
    assert_eq!(s["tls_failures"], 0, "{s}");
    let received = s["rtp_received"].as_u64().unwrap();
    assert!(received > 0, "{s}");
    assert_eq!(s["rtp_payload_mismatches"], 0, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Digest computed and checked through the SBC: the tester's callee (the registrar behind the SBC)
/// challenges with a fresh nonce, the caller answers it with its password, the callee checks the
/// answer. With the right password every REGISTER is accepted; with a wrong one each is refused
/// with 403, counted as failed, and the run exits 1.
#[test]
fn register_digest_checked_through_the_sbc() {
    let sbc = start_sbc_with(23, "udp", "");
    let digest = ["--password", "s3cret", "--uas-password", "s3cret"];
    let s = replay_with(23, "register-digest.pcap", 3, &digest);
    let log = std::fs::read_to_string(&sbc.1).unwrap_or_default();
    assert_eq!(s["answered"], 3, "{s}\n{log}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["uas_failed"], 0, "{s}");
    let wrong = ["--password", "wrong", "--uas-password", "s3cret"];
    let run = run_with(23, "register-digest.pcap", 3, &wrong);
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{out}");
    let s: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(s["answered"], 0, "{s}");
    assert_eq!(s["failed"], 3, "{s}");
    assert_eq!(s["failures"]["403 REGISTER"], 3, "{s}");
}

/// `--srtp sdes` through the SBC terminating SDES on its outside (`[srtp] outside = "sdes"`) toward
/// a plain inside: the tester's caller offers RTP/SAVP with its key, the SBC answers with its own
/// and offers plain RTP to the tester's callee, which answers plain. Every call completes and each
/// side receives the other's recorded payloads: the callee's after the SBC decrypted them, the
/// caller's after its own decryption; no SRTP packet is refused.
#[test]
fn sdes_caller_through_the_sbc_to_a_plain_callee() {
    // `require_tls_for_sdes` keeps SDES keys off a side that is not TLS; the test runs SIP over
    // UDP on loopback (TLS toward the SBC is not part of it), so it is off here.
    let sbc = start_sbc_with(
        24,
        "udp",
        "[srtp]\noutside = \"sdes\"\ninside = \"plain\"\nrequire_tls_for_sdes = false\n",
    );
    // The SRTP capture is re-keyed by itself (no `--srtp` needed); its callee answers plain.
    for (name, extra) in [
        ("g711-rtcp.pcap", &["--srtp", "sdes"][..]),
        ("hold-resume.pcap", &["--srtp", "sdes"][..]),
        ("srtp-sdes.pcap", &[][..]),
    ] {
        let s = replay_with(24, name, 3, extra);
        let log = std::fs::read_to_string(&sbc.1).unwrap_or_default();
        assert_eq!(s["answered"], 3, "{name}: {s}\n{log}");
        assert_eq!(s["failed"], 0, "{name}: {s}");
        assert_eq!(s["uas_failed"], 0, "{name}: {s}");
        // Only the callers speak SRTP (the callee was offered plain RTP).
        assert_eq!(s["srtp_legs"], 3, "{name}: {s}");
        assert_eq!(s["srtp_rejected"], 0, "{name}: {s}");
        let sent = s["rtp_sent"].as_u64().unwrap();
        assert!(sent > 0, "{name}: {s}");
        // The SRTP capture's callee sends its first packet 13 ms after its 200, before the
        // caller's ACK; the SBC drops it in about one call of three (observed in the per-leg CSV:
        // the caller receives one packet fewer than the callee sent, the callee all). At most
        // that one packet per call; the other captures start their media later and lose none.
        let received = s["rtp_received"].as_u64().unwrap();
        let allowed = if name == "srtp-sdes.pcap" { 3 } else { 0 };
        assert!(
            received <= sent && sent - received <= allowed,
            "{name}: {s}"
        );
        assert_eq!(s["rtp_payload_mismatches"], 0, "{name}: {s}");
    }
}
