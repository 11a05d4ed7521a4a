//! The ng engine of one worker: requests in, replies out, calls kept in [`super::calls`] and
//! media reached through the worker's relay. See the [`ng`](crate::ng) module docs for the behaviour.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::codec::{
    encode_error, encode_reply, AddressFamily, CallStats, Codec, Command, Counters, Field, Flag,
    Ice, Limits, MediaStats, Message, NgError, Replace, Reply, Request, RtcpMux, StreamStats,
    TagStats, Totals, TransportProtocol,
};
use sbc_sip::sdp::{Scope, Sdp};

use super::bridge;
use super::calls::{
    add_leg, index, media_flags, stream_flags, streams_of, Call, CallTable, Failure, ReplyCache,
    MAX_ID_LEN,
};
use crate::media::anchor::{
    self, AnchorError, MediaPlan, NonRtp, OriginMode, OriginState, PlanOptions, RemoteAddress,
    RewriteOptions,
};
use crate::media::{
    Endpoint, LegStats, MediaControl, MediaError, MediaSide, RelayPorts, SessionHandle,
};

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

/// The rtpengine-compatible control engine of one worker. See the [module docs](crate::ng).
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
        relay: &mut dyn MediaControl,
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
            Command::Offer => self.offer(relay, &request, now).map(|(sdp, warnings)| {
                let warning = warnings.text();
                let reply = Reply::Sdp {
                    sdp: &sdp,
                    warning: warning.as_deref(),
                };
                encode_reply(cookie, &reply, out);
            }),
            Command::Answer => self.answer(relay, &request, now).map(|(sdp, warnings)| {
                let warning = warnings.text();
                let reply = Reply::Sdp {
                    sdp: &sdp,
                    warning: warning.as_deref(),
                };
                encode_reply(cookie, &reply, out);
            }),
            Command::Delete => self.delete(relay, &request, now, cookie, out),
            Command::Query => self.query(relay, &request, cookie, out),
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
    pub fn handle_timeout(&mut self, relay: &mut dyn MediaControl, now: Instant) -> usize {
        self.cache.purge(now);
        let mut released = 0;
        while let Some(key) = self.calls.pop_due(now) {
            let Some(call) = self.calls.get(&key) else {
                continue;
            };
            if !call.deleted {
                let until = call
                    .last_activity(relay)
                    .checked_add(self.idle_timeout(call));
                if let Some(until) = until.filter(|&t| t > now) {
                    self.calls.set_deadline_popped(&key, until);
                    continue;
                }
                self.counters.calls_expired += 1;
            }
            if let Some(mut call) = self.calls.remove(&key) {
                call.release(relay, now);
                released += 1;
            }
        }
        released
    }

    /// Release every call (shutdown). Returns how many.
    pub fn release_all(&mut self, relay: &mut dyn MediaControl, now: Instant) -> usize {
        let mut released = 0;
        for mut call in self.calls.drain() {
            call.release(relay, now);
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
        relay: &mut dyn MediaControl,
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
        let plan = anchor::plan(&sdp, &self.plan_options(req, relay, &mut warnings))
            .map_err(|e| sdp_failure(&e))?;
        let rewrite = self.rewrite_options(req, &sdp, &mut warnings);

        // A deleted call offered again under a new tag starts over; under its own tags it revives.
        let stale = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.deleted && c.side_of(from).is_none());
        if stale {
            if let Some(mut old) = self.calls.remove(call_id) {
                old.release(relay, now);
            }
        }
        let created = self.calls.get(call_id).is_none();
        if created {
            if self.calls.len() >= self.config.max_calls {
                self.handle_timeout(relay, now);
            }
            if self.calls.len() >= self.config.max_calls {
                self.counters.rejected_full += 1;
                return Err("Parallel session limit reached".into());
            }
            let mut call = Call::new(now, session_id(call_id, self.calls.seq));
            call.set_tag(MediaSide::A, from);
            if let Some(to) = to {
                call.set_tag(MediaSide::B, to);
            }
            self.calls.insert(call_id, call, now);
            self.counters.calls_created += 1;
        }
        let media_ip = self.config.media_ip;
        let result = match self.calls.get_mut(call_id) {
            Some(call) => offer_on(
                call,
                relay,
                req,
                from,
                to,
                &plan,
                &mut sdp,
                media_ip,
                &rewrite,
                now,
                &mut warnings,
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
                        call.release(relay, now);
                    }
                }
                Err(e)
            }
        }
    }

    fn answer(
        &mut self,
        relay: &mut dyn MediaControl,
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
        let plan = anchor::plan(&sdp, &self.plan_options(req, relay, &mut warnings))
            .map_err(|e| sdp_failure(&e))?;
        let rewrite = self.rewrite_options(req, &sdp, &mut warnings);
        let media_ip = self.config.media_ip;
        let Some(call) = self.calls.get_mut(call_id) else {
            return Err("Unknown call-id".into());
        };
        answer_on(
            call, relay, req, from, to, &plan, &mut sdp, media_ip, &rewrite, now,
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
        relay: &dyn MediaControl,
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
            max_streams: relay.max_streams(),
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
            // RTP <-> SDES-SRTP is bridged (see `bridge`); DTLS-SRTP is not.
            let dtls = matches!(
                proto,
                TransportProtocol::UdpTlsRtpSavp | TransportProtocol::UdpTlsRtpSavpf
            );
            let converts = dtls
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
        relay: &mut dyn MediaControl,
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
            self.encode_stats(call, relay, cookie, None, out);
        }
        let first = self.calls.get(call_id).is_some_and(|c| !c.deleted);
        if first {
            self.counters.calls_deleted += 1;
        }
        if delay.is_zero() {
            if let Some(mut call) = self.calls.remove(call_id) {
                call.release(relay, now);
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
        relay: &dyn MediaControl,
        req: &Request<'_>,
        cookie: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        let call_id = id(req.call_id, NgError::Missing(Field::CallId))?;
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| Failure::from("Unknown call-id"))?;
        self.encode_stats(call, relay, cookie, None, out);
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
        relay: &dyn MediaControl,
        cookie: &[u8],
        warning: Option<&str>,
        out: &mut Vec<u8>,
    ) {
        let streams = call
            .session
            .and_then(|h| streams_of(relay, h))
            .unwrap_or_default();
        let mut totals = call.carried;
        if let Some(old) = call.retired.and_then(|h| streams_of(relay, h)) {
            for s in &old {
                add_leg(&mut totals, s.leg(MediaSide::A));
                add_leg(&mut totals, s.leg(MediaSide::B));
            }
        }
        // Two packet streams (RTP, RTCP) per media section, per side.
        let per_side: [Vec<StreamStats<'_>>; 2] = [MediaSide::A, MediaSide::B].map(|side| {
            streams
                .iter()
                .flat_map(|s| {
                    let leg = s.leg(side);
                    add_leg(&mut totals, leg);
                    self.packet_streams(leg)
                })
                .collect()
        });
        let medias: [Vec<MediaStats<'_>>; 2] = [MediaSide::A, MediaSide::B].map(|side| {
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
        let tags: Vec<TagStats<'_>> = [MediaSide::A, MediaSide::B]
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
    fn packet_streams(&self, leg: &LegStats) -> [StreamStats<'static>; 2] {
        let last_packet = leg.last_packet.map(|t| self.unix(t).0);
        let rtcp_port = if leg.rtcp_mux {
            leg.ports.rtp()
        } else {
            leg.ports.rtcp()
        };
        let stream = |rtp: bool, port: u16, remote: &Endpoint, stats: Counters| StreamStats {
            local_port: Some(port),
            endpoint: remote.destination(),
            advertised_endpoint: remote.sdp,
            crypto_suite: None,
            last_packet,
            flags: stream_flags(
                rtp,
                remote.destination().is_some(),
                remote.learned.is_some(),
            ),
            stats,
        };
        [
            stream(
                true,
                leg.ports.rtp(),
                &leg.rtp,
                Counters {
                    packets: leg.packets,
                    bytes: leg.bytes,
                    errors: leg.dropped,
                },
            ),
            stream(
                false,
                rtcp_port,
                &leg.rtcp,
                Counters {
                    packets: leg.rtcp_packets,
                    bytes: leg.rtcp_bytes,
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

/// The offer's work on its call: side, session, remotes, rewrite.
#[allow(clippy::too_many_arguments)]
fn offer_on(
    call: &mut Call,
    relay: &mut dyn MediaControl,
    req: &Request<'_>,
    from: &[u8],
    to: Option<&[u8]>,
    plan: &MediaPlan,
    sdp: &mut Sdp<'_>,
    media_ip: IpAddr,
    rewrite: &RewriteOptions,
    now: Instant,
    warnings: &mut Warnings,
) -> Result<(), Failure> {
    let sender = call.offer_side(from, to)?;
    let receiver = sender.other();
    let needed = plan.stream_count();
    let have = call
        .session
        .and_then(|h| relay.stream_count(h).ok())
        .unwrap_or(0);
    if needed > have {
        let fresh = relay.allocate(now, needed).map_err(allocation_failure)?;
        if let Some(old) = call.session.replace(fresh) {
            if let Some(older) = call.retired.replace(old) {
                release_counted(relay, older, &mut call.carried, now);
            }
        }
    }
    let ports = relay_ports(relay, call.session, plan, sender, signal_of(req), now)?;

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
    let sdes = bridge::SdesOptions::of(req);
    let mut off = false;
    let was = call.sdes;
    call.sdes = bridge::offer_plans(req, &sdes, plan, call.sdes, sender, &mut off);
    if was.is_some() && call.sdes.is_none() {
        // The bridge ends: the legs relay as they are again, and a later bridge starts afresh.
        if let Some(h) = call.session {
            bridge::unstage(relay, h)?;
        }
        call.srtp = None;
    }
    if off {
        warnings.push("SDES-off: the relay speaks no DTLS-SRTP; protocol unchanged");
    }
    if let Some(plans) = call.sdes {
        let state = call.srtp.get_or_insert_with(Box::default);
        bridge::offer(state, plans, &sdes, sdp, plan, sender)?;
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
    relay: &mut dyn MediaControl,
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
        .and_then(|h| relay.stream_count(h).ok())
        .unwrap_or(0);
    if plan.stream_count() > have {
        return Err(
            "Incomplete SDP specification: the answer has more media streams than the offer".into(),
        );
    }
    let ports = relay_ports(relay, call.session, plan, answerer, signal_of(req), now)?;
    if let (Some(plans), Some(state)) = (call.sdes, call.srtp.as_deref_mut()) {
        bridge::answer(state, plans, relay, call.session, sdp, plan, answerer)?;
    }
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
        release_counted(relay, old, &mut call.carried, now);
    }
    Ok(())
}

/// The address the proxy received the SIP message from (`received-from`): in the learning window
/// a source from its IP outranks a stranger that sent first.
fn signal_of(req: &Request<'_>) -> Option<IpAddr> {
    req.received_from.map(|r| r.address)
}

/// Learn the sender's addresses on its side and return the relay's ports toward the other side.
fn relay_ports(
    relay: &mut dyn MediaControl,
    session: Option<SessionHandle>,
    plan: &MediaPlan,
    sender: MediaSide,
    signal: Option<IpAddr>,
    now: Instant,
) -> Result<Vec<Option<RelayPorts>>, Failure> {
    let Some(handle) = session else {
        return Ok(Vec::new());
    };
    plan.set_remotes_from(relay, handle, sender, signal, now)
        .map_err(|e| Failure::from(format!("Media relay error: {e}")))?;
    relay
        .stream_count(handle)
        .map_err(|e| Failure::from(format!("Media relay error: {e}")))?;
    plan.local_ports(relay, handle, sender.other())
        .map_err(|e| sdp_failure(&e))
}

fn finish_rewrite(
    sdp: &mut Sdp<'_>,
    media_ip: IpAddr,
    ports: &[Option<RelayPorts>],
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
    relay: &mut dyn MediaControl,
    handle: SessionHandle,
    carried: &mut Totals,
    now: Instant,
) {
    if let Some(streams) = streams_of(relay, handle) {
        for s in &streams {
            add_leg(carried, s.leg(MediaSide::A));
            add_leg(carried, s.leg(MediaSide::B));
        }
    }
    // An unknown handle was released already.
    let _ = relay.release(handle, now);
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

fn allocation_failure(e: MediaError) -> Failure {
    match e {
        MediaError::PortsExhausted { .. } => "Ran out of ports".into(),
        other => format!("Media relay error: {other}").into(),
    }
}

#[cfg(test)]
mod tests;
