//! Packet indices and replay protection: the RTP index guessed from the sequence number and the
//! rollover counter (RFC 3711 §3.3.1, Appendix A), and the sliding replay window (§3.3.2).

/// Width of the replay window in packets (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: u64 = 128;

/// The rollover counter and the highest sequence number seen of one SSRC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RtpIndex {
    roc: u32,
    highest: u16,
    started: bool,
}

impl RtpIndex {
    /// The rollover counter `v` guessed for `seq` and the 48-bit packet index `v * 2^16 + seq`
    /// (RFC 3711 §3.3.1). The first packet of a stream counts with a rollover counter of 0.
    pub(crate) fn estimate(&self, seq: u16) -> (u32, u64) {
        let roc = self.roc;
        let v = if !self.started {
            roc
        } else if self.highest < 0x8000 {
            if u32::from(seq) > u32::from(self.highest) + 0x8000 && roc > 0 {
                roc - 1
            } else {
                roc
            }
        } else if u32::from(self.highest) - 0x8000 > u32::from(seq) {
            roc.wrapping_add(1)
        } else {
            roc
        };
        (v, (u64::from(v) << 16) | u64::from(seq))
    }

    /// Record an authenticated (or sent) packet: `v` from [`RtpIndex::estimate`].
    pub(crate) fn update(&mut self, seq: u16, v: u32) {
        if !self.started {
            self.started = true;
            self.roc = v;
            self.highest = seq;
        } else if v == self.roc.wrapping_add(1) {
            self.roc = v;
            self.highest = seq;
        } else if v == self.roc && seq > self.highest {
            self.highest = seq;
        }
    }

    /// The current rollover counter.
    #[cfg(test)]
    pub(crate) fn roc(&self) -> u32 {
        self.roc
    }
}

/// The replay list of one SSRC: the highest index accepted and a bitmap of the
/// [`REPLAY_WINDOW`] indices below it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    top: u64,
    bits: u128,
    started: bool,
}

impl ReplayWindow {
    /// `false` when `index` was accepted before or is older than the window.
    pub(crate) fn check(&self, index: u64) -> bool {
        if !self.started || index > self.top {
            return true;
        }
        let delta = self.top - index;
        delta < REPLAY_WINDOW && (self.bits >> delta) & 1 == 0
    }

    /// Mark `index` as accepted (after its authentication passed).
    pub(crate) fn accept(&mut self, index: u64) {
        if !self.started {
            self.started = true;
            self.top = index;
            self.bits = 1;
        } else if index > self.top {
            let shift = index - self.top;
            self.bits = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.top = index;
        } else {
            let delta = self.top - index;
            if delta < REPLAY_WINDOW {
                self.bits |= 1 << delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_the_sequence_across_wraps_and_reordering() {
        let mut ix = RtpIndex::default();
        let mut seen = Vec::new();
        for seq in [65533u16, 65534, 65535, 0, 65535, 1, 2] {
            let (v, index) = ix.estimate(seq);
            ix.update(seq, v);
            seen.push(index);
        }
        assert_eq!(
            seen,
            [65533, 65534, 65535, 65536, 65535, 65537, 65538],
            "a late packet from before the wrap keeps the old rollover counter"
        );
        assert_eq!(ix.roc(), 1);
        // Far behind in the second half of the previous cycle.
        let (v, index) = ix.estimate(40_000);
        assert_eq!((v, index), (0, 40_000));
    }

    #[test]
    fn the_window_refuses_repeats_and_the_too_old() {
        let mut w = ReplayWindow::default();
        assert!(w.check(1000));
        w.accept(1000);
        assert!(!w.check(1000));
        assert!(w.check(999));
        w.accept(999);
        assert!(!w.check(999));
        w.accept(1100);
        assert!(!w.check(1000), "still inside the window");
        assert!(w.check(1099));
        assert!(!w.check(1100 - REPLAY_WINDOW), "older than the window");
        w.accept(5000);
        assert!(!w.check(1100));
        assert!(w.check(4999));
    }
}
