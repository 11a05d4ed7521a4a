//! The crate's error type for control operations (port allocation, session handles).
//!
//! Packet parsing has its own small error, [`crate::rtp::RtpError`]: a malformed datagram is counted
//! and dropped by the shard, never turned into an [`Error`].

use core::fmt;

/// What went wrong in a control operation of the media plane. Every variant is a value the caller
/// can act on (answer 503, log, count); none of them leaves the shard or the allocator half-changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The port range cannot hold an RTP/RTCP pair: `min` must be even and non-zero, and
    /// `min + 1 <= max`.
    InvalidPortRange {
        /// Lowest port asked for.
        min: u16,
        /// Highest port asked for.
        max: u16,
    },
    /// The range has fewer RTP/RTCP pairs than workers (or there are no workers), so some worker
    /// would get an empty slice.
    TooManyWorkers {
        /// Workers asked for.
        workers: usize,
        /// Pairs in the range.
        pairs: usize,
    },
    /// Not enough pairs can be handed out now for an all-or-nothing request; nothing was taken.
    PortsExhausted {
        /// Pairs asked for.
        wanted: usize,
        /// Pairs that could have been handed out at that moment.
        available: usize,
    },
    /// The port is not an RTP port of this allocator's slice (out of range or odd).
    PortOutOfRange {
        /// The port given back.
        port: u16,
    },
    /// The pair is not allocated: it is free or in quarantine already (a double free).
    NotAllocated {
        /// The RTP port of the pair given back.
        port: u16,
    },
    /// A session needs at least one stream and at most the configured number.
    StreamCount {
        /// Streams asked for.
        requested: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The handle names no live session (released already, or from another shard).
    UnknownSession,
    /// The session has no stream with this index.
    NoSuchStream {
        /// Index asked for.
        stream: usize,
        /// Streams the session has.
        streams: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidPortRange { min, max } => {
                write!(
                    f,
                    "port range {min}..={max} holds no RTP/RTCP pair (min must be even)"
                )
            }
            Self::TooManyWorkers { workers, pairs } => {
                write!(
                    f,
                    "{pairs} port pairs cannot be split among {workers} workers"
                )
            }
            Self::PortsExhausted { wanted, available } => {
                write!(f, "{wanted} port pairs wanted, {available} available")
            }
            Self::PortOutOfRange { port } => {
                write!(f, "port {port} is not an RTP port of this slice")
            }
            Self::NotAllocated { port } => write!(f, "port pair {port} is not allocated"),
            Self::StreamCount { requested, max } => {
                write!(f, "{requested} streams requested, 1..={max} allowed")
            }
            Self::UnknownSession => f.write_str("unknown or released media session"),
            Self::NoSuchStream { stream, streams } => {
                write!(f, "stream {stream} requested, the session has {streams}")
            }
        }
    }
}

impl std::error::Error for Error {}
