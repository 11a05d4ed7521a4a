//! Call rules: what a new call must pass once it is routed and before it is relayed, for the whole
//! SBC, per trunk and per source network. Caller and callee blacklists and whitelists (exact numbers
//! and prefixes), concurrent calls and calls per second per rule, per source address or per caller,
//! and the fraud rules of [`super::fraud`]. A refused call is answered, never forwarded:
//!
//! | why | answer |
//! |---|---|
//! | caller or callee on a blacklist, or not on a whitelist | 403 Forbidden |
//! | a fraud rule's critical threshold | 403 Forbidden |
//! | concurrent calls at the limit | 486 Busy Here |
//! | calls per second over the limit | 503 Service Unavailable, Retry-After: 1 |
//!
//! [`CallPolicy`] is one worker's: its counters are that worker's calls. Per-source and per-caller
//! counters live in bounded tables with expiry; a call takes its counters when it starts
//! ([`CallPolicy::started`]) and gives them back when it ends ([`CallPolicy::ended`]), fed from the
//! B2BUA's call events, so no outcome leaves a counter behind.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::fraud::{
    CallInfo, Fraud, FraudEvent, FraudKeys, FraudRule, Level, Metric, Thresholds, TrunkRef,
};
use super::TokenBucket;
use crate::b2bua::{CallId, Refusal};
use crate::cidr::Cidr;
use crate::routing::LocalTime;
use crate::table::BoundedTable;

impl Refusal {
    /// A number on a blacklist (or missing from a whitelist), or a fraud rule's critical
    /// threshold: 403 Forbidden.
    pub const FORBIDDEN: Self = Self {
        code: 403,
        retry_after: None,
    };
    /// Concurrent calls at a rule's limit: 486 Busy Here.
    pub const BUSY: Self = Self {
        code: 486,
        retry_after: None,
    };
    /// Over a rule's calls per second: 503 Service Unavailable with Retry-After: 1.
    pub const RATE: Self = Self {
        code: 503,
        retry_after: Some(1),
    };
}

/// A list of numbers: exact numbers, and prefixes written with a trailing `*` (`+49900*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberList {
    exact: HashSet<Box<str>>,
    prefixes: Vec<Box<str>>,
}

impl NumberList {
    /// A list of `entries` (see [`Self::insert`]).
    pub fn new<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Self {
        let mut l = Self::default();
        for e in entries {
            l.insert(e.as_ref());
        }
        l
    }

    /// Adds `entry`: a prefix when it ends with `*`, else an exact number. False if it was there.
    pub fn insert(&mut self, entry: &str) -> bool {
        match entry.strip_suffix('*') {
            Some(p) if self.prefixes.iter().any(|q| &**q == p) => false,
            Some(p) => {
                self.prefixes.push(p.into());
                true
            }
            None => self.exact.insert(entry.into()),
        }
    }

    /// Removes `entry` (written as for [`Self::insert`]). False if it was not there.
    pub fn remove(&mut self, entry: &str) -> bool {
        match entry.strip_suffix('*') {
            Some(p) => {
                let before = self.prefixes.len();
                self.prefixes.retain(|q| &**q != p);
                self.prefixes.len() != before
            }
            None => self.exact.remove(entry),
        }
    }

    /// Whether `number` is on the list, exactly or by a prefix.
    pub fn contains(&self, number: &str) -> bool {
        self.exact.contains(number) || self.prefixes.iter().any(|p| number.starts_with(&**p))
    }

    /// Whether the list is empty (an empty whitelist lets every number through).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// The entries, exact numbers sorted, then prefixes (with their `*`) in order.
    pub fn entries(&self) -> Vec<String> {
        let mut out: Vec<String> = self.exact.iter().map(|e| e.to_string()).collect();
        out.sort();
        out.extend(self.prefixes.iter().map(|p| format!("{p}*")));
        out
    }
}

/// One of a rule's four lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Callers refused.
    CallerBlacklist,
    /// When not empty, the only callers let through.
    CallerWhitelist,
    /// Numbers that cannot be called.
    CalleeBlacklist,
    /// When not empty, the only numbers that can be called.
    CalleeWhitelist,
}

/// What a rule's limits count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitPer {
    /// Every call the rule matches together.
    Rule,
    /// Each source address apart.
    #[default]
    Source,
    /// Each caller (From user) apart.
    User,
}

/// Which calls a rule applies to: all of the conditions given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleScope {
    /// Calls from or to this trunk.
    pub trunk: Option<TrunkRef>,
    /// Calls whose source is in one of these networks (empty: any source).
    pub sources: Vec<Cidr>,
    /// Only calls from unknown sources on the outside (not a trunk, not the inside).
    pub untrusted: bool,
}

impl RuleScope {
    fn matches(&self, info: &CallInfo<'_>) -> bool {
        self.trunk.as_ref().is_none_or(|t| t.matches(info))
            && (self.sources.is_empty() || self.sources.iter().any(|c| c.contains(info.source)))
            && !(self.untrusted && info.trusted)
    }
}

/// One call rule: lists and limits over the calls of its scope.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRule {
    /// Its name, in logs and in the run-time API.
    pub name: Arc<str>,
    /// The calls it applies to.
    pub scope: RuleScope,
    /// Callers refused.
    pub caller_blacklist: NumberList,
    /// When not empty, the only callers let through.
    pub caller_whitelist: NumberList,
    /// Numbers that cannot be called (as dialled or as sent on).
    pub callee_blacklist: NumberList,
    /// When not empty, the only numbers that can be called.
    pub callee_whitelist: NumberList,
    /// Concurrent calls per counter (see `per`); 0: no limit.
    pub max_calls: u32,
    /// New calls per second per counter; 0 (or less): no limit.
    pub max_cps: f64,
    /// What the limits count.
    pub per: LimitPer,
}

impl CallRule {
    /// A rule named `name` over every call, with empty lists and no limit.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            scope: RuleScope::default(),
            caller_blacklist: NumberList::default(),
            caller_whitelist: NumberList::default(),
            callee_blacklist: NumberList::default(),
            callee_whitelist: NumberList::default(),
            max_calls: 0,
            max_cps: 0.0,
            per: LimitPer::Source,
        }
    }

    /// One of its lists.
    pub fn list(&self, kind: ListKind) -> &NumberList {
        match kind {
            ListKind::CallerBlacklist => &self.caller_blacklist,
            ListKind::CallerWhitelist => &self.caller_whitelist,
            ListKind::CalleeBlacklist => &self.callee_blacklist,
            ListKind::CalleeWhitelist => &self.callee_whitelist,
        }
    }

    fn list_mut(&mut self, kind: ListKind) -> &mut NumberList {
        match kind {
            ListKind::CallerBlacklist => &mut self.caller_blacklist,
            ListKind::CallerWhitelist => &mut self.caller_whitelist,
            ListKind::CalleeBlacklist => &mut self.callee_blacklist,
            ListKind::CalleeWhitelist => &mut self.callee_whitelist,
        }
    }

    /// Whether the numbers of `info` pass the lists.
    fn lists_pass(&self, info: &CallInfo<'_>) -> bool {
        let callee_on = |l: &NumberList| l.contains(info.callee) || l.contains(info.callee_out);
        !self.caller_blacklist.contains(info.caller)
            && (self.caller_whitelist.is_empty() || self.caller_whitelist.contains(info.caller))
            && !callee_on(&self.callee_blacklist)
            && (self.callee_whitelist.is_empty() || callee_on(&self.callee_whitelist))
    }

    fn has_limits(&self) -> bool {
        self.max_calls > 0 || self.max_cps > 0.0
    }

    fn key(&self, info: &CallInfo<'_>) -> LimitKey {
        LimitKey {
            rule: self.name.clone(),
            who: match self.per {
                LimitPer::Rule => Who::All,
                LimitPer::Source => Who::Source(info.source),
                LimitPer::User => Who::User(info.caller.into()),
            },
        }
    }
}

/// A change of the rules at run time, applied by the worker ([`CallPolicy::apply`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RulesCommand {
    /// Add a call rule, or replace the one of the same name.
    AddRule(Box<CallRule>),
    /// Remove the call rule of this name.
    RemoveRule(Arc<str>),
    /// Add an entry to a list of a call rule.
    ListAdd {
        /// The rule.
        rule: Arc<str>,
        /// The list.
        list: ListKind,
        /// The number, or a prefix ending with `*`.
        entry: Box<str>,
    },
    /// Remove an entry from a list of a call rule.
    ListRemove {
        /// The rule.
        rule: Arc<str>,
        /// The list.
        list: ListKind,
        /// The entry, as it was added.
        entry: Box<str>,
    },
    /// Add a fraud rule, or replace the one of the same name.
    AddFraudRule(Box<FraudRule>),
    /// Remove the fraud rule of this name.
    RemoveFraudRule(Arc<str>),
}

/// What a [`CallPolicy`] is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct RulesConfig {
    /// The call rules, in order.
    pub rules: Vec<CallRule>,
    /// The fraud rules, in order.
    pub fraud: Vec<FraudRule>,
    /// The most counter sets each table (limits, fraud) holds.
    pub table_size: usize,
    /// A counter set no call holds is forgotten this long after its last use.
    pub idle: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            fraud: Vec::new(),
            table_size: 65_536,
            idle: Duration::from_secs(3600),
        }
    }
}

sbc_counters::counters! {
    /// What the call rules and the fraud rules decided; single writer (the worker).
    pub struct RulesStats {
        /// New calls refused by a blacklist or whitelist (403).
        counter calls_refused_list,
        /// New calls refused at a concurrent-call limit (486).
        counter calls_refused_busy,
        /// New calls refused over a calls-per-second limit (503).
        counter calls_refused_rate,
        /// New calls blocked by a fraud rule's critical threshold (403).
        counter fraud_blocked,
        /// Fraud warnings raised (thresholds of the warning level reached).
        counter fraud_warnings,
        /// Calls not counted by a rule because its table was full.
        counter rules_table_full,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LimitKey {
    rule: Arc<str>,
    who: Who,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Who {
    All,
    Source(IpAddr),
    User(Box<str>),
}

/// The counters of one rule and key.
#[derive(Debug, Default)]
struct LimitState {
    /// Calls started and not ended.
    live: u32,
    /// New calls per second, made at the first call the rule's rate applies to.
    bucket: Option<TokenBucket>,
}

/// What a routed call holds: the counters it took, given back when it ends. Opaque.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ticket {
    limits: Vec<LimitKey>,
    fraud: FraudKeys,
}

/// A call the policy counts.
#[derive(Debug)]
struct Held {
    ticket: Ticket,
    answered: Option<Instant>,
}

/// One worker's call rules and fraud rules with their counters.
#[derive(Debug)]
pub struct CallPolicy {
    rules: Vec<CallRule>,
    limits: BoundedTable<LimitKey, LimitState>,
    fraud: Fraud,
    calls: HashMap<CallId, Held>,
    idle: Duration,
    stats: RulesStats,
}

impl CallPolicy {
    /// The policy of `cfg`.
    pub fn new(cfg: RulesConfig) -> Self {
        Self {
            rules: cfg.rules,
            limits: BoundedTable::new(cfg.table_size),
            fraud: Fraud::new(cfg.fraud, cfg.table_size, cfg.idle),
            calls: HashMap::new(),
            idle: cfg.idle,
            stats: RulesStats::default(),
        }
    }

    /// Whether the new call `info`, routed at `now` (local time `time`), may go on: the ticket it
    /// holds (give it to [`Self::started`] when the call starts), or the refusal to answer it with.
    pub fn check(
        &mut self,
        now: Instant,
        time: LocalTime,
        info: &CallInfo<'_>,
    ) -> Result<Ticket, Refusal> {
        let applying = || self.rules.iter().filter(|r| r.scope.matches(info));
        if applying().any(|r| !r.lists_pass(info)) {
            self.stats.calls_refused_list += 1;
            return Err(Refusal::FORBIDDEN);
        }
        let busy = applying().any(|r| {
            r.max_calls > 0
                && self
                    .limits
                    .get(&r.key(info))
                    .is_some_and(|s| s.live >= r.max_calls)
        });
        if busy {
            self.stats.calls_refused_busy += 1;
            return Err(Refusal::BUSY);
        }
        let mut ticket = Ticket::default();
        let deadline = now + self.idle;
        let mut over_rate = false;
        for r in self
            .rules
            .iter()
            .filter(|r| r.scope.matches(info) && r.has_limits())
        {
            let key = r.key(info);
            if !self.limits.contains_key(&key)
                && self
                    .limits
                    .insert(key.clone(), LimitState::default(), deadline)
                    .is_err()
            {
                self.stats.rules_table_full += 1;
                continue;
            }
            self.limits.set_deadline(&key, deadline);
            if let Some(s) = self.limits.get_mut(&key).filter(|_| r.max_cps > 0.0) {
                if !s
                    .bucket
                    .get_or_insert_with(|| TokenBucket::new(r.max_cps))
                    .take(now)
                {
                    over_rate = true;
                }
            }
            ticket.limits.push(key);
        }
        if over_rate {
            self.stats.calls_refused_rate += 1;
            return Err(Refusal::RATE);
        }
        let verdict = self.fraud.check(now, time, info);
        self.stats.fraud_warnings += u64::from(verdict.warnings);
        match verdict.level {
            Some(Level::Critical) => {
                self.stats.fraud_blocked += 1;
                Err(Refusal::FORBIDDEN)
            }
            _ => {
                ticket.fraud = verdict.keys;
                Ok(ticket)
            }
        }
    }

    /// The call `call` started holding `ticket`: its counters go up.
    pub fn started(&mut self, now: Instant, call: CallId, ticket: Ticket) {
        for key in &ticket.limits {
            if let Some(s) = self.limits.get_mut(key) {
                s.live = s.live.saturating_add(1);
            }
            self.limits.set_deadline(key, now + self.idle);
        }
        self.fraud.started(now, &ticket.fraud);
        if let Some(old) = self.calls.insert(
            call,
            Held {
                ticket,
                answered: None,
            },
        ) {
            // A call id is never reused; should one be, its old counters are given back.
            self.give_back(now, None, old);
        }
    }

    /// The call `call` was answered at `now`.
    pub fn answered(&mut self, now: Instant, call: CallId) {
        if let Some(h) = self.calls.get_mut(&call) {
            h.answered.get_or_insert(now);
        }
    }

    /// The call `call` ended at `now` (local time `time`), whichever way: its counters go down and
    /// its answered time counts toward the fraud rules' minutes of the day.
    pub fn ended(&mut self, now: Instant, time: LocalTime, call: CallId) {
        if let Some(h) = self.calls.remove(&call) {
            self.give_back(now, Some(time), h);
        }
    }

    fn give_back(&mut self, now: Instant, time: Option<LocalTime>, held: Held) {
        for key in &held.ticket.limits {
            if let Some(s) = self.limits.get_mut(key) {
                s.live = s.live.saturating_sub(1);
            }
            self.limits.set_deadline(key, now + self.idle);
        }
        let talked = held
            .answered
            .map_or(Duration::ZERO, |a| now.saturating_duration_since(a));
        self.fraud.ended(now, time, &held.ticket.fraud, talked);
    }

    /// Forgets counters unused for the idle time (never those a live call holds).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, state)) = self.limits.poll_expired(now) {
            if state.live > 0 {
                let _ = self.limits.insert(key, state, now + self.idle);
            }
        }
        self.fraud.handle_timeout(now);
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.limits.next_deadline(), self.fraud.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next fraud event (a threshold crossed), for the log and the operator's hook.
    pub fn poll_event(&mut self) -> Option<FraudEvent> {
        self.fraud.poll_event()
    }

    /// Applies a change made at run time; false when it names a rule that does not exist or
    /// changes nothing.
    pub fn apply(&mut self, cmd: RulesCommand) -> bool {
        match cmd {
            RulesCommand::AddRule(rule) => {
                let rule = *rule;
                match self.rules.iter_mut().find(|r| r.name == rule.name) {
                    Some(r) => *r = rule,
                    None => self.rules.push(rule),
                }
                true
            }
            RulesCommand::RemoveRule(name) => {
                let before = self.rules.len();
                self.rules.retain(|r| r.name != name);
                self.rules.len() != before
            }
            RulesCommand::ListAdd { rule, list, entry } => self
                .rules
                .iter_mut()
                .find(|r| r.name == rule)
                .is_some_and(|r| r.list_mut(list).insert(&entry)),
            RulesCommand::ListRemove { rule, list, entry } => self
                .rules
                .iter_mut()
                .find(|r| r.name == rule)
                .is_some_and(|r| r.list_mut(list).remove(&entry)),
            RulesCommand::AddFraudRule(rule) => {
                self.fraud.add_rule(*rule);
                true
            }
            RulesCommand::RemoveFraudRule(name) => self.fraud.remove_rule(&name),
        }
    }

    /// The call rules, in order.
    pub fn rules(&self) -> &[CallRule] {
        &self.rules
    }

    /// The fraud detector (its rules and counters).
    pub fn fraud(&self) -> &Fraud {
        &self.fraud
    }

    /// Calls up now counted by rule `rule` for the source `source` (a rule per source).
    pub fn live_from(&self, rule: &str, source: IpAddr) -> u32 {
        self.live_of(rule, Who::Source(source))
    }

    /// Calls up now counted by rule `rule` for caller `user` (a rule per user).
    pub fn live_of_user(&self, rule: &str, user: &str) -> u32 {
        self.live_of(rule, Who::User(user.into()))
    }

    /// Calls up now counted by rule `rule` as a whole (a rule per rule).
    pub fn live_in(&self, rule: &str) -> u32 {
        self.live_of(rule, Who::All)
    }

    fn live_of(&self, rule: &str, who: Who) -> u32 {
        self.limits
            .get(&LimitKey {
                rule: rule.into(),
                who,
            })
            .map_or(0, |s| s.live)
    }

    /// Calls the policy holds counters for.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The counters.
    pub fn stats(&self) -> RulesStats {
        let mut s = self.stats;
        s.rules_table_full = s.rules_table_full.saturating_add(self.fraud.table_full);
        s
    }
}

#[cfg(test)]
mod tests;
