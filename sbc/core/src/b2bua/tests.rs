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
