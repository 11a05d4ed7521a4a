//! G.722 (ITU-T G.722, 09/2012): 7 kHz wideband audio in 64 kbit/s, sub-band ADPCM, mode 1.
//!
//! 16 kHz linear PCM is split by the 24-tap quadrature mirror filter (QMF) into a lower and a
//! higher band at 8 kHz each; the lower band is coded with 6 bits of adaptive differential PCM,
//! the higher with 2, one octet per pair of 16 kHz samples (higher-band bits in the two most
//! significant bits, RFC 3551 §4.5.2). Both bands use the recommendation's adaptive quantiser
//! (log-domain scale factor with leakage) and its predictor of two poles and six zeros, updated
//! with the sign-sign algorithms of the recommendation's block 4, all in its 16-bit fixed-point
//! arithmetic, so that the code is bit-exact with other implementations of mode 1. The decoder
//! reconstructs the lower band with the 6-bit inverse quantiser (mode 1) and adapts with the 4-bit
//! one, as the encoder does.
//!
//! The RTP clock of G.722 is 8000 Hz although it is sampled at 16 kHz (RFC 3551 §4.5.2): a 20 ms
//! packet is 160 octets, stamped 160 apart, and carries 320 samples.
//!
//! Everything is fixed-size state; encoding and decoding allocate nothing.

/// Lower band: the quantiser's decision levels (×det/4096), indices 1..=29.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// The highest decision level (Q6[29]).
const Q6_TOP: usize = 2919;
/// For each value v up to [`Q6_TOP`], how many of the decision levels Q6[1..=29] are <= v.
#[allow(clippy::indexing_slicing)] // compile time: v <= Q6_TOP and i < 30 by the loop bounds
const LEVELS_UP_TO: [u8; Q6_TOP + 1] = {
    let mut t = [0u8; Q6_TOP + 1];
    let mut v = 0;
    while v <= Q6_TOP {
        let mut n = 0;
        let mut i = 1;
        while i < 30 {
            if Q6[i] as usize <= v {
                n += 1;
            }
            i += 1;
        }
        t[v] = n;
        v += 1;
    }
    t
};

/// Lower band: the 6-bit code of a negative difference in interval `i`.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
/// Lower band: the 6-bit code of a positive difference in interval `i`.
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// Lower band: the 4-bit code's magnitude class (for the scale factor).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Lower band: the scale factor's log multipliers per magnitude class.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Lower band: the 4-bit inverse quantiser (used for adaptation, by encoder and decoder).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower band: the 6-bit inverse quantiser (the decoder's output in mode 1).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Both bands: the antilog table of the scale factor (2^(i/32) × 2048).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Higher band: the 2-bit code of a negative / positive difference, by interval (1 or 2).
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
/// Higher band: the 2-bit inverse quantiser.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Higher band: the code's magnitude class and the log multipliers per class.
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];

/// `table[i]`, 0 past its end (every index here is masked within the table).
fn at<T: Copy + Default>(table: &[T], i: usize) -> T {
    table.get(i).copied().unwrap_or_default()
}

/// (b·32640) >> 15, the zero coefficients' leakage, without the multiplication: b − ⌈b/256⌉.
#[inline(always)]
fn leak(b: i32) -> i32 {
    b - ((b + 255) >> 8)
}

/// Saturate to the 16-bit range of the recommendation's arithmetic.
fn sat(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// One band's adaptive quantiser scale and pole-zero predictor (the recommendation's blocks 3
/// and 4).
#[derive(Clone, Copy, Debug)]
struct Band {
    /// The predictor's estimate of the next sample (`s`).
    s: i32,
    /// The zero section's part of it (`sz`).
    sz: i32,
    /// Reconstructed signal, now and the two before (`r`).
    r: [i32; 3],
    /// Pole coefficients (`a1`, `a2`; index 0 unused).
    a: [i32; 3],
    /// Partially reconstructed signal, now and the two before (`p`).
    p: [i32; 3],
    /// Quantised differences, now and the six before (`d`).
    d: [i32; 7],
    /// Zero coefficients (`b1`..`b6`; index 0 unused).
    b: [i32; 7],
    /// Log scale factor (`nb`).
    nb: i32,
    /// Scale factor (`det`).
    det: i32,
}

impl Band {
    const fn new(det: i32) -> Self {
        Self {
            s: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det,
        }
    }

    /// The scale factor from the log scale factor: `nb` adapted by `w` with leakage, limited to
    /// `max`, and `det` = 2^(nb/2048) in the band's range (`shift` places the binary point).
    #[inline(always)]
    fn scale(&mut self, w: i32, max: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, max);
        let frac = at(&ILB, usize::try_from((self.nb >> 6) & 31).unwrap_or(0));
        let e = shift - (self.nb >> 11);
        let v = if e < 0 { frac << -e } else { frac >> e };
        self.det = v << 2;
    }

    /// Block 4: update the predictor with the quantised difference `dq` and compute the next
    /// estimate. (The delay lines are rebuilt whole from locals rather than shifted in place: an
    /// overlapping copy of a few words stalls on store forwarding, and this runs twice per
    /// octet.)
    #[inline(always)]
    fn predict(&mut self, dq: i32) {
        let sign = |x: i32| x >> 15;
        // Reconstructed and partially reconstructed signals.
        let r0 = sat(self.s + dq);
        let p0 = sat(self.sz + dq);
        let [_, r1, _] = self.r;
        let [_, p1, p2] = self.p;
        let [_, a1, a2] = self.a;

        // Second pole coefficient.
        let (s0, s1, s2) = (sign(p0), sign(p1), sign(p2));
        let a1x4 = sat(a1 << 2);
        let t = if s0 == s1 { -a1x4 } else { a1x4 }.min(32767);
        let mut n2 = (t >> 7) + if s0 == s2 { 128 } else { -128 };
        n2 += (a2 * 32512) >> 15;
        let n2 = n2.clamp(-12288, 12288);

        // First pole coefficient, kept within the stability triangle.
        let g = if s0 == s1 { 192 } else { -192 };
        let n1 = sat(g + ((a1 * 32640) >> 15));
        let lim = sat(15360 - n2);
        let n1 = n1.clamp(-lim, lim);

        // Zero coefficients, against the differences before this one.
        let step = if dq == 0 { 0 } else { 128 };
        let sd = sign(dq);
        let [_, d1, d2, d3, d4, d5, d6] = self.d;
        let [_, b1, b2, b3, b4, b5, b6] = self.b;
        // Eight lanes (two unused) of plain adds, shifts and selects, which vectorise;
        // b − ⌈b/256⌉ is (b·32640) >> 15 (see `leak_identity`).
        let old_d = [d1, d2, d3, d4, d5, d6, 0, 0];
        let mut nb = [b1, b2, b3, b4, b5, b6, 0, 0];
        for (b, &d) in nb.iter_mut().zip(&old_d) {
            let g = if sign(d) == sd { step } else { -step };
            *b = sat(g + leak(*b));
        }

        // Delays.
        let [c1, c2, c3, c4, c5, c6, ..] = nb;
        self.d = [0, dq, d1, d2, d3, d4, d5];
        self.b = [0, c1, c2, c3, c4, c5, c6];
        self.r = [0, r0, r1];
        self.p = [0, p0, p1];
        self.a = [0, n1, n2];

        // Pole and zero sections, and the estimate.
        let sp = sat(((n1 * sat(r0 + r0)) >> 15) + ((n2 * sat(r1 + r1)) >> 15));
        let zd = [dq, d1, d2, d3, d4, d5, 0, 0];
        let mut sz = 0;
        for (&b, &d) in nb.iter().zip(&zd) {
            sz += (b * sat(d + d)) >> 15;
        }
        self.sz = sat(sz);
        self.s = sat(sp + self.sz);
    }

    /// Lower band: adapt to the 6-bit code `code` (through its 4-bit truncation).
    #[inline(always)]
    fn adapt_low(&mut self, code: usize) {
        let c4 = code >> 2;
        let dq = (self.det * at(&QM4, c4 & 15)) >> 15;
        self.scale(at(&WL, at(&RL42, c4 & 15)), 18432, 8);
        self.predict(dq);
    }

    /// Higher band: adapt to the 2-bit code `code`.
    #[inline(always)]
    fn adapt_high(&mut self, code: usize) {
        let dq = (self.det * at(&QM2, code & 3)) >> 15;
        self.scale(at(&WH, at(&RH2, code & 3)), 22528, 10);
        self.predict(dq);
    }
}

/// The QMF's 24 coefficients (×2⁻¹³), symmetric: h(i) = h(23 − i).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// The QMF's history: the last 24 samples of the 16 kHz signal (transmit) or of the band sum and
/// difference (receive), newest last.
#[derive(Clone, Copy, Debug)]
struct Qmf([i32; 24]);

impl Qmf {
    const fn new() -> Self {
        Self([0; 24])
    }

    /// Push two samples; the filter's even- and odd-indexed partial sums.
    #[inline(always)]
    fn push(&mut self, first: i32, second: i32) -> (i32, i32) {
        self.0.copy_within(2.., 0);
        let [.., a, b] = &mut self.0;
        *a = first;
        *b = second;
        let (mut even, mut odd) = (0i32, 0i32);
        for (pair, h) in self.0.chunks_exact(2).zip(QMF.chunks_exact(2)) {
            if let ([x0, x1], [h0, h1]) = (pair, h) {
                even += x0 * h0;
                odd += x1 * h1;
            }
        }
        (even, odd)
    }
}

/// A G.722 encoder (64 kbit/s): 16 kHz samples in, one octet per two samples out.
#[derive(Clone, Copy, Debug)]
pub struct Encoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A new encoder in the recommendation's reset state.
    pub const fn new() -> Self {
        Self {
            qmf: Qmf::new(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encode `pcm` (16 kHz; an odd last sample is ignored) into `out`, one octet per pair of
    /// samples; returns the octets written (`min(pcm.len() / 2, out.len())`).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (pair, o) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            if let [a, b] = pair {
                *o = self.encode_pair(i32::from(*a), i32::from(*b));
                n += 1;
            }
        }
        n
    }

    /// Encode narrowband `pcm` (8 kHz) into `out`, one octet per sample, without the QMF: the
    /// sample (halved, the QMF's lower-band gain) is the lower band, the higher band is silent.
    /// For a telephone-band source this is what the QMF would give after an interpolation to
    /// 16 kHz, at a fraction of the cost. Returns the octets written.
    pub fn encode_narrow(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (&x, o) in pcm.iter().zip(out.iter_mut()) {
            *o = self.code_bands(i32::from(x) >> 1, 0);
            n += 1;
        }
        n
    }

    #[inline(always)]
    fn encode_pair(&mut self, x0: i32, x1: i32) -> u8 {
        let (even, odd) = self.qmf.push(x0, x1);
        let xl = (odd + even) >> 14;
        let xh = (odd - even) >> 14;
        self.code_bands(xl, xh)
    }

    /// Code one sample of each band.
    #[inline(always)]
    fn code_bands(&mut self, xl: i32, xh: i32) -> u8 {
        // Lower band: 6-bit quantiser.
        let el = sat(xl - self.low.s);
        let m = if el >= 0 { el } else { -(el + 1) };
        // The interval: the first decision level above the magnitude. A level q is at or below
        // it when (q·det) >> 12 <= m, that is q·det <= (m << 12) + 4095, that is
        // q <= ((m << 12) + 4095) / det (det >= 32): one division, then the count of levels up
        // to that quotient from a table, the same as the recommendation's scan.
        let top = ((m << 12) | 4095) / self.low.det.max(1);
        let top = usize::try_from(top).unwrap_or(0).min(Q6_TOP);
        let i = 1 + usize::from(at(&LEVELS_UP_TO, top));
        let il = if el < 0 { at(&ILN, i) } else { at(&ILP, i) };
        let il = usize::try_from(il).unwrap_or(0);
        self.low.adapt_low(il);

        // Higher band: 2-bit quantiser.
        let eh = sat(xh - self.high.s);
        let m = if eh >= 0 { eh } else { -(eh + 1) };
        let k = if m >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ih = if eh < 0 { at(&IHN, k) } else { at(&IHP, k) };
        let ih = usize::try_from(ih).unwrap_or(0);
        self.high.adapt_high(ih);

        ((ih << 6) | il) as u8
    }
}

/// A G.722 decoder (64 kbit/s): one octet in, two 16 kHz samples out.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A new decoder in the recommendation's reset state.
    pub const fn new() -> Self {
        Self {
            qmf: Qmf::new(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Decode `codes` into `out` (16 kHz, two samples per octet); returns the samples written
    /// (`min(2 × codes.len(), out.len())`, even).
    pub fn decode(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (&c, pair) in codes.iter().zip(out.chunks_exact_mut(2)) {
            if let [x, y] = pair {
                (*x, *y) = self.decode_octet(c);
                n += 2;
            }
        }
        n
    }

    /// Decode `codes` into narrowband `out` (8 kHz, one sample per octet) without the QMF: the
    /// lower band's reconstructed signal (doubled, the QMF's gain) is the 0-4 kHz audio at 8 kHz;
    /// the higher band is not decoded. Returns the samples written.
    pub fn decode_narrow(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (&c, o) in codes.iter().zip(out.iter_mut()) {
            let il = usize::from(c & 0x3f);
            let dl = (self.low.det * at(&QM6, il)) >> 15;
            let rl = (self.low.s + dl).clamp(-16384, 16383);
            self.low.adapt_low(il);
            *o = sat(rl << 1) as i16;
            n += 1;
        }
        n
    }

    #[inline(always)]
    fn decode_octet(&mut self, code: u8) -> (i16, i16) {
        let il = usize::from(code & 0x3f);
        let ih = usize::from(code >> 6);

        // Lower band: the 6-bit inverse quantiser for the output, the 4-bit one to adapt.
        let dl = (self.low.det * at(&QM6, il)) >> 15;
        let rl = (self.low.s + dl).clamp(-16384, 16383);
        self.low.adapt_low(il);

        // Higher band.
        let dh = (self.high.det * at(&QM2, ih)) >> 15;
        let rh = (self.high.s + dh).clamp(-16384, 16383);
        self.high.adapt_high(ih);

        let (even, odd) = self.qmf.push(rl + rh, rl - rh);
        let out = |v: i32| sat(v >> 11) as i16;
        (out(odd), out(even))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::measure::{level_db, snr_db};
    use core::f64::consts::TAU;

    fn sine16k(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (TAU * freq * i as f64 / 16000.0).sin()) as i16)
            .collect()
    }

    /// The strongest frequency of `x` (16 kHz) in 100-7000 Hz, 5 Hz steps.
    fn peak16k(x: &[i16]) -> f64 {
        let power = |f: f64| {
            let k = 2.0 * (TAU * f / 16000.0).cos();
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for &s in x {
                let n = f64::from(s) + k * a - b;
                b = a;
                a = n;
            }
            a * a + b * b - k * a * b
        };
        (20..=1400)
            .map(|i| f64::from(i) * 5.0)
            .max_by(|a, b| power(*a).total_cmp(&power(*b)))
            .unwrap_or(0.0)
    }

    /// Through the encoder and the decoder; the output lags the input by the two QMFs' 22
    /// samples.
    fn round_trip(x: &[i16]) -> Vec<i16> {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for frame in x.chunks(320) {
            let mut codes = [0u8; 160];
            let n = enc.encode(frame, &mut codes);
            let mut pcm = [0i16; 320];
            let m = dec.decode(&codes[..n], &mut pcm);
            out.extend_from_slice(&pcm[..m]);
        }
        out
    }

    const DELAY: usize = 22;

    #[test]
    fn leak_identity() {
        for b in i32::from(i16::MIN)..=i32::from(i16::MAX) {
            assert_eq!(leak(b), (b * 32640) >> 15, "{b}");
        }
    }

    /// Tones across the band at -12 dBFS: frequency within 5 Hz, level within 1 dB, SNR after
    /// the codec's delay above a threshold per tone (measured: 1004 Hz 47.4 dB, 440 Hz 56.8 dB,
    /// 3000 Hz 41.0 dB, 5500 Hz 25.2 dB, the last in the higher band's 2 bits).
    #[test]
    fn tones_survive_the_round_trip() {
        for (f, min_snr) in [
            (1004.0, 42.0),
            (440.0, 50.0),
            (3000.0, 36.0),
            (5500.0, 21.0),
        ] {
            let x = sine16k(f, 8000.0, 16000);
            let y = round_trip(&x);
            let (x, y) = (&x[2000..15000], &y[2000 + DELAY..15000 + DELAY]);
            let peak = peak16k(y);
            assert!((peak - f).abs() <= 5.0, "{f} Hz: peak at {peak}");
            let level = level_db(x, y);
            assert!(level.abs() < 1.0, "{f} Hz: level off by {level:.2} dB");
            let snr = snr_db(x, y);
            eprintln!("g722 {f} Hz: peak {peak}, level {level:.2} dB, SNR {snr:.1} dB");
            assert!(snr >= min_snr, "{f} Hz: SNR {snr:.1} dB < {min_snr}");
        }
    }

    /// The sub-band path to and from 8 kHz: an 8 kHz tone coded into the lower band decodes
    /// (fully, at 16 kHz) to the same tone; a 16 kHz tone coded fully decodes from the lower band
    /// alone to the tone at 8 kHz. Level within 0.5 dB up to 3.3 kHz (measured -0.27 dB there,
    /// the QMF's roll-off toward 4 kHz).
    #[test]
    fn the_lower_band_alone_carries_the_telephone_band() {
        for f in [1004.0, 3300.0] {
            let x8: Vec<i16> = crate::codec::measure::sine(f, 8000.0, 0, 8000);
            let mut enc = Encoder::new();
            let mut codes = vec![0u8; 8000];
            assert_eq!(enc.encode_narrow(&x8, &mut codes), 8000);
            let mut dec = Decoder::new();
            let mut y16 = vec![0i16; 16000];
            assert_eq!(dec.decode(&codes, &mut y16), 16000);
            let peak = peak16k(&y16[4000..12000]);
            assert!((peak - f).abs() <= 5.0, "{f} Hz in: peak at {peak}");
            let level = level_db(&sine16k(f, 8000.0, 8000), &y16[4000..12000]);
            assert!(level.abs() < 0.5, "{f} Hz in: level {level:.2} dB");

            let x16 = sine16k(f, 8000.0, 16000);
            let mut enc = Encoder::new();
            assert_eq!(enc.encode(&x16, &mut codes), 8000);
            let mut dec = Decoder::new();
            let mut y8 = vec![0i16; 8000];
            assert_eq!(dec.decode_narrow(&codes, &mut y8), 8000);
            let level = level_db(&x8[2000..6000], &y8[2000..6000]);
            assert!(level.abs() < 0.5, "{f} Hz out: level {level:.2} dB");
            let peak = crate::codec::measure::peak_frequency(&y8[2000..]);
            assert!((peak - f).abs() <= 5.0, "{f} Hz out: peak at {peak}");
        }
    }

    #[test]
    fn silence_stays_quiet_and_loud_input_does_not_wrap() {
        let y = round_trip(&[0i16; 3200]);
        assert!(
            y.iter().all(|s| s.abs() < 16),
            "silence decodes to near zero"
        );
        let x = sine16k(800.0, 32000.0, 16000);
        let y = round_trip(&x);
        let snr = snr_db(&x[2000..15000], &y[2000 + DELAY..15000 + DELAY]);
        assert!(snr > 20.0, "full scale: SNR {snr:.1} dB");
    }
}
