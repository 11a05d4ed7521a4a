//! A leg's media: its RTP and RTCP sockets, the recorded packets sent with their timing (looped over
//! the hold time when the recording is shorter), and what arrives.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{epoll_add, now_ns, sdes, udp_bind, LegMedia, MediaSockets, Worker};
use crate::media::{
    ntp_at, rewrite_rtcp, rewrite_rtp, synth_rtcp, ReportBlock, RtcpState, RxStream,
};
use crate::template::Side;
use crate::wheel::TimerKind;

impl Worker {
    pub(super) fn on_media(&mut self, token: u64) -> bool {
        let slot = (token >> 2) as usize - 1;
        let rtcp = token & 1 == 1;
        let now = now_ns(self.cfg.epoch);
        let t = Arc::clone(&self.cfg.template);
        let Some(Some(leg)) = self.legs.get_mut(slot) else {
            return false;
        };
        let Some(m) = leg.media.as_mut() else {
            return false;
        };
        let Some(socks) = m.socks.as_ref() else {
            return false;
        };
        let sock = if rtcp { &socks.rtcp } else { &socks.rtp };
        match sock.recv_from(&mut self.buf) {
            Ok((n, _)) => {
                // SRTP: unprotected in place; a refused packet counts and is not received.
                let n = match m.srtp.as_mut() {
                    Some(s) => {
                        let r = match (s.rx.as_mut(), rtcp) {
                            (Some(c), false) => c.unprotect_rtp(&mut self.buf, n).ok(),
                            (Some(c), true) => c.unprotect_rtcp(&mut self.buf, n).ok(),
                            (None, _) => {
                                // Before the peer's key: kept until it comes.
                                match self.buf.get(..n) {
                                    Some(d) if s.pending.len() < sdes::MAX_PENDING => {
                                        s.pending.push((rtcp, d.to_vec(), now));
                                    }
                                    _ => s.early_dropped += 1,
                                }
                                return true;
                            }
                        };
                        match r {
                            Some(n) => n,
                            None => {
                                s.rejected += 1;
                                return true;
                            }
                        }
                    }
                    None => n,
                };
                let peer = leg.side.peer().idx();
                if rtcp {
                    if let Some(d) = self.buf.get(..n) {
                        m.rx.on_rtcp(d, now, ntp_at(self.cfg.epoch_ntp, now), m.ssrc);
                    }
                } else if let Some(d) = self.buf.get(..n) {
                    self.rtp_received += 1;
                    m.rx.on_rtp(d, now, t.clock_rate, &t.payloads[peer], t.event_pt);
                }
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(_) => false,
        }
    }

    /// The packets a leg kept while waiting for its peer's SRTP key, unprotected with the key
    /// now known and received with their arrival times.
    pub(super) fn srtp_take_pending(&mut self, slot: u32) {
        let t = Arc::clone(&self.cfg.template);
        let Some(Some(leg)) = self.legs.get_mut(slot as usize) else {
            return;
        };
        let peer = leg.side.peer().idx();
        let Some(m) = leg.media.as_mut() else { return };
        let Some(s) = m.srtp.as_mut() else { return };
        let Some(rx) = s.rx.as_mut() else { return };
        for (rtcp, mut d, at) in std::mem::take(&mut s.pending) {
            let len = d.len();
            let r = if rtcp {
                rx.unprotect_rtcp(&mut d, len)
            } else {
                rx.unprotect_rtp(&mut d, len)
            };
            match r {
                Ok(n) if rtcp => {
                    let d = d.get(..n).unwrap_or_default();
                    m.rx.on_rtcp(d, at, ntp_at(self.cfg.epoch_ntp, at), m.ssrc);
                }
                Ok(n) => {
                    self.rtp_received += 1;
                    let d = d.get(..n).unwrap_or_default();
                    m.rx.on_rtp(d, at, t.clock_rate, &t.payloads[peer], t.event_pt);
                }
                Err(_) => s.rejected += 1,
            }
        }
    }

    pub(super) fn ensure_media(&mut self, slot: u32) {
        let has = self.legs[slot as usize]
            .as_ref()
            .is_none_or(|l| l.media.is_some());
        if has {
            return;
        }
        let ip = match self.legs[slot as usize].as_ref().map(|l| l.side) {
            Some(Side::Uas) => self.cfg.uas.map_or(self.cfg.uac_ip, |a| a.ip()),
            _ => self.cfg.uac_ip,
        };
        let Some(port) = self.ports.pop() else {
            self.finish(slot, Some("no free media port".into()));
            return;
        };
        // A recording without RTP or RTCP on either side only needs the port in its SDP.
        let t = &self.cfg.template;
        let socks = if t.media[0].is_empty() && t.media[1].is_empty() {
            None
        } else {
            let rtp = udp_bind(SocketAddr::new(ip, port), false);
            let rtcp = udp_bind(SocketAddr::new(ip, port + 1), false);
            let (Ok(rtp), Ok(rtcp)) = (rtp, rtcp) else {
                self.ports.insert(0, port);
                self.finish(slot, Some("media port in use".into()));
                return;
            };
            epoll_add(self.epfd, rtp.as_raw_fd(), (u64::from(slot) + 1) << 2);
            epoll_add(
                self.epfd,
                rtcp.as_raw_fd(),
                ((u64::from(slot) + 1) << 2) | 1,
            );
            Some(MediaSockets { rtp, rtcp })
        };
        // The caller offers SRTP with its own key; a callee gets its key with the offer's.
        let is_uac = self.legs[slot as usize]
            .as_ref()
            .is_some_and(|l| l.side == Side::Uac);
        let offer_srtp = self.cfg.srtp || self.cfg.template.srtp;
        let srtp = match (offer_srtp && is_uac).then(|| sdes::LegSrtp::new(1)) {
            None => None,
            Some(Some(s)) => Some(s),
            Some(None) => {
                self.ports.insert(0, port);
                self.finish(slot, Some("SRTP: no key".into()));
                return;
            }
        };
        let ssrc = self.rand() as u32;
        let seq_off = self.rand() as u16;
        let ts_off = self.rand() as u32;
        if let Some(leg) = self.legs[slot as usize].as_mut() {
            leg.media = Some(LegMedia {
                socks,
                local: SocketAddr::new(ip, port),
                remote: None,
                started: false,
                stopped: false,
                anchor_ns: 0,
                anchor_rec: Duration::ZERO,
                next: 0,
                ssrc,
                seq_off,
                ts_off,
                state: RtcpState {
                    ssrc,
                    ..RtcpState::default()
                },
                rx: RxStream::default(),
                sent: 0,
                passes: 0,
                srtp,
            });
        }
    }

    pub(super) fn start_media(&mut self, slot: u32, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        let side = leg.side;
        let Some(m) = leg.media.as_mut() else { return };
        if m.started || t.media[side.idx()].is_empty() {
            return;
        }
        m.started = true;
        m.anchor_ns = now;
        m.anchor_rec = t.media_start[side.idx()].map_or(Duration::ZERO, |i| t.steps[i].at);
        let first = t.media[side.idx()][0].at.saturating_sub(m.anchor_rec);
        self.arm(
            slot,
            TimerKind::Media,
            (now + first.as_nanos() as u64) / 1_000_000,
        );
    }

    pub(super) fn stop_media(&mut self, slot: u32) {
        if let Some(Some(m)) = self.legs[slot as usize].as_mut().map(|l| l.media.as_mut()) {
            m.stopped = true;
        }
    }

    /// Sends the packets due by `now`; past the recording's end, while the call is held, the
    /// recording starts again one packet time after its last packet with timestamps carried on
    /// (RFC 4733 events are sent in the first pass only, so the digits arrive once).
    pub(super) fn send_media(&mut self, slot: u32, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let looping = self.cfg.hold.is_some();
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        let side = leg.side;
        let Some(m) = leg.media.as_mut() else { return };
        if m.stopped || leg.finished {
            return;
        }
        let pkts = &t.media[side.idx()];
        let repeat = t.loops[side.idx()].filter(|_| looping);
        let synth = !t.has_rtcp(side);
        let mut sent = 0u64;
        let mut buf = [0u8; 2048];
        loop {
            let Some(p) = pkts.get(m.next) else {
                // The recording is over: again from its start while the call lasts.
                let Some(l) = repeat else { break };
                m.next = 0;
                m.passes += 1;
                m.anchor_ns += l.period.as_nanos() as u64;
                m.ts_off = m.ts_off.wrapping_add(l.ts_span);
                continue;
            };
            let due = m.anchor_ns + p.at.saturating_sub(m.anchor_rec).as_nanos() as u64;
            if due > now {
                break;
            }
            m.next += 1;
            let Some(remote) = m.remote else { continue };
            if m.passes > 0
                && !p.rtcp
                && t.event_pt
                    .is_some_and(|e| p.data.get(1).is_some_and(|b| b & 0x7f == e))
            {
                continue;
            }
            // A recorded RTCP BYE would end the stream mid-call when the recording repeats.
            if repeat.is_some() && p.rtcp && rtcp_has_bye(&p.data) {
                continue;
            }
            if p.rtcp {
                // Rewritten for this stream, with the leg's own report block.
                let ntp = ntp_at(self.cfg.epoch_ntp, now);
                m.send_rtcp(&mut buf, remote, now, ntp, |out, st, block| {
                    rewrite_rtcp(&p.data, out, st, block)
                });
                continue;
            }
            let len = p.data.len();
            if len + SRTP_ROOM > buf.len() {
                continue;
            }
            let Some(data) = buf.get_mut(..len) else {
                continue;
            };
            data.copy_from_slice(&p.data);
            rewrite_rtp(
                data,
                m.ssrc,
                m.seq_off.wrapping_add(m.sent as u16),
                m.ts_off,
            );
            m.state.packets = m.state.packets.wrapping_add(1);
            m.state.octets = m
                .state
                .octets
                .wrapping_add(data.len().saturating_sub(12) as u32);
            if data.len() >= 8 {
                m.state.rtp_ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            }
            m.send_protected(false, &mut buf, len, remote);
            m.sent += 1;
            sent += 1;
            // RTCP synthesised when the capture has none for this side: two early reports
            // after 50 and 100 packets (1 s and 2 s at 20 ms: the second echoes the peer's first,
            // so a round trip is measured within the first seconds), then every 250 (5 s at
            // 20 ms, RFC 3550's minimum interval).
            if synth && (m.sent == 50 || m.sent == 100 || m.sent % 250 == 0) {
                let ntp = ntp_at(self.cfg.epoch_ntp, now);
                m.send_rtcp(&mut buf, remote, now, ntp, |out, st, block| {
                    synth_rtcp(out, st, block, "loadtest@local")
                });
            }
        }
        self.shared.rtp_sent.fetch_add(sent, Ordering::Relaxed);
        if let Some(p) = pkts.get(m.next) {
            let due = m.anchor_ns + p.at.saturating_sub(m.anchor_rec).as_nanos() as u64;
            self.arm(slot, TimerKind::Media, due / 1_000_000);
        }
    }
}

/// Room left after a packet for the SRTP/SRTCP trailer.
const SRTP_ROOM: usize = 32;

impl LegMedia {
    /// Sends the leg's RTCP to the port after the peer's RTP port: `write` puts it at the start
    /// of `buf` (room left for the SRTCP trailer) from the leg's sender state, its NTP time set
    /// to `ntp`, and from its report block at `now`, and returns its length.
    fn send_rtcp(
        &mut self,
        buf: &mut [u8],
        rtp_peer: SocketAddr,
        now: u64,
        ntp: u64,
        write: impl FnOnce(&mut [u8], &RtcpState, Option<&ReportBlock>) -> Option<usize>,
    ) {
        self.state.ntp = ntp;
        let block = self.rx.report_block(now);
        let room = buf.len().saturating_sub(SRTP_ROOM);
        let n = buf
            .get_mut(..room)
            .and_then(|out| write(out, &self.state, block.as_ref()));
        if let (Some(n), Some(to)) = (n, rtcp_addr(rtp_peer)) {
            self.send_protected(true, buf, n, to);
        }
    }

    /// Sends `buf[..len]`, SRTP-protected in place when the leg has keys.
    fn send_protected(&mut self, rtcp: bool, buf: &mut [u8], len: usize, to: SocketAddr) {
        let len = match self.srtp.as_mut() {
            Some(s) => {
                let r = if rtcp {
                    s.tx.protect_rtcp(buf, len)
                } else {
                    s.tx.protect_rtp(buf, len)
                };
                match r {
                    Ok(n) => n,
                    Err(_) => return,
                }
            }
            None => len,
        };
        if let Some(d) = buf.get(..len) {
            self.send(rtcp, d, to);
        }
    }

    /// Sends on the leg's RTP (or RTCP) socket; nothing when the leg has no sockets.
    fn send(&self, rtcp: bool, data: &[u8], to: SocketAddr) {
        if let Some(s) = &self.socks {
            let sock = if rtcp { &s.rtcp } else { &s.rtp };
            let _ = sock.send_to(data, to);
        }
    }
}

/// Where a peer's RTCP goes: its RTP port + 1 (RFC 3550 11); none when the SDP's port is the last
/// one (the peer's word, not checked elsewhere).
fn rtcp_addr(rtp: SocketAddr) -> Option<SocketAddr> {
    Some(SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?))
}

/// Whether a compound RTCP packet holds a BYE (packet type 203).
fn rtcp_has_bye(pkt: &[u8]) -> bool {
    let mut off = 0usize;
    while let Some(h) = pkt.get(off..off + 4) {
        if h[1] == 203 {
            return true;
        }
        off += (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_goes_to_the_next_port_unless_there_is_none() {
        let rtp: SocketAddr = "127.0.0.1:20000"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        assert_eq!(rtcp_addr(rtp).map(|a| a.port()), Some(20001));
        // An SDP announcing port 65535 leaves no RTCP port: no RTCP, no overflow.
        assert_eq!(rtcp_addr(SocketAddr::new(rtp.ip(), 65535)), None);
    }

    #[test]
    fn a_bye_is_found_in_a_compound_and_a_broken_length_ends_the_search() {
        let mut c = vec![0x80, 200, 0, 1, 0, 0, 0, 1];
        c.extend_from_slice(&[0x81, 203, 0, 1, 0, 0, 0, 1]);
        assert!(rtcp_has_bye(&c));
        assert!(!rtcp_has_bye(&c[..8]));
        assert!(!rtcp_has_bye(&[0x80, 200, 0xff, 0xff, 0, 0, 0, 1]));
    }
}
