//! SIP messages (RFC 3261 §7, §20, §25): parsed once into an index of spans over the received bytes.
//!
//! `Message::parse` takes ownership of the datagram (a `Bytes`, so no copy), validates the start line and
//! the headers every request/response must carry (Via, From, To, Call-ID, CSeq; Max-Forwards is optional
//! as RFC 3261 §16.6 lets a proxy add it), and records where each header is. After that, accessors for
//! mandatory headers are infallible and return borrowed views. Folded header lines (RFC 3261 §7.3.1) are
//! unfolded into a normalized copy on the rare path where they appear.

use bytes::Bytes;

use crate::error::ParseError;
use crate::header::{CSeq, NameAddr, Via};

/// A SIP method (RFC 3261 §7.1 and extensions). Unknown extension methods are kept as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (RFC 3261)
    Invite,
    /// ACK (RFC 3261)
    Ack,
    /// BYE (RFC 3261)
    Bye,
    /// CANCEL (RFC 3261)
    Cancel,
    /// OPTIONS (RFC 3261)
    Options,
    /// REGISTER (RFC 3261)
    Register,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PUBLISH (RFC 3903)
    Publish,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// UPDATE (RFC 3311)
    Update,
    /// An extension method token, case-sensitive (RFC 3261 §7.1).
    Other(Box<str>),
}

impl Method {
    /// The method token as it goes on the wire.
    pub fn as_str(&self) -> &str {
        todo!()
    }
    /// Parse a method token (case-sensitive, RFC 3261 §7.1); `None` if it is not a valid token.
    pub fn from_token(token: &[u8]) -> Option<Self> {
        let _ = token;
        todo!()
    }
}

/// Header names the SBC looks at, recognised in long and compact form (RFC 3261 §7.3.3), case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    ContentLength,
    ContentType,
    ContentEncoding,
    Route,
    RecordRoute,
    Require,
    ProxyRequire,
    Supported,
    Allow,
    Expires,
    UserAgent,
    Server,
    Event,
    ReferTo,
    Subject,
    /// Any other header: the name is kept in the message as received.
    Other,
}

impl HeaderName {
    /// Recognise a header name (long or compact form, case-insensitive).
    pub fn from_bytes(name: &[u8]) -> Self {
        let _ = name;
        todo!()
    }
    /// The canonical long name, as the SBC writes it. `Other` has none.
    pub fn as_str(&self) -> Option<&'static str> {
        todo!()
    }
    /// Whether this header may carry several comma-separated values (RFC 3261 §7.3.1).
    pub fn is_multi_value(&self) -> bool {
        todo!()
    }
}

/// A parsed, validated SIP message: the received bytes plus an index of where everything is.
#[derive(Clone, Debug)]
pub struct Message {
    raw: Bytes,
}

/// One header field as received: name as written, recognised name, raw value (trimmed, unfolded).
#[derive(Clone, Copy, Debug)]
pub struct HeaderField<'a> {
    /// The recognised name (`Other` for the rest).
    pub name: HeaderName,
    /// The name exactly as written.
    pub raw_name: &'a str,
    /// The value, without leading/trailing whitespace; may hold several comma-separated values.
    pub value: &'a str,
}

impl Message {
    /// Parse and validate one complete message (one UDP datagram, or one frame cut by [`crate::framing`]).
    /// The datagram must hold exactly one message: Content-Length, when present, must match the body
    /// (RFC 3261 §18.3: a shorter body is a 400; extra bytes after it on a datagram are discarded).
    pub fn parse(raw: Bytes) -> Result<Self, ParseError> {
        let _ = raw;
        todo!()
    }
    /// The bytes the message was parsed from (unfolded if folding was present).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// True for requests, false for responses.
    pub fn is_request(&self) -> bool {
        todo!()
    }
    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        todo!()
    }
    /// The Request-URI as written; `None` for responses.
    pub fn request_uri(&self) -> Option<&str> {
        todo!()
    }
    /// The status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        todo!()
    }
    /// The reason phrase; `None` for requests.
    pub fn reason(&self) -> Option<&str> {
        todo!()
    }
    /// Every header field, in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        std::iter::empty()
    }
    /// The first field value of `name`, if any (for `Other`, use [`Message::header_by_name`]).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        let _ = name;
        todo!()
    }
    /// The first field value whose name matches `name` (case-insensitive, long or compact form).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }
    /// Every value of `name`, across repeated fields and comma-separated lists (commas inside quotes,
    /// angle brackets or IPv6 brackets do not split).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let _ = name;
        std::iter::empty()
    }
    /// Call-ID (mandatory, validated at parse).
    pub fn call_id(&self) -> &str {
        todo!()
    }
    /// CSeq (mandatory, validated at parse).
    pub fn cseq(&self) -> CSeq<'_> {
        todo!()
    }
    /// From (mandatory, validated at parse).
    pub fn from(&self) -> NameAddr<'_> {
        todo!()
    }
    /// To (mandatory, validated at parse).
    pub fn to(&self) -> NameAddr<'_> {
        todo!()
    }
    /// The topmost Via (mandatory, validated at parse).
    pub fn top_via(&self) -> Via<'_> {
        todo!()
    }
    /// Every Via value, topmost first (all validated at parse).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        std::iter::empty()
    }
    /// Max-Forwards, if present (validated at parse: 0..=255).
    pub fn max_forwards(&self) -> Option<u8> {
        todo!()
    }
    /// The message body (exactly Content-Length bytes).
    pub fn body(&self) -> &[u8] {
        todo!()
    }
    /// Serialize in canonical form (long header names, `Name: value\r\n`, Content-Length recomputed)
    /// into `out`, appending.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}
