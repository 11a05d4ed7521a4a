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
//!
//! Guards (`docs/decisions.md`): until the call is answered its media has at most
//! [`EarlyLimits::streams`] streams and the unanswered calls of one outside source hold at most
//! [`EarlyLimits::pairs_per_source`] pairs; a call never answered frees its ports without quarantine.
//! An offer that adds `m=` lines takes a bigger session beside the call's, which the B2BUA commits
//! on the 2xx or discards on a failure. The sender's signalling IP goes to the relay with its SDP
//! address (it ranks above strangers in the learning window). A call on hold is not ended for
//! silence.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sbc_sip::sdp::Sdp;
use sbc_sip::{HeaderName, Message, Method};

use super::anchor::{self, AnchorError, OriginState, PlanOptions, RewriteOptions};
use super::codecs::{self, CodecPolicies, CodecPolicy, OfferState};
use super::dtmf_relay::{DtmfMode, DtmfPolicy};
use super::sdes::{Refusal, SrtpMode};
use super::srtp::{CallSrtp, SrtpPolicy};
use super::{IdleEvent, MediaControl, MediaSide, SessionHandle};

/// Settings of the media anchor of one worker.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// The address written in `c=` toward both legs (the relay sockets are bound on it).
    pub address: IpAddr,
    /// A call whose media stops on every leg for this long is ended; `None`: never. A call on
    /// hold (see [`super::anchor::MediaPlan::holds`]) is not ended for that.
    pub no_media_timeout: Option<Duration>,
}

/// Bounds on the relay ports of calls that are not answered yet (early dialogs): what an
/// unauthenticated caller can take before the PBX has challenged or answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyLimits {
    /// Most streams (`m=` lines) relayed before the answer; later lines are written with port 0
    /// (rejected). Default 4 (audio, video, a second video, T.38 or BFCP).
    pub streams: usize,
    /// Most relay port pairs the unanswered calls from one source address on the outside may hold
    /// on one worker; a new call beyond it gets 503. 0: no limit. Default 256.
    pub pairs_per_source: usize,
}

impl Default for EarlyLimits {
    fn default() -> Self {
        Self {
            streams: 4,
            pairs_per_source: 256,
        }
    }
}

/// The media settings of the legs toward one trunk or target group, over the side's own
/// (`[srtp]`, `[codecs]`, `dtmf`): `None` keeps the side's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegOverrides {
    /// SRTP mode of the leg.
    pub srtp: Option<SrtpMode>,
    /// Codec policy of the descriptions sent to the leg.
    pub codecs: Option<CodecPolicy>,
    /// DTMF mode of the leg.
    pub dtmf: Option<DtmfMode>,
}

/// What a call knows of one of its legs beyond the SDP.
#[derive(Clone, Debug, Default)]
struct LegMedia {
    /// The leg is toward the outside (known from the first description either way).
    outside: Option<bool>,
    /// The leg's trunk or target group settings.
    overrides: Option<Arc<LegOverrides>>,
    /// The stream and telephone-event payload type of the leg's last description (first RTP
    /// stream that has one).
    telephone_event: Option<(usize, u8)>,
    /// The first relayed RTP stream of the leg's last description.
    audio_stream: Option<usize>,
    /// The relay reports the in-band digits of this leg's audio: (session, stream).
    hearing: Option<(SessionHandle, usize)>,
    /// The relay reports this leg's telephone-events: (session, stream, payload type).
    reporting: Option<(SessionHandle, usize, u8)>,
}

/// How the digits of a SIP INFO reach the other leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InfoDigits {
    /// As RFC 4733 events of this payload type.
    Events(u8),
    /// As in-band tones over its G.711 audio.
    Tones,
}

/// Per-call media state, kept in the B2BUA's call.
#[derive(Clone, Debug)]
pub(crate) struct CallMedia {
    session: Option<SessionHandle>,
    /// A bigger session for an offer that added `m=` lines, until its answer: taken over on a
    /// 2xx, released on a failure (the call keeps its media on `session` meanwhile).
    pending: Option<SessionHandle>,
    /// The call was answered (2xx to its INVITE): its ports are quarantined when released.
    answered: bool,
    /// The outside source and the pairs its unanswered call holds (per-source bound).
    early: Option<(IpAddr, usize)>,
    /// The last description from leg A and from leg B holds the call.
    hold: [bool; 2],
    /// The codec each party asked for in its last description (leg A, leg B), for the call record.
    codecs: [Option<Box<str>>; 2],
    /// The codec state of the last offer, for its answer (codec policy).
    offer: Option<OfferState>,
    /// Streams (bit k: stream k) counted as transcoded already.
    transcoded: u64,
    /// SDES-SRTP keys and offer state (SRTP policy other than pass).
    srtp: Option<Box<CallSrtp>>,
    /// The SBC's `o=` line toward leg A and toward leg B.
    origin_a: OriginState,
    origin_b: OriginState,
    /// Leg A, leg B.
    legs: [LegMedia; 2],
    /// The SBC added `telephone-event` to the last offer sent to this leg (its stream and payload
    /// type): the leg's answer goes back without it.
    te_added: Option<(MediaSide, usize, u8)>,
}

impl CallMedia {
    /// The call's relay session, once it has one.
    pub(crate) fn session(&self) -> Option<SessionHandle> {
        self.session
    }

    /// The codec the party on each leg asked for in its last description (A, B): the preferred
    /// format of its first relayed RTP stream.
    pub(crate) fn take_codecs(&mut self) -> [Option<Box<str>>; 2] {
        std::mem::take(&mut self.codecs)
    }

    /// The leg's audio is G.711 (PCMU or PCMA), as its last description put it first.
    fn g711(&self, side: MediaSide) -> bool {
        let [a, b] = &self.codecs;
        let codec = match side {
            MediaSide::A => a,
            MediaSide::B => b,
        };
        codec
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("PCMU") || c.eq_ignore_ascii_case("PCMA"))
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
            pending: None,
            answered: false,
            early: None,
            hold: [false, false],
            codecs: [None, None],
            offer: None,
            transcoded: 0,
            srtp: None,
            origin_a: OriginState::new(id, 1),
            origin_b: OriginState::new(id ^ 0x5555, 1),
            legs: [LegMedia::default(), LegMedia::default()],
            te_added: None,
        }
    }

    /// The trunk or target group settings of leg A (a call from a trunk) and leg B (toward the
    /// target), and the sides of the legs.
    pub(crate) fn set_legs(
        &mut self,
        a_outside: bool,
        a: Option<Arc<LegOverrides>>,
        b: Option<Arc<LegOverrides>>,
    ) {
        let [la, lb] = &mut self.legs;
        la.outside = Some(a_outside);
        la.overrides = a;
        lb.outside = Some(!a_outside);
        lb.overrides = b;
    }

    fn leg(&self, side: MediaSide) -> &LegMedia {
        let [a, b] = &self.legs;
        match side {
            MediaSide::A => a,
            MediaSide::B => b,
        }
    }

    fn leg_mut(&mut self, side: MediaSide) -> &mut LegMedia {
        let [a, b] = &mut self.legs;
        match side {
            MediaSide::A => a,
            MediaSide::B => b,
        }
    }

    fn overrides(&self, side: MediaSide) -> Option<&LegOverrides> {
        self.leg(side).overrides.as_deref()
    }

    /// Whether any leg has its own codec policy.
    fn has_codec_overrides(&self) -> bool {
        self.legs
            .iter()
            .any(|l| l.overrides.as_ref().is_some_and(|o| o.codecs.is_some()))
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
    /// `m=` lines of unanswered calls written with port 0 ([`EarlyLimits::streams`]).
    pub early_streams_refused: u64,
    /// New calls refused (503) because their source held its share of ports in unanswered calls
    /// ([`EarlyLimits::pairs_per_source`]).
    pub early_source_refused: u64,
    /// Sessions of calls never answered, released without quarantine.
    pub released_unanswered: u64,
    /// Bigger sessions of offers that added `m=` lines, released because the offer failed.
    pub pending_discarded: u64,
    /// Idle scans that found a call on hold without media and left it up.
    pub held_kept: u64,
    /// Streams of calls whose answer made the SBC transcode (codec policy `transcode_to`), each
    /// counted once per call.
    pub transcoded_streams: u64,
    /// Offers refused for SRTP (no usable `a=crypto`, MKI, keys kept off a side without TLS, ...).
    pub srtp_refused: u64,
    /// SRTP stages given to the relay (a leg's keys set or changed).
    pub srtp_stages: u64,
}

/// Why an SDP could not be anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnchorFault {
    /// The description is refused: answer an offer with this status.
    Refused(u16),
    /// No relay ports left: 503.
    NoPorts,
    /// SDES-SRTP refused the offer: 488 (500 for the SBC's own fault) with a Warning.
    Srtp(Refusal),
}

impl AnchorFault {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::Refused(code) => code,
            Self::NoPorts => 503,
            Self::Srtp(r) => r.status(),
        }
    }

    /// The text of the Warning (399) header the refusal carries, if any.
    pub(crate) fn warning(self) -> Option<&'static str> {
        match self {
            Self::Srtp(r) => Some(r.reason()),
            _ => None,
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
    early: EarlyLimits,
    /// Codec policy per side the descriptions are sent to.
    codecs: CodecPolicies,
    /// SRTP mode per side.
    srtp: SrtpPolicy,
    /// DTMF mode per side.
    dtmf: DtmfPolicy,
    /// Pairs held by unanswered calls, per outside source address.
    early_held: HashMap<IpAddr, usize>,
    /// Sessions of calls on hold (exempt from the no-media timeout).
    held: HashSet<SessionHandle>,
    /// The call of each live session.
    calls: HashMap<SessionHandle, u64>,
    next_scan: Option<Instant>,
    stats: AnchorStats,
    /// The idle scan's events, kept to reuse the buffer.
    idle: Vec<IdleEvent>,
    /// Sessions of calls that ended where the relay was not at hand, released by
    /// `MediaAnchor::flush` at the end of the B2BUA's current entry point (`true`: with
    /// quarantine).
    ended: Vec<(SessionHandle, bool)>,
}

/// How often sessions are scanned for missing media.
const IDLE_SCAN: Duration = Duration::from_secs(1);

impl MediaAnchor {
    /// An anchor with no call yet.
    pub fn new(settings: MediaSettings) -> Self {
        Self {
            settings,
            early: EarlyLimits::default(),
            codecs: CodecPolicies::default(),
            srtp: SrtpPolicy::default(),
            dtmf: DtmfPolicy::default(),
            early_held: HashMap::new(),
            held: HashSet::new(),
            calls: HashMap::new(),
            next_scan: None,
            stats: AnchorStats::default(),
            idle: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Set the bounds on unanswered calls (default [`EarlyLimits::default`]).
    pub fn set_early_limits(&mut self, limits: EarlyLimits) {
        self.early = limits;
    }

    /// Set the codec policies (default: none, codecs pass as offered).
    pub fn set_codec_policies(&mut self, policies: CodecPolicies) {
        self.codecs = policies;
    }

    /// Set the SRTP policy (default: both sides pass, descriptions keep their keys).
    pub fn set_srtp_policy(&mut self, policy: SrtpPolicy) {
        self.srtp = policy;
    }

    /// Set the DTMF modes of the sides (default: pass).
    pub fn set_dtmf_policy(&mut self, policy: DtmfPolicy) {
        self.dtmf = policy;
    }

    /// The call of a live relay session.
    pub(crate) fn call_of(&self, session: SessionHandle) -> Option<u64> {
        self.calls.get(&session).copied()
    }

    /// The DTMF mode leg `side` of a call works in: its trunk's or target group's, else its
    /// side's, `auto` resolved by its description (`pass` while its side is unknown).
    pub(crate) fn dtmf_mode(&self, media: &CallMedia, side: MediaSide) -> DtmfMode {
        self.configured_dtmf(media, side)
            .effective(media.leg(side).telephone_event.is_some())
    }

    /// The DTMF mode configured for leg `side` (`auto` not resolved).
    fn configured_dtmf(&self, media: &CallMedia, side: MediaSide) -> DtmfMode {
        let leg = media.leg(side);
        let Some(outside) = leg.outside else {
            return DtmfMode::Pass;
        };
        leg.overrides
            .as_ref()
            .and_then(|o| o.dtmf)
            .unwrap_or(self.dtmf.of(outside))
    }

    /// `telephone-event` in a description from leg `from` for the other leg, when one is `info`
    /// and the other `rfc4733`: added to an offer toward the `rfc4733` leg that lacks it (and
    /// taken out of that leg's answer, which goes to an offerer that never offered it), added to
    /// an answer toward an `rfc4733` offerer at the payload type it offered.
    fn shape_dtmf(
        &self,
        sdp: &mut Sdp<'_>,
        plan: &anchor::MediaPlan,
        media: &mut CallMedia,
        from: MediaSide,
        offer: bool,
    ) {
        let to = from.other();
        let Some(k) = plan
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_relayed() && e.transport.is_rtp())
            .map(|(k, _)| k)
            .find(|&k| sdp.media(k).is_some_and(|l| l.media == "audio"))
        else {
            return;
        };
        if !offer {
            if let Some((side, m, _)) = media.te_added {
                if side == from {
                    media.te_added = None;
                    super::dtmf_relay::strip_telephone_event(sdp, m);
                    return;
                }
            }
        }
        if self.configured_dtmf(media, to) != DtmfMode::Rfc4733
            || self.dtmf_mode(media, from) != DtmfMode::Info
            || codecs::telephone_event_pt(sdp, k).is_some()
        {
            return;
        }
        if offer {
            if let Some(pt) = super::dtmf_relay::add_telephone_event(sdp, k, None) {
                media.te_added = Some((to, k, pt));
            }
        } else if let Some((m, pt)) = media.leg(to).telephone_event.filter(|&(m, _)| m == k) {
            let _ = super::dtmf_relay::add_telephone_event(sdp, m, Some(pt));
        }
    }

    /// Where an INFO digit from leg `from` is played, when the call converts it: the session,
    /// the other leg's stream and its telephone-event payload type.
    pub(crate) fn info_to_events(
        &self,
        media: &CallMedia,
        from: MediaSide,
    ) -> Option<(SessionHandle, usize, InfoDigits)> {
        let to = from.other();
        if self.dtmf_mode(media, from) != DtmfMode::Info {
            return None;
        }
        match self.dtmf_mode(media, to) {
            DtmfMode::Rfc4733 => {
                let (stream, pt) = media.leg(to).telephone_event?;
                Some((media.session?, stream, InfoDigits::Events(pt)))
            }
            DtmfMode::Inband => {
                let stream = media.leg(to).audio_stream?;
                media
                    .g711(to)
                    .then_some((media.session?, stream, InfoDigits::Tones))
            }
            _ => None,
        }
    }

    /// Whether a telephone-event from leg `from` becomes an INFO toward the other leg.
    pub(crate) fn events_to_info(&self, media: &CallMedia, from: MediaSide) -> bool {
        matches!(
            self.dtmf_mode(media, from),
            DtmfMode::Rfc4733 | DtmfMode::Inband
        ) && self.dtmf_mode(media, from.other()) == DtmfMode::Info
    }

    /// Have the relay report the telephone-events of each `rfc4733` leg whose other leg is
    /// `info` (and stop where that no longer holds).
    fn update_dtmf(&self, relay: &mut dyn MediaControl, media: &mut CallMedia) {
        for side in [MediaSide::A, MediaSide::B] {
            let want = match (media.session, media.leg(side).telephone_event) {
                (Some(h), Some((stream, pt))) if self.events_to_info(media, side) => {
                    Some((h, stream, pt))
                }
                _ => None,
            };
            let leg = media.leg_mut(side);
            if leg.reporting == want {
                continue;
            }
            if let Some((h, stream, _)) = leg.reporting.take() {
                let _ = relay.report_dtmf(h, stream, side, None);
            }
            if let Some((h, stream, pt)) = want {
                if relay.report_dtmf(h, stream, side, Some(pt)).is_ok() {
                    leg.reporting = want;
                }
            }
        }
        // The in-band digits of an `inband` G.711 leg whose other leg is `info`.
        for side in [MediaSide::A, MediaSide::B] {
            let inband = self.dtmf_mode(media, side) == DtmfMode::Inband;
            let want = match (media.session, media.leg(side).audio_stream) {
                (Some(h), Some(stream))
                    if inband && media.g711(side) && self.events_to_info(media, side) =>
                {
                    Some((h, stream))
                }
                _ => None,
            };
            let leg = media.leg_mut(side);
            if leg.hearing == want {
                continue;
            }
            if let Some((h, stream)) = leg.hearing.take() {
                let _ = relay.hear_dtmf(h, stream, side, false);
            }
            if let Some((h, stream)) = want {
                if relay.hear_dtmf(h, stream, side, true).is_ok() {
                    leg.hearing = want;
                }
            }
        }
    }

    /// The SRTP plan of leg `side` whose side is `outside`: its trunk's or target group's mode,
    /// else its side's.
    fn srtp_plan(
        &self,
        media: &CallMedia,
        side: MediaSide,
        outside: bool,
    ) -> Result<super::sdes::LegPlan, Refusal> {
        match media.overrides(side).and_then(|o| o.srtp) {
            Some(mode) => self.srtp.plan_mode(outside, mode),
            None => self.srtp.plan(outside),
        }
    }

    /// Pairs held by the unanswered calls of `source`.
    pub fn early_pairs_of(&self, source: IpAddr) -> usize {
        self.early_held.get(&source).copied().unwrap_or(0)
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
    /// ports of `relay`. `Ok(None)`: no SDP, send the body as received. `peer` is where the
    /// sender's signalling came from: its IP ranks high in the learning window, and, for a call
    /// from the outside (`Some((ip, true))`), bounds the ports its unanswered calls hold.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn anchor(
        &mut self,
        relay: &mut dyn MediaControl,
        now: Instant,
        call: u64,
        media: &mut CallMedia,
        msg: &Message,
        from: MediaSide,
        peer: Option<(IpAddr, bool)>,
    ) -> Result<Option<Vec<u8>>, AnchorFault> {
        let body = msg.body();
        if body.is_empty() || !is_sdp(msg) {
            return Ok(None);
        }
        let mut sdp = Sdp::parse(body).map_err(AnchorError::from)?;
        let mut plan = anchor::plan(&sdp, &PlanOptions::default())?;
        if let Some(codec) = anchor::preferred_codec(&sdp, &plan) {
            media.note_codec(from, codec);
        }
        let mut rtp = plan
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_relayed() && e.transport.is_rtp())
            .map(|(k, _)| k);
        let leg = media.leg_mut(from);
        leg.audio_stream = rtp.clone().next();
        leg.telephone_event =
            rtp.find_map(|k| codecs::telephone_event_pt(&sdp, k).map(|pt| (k, pt)));
        if !media.answered {
            let refused = plan.limit_streams(self.early.streams);
            self.stats.early_streams_refused += refused as u64;
        }
        let to = from.other();
        // An offer is a request other than ACK; a response or an ACK answers (or is a late offer
        // on a call without a session yet).
        let offer = msg.is_request() && msg.method() != Some(&Method::Ack);
        let current = media.pending.or(media.session);
        let have = current.map(|h| relay.stream_count(h).unwrap_or(0));
        match have {
            Some(n) if n < plan.stream_count() && offer => {
                // A re-offer that adds m= lines needs a bigger session. The call keeps its media on
                // the current one until the answer: `commit_pending` on a 2xx moves it over,
                // `discard_pending` on a failure releases the new one.
                self.discard_pending(relay, media, now);
                let h = relay
                    .allocate(now, plan.stream_count())
                    .map_err(|_| AnchorFault::NoPorts)?;
                self.calls.insert(h, call);
                media.pending = Some(h);
            }
            Some(n) if n < plan.stream_count() => {
                // An answer cannot add streams the offer did not have ports for.
                let refused = plan.limit_streams(n);
                self.stats.early_streams_refused += refused as u64;
            }
            _ => {}
        }
        let handle = match media.pending.or(media.session) {
            Some(h) => Some(h),
            None if plan.stream_count() == 0 => None,
            None => {
                let pairs = 2 * plan.stream_count();
                let source = peer.filter(|&(_, outside)| outside && !media.answered);
                let cap = self.early.pairs_per_source;
                if let Some((ip, _)) = source {
                    if cap > 0 && self.early_pairs_of(ip).saturating_add(pairs) > cap {
                        self.stats.early_source_refused += 1;
                        return Err(AnchorFault::NoPorts);
                    }
                }
                let h = relay
                    .allocate(now, plan.stream_count())
                    .map_err(|_| AnchorFault::NoPorts)?;
                if let Some((ip, _)) = source {
                    *self.early_held.entry(ip).or_insert(0) += pairs;
                    media.early = Some((ip, pairs));
                }
                media.session = Some(h);
                self.calls.insert(h, call);
                if self.next_scan.is_none() {
                    self.next_scan = Some(now + IDLE_SCAN);
                }
                Some(h)
            }
        };
        let [hold_a, hold_b] = &mut media.hold;
        *match from {
            MediaSide::A => hold_a,
            MediaSide::B => hold_b,
        } = plan.holds();
        let held = media.hold.iter().any(|h| *h);
        for h in [media.session, media.pending].into_iter().flatten() {
            if held {
                self.held.insert(h);
            } else {
                self.held.remove(&h);
            }
        }
        let ports = match handle {
            Some(h) => {
                relay
                    .stream_count(h)
                    .map_err(|_| AnchorFault::Refused(500))?;
                let ports = plan.local_ports(relay, h, to)?;
                plan.set_remotes_from(relay, h, from, peer.map(|(ip, _)| ip), now)
                    .map_err(|_| AnchorFault::Refused(500))?;
                ports
            }
            None => Vec::new(),
        };
        if let Some((_, sender_outside)) = peer.filter(|_| !self.srtp.is_pass()) {
            let r = self.apply_srtp(
                relay,
                media,
                &mut sdp,
                &plan,
                handle,
                from,
                offer,
                sender_outside,
            );
            if r.is_err() {
                self.stats.srtp_refused += 1;
            }
            r?;
        }
        // Codec policy toward the receiving leg (its trunk's or target group's, else its
        // side's), and the codec plan once an answer chose.
        let policies = &self.codecs;
        let any_policy = !(policies.inside.is_empty() && policies.outside.is_empty())
            || media.has_codec_overrides();
        if let Some((_, sender_outside)) = peer.filter(|_| any_policy) {
            let side_policy = if sender_outside {
                &policies.inside
            } else {
                &policies.outside
            };
            // The Arc, not the policy, is cloned: `media` is written below.
            let own = media.leg(to).overrides.clone();
            let policy = own
                .as_deref()
                .and_then(|o| o.codecs.as_ref())
                .unwrap_or(side_policy);
            let answers = !offer && media.offer.as_ref().is_some_and(|o| o.from() == to);
            if answers {
                let plans = media
                    .offer
                    .as_ref()
                    .map(|o| codecs::apply_answer(&mut sdp, o))
                    .unwrap_or_default();
                if let Some(h) = handle {
                    for k in 0..plan.stream_count() {
                        let p = plans.iter().find(|(m, _)| *m == k).map(|(_, p)| p);
                        let bit = 1u64.checked_shl(u32::try_from(k).unwrap_or(u32::MAX));
                        if let (Some(_), Some(bit)) = (p, bit) {
                            if media.transcoded & bit == 0 {
                                media.transcoded |= bit;
                                self.stats.transcoded_streams += 1;
                            }
                        }
                        let _ = relay.set_codecs(h, k, p);
                    }
                }
            } else if offer || media.offer.is_none() {
                media.offer = Some(codecs::apply_offer(&mut sdp, &plan, policy, from));
            }
        }
        self.shape_dtmf(&mut sdp, &plan, media, from, offer);
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
        self.update_dtmf(relay, media);
        self.stats.rewritten += 1;
        let mut out = Vec::with_capacity(sdp.encoded_len());
        sdp.write_to(&mut out);
        // Nothing that names the party or its software crosses (topology hiding).
        Ok(Some(crate::signalling::topology::scrub_sdp(&out)))
    }

    /// SDES-SRTP on a description from leg `from` (see [`super::srtp`]): an answer to the pending
    /// offer settles the keys and gives the relay the stages that changed; anything else is an
    /// offer.
    #[allow(clippy::too_many_arguments)]
    fn apply_srtp(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        sdp: &mut Sdp<'_>,
        plan: &anchor::MediaPlan,
        handle: Option<SessionHandle>,
        from: MediaSide,
        offer: bool,
        sender_outside: bool,
    ) -> Result<(), AnchorFault> {
        let from_plan = self
            .srtp_plan(media, from, sender_outside)
            .map_err(AnchorFault::Srtp)?;
        let to_plan = self
            .srtp_plan(media, from.other(), !sender_outside)
            .map_err(AnchorFault::Srtp)?;
        let state = media.srtp.get_or_insert_with(Box::default);
        if offer || !state.answers(from.other()) {
            state
                .offer(sdp, plan, from, from_plan, to_plan)
                .map_err(AnchorFault::Srtp)?;
        } else {
            state
                .answer(sdp, plan, from_plan)
                .map_err(AnchorFault::Srtp)?;
        }
        // After an offer: the streams it terminates SRTP on that no answer settled yet refuse
        // their packets until it comes; after an answer: the keys it settled.
        if let Some(h) = handle {
            for (k, side, keys) in state.changed_stages(h) {
                let withheld = keys.withheld;
                let keys = (!keys.is_plain()).then_some(&keys);
                relay
                    .set_srtp(h, k, side, keys)
                    .map_err(|_| AnchorFault::Refused(500))?;
                if !withheld {
                    self.stats.srtp_stages += 1;
                }
            }
        }
        Ok(())
    }

    /// The call was answered (a 2xx to its INVITE): its ports no longer count against its
    /// source's share of unanswered calls, and are quarantined when released.
    pub(crate) fn answered(&mut self, media: &mut CallMedia) {
        media.answered = true;
        self.forget_early(media);
    }

    /// The offer that added `m=` lines was accepted (2xx): the call moves to the bigger session
    /// and the old one is released.
    pub(crate) fn commit_pending(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        now: Instant,
    ) {
        let Some(new) = media.pending.take() else {
            return;
        };
        if let Some(old) = media.session.replace(new) {
            self.calls.remove(&old);
            self.held.remove(&old);
            free(relay, old, media.answered, now);
        }
        self.update_dtmf(relay, media);
    }

    /// The offer that added `m=` lines failed: its bigger session is released (never used for
    /// an answered stream: no quarantine) and the call keeps the one it had.
    pub(crate) fn discard_pending(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        now: Instant,
    ) {
        if let Some(h) = media.pending.take() {
            self.calls.remove(&h);
            self.held.remove(&h);
            self.stats.pending_discarded += 1;
            let _ = relay.release_at_once(h, now);
        }
    }

    fn forget_early(&mut self, media: &mut CallMedia) {
        if let Some((ip, pairs)) = media.early.take() {
            if let Some(held) = self.early_held.get_mut(&ip) {
                *held = held.saturating_sub(pairs);
                if *held == 0 {
                    self.early_held.remove(&ip);
                }
            }
        }
    }

    /// Count an offer refused by `MediaAnchor::anchor`.
    pub(crate) fn count_refused(&mut self) {
        self.stats.refused += 1;
    }

    /// Count a response body that could not be anchored.
    pub(crate) fn count_dropped_body(&mut self) {
        self.stats.dropped_bodies += 1;
    }

    /// Free the call's relay ports (every way a call ends comes here): quarantined when the call
    /// was answered, reusable at once when it never was.
    pub(crate) fn release(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        now: Instant,
    ) {
        for (h, quarantine) in self.take_sessions(media) {
            free(relay, h, quarantine, now);
        }
    }

    /// Free the call's relay ports at the next `MediaAnchor::flush` (for the ways a call ends
    /// deep in the B2BUA, which flushes before returning to the worker).
    /// Returns the session set aside, if the call had one.
    pub(crate) fn release_later(&mut self, media: &mut CallMedia) -> Option<SessionHandle> {
        let sessions = self.take_sessions(media);
        let first = sessions.first().map(|&(h, _)| h);
        self.ended.extend(sessions);
        first
    }

    /// The call's sessions out of every table, each with whether it goes to quarantine.
    fn take_sessions(&mut self, media: &mut CallMedia) -> Vec<(SessionHandle, bool)> {
        self.forget_early(media);
        let quarantine = media.answered;
        let mut out = Vec::with_capacity(2);
        if let Some(h) = media.session.take() {
            out.push((h, quarantine));
        }
        if let Some(h) = media.pending.take() {
            out.push((h, false));
        }
        for &(h, q) in &out {
            self.calls.remove(&h);
            self.held.remove(&h);
            if !q {
                self.stats.released_unanswered += 1;
            }
        }
        out
    }

    /// Release the sessions `MediaAnchor::release_later` set aside, each after `last_look` has
    /// seen it on the relay (the call record reads its final stream statistics there).
    pub(crate) fn flush(
        &mut self,
        relay: &mut dyn MediaControl,
        now: Instant,
        mut last_look: impl FnMut(SessionHandle, &dyn MediaControl),
    ) {
        for (h, quarantine) in self.ended.drain(..) {
            last_look(h, relay);
            free(relay, h, quarantine, now);
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
                IdleEvent::NoMedia { session, .. } if self.held.contains(&session) => {
                    self.stats.held_kept += 1;
                }
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

/// Release session `h` on `relay`, to quarantine or (a call never answered) reusable at once.
fn free(relay: &mut dyn MediaControl, h: SessionHandle, quarantine: bool, now: Instant) {
    let _ = if quarantine {
        relay.release(h, now)
    } else {
        relay.release_at_once(h, now)
    };
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
            .anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, None)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("c=IN IP4 203.0.113.1"), "{text}");
        assert!(!text.contains("192.0.2.10"), "{text}");
        let to_b = ports_of(&out);
        let answer = invite(&sdp("198.51.100.7", &[("audio", 5000)]));
        let out = a
            .anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, None)
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

    fn sdp_dir(ip: &str, media: &[(&str, u16)], dir: &str) -> String {
        let mut s = sdp(ip, media);
        s.push_str(&format!("a={dir}\r\n"));
        s
    }

    fn response(code: u16, body: &str) -> Message {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: x\r\n\
             CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    /// An answered one-stream call on `a`/`r`.
    fn answered_call(a: &mut MediaAnchor, r: &mut FakeMedia, now: Instant) -> CallMedia {
        let mut m = CallMedia::new(7);
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        a.anchor(r, now, 1, &mut m, &offer, MediaSide::A, None)
            .unwrap();
        let answer = response(200, &sdp("198.51.100.7", &[("audio", 5000)]));
        a.anchor(r, now, 1, &mut m, &answer, MediaSide::B, None)
            .unwrap();
        a.answered(&mut m);
        m
    }

    /// A re-offer from A adding video to an answered call; returns the body sent to B.
    fn reoffer_video(a: &mut MediaAnchor, r: &mut FakeMedia, m: &mut CallMedia) -> Vec<u8> {
        let reoffer = invite(&sdp("192.0.2.10", &[("audio", 4000), ("video", 4002)]));
        a.anchor(r, t0(), 1, m, &reoffer, MediaSide::A, None)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_reoffer_adding_video_moves_the_call_to_a_bigger_session_on_its_2xx() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = answered_call(&mut a, &mut r, now);
        let old = m.session.unwrap();
        assert_eq!(r.pairs_in_use(), 2);
        let out = reoffer_video(&mut a, &mut r, &mut m);
        let ports = ports_of(&out);
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
        assert_eq!(
            m.session,
            Some(old),
            "the call keeps its media until the answer"
        );
        assert_eq!(r.pairs_in_use(), 6);
        let answer = response(
            200,
            &sdp("198.51.100.7", &[("audio", 5000), ("video", 5002)]),
        );
        let out = a
            .anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, None)
            .unwrap()
            .unwrap();
        assert_eq!(ports_of(&out).len(), 2);
        a.commit_pending(&mut r, &mut m, now);
        assert_ne!(m.session, Some(old));
        assert_eq!(a.sessions(), 1, "the old session is gone");
        assert_eq!(r.pairs_in_use(), 4);
        a.release(&mut r, &mut m, now);
        assert_eq!(r.pairs_in_use(), 0);
    }

    #[test]
    fn a_rejected_reoffer_adding_video_leaves_the_call_its_media() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = answered_call(&mut a, &mut r, now);
        let old = m.session.unwrap();
        let before = r.streams(old);
        reoffer_video(&mut a, &mut r, &mut m);
        // the callee refuses the re-INVITE (488)
        a.discard_pending(&mut r, &mut m, now);
        assert_eq!(m.session, Some(old));
        assert_eq!(r.streams(old), before, "the old session is untouched");
        assert_eq!(r.pairs_in_use(), 2);
        assert_eq!((r.released, r.released_at_once), (1, 1));
        assert_eq!(a.stats().pending_discarded, 1);
        // the call's media goes on: a later re-offer of the same streams uses the old ports
        let again = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        a.anchor(&mut r, now, 1, &mut m, &again, MediaSide::A, None)
            .unwrap();
        assert_eq!(m.session, Some(old));
        a.release(&mut r, &mut m, now);
        assert_eq!(r.pairs_in_use(), 0);
        assert_eq!(
            r.released_at_once, 1,
            "an answered call's ports are quarantined"
        );
    }

    #[test]
    fn an_unanswered_call_gets_few_streams_and_frees_them_at_once() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(1);
        let media: Vec<(&str, u16)> = (0..8).map(|k| ("audio", 4000 + 2 * k)).collect();
        let offer = invite(&sdp("192.0.2.10", &media));
        let out = a
            .anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, None)
            .unwrap()
            .unwrap();
        let ports = ports_of(&out);
        assert_eq!(ports.len(), 8, "every m= line stays");
        assert!(ports[..4].iter().all(|p| *p != 0), "{ports:?}");
        assert!(ports[4..].iter().all(|p| *p == 0), "{ports:?}");
        assert_eq!(r.pairs_in_use(), 8, "4 streams, 2 legs");
        assert_eq!(a.stats().early_streams_refused, 4);
        a.release(&mut r, &mut m, now);
        assert_eq!((r.released, r.released_at_once), (1, 1));
        assert_eq!(a.stats().released_unanswered, 1);
    }

    #[test]
    fn one_source_holds_a_bounded_share_of_ports_before_answers() {
        let now = t0();
        let (mut a, mut r) = anchor();
        a.set_early_limits(EarlyLimits {
            streams: 4,
            pairs_per_source: 6,
        });
        let attacker: IpAddr = "203.0.113.66".parse().unwrap();
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        let peer = Some((attacker, true));
        let mut calls: Vec<CallMedia> = (0..4).map(CallMedia::new).collect();
        let results: Vec<bool> = calls
            .iter_mut()
            .enumerate()
            .map(|(i, m)| {
                a.anchor(&mut r, now, i as u64, m, &offer, MediaSide::A, peer)
                    .is_ok()
            })
            .collect();
        assert_eq!(results, [true, true, true, false]);
        assert_eq!(a.stats().early_source_refused, 1);
        assert_eq!(a.early_pairs_of(attacker), 6);
        // another source, and the inside (the PBX), are not affected
        let mut other = CallMedia::new(10);
        let peer = Some(("198.51.100.9".parse().unwrap(), true));
        assert!(a
            .anchor(&mut r, now, 10, &mut other, &offer, MediaSide::A, peer)
            .is_ok());
        let mut inside = CallMedia::new(11);
        let pbx = Some(("10.0.0.2".parse().unwrap(), false));
        assert!(a
            .anchor(&mut r, now, 11, &mut inside, &offer, MediaSide::A, pbx)
            .is_ok());
        // an answered call leaves the source's share; an ended one too
        a.answered(&mut calls[0]);
        assert_eq!(a.early_pairs_of(attacker), 4);
        a.release(&mut r, &mut calls[1], now);
        assert_eq!(a.early_pairs_of(attacker), 2);
        assert!(a
            .anchor(
                &mut r,
                now,
                3,
                &mut calls[3],
                &offer,
                MediaSide::A,
                peer_of(attacker)
            )
            .is_ok());
    }

    fn peer_of(ip: IpAddr) -> Option<(IpAddr, bool)> {
        Some((ip, true))
    }

    #[test]
    fn the_signalling_address_reaches_the_relay() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(1);
        let offer = invite(&sdp("10.0.0.5", &[("audio", 4000)]));
        let sip: IpAddr = "198.51.100.7".parse().unwrap();
        a.anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, peer_of(sip))
            .unwrap();
        let spec = r.remote(m.session.unwrap(), 0, MediaSide::A).unwrap();
        assert_eq!(spec.signal, Some(sip));
    }

    #[test]
    fn a_call_on_hold_is_not_ended_for_silence() {
        let (mut a, mut r) = anchor();
        let start = t0();
        let cases = [
            ("inactive", "inactive"),
            ("sendonly", "recvonly"),
            ("recvonly", "sendonly"),
        ];
        for (i, dirs) in (0u64..).zip(cases) {
            let t = start + Duration::from_secs(100 * i);
            let mut m = answered_call(&mut a, &mut r, t);
            let hold = invite(&sdp_dir("192.0.2.10", &[("audio", 4000)], dirs.0));
            a.anchor(&mut r, t, 1, &mut m, &hold, MediaSide::A, None)
                .unwrap();
            let answer = response(200, &sdp_dir("198.51.100.7", &[("audio", 5000)], dirs.1));
            a.anchor(&mut r, t, 1, &mut m, &answer, MediaSide::B, None)
                .unwrap();
            let mut out = Vec::new();
            a.poll_idle(&mut r, t + Duration::from_secs(30), &mut out);
            assert!(out.is_empty(), "{dirs:?}: a held call is kept");
            // resumed: silence ends it again
            let resume = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
            let later = t + Duration::from_secs(31);
            a.anchor(&mut r, later, 1, &mut m, &resume, MediaSide::A, None)
                .unwrap();
            let answer = response(200, &sdp("198.51.100.7", &[("audio", 5000)]));
            a.anchor(&mut r, later, 1, &mut m, &answer, MediaSide::B, None)
                .unwrap();
            a.poll_idle(&mut r, later, &mut out);
            assert!(out.is_empty());
            a.poll_idle(&mut r, later + Duration::from_secs(30), &mut out);
            assert_eq!(out, vec![1], "{dirs:?}: a resumed silent call ends");
            a.release(&mut r, &mut m, t);
        }
        assert!(a.stats().held_kept >= 3);
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
            a.anchor(&mut r, now, 1, &mut m, &msg, MediaSide::A, None),
            Ok(None)
        );
        let multicast = invite(&sdp("224.0.0.9", &[("audio", 4000)]));
        assert_eq!(
            a.anchor(&mut r, now, 1, &mut m, &multicast, MediaSide::A, None),
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
                .anchor(&mut r, now, i as u64, m, &offer, MediaSide::A, None)
                .is_ok());
        }
        let mut extra = CallMedia::new(99);
        let fault = a
            .anchor(&mut r, now, 99, &mut extra, &offer, MediaSide::A, None)
            .unwrap_err();
        assert_eq!(fault.status(), 503);
    }

    #[test]
    fn a_release_set_aside_frees_the_ports_at_the_flush() {
        let now = t0();
        let (mut a, mut r) = anchor();
        let mut m = CallMedia::new(3);
        let offer = invite(&sdp("192.0.2.10", &[("audio", 4000)]));
        a.anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, None)
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

    /// SDES-SRTP through the anchor (the SDP rules are tested in `media/srtp`).
    mod srtp {
        use super::*;
        use crate::media::sdes::{Refusal, SrtpMode};
        use crate::media::srtp::tests::{pbx, phone, KEY};
        use crate::media::srtp::SrtpPolicy;

        fn invite_sdp(sdp: &str) -> Message {
            let text = format!(
                "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n\
                 CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            );
            Message::parse(Bytes::from(text)).unwrap()
        }

        fn ok(sdp: &str) -> Message {
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: x\r\n\
                 CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            );
            Message::parse(Bytes::from(text)).unwrap()
        }

        #[test]
        fn the_anchor_installs_the_stages_and_refuses_with_a_reason() {
            #[allow(clippy::disallowed_methods)] // the one origin of test time
            let now = Instant::now();
            let mut a = MediaAnchor::new(MediaSettings {
                address: SBC,
                no_media_timeout: None,
            });
            a.set_srtp_policy(SrtpPolicy {
                outside: SrtpMode::Srtp,
                inside: SrtpMode::Rtp,
                outside_tls: false,
                inside_tls: false,
                require_tls_for_sdes: false,
            });
            let mut r = FakeMedia::new(30000, 30039);
            let mut m = CallMedia::new(1);
            let outside = Some(("192.0.2.10".parse().unwrap(), true));
            let inside = Some(("10.0.0.2".parse().unwrap(), false));
            let offer = invite_sdp(&phone(
                "RTP/SAVP",
                &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
            ));
            let out = a
                .anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, outside)
                .unwrap()
                .unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains("RTP/AVP") && !out.contains("crypto"), "{out}");
            // Until the answer, both legs refuse their packets: nothing in clear toward the
            // phone offered SRTP, nothing encrypted to the PBX.
            assert_eq!(r.srtp.len(), 2, "{:?}", r.srtp);
            assert!(r
                .srtp
                .iter()
                .all(|(_, k, _, keys)| *k == 0 && keys.as_ref().is_some_and(|x| x.withheld)));
            assert_eq!(a.stats().srtp_stages, 0, "withheld stages are not keys");
            let answer = ok(&pbx("RTP/AVP"));
            let back = a
                .anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, inside)
                .unwrap()
                .unwrap();
            let back = String::from_utf8(back).unwrap();
            assert!(
                back.contains("RTP/SAVP")
                    && back.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
                "{back}"
            );
            assert_eq!(r.srtp.len(), 4);
            assert!(r.srtp[2..]
                .iter()
                .all(|(_, _, _, keys)| keys.as_ref().is_some_and(|x| !x.withheld)));
            assert_eq!(a.stats().srtp_stages, 2);
            // The same answer again (a 200 after a 183): nothing reinstalled.
            a.anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, inside)
                .unwrap();
            assert_eq!(r.srtp.len(), 4);
            a.release(&mut r, &mut m, now);

            // The same offer with keys kept off a side that is not TLS: 488 with the reason.
            a.set_srtp_policy(SrtpPolicy {
                outside: SrtpMode::Srtp,
                inside: SrtpMode::Rtp,
                outside_tls: false,
                inside_tls: false,
                require_tls_for_sdes: true,
            });
            let mut m = CallMedia::new(2);
            let fault = a
                .anchor(&mut r, now, 2, &mut m, &offer, MediaSide::A, outside)
                .unwrap_err();
            assert_eq!(fault, AnchorFault::Srtp(Refusal::NotTls));
            assert_eq!(fault.status(), 488);
            assert_eq!(fault.warning(), Some(Refusal::NotTls.reason()));
            assert_eq!(a.stats().srtp_refused, 1);
            a.release(&mut r, &mut m, now);
        }
    }
}
