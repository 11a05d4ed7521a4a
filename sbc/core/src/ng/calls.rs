//! The ng calls of one worker: each call's parties and relay sessions, the call table with its
//! deadlines, the reply cache for retransmissions, and the call statistics read from the relay.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sbc_sip::sdp::Sdp;

use super::codec::Totals;
use crate::media::anchor::{MediaPlan, OriginState};
use crate::media::sdes::LegPlan;
use crate::media::srtp::CallSrtp;
use crate::media::{LegStats, MediaControl, MediaSide, SessionHandle, StreamStats as RelayStream};

/// Longest Call-ID, from-tag or to-tag accepted (bytes). SIP tags are a few dozen bytes; Call-IDs
/// rarely exceed a hundred.
pub const MAX_ID_LEN: usize = 256;

/// A label cut to [`MAX_ID_LEN`] bytes.
pub(super) fn bounded(label: &[u8]) -> &[u8] {
    label.get(..MAX_ID_LEN).unwrap_or(label)
}

/// Why a request failed: the `error-reason` sent back.
pub(super) type Failure = Cow<'static, str>;

/// What one `m=` line of a party's last description was.
#[derive(Clone, Debug)]
pub(super) struct MediaInfo {
    pub(super) kind: Box<str>,
    pub(super) proto: Box<str>,
}

/// One party of a call.
#[derive(Debug)]
pub(super) struct Party {
    pub(super) tag: Option<Box<[u8]>>,
    pub(super) label: Option<Box<[u8]>>,
    /// When the party first signalled.
    pub(super) seen: Option<Instant>,
    /// The `o=` state of the descriptions sent to this party ([`OriginMode::Own`]).
    pub(super) origin: OriginState,
    pub(super) media: Vec<MediaInfo>,
    /// The party's last description puts a relayed stream on hold (one way or none).
    pub(super) held: bool,
}

impl Party {
    pub(super) fn new(origin: OriginState) -> Self {
        Self {
            tag: None,
            label: None,
            seen: None,
            origin,
            media: Vec::new(),
            held: false,
        }
    }

    pub(super) fn is(&self, tag: &[u8]) -> bool {
        self.tag.as_deref() == Some(tag)
    }

    /// Record that this party sent a description at `now`.
    pub(super) fn signalled(
        &mut self,
        now: Instant,
        label: Option<&[u8]>,
        sdp: &Sdp<'_>,
        plan: &MediaPlan,
    ) {
        self.seen.get_or_insert(now);
        self.held = plan.entries().iter().any(|e| {
            e.is_relayed() && (e.on_hold() || !e.direction.sends() || !e.direction.receives())
        });
        if let Some(label) = label {
            self.label = Some(bounded(label).into());
        }
        self.media = sdp
            .media_lines()
            .map(|m| MediaInfo {
                kind: m.media.into(),
                proto: m.proto.into(),
            })
            .collect();
    }
}

/// One ng call.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) created: Instant,
    pub(super) last_signal: Instant,
    pub(super) session: Option<SessionHandle>,
    /// A smaller session superseded by a re-offer, released when the answer arrives.
    pub(super) retired: Option<SessionHandle>,
    /// Index 0: [`MediaSide::A`], 1: [`MediaSide::B`].
    pub(super) parties: [Party; 2],
    /// `m=` lines (bits) where the pending offer was given `a=rtcp-mux` its author had not written.
    pub(super) mux_added: u64,
    /// Counters of sessions released during the call.
    pub(super) carried: Totals,
    pub(super) deleted: bool,
    /// SDES-SRTP state when the call bridges RTP and SRTP ([`super::bridge`]).
    pub(super) srtp: Option<Box<CallSrtp>>,
    /// The bridging plans of side A and side B, set by the offer that asked for a conversion.
    pub(super) sdes: Option<[LegPlan; 2]>,
}

pub(super) fn index(side: MediaSide) -> usize {
    match side {
        MediaSide::A => 0,
        MediaSide::B => 1,
    }
}

impl Call {
    pub(super) fn new(now: Instant, session_id: u64) -> Self {
        let origin = |n: u64| OriginState::new(n, 1);
        Self {
            created: now,
            last_signal: now,
            session: None,
            retired: None,
            parties: [
                Party::new(origin(session_id)),
                Party::new(origin(session_id.wrapping_add(1))),
            ],
            mux_added: 0,
            carried: Totals::default(),
            deleted: false,
            srtp: None,
            sdes: None,
        }
    }

    pub(super) fn party(&self, side: MediaSide) -> &Party {
        match side {
            MediaSide::A => &self.parties[0],
            MediaSide::B => &self.parties[1],
        }
    }

    pub(super) fn party_mut(&mut self, side: MediaSide) -> &mut Party {
        match side {
            MediaSide::A => &mut self.parties[0],
            MediaSide::B => &mut self.parties[1],
        }
    }

    pub(super) fn side_of(&self, tag: &[u8]) -> Option<MediaSide> {
        [MediaSide::A, MediaSide::B]
            .into_iter()
            .find(|&side| self.party(side).is(tag))
    }

    pub(super) fn set_tag(&mut self, side: MediaSide, tag: &[u8]) {
        if !self.party(side).is(tag) {
            self.party_mut(side).tag = Some(tag.into());
        }
    }

    /// The side whose description an `offer` from `from` (to `to`) carries; learns a tag it
    /// reveals.
    pub(super) fn offer_side(
        &mut self,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<MediaSide, Failure> {
        if let Some(side) = self.side_of(from) {
            return Ok(side);
        }
        if to.is_some_and(|to| self.party(MediaSide::A).is(to)) {
            // The callee re-offers before (or without) an answer that named its tag.
            self.set_tag(MediaSide::B, from);
            return Ok(MediaSide::B);
        }
        if self.party(MediaSide::B).tag.is_none() {
            // Never answered: the caller offers again under another tag; it stays the caller.
            self.set_tag(MediaSide::A, from);
            return Ok(MediaSide::A);
        }
        Err("Invalid dialogue association".into())
    }

    /// The side that made the offer an `answer` from `from` (to `to`) completes; learns the
    /// answerer's tag.
    pub(super) fn offerer_side(&mut self, from: &[u8], to: &[u8]) -> Result<MediaSide, Failure> {
        let Some(offerer) = self.side_of(from) else {
            // Tags written the other way round (some proxies do on replies).
            let answerer = self
                .side_of(to)
                .ok_or_else(|| Failure::from("Invalid dialogue association"))?;
            let offerer = answerer.other();
            self.set_tag(offerer, from);
            return Ok(offerer);
        };
        // The answerer's tag: learned now, or replaced by a later fork branch's.
        self.set_tag(offerer.other(), to);
        Ok(offerer)
    }

    /// Whether a `delete` naming these tags ends this call.
    pub(super) fn delete_matches(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> bool {
        let known = |tag: &[u8]| self.side_of(tag).is_some();
        let unanswered = self.party(MediaSide::B).tag.is_none();
        match (from, to) {
            (None, None) => true,
            (Some(f), None) => known(f),
            (None, Some(t)) => known(t) || unanswered,
            (Some(f), Some(t)) => {
                (known(f) && (known(t) || unanswered)) || (known(t) && unanswered)
            }
        }
    }

    /// The last signal or packet on any leg.
    pub(super) fn last_activity(&self, relay: &dyn MediaControl) -> Instant {
        [self.session, self.retired]
            .into_iter()
            .flatten()
            .filter_map(|h| streams_of(relay, h))
            .flatten()
            .filter_map(|s| s.last_packet())
            .fold(self.last_signal, Instant::max)
    }

    /// Give every session back to the relay.
    pub(super) fn release(&mut self, relay: &mut dyn MediaControl, now: Instant) {
        for handle in [self.session.take(), self.retired.take()]
            .into_iter()
            .flatten()
        {
            // An unknown handle was released already; nothing to give back.
            let _ = relay.release(handle, now);
        }
    }
}

/// Where a call stands in the deadline order: its deadline, and a sequence number for ties.
pub(super) type Due = (Instant, u64);

/// The calls and their deadlines in order.
#[derive(Debug)]
pub(super) struct CallTable {
    pub(super) calls: HashMap<Box<[u8]>, (Call, Due)>,
    pub(super) due: BTreeMap<Due, Box<[u8]>>,
    pub(super) seq: u64,
}

impl CallTable {
    pub(super) fn new() -> Self {
        Self {
            calls: HashMap::new(),
            due: BTreeMap::new(),
            seq: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(super) fn insert(&mut self, key: &[u8], call: Call, deadline: Instant) {
        let slot = (deadline, self.next_seq());
        self.due.insert(slot, key.into());
        if let Some((_, old)) = self.calls.insert(key.into(), (call, slot)) {
            self.due.remove(&old);
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Call> {
        self.calls.get(key).map(|(c, _)| c)
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Call> {
        self.calls.get_mut(key).map(|(c, _)| c)
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Call> {
        let (call, slot) = self.calls.remove(key)?;
        self.due.remove(&slot);
        Some(call)
    }

    pub(super) fn set_deadline(&mut self, key: &[u8], deadline: Instant) {
        let seq = self.next_seq();
        let Some((_, slot)) = self.calls.get_mut(key) else {
            return;
        };
        if let Some(name) = self.due.remove(slot) {
            *slot = (deadline, seq);
            self.due.insert(*slot, name);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.due.first_key_value().map(|((at, _), _)| *at)
    }

    /// The key of the call due first, if due by `now`; its deadline record is removed (set a new
    /// one or remove the call).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Box<[u8]>> {
        let (&(at, _), _) = self.due.first_key_value()?;
        if at > now {
            return None;
        }
        self.due.pop_first().map(|(_, key)| key)
    }

    pub(super) fn drain(&mut self) -> impl Iterator<Item = Call> + '_ {
        self.due.clear();
        self.calls.drain().map(|(_, (call, _))| call)
    }
}

/// Replies to the last requests, by client address and cookie, for retransmissions.
#[derive(Debug)]
pub(super) struct ReplyCache {
    pub(super) replies: HashMap<Box<[u8]>, Vec<u8>>,
    /// Keys in insertion order, which is expiry order.
    pub(super) order: VecDeque<(Instant, Box<[u8]>)>,
    pub(super) bytes: usize,
    pub(super) capacity: usize,
    pub(super) max_bytes: usize,
    pub(super) ttl: Duration,
    pub(super) key: Vec<u8>,
}

impl ReplyCache {
    pub(super) fn new(capacity: usize, max_bytes: usize, ttl: Duration) -> Self {
        Self {
            replies: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            capacity,
            max_bytes,
            ttl,
            key: Vec::with_capacity(160),
        }
    }

    /// Set the scratch key to `source` + `cookie`.
    pub(super) fn make_key(&mut self, source: SocketAddr, cookie: &[u8]) {
        self.key.clear();
        match source.ip() {
            IpAddr::V4(ip) => self.key.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => self.key.extend_from_slice(&ip.octets()),
        }
        self.key.extend_from_slice(&source.port().to_be_bytes());
        self.key.extend_from_slice(cookie);
    }

    pub(super) fn get(&mut self, source: SocketAddr, cookie: &[u8]) -> Option<&[u8]> {
        self.make_key(source, cookie);
        self.replies.get(self.key.as_slice()).map(Vec::as_slice)
    }

    pub(super) fn insert(&mut self, source: SocketAddr, cookie: &[u8], reply: &[u8], now: Instant) {
        if self.capacity == 0 || reply.len() > self.max_bytes {
            return;
        }
        self.make_key(source, cookie);
        if self.replies.contains_key(self.key.as_slice()) {
            return;
        }
        while self.replies.len() >= self.capacity || self.bytes + reply.len() > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
        let key: Box<[u8]> = self.key.as_slice().into();
        self.bytes += reply.len();
        self.replies.insert(key.clone(), reply.to_vec());
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        self.order.push_back((expires, key));
    }

    pub(super) fn purge(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(at, _)| *at <= now) {
            self.pop_oldest();
        }
    }

    pub(super) fn pop_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some(reply) = self.replies.remove(&key) {
            self.bytes = self.bytes.saturating_sub(reply.len());
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.replies.len()
    }
}

impl CallTable {
    /// Re-arm a call whose deadline record [`CallTable::pop_due`] removed.
    pub(super) fn set_deadline_popped(&mut self, key: &[u8], deadline: Instant) {
        let seq = self.next_seq();
        if let Some((_, slot)) = self.calls.get_mut(key) {
            *slot = (deadline, seq);
            self.due.insert(*slot, key.into());
        }
    }
}

/// The streams of a live session, as the relay reports them.
pub(super) fn streams_of(
    relay: &dyn MediaControl,
    handle: SessionHandle,
) -> Option<Vec<RelayStream>> {
    let mut out = Vec::new();
    relay.stats(handle, &mut out).ok()?;
    Some(out)
}

pub(super) fn add_leg(totals: &mut Totals, leg: &LegStats) {
    totals.rtp.packets += leg.packets;
    totals.rtp.bytes += leg.bytes;
    totals.rtp.errors += leg.dropped;
    totals.rtcp.packets += leg.rtcp_packets;
    totals.rtcp.bytes += leg.rtcp_bytes;
}

pub(super) fn media_flags(leg: &LegStats) -> &'static [&'static str] {
    match (leg.rtp.sdp.is_some(), leg.rtcp_mux) {
        (true, true) => &["initialized", "rtcp-mux"],
        (true, false) => &["initialized"],
        (false, true) => &["rtcp-mux"],
        (false, false) => &[],
    }
}

pub(super) fn stream_flags(rtp: bool, filled: bool, confirmed: bool) -> &'static [&'static str] {
    match (rtp, filled, confirmed) {
        (true, _, true) => &["RTP", "filled", "confirmed"],
        (true, true, false) => &["RTP", "filled"],
        (true, false, false) => &["RTP"],
        (false, _, true) => &["RTCP", "filled", "confirmed"],
        (false, true, false) => &["RTCP", "filled"],
        (false, false, false) => &["RTCP"],
    }
}
