//! One whole call through the B2BUA, sans-IO, with simulated peers: the caller of the
//! `loadtest/sip` scenario outside and SIPp's callee as PBX inside (INVITE with SDP, 180, 200 with
//! SDP, ACK, hold, BYE, 200). The clock advances [`STEP`] per call (4000 calls/s) and every call is
//! held [`HOLD`], so the SBC's tables hold what they hold under that load, timers included. Only
//! the SBC's work is timed (in [`Bench::busy`]): parsing what it receives, as the worker does,
//! `handle_message`, `handle_timeout`, `poll_timeout` and draining what it sends.

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_core::b2bua::{B2bua, B2buaConfig, Origin, Target};
use sbc_core::media::NoRelay;
use sbc_core::signalling::ids::WorkerId;
use sbc_core::signalling::topology::Side;
use sbc_sip::transaction::Flow;
use sbc_sip::{build, HeaderName, Message};

/// The caller.
pub const UAC: &str = "127.0.0.3:5070";
/// The PBX.
pub const PBX: &str = "127.0.0.2:5090";
/// The SBC, both sides.
pub const SBC: &str = "127.0.0.1:5060";
/// Simulated time between two calls.
pub const STEP: Duration = Duration::from_micros(250);
/// How long a call is held.
pub const HOLD: Duration = Duration::from_secs(1);

/// A literal socket address.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SDP: &str = "v=0\r\no=caller 1001 1 IN IP4 127.0.0.3\r\ns=loadtest\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// The caller's INVITE of call `n`.
pub fn invite(n: u64) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.3:5070;rport;branch=z9hG4bK-1-{n}-0\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller{n}@127.0.0.3>;tag=lt1c{n}\r\n\
         To: <sip:service@127.0.0.1>\r\n\
         Call-ID: {n}-1@127.0.0.3\r\n\
         CSeq: 10 INVITE\r\n\
         Contact: <sip:caller@127.0.0.3:5070>\r\n\
         Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n\
         User-Agent: loadtest-sip-caller\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

/// ACK or BYE of the caller, to the dialog the relayed 200 set up.
pub fn in_dialog(n: u64, method: &str, cseq: u32, ok: &Message) -> Bytes {
    let to = ok.header(HeaderName::To).unwrap();
    let contact = ok.header(HeaderName::Contact).unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap();
    Bytes::from(format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.3:5070;rport;branch=z9hG4bK-1-{n}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller{n}@127.0.0.3>;tag=lt1c{n}\r\n\
         To: {to}\r\n\
         Call-ID: {n}-1@127.0.0.3\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

/// The PBX's answer to a request (SIPp's callee: Contact, and the SDP on a 200 to INVITE).
pub fn answer(req: &Message, code: u16, sdp: bool) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    let mut w = build::response(
        req,
        code,
        build::reason_phrase(code),
        Some("pbx1"),
        &mut out,
    );
    w.header("Contact", "<sip:callee@127.0.0.2:5090>");
    if sdp {
        w.finish(Some("application/sdp"), SDP.as_bytes());
    } else {
        w.finish(None, b"");
    }
    Bytes::from(out)
}

fn to_pbx(_: &Message, from: Side) -> Option<Target> {
    (from == Side::Outside).then(|| Target::udp(Side::Inside, addr(PBX), Flow::default()))
}

/// The SBC with its timed work, and the peers' untimed.
pub struct Bench {
    sbc: B2bua,
    now: Instant,
    /// Time spent in the SBC's code.
    pub busy: Duration,
    sent: Vec<Bytes>,
    /// Calls waiting for their BYE: (due, call number, the 200 the caller got).
    held: VecDeque<(Instant, u64, Message)>,
    n: u64,
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

impl Bench {
    /// A fresh SBC configured like the `loadtest/sip` one.
    pub fn new() -> Self {
        let mut c = B2buaConfig::new(addr(SBC), addr(SBC), WorkerId(0), [7u8; 32]);
        c.max_dialogs = 1_000_000;
        c.transactions.max_transactions = 1_000_000;
        c.transactions.linger = Duration::from_secs(5);
        c.seed = 1;
        #[allow(clippy::disallowed_methods)] // the bench's one origin of time
        let now = Instant::now();
        Self {
            sbc: B2bua::new(c),
            now,
            busy: Duration::ZERO,
            sent: Vec::new(),
            held: VecDeque::new(),
            n: 0,
        }
    }

    /// Deliver `bytes` from `source` and collect what the SBC sends: timed.
    pub fn deliver(&mut self, bytes: Bytes, source: &str, side: Side) {
        #[allow(clippy::disallowed_methods)]
        let t = Instant::now();
        let msg = Message::parse(bytes).unwrap();
        let origin = Origin {
            source: addr(source),
            side,
            reliable: false,
            flow: Flow::default(),
        };
        self.sbc
            .handle_message(self.now, msg, origin, &to_pbx, &mut NoRelay);
        self.sent.clear();
        while let Some(tx) = self.sbc.poll_transmit() {
            self.sent.push(tx.bytes);
        }
        while self.sbc.poll_event().is_some() {}
        black_box(self.sbc.poll_timeout());
        #[allow(clippy::disallowed_methods)]
        let e = t.elapsed();
        self.busy += e;
    }

    /// Advance the clock one step and fire what is due: timed.
    pub fn tick(&mut self) {
        self.now += STEP;
        #[allow(clippy::disallowed_methods)]
        let t = Instant::now();
        if self.sbc.poll_timeout().is_some_and(|d| d <= self.now) {
            self.sbc.handle_timeout(self.now, &mut NoRelay);
            while self.sbc.poll_transmit().is_some() {}
            while self.sbc.poll_event().is_some() {}
        }
        #[allow(clippy::disallowed_methods)]
        let e = t.elapsed();
        self.busy += e;
    }

    /// The last message the SBC sent that starts with `prefix`, parsed (untimed).
    pub fn sent_starting(&self, prefix: &str) -> Message {
        let b = self
            .sent
            .iter()
            .rev()
            .find(|b| b.starts_with(prefix.as_bytes()))
            .unwrap_or_else(|| panic!("no {prefix} sent"))
            .clone();
        Message::parse(b).unwrap()
    }

    /// Start one call (INVITE .. ACK), and end the calls whose hold is over (BYE .. 200).
    pub fn call(&mut self) {
        self.n += 1;
        let n = self.n;
        self.deliver(invite(n), UAC, Side::Outside);
        let out_invite = self.sent_starting("INVITE");
        self.deliver(answer(&out_invite, 180, false), PBX, Side::Inside);
        self.deliver(answer(&out_invite, 200, true), PBX, Side::Inside);
        let ok = self.sent_starting("SIP/2.0 200");
        self.deliver(in_dialog(n, "ACK", 10, &ok), UAC, Side::Outside);
        self.held.push_back((self.now + HOLD, n, ok));
        while self.held.front().is_some_and(|h| h.0 <= self.now) {
            let Some((_, m, ok)) = self.held.pop_front() else {
                break;
            };
            self.deliver(in_dialog(m, "BYE", 11, &ok), UAC, Side::Outside);
            let bye = self.sent_starting("BYE");
            self.deliver(answer(&bye, 200, false), PBX, Side::Inside);
        }
        self.tick();
    }
}
