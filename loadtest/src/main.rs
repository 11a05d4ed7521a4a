//! `loadtest`: replays a recorded call from a capture (`pcaps/`) against a SIP target as many
//! concurrent calls: its own UAC, and its own UAS when `--uas` is given (UAC only against a real
//! PBX or SBC that routes elsewhere). Thread per core, bounded, stops by itself; it measures
//! answered/failed calls by reason, setup delay from the scheduled send time, RTP loss, jitter and
//! MOS, and writes JSON, CSV and an HTML report. Exit code 1 when a threshold is missed.

mod capture;
mod media;
mod report;
mod sipmsg;
mod template;
mod wheel;
mod worker;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use sbc_core::registration::digest::Algorithm;

use report::{Sample, Summary};
use template::Template;
use worker::{Config, Shared};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "\
usage: loadtest --pcap FILE [--target IP:PORT] [options]
       loadtest --pcap FILE --show          (print the call template)
call:
  --pcap FILE          the recorded call to replay
  --target IP:PORT     where the UAC sends (default: the --uas address)
  --uas IP:PORT        also answer as the recording's callee on this address
  --uac-only / --uas-only
  --local-ip IP        the UAC's SIP and media address (127.46.0.1)
  --sip-port N         the UAC's first SIP port, one per thread (15060)
  --media-port N       first media port (20000); --media-ports N per thread (8000)
load:
  --calls N            total calls (10); --cps R calls per second (10); --poisson
  --ramp S             rise to --cps over S seconds (0)
  --max-concurrent N   calls at once (10000); --hold S call length from the answer to the BYE
  --threads N          threads (the number of cores); --timeout S per expected message (32)
  --transport udp|tcp|tls  SIP over UDP (default), TCP or TLS; one connection per call over
                       TCP and TLS
  --tls-ca FILE        PEM certificates the caller trusts (default: the own callee's certificate)
  --tls-name NAME      the server name the caller asks for and the callee's certificate holds
                       (loadtest.invalid)
  --srtp sdes          send the capture as SDES-SRTP: the caller offers RTP/SAVP with a fresh
                       AES_CM_128_HMAC_SHA1_80 key, the callee answers an SRTP offer with its own
  --password PW        compute digest answers (caller) and check them (callee) with this
                       password instead of replaying the recorded ones
  --uas-password PW    the password the callee checks (default: --password)
  --user NAME          the digest username (default: the recorded credentials' username)
  --digest-alg A       the callee's challenge algorithm: MD5 (default), SHA-256, ...
  --allow-remote       allow a target outside loopback (without it, only loopback, or any
                       address from inside a network namespace named sbc-*)
report:
  --out PREFIX         write PREFIX.json, PREFIX.csv, PREFIX.html
  --max-fail-ratio R   exit 1 when failed/attempted > R (0)
  --min-mos M          exit 1 when the mean MOS < M (0)
  --max-latency-ms MS  exit 1 when the legs' p99 one-way latency (RTCP round trip / 2) > MS
  --search             RFC 7502: highest CPS with no failure (trials of --calls calls)
  --search-max R       the highest rate the search tries (100000)";

#[derive(Clone)]
struct Args {
    pcap: PathBuf,
    show: bool,
    target: Option<SocketAddr>,
    uas: Option<SocketAddr>,
    uac_only: bool,
    uas_only: bool,
    local_ip: IpAddr,
    sip_port: u16,
    media_port: u16,
    media_ports: u16,
    calls: u64,
    cps: f64,
    poisson: bool,
    ramp: f64,
    max_concurrent: u64,
    hold: Option<Duration>,
    threads: usize,
    timeout: Duration,
    allow_remote: bool,
    out: Option<PathBuf>,
    max_fail_ratio: f64,
    min_mos: f64,
    max_latency_ms: Option<f64>,
    search: bool,
    search_max: f64,
    tls: bool,
    tcp: bool,
    user: Option<String>,
    password: Option<String>,
    uas_password: Option<String>,
    digest_alg: String,
    srtp: bool,
    tls_ca: Option<PathBuf>,
    tls_name: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        pcap: PathBuf::new(),
        show: false,
        target: None,
        uas: None,
        uac_only: false,
        uas_only: false,
        local_ip: "127.46.0.1".parse().map_err(|_| "ip")?,
        sip_port: 15060,
        media_port: 20000,
        media_ports: 8000,
        calls: 10,
        cps: 10.0,
        poisson: false,
        ramp: 0.0,
        max_concurrent: 10_000,
        hold: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        timeout: Duration::from_secs(32),
        allow_remote: false,
        out: None,
        max_fail_ratio: 0.0,
        min_mos: 0.0,
        max_latency_ms: None,
        search: false,
        search_max: 100_000.0,
        tls: false,
        tcp: false,
        user: None,
        password: None,
        uas_password: None,
        digest_alg: "MD5".into(),
        srtp: false,
        tls_ca: None,
        tls_name: "loadtest.invalid".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().cloned().ok_or(format!("{k} needs a value"));
        let bad = |k: &str| format!("bad value for {k}");
        match k.as_str() {
            "--pcap" => a.pcap = PathBuf::from(v()?),
            "--show" => a.show = true,
            "--target" => a.target = Some(v()?.parse().map_err(|_| bad(k))?),
            "--uas" => a.uas = Some(v()?.parse().map_err(|_| bad(k))?),
            "--uac-only" => a.uac_only = true,
            "--uas-only" => a.uas_only = true,
            "--local-ip" => a.local_ip = v()?.parse().map_err(|_| bad(k))?,
            "--sip-port" => a.sip_port = v()?.parse().map_err(|_| bad(k))?,
            "--media-port" => a.media_port = v()?.parse().map_err(|_| bad(k))?,
            "--media-ports" => a.media_ports = v()?.parse().map_err(|_| bad(k))?,
            "--calls" => a.calls = v()?.parse().map_err(|_| bad(k))?,
            "--cps" => a.cps = v()?.parse().map_err(|_| bad(k))?,
            "--poisson" => a.poisson = true,
            "--ramp" => a.ramp = v()?.parse().map_err(|_| bad(k))?,
            "--max-concurrent" => a.max_concurrent = v()?.parse().map_err(|_| bad(k))?,
            "--hold" => a.hold = Some(Duration::from_secs_f64(v()?.parse().map_err(|_| bad(k))?)),
            "--threads" => a.threads = v()?.parse().map_err(|_| bad(k))?,
            "--timeout" => a.timeout = Duration::from_secs_f64(v()?.parse().map_err(|_| bad(k))?),
            "--transport" => match v()?.as_str() {
                "udp" => (a.tls, a.tcp) = (false, false),
                "tcp" => (a.tls, a.tcp) = (false, true),
                "tls" => (a.tls, a.tcp) = (true, false),
                t => return Err(format!("--transport {t}: udp, tcp or tls")),
            },
            "--srtp" => match v()?.as_str() {
                "sdes" => a.srtp = true,
                "none" => a.srtp = false,
                t => return Err(format!("--srtp {t}: sdes or none")),
            },
            "--user" => a.user = Some(v()?),
            "--password" => a.password = Some(v()?),
            "--uas-password" => a.uas_password = Some(v()?),
            "--digest-alg" => a.digest_alg = v()?,
            "--tls-ca" => a.tls_ca = Some(PathBuf::from(v()?)),
            "--tls-name" => a.tls_name = v()?,
            "--allow-remote" => a.allow_remote = true,
            "--out" => a.out = Some(PathBuf::from(v()?)),
            "--max-fail-ratio" => a.max_fail_ratio = v()?.parse().map_err(|_| bad(k))?,
            "--min-mos" => a.min_mos = v()?.parse().map_err(|_| bad(k))?,
            "--max-latency-ms" => a.max_latency_ms = Some(v()?.parse().map_err(|_| bad(k))?),
            "--search" => a.search = true,
            "--search-max" => a.search_max = v()?.parse().map_err(|_| bad(k))?,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.pcap.as_os_str().is_empty() {
        return Err("--pcap is required".into());
    }
    if a.cps <= 0.0 || a.threads == 0 || a.threads > 64 {
        return Err("--cps must be > 0 and --threads 1..=64".into());
    }
    Ok(a)
}

/// Marsaglia's xorshift64 (13, 7, 17): seeded draws that repeat from run to run, for the arrival
/// schedule and the tests' generated input.
pub(crate) fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Scheduled start times (seconds from the start) of `calls` calls at `cps`, the rate rising
/// linearly from 0 over `ramp` seconds; Poisson arrivals when asked (seeded, so runs repeat).
///
/// Call k is due when the expected count of calls, Λ(t) = cps·t²/(2·ramp) over the ramp and
/// cps·(t − ramp/2) after it, reaches n_k: n_k = k for a constant rate, and the sum of k unit
/// exponential gaps for Poisson arrivals (which, mapped through Λ⁻¹, are a Poisson process of the
/// rate Λ′(t), ramp included).
fn arrivals(calls: u64, cps: f64, ramp: f64, poisson: bool) -> Vec<f64> {
    let ramp = ramp.max(0.0);
    let ramp_calls = cps * ramp / 2.0;
    let due = |n: f64| {
        if n < ramp_calls {
            (2.0 * n * ramp / cps).sqrt()
        } else {
            ramp + (n - ramp_calls) / cps
        }
    };
    let mut out = Vec::with_capacity(calls as usize);
    let mut rng: u64 = 0x853c_49e6_748f_ea9b;
    let mut n = 0.0f64;
    for k in 0..calls {
        if k > 0 {
            n += if poisson {
                let u = ((xorshift64(&mut rng) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                -u.ln()
            } else {
                1.0
            };
        }
        out.push(due(n));
    }
    out
}

/// Network namespaces this project's tests and runs create are named with this prefix
/// (`ip netns add sbc-...`): such a namespace starts with nothing but its own loopback, so every
/// address reachable in it is one the project put there.
const PROJECT_NETNS_PREFIX: &str = "sbc-";

/// The name of the network namespace this process runs in, when it is a named one (`ip netns
/// add`, bind-mounted under /run/netns): the one whose inode is this process's, as `ip netns
/// identify` finds it.
fn own_netns_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self/ns/net").ok()?;
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|e| {
            std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == me.dev() && m.ino() == me.ino())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// The live progress line: time, calls started, the rate over the last second, answered, failed,
/// callee legs active, RTP sent, and the mean MOS of the legs finished so far.
fn progress_line(samples: &[Sample], now: &Sample, shared: &Shared) -> String {
    let second_ago = samples.iter().rev().find(|p| now.t - p.t >= 0.99);
    let cps = second_ago.map_or(now.attempted as f64 / now.t.max(0.25), |p| {
        (now.attempted - p.attempted) as f64 / (now.t - p.t)
    });
    let legs = shared.mos_legs.load(Ordering::Relaxed);
    let mos = if legs == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.2}",
            shared.mos_centi.load(Ordering::Relaxed) as f64 / 100.0 / legs as f64
        )
    };
    format!(
        "{:6.1}s calls {} cps {:.0} ok {} failed {} uas-active {} rtp-sent {} MOS {}",
        now.t,
        now.attempted,
        cps,
        now.answered,
        now.failed,
        shared.active_uas.load(Ordering::Relaxed),
        now.rtp_sent,
        mos
    )
}

/// Where load may go without `--allow-remote`: loopback, or anywhere from inside one of the
/// project's own network namespaces.
fn check_target(a: &Args, target: SocketAddr) -> Result<(), String> {
    if a.allow_remote || target.ip().is_loopback() {
        return Ok(());
    }
    match own_netns_name() {
        Some(ns) if ns.starts_with(PROJECT_NETNS_PREFIX) => {
            eprintln!(
                "loadtest: target {target} allowed: inside the project's network namespace {ns}"
            );
            Ok(())
        }
        ns => Err(format!(
            "target {target} is not a loopback address{}: pass --allow-remote to load a remote \
             system (or run inside a network namespace named {PROJECT_NETNS_PREFIX}*)",
            ns.map_or(String::new(), |n| format!(" (network namespace {n})"))
        )),
    }
}

fn run_once(a: &Args, t: &Arc<Template>, cps: f64, quiet: bool) -> Result<Summary, String> {
    let uas = if a.uac_only { None } else { a.uas };
    let target = a.target.or(a.uas).ok_or("--target or --uas is required")?;
    check_target(a, target)?;
    let run_uac = !a.uas_only;
    let epoch = Instant::now();
    let epoch_ntp = media::ntp_wall_now();
    let legs_per_thread = (a.max_concurrent.min(a.calls) as f64 / a.threads as f64).ceil() as u64;
    let need = legs_per_thread * 2 * if uas.is_some() && run_uac { 2 } else { 1 } + 8;
    if !quiet {
        let hi = u32::from(a.media_port) + u32::from(a.media_ports) * a.threads as u32;
        eprintln!(
            "loadtest: {} threads; SIP {}:{}..{}; media ports {}..{} ({} per thread, {} needed for {} calls at once with reaping)",
            a.threads, a.local_ip, a.sip_port, a.sip_port as usize + a.threads - 1, a.media_port, hi - 1,
            a.media_ports, need, a.max_concurrent.min(a.calls)
        );
        if let Ok(r) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
            let v: Vec<u32> = r
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() == 2 && u32::from(a.media_port) <= v[1] && hi > v[0] {
                eprintln!(
                    "loadtest: warning: media ports overlap the ephemeral range {}-{}",
                    v[0], v[1]
                );
            }
        }
    }
    if u64::from(a.media_ports) < need {
        return Err(format!(
            "--media-ports {} per thread is below the {need} needed",
            a.media_ports
        ));
    }
    if u32::from(a.media_port) + u32::from(a.media_ports) * a.threads as u32 > 65_535 {
        return Err("the media port range passes 65535".into());
    }
    let tls = if a.tls {
        if uas.is_none() && a.tls_ca.is_none() {
            return Err("--transport tls toward another callee needs --tls-ca".into());
        }
        Some(Arc::new(worker::TlsSetup::new(
            a.tls_ca.as_deref(),
            &a.tls_name,
        )?))
    } else {
        None
    };
    let digest = match &a.password {
        Some(pw) => {
            let algorithm = Algorithm::from_token(&a.digest_alg)
                .ok_or(format!("--digest-alg {}: unknown", a.digest_alg))?;
            let recorded = t.steps.iter().find_map(|s| {
                s.msg
                    .header("Authorization")
                    .or(s.msg.header("Proxy-Authorization"))
            });
            let user = a
                .user
                .clone()
                .or_else(|| recorded.and_then(worker::recorded_user))
                .ok_or("--password without --user, and no recorded username")?;
            let secret = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ (u64::from(std::process::id()) << 40);
            Some(worker::DigestSetup {
                user,
                password: pw.clone(),
                uas_password: a.uas_password.clone().unwrap_or_else(|| pw.clone()),
                algorithm,
                secret,
            })
        }
        None => None,
    };
    let cfg = Arc::new(Config {
        template: Arc::clone(t),
        target,
        uac_ip: a.local_ip,
        uac_sip_base: a.sip_port,
        uas,
        run_uac,
        media_base: a.media_port,
        media_ports_per_thread: a.media_ports,
        threads: a.threads,
        max_concurrent: a.max_concurrent,
        hold: a.hold,
        timeout: a.timeout,
        epoch,
        epoch_ntp,
        tls,
        tcp: a.tcp,
        digest,
        srtp: a.srtp,
    });
    let shared = Arc::new(Shared::default());
    let times = if run_uac {
        arrivals(a.calls, cps, a.ramp, a.poisson)
    } else {
        Vec::new()
    };
    let lead = 0.05; // first call 50 ms after the threads start
    let mut handles = Vec::new();
    for id in 0..a.threads {
        let starts: Vec<(u64, u64)> = times
            .iter()
            .enumerate()
            .filter(|(k, _)| k % a.threads == id)
            .map(|(k, s)| (k as u64, ((s + lead) * 1e9) as u64))
            .collect();
        let (c, s) = (Arc::clone(&cfg), Arc::clone(&shared));
        handles.push(std::thread::spawn(move || worker::run(c, s, id, starts)));
    }
    let tty = std::io::stderr().is_terminal() && !quiet;
    let call_len = t.steps.last().map_or(0.0, |s| s.at.as_secs_f64())
        + a.hold.map_or(0.0, |h| h.as_secs_f64());
    let limit =
        times.last().copied().unwrap_or(0.0) + call_len + a.timeout.as_secs_f64() * 2.0 + 10.0;
    let mut samples = Vec::new();
    let mut idle_since: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let el = epoch.elapsed().as_secs_f64();
        let s = Sample {
            t: el,
            attempted: shared.attempted.load(Ordering::Relaxed),
            answered: shared.answered.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            rtp_sent: shared.rtp_sent.load(Ordering::Relaxed),
            rtp_received: shared.rtp_received.load(Ordering::Relaxed),
            cpu_s: report::process_cpu_s(),
        };
        if tty {
            eprint!("\r{}   ", progress_line(&samples, &s, &shared));
        }
        samples.push(s);
        let done = shared.done.load(Ordering::Relaxed);
        let uac_done = !run_uac || done >= a.calls;
        if uac_done && shared.active_uas.load(Ordering::Relaxed) == 0 && run_uac {
            // Let the last reaps and retransmissions settle.
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(300) {
                break;
            }
        }
        if uac_done && !run_uac && el > limit {
            break;
        }
        if el > limit {
            eprintln!("\nloadtest: time limit {limit:.0} s reached; stopping");
            break;
        }
    }
    if tty {
        eprintln!();
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().map_err(|_| "a worker panicked")??);
    }
    let mut s = report::summarise(results, samples, cps, epoch.elapsed().as_secs_f64());
    if a.tcp {
        // The connection counters are the plain TCP connections'.
        s.tcp_connections = std::mem::take(&mut s.tls_connections);
        s.tcp_failures = std::mem::take(&mut s.tls_failures);
    }
    Ok(s)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("loadtest: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t = match Template::from_pcap(&a.pcap) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    if a.show {
        print!("{}", t.describe());
        return ExitCode::SUCCESS;
    }
    if a.search {
        return search(&a, &t);
    }
    let s = match run_once(&a, &t, a.cps, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", s.json_line());
    if let Some(out) = &a.out {
        if let Err(e) = s.write_files(out, &a.pcap.display().to_string()) {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    }
    if s.fail_ratio() > a.max_fail_ratio || s.mean_mos().is_some_and(|m| m < a.min_mos) {
        eprintln!(
            "loadtest: thresholds missed (fail ratio {:.4} > {}, or mean MOS below {})",
            s.fail_ratio(),
            a.max_fail_ratio,
            a.min_mos
        );
        return ExitCode::from(1);
    }
    if let Some(max) = a.max_latency_ms {
        // No measure at all misses the threshold too: a gate on latency needs RTCP back.
        if s.latency_p99_ms().is_none_or(|l| l > max) {
            eprintln!(
                "loadtest: threshold missed (p99 one-way latency {} ms > {max} ms, or not measured)",
                s.latency_p99_ms()
                    .map_or("-".to_string(), |l| format!("{l:.2}"))
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// RFC 7502 §5-style search: trials of `--calls` calls at one offered rate each. A trial passes
/// when every call was answered without a failure and the calls really started at ≥ 95 % of the
/// rate (a tester or target that cannot keep the rate fails it). From `--cps` the rate doubles while
/// trials pass, up to `--search-max`; after the first failure it bisects between the last pass and
/// the lowest failure until they are within 5 % (or 1 call/s), at most 24 trials in all.
fn search(a: &Args, t: &Arc<Template>) -> ExitCode {
    let (mut lo, mut hi) = (0.0f64, None::<f64>);
    let mut rate = a.cps.min(a.search_max);
    let mut trials = 0u32;
    let mut converged = false;
    for _ in 0..24 {
        let s = match run_once(a, t, rate, true) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("loadtest: {e}");
                return ExitCode::from(2);
            }
        };
        trials += 1;
        let pass = s.failed == 0 && s.answered == a.calls && s.achieved_cps >= 0.95 * rate;
        println!(
            "{{\"trial_cps\":{rate:.1},\"pass\":{pass},\"failed\":{},\"achieved_cps\":{:.1}}}",
            s.failed, s.achieved_cps
        );
        if pass {
            lo = rate;
        } else {
            hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
        }
        rate = match hi {
            None if rate >= a.search_max => {
                converged = true;
                break;
            }
            None => (rate * 2.0).min(a.search_max),
            Some(h) if h - lo > (lo * 0.05).max(1.0) => (lo + h) / 2.0,
            Some(_) => {
                converged = true;
                break;
            }
        };
        // A short pause so the target drains between trials.
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "{{\"rfc7502_max_cps\":{lo:.1},\"lowest_failing_cps\":{},\"trials\":{trials},\"converged\":{converged}}}",
        hi.map_or("null".to_string(), |h| format!("{h:.1}"))
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::arrivals;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let t = arrivals(101, 50.0, 0.0, false);
        assert_eq!(t.len(), 101);
        assert_eq!(t[0], 0.0);
        for w in t.windows(2) {
            assert!((w[1] - w[0] - 0.02).abs() < 1e-9);
        }
        assert!((t[100] - 2.0).abs() < 1e-6);
    }

    /// Over a ramp of R seconds to `cps` the rate rises linearly: the calls started by time t are
    /// cps·t²/(2R), so the ramp's first half holds a quarter of its calls; after it, the gaps are
    /// the full rate's.
    #[test]
    fn ramp_rises_linearly_to_the_rate() {
        let (cps, ramp) = (200.0, 10.0);
        let t = arrivals(4000, cps, ramp, false);
        let before = |x: f64| t.iter().filter(|&&s| s < x).count() as f64;
        let full = cps * ramp / 2.0;
        assert!((before(ramp) - full).abs() <= 1.0, "{}", before(ramp));
        let half = cps * (ramp / 2.0) * (ramp / 2.0) / (2.0 * ramp);
        assert!(
            (before(ramp / 2.0) - half).abs() <= 1.0,
            "{}",
            before(ramp / 2.0)
        );
        // The rate over [2 s, 3 s) is about cps × 2.5 / 10 = 50 calls/s.
        let mid = before(3.0) - before(2.0);
        assert!((mid - 50.0).abs() <= 1.0, "{mid}");
        // The first calls come as slowly as the rate is low: the second after √(2·ramp/cps).
        assert!((t[1] - (2.0 * ramp / cps).sqrt()).abs() < 1e-9);
        let after: Vec<f64> = t
            .windows(2)
            .filter(|w| w[0] > ramp)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(!after.is_empty());
        assert!(after.iter().all(|g| (g - 1.0 / cps).abs() < 1e-9));
        // Increasing throughout.
        assert!(t.windows(2).all(|w| w[1] > w[0]));
    }

    /// Poisson arrivals: the gaps are exponential with mean 1/cps (mean and standard deviation
    /// alike, a share e^-1 longer than the mean), and the schedule repeats from run to run.
    #[test]
    fn poisson_gaps_are_exponential() {
        let cps = 100.0;
        let t = arrivals(20_001, cps, 0.0, true);
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean * cps - 1.0).abs() < 0.03, "mean {mean}");
        assert!((sd * cps - 1.0).abs() < 0.05, "sd {sd}");
        let longer = gaps.iter().filter(|&&g| g > 1.0 / cps).count() as f64 / n;
        assert!((longer - (-1.0f64).exp()).abs() < 0.02, "{longer}");
        assert!(gaps.iter().all(|&g| g > 0.0));
        assert_eq!(t, arrivals(20_001, cps, 0.0, true));
        // Over a 10 s ramp to 200 calls/s: about 1,000 calls in the ramp (±3σ), 250 in its first
        // half, and the full rate after it.
        let t = arrivals(5000, 200.0, 10.0, true);
        let within = |a: f64, b: f64| t.iter().filter(|&&s| s >= a && s < b).count() as f64;
        assert!(
            (within(0.0, 10.0) - 1000.0).abs() < 95.0,
            "{}",
            within(0.0, 10.0)
        );
        assert!(
            (within(0.0, 5.0) - 250.0).abs() < 48.0,
            "{}",
            within(0.0, 5.0)
        );
        assert!(
            (within(12.0, 17.0) - 1000.0).abs() < 95.0,
            "{}",
            within(12.0, 17.0)
        );
    }
}
