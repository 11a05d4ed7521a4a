//! A hashed timer wheel with 1 ms slots: one per worker thread, holding every pending event of its
//! calls (SIP sends, retransmissions, timeouts, media packets). Insertion and expiry are O(1) per
//! entry; an entry due further than one turn away stays in its slot until its turn comes.

/// A timer entry: what to do, for which leg (slot index and generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub(crate) due_ms: u64,
    pub(crate) leg: u32,
    pub(crate) generation: u32,
    /// The leg's timer sequence when armed: a later arming of the same kind supersedes it.
    pub(crate) seq: u32,
    pub(crate) kind: TimerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// Send the leg's next scripted SIP message.
    Step,
    /// Retransmit the last request (or 2xx) not yet answered.
    Retransmit,
    /// The expected message did not arrive in time.
    Timeout,
    /// Send the leg's next media packet.
    Media,
    /// Forget a finished leg (after absorbing late retransmissions).
    Reap,
}

const SLOTS: usize = 4096;

pub(crate) struct Wheel {
    slots: Vec<Vec<Timer>>,
    /// The next millisecond not yet expired.
    now_ms: u64,
    len: usize,
}

impl Wheel {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            now_ms,
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, mut t: Timer) {
        if t.due_ms < self.now_ms {
            t.due_ms = self.now_ms;
        }
        self.slots[(t.due_ms as usize) % SLOTS].push(t);
        self.len += 1;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Moves every entry due at or before `now_ms` into `out`.
    pub(crate) fn expire(&mut self, now_ms: u64, out: &mut Vec<Timer>) {
        // At most one turn of slots is visited, however long the pause was.
        let end = now_ms.min(self.now_ms + SLOTS as u64 - 1);
        while self.now_ms <= end {
            let slot = &mut self.slots[(self.now_ms as usize) % SLOTS];
            self.len -= drain_due(slot, now_ms, out);
            self.now_ms += 1;
        }
        if now_ms >= self.now_ms {
            // A pause longer than one turn: sweep every slot once.
            for slot in &mut self.slots {
                self.len -= drain_due(slot, now_ms, out);
            }
            self.now_ms = now_ms + 1;
        }
    }

    /// The millisecond at which the next entry falls due (its slot's; at most `max` ms after the
    /// first not yet expired): `expire` moves it once the clock reaches that millisecond.
    pub(crate) fn next_due_ms(&self, max: u64) -> u64 {
        self.now_ms + self.idle_ms(max)
    }

    /// Milliseconds until the next slot that holds an entry (bounded by `max`).
    pub(crate) fn idle_ms(&self, max: u64) -> u64 {
        if self.len == 0 {
            return max;
        }
        for d in 0..max.min(SLOTS as u64) {
            if !self.slots[((self.now_ms + d) as usize) % SLOTS].is_empty() {
                return d;
            }
        }
        max
    }
}

/// Moves the entries of `slot` due at or before `now_ms` into `out`; returns how many.
fn drain_due(slot: &mut Vec<Timer>, now_ms: u64, out: &mut Vec<Timer>) -> usize {
    let mut moved = 0;
    let mut i = 0;
    while i < slot.len() {
        if slot[i].due_ms <= now_ms {
            out.push(slot.swap_remove(i));
            moved += 1;
        } else {
            i += 1;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(due_ms: u64, leg: u32) -> Timer {
        Timer {
            due_ms,
            leg,
            generation: 0,
            seq: 0,
            kind: TimerKind::Step,
        }
    }

    #[test]
    fn expires_in_time_and_across_turns() {
        let mut w = Wheel::new(1000);
        w.insert(t(1005, 1));
        w.insert(t(1000 + SLOTS as u64 + 5, 2));
        w.insert(t(10, 3)); // in the past: due now
        let mut out = Vec::new();
        w.expire(1004, &mut out);
        assert_eq!(out.iter().map(|x| x.leg).collect::<Vec<_>>(), vec![3]);
        out.clear();
        w.expire(1006, &mut out);
        assert_eq!(out.iter().map(|x| x.leg).collect::<Vec<_>>(), vec![1]);
        out.clear();
        w.expire(1000 + SLOTS as u64 + 4, &mut out);
        assert!(out.is_empty());
        w.expire(1000 + 3 * SLOTS as u64, &mut out);
        assert_eq!(out.iter().map(|x| x.leg).collect::<Vec<_>>(), vec![2]);
        assert_eq!(w.len(), 0);
    }
}
