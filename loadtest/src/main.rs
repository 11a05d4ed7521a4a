//! `loadtest`: replays recorded calls from `pcaps/` against a SIP target and reports CPS, answer ratio
//! and setup delay. Built with the load-tester issue; until then it only states so.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    eprintln!(
        "loadtest: not built yet; see the load-tester issue. Signalling load runs use sipp today."
    );
    std::process::exit(2);
}
