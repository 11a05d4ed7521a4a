//! Call rules and fraud rules end to end: the real `sbc` binary (one worker: the rules' counters are
//! per worker) between `sipp` callers and a `sipp` PBX, each test on its own loopback addresses
//! (127.37.<n>.x):
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside |
//! | `.11:5080` | the SBC, inside |
//! | `.2:5090` | the PBX (sipp UAS) |
//! | `.3:5070..` | callers outside (sipp UAC) |
//!
//! A refused call is answered by the SBC and never reaches the PBX: each test reads what the PBX
//! received from its sipp message log.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::{finish, scenario, spawn_quiet, Sbc, TempDir};

fn ip(n: u8, host: u8) -> String {
    format!("127.37.{n}.{host}")
}

/// The SBC of test `n` with `rules` (TOML sections) appended: every call from the outside goes to
/// the PBX.
fn start_sbc(n: u8, name: &str, rules: &str) -> Sbc {
    let text = format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nenabled = false\n{rules}",
        out = ip(n, 1),
        inside = ip(n, 11),
        pbx = ip(n, 2),
    );
    Sbc::start_in(TempDir::new(name), "epoll", 5060, &text)
}

/// One sipp process in `dir` on `local` running `scen` (at most 45 s), toward `remote` if given.
fn sipp(dir: &Path, scen: &str, local: (&str, u16), remote: Option<&str>, args: &[&str]) -> Child {
    let port = local.1.to_string();
    let mut cmd = Command::new("timeout");
    cmd.args(["45", "sipp", "-sf"]).arg(scenario(scen));
    cmd.args([
        "-i",
        local.0,
        "-p",
        &port,
        "-nostdin",
        "-trace_err",
        "-trace_msg",
    ]);
    cmd.args(["-timeout", "30s", "-timeout_error"])
        .args(remote)
        .args(args);
    spawn_quiet(&mut cmd, dir)
}

/// The PBX of test `n`: a sipp UAS answering `calls` calls, logging into `dir/pbx`.
fn pbx(n: u8, dir: &Path, calls: usize) -> Child {
    let pbx_dir = dir.join("pbx");
    std::fs::create_dir_all(&pbx_dir).unwrap();
    let m = calls.to_string();
    let child = sipp(
        &pbx_dir,
        "uas_basic.xml",
        (&ip(n, 2), 5090),
        None,
        &["-m", &m],
    );
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// One call from caller port `port` of test `n` to `number` with scenario `scen`; its result.
fn call(n: u8, dir: &Path, scen: &str, port: u16, number: &str, hold_ms: u32) -> Child {
    let target = format!("{}:5060", ip(n, 1));
    let hold = hold_ms.to_string();
    sipp(
        dir,
        scen,
        (&ip(n, 3), port),
        Some(&target),
        &["-m", "1", "-s", number, "-d", &hold],
    )
}

/// Wait for a sipp run and require its success.
fn succeeded(what: &str, child: Child, sbc: &Sbc) {
    let (status, err) = finish(child);
    assert!(
        status.success(),
        "{what}: {status} {err}\n{}",
        sbc.log_text()
    );
}

/// The Request-URIs of every INVITE the PBX received (sipp's message logs in `dir/pbx`).
fn invites_at_pbx(dir: &Path) -> Vec<String> {
    let mut uris = Vec::new();
    for e in std::fs::read_dir(dir.join("pbx")).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        uris.extend(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("INVITE "))
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned()),
        );
    }
    uris
}

/// Whether the PBX received an INVITE for one of `numbers`.
fn reached_pbx(dir: &Path, numbers: &[&str]) -> bool {
    invites_at_pbx(dir)
        .iter()
        .any(|u| numbers.iter().any(|n| u.starts_with(&format!("sip:{n}@"))))
}

/// Stop the SBC; no call may be left, and its exit log must show each of `counts` ("name: value").
fn stopped(sbc: Sbc, counts: &[&str]) -> String {
    let log = sbc.stop();
    for c in ["live_calls: 0"].iter().chain(counts) {
        assert!(
            log.contains(&format!("{c},")),
            "no {c:?} in the log:\n{log}"
        );
    }
    log
}

#[test]
fn blacklisted_number_and_prefix_refused_403_and_never_reach_the_pbx() {
    let n = 1;
    let sbc = start_sbc(
        n,
        "fraud-blacklist",
        "[[rules]]\nname = \"premium\"\n\
         callee_blacklist = [\"+4915112345678\", \"+49900*\"]\n",
    );
    let dir = sbc.dir.path().to_owned();
    let pbx = pbx(n, &dir, 1);
    for (port, number) in [(5070, "+4915112345678"), (5071, "+499001234")] {
        let c = call(n, &dir, "uac_expect_403.xml", port, number, 0);
        succeeded(number, c, &sbc);
    }
    // A number on no list goes through: the PBX was there all along.
    let ok = call(n, &dir, "uac_basic.xml", 5072, "+4930123456", 0);
    succeeded("+4930123456", ok, &sbc);
    succeeded("pbx", pbx, &sbc);
    assert!(reached_pbx(&dir, &["+4930123456"]));
    assert!(
        !reached_pbx(&dir, &["+4915112345678", "+499001234"]),
        "the PBX received: {:?}",
        invites_at_pbx(&dir)
    );
    stopped(sbc, &["calls_refused_list: 2"]);
}

#[test]
fn concurrent_calls_per_source_refused_486_at_the_limit() {
    let n = 2;
    // The default limit on untrusted sources, set low.
    let sbc = start_sbc(n, "fraud-concurrent", "[fraud]\nuntrusted_max_calls = 2\n");
    let dir = sbc.dir.path().to_owned();
    let pbx1 = pbx(n, &dir, 2);
    // Two calls held for 3 s from one address (two ports) ...
    let held: Vec<Child> = [5070, 5071]
        .into_iter()
        .map(|port| call(n, &dir, "uac_basic.xml", port, "100", 3000))
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    // ... then a third from the same address is busy.
    let third = call(n, &dir, "uac_expect_486.xml", 5072, "101", 0);
    succeeded("third call", third, &sbc);
    for (i, c) in held.into_iter().enumerate() {
        succeeded(&format!("held call {i}"), c, &sbc);
    }
    succeeded("pbx", pbx1, &sbc);
    assert!(
        !reached_pbx(&dir, &["101"]),
        "the busy call reached the PBX"
    );
    // The held calls ended: their counts are back, a new call goes through.
    std::fs::remove_dir_all(dir.join("pbx")).unwrap();
    let pbx2 = pbx(n, &dir, 1);
    let again = call(n, &dir, "uac_basic.xml", 5073, "102", 0);
    succeeded("call after the others ended", again, &sbc);
    succeeded("pbx", pbx2, &sbc);
    stopped(sbc, &["calls_refused_busy: 1"]);
}

#[test]
fn sequential_dialling_triggers_the_critical_rule() {
    let n = 3;
    let sbc = start_sbc(
        n,
        "fraud-sequential",
        "[[fraud.rules]]\nname = \"sweep\"\nprefix = \"+4930\"\n\
         sequential_calls = { warning = 2, critical = 4 }\n",
    );
    let dir = sbc.dir.path().to_owned();
    let pbx = pbx(n, &dir, 3);
    for (i, number) in ["+4930555100", "+4930555101", "+4930555102"]
        .into_iter()
        .enumerate()
    {
        let c = call(n, &dir, "uac_basic.xml", 5070 + i as u16, number, 0);
        succeeded(number, c, &sbc);
    }
    let fourth = call(n, &dir, "uac_expect_403.xml", 5073, "+4930555103", 0);
    succeeded("fourth number in sequence", fourth, &sbc);
    succeeded("pbx", pbx, &sbc);
    assert!(
        !reached_pbx(&dir, &["+4930555103"]),
        "the blocked call reached the PBX"
    );
    let log = stopped(sbc, &["fraud_blocked: 1", "fraud_warnings: 2"]);
    assert!(
        log.contains("fraud: call blocked") && log.contains("rule=\"sweep\""),
        "{log}"
    );
}

/// An INVITE from `from` (a raw socket) for `number`, Call-ID `id`.
fn invite(from: &UdpSocket, to: &str, number: &str, id: &str) -> Vec<u8> {
    let local = from.local_addr().unwrap();
    format!(
        "INVITE sip:{number}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{local}>;tag=a-{id}\r\nTo: <sip:{number}@{to}>\r\n\
         Call-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn calls_over_a_rules_rate_refused_503_with_retry_after() {
    let n = 4;
    let sbc = start_sbc(
        n,
        "fraud-rate",
        "[[rules]]\nname = \"slow\"\nmax_cps = 1.0\nper = \"source\"\n",
    );
    // A PBX that only listens: the admitted call rings there unanswered.
    let pbx = UdpSocket::bind(format!("{}:5090", ip(n, 2))).unwrap();
    pbx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let caller = UdpSocket::bind(format!("{}:5070", ip(n, 3))).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let to = format!("{}:5060", ip(n, 1));
    caller
        .send_to(&invite(&caller, &to, "100", "rate-1"), &to)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = pbx.recv_from(&mut buf).unwrap();
    assert!(buf[..len].starts_with(b"INVITE sip:100@"));
    caller
        .send_to(&invite(&caller, &to, "101", "rate-2"), &to)
        .unwrap();
    let answer = loop {
        let (len, _) = caller
            .recv_from(&mut buf)
            .expect("an answer to the second INVITE");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        if text.contains("Call-ID: rate-2") && !text.starts_with("SIP/2.0 1") {
            break text;
        }
    };
    assert!(answer.starts_with("SIP/2.0 503 "), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
    // Nothing more reached the PBX than the first call (and its retransmissions).
    pbx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok((len, _)) = pbx.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..len]);
        assert!(
            !text.contains("sip:101@"),
            "the refused call reached the PBX:\n{text}"
        );
    }
    let log = sbc.stop();
    assert!(log.contains("calls_refused_rate: 1,"), "{log}");
}
