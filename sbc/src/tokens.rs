//! The one token scheme of both event loops, the worker and its streams: what an epoll event's
//! `u64` and an io_uring operation's `user_data` name (a socket, a connection, a send in flight),
//! and the [`Flow`] of a connection.
//!
//! Layout: kind in the top byte, a 24-bit generation below it, an index in the low 32 bits. Only
//! connections use the generation: their slots are reused, and an event for a closed connection
//! must not reach the next one in its slot. The [`Flow`] of a UDP socket is its plain index (kind
//! bits zero), never a token; the flow of a connection is its token, whose top byte is never zero.
//!
//! [`Flow`]: sbc_sip::transaction::Flow

const KIND_SHIFT: u32 = 56;
const GENERATION_SHIFT: u32 = 32;
const GENERATION_MASK: u32 = 0x00ff_ffff;

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A SIP UDP socket (index: its flow).
    Udp = 1,
    /// A TCP listener (index: its position).
    TcpListen = 2,
    /// A TLS listener (index: its position).
    TlsListen = 3,
    /// A TCP or TLS connection (index: its slot, with the slot's generation).
    Conn = 4,
    /// A media socket (index: `port - base`).
    Media = 5,
    /// The rtpengine ng control socket.
    Ng = 6,
    /// io_uring: a SIP send in flight (index: its send slot).
    UdpSend = 7,
    /// io_uring: the poll request that watches the worker's epoll.
    Epoll = 8,
    /// io_uring: a relayed media packet in flight (index: its buffer id).
    MediaSend = 9,
    /// The worker's hand-over doorbell (datagrams other workers handed to it).
    Handover = 10,
}

impl Kind {
    #[cfg(test)]
    const ALL: [Self; 10] = [
        Self::Udp,
        Self::TcpListen,
        Self::TlsListen,
        Self::Conn,
        Self::Media,
        Self::Ng,
        Self::UdpSend,
        Self::Epoll,
        Self::MediaSend,
        Self::Handover,
    ];

    /// A match, not a search: this runs for every completion and every epoll event.
    fn from_bits(bits: u64) -> Option<Self> {
        Some(match bits {
            1 => Self::Udp,
            2 => Self::TcpListen,
            3 => Self::TlsListen,
            4 => Self::Conn,
            5 => Self::Media,
            6 => Self::Ng,
            7 => Self::UdpSend,
            8 => Self::Epoll,
            9 => Self::MediaSend,
            10 => Self::Handover,
            _ => return None,
        })
    }
}

/// A decoded token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) generation: u32,
    pub(crate) index: u32,
}

impl Token {
    /// A token without generation (everything but connections).
    pub(crate) const fn new(kind: Kind, index: u32) -> Self {
        Self {
            kind,
            generation: 0,
            index,
        }
    }

    /// The token of connection slot `index` in its `generation` (cut to 24 bits).
    pub(crate) const fn conn(generation: u32, index: u32) -> Self {
        Self {
            kind: Kind::Conn,
            generation: generation & GENERATION_MASK,
            index,
        }
    }

    /// The `u64` handed to epoll or io_uring.
    pub(crate) const fn encode(self) -> u64 {
        ((self.kind as u64) << KIND_SHIFT)
            | ((self.generation as u64) << GENERATION_SHIFT)
            | self.index as u64
    }

    /// Read back a `u64` from epoll or io_uring; `None` when its kind is not one of ours (a UDP
    /// flow, or another user of the ring).
    pub(crate) fn decode(raw: u64) -> Option<Self> {
        Some(Self {
            kind: Kind::from_bits(raw >> KIND_SHIFT)?,
            generation: ((raw >> GENERATION_SHIFT) as u32) & GENERATION_MASK,
            index: raw as u32,
        })
    }

    /// Whether this token was made for the slot's current `generation`: false for an event of a
    /// closed connection whose slot has been reused since.
    pub(crate) const fn is_current(self, generation: u32) -> bool {
        self.generation == generation & GENERATION_MASK
    }
}

/// The generation after `g` (24 bits, wrapping).
pub(crate) const fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1) & GENERATION_MASK
}

/// Whether flow `raw` is a connection's (its token) rather than a UDP socket's index.
pub(crate) fn is_conn_flow(raw: u64) -> bool {
    raw >> KIND_SHIFT == Kind::Conn as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for kind in Kind::ALL {
            for (generation, index) in [(0, 0), (1, 7), (GENERATION_MASK, u32::MAX)] {
                let t = Token {
                    kind,
                    generation,
                    index,
                };
                assert_eq!(Token::decode(t.encode()), Some(t), "{t:?}");
            }
        }
    }

    #[test]
    fn kinds_are_distinct_and_never_a_udp_flow() {
        let raws: Vec<u64> = Kind::ALL
            .iter()
            .map(|k| Token::new(*k, 3).encode())
            .collect();
        for (i, a) in raws.iter().enumerate() {
            assert!(raws[i + 1..].iter().all(|b| a != b));
            // A UDP socket's flow is its index: it never decodes as a token.
            assert!(*a > u64::from(u32::MAX));
        }
        assert_eq!(Token::decode(3), None);
        assert_eq!(Token::decode(0xff << KIND_SHIFT), None);
        assert!(is_conn_flow(Token::conn(5, 1).encode()));
        assert!(!is_conn_flow(Token::new(Kind::Udp, 1).encode()));
        assert!(!is_conn_flow(2));
    }

    #[test]
    fn generation_is_24_bits_and_checked() {
        let t = Token::conn(GENERATION_MASK + 2, 9);
        assert_eq!(t.generation, 1);
        assert!(t.is_current(1));
        assert!(t.is_current(GENERATION_MASK + 2));
        assert!(!t.is_current(2), "a reused slot's newer generation");
        let decoded = Token::decode(t.encode()).unwrap();
        assert!(decoded.is_current(1));
        assert!(!decoded.is_current(0));
        assert_eq!(next_generation(GENERATION_MASK), 0);
        assert_eq!(next_generation(4), 5);
    }
}
