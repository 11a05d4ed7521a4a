//! Admission before state: what a packet must pass before it is parsed into a transaction or dialog,
//! per worker, in fixed memory.
//!
//! One [`Guard`] per worker, sans-IO. The worker asks it about every datagram before parsing
//! ([`Guard::admit_datagram`]: the inside ACL, bans, per-source budgets by kind), about every parsed
//! message before the B2BUA sees it ([`Guard::admit`]: scanner User-Agents, the new-call rate), and
//! tells it the final answers the outside got to its out-of-dialog requests ([`Guard::on_final`]:
//! unknown users, refused credentials, unanswered challenges, and successes that forgive them).
//! Sources are tracked in a fixed-size table (`table`), bans in a bounded one (`bans`); the
//! control thread changes bans and the allow list at run time ([`GuardCommand`]). The trunk ACLs are
//! the routing policy's ([`crate::routing::policy::trunk_of`]). The rules are in `docs/guard.md`.

mod bans;
mod limits;
mod table;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::cidr::Cidr;
use crate::routing::policy::{trunk_of, PolicyTrunk};
use crate::routing::TrunkId;
use crate::signalling::topology::Side;

pub use bans::{BanInfo, BanReason};
pub use limits::{Budget, Budgets, GuardPolicy};

use bans::{Bans, MAX_ALLOWED};
use table::{key_of, Entry, SourceTable};

pub mod fraud;
pub mod rules;

/// What a message is, as far as admission cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An INVITE (outside any dialog once parsed; before parsing, any INVITE).
    Invite,
    /// A REGISTER.
    Register,
    /// An OPTIONS (outside any dialog once parsed; before parsing, any OPTIONS).
    Options,
    /// Any other message: in-dialog requests, responses, ACK, CANCEL, keep-alives ...
    Other,
    /// A message that is not SIP or failed to parse.
    Malformed,
}

impl Kind {
    /// The kind of a datagram read from its first bytes, before parsing: the method of a request,
    /// `Other` for a response or a CRLF keep-alive, `Malformed` for anything that does not start
    /// like SIP.
    pub fn sniff(raw: &[u8]) -> Self {
        let token_len = raw.iter().take(17).position(|b| *b == b' ');
        let token = token_len.and_then(|n| raw.get(..n));
        match token {
            Some(b"INVITE") => Self::Invite,
            Some(b"REGISTER") => Self::Register,
            Some(b"OPTIONS") => Self::Options,
            Some(b"SIP/2.0") => Self::Other,
            Some(t) if !t.is_empty() && t.iter().all(u8::is_ascii_uppercase) => Self::Other,
            _ if !raw.is_empty() && raw.iter().all(|b| matches!(b, b'\r' | b'\n')) => Self::Other,
            _ => Self::Malformed,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Invite => 0,
            Self::Register => 1,
            Self::Options => 2,
            Self::Other => 3,
            Self::Malformed => 4,
        }
    }

    fn is_request(self) -> bool {
        !matches!(self, Self::Other | Self::Malformed)
    }
}

/// The guard's verdict on a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go on: parse it, or hand it to the B2BUA.
    Admit,
    /// Answer it statelessly with this refusal and make no state.
    Refuse(Refusal),
    /// Drop it without an answer.
    Drop,
}

/// A stateless refusal (RFC 3261 §21.5.4 for the rate: 503 with Retry-After).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'static str,
    /// Seconds for a Retry-After header, if one is sent.
    pub retry_after: Option<u32>,
}

impl Refusal {
    /// Over the new-call rate: 503 Service Unavailable, Retry-After: 1.
    pub const RATE: Self = Self {
        code: 503,
        reason: "Service Unavailable",
        retry_after: Some(1),
    };

    /// A request to the inside from a source that is not on the inside.
    pub const NOT_INSIDE: Self = Self {
        code: 403,
        reason: "Forbidden",
        retry_after: None,
    };
}

/// Who a source is, by its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceClass {
    /// In the source ACL of this trunk (the first in configuration order).
    Trunk(TrunkId),
    /// An inside target, or in a network the config names as inside.
    Inside,
    /// In an allowed network (config or run time).
    Allowed,
    /// Anyone else.
    Unknown,
}

impl SourceClass {
    /// Whether the source is a trunk, on the inside or allowed: its own budgets, never banned by
    /// the automatic rules.
    pub fn is_trusted(self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

/// What a [`Guard`] is built from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardConfig {
    /// This worker's share of the new-call rate, calls per second; 0 (or less): not limited.
    pub cps: f64,
    /// The trunks, as the routing policy has them (their source ACLs are the guard's too).
    pub trunks: Vec<PolicyTrunk>,
    /// The inside: the inside targets' addresses and the networks the config names.
    pub inside: Vec<Cidr>,
    /// Networks trusted on the outside (their own budgets, never banned automatically).
    pub allow: Vec<Cidr>,
    /// Budgets, answers and ban rules.
    pub policy: GuardPolicy,
    /// Keys the source table's hash (secret, per process).
    pub seed: u64,
}

/// A run-time change, sent by the control thread to every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardCommand {
    /// Ban an address for this long (`None`: until removed).
    Ban {
        /// The address.
        ip: IpAddr,
        /// The ban's length.
        secs: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// The address.
        ip: IpAddr,
    },
    /// Trust a network (its own budgets, never banned automatically).
    Allow {
        /// The network.
        net: Cidr,
    },
    /// Stop trusting a network added with [`Self::Allow`].
    Disallow {
        /// The network.
        net: Cidr,
    },
}

/// A final answer the outside got to an out-of-dialog request, as the guard learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Final {
    /// The request's kind.
    pub kind: Kind,
    /// The status sent (before any hiding).
    pub status: u16,
    /// Whether the request carried credentials (Authorization or Proxy-Authorization).
    pub credentials: bool,
}

sbc_counters::counters! {
    /// The guard's counters, by verdict and reason; single writer (the worker). The names are
    /// unique among the worker's layers (one flat namespace for logs and metrics).
    pub struct GuardStats {
        /// Parsed messages admitted (answered statelessly or handed to the B2BUA).
        counter guard_admitted,
        /// New calls refused over the worker's share of the new-call rate (`limits.max_cps`).
        counter cps_refused,
        /// Messages dropped without an answer, for any reason below.
        counter guard_dropped,
        /// Messages over their source's budget answered 503 with Retry-After.
        counter guard_rate_refused,
        /// Messages over their source's budget dropped (past `answered_per_sec`).
        counter guard_rate_dropped,
        /// Messages from a banned source, dropped.
        counter guard_banned_dropped,
        /// Requests with a scanning tool's User-Agent, dropped.
        counter guard_scanner_dropped,
        /// Requests to the inside from a source not on the inside, refused (403) or dropped.
        counter inside_refused,
        /// Responses on the inside from a source not on the inside, dropped.
        counter inside_dropped,
        /// Bans for a flood.
        counter bans_flood,
        /// Bans for unknown users.
        counter bans_unknown_users,
        /// Bans for refused credentials.
        counter bans_auth_failures,
        /// Bans for unanswered challenges (a sweep).
        counter bans_sweep,
        /// Bans for a scanner's User-Agent.
        counter bans_scanner,
        /// Bans through the control API.
        counter bans_manual,
        /// "Unknown user" answers relayed as a challenge (`hide_unknown_users`).
        counter unknown_users_hidden,
        /// Sources forgotten to make room in the table (least recently seen).
        counter guard_sources_evicted,
        /// Sources tracked now.
        gauge guard_sources,
        /// Bans in force now.
        gauge guard_bans_active,
        /// Run-time commands applied.
        counter guard_commands,
    }
}

/// The admission guard of one worker.
#[derive(Debug)]
pub struct Guard {
    cps: Option<TokenBucket>,
    trunks: Vec<PolicyTrunk>,
    inside: Vec<Cidr>,
    allow: Vec<Cidr>,
    policy: GuardPolicy,
    table: SourceTable,
    bans: Bans,
    /// Bumped when the allow list changes: entries classified before are classified again.
    gen: u32,
    epoch: Option<Instant>,
    /// The latest time seen, ms since `epoch` (the gauges are as of then).
    now_ms: u64,
    /// The source and sniffed kind of the last datagram (a parse failure is charged once).
    last: Option<(u128, Kind)>,
    stats: GuardStats,
}

impl Guard {
    /// A guard for `cfg`.
    pub fn new(cfg: GuardConfig) -> Self {
        let mut policy = cfg.policy;
        for ua in &mut policy.scanner_user_agents {
            ua.make_ascii_lowercase();
        }
        Self {
            cps: (cfg.cps > 0.0).then(|| TokenBucket::new(cfg.cps)),
            trunks: cfg.trunks,
            inside: cfg.inside,
            allow: cfg.allow,
            table: SourceTable::new(policy.max_sources, cfg.seed),
            bans: Bans::new(policy.max_bans),
            policy,
            gen: 0,
            epoch: None,
            now_ms: 0,
            last: None,
            stats: GuardStats::default(),
        }
    }

    /// Milliseconds since the guard's first call.
    fn ms(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        let ms = millis(now.saturating_duration_since(epoch));
        self.now_ms = self.now_ms.max(ms);
        ms
    }

    /// A datagram or framed message `raw` from `source`, received on `side`, before it is parsed:
    /// the inside ACL, the source's ban, then its budget for the message's kind ([`Kind::sniff`]).
    pub fn admit_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        side: Side,
        raw: &[u8],
    ) -> Admission {
        let kind = Kind::sniff(raw);
        let key = key_of(source.ip());
        self.last = Some((key, kind));
        let ms = self.ms(now);
        let Some(class) = self.entry(key, ms).map(|e| e.trusted) else {
            return Admission::Admit;
        };
        if side == Side::Inside && !self.is_inside(source.ip()) {
            return if kind.is_request() {
                self.stats.inside_refused += 1;
                self.over_budget(key, ms, kind, Refusal::NOT_INSIDE, false)
            } else {
                self.stats.inside_dropped += 1;
                self.drop_it()
            };
        }
        self.charge(key, ms, kind, class)
    }

    /// A parsed message of `kind` (out-of-dialog INVITE and OPTIONS as such, in-dialog ones as
    /// `Other`) from `source` at `now`, with its User-Agent: a scanner is dropped (and banned), a
    /// new call over this worker's rate refused, a message that failed to parse charged to the
    /// source's malformed budget; everything else admitted.
    pub fn admit(
        &mut self,
        now: Instant,
        source: SocketAddr,
        kind: Kind,
        user_agent: Option<&str>,
    ) -> Admission {
        let key = key_of(source.ip());
        let ms = self.ms(now);
        if kind == Kind::Malformed {
            // Charged before parsing already when it did not even look like SIP.
            if self.last != Some((key, Kind::Malformed)) {
                let trusted = self.entry(key, ms).is_some_and(|e| e.trusted);
                if self.charge(key, ms, kind, trusted) != Admission::Admit {
                    return self.drop_it();
                }
            }
        } else if let Some(ua) = user_agent.filter(|_| kind != Kind::Other) {
            if self.is_scanner(ua) {
                self.stats.guard_scanner_dropped += 1;
                if !self.entry(key, ms).is_some_and(|e| e.trusted) {
                    self.ban_key(key, ms, BanReason::Scanner);
                }
                return self.drop_it();
            }
        }
        match kind {
            Kind::Invite if self.cps.as_mut().is_some_and(|b| !b.take(now)) => {
                self.stats.cps_refused += 1;
                Admission::Refuse(Refusal::RATE)
            }
            _ => {
                self.stats.guard_admitted += 1;
                Admission::Admit
            }
        }
    }

    /// The outside got `answer` to an out-of-dialog request from `ip`. A success banks a credit and
    /// gives the request's tokens back (with the challenge before it); an unknown user, refused
    /// credentials or a challenge spend a credit, or count toward the source's ban when it has none.
    pub fn on_final(&mut self, now: Instant, ip: IpAddr, answer: Final) {
        let key = key_of(ip);
        let ms = self.ms(now);
        let policy = &self.policy;
        let Some(e) = self.table.get_mut(key) else {
            return;
        };
        // A banned source's late answers change nothing: the ban stands as it is.
        if e.trusted || e.banned_until_ms > ms {
            return;
        }
        if ms.saturating_sub(e.window_ms) >= millis(policy.failure_window) {
            e.window_ms = ms;
            e.unknown_users = 0;
            e.auth_failures = 0;
            e.open_challenges = 0;
        }
        let (count, limit, reason) = match answer.status {
            200..=299 => {
                e.credit = e.credit.saturating_add(1).min(policy.credit_max);
                e.open_challenges = e.open_challenges.saturating_sub(1);
                let budget = policy.untrusted.of(answer.kind);
                if let Some(t) = e.tokens.get_mut(answer.kind.index()) {
                    *t = (*t + 2.0).min(budget.burst);
                }
                return;
            }
            404 | 484 | 604 => (
                &mut e.unknown_users,
                policy.unknown_users,
                BanReason::UnknownUsers,
            ),
            401 | 403 | 407 if answer.credentials => (
                &mut e.auth_failures,
                policy.auth_failures,
                BanReason::AuthFailures,
            ),
            401 | 407 => (
                &mut e.open_challenges,
                policy.open_challenges,
                BanReason::Sweep,
            ),
            _ => return,
        };
        if reason != BanReason::Sweep && e.credit > 0 {
            e.credit -= 1;
            return;
        }
        *count = count.saturating_add(1);
        if limit > 0 && *count >= limit {
            *count = 0;
            self.ban_key(key, ms, reason);
        }
    }

    /// Whether `ip` is trusted (a trunk, on the inside, allowed).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.classify(ip).is_trusted()
    }

    /// Whether `ip` may send to the inside: an inside target or an inside network.
    pub fn is_inside(&self, ip: IpAddr) -> bool {
        self.inside.iter().any(|c| c.contains(ip))
    }

    /// Who `ip` is: a trunk by its source ACL (the routing policy's rule), on the inside, allowed,
    /// or unknown.
    pub fn classify(&self, ip: IpAddr) -> SourceClass {
        if let Some(t) = trunk_of(&self.trunks, ip) {
            return SourceClass::Trunk(t.id);
        }
        if self.is_inside(ip) {
            return SourceClass::Inside;
        }
        if self
            .allow
            .iter()
            .chain(&self.bans.allowed)
            .any(|c| c.contains(ip))
        {
            return SourceClass::Allowed;
        }
        SourceClass::Unknown
    }

    /// Whether a User-Agent is a scanning tool's.
    fn is_scanner(&self, ua: &str) -> bool {
        self.policy
            .scanner_user_agents
            .iter()
            .any(|s| contains_ignore_ascii_case(ua.as_bytes(), s.as_bytes()))
    }

    /// Whether a final answer to a request from `ip` is to be relayed as a challenge when it says
    /// "unknown user" (`hide_unknown_users`, untrusted sources); counted when it is.
    pub fn hides_unknown_user(&mut self, ip: IpAddr, status: u16) -> bool {
        let hide = self.policy.hide_unknown_users
            && matches!(status, 404 | 484 | 604)
            && !self.is_trusted(ip);
        if hide {
            self.stats.unknown_users_hidden += 1;
        }
        hide
    }

    /// The realm of hidden unknown users' challenges (empty: learnt from the PBX's challenges).
    pub fn realm(&self) -> &str {
        &self.policy.realm
    }

    /// The entry of `key`, made when new (classified, its ban restored from the ban table),
    /// reclassified when the allow list changed since.
    fn entry(&mut self, key: u128, ms: u64) -> Option<&mut Entry> {
        let gen = self.gen;
        let (fresh, stale, evicted) = {
            let (e, fresh, evicted) = self.table.entry(key)?;
            (fresh, e.gen != gen, evicted)
        };
        if evicted.is_some() {
            self.stats.guard_sources_evicted += 1;
        }
        if fresh || stale {
            let trusted = self.classify(table::ip_of(key)).is_trusted();
            let ban = self.bans.get(key);
            let budgets = if trusted {
                self.policy.trusted
            } else {
                self.policy.untrusted
            };
            let e = self.table.get_mut(key)?;
            e.gen = gen;
            e.trusted = trusted;
            if fresh {
                e.last_ms = ms;
                e.window_ms = ms;
                for (k, t) in [
                    Kind::Invite,
                    Kind::Register,
                    Kind::Options,
                    Kind::Other,
                    Kind::Malformed,
                ]
                .into_iter()
                .zip(e.tokens.iter_mut())
                {
                    *t = budgets.of(k).burst;
                }
                e.banned_until_ms = ban.map_or(0, |b| b.until_ms);
            }
        }
        self.table.get_mut(key)
    }

    /// Charge one message of `kind` to the source's budget; a banned source is dropped.
    fn charge(&mut self, key: u128, ms: u64, kind: Kind, trusted: bool) -> Admission {
        let budgets = if trusted {
            self.policy.trusted
        } else {
            self.policy.untrusted
        };
        let Some(e) = self.table.get_mut(key) else {
            return Admission::Admit;
        };
        if e.banned_until_ms > ms {
            self.stats.guard_banned_dropped += 1;
            return self.drop_it();
        }
        // `last_ms` is the source's last message of any kind: every kind's bucket is refilled for
        // the time since then (refilling only the charged one would starve a kind that shares its
        // source with busier ones, e.g. INVITEs between their ACKs and BYEs).
        let elapsed = ms.saturating_sub(e.last_ms) as f32 / 1000.0;
        e.last_ms = e.last_ms.max(ms);
        if elapsed > 0.0 {
            for k in [
                Kind::Invite,
                Kind::Register,
                Kind::Options,
                Kind::Other,
                Kind::Malformed,
            ] {
                let b = budgets.of(k);
                if let Some(t) = e.tokens.get_mut(k.index()) {
                    *t = (*t + elapsed * b.rate).min(b.burst);
                }
            }
        }
        let Some(t) = e.tokens.get_mut(kind.index()) else {
            return Admission::Admit;
        };
        if *t >= 1.0 {
            *t -= 1.0;
            return Admission::Admit;
        }
        let refusal = Refusal {
            retry_after: Some(self.policy.retry_after_secs),
            ..Refusal::RATE
        };
        self.over_budget(key, ms, kind, refusal, !trusted)
    }

    /// A message over its budget (or refused outright): answered with `refusal` while the
    /// source's answers this second are under `answered_per_sec` (requests only), else dropped;
    /// `may_ban`: past `flood_ban` this second, the source is banned.
    fn over_budget(
        &mut self,
        key: u128,
        ms: u64,
        kind: Kind,
        refusal: Refusal,
        may_ban: bool,
    ) -> Admission {
        let (answered_per_sec, flood_ban) = (self.policy.answered_per_sec, self.policy.flood_ban);
        let Some(e) = self.table.get_mut(key) else {
            return self.drop_it();
        };
        let second = ms / 1000;
        if e.second != second {
            e.second = second;
            e.over = 0;
            e.answered = 0;
        }
        e.over = e.over.saturating_add(1);
        let flood = may_ban && flood_ban > 0 && e.over >= flood_ban;
        let answer = kind.is_request() && e.answered < answered_per_sec;
        if answer {
            e.answered += 1;
        }
        if flood {
            self.ban_key(key, ms, BanReason::Flood);
        }
        let is_rate = refusal.code == Refusal::RATE.code;
        if answer && !flood {
            if is_rate {
                self.stats.guard_rate_refused += 1;
            }
            return Admission::Refuse(refusal);
        }
        if is_rate {
            self.stats.guard_rate_dropped += 1;
        }
        self.drop_it()
    }

    fn drop_it(&mut self) -> Admission {
        self.stats.guard_dropped += 1;
        Admission::Drop
    }

    /// Ban `key` for the policy's length, doubled per ban in a row.
    fn ban_key(&mut self, key: u128, ms: u64, reason: BanReason) {
        let (ban, max) = (millis(self.policy.ban), millis(self.policy.max_ban));
        let len = move |level: u8| {
            let doubled = ban.saturating_mul(1u64 << u32::from(level.saturating_sub(1)).min(20));
            Some(doubled.min(max.max(ban)))
        };
        self.ban_for(key, ms, len, reason);
    }

    fn ban_for(
        &mut self,
        key: u128,
        ms: u64,
        len: impl FnOnce(u8) -> Option<u64>,
        reason: BanReason,
    ) {
        let rec = self
            .bans
            .ban(key, ms, len, millis(self.policy.forget), reason);
        if let Some(e) = self.table.get_mut(key) {
            e.banned_until_ms = rec.until_ms;
        }
        let c = match reason {
            BanReason::Flood => &mut self.stats.bans_flood,
            BanReason::UnknownUsers => &mut self.stats.bans_unknown_users,
            BanReason::AuthFailures => &mut self.stats.bans_auth_failures,
            BanReason::Sweep => &mut self.stats.bans_sweep,
            BanReason::Scanner => &mut self.stats.bans_scanner,
            BanReason::Manual => &mut self.stats.bans_manual,
        };
        *c += 1;
    }

    /// The bans in force at `now`.
    pub fn bans(&mut self, now: Instant) -> Vec<BanInfo> {
        let ms = self.ms(now);
        self.bans.list(ms)
    }

    /// The networks allowed at run time.
    pub fn allowed(&self) -> &[Cidr] {
        &self.bans.allowed
    }

    /// Apply a run-time change at `now`. False when it changed nothing (a ban of an unknown
    /// address lifted, a network already allowed or not, the allow list full).
    pub fn apply(&mut self, now: Instant, cmd: GuardCommand) -> bool {
        self.stats.guard_commands += 1;
        let ms = self.ms(now);
        match cmd {
            GuardCommand::Ban { ip, secs } => {
                let key = key_of(ip);
                let len = secs.map(|s| s.saturating_mul(1000));
                self.ban_for(key, ms, |_| len, BanReason::Manual);
                true
            }
            GuardCommand::Unban { ip } => {
                let key = key_of(ip);
                if let Some(e) = self.table.get_mut(key) {
                    e.banned_until_ms = 0;
                    e.unknown_users = 0;
                    e.auth_failures = 0;
                    e.open_challenges = 0;
                }
                self.bans.remove(key, ms)
            }
            GuardCommand::Allow { net } => {
                if self.bans.allowed.contains(&net) || self.bans.allowed.len() >= MAX_ALLOWED {
                    return false;
                }
                self.bans.allowed.push(net);
                self.gen = self.gen.wrapping_add(1);
                true
            }
            GuardCommand::Disallow { net } => {
                let before = self.bans.allowed.len();
                self.bans.allowed.retain(|c| *c != net);
                self.gen = self.gen.wrapping_add(1);
                before != self.bans.allowed.len()
            }
        }
    }

    /// The counters (the gauges as of the latest message).
    pub fn stats(&self) -> GuardStats {
        let mut s = self.stats;
        s.guard_sources = self.table.len() as u64;
        s.guard_bans_active = self.bans.active(self.now_ms) as u64;
        s
    }

    /// Sources the table can hold.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// New calls per second: a bucket holding one second's worth of tokens (at least one).
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` tokens per second.
    fn new(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: None,
        }
    }

    /// Takes a token if there is one, refilling first for the time since the last call.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate.max(1.0));
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether `hay` contains the non-empty `needle`, ASCII case ignored, without allocating.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    hay.windows(needle.len()).any(|w| {
        w.first().is_some_and(|b| b.eq_ignore_ascii_case(&first)) && w.eq_ignore_ascii_case(needle)
    })
}
#[cfg(test)]
mod tests;
