//! The one error type for SDP: a fault in a received session description, or a bad argument to an edit.

use std::fmt;

/// A fault in a session description, or an edit that would produce an invalid one.
///
/// Parse faults carry the 1-based line number in the received body (blank lines counted). The type is
/// `Copy` and carries no heap data, so the error path stays free of allocation under a flood;
/// [`SdpError::reason`] gives a stable label for metrics and for a 488 reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpError {
    /// The body holds no SDP line at all.
    Empty,
    /// The body is larger than the SBC accepts (4 GiB offsets do not fit the span index).
    TooLarge,
    /// More lines than [`crate::sdp::MAX_LINES`].
    TooManyLines,
    /// A line is not `<type>=<value>` with an ASCII letter as type.
    BadLine {
        /// 1-based line number.
        line: u32,
    },
    /// The first line is not a `v=` line.
    MissingVersion,
    /// The `v=` line is not `v=0`.
    BadVersion {
        /// 1-based line number.
        line: u32,
    },
    /// No `o=` line in the session part.
    MissingOrigin,
    /// The `o=` line does not have six fields, or its session version is not a `u64`.
    BadOrigin {
        /// 1-based line number.
        line: u32,
    },
    /// A `v=` or `o=` line appears a second time, or `o=` appears inside a media section.
    UnexpectedLine {
        /// 1-based line number.
        line: u32,
    },
    /// A `c=` line is malformed (field count, address type vs address, TTL or count).
    BadConnection {
        /// 1-based line number.
        line: u32,
    },
    /// An `m=` line is malformed (field count, missing proto or formats).
    BadMedia {
        /// 1-based line number.
        line: u32,
    },
    /// The port (or port count) of an `m=` line is not a number in range.
    BadPort {
        /// 1-based line number.
        line: u32,
    },
    /// An edit named a media section that does not exist.
    NoSuchMedia {
        /// The 0-based media index asked for.
        index: usize,
    },
    /// An edit was given a value that cannot be written into SDP (empty token, whitespace inside a token,
    /// a line break inside a value, ...). The text names the argument.
    BadValue {
        /// Which argument was refused.
        what: &'static str,
    },
    /// A format filter would leave an `m=` line without any format; nothing was changed.
    NoFormatsLeft {
        /// The 0-based media index.
        index: usize,
    },
}

impl SdpError {
    /// A short, stable label naming the fault (for a metric label or a reason phrase).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty SDP",
            Self::TooLarge => "SDP too large",
            Self::TooManyLines => "too many SDP lines",
            Self::BadLine { .. } => "malformed SDP line",
            Self::MissingVersion => "missing v= line",
            Self::BadVersion { .. } => "bad v= line",
            Self::MissingOrigin => "missing o= line",
            Self::BadOrigin { .. } => "bad o= line",
            Self::UnexpectedLine { .. } => "unexpected v= or o= line",
            Self::BadConnection { .. } => "bad c= line",
            Self::BadMedia { .. } => "bad m= line",
            Self::BadPort { .. } => "bad m= port",
            Self::NoSuchMedia { .. } => "no such media section",
            Self::BadValue { .. } => "bad value for SDP edit",
            Self::NoFormatsLeft { .. } => "no format left on m= line",
        }
    }

    /// The 1-based line number of a parse fault, if the fault has one.
    pub fn line(&self) -> Option<u32> {
        match *self {
            Self::BadLine { line }
            | Self::BadVersion { line }
            | Self::BadOrigin { line }
            | Self::UnexpectedLine { line }
            | Self::BadConnection { line }
            | Self::BadMedia { line }
            | Self::BadPort { line } => Some(line),
            _ => None,
        }
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSuchMedia { index } | Self::NoFormatsLeft { index } => {
                write!(f, "{} (media {index})", self.reason())
            }
            Self::BadValue { what } => write!(f, "{}: {what}", self.reason()),
            _ => match self.line() {
                Some(line) => write!(f, "{} (line {line})", self.reason()),
                None => f.write_str(self.reason()),
            },
        }
    }
}

impl std::error::Error for SdpError {}
