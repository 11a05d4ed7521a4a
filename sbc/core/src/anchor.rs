//! SDP media anchoring: the edits that put the SBC's media relay between the two parties of a call.
//!
//! An SBC that anchors media rewrites every session description it relays so that each party sends
//! its media to the SBC: the caller sees the SBC's address and ports on leg A, the callee the SBC's
//! address and other ports on leg B, and the worker's [`MediaShard`] relays between the two. This
//! module is pure (no IO, no clock) and works in two steps on a parsed [`Sdp`]:
//!
//! 1. [`plan`] reads a received description: one [`MediaEntry`] per `m=` line, in order, saying
//!    whether the stream is relayed, rejected by the peer or refused by the SBC, where the peer
//!    wants its media ([`RemoteSdp`]), its direction and whether it is on hold. A description the
//!    SBC must not relay fails with an [`AnchorError`] that names the SIP status to answer with.
//! 2. [`rewrite`] edits the description before it is sent on the other leg: the SBC's address in
//!    `c=`, its ports in `m=` and `a=rtcp`, ICE attributes removed, and (by default) the SBC's own
//!    `o=` line whose version changes only when the description does.
//!
//! # Calling it
//!
//! The B2BUA keeps per call one [`SessionHandle`], one [`OriginState`] per leg, and nothing else of
//! this module. Stream `k` of the media session is `m=` line `k` (see [`MediaPlan::stream_count`]),
//! so a stream keeps its ports for the whole call.
//!
//! - **Offer** (INVITE from A, or the ng `offer` command): `Sdp::parse` the body (fault: 400) and
//!   [`plan`] it (fault: [`AnchorError::status`]); `shard.allocate_session(now,
//!   plan.stream_count())` (503 when ports run out; no session when the count is 0);
//!   [`MediaPlan::set_remotes`] for [`Side::A`]; [`MediaPlan::local_ports`] for [`Side::B`]; then
//!   [`rewrite`] with the SBC's leg-B address and leg B's [`OriginState`], and send the result to B.
//! - **Answer** (18x/2xx from B, or ng `answer`): parse and [`plan`] the answer;
//!   [`MediaPlan::set_remotes`] for [`Side::B`]; [`MediaPlan::local_ports`] for [`Side::A`];
//!   [`rewrite`] with the leg-A address and leg A's [`OriginState`]. A fault here cannot be answered
//!   with a status (it is a response): the B2BUA acknowledges and ends the call.
//! - **Re-INVITE / UPDATE** from side X: the same as an offer from X, on the existing session. When
//!   `plan.stream_count()` exceeds the session's streams (an `m=` line was added), the B2BUA
//!   allocates a new session, rewrites with its ports and releases the old one once the answer has
//!   arrived. The answer is handled as above with the sides swapped. Hold and resume are plain
//!   re-offers: directions and `c=0.0.0.0` pass through, ports stay.
//! - **Teardown** (BYE, CANCEL, failure, ng `delete`): `shard.release(handle, now)`; drop the
//!   origin states.
//!
//! # Rules
//!
//! | received | what the SBC does |
//! |---|---|
//! | `m=` port 0 | rejected (RFC 3264 §6) or disabled (§8.2): stays port 0, no relay ports used |
//! | `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`, `UDP/TLS/RTP/SAVPF` | relayed |
//! | `udptl` (T.38 fax), other `UDP/...` and `udp` | relayed as plain UDP ([`NonRtp::Relay`], default), or refused ([`NonRtp::Refuse`]) |
//! | any other transport (`TCP/...`, `TCP/MSRP`, unknown `RTP/...`) | refused: written with port 0, so the answer rejects it |
//! | `m=` port count above 1 on an active stream | 488 (one relay pair per `m=` line) |
//! | active stream without `c=` (media or session level) | 400 (RFC 8866 §5.7) |
//! | multicast `c=`, network type other than `IN`, host name or unknown address type | 488 (no DNS on the call path), unless [`PlanOptions`] replaces the address |
//! | `c=0.0.0.0` / `c=::` (RFC 2543 hold, RFC 3264 §8.4) | kept as written; the relay has no destination until the peer sends |
//! | `sendonly`, `recvonly`, `inactive`, `sendrecv` | kept exactly, at the level written |
//! | `a=rtcp` (RFC 3605) | remote RTCP address read; rewritten to the SBC's ports, or removed with `a=rtcp-mux` |
//! | `a=rtcp-mux` (RFC 5761) | kept; the relay muxes or demuxes per leg |
//! | ICE attributes (RFC 8839) | removed (the SBC is the only candidate), unless kept by option |
//! | `a=crypto`, `a=fingerprint`, `a=setup` | untouched: SRTP keys pass end to end and the relay forwards SRTP as is (RTP header checked only; DTLS-SRTP and T.38 relayed as opaque datagrams); terminating SRTP is a later step |
//! | codecs (`a=rtpmap`, `a=fmtp`, `a=ptime`, ...) and every other line | untouched |
//! | more than [`PlanOptions::max_media`] `m=` lines, or more streams than [`PlanOptions::max_streams`] | 488 |
//!
//! Everything read from the peer goes through checked parsing: no input makes this module panic,
//! and the work is bounded by the `m=` line limit and [`sbc_sip::sdp::MAX_LINES`].

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use media_plane::ports::PortPair;
use media_plane::shard::{MediaShard, RemoteSdp, SessionHandle, Side, Stream, Validation};
use sbc_sip::sdp::{Connection, Direction, Origin, Scope, Sdp, SdpError};

/// Default for [`PlanOptions::max_media`]: `m=` lines accepted in one description. Re-offers never
/// remove `m=` lines (RFC 3264 §8.1), so a long call that adds and drops streams keeps growing.
pub const DEFAULT_MAX_MEDIA: usize = 16;

/// Default for [`PlanOptions::max_streams`]: the media plane's default streams per session.
pub const DEFAULT_MAX_STREAMS: usize = 8;

// -------------------------------------------------------------------------------------------------
// Transports

/// The transport of an `m=` line (its proto field, compared ASCII case-insensitively).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `RTP/AVP` (RFC 3551).
    RtpAvp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVP` (RFC 3711).
    RtpSavp,
    /// `RTP/SAVPF` (RFC 5124).
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP` (DTLS-SRTP, RFC 5764).
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF` (DTLS-SRTP, RFC 5764).
    UdpTlsRtpSavpf,
    /// `udptl`: T.38 fax (ITU-T T.38 Annex D).
    Udptl,
    /// Another datagram transport (`udp`, `UDP/BFCP`, `UDP/TLS/UDPTL`, ...), relayed as opaque UDP.
    Udp,
    /// A transport the relay cannot carry (`TCP/...`, unknown `RTP/...` profiles, ...).
    Unsupported,
}

/// The RTP profiles the relay carries, by proto name.
const RTP_PROFILES: [(&str, Transport); 6] = [
    ("RTP/AVP", Transport::RtpAvp),
    ("RTP/AVPF", Transport::RtpAvpf),
    ("RTP/SAVP", Transport::RtpSavp),
    ("RTP/SAVPF", Transport::RtpSavpf),
    ("UDP/TLS/RTP/SAVP", Transport::UdpTlsRtpSavp),
    ("UDP/TLS/RTP/SAVPF", Transport::UdpTlsRtpSavpf),
];

impl Transport {
    /// Classify an `m=` proto field.
    pub fn of(proto: &str) -> Self {
        if let Some((_, t)) = RTP_PROFILES
            .iter()
            .find(|(name, _)| proto.eq_ignore_ascii_case(name))
        {
            return *t;
        }
        if proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP")) {
            // An RTP profile the SBC does not know (or RTP over TCP, RFC 4571).
            return Self::Unsupported;
        }
        if proto.eq_ignore_ascii_case("udptl") {
            return Self::Udptl;
        }
        let udp = proto.eq_ignore_ascii_case("udp")
            || proto
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("UDP/"));
        if udp {
            Self::Udp
        } else {
            Self::Unsupported
        }
    }

    /// An RTP profile: the formats are payload types and RTCP flows beside RTP.
    pub fn is_rtp(self) -> bool {
        matches!(
            self,
            Self::RtpAvp
                | Self::RtpAvpf
                | Self::RtpSavp
                | Self::RtpSavpf
                | Self::UdpTlsRtpSavp
                | Self::UdpTlsRtpSavpf
        )
    }

    /// A secure RTP profile (SDES or DTLS-SRTP): the relay cannot read past the RTP header.
    pub fn is_secure(self) -> bool {
        matches!(
            self,
            Self::RtpSavp | Self::RtpSavpf | Self::UdpTlsRtpSavp | Self::UdpTlsRtpSavpf
        )
    }

    fn is_relayed(self, non_rtp: NonRtp) -> bool {
        match self {
            Self::Udptl | Self::Udp => non_rtp == NonRtp::Relay,
            Self::Unsupported => false,
            _ => true,
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Options

/// Where the relay sends a peer's media before it has heard from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RemoteAddress {
    /// The address written in the peer's SDP (rtpengine ng flag `trust-address`, its default).
    #[default]
    TrustSdp,
    /// The source address of the SIP message that carried the SDP (ng `SIP-source-address` with
    /// `received-from`): for peers behind NAT that write private addresses. Only the IP is
    /// replaced; ports come from the SDP. Latching corrects the port once media flows.
    SipSource(IpAddr),
}

/// What happens to `m=` lines that are not RTP but run over UDP (T.38 `udptl`, `UDP/BFCP`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NonRtp {
    /// Relayed as opaque UDP on a port pair of their own (the RTCP port stays unused).
    #[default]
    Relay,
    /// Refused: written with port 0, so the far end rejects the stream (a fax then falls back to
    /// G.711 pass-through).
    Refuse,
}

/// How [`plan`] reads a description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Where the peer's media goes (ng `trust-address` / `SIP-source-address`). Default: the SDP.
    pub address: RemoteAddress,
    /// Overrides both the SDP and [`PlanOptions::address`] (ng `media-address`). Default: none.
    /// An unspecified `c=` (hold) is kept whatever the address says.
    pub media_address: Option<IpAddr>,
    /// Non-RTP UDP streams. Default: relayed.
    pub non_rtp: NonRtp,
    /// Most `m=` lines in one description. Default [`DEFAULT_MAX_MEDIA`].
    pub max_media: usize,
    /// Most streams one session may need ([`MediaPlan::stream_count`]); keep it at or below the
    /// media plane's `max_streams`. Default [`DEFAULT_MAX_STREAMS`].
    pub max_streams: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            address: RemoteAddress::TrustSdp,
            media_address: None,
            non_rtp: NonRtp::Relay,
            max_media: DEFAULT_MAX_MEDIA,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// What [`rewrite`] does with the `o=` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OriginMode {
    /// The SBC's own origin for the leg (username and session id from the [`OriginState`], address
    /// = the SBC's, version incremented only when the description changes, RFC 3264 §8). Nothing of
    /// the other party's `o=` crosses. The B2BUA's default; ng `replace: origin-full` with
    /// `SDP-version`.
    #[default]
    Own,
    /// Only the address is replaced by the SBC's (ng `replace: origin`).
    Address,
    /// Left as received (the ng default).
    Keep,
}

/// How [`rewrite`] edits a description. [`RewriteOptions::default`] is the B2BUA's choice,
/// [`RewriteOptions::ng`] the rtpengine ng protocol's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteOptions {
    /// The `o=` line. Default [`OriginMode::Own`].
    pub origin: OriginMode,
    /// Write one session-level `c=` with the SBC's address and drop the media-level ones it makes
    /// redundant (ng `replace: session-connection`). Off: every `c=` line is rewritten where it is,
    /// and a media section that has none gets none. Default off.
    pub session_connection: bool,
    /// Rewrite an unspecified `c=` (`0.0.0.0`, `::`) too (ng `replace: zero-address`). Off, the
    /// default, lets an RFC 2543-style hold pass to the other party.
    pub zero_address: bool,
    /// Keep the ICE attributes (ng `ICE=...` other than `remove`). They name the other party's
    /// addresses, so keeping them defeats topology hiding. Default off: removed.
    pub keep_ice: bool,
    /// Keep `a=rtcp` on a stream that uses `a=rtcp-mux` (rewritten like any `a=rtcp`). Default off:
    /// removed, since a peer that declines muxing sends RTCP to the SBC's RTP port + 1 anyway.
    pub rtcp_with_mux: bool,
    /// Always write the address in `a=rtcp` (ng `full-rtcp-attribute`). Off, the default: written
    /// only where the received attribute had one.
    pub full_rtcp_attribute: bool,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        Self {
            origin: OriginMode::Own,
            session_connection: false,
            zero_address: false,
            keep_ice: false,
            rtcp_with_mux: false,
            full_rtcp_attribute: false,
        }
    }
}

impl RewriteOptions {
    /// The rtpengine ng protocol's defaults, before its `replace`, `ICE` and `rtcp` flags: the `o=`
    /// line is left as received.
    pub fn ng() -> Self {
        Self {
            origin: OriginMode::Keep,
            ..Self::default()
        }
    }
}

// -------------------------------------------------------------------------------------------------
// The plan

/// What becomes of one `m=` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Relayed: the peer's media address as its SDP (and [`PlanOptions`]) describe it.
    Relay(RemoteSdp),
    /// Port 0 in the received description: rejected (in an answer) or disabled (in an offer).
    Rejected,
    /// The SBC cannot or will not relay this transport; [`rewrite`] writes it with port 0.
    Refused,
}

/// One `m=` line of a received description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaEntry {
    /// The transport.
    pub transport: Transport,
    /// What the SBC does with it.
    pub disposition: Disposition,
    /// The direction attribute in force: the media section's, else the session's, else `sendrecv`.
    pub direction: Direction,
    /// The `c=` in force is unspecified (`0.0.0.0` or `::`): RFC 2543-style hold.
    pub zero_address: bool,
    /// The RTP clock rate of the preferred format (first in the `m=` line), from its `a=rtpmap`
    /// or the static payload types of RFC 3551; 0 when unknown or not RTP.
    pub clock_rate: u32,
}

impl MediaEntry {
    /// The peer's address for a relayed stream.
    pub fn remote(&self) -> Option<RemoteSdp> {
        match self.disposition {
            Disposition::Relay(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the stream needs relay ports.
    pub fn is_relayed(&self) -> bool {
        matches!(self.disposition, Disposition::Relay(_))
    }

    /// A relayed stream whose author does not want to receive media (RFC 3264 §8.4): `sendonly`,
    /// `inactive`, or an unspecified `c=`.
    pub fn on_hold(&self) -> bool {
        self.is_relayed() && (self.zero_address || !self.direction.receives())
    }
}

/// The media of one received description, one entry per `m=` line in order. See [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaPlan {
    entries: Vec<MediaEntry>,
    streams: usize,
}

impl MediaPlan {
    /// The entries, index `k` for `m=` line `k`.
    pub fn entries(&self) -> &[MediaEntry] {
        &self.entries
    }

    /// The number of streams to allocate: stream `k` serves `m=` line `k`, up to the last relayed
    /// line (a rejected line before it costs an unused pair per leg, the price of ports that never
    /// move). 0 when nothing is relayed: no session is needed.
    pub fn stream_count(&self) -> usize {
        self.streams
    }

    /// Whether some stream is relayed.
    pub fn any_relayed(&self) -> bool {
        self.streams > 0
    }

    /// The SBC's local ports to write toward `side`, one per `m=` line (`None`: not relayed),
    /// taken from the session's `streams` (`MediaShard::streams`). Fails when the session has
    /// fewer streams than [`MediaPlan::stream_count`].
    pub fn local_ports(
        &self,
        streams: &[Stream],
        side: Side,
    ) -> Result<Vec<Option<PortPair>>, AnchorError> {
        if streams.len() < self.streams {
            return Err(AnchorError::SessionTooSmall {
                needed: self.streams,
                streams: streams.len(),
            });
        }
        Ok(self
            .entries
            .iter()
            .zip(0..)
            .map(|(e, k)| {
                e.is_relayed()
                    .then(|| streams.get(k).map(|s| s.leg(side).ports()))
                    .flatten()
            })
            .collect())
    }

    /// Give the media plane the peer's addresses: `set_remote` on `side` of every relayed stream
    /// (which opens its latch window), the clock rate where known, and the packet checks the
    /// transport allows (SRTP: header only; DTLS-SRTP, T.38 and other UDP: none).
    pub fn set_remotes(
        &self,
        shard: &mut MediaShard,
        handle: SessionHandle,
        side: Side,
        now: Instant,
    ) -> Result<(), media_plane::Error> {
        for (k, entry) in self.entries.iter().enumerate() {
            let Some(remote) = entry.remote() else {
                continue;
            };
            shard.set_remote(handle, k, side, remote, now)?;
            if entry.clock_rate != 0 {
                shard.set_clock_rate(handle, k, entry.clock_rate)?;
            }
            // What the relay may check: SDES-SRTP keeps a readable RTP header; DTLS-SRTP mixes
            // DTLS records with SRTP, and T.38 is not RTP at all.
            let validation = match entry.transport {
                Transport::RtpSavp | Transport::RtpSavpf => Some(Validation::HeaderOnly),
                Transport::UdpTlsRtpSavp
                | Transport::UdpTlsRtpSavpf
                | Transport::Udptl
                | Transport::Udp => Some(Validation::Opaque),
                _ => None,
            };
            if let Some(v) = validation {
                shard.set_validation(handle, k, v)?;
            }
        }
        Ok(())
    }
}

/// Read a received description: what to relay, where the peer wants media, what is on hold.
/// Changes nothing. See the [module docs](self) for the rules and the errors.
pub fn plan(sdp: &Sdp<'_>, opts: &PlanOptions) -> Result<MediaPlan, AnchorError> {
    let count = sdp.media_count();
    if count > opts.max_media {
        return Err(AnchorError::TooManyMedia {
            count,
            max: opts.max_media,
        });
    }
    let mut entries = Vec::with_capacity(count);
    let mut streams = 0;
    for k in 0..count {
        // Unreachable: the parser refuses an m= line that `media` could not read back.
        let m = sdp.media(k).ok_or(AnchorError::Sdp(SdpError::BadMedia {
            line: u32::try_from(k).unwrap_or(u32::MAX),
        }))?;
        let transport = Transport::of(m.proto);
        let conn = sdp.effective_connection(k);
        let zero_address = conn.is_some_and(|c| c.is_unspecified());
        let disposition = if m.is_rejected() {
            Disposition::Rejected
        } else if !transport.is_relayed(opts.non_rtp) {
            Disposition::Refused
        } else {
            if m.port_count.is_some_and(|n| n > 1) {
                return Err(AnchorError::PortCount { media: k });
            }
            let conn = conn.ok_or(AnchorError::NoConnection { media: k })?;
            let ip = remote_ip(&conn, opts, k)?;
            let rtcp = sdp.rtcp(k).map(|r| {
                let named = r
                    .connection
                    .filter(|c| c.net_type.eq_ignore_ascii_case("IN"))
                    .and_then(|c| c.ip())
                    .filter(|ip| !ip.is_multicast());
                let rtcp_ip = match named {
                    Some(named) if named.is_unspecified() => named,
                    Some(named) if replacement(opts).is_none() => named,
                    // No usable address of its own: RTCP goes where RTP goes.
                    _ => ip,
                };
                SocketAddr::new(rtcp_ip, r.port)
            });
            streams = k + 1;
            Disposition::Relay(RemoteSdp {
                rtp: SocketAddr::new(ip, m.port),
                rtcp,
                rtcp_mux: sdp.rtcp_mux(k),
            })
        };
        let clock_rate = if transport.is_rtp() {
            m.formats()
                .next()
                .and_then(|f| f.parse::<u8>().ok())
                .and_then(|pt| {
                    sdp.rtpmap(k, pt)
                        .map(|r| r.clock_rate)
                        .or_else(|| static_clock_rate(pt))
                })
                .unwrap_or(0)
        } else {
            0
        };
        entries.push(MediaEntry {
            transport,
            disposition,
            direction: sdp.effective_direction(k),
            zero_address,
            clock_rate,
        });
    }
    if streams > opts.max_streams {
        return Err(AnchorError::TooManyStreams {
            count: streams,
            max: opts.max_streams,
        });
    }
    Ok(MediaPlan { entries, streams })
}

/// The address [`PlanOptions`] puts in place of the SDP's, if any.
fn replacement(opts: &PlanOptions) -> Option<IpAddr> {
    opts.media_address.or(match opts.address {
        RemoteAddress::TrustSdp => None,
        RemoteAddress::SipSource(ip) => Some(ip),
    })
}

/// The peer's media IP for a relayed stream whose `c=` in force is `conn`.
fn remote_ip(
    conn: &Connection<'_>,
    opts: &PlanOptions,
    media: usize,
) -> Result<IpAddr, AnchorError> {
    if !conn.net_type.eq_ignore_ascii_case("IN") {
        return Err(AnchorError::UnsupportedAddress { media });
    }
    let ip = conn.ip();
    if let Some(ip) = ip {
        // RFC 3264 §8.4: the peer asks not to receive; the relay has no destination for it.
        if ip.is_unspecified() {
            return Ok(ip);
        }
        if ip.is_multicast() {
            return Err(AnchorError::Multicast { media });
        }
    }
    // A host name or an unknown address type is usable only when it is not used.
    replacement(opts)
        .or(ip)
        .ok_or(AnchorError::UnsupportedAddress { media })
}

/// Clock rates of the static RTP payload types (RFC 3551 tables 4 and 5).
fn static_clock_rate(pt: u8) -> Option<u32> {
    match pt {
        0 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 => Some(8000),
        6 => Some(16000),
        10 | 11 => Some(44100),
        16 => Some(11025),
        17 => Some(22050),
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => Some(90000),
        _ => None,
    }
}

// -------------------------------------------------------------------------------------------------
// The origin of each leg

/// The SBC's `o=` line toward one leg (RFC 3264 §8): username and session id fixed for the leg,
/// version incremented exactly when the description the SBC sends on that leg changes, offers and
/// answers alike. Kept by the B2BUA per leg for the life of the call.
///
/// [`rewrite`] updates it when it succeeds: call it only for a description that is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginState {
    username: Cow<'static, str>,
    session_id: u64,
    version: u64,
    /// Digest of the last description sent, its `o=` line left out; `None` before the first.
    sent: Option<u64>,
}

impl OriginState {
    /// A leg's origin with username `-` (RFC 8866 §5.2: no user ids), `session_id` (any number the
    /// caller draws, unique enough per call) and the version of the first description.
    pub fn new(session_id: u64, version: u64) -> Self {
        Self {
            username: Cow::Borrowed("-"),
            session_id,
            version,
            sent: None,
        }
    }

    /// Use another username (one token, no blank); [`rewrite`] fails with a bad one.
    pub fn with_username(mut self, username: impl Into<Cow<'static, str>>) -> Self {
        self.username = username.into();
        self
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description sent (or of the first, before any was sent).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// FNV-1a over the lines and their ends, the `o=` line left out: whether a description changed.
fn digest(sdp: &Sdp<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in sdp.lines().filter(|l| !l.starts_with(b"o=")) {
        for &b in line.iter().chain(b"\n") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

// -------------------------------------------------------------------------------------------------
// The rewrite

/// What [`rewrite`] needs to know of a media section before it edits anything.
struct Section {
    /// The `m=` port as received.
    port: u16,
    /// The SBC's ports, for a relayed stream.
    relay: Option<PortPair>,
    /// The section's own first `c=`: `Some(unspecified literal or None)`.
    own_conn: Option<Option<IpAddr>>,
    /// The unspecified address of the `c=` in force, if it is one.
    zero: Option<IpAddr>,
    /// Whether any `c=` is in force.
    has_conn: bool,
    /// `a=rtcp` present; `Some((named the m= port, had an address))` when it parsed.
    rtcp: Option<Option<(bool, bool)>>,
    mux: bool,
}

/// Edit a description for the leg it is sent on: the SBC's address `local_ip` in `c=` (and `o=`),
/// `ports[k]` in `m=` line `k` (`None`, or `k` past the slice: port 0), `a=rtcp` to the SBC's
/// ports, ICE attributes removed, the `o=` line per [`RewriteOptions::origin`]. Directions, codecs,
/// `a=crypto` and every other line are left as they are. A line already at port 0 stays there.
///
/// `origin` is the state of the leg the description is sent on; it is read and updated only in
/// [`OriginMode::Own`]. On error the description may be half edited (discard it); `origin` is
/// unchanged.
pub fn rewrite(
    sdp: &mut Sdp<'_>,
    local_ip: IpAddr,
    ports: &[Option<PortPair>],
    origin: &mut OriginState,
    opts: &RewriteOptions,
) -> Result<(), AnchorError> {
    let sections: Vec<Section> = (0..sdp.media_count())
        .map(|k| section(sdp, k, ports))
        .collect();
    let session_conn = sdp.connection(Scope::Session).map(|c| unspecified(&c));

    for (k, s) in sections.iter().enumerate() {
        match s.relay {
            Some(pair) => sdp.set_media_port(k, pair.rtp()),
            None if s.port != 0 => sdp.reject_media(k),
            None => Ok(()),
        }
        .map_err(AnchorError::Rewrite)?;
        if let Some(parsed) = s.rtcp {
            match s.relay {
                Some(pair) if !s.mux || opts.rtcp_with_mux => {
                    let (names_rtp, had_addr) = parsed.unwrap_or((false, false));
                    let port = if names_rtp { pair.rtp() } else { pair.rtcp() };
                    let ip = (had_addr || opts.full_rtcp_attribute).then_some(local_ip);
                    sdp.set_rtcp(k, port, ip).map_err(AnchorError::Rewrite)?;
                }
                _ => {
                    sdp.remove_rtcp(k);
                }
            }
        }
    }

    let keep = |zero: Option<IpAddr>| zero.is_some() && !opts.zero_address;
    if opts.session_connection {
        sdp.set_connection_addr(Scope::Session, local_ip)
            .map_err(AnchorError::Rewrite)?;
        for (k, s) in sections.iter().enumerate() {
            let hold = s.relay.is_some() && keep(s.zero);
            match (hold, s.own_conn, s.zero) {
                // Already says hold in its own c=.
                (true, Some(Some(_)), _) => {}
                (true, _, Some(zero)) => sdp
                    .set_connection_addr(Scope::Media(k), zero)
                    .map_err(AnchorError::Rewrite)?,
                _ => {
                    sdp.remove_connection(Scope::Media(k));
                }
            }
        }
    } else {
        if let Some(zero) = session_conn {
            if !keep(zero) {
                sdp.set_connection_addr(Scope::Session, local_ip)
                    .map_err(AnchorError::Rewrite)?;
            }
        }
        for (k, s) in sections.iter().enumerate() {
            let rewrite_own = s.own_conn.is_some_and(|zero| !keep(zero));
            let missing = s.relay.is_some() && !s.has_conn;
            if rewrite_own || missing {
                sdp.set_connection_addr(Scope::Media(k), local_ip)
                    .map_err(AnchorError::Rewrite)?;
            }
        }
    }

    if !opts.keep_ice {
        sdp.remove_ice();
    }

    match opts.origin {
        OriginMode::Keep => {}
        OriginMode::Address => sdp.set_origin_address(local_ip),
        OriginMode::Own => {
            let now = digest(sdp);
            let version = match origin.sent {
                Some(before) if before != now => origin.version.saturating_add(1),
                _ => origin.version,
            };
            let session_id = origin.session_id.to_string();
            let address = local_ip.to_string();
            let line = Origin {
                username: &origin.username,
                session_id: &session_id,
                session_version: version,
                net_type: "IN",
                addr_type: Connection::addr_type_of(&local_ip),
                address: &address,
            };
            sdp.set_origin(&line).map_err(AnchorError::Rewrite)?;
            origin.version = version;
            origin.sent = Some(now);
        }
    }
    Ok(())
}

/// The unspecified literal of a connection, if it is one.
fn unspecified(c: &Connection<'_>) -> Option<IpAddr> {
    c.ip().filter(IpAddr::is_unspecified)
}

fn section(sdp: &Sdp<'_>, k: usize, ports: &[Option<PortPair>]) -> Section {
    let port = sdp.media(k).map_or(0, |m| m.port);
    let relay = ports.get(k).copied().flatten().filter(|_| port != 0);
    let own = sdp.connection(Scope::Media(k));
    let effective = sdp.effective_connection(k);
    let rtcp = sdp.has_attribute(Scope::Media(k), "rtcp").then(|| {
        sdp.rtcp(k)
            .map(|r| (r.port == port, r.connection.is_some()))
    });
    Section {
        port,
        relay,
        own_conn: own.map(|c| unspecified(&c)),
        zero: effective.as_ref().and_then(unspecified),
        has_conn: effective.is_some(),
        rtcp,
        mux: sdp.rtcp_mux(k),
    }
}

// -------------------------------------------------------------------------------------------------
// Errors

/// Why a description cannot be anchored. Each fault maps to the SIP status the B2BUA answers an
/// offer with ([`AnchorError::status`]); carries no heap data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorError {
    /// The body is not a valid SDP (from `Sdp::parse`).
    Sdp(SdpError),
    /// More `m=` lines than [`PlanOptions::max_media`].
    TooManyMedia {
        /// `m=` lines received.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// More streams needed than [`PlanOptions::max_streams`].
    TooManyStreams {
        /// Streams needed ([`MediaPlan::stream_count`]).
        count: usize,
        /// The bound.
        max: usize,
    },
    /// An active stream has no `c=`, neither its own nor the session's (RFC 8866 §5.7).
    NoConnection {
        /// The 0-based `m=` index.
        media: usize,
    },
    /// An active stream's `c=` is not an `IN IP4`/`IN IP6` address literal the SBC can use.
    UnsupportedAddress {
        /// The 0-based `m=` index.
        media: usize,
    },
    /// An active stream's `c=` is a multicast address: the relay is unicast.
    Multicast {
        /// The 0-based `m=` index.
        media: usize,
    },
    /// An active stream asks for several ports (`m=audio 49170/2`): one relay pair per `m=` line.
    PortCount {
        /// The 0-based `m=` index.
        media: usize,
    },
    /// The media session has fewer streams than the plan needs (a caller bug, or a re-offer that
    /// added streams to a session allocated before).
    SessionTooSmall {
        /// Streams the plan needs.
        needed: usize,
        /// Streams the session has.
        streams: usize,
    },
    /// An edit of the description failed (a bad [`OriginState`] username).
    Rewrite(SdpError),
}

impl From<SdpError> for AnchorError {
    fn from(e: SdpError) -> Self {
        Self::Sdp(e)
    }
}

impl AnchorError {
    /// The SIP status for an offer that fails so: 400 for a malformed description (no SDP grammar,
    /// no `c=`), 488 Not Acceptable Here for one the SBC will not relay, 500 for its own faults.
    /// A fault in an answer (a response) cannot be answered: the B2BUA acknowledges and ends the
    /// call.
    pub fn status(&self) -> u16 {
        match self {
            Self::Sdp(_) | Self::NoConnection { .. } => 400,
            Self::TooManyMedia { .. }
            | Self::TooManyStreams { .. }
            | Self::UnsupportedAddress { .. }
            | Self::Multicast { .. }
            | Self::PortCount { .. } => 488,
            Self::SessionTooSmall { .. } | Self::Rewrite(_) => 500,
        }
    }

    /// A short, stable label (metric label, log, reason text).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Sdp(e) => e.reason(),
            Self::TooManyMedia { .. } => "too many m= lines",
            Self::TooManyStreams { .. } => "too many media streams",
            Self::NoConnection { .. } => "no c= for an active stream",
            Self::UnsupportedAddress { .. } => "unsupported media address",
            Self::Multicast { .. } => "multicast media address",
            Self::PortCount { .. } => "m= port count above 1",
            Self::SessionTooSmall { .. } => "media session too small",
            Self::Rewrite(_) => "SDP rewrite failed",
        }
    }
}

impl fmt::Display for AnchorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Sdp(e) => write!(f, "{e}"),
            Self::Rewrite(e) => write!(f, "{}: {e}", self.reason()),
            Self::TooManyMedia { count, max } | Self::TooManyStreams { count, max } => {
                write!(f, "{} ({count}, at most {max})", self.reason())
            }
            Self::NoConnection { media }
            | Self::UnsupportedAddress { media }
            | Self::Multicast { media }
            | Self::PortCount { media } => write!(f, "{} (media {media})", self.reason()),
            Self::SessionTooSmall { needed, streams } => {
                write!(f, "{} (needs {needed}, has {streams})", self.reason())
            }
        }
    }
}

impl std::error::Error for AnchorError {}

#[cfg(test)]
mod tests {
    use super::*;
    use media_plane::ports::PortAllocator;
    use media_plane::shard::ShardConfig;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    /// The SBC's outside address (toward leg A) and inside address (toward leg B).
    const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1));

    #[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
    fn t0() -> Instant {
        Instant::now()
    }

    /// Lines joined with CRLF, as the SDP writer ends them.
    fn text(lines: &[&str]) -> String {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n");
        s
    }

    /// `n` relay pairs as a fresh allocator hands them out: 30000, 30002, ...
    fn pairs(n: usize) -> Vec<Option<PortPair>> {
        let mut a = PortAllocator::new(30000, 30099, Duration::ZERO).unwrap();
        let now = t0();
        (0..n).map(|_| Some(a.allocate(now).unwrap())).collect()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Parse, plan with the defaults, rewrite toward `local` with `ports`; the output text.
    fn run(
        input: &str,
        local: IpAddr,
        ports: &[Option<PortPair>],
        origin: &mut OriginState,
        opts: &RewriteOptions,
    ) -> String {
        let mut sdp = Sdp::parse_str(input).unwrap();
        plan(&sdp, &PlanOptions::default()).unwrap();
        rewrite(&mut sdp, local, ports, origin, opts).unwrap();
        let out = String::from_utf8(sdp.to_vec()).unwrap();
        // Whatever the SBC writes, it can read back.
        assert!(Sdp::parse_str(&out).is_ok(), "{out}");
        out
    }

    /// [`run`] with `n` fresh pairs and a fresh origin (session id 1, version 1).
    fn anchored_with(input: &str, local: IpAddr, n: usize, opts: &RewriteOptions) -> String {
        run(input, local, &pairs(n), &mut OriginState::new(1, 1), opts)
    }

    /// [`anchored_with`] the B2BUA's defaults.
    fn anchored(input: &str, local: IpAddr, n: usize) -> String {
        anchored_with(input, local, n, &RewriteOptions::default())
    }

    fn plan_of(input: &str) -> Result<MediaPlan, AnchorError> {
        plan(&Sdp::parse_str(input)?, &PlanOptions::default())
    }

    fn relay(input: &str, k: usize) -> RemoteSdp {
        plan_of(input).unwrap().entries()[k].remote().unwrap()
    }

    fn g711_offer() -> String {
        text(&[
            "v=0",
            "o=yealink 1612 1612 IN IP4 192.168.1.23",
            "s=SIP Call",
            "c=IN IP4 192.168.1.23",
            "t=0 0",
            "m=audio 11780 RTP/AVP 0 8 18 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:18 G729/8000",
            "a=fmtp:18 annexb=no",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ])
    }

    #[test]
    fn basic_g711_offer() {
        let input = g711_offer();
        let p = plan_of(&input).unwrap();
        assert_eq!(p.stream_count(), 1);
        let e = p.entries()[0];
        assert_eq!(e.transport, Transport::RtpAvp);
        assert_eq!(
            e.remote(),
            Some(RemoteSdp {
                rtp: sock("192.168.1.23:11780"),
                rtcp: None,
                rtcp_mux: false,
            })
        );
        assert_eq!(
            (e.direction, e.on_hold(), e.clock_rate),
            (Direction::SendRecv, false, 8000)
        );

        let mut origin = OriginState::new(4242, 1);
        let out = run(
            &input,
            OUTSIDE,
            &pairs(1),
            &mut origin,
            &RewriteOptions::default(),
        );
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 4242 1 IN IP4 203.0.113.10",
                "s=SIP Call",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0 8 18 101",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:18 G729/8000",
                "a=fmtp:18 annexb=no",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "a=ptime:20",
                "a=sendrecv",
            ])
        );
    }

    /// Offer with audio and video through a real shard, then an answer that rejects the video.
    #[test]
    fn audio_video_offer_and_answer_rejecting_video() {
        let now = t0();
        let mut shard = MediaShard::new(ShardConfig::new(30000, 30099)).unwrap();
        let offer = text(&[
            "v=0",
            "o=- 3911 3911 IN IP4 10.1.0.7",
            "s=-",
            "c=IN IP4 10.1.0.7",
            "b=AS:2048",
            "t=0 0",
            "m=audio 5004 RTP/AVP 9 0 101",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "m=video 5006 RTP/AVP 96",
            "b=TIAS:1920000",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",
            "a=rtcp-fb:96 nack pli",
        ]);
        let mut sdp = Sdp::parse_str(&offer).unwrap();
        let p = plan(&sdp, &PlanOptions::default()).unwrap();
        assert_eq!(p.stream_count(), 2);
        let h = shard.allocate_session(now, p.stream_count()).unwrap();
        p.set_remotes(&mut shard, h, Side::A, now).unwrap();
        let streams = shard.streams(h).unwrap();
        assert_eq!(
            streams[1].leg(Side::A).rtp_latch().sdp(),
            Some(sock("10.1.0.7:5006"))
        );
        assert_eq!(
            (streams[0].clock_rate(), streams[1].clock_rate()),
            (8000, 90000)
        );
        let ports = p.local_ports(streams, Side::B).unwrap();
        let mut origin_b = OriginState::new(77, 5);
        rewrite(
            &mut sdp,
            INSIDE,
            &ports,
            &mut origin_b,
            &RewriteOptions::default(),
        )
        .unwrap();
        assert_eq!(
            sdp.to_string(),
            text(&[
                "v=0",
                "o=- 77 5 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 10.255.0.1",
                "b=AS:2048",
                "t=0 0",
                "m=audio 30002 RTP/AVP 9 0 101",
                "a=rtpmap:9 G722/8000",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "m=video 30006 RTP/AVP 96",
                "b=TIAS:1920000",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",
                "a=rtcp-fb:96 nack pli",
            ])
        );

        let answer = text(&[
            "v=0",
            "o=PBX 100 101 IN IP4 172.16.0.5",
            "s=PBX",
            "c=IN IP4 172.16.0.5",
            "t=0 0",
            "m=audio 40000 RTP/AVP 9 101",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "m=video 0 RTP/AVP 96",
        ]);
        let mut sdp = Sdp::parse_str(&answer).unwrap();
        let p = plan(&sdp, &PlanOptions::default()).unwrap();
        assert_eq!(p.entries()[1].disposition, Disposition::Rejected);
        assert_eq!(p.stream_count(), 1);
        p.set_remotes(&mut shard, h, Side::B, now).unwrap();
        let streams = shard.streams(h).unwrap();
        assert_eq!(
            streams[0].leg(Side::B).rtp_latch().sdp(),
            Some(sock("172.16.0.5:40000"))
        );
        let ports = p.local_ports(streams, Side::A).unwrap();
        assert_eq!(ports[1], None);
        let mut origin_a = OriginState::new(88, 1);
        rewrite(
            &mut sdp,
            OUTSIDE,
            &ports,
            &mut origin_a,
            &RewriteOptions::default(),
        )
        .unwrap();
        assert_eq!(
            sdp.to_string(),
            text(&[
                "v=0",
                "o=- 88 1 IN IP4 203.0.113.10",
                "s=PBX",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 9 101",
                "a=rtpmap:9 G722/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "a=ptime:20",
                "m=video 0 RTP/AVP 96",
            ])
        );
        // Teardown is the shard's: the handle dies with the session.
        shard.release(h, now).unwrap();
        assert_eq!(
            p.set_remotes(&mut shard, h, Side::B, now),
            Err(media_plane::Error::UnknownSession)
        );
    }

    #[test]
    fn rejected_line_keeps_port_zero_and_loses_its_inside_address() {
        let answer = text(&[
            "v=0",
            "o=- 1 1 IN IP4 172.16.0.5",
            "s=-",
            "t=0 0",
            "m=audio 40000 RTP/AVP 0",
            "c=IN IP4 172.16.0.5",
            "a=rtcp:40001",
            "m=video 0 RTP/AVP 96",
            "c=IN IP4 172.16.0.5",
            "a=rtcp:40003 IN IP4 172.16.0.5",
        ]);
        // Even if the caller hands ports for it, a line at port 0 stays there.
        let out = anchored(&answer, OUTSIDE, 2);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 203.0.113.10",
                "s=-",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "c=IN IP4 203.0.113.10",
                "a=rtcp:30001",
                "m=video 0 RTP/AVP 96",
                "c=IN IP4 203.0.113.10",
            ])
        );
    }

    #[test]
    fn rtcp_mux_offer() {
        let offer = text(&[
            "v=0",
            "o=- 20 20 IN IP4 198.51.100.4",
            "s=-",
            "c=IN IP4 198.51.100.4",
            "t=0 0",
            "m=audio 16384 RTP/AVP 0 101",
            "a=rtcp:16384",
            "a=rtcp-mux",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        assert_eq!(
            relay(&offer, 0),
            RemoteSdp {
                rtp: sock("198.51.100.4:16384"),
                rtcp: Some(sock("198.51.100.4:16384")),
                rtcp_mux: true,
            }
        );
        let out = anchored(&offer, INSIDE, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 10.255.0.1",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0 101",
                "a=rtcp-mux",
                "a=rtpmap:101 telephone-event/8000",
            ])
        );
        // Kept on request: an a=rtcp that named the RTP port names the SBC's RTP port, any other
        // port the SBC's RTCP port.
        let keep = RewriteOptions {
            rtcp_with_mux: true,
            ..RewriteOptions::default()
        };
        let out = anchored_with(&offer, INSIDE, 1, &keep);
        assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\na=rtcp:30000\r\na=rtcp-mux\r\n"));
        let other = offer.replace("a=rtcp:16384", "a=rtcp:16385");
        let out = anchored_with(&other, INSIDE, 1, &keep);
        assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\na=rtcp:30001\r\na=rtcp-mux\r\n"));
    }

    #[test]
    fn rtcp_with_explicit_address() {
        let offer = text(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.50",
            "s=-",
            "c=IN IP4 192.0.2.50",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0",
            "a=rtcp:53020 IN IP4 198.51.100.20",
        ]);
        assert_eq!(relay(&offer, 0).rtcp, Some(sock("198.51.100.20:53020")));
        let out = anchored(&offer, OUTSIDE, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 203.0.113.10",
                "s=-",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "a=rtcp:30001 IN IP4 203.0.113.10",
            ])
        );
        // Without an address, the port alone; with full-rtcp-attribute, always the address.
        let bare = offer.replace("a=rtcp:53020 IN IP4 198.51.100.20", "a=rtcp:53020");
        assert_eq!(relay(&bare, 0).rtcp, Some(sock("192.0.2.50:53020")));
        let out = anchored(&bare, OUTSIDE, 1);
        assert!(out.ends_with("m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\n"));
        let full = RewriteOptions {
            full_rtcp_attribute: true,
            ..RewriteOptions::default()
        };
        let out = anchored_with(&bare, OUTSIDE, 1, &full);
        assert!(out.ends_with("a=rtcp:30001 IN IP4 203.0.113.10\r\n"));
        // IPv6 RTCP address, bridged to an IPv4 SBC address.
        let v6 = offer.replace("IN IP4 198.51.100.20", "IN IP6 2001:db8::20");
        assert_eq!(relay(&v6, 0).rtcp, Some(sock("[2001:db8::20]:53020")));
        // A broken a=rtcp is ignored by the plan and replaced by the rewrite.
        let broken = offer.replace("a=rtcp:53020 IN IP4 198.51.100.20", "a=rtcp:x");
        assert_eq!(relay(&broken, 0).rtcp, None);
        let out = anchored(&broken, OUTSIDE, 1);
        assert!(out.ends_with("a=rtcp:30001\r\n"));
    }

    fn webrtc_like_offer() -> String {
        text(&[
            "v=0",
            "o=- 6412 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=ice-options:trickle",
            "m=audio 52000 RTP/AVP 111 0",
            "c=IN IP4 198.51.100.7",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=candidate:1 1 udp 2122260223 192.168.1.40 52000 typ host",
            "a=candidate:2 1 udp 1686052607 198.51.100.7 52000 typ srflx raddr 192.168.1.40 rport 52000",
            "a=ice-ufrag:Wq3e",
            "a=ice-pwd:0c9d1bd8a0f54b5c9c1ec5a2",
            "a=end-of-candidates",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000",
        ])
    }

    #[test]
    fn ice_attributes_removed() {
        let offer = webrtc_like_offer();
        let p = plan_of(&offer).unwrap();
        let e = p.entries()[0];
        assert_eq!(e.clock_rate, 48000);
        assert_eq!(
            e.remote(),
            Some(RemoteSdp {
                rtp: sock("198.51.100.7:52000"),
                rtcp: Some(sock("0.0.0.0:9")),
                rtcp_mux: true,
            })
        );
        let out = anchored(&offer, INSIDE, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "t=0 0",
                "m=audio 30000 RTP/AVP 111 0",
                "c=IN IP4 10.255.0.1",
                "a=rtcp-mux",
                "a=rtpmap:111 opus/48000/2",
                "a=rtpmap:0 PCMU/8000",
            ])
        );
        // Kept on request (the candidates still name the caller's addresses).
        let keep = RewriteOptions {
            keep_ice: true,
            ..RewriteOptions::default()
        };
        let out = anchored_with(&offer, INSIDE, 1, &keep);
        assert_eq!(out.matches("a=candidate:").count(), 2);
        assert!(out.contains("a=ice-options:trickle\r\n") && out.contains("a=ice-ufrag:Wq3e\r\n"));
    }

    fn hold_base(direction: &str) -> String {
        text(&[
            "v=0",
            "o=alice 2890844526 2890844527 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
            direction,
        ])
    }

    #[test]
    fn hold_sendonly_passes() {
        let offer = hold_base("a=sendonly");
        let e = plan_of(&offer).unwrap().entries()[0];
        assert_eq!(
            (e.direction, e.zero_address, e.on_hold()),
            (Direction::SendOnly, false, true)
        );
        let out = anchored(&offer, INSIDE, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 10.255.0.1",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0 101",
                "a=rtpmap:101 telephone-event/8000",
                "a=sendonly",
            ])
        );
        // The answer to a hold: recvonly is not a hold by its author.
        let answer = plan_of(&hold_base("a=recvonly")).unwrap().entries()[0];
        assert!(!answer.on_hold());
    }

    #[test]
    fn hold_inactive_at_session_level_passes() {
        let offer = text(&[
            "v=0",
            "o=- 1 2 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "a=inactive",
            "m=audio 49170 RTP/AVP 8",
            "m=video 49172 RTP/AVP 31",
        ]);
        let p = plan_of(&offer).unwrap();
        for e in p.entries() {
            assert_eq!((e.direction, e.on_hold()), (Direction::Inactive, true));
        }
        assert_eq!(p.entries()[1].clock_rate, 90000);
        let out = anchored(&offer, INSIDE, 2);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 10.255.0.1",
                "t=0 0",
                "a=inactive",
                "m=audio 30000 RTP/AVP 8",
                "m=video 30002 RTP/AVP 31",
            ])
        );
    }

    #[test]
    fn hold_zero_address_passes() {
        let now = t0();
        let offer = text(&[
            "v=0",
            "o=- 1 2 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0",
        ]);
        let p = plan_of(&offer).unwrap();
        let e = p.entries()[0];
        assert_eq!(
            (e.direction, e.zero_address, e.on_hold()),
            (Direction::SendRecv, true, true)
        );
        assert_eq!(e.remote().unwrap().rtp, sock("0.0.0.0:49170"));
        // The relay learns no destination from it.
        let mut shard = MediaShard::new(ShardConfig::new(30000, 30099)).unwrap();
        let h = shard.allocate_session(now, 1).unwrap();
        p.set_remotes(&mut shard, h, Side::A, now).unwrap();
        assert_eq!(
            shard.streams(h).unwrap()[0].leg(Side::A).rtp_latch().sdp(),
            None
        );
        // Even a SIP-source address does not undo the hold.
        let source = PlanOptions {
            address: RemoteAddress::SipSource(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            ..PlanOptions::default()
        };
        let sdp = Sdp::parse_str(&offer).unwrap();
        let e = plan(&sdp, &source).unwrap().entries()[0];
        assert_eq!(e.remote().unwrap().rtp, sock("0.0.0.0:49170"));

        let out = anchored(&offer, INSIDE, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 0.0.0.0",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
            ])
        );
        let zero = RewriteOptions {
            zero_address: true,
            ..RewriteOptions::default()
        };
        let out = anchored_with(&offer, INSIDE, 1, &zero);
        assert!(out.contains("c=IN IP4 10.255.0.1\r\n"));
        // IPv6 hold.
        let v6 = offer.replace("c=IN IP4 0.0.0.0", "c=IN IP6 ::");
        assert!(plan_of(&v6).unwrap().entries()[0].on_hold());
        let out = anchored(&v6, INSIDE, 1);
        assert!(out.contains("c=IN IP6 ::\r\n"));
    }

    fn media_level_conns() -> String {
        text(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "c=IN IP4 192.0.2.2",
            "a=ptime:20",
            "m=video 6002 RTP/AVP 96",
            "c=IN IP4 192.0.2.3",
            "a=rtpmap:96 VP8/90000",
        ])
    }

    #[test]
    fn session_level_and_media_level_connections() {
        let input = media_level_conns();
        assert_eq!(relay(&input, 0).rtp, sock("192.0.2.2:6000"));
        assert_eq!(relay(&input, 1).rtp, sock("192.0.2.3:6002"));
        // In place: every c= names the SBC.
        let out = anchored(&input, OUTSIDE, 2);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 203.0.113.10",
                "s=-",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "c=IN IP4 203.0.113.10",
                "a=ptime:20",
                "m=video 30002 RTP/AVP 96",
                "c=IN IP4 203.0.113.10",
                "a=rtpmap:96 VP8/90000",
            ])
        );
        // replace session-connection: one session-level c= serves every stream.
        let one = RewriteOptions {
            session_connection: true,
            ..RewriteOptions::default()
        };
        let expected = text(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.10",
            "s=-",
            "c=IN IP4 203.0.113.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=ptime:20",
            "m=video 30002 RTP/AVP 96",
            "a=rtpmap:96 VP8/90000",
        ]);
        let out = anchored_with(&input, OUTSIDE, 2, &one);
        assert_eq!(out, expected);
        // Without a session-level c= to begin with: in place adds none, session-connection inserts
        // it before t=.
        let no_session = input.replace("c=IN IP4 192.0.2.1\r\n", "");
        let out = anchored(&no_session, OUTSIDE, 2);
        assert_eq!(out.matches("c=IN IP4 203.0.113.10").count(), 2);
        assert!(out.starts_with("v=0\r\no=- 1 1 IN IP4 203.0.113.10\r\ns=-\r\nt=0 0\r\n"));
        let out = anchored_with(&no_session, OUTSIDE, 2, &one);
        assert_eq!(out, expected);
    }

    #[test]
    fn session_connection_keeps_a_per_stream_hold() {
        let input = text(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "a=ptime:20",
            "m=video 6002 RTP/AVP 96",
            "c=IN IP4 192.0.2.3",
        ]);
        let p = plan_of(&input).unwrap();
        assert!(p.entries()[0].on_hold() && !p.entries()[1].on_hold());
        let out = anchored(&input, OUTSIDE, 2);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 203.0.113.10",
                "s=-",
                "c=IN IP4 0.0.0.0",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "a=ptime:20",
                "m=video 30002 RTP/AVP 96",
                "c=IN IP4 203.0.113.10",
            ])
        );
        let one = RewriteOptions {
            session_connection: true,
            ..RewriteOptions::default()
        };
        let out = anchored_with(&input, OUTSIDE, 2, &one);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 203.0.113.10",
                "s=-",
                "c=IN IP4 203.0.113.10",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0",
                "c=IN IP4 0.0.0.0",
                "a=ptime:20",
                "m=video 30002 RTP/AVP 96",
            ])
        );
    }

    #[test]
    fn ipv6_connection() {
        let offer = text(&[
            "v=0",
            "o=bob 7 7 IN IP6 2001:db8::5",
            "s=-",
            "c=IN IP6 2001:db8::5",
            "t=0 0",
            "m=audio 7078 RTP/AVP 0 8",
            "a=rtcp:7079",
        ]);
        assert_eq!(relay(&offer, 0).rtp, sock("[2001:db8::5]:7078"));
        assert_eq!(relay(&offer, 0).rtcp, Some(sock("[2001:db8::5]:7079")));
        let sbc6 = IpAddr::V6("2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap());
        let out = anchored(&offer, sbc6, 1);
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP6 2001:db8:ffff::1",
                "s=-",
                "c=IN IP6 2001:db8:ffff::1",
                "t=0 0",
                "m=audio 30000 RTP/AVP 0 8",
                "a=rtcp:30001",
            ])
        );
        // Bridged to an IPv4 leg.
        let out = anchored(&offer, INSIDE, 1);
        assert!(
            out.starts_with("v=0\r\no=- 1 1 IN IP4 10.255.0.1\r\ns=-\r\nc=IN IP4 10.255.0.1\r\n")
        );
    }

    #[test]
    fn origin_version_changes_only_with_the_description() {
        let opts = RewriteOptions::default();
        let mut origin = OriginState::new(9000, 9000);
        let sent = |input: &str, ports: &[Option<PortPair>], origin: &mut OriginState| {
            let out = run(input, OUTSIDE, ports, origin, &opts);
            out.lines().nth(1).unwrap().to_string()
        };
        let first = pairs(1);
        let offer = hold_base("a=sendrecv");
        assert_eq!(
            sent(&offer, &first, &mut origin),
            "o=- 9000 9000 IN IP4 203.0.113.10"
        );
        // A refresh re-INVITE: the peer bumped its own version, nothing else changed.
        let refresh = offer.replace("2890844527", "2890844528");
        assert_eq!(
            sent(&refresh, &first, &mut origin),
            "o=- 9000 9000 IN IP4 203.0.113.10"
        );
        // Hold, twice: one increment.
        let hold = hold_base("a=sendonly");
        assert_eq!(
            sent(&hold, &first, &mut origin),
            "o=- 9000 9001 IN IP4 203.0.113.10"
        );
        assert_eq!(
            sent(&hold, &first, &mut origin),
            "o=- 9000 9001 IN IP4 203.0.113.10"
        );
        // Resume.
        assert_eq!(
            sent(&offer, &first, &mut origin),
            "o=- 9000 9002 IN IP4 203.0.113.10"
        );
        // New relay ports.
        let moved = pairs(2)[1..].to_vec();
        assert_eq!(
            sent(&offer, &moved, &mut origin),
            "o=- 9000 9003 IN IP4 203.0.113.10"
        );
        assert_eq!(origin.version(), 9003);
        assert_eq!((origin.session_id(), origin.username()), (9000, "-"));

        // A bad username fails the rewrite and leaves the state alone.
        let mut bad = OriginState::new(1, 1).with_username("two words");
        let mut sdp = Sdp::parse_str(&offer).unwrap();
        let e = rewrite(&mut sdp, OUTSIDE, &first, &mut bad, &opts).unwrap_err();
        assert_eq!((e.status(), bad.version()), (500, 1));
        let mut named = OriginState::new(1, 1).with_username("sbc");
        assert_eq!(
            sent(&offer, &first, &mut named),
            "o=sbc 1 1 IN IP4 203.0.113.10"
        );
    }

    #[test]
    fn origin_modes_for_the_ng_protocol() {
        let offer = g711_offer();
        let mut origin = OriginState::new(1, 1);
        let out = run(
            &offer,
            OUTSIDE,
            &pairs(1),
            &mut origin,
            &RewriteOptions::ng(),
        );
        assert!(out.contains("o=yealink 1612 1612 IN IP4 192.168.1.23\r\n"));
        let address = RewriteOptions {
            origin: OriginMode::Address,
            ..RewriteOptions::ng()
        };
        let out = run(&offer, OUTSIDE, &pairs(1), &mut origin, &address);
        assert!(out.contains("o=yealink 1612 1612 IN IP4 203.0.113.10\r\n"));
        // The state is untouched outside the own-origin mode.
        assert_eq!(origin, OriginState::new(1, 1));
    }

    fn t38_reinvite() -> String {
        text(&[
            "v=0",
            "o=- 10 11 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 192.0.2.9",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
            "m=image 4000 udptl t38",
            "a=T38FaxVersion:0",
            "a=T38MaxBitRate:14400",
            "a=T38FaxRateManagement:transferredTCF",
            "a=T38FaxMaxDatagram:316",
            "a=T38FaxUdpEC:t38UDPRedundancy",
        ])
    }

    #[test]
    fn t38_image_line_relayed_as_udp() {
        let input = t38_reinvite();
        let p = plan_of(&input).unwrap();
        let e = p.entries()[1];
        assert_eq!((e.transport, e.clock_rate), (Transport::Udptl, 0));
        assert_eq!(e.remote().unwrap().rtp, sock("192.0.2.9:4000"));
        assert_eq!(p.stream_count(), 2);
        let ports = pairs(2);
        let out = run(
            &input,
            INSIDE,
            &[None, ports[1]],
            &mut OriginState::new(1, 1),
            &RewriteOptions::default(),
        );
        assert_eq!(
            out,
            text(&[
                "v=0",
                "o=- 1 1 IN IP4 10.255.0.1",
                "s=-",
                "c=IN IP4 10.255.0.1",
                "t=0 0",
                "m=audio 0 RTP/AVP 0",
                "m=image 30002 udptl t38",
                "a=T38FaxVersion:0",
                "a=T38MaxBitRate:14400",
                "a=T38FaxRateManagement:transferredTCF",
                "a=T38FaxMaxDatagram:316",
                "a=T38FaxUdpEC:t38UDPRedundancy",
            ])
        );
    }

    #[test]
    fn t38_datagrams_pass_the_relay_as_opaque_udp() {
        let input = t38_reinvite();
        let p = plan_of(&input).unwrap();
        let t = t0();
        let mut shard = MediaShard::new(ShardConfig::new(30000, 30019)).expect("shard");
        let h = shard.allocate_session(t, p.stream_count()).unwrap();
        p.set_remotes(&mut shard, h, Side::A, t).unwrap();
        p.set_remotes(&mut shard, h, Side::B, t).unwrap();
        let port = shard.streams(h).unwrap()[1].leg(Side::A).ports().rtp();
        // UDPTL: a sequence number and an IFP packet, not an RTP header.
        let mut udptl = [0x00, 0x01, 0x06, 0x00, 0x10, 0x44];
        assert!(matches!(
            shard.on_packet(port, sock("192.0.2.9:4000"), &mut udptl, t),
            media_plane::Action::Forward { .. }
        ));
    }

    #[test]
    fn non_rtp_refused_by_option_and_tcp_always() {
        let refuse = PlanOptions {
            non_rtp: NonRtp::Refuse,
            ..PlanOptions::default()
        };
        let input = t38_reinvite();
        let sdp = Sdp::parse_str(&input).unwrap();
        let p = plan(&sdp, &refuse).unwrap();
        assert_eq!(p.entries()[1].disposition, Disposition::Refused);
        assert_eq!(p.stream_count(), 0);
        assert!(!p.any_relayed());
        let ports = p.local_ports(&[], Side::B).unwrap();
        assert_eq!(ports, [None, None]);
        let out = run(
            &t38_reinvite(),
            INSIDE,
            &ports,
            &mut OriginState::new(1, 1),
            &RewriteOptions::default(),
        );
        assert!(out.contains("m=audio 0 RTP/AVP 0\r\nm=image 0 udptl t38\r\n"));

        let msrp = text(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.9",
            "s=-",
            "c=IN IP4 192.0.2.9",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "m=message 2855 TCP/MSRP *",
            "a=path:msrp://192.0.2.9:2855/kjhd37s2s20w2a;tcp",
        ]);
        let p = plan_of(&msrp).unwrap();
        assert_eq!(p.entries()[1].disposition, Disposition::Refused);
        assert_eq!(p.stream_count(), 1);
        let out = anchored(&msrp, INSIDE, 1);
        assert!(out.contains("m=audio 30000 RTP/AVP 0\r\nm=message 0 TCP/MSRP *\r\n"));
    }

    #[test]
    fn transports() {
        let cases = [
            ("RTP/AVP", Transport::RtpAvp),
            ("rtp/avp", Transport::RtpAvp),
            ("RTP/AVPF", Transport::RtpAvpf),
            ("RTP/SAVP", Transport::RtpSavp),
            ("RTP/SAVPF", Transport::RtpSavpf),
            ("UDP/TLS/RTP/SAVP", Transport::UdpTlsRtpSavp),
            ("UDP/TLS/RTP/SAVPF", Transport::UdpTlsRtpSavpf),
            ("udptl", Transport::Udptl),
            ("UDPTL", Transport::Udptl),
            ("udp", Transport::Udp),
            ("UDP/BFCP", Transport::Udp),
            ("UDP/TLS/UDPTL", Transport::Udp),
            ("TCP/MSRP", Transport::Unsupported),
            ("TCP/RTP/AVP", Transport::Unsupported),
            ("RTP/XYZ", Transport::Unsupported),
            ("DCCP/RTP/AVP", Transport::Unsupported),
            ("é/x", Transport::Unsupported),
        ];
        for (proto, t) in cases {
            assert_eq!(Transport::of(proto), t, "{proto}");
        }
        assert!(Transport::RtpSavpf.is_secure() && !Transport::RtpAvpf.is_secure());
        assert!(Transport::UdpTlsRtpSavp.is_rtp() && !Transport::Udptl.is_rtp());
    }

    #[test]
    fn sip_source_and_media_address() {
        let offer = text(&[
            "v=0",
            "o=- 1 1 IN IP4 192.168.1.23",
            "s=-",
            "c=IN IP4 192.168.1.23",
            "t=0 0",
            "m=audio 11780 RTP/AVP 0",
            "a=rtcp:11791 IN IP4 192.168.1.23",
        ]);
        let sdp = Sdp::parse_str(&offer).unwrap();
        let source = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77));
        let opts = PlanOptions {
            address: RemoteAddress::SipSource(source),
            ..PlanOptions::default()
        };
        let r = plan(&sdp, &opts).unwrap().entries()[0].remote().unwrap();
        assert_eq!(
            (r.rtp, r.rtcp),
            (
                sock("198.51.100.77:11780"),
                Some(sock("198.51.100.77:11791"))
            )
        );
        let opts = PlanOptions {
            media_address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))),
            ..opts
        };
        let r = plan(&sdp, &opts).unwrap().entries()[0].remote().unwrap();
        assert_eq!(r.rtp, sock("192.0.2.200:11780"));
        // A host name is usable only when it is not used.
        let named = offer.replace("c=IN IP4 192.168.1.23", "c=IN IP4 media.example.com");
        let sdp = Sdp::parse_str(&named).unwrap();
        assert_eq!(
            plan(&sdp, &PlanOptions::default()),
            Err(AnchorError::UnsupportedAddress { media: 0 })
        );
        assert!(plan(&sdp, &opts).is_ok());
    }

    #[test]
    fn malformed_and_refused_inputs() {
        let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
        let err = |body: &str| plan_of(&format!("{head}{body}")).unwrap_err();
        // Not SDP at all.
        let e = plan_of("v=0\r\no=- 1 x IN IP4 h\r\n").unwrap_err();
        assert_eq!(
            (e, e.status()),
            (AnchorError::Sdp(SdpError::BadOrigin { line: 2 }), 400)
        );
        assert_eq!(plan_of("").unwrap_err().status(), 400);
        // No c= for an active stream; a rejected one needs none.
        let e = err("m=audio 4000 RTP/AVP 0\r\n");
        assert_eq!(
            (e, e.status()),
            (AnchorError::NoConnection { media: 0 }, 400)
        );
        assert!(plan_of(&format!("{head}m=audio 0 RTP/AVP 0\r\n")).is_ok());
        let e = err("m=audio 0 RTP/AVP 0\r\nm=video 4000 RTP/AVP 96\r\n");
        assert_eq!(e, AnchorError::NoConnection { media: 1 });
        // Multicast, foreign network types, several ports.
        let e = err("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127\r\n");
        assert_eq!((e, e.status()), (AnchorError::Multicast { media: 0 }, 488));
        let e = err("m=audio 4000 RTP/AVP 0\r\nc=ATM NSAP 47.0091.8100.0000.0060.3e64.fd01\r\n");
        assert_eq!(
            (e, e.status()),
            (AnchorError::UnsupportedAddress { media: 0 }, 488)
        );
        let e = err("m=audio 4000/2 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n");
        assert_eq!((e, e.status()), (AnchorError::PortCount { media: 0 }, 488));
        assert!(plan_of(&format!(
            "{head}c=IN IP4 192.0.2.1\r\nm=audio 4000/1 RTP/AVP 0\r\n"
        ))
        .is_ok());
        // Too many m= lines, too many streams.
        let many = |n: usize, port: u16| {
            let mut s = format!("{head}c=IN IP4 192.0.2.1\r\n");
            for _ in 0..n {
                s.push_str(&format!("m=audio {port} RTP/AVP 0\r\n"));
            }
            s
        };
        let e = plan_of(&many(17, 4000)).unwrap_err();
        assert_eq!(
            (e, e.status()),
            (AnchorError::TooManyMedia { count: 17, max: 16 }, 488)
        );
        let e = plan_of(&many(9, 4000)).unwrap_err();
        assert_eq!(
            (e, e.status()),
            (AnchorError::TooManyStreams { count: 9, max: 8 }, 488)
        );
        assert_eq!(plan_of(&many(16, 0)).unwrap().stream_count(), 0);
        assert_eq!(plan_of(&many(8, 4000)).unwrap().stream_count(), 8);
        // A session allocated for fewer streams than a re-offer needs.
        let p = plan_of(&many(2, 4000)).unwrap();
        let e = p.local_ports(&[], Side::A).unwrap_err();
        assert_eq!(
            (e, e.status()),
            (
                AnchorError::SessionTooSmall {
                    needed: 2,
                    streams: 0
                },
                500
            )
        );
    }

    #[test]
    fn error_texts() {
        let cases = [
            (
                AnchorError::Sdp(SdpError::BadConnection { line: 3 }),
                "bad c= line (line 3)",
            ),
            (
                AnchorError::TooManyMedia { count: 17, max: 16 },
                "too many m= lines (17, at most 16)",
            ),
            (
                AnchorError::NoConnection { media: 1 },
                "no c= for an active stream (media 1)",
            ),
            (
                AnchorError::Multicast { media: 0 },
                "multicast media address (media 0)",
            ),
            (
                AnchorError::SessionTooSmall {
                    needed: 2,
                    streams: 1,
                },
                "media session too small (needs 2, has 1)",
            ),
            (
                AnchorError::Rewrite(SdpError::BadValue {
                    what: "origin field",
                }),
                "SDP rewrite failed: bad value for SDP edit: origin field",
            ),
        ];
        for (e, shown) in cases {
            assert_eq!(e.to_string(), shown);
        }
        assert_eq!(AnchorError::from(SdpError::Empty).reason(), "empty SDP");
    }

    /// Deterministic xorshift, so a failure names a reproducible case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Plan and rewrite with several option sets; whatever is written must parse again and keep
    /// the m= lines. Must never panic.
    fn exercise(body: &[u8], ports: &[Option<PortPair>]) {
        let Ok(sdp) = Sdp::parse(body) else {
            return;
        };
        let plans = [
            PlanOptions::default(),
            PlanOptions {
                address: RemoteAddress::SipSource(OUTSIDE),
                non_rtp: NonRtp::Refuse,
                max_media: 3,
                max_streams: 2,
                ..PlanOptions::default()
            },
        ];
        for p in &plans {
            let _ = plan(&sdp, p);
        }
        let rewrites = [
            RewriteOptions::default(),
            RewriteOptions {
                origin: OriginMode::Address,
                session_connection: true,
                zero_address: true,
                keep_ice: true,
                rtcp_with_mux: true,
                full_rtcp_attribute: true,
            },
        ];
        for (opts, local) in rewrites
            .iter()
            .zip([OUTSIDE, IpAddr::V6(Ipv6Addr::LOCALHOST)])
        {
            let mut out = sdp.clone();
            let mut origin = OriginState::new(1, 1);
            if rewrite(&mut out, local, ports, &mut origin, opts).is_ok() {
                let text = out.to_vec();
                let again = Sdp::parse(&text)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
                assert_eq!(again.media_count(), sdp.media_count());
            }
        }
    }

    #[test]
    fn truncations_and_mutations_never_panic() {
        let seeds = [
            g711_offer(),
            webrtc_like_offer(),
            media_level_conns(),
            t38_reinvite(),
            hold_base("a=inactive").replace("192.0.2.10\r\nt=", "0.0.0.0\r\nt="),
            text(&[
                "v=0",
                "o=- 1 1 IN IP6 2001:db8::5",
                "s=-",
                "t=0 0",
                "m=audio 7078/1 RTP/SAVP 0",
                "c=IN IP6 2001:db8::5",
                "a=rtcp:7079 IN IP6 2001:db8::6",
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31",
                "m=video 0 RTP/AVP 96",
                "c=IN IP4 224.2.1.1/127",
            ]),
        ];
        let ports = pairs(3);
        let alphabet = b" \r\n\t0123456789:/=.-amcoIPN\xff\x00";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for seed in &seeds {
            let bytes = seed.as_bytes();
            for cut in 0..=bytes.len() {
                exercise(&bytes[..cut], &ports);
            }
            for _ in 0..1500 {
                let mut m = bytes.to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(m.len());
                    match rng.below(4) {
                        0 => m[at] = alphabet[rng.below(alphabet.len())],
                        1 => {
                            m.remove(at);
                        }
                        2 => m.insert(at, alphabet[rng.below(alphabet.len())]),
                        _ => {
                            let end = (at + rng.below(40)).min(m.len());
                            let chunk = m[at..end].to_vec();
                            let to = rng.below(m.len());
                            m.splice(to..to, chunk);
                        }
                    }
                    if m.is_empty() {
                        break;
                    }
                }
                exercise(&m, &ports);
                exercise(&m, &ports[..1]);
            }
        }
    }
}
