//! The one error type for bad SIP input, and what the wire should see for it.
//!
//! Parsing never panics on network data. Every fault is a [`ParseError`] variant that names it; the
//! [`ParseError::verdict`] maps it to the answer RFC 3261 asks for: a 400 whose reason phrase names the
//! fault, a more specific status (505, 416, 513), or a silent drop when no answer can be routed (a
//! response, or a request without a usable Via). [`TxError`] is the transaction layer's: a TU command
//! that does not fit the table or the transaction's state.

use crate::names::HeaderName;

/// What to do with a message that failed to parse or validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer statelessly with this status code and reason phrase.
    Reply(u16, &'static str),
    /// Drop silently (count it): no answer can or should be sent.
    Drop,
}

/// A fault in SIP input. Each variant names one fault; no variant carries owned data, so the error path
/// never allocates under a flood. Each variant is also a natural metric label ([`ParseError::label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed: the header section has no terminating empty line. Not an error on a stream
    /// transport (the framer waits), a fault on a datagram.
    Incomplete,
    /// Nothing but line breaks (a keep-alive, RFC 5626 §4.4.1): nothing to parse, nothing to answer.
    Empty,
    /// The message does not fit the index (offsets are `u32`).
    TooLarge,
    /// The start line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    BadStartLine,
    /// The SIP-Version is well formed but not `SIP/2.0` (RFC 3261 §8.2.2 → 505).
    BadVersion,
    /// The Status-Code is not three digits in 100..=699 (RFC 3261 §7.2).
    BadStatusCode,
    /// The Request-URI is malformed, or carries `?headers` (RFC 3261 §19.1.1 forbids them there).
    BadRequestUri,
    /// The Request-URI is a well-formed absolute URI of a scheme the SBC does not serve (RFC 3261 §8.2.2.1
    /// → 416).
    UnsupportedUriScheme,
    /// A header line without a token name and a colon, or the header section is not UTF-8.
    BadHeaderLine,
    /// A mandatory header is absent (RFC 3261 §8.1.1). A missing Via makes a request unanswerable.
    MissingHeader(HeaderName),
    /// A header that may appear once appears more than once (RFC 3261 §7.3.1; RFC 4475 §3.3.8, §3.3.9).
    DuplicateHeader(HeaderName),
    /// A Via value is malformed, but the topmost one names where to send the answer.
    BadVia,
    /// The topmost Via cannot be read: no answer can be routed (RFC 3261 §18.2.2).
    UnroutableVia,
    /// The From value is malformed.
    BadFrom,
    /// The To value is malformed.
    BadTo,
    /// The Call-ID value is malformed.
    BadCallId,
    /// The CSeq value is malformed or its number is not below 2^31 (RFC 3261 §8.1.1.5).
    BadCSeq,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17).
    CSeqMethodMismatch,
    /// Max-Forwards is not a number in 0..=255 (RFC 3261 §20.22).
    BadMaxForwards,
    /// A Contact value is malformed (e.g. an addr-spec with `?headers`, RFC 3261 §20.10).
    BadContact,
    /// The Date value is not an RFC 1123 date in GMT (RFC 3261 §20.17; RFC 4475 §3.1.2.12).
    BadDate,
    /// Content-Length is not a non-negative decimal number (RFC 3261 §20.14).
    BadContentLength,
    /// The body is shorter than Content-Length says (RFC 3261 §18.3).
    BodyTruncated,
    /// A URI outside the Request-URI is malformed (returned by [`crate::uri::Uri::parse`]).
    BadUri,
}

impl ParseError {
    /// The answer RFC 3261 asks for, for a message whose start line says it is a request
    /// (`is_request == true`) or a response. Use [`crate::message::looks_like_request`] when the start line
    /// itself failed. Responses are never answered (RFC 3261 §18.1.2: a malformed response is dropped).
    pub fn verdict(&self, is_request: bool) -> Verdict {
        if !is_request {
            return Verdict::Drop;
        }
        match self {
            Self::Empty | Self::UnroutableVia => Verdict::Drop,
            Self::MissingHeader(HeaderName::Via) => Verdict::Drop,
            Self::TooLarge => Verdict::Reply(513, "Message Too Large"),
            Self::BadVersion => Verdict::Reply(505, "Version Not Supported"),
            Self::UnsupportedUriScheme => Verdict::Reply(416, "Unsupported URI Scheme"),
            other => Verdict::Reply(400, other.reason()),
        }
    }

    /// The reason phrase naming the fault, as it goes into a 400.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Incomplete => "Incomplete Message",
            Self::Empty => "Empty Message",
            Self::TooLarge => "Message Too Large",
            Self::BadStartLine => "Bad Start Line",
            Self::BadVersion => "Bad SIP Version",
            Self::BadStatusCode => "Bad Status Code",
            Self::BadRequestUri => "Bad Request-URI",
            Self::UnsupportedUriScheme => "Unsupported URI Scheme",
            Self::BadHeaderLine => "Bad Header Line",
            Self::MissingHeader(name) => missing_reason(*name),
            Self::DuplicateHeader(name) => duplicate_reason(*name),
            Self::BadVia => "Bad Via",
            Self::UnroutableVia => "Bad Top Via",
            Self::BadFrom => "Bad From",
            Self::BadTo => "Bad To",
            Self::BadCallId => "Bad Call-ID",
            Self::BadCSeq => "Bad CSeq",
            Self::CSeqMethodMismatch => "CSeq Method Mismatch",
            Self::BadMaxForwards => "Bad Max-Forwards",
            Self::BadContact => "Bad Contact",
            Self::BadDate => "Bad Date",
            Self::BadContentLength => "Bad Content-Length",
            Self::BodyTruncated => "Body Shorter Than Content-Length",
            Self::BadUri => "Bad URI",
        }
    }

    /// A short, stable, snake_case name of the fault, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::Empty => "empty",
            Self::TooLarge => "too_large",
            Self::BadStartLine => "bad_start_line",
            Self::BadVersion => "bad_version",
            Self::BadStatusCode => "bad_status_code",
            Self::BadRequestUri => "bad_request_uri",
            Self::UnsupportedUriScheme => "unsupported_uri_scheme",
            Self::BadHeaderLine => "bad_header_line",
            Self::MissingHeader(_) => "missing_header",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::BadVia => "bad_via",
            Self::UnroutableVia => "unroutable_via",
            Self::BadFrom => "bad_from",
            Self::BadTo => "bad_to",
            Self::BadCallId => "bad_call_id",
            Self::BadCSeq => "bad_cseq",
            Self::CSeqMethodMismatch => "cseq_method_mismatch",
            Self::BadMaxForwards => "bad_max_forwards",
            Self::BadContact => "bad_contact",
            Self::BadDate => "bad_date",
            Self::BadContentLength => "bad_content_length",
            Self::BodyTruncated => "body_truncated",
            Self::BadUri => "bad_uri",
        }
    }
}

fn missing_reason(name: HeaderName) -> &'static str {
    match name {
        HeaderName::Via => "Missing Via",
        HeaderName::From => "Missing From",
        HeaderName::To => "Missing To",
        HeaderName::CallId => "Missing Call-ID",
        HeaderName::CSeq => "Missing CSeq",
        HeaderName::MaxForwards => "Missing Max-Forwards",
        HeaderName::Contact => "Missing Contact",
        _ => "Missing Header",
    }
}

fn duplicate_reason(name: HeaderName) -> &'static str {
    match name {
        HeaderName::From => "Duplicate From",
        HeaderName::To => "Duplicate To",
        HeaderName::CallId => "Duplicate Call-ID",
        HeaderName::CSeq => "Duplicate CSeq",
        HeaderName::MaxForwards => "Duplicate Max-Forwards",
        HeaderName::ContentLength => "Duplicate Content-Length",
        HeaderName::ContentType => "Duplicate Content-Type",
        _ => "Duplicate Header",
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// Misuse of the TU commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// The request has no RFC 3261 branch in its top Via.
    NoBranch,
    /// A client transaction with that branch and method already exists.
    Duplicate,
    /// The table is full.
    Full,
    /// No such transaction (it may have terminated).
    Unknown,
    /// The message does not fit (a request where a response is expected, or the state forbids it).
    Invalid,
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoBranch => "request has no RFC 3261 branch",
            Self::Duplicate => "duplicate client transaction",
            Self::Full => "transaction table full",
            Self::Unknown => "unknown transaction",
            Self::Invalid => "message not allowed in this transaction state",
        })
    }
}

impl std::error::Error for TxError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_always_dropped() {
        for e in [
            ParseError::BadCSeq,
            ParseError::BadVersion,
            ParseError::UnsupportedUriScheme,
        ] {
            assert_eq!(e.verdict(false), Verdict::Drop);
        }
    }

    #[test]
    fn request_verdicts_table() {
        let table = [
            (
                ParseError::BadVersion,
                Verdict::Reply(505, "Version Not Supported"),
            ),
            (
                ParseError::UnsupportedUriScheme,
                Verdict::Reply(416, "Unsupported URI Scheme"),
            ),
            (
                ParseError::TooLarge,
                Verdict::Reply(513, "Message Too Large"),
            ),
            (ParseError::MissingHeader(HeaderName::Via), Verdict::Drop),
            (ParseError::UnroutableVia, Verdict::Drop),
            (ParseError::Empty, Verdict::Drop),
            (
                ParseError::MissingHeader(HeaderName::CallId),
                Verdict::Reply(400, "Missing Call-ID"),
            ),
            (
                ParseError::DuplicateHeader(HeaderName::To),
                Verdict::Reply(400, "Duplicate To"),
            ),
            (ParseError::BadCSeq, Verdict::Reply(400, "Bad CSeq")),
            (
                ParseError::CSeqMethodMismatch,
                Verdict::Reply(400, "CSeq Method Mismatch"),
            ),
            (ParseError::BadVia, Verdict::Reply(400, "Bad Via")),
            (
                ParseError::BodyTruncated,
                Verdict::Reply(400, "Body Shorter Than Content-Length"),
            ),
            (
                ParseError::BadContentLength,
                Verdict::Reply(400, "Bad Content-Length"),
            ),
            (
                ParseError::BadRequestUri,
                Verdict::Reply(400, "Bad Request-URI"),
            ),
            (
                ParseError::BadMaxForwards,
                Verdict::Reply(400, "Bad Max-Forwards"),
            ),
            (
                ParseError::BadStartLine,
                Verdict::Reply(400, "Bad Start Line"),
            ),
            (
                ParseError::BadHeaderLine,
                Verdict::Reply(400, "Bad Header Line"),
            ),
            (
                ParseError::Incomplete,
                Verdict::Reply(400, "Incomplete Message"),
            ),
        ];
        for (e, v) in table {
            assert_eq!(e.verdict(true), v, "{e:?}");
        }
    }

    #[test]
    fn display_is_the_reason() {
        assert_eq!(ParseError::BadTo.to_string(), "Bad To");
        assert_eq!(ParseError::BadTo.label(), "bad_to");
    }
}
