//! Bounded, zero-copy bencode: a decoder that borrows every byte string from the input and an
//! encoder that appends to a caller's `Vec<u8>`.
//!
//! Bencode has four kinds of value: integers `i<decimal>e`, byte strings `<length>:<bytes>`, lists
//! `l<values>e` and dictionaries `d<key><value>...e` whose keys are byte strings.
//!
//! The decoder is strict on syntax and liberal on one point only, as rtpengine is: dictionary keys
//! may come in any order (Kamailio's `rtpengine` module writes `command` last, after `sdp`,
//! `call-id` and the tags). Duplicate keys are kept; [`Dict::get`] returns the first.
//! What it refuses, each with its own [`DecodeError`]:
//! - integers with a leading zero (`i03e`), negative zero (`i-0e`), no digits (`ie`, `i-e`), or a
//!   value outside `i64`;
//! - string lengths with a leading zero (`03:abc`), no digits, a value that overflows, a length
//!   past the end of the input, or a length above [`Limits::max_string`];
//! - nesting deeper than [`Limits::max_depth`] and more than [`Limits::max_items`] values in all;
//! - a dictionary key that is not a byte string, a key without a value, and bytes after the value.
//!
//! The decoder never recurses: it keeps its open containers on a fixed stack, so a nesting bomb
//! (`llllll...`) costs one comparison per byte and is refused at [`Limits::max_depth`]. Its output
//! is a flat table of [`Node`]s held by the [`Decoder`] and reused from one message to the next, so
//! decoding allocates nothing once the table has grown to the size of the largest message seen.
//! Values are read through [`Value`], a view over that table and the input.

use core::fmt;

/// The deepest nesting any [`Limits`] can allow: the size of the decoder's fixed stack.
pub const MAX_DEPTH_CAP: usize = 64;

/// Bounds on what the decoder accepts. Every bound is checked before the work it protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries; the top-level dictionary is depth 1. Values above
    /// [`MAX_DEPTH_CAP`] are treated as [`MAX_DEPTH_CAP`]. Default 16 (an ng request nests 3 deep).
    pub max_depth: usize,
    /// Most values (integers, strings, lists, dictionaries and dictionary keys) in one message.
    /// Default 4096.
    pub max_items: usize,
    /// Longest byte string. Default 65535, the largest UDP payload.
    pub max_string: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_items: 4096,
            max_string: 65_535,
        }
    }
}

/// Why a byte string is not one valid bencoded value. Offsets count from the start of the decoded
/// input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value (including an empty input).
    Truncated,
    /// A byte that cannot start a value, or that cannot follow where it stands.
    UnexpectedByte {
        /// Where the byte is.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// An integer that is empty, has a leading zero, is negative zero or does not fit in `i64`.
    BadInteger {
        /// Where the integer starts (its `i`).
        offset: usize,
    },
    /// A string length that has a leading zero or overflows.
    BadLength {
        /// Where the length starts.
        offset: usize,
    },
    /// A string longer than [`Limits::max_string`].
    StringTooLong {
        /// Where the length starts.
        offset: usize,
        /// The announced length.
        len: usize,
    },
    /// Lists and dictionaries nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// Where the container that is one too deep starts.
        offset: usize,
    },
    /// More values than [`Limits::max_items`].
    TooManyItems,
    /// A dictionary key that is not a byte string.
    KeyNotString {
        /// Where the key starts.
        offset: usize,
    },
    /// A dictionary that ends after a key, with no value for it.
    MissingValue {
        /// Where the dictionary's closing `e` is.
        offset: usize,
    },
    /// Bytes after the end of the value.
    TrailingBytes {
        /// Where they start.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => f.write_str("bencode truncated"),
            Self::UnexpectedByte { offset, byte } => {
                write!(f, "unexpected byte 0x{byte:02x} at offset {offset}")
            }
            Self::BadInteger { offset } => write!(f, "malformed integer at offset {offset}"),
            Self::BadLength { offset } => write!(f, "malformed string length at offset {offset}"),
            Self::StringTooLong { offset, len } => {
                write!(f, "string of {len} bytes at offset {offset} is too long")
            }
            Self::TooDeep { offset } => write!(f, "nesting too deep at offset {offset}"),
            Self::TooManyItems => f.write_str("too many values"),
            Self::KeyNotString { offset } => {
                write!(f, "dictionary key at offset {offset} is not a string")
            }
            Self::MissingValue { offset } => {
                write!(f, "dictionary key without a value before offset {offset}")
            }
            Self::TrailingBytes { offset } => write!(f, "bytes after the value at offset {offset}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// One decoded value in the decoder's flat table. Opaque: read values through [`Value`].
#[derive(Clone, Copy, Debug)]
pub struct Node {
    kind: NodeKind,
    /// Index one past the last node of this value's subtree (the next sibling).
    end: usize,
}

#[derive(Clone, Copy, Debug)]
enum NodeKind {
    Int(i64),
    Bytes { start: usize, len: usize },
    List,
    Dict,
}

/// An open container on the decoder's stack.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    /// Its node index.
    node: usize,
    /// A dictionary (else a list).
    dict: bool,
    /// In a dictionary: the next value read is a key.
    want_key: bool,
}

/// A reusable bencode decoder: its [`Limits`] and the node table of the last decoded message.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    limits: Limits,
    nodes: Vec<Node>,
}

impl Decoder {
    /// A decoder with these limits. The node table grows on first use, up to `max_items` nodes.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            nodes: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decode exactly one value spanning all of `src`. The returned view borrows byte strings from
    /// `src` and the structure from this decoder, which is reset by the next call.
    pub fn decode<'a, 'd>(&'d mut self, src: &'a [u8]) -> Result<Value<'a, 'd>, DecodeError> {
        self.nodes.clear();
        let end = parse(src, &self.limits, &mut self.nodes)?;
        if end != src.len() {
            return Err(DecodeError::TrailingBytes { offset: end });
        }
        value_at(src, &self.nodes, 0).ok_or(DecodeError::Truncated)
    }
}

/// Parse one value at the start of `src` into `nodes`; returns the offset just past it.
fn parse(src: &[u8], limits: &Limits, nodes: &mut Vec<Node>) -> Result<usize, DecodeError> {
    let max_depth = limits.max_depth.clamp(1, MAX_DEPTH_CAP);
    let mut stack = [Open::default(); MAX_DEPTH_CAP];
    let mut depth = 0usize;
    let mut pos = 0usize;
    loop {
        let byte = *src.get(pos).ok_or(DecodeError::Truncated)?;
        // The innermost open container, if any.
        let top = match depth.checked_sub(1) {
            Some(i) => stack.get_mut(i),
            None => None,
        };
        if byte == b'e' {
            let Some(open) = top else {
                return Err(DecodeError::UnexpectedByte { offset: pos, byte });
            };
            if open.dict && !open.want_key {
                return Err(DecodeError::MissingValue { offset: pos });
            }
            let count = nodes.len();
            if let Some(node) = nodes.get_mut(open.node) {
                node.end = count;
            }
            depth -= 1;
            pos += 1;
            if depth == 0 {
                return Ok(pos);
            }
            continue;
        }
        let in_key = match top {
            Some(open) if open.dict => {
                let was_key = open.want_key;
                open.want_key = !open.want_key;
                was_key
            }
            _ => false,
        };
        if in_key && !byte.is_ascii_digit() {
            return Err(DecodeError::KeyNotString { offset: pos });
        }
        if nodes.len() >= limits.max_items {
            return Err(DecodeError::TooManyItems);
        }
        let index = nodes.len();
        match byte {
            b'i' => {
                let (value, next) = parse_int(src, pos)?;
                nodes.push(Node {
                    kind: NodeKind::Int(value),
                    end: index + 1,
                });
                pos = next;
            }
            b'0'..=b'9' => {
                let (start, len) = parse_len(src, pos, limits.max_string)?;
                nodes.push(Node {
                    kind: NodeKind::Bytes { start, len },
                    end: index + 1,
                });
                pos = start + len;
            }
            b'l' | b'd' => {
                if depth >= max_depth {
                    return Err(DecodeError::TooDeep { offset: pos });
                }
                let dict = byte == b'd';
                nodes.push(Node {
                    kind: if dict { NodeKind::Dict } else { NodeKind::List },
                    end: index + 1,
                });
                if let Some(slot) = stack.get_mut(depth) {
                    *slot = Open {
                        node: index,
                        dict,
                        want_key: true,
                    };
                }
                depth += 1;
                pos += 1;
                continue;
            }
            _ => return Err(DecodeError::UnexpectedByte { offset: pos, byte }),
        }
        if depth == 0 {
            return Ok(pos);
        }
    }
}

/// `i<digits>e` at `start`: the value and the offset after the `e`.
fn parse_int(src: &[u8], start: usize) -> Result<(i64, usize), DecodeError> {
    let bad = DecodeError::BadInteger { offset: start };
    let body = src.get(start + 1..).ok_or(DecodeError::Truncated)?;
    let (negative, digits) = match body.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, body),
        None => return Err(DecodeError::Truncated),
    };
    let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    match digits.get(count) {
        None => return Err(DecodeError::Truncated),
        Some(b'e') => {}
        Some(&byte) => {
            return Err(DecodeError::UnexpectedByte {
                offset: start + 1 + usize::from(negative) + count,
                byte,
            })
        }
    }
    let digits = digits.get(..count).ok_or(bad)?;
    match digits {
        [] => return Err(bad),
        [b'0'] if negative => return Err(bad),
        [b'0', _, ..] => return Err(bad),
        _ => {}
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut value: i64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(d - b'0')))
            .ok_or(bad)?;
    }
    if !negative {
        value = value.checked_neg().ok_or(bad)?;
    }
    Ok((value, start + 1 + usize::from(negative) + count + 1))
}

/// `<digits>:` at `start`: the offset and length of the string body, checked against the input
/// and `max_string`.
fn parse_len(src: &[u8], start: usize, max_string: usize) -> Result<(usize, usize), DecodeError> {
    let bad = DecodeError::BadLength { offset: start };
    let rest = src.get(start..).ok_or(DecodeError::Truncated)?;
    let count = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match rest.get(count) {
        None => return Err(DecodeError::Truncated),
        Some(b':') => {}
        Some(&byte) => {
            return Err(DecodeError::UnexpectedByte {
                offset: start + count,
                byte,
            })
        }
    }
    let digits = rest.get(..count).ok_or(bad)?;
    if let [b'0', _, ..] = digits {
        return Err(bad);
    }
    let mut len: usize = 0;
    for &d in digits {
        len = len
            .checked_mul(10)
            .and_then(|v| v.checked_add(usize::from(d - b'0')))
            .ok_or(bad)?;
    }
    if len > max_string {
        return Err(DecodeError::StringTooLong { offset: start, len });
    }
    let body = start + count + 1;
    match body.checked_add(len) {
        Some(end) if end <= src.len() => Ok((body, len)),
        _ => Err(DecodeError::Truncated),
    }
}

fn value_at<'a, 'd>(src: &'a [u8], nodes: &'d [Node], index: usize) -> Option<Value<'a, 'd>> {
    let node = nodes.get(index)?;
    Some(match node.kind {
        NodeKind::Int(v) => Value::Int(v),
        NodeKind::Bytes { start, len } => Value::Bytes(src.get(start..start.checked_add(len)?)?),
        NodeKind::List => Value::List(List {
            src,
            nodes,
            first: index + 1,
            end: node.end,
        }),
        NodeKind::Dict => Value::Dict(Dict {
            src,
            nodes,
            first: index + 1,
            end: node.end,
        }),
    })
}

/// A decoded value: byte strings borrow the input (`'a`), containers the decoder's table (`'d`).
#[derive(Clone, Copy, Debug)]
pub enum Value<'a, 'd> {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(&'a [u8]),
    /// A list.
    List(List<'a, 'd>),
    /// A dictionary.
    Dict(Dict<'a, 'd>),
}

impl<'a, 'd> Value<'a, 'd> {
    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Self::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a, 'd>> {
        match *self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a, 'd>> {
        match *self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }
}

/// A decoded list: a view over the decoder's table.
#[derive(Clone, Copy, Debug)]
pub struct List<'a, 'd> {
    src: &'a [u8],
    nodes: &'d [Node],
    first: usize,
    end: usize,
}

impl<'a, 'd> List<'a, 'd> {
    /// The elements, in order.
    pub fn iter(&self) -> ListIter<'a, 'd> {
        ListIter {
            src: self.src,
            nodes: self.nodes,
            next: self.first,
            end: self.end,
        }
    }

    /// Whether the list has no element.
    pub fn is_empty(&self) -> bool {
        self.first >= self.end
    }
}

/// The elements of a [`List`].
#[derive(Clone, Debug)]
pub struct ListIter<'a, 'd> {
    src: &'a [u8],
    nodes: &'d [Node],
    next: usize,
    end: usize,
}

impl<'a, 'd> Iterator for ListIter<'a, 'd> {
    type Item = Value<'a, 'd>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let value = value_at(self.src, self.nodes, self.next)?;
        self.next = self.nodes.get(self.next)?.end;
        Some(value)
    }
}

/// A decoded dictionary, keys in the order they came: a view over the decoder's table.
#[derive(Clone, Copy, Debug)]
pub struct Dict<'a, 'd> {
    src: &'a [u8],
    nodes: &'d [Node],
    first: usize,
    end: usize,
}

impl<'a, 'd> Dict<'a, 'd> {
    /// The `(key, value)` pairs, in the order they came.
    pub fn iter(&self) -> DictIter<'a, 'd> {
        DictIter {
            src: self.src,
            nodes: self.nodes,
            next: self.first,
            end: self.end,
        }
    }

    /// The value of the first pair whose key is `key` (exact bytes).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a, 'd>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the dictionary has no pair.
    pub fn is_empty(&self) -> bool {
        self.first >= self.end
    }
}

/// The pairs of a [`Dict`].
#[derive(Clone, Debug)]
pub struct DictIter<'a, 'd> {
    src: &'a [u8],
    nodes: &'d [Node],
    next: usize,
    end: usize,
}

impl<'a, 'd> Iterator for DictIter<'a, 'd> {
    type Item = (&'a [u8], Value<'a, 'd>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let key = value_at(self.src, self.nodes, self.next)?.as_bytes()?;
        let value_index = self.nodes.get(self.next)?.end;
        let value = value_at(self.src, self.nodes, value_index)?;
        self.next = self.nodes.get(value_index)?.end;
        Some((key, value))
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Append `i<v>e`.
pub fn put_int(out: &mut Vec<u8>, v: i64) {
    out.push(b'i');
    put_decimal(out, v);
    out.push(b'e');
}

/// Append `<len>:<bytes>`.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_decimal(out, i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Append the decimal digits of `v`, without allocating.
fn put_decimal(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut magnitude = v.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        if let Some(slot) = digits.get_mut(n) {
            // The remainder is below 10, so the cast cannot truncate.
            *slot = b'0' + (magnitude % 10) as u8;
        }
        n += 1;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend(digits.iter().take(n).rev());
}

/// Writes the pairs of one dictionary into a caller's buffer. Made by [`dict`] and the `dict`
/// methods; the closing `e` is written when the closure given to them returns, so output is
/// always balanced. Keys are written in the order the calls are made.
#[derive(Debug)]
pub struct DictEncoder<'o> {
    out: &'o mut Vec<u8>,
}

impl DictEncoder<'_> {
    /// A pair with a byte-string value.
    pub fn bytes(&mut self, key: &str, value: &[u8]) -> &mut Self {
        put_bytes(self.out, key.as_bytes());
        put_bytes(self.out, value);
        self
    }

    /// A pair with a byte-string value, written only when `value` is `Some`.
    pub fn opt_bytes(&mut self, key: &str, value: Option<&[u8]>) -> &mut Self {
        if let Some(value) = value {
            self.bytes(key, value);
        }
        self
    }

    /// A pair whose key is arbitrary bytes (a SIP tag, an SSRC) and whose value is a dictionary.
    pub fn dict_raw_key(&mut self, key: &[u8], f: impl FnOnce(&mut DictEncoder<'_>)) -> &mut Self {
        put_bytes(self.out, key);
        dict(self.out, f);
        self
    }

    /// A pair with an integer value.
    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        put_bytes(self.out, key.as_bytes());
        put_int(self.out, value);
        self
    }

    /// A pair with an unsigned integer value (saturated at `i64::MAX`, bencode's practical range).
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.int(key, i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// A pair with a list value.
    pub fn list(&mut self, key: &str, f: impl FnOnce(&mut ListEncoder<'_>)) -> &mut Self {
        put_bytes(self.out, key.as_bytes());
        list(self.out, f);
        self
    }

    /// A pair with a dictionary value.
    pub fn dict(&mut self, key: &str, f: impl FnOnce(&mut DictEncoder<'_>)) -> &mut Self {
        put_bytes(self.out, key.as_bytes());
        dict(self.out, f);
        self
    }
}

/// Writes the elements of one list into a caller's buffer; see [`DictEncoder`].
#[derive(Debug)]
pub struct ListEncoder<'o> {
    out: &'o mut Vec<u8>,
}

impl ListEncoder<'_> {
    /// A byte-string element.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        put_bytes(self.out, value);
        self
    }

    /// An integer element.
    pub fn int(&mut self, value: i64) -> &mut Self {
        put_int(self.out, value);
        self
    }

    /// A list element.
    pub fn list(&mut self, f: impl FnOnce(&mut ListEncoder<'_>)) -> &mut Self {
        list(self.out, f);
        self
    }

    /// A dictionary element.
    pub fn dict(&mut self, f: impl FnOnce(&mut DictEncoder<'_>)) -> &mut Self {
        dict(self.out, f);
        self
    }
}

/// Append a dictionary whose pairs `f` writes.
pub fn dict(out: &mut Vec<u8>, f: impl FnOnce(&mut DictEncoder<'_>)) {
    out.push(b'd');
    f(&mut DictEncoder { out: &mut *out });
    out.push(b'e');
}

/// Append a list whose elements `f` writes.
pub fn list(out: &mut Vec<u8>, f: impl FnOnce(&mut ListEncoder<'_>)) {
    out.push(b'l');
    f(&mut ListEncoder { out: &mut *out });
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_err(src: &[u8]) -> DecodeError {
        Decoder::default().decode(src).unwrap_err()
    }

    #[test]
    fn scalars() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(d.decode(b"i-42e").unwrap().as_int(), Some(-42));
        assert_eq!(
            d.decode(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            d.decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(d.decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(d.decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
    }

    #[test]
    fn unsorted_and_duplicate_keys_are_accepted() {
        let mut d = Decoder::default();
        let v = d.decode(b"d3:zzzi1e3:aaai2e3:zzzi3ee").unwrap();
        let dict = v.as_dict().unwrap();
        let keys: Vec<&[u8]> = dict.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"zzz"[..], b"aaa", b"zzz"]);
        assert_eq!(dict.get(b"zzz").and_then(|v| v.as_int()), Some(1));
        assert_eq!(dict.get(b"aaa").and_then(|v| v.as_int()), Some(2));
        assert!(dict.get(b"nope").is_none());
    }

    #[test]
    fn nested_structure_and_skipping() {
        let mut d = Decoder::default();
        let v = d
            .decode(b"d1:ald1:xli1ei2eeee1:bi7e1:cl0:d1:y1:zeee")
            .unwrap();
        let dict = v.as_dict().unwrap();
        // Skipping over the nested value of "a" lands on "b".
        assert_eq!(dict.get(b"b").and_then(|v| v.as_int()), Some(7));
        let c: Vec<_> = dict.get(b"c").unwrap().as_list().unwrap().iter().collect();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].as_bytes(), Some(&b""[..]));
        let inner = c[1].as_dict().unwrap();
        assert_eq!(inner.get(b"y").unwrap().as_bytes(), Some(&b"z"[..]));
        let a = dict.get(b"a").unwrap().as_list().unwrap();
        let first = a.iter().next().unwrap().as_dict().unwrap();
        let xs: Vec<i64> = first
            .get(b"x")
            .unwrap()
            .as_list()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_int())
            .collect();
        assert_eq!(xs, [1, 2]);
        assert!(d.decode(b"le").unwrap().as_list().unwrap().is_empty());
        assert!(d.decode(b"de").unwrap().as_dict().unwrap().is_empty());
    }

    #[test]
    fn integer_errors() {
        assert_eq!(decode_err(b"i-0e"), DecodeError::BadInteger { offset: 0 });
        assert_eq!(decode_err(b"i03e"), DecodeError::BadInteger { offset: 0 });
        assert_eq!(decode_err(b"i-03e"), DecodeError::BadInteger { offset: 0 });
        assert_eq!(decode_err(b"ie"), DecodeError::BadInteger { offset: 0 });
        assert_eq!(decode_err(b"i-e"), DecodeError::BadInteger { offset: 0 });
        assert_eq!(
            decode_err(b"i9223372036854775808e"),
            DecodeError::BadInteger { offset: 0 }
        );
        assert_eq!(
            decode_err(b"i1x"),
            DecodeError::UnexpectedByte {
                offset: 2,
                byte: b'x'
            }
        );
        assert_eq!(
            decode_err(b"i+1e"),
            DecodeError::UnexpectedByte {
                offset: 1,
                byte: b'+'
            }
        );
        assert_eq!(decode_err(b"i12"), DecodeError::Truncated);
        assert_eq!(decode_err(b"i"), DecodeError::Truncated);
    }

    #[test]
    fn length_errors() {
        assert_eq!(decode_err(b"03:abc"), DecodeError::BadLength { offset: 0 });
        assert_eq!(decode_err(b"4:abc"), DecodeError::Truncated);
        assert_eq!(decode_err(b"4"), DecodeError::Truncated);
        assert_eq!(
            decode_err(b"4x"),
            DecodeError::UnexpectedByte {
                offset: 1,
                byte: b'x'
            }
        );
        // A length that overflows usize.
        assert_eq!(
            decode_err(b"999999999999999999999999999:a"),
            DecodeError::BadLength { offset: 0 }
        );
        // A huge length that fits: refused before any bounds arithmetic on the input.
        assert_eq!(
            decode_err(b"4294967296:a"),
            DecodeError::StringTooLong {
                offset: 0,
                len: 4_294_967_296
            }
        );
        let mut small = Decoder::new(Limits {
            max_string: 3,
            ..Limits::default()
        });
        assert_eq!(
            small.decode(b"4:abcd").unwrap_err(),
            DecodeError::StringTooLong { offset: 0, len: 4 }
        );
        assert!(small.decode(b"3:abc").is_ok());
    }

    #[test]
    fn structure_errors() {
        assert_eq!(decode_err(b""), DecodeError::Truncated);
        assert_eq!(decode_err(b"d"), DecodeError::Truncated);
        assert_eq!(decode_err(b"l"), DecodeError::Truncated);
        assert_eq!(decode_err(b"d1:a"), DecodeError::Truncated);
        assert_eq!(
            decode_err(b"e"),
            DecodeError::UnexpectedByte {
                offset: 0,
                byte: b'e'
            }
        );
        assert_eq!(
            decode_err(b"x"),
            DecodeError::UnexpectedByte {
                offset: 0,
                byte: b'x'
            }
        );
        assert_eq!(
            decode_err(b"di1ei2ee"),
            DecodeError::KeyNotString { offset: 1 }
        );
        assert_eq!(
            decode_err(b"dlee1:ae"),
            DecodeError::KeyNotString { offset: 1 }
        );
        assert_eq!(
            decode_err(b"d1:ae"),
            DecodeError::MissingValue { offset: 4 }
        );
        assert_eq!(
            decode_err(b"i1ei2e"),
            DecodeError::TrailingBytes { offset: 3 }
        );
        assert_eq!(decode_err(b"dee"), DecodeError::TrailingBytes { offset: 2 });
    }

    #[test]
    fn nesting_bomb_is_refused_at_the_limit() {
        let mut bomb = vec![b'l'; 100_000];
        bomb.extend(std::iter::repeat_n(b'e', 100_000));
        assert_eq!(decode_err(&bomb), DecodeError::TooDeep { offset: 16 });
        let mut d = Decoder::new(Limits {
            max_depth: 3,
            ..Limits::default()
        });
        assert!(d.decode(b"llleee").is_ok());
        assert_eq!(
            d.decode(b"lllleeee").unwrap_err(),
            DecodeError::TooDeep { offset: 3 }
        );
        // A limit above the stack size is clamped, never an out-of-bounds write.
        let mut wide = Decoder::new(Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        });
        assert_eq!(
            wide.decode(&bomb).unwrap_err(),
            DecodeError::TooDeep {
                offset: MAX_DEPTH_CAP
            }
        );
    }

    #[test]
    fn item_count_is_bounded() {
        let mut d = Decoder::new(Limits {
            max_items: 4,
            ..Limits::default()
        });
        assert!(d.decode(b"li1ei2ei3ee").is_ok());
        assert_eq!(
            d.decode(b"li1ei2ei3ei4ee").unwrap_err(),
            DecodeError::TooManyItems
        );
        let mut many = b"l".to_vec();
        for _ in 0..10_000 {
            many.extend_from_slice(b"i0e");
        }
        many.push(b'e');
        assert_eq!(decode_err(&many), DecodeError::TooManyItems);
    }

    #[test]
    fn encoder_output_round_trips() {
        let mut out = Vec::new();
        dict(&mut out, |d| {
            d.bytes("command", b"ping")
                .int("neg", -17)
                .int("min", i64::MIN)
                .uint("big", u64::MAX)
                .list("l", |l| {
                    l.bytes(b"a").int(0).list(|_| {}).dict(|d| {
                        d.opt_bytes("absent", None).opt_bytes("present", Some(b"x"));
                    });
                })
                .dict_raw_key(b"raw key", |d| {
                    d.int("k", 1);
                });
        });
        assert_eq!(
            out,
            b"d7:command4:ping3:negi-17e3:mini-9223372036854775808e3:bigi9223372036854775807e\
              1:ll1:ai0eled7:present1:xee7:raw keyd1:ki1eee"
        );
        let mut d = Decoder::default();
        let v = d.decode(&out).unwrap().as_dict().unwrap();
        assert_eq!(v.get(b"neg").unwrap().as_int(), Some(-17));
        assert_eq!(v.get(b"min").unwrap().as_int(), Some(i64::MIN));
        assert_eq!(v.get(b"big").unwrap().as_int(), Some(i64::MAX));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = b"d7:command5:offer5:flagsl13:trust-addressi5ee3:sdp3:v=0e";
        assert!(Decoder::default().decode(full).is_ok());
        let mut d = Decoder::default();
        for cut in 0..full.len() {
            assert!(d.decode(&full[..cut]).is_err(), "prefix of {cut} bytes");
        }
    }
}
