//! Runs the hand-over look-up N times, for counting instructions under valgrind (noise-free on a
//! shared machine, as `BENCHMARKS.md` explains):
//!
//! ```text
//! cargo build --release -p benches --bin owner_instructions
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/owner_instructions <200|bye|invite> <own|other|foreign|parse> 1000
//! ```
//! Instructions per message = (I refs at N=1000 − I refs at N=0) / 1000.

use std::hint::black_box;

use benches::owner::{lookup, me, messages, INVITE};
use bytes::Bytes;
use sbc_sip::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: owner_instructions <200|bye|invite> <own|other|foreign|parse> <n>";
    let (Some(which), Some(case), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let n: usize = n.parse().unwrap_or(0);
    let [own, other, foreign] = messages(which);
    let msg = match (which.as_str(), case.as_str()) {
        ("invite", _) => INVITE.to_vec(),
        (_, "own" | "parse") => own,
        (_, "other") => other,
        (_, "foreign") => foreign,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let me = me();
    let datagram = Bytes::from(msg.clone());
    for _ in 0..n {
        if case == "parse" {
            black_box(Message::parse(black_box(datagram.clone())).map(|m| m.cseq().seq)).ok();
        } else {
            black_box(lookup(&me, black_box(&msg)));
        }
    }
}
