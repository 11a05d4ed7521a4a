//! Heap allocations per parse and per parse+serialize, counted by a wrapping global allocator. This is a
//! regression test: the parse of an ordinary INVITE or 200 OK (up to `INLINE_HEADERS` header fields, a
//! known method, no folding) must not allocate, and serializing into a reused buffer must not either.
//! It also prints rsip's figures for `docs/decisions.md`.
//!
//! The counter is per thread: the test harness's own threads allocate at times (output capture, the
//! runner), and those allocations are not the parser's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use sbc_sip::Message;

struct Counting;

thread_local! {
    // A const-initialised Cell<usize> needs no allocation and no destructor, so counting from inside
    // the allocator cannot recurse.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // try_with: the thread-local may already be gone while a thread tears down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &[u8] = include_bytes!("data/bench/invite.sip");
const OK200: &[u8] = include_bytes!("data/bench/ok200.sip");

/// Average allocations per call of `f` over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up (lazy statics, buffer growth)
    let before = allocs();
    for _ in 0..n {
        f();
    }
    (allocs() - before) as f64 / n as f64
}

#[test]
fn allocations_per_message() {
    const N: usize = 1000;
    let mut report = Vec::new();
    for (name, msg) in [("INVITE", INVITE), ("200 OK", OK200)] {
        // The datagram arrives as Bytes owned by the driver; building it is not the parser's cost.
        let datagram = Bytes::from_static(msg);

        let parse = per_call(N, || {
            let m = Message::parse(datagram.clone()).unwrap();
            std::hint::black_box(m.cseq().seq);
        });
        let mut out = Vec::with_capacity(4096);
        let parse_serialize_reused = per_call(N, || {
            let m = Message::parse(datagram.clone()).unwrap();
            out.clear();
            m.write_to(&mut out);
            std::hint::black_box(out.len());
        });
        let parse_serialize_fresh = per_call(N, || {
            let m = Message::parse(datagram.clone()).unwrap();
            let mut out = Vec::new();
            m.write_to(&mut out);
            std::hint::black_box(out.len());
        });
        let rsip_parse = per_call(N, || {
            let m = rsip::SipMessage::try_from(msg).unwrap();
            std::hint::black_box(&m);
        });
        let rsip_parse_serialize = per_call(N, || {
            let m = rsip::SipMessage::try_from(msg).unwrap();
            let out: Vec<u8> = m.into();
            std::hint::black_box(out.len());
        });
        report.push(format!(
            "{name} ({} bytes): sbc-sip parse {parse}, parse+serialize {parse_serialize_reused} \
             (reused buffer) / {parse_serialize_fresh} (fresh Vec); rsip parse {rsip_parse}, \
             parse+serialize {rsip_parse_serialize}",
            msg.len()
        ));

        assert_eq!(parse, 0.0, "{name}: parse allocated");
        assert_eq!(
            parse_serialize_reused, 0.0,
            "{name}: serialize into a reused buffer allocated"
        );
        assert!(
            parse_serialize_fresh <= 1.0,
            "{name}: serialize into a fresh Vec: one reservation"
        );
    }

    // Folded header lines are the documented exception: one unfolded copy.
    let folded = Bytes::from(String::from_utf8_lossy(INVITE).replacen(
        "Max-Forwards: 70",
        "Max-Forwards:\r\n 70",
        1,
    ));
    let folded_parse = per_call(N, || {
        let m = Message::parse(folded.clone()).unwrap();
        std::hint::black_box(m.max_forwards());
    });
    report.push(format!("folded INVITE: sbc-sip parse {folded_parse}"));
    assert!(folded_parse <= 3.0, "folded parse: {folded_parse}");

    println!(
        "heap allocations per message (mean over {N}):\n  {}",
        report.join("\n  ")
    );
}
