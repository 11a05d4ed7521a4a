//! RFC 4475 and RFC 5118 torture messages against the parser: every fixture under `tests/data/` with the
//! verdict `tests/data/verdicts.txt` expects. Every mismatch is collected and reported together.

mod torture_fixtures;

use std::collections::BTreeSet;

use torture_fixtures::{load, our_verdict};

#[test]
fn every_torture_message_gets_its_verdict() {
    let fixtures = load();
    let mut mismatches = Vec::new();
    for f in &fixtures {
        let (got, err) = our_verdict(&f.bytes);
        if got != f.expect {
            mismatches.push(format!(
                "{}: expected `{}`, got `{}` ({:?})  [{}]",
                f.file, f.expect, got, err, f.note
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} torture messages mismatch:\n{}",
        mismatches.len(),
        fixtures.len(),
        mismatches.join("\n")
    );
}

#[test]
fn manifest_covers_every_fixture_file_and_the_whole_rfcs() {
    let fixtures = load();
    let listed: BTreeSet<_> = fixtures.iter().map(|f| f.file.clone()).collect();
    assert_eq!(listed.len(), fixtures.len(), "a fixture is listed twice");
    let mut on_disk = BTreeSet::new();
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(torture_fixtures::data_dir().join(sub)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            on_disk.insert(format!("{sub}/{name}"));
        }
    }
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "fixtures without a verdict: {unlisted:?}"
    );
    // RFC 4475 §3 has 49 messages (13 + 19 + 1 + 15 + 1), RFC 5118 §4 has 12.
    let count = |p: &str| fixtures.iter().filter(|f| f.file.starts_with(p)).count();
    assert_eq!(count("rfc4475/"), 49);
    assert_eq!(count("rfc5118/"), 12);
}

#[test]
fn fixtures_are_wire_bytes() {
    // CRLF line ends survive checkout (see tests/data/.gitattributes)
    for f in load() {
        let head_end = f
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{}: no CRLF CRLF", f.file));
        let head = &f.bytes[..head_end];
        let bare_lf = head
            .iter()
            .enumerate()
            .any(|(i, b)| *b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
        assert!(!bare_lf, "{}: bare LF in the header section", f.file);
    }
}

#[test]
fn accepted_messages_expose_what_the_rfcs_point_at() {
    use sbc_sip::uri::{Host, Scheme};
    use sbc_sip::{HeaderName, Message};
    let get = |name: &str| {
        let f = load().into_iter().find(|f| f.file.ends_with(name)).unwrap();
        Message::parse(bytes::Bytes::from(f.bytes)).unwrap()
    };

    let m = get("3.1.1.1-wsinv.sip");
    assert_eq!(m.call_id(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.cseq().seq, 9);
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(m.from_tag(), Some("98asjd8"));
    assert_eq!(m.from().display, Some(r#""J Rosenberg \\\"""#));
    assert_eq!(m.top_via().branch(), Some("390skdjuw"));
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.header(HeaderName::Subject), Some(""));
    assert_eq!(
        m.header_by_name("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.body().len(), 150);

    let m = get("3.1.1.8-dblreq.sip");
    assert_eq!(m.method().unwrap().as_str(), "REGISTER");
    assert!(m.body().is_empty());

    let m = get("3.1.1.13-noreason.sip");
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));

    let m = get("3.3.4-unksm2.sip");
    assert_eq!(m.to().uri.scheme, Scheme::Other);

    let m = get("3.3.12-cparam01.sip");
    let c = sbc_sip::header::NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.params.get("unknownparam"), Some(None));
    assert_eq!(c.uri.params.raw, "");
    let m = get("3.3.13-cparam02.sip");
    let c = sbc_sip::header::NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.uri.params.get("unknownparam"), Some(None));
    assert_eq!(c.params.raw, "");

    let m = get("4.3-port-ambiguous.sip");
    let u = sbc_sip::uri::Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        (u.host, u.port),
        (Host::V6("2001:db8::10:5070".parse().unwrap()), None)
    );
    let m = get("4.4-port-unambiguous.sip");
    let u = sbc_sip::uri::Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        (u.host, u.port),
        (Host::V6("2001:db8::10".parse().unwrap()), Some(5070))
    );
    let m = get("4.5-via-received-param-no-delim.sip");
    assert_eq!(m.top_via().received(), Some("2001:db8::9:255"));
    assert_eq!(m.top_via().branch(), Some("z9hG4bKas3"));
    let m = get("4.9-ipv4-mapped-ipv6.sip");
    assert_eq!(
        m.top_via().host,
        Host::V6("::ffff:192.0.2.10".parse().unwrap())
    );
    assert_eq!(m.top_via().port, Some(19823));
}
