//! Measures the `rsip` crate (0.4) against the same RFC 4475 / RFC 5118 fixtures as `torture.rs`, to
//! support the decision recorded in `docs/decisions.md` ("SIP parser: own zero-copy parser vs rsip").
//!
//! rsip is judged at two levels, both binary (accepted vs refused, since rsip has no notion of a 400
//! reason or a 505/416):
//! - `parse`: `rsip::SipMessage::try_from(&[u8])` succeeds;
//! - `parse+typed`: also the mandatory headers (Via, From, To, Call-ID, CSeq) are found and convert to
//!   their typed form, which is what a stack relying on rsip would have to do before answering.
//!
//! This test does not fail because rsip is wrong; it prints every disagreement, and asserts that our
//! parser gets at least as many right as rsip at either level, and that rsip's counts are the recorded
//! ones (so a new rsip version that changes them is noticed and the decision revisited).

mod torture_fixtures;

use std::panic::{catch_unwind, AssertUnwindSafe};

use rsip::headers::ToTypedHeader;
use rsip::message::HeadersExt;
use torture_fixtures::{load, our_verdict};

/// rsip 0.4.0 on the 61 fixtures: (right at `parse`, right at `parse+typed`). Recorded from a run.
const RSIP_RECORDED: (usize, usize) = (RSIP_PARSE_RIGHT, RSIP_TYPED_RIGHT);
const RSIP_PARSE_RIGHT: usize = 31;
const RSIP_TYPED_RIGHT: usize = 30;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Accepted,
    Refused,
    Panicked,
}

fn rsip_parse(bytes: &[u8]) -> Outcome {
    match catch_unwind(|| rsip::SipMessage::try_from(bytes).is_ok()) {
        Ok(true) => Outcome::Accepted,
        Ok(false) => Outcome::Refused,
        Err(_) => Outcome::Panicked,
    }
}

fn rsip_parse_typed(bytes: &[u8]) -> Outcome {
    let run = AssertUnwindSafe(|| {
        let Ok(m) = rsip::SipMessage::try_from(bytes) else {
            return false;
        };
        m.via_header().is_ok_and(|h| h.typed().is_ok())
            && m.from_header().is_ok_and(|h| h.typed().is_ok())
            && m.to_header().is_ok_and(|h| h.typed().is_ok())
            && m.call_id_header().is_ok()
            && m.cseq_header().is_ok_and(|h| h.typed().is_ok())
    });
    match catch_unwind(run) {
        Ok(true) => Outcome::Accepted,
        Ok(false) => Outcome::Refused,
        Err(_) => Outcome::Panicked,
    }
}

#[test]
fn rsip_against_the_torture_fixtures() {
    // rsip's panics are counted as wrong answers; keep them out of the output
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let fixtures = load();
    let (mut ours, mut parse_right, mut typed_right) = (0, 0, 0);
    let mut lines = Vec::new();
    for f in &fixtures {
        let want_accept = f.expect.is_accept();
        let ok = |o: Outcome| match o {
            Outcome::Accepted => want_accept,
            Outcome::Refused => !want_accept,
            Outcome::Panicked => false,
        };
        let (our, _) = our_verdict(&f.bytes);
        let our_ok = our.is_accept() == want_accept;
        let p = rsip_parse(&f.bytes);
        let t = rsip_parse_typed(&f.bytes);
        ours += usize::from(our_ok);
        parse_right += usize::from(ok(p));
        typed_right += usize::from(ok(t));
        if !ok(p) || !ok(t) || !our_ok {
            lines.push(format!(
                "  {:<45} expect {:<7} ours {:<7} rsip parse {:<9?} parse+typed {:?}",
                f.file,
                if want_accept { "accept" } else { "refuse" },
                if our.is_accept() { "accept" } else { "refuse" },
                p,
                t
            ));
        }
    }
    std::panic::set_hook(hook);

    let n = fixtures.len();
    println!("RFC 4475 + RFC 5118 fixtures: {n}");
    println!("  sbc-sip            right: {ours}/{n}");
    println!("  rsip parse         right: {parse_right}/{n}");
    println!("  rsip parse+typed   right: {typed_right}/{n}");
    println!(
        "disagreements with the expected verdict:\n{}",
        lines.join("\n")
    );

    assert!(ours >= parse_right && ours >= typed_right);
    assert_eq!(
        ours, n,
        "our parser must get every fixture right (see torture.rs)"
    );
    assert_eq!(
        (parse_right, typed_right),
        RSIP_RECORDED,
        "rsip's conformance changed: update RSIP_RECORDED and docs/decisions.md"
    );
}
