//! Hash maps keyed by identifiers the SBC allocates itself: transaction and call handles (counters)
//! and the branches, tags and Call-IDs it generates (random, authenticated: `sbc_core`'s `IdGen`).
//!
//! These keys are never chosen by a peer, so they need no defence against hash flooding, and the
//! standard library's SipHash-1-3 (about 200 instructions per lookup of a `u64`, several lookups per
//! message) buys nothing for them. They use foldhash, seeded per map at random. Maps whose entries are
//! created from what a peer sent (its Call-ID, its branch, its address) keep SipHash.
//! Decision and figures: `docs/decisions.md` ("Hashing of the SBC's own identifiers").

/// The hasher of an [`IdMap`].
pub type IdHasher = foldhash::fast::RandomState;

/// A map keyed by an identifier the SBC allocated (see the module doc).
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdHasher>;
