//! Lexical pieces of RFC 3261 §25.1 shared by the header, URI and message scanners: character
//! classes, tokens, quoted strings, top-level splitting and `;params`. A leaf: it imports nothing
//! of the crate, so the scanners built on it do not import each other for it.

/// A `;name[=value]` parameter list as written (without the leading `;`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params<'a> {
    /// The raw text, e.g. `branch=z9hG4bK1;rport`.
    pub raw: &'a str,
}

impl<'a> Params<'a> {
    /// Every parameter as (name, value), whitespace around names and values trimmed; quoted values keep
    /// their quotes. Empty segments (`;;`) are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        SplitTop::new(self.raw, b';').filter_map(|seg| {
            let seg = trim_ws(seg);
            if seg.is_empty() {
                return None;
            }
            Some(match split_byte(seg, b'=') {
                Some((n, v)) => (trim_ws(n), Some(trim_ws(v))),
                None => (seg, None),
            })
        })
    }
    /// The value of `name` (case-insensitive). `Some(None)` for a parameter without value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
    /// Whether the list is well formed: every parameter has a token name and, when it has a value, the
    /// value is a token, a host (IPv6 reference or bare address) or a quoted string (RFC 3261 §25.1
    /// `generic-param`).
    pub fn is_valid(&self) -> bool {
        // An empty list is valid; an empty segment between two `;` is not.
        if trim_ws(self.raw).is_empty() {
            return true;
        }
        SplitTop::new(self.raw, b';').all(|seg| {
            let seg = trim_ws(seg);
            let (name, value) = match split_byte(seg, b'=') {
                Some((n, v)) => (trim_ws(n), Some(trim_ws(v))),
                None => (seg, None),
            };
            is_token(name) && value.is_none_or(is_gen_value)
        })
    }
}

/// Character classes of RFC 3261 §25.1, one bit each, looked up in [`CLASSES`].
pub(crate) const TOKEN: u8 = 1 << 0;
/// `word` characters (Call-ID).
pub(crate) const WORD: u8 = 1 << 1;
/// `unreserved` (alphanum / mark).
pub(crate) const UNRESERVED: u8 = 1 << 2;
/// `user`: unreserved / user-unreserved (`%` escapes checked separately).
pub(crate) const USER: u8 = 1 << 3;
/// `password`: unreserved / `& = + $ ,`.
pub(crate) const PASSWORD: u8 = 1 << 4;
/// `paramchar`: unreserved / param-unreserved.
pub(crate) const PARAMCHAR: u8 = 1 << 5;
/// `hname`/`hvalue`: unreserved / hnv-unreserved.
pub(crate) const HNV: u8 = 1 << 6;
/// Host name characters: alphanum, `-`, `.`, `_`.
pub(crate) const HOSTNAME: u8 = 1 << 7;

const fn classes_of(b: u8) -> u8 {
    let alnum = b.is_ascii_alphanumeric();
    let mark = matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    );
    let token = alnum
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        );
    let unreserved = alnum || mark;
    let mut c = 0;
    if token {
        c |= TOKEN;
    }
    if token
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
    {
        c |= WORD;
    }
    if unreserved {
        c |= UNRESERVED;
    }
    if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
        c |= USER;
    }
    if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
        c |= PASSWORD;
    }
    if unreserved || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
        c |= PARAMCHAR;
    }
    if unreserved || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
        c |= HNV;
    }
    if alnum || matches!(b, b'-' | b'.' | b'_') {
        c |= HOSTNAME;
    }
    c
}

/// The class bits of every octet, built at compile time.
pub(crate) static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        // `i < 256`, so both the cast and the store are in range
        #[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
        {
            t[i] = classes_of(i as u8);
        }
        i += 1;
    }
    t
};

/// Whether `b` is in any of the classes `mask`.
#[inline]
pub(crate) fn has_class(b: u8, mask: u8) -> bool {
    // a u8 always indexes a 256-entry table
    CLASSES.get(usize::from(b)).is_some_and(|c| c & mask != 0)
}

/// RFC 3261 §25.1 `token` characters.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    has_class(b, TOKEN)
}

/// The index of the first `b` (an ASCII byte) in `s`.
#[inline]
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// Split around the first `b` (an ASCII byte, so both halves are valid `str`).
#[inline]
pub(crate) fn split_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, b)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// A non-empty run of token characters.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// SP or HTAB (`WSP`).
pub(crate) const fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trim SP/HTAB on both sides.
pub(crate) fn trim_ws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !is_ws(*c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_ws(*c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Trim SP/HTAB at the start.
pub(crate) fn trim_ws_start(s: &str) -> &str {
    let n = s.bytes().take_while(|c| is_ws(*c)).count();
    s.get(n..).unwrap_or_default()
}

/// A leading token and the rest.
pub(crate) fn take_token(s: &str) -> Option<(&str, &str)> {
    let n = s.bytes().take_while(|b| is_token_byte(*b)).count();
    (n > 0).then(|| s.split_at(n))
}

/// A `generic-param` value: token, host (with or without IPv6 brackets) or quoted string.
fn is_gen_value(v: &str) -> bool {
    let b = v.as_bytes();
    if b.first() == Some(&b'"') {
        return quoted_end(b, 0) == Some(b.len().wrapping_sub(1));
    }
    !b.is_empty()
        && b.iter()
            .all(|&c| is_token_byte(c) || matches!(c, b':' | b'[' | b']'))
}

/// Given `bytes[start] == b'"'`, the index of the closing quote, honouring `\` escapes (RFC 3261 §25.1
/// `quoted-pair`: any octet but CR and LF may be escaped).
pub(crate) fn quoted_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start.checked_add(1)?;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' => match bytes.get(i + 1) {
                Some(b'\r' | b'\n') | None => return None,
                Some(_) => i += 2,
            },
            b'\r' | b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// Decimal digits to a number no larger than `max`; `None` on empty input, a non-digit or overflow.
/// Leading zeros are allowed (RFC 4475 §3.1.1.1: `0068`).
pub(crate) fn parse_decimal(digits: &[u8], max: u32) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Splits on `sep` where it is not inside a quoted string, `<...>` or `[...]` (RFC 3261 §7.3.1: commas
/// in those do not separate values). Yields every piece, untrimmed, empty ones included.
pub(crate) struct SplitTop<'a> {
    rest: Option<&'a str>,
    sep: u8,
    split: bool,
    /// Known to hold no quote, `<` or `[`: plain separator search (decided once, on the first piece).
    plain: Option<bool>,
}

impl<'a> SplitTop<'a> {
    pub(crate) fn new(s: &'a str, sep: u8) -> Self {
        Self {
            rest: Some(s),
            sep,
            split: true,
            plain: None,
        }
    }
    /// With `split == false`, yield the whole text as one piece.
    pub(crate) fn with_split(self, split: bool) -> Self {
        Self { split, ..self }
    }
}

impl<'a> Iterator for SplitTop<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        if !self.split {
            self.rest = None;
            return Some(s);
        }
        let b = s.as_bytes();
        // Fast path: nothing that nests, so the first separator is the one.
        let plain = *self
            .plain
            .get_or_insert_with(|| !b.iter().any(|c| matches!(c, b'"' | b'<' | b'[')));
        if plain {
            return Some(match find_byte(s, self.sep) {
                Some(i) => {
                    self.rest = s.get(i + 1..);
                    s.get(..i).unwrap_or_default()
                }
                None => {
                    self.rest = None;
                    s
                }
            });
        }
        let mut angle = false;
        let mut square = false;
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => match quoted_end(b, i) {
                    Some(end) => {
                        i = end + 1;
                        continue;
                    }
                    // unbalanced quote: the rest is one piece
                    None => break,
                },
                b'<' => angle = true,
                b'>' => angle = false,
                b'[' => square = true,
                b']' => square = false,
                c if c == self.sep && !angle && !square => {
                    let (piece, rest) = s.split_at(i);
                    self.rest = rest.get(1..);
                    return Some(piece);
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(s)
    }
}
