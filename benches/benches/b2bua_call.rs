//! One whole call through the B2BUA, sans-IO: the CPU the SBC spends per call on its signalling,
//! without the kernel's share and without the noise of a load run.
//!
//! Each iteration is one call of the `loadtest/sip` scenario (INVITE with SDP, 180, 200 with SDP,
//! ACK, BYE, 200), the peers' messages shaped like SIPp's. The clock advances 250 µs per call (a
//! 4000 calls/s run) and every call is held 1 s, so the transaction and dialog tables hold what
//! they hold under that load, timers included. Only the SBC's work is timed: parsing what it
//! receives (as the worker does), `handle_message`, `handle_timeout`, `poll_timeout` and draining
//! what it sends; the simulated peers' work is not.
//!
//! Baseline, side by side: parsing the same six received messages (the least any stateful SIP
//! element does). `sbc / baseline` is the cost of a B2BUA call in parses.
//!
//! Run: `cargo bench -p benches --bench b2bua_call`

use std::hint::black_box;
use std::time::Duration;

use benches::callflow::{answer, in_dialog, invite, Bench, STEP, UAC};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mimalloc::MiMalloc;
use sbc_core::signalling::topology::Side;
use sbc_sip::Message;

/// The baseline: parse the six messages the SBC receives in a call.
/// The SBC's allocator, so that allocation costs what it costs in the SBC.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn parse_six(msgs: &[Bytes]) -> usize {
    msgs.iter()
        .map(|b| Message::parse(b.clone()).unwrap().raw().len())
        .sum()
}

fn b2bua_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("b2bua_call");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(10));
    // The six received messages of one call, for the baseline.
    let mut first = Bench::new();
    first.deliver(invite(1), UAC, Side::Outside);
    let out_inv = first.sent_starting("INVITE");
    let ok = answer(&out_inv, 200, true);
    let ok_msg = Message::parse(ok.clone()).unwrap();
    let six = vec![
        invite(1),
        answer(&out_inv, 180, false),
        ok,
        in_dialog(1, "ACK", 10, &ok_msg),
        in_dialog(1, "BYE", 11, &ok_msg),
        answer(&out_inv, 200, false),
    ];
    g.bench_function("baseline/parse_six_messages", |b| {
        b.iter(|| black_box(parse_six(black_box(&six))))
    });
    // One SBC for every sample, warmed with 6 s of calls so that its tables hold the steady state
    // (calls held 1 s, finished transactions lingering 5 s) before anything is measured.
    let mut bench = Bench::new();
    for _ in 0..(Duration::from_secs(6).as_micros() / STEP.as_micros()) {
        bench.call();
    }
    g.bench_function("sbc/call_at_4000cps", |b| {
        b.iter_custom(|iters| {
            bench.busy = Duration::ZERO;
            for _ in 0..iters {
                bench.call();
            }
            bench.busy
        })
    });
    g.finish();
}

criterion_group!(benches, b2bua_call);
criterion_main!(benches);
