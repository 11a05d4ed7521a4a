//! Transcoding channels per core: one 20 ms frame each way of a call through the relay shard.
//!
//! One group, `transcode`, each iteration one frame A->B and one frame B->A (172-byte packets,
//! 160 samples), throughput in elements = frames:
//!
//! - `baseline/relay`: the plain relay (no codec stage) of the same packets.
//! - `g711/alaw_ulaw`: PCMA on leg A, PCMU on leg B (telephone-event on both, renumbered).
//! - `g711/alaw_ulaw_inband_dtmf`: the same with leg A lacking telephone-event, so the DTMF
//!   detector runs on every A->B frame (the worst G.711 case).
//!
//! Channels per core = 20 ms / (time per iteration), an iteration being one frame both ways:
//! `1 / (2 × time per element × 50)`.
//!
//! Run: `cargo bench -p benches --bench transcode`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media_plane::codec::{Codec, CodecPlan, LegFormat};
use media_plane::shard::{ShardConfig, Side};
use media_plane::{Action, MediaShard};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn packet(pt: u8, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
    // Speech-like bytes: a slow sweep over the code space.
    p.extend((0..160u32).map(|i| fill.wrapping_add((i * 7 % 251) as u8)));
    p
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
    LegFormat {
        codec,
        payload_type: pt,
        telephone_event: te,
    }
}

fn both_ways(c: &mut Call, from_a: &mut [u8], from_b: &mut [u8], pt_a: u8, pt_b: u8) {
    // The stage renumbers in place: put the sender's payload type back each time.
    from_a[1] = pt_a;
    from_b[1] = pt_b;
    let len_a = from_a.len();
    let len_b = from_b.len();
    let r1 = c.shard.on_packet_in(c.a.0, c.a.1, from_a, len_a, c.now);
    let r2 = c.shard.on_packet_in(c.b.0, c.b.1, from_b, len_b, c.now);
    assert!(matches!(r1, Action::Forward { .. }) && matches!(r2, Action::Forward { .. }));
    black_box((r1, r2));
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("transcode");
    g.throughput(Throughput::Elements(2));
    g.measurement_time(Duration::from_secs(3));
    let cases: [(&str, Option<CodecPlan>); 3] = [
        ("baseline/relay", None),
        (
            "g711/alaw_ulaw",
            Some(CodecPlan {
                a: leg(Codec::Pcma, 8, Some(101)),
                b: leg(Codec::Pcmu, 0, Some(96)),
            }),
        ),
        (
            "g711/alaw_ulaw_inband_dtmf",
            Some(CodecPlan {
                a: leg(Codec::Pcma, 8, None),
                b: leg(Codec::Pcmu, 0, Some(101)),
            }),
        ),
    ];
    for (name, plan) in cases {
        let mut c = call(plan);
        let (pt_a, pt_b) = if plan.is_some() { (8, 0) } else { (8, 8) };
        let mut from_a = packet(pt_a, 0x55);
        let mut from_b = packet(pt_b, 0x80);
        g.bench_function(name, |bch| {
            bch.iter(|| both_ways(&mut c, &mut from_a, &mut from_b, pt_a, pt_b));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
