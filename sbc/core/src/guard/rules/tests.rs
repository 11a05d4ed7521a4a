use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::routing::{LocalTime, TimeWindow, TrunkId};

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

const MONDAY_NOON: LocalTime = LocalTime {
    weekday: 0,
    minute_of_day: 720,
};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn call<'a>(source: u8, caller: &'a str, callee: &'a str) -> CallInfo<'a> {
    CallInfo {
        source: ip(source),
        trusted: false,
        trunk: None,
        target_label: None,
        caller,
        callee,
        callee_out: callee,
    }
}

fn policy(rules: Vec<CallRule>, fraud: Vec<FraudRule>) -> CallPolicy {
    CallPolicy::new(RulesConfig {
        rules,
        fraud,
        ..RulesConfig::default()
    })
}

/// Routes, starts and returns the call `id` (panics on a refusal).
fn start(p: &mut CallPolicy, now: Instant, id: u64, info: &CallInfo<'_>) {
    let t = p.check(now, MONDAY_NOON, info).unwrap();
    p.started(now, CallId(id), t);
}

#[test]
fn number_lists_match_exact_numbers_and_prefixes() {
    let mut l = NumberList::new(["+491234", "+49900*", "0190*"]);
    assert!(l.contains("+491234"));
    assert!(!l.contains("+4912345"), "exact entries are exact");
    assert!(l.contains("+499001111"));
    assert!(l.contains("+49900"));
    assert!(!l.contains("+4990"), "shorter than the prefix");
    assert!(l.contains("01901"));
    assert!(!l.insert("+49900*"));
    assert!(l.remove("+49900*"));
    assert!(!l.contains("+499001111"));
    assert!(!l.remove("+49900*"));
    assert_eq!(l.entries(), ["+491234", "0190*"]);
}

#[test]
fn blacklisted_callee_and_caller_refused_with_403() {
    let mut r = CallRule::new("premium");
    r.callee_blacklist = NumberList::new(["+4915112345678", "+49900*"]);
    r.caller_blacklist = NumberList::new(["666"]);
    let mut p = policy(vec![r], vec![]);
    let now = t0();
    for (caller, callee) in [
        ("1001", "+4915112345678"),
        ("1001", "+49900123"),
        ("666", "+4930123"),
    ] {
        assert_eq!(
            p.check(now, MONDAY_NOON, &call(1, caller, callee)),
            Err(Refusal::FORBIDDEN),
            "{caller} -> {callee}"
        );
    }
    assert!(p
        .check(now, MONDAY_NOON, &call(1, "1001", "+4915112345679"))
        .is_ok());
    assert!(p.check(now, MONDAY_NOON, &call(1, "1001", "+4990")).is_ok());
    assert_eq!(p.stats().calls_refused_list, 3);
}

#[test]
fn the_number_after_number_rules_is_checked_too() {
    let mut r = CallRule::new("premium");
    r.callee_blacklist = NumberList::new(["+49900*"]);
    let mut p = policy(vec![r], vec![]);
    let mut info = call(1, "1001", "0900123");
    assert!(p.check(t0(), MONDAY_NOON, &info).is_ok());
    info.callee_out = "+49900123";
    assert_eq!(p.check(t0(), MONDAY_NOON, &info), Err(Refusal::FORBIDDEN));
}

#[test]
fn whitelists_let_only_their_numbers_through() {
    let mut r = CallRule::new("local-only");
    r.callee_whitelist = NumberList::new(["+4930*"]);
    r.caller_whitelist = NumberList::new(["1001", "1002"]);
    let mut p = policy(vec![r], vec![]);
    let now = t0();
    assert!(p
        .check(now, MONDAY_NOON, &call(1, "1001", "+4930555"))
        .is_ok());
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(1, "1001", "+4940555")),
        Err(Refusal::FORBIDDEN)
    );
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(1, "1003", "+4930555")),
        Err(Refusal::FORBIDDEN)
    );
}

#[test]
fn scope_by_trunk_source_network_and_trust() {
    let trunk = TrunkRef {
        id: TrunkId(2),
        label: "trunk:carrier".into(),
    };
    let mut by_trunk = CallRule::new("carrier");
    by_trunk.scope.trunk = Some(trunk);
    by_trunk.callee_blacklist = NumberList::new(["+1900*"]);
    let mut by_net = CallRule::new("net");
    by_net.scope.sources = vec![Cidr::new(ip(128), 25).unwrap()];
    by_net.callee_blacklist = NumberList::new(["+44*"]);
    let mut untrusted = CallRule::new("untrusted");
    untrusted.scope.untrusted = true;
    untrusted.callee_blacklist = NumberList::new(["+882*"]);
    let mut p = policy(vec![by_trunk, by_net, untrusted], vec![]);
    let now = t0();
    let check = |p: &mut CallPolicy, info: &CallInfo<'_>| p.check(now, MONDAY_NOON, info).is_ok();

    // Trunk: from it (source ACL) or to it (target label).
    let mut info = call(1, "a", "+1900555");
    info.trusted = true;
    assert!(check(&mut p, &info));
    info.trunk = Some(TrunkId(2));
    assert!(!check(&mut p, &info));
    info.trunk = None;
    info.target_label = Some("trunk:carrier");
    assert!(!check(&mut p, &info));

    // Source network.
    assert!(check(&mut p, &call(1, "a", "+44555")));
    assert!(!check(&mut p, &call(200, "a", "+44555")));

    // Untrusted: an unknown source on the outside, not a trunk or the inside.
    assert!(!check(&mut p, &call(1, "a", "+882555")));
    let mut trusted = call(1, "a", "+882555");
    trusted.trusted = true;
    assert!(check(&mut p, &trusted));
}

#[test]
fn concurrent_calls_per_source_refused_486_at_the_limit_and_not_below() {
    let mut r = CallRule::new("per-source");
    r.max_calls = 3;
    let mut p = policy(vec![r], vec![]);
    let now = t0();
    for id in 0..3 {
        start(&mut p, now, id, &call(1, "a", "100"));
    }
    assert_eq!(p.live_from("per-source", ip(1)), 3);
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(1, "b", "100")),
        Err(Refusal::BUSY)
    );
    // Another source has its own count.
    assert!(p.check(now, MONDAY_NOON, &call(2, "a", "100")).is_ok());
    // A call ends: one more may start.
    p.ended(now, MONDAY_NOON, CallId(1));
    start(&mut p, now, 10, &call(1, "a", "100"));
    assert_eq!(p.stats().calls_refused_busy, 1);
}

#[test]
fn a_routed_call_that_never_starts_holds_nothing() {
    let mut r = CallRule::new("per-source");
    r.max_calls = 1;
    let mut p = policy(vec![r], vec![]);
    let now = t0();
    for _ in 0..5 {
        // Routed, then refused by the B2BUA (no room, bad SDP): no Started event.
        let _ticket = p.check(now, MONDAY_NOON, &call(1, "a", "100")).unwrap();
    }
    assert_eq!(p.live_from("per-source", ip(1)), 0);
}

#[test]
fn concurrent_calls_per_user_and_per_rule() {
    let mut user = CallRule::new("per-user");
    user.max_calls = 2;
    user.per = LimitPer::User;
    let mut all = CallRule::new("all");
    all.max_calls = 3;
    all.per = LimitPer::Rule;
    let mut p = policy(vec![user, all], vec![]);
    let now = t0();
    start(&mut p, now, 1, &call(1, "alice", "100"));
    start(&mut p, now, 2, &call(2, "alice", "100"));
    assert_eq!(p.live_of_user("per-user", "alice"), 2);
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(3, "alice", "100")),
        Err(Refusal::BUSY)
    );
    start(&mut p, now, 3, &call(3, "bob", "100"));
    assert_eq!(p.live_in("all"), 3);
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(4, "carol", "100")),
        Err(Refusal::BUSY)
    );
}

#[test]
fn calls_per_second_refused_503_with_retry_after_over_the_rate() {
    let mut r = CallRule::new("cps");
    r.max_cps = 5.0;
    let mut p = policy(vec![r], vec![]);
    let now = t0();
    for _ in 0..5 {
        assert!(p.check(now, MONDAY_NOON, &call(1, "a", "100")).is_ok());
    }
    let refused = p.check(now, MONDAY_NOON, &call(1, "a", "100"));
    assert_eq!(refused, Err(Refusal::RATE));
    assert_eq!(Refusal::RATE.code, 503);
    assert_eq!(Refusal::RATE.retry_after, Some(1));
    // Another source is not slowed.
    assert!(p.check(now, MONDAY_NOON, &call(2, "a", "100")).is_ok());
    // A fifth of a second later one token is back.
    let later = now + Duration::from_millis(200);
    assert!(p.check(later, MONDAY_NOON, &call(1, "a", "100")).is_ok());
    assert!(p.check(later, MONDAY_NOON, &call(1, "a", "100")).is_err());
}

fn fraud_rule(f: impl FnOnce(&mut FraudRule)) -> FraudRule {
    let mut r = FraudRule::new("fraud");
    f(&mut r);
    r
}

fn events(p: &mut CallPolicy) -> Vec<(Metric, Level, u64)> {
    std::iter::from_fn(|| p.poll_event())
        .map(|e| (e.metric, e.level, e.value))
        .collect()
}

#[test]
fn calls_per_minute_warns_and_blocks_at_their_thresholds_and_not_below() {
    let rule = fraud_rule(|r| {
        r.calls_per_minute = Thresholds {
            warning: 3,
            critical: 5,
        }
    });
    let mut p = policy(vec![], vec![rule]);
    let t0 = t0();
    for i in 0..2u64 {
        assert!(p
            .check(
                t0 + Duration::from_secs(i),
                MONDAY_NOON,
                &call(1, "a", "100")
            )
            .is_ok());
    }
    assert!(events(&mut p).is_empty(), "below the warning: no event");
    assert!(p
        .check(
            t0 + Duration::from_secs(2),
            MONDAY_NOON,
            &call(1, "a", "100")
        )
        .is_ok());
    assert_eq!(
        events(&mut p),
        [(Metric::CallsPerMinute, Level::Warning, 3)]
    );
    assert!(p
        .check(
            t0 + Duration::from_secs(3),
            MONDAY_NOON,
            &call(1, "a", "100")
        )
        .is_ok());
    let blocked = p.check(
        t0 + Duration::from_secs(4),
        MONDAY_NOON,
        &call(1, "a", "100"),
    );
    assert_eq!(blocked, Err(Refusal::FORBIDDEN));
    let e = events(&mut p);
    assert_eq!(
        e.last(),
        Some(&(Metric::CallsPerMinute, Level::Critical, 5))
    );
    // Another account has its own count.
    assert!(p
        .check(
            t0 + Duration::from_secs(4),
            MONDAY_NOON,
            &call(1, "b", "100")
        )
        .is_ok());
    // A minute after the first calls, the window has emptied enough.
    assert!(p
        .check(
            t0 + Duration::from_secs(63),
            MONDAY_NOON,
            &call(1, "a", "100")
        )
        .is_ok());
    assert_eq!(p.stats().fraud_blocked, 1);
    assert_eq!(p.stats().fraud_warnings, 2);
}

#[test]
fn concurrent_calls_fraud_threshold() {
    let rule = fraud_rule(|r| {
        r.concurrent_calls = Thresholds {
            warning: 0,
            critical: 3,
        }
    });
    let mut p = policy(vec![], vec![rule]);
    let now = t0();
    start(&mut p, now, 1, &call(1, "a", "100"));
    start(&mut p, now, 2, &call(1, "a", "100"));
    assert_eq!(p.fraud().live("fraud", "a"), 2);
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(1, "a", "100")),
        Err(Refusal::FORBIDDEN)
    );
    p.ended(now, MONDAY_NOON, CallId(2));
    start(&mut p, now, 3, &call(1, "a", "100"));
}

#[test]
fn minutes_per_day_block_once_used_and_reset_on_a_new_day() {
    let rule = fraud_rule(|r| {
        r.minutes_per_day = Thresholds {
            warning: 5,
            critical: 10,
        }
    });
    let mut p = policy(vec![], vec![rule]);
    let t0 = t0();
    // Nine minutes and 59 seconds of talk: below the threshold.
    start(&mut p, t0, 1, &call(1, "a", "100"));
    p.answered(t0, CallId(1));
    p.ended(t0 + Duration::from_secs(599), MONDAY_NOON, CallId(1));
    assert_eq!(p.fraud().seconds_today("fraud", "a"), 599);
    let t1 = t0 + Duration::from_secs(600);
    start(&mut p, t1, 2, &call(1, "a", "100"));
    assert_eq!(events(&mut p), [(Metric::MinutesPerDay, Level::Warning, 9)]);
    // An unanswered call adds nothing; one more second of talk reaches ten minutes.
    p.ended(t1, MONDAY_NOON, CallId(2));
    start(&mut p, t1, 3, &call(1, "a", "100"));
    p.answered(t1, CallId(3));
    p.ended(t1 + Duration::from_secs(1), MONDAY_NOON, CallId(3));
    assert_eq!(
        p.check(t1, MONDAY_NOON, &call(1, "a", "100")),
        Err(Refusal::FORBIDDEN)
    );
    let tuesday = LocalTime {
        weekday: 1,
        minute_of_day: 1,
    };
    assert!(p.check(t1, tuesday, &call(1, "a", "100")).is_ok());
}

#[test]
fn sequential_dialling_blocks_at_the_threshold_and_not_below() {
    let rule = fraud_rule(|r| {
        r.sequential_calls = Thresholds {
            warning: 3,
            critical: 5,
        }
    });
    let mut p = policy(vec![], vec![rule]);
    let now = t0();
    for n in ["+4930100", "+4930101", "+4930102", "+4930103"] {
        assert!(p.check(now, MONDAY_NOON, &call(1, "a", n)).is_ok(), "{n}");
    }
    assert_eq!(
        events(&mut p),
        [
            (Metric::SequentialCalls, Level::Warning, 3),
            (Metric::SequentialCalls, Level::Warning, 4)
        ]
    );
    assert_eq!(
        p.check(now, MONDAY_NOON, &call(1, "a", "+4930104")),
        Err(Refusal::FORBIDDEN)
    );
    // A number out of sequence starts a new run.
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+4930200")).is_ok());
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+4930201")).is_ok());
    // The same number again is not sequential.
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+4930201")).is_ok());
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+4930202")).is_ok());
}

#[test]
fn fraud_rules_by_account_prefix_trunk_and_time_window() {
    let rule = fraud_rule(|r| {
        r.account = Some("1001".into());
        r.prefix = "+88".into();
        r.window = Some(TimeWindow {
            days: TimeWindow::ALL_DAYS,
            start_min: 18 * 60,
            end_min: 8 * 60,
        });
        r.calls_per_minute = Thresholds {
            warning: 0,
            critical: 1,
        };
    });
    let mut p = policy(vec![], vec![rule]);
    let now = t0();
    let night = LocalTime {
        weekday: 2,
        minute_of_day: 23 * 60,
    };
    assert_eq!(
        p.check(now, night, &call(1, "1001", "+88123")),
        Err(Refusal::FORBIDDEN)
    );
    assert!(
        p.check(now, MONDAY_NOON, &call(1, "1001", "+88123"))
            .is_ok(),
        "outside the window"
    );
    assert!(
        p.check(now, night, &call(1, "1002", "+88123")).is_ok(),
        "another account"
    );
    assert!(
        p.check(now, night, &call(1, "1001", "+49123")).is_ok(),
        "another prefix"
    );

    let trunk = fraud_rule(|r| {
        r.trunk = Some(TrunkRef {
            id: TrunkId(0),
            label: "trunk:t".into(),
        });
        r.per_account = false;
        r.concurrent_calls = Thresholds {
            warning: 0,
            critical: 2,
        };
    });
    let mut p = policy(vec![], vec![trunk]);
    let mut to_trunk = call(1, "x", "1");
    to_trunk.target_label = Some("trunk:t");
    start(&mut p, now, 1, &to_trunk);
    let mut other = to_trunk;
    other.caller = "y";
    assert_eq!(
        p.check(now, MONDAY_NOON, &other),
        Err(Refusal::FORBIDDEN),
        "one count for the whole trunk"
    );
    assert!(p.check(now, MONDAY_NOON, &call(1, "y", "1")).is_ok());
}

#[test]
fn rules_and_lists_change_at_run_time() {
    let mut p = policy(vec![CallRule::new("ops")], vec![]);
    let now = t0();
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+49900")).is_ok());
    assert!(p.apply(RulesCommand::ListAdd {
        rule: "ops".into(),
        list: ListKind::CalleeBlacklist,
        entry: "+49900*".into(),
    }));
    assert_eq!(
        p.rules()[0].list(ListKind::CalleeBlacklist).entries(),
        ["+49900*"]
    );
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+49900")).is_err());
    assert!(p.apply(RulesCommand::ListRemove {
        rule: "ops".into(),
        list: ListKind::CalleeBlacklist,
        entry: "+49900*".into(),
    }));
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "+49900")).is_ok());
    assert!(!p.apply(RulesCommand::ListAdd {
        rule: "missing".into(),
        list: ListKind::CalleeBlacklist,
        entry: "1".into(),
    }));

    let mut busy = CallRule::new("busy");
    busy.max_calls = 1;
    assert!(p.apply(RulesCommand::AddRule(Box::new(busy))));
    start(&mut p, now, 1, &call(1, "a", "1"));
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "1")).is_err());
    assert!(p.apply(RulesCommand::RemoveRule("busy".into())));
    assert!(!p.apply(RulesCommand::RemoveRule("busy".into())));
    assert!(p.check(now, MONDAY_NOON, &call(1, "a", "1")).is_ok());
    // The call that started under the removed rule still gives its count back.
    p.ended(now, MONDAY_NOON, CallId(1));
    assert_eq!(p.live_from("busy", ip(1)), 0);

    let f = fraud_rule(|r| {
        r.calls_per_minute = Thresholds {
            warning: 0,
            critical: 1,
        }
    });
    assert!(p.apply(RulesCommand::AddFraudRule(Box::new(f))));
    assert_eq!(p.fraud().rules().len(), 1);
    assert!(p.check(now, MONDAY_NOON, &call(1, "z", "1")).is_err());
    assert!(p.apply(RulesCommand::RemoveFraudRule("fraud".into())));
    assert!(p.check(now, MONDAY_NOON, &call(1, "z", "1")).is_ok());
}

#[test]
fn idle_counters_expire_and_live_ones_stay() {
    let mut r = CallRule::new("per-source");
    r.max_calls = 5;
    let mut p = CallPolicy::new(RulesConfig {
        rules: vec![r],
        fraud: vec![fraud_rule(|r| {
            r.concurrent_calls = Thresholds {
                warning: 0,
                critical: 100,
            }
        })],
        table_size: 4,
        idle: Duration::from_secs(10),
    });
    let t0 = t0();
    start(&mut p, t0, 1, &call(1, "a", "1"));
    let _ = p.check(t0, MONDAY_NOON, &call(2, "b", "1")).unwrap();
    let t1 = t0 + Duration::from_secs(11);
    assert!(p.poll_timeout().is_some_and(|d| d <= t1));
    p.handle_timeout(t1);
    assert_eq!(
        p.live_from("per-source", ip(1)),
        1,
        "a live call keeps its counter"
    );
    assert_eq!(p.fraud().tracked(), 1, "the idle account is forgotten");
    p.ended(t1, MONDAY_NOON, CallId(1));
    p.handle_timeout(t1 + Duration::from_secs(11));
    assert_eq!(p.fraud().tracked(), 0);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn a_full_table_lets_calls_through_and_counts_them() {
    let mut r = CallRule::new("per-source");
    r.max_calls = 1;
    let mut p = CallPolicy::new(RulesConfig {
        rules: vec![r],
        table_size: 2,
        ..RulesConfig::default()
    });
    let now = t0();
    for s in 1..=4u8 {
        start(&mut p, now, u64::from(s), &call(s, "a", "1"));
    }
    assert_eq!(p.stats().rules_table_full, 2);
}

/// A million random call outcomes, in the order the B2BUA reports them (routed, maybe started,
/// maybe answered — re-INVITEs and transfers bring no new Started — and ended once, whether by
/// CANCEL, busy, a 4xx/5xx, a timeout or a BYE), plus stray events for unknown or ended calls.
/// At every step each counter equals the calls up under it; at the end every counter is zero and
/// the minutes counted are the minutes answered.
#[test]
fn counters_never_drift_over_a_million_random_outcomes() {
    let mut per_source = CallRule::new("src");
    per_source.max_calls = 6;
    let mut per_user = CallRule::new("usr");
    per_user.max_calls = 5;
    per_user.per = LimitPer::User;
    let mut all = CallRule::new("all");
    all.max_calls = 40;
    all.max_cps = 500.0;
    all.per = LimitPer::Rule;
    let fraud = fraud_rule(|r| {
        r.concurrent_calls = Thresholds {
            warning: 3,
            critical: 4,
        };
        r.calls_per_minute = Thresholds {
            warning: 0,
            critical: 100_000,
        };
    });
    let mut p = policy(vec![per_source, per_user, all], vec![fraud]);
    let users = ["u0", "u1", "u2", "u3", "u4"];
    // A seeded linear congruential generator (Knuth's MMIX constants): the same run every time.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut below = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut now = t0();
    // Live calls: id -> (source, user index, answered at).
    let mut live: HashMap<u64, (u8, usize, Option<Instant>)> = HashMap::new();
    let mut next_id = 0u64;
    let mut talked = [0u64; 5];
    let check = |p: &CallPolicy, live: &HashMap<u64, (u8, usize, Option<Instant>)>| {
        for s in 1..=4u8 {
            let n = live.values().filter(|c| c.0 == s).count() as u32;
            assert_eq!(p.live_from("src", ip(s)), n);
        }
        for (i, u) in users.iter().enumerate() {
            let n = live.values().filter(|c| c.1 == i).count() as u32;
            assert_eq!(p.live_of_user("usr", u), n);
            assert_eq!(p.fraud().live("fraud", u), n);
        }
        assert_eq!(p.live_in("all"), live.len() as u32);
        assert_eq!(p.calls(), live.len());
    };
    for step in 0..1_000_000u32 {
        now += Duration::from_millis(below(20));
        match below(10) {
            // A new call: routed, then started unless the B2BUA refuses it after routing.
            0..=3 => {
                let s = below(4) as u8 + 1;
                let u = below(5) as usize;
                let callee = format!("{}", below(50));
                if let Ok(t) = p.check(now, MONDAY_NOON, &call(s, users[u], &callee)) {
                    if below(20) != 0 {
                        next_id += 1;
                        p.started(now, CallId(next_id), t);
                        live.insert(next_id, (s, u, None));
                    }
                }
            }
            // Answered (again, for a re-INVITE: no change).
            4..=5 => {
                if let Some((&id, c)) = live.iter_mut().nth(below(8) as usize) {
                    p.answered(now, CallId(id));
                    c.2.get_or_insert(now);
                }
            }
            // Ended: CANCEL, busy, 4xx/5xx, timeout before the answer; BYE or transfer after.
            6..=8 => {
                if let Some(&id) = live.keys().nth(below(8) as usize) {
                    if let Some((_, u, Some(a))) = live.remove(&id) {
                        talked[u] += now.saturating_duration_since(a).as_secs();
                    }
                    p.ended(now, MONDAY_NOON, CallId(id));
                }
            }
            // Stray events: an unknown call, or one that already ended.
            _ => {
                let id = below(next_id + 10);
                if !live.contains_key(&id) {
                    p.answered(now, CallId(id));
                    p.ended(now, MONDAY_NOON, CallId(id));
                }
            }
        }
        if step % 997 == 0 {
            check(&p, &live);
        }
    }
    let ids: Vec<u64> = live.keys().copied().collect();
    for id in ids {
        if let Some((_, u, Some(a))) = live.remove(&id) {
            talked[u] += now.saturating_duration_since(a).as_secs();
        }
        p.ended(now, MONDAY_NOON, CallId(id));
    }
    check(&p, &live);
    for (i, u) in users.iter().enumerate() {
        assert_eq!(p.fraud().seconds_today("fraud", u), talked[i], "{u}");
    }
    assert!(next_id > 100_000, "enough calls started: {next_id}");
    let s = p.stats();
    assert!(s.calls_refused_busy > 0 && s.fraud_blocked > 0, "{s:?}");
}
