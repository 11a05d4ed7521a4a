//! What a worker observes beyond its flat counters, for the Prometheus exposition
//! ([`crate::metrics`]): fixed-bucket histograms of setup delay, call duration and per-leg receive
//! quality (loss, jitter, estimated MOS) recorded when a call ends; SIP requests and responses by
//! method and class; the media drops by reason; the event loop's busy time and turn length.
//!
//! Single writer, like the counters of [`crate::stats`]: plain `u64` arrays owned by the worker,
//! indexed by small enums (no label lookup, no lock, no allocation), copied into the worker's
//! snapshot once a second and summed on the control thread by [`Observed::merge`]. The bucket
//! bounds are constants here, so every worker's histograms add up bucket by bucket.

use std::fmt;
use std::time::{Duration, Instant};

use media_plane::quality::LegQuality;
use sbc_core::b2bua::{CallRecord, Outcome};
use sbc_sip::{Message, Method};

/// Slots of a histogram: up to `SLOTS - 1` finite bounds, then `+Inf`.
const SLOTS: usize = 16;

/// Bucket counts (not cumulative: slot `i` counts values in `(bounds[i-1], bounds[i]]`, the slot
/// after the last bound counts the rest) and the sum of the values, in the histogram's raw unit
/// (microseconds, parts per million, thousandths of MOS: see its [`Buckets`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    pub(crate) counts: [u64; SLOTS],
    pub(crate) sum: u64,
}

impl Histogram {
    /// Count `value` (raw unit) in the bucket `bounds` give it.
    pub(crate) fn observe(&mut self, bounds: &Buckets, value: u64) {
        let i = bounds
            .0
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.0.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum = self.sum.saturating_add(value);
    }

    /// Values observed.
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, c| a.saturating_add(*c))
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a = a.saturating_add(b);
        }
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// The finite upper bounds of a histogram's buckets, ascending, in its raw unit (at most 15).
pub(crate) struct Buckets(pub(crate) &'static [u64]);

const MS: u64 = 1000;
const S: u64 = 1_000_000;

/// INVITE to the first provisional response other than 100 (µs).
pub(crate) const SETUP_RINGING: Buckets = Buckets(&[
    50 * MS,
    100 * MS,
    200 * MS,
    300 * MS,
    500 * MS,
    750 * MS,
    S,
    1500 * MS,
    2 * S,
    3 * S,
    5 * S,
    10 * S,
]);
/// INVITE to the 2xx (µs): ringing included.
pub(crate) const SETUP_ANSWER: Buckets = Buckets(&[
    500 * MS,
    S,
    2 * S,
    3 * S,
    5 * S,
    7500 * MS,
    10 * S,
    15 * S,
    20 * S,
    30 * S,
    45 * S,
    60 * S,
    120 * S,
]);
/// Answer to end of an answered call (µs).
pub(crate) const DURATION: Buckets = Buckets(&[
    S,
    5 * S,
    10 * S,
    30 * S,
    60 * S,
    120 * S,
    300 * S,
    600 * S,
    1200 * S,
    1800 * S,
    3600 * S,
    7200 * S,
]);
/// Estimated MOS (thousandths).
pub(crate) const MOS: Buckets = Buckets(&[
    1500, 2000, 2500, 3000, 3500, 3800, 4000, 4200, 4300, 4400, 4500,
]);
/// Loss ratio (parts per million).
pub(crate) const LOSS: Buckets = Buckets(&[
    0, 1000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
]);
/// Interarrival jitter (µs).
pub(crate) const JITTER: Buckets = Buckets(&[
    MS,
    2 * MS,
    5 * MS,
    10 * MS,
    20 * MS,
    30 * MS,
    50 * MS,
    100 * MS,
    200 * MS,
    500 * MS,
]);
/// One turn of the event loop, from waking to sleeping again (µs).
pub(crate) const LOOP_TURN: Buckets = Buckets(&[
    10,
    50,
    100,
    250,
    500,
    MS,
    2500,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
]);

/// How a call ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// Answered (whatever ended it later).
    Answered,
    /// The caller cancelled before the answer.
    Cancelled,
    /// 486 or 600 to the caller.
    Busy,
    /// 408 or 480 to the caller: nobody answered.
    NoAnswer,
    /// Another 4xx or 6xx to the caller.
    Rejected,
    /// A 5xx (or anything else) to the caller: the SBC or the far side failed.
    Failed,
}

impl CallOutcome {
    /// Every outcome, in counter order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Answered,
        Self::Cancelled,
        Self::Busy,
        Self::NoAnswer,
        Self::Rejected,
        Self::Failed,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Cancelled => "cancelled",
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// The outcome's name in the exit log.
    fn ended_name(self) -> &'static str {
        match self {
            Self::Answered => "ended_answered",
            Self::Cancelled => "ended_cancelled",
            Self::Busy => "ended_busy",
            Self::NoAnswer => "ended_no_answer",
            Self::Rejected => "ended_rejected",
            Self::Failed => "ended_failed",
        }
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Answered => Self::Answered,
            Outcome::Cancelled => Self::Cancelled,
            Outcome::Failed(486 | 600) => Self::Busy,
            Outcome::Failed(408 | 480) => Self::NoAnswer,
            Outcome::Failed(400..=499 | 600..=699) => Self::Rejected,
            Outcome::Failed(_) => Self::Failed,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Answered => 0,
            Self::Cancelled => 1,
            Self::Busy => 2,
            Self::NoAnswer => 3,
            Self::Rejected => 4,
            Self::Failed => 5,
        }
    }
}

/// The calls a worker saw end: by outcome, their setup delays and durations, and the receive
/// quality of each leg (index 0: the caller's leg A, 1: the callee's leg B).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallStats {
    pub(crate) outcomes: [u64; 6],
    pub(crate) setup_ringing: Histogram,
    pub(crate) setup_answer: Histogram,
    pub(crate) duration: Histogram,
    pub(crate) mos: [Histogram; 2],
    pub(crate) loss: [Histogram; 2],
    pub(crate) jitter: [Histogram; 2],
}

/// Microseconds from `from` to `to` (zero if `to` is earlier).
fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

impl CallStats {
    /// Calls ended with `outcome`.
    pub(crate) fn ended(&self, outcome: CallOutcome) -> u64 {
        self.outcomes.get(outcome.index()).copied().unwrap_or(0)
    }

    /// Record a call that ended, from its record: once per call, on its `Ended` event.
    pub(crate) fn call_ended(&mut self, r: &CallRecord) {
        if let Some(c) = self.outcomes.get_mut(CallOutcome::of(r.outcome).index()) {
            *c += 1;
        }
        if let Some(t) = r.ringing {
            self.setup_ringing
                .observe(&SETUP_RINGING, micros(r.invited, t));
        }
        if let Some(t) = r.answered {
            self.setup_answer
                .observe(&SETUP_ANSWER, micros(r.invited, t));
            self.duration.observe(&DURATION, micros(t, r.ended));
        }
        for s in &r.media {
            for (i, leg) in [&s.a, &s.b].into_iter().enumerate() {
                let Some(q) = LegQuality::estimate(leg.packets, leg.lost, leg.jitter, s.clock_rate)
                else {
                    continue;
                };
                let jitter = u64::try_from(q.jitter.as_micros()).unwrap_or(u64::MAX);
                if let (Some(m), Some(l), Some(j)) = (
                    self.mos.get_mut(i),
                    self.loss.get_mut(i),
                    self.jitter.get_mut(i),
                ) {
                    m.observe(&MOS, u64::from(q.mos_milli));
                    l.observe(&LOSS, u64::from(q.loss_ppm));
                    j.observe(&JITTER, jitter);
                }
            }
        }
    }

    fn merge(&mut self, o: &Self) {
        for (a, b) in self.outcomes.iter_mut().zip(o.outcomes) {
            *a = a.saturating_add(b);
        }
        self.setup_ringing.merge(&o.setup_ringing);
        self.setup_answer.merge(&o.setup_answer);
        self.duration.merge(&o.duration);
        for i in 0..2 {
            for (a, b) in [
                (&mut self.mos, &o.mos),
                (&mut self.loss, &o.loss),
                (&mut self.jitter, &o.jitter),
            ] {
                if let (Some(a), Some(b)) = (a.get_mut(i), b.get(i)) {
                    a.merge(b);
                }
            }
        }
    }
}

/// The methods the `method` label names; any other is `other`.
#[rustfmt::skip]
pub(crate) const METHODS: [&str; 15] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO", "REFER",
    "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH", "other",
];
/// The response classes the `class` label names.
pub(crate) const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

fn method_index(m: &Method) -> usize {
    match m {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Options => 4,
        Method::Register => 5,
        Method::Prack => 6,
        Method::Update => 7,
        Method::Info => 8,
        Method::Refer => 9,
        Method::Notify => 10,
        Method::Subscribe => 11,
        Method::Message => 12,
        Method::Publish => 13,
        Method::Other(_) => 14,
    }
}

/// The class index (0 for 1xx .. 5 for 6xx) of a status code, `None` outside 100..=699.
fn class_index(code: u16) -> Option<usize> {
    match code {
        100..=699 => Some(usize::from(code / 100 - 1)),
        _ => None,
    }
}

/// SIP messages by method and class, both ways. Received messages are counted once parsed (before
/// the guard's verdict on them); sent ones as they leave the outbox, from their first line, so a
/// sent response is counted by class only (its method would need its CSeq read again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SipTraffic {
    pub(crate) requests_received: [u64; 15],
    /// By method (of the CSeq) and class.
    pub(crate) responses_received: [[u64; 6]; 15],
    pub(crate) requests_sent: [u64; 15],
    pub(crate) responses_sent: [u64; 6],
}

impl SipTraffic {
    /// A parsed message received.
    pub(crate) fn received(&mut self, msg: &Message) {
        if let Some(m) = msg.method() {
            if let Some(c) = self.requests_received.get_mut(method_index(m)) {
                *c += 1;
            }
        } else if let Some(class) = msg.status().and_then(class_index) {
            let m = method_index(&msg.cseq().method);
            if let Some(c) = self
                .responses_received
                .get_mut(m)
                .and_then(|r| r.get_mut(class))
            {
                *c += 1;
            }
        }
    }

    /// A message about to be sent, as written.
    pub(crate) fn sent(&mut self, bytes: &[u8]) {
        if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
            let class = rest
                .first()
                .and_then(|d| d.checked_sub(b'1'))
                .map(usize::from);
            if let Some(c) = class.and_then(|i| self.responses_sent.get_mut(i)) {
                *c += 1;
            }
            return;
        }
        let token = bytes.split(|b| *b == b' ').next().unwrap_or_default();
        let i = match token {
            b"INVITE" => 0,
            b"ACK" => 1,
            b"BYE" => 2,
            b"CANCEL" => 3,
            b"OPTIONS" => 4,
            b"REGISTER" => 5,
            b"PRACK" => 6,
            b"UPDATE" => 7,
            b"INFO" => 8,
            b"REFER" => 9,
            b"NOTIFY" => 10,
            b"SUBSCRIBE" => 11,
            b"MESSAGE" => 12,
            b"PUBLISH" => 13,
            _ => 14,
        };
        if let Some(c) = self.requests_sent.get_mut(i) {
            *c += 1;
        }
    }

    fn merge(&mut self, o: &Self) {
        let add = |a: &mut [u64], b: &[u64]| {
            for (a, b) in a.iter_mut().zip(b) {
                *a = a.saturating_add(*b);
            }
        };
        add(&mut self.requests_received, &o.requests_received);
        add(&mut self.requests_sent, &o.requests_sent);
        add(&mut self.responses_sent, &o.responses_sent);
        for (a, b) in self
            .responses_received
            .iter_mut()
            .zip(&o.responses_received)
        {
            add(a, b);
        }
    }
}

/// The event loop's time: busy (handling what woke it) and idle (waiting), the length of each
/// turn, and the load over the last publishing period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LoopStats {
    pub(crate) busy_us: u64,
    pub(crate) idle_us: u64,
    pub(crate) turns: Histogram,
    /// Busy time over the last period, in thousandths (a gauge: its sum over workers means
    /// nothing, it is shown per worker).
    pub(crate) load_permille: u64,
}

impl LoopStats {
    fn merge(&mut self, o: &Self) {
        self.busy_us = self.busy_us.saturating_add(o.busy_us);
        self.idle_us = self.idle_us.saturating_add(o.idle_us);
        self.turns.merge(&o.turns);
        self.load_permille = self.load_permille.saturating_add(o.load_permille);
    }
}

/// Times a worker's loop from the two instants its drivers read anyway: when a turn starts (the
/// time read after the wait, passed to the worker's tick) and when it is about to wait again (the
/// time passed to the worker's `sleep_ms`). No clock read of its own.
#[derive(Debug, Default)]
pub(crate) struct LoopClock {
    turn_start: Option<Instant>,
    wait_start: Option<Instant>,
    stats: LoopStats,
    /// Busy and idle time at the last [`Self::roll`].
    last: (u64, u64),
}

impl LoopClock {
    /// A turn started at `now` (the loop woke up).
    pub(crate) fn woke(&mut self, now: Instant) {
        if self.turn_start.is_some() {
            return;
        }
        if let Some(w) = self.wait_start.take() {
            self.stats.idle_us = self.stats.idle_us.saturating_add(micros(w, now));
        }
        self.turn_start = Some(now);
    }

    /// The loop is about to wait, at `now`.
    pub(crate) fn waits(&mut self, now: Instant) {
        if let Some(t) = self.turn_start.take() {
            let busy = micros(t, now);
            self.stats.busy_us = self.stats.busy_us.saturating_add(busy);
            self.stats.turns.observe(&LOOP_TURN, busy);
        }
        self.wait_start = Some(now);
    }

    /// End a publishing period: the load is the busy share of the time since the last one.
    pub(crate) fn roll(&mut self) {
        let (busy, idle) = (self.stats.busy_us, self.stats.idle_us);
        let db = busy.saturating_sub(self.last.0);
        let total = db.saturating_add(idle.saturating_sub(self.last.1));
        self.stats.load_permille = db.saturating_mul(1000).checked_div(total).unwrap_or(0);
        self.last = (busy, idle);
    }

    /// The numbers so far.
    pub(crate) fn stats(&self) -> LoopStats {
        self.stats
    }
}

/// Everything of this module one worker publishes with its counters.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) calls: CallStats,
    pub(crate) sip: SipTraffic,
    /// Media datagrams dropped, by [`media_plane::DropReason::ALL`] order.
    pub(crate) media_dropped: [u64; media_plane::DropReason::COUNT],
    pub(crate) work: LoopStats,
}

impl Observed {
    /// Add `other`'s counts (saturating).
    pub(crate) fn merge(&mut self, other: &Self) {
        self.calls.merge(&other.calls);
        self.sip.merge(&other.sip);
        for (a, b) in self.media_dropped.iter_mut().zip(other.media_dropped) {
            *a = a.saturating_add(b);
        }
        self.work.merge(&other.work);
    }
}

/// Short: the exit log prints every layer, and histograms would drown it. The names are unique
/// among the layers' fields (the log is read as `name: value`).
impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Observed");
        for o in CallOutcome::ALL {
            d.field(o.ended_name(), &self.calls.ended(o));
        }
        let requests: u64 = self.sip.requests_received.iter().sum();
        d.field("requests_received", &requests)
            .field(
                "mos_observed",
                &self.calls.mos.iter().map(Histogram::count).sum::<u64>(),
            )
            .field("caller_loss_ppm_sum", &self.calls.loss[0].sum)
            .field("callee_loss_ppm_sum", &self.calls.loss[1].sum)
            .field("loop_busy", &Duration::from_micros(self.work.busy_us))
            .field("loop_idle", &Duration::from_micros(self.work.idle_us))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_bounds_inclusive() {
        let b = Buckets(&[10, 20]);
        let mut h = Histogram::default();
        for v in [0, 10, 11, 20, 21, 1000] {
            h.observe(&b, v);
        }
        assert_eq!(&h.counts[..3], &[2, 2, 2]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum, 1062);
        let mut twice = h;
        twice.merge(&h);
        assert_eq!(twice.count(), 12);
        assert_eq!(twice.sum, 2124);
    }

    #[test]
    fn every_bucket_list_fits_and_ascends() {
        for b in [
            &SETUP_RINGING,
            &SETUP_ANSWER,
            &DURATION,
            &MOS,
            &LOSS,
            &JITTER,
            &LOOP_TURN,
        ] {
            assert!(b.0.len() < SLOTS);
            assert!(b.0.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn outcomes_by_final_status() {
        assert_eq!(CallOutcome::of(Outcome::Answered), CallOutcome::Answered);
        assert_eq!(CallOutcome::of(Outcome::Cancelled), CallOutcome::Cancelled);
        assert_eq!(CallOutcome::of(Outcome::Failed(486)), CallOutcome::Busy);
        assert_eq!(CallOutcome::of(Outcome::Failed(600)), CallOutcome::Busy);
        assert_eq!(CallOutcome::of(Outcome::Failed(408)), CallOutcome::NoAnswer);
        assert_eq!(CallOutcome::of(Outcome::Failed(404)), CallOutcome::Rejected);
        assert_eq!(CallOutcome::of(Outcome::Failed(603)), CallOutcome::Rejected);
        assert_eq!(CallOutcome::of(Outcome::Failed(503)), CallOutcome::Failed);
        for (i, o) in CallOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn sip_traffic_by_method_and_class() {
        let mut t = SipTraffic::default();
        t.sent(b"SIP/2.0 180 Ringing\r\n");
        t.sent(b"SIP/2.0 486 Busy Here\r\n");
        t.sent(b"INVITE sip:a@b SIP/2.0\r\n");
        t.sent(b"FOO sip:a@b SIP/2.0\r\n");
        t.sent(b"SIP/2.0 x\r\n");
        assert_eq!(t.responses_sent, [1, 0, 0, 1, 0, 0]);
        assert_eq!(t.requests_sent[0], 1);
        assert_eq!(t.requests_sent[14], 1);
        let resp = Message::parse(bytes::Bytes::from_static(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
              To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        t.received(&resp);
        assert_eq!(t.responses_received[2][1], 1);
        for (i, m) in METHODS.iter().enumerate().take(14) {
            let m = Method::from_token(m.as_bytes()).unwrap();
            assert_eq!(method_index(&m), i);
        }
        assert_eq!(class_index(99), None);
        assert_eq!(class_index(700), None);
        assert_eq!(class_index(699), Some(5));
    }

    #[test]
    fn loop_clock_load() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = LoopClock::default();
        c.woke(t0);
        c.waits(t0 + ms(30));
        c.woke(t0 + ms(100));
        // A second call in the same turn changes nothing.
        c.woke(t0 + ms(110));
        c.waits(t0 + ms(110));
        c.roll();
        let s = c.stats();
        assert_eq!((s.busy_us, s.idle_us), (40_000, 70_000));
        assert_eq!(s.load_permille, 363);
        assert_eq!(s.turns.count(), 2);
        // A quiet period has no load.
        c.woke(t0 + ms(1110));
        c.waits(t0 + ms(1110));
        c.roll();
        assert_eq!(c.stats().load_permille, 0);
    }
}
