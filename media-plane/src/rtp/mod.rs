//! Zero-copy RTP and RTCP views over a received datagram.
//!
//! - [`RtpHeader`] reads the RTP header (RFC 3550 §5.1) in place: version, padding, extension, CSRC
//!   count, marker, payload type, sequence number, timestamp, SSRC, the CSRC list and the header
//!   extension (§5.3.1). [`RtpHeader::parse`] checks only what the header itself announces, so it
//!   also accepts SRTP packets, whose payload (and padding) is encrypted; [`RtpHeader::payload`]
//!   checks the padding of a plain packet.
//! - [`RtpHeaderMut`] rewrites SSRC, sequence number, timestamp, payload type and marker in place,
//!   without touching any other byte.
//! - [`is_rtcp`] tells RTCP from RTP on a multiplexed port (RFC 5761 §4).
//! - [`RtcpCompound`] validates a compound RTCP packet (RFC 3550 §6.1, App. A.2) and walks its
//!   packets ([`RtcpPacket`]: SR, RR, SDES, BYE, APP and the others by number).
//!
//! Every length field is checked before use: a crafted datagram yields an [`RtpError`], never a
//! panic. Nothing here allocates.

mod rtcp;

pub use rtcp::{is_rtcp, RtcpCompound, RtcpIter, RtcpPacket, RtcpType};

use core::fmt;

/// The RTP version this crate speaks (RFC 3550 §5.1: "This specification defines the version to be
/// two").
pub const VERSION: u8 = 2;

/// Length of the fixed RTP header, before CSRCs and extension (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP or RTCP packet, or why a rewrite was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    /// The datagram ends before a part its own fields announce (fixed header, CSRC list, header
    /// extension, RTCP packet length).
    Truncated {
        /// Bytes the header announces.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// The version field is not 2.
    Version(u8),
    /// The padding bit is set, but the padding count (the last octet) is zero or longer than the
    /// space after the header.
    Padding {
        /// The last octet of the packet.
        count: u8,
        /// Bytes after the header (RTP) or after the 4-byte RTCP header.
        available: usize,
    },
    /// A payload type above 127 was given to a rewrite; it does not fit the 7-bit field.
    PayloadType(u8),
    /// An RTCP packet type outside 192..=223, the range RFC 5761 §4 reserves for RTCP.
    RtcpPacketType(u8),
    /// An RTCP packet too short for what its count field announces (report blocks, SDES chunks,
    /// BYE sources) or for its type's fixed part.
    RtcpTooShort {
        /// The packet type.
        packet_type: u8,
        /// Bytes the count field and type need.
        needed: usize,
        /// Bytes in the packet, padding excluded.
        len: usize,
    },
    /// An RTCP packet other than the last of its compound has the padding bit set (RFC 3550 §6.4.1:
    /// padding may only be needed on the last packet).
    RtcpPaddingNotLast,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, len } => {
                write!(f, "truncated: {needed} bytes announced, {len} present")
            }
            Self::Version(v) => write!(f, "version {v}, expected 2"),
            Self::Padding { count, available } => {
                write!(
                    f,
                    "padding count {count} with {available} bytes after the header"
                )
            }
            Self::PayloadType(pt) => write!(f, "payload type {pt} does not fit 7 bits"),
            Self::RtcpPacketType(pt) => write!(f, "RTCP packet type {pt} outside 192..=223"),
            Self::RtcpTooShort {
                packet_type,
                needed,
                len,
            } => write!(
                f,
                "RTCP packet type {packet_type}: {len} bytes, its count needs {needed}"
            ),
            Self::RtcpPaddingNotLast => f.write_str("RTCP padding on a packet that is not last"),
        }
    }
}

impl std::error::Error for RtpError {}

/// A read-only view of an RTP header (RFC 3550 §5.1) over a borrowed datagram.
///
/// Construction validates the version and that the CSRC list and the header extension fit the
/// datagram; the accessors are then infallible.
#[derive(Clone, Copy, Debug)]
pub struct RtpHeader<'a> {
    fixed: &'a [u8; FIXED_HEADER_LEN],
    /// Everything after the fixed header: CSRCs, extension, payload, padding.
    rest: &'a [u8],
    header_len: usize,
}

/// The RTP header extension (RFC 3550 §5.3.1): a profile-defined 16-bit value and the extension
/// data (a multiple of four bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The first 16 bits ("defined by profile"; 0xBEDE for RFC 8285 one-byte elements).
    pub profile: u16,
    /// The extension data, without its 4-byte preamble.
    pub data: &'a [u8],
}

impl<'a> RtpHeader<'a> {
    /// View `buf` as an RTP packet.
    ///
    /// Checks: at least 12 bytes; version 2; the CSRC list and the header extension (its length
    /// field counts 32-bit words) end inside `buf`. The padding is not checked here (see
    /// [`Self::payload`]), so SRTP packets pass too.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let Some((fixed, rest)) = buf.split_first_chunk::<FIXED_HEADER_LEN>() else {
            return Err(RtpError::Truncated {
                needed: FIXED_HEADER_LEN,
                len: buf.len(),
            });
        };
        let header_len = header_len(fixed, rest)?;
        Ok(Self {
            fixed,
            rest,
            header_len,
        })
    }

    /// The version field (always 2 once parsed).
    pub fn version(&self) -> u8 {
        self.fixed[0] >> 6
    }

    /// The padding bit: the packet ends with padding octets, the last of which counts them.
    pub fn padding(&self) -> bool {
        self.fixed[0] & 0x20 != 0
    }

    /// The extension bit: a header extension follows the CSRC list.
    pub fn extension(&self) -> bool {
        self.fixed[0] & 0x10 != 0
    }

    /// Number of CSRC identifiers after the fixed header (0..=15).
    pub fn csrc_count(&self) -> u8 {
        self.fixed[0] & 0x0f
    }

    /// The marker bit (profile-defined; in audio, the first packet of a talkspurt).
    pub fn marker(&self) -> bool {
        self.fixed[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    pub fn payload_type(&self) -> u8 {
        self.fixed[1] & 0x7f
    }

    /// The 16-bit sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.fixed[2], self.fixed[3]])
    }

    /// The 32-bit timestamp, in units of the payload's clock rate.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.fixed[4], self.fixed[5], self.fixed[6], self.fixed[7]])
    }

    /// The synchronization source identifier.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.fixed[8], self.fixed[9], self.fixed[10], self.fixed[11]])
    }

    /// The `index`-th contributing source, if `index < csrc_count()`.
    pub fn csrc(&self, index: usize) -> Option<u32> {
        if index >= usize::from(self.csrc_count()) {
            return None;
        }
        be_u32(self.rest, index.checked_mul(4)?)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.rest
            .chunks_exact(4)
            .take(usize::from(self.csrc_count()))
            .filter_map(|c| c.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)))
    }

    /// The header extension, when the extension bit is set.
    pub fn header_extension(&self) -> Option<HeaderExtension<'a>> {
        if !self.extension() {
            return None;
        }
        let at = 4 * usize::from(self.csrc_count());
        let profile = be_u16(self.rest, at)?;
        let data = self
            .rest
            .get(at.checked_add(4)?..self.header_len.checked_sub(FIXED_HEADER_LEN)?)?;
        Some(HeaderExtension { profile, data })
    }

    /// Length of the header: 12 + 4 × CSRC count + the extension (4 + 4 × its length field).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Length of the whole datagram the view covers.
    pub fn packet_len(&self) -> usize {
        FIXED_HEADER_LEN + self.rest.len()
    }

    /// Everything after the header, padding included (for SRTP: the encrypted payload and tag).
    pub fn payload_with_padding(&self) -> &'a [u8] {
        self.rest
            .get(self.header_len - FIXED_HEADER_LEN..)
            .unwrap_or_default()
    }

    /// Number of padding octets at the end (0 when the padding bit is clear).
    ///
    /// Fails when the padding bit is set and the last octet is 0 or counts past the header
    /// (RFC 3550 §5.1: the count includes itself).
    pub fn padding_len(&self) -> Result<usize, RtpError> {
        if !self.padding() {
            return Ok(0);
        }
        let available = self.payload_with_padding().len();
        let count = self.rest.last().copied().unwrap_or(0);
        if count == 0 || usize::from(count) > available {
            return Err(RtpError::Padding { count, available });
        }
        Ok(usize::from(count))
    }

    /// The payload of a plain (not SRTP) packet: after the header, without padding.
    pub fn payload(&self) -> Result<&'a [u8], RtpError> {
        let all = self.payload_with_padding();
        let pad = self.padding_len()?;
        Ok(all.get(..all.len() - pad).unwrap_or_default())
    }
}

/// A mutable view of an RTP header for in-place rewrites (SSRC, sequence, timestamp, payload type,
/// marker). Only the rewritten field's bytes change.
#[derive(Debug)]
pub struct RtpHeaderMut<'a> {
    fixed: &'a mut [u8; FIXED_HEADER_LEN],
    rest: &'a mut [u8],
    header_len: usize,
}

impl<'a> RtpHeaderMut<'a> {
    /// View `buf` as an RTP packet for rewriting; the same checks as [`RtpHeader::parse`].
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let len = buf.len();
        let Some((fixed, rest)) = buf.split_first_chunk_mut::<FIXED_HEADER_LEN>() else {
            return Err(RtpError::Truncated {
                needed: FIXED_HEADER_LEN,
                len,
            });
        };
        let header_len = header_len(fixed, rest)?;
        Ok(Self {
            fixed,
            rest,
            header_len,
        })
    }

    /// A read-only view of the same packet, for the accessors.
    pub fn header(&self) -> RtpHeader<'_> {
        RtpHeader {
            fixed: self.fixed,
            rest: self.rest,
            header_len: self.header_len,
        }
    }

    /// Set or clear the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        let [_, b1, ..] = &mut *self.fixed;
        *b1 = (*b1 & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Write the payload type, keeping the marker bit. Refuses values above 127.
    pub fn set_payload_type(&mut self, payload_type: u8) -> Result<(), RtpError> {
        if payload_type > 0x7f {
            return Err(RtpError::PayloadType(payload_type));
        }
        let [_, b1, ..] = &mut *self.fixed;
        *b1 = (*b1 & 0x80) | payload_type;
        Ok(())
    }

    /// Write the sequence number.
    pub fn set_sequence(&mut self, sequence: u16) {
        let [_, _, s0, s1, ..] = &mut *self.fixed;
        [*s0, *s1] = sequence.to_be_bytes();
    }

    /// Write the timestamp.
    pub fn set_timestamp(&mut self, timestamp: u32) {
        let [_, _, _, _, t0, t1, t2, t3, ..] = &mut *self.fixed;
        [*t0, *t1, *t2, *t3] = timestamp.to_be_bytes();
    }

    /// Write the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        let [.., s0, s1, s2, s3] = &mut *self.fixed;
        [*s0, *s1, *s2, *s3] = ssrc.to_be_bytes();
    }
}

/// Header length announced by the fixed header, checked against the bytes that follow it.
fn header_len(fixed: &[u8; FIXED_HEADER_LEN], rest: &[u8]) -> Result<usize, RtpError> {
    let len = FIXED_HEADER_LEN + rest.len();
    let version = fixed[0] >> 6;
    if version != VERSION {
        return Err(RtpError::Version(version));
    }
    let csrc_bytes = 4 * usize::from(fixed[0] & 0x0f);
    let mut needed = FIXED_HEADER_LEN + csrc_bytes;
    if fixed[0] & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16 bits of profile data, then the extension length in 32-bit words,
        // not counting the 4-byte preamble.
        needed += 4;
        let Some(words) = be_u16(rest, csrc_bytes + 2) else {
            return Err(RtpError::Truncated { needed, len });
        };
        needed += 4 * usize::from(words);
    }
    if needed > len {
        return Err(RtpError::Truncated { needed, len });
    }
    Ok(needed)
}

/// Big-endian u16 at `at`, if the bytes are there.
pub(crate) fn be_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?.first_chunk::<2>()?;
    Some(u16::from_be_bytes(*bytes))
}

/// Big-endian u32 at `at`, if the bytes are there.
pub(crate) fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A G.711 packet: V=2, PT 0, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304, 4 payload bytes.
    fn plain() -> Vec<u8> {
        vec![
            0x80, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb,
            0xcc, 0xdd,
        ]
    }

    #[test]
    fn fixed_header_fields() {
        let buf = plain();
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(h.version(), 2);
        assert!(!h.padding());
        assert!(!h.extension());
        assert_eq!(h.csrc_count(), 0);
        assert!(!h.marker());
        assert_eq!(h.payload_type(), 0);
        assert_eq!(h.sequence(), 0x1234);
        assert_eq!(h.timestamp(), 0xdead_beef);
        assert_eq!(h.ssrc(), 0x0102_0304);
        assert_eq!(h.header_len(), 12);
        assert_eq!(h.packet_len(), 16);
        assert_eq!(h.payload().unwrap(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(h.header_extension(), None);
        assert_eq!(h.csrc(0), None);
    }

    #[test]
    fn marker_and_dynamic_payload_type() {
        let mut buf = plain();
        buf[1] = 0x80 | 101;
        let h = RtpHeader::parse(&buf).unwrap();
        assert!(h.marker());
        assert_eq!(h.payload_type(), 101);
    }

    #[test]
    fn csrcs_and_extension_count_in_header_len() {
        // CC=2, X=1: 12 + 8 (CSRCs) + 4 (ext preamble) + 8 (2 words) = 32; then 3 payload bytes.
        let mut buf = vec![0x92, 0x08, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        buf.extend_from_slice(&[0, 0, 0, 0x11, 0, 0, 0, 0x22]);
        buf.extend_from_slice(&[0xbe, 0xde, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        buf.extend_from_slice(&[9, 9, 9]);
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(h.csrc_count(), 2);
        assert_eq!(h.csrc(0), Some(0x11));
        assert_eq!(h.csrc(1), Some(0x22));
        assert_eq!(h.csrc(2), None);
        assert_eq!(h.csrcs().collect::<Vec<_>>(), vec![0x11, 0x22]);
        assert_eq!(h.header_len(), 32);
        let ext = h.header_extension().unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(h.payload().unwrap(), &[9, 9, 9]);
    }

    #[test]
    fn header_only_packet_is_valid() {
        let buf = &plain()[..12];
        let h = RtpHeader::parse(buf).unwrap();
        assert_eq!(h.payload().unwrap(), &[] as &[u8]);
    }

    #[test]
    fn padding_is_removed_and_checked() {
        let mut buf = plain();
        buf[0] |= 0x20;
        buf.extend_from_slice(&[0, 0, 3]);
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(h.padding_len(), Ok(3));
        assert_eq!(h.payload().unwrap(), &[0xaa, 0xbb, 0xcc, 0xdd]);

        // count 0 is invalid: the count includes its own octet
        let last = buf.len() - 1;
        buf[last] = 0;
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(
            h.payload(),
            Err(RtpError::Padding {
                count: 0,
                available: 7
            })
        );
        // a count longer than the payload
        buf[last] = 8;
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(
            h.padding_len(),
            Err(RtpError::Padding {
                count: 8,
                available: 7
            })
        );
        // the whole payload may be padding
        buf[last] = 7;
        assert_eq!(
            RtpHeader::parse(&buf).unwrap().payload().unwrap(),
            &[] as &[u8]
        );
    }

    #[test]
    fn invalid_headers_are_typed_errors() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]).unwrap_err(),
            RtpError::Truncated {
                needed: 12,
                len: 11
            }
        );
        let mut buf = plain();
        buf[0] = 0x40;
        assert_eq!(RtpHeader::parse(&buf).unwrap_err(), RtpError::Version(1));
        // CC=2 but only one CSRC present
        let mut buf = plain();
        buf[0] = 0x82;
        buf.truncate(16);
        assert_eq!(
            RtpHeader::parse(&buf).unwrap_err(),
            RtpError::Truncated {
                needed: 20,
                len: 16
            }
        );
        // X=1 with the preamble cut
        let mut buf = plain();
        buf[0] = 0x90;
        buf.truncate(14);
        assert_eq!(
            RtpHeader::parse(&buf).unwrap_err(),
            RtpError::Truncated {
                needed: 16,
                len: 14
            }
        );
        // X=1, extension length runs past the end
        let mut buf = plain();
        buf[0] = 0x90;
        buf[12..16].copy_from_slice(&[0xbe, 0xde, 0x00, 0x05]);
        assert_eq!(
            RtpHeader::parse(&buf).unwrap_err(),
            RtpError::Truncated {
                needed: 36,
                len: 16
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut full = vec![0xb3, 0xe0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        full.extend_from_slice(&[0; 12]); // 3 CSRCs
        full.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 1, 2, 3, 4]); // extension, 1 word
        full.extend_from_slice(&[5, 5, 2]); // payload + 2 bytes padding
        assert_eq!(RtpHeader::parse(&full).unwrap().payload().unwrap(), &[5]);
        for len in 0..full.len() {
            let cut = &full[..len];
            match RtpHeader::parse(cut) {
                Ok(h) => {
                    assert!(len >= 32, "{len} bytes parsed");
                    // the padding count (2) is not the last octet of a cut packet
                    assert!(h.payload().is_err());
                }
                Err(e) => assert!(len < 32, "{len} bytes: {e}"),
            }
        }
    }

    #[test]
    fn rewrite_changes_only_its_field() {
        let original = plain();
        let mut buf = original.clone();
        let mut h = RtpHeaderMut::parse(&mut buf).unwrap();
        h.set_ssrc(0xcafe_f00d);
        h.set_sequence(0xfffe);
        h.set_timestamp(0x0000_0100);
        h.set_payload_type(8).unwrap();
        assert_eq!(h.set_payload_type(128), Err(RtpError::PayloadType(128)));
        h.set_marker(true);
        let view = h.header();
        assert_eq!(view.ssrc(), 0xcafe_f00d);
        assert_eq!(view.sequence(), 0xfffe);
        assert_eq!(view.timestamp(), 0x100);
        assert_eq!(view.payload_type(), 8);
        assert!(view.marker());
        assert_eq!(buf[0], original[0]);
        assert_eq!(buf[12..], original[12..]);
        assert_eq!(
            buf[..12],
            [0x80, 0x88, 0xff, 0xfe, 0, 0, 1, 0, 0xca, 0xfe, 0xf0, 0x0d]
        );

        let mut h = RtpHeaderMut::parse(&mut buf).unwrap();
        h.set_marker(false);
        h.set_payload_type(127).unwrap();
        assert_eq!(buf[1], 0x7f);
        let mut h = RtpHeaderMut::parse(&mut buf).unwrap();
        h.set_marker(true);
        assert_eq!(buf[1], 0xff);
    }

    #[test]
    fn rewrite_refuses_invalid_packets() {
        let mut buf = vec![0x80; 5];
        assert_eq!(
            RtpHeaderMut::parse(&mut buf).unwrap_err(),
            RtpError::Truncated { needed: 12, len: 5 }
        );
    }
}
