//! `rtpload`: the media load generator and sink. It drives N calls through a relay, two G.711
//! streams per call (one per leg, 20 ms, 172-byte RTP packets), each leg endpoint with its own UDP
//! socket, and measures what comes back: loss, duplicates, reordering, one-way latency
//! (p50/p90/p99/p99.9/max), the largest gap between two arrivals of one stream, what the generator
//! really offered, its own CPU and the relay's.
//!
//! The relay's ports come from one of two setup modes:
//! - `--fixed IP:BASE`: a relay with known ports (the bare forwarder): call i's leg A at BASE + 4i,
//!   leg B at BASE + 4i + 2;
//! - `--ng HOST:PORT`: the ng control protocol: per call `offer` with an SDP announcing endpoint A,
//!   `answer` with endpoint B, the relay's ports read from the returned SDPs, `delete` at the end.
//!
//! With `--srtp-leg b` endpoint B speaks SDES-SRTP (`AES_CM_128_HMAC_SHA1_80`): the offer asks the
//! relay for `transport-protocol: RTP/SAVP` toward leg B, B keeps the relay's first line of that
//! suite and answers `RTP/SAVP` with a key of its own; B's packets are protected with its key, and
//! what B receives is authenticated and decrypted with the relay's (a packet that fails is dropped,
//! so it counts as lost; `totals` counts them).
//!
//! Call i's endpoints are A = `--a-ip`:(`--ep-base` + 2i) and B = `--b-ip`:(`--ep-base` + 2i).
//!
//! A run is a ladder: the call counts of `--calls` in increasing order, one trial each (warm-up,
//! then a measurement window of `--step-s`), until a trial fails; then `--refine` bisection trials
//! between the last pass and the first failure. A trial passes when loss < `--max-loss-pct`,
//! p50 latency < `--max-p50-ms` and the generator sent ≥ `--min-offered-pct` of the packets due.
//! Calls are set up once and kept across trials. One JSON line per trial goes to stdout, then a
//! summary line; progress goes to stderr. A soak is a ladder of one step: `--calls N --step-s 60`.

#[path = "../rtpload/engine.rs"]
mod engine;
#[path = "../rtpload/ng.rs"]
mod ng;
#[path = "../rtpload/sys.rs"]
mod sys;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use mimalloc::MiMalloc;
use serde::Serialize;

use engine::{EndpointSrtp, Engine, EngineConfig, RxClock, Window};
use ng::{CallEndpoints, NgClient, RelayPorts};
use sys::{cpu_use, mono_ns, CpuSnap};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "\
usage: rtpload (--fixed IP:BASE | --ng HOST:PORT) [options]
       rtpload --ng HOST:PORT --ping
       rtpload --probe-s S   (this CPU's timer overshoot and stalls, one JSON line)
setup:
  --fixed IP:BASE       relay ports known: call i leg A at BASE+4i, leg B at BASE+4i+2
  --ng HOST:PORT        ng control: offer (endpoint A) / answer (endpoint B) / delete per call
  --a-ip IP             address of the A endpoints (127.0.0.2)
  --b-ip IP             address of the B endpoints (127.0.0.3)
  --ep-base PORT        call i's endpoints at a-ip/b-ip : PORT+2i (10000)
  --ng-timeout-ms MS    per-command retransmit timeout (1000); --ng-window N calls in flight (32)
  --ping                send an ng ping, exit 0 on pong
  --srtp-leg b          endpoint B speaks SDES-SRTP: offer asks transport-protocol RTP/SAVP for
                        leg B; B sends SRTP with its own key, checks what it receives (ng only)
load:
  --calls LIST          call counts, comma-separated, climbed in order (500,1000,...,5000)
  --refine K            bisection trials after the first failure (2)
  --step-s S            measurement window per trial (3)
  --warmup-s S          traffic before each window (1); --warmup-new-s S when calls were added
  --grace-ms MS         wait for the window's last packets after it ends (300)
  --drain-s S           pause after a failed trial so the relay's queues empty (2)
  --ptime-ms MS         packet time (20)
  --batch N             sends per io_uring submit (16); --tick-us US min time between bursts (100)
  --clock kernel|user   receive timestamps: kernel SO_TIMESTAMPNS (default) or at pickup
  --no-connect          leave endpoint sockets unconnected (accept media from any source)
  --max-runtime-s S     no new trial after this (1200)
report:
  --label NAME          device name in the output (relay)
  --mode NAME           ladder (default) or soak, copied to the output
  --relay-pid PID       the relay's CPU from /proc/PID/stat over each window
  --relay-tid TID       also one thread of it (its relay worker), from /proc/PID/task/TID/stat
  --max-loss-pct P      pass rule (0.1); --max-p50-ms MS (5); --min-offered-pct P (98)
  --max-other-cpu-pct P a failing step during which other processes used more than P % of a core
                        is run again (15), at most --retries N times (2), after --retry-wait-s S (20)";

enum Setup {
    Fixed(SocketAddrV4),
    Ng(SocketAddr),
}

struct Config {
    setup: Setup,
    ping: bool,
    probe_s: Option<f64>,
    a_ip: Ipv4Addr,
    b_ip: Ipv4Addr,
    ep_base: u16,
    ng_timeout: Duration,
    ng_window: usize,
    srtp_b: bool,
    calls: Vec<usize>,
    refine: u32,
    step_ns: u64,
    warmup_ns: u64,
    warmup_new_ns: u64,
    grace_ns: u64,
    drain_ns: u64,
    ptime_ns: u64,
    batch: usize,
    tick_ns: u64,
    clock: RxClock,
    connect: bool,
    max_runtime_ns: u64,
    label: String,
    mode: String,
    relay_pid: Option<i32>,
    relay_tid: Option<i32>,
    max_loss_pct: f64,
    max_p50_ms: f64,
    min_offered_pct: f64,
    max_other_cpu_pct: f64,
    retries: u32,
    retry_wait_ns: u64,
}

fn secs_ns(flag: &str, v: &str) -> Result<u64, String> {
    let s: f64 = v.parse().map_err(|e| format!("{flag} {v}: {e}"))?;
    if !(0.0..=86_400.0).contains(&s) {
        return Err(format!("{flag} {v}: out of range"));
    }
    Ok((s * 1e9) as u64)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v}: {e}"))
}

fn parse_args() -> Result<Config, String> {
    let mut c = Config {
        setup: Setup::Fixed(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        ping: false,
        probe_s: None,
        a_ip: Ipv4Addr::new(127, 0, 0, 2),
        b_ip: Ipv4Addr::new(127, 0, 0, 3),
        ep_base: 10_000,
        ng_timeout: Duration::from_millis(1000),
        ng_window: 32,
        srtp_b: false,
        calls: (1..=10).map(|k| 500 * k).collect(),
        refine: 2,
        step_ns: 3_000_000_000,
        warmup_ns: 1_000_000_000,
        warmup_new_ns: 0,
        grace_ns: 300_000_000,
        drain_ns: 2_000_000_000,
        ptime_ns: 20_000_000,
        batch: 16,
        tick_ns: 100_000,
        clock: RxClock::Kernel,
        connect: true,
        max_runtime_ns: 1_200_000_000_000,
        label: "relay".into(),
        mode: "ladder".into(),
        relay_pid: None,
        relay_tid: None,
        max_loss_pct: 0.1,
        max_p50_ms: 5.0,
        min_offered_pct: 98.0,
        max_other_cpu_pct: 15.0,
        retries: 2,
        retry_wait_ns: 20_000_000_000,
    };
    let mut setup = None;
    let mut warmup_new = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--ping" => {
                c.ping = true;
                continue;
            }
            "--no-connect" => {
                c.connect = false;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--fixed" => setup = Some(Setup::Fixed(num(&flag, &v)?)),
            "--ng" => {
                let addr = v
                    .to_socket_addrs()
                    .map_err(|e| format!("--ng {v}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--ng {v}: no address"))?;
                setup = Some(Setup::Ng(addr));
            }
            "--probe-s" => c.probe_s = Some(num(&flag, &v)?),
            "--a-ip" => c.a_ip = num(&flag, &v)?,
            "--b-ip" => c.b_ip = num(&flag, &v)?,
            "--ep-base" => c.ep_base = num(&flag, &v)?,
            "--ng-timeout-ms" => c.ng_timeout = Duration::from_millis(num(&flag, &v)?),
            "--ng-window" => c.ng_window = num(&flag, &v)?,
            "--srtp-leg" => match v.as_str() {
                "b" | "B" => c.srtp_b = true,
                "none" => c.srtp_b = false,
                _ => return Err(format!("--srtp-leg {v}: b or none")),
            },
            "--calls" => {
                c.calls = v
                    .split(',')
                    .filter(|x| !x.trim().is_empty())
                    .map(|x| num::<usize>(&flag, x.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--refine" => c.refine = num(&flag, &v)?,
            "--step-s" => c.step_ns = secs_ns(&flag, &v)?,
            "--warmup-s" => c.warmup_ns = secs_ns(&flag, &v)?,
            "--warmup-new-s" => warmup_new = Some(secs_ns(&flag, &v)?),
            "--grace-ms" => c.grace_ns = num::<u64>(&flag, &v)? * 1_000_000,
            "--drain-s" => c.drain_ns = secs_ns(&flag, &v)?,
            "--ptime-ms" => c.ptime_ns = num::<u64>(&flag, &v)? * 1_000_000,
            "--batch" => c.batch = num(&flag, &v)?,
            "--tick-us" => c.tick_ns = num::<u64>(&flag, &v)? * 1_000,
            "--clock" => {
                c.clock = match v.as_str() {
                    "kernel" => RxClock::Kernel,
                    "user" => RxClock::User,
                    _ => return Err(format!("--clock {v}: kernel or user")),
                }
            }
            "--max-runtime-s" => c.max_runtime_ns = secs_ns(&flag, &v)?,
            "--label" => c.label = v,
            "--mode" => c.mode = v,
            "--relay-pid" => c.relay_pid = Some(num(&flag, &v)?),
            "--relay-tid" => c.relay_tid = Some(num(&flag, &v)?),
            "--max-loss-pct" => c.max_loss_pct = num(&flag, &v)?,
            "--max-p50-ms" => c.max_p50_ms = num(&flag, &v)?,
            "--min-offered-pct" => c.min_offered_pct = num(&flag, &v)?,
            "--max-other-cpu-pct" => c.max_other_cpu_pct = num(&flag, &v)?,
            "--retries" => c.retries = num(&flag, &v)?,
            "--retry-wait-s" => c.retry_wait_ns = secs_ns(&flag, &v)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if let Some(s) = c.probe_s {
        if !(s > 0.0 && s <= 60.0) {
            return Err(format!("--probe-s {s}: want 0 < seconds <= 60"));
        }
        return Ok(c);
    }
    c.setup = setup.ok_or_else(|| format!("--fixed or --ng is required\n{USAGE}"))?;
    c.warmup_new_ns = warmup_new.unwrap_or(c.warmup_ns);
    if c.srtp_b && matches!(c.setup, Setup::Fixed(_)) {
        return Err("--srtp-leg needs --ng (the keys come from the SDPs)".into());
    }
    c.calls.sort_unstable();
    c.calls.dedup();
    c.calls.retain(|&n| n > 0);
    if c.calls.is_empty() && !c.ping {
        return Err("--calls: no call count".into());
    }
    if c.batch == 0 || c.ptime_ns == 0 || c.step_ns == 0 {
        return Err("--batch, --ptime-ms and --step-s must be positive".into());
    }
    let max_calls = c.calls.last().copied().unwrap_or(0);
    if usize::from(c.ep_base) + 2 * max_calls > 65_535 {
        return Err(format!(
            "--ep-base {}: {max_calls} calls need endpoint ports up to {}",
            c.ep_base,
            usize::from(c.ep_base) + 2 * max_calls
        ));
    }
    if let Setup::Fixed(base) = c.setup {
        if usize::from(base.port()) + 4 * max_calls > 65_535 {
            return Err(format!(
                "--fixed {base}: {max_calls} calls need relay ports past 65535"
            ));
        }
    }
    Ok(c)
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    samples: u64,
}

/// One trial, as printed (one JSON line).
#[derive(Serialize)]
struct Trial {
    device: String,
    mode: String,
    trial: u32,
    calls: usize,
    streams: usize,
    target_pps: f64,
    window_s: f64,
    scheduled: u64,
    sent: u64,
    offered_pct: f64,
    offered_pps: f64,
    received: u64,
    relayed_pps: f64,
    lost: u64,
    loss_pct: f64,
    duplicates: u64,
    reordered: u64,
    silent_streams: u64,
    send_errors: u64,
    skipped: u64,
    latency_us: Option<Latency>,
    /// Largest time between two arrivals of one stream inside the window.
    max_gap_ms: f64,
    /// How far that gap exceeds the packet time.
    max_stall_ms: f64,
    /// Largest amount by which an arrival gap exceeded the send gap of the same two packets: the
    /// stall the relay caused, the generator's own send delays taken out.
    max_relay_stall_ms: f64,
    max_send_lag_ms: f64,
    gen_cpu_pct: f64,
    relay_cpu_pct: Option<f64>,
    relay_pps_per_core: Option<f64>,
    /// CPU of the thread given by `--relay-tid` (percent of one core), and relayed pps per
    /// core-second of that thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_thread_cpu_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_pps_per_thread_core: Option<f64>,
    box_busy_pct: Option<f64>,
    steal_pct: Option<f64>,
    /// CPU used by other processes during the window (percent of one core).
    other_cpu_pct: Option<f64>,
    /// Other processes used more than `--max-other-cpu-pct` during the window.
    disturbed: bool,
    /// This failing, disturbed trial does not count: the same step was run again.
    retried: bool,
    pass: bool,
    fail: Vec<String>,
    /// What limited the trial when it failed: relay, generator, generator+relay (both cores
    /// saturated) or setup.
    limited_by: Option<&'static str>,
}

#[derive(Serialize)]
struct Summary {
    summary: bool,
    device: String,
    mode: String,
    trials: u32,
    max_calls: Option<usize>,
    max_relayed_pps: Option<f64>,
    /// What stopped the ladder: relay, generator, generator+relay, setup, or "none".
    limited_by: &'static str,
    first_failure: Option<usize>,
    run_s: f64,
    totals: String,
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rtpload: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtpload: {e}");
            ExitCode::from(1)
        }
    }
}

fn emit<T: Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(line) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        Err(e) => eprintln!("rtpload: json: {e}"),
    }
}

struct Run<'a> {
    cfg: &'a Config,
    engine: Engine,
    ng: Option<NgClient>,
    run_id: u32,
    /// Calls whose streams exist in the engine.
    calls_up: usize,
    /// Calls sent to the relay (deleted at the end), set up or not.
    calls_tried: usize,
    setup_error: Option<String>,
    trials: u32,
    drain_next: bool,
}

fn endpoints(cfg: &Config, i: usize) -> CallEndpoints {
    // In range: checked against the largest call count in `parse_args`.
    let port = cfg.ep_base + 2 * i as u16;
    CallEndpoints {
        index: i,
        a: SocketAddrV4::new(cfg.a_ip, port),
        b: SocketAddrV4::new(cfg.b_ip, port),
    }
}

impl Run<'_> {
    fn call_id(run_id: u32) -> impl Fn(usize) -> String {
        move |i| format!("rtpload-{run_id:08x}-{i}")
    }

    /// Makes `n` calls exist (setting up the missing ones); false if the relay refused some.
    fn ensure_calls(&mut self, n: usize) -> Result<bool, String> {
        if n <= self.calls_up {
            return Ok(true);
        }
        if self.setup_error.is_some() {
            return Ok(false);
        }
        let new: Vec<CallEndpoints> = (self.calls_up..n).map(|i| endpoints(self.cfg, i)).collect();
        let t0 = mono_ns();
        let (ports, err): (Vec<RelayPorts>, Option<String>) = match (&self.cfg.setup, &mut self.ng)
        {
            (Setup::Fixed(base), _) => (
                new.iter()
                    .map(|c| RelayPorts {
                        for_a: SocketAddrV4::new(*base.ip(), base.port() + 4 * c.index as u16),
                        for_b: SocketAddrV4::new(*base.ip(), base.port() + 4 * c.index as u16 + 2),
                        srtp_b: None,
                    })
                    .collect(),
                None,
            ),
            (Setup::Ng(_), Some(ng)) => {
                self.calls_tried = n;
                ng.setup(&new, &Self::call_id(self.run_id))
            }
            (Setup::Ng(_), None) => return Err("ng client missing".into()),
        };
        for (c, p) in new.iter().zip(&ports) {
            self.engine.add_stream(c.a, p.for_a, None)?;
            let srtp = p.srtp_b.as_ref().map(|k| EndpointSrtp {
                own: &k.own,
                relay: &k.relay,
            });
            self.engine.add_stream(c.b, p.for_b, srtp)?;
            self.calls_up += 1;
        }
        eprintln!(
            "rtpload: {}: {} calls set up in {:.2} s{}",
            self.cfg.label,
            ports.len(),
            (mono_ns() - t0) as f64 / 1e9,
            err.as_deref()
                .map(|e| format!(" (stopped: {e})"))
                .unwrap_or_default()
        );
        if let Some(e) = err {
            self.setup_error = Some(e);
            return Ok(false);
        }
        Ok(true)
    }

    /// A trial that failed while other processes took more than `--max-other-cpu-pct` of a core is
    /// printed (marked `disturbed`, not counted) and run again after a pause, `--retries` times.
    fn trial_undisturbed(&mut self, calls: usize) -> Result<Trial, String> {
        let mut attempt = 0;
        loop {
            let mut t = self.trial(calls)?;
            let disturbed = t.other_cpu_pct.unwrap_or(0.0) > self.cfg.max_other_cpu_pct;
            if t.pass || !disturbed || attempt >= self.cfg.retries {
                t.disturbed = disturbed;
                return Ok(t);
            }
            attempt += 1;
            t.disturbed = true;
            t.retried = true;
            progress(&t);
            emit(&t);
            eprintln!(
                "rtpload: {}: other processes used {:.0}% of a core: step run again in {:.0} s",
                self.cfg.label,
                t.other_cpu_pct.unwrap_or(0.0),
                self.cfg.retry_wait_ns as f64 / 1e9
            );
            self.engine.set_active(0);
            self.engine.run_until(mono_ns() + self.cfg.retry_wait_ns)?;
        }
    }

    fn trial(&mut self, calls: usize) -> Result<Trial, String> {
        self.trials += 1;
        let cfg = self.cfg;
        let had = self.calls_up;
        let ok = self.ensure_calls(calls)?;
        let streams = 2 * calls;
        let target_pps = streams as f64 * 1e9 / cfg.ptime_ns as f64;
        if !ok {
            let reason = format!(
                "setup: relay took {} of {calls} calls: {}",
                self.calls_up,
                self.setup_error.as_deref().unwrap_or("")
            );
            return Ok(setup_failed(cfg, self.trials, calls, target_pps, reason));
        }
        if let Some(pid) = cfg.relay_pid {
            if !sys::alive(pid) {
                return Err(format!("relay pid {pid} is gone"));
            }
        }
        if self.drain_next {
            self.engine.set_active(0);
            self.engine.run_until(mono_ns() + cfg.drain_ns)?;
        }
        self.engine.set_active(streams);
        let warm = if calls > had {
            cfg.warmup_new_ns
        } else {
            cfg.warmup_ns
        };
        self.engine.run_until(mono_ns() + warm)?;
        let s0 = CpuSnap::take(cfg.relay_pid, cfg.relay_tid);
        self.engine.begin_window(self.trials);
        self.engine.run_until(mono_ns() + cfg.step_ns)?;
        self.engine.end_window();
        let s1 = CpuSnap::take(cfg.relay_pid, cfg.relay_tid);
        self.engine.run_until(mono_ns() + cfg.grace_ns)?;
        let w = self.engine.take_window();
        let t = judge(cfg, self.trials, calls, target_pps, &w, &s0, &s1);
        // An overloaded relay keeps a backlog in its sockets: let it empty before the next trial.
        self.drain_next = !t.pass;
        Ok(t)
    }
}

fn setup_failed(cfg: &Config, trial: u32, calls: usize, target_pps: f64, reason: String) -> Trial {
    Trial {
        device: cfg.label.clone(),
        mode: cfg.mode.clone(),
        trial,
        calls,
        streams: 2 * calls,
        target_pps,
        window_s: 0.0,
        scheduled: 0,
        sent: 0,
        offered_pct: 0.0,
        offered_pps: 0.0,
        received: 0,
        relayed_pps: 0.0,
        lost: 0,
        loss_pct: 0.0,
        duplicates: 0,
        reordered: 0,
        silent_streams: 0,
        send_errors: 0,
        skipped: 0,
        latency_us: None,
        max_gap_ms: 0.0,
        max_stall_ms: 0.0,
        max_relay_stall_ms: 0.0,
        max_send_lag_ms: 0.0,
        gen_cpu_pct: 0.0,
        relay_cpu_pct: None,
        relay_pps_per_core: None,
        relay_thread_cpu_pct: None,
        relay_pps_per_thread_core: None,
        box_busy_pct: None,
        steal_pct: None,
        other_cpu_pct: None,
        disturbed: false,
        retried: false,
        pass: false,
        fail: vec![reason],
        limited_by: Some("setup"),
    }
}

/// CPU share at which a core counts as saturated when a step fails.
const SATURATED_PCT: f64 = 95.0;

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn judge(
    cfg: &Config,
    trial: u32,
    calls: usize,
    target_pps: f64,
    w: &Window,
    s0: &CpuSnap,
    s1: &CpuSnap,
) -> Trial {
    let secs = (w.end_mono.saturating_sub(w.start_mono)).max(1) as f64 / 1e9;
    let cpu = cpu_use(s0, s1);
    let lost = w.sent.saturating_sub(w.received);
    let loss_pct = if w.sent > 0 {
        100.0 * lost as f64 / w.sent as f64
    } else {
        100.0
    };
    let offered_pct = if w.scheduled > 0 {
        100.0 * w.sent as f64 / w.scheduled as f64
    } else {
        0.0
    };
    let relayed_pps = w.received as f64 / secs;
    let h = &w.latency;
    let us = |ns: u64| round(ns as f64 / 1e3, 1);
    let latency = (!h.is_empty()).then(|| Latency {
        p50: us(h.value_at_quantile(0.5)),
        p90: us(h.value_at_quantile(0.9)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
        samples: h.len(),
    });
    let mut fail = Vec::new();
    let mut limited_by = None;
    if offered_pct < cfg.min_offered_pct {
        fail.push(format!(
            "offered {offered_pct:.1}% < {}%",
            cfg.min_offered_pct
        ));
        limited_by = Some("generator");
    }
    if loss_pct >= cfg.max_loss_pct {
        fail.push(format!("loss {loss_pct:.3}% >= {}%", cfg.max_loss_pct));
    }
    let p50_ms = latency.as_ref().map_or(f64::INFINITY, |l| l.p50 / 1e3);
    if p50_ms >= cfg.max_p50_ms {
        fail.push(format!("p50 {p50_ms:.2} ms >= {} ms", cfg.max_p50_ms));
    }
    if limited_by.is_none() && !fail.is_empty() {
        // Loss or a queue in the relay's sockets; whose core ran out decides who limited it.
        let saturated = |pct: f64| pct >= SATURATED_PCT;
        let relay_full = cpu.relay_pct.is_none_or(saturated);
        limited_by = Some(match (saturated(cpu.own_pct), relay_full) {
            (true, true) => "generator+relay",
            (true, false) => "generator",
            _ => "relay",
        });
    }
    let gap_ms = w.max_gap_ns as f64 / 1e6;
    Trial {
        device: cfg.label.clone(),
        mode: cfg.mode.clone(),
        trial,
        calls,
        streams: 2 * calls,
        target_pps,
        window_s: round(secs, 3),
        scheduled: w.scheduled,
        sent: w.sent,
        offered_pct: round(offered_pct, 2),
        offered_pps: round(w.sent as f64 / secs, 0),
        received: w.received,
        relayed_pps: round(relayed_pps, 0),
        lost,
        loss_pct: round(loss_pct, 4),
        duplicates: w.duplicates,
        reordered: w.reordered,
        silent_streams: w.silent_streams,
        send_errors: w.send_errors,
        skipped: w.skipped,
        latency_us: latency,
        max_gap_ms: round(gap_ms, 3),
        max_stall_ms: round((gap_ms - cfg.ptime_ns as f64 / 1e6).max(0.0), 3),
        max_relay_stall_ms: round(w.max_relay_gap_ns as f64 / 1e6, 3),
        max_send_lag_ms: round(w.max_send_lag_ns as f64 / 1e6, 3),
        gen_cpu_pct: round(cpu.own_pct, 1),
        relay_cpu_pct: cpu.relay_pct.map(|x| round(x, 1)),
        relay_pps_per_core: cpu
            .relay_pct
            .filter(|&p| p > 0.5)
            .map(|p| round(relayed_pps * 100.0 / p, 0)),
        relay_thread_cpu_pct: cpu.thread_pct.map(|x| round(x, 1)),
        relay_pps_per_thread_core: cpu
            .thread_pct
            .filter(|&p| p > 0.5)
            .map(|p| round(relayed_pps * 100.0 / p, 0)),
        box_busy_pct: cpu.box_busy_pct.map(|x| round(x, 1)),
        steal_pct: cpu.steal_pct.map(|x| round(x, 2)),
        other_cpu_pct: cpu.other_pct.map(|x| round(x, 1)),
        disturbed: false,
        retried: false,
        pass: fail.is_empty(),
        fail,
        limited_by,
    }
}

fn progress(t: &Trial) {
    let l = t.latency_us.as_ref();
    eprintln!(
        "rtpload: {} #{} {} calls: offered {:.1}% relayed {:.0} pps loss {:.3}% p50 {:.0} µs \
         p99 {:.0} µs p99.9 {:.0} µs gap {:.1} ms, cpu gen {:.0}% relay {} -> {}",
        t.device,
        t.trial,
        t.calls,
        t.offered_pct,
        t.relayed_pps,
        t.loss_pct,
        l.map_or(f64::NAN, |l| l.p50),
        l.map_or(f64::NAN, |l| l.p99),
        l.map_or(f64::NAN, |l| l.p999),
        t.max_gap_ms,
        t.gen_cpu_pct,
        t.relay_cpu_pct.map_or("?".into(), |x| format!("{x:.0}%")),
        if t.pass {
            "pass".to_string()
        } else {
            format!("FAIL ({})", t.fail.join("; "))
        }
    );
}

fn run(cfg: &Config) -> Result<ExitCode, String> {
    if let Some(s) = cfg.probe_s {
        emit(&sys::probe(s));
        return Ok(ExitCode::SUCCESS);
    }
    let started = mono_ns();
    let mut ng = match cfg.setup {
        Setup::Ng(addr) => Some(NgClient::new(
            addr,
            cfg.ng_timeout,
            cfg.ng_window,
            cfg.srtp_b,
        )?),
        Setup::Fixed(_) => None,
    };
    if cfg.ping {
        let Some(client) = ng.as_mut() else {
            return Err("--ping needs --ng".into());
        };
        return match client.ping() {
            Ok(()) => {
                println!("pong");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rtpload: {e}");
                Ok(ExitCode::from(1))
            }
        };
    }
    if let Some(client) = ng.as_mut() {
        client.ping()?;
    }
    let run_id = (sys::real_ns() as u32) ^ std::process::id().rotate_left(16);
    let engine = Engine::new(EngineConfig {
        ptime_ns: cfg.ptime_ns,
        batch: cfg.batch,
        tick_ns: cfg.tick_ns,
        rx_clock: cfg.clock,
        run_id,
        connect: cfg.connect,
    })?;
    let mut r = Run {
        cfg,
        engine,
        ng,
        run_id,
        calls_up: 0,
        calls_tried: 0,
        setup_error: None,
        trials: 0,
        drain_next: false,
    };
    let result = ladder(&mut r, started);
    // Leave the relay as it was: delete every call offered to it, even after an error.
    if let (Some(client), true) = (r.ng.as_mut(), r.calls_tried > 0) {
        let calls: Vec<CallEndpoints> = (0..r.calls_tried).map(|i| endpoints(cfg, i)).collect();
        if let Err(e) = client.delete(&calls, &Run::call_id(run_id)) {
            eprintln!("rtpload: delete: {e}");
        }
    }
    result
}

fn ladder(r: &mut Run<'_>, started: u64) -> Result<ExitCode, String> {
    let cfg = r.cfg;
    let mut best: Option<(usize, f64)> = None;
    let mut first_fail: Option<(usize, &'static str)> = None;
    let over_budget = || mono_ns().saturating_sub(started) > cfg.max_runtime_ns;
    let record =
        |t: Trial, best: &mut Option<(usize, f64)>, fail: &mut Option<(usize, &'static str)>| {
            progress(&t);
            emit(&t);
            if t.pass {
                if best.is_none_or(|(n, _)| t.calls > n) {
                    *best = Some((t.calls, t.relayed_pps));
                }
            } else if fail.is_none_or(|(n, _)| t.calls < n) {
                *fail = Some((t.calls, t.limited_by.unwrap_or("relay")));
            }
        };
    for &n in &cfg.calls {
        if over_budget() {
            eprintln!("rtpload: run time budget spent, ladder stopped");
            break;
        }
        let t = r.trial_undisturbed(n)?;
        let pass = t.pass;
        record(t, &mut best, &mut first_fail);
        if !pass {
            break;
        }
    }
    for _ in 0..cfg.refine {
        let Some((hi, _)) = first_fail else { break };
        let lo = best.map_or(0, |(n, _)| n);
        let step = (hi / 50).max(10);
        let mid = (lo + hi) / 2 / 10 * 10;
        if hi <= lo + step || mid <= lo || mid >= hi || over_budget() {
            break;
        }
        let t = r.trial_undisturbed(mid)?;
        record(t, &mut best, &mut first_fail);
    }
    let totals = r.engine.totals();
    emit(&Summary {
        summary: true,
        device: cfg.label.clone(),
        mode: cfg.mode.clone(),
        trials: r.trials,
        max_calls: best.map(|(n, _)| n),
        max_relayed_pps: best.map(|(_, p)| p),
        limited_by: first_fail.map_or("none", |(_, why)| why),
        first_failure: first_fail.map(|(n, _)| n),
        run_s: round((mono_ns() - started) as f64 / 1e9, 1),
        totals: format!("{totals:?}"),
    });
    Ok(ExitCode::SUCCESS)
}
