//! Opus (RFC 6716) through libopus, the system library (the `opus` crate's bindings; see
//! docs/decisions.md). On the wire Opus is `opus/48000/2` (RFC 7587): the RTP clock is always
//! 48 kHz whatever the audio bandwidth, and the stage sends mono (allowed whatever `stereo` says;
//! a stereo packet received is decoded down-mixed to mono).
//!
//! libopus encodes from and decodes to 8 or 16 kHz itself, so the stage runs it at its own
//! working rate (8 kHz against a G.711 leg, 16 kHz against G.722) and needs no resampler of its
//! own for Opus. The encoder is set up from the receiving leg's `fmtp` ([`OpusParams`]):
//! `maxplaybackrate` caps the coded bandwidth, `maxaveragebitrate` the bit rate, and
//! `useinbandfec=1` turns on in-band FEC (with a 10 % expected loss, which is what makes libopus
//! spend bits on it). Encoder and decoder are allocated by libopus when the stage is built; the
//! packet path only calls `opus_encode`/`opus_decode` on them.

use super::OpusParams;

/// The RTP clock of Opus.
pub const CLOCK: u32 = 48000;
/// Bit rate used when the leg gives no `maxaveragebitrate`: 16 kbit/s at 8 kHz (narrowband
/// speech), 24 kbit/s at 16 kHz (wideband speech).
const DEFAULT_BITRATE_NB: i32 = 16000;
const DEFAULT_BITRATE_WB: i32 = 24000;
/// Expected loss told to the encoder when FEC is on (percent).
const FEC_LOSS_PERCENT: i32 = 10;

/// An Opus encoder of mono audio at `rate` (8000 or 16000 Hz).
pub struct Encoder {
    inner: opus::Encoder,
    rate: u32,
}

impl core::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("opus::Encoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl Encoder {
    /// An encoder at `rate` Hz for VoIP, `complexity` 0-10, set up from the receiver's
    /// parameters. `None` when libopus refuses (an unsupported rate).
    pub fn new(rate: u32, complexity: u8, params: &OpusParams) -> Option<Self> {
        let mut e = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip).ok()?;
        e.set_complexity(i32::from(complexity.min(10))).ok()?;
        let default = if rate > 8000 {
            DEFAULT_BITRATE_WB
        } else {
            DEFAULT_BITRATE_NB
        };
        let bitrate = match i32::try_from(params.max_average_bitrate) {
            Ok(max) if max > 0 => default.min(max).max(6000),
            _ => default,
        };
        e.set_bitrate(opus::Bitrate::Bits(bitrate)).ok()?;
        let bandwidth = match params.max_playback_rate {
            0 => opus::Bandwidth::Fullband,
            r if r <= 8000 => opus::Bandwidth::Narrowband,
            r if r <= 12000 => opus::Bandwidth::Mediumband,
            r if r <= 16000 => opus::Bandwidth::Wideband,
            r if r <= 24000 => opus::Bandwidth::Superwideband,
            _ => opus::Bandwidth::Fullband,
        };
        e.set_max_bandwidth(bandwidth).ok()?;
        if params.inband_fec {
            e.set_inband_fec(true).ok()?;
            e.set_packet_loss_perc(FEC_LOSS_PERCENT).ok()?;
        }
        Some(Self { inner: e, rate })
    }

    /// Encode one frame (2.5-60 ms at the encoder's rate) into `out`; the packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Option<usize> {
        self.inner.encode(pcm, out).ok()
    }

    /// The bit rate it was set to (bit/s).
    pub fn bitrate(&mut self) -> Option<i32> {
        match self.inner.get_bitrate().ok()? {
            opus::Bitrate::Bits(b) => Some(b),
            _ => None,
        }
    }

    /// Whether in-band FEC is on.
    pub fn inband_fec(&mut self) -> Option<bool> {
        self.inner.get_inband_fec().ok()
    }
}

/// An Opus decoder to mono audio at `rate` (8000 or 16000 Hz).
pub struct Decoder {
    inner: opus::Decoder,
    rate: u32,
}

impl core::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("opus::Decoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl Decoder {
    /// A decoder to `rate` Hz. `None` when libopus refuses.
    pub fn new(rate: u32) -> Option<Self> {
        let inner = opus::Decoder::new(rate, opus::Channels::Mono).ok()?;
        Some(Self { inner, rate })
    }

    /// Decode `packet` into `out`; the samples written. With `fec`, the frame before `packet`
    /// (lost) is rebuilt from the redundancy `packet` carries instead, `out.len()` samples long
    /// (libopus conceals it when there is none). An empty `packet` conceals one lost frame of
    /// `out.len()` samples.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16], fec: bool) -> Option<usize> {
        self.inner.decode(packet, out, fec).ok()
    }

    /// The duration of `packet` in samples at the decoder's rate.
    pub fn samples(&self, packet: &[u8]) -> Option<usize> {
        self.inner.get_nb_samples(packet).ok()
    }
}
