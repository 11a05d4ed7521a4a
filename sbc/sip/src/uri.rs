//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), as borrowed views; IPv6 references per
//! RFC 5118. Escapes are kept as written; comparison helpers unescape.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::lex::{
    find_byte, has_class, is_token_byte, split_byte, Params, SplitTop, HNV, HOSTNAME, PARAMCHAR,
    PASSWORD, USER,
};

/// URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other absolute URI, accepted in header fields only (RFC 4475 §3.3.4), never from
    /// [`Uri::parse`]: the text after `scheme:` is kept whole in `user`, `host` is `Domain("")`.
    Other,
}

/// The host part of a URI or Via.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name as written.
    Domain(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (`[...]` in the text, RFC 5118).
    V6(Ipv6Addr),
}

/// A parsed URI, borrowing the text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// Scheme.
    pub scheme: Scheme,
    /// User part (escaped as written), or the tel number.
    pub user: Option<&'a str>,
    /// Password (escaped as written).
    pub password: Option<&'a str>,
    /// Host (for `tel:` URIs: `Domain("")`).
    pub host: Host<'a>,
    /// Port, if written.
    pub port: Option<u16>,
    /// `;name=value` parameters.
    pub params: Params<'a>,
    /// `?headers` part, without the `?`.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Parse a URI (addr-spec). Other absolute URIs (e.g. `http:`) fail with
    /// [`ParseError::UnsupportedUriScheme`], whose verdict is 416 when used as a Request-URI; anything
    /// that is not an absolute URI at all fails with [`ParseError::BadUri`].
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let (scheme, rest) = split_byte(text, b':').ok_or(ParseError::BadUri)?;
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(Scheme::Sip, rest)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(Scheme::Sips, rest)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest)
        } else if is_scheme(scheme)
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b > b' ' && !matches!(b, b'<' | b'>' | b'"' | 0x7f))
        {
            Err(ParseError::UnsupportedUriScheme)
        } else {
            Err(ParseError::BadUri)
        }
    }
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Every byte satisfies `allowed`, and every `%` starts a two-hex-digit escape.
fn is_escaped_text(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else if allowed(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri<'_>, ParseError> {
    // '@' can only be the userinfo delimiter: neither hostport, params nor headers may hold one.
    let (user, password, hostpart) = match find_byte(rest, b'@') {
        Some(at) => {
            let (userinfo, h) = rest.split_at(at);
            let h = h.get(1..).unwrap_or("");
            let (user, password) = match split_byte(userinfo, b':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            // user = 1*( unreserved / escaped / user-unreserved )
            let user_ok = !user.is_empty() && is_escaped_text(user, |c| has_class(c, USER));
            let pass_ok = password.is_none_or(|p| is_escaped_text(p, |c| has_class(c, PASSWORD)));
            if !user_ok || !pass_ok {
                return Err(ParseError::BadUri);
            }
            (Some(user), password, h)
        }
        None => (None, None, rest),
    };
    let (before_headers, headers) = match split_byte(hostpart, b'?') {
        Some((a, h)) => (a, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = match split_byte(before_headers, b';') {
        Some((a, p)) => (a, p),
        None => (before_headers, ""),
    };
    let (host, port) = parse_host_port(hostport).ok_or(ParseError::BadUri)?;
    if !params.is_empty() && !valid_uri_params(params) {
        return Err(ParseError::BadUri);
    }
    if let Some(h) = headers {
        // headers = hname "=" hvalue *( "&" hname "=" hvalue )
        let ok = h.split('&').all(|hv| match split_byte(hv, b'=') {
            Some((n, v)) => {
                !n.is_empty() && is_escaped_text(n, is_hnv_char) && is_escaped_text(v, is_hnv_char)
            }
            None => false,
        });
        if !ok {
            return Err(ParseError::BadUri);
        }
    }
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params: Params { raw: params },
        headers,
    })
}

/// `hnv-unreserved / unreserved`.
fn is_hnv_char(c: u8) -> bool {
    has_class(c, HNV)
}

/// `uri-parameters`: each `pname[=pvalue]` of `paramchar`s, none empty.
fn valid_uri_params(params: &str) -> bool {
    let paramchar = |c: u8| has_class(c, PARAMCHAR);
    params.split(';').all(|p| match split_byte(p, b'=') {
        Some((n, v)) => {
            !n.is_empty()
                && !v.is_empty()
                && is_escaped_text(n, paramchar)
                && is_escaped_text(v, paramchar)
        }
        None => !p.is_empty() && is_escaped_text(p, paramchar),
    })
}

fn parse_tel(rest: &str) -> Result<Uri<'_>, ParseError> {
    let (number, params) = match split_byte(rest, b';') {
        Some((n, p)) => (n, p),
        None => (rest, ""),
    };
    // RFC 3966: global-number (+digits) or local-number (hex digits, * and #), visual separators -.()
    let ok = !number.is_empty()
        && number.bytes().all(|c| {
            c.is_ascii_hexdigit() || matches!(c, b'+' | b'*' | b'#' | b'-' | b'.' | b'(' | b')')
        });
    if !ok {
        return Err(ParseError::BadUri);
    }
    if !params.is_empty()
        && !SplitTop::new(params, b';').all(|p| {
            let name = split_byte(p, b'=').map_or(p, |(n, _)| n);
            !name.is_empty() && name.bytes().all(is_token_byte)
        })
    {
        return Err(ParseError::BadUri);
    }
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: Host::Domain(""),
        port: None,
        params: Params { raw: params },
        headers: None,
    })
}

/// `hostport` of a URI or a Via sent-by: a domain name, IPv4 address or bracketed IPv6 reference, then
/// an optional `:port`. `None` if malformed.
pub(crate) fn parse_host_port(s: &str) -> Option<(Host<'_>, Option<u16>)> {
    let (host, port_text) = if let Some(inner) = s.strip_prefix('[') {
        let (addr, after) = split_byte(inner, b']')?;
        let host = Host::V6(parse_ipv6(addr)?);
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        let (h, p) = match split_byte(s, b':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (parse_host_name(h)?, p)
    };
    let port = match port_text {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(p.parse::<u16>().ok()?)
        }
    };
    Some((host, port))
}

/// A domain name or an IPv4 address (RFC 3261 §25.1 `hostname / IPv4address`). The last label of a
/// host name starts with a letter, so a name that ends in a digit label must be an IPv4 address.
fn parse_host_name(h: &str) -> Option<Host<'_>> {
    if h.is_empty() || !h.bytes().all(|b| has_class(b, HOSTNAME)) {
        return None;
    }
    // first character of the last label (a trailing dot ends the name, RFC 3261 §25.1 hostname)
    let b = h.as_bytes();
    let end = b.iter().rposition(|c| *c != b'.').map_or(0, |e| e + 1);
    let label_start = b
        .get(..end)
        .and_then(|t| t.iter().rposition(|c| *c == b'.'))
        .map_or(0, |d| d + 1);
    if b.get(label_start).is_some_and(u8::is_ascii_digit) {
        return h.parse::<Ipv4Addr>().ok().map(Host::V4);
    }
    Some(Host::Domain(h))
}

/// An IPv6 address. RFC 5118 §4.10: RFC 3261's ABNF also admits a third colon before an embedded IPv4
/// address (`2001:db8:::192.0.2.1`); that form is tolerated and read as the two-colon one.
pub(crate) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some(a);
    }
    let at = s.find(":::")?;
    let mut buf = [0u8; 64];
    let b = s.as_bytes();
    if b.len() > buf.len() {
        return None;
    }
    let (head, tail) = b.split_at(at);
    let tail = tail.get(1..)?;
    let n = head.len() + tail.len();
    buf.get_mut(..head.len())?.copy_from_slice(head);
    buf.get_mut(head.len()..n)?.copy_from_slice(tail);
    let fixed = std::str::from_utf8(buf.get(..n)?).ok()?;
    // only the embedded-IPv4 form is the RFC 3261 ABNF defect
    if !fixed.rsplit(':').next().is_some_and(|l| l.contains('.')) {
        return None;
    }
    fixed.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_full() {
        let u =
            Uri::parse("sips:alice:secret@atlanta.example.com:5061;transport=tls;lr?subject=x&h=y")
                .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Domain("atlanta.example.com"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params.get("transport"), Some(Some("tls")));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x&h=y"));
    }

    #[test]
    fn user_part_may_hold_semicolons_and_escapes() {
        // RFC 4475 §3.1.1.9 and §3.1.1.2
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Domain("example.com"));
        let u = Uri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert!(Uri::parse("sip:null-%00-null@example.com").is_ok());
        assert!(Uri::parse("sip:bad%zzescape@example.com").is_err());
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, None);
        // RFC 5118 §4.3: inside the brackets it is all address
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port, None);
        // §4.4
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port, Some(5070));
        // §4.2: no brackets
        assert_eq!(Uri::parse("sip:2001:db8::10"), Err(ParseError::BadUri));
        // §4.10: three colons tolerated
        let u = Uri::parse("sip:user@[2001:db8:::192.0.2.1]").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::192.0.2.1".parse().unwrap()));
        assert!(Uri::parse("sip:[2001:db8:::1]").is_err());
        assert!(Uri::parse("sip:[::ffff:192.0.2.2]").is_ok());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Uri::parse("sip:192.0.2.4").unwrap().host,
            Host::V4(Ipv4Addr::new(192, 0, 2, 4))
        );
        assert!(Uri::parse("sip:192.0.2.300").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:host:").is_err());
        assert!(Uri::parse("sip:host:70000").is_err());
        assert!(Uri::parse("sip:ho st").is_err());
    }

    #[test]
    fn schemes() {
        assert_eq!(Uri::parse("SIP:a@b").unwrap().scheme, Scheme::Sip);
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        assert_eq!(t.params.get("phone-context"), Some(Some("example.com")));
        assert_eq!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent"),
            Err(ParseError::UnsupportedUriScheme)
        );
        assert_eq!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Err(ParseError::UnsupportedUriScheme)
        );
        assert_eq!(
            Uri::parse("<sip:user@example.com>"),
            Err(ParseError::BadUri)
        );
        assert_eq!(Uri::parse("no-colon"), Err(ParseError::BadUri));
    }

    #[test]
    fn uri_params_escaped() {
        // RFC 4475 §3.1.1.3
        let u =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(u.params.iter().count(), 2);
        assert!(Uri::parse("sip:a@b;;x").is_err());
        assert!(Uri::parse("sip:a@b;x=").is_err());
    }
}
