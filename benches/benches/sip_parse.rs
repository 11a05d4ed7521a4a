//! SIP parse and serialize: `sbc-sip` against its floor (a bare header scan) and against rsip 0.4.
//!
//! Two messages, one criterion group each: a realistic INVITE with an SDP offer of eight codecs and the
//! 200 OK that answers it (`sbc/sip/tests/data/bench/`). Members:
//! - `baseline/header_scan`: finds each header line and its name/colon, nothing else (the floor);
//! - `sbc_sip/parse`: `Message::parse` (validation of Via, From, To, Call-ID, CSeq, ... included);
//! - `sbc_sip/parse_serialize`: parse, then `write_to` into a reused buffer;
//! - `rsip/parse_serialize`: `rsip::SipMessage::try_from` then conversion back to bytes.
//!
//! Run: `cargo bench -p benches --bench sip_parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sbc_sip::Message;

const INVITE: &[u8] = include_bytes!("../../sbc/sip/tests/data/bench/invite.sip");
const OK200: &[u8] = include_bytes!("../../sbc/sip/tests/data/bench/ok200.sip");

/// The floor: split the header section into lines and find each name and colon. Returns a checksum so
/// the work is not optimised away.
fn header_scan(msg: &[u8]) -> usize {
    let mut sum = 0usize;
    let mut pos = match memchr_nl(msg, 0) {
        Some(nl) => nl + 1,
        None => return 0,
    };
    while let Some(nl) = memchr_nl(msg, pos) {
        let line = &msg[pos..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            sum = sum.wrapping_add(colon).wrapping_add(line[0] as usize);
        }
        pos = nl + 1;
    }
    sum
}

fn memchr_nl(msg: &[u8], from: usize) -> Option<usize> {
    msg[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| i + from)
}

fn group(c: &mut Criterion, name: &str, msg: &'static [u8]) {
    let datagram = Bytes::from_static(msg);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("baseline/header_scan", |b| {
        b.iter(|| header_scan(black_box(msg)))
    });
    g.bench_function("sbc_sip/parse", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(datagram.clone())).unwrap();
            black_box(m.cseq().seq)
        })
    });
    let mut out = Vec::with_capacity(4096);
    g.bench_function("sbc_sip/parse_serialize", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(datagram.clone())).unwrap();
            out.clear();
            m.write_to(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("rsip/parse_serialize", |b| {
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(msg)).unwrap();
            let out: Vec<u8> = m.into();
            black_box(out.len())
        })
    });
    g.finish();
}

fn sip_parse(c: &mut Criterion) {
    group(c, "sip_invite", INVITE);
    group(c, "sip_200_ok", OK200);
}

criterion_group!(benches, sip_parse);
criterion_main!(benches);
