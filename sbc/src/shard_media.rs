//! The worker's media relay as the core drives it: [`ShardMedia`] owns the worker's
//! [`MediaShard`] and implements the core's [`MediaControl`] over it, so the B2BUA and the ng
//! engine reach media the same way; the packet path uses the shard itself ([`ShardMedia::shard_mut`]).

use std::time::{Duration, Instant};

use media_plane::latch::Latch;
use media_plane::shard::{
    IdleEvent as ShardIdle, RemoteSdp as ShardRemote, SessionHandle as ShardSession,
    Side as ShardSide, Stream, Validation as ShardValidation,
};
use media_plane::{Error, MediaShard};
use sbc_core::media::{
    DtmfDigit, Endpoint, IdleEvent, LegStats, MediaControl, MediaError, MediaSide, RelayPorts,
    RemoteSpec, SessionHandle, StageStats, StreamStats, Validation,
};

/// The worker's relay shard, behind the core's media trait. See the module doc.
#[derive(Debug)]
pub(crate) struct ShardMedia(MediaShard);

impl ShardMedia {
    pub(crate) fn new(shard: MediaShard) -> Self {
        Self(shard)
    }

    /// The shard, for the packet path.
    pub(crate) fn shard_mut(&mut self) -> &mut MediaShard {
        &mut self.0
    }

    /// The shard, for its counters.
    pub(crate) fn shard(&self) -> &MediaShard {
        &self.0
    }
}

fn session(h: SessionHandle) -> ShardSession {
    ShardSession::from_bits(h.raw())
}

fn side(s: MediaSide) -> ShardSide {
    match s {
        MediaSide::A => ShardSide::A,
        MediaSide::B => ShardSide::B,
    }
}

fn error(e: Error) -> MediaError {
    match e {
        Error::PortsExhausted { wanted, available } => {
            MediaError::PortsExhausted { wanted, available }
        }
        Error::StreamCount { requested, max } => MediaError::StreamCount { requested, max },
        Error::UnknownSession => MediaError::UnknownSession,
        Error::NoSuchStream { stream, streams } => MediaError::NoSuchStream { stream, streams },
        _ => MediaError::Relay,
    }
}

fn leg_format(l: &sbc_core::media::codecs::LegCodecs) -> media_plane::codec::LegFormat {
    use media_plane::codec::{Codec, LegFormat, OpusParams};
    use sbc_core::media::codecs::AudioCodec;
    let codec = match l.codec {
        AudioCodec::Pcmu => Codec::Pcmu,
        AudioCodec::Pcma => Codec::Pcma,
        AudioCodec::G722 => Codec::G722,
        AudioCodec::Opus => Codec::Opus,
    };
    let mut f = LegFormat::new(codec, l.payload_type, l.telephone_event);
    f.ptime = l.ptime;
    f.opus = OpusParams {
        max_playback_rate: l.opus.max_playback_rate,
        max_average_bitrate: l.opus.max_average_bitrate,
        inband_fec: l.opus.inband_fec,
    };
    f
}

/// One direction's SRTP context from the core's key.
fn srtp_context(
    key: Option<&sbc_core::media::srtp::SrtpKey>,
) -> Result<Option<media_plane::srtp::SrtpContext>, MediaError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let suite = media_plane::srtp::Suite::from_name(&key.suite).ok_or(MediaError::Relay)?;
    let mut ctx =
        media_plane::srtp::SrtpContext::new(suite, &key.key_salt).map_err(|_| MediaError::Relay)?;
    if let Some(packets) = key.lifetime {
        ctx.set_lifetime(packets);
    }
    Ok(Some(ctx))
}

fn endpoint(latch: &Latch) -> Endpoint {
    Endpoint {
        sdp: latch.sdp(),
        learned: latch.learned(),
    }
}

/// The figures of the leg on `side` of `stream`: its reception, and what the stream's stages did
/// to the packets from it (its own SRTP stage, and the codec stage's direction away from it).
fn leg_stats(stream: &Stream, side: ShardSide) -> LegStats {
    let leg = stream.leg(side);
    let rx = leg.rx();
    let srtp = leg.srtp_counters();
    let way = match side {
        ShardSide::A => media_plane::codec::Way::AToB,
        ShardSide::B => media_plane::codec::Way::BToA,
    };
    let codec = stream
        .codec()
        .map(|c| c.counters_of(way))
        .unwrap_or_default();
    LegStats {
        ports: RelayPorts::new(leg.ports().rtp(), leg.ports().rtcp()),
        rtcp_mux: leg.rtcp_mux(),
        rtp: endpoint(leg.rtp_latch()),
        rtcp: endpoint(leg.rtcp_latch()),
        packets: rx.packets(),
        bytes: rx.bytes(),
        rtcp_packets: rx.rtcp_packets(),
        rtcp_bytes: rx.rtcp_bytes(),
        forwarded: leg.forwarded(),
        dropped: leg.dropped(),
        lost: rx.sequence().lost(),
        jitter: rx.jitter().value(),
        last_packet: rx.last_packet(),
        stages: StageStats {
            srtp_packets: srtp.packets,
            srtp_auth_failures: srtp.auth_failures(),
            srtp_replays: srtp.replays(),
            srtp_refused: srtp.refused(),
            transcoded_frames: codec.transcoded_frames,
        },
    }
}

impl MediaControl for ShardMedia {
    fn allocate(&mut self, now: Instant, streams: usize) -> Result<SessionHandle, MediaError> {
        self.0
            .allocate_session(now, streams)
            .map(|h| SessionHandle::from_raw(h.to_bits()))
            .map_err(error)
    }

    fn stream_count(&self, h: SessionHandle) -> Result<usize, MediaError> {
        self.0.streams(session(h)).map(<[_]>::len).map_err(error)
    }

    fn local_ports(
        &self,
        h: SessionHandle,
        stream: usize,
        s: MediaSide,
    ) -> Result<RelayPorts, MediaError> {
        let streams = self.0.streams(session(h)).map_err(error)?;
        let st = streams.get(stream).ok_or(MediaError::NoSuchStream {
            stream,
            streams: streams.len(),
        })?;
        let pair = st.leg(side(s)).ports();
        Ok(RelayPorts::new(pair.rtp(), pair.rtcp()))
    }

    fn set_remote(
        &mut self,
        h: SessionHandle,
        stream: usize,
        s: MediaSide,
        remote: &RemoteSpec,
        now: Instant,
    ) -> Result<(), MediaError> {
        let handle = session(h);
        let sdp = ShardRemote {
            rtp: remote.sdp.rtp,
            rtcp: remote.sdp.rtcp,
            rtcp_mux: remote.sdp.rtcp_mux,
        };
        self.0
            .set_remote_from(handle, stream, side(s), sdp, remote.signal, now)
            .map_err(error)?;
        if let Some(rate) = remote.clock_rate {
            self.0.set_clock_rate(handle, stream, rate).map_err(error)?;
        }
        if let Some(v) = remote.validation {
            let v = match v {
                Validation::Full => ShardValidation::Full,
                Validation::HeaderOnly => ShardValidation::HeaderOnly,
                Validation::Opaque => ShardValidation::Opaque,
            };
            self.0.set_validation(handle, stream, v).map_err(error)?;
        }
        Ok(())
    }

    fn release(&mut self, h: SessionHandle, now: Instant) -> Result<(), MediaError> {
        self.0.release(session(h), now).map_err(error)
    }

    fn release_at_once(&mut self, h: SessionHandle, now: Instant) -> Result<(), MediaError> {
        self.0.release_at_once(session(h), now).map_err(error)
    }

    fn stats(&self, h: SessionHandle, out: &mut Vec<StreamStats>) -> Result<(), MediaError> {
        let streams = self.0.streams(session(h)).map_err(error)?;
        out.extend(streams.iter().map(|s| StreamStats {
            clock_rate: s.clock_rate(),
            a: leg_stats(s, ShardSide::A),
            b: leg_stats(s, ShardSide::B),
        }));
        Ok(())
    }

    fn poll_idle(&mut self, now: Instant, timeout: Duration, out: &mut Vec<IdleEvent>) {
        let handle = |s: ShardSession| SessionHandle::from_raw(s.to_bits());
        out.extend(self.0.poll_idle(now, timeout).into_iter().map(|e| match e {
            ShardIdle::NoMedia { session, quiet } => IdleEvent::NoMedia {
                session: handle(session),
                quiet,
            },
            ShardIdle::OneWay {
                session,
                stream,
                silent,
            } => IdleEvent::OneWay {
                session: handle(session),
                stream,
                silent: match silent {
                    ShardSide::A => MediaSide::A,
                    ShardSide::B => MediaSide::B,
                },
            },
        }));
    }

    fn set_codecs(
        &mut self,
        session_handle: SessionHandle,
        stream: usize,
        codecs: Option<&sbc_core::media::codecs::StreamCodecs>,
    ) -> Result<(), MediaError> {
        let plan = codecs.map(|c| {
            let mut p = media_plane::codec::CodecPlan::new(leg_format(&c.a), leg_format(&c.b));
            p.opus_complexity = c.opus_complexity;
            p.g722_narrowband = if c.g722_resample {
                media_plane::codec::G722Narrowband::Resample
            } else {
                media_plane::codec::G722Narrowband::SubBand
            };
            p
        });
        self.0
            .set_codecs(session(session_handle), stream, plan)
            .map_err(error)
    }

    fn set_srtp(
        &mut self,
        session_handle: SessionHandle,
        stream: usize,
        s: MediaSide,
        keys: Option<&sbc_core::media::srtp::StageKeys>,
    ) -> Result<(), MediaError> {
        use media_plane::stage::{SrtpStage, Stage};
        let stage = match keys {
            Some(k) if k.withheld => Stage::Withheld(Default::default()),
            Some(k) => {
                let unprotect = srtp_context(k.unprotect.as_ref())?;
                let protect = srtp_context(k.protect.as_ref())?;
                if unprotect.is_none() && protect.is_none() {
                    Stage::Plain
                } else {
                    Stage::Srtp(Box::new(SrtpStage::new(unprotect, protect)))
                }
            }
            None => Stage::Plain,
        };
        self.0
            .set_stage(session(session_handle), stream, side(s), stage)
            .map_err(error)
    }

    fn send_dtmf(
        &mut self,
        h: SessionHandle,
        stream: usize,
        toward: MediaSide,
        pt: u8,
        event: u8,
        duration: u16,
    ) -> Result<bool, MediaError> {
        self.0
            .send_dtmf(session(h), stream, side(toward), pt, event, duration)
            .map_err(error)
    }

    fn send_dtmf_tone(
        &mut self,
        h: SessionHandle,
        stream: usize,
        toward: MediaSide,
        event: u8,
        duration: u16,
    ) -> Result<bool, MediaError> {
        self.0
            .send_dtmf_tone(session(h), stream, side(toward), event, duration)
            .map_err(error)
    }

    fn hear_dtmf(
        &mut self,
        h: SessionHandle,
        stream: usize,
        from: MediaSide,
        on: bool,
    ) -> Result<(), MediaError> {
        self.0
            .hear_dtmf(session(h), stream, side(from), on)
            .map_err(error)
    }

    fn report_dtmf(
        &mut self,
        h: SessionHandle,
        stream: usize,
        from: MediaSide,
        pt: Option<u8>,
    ) -> Result<(), MediaError> {
        self.0
            .report_dtmf(session(h), stream, side(from), pt)
            .map_err(error)
    }

    fn poll_dtmf(&mut self) -> Option<DtmfDigit> {
        self.0.poll_dtmf().map(|d| DtmfDigit {
            session: SessionHandle::from_raw(d.session.to_bits()),
            stream: d.stream,
            from: match d.from {
                ShardSide::A => MediaSide::A,
                ShardSide::B => MediaSide::B,
            },
            event: d.event,
            duration: d.duration,
        })
    }

    fn dtmf_pending(&self) -> bool {
        self.0.dtmf_pending()
    }

    fn max_streams(&self) -> usize {
        self.0.config().max_streams
    }

    fn ports_free(&self) -> usize {
        self.0.ports_free()
    }

    fn sessions(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests;
