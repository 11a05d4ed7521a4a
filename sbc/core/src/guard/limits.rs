//! The guard's settings: per-source budgets by kind of message, the answers past them, the ban
//! rules (flood, unknown users, authentication failures, unanswered challenges) and the bounds of
//! its tables. Every default protects a public address out of the box.

use std::time::Duration;

use super::Kind;

/// A token bucket: `rate` messages per second sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Tokens refilled per second.
    pub rate: f32,
    /// The bucket's size (and a new source's first tokens).
    pub burst: f32,
}

impl Budget {
    /// `rate` per second, `burst` at once.
    pub const fn new(rate: f32, burst: f32) -> Self {
        Self { rate, burst }
    }
}

/// One budget per [`Kind`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budgets {
    /// INVITE (new calls and re-INVITEs: the kind is read before parsing).
    pub invite: Budget,
    /// REGISTER.
    pub register: Budget,
    /// OPTIONS.
    pub options: Budget,
    /// Every other request and every response.
    pub other: Budget,
    /// Datagrams that are not SIP, or fail to parse.
    pub malformed: Budget,
}

impl Budgets {
    /// The budget of `kind`.
    pub fn of(&self, kind: Kind) -> Budget {
        match kind {
            Kind::Invite => self.invite,
            Kind::Register => self.register,
            Kind::Options => self.options,
            Kind::Other => self.other,
            Kind::Malformed => self.malformed,
        }
    }

    /// Untrusted sources (anyone not a trunk, an inside target or an allowed network): room for a
    /// busy site behind one address, far below a flood.
    pub const UNTRUSTED: Self = Self {
        invite: Budget::new(100.0, 200.0),
        register: Budget::new(100.0, 200.0),
        options: Budget::new(50.0, 100.0),
        other: Budget::new(2000.0, 4000.0),
        malformed: Budget::new(10.0, 20.0),
    };

    /// Trusted sources (trunks, inside targets, allowed networks): only a runaway peer reaches it.
    pub const TRUSTED: Self = Self {
        invite: Budget::new(5000.0, 10000.0),
        register: Budget::new(5000.0, 10000.0),
        options: Budget::new(5000.0, 10000.0),
        other: Budget::new(20000.0, 40000.0),
        malformed: Budget::new(100.0, 200.0),
    };
}

/// What the guard does; see `docs/guard.md` for the rules in prose.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardPolicy {
    /// Per-source budgets of untrusted sources.
    pub untrusted: Budgets,
    /// Per-source budgets of trusted sources.
    pub trusted: Budgets,
    /// Requests over budget answered 503 with Retry-After per source and second; the rest of the
    /// second's excess is dropped silently (never more packets out than in).
    pub answered_per_sec: u32,
    /// The Retry-After of those 503s, seconds.
    pub retry_after_secs: u32,
    /// Messages over budget within one second that ban an untrusted source; 0: never.
    pub flood_ban: u32,
    /// How long a first ban lasts.
    pub ban: Duration,
    /// Each new ban of a source within [`Self::forget`] of the last lasts twice the one before, up
    /// to this.
    pub max_ban: Duration,
    /// How long the guard remembers a ban after it ends (for the escalation).
    pub forget: Duration,
    /// "Unknown user" answers (404, 484, 604) not forgiven by successes that ban a source; 0: never.
    pub unknown_users: u32,
    /// Refused credentials (401/403/407 to a request that carried them) not forgiven by successes
    /// that ban a source; 0: never.
    pub auth_failures: u32,
    /// Challenges to requests without credentials not followed by a success (a sweep over many
    /// users) that ban a source; 0: never.
    pub open_challenges: u32,
    /// Failure counts start over after this long without a ban.
    pub failure_window: Duration,
    /// Successes a source may bank to forgive later failures.
    pub credit_max: u32,
    /// Sources tracked per worker (fixed memory; the least recently seen is forgotten first).
    pub max_sources: usize,
    /// Bans (and their escalation memory) held per worker.
    pub max_bans: usize,
    /// User-Agent substrings (case-insensitive) of scanning tools: dropped silently and banned.
    pub scanner_user_agents: Vec<String>,
    /// Relay an "unknown user" answer to an untrusted source's REGISTER or INVITE as the challenge
    /// an existing user gets, so that a scan cannot tell users apart.
    pub hide_unknown_users: bool,
    /// The realm of those challenges; empty: the realm of the latest challenge relayed to the
    /// outside (the PBX's), learnt as they pass.
    pub realm: String,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            untrusted: Budgets::UNTRUSTED,
            trusted: Budgets::TRUSTED,
            answered_per_sec: 5,
            retry_after_secs: 5,
            flood_ban: 1000,
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(3600),
            forget: Duration::from_secs(3600),
            unknown_users: 3,
            auth_failures: 2,
            open_challenges: 100,
            failure_window: Duration::from_secs(600),
            credit_max: 1000,
            max_sources: 16_384,
            max_bans: 4096,
            scanner_user_agents: [
                "friendly-scanner",
                "sipvicious",
                "sipcli",
                "vaxsipuseragent",
                "pplsip",
                "sip-scan",
                "sundayddr",
                "iwar",
                "sipptk",
            ]
            .map(String::from)
            .to_vec(),
            hide_unknown_users: true,
            realm: String::new(),
        }
    }
}
