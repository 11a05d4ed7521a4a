//! Anti toll-fraud, in the spirit of OpenSIPS `fraud_detection`: rules per account (the caller's
//! user) or trunk and destination prefix, active in a time window, with a warning and a critical
//! threshold on calls per minute, concurrent calls, answered minutes per day and sequential
//! dialling (number + 1, + 2 ...). A critical threshold blocks the call; each threshold crossed
//! raises a [`FraudEvent`].
//!
//! State per rule and account in a bounded table with expiry (one worker's share: the counters are
//! per worker). A call's counters are taken when it starts and given back when it ends, whichever
//! way it ends, through the [`FraudKeys`] the call carries (see [`super::rules::CallPolicy`]).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::routing::{LocalTime, TimeWindow, TrunkId};
use crate::table::BoundedTable;

/// A trunk as the call rules name it: recognised by its source ACL (calls from it) or by the label
/// of the group its outbound proxy is in (calls to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRef {
    /// The trunk calls come from.
    pub id: TrunkId,
    /// The label of its outbound group ([`crate::b2bua::Target::label`]).
    pub label: Arc<str>,
}

impl TrunkRef {
    /// Whether the call `info` comes from or goes to this trunk.
    pub fn matches(&self, info: &CallInfo<'_>) -> bool {
        info.trunk == Some(self.id) || info.target_label == Some(&*self.label)
    }
}

/// What the rules know of a new call when it is routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallInfo<'a> {
    /// The source address of the INVITE.
    pub source: IpAddr,
    /// Whether the source is a trunk or on the inside (not an unknown source on the outside).
    pub trusted: bool,
    /// The trunk the call comes from, by its source ACL.
    pub trunk: Option<TrunkId>,
    /// The label of the target the call goes to.
    pub target_label: Option<&'a str>,
    /// The caller: the user of From.
    pub caller: &'a str,
    /// The number dialled: the user of the Request-URI as received.
    pub callee: &'a str,
    /// The number sent on leg B, after number rules (the same as `callee` without rules).
    pub callee_out: &'a str,
}

impl CallInfo<'_> {
    /// Whether the called number, as dialled or as sent on, starts with `prefix`.
    pub fn callee_starts_with(&self, prefix: &str) -> bool {
        self.callee.starts_with(prefix) || self.callee_out.starts_with(prefix)
    }
}

/// A warning and a critical threshold; 0 turns a level off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// The value from which a warning is raised.
    pub warning: u32,
    /// The value from which the call is blocked.
    pub critical: u32,
}

impl Thresholds {
    /// The level `value` reaches, with the threshold it reached.
    fn level(self, value: u64) -> Option<(Level, u32)> {
        if self.critical > 0 && value >= u64::from(self.critical) {
            Some((Level::Critical, self.critical))
        } else if self.warning > 0 && value >= u64::from(self.warning) {
            Some((Level::Warning, self.warning))
        } else {
            None
        }
    }

    /// The larger threshold in use.
    fn max(self) -> u32 {
        self.warning.max(self.critical)
    }
}

/// One fraud rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FraudRule {
    /// Its name, in events and in the run-time API.
    pub name: Arc<str>,
    /// Only calls of this caller; `None`: every caller.
    pub account: Option<Box<str>>,
    /// Counters per account (caller) when true; one set of counters for every matching call when
    /// false.
    pub per_account: bool,
    /// Only calls from or to this trunk.
    pub trunk: Option<TrunkRef>,
    /// Only calls whose number (dialled or sent on) starts with this; empty: every number.
    pub prefix: Box<str>,
    /// Only calls placed in this window (local time); `None`: always.
    pub window: Option<TimeWindow>,
    /// Calls in the last 60 seconds, this one included.
    pub calls_per_minute: Thresholds,
    /// Calls up at once, this one included.
    pub concurrent_calls: Thresholds,
    /// Answered minutes today (local day) before this call.
    pub minutes_per_day: Thresholds,
    /// Numbers dialled in a row each one more than the previous, this one included.
    pub sequential_calls: Thresholds,
}

impl FraudRule {
    /// A rule named `name` over every call, with no threshold set.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            account: None,
            per_account: true,
            trunk: None,
            prefix: "".into(),
            window: None,
            calls_per_minute: Thresholds::default(),
            concurrent_calls: Thresholds::default(),
            minutes_per_day: Thresholds::default(),
            sequential_calls: Thresholds::default(),
        }
    }

    fn applies(&self, info: &CallInfo<'_>, time: LocalTime) -> bool {
        self.account.as_deref().is_none_or(|a| a == info.caller)
            && self.trunk.as_ref().is_none_or(|t| t.matches(info))
            && info.callee_starts_with(&self.prefix)
            && self.window.is_none_or(|w| w.contains(time))
    }
}

/// What a fraud rule measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Calls in the last minute.
    CallsPerMinute,
    /// Calls up at once.
    ConcurrentCalls,
    /// Answered minutes today.
    MinutesPerDay,
    /// Sequential numbers dialled.
    SequentialCalls,
}

impl Metric {
    /// The metric's name in logs and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::CallsPerMinute => "calls_per_minute",
            Self::ConcurrentCalls => "concurrent_calls",
            Self::MinutesPerDay => "minutes_per_day",
            Self::SequentialCalls => "sequential_calls",
        }
    }
}

/// How serious a crossed threshold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Logged and counted; the call goes on.
    Warning,
    /// The call is blocked (403).
    Critical,
}

/// A threshold crossed by a new call: for the log, the counters and the operator's hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FraudEvent {
    /// The rule.
    pub rule: Arc<str>,
    /// The caller.
    pub account: Box<str>,
    /// The number dialled.
    pub callee: Box<str>,
    /// The source of the INVITE.
    pub source: IpAddr,
    /// What crossed the threshold.
    pub metric: Metric,
    /// Its value.
    pub value: u64,
    /// The threshold it reached.
    pub threshold: u32,
    /// Warning or critical (the call was blocked).
    pub level: Level,
}

/// The counters one call holds, given back when it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FraudKeys(Vec<FraudKey>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FraudKey {
    rule: Arc<str>,
    account: Box<str>,
}

/// The counters of one rule and account.
#[derive(Debug, Default)]
struct FraudState {
    /// When the last calls were placed (at most as many as the largest calls-per-minute threshold).
    recent: VecDeque<Instant>,
    /// Calls started and not ended.
    live: u32,
    /// The local weekday `seconds_today` counts for.
    day: u8,
    /// Answered seconds on `day`.
    seconds_today: u64,
    /// The last number dialled, as a number.
    last_number: Option<u64>,
    /// How many numbers in a row each followed the previous by one (the last included).
    run: u32,
}

impl FraudState {
    /// Starts a new local day when `time` is on another one.
    fn roll_day(&mut self, time: LocalTime) {
        if self.day != time.weekday {
            self.day = time.weekday;
            self.seconds_today = 0;
        }
    }
}

/// Events kept until the driver takes them; past this, new events are counted and dropped.
const MAX_EVENTS: usize = 1024;

/// The fraud detector of one worker.
#[derive(Debug)]
pub struct Fraud {
    rules: Vec<FraudRule>,
    table: BoundedTable<FraudKey, FraudState>,
    idle: Duration,
    events: VecDeque<FraudEvent>,
    /// Events dropped because the driver did not take them.
    pub(super) events_dropped: u64,
    /// Calls not tracked because the table was full.
    pub(super) table_full: u64,
}

/// What a fraud check found: the worst level reached, and the keys the call holds.
pub(super) struct FraudVerdict {
    pub(super) level: Option<Level>,
    /// Warning-level thresholds reached.
    pub(super) warnings: u32,
    pub(super) keys: FraudKeys,
}

impl Fraud {
    /// A detector with `rules`, at most `capacity` counter sets, each forgotten `idle` after its
    /// last use when no call holds it.
    pub fn new(rules: Vec<FraudRule>, capacity: usize, idle: Duration) -> Self {
        Self {
            rules,
            table: BoundedTable::new(capacity),
            idle,
            events: VecDeque::new(),
            events_dropped: 0,
            table_full: 0,
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[FraudRule] {
        &self.rules
    }

    /// Adds `rule`, replacing the rule of the same name (its counters stay).
    pub fn add_rule(&mut self, rule: FraudRule) {
        match self.rules.iter_mut().find(|r| r.name == rule.name) {
            Some(r) => *r = rule,
            None => self.rules.push(rule),
        }
    }

    /// Removes the rule `name`; false if there is none. Its counters expire when unused.
    pub fn remove_rule(&mut self, name: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| &*r.name != name);
        self.rules.len() != before
    }

    /// A new call `info` at `now` (local time `time`): counts its attempt and says the worst level
    /// it reaches. Every crossed threshold is queued as an event.
    pub(super) fn check(
        &mut self,
        now: Instant,
        time: LocalTime,
        info: &CallInfo<'_>,
    ) -> FraudVerdict {
        let mut verdict = FraudVerdict {
            level: None,
            warnings: 0,
            keys: FraudKeys::default(),
        };
        let number = sequence_number(info.callee);
        for rule in self.rules.iter().filter(|r| r.applies(info, time)) {
            let key = FraudKey {
                rule: rule.name.clone(),
                account: if rule.per_account {
                    info.caller.into()
                } else {
                    "".into()
                },
            };
            let deadline = now + self.idle;
            if !self.table.contains_key(&key)
                && self
                    .table
                    .insert(key.clone(), FraudState::default(), deadline)
                    .is_err()
            {
                self.table_full += 1;
                continue;
            }
            self.table.set_deadline(&key, deadline);
            let Some(state) = self.table.get_mut(&key) else {
                continue;
            };
            // Calls per minute: the attempts of the last 60 s, this one included.
            let minute_ago = now.checked_sub(Duration::from_secs(60));
            while state
                .recent
                .front()
                .is_some_and(|&t| minute_ago.is_some_and(|m| t <= m))
            {
                state.recent.pop_front();
            }
            let keep = rule.calls_per_minute.max() as usize;
            if keep > 0 {
                while state.recent.len() >= keep {
                    state.recent.pop_front();
                }
                state.recent.push_back(now);
            }
            // Sequential dialling: the run of numbers each one more than the previous.
            state.run = match (state.last_number, number) {
                (Some(last), Some(n)) if last.checked_add(1) == Some(n) => {
                    state.run.saturating_add(1)
                }
                (_, Some(_)) => 1,
                (_, None) => 0,
            };
            state.last_number = number;
            state.roll_day(time);
            let measured = [
                (
                    Metric::CallsPerMinute,
                    rule.calls_per_minute,
                    state.recent.len() as u64,
                ),
                (
                    Metric::ConcurrentCalls,
                    rule.concurrent_calls,
                    u64::from(state.live) + 1,
                ),
                (
                    Metric::MinutesPerDay,
                    rule.minutes_per_day,
                    state.seconds_today / 60,
                ),
                (
                    Metric::SequentialCalls,
                    rule.sequential_calls,
                    u64::from(state.run),
                ),
            ];
            for (metric, thresholds, value) in measured {
                let Some((level, threshold)) = thresholds.level(value) else {
                    continue;
                };
                verdict.level = verdict.level.max(Some(level));
                if level == Level::Warning {
                    verdict.warnings = verdict.warnings.saturating_add(1);
                }
                let event = FraudEvent {
                    rule: rule.name.clone(),
                    account: info.caller.into(),
                    callee: info.callee.into(),
                    source: info.source,
                    metric,
                    value,
                    threshold,
                    level,
                };
                if self.events.len() < MAX_EVENTS {
                    self.events.push_back(event);
                } else {
                    self.events_dropped += 1;
                }
            }
            verdict.keys.0.push(key);
        }
        verdict
    }

    /// A call holding `keys` started.
    pub(super) fn started(&mut self, now: Instant, keys: &FraudKeys) {
        for key in &keys.0 {
            if let Some(s) = self.table.get_mut(key) {
                s.live = s.live.saturating_add(1);
            }
            self.table.set_deadline(key, now + self.idle);
        }
    }

    /// A call holding `keys` ended after `answered` of conversation, at local time `time` (`None`:
    /// the counters are given back, no minute is counted).
    pub(super) fn ended(
        &mut self,
        now: Instant,
        time: Option<LocalTime>,
        keys: &FraudKeys,
        answered: Duration,
    ) {
        for key in &keys.0 {
            if let Some(s) = self.table.get_mut(key) {
                s.live = s.live.saturating_sub(1);
                if let Some(time) = time {
                    s.roll_day(time);
                    s.seconds_today = s.seconds_today.saturating_add(answered.as_secs());
                }
            }
            self.table.set_deadline(key, now + self.idle);
        }
    }

    /// Forgets the counters unused for the idle time; a set some call still holds stays.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, state)) = self.table.poll_expired(now) {
            if state.live > 0 {
                let _ = self.table.insert(key, state, now + self.idle);
            }
        }
    }

    /// When [`Self::handle_timeout`] next has work.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<FraudEvent> {
        self.events.pop_front()
    }

    /// Calls up now under rule `rule` for `account` (empty for a rule not per account).
    pub fn live(&self, rule: &str, account: &str) -> u32 {
        self.table
            .get(&FraudKey {
                rule: rule.into(),
                account: account.into(),
            })
            .map_or(0, |s| s.live)
    }

    /// Answered seconds today under rule `rule` for `account`.
    pub fn seconds_today(&self, rule: &str, account: &str) -> u64 {
        self.table
            .get(&FraudKey {
                rule: rule.into(),
                account: account.into(),
            })
            .map_or(0, |s| s.seconds_today)
    }

    /// Counter sets held now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }
}

/// A dialled number as an integer for sequential dialling: digits only (a leading `+` allowed), at
/// most 18 of them.
fn sequence_number(number: &str) -> Option<u64> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
