//! The messages a leg sends: requests and responses built from the recorded ones with this call's
//! identifiers, addresses and SDP.

use super::{Leg, Worker};
use crate::sipmsg::{sdp_rewrite, uri_of, without_tag, Msg};
use crate::template::Side;

impl Worker {
    pub(super) fn build_ack_for_failure(&self, slot: u32, resp: &Msg) -> Vec<u8> {
        let Some(leg) = self.legs[slot as usize].as_ref() else {
            return Vec::new();
        };
        let inv = leg.requests_sent_invite();
        let mut headers = vec![(
            "Via".to_string(),
            resp.header("Via").unwrap_or("").to_string(),
        )];
        for h in ["From", "To", "Call-ID"] {
            headers.push((h.to_string(), resp.header(h).unwrap_or("").to_string()));
        }
        headers.push(("CSeq".into(), format!("{} ACK", resp.cseq().0)));
        headers.push(("Max-Forwards".into(), "70".into()));
        Msg {
            start: format!("ACK {} SIP/2.0", inv.unwrap_or(&leg.initial_ruri)),
            headers,
            body: Vec::new(),
        }
        .to_bytes()
    }

    pub(super) fn build_request(&self, slot: u32, rec: &Msg, branch: &str) -> Vec<u8> {
        let t = &self.cfg.template;
        let Some(leg) = self.legs[slot as usize].as_ref() else {
            return Vec::new();
        };
        let initial = rec.ruri() == t.steps[0].msg.ruri();
        let (ruri, routes) = match (&leg.remote_target, initial && leg.side == Side::Uac) {
            (Some(rt), false) => (rt.clone(), leg.routes.clone()),
            _ => (leg.initial_ruri.clone(), Vec::new()),
        };
        let mut h: Vec<(String, String)> = vec![(
            "Via".into(),
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                match (self.cfg.tls.is_some(), self.cfg.tcp) {
                    (true, _) => "TLS",
                    (false, true) => "TCP",
                    _ => "UDP",
                },
                leg.local_sip
            ),
        )];
        for r in routes {
            h.push(("Route".into(), r));
        }
        h.push(("Max-Forwards".into(), "70".into()));
        let remote = leg.remote_tag.as_deref().unwrap_or("");
        if leg.side == Side::Uac {
            let from = without_tag(&self.rewrite_uac(rec.header("From").unwrap_or(""), leg));
            let mut to = without_tag(&self.rewrite_uac(rec.header("To").unwrap_or(""), leg));
            if rec.to_tag().is_some() && !remote.is_empty() {
                to = format!("{to};tag={remote}");
            }
            h.push(("From".into(), format!("{from};tag={}", leg.local_tag)));
            h.push(("To".into(), to));
        } else {
            // The callee's own request: its From is the INVITE's To, its To the INVITE's From.
            let inv = leg.requests.iter().find(|r| r.method() == "INVITE");
            let to = inv.and_then(|r| r.header("From")).unwrap_or("").to_string();
            let from = without_tag(inv.and_then(|r| r.header("To")).unwrap_or(""));
            h.push(("From".into(), format!("{from};tag={}", leg.local_tag)));
            h.push(("To".into(), to));
        }
        h.push(("Call-ID".into(), leg.call_id.clone()));
        h.push((
            "CSeq".into(),
            format!("{} {}", rec.cseq().0 + leg.cseq_off, rec.method()),
        ));
        if let Some(c) = rec.header("Contact") {
            let user = uri_of(c)
                .split_once('@')
                .map_or("loadtest", |(u, _)| u.trim_start_matches("sip:"));
            h.push(("Contact".into(), format!("<sip:{user}@{}>", leg.local_sip)));
        }
        for (n, v) in &rec.headers {
            if is_stock(n) {
                continue;
            }
            let is_creds = n.eq_ignore_ascii_case("Authorization")
                || n.eq_ignore_ascii_case("Proxy-Authorization");
            match (is_creds, self.cfg.digest.as_ref(), &leg.challenge) {
                // Credentials computed from the challenge received; none when it cannot be
                // answered (the callee then refuses the request).
                (true, Some(d), Some((kind, ch))) => {
                    if kind.credentials_header().eq_ignore_ascii_case(n) {
                        // The leg's random tag (64 bits) serves as the cnonce.
                        if let Some((name, value)) =
                            d.answer(*kind, ch, rec.method(), &ruri, &leg.local_tag)
                        {
                            h.push((name.to_string(), value));
                        }
                    }
                }
                (true, Some(_), None) => {}
                _ => h.push((n.clone(), self.rewrite_uac(v, leg))),
            }
        }
        let body = self.body_for(leg, rec);
        Msg {
            start: format!("{} {ruri} SIP/2.0", rec.method()),
            headers: h,
            body,
        }
        .to_bytes()
    }

    pub(super) fn build_response(&self, slot: u32, rec: &Msg) -> Vec<u8> {
        let Some(leg) = self.legs[slot as usize].as_ref() else {
            return Vec::new();
        };
        let Some(req) = leg.requests.iter().find(|r| r.method() == rec.method()) else {
            return Vec::new();
        };
        let mut h: Vec<(String, String)> = Vec::new();
        for v in req.headers_named("Via") {
            h.push(("Via".into(), v.to_string()));
        }
        if rec.status() < 300 && rec.method() == "INVITE" {
            for v in req.headers_named("Record-Route") {
                h.push(("Record-Route".into(), v.to_string()));
            }
        }
        h.push(("From".into(), req.header("From").unwrap_or("").to_string()));
        let to = req.header("To").unwrap_or("");
        let to = if req.to_tag().is_none() && rec.status() > 100 {
            format!("{to};tag={}", leg.local_tag)
        } else {
            to.to_string()
        };
        h.push(("To".into(), to));
        h.push(("Call-ID".into(), req.call_id().to_string()));
        h.push(("CSeq".into(), req.header("CSeq").unwrap_or("").to_string()));
        if rec.header("Contact").is_some() {
            h.push((
                "Contact".into(),
                format!("<sip:loadtest@{}>", leg.local_sip),
            ));
        }
        for (n, v) in &rec.headers {
            if is_stock(n) {
                continue;
            }
            let is_challenge = n.eq_ignore_ascii_case("WWW-Authenticate")
                || n.eq_ignore_ascii_case("Proxy-Authenticate");
            match self.cfg.digest.as_ref() {
                // A fresh nonce in place of the recorded one.
                Some(d) if is_challenge => {
                    let ms = super::now_ns(self.cfg.epoch) / 1_000_000;
                    h.push((n.clone(), d.challenge(v, ms)));
                }
                _ => h.push((n.clone(), v.clone())),
            }
        }
        Msg {
            start: rec.start.clone(),
            headers: h,
            body: self.body_for(leg, rec),
        }
        .to_bytes()
    }

    pub(super) fn body_for(&self, leg: &Leg, rec: &Msg) -> Vec<u8> {
        match (&leg.media, rec.has_sdp()) {
            (Some(m), true) => {
                let sdp = sdp_rewrite(&rec.body, m.local);
                match &m.srtp {
                    Some(s) => super::sdes::sdp_with_crypto(&sdp, &s.crypto()),
                    None if self.cfg.template.srtp => super::sdes::sdp_plain(&sdp),
                    None => sdp,
                }
            }
            _ => rec.body.clone(),
        }
    }
}

/// Headers the replay writes itself rather than copying from the recording.
pub(super) fn is_stock(name: &str) -> bool {
    [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Route",
        "Record-Route",
        "Content-Length",
        "Max-Forwards",
    ]
    .iter()
    .any(|s| s.eq_ignore_ascii_case(name))
}
