//! Relay port allocation: RTP/RTCP pairs out of one worker's slice of the media port range.
//!
//! - [`split`] cuts `[min, max]` into one even-aligned slice per worker, without gaps, so each
//!   worker owns its ports outright (no port is shared between cores).
//! - [`PortAllocator`] hands out pairs (RTP on the even port, RTCP on the odd port above it, RFC 3550
//!   §11) from one slice: one at a time or k at once for a call with several m= lines, all or nothing.
//!
//! Freed pairs are not reusable at once: they sit in quarantine for a configured time, so late
//! packets of the old call reach no new call (they hit a port that maps to nothing and are dropped).
//! Quarantine is first in, first out, and pairs leave it in the order they entered it; the free list
//! is first in, first out too, so the pair reused next is the one idle longest.
//!
//! Cost: O(1) per pair for allocation and release (amortised for the quarantine promotion); the
//! queues and the state table are sized to the slice when the allocator is built and never grow.
//! Giving back a pair that is not allocated (a double free) is refused with
//! [`Error::NotAllocated`] and counted; the allocator stays consistent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::Error;

/// An RTP/RTCP port pair: RTP on an even port, RTCP on the odd port above it. Only a
/// [`PortAllocator`] makes real ones; the default value (port 0) is a placeholder for buffers that
/// [`PortAllocator::allocate_into`] fills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    rtp: u16,
}

impl PortPair {
    /// The RTP (even) port.
    pub fn rtp(self) -> u16 {
        self.rtp
    }

    /// The RTCP port: RTP + 1.
    pub fn rtcp(self) -> u16 {
        self.rtp + 1
    }
}

/// Number of RTP/RTCP pairs in `[min, max]`: pairs start at `min`, which must be even and non-zero,
/// and a pair counts only when its RTCP port is `<= max`.
fn pairs_in(min: u16, max: u16) -> Result<usize, Error> {
    if min == 0 || min % 2 != 0 || max <= min {
        return Err(Error::InvalidPortRange { min, max });
    }
    Ok((usize::from(max) + 1 - usize::from(min)) / 2)
}

/// Split the media range `[min, max]` into `workers` even-aligned slices `(first, last)`, inclusive,
/// contiguous and without gaps: each slice starts on an even (RTP) port and ends on an odd (RTCP)
/// port. Pairs are shared out evenly; the first `pairs % workers` slices get one pair more. When
/// `max` is even, its port is left out (it has no RTCP port above it).
///
/// Fails when `min` is odd or zero, the range holds no pair, or there are fewer pairs than workers
/// (or no workers).
pub fn split(min: u16, max: u16, workers: usize) -> Result<Vec<(u16, u16)>, Error> {
    let pairs = pairs_in(min, max)?;
    if workers == 0 || pairs < workers {
        return Err(Error::TooManyWorkers { workers, pairs });
    }
    let base = pairs / workers;
    let extra = pairs % workers;
    let mut slices = Vec::with_capacity(workers);
    let mut first = usize::from(min);
    for worker in 0..workers {
        let n = base + usize::from(worker < extra);
        let last = first + 2 * n - 1;
        // Both ends lie in [min, max], so they fit u16.
        let (Ok(lo), Ok(hi)) = (u16::try_from(first), u16::try_from(last)) else {
            return Err(Error::InvalidPortRange { min, max });
        };
        slices.push((lo, hi));
        first = last + 1;
    }
    Ok(slices)
}

/// Where a pair is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PairState {
    Free,
    InUse,
    Quarantined,
}

/// Allocator of RTP/RTCP pairs over one worker's slice. See the module doc.
#[derive(Debug)]
pub struct PortAllocator {
    min: u16,
    /// The last RTCP port of the slice.
    max: u16,
    /// State per pair, indexed by `(rtp - min) / 2`.
    state: Vec<PairState>,
    /// Free pairs, by index, the longest idle first.
    free: VecDeque<u32>,
    /// Released pairs and the instant they may be reused, in release order.
    quarantine: VecDeque<(u32, Instant)>,
    quarantine_for: Duration,
    in_use: usize,
    double_frees: u64,
}

impl PortAllocator {
    /// An allocator over `[min, max]` with every pair free; released pairs wait `quarantine` before
    /// reuse (zero: reusable at once). Fails like [`split`] when the range holds no pair.
    pub fn new(min: u16, max: u16, quarantine: Duration) -> Result<Self, Error> {
        let pairs = pairs_in(min, max)?;
        let mut free = VecDeque::with_capacity(pairs);
        // At most 32768 pairs in a u16 range: the indices fit u32.
        free.extend((0..pairs).filter_map(|i| u32::try_from(i).ok()));
        let last = usize::from(min) + 2 * pairs - 1;
        Ok(Self {
            min,
            max: u16::try_from(last).unwrap_or(max),
            state: vec![PairState::Free; pairs],
            free,
            quarantine: VecDeque::with_capacity(pairs),
            quarantine_for: quarantine,
            in_use: 0,
            double_frees: 0,
        })
    }

    /// The slice: first RTP port and last RTCP port, inclusive.
    pub fn range(&self) -> (u16, u16) {
        (self.min, self.max)
    }

    /// Pairs in the slice.
    pub fn capacity(&self) -> usize {
        self.state.len()
    }

    /// Pairs held by callers.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Pairs in quarantine (released, not yet reusable or not yet promoted).
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Pairs on the free list, ready now without looking at the quarantine.
    pub fn free_pairs(&self) -> usize {
        self.free.len()
    }

    /// Pairs an allocation at `now` could hand out: free ones and those whose quarantine is over.
    pub fn available(&self, now: Instant) -> usize {
        self.free.len() + self.quarantine.partition_point(|&(_, until)| until <= now)
    }

    /// Releases refused because the pair was not allocated (double frees and foreign ports).
    pub fn double_frees(&self) -> u64 {
        self.double_frees
    }

    /// True when `rtp` is the RTP port of a pair currently allocated.
    pub fn is_allocated(&self, rtp: u16) -> bool {
        self.index_of(rtp)
            .and_then(|i| self.state.get(i))
            .is_some_and(|s| *s == PairState::InUse)
    }

    /// Move pairs whose quarantine is over to the free list; returns how many moved. Allocation does
    /// this itself; calling it from a timer only keeps [`Self::free_pairs`] current.
    pub fn promote(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        while let Some(&(index, until)) = self.quarantine.front() {
            if until > now {
                break;
            }
            self.quarantine.pop_front();
            if let Some(state) = self.state.get_mut(index as usize) {
                *state = PairState::Free;
            }
            self.free.push_back(index);
            moved += 1;
        }
        moved
    }

    /// One pair, or [`Error::PortsExhausted`].
    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, Error> {
        let mut one = [PortPair { rtp: 0 }];
        self.allocate_into(now, &mut one)?;
        let [pair] = one;
        Ok(pair)
    }

    /// Fill `out` with distinct pairs, all or nothing: on [`Error::PortsExhausted`] nothing was
    /// taken.
    pub fn allocate_into(&mut self, now: Instant, out: &mut [PortPair]) -> Result<(), Error> {
        self.promote(now);
        if self.free.len() < out.len() {
            return Err(Error::PortsExhausted {
                wanted: out.len(),
                available: self.free.len(),
            });
        }
        for slot in out.iter_mut() {
            // The length check above guarantees a free index for every slot.
            let Some(index) = self.free.pop_front() else {
                break;
            };
            if let Some(state) = self.state.get_mut(index as usize) {
                *state = PairState::InUse;
            }
            self.in_use += 1;
            *slot = self.pair_at(index);
        }
        Ok(())
    }

    /// Give `pair` back at `now`; it becomes reusable after the quarantine. Fails, changing nothing
    /// but the double-free counter, when the pair is not allocated.
    pub fn release(&mut self, pair: PortPair, now: Instant) -> Result<(), Error> {
        self.give_back(pair, now, true)
    }

    /// Give `pair` back, reusable at once (no quarantine): for the ports of a call that never got
    /// an answer, whose late packets nobody waits for. Fails like [`PortAllocator::release`].
    pub fn release_at_once(&mut self, pair: PortPair, now: Instant) -> Result<(), Error> {
        self.give_back(pair, now, false)
    }

    fn give_back(&mut self, pair: PortPair, now: Instant, quarantine: bool) -> Result<(), Error> {
        let rtp = pair.rtp();
        let Some(index) = self.index_of(rtp) else {
            self.double_frees += 1;
            return Err(Error::PortOutOfRange { port: rtp });
        };
        let Some(state) = self.state.get_mut(index) else {
            self.double_frees += 1;
            return Err(Error::PortOutOfRange { port: rtp });
        };
        if *state != PairState::InUse {
            self.double_frees += 1;
            return Err(Error::NotAllocated { port: rtp });
        }
        self.in_use -= 1;
        // index < state.len() <= 32768
        let index = index as u32;
        if self.quarantine_for.is_zero() || !quarantine {
            *state = PairState::Free;
            self.free.push_back(index);
        } else {
            *state = PairState::Quarantined;
            let until = now.checked_add(self.quarantine_for).unwrap_or(now);
            self.quarantine.push_back((index, until));
        }
        Ok(())
    }

    /// Index of the pair whose RTP port is `rtp`, when it is one of this slice.
    fn index_of(&self, rtp: u16) -> Option<usize> {
        let offset = rtp.checked_sub(self.min)?;
        if offset % 2 != 0 || rtp > self.max {
            return None;
        }
        Some(usize::from(offset / 2))
    }

    fn pair_at(&self, index: u32) -> PortPair {
        // index < capacity, so min + 2 × index is an RTP port of the slice.
        PortPair {
            rtp: self.min + 2 * (index as u16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(t: Instant, s: u64) -> Instant {
        t + Duration::from_secs(s)
    }

    #[test]
    fn split_even_and_contiguous() {
        assert_eq!(
            split(20000, 29999, 4).unwrap(),
            vec![
                (20000, 22499),
                (22500, 24999),
                (25000, 27499),
                (27500, 29999)
            ]
        );
        // 5 pairs over 3 workers: 2, 2, 1
        assert_eq!(
            split(20000, 20009, 3).unwrap(),
            vec![(20000, 20003), (20004, 20007), (20008, 20009)]
        );
        // an even max is left out: 20000..=20010 holds 5 pairs
        assert_eq!(
            split(20000, 20010, 2).unwrap(),
            vec![(20000, 20005), (20006, 20009)]
        );
        assert_eq!(split(2, 65535, 1).unwrap(), vec![(2, 65535)]);
        for workers in 1..=17 {
            let slices = split(30000, 40001, workers).unwrap();
            assert_eq!(slices.len(), workers);
            assert_eq!(slices[0].0, 30000);
            assert_eq!(slices[workers - 1].1, 40001);
            for w in slices.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
            for (lo, hi) in slices {
                assert_eq!((lo % 2, hi % 2), (0, 1));
            }
        }
    }

    #[test]
    fn split_rejects_bad_input() {
        assert_eq!(
            split(20001, 29999, 2),
            Err(Error::InvalidPortRange {
                min: 20001,
                max: 29999
            })
        );
        assert_eq!(
            split(0, 100, 1),
            Err(Error::InvalidPortRange { min: 0, max: 100 })
        );
        assert_eq!(
            split(20000, 20000, 1),
            Err(Error::InvalidPortRange {
                min: 20000,
                max: 20000
            })
        );
        assert_eq!(
            split(20000, 20005, 4),
            Err(Error::TooManyWorkers {
                workers: 4,
                pairs: 3
            })
        );
        assert_eq!(
            split(20000, 20005, 0),
            Err(Error::TooManyWorkers {
                workers: 0,
                pairs: 3
            })
        );
    }

    #[test]
    fn pairs_are_even_odd_and_in_range() {
        let now = t0();
        let mut a = PortAllocator::new(20000, 20019, Duration::ZERO).unwrap();
        assert_eq!(a.capacity(), 10);
        assert_eq!(a.range(), (20000, 20019));
        let mut seen = HashSet::new();
        for _ in 0..10 {
            let p = a.allocate(now).unwrap();
            assert_eq!(p.rtp() % 2, 0);
            assert_eq!(p.rtcp(), p.rtp() + 1);
            assert!((20000..=20018).contains(&p.rtp()));
            assert!(seen.insert(p));
            assert!(a.is_allocated(p.rtp()));
        }
        assert_eq!(a.in_use(), 10);
    }

    #[test]
    fn even_max_is_trimmed() {
        let a = PortAllocator::new(20000, 20010, Duration::ZERO).unwrap();
        assert_eq!(a.capacity(), 5);
        assert_eq!(a.range(), (20000, 20009));
    }

    #[test]
    fn exhaustion_is_an_error_and_leaks_nothing() {
        let now = t0();
        let mut a = PortAllocator::new(20000, 20009, Duration::from_secs(5)).unwrap();
        let mut three = [PortPair { rtp: 0 }; 3];
        a.allocate_into(now, &mut three).unwrap();
        assert_eq!(a.available(now), 2);
        // all or nothing: 3 more cannot be had, and the 2 free ones stay free
        let mut more = [PortPair { rtp: 0 }; 3];
        assert_eq!(
            a.allocate_into(now, &mut more),
            Err(Error::PortsExhausted {
                wanted: 3,
                available: 2
            })
        );
        assert_eq!(more, [PortPair { rtp: 0 }; 3]);
        assert_eq!((a.in_use(), a.free_pairs()), (3, 2));
        let x = a.allocate(now).unwrap();
        let y = a.allocate(now).unwrap();
        assert_eq!(
            a.allocate(now),
            Err(Error::PortsExhausted {
                wanted: 1,
                available: 0
            })
        );
        for p in three.into_iter().chain([x, y]) {
            a.release(p, now).unwrap();
        }
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.available(secs(now, 5)), a.capacity());
        // a zero-pair request always succeeds
        a.allocate_into(now, &mut []).unwrap();
    }

    #[test]
    fn quarantine_is_respected() {
        let t = t0();
        let mut a = PortAllocator::new(20000, 20003, Duration::from_secs(10)).unwrap();
        let p = a.allocate(t).unwrap();
        let q = a.allocate(t).unwrap();
        a.release(p, secs(t, 1)).unwrap();
        assert!(!a.is_allocated(p.rtp()));
        assert_eq!(a.quarantined(), 1);
        assert_eq!(a.available(secs(t, 10)), 0);
        assert_eq!(
            a.allocate(secs(t, 10) + Duration::from_millis(999)),
            Err(Error::PortsExhausted {
                wanted: 1,
                available: 0
            })
        );
        assert_eq!(a.available(secs(t, 11)), 1);
        assert_eq!(a.allocate(secs(t, 11)), Ok(p));
        // release order is reuse order
        a.release(q, secs(t, 12)).unwrap();
        a.release(p, secs(t, 13)).unwrap();
        assert_eq!(a.promote(secs(t, 22)), 1);
        assert_eq!(a.free_pairs(), 1);
        assert_eq!(a.allocate(secs(t, 23)), Ok(q));
        assert_eq!(a.allocate(secs(t, 23)), Ok(p));
    }

    #[test]
    fn zero_quarantine_reuses_the_longest_idle_first() {
        let t = t0();
        let mut a = PortAllocator::new(20000, 20005, Duration::ZERO).unwrap();
        let p = a.allocate(t).unwrap();
        a.release(p, t).unwrap();
        // the two never-used pairs come before the one just freed
        assert_ne!(a.allocate(t).unwrap(), p);
        assert_ne!(a.allocate(t).unwrap(), p);
        assert_eq!(a.allocate(t).unwrap(), p);
    }

    #[test]
    fn double_free_is_reported_not_panicking() {
        let t = t0();
        let mut a = PortAllocator::new(20000, 20009, Duration::from_secs(1)).unwrap();
        let p = a.allocate(t).unwrap();
        a.release(p, t).unwrap();
        // in quarantine
        assert_eq!(a.release(p, t), Err(Error::NotAllocated { port: p.rtp() }));
        // back on the free list
        a.promote(secs(t, 1));
        assert_eq!(
            a.release(p, secs(t, 1)),
            Err(Error::NotAllocated { port: p.rtp() })
        );
        assert_eq!(
            a.release(PortPair { rtp: 20001 }, t),
            Err(Error::PortOutOfRange { port: 20001 })
        );
        assert_eq!(
            a.release(PortPair { rtp: 20010 }, t),
            Err(Error::PortOutOfRange { port: 20010 })
        );
        assert_eq!(
            a.release(PortPair { rtp: 19998 }, t),
            Err(Error::PortOutOfRange { port: 19998 })
        );
        assert_eq!(a.double_frees(), 5);
        assert_eq!((a.in_use(), a.available(secs(t, 1))), (0, 5));
    }

    #[test]
    fn ten_thousand_cycles_leave_the_allocator_full() {
        let t = t0();
        let quarantine = Duration::from_millis(300);
        let mut a = PortAllocator::new(20000, 20199, quarantine).unwrap();
        let mut held: Vec<PortPair> = Vec::new();
        let mut taken = HashSet::new();
        let mut now = t;
        for cycle in 0..10_000u64 {
            now += Duration::from_millis(7);
            // 1..=3 pairs per call, as for calls with one to three m= lines
            let k = (cycle % 3 + 1) as usize;
            let mut pairs = [PortPair { rtp: 0 }; 3];
            match a.allocate_into(now, &mut pairs[..k]) {
                Ok(()) => {
                    for p in &pairs[..k] {
                        assert!(taken.insert(*p), "pair {p:?} handed out twice");
                    }
                    held.extend_from_slice(&pairs[..k]);
                }
                Err(Error::PortsExhausted { .. }) => {}
                Err(e) => panic!("{e}"),
            }
            // release the oldest calls so that between 0 and ~60 pairs stay held
            while held.len() > (cycle % 61) as usize {
                let p = held.remove(0);
                assert!(taken.remove(&p));
                a.release(p, now).unwrap();
            }
        }
        for p in held.drain(..) {
            a.release(p, now).unwrap();
        }
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.double_frees(), 0);
        assert_eq!(a.available(now + quarantine), a.capacity());
        a.promote(now + quarantine);
        assert_eq!(a.free_pairs(), a.capacity());
        assert_eq!(a.quarantined(), 0);
        // and every pair can be taken at once again
        let mut all = vec![PortPair { rtp: 0 }; a.capacity()];
        a.allocate_into(now + quarantine, &mut all).unwrap();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 100);
    }
}
