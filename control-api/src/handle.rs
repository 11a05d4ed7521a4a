//! The handle the server calls: the [`Control`] trait the binary implements over its control
//! thread, and the typed [`ApiError`] its methods answer with. Every method has a default that
//! answers [`ApiError::NotImplemented`] (501), so the binary implements what it can serve.

use std::net::IpAddr;

use crate::dto::{
    AdminAction, AllowEntry, Applied, Ban, BanRequest, Call, CallFilter, CallRule, ConfigText,
    ConfigVerdict, FraudEvent, FraudRule, Health, MediaSession, Page, Paging, Ready, Registration,
    RuleList, TargetGroup, Trunk, Version,
};

/// Why a request failed; the server maps each to its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The SBC does not serve this yet (501).
    NotImplemented(&'static str),
    /// No such object (404).
    NotFound(String),
    /// A value was refused (422), naming its field.
    Invalid {
        /// The field at fault.
        field: String,
        /// Why.
        message: String,
    },
    /// The workers did not take the change or answer in time (503).
    Unavailable(String),
}

impl ApiError {
    /// A refused value of `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

type R<T> = Result<T, ApiError>;

fn ni<T>(what: &'static str) -> R<T> {
    Err(ApiError::NotImplemented(what))
}

/// What the API asks of the SBC. Called on the control thread, one request at a time; a method
/// may wait for the workers' answers (bounded, well under a second).
pub trait Control {
    /// The process answers.
    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
        }
    }
    /// Whether every worker runs and reports.
    fn ready(&self) -> Ready;
    /// Version, uptime, workers.
    fn version(&self) -> Version;
    /// The configuration in force, secrets redacted.
    fn config(&self) -> R<serde_json::Value>;
    /// The Prometheus text exposition (format 0.0.4).
    fn metrics(&self) -> String;

    /// Calls in progress, filtered, one page.
    fn calls(&self, _filter: &CallFilter, _paging: Paging) -> R<Page<Call>> {
        ni("calls")
    }
    /// One call with both legs and their media.
    fn call(&self, _id: &str) -> R<Call> {
        ni("calls")
    }
    /// End a call on both legs.
    fn hang_up(&self, _id: &str) -> R<Applied> {
        ni("hang up")
    }
    /// Registration bindings, filtered by address of record (contains), one page.
    fn registrations(&self, _aor: Option<&str>, _paging: Paging) -> R<Page<Registration>> {
        ni("registrations")
    }
    /// Remove the bindings of an address of record.
    fn remove_registration(&self, _aor: &str) -> R<Applied> {
        ni("remove registration")
    }
    /// Target groups and the state of their targets.
    fn targets(&self) -> R<Vec<TargetGroup>> {
        ni("targets")
    }
    /// Enable, disable or drain a target of a group.
    fn target_action(&self, _group: &str, _target: &str, _action: AdminAction) -> R<Applied> {
        ni("target state")
    }
    /// Trunks and their state.
    fn trunks(&self) -> R<Vec<Trunk>> {
        ni("trunks")
    }
    /// Enable, disable or drain a trunk.
    fn trunk_action(&self, _trunk: &str, _action: AdminAction) -> R<Applied> {
        ni("trunk state")
    }
    /// The bans in force.
    fn bans(&self) -> R<Vec<Ban>> {
        ni("bans")
    }
    /// Ban an address.
    fn ban(&self, _req: &BanRequest) -> R<Applied> {
        ni("ban")
    }
    /// Lift a ban.
    fn unban(&self, _ip: IpAddr) -> R<Applied> {
        ni("unban")
    }
    /// The allowed (trusted) networks.
    fn allowed(&self) -> R<Vec<AllowEntry>> {
        ni("allow list")
    }
    /// Trust a network.
    fn allow(&self, _network: &str) -> R<Applied> {
        ni("allow")
    }
    /// Stop trusting a network added at run time.
    fn disallow(&self, _network: &str) -> R<Applied> {
        ni("disallow")
    }
    /// The call rules in force.
    fn rules(&self) -> R<Vec<CallRule>> {
        ni("rules")
    }
    /// Add a call rule (or replace the one of its name).
    fn add_rule(&self, _rule: &CallRule) -> R<Applied> {
        ni("add rule")
    }
    /// Remove a call rule.
    fn remove_rule(&self, _name: &str) -> R<Applied> {
        ni("remove rule")
    }
    /// Add an entry to a list of a call rule.
    fn list_add(&self, _rule: &str, _list: RuleList, _entry: &str) -> R<Applied> {
        ni("list entry")
    }
    /// Remove an entry from a list of a call rule.
    fn list_remove(&self, _rule: &str, _list: RuleList, _entry: &str) -> R<Applied> {
        ni("list entry")
    }
    /// The fraud rules in force.
    fn fraud_rules(&self) -> R<Vec<FraudRule>> {
        ni("fraud rules")
    }
    /// Add a fraud rule (or replace the one of its name).
    fn add_fraud_rule(&self, _rule: &FraudRule) -> R<Applied> {
        ni("add fraud rule")
    }
    /// Remove a fraud rule.
    fn remove_fraud_rule(&self, _name: &str) -> R<Applied> {
        ni("remove fraud rule")
    }
    /// The newest fraud events, newest first, one page.
    fn fraud_events(&self, _paging: Paging) -> R<Page<FraudEvent>> {
        ni("fraud events")
    }
    /// Media sessions of the relay, one page.
    fn media_sessions(&self, _paging: Paging) -> R<Page<MediaSession>> {
        ni("media sessions")
    }
    /// Check a config file's text without applying it.
    fn config_check(&self, _text: &ConfigText) -> R<ConfigVerdict> {
        ni("config check")
    }
    /// Read the config file again and apply what can change without dropping calls.
    fn config_reload(&self) -> R<ConfigVerdict> {
        ni("config reload")
    }
}
