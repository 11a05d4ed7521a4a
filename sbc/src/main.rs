//! The `sbc` binary: command line, configuration, workers, graceful stop.
//!
//! `sbc [--config FILE] [--check-config FILE] [--driver auto|io_uring|epoll] [--workers N]`, and
//! `sbc cdr export ...` (see `cdr/export.rs`).
//!
//! All sockets are bound here, before any worker starts, so that a bad address fails the start with a
//! clear message. Each worker then owns its sockets (SO_REUSEPORT) and runs its own loop. SIGINT,
//! SIGTERM and SIGHUP are blocked in every thread and taken by `sigwait` in the main thread: SIGHUP
//! reloads the configuration file (`reload.rs`), the others set the stop flag that the workers read
//! at least every 100 ms. A panic on any thread ends the process (exit 70,
//! see `fatal.rs`).

mod api;
mod cdr;
mod config;
mod connect;
mod control;
mod driver;
mod fatal;
mod handler;
mod handover;
mod media;
mod metrics;
mod observe;
mod persist;
mod reload;
mod shard_media;
mod signalling;
mod stats;
mod stream;
mod sys;
mod tls;
mod tokens;
mod udp;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mimalloc::MiMalloc;

use sbc_core::signalling::topology::Side;

use crate::config::{Config, DriverChoice};
use crate::driver::Driver;
use crate::worker::{Worker, WorkerSetup};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

extern "C" {
    /// mimalloc's option setter (linked in by the `mimalloc` crate).
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

/// `mi_option_purge_delay` in mimalloc's option enumeration.
const MI_OPTION_PURGE_DELAY: libc::c_int = 15;

/// Keep freed memory instead of returning it to the OS after 10 ms (mimalloc's default): a worker's
/// memory swings with its calls and transactions, and every page handed back is faulted in and
/// zeroed again (2 MiB at a time with transparent huge pages). docs/decisions.md has the figures.
fn tune_allocator() {
    // SAFETY: sets a process-wide allocator option before any worker thread exists.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

struct Args {
    config: Option<PathBuf>,
    check_config: Option<PathBuf>,
    driver: Option<DriverChoice>,
    workers: Option<usize>,
}

const USAGE: &str =
    "usage: sbc [--config FILE] [--check-config FILE] [--driver auto|io_uring|epoll] [--workers N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: None,
        check_config: None,
        driver: None,
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--config" | "-c" => args.config = Some(value("--config")?.into()),
            "--check-config" => args.check_config = Some(value("--check-config")?.into()),
            "--driver" => args.driver = Some(value("--driver")?.parse()?),
            "--workers" => {
                let v = value("--workers")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--workers: not a number: {v}"))?;
                args.workers = Some(n);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    // `sbc ctl ...`: the API's command-line client, nothing of the SBC started.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("ctl") {
        return ExitCode::from(control_api::cli::main(argv.get(2..).unwrap_or_default()) as u8);
    }
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A panic on any thread (a worker) ends the process with a clear line, never a half-alive SBC.
    fatal::install();
    // `sbc cdr export ...`: a command of its own, on the CDR file.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("cdr") {
        return ExitCode::from(cdr::export::command(argv.get(1..).unwrap_or_default()));
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.check_config {
        return match reload::check_config(path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded_default(),
    };
    if let Some(d) = args.driver {
        cfg.transport.driver = d;
    }
    if let Some(n) = args.workers {
        if n == 0 {
            eprintln!("--workers: must be at least 1");
            return ExitCode::from(2);
        }
        cfg.workers = Some(n);
    }
    // The control API binds and reads its token and certificate before anything starts.
    let source = match &args.config {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).unwrap_or_default(),
        ),
        None => ("embedded default".into(), config::DEFAULT_TOML.into()),
    };
    let api = match api::prepare(&cfg, &source.0, &source.1) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let reloader =
        reload::Reloader::new(args.config.clone(), cfg.clone(), args.workers, args.driver);
    match run(&cfg, api, Arc::new(reloader)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn choose_driver(choice: DriverChoice) -> Driver {
    match choice {
        DriverChoice::Epoll => {
            tracing::info!("transport driver: epoll (forced by configuration)");
            Driver::Epoll
        }
        DriverChoice::Auto | DriverChoice::IoUring => match driver::uring::probe() {
            Ok(()) => {
                tracing::info!(
                    "transport driver: io_uring (UDP: multishot recvmsg + provided buffer ring, batched \
                     sendmsg; TCP/TLS: epoll polled through the ring)"
                );
                Driver::IoUring
            }
            Err(reason) => {
                tracing::warn!("transport driver: epoll (io_uring unavailable: {reason})");
                Driver::Epoll
            }
        },
    }
}

fn bind<T>(
    list: &[std::net::SocketAddr],
    f: fn(std::net::SocketAddr) -> std::io::Result<T>,
) -> Result<Vec<T>, String> {
    list.iter()
        .map(|a| f(*a).map_err(|e| format!("bind {a}: {e}")))
        .collect()
}

/// The media relay of one worker over its slice of the port range, and the B2BUA's anchor on it.
fn media_anchor(
    cfg: &Config,
    b2bua: &config::CoreSettings,
    ports: std::ops::Range<u16>,
) -> Result<
    (
        sbc_core::media::callmedia::MediaAnchor,
        shard_media::ShardMedia,
    ),
    String,
> {
    let last = ports.end.saturating_sub(1);
    let mut shard_cfg = media_plane::ShardConfig::new(ports.start, last);
    shard_cfg.latch_mode = match cfg.media.latching {
        config::Latching::Strict => media_plane::latch::LatchMode::Strict,
        config::Latching::Loose => media_plane::latch::LatchMode::Loose,
    };
    shard_cfg.latch_window = std::time::Duration::from_secs(cfg.media.latch_window_secs);
    let shard = media_plane::MediaShard::new(shard_cfg)
        .map_err(|e| format!("media.port_min/port_max: {e}"))?;
    let timeout = cfg.media.no_media_timeout_secs;
    let mut anchor =
        sbc_core::media::callmedia::MediaAnchor::new(sbc_core::media::callmedia::MediaSettings {
            address: b2bua.media_address,
            no_media_timeout: (timeout > 0).then(|| std::time::Duration::from_secs(timeout)),
        });
    anchor.set_early_limits(sbc_core::media::callmedia::EarlyLimits {
        streams: cfg.media.early_streams,
        pairs_per_source: cfg.media.early_pairs_per_source,
    });
    anchor.set_codec_policies(cfg.codecs.policies()?);
    anchor.set_srtp_policy(cfg.srtp_policy()?);
    anchor.set_dtmf_policy(cfg.dtmf.policy()?);
    Ok((anchor, shard_media::ShardMedia::new(shard)))
}

fn run(
    cfg: &Config,
    api: Option<api::Prepared>,
    reloader: Arc<reload::Reloader>,
) -> Result<(), String> {
    // Before any thread starts (the state file's writer is the first): only `sigwait` below
    // takes the stop and reload signals.
    sys::block_stop_signals();
    let n = cfg.worker_count();
    let peers = cfg.stream_peers()?;
    // The inside listens on TCP (TLS when an inside next hop is TLS and a certificate is set) when
    // one of its next hops is reached over a connection: the PBX's own requests come that way.
    let inside_peers: Vec<_> = peers.iter().filter(|p| p.side == Side::Inside).collect();
    let inside_tls = inside_peers.iter().any(|p| p.tls_name.is_some());
    let tls_config = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(cert), Some(key)) if !cfg.sip.tls.is_empty() || inside_tls => {
            Some(tls::server_config(cert, key)?)
        }
        _ => None,
    };
    let inside_listen = match (inside_peers.is_empty(), inside_tls, &tls_config) {
        (true, _, _) => None,
        (false, false, _) => Some(false),
        (false, true, Some(_)) => Some(true),
        (false, true, None) => {
            tracing::info!("inside: TLS next hops but no [tls] cert: no inside TLS listener");
            None
        }
    };
    let client = if cfg.needs_tls_client() {
        let cert = cfg
            .tls
            .client_cert
            .as_deref()
            .zip(cfg.tls.client_key.as_deref());
        Some(tls::client_config(tls::ClientFiles {
            ca_file: cfg.tls.ca_file.as_deref(),
            cert,
        })?)
    } else {
        None
    };
    let peers = connect::Peers::new(&peers, client.as_ref())?;
    let driver = choose_driver(cfg.transport.driver);
    let stop = Arc::new(AtomicBool::new(false));
    let b2bua = cfg.b2bua()?;
    let secret = signalling::secret()?;
    let outside_ip = cfg.advertised_address();
    let outside_port = cfg
        .sip
        .udp
        .first()
        .or(cfg.sip.tcp.first())
        .or(cfg.sip.tls.first())
        .map_or(5060, |a| a.port());
    // An outside on TLS only: the Contact names TLS (its requests must not go to UDP).
    let outside_tls_only =
        cfg.sip.udp.is_empty() && cfg.sip.tcp.is_empty() && !cfg.sip.tls.is_empty();
    let inside_shared = std::net::SocketAddr::new(cfg.inside.address, cfg.inside.port);
    // Bind everything first: a bad address fails here, with its name.
    let mut workers = Vec::with_capacity(n);
    let now = std::time::Instant::now();
    // Each worker publishes its counters to the control thread once a second, and at stop.
    let (snapshots, control_rx) = control::channel(n);
    // Registrations stored before a restart, per worker, and the writer of the state file.
    let state_file =
        (!cfg.registrar.state_file.is_empty()).then(|| PathBuf::from(&cfg.registrar.state_file));
    let mut stored = match &state_file {
        Some(p) => persist::load(p, cfg.registrar.capacity, n, now),
        None => Vec::new(),
    };
    let (mut stores, persist_thread) = match state_file {
        Some(p) => {
            let (s, t) = persist::start(p, n, cfg.registrar.capacity)
                .map_err(|e| format!("registrar.state_file: cannot start its writer: {e}"))?;
            (s.into_iter().map(Some).collect(), Some(t))
        }
        None => (Vec::new(), None),
    };
    let mut restored = 0;
    let listeners_per_worker = cfg.sip.tcp.len() + cfg.sip.tls.len() + 2;
    let budget = sys::FdBudget {
        workers: n as u64,
        connections: cfg.transport.tcp_max_connections as u64,
        // UDP sockets (outside, shared inside, own inside), listeners, epoll, io_uring, ng.
        sockets: (cfg.sip.udp.len() + 2 + listeners_per_worker + 3) as u64,
        media_ports: if cfg.media.enabled {
            u64::from(cfg.media.port_max - cfg.media.port_min) + 1
        } else {
            0
        },
    };
    let nofile = sys::ensure_fd_budget(budget)?;
    tracing::info!(
        needed = budget.needed(),
        limit = nofile,
        "open-file budget (connections, sockets, media ports)"
    );
    // The control thread changes the workers' guards through one command channel each.
    let (commands, command_rxs) = control::command_channels(n);
    let commands = commands.with_reloader(reloader.clone());
    // The main thread reloads on SIGHUP through its own end of the channels.
    let reload_commands = commands.clone();
    let mut command_rxs = command_rxs.into_iter();
    let (alerts, alerts_rx) = control::fraud_channel();
    // Ended calls' records and the webhook's events leave each worker over bounded channels.
    let (mut cdr_senders, cdr_thread) = match cdr::start(&cfg.cdr, n)? {
        Some(w) => (w.senders, Some(w.thread)),
        None => (Vec::new(), None),
    };
    let (mut event_senders, webhook) = match cdr::webhook::start(&cfg.events, n, stop.clone())? {
        Some(w) => (w.senders, Some((w.thread, w.failed))),
        None => (Vec::new(), None),
    };
    // Datagrams on the shared sockets (the outside ones, then the shared inside port) that belong
    // to another worker's dialog are handed to it.
    let worker_ids = u16::try_from(n).map_err(|_| format!("workers: at most {}", u16::MAX))?;
    let mut handovers = handover::Handover::build(worker_ids, secret, cfg.sip.udp.len() + 1)
        .map_err(|e| format!("hand-over between workers: {e}"))?
        .into_iter();
    for id in 0..n {
        let mut udp = bind(&cfg.sip.udp, udp::bind_udp)?;
        let outside_udp = udp.len();
        let own_port = cfg.inside.port + 1 + id as u16;
        let own = std::net::SocketAddr::new(cfg.inside.address, own_port);
        udp.push(udp::bind_udp(inside_shared).map_err(|e| format!("bind {inside_shared}: {e}"))?);
        udp.push(udp::bind_udp(own).map_err(|e| format!("bind {own}: {e}"))?);
        let listener = |sock, tls, side| stream::Listener { sock, tls, side };
        let mut listeners: Vec<stream::Listener> = bind(&cfg.sip.tcp, udp::bind_tcp)?
            .into_iter()
            .map(|l| listener(l, false, Side::Outside))
            .collect();
        for l in bind(&cfg.sip.tls, udp::bind_tcp)? {
            listeners.push(listener(l, true, Side::Outside));
        }
        if let Some(tls) = inside_listen {
            for l in bind(&[inside_shared, own], udp::bind_tcp)? {
                listeners.push(listener(l, tls, Side::Inside));
            }
        }
        let place = signalling::Place {
            worker: id as u16,
            outside: std::net::SocketAddr::new(outside_ip, outside_port),
            outside_tls_only,
            inside: own,
            outside_flow: sbc_sip::transaction::Flow(0),
            inside_flow: sbc_sip::transaction::Flow((outside_udp + 1) as u64),
        };
        let mut sig = signalling::Signalling::new(&b2bua, &cfg.limits, &place, secret, now);
        if let Some(list) = stored.get_mut(id) {
            restored += sig.restore_registrations(now, std::mem::take(list));
        }
        sig.attach_alerts(alerts.clone());
        sig.attach_outlets(cdr_senders.pop(), event_senders.pop());
        let (media, shard_media) = if cfg.media.enabled {
            let ports = cfg.media.media_ports_for(id, n);
            let socks = media::MediaSockets::bind(b2bua.media_address, ports.clone())?;
            let (anchor, shard) = media_anchor(cfg, &b2bua, ports)?;
            sig.attach_media(anchor);
            (Some(socks), Some(shard))
        } else {
            (None, None)
        };
        let ng = match cfg.media.ng_listen {
            Some(addr) if id == 0 && cfg.media.enabled => {
                let allowed = cfg.media.ng_allowed.iter().map(|c| c.0).collect();
                Some(media::NgServer::bind(addr, b2bua.media_address, allowed)?)
            }
            _ => None,
        };
        let w = Worker::new(WorkerSetup {
            id: id as u16,
            udp,
            outside_udp,
            listeners,
            tls_config: tls_config.clone(),
            peers: peers.clone(),
            transport: &cfg.transport,
            signalling: sig,
            guard: cfg.guard.worker_config(
                b2bua.guard(f64::from(cfg.limits.max_cps) / n as f64),
                // The guard's table hash: bytes of the secret no other seed uses.
                u64::from_le_bytes([
                    secret[8], secret[9], secret[10], secret[11], secret[12], secret[13],
                    secret[14], secret[15],
                ]),
            ),
            stop: stop.clone(),
            media,
            shard_media,
            ng,
            publisher: control::Publisher::new(id as u16, snapshots.clone(), now),
            store: stores.get_mut(id).and_then(Option::take),
            commands: command_rxs
                .next()
                .ok_or_else(|| format!("worker {id}: no command channel"))?,
            handover: handovers
                .next()
                .ok_or_else(|| format!("worker {id}: no hand-over inbox"))?,
        })
        .map_err(|e| format!("worker {id}: {e}"))?;
        workers.push(w);
    }
    tracing::info!(
        workers = n,
        udp = ?cfg.sip.udp,
        tcp = ?cfg.sip.tcp,
        tls = ?cfg.sip.tls,
        inside = %inside_shared,
        inside_worker_ports = %format!("{}..={}", cfg.inside.port + 1, cfg.inside.port + n as u16),
        "sbc listening"
    );
    if persist_thread.is_some() {
        tracing::info!(restored, "registrar.state_file: registrations restored");
    }
    sys::block_stop_signals();
    // The control thread keeps each worker's latest counters until every worker is gone.
    drop(snapshots);
    drop(alerts);
    let control = std::thread::Builder::new()
        .name("sbc-control".into())
        .spawn(move || {
            let c = control::Control::new(n, control_rx)
                .with_commands(commands)
                .with_fraud_events(alerts_rx);
            match api {
                Some(api) => api.run(c),
                None => c.run(),
            }
        })
        .map_err(|e| format!("spawn control thread: {e}"))?;
    // Worker i runs on the i-th CPU the process is allowed (so `taskset -c 1 sbc` keeps it on 1),
    // pinned when there is one CPU per worker.
    let cpus = sys::allowed_cpus();
    let pin = !cpus.is_empty() && n <= cpus.len();
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let cpu = cpus.get(i).copied();
            std::thread::Builder::new()
                .name(format!("sbc-worker-{i}"))
                .spawn(move || {
                    if let (true, Some(cpu)) = (pin, cpu) {
                        if let Err(e) = sys::pin_to_core(cpu) {
                            tracing::warn!(worker = i, "cannot pin to CPU {cpu}: {e}");
                        }
                    }
                    driver::run(w, driver)
                })
                .map_err(|e| format!("spawn worker {i}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let sig = loop {
        match sys::wait_stop_signal() {
            libc::SIGHUP => reload::on_sighup(&reloader, &reload_commands),
            sig => break sig,
        }
    };
    tracing::info!(signal = sig, "stopping");
    stop.store(true, Ordering::Relaxed);
    for (i, h) in handles.into_iter().enumerate() {
        if h.join().is_err() {
            tracing::error!(worker = i, "worker panicked");
        }
    }
    // Every worker has sent its last bindings: the state file's writer ends after its last write.
    if let Some(t) = persist_thread {
        if t.join().is_err() {
            tracing::error!("state file writer panicked");
        }
    }
    // Every worker has sent its last records and events: their writers end once those are out.
    if let Some(t) = cdr_thread {
        if t.join().is_err() {
            tracing::error!("CDR writer panicked");
        }
    }
    if let Some((t, failed)) = webhook {
        if t.join().is_err() {
            tracing::error!("events thread panicked");
        }
        let failed = failed.load(Ordering::Relaxed);
        tracing::info!(
            events_failed = failed,
            "webhook: events given up after every attempt"
        );
    }
    // Every worker has sent its last snapshot and dropped its sender: the control thread ends.
    match control.join() {
        Ok(c) => c.log_stopped(),
        Err(_) => tracing::error!("control thread panicked"),
    }
    Ok(())
}
