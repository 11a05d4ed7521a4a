//! Carrier trunks: the SBC's own registrations with them, and digest challenges to calls
//! answered with the trunk's credentials.

use std::time::Instant;

use bytes::Bytes;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use super::{B2bua, ClientRole};
use crate::registration::digest::{Challenge, Credentials, DigestRequest};
use crate::registration::trunkreg::{
    RegState, RegStats, TrunkRegistration, TrunkRegistrationConfig,
};
use crate::signalling::ids::IdKind;
use crate::signalling::topology::Side;

impl B2bua {
    /// Keep the SBC registered with a carrier trunk (the first REGISTER goes out at `now`).
    pub fn register_trunk(&mut self, config: TrunkRegistrationConfig, now: Instant) {
        let call_id = self.ids.generate(IdKind::CallId).as_str().to_owned();
        let tag = self.ids.generate(IdKind::Tag).as_str().to_owned();
        self.trunk_regs
            .push(TrunkRegistration::new(config, call_id, tag, now));
    }

    /// The trunk registrations: name, state and counters.
    pub fn trunk_registrations(&self) -> impl Iterator<Item = (&str, RegState, RegStats)> + '_ {
        self.trunk_regs
            .iter()
            .map(|r| (r.config().name.as_str(), r.state(), r.stats()))
    }

    /// The SBC is stopping: every trunk registration sends its REGISTER with `Expires: 0` now
    /// (answering a challenge once, as for a registration). Returns how many went out; see
    /// [`Self::trunks_closing`] for when they are answered.
    pub fn unregister_trunks(&mut self, now: Instant) -> usize {
        let mut sent = 0;
        for i in 0..self.trunk_regs.len() {
            if self.trunk_regs.get_mut(i).is_some_and(|r| r.close(now)) {
                self.send_trunk_register(now, i, None);
                sent += 1;
            }
        }
        sent
    }

    /// Whether a trunk's removal ([`Self::unregister_trunks`]) is still unanswered.
    pub fn trunks_closing(&self) -> bool {
        self.trunk_regs.iter().any(TrunkRegistration::closing)
    }

    /// Send trunk `i`'s REGISTER, answering `challenge` when given.
    pub(super) fn send_trunk_register(
        &mut self,
        now: Instant,
        i: usize,
        challenge: Option<&Challenge>,
    ) {
        let branch = self.ids.generate(IdKind::Branch);
        let cnonce = self.ids.generate(IdKind::Tag);
        let contact = self.config.outside_contact;
        let params = self.config.outside_contact_params;
        let flow = self.config.outside_flow;
        let Some(r) = self.trunk_regs.get_mut(i) else {
            return;
        };
        let (dest, reliable) = (r.config().registrar, r.config().reliable);
        let Some(msg) = r.build(
            branch.as_str(),
            contact,
            params,
            challenge.map(|c| (c, cnonce.as_str())),
        ) else {
            r.on_failure(now);
            return;
        };
        match self.txs.send_request_on(now, msg, dest, reliable, flow) {
            Ok(tx) => {
                self.clients.insert(tx, ClientRole::TrunkRegister(i));
            }
            Err(_) => {
                if let Some(r) = self.trunk_regs.get_mut(i) {
                    r.on_failure(now);
                }
            }
        }
    }

    /// Answer leg B's 401/407 with the trunk's credentials: the kept INVITE again, with a new
    /// branch, the next CSeq and the credentials header (RFC 3261 §22.2). Returns whether it was
    /// sent.
    pub(super) fn answer_challenge(&mut self, now: Instant, key: u64, resp: &Message) -> bool {
        let branch = self.ids.generate(IdKind::Branch);
        let cnonce = self.ids.generate(IdKind::Tag);
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some((auth, invite)) = call.auth.as_deref() else {
            return false;
        };
        // The topmost answerable challenge (one realm: a trunk has one account).
        let Some(challenge) = Challenge::from_response(resp, true)
            .ok()
            .and_then(|found| found.into_iter().next())
        else {
            return false;
        };
        let creds = Credentials {
            username: &auth.username,
            password: &auth.password,
        };
        let uri = invite.request_uri().unwrap_or_default();
        let req = DigestRequest {
            method: "INVITE",
            uri,
            body: Some(invite.body()),
        };
        let Ok(authz) = challenge.respond(&creds, &req, cnonce.as_str(), 1) else {
            return false;
        };
        let cseq = call.b.cseq + 1;
        let transport = if call.b.reliable { "TCP" } else { "UDP" };
        let contact = if call.b.side == Side::Inside {
            self.config.inside_contact
        } else {
            self.config.outside_contact
        };
        let mut out = Vec::with_capacity(invite.raw().len() + 256);
        let mut w = MessageWriter::request(&mut out, &Method::Invite, uri);
        let via = format!(
            "SIP/2.0/{transport} {contact};branch={};rport",
            branch.as_str()
        );
        w.header("Via", &via);
        for h in invite.headers() {
            let skip = matches!(
                HeaderName::from_bytes(h.raw_name.as_bytes()),
                HeaderName::Via
                    | HeaderName::CSeq
                    | HeaderName::ContentLength
                    | HeaderName::ContentType
            );
            if !skip {
                w.header(h.raw_name, h.value);
            }
        }
        let cseq_value = format!("{cseq} INVITE");
        w.header("CSeq", &cseq_value);
        w.header(authz.name, &authz.value);
        w.finish(invite.header(HeaderName::ContentType), invite.body());
        let Ok(msg) = Message::parse(Bytes::from(out)) else {
            self.stats.build_failures += 1;
            return false;
        };
        let (dest, reliable, flow) = (call.b.dest, call.b.reliable, call.b.flow);
        let Ok(tx) = self.txs.send_request_on(now, msg, dest, reliable, flow) else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&key) {
            self.clients.remove(&call.invite_b);
            call.invite_b = tx;
            call.b.cseq = cseq;
            call.b.invite_cseq = cseq;
            call.auth_answered += 1;
        }
        self.clients.insert(tx, ClientRole::Invite(key));
        self.stats.trunk_auth_answered += 1;
        true
    }
}
