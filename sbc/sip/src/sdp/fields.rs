//! Typed, borrowed views of the SDP lines the SBC reads and rewrites, each with a strict parser (returning
//! `None` on any fault) and a writer producing the canonical form (single spaces, no trailing blank).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Split off the first whitespace-separated token; returns it and the rest (leading blanks removed).
pub(crate) fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return None;
    }
    match s.find(|c: char| c.is_ascii_whitespace()) {
        Some(at) => {
            let (tok, rest) = s.split_at_checked(at)?;
            Some((
                tok,
                rest.trim_start_matches(|c: char| c.is_ascii_whitespace()),
            ))
        }
        None => Some((s, "")),
    }
}

/// A decimal number of at most `max_digits` digits, without sign or blank (`str::parse` would accept `+`).
pub(crate) fn parse_decimal<T: std::str::FromStr>(s: &str, max_digits: usize) -> Option<T> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A token as SDP writes it inside a line: not empty, no whitespace, no control character.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
}

/// A value that can follow `a=name:` (or fill a free-text field): no CR, LF or NUL.
pub(crate) fn is_line_safe(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// A host name as SDP allows in place of an address literal (RFC 1123 labels of letters, digits and
/// inner `-`; the last label not all digits, so that a bad dotted quad is not taken for a name).
fn is_hostname(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= 253
        && s.split('.').all(label_ok)
        && s.rsplit('.')
            .next()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `o=` (RFC 8866 §5.2): who created the session and which version of it this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'s> {
    /// The originator's login, `-` when there is none.
    pub username: &'s str,
    /// The session id (a numeric string by the RFC; kept as written).
    pub session_id: &'s str,
    /// The session version; RFC 3264 §8 asks it to increase with every changed offer.
    pub session_version: u64,
    /// Network type, `IN`.
    pub net_type: &'s str,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: &'s str,
    /// The originating host (address literal or name).
    pub address: &'s str,
}

impl<'s> Origin<'s> {
    /// Parse the value of an `o=` line (without `o=`): exactly six fields, the version a `u64`.
    pub fn parse(value: &'s str) -> Option<Self> {
        let (username, rest) = next_token(value)?;
        let (session_id, rest) = next_token(rest)?;
        let (version, rest) = next_token(rest)?;
        let (net_type, rest) = next_token(rest)?;
        let (addr_type, rest) = next_token(rest)?;
        let (address, rest) = next_token(rest)?;
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            username,
            session_id,
            session_version: parse_decimal(version, 20)?,
            net_type,
            addr_type,
            address,
        })
    }

    pub(crate) fn is_writable(&self) -> bool {
        [
            self.username,
            self.session_id,
            self.net_type,
            self.addr_type,
            self.address,
        ]
        .iter()
        .all(|f| is_token(f))
    }

    /// The whole line, `o=...`.
    pub(crate) fn to_line(self) -> String {
        let mut s = String::with_capacity(64);
        let _ = write!(
            s,
            "o={} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        );
        s
    }
}

/// `c=` (RFC 8866 §5.7): where media is sent, at session level or per media section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection<'s> {
    /// Network type, `IN`.
    pub net_type: &'s str,
    /// Address type, `IP4` or `IP6` (others kept as written).
    pub addr_type: &'s str,
    /// The address (literal or host name), without the multicast suffixes.
    pub address: &'s str,
    /// IPv4 multicast TTL (`/127`).
    pub ttl: Option<u8>,
    /// Multicast address count (`/3`).
    pub count: Option<u32>,
}

impl<'s> Connection<'s> {
    /// A unicast `IN IP4`/`IN IP6` connection for `address` (formatted by the caller, see
    /// [`Connection::addr_type_of`]).
    pub fn unicast(ip: &IpAddr, address: &'s str) -> Self {
        Self {
            net_type: "IN",
            addr_type: Self::addr_type_of(ip),
            address,
            ttl: None,
            count: None,
        }
    }

    /// `IP4` or `IP6` for an address.
    pub fn addr_type_of(ip: &IpAddr) -> &'static str {
        match ip {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        }
    }

    /// Parse the value of a `c=` line (without `c=`). For `IN IP4`/`IN IP6` the address must be a literal
    /// of that family or a host name; IPv4 takes `/ttl[/count]`, IPv6 takes `/count`.
    pub fn parse(value: &'s str) -> Option<Self> {
        let (net_type, rest) = next_token(value)?;
        let (addr_type, rest) = next_token(rest)?;
        let (full, rest) = next_token(rest)?;
        if !rest.is_empty() {
            return None;
        }
        Self::from_parts(net_type, addr_type, full)
    }

    /// Build from the three fields, the third possibly carrying `/ttl` and `/count`.
    pub(crate) fn from_parts(net_type: &'s str, addr_type: &'s str, full: &'s str) -> Option<Self> {
        let mut parts = full.split('/');
        let address = parts.next()?;
        let (ttl, count) = if addr_type.eq_ignore_ascii_case("IP4") {
            if !(address.parse::<Ipv4Addr>().is_ok() || is_hostname(address)) {
                return None;
            }
            let ttl = match parts.next() {
                Some(t) => Some(parse_decimal::<u8>(t, 3)?),
                None => None,
            };
            let count = match parts.next() {
                Some(c) => Some(parse_decimal::<u32>(c, 10)?),
                None => None,
            };
            (ttl, count)
        } else if addr_type.eq_ignore_ascii_case("IP6") {
            if !(address.parse::<Ipv6Addr>().is_ok() || is_hostname(address)) {
                return None;
            }
            let count = match parts.next() {
                Some(c) => Some(parse_decimal::<u32>(c, 10)?),
                None => None,
            };
            (None, count)
        } else {
            // An address type the SBC does not know: keep the field whole.
            return if is_token(full) {
                Some(Self {
                    net_type,
                    addr_type,
                    address: full,
                    ttl: None,
                    count: None,
                })
            } else {
                None
            };
        };
        if address.is_empty() || parts.next().is_some() || count == Some(0) {
            return None;
        }
        Some(Self {
            net_type,
            addr_type,
            address,
            ttl,
            count,
        })
    }

    /// The address as an IP literal, `None` for a host name.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// True for `0.0.0.0` (RFC 2543-style hold, RFC 3264 §8.4) or `::`.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    pub(crate) fn is_writable(&self) -> bool {
        is_token(self.net_type)
            && is_token(self.addr_type)
            && is_token(self.address)
            && !self.address.contains('/')
    }

    /// `nettype addrtype address[/ttl][/count]`, appended to `out`.
    pub(crate) fn write(&self, out: &mut String) {
        let _ = write!(out, "{} {} {}", self.net_type, self.addr_type, self.address);
        if let Some(ttl) = self.ttl {
            let _ = write!(out, "/{ttl}");
        }
        if let Some(count) = self.count {
            let _ = write!(out, "/{count}");
        }
    }
}

/// Why an `m=` line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MediaFault {
    /// Field count, proto or formats.
    Line,
    /// Port or port count.
    Port,
}

/// `m=` (RFC 8866 §5.14): one media stream offered or answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaLine<'s> {
    /// Media type: `audio`, `video`, `text`, `application`, `message`, `image`, ...
    pub media: &'s str,
    /// Transport port; 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2).
    pub port: u16,
    /// The number of ports (`/2`), when written.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...
    pub proto: &'s str,
    formats: &'s str,
}

impl<'s> MediaLine<'s> {
    /// Parse the value of an `m=` line (without `m=`). At least one format is required, except on a
    /// rejected stream (port 0), where some agents send none.
    pub(crate) fn parse(value: &'s str) -> Result<Self, MediaFault> {
        let (media, rest) = next_token(value).ok_or(MediaFault::Line)?;
        let (port_field, rest) = next_token(rest).ok_or(MediaFault::Line)?;
        let (proto, formats) = next_token(rest).ok_or(MediaFault::Line)?;
        let (port, port_count) = match port_field.split_once('/') {
            Some((p, n)) => {
                let n = parse_decimal::<u16>(n, 5)
                    .filter(|&n| n > 0)
                    .ok_or(MediaFault::Port)?;
                (p, Some(n))
            }
            None => (port_field, None),
        };
        let port = parse_decimal::<u16>(port, 5).ok_or(MediaFault::Port)?;
        let formats = formats.trim_end_matches(|c: char| c.is_ascii_whitespace());
        if formats.is_empty() && port != 0 {
            return Err(MediaFault::Line);
        }
        Ok(Self {
            media,
            port,
            port_count,
            proto,
            formats,
        })
    }

    /// The formats (RTP payload types as decimal strings for RTP profiles), in preference order.
    pub fn formats(&self) -> impl Iterator<Item = &'s str> + 's {
        self.formats.split_ascii_whitespace()
    }

    /// Whether `format` is listed.
    pub fn has_format(&self, format: &str) -> bool {
        self.formats().any(|f| f == format)
    }

    /// True when the port is 0: the stream is rejected (in an answer) or disabled (in an offer).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// True for an RTP profile (`RTP/...` or `.../RTP/...`), whose formats are payload types.
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }

    /// The whole line with the given fields.
    pub(crate) fn line_with<'f>(
        media: &str,
        port: u16,
        port_count: Option<u16>,
        proto: &str,
        formats: impl Iterator<Item = &'f str>,
    ) -> String {
        let mut s = String::with_capacity(64);
        let _ = write!(s, "m={media} {port}");
        if let Some(n) = port_count {
            let _ = write!(s, "/{n}");
        }
        s.push(' ');
        s.push_str(proto);
        for f in formats {
            s.push(' ');
            s.push_str(f);
        }
        s
    }
}

/// One `a=` line split into name and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribute<'s> {
    /// The attribute name as written.
    pub name: &'s str,
    /// The value after `:`; `None` for a property attribute such as `a=rtcp-mux`.
    pub value: Option<&'s str>,
}

impl<'s> Attribute<'s> {
    /// Split the value of an `a=` line (without `a=`); `None` when the name is empty.
    pub fn parse(text: &'s str) -> Option<Self> {
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        if name.is_empty() {
            return None;
        }
        Some(Self { name, value })
    }

    /// Whether the name is `name`, compared ASCII case-insensitively.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The first token of the value (the format of `rtpmap`/`fmtp`/`rtcp-fb`, the tag of `crypto`).
    pub fn key(&self) -> Option<&'s str> {
        next_token(self.value?).map(|(k, _)| k)
    }
}

/// The media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1, §6.1, §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Recognise a direction attribute name (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the agent sends media.
    pub fn sends(&self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the agent receives media.
    pub fn receives(&self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The same direction seen from the other side (`sendonly` ↔ `recvonly`), as an answer mirrors an
    /// offer (RFC 3264 §6.1).
    pub fn reversed(&self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => *other,
        }
    }

    /// The direction that puts a stream on hold (RFC 3264 §8.4): stop receiving, keep sending if sending.
    pub fn on_hold(&self) -> Self {
        if self.sends() {
            Self::SendOnly
        } else {
            Self::Inactive
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<params>]` (RFC 8866 §6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpMap<'s> {
    /// RTP payload type, 0..=127.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`, ...).
    pub encoding: &'s str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (channel count for audio), when written.
    pub params: Option<&'s str>,
}

impl<'s> RtpMap<'s> {
    /// Parse the value of an `rtpmap` attribute.
    pub fn parse(value: &'s str) -> Option<Self> {
        let (pt, rest) = next_token(value)?;
        let (spec, rest) = next_token(rest)?;
        if !rest.is_empty() {
            return None;
        }
        let payload_type = parse_decimal::<u8>(pt, 3).filter(|&p| p <= 127)?;
        let mut parts = spec.splitn(3, '/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = parse_decimal::<u32>(parts.next()?, 10)?;
        let params = parts.next();
        if params.is_some_and(str::is_empty) {
            return None;
        }
        Some(Self {
            payload_type,
            encoding,
            clock_rate,
            params,
        })
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.payload_type <= 127
            && is_token(self.encoding)
            && !self.encoding.contains('/')
            && self.params.is_none_or(is_token)
    }

    /// The attribute value, `<pt> <encoding>/<rate>[/<params>]`.
    pub(crate) fn to_value(self) -> String {
        let mut s = String::with_capacity(32);
        let _ = write!(
            s,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        );
        if let Some(p) = self.params {
            let _ = write!(s, "/{p}");
        }
        s
    }
}

/// `a=crypto:<tag> <suite> <key-params> [<session-params>]` (RFC 4568 §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crypto<'s> {
    /// The tag, 1 to 9 digits, unique within the media section.
    pub tag: u32,
    /// Crypto suite, e.g. `AES_CM_128_HMAC_SHA1_80`, `AEAD_AES_256_GCM`.
    pub suite: &'s str,
    /// Key parameters as written: one or more `inline:<key||salt>[|lifetime][|MKI:len]`, `;`-separated.
    pub key_params: &'s str,
    /// Session parameters (`KDR=`, `UNENCRYPTED_SRTP`, `WSH=`, ...), space-separated as written.
    pub session_params: Option<&'s str>,
}

impl<'s> Crypto<'s> {
    /// Parse the value of a `crypto` attribute.
    pub fn parse(value: &'s str) -> Option<Self> {
        let (tag, rest) = next_token(value)?;
        let (suite, rest) = next_token(rest)?;
        let (key_params, rest) = next_token(rest)?;
        let rest = rest.trim_end_matches(|c: char| c.is_ascii_whitespace());
        Some(Self {
            tag: parse_decimal(tag, 9)?,
            suite,
            key_params,
            session_params: (!rest.is_empty()).then_some(rest),
        })
    }

    /// The inline keys (`inline:` stripped, lifetime and MKI kept), in order.
    pub fn inline_keys(&self) -> impl Iterator<Item = &'s str> + 's {
        self.key_params
            .split(';')
            .filter_map(|k| k.strip_prefix("inline:"))
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.tag <= 999_999_999
            && is_token(self.suite)
            && is_token(self.key_params)
            && self
                .session_params
                .is_none_or(|p| !p.trim().is_empty() && is_line_safe(p))
    }

    /// The attribute value.
    pub(crate) fn to_value(self) -> String {
        let mut s = String::with_capacity(96);
        let _ = write!(s, "{} {} {}", self.tag, self.suite, self.key_params);
        if let Some(p) = self.session_params {
            s.push(' ');
            s.push_str(p);
        }
        s
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtcp<'s> {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when it differs from the media connection address.
    pub connection: Option<Connection<'s>>,
}

impl<'s> Rtcp<'s> {
    /// Parse the value of an `rtcp` attribute.
    pub fn parse(value: &'s str) -> Option<Self> {
        let (port, rest) = next_token(value)?;
        let port = parse_decimal(port, 5)?;
        if rest.is_empty() {
            return Some(Self {
                port,
                connection: None,
            });
        }
        Some(Self {
            port,
            connection: Some(Connection::parse(rest)?),
        })
    }

    /// The attribute value.
    pub(crate) fn to_value(self) -> String {
        let mut s = String::with_capacity(40);
        let _ = write!(s, "{}", self.port);
        if let Some(c) = self.connection {
            s.push(' ');
            c.write(&mut s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_numbers() {
        assert_eq!(next_token("  a  b "), Some(("a", "b ")));
        assert_eq!(next_token("   "), None);
        assert_eq!(parse_decimal::<u16>("+5", 5), None);
        assert_eq!(parse_decimal::<u16>("65536", 5), None);
        assert_eq!(parse_decimal::<u16>("65535", 5), Some(65535));
    }

    #[test]
    fn origin_parse_and_line() {
        let o = Origin::parse("- 123 456 IN IP4 10.0.0.1").unwrap();
        assert_eq!(o.session_version, 456);
        assert_eq!(o.to_line(), "o=- 123 456 IN IP4 10.0.0.1");
        assert!(Origin::parse("- 123 x IN IP4 10.0.0.1").is_none());
        assert!(Origin::parse("- 123 4 IN IP4").is_none());
        assert!(Origin::parse("- 123 4 IN IP4 a b").is_none());
    }

    #[test]
    fn connection_variants() {
        let c = Connection::parse("IN IP4 224.2.1.1/127/3").unwrap();
        assert_eq!(
            (c.address, c.ttl, c.count),
            ("224.2.1.1", Some(127), Some(3))
        );
        let c = Connection::parse("IN IP6 FF15::101/3").unwrap();
        assert_eq!((c.address, c.ttl, c.count), ("FF15::101", None, Some(3)));
        assert!(Connection::parse("IN IP4 0.0.0.0")
            .unwrap()
            .is_unspecified());
        assert!(Connection::parse("IN IP4 ::1").is_none());
        assert!(Connection::parse("IN IP4 1.2.3.4/300").is_none());
        assert!(Connection::parse("IN IP4 1.2.3.4/1/2/3").is_none());
        assert!(Connection::parse("IN IP4").is_none());
        assert!(Connection::parse("IN IP4 host.example.com").is_some());
        assert!(Connection::parse("IN IP4 192.168.1.500").is_none());
        assert!(Connection::parse("IN IP4 a..b").is_none());
        assert!(Connection::parse("IN IP4 -a.b").is_none());
        let mut s = String::new();
        Connection::parse("IN IP4 224.2.1.1/127/3")
            .unwrap()
            .write(&mut s);
        assert_eq!(s, "IN IP4 224.2.1.1/127/3");
    }

    #[test]
    fn media_line_variants() {
        let m = MediaLine::parse("audio 49170/2 RTP/AVP 0 8 101").unwrap();
        assert_eq!((m.port, m.port_count, m.proto), (49170, Some(2), "RTP/AVP"));
        assert_eq!(m.formats().collect::<Vec<_>>(), ["0", "8", "101"]);
        assert!(m.is_rtp());
        assert_eq!(
            MediaLine::parse("audio 70000 RTP/AVP 0"),
            Err(MediaFault::Port)
        );
        assert_eq!(
            MediaLine::parse("audio 1/0 RTP/AVP 0"),
            Err(MediaFault::Port)
        );
        assert_eq!(MediaLine::parse("audio 1 RTP/AVP"), Err(MediaFault::Line));
        assert!(MediaLine::parse("video 0 RTP/AVP").is_ok());
        assert!(!MediaLine::parse("image 9 udptl t38").unwrap().is_rtp());
    }

    #[test]
    fn direction_rules() {
        assert_eq!(Direction::from_name("SENDONLY"), Some(Direction::SendOnly));
        assert_eq!(Direction::SendRecv.on_hold(), Direction::SendOnly);
        assert_eq!(Direction::RecvOnly.on_hold(), Direction::Inactive);
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
    }

    #[test]
    fn rtpmap_crypto_rtcp() {
        let r = RtpMap::parse("111 opus/48000/2").unwrap();
        assert_eq!(
            (r.payload_type, r.encoding, r.clock_rate, r.params),
            (111, "opus", 48000, Some("2"))
        );
        assert!(RtpMap::parse("128 x/8000").is_none());
        assert!(RtpMap::parse("0 PCMU").is_none());
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20|1:4;inline:def KDR=1 UNENCRYPTED_SRTCP",
        )
        .unwrap();
        assert_eq!(c.session_params, Some("KDR=1 UNENCRYPTED_SRTCP"));
        assert_eq!(c.inline_keys().collect::<Vec<_>>(), ["abc|2^20|1:4", "def"]);
        assert_eq!(
            c.to_value(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20|1:4;inline:def KDR=1 UNENCRYPTED_SRTCP"
        );
        let r = Rtcp::parse("53020 IN IP4 126.16.64.4").unwrap();
        assert_eq!(r.port, 53020);
        assert_eq!(r.to_value(), "53020 IN IP4 126.16.64.4");
        assert!(Rtcp::parse("x").is_none());
    }
}
