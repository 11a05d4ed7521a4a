//! The one error type for bad SIP input, and what the wire should see for it.
//!
//! Parsing never panics on network data. Every fault is a [`ParseError`] variant that names it; the
//! [`ParseError::verdict`] maps it to the answer RFC 3261 asks for: a 400 whose reason phrase names the
//! fault, a more specific status (505, 416, 415, 420, ...), or a silent drop when no answer can be routed
//! (a response, or a request without a usable Via).

/// What to do with a message that failed to parse or validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer statelessly with this status code and reason phrase.
    Reply(u16, &'static str),
    /// Drop silently (count it): no answer can or should be sent.
    Drop,
}

/// A fault in SIP input. Each variant names one fault; `&'static str` context keeps the error path free of
/// allocation under a flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed (stream transports only): not an error on TCP, a fault on UDP.
    Incomplete,
    /// TODO(parser helper): the variants; see `verdict`.
    Invalid(&'static str),
}

impl ParseError {
    /// The answer RFC 3261 asks for, for a message whose start line says it is a request
    /// (`is_request == true`) or a response.
    pub fn verdict(&self, is_request: bool) -> Verdict {
        let _ = is_request;
        todo!()
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ParseError {}
