//! Runs one parse workload N times, for counting instructions under valgrind (noise-free on a shared
//! machine, as `BENCHMARKS.md` explains):
//!
//! ```text
//! cargo build --release -p sbc-sip --example parse_instructions
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/parse_instructions sbc_parse invite 1000
//! ```
//! Instructions per message = (I refs at N=1000 − I refs at N=0) / 1000.

use std::hint::black_box;

use bytes::Bytes;
use sbc_sip::Message;

const INVITE: &[u8] = include_bytes!("../tests/data/bench/invite.sip");
const OK200: &[u8] = include_bytes!("../tests/data/bench/ok200.sip");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: parse_instructions <sbc_parse|sbc_parse_serialize|rsip_parse|rsip_parse_serialize> <invite|ok200> <n>";
    let (Some(work), Some(which), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let msg = if which == "invite" { INVITE } else { OK200 };
    let n: usize = n.parse().unwrap_or(0);
    let datagram = Bytes::from_static(msg);
    let mut out = Vec::with_capacity(4096);
    for _ in 0..n {
        match work.as_str() {
            "sbc_parse" => {
                let m = Message::parse(black_box(datagram.clone())).ok();
                black_box(m.map(|m| m.cseq().seq));
            }
            "sbc_parse_serialize" => {
                if let Ok(m) = Message::parse(black_box(datagram.clone())) {
                    out.clear();
                    m.write_to(&mut out);
                    black_box(out.len());
                }
            }
            "rsip_parse" => {
                black_box(rsip::SipMessage::try_from(black_box(msg)).ok());
            }
            "rsip_parse_serialize" => {
                if let Ok(m) = rsip::SipMessage::try_from(black_box(msg)) {
                    let v: Vec<u8> = m.into();
                    black_box(v.len());
                }
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    }
}
