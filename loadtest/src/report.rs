//! What a run reports: the summary (calls by outcome and failure reason, ASR, setup-delay
//! percentiles, RTP loss, jitter, one-way latency, MOS, achieved CPS) as one JSON line and file,
//! one CSV row per leg, and an HTML page with inline SVG plots (calls per second over time, setup
//! delay and MOS distributions).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::worker::{Row, ThreadResult};

/// The progress counters, sampled every 250 ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) attempted: u64,
    pub(crate) answered: u64,
    pub(crate) failed: u64,
    pub(crate) rtp_sent: u64,
    pub(crate) rtp_received: u64,
    /// CPU time of the process (user + system, all threads), seconds.
    pub(crate) cpu_s: f64,
}

/// The media rate over the busiest `MEDIA_WINDOW_S` seconds of a run, and what it cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct MediaWindow {
    pub(crate) from_s: f64,
    pub(crate) seconds: f64,
    /// RTP packets sent per second (both sides of every call).
    pub(crate) rtp_sent_pps: f64,
    pub(crate) rtp_received_pps: f64,
    /// Share of one core the whole process used (100 = one core).
    pub(crate) cpu_pct: f64,
    /// RTP packets sent plus received per CPU-second of the process.
    pub(crate) packets_per_core_s: f64,
}

const MEDIA_WINDOW_S: f64 = 5.0;

/// The window of `MEDIA_WINDOW_S` seconds with the most RTP sent, from the progress samples.
fn media_window(samples: &[Sample]) -> Option<MediaWindow> {
    let mut best: Option<MediaWindow> = None;
    for (i, a) in samples.iter().enumerate() {
        let Some(b) = samples[i..].iter().find(|b| b.t - a.t >= MEDIA_WINDOW_S) else {
            break;
        };
        let dt = b.t - a.t;
        let sent = (b.rtp_sent - a.rtp_sent) as f64;
        let recv = (b.rtp_received - a.rtp_received) as f64;
        let cpu = (b.cpu_s - a.cpu_s).max(1e-9);
        let w = MediaWindow {
            from_s: a.t,
            seconds: dt,
            rtp_sent_pps: sent / dt,
            rtp_received_pps: recv / dt,
            cpu_pct: cpu * 100.0 / dt,
            packets_per_core_s: (sent + recv) / cpu,
        };
        if sent > 0.0 && best.is_none_or(|x| w.rtp_sent_pps > x.rtp_sent_pps) {
            best = Some(w);
        }
    }
    best
}

/// CPU time (user + system) of this process so far, in seconds.
pub(crate) fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    count: u64,
}

/// The longest time the histograms hold, in microseconds: one hour.
const HIST_MAX_US: u64 = 3_600_000_000;

/// An empty histogram of microseconds, 1 µs to an hour at 3 significant digits: setup delays and
/// latencies.
pub(crate) fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid bounds")
}

/// A histogram in microseconds of values in milliseconds (None when there are none).
fn micros_hist(ms: impl Iterator<Item = f64>) -> Option<Histogram<u64>> {
    let mut h = micros_histogram();
    for v in ms {
        let _ = h.record((v * 1000.0).round().clamp(1.0, HIST_MAX_US as f64) as u64);
    }
    (!h.is_empty()).then_some(h)
}

fn pct(h: &Histogram<u64>) -> Percentiles {
    let ms = |v: u64| v as f64 / 1000.0;
    Percentiles {
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
        count: h.len(),
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) attempted: u64,
    pub(crate) answered: u64,
    pub(crate) failed: u64,
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) asr: f64,
    pub(crate) offered_cps: f64,
    pub(crate) achieved_cps: f64,
    pub(crate) setup_18x_ms: Percentiles,
    pub(crate) setup_200_ms: Percentiles,
    pub(crate) rtp_sent: u64,
    pub(crate) rtp_received: u64,
    pub(crate) rtp_lost: u64,
    pub(crate) rtp_loss_pct: f64,
    pub(crate) rtp_payload_mismatches: u64,
    /// RTP packets of another source than the leg's peer (not in received or lost).
    pub(crate) rtp_stray: u64,
    pub(crate) jitter_ms_mean: f64,
    /// One-way latency of the legs that measured one (half the RTCP round trip, RFC 3550 6.4.1);
    /// None when no leg did (a call shorter than its first report exchange, or no RTCP back).
    pub(crate) latency_ms: Option<Percentiles>,
    pub(crate) mos_mean: Option<f64>,
    pub(crate) mos_min: Option<f64>,
    pub(crate) uas_legs: u64,
    pub(crate) uas_failed: u64,
    pub(crate) duration_s: f64,
    /// CPU time of the whole process over the run (user + system), seconds.
    pub(crate) cpu_s: f64,
    /// The busiest 5 s of media (None when no RTP was sent).
    pub(crate) media_peak: Option<MediaWindow>,
    /// TLS connections the callers opened (handshake completed), and those that failed.
    pub(crate) tls_connections: u64,
    pub(crate) tls_failures: u64,
    /// Plain TCP connections the callers opened (connected), and those that failed.
    pub(crate) tcp_connections: u64,
    pub(crate) tcp_failures: u64,
    /// TCP/TLS connections (either side) closed for passing a buffer bound.
    pub(crate) conn_overflows: u64,
    /// Legs (either side) that sent and received SRTP, and SRTP/SRTCP packets refused.
    pub(crate) srtp_legs: u64,
    pub(crate) srtp_rejected: u64,
    /// SRTP packets that came before the peer's key with the leg's wait queue (16) full: dropped
    /// unread, so counted lost by the receiver, not refused.
    pub(crate) srtp_early_dropped: u64,
    #[serde(skip)]
    pub(crate) rows: Vec<Row>,
    #[serde(skip)]
    pub(crate) samples: Vec<Sample>,
    #[serde(skip)]
    setup_hist: Vec<(f64, f64)>,
}

pub(crate) fn summarise(
    results: Vec<ThreadResult>,
    samples: Vec<Sample>,
    cps: f64,
    duration_s: f64,
) -> Summary {
    let mut h18 = micros_histogram();
    let mut h200 = h18.clone();
    let mut rows = Vec::new();
    let (mut tls_connections, mut tls_failures, mut conn_overflows) = (0, 0, 0);
    let (mut srtp_legs, mut srtp_rejected, mut srtp_early_dropped) = (0, 0, 0);
    let mut starts: Option<(u64, u64)> = None;
    for r in results {
        if let Some((f, l)) = r.starts_ns {
            starts = Some(starts.map_or((f, l), |(a, b)| (a.min(f), b.max(l))));
        }
        tls_connections += r.conn_opened;
        tls_failures += r.conn_failures;
        conn_overflows += r.conn_overflows;
        srtp_legs += r.srtp_legs;
        srtp_rejected += r.srtp_rejected;
        srtp_early_dropped += r.srtp_early_dropped;
        let _ = h18.add(&r.setup_18x);
        let _ = h200.add(&r.setup_200);
        rows.extend(r.rows);
    }
    let uac: Vec<&Row> = rows.iter().filter(|r| r.role == "uac").collect();
    let uas: Vec<&Row> = rows.iter().filter(|r| r.role == "uas").collect();
    let mut failures = BTreeMap::new();
    for r in &uac {
        if let Some(f) = &r.failure {
            *failures.entry(f.clone()).or_insert(0) += 1;
        }
    }
    let answered = uac.iter().filter(|r| r.failure.is_none()).count() as u64;
    let attempted = uac.len() as u64;
    let sum = |f: fn(&Row) -> u64| rows.iter().map(f).sum::<u64>();
    let (sent, received, lost, expected) = (
        sum(|r| r.rtp_sent),
        sum(|r| r.rtp_received),
        sum(|r| r.rtp_lost),
        sum(|r| r.rtp_expected),
    );
    let moses: Vec<f64> = rows.iter().filter_map(|r| r.mos).collect();
    let latency = micros_hist(rows.iter().filter_map(Row::latency_ms));
    let with_media: Vec<&Row> = rows.iter().filter(|r| r.rtp_received > 0).collect();
    // Achieved CPS: calls started per second between the first and the last start (the samples'
    // 250 ms grain when the start times are not known).
    let first = samples
        .iter()
        .find(|s| s.attempted > 0)
        .map_or(0.0, |s| s.t);
    let last = samples
        .iter()
        .find(|s| s.attempted >= attempted)
        .map_or(duration_s, |s| s.t);
    let achieved = if let Some((f, l)) = starts.filter(|(f, l)| attempted > 1 && l > f) {
        // From the start times themselves.
        (attempted - 1) as f64 * 1e9 / (l - f) as f64
    } else if attempted > 1 && last > first {
        (attempted - 1) as f64 / (last - first).max(0.25)
    } else {
        attempted as f64
    };
    let setup_hist = h200
        .iter_quantiles(1)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect();
    Summary {
        attempted,
        answered,
        failed: attempted - answered,
        failures,
        asr: if attempted > 0 {
            answered as f64 / attempted as f64
        } else {
            0.0
        },
        offered_cps: cps,
        achieved_cps: achieved,
        setup_18x_ms: pct(&h18),
        setup_200_ms: pct(&h200),
        rtp_sent: sent,
        rtp_received: received,
        rtp_lost: lost,
        rtp_loss_pct: if expected > 0 {
            lost as f64 * 100.0 / expected as f64
        } else {
            0.0
        },
        rtp_payload_mismatches: sum(|r| r.mismatched),
        rtp_stray: sum(|r| r.rtp_stray),
        jitter_ms_mean: if with_media.is_empty() {
            0.0
        } else {
            with_media.iter().map(|r| r.jitter_ms).sum::<f64>() / with_media.len() as f64
        },
        latency_ms: latency.as_ref().map(pct),
        mos_mean: (!moses.is_empty()).then(|| moses.iter().sum::<f64>() / moses.len() as f64),
        mos_min: moses.iter().copied().reduce(f64::min),
        uas_legs: uas.len() as u64,
        uas_failed: uas.iter().filter(|r| r.failure.is_some()).count() as u64,
        duration_s,
        cpu_s: process_cpu_s(),
        media_peak: media_window(&samples),
        tls_connections,
        tls_failures,
        tcp_connections: 0,
        tcp_failures: 0,
        conn_overflows,
        srtp_legs,
        srtp_rejected,
        srtp_early_dropped,
        rows,
        samples,
        setup_hist,
    }
}

impl Summary {
    pub(crate) fn fail_ratio(&self) -> f64 {
        if self.attempted == 0 {
            return 0.0;
        }
        self.failed as f64 / self.attempted as f64
    }

    pub(crate) fn mean_mos(&self) -> Option<f64> {
        self.mos_mean
    }

    /// The 99th percentile of the legs' one-way latency, in milliseconds.
    pub(crate) fn latency_p99_ms(&self) -> Option<f64> {
        self.latency_ms.as_ref().map(|p| p.p99)
    }

    pub(crate) fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn csv(&self) -> String {
        let mut out = String::from(
            "role,index,call_id,result,setup_18x_ms,setup_200_ms,rtp_sent,rtp_received,rtp_expected,rtp_lost,jitter_ms,rtt_ms,latency_ms,mos,payload_mismatches,digits_ok\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{:.3},{},{},{},{},{}",
                r.role,
                r.index,
                r.call_id,
                r.failure.as_deref().unwrap_or("ok").replace(',', ";"),
                opt(r.t18x_ms),
                opt(r.t200_ms),
                r.rtp_sent,
                r.rtp_received,
                r.rtp_expected,
                r.rtp_lost,
                r.jitter_ms,
                opt(r.rtt_ms),
                opt(r.latency_ms()),
                opt(r.mos),
                r.mismatched,
                r.digits_ok.map_or(String::new(), |b| b.to_string()),
            );
        }
        out
    }

    /// Writes PREFIX.json, PREFIX.csv and PREFIX.html.
    pub(crate) fn write_files(&self, prefix: &Path, pcap: &str) -> Result<(), String> {
        let p = |ext: &str| prefix.with_extension(ext);
        let w = |path: std::path::PathBuf, s: String| {
            std::fs::write(&path, s).map_err(|e| format!("{}: {e}", path.display()))
        };
        w(
            p("json"),
            serde_json::to_string_pretty(self).unwrap_or_default(),
        )?;
        w(p("csv"), self.csv())?;
        w(p("html"), self.html(pcap))
    }

    pub(crate) fn html(&self, pcap: &str) -> String {
        let mut cps_pts = Vec::new();
        for w in self.samples.windows(4).step_by(4) {
            let (a, b) = (w[0], w[3]);
            let dt = (b.t - a.t).max(1e-3);
            cps_pts.push((b.t, (b.attempted - a.attempted) as f64 / dt));
        }
        let mos_bins: Vec<(f64, f64)> = (10..=45)
            .map(|m| {
                let lo = f64::from(m) / 10.0;
                let n = self
                    .rows
                    .iter()
                    .filter_map(|r| r.mos)
                    .filter(|x| (x - lo).abs() < 0.05)
                    .count();
                (lo, n as f64)
            })
            .collect();
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>loadtest report</title>\
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:right}}svg{{border:1px solid #ccc;margin:8px}}</style>\
</head><body>\n<h1>loadtest report</h1>\n<p>capture <code>{}</code></p>\n<table>\
<tr><th>attempted</th><td id=\"attempted\">{}</td></tr><tr><th>answered</th><td>{}</td></tr>\
<tr><th>failed</th><td>{}</td></tr><tr><th>ASR</th><td>{:.4}</td></tr>\
<tr><th>CPS offered / achieved</th><td>{:.1} / {:.1}</td></tr>\
<tr><th>setup to 18x p50/p99 (ms)</th><td>{:.2} / {:.2}</td></tr>\
<tr><th>setup to 200 p50/p99 (ms)</th><td>{:.2} / {:.2}</td></tr>\
<tr><th>RTP sent / received / lost</th><td>{} / {} / {} ({:.3} %)</td></tr>\
<tr><th>jitter mean (ms)</th><td>{:.2}</td></tr>\
<tr><th>one-way latency p50/p99 (ms)</th><td id=\"latency\">{}</td></tr><tr><th>MOS mean / min</th><td>{} / {}</td></tr></table>\n",
            esc(pcap),
            self.attempted,
            self.answered,
            self.failed,
            self.asr,
            self.offered_cps,
            self.achieved_cps,
            self.setup_18x_ms.p50,
            self.setup_18x_ms.p99,
            self.setup_200_ms.p50,
            self.setup_200_ms.p99,
            self.rtp_sent,
            self.rtp_received,
            self.rtp_lost,
            self.rtp_loss_pct,
            self.jitter_ms_mean,
            self.latency_ms
                .as_ref()
                .map_or("-".into(), |p| format!("{:.2} / {:.2}", p.p50, p.p99)),
            self.mos_mean.map_or("-".into(), |m| format!("{m:.2}")),
            self.mos_min.map_or("-".into(), |m| format!("{m:.1}")),
        );
        if !self.failures.is_empty() {
            out.push_str("<h2>failures</h2><table>");
            for (k, v) in &self.failures {
                let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
            }
            out.push_str("</table>\n");
        }
        out.push_str(&svg_plot(
            "cps",
            "calls per second over time (s)",
            &cps_pts,
            false,
        ));
        out.push_str(&svg_plot(
            "setup",
            "setup delay to 200 (ms) by percentile",
            &self
                .setup_hist
                .iter()
                .map(|(q, v)| (q * 100.0, *v))
                .collect::<Vec<_>>(),
            false,
        ));
        out.push_str(&svg_plot("mos", "MOS distribution (legs)", &mos_bins, true));
        out.push_str("\n</body></html>\n");
        out
    }
}

/// An inline SVG line or bar plot of `pts` with its axes' ranges written at the corners.
fn svg_plot(id: &str, title: &str, pts: &[(f64, f64)], bars: bool) -> String {
    let (w, h, m) = (600.0, 240.0, 40.0);
    let xmax = pts.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-9);
    let xmin = pts.iter().map(|p| p.0).fold(xmax, f64::min);
    let ymax = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9);
    let sx = |x: f64| m + (x - xmin) / (xmax - xmin).max(1e-9) * (w - 2.0 * m);
    let sy = |y: f64| h - m - y / ymax * (h - 2.0 * m);
    let mut s = format!(
        "<h2>{title}</h2>\n<svg id=\"plot-{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/><line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"#000\"/>\
<text x=\"{m}\" y=\"{}\" font-size=\"11\">{xmin:.1}</text><text x=\"{}\" y=\"{}\" font-size=\"11\">{xmax:.1}</text>\
<text x=\"2\" y=\"{}\" font-size=\"11\">{ymax:.1}</text>",
        h - m,
        w - m,
        h - m,
        h - m,
        h - m + 14.0,
        w - m - 30.0,
        h - m + 14.0,
        m + 4.0,
    );
    if bars {
        let bw = (w - 2.0 * m) / pts.len().max(1) as f64;
        for p in pts {
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#47a\"/>",
                sx(p.0) - bw / 2.0,
                sy(p.1),
                (bw - 1.0).max(1.0),
                (h - m - sy(p.1)).max(0.0)
            );
        }
    } else {
        let line: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"line\" fill=\"none\" stroke=\"#47a\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}
