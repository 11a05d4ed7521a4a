//! Helpers for the integration tests: a temporary directory, a free port, the real `sbc` binary started
//! with a written config and killed by PID at the end, and sipp runs bounded in time.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A scenario of `sbc/tests/scenarios/b2bua/`.
pub(crate) fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/b2bua")
        .join(name)
}

/// Wait for a sipp run: its exit status and what it wrote on stderr (read first, so a full pipe
/// cannot stall it).
pub(crate) fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (child.wait().unwrap(), err)
}

/// Start `cmd` in `dir` with no input, its output dropped and its errors piped (for [`finish`]).
pub(crate) fn spawn_quiet(cmd: &mut Command, dir: &Path) -> Child {
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sbc-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP at the time of the call.
pub(crate) fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// An `[inside]` and a `[media]` section on addresses of their own (127.30.x.y, from the port-free counter and the
/// PID), so tests running at once never share the inside ports.
pub(crate) fn inside_section() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed) + (std::process::id() % 200) * 256;
    let (a, b) = ((n / 250) % 250 + 1, n % 250 + 1);
    // The media relay binds its whole port range at start: on an address of its own too.
    format!(
        "[inside]\naddress = \"127.30.{a}.{b}\"\n\
         [media]\naddress = \"127.31.{a}.{b}\"\nport_min = 20000\nport_max = 20199\n"
    )
}

/// A `[guard]` section trusting 127.0.0.1 (the address the transport tests send from).
pub(crate) const TRUST_LOCALHOST: &str = "[guard]\nallow = [\"127.0.0.1\"]\n";

/// The running binary; killed (by its PID) when dropped.
pub(crate) struct Sbc {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: TempDir,
    log: PathBuf,
}

impl Sbc {
    /// Start `sbc --config <dir>/sbc.toml --driver <driver>` with `config` and wait until it listens.
    pub(crate) fn start(
        name: &str,
        driver: &str,
        config: impl FnOnce(u16, &Path) -> String,
    ) -> Self {
        let dir = TempDir::new(name);
        let port = free_port();
        let text = config(port, dir.path());
        Self::start_in(dir, driver, port, &text)
    }

    /// Start with the config `text` in `dir`; `port` is the SIP port it listens on (for [`Self::addr`]).
    pub(crate) fn start_in(dir: TempDir, driver: &str, port: u16, text: &str) -> Self {
        let cfg_path = dir.path().join("sbc.toml");
        // Each SBC writes its call records in its own directory, unless the test chose a place.
        let text = if text.contains("[cdr]") {
            text.to_owned()
        } else {
            format!(
                "{text}\n[cdr]\nsqlite_path = \"{}\"\n",
                dir.path().join("cdr.sqlite").display()
            )
        };
        std::fs::write(&cfg_path, text).unwrap();
        let log = dir.path().join("sbc.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sbc"))
            .arg("--config")
            .arg(&cfg_path)
            .args(["--driver", driver])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut me = Self {
            child,
            port,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = me.log_text();
            if text.contains("sbc listening") {
                break;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("sbc exited early ({status}):\n{text}");
            }
            assert!(Instant::now() < deadline, "sbc did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    /// Default config: UDP and TCP on the chosen port. The tests' client (127.0.0.1) is trusted
    /// by the guard: the transport tests send bursts far over an unknown source's budgets.
    pub(crate) fn udp_tcp(name: &str, driver: &str) -> Self {
        Self::start(name, driver, |port, _| {
            format!(
                "workers = 2\n[sip]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n{}{TRUST_LOCALHOST}",
                inside_section()
            )
        })
    }

    /// The process id (to send it a signal).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill it with SIGKILL (a crash) and wait until it is gone.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop with SIGTERM and return the log (graceful stop is part of what is tested).
    pub(crate) fn stop(mut self) -> String {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child by PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // A call still up drains for `limits.drain_secs` (10 s by default) before its BYEs.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.log_text();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sbc did not stop on SIGTERM:\n{}", self.log_text());
    }
}

impl Drop for Sbc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run sipp against `target` with the OPTIONS scenario, bounded in time. Returns its exit status and
/// its output.
pub(crate) fn sipp_options(
    target: SocketAddr,
    transport: &str,
    cwd: &Path,
    extra: &[&str],
) -> (ExitStatus, String) {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/options.xml");
    let local_port = free_port();
    let out = cwd.join(format!("sipp-{transport}.out"));
    let mut child = Command::new("/usr/bin/sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(&scenario)
        .args(["-t", transport, "-i", "127.0.0.1"])
        .args(["-p", &local_port.to_string()])
        .args([
            "-m",
            "20",
            "-r",
            "10",
            "-timeout",
            "20s",
            "-timeout_error",
            "-nostdin",
        ])
        .args(extra)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp at /usr/bin/sipp");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

/// A small deterministic PRNG (xorshift64).
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// An OPTIONS request with the given transport in Via, CSeq number and Call-ID.
pub(crate) fn options(transport: &str, local: SocketAddr, cseq: u32, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:sbc@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/{transport} {local};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:test@127.0.0.1>;tag=t{cseq}\r\n\
To: <sip:sbc@127.0.0.1>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A sipp run for one call, bounded by `timeout`, logging into `dir`.
pub(crate) fn sipp(
    dir: &Path,
    scen: &str,
    local: (&str, u16),
    remote: Option<&str>,
    extra: &[&str],
) -> Child {
    let mut args = vec!["-m", "1", "-timeout", "35s", "-timeout_error"];
    args.extend_from_slice(extra);
    sipp_with(dir, scen, local, remote, &args)
}

/// A sipp run with the caller's limits (`-m`, `-timeout`), killed after 45 s at the latest.
pub(crate) fn sipp_with(
    dir: &Path,
    scen: &str,
    local: (&str, u16),
    remote: Option<&str>,
    extra: &[&str],
) -> Child {
    let port = local.1.to_string();
    let mut cmd = Command::new("timeout");
    cmd.args(["45", "sipp", "-sf"])
        .arg(scenario(scen))
        .args(["-i", local.0, "-p", &port, "-nostdin"])
        .args(["-trace_err", "-trace_msg", "-trace_logs"]);
    if let Some(r) = remote {
        cmd.arg(r);
    }
    cmd.args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sipp: {e}"))
}

/// Everything sipp logged in `dir` whose file name starts with `prefix`.
pub(crate) fn logs(dir: &Path, prefix: &str) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".log") {
            out.push_str(&format!("==== {name}\n"));
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

/// `GET path` on the control API at `api` with the bearer `token`: the status and the body.
pub(crate) fn api_get(api: SocketAddr, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// The media figures of each leg of the one call in progress (leg A, the caller's, first), as the
/// control API at `api` shows them.
pub(crate) fn legs_media(api: SocketAddr, token: &str) -> Vec<serde_json::Value> {
    let (status, body) = api_get(api, "/api/v1/calls", token);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let calls = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
    assert_eq!(calls.len(), 1, "{page}");
    calls[0]["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["media"].clone())
        .collect()
}
