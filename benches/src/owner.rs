//! The hand-over look-up of a datagram on a shared socket, as a worker runs it: the light scan
//! (`sbc_sip::message::owner_key`), then `IdGen::other_owner` on the id found. Messages for it: the
//! bench data's 200 OK with a given top branch, a carrier's BYE with a given To tag.

use sbc_core::signalling::ids::{IdGen, IdKind, WorkerId};
use sbc_sip::message::{owner_key, OwnerKey};

const OK200: &str = include_str!("../../sbc/sip/tests/data/bench/ok200.sip");
/// The bench data's INVITE: a new call, no To tag.
pub const INVITE: &[u8] = include_bytes!("../../sbc/sip/tests/data/bench/invite.sip");
/// The secret of the ids made here.
pub const SECRET: [u8; 32] = [42; 32];
/// Workers of the process the look-up runs in.
pub const WORKERS: u16 = 8;

/// The 200 OK of the bench data with `branch` as its top Via's branch.
pub fn response(branch: &str) -> Vec<u8> {
    OK200
        .replace("z9hG4bK-524287-1---a94d3c8f0b2e7d61", branch)
        .into_bytes()
}

/// A carrier's BYE in a dialog whose To tag is `tag`.
pub fn bye(tag: &str) -> Vec<u8> {
    format!(
        "BYE sip:+14155550123@203.0.113.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK-carrier-77;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550123@carrier.example.net;user=phone>;tag=as7d0e21f4\r\n\
         To: \"Alice Liddell\" <sip:alice@sbc.example.com>;tag={tag}\r\n\
         Call-ID: 7c1e9b0a4d2f4e8a9b3c6d5e4f3a2b1c@198.51.100.23\r\n\
         CSeq: 103 BYE\r\n\
         User-Agent: ExampleCarrier/2.1\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The worker that looks up (worker 0 of [`WORKERS`]).
pub fn me() -> IdGen {
    IdGen::new(SECRET, WorkerId(0), 0)
}

/// The messages of one kind (`"200"`: responses by branch; `"bye"`: requests by To tag) whose id
/// is worker 0's own, worker 3's, and another secret's.
pub fn messages(which: &str) -> [Vec<u8>; 3] {
    let mut own = IdGen::new(SECRET, WorkerId(0), 99);
    let mut other = IdGen::new(SECRET, WorkerId(3), 99);
    let mut stranger = IdGen::new([7; 32], WorkerId(3), 99);
    if which == "bye" {
        [&mut own, &mut other, &mut stranger].map(|g| bye(g.generate(IdKind::Tag).as_str()))
    } else {
        [&mut own, &mut other, &mut stranger].map(|g| response(g.generate(IdKind::Branch).as_str()))
    }
}

/// The other worker that owns `raw`, as a worker's receive path finds it.
pub fn lookup(ids: &IdGen, raw: &[u8]) -> Option<WorkerId> {
    let (kind, id) = match owner_key(raw)? {
        OwnerKey::Branch(b) => (IdKind::Branch, b),
        OwnerKey::ToTag(t) => (IdKind::Tag, t),
    };
    ids.other_owner(kind, id, WORKERS)
}
