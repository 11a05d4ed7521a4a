//! RTCP: demultiplexing from RTP (RFC 5761 §4) and the compound packet walker (RFC 3550 §6).

use super::{be_u32, RtpError, VERSION};

/// True when the datagram is RTCP rather than RTP on an rtcp-mux port (RFC 5761 §4): its second
/// octet, read as RTCP packet type, lies in 192..=223, which as RTP would be marker set and payload
/// type 64..=95, the range RFC 5761 keeps free of RTP payload types.
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// The RTCP packet types of RFC 3550 §12.1; others (feedback, XR, ...) by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtcpType {
    /// SR, 200: sender report.
    SenderReport,
    /// RR, 201: receiver report.
    ReceiverReport,
    /// SDES, 202: source description.
    SourceDescription,
    /// BYE, 203: goodbye.
    Goodbye,
    /// APP, 204: application-defined.
    App,
    /// Any other type in 192..=223 (205 RTPFB, 206 PSFB, 207 XR, ...).
    Other(u8),
}

impl From<u8> for RtcpType {
    fn from(value: u8) -> Self {
        match value {
            200 => Self::SenderReport,
            201 => Self::ReceiverReport,
            202 => Self::SourceDescription,
            203 => Self::Goodbye,
            204 => Self::App,
            other => Self::Other(other),
        }
    }
}

impl From<RtcpType> for u8 {
    fn from(value: RtcpType) -> Self {
        match value {
            RtcpType::SenderReport => 200,
            RtcpType::ReceiverReport => 201,
            RtcpType::SourceDescription => 202,
            RtcpType::Goodbye => 203,
            RtcpType::App => 204,
            RtcpType::Other(other) => other,
        }
    }
}

/// One RTCP packet inside a compound: the 4-byte common header (RFC 3550 §6.4.1) and its body, up
/// to the end its length field gives.
#[derive(Clone, Copy, Debug)]
pub struct RtcpPacket<'a> {
    header: &'a [u8; 4],
    /// The packet after its common header, padding included.
    body: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// View the first RTCP packet of `buf`, checking only its common header: version 2, a type in
    /// 192..=223, the length within `buf`, and enough bytes for its type and count field. The
    /// packets after it are not read, and the padding is not checked, so an SRTCP packet (whose
    /// body after the first 8 bytes is encrypted) passes too.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let (packet, _) = split_packet(buf)?;
        packet.check_min_len(packet.packet_len())?;
        Ok(packet)
    }

    /// The version field (2 once parsed).
    pub fn version(&self) -> u8 {
        self.header[0] >> 6
    }

    /// The padding bit.
    pub fn padding(&self) -> bool {
        self.header[0] & 0x20 != 0
    }

    /// The 5-bit count field: reception report count (SR, RR), source count (SDES, BYE), subtype
    /// (APP) or feedback message type (RTPFB, PSFB).
    pub fn count(&self) -> u8 {
        self.header[0] & 0x1f
    }

    /// The packet type.
    pub fn packet_type(&self) -> RtcpType {
        RtcpType::from(self.header[1])
    }

    /// The packet type as on the wire.
    pub fn raw_type(&self) -> u8 {
        self.header[1]
    }

    /// The length field: the packet's length in 32-bit words minus one.
    pub fn length_words(&self) -> u16 {
        u16::from_be_bytes([self.header[2], self.header[3]])
    }

    /// The packet's length in bytes, header and padding included.
    pub fn packet_len(&self) -> usize {
        4 + self.body.len()
    }

    /// The packet after its 4-byte common header, padding included.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The SSRC of the sender: the first 32-bit word after the common header. That is the sender's
    /// SSRC for SR, RR, APP, feedback and XR, the first chunk's SSRC/CSRC for SDES and the first
    /// source leaving for BYE. `None` for SDES and BYE with a count of zero, and for a packet with
    /// no body.
    pub fn sender_ssrc(&self) -> Option<u32> {
        if matches!(
            self.packet_type(),
            RtcpType::SourceDescription | RtcpType::Goodbye
        ) && self.count() == 0
        {
            return None;
        }
        be_u32(self.body, 0)
    }

    /// Checks that `content_len` bytes (the packet without padding) hold what the type and count
    /// announce (RFC 3550 §6.4-§6.7; RFC 4585 §6.1 for feedback).
    fn check_min_len(&self, content_len: usize) -> Result<(), RtpError> {
        let count = usize::from(self.count());
        let needed = match self.packet_type() {
            // header 4, sender SSRC 4, sender info 20, 24 per report block
            RtcpType::SenderReport => 28 + 24 * count,
            // header 4, sender SSRC 4, 24 per report block
            RtcpType::ReceiverReport => 8 + 24 * count,
            // each chunk: SSRC/CSRC 4 and at least one null octet, padded to 32 bits
            RtcpType::SourceDescription => 4 + 8 * count,
            // one SSRC/CSRC per source
            RtcpType::Goodbye => 4 + 4 * count,
            // SSRC and a 4-octet name
            RtcpType::App => 12,
            // RTPFB / PSFB: sender SSRC and media source SSRC
            RtcpType::Other(205 | 206) => 12,
            // XR: sender SSRC
            RtcpType::Other(207) => 8,
            RtcpType::Other(_) => 4,
        };
        if content_len < needed {
            return Err(RtpError::RtcpTooShort {
                packet_type: self.raw_type(),
                needed,
                len: content_len,
            });
        }
        Ok(())
    }
}

/// A validated compound RTCP packet (RFC 3550 §6.1).
///
/// [`Self::parse`] applies the checks of RFC 3550 App. A.2 that hold for every profile: each packet
/// has version 2 and an RTCP type, the length fields add up exactly to the datagram, only the last
/// packet carries padding, and each packet is long enough for its count. It does not insist on an SR
/// or RR first, so reduced-size RTCP (RFC 5506) passes.
#[derive(Clone, Copy, Debug)]
pub struct RtcpCompound<'a> {
    buf: &'a [u8],
    packets: usize,
}

impl<'a> RtcpCompound<'a> {
    /// Validate `buf` as a compound RTCP packet; see the type's doc for the checks.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let mut rest = buf;
        let mut packets = 0;
        loop {
            let (packet, after) = split_packet(rest)?;
            let mut content_len = packet.packet_len();
            if packet.padding() {
                if !after.is_empty() {
                    return Err(RtpError::RtcpPaddingNotLast);
                }
                let count = packet.body.last().copied().unwrap_or(0);
                let available = packet.body.len();
                if count == 0 || usize::from(count) > available {
                    return Err(RtpError::Padding { count, available });
                }
                content_len -= usize::from(count);
            }
            packet.check_min_len(content_len)?;
            packets += 1;
            if after.is_empty() {
                return Ok(Self { buf, packets });
            }
            rest = after;
        }
    }

    /// The packets, in order.
    pub fn iter(&self) -> RtcpIter<'a> {
        RtcpIter { rest: self.buf }
    }

    /// Number of packets in the compound (at least one).
    pub fn packet_count(&self) -> usize {
        self.packets
    }

    /// The whole compound.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

impl<'a> IntoIterator for &RtcpCompound<'a> {
    type Item = RtcpPacket<'a>;
    type IntoIter = RtcpIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the packets of an [`RtcpCompound`].
#[derive(Clone, Debug)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // The compound was validated, so this split cannot fail; on a failure the walk just ends.
        let (packet, after) = split_packet(self.rest).ok()?;
        self.rest = after;
        Some(packet)
    }
}

/// The first packet of `buf` (common header checked, length within `buf`) and the bytes after it.
fn split_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtpError> {
    let Some((header, after_header)) = buf.split_first_chunk::<4>() else {
        return Err(RtpError::Truncated {
            needed: 4,
            len: buf.len(),
        });
    };
    let version = header[0] >> 6;
    if version != VERSION {
        return Err(RtpError::Version(version));
    }
    if !(192..=223).contains(&header[1]) {
        return Err(RtpError::RtcpPacketType(header[1]));
    }
    let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let body_len = 4 * words;
    let Some((body, after)) = after_header.split_at_checked(body_len) else {
        return Err(RtpError::Truncated {
            needed: 4 + body_len,
            len: buf.len(),
        });
    };
    Ok((RtcpPacket { header, body }, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SR from SSRC 0x11111111 with one report block (52 bytes).
    fn sr() -> Vec<u8> {
        let mut p = vec![0x81, 200, 0, 12, 0x11, 0x11, 0x11, 0x11];
        p.extend_from_slice(&[0; 20]); // NTP, RTP ts, packet and octet count
        p.extend_from_slice(&[0x22, 0x22, 0x22, 0x22]); // report block SSRC
        p.extend_from_slice(&[0; 20]);
        p
    }

    /// RR from SSRC 0x33333333 with no report block.
    fn rr() -> Vec<u8> {
        vec![0x80, 201, 0, 1, 0x33, 0x33, 0x33, 0x33]
    }

    /// SDES with one chunk: SSRC 0x11111111, CNAME "ab", null, pad.
    fn sdes() -> Vec<u8> {
        vec![
            0x81, 202, 0, 3, 0x11, 0x11, 0x11, 0x11, 1, 2, b'a', b'b', 0, 0, 0, 0,
        ]
    }

    /// BYE for SSRC 0x11111111.
    fn bye() -> Vec<u8> {
        vec![0x81, 203, 0, 1, 0x11, 0x11, 0x11, 0x11]
    }

    /// APP from SSRC 0x44444444, name "TEST", 4 bytes data.
    fn app() -> Vec<u8> {
        vec![
            0x80, 204, 0, 3, 0x44, 0x44, 0x44, 0x44, b'T', b'E', b'S', b'T', 1, 2, 3, 4,
        ]
    }

    #[test]
    fn rtcp_mux_demultiplexing_by_second_octet() {
        // RFC 5761 §4: 192..=223 is RTCP; the RTP payload types around it are RTP.
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x80, 192]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 191])); // marker + PT 63
        assert!(!is_rtcp(&[0x80, 224])); // marker + PT 96
        assert!(!is_rtcp(&[0x80, 0])); // PCMU
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn walks_sr_sdes_bye_app() {
        let mut buf = sr();
        buf.extend(sdes());
        buf.extend(app());
        buf.extend(bye());
        let compound = RtcpCompound::parse(&buf).unwrap();
        assert_eq!(compound.packet_count(), 4);
        let seen: Vec<_> = compound
            .iter()
            .map(|p| (p.packet_type(), p.count(), p.packet_len(), p.sender_ssrc()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (RtcpType::SenderReport, 1, 52, Some(0x1111_1111)),
                (RtcpType::SourceDescription, 1, 16, Some(0x1111_1111)),
                (RtcpType::App, 0, 16, Some(0x4444_4444)),
                (RtcpType::Goodbye, 1, 8, Some(0x1111_1111)),
            ]
        );
        let first = compound.iter().next().unwrap();
        assert_eq!(first.version(), 2);
        assert_eq!(first.length_words(), 12);
        assert_eq!(first.raw_type(), 200);
        assert_eq!(first.body().len(), 48);
        assert_eq!((&compound).into_iter().count(), 4);
        assert_eq!(compound.as_bytes().len(), buf.len());
    }

    #[test]
    fn reduced_size_and_feedback_packets_pass() {
        // RFC 5506: a lone PSFB (PLI) without SR/RR first; RFC 4585 §6.3.1.
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let c = RtcpCompound::parse(&pli).unwrap();
        let p = c.iter().next().unwrap();
        assert_eq!(p.packet_type(), RtcpType::Other(206));
        assert_eq!(p.sender_ssrc(), Some(1));
        assert_eq!(c.packet_count(), 1);
        let buf = rr();
        let rr = RtcpCompound::parse(&buf).unwrap();
        assert_eq!(
            rr.iter().next().unwrap().packet_type(),
            RtcpType::ReceiverReport
        );
    }

    #[test]
    fn type_numbers_round_trip() {
        for t in 192..=223u8 {
            assert_eq!(u8::from(RtcpType::from(t)), t);
        }
    }

    #[test]
    fn bye_and_sdes_without_sources_have_no_sender() {
        let c = RtcpCompound::parse(&[0x80, 203, 0, 0]).unwrap();
        assert_eq!(c.iter().next().unwrap().sender_ssrc(), None);
        let c = RtcpCompound::parse(&[0x80, 202, 0, 0]).unwrap();
        assert_eq!(c.iter().next().unwrap().sender_ssrc(), None);
    }

    #[test]
    fn padding_only_on_the_last_packet() {
        // RR with 4 bytes of padding, last: valid
        let mut buf = sr();
        buf.extend_from_slice(&[0xa0, 201, 0, 2, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 4]);
        assert_eq!(RtcpCompound::parse(&buf).unwrap().packet_count(), 2);
        // the same RR first: padding not last
        let mut buf = vec![0xa0, 201, 0, 2, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 4];
        buf.extend(sr());
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::RtcpPaddingNotLast
        );
        // padding count 0, and padding eating into the SSRC the RR needs
        let zero = [0xa0, 201, 0, 2, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 0];
        assert_eq!(
            RtcpCompound::parse(&zero).unwrap_err(),
            RtpError::Padding {
                count: 0,
                available: 8
            }
        );
        let greedy = [0xa0, 201, 0, 2, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 8];
        assert_eq!(
            RtcpCompound::parse(&greedy).unwrap_err(),
            RtpError::RtcpTooShort {
                packet_type: 201,
                needed: 8,
                len: 4
            }
        );
        let past = [0xa0, 201, 0, 2, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 9];
        assert_eq!(
            RtcpCompound::parse(&past).unwrap_err(),
            RtpError::Padding {
                count: 9,
                available: 8
            }
        );
    }

    #[test]
    fn lengths_must_add_up() {
        // trailing garbage shorter than a header
        let mut buf = rr();
        buf.extend_from_slice(&[0x80, 201]);
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::Truncated { needed: 4, len: 2 }
        );
        // a length field past the end
        let mut buf = rr();
        buf[3] = 2;
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::Truncated { needed: 12, len: 8 }
        );
        assert_eq!(
            RtcpCompound::parse(&[]).unwrap_err(),
            RtpError::Truncated { needed: 4, len: 0 }
        );
    }

    #[test]
    fn header_fields_are_checked() {
        let mut buf = rr();
        buf[0] = 0x40;
        assert_eq!(RtcpCompound::parse(&buf).unwrap_err(), RtpError::Version(1));
        let mut buf = rr();
        buf[1] = 72;
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::RtcpPacketType(72)
        );
        // a second packet with an RTP-looking type
        let mut buf = rr();
        buf.extend_from_slice(&[0x80, 0x00, 0, 0]);
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::RtcpPacketType(0)
        );
    }

    #[test]
    fn counts_must_fit_the_length() {
        // RR claiming one report block with none present
        let mut buf = rr();
        buf[0] = 0x81;
        assert_eq!(
            RtcpCompound::parse(&buf).unwrap_err(),
            RtpError::RtcpTooShort {
                packet_type: 201,
                needed: 32,
                len: 8
            }
        );
        // SR without sender info
        let short_sr = [0x80, 200, 0, 1, 0, 0, 0, 1];
        assert!(matches!(
            RtcpCompound::parse(&short_sr),
            Err(RtpError::RtcpTooShort { needed: 28, .. })
        ));
        // BYE claiming two sources, one present
        let mut buf = bye();
        buf[0] = 0x82;
        assert!(matches!(
            RtcpCompound::parse(&buf),
            Err(RtpError::RtcpTooShort { needed: 12, .. })
        ));
        // APP without its name
        let app_short = [0x80, 204, 0, 1, 0, 0, 0, 1];
        assert!(matches!(
            RtcpCompound::parse(&app_short),
            Err(RtpError::RtcpTooShort { needed: 12, .. })
        ));
        assert_eq!(RtcpCompound::parse(&app()).unwrap().packet_count(), 1);
    }

    #[test]
    fn first_packet_view_ignores_what_follows() {
        // SRTCP-like: an SR followed by bytes that are not RTCP (encrypted) and a tag.
        let mut buf = sr();
        buf.extend_from_slice(&[0x13, 0x37, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 1, 2]);
        assert!(RtcpCompound::parse(&buf).is_err());
        let first = RtcpPacket::parse(&buf).unwrap();
        assert_eq!(first.packet_type(), RtcpType::SenderReport);
        assert_eq!(first.sender_ssrc(), Some(0x1111_1111));
        // the first header itself is still checked
        assert!(matches!(
            RtcpPacket::parse(&buf[..40]),
            Err(RtpError::Truncated { needed: 52, .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut full = sr();
        full.extend(sdes());
        full.extend(bye());
        for len in 0..full.len() {
            let cut = &full[..len];
            let ok = RtcpCompound::parse(cut).is_ok();
            // only the packet boundaries are valid cut points
            assert_eq!(ok, len == 52 || len == 68, "length {len}");
            let _ = RtcpPacket::parse(cut);
        }
        assert_eq!(RtcpCompound::parse(&full).unwrap().packet_count(), 3);
    }
}
