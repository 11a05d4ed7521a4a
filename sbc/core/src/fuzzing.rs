//! Fuzz target bodies of the signalling core: whole B2BUA conversations driven by arbitrary input.
//!
//! The body lives in the library so that it builds with every normal build: `tests/fuzz_seeds.rs`
//! replays the checked-in seeds and regressions through it on stable, and `fuzz/fuzz_targets/*.rs`
//! only forward the fuzzer's bytes. It asserts invariants and panics with a message naming the broken
//! one.
//!
//! Not part of the API: hidden from the docs, and free to change with the code it checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::fuzzing::Ops;
use sbc_sip::transaction::{Flow, TransactionConfig};
use sbc_sip::{HeaderName, Message};

use crate::b2bua::{B2bua, B2buaConfig, Origin, Target};
use crate::media::callmedia::{MediaAnchor, MediaSettings};
use crate::media::testing::FakeMedia;
use crate::registration::registrar::RegistrarConfig;
use crate::registration::trunkreg::TrunkAuth;
use crate::signalling::ids::WorkerId;
use crate::signalling::topology::Side;

const SBC_OUT: &str = "203.0.113.1:5060";
const SBC_IN: &str = "10.0.0.1:5060";
/// Peers on the outside (phones, a carrier) and on the inside (two PBXs of one group).
const OUTSIDE_PEERS: &[&str] = &[
    "198.51.100.10:5060",
    "198.51.100.11:5062",
    "198.51.100.50:5060",
];
const INSIDE_PEERS: &[&str] = &["10.0.0.2:5060", "10.0.0.3:5060"];
const STATUSES: &[u16] = &[
    100, 180, 183, 200, 202, 302, 401, 403, 404, 407, 408, 422, 423, 481, 486, 487, 488, 491, 500,
    503, 504, 603,
];
const METHODS: &[&str] = &[
    "ACK", "BYE", "INVITE", "CANCEL", "PRACK", "UPDATE", "INFO", "OPTIONS", "NOTIFY", "REFER",
    "MESSAGE",
];
const TAGS: &[&str] = &["t1", "t2", "t3"];
/// Values for every number a peer chooses: counts, durations, sequence numbers.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "59",
    "60",
    "3600",
    "4294967295",
    "4294967296",
    "2147483648",
    "9223372036854775807",
    "18446744073709551615",
    "99999999999999999999999",
];
const STEPS: &[u64] = &[0, 10, 200, 500, 4_000, 32_000, 64_000, 180_000, 3_600_000];
/// The longest a quiet SBC may take to end everything: the longest call (1 h here), the longest
/// binding, and the timers after them.
const QUIET_LIMIT: Duration = Duration::from_secs(3 * 3600);
/// The most messages of the SBC kept to answer.
const SEEN: usize = 24;

fn addr(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad fuzz address {s}: {e}"),
    }
}

/// A peer of the Inside or of the Outside, picked by the input.
fn pick_peer(ops: &mut Ops<'_>, inside: bool) -> SocketAddr {
    let peers: &[&str] = if inside { INSIDE_PEERS } else { OUTSIDE_PEERS };
    let peer: &&str = ops.pick(peers);
    addr(peer)
}

fn side_of(peer: SocketAddr) -> Side {
    if INSIDE_PEERS.iter().any(|p| addr(p) == peer) {
        Side::Inside
    } else {
        Side::Outside
    }
}

fn sbc_addr(side: Side) -> &'static str {
    match side {
        Side::Inside => SBC_IN,
        Side::Outside => SBC_OUT,
    }
}

/// Routes of the conversation: calls from the Outside go to the PBX group (its second member as
/// the alternate), calls from the Inside to the carrier with trunk credentials.
fn route(msg: &Message, from: Side) -> Option<Target> {
    let user = msg
        .request_uri()
        .and_then(|u| u.strip_prefix("sip:"))
        .and_then(|u| u.split('@').next())
        .unwrap_or_default();
    if user.starts_with("404") {
        return None;
    }
    let flow = Flow::default();
    match from {
        Side::Outside => {
            let mut t = Target::udp(Side::Inside, addr(INSIDE_PEERS.first()?), flow);
            t.alternates = INSIDE_PEERS
                .get(1..)
                .unwrap_or_default()
                .iter()
                .map(|p| (addr(p), false))
                .collect();
            t.label = Some(Arc::from("pbx"));
            Some(t)
        }
        Side::Inside => {
            let mut t = Target::udp(Side::Outside, addr(OUTSIDE_PEERS.get(2)?), flow);
            t.auth = Some(Arc::new(TrunkAuth {
                username: "sbc".to_owned(),
                password: "secret".to_owned(),
            }));
            t.label = Some(Arc::from("carrier"));
            Some(t)
        }
    }
}

const SDPS: &[&str] = &[
    "",
    "v=0\r\no=- 1 1 IN IP4 198.51.100.10\r\ns=phone\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    "v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=pbx\r\ni=info\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\nm=video 5002 RTP/AVP 96\r\n",
    "v=0\r\no=- 3 3 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=image 6000 udptl t38\r\n",
    "v=0\r\no=- 4 4 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 65535 RTP/AVP 0\r\na=rtcp:65535\r\nm=audio 7000 RTP/AVP 0\r\nm=audio 7002 RTP/AVP 0\r\nm=audio 7004 RTP/AVP 0\r\nm=audio 7006 RTP/AVP 0\r\nm=audio 7008 RTP/AVP 0\r\nm=audio 7010 RTP/AVP 0\r\nm=audio 7012 RTP/AVP 0\r\nm=audio 7014 RTP/AVP 0\r\n",
    "v=0\r\no=- 5 5 IN IP4 192.0.2.8\r\ns=-\r\nc=IN IP4 192.0.2.8\r\nt=0 0\r\nm=audio 8000/4294967295 RTP/AVP 0\r\na=inactive\r\n",
];

/// Extra headers a peer may add, with a number from [`NUMBERS`] where `{}` stands.
const EXTRAS: &[&str] = &[
    "",
    "Expires: {}\r\n",
    "Session-Expires: {}\r\nMin-SE: {}\r\n",
    "Retry-After: {}\r\n",
    "RSeq: {}\r\nRequire: 100rel\r\n",
    "RAck: {} 1 INVITE\r\n",
    "Max-Forwards: {}\r\n",
    "P-Asserted-Identity: <sip:{}@10.0.0.2>\r\nAlert-Info: <http://10.0.0.2/ring>\r\nReason: Q.850;cause=16\r\n",
    "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"\r\n",
    "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n{}\", stale=true\r\n",
    "Contact: <sip:x@198.51.100.10:5060>;expires={}\r\n",
];

fn extra(ops: &mut Ops<'_>) -> String {
    let template = *ops.pick(EXTRAS);
    let n = *ops.pick(NUMBERS);
    template.replace("{}", n)
}

fn content(body: &str) -> String {
    if body.is_empty() {
        "Content-Length: 0\r\n\r\n".to_owned()
    } else {
        format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }
}

/// What the conversation driver keeps between steps.
struct Conversation {
    sbc: B2bua,
    relay: FakeMedia,
    now: Instant,
    /// Messages the SBC sent, with their destination (the most recent [`SEEN`]).
    seen: Vec<(SocketAddr, Message)>,
    /// Messages the peers sent, with their source, for retransmission.
    sent: Vec<(SocketAddr, Message)>,
    branch: u64,
    max_dialogs: usize,
    max_transactions: usize,
    registrar_capacity: usize,
}

impl Conversation {
    fn next_branch(&mut self) -> String {
        self.branch = self.branch.wrapping_add(1);
        format!("z9hG4bKfz{}", self.branch)
    }

    /// Deliver `text` from `peer`, when it parses.
    fn deliver(&mut self, peer: SocketAddr, text: &[u8]) {
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(text)) else {
            return;
        };
        self.sent.push((peer, msg.clone()));
        if self.sent.len() > SEEN {
            self.sent.remove(0);
        }
        self.deliver_parsed(peer, msg);
    }

    fn deliver_parsed(&mut self, peer: SocketAddr, msg: Message) {
        let origin = Origin {
            source: peer,
            side: side_of(peer),
            reliable: false,
            flow: Flow::default(),
        };
        self.sbc
            .handle_message(self.now, msg, origin, &route, &mut self.relay);
        self.drain(false);
    }

    /// Move the clock to `until`, firing every deadline on the way.
    fn advance(&mut self, until: Instant) {
        let mut rounds = 0u32;
        while let Some(at) = self.sbc.poll_timeout() {
            if at > until {
                break;
            }
            rounds += 1;
            assert!(
                rounds < 100_000,
                "deadlines do not advance: stuck at {at:?}"
            );
            self.now = self.now.max(at);
            self.sbc.handle_timeout(self.now, &mut self.relay);
            self.drain(true);
        }
        self.now = self.now.max(until);
    }

    /// Read every output: each datagram must parse; the tables stay within their bounds.
    fn drain(&mut self, timers_fired: bool) {
        while let Some(t) = self.sbc.poll_transmit() {
            let msg = match Message::parse(t.bytes.clone()) {
                Ok(m) => m,
                Err(e) => panic!(
                    "the SBC sent bytes that do not parse ({e:?}):\n{}",
                    String::from_utf8_lossy(&t.bytes)
                ),
            };
            self.seen.push((t.dest, msg));
            if self.seen.len() > SEEN {
                self.seen.remove(0);
            }
        }
        while self.sbc.poll_event().is_some() {}
        assert!(
            self.sbc.calls() <= self.max_dialogs,
            "{} calls in a table of {}",
            self.sbc.calls(),
            self.max_dialogs
        );
        assert!(
            self.sbc.transactions() <= self.max_transactions,
            "{} transactions in a table of {}",
            self.sbc.transactions(),
            self.max_transactions
        );
        assert!(
            self.sbc.registrations() <= self.registrar_capacity,
            "{} bindings in a registrar of {}",
            self.sbc.registrations(),
            self.registrar_capacity
        );
        let next = self.sbc.poll_timeout();
        if let Some(at) = next {
            if timers_fired {
                assert!(
                    at > self.now,
                    "a deadline at or before now survived handle_timeout"
                );
            }
        }
        assert!(
            self.relay.pairs_in_use() <= 10,
            "the relay hands out more pairs than it has"
        );
    }

    /// A new dialog-creating request from a peer.
    fn new_request(&mut self, ops: &mut Ops<'_>, method: &str) {
        let inside = ops.byte() & 1 == 1;
        let peer = pick_peer(ops, inside);
        let side = side_of(peer);
        let user = *ops.pick(&["alice", "404", "+4930123", "bob"]);
        let call_id = format!("c{}@{}", ops.byte() % 4, peer.ip());
        let tag = *ops.pick(TAGS);
        let cseq = *ops.pick(NUMBERS);
        let branch = self.next_branch();
        let rport = if ops.byte() & 1 == 1 { ";rport" } else { "" };
        let body = *ops.pick(SDPS);
        let more = extra(ops);
        let contact = if method == "REGISTER" {
            format!(
                "Contact: <sip:{user}@{peer}>;expires={}\r\n",
                ops.pick(NUMBERS)
            )
        } else {
            format!("Contact: <sip:{user}@{peer}>\r\n")
        };
        let text = format!(
            "{method} sip:{user}@{sbc} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {peer};branch={branch}{rport}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={tag}\r\n\
             To: <sip:{user}@{sbc}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             {contact}{more}{content}",
            sbc = sbc_addr(side),
            host = peer.ip(),
            content = content(body),
        );
        self.deliver(peer, text.as_bytes());
    }

    /// The peer a message of the SBC went to answers it (a request) or continues its dialog.
    fn answer(&mut self, ops: &mut Ops<'_>) {
        let Some((dest, msg)) = ops.choose(&self.seen).cloned() else {
            return;
        };
        if msg.is_request() {
            if ops.byte() & 3 == 0 {
                self.request_in_dialog(ops, dest, &msg, true);
            } else {
                self.respond(ops, dest, &msg);
            }
        } else {
            self.request_in_dialog(ops, dest, &msg, false);
        }
    }

    /// `dest` answers the SBC's request `req`.
    fn respond(&mut self, ops: &mut Ops<'_>, dest: SocketAddr, req: &Message) {
        let code = *ops.pick(STATUSES);
        let tag = *ops.pick(TAGS);
        let body = if ops.byte() & 1 == 1 {
            ""
        } else {
            *ops.pick(SDPS)
        };
        let more = extra(ops);
        let mut text = format!("SIP/2.0 {code} Fuzz\r\n");
        for v in req.header_values(HeaderName::Via) {
            text.push_str("Via: ");
            text.push_str(v);
            text.push_str("\r\n");
        }
        let to = req.header(HeaderName::To).unwrap_or_default();
        let to_line = if code > 100 && req.to_tag().is_none() {
            format!("To: {to};tag={tag}\r\n")
        } else {
            format!("To: {to}\r\n")
        };
        text.push_str(&format!(
            "From: {}\r\n{to_line}Call-ID: {}\r\nCSeq: {}\r\nContact: <sip:peer@{dest}>\r\n{more}{}",
            req.header(HeaderName::From).unwrap_or_default(),
            req.call_id(),
            req.header(HeaderName::CSeq).unwrap_or_default(),
            content(body),
        ));
        self.deliver(dest, text.as_bytes());
    }

    /// `peer` sends a request in the dialog of `msg`: a request the SBC sent it (`peer` is its UAS)
    /// or a response the SBC sent it (`peer` is its UAC).
    fn request_in_dialog(&mut self, ops: &mut Ops<'_>, peer: SocketAddr, msg: &Message, uas: bool) {
        let method = *ops.pick(METHODS);
        let cseq = *ops.pick(NUMBERS);
        let body = *ops.pick(SDPS);
        let more = extra(ops);
        let from = msg.header(HeaderName::From).unwrap_or_default();
        let to = msg.header(HeaderName::To).unwrap_or_default();
        let (local, remote) = if uas {
            let tag = *ops.pick(TAGS);
            (format!("{to};tag={tag}"), from.to_owned())
        } else {
            (from.to_owned(), to.to_owned())
        };
        let (branch, cseq_line) = if !uas && matches!(method, "ACK" | "CANCEL") {
            // ACK of a non-2xx and CANCEL reuse the INVITE's branch and CSeq number.
            let b = msg.top_branch().unwrap_or("z9hG4bKnone").to_owned();
            (b, format!("{} {method}", msg.cseq().seq))
        } else {
            (self.next_branch(), format!("{cseq} {method}"))
        };
        let side = side_of(peer);
        let text = format!(
            "{method} sip:sbc@{sbc} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {peer};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {local}\r\n\
             To: {remote}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq_line}\r\n\
             {more}{}",
            msg.call_id(),
            content(body),
            sbc = sbc_addr(side),
        );
        self.deliver(peer, text.as_bytes());
    }

    /// Arbitrary bytes from a peer (a message that parses is delivered as it is).
    fn raw(&mut self, ops: &mut Ops<'_>) {
        let inside = ops.byte() & 1 == 1;
        let peer = pick_peer(ops, inside);
        let len = usize::from(ops.byte()) * 4;
        let data = ops.take(len).to_vec();
        self.deliver(peer, &data);
    }

    /// A peer sends one of its earlier messages again, or the same message with one byte changed.
    fn resend(&mut self, ops: &mut Ops<'_>) {
        let Some((peer, msg)) = ops.choose(&self.sent).cloned() else {
            return;
        };
        let at = usize::from(ops.byte()).wrapping_mul(3);
        let value = ops.byte();
        if value == 0 {
            self.deliver_parsed(peer, msg);
            return;
        }
        let mut bytes = msg.raw().to_vec();
        if let Some(b) = bytes.get_mut(at) {
            *b = value;
        }
        self.deliver(peer, &bytes);
    }
}

/// Whole B2BUA conversations: peers on both sides send new requests, answer what the SBC sent them
/// (any status, with or without SDP, with extreme numbers in every header that carries one),
/// continue its dialogs, resend and corrupt their messages, and let virtual time pass.
///
/// Invariants: no panic; every datagram the SBC sends parses; the dialog, transaction and binding
/// tables never exceed their sizes; no deadline survives the `handle_timeout` that was due; and once
/// the peers fall silent, everything ends: within `QUIET_LIMIT` no call, transaction, binding,
/// media session or relay port is left and no deadline is pending.
pub fn b2bua(data: &[u8]) {
    let mut ops = Ops(data);
    let flags = ops.byte();
    #[allow(clippy::disallowed_methods)] // the one origin of fuzz time
    let start = Instant::now();
    let mut config = B2buaConfig::new(addr(SBC_OUT), addr(SBC_IN), WorkerId(1), [9u8; 32]);
    config.seed = 1;
    config.max_dialogs = usize::from(flags & 3) + 1;
    config.max_call_duration = Duration::from_secs(3600);
    let max_transactions = if flags & 4 == 0 { 64 } else { 6 };
    config.transactions = TransactionConfig {
        max_transactions,
        ..TransactionConfig::default()
    };
    config.registrar = RegistrarConfig {
        capacity: 3,
        max_contacts_per_aor: 2,
        ..RegistrarConfig::default()
    };
    let max_dialogs = config.max_dialogs;
    let mut c = Conversation {
        sbc: B2bua::new(config),
        relay: FakeMedia::new(30000, 30019),
        now: start,
        seen: Vec::new(),
        sent: Vec::new(),
        branch: 0,
        max_dialogs,
        max_transactions,
        registrar_capacity: 3,
    };
    if flags & 8 == 0 {
        c.sbc.attach_media(MediaAnchor::new(MediaSettings {
            address: addr(SBC_OUT).ip(),
            no_media_timeout: (flags & 16 == 0).then_some(Duration::from_secs(60)),
        }));
    }
    let mut steps = 0u32;
    while !ops.is_empty() && steps < 256 {
        steps += 1;
        match ops.byte() % 8 {
            0 => c.new_request(&mut ops, "INVITE"),
            1 => c.new_request(&mut ops, "REGISTER"),
            2..=4 => c.answer(&mut ops),
            5 => c.raw(&mut ops),
            6 => c.resend(&mut ops),
            _ => {
                let ms = *ops.pick(STEPS);
                let until = c.now + Duration::from_millis(ms);
                c.advance(until);
            }
        }
    }
    // The peers fall silent: everything the SBC holds must end.
    let quiet_from = c.now;
    c.advance(quiet_from + QUIET_LIMIT);
    let left = (
        c.sbc.calls(),
        c.sbc.transactions(),
        c.sbc.registrations(),
        c.sbc.media().map_or(0, MediaAnchor::sessions),
        c.relay.pairs_in_use(),
    );
    assert_eq!(
        left,
        (0, 0, 0, 0, 0),
        "after {QUIET_LIMIT:?} of quiet: (calls, transactions, bindings, media sessions, relay pairs) left"
    );
    assert_eq!(
        c.sbc.poll_timeout(),
        None,
        "a deadline is pending with nothing left"
    );
}
