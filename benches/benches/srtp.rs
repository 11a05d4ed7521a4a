//! SRTP cipher code and the relay with SRTP on one leg, each against its baseline in one group.
//!
//! Group `srtp_cipher` (one 172-byte RTP packet: 12-byte header, 160 bytes of G.711 payload,
//! AES_CM_128_HMAC_SHA1_80 unless named otherwise; per packet, in place unless named):
//!
//! - `protect/<candidate>` and `unprotect/<candidate>`, for the candidates
//!   `rustcrypto` (the backend in use: `aes` + `ctr` + `hmac` + `sha1`),
//!   `rustcrypto+ring_hmac` (`aes` + `ctr`, HMAC-SHA1 from `ring`), `aws_lc_rs` (its AES-CTR and HMAC-SHA1
//!   behind the same trait), `webrtc_srtp` (its own API, which allocates the output: its
//!   reference figure), and `aead_aes_128_gcm/ring` (AEAD_AES_128_GCM).
//! - `baseline/copy`: copying the packet into the work buffer, which every candidate also does.
//!
//! Group `srtp_relay` (per packet, through `MediaShard::on_packet_in`, sans-IO: the relay's own
//! work without the sockets):
//!
//! - `baseline/plain`: a 172-byte RTP packet relayed leg B → leg A with no stage.
//! - `rtp_to_srtp`: the same packet protected on its way to an SRTP leg.
//! - `srtp_to_rtp`: an SRTP packet from the SRTP leg unprotected on its way to the plain leg.
//!
//! `baseline/plain / rtp_to_srtp` is the relay's rate with SRTP on one leg against plain.
//!
//! Packets carry consecutive sequence numbers; the receiving context is renewed (untimed) every
//! 4,096 packets so the replay window never refuses one.
//!
//! Run: `cargo bench -p benches --bench srtp`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media_plane::srtp::{CmBackend, RingMac, RustCrypto, SrtpContext, Suite};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const CHUNK: usize = 4096;
const MASTER: [u8; 30] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
];

/// AES-CTR and HMAC-SHA1 from aws-lc-rs, behind the context's trait.
struct AwsLc {
    ctr: aws_lc_rs::cipher::EncryptingKey,
    mac: aws_lc_rs::hmac::Key,
}

impl CmBackend for AwsLc {
    fn new(enc_key: &[u8], auth_key: &[u8]) -> Option<Self> {
        use aws_lc_rs::cipher::{EncryptingKey, UnboundCipherKey, AES_128, AES_256};
        let alg = if enc_key.len() == 16 {
            &AES_128
        } else {
            &AES_256
        };
        Some(Self {
            ctr: EncryptingKey::ctr(UnboundCipherKey::new(alg, enc_key).ok()?).ok()?,
            mac: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                auth_key,
            ),
        })
    }

    fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        use aws_lc_rs::cipher::EncryptionContext;
        use aws_lc_rs::iv::FixedLength;
        let _ = self
            .ctr
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)));
    }

    fn hmac_sha1(&self, data: &[u8], trailer: &[u8], out: &mut [u8; 20]) {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.mac);
        ctx.update(data);
        ctx.update(trailer);
        out.copy_from_slice(ctx.sign().as_ref());
    }
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..160).map(|i| i as u8));
    p
}

fn master(suite: Suite) -> Vec<u8> {
    MASTER
        .iter()
        .cycle()
        .take(suite.master_len())
        .copied()
        .collect()
}

/// `CHUNK` packets protected with consecutive sequence numbers.
fn protected<B: CmBackend>(suite: Suite) -> Vec<Vec<u8>> {
    let mut tx: SrtpContext<B> = SrtpContext::new(suite, &master(suite)).unwrap();
    (0..CHUNK as u16)
        .map(|seq| {
            let p = rtp(seq);
            let mut buf = p.clone();
            buf.resize(p.len() + 16, 0);
            let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

fn protect_ours<B: CmBackend>(c: &mut Criterion, name: &str, suite: Suite) {
    let plain: Vec<Vec<u8>> = (0..CHUNK as u16).map(rtp).collect();
    let mut g = c.benchmark_group("srtp_cipher");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("protect/{name}"), |b| {
        let mut tx: SrtpContext<B> = SrtpContext::new(suite, &master(suite)).unwrap();
        let mut buf = [0u8; 2048];
        let mut i = 0;
        b.iter(|| {
            let p = &plain[i % CHUNK];
            i += 1;
            buf[..p.len()].copy_from_slice(p);
            black_box(tx.protect_rtp(&mut buf, p.len()).unwrap())
        });
    });
    let sealed = protected::<B>(suite);
    g.bench_function(format!("unprotect/{name}"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut buf = [0u8; 2048];
            let mut left = iters as usize;
            while left > 0 {
                let mut rx: SrtpContext<B> = SrtpContext::new(suite, &master(suite)).unwrap();
                let n = left.min(CHUNK);
                let t = Instant::now();
                for p in &sealed[..n] {
                    buf[..p.len()].copy_from_slice(p);
                    black_box(rx.unprotect_rtp(&mut buf, p.len()).unwrap());
                }
                spent += t.elapsed();
                left -= n;
            }
            spent
        });
    });
    g.finish();
}

fn cipher(c: &mut Criterion) {
    let cm = Suite::AesCm128HmacSha1_80;
    {
        let p = rtp(1);
        let mut g = c.benchmark_group("srtp_cipher");
        g.throughput(Throughput::Elements(1));
        let mut buf = [0u8; 2048];
        g.bench_function("baseline/copy", |b| {
            b.iter(|| {
                buf[..p.len()].copy_from_slice(black_box(&p));
                black_box(&buf);
            });
        });
        g.finish();
    }
    protect_ours::<RustCrypto>(c, "rustcrypto", cm);
    protect_ours::<RingMac>(c, "rustcrypto+ring_hmac", cm);
    protect_ours::<AwsLc>(c, "aws_lc_rs", cm);
    protect_ours::<RustCrypto>(c, "aead_aes_128_gcm/ring", Suite::AeadAes128Gcm);

    // webrtc-srtp: its own API, a new buffer per packet.
    use webrtc_srtp::context::Context;
    use webrtc_srtp::protection_profile::ProtectionProfile;
    let profile = ProtectionProfile::Aes128CmHmacSha1_80;
    let new_ctx = || Context::new(&MASTER[..16], &MASTER[16..], profile, None, None).unwrap();
    let plain: Vec<Vec<u8>> = (0..CHUNK as u16).map(rtp).collect();
    let mut g = c.benchmark_group("srtp_cipher");
    g.throughput(Throughput::Elements(1));
    g.bench_function("protect/webrtc_srtp", |b| {
        let mut tx = new_ctx();
        let mut i = 0;
        b.iter(|| {
            let p = &plain[i % CHUNK];
            i += 1;
            black_box(tx.encrypt_rtp(p).unwrap())
        });
    });
    let mut tx = new_ctx();
    let sealed: Vec<_> = plain.iter().map(|p| tx.encrypt_rtp(p).unwrap()).collect();
    g.bench_function("unprotect/webrtc_srtp", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let mut rx = new_ctx();
                let n = left.min(CHUNK);
                let t = Instant::now();
                for p in &sealed[..n] {
                    black_box(rx.decrypt_rtp(p).unwrap());
                }
                spent += t.elapsed();
                left -= n;
            }
            spent
        });
    });
    g.finish();
}

fn relay(c: &mut Criterion) {
    use media_plane::stage::{SrtpStage, Stage};
    use media_plane::{Action, MediaShard, ShardConfig, Side};
    use std::net::SocketAddr;
    let suite = Suite::AesCm128HmacSha1_80;
    let t = Instant::now();
    let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:5000".parse().unwrap();
    let setup = |srtp: bool| {
        let mut shard = MediaShard::new(ShardConfig::new(30000, 30099)).unwrap();
        let h = shard.allocate_session(t, 1).unwrap();
        shard.set_remote(h, 0, Side::A, a, t).unwrap();
        shard.set_remote(h, 0, Side::B, b, t).unwrap();
        if srtp {
            let ctx = || Some(SrtpContext::new(suite, &master(suite)).unwrap());
            let stage = |rx, tx| Stage::Srtp(Box::new(SrtpStage::new(rx, tx)));
            shard.set_stage(h, 0, Side::A, stage(ctx(), None)).unwrap();
            shard.set_stage(h, 0, Side::B, stage(None, ctx())).unwrap();
        }
        let s = &shard.streams(h).unwrap()[0];
        let ports = (s.leg(Side::A).ports().rtp(), s.leg(Side::B).ports().rtp());
        (shard, ports)
    };
    let plain: Vec<Vec<u8>> = (0..CHUNK as u16).map(rtp).collect();
    let mut g = c.benchmark_group("srtp_relay");
    g.throughput(Throughput::Elements(1));
    for (name, srtp) in [("baseline/plain", false), ("rtp_to_srtp", true)] {
        g.bench_function(name, |bench| {
            let (mut shard, (_, port_b)) = setup(srtp);
            let mut buf = [0u8; 2048];
            let mut i = 0;
            bench.iter(|| {
                let p = &plain[i % CHUNK];
                i += 1;
                buf[..p.len()].copy_from_slice(p);
                let act = shard.on_packet_in(port_b, b, &mut buf, p.len(), t);
                assert!(matches!(act, Action::Forward { .. }));
                black_box(act)
            });
        });
    }
    let sealed = protected::<RustCrypto>(suite);
    g.bench_function("srtp_to_rtp", |bench| {
        bench.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut buf = [0u8; 2048];
            let mut left = iters as usize;
            while left > 0 {
                let (mut shard, (port_a, _)) = setup(true);
                let n = left.min(CHUNK);
                let t0 = Instant::now();
                for p in &sealed[..n] {
                    buf[..p.len()].copy_from_slice(p);
                    let act = shard.on_packet_in(port_a, a, &mut buf, p.len(), t);
                    assert!(matches!(act, Action::Forward { .. }));
                    black_box(act);
                }
                spent += t0.elapsed();
                left -= n;
            }
            spent
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cipher, relay
}
criterion_main!(benches);
