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

/// What a sender reports in RTCP: its SSRC, the peer's (0 when not heard yet) and its counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RtcpState {
    pub(crate) ssrc: u32,
    pub(crate) peer_ssrc: u32,
    pub(crate) packets: u32,
    pub(crate) octets: u32,
    pub(crate) rtp_ts: u32,
    /// NTP time (seconds since 1900, 32.32 fixed point).
    pub(crate) ntp: u64,
}

/// Rewrites a recorded compound RTCP packet in place for this stream: sender SSRCs, SR sender info,
/// report blocks' source SSRC.
pub(crate) fn rewrite_rtcp(pkt: &mut [u8], st: &RtcpState) {
    let mut off = 0usize;
    while off + 8 <= pkt.len() {
        let count = usize::from(pkt[off] & 0x1f);
        let pt = pkt[off + 1];
        let len = (usize::from(u16::from_be_bytes([pkt[off + 2], pkt[off + 3]])) + 1) * 4;
        let end = (off + len).min(pkt.len());
        pkt[off + 4..off + 8].copy_from_slice(&st.ssrc.to_be_bytes());
        let blocks_at = match pt {
            200 if off + 28 <= end => {
                pkt[off + 8..off + 16].copy_from_slice(&st.ntp.to_be_bytes());
                pkt[off + 16..off + 20].copy_from_slice(&st.rtp_ts.to_be_bytes());
                pkt[off + 20..off + 24].copy_from_slice(&st.packets.to_be_bytes());
                pkt[off + 24..off + 28].copy_from_slice(&st.octets.to_be_bytes());
                Some(off + 28)
            }
            201 => Some(off + 8),
            _ => None,
        };
        if let Some(mut b) = blocks_at {
            for _ in 0..count {
                if b + 24 > end {
                    break;
                }
                pkt[b..b + 4].copy_from_slice(&st.peer_ssrc.to_be_bytes());
                b += 24;
            }
        }
        off += len;
    }
}

/// A synthesised compound RTCP packet: SR (no report block) + SDES CNAME.
pub(crate) fn synth_rtcp(st: &RtcpState, cname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0x80, 200, 0, 6]);
    out.extend_from_slice(&st.ssrc.to_be_bytes());
    out.extend_from_slice(&st.ntp.to_be_bytes());
    out.extend_from_slice(&st.rtp_ts.to_be_bytes());
    out.extend_from_slice(&st.packets.to_be_bytes());
    out.extend_from_slice(&st.octets.to_be_bytes());
    let name = cname.as_bytes();
    let name = &name[..name.len().min(255)];
    let mut chunk = st.ssrc.to_be_bytes().to_vec();
    chunk.push(1);
    chunk.push(name.len() as u8);
    chunk.extend_from_slice(name);
    chunk.push(0);
    while chunk.len() % 4 != 0 {
        chunk.push(0);
    }
    out.extend_from_slice(&[0x81, 202]);
    out.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&chunk);
    out
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
}

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
            // The few packets so far were the stray ones: measure this source from here.
            *self = Self {
                stray: self.stray + self.received,
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
        let mut set = HashSet::new();
        set.insert(payload_hash(&[0xd5; 160]));
        let pkt = |seq: u16, ts: u32| {
            let mut p = vec![0x80, 8];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&7u32.to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            p
        };
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
        let mut set = HashSet::new();
        set.insert(payload_hash(&[0xd5; 160]));
        let pkt = |ssrc: u32, seq: u16| {
            let mut p = vec![0x80, 8];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            p
        };
        let mut rx = RxStream::default();
        // Two late packets of an earlier call on this port, then the leg's own source.
        rx.on_rtp(&pkt(1, 40_000), 0, 8000, &set, None);
        rx.on_rtp(&pkt(1, 40_001), 1, 8000, &set, None);
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
    }

    #[test]
    fn rtcp_is_rewritten_and_synthesised() {
        let st = RtcpState {
            ssrc: 0x1122_3344,
            peer_ssrc: 0x5566_7788,
            packets: 9,
            octets: 90,
            rtp_ts: 1000,
            ntp: 0xaaaa_bbbb_cccc_dddd,
        };
        let mut sr = synth_rtcp(&RtcpState::default(), "x@y");
        rewrite_rtcp(&mut sr, &st);
        assert_eq!(&sr[4..8], &st.ssrc.to_be_bytes());
        assert_eq!(&sr[20..24], &9u32.to_be_bytes());
        assert_eq!(sr[29], 202);
        // An RR with one report block: the block's source becomes the peer.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&[0; 28]);
        rewrite_rtcp(&mut rr, &st);
        assert_eq!(&rr[8..12], &st.peer_ssrc.to_be_bytes());
    }
}
