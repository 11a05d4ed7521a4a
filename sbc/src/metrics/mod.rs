//! The Prometheus exposition (text format 0.0.4) of the workers' latest snapshots, rendered on the
//! control thread by [`render`]: nothing here runs on a worker or touches the packet path.
//!
//! Sources, all copies the workers publish once a second ([`crate::control::WorkerSnapshot`]):
//! - every field of every counters layer ([`crate::stats`], the guard's and the rules' counters),
//!   summed over workers, as `sbc_<layer>_<field>` (the field's own `<layer>_` prefix not
//!   repeated), with `_total` for counters; its doc comment is the help text. A counter added to a
//!   layer is exported without a change here (and `docs/metrics.md` must gain its row: a test
//!   fails until it does);
//! - a few of those fields are shown together as one family with a `reason` or `outcome` label
//!   instead ([`GROUPED`]);
//! - [`crate::observe::Observed`]: histograms and counts by method, class, outcome, side and reason,
//!   and per worker (label `worker`) the event loop's time and load.
//!
//! Labels are bounded by construction: each comes from a fixed list in the code, never from a
//! call, a number or an address (`docs/metrics.md` states the bound).

use std::fmt::{Display, Write};

use sbc_counters::{Field, Kind};

use crate::control::{Control, Layers, WorkerSnapshot};
use crate::observe::{
    Buckets, CallOutcome, Histogram, LoopStats, CLASSES, DURATION, JITTER, LOOP_TURN, LOSS,
    METHODS, MOS, SETUP_ANSWER, SETUP_RINGING,
};

#[cfg(test)]
mod tests;

/// The content type of [`render`]'s text.
#[allow(dead_code)] // the API server states its own, the same
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of the workers' latest snapshots, in the Prometheus text format 0.0.4, then the
/// process's own: `uptime_secs` since the start and the `reporting` workers (those whose latest
/// snapshot is recent).
pub(crate) fn render(control: &Control, uptime_secs: u64, reporting: usize) -> String {
    let workers: Vec<&WorkerSnapshot> = control.workers().collect();
    with_process(render_snapshots(&workers), uptime_secs, reporting)
}

/// `text` followed by the process's own gauges (see [`render`]).
pub(crate) fn with_process(text: String, uptime_secs: u64, reporting: usize) -> String {
    let mut out = Text(text);
    out.family(
        "sbc_workers_reporting",
        "gauge",
        "Workers whose latest counters are recent.",
    );
    out.sample("sbc_workers_reporting", &[], reporting);
    out.family(
        "sbc_uptime_seconds",
        "gauge",
        "Seconds since the SBC started.",
    );
    out.sample("sbc_uptime_seconds", &[], uptime_secs);
    out.0
}

/// [`render`] over the given snapshots (one per worker).
pub(crate) fn render_snapshots(workers: &[&WorkerSnapshot]) -> String {
    let mut total = Layers::default();
    for w in workers {
        total.merge(&w.layers);
    }
    let mut out = Text::default();
    out.family(
        "sbc_workers",
        "gauge",
        "Workers that have published their counters.",
    );
    out.sample("sbc_workers", &[], workers.len());
    layers(&mut out, &total);
    grouped(&mut out, &total);
    calls(&mut out, &total);
    sip(&mut out, &total);
    media(&mut out, &total);
    work(&mut out, workers);
    out.0
}

/// The layers of [`Layers`] as the metric names say them, with their fields.
fn layer_fields(l: &Layers) -> [(&'static str, Vec<Field>); 7] {
    [
        ("transport", l.transport.fields().to_vec()),
        ("sip", l.sip.fields().to_vec()),
        ("b2bua", l.b2bua.fields().to_vec()),
        ("media", l.media.fields().to_vec()),
        ("guard", l.guard.fields().to_vec()),
        ("rules", l.rules.fields().to_vec()),
        ("worker", l.worker.fields().to_vec()),
    ]
}

/// Fields shown as one labelled family instead of a metric each: (layer, field, family, label,
/// label value). Each family's help is in [`GROUP_HELP`].
pub(crate) const GROUPED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "guard",
        "guard_rate_dropped",
        "sbc_guard_drops_total",
        "reason",
        "rate",
    ),
    (
        "guard",
        "guard_banned_dropped",
        "sbc_guard_drops_total",
        "reason",
        "banned",
    ),
    (
        "guard",
        "guard_scanner_dropped",
        "sbc_guard_drops_total",
        "reason",
        "scanner",
    ),
    (
        "guard",
        "inside_dropped",
        "sbc_guard_drops_total",
        "reason",
        "inside",
    ),
    (
        "guard",
        "bans_flood",
        "sbc_guard_bans_total",
        "reason",
        "flood",
    ),
    (
        "guard",
        "bans_unknown_users",
        "sbc_guard_bans_total",
        "reason",
        "unknown_users",
    ),
    (
        "guard",
        "bans_auth_failures",
        "sbc_guard_bans_total",
        "reason",
        "auth_failures",
    ),
    (
        "guard",
        "bans_sweep",
        "sbc_guard_bans_total",
        "reason",
        "sweep",
    ),
    (
        "guard",
        "bans_scanner",
        "sbc_guard_bans_total",
        "reason",
        "scanner",
    ),
    (
        "guard",
        "bans_manual",
        "sbc_guard_bans_total",
        "reason",
        "manual",
    ),
    (
        "rules",
        "calls_refused_list",
        "sbc_rules_calls_refused_total",
        "reason",
        "list",
    ),
    (
        "rules",
        "calls_refused_busy",
        "sbc_rules_calls_refused_total",
        "reason",
        "busy",
    ),
    (
        "rules",
        "calls_refused_rate",
        "sbc_rules_calls_refused_total",
        "reason",
        "rate",
    ),
    (
        "rules",
        "fraud_blocked",
        "sbc_rules_fraud_events_total",
        "outcome",
        "blocked",
    ),
    (
        "rules",
        "fraud_warnings",
        "sbc_rules_fraud_events_total",
        "outcome",
        "warning",
    ),
    // Rendered by reason from the relay's own drop counters ([`media`]).
    (
        "media",
        "media_dropped",
        "sbc_media_dropped_total",
        "reason",
        "",
    ),
];

/// The help text of each family of [`GROUPED`].
const GROUP_HELP: &[(&str, &str)] = &[
    (
        "sbc_guard_drops_total",
        "Messages the guard dropped without an answer, by reason: over the source's budget (rate), \
         from a banned source, with a scanner's User-Agent, responses on the inside from a stranger.",
    ),
    (
        "sbc_guard_bans_total",
        "Bans the guard imposed, by reason: flood, unknown users, refused credentials, unanswered \
         challenges (sweep), scanner User-Agent, manual (control API).",
    ),
    (
        "sbc_rules_calls_refused_total",
        "New calls refused by the call rules, by reason: a black or white list (403), a \
         concurrent-call limit (486), a calls-per-second limit (503).",
    ),
    (
        "sbc_rules_fraud_events_total",
        "Fraud rule thresholds crossed: calls blocked (critical level) and warnings raised.",
    ),
];

/// The metric name of `layer`'s field `name` (`_total` added by the caller for counters).
pub(crate) fn flat_name(layer: &str, name: &str) -> String {
    let rest = name
        .strip_prefix(layer)
        .and_then(|r| r.strip_prefix('_'))
        .unwrap_or(name);
    format!("sbc_{layer}_{rest}")
}

fn is_grouped(layer: &str, field: &str) -> bool {
    GROUPED.iter().any(|g| g.0 == layer && g.1 == field)
}

/// Every field of every layer not in [`GROUPED`], one family each.
fn layers(out: &mut Text, total: &Layers) {
    for (layer, fields) in layer_fields(total) {
        for f in fields.iter().filter(|f| !is_grouped(layer, f.name)) {
            let mut name = flat_name(layer, f.name);
            if f.kind == Kind::Counter {
                name.push_str("_total");
            }
            out.family(&name, f.kind.as_str(), f.help);
            out.sample(&name, &[], f.value);
        }
    }
}

/// The families of [`GROUPED`] (those with a label value; the media drops come with [`media`]).
fn grouped(out: &mut Text, total: &Layers) {
    let all = layer_fields(total);
    for (family, help) in GROUP_HELP {
        out.family(family, "counter", help);
        for (layer, field, _, label, value) in GROUPED.iter().filter(|g| g.2 == *family) {
            let v = all
                .iter()
                .filter(|(l, _)| l == layer)
                .flat_map(|(_, fs)| fs.iter())
                .find(|f| f.name == *field)
                .map_or(0, |f| f.value);
            out.sample(family, &[(label, value)], v);
        }
    }
}

/// Ended calls by outcome; setup delay and duration histograms.
fn calls(out: &mut Text, total: &Layers) {
    let c = &total.observed.calls;
    out.by_label(
        "sbc_calls_ended_total",
        "Calls ended, by outcome for the caller: answered, cancelled, busy (486, 600), no_answer \
         (408, 480), rejected (other 4xx, 6xx), failed (5xx).",
        ("outcome", &CallOutcome::ALL.map(CallOutcome::as_str)),
        CallOutcome::ALL.map(|o| c.ended(o)),
    );
    let seconds = 1e6;
    out.histogram_family(
        "sbc_call_setup_ringing_seconds",
        "Time from the caller's INVITE to the first provisional response other than 100, of ended \
         calls that rang.",
    );
    out.histogram(
        "sbc_call_setup_ringing_seconds",
        &[],
        &SETUP_RINGING,
        seconds,
        &c.setup_ringing,
    );
    out.histogram_family(
        "sbc_call_setup_answer_seconds",
        "Time from the caller's INVITE to the answer (2xx), of ended calls that were answered.",
    );
    out.histogram(
        "sbc_call_setup_answer_seconds",
        &[],
        &SETUP_ANSWER,
        seconds,
        &c.setup_answer,
    );
    out.histogram_family(
        "sbc_call_duration_seconds",
        "Time from the answer to the end, of ended calls that were answered.",
    );
    out.histogram(
        "sbc_call_duration_seconds",
        &[],
        &DURATION,
        seconds,
        &c.duration,
    );
}

/// SIP messages by method and class, both ways.
fn sip(out: &mut Text, total: &Layers) {
    let t = &total.observed.sip;
    out.by_label(
        "sbc_sip_requests_received_total",
        "SIP requests received and parsed, by method.",
        ("method", &METHODS),
        t.requests_received,
    );
    let name = "sbc_sip_responses_received_total";
    out.family(
        name,
        "counter",
        "SIP responses received and parsed, by the method of their CSeq and class.",
    );
    for (m, row) in METHODS.iter().zip(&t.responses_received) {
        for (class, v) in CLASSES.iter().zip(row) {
            out.sample(name, &[("method", m), ("class", class)], v);
        }
    }
    out.by_label(
        "sbc_sip_requests_sent_total",
        "SIP requests sent (retransmissions included), by method.",
        ("method", &METHODS),
        t.requests_sent,
    );
    out.by_label(
        "sbc_sip_responses_sent_total",
        "SIP responses sent (relayed, local and stateless; retransmissions included), by class.",
        ("class", &CLASSES),
        t.responses_sent,
    );
}

/// Media drops by reason; per-leg quality of ended calls.
fn media(out: &mut Text, total: &Layers) {
    let o = &total.observed;
    out.by_label(
        "sbc_media_dropped_total",
        "Media datagrams the relay dropped, by reason: no stream owns the port (unknown_port), not \
         RTP or RTCP (malformed), not from the latched source (wrong_source), nowhere to send yet \
         (no_destination), refused by the stream's SRTP or codec stage (stage).",
        ("reason", &media_plane::DropReason::ALL.map(|r| r.as_str())),
        o.media_dropped,
    );
    let sides = ["caller", "callee"];
    let c = &o.calls;
    out.histogram_family(
        "sbc_media_mos",
        "Estimated MOS (simplified E-model, listening quality: no round trip) of what the SBC \
         received on each leg of ended calls, from its own loss and jitter figures.",
    );
    for (side, h) in sides.iter().zip(&c.mos) {
        out.histogram("sbc_media_mos", &[("side", side)], &MOS, 1e3, h);
    }
    out.histogram_family(
        "sbc_media_loss_ratio",
        "Share of RTP packets lost (sequence gaps, RFC 3550 A.3) on each leg of ended calls.",
    );
    for (side, h) in sides.iter().zip(&c.loss) {
        out.histogram("sbc_media_loss_ratio", &[("side", side)], &LOSS, 1e6, h);
    }
    out.histogram_family(
        "sbc_media_jitter_seconds",
        "Interarrival jitter (RFC 3550 A.8) at the end of each leg of ended calls.",
    );
    for (side, h) in sides.iter().zip(&c.jitter) {
        out.histogram(
            "sbc_media_jitter_seconds",
            &[("side", side)],
            &JITTER,
            1e6,
            h,
        );
    }
}

/// Each worker's event loop: busy and idle time, turn length, load.
fn work(out: &mut Text, workers: &[&WorkerSnapshot]) {
    let ids: Vec<String> = workers.iter().map(|w| w.worker.to_string()).collect();
    let each = || {
        workers
            .iter()
            .zip(&ids)
            .map(|(w, id)| (&w.layers.observed.work, id))
    };
    type Value = fn(&LoopStats) -> f64;
    let scalars: [(&str, &str, &str, Value); 3] = [
        (
            "sbc_worker_busy_seconds_total",
            "counter",
            "Time the worker's event loop spent handling what woke it (its rate is the load).",
            |w| w.busy_us as f64 / 1e6,
        ),
        (
            "sbc_worker_idle_seconds_total",
            "counter",
            "Time the worker's event loop spent waiting.",
            |w| w.idle_us as f64 / 1e6,
        ),
        (
            "sbc_worker_load_ratio",
            "gauge",
            "Busy share of the worker's event loop over its last publishing period (about 1 s).",
            |w| w.load_permille as f64 / 1e3,
        ),
    ];
    for (name, kind, help, value) in scalars {
        out.family(name, kind, help);
        for (w, id) in each() {
            out.sample(name, &[("worker", id)], value(w));
        }
    }
    let name = "sbc_worker_loop_seconds";
    out.histogram_family(
        name,
        "Length of one turn of the worker's event loop, from waking to waiting again.",
    );
    for (w, id) in each() {
        out.histogram(name, &[("worker", id)], &LOOP_TURN, 1e6, &w.turns);
    }
}

/// The text being written.
#[derive(Default)]
struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} ");
        for ch in help.chars() {
            match ch {
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        let _ = writeln!(self.0, "\n# TYPE {name} {kind}");
    }

    /// A counter family with one label: the sample of `values[i]` is `counts[i]`.
    fn by_label(
        &mut self,
        name: &str,
        help: &str,
        (label, values): (&str, &[&str]),
        counts: impl IntoIterator<Item = u64>,
    ) {
        self.family(name, "counter", help);
        for (v, n) in values.iter().zip(counts) {
            self.sample(name, &[(label, v)], n);
        }
    }

    fn histogram_family(&mut self, name: &str, help: &str) {
        self.family(name, "histogram", help);
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&dyn Display>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let mut first = true;
        for (k, v) in labels {
            if !first {
                self.0.push(',');
            }
            first = false;
            let _ = write!(self.0, "{k}=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        if let Some(le) = le {
            if !first {
                self.0.push(',');
            }
            let _ = write!(self.0, "le=\"{le}\"");
        }
        self.0.push('}');
    }

    /// The `_bucket` (cumulative), `_sum` and `_count` lines of histogram `h`, whose raw values
    /// are `scale` times the exported unit.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &Buckets,
        scale: f64,
        h: &Histogram,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, n) in bounds.0.iter().zip(h.counts) {
            cumulative = cumulative.saturating_add(n);
            let le = *bound as f64 / scale;
            self.0.push_str(&bucket);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.0, " {cumulative}");
        }
        let count = h.count();
        self.0.push_str(&bucket);
        self.labels(labels, Some(&"+Inf"));
        let _ = writeln!(self.0, " {count}");
        let _ = write!(self.0, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.sum as f64 / scale);
        let _ = write!(self.0, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {count}");
    }
}
