//! The routing policy of one worker: which trunk a request comes from (its source ACL), that trunk's
//! number rules, the route for the called number at the local time, and the target chosen in the
//! route's group by health and priority, handed to the B2BUA as a [`Target`] with its alternates.
//!
//! The policy also drives the [`HealthMonitor`] of the targets: the worker asks it for the probes due
//! ([`RoutingPolicy::poll_probe`]) and reports their results back. The local wall time of time-of-day
//! routes is an input ([`LocalTime`]); nothing here reads a clock.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use sbc_sip::transaction::Flow;
use sbc_sip::uri::Uri;
use sbc_sip::{Message, Method};

use crate::b2bua::{Refusal, Router as B2buaRouter, Target};
use crate::cidr::Cidr;
use crate::registration::trunkreg::TrunkAuth;
use crate::routing::{
    normalize, select, CallSource, HealthConfig, HealthMonitor, LocalTime, NumberRule, Route,
    Router, TargetGroup, TargetGroupId, TargetIdx, Transport, TrunkId,
};
use crate::signalling::topology::Side;

/// A trunk as the routing policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTrunk {
    /// The trunk's identifier, as routes name it ([`SourceMatch::Trunk`](crate::routing::SourceMatch::Trunk)).
    pub id: TrunkId,
    /// Source ACL: requests from these networks are recognised as coming from the trunk.
    pub acl: Vec<Cidr>,
    /// Applied to the called number of the trunk's calls before the route lookup.
    pub number_rules: Vec<NumberRule>,
    /// Where the trunk's calls go when no route matches.
    pub inbound: Option<TargetGroupId>,
    /// The media settings of the legs toward the trunk (its calls' caller legs,
    /// [`Target::caller_media`]); `None`: the side's.
    pub media: Option<Arc<crate::media::callmedia::LegOverrides>>,
}

impl PolicyTrunk {
    /// Whether `ip` is in the trunk's source ACL.
    pub fn recognises(&self, ip: IpAddr) -> bool {
        self.acl.iter().any(|c| c.contains(ip))
    }
}

/// The first of `trunks` (configuration order) whose source ACL holds `ip`: the one rule by which
/// both the routing policy and the guard recognise a trunk.
pub fn trunk_of(trunks: &[PolicyTrunk], ip: IpAddr) -> Option<&PolicyTrunk> {
    trunks.iter().find(|t| t.recognises(ip))
}

/// A target group with what the policy needs to send to it.
#[derive(Clone, Debug)]
pub struct PolicyGroup {
    /// The targets.
    pub group: TargetGroup,
    /// The side its targets are on.
    pub side: Side,
    /// How its targets are probed; an interval of zero: not probed (their health stays Unknown,
    /// which counts as usable).
    pub health: HealthConfig,
    /// The credentials the SBC answers a digest challenge with when it reaches a carrier trunk.
    pub auth: Option<Arc<TrunkAuth>>,
    /// The group's name (or its trunk's), given to the targets picked in it ([`Target::label`]).
    pub label: Option<Arc<str>>,
    /// The media settings of the legs toward its targets ([`Target::media`]); `None`: the side's.
    pub media: Option<Arc<crate::media::callmedia::LegOverrides>>,
}

/// What a [`RoutingPolicy`] is built from.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// The target groups; `groups[i].group.id` must be `TargetGroupId(i)`.
    pub groups: Vec<PolicyGroup>,
    /// The trunks, in configuration order (the first whose ACL holds a source wins).
    pub trunks: Vec<PolicyTrunk>,
    /// The routing rules, in configuration order.
    pub routes: Vec<Route>,
    /// Where REGISTER requests are relayed (the registrar behind the SBC); `None`: the SBC answers
    /// them itself.
    pub register_group: Option<TargetGroupId>,
    /// The worker's flow toward the outside.
    pub outside_flow: Flow,
    /// The worker's flow toward the inside.
    pub inside_flow: Flow,
}

/// The routing policy of one worker, with the health of its targets.
#[derive(Debug)]
pub struct RoutingPolicy {
    groups: Vec<PolicyGroup>,
    trunks: Vec<PolicyTrunk>,
    router: Router,
    health: HealthMonitor,
    /// Addresses of targets of inside groups: a probe to one of them goes by the inside flow.
    inside_addrs: HashSet<SocketAddr>,
    register_group: Option<TargetGroupId>,
    outside_flow: Flow,
    inside_flow: Flow,
    /// Seed of the weighted order of targets, moved on for every routed message.
    seed: u64,
    /// Targets the operator disabled (or drains): no new request is routed to them.
    disabled: HashSet<SocketAddr>,
}

impl RoutingPolicy {
    /// The policy of `cfg`. One health monitor serves every probed group, with the probe settings of
    /// the first of them (they are usually the same). `seed` starts the weighted target order.
    pub fn new(cfg: PolicyConfig, seed: u64, now: Instant) -> Self {
        let probed: Vec<TargetGroup> = cfg
            .groups
            .iter()
            .filter(|g| !g.health.interval.is_zero())
            .map(|g| g.group.clone())
            .collect();
        let health_cfg = cfg
            .groups
            .iter()
            .map(|g| g.health)
            .find(|h| !h.interval.is_zero())
            .unwrap_or_default();
        let inside_addrs = cfg
            .groups
            .iter()
            .filter(|g| g.side == Side::Inside)
            .flat_map(|g| g.group.targets.iter().map(|t| t.addr))
            .collect();
        Self {
            health: HealthMonitor::for_groups(health_cfg, &probed, now),
            router: Router::new(cfg.routes),
            groups: cfg.groups,
            trunks: cfg.trunks,
            inside_addrs,
            register_group: cfg.register_group,
            outside_flow: cfg.outside_flow,
            inside_flow: cfg.inside_flow,
            seed,
            disabled: HashSet::new(),
        }
    }

    /// The group `id`, if configured.
    pub fn group(&self, id: TargetGroupId) -> Option<&PolicyGroup> {
        self.groups.get(id.0 as usize)
    }

    /// The side group `id` is on.
    pub fn side_of(&self, id: TargetGroupId) -> Option<Side> {
        self.group(id).map(|g| g.side)
    }

    /// The trunk whose source ACL holds `ip` (the first in configuration order).
    pub fn trunk_of(&self, ip: IpAddr) -> Option<&PolicyTrunk> {
        trunk_of(&self.trunks, ip)
    }

    /// The health of the targets.
    pub fn health(&self) -> &HealthMonitor {
        &self.health
    }

    fn flow(&self, side: Side) -> Flow {
        match side {
            Side::Inside => self.inside_flow,
            Side::Outside => self.outside_flow,
        }
    }

    /// The first candidate of `group` (Up before Down, by priority, weighted by the current seed) as
    /// a B2BUA target, the other candidates as its alternates in order. `user`: the called number on
    /// the new leg.
    pub fn pick(&self, group: TargetGroupId, user: Option<String>) -> Option<Target> {
        let g = self.group(group)?;
        let mut candidates =
            select(&g.group, &self.health, self.seed).filter(|t| !self.disabled.contains(&t.addr));
        let t = candidates.next()?;
        let alternates = candidates
            .map(|a| (a.addr, a.transport != Transport::Udp))
            .collect();
        Some(Target {
            label: g.label.clone(),
            dest: t.addr,
            side: g.side,
            reliable: t.transport != Transport::Udp,
            flow: self.flow(g.side),
            uri: None,
            user,
            auth: g.auth.clone(),
            alternates,
            first_response: g.health.first_response,
            media: g.media.clone(),
            caller_media: None,
        })
    }

    /// Where a REGISTER goes: the registrar group's first candidate.
    pub fn register_target(&self) -> Option<Target> {
        self.pick(self.register_group?, None)
    }

    /// Where a new call to `called` goes, received on side `from` from address `source` at local
    /// time `time`: the trunk recognised by `source` normalises the number, the longest matching
    /// route picks the group (its outbound number rules give the number sent on); a trunk's call no
    /// route matches goes to the trunk's inbound group.
    pub fn route_call(
        &self,
        from: Side,
        source: IpAddr,
        called: &str,
        time: LocalTime,
    ) -> Option<Target> {
        let trunk = self.trunk_of(source);
        let called = match trunk {
            Some(t) => normalize(&t.number_rules, called),
            None => called.into(),
        };
        let call_source = CallSource {
            side: from,
            trunk: trunk.map(|t| t.id),
        };
        let caller_media = trunk.and_then(|t| t.media.clone());
        let with_caller = |t: Target| Target {
            caller_media: caller_media.clone(),
            ..t
        };
        if let Some(r) = self.router.route(&call_source, &called, time) {
            let user = r.rewrite_outbound(&called).into_owned();
            return self.pick(r.target, Some(user)).map(with_caller);
        }
        let inbound = trunk.and_then(|t| t.inbound)?;
        self.pick(inbound, Some(called.into_owned()))
            .map(with_caller)
    }

    /// Where the new request `msg` goes: a REGISTER to the registrar group, anything else by the
    /// user part of its Request-URI (see [`Self::route_call`]).
    pub fn route(
        &self,
        msg: &Message,
        from: Side,
        source: SocketAddr,
        time: LocalTime,
    ) -> Option<Target> {
        if msg.method() == Some(&Method::Register) {
            return self.register_target();
        }
        let called = msg
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| u.user)
            .unwrap_or_default();
        self.route_call(from, source.ip(), called, time)
    }

    /// The [`B2buaRouter`] for one received message from `source` at local time `time`; the
    /// weighted order of targets moves on with every message.
    pub fn router(&mut self, source: SocketAddr, time: LocalTime) -> PolicyRouter<'_> {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        PolicyRouter {
            policy: self,
            source,
            time,
        }
    }

    /// The next health probe due at `now`, as the target to send an OPTIONS to and the index its
    /// result is reported under ([`Self::handle_probe_result`]). Call until `None`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<(TargetIdx, Target)> {
        let (idx, addr) = self.health.poll_probe(now)?;
        let side = if self.inside_addrs.contains(&addr) {
            Side::Inside
        } else {
            Side::Outside
        };
        Some((idx, Target::udp(side, addr, self.flow(side))))
    }

    /// The result of the probe `idx`: `alive` for a response that shows the target alive, `false`
    /// for 408, 503, a timeout, or a probe that could not be sent.
    pub fn handle_probe_result(&mut self, now: Instant, idx: TargetIdx, alive: bool) {
        self.health.handle_probe_result(now, idx, alive);
    }

    /// A call failed on the target at `addr` ([`CallEvent::TargetFailed`]): Down at once, probed
    /// until it answers (see [`HealthMonitor::mark_down`]).
    ///
    /// [`CallEvent::TargetFailed`]: crate::b2bua::CallEvent::TargetFailed
    pub fn mark_down(&mut self, now: Instant, addr: SocketAddr) {
        self.health.mark_down(now, addr);
    }

    /// Probes whose deadline passed count as failed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.health.handle_timeout(now);
    }

    /// When [`Self::poll_probe`] or [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.health.poll_timeout()
    }
}

mod admin;
pub use admin::{GroupState, MemberState, TargetSelector};

/// The policy's answer for one received message: [`RoutingPolicy::route`] with the message's source
/// and the local time.
#[derive(Debug)]
pub struct PolicyRouter<'a> {
    policy: &'a RoutingPolicy,
    source: SocketAddr,
    time: LocalTime,
}

impl B2buaRouter for PolicyRouter<'_> {
    fn route(&self, msg: &Message, from: Side) -> Result<Target, Refusal> {
        self.policy
            .route(msg, from, self.source, self.time)
            .ok_or(Refusal::NOT_FOUND)
    }
}

#[cfg(test)]
mod tests;
