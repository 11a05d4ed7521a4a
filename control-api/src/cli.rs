//! `sbc ctl`: a command-line client over the API (plain HTTP, as the API listens on loopback by
//! default), printing the JSON answers. The address and token come from `--url`/`--token` or the
//! environment (`SBC_API_URL`, `SBC_API_TOKEN`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The usage text.
pub const USAGE: &str = "usage: sbc ctl [--url http://127.0.0.1:8080] [--token T] <command>
  (or SBC_API_URL, SBC_API_TOKEN in the environment)
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

/// `http://host:port` → `host:port`.
fn authority(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("--url {url}: only http:// is supported (for HTTPS, use curl --cacert)")
    })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!("--url {url}: expected http://host:port"));
    }
    Ok(if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// Send `call` to `addr`; the status and the body.
fn send(addr: &str, token: Option<&str>, call: &Call) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let t = Some(Duration::from_secs(10));
    let _ = (s.set_read_timeout(t), s.set_write_timeout(t));
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
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
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
    let opts = (take_opt(&mut args, "--url"), take_opt(&mut args, "--token"));
    let (url, token) = match opts {
        (Ok(u), Ok(t)) => (
            u.or_else(|| std::env::var("SBC_API_URL").ok())
                .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            t.or_else(|| std::env::var("SBC_API_TOKEN").ok()),
        ),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}\n{USAGE}");
            return 2;
        }
    };
    let (addr, call) = match (authority(&url), request(args)) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match send(&addr, token.as_deref(), &call) {
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
        assert_eq!(
            authority("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080"
        );
        assert!(authority("https://127.0.0.1:8443").is_err());
    }
}
