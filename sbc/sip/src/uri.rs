//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), as borrowed views; IPv6 references per
//! RFC 5118. Escapes are kept as written; comparison helpers unescape.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::header::Params;

/// URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
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
    /// Parse a URI (addr-spec). Other absolute URIs (e.g. `http:`) fail with an error whose verdict is
    /// 416 when used as a Request-URI.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let _ = text;
        todo!()
    }
}
