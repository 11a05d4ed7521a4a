//! Transcoding channels per core: one 20 ms frame each way of a call through the relay shard.
//!
//! One group, `transcode`, each iteration one frame A->B and one frame B->A (172-byte packets,
//! 160 samples), throughput in elements = frames:
//!
//! - `baseline/relay`: the plain relay (no codec stage) of the same packets.
//! - `g711/alaw_ulaw`: PCMA on leg A, PCMU on leg B (telephone-event on both, renumbered).
//! - `g711/alaw_ulaw_inband_dtmf`: the same with leg A lacking telephone-event, so the DTMF
//!   detector runs on every A->B frame (the worst G.711 case).
//! - `g722/g722_ulaw`: G.722 on leg A (160 octets, 320 samples at 16 kHz), PCMU on leg B, through
//!   G.722's lower sub-band (the default): its lower band decoded one way, coded the other.
//! - `g722/g722_ulaw_resampled`: the same through the full G.722 (both bands, the QMF) and the
//!   half-band FIR: decode and decimation one way, interpolation and encode the other.
//! - `opus/opus_ulaw_c3`, `opus/opus_ulaw_c10`: Opus on leg A (a 20 ms packet of a voice-like
//!   signal made by libopus beforehand), PCMU on leg B, the encoder toward A at complexity 3
//!   (the default) and 10: Opus decode one way, encode the other, at 8 kHz.
//!
//! - `ptime/*` (60 ms of audio each way per iteration, throughput 6 elements = six 20 ms frames
//!   of audio, so channels per core come out of the same formula): repacketisation against the
//!   same codecs without it. `ptime/g722_ulaw_20_20`: G.722 20 ms <-> PCMU 20 ms (three packets
//!   each way); `ptime/g722_ulaw_20_30`: the PBX at 30 ms (three G.722 packets in give two of
//!   PCMU, two of 30 ms give three of G.722, the further ones through `next_packet`);
//!   `ptime/alaw_ulaw_20_20`: the byte table, three packets each way; `ptime/alaw_ulaw_30_20`:
//!   PCMA at 30 ms against PCMU at 20 ms, through the pipeline both ways.
//!
//! Each packet is copied into a receive buffer of 1500 bytes with its sequence number and
//! timestamp advanced (the pipelines drop repeated packets), for every case alike.
//!
//! Channels per core = 20 ms / (time per iteration), an iteration being one frame both ways:
//! `1 / (2 × time per element × 50)`.
//!
//! Run: `cargo bench -p benches --bench transcode`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media_plane::codec::{opus, Codec, CodecPlan, G722Narrowband, LegFormat};
use media_plane::shard::{ShardConfig, Side};
use media_plane::{Action, MediaShard};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn packet(pt: u8, fill: u8) -> Vec<u8> {
    sized_packet(pt, fill, 160)
}

/// A packet of `n` payload octets.
fn sized_packet(pt: u8, fill: u8, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
    // Speech-like bytes: a slow sweep over the code space.
    p.extend((0..n).map(|i| fill.wrapping_add((i * 7 % 251) as u8)));
    p
}

/// A 20 ms Opus packet (8 kHz input, two tones and a sweep, like a voiced sound).
fn opus_packet(pt: u8) -> Vec<u8> {
    let mut e = opus::Encoder::new(8000, 5, &Default::default()).unwrap();
    let pcm: Vec<i16> = (0..160)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            let x = 5000.0 * (std::f64::consts::TAU * 210.0 * t).sin()
                + 3000.0 * (std::f64::consts::TAU * 630.0 * t).sin()
                + 1500.0 * (std::f64::consts::TAU * (1200.0 + 3000.0 * t) * t).sin();
            x as i16
        })
        .collect();
    let mut out = vec![0u8; 400];
    let n = e.encode(&pcm, &mut out).unwrap();
    let mut p = vec![0x80, pt, 0, 1, 0, 0, 3, 192, 0, 0, 0, 1];
    p.extend_from_slice(&out[..n]);
    p
}

/// A sender's packets: the template, its sequence number and timestamp advanced per packet.
struct Sender {
    template: Vec<u8>,
    ticks: u32,
    n: u32,
}

impl Sender {
    /// Copy the next packet into `room`; its length.
    fn next(&mut self, room: &mut [u8]) -> usize {
        let len = self.template.len();
        room[..len].copy_from_slice(&self.template);
        self.n = self.n.wrapping_add(1);
        room[2..4].copy_from_slice(&(self.n as u16).to_be_bytes());
        room[4..8].copy_from_slice(&self.n.wrapping_mul(self.ticks).to_be_bytes());
        len
    }
}

struct Call {
    shard: MediaShard,
    a: (u16, SocketAddr),
    b: (u16, SocketAddr),
    now: Instant,
}

#[allow(clippy::disallowed_methods)] // the bench's one clock read
fn call(plan: Option<CodecPlan>) -> Call {
    let now = Instant::now();
    let mut shard = MediaShard::new(ShardConfig::new(20000, 20019)).unwrap();
    let h = shard.allocate_session(now, 1).unwrap();
    let caller: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    let pbx: SocketAddr = "10.0.0.2:30000".parse().unwrap();
    shard.set_remote(h, 0, Side::A, caller, now).unwrap();
    shard.set_remote(h, 0, Side::B, pbx, now).unwrap();
    shard.set_codecs(h, 0, plan).unwrap();
    let s = &shard.streams(h).unwrap()[0];
    let (a, b) = (s.leg(Side::A).ports().rtp(), s.leg(Side::B).ports().rtp());
    Call {
        shard,
        a: (a, caller),
        b: (b, pbx),
        now,
    }
}

fn leg(codec: Codec, pt: u8, te: Option<u8>) -> LegFormat {
    LegFormat::new(codec, pt, te)
}

fn both_ways(c: &mut Call, room: &mut [u8], a: &mut Sender, b: &mut Sender) {
    let len_a = a.next(room);
    let r1 = c.shard.on_packet_in(c.a.0, c.a.1, room, len_a, c.now);
    let len_b = b.next(room);
    let r2 = c.shard.on_packet_in(c.b.0, c.b.1, room, len_b, c.now);
    assert!(matches!(r1, Action::Forward { .. }) && matches!(r2, Action::Forward { .. }));
    black_box((r1, r2));
}

/// 60 ms of audio each way: `a` and `b` send as many packets as make it, every packet out sent
/// (the further ones into `spare`).
fn sixty_ms_both_ways(
    c: &mut Call,
    room: &mut [u8],
    spare: &mut [u8],
    a: &mut Sender,
    b: &mut Sender,
) {
    let mut out = 0u32;
    for (s, (port, from)) in [(a, c.a), (b, c.b)] {
        for _ in 0..(480 / s.ticks) {
            let len = s.next(room);
            if let Action::Forward { .. } = c.shard.on_packet_in(port, from, room, len, c.now) {
                out += 1;
            }
            while let Some(act) = c.shard.next_packet(spare) {
                black_box(act);
                out += 1;
            }
        }
    }
    assert!(out >= 4, "{out} packets out");
    black_box(out);
}

fn bench_ptime(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.throughput(Throughput::Elements(6));
    let with_ptime = |mut l: LegFormat, ms: u16| {
        l.ptime = ms;
        l
    };
    let cases = [
        (
            "ptime/g722_ulaw_20_20",
            leg(Codec::G722, 9, None),
            leg(Codec::Pcmu, 0, None),
        ),
        (
            "ptime/g722_ulaw_20_30",
            leg(Codec::G722, 9, None),
            with_ptime(leg(Codec::Pcmu, 0, None), 30),
        ),
        (
            "ptime/alaw_ulaw_20_20",
            leg(Codec::Pcma, 8, None),
            leg(Codec::Pcmu, 0, None),
        ),
        (
            "ptime/alaw_ulaw_30_20",
            with_ptime(leg(Codec::Pcma, 8, None), 30),
            leg(Codec::Pcmu, 0, None),
        ),
    ];
    for (name, la, lb) in cases {
        let mut c = call(Some(CodecPlan::new(la, lb)));
        let sender = |l: LegFormat, fill: u8| {
            let ticks = 8 * l.packet_ms();
            Sender {
                template: sized_packet(l.payload_type, fill, ticks),
                ticks,
                n: 0,
            }
        };
        let (mut a, mut b) = (sender(la, 0x55), sender(lb, 0x80));
        let mut room = vec![0u8; 1500];
        let mut spare = vec![0u8; 1500];
        g.bench_function(name, |bch| {
            bch.iter(|| sixty_ms_both_ways(&mut c, &mut room, &mut spare, &mut a, &mut b));
        });
    }
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("transcode");
    g.throughput(Throughput::Elements(2));
    g.measurement_time(Duration::from_secs(3));
    let opus_at = |complexity: u8| {
        let mut p = CodecPlan::new(leg(Codec::Opus, 111, None), leg(Codec::Pcmu, 0, None));
        p.opus_complexity = complexity;
        p
    };
    let mut g722_resampled = CodecPlan::new(leg(Codec::G722, 9, None), leg(Codec::Pcmu, 0, None));
    g722_resampled.g722_narrowband = G722Narrowband::Resample;
    let cases: [(&str, Option<CodecPlan>); 7] = [
        ("baseline/relay", None),
        (
            "g711/alaw_ulaw",
            Some(CodecPlan::new(
                leg(Codec::Pcma, 8, Some(101)),
                leg(Codec::Pcmu, 0, Some(96)),
            )),
        ),
        (
            "g711/alaw_ulaw_inband_dtmf",
            Some(CodecPlan::new(
                leg(Codec::Pcma, 8, None),
                leg(Codec::Pcmu, 0, Some(101)),
            )),
        ),
        (
            "g722/g722_ulaw",
            Some(CodecPlan::new(
                leg(Codec::G722, 9, None),
                leg(Codec::Pcmu, 0, None),
            )),
        ),
        ("g722/g722_ulaw_resampled", Some(g722_resampled)),
        ("opus/opus_ulaw_c3", Some(opus_at(3))),
        ("opus/opus_ulaw_c10", Some(opus_at(10))),
    ];
    for (name, plan) in cases {
        let mut c = call(plan);
        let (a, b) = match plan.map(|p| (p.a.codec, p.b.payload_type)) {
            None => (packet(8, 0x55), packet(8, 0x80)),
            Some((Codec::Opus, pt_b)) => (opus_packet(111), packet(pt_b, 0x80)),
            Some((codec, pt_b)) => (
                packet(codec.static_payload_type().unwrap_or(8), 0x55),
                packet(pt_b, 0x80),
            ),
        };
        let ticks_a = if a[1] == 111 { 960 } else { 160 };
        let mut a = Sender {
            template: a,
            ticks: ticks_a,
            n: 0,
        };
        let mut b = Sender {
            template: b,
            ticks: 160,
            n: 0,
        };
        let mut room = vec![0u8; 1500];
        g.bench_function(name, |bch| {
            bch.iter(|| both_ways(&mut c, &mut room, &mut a, &mut b));
        });
    }
    bench_ptime(&mut g);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
