//! The load tester replays each capture of `pcaps/` against its own UAS over loopback
//! (127.46.n.x): every call completes, the RTP received is the recorded payloads (checked per packet
//! by the receiver), RFC 4733 digits arrive as sent, and the HTML report renders with its plots.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps")
        .join(name)
}

/// Runs `loadtest` for `calls` calls of `name` between 127.46.`net`.1 (UAC) and .2 (UAS).
fn replay(name: &str, net: u8, calls: u32, out: Option<&Path>) -> Value {
    replay_with(name, net, calls, out, &[])
}

/// `loadtest` replaying `name` between 127.46.`net`.1 (UAC) and its own UAS on .2:5060.
fn loadtest(name: &str, net: u8) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.arg("--pcap")
        .arg(pcap(name))
        .args(["--uas", &format!("127.46.{net}.2:5060")])
        .args(["--local-ip", &format!("127.46.{net}.1")]);
    cmd
}

/// `replay` with more options.
fn replay_with(name: &str, net: u8, calls: u32, out: Option<&Path>, extra: &[&str]) -> Value {
    let mut cmd = loadtest(name, net);
    cmd.args([
        "--calls",
        &calls.to_string(),
        "--cps",
        "20",
        "--threads",
        "2",
    ])
    .args(["--media-ports", "200", "--timeout", "5"]);
    if let Some(o) = out {
        cmd.arg("--out").arg(o);
    }
    cmd.args(extra);
    let run = cmd.output().expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{name}: exit {:?}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("JSON summary")
}

fn assert_all_calls_complete(s: &Value, calls: u64) {
    assert_eq!(s["attempted"], calls, "{s}");
    assert_eq!(s["answered"], calls, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["uas_legs"], calls, "{s}");
    assert_eq!(s["uas_failed"], 0, "{s}");
}

fn assert_media_as_recorded(s: &Value) {
    let sent = s["rtp_sent"].as_u64().unwrap();
    assert!(sent > 0, "{s}");
    assert_eq!(s["rtp_received"].as_u64().unwrap(), sent, "{s}");
    assert_eq!(s["rtp_lost"], 0, "{s}");
    assert_eq!(s["rtp_payload_mismatches"], 0, "{s}");
    assert!(s["mos_min"].as_f64().unwrap() >= 4.0, "{s}");
}

#[test]
fn g711_with_rtcp_against_its_own_uas() {
    let dir = std::env::temp_dir().join(format!("loadtest-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("g711");
    let s = replay("g711-rtcp.pcap", 1, 4, Some(&prefix));
    assert_all_calls_complete(&s, 4);
    assert_media_as_recorded(&s);
    // The recorded payloads: 236 RTP packets each way per call.
    assert_eq!(s["rtp_sent"], 4 * 2 * 236, "{s}");
    let csv = std::fs::read_to_string(prefix.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(3) == Some("ok")),
        "{csv}"
    );
    // Every leg measured its one-way latency (the recorded RTCP carries the legs' own report
    // blocks): per leg in the CSV, p50/p99 in the HTML table.
    assert_eq!(s["latency_ms"]["count"], 8, "{s}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "latency_ms").unwrap();
    assert!(
        csv.lines().skip(1).all(|l| l
            .split(',')
            .nth(col)
            .is_some_and(|v| v.parse::<f64>().is_ok())),
        "{csv}"
    );
    let html = std::fs::read_to_string(prefix.with_extension("html")).unwrap();
    let cell = html.split("<td id=\"latency\">").nth(1).unwrap_or("-");
    assert!(cell.starts_with(|c: char| c.is_ascii_digit()), "{cell}");
    check_html(&prefix.with_extension("html"));
}

#[test]
fn hold_and_resume_against_its_own_uas() {
    let s = replay("hold-resume.pcap", 2, 3, None);
    assert_all_calls_complete(&s, 3);
    assert_media_as_recorded(&s);
    // This capture has no RTCP: the legs' synthesised SRs carry their report blocks, and every
    // leg measures its latency within its 7 s of media.
    assert_eq!(s["latency_ms"]["count"], 6, "{s}");
    assert!(s["latency_ms"]["max"].as_f64().unwrap() < 5.0, "{s}");
}

#[test]
fn dtmf_digits_arrive_as_sent() {
    let prefix = std::env::temp_dir().join(format!("loadtest-dtmf-{}", std::process::id()));
    let s = replay("dtmf-rfc4733.pcap", 3, 3, Some(&prefix));
    assert_all_calls_complete(&s, 3);
    assert_media_as_recorded(&s);
    let csv = std::fs::read_to_string(prefix.with_extension("csv")).unwrap();
    // The callee's rows check the digits 1, 5, 9.
    let uas: Vec<&str> = csv.lines().filter(|l| l.starts_with("uas,")).collect();
    assert_eq!(uas.len(), 3);
    assert!(uas.iter().all(|l| l.ends_with(",true")), "{csv}");
}

#[test]
fn register_with_digest_against_its_own_uas() {
    let s = replay("register-digest.pcap", 4, 5, None);
    assert_all_calls_complete(&s, 5);
    assert_eq!(s["rtp_sent"], 0);
}

/// Digest computed, not replayed: the callee challenges with a fresh nonce (SHA-256 too) and
/// checks the caller's answer. The right password passes; a wrong one is refused with 403 on every
/// call, counted as failed on both sides, and the run exits 1.
#[test]
fn register_digest_is_computed_and_checked() {
    for alg in ["MD5", "SHA-256"] {
        let ok = [
            "--password",
            "s3cret",
            "--user",
            "alice",
            "--digest-alg",
            alg,
        ];
        let s = replay_with("register-digest.pcap", 11, 4, None, &ok);
        assert_all_calls_complete(&s, 4);
        let wrong = [
            "--password",
            "nope",
            "--uas-password",
            "s3cret",
            "--digest-alg",
            alg,
        ];
        let run = loadtest("register-digest.pcap", 11)
            .args(["--calls", "4", "--cps", "20", "--threads", "2"])
            .args(["--media-ports", "200", "--timeout", "5"])
            .args(wrong)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.status.code(), Some(1), "{out}");
        let s: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(s["answered"], 0, "{s}");
        assert_eq!(s["failed"], 4, "{s}");
        assert_eq!(s["failures"]["403 REGISTER"], 4, "{s}");
        assert_eq!(s["uas_failed"], 4, "{s}");
    }
}

#[test]
fn cancel_against_its_own_uas() {
    let s = replay("cancel.pcap", 5, 5, None);
    assert_all_calls_complete(&s, 5);
    // CANCEL after the 180: a first 18x is measured, no 200.
    assert_eq!(s["setup_18x_ms"]["count"], 5, "{s}");
    assert_eq!(s["setup_200_ms"]["count"], 0, "{s}");
}

/// SIP over TLS, one connection per call, to the tester's own callee (its own certificate).
#[test]
fn calls_over_tls_one_connection_each() {
    let s = replay_with("g711-rtcp.pcap", 7, 4, None, &["--transport", "tls"]);
    assert_all_calls_complete(&s, 4);
    assert_media_as_recorded(&s);
    assert_eq!(s["tls_connections"], 4, "{s}");
    assert_eq!(s["tls_failures"], 0, "{s}");
    let s = replay_with("sipp-basic.pcap", 7, 20, None, &["--transport", "tls"]);
    assert_all_calls_complete(&s, 20);
    assert_eq!(s["tls_connections"], 20, "{s}");
}

/// SIP over plain TCP, one connection per call, every capture against the tester's own callee
/// listening on TCP (framing by Content-Length on the stream, nothing retransmitted).
#[test]
fn every_capture_over_tcp() {
    for (name, media) in [
        ("g711-rtcp.pcap", true),
        ("hold-resume.pcap", true),
        ("dtmf-rfc4733.pcap", true),
        ("register-digest.pcap", false),
        ("cancel.pcap", false),
        ("sipp-basic.pcap", false),
        ("g711-ptime20.pcap", true),
    ] {
        let s = replay_with(name, 10, 3, None, &["--transport", "tcp"]);
        assert_all_calls_complete(&s, 3);
        if media {
            assert_media_as_recorded(&s);
        }
        assert_eq!(s["tcp_connections"], 3, "{name}: {s}");
        assert_eq!(s["tcp_failures"], 0, "{name}: {s}");
        assert_eq!(s["conn_overflows"], 0, "{name}: {s}");
    }
}

/// The SDES-SRTP capture (baresip ↔ baresip, PCMA): its packets are decrypted at load with the
/// keys its SDP carried and replayed re-keyed without `--srtp`: both sides SRTP with fresh keys,
/// the decrypted payloads arrive as recorded. The Opus capture (baresip ↔ baresip) replays like
/// the G.711 ones.
#[test]
fn srtp_and_opus_captures_against_its_own_uas() {
    let s = replay("srtp-sdes.pcap", 13, 3, None);
    assert_all_calls_complete(&s, 3);
    assert_media_as_recorded(&s);
    assert_eq!(s["srtp_legs"], 6, "{s}");
    assert_eq!(s["srtp_rejected"], 0, "{s}");
    // About 8 s of 20 ms packets each way per call.
    assert!(s["rtp_sent"].as_u64().unwrap() >= 3 * 2 * 390, "{s}");
    let s = replay("opus-baresip.pcap", 13, 3, None);
    assert_all_calls_complete(&s, 3);
    assert_media_as_recorded(&s);
    assert_eq!(s["srtp_legs"], 0, "{s}");
    assert!(s["rtp_sent"].as_u64().unwrap() >= 3 * 2 * 390, "{s}");
    // Opus at 48 kHz: the jitter is computed on its clock (20 ms = 960 ticks) and stays small.
    assert!(s["jitter_ms_mean"].as_f64().unwrap() < 5.0, "{s}");
}

/// `--srtp sdes` against the tester's own callee: both sides SRTP with their own keys (the caller
/// offers, the callee answers with its key), the payloads compared after decryption are the
/// recorded ones, nothing refused; RTCP (recorded or synthesised) is SRTCP-protected too.
#[test]
fn sdes_srtp_against_its_own_uas() {
    for name in ["g711-rtcp.pcap", "hold-resume.pcap", "dtmf-rfc4733.pcap"] {
        let s = replay_with(name, 12, 3, None, &["--srtp", "sdes"]);
        assert_all_calls_complete(&s, 3);
        assert_media_as_recorded(&s);
        assert_eq!(s["srtp_legs"], 6, "{name}: {s}");
        assert_eq!(s["srtp_rejected"], 0, "{name}: {s}");
    }
}

/// The TCP input buffer is bounded: a peer that sends a header section that never ends (here
/// 400 KiB of header lines) has its connection closed once 256 KiB wait unframed, and the
/// summary counts it. The callee runs alone (`--uas-only`), ends at its time limit (about 12 s).
#[test]
fn a_tcp_message_that_never_ends_is_cut_off() {
    use std::io::{Read, Write};
    let child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--pcap")
        .arg(pcap("sipp-basic.pcap"))
        .args([
            "--uas",
            "127.46.14.2:5060",
            "--uas-only",
            "--transport",
            "tcp",
        ])
        .args(["--threads", "1", "--timeout", "1", "--media-ports", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut conn = loop {
        match std::net::TcpStream::connect("127.46.14.2:5060") {
            Ok(c) => break c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no listener: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    };
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut sent = 0usize;
    let mut closed = false;
    let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
    let _ = conn.write_all(b"INVITE sip:x@127.46.14.2 SIP/2.0\r\n");
    while sent < 400 * 1024 {
        if conn.write_all(line.as_bytes()).is_err() {
            closed = true;
            break;
        }
        sent += line.len();
    }
    if !closed {
        // The callee closes the connection: the read ends (EOF or reset), not by timeout.
        let mut b = [0u8; 64];
        let r = conn.read(&mut b);
        assert!(
            matches!(r, Ok(0))
                || r.as_ref()
                    .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut),
            "{r:?}"
        );
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(s["conn_overflows"], 1, "{s}");
    assert_eq!(s["uas_legs"], 0, "{s}");
}

/// The recorded audio (7 s) loops over a longer hold with sequence numbers and timestamps going
/// on: nothing is lost or out of place at the joins, and the packets cover the whole hold. Over
/// the hold the legs exchange RTCP (the recorded SRs, with the legs' own report blocks in place of
/// the recorded ones) and measure their one-way latency from each other's blocks; tshark, capturing the run, reads the same blocks and
/// finds the SR each one echoes and a round trip of a millisecond or two (its own arithmetic is in
/// whole milliseconds) from its capture times.
#[test]
fn media_loops_over_the_hold() {
    let capture = Capture::start("udp and net 127.46.8.0/24 and not port 5060");
    let s = replay_with(
        "g711-ptime20.pcap",
        8,
        2,
        None,
        &["--hold", "9", "--max-latency-ms", "5"],
    );
    assert_all_calls_complete(&s, 2);
    assert_media_as_recorded(&s);
    // 20 ms packets each way for about 9 s: well past the recording's 354 per side.
    let sent = s["rtp_sent"].as_u64().unwrap();
    assert!(sent >= 2 * 2 * 430, "{s}");
    assert!(s["jitter_ms_mean"].as_f64().unwrap() < 5.0, "{s}");
    // Every leg measured its latency; on loopback it is well under a millisecond.
    let lat = &s["latency_ms"];
    assert_eq!(lat["count"], 4, "{s}");
    assert!(lat["max"].as_f64().unwrap() < 5.0, "{s}");
    // The MOS takes the measured round trip: under a millisecond costs nothing.
    assert!(s["mos_min"].as_f64().unwrap() >= 4.3, "{s}");

    let Some(capture) = capture else {
        return;
    };
    let rows = capture.stop_and_read(&[
        "-o",
        "rtcp.show_roundtrip_calculation:TRUE",
        "-o",
        "rtcp.roundtrip_min_threshhold:0",
        "-Y",
        "rtcp.ssrc.lsr != 0",
        "-T",
        "fields",
        "-e",
        "rtcp.ssrc.lsr",
        "-e",
        "rtcp.lsr-frame",
        "-e",
        "rtcp.roundtrip-delay",
        "-e",
        "rtcp.ssrc.cum_nr",
    ]);
    // SRs every second or so from 4 legs over 9 s, nearly all echoing the peer's last SR.
    assert!(rows.len() >= 20, "{rows:?}");
    for r in &rows {
        let f: Vec<&str> = r.split('\t').collect();
        assert!(!f[1].is_empty(), "tshark found no SR for this LSR: {r}");
        let rtt: i64 = f[2].parse().unwrap_or(-1);
        assert!((0..=3).contains(&rtt), "round trip {rtt} ms: {r}");
        assert_eq!(f[3], "0", "cumulative lost: {r}");
    }
}

/// A short capture of the wire on `lo` by tshark (None, and the check skipped, where tshark is
/// not installed or cannot capture: `.ci/setup` installs it and CI runs as root).
struct Capture {
    child: std::process::Child,
    file: PathBuf,
}

impl Capture {
    fn start(filter: &str) -> Option<Self> {
        use std::io::Read;
        let file = std::env::temp_dir().join(format!("loadtest-cap-{}.pcap", std::process::id()));
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", filter, "-w"])
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut err = child.stderr.take()?;
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        // tshark says "Capturing on 'Loopback'" once it captures (or exits with its reason).
        while !seen.contains("Capturing on") {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => {
                    eprintln!("tshark does not capture here; the wire check is skipped: {seen}");
                    let _ = child.wait();
                    return None;
                }
                Ok(k) => seen.push_str(&String::from_utf8_lossy(&buf[..k])),
            }
        }
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        Some(Self { child, file })
    }

    /// Stops the capture and reads it back with RTCP found by tshark's heuristic: one line per
    /// packet of the `read` options' fields.
    fn stop_and_read(mut self, read: &[&str]) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["--enable-heuristic", "rtcp_udp"])
            .args(read)
            .output()
            .expect("tshark reads its capture");
        let _ = std::fs::remove_file(&self.file);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The arrival knobs hold their rates end to end: Poisson arrivals at 100 calls/s start 300 calls at
/// about that rate (their seeded schedule's own mean), and a 2 s ramp to 100 calls/s starts 200
/// calls in about 3 s (100 while rising, 100 at full rate).
#[test]
fn poisson_and_ramp_arrivals_keep_their_rate() {
    // (calls, the arrival knob, the achieved rate expected)
    let cases: [(u32, &[&str], std::ops::RangeInclusive<f64>); 2] = [
        (300, &["--poisson"], 85.0..=118.0),
        (200, &["--ramp", "2"], 60.0..=72.0),
    ];
    for (calls, knob, expected) in cases {
        let mut extra = vec!["--cps", "100", "--hold", "0.05", "--max-concurrent", "40"];
        extra.extend_from_slice(knob);
        let s = replay_with("sipp-basic.pcap", 15, calls, None, &extra);
        assert_all_calls_complete(&s, u64::from(calls));
        let cps = s["achieved_cps"].as_f64().unwrap();
        assert!(expected.contains(&cps), "{knob:?}: {s}");
    }
}

/// Three calls of 50 ms on one thread: too short for any RTCP.
const THREE_SHORT_CALLS: [&str; 8] = [
    "--calls",
    "3",
    "--cps",
    "20",
    "--threads",
    "1",
    "--hold",
    "0.05",
];

/// A latency gate with nothing to measure (calls too short for an RTCP exchange) fails the run:
/// exit code 1, the summary still printed.
#[test]
fn a_latency_gate_without_a_measure_fails() {
    let run = loadtest("sipp-basic.pcap", 16)
        .args(THREE_SHORT_CALLS)
        .args(["--media-ports", "200", "--max-latency-ms", "50"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("not measured"), "{err}");
    // Off a terminal, no progress line.
    assert!(!err.contains(" cps "), "{err}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let s: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_all_calls_complete(&s, 3);
    assert!(s["latency_ms"].is_null(), "{s}");
}

/// RFC 7502 search against the tester's own callee, bounded: at most 4 calls at once, each held
/// 50 ms after its answer, so the rate it sustains is about 4 / 58 ms ≈ 70 calls/s; trials above
/// start their calls late and fail. The search must converge between a passing and a failing rate
/// and report the passing one.
#[test]
fn rfc7502_search_converges_and_reports_its_rate() {
    let run = loadtest("sipp-basic.pcap", 9)
        .args(["--calls", "100", "--cps", "20", "--threads", "1"])
        .args(["--max-concurrent", "4", "--hold", "0.05", "--timeout", "5"])
        .args(["--media-ports", "200", "--search", "--search-max", "400"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, trials) = lines.split_last().unwrap();
    assert_eq!(last["converged"], true, "{out}");
    assert_eq!(
        last["trials"].as_u64().unwrap() as usize,
        trials.len(),
        "{out}"
    );
    let max = last["rfc7502_max_cps"].as_f64().unwrap();
    let fail = last["lowest_failing_cps"].as_f64().unwrap();
    assert!(max >= 20.0 && max < fail && fail <= 400.0, "{out}");
    assert!(fail - max <= (max * 0.05).max(1.0) + 1e-9, "{out}");
    // The reported rate is one that passed, and every rate above the lowest failure failed.
    assert!(
        trials
            .iter()
            .any(|t| t["trial_cps"].as_f64() == Some(max) && t["pass"] == true),
        "{out}"
    );
    assert!(
        trials
            .iter()
            .filter(|t| t["pass"] == true)
            .all(|t| t["trial_cps"].as_f64().unwrap() <= max),
        "{out}"
    );
    // The limit is near 70 calls/s (noise on a shared machine moves it).
    assert!((30.0..=150.0).contains(&max), "{out}");
}

#[test]
fn refuses_a_target_outside_loopback() {
    let run = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--pcap")
        .arg(pcap("g711-rtcp.pcap"))
        .args(["--target", "192.0.2.1:5060", "--calls", "1"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--allow-remote"));
}

/// On a terminal (a pseudo-terminal from `script`, util-linux) the tester shows a live progress
/// line every 250 ms: calls, the rate, answered and failed calls, and the mean MOS of the legs
/// finished so far; off a terminal (every other test here) it prints none.
#[test]
fn a_progress_line_on_a_terminal() {
    let cmd = format!(
        "{} --pcap {} --uas 127.46.17.2:5060 --local-ip 127.46.17.1 --calls 30 --cps 10 \
         --threads 2 --media-ports 200 --timeout 5",
        env!("CARGO_BIN_EXE_loadtest"),
        pcap("g711-rtcp.pcap").display()
    );
    let Ok(run) = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
    else {
        eprintln!("no script(1) here: skipped");
        return;
    };
    let out = String::from_utf8_lossy(&run.stdout).replace('\r', "\n");
    assert!(run.status.success(), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" cps ")).collect();
    // About 4 a second over the 10 s of starts and 7 s calls.
    assert!(lines.len() >= 40, "{out}");
    let field = |l: &str, name: &str| -> Option<f64> {
        let mut it = l.split_whitespace();
        it.find(|w| *w == name)?;
        it.next()?.parse().ok()
    };
    // While calls start at 10/s the line says so; once legs finish, their MOS shows.
    assert!(
        lines
            .iter()
            .any(|l| field(l, "cps").is_some_and(|c| (8.0..=12.0).contains(&c))),
        "{out}"
    );
    let last = lines.last().copied().unwrap_or_default();
    assert_eq!(field(last, "calls"), Some(30.0), "{last}");
    assert_eq!(field(last, "ok"), Some(30.0), "{last}");
    assert_eq!(field(last, "failed"), Some(0.0), "{last}");
    assert!(field(last, "MOS").is_some_and(|m| m >= 4.3), "{last}");
    assert!(
        lines[0].contains("MOS -"),
        "no leg finished yet: {}",
        lines[0]
    );
}

/// A network namespace made for one test (deleted at the end), its loopback interface also holding
/// 10.201.0.1: an address outside 127.0.0.0/8 that leads nowhere but into the namespace.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Option<Self> {
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ip(&["netns", "add", name]) {
            return None;
        }
        let ns = Self(name.to_owned());
        let ok = ip(&["-n", name, "link", "set", "lo", "up"])
            && ip(&["-n", name, "addr", "add", "10.201.0.1/32", "dev", "lo"]);
        ok.then_some(ns)
    }

    /// `loadtest` run inside the namespace against its own callee on 10.201.0.1.
    fn loadtest(&self) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(env!("CARGO_BIN_EXE_loadtest"))
            .arg("--pcap")
            .arg(pcap("sipp-basic.pcap"))
            .args(["--uas", "10.201.0.1:5060", "--local-ip", "10.201.0.1"])
            .args(THREE_SHORT_CALLS)
            .args(["--media-ports", "200", "--timeout", "5"])
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Without `--allow-remote` a target outside loopback is allowed only from inside a network
/// namespace of the project's (named `sbc-*`): there the calls run to 10.201.0.1; the same run in a
/// namespace of another name is refused (exit 2). Skipped where namespaces cannot be made (not
/// root); CI runs as root.
#[test]
fn a_target_in_the_projects_own_namespace_is_allowed() {
    let id = std::process::id() % 100_000;
    let Some(own) = Netns::create(&format!("sbc-lt{id}")) else {
        eprintln!("cannot create a network namespace here: skipped");
        return;
    };
    let run = own.loadtest();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("inside the project's network namespace"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let s: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_all_calls_complete(&s, 3);
    drop(own);

    let other = Netns::create(&format!("lt-other{id}")).expect("a second namespace");
    let run = other.loadtest();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    assert!(err.contains(&format!("lt-other{id}")), "{err}");
}

/// The report renders in headless Chromium (when installed, as `.ci/setup` does) with its three
/// plots; without Chromium, its structure is checked as text.
fn check_html(path: &Path) {
    let html = std::fs::read_to_string(path).unwrap();
    for id in ["plot-cps", "plot-setup", "plot-mos"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(html.contains("<polyline") && html.contains("<rect class=\"bar\""));
    let browser = ["chromium-headless-shell", "chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new("which")
                .arg(b)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        eprintln!("no Chromium: the report's DOM was not rendered");
        return;
    };
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", path.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The parsed DOM holds the SVG elements with their points (not an error page).
    for id in ["plot-cps", "plot-setup", "plot-mos"] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "{id} not in the rendered DOM"
        );
    }
    assert!(dom.contains("<polyline") && dom.contains("<rect"), "{dom}");
}
