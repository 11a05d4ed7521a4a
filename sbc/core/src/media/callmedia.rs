//! The B2BUA's media anchor: the per-call state that ties a call's session descriptions to its relay
//! ports on the worker's relay, which every call takes as `&mut dyn MediaControl`.
//!
//! The B2BUA calls `MediaAnchor::anchor` for every message it relays from one leg to the other.
//! A message without an SDP body passes unchanged. An SDP body is planned ([`anchor::plan`]), the
//! sender's addresses are given to the relay (which opens the latch window), and the body is
//! rewritten with the SBC's media address and the ports of the leg it is sent on. The first SDP of a
//! call allocates its media session (one RTP/RTCP pair per leg per `m=` line, all or nothing), and
//! `MediaAnchor::release` frees it on every way a call ends.
//!
//! Offer or answer does not matter here: each SDP describes where its sender wants media, and is
//! rewritten for the other leg the same way. Early media (183 with SDP), late offers (SDP in the 2xx
//! and the ACK), re-INVITE and UPDATE all go through the same call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sbc_sip::sdp::Sdp;
use sbc_sip::{HeaderName, Message};

use super::anchor::{self, AnchorError, OriginState, PlanOptions, RewriteOptions};
use super::{IdleEvent, MediaControl, MediaSide, SessionHandle};

/// Settings of the media anchor of one worker.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// The address written in `c=` toward both legs (the relay sockets are bound on it).
    pub address: IpAddr,
    /// A call whose media stops on every leg for this long is ended; `None`: never.
    pub no_media_timeout: Option<Duration>,
}

/// Per-call media state, kept in the B2BUA's call.
#[derive(Clone, Debug)]
pub(crate) struct CallMedia {
    session: Option<SessionHandle>,
    /// The codec each party asked for in its last description (leg A, leg B), for the call record.
    codecs: [Option<Box<str>>; 2],
    /// The SBC's `o=` line toward leg A and toward leg B.
    origin_a: OriginState,
    origin_b: OriginState,
}

impl CallMedia {
    /// The codec the party on each leg asked for in its last description (A, B): the preferred
    /// format of its first relayed RTP stream.
    pub(crate) fn take_codecs(&mut self) -> [Option<Box<str>>; 2] {
        std::mem::take(&mut self.codecs)
    }

    fn note_codec(&mut self, side: MediaSide, codec: &str) {
        let [a, b] = &mut self.codecs;
        let slot = match side {
            MediaSide::A => a,
            MediaSide::B => b,
        };
        if slot.as_deref() != Some(codec) {
            *slot = Some(codec.into());
        }
    }

    /// State for a new call; `seed` makes the origin session ids differ between calls.
    pub(crate) fn new(seed: u64) -> Self {
        // Any number that does not reveal the call count; the two legs differ.
        let id = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1;
        Self {
            session: None,
            codecs: [None, None],
            origin_a: OriginState::new(id, 1),
            origin_b: OriginState::new(id ^ 0x5555, 1),
        }
    }
}

/// Counters of the anchor (the relay has its own packet counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnchorStats {
    /// SDP bodies rewritten.
    pub rewritten: u64,
    /// SDP offers refused (the request got 400/488/503).
    pub refused: u64,
    /// SDP bodies in responses that could not be anchored (the response went on without a body).
    pub dropped_bodies: u64,
    /// Calls ended because their media stopped.
    pub no_media_ends: u64,
    /// One-way media episodes seen.
    pub one_way: u64,
}

/// Why an SDP could not be anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnchorFault {
    /// The description is refused: answer an offer with this status.
    Refused(u16),
    /// No relay ports left: 503.
    NoPorts,
}

impl AnchorFault {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::Refused(code) => code,
            Self::NoPorts => 503,
        }
    }
}

impl From<AnchorError> for AnchorFault {
    fn from(e: AnchorError) -> Self {
        Self::Refused(e.status())
    }
}

/// The B2BUA's side of media anchoring: the calls of the relay's sessions, the idle scan and the
/// counters. The relay itself is the worker's, passed to each call.
#[derive(Debug)]
pub struct MediaAnchor {
    settings: MediaSettings,
    /// The call of each live session.
    calls: HashMap<SessionHandle, u64>,
    next_scan: Option<Instant>,
    stats: AnchorStats,
    /// The idle scan's events, kept to reuse the buffer.
    idle: Vec<IdleEvent>,
    /// Sessions of calls that ended where the relay was not at hand, released by
    /// `MediaAnchor::flush` at the end of the B2BUA's current entry point.
    ended: Vec<SessionHandle>,
}

/// How often sessions are scanned for missing media.
const IDLE_SCAN: Duration = Duration::from_secs(1);

impl MediaAnchor {
    /// An anchor with no call yet.
    pub fn new(settings: MediaSettings) -> Self {
        Self {
            settings,
            calls: HashMap::new(),
            next_scan: None,
            stats: AnchorStats::default(),
            idle: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> AnchorStats {
        self.stats
    }

    /// Live media sessions.
    pub fn sessions(&self) -> usize {
        self.calls.len()
    }

    /// Rewrite the body of `msg`, sent by leg `from` of call `call`, for the other leg, with relay
    /// ports of `relay`. `Ok(None)`: no SDP, send the body as received.
    pub(crate) fn anchor(
        &mut self,
        relay: &mut dyn MediaControl,
        now: Instant,
        call: u64,
        media: &mut CallMedia,
        msg: &Message,
        from: MediaSide,
    ) -> Result<Option<Vec<u8>>, AnchorFault> {
        let body = msg.body();
        if body.is_empty() || !is_sdp(msg) {
            return Ok(None);
        }
        let mut sdp = Sdp::parse(body).map_err(AnchorError::from)?;
        let plan = anchor::plan(&sdp, &PlanOptions::default())?;
        if let Some(codec) = anchor::preferred_codec(&sdp, &plan) {
            media.note_codec(from, codec);
        }
        let to = from.other();
        // A re-offer that adds m= lines needs a bigger session: allocate it and let the old one go
        // (the new offer moves both sides to the new ports; media resumes as each side reads it).
        let grown = media
            .session
            .is_some_and(|h| relay.stream_count(h).is_ok_and(|n| n < plan.stream_count()));
        if grown {
            self.release(relay, media, now);
        }
        let handle = match media.session {
            Some(h) => Some(h),
            None if plan.stream_count() == 0 => None,
            None => {
                let h = relay
                    .allocate(now, plan.stream_count())
                    .map_err(|_| AnchorFault::NoPorts)?;
                media.session = Some(h);
                self.calls.insert(h, call);
                if self.next_scan.is_none() {
                    self.next_scan = Some(now + IDLE_SCAN);
                }
                Some(h)
            }
        };
        let ports = match handle {
            Some(h) => {
                relay
                    .stream_count(h)
                    .map_err(|_| AnchorFault::Refused(500))?;
                let ports = plan.local_ports(relay, h, to)?;
                plan.set_remotes(relay, h, from, now)
                    .map_err(|_| AnchorFault::Refused(500))?;
                ports
            }
            None => Vec::new(),
        };
        let origin = match to {
            MediaSide::A => &mut media.origin_a,
            MediaSide::B => &mut media.origin_b,
        };
        anchor::rewrite(
            &mut sdp,
            self.settings.address,
            &ports,
            origin,
            &RewriteOptions::default(),
        )?;
        self.stats.rewritten += 1;
        let mut out = Vec::with_capacity(sdp.encoded_len());
        sdp.write_to(&mut out);
        // Nothing that names the party or its software crosses (topology hiding).
        Ok(Some(crate::signalling::topology::scrub_sdp(&out)))
    }

    /// Count an offer refused by `MediaAnchor::anchor`.
    pub(crate) fn count_refused(&mut self) {
        self.stats.refused += 1;
    }

    /// Count a response body that could not be anchored.
    pub(crate) fn count_dropped_body(&mut self) {
        self.stats.dropped_bodies += 1;
    }

    /// Free the call's relay ports (every way a call ends comes here).
    pub(crate) fn release(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        now: Instant,
    ) {
        if let Some(h) = media.session.take() {
            self.calls.remove(&h);
            let _ = relay.release(h, now);
        }
    }

    /// Free the call's relay ports at the next `MediaAnchor::flush` (for the ways a call ends
    /// deep in the B2BUA, which flushes before returning to the worker).
    /// Returns the session set aside, if the call had one.
    pub(crate) fn release_later(&mut self, media: &mut CallMedia) -> Option<SessionHandle> {
        let h = media.session.take()?;
        self.calls.remove(&h);
        self.ended.push(h);
        Some(h)
    }

    /// Release the sessions `MediaAnchor::release_later` set aside, each after `last_look` has
    /// seen it on the relay (the call record reads its final stream statistics there).
    pub(crate) fn flush(
        &mut self,
        relay: &mut dyn MediaControl,
        now: Instant,
        mut last_look: impl FnMut(SessionHandle, &dyn MediaControl),
    ) {
        for h in self.ended.drain(..) {
            last_look(h, relay);
            let _ = relay.release(h, now);
        }
    }

    /// When the next idle scan is due (`None`: the no-media timeout is off, or no call holds media,
    /// so an idle worker does not wake every second).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.calls.is_empty() {
            return None;
        }
        self.settings.no_media_timeout.and(self.next_scan)
    }

    /// Scan `relay` for calls without media, at most once a second. Returns the calls to end.
    pub(crate) fn poll_idle(
        &mut self,
        relay: &mut dyn MediaControl,
        now: Instant,
        out: &mut Vec<u64>,
    ) {
        let Some(timeout) = self.settings.no_media_timeout else {
            return;
        };
        match self.next_scan {
            Some(at) if at > now => return,
            _ => self.next_scan = Some(now + IDLE_SCAN),
        }
        self.idle.clear();
        relay.poll_idle(now, timeout, &mut self.idle);
        for event in self.idle.drain(..) {
            match event {
                IdleEvent::NoMedia { session, .. } => {
                    if let Some(&call) = self.calls.get(&session) {
                        self.stats.no_media_ends += 1;
                        out.push(call);
                    }
                }
                IdleEvent::OneWay { .. } => self.stats.one_way += 1,
            }
        }
    }
}

/// Whether the body is a session description (`Content-Type: application/sdp`, parameters allowed).
fn is_sdp(msg: &Message) -> bool {
    msg.header(HeaderName::ContentType).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::FakeMedia;
    use bytes::Bytes;
    use std::net::Ipv4Addr;

    const SBC: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));

    #[allow(clippy::disallowed_methods)] // the one origin of test time
    fn t0() -> Instant {
        Instant::now()
    }

    /// An anchor, and a relay of 20 pairs.
    fn anchor() -> (MediaAnchor, FakeMedia) {
        let anchor = MediaAnchor::new(MediaSettings {
            address: SBC,
            no_media_timeout: Some(Duration::from_secs(5)),
        });
        (anchor, FakeMedia::new(30000, 30039))
    }

    fn invite(sdp: &str) -> Message {
        let text = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n\
             CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn sdp(ip: &str, media: &[(&str, u16)]) -> String {
        let mut s = format!("v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n");
        for (kind, port) in media {
            s.push_str(&format!("m={kind} {port} RTP/AVP 0\r\n"));
        }
        s
    }

    fn ports_of(body: &[u8]) -> Vec<u16> {
        let text = std::str::from_utf8(body).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("m="))
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn offer_and_answer_get_each_legs_ports_and_the_sbc_address() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(7);
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        let out = a
            .anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("c=IN IP4 203.0.113.1"), "{text}");
        assert!(!text.contains("192.0.2.10"), "{text}");
        let to_b = ports_of(&out);
        let answer = invite(&sdp("198.51.100.7", &[("audio", 5000)]));
        let out = a
            .anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B)
            .unwrap()
            .unwrap();
        let to_a = ports_of(&out);
        assert_ne!(to_a, to_b, "each leg has its own pair");
        assert_eq!(a.sessions(), 1);
        assert_eq!(r.pairs_in_use(), 2);
        a.release(&mut r, &mut m, now);
        assert_eq!(a.sessions(), 0);
        assert_eq!(r.pairs_in_use(), 0);
    }

    #[test]
    fn a_reoffer_adding_video_moves_the_call_to_a_bigger_session() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(7);
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        a.anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A)
            .unwrap();
        assert_eq!(r.pairs_in_use(), 2);
        let reoffer = invite(&sdp("192.0.2.10", &[("audio", 4000), ("video", 4002)]));
        let out = a
            .anchor(&mut r, now, 1, &mut m, &reoffer, MediaSide::A)
            .unwrap()
            .unwrap();
        let ports = ports_of(&out);
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
        assert_eq!(a.sessions(), 1, "the old session is gone");
        assert_eq!(r.pairs_in_use(), 4);
        a.release(&mut r, &mut m, now);
        assert_eq!(r.pairs_in_use(), 0);
    }

    #[test]
    fn bodies_that_are_not_sdp_pass_and_bad_offers_are_refused() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(1);
        let text =
            "MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                    From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n\
                    CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
        let msg = Message::parse(Bytes::from(text)).unwrap();
        assert_eq!(
            a.anchor(&mut r, now, 1, &mut m, &msg, MediaSide::A),
            Ok(None)
        );
        let multicast = invite(&sdp("224.0.0.9", &[("audio", 4000)]));
        assert_eq!(
            a.anchor(&mut r, now, 1, &mut m, &multicast, MediaSide::A),
            Err(AnchorFault::Refused(488))
        );
        assert_eq!(a.sessions(), 0);
    }

    #[test]
    fn running_out_of_ports_is_a_503() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        // 20 pairs: ten calls of two pairs each.
        let mut calls: Vec<CallMedia> = (0..10).map(CallMedia::new).collect();
        for (i, m) in calls.iter_mut().enumerate() {
            assert!(a
                .anchor(&mut r, now, i as u64, m, &offer, MediaSide::A)
                .is_ok());
        }
        let mut extra = CallMedia::new(99);
        let fault = a
            .anchor(&mut r, now, 99, &mut extra, &offer, MediaSide::A)
            .unwrap_err();
        assert_eq!(fault.status(), 503);
    }

    #[test]
    fn a_release_set_aside_frees_the_ports_at_the_flush() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(3);
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        a.anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A)
            .unwrap();
        let h = a.release_later(&mut m);
        assert!(h.is_some());
        assert_eq!(a.sessions(), 0);
        assert_eq!(r.pairs_in_use(), 2, "held until the flush");
        let mut seen = Vec::new();
        a.flush(&mut r, now, |s, relay| {
            seen.push((s, relay.sessions()));
        });
        assert_eq!(
            seen,
            vec![(h.unwrap(), 1)],
            "looked at before it is released"
        );
        assert_eq!(r.pairs_in_use(), 0);
        assert_eq!(r.ports_free(), 40);
    }
}
