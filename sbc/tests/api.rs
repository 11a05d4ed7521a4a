//! The control API end to end: the real `sbc` binary with `[api]` enabled, asked over HTTP (a
//! small client in this file), HTTPS (rustls with a test certificate), by `sbc ctl`, and by
//! schemathesis from the served OpenAPI document. Each test on its own loopback addresses,
//! 127.40.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP) |
//! | `.1:8080` | its API |
//! | `.11:5080` | the SBC, inside |
//! | `.2:5090` | the PBX address (nothing listens: no call goes there) |
//! | `.9` | a SIP source the API bans and lets back |

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use serde_json::{json, Value};

const TOKEN: &str = "test-token-0123456789";

fn ip(n: u8, host: u8) -> String {
    format!("127.40.{n}.{host}")
}

fn api_addr(n: u8) -> SocketAddr {
    format!("{}:8080", ip(n, 1)).parse().unwrap()
}

/// The SBC of test `n` with `api` as its `[api]` section's body (after `enabled`, `listen`) and
/// `extra` more configuration.
fn start(n: u8, name: &str, api: &str, extra: &str) -> Sbc {
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{o}:5060\"]\ntcp = []\n\
         [inside]\naddress = \"{i}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{p}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nenabled = false\n\
         {extra}\n\
         [api]\nenabled = true\nlisten = \"{o}:8080\"\n{api}\n",
        o = ip(n, 1),
        i = ip(n, 11),
        p = ip(n, 2),
    );
    let sbc = Sbc::start_in(TempDir::new(name), "auto", 5060, &text);
    assert!(
        sbc.log_text().contains("control API listening"),
        "{}",
        sbc.log_text()
    );
    if !api.contains("tls_cert") {
        wait_ready(n);
    }
    sbc
}

/// Wait until the API of test `n` (plain HTTP) says the SBC is ready.
fn wait_ready(n: u8) {
    // Ready once every worker has published its first snapshot (within about a second).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = http(api_addr(n), "GET", "/ready", None, "");
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503, "{}", a.text());
        assert_eq!(a.json()["ready"], false);
        assert!(Instant::now() < deadline, "never ready: {}", a.text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The operations the SBC answers 501 today (served once the operations layer is wired in):
/// schemathesis leaves them out, as a 501 is a server error to it.
const NOT_SERVED_YET: &[&str] = &[
    "configCheck",
    "configReload",
    "calls",
    "call",
    "hangUp",
    "registrations",
    "removeRegistration",
    "targets",
    "targetAction",
    "trunks",
    "trunkAction",
    "mediaSessions",
];

/// An HTTP answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn field(&self) -> Option<String> {
        self.json()["field"].as_str().map(str::to_string)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        headers: head.to_ascii_lowercase(),
        body: raw[at + 4..].to_vec(),
    }
}

fn request_bytes(method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: sbc\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One request over its own connection.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A refused body may be answered before it is all sent: a failed write is fine then.
    let _ = s.write_all(&request_bytes(method, path, token, body.as_bytes()));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn get(n: u8, path: &str) -> Answer {
    http(api_addr(n), "GET", path, Some(TOKEN), "")
}

/// Every route the API serves, with a request that is valid for it, and the status the SBC
/// answers today (501: served by the operations layer once merged).
fn valid_requests() -> Vec<(&'static str, &'static str, &'static str, u16)> {
    vec![
        ("GET", "/health", "", 200),
        ("GET", "/ready", "", 200),
        ("GET", "/metrics", "", 200),
        ("GET", "/openapi.json", "", 200),
        ("GET", "/api/v1/version", "", 200),
        ("GET", "/api/v1/config", "", 200),
        (
            "POST",
            "/api/v1/config/check",
            r#"{"toml":"workers = 1"}"#,
            501,
        ),
        ("POST", "/api/v1/config/reload", "", 501),
        ("GET", "/api/v1/calls?limit=1000&offset=0", "", 501),
        ("GET", "/api/v1/calls/abc", "", 501),
        ("DELETE", "/api/v1/calls/abc", "", 501),
        ("GET", "/api/v1/registrations", "", 501),
        ("DELETE", "/api/v1/registrations/sip:100@x", "", 501),
        ("GET", "/api/v1/targets", "", 501),
        ("POST", "/api/v1/targets/pbx/x/drain", "", 501),
        ("GET", "/api/v1/trunks", "", 501),
        ("POST", "/api/v1/trunks/carrier/disable", "", 501),
        ("GET", "/api/v1/bans", "", 200),
        (
            "POST",
            "/api/v1/bans",
            r#"{"ip":"192.0.2.77","secs":60}"#,
            200,
        ),
        ("DELETE", "/api/v1/bans/192.0.2.77", "", 200),
        ("GET", "/api/v1/allow", "", 200),
        (
            "POST",
            "/api/v1/allow",
            r#"{"network":"198.51.100.0/24"}"#,
            200,
        ),
        ("DELETE", "/api/v1/allow/198.51.100.0%2F24", "", 200),
        ("GET", "/api/v1/rules", "", 200),
        (
            "POST",
            "/api/v1/rules",
            r#"{"name":"premium","callee_blacklist":["+49900*"],"max_calls":5,"per":"user"}"#,
            200,
        ),
        (
            "POST",
            "/api/v1/rules/premium/callee_blacklist",
            r#"{"entry":"+44909*"}"#,
            200,
        ),
        (
            "DELETE",
            "/api/v1/rules/premium/callee_blacklist/%2B44909*",
            "",
            200,
        ),
        ("DELETE", "/api/v1/rules/premium", "", 200),
        ("GET", "/api/v1/fraud/rules", "", 200),
        (
            "POST",
            "/api/v1/fraud/rules",
            r#"{"name":"night","prefix":"+","hours":"20:00-07:00","sequential_calls":{"warning":5,"critical":10}}"#,
            200,
        ),
        ("DELETE", "/api/v1/fraud/rules/night", "", 200),
        ("GET", "/api/v1/fraud/events?limit=10", "", 200),
        ("GET", "/api/v1/media/sessions", "", 501),
    ]
}

#[test]
fn every_endpoint_with_and_without_the_token() {
    let n = 1;
    let sbc = start(
        n,
        "api-endpoints",
        &format!("token = \"{TOKEN}\""),
        "[[trunk]]\nname = \"carrier\"\naddresses = [\"198.51.100.7\"]\n\
         outbound = { proxy = \"198.51.100.7:5060\" }\nusername = \"acct\"\npassword = \"trunk-pw-secret\"\n",
    );
    let addr = api_addr(n);
    let served: std::collections::BTreeSet<(String, String)> = control_api::routes::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, body, want) in valid_requests() {
        let public = path == "/health" || path == "/ready";
        let without = http(addr, method, path, None, body);
        let wrong = http(addr, method, path, Some("test-token-0123456788"), body);
        if public {
            assert_eq!(without.status, want, "{method} {path} without the token");
        } else {
            for a in [&without, &wrong] {
                assert_eq!(a.status, 401, "{method} {path} without the token");
                assert_eq!(a.field().as_deref(), Some("Authorization"));
            }
        }
        let a = http(addr, method, path, Some(TOKEN), body);
        assert_eq!(a.status, want, "{method} {path}: {}", a.text());
        // Find the route this request took, to check that every route was asked.
        let bare = path.split('?').next().unwrap();
        let route = control_api::routes::ROUTES
            .iter()
            .find(|(m, p, _)| {
                *m == method && {
                    let (ps, ss): (Vec<_>, Vec<_>) =
                        (p.split('/').collect(), bare.split('/').collect());
                    ps.len() == ss.len()
                        && ps
                            .iter()
                            .zip(&ss)
                            .all(|(p, s)| p.starts_with('{') || p == s)
                }
            })
            .unwrap_or_else(|| panic!("{method} {path}: no route"));
        seen.insert((route.0.to_string(), route.1.to_string()));
    }
    assert_eq!(seen, served, "every route asked");

    // What the answers say.
    let v = get(n, "/api/v1/version").json();
    assert_eq!(v["workers"], 2);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let cfg = get(n, "/api/v1/config");
    let text = cfg.text();
    assert!(
        !text.contains(TOKEN) && !text.contains("trunk-pw-secret"),
        "{text}"
    );
    assert!(
        text.contains("<redacted>") && text.contains("acct"),
        "{text}"
    );
    assert!(get(n, "/openapi.json").json()["paths"]["/api/v1/bans"].is_object());
    let ready = http(addr, "GET", "/ready", None, "").json();
    assert_eq!(ready["workers"], 2);

    // Bad input: every refusal names its field.
    let t = Some(TOKEN);
    for (method, path, body, status, field) in [
        (
            "POST",
            "/api/v1/bans",
            r#"{"ip":"192.0.2.1","colour":"red"}"#,
            422,
            Some("colour"),
        ),
        ("POST", "/api/v1/bans", r#"{"ip":12}"#, 422, Some("ip")),
        (
            "POST",
            "/api/v1/bans",
            r#"{"ip":"192.0.2.1","secs":"long"}"#,
            422,
            Some("secs"),
        ),
        (
            "POST",
            "/api/v1/bans",
            r#"{"ip":"192.0.2.1","secs":0}"#,
            422,
            Some("secs"),
        ),
        ("POST", "/api/v1/bans", r#"{"ip":"192.0.2.1""#, 400, None),
        (
            "POST",
            "/api/v1/allow",
            r#"{"network":"10.0.0.0/33"}"#,
            422,
            Some("network"),
        ),
        (
            "POST",
            "/api/v1/rules",
            r#"{"name":"x","trunk":"nope"}"#,
            422,
            Some("trunk"),
        ),
        (
            "POST",
            "/api/v1/rules",
            r#"{"name":"x","max_cps":-1}"#,
            422,
            Some("max_cps"),
        ),
        (
            "POST",
            "/api/v1/rules",
            r#"{"name":"x","sources":["nowhere"]}"#,
            422,
            Some("sources"),
        ),
        (
            "POST",
            "/api/v1/rules/untrusted-per-source/callee_blacklist",
            r#"{"entry":"+1*2"}"#,
            422,
            Some("entry"),
        ),
        (
            "POST",
            "/api/v1/rules/none/callee_blacklist",
            r#"{"entry":"+1"}"#,
            404,
            None,
        ),
        (
            "POST",
            "/api/v1/rules/untrusted-per-source/greylist",
            r#"{"entry":"+1"}"#,
            404,
            Some("list"),
        ),
        (
            "POST",
            "/api/v1/fraud/rules",
            r#"{"name":"f","hours":"25:00-26:00"}"#,
            422,
            Some("hours"),
        ),
        ("DELETE", "/api/v1/rules/none", "", 404, None),
        ("DELETE", "/api/v1/allow/10.9.9.0%2F24", "", 404, None),
        (
            "GET",
            "/api/v1/fraud/events?limit=0",
            "",
            400,
            Some("limit"),
        ),
        (
            "GET",
            "/api/v1/fraud/events?limit=1001",
            "",
            400,
            Some("limit"),
        ),
        (
            "GET",
            "/api/v1/fraud/events?offset=-1",
            "",
            400,
            Some("offset"),
        ),
        (
            "GET",
            "/api/v1/calls?limit=5&bogus=1",
            "",
            400,
            Some("bogus"),
        ),
        ("PUT", "/api/v1/bans", "", 405, None),
        ("GET", "/api/v1/nothing", "", 404, None),
    ] {
        let a = http(addr, method, path, t, body);
        assert_eq!(a.status, status, "{method} {path} {body}: {}", a.text());
        assert_eq!(
            a.field(),
            field.map(str::to_string),
            "{method} {path} {body}"
        );
    }
    // A huge body: refused by its length, and by its bytes when the length is not declared.
    let huge = format!(
        "{{\"ip\":\"192.0.2.1\",\"pad\":\"{}\"}}",
        "x".repeat(1 << 20)
    );
    assert_eq!(http(addr, "POST", "/api/v1/bans", t, &huge).status, 413);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /api/v1/bans HTTP/1.1\r\nHost: sbc\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    for _ in 0..80 {
        if s.write_all(format!("{:x}\r\n{}\r\n", 1024, "y".repeat(1024)).as_bytes())
            .is_err()
        {
            break;
        }
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_answer(&raw).status, 413);

    // Rules changed over the API are listed as in force.
    let r = http(
        addr,
        "POST",
        "/api/v1/rules",
        t,
        r#"{"name":"intl","callee_blacklist":["+882*"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"workers": 2, "of": 2}));
    let a = http(
        addr,
        "POST",
        "/api/v1/rules/intl/callee_blacklist",
        t,
        r#"{"entry":"+881*"}"#,
    );
    assert_eq!(a.status, 200);
    let rules = get(n, "/api/v1/rules").json();
    let intl = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "intl")
        .unwrap();
    assert_eq!(intl["callee_blacklist"], json!(["+882*", "+881*"]));
    assert!(rules
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "untrusted-per-source"));

    // /metrics: the Prometheus text, and a counter that grows with traffic.
    let m = get(n, "/metrics");
    assert!(
        m.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        m.headers
    );
    let value = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let before = value(&m.text(), "sbc_transport_udp_rx_total");
    assert!(m
        .text()
        .contains("# TYPE sbc_transport_udp_rx_total counter"));
    assert!(m.text().contains("# TYPE sbc_b2bua_live_calls gauge"));
    let sock = UdpSocket::bind(format!("{}:0", ip(n, 9))).unwrap();
    let sip: SocketAddr = format!("{}:5060", ip(n, 1)).parse().unwrap();
    for i in 0..3 {
        let local = sock.local_addr().unwrap();
        sock.send_to(&common::options("UDP", local, i + 1, &format!("m{i}")), sip)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = value(&get(n, "/metrics").text(), "sbc_transport_udp_rx_total");
        if now >= before + 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sbc_transport_udp_rx_total stayed at {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sbc.stop();
}

#[test]
fn without_a_token_only_health_ready_metrics_and_the_document_are_served() {
    let n = 2;
    let sbc = start(n, "api-no-token", "", "");
    assert!(
        sbc.log_text()
            .contains("only /health, /ready, /metrics and /openapi.json"),
        "{}",
        sbc.log_text()
    );
    let addr = api_addr(n);
    for (path, want) in [
        ("/health", 200),
        ("/metrics", 200),
        ("/openapi.json", 200),
        ("/api/v1/version", 403),
        ("/api/v1/bans", 403),
    ] {
        assert_eq!(http(addr, "GET", path, None, "").status, want, "{path}");
        // A token sent anyway changes nothing.
        assert_eq!(
            http(addr, "GET", path, Some(TOKEN), "").status,
            want,
            "{path}"
        );
    }
    let a = http(addr, "POST", "/api/v1/bans", None, r#"{"ip":"192.0.2.1"}"#);
    assert_eq!(a.status, 403);
    sbc.stop();
}

/// OPTIONS from `sock` to the SBC: whether an answer came within `wait`.
fn answered(sock: &UdpSocket, sbc: SocketAddr, cseq: u32, wait: Duration) -> bool {
    let local = sock.local_addr().unwrap();
    sock.send_to(
        &common::options("UDP", local, cseq, &format!("ban{cseq}")),
        sbc,
    )
    .unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.contains(&format!("ban{cseq}")) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn a_ban_over_the_api_blocks_a_sip_source_and_lifting_it_lets_it_back() {
    let n = 3;
    let sbc = start(n, "api-ban", &format!("token = \"{TOKEN}\""), "");
    let sip: SocketAddr = format!("{}:5060", ip(n, 1)).parse().unwrap();
    let source = ip(n, 9);
    let sock = UdpSocket::bind(format!("{source}:0")).unwrap();
    assert!(
        answered(&sock, sip, 1, Duration::from_secs(2)),
        "answered before the ban"
    );
    let body = format!("{{\"ip\":\"{source}\",\"secs\":600}}");
    let a = http(api_addr(n), "POST", "/api/v1/bans", Some(TOKEN), &body);
    assert_eq!(a.status, 200, "{}", a.text());
    // Every worker applies it on its next tick (at most 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    for cseq in 2..5 {
        assert!(
            !answered(&sock, sip, cseq, Duration::from_millis(500)),
            "a banned source was answered"
        );
    }
    let bans = get(n, "/api/v1/bans").json();
    let ban = &bans.as_array().unwrap()[0];
    assert_eq!(ban["ip"], source.as_str());
    assert_eq!(
        (ban["reason"].as_str(), ban["workers"].as_u64()),
        (Some("manual"), Some(2))
    );
    let left = ban["remaining_secs"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "{left}");
    let a = http(
        api_addr(n),
        "DELETE",
        &format!("/api/v1/bans/{source}"),
        Some(TOKEN),
        "",
    );
    assert_eq!(a.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        answered(&sock, sip, 5, Duration::from_secs(2)),
        "answered after the ban"
    );
    assert_eq!(get(n, "/api/v1/bans").json(), json!([]));
    sbc.stop();
}

/// `sbc ctl args...` with the token in the environment: exit code, stdout, stderr.
fn ctl(n: u8, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sbc"));
    cmd.arg("ctl")
        .args(args)
        .env("SBC_API_URL", format!("http://{}", api_addr(n)))
        .env_remove("SBC_API_TOKEN")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("SBC_API_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sbc_ctl_drives_the_api() {
    let n = 4;
    let sbc = start(n, "api-ctl", &format!("token = \"{TOKEN}\""), "");
    let (code, out, _) = ctl(n, None, &["health"]);
    assert_eq!((code, out.contains("\"ok\"")), (0, true), "{out}");
    let (code, _, err) = ctl(n, None, &["bans"]);
    assert_eq!(code, 1, "no token: refused");
    assert!(err.contains("401"), "{err}");
    let (code, out, err) = ctl(n, Some(TOKEN), &["ban", "192.0.2.44", "--secs", "600"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"workers\": 2"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, _) = ctl(n, Some(TOKEN), &["bans"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("192.0.2.44") && out.contains("manual"),
        "{out}"
    );
    // The token as a flag, and the allow list with a network's slash.
    let (code, _, err) = ctl(n, None, &["--token", TOKEN, "allow", "203.0.113.0/24"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = ctl(n, Some(TOKEN), &["allowed"]);
    assert!(
        out.contains("203.0.113.0/24") && out.contains("\"api\""),
        "{out}"
    );
    let (code, _, err) = ctl(n, Some(TOKEN), &["disallow", "203.0.113.0/24"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(n, Some(TOKEN), &["unban", "192.0.2.44"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(n, Some(TOKEN), &["ban", "not-an-ip"]);
    assert_eq!(code, 1);
    assert!(err.contains("422") && err.contains("\"ip\""), "{err}");
    let (code, out, _) = ctl(n, Some(TOKEN), &["metrics"]);
    assert_eq!(code, 0);
    assert!(out.contains("sbc_transport_udp_rx_total"), "{out}");
    let (code, _, err) = ctl(n, Some(TOKEN), &["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    sbc.stop();
}

#[test]
fn https_with_a_test_certificate() {
    let n = 5;
    let dir = TempDir::new("api-https-cert");
    let ck = rcgen::generate_simple_self_signed(vec![ip(n, 1)]).unwrap();
    let (cert, key) = (dir.path().join("api.pem"), dir.path().join("api.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let sbc = start(
        n,
        "api-https",
        &format!(
            "token_file = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            token_file.display(),
            cert.display(),
            key.display()
        ),
        "",
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let https = |path: &str, token: Option<&str>| -> Answer {
        let name = rustls::pki_types::ServerName::try_from(ip(n, 1)).unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let sock = TcpStream::connect(api_addr(n)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(&request_bytes("GET", path, token, b""))
            .unwrap();
        let mut raw = Vec::new();
        // The server closes without close_notify on some paths: what was read is the answer.
        let _ = tls.read_to_end(&mut raw);
        parse_answer(&raw)
    };
    assert_eq!(https("/health", None).json()["status"], "ok");
    assert_eq!(https("/api/v1/version", None).status, 401);
    let v = https("/api/v1/version", Some(TOKEN));
    assert_eq!(v.status, 200, "the token from api.token_file");
    assert_eq!(v.json()["workers"], 2);
    // `sbc ctl` over HTTPS: verified against the certificate given, refused against the system's roots.
    let url = format!("https://{}", api_addr(n));
    let pem = cert.display().to_string();
    let (code, out, err) = ctl(
        n,
        Some(TOKEN),
        &["--url", &url, "--cacert", &pem, "version"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"workers\": 2"), "{out}");
    let (code, _, err) = ctl(n, Some(TOKEN), &["--url", &url, "version"]);
    assert_eq!(code, 1, "a certificate no system root signed: {err}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut s = TcpStream::connect(api_addr(n)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(&request_bytes("GET", "/health", None, b""));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    sbc.stop();
}

#[test]
fn schemathesis_finds_no_server_error() {
    let n = 6;
    let sbc = start(n, "api-schemathesis", &format!("token = \"{TOKEN}\""), "");
    let url = format!("http://{}", api_addr(n));
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "schemathesis", "run"]);
    for op in NOT_SERVED_YET {
        cmd.args(["--exclude-operation-id", op]);
    }
    let out = cmd
        .arg(format!("{url}/openapi.json"))
        .args(["--url", &url])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "not_a_server_error,content_type_conformance,response_schema_conformance,status_code_conformance"])
        .args(["--max-examples", "25", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--seed", "20"])
        .current_dir(sbc.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis (PyPI; .ci/setup installs it)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found errors:\n{text}");
    // It really exercised the operations.
    // It tested every operation it selected: all but those not served yet.
    let selected: usize = text
        .split(" selected")
        .next()
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no operation count:\n{text}"));
    assert!(selected >= 20, "{text}");
    assert!(text.contains(&format!("Tested: {selected}")), "{text}");
    let log = sbc.stop();
    assert!(!log.contains("panicked"), "{log}");
}
