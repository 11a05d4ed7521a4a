//! Stream framing for SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §4.4.1).
//!
//! A stream carries messages back to back; the only way to find where one ends is the header section's
//! empty line plus the Content-Length body. Content-Length is therefore mandatory on a stream, and a
//! missing or garbled one is a fault that closes the connection (RFC 3261 §18.3): there is no way to
//! resynchronise. The framer also recognises the RFC 5626 §4.4.1 keep-alive (a double CRLF "ping",
//! answered with a single CRLF "pong") and skips a lone CRLF (a "pong" or the line breaks that RFC 3261
//! §7.5 allows before a start line).
//!
//! The framer is pure: it looks at the bytes buffered so far and says how many form the next unit. It
//! never copies and keeps no state, so a caller feeding a message in any split gets the same answer once
//! the whole message is there.

/// What the buffered bytes start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One whole message of this many bytes (header section, empty line and Content-Length body).
    Complete(usize),
    /// More bytes are needed before anything can be said.
    Incomplete,
    /// A CRLFCRLF keep-alive ping of this many bytes (always 4); the server answers with one CRLF.
    KeepAlive(usize),
    /// A lone CRLF of this many bytes (always 2) to discard: a keep-alive pong, or a line break before a
    /// start line.
    Skip(usize),
}

/// A framing fault: the stream cannot be resynchronised, so the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// No empty line within the maximum header section size.
    HeaderTooLarge,
    /// Content-Length announces a body over the maximum body size.
    BodyTooLarge,
    /// No Content-Length header: mandatory on a stream (RFC 3261 §18.3, §20.14).
    MissingContentLength,
    /// Content-Length is not a decimal number, or appears twice with different values.
    BadContentLength,
}

impl FramingError {
    /// A short, stable, snake_case name of the fault, for metric labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::HeaderTooLarge => "header_too_large",
            Self::BodyTooLarge => "body_too_large",
            Self::MissingContentLength => "missing_content_length",
            Self::BadContentLength => "bad_content_length",
        }
    }
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::error::Error for FramingError {}

/// Size bounds of one framed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of the start line and headers, without the empty line.
    pub max_header: usize,
    /// Maximum body bytes (Content-Length).
    pub max_body: usize,
}

impl Default for Limits {
    /// 16 KiB of headers and 64 KiB of body: far above any real SIP message, small enough that a
    /// connection cannot make the server buffer much.
    fn default() -> Self {
        Self {
            max_header: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// Find the next unit in `buf`, the bytes buffered so far on a stream.
pub fn next_frame(buf: &[u8], limits: &Limits) -> Result<Frame, FramingError> {
    if buf.starts_with(b"\r\n") {
        return Ok(match buf.get(2..4) {
            Some(b"\r\n") => Frame::KeepAlive(4),
            // "\r\n" or "\r\n\r" could still become a ping
            None if buf.len() == 2 || buf.get(2) == Some(&b'\r') => Frame::Incomplete,
            _ => Frame::Skip(2),
        });
    }
    match buf.first() {
        // A lone CR could still become a CRLF keep-alive.
        Some(b'\r') if buf.len() == 1 => return Ok(Frame::Incomplete),
        // Stray line breaks before a start line are ignored, as the parser ignores them (RFC 3261
        // §7.5): the framer must never see a message boundary where the parser does not.
        Some(b'\r' | b'\n') => return Ok(Frame::Skip(1)),
        _ => {}
    }
    // Look for the empty line only within the allowed header size (plus its 4 bytes).
    let window = buf
        .get(..limits.max_header.saturating_add(4))
        .unwrap_or(buf);
    let Some((head_len, body_start)) = header_end(window) else {
        return if window.len() >= limits.max_header.saturating_add(4) {
            Err(FramingError::HeaderTooLarge)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let head = window.get(..head_len).unwrap_or_default();
    let body_len = content_length(head)?;
    if body_len > limits.max_body {
        return Err(FramingError::BodyTooLarge);
    }
    let total = body_start + body_len;
    Ok(if buf.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    })
}

/// Where the header section ends: (length of the header lines, offset of the body). Lines end at LF
/// with an optional CR before it, exactly as `Message::parse` cuts them, so that a peer cannot make the
/// framer and the parser disagree on where a message ends (a bare-LF blank line hiding a
/// Content-Length, found by the `sip_framing` fuzz target). RFC 3261 asks for CRLF; tolerating LF is
/// the parser's choice, and the framer follows it.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    for nl in memchr::memchr_iter(b'\n', buf) {
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some((nl + 1, nl + 2)),
            Some([b'\r', b'\n', ..]) => return Some((nl + 1, nl + 3)),
            _ => {}
        }
    }
    None
}

/// The Content-Length of a header section (start line included, empty line excluded), long form or the
/// compact `l` (RFC 3261 §7.3.3), names case-insensitive, whitespace allowed before the colon.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    // The first line is the start line; header lines follow.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = trim(value.get(1..).unwrap_or_default());
        let n = parse_length(value).ok_or(FramingError::BadContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(FramingError::BadContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of at most 9 digits (no sign, no spaces inside): larger values are over any limit.
fn parse_length(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:sbc.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:sbc.example.com>\r\n\
From: <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    fn with_body(cl_header: &str, body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n{cl_header}\r\n\r\n{body}"
        )
        .into_bytes()
    }

    fn frame(buf: &[u8]) -> Result<Frame, FramingError> {
        next_frame(buf, &Limits::default())
    }

    #[test]
    fn whole_message() {
        assert_eq!(frame(OPTIONS), Ok(Frame::Complete(OPTIONS.len())));
    }

    #[test]
    fn body_counted_and_next_message_left() {
        let mut m = with_body("Content-Length: 5", "hello");
        let len = m.len();
        m.extend_from_slice(OPTIONS);
        assert_eq!(frame(&m), Ok(Frame::Complete(len)));
        assert_eq!(frame(&m[len..]), Ok(Frame::Complete(OPTIONS.len())));
    }

    #[test]
    fn compact_and_case_insensitive() {
        for h in ["l: 5", "L:5", "content-LENGTH :  5 ", "Content-Length\t: 5"] {
            let m = with_body(h, "hello");
            assert_eq!(frame(&m), Ok(Frame::Complete(m.len())), "{h}");
        }
    }

    #[test]
    fn similar_names_are_not_content_length() {
        let m = with_body("Content-Length-X: 3\r\nl: 2", "hi");
        assert_eq!(frame(&m), Ok(Frame::Complete(m.len())));
    }

    #[test]
    fn missing_or_garbled_length_is_a_fault() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(frame(m), Err(FramingError::MissingContentLength));
        for h in [
            "Content-Length: abc",
            "Content-Length: -1",
            "Content-Length:",
            "l: 1 2",
        ] {
            assert_eq!(
                frame(&with_body(h, "")),
                Err(FramingError::BadContentLength),
                "{h}"
            );
        }
        let twice = with_body("Content-Length: 1\r\nl: 2", "xy");
        assert_eq!(frame(&twice), Err(FramingError::BadContentLength));
        let same_twice = with_body("Content-Length: 2\r\nl: 2", "xy");
        assert_eq!(frame(&same_twice), Ok(Frame::Complete(same_twice.len())));
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_header: 64,
            max_body: 10,
        };
        let big_body = with_body("Content-Length: 11", "");
        assert_eq!(
            next_frame(
                &big_body,
                &Limits {
                    max_header: 1000,
                    ..limits
                }
            ),
            Err(FramingError::BodyTooLarge)
        );
        let huge = with_body("Content-Length: 999999999999", "");
        assert_eq!(frame(&huge), Err(FramingError::BadContentLength));
        // 68 bytes without an empty line: over 64 + 4
        assert_eq!(
            next_frame(&[b'a'; 68], &limits),
            Err(FramingError::HeaderTooLarge)
        );
        assert_eq!(next_frame(&[b'a'; 67], &limits), Ok(Frame::Incomplete));
        assert_eq!(
            next_frame(&vec![b'a'; 100_000], &Limits::default()),
            Err(FramingError::HeaderTooLarge)
        );
    }

    #[test]
    fn bare_lf_lines_end_where_the_parser_ends_them() {
        // A bare-LF blank line ends the header section for the parser, so it does for the framer:
        // the Content-Length after it is body, not a header.
        let m = b"OPTIONS sip:a SIP/2.0\nl: 4\n\nXXXX\r\n\r\nYYYY";
        assert_eq!(frame(m), Ok(Frame::Complete(m.len() - 8)));
        let m = b"OPTIONS sip:a SIP/2.0\r\nl: 2\n\r\nok";
        assert_eq!(frame(m), Ok(Frame::Complete(m.len())));
        // Stray line breaks before a start line are skipped one by one, as the parser skips them.
        assert_eq!(frame(b"\nOPTIONS"), Ok(Frame::Skip(1)));
        assert_eq!(frame(b"\rOPTIONS"), Ok(Frame::Skip(1)));
    }

    #[test]
    fn keep_alives() {
        assert_eq!(frame(b""), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r"), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r\n"), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r\n\r"), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r\n\r\n"), Ok(Frame::KeepAlive(4)));
        assert_eq!(frame(b"\r\n\r\nOPTIONS"), Ok(Frame::KeepAlive(4)));
        assert_eq!(frame(b"\r\nOPTIONS"), Ok(Frame::Skip(2)));
        assert_eq!(frame(b"\r\n\rx"), Ok(Frame::Skip(2)));
    }

    /// Drive the framer the way a connection does: append, then consume every unit found.
    fn consume(buf: &mut Vec<u8>, out: &mut Vec<Frame>) {
        loop {
            match frame(buf).unwrap() {
                Frame::Incomplete => return,
                f @ (Frame::Complete(n) | Frame::KeepAlive(n) | Frame::Skip(n)) => {
                    out.push(f);
                    buf.drain(..n);
                }
            }
        }
    }

    #[test]
    fn every_split_point() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(&with_body("l: 5", "hello"));
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        let want = {
            let mut buf = stream.clone();
            let mut out = Vec::new();
            consume(&mut buf, &mut out);
            assert!(buf.is_empty());
            out
        };
        assert_eq!(want.len(), 5);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut buf = Vec::new();
                let mut out = Vec::new();
                for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                    buf.extend_from_slice(chunk);
                    consume(&mut buf, &mut out);
                }
                assert!(buf.is_empty(), "split {a}/{b}");
                assert_eq!(out, want, "split {a}/{b}");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &b in OPTIONS.iter().chain(OPTIONS) {
            buf.push(b);
            consume(&mut buf, &mut out);
        }
        assert_eq!(out, vec![Frame::Complete(OPTIONS.len()); 2]);
    }
}
