//! Two transaction layers (UAC and UAS) over an in-memory link with loss, duplication and reordering,
//! on a virtual clock. Every RFC 3261 / RFC 6026 timer is observed through what goes on the wire or
//! what the TU is told.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::message::Method;
use sbc_sip::transaction::{
    ClientTxId, ServerTxId, TransactionConfig, Transactions, TxEvent, TxId,
};
use sbc_sip::Message;

/// xorshift64*: deterministic, seeded, good enough for loss decisions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Uac,
    Uas,
}

/// The link: per-datagram loss, duplication, and a random extra delay that reorders.
struct Link {
    rng: Rng,
    loss: f64,
    dup: f64,
    latency: Duration,
    jitter_ms: u64,
    /// Drop datagrams whose first line contains this text (targeted loss).
    drop_matching: Vec<&'static str>,
    queue: BTreeMap<(Instant, u64), (Side, Bytes)>,
    seq: u64,
}

impl Link {
    fn send(&mut self, now: Instant, to: Side, bytes: Bytes) {
        let line = first_line(&bytes);
        if self.drop_matching.iter().any(|m| line.contains(m)) {
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(self.loss) {
                continue;
            }
            let extra = Duration::from_millis(self.rng.below(self.jitter_ms + 1));
            self.seq += 1;
            self.queue
                .insert((now + self.latency + extra, self.seq), (to, bytes.clone()));
        }
    }
    fn next_delivery(&self) -> Option<Instant> {
        self.queue.keys().next().map(|k| k.0)
    }
}

fn first_line(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == b'\r').unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What the UAS TU does with a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Nothing at all.
    Never,
    /// A final response after a delay, optionally preceded by 180 (INVITE) / 100 (non-INVITE).
    Final {
        provisional: bool,
        code: u16,
        after: Duration,
    },
}

#[derive(Debug, Clone)]
struct Record {
    at: Duration,
    side: Side,
    line: String,
}

enum Action {
    Respond(ServerTxId, u16),
    Cancel(ClientTxId),
}

struct Sim {
    start: Instant,
    now: Instant,
    uac: Transactions,
    uas: Transactions,
    link: Link,
    reliable: bool,
    answer: Answer,
    /// UAC TU: CANCEL an INVITE still without final response after this long.
    cancel_after: Option<Duration>,
    /// UAS TU: answer 487 to a CANCELled INVITE.
    tu_actions: BTreeMap<(Instant, u64), Action>,
    action_seq: u64,
    requests: BTreeMap<ServerTxId, Message>,
    /// Wire log of what each side transmitted.
    sent: Vec<Record>,
    /// TU log of events: (time, side, event description).
    events: Vec<(Duration, Side, String)>,
    uac_finals: BTreeMap<ClientTxId, u16>,
    uac_timeouts: Vec<ClientTxId>,
    invites: Vec<ClientTxId>,
}

const UAC_ADDR: &str = "10.0.0.1:5060";
const UAS_ADDR: &str = "10.0.0.2:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(method: &str, branch: &str, seq: u32) -> Message {
    let text = format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@10.0.0.1>;tag=a1\r\n\
         To: <sip:bob@10.0.0.2>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: {seq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text)).unwrap()
}

fn response(req: &Message, code: u16) -> Message {
    let mut out = Vec::new();
    build::response(req, code, build::reason_phrase(code), Some("b1"), &mut out).finish(None, b"");
    Message::parse(Bytes::from(out)).unwrap()
}

impl Sim {
    fn new(seed: u64) -> Self {
        // The epoch of the virtual clock: the only clock read; everything after is simulated.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Self {
            start: now,
            now,
            uac: Transactions::new(TransactionConfig::default()),
            uas: Transactions::new(TransactionConfig::default()),
            link: Link {
                rng: Rng::new(seed),
                loss: 0.0,
                dup: 0.0,
                latency: Duration::from_millis(10),
                jitter_ms: 0,
                drop_matching: Vec::new(),
                queue: BTreeMap::new(),
                seq: 0,
            },
            reliable: false,
            answer: Answer::Final {
                provisional: false,
                code: 200,
                after: Duration::ZERO,
            },
            cancel_after: None,
            tu_actions: BTreeMap::new(),
            action_seq: 0,
            requests: BTreeMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
            uac_finals: BTreeMap::new(),
            uac_timeouts: Vec::new(),
            invites: Vec::new(),
        }
    }

    fn t(&self) -> Duration {
        self.now - self.start
    }

    fn schedule(&mut self, after: Duration, a: Action) {
        self.action_seq += 1;
        self.tu_actions
            .insert((self.now + after, self.action_seq), a);
    }

    fn send(&mut self, method: &str, branch: &str) -> ClientTxId {
        let req = request(method, branch, 1);
        let id = self
            .uac
            .send_request(self.now, req, addr(UAS_ADDR), self.reliable)
            .unwrap();
        if method == "INVITE" {
            self.invites.push(id);
            if let Some(d) = self.cancel_after {
                self.schedule(d, Action::Cancel(id));
            }
        }
        self.flush();
        id
    }

    /// Drain both layers: transmissions onto the link, events into the TUs.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(tr) = self.uac.poll_transmit() {
                progressed = true;
                assert_eq!(tr.dest, addr(UAS_ADDR));
                self.sent.push(Record {
                    at: self.t(),
                    side: Side::Uac,
                    line: first_line(&tr.bytes),
                });
                self.link.send(self.now, Side::Uas, tr.bytes);
            }
            while let Some(tr) = self.uas.poll_transmit() {
                progressed = true;
                assert_eq!(tr.dest, addr(UAC_ADDR));
                self.sent.push(Record {
                    at: self.t(),
                    side: Side::Uas,
                    line: first_line(&tr.bytes),
                });
                self.link.send(self.now, Side::Uac, tr.bytes);
            }
            while let Some(ev) = self.uac.poll_event() {
                progressed = true;
                self.uac_tu(ev);
            }
            while let Some(ev) = self.uas.poll_event() {
                progressed = true;
                self.uas_tu(ev);
            }
            if !progressed {
                break;
            }
        }
    }

    fn uac_tu(&mut self, ev: TxEvent) {
        let t = self.t();
        match &ev {
            TxEvent::Response { tx, response } => {
                let code = response.status().unwrap();
                if code >= 200 {
                    self.uac_finals.entry(*tx).or_insert(code);
                }
                if (200..300).contains(&code) && response.cseq().method == Method::Invite {
                    // ACK for 2xx is end to end, sent by the TU outside any transaction.
                    let ack = request("ACK", &format!("ack{}", tx.0), 1);
                    self.sent.push(Record {
                        at: t,
                        side: Side::Uac,
                        line: first_line(ack.raw()),
                    });
                    self.link.send(self.now, Side::Uas, ack.raw().clone());
                }
            }
            TxEvent::Timeout {
                tx: TxId::Client(c),
                ..
            } => self.uac_timeouts.push(*c),
            _ => {}
        }
        self.events.push((t, Side::Uac, describe(&ev)));
    }

    fn uas_tu(&mut self, ev: TxEvent) {
        let t = self.t();
        self.events.push((t, Side::Uas, describe(&ev)));
        match ev {
            TxEvent::Request { tx, request, .. } => {
                let invite = request.method() == Some(&Method::Invite);
                self.requests.insert(tx, request);
                if let Answer::Final {
                    provisional,
                    code,
                    after,
                } = self.answer
                {
                    if provisional {
                        let p = if invite { 180 } else { 100 };
                        self.respond(tx, p);
                    }
                    if after.is_zero() {
                        self.respond(tx, code);
                    } else {
                        self.schedule(after, Action::Respond(tx, code));
                    }
                }
            }
            TxEvent::Cancelled { invite, .. } => self.respond(invite, 487),
            _ => {}
        }
    }

    fn respond(&mut self, tx: ServerTxId, code: u16) {
        let Some(req) = self.requests.get(&tx) else {
            return;
        };
        let resp = response(req, code);
        // The transaction may have been cancelled meanwhile: the layer refuses, the TU ignores.
        let _ = self.uas.send_response(self.now, tx, resp);
    }

    fn next_time(&mut self) -> Option<Instant> {
        [
            self.uac.poll_timeout(),
            self.uas.poll_timeout(),
            self.link.next_delivery(),
            self.tu_actions.keys().next().map(|k| k.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run until nothing is left to do or `until` passes; panics after `max_steps` (livelock).
    fn drive_bounded(&mut self, until: Duration, max_steps: usize) {
        for _ in 0..max_steps {
            self.flush();
            let Some(next) = self.next_time() else {
                return;
            };
            if next - self.start > until {
                return;
            }
            self.now = self.now.max(next);
            while let Some((&(at, seq), _)) = self.link.queue.iter().next() {
                if at > self.now {
                    break;
                }
                let (to, bytes) = self.link.queue.remove(&(at, seq)).unwrap();
                let msg = Message::parse(bytes).unwrap();
                match to {
                    Side::Uas => {
                        self.uas
                            .handle_message(self.now, msg, addr(UAC_ADDR), self.reliable)
                    }
                    Side::Uac => {
                        self.uac
                            .handle_message(self.now, msg, addr(UAS_ADDR), self.reliable)
                    }
                }
                self.flush();
            }
            while let Some((&(at, seq), _)) = self.tu_actions.iter().next() {
                if at > self.now {
                    break;
                }
                match self.tu_actions.remove(&(at, seq)).unwrap() {
                    Action::Respond(tx, code) => self.respond(tx, code),
                    Action::Cancel(tx) => {
                        let _ = self.uac.send_cancel(self.now, tx);
                    }
                }
                self.flush();
            }
            self.uac.handle_timeout(self.now);
            self.uas.handle_timeout(self.now);
        }
        panic!("no quiescence after {max_steps} steps at {:?}", self.t());
    }

    fn drive(&mut self) {
        self.drive_bounded(Duration::from_secs(600), 100_000);
    }

    fn sent_times(&self, side: Side, prefix: &str) -> Vec<f64> {
        self.sent
            .iter()
            .filter(|r| r.side == side && r.line.starts_with(prefix))
            .map(|r| r.at.as_secs_f64())
            .collect()
    }

    fn event_time(&self, side: Side, needle: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|(_, s, e)| *s == side && e.contains(needle))
            .map(|(t, _, _)| t.as_secs_f64())
    }

    fn count_events(&self, side: Side, needle: &str) -> usize {
        self.events
            .iter()
            .filter(|(_, s, e)| *s == side && e.contains(needle))
            .count()
    }
}

fn describe(ev: &TxEvent) -> String {
    match ev {
        TxEvent::Request { request, .. } => {
            format!("Request {}", request.method().unwrap().as_str())
        }
        TxEvent::Response { response, .. } => format!(
            "Response {} {}",
            response.status().unwrap(),
            response.cseq().method.as_str()
        ),
        TxEvent::Timeout { timer, .. } => format!("Timeout {timer:?}"),
        TxEvent::Terminated { tx } => match tx {
            TxId::Client(_) => "Terminated client".into(),
            TxId::Server(_) => "Terminated server".into(),
        },
        TxEvent::Cancelled { .. } => "Cancelled".into(),
        TxEvent::Stray { kind, .. } => format!("Stray {kind:?}"),
        other => format!("{other:?}"),
    }
}

fn approx(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{actual:?} vs {expected:?}");
    }
}

fn close(a: Option<f64>, e: f64) {
    let a = a.unwrap_or(f64::NAN);
    assert!((a - e).abs() < 1e-6, "got {a}, expected {e}");
}

#[test]
fn timer_a_and_b_invite_to_a_dead_peer() {
    let mut sim = Sim::new(1);
    sim.link.loss = 1.0;
    sim.send("INVITE", "a");
    sim.drive();
    // Timer A: T1 doubling; Timer B: 64*T1.
    approx(
        &sim.sent_times(Side::Uac, "INVITE"),
        &[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5],
    );
    close(sim.event_time(Side::Uac, "Timeout TimerB"), 32.0);
    assert!(sim.uac.is_empty());
    // Six copies after the first, each counted; nothing reached the other side.
    assert_eq!(sim.uac.counters().retransmitted, 6);
    assert_eq!(sim.uas.counters().retransmissions_received, 0);
}

#[test]
fn timer_e_and_f_non_invite_to_a_dead_peer() {
    let mut sim = Sim::new(2);
    sim.link.loss = 1.0;
    sim.send("OPTIONS", "e");
    sim.drive();
    // Timer E: T1 doubling, capped at T2 = 4 s; Timer F at 64*T1.
    approx(
        &sim.sent_times(Side::Uac, "OPTIONS"),
        &[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
    );
    close(sim.event_time(Side::Uac, "Timeout TimerF"), 32.0);
    assert!(sim.uac.is_empty());
}

#[test]
fn timer_e_runs_at_t2_in_proceeding_and_uas_resends_provisional() {
    let mut sim = Sim::new(3);
    sim.answer = Answer::Final {
        provisional: true,
        code: 200,
        after: Duration::from_secs(100),
    };
    sim.send("OPTIONS", "e2");
    sim.drive_bounded(Duration::from_secs(40), 10_000);
    // 100 arrives at 0.02 s (Proceeding); E fires at 0.5 then every T2.
    approx(
        &sim.sent_times(Side::Uac, "OPTIONS"),
        &[0.0, 0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5],
    );
    // Each retransmission reaching the UAS (Proceeding) gets the 100 again; the TU saw it once.
    assert_eq!(sim.sent_times(Side::Uas, "SIP/2.0 100").len(), 9);
    assert_eq!(sim.count_events(Side::Uas, "Request OPTIONS"), 1);
    close(sim.event_time(Side::Uac, "Timeout TimerF"), 32.0);
}

#[test]
fn timer_k_and_j_after_non_invite_final() {
    let mut sim = Sim::new(4);
    sim.send("OPTIONS", "k");
    sim.drive();
    assert_eq!(sim.count_events(Side::Uac, "Response 200 OPTIONS"), 1);
    // Final received at 0.02 s; Timer K = T4 = 5 s.
    close(sim.event_time(Side::Uac, "Terminated client"), 5.02);
    // Final sent at 0.01 s; Timer J = 64*T1.
    close(sim.event_time(Side::Uas, "Terminated server"), 32.01);
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}

#[test]
fn timer_j_absorbs_retransmissions_by_resending_the_final() {
    let mut sim = Sim::new(5);
    // Every response is lost: the UAC keeps retransmitting, the UAS resends its 200 each time.
    sim.link.drop_matching = vec!["SIP/2.0 200"];
    sim.send("OPTIONS", "j");
    sim.drive();
    assert_eq!(sim.count_events(Side::Uas, "Request OPTIONS"), 1);
    let retrans = sim.sent_times(Side::Uac, "OPTIONS").len();
    assert_eq!(sim.sent_times(Side::Uas, "SIP/2.0 200").len(), retrans);
    // The UAS counts every copy after the first, received and answered again.
    let again = retrans as u64 - 1;
    assert_eq!(sim.uac.counters().retransmitted, again);
    assert_eq!(sim.uas.counters().retransmissions_received, again);
    assert_eq!(sim.uas.counters().retransmitted, again);
    close(sim.event_time(Side::Uac, "Timeout TimerF"), 32.0);
    close(sim.event_time(Side::Uas, "Terminated server"), 32.01);
}

#[test]
fn timer_d_and_i_after_invite_rejected() {
    let mut sim = Sim::new(6);
    sim.answer = Answer::Final {
        provisional: true,
        code: 486,
        after: Duration::ZERO,
    };
    sim.send("INVITE", "d");
    sim.drive();
    assert_eq!(sim.count_events(Side::Uac, "Response 486 INVITE"), 1);
    approx(&sim.sent_times(Side::Uac, "ACK"), &[0.02]);
    // Timer D: 32 s after the 486 arrived; Timer I: T4 after the ACK arrived (Confirmed).
    close(sim.event_time(Side::Uac, "Terminated client"), 32.02);
    close(sim.event_time(Side::Uas, "Terminated server"), 5.03);
    // The automatic 100 Trying was not needed: the TU answered at once.
    assert!(sim.sent_times(Side::Uas, "SIP/2.0 100").is_empty());
}

#[test]
fn timer_g_and_h_when_ack_is_lost_and_ack_resent_per_final() {
    let mut sim = Sim::new(7);
    sim.answer = Answer::Final {
        provisional: false,
        code: 486,
        after: Duration::ZERO,
    };
    sim.link.drop_matching = vec!["ACK"];
    sim.send("INVITE", "g");
    sim.drive();
    // Timer G: T1 doubling capped at T2 from the first 486 at 0.01 s.
    let g = sim.sent_times(Side::Uas, "SIP/2.0 486");
    let expected: Vec<f64> = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .iter()
        .map(|t| t + 0.01)
        .collect();
    approx(&g, &expected);
    // Timer H: 64*T1 → timeout event on the UAS.
    close(sim.event_time(Side::Uas, "Timeout TimerH"), 32.01);
    // The UAC (Timer D still running) answers every retransmitted 486 with the ACK, the TU saw one 486.
    assert_eq!(sim.sent_times(Side::Uac, "ACK").len(), g.len());
    assert_eq!(sim.count_events(Side::Uac, "Response 486"), 1);
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}

#[test]
fn timer_l_and_m_after_2xx() {
    let mut sim = Sim::new(8);
    sim.link.dup = 1.0;
    sim.answer = Answer::Final {
        provisional: false,
        code: 200,
        after: Duration::from_secs(1),
    };
    sim.send("INVITE", "l");
    sim.drive();
    // The 100 Trying is sent by the layer 200 ms after the INVITE arrived.
    let trying = sim.sent_times(Side::Uas, "SIP/2.0 100");
    assert!((trying[0] - 0.21).abs() < 1e-6, "{trying:?}");
    // Duplicated INVITE reached the TU once.
    assert_eq!(sim.count_events(Side::Uas, "Request INVITE"), 1);
    // RFC 6026: the duplicated 2xx both reach the UAC TU (Accepted passes 2xx up).
    assert_eq!(sim.count_events(Side::Uac, "Response 200 INVITE"), 2);
    // The 2xx ACK has its own branch: the UAS hands it to the TU as a stray ACK.
    assert!(sim.count_events(Side::Uas, "Stray Ack") >= 1);
    // Timer L: 64*T1 after the 2xx was sent (1.01 s); Timer M: 64*T1 after it arrived.
    close(sim.event_time(Side::Uas, "Terminated server"), 33.01);
    close(sim.event_time(Side::Uac, "Terminated client"), 33.02);
}

#[test]
fn cancel_before_final_response() {
    let mut sim = Sim::new(9);
    sim.answer = Answer::Final {
        provisional: true,
        code: 200,
        after: Duration::from_secs(10),
    };
    sim.cancel_after = Some(Duration::from_secs(1));
    sim.send("INVITE", "c");
    sim.drive();
    assert_eq!(sim.count_events(Side::Uas, "Cancelled"), 1);
    assert_eq!(sim.count_events(Side::Uac, "Response 200 CANCEL"), 1);
    assert_eq!(sim.count_events(Side::Uac, "Response 487 INVITE"), 1);
    assert_eq!(sim.sent_times(Side::Uac, "ACK").len(), 1);
    // The late 200 from the TU is refused by the layer (already Completed): never on the wire.
    assert!(sim.sent_times(Side::Uas, "SIP/2.0 200 OK").len() == 1); // the CANCEL's 200 only
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}

#[test]
fn cancel_with_unknown_branch_gets_481() {
    let mut sim = Sim::new(10);
    let cancel = request("CANCEL", "nothing", 1);
    sim.uac
        .send_request(sim.now, cancel, addr(UAS_ADDR), false)
        .unwrap();
    sim.drive();
    assert_eq!(sim.count_events(Side::Uac, "Response 481 CANCEL"), 1);
    assert_eq!(sim.count_events(Side::Uas, "Cancelled"), 0);
}

#[test]
fn reliable_transport_has_no_retransmissions() {
    let mut sim = Sim::new(11);
    sim.reliable = true;
    sim.link.loss = 1.0;
    sim.send("INVITE", "r1");
    sim.send("OPTIONS", "r2");
    sim.drive();
    assert_eq!(sim.sent_times(Side::Uac, "INVITE").len(), 1);
    assert_eq!(sim.sent_times(Side::Uac, "OPTIONS").len(), 1);
    close(sim.event_time(Side::Uac, "Timeout TimerB"), 32.0);
    close(sim.event_time(Side::Uac, "Timeout TimerF"), 32.0);

    // With answers: D, I, J, K are zero: everything terminates as soon as the final/ACK goes through.
    let mut sim = Sim::new(12);
    sim.reliable = true;
    sim.answer = Answer::Final {
        provisional: false,
        code: 603,
        after: Duration::ZERO,
    };
    sim.send("INVITE", "r3");
    sim.drive();
    close(sim.event_time(Side::Uac, "Terminated client"), 0.02);
    close(sim.event_time(Side::Uas, "Terminated server"), 0.03);
    let mut sim = Sim::new(13);
    sim.reliable = true;
    sim.send("OPTIONS", "r4");
    sim.drive();
    close(sim.event_time(Side::Uac, "Terminated client"), 0.02);
    close(sim.event_time(Side::Uas, "Terminated server"), 0.01);
}

#[test]
fn lossy_link_many_seeds_everything_completes_or_times_out() {
    let mut completed = 0;
    let mut timed_out = 0;
    for seed in 1..=400u64 {
        let mut sim = Sim::new(seed);
        sim.link.loss = 0.3;
        sim.link.dup = 0.1;
        sim.link.jitter_ms = 300;
        sim.cancel_after = Some(Duration::from_secs(20));
        let code = [200, 486, 404][(seed % 3) as usize];
        sim.answer = Answer::Final {
            provisional: seed % 2 == 0,
            code,
            after: Duration::from_millis(seed % 700),
        };
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(sim.send("INVITE", &format!("inv{seed}-{i}")));
            ids.push(sim.send("OPTIONS", &format!("opt{seed}-{i}")));
        }
        sim.drive();
        for id in ids {
            let done = sim.uac_finals.contains_key(&id);
            let to = sim.uac_timeouts.contains(&id);
            assert!(
                done || to,
                "seed {seed}: {id:?} neither completed nor timed out"
            );
            if done {
                completed += 1;
            } else {
                timed_out += 1;
            }
        }
        // Bounded state: every transaction left both tables once all deadlines passed.
        assert!(sim.uac.is_empty(), "seed {seed}: uac {}", sim.uac.len());
        assert!(sim.uas.is_empty(), "seed {seed}: uas {}", sim.uas.len());
        assert_eq!(sim.uac.poll_timeout(), None);
    }
    assert!(
        completed > timed_out,
        "{completed} completed, {timed_out} timed out"
    );
}

#[test]
fn full_table_refuses_new_server_transactions() {
    let mut sim = Sim::new(14);
    sim.uas = Transactions::new(TransactionConfig {
        max_transactions: 1,
        ..TransactionConfig::default()
    });
    sim.answer = Answer::Never;
    sim.send("OPTIONS", "f1");
    sim.send("OPTIONS", "f2");
    sim.drive_bounded(Duration::from_secs(1), 1000);
    assert_eq!(sim.count_events(Side::Uas, "Request OPTIONS"), 1);
    assert!(sim.count_events(Side::Uas, "Refused") >= 1);
}

#[test]
fn invite_retransmission_gets_the_last_provisional_again() {
    let mut sim = Sim::new(15);
    sim.answer = Answer::Final {
        provisional: true,
        code: 200,
        after: Duration::from_secs(5),
    };
    // The 180 never reaches the UAC, so it stays in Calling and retransmits (Timer A).
    sim.link.drop_matching = vec!["SIP/2.0 180"];
    sim.send("INVITE", "p");
    sim.drive();
    approx(&sim.sent_times(Side::Uac, "INVITE"), &[0.0, 0.5, 1.5, 3.5]);
    // The UAS answers each INVITE copy with the stored 180; its TU saw one INVITE.
    approx(
        &sim.sent_times(Side::Uas, "SIP/2.0 180"),
        &[0.01, 0.51, 1.51, 3.51],
    );
    assert_eq!(sim.count_events(Side::Uas, "Request INVITE"), 1);
    // The TU answered before 200 ms: no automatic 100 Trying.
    assert!(sim.sent_times(Side::Uas, "SIP/2.0 100").is_empty());
    assert_eq!(sim.count_events(Side::Uac, "Response 200 INVITE"), 1);
    assert!(sim.uac.is_empty() && sim.uas.is_empty());
}
