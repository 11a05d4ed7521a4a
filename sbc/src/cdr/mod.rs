//! Call detail records: the workers' [`CdrSender`]s (a bounded channel, never a wait: a full channel
//! drops the record and counts it), the `sbc-cdr` writer thread that turns each
//! [`CallRecord`] into a row of `cdr` and two rows of `cdr_leg` and writes whatever is queued in one
//! transaction, and its two backends: SQLite in WAL mode (the embedded default, [`sqlite`]) and
//! PostgreSQL ([`pg`]). [`export`] reads the SQLite file back as CSV for billing; [`webhook`]
//! posts call, ban and fraud events.
//!
//! Durability rule (docs/cdr.md): a record is committed within 500 ms of its call's end, and a
//! record committed is never lost (SQLite `synchronous = FULL` in WAL mode; PostgreSQL's default
//! synchronous commit). The writer waits for nothing between batches: what arrived while it
//! committed is the next batch.

pub(crate) mod export;
mod outlets;
pub(crate) mod pg;
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;
pub(crate) mod webhook;

pub(crate) use outlets::Outlets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use sbc_core::b2bua::{CallRecord, EndReason, EndedBy, Outcome};
use sbc_core::signalling::topology::Side;

use crate::config::{CdrSection, DEFAULT_SQLITE_PATH};

/// The schema version the writer creates and expects (`schema_version` table).
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// One ended call on its way to the writer, with the clocks read when it ended (the record's times
/// are monotonic; the pair turns them into wall-clock time).
#[derive(Clone, Debug)]
pub(crate) struct CdrMsg {
    pub(crate) worker: u16,
    pub(crate) record: Box<CallRecord>,
    /// Flags the worker adds (`fraud_warning`), separated by `;`.
    pub(crate) flags: &'static str,
    pub(crate) mono: Instant,
    pub(crate) wall: SystemTime,
}

/// A worker's end of a bounded channel to a writer thread (CDRs, webhook events): never waits; a
/// full channel drops the message, which the caller counts, with a warning at most every 10 s.
#[derive(Clone, Debug)]
pub(crate) struct Outlet<T> {
    tx: Sender<T>,
    /// What the messages are, for the warning.
    what: &'static str,
    /// Drops since the last warning, and when it was written.
    unreported: u64,
    warned: Option<Instant>,
}

/// A worker's end of the CDR channel.
pub(crate) type CdrSender = Outlet<CdrMsg>;

/// How often a worker may warn about dropped messages.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);

impl<T> Outlet<T> {
    /// An outlet over `tx` for messages named `what` in its warning.
    pub(crate) fn new(tx: Sender<T>, what: &'static str) -> Self {
        Self {
            tx,
            what,
            unreported: 0,
            warned: None,
        }
    }

    /// Queue `msg` without waiting; false when it was dropped (channel full or writer gone).
    pub(crate) fn send(&mut self, now: Instant, msg: T) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.unreported += 1;
                if self
                    .warned
                    .is_none_or(|t| now.saturating_duration_since(t) >= DROP_WARN_EVERY)
                {
                    tracing::warn!(
                        dropped = self.unreported,
                        "{} dropped: the writer is behind or gone (slow or full disk, server down)",
                        self.what
                    );
                    self.unreported = 0;
                    self.warned = Some(now);
                }
                false
            }
        }
    }
}

/// What the writer writes to: SQLite or PostgreSQL (or a test's backend).
pub(crate) trait Backend: Send {
    /// Write `rows` in one transaction; on error nothing of them is written.
    fn write(&mut self, rows: &[Cdr]) -> Result<(), String>;
}

/// One leg of a call as `cdr_leg` stores it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LegRow {
    /// `a` (the caller's leg) or `b`.
    pub(crate) leg: &'static str,
    pub(crate) call_id: String,
    /// The address the SBC sent this leg's signalling to.
    pub(crate) address: String,
    pub(crate) codec: Option<String>,
    /// Media streams (`m=` lines) relayed.
    pub(crate) streams: i64,
    /// RTP packets and bytes received from this leg's party, RTCP packets, packets lost.
    pub(crate) packets: i64,
    pub(crate) bytes: i64,
    pub(crate) rtcp_packets: i64,
    pub(crate) lost: i64,
    /// The largest interarrival jitter of its streams, in milliseconds.
    pub(crate) jitter_ms: f64,
}

/// One call as `cdr` stores it (times in milliseconds since the Unix epoch, UTC).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cdr {
    pub(crate) worker: i64,
    pub(crate) call_handle: i64,
    pub(crate) caller: String,
    pub(crate) dialled: String,
    pub(crate) callee: String,
    pub(crate) caller_side: &'static str,
    pub(crate) target_side: &'static str,
    pub(crate) trunk: bool,
    pub(crate) route_label: Option<String>,
    pub(crate) setup_ms: i64,
    pub(crate) ringing_ms: Option<i64>,
    pub(crate) answer_ms: Option<i64>,
    pub(crate) end_ms: i64,
    /// From the answer to the end; 0 for a call not answered.
    pub(crate) duration_ms: i64,
    /// `answered`, `failed` or `cancelled`.
    pub(crate) outcome: &'static str,
    /// The final status the caller got: 200, the failure's status, 487 when cancelled.
    pub(crate) sip_status: i64,
    /// What ended it (`bye`, `rejected`, `cancelled`, `no_answer`, `no_ack`, `leg_failure`,
    /// `max_duration`, `no_media`, `shutdown`).
    pub(crate) reason: &'static str,
    /// `caller`, `callee` or `sbc`.
    pub(crate) ended_by: &'static str,
    pub(crate) failovers: i64,
    /// Separated by `;`: `fraud_warning`, `failover`, `trunk`.
    pub(crate) flags: String,
    pub(crate) legs: [LegRow; 2],
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Outside => "outside",
        Side::Inside => "inside",
    }
}

/// `t` (monotonic) as ms since the epoch, given that `mono` was `wall`.
fn wall_ms(t: Instant, mono: Instant, wall: SystemTime) -> i64 {
    let wall = match mono.checked_duration_since(t) {
        Some(back) => wall.checked_sub(back).unwrap_or(UNIX_EPOCH),
        None => wall + t.duration_since(mono),
    };
    let ms = wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Cdr {
    /// The row of one ended call.
    pub(crate) fn from_msg(m: &CdrMsg) -> Self {
        let r = &*m.record;
        let at = |t: Instant| wall_ms(t, m.mono, m.wall);
        let (outcome, sip_status) = match r.outcome {
            Outcome::Answered => ("answered", 200),
            Outcome::Failed(s) => ("failed", i64::from(s)),
            Outcome::Cancelled => ("cancelled", 487),
        };
        let reason = match r.reason {
            EndReason::Rejected(_) => "rejected",
            EndReason::Cancelled => "cancelled",
            EndReason::Bye(_) => "bye",
            EndReason::NoAck => "no_ack",
            EndReason::NoAnswer => "no_answer",
            EndReason::LegFailure(_) => "leg_failure",
            EndReason::MaxDuration => "max_duration",
            EndReason::NoMedia => "no_media",
            EndReason::Shutdown => "shutdown",
            EndReason::Admin => "admin",
        };
        let ended_by = match r.ended_by {
            EndedBy::Caller => "caller",
            EndedBy::Callee => "callee",
            EndedBy::Sbc => "sbc",
        };
        let end_ms = at(r.ended);
        let answer_ms = r.answered.map(at);
        let mut flags: Vec<&str> = m.flags.split(';').filter(|f| !f.is_empty()).collect();
        if r.failovers > 0 {
            flags.push("failover");
        }
        if r.trunk {
            flags.push("trunk");
        }
        let leg = |leg: &'static str, call_id: &str, addr: SocketAddr, codec: &Option<Box<str>>| {
            let mut row = LegRow {
                leg,
                call_id: call_id.to_owned(),
                address: addr.to_string(),
                codec: codec.as_deref().map(str::to_owned),
                streams: 0,
                packets: 0,
                bytes: 0,
                rtcp_packets: 0,
                lost: 0,
                jitter_ms: 0.0,
            };
            for s in &r.media {
                let l = if leg == "a" { &s.a } else { &s.b };
                row.streams += 1;
                row.packets = row.packets.saturating_add(sat(l.packets));
                row.bytes = row.bytes.saturating_add(sat(l.bytes));
                row.rtcp_packets = row.rtcp_packets.saturating_add(sat(l.rtcp_packets));
                row.lost = row.lost.saturating_add(l.lost);
                if s.clock_rate > 0 {
                    let ms = f64::from(l.jitter) * 1000.0 / f64::from(s.clock_rate);
                    row.jitter_ms = row.jitter_ms.max(ms);
                }
            }
            row
        };
        Self {
            worker: i64::from(m.worker),
            call_handle: sat(r.call.0),
            caller: r.caller.clone(),
            dialled: r.dialled.clone(),
            callee: r.callee.clone(),
            caller_side: side_name(r.caller_side),
            target_side: side_name(r.target_side),
            trunk: r.trunk,
            route_label: r.label.as_deref().map(str::to_owned),
            setup_ms: at(r.invited),
            ringing_ms: r.ringing.map(at),
            answer_ms,
            end_ms,
            duration_ms: answer_ms.map_or(0, |a| end_ms.saturating_sub(a).max(0)),
            outcome,
            sip_status,
            reason,
            ended_by,
            failovers: i64::from(r.failovers),
            flags: flags.join(";"),
            legs: [
                leg("a", &r.a_call_id, r.caller_addr, &r.caller_codec),
                leg("b", &r.b_call_id, r.target, &r.callee_codec),
            ],
        }
    }
}

/// The writer thread and the workers' senders.
pub(crate) struct CdrWriter {
    pub(crate) senders: Vec<CdrSender>,
    pub(crate) thread: JoinHandle<()>,
}

/// The channel between `n` workers and the writer, `queue` records deep in all.
pub(crate) fn channel(queue: usize) -> (Sender<CdrMsg>, Receiver<CdrMsg>) {
    crossbeam_channel::bounded(queue)
}

/// Start the writer for `cfg` with one sender per worker; `Ok(None)` when CDRs are off (turned off,
/// or the default SQLite file cannot be created: a warning says so).
pub(crate) fn start(cfg: &CdrSection, workers: usize) -> Result<Option<CdrWriter>, String> {
    if !cfg.enabled {
        tracing::info!("CDRs: off (cdr.enabled = false)");
        return Ok(None);
    }
    let backend: Box<dyn Backend> = match (&cfg.postgres_url, &cfg.sqlite_path) {
        (Some(url), _) => {
            tracing::info!("CDRs: PostgreSQL");
            Box::new(pg::Postgres::new(url)?)
        }
        (None, Some(path)) => {
            Box::new(sqlite::Sqlite::open(path).map_err(|e| format!("cdr.sqlite_path: {e}"))?)
        }
        (None, None) => match sqlite::Sqlite::open(&PathBuf::from(DEFAULT_SQLITE_PATH)) {
            Ok(b) => Box::new(b),
            Err(e) => {
                tracing::warn!(
                    "CDRs: off: the default file {DEFAULT_SQLITE_PATH} cannot be used ({e}); \
                     set cdr.sqlite_path or cdr.enabled = false"
                );
                return Ok(None);
            }
        },
    };
    let (tx, rx) = channel(cfg.queue);
    let batch = cfg.batch;
    let thread = std::thread::Builder::new()
        .name("sbc-cdr".into())
        .spawn(move || run(backend, &rx, batch))
        .map_err(|e| format!("spawn CDR writer: {e}"))?;
    Ok(Some(CdrWriter {
        senders: (0..workers)
            .map(|_| Outlet::new(tx.clone(), "CDRs (cdr_dropped)"))
            .collect(),
        thread,
    }))
}

/// Attempts at writing one batch (about 90 s with the back-off) before it is given up, logged.
const WRITE_ATTEMPTS: u32 = 20;

/// The writer's loop: block for a record, take what else is queued (up to `batch`), write them in
/// one transaction; a failed write is retried with back-off (meanwhile the channel fills and the
/// workers count drops), [`WRITE_ATTEMPTS`] times. Ends when every sender is gone and the queue is empty.
pub(crate) fn run(mut backend: Box<dyn Backend>, rx: &Receiver<CdrMsg>, batch: usize) {
    let mut rows = Vec::with_capacity(batch);
    let (mut written, mut lost) = (0u64, 0u64);
    while let Ok(first) = rx.recv() {
        rows.push(Cdr::from_msg(&first));
        while rows.len() < batch {
            match rx.try_recv() {
                Ok(m) => rows.push(Cdr::from_msg(&m)),
                Err(_) => break,
            }
        }
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=WRITE_ATTEMPTS {
            match backend.write(&rows) {
                Ok(()) => {
                    written += rows.len() as u64;
                    break;
                }
                Err(e) if attempt == WRITE_ATTEMPTS => {
                    tracing::error!(
                        records = rows.len(),
                        "CDRs lost: write failed {attempt} times: {e}"
                    );
                    lost += rows.len() as u64;
                }
                Err(e) => {
                    tracing::warn!(
                        records = rows.len(),
                        "CDRs: write failed, retrying in {wait:?}: {e}"
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        rows.clear();
    }
    tracing::info!(written, lost, "CDR writer stopped");
}
