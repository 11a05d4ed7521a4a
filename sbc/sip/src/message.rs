//! SIP messages (RFC 3261 §7, §20, §25): parsed once into an index of spans over the received bytes.
//!
//! `Message::parse` takes ownership of the datagram (a `Bytes`, so no copy), validates the start line and
//! the headers every request/response must carry (Via, From, To, Call-ID, CSeq; Max-Forwards is optional
//! as RFC 3261 §16.6 lets a proxy add it), and records where each header is. After that, accessors for
//! mandatory headers are infallible and return borrowed views. Folded header lines (RFC 3261 §7.3.1) are
//! unfolded into a normalized copy on the rare path where they appear.
//!
//! The index holds `u32` offsets into the bytes; typed views (`Via`, `NameAddr`, `CSeq`) are re-read from
//! their span on access, which is cheap and keeps `Message` free of self-references. Parsing a message
//! with up to [`INLINE_HEADERS`] header fields and a known method allocates nothing.

use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::error::{ParseError, Verdict};
use crate::header::{parse_cseq_parts, CSeq, NameAddr, Via};
use crate::lex::{
    has_class, is_token, is_token_byte, is_ws, parse_decimal, quoted_end, split_byte, trim_ws,
    trim_ws_start, Params, SplitTop, WORD,
};
use crate::names::expand_compact;
pub use crate::names::{long_header_name, HeaderName, Method};
use crate::uri::{Host, Scheme, Uri};

/// How many header fields the index holds without a heap allocation.
pub const INLINE_HEADERS: usize = 24;

/// Whether a datagram's start line looks like a request (it does not begin with `SIP/`), for choosing a
/// [`ParseError::verdict`] when the start line itself could not be parsed. Leading line breaks are
/// skipped as in parsing.
pub fn looks_like_request(raw: &[u8]) -> bool {
    let start = skip_leading_crlf(raw);
    match raw.get(start..) {
        Some(rest) if !rest.is_empty() => !rest
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/")),
        _ => false,
    }
}

/// What names the element that owns a received message, read by [`owner_key`] without parsing the
/// message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKey<'a> {
    /// A response: the `branch` of its topmost Via, made by the element that sent the request.
    Branch(&'a str),
    /// A request in a dialog: its To tag, made by the element the request is sent to.
    ToTag(&'a str),
}

/// The [`OwnerKey`] of a datagram, by a light scan: the start line tells a response from a request,
/// then the header lines are cut until the first Via (responses) or To (requests), and only the
/// parameters of that value are read (cut where [`Message::parse`] cuts them; the sent-by and the
/// URI are not parsed). Nothing else is validated, and nothing is allocated.
///
/// `None`: a request outside any dialog (no To tag), a response whose top Via has no branch, or
/// anything this scan cannot read (no such header, a folded line in it, bytes that are not text);
/// [`Message::parse`] then judges the message as usual. A key found here in a message the full
/// parse later refuses is harmless: it only picks where the refusal is made.
pub fn owner_key(raw: &[u8]) -> Option<OwnerKey<'_>> {
    let head_start = skip_leading_crlf(raw);
    let response = raw
        .get(head_start..head_start.checked_add(4)?)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    let want = if response {
        HeaderName::Via
    } else {
        HeaderName::To
    };
    let (_, mut pos) = line_at(raw, head_start)?;
    loop {
        let (end, next) = line_at(raw, pos)?;
        // The empty line ends the header section: no such header.
        if end == pos {
            return None;
        }
        let line = raw.get(pos..end)?;
        let name_len = line.iter().take_while(|b| is_token_byte(**b)).count();
        if HeaderName::from_bytes(line.get(..name_len)?) == want {
            // A folded value continues on the next line: left to the full parse, which unfolds.
            if raw.get(next).is_some_and(|b| is_ws(*b)) {
                return None;
            }
            let after = line.get(name_len..)?;
            let colon = after.iter().position(|b| !is_ws(*b))?;
            if after.get(colon) != Some(&b':') {
                return None;
            }
            let value = std::str::from_utf8(after.get(colon.checked_add(1)?..)?).ok()?;
            return if response {
                top_via_branch(value).map(OwnerKey::Branch)
            } else {
                name_addr_tag(value).map(OwnerKey::ToTag)
            };
        }
        pos = next;
    }
}

/// The `branch` of the first Via in a Via field value, read from its parameters alone (the sent-by,
/// which holds no `;`, is not parsed).
fn top_via_branch(value: &str) -> Option<&str> {
    let top = if has_quote(value) {
        SplitTop::new(value, b',').next()?
    } else {
        cut(value, b',').map_or(value, |(top, _)| top)
    };
    let (_, params) = cut(top, b';')?;
    param(params, "branch")
}

/// The `tag` of a name-addr or addr-spec (To), read from its header parameters alone: they are cut
/// where [`NameAddr::parse`] cuts them (after `>`, or after the first `;` of an addr-spec), and the
/// URI is not parsed.
fn name_addr_tag(value: &str) -> Option<&str> {
    let s = trim_ws(value);
    let bytes = s.as_bytes();
    let angle = if bytes.first() == Some(&b'"') {
        let end = quoted_end(bytes, 0)?;
        let rest = trim_ws_start(s.get(end.checked_add(1)?..)?);
        rest.starts_with('<').then_some(rest)?
    } else if let Some((_, uri)) = cut(s, b'<') {
        uri
    } else {
        let (_, params) = cut(s, b';')?;
        return param(params, "tag");
    };
    let (_, after) = cut(angle, b'>')?;
    let params = trim_ws(after).strip_prefix(';')?;
    param(params, "tag")
}

/// The value of parameter `name` in a `;name[=value]` list (without its leading `;`), as
/// [`Params::get`] reads it; the plain case (no quoted string) is cut with `memchr`.
fn param<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    if has_quote(raw) {
        return Params { raw }.get(name).flatten();
    }
    let mut rest = Some(raw);
    while let Some(r) = rest {
        let (seg, next) = cut(r, b';').map_or((r, None), |(seg, next)| (seg, Some(next)));
        rest = next;
        let (n, v) = cut(seg, b'=').map_or((seg, None), |(n, v)| (n, Some(v)));
        if trim_ws(n).eq_ignore_ascii_case(name) {
            return v.map(trim_ws);
        }
    }
    None
}

/// `s` around its first `b` (an ASCII byte, so both halves are text), found with `memchr`.
fn cut(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(b, s.as_bytes())?;
    Some((s.get(..i)?, s.get(i.checked_add(1)?..)?))
}

fn has_quote(s: &str) -> bool {
    memchr::memchr(b'"', s.as_bytes()).is_some()
}

/// How the offsets of a message move when its top Via value is replaced
/// ([`Message::set_valid_top_via`]).
#[derive(Clone, Copy)]
struct Splice {
    /// The old value's end: offsets at or after it move.
    at: u32,
    /// The old value's length.
    cut: u32,
    /// The new value's length.
    grow: u32,
    /// The new message's length.
    len: u32,
    /// The new top Via value, and its branch.
    top_via: Span,
    top_branch: Option<Span>,
}

impl Splice {
    /// Offsets at or after the old value's end move by the change of length; spans holding the
    /// value (its header field's) grow or shrink with it.
    fn shift(self, x: u32) -> u32 {
        if x >= self.at {
            // x - cut + grow never exceeds the new length, which fits in u32.
            x.saturating_sub(self.cut)
                .saturating_add(self.grow)
                .min(self.len)
        } else {
            x
        }
    }
}

/// A byte range of the message, as `u32` offsets (the message length is checked to fit at parse).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Callers only pass offsets within a message whose length fits in `u32`.
    fn new(start: usize, end: usize) -> Self {
        Self {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug)]
struct HeaderIdx {
    name: HeaderName,
    raw_name: Span,
    value: Span,
}

#[derive(Clone, Debug)]
enum StartLine {
    Request { method: Method, uri: Span },
    Response { status: u16, reason: Span },
}

/// Everything `Message` knows besides the bytes.
#[derive(Clone, Debug)]
struct Index {
    start: StartLine,
    headers: SmallVec<[HeaderIdx; INLINE_HEADERS]>,
    body: Span,
    call_id: Span,
    from: Span,
    to: Span,
    /// The `tag` parameter of From and To, found at parse (dialog matching asks for them often).
    from_tag: Option<Span>,
    to_tag: Option<Span>,
    top_via: Span,
    /// The `branch` parameter of the top Via (transaction matching asks for it on every message).
    top_branch: Option<Span>,
    cseq_seq: u32,
    cseq_method: Method,
    cseq_method_text: Span,
    max_forwards: Option<u8>,
}

/// A parsed, validated SIP message: the received bytes plus an index of where everything is.
#[derive(Clone, Debug)]
pub struct Message {
    raw: Bytes,
    idx: Index,
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

/// Why indexing stopped: a fault, or folded lines that must be unfolded first.
enum Stop {
    Fault(ParseError),
    Folded,
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Self {
        Self::Fault(e)
    }
}

impl Message {
    /// Parse and validate one complete message (one UDP datagram, or one frame cut by [`crate::framing`]).
    /// The datagram must hold exactly one message: Content-Length, when present, must match the body
    /// (RFC 3261 §18.3: a shorter body is a 400; extra bytes after it on a datagram are discarded).
    /// Without Content-Length the body is the rest of the datagram.
    ///
    /// On a faulty request whose topmost Via cannot be read, the error is
    /// [`ParseError::UnroutableVia`] or [`ParseError::MissingHeader`]`(Via)` whatever the first fault
    /// was, since no answer can be routed (verdict: drop).
    pub fn parse(raw: Bytes) -> Result<Self, ParseError> {
        let fault = match index(&raw) {
            Ok(idx) => return Ok(Self { raw, idx }),
            Err(Stop::Fault(e)) => e,
            Err(Stop::Folded) => {
                let unfolded = Bytes::from(unfold(&raw));
                match index(&unfolded) {
                    Ok(idx) => return Ok(Self { raw: unfolded, idx }),
                    Err(Stop::Fault(e)) => e,
                    // unfolding leaves no continuation line behind
                    Err(Stop::Folded) => ParseError::BadHeaderLine,
                }
            }
        };
        if matches!(fault.verdict(true), Verdict::Reply(..)) && looks_like_request(&raw) {
            if let Some(unroutable) = routing_fault(&raw) {
                return Err(unroutable);
            }
        }
        Err(fault)
    }
    /// The bytes the message was parsed from (unfolded if folding was present).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// True for requests, false for responses.
    pub fn is_request(&self) -> bool {
        matches!(self.idx.start, StartLine::Request { .. })
    }
    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        match &self.idx.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }
    /// The Request-URI as written; `None` for responses.
    pub fn request_uri(&self) -> Option<&str> {
        match self.idx.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }
    /// The status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match self.idx.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }
    /// The reason phrase; `None` for requests.
    pub fn reason(&self) -> Option<&str> {
        match self.idx.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }
    /// Every header field, in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        self.idx.headers.iter().map(move |h| HeaderField {
            name: h.name,
            raw_name: self.text(h.raw_name),
            value: self.text(h.value),
        })
    }
    /// The first field value of `name`, if any (for `Other`, use [`Message::header_by_name`]).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        if name == HeaderName::Other {
            return None;
        }
        self.idx
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.text(h.value))
    }
    /// The first field value whose name matches `name` (case-insensitive, long or compact form).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        let known = HeaderName::from_bytes(name.as_bytes());
        if known != HeaderName::Other {
            return self.header(known);
        }
        let wanted = expand_compact(name);
        self.idx
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::Other)
            .find(|h| expand_compact(self.text(h.raw_name)).eq_ignore_ascii_case(wanted))
            .map(|h| self.text(h.value))
    }
    /// Every value of `name`, across repeated fields and comma-separated lists (commas inside quotes,
    /// angle brackets or IPv6 brackets do not split). Only headers whose grammar is a list
    /// ([`HeaderName::is_multi_value`]) are split; empty list elements are skipped.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let split = name.is_multi_value();
        self.idx
            .headers
            .iter()
            .filter(move |h| h.name == name && name != HeaderName::Other)
            .flat_map(move |h| {
                let v = self.text(h.value);
                SplitTop::new(v, b',').with_split(split)
            })
            .map(trim_ws)
            .filter(|v| !v.is_empty())
    }
    /// Call-ID (mandatory, validated at parse).
    pub fn call_id(&self) -> &str {
        self.text(self.idx.call_id)
    }
    /// CSeq (mandatory, validated at parse).
    pub fn cseq(&self) -> CSeq<'_> {
        CSeq {
            seq: self.idx.cseq_seq,
            method: self.idx.cseq_method.clone(),
            method_text: self.text(self.idx.cseq_method_text),
        }
    }
    /// From (mandatory, validated at parse).
    pub fn from(&self) -> NameAddr<'_> {
        NameAddr::parse(self.text(self.idx.from)).unwrap_or(EMPTY_NAME_ADDR)
    }
    /// To (mandatory, validated at parse).
    pub fn to(&self) -> NameAddr<'_> {
        NameAddr::parse(self.text(self.idx.to)).unwrap_or(EMPTY_NAME_ADDR)
    }
    /// The From tag: `self.from_tag()` without parsing From again (found at parse).
    pub fn from_tag(&self) -> Option<&str> {
        self.idx.from_tag.map(|s| self.text(s))
    }
    /// The To tag: `self.to_tag()` without parsing To again (found at parse).
    pub fn to_tag(&self) -> Option<&str> {
        self.idx.to_tag.map(|s| self.text(s))
    }
    /// The `branch` of the topmost Via: `self.top_via().branch()` without parsing the Via again.
    pub fn top_branch(&self) -> Option<&str> {
        self.idx.top_branch.map(|s| self.text(s))
    }
    /// The text of the topmost Via value (one value, validated at parse).
    pub fn top_via_text(&self) -> &str {
        self.text(self.idx.top_via)
    }
    /// The topmost Via (mandatory, validated at parse).
    pub fn top_via(&self) -> Via<'_> {
        Via::parse(self.text(self.idx.top_via)).unwrap_or(EMPTY_VIA)
    }
    /// This message with its topmost Via value replaced by `value` (one Via, validated here), for
    /// stamping `received`/`rport` on arrival (RFC 3581 §4). The index is shifted, not rebuilt: no
    /// second parse of the whole message. `None` when `value` is not a valid Via or the result
    /// would not fit the message size limit of the index.
    pub fn with_top_via(&self, value: &str) -> Option<Self> {
        Via::parse(value).ok()?;
        let mut m = self.clone();
        m.set_valid_top_via(value).then_some(m)
    }

    /// [`Message::with_top_via`] in place, for a `value` already known to be one valid Via value (built from a
    /// parsed one, as the NAT stamp is): it is not parsed again, only its `branch` is found, read
    /// the way [`owner_key`] reads it, and the index is shifted in place. A `value` that is not a
    /// valid Via makes a message whose top Via does not parse: use [`Message::with_top_via`] for
    /// values from elsewhere. `false` (the message unchanged) when the result would not fit the
    /// index's size limit.
    pub fn set_valid_top_via(&mut self, value: &str) -> bool {
        let Some((raw, splice)) = self.splice_top_via(value) else {
            return false;
        };
        let span = |sp: Span| Span {
            start: splice.shift(sp.start),
            end: splice.shift(sp.end),
        };
        let idx = &mut self.idx;
        match &mut idx.start {
            StartLine::Request { uri, .. } => *uri = span(*uri),
            StartLine::Response { reason, .. } => *reason = span(*reason),
        }
        for h in &mut idx.headers {
            h.raw_name = span(h.raw_name);
            h.value = span(h.value);
        }
        idx.body = span(idx.body);
        idx.call_id = span(idx.call_id);
        idx.from = span(idx.from);
        idx.to = span(idx.to);
        idx.from_tag = idx.from_tag.map(span);
        idx.to_tag = idx.to_tag.map(span);
        idx.cseq_method_text = span(idx.cseq_method_text);
        idx.top_via = splice.top_via;
        idx.top_branch = splice.top_branch;
        self.raw = raw;
        true
    }

    /// The bytes of this message with its top Via value replaced by `value`, and how its offsets
    /// move; `None` when the result would not fit in `u32` offsets.
    fn splice_top_via(&self, value: &str) -> Option<(Bytes, Splice)> {
        let old = self.idx.top_via;
        let (s, e) = (old.start as usize, old.end as usize);
        let kept = self.raw.len().checked_sub(e.checked_sub(s)?)?;
        let len = kept.checked_add(value.len())?;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(self.raw.get(..s)?);
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(self.raw.get(e..)?);
        let grow = u32::try_from(value.len()).ok()?;
        let top_branch = match top_via_branch(value) {
            Some(b) => {
                let off = (b.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
                let start = s.checked_add(off)?;
                Some(Span::new(start, start.checked_add(b.len())?))
            }
            None => None,
        };
        let splice = Splice {
            at: old.end,
            cut: old.end.checked_sub(old.start)?,
            grow,
            len: u32::try_from(len).ok()?,
            top_via: Span {
                start: old.start,
                end: old.start.checked_add(grow)?,
            },
            top_branch,
        };
        Some((Bytes::from(out), splice))
    }
    /// Every Via value, topmost first (all validated at parse).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        self.header_values(HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
    }
    /// Max-Forwards, if present (validated at parse: 0..=255).
    pub fn max_forwards(&self) -> Option<u8> {
        self.idx.max_forwards
    }
    /// The message body (exactly Content-Length bytes).
    pub fn body(&self) -> &[u8] {
        self.raw.get(self.idx.body.range()).unwrap_or_default()
    }
    /// Serialize in canonical form (long header names, `Name: value\r\n`, Content-Length recomputed)
    /// into `out`, appending. The start line is rebuilt with single spaces and `SIP/2.0`; header fields
    /// keep their order and their values as received (unfolded); unrecognised names are written as
    /// received; Content-Length takes the place of the first received one, or goes last.
    /// Always rebuilt, never a raw copy: the output is canonical whatever the input looked like.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.raw.len() + 32);
        match &self.idx.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.bytes(*uri));
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                push_decimal(out, u32::from(*status));
                out.push(b' ');
                out.extend_from_slice(self.bytes(*reason));
                out.extend_from_slice(b"\r\n");
            }
        }
        let body = self.body();
        let mut length_written = false;
        for h in &self.idx.headers {
            if h.name == HeaderName::ContentLength {
                if !length_written {
                    write_content_length(out, body.len());
                    length_written = true;
                }
                continue;
            }
            let name = match h.name.as_str() {
                Some(n) => n.as_bytes(),
                None => self.bytes(h.raw_name),
            };
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.bytes(h.value));
            out.extend_from_slice(b"\r\n");
        }
        if !length_written {
            write_content_length(out, body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    fn bytes(&self, span: Span) -> &[u8] {
        self.raw.get(span.range()).unwrap_or_default()
    }
    /// The text of a span. Spans only ever cover the header section, which is checked to be UTF-8 at
    /// parse, and start and end on ASCII delimiters, so the checked fallback is never taken; the
    /// check that allows skipping validation is O(1) (accessors run many times per message).
    fn text(&self, span: Span) -> &str {
        let bytes = self.bytes(span);
        let (start, end) = (span.start as usize, span.end as usize);
        let boundary = |i: usize| self.raw.get(i).is_none_or(|c| (c & 0xC0) != 0x80);
        if end <= self.idx.body.start as usize && start <= end && boundary(start) && boundary(end) {
            // SAFETY: `raw[..body.start]` (the header section) was checked to be UTF-8 by `index`,
            // `bytes` lies inside it, and it starts and ends on character boundaries (neither byte is
            // a UTF-8 continuation byte), so it is itself valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            std::str::from_utf8(bytes).unwrap_or_default()
        }
    }
}

const EMPTY_URI: Uri<'static> = Uri {
    scheme: Scheme::Sip,
    user: None,
    password: None,
    host: Host::Domain(""),
    port: None,
    params: Params { raw: "" },
    headers: None,
};

/// Returned by the infallible accessors if re-reading a span that was validated at parse ever failed.
const EMPTY_NAME_ADDR: NameAddr<'static> = NameAddr {
    display: None,
    uri: EMPTY_URI,
    params: Params { raw: "" },
};

const EMPTY_VIA: Via<'static> = Via {
    transport: "UDP",
    host: Host::Domain(""),
    port: None,
    params: Params { raw: "" },
};

fn write_content_length(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, u32::try_from(len).unwrap_or(u32::MAX));
    out.extend_from_slice(b"\r\n");
}

/// Append the decimal digits of `n` without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // n % 10 < 10, so the cast cannot truncate
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Offset after any line breaks before the start line (RFC 3261 §7.5).
pub(crate) fn skip_leading_crlf(raw: &[u8]) -> usize {
    raw.iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(raw.len())
}

/// A line from `pos`: (content end, next line start), accepting CRLF and a bare LF. `None` when no line
/// break follows.
pub(crate) fn line_at(raw: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + memchr::memchr(b'\n', raw.get(pos..)?)?;
    let end = if nl > pos && raw.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

/// Build the index of a message, validating it. Stops with `Folded` on the first continuation line.
fn index(raw: &[u8]) -> Result<Index, Stop> {
    if u32::try_from(raw.len()).is_err() {
        return Err(ParseError::TooLarge.into());
    }
    let head_start = skip_leading_crlf(raw);
    if head_start == raw.len() {
        return Err(ParseError::Empty.into());
    }
    let (start_end, mut pos) = line_at(raw, head_start).ok_or(ParseError::Incomplete)?;

    // Pass 1: cut the header lines, recognise names, remember the mandatory ones.
    let mut headers: SmallVec<[HeaderIdx; INLINE_HEADERS]> = SmallVec::new();
    let mut first = Firsts::default();
    let body_start = loop {
        let (end, next) = line_at(raw, pos).ok_or(ParseError::Incomplete)?;
        if end == pos {
            break next;
        }
        let line = raw.get(pos..end).unwrap_or_default();
        if line.first().is_some_and(|b| is_ws(*b)) {
            return Err(if headers.is_empty() {
                ParseError::BadHeaderLine.into()
            } else {
                Stop::Folded
            });
        }
        let name_len = line.iter().take_while(|b| is_token_byte(**b)).count();
        if name_len == 0 {
            return Err(ParseError::BadHeaderLine.into());
        }
        let mut i = name_len;
        while line.get(i).is_some_and(|b| is_ws(*b)) {
            i += 1;
        }
        if line.get(i) != Some(&b':') {
            return Err(ParseError::BadHeaderLine.into());
        }
        i += 1;
        let mut vstart = pos + i;
        let mut vend = end;
        while vstart < vend && raw.get(vstart).is_some_and(|b| is_ws(*b)) {
            vstart += 1;
        }
        while vend > vstart && raw.get(vend - 1).is_some_and(|b| is_ws(*b)) {
            vend -= 1;
        }
        let name = HeaderName::from_bytes(line.get(..name_len).unwrap_or_default());
        let h = HeaderIdx {
            name,
            raw_name: Span::new(pos, pos + name_len),
            value: Span::new(vstart, vend),
        };
        first.note(&h);
        headers.push(h);
        pos = next;
    };

    // Everything before the body is text (RFC 3261 §7.3: UTF-8).
    let head = raw.get(..body_start).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| ParseError::BadHeaderLine)?;
    let text = |s: Span| head.get(s.range()).unwrap_or_default();

    let start = parse_start_line(head, head_start, start_end)?;

    // Pass 2: validate what the accessors promise.
    if let Some(dup) = first.duplicate {
        return Err(ParseError::DuplicateHeader(dup).into());
    }
    let missing = |s: Option<Span>, n| s.ok_or(ParseError::MissingHeader(n));
    missing(first.via, HeaderName::Via)?;
    let to = missing(first.to, HeaderName::To)?;
    let from = missing(first.from, HeaderName::From)?;
    let call_id = missing(first.call_id, HeaderName::CallId)?;
    let cseq = missing(first.cseq, HeaderName::CSeq)?;

    let (top_via, top_branch) = validate_vias(head, &headers)?;

    let (cseq_seq, method_text) = parse_cseq_parts(text(cseq)).ok_or(ParseError::BadCSeq)?;
    let cseq_method = match &start {
        StartLine::Request { method, .. } => {
            if method.as_str() != method_text {
                return Err(ParseError::CSeqMethodMismatch.into());
            }
            method.clone()
        }
        StartLine::Response { .. } => {
            Method::from_token(method_text.as_bytes()).ok_or(ParseError::BadCSeq)?
        }
    };
    let cseq_method_text = span_of(head, method_text);

    if !is_call_id(text(call_id)) {
        return Err(ParseError::BadCallId.into());
    }
    let from_tag = NameAddr::parse(text(from))
        .map_err(|_| ParseError::BadFrom)?
        .tag()
        .map(|t| span_of(head, t));
    let to_tag = NameAddr::parse(text(to))
        .map_err(|_| ParseError::BadTo)?
        .tag()
        .map(|t| span_of(head, t));
    let max_forwards = match first.max_forwards {
        Some(s) => Some(
            parse_decimal(text(s).as_bytes(), 255)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or(ParseError::BadMaxForwards)?,
        ),
        None => None,
    };
    for h in &headers {
        match h.name {
            HeaderName::Contact if !is_contact_value(text(h.value)) => {
                return Err(ParseError::BadContact.into());
            }
            HeaderName::Other
                if text(h.raw_name).eq_ignore_ascii_case("date")
                    && !text(h.value).ends_with("GMT") =>
            {
                return Err(ParseError::BadDate.into());
            }
            _ => {}
        }
    }

    let body_end = match first.content_length {
        Some(s) => {
            let len =
                parse_decimal(text(s).as_bytes(), u32::MAX).ok_or(ParseError::BadContentLength)?;
            let end = body_start
                .checked_add(len as usize)
                .ok_or(ParseError::BodyTruncated)?;
            if end > raw.len() {
                return Err(ParseError::BodyTruncated.into());
            }
            end
        }
        None => raw.len(),
    };

    Ok(Index {
        start,
        headers,
        body: Span::new(body_start, body_end),
        call_id,
        from,
        to,
        from_tag,
        to_tag,
        top_via,
        top_branch,
        cseq_seq,
        cseq_method,
        cseq_method_text,
        max_forwards,
    })
}

/// The first occurrence of each header the index keeps, and the first header seen twice that may appear
/// only once.
#[derive(Default)]
struct Firsts {
    via: Option<Span>,
    from: Option<Span>,
    to: Option<Span>,
    call_id: Option<Span>,
    cseq: Option<Span>,
    max_forwards: Option<Span>,
    content_length: Option<Span>,
    content_type: bool,
    duplicate: Option<HeaderName>,
}

impl Firsts {
    fn note(&mut self, h: &HeaderIdx) {
        let slot = match h.name {
            HeaderName::Via => {
                self.via.get_or_insert(h.value);
                return;
            }
            HeaderName::ContentType => {
                if std::mem::replace(&mut self.content_type, true) {
                    self.duplicate.get_or_insert(h.name);
                }
                return;
            }
            HeaderName::From => &mut self.from,
            HeaderName::To => &mut self.to,
            HeaderName::CallId => &mut self.call_id,
            HeaderName::CSeq => &mut self.cseq,
            HeaderName::MaxForwards => &mut self.max_forwards,
            HeaderName::ContentLength => &mut self.content_length,
            _ => return,
        };
        if slot.is_some() {
            self.duplicate.get_or_insert(h.name);
        } else {
            *slot = Some(h.value);
        }
    }
}

/// The span of `part`, a sub-slice of `head`.
fn span_of(head: &str, part: &str) -> Span {
    let start = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
    Span::new(start, start + part.len())
}

/// Request-Line or Status-Line (RFC 3261 §7.1, §7.2), between `start` and `end` of `head`.
fn parse_start_line(head: &str, start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = head.get(start..end).ok_or(ParseError::BadStartLine)?;
    let is_response = line
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    if is_response {
        let (version, rest) = split_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
        check_version(version)?;
        let code = rest.as_bytes();
        let digits = code.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits != 3 || code.get(3).is_some_and(|b| *b != b' ') {
            return Err(if digits == 0 {
                ParseError::BadStartLine
            } else {
                ParseError::BadStatusCode
            });
        }
        let status = rest
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::BadStatusCode)?;
        let reason = rest.get(4..).unwrap_or_default();
        return Ok(StartLine::Response {
            status,
            reason: span_of(head, reason),
        });
    }
    let (method, rest) = split_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
    let (uri, version) = rest.rsplit_once(' ').ok_or(ParseError::BadStartLine)?;
    check_version(version)?;
    if uri.is_empty() || uri.starts_with(' ') || uri.ends_with(' ') {
        return Err(ParseError::BadStartLine);
    }
    let method = Method::from_token(method.as_bytes()).ok_or(ParseError::BadStartLine)?;
    match Uri::parse(uri) {
        Ok(u) if u.headers.is_none() => {}
        // RFC 3261 §19.1.1: headers are not allowed in a Request-URI
        Ok(_) => return Err(ParseError::BadRequestUri),
        Err(ParseError::UnsupportedUriScheme) => return Err(ParseError::UnsupportedUriScheme),
        Err(_) => return Err(ParseError::BadRequestUri),
    }
    Ok(StartLine::Request {
        method,
        uri: span_of(head, uri),
    })
}

/// `SIP/2.0`, or 505 for another well-formed version, or a bad start line.
fn check_version(v: &str) -> Result<(), ParseError> {
    let b = v.as_bytes();
    if b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/")) {
        let num = v.get(4..).unwrap_or_default();
        if num == "2.0" {
            return Ok(());
        }
        if let Some((major, minor)) = split_byte(num, b'.') {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            if digits(major) && digits(minor) {
                return Err(ParseError::BadVersion);
            }
        }
    }
    Err(ParseError::BadStartLine)
}

/// Validate every Via value; return the span of the topmost. A topmost value whose sent-by cannot be read
/// makes the request unanswerable.
/// Every Via value must parse. Returns the span of the top one and of its branch.
fn validate_vias(head: &str, headers: &[HeaderIdx]) -> Result<(Span, Option<Span>), ParseError> {
    let mut top: Option<(Span, Option<Span>)> = None;
    for h in headers.iter().filter(|h| h.name == HeaderName::Via) {
        let value = head.get(h.value.range()).unwrap_or_default();
        for piece in SplitTop::new(value, b',') {
            let piece = trim_ws(piece);
            if top.is_none() {
                let Ok(via) = Via::parse(piece) else {
                    return Err(match Via::parse_sent_by(piece) {
                        Ok(_) => ParseError::BadVia,
                        Err(_) => ParseError::UnroutableVia,
                    });
                };
                let branch = via.branch().map(|b| span_of(head, b));
                top = Some((span_of(head, piece), branch));
            } else if Via::parse(piece).is_err() {
                return Err(ParseError::BadVia);
            }
        }
    }
    top.ok_or(ParseError::MissingHeader(HeaderName::Via))
}

/// RFC 3261 §25.1 `callid = word [ "@" word ]`.
fn is_call_id(v: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| has_class(b, WORD));
    match split_byte(v, b'@') {
        Some((a, b)) => word(a) && word(b),
        None => word(v),
    }
}

/// Contact: `*` or a list of name-addr / addr-spec values (RFC 3261 §20.10).
fn is_contact_value(v: &str) -> bool {
    if v == "*" {
        return true;
    }
    !v.is_empty()
        && SplitTop::new(v, b',').all(|c| {
            let c = trim_ws(c);
            !c.is_empty() && NameAddr::parse(c).is_ok()
        })
}

/// A copy with header continuation lines joined to the line before (RFC 3261 §7.3.1: the line break
/// before a line starting with whitespace is linear whitespace). The start line and the body are copied
/// unchanged.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let start = skip_leading_crlf(raw);
    let Some((_, mut pos)) = line_at(raw, start) else {
        out.extend_from_slice(raw);
        return out;
    };
    out.extend_from_slice(raw.get(..pos).unwrap_or_default());
    let mut last_break = 0usize;
    let mut in_headers = false;
    while let Some((end, next)) = line_at(raw, pos) {
        if end == pos {
            break;
        }
        let line = raw.get(pos..end).unwrap_or_default();
        if in_headers && line.first().is_some_and(|b| is_ws(*b)) {
            out.truncate(out.len().saturating_sub(last_break));
        }
        in_headers = true;
        out.extend_from_slice(raw.get(pos..next).unwrap_or_default());
        last_break = next - end;
        pos = next;
    }
    out.extend_from_slice(raw.get(pos..).unwrap_or_default());
    out
}

/// For a faulty request: `Some` error when its topmost Via cannot be read (no answer can be routed),
/// `None` when an answer can be sent. Runs on the error path only.
fn routing_fault(raw: &[u8]) -> Option<ParseError> {
    let unfolded = unfold(raw);
    let mut pos = skip_leading_crlf(&unfolded);
    let (_, next) = line_at(&unfolded, pos)?;
    pos = next;
    loop {
        let Some((end, next)) = line_at(&unfolded, pos) else {
            // no end of headers: look at the last line too
            return via_of_line(unfolded.get(pos..).unwrap_or_default())
                .map(|routable| (!routable).then_some(ParseError::UnroutableVia))
                .unwrap_or(Some(ParseError::MissingHeader(HeaderName::Via)));
        };
        if end == pos {
            return Some(ParseError::MissingHeader(HeaderName::Via));
        }
        if let Some(routable) = via_of_line(unfolded.get(pos..end).unwrap_or_default()) {
            return (!routable).then_some(ParseError::UnroutableVia);
        }
        pos = next;
    }
}

/// `Some(routable)` if the line is a Via header line; `None` otherwise.
fn via_of_line(line: &[u8]) -> Option<bool> {
    let colon = memchr::memchr(b':', line)?;
    let name = trim_ws(std::str::from_utf8(line.get(..colon)?).ok()?);
    if HeaderName::from_bytes(name.as_bytes()) != HeaderName::Via || !is_token(name) {
        return None;
    }
    let value = std::str::from_utf8(line.get(colon + 1..)?).ok();
    let routable = value
        .and_then(|v| SplitTop::new(v, b',').next())
        .is_some_and(|top| Via::parse_sent_by(top).is_ok());
    Some(routable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Verdict;
    use std::net::Ipv4Addr;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice, A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn owner_key_reads_the_top_branch_of_a_response_and_the_to_tag_of_a_request() {
        // A response: the topmost Via's branch, whatever follows it on the line or below.
        let resp = "SIP/2.0 486 Busy Here\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060 ; rport=5060 ; branch = z9hG4bKtop , SIP/2.0/UDP h2;branch=z9hG4bKsecond\r\n\
Via: SIP/2.0/UDP h3;branch=z9hG4bKthird\r\n\
To: <sip:b@h>;tag=callee\r\nFrom: <sip:a@h>;tag=caller\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        assert_eq!(
            owner_key(resp.as_bytes()),
            Some(OwnerKey::Branch("z9hG4bKtop"))
        );
        assert_eq!(
            parse(resp).unwrap().top_branch(),
            Some("z9hG4bKtop"),
            "the scan agrees with the parser"
        );
        // A request in a dialog: the To tag, not a tag inside the URI or the display name.
        let bye = "\r\nBYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\n\
From: <sip:b@h>;tag=callee\r\nTO : \"x;tag=no\" <sip:a@h;tag=nope>;foo;TAG=ours\r\n\
Call-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(owner_key(bye.as_bytes()), Some(OwnerKey::ToTag("ours")));
        assert_eq!(parse(bye).unwrap().to_tag(), Some("ours"));
        let compact =
            "ACK sip:a@h SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bKa\nt: sip:a@h;tag=t1\n\n";
        assert_eq!(owner_key(compact.as_bytes()), Some(OwnerKey::ToTag("t1")));
        // Outside a dialog: no key. The Via's branch of a request is the sender's, never ours.
        assert_eq!(owner_key(INVITE.as_bytes()), None);
        // Nothing to read: no key, the full parse judges.
        for junk in [
            "",
            "\r\n\r\n",
            "SIP/2.0 200 OK",
            "SIP/2.0 200 OK\r\nTo: <sip:a@h>;tag=x\r\n\r\n",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;rport\r\n\r\n",
            "SIP/2.0 200 OK\r\nVia SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;\r\n branch=z9hG4bKx\r\n\r\n",
            "BYE sip:a@h SIP/2.0\r\nTo: <sip:a@h\r\n\r\n",
            "BYE sip:a@h SIP/2.0\r\nTo: <sip:a@h>;tag=x",
        ] {
            assert_eq!(owner_key(junk.as_bytes()), None, "{junk:?}");
        }
        assert_eq!(
            owner_key(b"BYE sip:a@h SIP/2.0\r\nTo: <sip:a@h>;tag=\xff\r\n\r\n"),
            None
        );
        // Only the parameters are read: a key in a field the full parse refuses is still found
        // (the worker it names then refuses the message).
        assert_eq!(
            owner_key(b"SIP/2.0 200 OK\r\nVia: garbage;branch=z9hG4bKx\r\n\r\n"),
            Some(OwnerKey::Branch("z9hG4bKx"))
        );
        // A quoted parameter holds no separator.
        let quoted = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;x=\"a,b;branch=no\";branch=z9hG4bKq, \
                      SIP/2.0/UDP h2;branch=z9hG4bK2\r\n\r\n";
        assert_eq!(
            owner_key(quoted.as_bytes()),
            Some(OwnerKey::Branch("z9hG4bKq"))
        );
        // Cut as the parser cuts name-addr and addr-spec.
        for (to, tag) in [
            ("sip:a@h;tag=1", Some("1")),
            ("sip:a@h ;tag=2 ", Some("2")),
            ("<sip:a@h;tag=no>", None),
            ("<sip:a@h;tag=no> ; tag = 3", Some("3")),
            ("\"<q;tag=no>\" <sip:a@h>;tag=4", Some("4")),
            ("\"open <sip:a@h>;tag=no", None),
            ("Bob <sip:a@h>;lr;tag=5", Some("5")),
            ("<sip:a@h;tag=no", None),
            ("<sip:a@h>;x=\"y;tag=no\";tag=6", Some("6")),
            ("<sip:a@h>;tag", None),
        ] {
            let msg = format!(
                "BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\nTo: {to}\r\n\
                 From: <sip:b@h>;tag=f\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n"
            );
            assert_eq!(owner_key(msg.as_bytes()), tag.map(OwnerKey::ToTag), "{to}");
            if let Ok(m) = parse(&msg) {
                assert_eq!(m.to_tag(), tag, "{to}");
            }
        }
    }

    fn verdict(s: &str) -> Verdict {
        match parse(s) {
            Ok(_) => panic!("accepted: {s:?}"),
            Err(e) => e.verdict(looks_like_request(s.as_bytes())),
        }
    }

    /// A stamped top Via gives the index a fresh parse of the stamped bytes gives, whether the
    /// value grows or shrinks, is alone in its field or the first of several, with folded lines.
    #[test]
    fn with_top_via_shifts_the_index_exactly() {
        let multi = INVITE.replace(
            "branch=z9hG4bK776asdhds;rport\r\n",
            "branch=z9hG4bK776asdhds;rport , SIP/2.0/UDP b.example;branch=z9hG4bK2\r\nVia: SIP/2.0/TCP c;branch=z9hG4bK3\r\n",
        );
        let folded = INVITE.replace(
            "Max-Forwards: 70\r\n",
            "Subject: a\r\n  folded\r\nMax-Forwards: 70\r\n",
        );
        let response = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;rport;branch=z9hG4bKr\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        for text in [INVITE, multi.as_str(), folded.as_str(), response] {
            let m = parse(text).unwrap();
            let top = m.header_values(HeaderName::Via).next().unwrap().to_owned();
            for value in [
                format!("{top};received=192.0.2.44;rport=40000"),
                "SIP/2.0/UDP x;branch=z9hG4bKq".to_owned(),
                "SIP/2.0/UDP x".to_owned(),
            ] {
                let stamped = m.with_top_via(&value).unwrap();
                let fresh = Message::parse(stamped.raw().clone()).unwrap();
                assert_eq!(
                    format!("{:?}", stamped.idx),
                    format!("{:?}", fresh.idx),
                    "{value}"
                );
                assert_eq!(
                    stamped.header_values(HeaderName::Via).next(),
                    Some(value.as_str())
                );
            }
            assert!(m.with_top_via("not a via").is_none());
        }
    }

    /// The tags and the top branch found at parse are those the full header parsers find, with
    /// non-ASCII text around them (the O(1) text path) and without them.
    #[test]
    fn cached_tags_and_branch_match_the_parsed_headers() {
        let utf8 = INVITE
            .replace("To: Bob <", "To: \"Bób Ünïcode\" <")
            .replace(
                "<sip:bob@biloxi.example.com>\r\n",
                "<sip:bob@biloxi.example.com>;tag=z9\r\n",
            )
            .replace(";rport", ";rport;x=\"é\"");
        for text in [INVITE, utf8.as_str()] {
            let m = parse(text).unwrap();
            assert_eq!(m.from_tag(), m.from().tag());
            assert_eq!(m.to_tag(), m.to().tag());
            assert_eq!(m.top_branch(), m.top_via().branch());
            assert_eq!(m.top_branch(), Some("z9hG4bK776asdhds"));
        }
        let m = parse(&utf8).unwrap();
        assert_eq!(m.to_tag(), Some("z9"));
        assert_eq!(parse(INVITE).unwrap().to_tag(), None);
        let no_branch = INVITE.replace(";branch=z9hG4bK776asdhds", "");
        assert_eq!(parse(&no_branch).unwrap().top_branch(), None);
    }

    #[test]
    fn ordinary_request() {
        let m = parse(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.request_uri(), Some("sip:bob@biloxi.example.com"));
        assert_eq!(m.status(), None);
        assert_eq!(m.call_id(), "a84b4c76e66710@pc33.atlanta.example.com");
        let c = m.cseq();
        assert_eq!(
            (c.seq, c.method, c.method_text),
            (314159, Method::Invite, "INVITE")
        );
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.from().display, Some("\"Alice, A.\""));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.to().uri.user, Some("bob"));
        let v = m.top_via();
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.port, Some(5060));
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));
        assert_eq!(m.header_by_name("content-type"), Some("application/sdp"));
        assert_eq!(m.header_by_name("c"), Some("application/sdp"));
        assert_eq!(m.headers().count(), 9);
    }

    #[test]
    fn ordinary_response() {
        let m = parse(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             To: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .unwrap();
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), Some("Ringing"));
        assert_eq!(m.method(), None);
        assert_eq!(m.cseq().method, Method::Invite);
        assert_eq!(m.top_via().host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(m.body(), b"");
    }

    #[test]
    fn compact_forms_and_case() {
        let m = parse(
            "OPTIONS sip:x@example.com SIP/2.0\r\nv: SIP/2.0/TCP h.example.com;branch=z9hG4bKa\r\n\
             t: <sip:x@example.com>\r\nf: <sip:y@example.com>;tag=9\r\ni: abc\r\ncSeQ: 2 OPTIONS\r\n\
             m: <sip:y@h.example.com>\r\nk: timer\r\nu: talk\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.call_id(), "abc");
        assert_eq!(m.header(HeaderName::Supported), Some("timer"));
        assert_eq!(m.header(HeaderName::Contact), Some("<sip:y@h.example.com>"));
        assert_eq!(m.header_by_name("Allow-Events"), Some("talk"));
        assert_eq!(m.header_by_name("U"), Some("talk"));
        assert_eq!(m.top_via().transport, "TCP");
        let mut out = Vec::new();
        m.write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("\r\nVia: SIP/2.0/TCP"), "{s}");
        assert!(s.contains("\r\nCall-ID: abc\r\n"), "{s}");
        assert!(s.contains("\r\nCSeq: 2 OPTIONS\r\n"), "{s}");
        assert!(s.contains("\r\nu: talk\r\n"), "{s}");
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"), "{s}");
    }

    #[test]
    fn folded_lines_are_unfolded() {
        let m = parse(
            "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP\r\n h.example.com;branch=z9hG4bKa\r\n\
             To: <sip:x@example.com>\r\nFrom: <sip:y@example.com>\r\n\t;tag=9\r\nCall-ID: abc\r\n\
             CSeq: 2\r\n  OPTIONS\r\nSubject: one\r\n two\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.from_tag(), Some("9"));
        assert_eq!(m.top_via().host, Host::Domain("h.example.com"));
        assert_eq!(m.cseq().seq, 2);
        assert_eq!(m.header(HeaderName::Subject), Some("one two"));
        assert!(!m.raw().windows(3).any(|w| w == b"\r\n "));
    }

    #[test]
    fn multi_value_split() {
        let m = parse(
            "OPTIONS sip:x@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa, SIP/2.0/TCP b.example.com;branch=z9hG4bKb\r\n\
             Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc\r\n\
             To: <sip:x@example.com>\r\nFrom: <sip:y@example.com>;tag=1\r\nCall-ID: abc\r\nCSeq: 2 OPTIONS\r\n\
             Contact: \"Doe, J\" <sip:a@x.example.com>, <sip:b@y.example.com;p=1>\r\n\
             Allow: INVITE, ACK,BYE\r\nSubject: a, b\r\n\r\n",
        )
        .unwrap();
        let vias: Vec<_> = m.vias().collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(vias[1].branch(), Some("z9hG4bKb"));
        assert_eq!(vias[2].branch(), Some("z9hG4bKc"));
        let contacts: Vec<_> = m.header_values(HeaderName::Contact).collect();
        assert_eq!(
            contacts,
            [
                "\"Doe, J\" <sip:a@x.example.com>",
                "<sip:b@y.example.com;p=1>"
            ]
        );
        let allow: Vec<_> = m.header_values(HeaderName::Allow).collect();
        assert_eq!(allow, ["INVITE", "ACK", "BYE"]);
        let subject: Vec<_> = m.header_values(HeaderName::Subject).collect();
        assert_eq!(subject, ["a, b"]);
    }

    #[test]
    fn leading_crlf_and_datagram_framing() {
        let m = parse(&format!("\r\n\r\n{INVITE}")).unwrap();
        assert_eq!(m.body(), b"v=0\n");
        // extra bytes after Content-Length are discarded
        let m = parse(&format!("{INVITE}garbage")).unwrap();
        assert_eq!(m.body(), b"v=0\n");
        // no Content-Length: the body is the rest of the datagram
        let no_cl = INVITE.replace("Content-Length: 4\r\n", "");
        let m = parse(&format!("{no_cl}more")).unwrap();
        assert_eq!(m.body(), b"v=0\nmore");
        // bare LF line ends are tolerated
        let m = parse(&INVITE.replace("\r\n", "\n")).unwrap();
        assert_eq!(m.cseq().seq, 314159);
    }

    #[test]
    fn verdicts_for_faulty_requests() {
        let table: &[(&str, &str, Verdict)] = &[
            (
                "Content-Length: 4",
                "Content-Length: 40",
                Verdict::Reply(400, "Body Shorter Than Content-Length"),
            ),
            (
                "Content-Length: 4",
                "Content-Length: -4",
                Verdict::Reply(400, "Bad Content-Length"),
            ),
            (
                "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n",
                "",
                Verdict::Reply(400, "Missing Call-ID"),
            ),
            (
                "CSeq: 314159 INVITE",
                "CSeq: 314159 BYE",
                Verdict::Reply(400, "CSeq Method Mismatch"),
            ),
            (
                "CSeq: 314159 INVITE",
                "CSeq: 4294967296 INVITE",
                Verdict::Reply(400, "Bad CSeq"),
            ),
            (
                "Max-Forwards: 70",
                "Max-Forwards: 256",
                Verdict::Reply(400, "Bad Max-Forwards"),
            ),
            (
                "SIP/2.0\r\nVia",
                "SIP/3.0\r\nVia",
                Verdict::Reply(505, "Version Not Supported"),
            ),
            (
                "sip:bob@biloxi.example.com SIP",
                "http://biloxi.example.com/ SIP",
                Verdict::Reply(416, "Unsupported URI Scheme"),
            ),
            (
                "sip:bob@biloxi.example.com SIP",
                "sip:bob@biloxi.example.com?x=y SIP",
                Verdict::Reply(400, "Bad Request-URI"),
            ),
            (
                "INVITE sip",
                "INVITE  sip",
                Verdict::Reply(400, "Bad Start Line"),
            ),
            (
                "Max-Forwards: 70",
                "Max-Forwards 70",
                Verdict::Reply(400, "Bad Header Line"),
            ),
            (
                "To: Bob",
                "To: Bob\r\nTo: Bob <sip:b@x>\r\nX: Bob",
                Verdict::Reply(400, "Duplicate To"),
            ),
            (
                "From: \"Alice",
                "From: \"Alice\"\"",
                Verdict::Reply(400, "Bad From"),
            ),
            ("To: Bob <", "To: Bob <<", Verdict::Reply(400, "Bad To")),
            (
                "Contact: <sip:alice@pc33.atlanta.example.com>",
                "Contact: sip:a@b?x=y",
                Verdict::Reply(400, "Bad Contact"),
            ),
            (
                "rport\r\n",
                "rport\r\nVia: SIP/2.0/UDP ;;\r\n",
                Verdict::Reply(400, "Bad Via"),
            ),
            ("rport\r\n", "rport;;\r\n", Verdict::Reply(400, "Bad Via")),
            ("SIP/2.0/UDP pc33", "SIP/2.0/UDP [pc33", Verdict::Drop),
            (
                "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n",
                "",
                Verdict::Drop,
            ),
            (
                "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n",
                "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n",
                Verdict::Reply(400, "Missing Call-ID"),
            ),
            (
                "Content-Length: 4\r\n",
                "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n",
                Verdict::Reply(400, "Bad Date"),
            ),
            (
                "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
                "Call-ID: a b",
                Verdict::Reply(400, "Bad Call-ID"),
            ),
        ];
        for (from, to, want) in table {
            assert!(INVITE.contains(from), "{from}");
            let msg = INVITE.replacen(from, to, 1);
            assert_eq!(verdict(&msg), *want, "{from} -> {to}");
        }
        // a request without Via and with another fault is still dropped: no route for the answer
        let msg = INVITE
            .replacen(
                "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n",
                "",
                1,
            )
            .replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
        assert_eq!(verdict(&msg), Verdict::Drop);
        // truncated: no empty line
        assert_eq!(
            verdict(&INVITE[..200]),
            Verdict::Reply(400, "Incomplete Message")
        );
        assert_eq!(verdict("\r\n\r\n"), Verdict::Drop);
    }

    #[test]
    fn faulty_responses_are_dropped() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\n\
                  From: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        assert!(parse(ok).is_ok());
        for (from, to) in [
            ("200 OK", "4294967301 OK"),
            ("200 OK", "099 Low"),
            ("SIP/2.0 200", "SIP/7.0 200"),
            ("CSeq: 1 INVITE", "CSeq: x INVITE"),
            ("Call-ID: c\r\n", ""),
        ] {
            let msg = ok.replacen(from, to, 1);
            assert_eq!(verdict(&msg), Verdict::Drop, "{to}");
        }
    }

    #[test]
    fn write_to_is_canonical() {
        let m = parse(
            "\r\nBYE sip:x@example.com SIP/2.0\r\nv :  SIP/2.0/UDP h.example.com;branch=z9hG4bKa \r\n\
             t:<sip:x@example.com>;tag=1\r\nf:   <sip:y@example.com>;tag=9\r\ni: abc\r\nCSEQ: 2 BYE\r\n\
             l: 3\r\nX-Custom: keep\r\n\r\nabcdef",
        )
        .unwrap();
        let mut out = b"prefix".to_vec();
        m.write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "prefixBYE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKa\r\n\
             To: <sip:x@example.com>;tag=1\r\nFrom: <sip:y@example.com>;tag=9\r\nCall-ID: abc\r\n\
             CSeq: 2 BYE\r\nContent-Length: 3\r\nX-Custom: keep\r\n\r\nabc"
        );
        // canonical output parses to the same thing
        let mut out = Vec::new();
        m.write_to(&mut out);
        let again = Message::parse(Bytes::from(out.clone())).unwrap();
        let mut out2 = Vec::new();
        again.write_to(&mut out2);
        assert_eq!(out, out2);
    }

    #[test]
    fn methods_and_names_round_trip() {
        for m in [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "PUBLISH",
            "INFO",
            "REFER",
            "MESSAGE",
            "UPDATE",
            "RE%47IST%45R",
        ] {
            assert_eq!(Method::from_token(m.as_bytes()).unwrap().as_str(), m);
        }
        assert!(matches!(
            Method::from_token(b"invite"),
            Some(Method::Other(_))
        ));
        assert_eq!(Method::from_token(b"IN VITE"), None);
        assert_eq!(Method::from_token(b""), None);
        let all = HeaderName::ALL;
        for n in all {
            let long = n.as_str().unwrap();
            assert_eq!(HeaderName::from_bytes(long.as_bytes()), n);
            assert_eq!(HeaderName::from_bytes(long.to_uppercase().as_bytes()), n);
        }
        for (c, n) in [
            ("i", HeaderName::CallId),
            ("M", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("o", HeaderName::Event),
            ("r", HeaderName::ReferTo),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), n, "{c}");
        }
        assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other);
        assert_eq!(HeaderName::Other.as_str(), None);
        assert!(HeaderName::Via.is_multi_value());
        assert!(!HeaderName::From.is_multi_value());
    }

    #[test]
    fn decimal_writer() {
        for n in [0u32, 7, 10, 99, 100, 65535, u32::MAX] {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }
}
