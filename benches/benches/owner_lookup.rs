//! The hand-over look-up every SIP datagram on a shared socket pays before it is handled: the light
//! scan of the top Via (responses) or the To header (requests) with `sbc_sip::message::owner_key`,
//! then `IdGen::other_owner` on the id found (`benches::owner`). Against `Message::parse` of the
//! same message, which the worker that handles it runs anyway.
//!
//! Members, per message:
//! - `scan`: `owner_key` alone;
//! - `lookup/own`: scan and look-up of an id of this worker (no MAC computed: handled here);
//! - `lookup/other`: scan and look-up of another worker's id (MAC checked: handed over);
//! - `lookup/foreign`: scan and look-up of a well-formed id of another secret (what a forger costs);
//! - `parse`: `Message::parse`, for scale.
//!
//! Run: `cargo bench -p benches --bench owner_lookup -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use benches::owner::{lookup, me, messages, INVITE};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sbc_core::signalling::ids::WorkerId;
use sbc_sip::message::owner_key;
use sbc_sip::Message;

fn owner_lookup(c: &mut Criterion) {
    let me = me();
    for (name, which) in [("owner_200_ok", "200"), ("owner_bye", "bye")] {
        let [own, other, foreign] = messages(which);
        assert_eq!(lookup(&me, &own), None);
        assert_eq!(lookup(&me, &other), Some(WorkerId(3)));
        assert_eq!(lookup(&me, &foreign), None);
        let mut g = c.benchmark_group(name);
        g.bench_function("scan", |b| b.iter(|| owner_key(black_box(&own))));
        g.bench_function("lookup/own", |b| b.iter(|| lookup(&me, black_box(&own))));
        g.bench_function("lookup/other", |b| {
            b.iter(|| lookup(&me, black_box(&other)))
        });
        g.bench_function("lookup/foreign", |b| {
            b.iter(|| lookup(&me, black_box(&foreign)))
        });
        let datagram = Bytes::from(own.clone());
        g.bench_function("parse", |b| {
            b.iter(|| Message::parse(black_box(datagram.clone())).map(|m| m.cseq().seq))
        });
        g.finish();
    }
    // A new call: the scan reads To, finds no tag, and the look-up ends there.
    assert_eq!(lookup(&me, INVITE), None);
    let mut g = c.benchmark_group("owner_invite");
    g.bench_function("lookup/none", |b| b.iter(|| lookup(&me, black_box(INVITE))));
    g.finish();
}

criterion_group!(benches, owner_lookup);
criterion_main!(benches);
