//! The webhook (`[events] webhook_url`): the workers' call starts, answers and ends, new bans and
//! fraud warnings, queued on a bounded channel (a full queue drops the event, counted as
//! `events_dropped` in the worker's counters) and POSTed as a JSON array by the `sbc-events` thread,
//! each batch retried with doubling back-off up to `events.attempts` times (then dropped, logged
//! and counted as `events_failed` at stop). Nothing here runs on a worker but the `try_send`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use sbc_core::guard::fraud::FraudEvent;
use sbc_core::guard::rules::Level;
use sbc_core::guard::{BanInfo, BanReason};
use serde_json::{json, Value};

use super::{Cdr, CdrMsg, LegRow, Outlet};
use crate::config::EventsSection;

/// One event, as a worker sends it (made into JSON on the events thread).
#[derive(Debug)]
pub(crate) enum Event {
    /// A call was accepted and relayed to leg B.
    CallStarted {
        worker: u16,
        call: u64,
        at: SystemTime,
    },
    /// Leg B answered.
    CallAnswered {
        worker: u16,
        call: u64,
        at: SystemTime,
    },
    /// The call ended: its record.
    CallEnded(Box<CdrMsg>),
    /// A source was banned by the worker's guard.
    Ban {
        worker: u16,
        ban: BanInfo,
        at: SystemTime,
    },
    /// A fraud rule crossed a threshold.
    Fraud {
        worker: u16,
        event: FraudEvent,
        at: SystemTime,
    },
}

/// A worker's end of the events queue.
pub(crate) type EventSender = Outlet<Event>;

/// Events posted in one request at most.
const BATCH: usize = 100;

fn ms(t: SystemTime) -> u64 {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn time(t: SystemTime) -> String {
    super::export::iso8601(i64::try_from(ms(t)).unwrap_or(i64::MAX))
}

fn ban_reason(r: BanReason) -> &'static str {
    match r {
        BanReason::Flood => "flood",
        BanReason::UnknownUsers => "unknown_users",
        BanReason::AuthFailures => "auth_failures",
        BanReason::Sweep => "sweep",
        BanReason::Scanner => "scanner",
        BanReason::Manual => "manual",
    }
}

/// The JSON of one ended call (the CDR's fields).
fn ended(c: &Cdr) -> Value {
    let iso = |v: Option<i64>| v.map(super::export::iso8601);
    let leg = |l: &LegRow| {
        json!({
            "call_id": l.call_id, "address": l.address, "codec": l.codec, "streams": l.streams,
            "packets": l.packets, "bytes": l.bytes, "rtcp_packets": l.rtcp_packets, "lost": l.lost,
            "jitter_ms": l.jitter_ms,
        })
    };
    json!({
        "event": "call_end", "time": iso(Some(c.end_ms)), "worker": c.worker, "call": c.call_handle,
        "caller": c.caller, "dialled": c.dialled, "callee": c.callee, "route": c.route_label,
        "setup": iso(Some(c.setup_ms)), "ringing": iso(c.ringing_ms), "answer": iso(c.answer_ms),
        "end": iso(Some(c.end_ms)), "duration_s": c.duration_ms as f64 / 1000.0,
        "outcome": c.outcome, "sip_status": c.sip_status, "reason": c.reason,
        "ended_by": c.ended_by, "failovers": c.failovers, "flags": c.flags,
        "leg_a": leg(&c.legs[0]), "leg_b": leg(&c.legs[1]),
    })
}

impl Event {
    /// The event's JSON object (docs/cdr.md, "Webhook").
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::CallStarted { worker, call, at } => {
                json!({"event": "call_start", "time": time(*at), "worker": worker, "call": call})
            }
            Self::CallAnswered { worker, call, at } => {
                json!({"event": "call_answer", "time": time(*at), "worker": worker, "call": call})
            }
            Self::CallEnded(m) => ended(&Cdr::from_msg(m)),
            Self::Ban { worker, ban, at } => json!({
                "event": "ban", "time": time(*at), "worker": worker, "ip": ban.ip.to_string(),
                "reason": ban_reason(ban.reason), "level": ban.level,
                "remaining_ms": ban.remaining_ms,
            }),
            Self::Fraud { worker, event, at } => {
                let ip: IpAddr = event.source;
                json!({
                    "event": "fraud", "time": time(*at), "worker": worker,
                    "level": match event.level { Level::Warning => "warning", Level::Critical => "critical" },
                    "rule": &*event.rule, "metric": event.metric.name(), "value": event.value,
                    "threshold": event.threshold, "account": &*event.account,
                    "callee": &*event.callee, "source": ip.to_string(),
                })
            }
        }
    }
}

/// The webhook thread and the workers' senders.
pub(crate) struct Webhook {
    pub(crate) senders: Vec<EventSender>,
    pub(crate) thread: JoinHandle<()>,
    /// Events given up after every attempt failed.
    pub(crate) failed: Arc<AtomicU64>,
}

/// Something that takes one JSON body: the HTTP client, or a test's.
pub(crate) trait Post: Send {
    /// POST `body`; `Err` for a failure worth a retry (no answer, an error status).
    fn post(&mut self, body: &str) -> Result<(), String>;
}

/// POSTs over HTTP(S) with ureq.
struct Http {
    agent: ureq::Agent,
    url: String,
}

impl Post for Http {
    fn post(&mut self, body: &str) -> Result<(), String> {
        let r = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// Start the webhook for `cfg` with one sender per worker; `None` without `webhook_url`.
pub(crate) fn start(
    cfg: &EventsSection,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Result<Option<Webhook>, String> {
    let Some(url) = cfg.webhook_url.clone() else {
        return Ok(None);
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(cfg.timeout_ms)))
        .http_status_as_error(false)
        .build()
        .into();
    tracing::info!(url = %url, "events: webhook");
    let (tx, rx) = crossbeam_channel::bounded(cfg.queue);
    let failed = Arc::new(AtomicU64::new(0));
    let policy = Retry {
        attempts: cfg.attempts,
        backoff: Duration::from_millis(cfg.retry_backoff_ms),
    };
    let counter = failed.clone();
    let thread = std::thread::Builder::new()
        .name("sbc-events".into())
        .spawn(move || run(Box::new(Http { agent, url }), &rx, policy, &counter, &stop))
        .map_err(|e| format!("spawn events thread: {e}"))?;
    Ok(Some(Webhook {
        senders: (0..workers)
            .map(|_| Outlet::new(tx.clone(), "webhook events (events_dropped)"))
            .collect(),
        thread,
        failed,
    }))
}

/// How a batch is retried.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
}

/// How long the SBC's stop waits for the webhook at most; what is left then is given up (counted).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The events thread: take what is queued (up to [`BATCH`]), POST it as one JSON array, retry
/// with back-off; ends when every sender is gone and the queue is empty, or [`STOP_GRACE`] after
/// `stop` is set.
pub(crate) fn run(
    mut client: Box<dyn Post>,
    rx: &Receiver<Event>,
    retry: Retry,
    failed: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut deadline = None::<Instant>;
    let mut batch = Vec::with_capacity(BATCH);
    let (mut posted, mut warned) = (0u64, None::<Instant>);
    while let Ok(first) = rx.recv() {
        batch.push(first.to_json());
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e.to_json()),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let body = Value::Array(std::mem::take(&mut batch)).to_string();
        let mut wait = retry.backoff;
        for attempt in 1..=retry.attempts {
            if stop.load(Ordering::Relaxed) {
                let end = *deadline.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                if Instant::now() >= end {
                    failed.fetch_add(n, Ordering::Relaxed);
                    break;
                }
            }
            match client.post(&body) {
                Ok(()) => {
                    posted += n;
                    break;
                }
                Err(e) => {
                    if attempt == retry.attempts {
                        failed.fetch_add(n, Ordering::Relaxed);
                    }
                    let now = Instant::now();
                    if warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                        warned = Some(now);
                        tracing::warn!(attempt, events = n, "webhook: POST failed: {e}");
                    }
                    if attempt < retry.attempts {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    }
    tracing::info!(
        posted,
        failed = failed.load(Ordering::Relaxed),
        "webhook stopped"
    );
}
