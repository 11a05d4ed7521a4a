//! The endpoints the handle serves over the workers' operations (`control/ops.rs`): calls (list,
//! one, hang up), registrations (list, remove), target groups and trunks (state, enable, disable,
//! drain), media sessions, and the config check and reload. Each asks the workers through
//! [`Commands`](crate::control::Commands), waits at most [`OPS_WAIT`] for their answers, and maps
//! the answers to the API's bodies (`control_api::dto`).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use control_api::dto::{self, AdminAction, Applied, Page, Paging};
use control_api::ApiError;
use media_plane::quality::LegQuality;
use sbc_core::routing::policy::TargetSelector;

use super::{view_of, Handle};
use crate::control::ops::{
    parse_call_id, CallInfo, CallQuery, GroupInfo, MediaLegInfo, MemberInfo, OpsError,
    ReloadReport, StreamInfo, TrunkRegistration,
};

/// How long the API waits for the workers' answers (each answers on its next tick, ≤ 100 ms).
const OPS_WAIT: Duration = Duration::from_millis(500);

/// The prefix of a trunk's outbound proxy's group name.
const TRUNK_GROUP: &str = "trunk:";

/// What the config check calls the posted text in its errors.
const POSTED: &str = "posted config";

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The API's figures of one leg of a stream: `me` is the leg, `other` the other leg of the same
/// stream (what the relay sent to `me` came from there). The MOS is the listening-quality estimate
/// of what the SBC received on the leg so far (`docs/metrics.md`), the same the ended call adds to
/// `sbc_media_mos`; none before the leg's first RTP packet or without a known clock rate.
fn leg_media(me: &MediaLegInfo, other: &MediaLegInfo, clock_rate: u32) -> dto::LegMedia {
    dto::LegMedia {
        packets_rx: me.packets,
        packets_tx: other.forwarded,
        bytes_rx: me.bytes,
        bytes_tx: other.bytes,
        lost: u64::try_from(me.lost).unwrap_or(0),
        jitter_ms: if clock_rate == 0 {
            0.0
        } else {
            f64::from(me.jitter) * 1000.0 / f64::from(clock_rate)
        },
        mos: LegQuality::estimate(me.packets, me.lost, me.jitter, clock_rate)
            .map(|q| f64::from(q.mos_milli) / 1000.0),
        srtp_packets: me.srtp_packets,
        srtp_auth_failures: me.srtp_auth_failures,
        srtp_replays: me.srtp_replays,
        srtp_refused: me.srtp_refused,
        transcoded_frames: me.transcoded_frames,
    }
}

/// Leg A's (`a`) or leg B's figures summed over the streams of a call (the worst jitter and MOS of
/// its streams); `None` without media.
fn call_leg_media(streams: &[StreamInfo], a: bool) -> Option<dto::LegMedia> {
    let mut out: Option<dto::LegMedia> = None;
    for s in streams {
        let (me, other) = if a {
            (&s.leg_a, &s.leg_b)
        } else {
            (&s.leg_b, &s.leg_a)
        };
        let m = leg_media(me, other, s.clock_rate);
        out = Some(match out {
            None => m,
            Some(o) => dto::LegMedia {
                packets_rx: o.packets_rx + m.packets_rx,
                packets_tx: o.packets_tx + m.packets_tx,
                bytes_rx: o.bytes_rx + m.bytes_rx,
                bytes_tx: o.bytes_tx + m.bytes_tx,
                lost: o.lost + m.lost,
                jitter_ms: o.jitter_ms.max(m.jitter_ms),
                mos: match (o.mos, m.mos) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                },
                srtp_packets: o.srtp_packets + m.srtp_packets,
                srtp_auth_failures: o.srtp_auth_failures + m.srtp_auth_failures,
                srtp_replays: o.srtp_replays + m.srtp_replays,
                srtp_refused: o.srtp_refused + m.srtp_refused,
                transcoded_frames: o.transcoded_frames + m.transcoded_frames,
            },
        });
    }
    out
}

fn call_dto(c: CallInfo, now_ms: u64) -> dto::Call {
    let trunk = c
        .target_label
        .as_deref()
        .and_then(|l| l.strip_prefix(TRUNK_GROUP))
        .map(str::to_owned);
    let legs = vec![
        dto::Leg {
            side: c.leg_a.side.into(),
            call_id: c.leg_a.call_id,
            remote: c.leg_a.peer,
            media: call_leg_media(&c.media, true),
        },
        dto::Leg {
            side: c.leg_b.side.into(),
            call_id: c.leg_b.call_id,
            remote: c.leg_b.peer,
            media: call_leg_media(&c.media, false),
        },
    ];
    dto::Call {
        id: c.id,
        state: c.state.into(),
        caller: c.caller,
        callee: c.callee,
        trunk,
        target: Some(c.target),
        age_secs: now_ms.saturating_sub(c.invited_unix_ms) / 1000,
        worker: u32::from(c.worker),
        legs,
    }
}

/// A member's state as the API names it: `disabled` (or `draining` while calls are left on a
/// drained one), else `down` when every worker sees it down, else `up`.
fn member_state(m: &MemberInfo, drained: &[SocketAddr]) -> &'static str {
    let drained = m
        .address
        .parse::<SocketAddr>()
        .is_ok_and(|a| drained.contains(&a));
    match (m.disabled, m.health) {
        (true, _) if drained && m.active_calls > 0 => "draining",
        (true, _) => "disabled",
        (false, "down") => "down",
        _ => "up",
    }
}

fn ops_error(e: OpsError, what: String) -> ApiError {
    match e {
        OpsError::UnknownCall | OpsError::UnknownTarget => ApiError::NotFound(what),
        OpsError::Timeout => ApiError::Unavailable(e.to_string()),
    }
}

/// The key a config error names (`... route "all": target_group: no ... (line 14)` →
/// `target_group`, ``unknown field `foo` `` → `foo`); `fallback` when none is found.
fn config_key(msg: &str, fallback: &str) -> String {
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        if let Some(k) = rest.split('`').next() {
            return k.to_owned();
        }
    }
    let is_key = |s: &str| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]/".contains(c))
    };
    let parts: Vec<&str> = msg.split(": ").map(str::trim).collect();
    parts
        .iter()
        .take(parts.len().saturating_sub(1))
        .rev()
        .find(|p| is_key(p))
        .map_or_else(|| fallback.to_owned(), |k| (*k).to_owned())
}

impl Handle {
    fn answered_by(&self, workers: usize) -> Applied {
        Applied {
            workers: workers as u32,
            of: self.workers as u32,
        }
    }

    /// The worker of call `id`, when `id` can name a call of this SBC.
    fn check_call_id(&self, id: &str) -> Result<(), ApiError> {
        match parse_call_id(id) {
            Some((w, _)) if usize::from(w) < self.workers => Ok(()),
            _ => Err(ApiError::NotFound(format!(
                "no call {id:?} (ids are <worker>-<n>, as GET /api/v1/calls lists them)"
            ))),
        }
    }

    pub(super) fn list_calls(
        &self,
        filter: &dto::CallFilter,
        paging: Paging,
    ) -> Result<Page<dto::Call>, ApiError> {
        let query = CallQuery {
            state: filter.state.clone(),
            party: None,
            target: filter.trunk.as_ref().map(|t| format!("{TRUNK_GROUP}{t}")),
            worker: None,
        };
        let page = self
            .commands()?
            .calls(&query, 0, usize::MAX, OPS_WAIT)
            .map_err(|m| ApiError::invalid("state", m))?;
        if page.workers_answered == 0 {
            return Err(ApiError::Unavailable(OpsError::Timeout.to_string()));
        }
        let now = unix_ms();
        let all: Vec<dto::Call> = page
            .calls
            .into_iter()
            .filter(|c| filter.caller.as_ref().is_none_or(|p| c.caller.contains(p)))
            .filter(|c| {
                filter
                    .callee
                    .as_ref()
                    .is_none_or(|p| c.callee.contains(p) || c.dialled.contains(p))
            })
            .map(|c| call_dto(c, now))
            .collect();
        Ok(Page::of(all, paging))
    }

    pub(super) fn one_call(&self, id: &str) -> Result<dto::Call, ApiError> {
        self.check_call_id(id)?;
        let c = self
            .commands()?
            .call(id, OPS_WAIT)
            .map_err(|e| ops_error(e, format!("no call {id:?}")))?;
        Ok(call_dto(c, unix_ms()))
    }

    pub(super) fn hang_up_call(&self, id: &str) -> Result<Applied, ApiError> {
        self.check_call_id(id)?;
        let done = self
            .commands()?
            .hangup(id, OPS_WAIT)
            .map_err(|e| ops_error(e, format!("no call {id:?}")))?;
        tracing::info!(call = id, result = ?done, "api: call hung up");
        Ok(Applied { workers: 1, of: 1 })
    }

    pub(super) fn list_registrations(
        &self,
        aor: Option<&str>,
        paging: Paging,
    ) -> Result<Page<dto::Registration>, ApiError> {
        let all: Vec<dto::Registration> = self
            .commands()?
            .registrations(OPS_WAIT)
            .into_iter()
            .filter(|r| aor.is_none_or(|a| r.aor.contains(a)))
            .map(|r| dto::Registration {
                aor: r.aor,
                contact: r.contact,
                source: r.source,
                transport: r.transport.into(),
                expires_secs: r.expires_in_secs,
                worker: u32::from(r.worker),
            })
            .collect();
        Ok(Page::of(all, paging))
    }

    pub(super) fn unregister(&self, aor: &str) -> Result<Applied, ApiError> {
        let (removed, answered) = self
            .commands()?
            .remove_registration_answered(aor, None, OPS_WAIT);
        if answered == 0 {
            return Err(ApiError::Unavailable(OpsError::Timeout.to_string()));
        }
        if removed == 0 {
            return Err(ApiError::NotFound(format!("no binding of {aor:?}")));
        }
        tracing::info!(aor, removed, "api: registration removed");
        Ok(self.answered_by(answered))
    }

    fn groups(&self) -> Result<(Vec<GroupInfo>, Vec<TrunkRegistration>), ApiError> {
        self.commands()?
            .targets_and_registrations(OPS_WAIT)
            .map_err(|e| ops_error(e, String::new()))
    }

    pub(super) fn target_groups(&self) -> Result<Vec<dto::TargetGroup>, ApiError> {
        let (groups, _) = self.groups()?;
        let drained = self.drained.borrow();
        Ok(groups
            .into_iter()
            .filter(|g| {
                !g.name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(TRUNK_GROUP))
            })
            .map(|g| dto::TargetGroup {
                name: g.name.unwrap_or_default(),
                targets: g
                    .members
                    .iter()
                    .map(|m| dto::Target {
                        address: m.address.clone(),
                        state: member_state(m, &drained).into(),
                        calls: m.active_calls as u64,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Enable, disable or drain the targets `select` names (`what` names them in a 404).
    fn admin(
        &self,
        select: &TargetSelector,
        action: AdminAction,
        what: String,
    ) -> Result<Applied, ApiError> {
        let c = self.commands()?;
        let change = match action {
            AdminAction::Enable => c.enable(select, OPS_WAIT),
            AdminAction::Disable => c.disable(select, OPS_WAIT),
            AdminAction::Drain => c.drain(select, OPS_WAIT),
        }
        .map_err(|e| ops_error(e, what))?;
        let named: Vec<SocketAddr> = change
            .targets
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        let mut drained = self.drained.borrow_mut();
        drained.retain(|a| !named.contains(a));
        if action == AdminAction::Drain {
            drained.extend(named);
        }
        tracing::info!(
            group = ?select.group,
            targets = ?change.targets,
            ?action,
            calls_left = change.calls_left,
            "api: targets changed"
        );
        Ok(self.answered_by(change.workers))
    }

    pub(super) fn set_target(
        &self,
        group: &str,
        target: &str,
        action: AdminAction,
    ) -> Result<Applied, ApiError> {
        let addr = match target {
            "*" => None,
            t => Some(t.parse::<SocketAddr>().map_err(|_| {
                ApiError::invalid("target", format!("{t:?} is not ip:port (or * for all)"))
            })?),
        };
        let select = TargetSelector {
            group: Some(group.to_owned()),
            addr,
        };
        self.admin(
            &select,
            action,
            format!("no target {target:?} in a group named {group:?}"),
        )
    }

    pub(super) fn trunk_states(&self) -> Result<Vec<dto::Trunk>, ApiError> {
        let (groups, registered) = self.groups()?;
        let drained = self.drained.borrow();
        let cfg = self.cfg.borrow();
        Ok(cfg
            .trunks
            .iter()
            .map(|t| {
                let group = format!("{TRUNK_GROUP}{}", t.name);
                let member = groups
                    .iter()
                    .find(|g| g.name.as_deref() == Some(group.as_str()))
                    .and_then(|g| g.members.first());
                dto::Trunk {
                    name: t.name.clone(),
                    state: member.map_or("up", |m| member_state(m, &drained)).into(),
                    registered: t
                        .register
                        .then(|| registered.iter().any(|(n, up)| *n == t.name && *up)),
                    calls: member.map_or(0, |m| m.active_calls as u64),
                }
            })
            .collect())
    }

    pub(super) fn set_trunk(&self, trunk: &str, action: AdminAction) -> Result<Applied, ApiError> {
        let outbound = self
            .cfg
            .borrow()
            .trunks
            .iter()
            .find(|t| t.name == trunk)
            .map(|t| t.outbound.is_some());
        match outbound {
            None => return Err(ApiError::NotFound(format!("no trunk named {trunk:?}"))),
            Some(false) => {
                return Err(ApiError::invalid(
                    "name",
                    format!(
                        "trunk {trunk:?} has no outbound proxy: no call goes to it, there is \
                         nothing to enable, disable or drain"
                    ),
                ))
            }
            Some(true) => {}
        }
        let select = TargetSelector {
            group: Some(format!("{TRUNK_GROUP}{trunk}")),
            addr: None,
        };
        self.admin(&select, action, format!("no trunk named {trunk:?}"))
    }

    pub(super) fn list_media(&self, paging: Paging) -> Result<Page<dto::MediaSession>, ApiError> {
        let all: Vec<dto::MediaSession> = self
            .commands()?
            .media_sessions(OPS_WAIT)
            .into_iter()
            .map(|s| {
                let mut ports = Vec::new();
                let mut legs = Vec::new();
                for st in &s.streams {
                    for (me, other) in [(&st.leg_a, &st.leg_b), (&st.leg_b, &st.leg_a)] {
                        for p in [me.local_rtp_port, me.local_rtcp_port] {
                            if !ports.contains(&p) {
                                ports.push(p);
                            }
                        }
                        legs.push(leg_media(me, other, st.clock_rate));
                    }
                }
                dto::MediaSession {
                    id: s.call.clone(),
                    call: Some(s.call),
                    ports,
                    legs,
                    worker: u32::from(s.worker),
                }
            })
            .collect();
        Ok(Page::of(all, paging))
    }

    pub(super) fn check_config(&self, text: &str) -> Result<dto::ConfigVerdict, ApiError> {
        Ok(match self.commands()?.check_config(text, POSTED) {
            Ok(r) => dto::ConfigVerdict {
                ok: true,
                changed: Some(r.changed.iter().map(|k| (*k).to_owned()).collect()),
                restart_needed: Some(r.restart_needed.iter().map(|k| (*k).to_owned()).collect()),
                ..dto::ConfigVerdict::default()
            },
            Err(e) => dto::ConfigVerdict {
                ok: false,
                error: Some(e),
                ..dto::ConfigVerdict::default()
            },
        })
    }

    pub(super) fn reload_config(&self) -> Result<dto::ConfigVerdict, ApiError> {
        let report = self.commands()?.reload(None).map_err(|e| {
            tracing::error!(
                "api: configuration reload refused, the configuration in force stays: {e}"
            );
            ApiError::invalid(&config_key(&e, "config"), e)
        })?;
        tracing::info!(
            file = %report.file,
            changed = ?report.changed,
            restart_needed = ?report.restart_needed,
            workers = report.workers_applied,
            "configuration reloaded"
        );
        self.adopt(&report);
        Ok(dto::ConfigVerdict {
            ok: true,
            error: None,
            changed: Some(report.changed.iter().map(|k| (*k).to_owned()).collect()),
            restart_needed: Some(
                report
                    .restart_needed
                    .iter()
                    .map(|k| (*k).to_owned())
                    .collect(),
            ),
            workers: Some(report.workers_applied as u32),
        })
    }

    /// After a reload: the configuration, its view and the rules listed are those of the file now
    /// in force (the reload replaced the rules added over the API with the file's).
    fn adopt(&self, report: &ReloadReport) {
        let Some(in_force) = &report.in_force else {
            return;
        };
        match view_of(&in_force.config, &report.file, &in_force.text) {
            Ok((view, rules, fraud)) => {
                *self.view.borrow_mut() = view;
                *self.rules.borrow_mut() = rules;
                *self.fraud.borrow_mut() = fraud;
            }
            Err(e) => tracing::warn!("api: the reloaded file cannot be shown: {e}"),
        }
        *self.cfg.borrow_mut() = in_force.config.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_their_key() {
        assert_eq!(
            config_key(
                "/etc/sbc.toml: route \"all\": target_group: no [[target_group]] named \"x\" (line 14)",
                "config"
            ),
            "target_group"
        );
        assert_eq!(
            config_key(
                "posted config: TOML parse error at line 1, column 1\nunknown field `colour`, expected one of",
                "toml"
            ),
            "colour"
        );
        assert_eq!(config_key("nothing to name", "config"), "config");
    }

    fn leg(packets: u64, lost: i64, jitter: u32) -> MediaLegInfo {
        MediaLegInfo {
            local_rtp_port: 20000,
            local_rtcp_port: 20001,
            remote_sdp: None,
            remote_latched: None,
            latched: packets > 0,
            packets,
            bytes: packets * 172,
            rtcp_packets: 0,
            forwarded: packets,
            dropped: 0,
            lost,
            jitter,
            srtp_packets: 0,
            srtp_auth_failures: 0,
            srtp_replays: 0,
            srtp_refused: 0,
            transcoded_frames: 0,
        }
    }

    #[test]
    fn each_leg_has_the_mos_of_what_it_received() {
        // A perfect leg: 4.40; 1 % loss and 20 ms of jitter at 8 kHz: the media plane's estimate.
        let clean = leg_media(&leg(1000, 0, 0), &leg(0, 0, 0), 8000);
        assert_eq!(clean.mos, Some(4.404));
        let lossy = leg_media(&leg(990, 10, 160), &leg(0, 0, 0), 8000);
        let want =
            media_plane::quality::mos_milli(10_000, Duration::from_millis(20), Duration::ZERO);
        assert_eq!(lossy.mos, Some(f64::from(want) / 1000.0));
        // Nothing received yet, or no clock rate: no estimate.
        assert_eq!(leg_media(&leg(0, 0, 0), &leg(5, 0, 0), 8000).mos, None);
        assert_eq!(leg_media(&leg(10, 0, 0), &leg(5, 0, 0), 0).mos, None);
        // A call's leg shows its worst stream.
        let streams = [
            StreamInfo {
                clock_rate: 8000,
                leg_a: leg(1000, 0, 0),
                leg_b: leg(0, 0, 0),
            },
            StreamInfo {
                clock_rate: 8000,
                leg_a: leg(990, 10, 160),
                leg_b: leg(0, 0, 0),
            },
        ];
        assert_eq!(call_leg_media(&streams, true).unwrap().mos, lossy.mos);
        assert_eq!(call_leg_media(&streams, false).unwrap().mos, None);
    }
}
