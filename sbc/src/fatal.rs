//! A panic anywhere ends the whole process: never a half-alive SBC.
//!
//! A worker owns its sockets, its calls, its registrations and (worker 0) the ng socket and the
//! trunk registrations; if it died alone, the process would go on without them, silently. The hook
//! [`install`] sets logs the panic (thread, location, message) as an error and exits with
//! [`EXIT_CODE`] (70, `EX_SOFTWARE`), so that systemd or Kubernetes restarts the SBC whole.

use std::panic::PanicHookInfo;

/// The exit code of a process ended by a panic (`EX_SOFTWARE` of sysexits.h).
pub(crate) const EXIT_CODE: i32 = 70;

/// The log line of a panic: which thread, where, and the message.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let location = info
        .location()
        .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
    format!(
        "thread {name} panicked{location}: {message}; the SBC exits so that it is restarted whole"
    )
}

/// Install the hook: every panic, on any thread, is logged and ends the process with
/// [`EXIT_CODE`].
pub(crate) fn install() {
    std::panic::set_hook(Box::new(|info| {
        let line = describe(info);
        tracing::error!("{line}");
        // Also on stderr directly, in case the subscriber is not (yet) writing.
        eprintln!("sbc: fatal: {line}");
        std::process::exit(EXIT_CODE);
    }));
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// Run as a child of the test below: install the hook, panic on a worker thread, and wait.
    #[test]
    fn child_worker_panics() {
        if std::env::var_os("SBC_FATAL_CHILD").is_none() {
            return;
        }
        super::install();
        let _ = std::thread::Builder::new()
            .name("sbc-worker-3".into())
            .spawn(|| panic!("granted expiry overflowed"));
        // A half-alive process would sleep on here; the hook ends it first.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_worker_panic_ends_the_process_with_a_clear_line() {
        let exe = std::env::current_exe().unwrap();
        let started = std::time::Instant::now();
        let out = Command::new(exe)
            .args([
                "--exact",
                "fatal::tests::child_worker_panics",
                "--nocapture",
            ])
            .env("SBC_FATAL_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(super::EXIT_CODE), "{stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(
            stderr.contains("sbc: fatal: thread sbc-worker-3 panicked at sbc/src/fatal.rs")
                && stderr.contains("granted expiry overflowed"),
            "{stderr}"
        );
    }
}
