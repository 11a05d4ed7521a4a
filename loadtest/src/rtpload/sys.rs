//! Clocks and CPU accounting: the generator's own (getrusage), the relay's (`/proc/PID/stat`) and
//! the box's (`/proc/stat`, for steal time).

/// Nanoseconds of a clock (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`).
#[inline]
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline]
pub(crate) fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

#[inline]
pub(crate) fn real_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// CPU time (user + system) this process used so far, in ns.
pub(crate) fn self_cpu_ns() -> u64 {
    // SAFETY (zeroed): plain C structure, filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-parameter.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks() -> u64 {
    // SAFETY: plain query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system, all threads) of another process, in ns, from `/proc/PID/stat`.
pub(crate) fn proc_cpu_ns(pid: i32) -> Option<u64> {
    stat_cpu_ns(&format!("/proc/{pid}/stat"))
}

/// User + system CPU time in ns from a `stat` file of procfs (a process's or one thread's).
fn stat_cpu_ns(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // rest: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000_000 / clock_ticks())
}

/// Whole-box CPU counters from `/proc/stat`, in ticks: (total, idle + iowait, steal).
pub(crate) fn box_cpu() -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    Some((v[..8].iter().sum(), v[3] + v[4], v[7]))
}

/// CPU counters at one instant, to difference over a measurement window.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuSnap {
    pub(crate) mono: u64,
    pub(crate) own: u64,
    pub(crate) relay: Option<u64>,
    /// One thread of the relay (`--relay-tid`).
    pub(crate) thread: Option<u64>,
    pub(crate) box_cpu: Option<(u64, u64, u64)>,
}

impl CpuSnap {
    pub(crate) fn take(relay_pid: Option<i32>, relay_tid: Option<i32>) -> Self {
        Self {
            mono: mono_ns(),
            own: self_cpu_ns(),
            relay: relay_pid.and_then(proc_cpu_ns),
            thread: relay_pid
                .zip(relay_tid)
                .and_then(|(pid, tid)| stat_cpu_ns(&format!("/proc/{pid}/task/{tid}/stat"))),
            box_cpu: box_cpu(),
        }
    }
}

/// CPU use between two snapshots, in percent of one core (box figures: of all cores).
pub(crate) struct CpuUse {
    pub(crate) own_pct: f64,
    pub(crate) relay_pct: Option<f64>,
    pub(crate) thread_pct: Option<f64>,
    pub(crate) box_busy_pct: Option<f64>,
    pub(crate) steal_pct: Option<f64>,
    /// CPU used by everything but this process and the relay, in percent of one core: another
    /// load on the box that distorts the trial.
    pub(crate) other_pct: Option<f64>,
}

pub(crate) fn cpu_use(a: &CpuSnap, b: &CpuSnap) -> CpuUse {
    let wall = b.mono.saturating_sub(a.mono).max(1) as f64;
    let pct = |x: u64, y: u64| 100.0 * y.saturating_sub(x) as f64 / wall;
    let (box_busy_pct, steal_pct) = match (a.box_cpu, b.box_cpu) {
        (Some((t0, i0, s0)), Some((t1, i1, s1))) if t1 > t0 => {
            let dt = (t1 - t0) as f64;
            (
                Some(100.0 * (dt - i1.saturating_sub(i0) as f64) / dt),
                Some(100.0 * s1.saturating_sub(s0) as f64 / dt),
            )
        }
        _ => (None, None),
    };
    let own_pct = pct(a.own, b.own);
    let relay_pct = match (a.relay, b.relay) {
        (Some(x), Some(y)) => Some(pct(x, y)),
        _ => None,
    };
    let thread_pct = match (a.thread, b.thread) {
        (Some(x), Some(y)) => Some(pct(x, y)),
        _ => None,
    };
    // SAFETY: plain query.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
    let other_pct =
        box_busy_pct.map(|busy| (busy * cpus - own_pct - relay_pct.unwrap_or(0.0)).max(0.0));
    CpuUse {
        own_pct,
        relay_pct,
        thread_pct,
        box_busy_pct,
        steal_pct,
        other_pct,
    }
}

/// Whether a process still exists.
pub(crate) fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What the platform does to a thread that only waits: timer overshoot of short sleeps and the
/// longest gaps a spinning thread sees (interrupts, the hypervisor taking the CPU away). Half the
/// time each.
#[derive(serde::Serialize)]
pub(crate) struct Probe {
    pub(crate) probe: bool,
    pub(crate) cpu: i32,
    pub(crate) seconds: f64,
    /// 100 µs sleeps: the largest overshoot, and how many overshot by more than 1 ms, per second.
    pub(crate) sleep_overshoot_max_us: f64,
    pub(crate) sleep_overshoots_over_1ms_per_s: f64,
    /// Spinning: the longest time between two clock reads, and gaps over 1 ms per second.
    pub(crate) spin_gap_max_us: f64,
    pub(crate) spin_gaps_over_1ms_per_s: f64,
}

pub(crate) fn probe(seconds: f64) -> Probe {
    let half = (seconds * 0.5e9) as u64;
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000,
    };
    let (mut worst_sleep, mut sleeps_over) = (0u64, 0u64);
    let end = mono_ns() + half;
    while mono_ns() < end {
        let a = mono_ns();
        // SAFETY: valid request; the remainder is not needed.
        unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
        let over = (mono_ns() - a).saturating_sub(100_000);
        worst_sleep = worst_sleep.max(over);
        sleeps_over += u64::from(over > 1_000_000);
    }
    let (mut worst_gap, mut gaps_over) = (0u64, 0u64);
    let end = mono_ns() + half;
    let mut prev = mono_ns();
    while prev < end {
        let now = mono_ns();
        let gap = now - prev;
        worst_gap = worst_gap.max(gap);
        gaps_over += u64::from(gap > 1_000_000);
        prev = now;
    }
    let per_s = |n: u64| (n as f64 / (half as f64 / 1e9) * 10.0).round() / 10.0;
    Probe {
        probe: true,
        // SAFETY: plain query.
        cpu: unsafe { libc::sched_getcpu() },
        seconds,
        sleep_overshoot_max_us: (worst_sleep / 1_000) as f64,
        sleep_overshoots_over_1ms_per_s: per_s(sleeps_over),
        spin_gap_max_us: (worst_gap / 1_000) as f64,
        spin_gaps_over_1ms_per_s: per_s(gaps_over),
    }
}
