//! [`CodecStage`]: the per-stream codec work of the relay, one state per direction.
//!
//! For each RTP packet of a stream whose legs negotiated different formats ([`CodecPlan`]):
//! - audio at the sending leg's payload type is transcoded into the receiving leg's codec and
//!   renumbered to its payload type: between the G.711 laws at the same packet time in place (one
//!   byte per sample, a table), otherwise through a [`Pipeline`] (decode, PCM, encode, the
//!   receiving leg's packet time, its own sequence numbers and timestamps);
//! - telephone-events (RFC 4733) are renumbered to the receiving leg's telephone-event payload
//!   type (renumbered into the pipeline's sequence and timestamps when there is one), or, when
//!   that leg has none, turned into in-band tones in its codec (at an 8 kHz working rate: not
//!   between two wideband legs) and the sender's audio during the event is dropped, so a phone
//!   that sends both is heard once;
//! - when the sending leg has no telephone-event and the receiving leg has one, the sending
//!   leg's audio goes through the DTMF detector (G.711 decoded for it; G.722 and Opus looked at
//!   in the pipeline's PCM after decoding, brought down to 8 kHz by the half-band filter when the
//!   pipeline works at 16 kHz): a digit becomes RFC 4733 event packets (each replacing the audio
//!   packet it was heard in, so the tone is not relayed as well), and audio that may be the start
//!   of a tone is muted until the detector has decided. A sender that negotiated telephone-event
//!   is not listened to: its digits arrive as events, and are relayed once;
//! - anything else (comfort noise, unknown payload types) passes unchanged.
//!
//! The stage owns fixed-size state only (one detector block, one event record per direction) and
//! writes into the buffer the packet arrived in, within the room the driver gives it; the packet
//! path allocates nothing.

use super::dtmf::{self, Detected, Detector, Event};
use super::g711;
use super::resample::Decimator;
use super::transcode::{Pipeline, Received};
use super::{Codec, CodecPlan, LegFormat};
use crate::rtp::{RtpHeader, RtpHeaderMut};

/// The direction of a packet through the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From leg A to leg B.
    AToB,
    /// From leg B to leg A.
    BToA,
}

/// What the relay does with the packet after the stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageResult {
    /// Send the first `len` bytes of the buffer.
    Forward(usize),
    /// Do not send it (audio replaced by a generated tone, a repeated end of event).
    Consumed,
}

/// Counters of the codec work, per stream and summed per shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodecCounters {
    /// Audio frames converted from one codec into another.
    pub transcoded_frames: u64,
    /// RFC 4733 events relayed to a leg with telephone-event (each event once, however many
    /// packets carried it).
    pub dtmf_relayed: u64,
    /// RFC 4733 events played as in-band tones toward a leg without telephone-event.
    pub dtmf_generated: u64,
    /// In-band digits detected and sent as RFC 4733 events.
    pub dtmf_detected: u64,
    /// Packets sent beyond the one per packet received ([`CodecStage::next_packet`]).
    pub repacketised_packets: u64,
}

impl CodecCounters {
    /// Add `other` to these.
    pub fn add(&mut self, other: &Self) {
        self.transcoded_frames += other.transcoded_frames;
        self.dtmf_relayed += other.dtmf_relayed;
        self.dtmf_generated += other.dtmf_generated;
        self.dtmf_detected += other.dtmf_detected;
        self.repacketised_packets += other.repacketised_packets;
    }
}

/// Most samples written into one generated tone packet (120 ms).
const MAX_GENERATED: usize = 960;
/// Samples decoded at a time for the detector.
const CHUNK: usize = dtmf::BLOCK;
/// Volume written in detected events (-dBm0).
const DETECTED_VOLUME: u8 = 10;
/// An event whose end never came is over when audio arrives this far (1 s) past its last sample.
const STALE_EVENT: u32 = 8000;
/// End packets sent for a detected digit (RFC 4733 §2.5.1.4: three).
const END_PACKETS: u8 = 3;

/// An RFC 4733 event being played as a tone.
#[derive(Clone, Copy, Debug)]
struct Playing {
    timestamp: u32,
    event: u8,
    generated: u32,
    ended: bool,
}

/// A digit found by the detector, sent as events.
#[derive(Clone, Copy, Debug)]
struct Sending {
    timestamp: u32,
    event: u8,
    /// End packets still to send (0 while the digit is on).
    ends_left: u8,
    duration: u16,
}

/// Where the parts of a received RTP packet are.
#[derive(Clone, Copy, Debug)]
struct Packet {
    /// Its length.
    len: usize,
    /// Its sequence number.
    seq: u16,
    /// Its timestamp.
    ts: u32,
    /// The header's length (payload offset).
    hl: usize,
    /// The payload's length, without padding.
    payload_len: usize,
    /// The marker bit.
    marker: bool,
}

/// What the detector's verdict makes of an audio packet.
enum Verdict {
    /// It became an event packet, or was consumed.
    Event(StageResult),
    /// It stays audio, muted (maybe the start of a tone).
    Mute,
    /// It stays audio.
    Audio,
}

/// One direction's formats and state.
#[derive(Debug)]
struct Direction {
    from: LegFormat,
    to: LegFormat,
    /// Timestamp of the last event relayed (to count each event once).
    last_relayed: Option<u32>,
    playing: Option<Playing>,
    detector: Option<Box<Detector>>,
    /// Timestamp of the first packet of a tone the detector is deciding on.
    maybe_since: Option<u32>,
    sending: Option<Sending>,
    /// Decode, PCM, encode (all but the G.711 laws at the same packet time).
    pipe: Option<Box<Pipeline>>,
    /// 16 kHz PCM to the detector's 8 kHz (a wideband sender at a 16 kHz working rate).
    down: Option<Box<Decimator>>,
}

/// The codec stage of one stream. See the module doc.
#[derive(Debug)]
pub struct CodecStage {
    plan: CodecPlan,
    ab: Direction,
    ba: Direction,
    /// Per direction: `[A to B, B to A]`.
    counters: [CodecCounters; 2],
}

impl CodecStage {
    /// The stage for `plan` (built on the control path; the detector's block, the pipelines'
    /// buffers and libopus' state are allocated here).
    pub fn new(plan: CodecPlan) -> Self {
        Self {
            plan,
            ab: Direction::new(plan.a, plan.b, &plan),
            ba: Direction::new(plan.b, plan.a, &plan),
            counters: [CodecCounters::default(); 2],
        }
    }

    /// The plan it carries out.
    pub fn plan(&self) -> &CodecPlan {
        &self.plan
    }

    /// This stream's counters, both directions.
    pub fn counters(&self) -> CodecCounters {
        let [mut ab, ba] = self.counters;
        ab.add(&ba);
        ab
    }

    /// This stream's counters of the packets travelling `way`.
    pub fn counters_of(&self, way: Way) -> CodecCounters {
        let [ab, ba] = self.counters;
        match way {
            Way::AToB => ab,
            Way::BToA => ba,
        }
    }

    /// The pipeline of direction `way`, when it has one.
    pub fn pipeline(&mut self, way: Way) -> Option<&mut Pipeline> {
        match way {
            Way::AToB => self.ab.pipe.as_deref_mut(),
            Way::BToA => self.ba.pipe.as_deref_mut(),
        }
    }

    /// Process the RTP packet in `room[..len]` travelling `way`. It may be rewritten in place and
    /// grow up to `room.len()`; `totals` (the shard's counters) are counted with this stream's.
    pub fn process(
        &mut self,
        way: Way,
        room: &mut [u8],
        len: usize,
        totals: &mut CodecCounters,
    ) -> StageResult {
        let [ab, ba] = &mut self.counters;
        let (dir, mine) = match way {
            Way::AToB => (&mut self.ab, ab),
            Way::BToA => (&mut self.ba, ba),
        };
        let mut c = CodecCounters::default();
        let r = dir.process(room, len, &mut c);
        mine.add(&c);
        totals.add(&c);
        r
    }

    /// The last packet processed travelling `way` left more packets due than the one it became
    /// (repacketisation to a shorter packet time, a generated tone): [`CodecStage::next_packet`]
    /// writes them.
    pub fn pending(&self, way: Way) -> bool {
        let dir = match way {
            Way::AToB => &self.ab,
            Way::BToA => &self.ba,
        };
        dir.pipe.as_deref().is_some_and(Pipeline::pending)
    }

    /// The next packet due travelling `way` (see [`CodecStage::pending`]) written into `room`;
    /// its length. Ask right after [`CodecStage::process`] until `None`: what is left when the
    /// next packet arrives is dropped.
    /// `totals` (the shard's counters) count it with this stream's.
    pub fn next_packet(
        &mut self,
        way: Way,
        room: &mut [u8],
        totals: &mut CodecCounters,
    ) -> Option<usize> {
        let [ab, ba] = &mut self.counters;
        let (dir, mine) = match way {
            Way::AToB => (&mut self.ab, ab),
            Way::BToA => (&mut self.ba, ba),
        };
        let n = dir.pipe.as_deref_mut()?.next(room)?;
        mine.repacketised_packets += 1;
        totals.repacketised_packets += 1;
        Some(n)
    }
}

impl Direction {
    fn new(from: LegFormat, to: LegFormat, plan: &CodecPlan) -> Self {
        let detect = from.telephone_event.is_none() && to.telephone_event.is_some();
        let same_time = from.packet_ms() == to.packet_ms();
        // A wideband sender is listened to in the pipeline's PCM: it needs one even to its own
        // codec.
        let in_place = same_time
            && (from.codec == to.codec || (from.codec.is_g711() && to.codec.is_g711()))
            && (!detect || from.codec.is_g711());
        let pipe = if in_place {
            None
        } else {
            Pipeline::new(&from, &to, plan).map(Box::new)
        };
        let down = (detect && pipe.as_deref().is_some_and(|p| p.rate() == 16000))
            .then(|| Box::new(Decimator::new()));
        Self {
            from,
            to,
            last_relayed: None,
            playing: None,
            detector: detect.then(|| Box::new(Detector::new())),
            maybe_since: None,
            sending: None,
            pipe,
            down,
        }
    }

    /// The sender's clock ticks of `samples` at 8 kHz (the tones' rate).
    fn ticks(&self, samples: u32) -> u32 {
        let t = u64::from(samples) * u64::from(self.from.codec.clock_rate()) / 8000;
        u32::try_from(t).unwrap_or(u32::MAX)
    }

    /// 8 kHz samples in `ticks` of the sender's clock.
    fn samples(&self, ticks: u32) -> u32 {
        let s = u64::from(ticks) * 8000 / u64::from(self.from.codec.clock_rate().max(1));
        u32::try_from(s).unwrap_or(u32::MAX)
    }

    fn process(&mut self, room: &mut [u8], len: usize, c: &mut CodecCounters) -> StageResult {
        let Some((pt, pkt)) = room
            .get(..len)
            .and_then(|p| RtpHeader::parse(p).ok())
            .map(|h| {
                let pad = h.padding_len().unwrap_or(0);
                let body = len.saturating_sub(h.header_len()).saturating_sub(pad);
                let pkt = Packet {
                    len,
                    seq: h.sequence(),
                    ts: h.timestamp(),
                    hl: h.header_len(),
                    payload_len: body,
                    marker: h.marker(),
                };
                (h.payload_type(), pkt)
            })
        else {
            return StageResult::Forward(len);
        };
        if pt == self.from.payload_type {
            self.audio(room, pkt, c)
        } else if Some(pt) == self.from.telephone_event {
            self.event(room, pkt, c)
        } else {
            StageResult::Forward(len)
        }
    }

    fn audio(&mut self, room: &mut [u8], pkt: Packet, c: &mut CodecCounters) -> StageResult {
        let Packet {
            len,
            seq,
            ts,
            hl,
            payload_len,
            marker,
        } = pkt;
        if let Some(p) = self.playing {
            // A tone from an event replaces the sender's own audio until the event ends.
            let last = p.timestamp.wrapping_add(self.ticks(p.generated));
            // Signed distance: audio stamped inside the event is negative.
            let ahead = ts.wrapping_sub(last) as i32;
            let stale = i32::try_from(self.ticks(STALE_EVENT)).unwrap_or(i32::MAX);
            if !p.ended && ahead < stale {
                return StageResult::Consumed;
            }
            self.playing = None;
        }
        if self.detector.is_some() && !self.from.codec.is_g711() && self.pipe.is_some() {
            return self.detect_decoded(room, pkt, c);
        }
        if self.detector.is_some() && self.from.codec.is_g711() {
            if let Some(r) = self.detect(room, pkt, c) {
                return self.renumber_event(room, r, seq, ts);
            }
        }
        if let Some(p) = self.pipe.as_deref_mut() {
            c.transcoded_frames += 1;
            let rx = Received {
                seq,
                ts,
                hl,
                payload_len,
                marker,
            };
            return match p.audio(room, rx, self.to.payload_type) {
                Some(n) => StageResult::Forward(n),
                None => StageResult::Consumed,
            };
        }
        if let Some(payload) = room.get_mut(hl..hl.saturating_add(payload_len)) {
            transcode(self.from.codec, self.to.codec, payload, c);
        }
        set_payload_type(room, len, self.to.payload_type);
        StageResult::Forward(len)
    }

    /// An event packet the detector made of an audio packet: into the pipeline's numbering, if
    /// any.
    fn renumber_event(
        &mut self,
        room: &mut [u8],
        r: StageResult,
        seq: u16,
        ts: u32,
    ) -> StageResult {
        match (r, self.pipe.as_deref_mut()) {
            (StageResult::Forward(n), Some(p)) => {
                let at = RtpHeader::parse(room.get(..n).unwrap_or_default())
                    .map_or(ts, |h| h.timestamp());
                if p.event(room, n, seq, at) {
                    r
                } else {
                    StageResult::Consumed
                }
            }
            _ => r,
        }
    }

    /// Run the detector on a G.711 audio packet. `Some`: the packet became an event packet (or
    /// was consumed); `None`: it stays audio (maybe muted), to be transcoded.
    fn detect(
        &mut self,
        room: &mut [u8],
        pkt: Packet,
        c: &mut CodecCounters,
    ) -> Option<StageResult> {
        let (hl, payload_len) = (pkt.hl, pkt.payload_len);
        let payload = room.get(hl..hl.checked_add(payload_len)?)?;
        let samples = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut seen = Detected::Quiet;
        let mut pcm = [0i16; CHUNK];
        for chunk in payload.chunks(CHUNK) {
            let out = pcm.get_mut(..chunk.len()).unwrap_or_default();
            match self.from.codec {
                Codec::Pcma => g711::decode_alaw(chunk, out),
                // The detector runs here on G.711 senders only (see `Direction::audio`).
                _ => g711::decode_ulaw(chunk, out),
            }
            let d = self.detector.as_mut()?.push(out);
            if !matches!(seen, Detected::Start(_) | Detected::End(_)) {
                seen = d;
            }
        }
        let ticks = self.ticks(samples);
        match self.decide(seen, room, pkt, ticks, c) {
            Verdict::Event(r) => Some(r),
            Verdict::Mute => {
                let silence = match self.from.codec {
                    Codec::Pcma => g711::linear_to_alaw(0),
                    _ => g711::linear_to_ulaw(0),
                };
                room.get_mut(hl..hl.saturating_add(payload_len))?
                    .fill(silence);
                None
            }
            Verdict::Audio => None,
        }
    }

    /// A G.722 or Opus audio packet through the pipeline with the detector listening to what it
    /// decoded: sent as audio (muted while a tone may be starting), or replaced by an event
    /// packet (its audio taken back out of the FIFO).
    fn detect_decoded(
        &mut self,
        room: &mut [u8],
        pkt: Packet,
        c: &mut CodecCounters,
    ) -> StageResult {
        let rx = Received {
            seq: pkt.seq,
            ts: pkt.ts,
            hl: pkt.hl,
            payload_len: pkt.payload_len,
            marker: pkt.marker,
        };
        let Some(pipe) = self.pipe.as_deref_mut() else {
            return StageResult::Consumed;
        };
        let Some((start, n)) = pipe.ingest(room, rx) else {
            return StageResult::Consumed;
        };
        c.transcoded_frames += 1;
        let wide = pipe.rate() == 16000;
        let mut seen = Detected::Quiet;
        let mut narrow = 0usize;
        if let (Some(pcm), Some(det)) = (pipe.samples_mut(start, n), self.detector.as_deref_mut()) {
            let mut buf = [0i16; CHUNK];
            let step = if wide { 2 * CHUNK } else { CHUNK };
            for chunk in pcm.chunks(step) {
                let block: &[i16] = match self.down.as_deref_mut() {
                    Some(down) if wide => {
                        let k = down.process(chunk, &mut buf);
                        buf.get(..k).unwrap_or_default()
                    }
                    _ => chunk,
                };
                narrow += block.len();
                let d = det.push(block);
                if !matches!(seen, Detected::Start(_) | Detected::End(_)) {
                    seen = d;
                }
            }
        }
        let ticks = self.ticks(u32::try_from(narrow).unwrap_or(u32::MAX));
        match self.decide(seen, room, pkt, ticks, c) {
            Verdict::Event(r) => {
                if let Some(p) = self.pipe.as_deref_mut() {
                    p.unread(start, pkt.seq, pkt.ts);
                }
                self.renumber_event(room, r, pkt.seq, pkt.ts)
            }
            verdict => {
                let Some(p) = self.pipe.as_deref_mut() else {
                    return StageResult::Consumed;
                };
                if matches!(verdict, Verdict::Mute) {
                    if let Some(pcm) = p.samples_mut(start, n) {
                        pcm.fill(0);
                    }
                }
                match p.send(room, pkt.hl, self.to.payload_type) {
                    Some(n) => StageResult::Forward(n),
                    None => StageResult::Consumed,
                }
            }
        }
    }

    /// What the detector's `seen`, over an audio packet `ticks` long (the sender's clock), makes
    /// of it: event packets for a digit (start, continuation, three ends), muted audio while a
    /// tone may be starting, audio otherwise.
    fn decide(
        &mut self,
        seen: Detected,
        room: &mut [u8],
        pkt: Packet,
        ticks: u32,
        c: &mut CodecCounters,
    ) -> Verdict {
        let (ts, hl) = (pkt.ts, pkt.hl);
        let Some(te) = self.to.telephone_event else {
            return Verdict::Audio;
        };
        let end_ts = ts.wrapping_add(ticks);
        let duration = |since: u32| u16::try_from(end_ts.wrapping_sub(since)).unwrap_or(u16::MAX);
        match seen {
            Detected::Start(d) => {
                let since = self.maybe_since.take().unwrap_or(ts);
                c.dtmf_detected += 1;
                self.sending = Some(Sending {
                    timestamp: since,
                    event: d,
                    ends_left: 0,
                    duration: duration(since),
                });
                let ev = Event {
                    event: d,
                    end: false,
                    volume: DETECTED_VOLUME,
                    duration: duration(since),
                };
                return Verdict::Event(write_event(room, hl, te, since, true, ev));
            }
            Detected::On(d) => {
                let s = self.sending.get_or_insert(Sending {
                    timestamp: ts,
                    event: d,
                    ends_left: 0,
                    duration: 0,
                });
                s.duration = duration(s.timestamp);
                let ev = Event {
                    event: s.event,
                    end: false,
                    volume: DETECTED_VOLUME,
                    duration: s.duration,
                };
                return Verdict::Event(write_event(room, hl, te, s.timestamp, false, ev));
            }
            Detected::End(_) => {
                if let Some(s) = self.sending.as_mut() {
                    s.ends_left = END_PACKETS;
                }
            }
            Detected::Maybe => {
                if self.maybe_since.is_none() {
                    self.maybe_since = Some(ts);
                }
                // Not a digit yet, maybe never: mute it, so the far end does not hear (and
                // detect) the start of a tone that is then also sent as an event.
                return Verdict::Mute;
            }
            Detected::Quiet => self.maybe_since = None,
        }
        if let Some(s) = self.sending.as_mut() {
            if s.ends_left > 0 {
                s.ends_left -= 1;
                let ev = Event {
                    event: s.event,
                    end: true,
                    volume: DETECTED_VOLUME,
                    duration: s.duration,
                };
                let at = s.timestamp;
                if s.ends_left == 0 {
                    self.sending = None;
                }
                return Verdict::Event(write_event(room, hl, te, at, false, ev));
            }
            self.sending = None;
        }
        Verdict::Audio
    }

    fn event(&mut self, room: &mut [u8], pkt: Packet, c: &mut CodecCounters) -> StageResult {
        let Packet {
            len, seq, ts, hl, ..
        } = pkt;
        if let Some(te) = self.to.telephone_event {
            if let Some(p) = self.pipe.as_deref_mut() {
                if !p.event(room, len, seq, ts) {
                    return StageResult::Consumed;
                }
            }
            if self.last_relayed != Some(ts) {
                self.last_relayed = Some(ts);
                c.dtmf_relayed += 1;
            }
            set_payload_type(room, len, te);
            return StageResult::Forward(len);
        }
        let Some(ev) = room.get(hl..len).and_then(Event::parse) else {
            return StageResult::Consumed;
        };
        let mut p = match self.playing {
            Some(p) if p.timestamp == ts => p,
            _ => {
                c.dtmf_generated += 1;
                Playing {
                    timestamp: ts,
                    event: ev.event,
                    generated: 0,
                    ended: false,
                }
            }
        };
        if p.ended {
            return StageResult::Consumed;
        }
        let room_samples = room.len().saturating_sub(hl).min(MAX_GENERATED);
        // The tone is made at 8 kHz: the event's duration (in the sender's clock) in samples.
        let duration = self.samples(u32::from(ev.duration));
        let want = duration.saturating_sub(p.generated);
        let n = usize::try_from(want)
            .unwrap_or(usize::MAX)
            .min(room_samples);
        p.ended = ev.end;
        if n == 0 {
            self.playing = Some(p);
            return StageResult::Consumed;
        }
        let mut pcm = [0i16; MAX_GENERATED];
        let Some(pcm) = pcm.get_mut(..n) else {
            return StageResult::Consumed;
        };
        dtmf::tone(p.event, p.generated, pcm);
        let at = ts.wrapping_add(self.ticks(p.generated));
        p.generated += u32::try_from(n).unwrap_or(0);
        self.playing = Some(p);
        if let Some(pipe) = self.pipe.as_deref_mut() {
            // The tone stands for the sender's audio: through the pipeline like it.
            let rx = Received {
                seq,
                ts: at,
                hl,
                payload_len: 0,
                marker: false,
            };
            return match pipe.tone(room, rx, pcm, self.to.payload_type) {
                Some(n) => StageResult::Forward(n),
                None => StageResult::Consumed,
            };
        }
        let Some(out) = room.get_mut(hl..hl + n) else {
            return StageResult::Consumed;
        };
        match self.to.codec {
            Codec::Pcmu => g711::encode_ulaw(pcm, out),
            Codec::Pcma => g711::encode_alaw(pcm, out),
            // Only the G.711 laws go without a pipeline.
            Codec::G722 | Codec::Opus => return StageResult::Consumed,
        }
        if let Ok(mut h) = RtpHeaderMut::parse(room.get_mut(..hl + n).unwrap_or_default()) {
            let _ = h.set_payload_type(self.to.payload_type);
            h.set_timestamp(at);
            h.set_marker(false);
        }
        clear_padding(room);
        StageResult::Forward(hl + n)
    }
}

/// Convert a payload between two codecs in place.
fn transcode(from: Codec, to: Codec, payload: &mut [u8], c: &mut CodecCounters) {
    match (from, to) {
        (Codec::Pcma, Codec::Pcmu) => g711::convert_in_place(&g711::ALAW_TO_ULAW, payload),
        (Codec::Pcmu, Codec::Pcma) => g711::convert_in_place(&g711::ULAW_TO_ALAW, payload),
        _ => return,
    }
    c.transcoded_frames += 1;
}

fn set_payload_type(room: &mut [u8], len: usize, pt: u8) {
    if let Some(Ok(mut h)) = room.get_mut(..len).map(RtpHeaderMut::parse) {
        let _ = h.set_payload_type(pt);
    }
}

fn clear_padding(room: &mut [u8]) {
    if let Some(b0) = room.first_mut() {
        *b0 &= !0x20;
    }
}

/// Turn the packet into a telephone-event packet: payload `ev` after the header, payload type
/// `pt`, timestamp `at`, marker on the first packet of an event. Returns its length.
fn write_event(room: &mut [u8], hl: usize, pt: u8, at: u32, first: bool, ev: Event) -> StageResult {
    let Some(p) = room.get_mut(hl..hl + 4) else {
        return StageResult::Consumed;
    };
    p.copy_from_slice(&ev.to_bytes());
    clear_padding(room);
    if let Some(Ok(mut h)) = room.get_mut(..hl + 4).map(RtpHeaderMut::parse) {
        let _ = h.set_payload_type(pt);
        h.set_timestamp(at);
        h.set_marker(first);
    }
    StageResult::Forward(hl + 4)
}
