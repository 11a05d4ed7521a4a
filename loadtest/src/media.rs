//! Media of one call leg: rewriting the recorded RTP and RTCP for a fresh stream (SSRC, sequence
//! and timestamp bases; RTCP sender fields), synthesising RTCP when the capture has none, and the
//! receive side's measures (RFC 3550 loss and interarrival jitter, payloads checked against the
//! recording, RFC 4733 digits) with the MOS they give.

use std::collections::HashSet;

use crate::template::{event_digit, payload_hash, rtp_payload};

/// Rewrites a recorded RTP packet in place: SSRC, sequence number `seq` (the sender numbers its
/// packets itself: a capture may join streams of different origins), timestamp moved by `ts_off`.
pub(crate) fn rewrite_rtp(pkt: &mut [u8], ssrc: u32, seq: u16, ts_off: u32) {
    if pkt.len() < 12 {
        return;
    }
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]).wrapping_add(ts_off);
    pkt[4..8].copy_from_slice(&ts.to_be_bytes());
    pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// What a sender reports in RTCP about itself: its SSRC and its counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RtcpState {
    pub(crate) ssrc: u32,
    pub(crate) packets: u32,
    pub(crate) octets: u32,
    pub(crate) rtp_ts: u32,
    /// NTP time (seconds since 1900, 32.32 fixed point).
    pub(crate) ntp: u64,
}

/// An RTCP report block (RFC 3550 6.4.1) about the stream a leg receives.
pub(crate) type ReportBlock = [u8; 24];

/// The wall clock as NTP time (seconds since 1900, 32.32 fixed point).
pub(crate) fn ntp_wall_now() -> u64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // The Unix epoch is 2,208,988,800 s after NTP's.
    ntp_at(
        2_208_988_800 << 32,
        u64::try_from(since_unix.as_nanos()).unwrap_or(u64::MAX),
    )
}

/// The NTP time `ns` nanoseconds after `base` (a run's epoch as NTP time): the sender's NTP
/// timestamps and a report's arrival time come from one monotonic clock.
pub(crate) fn ntp_at(base: u64, ns: u64) -> u64 {
    let secs = ns / 1_000_000_000;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    base.wrapping_add((secs << 32) | frac)
}

/// The middle 32 bits of an NTP timestamp (16.16 seconds), as LSR and round trips count them.
fn ntp_mid(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// The packets of a compound RTCP datagram, each as long as its header says (at least its 4-byte
/// header); a packet cut short, or a header shorter than 8 bytes, ends the walk.
fn rtcp_packets(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let h = buf.get(off..off + 8)?;
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let p = buf.get(off..off + len)?;
        off += len;
        Some(p)
    })
}

/// The big-endian 32-bit word at `at` (the caller checks the length).
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes the leg's SR (`pt` 200: sender info from `st`) or RR (201) at the start of `out`, with
/// `block` as its one report block when there is one; `v_p` gives the first byte's version and
/// padding bits. Returns the length written, or None when `out` is too short.
fn write_report(
    out: &mut [u8],
    v_p: u8,
    pt: u8,
    st: &RtcpState,
    block: Option<&ReportBlock>,
) -> Option<usize> {
    let info = if pt == 200 { 24 } else { 4 };
    let n = 4 + info + block.map_or(0, |b| b.len());
    let o = out.get_mut(..n)?;
    o[0] = v_p | u8::from(block.is_some());
    o[1] = pt;
    o[2..4].copy_from_slice(&((n / 4 - 1) as u16).to_be_bytes());
    o[4..8].copy_from_slice(&st.ssrc.to_be_bytes());
    if pt == 200 {
        o[8..16].copy_from_slice(&st.ntp.to_be_bytes());
        o[16..20].copy_from_slice(&st.rtp_ts.to_be_bytes());
        o[20..24].copy_from_slice(&st.packets.to_be_bytes());
        o[24..28].copy_from_slice(&st.octets.to_be_bytes());
    }
    if let Some(b) = block {
        o[4 + info..].copy_from_slice(b);
    }
    Some(n)
}

/// Rewrites a recorded compound RTCP packet `src` into `out` for this stream: each packet's sender
/// SSRC, the SR's sender info, and in place of the recorded report blocks the leg's own `block`
/// about what it receives (in the first SR or RR; none when it has heard nothing yet). Returns the
/// length written, or None when `out` is too short.
pub(crate) fn rewrite_rtcp(
    src: &[u8],
    out: &mut [u8],
    st: &RtcpState,
    block: Option<&ReportBlock>,
) -> Option<usize> {
    let mut w = 0usize;
    let mut block = block;
    for pkt in rtcp_packets(src) {
        let pt = pkt[1];
        if pt == 201 || (pt == 200 && pkt.len() >= 28) {
            w += write_report(out.get_mut(w..)?, pkt[0] & 0xe0, pt, st, block.take())?;
            continue;
        }
        // SDES, BYE, APP, ...: as recorded, with the sender's SSRC.
        let o = out.get_mut(w..w + pkt.len())?;
        o.copy_from_slice(pkt);
        if let Some(s) = o.get_mut(4..8) {
            s.copy_from_slice(&st.ssrc.to_be_bytes());
        }
        w += pkt.len();
    }
    Some(w)
}

/// Writes a synthesised compound RTCP packet into `out`: SR (with `block` when the leg has heard
/// its peer) + SDES CNAME. Returns the length written, or None when `out` is too short.
pub(crate) fn synth_rtcp(
    out: &mut [u8],
    st: &RtcpState,
    block: Option<&ReportBlock>,
    cname: &str,
) -> Option<usize> {
    let n = write_report(out, 0x80, 200, st, block)?;
    let name = cname.as_bytes();
    let name = &name[..name.len().min(255)];
    // One chunk: SSRC, the CNAME item (type, length, text), a null item, padded to 32 bits.
    let chunk = (4 + 2 + name.len() + 1).next_multiple_of(4);
    let sdes = out.get_mut(n..n + 4 + chunk)?;
    sdes.fill(0);
    sdes[0] = 0x81;
    sdes[1] = 202;
    sdes[2..4].copy_from_slice(&((chunk / 4) as u16).to_be_bytes());
    sdes[4..8].copy_from_slice(&st.ssrc.to_be_bytes());
    sdes[8] = 1;
    sdes[9] = name.len() as u8;
    sdes[10..10 + name.len()].copy_from_slice(name);
    Some(n + 4 + chunk)
}

/// The receive side of one RTP stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct RxStream {
    pub(crate) received: u64,
    pub(crate) rtcp: u64,
    base_seq: Option<u16>,
    /// Extended highest sequence number (RFC 3550 A.1).
    max_ext: u32,
    last_seq: u16,
    cycles: u32,
    /// Interarrival jitter in timestamp units, ×16 (RFC 3550 A.8).
    jitter16: u64,
    last_transit: Option<i64>,
    last_pt: u8,
    pub(crate) mismatched: u64,
    pub(crate) digits: String,
    last_event_ts: Option<u32>,
    pub(crate) peer_ssrc: u32,
    /// Packets of another source than the one measured (RFC 3550 keeps statistics per SSRC):
    /// e.g. a relay's last packets of an earlier call that used this port. Not in the counts above.
    pub(crate) stray: u64,
    /// The peer's last SR: the middle 32 bits of its NTP timestamp and when it arrived.
    last_sr: Option<(u32, u64)>,
    /// Expected and received at the last report block (its fraction lost is over the interval).
    prior: (u64, u64),
    /// Round trips measured from the peer's reports on this leg's SRs (RFC 3550 6.4.1), in
    /// microseconds: their sum and count.
    rtt_us_sum: u64,
    pub(crate) rtt_samples: u32,
}

/// A round trip longer than this (in 1/65536 s: 10 s) is taken for a report on another clock or
/// a stale LSR, not a measure.
const MAX_RTT_UNITS: u32 = 10 << 16;

/// A source with fewer packets than this when another SSRC arrives is taken for a stray (an earlier
/// call's late packets reaching a reused port come first) and dropped from the statistics.
const SOURCE_PROBATION: u64 = 5;

impl RxStream {
    /// Accounts one datagram arriving at `now_ns` (monotonic) on the RTP socket.
    pub(crate) fn on_rtp(
        &mut self,
        pkt: &[u8],
        now_ns: u64,
        clock_rate: u32,
        expected: &HashSet<u64>,
        event_pt: Option<u8>,
    ) {
        let Some(payload) = rtp_payload(pkt) else {
            self.mismatched += 1;
            return;
        };
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        if self.received > 0 && ssrc != self.peer_ssrc {
            if self.received >= SOURCE_PROBATION {
                self.stray += 1;
                return;
            }
            // The few packets so far were the stray ones: measure this source from here (the
            // RTCP side keeps what it has: its count and round trips are the leg's).
            *self = Self {
                stray: self.stray + self.received,
                rtcp: self.rtcp,
                last_sr: self.last_sr,
                rtt_us_sum: self.rtt_us_sum,
                rtt_samples: self.rtt_samples,
                ..Self::default()
            };
        }
        if !expected.contains(&payload_hash(payload)) {
            self.mismatched += 1;
        }
        self.received += 1;
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        self.peer_ssrc = ssrc;
        match self.base_seq {
            None => {
                self.base_seq = Some(seq);
                self.max_ext = u32::from(seq);
                self.last_seq = seq;
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.last_seq);
                if delta != 0 && delta < 0x8000 {
                    if seq < self.last_seq {
                        self.cycles = self.cycles.wrapping_add(1 << 16);
                    }
                    self.last_seq = seq;
                    self.max_ext = self.cycles | u32::from(seq);
                }
            }
        }
        // Transit in timestamp units; jitter J += (|D| - J) / 16 (RFC 3550 A.8).
        let arrival = (u128::from(now_ns) * u128::from(clock_rate) / 1_000_000_000) as i64;
        let transit = arrival - i64::from(ts);
        // Jitter is measured on audio, within one payload type: RFC 4733 events hold their
        // timestamp for the whole event, and audio and events may come from different clocks.
        let pt = pkt[1] & 0x7f;
        if Some(pt) == event_pt {
            self.on_event(pkt, event_pt);
            return;
        }
        if pt != self.last_pt {
            self.last_transit = None;
            self.last_pt = pt;
        }
        if let Some(last) = self.last_transit {
            // Kept ×16: J16 += |D| - J16 / 16.
            let d = (transit - last).unsigned_abs();
            self.jitter16 = (self.jitter16 + d).saturating_sub(self.jitter16 >> 4);
        }
        self.last_transit = Some(transit);
    }

    fn on_event(&mut self, pkt: &[u8], event_pt: Option<u8>) {
        if let Some((ets, c)) = event_pt.and_then(|pt| event_digit(pkt, pt)) {
            if self.last_event_ts != Some(ets) {
                self.digits.push(c);
                self.last_event_ts = Some(ets);
            }
        }
    }

    /// Packets expected from the first received to the highest (RFC 3550 A.3).
    pub(crate) fn expected(&self) -> u64 {
        match self.base_seq {
            None => 0,
            Some(b) => u64::from(self.max_ext.wrapping_sub(u32::from(b))) + 1,
        }
    }

    pub(crate) fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in milliseconds.
    pub(crate) fn jitter_ms(&self, clock_rate: u32) -> f64 {
        (self.jitter16 as f64 / 16.0) * 1000.0 / f64::from(clock_rate.max(1))
    }

    /// Accounts one RTCP compound packet arriving at `now_ns` (monotonic; `ntp_now` the same
    /// instant as NTP time) for the leg whose own SSRC is `own_ssrc`: the peer's SR is kept for the
    /// next report block's LSR/DLSR, and a report block about `own_ssrc` that echoes one of this
    /// leg's SRs gives a round trip: arrival − LSR − DLSR (RFC 3550 6.4.1).
    pub(crate) fn on_rtcp(&mut self, pkt: &[u8], now_ns: u64, ntp_now: u64, own_ssrc: u32) {
        self.rtcp += 1;
        for p in rtcp_packets(pkt) {
            let (count, pt) = (usize::from(p[0] & 0x1f), p[1]);
            let blocks_at = match pt {
                200 if p.len() >= 28 => 28,
                201 if p.len() >= 8 => 8,
                _ => continue,
            };
            let sender = be32(p, 4);
            if self.received > 0 && sender != self.peer_ssrc {
                continue;
            }
            if pt == 200 {
                // The middle 32 bits of its NTP timestamp (bytes 8..16), as LSR echoes them.
                self.last_sr = Some((be32(p, 10), now_ns));
            }
            for b in p[blocks_at..].chunks_exact(24).take(count) {
                let (ssrc, lsr, dlsr) = (be32(b, 0), be32(b, 16), be32(b, 20));
                if ssrc != own_ssrc || lsr == 0 {
                    continue;
                }
                let rtt = ntp_mid(ntp_now).wrapping_sub(lsr).wrapping_sub(dlsr);
                if rtt <= MAX_RTT_UNITS {
                    self.rtt_us_sum += (u64::from(rtt) * 1_000_000) >> 16;
                    self.rtt_samples += 1;
                }
            }
        }
    }

    /// The mean round trip measured from the peer's reports, in milliseconds (None before one).
    pub(crate) fn rtt_ms(&self) -> Option<f64> {
        (self.rtt_samples > 0)
            .then(|| self.rtt_us_sum as f64 / 1000.0 / f64::from(self.rtt_samples))
    }

    /// The report block about the received stream at `now_ns` (None before its first packet):
    /// fraction lost since the last block, cumulative lost, extended highest sequence number,
    /// jitter, and LSR/DLSR echoing the peer's last SR.
    pub(crate) fn report_block(&mut self, now_ns: u64) -> Option<ReportBlock> {
        if self.received == 0 {
            return None;
        }
        let expected = self.expected();
        let exp_int = expected.saturating_sub(self.prior.0);
        let lost_int = exp_int.saturating_sub(self.received.saturating_sub(self.prior.1));
        self.prior = (expected, self.received);
        let fraction = (lost_int << 8)
            .checked_div(exp_int)
            .map_or(0, |f| f.min(255) as u8);
        let cumulative = self.lost().min(0x7f_ffff) as u32;
        let (lsr, dlsr) = self.last_sr.map_or((0, 0), |(lsr, at)| {
            let since = now_ns.saturating_sub(at);
            let units = (u128::from(since) << 16) / 1_000_000_000;
            (lsr, u32::try_from(units).unwrap_or(u32::MAX))
        });
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.peer_ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&cumulative.to_be_bytes());
        b[4] = fraction;
        b[8..12].copy_from_slice(&self.max_ext.to_be_bytes());
        let jitter = u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX);
        b[12..16].copy_from_slice(&jitter.to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        Some(b)
    }
}

/// MOS as rtpengine's "legacy" formula computes it (the pingplotter simplification of the ITU-T
/// G.107 E-model): effective latency = RTT + 2 × jitter + 10 ms; R = 93.2 − latency / 40 below
/// 160 ms, else 93.2 − (latency − 120) / 10; R −= 2.5 × loss %; MOS = 1 + 0.035 R +
/// 7·10⁻⁶ R (R − 60)(100 − R), clamped to 1.0..4.5 as rtpengine clamps it. Our own arithmetic in
/// floating point, truncated where rtpengine's fixed-point steps truncate, so one decimal agrees.
pub(crate) fn mos(rtt_ms: f64, jitter_ms: f64, loss_pct: f64) -> f64 {
    let eff = rtt_ms.max(0.0).floor() + jitter_ms.max(0.0).floor() * 2.0 + 10.0;
    let mut r = if eff < 160.0 {
        93.2 - eff / 40.0
    } else {
        93.2 - (eff - 120.0) / 10.0
    };
    r -= loss_pct.max(0.0).floor() * 2.5;
    if r < 0.0 {
        return 1.0;
    }
    if r > 100.0 {
        return 4.5;
    }
    // MOS in hundredths, each term truncated as rtpengine's fixed-point steps truncate it.
    let linear = (3.5 * r).floor();
    let cubic = (0.0007 * r * (r - 60.0) * (100.0 - r)).trunc();
    let tenths = ((100.0 + linear + cubic) / 10.0).trunc();
    (tenths / 10.0).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values rtpengine's `mos_calc_legacy` (daemon/ssrc.c) gives, MOS ×10, for (RTT, jitter,
    /// loss %): its integer steps carried out one by one for each row.
    #[test]
    fn mos_matches_rtpengine_legacy() {
        // (rtt ms, jitter ms, loss %, rtpengine's mos ×10)
        let table = [
            (0.0, 0.0, 0.0, 44),
            (20.0, 5.0, 0.0, 43),
            (100.0, 20.0, 1.0, 42),
            (200.0, 10.0, 0.0, 40),
            (0.0, 0.0, 10.0, 34),
            (0.0, 0.0, 40.0, 10),
            (0.0, 30.0, 2.0, 42),
            (300.0, 50.0, 5.0, 26),
        ];
        for (rtt, jit, loss, want) in table {
            let got = (mos(rtt, jit, loss) * 10.0).round() as i64;
            assert_eq!(got, want, "rtt {rtt} jitter {jit} loss {loss}");
        }
    }

    #[test]
    fn loss_and_jitter_are_counted() {
        let mut rx = RxStream::default();
        let set = silence();
        let pkt = |seq: u16, ts: u32| rtp(7, seq, ts);
        for i in [0u16, 1, 2, 4, 5] {
            // 20 ms apart, on time: no jitter.
            rx.on_rtp(
                &pkt(65534u16.wrapping_add(i), u32::from(i) * 160),
                u64::from(i) * 20_000_000,
                8000,
                &set,
                None,
            );
        }
        assert_eq!(rx.received, 5);
        assert_eq!(rx.expected(), 6);
        assert_eq!(rx.lost(), 1);
        assert_eq!(rx.mismatched, 0);
        assert!(rx.jitter_ms(8000) < 0.01);
        let mut other = pkt(7, 6 * 160);
        other[20] = 0;
        rx.on_rtp(&other, 130_000_000, 8000, &set, None);
        assert_eq!(rx.mismatched, 1);
        assert!(rx.jitter_ms(8000) > 0.0);
    }

    #[test]
    fn another_sources_packets_are_strays() {
        let set = silence();
        let pkt = |ssrc: u32, seq: u16| rtp(ssrc, seq, u32::from(seq) * 160);
        let mut rx = RxStream::default();
        // Two late packets of an earlier call on this port, then the leg's own source.
        rx.on_rtp(&pkt(1, 40_000), 0, 8000, &set, None);
        rx.on_rtp(&pkt(1, 40_001), 1, 8000, &set, None);
        // An RTCP packet meanwhile: the leg's count keeps it when the measure moves to the new
        // source.
        rx.on_rtcp(&[0x80, 201, 0, 1, 0, 0, 0, 2], 1, 0, 9);
        for i in 0..10u16 {
            rx.on_rtp(&pkt(2, 100 + i), 2 + u64::from(i), 8000, &set, None);
        }
        // A stray after the source is established changes nothing either.
        rx.on_rtp(&pkt(3, 9), 20, 8000, &set, None);
        assert_eq!(rx.peer_ssrc, 2);
        assert_eq!(rx.received, 10);
        assert_eq!(rx.expected(), 10);
        assert_eq!(rx.lost(), 0);
        assert_eq!(rx.stray, 3);
        assert_eq!(rx.rtcp, 1);
    }

    /// `synth_rtcp` into a buffer of its own.
    fn synth(st: &RtcpState, block: Option<&ReportBlock>, cname: &str) -> Vec<u8> {
        let mut out = vec![0u8; 512];
        let n = synth_rtcp(&mut out, st, block, cname).unwrap_or(0);
        out.truncate(n);
        out
    }

    /// An RTP packet of source `ssrc` with G.711 silence.
    fn rtp(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 8];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn silence() -> HashSet<u64> {
        let mut set = HashSet::new();
        set.insert(payload_hash(&[0xd5; 160]));
        set
    }

    #[test]
    fn rtcp_is_rewritten_and_synthesised() {
        let st = RtcpState {
            ssrc: 0x1122_3344,
            packets: 9,
            octets: 90,
            rtp_ts: 1000,
            ntp: 0xaaaa_bbbb_cccc_dddd,
        };
        let block: ReportBlock = std::array::from_fn(|i| i as u8 + 1);
        // A synthesised SR + SDES, without and with a report block.
        let sr = synth(&st, None, "x@y");
        assert_eq!(sr[0], 0x80);
        assert_eq!(sr[1], 200);
        assert_eq!(&sr[4..8], &st.ssrc.to_be_bytes());
        assert_eq!(&sr[8..16], &st.ntp.to_be_bytes());
        assert_eq!(be32(&sr, 20), 9);
        assert_eq!(sr[29], 202);
        assert_eq!(sr.len() % 4, 0);
        let with = synth(&st, Some(&block), "x@y");
        assert_eq!(with[0], 0x81);
        assert_eq!(u16::from_be_bytes([with[2], with[3]]), 12);
        assert_eq!(&with[28..52], &block);
        assert_eq!(with[53], 202);

        // A recorded SR with two blocks of the recorded call, then SDES: the blocks give way to the
        // leg's own, the sender info is the leg's, SDES keeps its item under the leg's SSRC.
        let mut rec = vec![0x82, 200, 0, 18];
        rec.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        rec.extend_from_slice(&[0x11; 20]);
        rec.extend_from_slice(&[0x22; 48]);
        rec.extend_from_slice(&[0x81, 202, 0, 2]);
        rec.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        rec.extend_from_slice(&[1, 1, b'a', 0]);
        let mut out = [0u8; 256];
        let n = rewrite_rtcp(&rec, &mut out, &st, Some(&block)).unwrap_or(0);
        assert_eq!(n, 52 + 12);
        assert_eq!(out[0], 0x81);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 12);
        assert_eq!(be32(&out, 4), st.ssrc);
        assert_eq!(&out[8..16], &st.ntp.to_be_bytes());
        assert_eq!(be32(&out, 16), 1000);
        assert_eq!(be32(&out, 24), 90);
        assert_eq!(&out[28..52], &block);
        assert_eq!(out[53], 202);
        assert_eq!(be32(&out, 56), st.ssrc);
        assert_eq!(&out[60..64], &[1, 1, b'a', 0]);
        // Before the leg hears anything: no block at all.
        let n = rewrite_rtcp(&rec, &mut out, &st, None).unwrap_or(0);
        assert_eq!(n, 28 + 12);
        assert_eq!(out[0], 0x80);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 6);
        // An RR: the block follows the sender SSRC.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&[0; 28]);
        let n = rewrite_rtcp(&rr, &mut out, &st, Some(&block)).unwrap_or(0);
        assert_eq!(n, 32);
        assert_eq!(be32(&out, 4), st.ssrc);
        assert_eq!(&out[8..32], &block);
        // Too small an output buffer is refused, not overrun.
        assert_eq!(rewrite_rtcp(&rec, &mut out[..30], &st, Some(&block)), None);
    }

    /// The example of RFC 3550 6.4.1 (figure 2): an SR sent at 0xb705_2000 (the NTP timestamp's
    /// middle bits), its report sent back after DLSR 5.250 s, arriving at 0xb710_8000: 6.125 s.
    #[test]
    fn round_trip_follows_rfc3550_example() {
        let own: u32 = 0x0102_0304;
        let mut rx = RxStream::default();
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&0x0a0b_0c0du32.to_be_bytes());
        rr.extend_from_slice(&own.to_be_bytes());
        rr.extend_from_slice(&[0; 12]);
        rr.extend_from_slice(&0xb705_2000u32.to_be_bytes());
        rr.extend_from_slice(&0x0005_4000u32.to_be_bytes());
        rx.on_rtcp(&rr, 0, 0xb710_8000u64 << 16, own);
        assert_eq!(rx.rtcp, 1);
        assert_eq!(rx.rtt_samples, 1);
        let rtt = rx.rtt_ms().unwrap_or(0.0);
        assert!((rtt - 6125.0).abs() < 0.01, "rtt {rtt}");
        // A block about another source, or one without LSR (no SR heard yet), is no measure.
        let mut other = rr.clone();
        other[8..12].copy_from_slice(&9u32.to_be_bytes());
        rx.on_rtcp(&other, 0, 0xb710_8000u64 << 16, own);
        let mut no_lsr = rr.clone();
        no_lsr[24..28].fill(0);
        rx.on_rtcp(&no_lsr, 0, 0xb710_8000u64 << 16, own);
        // Nor is a round trip of more than 10 s (a stale LSR or another clock).
        rx.on_rtcp(&rr, 0, 0xb720_8000u64 << 16, own);
        assert_eq!(rx.rtcp, 4);
        assert_eq!(rx.rtt_samples, 1);
    }

    /// Two legs exchanging RTP and RTCP over a path of 7 ms each way, the second answering after
    /// 300 ms: each measures a 14 ms round trip (7 ms one way) from the other's report blocks, on
    /// one clock as the load tester's legs are.
    #[test]
    fn two_legs_measure_their_round_trip() {
        const MS: u64 = 1_000_000;
        let epoch = 0xe000_0000_0000_0000u64;
        let set = silence();
        let (a_ssrc, b_ssrc) = (0xaaaa_0001u32, 0xbbbb_0002u32);
        let (mut a_rx, mut b_rx) = (RxStream::default(), RxStream::default());
        let delay = 7 * MS;
        // 100 packets each way, 20 ms apart.
        for i in 0..100u16 {
            let t = u64::from(i) * 20 * MS;
            let ts = u32::from(i) * 160;
            b_rx.on_rtp(&rtp(a_ssrc, 1000 + i, ts), t + delay, 8000, &set, None);
            a_rx.on_rtp(&rtp(b_ssrc, 5000 + i, ts), t + delay, 8000, &set, None);
        }
        let st = |ssrc: u32, at: u64| RtcpState {
            ssrc,
            packets: 100,
            octets: 16_000,
            rtp_ts: 16_000,
            ntp: ntp_at(epoch, at),
        };
        // A sends an SR at 2 s (it has heard B: its block about B has no LSR yet).
        let t_a = 2000 * MS;
        let block = a_rx.report_block(t_a);
        let sr_a = synth(&st(a_ssrc, t_a), block.as_ref(), "a");
        b_rx.on_rtcp(&sr_a, t_a + delay, ntp_at(epoch, t_a + delay), b_ssrc);
        assert_eq!(b_rx.rtt_samples, 0);
        // B answers 300 ms after it arrived: its block about A echoes A's SR.
        let t_b = t_a + delay + 300 * MS;
        let block = b_rx.report_block(t_b);
        let b_block = block.unwrap_or([0; 24]);
        assert_eq!(be32(&b_block, 0), a_ssrc);
        assert_eq!(be32(&b_block, 16), ntp_mid(ntp_at(epoch, t_a)));
        let dlsr = f64::from(be32(&b_block, 20)) / 65536.0;
        assert!((dlsr - 0.3).abs() < 0.0001, "dlsr {dlsr}");
        let sr_b = synth(&st(b_ssrc, t_b), block.as_ref(), "b");
        a_rx.on_rtcp(&sr_b, t_b + delay, ntp_at(epoch, t_b + delay), a_ssrc);
        let rtt = a_rx.rtt_ms().unwrap_or(0.0);
        assert!((rtt - 14.0).abs() < 0.05, "A's rtt {rtt}");
        // A answers in turn, 50 ms later: B measures the same path.
        let t_a2 = t_b + delay + 50 * MS;
        let block = a_rx.report_block(t_a2);
        let sr_a2 = synth(&st(a_ssrc, t_a2), block.as_ref(), "a");
        b_rx.on_rtcp(&sr_a2, t_a2 + delay, ntp_at(epoch, t_a2 + delay), b_ssrc);
        let rtt = b_rx.rtt_ms().unwrap_or(0.0);
        assert!((rtt - 14.0).abs() < 0.05, "B's rtt {rtt}");
        // An RTCP packet of a stranger (another sender SSRC) echoing A's SR is ignored.
        let mut stranger = sr_b.clone();
        stranger[4..8].copy_from_slice(&0x5757_5757u32.to_be_bytes());
        a_rx.on_rtcp(&stranger, t_a2, ntp_at(epoch, t_a2 + 900 * MS), a_ssrc);
        assert_eq!(a_rx.rtt_samples, 1);
    }

    #[test]
    fn report_block_counts_loss_and_highest_sequence() {
        let set = silence();
        let mut rx = RxStream::default();
        // 0..=9 with 3 and 4 missing, then across the sequence wrap.
        for seq in [65530u16, 65531, 65532, 65535, 0, 1, 2, 3] {
            let ts = u32::from(seq.wrapping_sub(65530)) * 160;
            rx.on_rtp(&rtp(42, seq, ts), u64::from(ts) * 125_000, 8000, &set, None);
        }
        let b = rx.report_block(1_000_000_000).unwrap_or([0; 24]);
        assert_eq!(be32(&b, 0), 42);
        // 2 lost of 10 expected: fraction 2/10 × 256 = 51.
        assert_eq!(b[4], 51);
        assert_eq!(be32(&b, 4) & 0x00ff_ffff, 2);
        assert_eq!(be32(&b, 8), 0x1_0003);
        assert_eq!(be32(&b, 12), 0, "packets on time: no jitter");
        assert_eq!(be32(&b, 16), 0, "no SR heard: no LSR");
        // The next interval has no loss: fraction 0, cumulative still 2.
        for seq in 4u16..8 {
            let ts = u32::from(seq.wrapping_sub(65530)) * 160;
            rx.on_rtp(&rtp(42, seq, ts), u64::from(ts) * 125_000, 8000, &set, None);
        }
        let b = rx.report_block(2_000_000_000).unwrap_or([0; 24]);
        assert_eq!(b[4], 0);
        assert_eq!(be32(&b, 4) & 0x00ff_ffff, 2);
        // Nothing heard: no block.
        assert!(RxStream::default().report_block(0).is_none());
    }

    #[test]
    fn malformed_rtcp_is_counted_and_skipped() {
        let mut rx = RxStream::default();
        let cases: [&[u8]; 6] = [
            &[],
            &[0x80],
            &[0x81, 201, 0, 7, 0, 0, 0, 1],
            &[0x9f, 201, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            &[0x81, 200, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            &[0x80, 200, 0xff, 0xff, 0, 0, 0, 1],
        ];
        for c in cases {
            rx.on_rtcp(c, 0, 0, 1);
        }
        assert_eq!(rx.rtcp, 6);
        assert_eq!(rx.rtt_samples, 0);
        // A rewrite of a truncated recording writes only the whole packets.
        let mut out = [0u8; 64];
        let st = RtcpState::default();
        assert_eq!(
            rewrite_rtcp(&[0x80, 200, 0, 6, 1, 2], &mut out, &st, None),
            Some(0)
        );
    }

    /// Random and mangled RTP and RTCP (lengths, counts and fields from a generator) go through
    /// the receive side, the report block and the rewrite of a recording without a panic.
    #[test]
    fn mangled_rtp_and_rtcp_never_panic() {
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || crate::xorshift64(&mut rng);
        let set = silence();
        let st = RtcpState::default();
        let mut rx = RxStream::default();
        let mut out = [0u8; 256];
        let sr = synth(&st, Some(&[7; 24]), "x");
        for i in 0..50_000u64 {
            let mut p = if i % 2 == 0 {
                sr.clone()
            } else {
                rtp(42, i as u16, i as u32 * 160)
            };
            let len = (next() as usize) % (p.len() + 1);
            p.truncate(len);
            for _ in 0..(next() % 6) {
                if let Some(b) = p.get_mut((next() as usize) % len.max(1)) {
                    *b = next() as u8;
                }
            }
            let now = next() % (1 << 40);
            rx.on_rtp(&p, now, (next() % 200_000) as u32, &set, Some(101));
            rx.on_rtcp(&p, now, next(), 42);
            let _ = rx.report_block(now);
            let _ = rx.rtt_ms();
            let _ = rewrite_rtcp(&p, &mut out, &st, Some(&[1; 24]));
        }
        // Every RTCP datagram is counted, whatever the RTP stream's restarts on a new source.
        assert_eq!(rx.rtcp, 50_000);
    }
}
