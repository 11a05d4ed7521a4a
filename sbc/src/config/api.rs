//! `[api]`: the control API's address, its token, HTTPS and its bounds (`docs/api.md`); and the
//! conversion of rules sent over the API into the core's types, with the file's own checks.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use sbc_core::guard::rules::RulesConfig;
use serde::Deserialize;

use super::rules::{FraudRuleSection, RuleSection};
use super::{Config, Secret};

/// `[api]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiSection {
    /// Serve the API.
    pub(crate) enabled: bool,
    pub(crate) listen: SocketAddr,
    /// Allow a `listen` address other than loopback.
    pub(crate) allow_public: bool,
    /// The bearer token.
    pub(crate) token: Option<Secret>,
    /// A file holding the bearer token (its first line).
    pub(crate) token_file: Option<PathBuf>,
    /// HTTPS: certificate chain and key (PEM).
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// The largest request body, in bytes.
    pub(crate) max_body_bytes: usize,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            allow_public: false,
            token: None,
            token_file: None,
            tls_cert: None,
            tls_key: None,
            max_connections: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

impl ApiSection {
    /// The checks of the section alone (`sip_listen`: the SIP TCP/TLS listen addresses).
    pub(crate) fn validate(&self, sip_listen: &[SocketAddr]) -> Result<(), String> {
        if self.listen.port() == 0 {
            return Err("api.listen: port must not be 0".into());
        }
        if self.enabled && sip_listen.contains(&self.listen) {
            return Err(format!(
                "api.listen: {} is also a SIP listen address",
                self.listen
            ));
        }
        if !self.listen.ip().is_loopback() && !self.allow_public {
            return Err(format!(
                "api.listen: {} is not a loopback address (set api.allow_public = true to serve it)",
                self.listen
            ));
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err("api.token_file: give api.token or api.token_file, not both".into());
        }
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            return Err("api.token: must not be empty".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("api.tls_key: api.tls_cert and api.tls_key go together".into());
        }
        if !(1..=10_000).contains(&self.max_connections) {
            return Err("api.max_connections: from 1 to 10000".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err("api.max_body_bytes: from 1024 to 16777216".into());
        }
        Ok(())
    }

    /// The bearer token: `token`, or the first line of `token_file`; `None` when neither is set.
    pub(crate) fn read_token(&self) -> Result<Option<String>, String> {
        if let Some(t) = &self.token {
            return Ok(Some(t.expose().trim().to_string()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("api.token_file {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!("api.token_file {}: empty", path.display()));
        }
        Ok(Some(token))
    }
}

impl Config {
    /// `rules` and `fraud` (as the file writes them) in the core's types, checked as the file's
    /// own (trunk names, number lists, thresholds); no rule of `[fraud] untrusted_max_calls`.
    pub(crate) fn api_rules(
        &self,
        rules: Vec<RuleSection>,
        fraud: Vec<FraudRuleSection>,
    ) -> Result<RulesConfig, String> {
        let mut c = self.clone();
        c.rules = rules;
        c.fraud.rules = fraud;
        c.fraud.untrusted_max_calls = 0;
        c.b2bua().map(|s| s.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_allow_public_and_secrets_are_checked() {
        let a = ApiSection {
            listen: "192.0.2.1:8080".parse().unwrap(),
            ..ApiSection::default()
        };
        assert!(a.validate(&[]).unwrap_err().contains("allow_public"));
        let a = ApiSection {
            allow_public: true,
            ..a
        };
        assert!(a.validate(&[]).is_ok());
        let both: ApiSection = toml::from_str("token = \"t\"\ntoken_file = \"/x\"").unwrap();
        assert!(both.validate(&[]).unwrap_err().contains("api.token_file"));
        let half = ApiSection {
            tls_cert: Some("/c".into()),
            ..ApiSection::default()
        };
        assert!(half.validate(&[]).unwrap_err().contains("api.tls_key"));
        assert_eq!(ApiSection::default().read_token().unwrap(), None);
    }

    #[test]
    fn rules_sent_over_the_api_are_checked_and_never_panic() {
        let c = Config::embedded_default();
        // Days whose first three bytes end inside a character (the API takes any JSON string).
        let f: FraudRuleSection =
            serde_json::from_value(serde_json::json!({"name": "f", "prefix": "+"})).unwrap();
        assert!(c.api_rules(Vec::new(), vec![f]).is_ok());
        for days in ["\u{edeb5}i", "mo\u{e9}", "\u{e9}"] {
            let r = serde_json::from_value::<FraudRuleSection>(
                serde_json::json!({"name": "f", "days": days}),
            );
            assert!(r.unwrap_err().to_string().contains("days"), "{days}");
        }
        let r: RuleSection =
            serde_json::from_value(serde_json::json!({"name": "x", "trunk": "nope"})).unwrap();
        let e = c.api_rules(vec![r], Vec::new()).unwrap_err();
        assert!(e.contains("trunk"), "{e}");
    }
}
