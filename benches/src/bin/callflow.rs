//! `callflow N`: N calls through the B2BUA (after 6 s of simulated warm-up calls), for an
//! instruction-count profile that the noise of a shared machine cannot blur:
//!
//! ```text
//! valgrind --tool=callgrind target/release/callflow 20000
//! ```
//!
//! Two runs with different N give the steady-state instructions per call by difference.

use std::time::Duration;

use mimalloc::MiMalloc;

use benches::callflow::{Bench, STEP};

/// The SBC's allocator, so that allocation costs what it costs in the SBC.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut bench = Bench::new();
    for _ in 0..(Duration::from_secs(6).as_micros() / STEP.as_micros()) {
        bench.call();
    }
    bench.busy = Duration::ZERO;
    for _ in 0..n {
        bench.call();
    }
    println!(
        "{n} calls, {:.2} µs of SBC time per call",
        bench.busy.as_secs_f64() * 1e6 / n as f64
    );
}
