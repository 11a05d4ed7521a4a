//! Codecs and the codec stage of a stream: transcoding between the two legs' negotiated audio
//! codecs, and DTMF interworking between RFC 4733 events and in-band tones.
//!
//! - [`g711`]: μ-law and A-law (ITU-T G.711), with the byte-for-byte conversion tables.
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
pub mod resample;
pub mod stage;

pub use stage::{CodecCounters, CodecStage, StageResult, Way};

/// An audio codec the stage can decode and encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz (static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (static payload type 8).
    Pcma,
}

impl Codec {
    /// Every codec, in the order the SBC prefers to transcode to.
    pub const ALL: [Self; 2] = [Self::Pcmu, Self::Pcma];

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
            .find(|c| c.static_payload_type() == payload_type)
    }

    /// The `rtpmap` encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// The static payload type (RFC 3551 §6).
    pub fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// A G.711 law: one byte per 8 kHz sample, so frames keep their length through the stage.
    pub fn is_g711(self) -> bool {
        matches!(self, Self::Pcmu | Self::Pcma)
    }
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
}

/// The formats of both legs of a stream, as the offer/answer settled them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecPlan {
    /// Leg A (the caller's).
    pub a: LegFormat,
    /// Leg B (the callee's).
    pub b: LegFormat,
}

impl CodecPlan {
    /// The two legs carry the same audio at the same payload types and DTMF the same way: the
    /// relay needs no stage.
    pub fn is_identity(&self) -> bool {
        self.a == self.b
    }
}

#[cfg(test)]
mod tests;
