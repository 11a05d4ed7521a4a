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
//! | `.2:5090` | the PBX (a sipp UAS or a Rust user agent in the call tests; nothing listens else) |
//! | `.3:5090` | a second PBX (the call tests) |
//! | `.10`, `.4` | callers (a Rust user agent; sipp at `.4:5070`) |
//! | `.9` | a SIP source the API bans and lets back |

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{finish, logs, Sbc, TempDir};
use rtp::{sdp_body, Caller, Pbx};
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
    start_text(n, name, &text, !api.contains("tls_cert"))
}

/// The SBC of test `n` with the config `text`; waits until it is ready when `plain` (HTTP).
fn start_text(n: u8, name: &str, text: &str, plain: bool) -> Sbc {
    let sbc = Sbc::start_in(TempDir::new(name), "auto", 5060, text);
    assert!(
        sbc.log_text().contains("control API listening"),
        "{}",
        sbc.log_text()
    );
    if plain {
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

/// The operations the SBC answers 501 today: schemathesis leaves them out, as a 501 is a server
/// error to it. Every operation is served.
const NOT_SERVED_YET: &[&str] = &[];

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
/// answers (test 1: the PBX is 127.40.1.2:5090; no call or registration is in progress).
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
            200,
        ),
        ("POST", "/api/v1/config/reload", "", 200),
        ("GET", "/api/v1/calls?limit=1000&offset=0", "", 200),
        ("GET", "/api/v1/calls/0-1", "", 404),
        ("DELETE", "/api/v1/calls/0-1", "", 404),
        ("GET", "/api/v1/registrations?aor=sip", "", 200),
        ("DELETE", "/api/v1/registrations/sip:100@x", "", 404),
        ("GET", "/api/v1/targets", "", 200),
        ("POST", "/api/v1/targets/pbx/127.40.1.2:5090/drain", "", 200),
        ("GET", "/api/v1/trunks", "", 200),
        ("POST", "/api/v1/trunks/carrier/disable", "", 200),
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
        ("GET", "/api/v1/media/sessions?limit=10", "", 200),
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
    // The valid requests drained the PBX and disabled the trunk: both are shown so, with no
    // call on them.
    assert_eq!(
        get(n, "/api/v1/targets").json(),
        json!([{"name": "pbx", "targets": [
            {"address": format!("{}:5090", ip(n, 2)), "state": "disabled", "calls": 0}
        ]}])
    );
    assert_eq!(
        get(n, "/api/v1/trunks").json(),
        json!([{"name": "carrier", "state": "disabled", "registered": null, "calls": 0}])
    );
    let a = http(
        addr,
        "POST",
        "/api/v1/trunks/carrier/enable",
        Some(TOKEN),
        "",
    );
    assert_eq!(a.json(), json!({"workers": 2, "of": 2}));
    assert_eq!(get(n, "/api/v1/trunks").json()[0]["state"], "up");
    assert_eq!(
        get(n, "/api/v1/calls").json(),
        json!({"items": [], "total": 0, "limit": 100, "offset": 0})
    );
    let check = http(
        addr,
        "POST",
        "/api/v1/config/check",
        Some(TOKEN),
        r#"{"toml":"workers = 2\n[sip]\nudp = 5"}"#,
    )
    .json();
    assert_eq!(check["ok"], false, "{check}");
    let e = check["error"].as_str().unwrap();
    assert!(e.contains("udp") && e.contains("line 3"), "{e}");
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
        (
            "POST",
            "/api/v1/config/check",
            r#"{"toml":5}"#,
            422,
            Some("toml"),
        ),
        (
            "POST",
            "/api/v1/config/check",
            r#"{"toml":"workers = 1","apply":true}"#,
            422,
            Some("apply"),
        ),
        ("POST", "/api/v1/config/check", "{}", 422, Some("toml")),
        ("POST", "/api/v1/config/reload", r#"{"x":1}"#, 400, None),
        ("GET", "/api/v1/calls?state=bogus", "", 422, Some("state")),
        ("GET", "/api/v1/calls?limit=0", "", 400, Some("limit")),
        ("GET", "/api/v1/calls?offset=x", "", 400, Some("offset")),
        ("GET", "/api/v1/calls/abc", "", 404, None),
        ("DELETE", "/api/v1/calls/9-1", "", 404, None),
        (
            "GET",
            "/api/v1/registrations?limit=1001",
            "",
            400,
            Some("limit"),
        ),
        ("GET", "/api/v1/registrations?user=x", "", 400, Some("user")),
        (
            "GET",
            "/api/v1/media/sessions?offset=-1",
            "",
            400,
            Some("offset"),
        ),
        ("GET", "/api/v1/targets?limit=1", "", 400, Some("limit")),
        (
            "POST",
            "/api/v1/targets/pbx/not-an-address/drain",
            "",
            422,
            Some("target"),
        ),
        (
            "POST",
            "/api/v1/targets/nope/127.40.1.2:5090/drain",
            "",
            404,
            None,
        ),
        (
            "POST",
            "/api/v1/targets/pbx/127.40.1.2:5090/explode",
            "",
            404,
            Some("action"),
        ),
        ("POST", "/api/v1/trunks/nope/disable", "", 404, None),
        (
            "POST",
            "/api/v1/trunks/carrier/pause",
            "",
            404,
            Some("action"),
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
    let huge_toml = format!("{{\"toml\":\"# {}\"}}", "x".repeat(1 << 20));
    assert_eq!(
        http(addr, "POST", "/api/v1/config/check", t, &huge_toml).status,
        413
    );
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

// ------------------------------------------------------------------------------------------------
// Live effects: calls through the SBC, changed over the API.

const T: Duration = Duration::from_secs(5);

fn sock(n: u8, host: u8, port: u16) -> SocketAddr {
    format!("{}:{port}", ip(n, host)).parse().unwrap()
}

fn api(n: u8, method: &str, path: &str, body: &str) -> Answer {
    http(api_addr(n), method, path, Some(TOKEN), body)
}

/// Ask `path` until `done` holds for its JSON (at most 5 s); the last answer.
fn poll(n: u8, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let v = get(n, path).json();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The SBC of test `n` with the API and two PBXs: `pbx` (.2, priority 0, then .3, priority 1)
/// and `pbx2` (.3 only); every call from the outside goes to `route_to`. `more`: more
/// configuration (before `[api]`).
fn two_pbx_config(n: u8, route_to: &str, more: &str) -> String {
    format!(
        "workers = 2\n\
         [sip]\nudp = [\"{o}:5060\"]\ntcp = []\n\
         [inside]\naddress = \"{i}\"\nport = 5080\ntargets = [\"pbx\", \"pbx2\"]\n\
         [media]\nenabled = false\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{a}:5090\", transport = \"udp\", priority = 0 }}, \
         {{ address = \"{b}:5090\", transport = \"udp\", priority = 1 }}]\n\
         options_interval_secs = 0\n\
         [[target_group]]\nname = \"pbx2\"\n\
         targets = [{{ address = \"{b}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"all\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"{route_to}\"\n\
         {more}\n\
         [api]\nenabled = true\nlisten = \"{o}:8080\"\ntoken = \"{TOKEN}\"\n",
        o = ip(n, 1),
        i = ip(n, 11),
        a = ip(n, 2),
        b = ip(n, 3),
    )
}

/// A call from `caller` answered by `pbx`; the PBX has the ACK.
fn answered_call(n: u8, caller: &mut Caller, pbx: &mut Pbx) {
    caller.send_invite(&sdp_body("alice", 1, &ip(n, 10), 40000, "sendrecv", false));
    pbx.answer_invite(T, |_| {
        sdp_body("pbx", 1, &ip(n, 2), 41000, "sendrecv", false)
    });
    let ok = caller.finish_invite(T);
    assert_eq!(ok.status(), Some(200));
    pbx.expect_ack(T);
}

/// Hang up `caller`'s call from its side; `pbx` gets the BYE.
fn hang_up(caller: &mut Caller, pbx: &mut Pbx) {
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some(), "the BYE reached the PBX");
    assert_eq!(caller.finish_bye(T).status(), Some(200));
}

fn no_invite(pbx: &mut Pbx) -> bool {
    pbx.recv_request(&sbc_sip::Method::Invite, Duration::from_millis(300))
        .is_none()
}

/// A sipp run of `scenario` (of `scenarios/b2bua/`) at `local`, toward `remote`.
fn sipp(
    dir: &std::path::Path,
    scenario: &str,
    local: (&str, u16),
    remote: Option<&str>,
    extra: &[&str],
) -> std::process::Child {
    let mut args = vec!["-m", "1", "-timeout", "40s", "-timeout_error"];
    args.extend_from_slice(extra);
    common::sipp_with(dir, scenario, local, remote, &args)
}

#[test]
fn a_call_is_listed_and_hung_up_over_the_api() {
    let n = 7;
    let sbc = start(n, "api-hangup", &format!("token = \"{TOKEN}\""), "");
    let dir = sbc.dir.path().to_owned();
    // The callee waits (up to 30 s) for the BYE; so does the caller: neither hangs up itself.
    let callee = sipp(&dir, "uas_basic.xml", (&ip(n, 2), 5090), None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let sbc_sip = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        &dir,
        "uac_wait_bye.xml",
        (&ip(n, 4), 5070),
        Some(&sbc_sip),
        &["-s", "1000"],
    );
    let page = poll(n, "/api/v1/calls", |v| {
        v["total"] == 1 && v["items"][0]["state"] == "confirmed"
    });
    let call = &page["items"][0];
    let id = call["id"].as_str().unwrap().to_owned();
    assert_eq!(call["caller"], "sipp", "{call}");
    assert_eq!(call["callee"], "1000", "{call}");
    assert_eq!(call["target"], format!("{}:5090", ip(n, 2)), "{call}");
    assert_eq!(call["legs"][0]["side"], "outside", "{call}");
    assert_eq!(call["legs"][0]["remote"], format!("{}:5070", ip(n, 4)));
    assert_eq!(call["legs"][1]["side"], "inside", "{call}");
    assert_eq!(get(n, &format!("/api/v1/calls/{id}")).json(), *call);
    for (q, total) in [
        ("state=confirmed", 1),
        ("state=ringing", 0),
        ("callee=100", 1),
        ("caller=sip", 1),
        ("caller=bob", 0),
        ("trunk=carrier", 0),
        ("limit=1&offset=1", 1),
    ] {
        let v = get(n, &format!("/api/v1/calls?{q}")).json();
        assert_eq!(v["total"], total, "{q}: {v}");
    }
    assert_eq!(
        get(n, "/api/v1/calls?limit=1&offset=1").json()["items"],
        json!([])
    );
    let t = get(n, "/api/v1/targets").json();
    assert_eq!(t[0]["targets"][0]["calls"], 1, "{t}");
    assert_eq!(get(n, "/api/v1/media/sessions").json()["total"], 0);

    let a = api(n, "DELETE", &format!("/api/v1/calls/{id}"), "");
    assert_eq!(a.status, 200, "{}", a.text());
    let (cs, ce) = finish(caller);
    let (us, ue) = finish(callee);
    assert!(
        cs.success() && us.success(),
        "both sides got the BYE and answered it: caller {cs} {ce}\ncallee {us} {ue}\n{}\n{}",
        logs(&dir, "u"),
        sbc.log_text()
    );
    poll(n, "/api/v1/calls", |v| v["total"] == 0);
    assert_eq!(
        api(n, "DELETE", &format!("/api/v1/calls/{id}"), "").status,
        404
    );
    assert_eq!(get(n, &format!("/api/v1/calls/{id}")).status, 404);
    let log = sbc.stop();
    assert!(log.contains("api: call hung up"), "{log}");
}

#[test]
fn a_drained_or_disabled_target_gets_no_new_call() {
    let n = 8;
    let sbc = start_text(n, "api-drain", &two_pbx_config(n, "pbx", ""), true);
    let sbc_addr = sock(n, 1, 5060);
    let (first, second) = (format!("{}:5090", ip(n, 2)), format!("{}:5090", ip(n, 3)));
    let mut pbx = Pbx::pbx(sock(n, 2, 5090));
    let mut pbx_b = Pbx::pbx(sock(n, 3, 5090));

    let mut one = Caller::caller(sock(n, 10, 5070), sbc_addr, "100");
    answered_call(n, &mut one, &mut pbx);
    let a = api(n, "POST", &format!("/api/v1/targets/pbx/{first}/drain"), "");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json(), json!({"workers": 2, "of": 2}));
    let groups = get(n, "/api/v1/targets").json();
    assert_eq!(
        groups[0]["targets"],
        json!([
            {"address": first, "state": "draining", "calls": 1},
            {"address": second, "state": "up", "calls": 0},
        ]),
        "{groups}"
    );

    // The next call goes to the group's other target, none to the drained one.
    let mut two = Caller::caller(sock(n, 10, 5071), sbc_addr, "200");
    answered_call(n, &mut two, &mut pbx_b);
    assert!(no_invite(&mut pbx));
    // The call on the drained target goes on until it ends; then the target is drained.
    hang_up(&mut one, &mut pbx);
    poll(n, "/api/v1/targets", |v| {
        v[0]["targets"][0] == json!({"address": first, "state": "disabled", "calls": 0})
    });

    // Both targets of the group disabled: a new call is refused, and reaches neither PBX.
    let a = api(
        n,
        "POST",
        &format!("/api/v1/targets/pbx/{second}/disable"),
        "",
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let mut three = Caller::caller(sock(n, 10, 5072), sbc_addr, "300");
    three.send_invite(&sdp_body("alice", 1, &ip(n, 10), 40002, "sendrecv", false));
    let refused = three.finish_invite(T);
    let status = refused.status().unwrap_or(0);
    assert!((400..700).contains(&status), "refused: {status}");
    assert!(no_invite(&mut pbx) && no_invite(&mut pbx_b));
    // The call on the disabled target goes on.
    hang_up(&mut two, &mut pbx_b);

    // Every target of the group enabled again (`*`): calls go to the first target again.
    let a = api(n, "POST", "/api/v1/targets/pbx/*/enable", "");
    assert_eq!(a.status, 200, "{}", a.text());
    let mut four = Caller::caller(sock(n, 10, 5073), sbc_addr, "400");
    answered_call(n, &mut four, &mut pbx);
    hang_up(&mut four, &mut pbx);
    sbc.stop();
}

#[test]
fn a_reload_over_the_api_changes_routing_and_keeps_the_call_up() {
    let n = 9;
    let sbc = start_text(n, "api-reload", &two_pbx_config(n, "pbx", ""), true);
    let file = sbc.dir.path().join("sbc.toml");
    let sbc_addr = sock(n, 1, 5060);
    let mut pbx = Pbx::pbx(sock(n, 2, 5090));
    let mut pbx2 = Pbx::pbx(sock(n, 3, 5090));

    let mut first = Caller::caller(sock(n, 10, 5070), sbc_addr, "100");
    answered_call(n, &mut first, &mut pbx);
    // A rule added over the API: the reload puts the file's rules in force instead.
    let a = api(
        n,
        "POST",
        "/api/v1/rules",
        r#"{"name":"api-rule","max_calls":9}"#,
    );
    assert_eq!(a.status, 200, "{}", a.text());

    // Checked first: valid, what would change; nothing is applied.
    let new = two_pbx_config(
        n,
        "pbx2",
        "[[rules]]\nname = \"from-file\"\ncallee_blacklist = [\"+49900*\"]\n",
    );
    let check = api(
        n,
        "POST",
        "/api/v1/config/check",
        &json!({ "toml": new }).to_string(),
    );
    assert_eq!(check.status, 200, "{}", check.text());
    assert_eq!(
        check.json(),
        json!({"ok": true, "changed": ["route", "rules/fraud"], "restart_needed": []})
    );
    assert_eq!(
        get(n, "/api/v1/config").json()["config"]["route"][0]["target_group"],
        "pbx"
    );

    std::fs::write(&file, &new).unwrap();
    let r = api(n, "POST", "/api/v1/config/reload", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"ok": true, "changed": ["route", "rules/fraud"], "restart_needed": [], "workers": 2})
    );
    // The API's own view follows the file now in force.
    assert_eq!(
        get(n, "/api/v1/config").json()["config"]["route"][0]["target_group"],
        "pbx2"
    );
    let names: Vec<Value> = get(n, "/api/v1/rules")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert!(names.contains(&json!("from-file")), "{names:?}");
    assert!(!names.contains(&json!("api-rule")), "{names:?}");

    // The call set up before is still up; a new call follows the new route.
    let calls = get(n, "/api/v1/calls").json();
    assert_eq!(calls["total"], 1, "{calls}");
    assert_eq!(calls["items"][0]["state"], "confirmed");
    let mut second = Caller::caller(sock(n, 10, 5071), sbc_addr, "200");
    answered_call(n, &mut second, &mut pbx2);
    assert!(no_invite(&mut pbx));
    hang_up(&mut first, &mut pbx);

    // A bad file is refused naming key and line; the configuration in force stays.
    let bad = two_pbx_config(n, "nope", "");
    let at = bad.lines().position(|l| l.contains("\"nope\"")).unwrap() + 1;
    std::fs::write(&file, bad).unwrap();
    let r = api(n, "POST", "/api/v1/config/reload", "");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.field().as_deref(), Some("target_group"), "{}", r.text());
    let e = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        e.contains("\"nope\"") && e.contains(&format!("line {at}")),
        "{e}"
    );
    assert_eq!(
        get(n, "/api/v1/config").json()["config"]["route"][0]["target_group"],
        "pbx2"
    );
    let mut third = Caller::caller(sock(n, 10, 5072), sbc_addr, "300");
    answered_call(n, &mut third, &mut pbx2);
    assert!(no_invite(&mut pbx));
    hang_up(&mut third, &mut pbx2);
    hang_up(&mut second, &mut pbx2);
    let log = sbc.stop();
    assert!(log.contains("configuration reload refused"), "{log}");
}
