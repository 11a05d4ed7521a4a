//! SIP handling of one worker: parse, answer what needs no state, hand the rest to the B2BUA.
//!
//! Every message passes the worker's [`Guard`] first: before parsing (the inside ACL, bans,
//! per-source budgets), then once parsed (scanner User-Agents, the new-call rate). Stateless answers
//! (a 400 naming the fault of a malformed request, 200 to an out-of-dialog OPTIONS, 503 over a rate,
//! 403 on the inside from a stranger) go back where the message came from (RFC 3261 §18.2.2 / RFC
//! 3581: the packet's source for UDP, the same connection for TCP and TLS). Everything else goes to
//! the worker's [`Signalling`]. Both collect in one [`Handler::outbox`] with the flow (socket or
//! connection) to send them by, and the driver sends it after each batch.
//!
//! The guard learns the final answers the outside gets to its out-of-dialog INVITE and REGISTER
//! requests from that outbox ([`Finals`]): the handler notes each such request it hands on, and
//! matches the final responses leaving toward its source (by Call-ID and CSeq). An "unknown user"
//! answer to an untrusted source leaves as the challenge an existing user gets
//! (`guard.hide_unknown_users`).

use std::time::Instant;

use std::net::SocketAddr;

use bytes::Bytes;
use sbc_core::b2bua::Origin;
use sbc_core::guard::{Admission, Final, Guard, GuardStats, Kind, Refusal};
use sbc_core::media::MediaControl;
use sbc_core::signalling::nat;
use sbc_core::signalling::topology::Side;
use sbc_sip::message::looks_like_request;
use sbc_sip::transaction::Transmit;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{build, HeaderName, Message, Method, Verdict};

use crate::control::GuardRequest;
use crate::observe::SipTraffic;
use crate::signalling::Signalling;
use crate::stats::{Sip, Transport};

const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, REFER, NOTIFY, MESSAGE";

/// The SIP message handler of one worker.
pub(crate) struct Handler {
    /// What the worker's sockets did (counted by the drivers and the streams).
    pub(crate) transport: Transport,
    /// What the SIP layer did with the messages received.
    pub(crate) sip: Sip,
    /// SIP messages received and sent, by method and class.
    pub(crate) traffic: SipTraffic,
    pub(crate) signalling: Signalling,
    /// Admission before state: every datagram before it is parsed, every message before the
    /// B2BUA sees it (this worker's share of `limits.max_cps`).
    guard: Guard,
    /// Out-of-dialog requests of untrusted sources awaiting their final answer.
    finals: Finals,
    /// The realm of hidden unknown users' challenges: `guard.realm`, or the realm of the latest
    /// challenge sent to the outside.
    realm: String,
    /// Whether the realm is learnt from the challenges sent (no `guard.realm`).
    learn_realm: bool,
    /// What the B2BUA sends, with its flow; drained by the driver.
    pub(crate) outbox: Vec<Transmit>,
    /// Where a stateless answer is written before it joins the outbox (reused).
    scratch: Vec<u8>,
}

impl Handler {
    /// Once a second: the guard's new bans to the webhook (listed only when a ban counter grew).
    pub(crate) fn report_bans(&mut self, now: Instant) {
        let s = self.guard.stats();
        let total = s.bans_flood
            + s.bans_unknown_users
            + s.bans_auth_failures
            + s.bans_sweep
            + s.bans_scanner
            + s.bans_manual;
        let guard = &mut self.guard;
        self.signalling.report_bans(now, total, || guard.bans(now));
    }

    /// `guard`: this worker's admission guard.
    pub(crate) fn new(signalling: Signalling, guard: Guard) -> Self {
        let pinned = guard.realm().to_owned();
        Self {
            transport: Transport::default(),
            sip: Sip::default(),
            traffic: SipTraffic::default(),
            signalling,
            guard,
            finals: Finals::new(),
            learn_realm: pinned.is_empty(),
            realm: if pinned.is_empty() {
                "sbc".into()
            } else {
                pinned
            },
            outbox: Vec::with_capacity(64),
            scratch: Vec::with_capacity(1024),
        }
    }

    /// The worker is stopping: start what must be said before it goes (the removal of carrier
    /// registrations). True while something is still awaited.
    pub(crate) fn begin_stop(&mut self, now: Instant) -> bool {
        if self.signalling.unregister_trunks(now) > 0 {
            self.signalling.drain(now, &mut self.outbox);
        }
        self.signalling.trunks_closing()
    }

    /// Whether a removal started by [`Self::begin_stop`] is still unanswered.
    pub(crate) fn stop_pending(&self) -> bool {
        self.signalling.trunks_closing()
    }

    /// Timers of the B2BUA due at `now`; what they send joins the outbox.
    pub(crate) fn on_timeout(&mut self, now: Instant, media: &mut dyn MediaControl) {
        if self.signalling.poll_timeout().is_some_and(|t| t <= now) {
            let start = self.outbox.len();
            self.signalling.on_timeout(now, media);
            self.signalling.drain(now, &mut self.outbox);
            self.watch_finals(now, start);
        }
    }

    /// The telephone-events the relay reported (DTMF interworking): INFOs toward the calls'
    /// `info` legs.
    pub(crate) fn on_media_events(&mut self, now: Instant, media: &mut dyn MediaControl) {
        if media.dtmf_pending() {
            self.signalling.on_media_events(now, media);
            self.signalling.drain(now, &mut self.outbox);
        }
    }

    /// The guard's counters.
    pub(crate) fn guard_stats(&self) -> GuardStats {
        self.guard.stats()
    }

    /// A run-time change of bans, the allow list or the call and fraud rules, or the list of
    /// bans, for the control thread.
    pub(crate) fn serve_guard(&mut self, r: GuardRequest<'_>) {
        match r {
            GuardRequest::Rules(c) => {
                if !self.signalling.apply_rules(c) {
                    tracing::debug!("a rules change named no rule or changed nothing");
                }
            }
            r => r.serve(&mut self.guard),
        }
    }

    /// Handle one message that came from `origin`. A stateless answer joins the outbox, to the
    /// message's source by its flow, and `true` is returned; what the B2BUA sends joins it too.
    /// `media` is the worker's relay.
    pub(crate) fn handle(
        &mut self,
        raw: Bytes,
        origin: Origin,
        now: Instant,
        media: &mut dyn MediaControl,
    ) -> bool {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let answered = self.answer(raw, origin, now, &mut out, media);
        if answered {
            self.outbox.push(Transmit {
                dest: origin.source,
                bytes: Bytes::copy_from_slice(&out),
                flow: origin.flow,
            });
        }
        self.scratch = out;
        answered
    }

    /// [`Self::handle`]: a stateless answer is written into `out` and `true` returned.
    fn answer(
        &mut self,
        raw: Bytes,
        origin: Origin,
        now: Instant,
        out: &mut Vec<u8>,
        media: &mut dyn MediaControl,
    ) -> bool {
        match self
            .guard
            .admit_datagram(now, origin.source, origin.side, &raw)
        {
            Admission::Admit => {}
            Admission::Refuse(r) => return self.answer_unparsed(&raw, origin.source, r, out),
            Admission::Drop => return false,
        }
        let msg = match Message::parse(raw.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.sip.parse_errors += 1;
                // Malformed input has its own budget per source.
                if self.guard.admit(now, origin.source, Kind::Malformed, None) != Admission::Admit {
                    self.sip.parse_errors_dropped += 1;
                    return false;
                }
                let answered = match e.verdict(looks_like_request(&raw)) {
                    Verdict::Reply(code, reason) => {
                        let refusal = Refusal {
                            code,
                            reason,
                            retry_after: None,
                        };
                        self.answer_unparsed(&raw, origin.source, refusal, out)
                    }
                    Verdict::Drop => false,
                };
                if answered {
                    self.sip.parse_errors_answered += 1;
                } else {
                    self.sip.parse_errors_dropped += 1;
                }
                return answered;
            }
        };
        self.traffic.received(&msg);
        // RFC 3581 §4: every answer (stateless here, or from the B2BUA) tells the client its
        // public address in the top Via (`received`, `rport=<port>`).
        let msg = nat::stamp_request(msg, origin.source);
        let out_of_dialog = msg.to_tag().is_none();
        let kind = match msg.method() {
            Some(Method::Invite) if out_of_dialog => Kind::Invite,
            Some(Method::Options) if out_of_dialog => Kind::Options,
            Some(Method::Register) => Kind::Register,
            _ => Kind::Other,
        };
        let ua = msg.header(HeaderName::UserAgent);
        match self.guard.admit(now, origin.source, kind, ua) {
            Admission::Admit => {}
            // Over the new-call rate: refused before any state is made (RFC 3261 §21.5.4).
            Admission::Refuse(r) => {
                let tag = self.signalling.new_tag();
                let w = build::response(&msg, r.code, r.reason, Some(tag.as_str()), out);
                finish_refusal(w, r);
                return true;
            }
            Admission::Drop => return false,
        }
        if kind == Kind::Options {
            // Out of any dialog, OPTIONS is a ping of the SBC itself: answered without state.
            let tag = self.signalling.new_tag();
            let mut w = build::response(&msg, 200, "OK", Some(tag.as_str()), out);
            w.header("Allow", ALLOW)
                .header("Accept", "application/sdp")
                .header("Supported", "")
                .header("Server", "sbc");
            w.finish(None, b"");
            self.sip.options_answered += 1;
            return true;
        }
        if origin.side == Side::Outside
            && matches!(kind, Kind::Invite | Kind::Register)
            && !self.guard.is_trusted(origin.source.ip())
        {
            let credentials = msg.header_by_name("Authorization").is_some()
                || msg.header_by_name("Proxy-Authorization").is_some();
            self.finals.note(&msg, origin.source, kind, credentials);
        }
        self.sip.to_b2bua += 1;
        let start = self.outbox.len();
        self.signalling.handle(now, msg, origin, media);
        self.signalling.drain(now, &mut self.outbox);
        self.watch_finals(now, start);
        false
    }

    /// The final responses among the outbox's transmits from `start` on that answer a request in
    /// [`Self::finals`]: the guard learns them; an unknown user is hidden when the guard says so.
    fn watch_finals(&mut self, now: Instant, start: usize) {
        if self.finals.is_empty() && !self.finals.hid_any() {
            return;
        }
        let Some(sent) = self.outbox.get_mut(start..) else {
            return;
        };
        for t in sent {
            let status = status_of(&t.bytes);
            if !(200..700).contains(&status) {
                continue;
            }
            let Ok(resp) = Message::parse(t.bytes.clone()) else {
                continue;
            };
            if self.learn_realm && matches!(status, 401 | 407) {
                if let Some(realm) = realm_of(&resp) {
                    if realm != self.realm {
                        realm.clone_into(&mut self.realm);
                    }
                }
            }
            // A retransmission of an answer hidden before (on a timer, or to the request sent
            // again) leaves as it did the first time, and is not learnt from twice.
            if let Some(first) = self.finals.hidden(&resp, t.dest) {
                let _ = self.finals.take(&resp, t.dest);
                t.bytes = first;
                continue;
            }
            let Some((kind, credentials)) = self.finals.take(&resp, t.dest) else {
                continue;
            };
            let ip = t.dest.ip();
            self.guard.on_final(
                now,
                ip,
                Final {
                    kind,
                    status,
                    credentials,
                },
            );
            if self.guard.hides_unknown_user(ip, status) {
                let nonce = self.signalling.new_tag();
                t.bytes = as_challenge(&t.bytes, &self.realm, nonce.as_str());
                self.finals.hide(&resp, t.dest, t.bytes.clone());
            }
        }
    }

    /// A stateless answer `r` to a message that was not parsed, or failed to parse (RFC 3261
    /// §8.2.6, §16.3): Via, From, To, Call-ID and CSeq as received, a To tag of ours. `false`, with
    /// nothing written, when it has no Via (nothing could route the answer).
    fn answer_unparsed(
        &mut self,
        raw: &[u8],
        source: SocketAddr,
        r: Refusal,
        out: &mut Vec<u8>,
    ) -> bool {
        let tag = self.signalling.new_tag();
        // The top Via stamped like a parsed request's (RFC 3581 §4): the client learns its address.
        let stamp = |via: &str| nat::stamp_via(via, source).ok();
        let Some(w) =
            build::stateless_error_stamped(raw, r.code, r.reason, Some(tag.as_str()), &stamp, out)
        else {
            return false;
        };
        finish_refusal(w, r);
        true
    }
}

/// The status of a response's bytes ("SIP/2.0 404 ..."), 0 for anything else.
fn status_of(bytes: &[u8]) -> u16 {
    match bytes.get(..12) {
        Some([b'S', b'I', b'P', b'/', b'2', b'.', b'0', b' ', a, b, c, b' '])
            if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => 0,
    }
}

/// The realm of a challenge's WWW-Authenticate or Proxy-Authenticate.
fn realm_of(resp: &Message) -> Option<&str> {
    let v = resp
        .header_by_name("WWW-Authenticate")
        .or_else(|| resp.header_by_name("Proxy-Authenticate"))?;
    let (_, rest) = v.split_once("realm=\"")?;
    let (realm, _) = rest.split_once('"')?;
    (!realm.is_empty() && realm.len() <= 128).then_some(realm)
}

/// A final "unknown user" response rewritten as the challenge an existing user gets: 401 with a
/// digest challenge in `realm`, the rest of the response as it was.
fn as_challenge(bytes: &[u8], realm: &str, nonce: &str) -> Bytes {
    let Some(eol) = memchr_crlf(bytes) else {
        return Bytes::copy_from_slice(bytes);
    };
    let rest = bytes.get(eol..).unwrap_or_default();
    let mut out = Vec::with_capacity(bytes.len() + 128);
    out.extend_from_slice(b"SIP/2.0 401 Unauthorized\r\n");
    out.extend_from_slice(
        format!(
            "WWW-Authenticate: Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""
        )
        .as_bytes(),
    );
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// Where the first line of `bytes` ends (the index of its CRLF).
fn memchr_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Out-of-dialog requests handed to the B2BUA whose final answer the guard is to learn: a fixed
/// ring indexed by a hash of Call-ID and CSeq (a newer request takes the slot of an older one; a
/// request whose slot was taken is simply not learnt from). And the answers hidden as a challenge,
/// so that their retransmissions (by the transaction layer) leave hidden too, byte for byte.
struct Finals {
    slots: Vec<Option<Noted>>,
    held: usize,
    hidden: Vec<Option<(u64, SocketAddr, Bytes)>>,
    hid: usize,
}

#[derive(Clone, Copy)]
struct Noted {
    id: u64,
    source: SocketAddr,
    kind: Kind,
    credentials: bool,
}

/// Requests awaiting their answer per worker.
const FINALS: usize = 4096;

/// Hidden answers remembered per worker (for their retransmissions, up to Timer H: 32 s).
const HIDDEN: usize = 1024;

impl Finals {
    fn new() -> Self {
        Self {
            slots: vec![None; FINALS],
            held: 0,
            hidden: vec![None; HIDDEN],
            hid: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Whether any answer was hidden (and may be retransmitted).
    fn hid_any(&self) -> bool {
        self.hid > 0
    }

    /// `resp`, sent to `dest`, left as `sent`.
    fn hide(&mut self, resp: &Message, dest: SocketAddr, sent: Bytes) {
        let id = Self::id(resp);
        if let Some(slot) = self.hidden.get_mut(id as usize % HIDDEN) {
            if slot.is_none() {
                self.hid += 1;
            }
            *slot = Some((id, dest, sent));
        }
    }

    /// What `resp` to `dest` left as the first time, if it was hidden.
    fn hidden(&self, resp: &Message, dest: SocketAddr) -> Option<Bytes> {
        let id = Self::id(resp);
        match self.hidden.get(id as usize % HIDDEN)? {
            Some((i, d, sent)) if *i == id && *d == dest => Some(sent.clone()),
            _ => None,
        }
    }

    fn id(msg: &Message) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        msg.call_id().hash(&mut h);
        msg.cseq().seq.hash(&mut h);
        h.finish()
    }

    fn note(&mut self, msg: &Message, source: SocketAddr, kind: Kind, credentials: bool) {
        let id = Self::id(msg);
        if let Some(slot) = self.slots.get_mut(id as usize % FINALS) {
            if slot.is_none() {
                self.held += 1;
            }
            *slot = Some(Noted {
                id,
                source,
                kind,
                credentials,
            });
        }
    }

    /// The request `resp` answers, sent to `dest`, if noted: its kind and whether it carried
    /// credentials. Forgotten then.
    fn take(&mut self, resp: &Message, dest: SocketAddr) -> Option<(Kind, bool)> {
        let id = Self::id(resp);
        let slot = self.slots.get_mut(id as usize % FINALS)?;
        let n = slot.filter(|n| n.id == id && n.source == dest)?;
        *slot = None;
        self.held -= 1;
        Some((n.kind, n.credentials))
    }
}

/// The end of a stateless refusal `r`: its Retry-After, if it has one, and the SBC's Server.
fn finish_refusal(mut w: MessageWriter<'_>, r: Refusal) {
    if let Some(secs) = r.retry_after {
        w.header_u32("Retry-After", secs);
    }
    w.header("Server", "sbc");
    w.finish(None, b"");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sbc_core::guard::GuardConfig;
    use sbc_core::media::NoRelay;
    use sbc_core::signalling::ids::{IdGen, IdKind, WorkerId};
    use sbc_core::signalling::topology::Side;
    use sbc_sip::transaction::Flow;

    /// A handler with the embedded default configuration, as worker `worker`, new calls not limited.
    pub(crate) fn handler(worker: u16) -> Handler {
        limited(worker, 0.0)
    }

    /// A handler with the embedded default configuration, as worker `worker`, with `cps` new calls
    /// a second.
    fn limited(worker: u16, cps: f64) -> Handler {
        let cfg = crate::config::Config::embedded_default();
        let b2bua = cfg.b2bua().unwrap();
        let place = crate::signalling::Place {
            worker,
            outside: "127.0.0.1:5060".parse().unwrap(),
            outside_tls_only: false,
            inside: "127.0.0.1:5081".parse().unwrap(),
            outside_flow: Flow(0),
            inside_flow: Flow(2),
        };
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let sig = Signalling::new(&b2bua, &cfg.limits, &place, [9; 32], now);
        Handler::new(
            sig,
            Guard::new(GuardConfig {
                cps,
                ..b2bua.guard(0.0)
            }),
        )
    }

    /// The worker that made the To tag of the answer `text` (a tag of our id generator), if any did.
    fn tag_worker(text: &str) -> Option<WorkerId> {
        let to = text.lines().find(|l| l.starts_with("To: "))?;
        let (_, tag) = to.split_once(";tag=")?;
        IdGen::new([9; 32], WorkerId(0), 0).worker_of(IdKind::Tag, tag)
    }

    fn origin() -> Origin {
        Origin {
            source: "127.0.0.1:5070".parse().unwrap(),
            side: Side::Outside,
            reliable: false,
            flow: Flow(0),
        }
    }

    fn handle(h: &mut Handler, raw: Bytes) -> bool {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        h.handle(raw, origin(), now, &mut NoRelay)
    }

    /// The one stateless answer in the outbox: sent back to the source, by the flow it came in on.
    fn answer(h: &Handler) -> String {
        assert_eq!(h.outbox.len(), 1, "{:?}", h.outbox);
        let t = &h.outbox[0];
        assert_eq!((t.flow, t.dest), (origin().flow, origin().source));
        text(&t.bytes).to_owned()
    }

    fn options(extra: &str) -> Bytes {
        Bytes::from(format!(
            "OPTIONS sip:sbc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:sbc@127.0.0.1>\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nCall-ID: c1\r\n{extra}\
Content-Length: 0\r\n\r\n"
        ))
    }

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn options_gets_200() {
        let mut h = handler(3);
        assert!(handle(&mut h, options("CSeq: 7 OPTIONS\r\n")));
        // The answer, and nothing from the B2BUA.
        let t = answer(&h);
        let t = t.as_str();
        assert!(t.starts_with("SIP/2.0 200 OK\r\n"), "{t}");
        for want in [
            "Allow: ",
            "Accept: application/sdp",
            "Supported:",
            "Server: sbc",
            "CSeq: 7 OPTIONS",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        let reply = Message::parse(h.outbox[0].bytes.clone()).unwrap();
        assert_eq!(reply.status(), Some(200));
        // A To tag from the worker's id generator, naming the worker.
        assert_eq!(tag_worker(t), Some(WorkerId(3)), "{t}");
    }

    #[test]
    fn bad_cseq_gets_400_naming_it() {
        let mut h = handler(0);
        assert!(handle(&mut h, options("CSeq: x OPTIONS\r\n")));
        let t = answer(&h);
        let t = t.as_str();
        assert!(t.starts_with("SIP/2.0 400 Bad CSeq\r\n"), "{t}");
        assert!(t.contains("Call-ID: c1"), "{t}");
        assert!(t.contains("Server: sbc"), "{t}");
        // The To tag is the worker's (the request had none).
        assert_eq!(tag_worker(t), Some(WorkerId(0)), "{t}");
        assert_eq!(h.sip.parse_errors_answered, 1);
    }

    #[test]
    fn garbage_dropped_stray_response_and_ack_go_nowhere() {
        let mut h = handler(0);
        assert!(!handle(&mut h, Bytes::from_static(b"\x00\x01garbage")));
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@h>;tag=2\r\n\
From: <sip:b@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert!(!handle(&mut h, Bytes::from_static(resp)));
        let ack = Bytes::from(
            String::from_utf8(options("CSeq: 1 ACK\r\n").to_vec())
                .unwrap()
                .replacen("OPTIONS", "ACK", 1),
        );
        assert!(!handle(&mut h, ack));
        assert!(h.outbox.is_empty(), "{:?}", h.outbox);
        assert_eq!(h.sip.parse_errors_dropped, 1);
        assert_eq!(h.sip.to_b2bua, 2);
    }

    #[test]
    fn new_calls_over_the_rate_get_503() {
        let mut h = limited(0, 2.0);
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let invite = |n: u32| {
            Bytes::from(
                String::from_utf8(options(&format!("CSeq: {n} INVITE\r\n")).to_vec())
                    .unwrap()
                    .replacen("OPTIONS", "INVITE", 1)
                    .replace("branch=z9hG4bK1", &format!("branch=z9hG4bKc{n}")),
            )
        };
        let mut refused = 0;
        for n in 0..5 {
            h.outbox.clear();
            if h.handle(invite(n), origin(), now, &mut NoRelay) {
                let t = answer(&h);
                assert!(t.starts_with("SIP/2.0 503 "), "{t}");
                assert!(t.contains("Retry-After: 1\r\n"), "{t}");
                assert!(t.contains("Server: sbc"), "{t}");
                refused += 1;
            }
        }
        // Two tokens (one second's worth), then refusals; a second later two more are allowed.
        assert_eq!(refused, 3);
        assert_eq!(h.guard_stats().cps_refused, 3);
        let later = now + std::time::Duration::from_secs(1);
        h.outbox.clear();
        assert!(
            !h.handle(invite(9), origin(), later, &mut NoRelay),
            "{:?}",
            h.outbox
        );
    }

    #[test]
    fn an_unknown_user_leaves_as_the_challenge_an_existing_user_gets() {
        let not_found = b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
To: <sip:9@h>;tag=x\r\nFrom: <sip:9@h>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(status_of(not_found), 404);
        assert_eq!(status_of(b"SIP/2.0 4x4 Odd\r\n"), 0);
        assert_eq!(status_of(b"REGISTER sip:h SIP/2.0\r\n"), 0);
        let hidden = as_challenge(not_found, "pbx.test", "abc");
        let msg = Message::parse(hidden.clone()).unwrap();
        assert_eq!(msg.status(), Some(401));
        assert_eq!(
            msg.header_by_name("WWW-Authenticate"),
            Some("Digest realm=\"pbx.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"")
        );
        assert_eq!(msg.call_id(), "c1");
        assert_eq!(realm_of(&msg), Some("pbx.test"));
        // The final answer to a noted request is found once, by Call-ID, CSeq and destination.
        let mut f = Finals::new();
        let source: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let req = String::from_utf8(options("CSeq: 1 REGISTER\r\n").to_vec())
            .unwrap()
            .replacen("OPTIONS", "REGISTER", 1);
        let req = Message::parse(Bytes::from(req)).unwrap();
        f.note(&req, source, Kind::Register, true);
        assert!(!f.is_empty());
        let resp = Message::parse(Bytes::from_static(not_found)).unwrap();
        assert_eq!(f.take(&resp, "127.0.0.2:5070".parse().unwrap()), None);
        assert_eq!(f.take(&resp, source), Some((Kind::Register, true)));
        assert_eq!(f.take(&resp, source), None);
        assert!(f.is_empty());
        // Hidden once, hidden alike when retransmitted.
        assert!(!f.hid_any());
        f.hide(&resp, source, hidden.clone());
        assert!(f.hid_any());
        assert_eq!(f.hidden(&resp, source), Some(hidden));
        assert_eq!(f.hidden(&resp, "127.0.0.2:5070".parse().unwrap()), None);
    }

    #[test]
    fn a_stranger_on_the_inside_gets_403_and_reaches_nothing() {
        let mut h = handler(0);
        let inside = Origin {
            side: Side::Inside,
            flow: Flow(2),
            ..origin()
        };
        let invite = Bytes::from(
            String::from_utf8(options("CSeq: 1 INVITE\r\n").to_vec())
                .unwrap()
                .replacen("OPTIONS", "INVITE", 1),
        );
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        assert!(h.handle(invite, inside, now, &mut NoRelay));
        assert_eq!(h.outbox.len(), 1);
        assert!(text(&h.outbox[0].bytes).starts_with("SIP/2.0 403 Forbidden\r\n"));
        assert_eq!(
            (h.outbox[0].dest, h.outbox[0].flow),
            (inside.source, Flow(2))
        );
        assert_eq!(h.sip.to_b2bua, 0);
        assert_eq!(h.guard_stats().inside_refused, 1);
    }

    #[test]
    fn register_without_registrar_behind_is_answered_by_the_sbc() {
        let mut h = handler(0);
        let reg = Bytes::from(
            String::from_utf8(
                options("CSeq: 1 REGISTER\r\nContact: <sip:a@127.0.0.1:5070>\r\nExpires: 120\r\n")
                    .to_vec(),
            )
            .unwrap()
            .replacen("OPTIONS", "REGISTER", 1),
        );
        assert!(!handle(&mut h, reg));
        let sent: Vec<String> = h
            .outbox
            .iter()
            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            .collect();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].starts_with("SIP/2.0 200 OK\r\n"), "{}", sent[0]);
        assert!(
            sent[0].contains("Contact: <sip:a@127.0.0.1:5070>;expires=120"),
            "{}",
            sent[0]
        );
        assert_eq!(h.outbox[0].flow, Flow(0));
        assert_eq!(h.signalling.load(), (0, 1));
    }
}
