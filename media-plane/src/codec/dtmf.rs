//! DTMF: RFC 4733 telephone-event payloads, and in-band tones (ITU-T Q.23/Q.24) generated and
//! detected on 8 kHz linear audio.
//!
//! The detector runs eight Goertzel filters over blocks of 160 samples (20 ms) and accepts a
//! block as a digit only when (Q.24 style checks):
//! - its mean power is above [`MIN_MEAN_POWER`] (about -36 dBm0),
//! - the strongest low-group and high-group tones hold at least [`MIN_TONE_SHARE`] of the block's
//!   energy together (speech and music spread theirs),
//! - each is at least [`MIN_PEAK_RATIO`] (6 dB) above the other tones of its group,
//! - the twist (high group over low group) is within -8 dB (normal) and +4 dB (reverse).
//!
//! [`Detector`] then asks for the same digit in [`ON_BLOCKS`] consecutive blocks (40 ms) before it
//! reports a digit, and for [`OFF_BLOCKS`] blocks without it before the digit ends, so a digit is
//! reported once however long it lasts, and short bursts of speech that look like a tone are not.

/// The RFC 4733 events 0-15: `0`-`9`, `*`, `#`, `A`-`D`.
pub const EVENT_CHARS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// Low-group frequencies (rows of the keypad), Hz.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group frequencies (columns), Hz.
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Goertzel coefficients 2cos(2πf/8000) of [`ROWS`] then [`COLS`].
const COEFFS: [f32; 8] = [
    1.707_737_8,
    1.645_281_1,
    1.568_687,
    1.478_204_6,
    1.164_104,
    0.996_370_2,
    0.798_618_4,
    0.568_532_7,
];
/// The keypad: event of (row, column).
const KEYPAD: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];

/// Samples per detector block (20 ms at 8 kHz).
pub const BLOCK: usize = 160;
/// Least mean power of a block (linear 16-bit units squared) to consider it: a sine of amplitude
/// 200 (about -36 dBm0).
pub const MIN_MEAN_POWER: f32 = 200.0 * 200.0 / 2.0;
/// Least share of the block's energy in the two strongest tones.
pub const MIN_TONE_SHARE: f32 = 0.7;
/// Least ratio of the strongest tone of a group to the next one (6 dB).
pub const MIN_PEAK_RATIO: f32 = 4.0;
/// Normal twist limit: the high group may be 8 dB weaker than the low one.
pub const NORMAL_TWIST: f32 = 0.158;
/// Reverse twist limit: the high group may be 4 dB stronger.
pub const REVERSE_TWIST: f32 = 2.51;
/// Blocks of the same digit before it is reported (40 ms).
pub const ON_BLOCKS: u8 = 2;
/// Blocks without it before the digit ends (40 ms).
pub const OFF_BLOCKS: u8 = 2;

/// One RFC 4733 §2.3 telephone-event payload (4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// The E bit: the last packet(s) of the event.
    pub end: bool,
    /// Volume, 0 to 63 (-dBm0).
    pub volume: u8,
    /// Duration so far, in timestamp units from the event's timestamp.
    pub duration: u16,
}

impl Event {
    /// Parse the first four bytes of a payload; `None` when shorter.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The four payload bytes (the R bit is zero).
    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d0,
            d1,
        ]
    }

    /// The DTMF character (`None` for events other than 0-15).
    pub fn char(self) -> Option<char> {
        EVENT_CHARS.get(usize::from(self.event)).copied()
    }
}

/// The (low, high) frequencies of DTMF event `event` (0-15).
pub fn frequencies(event: u8) -> Option<(f32, f32)> {
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &e) in row.iter().enumerate() {
            if e == event {
                return Some((*ROWS.get(r)?, *COLS.get(c)?));
            }
        }
    }
    None
}

/// Amplitude of each of the two tones generated (about -10 dBm0 each).
pub const TONE_AMPLITUDE: f32 = 7000.0;

/// Write samples `offset..offset + out.len()` of the tone of `event` (counted from the event's
/// start, so consecutive calls continue the same waveform). Writes silence for a non-DTMF event.
pub fn tone(event: u8, offset: u32, out: &mut [i16]) {
    let Some((low, high)) = frequencies(event) else {
        out.fill(0);
        return;
    };
    let wl = core::f32::consts::TAU * low / 8000.0;
    let wh = core::f32::consts::TAU * high / 8000.0;
    for (n, o) in (offset..).zip(out.iter_mut()) {
        // The phase is reduced in f64 so that long events stay in tune.
        let t = f64::from(n);
        let pl = (t * f64::from(wl)) % core::f64::consts::TAU;
        let ph = (t * f64::from(wh)) % core::f64::consts::TAU;
        let s = TONE_AMPLITUDE * ((pl as f32).sin() + (ph as f32).sin());
        *o = s as i16;
    }
}

/// The digit a block of [`BLOCK`] samples holds, by the checks of the module doc.
pub fn classify(block: &[i16]) -> Option<u8> {
    let n = block.len();
    if n == 0 {
        return None;
    }
    let mut energy = 0.0f32;
    let mut s1 = [0.0f32; 8];
    let mut s2 = [0.0f32; 8];
    for &x in block {
        let x = f32::from(x);
        energy += x * x;
        for ((a, b), k) in s1.iter_mut().zip(s2.iter_mut()).zip(COEFFS) {
            let s = x + k * *a - *b;
            *b = *a;
            *a = s;
        }
    }
    let nf = n as f32;
    if energy / nf < MIN_MEAN_POWER {
        return None;
    }
    let mut power = [0.0f32; 8];
    for (((p, a), b), k) in power.iter_mut().zip(s1).zip(s2).zip(COEFFS) {
        // |X|² normalised so that a lone tone at the bin gives the block's energy.
        *p = (a * a + b * b - k * a * b) * 2.0 / nf;
    }
    let (rows, cols) = power.split_at(4);
    let (r, rp, r2) = peak(rows)?;
    let (c, cp, c2) = peak(cols)?;
    let share_ok = rp + cp >= MIN_TONE_SHARE * energy;
    let peaks_ok = rp >= MIN_PEAK_RATIO * r2 && cp >= MIN_PEAK_RATIO * c2;
    let twist = cp / rp;
    let twist_ok = (NORMAL_TWIST..=REVERSE_TWIST).contains(&twist);
    if share_ok && peaks_ok && twist_ok {
        KEYPAD.get(r)?.get(c).copied()
    } else {
        None
    }
}

/// (index of the largest, the largest, the second largest).
fn peak(p: &[f32]) -> Option<(usize, f32, f32)> {
    let (i, &best) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let second = p
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, &v)| v)
        .fold(0.0f32, f32::max);
    Some((i, best, second))
}

/// What [`Detector::push`] saw in the samples it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// No digit is on.
    Quiet,
    /// A tone that may become a digit is on (not reported yet).
    Maybe,
    /// Digit `event` started (reported once).
    Start(u8),
    /// Digit `event` goes on.
    On(u8),
    /// Digit `event` ended.
    End(u8),
}

/// A DTMF detector over a stream of 8 kHz samples in packets of any size. Fixed memory.
#[derive(Clone, Debug)]
pub struct Detector {
    block: [i16; BLOCK],
    filled: usize,
    candidate: Option<u8>,
    count: u8,
    active: Option<u8>,
    misses: u8,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// A detector with no digit on.
    pub fn new() -> Self {
        Self {
            block: [0; BLOCK],
            filled: 0,
            candidate: None,
            count: 0,
            active: None,
            misses: 0,
        }
    }

    /// The digit on, if one was reported and has not ended.
    pub fn active(&self) -> Option<u8> {
        self.active
    }

    /// Feed samples; returns the most significant change they brought (a start or an end before
    /// "on"), or the state at their end.
    pub fn push(&mut self, mut samples: &[i16]) -> Detected {
        let mut seen = None;
        while !samples.is_empty() {
            let room = self.block.get_mut(self.filled..).unwrap_or_default();
            let take = room.len().min(samples.len());
            let (now, rest) = samples.split_at(take);
            if let Some(dst) = room.get_mut(..take) {
                dst.copy_from_slice(now);
            }
            samples = rest;
            self.filled += take;
            if self.filled >= BLOCK {
                self.filled = 0;
                let digit = classify(&self.block);
                let change = self.step(digit);
                if matches!(change, Detected::Start(_) | Detected::End(_)) || seen.is_none() {
                    seen = Some(change);
                }
            }
        }
        seen.unwrap_or_else(|| self.state())
    }

    fn state(&self) -> Detected {
        match (self.active, self.candidate) {
            (Some(d), _) => Detected::On(d),
            (None, Some(_)) => Detected::Maybe,
            (None, None) => Detected::Quiet,
        }
    }

    fn step(&mut self, digit: Option<u8>) -> Detected {
        if let Some(on) = self.active {
            if digit == Some(on) {
                self.misses = 0;
                return Detected::On(on);
            }
            self.misses += 1;
            if self.misses >= OFF_BLOCKS {
                self.active = None;
                self.candidate = None;
                self.count = 0;
                self.misses = 0;
                return Detected::End(on);
            }
            return Detected::On(on);
        }
        match digit {
            Some(d) if self.candidate == Some(d) => {
                self.count = self.count.saturating_add(1);
                if self.count >= ON_BLOCKS {
                    self.active = Some(d);
                    self.misses = 0;
                    return Detected::Start(d);
                }
                Detected::Maybe
            }
            Some(d) => {
                self.candidate = Some(d);
                self.count = 1;
                Detected::Maybe
            }
            None => {
                self.candidate = None;
                self.count = 0;
                Detected::Quiet
            }
        }
    }
}
