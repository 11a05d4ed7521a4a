//! Unit tests of routing: number rules, route lookup, target selection and health.

use super::*;

// ---- numbers ----

fn rule(
    p: &str,
    strip: usize,
    prepend: &str,
    min: Option<usize>,
    max: Option<usize>,
) -> NumberRule {
    NumberRule {
        match_prefix: p.into(),
        strip,
        prepend: prepend.into(),
        min_len: min,
        max_len: max,
    }
}

#[test]
fn separators_are_stripped() {
    let cases = [
        ("+49 (30) 123-45.67", "+49301234567"),
        ("0301234567", "0301234567"),
        ("", ""),
        ("(((", ""),
        ("1 2-3.4", "1234"),
    ];
    for (input, want) in cases {
        assert_eq!(strip_visual_separators(input), want, "{input:?}");
    }
    assert!(matches!(strip_visual_separators("123"), Cow::Borrowed(_)));
}

#[test]
fn e164_conversion_table() {
    let cases = [
        ("0301234567", 49, "0", "00", "+49301234567"),
        ("00441234", 49, "0", "00", "+441234"),
        ("+441234", 49, "0", "00", "+441234"),
        ("011441234", 1, "1", "011", "+441234"),
        ("12125551234", 1, "1", "011", "+12125551234"),
        ("112", 49, "0", "00", "112"),
        ("", 49, "0", "00", ""),
        ("0301234567", 49, "", "", "0301234567"),
    ];
    for (n, cc, np, ip, want) in cases {
        assert_eq!(to_e164(n, cc, np, ip), want, "{n:?}");
    }
}

#[test]
fn national_conversion_table() {
    let cases = [
        ("+49301234567", 49, "0", "00", "0301234567"),
        ("+441234", 49, "0", "00", "00441234"),
        ("0301234567", 49, "0", "00", "0301234567"),
        ("+", 49, "0", "00", "00"),
    ];
    for (n, cc, np, ip, want) in cases {
        assert_eq!(to_national(n, cc, np, ip), want, "{n:?}");
    }
    // Round trip.
    let e = to_e164("0301234567", 49, "0", "00");
    assert_eq!(to_national(&e, 49, "0", "00"), "0301234567");
}

#[test]
fn normalize_first_matching_rule_wins() {
    let rules = vec![
        rule("0", 1, "+49", Some(6), Some(12)), // national with length bound
        rule("0", 0, "X", None, None),          // other numbers starting with 0
        rule("9", 1, "", None, Some(4)),        // outside-line digit on short numbers
        rule("*", 10, "", None, None),          // strip more than the number holds
    ];
    let cases = [
        ("0301234567", "+49301234567"),
        ("03", "X03"),
        ("0301234567890", "X0301234567890"),
        ("9123", "123"),
        ("91234", "91234"),
        ("*21", ""),
        ("5551234", "5551234"),
        ("", ""),
    ];
    for (n, want) in cases {
        assert_eq!(normalize(&rules, n), want, "{n:?}");
    }
    assert!(matches!(normalize(&rules, "555"), Cow::Borrowed(_)));
    // Lengths are in characters, and strip never cuts inside a character.
    let r = rule("é", 1, "+", Some(3), Some(3));
    assert_eq!(normalize(std::slice::from_ref(&r), "éüx"), "+üx");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn string(&mut self) -> String {
        const ALPHABET: &[char] = &[
            '0',
            '1',
            '4',
            '9',
            '+',
            '-',
            '.',
            ' ',
            '(',
            ')',
            '*',
            '#',
            'é',
            '€',
            '\u{10FFFF}',
            'a',
        ];
        let len = (self.next() % 14) as usize;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn number_functions_never_panic_on_random_input() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let routes: Vec<Route> = (0..50)
        .map(|i| Route {
            name: format!("r{i}"),
            source: SourceMatch::Any,
            prefix: rng.string(),
            time: Some(TimeWindow {
                days: (rng.next() & 0xff) as u8,
                start_min: (rng.next() % 2000) as u16,
                end_min: (rng.next() % 2000) as u16,
            }),
            target: TargetGroupId(i),
            number_rules: vec![],
        })
        .collect();
    let router = Router::new(routes);
    for _ in 0..20_000 {
        let n = rng.string();
        let r = rule(
            &rng.string(),
            (rng.next() % 20) as usize,
            &rng.string(),
            Some((rng.next() % 10) as usize),
            Some((rng.next() % 10) as usize),
        );
        let _ = normalize(std::slice::from_ref(&r), &n);
        let _ = r.apply(&n);
        let s = strip_visual_separators(&n);
        let _ = to_e164(&s, (rng.next() % 1000) as u16, &rng.string(), &rng.string());
        let _ = to_national(&n, (rng.next() % 1000) as u16, &rng.string(), &rng.string());
        let t = LocalTime {
            weekday: (rng.next() % 9) as u8,
            minute_of_day: (rng.next() % 1600) as u16,
        };
        let src = CallSource {
            side: Side::Outside,
            trunk: None,
        };
        let _ = router.route(&src, &n, t);
    }
}

// ---- routing ----

const MON: u8 = 0;
const FRI: u8 = 4;
const SAT: u8 = 5;
const SUN: u8 = 6;

fn at(weekday: u8, h: u16, m: u16) -> LocalTime {
    LocalTime {
        weekday,
        minute_of_day: h * 60 + m,
    }
}

#[test]
fn time_windows_table() {
    let office = TimeWindow {
        days: TimeWindow::WORKDAYS,
        start_min: 8 * 60,
        end_min: 18 * 60,
    };
    let night = TimeWindow {
        days: TimeWindow::FRI,
        start_min: 22 * 60,
        end_min: 6 * 60,
    };
    let all_day_weekend = TimeWindow {
        days: TimeWindow::SAT | TimeWindow::SUN,
        start_min: 0,
        end_min: 0,
    };
    let cases = [
        (office, at(MON, 8, 0), true),
        (office, at(MON, 7, 59), false),
        (office, at(MON, 17, 59), true),
        (office, at(MON, 18, 0), false),
        (office, at(SAT, 10, 0), false),
        (night, at(FRI, 21, 59), false),
        (night, at(FRI, 22, 0), true),
        (night, at(FRI, 23, 59), true),
        (night, at(SAT, 0, 0), true),
        (night, at(SAT, 5, 59), true),
        (night, at(SAT, 6, 0), false),
        (night, at(SAT, 23, 0), false), // Saturday is not a start day
        (night, at(FRI, 3, 0), false),  // Thursday night is not in the window
        (
            TimeWindow {
                days: TimeWindow::SUN,
                start_min: 23 * 60,
                end_min: 60,
            },
            at(MON, 0, 30),
            true,
        ), // Sunday→Monday wrap
        (all_day_weekend, at(SUN, 23, 59), true),
        (all_day_weekend, at(MON, 0, 0), false),
        (
            office,
            LocalTime {
                weekday: 7,
                minute_of_day: 600,
            },
            false,
        ),
        (
            office,
            LocalTime {
                weekday: 0,
                minute_of_day: 2000,
            },
            false,
        ),
    ];
    for (i, (w, t, want)) in cases.into_iter().enumerate() {
        assert_eq!(w.contains(t), want, "case {i}: {w:?} at {t:?}");
    }
}

fn route(name: &str, source: SourceMatch, prefix: &str, time: Option<TimeWindow>) -> Route {
    Route {
        name: name.into(),
        source,
        prefix: prefix.into(),
        time,
        target: TargetGroupId(0),
        number_rules: vec![],
    }
}

const OUT: CallSource = CallSource {
    side: Side::Outside,
    trunk: None,
};
const IN: CallSource = CallSource {
    side: Side::Inside,
    trunk: None,
};
const TRUNK7: CallSource = CallSource {
    side: Side::Outside,
    trunk: Some(TrunkId(7)),
};

#[test]
fn routing_table() {
    let night = TimeWindow {
        days: TimeWindow::ALL_DAYS,
        start_min: 20 * 60,
        end_min: 8 * 60,
    };
    let router = Router::new(vec![
        route("default", SourceMatch::Any, "", None),
        route("germany", SourceMatch::Any, "+49", None),
        route("berlin", SourceMatch::Any, "+4930", None),
        route("berlin-dup", SourceMatch::Any, "+4930", None),
        route("berlin-night", SourceMatch::Any, "+49301", Some(night)),
        route(
            "uk-from-trunk7",
            SourceMatch::Trunk(TrunkId(7)),
            "+44",
            None,
        ),
        route("uk-inside", SourceMatch::Inside, "+44", None),
        route("uk-outside", SourceMatch::Outside, "+44", None),
        route("emergency-inside", SourceMatch::Inside, "112", None),
    ]);
    let noon = at(MON, 12, 0);
    let cases = [
        (OUT, "+49301234", noon, Some("berlin")), // night rule fails → shorter prefix; first of equal prefix
        (OUT, "+49301234", at(MON, 23, 0), Some("berlin-night")),
        (OUT, "+4940123", noon, Some("germany")),
        (OUT, "+4930", noon, Some("berlin")),
        (OUT, "+1212", noon, Some("default")),
        (OUT, "", noon, Some("default")),
        (TRUNK7, "+4420", noon, Some("uk-from-trunk7")),
        (IN, "+4420", noon, Some("uk-inside")),
        (OUT, "+4420", noon, Some("uk-outside")),
        (IN, "112", noon, Some("emergency-inside")),
        (OUT, "112", noon, Some("default")),
    ];
    for (src, n, t, want) in cases {
        assert_eq!(
            router.route(&src, n, t).map(|r| r.name.as_str()),
            want,
            "{src:?} {n:?}"
        );
    }
    let no_default = Router::new(vec![route("de", SourceMatch::Inside, "+49", None)]);
    assert!(no_default.route(&OUT, "+49301", noon).is_none());
    assert!(no_default.route(&IN, "+1", noon).is_none());
    assert_eq!(no_default.routes().len(), 1);
}

#[test]
fn outbound_number_rules() {
    let mut r = route("de-national", SourceMatch::Any, "+49", None);
    r.number_rules = vec![rule("+49", 3, "0", None, None)];
    assert_eq!(r.rewrite_outbound("+49301234567"), "0301234567");
    assert_eq!(r.rewrite_outbound("+441234"), "+441234");
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
#[allow(clippy::disallowed_methods)] // a measurement needs the wall clock
fn lookup_time_with_10000_rules() {
    let mut rng = Rng(42);
    let routes: Vec<Route> = (0..10_000)
        .map(|i| {
            let len = 3 + (rng.next() % 8) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (rng.next() % 10) as u8))
                .collect();
            let time = (i % 5 == 0).then_some(TimeWindow {
                days: TimeWindow::WORKDAYS,
                start_min: 480,
                end_min: 1080,
            });
            route(
                &format!("r{i}"),
                SourceMatch::Any,
                &format!("+{digits}"),
                time,
            )
        })
        .collect();
    let start = Instant::now();
    let router = Router::new(routes);
    let build = start.elapsed();
    let numbers: Vec<String> = (0..1000)
        .map(|_| {
            let d: String = (0..12)
                .map(|_| char::from(b'0' + (rng.next() % 10) as u8))
                .collect();
            format!("+{d}")
        })
        .collect();
    let n = 1_000_000;
    let start = Instant::now();
    let mut hits = 0usize;
    for i in 0..n {
        let num = &numbers[i % numbers.len()];
        if std::hint::black_box(router.route(&OUT, num, at(SAT, 12, 0))).is_some() {
            hits += 1;
        }
    }
    let per = start.elapsed() / n as u32;
    println!("10,000 rules: build {build:?}, lookup {per:?} per call ({hits} hits of {n})");
}

// ---- health and selection ----

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn target(port: u16, priority: u8, weight: u16) -> Target {
    Target {
        addr: addr(port),
        transport: Transport::Udp,
        priority,
        weight,
    }
}

fn order(group: &TargetGroup, health: &HealthMonitor, seed: u64) -> Vec<u16> {
    select(group, health, seed).map(|t| t.addr.port()).collect()
}

const CFG: HealthConfig = HealthConfig {
    interval: Duration::from_secs(10),
    timeout: Duration::from_secs(5),
    down_after: 3,
    up_after: 2,
    only_down: false,
    first_response: None,
};

/// Runs one probe round at `now`: every due probe gets `answer(port)`.
fn round(mon: &mut HealthMonitor, now: Instant, answer: impl Fn(u16) -> bool) -> usize {
    let mut sent = 0;
    while let Some((idx, a)) = mon.poll_probe(now) {
        sent += 1;
        mon.handle_probe_result(now, idx, answer(a.port()));
    }
    sent
}

#[test]
fn a_failed_call_takes_a_target_down_at_once_and_probes_bring_it_back() {
    let group = TargetGroup {
        id: TargetGroupId(1),
        targets: vec![target(5060, 1, 1), target(5070, 2, 1)],
    };
    let start = t0();
    let mut mon = HealthMonitor::for_groups(CFG, std::slice::from_ref(&group), start);
    assert_eq!(round(&mut mon, start, |_| true), 2);
    // A call timed out on the preferred target: down now, not after `down_after` probes.
    let now = start + Duration::from_secs(1);
    mon.mark_down(now, addr(5060));
    assert_eq!(mon.health_of(addr(5060)), Health::Down);
    assert_eq!(order(&group, &mon, 0), [5070, 5060]);
    // Probed at once, and back after `up_after` answers.
    assert_eq!(mon.poll_probe(now).map(|(_, a)| a.port()), Some(5060));
    let idx = mon.index_of(addr(5060)).unwrap();
    mon.handle_probe_result(now, idx, true);
    assert_eq!(mon.health_of(addr(5060)), Health::Down);
    round(&mut mon, now + CFG.interval, |_| true);
    assert_eq!(mon.health_of(addr(5060)), Health::Up);
    // Unmonitored addresses are ignored.
    mon.mark_down(now, addr(5999));
    assert_eq!(mon.health_of(addr(5999)), Health::Unknown);
}

#[test]
fn probing_only_down_targets_leaves_the_others_alone() {
    let group = TargetGroup {
        id: TargetGroupId(1),
        targets: vec![target(5060, 1, 1), target(5070, 2, 1)],
    };
    let cfg = HealthConfig {
        only_down: true,
        ..CFG
    };
    let start = t0();
    let mut mon = HealthMonitor::for_groups(cfg, std::slice::from_ref(&group), start);
    assert_eq!(round(&mut mon, start, |_| true), 0, "nothing is down");
    mon.mark_down(start, addr(5070));
    let mut probed = Vec::new();
    while let Some((idx, a)) = mon.poll_probe(start) {
        probed.push(a.port());
        mon.handle_probe_result(start, idx, true);
    }
    assert_eq!(probed, [5070]);
    round(&mut mon, start + cfg.interval, |_| true);
    assert_eq!(mon.health_of(addr(5070)), Health::Up);
    // Up again: no longer probed.
    assert_eq!(round(&mut mon, start + 2 * cfg.interval, |_| true), 0);
}

#[test]
fn failover_when_first_target_stops_answering_and_back() {
    let group = TargetGroup {
        id: TargetGroupId(1),
        targets: vec![target(5060, 1, 1), target(5070, 2, 1)],
    };
    let start = t0();
    let mut mon = HealthMonitor::for_groups(CFG, std::slice::from_ref(&group), start);
    assert_eq!(mon.health_of(addr(5060)), Health::Unknown);
    assert_eq!(order(&group, &mon, 0), [5060, 5070], "unknown counts as up");
    let mut now = start;
    assert_eq!(round(&mut mon, now, |_| true), 2);
    assert_eq!(mon.health_of(addr(5060)), Health::Up);
    // The first target stops answering.
    for i in 1..=CFG.down_after {
        now += CFG.interval;
        assert_eq!(round(&mut mon, now, |p| p != 5060), 2);
        let want = if i < CFG.down_after {
            Health::Up
        } else {
            Health::Down
        };
        assert_eq!(mon.health_of(addr(5060)), want, "after {i} failures");
        let first = order(&group, &mon, 0)[0];
        assert_eq!(first, if i < CFG.down_after { 5060 } else { 5070 });
    }
    assert_eq!(
        order(&group, &mon, 0),
        [5070, 5060],
        "down target kept last"
    );
    // It comes back.
    for i in 1..=CFG.up_after {
        now += CFG.interval;
        round(&mut mon, now, |_| true);
        let want = if i < CFG.up_after {
            Health::Down
        } else {
            Health::Up
        };
        assert_eq!(mon.health_of(addr(5060)), want, "after {i} successes");
    }
    assert_eq!(order(&group, &mon, 0), [5060, 5070], "preferred again");
}

#[test]
fn probe_scheduling_and_timeouts() {
    let start = t0();
    let mut mon = HealthMonitor::new(CFG, [addr(1), addr(2), addr(1)], start);
    assert_eq!(mon.index_of(addr(1)), Some(TargetIdx(0)));
    assert_eq!(mon.poll_timeout(), Some(start));
    let (a, _) = mon.poll_probe(start).unwrap();
    let (b, _) = mon.poll_probe(start).unwrap();
    assert!(
        mon.poll_probe(start).is_none(),
        "duplicates monitored once; one outstanding each"
    );
    assert_eq!(mon.poll_timeout(), Some(start + CFG.timeout));
    mon.handle_probe_result(start, a, true);
    assert!(
        mon.poll_probe(start + Duration::from_secs(1)).is_none(),
        "not yet due again"
    );
    // b never answers: the monitor's own deadline counts it as a failure.
    mon.handle_timeout(start + CFG.timeout);
    assert_eq!(mon.targets[1].failures, 1);
    // A late answer for b is ignored.
    mon.handle_probe_result(start + CFG.timeout, b, true);
    assert_eq!(mon.targets[1].failures, 1);
    assert_eq!(mon.health(b), Health::Unknown);
    assert_eq!(mon.poll_timeout(), Some(start + CFG.interval));
    let due = start + CFG.interval;
    assert!(mon.poll_probe(due).is_some());
    assert!(mon.poll_probe(due).is_some());
    assert!(mon.poll_probe(due).is_none());
    // Unknown index is harmless.
    mon.handle_probe_result(due, TargetIdx(99), false);
    assert_eq!(mon.health(TargetIdx(99)), Health::Unknown);
    // Three timeouts in a row take it down, even from Unknown.
    let mut now = due;
    for _ in 0..3 {
        mon.handle_timeout(now + CFG.timeout);
        now += CFG.interval;
        while mon.poll_probe(now).is_some() {}
    }
    assert_eq!(mon.health(b), Health::Down);
    assert!(HealthMonitor::new(CFG, [], start).poll_timeout().is_none());
}

#[test]
fn probe_response_table() {
    let cases = [
        (100, false),
        (180, false),
        (200, true),
        (404, true),
        (405, true),
        (408, false),
        (486, true),
        (500, true),
        (503, false),
        (603, true),
    ];
    for (status, want) in cases {
        assert_eq!(response_means_alive(status), want, "{status}");
    }
}

#[test]
fn selection_priority_weights_and_down() {
    let start = t0();
    let group = TargetGroup {
        id: TargetGroupId(2),
        targets: vec![
            target(3, 2, 1),
            target(1, 1, 300),
            target(2, 1, 100),
            target(4, 1, 0),
        ],
    };
    let mon = HealthMonitor::for_groups(CFG, std::slice::from_ref(&group), start);
    // Reproducible.
    assert_eq!(order(&group, &mon, 7), order(&group, &mon, 7));
    // Weights 300:100 → roughly 3:1 first picks; zero weight last of its priority.
    let mut first_is_1 = 0;
    for seed in 0..4000 {
        let o = order(&group, &mon, seed);
        assert_eq!(o.len(), 4);
        assert_eq!(o[2..], [4, 3], "seed {seed}");
        if o[0] == 1 {
            first_is_1 += 1;
        }
    }
    assert!((2800..3200).contains(&first_is_1), "{first_is_1}");
    // Take port 1 down: it goes last, behind the lower-priority target.
    let mut mon = mon;
    let mut now = start;
    for _ in 0..CFG.down_after {
        round(&mut mon, now, |p| p != 1);
        now += CFG.interval;
    }
    let o = order(&group, &mon, 1);
    assert_eq!(o, [2, 4, 3, 1]);
    // An empty group yields nothing.
    let empty = TargetGroup {
        id: TargetGroupId(3),
        targets: vec![],
    };
    assert_eq!(select(&empty, &mon, 0).count(), 0);
}
