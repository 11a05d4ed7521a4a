//! `/metrics` scraped by a real Prometheus server during a load run (issue 20): the SBC with its
//! control API and media anchoring carries sipp calls at 20 calls/s; the text taken under load
//! passes `promtool check metrics`, and Prometheus, scraping the SBC every second with the bearer
//! token through `loadtest/metrics/prometheus.yml`, answers a query for the calls counter with a
//! value that grew between two scrapes. Addresses 127.47.1.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP) |
//! | `.1:8080` | its API |
//! | `.11:5080` | the SBC, inside |
//! | `.21` | its media relay |
//! | `.2:5090` | the PBX (sipp UAS) |
//! | `.3:5070` | the caller (sipp UAC) |
//! | `.5:9090` | Prometheus |
//!
//! Prometheus and promtool come from the Debian package `prometheus`; without them the test fails
//! saying so. Prometheus keeps its data in the test's temporary directory and is killed by its PID.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{finish, logs, sipp_with, Sbc, TempDir};
use serde_json::Value;

const TOKEN: &str = "scrape-token-0123456789";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn ip(host: u8) -> String {
    format!("127.47.1.{host}")
}

fn api_addr() -> SocketAddr {
    format!("{}:8080", ip(1)).parse().unwrap()
}

fn prom_addr() -> SocketAddr {
    format!("{}:9090", ip(5)).parse().unwrap()
}

fn start_sbc() -> Sbc {
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{o}:5060\"]\ntcp = []\n\
         [inside]\naddress = \"{i}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{p}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nenabled = true\naddress = \"{m}\"\nport_min = 22000\nport_max = 22999\n\
         [api]\nenabled = true\nlisten = \"{o}:8080\"\ntoken = \"{TOKEN}\"\n",
        o = ip(1),
        i = ip(11),
        m = ip(21),
        p = ip(2),
    );
    let sbc = Sbc::start_in(TempDir::new("prometheus"), "auto", 5060, &text);
    assert!(
        sbc.log_text().contains("control API listening"),
        "{}",
        sbc.log_text()
    );
    sbc
}

/// One HTTP/1.0 GET over its own connection: the status and the body (HTTP/1.0 keeps the body
/// unchunked, closed by the server).
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's first sample, when Prometheus has one.
fn query(expr: &str) -> Option<f64> {
    let (status, body) = get(
        prom_addr(),
        &format!("/api/v1/query?query={}", encode(expr)),
        None,
    )?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// The Prometheus server; killed by its PID when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start Prometheus on [`prom_addr`] with the load run's configuration
/// (`loadtest/metrics/prometheus.yml`), the SBC's API as its target, its data under `dir`.
fn start_prometheus(dir: &Path) -> Prometheus {
    for tool in [PROMETHEUS, PROMTOOL] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: this test needs a Prometheus server and promtool \
             (apt-get install -y prometheus)"
        );
    }
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/metrics/prometheus.yml");
    let template = std::fs::read_to_string(&template)
        .unwrap_or_else(|e| panic!("{}: {e}", template.display()));
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = template
        .replace("__PATH__", "/metrics")
        .replace("__SCHEME__", "http")
        .replace("__TARGET__", &api_addr().to_string())
        .replace("__TOKEN_FILE__", &token_file.display().to_string());
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let check = Command::new(PROMTOOL)
        .arg("check")
        .arg("config")
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={}", prom_addr()))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{PROMETHEUS}: {e}"));
    Prometheus(child)
}

/// Run `promtool check metrics` on `text`: its exit status and everything it wrote.
fn promtool_check_metrics(text: &str, dir: &Path) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the unlabelled sample `name` in the exposition `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn prometheus_scrapes_the_sbc_under_load() {
    let started = Instant::now();
    let sbc = start_sbc();
    let dir = sbc.dir.path().to_owned();
    let prometheus = start_prometheus(&dir);

    // 160 calls at 20 calls/s, each up for half a second (the relay has 500 port pairs; a call
    // holds two, quarantined 5 s after it ends).
    let calls = ["-m", "160", "-timeout", "30s", "-timeout_error"];
    let callee = sipp_with(&dir, "uas_basic.xml", (&ip(2), 5090), None, &calls);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(1));
    let mut args = vec!["-s", "1000", "-r", "20", "-d", "500"];
    args.extend_from_slice(&calls);
    let caller = sipp_with(&dir, "uac_basic.xml", (&ip(3), 5070), Some(&target), &args);

    // Under load: the text passes promtool, with calls and anchored media in it.
    std::thread::sleep(Duration::from_secs(3));
    let (status, text) = get(api_addr(), "/metrics", Some(TOKEN)).expect("GET /metrics");
    assert_eq!(status, 200, "{text}");
    std::fs::write(dir.join("metrics.txt"), &text).unwrap();
    let (ok, said) = promtool_check_metrics(&text, &dir);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
    assert!(
        sample(&text, "sbc_b2bua_calls_started_total").unwrap_or(0.0) > 0.0,
        "no call started under load:\n{text}"
    );
    assert!(
        sample(&text, "sbc_media_sdp_rewritten_total").unwrap_or(0.0) > 0.0,
        "no SDP anchored under load:\n{text}"
    );

    // Prometheus scrapes once a second: the counter it holds grows between two scrapes.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen: Vec<f64> = Vec::new();
    let grew = loop {
        if let Some(v) = query("sum(sbc_b2bua_calls_started_total)") {
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            if seen.len() >= 2 && seen[seen.len() - 1] > seen[0] && seen[0] > 0.0 {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let up = query("up{job=\"sbc\"}");
    drop(prometheus);
    assert!(
        grew,
        "the calls counter did not grow in Prometheus (values seen: {seen:?}, up: {up:?})\n\
         prometheus log:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    assert_eq!(up, Some(1.0), "the SBC target is not up");

    let (uac_status, uac_err) = finish(caller);
    let (uas_status, uas_err) = finish(callee);
    let sipp_logs = logs(&dir, "u");
    let log = sbc.stop();
    assert!(
        uac_status.success() && uas_status.success(),
        "caller: {uac_status} {uac_err}\ncallee: {uas_status} {uas_err}\n{sipp_logs}\n{log}"
    );
    assert!(log.contains("calls_ended: 160,"), "{log}");
    assert!(log.contains("live_calls: 0,"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}
