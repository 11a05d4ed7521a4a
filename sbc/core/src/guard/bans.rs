//! Bans and the run-time allow list of one worker, bounded: a ban outlives the source's entry in
//! the source table (a flood of other addresses cannot lift it), and its record is kept for a while
//! after it ends, so that the next ban of the same source lasts longer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::cidr::Cidr;

use super::table::ip_of;

/// Why a source was banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BanReason {
    /// Far over its budget within one second.
    Flood,
    /// Too many "unknown user" answers (an extension sweep).
    UnknownUsers,
    /// Too many refused credentials (password guessing).
    AuthFailures,
    /// Too many challenges never followed by a success (a sweep over many users).
    Sweep,
    /// A scanning tool's User-Agent.
    Scanner,
    /// Banned through the control API.
    Manual,
}

/// A ban as the control API lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanInfo {
    /// The banned address.
    pub ip: IpAddr,
    /// Milliseconds left; `None`: until removed.
    pub remaining_ms: Option<u64>,
    /// How many bans in a row this is (1: the first; each doubles the length).
    pub level: u8,
    /// Why.
    pub reason: BanReason,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Record {
    /// Banned until then (ms); `u64::MAX`: until removed.
    pub(super) until_ms: u64,
    pub(super) level: u8,
    pub(super) reason: BanReason,
}

/// The bans, keyed by the source table's key.
#[derive(Debug)]
pub(super) struct Bans {
    records: BTreeMap<u128, Record>,
    max: usize,
    /// Allowed networks added at run time.
    pub(super) allowed: Vec<Cidr>,
}

/// Run-time allow-list entries a worker holds at most.
pub(super) const MAX_ALLOWED: usize = 1024;

impl Bans {
    pub(super) fn new(max: usize) -> Self {
        Self {
            records: BTreeMap::new(),
            max: max.max(1),
            allowed: Vec::new(),
        }
    }

    /// The record of `key`, ended or not.
    pub(super) fn get(&self, key: u128) -> Option<Record> {
        self.records.get(&key).copied()
    }

    /// Bans in force at `now_ms`.
    pub(super) fn active(&self, now_ms: u64) -> usize {
        self.records
            .values()
            .filter(|r| r.until_ms > now_ms)
            .count()
    }

    /// Ban `key` for `len_ms` (`None`: until removed) at `now_ms`; the level follows the last ban
    /// if it ended less than `forget_ms` ago. Returns the record. When the table is full, records
    /// forgotten, then ended, then the soonest to end make room.
    pub(super) fn ban(
        &mut self,
        key: u128,
        now_ms: u64,
        len: impl FnOnce(u8) -> Option<u64>,
        forget_ms: u64,
        reason: BanReason,
    ) -> Record {
        let level = match self.records.get(&key) {
            Some(r) if r.until_ms.saturating_add(forget_ms) > now_ms => r.level.saturating_add(1),
            _ => 1,
        };
        if !self.records.contains_key(&key) && self.records.len() >= self.max {
            self.records
                .retain(|_, r| r.until_ms.saturating_add(forget_ms) > now_ms);
            if self.records.len() >= self.max {
                self.records.retain(|_, r| r.until_ms > now_ms);
            }
            if self.records.len() >= self.max {
                let soonest = self
                    .records
                    .iter()
                    .min_by_key(|(_, r)| r.until_ms)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    self.records.remove(&k);
                }
            }
        }
        let until_ms = len(level).map_or(u64::MAX, |l| now_ms.saturating_add(l));
        let rec = Record {
            until_ms,
            level,
            reason,
        };
        self.records.insert(key, rec);
        rec
    }

    /// Lift the ban of `key` (its record goes too). Whether there was one in force.
    pub(super) fn remove(&mut self, key: u128, now_ms: u64) -> bool {
        self.records
            .remove(&key)
            .is_some_and(|r| r.until_ms > now_ms)
    }

    /// The bans in force, for the control API.
    pub(super) fn list(&self, now_ms: u64) -> Vec<BanInfo> {
        self.records
            .iter()
            .filter(|(_, r)| r.until_ms > now_ms)
            .map(|(k, r)| BanInfo {
                ip: ip_of(*k),
                remaining_ms: (r.until_ms != u64::MAX).then(|| r.until_ms.saturating_sub(now_ms)),
                level: r.level,
                reason: r.reason,
            })
            .collect()
    }
}
