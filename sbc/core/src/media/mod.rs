//! Media anchoring: what the core asks of the worker's media relay ([`MediaControl`]), the SDP plan
//! and rewrite that put the relay between the parties ([`anchor`]), and the B2BUA's per-call media
//! state ([`callmedia`]).
//!
//! The core owns no relay. Each worker owns its relay shard and hands it, as
//! `&mut dyn MediaControl`, to every call-level operation of the B2BUA and of the ng engine: one
//! way to reach media for both, and nothing of the relay's internals (port allocator, latches,
//! packet statistics) named here. The trait is called per call event (offer, answer, teardown,
//! query, the once-a-second idle scan), never per packet: the packet path stays in the worker,
//! on the shard itself.
//!
//! # Sides
//! A relay session has two legs per stream, [`MediaSide::A`] and [`MediaSide::B`]: A is the party
//! whose description opened the session (the caller; for the ng protocol, the `from-tag` of the
//! first offer), B the other. They are not the routing sides (outside/inside): a call may come
//! from either, so the media side is a type of its own.

use core::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub mod anchor;
pub mod callmedia;
pub mod codecs;
pub mod dtmf_relay;
pub mod sdes;
pub mod srtp;
#[doc(hidden)]
pub mod testing;

/// One of the two legs of a relayed stream. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaSide {
    /// The caller's leg: the party whose description opened the session.
    A,
    /// The callee's leg.
    B,
}

impl MediaSide {
    /// The opposite leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// A media session of the relay: opaque to the core, valid until it is released (the relay
/// refuses a released one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionHandle(u64);

impl SessionHandle {
    /// A handle from the relay's own encoding of its session (for the relay's adapter only).
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The relay's encoding (for the relay's adapter only).
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// The relay's local port pair of one leg of a stream: RTP, and RTCP (RTP + 1 on the real relay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RelayPorts {
    rtp: u16,
    rtcp: u16,
}

impl RelayPorts {
    /// The pair `rtp`, `rtcp`.
    pub fn new(rtp: u16, rtcp: u16) -> Self {
        Self { rtp, rtcp }
    }

    /// The RTP port (written in `m=`).
    pub fn rtp(self) -> u16 {
        self.rtp
    }

    /// The RTCP port (written in `a=rtcp`).
    pub fn rtcp(self) -> u16 {
        self.rtcp
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

/// How much of each packet of a stream the relay checks before forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Validation {
    /// Plain RTP/RTCP: the RTP header and padding, and the whole RTCP compound.
    #[default]
    Full,
    /// SRTP/SRTCP relayed without decryption: headers only.
    HeaderOnly,
    /// Not RTP at all (T.38 over UDPTL, DTLS-SRTP, other `udp` media): opaque datagrams.
    Opaque,
}

/// What an offer or answer tells the relay about one side of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteSpec {
    /// Where the remote wants media (opens the learning window of that leg).
    pub sdp: RemoteSdp,
    /// The payload's clock rate (for jitter); `None`: unknown, the stream keeps the one it has.
    pub clock_rate: Option<u32>,
    /// The packet checks the transport allows; `None`: the stream keeps the ones it has.
    pub validation: Option<Validation>,
    /// The IP the remote's signalling came from (`None`: unknown). In the learning window a source
    /// from it outranks any source other than the SDP address (a sprayer that sent first).
    pub signal: Option<IpAddr>,
}

/// What the relay knows of one remote address of a leg (its RTP or its RTCP port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The usable SDP address (port non-zero, IP specified).
    pub sdp: Option<SocketAddr>,
    /// The source learned from the remote's packets.
    pub learned: Option<SocketAddr>,
}

impl Endpoint {
    /// Where media toward this remote goes: the learned source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.learned.or(self.sdp)
    }
}

/// One leg of a stream as the relay reports it: its ports, its remote, and what came from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegStats {
    /// The relay's local ports of this leg.
    pub ports: RelayPorts,
    /// The remote negotiated rtcp-mux.
    pub rtcp_mux: bool,
    /// The remote's RTP address (and RTCP's on an rtcp-mux leg).
    pub rtp: Endpoint,
    /// The remote's RTCP address.
    pub rtcp: Endpoint,
    /// RTP packets received from the remote.
    pub packets: u64,
    /// RTP bytes received from the remote.
    pub bytes: u64,
    /// RTCP packets received from the remote.
    pub rtcp_packets: u64,
    /// RTCP bytes received from the remote.
    pub rtcp_bytes: u64,
    /// Packets from the remote relayed to the other leg.
    pub forwarded: u64,
    /// Packets arriving on this leg's ports that were dropped.
    pub dropped: u64,
    /// RTP packets lost (RFC 3550 App. A.3; negative with duplicates).
    pub lost: i64,
    /// Interarrival jitter in timestamp units (RFC 3550 App. A.8).
    pub jitter: u32,
    /// When the last packet arrived.
    pub last_packet: Option<Instant>,
    /// What the stream's SRTP and codec stages did to the packets from the remote.
    pub stages: StageStats,
}

/// What the stages of a stream did to the packets one leg's remote sent (all zero on a plain,
/// same-codec stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Packets from the remote that passed the SRTP stage (unprotected from it, or protected
    /// toward the other leg, or both).
    pub srtp_packets: u64,
    /// SRTP/SRTCP packets from the remote whose authentication tag did not verify (tampered, or
    /// another key).
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP packets from the remote refused as replays.
    pub srtp_replays: u64,
    /// Every packet from the remote the SRTP stage refused (the two above, malformed, no room for
    /// the tag, key lifetime used up).
    pub srtp_refused: u64,
    /// Audio frames from the remote converted into the other leg's codec.
    pub transcoded_frames: u64,
}

/// A telephone-event (RFC 4733) the relay took off a leg whose events are reported
/// ([`MediaControl::report_dtmf`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfDigit {
    /// The session.
    pub session: SessionHandle,
    /// The stream.
    pub stream: usize,
    /// The leg it came from.
    pub from: MediaSide,
    /// The event code (0-15).
    pub event: u8,
    /// Its duration in timestamp units.
    pub duration: u16,
}

/// One stream (`m=` line) of a session: its two legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamStats {
    /// Clock rate used for jitter (0: unknown).
    pub clock_rate: u32,
    /// Leg A.
    pub a: LegStats,
    /// Leg B.
    pub b: LegStats,
}

impl StreamStats {
    /// The leg on `side`.
    pub fn leg(&self, side: MediaSide) -> &LegStats {
        match side {
            MediaSide::A => &self.a,
            MediaSide::B => &self.b,
        }
    }

    /// The last packet on either leg.
    pub fn last_packet(&self) -> Option<Instant> {
        self.a.last_packet.max(self.b.last_packet)
    }
}

/// Something the relay's idle scan found. Each is reported once per episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleEvent {
    /// No packet on any leg of the session for at least the timeout, counted from the last packet or
    /// the last offer/answer, whichever is later.
    NoMedia {
        /// The session.
        session: SessionHandle,
        /// Time since the last packet or offer/answer.
        quiet: Duration,
    },
    /// In one stream, one leg sends and the other sends nothing (one-way audio).
    OneWay {
        /// The session.
        session: SessionHandle,
        /// The stream index.
        stream: usize,
        /// The leg that is silent.
        silent: MediaSide,
    },
}

/// Why the relay refused a control operation. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// Not enough port pairs for an all-or-nothing allocation.
    PortsExhausted {
        /// Pairs asked for.
        wanted: usize,
        /// Pairs that could have been handed out.
        available: usize,
    },
    /// A session needs at least one stream and at most the relay's maximum.
    StreamCount {
        /// Streams asked for.
        requested: usize,
        /// The relay's maximum.
        max: usize,
    },
    /// The handle names no live session (released already).
    UnknownSession,
    /// The session has no stream with this index.
    NoSuchStream {
        /// Index asked for.
        stream: usize,
        /// Streams the session has.
        streams: usize,
    },
    /// Any other refusal of the relay.
    Relay,
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PortsExhausted { wanted, available } => {
                write!(f, "{wanted} port pairs wanted, {available} available")
            }
            Self::StreamCount { requested, max } => {
                write!(f, "{requested} streams requested, 1..={max} allowed")
            }
            Self::UnknownSession => f.write_str("unknown or released media session"),
            Self::NoSuchStream { stream, streams } => {
                write!(f, "stream {stream} requested, the session has {streams}")
            }
            Self::Relay => f.write_str("media relay fault"),
        }
    }
}

impl std::error::Error for MediaError {}

/// One direction's master key: the suite (by its SDES name), key||salt, and `|lifetime`.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// The suite's SDES name, as the line that carried it spelled it.
    pub suite: String,
    /// Master key then master salt.
    pub key_salt: Vec<u8>,
    /// Packets the key may protect; `None`: the suite's maximum.
    pub lifetime: Option<u64>,
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKey")
            .field("suite", &self.suite)
            .field("key_salt", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The keys of the stage on one leg of a stream: what arrives on the leg is unprotected with
/// `unprotect` (the leg's remote's key), then protected with `protect` (the SBC's key for the
/// other leg's remote) before it leaves by the other leg. Both `None`: plain relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageKeys {
    /// The key of the packets arriving on the leg; `None`: they arrive in clear.
    pub unprotect: Option<SrtpKey>,
    /// The key of the packets leaving by the other leg; `None`: they leave in clear.
    pub protect: Option<SrtpKey>,
    /// SRTP is offered on the stream but the answer has not settled the keys: the relay refuses
    /// every packet arriving on the leg (nothing leaves in clear toward a leg offered SRTP).
    pub withheld: bool,
}

impl StageKeys {
    /// Plain relay.
    pub fn is_plain(&self) -> bool {
        self.unprotect.is_none() && self.protect.is_none() && !self.withheld
    }

    /// The stage of a leg whose keys are not settled yet.
    pub fn withheld() -> Self {
        Self {
            withheld: true,
            ..Self::default()
        }
    }
}

/// The worker's media relay as the core drives it. Implemented in the binary over the worker's
/// relay shard (and by a recording double in the core's tests). Every method is a per-call
/// operation; none is on the packet path.
pub trait MediaControl {
    /// Allocate a session of `streams` streams, two port pairs per stream (legs A and B), all or
    /// nothing. Each leg's learning window opens now, with no SDP address yet.
    fn allocate(&mut self, now: Instant, streams: usize) -> Result<SessionHandle, MediaError>;

    /// The number of streams of a live session.
    fn stream_count(&self, session: SessionHandle) -> Result<usize, MediaError>;

    /// The relay's local ports of `stream` on `side` (to write in the SDP sent to that side).
    fn local_ports(
        &self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
    ) -> Result<RelayPorts, MediaError>;

    /// The remote of `side` in `stream` was (re)negotiated at `now`: record its SDP address,
    /// clock rate and packet checks, and open a learning window on that leg.
    fn set_remote(
        &mut self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
        remote: &RemoteSpec,
        now: Instant,
    ) -> Result<(), MediaError>;

    /// End a session at `now`: its ports are freed and the handle becomes invalid.
    fn release(&mut self, session: SessionHandle, now: Instant) -> Result<(), MediaError>;

    /// End the session of a call that was never answered: like [`MediaControl::release`], but its
    /// ports may be reused at once (no quarantine), so that unanswered calls cannot keep the range
    /// out of use. The default is [`MediaControl::release`].
    fn release_at_once(&mut self, session: SessionHandle, now: Instant) -> Result<(), MediaError> {
        self.release(session, now)
    }

    /// Append the statistics of every stream of a session to `out`, stream `k` at `k` past its
    /// length on entry.
    fn stats(&self, session: SessionHandle, out: &mut Vec<StreamStats>) -> Result<(), MediaError>;

    /// Append to `out` the sessions without media for `timeout` and the one-way streams found since
    /// the last scan. Call it about once a second.
    fn poll_idle(&mut self, now: Instant, timeout: Duration, out: &mut Vec<IdleEvent>);

    /// The formats both legs of `stream` settled on (`None`: the same on both, relay as is): a
    /// relay with a codec stage transcodes and interworks DTMF between them. The default ignores
    /// it (a relay without codec stages).
    fn set_codecs(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _codecs: Option<&codecs::StreamCodecs>,
    ) -> Result<(), MediaError> {
        Ok(())
    }

    /// The SRTP keys of the stage on leg `side` of `stream` (`None`: plain relay): packets
    /// arriving on the leg are unprotected with `unprotect`, then protected with `protect` before
    /// they leave by the other leg. Replaces the leg's stage (and its contexts). The default
    /// refuses: a relay without SRTP stages cannot terminate SRTP.
    fn set_srtp(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _side: MediaSide,
        _keys: Option<&StageKeys>,
    ) -> Result<(), MediaError> {
        Err(MediaError::Relay)
    }

    /// Play DTMF event `event` (0-15) lasting `duration` timestamp units toward leg `toward` of
    /// `stream`, as RFC 4733 events of payload type `pt` (SIP INFO interworking). `Ok(false)`: the
    /// leg has digits enough queued already. The default refuses: a relay that cannot play
    /// events.
    fn send_dtmf(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _toward: MediaSide,
        _pt: u8,
        _event: u8,
        _duration: u16,
    ) -> Result<bool, MediaError> {
        Err(MediaError::Relay)
    }

    /// Play DTMF event `event` (0-15) lasting `duration` 8 kHz samples toward leg `toward` of
    /// `stream` as its dual tone over the G.711 audio relayed toward it (SIP INFO toward an
    /// `inband` leg). `Ok(false)`: the leg has digits enough queued already. The default
    /// refuses.
    fn send_dtmf_tone(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _toward: MediaSide,
        _event: u8,
        _duration: u16,
    ) -> Result<bool, MediaError> {
        Err(MediaError::Relay)
    }

    /// Report the in-band DTMF digits of leg `from`'s G.711 audio in `stream` by
    /// [`MediaControl::poll_dtmf`] (each once, when it ends) and mute them in the audio relayed
    /// on (`true`); `false`: stop. The default ignores it.
    fn hear_dtmf(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _from: MediaSide,
        _on: bool,
    ) -> Result<(), MediaError> {
        Ok(())
    }

    /// Take the telephone-events (payload type `pt`) of leg `from` of `stream` off the relay and
    /// report each once by [`MediaControl::poll_dtmf`]; `None`: relay them again. The default
    /// ignores it.
    fn report_dtmf(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _from: MediaSide,
        _pt: Option<u8>,
    ) -> Result<(), MediaError> {
        Err(MediaError::Relay)
    }

    /// The next telephone-event reported (oldest first). The default has none.
    fn poll_dtmf(&mut self) -> Option<DtmfDigit> {
        None
    }

    /// Whether telephone-events wait for [`MediaControl::poll_dtmf`] (cheap: asked every turn of
    /// the worker's loop).
    fn dtmf_pending(&self) -> bool {
        false
    }

    /// Most streams one session may have.
    fn max_streams(&self) -> usize;

    /// Ports not held by any session.
    fn ports_free(&self) -> usize;

    /// Live sessions.
    fn sessions(&self) -> usize;
}

/// A relay with no ports, for a worker whose media is not anchored: every allocation fails and
/// there is never a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoRelay;

impl MediaControl for NoRelay {
    fn allocate(&mut self, _now: Instant, streams: usize) -> Result<SessionHandle, MediaError> {
        Err(MediaError::PortsExhausted {
            wanted: 2 * streams,
            available: 0,
        })
    }

    fn stream_count(&self, _session: SessionHandle) -> Result<usize, MediaError> {
        Err(MediaError::UnknownSession)
    }

    fn local_ports(
        &self,
        _session: SessionHandle,
        _stream: usize,
        _side: MediaSide,
    ) -> Result<RelayPorts, MediaError> {
        Err(MediaError::UnknownSession)
    }

    fn set_remote(
        &mut self,
        _session: SessionHandle,
        _stream: usize,
        _side: MediaSide,
        _remote: &RemoteSpec,
        _now: Instant,
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownSession)
    }

    fn release(&mut self, _session: SessionHandle, _now: Instant) -> Result<(), MediaError> {
        Err(MediaError::UnknownSession)
    }

    fn stats(
        &self,
        _session: SessionHandle,
        _out: &mut Vec<StreamStats>,
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownSession)
    }

    fn poll_idle(&mut self, _now: Instant, _timeout: Duration, _out: &mut Vec<IdleEvent>) {}

    fn max_streams(&self) -> usize {
        0
    }

    fn ports_free(&self) -> usize {
        0
    }

    fn sessions(&self) -> usize {
        0
    }
}
