//! The operator's hand on a worker's routing policy: the state of every target group and its
//! members (health, probing, disabled), enabling and disabling targets (a disabled target gets no
//! new request; the calls on it go on), and the swap of the whole policy on a reload, which keeps
//! what the worker learned (health, disabled targets) for the targets that stay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{PolicyConfig, RoutingPolicy};
use crate::routing::{Health, Transport};
use crate::signalling::topology::Side;

/// Which targets an operator's change names: the members of a group (by its name, `trunk:<name>`
/// for a trunk's outbound proxy), one target by address, or one target of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSelector {
    /// The group's name; `None`: any group.
    pub group: Option<String>,
    /// The target's address; `None`: every member of the group.
    pub addr: Option<SocketAddr>,
}

/// One member of a target group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberState {
    /// Where it is reached.
    pub addr: SocketAddr,
    /// How it is reached.
    pub transport: Transport,
    /// Lower is tried first.
    pub priority: u8,
    /// Share among equal priorities.
    pub weight: u16,
    /// Its health as probes and failed calls tell it.
    pub health: Health,
    /// Whether it is probed with OPTIONS.
    pub probed: bool,
    /// Whether the operator disabled it (no new calls).
    pub disabled: bool,
}

/// One target group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    /// Its name (`trunk:<name>` for a trunk's outbound proxy).
    pub name: Option<Arc<str>>,
    /// The side its targets are on.
    pub side: Side,
    /// Its members, in configuration order.
    pub members: Vec<MemberState>,
}

impl RoutingPolicy {
    /// The state of every group, in configuration order.
    pub fn group_states(&self) -> Vec<GroupState> {
        self.groups
            .iter()
            .map(|g| GroupState {
                name: g.label.clone(),
                side: g.side,
                members: g
                    .group
                    .targets
                    .iter()
                    .map(|t| MemberState {
                        addr: t.addr,
                        transport: t.transport,
                        priority: t.priority,
                        weight: t.weight,
                        health: self.health.health_of(t.addr),
                        probed: self.health.index_of(t.addr).is_some(),
                        disabled: self.disabled.contains(&t.addr),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The addresses of the targets `sel` names (each once, in configuration order).
    pub fn select_targets(&self, sel: &TargetSelector) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        let groups = self.groups.iter().filter(|g| {
            sel.group
                .as_deref()
                .is_none_or(|n| g.label.as_deref() == Some(n))
        });
        for t in groups.flat_map(|g| &g.group.targets) {
            if sel.addr.is_none_or(|a| a == t.addr) && !out.contains(&t.addr) {
                out.push(t.addr);
            }
        }
        out
    }

    /// Enable or disable the targets `sel` names: a disabled target gets no new request (calls
    /// and registrations in progress on it go on). Returns the targets named (none: nothing
    /// matched).
    pub fn set_enabled(&mut self, sel: &TargetSelector, enabled: bool) -> Vec<SocketAddr> {
        let targets = self.select_targets(sel);
        for a in &targets {
            if enabled {
                self.disabled.remove(a);
            } else {
                self.disabled.insert(*a);
            }
        }
        targets
    }

    /// Whether the target at `addr` is disabled.
    pub fn is_disabled(&self, addr: SocketAddr) -> bool {
        self.disabled.contains(&addr)
    }

    /// Replace the policy with one built from `cfg` (a reload): the targets that stay keep their
    /// health and whether they are disabled; the weighted order goes on from the same seed.
    pub fn replace(&mut self, cfg: PolicyConfig, now: Instant) {
        let mut new = Self::new(cfg, self.seed, now);
        new.health.adopt(&self.health);
        let kept: Vec<SocketAddr> = new
            .groups
            .iter()
            .flat_map(|g| g.group.targets.iter().map(|t| t.addr))
            .filter(|a| self.disabled.contains(a))
            .collect();
        new.disabled.extend(kept);
        *self = new;
    }
}
