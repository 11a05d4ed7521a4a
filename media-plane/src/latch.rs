//! Source latching for endpoints behind NAT (symmetric RTP), bounded against RTP Bleed.
//!
//! An endpoint behind NAT writes its private address in SDP; its packets arrive from the public
//! address its NAT chose. The relay therefore learns ("latches") where each remote really sends
//! from, and sends the other direction back there. Learning without limits is the RTP Bleed attack
//! (CVE-2017-14114): anyone who sprays the relay's ports takes the stream over. So learning happens
//! only inside a window opened at each offer/answer:
//!
//! | when | packet from | effect |
//! |---|---|---|
//! | in the window | first source seen | learned |
//! | in the window | a source ranked above the learned one | learned instead |
//! | after the window | the learned source | accepted |
//! | after the window | another source, strict mode | rejected and counted |
//! | after the window | another source, loose mode | accepted, nothing learned |
//! | after an empty window | any source, loose mode | learned once (a late first sender) |
//! | after an empty window | the SDP address, strict mode | accepted |
//! | after an empty window | another source, strict mode | rejected and counted |
//!
//! Rank, highest first: the exact SDP address; the SDP IP with another port (a NAT that keeps the
//! address); the IP the call's signalling came from (a phone behind NAT whose SDP names its private
//! address: its media leaves by the same public address as its SIP); any other source; a source
//! learned in an earlier window. Among equals the first one wins, so a flood of packets from one
//! attacker address cannot flip the latch back and forth. A sprayer that sends first from an
//! address of its own is learned only until the endpoint itself sends from its SDP address or from
//! its signalling IP: both outrank it. Strict mode also rejects, inside the window, packets from
//! sources other than the learned one.
//!
//! A new window with the same SDP address keeps the learned source as the destination until a
//! packet in the window confirms or replaces it (a re-INVITE for hold does not cut the audio of an
//! endpoint behind NAT). A new window with another SDP address forgets it: the endpoint moved.
//!
//! The destination for the other direction is the learned source, else the SDP address; an SDP
//! address with port 0 or an unspecified IP (a disabled or on-hold stream) is no destination.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How packets from sources other than the latched one are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// Drop them (counted). Protects against injection as well as against stream theft.
    #[default]
    Strict,
    /// Forward them, but never let them change the destination outside a window.
    Loose,
}

/// What to do with one packet, as decided by [`Latch::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatchVerdict {
    /// Forward it; the destination did not change.
    Accept,
    /// Forward it; its source is now the learned one (the destination changed).
    Learned,
    /// Drop it: strict mode, not the latched source.
    Reject,
}

/// Preference among sources during a window; derived order is the ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// Learned in an earlier window, not yet confirmed in this one.
    Stale,
    /// Neither the SDP address, its IP, nor the signalling IP.
    Other,
    /// The IP the call's signalling came from (any port).
    Signal,
    /// The SDP IP with another port.
    SameIp,
    /// Exactly the SDP address.
    Exact,
}

/// The latch state of one remote endpoint (one port of one leg). See the module doc for the rules.
#[derive(Clone, Debug)]
pub struct Latch {
    mode: LatchMode,
    sdp: Option<SocketAddr>,
    signal: Option<IpAddr>,
    learned: Option<SocketAddr>,
    rank: Rank,
    window_end: Option<Instant>,
    rejected: u64,
    changes: u64,
}

impl Latch {
    /// No SDP address, nothing learned, no window yet.
    pub fn new(mode: LatchMode) -> Self {
        Self {
            mode,
            sdp: None,
            signal: None,
            learned: None,
            rank: Rank::Stale,
            window_end: None,
            rejected: 0,
            changes: 0,
        }
    }

    /// An offer or answer set the remote's SDP address (`None`: not known yet): learning is open
    /// from `now` for `window`.
    pub fn open_window(&mut self, sdp: Option<SocketAddr>, now: Instant, window: Duration) {
        self.open_window_from(sdp, None, now, window);
    }

    /// [`Latch::open_window`], knowing the IP the remote's signalling came from (`None`:
    /// unknown): a source from that IP outranks any other source that is not the SDP's.
    pub fn open_window_from(
        &mut self,
        sdp: Option<SocketAddr>,
        signal: Option<IpAddr>,
        now: Instant,
        window: Duration,
    ) {
        self.signal = signal.filter(|ip| !ip.is_unspecified());
        let sdp = sdp.filter(|a| a.port() != 0 && !a.ip().is_unspecified());
        if sdp == self.sdp {
            self.rank = Rank::Stale;
        } else {
            self.learned = None;
            self.rank = Rank::Stale;
        }
        self.sdp = sdp;
        self.window_end = Some(now.checked_add(window).unwrap_or(now));
    }

    /// Decide on a packet from `source` arriving at `now`, learning it when the rules say so.
    pub fn check(&mut self, source: SocketAddr, now: Instant) -> LatchVerdict {
        let in_window = self.window_end.is_some_and(|end| now < end);
        if in_window {
            let rank = self.rank_of(source);
            if self.learned.is_none() || rank > self.rank {
                self.rank = rank;
                if self.learned != Some(source) {
                    self.learned = Some(source);
                    self.changes += 1;
                    return LatchVerdict::Learned;
                }
                return LatchVerdict::Accept;
            }
        } else if self.learned.is_none() {
            match self.mode {
                LatchMode::Loose => {
                    self.rank = self.rank_of(source);
                    self.learned = Some(source);
                    self.changes += 1;
                    return LatchVerdict::Learned;
                }
                LatchMode::Strict if self.sdp == Some(source) => return LatchVerdict::Accept,
                LatchMode::Strict => {
                    self.rejected += 1;
                    return LatchVerdict::Reject;
                }
            }
        }
        if self.learned == Some(source) || self.mode == LatchMode::Loose {
            LatchVerdict::Accept
        } else {
            self.rejected += 1;
            LatchVerdict::Reject
        }
    }

    /// Where the other direction is sent: the learned source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.learned.or(self.sdp)
    }

    /// The learned source.
    pub fn learned(&self) -> Option<SocketAddr> {
        self.learned
    }

    /// The usable SDP address (port non-zero, IP specified).
    pub fn sdp(&self) -> Option<SocketAddr> {
        self.sdp
    }

    /// True while learning is open.
    pub fn in_window(&self, now: Instant) -> bool {
        self.window_end.is_some_and(|end| now < end)
    }

    /// The mode.
    pub fn mode(&self) -> LatchMode {
        self.mode
    }

    /// Packets rejected (strict mode).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Times the learned source was set or changed.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn rank_of(&self, source: SocketAddr) -> Rank {
        match self.sdp {
            Some(sdp) if sdp == source => Rank::Exact,
            Some(sdp) if sdp.ip() == source.ip() => Rank::SameIp,
            _ if self.signal == Some(source.ip()) => Rank::Signal,
            _ => Rank::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const WINDOW: Duration = Duration::from_secs(10);

    fn at(t: Instant, s: u64) -> Instant {
        t + Duration::from_secs(s)
    }

    /// SDP says 10.0.0.5:4000 (private); the NAT maps it to 198.51.100.7:61000.
    fn natted(mode: LatchMode, t: Instant) -> Latch {
        let mut l = Latch::new(mode);
        l.open_window(Some(addr("10.0.0.5:4000")), t, WINDOW);
        l
    }

    #[test]
    fn first_packet_in_the_window_is_learned() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        assert_eq!(l.destination(), Some(addr("10.0.0.5:4000")));
        assert!(l.in_window(t));
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 1)),
            LatchVerdict::Learned
        );
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 2)),
            LatchVerdict::Accept
        );
        assert_eq!(l.changes(), 1);
    }

    #[test]
    fn sdp_address_is_preferred_in_the_window() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("203.0.113.66:5555"), at(t, 1));
        // the SDP address shows up later in the window: it wins
        assert_eq!(
            l.check(addr("10.0.0.5:4000"), at(t, 2)),
            LatchVerdict::Learned
        );
        assert_eq!(l.learned(), Some(addr("10.0.0.5:4000")));
        // and nothing outranks it afterwards, in the window or not
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 3)),
            LatchVerdict::Reject
        );
        assert_eq!(
            l.check(addr("10.0.0.5:4002"), at(t, 4)),
            LatchVerdict::Reject
        );
        assert_eq!(l.learned(), Some(addr("10.0.0.5:4000")));
    }

    #[test]
    fn same_ip_outranks_another_source() {
        let t = t0();
        let mut l = Latch::new(LatchMode::Strict);
        l.open_window(Some(addr("198.51.100.7:4000")), t, WINDOW);
        l.check(addr("203.0.113.66:5555"), at(t, 1));
        // a NAT that keeps the address but changes the port
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 2)),
            LatchVerdict::Learned
        );
        // another source of the lower rank does not take it back
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 3)),
            LatchVerdict::Reject
        );
        // the exact address still outranks it
        assert_eq!(
            l.check(addr("198.51.100.7:4000"), at(t, 4)),
            LatchVerdict::Learned
        );
    }

    /// A phone behind NAT: SDP 10.0.0.5:4000 (private), SIP from 198.51.100.7. A sprayer sends
    /// first from 203.0.113.66; the phone's first packet, from its signalling IP through the NAT,
    /// takes the stream back, and the sprayer cannot take it again.
    #[test]
    fn the_signalling_ip_outranks_a_sprayer_that_sent_first() {
        let t = t0();
        let mut l = Latch::new(LatchMode::Strict);
        let sip = Some("198.51.100.7".parse().unwrap());
        l.open_window_from(Some(addr("10.0.0.5:4000")), sip, t, WINDOW);
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 1)),
            LatchVerdict::Learned
        );
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 2)),
            LatchVerdict::Learned
        );
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 3)),
            LatchVerdict::Reject
        );
        assert_eq!(
            l.check(addr("203.0.113.66:5556"), at(t, 20)),
            LatchVerdict::Reject
        );
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        // the SDP address itself still outranks the signalling IP
        assert_eq!(
            l.check(addr("10.0.0.5:4000"), at(t, 4)),
            LatchVerdict::Learned
        );
        // without the signalling IP, the sprayer that came first would have kept it
        let mut blind = natted(LatchMode::Strict, t);
        blind.check(addr("203.0.113.66:5555"), at(t, 1));
        assert_eq!(
            blind.check(addr("198.51.100.7:61000"), at(t, 2)),
            LatchVerdict::Reject
        );
    }

    #[test]
    fn first_wins_among_equals() {
        let t = t0();
        let mut l = natted(LatchMode::Loose, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        // loose: forwarded, but the latch stays
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 2)),
            LatchVerdict::Accept
        );
        assert_eq!(l.learned(), Some(addr("198.51.100.7:61000")));
        assert_eq!(l.rejected(), 0);
    }

    #[test]
    fn after_the_window_the_source_is_fixed_strict() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        assert!(!l.in_window(at(t, 10)));
        // RTP Bleed: an attacker spraying the port after the window gets nothing, not even the
        // exact SDP address
        for s in ["203.0.113.66:5555", "10.0.0.5:4000", "198.51.100.7:61001"] {
            assert_eq!(l.check(addr(s), at(t, 11)), LatchVerdict::Reject);
        }
        assert_eq!(l.rejected(), 3);
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 12)),
            LatchVerdict::Accept
        );
    }

    #[test]
    fn after_the_window_the_source_is_fixed_loose() {
        let t = t0();
        let mut l = natted(LatchMode::Loose, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 11)),
            LatchVerdict::Accept
        );
        assert_eq!(
            l.check(addr("10.0.0.5:4000"), at(t, 11)),
            LatchVerdict::Accept
        );
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        assert_eq!((l.rejected(), l.changes()), (0, 1));
    }

    #[test]
    fn a_new_window_relearns() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        // re-INVITE with the same SDP: the old source stays the destination...
        l.open_window(Some(addr("10.0.0.5:4000")), at(t, 60), WINDOW);
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        // ...until a packet in the new window replaces it (the NAT mapping changed)
        assert_eq!(
            l.check(addr("198.51.100.7:62000"), at(t, 61)),
            LatchVerdict::Learned
        );
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 62)),
            LatchVerdict::Reject
        );
    }

    #[test]
    fn a_new_window_confirms_the_same_source() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        l.open_window(Some(addr("10.0.0.5:4000")), at(t, 60), WINDOW);
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 61)),
            LatchVerdict::Accept
        );
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 62)),
            LatchVerdict::Reject
        );
        assert_eq!(l.changes(), 1);
    }

    #[test]
    fn a_window_with_a_new_sdp_address_forgets() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        l.open_window(Some(addr("192.0.2.20:7000")), at(t, 60), WINDOW);
        assert_eq!(l.learned(), None);
        assert_eq!(l.destination(), Some(addr("192.0.2.20:7000")));
    }

    #[test]
    fn empty_window_strict_accepts_only_the_sdp_address() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 11)),
            LatchVerdict::Reject
        );
        assert_eq!(
            l.check(addr("10.0.0.5:4000"), at(t, 11)),
            LatchVerdict::Accept
        );
        assert_eq!(l.learned(), None);
        assert_eq!(l.rejected(), 1);
    }

    #[test]
    fn empty_window_loose_learns_a_late_sender_once() {
        let t = t0();
        let mut l = natted(LatchMode::Loose, t);
        assert_eq!(
            l.check(addr("198.51.100.7:61000"), at(t, 30)),
            LatchVerdict::Learned
        );
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 31)),
            LatchVerdict::Accept
        );
        assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
    }

    #[test]
    fn no_usable_sdp_address_is_no_destination() {
        let t = t0();
        for sdp in [None, Some(addr("0.0.0.0:4000")), Some(addr("10.0.0.5:0"))] {
            let mut l = Latch::new(LatchMode::Strict);
            l.open_window(sdp, t, WINDOW);
            assert_eq!(l.sdp(), None);
            assert_eq!(l.destination(), None);
            assert_eq!(
                l.check(addr("198.51.100.7:61000"), at(t, 1)),
                LatchVerdict::Learned
            );
            assert_eq!(l.destination(), Some(addr("198.51.100.7:61000")));
        }
        // never opened: strict learns nothing
        let mut l = Latch::new(LatchMode::Strict);
        assert_eq!(l.check(addr("198.51.100.7:61000"), t), LatchVerdict::Reject);
        assert_eq!(l.mode(), LatchMode::Strict);
    }

    #[test]
    fn strict_rejects_others_inside_the_window_too() {
        let t = t0();
        let mut l = natted(LatchMode::Strict, t);
        l.check(addr("198.51.100.7:61000"), at(t, 1));
        assert_eq!(
            l.check(addr("203.0.113.66:5555"), at(t, 2)),
            LatchVerdict::Reject
        );
        assert_eq!(l.rejected(), 1);
    }
}
