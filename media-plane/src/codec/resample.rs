//! 16 kHz <-> 8 kHz for G.722 against a narrowband leg: a half-band FIR of 63 taps, Kaiser window
//! β = 6.8, designed for about 70 dB of stopband with its transition band 3.45-4.55 kHz (a 1.1 kHz
//! wide band centred on the 4 kHz half rate), so that the telephone band (300-3400 Hz) passes flat
//! and what is left above 4.55 kHz is attenuated by 70 dB before it can alias. Every other
//! coefficient of a half-band filter is zero except the centre (½), so the decimator costs 16
//! symmetric pairs per 8 kHz output and the interpolator 16 pairs per 8 kHz input (its odd-phase
//! outputs are the delayed input itself). Delay: 31 samples at 16 kHz (15.5 at 8 kHz), both ways.
//!
//! The coefficients are computed when a stage is built (f64, then Q16 integers); running the
//! filters is integer arithmetic over fixed arrays, no allocation.

/// Taps of the filter.
const TAPS: usize = 63;
/// Non-zero coefficients on each side of the centre (offsets 1, 3, .., 31).
const SIDE: usize = 16;
/// Kaiser window parameter.
const BETA: f64 = 6.8;
/// Fixed-point scale of the coefficients.
const ONE: f64 = 65536.0;

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    for k in 1..40 {
        let t = x / (2.0 * f64::from(k));
        term *= t * t;
        sum += term;
    }
    sum
}

/// The off-centre coefficients h(1), h(3), .., h(31) in Q16, normalised so that the filter has
/// unit gain at DC (each side sums to ¼, the centre being ½).
fn half_band() -> [i32; SIDE] {
    let half = (TAPS / 2) as f64;
    let mut h = [0f64; SIDE];
    for (i, c) in h.iter_mut().enumerate() {
        let k = (2 * i + 1) as f64;
        let sinc = (core::f64::consts::FRAC_PI_2 * k).sin() / (core::f64::consts::PI * k);
        let r = k / half;
        let w = bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(BETA);
        *c = sinc * w;
    }
    let sum: f64 = h.iter().sum();
    let mut q = [0i32; SIDE];
    for (o, c) in q.iter_mut().zip(h) {
        *o = (c * 0.25 / sum * ONE).round() as i32;
    }
    q
}

/// The last `N` samples, contiguous (each sample written twice into a buffer of 2N).
#[derive(Clone, Copy, Debug)]
struct Window<const N: usize, const N2: usize> {
    buf: [i32; N2],
    pos: usize,
}

impl<const N: usize, const N2: usize> Window<N, N2> {
    const fn new() -> Self {
        Self {
            buf: [0; N2],
            pos: 0,
        }
    }

    fn push(&mut self, x: i32) {
        self.pos = if self.pos + 1 >= N { 0 } else { self.pos + 1 };
        if let Some(v) = self.buf.get_mut(self.pos) {
            *v = x;
        }
        if let Some(v) = self.buf.get_mut(self.pos + N) {
            *v = x;
        }
    }

    /// Oldest first, newest last.
    fn samples(&self) -> &[i32] {
        self.buf.get(self.pos + 1..self.pos + 1 + N).unwrap_or(&[])
    }
}

fn to_i16(acc: i64) -> i16 {
    let v = (acc + (1 << 15)) >> 16;
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// 16 kHz -> 8 kHz.
#[derive(Clone, Copy, Debug)]
pub struct Decimator {
    h: [i32; SIDE],
    w: Window<TAPS, { 2 * TAPS }>,
}

impl Default for Decimator {
    fn default() -> Self {
        Self::new()
    }
}

impl Decimator {
    /// A decimator with empty history.
    pub fn new() -> Self {
        Self {
            h: half_band(),
            w: Window::new(),
        }
    }

    /// Filter `input` (16 kHz, an odd last sample ignored) into `out` (8 kHz); returns the
    /// samples written.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (pair, o) in input.chunks_exact(2).zip(out.iter_mut()) {
            let [x0, x1] = pair else { continue };
            // The output is centred on an odd sample (31 before the pair's first): with the
            // interpolator's 31, a round trip is delayed by a whole 31 samples at 8 kHz.
            self.w.push(i32::from(*x0));
            let s = self.w.samples();
            let mut acc = 0i64;
            if let (Some(&c), Some(lo), Some(hi)) = (s.get(31), s.get(..31), s.get(32..)) {
                acc = i64::from(c) << 15;
                // Taps 31 ∓ k for odd k: lo from the far end, hi from the near end.
                for (i, &h) in self.h.iter().enumerate() {
                    let k = 2 * i + 1;
                    let a = lo.get(31 - k).copied().unwrap_or(0);
                    let b = hi.get(k - 1).copied().unwrap_or(0);
                    acc += i64::from(h) * i64::from(a + b);
                }
            }
            *o = to_i16(acc);
            self.w.push(i32::from(*x1));
            n += 1;
        }
        n
    }
}

/// 8 kHz -> 16 kHz.
#[derive(Clone, Copy, Debug)]
pub struct Interpolator {
    h: [i32; SIDE],
    w: Window<32, 64>,
}

impl Default for Interpolator {
    fn default() -> Self {
        Self::new()
    }
}

impl Interpolator {
    /// An interpolator with empty history.
    pub fn new() -> Self {
        Self {
            h: half_band(),
            w: Window::new(),
        }
    }

    /// Filter `input` (8 kHz) into `out` (16 kHz, two samples per input sample); returns the
    /// samples written.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (&x, pair) in input.iter().zip(out.chunks_exact_mut(2)) {
            let [y0, y1] = pair else { continue };
            self.w.push(i32::from(x));
            let v = self.w.samples();
            // Even phase: 2·h(31 − 2i) on v[31 − i], paired with v[i] (same coefficient).
            let mut acc = 0i64;
            for (i, &h) in self.h.iter().rev().enumerate() {
                let a = v.get(31 - i).copied().unwrap_or(0);
                let b = v.get(i).copied().unwrap_or(0);
                acc += 2 * i64::from(h) * i64::from(a + b);
            }
            *y0 = to_i16(acc);
            // Odd phase: the centre tap (½, doubled) on v[31 − 15].
            *y1 = v.get(16).map_or(0, |&s| s as i16);
            n += 2;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::measure::{goertzel, level_db, sine};
    use core::f64::consts::TAU;

    fn sine16k(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (TAU * freq * i as f64 / 16000.0).sin()) as i16)
            .collect()
    }

    fn decimate(x: &[i16]) -> Vec<i16> {
        let mut d = Decimator::new();
        let mut out = vec![0i16; x.len() / 2];
        let n = d.process(x, &mut out);
        out.truncate(n);
        out
    }

    /// Passband flat within 0.2 dB from 300 to 3400 Hz; above 4.6 kHz at least 60 dB down (no
    /// alias in the narrow band).
    #[test]
    fn decimator_passes_the_telephone_band_and_stops_the_upper_half() {
        for f in [300.0, 1004.0, 2000.0, 3000.0, 3400.0] {
            let y = decimate(&sine16k(f, 10000.0, 16000));
            let reference = sine(f, 10000.0, 0, 4000);
            let level = level_db(&reference, &y[1000..5000]);
            assert!(level.abs() < 0.2, "{f} Hz: level {level:.2} dB");
        }
        for f in [4600.0, 5500.0, 7000.0] {
            let y = decimate(&sine16k(f, 10000.0, 16000));
            let alias = 8000.0 - f;
            let p = goertzel(&y[1000..5000], alias);
            let reference = goertzel(&sine(alias, 10000.0, 0, 4000), alias);
            let db = 10.0 * (p / reference).log10();
            assert!(db < -60.0, "{f} Hz aliases to {alias} at {db:.1} dB");
        }
    }

    /// A 1004 Hz tone up and back down keeps its level (within 0.1 dB) and shape (SNR ≥ 50 dB
    /// against the input delayed by the 31 samples of the two filters at 8 kHz).
    #[test]
    fn up_and_down_is_transparent_in_band() {
        let x = sine(1004.0, 10000.0, 0, 8000);
        let mut up = Interpolator::new();
        let mut wide = vec![0i16; 16000];
        assert_eq!(up.process(&x, &mut wide), 16000);
        let y = decimate(&wide);
        let (a, b) = (&x[1000..7000], &y[1031..7031]);
        let level = level_db(a, b);
        assert!(level.abs() < 0.1, "level {level:.2} dB");
        let snr = crate::codec::measure::snr_db(a, b);
        assert!(snr >= 50.0, "SNR {snr:.1} dB");
    }
}
