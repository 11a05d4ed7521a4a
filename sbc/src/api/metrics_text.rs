//! `/metrics`: the Prometheus text exposition (format 0.0.4) of the counters summed over the
//! workers, one family per field of each layer (`sbc_<name>_total` for counters, `sbc_<name>` for
//! gauges), with the field's doc as its help; no label, so the series are bounded by the fields.

use std::fmt::Write as _;

use crate::control::Layers;

/// What the exposition shows besides the layers.
pub(crate) struct Process {
    /// Workers started.
    pub(crate) workers: usize,
    /// Workers whose snapshot is recent.
    pub(crate) reporting: usize,
    /// Seconds since the start.
    pub(crate) uptime_secs: u64,
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The text of `/metrics` for the summed `layers`.
pub(crate) fn render_metrics(layers: &Layers, p: &Process) -> String {
    let mut out = String::with_capacity(16 * 1024);
    family(
        &mut out,
        "sbc_workers",
        "gauge",
        "Worker threads started.",
        p.workers as u64,
    );
    family(
        &mut out,
        "sbc_workers_reporting",
        "gauge",
        "Workers whose last snapshot is recent.",
        p.reporting as u64,
    );
    family(
        &mut out,
        "sbc_uptime_seconds",
        "gauge",
        "Seconds since the SBC started.",
        p.uptime_secs,
    );
    let fields = layers
        .transport
        .fields()
        .into_iter()
        .chain(layers.sip.fields())
        .chain(layers.b2bua.fields())
        .chain(layers.media.fields())
        .chain(layers.guard.fields())
        .chain(layers.rules.fields())
        .chain(layers.worker.fields());
    for f in fields {
        let (name, kind) = match f.kind {
            sbc_counters::Kind::Counter => (format!("sbc_{}_total", f.name), "counter"),
            sbc_counters::Kind::Gauge => (format!("sbc_{}", f.name), "gauge"),
        };
        family(&mut out, &name, kind, f.help.trim(), f.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_one_family_with_help_and_type() {
        let mut l = Layers::default();
        l.transport.udp_rx = 7;
        l.b2bua.live_calls = 2;
        let text = render_metrics(
            &l,
            &Process {
                workers: 2,
                reporting: 2,
                uptime_secs: 5,
            },
        );
        assert!(text.contains("# TYPE sbc_udp_rx_total counter\nsbc_udp_rx_total 7\n"));
        assert!(text.contains("# TYPE sbc_live_calls gauge\nsbc_live_calls 2\n"));
        let names: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "a metric name twice");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# HELP")).count(),
            names.len()
        );
    }
}
