//! The operations the control API serves that need the workers: calls (list, one, hang up),
//! registrations (list, remove), target groups and trunks (state, enable, disable, drain), media
//! sessions, and the reload of the run-time parts of the configuration.
//!
//! Each is a [`Commands`] method on the control thread's side: it sends an [`OpsCommand`] over the
//! workers' bounded command channels (never waiting for room: a full channel counts as a worker
//! that did not answer) and waits at most `wait` for the answers. A worker drains its channel on
//! its timer tick, at least every [`TICK_MS`](crate::worker::TICK_MS) (100 ms), so an answer or a
//! change reaches every worker within 100 ms of the command. The answers are plain data that
//! derive `serde::Serialize`: their JSON field names are snake_case and stable, times are Unix
//! milliseconds, durations are named with their unit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use sbc_core::b2bua::{BindingSummary, CallFilter, CallId, CallState, CallSummary, HangUp};
use sbc_core::media::{Endpoint, LegStats, MediaControl, StreamStats};
use sbc_core::registration::registrar::Transport as RegTransport;
use sbc_core::registration::trunkreg::RegState;
use sbc_core::routing::policy::{GroupState, TargetSelector};
use sbc_core::routing::{Health, Transport};
use sbc_core::signalling::topology::Side;
use serde::Serialize;

use super::{Commands, WorkerCommand};
use crate::config::{CoreSettings, LimitsSection};
use crate::signalling::Signalling;

/// A request of the control thread that a worker's signalling or media answers.
#[derive(Debug)]
pub(crate) enum OpsCommand {
    /// The worker's calls that pass the filter.
    Calls(CallFilter, Sender<(u16, Vec<CallInfo>)>),
    /// Hang up one of the worker's calls.
    HangUp(CallId, Sender<(u16, HangUp)>),
    /// The worker's registered bindings.
    Registrations(Sender<(u16, Vec<RegistrationInfo>)>),
    /// Remove the bindings of an AoR (one Contact when given); answers how many went.
    RemoveRegistration {
        aor: String,
        contact: Option<String>,
        reply: Sender<(u16, usize)>,
    },
    /// The worker's view of the target groups.
    Targets(Sender<(u16, WorkerTargets)>),
    /// Enable or disable targets; answers the targets named and the calls still on them.
    SetTargets {
        select: TargetSelector,
        enabled: bool,
        reply: Sender<(u16, (Vec<SocketAddr>, usize))>,
    },
    /// Apply a reloaded configuration's run-time parts.
    Reload(Arc<RuntimeConfig>, Sender<(u16, ())>),
}

/// The parts of a configuration a worker swaps in at run time (a reload, `reload.rs`).
#[derive(Debug)]
pub(crate) struct RuntimeConfig {
    /// Target groups, trunks, routes, number rules, call and fraud rules.
    pub(crate) core: CoreSettings,
    /// The call timers and the drain time.
    pub(crate) limits: LimitsSection,
}

/// What a reload did. JSON: `file`, `changed`, `restart_needed`, `workers_applied`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ReloadReport {
    /// The file read.
    pub(crate) file: String,
    /// Keys that changed and were applied (e.g. `route`, `limits.ringing_timeout_secs`).
    pub(crate) changed: Vec<&'static str>,
    /// Keys that changed and need a restart: not applied.
    pub(crate) restart_needed: Vec<&'static str>,
    /// Workers that applied it.
    pub(crate) workers_applied: usize,
    /// The configuration now in force and the text it was read from (for the control API's own
    /// view of it).
    #[serde(skip)]
    pub(crate) in_force: Option<Arc<InForce>>,
}

/// The configuration in force after a reload, and the file's text it was read from.
#[derive(Debug)]
pub(crate) struct InForce {
    pub(crate) config: crate::config::Config,
    pub(crate) text: String,
}

impl PartialEq for InForce {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for InForce {}

/// What applying a configuration would change: the keys applied at run time, and those needing
/// a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct CheckReport {
    pub(crate) changed: Vec<&'static str>,
    pub(crate) restart_needed: Vec<&'static str>,
}

/// What reloads the configuration in force (`reload::Reloader`): kept by [`Commands`].
pub(crate) trait Reload: std::fmt::Debug + Send + Sync {
    /// Read `path` (default: the file in force), check it, and apply its run-time parts through
    /// `commands`; a bad file is refused with its error and nothing changes.
    fn reload(
        &self,
        commands: &Commands,
        path: Option<&std::path::Path>,
    ) -> Result<ReloadReport, String>;

    /// Check a configuration's `text` (`origin` names it in errors) as a reload would, against
    /// the configuration in force, without applying anything.
    fn check(&self, text: &str, origin: &str) -> Result<CheckReport, String>;
}

/// What a worker knows of the targets: each group's state and its calls per target.
#[derive(Debug)]
pub(crate) struct WorkerTargets {
    groups: Vec<GroupState>,
    calls: std::collections::HashMap<SocketAddr, usize>,
    /// The SBC's registrations with trunks this worker keeps: name, registered now.
    registered: Vec<(String, bool)>,
}

/// Serve `cmd` on worker `worker` at `now` with its signalling `sig` and `media` relay; what it
/// makes the B2BUA send (a hang-up's BYE or CANCEL) joins `outbox`.
pub(crate) fn serve(
    cmd: OpsCommand,
    worker: u16,
    now: Instant,
    sig: &mut Signalling,
    outbox: &mut Vec<sbc_sip::transaction::Transmit>,
    media: &mut dyn MediaControl,
) {
    let clock = Clock::new(now);
    // Each answer is sent without waiting: the asker may have stopped waiting, then it is dropped.
    match cmd {
        OpsCommand::Calls(filter, reply) => {
            let (b2bua, _) = sig.parts();
            let calls = b2bua
                .call_summaries(&filter, media)
                .into_iter()
                .map(|s| CallInfo::new(worker, s, &clock))
                .collect();
            let _ = reply.try_send((worker, calls));
        }
        OpsCommand::HangUp(call, reply) => {
            let done = sig.parts().0.hang_up(now, call, media);
            sig.drain(now, outbox);
            let _ = reply.try_send((worker, done));
        }
        OpsCommand::Registrations(reply) => {
            let list = sig
                .parts()
                .0
                .binding_summaries(now)
                .into_iter()
                .map(|b| RegistrationInfo::new(worker, b))
                .collect();
            let _ = reply.try_send((worker, list));
        }
        OpsCommand::RemoveRegistration {
            aor,
            contact,
            reply,
        } => {
            let n = sig.parts().0.remove_binding(now, &aor, contact.as_deref());
            sig.drain(now, outbox);
            let _ = reply.try_send((worker, n));
        }
        OpsCommand::Targets(reply) => {
            let (b2bua, policy) = sig.parts();
            let registered = b2bua
                .trunk_registrations()
                .map(|(name, state, _)| {
                    (
                        name.to_owned(),
                        matches!(state, RegState::Registered { .. }),
                    )
                })
                .collect();
            let t = WorkerTargets {
                groups: policy.group_states(),
                calls: b2bua.calls_by_target(),
                registered,
            };
            let _ = reply.try_send((worker, t));
        }
        OpsCommand::SetTargets {
            select,
            enabled,
            reply,
        } => {
            let (b2bua, policy) = sig.parts();
            let named = policy.set_enabled(&select, enabled);
            let calls = b2bua.calls_by_target();
            let left = named.iter().filter_map(|a| calls.get(a)).sum();
            let _ = reply.try_send((worker, (named, left)));
        }
        OpsCommand::Reload(cfg, reply) => {
            sig.reload(&cfg.core, &cfg.limits, now);
            let _ = reply.try_send((worker, ()));
        }
    }
}

/// Turns the workers' instants into Unix milliseconds (the instant `now` is the wall time read
/// once per command).
struct Clock {
    now: Instant,
    wall_ms: u64,
}

impl Clock {
    fn new(now: Instant) -> Self {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self { now, wall_ms }
    }

    fn unix_ms(&self, t: Instant) -> u64 {
        let ago = self.now.saturating_duration_since(t).as_millis() as u64;
        self.wall_ms.saturating_sub(ago)
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Outside => "outside",
        Side::Inside => "inside",
    }
}

// ------------------------------------------------------------------------------------------------
// Answers

/// The operator's id of a call: `<worker>-<n>`, unique across workers while the process runs.
fn call_id(worker: u16, call: CallId) -> String {
    format!("{worker}-{}", call.0)
}

/// The worker and handle of a call id made by [`call_id`].
pub(crate) fn parse_call_id(id: &str) -> Option<(u16, CallId)> {
    let (w, n) = id.split_once('-')?;
    Some((w.parse().ok()?, CallId(n.parse().ok()?)))
}

/// One leg of a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct LegInfo {
    /// The leg's Call-ID (leg B's is made by the SBC).
    pub(crate) call_id: String,
    /// The side it is on: `outside` or `inside`.
    pub(crate) side: &'static str,
    /// The peer's address (`ip:port`).
    pub(crate) peer: String,
}

/// One call in progress. JSON: `id`, `worker`, `state` (`ringing`, `answered`, `confirmed`,
/// `ending`), `caller`, `dialled`, `callee`, `target`, `target_label`, `invited_unix_ms`,
/// `ringing_unix_ms`, `answered_unix_ms`, `leg_a`, `leg_b`, `media`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct CallInfo {
    /// `<worker>-<n>`: the id to ask for the call or hang it up by.
    pub(crate) id: String,
    /// The worker that owns it.
    pub(crate) worker: u16,
    pub(crate) state: &'static str,
    /// The caller (user of From), as received.
    pub(crate) caller: String,
    /// The number dialled, as received.
    pub(crate) dialled: String,
    /// The called number sent on leg B, after number rules.
    pub(crate) callee: String,
    /// Leg B's next hop (`ip:port`).
    pub(crate) target: String,
    /// The target's group or trunk (`trunk:<name>`).
    pub(crate) target_label: Option<String>,
    /// When the caller's INVITE arrived.
    pub(crate) invited_unix_ms: u64,
    /// When the first provisional answer (not 100) arrived.
    pub(crate) ringing_unix_ms: Option<u64>,
    /// When the call was answered.
    pub(crate) answered_unix_ms: Option<u64>,
    /// The caller's leg.
    pub(crate) leg_a: LegInfo,
    /// The callee's leg.
    pub(crate) leg_b: LegInfo,
    /// The relayed streams, one per `m=` line.
    pub(crate) media: Vec<StreamInfo>,
}

impl CallInfo {
    fn new(worker: u16, s: CallSummary, clock: &Clock) -> Self {
        let b_side = match s.a_side {
            Side::Outside => Side::Inside,
            Side::Inside => Side::Outside,
        };
        Self {
            id: call_id(worker, s.call),
            worker,
            state: s.state.as_str(),
            caller: s.caller,
            dialled: s.dialled,
            callee: s.callee,
            target: s.target.to_string(),
            target_label: s.label.as_deref().map(str::to_owned),
            invited_unix_ms: clock.unix_ms(s.invited),
            ringing_unix_ms: s.ringing.map(|t| clock.unix_ms(t)),
            answered_unix_ms: s.answered.map(|t| clock.unix_ms(t)),
            leg_a: LegInfo {
                call_id: s.a_call_id,
                side: side_name(s.a_side),
                peer: s.a_peer.to_string(),
            },
            leg_b: LegInfo {
                call_id: s.b_call_id,
                side: side_name(b_side),
                peer: s.target.to_string(),
            },
            media: s.media.iter().map(StreamInfo::new).collect(),
        }
    }
}

/// One stream of a call's media: leg A (the caller's) and leg B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct StreamInfo {
    /// Clock rate of the jitter figures (0: unknown).
    pub(crate) clock_rate: u32,
    pub(crate) leg_a: MediaLegInfo,
    pub(crate) leg_b: MediaLegInfo,
}

impl StreamInfo {
    fn new(s: &StreamStats) -> Self {
        Self {
            clock_rate: s.clock_rate,
            leg_a: MediaLegInfo::new(&s.a),
            leg_b: MediaLegInfo::new(&s.b),
        }
    }
}

/// One leg of a relayed stream: the SBC's ports, the remote, and what came from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct MediaLegInfo {
    /// The SBC's RTP port of this leg.
    pub(crate) local_rtp_port: u16,
    /// The SBC's RTCP port of this leg.
    pub(crate) local_rtcp_port: u16,
    /// The remote's RTP address from its SDP.
    pub(crate) remote_sdp: Option<String>,
    /// The RTP source learned from the remote's packets (latched), if any.
    pub(crate) remote_latched: Option<String>,
    /// Whether the relay latched onto the remote's source.
    pub(crate) latched: bool,
    /// RTP packets and bytes received from the remote.
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// RTCP packets received from the remote.
    pub(crate) rtcp_packets: u64,
    /// Packets relayed to the other leg.
    pub(crate) forwarded: u64,
    /// Packets dropped on this leg's ports.
    pub(crate) dropped: u64,
    /// RTP packets lost (RFC 3550; negative with duplicates).
    pub(crate) lost: i64,
    /// Interarrival jitter in timestamp units.
    pub(crate) jitter: u32,
    /// Packets from the remote through the SRTP stage: passed, tag not verified, replayed, and
    /// every refusal.
    pub(crate) srtp_packets: u64,
    pub(crate) srtp_auth_failures: u64,
    pub(crate) srtp_replays: u64,
    pub(crate) srtp_refused: u64,
    /// Audio frames from the remote transcoded into the other leg's codec.
    pub(crate) transcoded_frames: u64,
}

impl MediaLegInfo {
    fn new(l: &LegStats) -> Self {
        let text = |e: Endpoint| (e.sdp.map(|a| a.to_string()), e.learned);
        let (remote_sdp, learned) = text(l.rtp);
        Self {
            local_rtp_port: l.ports.rtp(),
            local_rtcp_port: l.ports.rtcp(),
            remote_sdp,
            remote_latched: learned.map(|a| a.to_string()),
            latched: learned.is_some(),
            packets: l.packets,
            bytes: l.bytes,
            rtcp_packets: l.rtcp_packets,
            forwarded: l.forwarded,
            dropped: l.dropped,
            lost: l.lost,
            jitter: l.jitter,
            srtp_packets: l.stages.srtp_packets,
            srtp_auth_failures: l.stages.srtp_auth_failures,
            srtp_replays: l.stages.srtp_replays,
            srtp_refused: l.stages.srtp_refused,
            transcoded_frames: l.stages.transcoded_frames,
        }
    }
}

/// One relay session (the media of one call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct MediaSessionInfo {
    /// The worker whose ports it uses.
    pub(crate) worker: u16,
    /// The call it belongs to (`<worker>-<n>`).
    pub(crate) call: String,
    pub(crate) streams: Vec<StreamInfo>,
}

/// A page of calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct CallPage {
    /// Calls matching the filter, over every worker that answered.
    pub(crate) total: usize,
    pub(crate) offset: usize,
    /// Workers that answered (fewer than configured: some calls may be missing).
    pub(crate) workers_answered: usize,
    pub(crate) calls: Vec<CallInfo>,
}

/// One registered binding. JSON: `worker`, `aor`, `contact`, `source`, `transport` (`udp`,
/// `tcp`, `tls`), `nated`, `expires_in_secs`, `registered_at_pbx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RegistrationInfo {
    pub(crate) worker: u16,
    pub(crate) aor: String,
    pub(crate) contact: String,
    pub(crate) source: String,
    pub(crate) transport: &'static str,
    pub(crate) nated: bool,
    pub(crate) expires_in_secs: u64,
    pub(crate) registered_at_pbx: bool,
}

impl RegistrationInfo {
    fn new(worker: u16, b: BindingSummary) -> Self {
        Self {
            worker,
            aor: b.aor,
            contact: b.contact,
            source: b.source.to_string(),
            transport: match b.transport {
                RegTransport::Udp => "udp",
                RegTransport::Tcp => "tcp",
                RegTransport::Tls => "tls",
            },
            nated: b.nated,
            expires_in_secs: b.expires_in.as_secs(),
            registered_at_pbx: b.at_pbx,
        }
    }
}

/// One target group (or a trunk's outbound proxy, named `trunk:<name>`) over all workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct GroupInfo {
    pub(crate) name: Option<String>,
    /// `outside` or `inside`.
    pub(crate) side: &'static str,
    pub(crate) members: Vec<MemberInfo>,
}

/// One member of a group over all workers (each worker probes and marks targets itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct MemberInfo {
    pub(crate) address: String,
    /// `udp`, `tcp` or `tls`.
    pub(crate) transport: &'static str,
    pub(crate) priority: u8,
    pub(crate) weight: u16,
    /// `up` when every worker sees it up (or has no verdict yet: `unknown` counts as usable),
    /// `down` when every worker sees it down, else `partial`.
    pub(crate) health: &'static str,
    /// Workers that see it down.
    pub(crate) down_on_workers: usize,
    /// Whether it is probed with OPTIONS.
    pub(crate) probing: bool,
    /// Disabled (or drained) by the operator on every worker: no new calls.
    pub(crate) disabled: bool,
    /// Calls in progress on it, over all workers.
    pub(crate) active_calls: usize,
    /// Disabled and no call left: it may be taken away.
    pub(crate) drained: bool,
}

/// A trunk the SBC registers with, and whether a worker holds its registration now.
pub(crate) type TrunkRegistration = (String, bool);

/// What an enable, disable or drain changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct TargetChange {
    /// The targets named (`ip:port`).
    pub(crate) targets: Vec<String>,
    /// Workers that applied it.
    pub(crate) workers: usize,
    /// Calls still in progress on the targets (they go on until they end).
    pub(crate) calls_left: usize,
}

/// Why an operation could not be done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum OpsError {
    /// The id names no call (malformed, or not one the SBC has).
    UnknownCall,
    /// The selector names no target.
    UnknownTarget,
    /// No worker answered within the wait.
    Timeout,
}

impl std::fmt::Display for OpsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownCall => "no such call",
            Self::UnknownTarget => "no such target",
            Self::Timeout => "no worker answered in time",
        })
    }
}

/// What a hang-up did: `bye` (answered: BYE on both legs) or `cancel` (ringing: CANCEL on leg B,
/// 487 to the caller), `already_ending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HangUpResult {
    Bye,
    Cancel,
    AlreadyEnding,
}

/// Which calls to list; every field narrows the list.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallQuery {
    /// `ringing`, `answered`, `confirmed` or `ending`.
    pub(crate) state: Option<String>,
    /// Text the caller, dialled or called number contains.
    pub(crate) party: Option<String>,
    /// The target's group or trunk name.
    pub(crate) target: Option<String>,
    /// Only the calls of this worker.
    pub(crate) worker: Option<u16>,
}

impl CallQuery {
    /// The core's filter; an unknown state is an error naming the field.
    fn filter(&self) -> Result<CallFilter, String> {
        let state = match self.state.as_deref() {
            None => None,
            Some("ringing") => Some(CallState::Ringing),
            Some("answered") => Some(CallState::Answered),
            Some("confirmed") => Some(CallState::Confirmed),
            Some("ending") => Some(CallState::Ending),
            Some(other) => {
                return Err(format!(
                    "state: {other:?} is not one of ringing, answered, confirmed, ending"
                ))
            }
        };
        Ok(CallFilter {
            state,
            party: self.party.clone(),
            label: self.target.clone(),
            call: None,
        })
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// Merge the workers' views of the targets into one per group and member.
fn merge_targets(views: &[(u16, WorkerTargets)]) -> Vec<GroupInfo> {
    let Some((_, first)) = views.first() else {
        return Vec::new();
    };
    first
        .groups
        .iter()
        .enumerate()
        .map(|(gi, g)| GroupInfo {
            name: g.name.as_deref().map(str::to_owned),
            side: side_name(g.side),
            members: g
                .members
                .iter()
                .enumerate()
                .map(|(mi, m)| {
                    let each: Vec<_> = views
                        .iter()
                        .filter_map(|(_, v)| v.groups.get(gi)?.members.get(mi))
                        .collect();
                    let down = each.iter().filter(|x| x.health == Health::Down).count();
                    let disabled = each.iter().all(|x| x.disabled);
                    let active_calls = views.iter().filter_map(|(_, v)| v.calls.get(&m.addr)).sum();
                    MemberInfo {
                        address: m.addr.to_string(),
                        transport: transport_name(m.transport),
                        priority: m.priority,
                        weight: m.weight,
                        health: match down {
                            0 => "up",
                            d if d == each.len() => "down",
                            _ => "partial",
                        },
                        down_on_workers: down,
                        probing: m.probed,
                        disabled,
                        active_calls,
                        drained: disabled && active_calls == 0,
                    }
                })
                .collect(),
        })
        .collect()
}

impl Commands {
    /// Keep the configuration in force, for [`Self::reload`].
    pub(crate) fn with_reloader(mut self, r: Arc<dyn Reload>) -> Self {
        self.reloader = Some(r);
        self
    }

    /// Reload the configuration from `path` (default: the file in force): check it, and send its
    /// run-time parts to every worker (see `reload.rs`). A bad file is refused with its error
    /// (naming key and line) and the configuration in force stays.
    pub(crate) fn reload(&self, path: Option<&std::path::Path>) -> Result<ReloadReport, String> {
        let r = self.reloader.as_ref().ok_or("reload is not available")?;
        r.reload(self, path)
    }

    /// Check a configuration's `text` as [`Self::reload`] would read it, applying nothing.
    pub(crate) fn check_config(&self, text: &str, origin: &str) -> Result<CheckReport, String> {
        let r = self
            .reloader
            .as_ref()
            .ok_or("the configuration check is not available")?;
        r.check(text, origin)
    }

    /// Send the command `make` builds to the workers `only` names (all: `None`) and wait at most
    /// `wait` for their answers; by worker number, those that answered.
    fn ask<T>(
        &self,
        only: Option<u16>,
        wait: Duration,
        make: impl Fn(Sender<(u16, T)>) -> OpsCommand,
    ) -> Vec<(u16, T)> {
        let (tx, rx) = crossbeam_channel::bounded(self.workers.len());
        let asked = self
            .workers
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|w| usize::from(w) == *i))
            .filter(|(_, w)| w.try_send(WorkerCommand::Ops(make(tx.clone()))).is_ok())
            .count();
        let deadline = Instant::now() + wait;
        let mut out: Vec<_> = (0..asked)
            .map_while(|_| rx.recv_deadline(deadline).ok())
            .collect();
        out.sort_by_key(|(w, _)| *w);
        out
    }

    /// The calls in progress that `query` lets through, ordered by worker and age, from `offset`,
    /// at most `limit`; waits at most `wait` for the workers.
    pub(crate) fn calls(
        &self,
        query: &CallQuery,
        offset: usize,
        limit: usize,
        wait: Duration,
    ) -> Result<CallPage, String> {
        let filter = query.filter()?;
        let answers = self.ask(query.worker, wait, |r| OpsCommand::Calls(filter.clone(), r));
        let workers_answered = answers.len();
        let all: Vec<CallInfo> = answers.into_iter().flat_map(|(_, c)| c).collect();
        Ok(CallPage {
            total: all.len(),
            offset,
            workers_answered,
            calls: all.into_iter().skip(offset).take(limit).collect(),
        })
    }

    /// The call `id` (`<worker>-<n>`), with both legs and its media.
    pub(crate) fn call(&self, id: &str, wait: Duration) -> Result<CallInfo, OpsError> {
        let (worker, call) = parse_call_id(id).ok_or(OpsError::UnknownCall)?;
        let filter = CallFilter {
            call: Some(call),
            ..CallFilter::default()
        };
        let mut answers = self.ask(Some(worker), wait, |r| OpsCommand::Calls(filter.clone(), r));
        let (_, calls) = answers.pop().ok_or(OpsError::Timeout)?;
        calls.into_iter().next().ok_or(OpsError::UnknownCall)
    }

    /// Hang up call `id` on both legs: BYE once answered, CANCEL (and 487 to the caller) before.
    pub(crate) fn hangup(&self, id: &str, wait: Duration) -> Result<HangUpResult, OpsError> {
        let (worker, call) = parse_call_id(id).ok_or(OpsError::UnknownCall)?;
        let mut answers = self.ask(Some(worker), wait, |r| OpsCommand::HangUp(call, r));
        match answers.pop().ok_or(OpsError::Timeout)?.1 {
            HangUp::Bye => Ok(HangUpResult::Bye),
            HangUp::Cancel => Ok(HangUpResult::Cancel),
            HangUp::AlreadyEnding => Ok(HangUpResult::AlreadyEnding),
            HangUp::NotFound => Err(OpsError::UnknownCall),
        }
    }

    /// Every registered binding of every worker that answered.
    pub(crate) fn registrations(&self, wait: Duration) -> Vec<RegistrationInfo> {
        self.ask(None, wait, OpsCommand::Registrations)
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect()
    }

    /// Remove the bindings of `aor` (only `contact` when given) on every worker, each told to the
    /// PBX with a REGISTER `Expires: 0`; how many went.
    #[cfg(test)]
    pub(crate) fn remove_registration(
        &self,
        aor: &str,
        contact: Option<&str>,
        wait: Duration,
    ) -> usize {
        self.remove_registration_answered(aor, contact, wait).0
    }

    /// As `remove_registration`: how many went, and how many workers answered.
    pub(crate) fn remove_registration_answered(
        &self,
        aor: &str,
        contact: Option<&str>,
        wait: Duration,
    ) -> (usize, usize) {
        let answers = self.ask(None, wait, |reply| OpsCommand::RemoveRegistration {
            aor: aor.to_owned(),
            contact: contact.map(str::to_owned),
            reply,
        });
        (answers.iter().map(|(_, n)| n).sum(), answers.len())
    }

    /// The target groups and trunks' proxies: members, health, probing, calls, disabled, drained.
    #[cfg(test)]
    pub(crate) fn targets(&self, wait: Duration) -> Result<Vec<GroupInfo>, OpsError> {
        self.targets_and_registrations(wait).map(|(g, _)| g)
    }

    /// As `targets`, with the SBC's registrations with trunks: each trunk that registers
    /// (on any worker), and whether a worker holds its registration now.
    pub(crate) fn targets_and_registrations(
        &self,
        wait: Duration,
    ) -> Result<(Vec<GroupInfo>, Vec<TrunkRegistration>), OpsError> {
        let views = self.ask(None, wait, OpsCommand::Targets);
        if views.is_empty() {
            return Err(OpsError::Timeout);
        }
        let mut registered: Vec<TrunkRegistration> = Vec::new();
        for (name, up) in views.iter().flat_map(|(_, v)| &v.registered) {
            match registered.iter_mut().find(|(n, _)| n == name) {
                Some((_, r)) => *r |= *up,
                None => registered.push((name.clone(), *up)),
            }
        }
        Ok((merge_targets(&views), registered))
    }

    fn set_targets(
        &self,
        select: &TargetSelector,
        enabled: bool,
        wait: Duration,
    ) -> Result<TargetChange, OpsError> {
        let answers = self.ask(None, wait, |reply| OpsCommand::SetTargets {
            select: select.clone(),
            enabled,
            reply,
        });
        let Some((_, (named, _))) = answers.first() else {
            return Err(OpsError::Timeout);
        };
        if named.is_empty() {
            return Err(OpsError::UnknownTarget);
        }
        Ok(TargetChange {
            targets: named.iter().map(ToString::to_string).collect(),
            workers: answers.len(),
            calls_left: answers.iter().map(|(_, (_, n))| n).sum(),
        })
    }

    /// New calls may go to the targets `select` names again.
    pub(crate) fn enable(
        &self,
        select: &TargetSelector,
        wait: Duration,
    ) -> Result<TargetChange, OpsError> {
        self.set_targets(select, true, wait)
    }

    /// No new call goes to the targets `select` names; the calls in progress go on.
    pub(crate) fn disable(
        &self,
        select: &TargetSelector,
        wait: Duration,
    ) -> Result<TargetChange, OpsError> {
        self.set_targets(select, false, wait)
    }

    /// As [`Self::disable`]; the answer's `calls_left` counts the calls still to end before the
    /// targets are drained ([`MemberInfo::drained`] then shows it).
    pub(crate) fn drain(
        &self,
        select: &TargetSelector,
        wait: Duration,
    ) -> Result<TargetChange, OpsError> {
        self.set_targets(select, false, wait)
    }

    /// The relay sessions of the calls in progress, per worker (ports, remotes, latching,
    /// packets and bytes per leg).
    pub(crate) fn media_sessions(&self, wait: Duration) -> Vec<MediaSessionInfo> {
        self.ask(None, wait, |r| OpsCommand::Calls(CallFilter::default(), r))
            .into_iter()
            .flat_map(|(_, calls)| calls)
            .filter(|c| !c.media.is_empty())
            .map(|c| MediaSessionInfo {
                worker: c.worker,
                call: c.id,
                streams: c.media,
            })
            .collect()
    }

    /// Send the run-time parts of a reloaded configuration to every worker; how many applied it
    /// within `wait`.
    pub(crate) fn apply_reload(&self, cfg: Arc<RuntimeConfig>, wait: Duration) -> usize {
        self.ask(None, wait, |r| OpsCommand::Reload(cfg.clone(), r))
            .len()
    }
}

#[cfg(test)]
mod tests;
