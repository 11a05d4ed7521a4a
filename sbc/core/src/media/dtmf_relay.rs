//! SIP INFO `application/dtmf-relay` bodies (the de-facto format of Cisco and most PBXs):
//!
//! ```text
//! Signal=5
//! Duration=160
//! ```
//!
//! `Signal` is one of `0`-`9`, `*`, `#`, `A`-`D` (case-insensitive), `Duration` in milliseconds.
//! [`DtmfRelay`] reads and writes them and maps them to RFC 4733 events (event code, duration in
//! 8 kHz timestamp units). `application/dtmf` bodies (the bare digit) are read too.
//!
//! # Interworking
//! Each leg of a call has a [`DtmfMode`] (the side's `dtmf`, or its trunk's or target group's):
//! when the leg that sends an INFO is `info` and the other is `rfc4733`, the B2BUA answers the INFO
//! itself (200) and has the relay play the digit as RFC 4733 events toward the other leg; when
//! the `rfc4733` leg sends telephone-events and the other is `info`, the relay takes them off and
//! reports them, and the B2BUA sends one INFO per digit on the other leg, one at a time, in
//! order. `auto` is `rfc4733` on a leg that negotiated telephone-event and `info` on one that
//! did not; `pass` (the default) and `inband` convert nothing here (the relay's codec stage plays
//! and detects tones between a leg with telephone-event and one without).

use std::fmt::Write as _;

use sbc_sip::sdp::{RtpMap, Sdp};

/// The media type of the body.
pub const CONTENT_TYPE: &str = "application/dtmf-relay";

/// The other DTMF body type some phones send: the digit alone.
pub const CONTENT_TYPE_DTMF: &str = "application/dtmf";

/// How a leg of a call carries DTMF. See the [module doc](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DtmfMode {
    /// As the parties negotiated: INFO relayed, telephone-events relayed (default).
    #[default]
    Pass,
    /// RFC 4733 telephone-events in the RTP stream.
    Rfc4733,
    /// SIP INFO `application/dtmf-relay`.
    Info,
    /// In-band tones in the audio (converted by the relay's codec stage, not by the B2BUA).
    Inband,
    /// `rfc4733` when the leg negotiated telephone-event, else `info`.
    Auto,
}

impl DtmfMode {
    /// The mode of a configuration name (`pass`, `rfc4733`, `info`, `inband`, `auto`;
    /// case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ("pass", Self::Pass),
            ("rfc4733", Self::Rfc4733),
            ("info", Self::Info),
            ("inband", Self::Inband),
            ("auto", Self::Auto),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, m)| m)
    }

    /// What the leg does, given whether it negotiated telephone-event: `Auto` resolved.
    pub fn effective(self, telephone_event: bool) -> Self {
        match self {
            Self::Auto if telephone_event => Self::Rfc4733,
            Self::Auto => Self::Info,
            m => m,
        }
    }
}

/// The DTMF mode of each side (the default of the legs toward it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtmfPolicy {
    /// Legs toward the outside.
    pub outside: DtmfMode,
    /// Legs toward the inside.
    pub inside: DtmfMode,
}

impl DtmfPolicy {
    /// The mode of a side.
    pub fn of(&self, outside: bool) -> DtmfMode {
        if outside {
            self.outside
        } else {
            self.inside
        }
    }
}

/// The payload types of stream `m`.
fn payload_types(sdp: &Sdp<'_>, m: usize) -> Vec<u8> {
    sdp.media(m)
        .map(|l| l.formats().filter_map(|f| f.parse::<u8>().ok()).collect())
        .unwrap_or_default()
}

/// Add `telephone-event/8000` (events 0-15) to stream `m` at `pt`, or (`None`) at 101 or the first
/// free dynamic payload type; `None` when none is free or the line cannot take it. The payload
/// type added.
pub fn add_telephone_event(sdp: &mut Sdp<'_>, m: usize, pt: Option<u8>) -> Option<u8> {
    let pts = payload_types(sdp, m);
    let pt = match pt {
        Some(p) if !pts.contains(&p) => p,
        Some(_) => return None,
        None => std::iter::once(101)
            .chain(96..=127)
            .find(|p| !pts.contains(p))?,
    };
    let mut formats: Vec<String> = pts.iter().map(u8::to_string).collect();
    formats.push(pt.to_string());
    let refs: Vec<&str> = formats.iter().map(String::as_str).collect();
    sdp.set_media_formats(m, &refs).ok()?;
    let map = RtpMap {
        payload_type: pt,
        encoding: "telephone-event",
        clock_rate: 8000,
        params: None,
    };
    sdp.set_rtpmap(m, &map).ok()?;
    sdp.set_fmtp(m, &pt.to_string(), "0-15").ok()?;
    Some(pt)
}

/// Remove `telephone-event` from stream `m` (with its `rtpmap` and `fmtp`).
pub fn strip_telephone_event(sdp: &mut Sdp<'_>, m: usize) {
    let keep: Vec<u8> = payload_types(sdp, m)
        .into_iter()
        .filter(|&pt| {
            !sdp.rtpmap(m, pt)
                .is_some_and(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
        })
        .collect();
    if !keep.is_empty() {
        let _ = sdp.retain_payload_types(m, &keep);
    }
}

/// What an INFO body is for DTMF interworking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoBody {
    /// Not a DTMF INFO (another package, no body): relayed as before.
    Other,
    /// A DTMF body that does not parse: 400.
    Malformed,
    /// It names the DTMF package (`Info-Package: dtmf`) but its body type is not one the SBC
    /// reads: 415.
    Unsupported,
    /// One digit.
    Digit(DtmfRelay),
}

/// Classify an INFO by its `Content-Type` (parameters ignored), its `Info-Package` (RFC 6086) and
/// its body.
pub fn classify_info(content_type: Option<&str>, package: Option<&str>, body: &[u8]) -> InfoBody {
    let ct = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    let dtmf_package = package.is_some_and(|p| {
        p.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("dtmf"))
    });
    if ct.eq_ignore_ascii_case(CONTENT_TYPE) {
        return DtmfRelay::parse(body).map_or(InfoBody::Malformed, InfoBody::Digit);
    }
    if ct.eq_ignore_ascii_case(CONTENT_TYPE_DTMF) {
        return DtmfRelay::parse_digit(body).map_or(InfoBody::Malformed, InfoBody::Digit);
    }
    if dtmf_package {
        return InfoBody::Unsupported;
    }
    InfoBody::Other
}

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

    /// An `application/dtmf` body: the digit alone (surrounding white space ignored), or a
    /// `Signal=` body as some phones send under that type.
    pub fn parse_digit(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?.trim();
        if text.contains('=') {
            return Self::parse(body);
        }
        let [c] = text.as_bytes() else {
            return None;
        };
        let c = c.to_ascii_uppercase();
        let event = EVENTS.iter().position(|&e| e == c)?;
        Some(Self {
            event: u8::try_from(event).ok()?,
            duration_ms: DEFAULT_DURATION_MS,
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
    fn info_bodies_classified() {
        let d = |event, duration_ms| InfoBody::Digit(DtmfRelay { event, duration_ms });
        assert_eq!(
            classify_info(
                Some("application/dtmf-relay"),
                None,
                b"Signal=1\r\nDuration=100\r\n"
            ),
            d(1, 100)
        );
        assert_eq!(
            classify_info(Some("Application/DTMF-Relay ; x=y"), None, b"Signal=#"),
            d(11, 250)
        );
        assert_eq!(
            classify_info(Some("application/dtmf"), Some("dtmf"), b"7\r\n"),
            d(7, 250)
        );
        assert_eq!(
            classify_info(Some("application/dtmf-relay"), None, b"Signal=Z"),
            InfoBody::Malformed
        );
        assert_eq!(
            classify_info(Some("application/dtmf"), None, b"12"),
            InfoBody::Malformed
        );
        assert_eq!(
            classify_info(Some("text/plain"), Some("dtmf;x"), b"1"),
            InfoBody::Unsupported
        );
        assert_eq!(
            classify_info(Some("application/media_control+xml"), None, b"<x/>"),
            InfoBody::Other
        );
        assert_eq!(classify_info(None, None, b""), InfoBody::Other);
    }

    #[test]
    fn telephone_event_added_and_stripped() {
        let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                    a=rtpmap:101 G726-32/8000\r\n";
        let mut sdp = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(add_telephone_event(&mut sdp, 0, None), Some(96));
        assert_eq!(add_telephone_event(&mut sdp, 0, Some(0)), None);
        let out = String::from_utf8(sdp.to_vec()).unwrap();
        assert!(out.contains("m=audio 4000 RTP/AVP 0 101 96\r\n"), "{out}");
        assert!(
            out.contains("a=rtpmap:96 telephone-event/8000\r\n"),
            "{out}"
        );
        assert!(out.contains("a=fmtp:96 0-15\r\n"), "{out}");
        let mut sdp = Sdp::parse(out.as_bytes()).unwrap();
        strip_telephone_event(&mut sdp, 0);
        let out = String::from_utf8(sdp.to_vec()).unwrap();
        assert!(out.contains("m=audio 4000 RTP/AVP 0 101\r\n"), "{out}");
        assert!(
            !out.contains("telephone-event") && !out.contains("fmtp:96"),
            "{out}"
        );
    }

    #[test]
    fn modes_by_name_and_auto() {
        assert_eq!(DtmfMode::from_name("RFC4733"), Some(DtmfMode::Rfc4733));
        assert_eq!(DtmfMode::from_name("info"), Some(DtmfMode::Info));
        assert_eq!(DtmfMode::from_name("sipinfo"), None);
        assert_eq!(DtmfMode::Auto.effective(true), DtmfMode::Rfc4733);
        assert_eq!(DtmfMode::Auto.effective(false), DtmfMode::Info);
        assert_eq!(DtmfMode::Inband.effective(true), DtmfMode::Inband);
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
