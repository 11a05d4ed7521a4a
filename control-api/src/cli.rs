//! `sbc ctl`: a command-line client over the API (HTTP, or HTTPS verified against `--cacert` or
//! the system's roots), printing the JSON answers. The address, token and CA file come from
//! `--url`/`--token`/`--cacert` or the environment (`SBC_API_URL`, `SBC_API_TOKEN`,
//! `SBC_API_CACERT`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

/// The usage text.
pub const USAGE: &str =
    "usage: sbc ctl [--url http://127.0.0.1:8080] [--token T] [--cacert PEM] <command>
  (or SBC_API_URL, SBC_API_TOKEN, SBC_API_CACERT in the environment; https:// URLs are verified
  against --cacert, else the system's roots)
commands:
  health | ready | version | config | metrics
  calls [--limit N] [--offset N] | call ID | hangup ID
  registrations [--limit N] [--offset N] | unregister AOR
  targets | target GROUP TARGET enable|disable|drain
  trunks | trunk NAME enable|disable|drain
  bans | ban IP [--secs N] | unban IP
  allowed | allow NETWORK | disallow NETWORK
  rules | rule-add NAME LIST ENTRY | rule-remove NAME LIST ENTRY
  fraud-rules | fraud-events [--limit N] [--offset N]
  sessions | check FILE | reload";

/// A request the command makes: method, path with query, JSON body.
#[derive(Debug, PartialEq, Eq)]
struct Call {
    method: &'static str,
    path: String,
    body: Option<String>,
}

/// Percent-encode one path segment.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@+*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `--name value` options of `args` (removed from it) and the rest.
fn take_opt(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            if i + 1 >= args.len() {
                return Err(format!("{name} needs a value"));
            }
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn paging(args: &mut Vec<String>) -> Result<String, String> {
    let mut q = Vec::new();
    for k in ["limit", "offset"] {
        if let Some(v) = take_opt(args, &format!("--{k}"))? {
            q.push(format!("{k}={}", seg(&v)));
        }
    }
    Ok(if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    })
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The request of a command line (after the global options).
fn request(mut args: Vec<String>) -> Result<Call, String> {
    let get = |path: String| Call {
        method: "GET",
        path,
        body: None,
    };
    let q = paging(&mut args)?;
    let secs = take_opt(&mut args, "--secs")?;
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let v1 = |p: &str| format!("/api/v1/{p}");
    Ok(match a.as_slice() {
        ["health"] => get("/health".into()),
        ["ready"] => get("/ready".into()),
        ["metrics"] => get("/metrics".into()),
        ["version"] => get(v1("version")),
        ["config"] => get(v1("config")),
        ["calls"] => get(v1(&format!("calls{q}"))),
        ["call", id] => get(v1(&format!("calls/{}", seg(id)))),
        ["hangup", id] => Call {
            method: "DELETE",
            path: v1(&format!("calls/{}", seg(id))),
            body: None,
        },
        ["registrations"] => get(v1(&format!("registrations{q}"))),
        ["unregister", aor] => Call {
            method: "DELETE",
            path: v1(&format!("registrations/{}", seg(aor))),
            body: None,
        },
        ["targets"] => get(v1("targets")),
        ["target", g, t, action] => Call {
            method: "POST",
            path: v1(&format!("targets/{}/{}/{}", seg(g), seg(t), seg(action))),
            body: None,
        },
        ["trunks"] => get(v1("trunks")),
        ["trunk", n, action] => Call {
            method: "POST",
            path: v1(&format!("trunks/{}/{}", seg(n), seg(action))),
            body: None,
        },
        ["bans"] => get(v1("bans")),
        ["ban", ip] => {
            let secs = match &secs {
                Some(s) => s
                    .parse::<u64>()
                    .map_err(|_| format!("--secs: not a number: {s}"))?
                    .to_string(),
                None => "null".into(),
            };
            Call {
                method: "POST",
                path: v1("bans"),
                body: Some(format!("{{\"ip\":{},\"secs\":{secs}}}", json_str(ip))),
            }
        }
        ["unban", ip] => Call {
            method: "DELETE",
            path: v1(&format!("bans/{}", seg(ip))),
            body: None,
        },
        ["allowed"] => get(v1("allow")),
        ["allow", net] => Call {
            method: "POST",
            path: v1("allow"),
            body: Some(format!("{{\"network\":{}}}", json_str(net))),
        },
        ["disallow", net] => Call {
            method: "DELETE",
            path: v1(&format!("allow/{}", seg(net))),
            body: None,
        },
        ["rules"] => get(v1("rules")),
        ["rule-add", name, list, entry] => Call {
            method: "POST",
            path: v1(&format!("rules/{}/{}", seg(name), seg(list))),
            body: Some(format!("{{\"entry\":{}}}", json_str(entry))),
        },
        ["rule-remove", name, list, entry] => Call {
            method: "DELETE",
            path: v1(&format!("rules/{}/{}/{}", seg(name), seg(list), seg(entry))),
            body: None,
        },
        ["fraud-rules"] => get(v1("fraud/rules")),
        ["fraud-events"] => get(v1(&format!("fraud/events{q}"))),
        ["sessions"] => get(v1(&format!("media/sessions{q}"))),
        ["check", file] => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            Call {
                method: "POST",
                path: v1("config/check"),
                body: Some(format!("{{\"toml\":{}}}", json_str(&text))),
            }
        }
        ["reload"] => Call {
            method: "POST",
            path: v1("config/reload"),
            body: None,
        },
        _ => return Err(USAGE.into()),
    })
}

/// Where the system keeps its trusted roots (one PEM bundle).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The server: `host:port`, and for `https://` the name to verify and the TLS settings.
struct Endpoint {
    addr: String,
    tls: Option<(
        rustls::pki_types::ServerName<'static>,
        Arc<rustls::ClientConfig>,
    )>,
}

/// `http://host:port` or `https://host:port` (port 80 or 443 when absent) → `(https, host, addr)`.
fn authority(url: &str) -> Result<(bool, String, String), String> {
    let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => {
            return Err(format!(
                "--url {url}: expected http://host:port or https://host:port"
            ))
        }
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') {
        return Err(format!("--url {url}: expected http://host:port"));
    }
    let (host, addr) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, hostport.to_string()),
        _ => (
            hostport,
            format!("{hostport}:{}", if https { 443 } else { 80 }),
        ),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((https, host, addr))
}

/// The roots of PEM file `path`.
fn roots(path: &str) -> Result<rustls::RootCertStore, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
        let c = c.map_err(|e| format!("{path}: {e}"))?;
        store.add(c).map_err(|e| format!("{path}: {e}"))?;
    }
    if store.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(store)
}

fn endpoint(url: &str, cacert: Option<&str>) -> Result<Endpoint, String> {
    let (https, host, addr) = authority(url)?;
    if !https {
        return Ok(Endpoint { addr, tls: None });
    }
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| format!("--url {url}: {host}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots(cacert.unwrap_or(SYSTEM_ROOTS))?)
        .with_no_client_auth();
    Ok(Endpoint {
        addr,
        tls: Some((name, Arc::new(config))),
    })
}

/// Send `call` to `to`; the status and the body.
fn send(to: &Endpoint, token: Option<&str>, call: &Call) -> Result<(u16, String), String> {
    let addr = &to.addr;
    let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let t = Some(Duration::from_secs(10));
    let _ = (s.set_read_timeout(t), s.set_write_timeout(t));
    match &to.tls {
        None => exchange(s, addr, token, call),
        Some((name, config)) => {
            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| format!("{addr}: {e}"))?;
            exchange(rustls::StreamOwned::new(conn, s), addr, token, call)
        }
    }
}

/// Write the request of `call` on `s` and read the answer to the end.
fn exchange(
    mut s: impl Read + Write,
    addr: &str,
    token: Option<&str>,
    call: &Call,
) -> Result<(u16, String), String> {
    let body = call.body.as_deref().unwrap_or("");
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n",
        call.method, call.path
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if call.body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify still gave its whole answer (Connection: close).
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(format!("read from {addr}: {e}"));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    Ok((status, body.to_string()))
}

/// Run `sbc ctl` with `args` (after `ctl`); the process's exit code: 0 for a 2xx answer, 1 for
/// an error answer or no answer, 2 for a bad command line.
pub fn main(args: &[String]) -> i32 {
    let mut args = args.to_vec();
    let mut opt = |name: &str, env: &str| -> Result<Option<String>, String> {
        Ok(take_opt(&mut args, name)?.or_else(|| std::env::var(env).ok()))
    };
    let opts = (
        opt("--url", "SBC_API_URL"),
        opt("--token", "SBC_API_TOKEN"),
        opt("--cacert", "SBC_API_CACERT"),
    );
    let (url, token, cacert) = match opts {
        (Ok(u), Ok(t), Ok(c)) => (u.unwrap_or_else(|| "http://127.0.0.1:8080".into()), t, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}\n{USAGE}");
            return 2;
        }
    };
    let (to, call) = match (endpoint(&url, cacert.as_deref()), request(args)) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match send(&to, token.as_deref(), &call) {
        Ok((status, body)) if (200..300).contains(&status) => {
            println!("{}", pretty(&body));
            0
        }
        Ok((status, body)) => {
            eprintln!("HTTP {status}: {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// JSON indented; any other text as it is.
fn pretty(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_string()),
        Err(_) => body.trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Result<Call, String> {
        request(line.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn commands_become_requests() {
        let c = req("ban 192.0.2.1 --secs 600").unwrap();
        assert_eq!((c.method, c.path.as_str()), ("POST", "/api/v1/bans"));
        assert_eq!(
            c.body.as_deref(),
            Some("{\"ip\":\"192.0.2.1\",\"secs\":600}")
        );
        assert_eq!(
            req("disallow 10.0.0.0/8").unwrap().path,
            "/api/v1/allow/10.0.0.0%2F8"
        );
        assert_eq!(
            req("calls --limit 5").unwrap().path,
            "/api/v1/calls?limit=5"
        );
        assert!(req("ban 1.2.3.4 --secs x").is_err());
        assert!(req("bogus").is_err());
        let a = |u: &str| authority(u).unwrap();
        let s = |x: &str| x.to_string();
        assert_eq!(
            a("http://127.0.0.1:8080/"),
            (false, s("127.0.0.1"), s("127.0.0.1:8080"))
        );
        assert_eq!(
            a("https://sbc.example"),
            (true, s("sbc.example"), s("sbc.example:443"))
        );
        assert_eq!(a("http://[::1]:8080"), (false, s("::1"), s("[::1]:8080")));
        assert!(authority("ftp://x").is_err());
    }
}
