//! Requests inside an early or confirmed dialog (re-INVITE, UPDATE, PRACK, INFO, REFER, ...),
//! relayed to the other leg under that leg's own CSeq, and their answers.

use std::time::Instant;

use sbc_sip::transaction::{ClientTxId, ServerTxId};
use sbc_sip::{Message, Method};

use super::send::reply_bytes;
use super::{other, B2bua, ClientRole, EndReason, Leg, State};
use crate::media::MediaControl;
use crate::signalling::ids::IdKind;
use crate::signalling::topology::{next_max_forwards, Side};

impl B2bua {
    /// Relay an in-dialog request from `from` to the other leg.
    pub(super) fn relay_request(
        &mut self,
        now: Instant,
        key: u64,
        tx: ServerTxId,
        req: Message,
        from: Side,
        media: &mut dyn MediaControl,
    ) {
        let Ok(max_forwards) = next_max_forwards(req.max_forwards()) else {
            self.reply(now, tx, &req, 483, None);
            return;
        };
        let to = other(from);
        let method = req.method().cloned().unwrap_or(Method::Options);
        let branch = self.ids.generate(IdKind::Branch);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let leg = call.leg_mut(to);
        leg.cseq += 1;
        let cseq = leg.cseq;
        if method == Method::Invite {
            call.reinvite_pending = true;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let leg = call.leg(to);
        // Borrow juggling: build from a snapshot of the leg.
        let snapshot = Leg {
            cseq,
            ..leg.clone()
        };
        let body = match self.anchor_body(now, key, &req, from, media) {
            Ok(body) => body,
            Err(fault) => {
                if let Some(call) = self.calls.get_mut(&key) {
                    call.reinvite_pending = false;
                    call.leg_mut(to).cseq -= 1;
                }
                self.media_exchange_done(now, key, fault.status(), media);
                self.reply_offer_refused(now, tx, &req, fault);
                return;
            }
        };
        match self.send_built(
            now,
            &snapshot,
            &method,
            cseq,
            branch.as_str(),
            max_forwards,
            Some((&req, from)),
            body.as_deref(),
        ) {
            Ok(c) => {
                if method == Method::Invite {
                    if let Some(call) = self.calls.get_mut(&key) {
                        call.relayed_invite = Some((c, tx));
                    }
                }
                self.clients.insert(
                    c,
                    ClientRole::Relay {
                        call: key,
                        server: tx,
                        request: Box::new(req),
                        to,
                        cseq,
                    },
                );
            }
            Err(_) => {
                self.media_exchange_done(now, key, 503, media);
                self.reply(now, tx, &req, 503, None);
            }
        }
    }

    pub(super) fn bye_done(&mut self, _now: Instant, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.byes_pending = call.byes_pending.saturating_sub(1);
        if call.byes_pending == 0 {
            let reason = call.end_reason.unwrap_or(EndReason::Bye(Side::Outside));
            self.remove(key, reason);
        }
    }

    /// The answer to a request relayed on client transaction `tx` (a [`ClientRole::Relay`]):
    /// relayed back to the leg that sent the request; a 2xx to a re-INVITE waits for that leg's ACK.
    pub(super) fn on_relayed_response(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        resp: &Message,
        code: u16,
        media: &mut dyn MediaControl,
    ) {
        let Some(&ClientRole::Relay {
            call: key,
            server,
            to,
            cseq,
            ..
        }) = self.clients.get(&tx)
        else {
            return;
        };
        if code == 100 {
            return;
        }
        let from = other(to);
        let body = self.anchor_response(now, key, resp, to, media);
        // The request stays with its transaction: read in place.
        let Some(ClientRole::Relay { request, .. }) = self.clients.get(&tx) else {
            return;
        };
        let is_invite = request.method() == Some(&Method::Invite);
        // Only the request that carried the offer settles a bigger session it took (RFC 3264 §4:
        // one offer at a time; an INFO or PRACK answered meanwhile does not).
        let offered = !request.body().is_empty();
        let relayed = self.relayed_response(request, resp, from, None, body.as_deref());
        let sent = self.send_relayed(now, server, relayed);
        if code >= 200 && offered {
            self.media_exchange_done(now, key, code, media);
        }
        if is_invite && code >= 200 {
            if let Some(call) = self.calls.get_mut(&key) {
                call.reinvite_pending = false;
                if code < 300 && call.ack_wait.is_none() {
                    let reliable = call.leg(from).reliable;
                    self.await_ack(now, key, to, cseq, server, sent, reliable);
                }
            }
        }
    }

    /// A relayed request failed on client transaction `tx` (timeout or transport error): 408 to
    /// the leg that sent it, and the other leg, now gone, ends the call.
    pub(super) fn on_relay_failure(&mut self, now: Instant, tx: ClientTxId) {
        let Some(ClientRole::Relay {
            call: key,
            server,
            request,
            to,
            ..
        }) = self.clients.get(&tx)
        else {
            return;
        };
        let (key, server, to) = (*key, *server, *to);
        let out = reply_bytes(request, 408, None);
        let _ = self.txs.send_response_bytes(now, server, 408, out);
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.state == State::Ringing)
        {
            // Failed in the early dialog: the call ends as an unanswered one (CANCEL on leg B,
            // a final answer to the caller), not with BYEs on a dialog nobody confirmed.
            if let Some(call) = self.calls.remove(&key) {
                self.teardown(now, key, call, EndReason::LegFailure(to));
            }
            return;
        }
        // The leg that failed is gone: hang up the other one.
        self.end_with_bye(now, key, &[other(to)], EndReason::LegFailure(to));
    }
}
