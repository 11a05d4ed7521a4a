//! Typed, borrowed views of the headers the SBC works with: Via (RFC 3261 §20.42, RFC 3581), name-addr
//! for From/To/Contact/Route (§20.10, §25.1), CSeq (§20.16), and generic `;params`.
//!
//! The lexical helpers they share with the URI and message scanners are in `lex`.

use crate::error::ParseError;
pub use crate::lex::Params;
use crate::lex::{
    find_byte, is_token, is_ws, parse_decimal, quoted_end, split_byte, take_token, trim_ws,
    trim_ws_start,
};
use crate::names::Method;
use crate::uri::{parse_host_port, Host, Scheme, Uri};

/// One Via value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ...).
    pub transport: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parse one Via value (`SIP/2.0/UDP host:port;params`). Linear whitespace is allowed around the
    /// slashes, before the sent-by, and around `;` and `=` (RFC 3261 §25.1 `SLASH`, `SEMI`, `EQUAL`).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let (via, rest) = Self::parse_sent_by(text)?;
        let rest = trim_ws(rest);
        let params = if rest.is_empty() {
            Params::default()
        } else {
            let raw = rest.strip_prefix(';').ok_or(ParseError::BadVia)?;
            Params { raw }
        };
        if params.raw.is_empty() && !rest.is_empty() {
            // a lone `;` with nothing after it
            return Err(ParseError::BadVia);
        }
        if !params.is_valid() {
            return Err(ParseError::BadVia);
        }
        Ok(Self { params, ..via })
    }

    /// The part of a Via that routes an answer: sent-protocol and sent-by. Returns the view without
    /// parameters and the unparsed remainder. Used to tell a malformed Via that can still be answered
    /// from one that cannot.
    pub(crate) fn parse_sent_by(text: &'a str) -> Result<(Self, &'a str), ParseError> {
        let s = trim_ws(text);
        let (name, s) = take_token(s).ok_or(ParseError::BadVia)?;
        let _ = name;
        let s = trim_ws_start(s)
            .strip_prefix('/')
            .ok_or(ParseError::BadVia)?;
        let (_version, s) = take_token(trim_ws_start(s)).ok_or(ParseError::BadVia)?;
        let s = trim_ws_start(s)
            .strip_prefix('/')
            .ok_or(ParseError::BadVia)?;
        let (transport, s) = take_token(trim_ws_start(s)).ok_or(ParseError::BadVia)?;
        // LWS before sent-by is mandatory.
        let after = trim_ws_start(s);
        if after.len() == s.len() {
            return Err(ParseError::BadVia);
        }
        let end = after
            .bytes()
            .position(|b| b == b';' || is_ws(b))
            .unwrap_or(after.len());
        let (hostport, rest) = after.split_at(end);
        let (host, port) = parse_host_port(hostport).ok_or(ParseError::BadVia)?;
        Ok((
            Self {
                transport,
                host,
                port,
                params: Params::default(),
            },
            rest,
        ))
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
    /// The `received` parameter (RFC 3261 §18.2.1), as written (an IPv6 address may carry brackets,
    /// RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// The `rport` parameter (RFC 3581): `Some(None)` when present without value (or with a value that
    /// is not a port number).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| v.parse::<u16>().ok()))
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route, Record-Route, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted string keeps its quotes), if any.
    pub display: Option<&'a str>,
    /// The URI. A URI of a scheme other than sip/sips/tel is kept opaque (see [`Scheme::Other`]).
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`;tag=...`, `;expires=...`).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parse one name-addr / addr-spec value (RFC 3261 §20.10: in addr-spec form, parameters after the
    /// URI belong to the header, not the URI, and the URI may hold no `,`, `;` or `?`).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let s = trim_ws(text);
        let bytes = s.as_bytes();
        let (display, rest) = if bytes.first() == Some(&b'"') {
            let end = quoted_end(bytes, 0).ok_or(ParseError::BadUri)?;
            let (d, r) = s.split_at(end + 1);
            let r = trim_ws_start(r);
            if !r.starts_with('<') {
                return Err(ParseError::BadUri);
            }
            (Some(d), r)
        } else if let Some(lt) = find_byte(s, b'<') {
            let (d, r) = s.split_at(lt);
            let d = trim_ws(d);
            // display-name = *(token LWS): words of token characters
            if !d.split([' ', '\t']).all(|w| w.is_empty() || is_token(w)) {
                return Err(ParseError::BadUri);
            }
            ((!d.is_empty()).then_some(d), r)
        } else {
            // addr-spec
            let end = s
                .bytes()
                .position(|b| b == b';' || is_ws(b))
                .unwrap_or(s.len());
            let (u, r) = s.split_at(end);
            if u.bytes().any(|b| b == b'?' || b == b',') {
                return Err(ParseError::BadUri);
            }
            let uri = parse_header_uri(u)?;
            let params = header_params(r)?;
            return Ok(Self {
                display: None,
                uri,
                params,
            });
        };
        // rest starts with '<'
        let inner = rest.get(1..).ok_or(ParseError::BadUri)?;
        let gt = find_byte(inner, b'>').ok_or(ParseError::BadUri)?;
        let (u, r) = inner.split_at(gt);
        let r = r.get(1..).unwrap_or("");
        let uri = parse_header_uri(u)?;
        let params = header_params(r)?;
        Ok(Self {
            display,
            uri,
            params,
        })
    }
    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// The URI of a header field: sip/sips/tel parsed, any other well-formed absolute URI kept opaque
/// (RFC 4475 §3.3.4: unknown schemes outside the Request-URI are acceptable).
fn parse_header_uri(text: &str) -> Result<Uri<'_>, ParseError> {
    match Uri::parse(text) {
        Ok(u) => Ok(u),
        Err(ParseError::UnsupportedUriScheme) => {
            let (_, opaque) = split_byte(text, b':').ok_or(ParseError::BadUri)?;
            if opaque.is_empty()
                || opaque
                    .bytes()
                    .any(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"' | 0x7f))
            {
                return Err(ParseError::BadUri);
            }
            Ok(Uri {
                scheme: Scheme::Other,
                user: Some(opaque),
                password: None,
                host: Host::Domain(""),
                port: None,
                params: Params::default(),
                headers: None,
            })
        }
        Err(e) => Err(e),
    }
}

/// The header parameters after a URI: nothing, or `;` and a valid parameter list.
fn header_params(rest: &str) -> Result<Params<'_>, ParseError> {
    let r = trim_ws(rest);
    if r.is_empty() {
        return Ok(Params::default());
    }
    let raw = r.strip_prefix(';').ok_or(ParseError::BadUri)?;
    let params = Params { raw };
    if trim_ws(raw).is_empty() || !params.is_valid() {
        return Err(ParseError::BadUri);
    }
    Ok(params)
}

/// CSeq: sequence number and method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number (< 2^31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
    /// The method token as written.
    pub method_text: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parse a CSeq value: `1*DIGIT LWS Method`, the number below 2^31.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let (seq, method_text) = parse_cseq_parts(text).ok_or(ParseError::BadCSeq)?;
        let method = Method::from_token(method_text.as_bytes()).ok_or(ParseError::BadCSeq)?;
        Ok(Self {
            seq,
            method,
            method_text,
        })
    }
}

/// Split a CSeq value into number and method token, without building the `Method`.
pub(crate) fn parse_cseq_parts(text: &str) -> Option<(u32, &str)> {
    let s = trim_ws(text);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (num, rest) = s.split_at(digits);
    let seq = parse_decimal(num.as_bytes(), 0x7fff_ffff)?;
    let method = trim_ws_start(rest);
    if method.len() == rest.len() || !is_token(method) {
        return None;
    }
    Some((seq, method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::SplitTop;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn via_plain() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), None);
    }

    #[test]
    fn via_with_lws_everywhere() {
        // RFC 4475 §3.1.1.1, after unfolding
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  ",
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, Host::Domain("spindle.example.com"));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn via_ipv6_and_received() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:6050;received=[2001:db8::9:255];rport=7")
            .unwrap();
        assert_eq!(
            v.host,
            Host::V6("2001:db8::9:1".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(v.port, Some(6050));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert_eq!(v.rport(), Some(Some(7)));
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.branch(), Some("z9hG4bKas3"));
    }

    #[test]
    fn via_faults() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host;;",
            "SIP/2.0/UDP host;",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP host junk",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?}");
        }
        // sent-by still readable: the answer can be routed
        assert!(Via::parse_sent_by("SIP/2.0/UDP 192.0.2.15;;").is_ok());
    }

    #[test]
    fn name_addr_forms() {
        let n =
            NameAddr::parse("\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com> ; tag = 98asjd8")
                .unwrap();
        assert_eq!(n.display, Some("\"J Rosenberg \\\\\\\"\""));
        assert_eq!(n.uri.user, Some("jdrosen"));
        assert_eq!(n.tag(), Some("98asjd8"));

        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        assert_eq!(n.tag(), Some("323"));

        // addr-spec: the parameters belong to the header, not the URI
        let n = NameAddr::parse("sip:user@example.com;tag=abc").unwrap();
        assert_eq!(n.display, None);
        assert_eq!(n.tag(), Some("abc"));
        assert_eq!(n.uri.params.raw, "");

        // name-addr: the URI keeps its own parameters
        let n = NameAddr::parse("<sip:user@example.com;lr>;tag=abc").unwrap();
        assert_eq!(n.uri.params.get("lr"), Some(None));
        assert_eq!(n.tag(), Some("abc"));
    }

    #[test]
    fn name_addr_faults() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:user@example.com",
            "<sip:user@example.com> junk",
            "<sip:user@example.com>;;",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn name_addr_unknown_scheme_is_opaque() {
        let n = NameAddr::parse("<http://www.example.com>;tag=3234233").unwrap();
        assert_eq!(n.uri.scheme, Scheme::Other);
        assert_eq!(n.uri.user, Some("//www.example.com"));
        assert_eq!(n.tag(), Some("3234233"));
        assert!(NameAddr::parse("isbn:2983792873").is_ok());
    }

    #[test]
    fn quoted_string_escapes() {
        assert_eq!(quoted_end(br#""a\"b" x"#, 0), Some(5));
        assert_eq!(quoted_end(br#""a\\" x"#, 0), Some(4));
        assert_eq!(quoted_end(br#""unterminated"#, 0), None);
        assert_eq!(quoted_end(b"\"a\\\x00b\"", 0), Some(5));
    }

    #[test]
    fn split_top_level_commas() {
        let v: Vec<_> = SplitTop::new(
            r#""Doe, J" <sip:a@x;p="1,2">, <sip:[2001:db8::1]>,sip:b@y"#,
            b',',
        )
        .collect();
        assert_eq!(
            v,
            [
                r#""Doe, J" <sip:a@x;p="1,2">"#,
                " <sip:[2001:db8::1]>",
                "sip:b@y"
            ]
        );
    }

    #[test]
    fn params_iter_and_get() {
        let p = Params {
            raw: " Tag = x ; lr ;q=\"a;b\"",
        };
        let all: Vec<_> = p.iter().collect();
        assert_eq!(
            all,
            [("Tag", Some("x")), ("lr", None), ("q", Some("\"a;b\""))]
        );
        assert_eq!(p.get("tag"), Some(Some("x")));
        assert_eq!(p.get("LR"), Some(None));
        assert_eq!(p.get("nope"), None);
        assert!(p.is_valid());
        assert!(!Params { raw: "a;;b" }.is_valid());
        assert!(!Params { raw: "a=" }.is_valid());
    }

    #[test]
    fn cseq_parse() {
        let c = CSeq::parse("0009\t INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("2147483647 INVITE").is_ok());
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }
}
