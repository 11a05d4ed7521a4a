//! The call rules and fraud rules of the file: `[[rules]]` (lists and limits per trunk, source
//! network or untrusted source) and `[fraud]` (table bounds, the default limit on calls from one
//! untrusted address, and `[[fraud.rules]]`), and their conversion into the core's
//! [`RulesConfig`]. Documented in `docs/fraud.md`.

use std::sync::Arc;
use std::time::Duration;

use sbc_core::guard::rules::{
    CallRule, FraudRule, LimitPer, NumberList, RuleScope, RulesConfig, Thresholds, TrunkRef,
};
use sbc_core::routing::TrunkId;
use serde::Deserialize;

use super::{time_window, Cidr, Config, Days, Hours};

/// The name of the rule `[fraud] untrusted_max_calls` makes.
pub(crate) const UNTRUSTED_RULE: &str = "untrusted-per-source";

/// What a rule's limits count: `"rule"`, `"source"` (default) or `"user"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Per {
    Rule,
    #[default]
    Source,
    User,
}

/// `[[rules]]`: lists and limits over the calls of a scope (all the conditions given).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSection {
    pub(crate) name: String,
    /// Calls from or to this `[[trunk]]`.
    #[serde(default)]
    pub(crate) trunk: Option<String>,
    /// Calls from these networks.
    #[serde(default)]
    pub(crate) sources: Vec<Cidr>,
    /// Only calls from unknown sources on the outside.
    #[serde(default)]
    pub(crate) untrusted: bool,
    #[serde(default)]
    pub(crate) caller_blacklist: Vec<String>,
    #[serde(default)]
    pub(crate) caller_whitelist: Vec<String>,
    #[serde(default)]
    pub(crate) callee_blacklist: Vec<String>,
    #[serde(default)]
    pub(crate) callee_whitelist: Vec<String>,
    /// Concurrent calls per counter; 0: no limit.
    #[serde(default)]
    pub(crate) max_calls: u32,
    /// New calls per second per counter; 0: no limit.
    #[serde(default)]
    pub(crate) max_cps: f64,
    #[serde(default)]
    pub(crate) per: Per,
}

/// A warning and a critical threshold (`{ warning = 10, critical = 20 }`); 0 turns a level off.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ThresholdSection {
    pub(crate) warning: u32,
    pub(crate) critical: u32,
}

/// `[[fraud.rules]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FraudRuleSection {
    pub(crate) name: String,
    /// Only this caller (From user).
    #[serde(default)]
    pub(crate) account: Option<String>,
    /// Counters per caller (default) or one set for the rule.
    #[serde(default = "yes")]
    pub(crate) per_account: bool,
    #[serde(default)]
    pub(crate) trunk: Option<String>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) days: Option<Days>,
    #[serde(default)]
    pub(crate) hours: Option<Hours>,
    #[serde(default)]
    pub(crate) calls_per_minute: ThresholdSection,
    #[serde(default)]
    pub(crate) concurrent_calls: ThresholdSection,
    #[serde(default)]
    pub(crate) minutes_per_day: ThresholdSection,
    #[serde(default)]
    pub(crate) sequential_calls: ThresholdSection,
}

fn yes() -> bool {
    true
}

/// `[fraud]`: bounds of the counter tables, the default limit on untrusted sources, the rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FraudSection {
    /// Counter sets per table and worker.
    pub(crate) table_size: usize,
    /// A counter set no call holds is forgotten after this many seconds unused.
    pub(crate) idle_secs: u64,
    /// Concurrent calls per untrusted source address and worker; 0: no such limit.
    pub(crate) untrusted_max_calls: u32,
    pub(crate) rules: Vec<FraudRuleSection>,
}

impl Default for FraudSection {
    fn default() -> Self {
        Self {
            table_size: 65_536,
            idle_secs: 3600,
            untrusted_max_calls: 50,
            rules: Vec::new(),
        }
    }
}

impl From<ThresholdSection> for Thresholds {
    fn from(t: ThresholdSection) -> Self {
        Self {
            warning: t.warning,
            critical: t.critical,
        }
    }
}

/// The trunk named `name` as the rules see it (`trunk_id` finds its id), or an error naming `what`.
fn trunk_ref(
    trunk_id: &dyn Fn(&str) -> Option<TrunkId>,
    what: &str,
    name: &str,
) -> Result<TrunkRef, String> {
    let id = trunk_id(name).ok_or_else(|| format!("{what}: trunk: no [[trunk]] named {name:?}"))?;
    Ok(TrunkRef {
        id,
        label: Arc::from(format!("trunk:{name}")),
    })
}

/// A number list, checked: entries are digits, `+`, `*` (a trailing one makes a prefix) or
/// letters of a SIP user.
fn number_list(what: &str, key: &str, entries: &[String]) -> Result<NumberList, String> {
    for e in entries {
        let body = e.strip_suffix('*').unwrap_or(e);
        if e.is_empty() || body.contains('*') || e.chars().any(char::is_whitespace) {
            return Err(format!(
                "{what}: {key}: {e:?} is not a number or a prefix ending with *"
            ));
        }
    }
    Ok(NumberList::new(entries))
}

impl Config {
    /// The call rules and fraud rules in core types; `trunk_id` gives the id of a trunk by name.
    pub(super) fn rules_core(
        &self,
        trunk_id: &dyn Fn(&str) -> Option<TrunkId>,
    ) -> Result<RulesConfig, String> {
        let f = &self.fraud;
        if f.table_size == 0 {
            return Err("fraud.table_size: must be at least 1".into());
        }
        if f.idle_secs == 0 {
            return Err("fraud.idle_secs: must be at least 1".into());
        }
        let mut rules: Vec<CallRule> = Vec::new();
        if f.untrusted_max_calls > 0 {
            let mut r = CallRule::new(UNTRUSTED_RULE);
            r.scope.untrusted = true;
            r.max_calls = f.untrusted_max_calls;
            rules.push(r);
        }
        for (i, s) in self.rules.iter().enumerate() {
            let what = format!("rules {:?}", s.name);
            if s.name.is_empty() {
                return Err(format!("rules[{i}].name: must not be empty"));
            }
            if rules.iter().any(|r| *r.name == *s.name) {
                return Err(format!("{what}: name: defined twice (or reserved)"));
            }
            if !(s.max_cps.is_finite() && s.max_cps >= 0.0) {
                return Err(format!("{what}: max_cps: must be 0 or more"));
            }
            let trunk = match &s.trunk {
                Some(name) => Some(trunk_ref(trunk_id, &what, name)?),
                None => None,
            };
            rules.push(CallRule {
                name: s.name.as_str().into(),
                scope: RuleScope {
                    trunk,
                    sources: s.sources.iter().map(|c| c.0).collect(),
                    untrusted: s.untrusted,
                },
                caller_blacklist: number_list(&what, "caller_blacklist", &s.caller_blacklist)?,
                caller_whitelist: number_list(&what, "caller_whitelist", &s.caller_whitelist)?,
                callee_blacklist: number_list(&what, "callee_blacklist", &s.callee_blacklist)?,
                callee_whitelist: number_list(&what, "callee_whitelist", &s.callee_whitelist)?,
                max_calls: s.max_calls,
                max_cps: s.max_cps,
                per: match s.per {
                    Per::Rule => LimitPer::Rule,
                    Per::Source => LimitPer::Source,
                    Per::User => LimitPer::User,
                },
            });
        }
        let mut fraud: Vec<FraudRule> = Vec::new();
        for (i, s) in f.rules.iter().enumerate() {
            let what = format!("fraud.rules {:?}", s.name);
            if s.name.is_empty() {
                return Err(format!("fraud.rules[{i}].name: must not be empty"));
            }
            if fraud.iter().any(|r| *r.name == *s.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            // The calls-per-minute window keeps one timestamp per call up to the threshold.
            if s.calls_per_minute.warning.max(s.calls_per_minute.critical) > 100_000 {
                return Err(format!("{what}: calls_per_minute: at most 100000"));
            }
            let mut r = FraudRule::new(&s.name);
            r.account = s.account.as_deref().map(Box::from);
            r.per_account = s.per_account;
            r.trunk = match &s.trunk {
                Some(name) => Some(trunk_ref(trunk_id, &what, name)?),
                None => None,
            };
            r.prefix = s.prefix.as_str().into();
            r.window = time_window(s.days, s.hours);
            r.calls_per_minute = s.calls_per_minute.into();
            r.concurrent_calls = s.concurrent_calls.into();
            r.minutes_per_day = s.minutes_per_day.into();
            r.sequential_calls = s.sequential_calls.into();
            fraud.push(r);
        }
        Ok(RulesConfig {
            rules,
            fraud,
            table_size: f.table_size,
            idle: Duration::from_secs(f.idle_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[sip]
udp = ["127.0.0.1:5060"]
[inside]
address = "127.0.0.1"
[[target_group]]
name = "pbx"
targets = [{ address = "127.0.0.1:5090" }]
[[trunk]]
name = "carrier"
addresses = ["198.51.100.0/24"]
outbound = { proxy = "198.51.100.1:5060" }
"#;

    fn load(extra: &str) -> Result<RulesConfig, String> {
        let text = format!("{BASE}{extra}");
        Config::from_toml_with(&text, "t", None)
            .and_then(|c| c.b2bua())
            .map(|s| s.rules)
    }

    #[test]
    fn the_default_limits_untrusted_sources_and_has_no_list() {
        let r = Config::embedded_default().b2bua().unwrap().rules;
        assert_eq!(r.rules.len(), 1);
        let u = &r.rules[0];
        assert_eq!(&*u.name, UNTRUSTED_RULE);
        assert!(u.scope.untrusted);
        assert_eq!((u.max_calls, u.per), (50, LimitPer::Source));
        assert!(u.callee_blacklist.is_empty() && r.fraud.is_empty());
        assert_eq!((r.table_size, r.idle), (65_536, Duration::from_secs(3600)));
    }

    #[test]
    fn rules_and_fraud_rules_convert() {
        let r = load(
            r#"
[fraud]
untrusted_max_calls = 0
[[fraud.rules]]
name = "night"
trunk = "carrier"
prefix = "+"
hours = "20:00-07:00"
sequential_calls = { warning = 5, critical = 10 }
[[rules]]
name = "premium"
trunk = "carrier"
sources = ["203.0.113.0/24"]
callee_blacklist = ["+49900*", "+4915112345678"]
max_calls = 3
max_cps = 1.5
per = "user"
"#,
        )
        .unwrap();
        assert_eq!(r.rules.len(), 1, "no untrusted rule with 0");
        let p = &r.rules[0];
        assert_eq!(
            p.scope.trunk.as_ref().map(|t| (t.id, &*t.label)),
            Some((TrunkId(0), "trunk:carrier"))
        );
        assert_eq!(p.scope.sources.len(), 1);
        assert!(p.callee_blacklist.contains("+49900123"));
        assert!(p.callee_blacklist.contains("+4915112345678"));
        assert_eq!((p.max_calls, p.max_cps, p.per), (3, 1.5, LimitPer::User));
        let f = &r.fraud[0];
        assert_eq!(&*f.prefix, "+");
        assert!(f.per_account);
        assert_eq!(
            f.sequential_calls,
            Thresholds {
                warning: 5,
                critical: 10
            }
        );
        let w = f.window.unwrap();
        assert_eq!((w.start_min, w.end_min), (20 * 60, 7 * 60));
    }

    #[test]
    fn bad_rules_are_refused_with_their_key() {
        for (extra, key) in [
            (
                "[[rules]]\nname = \"x\"\ntrunk = \"nope\"\n",
                "trunk: no [[trunk]] named",
            ),
            (
                "[[rules]]\nname = \"x\"\ncallee_blacklist = [\"+49*9\"]\n",
                "callee_blacklist",
            ),
            (
                "[[rules]]\nname = \"x\"\n[[rules]]\nname = \"x\"\n",
                "defined twice",
            ),
            ("[[rules]]\nname = \"x\"\nmax_cps = -1.0\n", "max_cps"),
            ("[[rules]]\nname = \"x\"\nper = \"everyone\"\n", "per"),
            ("[fraud]\ntable_size = 0\n", "fraud.table_size"),
            (
                "[[fraud.rules]]\nname = \"f\"\ncalls_per_minute = { critical = 200000 }\n",
                "calls_per_minute",
            ),
            ("[[fraud.rules]]\nname = \"f\"\nbogus = 1\n", "bogus"),
        ] {
            let e = load(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }
}
