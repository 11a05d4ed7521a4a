//! The rtpengine "ng" control protocol: the codec the SBC answers Kamailio's and OpenSIPS's
//! `rtpengine` modules with, and the load tester drives rtpengine with. Pure: bytes in, typed
//! values out, and back; no socket, clock or allocation per message once buffers are warm.
//!
//! # Wire format
//! A datagram is `<cookie> <bencoded dictionary>`: a cookie chosen by the client (no space,
//! [`Limits::max_cookie`] bytes at most), one space, then one bencoded dictionary. The reply carries
//! the same cookie, so the client can match it and spot retransmissions. A request names its
//! command in the key `command`; a reply carries `result` (`ok`, `pong` or `error`, the last with
//! `error-reason`, the first optionally with `warning`).
//!
//! ```text
//! 5323_1 d7:command4:pinge          request  { "command": "ping" }
//! 5323_1 d6:result4:ponge           reply    { "result": "pong" }
//! ```
//!
//! # Liberal in what it accepts, as rtpengine is
//! - dictionary keys in any order (Kamailio writes `command` last);
//! - key, flag and keyword spellings match whatever their ASCII case and whether words are joined
//!   by `-`, `_` or a space (`media address`, `media-address`, `Media_Address`);
//! - a list may also be given as one comma-separated string, an integer as a decimal string;
//! - flags may carry the aliases rtpengine knows (`replace-origin`, `rtcp-mux-demux`, `SDES-off`
//!   in `flags`), and the whole option string may come as `rtpp-flags`;
//! - an unknown key, or a known key whose value cannot be used, is skipped and listed in the
//!   request ([`Request::ignored_keys`], [`Request::invalid_values`]); an unknown flag is kept
//!   ([`Request::other_flags`]) so the caller can warn.
//!
//! Strict where it protects the process: every size is bounded ([`Limits`]), malformed bencode is
//! refused with a typed [`bencode::DecodeError`], and nothing here can panic on any input. When the
//! cookie could be read, a failed parse still returns it ([`ParseError::cookie`]) so the caller can
//! answer `{"result":"error","error-reason":...}` with [`encode_error`].
//!
//! # Modules
//! - [`bencode`]: the bounded zero-copy decoder and the encoder.
//! - [`request`]: [`Request`] and its vocabulary ([`Command`], [`Flag`], [`Replace`], [`RtcpMux`],
//!   [`Ice`], ...), parsed from a decoded dictionary and encoded back.
//! - [`response`]: [`Reply`] with the call statistics of `query` and `delete` in the shape
//!   rtpengine returns (Kamailio's `$rtpstat` reads `totals` → `RTP`/`RTCP` →
//!   `bytes`/`packets`/`errors`), and [`ReplyView`], a parsed reply for the load tester.

use core::fmt;
use core::marker::PhantomData;

/// Define a protocol keyword enum: its variants, the spelling written on the wire, aliases accepted
/// on input, and a liberal parser (see [`name_eq`]).
macro_rules! keywords {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: &'static [Self] = &[ $( Self::$variant ),+ ];

            /// The spelling written on the wire.
            // A private keyword set (the request keys) only parses.
            #[allow(dead_code)]
            $vis fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire ),+
                }
            }

            /// Recognise a spelling, ignoring ASCII case and treating `-`, `_` and space alike.
            $vis fn parse(raw: &[u8]) -> Option<Self> {
                $(
                    if $crate::ng::codec::name_eq(raw, $wire) $(|| $crate::ng::codec::name_eq(raw, $alias))* {
                        return Some(Self::$variant);
                    }
                )+
                None
            }
        }

        impl $crate::ng::codec::SetMember for $name {
            fn bit(self) -> u32 {
                self as u32
            }
        }

        const _: () = assert!($name::ALL.len() <= 64);
    };
}

pub mod bencode;
pub mod request;
pub mod response;

pub use request::{
    AddressFamily, Command, Field, Flag, Ice, ReceivedFrom, Replace, Request, RtcpMux,
    TransportProtocol,
};
pub use response::{
    CallStats, Counters, MediaStats, Reply, ReplyView, ResultCode, StreamStats, TagStats, Totals,
};

/// Bounds on one ng message. Every one is checked before the work it protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest datagram, cookie included. Default 65535, the largest UDP payload (an offer for a
    /// WebRTC client with many candidates runs to a few kilobytes).
    pub max_datagram: usize,
    /// Longest cookie. Default 128 (Kamailio's cookies are about 20 bytes).
    pub max_cookie: usize,
    /// Bounds of the bencoded body: nesting depth, number of values, longest string.
    pub bencode: bencode::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_datagram: 65_535,
            max_cookie: 128,
            bencode: bencode::Limits::default(),
        }
    }
}

/// Why an ng message was refused. [`NgError::reason`] is the `error-reason` to send back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NgError {
    /// The datagram is larger than [`Limits::max_datagram`].
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No cookie: the datagram is empty, starts with a space, has no space after the cookie, or
    /// the cookie holds a control byte. No reply can be matched to it.
    NoCookie,
    /// A cookie longer than [`Limits::max_cookie`].
    CookieTooLong {
        /// The limit.
        max: usize,
    },
    /// The body is not valid bencode.
    Bencode(bencode::DecodeError),
    /// The body is valid bencode but not a dictionary.
    NotDictionary,
    /// A request without a `command` string.
    NoCommand,
    /// A `command` that is not an ng command.
    UnknownCommand,
    /// A known ng command that this implementation does not carry out.
    Unsupported(Command),
    /// A request without a field its command requires.
    Missing(Field),
    /// A reply without a `result` string.
    NoResult,
}

impl NgError {
    /// The `error-reason` to answer with: rtpengine's wording where it has one.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "Message too large",
            Self::NoCookie | Self::CookieTooLong { .. } => "Invalid cookie",
            Self::Bencode(_) | Self::NotDictionary => "Could not decode bencode dictionary",
            Self::NoCommand => "No command in message",
            Self::UnknownCommand => "Unrecognized command",
            Self::Unsupported(_) => "unsupported",
            Self::Missing(Field::Sdp) => "No SDP body in message",
            Self::Missing(Field::CallId) => "No call-id in message",
            Self::Missing(Field::FromTag) => "No from-tag in message",
            Self::Missing(Field::ToTag) => "No to-tag in message",
            Self::NoResult => "No result in reply",
        }
    }
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => write!(f, "datagram of {len} bytes, at most {max}"),
            Self::CookieTooLong { max } => write!(f, "cookie longer than {max} bytes"),
            Self::Bencode(e) => write!(f, "{}: {e}", self.reason()),
            Self::Unsupported(c) => write!(f, "command `{}` is not supported", c.name()),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for NgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bencode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<bencode::DecodeError> for NgError {
    fn from(e: bencode::DecodeError) -> Self {
        Self::Bencode(e)
    }
}

/// A refused message, with its cookie when the cookie could be read (then the caller can reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError<'a> {
    /// The cookie, if the datagram had a readable one.
    pub cookie: Option<&'a [u8]>,
    /// What was wrong.
    pub error: NgError,
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ParseError<'_> {}

/// Split a datagram into its cookie and its body at the first space. The cookie must be non-empty,
/// at most `max_cookie` bytes and free of ASCII control bytes; the body is returned with trailing
/// ASCII whitespace removed (hand-typed messages end in a newline).
pub fn split_cookie(datagram: &[u8], max_cookie: usize) -> Result<(&[u8], &[u8]), NgError> {
    // Look for the space only where a cookie may end, so a long datagram costs nothing here.
    let window = datagram
        .get(..max_cookie.saturating_add(1))
        .unwrap_or(datagram);
    let Some(space) = window.iter().position(|&b| b == b' ') else {
        return Err(if window.len() > max_cookie {
            NgError::CookieTooLong { max: max_cookie }
        } else {
            NgError::NoCookie
        });
    };
    let (cookie, rest) = datagram.split_at_checked(space).ok_or(NgError::NoCookie)?;
    if cookie.is_empty() || cookie.iter().any(u8::is_ascii_control) {
        return Err(NgError::NoCookie);
    }
    let body = rest.get(1..).unwrap_or_default();
    let trimmed = body.trim_ascii_end();
    Ok((cookie, trimmed))
}

/// A parsed request and the cookie to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The client's cookie, to be echoed in the reply.
    pub cookie: &'a [u8],
    /// The request.
    pub request: Request<'a>,
}

/// An ng codec for one worker: its [`Limits`] and the reusable bencode node table, so parsing
/// allocates nothing per message once warm (beyond the request's rarely used lists of unknown
/// flags and keys). Cheap to create; not shared between threads.
#[derive(Clone, Debug, Default)]
pub struct Codec {
    limits: Limits,
    decoder: bencode::Decoder,
}

impl Codec {
    /// A codec with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            decoder: bencode::Decoder::new(limits.bencode),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parse a request datagram. The result borrows from `datagram` only. Requests for commands
    /// that are known but not carried out here come back as `Ok` with [`Command::is_supported`]
    /// false (answer them with [`NgError::Unsupported`]); a supported command missing a required
    /// field is an error.
    pub fn parse_request<'a>(&mut self, datagram: &'a [u8]) -> Result<Message<'a>, ParseError<'a>> {
        let (cookie, body) = self.frame(datagram)?;
        let fail = |error| ParseError {
            cookie: Some(cookie),
            error,
        };
        let root = self.decoder.decode(body).map_err(|e| fail(e.into()))?;
        let dict = root.as_dict().ok_or_else(|| fail(NgError::NotDictionary))?;
        let request = Request::from_dict(dict).map_err(fail)?;
        Ok(Message { cookie, request })
    }

    /// Parse a reply datagram (the load tester's side). The result borrows from `datagram` only.
    pub fn parse_reply<'a>(
        &mut self,
        datagram: &'a [u8],
    ) -> Result<(&'a [u8], ReplyView<'a>), ParseError<'a>> {
        let (cookie, body) = self.frame(datagram)?;
        let fail = |error| ParseError {
            cookie: Some(cookie),
            error,
        };
        let root = self.decoder.decode(body).map_err(|e| fail(e.into()))?;
        let dict = root.as_dict().ok_or_else(|| fail(NgError::NotDictionary))?;
        let reply = ReplyView::from_dict(dict).map_err(fail)?;
        Ok((cookie, reply))
    }

    fn frame<'a>(&self, datagram: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ParseError<'a>> {
        let (cookie, body) =
            split_cookie(datagram, self.limits.max_cookie).map_err(|error| ParseError {
                cookie: None,
                error,
            })?;
        if datagram.len() > self.limits.max_datagram {
            return Err(ParseError {
                cookie: Some(cookie),
                error: NgError::TooLarge {
                    len: datagram.len(),
                    max: self.limits.max_datagram,
                },
            });
        }
        Ok((cookie, body))
    }
}

/// Append `<cookie> <reply>` to `out`.
pub fn encode_reply(cookie: &[u8], reply: &Reply<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(cookie);
    out.push(b' ');
    reply.encode(out);
}

/// Append `<cookie> {"result":"error","error-reason":<error.reason()>}` to `out`.
pub fn encode_error(cookie: &[u8], error: &NgError, out: &mut Vec<u8>) {
    encode_reply(
        cookie,
        &Reply::Error {
            reason: error.reason(),
        },
        out,
    );
}

/// Append `<cookie> <request>` to `out` (the load tester's side).
pub fn encode_request(cookie: &[u8], request: &Request<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(cookie);
    out.push(b' ');
    request.encode(out);
}

/// Whether `raw` spells `canonical`, ignoring ASCII case and treating `-`, `_` and space as one
/// separator: rtpengine accepts `media address` and `media-address`, `ICE` and `ice`.
pub(crate) fn name_eq(raw: &[u8], canonical: &str) -> bool {
    raw.len() == canonical.len()
        && raw
            .iter()
            .zip(canonical.as_bytes())
            .all(|(&a, &b)| fold(a) == fold(b))
}

/// `raw` without a leading `prefix` (compared as [`name_eq`] does), if it has one.
pub(crate) fn strip_name_prefix<'a>(raw: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let (head, tail) = raw.split_at_checked(prefix.len())?;
    let matches = head
        .iter()
        .zip(prefix.as_bytes())
        .all(|(&a, &b)| fold(a) == fold(b));
    matches.then_some(tail)
}

fn fold(b: u8) -> u8 {
    match b {
        b'_' | b' ' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

/// A keyword enum that fits in an [`EnumSet`] (at most 64 variants).
pub trait SetMember: Copy + 'static {
    /// The member's bit, below 64.
    fn bit(self) -> u32;
}

/// A set of keywords (flags, replace options, rtcp-mux options) in one `u64`: no allocation.
pub struct EnumSet<T> {
    bits: u64,
    _member: PhantomData<fn() -> T>,
}

impl<T: SetMember> EnumSet<T> {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            bits: 0,
            _member: PhantomData,
        }
    }

    /// Add a member.
    pub fn insert(&mut self, member: T) {
        self.bits |= 1u64.checked_shl(member.bit()).unwrap_or(0);
    }

    /// Remove a member.
    pub fn remove(&mut self, member: T) {
        self.bits &= !1u64.checked_shl(member.bit()).unwrap_or(0);
    }

    /// This set with `member` added.
    #[must_use]
    pub fn with(mut self, member: T) -> Self {
        self.insert(member);
        self
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: T) -> bool {
        self.bits & 1u64.checked_shl(member.bit()).unwrap_or(0) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The members among `all` (a keyword enum's `ALL`) that are in the set, in that order.
    pub fn members<'s>(&'s self, all: &'static [T]) -> impl Iterator<Item = T> + 's {
        all.iter().copied().filter(|m| self.contains(*m))
    }
}

impl<T: SetMember> FromIterator<T> for EnumSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Self::new();
        for member in iter {
            set.insert(member);
        }
        set
    }
}

impl<T> Clone for EnumSet<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for EnumSet<T> {}

impl<T> PartialEq for EnumSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits
    }
}

impl<T> Eq for EnumSet<T> {}

impl<T> Default for EnumSet<T> {
    fn default() -> Self {
        Self {
            bits: 0,
            _member: PhantomData,
        }
    }
}

impl<T> fmt::Debug for EnumSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnumSet({:#x})", self.bits)
    }
}

#[cfg(test)]
mod tests;
