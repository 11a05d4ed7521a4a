//! SDP media anchoring: the edits that put the SBC's media relay between the two parties of a call.
//!
//! An SBC that anchors media rewrites every session description it relays so that each party sends
//! its media to the SBC: the caller sees the SBC's address and ports on leg A, the callee the SBC's
//! address and other ports on leg B, and the worker's relay ([`MediaControl`]) relays between the two. This
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
//!   [`plan`] it (fault: [`AnchorError::status`]); `media.allocate(now, plan.stream_count())`
//!   (503 when ports run out; no session when the count is 0); [`MediaPlan::set_remotes`] for
//!   [`MediaSide::A`]; [`MediaPlan::local_ports`] for [`MediaSide::B`]; then
//!   [`rewrite`] with the SBC's leg-B address and leg B's [`OriginState`], and send the result to B.
//! - **Answer** (18x/2xx from B, or ng `answer`): parse and [`plan`] the answer;
//!   [`MediaPlan::set_remotes`] for [`MediaSide::B`]; [`MediaPlan::local_ports`] for [`MediaSide::A`];
//!   [`rewrite`] with the leg-A address and leg A's [`OriginState`]. A fault here cannot be answered
//!   with a status (it is a response): the B2BUA acknowledges and ends the call.
//! - **Re-INVITE / UPDATE** from side X: the same as an offer from X, on the existing session. When
//!   `plan.stream_count()` exceeds the session's streams (an `m=` line was added), the B2BUA
//!   allocates a new session, rewrites with its ports and releases the old one once the answer has
//!   arrived. The answer is handled as above with the sides swapped. Hold and resume are plain
//!   re-offers: directions and `c=0.0.0.0` pass through, ports stay.
//! - **Teardown** (BYE, CANCEL, failure, ng `delete`): `media.release(handle, now)`; drop the
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
//! | `a=crypto`, `a=fingerprint`, `a=setup` | untouched here: SRTP keys pass end to end and the relay forwards SRTP as is (RTP header checked only; DTLS-SRTP and T.38 relayed as opaque datagrams); SDES-SRTP termination is [`super::srtp`], applied by the B2BUA's anchor before this rewrite |
//! | codecs (`a=rtpmap`, `a=fmtp`, `a=ptime`, ...) and every other line | untouched |
//! | more than [`PlanOptions::max_media`] `m=` lines, or more streams than [`PlanOptions::max_streams`] | 488 |
//!
//! Everything read from the peer goes through checked parsing: no input makes this module panic,
//! and the work is bounded by the `m=` line limit and [`sbc_sip::sdp::MAX_LINES`].

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{
    MediaControl, MediaError, MediaSide, RelayPorts, RemoteSdp, RemoteSpec, SessionHandle,
    Validation,
};
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

    /// Relay at most the first `max` `m=` lines: every relayed line from `max` on becomes
    /// [`Disposition::Refused`] (written with port 0, so the answer rejects it). Returns how many
    /// lines were refused.
    pub fn limit_streams(&mut self, max: usize) -> usize {
        let mut refused = 0;
        for entry in self.entries.iter_mut().skip(max) {
            if entry.is_relayed() {
                entry.disposition = Disposition::Refused;
                refused += 1;
            }
        }
        self.streams = self
            .entries
            .iter()
            .rposition(MediaEntry::is_relayed)
            .map_or(0, |k| k + 1);
        refused
    }

    /// Whether the author holds the call with this description: no relayed stream is `sendrecv`
    /// with a usable address (every one is `sendonly`, `recvonly`, `inactive`, or `c=0.0.0.0`),
    /// or no stream is relayed at all. Media may rightly stop on a held call.
    pub fn holds(&self) -> bool {
        self.entries
            .iter()
            .filter(|e| e.is_relayed())
            .all(|e| e.zero_address || e.direction != Direction::SendRecv)
    }

    /// The SBC's local ports to write toward `side`, one per `m=` line (`None`: not relayed),
    /// asked of the relay for session `handle`. Fails when the session has fewer streams than
    /// [`MediaPlan::stream_count`] (a session the relay does not know has none).
    pub fn local_ports(
        &self,
        media: &dyn MediaControl,
        handle: SessionHandle,
        side: MediaSide,
    ) -> Result<Vec<Option<RelayPorts>>, AnchorError> {
        let streams = media.stream_count(handle).unwrap_or(0);
        if streams < self.streams {
            return Err(AnchorError::SessionTooSmall {
                needed: self.streams,
                streams,
            });
        }
        Ok(self
            .entries
            .iter()
            .zip(0..)
            .map(|(e, k)| {
                e.is_relayed()
                    .then(|| media.local_ports(handle, k, side).ok())
                    .flatten()
            })
            .collect())
    }

    /// Give the relay the peer's addresses: `set_remote` on `side` of every relayed stream (which
    /// opens its latch window), with the clock rate where known and the packet checks the
    /// transport allows (SRTP: header only; DTLS-SRTP, T.38 and other UDP: none).
    pub fn set_remotes(
        &self,
        media: &mut dyn MediaControl,
        handle: SessionHandle,
        side: MediaSide,
        now: Instant,
    ) -> Result<(), MediaError> {
        self.set_remotes_from(media, handle, side, None, now)
    }

    /// [`MediaPlan::set_remotes`], knowing the IP the peer's signalling came from (see
    /// [`RemoteSpec::signal`]).
    pub fn set_remotes_from(
        &self,
        media: &mut dyn MediaControl,
        handle: SessionHandle,
        side: MediaSide,
        signal: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), MediaError> {
        for (k, entry) in self.entries.iter().enumerate() {
            let Some(sdp) = entry.remote() else {
                continue;
            };
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
            let remote = RemoteSpec {
                sdp,
                clock_rate: (entry.clock_rate != 0).then_some(entry.clock_rate),
                validation,
                signal,
            };
            media.set_remote(handle, k, side, &remote, now)?;
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

/// The encoding name of the preferred format (the first in its `m=` line) of the first relayed RTP
/// stream of `sdp` planned as `plan`: its `a=rtpmap` name, else the RFC 3551 name of a static payload
/// type; `None` when no RTP stream is relayed or the format is unknown. What a call record names as
/// the codec a party asked for.
pub fn preferred_codec<'s>(sdp: &'s Sdp<'_>, plan: &MediaPlan) -> Option<&'s str> {
    let k = plan
        .entries()
        .iter()
        .position(|e| e.transport.is_rtp() && matches!(e.disposition, Disposition::Relay(_)))?;
    let pt = sdp.media(k)?.formats().next()?.parse::<u8>().ok()?;
    sdp.rtpmap(k, pt)
        .map(|r| r.encoding)
        .or_else(|| static_encoding(pt))
}

/// Encoding names of the static audio payload types (RFC 3551 table 4).
pub(crate) fn static_encoding(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        16 | 17 => "DVI4",
        18 => "G729",
        _ => return None,
    })
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
    relay: Option<RelayPorts>,
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
    ports: &[Option<RelayPorts>],
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

fn section(sdp: &Sdp<'_>, k: usize, ports: &[Option<RelayPorts>]) -> Section {
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
mod tests;
