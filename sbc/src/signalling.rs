//! The worker's signalling: the sans-IO B2BUA of `sbc-core` with the configured routes, trunks and
//! target health around it.
//!
//! A worker owns one [`Signalling`]. Its flows (see [`sbc_sip::transaction::Flow`]) are the worker's
//! own sockets and connections: UDP socket `i` of the worker is `Flow(i)`, a TCP/TLS connection is
//! `Flow(token)` with the stream token (whose top byte is never zero). Nothing here is shared with other
//! workers: each one probes the targets itself and keeps its own calls and registrations.
//!
//! Ownership needs no hand-over between workers: the outside reaches a worker through the kernel's
//! SO_REUSEPORT hash (one source always lands on the same worker), and the inside reaches it through
//! the worker's own port, which is the only port it uses toward the inside (Via, Contact, and the
//! Contact it registers for user agents). Only requests the PBX starts toward trunks arrive on the
//! shared inside port, and any worker can take those.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sbc_core::b2bua::{B2bua, B2buaConfig, CallEvent, Origin, Router, Target};
use sbc_core::media::MediaControl;
use sbc_core::registration::trunkreg::{TrunkAuth, TrunkRegistrationConfig};
use sbc_core::routing::{
    self as core_routing, select, CallSource, HealthMonitor, LocalTime, TargetGroupId, TargetIdx,
};
use sbc_core::signalling::ids::WorkerId;
use sbc_core::signalling::topology::Side;
use sbc_sip::transaction::{Flow, Transmit};
use sbc_sip::{Message, Method};

use crate::config;

/// Counters of the signalling layer, copied out when the worker stops.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SignallingStats {
    pub(crate) calls_started: u64,
    pub(crate) calls_answered: u64,
    pub(crate) calls_ended: u64,
    pub(crate) probes_failed: u64,
}

/// Per target group, the credentials of the trunk whose outbound group it is.
fn trunk_auth(cfg: &config::CoreSettings) -> Vec<Option<Arc<TrunkAuth>>> {
    (0..cfg.groups.len())
        .map(|g| {
            let t = cfg
                .trunks
                .iter()
                .find(|t| t.outbound.is_some_and(|o| o.0 as usize == g))?;
            Some(Arc::new(TrunkAuth {
                username: t.username.clone()?,
                password: t.password.as_ref()?.expose().to_owned(),
            }))
        })
        .collect()
}

/// The routing configuration of one worker, and the health of its targets.
struct Routes {
    cfg: config::CoreSettings,
    router: core_routing::Router,
    health: HealthMonitor,
    outside_flow: Flow,
    inside_flow: Flow,
    /// Wall time for time-of-day routes, refreshed once a second.
    local: LocalTime,
    local_at: Instant,
    seed: u64,
    /// Per target group: the credentials of the trunk it reaches, if it has some.
    trunk_auth: Vec<Option<Arc<TrunkAuth>>>,
}

impl Routes {
    fn side_of(&self, group: TargetGroupId) -> Side {
        if self.cfg.inside_groups.contains(&group) {
            Side::Inside
        } else {
            Side::Outside
        }
    }

    /// The first candidate of `group` (Up before Down, by priority, weighted), as a B2BUA target.
    fn pick(&self, group: TargetGroupId, user: Option<String>) -> Option<Target> {
        let g = self.cfg.groups.get(group.0 as usize)?;
        let mut candidates = select(g, &self.health, self.seed);
        let t = candidates.next()?;
        let alternates = candidates
            .map(|a| (a.addr, a.transport != core_routing::Transport::Udp))
            .collect();
        let side = self.side_of(group);
        let flow = match side {
            Side::Inside => self.inside_flow,
            Side::Outside => self.outside_flow,
        };
        Some(Target {
            dest: t.addr,
            side,
            reliable: t.transport != core_routing::Transport::Udp,
            flow,
            uri: None,
            user,
            auth: self.trunk_auth.get(group.0 as usize).cloned().flatten(),
            label: None,
            alternates,
        })
    }

    fn route(&self, msg: &Message, side: Side, source: SocketAddr) -> Option<Target> {
        let trunk = self
            .cfg
            .trunks
            .iter()
            .find(|t| t.acl.iter().any(|c| c.contains(source.ip())));
        if msg.method() == Some(&Method::Register) {
            // The registrar behind the SBC: the first inside group.
            return self
                .cfg
                .inside_groups
                .first()
                .and_then(|g| self.pick(*g, None));
        }
        let called = msg
            .request_uri()
            .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user)
            .unwrap_or_default();
        let called = match trunk {
            Some(t) => core_routing::normalize(&t.number_rules, called).into_owned(),
            None => called.to_owned(),
        };
        let source = CallSource {
            side: match side {
                Side::Inside => core_routing::Side::Inside,
                Side::Outside => core_routing::Side::Outside,
            },
            trunk: trunk.map(|t| t.id),
        };
        if let Some(r) = self.router.route(&source, &called, self.local) {
            let user = r.rewrite_outbound(&called).into_owned();
            return self.pick(r.target, Some(user));
        }
        // A call from a trunk with an inbound group and no matching route goes there.
        let inbound = trunk.and_then(|t| t.inbound)?;
        self.pick(inbound, Some(called))
    }
}

/// A [`Router`] for one received message: the configured routes plus where the message came from.
struct MessageRouter<'a> {
    routes: &'a Routes,
    source: SocketAddr,
}

impl Router for MessageRouter<'_> {
    fn route(&self, msg: &Message, from: Side) -> Option<Target> {
        self.routes.route(msg, from, self.source)
    }
}

/// The signalling of one worker.
pub(crate) struct Signalling {
    b2bua: B2bua,
    routes: Routes,
    pub(crate) stats: SignallingStats,
}

/// Where a worker stands on each side and which of its sockets it uses.
pub(crate) struct Place {
    pub(crate) worker: u16,
    pub(crate) outside: SocketAddr,
    pub(crate) inside: SocketAddr,
    pub(crate) outside_flow: Flow,
    pub(crate) inside_flow: Flow,
}

impl Signalling {
    /// The trunk registrations' counters, summed.
    pub(crate) fn trunk_stats(&self) -> sbc_core::registration::trunkreg::RegStats {
        let mut sum = sbc_core::registration::trunkreg::RegStats::default();
        for (_, _, s) in self.b2bua.trunk_registrations() {
            sum.registered += s.registered;
            sum.challenges += s.challenges;
            sum.failures += s.failures;
        }
        sum
    }

    /// Stopping: remove the SBC's bindings with carrier trunks (REGISTER with Expires: 0).
    pub(crate) fn unregister_trunks(&mut self, now: Instant) -> usize {
        self.b2bua.unregister_trunks(now)
    }

    /// A trunk's removal is still unanswered.
    pub(crate) fn trunks_closing(&self) -> bool {
        self.b2bua.trunks_closing()
    }

    /// The B2BUA's counters.
    pub(crate) fn b2bua_stats(&self) -> sbc_core::b2bua::B2buaStats {
        self.b2bua.stats()
    }

    /// The worker's media anchor, when media is anchored.
    pub(crate) fn media(&self) -> Option<&sbc_core::media::callmedia::MediaAnchor> {
        self.b2bua.media()
    }

    /// Anchor media with `anchor` (on the worker's relay, passed to each call).
    pub(crate) fn attach_media(&mut self, anchor: sbc_core::media::callmedia::MediaAnchor) {
        self.b2bua.attach_media(anchor);
    }

    pub(crate) fn new(
        cfg: &config::CoreSettings,
        limits: &config::LimitsSection,
        place: &Place,
        secret: [u8; 32],
        now: Instant,
    ) -> Self {
        let mut c = B2buaConfig::new(place.outside, place.inside, WorkerId(place.worker), secret);
        c.max_dialogs = limits.max_dialogs;
        c.max_call_duration = Duration::from_secs(limits.max_call_duration_secs);
        c.ringing_timeout = Duration::from_secs(limits.ringing_timeout_secs);
        c.no_ack_timeout = Duration::from_secs(limits.no_ack_timeout_secs);
        c.topology = cfg.topology.clone();
        c.transactions.max_transactions = limits.max_transactions;
        c.transactions.linger = Duration::from_secs(limits.transaction_linger_secs);
        c.registrar = cfg.registrar.clone();
        c.outside_flow = place.outside_flow;
        c.seed = u64::from_le_bytes([
            secret[0], secret[1], secret[2], secret[3], secret[4], secret[5], secret[6], secret[7],
        ]) ^ u64::from(place.worker);
        // One monitor per worker; the probe settings of the first group apply to all (they are
        // usually the same, and a per-target interval is a later refinement).
        // Groups probed every 0 s are not probed at all (their targets stay Unknown: usable).
        let probed: Vec<_> = cfg
            .groups
            .iter()
            .zip(&cfg.health)
            .filter(|(_, h)| !h.interval.is_zero())
            .map(|(g, _)| g.clone())
            .collect();
        let health_cfg = cfg
            .health
            .iter()
            .find(|h| !h.interval.is_zero())
            .copied()
            .unwrap_or_default();
        let health = HealthMonitor::for_groups(health_cfg, &probed, now);
        let mut b2bua = B2bua::new(c);
        // One credentials record per trunk, shared by its calls and its registration.
        let trunk_auth = trunk_auth(cfg);
        // Worker 0 keeps the SBC registered with the trunks that require it (one registration
        // per trunk for the whole SBC; calls from the carrier reach any worker).
        if place.worker == 0 {
            for t in cfg.trunks.iter().filter(|t| t.register) {
                let Some(group) = t.outbound else {
                    continue;
                };
                let proxy = cfg
                    .groups
                    .get(group.0 as usize)
                    .and_then(|g| g.targets.first());
                let auth = trunk_auth.get(group.0 as usize).cloned().flatten();
                let (Some(proxy), Some(auth)) = (proxy, auth) else {
                    continue;
                };
                b2bua.register_trunk(
                    TrunkRegistrationConfig {
                        name: t.name.clone(),
                        registrar: proxy.addr,
                        reliable: proxy.transport != core_routing::Transport::Udp,
                        auth,
                        expires: t.register_expires,
                    },
                    now,
                );
            }
        }
        Self {
            b2bua,
            routes: Routes {
                router: core_routing::Router::new(cfg.routes.clone()),
                cfg: cfg.clone(),
                health,
                outside_flow: place.outside_flow,
                inside_flow: place.inside_flow,
                local: local_time(),
                local_at: now,
                seed: u64::from(place.worker),
                trunk_auth,
            },
            stats: SignallingStats::default(),
        }
    }

    /// A parsed message from the network.
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        msg: Message,
        origin: Origin,
        media: &mut dyn MediaControl,
    ) {
        self.routes.seed = self.routes.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let router = MessageRouter {
            routes: &self.routes,
            source: origin.source,
        };
        self.b2bua.handle_message(now, msg, origin, &router, media);
    }

    /// The earliest time [`Self::on_timeout`] has work.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        [self.b2bua.poll_timeout(), self.routes.health.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Timers, health probes and the wall clock of time-of-day routes.
    pub(crate) fn on_timeout(&mut self, now: Instant, media: &mut dyn MediaControl) {
        if now.duration_since(self.routes.local_at) >= Duration::from_secs(1) {
            self.routes.local = local_time();
            self.routes.local_at = now;
        }
        self.b2bua.handle_timeout(now, media);
        self.routes.health.handle_timeout(now);
        while let Some((idx, addr)) = self.routes.health.poll_probe(now) {
            let side = if self.routes.cfg.inside_groups.iter().any(|g| {
                self.routes
                    .cfg
                    .groups
                    .get(g.0 as usize)
                    .is_some_and(|g| g.targets.iter().any(|t| t.addr == addr))
            }) {
                Side::Inside
            } else {
                Side::Outside
            };
            let flow = match side {
                Side::Inside => self.routes.inside_flow,
                Side::Outside => self.routes.outside_flow,
            };
            if !self
                .b2bua
                .probe(now, &Target::udp(side, addr, flow), idx.0 as u64, media)
            {
                self.routes.health.handle_probe_result(now, idx, false);
            }
        }
    }

    /// Move what is to be sent into `out`, and digest the B2BUA's events.
    pub(crate) fn drain(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        while let Some(t) = self.b2bua.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = self.b2bua.poll_event() {
            match e {
                CallEvent::Started { .. } => self.stats.calls_started += 1,
                CallEvent::Answered { .. } => self.stats.calls_answered += 1,
                CallEvent::Ended { .. } => self.stats.calls_ended += 1,
                CallEvent::Probed { token, alive } => {
                    if !alive {
                        self.stats.probes_failed += 1;
                    }
                    let idx = TargetIdx(usize::try_from(token).unwrap_or(usize::MAX));
                    self.routes.health.handle_probe_result(now, idx, alive);
                }
            }
        }
    }

    /// Live calls and registrations of this worker.
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.b2bua.calls(), self.b2bua.registrations())
    }
}

/// Local wall time (the process's time zone, as libc sees it) for time-of-day routes.
fn local_time() -> LocalTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r writes only into `tm`.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return LocalTime {
            weekday: 7,
            minute_of_day: 0,
        };
    }
    LocalTime {
        // tm_wday: 0 = Sunday; LocalTime: 0 = Monday.
        weekday: ((tm.tm_wday + 6) % 7) as u8,
        minute_of_day: (tm.tm_hour * 60 + tm.tm_min) as u16,
    }
}

/// A fresh id secret for this process, from the OS.
pub(crate) fn secret() -> Result<[u8; 32], String> {
    let mut s = [0u8; 32];
    let mut filled = 0;
    while filled < s.len() {
        let rest = &mut s[filled..];
        // SAFETY: the pointer and length describe `rest`, which getrandom fills.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("getrandom: {e}"));
        }
        filled += n as usize;
    }
    Ok(s)
}

/// The side a message arrived on, by the index of the worker's UDP socket.
pub(crate) fn udp_side(index: usize, outside_sockets: usize) -> Side {
    if index < outside_sockets {
        Side::Outside
    } else {
        Side::Inside
    }
}
