//! What the B2BUA tells its driver about calls: the [`CallEvent`]s, and the [`CallRecord`] of a
//! call that ended (what a CDR needs), kept up to date along the call at the cost of a few copies
//! made once, when the call starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::media::StreamStats;
use crate::signalling::topology::Side;

/// A call handle, unique within one B2BUA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Leg B answered the INVITE with this final status (≥ 300), relayed to A.
    Rejected(u16),
    /// A cancelled before the answer.
    Cancelled,
    /// The side that sent BYE.
    Bye(Side),
    /// A never acknowledged the 2xx.
    NoAck,
    /// No final response from leg B (Timer B or the ringing timeout): 408 to A.
    NoAnswer,
    /// A request on a leg timed out or failed in the confirmed dialog.
    LegFailure(Side),
    /// The maximum call duration passed.
    MaxDuration,
    /// No media on any leg for the no-media timeout.
    NoMedia,
    /// The SBC stopped (its drain time passed with the call still up).
    Shutdown,
    /// The operator hung it up (BYE on both legs, or CANCEL and 487 before the answer).
    Admin,
}

/// What happened to a call, for CDRs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// A new call was accepted and relayed to leg B.
    Started {
        /// The call.
        call: CallId,
    },
    /// Leg B answered with a 2xx.
    Answered {
        /// The call.
        call: CallId,
    },
    /// The call is gone from the table: emitted once per started call, whichever way it ended.
    Ended {
        /// What a CDR needs of it (boxed: the other events stay small).
        record: Box<CallRecord>,
    },
    /// The OPTIONS probe sent by [`B2bua::probe`](super::B2bua::probe) with this token was
    /// answered (`alive`: with a status that shows the peer alive) or timed out.
    Probed {
        /// The caller's token.
        token: u64,
        /// Whether the peer answered.
        alive: bool,
    },
    /// A target failed a new call: no first response in its time, no final response (Timer B,
    /// a transport error), or 503. The router marks it down at once (passive health).
    TargetFailed {
        /// The target's address.
        target: SocketAddr,
    },
}

/// How a call ended, as the caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Leg B's 2xx was relayed to the caller.
    Answered,
    /// The call failed before the answer with this final status sent to the caller.
    Failed(u16),
    /// The caller cancelled it before the answer (CANCEL, or BYE on the early dialog).
    Cancelled,
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The caller (leg A): BYE or CANCEL.
    Caller,
    /// The callee (leg B): BYE, or a refusal of the call.
    Callee,
    /// The SBC: a timer (no answer, no ACK, maximum duration, no media) or a failed leg.
    Sbc,
}

/// What a CDR needs of one call, known to the B2BUA; carried by [`CallEvent::Ended`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call.
    pub call: CallId,
    /// Leg A's Call-ID, as received.
    pub a_call_id: String,
    /// Leg B's Call-ID (made by the SBC).
    pub b_call_id: String,
    /// The user of leg A's From (`anonymous` without one): the caller, as sent on leg B.
    pub caller: String,
    /// Where leg A's messages go: the caller's address (after NAT fixing), on `caller_side`.
    pub caller_addr: SocketAddr,
    /// The side leg A is on.
    pub caller_side: Side,
    /// The user of leg A's Request-URI: the number dialled, as received (empty without one).
    pub dialled: String,
    /// The called user sent on leg B, after number rules (empty without one).
    pub callee: String,
    /// The next hop of leg B: the last one tried after fail-overs.
    pub target: SocketAddr,
    /// The side leg B is on.
    pub target_side: Side,
    /// Whether leg B went to a trunk with credentials.
    pub trunk: bool,
    /// The router's name for the target (its group or trunk), when it gave one.
    pub label: Option<Arc<str>>,
    /// When leg A's INVITE arrived.
    pub invited: Instant,
    /// When leg B's first provisional response (other than 100) arrived.
    pub ringing: Option<Instant>,
    /// When leg B's 2xx was relayed to the caller.
    pub answered: Option<Instant>,
    /// When the call left the table.
    pub ended: Instant,
    /// How it ended for the caller.
    pub outcome: Outcome,
    /// Why it ended: leg B's final status for a refused call, else what ended it (BYE from a side,
    /// no ACK, maximum duration, no media, ...).
    pub reason: EndReason,
    /// Who ended it.
    pub ended_by: EndedBy,
    /// How many times leg B's INVITE moved to the next target of its group.
    pub failovers: u8,
    /// The codec the caller asked for in its last description (the preferred format of its first
    /// relayed RTP stream); `None` without anchored media or SDP.
    pub caller_codec: Option<Box<str>>,
    /// The codec the callee asked for in its last description.
    pub callee_codec: Option<Box<str>>,
    /// The relay's final statistics of each stream (`m=` line), leg A being the caller's: packets,
    /// bytes, loss and jitter received from each party, where its media came from. Empty without
    /// anchored media.
    pub media: Vec<StreamStats>,
}

/// The facts of a live call that its record needs beyond its legs, gathered along the way.
#[derive(Debug)]
pub(super) struct CallFacts {
    pub(super) caller: String,
    pub(super) dialled: String,
    pub(super) callee: String,
    pub(super) trunk: bool,
    pub(super) label: Option<Arc<str>>,
    pub(super) invited: Instant,
    pub(super) ringing: Option<Instant>,
    pub(super) answered: Option<Instant>,
    /// The final status sent to the caller (the first one: later ones are not sent).
    pub(super) status_to_a: Option<u16>,
    pub(super) failovers: u8,
}

/// The legs of an ended call as its record names them.
pub(super) struct EndedLegs {
    pub(super) a_call_id: String,
    pub(super) a_side: Side,
    pub(super) a_dest: SocketAddr,
    pub(super) b_call_id: String,
    pub(super) target: SocketAddr,
    pub(super) target_side: Side,
}

impl CallFacts {
    /// The record of call `call`, ended at `ended` for `reason`.
    pub(super) fn into_record(
        self,
        call: CallId,
        legs: EndedLegs,
        reason: EndReason,
        ended: Instant,
    ) -> CallRecord {
        let outcome = match (reason, self.answered) {
            (EndReason::Cancelled, _) => Outcome::Cancelled,
            (_, Some(_)) => Outcome::Answered,
            // Every failure sends a final status to the caller; 500 only if none went out.
            (_, None) => Outcome::Failed(self.status_to_a.unwrap_or(500)),
        };
        let ended_by = match reason {
            EndReason::Bye(side) if side == legs.a_side => EndedBy::Caller,
            EndReason::Bye(_) | EndReason::Rejected(_) => EndedBy::Callee,
            EndReason::Cancelled => EndedBy::Caller,
            EndReason::NoAck
            | EndReason::NoAnswer
            | EndReason::LegFailure(_)
            | EndReason::MaxDuration
            | EndReason::NoMedia
            | EndReason::Shutdown
            | EndReason::Admin => EndedBy::Sbc,
        };
        CallRecord {
            call,
            a_call_id: legs.a_call_id,
            b_call_id: legs.b_call_id,
            caller: self.caller,
            caller_addr: legs.a_dest,
            caller_side: legs.a_side,
            dialled: self.dialled,
            callee: self.callee,
            target: legs.target,
            target_side: legs.target_side,
            trunk: self.trunk,
            label: self.label,
            invited: self.invited,
            ringing: self.ringing,
            answered: self.answered,
            ended: ended.max(self.invited),
            outcome,
            reason,
            ended_by,
            failovers: self.failovers,
            caller_codec: None,
            callee_codec: None,
            media: Vec::new(),
        }
    }
}
