//! The binary's side of the control API (`docs/api.md`): [`prepare`] binds `api.listen` and reads
//! the token and certificate at start (so a bad setting stops the start, naming its key), and
//! [`Prepared::run`] turns the control thread into a current-thread runtime that serves the
//! `control-api` crate's server over a [`Handle`] while it keeps absorbing the workers' snapshots
//! and fraud events. The handle serves every endpoint: health and readiness, version, uptime and
//! the config file in force (secrets redacted), bans, the allow list, call rules and their lists,
//! fraud rules and events (all over [`Commands`]), `/metrics` ([`crate::metrics::render`]), and
//! the workers' operations (`ops`: calls, registrations, targets and trunks, media sessions, the
//! config check and reload). The rules and allowed networks added at run time are mirrored here,
//! so that the API can list what is in force; a reload rebuilds the mirror from the new file.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_api::dto::{self, Applied, Page, Paging};
use control_api::server::ServerConfig;
use control_api::ApiError;
use sbc_core::cidr::Cidr;
use sbc_core::guard::rules::{ListKind, RulesCommand};
use sbc_core::guard::{BanReason, GuardCommand};

use crate::config::{Config, FraudRuleSection, RuleSection, UNTRUSTED_RULE};
use crate::control::{Commands, Control};

mod ops;

/// How long the API waits for the workers' bans (a worker answers on its next tick).
const BANS_WAIT: Duration = Duration::from_millis(500);

/// How often the control thread takes the workers' snapshots while it serves the API.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// A worker whose last snapshot is older than this is not ready.
const STALE: Duration = Duration::from_secs(3);

/// The longest ban the API sets (a year); longer: ban until removed.
const MAX_BAN_SECS: u64 = 366 * 24 * 3600;

/// What the API serves with, bound and read at start.
pub(crate) struct Prepared {
    listener: std::net::TcpListener,
    server: ServerConfig,
    workers: usize,
    cfg: Config,
    view: serde_json::Value,
    rules: Vec<dto::CallRule>,
    fraud: Vec<dto::FraudRule>,
}

/// Keys whose values the config view hides: passwords, tokens, keys, and the URLs that may carry
/// credentials (`cdr.postgres_url`, `events.webhook_url`).
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k == "token"
        || k.ends_with("key")
        || k.ends_with("_url")
}

/// `v` with the values of secret keys replaced.
fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if secret_key(k) && !val.is_null() {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The `[[rules]]` and `[[fraud.rules]]` of the file's `text` as the API shows them, with the rule
/// `[fraud] untrusted_max_calls` makes first.
fn file_rules(cfg: &Config, text: &serde_json::Value) -> (Vec<dto::CallRule>, Vec<dto::FraudRule>) {
    let mut rules = Vec::new();
    if cfg.fraud.untrusted_max_calls > 0 {
        rules.push(dto::CallRule {
            name: UNTRUSTED_RULE.into(),
            trunk: None,
            sources: Vec::new(),
            untrusted: true,
            caller_blacklist: Vec::new(),
            caller_whitelist: Vec::new(),
            callee_blacklist: Vec::new(),
            callee_whitelist: Vec::new(),
            max_calls: cfg.fraud.untrusted_max_calls,
            max_cps: 0.0,
            per: dto::Per::Source,
        });
    }
    let list =
        |v: Option<&serde_json::Value>| v.and_then(|v| v.as_array().cloned()).unwrap_or_default();
    for r in list(text.get("rules")) {
        match serde_json::from_value(r) {
            Ok(r) => rules.push(r),
            Err(e) => tracing::warn!("api: a [[rules]] table cannot be listed: {e}"),
        }
    }
    let mut fraud = Vec::new();
    for mut r in list(text.get("fraud").and_then(|f| f.get("rules"))) {
        // `days` may be a list in the file: the API writes it as one string.
        if let Some(d) = r.get_mut("days") {
            if let Some(a) = d.as_array() {
                let joined: Vec<&str> = a.iter().filter_map(|x| x.as_str()).collect();
                *d = serde_json::Value::String(joined.join(","));
            }
        }
        match serde_json::from_value(r) {
            Ok(r) => fraud.push(r),
            Err(e) => tracing::warn!("api: a [[fraud.rules]] table cannot be listed: {e}"),
        }
    }
    (rules, fraud)
}

/// The API's view of the config file `origin` of `text` loaded as `cfg`: the file as JSON with its
/// secrets redacted, and its call and fraud rules as the API lists them.
fn view_of(
    cfg: &Config,
    origin: &str,
    text: &str,
) -> Result<(serde_json::Value, Vec<dto::CallRule>, Vec<dto::FraudRule>), String> {
    let file: toml::Value = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    let file = serde_json::to_value(file).map_err(|e| format!("{origin}: {e}"))?;
    let (rules, fraud) = file_rules(cfg, &file);
    let mut shown = file;
    redact(&mut shown);
    let view = serde_json::json!({
        "file": origin,
        "workers": cfg.worker_count(),
        "config": shown,
    });
    Ok((view, rules, fraud))
}

/// Bind the API and read its token and certificate, when `[api] enabled`; `origin` and `text` are
/// the config file's name and content (shown, redacted, at `/api/v1/config`).
pub(crate) fn prepare(cfg: &Config, origin: &str, text: &str) -> Result<Option<Prepared>, String> {
    let a = &cfg.api;
    if !a.enabled {
        return Ok(None);
    }
    let token = a.read_token()?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(
            crate::tls::server_config(c, k)
                .map_err(|e| format!("api.tls_cert/api.tls_key: {e}"))?,
        ),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(a.listen)
        .map_err(|e| format!("api.listen {}: {e}", a.listen))?;
    if token.is_none() {
        tracing::warn!(
            "api: no api.token or api.token_file: only /health, /ready, /metrics and /openapi.json \
             are served"
        );
    }
    tracing::info!(
        listen = %a.listen,
        https = tls.is_some(),
        token = token.is_some(),
        "control API listening"
    );
    let (view, rules, fraud) = view_of(cfg, origin, text)?;
    Ok(Some(Prepared {
        listener,
        server: ServerConfig {
            auth: control_api::routes::Auth::new(token.as_deref()),
            tls,
            max_body: a.max_body_bytes,
            max_connections: a.max_connections,
            ..ServerConfig::default()
        },
        workers: cfg.worker_count(),
        cfg: cfg.clone(),
        view,
        rules,
        fraud,
    }))
}

impl Prepared {
    /// Serve the API on this (the control) thread while taking the workers' snapshots, until
    /// every worker is gone; then the control state, as [`Control::run`] returns it.
    pub(crate) fn run(self, control: Control) -> Control {
        let state = Rc::new(RefCell::new(control));
        let handle: Rc<dyn control_api::Control> = Rc::new(Handle {
            control: state.clone(),
            started: Instant::now(),
            workers: self.workers,
            allowed: RefCell::new(self.cfg.guard.allow.iter().map(|c| (*c, false)).collect()),
            cfg: RefCell::new(self.cfg),
            view: RefCell::new(self.view),
            drained: RefCell::new(Vec::new()),
            rules: RefCell::new(self.rules),
            fraud: RefCell::new(self.fraud),
        });
        let tick = || state.borrow_mut().drain();
        if let Err(e) =
            control_api::server::run_blocking(self.listener, self.server, handle, DRAIN_EVERY, tick)
        {
            tracing::error!("api: not served: {e}");
        }
        // Serving ended with every worker gone, or never began: wait for the workers here.
        let mut done = std::mem::replace(
            &mut *state.borrow_mut(),
            Control::new(0, crossbeam_channel::never()),
        );
        if done.drain() {
            done = done.run();
        }
        done
    }
}

/// The API's view of the SBC: the control thread's state and what was changed at run time.
struct Handle {
    control: Rc<RefCell<Control>>,
    started: Instant,
    workers: usize,
    /// The configuration in force (rebuilt by a reload).
    cfg: RefCell<Config>,
    /// The config file in force as `/api/v1/config` shows it (rebuilt by a reload).
    view: RefCell<serde_json::Value>,
    rules: RefCell<Vec<dto::CallRule>>,
    fraud: RefCell<Vec<dto::FraudRule>>,
    /// Allowed networks: from the file (`false`) or added over the API (`true`).
    allowed: RefCell<Vec<(Cidr, bool)>>,
    /// Targets drained over the API (shown `draining` while calls are left on them).
    drained: RefCell<Vec<std::net::SocketAddr>>,
}

fn reason(r: BanReason) -> &'static str {
    match r {
        BanReason::Flood => "flood",
        BanReason::UnknownUsers => "unknown_users",
        BanReason::AuthFailures => "auth_failures",
        BanReason::Sweep => "sweep",
        BanReason::Scanner => "scanner",
        BanReason::Manual => "manual",
    }
}

fn list_kind(l: dto::RuleList) -> ListKind {
    match l {
        dto::RuleList::CallerBlacklist => ListKind::CallerBlacklist,
        dto::RuleList::CallerWhitelist => ListKind::CallerWhitelist,
        dto::RuleList::CalleeBlacklist => ListKind::CalleeBlacklist,
        dto::RuleList::CalleeWhitelist => ListKind::CalleeWhitelist,
    }
}

fn list_of(r: &mut dto::CallRule, l: dto::RuleList) -> &mut Vec<String> {
    match l {
        dto::RuleList::CallerBlacklist => &mut r.caller_blacklist,
        dto::RuleList::CallerWhitelist => &mut r.caller_whitelist,
        dto::RuleList::CalleeBlacklist => &mut r.callee_blacklist,
        dto::RuleList::CalleeWhitelist => &mut r.callee_whitelist,
    }
}

/// The field a config error names (`"rules \"x\": trunk: ..."` → `trunk`), among `fields`.
fn field_of(msg: &str, fields: &[&'static str]) -> &'static str {
    fields
        .iter()
        .find(|f| msg.contains(&format!("{f}:")) || msg.contains(&format!("`{f}`")))
        .copied()
        .unwrap_or("name")
}

const RULE_FIELDS: &[&str] = &[
    "trunk",
    "sources",
    "caller_blacklist",
    "caller_whitelist",
    "callee_blacklist",
    "callee_whitelist",
    "max_calls",
    "max_cps",
    "per",
];

const FRAUD_FIELDS: &[&str] = &[
    "trunk",
    "account",
    "prefix",
    "days",
    "hours",
    "calls_per_minute",
    "concurrent_calls",
    "minutes_per_day",
    "sequential_calls",
];

/// Serialize an API body and read it as the file's section, so the file's checks apply.
fn as_section<T: serde::Serialize, S: serde::de::DeserializeOwned>(
    v: &T,
    fields: &[&'static str],
) -> Result<S, ApiError> {
    let json = serde_json::to_value(v).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let top = path.split(['.', '[']).next().unwrap_or("");
        let m = e.inner().to_string();
        let field = fields.iter().find(|f| **f == top).copied();
        ApiError::invalid(field.unwrap_or_else(|| field_of(&m, fields)), m)
    })
}

/// Put `item` in `mirror` in place of the one of its name, or at the end.
fn upsert<T: Clone>(mirror: &RefCell<Vec<T>>, item: &T, name_of: impl Fn(&T) -> &str) {
    let mut m = mirror.borrow_mut();
    match m.iter_mut().find(|r| name_of(r) == name_of(item)) {
        Some(r) => *r = item.clone(),
        None => m.push(item.clone()),
    }
}

/// A list entry as the file accepts it: a number, or a prefix ending with `*`.
fn check_entry(e: &str) -> Result<(), ApiError> {
    let body = e.strip_suffix('*').unwrap_or(e);
    if e.is_empty() || e.len() > 64 || body.contains('*') || e.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "entry",
            format!("{e:?} is not a number or a prefix ending with *"),
        ));
    }
    Ok(())
}

impl Handle {
    fn commands(&self) -> Result<Commands, ApiError> {
        self.control
            .borrow()
            .commands
            .clone()
            .ok_or_else(|| ApiError::Unavailable("no worker takes commands".into()))
    }

    /// `taken` of the workers took a change: all is well unless none did.
    fn applied(&self, taken: usize) -> Result<Applied, ApiError> {
        if taken == 0 {
            return Err(ApiError::Unavailable(
                "no worker took the change (their command channels are full)".into(),
            ));
        }
        Ok(Applied {
            workers: taken as u32,
            of: self.workers as u32,
        })
    }

    fn reporting(&self) -> usize {
        let now = Instant::now();
        self.control
            .borrow()
            .workers()
            .filter(|s| !s.last && now.saturating_duration_since(s.at) < STALE)
            .count()
    }

    /// Rules as the file writes them in the core's types, checked as the file's own; an error
    /// names the field among `fields`.
    fn core_rules(
        &self,
        rules: Vec<RuleSection>,
        fraud: Vec<FraudRuleSection>,
        fields: &[&'static str],
    ) -> Result<sbc_core::guard::rules::RulesConfig, ApiError> {
        self.cfg
            .borrow()
            .api_rules(rules, fraud)
            .map_err(|m| ApiError::invalid(field_of(&m, fields), m))
    }

    /// Send `cmd`, which removes the rule `name` of `mirror`, and forget it there; 404 when the
    /// mirror has no such rule.
    fn remove_named<T>(
        &self,
        mirror: &RefCell<Vec<T>>,
        name: &str,
        name_of: impl Fn(&T) -> &str,
        cmd: &RulesCommand,
    ) -> Result<Applied, ApiError> {
        if !mirror.borrow().iter().any(|r| name_of(r) == name) {
            return Err(ApiError::NotFound(format!("no rule named {name:?}")));
        }
        let applied = self.rules_cmd(cmd)?;
        mirror.borrow_mut().retain(|r| name_of(r) != name);
        Ok(applied)
    }

    fn rules_cmd(&self, cmd: &RulesCommand) -> Result<Applied, ApiError> {
        let n = self.commands()?.rules(cmd);
        self.applied(n)
    }
}

impl control_api::Control for Handle {
    fn ready(&self) -> dto::Ready {
        let reporting = self.reporting();
        dto::Ready {
            ready: reporting >= self.workers,
            workers: self.workers as u32,
            workers_reporting: reporting as u32,
        }
    }

    fn version(&self) -> dto::Version {
        dto::Version {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            workers: self.workers as u32,
        }
    }

    fn config(&self) -> Result<serde_json::Value, ApiError> {
        Ok(self.view.borrow().clone())
    }

    fn metrics(&self) -> String {
        crate::metrics::render(
            &self.control.borrow(),
            self.started.elapsed().as_secs(),
            self.reporting(),
        )
    }

    fn calls(&self, filter: &dto::CallFilter, paging: Paging) -> Result<Page<dto::Call>, ApiError> {
        self.list_calls(filter, paging)
    }

    fn call(&self, id: &str) -> Result<dto::Call, ApiError> {
        self.one_call(id)
    }

    fn hang_up(&self, id: &str) -> Result<Applied, ApiError> {
        self.hang_up_call(id)
    }

    fn registrations(
        &self,
        aor: Option<&str>,
        paging: Paging,
    ) -> Result<Page<dto::Registration>, ApiError> {
        self.list_registrations(aor, paging)
    }

    fn remove_registration(&self, aor: &str) -> Result<Applied, ApiError> {
        self.unregister(aor)
    }

    fn targets(&self) -> Result<Vec<dto::TargetGroup>, ApiError> {
        self.target_groups()
    }

    fn target_action(
        &self,
        group: &str,
        target: &str,
        action: dto::AdminAction,
    ) -> Result<Applied, ApiError> {
        self.set_target(group, target, action)
    }

    fn trunks(&self) -> Result<Vec<dto::Trunk>, ApiError> {
        self.trunk_states()
    }

    fn trunk_action(&self, trunk: &str, action: dto::AdminAction) -> Result<Applied, ApiError> {
        self.set_trunk(trunk, action)
    }

    fn media_sessions(&self, paging: Paging) -> Result<Page<dto::MediaSession>, ApiError> {
        self.list_media(paging)
    }

    fn config_check(&self, text: &dto::ConfigText) -> Result<dto::ConfigVerdict, ApiError> {
        self.check_config(&text.toml)
    }

    fn config_reload(&self) -> Result<dto::ConfigVerdict, ApiError> {
        self.reload_config()
    }

    fn bans(&self) -> Result<Vec<dto::Ban>, ApiError> {
        let answers = self.commands()?.bans(BANS_WAIT);
        let mut out: Vec<dto::Ban> = Vec::new();
        for (_, bans) in answers {
            for b in bans {
                let secs = b.remaining_ms.map(|ms| ms.div_ceil(1000));
                match out.iter_mut().find(|o| o.ip == b.ip) {
                    Some(o) => {
                        o.workers += 1;
                        o.level = o.level.max(b.level);
                        o.remaining_secs = match (o.remaining_secs, secs) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        };
                    }
                    None => out.push(dto::Ban {
                        ip: b.ip,
                        remaining_secs: secs,
                        level: b.level,
                        reason: reason(b.reason).into(),
                        workers: 1,
                    }),
                }
            }
        }
        out.sort_by_key(|b| b.ip);
        Ok(out)
    }

    fn ban(&self, req: &dto::BanRequest) -> Result<Applied, ApiError> {
        if let Some(s) = req.secs {
            if !(1..=MAX_BAN_SECS).contains(&s) {
                return Err(ApiError::invalid(
                    "secs",
                    format!("from 1 to {MAX_BAN_SECS} (absent: until removed)"),
                ));
            }
        }
        let n = self.commands()?.guard(GuardCommand::Ban {
            ip: req.ip,
            secs: req.secs,
        });
        tracing::info!(ip = %req.ip, secs = ?req.secs, workers = n, "api: ban");
        self.applied(n)
    }

    fn unban(&self, ip: IpAddr) -> Result<Applied, ApiError> {
        let n = self.commands()?.guard(GuardCommand::Unban { ip });
        tracing::info!(%ip, workers = n, "api: ban lifted");
        self.applied(n)
    }

    fn allowed(&self) -> Result<Vec<dto::AllowEntry>, ApiError> {
        Ok(self
            .allowed
            .borrow()
            .iter()
            .map(|(c, api)| dto::AllowEntry {
                network: c.to_string(),
                source: if *api { "api" } else { "config" }.into(),
            })
            .collect())
    }

    fn allow(&self, network: &str) -> Result<Applied, ApiError> {
        let net: Cidr = network
            .parse()
            .map_err(|e| ApiError::invalid("network", format!("{network:?}: {e}")))?;
        let applied = self.applied(self.commands()?.guard(GuardCommand::Allow { net }))?;
        let mut a = self.allowed.borrow_mut();
        if !a.iter().any(|(c, _)| *c == net) {
            a.push((net, true));
        }
        Ok(applied)
    }

    fn disallow(&self, network: &str) -> Result<Applied, ApiError> {
        let net: Cidr = network
            .parse()
            .map_err(|e| ApiError::invalid("network", format!("{network:?}: {e}")))?;
        match self.allowed.borrow().iter().find(|(c, _)| *c == net) {
            None => return Err(ApiError::NotFound(format!("{net} is not allowed"))),
            Some((_, false)) => {
                return Err(ApiError::invalid(
                    "network",
                    format!("{net} is allowed by guard.allow in the config file"),
                ))
            }
            Some(_) => {}
        }
        let applied = self.applied(self.commands()?.guard(GuardCommand::Disallow { net }))?;
        self.allowed.borrow_mut().retain(|(c, _)| *c != net);
        Ok(applied)
    }

    fn rules(&self) -> Result<Vec<dto::CallRule>, ApiError> {
        Ok(self.rules.borrow().clone())
    }

    fn add_rule(&self, rule: &dto::CallRule) -> Result<Applied, ApiError> {
        let section: RuleSection = as_section(rule, RULE_FIELDS)?;
        let core = self
            .core_rules(vec![section], Vec::new(), RULE_FIELDS)?
            .rules;
        let core = core
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::invalid("name", "no rule"))?;
        let applied = self.rules_cmd(&RulesCommand::AddRule(Box::new(core)))?;
        upsert(&self.rules, rule, |r| &r.name);
        Ok(applied)
    }

    fn remove_rule(&self, name: &str) -> Result<Applied, ApiError> {
        let cmd = RulesCommand::RemoveRule(Arc::from(name));
        self.remove_named(&self.rules, name, |r| &r.name, &cmd)
    }

    fn list_add(&self, rule: &str, list: dto::RuleList, entry: &str) -> Result<Applied, ApiError> {
        check_entry(entry)?;
        if !self.rules.borrow().iter().any(|r| r.name == rule) {
            return Err(ApiError::NotFound(format!("no rule named {rule:?}")));
        }
        let applied = self.rules_cmd(&RulesCommand::ListAdd {
            rule: Arc::from(rule),
            list: list_kind(list),
            entry: entry.into(),
        })?;
        if let Some(r) = self.rules.borrow_mut().iter_mut().find(|r| r.name == rule) {
            let l = list_of(r, list);
            if !l.iter().any(|e| e == entry) {
                l.push(entry.to_string());
            }
        }
        Ok(applied)
    }

    fn list_remove(
        &self,
        rule: &str,
        list: dto::RuleList,
        entry: &str,
    ) -> Result<Applied, ApiError> {
        let known = self
            .rules
            .borrow_mut()
            .iter_mut()
            .find(|r| r.name == rule)
            .map(|r| list_of(r, list).iter().any(|e| e == entry));
        match known {
            None => return Err(ApiError::NotFound(format!("no rule named {rule:?}"))),
            Some(false) => {
                return Err(ApiError::NotFound(format!(
                    "{entry:?} is not on that list of {rule:?}"
                )))
            }
            Some(true) => {}
        }
        let applied = self.rules_cmd(&RulesCommand::ListRemove {
            rule: Arc::from(rule),
            list: list_kind(list),
            entry: entry.into(),
        })?;
        if let Some(r) = self.rules.borrow_mut().iter_mut().find(|r| r.name == rule) {
            list_of(r, list).retain(|e| e != entry);
        }
        Ok(applied)
    }

    fn fraud_rules(&self) -> Result<Vec<dto::FraudRule>, ApiError> {
        Ok(self.fraud.borrow().clone())
    }

    fn add_fraud_rule(&self, rule: &dto::FraudRule) -> Result<Applied, ApiError> {
        let section: FraudRuleSection = as_section(rule, FRAUD_FIELDS)?;
        let core = self
            .core_rules(Vec::new(), vec![section], FRAUD_FIELDS)?
            .fraud;
        let core = core
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::invalid("name", "no rule"))?;
        let applied = self.rules_cmd(&RulesCommand::AddFraudRule(Box::new(core)))?;
        upsert(&self.fraud, rule, |r| &r.name);
        Ok(applied)
    }

    fn remove_fraud_rule(&self, name: &str) -> Result<Applied, ApiError> {
        let cmd = RulesCommand::RemoveFraudRule(Arc::from(name));
        self.remove_named(&self.fraud, name, |r| &r.name, &cmd)
    }

    fn fraud_events(&self, paging: Paging) -> Result<Page<dto::FraudEvent>, ApiError> {
        let all: Vec<dto::FraudEvent> = self
            .control
            .borrow()
            .fraud_events()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|e| dto::FraudEvent {
                rule: e.rule.to_string(),
                account: e.account.to_string(),
                callee: e.callee.to_string(),
                source: e.source,
                metric: e.metric.name().into(),
                value: e.value,
                threshold: e.threshold,
                level: match e.level {
                    sbc_core::guard::rules::Level::Warning => "warning",
                    sbc_core::guard::rules::Level::Critical => "critical",
                }
                .into(),
            })
            .collect();
        Ok(Page::of(all, paging))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut v = serde_json::json!({
            "api": {"token": "s3cret", "tls_key": "/k.pem", "listen": "127.0.0.1:8080"},
            "trunk": [{"name": "c", "password": "pw", "username": "u"}],
            "tls": {"key": "/x", "cert": "/c"},
            "cdr": {"postgres_url": "postgresql://billing:pgpw@db/cdr", "batch": 500},
            "events": {"webhook_url": "https://hooks.example/t0k3n"},
        });
        redact(&mut v);
        let text = v.to_string();
        for s in ["s3cret", "/k.pem", "\"pw\"", "/x", "pgpw", "t0k3n"] {
            assert!(!text.contains(s), "{s} shown: {text}");
        }
        for s in ["127.0.0.1:8080", "\"u\"", "/c"] {
            assert!(text.contains(s), "{s} hidden: {text}");
        }
    }

    #[test]
    fn list_entries_are_checked_as_the_file_checks_them() {
        assert!(check_entry("+49900*").is_ok());
        for bad in ["", "+49*9", "a b"] {
            assert!(check_entry(bad).is_err(), "{bad:?}");
        }
    }
}
