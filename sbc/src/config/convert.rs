//! From the file's sections into the `sbc-core` types the workers run with: [`CoreSettings`] (the
//! B2BUA's groups, trunks, routes, registrar and topology policy) and [`TrunkSettings`].

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use sbc_core::guard::GuardConfig;
use sbc_core::registration::registrar::RegistrarConfig;
use sbc_core::registration::trunkreg::TrunkAuth;
use sbc_core::routing::policy::{PolicyConfig, PolicyGroup, PolicyTrunk};
use sbc_core::routing::{
    self as core_routing, HealthConfig, NumberRule, Route, SourceMatch, TargetGroup, TargetGroupId,
    TrunkId,
};
use sbc_core::signalling::topology::{HeaderAction, HeaderPolicy, Side, TopologyPolicy};
use sbc_sip::transaction::Flow;
use toml::Spanned;

use super::legmedia::LegMediaKeys;
use super::validate::check_number_rules;
use super::*;
use sbc_core::media::callmedia::LegOverrides;

impl From<TransportName> for core_routing::Transport {
    fn from(t: TransportName) -> Self {
        match t {
            TransportName::Udp => Self::Udp,
            TransportName::Tcp => Self::Tcp,
            TransportName::Tls => Self::Tls,
        }
    }
}

impl NumberRuleSection {
    fn to_core(&self) -> NumberRule {
        NumberRule {
            match_prefix: self.prefix.clone(),
            strip: self.strip,
            prepend: self.prepend.clone(),
            min_len: self.min_len,
            max_len: self.max_len,
        }
    }
}

impl RegistrarSection {
    /// The `sbc-core` registrar settings of one of `workers` workers: `capacity` is for the
    /// whole SBC, so each worker holds its share (rounded up).
    pub(crate) fn to_core(&self, workers: usize) -> RegistrarConfig {
        let d = RegistrarConfig::default();
        RegistrarConfig {
            capacity: self.capacity.div_ceil(workers.max(1)),
            min_expires: Duration::from_secs(self.min_expires_secs),
            max_expires: Duration::from_secs(self.max_expires_secs),
            default_expires: d.default_expires.clamp(
                Duration::from_secs(self.min_expires_secs),
                Duration::from_secs(self.max_expires_secs),
            ),
            nat_expires: Duration::from_secs(self.nat_expires_secs),
            keepalive_interval: Duration::from_secs(self.keepalive_interval_secs),
            ..d
        }
    }
}

impl TopologySection {
    /// The `sbc-core` policy of both directions.
    pub(crate) fn to_core(&self) -> TopologyPolicy {
        let mut p = TopologyPolicy::default();
        let product = (!self.user_agent.is_empty()).then(|| Cow::Owned(self.user_agent.clone()));
        for dir in [&mut p.toward_inside, &mut p.toward_outside] {
            apply_lists(dir, self, product.clone());
        }
        p.toward_inside.forward_credentials = self.forward_credentials;
        p
    }
}

fn apply_lists(p: &mut HeaderPolicy, t: &TopologySection, product: Option<Cow<'static, str>>) {
    p.product = product;
    for h in &t.keep_headers {
        p.set(h, HeaderAction::Keep);
    }
    for h in &t.strip_headers {
        p.set(h, HeaderAction::Strip);
    }
}

// ---------------------------------------------------------------------------------------------

/// A trunk as the B2BUA uses it.
#[derive(Clone, Debug)]
pub(crate) struct TrunkSettings {
    pub(crate) id: TrunkId,
    pub(crate) name: String,
    /// Source ACL: requests from these networks come from the trunk.
    pub(crate) acl: Vec<sbc_core::cidr::Cidr>,
    #[allow(dead_code)] // read by the config tests; calls toward the trunk take it from its group
    pub(crate) transport: core_routing::Transport,
    /// Where calls from the trunk go.
    pub(crate) inbound: Option<TargetGroupId>,
    /// The group (holding the outbound proxy) calls toward the trunk are sent to.
    pub(crate) outbound: Option<TargetGroupId>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) register: bool,
    pub(crate) register_expires: Duration,
    /// RFC 3325 trust: the trunk's P-Asserted-Identity is relayed (its ACL joins the B2BUA's
    /// trusted sources).
    pub(crate) trusted: bool,
    pub(crate) number_rules: Vec<NumberRule>,
    /// The trunk's own media settings (`srtp`, `codecs`, `dtmf`): its calls' caller legs and the
    /// legs toward its outbound proxy.
    pub(crate) media: Option<Arc<LegOverrides>>,
}

/// The B2BUA configuration in `sbc-core` types.
#[derive(Clone, Debug)]
pub(crate) struct CoreSettings {
    #[allow(dead_code)] // read by the config tests; the workers take it from `Config`
    pub(crate) outside_address: IpAddr,
    #[allow(dead_code)] // read by the config tests; the workers take it from `Config`
    pub(crate) inside_address: IpAddr,
    pub(crate) media_address: IpAddr,
    /// The target groups forming the inside.
    pub(crate) inside_groups: Vec<TargetGroupId>,
    /// Configured groups first, then one per trunk with an outbound proxy (named `trunk:<name>`);
    /// `groups[i].id == TargetGroupId(i)`.
    pub(crate) groups: Vec<TargetGroup>,
    /// Name of each group, by id (`trunk:<name>` for a trunk's outbound proxy).
    pub(crate) group_names: Vec<String>,
    /// Health-check settings of each group, by id.
    pub(crate) health: Vec<HealthConfig>,
    /// The media settings of the legs toward each group, by id (a trunk's for its outbound proxy).
    pub(crate) group_media: Vec<Option<Arc<LegOverrides>>>,
    pub(crate) trunks: Vec<TrunkSettings>,
    pub(crate) routes: Vec<Route>,
    pub(crate) registrar: RegistrarConfig,
    pub(crate) topology: TopologyPolicy,
    /// Call rules and fraud rules (`[[rules]]`, `[fraud]`).
    pub(crate) rules: sbc_core::guard::rules::RulesConfig,
}

impl CoreSettings {
    /// The routing policy of a worker whose flows toward each side are `outside_flow` and
    /// `inside_flow`: REGISTER requests go to the first inside group, and each group carries its
    /// side, probe settings, name and the credentials of the trunk whose outbound proxy it holds.
    pub(crate) fn policy(&self, outside_flow: Flow, inside_flow: Flow) -> PolicyConfig {
        let groups = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| PolicyGroup {
                group: g.clone(),
                side: if self.inside_groups.contains(&g.id) {
                    Side::Inside
                } else {
                    Side::Outside
                },
                health: self.health.get(i).copied().unwrap_or_default(),
                auth: self.trunk_auth(g.id),
                label: self.group_names.get(i).map(|n| Arc::from(n.as_str())),
                media: self.group_media.get(i).cloned().flatten(),
            })
            .collect();
        PolicyConfig {
            groups,
            trunks: self.policy_trunks(),
            routes: self.routes.clone(),
            register_group: self.inside_groups.first().copied(),
            outside_flow,
            inside_flow,
        }
    }

    /// The trunks as the routing policy and the guard recognise them.
    fn policy_trunks(&self) -> Vec<PolicyTrunk> {
        self.trunks
            .iter()
            .map(|t| PolicyTrunk {
                id: t.id,
                acl: t.acl.clone(),
                number_rules: t.number_rules.clone(),
                inbound: t.inbound,
                media: t.media.clone(),
            })
            .collect()
    }

    /// The credentials of the trunk whose outbound proxy is `group`, if it has some.
    fn trunk_auth(&self, group: TargetGroupId) -> Option<Arc<TrunkAuth>> {
        let t = self.trunks.iter().find(|t| t.outbound == Some(group))?;
        Some(Arc::new(TrunkAuth {
            username: t.username.clone()?,
            password: t.password.as_ref()?.expose().to_owned(),
        }))
    }

    /// The admission guard of a worker whose share of the new-call rate is `cps` (0: none): the
    /// trunks' source ACLs and the addresses of the inside targets are its trusted sources (the
    /// `[guard]` section adds its networks and policy: `GuardSection::worker_config`).
    pub(crate) fn guard(&self, cps: f64) -> GuardConfig {
        GuardConfig {
            cps,
            trunks: self.policy_trunks(),
            inside: self
                .inside_groups
                .iter()
                .filter_map(|g| self.groups.get(g.0 as usize))
                .flat_map(|g| g.targets.iter().map(|t| t.addr.ip()))
                .filter_map(|ip| sbc_core::cidr::Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 }))
                .collect(),
            ..GuardConfig::default()
        }
    }
}

impl Config {
    /// The SRTP policy of the media anchor (`[srtp]`). A side counts as TLS when every SIP path
    /// the SBC has on it is: the outside when it listens on `sip.tls` only and every trunk is
    /// `tls`; the inside when every member of its target groups is `tls`.
    pub(crate) fn srtp_policy(&self) -> Result<sbc_core::media::srtp::SrtpPolicy, String> {
        let outside_tls = self.sip.udp.is_empty()
            && self.sip.tcp.is_empty()
            && !self.sip.tls.is_empty()
            && self
                .trunks
                .iter()
                .all(|t| t.transport == TransportName::Tls);
        let inside_members: Vec<&TargetSection> = self
            .target_groups
            .iter()
            .filter(|g| self.inside.targets.iter().any(|n| *n.get_ref() == g.name))
            .flat_map(|g| g.targets.iter())
            .collect();
        let inside_tls = !inside_members.is_empty()
            && inside_members
                .iter()
                .all(|t| t.transport == TransportName::Tls);
        self.srtp.policy(outside_tls, inside_tls)
    }

    /// The B2BUA configuration in `sbc-core` types. Infallible in practice for a loaded
    /// configuration (the same conversion runs at load).
    pub(crate) fn b2bua(&self) -> Result<CoreSettings, String> {
        self.b2bua_in("")
    }

    /// The conversion; `text` (the file, when at hand) gives lines in errors.
    pub(super) fn b2bua_in(&self, text: &str) -> Result<CoreSettings, String> {
        let mut groups = Vec::new();
        let mut group_names: Vec<String> = Vec::new();
        let mut health = Vec::new();
        let mut group_media = Vec::new();
        for (i, g) in self.target_groups.iter().enumerate() {
            let what = format!("target_group {:?}", g.name);
            if g.name.is_empty() || g.name.starts_with("trunk:") {
                return Err(format!(
                    "target_group[{i}].name: must be non-empty and not start with \"trunk:\""
                ));
            }
            if group_names.contains(&g.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            if g.targets.is_empty() {
                return Err(format!("{what}: targets: at least one target"));
            }
            for (j, t) in g.targets.iter().enumerate() {
                if t.address.ip().is_unspecified() || t.address.port() == 0 {
                    return Err(format!(
                        "{what}: targets[{j}].address: needs a concrete ip:port"
                    ));
                }
                if g.targets
                    .get(..j)
                    .is_some_and(|prev| prev.iter().any(|p| p.address == t.address))
                {
                    return Err(format!(
                        "{what}: targets[{j}].address: {} listed twice",
                        t.address
                    ));
                }
            }
            if g.down_after == 0 || g.up_after == 0 {
                return Err(format!("{what}: down_after/up_after: must be at least 1"));
            }
            if g.first_response_ms.is_some_and(|ms| ms > 32_000) {
                return Err(format!(
                    "{what}: first_response_ms: at most 32000 (Timer B)"
                ));
            }
            let id = TargetGroupId(i as u32);
            groups.push(TargetGroup {
                id,
                targets: g
                    .targets
                    .iter()
                    .map(|t| core_routing::Target {
                        addr: t.address,
                        transport: t.transport.into(),
                        priority: t.priority,
                        weight: t.weight,
                    })
                    .collect(),
            });
            group_names.push(g.name.clone());
            group_media.push(self.leg_overrides(
                &what,
                LegMediaKeys {
                    srtp: g.srtp.as_ref(),
                    codecs: g.codecs.as_ref(),
                    dtmf: g.dtmf.as_ref(),
                },
            )?);
            health.push(HealthConfig {
                interval: Duration::from_secs(g.options_interval_secs),
                timeout: Duration::from_secs(g.options_timeout_secs),
                down_after: g.down_after,
                up_after: g.up_after,
                only_down: g.probe_only_down,
                first_response: g.first_response_ms.map(Duration::from_millis),
            });
        }
        let configured = group_names.clone();
        let group_ref = |what: &str, key: &str, name: &Spanned<String>| {
            configured
                .iter()
                .position(|n| n == name.get_ref())
                .map(|i| TargetGroupId(i as u32))
                .ok_or_else(|| {
                    format!(
                        "{what}: {key}: no [[target_group]] named {:?}{}",
                        name.get_ref(),
                        at_line(text, name.span())
                    )
                })
        };

        let mut inside_groups = Vec::new();
        for t in &self.inside.targets {
            inside_groups.push(group_ref("inside", "targets", t)?);
        }

        let mut trunks: Vec<TrunkSettings> = Vec::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let what = format!("trunk {:?}", t.name);
            if t.name.is_empty() {
                return Err(format!("trunk[{i}].name: must not be empty"));
            }
            if trunks.iter().any(|o| o.name == t.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            if t.target_group.is_none() && t.outbound.is_none() {
                return Err(format!(
                    "{what}: needs target_group (where its calls go) or outbound (calls toward it)"
                ));
            }
            let inbound = t
                .target_group
                .as_ref()
                .map(|g| group_ref(&what, "target_group", g))
                .transpose()?;
            if inbound.is_some() && t.addresses.is_empty() {
                return Err(format!(
                    "{what}: addresses: needed to recognise calls from the trunk"
                ));
            }
            if t.username.is_some() != t.password.is_some() {
                return Err(format!("{what}: username/password: give both or neither"));
            }
            if t.register && (t.outbound.is_none() || t.username.is_none()) {
                return Err(format!(
                    "{what}: register: needs outbound, username and password"
                ));
            }
            if !(60..=86_400).contains(&t.register_expires) {
                return Err(format!("{what}: register_expires: must be in 60..=86400"));
            }
            check_number_rules(&what, &t.number_rules)?;
            let media = self.leg_overrides(
                &what,
                LegMediaKeys {
                    srtp: t.srtp.as_ref(),
                    codecs: t.codecs.as_ref(),
                    dtmf: t.dtmf.as_ref(),
                },
            )?;
            let outbound = t.outbound.as_ref().map(|o| {
                let id = TargetGroupId(groups.len() as u32);
                groups.push(TargetGroup {
                    id,
                    targets: vec![core_routing::Target {
                        addr: o.proxy,
                        transport: t.transport.into(),
                        priority: 0,
                        weight: 100,
                    }],
                });
                group_names.push(format!("trunk:{}", t.name));
                group_media.push(media.clone());
                health.push(HealthConfig {
                    interval: Duration::from_secs(t.options_interval_secs),
                    ..HealthConfig::default()
                });
                id
            });
            trunks.push(TrunkSettings {
                id: TrunkId(i as u32),
                name: t.name.clone(),
                acl: t.addresses.iter().map(|c| c.0).collect(),
                transport: t.transport.into(),
                inbound,
                outbound,
                username: t.username.clone(),
                password: t.password.clone(),
                register: t.register,
                register_expires: Duration::from_secs(t.register_expires),
                trusted: t.trusted,
                number_rules: t
                    .number_rules
                    .iter()
                    .map(NumberRuleSection::to_core)
                    .collect(),
                media,
            });
        }

        let mut routes: Vec<Route> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let what = format!("route {:?}", r.name);
            if r.name.is_empty() {
                return Err(format!("route[{i}].name: must not be empty"));
            }
            if routes.iter().any(|o| o.name == r.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            let trunk_named = |key: &str, name: &str, span: Range<usize>| {
                trunks.iter().find(|t| t.name == name).ok_or_else(|| {
                    format!(
                        "{what}: {key}: no [[trunk]] named {name:?}{}",
                        at_line(text, span)
                    )
                })
            };
            let source = match &r.from {
                None => SourceMatch::Any,
                Some(f) => match f.get_ref().as_str() {
                    "any" => SourceMatch::Any,
                    "outside" => SourceMatch::Outside,
                    "inside" => SourceMatch::Inside,
                    s => match s.strip_prefix("trunk:") {
                        Some(name) => SourceMatch::Trunk(trunk_named("from", name, f.span())?.id),
                        None => {
                            return Err(format!(
                                "{what}: from: {s:?} is not \"any\", \"outside\", \"inside\" or \
                                 \"trunk:<name>\"{}",
                                at_line(text, f.span())
                            ))
                        }
                    },
                },
            };
            if !r
                .prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+*#".contains(&b))
            {
                return Err(format!("{what}: prefix: digits, +, * and # only"));
            }
            let target = match (&r.target_group, &r.trunk) {
                (Some(g), None) => group_ref(&what, "target_group", g)?,
                (None, Some(t)) => {
                    let trunk = trunk_named("trunk", t.get_ref(), t.span())?;
                    trunk.outbound.ok_or_else(|| {
                        format!(
                            "{what}: trunk: trunk {:?} has no outbound proxy{}",
                            t.get_ref(),
                            at_line(text, t.span())
                        )
                    })?
                }
                _ => {
                    return Err(format!(
                        "{what}: give exactly one of target_group and trunk"
                    ))
                }
            };
            check_number_rules(&what, &r.number_rules)?;
            let time = time_window(r.days, r.hours);
            routes.push(Route {
                name: r.name.clone(),
                source,
                prefix: r.prefix.clone(),
                time,
                target,
                number_rules: r
                    .number_rules
                    .iter()
                    .map(NumberRuleSection::to_core)
                    .collect(),
            });
        }

        let rules = self.rules_core(&|n| trunks.iter().find(|t| t.name == n).map(|t| t.id))?;
        let outside_address = self.advertised_address();
        Ok(CoreSettings {
            outside_address,
            inside_address: self.inside.address,
            media_address: self.media.address.unwrap_or(outside_address),
            inside_groups,
            groups,
            group_names,
            health,
            group_media,
            trunks,
            routes,
            registrar: self.registrar.to_core(self.worker_count()),
            topology: self.topology.to_core(),
            rules,
        })
    }
}
