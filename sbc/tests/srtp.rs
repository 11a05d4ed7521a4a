//! SRTP interop with an independent implementation: libsrtp, driven through `pylibsrtp`
//! (`sbc/tests/srtp/libsrtp_peer.py`). libsrtp protects, the relay's SRTP contexts unprotect and
//! must give back the exact packets; and the reverse. Tampered and replayed packets are refused.
//! No sockets: this checks the cipher code the relay runs against libsrtp, suite by suite.
//! (On the wire through the binary: not yet; see docs/srtp.md.)

use std::io::Write;
use std::process::{Command, Stdio};

use media_plane::srtp::{Reject, SrtpContext, Suite};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Run libsrtp over `packets` ("rtp"/"rtcp", bytes); one output line per packet.
fn libsrtp(suite: Suite, key: &[u8], mode: &str, packets: &[(&str, Vec<u8>)]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/srtp/libsrtp_peer.py");
    let mut child = Command::new("python3")
        .args([script, suite.name(), &hex(key), mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut input = String::new();
    for (kind, p) in packets {
        input.push_str(&format!("{kind} {}\n", hex(p)));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pylibsrtp failed (is it installed? .ci/setup)"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend((0..160u32).map(|i| (i * 7 + u32::from(seq)) as u8));
    p
}

fn rtcp_sr() -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend((0..20u8).map(|i| i.wrapping_mul(13)));
    p
}

/// Sequence numbers across the wrap, so the rollover counter is exercised both ways.
fn stream() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<_> = (65530u16..=65535)
        .chain(0..6)
        .map(|s| ("rtp", rtp(s)))
        .collect();
    v.insert(3, ("rtcp", rtcp_sr()));
    v.push(("rtcp", rtcp_sr()));
    v
}

const SUITES: [Suite; 4] = [
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
    Suite::AeadAes128Gcm,
    Suite::AeadAes256Gcm,
];

fn key(suite: Suite) -> Vec<u8> {
    (0..suite.master_len() as u8)
        .map(|i| i.wrapping_mul(29) ^ 0x5a)
        .collect()
}

#[test]
fn libsrtp_protects_the_relay_unprotects_exactly() {
    for suite in SUITES {
        let packets = stream();
        let sealed = libsrtp(suite, &key(suite), "protect", &packets);
        assert_eq!(sealed.len(), packets.len());
        let mut rx: SrtpContext = SrtpContext::new(suite, &key(suite)).unwrap();
        for ((kind, plain), s) in packets.iter().zip(&sealed) {
            let wire = unhex(s);
            let mut buf = wire.clone();
            let n = if *kind == "rtp" {
                rx.unprotect_rtp(&mut buf, wire.len())
            } else {
                rx.unprotect_rtcp(&mut buf, wire.len())
            }
            .unwrap_or_else(|e| panic!("{suite:?} {kind}: {e:?}"));
            assert_eq!(&buf[..n], &plain[..], "{suite:?} {kind}");
            // The same packet again is a replay; a flipped bit fails authentication.
            let mut again = wire.clone();
            let mut flipped = wire.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            if *kind == "rtp" {
                assert_eq!(
                    rx.unprotect_rtp(&mut again, wire.len()),
                    Err(Reject::Replayed)
                );
                assert_eq!(
                    rx.unprotect_rtp(&mut flipped, wire.len()),
                    Err(Reject::Replayed)
                );
            } else {
                assert_eq!(
                    rx.unprotect_rtcp(&mut again, wire.len()),
                    Err(Reject::Replayed)
                );
            }
        }
    }
}

#[test]
fn the_relay_protects_libsrtp_unprotects_exactly() {
    for suite in SUITES {
        let packets = stream();
        let mut tx: SrtpContext = SrtpContext::new(suite, &key(suite)).unwrap();
        let mut sealed = Vec::new();
        for (kind, plain) in &packets {
            let mut buf = plain.clone();
            buf.resize(plain.len() + Suite::max_overhead(), 0);
            let n = if *kind == "rtp" {
                tx.protect_rtp(&mut buf, plain.len())
            } else {
                tx.protect_rtcp(&mut buf, plain.len())
            }
            .unwrap();
            buf.truncate(n);
            sealed.push((*kind, buf));
        }
        // One tampered copy of the first RTP packet, sent first: libsrtp must refuse it.
        let mut tampered = sealed[0].1.clone();
        tampered[20] ^= 0x40;
        let mut input = vec![("rtp", tampered)];
        input.extend(sealed.iter().cloned());
        let out = libsrtp(suite, &key(suite), "unprotect", &input);
        assert!(out[0].starts_with("error"), "{suite:?}: tampered accepted");
        for ((kind, plain), line) in packets.iter().zip(&out[1..]) {
            assert_eq!(unhex(line), *plain, "{suite:?} {kind}");
        }
    }
}
