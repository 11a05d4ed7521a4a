//! The rtpengine-compatible control engine: Kamailio's and OpenSIPS's `rtpengine` modules drive the
//! SBC's media relay over the ng protocol as they would drive rtpengine, so the relay is a drop-in
//! media proxy behind an existing SIP proxy.
//!
//! [`NgEngine`] is sans-IO: the driver hands it each ng datagram with its source and `now`, and sends
//! back what [`NgEngine::handle`] wrote; it arms a timer with [`NgEngine::poll_timeout`] and calls
//! [`NgEngine::handle_timeout`] when it fires. The engine owns a bounded table of ng calls keyed by
//! Call-ID and works on the worker's [`MediaShard`] with plain function calls: one session per call,
//! one stream per `m=` line, and the SDP [plan and rewrite](crate::anchor) per offer and answer.
//!
//! # Calls, tags and sides
//! A call has two parties, each known by its SIP tag. The party whose `from-tag` opened the call with
//! an `offer` is on [`Side::A`] (the caller), the party that answers it on [`Side::B`] (the callee).
//!
//! - `offer` carries the SDP of the party named by `from-tag`: the relay learns that party's media
//!   address on its side, and the returned SDP, which goes to the other party, carries the relay's
//!   ports of the other side. For the initial INVITE: caller's SDP in, ports of leg B out.
//! - `answer` carries the SDP of the party named by `to-tag` (the offer's `from-tag` is repeated
//!   in `from-tag`): the answerer's address is learned on its side and the returned SDP carries the
//!   ports of the offerer's side. For the 200 OK: callee's SDP in, ports of leg A out.
//! - A re-INVITE from the callee is an `offer` whose `from-tag` is the callee's tag: roles follow the
//!   tags, not the order of the messages.
//! - A repeated `offer` or `answer` (re-INVITE, hold, Kamailio retrying with a new cookie) re-uses
//!   the call's session: stream `k` keeps its ports for the whole call, so the returned ports are the
//!   same. A re-offer with more `m=` lines than the session has streams gets a new, larger session;
//!   the old one carries media until the answer arrives and is released then.
//! - An answer from a second forked branch (another `to-tag`) replaces the first: the last answer
//!   wins, the relay sends the callee's media where that answer says.
//! - `delete` ends the call at once, or after `delete-delay` seconds (the request's, else
//!   [`NgConfig::delete_delay`]), and replies with the call's statistics. Its tags must match the
//!   call: the `487` of a cancelled fork branch (an unknown `to-tag` once the call is answered) leaves
//!   the call alone. An unknown call is a warning, or with the `fatal` flag an error, as rtpengine
//!   does.
//! - `query` replies with the statistics of a call (`created`, `last signal`, `tags` and `totals`
//!   from the relay's per-leg counters), `list` with the Call-IDs of live calls (at most `limit`,
//!   default 32), `ping` with `pong`.
//!
//! # Expiry and bounds
//! Every table is bounded and every entry expires:
//! - calls: at most [`NgConfig::max_calls`] (an offer beyond it is refused with rtpengine's
//!   `Parallel session limit reached`); a call with no signal and no media for
//!   [`NgConfig::idle_timeout`] ([`NgConfig::hold_timeout`] while a side holds) is released (a lost
//!   BYE never leaks ports); a deleted call lingers for its delete delay, capped by
//!   [`NgConfig::max_delete_delay`];
//! - replies: the reply to each `offer`, `answer` and `delete` is kept for
//!   [`NgConfig::reply_cache_ttl`] under the client's address and cookie, so a retransmission (a
//!   client that timed out waiting) gets the same bytes again without a second allocation; at most
//!   [`NgConfig::reply_cache`] replies and [`NgConfig::reply_cache_bytes`] bytes, oldest dropped
//!   first;
//! - Call-IDs and tags are at most [`MAX_ID_LEN`] bytes; `list` replies stay below
//!   [`MAX_LIST_BYTES`].
//!
//! Nothing here panics on peer input: every fault is an ng error reply with a reason.
//!
//! # Options
//! | ng option | effect |
//! |---|---|
//! | `trust-address` (default) / `SIP-source-address` + `received-from` | the peer's media IP: the SDP's, or the SIP source's ([`RemoteAddress`]) |
//! | `media-address` | overrides both |
//! | `replace: origin` / `origin-full` | `o=` address replaced / the relay's own `o=` per side ([`OriginMode`]); default: kept |
//! | `replace: session-connection`, `zero-address` | one session-level `c=`; `c=0.0.0.0` rewritten too |
//! | `ICE` absent, `remove`, `default` | ICE attributes removed (the relay is the only address) |
//! | `ICE=force`, `force-relay`, `optional` | the relay does not speak ICE: attributes passed through unchanged, with a warning |
//! | `rtcp-mux: demux` / `reject` | `a=rtcp-mux` not offered onward; the relay demuxes |
//! | `rtcp-mux: offer` / `require` | `a=rtcp-mux` offered onward, and removed from the answer if the offerer had not offered it |
//! | `full-rtcp-attribute`, `no-rtcp-attribute` | `a=rtcp` with the address / removed |
//! | `label` | remembered per party and reported by `query` |
//! | `direction`, `from-interface`, `to-interface` | accepted: the relay has one interface, [`NgConfig::media_ip`] |
//! | `symmetric`, `asymmetric`, `strict-source`, `media-handover`, `port-latching` | accepted; latching is configured per relay shard (its latch mode), not per call |
//! | `address-family`, `transport-protocol`, `SDES` | accepted; a family or protocol change the relay cannot make is reported in `warning` |
//! | other flags and keys (`record-call`, `via-branch`, ...) | ignored, counted in [`NgCounters::ignored_options`] |

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media_plane::latch::Latch;
use media_plane::ng::{
    encode_error, encode_reply, AddressFamily, CallStats, Codec, Command, Counters, Field, Flag,
    Ice, Limits, MediaStats, Message, NgError, Replace, Reply, Request, RtcpMux, StreamStats,
    TagStats, Totals, TransportProtocol,
};
use media_plane::ports::PortPair;
use media_plane::shard::{Leg, MediaShard, SessionHandle, Side};
use sbc_sip::sdp::{Scope, Sdp};

use crate::anchor::{
    self, AnchorError, MediaPlan, NonRtp, OriginMode, OriginState, PlanOptions, RemoteAddress,
    RewriteOptions,
};

/// Longest Call-ID, from-tag or to-tag accepted (bytes). SIP tags are a few dozen bytes; Call-IDs
/// rarely exceed a hundred.
pub const MAX_ID_LEN: usize = 256;

/// Largest `list` reply body: the Call-IDs stop before the reply would pass this, so it fits one
/// UDP datagram whatever `limit` asks.
pub const MAX_LIST_BYTES: usize = 60_000;

/// Largest reply: the payload of one UDP datagram over IPv4. A larger one (an SDP near the request
/// size limit, grown by the rewrite) is replaced by an error the client can receive.
pub const MAX_REPLY: usize = 65_507;

/// rtpengine's wording for a `delete` whose call or tags are unknown.
const NOT_FOUND: &str = "Call-ID not found or tags didn't match";

/// Settings of an [`NgEngine`]. [`NgConfig::new`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NgConfig {
    /// The relay's address, written in `c=` (and `o=` when asked) of every rewritten SDP.
    pub media_ip: IpAddr,
    /// Most calls at once. Default 10 000.
    pub max_calls: usize,
    /// A call with no offer, answer or media for this long is released. Default 60 s (rtpengine's
    /// `timeout`). A call ringing longer than this without early media is released too: keep it
    /// above the proxy's ringing timeout.
    pub idle_timeout: Duration,
    /// The idle timeout of a call on hold (a stream that one side does not send or does not
    /// receive: `sendonly`, `recvonly`, `inactive`, `c=0.0.0.0`), which may carry no media at all.
    /// Default 3600 s (rtpengine's `silent-timeout`).
    pub hold_timeout: Duration,
    /// How long a deleted call keeps its ports when the `delete` names no delay. Default 0: released
    /// at once (the `delete` reply carries the statistics).
    pub delete_delay: Duration,
    /// Cap on the delay a `delete` may ask for. Default 300 s.
    pub max_delete_delay: Duration,
    /// Replies kept for retransmissions. Default 1024.
    pub reply_cache: usize,
    /// Bytes of replies kept for retransmissions. Default 4 MiB.
    pub reply_cache_bytes: usize,
    /// How long a reply is kept. Default 30 s, beyond any client's retransmission schedule.
    pub reply_cache_ttl: Duration,
    /// Call-IDs returned by `list` without `limit`. Default 32 (rtpengine's).
    pub list_limit: usize,
    /// Non-RTP UDP streams (T.38, ...). Default relayed.
    pub non_rtp: NonRtp,
    /// Bounds of one ng message.
    pub limits: Limits,
}

impl NgConfig {
    /// The defaults (see each field), with the relay at `media_ip`.
    pub fn new(media_ip: IpAddr) -> Self {
        Self {
            media_ip,
            max_calls: 10_000,
            idle_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
            delete_delay: Duration::ZERO,
            max_delete_delay: Duration::from_secs(300),
            reply_cache: 1024,
            reply_cache_bytes: 4 << 20,
            reply_cache_ttl: Duration::from_secs(30),
            list_limit: 32,
            non_rtp: NonRtp::Relay,
            limits: Limits::default(),
        }
    }
}

/// Counters of one engine, written by its worker only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NgCounters {
    /// Datagrams handled.
    pub requests: u64,
    /// Requests answered from the reply cache.
    pub retransmissions: u64,
    /// Error replies sent.
    pub errors: u64,
    /// Datagrams dropped without reply (no readable cookie).
    pub dropped: u64,
    /// Calls created by an `offer`.
    pub calls_created: u64,
    /// Calls ended by `delete`.
    pub calls_deleted: u64,
    /// Calls released after the idle timeout.
    pub calls_expired: u64,
    /// Offers refused because the call table was full.
    pub rejected_full: u64,
    /// Unknown keys, flags and values, and options accepted without effect.
    pub ignored_options: u64,
}

/// Why a request failed: the `error-reason` sent back.
type Failure = Cow<'static, str>;

/// Non-fatal problems of one request, joined into the reply's `warning`.
#[derive(Default)]
struct Warnings(Vec<&'static str>);

impl Warnings {
    fn push(&mut self, warning: &'static str) {
        if !self.0.contains(&warning) {
            self.0.push(warning);
        }
    }

    fn text(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("; "))
    }
}

/// What one `m=` line of a party's last description was.
#[derive(Clone, Debug)]
struct MediaInfo {
    kind: Box<str>,
    proto: Box<str>,
}

/// One party of a call.
#[derive(Debug)]
struct Party {
    tag: Option<Box<[u8]>>,
    label: Option<Box<[u8]>>,
    /// When the party first signalled.
    seen: Option<Instant>,
    /// The `o=` state of the descriptions sent to this party ([`OriginMode::Own`]).
    origin: OriginState,
    media: Vec<MediaInfo>,
    /// The party's last description puts a relayed stream on hold (one way or none).
    held: bool,
}

impl Party {
    fn new(origin: OriginState) -> Self {
        Self {
            tag: None,
            label: None,
            seen: None,
            origin,
            media: Vec::new(),
            held: false,
        }
    }

    fn is(&self, tag: &[u8]) -> bool {
        self.tag.as_deref() == Some(tag)
    }

    /// Record that this party sent a description at `now`.
    fn signalled(&mut self, now: Instant, label: Option<&[u8]>, sdp: &Sdp<'_>, plan: &MediaPlan) {
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
struct Call {
    created: Instant,
    last_signal: Instant,
    session: Option<SessionHandle>,
    /// A smaller session superseded by a re-offer, released when the answer arrives.
    retired: Option<SessionHandle>,
    /// Index 0: [`Side::A`], 1: [`Side::B`].
    parties: [Party; 2],
    /// `m=` lines (bits) where the pending offer was given `a=rtcp-mux` its author had not written.
    mux_added: u64,
    /// Counters of sessions released during the call.
    carried: Totals,
    deleted: bool,
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Call {
    fn new(now: Instant, session_id: u64) -> Self {
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
        }
    }

    fn party(&self, side: Side) -> &Party {
        match side {
            Side::A => &self.parties[0],
            Side::B => &self.parties[1],
        }
    }

    fn party_mut(&mut self, side: Side) -> &mut Party {
        match side {
            Side::A => &mut self.parties[0],
            Side::B => &mut self.parties[1],
        }
    }

    fn side_of(&self, tag: &[u8]) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|&side| self.party(side).is(tag))
    }

    fn set_tag(&mut self, side: Side, tag: &[u8]) {
        if !self.party(side).is(tag) {
            self.party_mut(side).tag = Some(tag.into());
        }
    }

    /// The side whose description an `offer` from `from` (to `to`) carries; learns a tag it
    /// reveals.
    fn offer_side(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<Side, Failure> {
        if let Some(side) = self.side_of(from) {
            return Ok(side);
        }
        if to.is_some_and(|to| self.party(Side::A).is(to)) {
            // The callee re-offers before (or without) an answer that named its tag.
            self.set_tag(Side::B, from);
            return Ok(Side::B);
        }
        if self.party(Side::B).tag.is_none() {
            // Never answered: the caller offers again under another tag; it stays the caller.
            self.set_tag(Side::A, from);
            return Ok(Side::A);
        }
        Err("Invalid dialogue association".into())
    }

    /// The side that made the offer an `answer` from `from` (to `to`) completes; learns the
    /// answerer's tag.
    fn offerer_side(&mut self, from: &[u8], to: &[u8]) -> Result<Side, Failure> {
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
    fn delete_matches(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> bool {
        let known = |tag: &[u8]| self.side_of(tag).is_some();
        let unanswered = self.party(Side::B).tag.is_none();
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
    fn last_activity(&self, shard: &MediaShard) -> Instant {
        [self.session, self.retired]
            .into_iter()
            .flatten()
            .filter_map(|h| shard.streams(h).ok())
            .flatten()
            .flat_map(|s| [s.leg(Side::A), s.leg(Side::B)])
            .filter_map(|leg| leg.rx().last_packet())
            .fold(self.last_signal, Instant::max)
    }

    /// Give every session back to the shard.
    fn release(&mut self, shard: &mut MediaShard, now: Instant) {
        for handle in [self.session.take(), self.retired.take()]
            .into_iter()
            .flatten()
        {
            // An unknown handle was released already; nothing to give back.
            let _ = shard.release(handle, now);
        }
    }
}

/// Where a call stands in the deadline order: its deadline, and a sequence number for ties.
type Due = (Instant, u64);

/// The calls and their deadlines in order.
#[derive(Debug)]
struct CallTable {
    calls: HashMap<Box<[u8]>, (Call, Due)>,
    due: BTreeMap<Due, Box<[u8]>>,
    seq: u64,
}

impl CallTable {
    fn new() -> Self {
        Self {
            calls: HashMap::new(),
            due: BTreeMap::new(),
            seq: 0,
        }
    }

    fn len(&self) -> usize {
        self.calls.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn insert(&mut self, key: &[u8], call: Call, deadline: Instant) {
        let slot = (deadline, self.next_seq());
        self.due.insert(slot, key.into());
        if let Some((_, old)) = self.calls.insert(key.into(), (call, slot)) {
            self.due.remove(&old);
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Call> {
        self.calls.get(key).map(|(c, _)| c)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Call> {
        self.calls.get_mut(key).map(|(c, _)| c)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Call> {
        let (call, slot) = self.calls.remove(key)?;
        self.due.remove(&slot);
        Some(call)
    }

    fn set_deadline(&mut self, key: &[u8], deadline: Instant) {
        let seq = self.next_seq();
        let Some((_, slot)) = self.calls.get_mut(key) else {
            return;
        };
        if let Some(name) = self.due.remove(slot) {
            *slot = (deadline, seq);
            self.due.insert(*slot, name);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.due.first_key_value().map(|((at, _), _)| *at)
    }

    /// The key of the call due first, if due by `now`; its deadline record is removed (set a new
    /// one or remove the call).
    fn pop_due(&mut self, now: Instant) -> Option<Box<[u8]>> {
        let (&(at, _), _) = self.due.first_key_value()?;
        if at > now {
            return None;
        }
        self.due.pop_first().map(|(_, key)| key)
    }

    fn drain(&mut self) -> impl Iterator<Item = Call> + '_ {
        self.due.clear();
        self.calls.drain().map(|(_, (call, _))| call)
    }
}

/// Replies to the last requests, by client address and cookie, for retransmissions.
#[derive(Debug)]
struct ReplyCache {
    replies: HashMap<Box<[u8]>, Vec<u8>>,
    /// Keys in insertion order, which is expiry order.
    order: VecDeque<(Instant, Box<[u8]>)>,
    bytes: usize,
    capacity: usize,
    max_bytes: usize,
    ttl: Duration,
    key: Vec<u8>,
}

impl ReplyCache {
    fn new(capacity: usize, max_bytes: usize, ttl: Duration) -> Self {
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
    fn make_key(&mut self, source: SocketAddr, cookie: &[u8]) {
        self.key.clear();
        match source.ip() {
            IpAddr::V4(ip) => self.key.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => self.key.extend_from_slice(&ip.octets()),
        }
        self.key.extend_from_slice(&source.port().to_be_bytes());
        self.key.extend_from_slice(cookie);
    }

    fn get(&mut self, source: SocketAddr, cookie: &[u8]) -> Option<&[u8]> {
        self.make_key(source, cookie);
        self.replies.get(self.key.as_slice()).map(Vec::as_slice)
    }

    fn insert(&mut self, source: SocketAddr, cookie: &[u8], reply: &[u8], now: Instant) {
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

    fn purge(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(at, _)| *at <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some(reply) = self.replies.remove(&key) {
            self.bytes = self.bytes.saturating_sub(reply.len());
        }
        true
    }

    fn len(&self) -> usize {
        self.replies.len()
    }
}

/// The rtpengine-compatible control engine of one worker. See the [module docs](self).
#[derive(Debug)]
pub struct NgEngine {
    config: NgConfig,
    codec: Codec,
    calls: CallTable,
    cache: ReplyCache,
    /// `(instant, time since the Unix epoch at that instant)`, for the times `query` reports.
    wall: Option<(Instant, Duration)>,
    /// The first instant seen: the time origin while no wall clock is set.
    epoch: Option<Instant>,
    counters: NgCounters,
}

impl NgEngine {
    /// An engine with no call.
    pub fn new(config: NgConfig) -> Self {
        Self {
            codec: Codec::new(config.limits),
            calls: CallTable::new(),
            cache: ReplyCache::new(
                config.reply_cache,
                config.reply_cache_bytes,
                config.reply_cache_ttl,
            ),
            wall: None,
            epoch: None,
            counters: NgCounters::default(),
            config,
        }
    }

    /// Tie the monotonic clock to the wall clock: at `now`, `since_epoch` had passed since the Unix
    /// epoch. `query` and `delete` report Unix times from it; until it is set they report seconds
    /// since the first request the engine saw.
    pub fn set_wall_clock(&mut self, now: Instant, since_epoch: Duration) {
        self.wall = Some((now, since_epoch));
    }

    /// The settings.
    pub fn config(&self) -> &NgConfig {
        &self.config
    }

    /// A copy of the counters.
    pub fn counters(&self) -> NgCounters {
        self.counters
    }

    /// Calls in the table (deleted calls lingering for their delay included).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call in the table.
    pub fn is_empty(&self) -> bool {
        self.calls.len() == 0
    }

    /// Replies held for retransmissions.
    pub fn cached_replies(&self) -> usize {
        self.cache.len()
    }

    /// Handle one ng datagram from `source` at `now` and append the reply datagram to `out`. A reply
    /// is written whenever the datagram has a readable cookie (an error reply for anything wrong);
    /// without one nothing is written, since the client could not match it.
    pub fn handle(
        &mut self,
        shard: &mut MediaShard,
        datagram: &[u8],
        source: SocketAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        self.epoch.get_or_insert(now);
        self.counters.requests += 1;
        self.cache.purge(now);
        let Message { cookie, request } = match self.codec.parse_request(datagram) {
            Ok(message) => message,
            Err(e) => {
                match e.cookie {
                    Some(cookie) => {
                        self.counters.errors += 1;
                        encode_error(cookie, &e.error, out);
                    }
                    None => self.counters.dropped += 1,
                }
                return;
            }
        };
        if let Some(reply) = self.cache.get(source, cookie) {
            out.extend_from_slice(reply);
            self.counters.retransmissions += 1;
            return;
        }
        self.count_ignored(&request);
        let start = out.len();
        let result = match request.command {
            Command::Ping => {
                encode_reply(cookie, &Reply::Pong, out);
                Ok(())
            }
            Command::Offer => self.offer(shard, &request, now).map(|(sdp, warnings)| {
                let warning = warnings.text();
                let reply = Reply::Sdp {
                    sdp: &sdp,
                    warning: warning.as_deref(),
                };
                encode_reply(cookie, &reply, out);
            }),
            Command::Answer => self.answer(shard, &request, now).map(|(sdp, warnings)| {
                let warning = warnings.text();
                let reply = Reply::Sdp {
                    sdp: &sdp,
                    warning: warning.as_deref(),
                };
                encode_reply(cookie, &reply, out);
            }),
            Command::Delete => self.delete(shard, &request, now, cookie, out),
            Command::Query => self.query(shard, &request, cookie, out),
            Command::List => {
                self.list(&request, cookie, out);
                Ok(())
            }
            other => Err(NgError::Unsupported(other).reason().into()),
        };
        let result = match result {
            Ok(()) if out.len().saturating_sub(start) > MAX_REPLY => {
                Err(Failure::from("Reply too large for one datagram"))
            }
            other => other,
        };
        if let Err(reason) = result {
            out.truncate(start);
            self.counters.errors += 1;
            encode_reply(cookie, &Reply::Error { reason: &reason }, out);
        }
        if matches!(
            request.command,
            Command::Offer | Command::Answer | Command::Delete
        ) {
            if let Some(reply) = out.get(start..) {
                self.cache.insert(source, cookie, reply, now);
            }
        }
    }

    /// When [`NgEngine::handle_timeout`] has work next: a call may have gone idle, or a deleted call's
    /// delay ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls.next_deadline()
    }

    /// Release the calls that went idle (no signal and no media for [`NgConfig::idle_timeout`]) and
    /// the deleted calls whose delay is over; drop expired cached replies. Returns how many calls
    /// were released.
    pub fn handle_timeout(&mut self, shard: &mut MediaShard, now: Instant) -> usize {
        self.cache.purge(now);
        let mut released = 0;
        while let Some(key) = self.calls.pop_due(now) {
            let Some(call) = self.calls.get(&key) else {
                continue;
            };
            if !call.deleted {
                let until = call
                    .last_activity(shard)
                    .checked_add(self.idle_timeout(call));
                if let Some(until) = until.filter(|&t| t > now) {
                    self.calls.set_deadline_popped(&key, until);
                    continue;
                }
                self.counters.calls_expired += 1;
            }
            if let Some(mut call) = self.calls.remove(&key) {
                call.release(shard, now);
                released += 1;
            }
        }
        released
    }

    /// Release every call (shutdown). Returns how many.
    pub fn release_all(&mut self, shard: &mut MediaShard, now: Instant) -> usize {
        let mut released = 0;
        for mut call in self.calls.drain() {
            call.release(shard, now);
            released += 1;
        }
        released
    }

    fn count_ignored(&mut self, request: &Request<'_>) {
        let mut ignored = request.ignored_keys.len() + request.invalid_values.len();
        ignored += request.other_flags.len();
        for flag in [
            Flag::Asymmetric,
            Flag::StrictSource,
            Flag::MediaHandover,
            Flag::PortLatching,
            Flag::NoPortLatching,
            Flag::RecordCall,
            Flag::LoopProtect,
        ] {
            ignored += usize::from(request.flags.contains(flag));
        }
        self.counters.ignored_options += ignored as u64;
    }

    // ---------------------------------------------------------------------------------------------
    // offer and answer

    fn offer(
        &mut self,
        shard: &mut MediaShard,
        req: &Request<'_>,
        now: Instant,
    ) -> Result<(Vec<u8>, Warnings), Failure> {
        let call_id = id(req.call_id, NgError::Missing(Field::CallId))?;
        let from = id(req.from_tag, NgError::Missing(Field::FromTag))?;
        let to = optional_id(req.to_tag)?;
        let body = req
            .sdp
            .ok_or_else(|| Failure::from(NgError::Missing(Field::Sdp).reason()))?;
        let mut warnings = Warnings::default();
        let mut sdp = Sdp::parse(body).map_err(|e| sdp_failure(&AnchorError::Sdp(e)))?;
        let plan = anchor::plan(&sdp, &self.plan_options(req, shard, &mut warnings))
            .map_err(|e| sdp_failure(&e))?;
        let rewrite = self.rewrite_options(req, &sdp, &mut warnings);

        // A deleted call offered again under a new tag starts over; under its own tags it revives.
        let stale = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.deleted && c.side_of(from).is_none());
        if stale {
            if let Some(mut old) = self.calls.remove(call_id) {
                old.release(shard, now);
            }
        }
        let created = self.calls.get(call_id).is_none();
        if created {
            if self.calls.len() >= self.config.max_calls {
                self.handle_timeout(shard, now);
            }
            if self.calls.len() >= self.config.max_calls {
                self.counters.rejected_full += 1;
                return Err("Parallel session limit reached".into());
            }
            let mut call = Call::new(now, session_id(call_id, self.calls.seq));
            call.set_tag(Side::A, from);
            if let Some(to) = to {
                call.set_tag(Side::B, to);
            }
            self.calls.insert(call_id, call, now);
            self.counters.calls_created += 1;
        }
        let media_ip = self.config.media_ip;
        let result = match self.calls.get_mut(call_id) {
            Some(call) => offer_on(
                call, shard, req, from, to, &plan, &mut sdp, media_ip, &rewrite, now,
            ),
            None => Err("Unknown call-id".into()),
        };
        match result {
            Ok(()) => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.deleted = false;
                }
                self.touch(call_id, now);
                Ok((sdp.to_vec(), warnings))
            }
            Err(e) => {
                if created {
                    if let Some(mut call) = self.calls.remove(call_id) {
                        call.release(shard, now);
                    }
                }
                Err(e)
            }
        }
    }

    fn answer(
        &mut self,
        shard: &mut MediaShard,
        req: &Request<'_>,
        now: Instant,
    ) -> Result<(Vec<u8>, Warnings), Failure> {
        let call_id = id(req.call_id, NgError::Missing(Field::CallId))?;
        let from = id(req.from_tag, NgError::Missing(Field::FromTag))?;
        let to = id(req.to_tag, NgError::Missing(Field::ToTag))?;
        let body = req
            .sdp
            .ok_or_else(|| Failure::from(NgError::Missing(Field::Sdp).reason()))?;
        if self.calls.get(call_id).is_none() {
            return Err("Unknown call-id".into());
        }
        let mut warnings = Warnings::default();
        let mut sdp = Sdp::parse(body).map_err(|e| sdp_failure(&AnchorError::Sdp(e)))?;
        let plan = anchor::plan(&sdp, &self.plan_options(req, shard, &mut warnings))
            .map_err(|e| sdp_failure(&e))?;
        let rewrite = self.rewrite_options(req, &sdp, &mut warnings);
        let media_ip = self.config.media_ip;
        let Some(call) = self.calls.get_mut(call_id) else {
            return Err("Unknown call-id".into());
        };
        answer_on(
            call, shard, req, from, to, &plan, &mut sdp, media_ip, &rewrite, now,
        )?;
        call.deleted = false;
        self.touch(call_id, now);
        Ok((sdp.to_vec(), warnings))
    }

    /// A signal at `now`: the call's idle deadline moves.
    fn touch(&mut self, call_id: &[u8], now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let at = now.checked_add(self.idle_timeout(call)).unwrap_or(now);
        self.calls.set_deadline(call_id, at);
    }

    /// How long `call` may go without signal or media.
    fn idle_timeout(&self, call: &Call) -> Duration {
        if call.parties.iter().any(|p| p.held) {
            self.config.hold_timeout
        } else {
            self.config.idle_timeout
        }
    }

    fn plan_options(
        &self,
        req: &Request<'_>,
        shard: &MediaShard,
        warnings: &mut Warnings,
    ) -> PlanOptions {
        let sip_source =
            req.flags.contains(Flag::SipSourceAddress) && !req.flags.contains(Flag::TrustAddress);
        let address = match (sip_source, req.received_from) {
            (true, Some(from)) => RemoteAddress::SipSource(from.address),
            (true, None) => {
                warnings.push("SIP-source-address without received-from: SDP address used");
                RemoteAddress::TrustSdp
            }
            (false, _) => RemoteAddress::TrustSdp,
        };
        PlanOptions {
            address,
            media_address: req.media_address,
            non_rtp: self.config.non_rtp,
            max_streams: shard.config().max_streams,
            ..PlanOptions::default()
        }
    }

    fn rewrite_options(
        &self,
        req: &Request<'_>,
        sdp: &Sdp<'_>,
        warnings: &mut Warnings,
    ) -> RewriteOptions {
        let mut opts = RewriteOptions::ng();
        if req.replace.contains(Replace::OriginFull) {
            opts.origin = OriginMode::Own;
        } else if req.replace.contains(Replace::Origin) {
            opts.origin = OriginMode::Address;
        }
        opts.session_connection = req.replace.contains(Replace::SessionConnection);
        opts.zero_address = req.replace.contains(Replace::ZeroAddress);
        opts.full_rtcp_attribute = req.flags.contains(Flag::FullRtcpAttribute);
        opts.keep_ice = matches!(req.ice, Some(Ice::Force | Ice::ForceRelay | Ice::Optional));
        if opts.keep_ice {
            warnings.push("ICE is not supported by the relay: ICE attributes passed through");
        }
        if req.rtcp_mux.contains(RtcpMux::Require) {
            warnings.push("rtcp-mux require handled as offer");
        }
        let family_ok = match req.address_family {
            Some(AddressFamily::Ip4) => self.config.media_ip.is_ipv4(),
            Some(AddressFamily::Ip6) => self.config.media_ip.is_ipv6(),
            None => true,
        };
        if !family_ok {
            warnings.push("address-family not available: the relay's media address is used");
        }
        if let Some(proto) = req.transport_protocol {
            let converts = proto != TransportProtocol::Accept
                && sdp
                    .media_lines()
                    .any(|m| m.port != 0 && !m.proto.eq_ignore_ascii_case(proto.name()));
            if converts {
                warnings.push("transport-protocol conversion not supported: protocol unchanged");
            }
        }
        opts
    }

    // ---------------------------------------------------------------------------------------------
    // delete, query, list

    fn delete(
        &mut self,
        shard: &mut MediaShard,
        req: &Request<'_>,
        now: Instant,
        cookie: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        let call_id = id(req.call_id, NgError::Missing(Field::CallId))?;
        let matches = self.calls.get(call_id).is_some_and(|call| {
            req.flags.contains(Flag::All) || call.delete_matches(req.from_tag, req.to_tag)
        });
        if !matches {
            if req.flags.contains(Flag::Fatal) {
                return Err(NOT_FOUND.into());
            }
            encode_reply(
                cookie,
                &Reply::Ok {
                    warning: Some(NOT_FOUND),
                },
                out,
            );
            return Ok(());
        }
        let delay = match req.delete_delay {
            Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs()),
            Some(0) => Duration::ZERO,
            // Negative: the default, as rtpengine reads -1.
            _ => self.config.delete_delay,
        }
        .min(self.config.max_delete_delay);
        if let Some(call) = self.calls.get(call_id) {
            self.encode_stats(call, shard, cookie, None, out);
        }
        let first = self.calls.get(call_id).is_some_and(|c| !c.deleted);
        if first {
            self.counters.calls_deleted += 1;
        }
        if delay.is_zero() {
            if let Some(mut call) = self.calls.remove(call_id) {
                call.release(shard, now);
            }
        } else {
            if let Some(call) = self.calls.get_mut(call_id) {
                call.deleted = true;
                call.last_signal = now;
            }
            self.calls
                .set_deadline(call_id, now.checked_add(delay).unwrap_or(now));
        }
        Ok(())
    }

    fn query(
        &mut self,
        shard: &MediaShard,
        req: &Request<'_>,
        cookie: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        let call_id = id(req.call_id, NgError::Missing(Field::CallId))?;
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| Failure::from("Unknown call-id"))?;
        self.encode_stats(call, shard, cookie, None, out);
        Ok(())
    }

    fn list(&self, req: &Request<'_>, cookie: &[u8], out: &mut Vec<u8>) {
        let limit = req.limit.map_or(self.config.list_limit, |l| {
            usize::try_from(l).unwrap_or(usize::MAX)
        });
        let mut bytes = 0usize;
        let calls: Vec<&[u8]> = self
            .calls
            .calls
            .iter()
            .filter(|(_, (call, _))| !call.deleted)
            .map(|(key, _)| &**key)
            .take_while(|key| {
                // A bencode string: its length in decimal, a colon, the bytes.
                bytes += key.len() + 6;
                bytes <= MAX_LIST_BYTES
            })
            .take(limit)
            .collect();
        encode_reply(cookie, &Reply::List { calls: &calls }, out);
    }

    /// Encode `query`'s reply (also `delete`'s) for `call`.
    fn encode_stats(
        &self,
        call: &Call,
        shard: &MediaShard,
        cookie: &[u8],
        warning: Option<&str>,
        out: &mut Vec<u8>,
    ) {
        let streams = call
            .session
            .and_then(|h| shard.streams(h).ok())
            .unwrap_or_default();
        let mut totals = call.carried;
        if let Some(old) = call.retired.and_then(|h| shard.streams(h).ok()) {
            for s in old {
                add_leg(&mut totals, s.leg(Side::A));
                add_leg(&mut totals, s.leg(Side::B));
            }
        }
        // Two packet streams (RTP, RTCP) per media section, per side.
        let per_side: [Vec<StreamStats<'_>>; 2] = [Side::A, Side::B].map(|side| {
            streams
                .iter()
                .flat_map(|s| {
                    let leg = s.leg(side);
                    add_leg(&mut totals, leg);
                    self.packet_streams(leg)
                })
                .collect()
        });
        let medias: [Vec<MediaStats<'_>>; 2] = [Side::A, Side::B].map(|side| {
            let party = call.party(side);
            let all = per_side.get(index(side)).map_or(&[][..], Vec::as_slice);
            streams
                .iter()
                .zip(0u32..)
                .map(|(s, k)| {
                    let leg = s.leg(side);
                    let info = party.media.get(k as usize);
                    let at = 2 * k as usize;
                    MediaStats {
                        index: k + 1,
                        media_type: info.map_or("audio", |i| &*i.kind),
                        protocol: info.map(|i| &*i.proto),
                        flags: media_flags(leg),
                        streams: all.get(at..at + 2).unwrap_or_default(),
                    }
                })
                .collect()
        });
        let tags: Vec<TagStats<'_>> = [Side::A, Side::B]
            .into_iter()
            .filter(|&side| {
                let p = call.party(side);
                p.tag.is_some() || p.seen.is_some()
            })
            .map(|side| {
                let party = call.party(side);
                TagStats {
                    tag: party.tag.as_deref().unwrap_or_default(),
                    created: self.unix(party.seen.unwrap_or(call.created)).0,
                    label: party.label.as_deref(),
                    in_dialogue_with: call.party(side.other()).tag.as_deref(),
                    medias: medias.get(index(side)).map_or(&[][..], Vec::as_slice),
                }
            })
            .collect();
        let (created, created_us) = self.unix(call.created);
        let stats = CallStats {
            created,
            created_us: Some(created_us),
            last_signal: self.unix(call.last_signal).0,
            tags: &tags,
            totals,
        };
        encode_reply(
            cookie,
            &Reply::Stats {
                stats: &stats,
                warning,
            },
            out,
        );
    }

    /// The RTP and RTCP packet streams of one leg, as `query` reports them.
    fn packet_streams(&self, leg: &Leg) -> [StreamStats<'static>; 2] {
        let rx = leg.rx();
        let last_packet = rx.last_packet().map(|t| self.unix(t).0);
        let rtcp_port = if leg.rtcp_mux() {
            leg.ports().rtp()
        } else {
            leg.ports().rtcp()
        };
        let stream = |rtp: bool, port: u16, latch: &Latch, stats: Counters| StreamStats {
            local_port: Some(port),
            endpoint: latch.destination(),
            advertised_endpoint: latch.sdp(),
            crypto_suite: None,
            last_packet,
            flags: stream_flags(
                rtp,
                latch.destination().is_some(),
                latch.learned().is_some(),
            ),
            stats,
        };
        [
            stream(
                true,
                leg.ports().rtp(),
                leg.rtp_latch(),
                Counters {
                    packets: rx.packets(),
                    bytes: rx.bytes(),
                    errors: leg.dropped(),
                },
            ),
            stream(
                false,
                rtcp_port,
                leg.rtcp_latch(),
                Counters {
                    packets: rx.rtcp_packets(),
                    bytes: rx.rtcp_bytes(),
                    errors: 0,
                },
            ),
        ]
    }

    /// `t` as Unix time (seconds, microseconds), from the wall clock if set, else from the first
    /// instant seen.
    fn unix(&self, t: Instant) -> (i64, u32) {
        let since = match (self.wall, self.epoch) {
            (Some((at, base)), _) => match t.checked_duration_since(at) {
                Some(after) => base.saturating_add(after),
                None => base.saturating_sub(at.saturating_duration_since(t)),
            },
            (None, Some(epoch)) => t.saturating_duration_since(epoch),
            (None, None) => Duration::ZERO,
        };
        (
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            since.subsec_micros(),
        )
    }
}

impl CallTable {
    /// Re-arm a call whose deadline record [`CallTable::pop_due`] removed.
    fn set_deadline_popped(&mut self, key: &[u8], deadline: Instant) {
        let seq = self.next_seq();
        if let Some((_, slot)) = self.calls.get_mut(key) {
            *slot = (deadline, seq);
            self.due.insert(*slot, key.into());
        }
    }
}

/// The offer's work on its call: side, session, remotes, rewrite.
#[allow(clippy::too_many_arguments)]
fn offer_on(
    call: &mut Call,
    shard: &mut MediaShard,
    req: &Request<'_>,
    from: &[u8],
    to: Option<&[u8]>,
    plan: &MediaPlan,
    sdp: &mut Sdp<'_>,
    media_ip: IpAddr,
    rewrite: &RewriteOptions,
    now: Instant,
) -> Result<(), Failure> {
    let sender = call.offer_side(from, to)?;
    let receiver = sender.other();
    let needed = plan.stream_count();
    let have = call
        .session
        .and_then(|h| shard.streams(h).ok())
        .map_or(0, <[_]>::len);
    if needed > have {
        let fresh = shard
            .allocate_session(now, needed)
            .map_err(allocation_failure)?;
        if let Some(old) = call.session.replace(fresh) {
            if let Some(older) = call.retired.replace(old) {
                release_counted(shard, older, &mut call.carried, now);
            }
        }
    }
    let ports = relay_ports(shard, call.session, plan, sender, now)?;

    call.mux_added = 0;
    for (k, entry) in plan.entries().iter().enumerate() {
        if !entry.is_relayed() {
            continue;
        }
        if req.rtcp_mux.contains(RtcpMux::Demux) || req.rtcp_mux.contains(RtcpMux::Reject) {
            sdp.remove_attribute(Scope::Media(k), "rtcp-mux");
        } else if (req.rtcp_mux.contains(RtcpMux::Offer) || req.rtcp_mux.contains(RtcpMux::Require))
            && !sdp.rtcp_mux(k)
        {
            sdp.add_attribute(Scope::Media(k), "rtcp-mux", None)
                .map_err(|e| sdp_failure(&AnchorError::Rewrite(e)))?;
            call.mux_added |= bit(k);
        }
    }
    finish_rewrite(
        sdp,
        media_ip,
        &ports,
        &mut call.party_mut(receiver).origin,
        rewrite,
        req,
    )?;
    call.party_mut(sender).signalled(now, req.label, sdp, plan);
    call.last_signal = now;
    Ok(())
}

/// The answer's work on its call: sides, remotes, rewrite, the retired session released.
#[allow(clippy::too_many_arguments)]
fn answer_on(
    call: &mut Call,
    shard: &mut MediaShard,
    req: &Request<'_>,
    from: &[u8],
    to: &[u8],
    plan: &MediaPlan,
    sdp: &mut Sdp<'_>,
    media_ip: IpAddr,
    rewrite: &RewriteOptions,
    now: Instant,
) -> Result<(), Failure> {
    let offerer = call.offerer_side(from, to)?;
    let answerer = offerer.other();
    let have = call
        .session
        .and_then(|h| shard.streams(h).ok())
        .map_or(0, <[_]>::len);
    if plan.stream_count() > have {
        return Err(
            "Incomplete SDP specification: the answer has more media streams than the offer".into(),
        );
    }
    let ports = relay_ports(shard, call.session, plan, answerer, now)?;
    for k in 0..sdp.media_count() {
        let added = call.mux_added & bit(k) != 0;
        let refuse =
            req.rtcp_mux.contains(RtcpMux::Demux) || req.rtcp_mux.contains(RtcpMux::Reject);
        if added || refuse {
            sdp.remove_attribute(Scope::Media(k), "rtcp-mux");
        }
    }
    finish_rewrite(
        sdp,
        media_ip,
        &ports,
        &mut call.party_mut(offerer).origin,
        rewrite,
        req,
    )?;
    call.mux_added = 0;
    call.party_mut(answerer)
        .signalled(now, req.label, sdp, plan);
    call.last_signal = now;
    if let Some(old) = call.retired.take() {
        release_counted(shard, old, &mut call.carried, now);
    }
    Ok(())
}

/// Learn the sender's addresses on its side and return the relay's ports toward the other side.
fn relay_ports(
    shard: &mut MediaShard,
    session: Option<SessionHandle>,
    plan: &MediaPlan,
    sender: Side,
    now: Instant,
) -> Result<Vec<Option<PortPair>>, Failure> {
    let Some(handle) = session else {
        return Ok(Vec::new());
    };
    plan.set_remotes(shard, handle, sender, now)
        .map_err(|e| Failure::from(format!("Media relay error: {e}")))?;
    let streams = shard
        .streams(handle)
        .map_err(|e| Failure::from(format!("Media relay error: {e}")))?;
    plan.local_ports(streams, sender.other())
        .map_err(|e| sdp_failure(&e))
}

fn finish_rewrite(
    sdp: &mut Sdp<'_>,
    media_ip: IpAddr,
    ports: &[Option<PortPair>],
    origin: &mut OriginState,
    rewrite: &RewriteOptions,
    req: &Request<'_>,
) -> Result<(), Failure> {
    anchor::rewrite(sdp, media_ip, ports, origin, rewrite).map_err(|e| sdp_failure(&e))?;
    if req.flags.contains(Flag::NoRtcpAttribute) {
        for k in 0..sdp.media_count() {
            sdp.remove_rtcp(k);
        }
    }
    Ok(())
}

/// Release a superseded session, keeping its counters in the call's totals.
fn release_counted(
    shard: &mut MediaShard,
    handle: SessionHandle,
    carried: &mut Totals,
    now: Instant,
) {
    if let Ok(streams) = shard.streams(handle) {
        for s in streams {
            add_leg(carried, s.leg(Side::A));
            add_leg(carried, s.leg(Side::B));
        }
    }
    // An unknown handle was released already.
    let _ = shard.release(handle, now);
}

fn add_leg(totals: &mut Totals, leg: &Leg) {
    let rx = leg.rx();
    totals.rtp.packets += rx.packets();
    totals.rtp.bytes += rx.bytes();
    totals.rtp.errors += leg.dropped();
    totals.rtcp.packets += rx.rtcp_packets();
    totals.rtcp.bytes += rx.rtcp_bytes();
}

fn media_flags(leg: &Leg) -> &'static [&'static str] {
    match (leg.rtp_latch().sdp().is_some(), leg.rtcp_mux()) {
        (true, true) => &["initialized", "rtcp-mux"],
        (true, false) => &["initialized"],
        (false, true) => &["rtcp-mux"],
        (false, false) => &[],
    }
}

fn stream_flags(rtp: bool, filled: bool, confirmed: bool) -> &'static [&'static str] {
    match (rtp, filled, confirmed) {
        (true, _, true) => &["RTP", "filled", "confirmed"],
        (true, true, false) => &["RTP", "filled"],
        (true, false, false) => &["RTP"],
        (false, _, true) => &["RTCP", "filled", "confirmed"],
        (false, true, false) => &["RTCP", "filled"],
        (false, false, false) => &["RTCP"],
    }
}

fn bit(k: usize) -> u64 {
    u32::try_from(k)
        .ok()
        .and_then(|k| 1u64.checked_shl(k))
        .unwrap_or(0)
}

/// A required identifier (Call-ID or tag), bounded.
fn id(value: Option<&[u8]>, missing: NgError) -> Result<&[u8], Failure> {
    let value = value.ok_or_else(|| Failure::from(missing.reason()))?;
    optional_id(Some(value))?;
    Ok(value)
}

fn optional_id(value: Option<&[u8]>) -> Result<Option<&[u8]>, Failure> {
    match value {
        Some(v) if v.len() > MAX_ID_LEN => Err("Call-ID or tag too long".into()),
        Some([]) => Err("Empty Call-ID or tag".into()),
        other => Ok(other),
    }
}

/// A label cut to [`MAX_ID_LEN`] bytes.
fn bounded(label: &[u8]) -> &[u8] {
    label.get(..MAX_ID_LEN).unwrap_or(label)
}

/// A session id for the `o=` lines of a call: FNV-1a of the Call-ID, mixed with a counter.
fn session_id(call_id: &[u8], seq: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Positive and at most 2^62, as some endpoints parse it as a signed 64-bit number.
    (h ^ seq.rotate_left(32)) >> 2
}

fn sdp_failure(e: &AnchorError) -> Failure {
    let what = match e {
        AnchorError::Sdp(_) => "Failed to parse SDP",
        AnchorError::NoConnection { .. } => "Incomplete SDP specification",
        AnchorError::SessionTooSmall { .. } | AnchorError::Rewrite(_) => "Error rewriting SDP",
        _ => "Unsupported SDP",
    };
    format!("{what}: {e}").into()
}

fn allocation_failure(e: media_plane::Error) -> Failure {
    match e {
        media_plane::Error::PortsExhausted { .. } => "Ran out of ports".into(),
        other => format!("Media relay error: {other}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_plane::ng::{encode_request, ReceivedFrom, ReplyView, ResultCode};
    use media_plane::shard::{Action, ShardConfig};
    use std::net::Ipv4Addr;

    const MEDIA: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    /// Ports of the test shard: 30000..=30019, ten pairs.
    const PORTS: usize = 20;

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn text(lines: &[&str]) -> String {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n");
        s
    }

    fn caller_sdp() -> String {
        text(&[
            "v=0",
            "o=alice 2890844526 2890844526 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendrecv",
        ])
    }

    fn callee_sdp() -> String {
        text(&[
            "v=0",
            "o=bob 1 1 IN IP4 10.0.0.2",
            "s=-",
            "c=IN IP4 10.0.0.2",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
        ])
    }

    /// A reply, read back into owned values.
    #[derive(Debug)]
    struct Got {
        cookie: String,
        result: ResultCode,
        sdp: Option<String>,
        warning: Option<String>,
        error: Option<String>,
        created: Option<i64>,
        totals: Option<Totals>,
        calls: Vec<String>,
    }

    impl Got {
        fn sdp(&self) -> &str {
            assert_eq!(self.result, ResultCode::Ok, "{self:?}");
            self.sdp.as_deref().unwrap()
        }

        fn error(&self) -> &str {
            assert_eq!(self.result, ResultCode::Error, "{self:?}");
            self.error.as_deref().unwrap()
        }
    }

    fn read(raw: &[u8]) -> Got {
        let mut codec = Codec::default();
        let (cookie, view): (&[u8], ReplyView<'_>) = codec.parse_reply(raw).unwrap();
        let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        Got {
            cookie: String::from_utf8(cookie.to_vec()).unwrap(),
            result: view.result,
            sdp: s(view.sdp),
            warning: s(view.warning),
            error: s(view.error_reason),
            created: view.created,
            totals: view.totals,
            calls: view.calls.iter().map(|c| s(Some(c)).unwrap()).collect(),
        }
    }

    struct Bench {
        engine: NgEngine,
        shard: MediaShard,
        now: Instant,
        source: SocketAddr,
        n: u32,
    }

    impl Bench {
        fn new() -> Self {
            Self::with(NgConfig::new(MEDIA), ShardConfig::new(30000, 30019))
        }

        fn with(config: NgConfig, shard: ShardConfig) -> Self {
            Self {
                engine: NgEngine::new(config),
                shard: MediaShard::new(shard).unwrap(),
                now: t0(),
                source: sock("127.0.0.1:40000"),
                n: 0,
            }
        }

        fn raw(&mut self, datagram: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            self.engine
                .handle(&mut self.shard, datagram, self.source, self.now, &mut out);
            out
        }

        /// Send `req` under `cookie`; the raw reply.
        fn send_as(&mut self, cookie: &str, req: &Request<'_>) -> Vec<u8> {
            let mut datagram = Vec::new();
            encode_request(cookie.as_bytes(), req, &mut datagram);
            self.raw(&datagram)
        }

        /// Send `req` under a fresh cookie; the reply, checked to echo the cookie.
        fn send(&mut self, req: &Request<'_>) -> Got {
            self.n += 1;
            let cookie = format!("{}_{}", std::process::id(), self.n);
            let got = read(&self.send_as(&cookie, req));
            assert_eq!(got.cookie, cookie);
            got
        }

        fn later(&mut self, secs: u64) {
            self.now += Duration::from_secs(secs);
        }

        fn streams(&self, call: &str) -> &[media_plane::shard::Stream] {
            let handle = self
                .engine
                .calls
                .get(call.as_bytes())
                .unwrap()
                .session
                .unwrap();
            self.shard.streams(handle).unwrap()
        }
    }

    fn offer<'a>(call: &'a str, from: &'a str, sdp: &'a str) -> Request<'a> {
        let mut r = Request::new(Command::Offer);
        r.call_id = Some(call.as_bytes());
        r.from_tag = Some(from.as_bytes());
        r.sdp = Some(sdp.as_bytes());
        r
    }

    fn answer<'a>(call: &'a str, from: &'a str, to: &'a str, sdp: &'a str) -> Request<'a> {
        let mut r = Request::new(Command::Answer);
        r.call_id = Some(call.as_bytes());
        r.from_tag = Some(from.as_bytes());
        r.to_tag = Some(to.as_bytes());
        r.sdp = Some(sdp.as_bytes());
        r
    }

    fn delete<'a>(call: &'a str, from: Option<&'a str>, to: Option<&'a str>) -> Request<'a> {
        let mut r = Request::new(Command::Delete);
        r.call_id = Some(call.as_bytes());
        r.from_tag = from.map(str::as_bytes);
        r.to_tag = to.map(str::as_bytes);
        r
    }

    fn query(call: &str) -> Request<'_> {
        let mut r = Request::new(Command::Query);
        r.call_id = Some(call.as_bytes());
        r
    }

    fn rtp_packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    /// The caller's offer and the callee's answer of call `c1`; the offer's and answer's SDP.
    fn established(b: &mut Bench) -> (String, String) {
        let o = b
            .send(&offer("c1", "alice", &caller_sdp()))
            .sdp()
            .to_owned();
        let a = b
            .send(&answer("c1", "alice", "bob", &callee_sdp()))
            .sdp()
            .to_owned();
        (o, a)
    }

    #[test]
    fn offer_answer_query_delete_with_exact_ports() {
        let mut b = Bench::new();
        let (o, a) = established(&mut b);
        // The offer goes to the callee: leg B's ports (the second pair); the o= line is kept.
        assert_eq!(
            o,
            text(&[
                "v=0",
                "o=alice 2890844526 2890844526 IN IP4 198.51.100.7",
                "s=-",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30002 RTP/AVP 0 101",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=sendrecv",
            ])
        );
        // The answer goes to the caller: leg A's ports.
        assert_eq!(
            a,
            text(&[
                "v=0",
                "o=bob 1 1 IN IP4 10.0.0.2",
                "s=-",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "a=rtpmap:0 PCMU/8000",
            ])
        );
        let s = &b.streams("c1")[0];
        assert_eq!(s.leg(Side::A).ports().rtp(), 30000);
        assert_eq!(s.leg(Side::B).ports().rtp(), 30002);
        assert_eq!(
            s.leg(Side::A).rtp_latch().sdp(),
            Some(sock("198.51.100.7:4000"))
        );
        assert_eq!(
            s.leg(Side::B).rtp_latch().sdp(),
            Some(sock("10.0.0.2:6000"))
        );

        // Media from the caller reaches the callee from leg B's port, and is counted.
        b.later(1);
        let mut pkt = rtp_packet(1);
        let action = b
            .shard
            .on_packet(30000, sock("198.51.100.7:4000"), &mut pkt, b.now);
        assert_eq!(
            action,
            Action::Forward {
                from_port: 30002,
                to: sock("10.0.0.2:6000"),
                len: pkt.len()
            }
        );
        let q = b.send(&query("c1"));
        assert_eq!(q.result, ResultCode::Ok, "{q:?}");
        let totals = q.totals.unwrap();
        assert_eq!(totals.rtp.packets, 1);
        assert_eq!(totals.rtp.bytes, pkt.len() as u64);
        assert_eq!(totals.rtcp, Counters::default());

        // The whole reply, for the tags and streams Kamailio and tools read.
        let mut raw = Vec::new();
        encode_request(b"full", &query("c1"), &mut raw);
        let reply = b.raw(&raw);
        let reply = String::from_utf8_lossy(&reply);
        for needle in [
            "5:alice",
            "3:bob",
            "16:in dialogue with3:bob",
            "10:local porti30000e",
            "10:local porti30003e",
            "4:type5:audio",
            "8:protocol7:RTP/AVP",
        ] {
            assert!(reply.contains(needle), "{needle} in {reply}");
        }

        let d = b.send(&delete("c1", Some("alice"), Some("bob")));
        assert_eq!(d.result, ResultCode::Ok, "{d:?}");
        assert_eq!(d.totals.unwrap().rtp.packets, 1);
        assert!(b.engine.is_empty());
        assert!(b.shard.is_empty());
        assert_eq!(b.shard.ports_free(), PORTS);
        assert_eq!(b.engine.counters().calls_deleted, 1);
    }

    #[test]
    fn repeated_offer_and_answer_reuse_the_session() {
        let mut b = Bench::new();
        let (o1, a1) = established(&mut b);
        b.later(2);
        // A re-INVITE from the caller (or the proxy retrying under a new cookie).
        let (o2, a2) = established(&mut b);
        assert_eq!((o1, a1), (o2, a2));
        assert_eq!(b.shard.counters().sessions_allocated, 1);
        assert_eq!(b.shard.len(), 1);
        assert_eq!(b.engine.len(), 1);
    }

    #[test]
    fn reoffer_from_the_callee_carries_leg_a_ports() {
        let mut b = Bench::new();
        established(&mut b);
        // The callee's re-INVITE: its tag in from-tag, its new address in the SDP.
        let moved = callee_sdp().replace("10.0.0.2", "10.0.0.3");
        let mut re = offer("c1", "bob", &moved);
        re.to_tag = Some(b"alice");
        let o = b.send(&re);
        assert!(o.sdp().contains("m=audio 30000 "), "{o:?}");
        let back = caller_sdp().replace("4000", "4002");
        let a = b.send(&answer("c1", "bob", "alice", &back));
        assert!(a.sdp().contains("m=audio 30002 "), "{a:?}");
        let s = &b.streams("c1")[0];
        assert_eq!(
            s.leg(Side::B).rtp_latch().sdp(),
            Some(sock("10.0.0.3:6000"))
        );
        assert_eq!(
            s.leg(Side::A).rtp_latch().sdp(),
            Some(sock("198.51.100.7:4002"))
        );
        assert_eq!(b.shard.counters().sessions_allocated, 1);
    }

    #[test]
    fn retransmission_is_answered_from_the_cache() {
        let mut b = Bench::new();
        let sdp = caller_sdp();
        let first = b.send_as("77_1", &offer("c1", "alice", &sdp));
        b.later(1);
        let again = b.send_as("77_1", &offer("c1", "alice", &sdp));
        assert_eq!(first, again);
        assert_eq!(b.engine.counters().retransmissions, 1);
        assert_eq!(b.shard.counters().sessions_allocated, 1);
        assert_eq!(b.engine.cached_replies(), 1);

        // The same cookie from another client is another request.
        b.source = sock("127.0.0.2:40000");
        let other = b.send_as("77_1", &offer("c1", "alice", &sdp));
        assert_eq!(read(&other).sdp, read(&first).sdp);
        assert_eq!(b.engine.counters().retransmissions, 1);

        // A delete retransmitted after the call is gone gets the first reply, not a warning.
        let d1 = b.send_as("77_2", &delete("c1", None, None));
        let d2 = b.send_as("77_2", &delete("c1", None, None));
        assert_eq!(d1, d2);
        assert_eq!(read(&d2).warning, None);

        // Cached replies expire.
        b.later(31);
        b.engine.handle_timeout(&mut b.shard, b.now);
        assert_eq!(b.engine.cached_replies(), 0);
    }

    #[test]
    fn reply_cache_is_bounded() {
        let config = NgConfig {
            reply_cache: 3,
            ..NgConfig::new(MEDIA)
        };
        let mut b = Bench::with(config, ShardConfig::new(30000, 30019));
        for i in 0..10 {
            let call = format!("c{i}");
            b.send(&delete(&call, None, None));
        }
        assert_eq!(b.engine.cached_replies(), 3);
    }

    #[test]
    fn answer_without_offer_is_an_unknown_call() {
        let mut b = Bench::new();
        let got = b.send(&answer("nope", "alice", "bob", &callee_sdp()));
        assert_eq!(got.error(), "Unknown call-id");
        assert!(b.shard.is_empty());
    }

    #[test]
    fn delete_of_an_unknown_call_warns_or_fails_when_fatal() {
        let mut b = Bench::new();
        let got = b.send(&delete("nope", Some("alice"), None));
        assert_eq!(got.result, ResultCode::Ok);
        assert_eq!(got.warning.as_deref(), Some(NOT_FOUND));
        let mut fatal = delete("nope", Some("alice"), None);
        fatal.flags.insert(Flag::Fatal);
        let got = b.send(&fatal);
        assert!(got.error().starts_with("Call-ID not found"), "{got:?}");
        assert_eq!(b.send(&query("nope")).error(), "Unknown call-id");
    }

    #[test]
    fn delete_for_another_fork_branch_leaves_the_call() {
        let mut b = Bench::new();
        established(&mut b);
        // The 487 of a cancelled branch names a to-tag the call never saw.
        let got = b.send(&delete("c1", Some("alice"), Some("branch2")));
        assert_eq!(got.warning.as_deref(), Some(NOT_FOUND));
        assert_eq!(b.engine.len(), 1);
        // Unknown from-tag: no match either.
        b.send(&delete("c1", Some("mallory"), None));
        assert_eq!(b.engine.len(), 1);
        // The BYE from the callee names both tags the other way round.
        let got = b.send(&delete("c1", Some("bob"), Some("alice")));
        assert_eq!(got.warning, None);
        assert!(b.engine.is_empty());
    }

    #[test]
    fn failure_before_any_answer_deletes_the_call() {
        let mut b = Bench::new();
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        // A 486 from the only branch: to-tag never seen, nobody answered.
        let got = b.send(&delete("c1", Some("alice"), Some("busy")));
        assert_eq!(got.warning, None, "{got:?}");
        assert!(b.engine.is_empty());
        assert_eq!(b.shard.ports_free(), PORTS);
    }

    #[test]
    fn a_full_table_refuses_new_calls() {
        let config = NgConfig {
            max_calls: 2,
            ..NgConfig::new(MEDIA)
        };
        let mut b = Bench::with(config, ShardConfig::new(30000, 30019));
        let sdp = caller_sdp();
        b.send(&offer("c1", "a1", &sdp)).sdp();
        b.send(&offer("c2", "a2", &sdp)).sdp();
        let got = b.send(&offer("c3", "a3", &sdp));
        assert_eq!(got.error(), "Parallel session limit reached");
        assert_eq!(b.engine.counters().rejected_full, 1);
        // Known calls still work.
        b.send(&offer("c1", "a1", &sdp)).sdp();
        // Room again once a call is gone.
        b.send(&delete("c2", None, None));
        b.send(&offer("c3", "a3", &sdp)).sdp();
        assert_eq!(b.engine.len(), 2);
    }

    #[test]
    fn running_out_of_ports_is_an_error_and_leaves_nothing() {
        let mut b = Bench::with(NgConfig::new(MEDIA), ShardConfig::new(30000, 30003));
        let sdp = caller_sdp();
        b.send(&offer("c1", "a1", &sdp)).sdp();
        let got = b.send(&offer("c2", "a2", &sdp));
        assert_eq!(got.error(), "Ran out of ports");
        assert_eq!(b.engine.len(), 1);
        assert_eq!(b.shard.counters().allocation_failures, 1);
    }

    #[test]
    fn idle_calls_expire_and_free_their_ports() {
        let mut b = Bench::new();
        let start = b.now;
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        b.send(&offer("c2", "carol", &caller_sdp())).sdp();
        assert_eq!(b.shard.ports_free(), PORTS - 8);
        assert_eq!(
            b.engine.poll_timeout(),
            Some(start + Duration::from_secs(60))
        );

        // Media on c2 keeps it alive; c1 has neither signal nor media.
        b.later(50);
        let ports = b.streams("c2")[0].leg(Side::A).ports().rtp();
        let mut pkt = rtp_packet(1);
        let _ = b
            .shard
            .on_packet(ports, sock("198.51.100.7:4000"), &mut pkt, b.now);
        b.later(9);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 0);
        b.later(1);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 1);
        assert_eq!(b.engine.len(), 1);
        assert_eq!(b.engine.counters().calls_expired, 1);
        assert_eq!(b.send(&query("c1")).error(), "Unknown call-id");
        // c2's deadline moved to its last packet + 60 s.
        assert_eq!(
            b.engine.poll_timeout(),
            Some(start + Duration::from_secs(110))
        );
        b.later(50);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 1);
        assert!(b.engine.is_empty());
        assert_eq!(b.engine.poll_timeout(), None);
        assert_eq!(b.shard.ports_free(), PORTS);
    }

    #[test]
    fn a_call_on_hold_gets_the_hold_timeout() {
        let mut b = Bench::new();
        let start = b.now;
        established(&mut b);
        let hold = caller_sdp().replace("a=sendrecv", "a=inactive");
        b.send(&offer("c1", "alice", &hold)).sdp();
        b.send(&answer(
            "c1",
            "alice",
            "bob",
            &callee_sdp().replace("t=0 0", "t=0 0\r\na=inactive"),
        ))
        .sdp();
        b.later(61);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 0);
        assert_eq!(
            b.engine.poll_timeout(),
            Some(start + Duration::from_secs(3600))
        );
        // Resumed: the short timeout again, from the resuming offer.
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        b.send(&answer("c1", "alice", "bob", &callee_sdp())).sdp();
        assert_eq!(
            b.engine.poll_timeout(),
            Some(b.now + Duration::from_secs(60))
        );
        b.later(60);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 1);
        assert_eq!(b.shard.ports_free(), PORTS);
    }

    #[test]
    fn delete_delay_keeps_the_call_then_releases_it() {
        let mut b = Bench::new();
        established(&mut b);
        let mut d = delete("c1", None, None);
        d.delete_delay = Some(5);
        assert_eq!(b.send(&d).result, ResultCode::Ok);
        // Still relaying and queryable, no longer listed.
        assert_eq!(b.shard.len(), 1);
        assert_eq!(b.send(&query("c1")).result, ResultCode::Ok);
        assert!(b.send(&Request::new(Command::List)).calls.is_empty());
        b.later(4);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 0);
        b.later(1);
        assert_eq!(b.engine.handle_timeout(&mut b.shard, b.now), 1);
        assert!(b.engine.is_empty());
        assert_eq!(b.shard.ports_free(), PORTS);
        assert_eq!(b.engine.counters().calls_expired, 0);

        // The configured default applies when the request names none, capped by the maximum.
        let config = NgConfig {
            delete_delay: Duration::from_secs(30),
            max_delete_delay: Duration::from_secs(10),
            ..NgConfig::new(MEDIA)
        };
        let mut b = Bench::with(config, ShardConfig::new(30000, 30019));
        established(&mut b);
        b.send(&delete("c1", None, None));
        assert_eq!(
            b.engine.poll_timeout(),
            Some(b.now + Duration::from_secs(10))
        );
        // Offered again under its own tags, it revives.
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        assert_eq!(b.send(&Request::new(Command::List)).calls, ["c1"]);
    }

    #[test]
    fn a_reoffer_with_more_streams_moves_to_a_larger_session() {
        let mut b = Bench::new();
        established(&mut b);
        let mut two = caller_sdp();
        two.push_str(&text(&[
            "m=video 4010 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ]));
        let o = b.send(&offer("c1", "alice", &two));
        // A new session: the next four pairs, streams in order, leg A then leg B.
        assert!(o.sdp().contains("m=audio 30006 "), "{o:?}");
        assert!(o.sdp().contains("m=video 30010 "), "{o:?}");
        assert_eq!(b.shard.len(), 2);
        let mut back = callee_sdp();
        back.push_str(&text(&["m=video 6010 RTP/AVP 96"]));
        let a = b.send(&answer("c1", "alice", "bob", &back));
        assert!(a.sdp().contains("m=audio 30004 "), "{a:?}");
        assert!(a.sdp().contains("m=video 30008 "), "{a:?}");
        // The old session is gone once answered.
        assert_eq!(b.shard.len(), 1);
        assert_eq!(b.shard.ports_free(), PORTS - 8);
        b.send(&delete("c1", None, None));
        assert_eq!(b.shard.ports_free(), PORTS);
    }

    #[test]
    fn a_forked_answer_replaces_the_first() {
        let mut b = Bench::new();
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        b.send(&answer("c1", "alice", "early", &callee_sdp())).sdp();
        let other = callee_sdp().replace("10.0.0.2", "10.0.0.9");
        b.send(&answer("c1", "alice", "final", &other)).sdp();
        let s = &b.streams("c1")[0];
        assert_eq!(
            s.leg(Side::B).rtp_latch().sdp(),
            Some(sock("10.0.0.9:6000"))
        );
        // The first branch's tag is no longer part of the call.
        b.send(&delete("c1", Some("alice"), Some("early")));
        assert_eq!(b.engine.len(), 1);
    }

    #[test]
    fn malformed_datagrams_get_error_replies_or_nothing() {
        let mut b = Bench::new();
        // No cookie: nothing can be matched, nothing is sent.
        for raw in [
            &b""[..],
            b"nospace",
            b" d7:command4:pinge",
            b"\x01 d7:command4:pinge",
        ] {
            assert!(b.raw(raw).is_empty(), "{raw:?}");
        }
        assert_eq!(b.engine.counters().dropped, 4);
        let cases: [(&[u8], &str); 9] = [
            (b"c1 xyz", "Could not decode bencode dictionary"),
            (b"c1 le", "Could not decode bencode dictionary"),
            (b"c1 d3:foo3:bare", "No command in message"),
            (b"c1 d7:command3:fooe", "Unrecognized command"),
            (b"c1 d7:command5:offere", "No SDP body in message"),
            (b"c1 d7:command10:block DTMF7:call-id1:xe", "unsupported"),
            (
                b"c1 d7:command5:offer7:call-id1:x8:from-tag1:a3:sdp5:helloe",
                "Failed to parse SDP",
            ),
            (
                b"c1 d7:command5:offer7:call-id1:x8:from-tag0:3:sdp3:v=0e",
                "Empty Call-ID or tag",
            ),
            (
                b"c1 d7:command6:answer7:call-id1:x8:from-tag1:a3:sdp3:v=0e",
                "No to-tag in message",
            ),
        ];
        for (i, (raw, reason)) in cases.into_iter().enumerate() {
            // A cookie of its own each: offers with the same cookie would be retransmissions.
            b.source = SocketAddr::new(b.source.ip(), 41000 + i as u16);
            let got = read(&b.raw(raw));
            assert_eq!(got.cookie, "c1");
            assert!(got.error().starts_with(reason), "{got:?} for {raw:?}");
        }
        // A long Call-ID is refused, not stored.
        let long = "x".repeat(MAX_ID_LEN + 1);
        let got = b.send(&offer(&long, "alice", &caller_sdp()));
        assert_eq!(got.error(), "Call-ID or tag too long");
        // An SDP the relay cannot anchor.
        let multicast = caller_sdp().replace("198.51.100.7", "224.2.1.1");
        let got = b.send(&offer("c2", "alice", &multicast));
        assert!(got.error().starts_with("Unsupported SDP"), "{got:?}");
        assert!(b.engine.is_empty());
        assert!(b.shard.is_empty());
        // Garbage of every length never panics and never leaves a call.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            let mut raw = b"k ".to_vec();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"d7:command5:offerle0123456789:ie";
                raw.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let out = b.raw(&raw);
            assert!(out.starts_with(b"k "));
        }
        assert!(b.shard.is_empty());
    }

    #[test]
    fn a_reply_too_large_for_a_datagram_is_an_error() {
        let mut b = Bench::new();
        // A request near the size limit whose SDP the rewrite grows past one datagram: sixteen
        // c= lines with a short address, each rewritten to the relay's longer one.
        let mut big = caller_sdp().replace("198.51.100.7", "1.2.3.4");
        for k in 0..15 {
            big.push_str(&format!(
                "m=audio 0 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\na=x:{k}\r\n"
            ));
        }
        let size = |sdp: &str| {
            let mut raw = Vec::new();
            encode_request(b"big", &offer("c1", "alice", sdp), &mut raw);
            raw.len()
        };
        while size(&big) < 65_440 {
            big.push_str("a=x-pad:0123456789012345678901234567890123456789\r\n");
        }
        while size(&big) < 65_500 {
            big.push_str("a=x:0\r\n");
        }
        assert!(size(&big) <= 65_535);
        let got = b.send(&offer("c1", "alice", &big));
        assert_eq!(got.error(), "Reply too large for one datagram");
    }

    #[test]
    fn ping_list_and_limit() {
        let mut b = Bench::new();
        assert_eq!(
            b.send(&Request::new(Command::Ping)).result,
            ResultCode::Pong
        );
        for i in 0..4 {
            let (call, tag) = (format!("call-{i}"), format!("t{i}"));
            b.send(&offer(&call, &tag, &caller_sdp())).sdp();
        }
        let mut all = b.send(&Request::new(Command::List)).calls;
        all.sort();
        assert_eq!(all, ["call-0", "call-1", "call-2", "call-3"]);
        let mut list = Request::new(Command::List);
        list.limit = Some(2);
        assert_eq!(b.send(&list).calls.len(), 2);
        assert_eq!(b.engine.release_all(&mut b.shard, b.now), 4);
        assert!(b.engine.is_empty());
        assert_eq!(b.shard.ports_free(), PORTS);
        assert!(b.send(&Request::new(Command::List)).calls.is_empty());
    }

    #[test]
    fn ice_is_removed_unless_forced() {
        let mut b = Bench::new();
        let mut ice = caller_sdp();
        ice.push_str(&text(&[
            "a=ice-ufrag:abcd",
            "a=ice-pwd:0123456789012345678901",
            "a=candidate:1 1 UDP 2130706431 198.51.100.7 4000 typ host",
        ]));
        let got = b.send(&offer("c1", "alice", &ice));
        assert!(!got.sdp().contains("a=candidate"), "{got:?}");
        assert_eq!(got.warning, None);
        let mut forced = offer("c2", "carol", &ice);
        forced.ice = Some(Ice::Force);
        let got = b.send(&forced);
        assert!(got.sdp().contains("a=candidate:1 1 UDP"), "{got:?}");
        assert!(got.warning.unwrap().contains("ICE"));
    }

    #[test]
    fn address_options_choose_the_remote() {
        let mut b = Bench::new();
        let private = caller_sdp().replace("198.51.100.7", "192.168.1.20");
        let mut o = offer("c1", "alice", &private);
        o.flags.insert(Flag::SipSourceAddress);
        o.received_from = Some(ReceivedFrom {
            family: Some(AddressFamily::Ip4),
            address: "198.51.100.99".parse().unwrap(),
        });
        b.send(&o).sdp();
        let s = &b.streams("c1")[0];
        assert_eq!(
            s.leg(Side::A).rtp_latch().sdp(),
            Some(sock("198.51.100.99:4000"))
        );

        // trust-address (the default) keeps the SDP's even with received-from.
        let mut o = offer("c2", "carol", &private);
        o.received_from = Some(ReceivedFrom {
            family: None,
            address: "198.51.100.99".parse().unwrap(),
        });
        b.send(&o).sdp();
        let s = &b.streams("c2")[0];
        assert_eq!(
            s.leg(Side::A).rtp_latch().sdp(),
            Some(sock("192.168.1.20:4000"))
        );

        // media-address overrides both.
        let mut o = offer("c3", "dave", &private);
        o.media_address = Some("198.51.100.50".parse().unwrap());
        b.send(&o).sdp();
        let s = &b.streams("c3")[0];
        assert_eq!(
            s.leg(Side::A).rtp_latch().sdp(),
            Some(sock("198.51.100.50:4000"))
        );
    }

    #[test]
    fn replace_and_rtcp_options_edit_the_sdp() {
        let mut b = Bench::with(NgConfig::new(MEDIA), ShardConfig::new(30000, 30099));
        let base = caller_sdp();
        let mut o = offer("c1", "alice", &base);
        o.replace.insert(Replace::Origin);
        o.replace.insert(Replace::SessionConnection);
        let got = b.send(&o);
        assert!(
            got.sdp()
                .contains("o=alice 2890844526 2890844526 IN IP4 203.0.113.10"),
            "{got:?}"
        );

        // The relay's own o= per side, with a version that moves only on change.
        let base = caller_sdp();
        let mut o = offer("c2", "carol", &base);
        o.replace.insert(Replace::OriginFull);
        let first = b.send(&o).sdp().to_owned();
        let again = b.send(&o).sdp().to_owned();
        assert_eq!(first, again);
        assert!(first.contains("o=- "), "{first}");
        assert!(!first.contains("alice"), "{first}");

        // rtcp-mux demux: not offered onward.
        let mut muxed = caller_sdp();
        muxed.push_str("a=rtcp-mux\r\n");
        let mut o = offer("c3", "dave", &muxed);
        o.rtcp_mux.insert(RtcpMux::Demux);
        let got = b.send(&o);
        assert!(!got.sdp().contains("rtcp-mux"), "{got:?}");

        // rtcp-mux offer: offered onward, and kept out of the answer to a caller that did not ask.
        let base = caller_sdp();
        let mut o = offer("c4", "erin", &base);
        o.rtcp_mux.insert(RtcpMux::Offer);
        let got = b.send(&o);
        assert!(got.sdp().contains("a=rtcp-mux"), "{got:?}");
        let mut back = callee_sdp();
        back.push_str("a=rtcp-mux\r\n");
        let got = b.send(&answer("c4", "erin", "frank", &back));
        assert!(!got.sdp().contains("rtcp-mux"), "{got:?}");
        assert!(b.streams("c4")[0].leg(Side::B).rtcp_mux());
        assert!(!b.streams("c4")[0].leg(Side::A).rtcp_mux());

        // no-rtcp-attribute.
        let mut with_rtcp = caller_sdp();
        with_rtcp.push_str("a=rtcp:4001\r\n");
        let mut o = offer("c5", "gina", &with_rtcp);
        let got = b.send(&o);
        assert!(got.sdp().contains("a=rtcp:30019"), "{got:?}");
        o.call_id = Some(b"c6");
        o.flags.insert(Flag::NoRtcpAttribute);
        let got = b.send(&o);
        assert!(!got.sdp().contains("a=rtcp"), "{got:?}");
    }

    #[test]
    fn query_reports_unix_times_from_the_wall_clock() {
        let mut b = Bench::new();
        b.engine
            .set_wall_clock(b.now, Duration::from_secs(1_700_000_000));
        b.later(3);
        b.send(&offer("c1", "alice", &caller_sdp())).sdp();
        let q = b.send(&query("c1"));
        assert_eq!(q.created, Some(1_700_000_003));
    }

    #[test]
    fn labels_and_tags_are_reported() {
        let mut b = Bench::new();
        let base = caller_sdp();
        let mut o = offer("c1", "alice", &base);
        o.label = Some(b"caller");
        b.send(&o).sdp();
        let mut raw = Vec::new();
        encode_request(b"q", &query("c1"), &mut raw);
        let reply = b.raw(&raw);
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.contains("5:label6:caller"), "{reply}");
        // The callee has not signalled yet: only the caller's tag.
        assert!(!reply.contains("in dialogue with"), "{reply}");
    }
}
