//! Config check and reload: the file is read, parsed and validated as at start (errors name the
//! key and the line), compared with the configuration in force, and the parts that may change at
//! run time (target groups, trunks' routing, routes, number rules, call and fraud rules, call
//! timers) go to every worker, which swaps them in on its tick without touching the calls in
//! progress. The parts that need a restart (listen addresses, workers, media, TLS, the guard,
//! ...) are reported and not applied. A file that does not load is refused with its error, and
//! the configuration in force stays.
//!
//! A reload comes from SIGHUP (the main thread) or from the control API (`Commands::reload`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Config, DriverChoice, LimitsSection, TrunkSettings};
use crate::control::ops::{CheckReport, InForce, Reload, ReloadReport, RuntimeConfig};
use crate::control::Commands;

/// How long a reload waits for the workers to apply it (they do on their next tick, ≤ 100 ms).
pub(crate) const APPLY_WAIT: Duration = Duration::from_secs(1);

/// Check the file at `path` as a start would: parse, validate, convert. The error names the key
/// and the line.
pub(crate) fn check_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    check_text(&text, &path.display().to_string())
}

/// Check a configuration's `text` as a start would; `origin` names it in errors, which name the
/// key and the line.
pub(crate) fn check_text(text: &str, origin: &str) -> Result<Config, String> {
    let cfg = Config::from_toml(text, origin)?;
    cfg.b2bua().map_err(|e| format!("{origin}: {e}"))?;
    cfg.stream_peers().map_err(|e| format!("{origin}: {e}"))?;
    Ok(cfg)
}

/// A `[limits]` key: its name, its value, whether it changes at run time.
type LimitKey = (&'static str, fn(&LimitsSection) -> u64, bool);

/// `format!("{:?}")` of each argument differs.
fn differs(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// The keys that differ between `old` and `new`: (applied at run time, needing a restart); an
/// error when a run-time part cannot be applied without what only a restart sets up.
pub(crate) fn compare(
    old: &Config,
    new: &Config,
) -> Result<(Vec<&'static str>, Vec<&'static str>), String> {
    let mut live = Vec::new();
    let mut restart = Vec::new();
    let mut check = |changed: bool, key: &'static str, at_run_time: bool| {
        if changed {
            if at_run_time {
                live.push(key);
            } else {
                restart.push(key);
            }
        }
    };
    check(old.workers != new.workers, "workers", false);
    check(differs(&old.sip, &new.sip), "sip", false);
    check(differs(&old.tls, &new.tls), "tls", false);
    check(differs(&old.transport, &new.transport), "transport", false);
    check(differs(&old.outside, &new.outside), "outside", false);
    let inside = |c: &Config| (c.inside.address, c.inside.port);
    check(inside(old) != inside(new), "inside.address/port", false);
    let inside_groups = |c: &Config| -> Vec<String> {
        c.inside
            .targets
            .iter()
            .map(|t| t.get_ref().clone())
            .collect()
    };
    check(
        inside_groups(old) != inside_groups(new),
        "inside.targets",
        true,
    );
    check(differs(&old.media, &new.media), "media", false);
    check(differs(&old.topology, &new.topology), "topology", false);
    check(differs(&old.api, &new.api), "api", false);
    check(differs(&old.guard, &new.guard), "guard", false);
    check(differs(&old.registrar, &new.registrar), "registrar", false);
    // Spans (lines) differ when lines move: compared without them through the core's types.
    let (oc, nc) = (old.b2bua()?, new.b2bua()?);
    check(
        differs(
            &(&oc.groups, &oc.group_names, &oc.health),
            &(&nc.groups, &nc.group_names, &nc.health),
        ),
        "target_group",
        true,
    );
    check(differs(&oc.routes, &nc.routes), "route", true);
    let routing = |t: &TrunkSettings| {
        format!(
            "{:?}",
            (
                &t.name,
                &t.inbound,
                &t.outbound,
                &t.number_rules,
                &t.username
            )
        )
    };
    check(
        oc.trunks
            .iter()
            .map(routing)
            .ne(nc.trunks.iter().map(routing))
            || differs(&old.numbers, &new.numbers),
        "trunk (routing, number rules)",
        true,
    );
    let trust = |t: &TrunkSettings| format!("{:?}", (&t.acl, t.trusted));
    // The guard and the B2BUA learned the trunks' sources at start.
    check(
        oc.trunks.iter().map(trust).ne(nc.trunks.iter().map(trust)),
        "trunk.addresses/trusted (guard and identity trust)",
        false,
    );
    let registration = |t: &TrunkSettings| {
        format!(
            "{:?}",
            (
                &t.name,
                t.register,
                t.register_expires,
                &t.password,
                &t.username
            )
        )
    };
    check(
        oc.trunks
            .iter()
            .filter(|t| t.register)
            .map(registration)
            .ne(nc.trunks.iter().filter(|t| t.register).map(registration)),
        "trunk.register (the SBC's registration with the trunk)",
        false,
    );
    check(differs(&oc.rules, &nc.rules), "rules/fraud", true);
    // The call timers of new calls and the drain time change at run time; the table sizes and
    // rates were sized at start.
    let limits: [LimitKey; 9] = [
        (
            "limits.max_call_duration_secs",
            |l| l.max_call_duration_secs,
            true,
        ),
        (
            "limits.ringing_timeout_secs",
            |l| l.ringing_timeout_secs,
            true,
        ),
        (
            "limits.no_ack_timeout_secs",
            |l| l.no_ack_timeout_secs,
            true,
        ),
        ("limits.first_response_ms", |l| l.first_response_ms, true),
        ("limits.drain_secs", |l| l.drain_secs, true),
        ("limits.max_dialogs", |l| l.max_dialogs as u64, false),
        ("limits.max_cps", |l| u64::from(l.max_cps), false),
        (
            "limits.max_transactions",
            |l| l.max_transactions as u64,
            false,
        ),
        (
            "limits.transaction_linger_secs",
            |l| l.transaction_linger_secs,
            false,
        ),
    ];
    for (key, value, at_run_time) in limits {
        check(value(&old.limits) != value(&new.limits), key, at_run_time);
    }
    // Connections to TCP/TLS next hops are set up at start: a new one needs a restart, and
    // routes toward it cannot be applied before.
    if differs(&old.stream_peers()?, &new.stream_peers()?) {
        return Err(
            "the TCP/TLS next hops changed (target_group/trunk transport or address): that needs a \
             restart; nothing was applied"
                .into(),
        );
    }
    Ok((live, restart))
}

/// The configuration in force and where it came from: what SIGHUP and the control API reload.
#[derive(Debug)]
pub(crate) struct Reloader {
    path: Option<PathBuf>,
    /// The command line's `--workers` and `--driver`, which stand over the file's.
    overrides: (Option<usize>, Option<DriverChoice>),
    current: Mutex<Config>,
}

impl Reload for Reloader {
    fn reload(&self, commands: &Commands, path: Option<&Path>) -> Result<ReloadReport, String> {
        self.reload_from(commands, path)
    }

    fn check(&self, text: &str, origin: &str) -> Result<CheckReport, String> {
        let new = self.with_overrides(check_text(text, origin)?);
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let (changed, restart_needed) = compare(&current, &new)?;
        Ok(CheckReport {
            changed,
            restart_needed,
        })
    }
}

impl Reloader {
    /// The configuration `cfg` in force, read from `path` (none: the embedded default), with the
    /// command line's overrides.
    pub(crate) fn new(
        path: Option<PathBuf>,
        cfg: Config,
        workers: Option<usize>,
        driver: Option<DriverChoice>,
    ) -> Self {
        Self {
            path,
            overrides: (workers, driver),
            current: Mutex::new(cfg),
        }
    }

    /// Read `path` (default: the file in force), and apply its run-time parts on every worker.
    /// A file that does not load, or whose changes cannot be applied, is refused with its error
    /// and nothing changes.
    pub(crate) fn reload_from(
        &self,
        commands: &Commands,
        path: Option<&Path>,
    ) -> Result<ReloadReport, String> {
        let path = path
            .or(self.path.as_deref())
            .ok_or("no configuration file: the SBC runs on the embedded default")?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let new = self.with_overrides(check_text(&text, &path.display().to_string())?);
        // One reload at a time; a poisoned lock still holds the configuration in force.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let (changed, restart_needed) = compare(&current, &new)?;
        let runtime = Arc::new(RuntimeConfig {
            core: new.b2bua()?,
            limits: new.limits.clone(),
        });
        let workers_applied = commands.apply_reload(runtime, APPLY_WAIT);
        // The parts needing a restart stay as they are in force.
        let mut kept = new;
        if !restart_needed.is_empty() {
            kept = merge_runtime(&current, kept);
        }
        *current = kept;
        Ok(ReloadReport {
            file: path.display().to_string(),
            changed,
            restart_needed,
            workers_applied,
            in_force: Some(Arc::new(InForce {
                config: current.clone(),
                text,
            })),
        })
    }

    /// `new` with the command line's `--workers` and `--driver` over the file's.
    fn with_overrides(&self, mut new: Config) -> Config {
        if let Some(w) = self.overrides.0 {
            new.workers = Some(w);
        }
        if let Some(d) = self.overrides.1 {
            new.transport.driver = d;
        }
        new
    }
}

/// The configuration now in force after a reload whose restart-only parts were not applied: the
/// run-time parts of `new` over the rest of `old`.
fn merge_runtime(old: &Config, new: Config) -> Config {
    let mut c = old.clone();
    c.target_groups = new.target_groups;
    c.trunks = new.trunks;
    c.routes = new.routes;
    c.numbers = new.numbers;
    c.rules = new.rules;
    c.fraud = new.fraud;
    c.inside.targets = new.inside.targets;
    c.limits.max_call_duration_secs = new.limits.max_call_duration_secs;
    c.limits.ringing_timeout_secs = new.limits.ringing_timeout_secs;
    c.limits.no_ack_timeout_secs = new.limits.no_ack_timeout_secs;
    c.limits.first_response_ms = new.limits.first_response_ms;
    c.limits.drain_secs = new.limits.drain_secs;
    c
}

/// Reload on SIGHUP: the outcome is logged (the error names the key and the line).
pub(crate) fn on_sighup(reloader: &Reloader, commands: &Commands) {
    match reloader.reload_from(commands, None) {
        Ok(r) => tracing::info!(
            file = %r.file,
            changed = ?r.changed,
            restart_needed = ?r.restart_needed,
            workers = r.workers_applied,
            "configuration reloaded"
        ),
        Err(e) => {
            tracing::error!("configuration reload refused, the configuration in force stays: {e}")
        }
    }
}

#[cfg(test)]
mod tests;
