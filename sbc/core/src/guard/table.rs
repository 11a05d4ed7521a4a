//! The tracked sources of one worker in fixed memory: a set-associative table (buckets of
//! [`WAYS`] entries) allocated once at start. A source not in its bucket takes a free entry or the
//! least recently seen one, so a flood from any number of (spoofed) addresses costs no memory, only
//! the memory of sources seen less recently than the flood.

use std::net::IpAddr;

/// Entries per bucket.
pub(super) const WAYS: usize = 4;

/// An address as a table key: IPv4 (and IPv4-mapped IPv6) as the mapped IPv6 address.
pub(super) fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a key (IPv4 again for a mapped key).
pub(super) fn ip_of(key: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(key);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// What the guard knows of one source. Times are milliseconds since the guard's epoch.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Entry {
    pub(super) key: u128,
    pub(super) used: bool,
    /// The allow-list generation the class was computed for.
    pub(super) gen: u32,
    pub(super) trusted: bool,
    pub(super) last_ms: u64,
    /// Tokens per kind ([`super::Kind::index`]).
    pub(super) tokens: [f32; 5],
    /// The second (ms / 1000) the over-budget counts are of.
    pub(super) second: u64,
    /// Messages over budget in that second.
    pub(super) over: u32,
    /// Of them, answered with 503.
    pub(super) answered: u32,
    /// Banned until then (0: not banned).
    pub(super) banned_until_ms: u64,
    /// Start of the failure window.
    pub(super) window_ms: u64,
    pub(super) unknown_users: u32,
    pub(super) auth_failures: u32,
    pub(super) open_challenges: u32,
    /// Successes banked to forgive failures.
    pub(super) credit: u32,
}

/// The table.
#[derive(Debug)]
pub(super) struct SourceTable {
    entries: Vec<Entry>,
    buckets: u64,
    seed: u64,
}

impl SourceTable {
    /// Room for `capacity` sources (at least one bucket), hashed with `seed`.
    pub(super) fn new(capacity: usize, seed: u64) -> Self {
        let buckets = capacity.div_ceil(WAYS).max(1);
        Self {
            entries: vec![Entry::default(); buckets.saturating_mul(WAYS)],
            buckets: buckets as u64,
            seed,
        }
    }

    /// Sources the table can hold.
    pub(super) fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Sources held now.
    pub(super) fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.used).count()
    }

    fn bucket(&self, key: u128) -> usize {
        // A keyed mix (the seed is secret): an attacker cannot aim addresses at one bucket.
        let mut h = (key as u64) ^ ((key >> 64) as u64) ^ self.seed;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        ((h % self.buckets) as usize).saturating_mul(WAYS)
    }

    /// The entry of `key`, if tracked.
    pub(super) fn get_mut(&mut self, key: u128) -> Option<&mut Entry> {
        let b = self.bucket(key);
        self.entries
            .get_mut(b..b.saturating_add(WAYS))?
            .iter_mut()
            .find(|e| e.used && e.key == key)
    }

    /// The entry of `key`: found, or made (in a free entry, else over the least recently seen of
    /// its bucket, whose key is returned as evicted). A new entry is `used` with only its key set.
    /// `None` only if the table had no whole bucket (it always has one).
    pub(super) fn entry(&mut self, key: u128) -> Option<(&mut Entry, bool, Option<u128>)> {
        let b = self.bucket(key);
        let bucket = self.entries.get_mut(b..b.saturating_add(WAYS))?;
        let pos = bucket
            .iter()
            .position(|e| e.used && e.key == key)
            .map(|i| (i, false))
            .or_else(|| bucket.iter().position(|e| !e.used).map(|i| (i, true)))
            .unwrap_or_else(|| {
                let lru = bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.last_ms)
                    .map_or(0, |(i, _)| i);
                (lru, true)
            });
        let e = bucket.get_mut(pos.0)?;
        if !pos.1 {
            return Some((e, false, None));
        }
        let evicted = e.used.then_some(e.key);
        *e = Entry {
            key,
            used: true,
            ..Entry::default()
        };
        Some((e, true, evicted))
    }
}
