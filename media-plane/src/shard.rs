//! [`MediaShard`]: one worker's media relay, sans-IO.
//!
//! A shard owns one worker's slice of the relay ports ([`PortAllocator`]) and the media sessions
//! allocated on that worker. A session is one call: up to `max_streams` streams (m= lines); a stream
//! has two legs, [`Side::A`] and [`Side::B`], each with its own relay port pair, latch state, remote
//! address and reception statistics. A packet received on a leg's port is relayed out of the other
//! leg's matching port: RTP to RTP, RTCP to RTCP, and on an rtcp-mux leg both on its RTP port.
//!
//! Drive contract (the driver is the worker's event loop; this type never reads a clock, never
//! touches a socket and is owned by exactly one thread):
//! - signalling calls [`MediaShard::allocate_session`] when it builds an offer,
//!   [`MediaShard::set_remote`] at every offer/answer that names a remote address (this opens the
//!   latch window), and [`MediaShard::release`] when the call ends;
//! - for each received datagram the driver calls [`MediaShard::on_packet`] with the local port, the
//!   source address and the buffer, and sends the buffer as [`Action::Forward`] says, or drops it;
//!   then it calls [`MediaShard::next_packet`] until `None` and sends what each gives the same way
//!   (a codec stage repacketising to a shorter packet time has more than one packet for one in);
//! - about once a second the driver calls [`MediaShard::poll_idle`] and acts on the sessions that
//!   carry no media (teardown) or media in one direction only (report).
//!
//! Hot path: [`MediaShard::on_packet`] is O(1) and allocates nothing. The local port indexes a flat
//! table (`port - first port of the slice`) that yields the session slot, the stream and the side;
//! the slot's generation check is done at the control calls, and releasing a session clears its
//! table entries, so a late packet for a released session finds nothing. Sessions live in a
//! Vec-backed slab addressed by generation-checked [`SessionHandle`]s; there is no hash map and no
//! lock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::codec::{CodecCounters, CodecPlan, CodecStage, StageResult, Way};
use crate::dtmf_relay::{Inbound, LegDtmf};
use crate::latch::{Latch, LatchMode, LatchVerdict};
use crate::ports::{PortAllocator, PortPair};
use crate::rtp::{is_rtcp, RtcpCompound, RtcpPacket, RtpHeader};
use crate::stage::{SrtpCounters, Stage};
use crate::stats::StreamStats;
use crate::Error;

pub use crate::action::{Action, DropReason};

mod dtmf;

/// One of the two legs of a stream. The B2BUA's leg A faces the caller, leg B the callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg.
    A,
    /// The callee's leg.
    B,
}

impl Side {
    /// The opposite leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// How much of each packet the relay checks before forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Validation {
    /// Plain RTP/RTCP: the RTP header and padding, and the whole RTCP compound.
    #[default]
    Full,
    /// SRTP/SRTCP relayed without decryption: the RTP header, and the first RTCP packet's header
    /// (the rest of an SRTCP compound, and RTP padding, are encrypted).
    HeaderOnly,
    /// Not RTP at all (T.38 over UDPTL, other `udp` media): relayed as opaque datagrams, latched
    /// like RTP, counted but not parsed.
    Opaque,
}

/// Settings of one shard. [`ShardConfig::new`] gives the defaults for a port slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// First port of the slice (even).
    pub port_min: u16,
    /// Last port of the slice.
    pub port_max: u16,
    /// How long a released pair waits before reuse. Default 5 s: longer than any jitter buffer or
    /// network delay, while at 100 calls per second and two pairs per call it keeps about 1000
    /// pairs out of use.
    pub quarantine: Duration,
    /// Length of the learning window opened at each offer/answer. Default 10 s: endpoints start
    /// sending within a second of the answer; a re-INVITE opens a new window.
    pub latch_window: Duration,
    /// What happens to packets from a source other than the latched one. Default strict: dropped.
    pub latch_mode: LatchMode,
    /// Most streams (m= lines) per session. Default 8.
    pub max_streams: usize,
    /// Packet checks before forwarding. Default [`Validation::Full`].
    pub validation: Validation,
    /// A stream is reported one-way when one leg sent within this time and the other sent nothing
    /// for at least this long. Default 10 s.
    pub one_way_timeout: Duration,
}

impl ShardConfig {
    /// Defaults (see each field) for the slice `[port_min, port_max]`.
    pub fn new(port_min: u16, port_max: u16) -> Self {
        Self {
            port_min,
            port_max,
            quarantine: Duration::from_secs(5),
            latch_window: Duration::from_secs(10),
            latch_mode: LatchMode::Strict,
            max_streams: 8,
            validation: Validation::Full,
            one_way_timeout: Duration::from_secs(10),
        }
    }
}

/// A remote endpoint as its SDP describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteSdp {
    /// c= address and m= port. Port 0 or an unspecified IP: no destination until one is learned.
    pub rtp: SocketAddr,
    /// a=rtcp (RFC 3605); `None`: RTP port + 1 (RFC 3550 §11).
    pub rtcp: Option<SocketAddr>,
    /// a=rtcp-mux (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
}

impl From<SocketAddr> for RemoteSdp {
    fn from(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            rtcp: None,
            rtcp_mux: false,
        }
    }
}

impl RemoteSdp {
    fn rtcp_addr(&self) -> Option<SocketAddr> {
        if self.rtcp_mux {
            return None;
        }
        self.rtcp.or_else(|| {
            let port = self.rtp.port();
            (port != 0)
                .then(|| port.checked_add(1))
                .flatten()
                .map(|p| SocketAddr::new(self.rtp.ip(), p))
        })
    }
}

/// A session of this shard. Handles of released sessions are refused (generation check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionHandle {
    index: u32,
    generation: u32,
}

impl SessionHandle {
    /// The handle as one number, for a control layer that keeps handles of its own type.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The handle [`SessionHandle::to_bits`] made. Any number is safe: one that names no live
    /// session of this shard is refused like a released handle.
    pub fn from_bits(bits: u64) -> Self {
        Self {
            index: (bits & u64::from(u32::MAX)) as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// Something [`MediaShard::poll_idle`] found. Each is reported once per episode: again only after
/// media resumed in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleEvent {
    /// No packet on any leg of the session for at least the timeout, counted from the last packet or
    /// the last offer/answer, whichever is later. The signalling usually ends the call.
    NoMedia {
        /// The session.
        session: SessionHandle,
        /// Time since the last packet or offer/answer.
        quiet: Duration,
    },
    /// In one stream, one leg sends and the other has sent nothing for
    /// [`ShardConfig::one_way_timeout`] (one-way audio: a NAT or firewall problem on that side).
    OneWay {
        /// The session.
        session: SessionHandle,
        /// The stream index.
        stream: usize,
        /// The leg that is silent.
        silent: Side,
    },
}

/// Counters of one shard, written by its worker only; the scrape sums the shards' copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Packets relayed.
    pub forwarded: u64,
    /// Bytes relayed.
    pub forwarded_bytes: u64,
    /// Sessions allocated.
    pub sessions_allocated: u64,
    /// Sessions released.
    pub sessions_released: u64,
    /// Allocations refused for lack of ports.
    pub allocation_failures: u64,
    /// No-media episodes reported.
    pub no_media: u64,
    /// One-way episodes reported.
    pub one_way: u64,
    /// SRTP stages: packets passed and refused by reason, summed over every stream.
    pub srtp: SrtpCounters,
    /// Codec stages: frames transcoded, DTMF events relayed, generated, detected.
    pub codec: CodecCounters,
    /// Digits queued by the signalling and played as RFC 4733 events ([`MediaShard::send_dtmf`]).
    pub dtmf_played: u64,
    /// Telephone-events reported to the signalling ([`MediaShard::report_dtmf`]).
    pub dtmf_reported: u64,
    /// In-band digits heard in an `inband` leg's audio and reported ([`MediaShard::hear_dtmf`]).
    pub dtmf_heard: u64,
    /// Reported telephone-events dropped because the queue was full ([`DIGIT_QUEUE`]).
    pub dtmf_report_overflow: u64,
    dropped: [u64; DropReason::COUNT],
}

impl ShardCounters {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }
}

/// One leg of a stream: the relay's port pair facing one remote, and what came from that remote.
#[derive(Debug)]
pub struct Leg {
    ports: PortPair,
    rtcp_mux: bool,
    remote_set: bool,
    rtp: Latch,
    rtcp: Latch,
    rx: StreamStats,
    forwarded: u64,
    dropped: u64,
    /// What is done to the packets arriving on this leg before they leave by the other.
    stage: Stage,
    /// The SRTP counters of the stages this leg had before the one it has.
    retired: SrtpCounters,
    /// DTMF interworking with the signalling (SIP INFO), when set up.
    dtmf: Option<Box<LegDtmf>>,
}

impl Leg {
    fn new(ports: PortPair, mode: LatchMode) -> Self {
        Self {
            ports,
            rtcp_mux: false,
            remote_set: false,
            rtp: Latch::new(mode),
            rtcp: Latch::new(mode),
            rx: StreamStats::new(),
            forwarded: 0,
            dropped: 0,
            stage: Stage::Plain,
            retired: SrtpCounters::default(),
            dtmf: None,
        }
    }

    /// The relay's local ports for this leg (to write into the SDP sent to its remote).
    pub fn ports(&self) -> PortPair {
        self.ports
    }

    /// The remote negotiated rtcp-mux.
    pub fn rtcp_mux(&self) -> bool {
        self.rtcp_mux
    }

    /// Latch state of the RTP port (and of RTCP on an rtcp-mux leg).
    pub fn rtp_latch(&self) -> &Latch {
        &self.rtp
    }

    /// Latch state of the RTCP port.
    pub fn rtcp_latch(&self) -> &Latch {
        &self.rtcp
    }

    /// What arrived from this leg's remote.
    pub fn rx(&self) -> &StreamStats {
        &self.rx
    }

    /// Packets from this leg's remote relayed to the other leg.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Packets arriving on this leg's ports that were dropped (malformed, wrong source, no
    /// destination, refused by the stage).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The stage run over the packets arriving on this leg.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The SRTP counters of the packets arriving on this leg, over every stage it has had
    /// (a re-key or the answer replaces the stage, not the counts).
    pub fn srtp_counters(&self) -> SrtpCounters {
        let mut c = self.retired;
        c.add(&self.stage.srtp_counters());
        c
    }
}

/// One media stream (m= line): two legs.
#[derive(Debug)]
pub struct Stream {
    a: Leg,
    b: Leg,
    clock_rate: u32,
    /// The checks for this stream (the shard's default until [`MediaShard::set_validation`]).
    validation: Validation,
    /// The later of the allocation and the last offer/answer on either leg.
    negotiated: Instant,
    one_way: Option<Side>,
    /// Transcoding and DTMF interworking, when the legs negotiated different formats.
    codec: Option<Box<CodecStage>>,
}

impl Stream {
    /// The leg on `side`.
    pub fn leg(&self, side: Side) -> &Leg {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Clock rate used for jitter (0: unknown, no jitter).
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn last_packet(&self) -> Option<Instant> {
        self.a.rx.last_packet().max(self.b.rx.last_packet())
    }

    /// The codec stage, when the legs negotiated different formats.
    pub fn codec(&self) -> Option<&CodecStage> {
        self.codec.as_deref()
    }
}

#[derive(Debug)]
struct Session {
    streams: Vec<Stream>,
    last_signal: Instant,
    idle_reported: bool,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

/// Where a local port leads: a slab slot, a stream, a side. Whether it is the RTP or the RTCP
/// port is the port's parity.
#[derive(Clone, Copy, Debug)]
struct Route {
    slot: u32,
    stream: u16,
    side: Side,
}

/// Kind of a received packet, from the port it came in on and (on an RTP port) its second octet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtp,
    Rtcp,
}

/// One worker's media relay. See the module doc.
#[derive(Debug)]
pub struct MediaShard {
    config: ShardConfig,
    ports: PortAllocator,
    /// Indexed by `local port - first port of the slice`.
    routes: Vec<Option<Route>>,
    slots: Vec<Slot>,
    vacant: Vec<u32>,
    live: usize,
    scratch: Vec<PortPair>,
    counters: ShardCounters,
    /// The stream and direction of the last packet, when its codec stage has more packets due
    /// ([`MediaShard::next_packet`]).
    more: Option<Route>,
    /// Telephone-events reported for the signalling ([`MediaShard::poll_dtmf`]), bounded.
    digits: std::collections::VecDeque<DtmfDigit>,
}

/// Most reported digits waiting for [`MediaShard::poll_dtmf`]; later ones are counted
/// ([`ShardCounters::dtmf_report_overflow`]) and dropped.
pub const DIGIT_QUEUE: usize = 256;

/// A telephone-event (RFC 4733) received on a leg whose events are reported
/// ([`MediaShard::report_dtmf`]): once per event, on its first end packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfDigit {
    /// The session.
    pub session: SessionHandle,
    /// The stream index.
    pub stream: usize,
    /// The leg it came from.
    pub from: Side,
    /// The event code (0-15: `0`-`9`, `*`, `#`, `A`-`D`).
    pub event: u8,
    /// Its duration in timestamp units.
    pub duration: u16,
}

impl MediaShard {
    /// A shard over the configured port slice, with no session. Fails when the slice holds no
    /// RTP/RTCP pair.
    pub fn new(config: ShardConfig) -> Result<Self, Error> {
        let ports = PortAllocator::new(config.port_min, config.port_max, config.quarantine)?;
        let (min, max) = ports.range();
        let table_len = usize::from(max - min) + 1;
        // Every session holds at least two pairs, so this many slots is the most ever needed.
        let max_sessions = ports.capacity() / 2 + 1;
        Ok(Self {
            config,
            ports,
            routes: vec![None; table_len],
            slots: Vec::with_capacity(max_sessions),
            vacant: Vec::with_capacity(max_sessions),
            live: 0,
            scratch: Vec::with_capacity(2 * config.max_streams),
            digits: std::collections::VecDeque::new(),
            counters: ShardCounters::default(),
            more: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No live session.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Ports not held by any session (two per pair; pairs still in quarantine included).
    pub fn ports_free(&self) -> usize {
        2 * (self.ports.capacity() - self.ports.in_use())
    }

    /// The port allocator (capacity, quarantine, double frees).
    pub fn ports(&self) -> &PortAllocator {
        &self.ports
    }

    /// A copy of the counters. The SRTP counters sum the live streams' stages (O(sessions): call
    /// it from a timer, not per packet) and those of streams gone.
    pub fn counters(&self) -> ShardCounters {
        let mut c = self.counters;
        for session in self.slots.iter().filter_map(|s| s.session.as_ref()) {
            for stream in &session.streams {
                c.srtp.add(&stream.a.srtp_counters());
                c.srtp.add(&stream.b.srtp_counters());
            }
        }
        c
    }

    /// Allocate a session with `streams` streams: two port pairs per stream (legs A and B), all or
    /// nothing. Each leg's latch window opens now, with no SDP address yet, so packets that arrive
    /// before the answer is processed are learned.
    pub fn allocate_session(
        &mut self,
        now: Instant,
        streams: usize,
    ) -> Result<SessionHandle, Error> {
        if streams == 0 || streams > self.config.max_streams {
            return Err(Error::StreamCount {
                requested: streams,
                max: self.config.max_streams,
            });
        }
        let stream_count = u16::try_from(streams).map_err(|_| Error::StreamCount {
            requested: streams,
            max: self.config.max_streams,
        })?;
        self.scratch.clear();
        self.scratch.resize(2 * streams, PortPair::default());
        if let Err(e) = self.ports.allocate_into(now, &mut self.scratch) {
            self.counters.allocation_failures += 1;
            return Err(e);
        }
        let index = match self.vacant.pop() {
            Some(index) => index,
            None => {
                let Ok(index) = u32::try_from(self.slots.len()) else {
                    // Unreachable: slots are bounded by the port count. Give the ports back.
                    for pair in self.scratch.drain(..) {
                        let _ = self.ports.release(pair, now);
                    }
                    return Err(Error::PortsExhausted {
                        wanted: 2 * streams,
                        available: 0,
                    });
                };
                self.slots.push(Slot {
                    generation: 0,
                    session: None,
                });
                index
            }
        };
        let mode = self.config.latch_mode;
        let window = self.config.latch_window;
        let min = self.config_min();
        let mut list = Vec::with_capacity(streams);
        for (stream, pairs) in (0..stream_count).zip(self.scratch.chunks_exact(2)) {
            let (Some(&a), Some(&b)) = (pairs.first(), pairs.get(1)) else {
                continue;
            };
            let mut s = Stream {
                a: Leg::new(a, mode),
                b: Leg::new(b, mode),
                clock_rate: 0,
                validation: self.config.validation,
                negotiated: now,
                one_way: None,
                codec: None,
            };
            for side in [Side::A, Side::B] {
                let leg = s.leg_mut(side);
                leg.rtp.open_window(None, now, window);
                leg.rtcp.open_window(None, now, window);
                let route = Route {
                    slot: index,
                    stream,
                    side,
                };
                for port in [leg.ports.rtp(), leg.ports.rtcp()] {
                    if let Some(entry) = route_entry(&mut self.routes, min, port) {
                        *entry = Some(route);
                    }
                }
            }
            list.push(s);
        }
        let generation = match self.slots.get_mut(index as usize) {
            Some(slot) => {
                slot.session = Some(Session {
                    streams: list,
                    last_signal: now,
                    idle_reported: false,
                });
                slot.generation
            }
            None => 0,
        };
        self.live += 1;
        self.counters.sessions_allocated += 1;
        Ok(SessionHandle { index, generation })
    }

    /// The remote of `side` in `stream` was (re)negotiated at `now`: record its SDP address and
    /// rtcp-mux, and open a latch window on both its ports.
    pub fn set_remote(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        side: Side,
        sdp: impl Into<RemoteSdp>,
        now: Instant,
    ) -> Result<(), Error> {
        self.set_remote_from(handle, stream, side, sdp, None, now)
    }

    /// [`MediaShard::set_remote`], knowing the IP the remote's signalling came from: in the
    /// learning window a source from that IP outranks a stranger that sent first (see
    /// [`crate::latch`]).
    pub fn set_remote_from(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        side: Side,
        sdp: impl Into<RemoteSdp>,
        signal: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Error> {
        let sdp = sdp.into();
        let window = self.config.latch_window;
        let session = self.session_mut(handle)?;
        session.last_signal = now;
        let s = stream_mut(session, stream)?;
        s.negotiated = now;
        let leg = s.leg_mut(side);
        leg.rtcp_mux = sdp.rtcp_mux;
        leg.remote_set = true;
        leg.rtp.open_window_from(Some(sdp.rtp), signal, now, window);
        leg.rtcp
            .open_window_from(sdp.rtcp_addr(), signal, now, window);
        Ok(())
    }

    /// Set the clock rate of `stream`'s payload (8000 for G.711, 48000 for Opus), used for jitter.
    pub fn set_clock_rate(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        clock_rate: u32,
    ) -> Result<(), Error> {
        let session = self.session_mut(handle)?;
        stream_mut(session, stream)?.clock_rate = clock_rate;
        Ok(())
    }

    /// The packet checks of one stream: [`Validation::HeaderOnly`] for SRTP relayed as is,
    /// [`Validation::Opaque`] for media that is not RTP (T.38).
    pub fn set_validation(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        validation: Validation,
    ) -> Result<(), Error> {
        let session = self.session_mut(handle)?;
        stream_mut(session, stream)?.validation = validation;
        Ok(())
    }

    /// Set the stage run over the packets arriving on `side` of `stream` (toward the other leg).
    /// The stage's SRTP counters so far are kept in the shard's counters.
    pub fn set_stage(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        side: Side,
        stage: Stage,
    ) -> Result<(), Error> {
        let session = self.session_mut(handle)?;
        let leg = stream_mut(session, stream)?.leg_mut(side);
        let old = std::mem::replace(&mut leg.stage, stage);
        leg.retired.add(&old.srtp_counters());
        Ok(())
    }

    /// The formats the two legs of `stream` negotiated: a plan whose legs differ puts a
    /// [`CodecStage`] on the stream (transcoding, DTMF interworking); `None` or an identity plan
    /// relays packets as they are. Allocates the stage here, never on the packet path.
    pub fn set_codecs(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        plan: Option<CodecPlan>,
    ) -> Result<(), Error> {
        let session = self.session_mut(handle)?;
        let s = stream_mut(session, stream)?;
        s.codec = match plan {
            Some(p) if !p.is_identity() => match s.codec.as_deref_mut() {
                Some(stage) if *stage.plan() == p => return Ok(()),
                _ => Some(Box::new(CodecStage::new(p))),
            },
            _ => None,
        };
        Ok(())
    }

    /// The streams of a session, for reading ports, latch state and statistics.
    pub fn streams(&self, handle: SessionHandle) -> Result<&[Stream], Error> {
        let slot = self
            .slots
            .get(handle.index as usize)
            .filter(|s| s.generation == handle.generation);
        match slot.and_then(|s| s.session.as_ref()) {
            Some(session) => Ok(&session.streams),
            None => Err(Error::UnknownSession),
        }
    }

    /// End a session at `now`: its ports go to quarantine and its packets are dropped as
    /// [`DropReason::UnknownPort`] from now on; the handle becomes invalid.
    pub fn release(&mut self, handle: SessionHandle, now: Instant) -> Result<(), Error> {
        self.end_session(handle, now, true)
    }

    /// End a session like [`MediaShard::release`], but its ports are reusable at once (no
    /// quarantine): for a call that never got an answer, so that unanswered calls cannot keep the
    /// range out of use.
    pub fn release_at_once(&mut self, handle: SessionHandle, now: Instant) -> Result<(), Error> {
        self.end_session(handle, now, false)
    }

    fn end_session(
        &mut self,
        handle: SessionHandle,
        now: Instant,
        quarantine: bool,
    ) -> Result<(), Error> {
        let min = self.config_min();
        let Some(slot) = self
            .slots
            .get_mut(handle.index as usize)
            .filter(|s| s.generation == handle.generation)
        else {
            return Err(Error::UnknownSession);
        };
        let Some(session) = slot.session.take() else {
            return Err(Error::UnknownSession);
        };
        slot.generation = slot.generation.wrapping_add(1);
        for stream in &session.streams {
            for leg in [&stream.a, &stream.b] {
                self.counters.srtp.add(&leg.srtp_counters());
                for port in [leg.ports.rtp(), leg.ports.rtcp()] {
                    if let Some(entry) = route_entry(&mut self.routes, min, port) {
                        *entry = None;
                    }
                }
                // Counted by the allocator if it ever fails; the pair was ours, so it cannot.
                let _ = if quarantine {
                    self.ports.release(leg.ports, now)
                } else {
                    self.ports.release_at_once(leg.ports, now)
                };
            }
        }
        self.vacant.push(handle.index);
        self.live -= 1;
        self.counters.sessions_released += 1;
        Ok(())
    }

    /// Relay decision for one datagram received on `local_port` from `source` at `now`: the whole
    /// of `buf` is the packet, with no room to grow (see [`MediaShard::on_packet_in`]).
    #[must_use]
    pub fn on_packet(
        &mut self,
        local_port: u16,
        source: SocketAddr,
        buf: &mut [u8],
        now: Instant,
    ) -> Action {
        let len = buf.len();
        self.on_packet_in(local_port, source, buf, len, now)
    }

    /// Relay decision for the datagram `room[..len]` received on `local_port` from `source` at
    /// `now`. O(1), no allocation. The stream's stages may rewrite the packet in place and grow it
    /// into the rest of `room`: an SRTP tag (keep [`crate::srtp::Suite::max_overhead`] bytes of
    /// tailroom), a DTMF event played as a tone. The driver sends `room[..len]` of the returned
    /// [`Action::Forward`].
    #[must_use]
    pub fn on_packet_in(
        &mut self,
        local_port: u16,
        source: SocketAddr,
        room: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Action {
        self.more = None;
        let action = self.route_packet(local_port, source, room, len.min(room.len()), now);
        self.count(action);
        action
    }

    fn count(&mut self, action: Action) {
        match action {
            Action::Forward { len, .. } => {
                self.counters.forwarded += 1;
                self.counters.forwarded_bytes += len as u64;
            }
            Action::Drop(reason) => {
                if let Some(c) = self.counters.dropped.get_mut(reason.index()) {
                    *c += 1;
                }
            }
            Action::Consumed => {}
        }
    }

    /// A further packet the last packet relayed by [`MediaShard::on_packet_in`] produced, written
    /// into `room` (any buffer: the first one may still be in flight), to send like the first;
    /// `None`: no more. A codec stage that repacketises to a shorter packet time (30 ms in, 20 ms
    /// out) or plays a long tone has more than one packet to send for one received: the driver
    /// calls this after every packet until `None` (what it leaves is dropped at the next packet
    /// of the stream). Each packet is numbered and stamped in turn and protected by the stream's
    /// SRTP stage on its own. O(1), no allocation.
    pub fn next_packet(&mut self, room: &mut [u8]) -> Option<Action> {
        let route = self.more?;
        let action = self.route_more(route, room);
        if action.is_none() {
            self.more = None;
        }
        if let Some(a) = action {
            self.count(a);
        }
        action
    }

    /// The last packet relayed left more to send ([`MediaShard::next_packet`]).
    pub fn has_more(&self) -> bool {
        self.more.is_some()
    }

    fn route_more(&mut self, route: Route, room: &mut [u8]) -> Option<Action> {
        let stream = self
            .slots
            .get_mut(route.slot as usize)
            .and_then(|slot| slot.session.as_mut())
            .and_then(|session| session.streams.get_mut(usize::from(route.stream)))?;
        let (from, to, way) = match route.side {
            Side::A => (&mut stream.a, &mut stream.b, Way::AToB),
            Side::B => (&mut stream.b, &mut stream.a, Way::BToA),
        };
        let codec = stream.codec.as_deref_mut()?;
        let to_addr = to.rtp.destination()?;
        let len = codec.next_packet(way, room, &mut self.counters.codec)?;
        if !codec.pending(way) {
            self.more = None;
        }
        let Ok(len) = from.stage.outbound(false, room, len) else {
            from.dropped += 1;
            return Some(Action::Drop(DropReason::Stage));
        };
        from.forwarded += 1;
        Some(Action::Forward {
            from_port: to.ports.rtp(),
            to: to_addr,
            len,
        })
    }

    fn route_packet(
        &mut self,
        local_port: u16,
        source: SocketAddr,
        room: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Action {
        let Some(buf) = room.get(..len) else {
            return Action::Drop(DropReason::Malformed);
        };
        let Some(route) = local_port
            .checked_sub(self.config_min())
            .and_then(|i| self.routes.get(usize::from(i)))
            .copied()
            .flatten()
        else {
            return Action::Drop(DropReason::UnknownPort);
        };
        let Some((generation, stream)) = self.slots.get_mut(route.slot as usize).and_then(|slot| {
            let generation = slot.generation;
            slot.session
                .as_mut()
                .and_then(|session| session.streams.get_mut(usize::from(route.stream)))
                .map(|s| (generation, s))
        }) else {
            return Action::Drop(DropReason::UnknownPort);
        };
        let clock_rate = stream.clock_rate;
        let validation = stream.validation;
        let codec = stream.codec.as_deref_mut();
        let (from, to) = match route.side {
            Side::A => (&mut stream.a, &mut stream.b),
            Side::B => (&mut stream.b, &mut stream.a),
        };
        // An encrypted payload cannot be checked before the stage decrypts it.
        let validation = if validation == Validation::Full && from.stage.decrypts() {
            Validation::HeaderOnly
        } else {
            validation
        };
        let on_rtcp_port = local_port % 2 == 1;
        let opaque = validation == Validation::Opaque;
        let kind = if on_rtcp_port || (!opaque && is_rtcp(buf)) {
            Kind::Rtcp
        } else {
            Kind::Rtp
        };

        // Validate before latching: a malformed packet must never move the latch.
        let is_rtp = match kind {
            Kind::Rtp if opaque => false,
            Kind::Rtp => match RtpHeader::parse(buf) {
                Ok(_) if validation == Validation::HeaderOnly => true,
                Ok(h) if h.padding_len().is_ok() => true,
                _ => {
                    from.dropped += 1;
                    return Action::Drop(DropReason::Malformed);
                }
            },
            Kind::Rtcp => {
                let valid = match validation {
                    Validation::Full => RtcpCompound::parse(buf).is_ok(),
                    Validation::HeaderOnly => RtcpPacket::parse(buf).is_ok(),
                    Validation::Opaque => true,
                };
                if !valid {
                    from.dropped += 1;
                    return Action::Drop(DropReason::Malformed);
                }
                false
            }
        };

        // The stage before the latch: a packet SRTP refuses (forged, replayed) never moves it.
        let received = len;
        let len = if opaque {
            len
        } else {
            match from.stage.inbound(kind == Kind::Rtcp, room, len) {
                Ok(n) => n,
                Err(_) => {
                    from.dropped += 1;
                    return Action::Drop(DropReason::Stage);
                }
            }
        };
        let Some(buf) = room.get(..len) else {
            from.dropped += 1;
            return Action::Drop(DropReason::Malformed);
        };

        // The latch is per port: RTCP on an rtcp-mux RTP port comes from the RTP source.
        let latch = if on_rtcp_port {
            &mut from.rtcp
        } else {
            &mut from.rtp
        };
        if latch.check(source, now) == LatchVerdict::Reject {
            from.dropped += 1;
            return Action::Drop(DropReason::WrongSource);
        }

        match is_rtp.then(|| RtpHeader::parse(buf).ok()).flatten() {
            Some(h) => from.rx.record_rtp(&h, now, clock_rate),
            None => from.rx.record_rtcp(received, now),
        }
        // Telephone-events reported to the signalling leave the relay here.
        if let (true, Some(d)) = (is_rtp, from.dtmf.as_deref_mut()) {
            let session = SessionHandle {
                index: route.slot,
                generation,
            };
            let (digits, taken) = match d.inbound(room, len) {
                Inbound::Relay => ([None, None], false),
                Inbound::Heard(event, duration) => ([Some((event, duration)), None], false),
                Inbound::Taken(digits) => (digits, true),
            };
            for (event, duration) in digits.into_iter().flatten() {
                if self.digits.len() >= DIGIT_QUEUE {
                    self.counters.dtmf_report_overflow += 1;
                    continue;
                }
                if taken {
                    self.counters.dtmf_reported += 1;
                } else {
                    self.counters.dtmf_heard += 1;
                }
                self.digits.push_back(DtmfDigit {
                    session,
                    stream: usize::from(route.stream),
                    from: route.side,
                    event,
                    duration,
                });
            }
            if taken {
                return Action::Consumed;
            }
        }

        let (from_port, to_addr) = if kind == Kind::Rtp || to.rtcp_mux {
            (to.ports.rtp(), to.rtp.destination())
        } else {
            (to.ports.rtcp(), to.rtcp.destination())
        };
        let Some(to_addr) = to_addr else {
            from.dropped += 1;
            return Action::Drop(DropReason::NoDestination);
        };
        // The codec stage (transcoding, DTMF), on RTP of streams whose legs differ.
        let mut len = len;
        if let (Some(stage), Kind::Rtp, false) = (codec, kind, opaque) {
            let way = match route.side {
                Side::A => Way::AToB,
                Side::B => Way::BToA,
            };
            match stage.process(way, room, len, &mut self.counters.codec) {
                StageResult::Forward(n) => len = n,
                StageResult::Consumed => return Action::Consumed,
            }
            if stage.pending(way) {
                self.more = Some(route);
            }
        }
        // Digits the signalling queued toward the other leg take the place of its audio.
        if let (Kind::Rtp, false, Some(d)) = (kind, opaque, to.dtmf.as_deref_mut()) {
            let before = d.played();
            len = d.outbound(room, len);
            self.counters.dtmf_played += d.played().saturating_sub(before);
        }
        // Protected for the other leg last, over what the codec stage made of the packet.
        if !opaque {
            match from.stage.outbound(kind == Kind::Rtcp, room, len) {
                Ok(n) => len = n,
                Err(_) => {
                    from.dropped += 1;
                    return Action::Drop(DropReason::Stage);
                }
            }
        }
        from.forwarded += 1;
        Action::Forward {
            from_port,
            to: to_addr,
            len,
        }
    }

    /// Sessions without media for `timeout`, and streams with media in one direction only for
    /// [`ShardConfig::one_way_timeout`] (only streams whose two legs have a remote set). Each
    /// episode is reported and counted once. O(sessions): call it from a timer about once a second,
    /// not per packet.
    pub fn poll_idle(&mut self, now: Instant, timeout: Duration) -> Vec<IdleEvent> {
        let one_way_after = self.config.one_way_timeout;
        let mut events = Vec::new();
        for (index, slot) in (0u32..).zip(self.slots.iter_mut()) {
            let Some(session) = slot.session.as_mut() else {
                continue;
            };
            let handle = SessionHandle {
                index,
                generation: slot.generation,
            };
            let last = session
                .streams
                .iter()
                .filter_map(Stream::last_packet)
                .max()
                .map_or(session.last_signal, |t| t.max(session.last_signal));
            let quiet = now.saturating_duration_since(last);
            if quiet >= timeout {
                if !session.idle_reported {
                    session.idle_reported = true;
                    self.counters.no_media += 1;
                    events.push(IdleEvent::NoMedia {
                        session: handle,
                        quiet,
                    });
                }
            } else {
                session.idle_reported = false;
            }

            for (i, stream) in session.streams.iter_mut().enumerate() {
                let silent = one_way_side(stream, now, one_way_after);
                if silent.is_some() && silent != stream.one_way {
                    if let Some(side) = silent {
                        self.counters.one_way += 1;
                        events.push(IdleEvent::OneWay {
                            session: handle,
                            stream: i,
                            silent: side,
                        });
                    }
                }
                stream.one_way = silent;
            }
        }
        events
    }

    fn session_mut(&mut self, handle: SessionHandle) -> Result<&mut Session, Error> {
        self.slots
            .get_mut(handle.index as usize)
            .filter(|s| s.generation == handle.generation)
            .and_then(|s| s.session.as_mut())
            .ok_or(Error::UnknownSession)
    }

    fn config_min(&self) -> u16 {
        self.ports.range().0
    }
}

/// The silent leg, when one leg sent within `after` and the other sent nothing for at least
/// `after` since the stream was negotiated.
fn one_way_side(stream: &Stream, now: Instant, after: Duration) -> Option<Side> {
    if !(stream.a.remote_set && stream.b.remote_set) {
        return None;
    }
    let recent = |leg: &Leg| {
        leg.rx
            .last_packet()
            .is_some_and(|t| now.saturating_duration_since(t) < after)
    };
    let silent = |leg: &Leg| {
        let since = leg
            .rx
            .last_packet()
            .map_or(stream.negotiated, |t| t.max(stream.negotiated));
        now.saturating_duration_since(since) >= after
    };
    if recent(&stream.a) && silent(&stream.b) {
        Some(Side::B)
    } else if recent(&stream.b) && silent(&stream.a) {
        Some(Side::A)
    } else {
        None
    }
}

fn stream_mut(session: &mut Session, stream: usize) -> Result<&mut Stream, Error> {
    let streams = session.streams.len();
    session
        .streams
        .get_mut(stream)
        .ok_or(Error::NoSuchStream { stream, streams })
}

fn route_entry(routes: &mut [Option<Route>], min: u16, port: u16) -> Option<&mut Option<Route>> {
    routes.get_mut(usize::from(port.checked_sub(min)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn rr() -> Vec<u8> {
        vec![0x80, 201, 0, 1, 0, 0, 0, 1]
    }

    const CALLER: &str = "198.51.100.7:4000";
    const PBX: &str = "10.0.0.2:30000";

    fn shard() -> MediaShard {
        MediaShard::new(ShardConfig::new(20000, 20039)).unwrap()
    }

    /// A one-stream call with both remotes known; returns (shard, handle, A ports, B ports).
    fn call(t: Instant) -> (MediaShard, SessionHandle, PortPair, PortPair) {
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        s.set_remote(h, 0, Side::A, addr(CALLER), t).unwrap();
        s.set_remote(h, 0, Side::B, addr(PBX), t).unwrap();
        let a = s.streams(h).unwrap()[0].leg(Side::A).ports();
        let b = s.streams(h).unwrap()[0].leg(Side::B).ports();
        (s, h, a, b)
    }

    #[test]
    fn config_defaults() {
        let c = ShardConfig::new(20000, 29999);
        assert_eq!(c.latch_mode, LatchMode::Strict);
        assert_eq!(c.validation, Validation::Full);
        assert_eq!(c.max_streams, 8);
        assert!(MediaShard::new(ShardConfig::new(20001, 20010)).is_err());
    }

    #[test]
    fn a_handle_survives_its_bits_and_a_stale_one_is_refused() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        assert_eq!(SessionHandle::from_bits(h.to_bits()), h);
        s.release(h, t).unwrap();
        let again = s.allocate_session(t, 1).unwrap();
        assert_ne!(again.to_bits(), h.to_bits(), "same slot, new generation");
        assert!(s.streams(SessionHandle::from_bits(h.to_bits())).is_err());
    }

    #[test]
    fn rtp_relays_to_the_other_leg() {
        let t = t0();
        let (mut s, h, a, b) = call(t);
        assert_ne!(a, b);
        let mut p = rtp(1);
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 20)),
            Action::Forward {
                from_port: b.rtp(),
                to: addr(PBX),
                len: p.len()
            }
        );
        assert_eq!(
            s.on_packet(b.rtp(), addr(PBX), &mut p, ms(t, 40)),
            Action::Forward {
                from_port: a.rtp(),
                to: addr(CALLER),
                len: p.len()
            }
        );
        let st = &s.streams(h).unwrap()[0];
        assert_eq!(st.leg(Side::A).rx().packets(), 1);
        assert_eq!(st.leg(Side::A).forwarded(), 1);
        assert_eq!(st.leg(Side::B).rx().bytes(), 172);
        assert_eq!(s.counters().forwarded, 2);
        assert_eq!(s.counters().forwarded_bytes, 344);
    }

    #[test]
    fn forward_carries_the_length_of_the_packet() {
        let t = t0();
        let (mut s, _, a, _) = call(t);
        for (seq, payload) in [(1u16, 160usize), (2, 20), (3, 0)] {
            let mut p = rtp(seq);
            p.truncate(12 + payload);
            let action = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, u64::from(seq) * 20));
            let Action::Forward { len, .. } = action else {
                panic!("{action:?}");
            };
            assert_eq!(len, 12 + payload);
        }
        assert_eq!(s.counters().forwarded_bytes, 3 * 12 + 180);
    }

    #[test]
    fn rtcp_relays_port_to_port() {
        let t = t0();
        let (mut s, _h, a, b) = call(t);
        let mut p = rr();
        // RTCP from the caller's RTCP port (RTP + 1) to the PBX's
        assert_eq!(
            s.on_packet(a.rtcp(), addr("198.51.100.7:4001"), &mut p, t),
            Action::Forward {
                from_port: b.rtcp(),
                to: addr("10.0.0.2:30001"),
                len: p.len()
            }
        );
        // an RTP packet on an RTCP port is malformed
        let mut p = rtp(1);
        assert_eq!(
            s.on_packet(a.rtcp(), addr("198.51.100.7:4001"), &mut p, t),
            Action::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn rtcp_mux_maps_to_the_rtp_port() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        let mux = RemoteSdp {
            rtp: addr(CALLER),
            rtcp: None,
            rtcp_mux: true,
        };
        s.set_remote(h, 0, Side::A, mux, t).unwrap();
        let explicit = RemoteSdp {
            rtp: addr(PBX),
            rtcp: Some(addr("10.0.0.2:31000")),
            rtcp_mux: false,
        };
        s.set_remote(h, 0, Side::B, explicit, t).unwrap();
        let st = &s.streams(h).unwrap()[0];
        let (a, b) = (st.leg(Side::A).ports(), st.leg(Side::B).ports());
        assert!(st.leg(Side::A).rtcp_mux());
        // RTCP on A's mux port goes to B's RTCP port and a=rtcp address
        let mut p = rr();
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Forward {
                from_port: b.rtcp(),
                to: addr("10.0.0.2:31000"),
                len: p.len()
            }
        );
        // RTCP from B goes back on A's mux port, to A's RTP address
        assert_eq!(
            s.on_packet(b.rtcp(), addr("10.0.0.2:31000"), &mut p, t),
            Action::Forward {
                from_port: a.rtp(),
                to: addr(CALLER),
                len: p.len()
            }
        );
        // RTP on the mux port is still RTP
        let mut p = rtp(7);
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Forward {
                from_port: b.rtp(),
                to: addr(PBX),
                len: p.len()
            }
        );
        let leg_a = s.streams(h).unwrap()[0].leg(Side::A);
        assert_eq!((leg_a.rx().packets(), leg_a.rx().rtcp_packets()), (1, 1));
    }

    #[test]
    fn both_legs_muxed_map_to_themselves() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        for (side, remote) in [(Side::A, CALLER), (Side::B, PBX)] {
            let sdp = RemoteSdp {
                rtp: addr(remote),
                rtcp: None,
                rtcp_mux: true,
            };
            s.set_remote(h, 0, side, sdp, t).unwrap();
        }
        let st = &s.streams(h).unwrap()[0];
        let (a, b) = (st.leg(Side::A).ports(), st.leg(Side::B).ports());
        let mut p = rr();
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Forward {
                from_port: b.rtp(),
                to: addr(PBX),
                len: p.len()
            }
        );
    }

    #[test]
    fn drop_reasons_are_counted() {
        let t = t0();
        let (mut s, h, a, b) = call(t);
        let mut p = rtp(1);
        // unknown port: outside the slice, and inside it but unallocated
        assert_eq!(
            s.on_packet(19000, addr(CALLER), &mut p, t),
            Action::Drop(DropReason::UnknownPort)
        );
        assert_eq!(
            s.on_packet(20038, addr(CALLER), &mut p, t),
            Action::Drop(DropReason::UnknownPort)
        );
        // malformed
        let mut junk = vec![0x00, 0x01, 0x00, 0x10]; // a STUN-looking header
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut junk, t),
            Action::Drop(DropReason::Malformed)
        );
        // the caller latches; an attacker is then dropped in strict mode
        assert!(matches!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Forward { .. }
        ));
        assert_eq!(
            s.on_packet(a.rtp(), addr("203.0.113.66:5555"), &mut p, ms(t, 20_000)),
            Action::Drop(DropReason::WrongSource)
        );
        let c = s.counters();
        assert_eq!(c.dropped(DropReason::UnknownPort), 2);
        assert_eq!(c.dropped(DropReason::Malformed), 1);
        assert_eq!(c.dropped(DropReason::WrongSource), 1);
        assert_eq!(c.dropped(DropReason::NoDestination), 0);
        let leg_a = s.streams(h).unwrap()[0].leg(Side::A);
        assert_eq!(leg_a.dropped(), 2);
        assert_eq!(leg_a.rtp_latch().rejected(), 1);
        let _ = b;
        assert_eq!(
            DropReason::ALL.map(DropReason::as_str),
            [
                "unknown_port",
                "malformed",
                "wrong_source",
                "no_destination",
                "stage"
            ]
        );
    }

    #[test]
    fn malformed_packets_do_not_latch() {
        let t = t0();
        let (mut s, h, a, _b) = call(t);
        let mut junk = vec![0x80, 0x00, 0x00];
        let _ = s.on_packet(a.rtp(), addr("203.0.113.66:5555"), &mut junk, t);
        let leg_a = s.streams(h).unwrap()[0].leg(Side::A);
        assert_eq!(leg_a.rtp_latch().learned(), None);
    }

    #[test]
    fn no_destination_until_the_other_leg_is_known() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        s.set_remote(h, 0, Side::A, addr(CALLER), t).unwrap();
        let st = &s.streams(h).unwrap()[0];
        let (a, b) = (st.leg(Side::A).ports(), st.leg(Side::B).ports());
        let mut p = rtp(1);
        // the offer went to B, no answer yet: nowhere to send
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Drop(DropReason::NoDestination)
        );
        // early media from B before its SDP is processed: learned, and it opens the path
        assert_eq!(
            s.on_packet(b.rtp(), addr(PBX), &mut p, ms(t, 10)),
            Action::Forward {
                from_port: a.rtp(),
                to: addr(CALLER),
                len: p.len()
            }
        );
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 20)),
            Action::Forward {
                from_port: b.rtp(),
                to: addr(PBX),
                len: p.len()
            }
        );
        assert_eq!(s.counters().dropped(DropReason::NoDestination), 1);
    }

    #[test]
    fn nat_latching_through_the_shard() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        // the caller's SDP says 192.168.1.10 (private); packets come from its NAT
        s.set_remote(h, 0, Side::A, addr("192.168.1.10:8000"), t)
            .unwrap();
        s.set_remote(h, 0, Side::B, addr(PBX), t).unwrap();
        let st = &s.streams(h).unwrap()[0];
        let (a, b) = (st.leg(Side::A).ports(), st.leg(Side::B).ports());
        let mut p = rtp(1);
        // before the caller sends, the PBX's audio goes to the SDP address
        assert_eq!(
            s.on_packet(b.rtp(), addr(PBX), &mut p, t),
            Action::Forward {
                from_port: a.rtp(),
                to: addr("192.168.1.10:8000"),
                len: p.len()
            }
        );
        let _ = s.on_packet(a.rtp(), addr("198.51.100.7:61000"), &mut p, ms(t, 30));
        assert_eq!(
            s.on_packet(b.rtp(), addr(PBX), &mut p, ms(t, 40)),
            Action::Forward {
                from_port: a.rtp(),
                to: addr("198.51.100.7:61000"),
                len: p.len()
            }
        );
    }

    #[test]
    fn an_opaque_stream_relays_datagrams_that_are_not_rtp() {
        let t = t0();
        let (mut s, h, a, _) = call(t);
        // A T.38 UDPTL packet: sequence number, then an IFP, nothing like an RTP header.
        let mut udptl = vec![0x00, 0x01, 0x06, 0x00, 0x10, 0x44, 0x45, 0x46];
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut udptl, t),
            Action::Drop(DropReason::Malformed)
        );
        s.set_validation(h, 0, Validation::Opaque).unwrap();
        assert!(matches!(
            s.on_packet(a.rtp(), addr(CALLER), &mut udptl, t),
            Action::Forward { .. }
        ));
        // still latched: another source is refused in strict mode
        assert_eq!(
            s.on_packet(a.rtp(), addr("203.0.113.99:9"), &mut udptl, t),
            Action::Drop(DropReason::WrongSource)
        );
    }

    #[test]
    fn header_only_validation_accepts_srtp_shapes() {
        let t = t0();
        let mut config = ShardConfig::new(20000, 20039);
        config.validation = Validation::HeaderOnly;
        let mut s = MediaShard::new(config).unwrap();
        let h = s.allocate_session(t, 1).unwrap();
        s.set_remote(h, 0, Side::A, addr(CALLER), t).unwrap();
        s.set_remote(h, 0, Side::B, addr(PBX), t).unwrap();
        let a = s.streams(h).unwrap()[0].leg(Side::A).ports();
        // padding bit with an "encrypted" last octet of 0
        let mut p = rtp(1);
        p[0] |= 0x20;
        *p.last_mut().unwrap() = 0;
        assert!(matches!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, t),
            Action::Forward { .. }
        ));
        // SRTCP: an RR, then encrypted bytes and a tag
        let mut p = rr();
        p.extend_from_slice(&[0x13, 0x37, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert!(matches!(
            s.on_packet(a.rtcp(), addr("198.51.100.7:4001"), &mut p, t),
            Action::Forward { .. }
        ));
        // full validation refuses both
        let (mut full, _h, a2, _) = call(t);
        let mut p2 = rtp(1);
        p2[0] |= 0x20;
        *p2.last_mut().unwrap() = 0;
        assert_eq!(
            full.on_packet(a2.rtp(), addr(CALLER), &mut p2, t),
            Action::Drop(DropReason::Malformed)
        );
        assert_eq!(
            full.on_packet(a2.rtcp(), addr("198.51.100.7:4001"), &mut p, t),
            Action::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn allocation_is_all_or_nothing() {
        let t = t0();
        // 20 pairs: 10 one-stream calls, or 2 calls of 4 streams (16 pairs) + ...
        let mut s = shard();
        assert_eq!(s.ports_free(), 40);
        let big = s.allocate_session(t, 8).unwrap();
        assert_eq!(s.ports_free(), 8);
        assert_eq!(
            s.allocate_session(t, 3),
            Err(Error::PortsExhausted {
                wanted: 6,
                available: 4
            })
        );
        assert_eq!(s.ports_free(), 8);
        assert_eq!(s.len(), 1);
        assert_eq!(s.counters().allocation_failures, 1);
        let small = s.allocate_session(t, 2).unwrap();
        assert_eq!(s.ports_free(), 0);
        assert_eq!(
            s.allocate_session(t, 9),
            Err(Error::StreamCount {
                requested: 9,
                max: 8
            })
        );
        assert_eq!(
            s.allocate_session(t, 0),
            Err(Error::StreamCount {
                requested: 0,
                max: 8
            })
        );
        // all ports distinct
        let mut ports = std::collections::HashSet::new();
        for h in [big, small] {
            for st in s.streams(h).unwrap() {
                for side in [Side::A, Side::B] {
                    assert!(ports.insert(st.leg(side).ports()));
                }
            }
        }
        assert_eq!(ports.len(), 20);
        s.release(big, t).unwrap();
        s.release(small, t).unwrap();
        assert_eq!(s.ports_free(), 40);
        assert!(s.is_empty());
    }

    #[test]
    fn released_sessions_are_gone() {
        let t = t0();
        let (mut s, h, a, _b) = call(t);
        s.release(h, ms(t, 100)).unwrap();
        let mut p = rtp(1);
        // late packets of the old call hit nothing
        assert_eq!(
            s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 200)),
            Action::Drop(DropReason::UnknownPort)
        );
        assert_eq!(s.release(h, t), Err(Error::UnknownSession));
        assert_eq!(
            s.set_remote(h, 0, Side::A, addr(CALLER), t),
            Err(Error::UnknownSession)
        );
        assert!(s.streams(h).is_err());
        // the slot is reused with a new generation; the old handle stays dead
        let h2 = s.allocate_session(ms(t, 300), 1).unwrap();
        assert_ne!(h, h2);
        assert!(s.streams(h).is_err());
        assert!(s.streams(h2).is_ok());
        // and the quarantined ports were not handed out again
        let ports = s.streams(h2).unwrap()[0].leg(Side::A).ports();
        assert_ne!(ports, a);
        assert_eq!(s.counters().sessions_released, 1);
        assert_eq!(s.counters().sessions_allocated, 2);
    }

    #[test]
    fn an_unanswered_session_frees_its_ports_at_once() {
        let t = t0();
        let mut s = MediaShard::new(ShardConfig::new(30000, 30007)).unwrap();
        let h = s.allocate_session(t, 2).unwrap();
        assert!(s.allocate_session(t, 1).is_err(), "4 pairs, all taken");
        s.release_at_once(h, t).unwrap();
        assert_eq!(s.ports().quarantined(), 0);
        let h = s.allocate_session(t, 2).unwrap();
        // an answered call's ports wait out the quarantine
        s.release(h, t).unwrap();
        assert_eq!(s.ports().quarantined(), 4);
        assert!(s.allocate_session(t, 1).is_err());
    }

    #[test]
    fn the_signalling_ip_takes_the_stream_from_a_sprayer() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        let sip: IpAddr = "198.51.100.7".parse().unwrap();
        s.set_remote_from(h, 0, Side::A, addr("10.0.0.5:4000"), Some(sip), t)
            .unwrap();
        s.set_remote(h, 0, Side::B, addr(PBX), t).unwrap();
        let a = s.streams(h).unwrap()[0].a.ports().rtp();
        let mut p = rtp(1);
        let spray = s.on_packet(a, addr("203.0.113.66:5555"), &mut p, ms(t, 10));
        assert!(matches!(spray, Action::Forward { .. }));
        let phone = s.on_packet(a, addr("198.51.100.7:61000"), &mut p, ms(t, 20));
        assert!(matches!(phone, Action::Forward { .. }));
        let again = s.on_packet(a, addr("203.0.113.66:5555"), &mut p, ms(t, 30));
        assert_eq!(again, Action::Drop(DropReason::WrongSource));
        let leg = &s.streams(h).unwrap()[0].a;
        assert_eq!(leg.rtp_latch().learned(), Some(addr("198.51.100.7:61000")));
    }

    #[test]
    fn stream_index_is_checked() {
        let t = t0();
        let (mut s, h, _, _) = call(t);
        assert_eq!(
            s.set_remote(h, 1, Side::A, addr(CALLER), t),
            Err(Error::NoSuchStream {
                stream: 1,
                streams: 1
            })
        );
        assert_eq!(
            s.set_clock_rate(h, 3, 8000),
            Err(Error::NoSuchStream {
                stream: 3,
                streams: 1
            })
        );
        s.set_clock_rate(h, 0, 8000).unwrap();
        assert_eq!(s.streams(h).unwrap()[0].clock_rate(), 8000);
    }

    #[test]
    fn streams_are_independent() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 2).unwrap();
        s.set_remote(h, 0, Side::A, addr("198.51.100.7:4000"), t)
            .unwrap();
        s.set_remote(h, 0, Side::B, addr("10.0.0.2:30000"), t)
            .unwrap();
        s.set_remote(h, 1, Side::A, addr("198.51.100.7:4002"), t)
            .unwrap();
        s.set_remote(h, 1, Side::B, addr("10.0.0.2:30002"), t)
            .unwrap();
        let streams = s.streams(h).unwrap();
        let video_a = streams[1].leg(Side::A).ports();
        let video_b = streams[1].leg(Side::B).ports();
        let mut p = rtp(1);
        assert_eq!(
            s.on_packet(video_a.rtp(), addr("198.51.100.7:4002"), &mut p, t),
            Action::Forward {
                from_port: video_b.rtp(),
                to: addr("10.0.0.2:30002"),
                len: p.len()
            }
        );
    }

    #[test]
    fn jitter_uses_the_stream_clock_rate() {
        let t = t0();
        let (mut s, h, a, _) = call(t);
        s.set_clock_rate(h, 0, 8000).unwrap();
        for (seq, at) in [(1u16, 0u64), (2, 20), (3, 50)] {
            let mut p = rtp(seq);
            let _ = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, at));
        }
        // seq 1 on probation; 2 sets the transit; 3 is 10 ms (80 units) late
        let rx = s.streams(h).unwrap()[0].leg(Side::A).rx();
        assert_eq!(rx.jitter().scaled(), 80);
        assert_eq!(rx.sequence().expected(), 2);
    }

    #[test]
    fn idle_sessions_are_reported_once() {
        let t = t0();
        let (mut s, h, a, _) = call(t);
        let timeout = Duration::from_secs(30);
        assert!(s.poll_idle(ms(t, 29_999), timeout).is_empty());
        let mut p = rtp(1);
        let _ = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 10_000));
        // the packet at 10 s restarts the clock
        let events = s.poll_idle(ms(t, 39_999), timeout);
        assert!(!events
            .iter()
            .any(|e| matches!(e, IdleEvent::NoMedia { .. })));
        let events = s.poll_idle(ms(t, 40_000), timeout);
        assert!(events.contains(&IdleEvent::NoMedia {
            session: h,
            quiet: timeout
        }));
        // once per episode
        assert!(!s
            .poll_idle(ms(t, 41_000), timeout)
            .iter()
            .any(|e| matches!(e, IdleEvent::NoMedia { .. })));
        assert_eq!(s.counters().no_media, 1);
        // media resumes, then stops again: a second episode
        let _ = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 50_000));
        assert!(!s
            .poll_idle(ms(t, 51_000), timeout)
            .iter()
            .any(|e| matches!(e, IdleEvent::NoMedia { .. })));
        assert_eq!(s.poll_idle(ms(t, 80_000), timeout).len(), 1);
        assert_eq!(s.counters().no_media, 2);
    }

    #[test]
    fn offer_only_sessions_time_out_too() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        assert_eq!(
            s.poll_idle(ms(t, 60_000), Duration::from_secs(60)),
            vec![IdleEvent::NoMedia {
                session: h,
                quiet: Duration::from_secs(60)
            }]
        );
    }

    #[test]
    fn one_way_media_is_detected() {
        let t = t0();
        let (mut s, h, a, b) = call(t);
        let timeout = Duration::from_secs(60);
        // the caller sends every 20 ms for 12 s, the PBX never answers with media
        let mut p = rtp(1);
        for i in 0..600u64 {
            let _ = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 20 * i));
        }
        assert!(s.poll_idle(ms(t, 9_999), timeout).is_empty());
        assert_eq!(
            s.poll_idle(ms(t, 11_990), timeout),
            vec![IdleEvent::OneWay {
                session: h,
                stream: 0,
                silent: Side::B
            }]
        );
        assert!(s.poll_idle(ms(t, 12_000), timeout).is_empty());
        assert_eq!(s.counters().one_way, 1);
        // the PBX starts sending: the episode ends
        let _ = s.on_packet(b.rtp(), addr(PBX), &mut p, ms(t, 12_010));
        assert!(s.poll_idle(ms(t, 12_020), timeout).is_empty());
        assert_eq!(s.counters().one_way, 1);
    }

    #[test]
    fn one_way_needs_both_remotes() {
        let t = t0();
        let mut s = shard();
        let h = s.allocate_session(t, 1).unwrap();
        s.set_remote(h, 0, Side::A, addr(CALLER), t).unwrap();
        let a = s.streams(h).unwrap()[0].leg(Side::A).ports();
        let mut p = rtp(1);
        let _ = s.on_packet(a.rtp(), addr(CALLER), &mut p, ms(t, 15_000));
        // ringing: the callee has not answered, so silence on B is not one-way audio
        assert!(s
            .poll_idle(ms(t, 15_001), Duration::from_secs(60))
            .is_empty());
    }

    #[test]
    fn many_calls_fill_and_drain_the_shard() {
        let t = t0();
        let mut config = ShardConfig::new(20000, 20399); // 200 pairs: 100 calls
        config.quarantine = Duration::from_secs(1);
        let mut s = MediaShard::new(config).unwrap();
        let mut handles = Vec::new();
        for round in 0..50u64 {
            let now = t + Duration::from_secs(2 * round);
            while let Ok(h) = s.allocate_session(now, 1) {
                handles.push(h);
            }
            assert_eq!(s.len(), 100);
            assert_eq!(s.ports_free(), 0);
            for h in handles.drain(..) {
                s.release(h, now).unwrap();
            }
            assert!(s.is_empty());
            assert_eq!(s.ports_free(), 400);
        }
        assert_eq!(s.ports().double_frees(), 0);
    }
}
