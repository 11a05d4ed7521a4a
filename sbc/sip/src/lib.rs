//! `sbc-sip`: the pure SIP protocol core of the SBC.
//!
//! Everything here is sans-IO: no sockets, no threads, no clock. Time is an input (`now`), bytes come in
//! from the driver and bytes go back out through caller-supplied buffers.
//!
//! - [`message`]: RFC 3261 §7/§20/§25 messages, parsed once into a zero-copy index over the received
//!   bytes, validated at the edge so that every accessor for a mandatory header is infallible.
//! - [`uri`] and [`header`]: typed, borrowed views (SIP/SIPS/tel URIs, name-addr, Via, CSeq, params).
//! - [`error`]: the one error type for bad input; it knows what the wire should see (400 with a reason
//!   naming the fault, 505, 416, or a silent drop).
//! - [`framing`]: stream framing for TCP/TLS, telling an *incomplete* message from an *invalid* one.
//! - [`writer`]: serialization into a caller-supplied buffer.
//! - [`build`]: RFC 3261 derived messages (responses to a request, ACK for non-2xx, CANCEL).
//! - [`sdp`]: RFC 8866 session descriptions and RFC 3264 offer/answer edits that keep unknown lines.
//! - [`transaction`]: RFC 3261 §17 + RFC 6026 client and server transactions, Timers A–M;
//!   [`tx_counters`]: their retransmission counters.
//! - [`wheel`]: the timing wheel that holds their deadlines.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod build;
pub mod error;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod idmap;
mod lex;
pub mod message;
mod names;
pub mod sdp;
pub mod transaction;
pub mod tx_counters;
pub mod uri;
pub mod wheel;
pub mod writer;

pub use error::{ParseError, Verdict};
pub use message::{HeaderName, Message, Method};
