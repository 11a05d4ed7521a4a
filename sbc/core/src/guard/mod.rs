//! Admission before state: what a packet must pass before it is parsed into a transaction or dialog.
//!
//! One [`Guard`] per worker, sans-IO: the worker asks it about every datagram before parsing
//! ([`Guard::admit_datagram`]) and about every parsed message before the B2BUA sees it
//! ([`Guard::admit`]). Today it holds the new-call rate (this worker's share of `limits.max_cps`)
//! and knows which sources are trusted (a trunk's source ACL, an inside target); per-source budgets
//! and bans build on that.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::cidr::Cidr;
use crate::routing::TrunkId;

pub mod fraud;
pub mod rules;

/// What a message is, as far as admission cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An INVITE outside any dialog (no To tag): a new call.
    Invite,
    /// A REGISTER.
    Register,
    /// An OPTIONS outside any dialog: a ping of the SBC.
    Options,
    /// Any other message: in-dialog requests, responses, ACK, CANCEL, ...
    Other,
    /// A message that failed to parse (answered statelessly or dropped).
    Malformed,
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
}

/// Who a source is, by its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceClass {
    /// In the source ACL of this trunk (the first in configuration order).
    Trunk(TrunkId),
    /// The address of a target on the inside (PBX, registrar, inside trunk).
    Inside,
    /// Anyone else.
    Unknown,
}

impl SourceClass {
    /// Whether the source is a known trunk or on the inside.
    pub fn is_trusted(self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

/// What a [`Guard`] is built from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardConfig {
    /// This worker's share of the new-call rate, calls per second; 0 (or less): not limited.
    pub cps: f64,
    /// Each trunk's source ACL.
    pub trunks: Vec<(TrunkId, Vec<Cidr>)>,
    /// The addresses of the inside targets.
    pub inside: Vec<IpAddr>,
}

sbc_counters::counters! {
    /// The guard's counters, by verdict and reason; single writer (the worker). The names are
    /// unique among the worker's layers (one flat namespace for logs and metrics).
    pub struct GuardStats {
        /// Parsed messages admitted (answered statelessly or handed to the B2BUA).
        counter guard_admitted,
        /// New calls refused over the worker's share of the new-call rate (`limits.max_cps`).
        counter cps_refused,
        /// Messages dropped without an answer.
        counter guard_dropped,
    }
}

/// The admission guard of one worker.
#[derive(Debug)]
pub struct Guard {
    cps: Option<TokenBucket>,
    trunks: Vec<(TrunkId, Vec<Cidr>)>,
    inside: Vec<IpAddr>,
    stats: GuardStats,
}

impl Guard {
    /// A guard for `cfg`.
    pub fn new(cfg: GuardConfig) -> Self {
        Self {
            cps: (cfg.cps > 0.0).then(|| TokenBucket::new(cfg.cps)),
            trunks: cfg.trunks,
            inside: cfg.inside,
            stats: GuardStats::default(),
        }
    }

    /// A datagram or framed message from `source`, before it is parsed. Every one is admitted today;
    /// per-source budgets go here.
    pub fn admit_datagram(&mut self, now: Instant, source: SocketAddr) -> Admission {
        let _ = (now, source);
        Admission::Admit
    }

    /// A message of `kind` from `source` at `now`: a new call over this worker's rate is refused,
    /// everything else admitted.
    pub fn admit(&mut self, now: Instant, source: SocketAddr, kind: Kind) -> Admission {
        let _ = source;
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

    /// Who `ip` is: a trunk by its source ACL, an inside target, or unknown.
    pub fn classify(&self, ip: IpAddr) -> SourceClass {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        if let Some((id, _)) = self
            .trunks
            .iter()
            .find(|(_, acl)| acl.iter().any(|c| c.contains(ip)))
        {
            return SourceClass::Trunk(*id);
        }
        if self.inside.contains(&ip) {
            return SourceClass::Inside;
        }
        SourceClass::Unknown
    }

    /// The counters.
    pub fn stats(&self) -> GuardStats {
        self.stats
    }
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

#[cfg(test)]
mod tests;
