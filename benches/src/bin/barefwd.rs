//! `barefwd`: the bare UDP forwarder that the media load run measures relays against.
//!
//! For each of N calls it binds two UDP sockets on one address: leg A's port `P_a = BASE + 4i` and
//! leg B's port `P_b = BASE + 4i + 2` (consecutive even ports, the odd ones left free as a real
//! relay would keep them for RTCP). A datagram arriving on `P_a` goes out of `P_b` to call i's B
//! endpoint (`--dst-b IP:PORT` + 2i), and one arriving on `P_b` goes out of `P_a` to its A endpoint
//! (`--dst-a IP:PORT` + 2i). One level-triggered epoll over all sockets, `recvmmsg` on the ready
//! socket, `sendmmsg` on its partner: no parsing, no latching, no state, no timers. It is the floor
//! any relay with one socket per leg pays on this kernel.
//!
//! ```text
//! taskset -c 1 barefwd --calls 5000 --listen 127.0.0.4:10000 \
//!     --dst-a 127.0.0.2:10000 --dst-b 127.0.0.3:10000 --duration 600
//! ```
//!
//! It prints `barefwd pid <PID> ...` once every socket is bound, and exits by itself after
//! `--duration` seconds (or on SIGTERM/SIGINT), printing its packet counters.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Datagrams read from one ready socket per `recvmmsg`.
const BATCH: usize = 16;
/// Large enough for any RTP packet the run sends (172 bytes) and then some.
const BUF: usize = 2048;
const MAX_EVENTS: usize = 1024;

struct Args {
    calls: usize,
    listen: SocketAddrV4,
    dst_a: SocketAddrV4,
    dst_b: SocketAddrV4,
    duration: Duration,
}

const USAGE: &str = "usage: barefwd --calls N --listen IP:BASE --dst-a IP:PORT --dst-b IP:PORT \
[--duration SECONDS (default 600)]
  call i: leg A port BASE+4i, leg B port BASE+4i+2; A endpoint dst-a+2i, B endpoint dst-b+2i";

fn parse_args() -> Result<Args, String> {
    let mut calls = None;
    let mut listen = None;
    let mut dst_a = None;
    let mut dst_b = None;
    let mut duration = Duration::from_secs(600);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let addr = |v: &str| {
            v.parse::<SocketAddrV4>()
                .map_err(|e| format!("{flag} {v}: {e} (want IPv4:PORT)"))
        };
        match flag.as_str() {
            "--calls" => {
                calls = Some(
                    value
                        .parse::<usize>()
                        .map_err(|e| format!("--calls {value}: {e}"))?,
                )
            }
            "--listen" => listen = Some(addr(&value)?),
            "--dst-a" => dst_a = Some(addr(&value)?),
            "--dst-b" => dst_b = Some(addr(&value)?),
            "--duration" => {
                let s: f64 = value
                    .parse()
                    .map_err(|e| format!("--duration {value}: {e}"))?;
                if !(s > 0.0 && s < 86_400.0) {
                    return Err(format!("--duration {value}: want 0 < seconds < 86400"));
                }
                duration = Duration::from_secs_f64(s);
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let (Some(calls), Some(listen), Some(dst_a), Some(dst_b)) = (calls, listen, dst_a, dst_b)
    else {
        return Err(format!("missing option\n{USAGE}"));
    };
    if calls == 0 {
        return Err("--calls must be at least 1".into());
    }
    for (what, base, step) in [
        ("--listen", listen, 4),
        ("--dst-a", dst_a, 2),
        ("--dst-b", dst_b, 2),
    ] {
        let last =
            u32::from(base.port()) + step * (calls as u32 - 1) + if step == 4 { 2 } else { 0 };
        if last > 65_535 {
            return Err(format!(
                "{what} {base}: {calls} calls need ports up to {last}"
            ));
        }
    }
    Ok(Args {
        calls,
        listen,
        dst_a,
        dst_b,
        duration,
    })
}

fn port_addr(base: SocketAddrV4, offset: usize) -> SocketAddrV4 {
    // In range: checked against the number of calls in `parse_args`.
    SocketAddrV4::new(*base.ip(), base.port() + offset as u16)
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("barefwd: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("barefwd: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Socket k = 2i + leg (leg 0 = A, 1 = B); its partner is k ^ 1.
    let mut socks = Vec::with_capacity(2 * args.calls);
    // Where a datagram sent out of socket k goes: the endpoint of k's own leg.
    let mut dst = Vec::with_capacity(2 * args.calls);
    for i in 0..args.calls {
        for (leg, peer) in [(0, args.dst_a), (1, args.dst_b)] {
            let local = port_addr(args.listen, 4 * i + 2 * leg);
            let s = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
            s.set_nonblocking(true)
                .map_err(|e| format!("nonblocking {local}: {e}"))?;
            socks.push(s);
            dst.push(sockaddr(port_addr(peer, 2 * i)));
        }
    }
    // SAFETY: plain syscalls on descriptors this process owns.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
    }
    for (k, s) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: k as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } < 0 {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
    }
    // SAFETY: installing an async-signal-safe handler that only stores to an atomic.
    let handler: extern "C" fn(libc::c_int) = on_signal;
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
    println!(
        "barefwd pid {} calls {} sockets {} listen {}:{}-{} dst-a {} dst-b {}",
        std::process::id(),
        args.calls,
        socks.len(),
        args.listen.ip(),
        args.listen.port(),
        u32::from(args.listen.port()) + 4 * (args.calls as u32 - 1) + 2,
        args.dst_a,
        args.dst_b,
    );

    let mut bufs = vec![[0u8; BUF]; BATCH];
    // SAFETY (zeroed): plain C structures, filled below.
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let (mut rx, mut tx, mut tx_err, mut rx_err) = (0u64, 0u64, 0u64, 0u64);
    let end = Instant::now() + args.duration;
    while !STOP.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wait_ms = (end - now).as_millis().min(200) as i32;
        // SAFETY: `events` has MAX_EVENTS entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), MAX_EVENTS as i32, wait_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        for ev in &events[..n as usize] {
            let k = ev.u64 as usize;
            let (Some(from), Some(out), Some(to)) =
                (socks.get(k), socks.get(k ^ 1), dst.get(k ^ 1))
            else {
                continue;
            };
            for j in 0..BATCH {
                iovs[j] = libc::iovec {
                    iov_base: bufs[j].as_mut_ptr().cast(),
                    iov_len: BUF,
                };
                hdrs[j].msg_hdr.msg_iov = &mut iovs[j];
                hdrs[j].msg_hdr.msg_iovlen = 1;
                hdrs[j].msg_hdr.msg_name = std::ptr::null_mut();
                hdrs[j].msg_hdr.msg_namelen = 0;
                hdrs[j].msg_len = 0;
            }
            // SAFETY: BATCH headers, each pointing at its own buffer, all live for the call.
            let got = unsafe {
                libc::recvmmsg(
                    from.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got <= 0 {
                rx_err += u64::from(got < 0);
                continue;
            }
            let got = got as usize;
            rx += got as u64;
            for j in 0..got {
                iovs[j].iov_len = hdrs[j].msg_len as usize;
                hdrs[j].msg_hdr.msg_name = (to as *const libc::sockaddr_in).cast_mut().cast();
                hdrs[j].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            }
            // SAFETY: as above; the destination address outlives the call and is only read.
            let sent = unsafe {
                libc::sendmmsg(
                    out.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    got as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if sent < 0 {
                tx_err += got as u64;
            } else {
                tx += sent as u64;
                tx_err += (got - sent as usize) as u64;
            }
        }
    }
    // SAFETY: our epoll descriptor, closed once.
    unsafe { libc::close(ep) };
    eprintln!("barefwd: rx {rx} tx {tx} tx_errors {tx_err} rx_errors {rx_err}");
    Ok(())
}
