//! SDP session descriptions (RFC 8866, which obsoletes RFC 4566) and the RFC 3264 offer/answer edits an
//! SBC that anchors media makes.
//!
//! # Model
//! [`Sdp::parse`] keeps the received text and indexes it as one span per line: no copy, one `Vec` of
//! spans, no allocation per line. Every line is kept in order, including types and attributes the SBC
//! does not know (`i=`, `u=`, `e=`, `p=`, `b=`, `k=`, `z=`, `r=`, `t=`, vendor `a=X-...`), so that
//! [`Sdp::write_to`] gives back the received bytes exactly, with line ends normalised to CRLF (parsers
//! accept LF alone, RFC 8866 §5) and blank lines dropped. An edit replaces only the lines it touches with
//! an owned `String`; the others are still written from the original text.
//!
//! The lines before the first `m=` form the session part ([`Scope::Session`]); each `m=` line opens a
//! media section ([`Scope::Media`], 0-based, in order).
//!
//! # Strict and liberal
//! The parser is strict with the lines the SBC reads and rewrites: the first line must be `v=0`, the
//! session part must have one valid `o=`, and every `c=` and `m=` line must be well formed (see
//! [`SdpError`]). Everything else is kept as written; typed accessors for attributes skip an attribute
//! that does not parse instead of failing the whole body. Attribute names compare ASCII
//! case-insensitively. Lines that are not valid UTF-8 are kept and written back, but are invisible to
//! the `&str` accessors (removal by attribute name compares bytes and removes them too).
//!
//! Edits check their arguments, so no edit can inject a line break or produce a line the parser would
//! refuse: re-parsing the output of any edit succeeds.

mod error;
mod fields;
pub mod sdes;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use smallvec::SmallVec;

pub use error::SdpError;
pub use fields::{Attribute, Connection, Crypto, Direction, MediaLine, Origin, Rtcp, RtpMap};

use fields::{is_line_safe, is_token, next_token, parse_decimal, MediaFault};

/// The most lines an SDP may have (a WebRTC offer with many sections and candidates stays far below).
pub const MAX_LINES: usize = 4096;

/// The ICE attributes (RFC 8839 §5) that [`Sdp::remove_ice`] removes.
pub const ICE_ATTRIBUTES: &[&str] = &[
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-lite",
    "ice-mismatch",
    "ice-ufrag",
    "ice-pwd",
    "ice-pacing",
    "ice-options",
];

/// Attributes whose first value token is a media format, removed with the format by
/// [`Sdp::retain_formats`].
const FORMAT_ATTRIBUTES: &[&str] = &["rtpmap", "fmtp", "rtcp-fb"];

/// Which part of the description an accessor or edit works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The session part, before the first `m=` line.
    Session,
    /// The media section opened by the `m=` line with this 0-based index.
    Media(usize),
}

/// Where a line's text lives: in the received body, or in a replacement made by an edit.
#[derive(Clone, Debug)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

/// One line, without its line end. Invariant: the text is at least 2 bytes and its second byte is `=`;
/// `kind` is its first byte.
#[derive(Clone, Debug)]
struct Line {
    kind: u8,
    text: Text,
}

/// A session description: the received text plus an index of its lines. See the [module docs](self).
#[derive(Clone)]
pub struct Sdp<'a> {
    src: Cow<'a, [u8]>,
    lines: Vec<Line>,
    /// Line index of each `m=` line.
    media: SmallVec<[usize; 8]>,
    /// Line index of the `o=` line.
    origin: usize,
}

/// 1-based line number for errors; saturates (bodies this long are refused anyway).
fn line_no(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> Sdp<'a> {
    /// Parse a session description, borrowing the text (no copy).
    pub fn parse(input: &'a [u8]) -> Result<Self, SdpError> {
        let end = u32::try_from(input.len()).map_err(|_| SdpError::TooLarge)?;
        let estimate = memchr::memchr_iter(b'\n', input).count().saturating_add(1);
        let mut lines = Vec::with_capacity(estimate.min(MAX_LINES));
        let mut media = SmallVec::new();
        let mut origin = None;
        let mut pos: u32 = 0;
        let mut physical: usize = 0;
        while pos < end {
            physical = physical.saturating_add(1);
            let start = pos as usize;
            let rest = input.get(start..).unwrap_or_default();
            let (mut stop, next) = match memchr::memchr(b'\n', rest) {
                Some(n) => (start + n, start + n + 1),
                None => (input.len(), input.len()),
            };
            if stop > start && input.get(stop - 1) == Some(&b'\r') {
                stop -= 1;
            }
            pos = u32::try_from(next).map_err(|_| SdpError::TooLarge)?;
            let text = input.get(start..stop).unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let line = line_no(physical);
            let (kind, value) = match text {
                [kind, b'=', value @ ..] if kind.is_ascii_alphabetic() => (*kind, value),
                _ => return Err(SdpError::BadLine { line }),
            };
            if lines.len() >= MAX_LINES {
                return Err(SdpError::TooManyLines);
            }
            let first = lines.is_empty();
            Self::check_line(
                kind,
                value,
                first,
                !media.is_empty(),
                origin.is_some(),
                line,
            )?;
            match kind {
                b'o' => origin = Some(lines.len()),
                b'm' => media.push(lines.len()),
                _ => {}
            }
            // `start` and `stop` are at most `end`, which fits a u32.
            lines.push(Line {
                kind,
                text: Text::Span(start as u32, stop as u32),
            });
        }
        if lines.is_empty() {
            return Err(SdpError::Empty);
        }
        let origin = origin.ok_or(SdpError::MissingOrigin)?;
        Ok(Self {
            src: Cow::Borrowed(input),
            lines,
            media,
            origin,
        })
    }

    /// Parse a session description from text.
    pub fn parse_str(input: &'a str) -> Result<Self, SdpError> {
        Self::parse(input.as_bytes())
    }

    /// The strict checks for the lines the SBC reads and rewrites.
    fn check_line(
        kind: u8,
        value: &[u8],
        first: bool,
        in_media: bool,
        have_origin: bool,
        line: u32,
    ) -> Result<(), SdpError> {
        let text = std::str::from_utf8(value);
        if first {
            return match (kind, text) {
                (b'v', Ok(v)) if v.trim() == "0" => Ok(()),
                (b'v', _) => Err(SdpError::BadVersion { line }),
                _ => Err(SdpError::MissingVersion),
            };
        }
        match kind {
            b'v' => Err(SdpError::UnexpectedLine { line }),
            b'o' if in_media || have_origin => Err(SdpError::UnexpectedLine { line }),
            b'o' => match text.ok().and_then(Origin::parse) {
                Some(_) => Ok(()),
                None => Err(SdpError::BadOrigin { line }),
            },
            b'c' => match text.ok().and_then(Connection::parse) {
                Some(_) => Ok(()),
                None => Err(SdpError::BadConnection { line }),
            },
            b'm' => match text
                .map_err(|_| MediaFault::Line)
                .and_then(MediaLine::parse)
            {
                Ok(_) => Ok(()),
                Err(MediaFault::Line) => Err(SdpError::BadMedia { line }),
                Err(MediaFault::Port) => Err(SdpError::BadPort { line }),
            },
            _ => Ok(()),
        }
    }

    /// Detach from the received buffer (copies the text once; the line index is kept).
    pub fn into_owned(self) -> Sdp<'static> {
        Sdp {
            src: Cow::Owned(self.src.into_owned()),
            lines: self.lines,
            media: self.media,
            origin: self.origin,
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Serialization and raw lines

    /// The number of bytes [`Sdp::write_to`] appends.
    pub fn encoded_len(&self) -> usize {
        self.lines.iter().map(|l| self.text_of(l).len() + 2).sum()
    }

    /// Append the description to `out`, every line ended by CRLF.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for l in &self.lines {
            out.extend_from_slice(self.text_of(l));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The description as bytes (a new buffer; see [`Sdp::write_to`] to reuse one).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Every line in order, without line end (`x=value`).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.lines.iter().map(|l| self.text_of(l))
    }

    /// The lines of one scope, without line end; empty for a media index that does not exist.
    pub fn scope_lines(&self, scope: Scope) -> impl Iterator<Item = &[u8]> + '_ {
        let range = self.range(scope).unwrap_or(0..0);
        self.lines
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|l| self.text_of(l))
    }

    /// The number of lines.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    fn text_of<'s>(&'s self, line: &'s Line) -> &'s [u8] {
        match &line.text {
            Text::Span(s, e) => self.src.get(*s as usize..*e as usize).unwrap_or_default(),
            Text::Owned(t) => t.as_bytes(),
        }
    }

    fn text(&self, i: usize) -> &[u8] {
        self.lines
            .get(i)
            .map(|l| self.text_of(l))
            .unwrap_or_default()
    }

    /// The value of line `i` (after `x=`) as text.
    fn value_str(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.text(i).get(2..)?).ok()
    }

    fn kind(&self, i: usize) -> Option<u8> {
        self.lines.get(i).map(|l| l.kind)
    }

    /// The line index range of a scope.
    fn range(&self, scope: Scope) -> Option<Range<usize>> {
        match scope {
            Scope::Session => Some(0..self.media.first().copied().unwrap_or(self.lines.len())),
            Scope::Media(k) => {
                let start = *self.media.get(k)?;
                let end = self.media.get(k + 1).copied().unwrap_or(self.lines.len());
                Some(start..end)
            }
        }
    }

    fn range_mut(&self, scope: Scope) -> Result<Range<usize>, SdpError> {
        self.range(scope).ok_or(match scope {
            Scope::Media(index) => SdpError::NoSuchMedia { index },
            Scope::Session => SdpError::NoSuchMedia { index: usize::MAX },
        })
    }

    /// Rebuild the indexes of `m=` and `o=` lines after lines were inserted or removed.
    fn reindex(&mut self) {
        self.media.clear();
        for (i, l) in self.lines.iter().enumerate() {
            match l.kind {
                b'm' => self.media.push(i),
                b'o' if i < self.media.first().copied().unwrap_or(usize::MAX) => self.origin = i,
                _ => {}
            }
        }
    }

    fn replace_line(&mut self, i: usize, text: String) {
        if let Some(l) = self.lines.get_mut(i) {
            l.text = Text::Owned(text.into_boxed_str());
        }
    }

    /// Insert a line; `text` starts with `kind` and `=`.
    fn insert_line(&mut self, at: usize, kind: u8, text: String) {
        let at = at.min(self.lines.len());
        self.lines.insert(
            at,
            Line {
                kind,
                text: Text::Owned(text.into_boxed_str()),
            },
        );
        self.reindex();
    }

    /// Remove the lines at the given indexes (ascending); returns how many were removed.
    fn remove_lines(&mut self, sorted: &[usize]) -> usize {
        if sorted.is_empty() {
            return 0;
        }
        let before = self.lines.len();
        let mut i = 0usize;
        let mut cursor = sorted.iter().peekable();
        self.lines.retain(|_| {
            let drop = cursor.next_if(|&&r| r == i).is_some();
            i += 1;
            !drop
        });
        self.reindex();
        before - self.lines.len()
    }

    // ---------------------------------------------------------------------------------------------
    // Origin

    /// The `o=` line (validated at parse, so always present).
    pub fn origin(&self) -> Origin<'_> {
        match self.value_str(self.origin).and_then(Origin::parse) {
            Some(o) => o,
            None => {
                // Unreachable: `parse` refuses a body without a valid o= in the session part, and the
                // only edits of that line (`set_origin`) write a valid one.
                debug_assert!(false, "o= line lost its validity");
                Origin {
                    username: "-",
                    session_id: "0",
                    session_version: 0,
                    net_type: "IN",
                    addr_type: "IP4",
                    address: "0.0.0.0",
                }
            }
        }
    }

    /// Rewrite the `o=` line.
    pub fn set_origin(&mut self, origin: &Origin<'_>) -> Result<(), SdpError> {
        let line = origin.to_line();
        if !origin.is_writable() || line.get(2..).and_then(Origin::parse).as_ref() != Some(origin) {
            return Err(SdpError::BadValue {
                what: "origin field",
            });
        }
        self.replace_line(self.origin, line);
        Ok(())
    }

    /// Increase the session version by one (saturating at `u64::MAX`), as RFC 3264 §8 asks of a changed
    /// offer; returns the new version.
    pub fn bump_origin_version(&mut self) -> u64 {
        let mut o = self.origin();
        o.session_version = o.session_version.saturating_add(1);
        let version = o.session_version;
        let line = o.to_line();
        self.replace_line(self.origin, line);
        version
    }

    /// Set the session version.
    pub fn set_origin_version(&mut self, version: u64) {
        let mut o = self.origin();
        o.session_version = version;
        let line = o.to_line();
        self.replace_line(self.origin, line);
    }

    /// Set the originating address (and its address type), e.g. to hide the inside topology.
    pub fn set_origin_address(&mut self, ip: IpAddr) {
        let address = ip.to_string();
        let mut o = self.origin();
        o.addr_type = Connection::addr_type_of(&ip);
        o.address = &address;
        let line = o.to_line();
        self.replace_line(self.origin, line);
    }

    /// Set the originating username (`-` for none).
    pub fn set_origin_username(&mut self, username: &str) -> Result<(), SdpError> {
        let o = Origin {
            username,
            ..self.origin()
        };
        if !is_token(username) {
            return Err(SdpError::BadValue {
                what: "origin username",
            });
        }
        let line = o.to_line();
        self.replace_line(self.origin, line);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------
    // Connection

    /// The first `c=` line of a scope (media level only for [`Scope::Media`]).
    pub fn connection(&self, scope: Scope) -> Option<Connection<'_>> {
        let i = self.find_kind(scope, b'c')?;
        self.value_str(i).and_then(Connection::parse)
    }

    /// The connection that applies to a media section: its own `c=`, else the session's.
    pub fn effective_connection(&self, media: usize) -> Option<Connection<'_>> {
        self.range(Scope::Media(media))?;
        self.connection(Scope::Media(media))
            .or_else(|| self.connection(Scope::Session))
    }

    fn find_kind(&self, scope: Scope, kind: u8) -> Option<usize> {
        self.range(scope)?.find(|&i| self.kind(i) == Some(kind))
    }

    /// Set the `c=` line of a scope: replaces the first, removes further ones (layered multicast), or
    /// inserts one where RFC 8866 §5 orders it when the scope has none.
    pub fn set_connection(&mut self, scope: Scope, conn: &Connection<'_>) -> Result<(), SdpError> {
        let range = self.range_mut(scope)?;
        let mut line = String::with_capacity(48);
        line.push_str("c=");
        conn.write(&mut line);
        // What the SBC writes must pass its own parser (family vs address, TTL only for IPv4, ...).
        let reparsed = line.get(2..).and_then(Connection::parse);
        if !conn.is_writable() || reparsed.as_ref() != Some(conn) {
            return Err(SdpError::BadValue { what: "connection" });
        }
        let existing: SmallVec<[usize; 4]> = range
            .clone()
            .filter(|&i| self.kind(i) == Some(b'c'))
            .collect();
        match existing.split_first() {
            Some((&first, others)) => {
                self.replace_line(first, line);
                self.remove_lines(others);
            }
            None => {
                let at = self.connection_slot(scope, range);
                self.insert_line(at, b'c', line);
            }
        }
        Ok(())
    }

    /// Where a new `c=` line goes: before `b=`, `t=`/`r=`/`z=`, `k=` and `a=` of the scope.
    fn connection_slot(&self, scope: Scope, range: Range<usize>) -> usize {
        let after: &[u8] = match scope {
            Scope::Session => b"btrzkam",
            Scope::Media(_) => b"bka",
        };
        let skip = usize::from(matches!(scope, Scope::Media(_)));
        let end = range.end;
        range
            .skip(skip)
            .find(|&i| self.kind(i).is_some_and(|k| after.contains(&k)))
            .unwrap_or(end)
    }

    /// Point a scope's `c=` at `ip` (`IN IP4`/`IN IP6` by family). A multicast TTL/count is kept only when
    /// `ip` is itself multicast. Inserts a `c=` when the scope has none.
    pub fn set_connection_addr(&mut self, scope: Scope, ip: IpAddr) -> Result<(), SdpError> {
        let address = ip.to_string();
        let mut conn = Connection::unicast(&ip, &address);
        if ip.is_multicast() {
            if let Some(old) = self.connection(scope) {
                conn.ttl = old.ttl.filter(|_| ip.is_ipv4());
                conn.count = old.count;
            }
        }
        self.set_connection(scope, &conn)
    }

    /// Point every existing `c=` line (session and media level) at `ip`; inserts none. Returns how many
    /// lines were rewritten.
    pub fn set_all_connection_addrs(&mut self, ip: IpAddr) -> usize {
        let address = ip.to_string();
        let mut n = 0;
        for i in 0..self.lines.len() {
            if self.kind(i) != Some(b'c') {
                continue;
            }
            let mut conn = Connection::unicast(&ip, &address);
            if ip.is_multicast() {
                if let Some(old) = self.value_str(i).and_then(Connection::parse) {
                    conn.ttl = old.ttl.filter(|_| ip.is_ipv4());
                    conn.count = old.count;
                }
            }
            let mut line = String::with_capacity(48);
            line.push_str("c=");
            conn.write(&mut line);
            self.replace_line(i, line);
            n += 1;
        }
        n
    }

    /// Remove the `c=` lines of a scope; returns how many.
    pub fn remove_connection(&mut self, scope: Scope) -> usize {
        let Some(range) = self.range(scope) else {
            return 0;
        };
        let hits: SmallVec<[usize; 4]> = range.filter(|&i| self.kind(i) == Some(b'c')).collect();
        self.remove_lines(&hits)
    }

    // ---------------------------------------------------------------------------------------------
    // Media lines

    /// The number of media sections.
    pub fn media_count(&self) -> usize {
        self.media.len()
    }

    /// The `m=` line of media section `index`.
    pub fn media(&self, index: usize) -> Option<MediaLine<'_>> {
        let i = *self.media.get(index)?;
        MediaLine::parse(self.value_str(i)?).ok()
    }

    /// Every `m=` line, in order.
    pub fn media_lines(&self) -> impl Iterator<Item = MediaLine<'_>> + '_ {
        (0..self.media.len()).filter_map(|k| self.media(k))
    }

    fn media_or_err(&self, index: usize) -> Result<(usize, MediaLine<'_>), SdpError> {
        let i = *self
            .media
            .get(index)
            .ok_or(SdpError::NoSuchMedia { index })?;
        let m = self.media(index).ok_or(SdpError::NoSuchMedia { index })?;
        Ok((i, m))
    }

    /// Set the port of an `m=` line (the port count, if any, is kept). A rejected line that lists no
    /// format (some agents send one) cannot be given a port: set its formats first.
    pub fn set_media_port(&mut self, index: usize, port: u16) -> Result<(), SdpError> {
        let (i, m) = self.media_or_err(index)?;
        if port != 0 && m.formats().next().is_none() {
            return Err(SdpError::BadValue {
                what: "port for an m= line without formats",
            });
        }
        let line = MediaLine::line_with(m.media, port, m.port_count, m.proto, m.formats());
        self.replace_line(i, line);
        Ok(())
    }

    /// Set or remove the port count (`/2`) of an `m=` line.
    pub fn set_media_port_count(
        &mut self,
        index: usize,
        count: Option<u16>,
    ) -> Result<(), SdpError> {
        if count == Some(0) {
            return Err(SdpError::BadValue { what: "port count" });
        }
        let (i, m) = self.media_or_err(index)?;
        let line = MediaLine::line_with(m.media, m.port, count, m.proto, m.formats());
        self.replace_line(i, line);
        Ok(())
    }

    /// Set the transport protocol of an `m=` line (`RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...).
    pub fn set_media_proto(&mut self, index: usize, proto: &str) -> Result<(), SdpError> {
        if !is_token(proto) {
            return Err(SdpError::BadValue { what: "proto" });
        }
        let (i, m) = self.media_or_err(index)?;
        let line = MediaLine::line_with(m.media, m.port, m.port_count, proto, m.formats());
        self.replace_line(i, line);
        Ok(())
    }

    /// Replace the format list of an `m=` line (order is preference). Leaves `rtpmap`/`fmtp` alone; see
    /// [`Sdp::retain_formats`] to filter codecs.
    pub fn set_media_formats(&mut self, index: usize, formats: &[&str]) -> Result<(), SdpError> {
        if formats.is_empty() || !formats.iter().all(|f| is_token(f)) {
            return Err(SdpError::BadValue { what: "formats" });
        }
        let (i, m) = self.media_or_err(index)?;
        let line = MediaLine::line_with(
            m.media,
            m.port,
            m.port_count,
            m.proto,
            formats.iter().copied(),
        );
        self.replace_line(i, line);
        Ok(())
    }

    /// Reject (in an answer) or disable (in an offer) a stream: port 0, formats kept (RFC 3264 §6, §8.2).
    pub fn reject_media(&mut self, index: usize) -> Result<(), SdpError> {
        let (i, m) = self.media_or_err(index)?;
        let line = MediaLine::line_with(m.media, 0, None, m.proto, m.formats());
        self.replace_line(i, line);
        Ok(())
    }

    /// Keep only the formats of an `m=` line for which `keep` is true, in their order, and drop the
    /// `rtpmap`, `fmtp` and `rtcp-fb` lines of the media section whose format is no longer listed
    /// (`rtcp-fb:*` stays). Returns how many formats were removed; with none removed nothing changes.
    /// Fails with [`SdpError::NoFormatsLeft`] (changing nothing) if no format would be left.
    pub fn retain_formats(
        &mut self,
        index: usize,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<usize, SdpError> {
        let (i, m) = self.media_or_err(index)?;
        let mut kept: SmallVec<[&str; 16]> = SmallVec::new();
        let mut removed = 0usize;
        for f in m.formats() {
            if keep(f) {
                kept.push(f);
            } else {
                removed += 1;
            }
        }
        if removed == 0 {
            return Ok(0);
        }
        if kept.is_empty() {
            return Err(SdpError::NoFormatsLeft { index });
        }
        let line =
            MediaLine::line_with(m.media, m.port, m.port_count, m.proto, kept.iter().copied());
        let range = self.range_mut(Scope::Media(index))?;
        let orphans: SmallVec<[usize; 16]> = range
            .filter(|&j| {
                FORMAT_ATTRIBUTES.iter().any(|n| self.attr_is(j, n))
                    && self
                        .attr_at(j)
                        .and_then(|a| a.key())
                        .is_some_and(|k| k != "*" && !kept.contains(&k))
            })
            .collect();
        drop(kept);
        self.replace_line(i, line);
        self.remove_lines(&orphans);
        Ok(removed)
    }

    /// [`Sdp::retain_formats`] for RTP payload types.
    pub fn retain_payload_types(&mut self, index: usize, keep: &[u8]) -> Result<usize, SdpError> {
        self.retain_formats(index, |f| {
            parse_decimal::<u8>(f, 3).is_some_and(|pt| keep.contains(&pt))
        })
    }

    // ---------------------------------------------------------------------------------------------
    // Generic attributes

    fn attr_at(&self, i: usize) -> Option<Attribute<'_>> {
        if self.kind(i)? != b'a' {
            return None;
        }
        Attribute::parse(self.value_str(i)?)
    }

    /// The name of attribute line `i` as bytes (no UTF-8 check, so lookups by name stay cheap).
    fn attr_name_at(&self, i: usize) -> Option<&[u8]> {
        if self.kind(i)? != b'a' {
            return None;
        }
        let text = self.text(i).get(2..)?;
        // Names are short: a plain scan beats a SIMD search here.
        match text.iter().position(|&b| b == b':') {
            Some(colon) => text.get(..colon),
            None => Some(text),
        }
    }

    /// Whether line `i` is attribute `name` (ASCII case-insensitive).
    fn attr_is(&self, i: usize, name: &str) -> bool {
        if self.kind(i) != Some(b'a') {
            return false;
        }
        let text = self.text(i).get(2..).unwrap_or_default();
        text.get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
            && matches!(text.get(name.len()), None | Some(b':'))
            && !name.contains(':')
    }

    /// Line `i` as attribute `name`, if it is one and is UTF-8.
    fn attr_named(&self, i: usize, name: &str) -> Option<Attribute<'_>> {
        if self.attr_is(i, name) {
            self.attr_at(i)
        } else {
            None
        }
    }

    /// The attributes `name` of a scope.
    fn attrs_named<'s>(
        &'s self,
        scope: Scope,
        name: &'s str,
    ) -> impl Iterator<Item = Attribute<'s>> + 's {
        self.range(scope)
            .unwrap_or(0..0)
            .filter_map(move |i| self.attr_named(i, name))
    }

    /// Whether line `i` is a direction attribute.
    fn is_direction(&self, i: usize) -> bool {
        self.attr_name_at(i)
            .and_then(|n| std::str::from_utf8(n).ok())
            .is_some_and(|n| Direction::from_name(n).is_some())
    }

    /// Remove the attributes `name` of a scope for which `remove` is true.
    fn remove_named_where(
        &mut self,
        scope: Scope,
        name: &str,
        mut remove: impl FnMut(&Attribute<'_>) -> bool,
    ) -> usize {
        let Some(range) = self.range(scope) else {
            return 0;
        };
        let hits: SmallVec<[usize; 16]> = range
            .filter(|&i| self.attr_named(i, name).is_some_and(|a| remove(&a)))
            .collect();
        self.remove_lines(&hits)
    }

    /// Every attribute of a scope, in order (non-UTF-8 lines are skipped).
    pub fn attributes(&self, scope: Scope) -> impl Iterator<Item = Attribute<'_>> + '_ {
        self.range(scope)
            .unwrap_or(0..0)
            .filter_map(move |i| self.attr_at(i))
    }

    /// The first attribute `name` of a scope.
    pub fn attribute(&self, scope: Scope, name: &str) -> Option<Attribute<'_>> {
        self.range(scope)?.find_map(|i| self.attr_named(i, name))
    }

    /// Whether a scope has attribute `name` (with or without value).
    pub fn has_attribute(&self, scope: Scope, name: &str) -> bool {
        self.attribute(scope, name).is_some()
    }

    /// The values of every attribute `name` in a scope (`""` for property attributes).
    pub fn attribute_values<'s>(
        &'s self,
        scope: Scope,
        name: &'s str,
    ) -> impl Iterator<Item = &'s str> + 's {
        self.attrs_named(scope, name).map(|a| a.value.unwrap_or(""))
    }

    fn attr_line(name: &str, value: Option<&str>) -> Result<String, SdpError> {
        if !is_token(name) || name.contains(':') {
            return Err(SdpError::BadValue {
                what: "attribute name",
            });
        }
        let mut s = String::with_capacity(name.len() + value.map_or(0, str::len) + 3);
        s.push_str("a=");
        s.push_str(name);
        if let Some(v) = value {
            if !is_line_safe(v) {
                return Err(SdpError::BadValue {
                    what: "attribute value",
                });
            }
            s.push(':');
            s.push_str(v);
        }
        Ok(s)
    }

    /// Set attribute `name` of a scope to one line: replaces the first occurrence in place and removes
    /// the others, or adds it (see [`Sdp::add_attribute`]).
    pub fn set_attribute(
        &mut self,
        scope: Scope,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), SdpError> {
        let line = Self::attr_line(name, value)?;
        let range = self.range_mut(scope)?;
        let hits: SmallVec<[usize; 8]> = range.filter(|&i| self.attr_is(i, name)).collect();
        match hits.split_first() {
            Some((&first, others)) => {
                self.replace_line(first, line);
                self.remove_lines(others);
            }
            None => self.insert_attr(scope, name, line)?,
        }
        Ok(())
    }

    /// Add an attribute line to a scope: after the last attribute of the same name, else at the end of
    /// the scope.
    pub fn add_attribute(
        &mut self,
        scope: Scope,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), SdpError> {
        let line = Self::attr_line(name, value)?;
        self.insert_attr(scope, name, line)
    }

    fn insert_attr(&mut self, scope: Scope, name: &str, line: String) -> Result<(), SdpError> {
        let range = self.range_mut(scope)?;
        let end = range.end;
        let at = range
            .rev()
            .find(|&i| self.attr_is(i, name))
            .map_or(end, |i| i + 1);
        self.insert_line(at, b'a', line);
        Ok(())
    }

    /// Remove every attribute `name` of a scope; returns how many.
    pub fn remove_attribute(&mut self, scope: Scope, name: &str) -> usize {
        let Some(range) = self.range(scope) else {
            return 0;
        };
        let hits: SmallVec<[usize; 16]> = range.filter(|&i| self.attr_is(i, name)).collect();
        self.remove_lines(&hits)
    }

    /// Remove every attribute of a scope for which `remove` is true; returns how many.
    pub fn remove_attributes_where(
        &mut self,
        scope: Scope,
        mut remove: impl FnMut(&Attribute<'_>) -> bool,
    ) -> usize {
        let Some(range) = self.range(scope) else {
            return 0;
        };
        let hits: SmallVec<[usize; 16]> = range
            .filter(|&i| self.attr_at(i).is_some_and(|a| remove(&a)))
            .collect();
        self.remove_lines(&hits)
    }

    // ---------------------------------------------------------------------------------------------
    // Codecs: rtpmap, fmtp, ptime

    /// Every valid `rtpmap` of a media section.
    pub fn rtpmaps(&self, media: usize) -> impl Iterator<Item = RtpMap<'_>> + '_ {
        self.attrs_named(Scope::Media(media), "rtpmap")
            .filter_map(|a| RtpMap::parse(a.value?))
    }

    /// The `rtpmap` of one payload type.
    pub fn rtpmap(&self, media: usize, payload_type: u8) -> Option<RtpMap<'_>> {
        self.rtpmaps(media).find(|r| r.payload_type == payload_type)
    }

    /// Set the `rtpmap` of `map.payload_type`: replaces the existing one, or adds one after the others.
    pub fn set_rtpmap(&mut self, media: usize, map: &RtpMap<'_>) -> Result<(), SdpError> {
        if !map.is_writable() {
            return Err(SdpError::BadValue { what: "rtpmap" });
        }
        let pt = map.payload_type.to_string();
        let value = map.to_value();
        self.set_keyed(media, "rtpmap", &pt, &value, None)
    }

    /// The `fmtp` parameters of a format (the text after `<format> `).
    pub fn fmtp(&self, media: usize, format: &str) -> Option<&str> {
        self.attrs_named(Scope::Media(media), "fmtp")
            .filter_map(|a| next_token(a.value?))
            .find_map(|(k, params)| (k == format).then_some(params))
    }

    /// Set the `fmtp` parameters of a format: replaces the existing line, or adds one after the format's
    /// `rtpmap` (else after the last `fmtp`, else at the end of the section).
    pub fn set_fmtp(&mut self, media: usize, format: &str, params: &str) -> Result<(), SdpError> {
        if !is_token(format) || params.trim().is_empty() || !is_line_safe(params) {
            return Err(SdpError::BadValue { what: "fmtp" });
        }
        let value = format!("{format} {params}");
        self.set_keyed(media, "fmtp", format, &value, Some("rtpmap"))
    }

    /// Replace the attribute `name` whose key is `key`, or insert it after the `after` attribute with the
    /// same key, else after the last `name`, else at the end of the section.
    fn set_keyed(
        &mut self,
        media: usize,
        name: &str,
        key: &str,
        value: &str,
        after: Option<&str>,
    ) -> Result<(), SdpError> {
        let line = Self::attr_line(name, Some(value))?;
        let scope = Scope::Media(media);
        let range = self.range_mut(scope)?;
        let keyed =
            |s: &Self, i: usize, n: &str| s.attr_named(i, n).is_some_and(|a| a.key() == Some(key));
        if let Some(i) = range.clone().find(|&i| keyed(self, i, name)) {
            self.replace_line(i, line);
            return Ok(());
        }
        if let Some(i) = after.and_then(|n| range.rev().find(|&i| keyed(self, i, n))) {
            self.insert_line(i + 1, b'a', line);
            return Ok(());
        }
        self.insert_attr(scope, name, line)
    }

    /// `a=ptime` of a scope, in milliseconds (a fractional part is dropped).
    pub fn ptime(&self, scope: Scope) -> Option<u32> {
        self.millis(scope, "ptime")
    }

    /// `a=maxptime` of a scope, in milliseconds.
    pub fn maxptime(&self, scope: Scope) -> Option<u32> {
        self.millis(scope, "maxptime")
    }

    fn millis(&self, scope: Scope, name: &str) -> Option<u32> {
        let v = self.attribute(scope, name)?.value?.trim();
        let int = v.split_once('.').map_or(v, |(i, _)| i);
        parse_decimal(int, 10)
    }

    /// Set `a=ptime` of a scope.
    pub fn set_ptime(&mut self, scope: Scope, ms: u32) -> Result<(), SdpError> {
        self.set_attribute(scope, "ptime", Some(&ms.to_string()))
    }

    /// Set `a=maxptime` of a scope.
    pub fn set_maxptime(&mut self, scope: Scope, ms: u32) -> Result<(), SdpError> {
        self.set_attribute(scope, "maxptime", Some(&ms.to_string()))
    }

    // ---------------------------------------------------------------------------------------------
    // Direction

    /// The direction attribute written in a scope, if any.
    pub fn direction(&self, scope: Scope) -> Option<Direction> {
        self.range(scope)?.find_map(|i| {
            let name = std::str::from_utf8(self.attr_name_at(i)?).ok()?;
            Direction::from_name(name)
        })
    }

    /// The direction of a media section: its own attribute, else the session's, else `sendrecv`
    /// (RFC 8866 §6.7). A `c=0.0.0.0` hold (RFC 2543 style) is not folded in; see
    /// [`Connection::is_unspecified`].
    pub fn effective_direction(&self, media: usize) -> Direction {
        self.direction(Scope::Media(media))
            .or_else(|| self.direction(Scope::Session))
            .unwrap_or(Direction::SendRecv)
    }

    /// Write one direction attribute in a scope: replaces the first one in place and removes the
    /// others, or adds one at the end of the scope.
    pub fn set_direction(&mut self, scope: Scope, dir: Direction) -> Result<(), SdpError> {
        let range = self.range_mut(scope)?;
        let hits: SmallVec<[usize; 4]> = range.filter(|&i| self.is_direction(i)).collect();
        let line = format!("a={}", dir.as_str());
        match hits.split_first() {
            Some((&first, others)) => {
                self.replace_line(first, line);
                self.remove_lines(others);
                Ok(())
            }
            None => self.insert_attr(scope, dir.as_str(), line),
        }
    }

    /// Remove the direction attributes of a scope; returns how many.
    pub fn remove_direction(&mut self, scope: Scope) -> usize {
        let Some(range) = self.range(scope) else {
            return 0;
        };
        let hits: SmallVec<[usize; 4]> = range.filter(|&i| self.is_direction(i)).collect();
        self.remove_lines(&hits)
    }

    // ---------------------------------------------------------------------------------------------
    // RTCP

    /// `a=rtcp` of a media section (RFC 3605), if present and valid.
    pub fn rtcp(&self, media: usize) -> Option<Rtcp<'_>> {
        Rtcp::parse(self.attribute(Scope::Media(media), "rtcp")?.value?)
    }

    /// Set `a=rtcp` of a media section to `port` and, if given, an address (`IN IP4`/`IN IP6`).
    pub fn set_rtcp(
        &mut self,
        media: usize,
        port: u16,
        ip: Option<IpAddr>,
    ) -> Result<(), SdpError> {
        let address = ip.map(|ip| ip.to_string());
        let connection = ip
            .as_ref()
            .zip(address.as_deref())
            .map(|(ip, a)| Connection::unicast(ip, a));
        let value = Rtcp { port, connection }.to_value();
        self.set_attribute(Scope::Media(media), "rtcp", Some(&value))
    }

    /// Remove `a=rtcp` from a media section; returns how many lines.
    pub fn remove_rtcp(&mut self, media: usize) -> usize {
        self.remove_attribute(Scope::Media(media), "rtcp")
    }

    /// Whether a media section has `a=rtcp-mux` (RFC 5761).
    pub fn rtcp_mux(&self, media: usize) -> bool {
        self.has_attribute(Scope::Media(media), "rtcp-mux")
    }

    // ---------------------------------------------------------------------------------------------
    // SDES-SRTP

    /// The valid `a=crypto` lines of a media section (RFC 4568), in preference order.
    pub fn cryptos(&self, media: usize) -> impl Iterator<Item = Crypto<'_>> + '_ {
        self.attrs_named(Scope::Media(media), "crypto")
            .filter_map(|a| Crypto::parse(a.value?))
    }

    /// Add an `a=crypto` line after the existing ones.
    pub fn add_crypto(&mut self, media: usize, crypto: &Crypto<'_>) -> Result<(), SdpError> {
        if !crypto.is_writable() {
            return Err(SdpError::BadValue { what: "crypto" });
        }
        let value = crypto.to_value();
        self.add_attribute(Scope::Media(media), "crypto", Some(&value))
    }

    /// Write an `a=crypto` line: replaces the line with the same tag in place, or adds one after the
    /// existing ones (an answer keeps the tag of the offered line it accepts, RFC 4568 §7.1.2).
    pub fn set_crypto(&mut self, media: usize, crypto: &Crypto<'_>) -> Result<(), SdpError> {
        if !crypto.is_writable() {
            return Err(SdpError::BadValue { what: "crypto" });
        }
        let tag = crypto.tag.to_string();
        let value = crypto.to_value();
        self.set_keyed(media, "crypto", &tag, &value, None)
    }

    /// Remove the `a=crypto` line with `tag`, or every one with `None`; returns how many.
    pub fn remove_crypto(&mut self, media: usize, tag: Option<u32>) -> usize {
        self.remove_named_where(Scope::Media(media), "crypto", |a| {
            tag.is_none_or(|t| a.key().and_then(|k| parse_decimal::<u32>(k, 9)) == Some(t))
        })
    }

    // ---------------------------------------------------------------------------------------------
    // ICE

    /// Remove every ICE attribute ([`ICE_ATTRIBUTES`]) at session and media level; returns how many.
    pub fn remove_ice(&mut self) -> usize {
        let hits: Vec<usize> = (0..self.lines.len())
            .filter(|&i| ICE_ATTRIBUTES.iter().any(|n| self.attr_is(i, n)))
            .collect();
        self.remove_lines(&hits)
    }
}

impl fmt::Debug for Sdp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.lines().map(String::from_utf8_lossy))
            .finish()
    }
}

/// The text with CRLF line ends; bytes that are not UTF-8 are shown as U+FFFD.
impl fmt::Display for Sdp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            f.write_str(&String::from_utf8_lossy(l))?;
            f.write_str("\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\n\
s=-\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

    fn out(sdp: &Sdp<'_>) -> String {
        String::from_utf8(sdp.to_vec()).unwrap()
    }

    #[test]
    fn round_trip_crlf_and_lf() {
        let sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(out(&sdp), PHONE);
        let lf = PHONE.replace("\r\n", "\n");
        assert_eq!(out(&Sdp::parse_str(&lf).unwrap()), PHONE);
        assert_eq!(sdp.encoded_len(), PHONE.len());
    }

    #[test]
    fn missing_final_newline_and_blank_lines() {
        let text = "v=0\n\no=- 1 1 IN IP4 1.2.3.4\ns=-\r\nt=0 0";
        let sdp = Sdp::parse_str(text).unwrap();
        assert_eq!(
            out(&sdp),
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
        );
    }

    #[test]
    fn parse_errors_name_the_fault() {
        let e = |s: &str| Sdp::parse_str(s).unwrap_err();
        assert_eq!(e(""), SdpError::Empty);
        assert_eq!(e("\r\n\n"), SdpError::Empty);
        assert_eq!(e("o=- 1 1 IN IP4 1.2.3.4\n"), SdpError::MissingVersion);
        assert_eq!(e("v=1\n"), SdpError::BadVersion { line: 1 });
        assert_eq!(e("v=0\ns=-\n"), SdpError::MissingOrigin);
        assert_eq!(
            e("v=0\no=- 1 x IN IP4 1.2.3.4\n"),
            SdpError::BadOrigin { line: 2 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\nv=0\n"),
            SdpError::UnexpectedLine { line: 3 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\nc=IN IP4\n"),
            SdpError::BadConnection { line: 3 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\nm=audio\n"),
            SdpError::BadMedia { line: 3 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\n\nm=audio 99999 RTP/AVP 0\n"),
            SdpError::BadPort { line: 4 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\nfoo\n"),
            SdpError::BadLine { line: 3 }
        );
        assert_eq!(
            e("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\no=- 1 1 IN IP4 h\n"),
            SdpError::UnexpectedLine { line: 4 }
        );
        assert_eq!(
            e("v=0\nm=audio 1 RTP/AVP 0\n").to_string(),
            "missing o= line"
        );
        assert_eq!(
            SdpError::BadPort { line: 4 }.to_string(),
            "bad m= port (line 4)"
        );
        assert_eq!(SdpError::BadPort { line: 4 }.line(), Some(4));
    }

    #[test]
    fn too_many_lines() {
        let mut s = String::from("v=0\no=- 1 1 IN IP4 h\n");
        for _ in 0..MAX_LINES {
            s.push_str("a=x\n");
        }
        assert_eq!(Sdp::parse_str(&s).unwrap_err(), SdpError::TooManyLines);
    }

    #[test]
    fn non_utf8_lines_are_kept() {
        let body =
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=Caf\xe9\r\na=tool:\xff\r\na=candidate:\xff\r\n";
        let mut sdp = Sdp::parse(body).unwrap();
        assert_eq!(sdp.to_vec(), body);
        assert!(sdp.attribute(Scope::Session, "tool").is_none());
        assert_eq!(sdp.remove_ice(), 1);
        assert_eq!(sdp.line_count(), 4);
    }

    #[test]
    fn origin_edits() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(sdp.origin().username, "alice");
        assert_eq!(sdp.bump_origin_version(), 2890844527);
        sdp.set_origin_address("2001:db8::1".parse().unwrap());
        sdp.set_origin_username("-").unwrap();
        assert!(sdp.set_origin_username("a b").is_err());
        assert_eq!(
            sdp.lines().nth(1).unwrap(),
            b"o=- 2890844526 2890844527 IN IP6 2001:db8::1"
        );
        sdp.set_origin_version(7);
        assert_eq!(sdp.origin().session_version, 7);
    }

    #[test]
    fn connection_edits_and_insertion_order() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(sdp.effective_connection(0).unwrap().address, "10.0.0.5");
        assert!(sdp.connection(Scope::Media(0)).is_none());
        sdp.set_connection_addr(Scope::Media(0), "192.0.2.1".parse().unwrap())
            .unwrap();
        let lines: Vec<_> = sdp.scope_lines(Scope::Media(0)).collect();
        assert_eq!(lines.get(1).copied(), Some(&b"c=IN IP4 192.0.2.1"[..]));
        assert_eq!(sdp.effective_connection(0).unwrap().address, "192.0.2.1");
        assert_eq!(sdp.remove_connection(Scope::Session), 1);
        sdp.set_connection_addr(Scope::Session, "192.0.2.2".parse().unwrap())
            .unwrap();
        // Inserted before t=.
        assert_eq!(sdp.lines().nth(3).unwrap(), b"c=IN IP4 192.0.2.2");
        assert_eq!(
            sdp.set_all_connection_addrs("198.51.100.1".parse().unwrap()),
            2
        );
        assert!(sdp
            .set_connection_addr(Scope::Media(3), "192.0.2.1".parse().unwrap())
            .is_err());
        let bad = Connection {
            net_type: "IN",
            addr_type: "IP4",
            address: "::1",
            ttl: None,
            count: None,
        };
        assert!(sdp.set_connection(Scope::Session, &bad).is_err());
        let bad = Connection {
            address: "foo_bar",
            ..bad
        };
        assert!(sdp.set_connection(Scope::Session, &bad).is_err());
        let bad = Connection {
            addr_type: "IP6",
            address: "2001:db8::1",
            ttl: Some(5),
            ..bad
        };
        assert!(sdp.set_connection(Scope::Session, &bad).is_err());
        let name = Connection {
            addr_type: "IP4",
            address: "media.example.com",
            ttl: None,
            ..bad
        };
        sdp.set_connection(Scope::Session, &name).unwrap();
    }

    #[test]
    fn multicast_ttl_kept_only_for_multicast() {
        let text =
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 224.2.1.1/127/3\r\nm=audio 1/2 RTP/AVP 0\r\n";
        let mut sdp = Sdp::parse_str(text).unwrap();
        sdp.set_connection_addr(Scope::Session, "224.2.1.9".parse().unwrap())
            .unwrap();
        assert_eq!(sdp.lines().nth(2).unwrap(), b"c=IN IP4 224.2.1.9/127/3");
        sdp.set_connection_addr(Scope::Session, "192.0.2.1".parse().unwrap())
            .unwrap();
        assert_eq!(sdp.lines().nth(2).unwrap(), b"c=IN IP4 192.0.2.1");
        assert_eq!(sdp.media(0).unwrap().port_count, Some(2));
        sdp.set_media_port(0, 4000).unwrap();
        assert_eq!(sdp.lines().nth(3).unwrap(), b"m=audio 4000/2 RTP/AVP 0");
        sdp.set_media_port_count(0, None).unwrap();
        assert_eq!(sdp.lines().nth(3).unwrap(), b"m=audio 4000 RTP/AVP 0");
    }

    #[test]
    fn media_edits() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        sdp.set_media_proto(0, "RTP/SAVP").unwrap();
        sdp.set_media_formats(0, &["8", "0"]).unwrap();
        assert_eq!(
            sdp.media(0).unwrap().formats().collect::<Vec<_>>(),
            ["8", "0"]
        );
        assert!(sdp.set_media_formats(0, &[]).is_err());
        assert!(sdp.set_media_proto(0, "RTP AVP").is_err());
        sdp.reject_media(0).unwrap();
        assert!(sdp.media(0).unwrap().is_rejected());
        assert_eq!(
            sdp.set_media_port(1, 1),
            Err(SdpError::NoSuchMedia { index: 1 })
        );
    }

    #[test]
    fn codec_filter_drops_orphans() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(sdp.retain_payload_types(0, &[8, 101]).unwrap(), 2);
        assert_eq!(
            sdp.media(0).unwrap().formats().collect::<Vec<_>>(),
            ["8", "101"]
        );
        assert_eq!(
            sdp.rtpmaps(0).map(|r| r.encoding).collect::<Vec<_>>(),
            ["PCMA", "telephone-event"]
        );
        assert_eq!(sdp.fmtp(0, "101"), Some("0-16"));
        assert_eq!(sdp.retain_payload_types(0, &[8, 101]).unwrap(), 0);
        assert_eq!(
            sdp.retain_payload_types(0, &[]),
            Err(SdpError::NoFormatsLeft { index: 0 })
        );
        assert_eq!(sdp.media(0).unwrap().formats().count(), 2);
    }

    #[test]
    fn rtpmap_fmtp_ptime() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(sdp.rtpmap(0, 9).unwrap().encoding, "G722");
        sdp.set_rtpmap(
            0,
            &RtpMap {
                payload_type: 9,
                encoding: "G722",
                clock_rate: 16000,
                params: None,
            },
        )
        .unwrap();
        assert_eq!(sdp.rtpmap(0, 9).unwrap().clock_rate, 16000);
        sdp.set_rtpmap(
            0,
            &RtpMap {
                payload_type: 96,
                encoding: "opus",
                clock_rate: 48000,
                params: Some("2"),
            },
        )
        .unwrap();
        // Added after the last rtpmap.
        assert_eq!(
            sdp.scope_lines(Scope::Media(0)).nth(5).unwrap(),
            b"a=rtpmap:96 opus/48000/2"
        );
        sdp.set_fmtp(0, "96", "useinbandfec=1").unwrap();
        assert_eq!(
            sdp.scope_lines(Scope::Media(0)).nth(6).unwrap(),
            b"a=fmtp:96 useinbandfec=1"
        );
        sdp.set_fmtp(0, "101", "0-15").unwrap();
        assert_eq!(sdp.fmtp(0, "101"), Some("0-15"));
        assert!(sdp.set_fmtp(0, "101", "a\r\nb").is_err());
        assert_eq!(sdp.ptime(Scope::Media(0)), Some(20));
        sdp.set_ptime(Scope::Media(0), 30).unwrap();
        sdp.set_maxptime(Scope::Media(0), 60).unwrap();
        assert_eq!(
            (sdp.ptime(Scope::Media(0)), sdp.maxptime(Scope::Media(0))),
            (Some(30), Some(60))
        );
    }

    #[test]
    fn direction_session_default_and_override() {
        let text = "v=0\r\no=- 1 1 IN IP4 h\r\na=sendonly\r\nm=audio 1 RTP/AVP 0\r\nm=video 2 RTP/AVP 96\r\na=inactive\r\n";
        let mut sdp = Sdp::parse_str(text).unwrap();
        assert_eq!(sdp.effective_direction(0), Direction::SendOnly);
        assert_eq!(sdp.effective_direction(1), Direction::Inactive);
        sdp.set_direction(Scope::Media(0), Direction::RecvOnly)
            .unwrap();
        sdp.set_direction(Scope::Session, Direction::SendRecv)
            .unwrap();
        assert_eq!(sdp.effective_direction(0), Direction::RecvOnly);
        assert_eq!(sdp.remove_direction(Scope::Media(1)), 1);
        assert_eq!(sdp.effective_direction(1), Direction::SendRecv);
        assert_eq!(sdp.lines().nth(2).unwrap(), b"a=sendrecv");
    }

    #[test]
    fn rtcp_and_mux() {
        let text = "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:53020 IN IP4 126.16.64.4\r\na=rtcp-mux\r\n";
        let mut sdp = Sdp::parse_str(text).unwrap();
        assert!(sdp.rtcp_mux(0));
        let r = sdp.rtcp(0).unwrap();
        assert_eq!(
            (r.port, r.connection.unwrap().address),
            (53020, "126.16.64.4")
        );
        sdp.set_rtcp(0, 4001, None).unwrap();
        assert_eq!(sdp.rtcp(0).unwrap().connection, None);
        sdp.set_rtcp(0, 4001, Some("2001:db8::9".parse().unwrap()))
            .unwrap();
        assert_eq!(
            sdp.attribute_values(Scope::Media(0), "rtcp").next(),
            Some("4001 IN IP6 2001:db8::9")
        );
        assert_eq!(sdp.remove_rtcp(0), 1);
        assert!(sdp.rtcp(0).is_none());
    }

    #[test]
    fn crypto_list_add_remove() {
        let text = "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20|1:4\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:BBBB\r\na=sendrecv\r\n";
        let mut sdp = Sdp::parse_str(text).unwrap();
        assert_eq!(sdp.cryptos(0).map(|c| c.tag).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(sdp.remove_crypto(0, Some(1)), 1);
        let c = Crypto {
            tag: 3,
            suite: "AEAD_AES_128_GCM",
            key_params: "inline:CCCC",
            session_params: None,
        };
        sdp.add_crypto(0, &c).unwrap();
        assert_eq!(
            sdp.scope_lines(Scope::Media(0)).nth(2).unwrap(),
            b"a=crypto:3 AEAD_AES_128_GCM inline:CCCC"
        );
        let rekey = Crypto {
            tag: 2,
            key_params: "inline:DDDD",
            ..c
        };
        sdp.set_crypto(0, &rekey).unwrap();
        assert_eq!(
            sdp.scope_lines(Scope::Media(0)).nth(1).unwrap(),
            b"a=crypto:2 AEAD_AES_128_GCM inline:DDDD"
        );
        assert_eq!(sdp.cryptos(0).count(), 2);
        assert_eq!(sdp.remove_crypto(0, None), 2);
        assert!(sdp.add_crypto(0, &Crypto { suite: "A B", ..c }).is_err());
    }

    #[test]
    fn generic_attributes() {
        let mut sdp = Sdp::parse_str(PHONE).unwrap();
        assert_eq!(
            sdp.attribute(Scope::Media(0), "PTIME").unwrap().value,
            Some("20")
        );
        sdp.add_attribute(Scope::Session, "X-vendor", Some("1"))
            .unwrap();
        sdp.add_attribute(Scope::Session, "x-vendor", Some("2"))
            .unwrap();
        assert_eq!(
            sdp.attribute_values(Scope::Session, "x-vendor")
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        sdp.set_attribute(Scope::Session, "x-vendor", None).unwrap();
        assert_eq!(
            sdp.attribute_values(Scope::Session, "x-vendor")
                .collect::<Vec<_>>(),
            [""]
        );
        // Session attributes go before the first m=.
        assert_eq!(sdp.lines().nth(5).unwrap(), b"a=x-vendor");
        assert!(sdp.set_attribute(Scope::Session, "a:b", None).is_err());
        assert!(sdp
            .set_attribute(Scope::Session, "ok", Some("x\ny"))
            .is_err());
        assert!(sdp.add_attribute(Scope::Media(9), "ok", None).is_err());
        assert_eq!(sdp.remove_attribute(Scope::Session, "x-vendor"), 1);
        assert_eq!(out(&sdp), PHONE);
    }

    #[test]
    fn remove_ice_everywhere() {
        let text = "v=0\r\no=- 1 1 IN IP4 h\r\na=ice-lite\r\na=ice-options:trickle\r\nm=audio 1 RTP/AVP 0\r\n\
a=ice-ufrag:u\r\na=ice-pwd:p\r\na=candidate:1 1 udp 1 1.2.3.4 1 typ host\r\na=end-of-candidates\r\na=rtcp-mux\r\n";
        let mut sdp = Sdp::parse_str(text).unwrap();
        assert_eq!(sdp.remove_ice(), 6);
        assert_eq!(
            out(&sdp),
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtcp-mux\r\n"
        );
    }

    #[test]
    fn owned_outlives_input() {
        let sdp = {
            let text = PHONE.to_string();
            Sdp::parse_str(&text).unwrap().into_owned()
        };
        assert_eq!(out(&sdp), PHONE);
        assert_eq!(sdp.to_string(), PHONE);
    }
}
