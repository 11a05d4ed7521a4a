//! Registration of the SBC with a carrier trunk that requires it (RFC 3261 §10): the SBC is the
//! user agent toward the carrier, registers its outside address as the Contact of the trunk's
//! account, answers the carrier's digest challenge with the trunk's credentials, refreshes before
//! the granted expiry runs out, and retries after a failure.
//!
//! Sans-IO like the rest of the B2BUA: [`TrunkRegistration::due`] says when a REGISTER must go out,
//! [`TrunkRegistration::build`] writes it, and [`TrunkRegistration::on_response`] /
//! [`TrunkRegistration::on_failure`] take the outcome and set the next deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use crate::registration::digest::{Challenge, Credentials, DigestRequest};
use crate::registration::registrar::{deadline_after, parse_expires};

/// What the SBC authenticates as toward a carrier trunk (RFC 3261 §22): a 401/407 to the INVITE it
/// sends there is answered by the SBC itself, once, and never reaches the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkAuth {
    /// The username.
    pub username: String,
    /// The password (only ever hashed).
    pub password: String,
}

impl std::fmt::Debug for TrunkAuth {
    /// The password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How long to wait before trying again after a failed registration.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The shortest refresh interval, whatever the carrier grants.
const MIN_REFRESH: Duration = Duration::from_secs(15);

/// One trunk's registration settings.
#[derive(Clone, Debug)]
pub struct TrunkRegistrationConfig {
    /// The trunk's name (logs, counters).
    pub name: String,
    /// The registrar (the trunk's outbound proxy).
    pub registrar: SocketAddr,
    /// Over a connection (TCP/TLS).
    pub reliable: bool,
    /// The account and its password.
    pub auth: Arc<TrunkAuth>,
    /// The expiry asked for.
    pub expires: Duration,
}

/// Where a registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    /// Not registered yet, or the last attempt failed: a REGISTER goes out at the deadline.
    Unregistered,
    /// A REGISTER is in flight.
    Pending,
    /// Registered until the given time; refreshed halfway.
    Registered {
        /// When the carrier's binding expires.
        until: Instant,
    },
}

/// Counters of one registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegStats {
    /// Successful registrations and refreshes.
    pub registered: u64,
    /// Challenges answered.
    pub challenges: u64,
    /// Attempts that failed (refused, timed out, or credentials refused).
    pub failures: u64,
}

/// The registration of the SBC with one trunk.
#[derive(Debug)]
pub struct TrunkRegistration {
    config: TrunkRegistrationConfig,
    call_id: String,
    tag: String,
    cseq: u32,
    state: RegState,
    /// When the carrier's binding runs out (kept while a refresh is in flight).
    until: Option<Instant>,
    next: Option<Instant>,
    /// The challenge of the attempt in flight was already answered once.
    answered: bool,
    /// The SBC is stopping: the next REGISTER removes the binding (Expires: 0) and is the last.
    closing: bool,
    stats: RegStats,
}

impl TrunkRegistration {
    /// A registration that sends its first REGISTER at `now`, with the SBC's `call_id` and `tag`.
    pub fn new(
        config: TrunkRegistrationConfig,
        call_id: String,
        tag: String,
        now: Instant,
    ) -> Self {
        Self {
            config,
            call_id,
            tag,
            cseq: 0,
            state: RegState::Unregistered,
            until: None,
            next: Some(now),
            answered: false,
            closing: false,
            stats: RegStats::default(),
        }
    }

    /// The SBC is stopping: remove the binding with the carrier. When registered, a REGISTER with
    /// `Expires: 0` is due at `now` (returns true); otherwise nothing more is sent.
    pub fn close(&mut self, now: Instant) -> bool {
        self.closing = true;
        self.answered = false;
        if matches!(self.state, RegState::Registered { .. }) {
            self.next = Some(now);
            true
        } else {
            self.state = RegState::Unregistered;
            self.next = None;
            false
        }
    }

    /// Closing, and the removal is not answered yet.
    pub fn closing(&self) -> bool {
        self.closing && self.state != RegState::Unregistered
    }

    /// The settings.
    pub fn config(&self) -> &TrunkRegistrationConfig {
        &self.config
    }

    /// Where it stands.
    pub fn state(&self) -> RegState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> RegStats {
        self.stats
    }

    /// When the next REGISTER is due (`None` while one is in flight).
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Whether a REGISTER is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| t <= now)
    }

    /// Write the next REGISTER (Via with `branch`, the SBC's outside `contact` with the URI
    /// parameters `contact_params`, e.g. `;transport=tls`), with credentials answering `challenge`
    /// when given. Marks the registration pending.
    pub fn build(
        &mut self,
        branch: &str,
        contact: SocketAddr,
        contact_params: &str,
        challenge: Option<(&Challenge, &str)>,
    ) -> Option<Message> {
        self.cseq += 1;
        let registrar = self.config.registrar;
        let user = &self.config.auth.username;
        let uri = format!("sip:{registrar}");
        let aor = format!("<sip:{user}@{registrar}>");
        let transport = if self.config.reliable { "TCP" } else { "UDP" };
        let mut out = Vec::with_capacity(512);
        let mut w = MessageWriter::request(&mut out, &Method::Register, &uri);
        let via = format!("SIP/2.0/{transport} {contact};branch={branch};rport");
        w.header("Via", &via);
        w.header_u32("Max-Forwards", 70);
        let from = format!("{aor};tag={}", self.tag);
        w.header("From", &from);
        w.header("To", &aor);
        w.header("Call-ID", &self.call_id);
        let cseq = format!("{} REGISTER", self.cseq);
        w.header("CSeq", &cseq);
        let c = format!("<sip:{user}@{contact}{contact_params}>");
        w.header("Contact", &c);
        let expires = if self.closing {
            0
        } else {
            u32::try_from(self.config.expires.as_secs()).unwrap_or(u32::MAX)
        };
        w.header_u32("Expires", expires);
        if let Some((challenge, cnonce)) = challenge {
            let creds = Credentials {
                username: &self.config.auth.username,
                password: &self.config.auth.password,
            };
            let req = DigestRequest {
                method: "REGISTER",
                uri: &uri,
                body: Some(b""),
            };
            let authz = challenge.respond(&creds, &req, cnonce, 1).ok()?;
            w.header(authz.name, &authz.value);
        }
        w.finish(None, b"");
        let msg = Message::parse(Bytes::from(out)).ok()?;
        self.state = RegState::Pending;
        self.next = None;
        Some(msg)
    }

    /// A final response to the REGISTER in flight. Returns the challenge to answer when the
    /// carrier asks for credentials (the caller sends [`TrunkRegistration::build`] again with it).
    pub fn on_response(&mut self, now: Instant, resp: &Message) -> Option<Challenge> {
        let code = resp.status().unwrap_or(0);
        if self.closing && (200..300).contains(&code) {
            // the binding is gone: nothing more to send
            self.state = RegState::Unregistered;
            self.until = None;
            self.next = None;
            return None;
        }
        if (200..300).contains(&code) {
            // A registrar may shorten the expiry asked, never lengthen it (RFC 3261 §10.3 step 8):
            // a longer grant (even 2^64-1 s) is taken as what was asked.
            let granted = granted_expiry(resp)
                .unwrap_or(self.config.expires)
                .min(self.config.expires);
            let until = deadline_after(now, granted);
            self.until = Some(until);
            self.state = RegState::Registered { until };
            self.next = Some(deadline_after(now, (granted / 2).max(MIN_REFRESH)));
            self.answered = false;
            self.stats.registered += 1;
            return None;
        }
        // A 401/407: its topmost answerable challenge, answered once per attempt.
        let challenge = (!self.answered)
            .then(|| Challenge::from_response(resp, true).ok())
            .flatten()
            .and_then(|found| found.into_iter().next());
        if let Some(c) = challenge {
            self.answered = true;
            self.stats.challenges += 1;
            return Some(c);
        }
        self.on_failure(now);
        None
    }

    /// The REGISTER in flight failed (timeout, transport error, refusal): try again later.
    pub fn on_failure(&mut self, now: Instant) {
        self.stats.failures += 1;
        self.answered = false;
        if self.closing {
            // stopping: no retry
            self.state = RegState::Unregistered;
            self.next = None;
            return;
        }
        self.state = match self.until {
            Some(until) if until > now => RegState::Registered { until },
            _ => RegState::Unregistered,
        };
        self.next = Some(deadline_after(now, RETRY_AFTER));
    }
}

/// The expiry the registrar granted: the `expires` parameter of a Contact, else the Expires header.
fn granted_expiry(resp: &Message) -> Option<Duration> {
    let from_contact = resp
        .headers()
        .filter(|h| HeaderName::from_bytes(h.raw_name.as_bytes()) == HeaderName::Contact)
        .find_map(|h| {
            h.value.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| parse_expires(v))
                    .flatten()
            })
        });
    let secs = from_contact.or_else(|| resp.header(HeaderName::Expires).and_then(parse_expires))?;
    (secs > 0).then(|| Duration::from_secs(u64::from(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // the one origin of test time
    fn t0() -> Instant {
        Instant::now()
    }

    fn reg(now: Instant) -> TrunkRegistration {
        TrunkRegistration::new(
            TrunkRegistrationConfig {
                name: "carrier".into(),
                registrar: "192.0.2.50:5060".parse().unwrap(),
                reliable: false,
                auth: Arc::new(TrunkAuth {
                    username: "acct".into(),
                    password: "pw".into(),
                }),
                expires: Duration::from_secs(600),
            },
            "cid".into(),
            "tag1".into(),
            now,
        )
    }

    fn response(first: &str, extra: &str) -> Message {
        let text = format!(
            "SIP/2.0 {first}\r\nVia: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:acct@192.0.2.50:5060>;tag=tag1\r\nTo: <sip:acct@192.0.2.50:5060>;tag=r\r\n\
             Call-ID: cid\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn an_absurd_grant_is_taken_as_what_was_asked() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5060".parse().unwrap();
        for grant in [
            "Contact: <sip:acct@203.0.113.1:5060>;expires=18446744073709551615\r\n",
            "Contact: <sip:acct@203.0.113.1:5060>;expires=9223372036854775808\r\n",
            "Expires: 18446744073709551615\r\n",
        ] {
            let mut r = reg(now);
            r.build("z9hG4bKa", contact, "", None).unwrap();
            assert!(r.on_response(now, &response("200 OK", grant)).is_none());
            assert_eq!(
                r.state(),
                RegState::Registered {
                    until: now + Duration::from_secs(600)
                },
                "{grant}"
            );
        }
    }

    #[test]
    fn the_contact_carries_the_outside_transport() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5061".parse().unwrap();
        let mut r = reg(now);
        let msg = r
            .build("z9hG4bKa", contact, ";transport=tls", None)
            .unwrap();
        let text = String::from_utf8_lossy(msg.raw()).into_owned();
        assert!(
            text.contains("Contact: <sip:acct@203.0.113.1:5061;transport=tls>"),
            "{text}"
        );
    }

    #[test]
    fn registers_answers_the_challenge_and_refreshes_halfway() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5060".parse().unwrap();
        let mut r = reg(now);
        assert!(r.due(now));
        let first = r.build("z9hG4bKa", contact, "", None).unwrap();
        let text = String::from_utf8_lossy(first.raw()).into_owned();
        assert!(
            text.starts_with("REGISTER sip:192.0.2.50:5060 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Contact: <sip:acct@203.0.113.1:5060>"),
            "{text}"
        );
        assert!(text.contains("Expires: 600"), "{text}");
        assert!(!text.contains("Authorization"), "{text}");
        assert_eq!(r.state(), RegState::Pending);
        assert!(!r.due(now + Duration::from_secs(3600)));

        let challenge = r
            .on_response(
                now,
                &response(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"c\", nonce=\"n1\"\r\n",
                ),
            )
            .expect("a challenge to answer");
        let second = r
            .build("z9hG4bKb", contact, "", Some((&challenge, "cn")))
            .unwrap();
        let text = String::from_utf8_lossy(second.raw()).into_owned();
        assert!(text.contains("CSeq: 2 REGISTER"), "{text}");
        assert!(
            text.contains("Authorization: Digest username=\"acct\""),
            "{text}"
        );
        assert!(!text.contains("pw"), "the password never goes out: {text}");

        r.on_response(
            now,
            &response(
                "200 OK",
                "Contact: <sip:acct@203.0.113.1:5060>;expires=120\r\n",
            ),
        );
        assert_eq!(
            r.state(),
            RegState::Registered {
                until: now + Duration::from_secs(120)
            }
        );
        assert_eq!(r.deadline(), Some(now + Duration::from_secs(60)));
        assert_eq!(r.stats().registered, 1);
        assert_eq!(r.stats().challenges, 1);
    }

    #[test]
    fn a_second_challenge_means_refused_credentials_and_a_retry_later() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5060".parse().unwrap();
        let mut r = reg(now);
        r.build("b1", contact, "", None).unwrap();
        let c = r
            .on_response(
                now,
                &response(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"c\", nonce=\"n\"\r\n",
                ),
            )
            .unwrap();
        r.build("b2", contact, "", Some((&c, "cn"))).unwrap();
        let again = r.on_response(
            now,
            &response(
                "401 Unauthorized",
                "WWW-Authenticate: Digest realm=\"c\", nonce=\"n2\"\r\n",
            ),
        );
        assert!(again.is_none());
        assert_eq!(r.state(), RegState::Unregistered);
        assert_eq!(r.deadline(), Some(now + RETRY_AFTER));
        assert_eq!(r.stats().failures, 1);
    }

    #[test]
    fn a_timeout_keeps_a_live_binding_and_retries() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5060".parse().unwrap();
        let mut r = reg(now);
        r.build("b1", contact, "", None).unwrap();
        r.on_response(now, &response("200 OK", "Expires: 600\r\n"));
        let later = now + Duration::from_secs(300);
        assert!(r.due(later));
        r.build("b2", contact, "", None).unwrap();
        r.on_failure(later);
        assert_eq!(
            r.state(),
            RegState::Registered {
                until: now + Duration::from_secs(600)
            }
        );
        assert_eq!(r.deadline(), Some(later + RETRY_AFTER));
    }

    #[test]
    fn closing_sends_one_removal_and_nothing_after() {
        let now = t0();
        let contact: SocketAddr = "203.0.113.1:5060".parse().unwrap();
        // never registered: nothing to remove
        let mut idle = reg(now);
        assert!(!idle.close(now));
        assert!(!idle.closing());
        assert_eq!(idle.deadline(), None);

        let mut r = reg(now);
        r.build("b1", contact, "", None).unwrap();
        r.on_response(now, &response("200 OK", "Expires: 600\r\n"));
        let stop = now + Duration::from_secs(10);
        assert!(r.close(stop));
        assert!(r.closing() && r.due(stop));
        let removal = r.build("b2", contact, "", None).unwrap();
        let text = String::from_utf8_lossy(removal.raw()).into_owned();
        assert!(text.contains("Expires: 0\r\n"), "{text}");
        r.on_response(stop, &response("200 OK", ""));
        assert!(!r.closing());
        assert_eq!(r.state(), RegState::Unregistered);
        assert_eq!(r.deadline(), None, "no refresh after the removal");

        // a removal that fails is not retried
        let mut f = reg(now);
        f.build("b1", contact, "", None).unwrap();
        f.on_response(now, &response("200 OK", "Expires: 600\r\n"));
        f.close(stop);
        f.build("b2", contact, "", None).unwrap();
        f.on_failure(stop);
        assert!(!f.closing());
        assert_eq!(f.deadline(), None);
    }
}
