//! Hostile input: every prefix of a realistic INVITE and of a 200 OK, and many byte-flipped variants, fed
//! to `Message::parse` under `catch_unwind`. A panic is a bug in the parser, never bad input; every panic
//! is collected and the test fails listing them all. Parsed messages must also keep their promises:
//! the mandatory accessors and `write_to` run on every message that parses, and the canonical output
//! parses again.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use sbc_sip::{message::looks_like_request, Message};

const INVITE: &[u8] = include_bytes!("data/bench/invite.sip");
const OK200: &[u8] = include_bytes!("data/bench/ok200.sip");

/// Parse, and on success exercise every accessor and the serializer.
fn exercise(bytes: &[u8]) -> Result<(), String> {
    match Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(m) => {
            let _ = (
                m.call_id(),
                m.cseq(),
                m.from_tag(),
                m.to_tag(),
                m.top_via().branch(),
            );
            let _ = (
                m.max_forwards(),
                m.body().len(),
                m.request_uri(),
                m.reason(),
            );
            let _ = m.vias().count() + m.headers().count();
            let mut out = Vec::new();
            m.write_to(&mut out);
            let again = Message::parse(Bytes::from(out))
                .map_err(|e| format!("canonical output does not parse again: {e:?}"))?;
            if again.body() != m.body() || again.call_id() != m.call_id() {
                return Err("canonical output changed the message".into());
            }
            Ok(())
        }
        Err(e) => {
            let _ = e.verdict(looks_like_request(bytes));
            Ok(())
        }
    }
}

fn run(name: &str, variants: impl Iterator<Item = (String, Vec<u8>)>) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, bytes) in variants {
        match catch_unwind(AssertUnwindSafe(|| exercise(&bytes))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{name} {what}: {e}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                failures.push(format!("{name} {what}: PANIC {msg}"));
            }
        }
    }
    failures
}

fn prefixes(msg: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    (0..=msg.len()).map(move |n| (format!("prefix {n}"), msg[..n].to_vec()))
}

/// At every position, replace the byte with each value that matters to the grammar (and a few that do
/// not), and also delete it and duplicate it.
fn flips(msg: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    const BYTES: &[u8] = b"\r\n \t:;,<>\"\\[]@=%?/0\x00\x7f\xff\xc3";
    (0..msg.len()).flat_map(move |i| {
        let mut v: Vec<(String, Vec<u8>)> = BYTES
            .iter()
            .map(|&b| {
                let mut m = msg.to_vec();
                m[i] = b;
                (format!("byte {i} := {b:#04x}"), m)
            })
            .collect();
        let mut del = msg.to_vec();
        del.remove(i);
        v.push((format!("delete {i}"), del));
        let mut dup = msg.to_vec();
        dup.insert(i, msg[i]);
        v.push((format!("duplicate {i}"), dup));
        v.into_iter()
    })
}

/// Deterministic pseudo-random multi-byte corruption (xorshift), so failures reproduce.
fn scrambles(msg: &[u8], count: usize) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |k| {
        let mut m = msg.to_vec();
        let edits = 1 + (next() % 8) as usize;
        for _ in 0..edits {
            let at = (next() as usize) % m.len();
            m[at] = next() as u8;
        }
        let cut = (next() as usize) % (m.len() + 1);
        m.truncate(cut.max(m.len() / 2));
        (format!("scramble {k}"), m)
    })
}

#[test]
fn no_panic_on_prefixes_flips_and_scrambles() {
    let mut failures = Vec::new();
    for (name, msg) in [("INVITE", INVITE), ("200 OK", OK200)] {
        assert!(exercise(msg).is_ok() && Message::parse(Bytes::from_static(msg)).is_ok());
        failures.extend(run(name, prefixes(msg)));
        failures.extend(run(name, flips(msg)));
        failures.extend(run(name, scrambles(msg, 20_000)));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_strict_prefix_of_the_header_section_is_refused() {
    // A datagram cut anywhere before the empty line is never taken for a complete message.
    let head_end = INVITE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let accepted: Vec<usize> = (0..head_end)
        .filter(|&n| Message::parse(Bytes::copy_from_slice(&INVITE[..n])).is_ok())
        .collect();
    assert!(accepted.is_empty(), "prefixes accepted: {accepted:?}");
    // A cut inside the body is a body shorter than Content-Length.
    for n in head_end..INVITE.len() {
        let e = Message::parse(Bytes::copy_from_slice(&INVITE[..n])).unwrap_err();
        assert_eq!(e, sbc_sip::ParseError::BodyTruncated, "prefix {n}");
    }
}
