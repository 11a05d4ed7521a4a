use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sbc_core::b2bua::{CallId, CallRecord, EndReason, EndedBy, Outcome};
use sbc_core::media::{LegStats, StreamStats};
use sbc_core::signalling::topology::Side;

use super::export::{export_csv, iso8601, parse_time, CSV_HEADER};
use super::webhook::{self, Event, Post, Retry};
use super::*;

fn record(t0: Instant) -> CallRecord {
    let leg = |packets, lost, jitter| LegStats {
        packets,
        bytes: packets * 172,
        rtcp_packets: 3,
        lost,
        jitter,
        ports: sbc_core::media::RelayPorts::new(30_000, 30_001),
        rtcp_mux: false,
        rtp: sbc_core::media::Endpoint::default(),
        rtcp: sbc_core::media::Endpoint::default(),
        rtcp_bytes: 0,
        forwarded: packets,
        dropped: 0,
        last_packet: None,
        stages: Default::default(),
    };
    CallRecord {
        call: CallId(42),
        a_call_id: "a-1@x".into(),
        b_call_id: "b-1".into(),
        caller: "alice".into(),
        caller_addr: "198.51.100.7:5062".parse().unwrap(),
        caller_side: Side::Outside,
        dialled: "0301234".into(),
        callee: "+49301234".into(),
        target: "10.0.0.2:5060".parse().unwrap(),
        target_side: Side::Inside,
        trunk: false,
        label: Some("pbx".into()),
        invited: t0,
        ringing: Some(t0 + Duration::from_millis(100)),
        answered: Some(t0 + Duration::from_millis(1_000)),
        ended: t0 + Duration::from_millis(13_500),
        outcome: Outcome::Answered,
        reason: EndReason::Bye(Side::Outside),
        ended_by: EndedBy::Caller,
        failovers: 1,
        caller_codec: Some("PCMU".into()),
        callee_codec: Some("PCMA".into()),
        media: vec![StreamStats {
            clock_rate: 8000,
            a: leg(500, 2, 80),
            b: leg(498, 0, 16),
        }],
    }
}

/// 2026-12-05T10:00:00Z.
const WALL_MS: u64 = 1_796_464_800_000;

fn msg(t0: Instant) -> CdrMsg {
    let rec = record(t0);
    CdrMsg {
        worker: 1,
        mono: rec.ended,
        wall: UNIX_EPOCH + Duration::from_millis(WALL_MS),
        record: Box::new(rec),
        flags: "fraud_warning",
    }
}

#[test]
fn a_record_becomes_a_row_in_wall_clock_time() {
    let c = Cdr::from_msg(&msg(Instant::now()));
    let end = WALL_MS as i64;
    assert_eq!(
        (c.setup_ms, c.ringing_ms, c.answer_ms, c.end_ms),
        (end - 13_500, Some(end - 13_400), Some(end - 12_500), end)
    );
    assert_eq!(c.duration_ms, 12_500);
    assert_eq!(
        (c.outcome, c.sip_status, c.reason, c.ended_by),
        ("answered", 200, "bye", "caller")
    );
    assert_eq!(c.flags, "fraud_warning;failover");
    assert_eq!((c.caller_side, c.target_side), ("outside", "inside"));
    let [a, b] = &c.legs;
    assert_eq!(
        (a.leg, a.address.as_str(), a.codec.as_deref()),
        ("a", "198.51.100.7:5062", Some("PCMU"))
    );
    assert_eq!((a.packets, a.bytes, a.lost, a.streams), (500, 86_000, 2, 1));
    assert!(
        (a.jitter_ms - 10.0).abs() < 1e-9,
        "80 units at 8 kHz: {}",
        a.jitter_ms
    );
    assert_eq!(
        (b.leg, b.address.as_str(), b.call_id.as_str()),
        ("b", "10.0.0.2:5060", "b-1")
    );
    // The outcomes of calls not answered.
    let mut m = msg(Instant::now());
    m.record.answered = None;
    m.record.outcome = Outcome::Cancelled;
    m.record.reason = EndReason::Cancelled;
    let c = Cdr::from_msg(&m);
    assert_eq!(
        (c.outcome, c.sip_status, c.duration_ms, c.answer_ms),
        ("cancelled", 487, 0, None)
    );
    m.record.outcome = Outcome::Failed(486);
    m.record.reason = EndReason::Rejected(486);
    assert_eq!(Cdr::from_msg(&m).sip_status, 486);
}

#[test]
fn times_print_and_parse_as_iso8601_utc() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(WALL_MS as i64 + 7), "2026-12-05T10:00:00.007Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(parse_time("2026-12-05T10:00:00Z"), Ok(WALL_MS as i64));
    assert_eq!(parse_time("2026-12-05 10:00"), Ok(WALL_MS as i64));
    assert_eq!(parse_time("2026-12-05"), Ok(WALL_MS as i64 - 36_000_000));
    assert_eq!(parse_time("1796464800"), Ok(WALL_MS as i64));
    for bad in ["2026-13-01", "yesterday", "2026-12-05T25:00Z", "2026-12"] {
        assert!(parse_time(bad).is_err(), "{bad}");
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("sbc-cdr-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn sqlite_keeps_records_across_reopen_and_exports_csv() {
    let dir = Dir::new("sqlite");
    // The directory does not exist yet: it is created.
    let path = dir.0.join("sub/cdr.sqlite");
    let mut db = sqlite::Sqlite::open(&path).unwrap();
    let row = Cdr::from_msg(&msg(Instant::now()));
    let mut other = row.clone();
    other.end_ms += 86_400_000;
    other.caller = "bob, \"the\" builder".into();
    db.write(&[row.clone(), other]).unwrap();
    drop(db);
    // Opening again keeps the rows and the schema version.
    let db = sqlite::Sqlite::open(&path).unwrap();
    drop(db);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM cdr", [], |r| r.get(0))
        .unwrap();
    let legs: i64 = conn
        .query_row("SELECT count(*) FROM cdr_leg", [], |r| r.get(0))
        .unwrap();
    let v: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!((n, legs, v, mode.as_str()), (2, 4, SCHEMA_VERSION, "wal"));
    // The export takes the calls that ended in the window, one row each.
    let mut out = Vec::new();
    let since = WALL_MS as i64 - 1000;
    let written = export_csv(&path, since, since + 86_400_000, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!((written, lines.len()), (1, 2), "{text}");
    assert_eq!(lines[0], CSV_HEADER);
    let header: Vec<&str> = CSV_HEADER.split(',').collect();
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), fields.len(), "{text}");
    let field = |name: &str| fields[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(field("start_utc"), "2026-12-05T09:59:46.500Z");
    assert_eq!(field("answer_utc"), "2026-12-05T09:59:47.500Z");
    assert_eq!(field("end_utc"), "2026-12-05T10:00:00.000Z");
    assert_eq!(
        (field("duration_s"), field("total_s")),
        ("12.500", "13.500")
    );
    assert_eq!(
        (field("caller"), field("callee"), field("route")),
        ("alice", "+49301234", "pbx")
    );
    assert_eq!(
        (field("outcome"), field("sip_status"), field("ended_by")),
        ("answered", "200", "caller")
    );
    assert_eq!(
        (field("caller_codec"), field("callee_codec")),
        ("PCMU", "PCMA")
    );
    assert_eq!(
        (field("a_packets"), field("a_lost"), field("a_jitter_ms")),
        ("500", "2", "10.0")
    );
    // A field with a comma and quotes is quoted.
    let mut out = Vec::new();
    export_csv(&path, since + 86_400_000, since + 2 * 86_400_000, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(",\"bob, \"\"the\"\" builder\","), "{text}");
}

/// A backend that blocks until released, as a stalled disk would.
struct Stalled {
    release: Arc<Mutex<()>>,
    rows: Arc<AtomicU64>,
}

impl Backend for Stalled {
    fn write(&mut self, rows: &[Cdr]) -> Result<(), String> {
        let _held = self.release.lock().unwrap();
        self.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn a_stalled_writer_never_stalls_a_worker_and_drops_are_counted() {
    let release = Arc::new(Mutex::new(()));
    let rows = Arc::new(AtomicU64::new(0));
    let stall = release.lock().unwrap();
    let (tx, rx) = channel(100);
    let backend = Stalled {
        release: release.clone(),
        rows: rows.clone(),
    };
    let writer = std::thread::spawn(move || run(Box::new(backend), &rx, 10));
    let mut out = Outlets::new(0);
    out.cdr = Some(Outlet::new(tx, "CDRs"));
    let mut stats = crate::stats::B2bua::default();
    let t0 = Instant::now();
    let calls = 5_000;
    for i in 0..calls {
        let mut rec = record(t0);
        rec.call = CallId(i);
        out.ended(t0, Box::new(rec), &mut stats);
    }
    // 5000 ends took no time at all although nothing was written: the worker went on.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(rows.load(Ordering::Relaxed), 0);
    // The writer holds one batch (10) and the channel 100: the rest was dropped and counted.
    assert!(
        (calls - 110..=calls - 100).contains(&stats.cdr_dropped),
        "dropped {}",
        stats.cdr_dropped
    );
    drop(stall);
    drop(out);
    writer.join().unwrap();
    assert_eq!(rows.load(Ordering::Relaxed) + stats.cdr_dropped, calls);
}

/// A webhook that fails its first `fail` posts, and records the bodies.
struct Flaky {
    fail: u32,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Post for Flaky {
    fn post(&mut self, body: &str) -> Result<(), String> {
        if self.fail > 0 {
            self.fail -= 1;
            return Err("HTTP 500".into());
        }
        self.bodies.lock().unwrap().push(body.to_owned());
        Ok(())
    }
}

fn post_events(fail: u32, attempts: u32) -> (Vec<serde_json::Value>, u64) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = crossbeam_channel::bounded(10);
    let at = UNIX_EPOCH + Duration::from_millis(WALL_MS);
    tx.send(Event::CallStarted {
        worker: 1,
        call: 42,
        at,
    })
    .unwrap();
    tx.send(Event::CallEnded(Box::new(msg(Instant::now()))))
        .unwrap();
    drop(tx);
    let failed = AtomicU64::new(0);
    let client = Flaky {
        fail,
        bodies: bodies.clone(),
    };
    let retry = Retry {
        attempts,
        backoff: Duration::from_millis(1),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    webhook::run(Box::new(client), &rx, retry, &failed, &stop);
    let posted = bodies.lock().unwrap().clone();
    let events = posted
        .iter()
        .flat_map(|b| serde_json::from_str::<Vec<serde_json::Value>>(b).unwrap())
        .collect();
    (events, failed.load(Ordering::Relaxed))
}

#[test]
fn webhook_retries_then_gives_up_counting() {
    // Two failures, three attempts: posted on the third.
    let (events, failed) = post_events(2, 3);
    assert_eq!((events.len(), failed), (2, 0));
    assert_eq!(events[0]["event"], "call_start");
    assert_eq!(events[0]["time"], "2026-12-05T10:00:00.000Z");
    let end = &events[1];
    assert_eq!(
        (end["event"].as_str(), end["outcome"].as_str()),
        (Some("call_end"), Some("answered"))
    );
    assert_eq!(
        (end["caller"].as_str(), end["sip_status"].as_i64()),
        (Some("alice"), Some(200))
    );
    assert_eq!(end["leg_a"]["packets"], 500);
    // Failing every attempt: both events counted as failed.
    let (events, failed) = post_events(10, 3);
    assert_eq!((events.len(), failed), (0, 2));
}

#[test]
fn wall_clock_of_a_time_after_the_reading() {
    let mono = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
    assert_eq!(wall_ms(mono + Duration::from_millis(5), mono, wall), 10_005);
    assert_eq!(wall_ms(mono, mono + Duration::from_secs(20), wall), 0);
}

#[test]
fn a_fraud_warning_flags_the_record_of_its_call() {
    let (tx, rx) = channel(10);
    let mut out = Outlets::new(3);
    out.cdr = Some(Outlet::new(tx, "CDRs"));
    let mut stats = crate::stats::B2bua::default();
    let t0 = Instant::now();
    out.flag_fraud(CallId(42));
    out.ended(t0, Box::new(record(t0)), &mut stats);
    let mut other = record(t0);
    other.call = CallId(43);
    out.ended(t0, Box::new(other), &mut stats);
    let flags: Vec<_> = rx.try_iter().map(|m| (m.worker, m.flags)).collect();
    assert_eq!(flags, [(3, "fraud_warning"), (3, "")]);
}

#[test]
fn each_new_ban_is_posted_once() {
    use sbc_core::guard::{BanInfo, BanReason};
    let (tx, rx) = crossbeam_channel::bounded(10);
    let mut out = Outlets::new(0);
    out.events = Some(Outlet::new(tx, "events"));
    let mut stats = crate::stats::B2bua::default();
    let now = Instant::now();
    let ban = |last: u8, level| BanInfo {
        ip: std::net::IpAddr::from([192, 0, 2, last]),
        remaining_ms: Some(60_000),
        level,
        reason: BanReason::Flood,
    };
    out.bans(now, 1, || vec![ban(1, 1)], &mut stats);
    // No new ban counted: the list is not even looked at.
    out.bans(now, 1, || panic!("listed without a new ban"), &mut stats);
    // A second source, and the first banned again (level 2).
    out.bans(now, 3, || vec![ban(1, 2), ban(2, 1)], &mut stats);
    let posted: Vec<_> = rx
        .try_iter()
        .map(|e| {
            let v = e.to_json();
            (
                v["ip"].as_str().unwrap().to_owned(),
                v["level"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [("192.0.2.1", 1), ("192.0.2.1", 2), ("192.0.2.2", 1)];
    let want: Vec<_> = want.iter().map(|(i, l)| ((*i).to_owned(), *l)).collect();
    assert_eq!(posted, want);
}
