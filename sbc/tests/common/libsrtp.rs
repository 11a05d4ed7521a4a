//! libsrtp as an independent SRTP peer for the integration tests (`tests/srtp.rs`,
//! `tests/ng_srtp.rs` include this file): `srtp/libsrtp_peer.py` (pylibsrtp) protects or unprotects
//! packets given in hex, one per line.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Run libsrtp in `suite` (its SDES name) with `key` (`protect` or `unprotect`) over `packets`
/// ("rtp"/"rtcp", bytes): one output line per packet, the result in hex or `error ...`.
pub(crate) fn libsrtp(
    suite: &str,
    key: &[u8],
    mode: &str,
    packets: &[(&str, Vec<u8>)],
) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/srtp/libsrtp_peer.py");
    let mut child = Command::new("python3")
        .args([script, suite, &hex(key), mode])
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
