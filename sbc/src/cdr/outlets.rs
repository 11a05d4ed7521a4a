//! A worker's side of the CDR writer and the webhook: what its signalling sends when a call
//! starts, is answered or ends, when its guard bans and when a fraud rule warns. Every send is a
//! `try_send`; what a full queue refuses is counted (`cdr_dropped`, `events_dropped`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use sbc_core::b2bua::{CallId, CallRecord};
use sbc_core::guard::fraud::FraudEvent;
use sbc_core::guard::BanInfo;

use super::webhook::{Event, EventSender};
use super::{CdrMsg, CdrSender};
use crate::stats;

/// Calls flagged by a fraud warning at most, per worker (the flags of calls past it are lost).
const MAX_FLAGGED: usize = 65_536;

/// Where a worker's records and events go.
#[derive(Debug)]
pub(crate) struct Outlets {
    worker: u16,
    pub(crate) cdr: Option<CdrSender>,
    pub(crate) events: Option<EventSender>,
    /// Live calls a fraud rule warned about when they started.
    flagged: HashSet<CallId>,
    /// The guard's ban count when last looked at, and the bans then in force (address, level).
    bans_total: u64,
    bans: HashSet<(IpAddr, u8)>,
}

impl Outlets {
    /// Nothing attached yet, for worker `worker`.
    pub(crate) fn new(worker: u16) -> Self {
        Self {
            worker,
            cdr: None,
            events: None,
            flagged: HashSet::new(),
            bans_total: 0,
            bans: HashSet::new(),
        }
    }

    fn event(&mut self, now: Instant, e: Event, stats: &mut stats::B2bua) {
        if let Some(tx) = &mut self.events {
            if !tx.send(now, e) {
                stats.events_dropped += 1;
            }
        }
    }

    /// Call `call` started.
    pub(crate) fn started(&mut self, now: Instant, call: CallId, stats: &mut stats::B2bua) {
        if self.events.is_some() {
            let (worker, at) = (self.worker, SystemTime::now());
            self.event(
                now,
                Event::CallStarted {
                    worker,
                    call: call.0,
                    at,
                },
                stats,
            );
        }
    }

    /// Call `call` was answered.
    pub(crate) fn answered(&mut self, now: Instant, call: CallId, stats: &mut stats::B2bua) {
        if self.events.is_some() {
            let (worker, at) = (self.worker, SystemTime::now());
            self.event(
                now,
                Event::CallAnswered {
                    worker,
                    call: call.0,
                    at,
                },
                stats,
            );
        }
    }

    /// A fraud warning was raised by call `call` as it started: its record says so.
    pub(crate) fn flag_fraud(&mut self, call: CallId) {
        if (self.cdr.is_some() || self.events.is_some()) && self.flagged.len() < MAX_FLAGGED {
            self.flagged.insert(call);
        }
    }

    /// A call ended: its record to the CDR writer and the webhook.
    pub(crate) fn ended(
        &mut self,
        now: Instant,
        record: Box<CallRecord>,
        stats: &mut stats::B2bua,
    ) {
        let flagged = self.flagged.remove(&record.call);
        if self.cdr.is_none() && self.events.is_none() {
            return;
        }
        let msg = CdrMsg {
            worker: self.worker,
            record,
            flags: if flagged { "fraud_warning" } else { "" },
            mono: now,
            wall: SystemTime::now(),
        };
        let msg = match (&mut self.cdr, self.events.is_some()) {
            (Some(tx), true) => {
                if !tx.send(now, msg.clone()) {
                    stats.cdr_dropped += 1;
                }
                msg
            }
            (Some(tx), false) => {
                if !tx.send(now, msg) {
                    stats.cdr_dropped += 1;
                }
                return;
            }
            (None, _) => msg,
        };
        self.event(now, Event::CallEnded(Box::new(msg)), stats);
    }

    /// A fraud rule crossed a threshold.
    pub(crate) fn fraud(&mut self, now: Instant, e: &FraudEvent, stats: &mut stats::B2bua) {
        if self.events.is_some() {
            let (worker, at) = (self.worker, SystemTime::now());
            let event = e.clone();
            self.event(now, Event::Fraud { worker, event, at }, stats);
        }
    }

    /// The guard has made `total` bans so far; when that grew, the bans in force (`list`) not seen
    /// before are posted.
    pub(crate) fn bans(
        &mut self,
        now: Instant,
        total: u64,
        list: impl FnOnce() -> Vec<BanInfo>,
        stats: &mut stats::B2bua,
    ) {
        if self.events.is_none() || total == self.bans_total {
            return;
        }
        self.bans_total = total;
        let list = list();
        let at = SystemTime::now();
        let mut seen = HashSet::with_capacity(list.len());
        for ban in list {
            let key = (ban.ip, ban.level);
            if !self.bans.contains(&key) {
                let worker = self.worker;
                self.event(now, Event::Ban { worker, ban, at }, stats);
            }
            seen.insert(key);
        }
        self.bans = seen;
    }
}
