//! Receive quality of one leg, from the relay's own statistics: the loss ratio (sequence gaps, RFC
//! 3550 App. A.3), the interarrival jitter as a duration (App. A.8), and an estimated MOS.
//!
//! The MOS is the simplified E-model (ITU-T G.107 R-factor mapped to MOS) that rtpengine and
//! PingPlotter use: an effective latency of `rtt + 2 × jitter + 10 ms`, an R-factor of `93.2 −
//! latency / 40` (or `93.2 − (latency − 120) / 10` from 160 ms), minus `2.5 ×` the loss in percent,
//! then `MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60) (100 − R)`, clamped to 1.0..=4.5 here.
//!
//! The SBC sees one direction of each leg and usually no RTCP round trip (many carriers send no
//! RTCP), so [`LegQuality::estimate`] computes the listening-quality variant: the round trip is
//! taken as zero, as rtpengine's `mos = LQ` does. A caller that knows the round trip passes it to
//! [`mos_milli`].
//!
//! Pure: plain arithmetic on copies of the counters, no clock, no allocation.

use core::time::Duration;

/// Lowest and highest MOS the estimate gives, in thousandths.
const MOS_MIN: u32 = 1000;
const MOS_MAX: u32 = 4500;

/// The receive quality of one leg over its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegQuality {
    /// Packets lost per million expected (0 when nothing was lost, or duplicates outnumbered
    /// losses).
    pub loss_ppm: u32,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// Estimated MOS in thousandths (1000..=4500), listening quality (no round trip).
    pub mos_milli: u32,
}

impl LegQuality {
    /// The quality of a leg that received `received` RTP packets with `lost` lost (cumulative,
    /// negative with duplicates) and a jitter of `jitter_units` timestamp units at `clock_rate`
    /// Hz. `None` when the leg received nothing or the clock rate is unknown (the jitter has no
    /// duration then).
    pub fn estimate(received: u64, lost: i64, jitter_units: u32, clock_rate: u32) -> Option<Self> {
        if received == 0 || clock_rate == 0 {
            return None;
        }
        let lost = u64::try_from(lost).unwrap_or(0);
        let expected = received.saturating_add(lost);
        let loss_ppm = u32::try_from(lost.saturating_mul(1_000_000) / expected).unwrap_or(u32::MAX);
        let jitter_us = u64::from(jitter_units).saturating_mul(1_000_000) / u64::from(clock_rate);
        let jitter = Duration::from_micros(jitter_us);
        Some(Self {
            loss_ppm,
            jitter,
            mos_milli: mos_milli(loss_ppm, jitter, Duration::ZERO),
        })
    }
}

/// The estimated MOS, in thousandths (1000..=4500), for a loss of `loss_ppm` per million, a jitter
/// of `jitter` and a round trip of `rtt` (zero for the listening quality).
pub fn mos_milli(loss_ppm: u32, jitter: Duration, rtt: Duration) -> u32 {
    let latency_ms = rtt.as_secs_f64() * 1000.0 + 2.0 * jitter.as_secs_f64() * 1000.0 + 10.0;
    let mut r = if latency_ms < 160.0 {
        93.2 - latency_ms / 40.0
    } else {
        93.2 - (latency_ms - 120.0) / 10.0
    };
    let loss_percent = f64::from(loss_ppm) / 10_000.0;
    r -= 2.5 * loss_percent;
    if r <= 0.0 {
        return MOS_MIN;
    }
    let mos = 1.0 + 0.035 * r + 0.000_007 * r * (r - 60.0) * (100.0 - r);
    // In range after the clamp, so the cast neither truncates nor wraps.
    let milli = (mos * 1000.0)
        .round()
        .clamp(f64::from(MOS_MIN), f64::from(MOS_MAX));
    milli as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_leg_is_near_the_top_of_the_scale() {
        // R = 93.2 - 10/40 = 92.95: MOS 4.40.
        let q = LegQuality::estimate(1000, 0, 0, 8000).unwrap();
        assert_eq!(q.loss_ppm, 0);
        assert_eq!(q.jitter, Duration::ZERO);
        assert_eq!(q.mos_milli, 4404);
    }

    #[test]
    fn loss_and_jitter_lower_the_score() {
        // 1 % loss: R = 92.95 - 2.5 = 90.45 → 4.35.
        assert_eq!(mos_milli(10_000, Duration::ZERO, Duration::ZERO), 4350);
        // 100 ms of jitter: latency 210 ms, R = 93.2 - 9 = 84.2 → 4.17.
        assert_eq!(
            mos_milli(0, Duration::from_millis(100), Duration::ZERO),
            4172
        );
        // 500 ms of round trip: latency 510, R = 54.2 → 2.80.
        assert_eq!(
            mos_milli(0, Duration::ZERO, Duration::from_millis(500)),
            2796
        );
        // A lost cause stays at the floor.
        assert_eq!(mos_milli(1_000_000, Duration::ZERO, Duration::ZERO), 1000);
        assert_eq!(mos_milli(0, Duration::from_secs(5), Duration::ZERO), 1000);
    }

    #[test]
    fn estimate_from_relay_counters() {
        // 990 received, 10 lost: 1 % loss. 160 units of jitter at 8 kHz: 20 ms.
        let q = LegQuality::estimate(990, 10, 160, 8000).unwrap();
        assert_eq!(q.loss_ppm, 10_000);
        assert_eq!(q.jitter, Duration::from_millis(20));
        // Latency 50 ms: R = 93.2 - 1.25 - 2.5 = 89.45.
        assert_eq!(
            q.mos_milli,
            mos_milli(10_000, Duration::from_millis(20), Duration::ZERO)
        );
        assert!((4300..4340).contains(&q.mos_milli), "{}", q.mos_milli);
        // Duplicates outnumbering losses count as no loss.
        assert_eq!(LegQuality::estimate(100, -3, 0, 8000).unwrap().loss_ppm, 0);
        // Nothing received, or no clock: no estimate.
        assert_eq!(LegQuality::estimate(0, 0, 0, 8000), None);
        assert_eq!(LegQuality::estimate(10, 0, 0, 0), None);
        // Extremes do not overflow.
        let q = LegQuality::estimate(u64::MAX, i64::MAX, u32::MAX, 1).unwrap();
        assert_eq!(q.mos_milli, 1000);
    }
}
