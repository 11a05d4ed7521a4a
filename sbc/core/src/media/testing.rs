//! Test support, not product API: [`FakeMedia`], a recording [`MediaControl`] for the core's tests,
//! and the descriptions and packets that the core's tests and the binary's relay-adapter tests
//! both use. The double hands out port pairs from a range the way the relay does (lowest first,
//! all or nothing, freed pairs reused last), remembers every remote it was given, and lets a test
//! play the part of the packets ([`FakeMedia::receive`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{
    Endpoint, IdleEvent, LegStats, MediaControl, MediaError, MediaSide, RelayPorts, RemoteSpec,
    SessionHandle, StreamStats,
};

#[derive(Debug)]
struct Session {
    streams: Vec<StreamStats>,
    last_signal: Instant,
    idle_reported: bool,
}

/// A recording relay. See the module doc.
#[derive(Debug)]
pub struct FakeMedia {
    free: VecDeque<u16>,
    capacity: usize,
    max_streams: usize,
    sessions: HashMap<u64, Session>,
    next: u64,
    /// Every `set_remote`, in order: (session, stream, side, what was given).
    pub remotes: Vec<(SessionHandle, usize, MediaSide, RemoteSpec)>,
    /// Every `set_srtp`, in order: (session, stream, side, the keys).
    pub srtp: Vec<(SessionHandle, usize, MediaSide, Option<super::StageKeys>)>,
    /// Sessions allocated.
    pub allocated: u64,
    /// Allocations refused for lack of ports.
    pub allocation_failures: u64,
    /// Sessions released.
    pub released: u64,
    /// Of those, released without quarantine (calls never answered).
    pub released_at_once: u64,
    /// Every `send_dtmf`, in order: (session, stream, toward, payload type, event, duration).
    pub dtmf_sent: Vec<(SessionHandle, usize, MediaSide, u8, u8, u16)>,
    /// Every `send_dtmf_tone`, in order: (session, stream, toward, event, duration).
    pub dtmf_tones: Vec<(SessionHandle, usize, MediaSide, u8, u16)>,
    /// The legs whose in-band digits are heard (`hear_dtmf`): (session, stream, from).
    pub dtmf_heard: Vec<(SessionHandle, usize, MediaSide)>,
    /// The reporting set by `report_dtmf`: (session, stream, from) -> payload type.
    pub dtmf_reported: HashMap<(SessionHandle, usize, MediaSide), u8>,
    /// Telephone-events the next `poll_dtmf` calls return (a test pushes them).
    pub dtmf_events: VecDeque<super::DtmfDigit>,
}

fn empty_leg(ports: RelayPorts) -> LegStats {
    LegStats {
        ports,
        rtcp_mux: false,
        rtp: Endpoint::default(),
        rtcp: Endpoint::default(),
        packets: 0,
        bytes: 0,
        rtcp_packets: 0,
        rtcp_bytes: 0,
        forwarded: 0,
        dropped: 0,
        lost: 0,
        jitter: 0,
        last_packet: None,
        stages: Default::default(),
    }
}

fn usable(a: SocketAddr) -> Option<SocketAddr> {
    (a.port() != 0 && !a.ip().is_unspecified()).then_some(a)
}

impl FakeMedia {
    /// A relay over the ports `[min, max]` (pairs from `min`, which is even), at most 8 streams a
    /// session, like the relay's defaults.
    pub fn new(min: u16, max: u16) -> Self {
        let free: VecDeque<u16> = (min..max).step_by(2).collect();
        Self {
            capacity: free.len(),
            free,
            max_streams: 8,
            sessions: HashMap::new(),
            next: 1,
            remotes: Vec::new(),
            srtp: Vec::new(),
            allocated: 0,
            allocation_failures: 0,
            released: 0,
            released_at_once: 0,
            dtmf_sent: Vec::new(),
            dtmf_tones: Vec::new(),
            dtmf_heard: Vec::new(),
            dtmf_reported: HashMap::new(),
            dtmf_events: VecDeque::new(),
        }
    }

    /// Pairs held by sessions.
    pub fn pairs_in_use(&self) -> usize {
        self.capacity - self.free.len()
    }

    /// The last remote given for `side` of `stream` in `session`.
    pub fn remote(
        &self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
    ) -> Option<RemoteSpec> {
        self.remotes
            .iter()
            .rev()
            .find(|(h, k, s, _)| *h == session && *k == stream && *s == side)
            .map(|(_, _, _, r)| *r)
    }

    /// The streams of a live session (none for an unknown one).
    pub fn streams(&self, session: SessionHandle) -> Vec<StreamStats> {
        let mut out = Vec::new();
        let _ = self.stats(session, &mut out);
        out
    }

    /// An RTP packet of `len` bytes from `source` arrived at `now` on the relay's RTP port `port`:
    /// counted on that leg, its source learned.
    pub fn receive(&mut self, port: u16, source: SocketAddr, len: usize, now: Instant) {
        for session in self.sessions.values_mut() {
            for stream in &mut session.streams {
                for leg in [&mut stream.a, &mut stream.b] {
                    if leg.ports.rtp() == port {
                        leg.packets += 1;
                        leg.bytes += len as u64;
                        leg.forwarded += 1;
                        leg.last_packet = Some(now);
                        leg.rtp.learned = Some(source);
                    }
                }
            }
        }
    }

    fn session(&self, h: SessionHandle) -> Result<&Session, MediaError> {
        self.sessions
            .get(&h.raw())
            .ok_or(MediaError::UnknownSession)
    }
}

impl MediaControl for FakeMedia {
    fn allocate(&mut self, now: Instant, streams: usize) -> Result<SessionHandle, MediaError> {
        if streams == 0 || streams > self.max_streams {
            return Err(MediaError::StreamCount {
                requested: streams,
                max: self.max_streams,
            });
        }
        if self.free.len() < 2 * streams {
            self.allocation_failures += 1;
            return Err(MediaError::PortsExhausted {
                wanted: 2 * streams,
                available: self.free.len(),
            });
        }
        let mut list = Vec::with_capacity(streams);
        for _ in 0..streams {
            // The length check above leaves two free pairs for every stream.
            let (Some(a), Some(b)) = (self.free.pop_front(), self.free.pop_front()) else {
                break;
            };
            list.push(StreamStats {
                clock_rate: 0,
                a: empty_leg(RelayPorts::new(a, a.saturating_add(1))),
                b: empty_leg(RelayPorts::new(b, b.saturating_add(1))),
            });
        }
        let h = SessionHandle::from_raw(self.next);
        self.next += 1;
        self.sessions.insert(
            h.raw(),
            Session {
                streams: list,
                last_signal: now,
                idle_reported: false,
            },
        );
        self.allocated += 1;
        Ok(h)
    }

    fn stream_count(&self, session: SessionHandle) -> Result<usize, MediaError> {
        Ok(self.session(session)?.streams.len())
    }

    fn local_ports(
        &self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
    ) -> Result<RelayPorts, MediaError> {
        let s = self.session(session)?;
        s.streams
            .get(stream)
            .map(|s| s.leg(side).ports)
            .ok_or(MediaError::NoSuchStream {
                stream,
                streams: s.streams.len(),
            })
    }

    fn set_remote(
        &mut self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
        remote: &RemoteSpec,
        now: Instant,
    ) -> Result<(), MediaError> {
        let s = self
            .sessions
            .get_mut(&session.raw())
            .ok_or(MediaError::UnknownSession)?;
        let streams = s.streams.len();
        s.last_signal = now;
        let st = s
            .streams
            .get_mut(stream)
            .ok_or(MediaError::NoSuchStream { stream, streams })?;
        if let Some(rate) = remote.clock_rate {
            st.clock_rate = rate;
        }
        let leg = match side {
            MediaSide::A => &mut st.a,
            MediaSide::B => &mut st.b,
        };
        leg.rtcp_mux = remote.sdp.rtcp_mux;
        let sdp = usable(remote.sdp.rtp);
        if leg.rtp.sdp != sdp {
            leg.rtp.learned = None;
        }
        leg.rtp.sdp = sdp;
        self.remotes.push((session, stream, side, *remote));
        Ok(())
    }

    fn release_at_once(&mut self, session: SessionHandle, now: Instant) -> Result<(), MediaError> {
        self.release(session, now)?;
        self.released_at_once += 1;
        Ok(())
    }

    fn release(&mut self, session: SessionHandle, _now: Instant) -> Result<(), MediaError> {
        let s = self
            .sessions
            .remove(&session.raw())
            .ok_or(MediaError::UnknownSession)?;
        for st in &s.streams {
            self.free.push_back(st.a.ports.rtp());
            self.free.push_back(st.b.ports.rtp());
        }
        self.released += 1;
        Ok(())
    }

    fn stats(&self, session: SessionHandle, out: &mut Vec<StreamStats>) -> Result<(), MediaError> {
        out.extend_from_slice(&self.session(session)?.streams);
        Ok(())
    }

    /// No-media episodes only: the double reports no one-way streams.
    fn poll_idle(&mut self, now: Instant, timeout: Duration, out: &mut Vec<IdleEvent>) {
        for (&raw, s) in &mut self.sessions {
            let last = s
                .streams
                .iter()
                .filter_map(StreamStats::last_packet)
                .fold(s.last_signal, Instant::max);
            let quiet = now.saturating_duration_since(last);
            if quiet >= timeout {
                if !s.idle_reported {
                    s.idle_reported = true;
                    out.push(IdleEvent::NoMedia {
                        session: SessionHandle::from_raw(raw),
                        quiet,
                    });
                }
            } else {
                s.idle_reported = false;
            }
        }
    }

    fn send_dtmf(
        &mut self,
        session: SessionHandle,
        stream: usize,
        toward: MediaSide,
        pt: u8,
        event: u8,
        duration: u16,
    ) -> Result<bool, MediaError> {
        self.session(session)?;
        self.dtmf_sent
            .push((session, stream, toward, pt, event, duration));
        Ok(true)
    }

    fn send_dtmf_tone(
        &mut self,
        session: SessionHandle,
        stream: usize,
        toward: MediaSide,
        event: u8,
        duration: u16,
    ) -> Result<bool, MediaError> {
        self.session(session)?;
        self.dtmf_tones
            .push((session, stream, toward, event, duration));
        Ok(true)
    }

    fn hear_dtmf(
        &mut self,
        session: SessionHandle,
        stream: usize,
        from: MediaSide,
        on: bool,
    ) -> Result<(), MediaError> {
        self.session(session)?;
        self.dtmf_heard.retain(|&h| h != (session, stream, from));
        if on {
            self.dtmf_heard.push((session, stream, from));
        }
        Ok(())
    }

    fn report_dtmf(
        &mut self,
        session: SessionHandle,
        stream: usize,
        from: MediaSide,
        pt: Option<u8>,
    ) -> Result<(), MediaError> {
        self.session(session)?;
        match pt {
            Some(pt) => self.dtmf_reported.insert((session, stream, from), pt),
            None => self.dtmf_reported.remove(&(session, stream, from)),
        };
        Ok(())
    }

    fn poll_dtmf(&mut self) -> Option<super::DtmfDigit> {
        self.dtmf_events.pop_front()
    }

    fn dtmf_pending(&self) -> bool {
        !self.dtmf_events.is_empty()
    }

    fn set_srtp(
        &mut self,
        session: SessionHandle,
        stream: usize,
        side: MediaSide,
        keys: Option<&super::StageKeys>,
    ) -> Result<(), MediaError> {
        let streams = self.session(session)?.streams.len();
        if stream >= streams {
            return Err(MediaError::NoSuchStream { stream, streams });
        }
        self.srtp.push((session, stream, side, keys.cloned()));
        Ok(())
    }

    fn max_streams(&self) -> usize {
        self.max_streams
    }

    fn ports_free(&self) -> usize {
        2 * self.free.len()
    }

    fn sessions(&self) -> usize {
        self.sessions.len()
    }
}

/// Lines joined with CRLF, as the SDP writer ends them.
pub fn sdp_text(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

/// A caller's audio offer (PCMU and telephone-event from 198.51.100.7:4000).
pub fn caller_sdp() -> String {
    sdp_text(&[
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

/// The callee's answer to [`caller_sdp`] (PCMU at 10.0.0.2:6000).
pub fn callee_sdp() -> String {
    sdp_text(&[
        "v=0",
        "o=bob 1 1 IN IP4 10.0.0.2",
        "s=-",
        "c=IN IP4 10.0.0.2",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ])
}

/// An RFC 2543-style hold offer: `c=0.0.0.0`, audio port 49170.
pub fn zero_address_offer() -> String {
    sdp_text(&[
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0",
    ])
}

/// A re-INVITE to T.38 fax: the audio line rejected, an `image` line over UDPTL.
pub fn t38_reinvite() -> String {
    sdp_text(&[
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

/// An RTP packet (PCMU, 160 bytes of payload) with sequence number `seq`.
pub fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&[0xd5; 160]);
    p
}

/// An offer of audio (G.722, PCMU, telephone-event) and H.264 video from 10.1.0.7.
pub fn audio_video_offer() -> String {
    sdp_text(&[
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
    ])
}

/// The answer to [`audio_video_offer`] from 172.16.0.5: audio accepted, video rejected.
pub fn video_rejecting_answer() -> String {
    sdp_text(&[
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
    ])
}
