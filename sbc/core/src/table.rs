//! A table with a fixed capacity and an absolute deadline per entry: the one container behind dialogs,
//! registrations, bans and TCP connections, so nothing the SBC holds can outlive its deadline or grow
//! past its configured size (no zombie dialogs, no unbounded memory under flood).
//!
//! Time is an input: every deadline is an `Instant` chosen by the caller, and expiry happens only when
//! the driver calls [`BoundedTable::poll_expired`] with its `now` (sans-IO). The driver arms its timer
//! with [`BoundedTable::next_deadline`].
//!
//! Cost: O(log n) per operation, amortised, never a scan of all entries. A hash map holds the entries;
//! a binary min-heap holds `(deadline, generation, key)`. Refreshing or removing an entry leaves its old
//! heap record behind (lazy deletion): the record is recognised as stale because its generation no
//! longer matches the entry's. Two rules keep the heap honest:
//! - the top of the heap is always live (stale tops are popped after each change), so
//!   [`BoundedTable::next_deadline`] is exact and O(1);
//! - when stale records exceed twice the live entries (or a small floor), the heap is rebuilt from the
//!   map, so it never holds more than about three times the capacity, whatever the refresh rate.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};
use std::time::Instant;

/// Stale heap records tolerated before a rebuild, for tables with few live entries.
const STALE_FLOOR: usize = 16;

/// Slots reserved at creation; beyond this the map grows on demand up to the capacity.
const INITIAL_SLOTS: usize = 1024;

/// The table is at capacity and nothing in it is due: refuse the new entry (a SIP request gets a
/// 503). A live entry is never evicted to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl core::fmt::Display for Full {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("table full")
    }
}

impl std::error::Error for Full {}

/// One entry: the value, its deadline and the generation of its live heap record.
struct Slot<V> {
    value: V,
    deadline: Instant,
    generation: u64,
}

/// One heap record. Ordered so that the `BinaryHeap` (a max-heap) pops the earliest deadline first;
/// equal deadlines come out in the order they were set (generation).
struct Due<K> {
    deadline: Instant,
    generation: u64,
    key: K,
}

impl<K> PartialEq for Due<K> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.generation == other.generation
    }
}

impl<K> Eq for Due<K> {}

impl<K> PartialOrd for Due<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Due<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .cmp(&self.deadline)
            .then_with(|| other.generation.cmp(&self.generation))
    }
}

/// A map with a fixed capacity and an absolute deadline per entry. See the module doc for costs.
///
/// `S` hashes the keys: the standard library's SipHash by default (keys a peer can choose), a faster
/// one for keys the SBC allocates itself (`sbc_sip::idmap::IdHasher`).
pub struct BoundedTable<K, V, S = RandomState> {
    map: HashMap<K, Slot<V>, S>,
    heap: BinaryHeap<Due<K>>,
    capacity: usize,
    next_generation: u64,
}

impl<K, V, S> core::fmt::Debug for BoundedTable<K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoundedTable")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .field("heap", &self.heap.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V> BoundedTable<K, V> {
    /// An empty table holding at most `capacity` entries, its keys hashed with SipHash.
    pub fn new(capacity: usize) -> Self {
        Self::with_hasher(capacity)
    }
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher + Default> BoundedTable<K, V, S> {
    /// An empty table holding at most `capacity` entries, its keys hashed by a new `S`.
    pub fn with_hasher(capacity: usize) -> Self {
        Self {
            // The map grows with use: reserving the whole capacity up front would make every
            // first insert into a fresh page fault it in (the values are large and spread by hash).
            map: HashMap::with_capacity_and_hasher(capacity.min(INITIAL_SLOTS), S::default()),
            heap: BinaryHeap::new(),
            capacity,
            next_generation: 0,
        }
    }

    /// Insert `key` with `value`, due at `deadline`.
    ///
    /// - `key` present: its value is replaced and its deadline reset; returns the old value.
    /// - table full: returns [`Full`] and the table is unchanged. Nothing is evicted behind the caller's
    ///   back, not even an overdue entry: expiry always goes through [`Self::poll_expired`], so the
    ///   caller acts on it (a BYE for a dialog, ports freed). Drain it before inserting.
    pub fn insert(&mut self, key: K, value: V, deadline: Instant) -> Result<Option<V>, Full> {
        let generation = self.bump();
        if let Some(slot) = self.map.get_mut(&key) {
            let old = core::mem::replace(&mut slot.value, value);
            slot.deadline = deadline;
            slot.generation = generation;
            self.heap.push(Due {
                deadline,
                generation,
                key,
            });
            self.settle();
            return Ok(Some(old));
        }
        if self.map.len() >= self.capacity {
            return Err(Full);
        }
        self.map.insert(
            key.clone(),
            Slot {
                value,
                deadline,
                generation,
            },
        );
        self.heap.push(Due {
            deadline,
            generation,
            key,
        });
        self.settle();
        Ok(None)
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of `key`, mutable (its deadline is unchanged; see [`Self::set_deadline`]).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key).map(|s| &mut s.value)
    }

    /// Whether `key` is in the table.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// The deadline of `key`.
    pub fn deadline<Q>(&self, key: &Q) -> Option<Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| s.deadline)
    }

    /// Remove `key`; it will never come out of [`Self::poll_expired`].
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.map.remove(key)?;
        self.settle();
        Some(slot.value)
    }

    /// Move the deadline of `key` (refresh, earlier or later). Returns false when `key` is absent.
    pub fn set_deadline(&mut self, key: &K, deadline: Instant) -> bool {
        let generation = self.bump();
        let Some(slot) = self.map.get_mut(key) else {
            return false;
        };
        if slot.deadline == deadline {
            return true;
        }
        slot.deadline = deadline;
        slot.generation = generation;
        self.heap.push(Due {
            deadline,
            generation,
            key: key.clone(),
        });
        self.settle();
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Remove and return the entry with the earliest deadline if that deadline is ≤ `now`. Call until
    /// `None` to drain everything due; entries come out in deadline order (ties in the order their
    /// deadlines were set).
    pub fn poll_expired(&mut self, now: Instant) -> Option<(K, V)> {
        loop {
            let top = self.heap.peek()?;
            if top.deadline > now {
                return None;
            }
            let due = self.heap.pop()?;
            let live = self
                .map
                .get(&due.key)
                .is_some_and(|s| s.generation == due.generation);
            if live {
                let slot = self.map.remove(&due.key)?;
                self.settle();
                return Some((due.key, slot.value));
            }
        }
    }

    /// The earliest deadline in the table (arm the driver's timer with it). Exact: the heap top is
    /// always a live entry.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|d| d.deadline)
    }

    fn bump(&mut self) -> u64 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    /// Restore the two heap rules: a live top, and stale records bounded by twice the live ones.
    fn settle(&mut self) {
        while let Some(top) = self.heap.peek() {
            let live = self
                .map
                .get(&top.key)
                .is_some_and(|s| s.generation == top.generation);
            if live {
                break;
            }
            self.heap.pop();
        }
        let live = self.map.len();
        let stale = self.heap.len().saturating_sub(live);
        if stale > 2 * live.max(STALE_FLOOR) {
            // O(live), after at least 2·live changes since the last rebuild: amortised O(1).
            let mut records = core::mem::take(&mut self.heap).into_vec();
            records.clear();
            records.extend(self.map.iter().map(|(k, s)| Due {
                deadline: s.deadline,
                generation: s.generation,
                key: k.clone(),
            }));
            self.heap = BinaryHeap::from(records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    #[test]
    fn capacity_is_honoured() {
        let t = t0();
        let mut table = BoundedTable::new(3);
        for k in 0..3 {
            assert_eq!(table.insert(k, k * 10, ms(t, 100 + k)), Ok(None));
        }
        assert_eq!(table.insert(9, 90, ms(t, 50)), Err(Full));
        assert_eq!(table.len(), 3);
        assert_eq!(table.capacity(), 3);
        assert_eq!(table.get(&9), None);
        // replacing a present key needs no room
        assert_eq!(table.insert(1, 11, ms(t, 200)), Ok(Some(10)));
        // an overdue entry is never evicted behind the caller's back: it comes out of poll_expired
        assert_eq!(table.insert(9, 90, ms(t, 300)), Err(Full));
        assert_eq!(table.poll_expired(ms(t, 100)), Some((0, 0)));
        assert_eq!(table.insert(9, 90, ms(t, 300)), Ok(None));
        assert_eq!(table.get(&0), None);
        assert_eq!(table.get(&1), Some(&11));
        assert_eq!(table.get(&2), Some(&20));
        assert_eq!(table.get(&9), Some(&90));
        assert_eq!(table.insert(8, 80, ms(t, 300)), Err(Full));
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let t = t0();
        let mut table = BoundedTable::new(0);
        assert_eq!(table.insert(1, 1, t), Err(Full));
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn expiry_in_deadline_order() {
        let t = t0();
        let mut table = BoundedTable::new(10);
        for (k, d) in [(1, 30), (2, 10), (3, 20), (4, 10), (5, 40)] {
            table.insert(k, (), ms(t, d)).unwrap();
        }
        assert_eq!(table.next_deadline(), Some(ms(t, 10)));
        assert_eq!(table.poll_expired(ms(t, 5)), None);
        let mut out = Vec::new();
        while let Some((k, ())) = table.poll_expired(ms(t, 30)) {
            out.push(k);
        }
        // equal deadlines come out in insertion order
        assert_eq!(out, [2, 4, 3, 1]);
        assert_eq!(table.next_deadline(), Some(ms(t, 40)));
        assert_eq!(table.poll_expired(ms(t, 40)), Some((5, ())));
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn refresh_moves_the_deadline() {
        let t = t0();
        let mut table = BoundedTable::new(10);
        table.insert("a", 1, ms(t, 10)).unwrap();
        table.insert("b", 2, ms(t, 20)).unwrap();
        assert!(table.set_deadline(&"a", ms(t, 30)));
        assert_eq!(table.deadline("a"), Some(ms(t, 30)));
        assert_eq!(table.next_deadline(), Some(ms(t, 20)));
        assert_eq!(table.poll_expired(ms(t, 15)), None);
        assert_eq!(table.poll_expired(ms(t, 25)), Some(("b", 2)));
        assert_eq!(table.poll_expired(ms(t, 25)), None);
        // earlier works too
        assert!(table.set_deadline(&"a", ms(t, 5)));
        assert_eq!(table.next_deadline(), Some(ms(t, 5)));
        assert_eq!(table.poll_expired(ms(t, 25)), Some(("a", 1)));
        assert!(!table.set_deadline(&"a", ms(t, 50)));
    }

    #[test]
    fn removed_entries_never_expire() {
        let t = t0();
        let mut table = BoundedTable::new(100);
        for k in 0..100u32 {
            table.insert(k, k, ms(t, u64::from(k))).unwrap();
        }
        for k in (0..100u32).filter(|k| k % 3 == 0) {
            assert_eq!(table.remove(&k), Some(k));
        }
        assert_eq!(table.remove(&0), None);
        let mut out = Vec::new();
        while let Some((k, _)) = table.poll_expired(ms(t, 1000)) {
            out.push(k);
        }
        let want: Vec<u32> = (0..100).filter(|k| k % 3 != 0).collect();
        assert_eq!(out, want);
        assert!(table.is_empty());
    }

    #[test]
    fn get_mut_keeps_the_deadline() {
        let t = t0();
        let mut table = BoundedTable::new(2);
        table.insert(1, String::from("x"), ms(t, 10)).unwrap();
        table.get_mut(&1).unwrap().push('y');
        assert_eq!(table.get(&1).map(String::as_str), Some("xy"));
        assert_eq!(table.next_deadline(), Some(ms(t, 10)));
        assert!(table.contains_key(&1));
    }

    #[test]
    fn heap_stays_bounded_under_refreshes() {
        let t = t0();
        let mut table = BoundedTable::new(4);
        table.insert(7u32, (), ms(t, 1)).unwrap();
        let mut max_heap = 0;
        for i in 0..100_000u64 {
            assert!(table.set_deadline(&7, ms(t, 2 + (i * 7919) % 100_000)));
            max_heap = max_heap.max(table.heap.len());
        }
        assert!(max_heap <= 1 + 2 * STALE_FLOOR + 1, "{max_heap}");
        assert_eq!(table.len(), 1);

        // many keys, refreshed and re-inserted in turn
        let mut table = BoundedTable::new(1000);
        for k in 0..1000u64 {
            table.insert(k, k, ms(t, k)).unwrap();
        }
        for i in 0..100_000u64 {
            let k = (i * 31) % 1000;
            if i % 2 == 0 {
                table.set_deadline(&k, ms(t, 1000 + i));
            } else {
                table.insert(k, i, ms(t, 1000 + i)).unwrap();
            }
            assert!(table.heap.len() <= 3 * 1000 + 1);
        }
    }

    /// splitmix64, for reproducible operation sequences.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The reference: a plain vector, scanned. `seq` orders equal deadlines like the generation.
    #[derive(Default)]
    struct Model {
        entries: Vec<(u64, u64, Instant, u64)>,
        seq: u64,
    }

    impl Model {
        fn find(&self, k: u64) -> Option<usize> {
            self.entries.iter().position(|e| e.0 == k)
        }
        fn first_due(&self, now: Instant) -> Option<usize> {
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.2 <= now)
                .min_by_key(|(_, e)| (e.2, e.3))
                .map(|(i, _)| i)
        }
        fn insert(&mut self, cap: usize, k: u64, v: u64, d: Instant) -> Result<Option<u64>, Full> {
            self.seq += 1;
            if let Some(i) = self.find(k) {
                let old = self.entries[i].1;
                self.entries[i] = (k, v, d, self.seq);
                return Ok(Some(old));
            }
            if self.entries.len() >= cap {
                return Err(Full);
            }
            self.entries.push((k, v, d, self.seq));
            Ok(None)
        }
        fn set_deadline(&mut self, k: u64, d: Instant) -> bool {
            self.seq += 1;
            let Some(i) = self.find(k) else { return false };
            if self.entries[i].2 != d {
                self.entries[i].2 = d;
                self.entries[i].3 = self.seq;
            }
            true
        }
        fn poll(&mut self, now: Instant) -> Option<(u64, u64)> {
            let i = self.first_due(now)?;
            let e = self.entries.remove(i);
            Some((e.0, e.1))
        }
    }

    #[test]
    fn model_check() {
        let t = t0();
        for seed in 0..200u64 {
            let mut rng = Rng(seed);
            let cap = 1 + rng.below(24) as usize;
            let keys = 1 + rng.below(48);
            let mut table = BoundedTable::new(cap);
            let mut model = Model::default();
            let mut now = 0u64;
            for step in 0..2000 {
                let at = ms(t, now);
                let k = rng.below(keys);
                let d = ms(t, now + rng.below(30));
                let ctx = format!("seed {seed} step {step}");
                match rng.below(10) {
                    0..=3 => {
                        let v = rng.next();
                        assert_eq!(table.insert(k, v, d), model.insert(cap, k, v, d), "{ctx}");
                    }
                    4 => assert_eq!(
                        table.remove(&k),
                        model.find(k).map(|i| model.entries.remove(i).1),
                        "{ctx}"
                    ),
                    5 => assert_eq!(table.set_deadline(&k, d), model.set_deadline(k, d), "{ctx}"),
                    6 => assert_eq!(
                        table.get(&k).copied(),
                        model.find(k).map(|i| model.entries[i].1),
                        "{ctx}"
                    ),
                    7 => {
                        while let Some(got) = table.poll_expired(at) {
                            assert_eq!(Some(got), model.poll(at), "{ctx}");
                        }
                        assert_eq!(model.poll(at), None, "{ctx}");
                    }
                    8 => assert_eq!(table.poll_expired(at), model.poll(at), "{ctx}"),
                    _ => now += rng.below(5),
                }
                assert_eq!(table.len(), model.entries.len(), "{ctx}");
                assert_eq!(
                    table.next_deadline(),
                    model.entries.iter().map(|e| e.2).min(),
                    "{ctx}"
                );
                assert!(
                    table.heap.len() <= table.len() + 2 * table.len().max(STALE_FLOOR) + 1,
                    "{ctx}"
                );
            }
        }
    }
}
