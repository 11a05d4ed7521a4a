//! Thin wrappers over the Linux calls the drivers use: epoll, socket addresses in C layout, CPU affinity,
//! signal masks, and the open-file budget checked at start. Every `unsafe` block is here or in the driver that owns the memory it points to.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// An epoll instance (level-triggered use only).
pub(crate) struct Epoll {
    fd: RawFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives across the call.
        if unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(crate) fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub(crate) fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    pub(crate) fn delete(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Wait up to `timeout_ms`; fills `events` and returns how many are ready (0 on EINTR).
    pub(crate) fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ms: i32,
    ) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `max` entries into `events`.
        let n = unsafe { libc::epoll_wait(self.fd, events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// Read a `sockaddr_in`/`sockaddr_in6` from its raw bytes (as the kernel wrote them).
pub(crate) fn sockaddr_from_bytes(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// Write `addr` into `storage` in C layout; returns the length to pass to the kernel.
pub(crate) fn sockaddr_to_storage(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> u32 {
    let sa = socket2::SockAddr::from(addr);
    let len = sa.len();
    // SAFETY: `sa` holds `len` valid bytes and `sockaddr_storage` is large enough for any address.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len as usize,
        );
    }
    len
}

/// Pin the calling thread to one core.
/// The CPUs this process may run on (its affinity mask, e.g. as set by `taskset`), in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

pub(crate) fn pin_to_core(core: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal set of SIGINT and SIGTERM (stop), and SIGHUP (reload).
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Block SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it spawns afterwards), so that only
/// [`wait_stop_signal`] receives them.
pub(crate) fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: valid set, old mask not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Wait for SIGINT, SIGTERM or SIGHUP; returns the signal number.
pub(crate) fn wait_stop_signal() -> i32 {
    let set = stop_signals();
    let mut sig = 0;
    // SAFETY: valid set and out pointer.
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// What the process needs open at most, counted at start against `RLIMIT_NOFILE`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FdBudget {
    /// Workers.
    pub(crate) workers: u64,
    /// Connections per worker (`transport.tcp_max_connections`).
    pub(crate) connections: u64,
    /// SIP sockets and listeners per worker, its epoll and io_uring.
    pub(crate) sockets: u64,
    /// Media relay sockets of all workers (one per port).
    pub(crate) media_ports: u64,
}

/// Descriptors beyond the budget: standard streams, the log, the control thread, the API,
/// files read while running (TLS, config).
const FD_RESERVE: u64 = 64;

impl FdBudget {
    /// The descriptors needed in all.
    pub(crate) fn needed(&self) -> u64 {
        self.workers
            .saturating_mul(self.connections.saturating_add(self.sockets))
            .saturating_add(self.media_ports)
            .saturating_add(FD_RESERVE)
    }
}

/// The soft and hard `RLIMIT_NOFILE`.
fn nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain C structure filled by the kernel.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set_nofile(soft: u64, hard: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: plain C structure.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

/// Make sure the open-file limit covers `budget`: the soft limit is raised (to the hard limit
/// at most; root may raise the hard limit too); an error naming the keys when it still falls
/// short. Returns the soft limit in force.
pub(crate) fn ensure_fd_budget(budget: FdBudget) -> Result<u64, String> {
    let needed = budget.needed();
    let (soft, hard) = nofile().map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    if soft >= needed {
        return Ok(soft);
    }
    // Root (CAP_SYS_RESOURCE) may raise the hard limit too, up to fs.nr_open.
    if hard < needed && set_nofile(needed, needed) {
        return Ok(needed);
    }
    let raised = needed.min(hard);
    if raised > soft && !set_nofile(raised, hard) {
        return Err(format!(
            "setrlimit(RLIMIT_NOFILE, {raised}): {}",
            io::Error::last_os_error()
        ));
    }
    if raised < needed {
        return Err(format!(
            "open-file limit too low: {needed} descriptors needed ({} workers x ({} \
             transport.tcp_max_connections + {} sockets) + {} media ports (media.port_min..port_max) \
             + {FD_RESERVE}), the hard limit is {hard}; raise it (ulimit -Hn, LimitNOFILE=) or lower \
             transport.tcp_max_connections or the media port range",
            budget.workers, budget.connections, budget.sockets, budget.media_ports
        ));
    }
    Ok(raised)
}
