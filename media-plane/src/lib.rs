//! `media-plane`: the per-core RTP/RTCP relay core of the SBC (pure: no sockets, threads or clock).
//!
//! Each worker owns one [`MediaShard`]: its slice of the relay port range and the media sessions of
//! the calls whose signalling it handles, so the media of a call never leaves the core that owns its
//! dialog. The worker's event loop feeds every received datagram to [`MediaShard::on_packet`] and
//! sends it where the returned [`Action`] says; signalling allocates, updates and releases sessions
//! by plain function calls on the same core.
//!
//! - [`rtp`]: zero-copy RTP header view and in-place rewrite (RFC 3550 §5.1), RTP/RTCP
//!   demultiplexing on rtcp-mux ports (RFC 5761 §4), and the validated RTCP compound walker
//!   (SR, RR, SDES, BYE, APP; RFC 3550 §6).
//! - [`stats`]: per-stream reception statistics written by the owning worker only: packets, bytes,
//!   last packet time, expected and lost packets from the extended sequence number with probation
//!   (RFC 3550 App. A.1, A.3), interarrival jitter (App. A.8).
//! - [`quality`]: a leg's receive quality from those statistics: loss ratio, jitter as a duration
//!   and an estimated MOS (simplified E-model), for metrics and call records.
//! - [`ports`]: the per-worker split of the media port range and the RTP/RTCP pair allocator: O(1),
//!   all-or-nothing for calls with several m= lines, double frees refused, freed pairs quarantined
//!   before reuse.
//! - [`latch`]: source learning for endpoints behind NAT, only inside a window after each
//!   offer/answer, preferring the SDP address, with strict-source mode against RTP Bleed.
//! - [`shard`]: [`MediaShard`], the sans-IO relay of one worker: generation-checked session
//!   handles over a slab, a flat port → stream table, per-reason drop counters, no-media and one-way
//!   detection.
//!
//! Time is always an input (`now: Instant`); nothing here reads a clock, so tests drive hours of
//! virtual time in microseconds. The packet path neither allocates, locks nor hashes.
//!
//! - [`srtp`]: SRTP/SRTCP contexts (RFC 3711, 6188, 7714), and [`stage`]: the per-direction SRTP
//!   stage (plain, SRTP) the relay runs between the legs.
//! - [`codec`]: G.711 μ-law/A-law, DTMF (RFC 4733 events, in-band tones generated and detected)
//!   and [`codec::CodecStage`], the per-stream transcoding stage the shard runs when the two legs
//!   negotiated different formats ([`MediaShard::set_codecs`]). A packet from one leg is
//!   unprotected (SRTP), transcoded, then protected for the other leg, in place.
//!
//! Not yet here: G.722 and Opus, playback and recording.
//! SRTP can also be relayed as is ([`shard::Validation::HeaderOnly`]).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod action;
pub mod codec;
pub mod dtmf_relay;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod latch;
pub mod ports;
pub mod quality;
pub mod rtp;
pub mod shard;
pub mod srtp;
pub mod stage;
pub mod stats;

pub use error::Error;
pub use shard::{Action, DropReason, DtmfDigit, MediaShard, SessionHandle, ShardConfig, Side};
