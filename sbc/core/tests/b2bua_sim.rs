//! The B2BUA between a UAC on the outside and a UAS on the inside, each a transaction layer with a
//! small scripted TU, over an in-memory link that delivers by destination address, on a virtual clock.
//! Every scenario checks what each party saw, that nothing of one side reached the other, and that the
//! dialog table is empty at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_core::b2bua::{
    B2bua, B2buaConfig, CallEvent, CallRecord, EndReason, EndedBy, Origin, Outcome, Target,
};
use sbc_core::media::callmedia::{MediaAnchor, MediaSettings};
use sbc_core::media::testing::FakeMedia;
use sbc_core::media::NoRelay;
use sbc_core::signalling::ids::WorkerId;
use sbc_core::signalling::topology::{leaks, Side};
use sbc_sip::build;
use sbc_sip::transaction::{
    ClientTxId, Flow, ServerTxId, StrayKind, TransactionConfig, Transactions, TxEvent,
};
use sbc_sip::{HeaderName, Message, Method};

const UAC: &str = "198.51.100.10:5060";
const SBC_OUT: &str = "203.0.113.1:5060";
const SBC_IN: &str = "10.0.0.1:5060";
const UAS: &str = "10.0.0.2:5060";
const UAC_CALL_ID: &str = "a-call-1@uac.example";
const UAC_TAG: &str = "uactag1";
const UAS_TAG: &str = "uastag77";
const UAC_SDP: &str = "v=0\r\no=- 1 1 IN IP4 203.0.113.77\r\ns=-\r\nc=IN IP4 203.0.113.77\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const UAS_SDP: &str = "v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn origin(source: SocketAddr, side: Side) -> Origin {
    Origin {
        source,
        side,
        reliable: false,
        flow: Flow::default(),
    }
}

/// The router of the simulation: every call from the Outside goes to the UAS.
fn to_uas(_: &Message, from: Side) -> Option<Target> {
    (from == Side::Outside).then(|| Target {
        label: Some(Arc::from("pbx")),
        ..Target::udp(Side::Inside, addr(UAS), Flow::default())
    })
}

fn parse(text: String) -> Message {
    Message::parse(Bytes::from(text)).unwrap()
}

fn uri_of(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap().to_owned(),
    }
}

/// One message delivered by the link.
#[derive(Clone, Debug)]
struct Delivery {
    at: Duration,
    dest: SocketAddr,
    bytes: Bytes,
}

impl Delivery {
    fn line(&self) -> String {
        let s = String::from_utf8_lossy(&self.bytes);
        s.lines().next().unwrap_or_default().to_owned()
    }
}

/// A dialog as one of the user agents sees it.
#[derive(Clone, Debug, Default)]
struct UaDialog {
    call_id: String,
    local: String,
    remote: String,
    target: String,
    cseq: u32,
}

enum UasAction {
    Respond(u16, bool),
}

struct Sim {
    start: Instant,
    now: Instant,
    sbc: B2bua,
    uac: Transactions,
    uas: Transactions,
    queue: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Bytes)>,
    seq: u64,
    latency: Duration,
    log: Vec<Delivery>,
    /// UAC TU: ACK a 2xx to INVITE.
    uac_acks: bool,
    /// UAS TU: responses to a new INVITE, (delay, code, with SDP).
    uas_plan: Vec<(Duration, u16, bool)>,
    uas_actions: BTreeMap<(Instant, u64), UasAction>,
    uas_invite: Option<(ServerTxId, Message)>,
    uac_dialog: Option<UaDialog>,
    uas_dialog: Option<UaDialog>,
    uac_invite: Option<ClientTxId>,
    /// (status, CSeq method) of every response the UAC TU got.
    uac_responses: Vec<(u16, String)>,
    /// Methods of the requests the UAC TU got.
    uac_requests: Vec<String>,
    /// Every request the UAS TU got (ACK included).
    uas_requests: Vec<Message>,
    uas_responses: Vec<(u16, String)>,
    events: Vec<CallEvent>,
    branch: u64,
    /// The relay the SBC anchors media on; untouched unless a scenario attaches a media anchor
    /// (without one, SDP passes through).
    relay: FakeMedia,
}

impl Sim {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut B2buaConfig)) -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut config = B2buaConfig::new(addr(SBC_OUT), addr(SBC_IN), WorkerId(3), [7u8; 32]);
        config.seed = 42;
        tune(&mut config);
        Self {
            start: now,
            now,
            sbc: B2bua::new(config),
            uac: Transactions::new(TransactionConfig::default()),
            uas: Transactions::new(TransactionConfig::default()),
            queue: BTreeMap::new(),
            seq: 0,
            latency: Duration::from_millis(5),
            log: Vec::new(),
            uac_acks: true,
            uas_plan: vec![
                (Duration::ZERO, 180, false),
                (Duration::from_millis(500), 200, true),
            ],
            uas_actions: BTreeMap::new(),
            uas_invite: None,
            uac_dialog: None,
            uas_dialog: None,
            uac_invite: None,
            uac_responses: Vec::new(),
            uac_requests: Vec::new(),
            uas_requests: Vec::new(),
            uas_responses: Vec::new(),
            events: Vec::new(),
            branch: 0,
            relay: FakeMedia::new(30000, 30039),
        }
    }

    fn t(&self) -> Duration {
        self.now - self.start
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Bytes) {
        self.seq += 1;
        self.queue
            .insert((self.now + self.latency, self.seq), (to, from, bytes));
    }

    fn next_branch(&mut self, who: &str) -> String {
        self.branch += 1;
        format!("z9hG4bK{who}{}", self.branch)
    }

    /// Move every pending output to the link and every event to its TU, until quiet.
    fn drain(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.sbc.poll_transmit() {
                busy = true;
                let from = if t.dest == addr(UAC) { SBC_OUT } else { SBC_IN };
                self.send(addr(from), t.dest, t.bytes);
            }
            while let Some(t) = self.uac.poll_transmit() {
                busy = true;
                self.send(addr(UAC), t.dest, t.bytes);
            }
            while let Some(t) = self.uas.poll_transmit() {
                busy = true;
                self.send(addr(UAS), t.dest, t.bytes);
            }
            while let Some(e) = self.sbc.poll_event() {
                busy = true;
                self.events.push(e);
            }
            while let Some(e) = self.uac.poll_event() {
                busy = true;
                self.uac_tu(e);
            }
            while let Some(e) = self.uas.poll_event() {
                busy = true;
                self.uas_tu(e);
            }
            if !busy {
                break;
            }
        }
    }

    fn uac_tu(&mut self, e: TxEvent) {
        match e {
            TxEvent::Response { response, .. } => {
                let code = response.status().unwrap();
                let method = response.cseq().method.as_str().to_owned();
                self.uac_responses.push((code, method.clone()));
                if method == "INVITE" && (200..300).contains(&code) {
                    let d = self.uac_dialog.get_or_insert_with(|| UaDialog {
                        call_id: UAC_CALL_ID.to_owned(),
                        local: format!("\"Alice\" <sip:alice@{UAC}>;tag={UAC_TAG}"),
                        remote: response.header(HeaderName::To).unwrap().to_owned(),
                        target: uri_of(response.header(HeaderName::Contact).unwrap()),
                        cseq: response.cseq().seq,
                    });
                    d.remote = response.header(HeaderName::To).unwrap().to_owned();
                    if self.uac_acks {
                        let seq = response.cseq().seq;
                        let ack = self.uac_request("ACK", Some(seq), None);
                        self.send(addr(UAC), addr(SBC_OUT), ack.raw().clone());
                    }
                }
            }
            TxEvent::Request { tx, request, .. } => {
                self.uac_requests
                    .push(request.method().unwrap().as_str().to_owned());
                let mut out = Vec::new();
                build::response(&request, 200, "OK", None, &mut out).finish(None, b"");
                self.uac
                    .send_response(self.now, tx, Message::parse(Bytes::from(out)).unwrap())
                    .unwrap();
            }
            _ => {}
        }
    }

    fn uas_tu(&mut self, e: TxEvent) {
        match e {
            TxEvent::Request { tx, request, .. } => {
                self.uas_requests.push(request.clone());
                let method = request.method().unwrap().clone();
                if method == Method::Invite && request.to_tag().is_none() {
                    self.uas_dialog = Some(UaDialog {
                        call_id: request.call_id().to_owned(),
                        local: format!("{};tag={UAS_TAG}", request.header(HeaderName::To).unwrap()),
                        remote: request.header(HeaderName::From).unwrap().to_owned(),
                        target: uri_of(request.header(HeaderName::Contact).unwrap()),
                        cseq: 100,
                    });
                    self.uas_invite = Some((tx, request));
                    for (delay, code, sdp) in self.uas_plan.clone() {
                        self.seq += 1;
                        self.uas_actions
                            .insert((self.now + delay, self.seq), UasAction::Respond(code, sdp));
                    }
                } else {
                    let sdp = method == Method::Invite;
                    self.uas_respond(tx, &request, 200, sdp);
                }
            }
            TxEvent::Cancelled { invite, .. } => {
                let req = self.uas_invite.as_ref().unwrap().1.clone();
                self.uas_actions.clear();
                self.uas_respond(invite, &req, 487, false);
            }
            TxEvent::Stray {
                kind: StrayKind::Ack,
                message,
                ..
            } => self.uas_requests.push(message),
            TxEvent::Response { response, .. } => {
                self.uas_responses.push((
                    response.status().unwrap(),
                    response.cseq().method.as_str().to_owned(),
                ));
            }
            _ => {}
        }
    }

    fn uas_respond(&mut self, tx: ServerTxId, req: &Message, code: u16, sdp: bool) {
        let mut out = Vec::new();
        let mut w = build::response(
            req,
            code,
            build::reason_phrase(code),
            Some(UAS_TAG),
            &mut out,
        );
        if code < 300 {
            w.header("Contact", &format!("<sip:bob@{UAS}>"));
        }
        w.header("Server", "InsidePBX 10.0.0.2");
        w.header("X-Internal", "10.0.0.2");
        if sdp {
            w.finish(Some("application/sdp"), UAS_SDP.as_bytes());
        } else {
            w.finish(None, b"");
        }
        let _ = self
            .uas
            .send_response(self.now, tx, Message::parse(Bytes::from(out)).unwrap());
    }

    /// A request of the UAC in its dialog (ACK reuses `ack_seq`).
    fn uac_request(&mut self, method: &str, ack_seq: Option<u32>, body: Option<&str>) -> Message {
        let branch = self.next_branch("uac");
        let d = self.uac_dialog.as_mut().unwrap();
        let seq = match ack_seq {
            Some(s) => s,
            None => {
                d.cseq += 1;
                d.cseq
            }
        };
        let (ct, body) = match body {
            Some(b) => ("Content-Type: application/sdp\r\n", b),
            None => ("", ""),
        };
        parse(format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
             Contact: <sip:alice@{UAC}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            d.target,
            d.local,
            d.remote,
            d.call_id,
            body.len()
        ))
    }

    fn uas_request(&mut self, method: &str) -> Message {
        let branch = self.next_branch("uas");
        let d = self.uas_dialog.as_mut().unwrap();
        d.cseq += 1;
        parse(format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {UAS};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
            d.target, d.local, d.remote, d.call_id, d.cseq
        ))
    }

    fn invite(&self, max_forwards: u8) -> Message {
        parse(format!(
            "INVITE sip:bob@{SBC_OUT} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {UAC};branch=z9hG4bKuacinvite1\r\n\
             Max-Forwards: {max_forwards}\r\n\
             From: \"Alice\" <sip:alice@{UAC}>;tag={UAC_TAG}\r\n\
             To: <sip:bob@{SBC_OUT}>\r\n\
             Call-ID: {UAC_CALL_ID}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@{UAC}>\r\n\
             Subject: hello\r\n\
             X-Customer-Secret: {UAC}\r\n\
             User-Agent: AlicePhone 198.51.100.10\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{UAC_SDP}",
            UAC_SDP.len()
        ))
    }

    fn uac_invite(&mut self) {
        let inv = self.invite(70);
        let tx = self
            .uac
            .send_request(self.now, inv, addr(SBC_OUT), false)
            .unwrap();
        self.uac_invite = Some(tx);
        self.drain();
    }

    fn uac_send(&mut self, method: &str, body: Option<&str>) {
        let req = self.uac_request(method, None, body);
        self.uac
            .send_request(self.now, req, addr(SBC_OUT), false)
            .unwrap();
        self.drain();
    }

    fn uas_send(&mut self, method: &str) {
        let req = self.uas_request(method);
        self.uas
            .send_request(self.now, req, addr(SBC_IN), false)
            .unwrap();
        self.drain();
    }

    fn deliver(&mut self, dest: SocketAddr, from: SocketAddr, bytes: Bytes) {
        self.log.push(Delivery {
            at: self.t(),
            dest,
            bytes: bytes.clone(),
        });
        let msg = Message::parse(bytes).unwrap();
        if dest == addr(UAC) {
            self.uac.handle_message(self.now, msg, from, false);
        } else if dest == addr(UAS) {
            self.uas.handle_message(self.now, msg, from, false);
        } else if dest == addr(SBC_OUT) {
            self.sbc.handle_message(
                self.now,
                msg,
                origin(from, Side::Outside),
                &to_uas,
                &mut self.relay,
            );
        } else if dest == addr(SBC_IN) {
            self.sbc.handle_message(
                self.now,
                msg,
                origin(from, Side::Inside),
                &to_uas,
                &mut self.relay,
            );
        } else {
            panic!("no party at {dest}");
        }
    }

    /// Run the virtual clock for `d`.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drain();
            let next = [
                self.queue.keys().next().map(|k| k.0),
                self.uas_actions.keys().next().map(|k| k.0),
                self.sbc.poll_timeout(),
                self.uac.poll_timeout(),
                self.uas.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                break;
            };
            self.now = self.now.max(next);
            while let Some((&k, _)) = self.queue.iter().next() {
                if k.0 > self.now {
                    break;
                }
                let (dest, from, bytes) = self.queue.remove(&k).unwrap();
                self.deliver(dest, from, bytes);
                self.drain();
            }
            while let Some((&k, _)) = self.uas_actions.iter().next() {
                if k.0 > self.now {
                    break;
                }
                let UasAction::Respond(code, sdp) = self.uas_actions.remove(&k).unwrap();
                let (tx, req) = self.uas_invite.clone().unwrap();
                self.uas_respond(tx, &req, code, sdp);
                self.drain();
            }
            self.sbc.handle_timeout(self.now, &mut self.relay);
            self.uac.handle_timeout(self.now);
            self.uas.handle_timeout(self.now);
        }
        self.now = end;
        self.drain();
    }

    fn uas_methods(&self) -> Vec<String> {
        self.uas_requests
            .iter()
            .map(|m| m.method().unwrap().as_str().to_owned())
            .collect()
    }

    fn uac_codes(&self, method: &str) -> Vec<u16> {
        self.uac_responses
            .iter()
            .filter(|(_, m)| m == method)
            .map(|(c, _)| *c)
            .collect()
    }

    fn ended(&self) -> Vec<EndReason> {
        self.records().iter().map(|r| r.reason).collect()
    }

    /// The records of the calls that ended.
    fn records(&self) -> Vec<&CallRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended { record } => Some(&**record),
                _ => None,
            })
            .collect()
    }

    /// The first 200 the SBC sent to the UAC.
    fn first_200_to_uac(&self) -> Message {
        let ok = self
            .log
            .iter()
            .find(|d| d.dest == addr(UAC) && d.line().starts_with("SIP/2.0 200"))
            .unwrap();
        Message::parse(ok.bytes.clone()).unwrap()
    }

    /// The record of the one call of the scenario (it ended once).
    fn record(&self) -> &CallRecord {
        let records = self.records();
        assert_eq!(records.len(), 1, "one Ended per call");
        records[0]
    }

    /// A time of the scenario, from its start.
    fn at(&self, t: Instant) -> Duration {
        t - self.start
    }

    /// Nothing of leg B reached the UAC and nothing of leg A reached the UAS.
    fn assert_no_leaks(&self) {
        let b_call_id = self
            .uas_dialog
            .as_ref()
            .map(|d| d.call_id.clone())
            .unwrap_or_default();
        let sbc_b_tag = self
            .uas_invite
            .as_ref()
            .map(|(_, m)| m.from_tag().unwrap().to_owned())
            .unwrap_or_default();
        let sbc_a_tag = self
            .uac_dialog
            .as_ref()
            .map(|d| Message::parse(Bytes::from(format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=f\r\nTo: {}\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                d.remote
            ))).unwrap().to_tag().unwrap().to_owned())
            .unwrap_or_default();
        let inside = [
            "10.0.0.",
            b_call_id.as_str(),
            sbc_b_tag.as_str(),
            UAS_TAG,
            "InsidePBX",
        ];
        let outside = [
            "198.51.100.10",
            UAC_CALL_ID,
            UAC_TAG,
            sbc_a_tag.as_str(),
            "203.0.113.1:",
            "AlicePhone",
            "uacinvite",
        ];
        for d in &self.log {
            let found = if d.dest == addr(UAC) {
                leaks(&d.bytes, &inside)
            } else if d.dest == addr(UAS) {
                leaks(&d.bytes, &outside)
            } else {
                continue;
            };
            assert!(
                found.is_empty(),
                "leak of {found:?} to {} at {:?}:\n{}",
                d.dest,
                d.at,
                String::from_utf8_lossy(&d.bytes)
            );
        }
    }

    fn assert_clean(&mut self) {
        self.run(Duration::from_secs(40));
        assert_eq!(self.sbc.calls(), 0, "dialog table not empty");
        assert_eq!(self.sbc.transactions(), 0, "transactions left");
        // Every call that started ended exactly once.
        let started: Vec<_> = (self.events.iter())
            .filter_map(|e| match e {
                CallEvent::Started { call } => Some(*call),
                _ => None,
            })
            .collect();
        let ended: Vec<_> = self.records().iter().map(|r| r.call).collect();
        assert_eq!(started, ended, "one Ended per started call");
        self.assert_no_leaks();
    }

    fn delivered_to(&self, dest: &str) -> Vec<String> {
        self.log
            .iter()
            .filter(|d| d.dest == addr(dest))
            .map(Delivery::line)
            .collect()
    }
}

fn answered_call() -> Sim {
    let mut sim = Sim::new();
    sim.uac_invite();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.uac_codes("INVITE"), vec![180, 200]);
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK"]);
    assert_eq!(sim.sbc.calls(), 1);
    sim
}

#[test]
fn basic_call_bye_from_a() {
    let mut sim = answered_call();
    // The leg-B INVITE: fresh ids, CSeq 1, decremented Max-Forwards, SDP unchanged, policy applied.
    let inv = &sim.uas_invite.as_ref().unwrap().1;
    assert_eq!(inv.cseq().seq, 1);
    assert_eq!(inv.max_forwards(), Some(69));
    assert_eq!(inv.body(), UAC_SDP.as_bytes());
    assert_eq!(inv.header_by_name("Subject"), Some("hello"));
    assert!(inv.header_by_name("X-Customer-Secret").is_none());
    assert!(inv.header(HeaderName::UserAgent).is_none());
    assert_eq!(inv.request_uri(), Some("sip:bob@10.0.0.2:5060"));
    // The 200 on leg A carries the UAS's SDP and the SBC's outside Contact.
    let ok = sim.first_200_to_uac();
    assert_eq!(ok.body(), UAS_SDP.as_bytes());
    assert_eq!(
        ok.header(HeaderName::Contact),
        Some("<sip:203.0.113.1:5060>")
    );
    assert_eq!(ok.call_id(), UAC_CALL_ID);

    sim.uac_send("BYE", None);
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uac_codes("BYE"), vec![200]);
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK", "BYE"]);
    assert_eq!(sim.sbc.calls(), 0);
    assert!(matches!(sim.events[0], CallEvent::Started { .. }));
    assert!(matches!(sim.events[1], CallEvent::Answered { .. }));
    assert_eq!(sim.ended(), vec![EndReason::Bye(Side::Outside)]);
    // The record: parties, target, times (5 ms per hop) and outcome.
    let b_call_id = sim.uas_dialog.as_ref().unwrap().call_id.clone();
    let r = sim.record();
    assert_eq!(r.a_call_id, UAC_CALL_ID);
    assert_eq!(r.b_call_id, b_call_id);
    assert_eq!((r.caller.as_str(), r.dialled.as_str()), ("alice", "bob"));
    assert_eq!(r.callee, "bob");
    assert_eq!((r.target, r.target_side), (addr(UAS), Side::Inside));
    assert!(!r.trunk);
    assert_eq!(r.label.as_deref(), Some("pbx"));
    assert_eq!(sim.at(r.invited), Duration::from_millis(5));
    assert_eq!(
        r.ringing.map(|t| sim.at(t)),
        Some(Duration::from_millis(15))
    );
    assert_eq!(
        r.answered.map(|t| sim.at(t)),
        Some(Duration::from_millis(515))
    );
    // A's BYE left at 2 s; the call ends when leg B's BYE completes.
    assert_eq!(sim.at(r.ended), Duration::from_millis(2015));
    assert_eq!(r.outcome, Outcome::Answered);
    assert_eq!(r.reason, EndReason::Bye(Side::Outside));
    assert_eq!(r.ended_by, EndedBy::Caller);
    assert_eq!(r.failovers, 0);
    sim.assert_clean();
}

/// With media anchored, the record names the codec each party asked for and carries the relay's
/// final statistics of the call's stream, read before its ports were given back.
#[test]
fn the_record_of_an_anchored_call_has_its_codecs_and_media_stats() {
    let mut sim = Sim::new();
    sim.sbc.attach_media(MediaAnchor::new(MediaSettings {
        address: "203.0.113.1".parse().unwrap(),
        no_media_timeout: None,
    }));
    sim.uac_invite();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.uac_codes("INVITE"), vec![180, 200]);
    // The port the SBC gave the caller in its 200: RTP from the caller arrives there.
    let ok = sim.first_200_to_uac();
    let body = std::str::from_utf8(ok.body()).unwrap();
    let port: u16 = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let now = sim.now;
    let fake = &mut sim.relay;
    for _ in 0..3 {
        fake.receive(port, addr("203.0.113.77:4000"), 172, now);
    }
    assert_eq!(fake.pairs_in_use(), 2);
    sim.uac_send("BYE", None);
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.sbc.calls(), 0);
    assert_eq!(sim.relay.pairs_in_use(), 0, "ports given back");
    let r = sim.record();
    assert_eq!(r.caller_codec.as_deref(), Some("PCMU"));
    assert_eq!(r.callee_codec.as_deref(), Some("PCMU"));
    assert_eq!(r.media.len(), 1);
    let caller = r.media[0].a;
    assert_eq!((caller.packets, caller.bytes), (3, 3 * 172));
    assert_eq!(caller.rtp.learned, Some(addr("203.0.113.77:4000")));
    assert_eq!(r.media[0].b.packets, 0);
    sim.assert_clean();
}

#[test]
fn basic_call_bye_from_b() {
    let mut sim = answered_call();
    sim.uas_send("BYE");
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uas_responses, vec![(200, "BYE".to_owned())]);
    assert_eq!(sim.uac_requests, vec!["BYE"]);
    assert_eq!(sim.ended(), vec![EndReason::Bye(Side::Inside)]);
    assert_eq!(sim.record().ended_by, EndedBy::Callee);
    assert_eq!(sim.record().outcome, Outcome::Answered);
    sim.assert_clean();
}

#[test]
fn slow_leg_b_gets_the_caller_a_100_trying_after_200_ms() {
    let mut sim = Sim::new();
    sim.uas_plan = vec![(Duration::from_millis(700), 486, false)];
    sim.uac_invite();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.uac_codes("INVITE"), vec![100, 486]);
    assert_eq!(sim.sbc.calls(), 0);
}

#[test]
fn busy_from_b_is_relayed_and_the_call_is_gone() {
    let mut sim = Sim::new();
    sim.uas_plan = vec![(Duration::from_millis(100), 486, false)];
    sim.uac_invite();
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.uac_codes("INVITE"), vec![486]);
    assert_eq!(sim.sbc.calls(), 0);
    assert_eq!(sim.ended(), vec![EndReason::Rejected(486)]);
    let r = sim.record();
    assert_eq!(r.outcome, Outcome::Failed(486));
    assert_eq!(r.reason, EndReason::Rejected(486));
    assert_eq!(r.ended_by, EndedBy::Callee);
    assert_eq!((r.ringing, r.answered), (None, None));
    assert_eq!(sim.at(r.invited), Duration::from_millis(5));
    // Leg B refused 100 ms after the INVITE reached it; relayed at once.
    assert_eq!(sim.at(r.ended), Duration::from_millis(115));
    assert_eq!((r.caller.as_str(), r.callee.as_str()), ("alice", "bob"));
    // Both non-2xx finals were acknowledged by the transaction layers.
    assert_eq!(
        sim.delivered_to(UAS)
            .iter()
            .filter(|l| l.starts_with("ACK"))
            .count(),
        1
    );
    assert_eq!(
        sim.delivered_to(SBC_OUT)
            .iter()
            .filter(|l| l.starts_with("ACK"))
            .count(),
        1
    );
    sim.assert_clean();
}

#[test]
fn cancel_before_answer_gives_487_on_both_legs() {
    let mut sim = Sim::new();
    sim.uas_plan = vec![(Duration::ZERO, 180, false)];
    sim.uac_invite();
    sim.run(Duration::from_secs(1));
    let cancel = sim
        .uac
        .send_cancel(sim.now, sim.uac_invite.unwrap())
        .unwrap();
    let _ = cancel;
    sim.drain();
    sim.run(Duration::from_secs(1));
    assert!(sim
        .delivered_to(UAS)
        .iter()
        .any(|l| l.starts_with("CANCEL")));
    assert_eq!(sim.uac_codes("INVITE"), vec![180, 487]);
    assert_eq!(sim.uac_codes("CANCEL"), vec![200]);
    assert_eq!(sim.ended(), vec![EndReason::Cancelled]);
    let r = sim.record();
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert_eq!(r.reason, EndReason::Cancelled);
    assert_eq!(r.ended_by, EndedBy::Caller);
    assert_eq!(
        r.ringing.map(|t| sim.at(t)),
        Some(Duration::from_millis(15))
    );
    assert_eq!(r.answered, None);
    assert!(r.ended > r.ringing.unwrap());
    sim.assert_clean();
}

#[test]
fn reinvite_in_the_dialog_is_relayed_with_sdp() {
    let mut sim = answered_call();
    sim.uac_send("INVITE", Some(UAC_SDP));
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK", "INVITE", "ACK"]);
    let re = &sim.uas_requests[2];
    assert_eq!(re.body(), UAC_SDP.as_bytes());
    assert_eq!(re.cseq().seq, 2, "leg B's own CSeq space");
    assert_eq!(re.to_tag(), Some(UAS_TAG));
    assert_eq!(sim.uac_codes("INVITE"), vec![180, 200, 200]);
    assert_eq!(sim.uas_requests[3].cseq().seq, 2);
    sim.uac_send("BYE", None);
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.ended(), vec![EndReason::Bye(Side::Outside)]);
    sim.assert_clean();
}

#[test]
fn info_is_relayed_both_ways() {
    let mut sim = answered_call();
    sim.uac_send("INFO", Some("Signal=5\r\n"));
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK", "INFO"]);
    assert_eq!(sim.uas_requests[2].body(), b"Signal=5\r\n");
    assert_eq!(sim.uac_codes("INFO"), vec![200]);
    sim.uas_send("INFO");
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uac_requests, vec!["INFO"]);
    assert_eq!(sim.uas_responses, vec![(200, "INFO".to_owned())]);
    sim.uas_send("BYE");
    sim.run(Duration::from_secs(1));
    sim.assert_clean();
}

#[test]
fn no_ack_from_a_hangs_up_both_legs() {
    let mut sim = Sim::new();
    sim.uac_acks = false;
    sim.uac_invite();
    sim.run(Duration::from_secs(2));
    sim.run(Duration::from_secs(40));
    // The 2xx was retransmitted toward A, leg B was acknowledged and both legs got BYE.
    assert!(
        sim.uac_codes("INVITE")
            .iter()
            .filter(|c| **c == 200)
            .count()
            > 3
    );
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK", "BYE"]);
    assert_eq!(sim.uac_requests, vec!["BYE"]);
    assert_eq!(sim.ended(), vec![EndReason::NoAck]);
    let r = sim.record();
    assert_eq!(
        r.outcome,
        Outcome::Answered,
        "leg B answered; A never acknowledged"
    );
    assert_eq!(r.reason, EndReason::NoAck);
    assert_eq!(r.ended_by, EndedBy::Sbc);
    let answered = r.answered.unwrap();
    assert_eq!(sim.at(answered), Duration::from_millis(515));
    // The 2xx is retransmitted for 64 T1 (32 s) before both legs are hung up.
    assert!(r.ended - answered >= Duration::from_secs(32));
    sim.assert_clean();
}

#[test]
fn forged_leg_b_call_id_is_dropped() {
    let mut sim = answered_call();
    let before = sim.log.len();
    sim.uas_dialog.as_mut().unwrap().call_id = "forged-call-id".to_owned();
    sim.uas_send("BYE");
    sim.run(Duration::from_millis(100));
    assert_eq!(sim.sbc.stats().forged, 1);
    assert_eq!(
        sim.log.len(),
        before + 1,
        "only the forged BYE was delivered"
    );
    assert_eq!(sim.sbc.calls(), 1);
    sim.uac_send("BYE", None);
    sim.run(Duration::from_secs(1));
    sim.assert_clean();
}

#[test]
fn in_dialog_request_without_dialog_gets_481() {
    let mut sim = answered_call();
    sim.uac_dialog.as_mut().unwrap().call_id = "unknown@uac".to_owned();
    sim.uac_send("INFO", None);
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uac_codes("INFO"), vec![481]);
    sim.uac_dialog.as_mut().unwrap().call_id = UAC_CALL_ID.to_owned();
    sim.uac_send("BYE", None);
    sim.run(Duration::from_secs(1));
    sim.assert_clean();
}

#[test]
fn no_route_gets_404_and_max_forwards_zero_483() {
    let mut sim = Sim::new();
    let inv = sim.invite(70);
    let none = |_: &Message, _: Side| None;
    sim.sbc.handle_message(
        sim.now,
        inv,
        origin(addr(UAC), Side::Outside),
        &none,
        &mut NoRelay,
    );
    let t = sim.sbc.poll_transmit().unwrap();
    assert!(String::from_utf8_lossy(&t.bytes).starts_with("SIP/2.0 404"));
    let inv = sim.invite(0);
    let mut raw = String::from_utf8_lossy(inv.raw()).into_owned();
    raw = raw.replace("uacinvite1", "uacinvite2");
    sim.sbc.handle_message(
        sim.now,
        parse(raw),
        origin(addr(UAC), Side::Outside),
        &to_uas,
        &mut NoRelay,
    );
    let t = sim.sbc.poll_transmit().unwrap();
    assert!(String::from_utf8_lossy(&t.bytes).starts_with("SIP/2.0 483"));
    assert_eq!(sim.sbc.calls(), 0);
}

#[test]
fn full_table_gets_503() {
    let mut sim = Sim::with(|c| c.max_dialogs = 0);
    sim.uac_invite();
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.uac_codes("INVITE"), vec![503]);
    sim.assert_clean();
}

#[test]
fn unanswered_call_times_out_with_408() {
    let mut sim = Sim::with(|c| c.ringing_timeout = Duration::from_secs(10));
    sim.uas_plan = vec![(Duration::ZERO, 180, false)];
    sim.uac_invite();
    sim.run(Duration::from_secs(12));
    assert_eq!(sim.uac_codes("INVITE"), vec![180, 408]);
    assert!(sim
        .delivered_to(UAS)
        .iter()
        .any(|l| l.starts_with("CANCEL")));
    assert_eq!(sim.ended(), vec![EndReason::NoAnswer]);
    let r = sim.record();
    assert_eq!(r.outcome, Outcome::Failed(408));
    assert_eq!(r.ended_by, EndedBy::Sbc);
    sim.assert_clean();
}

#[test]
fn max_call_duration_hangs_up_both_legs() {
    let mut sim = Sim::with(|c| c.max_call_duration = Duration::from_secs(60));
    sim.uac_invite();
    sim.run(Duration::from_secs(70));
    assert_eq!(sim.uas_methods(), vec!["INVITE", "ACK", "BYE"]);
    assert_eq!(sim.uac_requests, vec!["BYE"]);
    assert_eq!(sim.ended(), vec![EndReason::MaxDuration]);
    sim.assert_clean();
}
