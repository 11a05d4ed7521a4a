//! Fuzz target body of the relay: one shard, its sessions' streams set up with every kind of stage
//! (plain, SRTP one way or both, withheld keys, transcoding with repacketisation, DTMF played,
//! reported and heard), then arbitrary datagrams on its ports from the remotes and from strangers,
//! with control calls in between, all chosen by the input.
//!
//! The body lives in the library so that it builds with every normal build:
//! `tests/fuzz_seeds.rs` replays the checked-in seeds and regressions through it on stable, and
//! `fuzz/fuzz_targets/relay.rs` only forwards the fuzzer's bytes. It asserts the relay's invariants
//! (a forwarded length within the buffer, sent from one of the session's own ports, a bounded
//! number of packets per packet received, every port back after the last release) and panics with
//! a message naming the broken one.
//!
//! Not part of the API: hidden from the docs, and free to change with the code it checks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{Codec, CodecPlan, LegFormat};
use crate::shard::{MediaShard, RemoteSdp, SessionHandle, ShardConfig, Side, Validation};
use crate::srtp::{SrtpContext, Suite};
use crate::stage::{SrtpStage, Stage};
use crate::Action;

/// The relay's port slice: 25 pairs.
const PORT_MIN: u16 = 30_000;
const PORT_MAX: u16 = 30_049;
/// Most packets a codec stage may send for one received (a 120 ms Opus packet at 20 ms out, with
/// room to spare).
const MORE_LIMIT: usize = 16;

/// The input, read a byte or a run at a time; zeros once it is used up.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// One of `from`, which is never empty (the constant tables and the sessions held).
    #[allow(clippy::indexing_slicing)]
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        let i = usize::from(self.byte()) % from.len().max(1);
        from[i]
    }
}

const SUITES: &[Suite] = &[
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
    Suite::AeadAes128Gcm,
    Suite::AeadAes256Gcm,
];
const CODECS: &[Codec] = &[Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus];

/// A context of `suite` keyed with `fill`.
fn context(suite: Suite, fill: u8) -> Option<SrtpContext> {
    SrtpContext::new(suite, &vec![fill; suite.master_len()]).ok()
}

fn format(ops: &mut Ops<'_>) -> LegFormat {
    let codec = ops.pick(CODECS);
    let pt = match codec {
        Codec::Pcmu => 0,
        Codec::Pcma => 8,
        Codec::G722 => 9,
        Codec::Opus => 111,
    };
    let te = (ops.byte() & 1 == 1).then_some(101);
    let mut f = LegFormat::new(codec, pt, te);
    f.ptime = ops.pick(&[20, 30, 40, 60]);
    f
}

/// Set up stream `k` of session `h` as the input says: remotes, validation, stages, codecs, DTMF.
fn set_up(shard: &mut MediaShard, ops: &mut Ops<'_>, h: SessionHandle, k: usize, now: Instant) {
    let remotes = [addr(1), addr(2)];
    for (side, remote) in [Side::A, Side::B].into_iter().zip(remotes) {
        if ops.byte() % 4 != 0 {
            let _ = shard.set_remote(h, k, side, RemoteSdp::from(remote), now);
        }
    }
    let validation = ops.pick(&[
        Validation::Full,
        Validation::Full,
        Validation::HeaderOnly,
        Validation::Opaque,
    ]);
    let _ = shard.set_validation(h, k, validation);
    for side in [Side::A, Side::B] {
        let stage = match ops.byte() % 5 {
            0 | 1 => Stage::Plain,
            2 => Stage::Withheld(Default::default()),
            n => {
                let suite = ops.pick(SUITES);
                let unprotect = (n == 3 || ops.byte() & 1 == 1)
                    .then(|| context(suite, 1))
                    .flatten();
                let protect = context(suite, 2);
                Stage::Srtp(Box::new(SrtpStage::new(unprotect, protect)))
            }
        };
        let _ = shard.set_stage(h, k, side, stage);
    }
    if ops.byte() % 3 == 0 {
        let plan = CodecPlan::new(format(ops), format(ops));
        let _ = shard.set_codecs(h, k, Some(plan));
    }
    for side in [Side::A, Side::B] {
        match ops.byte() % 6 {
            0 => {
                let _ = shard.report_dtmf(h, k, side, Some(101));
            }
            1 => {
                let _ = shard.hear_dtmf(h, k, side, true);
            }
            2 => {
                let (event, duration) = (ops.byte() % 20, ops.u16());
                let _ = shard.send_dtmf(h, k, side, 101, event, duration);
            }
            3 => {
                let (event, duration) = (ops.byte() % 20, ops.u16());
                let _ = shard.send_dtmf_tone(h, k, side, event, duration);
            }
            _ => {}
        }
    }
}

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, host], 4000 + u16::from(host)))
}

/// A datagram as the input says: an RTP-shaped header (version 2, a payload type of the streams'
/// codecs or events) over input bytes, or the input bytes as they are.
fn datagram(ops: &mut Ops<'_>, seq: &mut u16, buf: &mut Vec<u8>) {
    buf.clear();
    let shape = ops.byte();
    // Mostly up to 255 bytes (an RTP packet of 20 or 30 ms), sometimes up to 1,400.
    let n = if shape & 0x80 != 0 {
        usize::from(ops.u16() % 1400)
    } else {
        usize::from(ops.byte())
    };
    if shape % 4 != 0 {
        let pt = ops.pick(&[0u8, 8, 9, 111, 101, 200, 201, 13]);
        *seq = seq.wrapping_add(u16::from(ops.byte() % 3));
        let ts = u32::from(*seq).wrapping_mul(160);
        buf.extend_from_slice(&[0x80, pt]);
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&ts.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0x12, 0x34]);
    }
    buf.extend_from_slice(ops.take(n));
}

/// Drive one shard with `data`. See the module doc.
pub fn relay(data: &[u8]) {
    let mut ops = Ops(data);
    let Ok(mut shard) = MediaShard::new(ShardConfig::new(PORT_MIN, PORT_MAX)) else {
        panic!("the shard's own port range is refused");
    };
    #[allow(clippy::disallowed_methods)] // the one origin of the input's time
    let mut now = Instant::now();
    let mut sessions: Vec<SessionHandle> = Vec::new();
    let (mut seq, mut buf, mut more) = (0u16, Vec::with_capacity(2048), vec![0u8; 2048]);
    let mut steps = 0u32;
    while !ops.0.is_empty() && steps < 2_000 {
        steps += 1;
        match ops.byte() % 10 {
            0 if sessions.len() < 8 => {
                let streams = usize::from(ops.byte() % 3) + 1;
                if let Ok(h) = shard.allocate_session(now, streams) {
                    for k in 0..streams {
                        set_up(&mut shard, &mut ops, h, k, now);
                    }
                    sessions.push(h);
                }
            }
            1 if !sessions.is_empty() => {
                let h = sessions.swap_remove(usize::from(ops.byte()) % sessions.len());
                let _ = shard.release(h, now);
            }
            2 if !sessions.is_empty() => {
                let h = ops.pick(&sessions);
                let k = usize::from(ops.byte() % 3);
                set_up(&mut shard, &mut ops, h, k, now);
            }
            3 => {
                now += Duration::from_millis(u64::from(ops.u16()));
                let _ = shard.poll_idle(now, Duration::from_secs(30));
                while shard.poll_dtmf().is_some() {}
            }
            _ => {
                // A datagram to a port of a session (its RTP or RTCP, either leg), or any port.
                let port = match sessions.is_empty() || ops.byte() % 8 == 0 {
                    true => PORT_MIN.wrapping_add(ops.u16() % 60),
                    false => {
                        let h = ops.pick(&sessions);
                        let streams = shard.streams(h).map(<[_]>::len).unwrap_or(0);
                        let k = usize::from(ops.byte()) % streams.max(1);
                        let side = ops.pick(&[Side::A, Side::B]);
                        let rtcp = ops.byte() % 4 == 0;
                        match shard.streams(h).ok().and_then(|s| s.get(k)) {
                            Some(s) if rtcp => s.leg(side).ports().rtcp(),
                            Some(s) => s.leg(side).ports().rtp(),
                            None => PORT_MIN,
                        }
                    }
                };
                let source = addr(ops.pick(&[1u8, 2, 3]));
                datagram(&mut ops, &mut seq, &mut buf);
                let len = buf.len();
                buf.resize(2048, 0);
                let action = shard.on_packet_in(port, source, &mut buf, len, now);
                check(&action, buf.len());
                let mut extra = 0;
                while let Some(a) = shard.next_packet(&mut more) {
                    check(&a, more.len());
                    extra += 1;
                    assert!(
                        extra <= MORE_LIMIT,
                        "more than {MORE_LIMIT} packets for one"
                    );
                }
                now += Duration::from_millis(u64::from(ops.byte() % 40));
            }
        }
    }
    for h in sessions.drain(..) {
        assert!(
            shard.release(h, now).is_ok(),
            "a live session refused its release"
        );
    }
    assert!(shard.is_empty(), "sessions left after every release");
    let pairs = usize::from(PORT_MAX - PORT_MIN).div_ceil(2);
    let later = now + Duration::from_secs(24 * 3600);
    assert_eq!(
        shard.ports().available(later),
        pairs,
        "relay ports not back after every release and the quarantine"
    );
}

/// A forwarded packet fits its buffer and leaves from a relay port.
fn check(action: &Action, room: usize) {
    if let Action::Forward { from_port, len, .. } = *action {
        assert!(
            len <= room,
            "forward of {len} bytes from a {room}-byte buffer"
        );
        assert!(
            (PORT_MIN..=PORT_MAX).contains(&from_port),
            "forward from port {from_port}, not the relay's"
        );
    }
}
