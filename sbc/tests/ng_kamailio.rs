//! The SBC as a drop-in rtpengine: a real Kamailio, its `rtpengine` module pointed at the SBC's ng
//! control socket (`media.ng_listen`), proxies calls from a sipp UAC to a sipp UAS and calls
//! `rtpengine_manage()` on INVITE, 200 OK and BYE. Addresses (127.23.1.x, used by no other test):
//!
//! | host | who |
//! |---|---|
//! | `.1` | the SBC: SIP `:5060` (unused here), media relay (ports 21000-21399), ng control `:2223` |
//! | `.11:5080` | the SBC, inside SIP (unused here) |
//! | `.5:5060` | Kamailio (`tests/kamailio/ng_proxy.cfg`), the SIP proxy |
//! | `.3:5070` | sipp's built-in `uac` (5 calls) |
//! | `.2:5090` | sipp's built-in `uas` |
//! | `.9` | this test's own ng client (ping, list, query) |
//!
//! Checked: every call succeeds on both sipp ends; the SDP the UAS receives in each INVITE and the
//! SDP the UAC receives in each 200 OK name the SBC's media address and two different ports of the
//! relay range (leg B toward the callee, leg A toward the caller); once the calls are over, the
//! SBC's ng `list` is empty and `query` knows none of the calls (Kamailio's `delete` on BYE released
//! them).
//!
//! Needs Kamailio with its rtpengine module (Debian package `kamailio`) and sipp (`sip-tester`):
//! when either is missing the test fails, it does not skip.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{finish, Sbc, TempDir};
use sbc_core::ng::codec::{encode_request, Codec, Command as NgCommand, Request, ResultCode};

const SBC: &str = "127.23.1.1";
const SBC_INSIDE: &str = "127.23.1.11";
const KAMAILIO_IP: &str = "127.23.1.5";
const UAC: &str = "127.23.1.3";
const UAS: &str = "127.23.1.2";
const CLIENT: &str = "127.23.1.9";
const NG_PORT: u16 = 2223;
const PORT_MIN: u16 = 21000;
const PORT_MAX: u16 = 21399;
const CALLS: usize = 5;

fn kamailio_binary() -> PathBuf {
    let usual = Path::new("/usr/sbin/kamailio");
    if usual.exists() {
        return usual.to_owned();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("kamailio"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "kamailio not found (/usr/sbin/kamailio or PATH): install the Debian package \
                 `kamailio` (it carries the rtpengine module); this test does not skip"
            )
        })
}

fn proxy_cfg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/ng_proxy.cfg")
}

/// The Kamailio command line for this test: its address, the SBC's ng socket, the UAS; its runtime
/// and working directory `dir` (no root needed).
fn kamailio_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(kamailio_binary());
    cmd.arg("-f")
        .arg(proxy_cfg())
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir)
        .current_dir(dir)
        .args(["-l", &format!("udp:{KAMAILIO_IP}:5060")])
        .args(["-A", &format!("NG_SOCK=\"udp:{SBC}:{NG_PORT}\"")])
        .args(["-A", &format!("UAS=\"sip:{UAS}:5090\"")])
        .args(extra);
    cmd
}

/// Kamailio in the foreground (`-DD -E`), in a process group of its own; stopped by PID on drop.
struct Kamailio {
    child: Child,
    log: PathBuf,
}

impl Kamailio {
    fn start(dir: &Path) -> Self {
        // The configuration check loads every module: a missing rtpengine module fails here.
        let check = kamailio_command(dir, &["-c"])
            .output()
            .unwrap_or_else(|e| panic!("kamailio -c: {e}"));
        assert!(
            check.status.success(),
            "kamailio cannot load tests/kamailio/ng_proxy.cfg (is the rtpengine module of the \
             Debian package `kamailio` installed?):\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.join("kamailio.log");
        let child = kamailio_command(dir, &["-DD", "-E", "-n", "1", "-m", "32", "-M", "8"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("kamailio: {e}"));
        let mut me = Self { child, log };
        // The module pings its rtpengine at start; the line says the SBC answered.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = me.log_text();
            if text.contains("support for it enabled") {
                break;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("kamailio exited early ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not reach the SBC's ng socket:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child by PID; its main process stops its workers on SIGTERM.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: the process group we created for it (its PID), should its workers outlive it.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// An ng client of the SBC's control socket.
struct Ng {
    sock: UdpSocket,
    to: SocketAddr,
    n: u32,
}

/// A reply, read into owned values.
#[derive(Debug)]
struct NgReply {
    result: ResultCode,
    error: Option<String>,
    calls: Vec<String>,
}

impl Ng {
    fn new() -> Self {
        let sock = UdpSocket::bind((CLIENT, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self {
            sock,
            to: SocketAddr::new(SBC.parse().unwrap(), NG_PORT),
            n: 0,
        }
    }

    /// Send `req` (retried on timeout, as Kamailio does) and read the reply with the same cookie.
    fn send(&mut self, req: &Request<'_>) -> NgReply {
        self.n += 1;
        let cookie = format!("test_{}_{}", std::process::id(), self.n);
        let mut datagram = Vec::new();
        encode_request(cookie.as_bytes(), req, &mut datagram);
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            self.sock.send_to(&datagram, self.to).unwrap();
            let Ok((len, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let mut codec = Codec::default();
            let (got, view) = codec.parse_reply(&buf[..len]).unwrap();
            assert_eq!(got, cookie.as_bytes());
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            return NgReply {
                result: view.result,
                error: view.error_reason.map(text),
                calls: view.calls.iter().map(|c| text(c)).collect(),
            };
        }
        panic!("no ng reply from the SBC at {}", self.to);
    }
}

/// sipp's built-in scenario `scenario` on `ip:port`, bounded in time, tracing its messages in `dir`.
fn sipp(dir: &Path, scenario: &str, (ip, port): (&str, u16), extra: &[&str]) -> Child {
    Command::new("timeout")
        .args(["30", "sipp", "-sn", scenario])
        .args(["-i", ip, "-p", &port.to_string(), "-mi", ip])
        .args([
            "-m",
            &CALLS.to_string(),
            "-nostdin",
            "-trace_msg",
            "-trace_err",
        ])
        .args(["-timeout", "20s", "-timeout_error"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sipp (Debian package `sip-tester`): {e}"))
}

/// The message trace of sipp's scenario `scenario` in `dir`.
fn trace(dir: &Path, scenario: &str) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{scenario}_")) && name.ends_with("_messages.log") {
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

/// The messages a sipp trace shows as received, line ends normalised to `\n`.
fn received(trace: &str) -> Vec<String> {
    let trace = trace.replace("\r\n", "\n");
    trace
        .split("-----------------------------------------------")
        .filter_map(|chunk| {
            let (head, message) = chunk.split_once("\n\n")?;
            head.contains("message received")
                .then(|| message.trim().to_owned())
        })
        .collect()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `(c= address, m=audio port)` of a message's SDP body.
fn sdp_media(message: &str) -> Option<(IpAddr, u16)> {
    let (_, body) = message.split_once("\n\n")?;
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((ip, port))
}

/// Per Call-ID, the SDP media of the received messages whose first line starts with `first`.
fn media_by_call(trace: &str, first: &str) -> BTreeMap<String, (IpAddr, u16)> {
    received(trace)
        .iter()
        .filter(|m| m.starts_with(first))
        .filter_map(|m| {
            let call = header(m, "Call-ID")?.to_owned();
            Some((call, sdp_media(m)?))
        })
        .collect()
}

#[test]
fn kamailio_rtpengine_module_drives_the_relay() {
    // The SBC with the ng socket; workers = 2 so that worker 0's port slice is a part of the range.
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{SBC}:5060\"]\n\
         [inside]\naddress = \"{SBC_INSIDE}\"\nport = 5080\n\
         [media]\nenabled = true\naddress = \"{SBC}\"\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\n\
         ng_listen = \"{SBC}:{NG_PORT}\"\n"
    );
    let sbc = Sbc::start_in(TempDir::new("ng-kamailio"), "auto", 5060, &text);
    let dir = sbc.dir.path().to_owned();

    let mut ng = Ng::new();
    let pong = ng.send(&Request::new(NgCommand::Ping));
    assert_eq!(pong.result, ResultCode::Pong, "{pong:?}");

    let kamailio = Kamailio::start(&dir);
    let uas = sipp(&dir, "uas", (UAS, 5090), &[]);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{KAMAILIO_IP}:5060");
    let uac = sipp(
        &dir,
        "uac",
        (UAC, 5070),
        &[&target, "-r", "10", "-d", "200"],
    );
    let (uac_status, uac_err) = finish(uac);
    let (uas_status, uas_err) = finish(uas);
    let (uac_trace, uas_trace) = (trace(&dir, "uac"), trace(&dir, "uas"));
    let context = || {
        format!(
            "uac: {uac_status} {uac_err}\nuas: {uas_status} {uas_err}\n\
             ==== kamailio\n{}\n==== sbc\n{}\n==== uac trace\n{uac_trace}\n==== uas trace\n{uas_trace}",
            kamailio.log_text(),
            sbc.log_text()
        )
    };
    assert!(
        uac_status.success() && uas_status.success(),
        "calls failed\n{}",
        context()
    );

    // The callee got the relay's leg-B address in every INVITE, the caller leg A's in every 200.
    let offers = media_by_call(&uas_trace, "INVITE ");
    let answers = media_by_call(&uac_trace, "SIP/2.0 200");
    assert_eq!(
        offers.len(),
        CALLS,
        "INVITEs with SDP at the UAS\n{}",
        context()
    );
    assert_eq!(
        answers.len(),
        CALLS,
        "200s with SDP at the UAC\n{}",
        context()
    );
    let relay: IpAddr = SBC.parse().unwrap();
    let in_range = |port: u16| (PORT_MIN..=PORT_MAX).contains(&port) && port % 2 == 0;
    for (call, &(b_ip, b_port)) in &offers {
        let Some(&(a_ip, a_port)) = answers.get(call) else {
            panic!("no 200 with SDP for {call}\n{}", context());
        };
        assert_eq!((a_ip, b_ip), (relay, relay), "{call}\n{}", context());
        assert!(
            in_range(a_port) && in_range(b_port) && a_port != b_port,
            "{call}: ports {a_port} (caller) and {b_port} (callee)\n{}",
            context()
        );
    }

    // Every BYE went through Kamailio's delete: nothing is left in the SBC's ng table.
    let list = ng.send(&Request::new(NgCommand::List));
    assert_eq!(list.result, ResultCode::Ok, "{list:?}");
    assert!(list.calls.is_empty(), "calls left: {list:?}\n{}", context());
    for call in offers.keys() {
        let mut query = Request::new(NgCommand::Query);
        query.call_id = Some(call.as_bytes());
        let got = ng.send(&query);
        assert_eq!(
            (got.result, got.error.as_deref()),
            (ResultCode::Error, Some("Unknown call-id")),
            "{call}\n{}",
            context()
        );
    }

    drop(kamailio);
    let log = sbc.stop();
    assert!(!log.contains("panicked"), "{log}");
}
