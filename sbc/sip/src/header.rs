//! Typed, borrowed views of the headers the SBC works with: Via (RFC 3261 §20.42, RFC 3581), name-addr
//! for From/To/Contact/Route (§20.10, §25.1), CSeq (§20.16), and generic `;params`.

use crate::error::ParseError;
use crate::message::Method;
use crate::uri::{Host, Uri};

/// A `;name[=value]` parameter list as written (without the leading `;`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params<'a> {
    /// The raw text, e.g. `branch=z9hG4bK1;rport`.
    pub raw: &'a str,
}

impl<'a> Params<'a> {
    /// Every parameter as (name, value); quoted values keep their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        std::iter::empty()
    }
    /// The value of `name` (case-insensitive). `Some(None)` for a parameter without value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        let _ = name;
        todo!()
    }
}

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
    /// Parse one Via value (`SIP/2.0/UDP host:port;params`).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let _ = text;
        todo!()
    }
    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        todo!()
    }
    /// The `received` parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&'a str> {
        todo!()
    }
    /// The `rport` parameter (RFC 3581): `Some(None)` when present without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        todo!()
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route, Record-Route, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted string keeps its quotes), if any.
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`;tag=...`, `;expires=...`).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parse one name-addr / addr-spec value (RFC 3261 §20.10: in addr-spec form, parameters after the
    /// URI belong to the header, not the URI).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let _ = text;
        todo!()
    }
    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        todo!()
    }
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
