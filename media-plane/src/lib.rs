//! `media-plane`: the per-core RTP/RTCP relay core of the SBC (pure: no sockets, threads or clock).
//!
//! Its contents (the `MediaShard`, latching, RTP/RTCP rewriting, SRTP, codecs) arrive with the media
//! issue; shared/DESIGN.md shows where each piece goes. Until then the crate holds no code, so that the
//! workspace layout and its dependency rules are in place from the start.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]
