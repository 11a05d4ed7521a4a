//! Digest authentication computed, not replayed (RFC 2617, RFC 7616, RFC 8760 for SIP). With
//! `--password`, the caller answers the challenge it receives with a response computed from its
//! credentials (the SBC core's client code, `sbc_core::registration::digest`: MD5, SHA-256,
//! SHA-512/256 and their `-sess` forms, `qop=auth`), and the callee sends a challenge with a fresh
//! nonce in place of the recorded one and checks the credentials of the request that answers it:
//! a wrong username, realm, nonce or response is answered 403 and the callee leg fails.
//!
//! The nonce is stateless (`<ms since start, hex>.<MAC>`, the MAC an MD5 over a secret made at
//! start and the time): any thread and any callee leg can check it, which matters behind a B2BUA
//! that may bring the answering request on another Call-ID (another leg) than the challenged one.
//! The `uri` of the credentials is used as given (a B2BUA may rewrite the Request-URI after the
//! caller computed its answer); the response proves the password over that `uri`, the method and
//! the nonce.

use md5::{Digest as _, Md5};
use sbc_core::registration::digest::{
    Algorithm, Challenge, ChallengeKind, Credentials, DigestRequest,
};

/// The credentials both sides use, and the callee's challenge algorithm.
pub(crate) struct DigestSetup {
    pub(crate) user: String,
    /// The caller's password.
    pub(crate) password: String,
    /// The password the callee checks against (the registrar's; `--password` unless
    /// `--uas-password` is given).
    pub(crate) uas_password: String,
    pub(crate) algorithm: Algorithm,
    /// The secret of the nonces' MAC (random at start).
    pub(crate) secret: u64,
}

/// How old a nonce may be (ms) before the callee refuses it.
const NONCE_MAX_AGE_MS: u64 = 300_000;

impl DigestSetup {
    fn mac(&self, ms: u64) -> String {
        let mut h = Md5::new();
        h.update(self.secret.to_le_bytes());
        h.update(ms.to_le_bytes());
        let d = h.finalize();
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// A fresh nonce at `ms` since the start.
    pub(crate) fn nonce(&self, ms: u64) -> String {
        format!("{ms:x}.{}", self.mac(ms))
    }

    fn nonce_ok(&self, nonce: &str, now_ms: u64) -> bool {
        let Some((t, mac)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(ms) = u64::from_str_radix(t, 16) else {
            return false;
        };
        ms <= now_ms && now_ms - ms <= NONCE_MAX_AGE_MS && mac == self.mac(ms)
    }

    /// The callee's challenge in place of the recorded `recorded` (its realm kept).
    pub(crate) fn challenge(&self, recorded: &str, now_ms: u64) -> String {
        let realm = params(recorded)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
            .map_or_else(|| "loadtest".to_string(), |(_, v)| v);
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            self.nonce(now_ms),
            self.algorithm.as_str()
        )
    }

    /// The caller's credentials answering `challenge` (the value of a `kind` header) for a request
    /// `method uri`; None when the challenge cannot be answered.
    pub(crate) fn answer(
        &self,
        kind: ChallengeKind,
        challenge: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Option<(&'static str, String)> {
        let c = Challenge::parse(kind, challenge).ok()?;
        let creds = Credentials {
            username: &self.user,
            password: &self.password,
        };
        let req = DigestRequest {
            method,
            uri,
            body: None,
        };
        let a = c.respond(&creds, &req, cnonce, 1).ok()?;
        Some((a.name, a.value))
    }

    /// Checks the credentials `value` of a `method` request against the realm of the recorded
    /// challenge `recorded`: Err(reason) when they are wrong.
    pub(crate) fn verify(
        &self,
        kind: ChallengeKind,
        recorded: &str,
        value: &str,
        method: &str,
        now_ms: u64,
    ) -> Result<(), &'static str> {
        let p = params(value);
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let scheme_ok = value
            .trim_start()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("digest"));
        if !scheme_ok {
            return Err("not digest credentials");
        }
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return Err("incomplete credentials");
        };
        if user != self.user {
            return Err("unknown username");
        }
        let want_realm = params(recorded)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
            .map_or_else(|| "loadtest".to_string(), |(_, v)| v);
        if realm != want_realm {
            return Err("wrong realm");
        }
        if !self.nonce_ok(nonce, now_ms) {
            return Err("stale or foreign nonce");
        }
        let alg = get("algorithm").unwrap_or("MD5");
        if Algorithm::from_token(alg) != Some(self.algorithm) {
            return Err("wrong algorithm");
        }
        // The expected response: this side's challenge with the client's nonce, answered with the
        // client's cnonce and count by the same code.
        let qop = get("qop");
        let ours = format!(
            "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}{}",
            self.algorithm.as_str(),
            if qop.is_some() { ", qop=\"auth\"" } else { "" }
        );
        let c = Challenge::parse(kind, &ours).map_err(|_| "unanswerable credentials")?;
        let nc = match get("nc") {
            Some(n) => u32::from_str_radix(n, 16).map_err(|_| "bad nc")?,
            None => 1,
        };
        let creds = Credentials {
            username: &self.user,
            password: &self.uas_password,
        };
        let req = DigestRequest {
            method,
            uri,
            body: None,
        };
        let want = c
            .respond(&creds, &req, get("cnonce").unwrap_or(""), nc)
            .map_err(|_| "unanswerable credentials")?;
        let want_resp = params(&want.value)
            .into_iter()
            .find(|(k, _)| k == "response")
            .map(|(_, v)| v);
        if want_resp.as_deref() == Some(response) {
            Ok(())
        } else {
            Err("wrong digest response")
        }
    }
}

/// The `name=value` parameters of a digest header value (quoted values unquoted, `\` escapes
/// undone), after the scheme. Tolerant: a malformed part ends the list.
pub(crate) fn params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let v = value.trim_start();
    let Some((_, rest)) = v.split_once(char::is_whitespace) else {
        return out;
    };
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') | None => break,
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            val.push(c);
                        }
                    }
                    Some(c) => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((name, val));
    }
}

/// The username of recorded credentials (the default `--user`).
pub(crate) fn recorded_user(value: &str) -> Option<String> {
    params(value)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("username"))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(alg: Algorithm) -> DigestSetup {
        DigestSetup {
            user: "alice".into(),
            password: "s3cret".into(),
            uas_password: "s3cret".into(),
            algorithm: alg,
            secret: 42,
        }
    }

    #[test]
    fn answer_passes_and_wrong_password_fails() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let uas = setup(alg);
            let rec = "Digest realm=\"pcaps.example\", nonce=\"0c9e\", algorithm=MD5, qop=\"auth\"";
            let ch = uas.challenge(rec, 1000);
            let k = ChallengeKind::Www;
            let (name, v) = uas
                .answer(k, &ch, "REGISTER", "sip:127.0.0.1", "abcd")
                .unwrap();
            assert_eq!(name, "Authorization");
            assert_eq!(uas.verify(k, rec, &v, "REGISTER", 1500), Ok(()));
            // The method is part of the hash.
            assert!(uas.verify(k, rec, &v, "INVITE", 1500).is_err());
            // A nonce too old, or from the future.
            assert!(uas.verify(k, rec, &v, "REGISTER", 1000 + 400_000).is_err());
            assert!(uas.verify(k, rec, &v, "REGISTER", 10).is_err());
            let mut uac = setup(alg);
            uac.password = "wrong".into();
            let (_, bad) = uac
                .answer(k, &ch, "REGISTER", "sip:127.0.0.1", "abcd")
                .unwrap();
            assert_eq!(
                uas.verify(k, rec, &bad, "REGISTER", 1500),
                Err("wrong digest response")
            );
            // Another process's nonce (another secret).
            let mut other = setup(alg);
            other.secret = 7;
            let (_, foreign) = uas
                .answer(k, &other.challenge(rec, 1000), "REGISTER", "sip:x", "c")
                .unwrap();
            assert!(uas.verify(k, rec, &foreign, "REGISTER", 1500).is_err());
        }
    }

    #[test]
    fn params_read_quoted_and_bare_values() {
        let p = params("Digest username=\"a\\\"b\", realm=r, nc=00000001,qop=auth");
        assert_eq!(
            p,
            vec![
                ("username".into(), "a\"b".into()),
                ("realm".into(), "r".into()),
                ("nc".into(), "00000001".into()),
                ("qop".into(), "auth".into())
            ]
        );
        assert!(params("Digest").is_empty());
        assert_eq!(params("Digest a=\"unterminated").len(), 1);
    }
}
