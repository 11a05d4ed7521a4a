//! The guard's admission decision per packet, against a bare receive-and-drop of the same packets.
//!
//! One group, `guard_admission`, all per packet (throughput in elements):
//!
//! - `baseline/recv_drop`: a batch of 64 datagrams sent over loopback and received (one
//!   `recv_from` each) and dropped: the least a worker does per packet.
//! - `recv_admit`: the same, each received datagram passed to `Guard::admit_datagram` (its source
//!   one of 1,000 addresses, its kind read from its first bytes) before it is dropped.
//! - `admit/1000_sources`: the decision alone, without the socket, over the same 64 packets.
//! - `banned/discard`: the decision for a banned source's packets (each one dropped).
//!
//! `recv_admit − baseline/recv_drop` (or `admit/…` directly) is what the guard costs per packet;
//! `1 / banned/discard` is the rate one worker discards a banned source's packets at, on top of
//! receiving them.
//!
//! Run: `cargo bench -p benches --bench guard_admission`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mimalloc::MiMalloc;
use sbc_core::guard::{Admission, Guard, GuardCommand, GuardConfig};
use sbc_core::signalling::topology::Side;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const BATCH: usize = 64;

/// 64 requests of the four kinds a flood is made of, with their sources among 1,000 addresses.
fn packets() -> Vec<(SocketAddr, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let src =
                SocketAddr::from((Ipv4Addr::from(0xc000_0200 + (i as u32 * 37) % 1000), 5060));
            let method = ["INVITE", "REGISTER", "OPTIONS", "BYE"][i % 4];
            let text = format!(
                "{method} sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:a@{src}>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\n\
                 Call-ID: {i}@bench\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
            );
            (src, text.into_bytes())
        })
        .collect()
}

/// A guard whose budgets never run out in the bench (every packet takes the full admission path).
fn guard() -> Guard {
    let mut cfg = GuardConfig {
        seed: 7,
        ..GuardConfig::default()
    };
    for b in [
        &mut cfg.policy.untrusted.invite,
        &mut cfg.policy.untrusted.register,
        &mut cfg.policy.untrusted.options,
        &mut cfg.policy.untrusted.other,
    ] {
        b.rate = 1e9;
        b.burst = 1e9;
    }
    Guard::new(cfg)
}

fn guard_admission(c: &mut Criterion) {
    let mut g = c.benchmark_group("guard_admission");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(5));
    let pkts = packets();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    let send_batch = || {
        for (_, p) in &pkts {
            tx.send_to(p, to).unwrap();
        }
    };
    g.bench_function("baseline/recv_drop", |b| {
        b.iter(|| {
            send_batch();
            for _ in 0..BATCH {
                let (n, from) = rx.recv_from(&mut buf).unwrap();
                black_box((n, from));
            }
        })
    });
    let mut gd = guard();
    g.bench_function("recv_admit", |b| {
        b.iter(|| {
            send_batch();
            let now = Instant::now();
            for (src, _) in &pkts {
                let (n, _) = rx.recv_from(&mut buf).unwrap();
                // The source of the packet as the flood would have it (loopback has one).
                black_box(gd.admit_datagram(now, *src, Side::Outside, &buf[..n]));
            }
        })
    });
    let mut gd = guard();
    g.bench_function("admit/1000_sources", |b| {
        b.iter(|| {
            let now = Instant::now();
            for (src, p) in &pkts {
                black_box(gd.admit_datagram(now, black_box(*src), Side::Outside, black_box(p)));
            }
        })
    });
    let mut gd = guard();
    let banned = pkts[0].0;
    gd.apply(
        Instant::now(),
        GuardCommand::Ban {
            ip: banned.ip(),
            secs: None,
        },
    );
    g.bench_function("banned/discard", |b| {
        b.iter(|| {
            let now = Instant::now();
            for (_, p) in &pkts {
                let a = gd.admit_datagram(now, black_box(banned), Side::Outside, black_box(p));
                debug_assert_eq!(a, Admission::Drop);
                black_box(a);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, guard_admission);
criterion_main!(benches);
