//! `[guard]`: admission before state (per-source budgets, bans, scanners, the inside ACL), with
//! defaults that protect a public address; turned into the core's [`GuardConfig`] for each worker.

use sbc_core::cidr::Cidr;
use sbc_core::guard::{Budget, Budgets, GuardConfig, GuardPolicy};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// `{ rate = 100, burst = 200 }`: messages per second sustained, and at once.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetSection {
    pub(crate) rate: f32,
    pub(crate) burst: f32,
}

/// `[guard.untrusted]` and `[guard.trusted]`: one budget per kind of message.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetsSection {
    pub(crate) invite: Option<BudgetSection>,
    pub(crate) register: Option<BudgetSection>,
    pub(crate) options: Option<BudgetSection>,
    pub(crate) other: Option<BudgetSection>,
    pub(crate) malformed: Option<BudgetSection>,
}

impl BudgetsSection {
    /// `base` with the budgets this section sets.
    fn over(&self, base: Budgets) -> Budgets {
        let b = |s: Option<BudgetSection>, d: Budget| s.map_or(d, |s| Budget::new(s.rate, s.burst));
        Budgets {
            invite: b(self.invite, base.invite),
            register: b(self.register, base.register),
            options: b(self.options, base.options),
            other: b(self.other, base.other),
            malformed: b(self.malformed, base.malformed),
        }
    }

    fn check(&self, name: &str) -> Result<(), String> {
        for (kind, b) in [
            ("invite", self.invite),
            ("register", self.register),
            ("options", self.options),
            ("other", self.other),
            ("malformed", self.malformed),
        ] {
            if let Some(b) = b {
                if !(b.rate.is_finite() && b.rate >= 0.0 && b.burst.is_finite() && b.burst >= 1.0) {
                    return Err(format!(
                        "guard.{name}.{kind}: rate must be ≥ 0 and burst ≥ 1"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A list of IP networks (`"10.0.0.0/8"`) or addresses (`"192.0.2.7"`).
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.parse().map_err(|e| {
                serde::de::Error::custom(format!("{s:?} is not an IP address or CIDR network: {e}"))
            })
        })
        .collect()
}

/// `[guard]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GuardSection {
    /// Networks besides the inside targets that may send to the inside.
    #[serde(deserialize_with = "networks")]
    pub(crate) inside_networks: Vec<Cidr>,
    /// Networks trusted on the outside: their own budgets, never banned automatically.
    #[serde(deserialize_with = "networks")]
    pub(crate) allow: Vec<Cidr>,
    pub(crate) untrusted: Option<BudgetsSection>,
    pub(crate) trusted: Option<BudgetsSection>,
    pub(crate) answered_per_sec: u32,
    pub(crate) retry_after_secs: u32,
    pub(crate) flood_ban: u32,
    pub(crate) ban_secs: u64,
    pub(crate) max_ban_secs: u64,
    pub(crate) forget_secs: u64,
    pub(crate) unknown_users: u32,
    pub(crate) auth_failures: u32,
    pub(crate) open_challenges: u32,
    pub(crate) failure_window_secs: u64,
    pub(crate) credit_max: u32,
    pub(crate) max_sources: usize,
    pub(crate) max_bans: usize,
    pub(crate) scanner_user_agents: Vec<String>,
    pub(crate) hide_unknown_users: bool,
    pub(crate) realm: String,
}

impl Default for GuardSection {
    fn default() -> Self {
        let p = GuardPolicy::default();
        Self {
            inside_networks: Vec::new(),
            allow: Vec::new(),
            untrusted: None,
            trusted: None,
            answered_per_sec: p.answered_per_sec,
            retry_after_secs: p.retry_after_secs,
            flood_ban: p.flood_ban,
            ban_secs: p.ban.as_secs(),
            max_ban_secs: p.max_ban.as_secs(),
            forget_secs: p.forget.as_secs(),
            unknown_users: p.unknown_users,
            auth_failures: p.auth_failures,
            open_challenges: p.open_challenges,
            failure_window_secs: p.failure_window.as_secs(),
            credit_max: p.credit_max,
            max_sources: p.max_sources,
            max_bans: p.max_bans,
            scanner_user_agents: p.scanner_user_agents,
            hide_unknown_users: p.hide_unknown_users,
            realm: p.realm,
        }
    }
}

impl GuardSection {
    /// The cross checks of the section.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(u) = &self.untrusted {
            u.check("untrusted")?;
        }
        if let Some(t) = &self.trusted {
            t.check("trusted")?;
        }
        if self.ban_secs == 0 {
            return Err("guard.ban_secs: must be at least 1".into());
        }
        if self.realm.len() > 128
            || self.realm.contains(['"', '\\'])
            || self.realm.chars().any(char::is_control)
        {
            return Err(
                "guard.realm: at most 128 characters, no quote, backslash or control character"
                    .into(),
            );
        }
        if self.max_sources < 4 || self.max_bans == 0 {
            return Err("guard.max_sources/max_bans: at least 4 sources and 1 ban".into());
        }
        Ok(())
    }

    /// The policy of the section.
    pub(crate) fn policy(&self) -> GuardPolicy {
        GuardPolicy {
            untrusted: self
                .untrusted
                .map_or(Budgets::UNTRUSTED, |s| s.over(Budgets::UNTRUSTED)),
            trusted: self
                .trusted
                .map_or(Budgets::TRUSTED, |s| s.over(Budgets::TRUSTED)),
            answered_per_sec: self.answered_per_sec,
            retry_after_secs: self.retry_after_secs,
            flood_ban: self.flood_ban,
            ban: Duration::from_secs(self.ban_secs),
            max_ban: Duration::from_secs(self.max_ban_secs),
            forget: Duration::from_secs(self.forget_secs),
            unknown_users: self.unknown_users,
            auth_failures: self.auth_failures,
            open_challenges: self.open_challenges,
            failure_window: Duration::from_secs(self.failure_window_secs),
            credit_max: self.credit_max,
            max_sources: self.max_sources,
            max_bans: self.max_bans,
            scanner_user_agents: self.scanner_user_agents.clone(),
            hide_unknown_users: self.hide_unknown_users,
            realm: self.realm.clone(),
        }
    }

    /// A worker's guard: `base` (its share of the new-call rate, the trunks and the inside targets
    /// from the B2BUA settings) with this section's networks and policy, hashed with `seed`.
    pub(crate) fn worker_config(&self, base: GuardConfig, seed: u64) -> GuardConfig {
        let mut inside = base.inside;
        inside.extend(self.inside_networks.iter().copied());
        GuardConfig {
            inside,
            allow: self.allow.clone(),
            policy: self.policy(),
            seed,
            ..base
        }
    }
}
