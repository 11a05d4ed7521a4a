//! The operator's view of one B2BUA and the changes an operator makes at run time: the calls in
//! progress (a [`CallSummary`] each, media statistics included), hanging up one call on both legs
//! ([`B2bua::hang_up`], [`EndReason::Admin`]), the registered bindings ([`BindingSummary`]) and the
//! removal of one ([`B2bua::remove_binding`], told to the PBX with a REGISTER `Expires: 0`), and
//! the calls in progress per next hop (what a drain waits for).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{B2bua, CallId, EndReason, State};
use crate::media::{MediaControl, StreamStats};
use crate::registration::registrar::{BindingKey, Transport};
use crate::signalling::topology::Side;

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Leg B has not answered yet.
    Ringing,
    /// Leg B answered; the caller's ACK is awaited.
    Answered,
    /// Both legs are up.
    Confirmed,
    /// BYEs were sent; the call leaves once they are answered.
    Ending,
}

impl CallState {
    /// The state's name (`ringing`, `answered`, `confirmed`, `ending`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Confirmed => "confirmed",
            Self::Ending => "ending",
        }
    }
}

/// One call in progress, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    /// The call's handle in this B2BUA.
    pub call: CallId,
    /// Where the call stands.
    pub state: CallState,
    /// The caller (user of leg A's From).
    pub caller: String,
    /// The number dialled, as received.
    pub dialled: String,
    /// The called user sent on leg B, after number rules.
    pub callee: String,
    /// Leg A's Call-ID, as received.
    pub a_call_id: String,
    /// Leg B's Call-ID (made by the SBC).
    pub b_call_id: String,
    /// The side leg A is on.
    pub a_side: Side,
    /// The peer of leg A (where the SBC's requests on it go).
    pub a_peer: SocketAddr,
    /// The next hop of leg B.
    pub target: SocketAddr,
    /// The router's name for the target (its group or trunk).
    pub label: Option<Arc<str>>,
    /// When leg A's INVITE arrived.
    pub invited: Instant,
    /// When leg B's first provisional response (other than 100) arrived.
    pub ringing: Option<Instant>,
    /// When leg B's 2xx was relayed to the caller.
    pub answered: Option<Instant>,
    /// The relay's statistics of each stream (leg A is the caller's); empty without media.
    pub media: Vec<StreamStats>,
}

/// Which calls [`B2bua::call_summaries`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only calls in this state.
    pub state: Option<CallState>,
    /// Only calls whose caller, dialled number or callee contains this text.
    pub party: Option<String>,
    /// Only calls whose target's label is this.
    pub label: Option<String>,
    /// Only the call with this handle.
    pub call: Option<CallId>,
}

impl CallFilter {
    fn matches(&self, s: &CallSummary) -> bool {
        self.state.is_none_or(|st| st == s.state)
            && self.call.is_none_or(|c| c == s.call)
            && self
                .label
                .as_deref()
                .is_none_or(|l| s.label.as_deref() == Some(l))
            && self.party.as_deref().is_none_or(|p| {
                s.caller.contains(p) || s.dialled.contains(p) || s.callee.contains(p)
            })
    }
}

/// What [`B2bua::hang_up`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangUp {
    /// The answered call gets BYE on both legs; it ends when they are answered.
    Bye,
    /// The ringing call: 487 to the caller, CANCEL on leg B (at once when it has answered
    /// provisionally, else on its first provisional answer); it ends when leg B answers.
    Cancel,
    /// The call was already ending.
    AlreadyEnding,
    /// No such call.
    NotFound,
}

/// One registered binding, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingSummary {
    /// The address of record.
    pub aor: String,
    /// The Contact URI as the user agent wrote it.
    pub contact: String,
    /// Where the user agent's REGISTER came from.
    pub source: SocketAddr,
    /// The transport it registered over.
    pub transport: Transport,
    /// Whether it was found behind NAT.
    pub nated: bool,
    /// The time left before it expires unless refreshed.
    pub expires_in: Duration,
    /// Whether the SBC holds a registration of it at the PBX.
    pub at_pbx: bool,
}

/// The timers of new calls an operator may change at run time (a reload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTimers {
    /// See [`B2buaConfig::max_call_duration`](super::B2buaConfig::max_call_duration).
    pub max_call_duration: Duration,
    /// See [`B2buaConfig::ringing_timeout`](super::B2buaConfig::ringing_timeout); never above the
    /// value the B2BUA started with (its transactions' Timer C was set from it).
    pub ringing_timeout: Duration,
    /// See [`B2buaConfig::no_ack_timeout`](super::B2buaConfig::no_ack_timeout).
    pub no_ack_timeout: Duration,
    /// See [`B2buaConfig::first_response_timeout`](super::B2buaConfig::first_response_timeout).
    pub first_response_timeout: Duration,
}

impl B2bua {
    /// Change the timers of calls that start from now on (calls in progress keep their deadlines).
    /// The ringing timeout stays below the transactions' Timer C.
    pub fn set_call_timers(&mut self, t: CallTimers) {
        let timer_c = self.config.transactions.timer_c;
        let c = &mut self.config;
        c.max_call_duration = t.max_call_duration;
        c.ringing_timeout = t
            .ringing_timeout
            .min(timer_c.saturating_sub(Duration::from_secs(1)));
        c.no_ack_timeout = t.no_ack_timeout;
        c.first_response_timeout = t.first_response_timeout;
    }

    /// Every call in progress that `filter` lets through, in handle order, with the relay's
    /// statistics of its media read from `media`.
    pub fn call_summaries(
        &self,
        filter: &CallFilter,
        media: &dyn MediaControl,
    ) -> Vec<CallSummary> {
        let mut keys: Vec<u64> = self.b_index.values().copied().collect();
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|key| self.summary(key, media))
            .filter(|s| filter.matches(s))
            .collect()
    }

    fn summary(&self, key: u64, media: &dyn MediaControl) -> Option<CallSummary> {
        let call = self.calls.get(&key)?;
        let state = match call.state {
            State::Ringing if call.cancelled => CallState::Ending,
            State::Ringing => CallState::Ringing,
            State::AwaitAck => CallState::Answered,
            State::Confirmed => CallState::Confirmed,
            State::Ending => CallState::Ending,
        };
        let mut streams = Vec::new();
        if let Some(h) = call.media.session() {
            // A session the relay no longer knows has no statistics to show.
            let _ = media.stats(h, &mut streams);
        }
        let f = &call.facts;
        Some(CallSummary {
            call: CallId(key),
            state,
            caller: f.caller.clone(),
            dialled: f.dialled.clone(),
            callee: f.callee.clone(),
            a_call_id: call.a.call_id.clone(),
            b_call_id: call.b.call_id.clone(),
            a_side: call.a.side,
            a_peer: call.a.dest,
            target: call.b.dest,
            label: f.label.clone(),
            invited: f.invited,
            ringing: f.ringing,
            answered: f.answered,
            media: streams,
        })
    }

    /// End call `call` on both legs for the operator ([`EndReason::Admin`]): BYE on both legs of
    /// an answered call, 487 to the caller and CANCEL on leg B of a ringing one. Exactly one
    /// [`CallEvent::Ended`](super::CallEvent::Ended) follows, as for any call.
    pub fn hang_up(&mut self, now: Instant, call: CallId, media: &mut dyn MediaControl) -> HangUp {
        self.last_now = Some(now);
        let key = call.0;
        let Some(c) = self.calls.get(&key) else {
            return HangUp::NotFound;
        };
        let done = match c.state {
            State::Ringing if c.cancelled => HangUp::AlreadyEnding,
            State::Ringing => {
                // As a CANCEL of the caller's (sent on leg B at once, or on its first provisional
                // answer: RFC 3261 §9.1), with the caller told at once; the call ends when leg B
                // answers the CANCEL'ed INVITE (487, or a 2xx that crossed it: ACK and BYE).
                if let Some(c) = self.calls.get_mut(&key) {
                    c.end_reason = Some(EndReason::Admin);
                }
                self.cancel_b(now, key);
                self.reply_to_a(now, key, 487, true);
                HangUp::Cancel
            }
            State::AwaitAck | State::Confirmed => {
                let sides = [Side::Outside, Side::Inside];
                self.end_with_bye(now, key, &sides, EndReason::Admin);
                HangUp::Bye
            }
            State::Ending => HangUp::AlreadyEnding,
        };
        self.pump(now, None, media);
        self.flush_media(media);
        done
    }

    /// Calls in progress (not yet ending) per next hop of leg B.
    pub fn calls_by_target(&self) -> HashMap<SocketAddr, usize> {
        let mut out = HashMap::new();
        for c in self.b_index.values().filter_map(|k| self.calls.get(k)) {
            if c.state != State::Ending {
                *out.entry(c.b.dest).or_insert(0) += 1;
            }
        }
        out
    }

    /// Every registered binding, by AoR, with the time left at `now`.
    pub fn binding_summaries(&self, now: Instant) -> Vec<BindingSummary> {
        let mut out: Vec<BindingSummary> = self
            .registrar
            .export(now)
            .map(|(b, left, _)| {
                let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
                BindingSummary {
                    aor: b.aor.as_str().to_owned(),
                    contact: b.contact_uri.clone(),
                    source: b.source,
                    transport: b.transport,
                    nated: b.nated,
                    expires_in: left,
                    at_pbx: self.pbx_regs.contains_key(&key),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.aor, &a.contact).cmp(&(&b.aor, &b.contact)));
        out
    }

    /// Remove the bindings of `aor` (only the one with Contact URI `contact` when given): each
    /// goes at once, and the SBC's registration of it at the PBX is removed with a REGISTER
    /// `Expires: 0`. Returns how many went.
    pub fn remove_binding(&mut self, now: Instant, aor: &str, contact: Option<&str>) -> usize {
        self.last_now = Some(now);
        let keys: Vec<BindingKey> = self
            .registrar
            .export(now)
            .filter(|(b, _, _)| b.aor.as_str() == aor)
            .filter(|(b, _, _)| contact.is_none_or(|c| b.contact_uri == c))
            .map(|(b, _, _)| BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref()))
            .collect();
        for key in &keys {
            self.deregister_at_pbx(now, key);
        }
        keys.len()
    }
}
