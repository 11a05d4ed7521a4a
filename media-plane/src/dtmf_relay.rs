//! DTMF for signalling interworking (SIP INFO <-> RFC 4733), per leg of a stream:
//!
//! - **toward a leg** ([`MediaShard::send_dtmf`](crate::MediaShard::send_dtmf)): digits the
//!   signalling received (an INFO from the other party) are queued, and played as RFC 4733
//!   telephone-event packets in the place of the audio packets relayed toward the leg: the first
//!   packet of an event has the marker bit, every packet of it the timestamp of its first one and
//!   the duration so far (advanced by the audio's timestamp steps), the last three the E bit and
//!   the final duration. The packets keep the relayed stream's SSRC and sequence numbers, so the
//!   receiver sees one continuous stream. Digits follow one another in order, each at a later
//!   timestamp. The events ride on the audio toward the leg: a party that sends no audio gets
//!   none (RTP endpoints send continuously; comfort-noise silence suppression delays them).
//! - **from a leg** ([`MediaShard::report_dtmf`](crate::MediaShard::report_dtmf)): the leg's
//!   telephone-event packets are taken off the relay (the other party gets the digits by INFO)
//!   and each event is reported once, on its first end packet (the retransmitted ends and any
//!   later packet of the same timestamp are ignored; an event whose end packets were all lost is
//!   reported when the next event starts, RFC 4733 §2.5.2.1; packets of an older event are
//!   ignored), through the shard's bounded queue
//!   ([`MediaShard::poll_dtmf`](crate::MediaShard::poll_dtmf)).
//!
//! Nothing here allocates on the packet path: the queues are allocated when the signalling sets
//! them up, and are bounded ([`QUEUE`]).

use std::collections::VecDeque;

use crate::codec::dtmf::{Detected, Detector, Event};

/// Most digits waiting to be played toward one leg; more are refused.
pub const QUEUE: usize = 32;

/// Least duration of a played event, in timestamp units (40 ms at 8 kHz).
pub const MIN_DURATION: u16 = 320;

/// Timestamp step assumed before two audio packets were seen (20 ms at 8 kHz).
const DEFAULT_STEP: u32 = 160;

/// End packets of an event (RFC 4733 §2.5.1.4: the final packet is sent three times).
const ENDS: u8 = 3;

/// The volume written in played events (-10 dBm0).
const VOLUME: u8 = 10;

/// Silence written after a digit played as a tone, before the next (60 ms at 8 kHz): detectors
/// need a gap to count two equal digits twice.
const TONE_GAP: u16 = 480;

/// How the queued digits are played toward the leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Play {
    /// As RFC 4733 events of this payload type.
    Event(u8),
    /// As dual tones written over the G.711 audio relayed toward the leg.
    Tone,
}

/// A digit to play toward a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queued {
    event: u8,
    duration: u16,
}

/// The event being played.
#[derive(Clone, Copy, Debug)]
struct Playing {
    digit: Queued,
    /// Timestamp of its first packet.
    start: u32,
    /// Its duration so far.
    elapsed: u16,
    /// End packets sent.
    ends: u8,
}

/// A G.711 decoder: codes in, 16-bit samples out.
type G711Decode = fn(&[u8], &mut [i16]);

/// In-band digits heard in a leg's G.711 audio, for the signalling.
#[derive(Debug, Default)]
struct Hearing {
    detector: Detector,
    /// Samples fed so far.
    samples: u32,
    /// The digit on and the sample count at its start.
    on: Option<(u8, u32)>,
}

/// The DTMF interworking state of one leg. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct LegDtmf {
    /// How digits are played toward the leg (`None`: nothing is played).
    play: Option<Play>,
    queue: VecDeque<Queued>,
    playing: Option<Playing>,
    /// The timestamp of the last audio packet relayed toward the leg, for the step.
    last_ts: Option<u32>,
    step: u32,
    /// The previous event ended: the next starts at a later timestamp than its start.
    last_start: Option<u32>,
    /// The leg's telephone-event payload type whose events are taken off and reported.
    report_pt: Option<u8>,
    /// The timestamp of the last event reported (its repeated ends are not reported again).
    reported: Option<u32>,
    /// The event seen without its end yet: timestamp, event, duration so far.
    open: Option<(u32, u8, u16)>,
    /// Digits played to their last end packet.
    played: u64,
    /// In-band digits of the leg's G.711 audio are reported (and muted in the relayed audio).
    hearing: Option<Box<Hearing>>,
}

/// What [`LegDtmf::inbound`] made of a packet from the leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Not a reported telephone-event: relay it.
    Relay,
    /// Relay it (its tone muted, when one is on); an in-band digit of this duration (8 kHz
    /// samples) ended in it.
    Heard(u8, u16),
    /// A telephone-event taken off the relay, with the events it completes, to report in this
    /// order (`(event, duration)`): an earlier event whose end was lost, then this one on its
    /// first end packet.
    Taken([Option<(u8, u16)>; 2]),
}

impl LegDtmf {
    /// Queue a digit toward the leg, played with payload type `pt`. `false` when the queue is
    /// full.
    pub(crate) fn queue(&mut self, pt: u8, event: u8, duration: u16) -> bool {
        self.push(Play::Event(pt), event, duration)
    }

    /// Queue a digit toward the leg, played as its dual tone over the G.711 audio relayed toward
    /// it (`duration` in 8 kHz samples). `false` when the queue is full.
    pub(crate) fn queue_tone(&mut self, event: u8, duration: u16) -> bool {
        // At most 8 s (RFC 4733's longest segment), so that the tone and its gap fit the count.
        self.push(Play::Tone, event, duration.min(64_000))
    }

    fn push(&mut self, play: Play, event: u8, duration: u16) -> bool {
        if self.queue.len() >= QUEUE {
            return false;
        }
        if self.queue.capacity() == 0 {
            self.queue.reserve_exact(QUEUE);
        }
        self.play = Some(play);
        self.queue.push_back(Queued {
            event,
            duration: duration.max(MIN_DURATION),
        });
        true
    }

    /// Report (and take off the relay) the leg's telephone-events of payload type `pt`; `None`:
    /// relay them as before.
    pub(crate) fn report(&mut self, pt: Option<u8>) {
        if self.report_pt != pt {
            self.reported = None;
        }
        self.report_pt = pt;
    }

    /// Report the in-band digits of the leg's G.711 audio (`true`), or stop (`false`).
    pub(crate) fn hear(&mut self, on: bool) {
        match (on, self.hearing.is_some()) {
            (true, false) => self.hearing = Some(Box::default()),
            (false, true) => self.hearing = None,
            _ => {}
        }
    }

    /// In-band digits in `room[..len]` (RTP of the leg's audio, after decryption): the samples
    /// go through the detector; while a tone is on (or may be) the payload is overwritten with
    /// silence, so the digit reaches the other side once, by the signalling.
    fn hear_in(&mut self, room: &mut [u8], len: usize) -> Inbound {
        let Some(h) = self.hearing.as_deref_mut() else {
            return Inbound::Relay;
        };
        let Some((pt, payload)) = room.get(..len).and_then(|b| {
            let r = crate::rtp::RtpHeader::parse(b).ok()?;
            let end = r.header_len().checked_add(r.payload().ok()?.len())?;
            Some((r.payload_type(), r.header_len()..end))
        }) else {
            return Inbound::Relay;
        };
        let (decode, silence): (G711Decode, u8) = match pt {
            0 => (crate::codec::g711::decode_ulaw, 0xFF),
            8 => (crate::codec::g711::decode_alaw, 0xD5),
            _ => return Inbound::Relay,
        };
        let Some(out) = room.get_mut(payload) else {
            return Inbound::Relay;
        };
        let mut pcm = [0i16; 160];
        let mut heard = None;
        let mut tone = false;
        for chunk in out.chunks_mut(pcm.len()) {
            let Some(pcm) = pcm.get_mut(..chunk.len()) else {
                break;
            };
            decode(chunk, pcm);
            let state = h.detector.push(pcm);
            h.samples = h.samples.wrapping_add(chunk.len() as u32);
            match state {
                Detected::Start(d) => {
                    h.on = Some((d, h.samples));
                    tone = true;
                }
                Detected::End(d) => {
                    if let Some((on, start)) = h.on.take() {
                        let lasted = h.samples.wrapping_sub(start);
                        heard = (on == d).then(|| (d, u16::try_from(lasted).unwrap_or(u16::MAX)));
                    }
                }
                Detected::Maybe | Detected::On(_) => tone = true,
                Detected::Quiet => {}
            }
            if tone {
                chunk.fill(silence);
            }
        }
        match heard {
            Some((d, lasted)) => Inbound::Heard(d, lasted),
            None => Inbound::Relay,
        }
    }

    /// Whether digits are queued or being played.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> bool {
        self.playing.is_some() || !self.queue.is_empty()
    }

    /// Digits played to their last end packet so far.
    pub(crate) fn played(&self) -> u64 {
        self.played
    }

    /// A packet from the leg (RTP, after decryption): its telephone-events are taken off when
    /// reported.
    pub(crate) fn inbound(&mut self, room: &mut [u8], len: usize) -> Inbound {
        let Some(pt) = self.report_pt else {
            return self.hear_in(room, len);
        };
        let Some(packet) = room.get(..len) else {
            return Inbound::Relay;
        };
        let Ok(h) = crate::rtp::RtpHeader::parse(packet) else {
            return Inbound::Relay;
        };
        if h.payload_type() != pt {
            return self.hear_in(room, len);
        }
        let Some(ev) = h
            .payload()
            .ok()
            .and_then(Event::parse)
            .filter(|e| e.char().is_some())
        else {
            return Inbound::Taken([None, None]);
        };
        let ts = h.timestamp();
        // Older than the last event reported: a late packet of an event already done.
        let older = |r: u32| ts != r && (ts.wrapping_sub(r) as i32) < 0;
        if self.reported.is_some_and(older) {
            return Inbound::Taken([None, None]);
        }
        let mut out = [None, None];
        if let Some((start, event, duration)) = self.open {
            if start != ts && !older(start) {
                // A new event: the open one ended without an end packet seen.
                self.open = None;
                if self.reported != Some(start) {
                    self.reported = Some(start);
                    out[0] = Some((event, duration));
                }
            }
        }
        if self.reported == Some(ts) {
            return Inbound::Taken(out);
        }
        if ev.end {
            self.reported = Some(ts);
            self.open = None;
            out[1] = Some((ev.event, ev.duration));
        } else {
            self.open = Some((ts, ev.event, ev.duration));
        }
        Inbound::Taken(out)
    }

    /// The packet `room[..len]` about to be relayed toward the leg (RTP, before protection):
    /// while a digit plays, it is rewritten in place as the event's next packet. Returns the
    /// length to send.
    pub(crate) fn outbound(&mut self, room: &mut [u8], len: usize) -> usize {
        let Some((seq, ts, ssrc)) = room
            .get(..len)
            .and_then(|b| crate::rtp::RtpHeader::parse(b).ok())
            .map(|h| (h.sequence(), h.timestamp(), h.ssrc()))
        else {
            return len;
        };
        if let Some(last) = self.last_ts {
            let step = ts.wrapping_sub(last);
            // A plausible audio step (up to 200 ms at 8 kHz); anything else keeps the last one.
            if (1..=1600).contains(&step) {
                self.step = step;
            }
        }
        self.last_ts = Some(ts);
        let step = if self.step == 0 {
            DEFAULT_STEP
        } else {
            self.step
        };
        let pt = match self.play {
            None => return len,
            Some(Play::Tone) => {
                self.tone_out(room, len, ts);
                return len;
            }
            Some(Play::Event(pt)) => pt,
        };
        let first = self.start_next(ts);
        let Some(p) = self.playing.as_mut() else {
            return len;
        };
        if p.ends == 0 {
            let next = u32::from(p.elapsed).saturating_add(step);
            p.elapsed = u16::try_from(next)
                .unwrap_or(u16::MAX)
                .min(p.digit.duration);
        }
        let end = p.elapsed >= p.digit.duration;
        if end {
            p.ends = p.ends.saturating_add(1);
        }
        let ev = Event {
            event: p.digit.event,
            end,
            volume: VOLUME,
            duration: p.elapsed,
        };
        let start = p.start;
        if p.ends >= ENDS {
            self.playing = None;
            self.played += 1;
        }
        write_event(room, len, pt, first, seq, start, ssrc, ev)
    }

    /// When no digit plays, start the next queued one at the packet of timestamp `ts`; whether
    /// one started. A new digit never reuses the previous one's start timestamp.
    fn start_next(&mut self, ts: u32) -> bool {
        if self.playing.is_some() || self.last_start == Some(ts) {
            return false;
        }
        let Some(digit) = self.queue.pop_front() else {
            return false;
        };
        self.playing = Some(Playing {
            digit,
            start: ts,
            elapsed: 0,
            ends: 0,
        });
        self.last_start = Some(ts);
        true
    }

    /// The tone path of [`LegDtmf::outbound`]: while a digit plays, the G.711 payload of the
    /// packet is overwritten with the digit's samples, then with silence for [`TONE_GAP`]; the
    /// header stays. A packet in another codec passes unchanged (the digit's time still runs).
    fn tone_out(&mut self, room: &mut [u8], len: usize, ts: u32) {
        self.start_next(ts);
        let Some(p) = self.playing.as_mut() else {
            return;
        };
        let Some((pt, payload)) = room.get(..len).and_then(|b| {
            let h = crate::rtp::RtpHeader::parse(b).ok()?;
            let end = h.header_len().checked_add(h.payload().ok()?.len())?;
            Some((h.payload_type(), h.header_len()..end))
        }) else {
            return;
        };
        let Some(out) = room.get_mut(payload) else {
            return;
        };
        let mut pcm = [0i16; 160];
        let mut offset = u32::from(p.elapsed);
        for chunk in out.chunks_mut(pcm.len()) {
            let Some(pcm) = pcm.get_mut(..chunk.len()) else {
                break;
            };
            let toned = u32::from(p.digit.duration).saturating_sub(offset) as usize;
            let (tone, rest) = pcm.split_at_mut(toned.min(pcm.len()));
            crate::codec::dtmf::tone(p.digit.event, offset, tone);
            rest.fill(0);
            match pt {
                0 => crate::codec::g711::encode_ulaw(pcm, chunk),
                8 => crate::codec::g711::encode_alaw(pcm, chunk),
                _ => {}
            }
            offset = offset.saturating_add(chunk.len() as u32);
        }
        p.elapsed = u16::try_from(offset).unwrap_or(u16::MAX);
        if u32::from(p.elapsed) >= u32::from(p.digit.duration) + u32::from(TONE_GAP) {
            self.playing = None;
            self.played += 1;
        }
    }
}

/// Write an RTP packet of one telephone-event over `room` (12-byte header, no CSRC, no
/// extension, no padding); `len` when the room is too small (the packet is relayed as it was).
#[allow(clippy::too_many_arguments)]
fn write_event(
    room: &mut [u8],
    len: usize,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    ev: Event,
) -> usize {
    let Some(out) = room.get_mut(..16) else {
        return len;
    };
    let [s0, s1] = seq.to_be_bytes();
    let [t0, t1, t2, t3] = ts.to_be_bytes();
    let [c0, c1, c2, c3] = ssrc.to_be_bytes();
    let [e0, e1, e2, e3] = ev.to_bytes();
    out.copy_from_slice(&[
        0x80,
        (if marker { 0x80 } else { 0 }) | (pt & 0x7F),
        s0,
        s1,
        t0,
        t1,
        t2,
        t3,
        c0,
        c1,
        c2,
        c3,
        e0,
        e1,
        e2,
        e3,
    ]);
    16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`LegDtmf::inbound`] on a copy of `packet`.
    fn inb(d: &mut LegDtmf, packet: &[u8]) -> Inbound {
        let mut room = packet.to_vec();
        d.inbound(&mut room, packet.len())
    }

    /// 160 samples of a G.711 payload of payload type `pt` (0: μ-law, 8: A-law).
    fn g711_pcm(pt: u8, payload: &[u8]) -> [i16; 160] {
        let mut pcm = [0i16; 160];
        match pt {
            0 => crate::codec::g711::decode_ulaw(payload, &mut pcm),
            _ => crate::codec::g711::decode_alaw(payload, &mut pcm),
        }
        pcm
    }

    /// 160 samples as a G.711 payload of payload type `pt`.
    fn g711_code(pt: u8, pcm: &[i16; 160]) -> [u8; 160] {
        let mut code = [0u8; 160];
        match pt {
            0 => crate::codec::g711::encode_ulaw(pcm, &mut code),
            _ => crate::codec::g711::encode_alaw(pcm, &mut code),
        }
        code
    }

    fn audio(seq: u16, ts: u32, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0xFF; 160]);
        p
    }

    #[test]
    fn queued_digits_replace_audio_in_order_with_three_ends() {
        let mut d = LegDtmf::default();
        assert!(d.queue(101, 1, 480));
        assert!(d.queue(101, 11, 320));
        let mut events = Vec::new();
        for k in 0..20u16 {
            let mut p = audio(100 + k, 1000 + 160 * u32::from(k), 0);
            let len = p.len();
            let n = d.outbound(&mut p, len);
            if n == 16 {
                let h = crate::rtp::RtpHeader::parse(&p[..n]).unwrap();
                assert_eq!(h.payload_type(), 101);
                assert_eq!(h.sequence(), 100 + k, "the stream's numbering kept");
                assert_eq!(h.ssrc(), 0x1234);
                let ev = Event::parse(h.payload().unwrap()).unwrap();
                events.push((h.marker(), h.timestamp(), ev.event, ev.end, ev.duration));
            } else {
                assert_eq!(n, len, "audio relayed as it was");
            }
        }
        // Digit 1: 480 units = 3 packets of 160, the last sent three times with E.
        assert_eq!(
            events[..5],
            [
                (true, 1000, 1, false, 160),
                (false, 1000, 1, false, 320),
                (false, 1000, 1, true, 480),
                (false, 1000, 1, true, 480),
                (false, 1000, 1, true, 480),
            ]
        );
        // Then '#' at a later timestamp.
        assert_eq!(events[5], (true, 1800, 11, false, 160));
        assert_eq!(events[6..].iter().filter(|e| e.3).count(), 3);
        assert_eq!(events.len(), 9);
        assert!(!d.busy());
    }

    /// Digits played as tones over G.711 audio: a detector hears each once, in order, in both
    /// laws; the headers stay; after the last digit and its gap the audio passes unchanged.
    #[test]
    fn queued_tones_overwrite_g711_audio_and_are_heard_once_each() {
        use crate::codec::dtmf::{Detected, Detector};
        for pt in [0u8, 8] {
            let mut d = LegDtmf::default();
            // 1 twice: the gap must keep them apart; 9 last.
            for (event, samples) in [(1u8, 800u16), (1, 800), (9, 400)] {
                assert!(d.queue_tone(event, samples));
            }
            let mut det = Detector::new();
            let mut heard = Vec::new();
            for k in 0..40u16 {
                let before = audio(k, 1000 + 160 * u32::from(k), pt);
                let mut p = before.clone();
                let n = d.outbound(&mut p, before.len());
                assert_eq!((n, &p[..12]), (before.len(), &before[..12]));
                if let Detected::Start(digit) = det.push(&g711_pcm(pt, &p[12..])) {
                    heard.push(digit);
                }
                // 2,000 samples of tone and three gaps of 480: 3,440 samples, 21.5 packets.
                if k >= 22 {
                    assert_eq!(p, before, "pt {pt}: audio after the digits, packet {k}");
                }
            }
            assert_eq!(heard, [1, 1, 9], "pt {pt}");
            assert_eq!(d.played(), 3);
            assert!(!d.busy());
        }
    }

    /// Digits heard in G.711 audio: each reported once when it ends, with about its duration;
    /// the tone is muted in the audio relayed on from the packet where it was first suspected.
    #[test]
    fn tones_in_g711_audio_are_heard_once_and_muted() {
        use crate::codec::dtmf::tone;
        for pt in [0u8, 8] {
            let mut d = LegDtmf::default();
            d.hear(true);
            let mut heard = Vec::new();
            let mut muted = 0;
            // 7 for 120 ms, 100 ms of silence, 7 again for 80 ms, silence.
            let plan = [(Some(7u8), 6u32), (None, 5), (Some(7), 4), (None, 6)];
            let mut k = 0u32;
            for (digit, packets) in plan {
                for n in 0..packets {
                    let mut pcm = [0i16; 160];
                    if let Some(e) = digit {
                        tone(e, n * 160, &mut pcm);
                    }
                    let mut p = audio(k as u16, k * 160, pt);
                    let code = g711_code(pt, &pcm);
                    p[12..].copy_from_slice(&code);
                    let silent = if pt == 0 { 0xFF } else { 0xD5 };
                    let len = p.len();
                    match d.inbound(&mut p, len) {
                        Inbound::Heard(e, dur) => heard.push((e, dur)),
                        other => assert_eq!(other, Inbound::Relay),
                    }
                    if digit.is_some() && p[12..].iter().all(|&b| b == silent) {
                        muted += 1;
                    }
                    k += 1;
                }
            }
            assert_eq!(heard.len(), 2, "pt {pt}: {heard:?}");
            assert!(heard.iter().all(|&(e, _)| e == 7));
            // Counted from the detection (a block or two in) to the end being noticed.
            assert!((640..=1280).contains(&heard[0].1), "{heard:?}");
            assert!(muted >= 7, "pt {pt}: {muted} of 10 tone packets muted");
            d.hear(false);
            let mut p = audio(99, 99 * 160, pt);
            let len = p.len();
            assert_eq!(d.inbound(&mut p, len), Inbound::Relay);
        }
    }

    #[test]
    fn queue_is_bounded_and_short_packets_pass() {
        let mut d = LegDtmf::default();
        for _ in 0..QUEUE {
            assert!(d.queue(101, 5, 100));
        }
        assert!(!d.queue(101, 5, 100));
        let mut short = [0x80u8, 0, 0];
        assert_eq!(d.outbound(&mut short, 3), 3);
        // A packet of 12 bytes in a 12-byte room cannot take the event: relayed as is.
        let mut p = audio(1, 1, 0);
        p.truncate(12);
        assert_eq!(d.outbound(&mut p, 12), 12);
    }

    #[test]
    fn reported_events_once_per_timestamp() {
        let mut d = LegDtmf::default();
        let ev = |ts: u32, event: u8, end: bool, dur: u16| {
            let mut p = audio(1, ts, 101);
            p.truncate(12);
            p.extend_from_slice(
                &Event {
                    event,
                    end,
                    volume: 10,
                    duration: dur,
                }
                .to_bytes(),
            );
            p
        };
        assert_eq!(inb(&mut d, &ev(10, 3, true, 800)), Inbound::Relay);
        d.report(Some(101));
        assert_eq!(inb(&mut d, &audio(1, 10, 0)), Inbound::Relay);
        assert_eq!(
            inb(&mut d, &ev(10, 3, false, 160)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(10, 3, true, 800)),
            Inbound::Taken([None, Some((3, 800))])
        );
        assert_eq!(
            inb(&mut d, &ev(10, 3, true, 800)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(10, 3, true, 800)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(900, 11, true, 400)),
            Inbound::Taken([None, Some((11, 400))])
        );
        // Not DTMF (event 16+) and truncated payloads: taken, not reported.
        assert_eq!(
            inb(&mut d, &ev(1900, 40, true, 400)),
            Inbound::Taken([None, None])
        );
        let mut short = audio(1, 3000, 101);
        short.truncate(13);
        assert_eq!(inb(&mut d, &short), Inbound::Taken([None, None]));
        // An event whose ends were all lost: reported when the next one starts, before it.
        assert_eq!(
            inb(&mut d, &ev(4000, 5, false, 160)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(4000, 5, false, 320)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(5000, 6, false, 160)),
            Inbound::Taken([Some((5, 320)), None])
        );
        // Lost ends, and the next event known only by its end: both, in order.
        assert_eq!(
            inb(&mut d, &ev(6000, 7, true, 480)),
            Inbound::Taken([Some((6, 160)), Some((7, 480))])
        );
        // Late packets of older events change nothing.
        assert_eq!(
            inb(&mut d, &ev(5000, 6, true, 400)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(4000, 5, false, 480)),
            Inbound::Taken([None, None])
        );
        assert_eq!(
            inb(&mut d, &ev(6000, 7, true, 480)),
            Inbound::Taken([None, None])
        );
    }
}
