//! REGISTER relay: the binding of a user agent is kept here, and the registrar behind the SBC
//! sees the SBC's own Contact (registered, refreshed and removed per binding).

use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::transaction::ServerTxId;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use super::{B2bua, ClientRole, Origin, PbxReg, Router, Target};
use crate::registration::registrar::{
    Aor, BindingKey, RegContact, RegisterOutcome, RegisterRequest, RegistrarError, Transport,
};
use crate::signalling::ids::IdKind;
use crate::signalling::nat;
use crate::signalling::topology::Side;

impl B2bua {
    /// A REGISTER from the Outside: the binding is kept here; the registrar behind the SBC (the
    /// router's target, when there is one) sees the SBC's own Contact. Only the first Contact of a
    /// REGISTER is applied.
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
        let Some(first) = req.header_values(HeaderName::Contact).next() else {
            // A query of the bindings (RFC 3261 §10.2.3).
            let held: Vec<String> = self
                .registrar
                .lookup(&aor)
                .map(|b| {
                    let left = b.expires_ua.saturating_duration_since(now).as_secs();
                    format!("<{}>;expires={left}", b.contact_uri)
                })
                .collect();
            let mut out = Vec::new();
            let mut w = build::response(req, 200, "OK", None, &mut out);
            for c in &held {
                w.header("Contact", c);
            }
            w.finish(None, b"");
            self.send_response(now, tx, out);
            return;
        };
        let Ok(contact) = RegContact::parse(first) else {
            self.reply(now, tx, req, 400, None);
            return;
        };
        let expires = req
            .header(HeaderName::Expires)
            .and_then(|e| e.trim().parse().ok());
        let transport = Transport::from_token(req.top_via().transport).unwrap_or(Transport::Udp);
        let r = RegisterRequest {
            aor: &aor,
            contact,
            source: from.source,
            transport,
            connection: Some(from.flow.0),
            expires,
            call_id: req.call_id(),
            cseq: req.cseq().seq,
            nated: nat::detect(req, from.source).is_nated(),
        };
        match self.registrar.handle_register(now, &r) {
            Err(e) => {
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
            Ok(RegisterOutcome::Local { key, ua_expires }) => {
                self.answer_register(now, tx, req, &key, ua_expires);
            }
            Ok(RegisterOutcome::Forward {
                key,
                ua_expires,
                pbx_expires,
                ..
            }) => match router
                .route(req, Side::Outside)
                .ok()
                .filter(|t| t.side == Side::Inside)
            {
                // No registrar behind: the SBC's binding is the registration.
                None => self.answer_register(now, tx, req, &key, ua_expires),
                Some(target) => {
                    if !self.register_at_pbx(now, &key, target, pbx_expires, Some((tx, req))) {
                        self.drop_binding(&key);
                        self.reply(now, tx, req, 503, None);
                    }
                }
            },
            Ok(RegisterOutcome::Removed { bindings }) => {
                for b in bindings {
                    let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
                    self.deregister_at_pbx(now, &key);
                }
                self.reply(now, tx, req, 200, None);
            }
        }
    }

    /// 200 to the UA's REGISTER with the expiry it is granted.
    fn answer_register(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        key: &BindingKey,
        ua_expires: Duration,
    ) {
        let Some(b) = self.registrar.get(key) else {
            self.reply(now, tx, req, 500, None);
            return;
        };
        // Whole seconds, rounded up: the binding was stamped a moment before the registrar behind
        // the SBC answered.
        let whole = ua_expires.as_secs() + u64::from(ua_expires.subsec_nanos() > 0);
        let secs = u32::try_from(whole).unwrap_or(u32::MAX);
        let contact = format!("<{}>;expires={secs}", b.contact_uri);
        let mut out = Vec::new();
        let mut w = build::response(req, 200, "OK", None, &mut out);
        w.header("Contact", &contact).header_u32("Expires", secs);
        w.finish(None, b"");
        self.send_response(now, tx, out);
    }

    /// Register (or refresh) the SBC's Contact for binding `key` at `target`. `ua` is the UA's
    /// REGISTER waiting for the answer. Returns whether the request could be sent.
    fn register_at_pbx(
        &mut self,
        now: Instant,
        key: &BindingKey,
        target: Target,
        pbx_expires: Duration,
        ua: Option<(ServerTxId, &Message)>,
    ) -> bool {
        if !self.pbx_regs.contains_key(key) {
            let token = self.ids.generate(IdKind::Tag).as_str().to_owned();
            let reg = PbxReg {
                token: token.clone(),
                call_id: self.ids.generate(IdKind::CallId).as_str().to_owned(),
                tag: self.ids.generate(IdKind::Tag).as_str().to_owned(),
                cseq: 0,
                target: target.clone(),
            };
            self.tokens.insert(token, key.clone());
            self.pbx_regs.insert(key.clone(), reg);
        }
        let Some(reg) = self.pbx_regs.get_mut(key) else {
            return false;
        };
        reg.cseq += 1;
        reg.target = target;
        let secs = u32::try_from(pbx_expires.as_secs()).unwrap_or(u32::MAX);
        let creds = ua.map(|(_, m)| m);
        let Some(msg) = self.build_register(key, secs, creds) else {
            return false;
        };
        let Some(reg) = self.pbx_regs.get(key) else {
            return false;
        };
        let (dest, reliable, flow) = (reg.target.dest, reg.target.reliable, reg.target.flow);
        let Ok(c) = self.txs.send_request_on(now, msg, dest, reliable, flow) else {
            return false;
        };
        let role = match ua {
            Some((server, req)) => ClientRole::Register {
                key: key.clone(),
                server,
                request: Box::new(req.clone()),
                pbx_expires,
            },
            None => ClientRole::Fire,
        };
        self.clients.insert(c, role);
        true
    }

    /// The SBC's REGISTER for binding `key`, asking `expires` seconds, with the UA's credentials
    /// when the policy toward the Inside forwards them.
    fn build_register(
        &mut self,
        key: &BindingKey,
        expires: u32,
        creds: Option<&Message>,
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
        let contact = format!("<sip:{}@{here}>", reg.token);
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

    /// The registrar behind the SBC answered the REGISTER of binding `key`.
    pub(super) fn on_register_answer(
        &mut self,
        now: Instant,
        key: BindingKey,
        server: ServerTxId,
        request: &Message,
        resp: &Message,
        asked: Duration,
    ) {
        let code = resp.status().unwrap_or(500);
        if code >= 300 {
            self.drop_binding(&key);
            self.relay_response(now, server, request, resp, Side::Outside, None, None);
            return;
        }
        let token = self.pbx_regs.get(&key).map(|r| r.token.clone());
        // The expiry granted: the `expires` of the Contact that names the SBC's token, else the
        // Expires header, else what was asked.
        let granted = resp
            .header_values(HeaderName::Contact)
            .find(|c| token.as_deref().is_some_and(|t| c.contains(t)))
            .and_then(|c| {
                c.split(';')
                    .filter_map(|p| p.trim().split_once('='))
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case("expires"))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .or_else(|| {
                resp.header(HeaderName::Expires)
                    .and_then(|e| e.trim().parse().ok())
            })
            .map_or(asked, Duration::from_secs);
        match self.registrar.pbx_confirmed(&key, now, granted) {
            Some(ua_expires) => self.answer_register(now, server, request, &key, ua_expires),
            None => self.reply(now, server, request, 500, None),
        }
    }

    /// Remove binding `key` at the registrar behind the SBC (fire and forget) and forget it.
    fn deregister_at_pbx(&mut self, now: Instant, key: &BindingKey) {
        if let Some(target) = self.pbx_regs.get(key).map(|r| r.target.clone()) {
            let _ = self.register_at_pbx(now, key, target, Duration::ZERO, None);
        }
        self.drop_binding(key);
    }

    /// Forget binding `key` here (the registrar's entry and the SBC's own registration state).
    pub(super) fn drop_binding(&mut self, key: &BindingKey) {
        self.registrar.remove(key);
        if let Some(reg) = self.pbx_regs.remove(key) {
            self.tokens.remove(&reg.token);
        }
    }

    /// Bindings whose UA did not refresh in time: deregistered behind the SBC.
    pub(super) fn expire_bindings(&mut self, now: Instant) {
        while let Some(b) = self.registrar.poll_expired(now) {
            let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
            self.deregister_at_pbx(now, &key);
        }
    }
}
