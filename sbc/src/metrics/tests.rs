//! Tests of the exposition: against its documentation (`docs/metrics.md`), the Grafana dashboard
//! (`docs/grafana/sbc.json`), `promtool check metrics`, and its render time at 10,000 live calls.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sbc_core::b2bua::{CallId, CallRecord, EndReason, EndedBy, Outcome};
use sbc_core::media::{Endpoint, LegStats, RelayPorts, StreamStats};
use sbc_core::signalling::topology::Side;

use super::*;
use crate::observe::{LoopClock, SipTraffic};

const DOC: &str = include_str!("../../../docs/metrics.md");
const DASHBOARD: &str = include_str!("../../../docs/grafana/sbc.json");

fn leg(packets: u64, lost: i64, jitter: u32) -> LegStats {
    LegStats {
        ports: RelayPorts::new(30000, 30001),
        rtcp_mux: false,
        rtp: Endpoint::default(),
        rtcp: Endpoint::default(),
        packets,
        bytes: packets * 172,
        rtcp_packets: 0,
        rtcp_bytes: 0,
        forwarded: packets,
        dropped: 0,
        lost,
        jitter,
        last_packet: None,
        stages: Default::default(),
    }
}

/// The record of a call answered after `ring` ms of ringing (first 18x at 100 ms), up for
/// `secs` seconds, with one audio stream.
fn record(t0: Instant, outcome: Outcome, ring_ms: u64, secs: u64) -> CallRecord {
    let ms = Duration::from_millis;
    let answered = (outcome == Outcome::Answered).then(|| t0 + ms(ring_ms));
    CallRecord {
        call: CallId(1),
        a_call_id: "a".into(),
        b_call_id: "b".into(),
        caller: "alice".into(),
        dialled: "100".into(),
        callee: "100".into(),
        target: SocketAddr::from(([127, 42, 0, 1], 5060)),
        target_side: Side::Inside,
        caller_addr: SocketAddr::from(([192, 0, 2, 7], 5060)),
        caller_side: Side::Outside,
        trunk: false,
        label: None,
        invited: t0,
        ringing: Some(t0 + ms(100)),
        answered,
        ended: answered.unwrap_or(t0 + ms(ring_ms)) + Duration::from_secs(secs),
        outcome,
        reason: EndReason::Bye(Side::Outside),
        ended_by: EndedBy::Caller,
        failovers: 0,
        caller_codec: Some("PCMU".into()),
        callee_codec: Some("PCMU".into()),
        media: vec![StreamStats {
            clock_rate: 8000,
            a: leg(1000, 10, 80),
            b: leg(1000, 0, 8),
        }],
    }
}

/// A worker's snapshot with `calls` ended calls observed and `live` calls up.
fn snapshot(worker: u16, calls: u64, live: u64) -> WorkerSnapshot {
    let t0 = Instant::now();
    let mut layers = Layers::default();
    layers.b2bua.live_calls = live;
    layers.b2bua.calls_started = calls + live;
    layers.b2bua.calls_ended = calls;
    layers.transport.udp_rx = 10 * calls;
    layers.media.media_forwarded = 1000 * calls;
    layers.guard.bans_flood = 2;
    layers.rules.fraud_warnings = 1;
    let o = &mut layers.observed;
    for i in 0..calls {
        let outcome = match i % 5 {
            0 => Outcome::Failed(486),
            1 => Outcome::Cancelled,
            _ => Outcome::Answered,
        };
        o.calls
            .call_ended(&record(t0, outcome, 2000 + i % 3000, i % 600));
    }
    let mut sip = SipTraffic::default();
    for _ in 0..calls {
        sip.sent(b"INVITE sip:100@pbx SIP/2.0\r\n");
        sip.sent(b"SIP/2.0 200 OK\r\n");
    }
    o.sip = sip;
    o.media_dropped = [1, 2, 3, 4, 5];
    let mut clock = LoopClock::default();
    clock.woke(t0);
    clock.waits(t0 + Duration::from_micros(300));
    clock.woke(t0 + Duration::from_millis(1));
    clock.roll();
    o.work = clock.stats();
    WorkerSnapshot {
        worker,
        seq: 1,
        at: t0,
        last: false,
        layers,
    }
}

fn sample_text() -> String {
    let (a, b) = (snapshot(0, 300, 7), snapshot(1, 200, 5));
    with_process(render_snapshots(&[&a, &b]), 12, 2)
}

/// The families of a rendered text: name → (type, label names other than `le`).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.insert(name.to_owned(), (kind.to_owned(), BTreeSet::new()));
        } else if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            let family = out
                .keys()
                .find(|f| {
                    name == *f
                        || ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_suffix(s) == Some(f))
                })
                .cloned()
                .unwrap_or_else(|| panic!("sample {name} before its TYPE"));
            if let Some(labels) = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
            {
                for pair in labels.0.split(',') {
                    let key = pair.split_once('=').unwrap().0;
                    if key != "le" {
                        out.get_mut(&family).unwrap().1.insert(key.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The rows of the table in `docs/metrics.md`: name → (type, label names).
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | meaning |
        if cells.len() < 5 || !cells[1].starts_with("`sbc_") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`'))
            .filter(|l| !l.is_empty() && *l != "-")
            .map(str::to_owned)
            .collect();
        assert!(
            out.insert(name.clone(), (cells[2].to_owned(), labels))
                .is_none(),
            "{name} has two rows"
        );
    }
    out
}

#[test]
fn every_metric_has_a_row_and_every_row_a_metric() {
    let rendered = families(&sample_text());
    let doc = documented();
    let missing: Vec<_> = rendered.keys().filter(|k| !doc.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "metrics without a row in docs/metrics.md: {missing:?}"
    );
    let stale: Vec<_> = doc.keys().filter(|k| !rendered.contains_key(*k)).collect();
    assert!(
        stale.is_empty(),
        "rows of docs/metrics.md naming no metric: {stale:?}"
    );
    for (name, (kind, labels)) in &rendered {
        assert_eq!(
            &doc[name],
            &(kind.clone(), labels.clone()),
            "type and labels of {name} in docs/metrics.md"
        );
    }
}

#[test]
fn every_dashboard_query_names_a_documented_metric() {
    let doc = documented();
    let mut queries = 0;
    for line in DASHBOARD.lines() {
        let Some((_, expr)) = line.split_once("\"expr\":") else {
            continue;
        };
        queries += 1;
        let mut names = 0;
        for (i, _) in expr.match_indices("sbc_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| doc.contains_key(*f)))
                .unwrap_or(&name);
            assert!(
                doc.contains_key(family),
                "the dashboard queries {name}, not in docs/metrics.md: {expr}"
            );
            names += 1;
        }
        assert!(names > 0, "a dashboard query names no sbc metric: {expr}");
    }
    assert!(queries >= 7, "the dashboard has {queries} queries");
}

#[test]
fn values_and_histograms() {
    let text = sample_text();
    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        )
    };
    has("sbc_workers 2");
    has("sbc_b2bua_live_calls 12");
    has("sbc_b2bua_calls_started_total 512");
    has("sbc_transport_udp_rx_total 5000");
    // The layer's own prefix is not repeated.
    has("sbc_media_forwarded_total 500000");
    has("sbc_guard_bans_total{reason=\"flood\"} 4");
    has("sbc_rules_fraud_events_total{outcome=\"warning\"} 2");
    has("sbc_media_dropped_total{reason=\"wrong_source\"} 6");
    // 500 calls: every fifth busy, every fifth cancelled, the rest answered.
    has("sbc_calls_ended_total{outcome=\"busy\"} 100");
    has("sbc_calls_ended_total{outcome=\"cancelled\"} 100");
    has("sbc_calls_ended_total{outcome=\"answered\"} 300");
    // Every call rang after 100 ms: in the 0.1 s bucket, not in the 0.05 s one.
    has("sbc_call_setup_ringing_seconds_bucket{le=\"0.05\"} 0");
    has("sbc_call_setup_ringing_seconds_bucket{le=\"0.1\"} 500");
    has("sbc_call_setup_ringing_seconds_bucket{le=\"+Inf\"} 500");
    has("sbc_call_setup_ringing_seconds_sum 50");
    has("sbc_call_setup_answer_seconds_count 300");
    // The caller's leg lost 1 % with 10 ms of jitter; the callee's nothing with 1 ms.
    has("sbc_media_loss_ratio_bucket{side=\"caller\",le=\"0.005\"} 0");
    has("sbc_media_loss_ratio_bucket{side=\"caller\",le=\"0.01\"} 500");
    has("sbc_media_loss_ratio_bucket{side=\"callee\",le=\"0\"} 500");
    has("sbc_media_jitter_seconds_bucket{side=\"caller\",le=\"0.01\"} 500");
    has("sbc_media_mos_bucket{side=\"caller\",le=\"4.3\"} 0");
    has("sbc_media_mos_bucket{side=\"caller\",le=\"4.4\"} 500");
    has("sbc_media_mos_count{side=\"callee\"} 500");
    has("sbc_sip_requests_sent_total{method=\"INVITE\"} 500");
    has("sbc_sip_responses_sent_total{class=\"2xx\"} 500");
    // Per worker: 300 µs busy of 1 ms.
    has("sbc_worker_busy_seconds_total{worker=\"1\"} 0.0003");
    has("sbc_worker_load_ratio{worker=\"0\"} 0.3");
    has("sbc_worker_loop_seconds_bucket{worker=\"0\",le=\"0.00025\"} 0");
    has("sbc_worker_loop_seconds_bucket{worker=\"0\",le=\"0.0005\"} 1");
    // The series bound stated in docs/metrics.md, at 2 workers.
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series <= 500 + 2 * 20, "{series} series");
}

#[test]
fn grouped_fields_exist_and_names_are_unique() {
    let l = Layers::default();
    let all = layer_fields(&l);
    for (layer, field, ..) in GROUPED {
        assert!(
            all.iter()
                .any(|(n, fs)| n == layer && fs.iter().any(|f| f.name == *field)),
            "{layer}.{field} is grouped but does not exist"
        );
    }
    assert_eq!(flat_name("guard", "guard_dropped"), "sbc_guard_dropped");
    assert_eq!(flat_name("guard", "bans_flood"), "sbc_guard_bans_flood");
    assert_eq!(flat_name("transport", "udp_rx"), "sbc_transport_udp_rx");
    // One TYPE line per family.
    let text = sample_text();
    let types: Vec<_> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
    let unique: BTreeSet<_> = types.iter().collect();
    assert_eq!(types.len(), unique.len());
}

/// `promtool check metrics` (Debian package `prometheus`, installed by `.ci/setup`) on a
/// rendering with values.
#[test]
fn promtool_accepts_the_text() {
    let text = sample_text();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("promtool (Debian package prometheus, see .ci/setup): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The render time does not grow with the calls (the labels are bounded): measured at 10,000
/// live calls over two workers, each having seen 10,000 calls end.
#[test]
fn render_time_at_ten_thousand_live_calls() {
    let (a, b) = (snapshot(0, 10_000, 5000), snapshot(1, 10_000, 5000));
    let snaps = [&a, &b];
    let text = render_snapshots(&snaps);
    assert!(text.contains("sbc_b2bua_live_calls 10000\n"));
    let runs = 50;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..runs {
        bytes += render_snapshots(&snaps).len();
    }
    let each = start.elapsed() / runs;
    println!(
        "render at 10,000 live calls: {each:?} per scrape, {} bytes, {} lines",
        bytes / runs as usize,
        text.lines().count()
    );
    // A scrape every second costs the control thread well under 1 % even in a debug build.
    assert!(each < Duration::from_millis(10), "{each:?}");
}
