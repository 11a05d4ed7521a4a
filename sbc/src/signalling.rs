//! The worker's signalling: the sans-IO B2BUA of `sbc-core` with the configured routes, trunks and
//! target health around it.
//!
//! A worker owns one [`Signalling`]. Its flows (see [`sbc_sip::transaction::Flow`]) are the worker's
//! own sockets and connections: UDP socket `i` of the worker is `Flow(i)`, a TCP/TLS connection is
//! `Flow(token)` with the stream token (whose top byte is never zero). Nothing here is shared with other
//! workers: each one probes the targets itself and keeps its own calls and registrations.
//!
//! A call belongs to the worker that took its first request, and the ids it makes (Via branch,
//! tags, leg B's Call-ID) name that worker. Toward the inside a worker uses only its own port (Via,
//! Contact, and the Contact it registers for user agents), so the PBX's answers and in-dialog
//! requests come back to it directly; requests the PBX starts toward trunks arrive on the shared
//! inside port (or a connection), and any worker can take those. The outside reaches a worker
//! through the kernel's SO_REUSEPORT hash of the source: a caller outside keeps its worker, but a
//! carrier answering a call the PBX placed (and its later requests in that dialog) lands on
//! whichever worker its address hashes to. Such datagrams, on an outside socket or the shared inside
//! port, are handed to the worker their top Via branch (responses) or To tag (requests in a dialog)
//! names before they reach this module (see [`crate::handover`]), so a worker's [`Signalling`]
//! only ever sees messages of its own calls, or of none.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sbc_core::b2bua::{B2bua, B2buaConfig, CallEvent, Origin, Refusal, Router, Target};
use sbc_core::guard::rules::{CallInfo, CallPolicy, FraudEvent, Level, RulesCommand, Ticket};
use sbc_core::media::MediaControl;
use sbc_core::registration::trunkreg::TrunkRegistrationConfig;
use sbc_core::routing::policy::{PolicyRouter, RoutingPolicy};
use sbc_core::routing::{LocalTime, TargetIdx, Transport, TrunkId};
use sbc_core::signalling::ids::{Id, WorkerId};
use sbc_core::signalling::topology::Side;
use sbc_sip::header::NameAddr;
use sbc_sip::transaction::{Flow, Transmit};
use sbc_sip::{HeaderName, Message, Method};

use crate::config;
use crate::observe::CallStats;
use crate::stats;

/// The signalling of one worker.
pub(crate) struct Signalling {
    b2bua: B2bua,
    /// Routes, trunks and the health of the targets.
    policy: RoutingPolicy,
    /// Wall time for time-of-day routes, refreshed once a second.
    local: LocalTime,
    local_at: Instant,
    /// The B2BUA layer's counters this side counts (call events, failed probes); the rest is read
    /// from the B2BUA by [`Self::counters`].
    stats: stats::B2bua,
    /// How long a stop waits for calls to end (`limits.drain_secs`).
    drain_for: Duration,
    /// Call rules and fraud rules, fed with the B2BUA's call events.
    rules: CallPolicy,
    /// Where fraud events go for the operator's hook (the control thread), when connected.
    alerts: Option<crossbeam_channel::Sender<FraudEvent>>,
    /// The ended calls' outcomes, setup delays, durations and media quality, for the metrics.
    calls: CallStats,
    /// Fraud log lines written in the current second, and that second's start (the log is
    /// rate-limited: an attacker triggers these).
    logged: (u32, Instant),
    /// The worker's flows toward the outside and the inside (a reloaded policy is built with them).
    flows: (Flow, Flow),
    /// Where ended calls' records go (the CDR writer), and call, ban and fraud events (the webhook).
    out: crate::cdr::Outlets,
}

/// Fraud log lines per second and worker; past it the events are only counted.
const FRAUD_LOGS_PER_SEC: u32 = 20;

/// Where a worker stands on each side and which of its sockets it uses.
pub(crate) struct Place {
    pub(crate) worker: u16,
    pub(crate) outside: SocketAddr,
    /// The outside listens on TLS only (its Contact says `;transport=tls`).
    pub(crate) outside_tls_only: bool,
    pub(crate) inside: SocketAddr,
    pub(crate) outside_flow: Flow,
    pub(crate) inside_flow: Flow,
}

impl Signalling {
    /// The B2BUA layer's counters: calls, registrations, carrier trunks, fail-overs and probes.
    pub(crate) fn counters(&self) -> stats::B2bua {
        let (calls, registrations) = self.load();
        let b = self.b2bua.stats();
        let d = self.b2bua.dtmf_stats();
        let tx = self.b2bua.transaction_counters();
        let mut c = stats::B2bua {
            live_transactions: self.b2bua.transactions() as u64,
            retransmissions_sent: tx.retransmitted,
            retransmissions_received: tx.retransmissions_received,
            live_calls: calls as u64,
            live_registrations: registrations as u64,
            trunk_auth_answered: b.trunk_auth_answered,
            trunk_auth_failures: b.trunk_auth_failures,
            call_failovers: b.failovers,
            dtmf_info_to_events: d.info_to_events,
            dtmf_info_to_tones: d.info_to_tones,
            dtmf_events_to_info: d.events_to_info,
            dtmf_info_refused: d.info_refused,
            dtmf_dropped: d.dropped,
            ..self.stats
        };

        for (_, _, t) in self.b2bua.trunk_registrations() {
            c.trunk_registrations += t.registered;
            c.trunk_register_challenges += t.challenges;
            c.trunk_register_failures += t.failures;
        }
        c
    }

    /// What the ended calls' records showed (outcomes, delays, media quality).
    pub(crate) fn call_stats(&self) -> CallStats {
        self.calls
    }

    /// The call rules' and fraud rules' counters.
    pub(crate) fn rules_counters(&self) -> sbc_core::guard::rules::RulesStats {
        self.rules.stats()
    }

    /// Stopping: remove the SBC's bindings with carrier trunks (REGISTER with Expires: 0).
    pub(crate) fn unregister_trunks(&mut self, now: Instant) -> usize {
        self.b2bua.unregister_trunks(now)
    }

    /// A trunk's removal is still unanswered.
    pub(crate) fn trunks_closing(&self) -> bool {
        self.b2bua.trunks_closing()
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
        c.first_response_timeout = Duration::from_millis(limits.first_response_ms);
        c.topology = cfg.topology.clone();
        c.transactions.max_transactions = limits.max_transactions;
        c.transactions.linger = Duration::from_secs(limits.transaction_linger_secs);
        c.registrar = cfg.registrar.clone();
        c.outside_flow = place.outside_flow;
        if place.outside_tls_only {
            c.outside_contact_params = ";transport=tls";
        }
        // RFC 3325: the P-Asserted-Identity of a trunk marked `trusted` is relayed.
        c.trusted_sources = cfg
            .trunks
            .iter()
            .filter(|t| t.trusted)
            .flat_map(|t| t.acl.iter().copied())
            .collect();
        c.seed = u64::from_le_bytes([
            secret[0], secret[1], secret[2], secret[3], secret[4], secret[5], secret[6], secret[7],
        ]) ^ u64::from(place.worker);
        let policy = RoutingPolicy::new(
            cfg.policy(place.outside_flow, place.inside_flow),
            u64::from(place.worker),
            now,
        );
        let mut b2bua = B2bua::new(c);
        // Worker 0 keeps the SBC registered with the trunks that require it (one registration
        // per trunk for the whole SBC; calls from the carrier reach any worker). The credentials
        // are those of the trunk's group, shared with its calls.
        if place.worker == 0 {
            for t in cfg.trunks.iter().filter(|t| t.register) {
                let Some(group) = t.outbound.and_then(|g| policy.group(g)) else {
                    continue;
                };
                let (Some(proxy), Some(auth)) = (group.group.targets.first(), group.auth.clone())
                else {
                    continue;
                };
                b2bua.register_trunk(
                    TrunkRegistrationConfig {
                        name: t.name.clone(),
                        registrar: proxy.addr,
                        reliable: proxy.transport != Transport::Udp,
                        auth,
                        expires: t.register_expires,
                    },
                    now,
                );
            }
        }
        Self {
            b2bua,
            policy,
            local: local_time(),
            local_at: now,
            stats: stats::B2bua::default(),
            drain_for: Duration::from_secs(limits.drain_secs),
            rules: CallPolicy::new(cfg.rules.clone()),
            alerts: None,
            calls: CallStats::default(),
            logged: (0, now),
            flows: (place.outside_flow, place.inside_flow),
            out: crate::cdr::Outlets::new(place.worker),
        }
    }

    /// The B2BUA and the routing policy, for the operator's requests (`control/ops.rs`).
    pub(crate) fn parts(&mut self) -> (&mut B2bua, &mut RoutingPolicy) {
        (&mut self.b2bua, &mut self.policy)
    }

    /// A reload: the routing policy built from `cfg` replaces the worker's (keeping what it
    /// learned of the targets that stay), the call and fraud rules change rule by rule (the
    /// counters of calls in progress stay), and the call timers of new calls and the drain time
    /// follow `limits`. Calls in progress keep their legs, targets and deadlines.
    pub(crate) fn reload(
        &mut self,
        cfg: &config::CoreSettings,
        limits: &config::LimitsSection,
        now: Instant,
    ) {
        self.policy
            .replace(cfg.policy(self.flows.0, self.flows.1), now);
        let old: Vec<_> = self.rules.rules().iter().map(|r| r.name.clone()).collect();
        for name in old {
            if !cfg.rules.rules.iter().any(|r| r.name == name) {
                self.rules.apply(RulesCommand::RemoveRule(name));
            }
        }
        for r in &cfg.rules.rules {
            self.rules.apply(RulesCommand::AddRule(Box::new(r.clone())));
        }
        let old: Vec<_> = self
            .rules
            .fraud()
            .rules()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        for name in old {
            if !cfg.rules.fraud.iter().any(|r| r.name == name) {
                self.rules.apply(RulesCommand::RemoveFraudRule(name));
            }
        }
        for r in &cfg.rules.fraud {
            self.rules
                .apply(RulesCommand::AddFraudRule(Box::new(r.clone())));
        }
        self.b2bua.set_call_timers(sbc_core::b2bua::CallTimers {
            max_call_duration: Duration::from_secs(limits.max_call_duration_secs),
            ringing_timeout: Duration::from_secs(limits.ringing_timeout_secs),
            no_ack_timeout: Duration::from_secs(limits.no_ack_timeout_secs),
            first_response_timeout: Duration::from_millis(limits.first_response_ms),
        });
        self.drain_for = Duration::from_secs(limits.drain_secs);
    }

    /// Send fraud events to `tx` (the control thread's hook); a full channel drops and counts them.
    pub(crate) fn attach_alerts(&mut self, tx: crossbeam_channel::Sender<FraudEvent>) {
        self.alerts = Some(tx);
    }

    /// Send ended calls' records to the CDR writer and events to the webhook, when set.
    pub(crate) fn attach_outlets(
        &mut self,
        cdr: Option<crate::cdr::CdrSender>,
        events: Option<crate::cdr::webhook::EventSender>,
    ) {
        self.out.cdr = cdr;
        self.out.events = events;
    }

    /// The guard's bans, looked at once a second: `total` bans so far; `list` the bans in force.
    pub(crate) fn report_bans(
        &mut self,
        now: Instant,
        total: u64,
        list: impl FnOnce() -> Vec<sbc_core::guard::BanInfo>,
    ) {
        self.out.bans(now, total, list, &mut self.stats);
    }

    /// Changes the call rules or fraud rules at run time; false when the change names a rule that
    /// does not exist or changes nothing.
    pub(crate) fn apply_rules(&mut self, cmd: RulesCommand) -> bool {
        self.rules.apply(cmd)
    }

    /// Stopping: new calls get 503 from now on; returns how long to wait for the calls in
    /// progress to end (`limits.drain_secs`).
    pub(crate) fn begin_drain(&mut self) -> Duration {
        self.b2bua.set_draining(true);
        self.drain_for
    }

    /// The drain time passed: BYE on both legs of every call still up (CANCEL and 503 for a
    /// ringing one).
    pub(crate) fn end_calls(&mut self, now: Instant, media: &mut dyn MediaControl) {
        self.b2bua.end_all_calls(now, media);
    }

    /// A parsed message from the network.
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        msg: Message,
        origin: Origin,
        media: &mut dyn MediaControl,
    ) {
        let trunk = self.policy.trunk_of(origin.source.ip()).map(|t| t.id);
        let router = RuledRouter {
            inner: self.policy.router(origin.source, self.local),
            rules: RefCell::new(&mut self.rules),
            ticket: RefCell::new(None),
            now,
            time: self.local,
            source: origin.source,
            trusted: origin.side == Side::Inside || trunk.is_some(),
            trunk,
        };
        self.b2bua.handle_message(now, msg, origin, &router, media);
        let ticket = router.ticket.into_inner();
        // A call the rules let through holds its counters from its Started event on (emitted by
        // the message that routed it); a call refused after routing holds none.
        self.digest_events(now, ticket);
    }

    /// The earliest time [`Self::on_timeout`] has work.
    /// The B2BUA's bindings, for storing them across a restart ([`crate::persist`]).
    pub(crate) fn registrations(&self) -> &B2bua {
        &self.b2bua
    }

    /// Put back the bindings stored before a restart; returns how many were taken.
    pub(crate) fn restore_registrations(
        &mut self,
        now: Instant,
        stored: Vec<sbc_core::b2bua::StoredRegistration>,
    ) -> usize {
        stored
            .into_iter()
            .map(|s| self.b2bua.restore_registration(now, s))
            .filter(|taken| *taken)
            .count()
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.b2bua.poll_timeout(),
            self.policy.poll_timeout(),
            self.rules.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers, health probes and the wall clock of time-of-day routes.
    pub(crate) fn on_timeout(&mut self, now: Instant, media: &mut dyn MediaControl) {
        if now.duration_since(self.local_at) >= Duration::from_secs(1) {
            self.local = local_time();
            self.local_at = now;
        }
        self.b2bua.handle_timeout(now, media);
        self.policy.handle_timeout(now);
        self.rules.handle_timeout(now);
        while let Some((idx, target)) = self.policy.poll_probe(now) {
            if !self.b2bua.probe(now, &target, idx.0 as u64, media) {
                self.policy.handle_probe_result(now, idx, false);
            }
        }
    }

    /// A fresh local tag for an answer made without a dialog, from the B2BUA's id generator.
    pub(crate) fn new_tag(&mut self) -> Id {
        self.b2bua.new_tag()
    }

    /// Move what is to be sent into `out`, and digest the B2BUA's events.
    /// The telephone-events the relay reported, to the B2BUA (DTMF INFO interworking).
    pub(crate) fn on_media_events(&mut self, now: Instant, media: &mut dyn MediaControl) {
        self.b2bua.handle_media_events(now, media);
    }

    pub(crate) fn drain(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        while let Some(t) = self.b2bua.poll_transmit() {
            out.push(t);
        }
        self.digest_events(now, None);
    }

    /// The B2BUA's events: counters, the call rules' counters (a `Started` call takes `ticket`),
    /// target health; then the fraud events.
    fn digest_events(&mut self, now: Instant, mut ticket: Option<Ticket>) {
        let mut started = None;
        while let Some(e) = self.b2bua.poll_event() {
            match e {
                CallEvent::Started { call } => {
                    self.stats.calls_started += 1;
                    if let Some(t) = ticket.take() {
                        self.rules.started(now, call, t);
                        started = Some(call);
                    }
                    self.out.started(now, call, &mut self.stats);
                }
                CallEvent::Answered { call } => {
                    self.stats.calls_answered += 1;
                    self.rules.answered(now, call);
                    self.out.answered(now, call, &mut self.stats);
                }
                CallEvent::Ended { record } => {
                    self.stats.calls_ended += 1;
                    self.calls.call_ended(&record);
                    self.rules.ended(now, self.local, record.call);
                    self.out.ended(now, record, &mut self.stats);
                }
                CallEvent::Probed { token, alive } => {
                    if !alive {
                        self.stats.probes_failed += 1;
                    }
                    let idx = TargetIdx(usize::try_from(token).unwrap_or(usize::MAX));
                    self.policy.handle_probe_result(now, idx, alive);
                }
                CallEvent::TargetFailed { target } => self.policy.mark_down(now, target),
            }
        }
        while let Some(e) = self.rules.poll_event() {
            // A warning raised by the call just started flags its record.
            if let (Some(call), Level::Warning) = (started, e.level) {
                self.out.flag_fraud(call);
            }
            self.report(now, e);
        }
    }

    /// A fraud event: a log line (rate-limited), and the control thread's hook.
    fn report(&mut self, now: Instant, e: FraudEvent) {
        if now.saturating_duration_since(self.logged.1) >= Duration::from_secs(1) {
            self.logged = (0, now);
        }
        if self.logged.0 < FRAUD_LOGS_PER_SEC {
            self.logged.0 += 1;
            let (rule, metric) = (&*e.rule, e.metric.name());
            let (account, callee, source) = (&*e.account, &*e.callee, e.source);
            match e.level {
                Level::Critical => tracing::warn!(
                    rule, metric, value = e.value, threshold = e.threshold, account, callee,
                    %source, "fraud: call blocked"
                ),
                Level::Warning => tracing::info!(
                    rule, metric, value = e.value, threshold = e.threshold, account, callee,
                    %source, "fraud: warning"
                ),
            }
        } else {
            self.stats.fraud_logs_suppressed += 1;
        }
        self.out.fraud(now, &e, &mut self.stats);
        if let Some(tx) = &self.alerts {
            if tx.try_send(e).is_err() {
                self.stats.fraud_events_dropped += 1;
            }
        }
    }

    /// Whether connection `token` to or from `peer` carries a live registration or call.
    pub(crate) fn uses_connection(&self, token: u64, peer: SocketAddr) -> bool {
        self.b2bua.uses_connection(token, peer)
    }

    /// The connection to next hop `peer` failed or closed: its pending requests fail at once.
    pub(crate) fn peer_lost(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        media: &mut dyn MediaControl,
    ) {
        self.b2bua.handle_peer_lost(now, peer, media);
    }

    /// Live calls and registrations of this worker.
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.b2bua.calls(), self.b2bua.registrations())
    }
}

/// The routing policy with the call rules after it: a new INVITE the policy routes must pass the
/// rules; the ticket of a call they let through waits for its `Started` event.
struct RuledRouter<'a> {
    inner: PolicyRouter<'a>,
    rules: RefCell<&'a mut CallPolicy>,
    ticket: RefCell<Option<Ticket>>,
    now: Instant,
    time: LocalTime,
    source: SocketAddr,
    trusted: bool,
    trunk: Option<TrunkId>,
}

impl Router for RuledRouter<'_> {
    fn route(&self, msg: &Message, from: Side) -> Result<Target, Refusal> {
        let target = self.inner.route(msg, from)?;
        if msg.method() != Some(&Method::Invite) {
            return Ok(target);
        }
        let from_user = msg
            .header(HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|na| na.uri.user);
        let dialled = msg
            .request_uri()
            .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user)
            .unwrap_or_default();
        let info = CallInfo {
            source: self.source.ip(),
            trusted: self.trusted,
            trunk: self.trunk,
            target_label: target.label.as_deref(),
            caller: from_user.unwrap_or("anonymous"),
            callee: dialled,
            callee_out: target.user.as_deref().unwrap_or(dialled),
        };
        let ticket = self.rules.borrow_mut().check(self.now, self.time, &info)?;
        *self.ticket.borrow_mut() = Some(ticket);
        Ok(target)
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
