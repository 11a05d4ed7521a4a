//! G.711 (ITU-T G.711, 1988): μ-law and A-law companding of 8 kHz audio, one byte per sample.
//!
//! Samples are 16-bit linear PCM (the 14-bit μ-law and 13-bit A-law ranges scaled to 16 bits, as
//! every telephony stack does). The μ-law <-> A-law conversion is a 256-entry table built at
//! compile time from decode-then-encode, which gives the same code as G.711's own conversion tables
//! except where the two laws' quantisation steps differ (a one-step difference in a few codes of
//! the lowest segment); converting a frame is one table lookup per byte, no arithmetic.

/// μ-law bias added before the segment search (0x84 = 33 << 2).
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude μ-law encodes before clipping.
const ULAW_CLIP: i32 = 32635;

/// Encode one linear sample as μ-law.
#[must_use]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut x = sample as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    if x > ULAW_CLIP {
        x = ULAW_CLIP;
    }
    x += ULAW_BIAS;
    // x is in 0x84..=0x7FFF, so x >> 7 is in 1..=255 and the exponent in 0..=7.
    let exponent = 31 - ((x >> 7) as u32).leading_zeros();
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | ((exponent as i32) << 4) | mantissa) as u8)
}

/// Decode one μ-law byte to a linear sample.
#[must_use]
pub const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encode one linear sample as A-law.
#[must_use]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // 13-bit magnitude; negative values map to -x - 1 (A-law has no negative zero step).
    let mut x = (sample as i32) >> 3;
    let mask = if x >= 0 {
        0xD5
    } else {
        x = -x - 1;
        0x55
    };
    // Segment: the position of the highest bit above the 5 lowest (0 for x < 32).
    let seg = if x < 32 {
        0
    } else {
        (31 - (x as u32).leading_zeros()) as i32 - 4
    };
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let code = (seg << 4) | ((x >> shift) & 0x0F);
    (code ^ mask) as u8
}

/// Decode one A-law byte to a linear sample.
#[must_use]
pub const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

/// A 256-entry byte map, built at compile time.
#[allow(clippy::indexing_slicing)] // compile time: i < 256 by the loop bound
const fn build_map(from_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if from_alaw {
            linear_to_ulaw(alaw_to_linear(i as u8))
        } else {
            linear_to_alaw(ulaw_to_linear(i as u8))
        };
        i += 1;
    }
    t
}

/// A-law code -> μ-law code.
pub static ALAW_TO_ULAW: [u8; 256] = build_map(true);
/// μ-law code -> A-law code.
pub static ULAW_TO_ALAW: [u8; 256] = build_map(false);

/// Rewrite every byte of `payload` through `map` (one of the two conversion tables).
#[inline]
pub fn convert_in_place(map: &[u8; 256], payload: &mut [u8]) {
    for b in payload.iter_mut() {
        // u8 < 256: the bound check folds away.
        if let Some(&c) = map.get(usize::from(*b)) {
            *b = c;
        }
    }
}

/// Encode linear samples as μ-law into `out` (as many as both hold).
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_ulaw(s);
    }
}

/// Encode linear samples as A-law into `out` (as many as both hold).
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_alaw(s);
    }
}

/// Decode μ-law bytes into `out` (as many as both hold).
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_to_linear(c);
    }
}

/// Decode A-law bytes into `out` (as many as both hold).
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_to_linear(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // Silence codes: μ-law 0xFF is +0, A-law 0xD5 is the smallest positive step.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(linear_to_alaw(0), 0xD5);
        // Full scale.
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_decodes_and_encodes_back_to_itself() {
        for c in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law {c:#04x}");
            let back = linear_to_ulaw(ulaw_to_linear(c));
            // μ-law has two zeros (0x7F and 0xFF); the encoder writes +0.
            if c == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, c, "μ-law {c:#04x}");
            }
        }
    }

    #[test]
    fn encoding_error_stays_within_half_a_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let x = i32::from(s).clamp(-32124, 32256);
            // The step of the top segment is 1024 (μ) / 1024 (A): half of it, plus the clip.
            assert!((u - x.clamp(-32124, 32124)).abs() <= 512, "μ {s} -> {u}");
            assert!((a - x).abs() <= 512, "A {s} -> {a}");
            // Relative error of a log quantiser: a few percent above the lowest segments.
            if x.abs() > 1024 {
                assert!((u - x).abs() * 100 / x.abs() <= 7, "μ {s} -> {u}");
                assert!((a - x).abs() * 100 / x.abs() <= 7, "A {s} -> {a}");
            }
        }
    }

    #[test]
    fn the_conversion_tables_round_trip_within_one_step() {
        for c in 0..=255u8 {
            let a = ULAW_TO_ALAW[usize::from(c)];
            let u = ALAW_TO_ULAW[usize::from(a)];
            let (x, y) = (i32::from(ulaw_to_linear(c)), i32::from(ulaw_to_linear(u)));
            // One step of the coarser law at that level.
            let step = (x.abs() / 16).max(16);
            assert!((x - y).abs() <= step, "{c:#04x} -> {a:#04x} -> {u:#04x}");
        }
        // Sign and silence survive.
        assert_eq!(ULAW_TO_ALAW[0xFF], 0xD5);
        assert_eq!(ALAW_TO_ULAW[0xD5], linear_to_ulaw(8));
    }
}
