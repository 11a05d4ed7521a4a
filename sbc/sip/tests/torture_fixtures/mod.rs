//! The RFC 4475 / RFC 5118 fixtures and their expected verdicts, read from `tests/data/verdicts.txt`.
//! Shared by the conformance driver (`torture.rs`) and the rsip measurement (`rsip_conformance.rs`).

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use sbc_sip::{message::looks_like_request, Message, ParseError, Verdict};

/// What the parser is expected to do with a fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Accept,
    Drop,
    Reply(u16, String),
}

impl Expect {
    pub(crate) fn is_accept(&self) -> bool {
        matches!(self, Self::Accept)
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accept => f.write_str("accept"),
            Self::Drop => f.write_str("drop"),
            Self::Reply(code, reason) => write!(f, "reply {code} {reason}"),
        }
    }
}

/// One manifest line with the fixture's bytes.
pub(crate) struct Fixture {
    pub(crate) file: String,
    pub(crate) expect: Expect,
    pub(crate) note: String,
    pub(crate) bytes: Vec<u8>,
}

pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn parse_expect(s: &str) -> Result<Expect, String> {
    let s = s.trim();
    match s {
        "accept" => return Ok(Expect::Accept),
        "drop" => return Ok(Expect::Drop),
        _ => {}
    }
    let rest = s
        .strip_prefix("reply ")
        .ok_or_else(|| format!("unknown verdict {s:?}"))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = code
        .parse()
        .map_err(|e| format!("bad code in {s:?}: {e}"))?;
    Ok(Expect::Reply(code, reason.trim().to_owned()))
}

/// Every fixture of the manifest, in manifest order. Panics on a malformed manifest or a missing file:
/// that is a broken test, not a parser finding.
pub(crate) fn load() -> Vec<Fixture> {
    let dir = data_dir();
    let manifest = std::fs::read_to_string(dir.join("verdicts.txt")).expect("verdicts.txt");
    let mut out = Vec::new();
    for (n, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(3, '|');
        let file = cols.next().unwrap_or_default().trim().to_owned();
        let expect = parse_expect(cols.next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("verdicts.txt line {}: {e}", n + 1));
        let note = cols.next().unwrap_or_default().trim().to_owned();
        assert!(
            note.contains("RFC "),
            "verdicts.txt line {}: cite the RFC section",
            n + 1
        );
        let bytes = std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        out.push(Fixture {
            file,
            expect,
            note,
            bytes,
        });
    }
    out
}

/// What our parser does with these bytes, in manifest terms.
pub(crate) fn our_verdict(bytes: &[u8]) -> (Expect, Option<ParseError>) {
    match Message::parse(bytes::Bytes::copy_from_slice(bytes)) {
        Ok(_) => (Expect::Accept, None),
        Err(e) => {
            let v = match e.verdict(looks_like_request(bytes)) {
                Verdict::Drop => Expect::Drop,
                Verdict::Reply(code, reason) => Expect::Reply(code, reason.to_owned()),
            };
            (v, Some(e))
        }
    }
}
