//! Per-stream reception statistics: packet and byte counters, the time of the last packet, loss from
//! the extended sequence number (RFC 3550 App. A.1 and A.3) and interarrival jitter (App. A.8).
//!
//! Single writer: a [`StreamStats`] belongs to the worker that owns its stream and is updated in
//! place on every packet, with plain (non-atomic) fields, no lock and no allocation. Readers elsewhere
//! (the control API, CDRs) get copies through the worker, never a shared reference.
//!
//! Loss follows App. A.1 to the letter, with its constants ([`MIN_SEQUENTIAL`], [`MAX_DROPOUT`],
//! [`MAX_MISORDER`]): a new source is on probation until two packets arrive in sequence; a jump of
//! [`MAX_DROPOUT`] or more is taken as a restart of the sender only when the next packet follows it;
//! duplicates and late packets count as received, so the cumulative loss can be negative. One
//! departure: where A.1 compares `seq == max_seq + 1` in C integer arithmetic (so 65535 is never
//! followed), the comparison here wraps at 2^16.
//!
//! A restart or a new SSRC starts a new period (A.1 `init_seq`); the counters of the previous
//! periods are kept, so [`SequenceTracker::expected`] and [`SequenceTracker::received`] cover the
//! whole stream.

use std::time::{Duration, Instant};

use crate::rtp::RtpHeader;

/// Packets in sequence needed before a new source is valid (RFC 3550 App. A.1).
pub const MIN_SEQUENTIAL: u8 = 2;
/// A forward jump of fewer packets than this counts as loss; a larger one as a possible restart
/// (RFC 3550 App. A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A backward step of fewer than this many packets is a late or duplicate packet; a larger one is a
/// jump (RFC 3550 App. A.1).
pub const MAX_MISORDER: u16 = 100;

/// `RTP_SEQ_MOD - MAX_MISORDER` of App. A.1: the largest distance (forward, modulo 2^16) that is
/// still a jump rather than a late packet.
const JUMP_LIMIT: u16 = u16::MAX - MAX_MISORDER + 1;

/// What one sequence number did to the tracker (the cases of App. A.1 `update_seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqEvent {
    /// The source is not valid yet; the packet is not counted.
    Probation,
    /// In order, a forward gap below [`MAX_DROPOUT`], or a repeat of the highest number; counted.
    InOrder,
    /// Older than the highest number seen, by fewer than [`MAX_MISORDER`] (a reordered packet or a
    /// duplicate of one); counted.
    Late,
    /// A jump of [`MAX_DROPOUT`] or more; not counted until the next packet confirms it.
    Jump,
    /// The packet after a jump followed it: the sender restarted, a new period begins with this
    /// packet; counted.
    Restart,
}

/// Loss over one reporting interval (RFC 3550 App. A.3), as an RR report block carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalLoss {
    /// Packets expected in the interval.
    pub expected: u64,
    /// Packets received in the interval (duplicates included).
    pub received: u64,
    /// `expected - received`; negative when duplicates outnumber losses.
    pub lost: i64,
    /// Fraction lost as a fixed-point number with the binary point at the left edge (lost × 256 /
    /// expected), 0 when nothing was lost or expected.
    pub fraction: u8,
}

/// The extended highest sequence number and loss counters of RFC 3550 App. A.1 / A.3.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    /// A source has been heard (its probation started).
    started: bool,
    /// The source passed probation: a period is running.
    active: bool,
    probation: u8,
    max_seq: u16,
    /// Number of times the sequence number wrapped in this period.
    cycles: u64,
    base_seq: u16,
    /// The sequence number that confirms a jump; `None` is A.1's `RTP_SEQ_MOD + 1`.
    bad_seq: Option<u16>,
    /// Packets received in this period.
    received: u64,
    closed_expected: u64,
    closed_received: u64,
    expected_prior: u64,
    received_prior: u64,
    restarts: u64,
}

impl SequenceTracker {
    /// A tracker that has heard no source yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Account for one packet's sequence number (App. A.1 `update_seq`, with the first-packet set-up
    /// of `init_seq` and probation).
    pub fn update(&mut self, seq: u16) -> SeqEvent {
        if !self.started {
            self.started = true;
            self.init(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.active = true;
                    self.received += 1;
                    return SeqEvent::InOrder;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqEvent::Probation;
        }
        let event = if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
            SeqEvent::InOrder
        } else if udelta <= JUMP_LIMIT {
            if self.bad_seq == Some(seq) {
                // Two sequential packets after a jump: the other side restarted.
                self.init(seq);
                self.restarts += 1;
                SeqEvent::Restart
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return SeqEvent::Jump;
            }
        } else {
            SeqEvent::Late
        };
        self.received += 1;
        event
    }

    /// Forget the source (its SSRC changed): the next packet starts a new probation. The counters of
    /// the periods so far are kept.
    pub fn new_source(&mut self) {
        self.close_period();
        self.started = false;
        self.active = false;
        self.probation = 0;
        self.received = 0;
        self.cycles = 0;
        self.bad_seq = None;
    }

    /// A.1 `init_seq`: a new period starting at `seq`; the running one (if any) is closed first.
    fn init(&mut self, seq: u16) {
        self.close_period();
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
    }

    fn close_period(&mut self) {
        if self.active {
            self.closed_expected += self.period_expected();
            self.closed_received += self.received;
        }
    }

    fn period_expected(&self) -> u64 {
        if !self.active {
            return 0;
        }
        // max ≥ base: max_seq only moves forward from base_seq within a period.
        (self.extended_max_raw() + 1).saturating_sub(u64::from(self.base_seq))
    }

    fn extended_max_raw(&self) -> u64 {
        (self.cycles << 16) | u64::from(self.max_seq)
    }

    /// The source passed probation and a period is running.
    pub fn is_valid(&self) -> bool {
        self.active
    }

    /// The extended highest sequence number of the running period (wrap count × 2^16 + highest
    /// sequence number), once the source is valid.
    pub fn extended_max(&self) -> Option<u64> {
        self.active.then(|| self.extended_max_raw())
    }

    /// The first sequence number of the running period, once the source is valid.
    pub fn base(&self) -> Option<u16> {
        self.active.then_some(self.base_seq)
    }

    /// Packets expected, over all periods (A.3: extended max − base + 1, summed).
    pub fn expected(&self) -> u64 {
        self.closed_expected + self.period_expected()
    }

    /// Packets received and counted, over all periods (duplicates and late packets included).
    pub fn received(&self) -> u64 {
        self.closed_received + self.received
    }

    /// Cumulative packets lost: expected − received; negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        i128_to_i64(i128::from(self.expected()) - i128::from(self.received()))
    }

    /// Sender restarts detected (a jump confirmed by the following packet).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Loss since the previous call (App. A.3), for the next reception report.
    pub fn take_interval(&mut self) -> IntervalLoss {
        let expected_total = self.expected();
        let received_total = self.received();
        let expected = expected_total.saturating_sub(self.expected_prior);
        let received = received_total.saturating_sub(self.received_prior);
        self.expected_prior = expected_total;
        self.received_prior = received_total;
        let lost = i128_to_i64(i128::from(expected) - i128::from(received));
        let fraction = match u64::try_from(lost) {
            Ok(lost) if lost > 0 && expected > 0 => {
                u8::try_from((lost << 8) / expected).unwrap_or(u8::MAX)
            }
            _ => 0,
        };
        IntervalLoss {
            expected,
            received,
            lost,
            fraction,
        }
    }
}

fn i128_to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Interarrival jitter (RFC 3550 §6.4.1, App. A.8), kept as the integer variant scaled by 16.
#[derive(Clone, Debug, Default)]
pub struct Jitter {
    /// Arrival times are counted in clock units from this instant (the first arrival); only
    /// differences of transit times matter, so any origin gives the same result.
    epoch: Option<Instant>,
    /// The previous packet's relative transit time, in clock units.
    transit: Option<u32>,
    /// Jitter × 16.
    scaled: u64,
}

impl Jitter {
    /// No packet seen: jitter 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Account for a packet with RTP `timestamp` arriving at `arrival`, for a payload clocked at
    /// `clock_rate` Hz (8000 for G.711). Does nothing when `clock_rate` is 0 (unknown).
    pub fn update(&mut self, arrival: Instant, timestamp: u32, clock_rate: u32) {
        if clock_rate == 0 {
            return;
        }
        let epoch = *self.epoch.get_or_insert(arrival);
        let nanos = arrival.saturating_duration_since(epoch).as_nanos();
        // Clock units since the epoch; keeping the low 32 bits is the wrap RTP timestamps have too.
        let units = (nanos * u128::from(clock_rate) / 1_000_000_000) as u32;
        self.update_units(units, timestamp);
    }

    /// Account for a packet whose arrival time is already in clock units (A.8 `arrival`).
    pub fn update_units(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            // Two's complement difference, then its magnitude: A.8 `d`.
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            // A.8 integer form: J += d - ((J + 8) >> 4), J scaled by 16. (J+8)>>4 ≤ J, so no
            // underflow once d is added first.
            self.scaled = self.scaled + d - ((self.scaled + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Forget the previous transit time (the sender restarted): the next packet only sets it.
    pub fn reset_transit(&mut self) {
        self.transit = None;
    }

    /// The jitter in timestamp units, as an RR report block carries it (A.8: `jitter >> 4`).
    pub fn value(&self) -> u32 {
        u32::try_from(self.scaled >> 4).unwrap_or(u32::MAX)
    }

    /// The jitter × 16, the precision kept internally.
    pub fn scaled(&self) -> u64 {
        self.scaled
    }

    /// The jitter as a duration, for a payload clocked at `clock_rate` Hz (zero when it is 0).
    pub fn duration(&self, clock_rate: u32) -> Duration {
        if clock_rate == 0 {
            return Duration::ZERO;
        }
        let nanos = u128::from(self.scaled) * 1_000_000_000 / (16 * u128::from(clock_rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Reception statistics of one direction of one stream: what arrived from one remote.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    packets: u64,
    bytes: u64,
    rtcp_packets: u64,
    rtcp_bytes: u64,
    last_packet: Option<Instant>,
    ssrc: Option<u32>,
    ssrc_changes: u64,
    sequence: SequenceTracker,
    jitter: Jitter,
}

impl StreamStats {
    /// Nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Account for an RTP packet that arrived at `arrival`, its payload clocked at `clock_rate` Hz
    /// (0 when unknown: jitter is then not computed). A new SSRC starts a new source: probation
    /// again and jitter from zero; the loss counters carry over.
    pub fn record_rtp(&mut self, header: &RtpHeader<'_>, arrival: Instant, clock_rate: u32) {
        self.packets += 1;
        self.bytes += header.packet_len() as u64;
        self.last_packet = Some(arrival);
        let ssrc = header.ssrc();
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.ssrc_changes += 1;
                self.sequence.new_source();
                self.jitter = Jitter::new();
            }
            self.ssrc = Some(ssrc);
        }
        match self.sequence.update(header.sequence()) {
            SeqEvent::Probation | SeqEvent::Jump => {}
            SeqEvent::Restart => {
                self.jitter.reset_transit();
                self.jitter.update(arrival, header.timestamp(), clock_rate);
            }
            SeqEvent::InOrder | SeqEvent::Late => {
                self.jitter.update(arrival, header.timestamp(), clock_rate);
            }
        }
    }

    /// Account for an RTCP datagram of `len` bytes that arrived at `arrival`.
    pub fn record_rtcp(&mut self, len: usize, arrival: Instant) {
        self.rtcp_packets += 1;
        self.rtcp_bytes += len as u64;
        self.last_packet = Some(arrival);
    }

    /// RTP packets received (every one, probation and duplicates included).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// RTP bytes received (whole datagrams).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// RTCP datagrams received.
    pub fn rtcp_packets(&self) -> u64 {
        self.rtcp_packets
    }

    /// RTCP bytes received.
    pub fn rtcp_bytes(&self) -> u64 {
        self.rtcp_bytes
    }

    /// When the last RTP or RTCP packet arrived.
    pub fn last_packet(&self) -> Option<Instant> {
        self.last_packet
    }

    /// The SSRC of the current source.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Times the SSRC changed.
    pub fn ssrc_changes(&self) -> u64 {
        self.ssrc_changes
    }

    /// Sequence and loss accounting.
    pub fn sequence(&self) -> &SequenceTracker {
        &self.sequence
    }

    /// Loss since the previous call, for a reception report (App. A.3).
    pub fn take_interval(&mut self) -> IntervalLoss {
        self.sequence.take_interval()
    }

    /// Interarrival jitter of the current source.
    pub fn jitter(&self) -> &Jitter {
        &self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tracker: &mut SequenceTracker, seqs: &[u16]) -> Vec<SeqEvent> {
        seqs.iter().map(|&s| tracker.update(s)).collect()
    }

    #[test]
    fn probation_then_in_order() {
        let mut t = SequenceTracker::new();
        let seqs: Vec<u16> = (100..=109).collect();
        let events = run(&mut t, &seqs);
        assert_eq!(events[0], SeqEvent::Probation);
        assert!(events[1..].iter().all(|e| *e == SeqEvent::InOrder));
        // A.1: the period starts at the packet that ends probation (101).
        assert_eq!(t.base(), Some(101));
        assert_eq!(t.extended_max(), Some(109));
        assert_eq!(t.expected(), 9);
        assert_eq!(t.received(), 9);
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn probation_restarts_on_a_gap() {
        let mut t = SequenceTracker::new();
        // 12 does not follow 10: probation again with max 12; 13 follows: valid at 13.
        assert_eq!(
            run(&mut t, &[10, 12, 13]),
            vec![SeqEvent::Probation, SeqEvent::Probation, SeqEvent::InOrder]
        );
        assert_eq!(t.base(), Some(13));
        assert_eq!((t.expected(), t.received()), (1, 1));
        assert!(t.is_valid());
    }

    #[test]
    fn probation_across_the_wrap() {
        // A.1's C comparison would never accept 0 after 65535; ours wraps.
        let mut t = SequenceTracker::new();
        assert_eq!(
            run(&mut t, &[65535, 0]),
            vec![SeqEvent::Probation, SeqEvent::InOrder]
        );
        assert_eq!(t.base(), Some(0));
        assert_eq!(t.extended_max(), Some(0));
    }

    #[test]
    fn sequence_wraps_at_65535() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[65533, 65534, 65535, 0, 1, 2]);
        // base 65534; one wrap: extended max = 65536 + 2
        assert_eq!(t.extended_max(), Some(65538));
        assert_eq!(t.expected(), 5);
        assert_eq!(t.received(), 5);
        // 3 and 4 lost
        assert_eq!(t.update(5), SeqEvent::InOrder);
        assert_eq!(t.expected(), 8);
        assert_eq!(t.received(), 6);
        assert_eq!(t.lost(), 2);
        // a late packet from before the wrap does not wrap again
        assert_eq!(t.update(65535), SeqEvent::Late);
        assert_eq!(t.extended_max(), Some(65541));
        assert_eq!(t.received(), 7);
        assert_eq!(t.lost(), 1);
    }

    #[test]
    fn reordering_is_not_loss() {
        let mut t = SequenceTracker::new();
        let events = run(&mut t, &[10, 11, 12, 14, 13, 15]);
        assert_eq!(events[3], SeqEvent::InOrder);
        assert_eq!(events[4], SeqEvent::Late);
        assert_eq!(t.extended_max(), Some(15));
        assert_eq!((t.expected(), t.received(), t.lost()), (5, 5, 0));
    }

    #[test]
    fn duplicates_make_loss_negative() {
        let mut t = SequenceTracker::new();
        let events = run(&mut t, &[10, 11, 12, 12, 13, 12]);
        // A.1: a repeat of the highest number is a zero step forward; an older one is late
        assert_eq!(events[3], SeqEvent::InOrder);
        assert_eq!(events[5], SeqEvent::Late);
        // expected 11..=13 = 3, received 5
        assert_eq!((t.expected(), t.received(), t.lost()), (3, 5, -2));
    }

    #[test]
    fn gap_below_max_dropout_is_loss() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[100, 101]);
        // udelta 2999 < MAX_DROPOUT
        assert_eq!(t.update(3100), SeqEvent::InOrder);
        assert_eq!((t.expected(), t.received(), t.lost()), (3000, 2, 2998));
    }

    #[test]
    fn a_stray_jump_is_ignored() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[100, 101, 102, 103, 104, 105]);
        assert_eq!(t.update(40000), SeqEvent::Jump);
        assert_eq!(t.update(106), SeqEvent::InOrder);
        // base 101, max 106; the stray packet is neither expected nor received
        assert_eq!((t.expected(), t.received(), t.lost()), (6, 6, 0));
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn a_confirmed_jump_is_a_restart() {
        let mut t = SequenceTracker::new();
        let seqs: Vec<u16> = (100..=109).collect();
        run(&mut t, &seqs);
        assert_eq!(
            run(&mut t, &[5000, 5001, 5002]),
            vec![SeqEvent::Jump, SeqEvent::Restart, SeqEvent::InOrder]
        );
        // first period 101..=109 (9 of 9), second 5001..=5002 (2 of 2); 5000 is in neither
        assert_eq!(t.base(), Some(5001));
        assert_eq!(t.extended_max(), Some(5002));
        assert_eq!((t.expected(), t.received(), t.lost()), (11, 11, 0));
        assert_eq!(t.restarts(), 1);
        // loss in the second period adds to the first
        t.update(5005);
        assert_eq!((t.expected(), t.received(), t.lost()), (14, 12, 2));
    }

    #[test]
    fn a_backward_restart_is_detected_too() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[30000, 30001, 30002]);
        // 1000 is 36534 ahead modulo 2^16: a jump, not a late packet
        assert_eq!(
            run(&mut t, &[1000, 1001]),
            vec![SeqEvent::Jump, SeqEvent::Restart]
        );
        assert_eq!((t.expected(), t.received()), (3, 3));
    }

    #[test]
    fn late_limit_is_max_misorder() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[1000, 1001, 1200]);
        // 1101 is 99 behind the max: late. 1100 is 100 behind: a jump (A.1: udelta 65436 is
        // still <= RTP_SEQ_MOD - MAX_MISORDER).
        assert_eq!(t.update(1101), SeqEvent::Late);
        assert_eq!(t.update(1100), SeqEvent::Jump);
    }

    #[test]
    fn interval_loss_per_a3() {
        let mut t = SequenceTracker::new();
        let seqs: Vec<u16> = (100..=109).collect();
        run(&mut t, &seqs);
        assert_eq!(
            t.take_interval(),
            IntervalLoss {
                expected: 9,
                received: 9,
                lost: 0,
                fraction: 0
            }
        );
        run(&mut t, &[110, 112, 113]);
        // 111 lost: 1 of 4 → 64/256
        assert_eq!(
            t.take_interval(),
            IntervalLoss {
                expected: 4,
                received: 3,
                lost: 1,
                fraction: 64
            }
        );
        // duplicates only: negative loss, fraction 0
        run(&mut t, &[113, 113]);
        assert_eq!(
            t.take_interval(),
            IntervalLoss {
                expected: 0,
                received: 2,
                lost: -2,
                fraction: 0
            }
        );
    }

    #[test]
    fn new_source_keeps_totals() {
        let mut t = SequenceTracker::new();
        run(&mut t, &[1, 2, 3, 5]); // base 2, max 5: expected 4, received 3
        t.new_source();
        assert!(!t.is_valid());
        assert_eq!((t.expected(), t.received()), (4, 3));
        run(&mut t, &[900, 901, 902]); // probation 900, base 901: expected 2, received 2
        assert_eq!((t.expected(), t.received(), t.lost()), (6, 5, 1));
    }

    #[test]
    fn jitter_integer_a8() {
        let mut j = Jitter::new();
        // 8000 Hz, 20 ms packets = 160 units. Arrivals in units: 0, 160, 400 (80 late), 480.
        j.update_units(0, 1000);
        assert_eq!(j.scaled(), 0);
        j.update_units(160, 1160); // same transit: d = 0
        assert_eq!(j.scaled(), 0);
        j.update_units(400, 1320); // d = 80: J16 = 0 + 80 - 0
        assert_eq!((j.scaled(), j.value()), (80, 5));
        j.update_units(480, 1480); // d = 80: J16 = 80 + 80 - ((80 + 8) >> 4 = 5) = 155
        assert_eq!((j.scaled(), j.value()), (155, 9));
        // 155 / 16 units at 8000 Hz = 1.2109375 ms
        assert_eq!(j.duration(8000), Duration::from_nanos(1_210_937));
    }

    #[test]
    fn jitter_from_instants() {
        let t0 = test_now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut j = Jitter::new();
        j.update(ms(0), 1000, 8000);
        j.update(ms(20), 1160, 8000);
        j.update(ms(50), 1320, 8000);
        j.update(ms(60), 1480, 8000);
        assert_eq!((j.scaled(), j.value()), (155, 9));
        // unknown clock rate: ignored
        j.update(ms(500), 0, 0);
        assert_eq!(j.scaled(), 155);
        assert_eq!(j.duration(0), Duration::ZERO);
    }

    #[test]
    fn jitter_across_timestamp_wrap() {
        let mut j = Jitter::new();
        j.update_units(100, u32::MAX - 159); // transit = 260
        j.update_units(260, 0); // ts wrapped: transit 260, d = 0
        assert_eq!(j.scaled(), 0);
        j.update_units(400, 160); // transit 240: d = 20 (early)
        assert_eq!(j.scaled(), 20);
    }

    #[test]
    fn jitter_at_48khz() {
        let t0 = test_now();
        let mut j = Jitter::new();
        j.update(t0, 0, 48000);
        j.update(t0 + Duration::from_millis(21), 960, 48000); // 1 ms late = 48 units
        assert_eq!(j.scaled(), 48);
        assert_eq!(j.value(), 3);
    }

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn test_now() -> Instant {
        Instant::now()
    }

    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn stream_stats_count_and_track() {
        let t0 = test_now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = StreamStats::new();
        // seq 10 (probation), 11, 12 every 20 ms; then 14 10 ms late, and 13 after it (late).
        let packets = [
            (10, 0, 0),
            (11, 160, 20),
            (12, 320, 40),
            (14, 640, 90),
            (13, 480, 95),
        ];
        for (seq, ts, at) in packets {
            let buf = rtp(seq, ts, 7);
            s.record_rtp(&RtpHeader::parse(&buf).unwrap(), ms(at), 8000);
        }
        assert_eq!(s.packets(), 5);
        assert_eq!(s.bytes(), 5 * 172);
        assert_eq!(s.last_packet(), Some(ms(95)));
        assert_eq!(s.ssrc(), Some(7));
        assert_eq!(
            (
                s.sequence().expected(),
                s.sequence().received(),
                s.sequence().lost()
            ),
            (4, 4, 0)
        );
        // Jitter counts from the packet that ended probation (11): arrivals in units from it 0,
        // 160, 560, 600; transits -160, -160, -80, 120.
        // d: 0 → J16 0; 80 → 80; 200 → 80 + 200 - 5 = 275.
        assert_eq!(s.jitter().scaled(), 275);
        s.record_rtcp(52, ms(100));
        assert_eq!((s.rtcp_packets(), s.rtcp_bytes()), (1, 52));
        assert_eq!(s.last_packet(), Some(ms(100)));
        assert_eq!(s.take_interval().expected, 4);
    }

    #[test]
    fn ssrc_change_starts_a_new_source() {
        let t0 = test_now();
        let mut s = StreamStats::new();
        for (i, seq) in [10u16, 11, 12].into_iter().enumerate() {
            let buf = rtp(seq, 160 * i as u32, 1);
            s.record_rtp(&RtpHeader::parse(&buf).unwrap(), t0, 8000);
        }
        assert_eq!(s.sequence().expected(), 2);
        for seq in [500u16, 501] {
            let buf = rtp(seq, 0, 2);
            s.record_rtp(&RtpHeader::parse(&buf).unwrap(), t0, 8000);
        }
        assert_eq!(s.ssrc(), Some(2));
        assert_eq!(s.ssrc_changes(), 1);
        assert_eq!(s.sequence().base(), Some(501));
        assert_eq!((s.sequence().expected(), s.sequence().received()), (3, 3));
        assert_eq!(s.jitter().scaled(), 0);
    }

    #[test]
    fn restart_resets_transit_not_jitter() {
        let t0 = test_now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = StreamStats::new();
        let packets = [
            (1, 0, 0),
            (2, 160, 20),
            (3, 320, 50), // 10 ms late: d = 80
            (20000, 9_000_000, 60),
            (20001, 9_000_160, 80), // restart: only sets transit
            (20002, 9_000_320, 100),
        ];
        for (seq, ts, at) in packets {
            let buf = rtp(seq, ts, 9);
            s.record_rtp(&RtpHeader::parse(&buf).unwrap(), ms(at), 8000);
        }
        assert_eq!(s.sequence().restarts(), 1);
        assert_eq!(s.jitter().scaled(), 80 - ((80 + 8) >> 4));
    }
}
