//! What the relay does with one received datagram ([`Action`]), and why it drops one
//! ([`DropReason`]): the vocabulary between [`crate::shard::MediaShard`] and its driver.

use std::net::SocketAddr;

/// Why a packet was not relayed. Each reason is a counter (the shard's `ShardCounters::dropped`) and a
/// metric label ([`DropReason::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No stream owns the local port (never allocated, released, in quarantine, or not this
    /// shard's).
    UnknownPort,
    /// Not a valid RTP or RTCP packet (RFC 3550 §5.1, §6; see the shard's `Validation`).
    Malformed,
    /// Strict latching: the source is not the latched one (RTP Bleed, injection).
    WrongSource,
    /// The other leg has neither a learned source nor a usable SDP address yet.
    NoDestination,
    /// The stream's stage refused it (SRTP: authentication, replay; its counters say why).
    Stage,
}

impl DropReason {
    /// How many reasons there are.
    pub const COUNT: usize = 5;

    /// Every reason, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::UnknownPort,
        Self::Malformed,
        Self::WrongSource,
        Self::NoDestination,
        Self::Stage,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownPort => "unknown_port",
            Self::Malformed => "malformed",
            Self::WrongSource => "wrong_source",
            Self::NoDestination => "no_destination",
            Self::Stage => "stage",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::UnknownPort => 0,
            Self::Malformed => 1,
            Self::WrongSource => 2,
            Self::NoDestination => 3,
            Self::Stage => 4,
        }
    }
}

/// What the driver does with a received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the first `len` bytes of the buffer from the local port `from_port` to `to`.
    Forward {
        /// The local relay port to send from (the other leg's).
        from_port: u16,
        /// The destination.
        to: SocketAddr,
        /// How many bytes of the buffer to send: the received length today; a stage that
        /// rewrites the packet in place (SRTP, transcoding) may change it. A driver sends exactly
        /// this many bytes, and drops the packet when it is past the end of its buffer.
        len: usize,
    },
    /// Drop it; the reason is counted.
    Drop(DropReason),
    /// Nothing to send: a stage took the packet (audio replaced by a DTMF tone, a repeated end of
    /// an event). Not a drop: nothing was wrong with it.
    Consumed,
}
