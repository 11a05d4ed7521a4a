//! CDRs end to end: the real `sbc` binary between `sipp` instances on loopback addresses of its own
//! (127.43.<n>.x): the fields of answered, busy, cancelled, failed and timed-out calls, the CSV
//! export, and the durability rule (a `kill -9` during a load run loses no record of a call that
//! ended 500 ms or more before it), against SQLite and PostgreSQL.
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside |
//! | `.11:5080` | the SBC, inside |
//! | `.2:5090` | the PBX (sipp UAS) |
//! | `.3:5070` | the caller (sipp UAC) |

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{finish, logs, Sbc, TempDir};

fn ip(n: u8, host: u8) -> String {
    format!("127.43.{n}.{host}")
}

/// The SBC of test `n` with `cdr` (the `[cdr]` section's keys) and `limits`.
fn config(n: u8, cdr: &str, limits: &str) -> String {
    format!(
        "workers = 2\n\
         [sip]\nudp = [\"{}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\naddress = \"{}\"\nport_min = 20000\nport_max = 21999\n\
         [guard]\nallow = [\"{}\"]\n\
         [limits]\n{limits}\n\
         [cdr]\n{cdr}\n",
        ip(n, 1),
        ip(n, 11),
        ip(n, 2),
        ip(n, 12),
        ip(n, 3),
    )
}

/// The SBC with config `text`, in a directory of its own.
fn start(text: &str) -> Sbc {
    Sbc::start_in(TempDir::new("cdr-sbc"), "auto", 5060, text)
}

/// sipp with scenario `scenario` (under tests/scenarios) on `local`, bounded in time.
fn sipp(
    dir: &Path,
    scenario: &str,
    local: (&str, u16),
    remote: Option<&str>,
    extra: &[&str],
) -> Child {
    let mut args = vec!["-timeout", "40s", "-timeout_error"];
    args.extend_from_slice(extra);
    common::sipp_with(dir, &format!("../{scenario}"), local, remote, &args)
}

/// One call: `uas` at the PBX, `uac` from the caller; both must succeed.
fn call(n: u8, dir: &Path, uas: &str, uac: &str, uac_extra: &[&str]) {
    let callee = sipp(dir, uas, (&ip(n, 2), 5090), None, &["-m", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let mut args = vec!["-m", "1", "-s", "1000"];
    args.extend_from_slice(uac_extra);
    let caller = sipp(dir, uac, (&ip(n, 3), 5070), Some(&target), &args);
    let (a, a_err) = finish(caller);
    let (b, b_err) = finish(callee);
    assert!(
        a.success() && b.success(),
        "{uac}: {a} {a_err}\n{uas}: {b} {b_err}\n{}",
        logs(dir, "u")
    );
}

/// A CDR row as the test reads it.
#[derive(Debug)]
struct Row {
    outcome: String,
    sip_status: i64,
    reason: String,
    ended_by: String,
    setup_ms: i64,
    ringing_ms: Option<i64>,
    answer_ms: Option<i64>,
    end_ms: i64,
    duration_ms: i64,
    caller: String,
    callee: String,
    a_call_id: String,
    a_address: String,
    b_address: String,
    a_codec: Option<String>,
    a_packets: i64,
}

fn rows(db: &Path) -> Vec<Row> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare(
            "SELECT c.outcome, c.sip_status, c.reason, c.ended_by, c.setup_ms, c.ringing_ms, \
             c.answer_ms, c.end_ms, c.duration_ms, c.caller, c.callee, a.call_id, a.address, \
             b.address, a.codec, a.packets FROM cdr c \
             JOIN cdr_leg a ON a.cdr_id = c.id AND a.leg = 'a' \
             JOIN cdr_leg b ON b.cdr_id = c.id AND b.leg = 'b' ORDER BY c.id",
        )
        .unwrap();
    s.query_map([], |r| {
        Ok(Row {
            outcome: r.get(0)?,
            sip_status: r.get(1)?,
            reason: r.get(2)?,
            ended_by: r.get(3)?,
            setup_ms: r.get(4)?,
            ringing_ms: r.get(5)?,
            answer_ms: r.get(6)?,
            end_ms: r.get(7)?,
            duration_ms: r.get(8)?,
            caller: r.get(9)?,
            callee: r.get(10)?,
            a_call_id: r.get(11)?,
            a_address: r.get(12)?,
            b_address: r.get(13)?,
            a_codec: r.get(14)?,
            a_packets: r.get(15)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Wait until the file holds `n` records.
fn wait_rows(db: &Path, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = rows(db);
        if r.len() >= n || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn records_of_answered_busy_cancelled_timed_out_and_failed_calls() {
    let n = 1;
    let dir = TempDir::new("cdr-fields");
    let db = dir.path().join("db/cdr.sqlite");
    let sbc = start(&config(
        n,
        &format!("sqlite_path = \"{}\"", db.display()),
        "ringing_timeout_secs = 2",
    ));
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    call(
        n,
        dir.path(),
        "b2bua/uas_basic.xml",
        "b2bua/uac_basic.xml",
        &["-d", "1000"],
    );
    call(
        n,
        dir.path(),
        "b2bua/uas_486.xml",
        "b2bua/uac_expect_486.xml",
        &[],
    );
    call(
        n,
        dir.path(),
        "b2bua/uas_ring_forever.xml",
        "b2bua/uac_cancel.xml",
        &[],
    );
    call(
        n,
        dir.path(),
        "b2bua/uas_ring_forever.xml",
        "cdr/uac_expect_408.xml",
        &[],
    );
    call(
        n,
        dir.path(),
        "b2bua/uas_503.xml",
        "cdr/uac_expect_503.xml",
        &[],
    );
    let r = wait_rows(&db, 5);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let log = sbc.stop();
    assert_eq!(r.len(), 5, "{r:#?}\n{log}");
    let summary: Vec<_> = r
        .iter()
        .map(|r| {
            (
                r.outcome.as_str(),
                r.sip_status,
                r.reason.as_str(),
                r.ended_by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("answered", 200, "bye", "caller"),
            ("failed", 486, "rejected", "callee"),
            ("cancelled", 487, "cancelled", "caller"),
            ("failed", 408, "no_answer", "sbc"),
            ("failed", 503, "rejected", "callee"),
        ],
        "{r:#?}"
    );
    for x in &r {
        assert!(
            before <= x.setup_ms && x.setup_ms <= x.end_ms && x.end_ms <= after,
            "{x:?}"
        );
        assert_eq!(
            (x.caller.as_str(), x.callee.as_str()),
            ("sipp", "1000"),
            "{x:?}"
        );
        assert_eq!(x.a_address, format!("{}:5070", ip(n, 3)), "{x:?}");
        assert_eq!(x.b_address, format!("{}:5090", ip(n, 2)), "{x:?}");
        assert!(x.a_call_id.ends_with(&format!("@{}", ip(n, 3))), "{x:?}");
    }
    let answered = &r[0];
    let (ring, ans) = (answered.ringing_ms.unwrap(), answered.answer_ms.unwrap());
    assert!(answered.setup_ms <= ring && ring <= ans, "{answered:?}");
    assert_eq!(answered.duration_ms, answered.end_ms - ans);
    assert!((900..3000).contains(&answered.duration_ms), "{answered:?}");
    assert_eq!(answered.a_codec.as_deref(), Some("PCMU"), "{answered:?}");
    assert_eq!(answered.a_packets, 0, "sipp sent no RTP: {answered:?}");
    // Rung, never answered.
    assert!(
        r[2].ringing_ms.is_some() && r[2].answer_ms.is_none(),
        "{:?}",
        r[2]
    );
    // The ringing timeout: 2 s after the ring.
    let waited = r[3].end_ms - r[3].ringing_ms.unwrap();
    assert!((1900..4000).contains(&waited), "{:?}", r[3]);
    // The CSV export of the same file through the binary: a header and five calls.
    let out = Command::new(env!("CARGO_BIN_EXE_sbc"))
        .args(["cdr", "export", "--db"])
        .arg(&db)
        .args([
            "--since",
            &(before / 1000).to_string(),
            "--until",
            &(after / 1000 + 1).to_string(),
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{csv}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(lines[0].starts_with("cdr_id,start_utc,"), "{csv}");
    assert!(lines[2].contains(",failed,486,rejected,callee,"), "{csv}");
    let start = lines[1].split(',').nth(1).unwrap();
    assert!(
        start.starts_with("20") && start.ends_with('Z') && start.contains('T'),
        "{csv}"
    );
}

/// A load run through the SBC configured with `cdr`, killed with SIGKILL half way; then every call
/// the caller saw end 500 ms before the kill has its record, read by `recorded` (leg A Call-IDs).
fn kill_during_load(n: u8, dir: &Path, cdr: &str, recorded: &dyn Fn() -> HashSet<String>) {
    let mut sbc = start(&config(n, cdr, ""));
    let calls = ["-m", "2000"];
    let callee = sipp(dir, "b2bua/uas_basic.xml", (&ip(n, 2), 5090), None, &calls);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        dir,
        "cdr/uac_logged.xml",
        (&ip(n, 3), 5070),
        Some(&target),
        &["-m", "2000", "-r", "40", "-d", "200"],
    );
    std::thread::sleep(Duration::from_secs(5));
    let killed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    sbc.kill9();
    std::thread::sleep(Duration::from_millis(300));
    for mut c in [caller, callee] {
        // SAFETY: our own sipp children, by PID.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let _ = c.wait();
    }
    let ended: Vec<(String, f64)> = logs(dir, "uac_logged")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "ENDED").then_some(())?;
            let id = f.next()?.to_owned();
            let t: f64 = f.last()?.parse().ok()?;
            Some((id, t))
        })
        .collect();
    let due: Vec<&String> = ended
        .iter()
        .filter(|(_, t)| *t <= killed - 0.5)
        .map(|(id, _)| id)
        .collect();
    assert!(
        due.len() >= 50,
        "only {} calls ended before the kill",
        due.len()
    );
    // Restart on the same store: it opens and serves again.
    let sbc = start(&config(n, cdr, ""));
    let have = recorded();
    let missing: Vec<_> = due
        .iter()
        .filter(|id| !have.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} calls ended 500 ms before the kill have no record: {:?}",
        missing.len(),
        due.len(),
        &missing[..missing.len().min(5)]
    );
    sbc.stop();
}

#[test]
fn a_kill_during_load_loses_no_record_of_an_ended_call_sqlite() {
    let n = 2;
    let dir = TempDir::new("cdr-kill-sqlite");
    let db = dir.path().join("cdr.sqlite");
    let recorded = || rows(&db).into_iter().map(|r| r.a_call_id).collect();
    kill_during_load(
        n,
        dir.path(),
        &format!("sqlite_path = \"{}\"", db.display()),
        &recorded,
    );
}

/// A PostgreSQL cluster of the test's own, run as the `postgres` user under a temp dir.
struct Cluster {
    data: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    fn start(dir: &Path, host: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let data = dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        let as_pg = |args: &[&str]| {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .current_dir("/")
                .output()
                .unwrap()
        };
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .ok()?;
        let d = data.to_str().unwrap();
        let out = as_pg(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            d,
            "-A",
            "trust",
            "-U",
            "sbc",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!("-k {d} -h {host} -p 5432 -c fsync=on");
        let log = format!("{d}/pg.log");
        let out = as_pg(&[
            bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            d,
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(Self { data, bin })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .current_dir("/")
            .output();
    }
}

#[test]
fn a_kill_during_load_loses_no_record_of_an_ended_call_postgres() {
    let n = 3;
    let dir = TempDir::new("cdr-kill-pg");
    let host = ip(n, 20);
    let Some(_cluster) = Cluster::start(dir.path(), &host) else {
        eprintln!("SKIPPED: PostgreSQL is not installed (Debian package postgresql, .ci/setup)");
        return;
    };
    let url = format!("host={host} port=5432 user=sbc dbname=postgres");
    let recorded = || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query("SELECT call_id FROM cdr_leg WHERE leg = 'a'", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    };
    kill_during_load(
        n,
        dir.path(),
        &format!("postgres_url = \"{url}\""),
        &recorded,
    );
}

/// A webhook receiver on `addr`: answers 500 to the first `fail` requests, then 200, or never
/// answers (`hang`); the JSON events it took.
struct Receiver {
    events: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    fn start(addr: &str, fail: usize, hang: bool) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ev, req) = (events.clone(), requests.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                if hang {
                    req.fetch_add(1, Ordering::Relaxed);
                    held.push(conn);
                    continue;
                }
                let (ev, req) = (ev.clone(), req.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    loop {
                        let mut len = 0;
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let n = req.fetch_add(1, Ordering::Relaxed);
                        let status = if n < fail {
                            "500 Internal Server Error"
                        } else {
                            let v: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                            ev.lock().unwrap().extend(v);
                            "200 OK"
                        };
                        let _ = write!(w, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    }
                });
            }
        });
        Self { events, requests }
    }

    fn kinds(&self) -> Vec<String> {
        let e = self.events.lock().unwrap();
        e.iter()
            .map(|v| v["event"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Calls through an SBC whose webhook is `events` (the `[events]` keys); the stop log.
fn calls_with_webhook(n: u8, dir: &Path, events: &str, calls: &str) -> String {
    let text = format!("{}[events]\n{events}\n", config(n, "enabled = false", ""));
    let sbc = start(&text);
    let callee = sipp(
        dir,
        "b2bua/uas_basic.xml",
        (&ip(n, 2), 5090),
        None,
        &["-m", calls],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        dir,
        "b2bua/uac_basic.xml",
        (&ip(n, 3), 5070),
        Some(&target),
        &["-m", calls, "-r", "20", "-d", "100"],
    );
    let (a, a_err) = finish(caller);
    let (b, b_err) = finish(callee);
    assert!(
        a.success() && b.success(),
        "{a} {a_err}\n{b} {b_err}\n{}",
        logs(dir, "u")
    );
    sbc.stop()
}

fn wait_events(r: &Receiver, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.kinds().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    r.kinds()
}

#[test]
fn webhook_gets_start_answer_and_end_of_every_call() {
    let n = 4;
    let dir = TempDir::new("cdr-webhook");
    let r = Receiver::start(&format!("{}:8080", ip(n, 30)), 0, false);
    let url = format!("webhook_url = \"http://{}:8080/events\"", ip(n, 30));
    calls_with_webhook(n, dir.path(), &url, "5");
    let kinds = wait_events(&r, 15);
    for k in ["call_start", "call_answer", "call_end"] {
        assert_eq!(
            kinds.iter().filter(|x| *x == k).count(),
            5,
            "{k}: {kinds:?}"
        );
    }
    let e = r.events.lock().unwrap();
    let end = e.iter().find(|v| v["event"] == "call_end").unwrap();
    assert_eq!(
        (end["outcome"].as_str(), end["sip_status"].as_i64()),
        (Some("answered"), Some(200))
    );
    assert_eq!(end["leg_a"]["address"], format!("{}:5070", ip(n, 3)));
}

#[test]
fn webhook_retries_after_server_errors() {
    let n = 5;
    let dir = TempDir::new("cdr-webhook-500");
    let r = Receiver::start(&format!("{}:8080", ip(n, 30)), 2, false);
    let url = format!(
        "webhook_url = \"http://{}:8080/events\"\nretry_backoff_ms = 50",
        ip(n, 30)
    );
    let log = calls_with_webhook(n, dir.path(), &url, "2");
    let kinds = wait_events(&r, 6);
    assert_eq!(kinds.len(), 6, "{kinds:?}\n{log}");
    assert!(r.requests.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert!(log.contains("events_failed=0"), "{log}");
}

#[test]
fn a_webhook_that_never_answers_costs_dropped_events_not_calls() {
    let n = 6;
    let dir = TempDir::new("cdr-webhook-hang");
    let _r = Receiver::start(&format!("{}:8080", ip(n, 30)), 0, true);
    let url = format!(
        "webhook_url = \"http://{}:8080/events\"\nqueue = 2\nattempts = 2\ntimeout_ms = 500",
        ip(n, 30)
    );
    // Every call completes (asserted inside); the events past the queue are counted as dropped.
    let log = calls_with_webhook(n, dir.path(), &url, "20");
    let dropped: u64 = log
        .split("events_dropped: ")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(dropped > 10, "events_dropped {dropped}\n{log}");
}
