//! Reference signals and the measures the codec tests judge a stage's output by: a sine at 8 kHz,
//! the power of one frequency (Goertzel), the strongest frequency, the level and the SNR against
//! the reference. Off the packet path (they allocate and use f64); shared by the unit tests and the
//! end-to-end tests that decode what the SBC sent.

use core::f64::consts::TAU;

/// `n` samples at 8 kHz of a sine of `freq` Hz and `amp` peak, from sample `start`.
pub fn sine(freq: f64, amp: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start.saturating_add(n))
        .map(|i| (amp * (TAU * freq * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// Power of `freq` in `x` (Goertzel), normalised so that a lone tone at `freq` gives `x`'s
/// energy per sample times two over its length (the block energy, for a sine).
pub fn goertzel(x: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (TAU * freq / 8000.0).cos();
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for &s in x {
        let n = f64::from(s) + k * a - b;
        b = a;
        a = n;
    }
    (a * a + b * b - k * a * b) * 2.0 / x.len().max(1) as f64
}

/// The strongest frequency of `x` in 300-3400 Hz, in 2 Hz steps, over its first 50 ms (a main
/// lobe of ±20 Hz, so the grid cannot miss it).
pub fn peak_frequency(x: &[i16]) -> f64 {
    let x = x.get(..400).unwrap_or(x);
    (150..=1700)
        .map(|i| f64::from(i) * 2.0)
        .max_by(|a, b| goertzel(x, *a).total_cmp(&goertzel(x, *b)))
        .unwrap_or(0.0)
}

/// Energy (sum of squares).
pub fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum()
}

/// Level of `got` against `reference`, in dB.
pub fn level_db(reference: &[i16], got: &[i16]) -> f64 {
    10.0 * (energy(got) / energy(reference).max(1e-9)).log10()
}

/// Signal-to-noise ratio of `got` against `reference`, sample by sample, in dB.
pub fn snr_db(reference: &[i16], got: &[i16]) -> f64 {
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(&r, &g)| (f64::from(r) - f64::from(g)).powi(2))
        .sum();
    10.0 * (energy(reference) / noise.max(1e-9)).log10()
}
