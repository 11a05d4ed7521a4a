//! INVITE dialogs: a new call, leg B's answers (relayed, challenged, failed over), the wait for
//! A's ACK with 2xx retransmissions, CANCEL, and leg B's failures before the answer.

use std::time::Instant;

use bytes::Bytes;
use sbc_sip::transaction::{ClientTxId, Flow, ServerTxId, TxId, TxState};
use sbc_sip::{build, HeaderName, Message, Method};

use super::record::CallFacts;
use super::{
    leg_uri, uri_of, user_of, AckWait, B2bua, Call, CallEvent, CallId, ClientRole, EndReason, Leg,
    Origin, Refusal, Retarget, Router, State, Target,
};
use crate::media::MediaControl;
use crate::signalling::ids::IdKind;
use crate::signalling::topology::{next_max_forwards, with_tag, Side};

impl B2bua {
    /// The next hop of a new INVITE: a binding of this worker's registrar when the Inside calls the
    /// Contact the SBC registered for a user agent, else the caller's router.
    fn target_of(&self, req: &Message, side: Side, router: &dyn Router) -> Result<Target, Refusal> {
        if side == Side::Inside {
            if let Some(t) = self.binding_target(req) {
                return Ok(t);
            }
        }
        router.route(req, side).and_then(|t| {
            if t.side != side {
                Ok(t)
            } else {
                Err(Refusal::NOT_FOUND)
            }
        })
    }

    /// Answer `req` with the router's refusal (and its Retry-After).
    /// Sent once, like every refusal before state (see [`Self::refuse`]).
    fn refuse_routed(&mut self, now: Instant, tx: ServerTxId, req: &Message, r: Refusal) {
        let Some(secs) = r.retry_after else {
            self.refuse(now, tx, req, r.code);
            return;
        };
        let mut out = Vec::new();
        let mut w = build::response(req, r.code, build::reason_phrase(r.code), None, &mut out);
        w.header("Retry-After", &secs.to_string());
        w.finish(None, b"");
        let _ = self.txs.refuse_bytes(now, tx, r.code, Bytes::from(out));
    }

    /// The registered user agent a request from the Inside names by the Contact the SBC
    /// registered for it (the user part of the Request-URI is the binding's token).
    pub(super) fn binding_target(&self, req: &Message) -> Option<Target> {
        let user = req
            .request_uri()
            .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user)?;
        let b = self.registrar.get(self.tokens.get(user)?)?;
        Some(Target {
            dest: b.source,
            side: Side::Outside,
            reliable: b.transport.is_reliable(),
            flow: b.connection.map_or(self.config.outside_flow, Flow),
            uri: Some(b.contact_uri.clone()),
            user: None,
            auth: None,
            label: None,
            alternates: Vec::new(),
            first_response: None,
            media: None,
            caller_media: None,
        })
    }

    pub(super) fn new_call(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: Message,
        from: Origin,
        router: &dyn Router,
        relay: &mut dyn MediaControl,
    ) {
        let Ok(max_forwards) = next_max_forwards(req.max_forwards()) else {
            self.refuse(now, tx, &req, 483);
            return;
        };
        let target = match self.target_of(&req, from.side, router) {
            Ok(t) => t,
            Err(r) => {
                self.refuse_routed(now, tx, &req, r);
                return;
            }
        };
        if self.calls.len() >= self.calls.capacity() {
            self.refuse(now, tx, &req, 503);
            return;
        }
        if self.draining {
            self.stats.refused_draining += 1;
            self.reply(now, tx, &req, 503, None);
            return;
        }
        // No 100 Trying here: the transaction layer sends one if leg B has not answered within
        // 200 ms (RFC 3261 §17.2.1), so a call the PBX rings at once costs one datagram less.

        let a_tag = self.ids.generate(IdKind::Tag).as_str().to_owned();
        let b_call_id = self.ids.generate(IdKind::CallId).as_str().to_owned();
        let b_tag = self.ids.generate(IdKind::Tag);
        let branch = self.ids.generate(IdKind::Branch);
        let from_value = req.header(HeaderName::From).unwrap_or_default();
        let to_value = req.header(HeaderName::To).unwrap_or_default();
        let [outside_text, inside_text] = &self.contact_text;
        let here = match target.side {
            Side::Outside => outside_text,
            Side::Inside => inside_text,
        };
        let dialled = req
            .request_uri()
            .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user.map(str::to_owned))
            .unwrap_or_default();
        let callee = target.user.clone().unwrap_or_else(|| dialled.clone());
        let caller = user_of(from_value).unwrap_or_else(|| "anonymous".to_owned());
        let b_uri = target
            .uri
            .clone()
            .unwrap_or_else(|| leg_uri(&callee, target.dest));
        let b = Leg {
            side: target.side,
            call_id: b_call_id.clone(),
            local: ["<sip:", &caller, "@", here, ">;tag=", b_tag.as_str()].concat(),
            remote: ["<", &b_uri, ">"].concat(),
            target_uri: b_uri,
            dest: target.dest,
            reliable: target.reliable,
            flow: target.flow,
            cseq: 1,
            invite_cseq: 1,
        };
        let a = Leg {
            side: from.side,
            call_id: req.call_id().to_owned(),
            local: with_tag(to_value, Some(&a_tag)).unwrap_or_default(),
            remote: from_value.to_owned(),
            target_uri: req
                .header(HeaderName::Contact)
                .map(|c| uri_of(c).to_owned())
                .unwrap_or_else(|| format!("sip:{}", from.source)),
            dest: from.source,
            reliable: from.reliable,
            flow: from.flow,
            cseq: 0,
            invite_cseq: 0,
        };
        let key = self.next_call + 1;
        let (mut media, body) = match self.anchor_offer(now, key, &req, &from, &target, relay) {
            Ok(anchored) => anchored,
            Err(fault) => {
                self.refuse_offer(now, tx, &req, fault);
                return;
            }
        };
        let invite = self.build_request_bytes(
            &b,
            &Method::Invite,
            1,
            branch.as_str(),
            max_forwards,
            Some((&req, from.side)),
            body.as_deref(),
        );
        // Several targets in the group (and none of them a trunk with credentials or a fixed
        // Request-URI): keep what it takes to try the next one.
        let retarget = (!target.alternates.is_empty()
            && target.uri.is_none()
            && target.auth.is_none())
        .then(|| {
            Box::new(Retarget {
                alternates: target.alternates.clone(),
                body: body.clone(),
                max_forwards,
                callee: callee.clone(),
            })
        });
        // Toward a trunk with credentials the INVITE is kept (parsed), to answer its challenge.
        let kept = target
            .auth
            .as_ref()
            .and_then(|_| Message::parse(invite.clone()).ok());
        let to = (b.dest, b.reliable, b.flow);
        let sent = self
            .send_request_bytes(now, invite, &Method::Invite, branch.as_str(), to)
            .ok();
        let Some(invite_b) = sent else {
            self.release_media(relay, &mut media, now);
            self.refuse(now, tx, &req, 503);
            return;
        };
        self.next_call = key;
        // The first-response timer applies when it is shorter than the ringing timeout.
        let first_response = target
            .first_response
            .unwrap_or(self.config.first_response_timeout);
        let first_response = if first_response < self.config.ringing_timeout {
            first_response
        } else {
            std::time::Duration::ZERO
        };
        let awaiting_first = !first_response.is_zero();
        let deadline = now
            + if awaiting_first {
                first_response
            } else {
                self.config.ringing_timeout
            };
        let call = Call {
            state: State::Ringing,
            a,
            b,
            invite_a: tx,
            invite_a_req: req,
            invite_b,
            a_tag: a_tag.clone(),
            cancel_pending: false,
            cancelled: false,
            ack_wait: None,
            last_ack_b: None,
            reinvite_pending: false,
            relayed_invite: None,
            byes_pending: 0,
            end_reason: None,
            media,
            auth: target.auth.clone().zip(kept).map(Box::new),
            auth_answered: 0,
            first_response,
            awaiting_first,
            ended_forks: Vec::new(),
            dtmf_out: None,
            retarget,
            facts: CallFacts {
                caller,
                dialled,
                callee,
                trunk: target.auth.is_some(),
                label: target.label,
                invited: now,
                ringing: None,
                answered: None,
                status_to_a: None,
                failovers: 0,
            },
        };
        if self.calls.insert(key, Box::new(call), deadline).is_err() {
            // Checked above; the leg-B INVITE is left to time out on its own.
            return;
        }
        self.a_index.insert(a_tag, key);
        self.b_index.insert(b_call_id, key);
        self.server_calls.insert(tx, key);
        self.clients.insert(invite_b, ClientRole::Invite(key));
        self.events
            .push_back(CallEvent::Started { call: CallId(key) });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn await_ack(
        &mut self,
        now: Instant,
        key: u64,
        ack_leg: Side,
        cseq: u32,
        server: ServerTxId,
        response: (u16, Bytes),
        reliable: bool,
    ) {
        let t1 = self.config.transactions.t1;
        let next = now + t1;
        if let Some(call) = self.calls.get_mut(&key) {
            call.ack_wait = Some(AckWait {
                ack_leg,
                cseq,
                server,
                response,
                interval: t1,
                next,
                give_up: now + 64 * t1,
            });
            if !reliable {
                self.retx.insert((next, key));
            }
        }
    }

    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        key: u64,
        resp: Message,
        code: u16,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.awaiting_first {
            // Leg B's target answered: from now on only the ringing timeout applies.
            call.awaiting_first = false;
            let until = call.facts.invited + self.config.ringing_timeout;
            let _ = self.calls.set_deadline(&key, until);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if code == 100 {
            return;
        }
        if code < 200 {
            call.facts.ringing.get_or_insert(now);
            if call.state != State::Ringing || call.cancelled {
                if call.cancel_pending {
                    call.cancel_pending = false;
                    let invite_b = call.invite_b;
                    self.send_cancel(now, invite_b);
                }
                return;
            }
            // The callee's early dialog (the first one, when it forks): PRACK and UPDATE go to it.
            if resp.to_tag().is_some() && !call.b.remote_tagged() {
                call.b.remote = resp.header(HeaderName::To).unwrap_or_default().to_owned();
                if let Some(c) = resp.header(HeaderName::Contact) {
                    call.b.target_uri = uri_of(c).to_owned();
                }
            }
            let b_side = call.b.side;
            let body = self.anchor_response(now, key, &resp, b_side, media);
            self.relay_to_a(now, key, &resp, body.as_deref());
            return;
        }
        if code < 300 {
            match call.state {
                State::Ringing => {}
                State::Ending | State::AwaitAck | State::Confirmed => {
                    // A retransmitted 2xx: repeat the ACK once it has been sent; another fork's
                    // 2xx: acknowledged and ended.
                    self.late_2xx(now, key, &resp);
                    return;
                }
            }
            call.b.remote = resp.header(HeaderName::To).unwrap_or_default().to_owned();
            if let Some(c) = resp.header(HeaderName::Contact) {
                call.b.target_uri = uri_of(c).to_owned();
            }
            if call.cancelled {
                // The answer crossed A's CANCEL: acknowledge and hang up leg B, 487 to A.
                let (b_side, cseq) = (call.b.side, call.b.invite_cseq);
                let reason = call.end_reason.unwrap_or(EndReason::Cancelled);
                self.send_ack_b(key, cseq, None);
                self.reply_to_a(now, key, 487, false);
                self.end_with_bye(now, key, &[b_side], reason);
                return;
            }
            call.state = State::AwaitAck;
            call.facts.answered = Some(now);
            self.media_answered(key);
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let (server, reliable, b_side) = (call.invite_a, call.a.reliable, call.b.side);
            let cseq = call.b.invite_cseq;
            let _ = self
                .calls
                .set_deadline(&key, now + self.config.no_ack_timeout);
            self.events
                .push_back(CallEvent::Answered { call: CallId(key) });
            let body = self.anchor_response(now, key, &resp, b_side, media);
            if let Some(sent) = self.relay_to_a(now, key, &resp, body.as_deref()) {
                self.await_ack(now, key, b_side, cseq, server, sent, reliable);
            }
            return;
        }
        // Non-2xx final: the transaction layer ACKs leg B; relay the status.
        if call.state != State::Ringing {
            return;
        }
        if matches!(code, 401 | 407) && call.auth.is_some() && !call.cancelled {
            if call.auth_answered == 0 && self.answer_challenge(now, key, &resp) {
                return;
            }
            // Refused credentials (or an unanswerable challenge): the caller cannot answer the
            // carrier's challenge either.
            if !self.calls.contains_key(&key) {
                return;
            }
            self.stats.trunk_auth_failures += 1;
            self.reply_to_a(now, key, 403, true);
            self.remove(key, EndReason::Rejected(code));
            return;
        }
        if code == 503 {
            // Passive health: a target that refuses a new call as unavailable is down at once.
            self.target_failed(key);
        }
        if matches!(code, 408 | 500 | 503 | 504) && self.retarget(now, key) {
            return;
        }
        let Some((cancelled, set)) = self.calls.get(&key).map(|c| (c.cancelled, c.end_reason))
        else {
            return;
        };
        self.relay_to_a(now, key, &resp, None);
        let reason = if cancelled {
            // The operator's hang-up names itself; a CANCEL of the caller's is `Cancelled`.
            set.unwrap_or(EndReason::Cancelled)
        } else {
            EndReason::Rejected(code)
        };
        self.remove(key, reason);
    }

    /// Leg B's target refused the new call (or never answered) before any provisional response:
    /// send the INVITE to the next target of its group. False when there is none to try (the
    /// call then fails as it would have).
    pub(super) fn retarget(&mut self, now: Instant, key: u64) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        if call.state != State::Ringing || call.cancelled || call.b.remote_tagged() {
            return false;
        }
        let Some(rt) = call.retarget.as_mut() else {
            return false;
        };
        if rt.alternates.is_empty() {
            return false;
        }
        let (dest, reliable) = rt.alternates.remove(0);
        let max_forwards = rt.max_forwards;
        let uri = leg_uri(&rt.callee, dest);
        call.b.remote = ["<", &uri, ">"].concat();
        call.b.target_uri = uri;
        call.b.dest = dest;
        call.b.reliable = reliable;
        call.b.cseq = call.b.cseq.saturating_add(1);
        call.b.invite_cseq = call.b.cseq;
        call.facts.failovers = call.facts.failovers.saturating_add(1);
        // The next target gets its own first-response time (the ringing timeout still counts
        // from the caller's INVITE).
        call.awaiting_first = !call.first_response.is_zero();
        let deadline = if call.awaiting_first {
            now + call.first_response
        } else {
            call.facts.invited + self.config.ringing_timeout
        };
        let _ = self.calls.set_deadline(&key, deadline);
        let branch = self.ids.generate(IdKind::Branch);
        let Some(call) = self.calls.get(&key) else {
            return false;
        };
        // Built from the call in place: the caller's INVITE and the kept body are only read.
        let body = call.retarget.as_ref().and_then(|rt| rt.body.as_deref());
        let invite = self.build_request_bytes(
            &call.b,
            &Method::Invite,
            call.b.cseq,
            branch.as_str(),
            max_forwards,
            Some((&call.invite_a_req, call.a.side)),
            body,
        );
        let to = (call.b.dest, call.b.reliable, call.b.flow);
        let sent = self.send_request_bytes(now, invite, &Method::Invite, branch.as_str(), to);
        let Ok(tx) = sent else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&key) {
            call.invite_b = tx;
        }
        self.clients.insert(tx, ClientRole::Invite(key));
        self.stats.failovers += 1;
        true
    }

    pub(super) fn on_cancelled(&mut self, now: Instant, invite: ServerTxId) {
        let Some(&key) = self.server_calls.get(&invite) else {
            return;
        };
        self.cancel_b(now, key);
    }

    /// A cancelled the call before the answer (CANCEL, or BYE on the early dialog).
    pub(super) fn cancel_b(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Ringing || call.cancelled {
            return;
        }
        call.cancelled = true;
        let invite_b = call.invite_b;
        if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
            self.send_cancel(now, invite_b);
        } else if let Some(call) = self.calls.get_mut(&key) {
            // RFC 3261 §9.1: no CANCEL before a provisional response; sent on the first one.
            call.cancel_pending = true;
        }
    }

    pub(super) fn send_cancel(&mut self, now: Instant, invite_b: ClientTxId) {
        if let Ok(c) = self.txs.send_cancel(now, invite_b) {
            self.clients.insert(c, ClientRole::Cancel);
        }
    }

    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        ack: Message,
        side: Side,
        media: &mut dyn MediaControl,
    ) {
        let Some(key) = self.find(&ack, side) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(wait) = call.ack_wait.take() else {
            return;
        };
        if wait.ack_leg == side {
            // An ACK from the leg that sent the 2xx: not the one awaited.
            call.ack_wait = Some(wait);
            return;
        }
        if call.state == State::AwaitAck {
            call.state = State::Confirmed;
            let _ = self
                .calls
                .set_deadline(&key, now + self.config.max_call_duration);
        }
        self.send_ack_on(key, wait.ack_leg, wait.cseq, Some((&ack, side, media)));
    }

    pub(super) fn on_stray_response(&mut self, now: Instant, resp: Message) {
        let key = self.b_index.get(resp.call_id()).copied();
        let is_2xx_invite = resp.cseq().method == Method::Invite
            && resp.status().is_some_and(|c| (200..300).contains(&c));
        match key {
            Some(key) if is_2xx_invite => self.late_2xx(now, key, &resp),
            _ => self.stats.dropped += 1,
        }
    }

    /// A 2xx to leg B's INVITE after the call took its answer: from the answering fork, a
    /// retransmission (the ACK again); from another fork (RFC 3261 §13.2.2.4), that dialog is
    /// acknowledged and ended with BYE, once (its retransmissions get the ACK again).
    fn late_2xx(&mut self, now: Instant, key: u64, resp: &Message) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(tag) = resp.to_tag() else {
            return;
        };
        let answered = sbc_sip::header::NameAddr::parse(&call.b.remote)
            .ok()
            .and_then(|n| n.tag().map(|t| t == tag));
        if answered != Some(false) {
            self.resend_ack(key, resp);
            return;
        }
        let first = !call.ended_forks.iter().any(|t| t == tag);
        if first {
            call.ended_forks.push(tag.to_owned());
        }
        let mut fork = call.b.clone();
        fork.remote = resp.header(HeaderName::To).unwrap_or_default().to_owned();
        if let Some(c) = resp.header(HeaderName::Contact) {
            fork.target_uri = uri_of(c).to_owned();
        }
        let seq = resp.cseq().seq;
        let ack_branch = self.ids.generate(IdKind::Branch);
        let ack = self.build_request_bytes(
            &fork,
            &Method::Ack,
            seq,
            ack_branch.as_str(),
            70,
            None,
            None,
        );
        self.out.push_back(sbc_sip::transaction::Transmit {
            dest: fork.dest,
            bytes: ack,
            flow: fork.flow,
        });
        if !first {
            return;
        }
        let bye_branch = self.ids.generate(IdKind::Branch);
        let bye = self.send_built(
            now,
            &fork,
            &Method::Bye,
            seq.saturating_add(1),
            bye_branch.as_str(),
            70,
            None,
            None,
        );
        if let Ok(c) = bye {
            self.clients.insert(c, ClientRole::Fire);
        }
        self.stats.forks_ended += 1;
    }

    /// Passive health: leg B's current target failed a new call (no first response, no final
    /// response, or 503); reported as [`CallEvent::TargetFailed`].
    fn target_failed(&mut self, key: u64) {
        if let Some(call) = self.calls.get(&key) {
            self.events.push_back(CallEvent::TargetFailed {
                target: call.b.dest,
            });
        }
    }

    /// The first-response time of leg B's current target passed with no response at all: the
    /// target is reported failed, its INVITE abandoned, and the next target of the group tried.
    /// False when there is none (the caller then gets 408, as on any ringing timeout).
    pub(super) fn first_response_missed(&mut self, now: Instant, key: u64) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        if !call.awaiting_first || call.state != State::Ringing {
            return false;
        }
        call.awaiting_first = false;
        let old = call.invite_b;
        self.target_failed(key);
        // Its retransmissions stop and its timeout reaches no call.
        self.clients.remove(&old);
        self.txs.handle_transport_error(TxId::Client(old));
        self.retarget(now, key)
    }

    pub(super) fn retransmit_2xx(&mut self, now: Instant, at: Instant, key: u64) {
        let t2 = self.config.transactions.t2;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(wait) = call.ack_wait.as_mut() else {
            return;
        };
        if wait.next != at {
            return;
        }
        if now >= wait.give_up {
            call.ack_wait = None;
            self.end_with_bye(now, key, &[Side::Outside, Side::Inside], EndReason::NoAck);
            return;
        }
        wait.interval = (wait.interval * 2).min(t2);
        wait.next = now + wait.interval;
        let (server, (code, response), next) = (wait.server, wait.response.clone(), wait.next);
        self.retx.insert((next, key));
        let _ = self.txs.send_response_bytes(now, server, code, response);
    }

    /// Leg B's INVITE failed (timeout or transport error): the next target of the group, else
    /// 408 to A (487 once A cancelled) while the call still rings.
    pub(super) fn on_invite_failure(&mut self, now: Instant, key: u64) {
        self.target_failed(key);
        if self.retarget(now, key) {
            return;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state == State::Ringing {
            let (cancelled, set) = (call.cancelled, call.end_reason);
            let code = if cancelled { 487 } else { 408 };
            self.reply_to_a(now, key, code, true);
            let reason = if cancelled {
                set.unwrap_or(EndReason::Cancelled)
            } else {
                EndReason::NoAnswer
            };
            self.remove(key, reason);
        }
    }
}
