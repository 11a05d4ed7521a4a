//! SIP INFO `application/dtmf-relay` bodies (the de-facto format of Cisco and most PBXs):
//!
//! ```text
//! Signal=5
//! Duration=160
//! ```
//!
//! `Signal` is one of `0`-`9`, `*`, `#`, `A`-`D` (case-insensitive), `Duration` in milliseconds.
//! [`DtmfRelay`] reads and writes them and maps them to RFC 4733 events (event code, duration in
//! 8 kHz timestamp units), the building blocks of the INFO <-> RFC 4733 interworking; the
//! B2BUA does not yet convert between them (see `docs/codecs.md`).

use std::fmt::Write as _;

/// The media type of the body.
pub const CONTENT_TYPE: &str = "application/dtmf-relay";

/// The DTMF characters of RFC 4733 events 0-15.
const EVENTS: &[u8; 16] = b"0123456789*#ABCD";

/// Longest duration accepted (ms): longer is clamped (RFC 4733 events last at most 8 s per
/// segment).
pub const MAX_DURATION_MS: u32 = 8000;

/// Default duration when the body names none (ms).
pub const DEFAULT_DURATION_MS: u32 = 250;

/// One digit of an INFO body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfRelay {
    /// The RFC 4733 event code (0-15).
    pub event: u8,
    /// Duration in milliseconds.
    pub duration_ms: u32,
}

impl DtmfRelay {
    /// Parse a body; `None` without a valid `Signal`. Unknown lines are ignored; a missing or
    /// unreadable `Duration` gives [`DEFAULT_DURATION_MS`].
    pub fn parse(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        let mut event = None;
        let mut duration = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("signal") {
                let [c] = v.as_bytes() else {
                    return None;
                };
                let c = c.to_ascii_uppercase();
                event = EVENTS.iter().position(|&e| e == c);
            } else if k.eq_ignore_ascii_case("duration") {
                duration = v.parse::<u32>().ok();
            }
        }
        Some(Self {
            event: u8::try_from(event?).ok()?,
            duration_ms: duration.unwrap_or(DEFAULT_DURATION_MS).min(MAX_DURATION_MS),
        })
    }

    /// The digit of an RFC 4733 event of `samples` 8 kHz timestamp units; `None` for an event
    /// that is not DTMF.
    pub fn from_event(event: u8, samples: u32) -> Option<Self> {
        (usize::from(event) < EVENTS.len()).then(|| Self {
            event,
            duration_ms: (samples / 8).min(MAX_DURATION_MS),
        })
    }

    /// The duration in 8 kHz timestamp units (for the RFC 4733 event), at most 65535.
    pub fn samples(self) -> u16 {
        u16::try_from(self.duration_ms.saturating_mul(8)).unwrap_or(u16::MAX)
    }

    /// The DTMF character.
    pub fn char(self) -> char {
        EVENTS
            .get(usize::from(self.event))
            .map_or('?', |&c| char::from(c))
    }

    /// The body, `Signal=<c>\r\nDuration=<ms>\r\n`.
    pub fn to_body(self) -> String {
        let mut s = String::with_capacity(32);
        let _ = write!(
            s,
            "Signal={}\r\nDuration={}\r\n",
            self.char(),
            self.duration_ms
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_pbxs_send_them() {
        let d = DtmfRelay::parse(b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(
            d,
            DtmfRelay {
                event: 5,
                duration_ms: 160
            }
        );
        assert_eq!(d.samples(), 1280);
        assert_eq!(
            DtmfRelay::parse(b"signal= #\nduration=100").unwrap().event,
            11
        );
        assert_eq!(DtmfRelay::parse(b"Signal=*").unwrap().duration_ms, 250);
        assert_eq!(
            DtmfRelay::parse(b"Signal=d\r\nDuration=99999")
                .unwrap()
                .duration_ms,
            8000
        );
        assert_eq!(DtmfRelay::parse(b"Signal=d").unwrap().event, 15);
        for bad in [
            &b"Duration=100"[..],
            b"Signal=12",
            b"Signal=X",
            b"\xff\xfe",
            b"",
        ] {
            assert!(DtmfRelay::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn events_and_bodies_round_trip() {
        for event in 0..16u8 {
            let d = DtmfRelay::from_event(event, 800).unwrap();
            assert_eq!(d.duration_ms, 100);
            assert_eq!(DtmfRelay::parse(d.to_body().as_bytes()), Some(d));
        }
        assert_eq!(DtmfRelay::from_event(16, 800), None);
        assert_eq!(
            DtmfRelay::from_event(11, 1600).unwrap().to_body(),
            "Signal=#\r\nDuration=200\r\n"
        );
    }
}
