//! SRTP and SRTCP (RFC 3711), with the AES-256 suites (RFC 6188) and AES-GCM (RFC 7714): the
//! suites and their SDES names, key derivation, the per-direction [`SrtpContext`] that protects
//! and unprotects packets in place (rollover counter, replay window, SRTCP index), and the cipher
//! backends behind [`CmBackend`].
//!
//! A context holds the keys of one direction of one leg: the relay unprotects what a leg sends
//! with that leg's remote key and protects what it sends to a leg with the key the SBC offered
//! it. Nothing here allocates per packet; buffers carry the tailroom for the tag
//! ([`Suite::max_overhead`]).

mod backend;
mod context;
mod kdf;
mod replay;

pub use backend::{CmBackend, RingMac, RustCrypto};
pub use context::{SrtpContext, MAX_SSRCS};
pub use replay::REPLAY_WINDOW;

/// An SRTP crypto suite, by its SDES name (RFC 4568 §6.2, RFC 6188 §3, RFC 7714 §14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: AES-128 counter mode, 32-bit tag on SRTP (80-bit on SRTCP).
    AesCm128HmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80` (also written `AES_CM_256_HMAC_SHA1_80`).
    AesCm256HmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32` (also written `AES_CM_256_HMAC_SHA1_32`).
    AesCm256HmacSha1_32,
    /// `AEAD_AES_128_GCM`: AES-128 GCM, 128-bit tag.
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM`: AES-256 GCM, 128-bit tag.
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite, in the order the SBC offers them (the most deployed first).
    pub const ALL: [Self; 6] = [
        Self::AesCm128HmacSha1_80,
        Self::AesCm128HmacSha1_32,
        Self::AeadAes128Gcm,
        Self::AeadAes256Gcm,
        Self::AesCm256HmacSha1_80,
        Self::AesCm256HmacSha1_32,
    ];

    /// The suite an SDES name stands for; both spellings of the AES-256 counter-mode suites
    /// (RFC 6188's and the one deployed phones use) are accepted.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "AES_CM_128_HMAC_SHA1_80" => Self::AesCm128HmacSha1_80,
            "AES_CM_128_HMAC_SHA1_32" => Self::AesCm128HmacSha1_32,
            "AES_256_CM_HMAC_SHA1_80" | "AES_CM_256_HMAC_SHA1_80" => Self::AesCm256HmacSha1_80,
            "AES_256_CM_HMAC_SHA1_32" | "AES_CM_256_HMAC_SHA1_32" => Self::AesCm256HmacSha1_32,
            "AEAD_AES_128_GCM" => Self::AeadAes128Gcm,
            "AEAD_AES_256_GCM" => Self::AeadAes256Gcm,
            _ => return None,
        })
    }

    /// The registered SDES name (RFC 6188's spelling for AES-256).
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Self::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master (and session) key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 | Self::AeadAes128Gcm => 16,
            Self::AesCm256HmacSha1_80 | Self::AesCm256HmacSha1_32 | Self::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length in bytes: 14 for counter mode, 12 for GCM.
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Length of the `inline:` key material: key then salt.
    pub fn master_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// An AEAD suite (RFC 7714).
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm | Self::AeadAes256Gcm)
    }

    /// Bytes SRTP adds to an RTP packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm256HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 | Self::AesCm256HmacSha1_32 => 4,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP compound: the E flag and index (4), and the tag, which is 80
    /// bits for every HMAC suite (RFC 4568 §6.2.1) and 128 for GCM.
    pub fn rtcp_overhead(self) -> usize {
        4 + self.rtcp_tag_len()
    }

    pub(crate) fn rtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }

    /// The most any suite adds to a packet: the tailroom a receive buffer keeps.
    pub fn max_overhead() -> usize {
        20
    }
}

/// Why a packet was refused. Each is counted per stream and per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Too short, or not an RTP/RTCP packet.
    Malformed,
    /// The authentication tag does not match: tampered, or protected with another key.
    AuthFailed,
    /// The index was accepted before, or is older than the replay window.
    Replayed,
    /// The buffer has no room for the tag.
    NoRoom,
    /// The key's lifetime (`|lifetime` of SDES) is used up.
    KeyExpired,
    /// No key yet: the offer/answer that gives the leg its SRTP keys has not settled them
    /// ([`crate::stage::Stage::Withheld`]).
    NoKey,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Self; 6] = [
        Self::Malformed,
        Self::AuthFailed,
        Self::Replayed,
        Self::NoRoom,
        Self::KeyExpired,
        Self::NoKey,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AuthFailed => "auth_failed",
            Self::Replayed => "replayed",
            Self::NoRoom => "no_room",
            Self::KeyExpired => "key_expired",
            Self::NoKey => "no_key",
        }
    }

    /// The position in [`Reject::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Malformed => 0,
            Self::AuthFailed => 1,
            Self::Replayed => 2,
            Self::NoRoom => 3,
            Self::KeyExpired => 4,
            Self::NoKey => 5,
        }
    }
}

/// A master key that does not fit its suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLengthError {
    /// Bytes expected (key and salt).
    pub expected: usize,
    /// Bytes given.
    pub got: usize,
}

impl std::fmt::Display for KeyLengthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SRTP master key and salt of {} bytes, the suite takes {}",
            self.got, self.expected
        )
    }
}

impl std::error::Error for KeyLengthError {}

#[cfg(test)]
mod tests;
