//! [`Pipeline`]: one direction's transcoding through linear PCM, for the pairs a byte table cannot
//! do (G.722, Opus) and for legs whose packet times differ (20 <-> 30 ms).
//!
//! A packet's payload is decoded into a FIFO of PCM at the pipeline's working rate (16 kHz when
//! both legs are wideband, G.722 or Opus, else 8 kHz: G.722 against a narrowband leg goes through
//! its lower sub-band alone, or, with [`G722Narrowband::Resample`], through the full codec and the
//! half-band filter of [`super::resample`]; libopus decodes and encodes at the working rate
//! itself). Whenever the FIFO holds a whole packet of the receiving leg's packet time, it is
//! encoded in the receiving codec into the same buffer, after the received header, and sent.
//!
//! Every packet sent carries exactly the receiving leg's packet time, so one packet in gives zero,
//! one or more packets out: 20 ms in, 30 ms out gives none (buffered), one, one for every three
//! packets in; 30 ms in, 20 ms out gives one, then two, in turn. The first leaves in
//! the buffer the packet arrived in ([`Pipeline::audio`]); the others stay in the FIFO until the
//! relay asks for them ([`Pipeline::pending`], [`Pipeline::next`]), each with a plain 12-byte
//! header (the first's SSRC and payload type, no CSRC or extension) and its own sequence number
//! and timestamp. The marker bit of a packet in goes on the first packet out after it. Whole
//! packets the relay did not ask for by the next packet in are dropped (counted as time skipped,
//! like a loss), so a driver that ignores them never makes the FIFO overflow.
//!
//! Sequence numbers and timestamps toward the receiver are the pipeline's own, per direction:
//! they start from the first packet's, the sequence number grows by one per packet sent and the
//! timestamp by the samples sent (in the receiving codec's RTP clock: 8000 for G.711 and G.722,
//! 48000 for Opus). Losses stay visible: input lost (a sequence gap) or skipped (a timestamp jump,
//! silence suppression) advances the output timestamp by the same time, and the sequence number
//! by the packets lost; what was buffered is dropped. From an Opus leg, a gap of up to 120 ms is
//! instead rebuilt from the next packet's in-band FEC (or libopus' concealment) and the output
//! stays continuous. A late or repeated packet is consumed. Telephone-events crossing the
//! direction are renumbered into the same sequence and timestamp space ([`Pipeline::event`]).
//!
//! Everything is allocated when the stage is built (the FIFO and scratch buffers are fixed
//! arrays, libopus' state is made by its `create` calls); the packet path allocates nothing.

use super::g711;
use super::g722;
use super::opus;
use super::resample::{Decimator, Interpolator};
use super::{Codec, CodecPlan, G722Narrowband, LegFormat};
use crate::rtp::RtpHeaderMut;

/// PCM the FIFO holds (at 16 kHz: 256 ms, more than one packet of 120 ms and a leftover).
const FIFO: usize = 4096;
/// The largest payload decoded at once, in 16 kHz samples (G.722: 1400 octets).
const SCRATCH: usize = 2880;
/// The longest input gap rebuilt from Opus FEC or concealment (ms).
const MAX_FEC_MS: u32 = 120;

/// How a payload becomes PCM.
// One per direction, built once: the size of the G.722 variant is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Dec {
    Ulaw,
    Alaw,
    G722(g722::Decoder, Option<Decimator>),
    /// G.722 to 8 kHz by its lower band alone.
    G722Low(g722::Decoder),
    Opus(opus::Decoder),
}

/// How PCM becomes a payload.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Enc {
    Ulaw,
    Alaw,
    G722(g722::Encoder, Option<Interpolator>),
    /// G.722 from 8 kHz into its lower band alone.
    G722Low(g722::Encoder),
    Opus(opus::Encoder),
}

/// Decode G.711 `codes` into `out` with `law`; the samples written.
fn g711_decode(law: fn(&[u8], &mut [i16]), codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    if let (Some(c), Some(o)) = (codes.get(..n), out.get_mut(..n)) {
        law(c, o);
    }
    n
}

/// One direction's decode -> PCM -> encode. See the module doc.
#[derive(Debug)]
pub struct Pipeline {
    dec: Dec,
    enc: Enc,
    to: Codec,
    /// Working rate (Hz).
    rate: u32,
    in_clock: u32,
    out_clock: u32,
    /// Samples (working rate) per packet sent.
    frame: usize,
    /// Samples per packet of the sender's packet time (to turn a sequence gap into time).
    in_frame: usize,
    fifo: [i16; FIFO],
    fill: usize,
    scratch: [i16; SCRATCH],
    started: bool,
    /// The timestamp and sequence number expected of the next packet in.
    expect_ts: u32,
    expect_seq: u16,
    /// Timestamp (receiver's clock) of the FIFO's first sample, and the next sequence number out.
    out_ts: u32,
    out_seq: u16,
    /// Set the marker bit on the next packet sent (the first, or after a marked packet in).
    mark: bool,
    /// The header of the last packet sent, for the further packets of the same packet in.
    tmpl: [u8; 12],
    /// Its payload type.
    pt: u8,
}

/// What the header of a received packet says.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Header length (the payload's offset).
    pub hl: usize,
    /// Payload length, without padding.
    pub payload_len: usize,
    /// The marker bit.
    pub marker: bool,
}

impl Pipeline {
    /// The pipeline from `from` to `to`, with the plan's settings (Opus complexity, how G.722
    /// meets a narrowband leg). `None` when a codec cannot be set up (libopus refused).
    pub fn new(from: &LegFormat, to: &LegFormat, plan: &CodecPlan) -> Option<Self> {
        let rate = if from.codec.is_wideband() && to.codec.is_wideband() {
            16000
        } else {
            8000
        };
        let opus_complexity = plan.opus_complexity;
        let subband = rate == 8000 && plan.g722_narrowband == G722Narrowband::SubBand;
        let dec = match from.codec {
            Codec::Pcmu => Dec::Ulaw,
            Codec::Pcma => Dec::Alaw,
            Codec::G722 if subband => Dec::G722Low(g722::Decoder::new()),
            Codec::G722 => Dec::G722(g722::Decoder::new(), (rate == 8000).then(Decimator::new)),
            Codec::Opus => Dec::Opus(opus::Decoder::new(rate)?),
        };
        let enc = match to.codec {
            Codec::Pcmu => Enc::Ulaw,
            Codec::Pcma => Enc::Alaw,
            Codec::G722 if subband => Enc::G722Low(g722::Encoder::new()),
            Codec::G722 => Enc::G722(g722::Encoder::new(), (rate == 8000).then(Interpolator::new)),
            Codec::Opus => Enc::Opus(opus::Encoder::new(rate, opus_complexity, &to.opus)?),
        };
        let per_ms = usize::try_from(rate / 1000).ok()?;
        Some(Self {
            dec,
            enc,
            to: to.codec,
            rate,
            in_clock: from.codec.clock_rate(),
            out_clock: to.codec.clock_rate(),
            frame: usize::try_from(to.packet_ms()).ok()? * per_ms,
            in_frame: usize::try_from(from.packet_ms()).ok()? * per_ms,
            fifo: [0; FIFO],
            fill: 0,
            scratch: [0; SCRATCH],
            started: false,
            expect_ts: 0,
            expect_seq: 0,
            out_ts: 0,
            out_seq: 0,
            mark: true,
            tmpl: [0; 12],
            pt: 0,
        })
    }

    /// The working rate (Hz).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The Opus encoder, when the receiving leg is Opus (to read its settings).
    pub fn opus_encoder(&mut self) -> Option<&mut opus::Encoder> {
        match &mut self.enc {
            Enc::Opus(e) => Some(e),
            _ => None,
        }
    }

    /// Working-rate samples in `ticks` of the sender's clock.
    fn in_samples(&self, ticks: u32) -> usize {
        let s = u64::from(ticks) * u64::from(self.rate) / u64::from(self.in_clock.max(1));
        usize::try_from(s).unwrap_or(usize::MAX)
    }

    /// Sender's clock ticks of `samples` at the working rate.
    fn in_ticks(&self, samples: usize) -> u32 {
        let t = samples as u64 * u64::from(self.in_clock) / u64::from(self.rate.max(1));
        u32::try_from(t).unwrap_or(u32::MAX)
    }

    /// Receiver's clock ticks of `samples` at the working rate.
    fn out_ticks(&self, samples: usize) -> u32 {
        let t = samples as u64 * u64::from(self.out_clock) / u64::from(self.rate.max(1));
        u32::try_from(t).unwrap_or(u32::MAX)
    }

    /// Where packet `seq`/`ts` stands against what was expected. `false`: late or repeated,
    /// to be consumed. Gaps are dealt with here (FEC from `payload` for Opus, else skipped).
    fn arrive(&mut self, seq: u16, ts: u32, payload: &[u8]) -> bool {
        if !self.started {
            self.started = true;
            self.out_ts = ts;
            self.out_seq = seq;
            self.expect_ts = ts;
            self.expect_seq = seq;
            return true;
        }
        let dseq = seq.wrapping_sub(self.expect_seq) as i16;
        let dts = ts.wrapping_sub(self.expect_ts) as i32;
        if dseq < 0 {
            return false;
        }
        if dseq == 0 && dts == 0 {
            return true;
        }
        let gap = u32::try_from(dts).unwrap_or(0);
        let gap_samples = self.in_samples(gap);
        let max_fec = usize::try_from(MAX_FEC_MS * self.rate / 1000).unwrap_or(0);
        if let Dec::Opus(d) = &mut self.dec {
            if gap_samples > 0 && gap_samples <= max_fec && dseq > 0 {
                let start = self.fill;
                let end = (start + gap_samples).min(FIFO);
                let got = self
                    .fifo
                    .get_mut(start..end)
                    .and_then(|out| d.decode(payload, out, true));
                if let Some(n) = got {
                    self.fill = (start + n).min(FIFO);
                    return true;
                }
            }
        }
        // Skip: the buffered audio and the gap become a jump of the output timestamp.
        let skipped = self.fill.saturating_add(gap_samples);
        self.out_ts = self.out_ts.wrapping_add(self.out_ticks(skipped));
        self.fill = 0;
        if dseq > 0 {
            // The packets lost, counted in packets of the receiver's packet time.
            let lost = usize::from(dseq.unsigned_abs()) * self.in_frame;
            let out = lost.div_ceil(self.frame.max(1));
            self.out_seq = self
                .out_seq
                .wrapping_add(u16::try_from(out).unwrap_or(u16::MAX));
        }
        true
    }

    /// Decode `payload` onto the FIFO; the samples added.
    fn decode(&mut self, payload: &[u8]) -> usize {
        let start = self.fill;
        let Some(tail) = self.fifo.get_mut(start..) else {
            return 0;
        };
        let n = match &mut self.dec {
            Dec::Ulaw => g711_decode(g711::decode_ulaw, payload, tail),
            Dec::Alaw => g711_decode(g711::decode_alaw, payload, tail),
            Dec::G722(d, None) => d.decode(payload, tail),
            Dec::G722(d, Some(down)) => {
                let wide = d.decode(payload, &mut self.scratch);
                down.process(self.scratch.get(..wide).unwrap_or(&[]), tail)
            }
            Dec::G722Low(d) => d.decode_narrow(payload, tail),
            // An empty payload is no frame (libopus would conceal the whole FIFO's room).
            Dec::Opus(_) if payload.is_empty() => 0,
            Dec::Opus(d) => d.decode(payload, tail, false).unwrap_or(0),
        };
        self.fill = (start + n).min(FIFO);
        n
    }

    /// Encode one packet of the receiver's packet time into `room[hl..]` when the FIFO holds one
    /// (an Opus leg's packet time is one of its frame sizes, [`LegFormat::packet_ms`]); the
    /// payload length, and the samples it took.
    fn encode(&mut self, room: &mut [u8], hl: usize) -> Option<(usize, usize)> {
        let take = self.frame;
        if take == 0 || self.fill < take {
            return None;
        }
        let pcm = self.fifo.get(..take)?;
        let out = room.get_mut(hl..)?;
        let len = match &mut self.enc {
            Enc::Ulaw => {
                g711::encode_ulaw(pcm, out.get_mut(..take)?);
                take
            }
            Enc::Alaw => {
                g711::encode_alaw(pcm, out.get_mut(..take)?);
                take
            }
            Enc::G722(e, None) => e.encode(pcm, out),
            Enc::G722(e, Some(up)) => {
                let wide = up.process(pcm, &mut self.scratch);
                e.encode(self.scratch.get(..wide)?, out)
            }
            Enc::G722Low(e) => e.encode_narrow(pcm, out),
            Enc::Opus(e) => e.encode(pcm, out)?,
        };
        Some((len, take))
    }

    /// Write the header of the packet sent (payload type `pt`, `samples` long) and advance.
    fn stamp(&mut self, room: &mut [u8], end: usize, pt: u8, samples: usize) {
        if let Some(Ok(mut h)) = room.get_mut(..end).map(RtpHeaderMut::parse) {
            let _ = h.set_payload_type(pt);
            h.set_sequence(self.out_seq);
            h.set_timestamp(self.out_ts);
            h.set_marker(self.mark);
        }
        if let Some(b0) = room.first_mut() {
            // The payload was rewritten: no padding.
            *b0 &= !0x20;
        }
        if let Some(head) = room.get(..12) {
            self.tmpl.copy_from_slice(head);
            // The further packets have no CSRC, extension, padding nor marker.
            self.tmpl[0] = 0x80;
            self.tmpl[1] &= 0x7f;
        }
        self.pt = pt;
        self.mark = false;
        self.out_seq = self.out_seq.wrapping_add(1);
        self.out_ts = self.out_ts.wrapping_add(self.out_ticks(samples));
    }

    /// Emit what the FIFO holds of the receiver's packets, into `room` after the header.
    fn emit(&mut self, room: &mut [u8], hl: usize, pt: u8) -> Result<usize, ()> {
        let Some((len, took)) = self.encode(room, hl) else {
            return Err(());
        };
        self.fifo.copy_within(took..self.fill, 0);
        self.fill = self.fill.saturating_sub(took);
        let end = hl.saturating_add(len);
        self.stamp(room, end, pt, took);
        Ok(end)
    }

    /// Whole packets still in the FIFO that nobody asked for (see the module doc): dropped, their
    /// time skipped in the output's timestamps and sequence numbers.
    fn drop_unsent(&mut self) {
        let frame = self.frame.max(1);
        let packets = self.fill / frame;
        if packets == 0 {
            return;
        }
        let whole = packets * frame;
        self.out_ts = self.out_ts.wrapping_add(self.out_ticks(whole));
        self.out_seq = self
            .out_seq
            .wrapping_add(u16::try_from(packets).unwrap_or(u16::MAX));
        self.fifo.copy_within(whole..self.fill, 0);
        self.fill -= whole;
    }

    /// An audio packet in: decoded onto the FIFO; `Some(len)`: `room[..len]` is the packet to
    /// send (at payload type `pt`), `None`: nothing to send yet. More may be due after it
    /// ([`Pipeline::next`]).
    pub fn audio(&mut self, room: &mut [u8], rx: Received, pt: u8) -> Option<usize> {
        self.ingest(room, rx)?;
        self.emit(room, rx.hl, pt).ok()
    }

    /// The first half of [`Pipeline::audio`]: the packet's payload decoded onto the FIFO, where
    /// it is `(start, n)` (working-rate samples), for a look at it before [`Pipeline::send`].
    /// `None`: late or repeated, to be consumed.
    pub fn ingest(&mut self, room: &[u8], rx: Received) -> Option<(usize, usize)> {
        let Received {
            seq,
            ts,
            hl,
            payload_len,
            marker,
        } = rx;
        self.drop_unsent();
        let payload_end = hl.checked_add(payload_len)?;
        let payload = room.get(hl..payload_end)?;
        if !self.arrive(seq, ts, payload) {
            return None;
        }
        self.mark |= marker;
        let start = self.fill;
        let n = self.decode(payload);
        self.expect_ts = ts.wrapping_add(self.in_ticks(n));
        self.expect_seq = seq.wrapping_add(1);
        Some((start, n))
    }

    /// The working-rate samples `start..start + n` of the FIFO (what [`Pipeline::ingest`] added).
    pub fn samples_mut(&mut self, start: usize, n: usize) -> Option<&mut [i16]> {
        let end = start.checked_add(n)?.min(self.fill);
        self.fifo.get_mut(start..end)
    }

    /// Take back what [`Pipeline::ingest`] added from `start` (the packet `seq`, stamped `ts`,
    /// became something else, [`Pipeline::event`]): the audio after it is a jump in time, as
    /// after a timestamp gap.
    pub fn unread(&mut self, start: usize, seq: u16, ts: u32) {
        self.fill = self.fill.min(start);
        self.expect_ts = ts;
        self.expect_seq = seq;
    }

    /// The second half of [`Pipeline::audio`]: a packet of the receiver's packet time from the
    /// FIFO into `room[hl..]` (at payload type `pt`), its length; `None`: not a whole one yet.
    pub fn send(&mut self, room: &mut [u8], hl: usize, pt: u8) -> Option<usize> {
        self.emit(room, hl, pt).ok()
    }

    /// The FIFO holds another whole packet of the receiver's packet time.
    pub fn pending(&self) -> bool {
        self.frame > 0 && self.fill >= self.frame
    }

    /// The next packet [`Pipeline::pending`] says is due, into `room` (its header, the last one
    /// sent's without CSRC or extension, then its payload); its length.
    pub fn next(&mut self, room: &mut [u8]) -> Option<usize> {
        if !self.pending() {
            return None;
        }
        room.get_mut(..12)?.copy_from_slice(&self.tmpl);
        let pt = self.pt;
        self.emit(room, 12, pt).ok()
    }

    /// `pcm` (8 kHz, a generated DTMF tone standing for the sender's audio from `ts`) in, in the
    /// packet `seq`; as [`Pipeline::audio`]. Only at the 8 kHz working rate (else `None`).
    pub fn tone(&mut self, room: &mut [u8], rx: Received, pcm: &[i16], pt: u8) -> Option<usize> {
        self.drop_unsent();
        if self.rate != 8000 || !self.arrive(rx.seq, rx.ts, &[]) {
            return None;
        }
        let start = self.fill;
        let n = pcm.len().min(FIFO.saturating_sub(start));
        self.fifo
            .get_mut(start..start + n)?
            .copy_from_slice(pcm.get(..n)?);
        self.fill = start + n;
        self.expect_ts = rx.ts.wrapping_add(self.in_ticks(n));
        self.expect_seq = rx.seq.wrapping_add(1);
        self.emit(room, rx.hl, pt).ok()
    }

    /// A telephone-event packet `seq` of the event starting at `event_ts` crossing this direction
    /// (relayed, or detected in place of audio): its sequence number and timestamp are put in the
    /// receiver's space (`room[..len]` rewritten; its duration scaled when the clocks differ).
    /// `false`: late, to be consumed.
    pub fn event(&mut self, room: &mut [u8], len: usize, seq: u16, event_ts: u32) -> bool {
        if self.started && (seq.wrapping_sub(self.expect_seq) as i16) < 0 {
            return false;
        }
        if !self.started {
            self.started = true;
            self.expect_ts = event_ts;
            self.out_ts = event_ts;
            self.out_seq = seq;
        }
        // The event's start, against the FIFO's first sample in the sender's clock.
        let fifo_start = self.expect_ts.wrapping_sub(self.in_ticks(self.fill));
        let behind = fifo_start.wrapping_sub(event_ts) as i32;
        let scale = |t: i64| t * i64::from(self.out_clock) / i64::from(self.in_clock.max(1));
        let at = self
            .out_ts
            .wrapping_sub(scale(i64::from(behind)) as i32 as u32);
        if let Some(Ok(mut h)) = room.get_mut(..len).map(RtpHeaderMut::parse) {
            h.set_sequence(self.out_seq);
            h.set_timestamp(at);
        }
        if self.out_clock != self.in_clock {
            let hl = crate::rtp::RtpHeader::parse(room.get(..len).unwrap_or(&[]))
                .map(|h| h.header_len())
                .unwrap_or(len);
            if let Some([d0, d1]) = room.get_mut(hl + 2..hl + 4) {
                let old = i64::from(u16::from_be_bytes([*d0, *d1]));
                let new = u16::try_from(scale(old)).unwrap_or(u16::MAX);
                [*d0, *d1] = new.to_be_bytes();
            }
        }
        self.out_seq = self.out_seq.wrapping_add(1);
        self.expect_seq = seq.wrapping_add(1);
        true
    }

    /// The codec this pipeline encodes.
    pub fn target(&self) -> Codec {
        self.to
    }
}

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;
