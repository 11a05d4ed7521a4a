//! SIP method and header names (RFC 3261 §7.1, §7.3.3, §20): the enums, their canonical spellings
//! and the compact forms. A leaf: the scanners and the error type name these without importing the
//! message module.

use crate::lex::is_token_byte;

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
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Update => "UPDATE",
            Self::Other(s) => s,
        }
    }
    /// Parse a method token (case-sensitive, RFC 3261 §7.1); `None` if it is not a valid token.
    /// Only an extension method allocates.
    pub fn from_token(token: &[u8]) -> Option<Self> {
        Some(match token {
            b"INVITE" => Self::Invite,
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"OPTIONS" => Self::Options,
            b"REGISTER" => Self::Register,
            b"PRACK" => Self::Prack,
            b"SUBSCRIBE" => Self::Subscribe,
            b"NOTIFY" => Self::Notify,
            b"PUBLISH" => Self::Publish,
            b"INFO" => Self::Info,
            b"REFER" => Self::Refer,
            b"MESSAGE" => Self::Message,
            b"UPDATE" => Self::Update,
            other => {
                if other.is_empty() || !other.iter().all(|b| is_token_byte(*b)) {
                    return None;
                }
                // token bytes are ASCII, so this never fails
                Self::Other(std::str::from_utf8(other).ok()?.into())
            }
        })
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
    /// Every recognised name (all variants but `Other`).
    pub const ALL: [Self; 22] = [
        Self::Via,
        Self::From,
        Self::To,
        Self::CallId,
        Self::CSeq,
        Self::MaxForwards,
        Self::Contact,
        Self::ContentLength,
        Self::ContentType,
        Self::ContentEncoding,
        Self::Route,
        Self::RecordRoute,
        Self::Require,
        Self::ProxyRequire,
        Self::Supported,
        Self::Allow,
        Self::Expires,
        Self::UserAgent,
        Self::Server,
        Self::Event,
        Self::ReferTo,
        Self::Subject,
    ];

    /// Recognise a header name (long or compact form, case-insensitive).
    pub fn from_bytes(name: &[u8]) -> Self {
        let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
        match name.len() {
            1 => match name.first().map(u8::to_ascii_lowercase) {
                Some(b'v') => Self::Via,
                Some(b'f') => Self::From,
                Some(b't') => Self::To,
                Some(b'i') => Self::CallId,
                Some(b'm') => Self::Contact,
                Some(b'l') => Self::ContentLength,
                Some(b'c') => Self::ContentType,
                Some(b'e') => Self::ContentEncoding,
                Some(b'k') => Self::Supported,
                Some(b'o') => Self::Event,
                Some(b'r') => Self::ReferTo,
                Some(b's') => Self::Subject,
                _ => Self::Other,
            },
            2 if eq(b"to") => Self::To,
            3 if eq(b"via") => Self::Via,
            4 if eq(b"from") => Self::From,
            4 if eq(b"cseq") => Self::CSeq,
            5 if eq(b"route") => Self::Route,
            5 if eq(b"allow") => Self::Allow,
            5 if eq(b"event") => Self::Event,
            6 if eq(b"server") => Self::Server,
            7 if eq(b"call-id") => Self::CallId,
            7 if eq(b"contact") => Self::Contact,
            7 if eq(b"require") => Self::Require,
            7 if eq(b"expires") => Self::Expires,
            7 if eq(b"subject") => Self::Subject,
            8 if eq(b"refer-to") => Self::ReferTo,
            9 if eq(b"supported") => Self::Supported,
            10 if eq(b"user-agent") => Self::UserAgent,
            12 if eq(b"max-forwards") => Self::MaxForwards,
            12 if eq(b"content-type") => Self::ContentType,
            12 if eq(b"record-route") => Self::RecordRoute,
            13 if eq(b"proxy-require") => Self::ProxyRequire,
            14 if eq(b"content-length") => Self::ContentLength,
            16 if eq(b"content-encoding") => Self::ContentEncoding,
            _ => Self::Other,
        }
    }
    /// The canonical long name, as the SBC writes it. `Other` has none.
    pub fn as_str(&self) -> Option<&'static str> {
        Some(match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::MaxForwards => "Max-Forwards",
            Self::Contact => "Contact",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::ContentEncoding => "Content-Encoding",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::Require => "Require",
            Self::ProxyRequire => "Proxy-Require",
            Self::Supported => "Supported",
            Self::Allow => "Allow",
            Self::Expires => "Expires",
            Self::UserAgent => "User-Agent",
            Self::Server => "Server",
            Self::Event => "Event",
            Self::ReferTo => "Refer-To",
            Self::Subject => "Subject",
            Self::Other => return None,
        })
    }
    /// Whether this header may carry several comma-separated values (RFC 3261 §7.3.1).
    pub fn is_multi_value(&self) -> bool {
        matches!(
            self,
            Self::Via
                | Self::Contact
                | Self::Route
                | Self::RecordRoute
                | Self::Require
                | Self::ProxyRequire
                | Self::Supported
                | Self::Allow
                | Self::ContentEncoding
        )
    }
}

/// The long form of a header name as written: recognised names in their canonical spelling, compact
/// forms the enum does not cover expanded (RFC 3261 §7.3.3 and the IANA SIP header registry), other
/// names unchanged.
pub fn long_header_name(name: &str) -> &str {
    if let Some(canonical) = HeaderName::from_bytes(name.as_bytes()).as_str() {
        return canonical;
    }
    expand_compact(name)
}

/// The long form of a compact header name the enum does not cover; other names are returned unchanged.
pub(crate) fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes().first().map(u8::to_ascii_lowercase) {
        Some(b'a') => "Accept-Contact",
        Some(b'b') => "Referred-By",
        Some(b'd') => "Request-Disposition",
        Some(b'j') => "Reject-Contact",
        Some(b'n') => "Identity-Info",
        Some(b'u') => "Allow-Events",
        Some(b'x') => "Session-Expires",
        Some(b'y') => "Identity",
        _ => name,
    }
}
