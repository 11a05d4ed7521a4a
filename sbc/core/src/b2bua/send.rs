//! The B2BUA's one sending layer: local replies, requests built for a leg, relayed responses, ACKs,
//! BYE on both legs, and the teardown that forgets a call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::transaction::{ClientTxId, Flow, ServerTxId, Transmit, TxError, TxId, TxState};
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use super::record::EndedLegs;
use super::{other, uri_of, B2bua, Call, CallId, ClientRole, EndReason, Leg, State};
use crate::media::callmedia::AnchorFault;
use crate::media::MediaControl;
use crate::signalling::ids::IdKind;
use crate::signalling::topology::{copy_headers, Side};

/// The message an ACK answers an offer of, its leg, and the relay to anchor the answer on.
pub(super) type AckSource<'m, 'r> = (&'m Message, Side, &'r mut dyn MediaControl);

impl B2bua {
    /// [`Self::contact`] as text, formatted once (every request the SBC builds writes it twice).
    pub(super) fn contact_text(&self, side: Side) -> &str {
        let [outside, inside] = &self.contact_text;
        match side {
            Side::Outside => outside,
            Side::Inside => inside,
        }
    }

    /// The URI of the SBC's Contact toward `side`, without `sip:`.
    pub(super) fn contact_uri(&self, side: Side) -> &str {
        let [outside, inside] = &self.contact_uri;
        match side {
            Side::Outside => outside,
            Side::Inside => inside,
        }
    }

    pub(super) fn contact(&self, side: Side) -> SocketAddr {
        match side {
            Side::Outside => self.config.outside_contact,
            Side::Inside => self.config.inside_contact,
        }
    }

    /// Answer `req` on server transaction `tx` with `code` and no body.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        code: u16,
        tag: Option<&str>,
    ) {
        let out = reply_bytes(req, code, tag);
        // The transaction may have ended (e.g. a late answer): nothing to send then.
        let _ = self.txs.send_response_bytes(now, tx, code, out);
    }

    /// Refuse `req` before any state was made for it (no route, no room, a dialog that does not
    /// exist): as [`Self::reply`], but an INVITE's refusal is sent once, not retransmitted until an
    /// ACK that a spoofed source never sends (reflection); a retransmitted INVITE gets it again.
    pub(super) fn refuse(&mut self, now: Instant, tx: ServerTxId, req: &Message, code: u16) {
        let out = reply_bytes(req, code, None);
        let _ = self.txs.refuse_bytes(now, tx, code, out);
    }

    /// [`Self::refuse`] for an offer the media anchor refused: its status, and a Warning (399)
    /// naming the reason when it has one (SRTP).
    pub(super) fn refuse_offer(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        fault: AnchorFault,
    ) {
        let code = fault.status();
        let out = reply_bytes_warning(req, code, None, fault.warning());
        let _ = self.txs.refuse_bytes(now, tx, code, out);
    }

    /// [`Self::reply`] for an in-dialog offer the media anchor refused (see
    /// [`Self::refuse_offer`]).
    pub(super) fn reply_offer_refused(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        fault: AnchorFault,
    ) {
        let code = fault.status();
        let out = reply_bytes_warning(req, code, None, fault.warning());
        let _ = self.txs.send_response_bytes(now, tx, code, out);
    }

    /// Answer leg A's INVITE of call `key` with `code` and no body, with the SBC's To tag when
    /// `tagged`.
    pub(super) fn reply_to_a(&mut self, now: Instant, key: u64, code: u16, tagged: bool) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let tag = tagged.then_some(call.a_tag.as_str());
        let out = reply_bytes(&call.invite_a_req, code, tag);
        let server = call.invite_a;
        // The transaction may have ended (e.g. a late answer): nothing to send then.
        let _ = self.txs.send_response_bytes(now, server, code, out);
        self.note_status_to_a(key, code);
    }

    /// The caller got final status `code` on its INVITE (the first one counts: the transaction
    /// layer sends no other).
    fn note_status_to_a(&mut self, key: u64, code: u16) {
        if code >= 200 {
            if let Some(call) = self.calls.get_mut(&key) {
                call.facts.status_to_a.get_or_insert(code);
            }
        }
    }

    pub(super) fn send_response(&mut self, now: Instant, tx: ServerTxId, out: Vec<u8>) {
        match Message::parse(Bytes::from(out)) {
            Ok(m) => {
                // The transaction may have ended (e.g. a late answer): nothing to send then.
                let _ = self.txs.send_response(now, tx, m);
            }
            Err(_) => self.stats.build_failures += 1,
        }
    }

    /// Build a request of `method` on `leg` with `cseq`, copying headers and body from `src` (the
    /// message of the other leg that caused it, with the side it came from); `body` replaces the
    /// copied body (the anchored SDP). Then start its client transaction toward the leg's peer.
    ///
    /// The bytes go to the transaction layer unparsed ([`Transactions::send_request_bytes`]): the
    /// builder writes only what it validated, so parsing it back cost a parse per request for
    /// nothing (debug builds still check that it parses).
    ///
    /// [`Transactions::send_request_bytes`]: sbc_sip::transaction::Transactions::send_request_bytes
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_built(
        &mut self,
        now: Instant,
        leg: &Leg,
        method: &Method,
        cseq: u32,
        branch: &str,
        max_forwards: u8,
        src: Option<(&Message, Side)>,
        body: Option<&[u8]>,
    ) -> Result<ClientTxId, TxError> {
        let out = self.build_request_bytes(leg, method, cseq, branch, max_forwards, src, body);
        self.send_request_bytes(now, out, method, branch, (leg.dest, leg.reliable, leg.flow))
    }

    /// Start the client transaction of a request built by [`Self::build_request_bytes`] toward
    /// `to` (address, over a connection, local flow).
    pub(super) fn send_request_bytes(
        &mut self,
        now: Instant,
        out: Bytes,
        method: &Method,
        branch: &str,
        to: (SocketAddr, bool, Flow),
    ) -> Result<ClientTxId, TxError> {
        debug_assert!(
            Message::parse(out.clone()).is_ok(),
            "built request does not parse"
        );
        let (dest, reliable, flow) = to;
        self.txs
            .send_request_bytes(now, out, method.clone(), branch, dest, reliable, flow)
    }

    /// The bytes of a request, as [`Self::send_built`] describes, for what goes out without a
    /// transaction (ACK for a 2xx) or is kept as well as sent (an INVITE toward a trunk).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_request_bytes(
        &self,
        leg: &Leg,
        method: &Method,
        cseq: u32,
        branch: &str,
        max_forwards: u8,
        src: Option<(&Message, Side)>,
        body: Option<&[u8]>,
    ) -> Bytes {
        let contact = self.contact_text(leg.side);
        let transport = if leg.reliable { "TCP" } else { "UDP" };
        let mut out = Vec::with_capacity(512 + body.map_or(0, <[u8]>::len));
        let mut w = MessageWriter::request(&mut out, method, &leg.target_uri);
        w.header_parts(
            "Via",
            &[
                "SIP/2.0/", transport, " ", contact, ";branch=", branch, ";rport",
            ],
        );
        w.header_u32("Max-Forwards", u32::from(max_forwards));
        w.header("From", &leg.local);
        w.header("To", &leg.remote);
        w.header("Call-ID", &leg.call_id);
        w.header_cseq(cseq, method.as_str());
        if !matches!(method, Method::Ack | Method::Bye | Method::Cancel) {
            w.header_parts("Contact", &["<sip:", self.contact_uri(leg.side), ">"]);
        }
        match src {
            Some((m, from)) => {
                let trusted = self.trusted_now && from == Side::Outside;
                copy_headers(m, from, leg.side, trusted, &self.config.topology, &mut w);
                self.write_owned(m, leg, method, &mut w);
                let body = body.unwrap_or(m.body());
                let ct = (!body.is_empty())
                    .then(|| m.header(HeaderName::ContentType))
                    .flatten();
                w.finish(ct, body);
            }
            None => w.finish(None, b""),
        }
        Bytes::from(out)
    }

    /// The owned headers of a relayed request that the SBC writes from the received one: RAck of a
    /// PRACK (mapped to the INVITE CSeq of the leg, RFC 3262 §7.2), Refer-To of a REFER (toward the
    /// Outside, its host becomes the SBC's), and digest credentials when the policy forwards them.
    fn write_owned(&self, m: &Message, leg: &Leg, method: &Method, w: &mut MessageWriter<'_>) {
        match method {
            Method::Prack => {
                if let Some(rseq) = m
                    .header_by_name("RAck")
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    // The CSeq of the SBC's INVITE on this leg (higher than 1 after a challenge
                    // or a fail-over).
                    let rack = format!("{rseq} {} INVITE", leg.invite_cseq);
                    w.header("RAck", &rack);
                }
            }
            Method::Refer => {
                if let Some(v) = m.header(HeaderName::ReferTo) {
                    if leg.side == Side::Outside {
                        let user = sbc_sip::uri::Uri::parse(uri_of(v))
                            .ok()
                            .and_then(|u| u.user.map(str::to_owned))
                            .unwrap_or_default();
                        let at = if user.is_empty() { "" } else { "@" };
                        let value = format!("<sip:{user}{at}{}>", self.config.outside_contact);
                        w.header("Refer-To", &value);
                    } else {
                        w.header("Refer-To", v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Relay `resp` (received on the other leg) as the answer to `req` on server transaction `tx`;
    /// `body` replaces its body (the anchored SDP). Returns the status and bytes sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay_response(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        resp: &Message,
        to: Side,
        tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Bytes) {
        let relayed = self.relayed_response(req, resp, to, tag, body);
        self.send_relayed(now, tx, relayed)
    }

    /// Send a relayed response (status, bytes) on server transaction `tx`; returns it.
    pub(super) fn send_relayed(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        relayed: (u16, Bytes),
    ) -> (u16, Bytes) {
        // The transaction may have ended (e.g. a late answer): nothing to send then.
        let _ = self
            .txs
            .send_response_bytes(now, tx, relayed.0, relayed.1.clone());
        relayed
    }

    /// Relay `resp` from leg B as the answer to leg A's INVITE of call `key` (with the SBC's To
    /// tag); `body` replaces its body. Returns the status and bytes sent.
    pub(super) fn relay_to_a(
        &mut self,
        now: Instant,
        key: u64,
        resp: &Message,
        body: Option<&[u8]>,
    ) -> Option<(u16, Bytes)> {
        let call = self.calls.get(&key)?;
        let relayed = self.relayed_response(
            &call.invite_a_req,
            resp,
            call.a.side,
            Some(&call.a_tag),
            body,
        );
        let server = call.invite_a;
        let sent = self.send_relayed(now, server, relayed);
        self.note_status_to_a(key, sent.0);
        Some(sent)
    }

    /// The bytes of `resp` (received on the other leg) relayed toward `to` as the answer to `req`.
    pub(super) fn relayed_response(
        &self,
        req: &Message,
        resp: &Message,
        to: Side,
        tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Bytes) {
        let code = resp.status().unwrap_or(500);
        let contact = self.contact_uri(to);
        let mut out = Vec::with_capacity(512 + resp.body().len());
        let mut w = build::response(req, code, build::reason_phrase(code), tag, &mut out);
        if code < 300 && req.method() != Some(&Method::Bye) {
            w.header_parts("Contact", &["<sip:", contact, ">"]);
        } else if (300..400).contains(&code) {
            // A redirect's Contacts are the targets the far end chose for the caller: relayed as
            // they are (docs/b2bua.md, "Redirects").
            for h in resp.headers() {
                if HeaderName::from_bytes(h.raw_name.as_bytes()) == HeaderName::Contact {
                    w.header("Contact", h.value);
                }
            }
        }
        let trusted = self.trusted_now && other(to) == Side::Outside;
        copy_headers(resp, other(to), to, trusted, &self.config.topology, &mut w);
        // Owned headers the far end needs as received: RSeq of a reliable provisional (RFC 3262),
        // the challenge of a 401/407 (the peer answers it end to end).
        for name in ["RSeq", "WWW-Authenticate", "Proxy-Authenticate"] {
            for h in resp.headers() {
                if h.raw_name.eq_ignore_ascii_case(name) {
                    w.header(name, h.value);
                }
            }
        }
        let body = body.unwrap_or(resp.body());
        let ct = (!body.is_empty())
            .then(|| resp.header(HeaderName::ContentType))
            .flatten();
        w.finish(ct, body);
        // Built from parsed parts by the writer: handed on without parsing it again.
        (code, Bytes::from(out))
    }

    /// Send the ACK for a 2xx on the callee leg.
    pub(super) fn send_ack_b(&mut self, key: u64, cseq: u32, src: Option<AckSource<'_, '_>>) {
        let Some(side) = self.calls.get(&key).map(|c| c.b.side) else {
            return;
        };
        self.send_ack_on(key, side, cseq, src);
    }

    /// Send the ACK for a 2xx on leg `side` (outside any transaction).
    pub(super) fn send_ack_on(
        &mut self,
        key: u64,
        side: Side,
        cseq: u32,
        src: Option<AckSource<'_, '_>>,
    ) {
        let branch = self.ids.generate(IdKind::Branch);
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let leg = call.leg(side);
        let snapshot = Leg {
            cseq,
            ..leg.clone()
        };
        // An ACK carries the answer to an offer made in a 2xx (late offer).
        let (src, body) = match (src, self.last_now) {
            (Some((m, from, relay)), Some(now)) => (
                Some((m, from)),
                self.anchor_response(now, key, m, from, relay),
            ),
            (src, _) => (src.map(|(m, from, _)| (m, from)), None),
        };
        let bytes = self.build_request_bytes(
            &snapshot,
            &Method::Ack,
            cseq,
            branch.as_str(),
            70,
            src,
            body.as_deref(),
        );
        self.out.push_back(Transmit {
            dest: snapshot.dest,
            bytes: bytes.clone(),
            flow: snapshot.flow,
        });
        if let Some(call) = self.calls.get_mut(&key) {
            if call.b.side == side {
                call.last_ack_b = Some((cseq, bytes));
            }
        }
    }

    pub(super) fn resend_ack(&mut self, key: u64, resp: &Message) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if let Some((cseq, bytes)) = &call.last_ack_b {
            if *cseq == resp.cseq().seq {
                self.out.push_back(Transmit {
                    dest: call.b.dest,
                    bytes: bytes.clone(),
                    flow: call.b.flow,
                });
            }
        }
    }

    /// Send BYE on `legs` and keep the call until they complete (or the grace deadline passes).
    pub(super) fn end_with_bye(
        &mut self,
        now: Instant,
        key: u64,
        legs: &[Side],
        reason: EndReason,
    ) {
        let grace = 64 * self.config.transactions.t1;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // A 2xx on leg B still waiting for A's ACK is acknowledged before leg B is hung up.
        let b_side = call.b.side;
        let unacked_b = call.ack_wait.take().filter(|w| w.ack_leg == b_side);
        call.state = State::Ending;
        call.end_reason = Some(reason);
        let _ = self.calls.set_deadline(&key, now + grace);
        if let Some(w) = unacked_b {
            self.send_ack_b(key, w.cseq, None);
        }
        let mut sent = 0u8;
        for &side in legs {
            let branch = self.ids.generate(IdKind::Branch);
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let leg = call.leg_mut(side);
            leg.cseq += 1;
            let snapshot = leg.clone();
            if let Ok(c) = self.send_built(
                now,
                &snapshot,
                &Method::Bye,
                snapshot.cseq,
                branch.as_str(),
                70,
                None,
                None,
            ) {
                self.clients.insert(c, ClientRole::Bye(key));
                sent += 1;
            }
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.byes_pending = sent;
        }
        if sent == 0 {
            self.remove(key, reason);
        }
    }

    /// A call's deadline passed: tear down its live legs and forget it.
    pub(super) fn teardown(&mut self, now: Instant, key: u64, call: Box<Call>, reason: EndReason) {
        // Put it back briefly so the helpers can reach it; the table had room for it a moment ago.
        let state = call.state;
        if self.calls.len() >= self.calls.capacity() {
            // Unreachable in practice: the entry just left the table.
            self.forget(key, Some(call), reason);
            return;
        }
        if self
            .calls
            .insert(key, call, now + Duration::from_secs(1))
            .is_err()
        {
            // Checked just above.
            return;
        }
        match state {
            State::Ringing => {
                if self.first_response_missed(now, key) {
                    // Sent on to the next target of the group.
                    return;
                }
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                let invite_b = call.invite_b;
                if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
                    self.send_cancel(now, invite_b);
                }
                self.reply_to_a(now, key, 408, true);
                self.remove(key, reason);
            }
            State::AwaitAck | State::Confirmed => {
                self.end_with_bye(now, key, &[Side::Outside, Side::Inside], reason);
                // The BYEs run in their own transactions; the call does not wait for them.
                self.remove(key, reason);
            }
            State::Ending => {
                // A call that ended before it was answered (a failed relay in the early dialog)
                // leaves no INVITE behind: the caller gets its final answer, leg B its CANCEL.
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                let (invite_a, invite_b) = (call.invite_a, call.invite_b);
                if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
                    self.send_cancel(now, invite_b);
                }
                if self.txs.state(TxId::Server(invite_a)) == Some(TxState::Proceeding) {
                    self.reply_to_a(now, key, 408, true);
                }
                self.remove(key, reason);
            }
        }
    }

    /// A call ended while its relayed re-INVITE still rings on the other leg: CANCEL it there and
    /// answer 408 to the leg that sent it, so neither INVITE transaction stays open forever.
    fn close_relayed_invite(&mut self, client: ClientTxId, server: ServerTxId) {
        let Some(now) = self.last_now else {
            return;
        };
        if self.txs.state(TxId::Client(client)) == Some(TxState::Proceeding) {
            self.send_cancel(now, client);
        }
        if self.txs.state(TxId::Server(server)) == Some(TxState::Proceeding) {
            if let Some(ClientRole::Relay { request, .. }) = self.clients.get(&client) {
                let out = reply_bytes(request, 408, None);
                let _ = self.txs.send_response_bytes(now, server, 408, out);
            }
        }
    }

    /// Draining before a stop (`true`): new calls get 503 (counted in
    /// [`B2buaStats::refused_draining`]); calls in progress go on.
    ///
    /// [`B2buaStats::refused_draining`]: super::B2buaStats::refused_draining
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// The stop: every call still up ends now, BYE on both legs of an answered call, CANCEL on
    /// leg B and 503 to the caller of a ringing one ([`EndReason::Shutdown`]). The BYEs run in
    /// their transactions; a call leaves the table when they complete.
    pub fn end_all_calls(&mut self, now: Instant, media: &mut dyn MediaControl) {
        self.last_now = Some(now);
        let keys: Vec<u64> = self.b_index.values().copied().collect();
        for key in keys {
            let Some(call) = self.calls.get(&key) else {
                continue;
            };
            match call.state {
                State::Ringing => {
                    let invite_b = call.invite_b;
                    if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
                        self.send_cancel(now, invite_b);
                    }
                    self.reply_to_a(now, key, 503, true);
                    self.remove(key, EndReason::Shutdown);
                }
                State::AwaitAck | State::Confirmed => {
                    let sides = [Side::Outside, Side::Inside];
                    self.end_with_bye(now, key, &sides, EndReason::Shutdown);
                }
                State::Ending => {}
            }
        }
        self.pump(now, None, media);
        self.flush_media(media);
    }

    pub(super) fn remove(&mut self, key: u64, reason: EndReason) {
        let call = self.calls.remove(&key);
        self.forget(key, call, reason);
    }

    /// Forget a call that left the table: its media, its indexes, and its record out as the
    /// [`CallEvent::Ended`] of the call (the one way every call ends).
    fn forget(&mut self, key: u64, call: Option<Box<Call>>, reason: EndReason) {
        let Some(mut call) = call else {
            return;
        };
        if let Some((client, server)) = call.relayed_invite.take() {
            self.close_relayed_invite(client, server);
        }
        let session = self.release_media_later(&mut call.media);
        let codecs = call.media.take_codecs();
        self.a_index.remove(&call.a_tag);
        self.b_index.remove(&call.b.call_id);
        self.server_calls.remove(&call.invite_a);
        if let Some(w) = &call.ack_wait {
            self.retx.remove(&(w.next, key));
        }
        let Call { a, b, facts, .. } = *call;
        let ended = self.last_now.unwrap_or(facts.invited);
        let legs = EndedLegs {
            a_call_id: a.call_id,
            a_side: a.side,
            a_dest: a.dest,
            b_call_id: b.call_id,
            target: b.dest,
            target_side: b.side,
        };
        let mut record = facts.into_record(CallId(key), legs, reason, ended);
        let [caller_codec, callee_codec] = codecs;
        record.caller_codec = caller_codec;
        record.callee_codec = callee_codec;
        // Emitted by `flush_media` at the end of this entry point, once the relay's final
        // statistics of the session are in the record.
        self.ending.push((session, Box::new(record)));
    }
}

/// A response to `req` with `code` and no body (`tag`: the SBC's To tag).
/// [`reply_bytes`] with a `Warning: 399 sbc "<text>"` header (RFC 3261 §20.43) when `warning` is
/// set; the text is one of the SBC's own fixed reasons.
pub(super) fn reply_bytes_warning(
    req: &Message,
    code: u16,
    tag: Option<&str>,
    warning: Option<&str>,
) -> Bytes {
    let Some(text) = warning else {
        return reply_bytes(req, code, tag);
    };
    let mut out = Vec::new();
    let mut w = build::response(req, code, build::reason_phrase(code), tag, &mut out);
    w.header_parts("Warning", &["399 sbc \"", text, "\""]);
    w.finish(None, b"");
    Bytes::from(out)
}

pub(super) fn reply_bytes(req: &Message, code: u16, tag: Option<&str>) -> Bytes {
    let mut out = Vec::new();
    build::response(req, code, build::reason_phrase(code), tag, &mut out).finish(None, b"");
    Bytes::from(out)
}
