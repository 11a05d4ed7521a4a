//! Unit tests of the B2BUA.

use std::time::{Duration, Instant};

use super::record::{CallFacts, EndedLegs};
use super::*;

#[test]
fn contact_uri_is_extracted() {
    assert_eq!(
        uri_of("<sip:a@1.2.3.4:5060;transport=udp>;expires=3"),
        "sip:a@1.2.3.4:5060;transport=udp"
    );
    assert_eq!(uri_of("sip:a@1.2.3.4;expires=3"), "sip:a@1.2.3.4");
    assert_eq!(uri_of("\"A\" <sip:a@h>"), "sip:a@h");
}

#[test]
fn sides_are_opposite() {
    assert_eq!(other(Side::Inside), Side::Outside);
    assert_eq!(other(Side::Outside), Side::Inside);
}

fn facts(invited: Instant) -> CallFacts {
    CallFacts {
        caller: "alice".to_owned(),
        dialled: "0301234".to_owned(),
        callee: "+49301234".to_owned(),
        trunk: true,
        label: Some(Arc::from("carrier")),
        invited,
        ringing: None,
        answered: None,
        status_to_a: None,
        failovers: 2,
    }
}

fn legs(a_side: Side) -> EndedLegs {
    EndedLegs {
        a_call_id: "a@x".to_owned(),
        a_side,
        a_dest: "198.51.100.7:5062".parse().unwrap(),
        b_call_id: "b".to_owned(),
        target: "192.0.2.1:5060".parse().unwrap(),
        target_side: other(a_side),
    }
}

#[test]
fn record_names_outcome_and_who_ended_the_call() {
    #[allow(clippy::disallowed_methods)] // the one origin of test time
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(9);
    let record = |f: CallFacts, a_side, reason| f.into_record(CallId(7), legs(a_side), reason, end);
    // A call from the Inside hung up by its caller: BYE from the Inside is the caller's.
    let mut answered = facts(t0);
    answered.answered = Some(t0 + Duration::from_secs(2));
    answered.status_to_a = Some(200);
    let r = record(answered, Side::Inside, EndReason::Bye(Side::Inside));
    assert_eq!(
        (r.outcome, r.ended_by),
        (Outcome::Answered, EndedBy::Caller)
    );
    assert_eq!((r.call, r.failovers, r.trunk), (CallId(7), 2, true));
    assert_eq!(r.label.as_deref(), Some("carrier"));
    assert_eq!(
        (r.dialled.as_str(), r.callee.as_str()),
        ("0301234", "+49301234")
    );
    assert_eq!((r.target_side, r.ended), (Side::Outside, end));
    assert_eq!(
        (r.caller_addr, r.caller_side),
        ("198.51.100.7:5062".parse().unwrap(), Side::Inside)
    );
    // Timers and failed legs end calls on the SBC's side.
    for reason in [
        EndReason::MaxDuration,
        EndReason::NoMedia,
        EndReason::LegFailure(Side::Inside),
    ] {
        let mut f = facts(t0);
        f.answered = Some(t0);
        let r = record(f, Side::Outside, reason);
        assert_eq!((r.outcome, r.ended_by), (Outcome::Answered, EndedBy::Sbc));
    }
    // A trunk refusing the credentials: the caller got 403, the cause is the trunk's 407.
    let mut refused = facts(t0);
    refused.status_to_a = Some(403);
    let r = record(refused, Side::Outside, EndReason::Rejected(407));
    assert_eq!(
        (r.outcome, r.ended_by),
        (Outcome::Failed(403), EndedBy::Callee)
    );
    assert_eq!(r.reason, EndReason::Rejected(407));
}

/// The INVITE leg B gets for an INVITE with a P-Asserted-Identity from `source` (Outside), with
/// 198.51.100.0/24 a trusted trunk.
fn relayed_pai(source: &str) -> Option<String> {
    #[allow(clippy::disallowed_methods)] // the one origin of test time
    let now = Instant::now();
    let mut config = B2buaConfig::new(
        "203.0.113.1:5060".parse().unwrap(),
        "10.0.0.1:5060".parse().unwrap(),
        WorkerId(1),
        [5; 32],
    );
    config.trusted_sources = vec!["198.51.100.0/24".parse().unwrap()];
    let mut sbc = B2bua::new(config);
    let text = format!(
        "INVITE sip:200@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP {source};branch=z9hG4bKt1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+4930555@carrier.example>;tag=c1\r\n\
         To: <sip:200@203.0.113.1>\r\nCall-ID: trust-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:c@{source}>\r\nP-Asserted-Identity: <sip:+4930555@carrier.example>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let msg = Message::parse(Bytes::from(text)).unwrap();
    let from = Origin {
        source: source.parse().unwrap(),
        side: Side::Outside,
        reliable: false,
        flow: Flow::default(),
    };
    let pbx = |_: &Message, _: Side| {
        Some(Target::udp(
            Side::Inside,
            "10.0.0.2:5060".parse().unwrap(),
            Flow::default(),
        ))
    };
    sbc.handle_message(now, msg, from, &pbx, &mut crate::media::NoRelay);
    let invite = std::iter::from_fn(|| sbc.poll_transmit())
        .map(|t| Message::parse(t.bytes).unwrap())
        .find(|m| m.method() == Some(&Method::Invite))
        .unwrap();
    invite
        .header_by_name("P-Asserted-Identity")
        .map(str::to_owned)
}

#[test]
fn pai_passes_from_a_trusted_trunk_only() {
    assert_eq!(
        relayed_pai("198.51.100.7:5060").as_deref(),
        Some("<sip:+4930555@carrier.example>")
    );
    assert_eq!(relayed_pai("192.0.2.50:5060"), None);
}

/// The Contact and Via of the INVITE leg B gets toward the Outside, for a call from the PBX, with
/// the outside Contact's parameters `params`.
fn outside_contact_and_via(params: &'static str) -> (String, String) {
    #[allow(clippy::disallowed_methods)] // the one origin of test time
    let now = Instant::now();
    let mut config = B2buaConfig::new(
        "203.0.113.1:5061".parse().unwrap(),
        "10.0.0.1:5060".parse().unwrap(),
        WorkerId(1),
        [5; 32],
    );
    config.outside_contact_params = params;
    let mut sbc = B2bua::new(config);
    let text = "INVITE sip:0301234@10.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:200@10.0.0.2>;tag=p1\r\n\
         To: <sip:0301234@10.0.0.1>\r\nCall-ID: contact-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:200@10.0.0.2>\r\nContent-Length: 0\r\n\r\n";
    let msg = Message::parse(Bytes::from(text)).unwrap();
    let from = Origin {
        source: "10.0.0.2:5060".parse().unwrap(),
        side: Side::Inside,
        reliable: false,
        flow: Flow::default(),
    };
    let phone = |_: &Message, _: Side| {
        Some(Target::udp(
            Side::Outside,
            "198.51.100.9:5061".parse().unwrap(),
            Flow::default(),
        ))
    };
    sbc.handle_message(now, msg, from, &phone, &mut crate::media::NoRelay);
    let invite = std::iter::from_fn(|| sbc.poll_transmit())
        .map(|t| Message::parse(t.bytes).unwrap())
        .find(|m| m.method() == Some(&Method::Invite))
        .unwrap();
    let header = |name| invite.header(name).unwrap_or_default().to_owned();
    (
        header(sbc_sip::HeaderName::Contact),
        header(sbc_sip::HeaderName::Via),
    )
}

/// An outside on TLS only: the Contact names TLS (a UA sends its ACK and BYE there, not to UDP);
/// the Via keeps the bare address.
#[test]
fn the_outside_contact_carries_its_transport() {
    let (contact, via) = outside_contact_and_via(";transport=tls");
    assert_eq!(contact, "<sip:203.0.113.1:5061;transport=tls>");
    assert!(via.contains(" 203.0.113.1:5061;branch="), "{via}");
    let (contact, _) = outside_contact_and_via("");
    assert_eq!(contact, "<sip:203.0.113.1:5061>");
}
