//! A hierarchical timing wheel for deadlines with lazy deletion: the timer store behind the
//! transaction layer (and any table with many short deadlines).
//!
//! A binary heap costs O(log n) cache-missing comparisons per push and per pop; with a few hundred
//! thousand pending SIP timers (Timer B and F alone are armed for 32 s on every request and almost
//! always cancelled) the heap's pop was 6 % of the SBC's samples. Here an insert is a push onto a
//! slot's vector and an expiry walks the slots the clock passed, so both are O(1) per entry.
//!
//! Layout, in ticks of one millisecond counted from the wheel's origin:
//! - level 0: [`L0_SLOTS`] slots of one tick: the deadlines of the next second or so;
//! - level 1: [`L1_SLOTS`] slots of [`L1_TICKS`] ticks: about 65 s beyond level 0, moved down to
//!   level 0 a slot at a time as the clock nears them;
//! - beyond: a binary heap, moved up to level 1 as the clock nears (calls of several hours).
//!
//! Deadlines keep their full `Instant` precision: a slot holds the entries of its millisecond and
//! [`Wheel::advance`] returns only those due at `now`, in deadline order (equal deadlines in the
//! order they were inserted). The wheel never deletes: the owner re-checks an entry when it comes
//! out (a cancelled or re-armed timer is simply ignored then), like the heap it replaces.
//! [`Wheel::next_deadline`] is exact over what the wheel holds, stale entries included, so a stale
//! entry costs at most one early wake-up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Level 0 slots (one tick each).
pub const L0_SLOTS: u64 = 1024;
/// Ticks per level 1 slot.
pub const L1_TICKS: u64 = 64;
/// Level 1 slots.
pub const L1_SLOTS: u64 = 1024;

const L1_SPAN: u64 = L1_TICKS * L1_SLOTS;

/// One pending deadline. `seq` keeps equal deadlines in insertion order.
#[derive(Clone, Copy, Debug)]
struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

/// The two levels of slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    L0,
    L1,
}

/// A bitmap of non-empty slots, to find the next one without visiting empty slots.
#[derive(Debug)]
struct Occupied(Vec<u64>);

impl Occupied {
    fn new(slots: u64) -> Self {
        Self(vec![0; slots.div_ceil(64) as usize])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn clear(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }
    /// The first set bit at or after `from`, going round once: its distance from `from`.
    fn next_from(&self, from: usize) -> Option<usize> {
        let n = self.0.len() * 64;
        let mut pos = from % n;
        let mut scanned = 0;
        while scanned < n + 64 {
            let word = *self.0.get(pos / 64)?;
            let masked = word & (!0u64 << (pos % 64));
            if masked != 0 {
                let bit = (pos / 64) * 64 + masked.trailing_zeros() as usize;
                return Some((bit + n - from % n) % n);
            }
            let step = 64 - pos % 64;
            scanned += step;
            pos = (pos + step) % n;
        }
        None
    }
}

/// A timing wheel of items of type `T`. See the module documentation.
#[derive(Debug)]
pub struct Wheel<T> {
    /// Tick 0: the first deadline ever inserted (an earlier one is due at once).
    origin: Option<Instant>,
    /// Every level 0 slot before this tick is empty.
    cursor: u64,
    /// Level 0 holds ticks below `edge`; level 1 holds `edge..edge + L1_SPAN`. A multiple of
    /// [`L1_TICKS`], at most `cursor + L0_SLOTS`.
    edge: u64,
    l0: Vec<Vec<Entry<T>>>,
    l0_bits: Occupied,
    l1: Vec<Vec<Entry<T>>>,
    l1_bits: Occupied,
    far: BinaryHeap<Reverse<(Instant, u64)>>,
    far_items: crate::idmap::IdMap<u64, T>,
    len: usize,
    seq: u64,
    /// Reused between calls to [`Wheel::advance`].
    scratch: Vec<Entry<T>>,
    /// The answer of the last [`Wheel::next_live`], until the wheel changes (insert, advance,
    /// retain): a driver asks after every message, and the answer rarely moves.
    cached_live: Option<Instant>,
}

impl<T: Copy> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Wheel<T> {
    /// An empty wheel.
    pub fn new() -> Self {
        Self {
            origin: None,
            cursor: 0,
            edge: L0_SLOTS,
            l0: (0..L0_SLOTS).map(|_| Vec::new()).collect(),
            l0_bits: Occupied::new(L0_SLOTS),
            l1: (0..L1_SLOTS).map(|_| Vec::new()).collect(),
            l1_bits: Occupied::new(L1_SLOTS),
            far: BinaryHeap::new(),
            far_items: crate::idmap::IdMap::default(),
            len: 0,
            seq: 0,
            scratch: Vec::new(),
            cached_live: None,
        }
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the wheel holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let ms = at.saturating_duration_since(origin).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Add `item`, due at `at`.
    pub fn insert(&mut self, at: Instant, item: T) {
        self.origin.get_or_insert(at);
        self.cached_live = None;
        self.seq = self.seq.wrapping_add(1);
        self.len += 1;
        let entry = Entry {
            at,
            seq: self.seq,
            item,
        };
        self.file(entry);
    }

    /// Put an entry on the level its tick belongs to.
    fn file(&mut self, entry: Entry<T>) {
        let tick = self.tick_of(entry.at).max(self.cursor);
        if tick < self.edge {
            let i = (tick % L0_SLOTS) as usize;
            if let Some(slot) = self.l0.get_mut(i) {
                slot.push(entry);
                self.l0_bits.set(i);
            }
        } else if tick < self.edge + L1_SPAN {
            let i = ((tick / L1_TICKS) % L1_SLOTS) as usize;
            if let Some(slot) = self.l1.get_mut(i) {
                slot.push(entry);
                self.l1_bits.set(i);
            }
        } else {
            self.far.push(Reverse((entry.at, entry.seq)));
            self.far_items.insert(entry.seq, entry.item);
        }
    }

    /// Move level 1 slots down while level 0 has room for them, and far entries up to level 1.
    fn cascade(&mut self) {
        while self.edge + L1_TICKS <= self.cursor + L0_SLOTS {
            let i = ((self.edge / L1_TICKS) % L1_SLOTS) as usize;
            self.edge += L1_TICKS;
            if let Some(slot) = self.l1.get_mut(i) {
                let mut moved = core::mem::take(slot);
                self.l1_bits.clear(i);
                for e in moved.drain(..) {
                    self.file(e);
                }
                // keep the slot's allocation for the next round
                if let Some(slot) = self.l1.get_mut(i) {
                    if slot.is_empty() {
                        *slot = moved;
                    }
                }
            }
            self.pull_far();
        }
    }

    fn pull_far(&mut self) {
        let limit = self.edge + L1_SPAN;
        while let Some(&Reverse((at, seq))) = self.far.peek() {
            if self.tick_of(at) >= limit {
                break;
            }
            self.far.pop();
            if let Some(item) = self.far_items.remove(&seq) {
                self.file(Entry { at, seq, item });
            }
        }
    }

    /// The first non-empty slot from the cursor on: level 0 first (its ticks all come before
    /// level 1's), then level 1. `None`: only far entries, or none.
    fn first_slot(&self) -> Option<(Level, usize)> {
        let c0 = (self.cursor % L0_SLOTS) as usize;
        if let Some(d) = self.l0_bits.next_from(c0) {
            return Some((Level::L0, (c0 + d) % L0_SLOTS as usize));
        }
        let c1 = ((self.edge / L1_TICKS) % L1_SLOTS) as usize;
        let d = self.l1_bits.next_from(c1)?;
        Some((Level::L1, (c1 + d) % L1_SLOTS as usize))
    }

    /// The earliest deadline held (stale entries included), `None` when empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        let min_of = |slot: &Vec<Entry<T>>| slot.iter().map(|e| e.at).min();
        match self.first_slot() {
            Some((Level::L0, i)) => self.l0.get(i).and_then(min_of),
            Some((Level::L1, i)) => self.l1.get(i).and_then(min_of),
            None => self.far.peek().map(|Reverse((at, _))| *at),
        }
    }

    /// The earliest deadline of an entry that `live` keeps, dropping stale entries (those `live`
    /// refuses) until the earliest one is live, so that the answer is exact when asked. `None` when
    /// nothing live is held.
    ///
    /// The answer is kept until the wheel changes: an entry cancelled later without the wheel
    /// knowing costs one early wake-up, after which [`Wheel::advance`] drops it.
    pub fn next_live(&mut self, mut live: impl FnMut(Instant, &T) -> bool) -> Option<Instant> {
        if let Some(at) = self.cached_live {
            return Some(at);
        }
        loop {
            if self.len == 0 {
                return None;
            }
            let (slot, bits, i) = match self.first_slot() {
                Some((Level::L0, i)) => (self.l0.get_mut(i), &mut self.l0_bits, i),
                Some((Level::L1, i)) => (self.l1.get_mut(i), &mut self.l1_bits, i),
                None => {
                    // far entries: rare (hours away); checked one at a time
                    let &Reverse((at, seq)) = self.far.peek()?;
                    let keep = self.far_items.get(&seq).is_some_and(|item| live(at, item));
                    if keep {
                        self.cached_live = Some(at);
                        return Some(at);
                    }
                    self.far.pop();
                    self.far_items.remove(&seq);
                    self.len -= 1;
                    continue;
                }
            };
            let slot = slot?;
            // the slot's earliest entry: usually live, and then one check is all it costs
            let earliest = slot.iter().min_by_key(|e| (e.at, e.seq));
            if let Some(e) = earliest {
                if live(e.at, &e.item) {
                    self.cached_live = Some(e.at);
                    return Some(e.at);
                }
            }
            let before = slot.len();
            slot.retain(|e| live(e.at, &e.item));
            if slot.is_empty() {
                bits.clear(i);
            }
            self.len -= before - slot.len();
        }
    }

    /// Keep only the entries `live` accepts (a full sweep: for rare compaction after a burst of
    /// cancellations).
    pub fn retain(&mut self, mut live: impl FnMut(Instant, &T) -> bool) {
        self.cached_live = None;
        let mut kept = 0;
        for (i, slot) in self.l0.iter_mut().enumerate() {
            slot.retain(|e| live(e.at, &e.item));
            kept += slot.len();
            if slot.is_empty() {
                self.l0_bits.clear(i);
            }
        }
        for (i, slot) in self.l1.iter_mut().enumerate() {
            slot.retain(|e| live(e.at, &e.item));
            kept += slot.len();
            if slot.is_empty() {
                self.l1_bits.clear(i);
            }
        }
        let far_items = &mut self.far_items;
        self.far.retain(|Reverse((at, seq))| {
            let keep = far_items.get(seq).is_some_and(|item| live(*at, item));
            if !keep {
                far_items.remove(seq);
            }
            keep
        });
        self.len = kept + self.far.len();
    }

    /// Append to `out` every entry due at `now`, in deadline order, and remove them from the wheel.
    pub fn advance(&mut self, now: Instant, out: &mut Vec<(Instant, T)>) {
        self.cached_live = None;
        let target = self.tick_of(now);
        loop {
            self.cascade();
            if self.cursor > target {
                return;
            }
            let c0 = (self.cursor % L0_SLOTS) as usize;
            // Jump over empty slots, but never past the target nor past level 0's edge.
            let limit = target.min(self.edge.saturating_sub(1));
            match self.l0_bits.next_from(c0) {
                Some(d) if self.cursor + d as u64 <= limit => self.cursor += d as u64,
                _ => {
                    if self.cursor >= target {
                        return;
                    }
                    // nothing due in level 0 up to the limit: move on to it and cascade again
                    self.cursor = (limit + 1).min(target);
                    continue;
                }
            }
            let i = (self.cursor % L0_SLOTS) as usize;
            let Some(slot) = self.l0.get_mut(i) else {
                return;
            };
            let mut due = core::mem::take(&mut self.scratch);
            due.clear();
            if self.cursor < target {
                due.append(slot);
            } else {
                // the current millisecond: only what is due at `now`
                let mut k = 0;
                while let Some(e) = slot.get(k) {
                    if e.at <= now {
                        due.push(slot.swap_remove(k));
                    } else {
                        k += 1;
                    }
                }
            }
            if slot.is_empty() {
                self.l0_bits.clear(i);
            }
            due.sort_unstable_by_key(|e| (e.at, e.seq));
            self.len -= due.len();
            out.extend(due.iter().map(|e| (e.at, e.item)));
            self.scratch = due;
            if self.cursor >= target {
                return;
            }
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // the one origin of test time
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A wheel whose origin is set at `t0()`, and that origin.
    fn started() -> (Instant, Wheel<u32>) {
        let o = t0();
        let mut w = Wheel::new();
        w.insert(o, 0);
        drain(&mut w, o);
        (o, w)
    }

    fn drain(w: &mut Wheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out.into_iter().map(|(_, item)| item).collect()
    }

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let (o, mut w) = started();
        w.insert(o + ms(500), 3);
        w.insert(o + ms(1), 1);
        w.insert(o + ms(1) + Duration::from_micros(300), 2);
        w.insert(o + ms(32_000), 5);
        w.insert(o + ms(4_000), 4);
        assert_eq!(w.next_deadline(), Some(o + ms(1)));
        assert_eq!(drain(&mut w, o), Vec::<u32>::new());
        // inside the same millisecond: the exact instant decides
        assert_eq!(
            drain(&mut w, o + ms(1) + Duration::from_micros(100)),
            vec![1]
        );
        assert_eq!(
            w.next_deadline(),
            Some(o + ms(1) + Duration::from_micros(300))
        );
        assert_eq!(drain(&mut w, o + ms(499)), vec![2]);
        assert_eq!(w.next_deadline(), Some(o + ms(500)));
        assert_eq!(drain(&mut w, o + ms(3_999)), vec![3]);
        assert_eq!(w.next_deadline(), Some(o + ms(4_000)));
        assert_eq!(drain(&mut w, o + ms(40_000)), vec![4, 5]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_keep_insertion_order_and_late_inserts_fire_next_advance() {
        let (o, mut w) = started();
        for i in 0..10 {
            w.insert(o + ms(7), i);
        }
        assert_eq!(drain(&mut w, o + ms(8)), (0..10).collect::<Vec<_>>());
        // a deadline already in the past is due at once
        w.insert(o, 42);
        assert_eq!(w.next_deadline(), Some(o));
        assert_eq!(drain(&mut w, o + ms(8)), vec![42]);
    }

    #[test]
    fn far_deadlines_come_back_through_every_level() {
        let (o, mut w) = started();
        let hours = ms(3 * 3600 * 1000);
        w.insert(o + hours, 9);
        w.insert(o + ms(70_000), 8);
        w.insert(o + ms(2_000), 7);
        assert_eq!(w.next_deadline(), Some(o + ms(2_000)));
        assert_eq!(drain(&mut w, o + ms(69_999)), vec![7]);
        assert_eq!(w.next_deadline(), Some(o + ms(70_000)));
        assert_eq!(drain(&mut w, o + ms(70_000)), vec![8]);
        assert_eq!(w.next_deadline(), Some(o + hours));
        assert_eq!(drain(&mut w, o + hours - ms(1)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, o + hours), vec![9]);
        assert!(w.is_empty());
    }

    /// Random deadlines against a sorted reference, advancing in random steps: same items, same order.
    #[test]
    fn matches_a_sorted_reference() {
        let (o, mut w) = started();
        let mut reference: Vec<(Instant, u64, u32)> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut now = o;
        let mut seq = 0u64;
        let mut fired = Vec::new();
        let mut expected = Vec::new();
        for round in 0..2_000u32 {
            for _ in 0..rnd(20) {
                let spread = match rnd(4) {
                    0 => rnd(5),
                    1 => rnd(1_500),
                    2 => rnd(40_000),
                    _ => rnd(200_000),
                };
                let at = now + Duration::from_micros(spread * 1000 + rnd(1000));
                seq += 1;
                w.insert(at, round * 100 + seq as u32 % 100);
                reference.push((at, seq, round * 100 + seq as u32 % 100));
            }
            let exact = reference.iter().map(|r| r.0).min();
            assert_eq!(w.next_deadline(), exact);
            now += Duration::from_micros(rnd(300_000));
            fired.extend(drain(&mut w, now));
            reference.sort_by_key(|r| (r.0, r.1));
            let n = reference.iter().take_while(|r| r.0 <= now).count();
            expected.extend(reference.drain(..n).map(|r| r.2));
            assert_eq!(fired, expected, "round {round}");
            assert_eq!(w.len(), reference.len());
        }
    }

    #[test]
    fn next_live_and_retain_drop_stale_entries() {
        let (o, mut w) = started();
        for i in 1..=6u32 {
            w.insert(o + ms(u64::from(i) * 20_000), i);
        }
        w.insert(o + ms(5), 100);
        // 100 and the odd ones are cancelled
        let live = |_: Instant, i: &u32| *i != 100 && i % 2 == 0;
        assert_eq!(w.next_live(live), Some(o + ms(40_000)));
        assert_eq!(w.len(), 5, "100 and 1 were dropped on the way");
        // kept until the wheel changes
        assert_eq!(w.next_live(|_, _| false), Some(o + ms(40_000)));
        w.retain(live);
        assert_eq!(w.len(), 3);
        assert_eq!(drain(&mut w, o + ms(200_000)), vec![2, 4, 6]);
        assert_eq!(w.next_live(live), None);
    }

    #[test]
    fn bitmap_finds_the_next_slot_round_the_end() {
        let mut b = Occupied::new(128);
        assert_eq!(b.next_from(5), None);
        b.set(3);
        assert_eq!(b.next_from(5), Some(126));
        assert_eq!(b.next_from(3), Some(0));
        b.set(100);
        assert_eq!(b.next_from(5), Some(95));
        b.clear(100);
        assert_eq!(b.next_from(5), Some(126));
    }
}
