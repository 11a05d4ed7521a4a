//! A call template built from a capture: the first SIP dialog's messages in order (who sent each,
//! when), the recorded identifiers the replay replaces (Call-ID, tags), and each side's RTP and RTCP
//! packets, found through the media addresses of the SDP offer and answer, with their timing and
//! payloads. What the receiving side checks (payload set, RFC 4733 digits) is derived here too.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::capture::{read_udp, Datagram};
use media_plane::srtp::SrtpContext;

use crate::sipmsg::{sdp_audio, sdp_clock_rate, sdp_event_pt, Msg};
use crate::worker::{remote_crypto, SRTP_SUITE};

/// Who sent a message or a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// The caller: sender of the capture's first SIP request.
    Uac = 0,
    /// The callee.
    Uas = 1,
}

impl Side {
    pub(crate) fn peer(self) -> Self {
        match self {
            Self::Uac => Self::Uas,
            Self::Uas => Self::Uac,
        }
    }
    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

/// One recorded SIP message.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) from: Side,
    pub(crate) at: Duration,
    pub(crate) msg: Msg,
}

/// One recorded RTP or RTCP packet.
#[derive(Debug, Clone)]
pub(crate) struct MediaPkt {
    pub(crate) at: Duration,
    pub(crate) rtcp: bool,
    pub(crate) data: Vec<u8>,
}

/// How a side's recorded media repeats when the call is held longer than the recording: the next
/// pass starts `period` after the previous one (the last RTP packet plus one packet time) with RTP
/// timestamps moved on by `ts_span` (the last timestamp plus one packet's step), so the stream goes
/// on without a jump in time, sequence or timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MediaLoop {
    pub(crate) period: Duration,
    pub(crate) ts_span: u32,
}

/// A recorded call, ready to be replayed.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) steps: Vec<Step>,
    /// The recorded Call-ID and each side's recorded dialog tag (shown by `--show`).
    pub(crate) call_id: String,
    pub(crate) tags: [Option<String>; 2],
    /// Each side's recorded SIP address.
    pub(crate) sip_addr: [SocketAddr; 2],
    /// Each side's packets, RTP and RTCP, in time order.
    pub(crate) media: [Vec<MediaPkt>; 2],
    /// Per side: the index of the step after which that side has both SDPs and starts its media.
    pub(crate) media_start: [Option<usize>; 2],
    /// Hashes of each side's RTP payloads (what the other side must receive).
    pub(crate) payloads: [HashSet<u64>; 2],
    /// RFC 4733 digits each side sent, in order.
    pub(crate) digits: [String; 2],
    pub(crate) event_pt: Option<u8>,
    pub(crate) clock_rate: u32,
    /// Per side: how its media repeats over a hold longer than the recording (None: no audio).
    pub(crate) loops: [Option<MediaLoop>; 2],
    /// The recording is SDES-SRTP: its packets were decrypted here with the keys its SDP carried
    /// (`media` holds them in clear), and the replay re-keys (as with `--srtp sdes`).
    pub(crate) srtp: bool,
    /// Recorded SRTP/SRTCP packets that did not decrypt with their side's key (left out).
    pub(crate) srtp_undecrypted: usize,
    /// `answer_step` and `bye_step`, found once (they are asked on every message).
    answer: Option<usize>,
    bye: Option<usize>,
}

fn rtp_ts(pkt: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(pkt.get(4..8)?.try_into().ok()?))
}

/// The repeat of one side's packets: from its first packet to one packet time after its last audio
/// packet (audio: RTP of the payload type of the first RTP packet, events excluded).
fn media_loop(pkts: &[MediaPkt], event_pt: Option<u8>) -> Option<MediaLoop> {
    let first = pkts.first()?;
    let audio_pt = pkts
        .iter()
        .filter(|p| !p.rtcp && p.data.len() >= 12)
        .map(|p| p.data[1] & 0x7f)
        .find(|pt| Some(*pt) != event_pt)?;
    let audio: Vec<&MediaPkt> = pkts
        .iter()
        .filter(|p| !p.rtcp && p.data.len() >= 12 && p.data[1] & 0x7f == audio_pt)
        .collect();
    let (a0, last) = (audio.first()?, audio.last()?);
    let prev = audio.get(audio.len().checked_sub(2)?)?;
    let gap = last.at.saturating_sub(prev.at);
    let step = rtp_ts(&last.data)?.wrapping_sub(rtp_ts(&prev.data)?);
    if gap.is_zero() || step == 0 || step > 0x8000_0000 {
        return None;
    }
    let end = (last.at + gap).max(pkts.last().map_or(last.at, |p| p.at));
    let ts_span = rtp_ts(&last.data)?
        .wrapping_sub(rtp_ts(&a0.data)?)
        .wrapping_add(step);
    Some(MediaLoop {
        period: end.saturating_sub(first.at),
        ts_span,
    })
}

/// A message is a retransmission when the same side sent the same bytes before.
fn is_retransmission(seen: &mut HashSet<(Side, Vec<u8>)>, side: Side, data: &[u8]) -> bool {
    !seen.insert((side, data.to_vec()))
}

pub(crate) fn payload_hash(payload: &[u8]) -> u64 {
    // FNV-1a: stable across runs and processes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in payload {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The RTP payload (after header, CSRCs and extension), if `pkt` is RTP.
pub(crate) fn rtp_payload(pkt: &[u8]) -> Option<&[u8]> {
    let first = *pkt.first()?;
    if first >> 6 != 2 || pkt.len() < 12 {
        return None;
    }
    let mut off = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = u16::from_be_bytes([*pkt.get(off + 2)?, *pkt.get(off + 3)?]);
        off += 4 + 4 * usize::from(words);
    }
    pkt.get(off..)
}

/// RTCP packet types are 200..=206 in the second byte (RFC 5761 §4).
pub(crate) fn is_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 8 && pkt[0] >> 6 == 2 && (200..=206).contains(&pkt[1])
}

/// The digits of RFC 4733 events in packets of payload type `pt` (one per event, at its end bit).
pub(crate) fn event_digit(pkt: &[u8], pt: u8) -> Option<(u32, char)> {
    if pkt.get(1)? & 0x7f != pt {
        return None;
    }
    let ts = u32::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?, *pkt.get(6)?, *pkt.get(7)?]);
    let p = rtp_payload(pkt)?;
    let (event, flags) = (*p.first()?, *p.get(1)?);
    if flags & 0x80 == 0 {
        return None;
    }
    let c = match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => '?',
    };
    Some((ts, c))
}

impl Template {
    pub(crate) fn from_pcap(path: &Path) -> Result<Self, String> {
        let datagrams = read_udp(path)?;
        Self::from_datagrams(&datagrams).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn from_datagrams(datagrams: &[Datagram]) -> Result<Self, String> {
        let mut steps = Vec::new();
        let mut seen = HashSet::new();
        let mut call_id = None::<String>;
        let mut sip_addr = None::<[SocketAddr; 2]>;
        let mut media_addr: [HashSet<SocketAddr>; 2] = [HashSet::new(), HashSet::new()];
        let mut sdp_seen = [false; 2];
        let mut media_start = [None, None];
        let mut sip_packets = HashSet::new();
        for (i, d) in datagrams.iter().enumerate() {
            let Some(msg) = Msg::parse(&d.payload) else {
                continue;
            };
            sip_packets.insert(i);
            let cid = call_id.get_or_insert_with(|| msg.call_id().to_string());
            if msg.call_id() != cid {
                continue;
            }
            let addrs = *sip_addr.get_or_insert([d.src, d.dst]);
            let from = if d.src == addrs[0] {
                Side::Uac
            } else {
                Side::Uas
            };
            if is_retransmission(&mut seen, from, &d.payload) {
                continue;
            }
            if msg.has_sdp() {
                if let Some(a) = sdp_audio(&msg.body) {
                    media_addr[from.idx()].insert(a);
                }
                sdp_seen[from.idx()] = true;
                if sdp_seen[0] && sdp_seen[1] {
                    for s in [Side::Uac, Side::Uas] {
                        media_start[s.idx()].get_or_insert(steps.len());
                    }
                }
            }
            steps.push(Step {
                from,
                at: d.at,
                msg,
            });
        }
        let (Some(call_id), Some(sip_addr)) = (call_id, sip_addr) else {
            return Err("no SIP message in the capture".into());
        };
        let first = steps.first().ok_or("no SIP message")?;
        if !first.msg.is_request() {
            return Err("the first SIP message is not a request".into());
        }
        let mut tags = [None, None];
        for s in &steps {
            let (mine, theirs) = if s.msg.is_request() {
                (s.msg.tag_from(), s.msg.to_tag())
            } else {
                (s.msg.to_tag(), s.msg.tag_from())
            };
            if let Some(t) = mine {
                tags[s.from.idx()].get_or_insert_with(|| t.to_string());
            }
            if let Some(t) = theirs {
                tags[s.from.peer().idx()].get_or_insert_with(|| t.to_string());
            }
        }
        let sdp_bodies: Vec<&[u8]> = steps
            .iter()
            .filter(|s| s.msg.has_sdp())
            .map(|s| s.msg.body.as_slice())
            .collect();
        let clock_rate = sdp_bodies.first().map_or(8000, |b| sdp_clock_rate(b));
        let event_pt = sdp_bodies.iter().find_map(|b| sdp_event_pt(b));
        // Each side's SDES key (the first usable `a=crypto` it announced) decrypts what it sent.
        let mut srtp_rx: [Option<SrtpContext>; 2] = [None, None];
        for st in steps.iter().filter(|s| s.msg.has_sdp()) {
            let slot = &mut srtp_rx[st.from.idx()];
            if slot.is_none() {
                if let Some((_, key)) = remote_crypto(&st.msg.body) {
                    *slot = SrtpContext::new(SRTP_SUITE, &key).ok();
                }
            }
        }
        let srtp = srtp_rx.iter().any(Option::is_some);
        let mut srtp_undecrypted = 0usize;
        let mut media: [Vec<MediaPkt>; 2] = [Vec::new(), Vec::new()];
        let mut payloads = [HashSet::new(), HashSet::new()];
        let mut digits = [String::new(), String::new()];
        let mut last_event = [None::<u32>; 2];
        for (i, d) in datagrams.iter().enumerate() {
            if sip_packets.contains(&i) {
                continue;
            }
            let side = [Side::Uac, Side::Uas].into_iter().find(|s| {
                media_addr[s.idx()].iter().any(|a| {
                    a.ip() == d.src.ip()
                        && (a.port() == d.src.port() || a.port().wrapping_add(1) == d.src.port())
                })
            });
            // Else by where it went: a packet to one side's media address is the other side's
            // (a peer sending from an unbound socket has another source address on loopback).
            let side = side.or_else(|| {
                [Side::Uac, Side::Uas].into_iter().find(|s| {
                    media_addr[s.peer().idx()].iter().any(|a| {
                        a.ip() == d.dst.ip()
                            && (a.port() == d.dst.port()
                                || a.port().wrapping_add(1) == d.dst.port())
                    })
                })
            });
            let Some(side) = side else { continue };
            let rtcp = is_rtcp(&d.payload);
            // SDES-SRTP: decrypted with the key the sending side announced.
            let clear;
            let data: &[u8] = match srtp_rx[side.idx()].as_mut() {
                Some(ctx) => {
                    let mut buf = d.payload.clone();
                    let len = buf.len();
                    let r = if rtcp {
                        ctx.unprotect_rtcp(&mut buf, len)
                    } else {
                        ctx.unprotect_rtp(&mut buf, len)
                    };
                    let Ok(n) = r else {
                        srtp_undecrypted += 1;
                        continue;
                    };
                    buf.truncate(n);
                    clear = buf;
                    &clear
                }
                None => &d.payload,
            };
            if !rtcp {
                let Some(p) = rtp_payload(data) else {
                    continue;
                };
                payloads[side.idx()].insert(payload_hash(p));
                if let Some((ts, c)) = event_pt.and_then(|pt| event_digit(data, pt)) {
                    if last_event[side.idx()] != Some(ts) {
                        digits[side.idx()].push(c);
                        last_event[side.idx()] = Some(ts);
                    }
                }
            }
            media[side.idx()].push(MediaPkt {
                at: d.at,
                rtcp,
                data: data.to_vec(),
            });
        }
        let loops = [
            media_loop(&media[0], event_pt),
            media_loop(&media[1], event_pt),
        ];
        let bye = steps
            .iter()
            .position(|s| s.msg.is_request() && s.msg.method() == "BYE");
        let answer = steps.iter().position(|s| {
            !s.msg.is_request()
                && s.msg.method() == "INVITE"
                && (200..300).contains(&s.msg.status())
        });
        Ok(Self {
            answer,
            bye,
            loops,
            steps,
            call_id,
            tags,
            sip_addr,
            media,
            media_start,
            payloads,
            digits,
            event_pt,
            clock_rate,
            srtp,
            srtp_undecrypted,
        })
    }

    /// Whether `side` sends or receives RTP in this call.
    pub(crate) fn rtp_count(&self, side: Side) -> usize {
        self.media[side.idx()].iter().filter(|p| !p.rtcp).count()
    }

    pub(crate) fn has_rtcp(&self, side: Side) -> bool {
        self.media[side.idx()].iter().any(|p| p.rtcp)
    }

    /// The index of the step that starts the call's end (the first BYE), if any.
    pub(crate) fn bye_step(&self) -> Option<usize> {
        self.bye
    }

    /// The index of the first 2xx to the initial INVITE (the answer), if any.
    pub(crate) fn answer_step(&self) -> Option<usize> {
        self.answer
    }

    /// One line per step, for `--show`.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("Call-ID {} tags {:?}\n", self.call_id, self.tags);
        for s in &self.steps {
            out.push_str(&format!(
                "{:>9.3} {} {}\n",
                s.at.as_secs_f64(),
                if s.from == Side::Uac {
                    "UAC→"
                } else {
                    "←UAS"
                },
                s.msg.start
            ));
        }
        for side in [Side::Uac, Side::Uas] {
            out.push_str(&format!(
                "{:?}: {} RTP, {} RTCP packets, digits {:?}\n",
                side,
                self.rtp_count(side),
                self.media[side.idx()].len() - self.rtp_count(side),
                self.digits[side.idx()]
            ));
        }
        if self.srtp {
            out.push_str(&format!(
                "SDES-SRTP: decrypted with the recorded keys ({} packets did not decrypt); replayed re-keyed\n",
                self.srtp_undecrypted
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Template {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pcaps")
            .join(name);
        Template::from_pcap(&p).unwrap()
    }

    #[test]
    fn the_g711_call() {
        let t = load("g711-rtcp.pcap");
        let methods: Vec<String> = t.steps.iter().map(|s| s.msg.start.clone()).collect();
        assert_eq!(t.steps.len(), 7, "{methods:?}");
        assert_eq!(t.steps[0].from, Side::Uac);
        assert_eq!(t.steps[3].msg.status(), 200);
        assert!(t.rtp_count(Side::Uac) > 200 && t.rtp_count(Side::Uas) > 200);
        assert!(t.has_rtcp(Side::Uac) && t.has_rtcp(Side::Uas));
        assert_eq!(t.media_start, [Some(3), Some(3)]);
        assert_eq!(t.answer_step(), Some(3));
        assert_eq!(t.bye_step(), Some(5));
        assert!(t.tags[0].is_some() && t.tags[1].is_some());
        assert_eq!(t.clock_rate, 8000);
        // 30 ms packets, 240 timestamp units each: a pass ends one packet after the last.
        for side in [Side::Uac, Side::Uas] {
            let l = t.loops[side.idx()].unwrap();
            let audio: Vec<&MediaPkt> = t.media[side.idx()].iter().filter(|p| !p.rtcp).collect();
            let ts = |p: &MediaPkt| rtp_ts(&p.data).unwrap();
            assert_eq!(
                l.ts_span,
                ts(audio[audio.len() - 1]) - ts(audio[0]) + 240,
                "{side:?}"
            );
            let end = audio[audio.len() - 1].at + Duration::from_millis(30);
            let span = end.saturating_sub(t.media[side.idx()][0].at);
            assert!(
                l.period.abs_diff(span) < Duration::from_millis(5),
                "{l:?} {span:?}"
            );
        }
        // The 20 ms version: 160 units per packet.
        let t20 = load("g711-ptime20.pcap");
        let audio: Vec<&MediaPkt> = t20.media[0].iter().filter(|p| !p.rtcp).collect();
        let ts = |p: &MediaPkt| rtp_ts(&p.data).unwrap();
        assert_eq!(
            t20.loops[0].unwrap().ts_span,
            ts(audio[audio.len() - 1]) - ts(audio[0]) + 160
        );
    }

    #[test]
    fn the_dtmf_call_knows_its_digits() {
        let t = load("dtmf-rfc4733.pcap");
        assert_eq!(t.event_pt, Some(101));
        assert_eq!(t.digits[0], "159");
        assert_eq!(t.digits[1], "");
    }

    #[test]
    fn the_srtp_capture_decrypts_with_its_recorded_keys() {
        let t = load("srtp-sdes.pcap");
        assert!(t.srtp);
        // baresip's RTP is sent from 127.0.0.1: found by its destination.
        for side in [Side::Uac, Side::Uas] {
            assert!(t.rtp_count(side) >= 390, "{side:?}");
            // Decrypted: PCMA RTP, 160 bytes of payload, the tag gone.
            let p = t.media[side.idx()].iter().find(|p| !p.rtcp).unwrap();
            assert_eq!(p.data.len(), 12 + 160);
            assert_eq!(p.data[1] & 0x7f, 8);
        }
        // Only baresip's unprotected RTCP keepalives did not decrypt.
        assert!(t.srtp_undecrypted <= 8, "{}", t.srtp_undecrypted);
        let o = load("opus-baresip.pcap");
        assert!(!o.srtp);
        assert_eq!(o.clock_rate, 48_000);
        assert!(o.rtp_count(Side::Uac) >= 390 && o.rtp_count(Side::Uas) >= 390);
    }

    #[test]
    fn register_and_cancel_have_no_media() {
        let r = load("register-digest.pcap");
        assert_eq!(r.steps.len(), 4);
        assert!(r.steps[2].msg.header("Authorization").is_some());
        let c = load("cancel.pcap");
        assert_eq!(c.steps.len(), 7);
        assert_eq!(c.rtp_count(Side::Uac) + c.rtp_count(Side::Uas), 0);
        assert_eq!(c.steps[5].msg.status(), 487);
    }
}
