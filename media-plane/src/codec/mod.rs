//! Codecs and the codec stage of a stream: transcoding between the two legs' negotiated audio
//! codecs, and DTMF interworking between RFC 4733 events and in-band tones.
//!
//! - [`g711`]: μ-law and A-law (ITU-T G.711), with the byte-for-byte conversion tables.
//! - [`g722`]: G.722 at 64 kbit/s (sub-band ADPCM, 16 kHz audio on an 8000 Hz RTP clock).
//! - [`opus`]: Opus through libopus (the system library), set up from the leg's `fmtp`.
//! - [`resample`]: the half-band filter between 16 and 8 kHz (G.722 against a narrowband leg,
//!   when [`G722Narrowband::Resample`]).
//! - [`transcode`]: the decode -> PCM -> encode pipeline of one direction, with the
//!   repacketisation between the legs' packet times.
//! - [`dtmf`]: RFC 4733 telephone-event payloads, the tone generator and the Goertzel detector
//!   (with level, twist and duration checks) used toward and from a leg that has no
//!   telephone-event.
//! - [`measure`]: reference tones and the measures (Goertzel, peak frequency, level, SNR) the
//!   tests judge decoded output by.
//! - [`stage`]: [`CodecStage`], what the relay runs on each packet of a stream whose legs did not
//!   negotiate the same format: one per stream, built on the control path from a [`CodecPlan`],
//!   fixed-size state only, so the packet path never allocates.
//!
//! The signalling decides the plan (codec policy applied to the offer and the answer, in
//! `sbc-core`'s `media::codecs`); this module only carries it out.

pub mod dtmf;
pub mod g711;
pub mod g722;
pub mod measure;
pub mod opus;
pub mod resample;
pub mod stage;
pub mod transcode;

pub use stage::{CodecCounters, CodecStage, StageResult, Way};

/// An audio codec the stage can decode and encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz (static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (static payload type 8).
    Pcma,
    /// G.722, 16 kHz audio on an 8000 Hz RTP clock (static payload type 9).
    G722,
    /// Opus, `opus/48000/2` (dynamic payload type), sent mono.
    Opus,
}

impl Codec {
    /// Every codec, in the order the SBC prefers to transcode to.
    pub const ALL: [Self; 4] = [Self::Pcmu, Self::Pcma, Self::G722, Self::Opus];

    /// The codec of an `rtpmap` encoding name and clock rate (names compared ASCII
    /// case-insensitively, RFC 4855 §3).
    pub fn from_rtpmap(encoding: &str, clock_rate: u32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| encoding.eq_ignore_ascii_case(c.name()) && clock_rate == c.clock_rate())
    }

    /// The codec of a static payload type (RFC 3551 §6), for formats listed without `rtpmap`.
    pub fn from_static(payload_type: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.static_payload_type() == Some(payload_type))
    }

    /// The `rtpmap` encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate (8000 for G.722 too, RFC 3551 §4.5.2; 48000 for Opus, RFC 7587).
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => 48000,
            _ => 8000,
        }
    }

    /// The static payload type (RFC 3551 §6); Opus has none.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::Opus => None,
        }
    }

    /// Carries more than the telephone band (G.722, Opus): between two such legs the stage works
    /// at 16 kHz, otherwise at 8 kHz.
    pub fn is_wideband(self) -> bool {
        matches!(self, Self::G722 | Self::Opus)
    }

    /// A G.711 law: one byte per 8 kHz sample, so frames keep their length through the stage.
    pub fn is_g711(self) -> bool {
        matches!(self, Self::Pcmu | Self::Pcma)
    }
}

/// What a leg's Opus `fmtp` asks of the audio sent to it (RFC 7587 §6.1); zero: not given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpusParams {
    /// `maxplaybackrate`: the highest audio rate the receiver renders (Hz).
    pub max_playback_rate: u32,
    /// `maxaveragebitrate`: the highest average bit rate it wants (bit/s).
    pub max_average_bitrate: u32,
    /// `useinbandfec=1`: it can use in-band forward error correction, so the encoder adds it.
    pub inband_fec: bool,
}

/// What one leg of a stream negotiated: its audio codec and payload type, and the payload type of
/// its `telephone-event` (RFC 4733), if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegFormat {
    /// The audio codec.
    pub codec: Codec,
    /// Its payload type on this leg.
    pub payload_type: u8,
    /// The payload type of `telephone-event/8000` on this leg (`None`: not negotiated).
    pub telephone_event: Option<u8>,
    /// The leg's packet time in ms (`a=ptime`; 0: not given, 20 is used).
    pub ptime: u16,
    /// The leg's Opus parameters (Opus legs only).
    pub opus: OpusParams,
}

impl LegFormat {
    /// A leg with the default packet time (20 ms) and no Opus parameters.
    pub fn new(codec: Codec, payload_type: u8, telephone_event: Option<u8>) -> Self {
        Self {
            codec,
            payload_type,
            telephone_event,
            ptime: 0,
            opus: OpusParams::default(),
        }
    }

    /// The packet time in ms the stage sends to this leg: `ptime` when given (10-120 ms; Opus:
    /// one of its frame sizes 10, 20, 40, 60), else 20.
    pub fn packet_ms(&self) -> u32 {
        let p = u32::from(self.ptime);
        let valid = match self.codec {
            Codec::Opus => matches!(p, 10 | 20 | 40 | 60),
            _ => (10..=120).contains(&p) && p % 10 == 0,
        };
        if valid {
            p
        } else {
            20
        }
    }
}

/// The Opus encoder complexity when the configuration does not set one (0-10; 3 keeps an Opus
/// channel within a few tens of µs per 20 ms frame, see BENCHMARKS.md).
pub const DEFAULT_OPUS_COMPLEXITY: u8 = 3;

/// How G.722 meets a narrowband (8 kHz) leg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum G722Narrowband {
    /// Through G.722's lower sub-band alone: the decoder's lower band is the 0-4 kHz audio at
    /// 8 kHz, and 8 kHz audio is coded as the lower band with a silent higher band (no QMF, no
    /// resampling; about half the cost).
    #[default]
    SubBand,
    /// Through the full G.722 (both bands and the QMF) at 16 kHz and the half-band FIR of
    /// [`resample`] between 16 and 8 kHz.
    Resample,
}

/// The formats of both legs of a stream, as the offer/answer settled them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecPlan {
    /// Leg A (the caller's).
    pub a: LegFormat,
    /// Leg B (the callee's).
    pub b: LegFormat,
    /// The Opus encoder complexity (0-10) for an Opus leg.
    pub opus_complexity: u8,
    /// How G.722 meets a narrowband leg.
    pub g722_narrowband: G722Narrowband,
}

impl CodecPlan {
    /// The plan of legs `a` and `b`, Opus at [`DEFAULT_OPUS_COMPLEXITY`].
    pub fn new(a: LegFormat, b: LegFormat) -> Self {
        Self {
            a,
            b,
            opus_complexity: DEFAULT_OPUS_COMPLEXITY,
            g722_narrowband: G722Narrowband::default(),
        }
    }

    /// The two legs carry the same audio at the same payload types and DTMF the same way: the
    /// relay needs no stage.
    pub fn is_identity(&self) -> bool {
        self.a == self.b
    }
}

#[cfg(test)]
mod tests;
