//! The B2BUA's dialog edges, driven message by message: forks that answer after the call took
//! one, requests between the 2xx and the ACK, redirects, the CSeq of ACK and PRACK after a
//! fail-over, the first-response timer, the PBX's OPTIONS to a registered phone, and the drain
//! before a stop. Each test plays both peers by hand and reads what the SBC sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_core::b2bua::{B2bua, B2buaConfig, CallEvent, EndReason, Origin, Target};
use sbc_core::media::NoRelay;
use sbc_core::signalling::ids::WorkerId;
use sbc_core::signalling::topology::Side;
use sbc_sip::build;
use sbc_sip::transaction::Flow;
use sbc_sip::{HeaderName, Message};

const UAC: &str = "198.51.100.10:5060";
const SBC_OUT: &str = "203.0.113.1:5060";
const SBC_IN: &str = "10.0.0.1:5060";
const UAS: &str = "10.0.0.2:5060";
const UAS2: &str = "10.0.0.3:5060";
const PHONE: &str = "198.51.100.20:5062";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
}

/// Every call from the Outside goes to the UAS, with the second UAS as its alternate; a REGISTER
/// goes to the UAS (the registrar).
fn router(msg: &Message, from: Side) -> Option<Target> {
    let _ = msg;
    (from == Side::Outside).then(|| Target {
        alternates: vec![(addr(UAS2), false)],
        ..Target::udp(Side::Inside, addr(UAS), Flow::default())
    })
}

/// The SBC and what it sent, on a hand-driven clock.
struct Drive {
    sbc: B2bua,
    now: Instant,
    sent: Vec<(SocketAddr, Message)>,
    events: Vec<CallEvent>,
}

impl Drive {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)] // the one origin of test time
        let now = Instant::now();
        let config = B2buaConfig::new(addr(SBC_OUT), addr(SBC_IN), WorkerId(1), [9u8; 32]);
        Self {
            sbc: B2bua::new(config),
            now,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.sbc.poll_transmit() {
            self.sent.push((t.dest, Message::parse(t.bytes).unwrap()));
        }
        while let Some(e) = self.sbc.poll_event() {
            self.events.push(e);
        }
    }

    /// `msg` arrives from `source` (the side follows from the address).
    fn input(&mut self, msg: Message, source: &str) {
        let side = if source.starts_with("10.") {
            Side::Inside
        } else {
            Side::Outside
        };
        let from = Origin {
            source: addr(source),
            side,
            reliable: false,
            flow: Flow::default(),
        };
        self.sbc
            .handle_message(self.now, msg, from, &router, &mut NoRelay);
        self.collect();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.sbc.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.sbc.handle_timeout(self.now, &mut NoRelay);
            self.collect();
        }
        self.now = end;
        self.sbc.handle_timeout(self.now, &mut NoRelay);
        self.collect();
    }

    /// Take what was sent to `dest` so far.
    fn take(&mut self, dest: &str) -> Vec<Message> {
        let dest = addr(dest);
        let (to, rest) = self.sent.drain(..).partition(|(d, _)| *d == dest);
        self.sent = rest;
        to.into_iter().map(|(_, m)| m).collect()
    }

    /// The one request of `method` sent to `dest` (the others are left out).
    fn request(&mut self, dest: &str, method: &str) -> Message {
        let mut found: Vec<Message> = self
            .take(dest)
            .into_iter()
            .filter(|m| m.method().is_some_and(|x| x.as_str() == method))
            .collect();
        assert_eq!(found.len(), 1, "one {method} to {dest}");
        found.remove(0)
    }

    /// The statuses of the responses sent to `dest`.
    fn statuses(&mut self, dest: &str) -> Vec<u16> {
        self.take(dest)
            .iter()
            .filter_map(Message::status)
            .filter(|c| *c != 100)
            .collect()
    }

    /// The response with `code` the caller was sent (what else it was sent is left out).
    fn sent_caller(&mut self, code: u16) -> Message {
        self.take(UAC)
            .into_iter()
            .find(|m| m.status() == Some(code))
            .unwrap()
    }

    /// The caller's INVITE; returns leg B's INVITE as the UAS got it.
    fn call(&mut self) -> Message {
        self.input(caller_invite("bob", "a1", "atag", "a-call@uac"), UAC);
        self.request(UAS, "INVITE")
    }

    /// A call answered by the UAS and acknowledged by the caller; leg B's INVITE.
    fn answered_call(&mut self) -> Message {
        let invite = self.call();
        self.input(answer(&invite, 200, "b1", &[]), UAS);
        let ok = self.sent_caller(200);
        self.caller_sends(&ok, "ACK", 1, "");
        let _ = self.take(UAS);
        invite
    }

    /// Answer the BYE each side got (`bye`, who got it) with 200.
    fn answer_byes(&mut self, byes: [(Message, &str); 2]) {
        for (bye, who) in byes {
            let mut out = Vec::new();
            build::response(&bye, 200, "OK", None, &mut out).finish(None, b"");
            self.input(Message::parse(Bytes::from(out)).unwrap(), who);
        }
    }

    /// The caller's in-dialog request after the SBC's 2xx `ok` (ACK keeps the INVITE's CSeq).
    fn caller_sends(&mut self, ok: &Message, method: &str, cseq: u32, extra: &str) {
        let to = ok.header(HeaderName::To).unwrap();
        self.input(
            parse(&format!(
                "{method} sip:{SBC_OUT} SIP/2.0\n\
                 Via: SIP/2.0/UDP {UAC};branch=z9hG4bKa{method}{cseq}\n\
                 Max-Forwards: 70\n\
                 From: <sip:alice@{UAC}>;tag=atag\n\
                 To: {to}\n\
                 Call-ID: a-call@uac\n\
                 CSeq: {cseq} {method}\n\
                 {extra}Content-Length: 0\n\n"
            )),
            UAC,
        );
    }
}

/// A new INVITE of the caller to `user` (branch suffix, From tag, Call-ID).
fn caller_invite(user: &str, branch: &str, tag: &str, call_id: &str) -> Message {
    parse(&format!(
        "INVITE sip:{user}@{SBC_OUT} SIP/2.0\n\
         Via: SIP/2.0/UDP {UAC};branch=z9hG4bK{branch}\n\
         Max-Forwards: 70\n\
         From: <sip:alice@{UAC}>;tag={tag}\n\
         To: <sip:{user}@{SBC_OUT}>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:alice@{UAC}>\n\
         Supported: 100rel\n\
         Content-Length: 0\n\n"
    ))
}

/// A response of the UAS (from `who`) to `req` with its To tag `tag`.
fn answer(req: &Message, code: u16, tag: &str, extra: &[(&str, &str)]) -> Message {
    let mut out = Vec::new();
    let mut w = build::response(req, code, build::reason_phrase(code), Some(tag), &mut out);
    if code < 300 {
        w.header("Contact", &format!("<sip:{tag}@{UAS}>"));
    }
    for (n, v) in extra {
        w.header(n, v);
    }
    w.finish(None, b"");
    Message::parse(Bytes::from(out)).unwrap()
}

/// An in-dialog request of the UAS on leg B (fork `tag`).
fn from_b(invite: &Message, tag: &str, method: &str, cseq: u32) -> Message {
    parse(&format!(
        "{method} {} SIP/2.0\n\
         Via: SIP/2.0/UDP {UAS};branch=z9hG4bKb{tag}{method}{cseq}\n\
         Max-Forwards: 70\n\
         From: <sip:bob@{UAS}>;tag={tag}\n\
         To: {}\n\
         Call-ID: {}\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n",
        sbc_uri(invite),
        invite.header(HeaderName::From).unwrap(),
        invite.call_id()
    ))
}

/// The PBX's OPTIONS number `n` (CSeq `seq`) to the Contact `uri` the SBC registered for a phone.
fn pbx_options(uri: &str, n: u32, seq: u32) -> Message {
    parse(&format!(
        "OPTIONS {uri} SIP/2.0\n\
         Via: SIP/2.0/UDP {UAS};branch=z9hG4bKo{n}\n\
         Max-Forwards: 70\n\
         From: <sip:pbx@{UAS}>;tag=o{n}\n\
         To: <{uri}>\n\
         Call-ID: opt{n}@pbx\n\
         CSeq: {seq} OPTIONS\n\
         Content-Length: 0\n\n"
    ))
}

/// The SBC's Contact URI in `m`.
fn sbc_uri(m: &Message) -> String {
    let c = m.header(HeaderName::Contact).unwrap();
    c.trim_start_matches('<').trim_end_matches('>').to_owned()
}

#[test]
fn a_second_forks_2xx_is_acknowledged_and_ended_and_its_bye_does_not_end_the_call() {
    let mut d = Drive::new();
    let invite = d.call();
    d.input(answer(&invite, 180, "fork1", &[]), UAS);
    d.input(answer(&invite, 180, "fork2", &[]), UAS);
    d.input(answer(&invite, 200, "fork1", &[]), UAS);
    let ok = d.sent_caller(200);
    d.caller_sends(&ok, "ACK", 1, "");
    let ack = d.request(UAS, "ACK");
    assert_eq!(ack.to_tag(), Some("fork1"));

    // The second fork answers too: ACK and BYE in its own dialog, once.
    d.input(answer(&invite, 200, "fork2", &[]), UAS);
    let to_uas = d.take(UAS);
    let methods: Vec<_> = to_uas
        .iter()
        .map(|m| {
            (
                m.method().unwrap().as_str().to_owned(),
                m.to_tag().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        vec![
            ("ACK".to_owned(), "fork2".to_owned()),
            ("BYE".to_owned(), "fork2".to_owned())
        ]
    );
    assert_eq!(to_uas[0].request_uri(), Some(&*format!("sip:fork2@{UAS}")));
    assert_eq!(to_uas[0].cseq().seq, 1);
    assert_eq!(d.sbc.stats().forks_ended, 1);
    d.input(answer(&invite, 200, "fork2", &[]), UAS);
    let again: Vec<_> = d
        .take(UAS)
        .iter()
        .map(|m| m.method().unwrap().as_str().to_owned())
        .collect();
    assert_eq!(again, vec!["ACK"], "a retransmission gets the ACK only");

    // The losing fork's BYE (its own tag, the call's Call-ID) is refused; the call goes on.
    d.input(from_b(&invite, "fork2", "BYE", 1), UAS);
    assert_eq!(d.statuses(UAS), vec![481]);
    assert!(d.take(UAC).is_empty(), "nothing reaches the caller");
    assert_eq!(d.sbc.calls(), 1);

    // The answering fork's BYE ends it.
    d.input(from_b(&invite, "fork1", "BYE", 2), UAS);
    assert_eq!(d.statuses(UAS), vec![200]);
    let bye = d.request(UAC, "BYE");
    assert_eq!(bye.call_id(), "a-call@uac");
}

#[test]
fn requests_between_the_2xx_and_the_ack_are_relayed() {
    let mut d = Drive::new();
    let invite = d.call();
    d.input(answer(&invite, 200, "b1", &[]), UAS);
    let ok = d.sent_caller(200);
    // The callee sends INFO before the caller's ACK arrived: relayed, not 481.
    d.input(from_b(&invite, "b1", "INFO", 1), UAS);
    let info = d.request(UAC, "INFO");
    assert_eq!(info.call_id(), "a-call@uac");
    assert!(d.statuses(UAS).is_empty());
    // A re-INVITE in that window waits its turn (491).
    d.input(from_b(&invite, "b1", "INVITE", 2), UAS);
    assert_eq!(d.statuses(UAS), vec![491]);
    // The caller's UPDATE too is relayed.
    d.caller_sends(&ok, "UPDATE", 2, "");
    let update = d.request(UAS, "UPDATE");
    assert_eq!(update.call_id(), invite.call_id());
    d.caller_sends(&ok, "ACK", 1, "");
    assert_eq!(d.request(UAS, "ACK").cseq().seq, 1);
}

#[test]
fn a_redirect_is_relayed_with_its_contacts() {
    let mut d = Drive::new();
    let invite = d.call();
    let redirect = answer(
        &invite,
        302,
        "b1",
        &[
            ("Contact", "<sip:bob@198.51.100.99:5060>;q=0.5"),
            ("Contact", "<sip:bob-mobile@198.51.100.98>"),
        ],
    );
    d.input(redirect, UAS);
    let to_a = d.take(UAC);
    let moved = to_a.iter().find(|m| m.status() == Some(302)).unwrap();
    let contacts: Vec<_> = moved.header_values(HeaderName::Contact).collect();
    assert_eq!(
        contacts,
        vec![
            "<sip:bob@198.51.100.99:5060>;q=0.5",
            "<sip:bob-mobile@198.51.100.98>"
        ]
    );
}

#[test]
fn ack_and_prack_carry_the_cseq_of_the_invite_after_a_fail_over() {
    let mut d = Drive::new();
    let invite = d.call();
    assert_eq!(invite.cseq().seq, 1);
    d.input(answer(&invite, 503, "busy1", &[]), UAS);
    assert!(d.take(UAC).iter().all(|m| m.status() == Some(100)));
    let second = d.request(UAS2, "INVITE");
    let seq = second.cseq().seq;
    assert_eq!(seq, 2);
    // A reliable 183 from the second target; the caller's PRACK acknowledges it.
    let mut p183 = answer(&second, 183, "b2", &[("Require", "100rel"), ("RSeq", "1")]);
    d.input(p183.clone(), UAS2);
    let early = d.sent_caller(183);
    d.caller_sends(&early, "PRACK", 2, "RAck: 1 1 INVITE\r\n");
    let prack = d.request(UAS2, "PRACK");
    assert_eq!(prack.header_by_name("RAck"), Some("1 2 INVITE"));
    p183 = answer(&second, 200, "b2", &[]);
    d.input(p183, UAS2);
    let ok = d
        .take(UAC)
        .into_iter()
        .find(|m| m.status() == Some(200) && m.cseq().method.as_str() == "INVITE")
        .unwrap();
    d.caller_sends(&ok, "ACK", 1, "");
    let ack = d.request(UAS2, "ACK");
    assert_eq!(ack.cseq().seq, 2, "the ACK carries the INVITE's CSeq");
    assert!(d
        .events
        .contains(&CallEvent::TargetFailed { target: addr(UAS) }));
}

#[test]
fn a_silent_target_is_left_after_the_first_response_time() {
    let mut d = Drive::new();
    let invite = d.call();
    // Nothing from the first target: after 4 s (the default) the second gets the INVITE.
    d.advance(Duration::from_millis(3900));
    assert!(d.take(UAS2).is_empty());
    d.advance(Duration::from_millis(200));
    let second = d.request(UAS2, "INVITE");
    assert!(d
        .events
        .contains(&CallEvent::TargetFailed { target: addr(UAS) }));
    // The first target's INVITE is no longer retransmitted.
    let before = d.take(UAS).len();
    assert!(before <= 3, "{before}");
    d.advance(Duration::from_secs(2));
    assert!(d.take(UAS).is_empty());
    // The second answers at once: its ringing is not cut at 4 s.
    d.input(answer(&second, 180, "b2", &[]), UAS2);
    let _ = d.take(UAS2);
    d.advance(Duration::from_secs(10));
    assert!(d.take(UAS2).is_empty(), "no CANCEL, no retransmission");
    assert_eq!(d.statuses(UAC), vec![180]);
    assert_eq!(d.sbc.calls(), 1);
    assert_eq!(invite.cseq().seq, 1);
    assert_eq!(second.cseq().seq, 2);
}

#[test]
fn the_last_silent_target_ends_the_call_with_408_after_the_first_response_time() {
    let mut d = Drive::new();
    let _ = d.call();
    d.advance(Duration::from_millis(4100));
    let _ = d.request(UAS2, "INVITE");
    d.advance(Duration::from_millis(4100));
    assert_eq!(d.statuses(UAC), vec![408]);
    assert_eq!(d.sbc.calls(), 0);
}

#[test]
fn a_target_that_sends_100_keeps_the_call() {
    let mut d = Drive::new();
    let invite = d.call();
    d.input(answer(&invite, 100, "x", &[]), UAS);
    d.advance(Duration::from_secs(10));
    assert!(d.take(UAS2).is_empty());
    assert_eq!(d.sbc.calls(), 1);
}

#[test]
fn the_pbx_options_to_a_registered_phone_reaches_the_phone() {
    let mut d = Drive::new();
    d.input(
        parse(&format!(
            "REGISTER sip:{SBC_OUT} SIP/2.0\n\
             Via: SIP/2.0/UDP {PHONE};branch=z9hG4bKr1;rport\n\
             Max-Forwards: 70\n\
             From: <sip:alice@example.com>;tag=r1\n\
             To: <sip:alice@example.com>\n\
             Call-ID: reg1@phone\n\
             CSeq: 1 REGISTER\n\
             Contact: <sip:alice@{PHONE}>\n\
             Expires: 600\n\
             Content-Length: 0\n\n"
        )),
        PHONE,
    );
    let reg = d.request(UAS, "REGISTER");
    let token_uri = sbc_uri(&reg);
    let mut out = Vec::new();
    let mut w = build::response(&reg, 200, "OK", Some("reg"), &mut out);
    w.header("Contact", &format!("<{token_uri}>;expires=600"));
    w.finish(None, b"");
    d.input(Message::parse(Bytes::from(out)).unwrap(), UAS);
    assert_eq!(d.statuses(PHONE), vec![200]);

    d.input(pbx_options(&token_uri, 1, 7), UAS);
    assert!(d.statuses(UAS).is_empty(), "not answered by the SBC itself");
    let options = d.request(PHONE, "OPTIONS");
    assert_eq!(options.request_uri(), Some(&*format!("sip:alice@{PHONE}")));
    let mut out = Vec::new();
    let mut w = build::response(&options, 200, "OK", Some("ph"), &mut out);
    w.header("Allow", "INVITE, ACK, BYE, OPTIONS");
    w.finish(None, b"");
    d.input(Message::parse(Bytes::from(out)).unwrap(), PHONE);
    let to_pbx = d.take(UAS);
    assert_eq!(to_pbx.len(), 1);
    assert_eq!(to_pbx[0].status(), Some(200));
    assert_eq!(to_pbx[0].call_id(), "opt1@pbx");
    assert_eq!(to_pbx[0].cseq().seq, 7);

    // A silent phone: 408 to the PBX.
    d.input(pbx_options(&token_uri, 2, 8), UAS);
    d.advance(Duration::from_secs(33));
    assert_eq!(d.statuses(UAS), vec![408]);
}

#[test]
fn draining_refuses_new_calls_and_the_stop_ends_the_rest_on_both_legs() {
    let mut d = Drive::new();
    let invite = d.answered_call();
    d.sbc.set_draining(true);
    d.input(caller_invite("carol", "n1", "n1", "new-call@uac"), UAC);
    assert_eq!(d.statuses(UAC), vec![503]);
    assert!(d.take(UAS).is_empty());
    assert_eq!(d.sbc.stats().refused_draining, 1);

    d.sbc.end_all_calls(d.now, &mut NoRelay);
    d.collect();
    let bye_a = d.request(UAC, "BYE");
    let bye_b = d.request(UAS, "BYE");
    assert_eq!(bye_a.call_id(), "a-call@uac");
    assert_eq!(bye_b.call_id(), invite.call_id());
    d.answer_byes([(bye_a, UAC), (bye_b, UAS)]);
    assert_eq!(d.sbc.calls(), 0);
    assert_eq!(ended_reasons(&d), vec![EndReason::Shutdown]);
}

/// The reasons of the `Ended` events seen so far.
fn ended_reasons(d: &Drive) -> Vec<EndReason> {
    d.events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Ended { record } => Some(record.reason),
            _ => None,
        })
        .collect()
}

#[test]
fn the_operator_hangs_up_an_answered_call_with_bye_on_both_legs() {
    use sbc_core::b2bua::{CallFilter, CallState, HangUp};
    let mut d = Drive::new();
    let invite = d.answered_call();
    let calls = d.sbc.call_summaries(&CallFilter::default(), &NoRelay);
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.state, CallState::Confirmed);
    assert_eq!(
        (c.a_call_id.as_str(), c.b_call_id.as_str()),
        ("a-call@uac", invite.call_id())
    );
    assert_eq!((c.dialled.as_str(), c.target), ("bob", addr(UAS)));
    assert!(c.answered.is_some());
    assert_eq!(d.sbc.calls_by_target().get(&addr(UAS)), Some(&1));

    assert_eq!(d.sbc.hang_up(d.now, c.call, &mut NoRelay), HangUp::Bye);
    d.collect();
    let bye_a = d.request(UAC, "BYE");
    let bye_b = d.request(UAS, "BYE");
    assert_eq!(bye_b.call_id(), invite.call_id());
    assert!(
        ended_reasons(&d).is_empty(),
        "ends once the BYEs are answered"
    );
    // A second hang-up while the BYEs are out changes nothing.
    assert_eq!(
        d.sbc.hang_up(d.now, c.call, &mut NoRelay),
        HangUp::AlreadyEnding
    );
    d.answer_byes([(bye_a, UAC), (bye_b, UAS)]);
    assert_eq!(d.sbc.calls(), 0);
    assert_eq!(ended_reasons(&d), vec![EndReason::Admin]);
    assert_eq!(d.sbc.hang_up(d.now, c.call, &mut NoRelay), HangUp::NotFound);
}

#[test]
fn the_operator_hangs_up_a_ringing_call_with_cancel_and_487() {
    use sbc_core::b2bua::{CallFilter, CallState, HangUp};
    let mut d = Drive::new();
    let invite = d.call();
    d.input(answer(&invite, 180, "b1", &[]), UAS);
    let _ = d.take(UAC);
    let calls = d.sbc.call_summaries(&CallFilter::default(), &NoRelay);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].state, CallState::Ringing);
    assert!(calls[0].ringing.is_some());
    let only_confirmed = CallFilter {
        state: Some(CallState::Confirmed),
        ..CallFilter::default()
    };
    assert!(d.sbc.call_summaries(&only_confirmed, &NoRelay).is_empty());

    let id = calls[0].call;
    assert_eq!(d.sbc.hang_up(d.now, id, &mut NoRelay), HangUp::Cancel);
    d.collect();
    assert_eq!(d.statuses(UAC), vec![487]);
    let cancel = d.request(UAS, "CANCEL");
    assert_eq!(cancel.call_id(), invite.call_id());
    // Until leg B answers, the call is ending; a second hang-up changes nothing.
    let listed = d.sbc.call_summaries(&CallFilter::default(), &NoRelay);
    assert_eq!(listed[0].state, CallState::Ending);
    assert_eq!(
        d.sbc.hang_up(d.now, id, &mut NoRelay),
        HangUp::AlreadyEnding
    );
    assert!(d.take(UAS).is_empty());
    // Leg B answers the CANCEL and its INVITE with 487: the call ends, once, for the operator;
    // the caller gets nothing but its 487 again (unacknowledged, retransmitted).
    d.input(answer(&cancel, 200, "b1", &[]), UAS);
    d.input(answer(&invite, 487, "b1", &[]), UAS);
    assert_eq!(d.sbc.calls(), 0);
    d.advance(Duration::from_secs(40));
    assert!(d.statuses(UAC).iter().all(|c| *c == 487));
    assert_eq!(ended_reasons(&d), vec![EndReason::Admin]);
}

#[test]
fn the_operator_hangs_up_a_call_leg_b_has_not_answered_yet() {
    use sbc_core::b2bua::{CallFilter, HangUp};
    let mut d = Drive::new();
    let invite = d.call();
    let id = d.sbc.call_summaries(&CallFilter::default(), &NoRelay)[0].call;
    // No provisional answer from leg B yet: no CANCEL may go (RFC 3261 §9.1); the caller is
    // told at once.
    assert_eq!(d.sbc.hang_up(d.now, id, &mut NoRelay), HangUp::Cancel);
    d.collect();
    assert_eq!(d.statuses(UAC), vec![487]);
    assert!(d.take(UAS).is_empty());
    // Leg B rings: now the CANCEL goes; then its 2xx crosses the CANCEL: ACK and BYE on leg B.
    d.input(answer(&invite, 180, "b1", &[]), UAS);
    assert_eq!(d.request(UAS, "CANCEL").call_id(), invite.call_id());
    assert!(
        d.statuses(UAC).iter().all(|c| *c == 487),
        "no 180 after the 487"
    );
    d.input(answer(&invite, 200, "b1", &[]), UAS);
    let to_b = d.take(UAS);
    assert!(to_b
        .iter()
        .any(|m| m.method().is_some_and(|x| x.as_str() == "ACK")));
    let bye = to_b
        .into_iter()
        .find(|m| m.method().is_some_and(|x| x.as_str() == "BYE"))
        .unwrap();
    let mut out = Vec::new();
    build::response(&bye, 200, "OK", None, &mut out).finish(None, b"");
    d.input(Message::parse(Bytes::from(out)).unwrap(), UAS);
    assert_eq!(d.sbc.calls(), 0);
    assert_eq!(ended_reasons(&d), vec![EndReason::Admin]);
}
