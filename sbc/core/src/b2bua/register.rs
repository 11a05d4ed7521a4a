//! REGISTER relay: the binding of a user agent is kept here, and the registrar behind the SBC
//! sees the SBC's own Contact (registered, refreshed and removed per binding).
//!
//! A binding is created, moved (another source, flow or Call-ID) or removed only when the
//! registrar behind the SBC answers 2xx to the REGISTER that asked for it; until then the binding
//! stays as it was, so a stranger's REGISTER (or `Contact: *`) changes nothing unless the PBX
//! accepts it. A refresh from the binding's own source, flow and Call-ID with a higher CSeq is
//! answered here. Every Contact of a REGISTER is applied: one request to the PBX per binding, and
//! the UA's answer waits for all of them (200 when all are accepted, applied together; else the
//! first refusal, and nothing changes). With no registrar behind, the SBC's binding table is the
//! registration and changes are applied at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::transaction::ServerTxId;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use super::{B2bua, ClientRole, Origin, PbxReg, Router, Target};
use crate::registration::registrar::{
    parse_expires, Aor, Binding, BindingKey, Change, RegContact, RegisterOutcome, RegisterRequest,
    RegistrarError, Transport,
};
use crate::signalling::ids::IdKind;
use crate::signalling::nat;
use crate::signalling::topology::Side;

/// The REGISTERs of user agents waiting for the PBX, and a change counter for storage.
#[derive(Debug, Default)]
pub(super) struct RegRelay {
    batches: HashMap<u64, RegBatch>,
    next: u64,
    /// Bumped when a binding is created, moved or removed (see
    /// [`B2bua::registrations_generation`]).
    generation: u64,
}

/// One REGISTER of a user agent, waiting for the PBX's answers to the requests it caused.
#[derive(Debug)]
struct RegBatch {
    server: ServerTxId,
    request: Box<Message>,
    aor: Aor,
    /// The binding whose expiry goes in the `Expires` header of the 200.
    first: Option<BindingKey>,
    waiting: usize,
    /// The changes the PBX accepted, with the expiry it granted.
    granted: Vec<(BindingKey, Change, Duration)>,
    /// Every binding a request was sent for (their PBX state is released at the end).
    keys: Vec<BindingKey>,
    refused: Option<Refusal>,
}

/// How the PBX refused (or did not answer) one request of a batch.
#[derive(Debug)]
enum Refusal {
    Response(Box<Message>),
    Status(u16),
}

/// One binding with the SBC's registration of it behind, as stored across a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRegistration {
    /// The binding (its instants are set again on restore).
    pub binding: Binding,
    /// Time left of the UA binding.
    pub ua_left: Duration,
    /// Time left of the PBX binding.
    pub pbx_left: Duration,
    /// The user part of the SBC's Contact at the PBX.
    pub token: String,
    /// Call-ID of the SBC's registration at the PBX.
    pub call_id: String,
    /// Its From tag.
    pub tag: String,
    /// Its last CSeq.
    pub cseq: u32,
    /// Where it was sent.
    pub dest: std::net::SocketAddr,
    /// The Request-URI it was sent with, when the target names one.
    pub uri: Option<String>,
    /// Whether the target is reached over a reliable transport.
    pub reliable: bool,
    /// The flow it was sent on (this worker's inside socket).
    pub flow: u64,
}

impl B2bua {
    /// A REGISTER from the Outside: each Contact is decided by the registrar; what needs the PBX's
    /// consent is asked of the registrar behind the SBC (the router's target, when there is one),
    /// which sees the SBC's own Contact.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        from: Origin,
        router: &dyn Router,
    ) {
        self.stats.registers += 1;
        self.expire_bindings(now);
        let Ok(aor) = Aor::parse(req.header(HeaderName::To).unwrap_or_default()) else {
            self.reply(now, tx, req, 400, None);
            return;
        };
        let mut contacts = Vec::new();
        for value in req.header_values(HeaderName::Contact) {
            let Ok(c) = RegContact::parse(value) else {
                self.reply(now, tx, req, 400, None);
                return;
            };
            if !contacts.contains(&c) {
                contacts.push(c);
            }
        }
        if contacts.is_empty() {
            // A query of the bindings (RFC 3261 §10.2.3).
            self.answer_register(now, tx, req, &aor, None);
            return;
        }
        if contacts.len() > 1 && contacts.contains(&RegContact::Star) {
            self.refuse_register(now, tx, req, RegistrarError::InvalidStar);
            return;
        }
        if contacts.len() > self.registrar.config().max_contacts_per_aor {
            self.refuse_register(now, tx, req, RegistrarError::TooManyContacts);
            return;
        }
        let expires = req.header(HeaderName::Expires).and_then(parse_expires);
        let transport = Transport::from_token(req.top_via().transport).unwrap_or(Transport::Udp);
        let nated = nat::detect(req, from.source).is_nated();
        let mut first = None;
        let mut forwards = Vec::new();
        for contact in contacts {
            let r = RegisterRequest {
                aor: &aor,
                contact,
                source: from.source,
                transport,
                connection: Some(from.flow.0),
                expires,
                call_id: req.call_id(),
                cseq: req.cseq().seq,
                nated,
            };
            match self.registrar.handle_register(now, &r) {
                Err(e) => {
                    self.refuse_register(now, tx, req, e);
                    return;
                }
                Ok(RegisterOutcome::Local { key, .. }) => {
                    first.get_or_insert(key);
                }
                Ok(RegisterOutcome::Forward {
                    change,
                    pbx_expires,
                    ..
                }) => {
                    if let Change::Bind(b) = &change {
                        first.get_or_insert_with(|| b.key.clone());
                    }
                    forwards.push((change, pbx_expires));
                }
                Ok(RegisterOutcome::Unchanged) => {}
            }
        }
        if forwards.is_empty() {
            self.answer_register(now, tx, req, &aor, first.as_ref());
            return;
        }
        let Some(target) = router
            .route(req, Side::Outside)
            .ok()
            .filter(|t| t.side == Side::Inside)
        else {
            // No registrar behind: the SBC's binding is the registration.
            for (change, asked) in &forwards {
                self.apply_change(now, change, *asked);
            }
            self.answer_register(now, tx, req, &aor, first.as_ref());
            return;
        };
        let id = self.reg_relay.next;
        self.reg_relay.next = id.wrapping_add(1);
        let mut batch = RegBatch {
            server: tx,
            request: Box::new(req.clone()),
            aor,
            first,
            waiting: 0,
            granted: Vec::new(),
            keys: Vec::new(),
            refused: None,
        };
        for (change, asked) in forwards {
            let key = match &change {
                Change::Bind(b) => b.key.clone(),
                Change::Remove(k) => k.clone(),
                Change::RemoveAll(aor) => match self.registrar.lookup(aor).next() {
                    Some(b) => BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref()),
                    None => continue,
                },
            };
            let star = matches!(change, Change::RemoveAll(_));
            let sent = self.register_at_pbx(
                now,
                &key,
                target.clone(),
                asked,
                Some((id, change, req)),
                star,
            );
            batch.keys.push(key);
            if sent {
                batch.waiting += 1;
            } else {
                batch.refused.get_or_insert(Refusal::Status(503));
            }
        }
        if batch.waiting == 0 {
            self.finish_batch(now, batch);
        } else {
            self.reg_relay.batches.insert(id, batch);
        }
    }

    /// The UA's REGISTER refused by the registrar's rules (nothing was changed).
    fn refuse_register(&mut self, now: Instant, tx: ServerTxId, req: &Message, e: RegistrarError) {
        let code = e.status_code();
        let mut out = Vec::new();
        let mut w = build::response(req, code, build::reason_phrase(code), None, &mut out);
        if let RegistrarError::IntervalTooBrief { min } = e {
            w.header_u32(
                "Min-Expires",
                u32::try_from(min.as_secs()).unwrap_or(u32::MAX),
            );
        }
        w.finish(None, b"");
        self.send_response(now, tx, out);
    }

    /// Apply a change the PBX accepted (or that needs no PBX), granting `granted`. A binding that
    /// cannot be stored (table full) is removed at the PBX again. Returns whether it was applied.
    fn apply_change(&mut self, now: Instant, change: &Change, granted: Duration) -> bool {
        self.reg_relay.generation = self.reg_relay.generation.wrapping_add(1);
        match self.registrar.commit(now, change, granted) {
            Ok(removed) => {
                for b in removed {
                    let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
                    self.forget_pbx_reg(&key);
                }
                true
            }
            Err(_) => {
                if let Some(key) = change.key() {
                    if self.registrar.get(key).is_none() {
                        self.deregister_at_pbx(now, key);
                    }
                }
                false
            }
        }
    }

    /// 200 to the UA's REGISTER: every binding of `aor` held here, each with its time left; the
    /// `Expires` header gives the time left of `first` (the first Contact of the request).
    fn answer_register(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        aor: &Aor,
        first: Option<&BindingKey>,
    ) {
        // Whole seconds, rounded up: the binding was stamped a moment before the registrar behind
        // the SBC answered.
        let left = |b: &Binding| {
            let d = b.expires_ua.saturating_duration_since(now);
            let whole = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
            u32::try_from(whole).unwrap_or(u32::MAX)
        };
        let held: Vec<String> = self
            .registrar
            .lookup(aor)
            .map(|b| format!("<{}>;expires={}", b.contact_uri, left(b)))
            .collect();
        let expires = first.and_then(|k| self.registrar.get(k)).map(left);
        let mut out = Vec::new();
        let mut w = build::response(req, 200, "OK", None, &mut out);
        for c in &held {
            w.header("Contact", c);
        }
        if let Some(secs) = expires {
            w.header_u32("Expires", secs);
        }
        w.finish(None, b"");
        self.send_response(now, tx, out);
    }

    /// Register (or refresh, or remove with `pbx_expires` zero) the SBC's Contact for binding
    /// `key` at `target`; `star` sends `Contact: *` (every binding of the AoR). `ua` is the batch
    /// of the UA's REGISTER waiting for the answer, with the change the answer decides. Returns
    /// whether the request could be sent.
    fn register_at_pbx(
        &mut self,
        now: Instant,
        key: &BindingKey,
        target: Target,
        pbx_expires: Duration,
        ua: Option<(u64, Change, &Message)>,
        star: bool,
    ) -> bool {
        if !self.pbx_regs.contains_key(key) {
            let token = self.ids.generate(IdKind::Tag).as_str().to_owned();
            let reg = PbxReg {
                token: token.clone(),
                call_id: self.ids.generate(IdKind::CallId).as_str().to_owned(),
                tag: self.ids.generate(IdKind::Tag).as_str().to_owned(),
                cseq: 0,
                target: target.clone(),
                inflight: 0,
            };
            self.tokens.insert(token, key.clone());
            self.pbx_regs.insert(key.clone(), reg);
        }
        let Some(reg) = self.pbx_regs.get_mut(key) else {
            return false;
        };
        reg.cseq = reg.cseq.wrapping_add(1);
        reg.target = target;
        let secs = u32::try_from(pbx_expires.as_secs()).unwrap_or(u32::MAX);
        let creds = ua.as_ref().map(|(_, _, m)| *m);
        let Some(msg) = self.build_register(key, secs, creds, star) else {
            self.release_pbx_reg(key);
            return false;
        };
        let Some(reg) = self.pbx_regs.get(key) else {
            return false;
        };
        let (dest, reliable, flow) = (reg.target.dest, reg.target.reliable, reg.target.flow);
        let Ok(c) = self.txs.send_request_on(now, msg, dest, reliable, flow) else {
            self.release_pbx_reg(key);
            return false;
        };
        let role = match ua {
            Some((batch, change, _)) => {
                if let Some(reg) = self.pbx_regs.get_mut(key) {
                    reg.inflight = reg.inflight.saturating_add(1);
                }
                ClientRole::Register {
                    batch,
                    key: key.clone(),
                    change,
                }
            }
            None => ClientRole::Fire,
        };
        self.clients.insert(c, role);
        true
    }

    /// The SBC's REGISTER for binding `key`, asking `expires` seconds (`Contact: *` when `star`),
    /// with the UA's credentials when the policy toward the Inside forwards them.
    fn build_register(
        &mut self,
        key: &BindingKey,
        expires: u32,
        creds: Option<&Message>,
        star: bool,
    ) -> Option<Message> {
        let branch = self.ids.generate(IdKind::Branch);
        let reg = self.pbx_regs.get(key)?;
        let here = self.config.inside_contact;
        let uri = reg
            .target
            .uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}", reg.target.dest));
        let transport = if reg.target.reliable { "TCP" } else { "UDP" };
        let aor = key.aor.as_str();
        let mut out = Vec::with_capacity(512);
        let mut w = MessageWriter::request(&mut out, &Method::Register, &uri);
        let via = format!(
            "SIP/2.0/{transport} {here};branch={};rport",
            branch.as_str()
        );
        let from = format!("<{aor}>;tag={}", reg.tag);
        let to = format!("<{aor}>");
        let cseq = format!("{} REGISTER", reg.cseq);
        let contact = if star {
            "*".to_owned()
        } else {
            format!("<sip:{}@{here}>", reg.token)
        };
        w.header("Via", &via)
            .header_u32("Max-Forwards", 70)
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &reg.call_id)
            .header("CSeq", &cseq)
            .header("Contact", &contact)
            .header_u32("Expires", expires);
        if let Some(m) = creds {
            if self
                .config
                .topology
                .toward(Side::Inside)
                .forward_credentials
            {
                for h in m.headers() {
                    if h.raw_name.eq_ignore_ascii_case("Authorization")
                        || h.raw_name.eq_ignore_ascii_case("Proxy-Authorization")
                    {
                        w.header(h.raw_name, h.value);
                    }
                }
            }
        }
        w.finish(None, b"");
        let parsed = Message::parse(Bytes::from(out)).ok();
        if parsed.is_none() {
            self.stats.build_failures += 1;
        }
        parsed
    }

    /// The registrar behind the SBC answered (`resp`) or did not answer (`None`) the REGISTER sent
    /// for binding `key` on behalf of batch `batch`.
    pub(super) fn on_register_answer(
        &mut self,
        now: Instant,
        batch: u64,
        key: BindingKey,
        change: Change,
        resp: Option<&Message>,
    ) {
        if let Some(reg) = self.pbx_regs.get_mut(&key) {
            reg.inflight = reg.inflight.saturating_sub(1);
        }
        let Some(b) = self.reg_relay.batches.get_mut(&batch) else {
            self.release_pbx_reg(&key);
            return;
        };
        b.waiting = b.waiting.saturating_sub(1);
        match resp {
            Some(r) if r.status().is_some_and(|c| (200..300).contains(&c)) => {
                let token = self.pbx_regs.get(&key).map(|r| r.token.as_str());
                b.granted.push((key, change, granted_expiry(r, token)));
            }
            Some(r) => {
                b.refused
                    .get_or_insert_with(|| Refusal::Response(Box::new(r.clone())));
            }
            None => {
                b.refused.get_or_insert(Refusal::Status(408));
            }
        }
        if b.waiting > 0 {
            return;
        }
        if let Some(b) = self.reg_relay.batches.remove(&batch) {
            self.finish_batch(now, b);
        }
    }

    /// Every answer of a batch is in: apply the changes and answer 200, or relay the refusal and
    /// change nothing (bindings the PBX created for it are removed there again).
    fn finish_batch(&mut self, now: Instant, batch: RegBatch) {
        let RegBatch {
            server,
            request,
            aor,
            first,
            granted,
            keys,
            refused,
            ..
        } = batch;
        match refused {
            None => {
                for (_, change, granted) in &granted {
                    self.apply_change(now, change, *granted);
                }
                self.answer_register(now, server, &request, &aor, first.as_ref());
            }
            Some(refusal) => {
                for (key, change, _) in &granted {
                    if matches!(change, Change::Bind(_)) && self.registrar.get(key).is_none() {
                        if let Some(target) = self.pbx_regs.get(key).map(|r| r.target.clone()) {
                            let _ =
                                self.register_at_pbx(now, key, target, Duration::ZERO, None, false);
                        }
                    }
                }
                match refusal {
                    Refusal::Response(resp) => {
                        self.relay_response(
                            now,
                            server,
                            &request,
                            &resp,
                            Side::Outside,
                            None,
                            None,
                        );
                    }
                    Refusal::Status(code) => self.reply(now, server, &request, code, None),
                }
            }
        }
        for key in &keys {
            self.release_pbx_reg(key);
        }
    }

    /// Forget the SBC's registration state of `key` when no binding and no request need it.
    fn release_pbx_reg(&mut self, key: &BindingKey) {
        let idle = self.pbx_regs.get(key).is_some_and(|r| r.inflight == 0);
        if idle && self.registrar.get(key).is_none() {
            self.forget_pbx_reg(key);
        }
    }

    /// Remove binding `key` at the registrar behind the SBC (fire and forget) and forget it.
    pub(super) fn deregister_at_pbx(&mut self, now: Instant, key: &BindingKey) {
        if let Some(target) = self.pbx_regs.get(key).map(|r| r.target.clone()) {
            let _ = self.register_at_pbx(now, key, target, Duration::ZERO, None, false);
        }
        self.drop_binding(key);
    }

    /// Forget binding `key` here (the registrar's entry and the SBC's own registration state).
    pub(super) fn drop_binding(&mut self, key: &BindingKey) {
        if self.registrar.remove(key).is_some() {
            self.reg_relay.generation = self.reg_relay.generation.wrapping_add(1);
        }
        self.forget_pbx_reg(key);
    }

    fn forget_pbx_reg(&mut self, key: &BindingKey) {
        if let Some(reg) = self.pbx_regs.remove(key) {
            self.tokens.remove(&reg.token);
        }
    }

    /// Bindings whose UA did not refresh in time: deregistered behind the SBC.
    pub(super) fn expire_bindings(&mut self, now: Instant) {
        while let Some(b) = self.registrar.poll_expired(now) {
            self.reg_relay.generation = self.reg_relay.generation.wrapping_add(1);
            let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
            self.deregister_at_pbx(now, &key);
        }
    }

    /// A counter that changes whenever a binding is created, moved, refreshed at the PBX or
    /// removed (not on a refresh answered here, which changes only an expiry): the driver stores
    /// the bindings again when it moved.
    pub fn registrations_generation(&self) -> u64 {
        self.reg_relay.generation
    }

    /// The bindings held over UDP with the SBC's registration of each at the PBX, for storing
    /// across a restart (bindings over TCP/TLS are left out: their connection does not survive).
    pub fn export_registrations(&self, now: Instant) -> Vec<StoredRegistration> {
        self.registrar
            .export(now)
            .filter(|(b, _, _)| b.transport == Transport::Udp)
            .map(|(b, ua_left, pbx_left)| {
                let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
                let reg = self.pbx_regs.get(&key);
                StoredRegistration {
                    binding: b.clone(),
                    ua_left,
                    pbx_left,
                    token: reg.map(|r| r.token.clone()).unwrap_or_default(),
                    call_id: reg.map(|r| r.call_id.clone()).unwrap_or_default(),
                    tag: reg.map(|r| r.tag.clone()).unwrap_or_default(),
                    cseq: reg.map_or(0, |r| r.cseq),
                    dest: reg.map_or(b.source, |r| r.target.dest),
                    uri: reg.and_then(|r| r.target.uri.clone()),
                    reliable: reg.is_some_and(|r| r.target.reliable),
                    flow: reg.map_or(0, |r| r.target.flow.0),
                }
            })
            .collect()
    }

    /// Put back a binding stored before a restart (an empty token: no registration at the PBX).
    /// Returns whether it was taken (not expired, within the bounds, token not in use).
    pub fn restore_registration(&mut self, now: Instant, s: StoredRegistration) -> bool {
        if !s.token.is_empty() && self.tokens.contains_key(&s.token) {
            return false;
        }
        let Ok(key) = self
            .registrar
            .restore(now, s.binding, s.ua_left, s.pbx_left)
        else {
            return false;
        };
        if !s.token.is_empty() {
            let mut target = Target::udp(Side::Inside, s.dest, sbc_sip::transaction::Flow(s.flow));
            target.reliable = s.reliable;
            target.uri = s.uri;
            self.tokens.insert(s.token.clone(), key.clone());
            self.pbx_regs.insert(
                key,
                PbxReg {
                    token: s.token,
                    call_id: s.call_id,
                    tag: s.tag,
                    cseq: s.cseq,
                    target,
                    inflight: 0,
                },
            );
        }
        true
    }
}

/// The expiry the registrar behind the SBC granted in a 2xx: the `expires` of the Contact that
/// names the SBC's `token`, else the `Expires` header, else the longest (the registrar then keeps
/// what was asked). Absurd values saturate ([`parse_expires`]) and are cut to what was asked by
/// [`crate::registration::registrar::Registrar::commit`].
fn granted_expiry(resp: &Message, token: Option<&str>) -> Duration {
    let from_contact = resp
        .header_values(HeaderName::Contact)
        .find(|c| token.is_some_and(|t| c.contains(t)))
        .and_then(|c| {
            c.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("expires"))
                .and_then(|(_, v)| parse_expires(v))
        });
    match from_contact.or_else(|| resp.header(HeaderName::Expires).and_then(parse_expires)) {
        Some(s) => Duration::from_secs(u64::from(s)),
        None => crate::registration::registrar::EXPIRES_CAP,
    }
}
