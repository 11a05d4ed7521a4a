//! TCP and TLS both ways, end to end: the real `sbc` binary opening and reusing its own connections
//! toward TCP and TLS next hops, reaching phones over the connection they registered on, and
//! bounding the connections it accepts. Each test on its own loopback addresses (127.35.<n>.x):
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP, TCP; TLS on 5061) |
//! | `.11:5080` | the SBC, inside (shared port; workers on 5081, 5082) |
//! | `.2:5090` | the PBX (sipp UAS over TCP, or the registrar) / `.2:5061` the TLS trunk (a rustls peer) |
//! | `.3:5070` | the caller outside (sipp UAC over UDP) |
//! | `.4:5070` | the PBX placing a call (sipp UAC) |
//! | `.5:5070` | the phone registered over TCP (sipp) |
//!
//! Certificates are made in the test with the `openssl` command line: a CA, the trunk's
//! certificate (DNS `trunk.test`, IP of the trunk) and the SBC's client certificate.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{finish, logs, scenario, sipp, Sbc, TempDir};

fn ip(n: u8, host: u8) -> String {
    format!("127.35.{n}.{host}")
}

/// The SBC of test `n` on `driver`: UDP and TCP outside, `extra` sections appended (TOML).
fn start_sbc(n: u8, name: &str, driver: &str, extra: &str) -> Sbc {
    let outside = ip(n, 1);
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{outside}:5060\"]\ntcp = [\"{outside}:5060\"]\n\
         [media]\nport_min = 20000\nport_max = 20199\n\
         {extra}\n",
    );
    Sbc::start_in(TempDir::new(name), driver, 5060, &text)
}

/// `[inside]` on `.11:5080` with the PBX group `pbx` of `targets`, and the route of every outside
/// call to it.
fn inside_pbx(n: u8, targets: &str) -> String {
    format!(
        "[inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{targets}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n",
        ip(n, 11)
    )
}

/// The counter `name` as the SBC logged it at stop (summed over the lines that carry it).
fn counter(log: &str, name: &str) -> u64 {
    let key = format!("{name}: ");
    log.match_indices(&key)
        .filter_map(|(i, _)| {
            let rest = &log[i + key.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

// ---- a TCP PBX ----

/// A call from an outside UDP phone to a PBX configured with `transport = "tcp"` (sipp `-t t1`,
/// which listens on TCP only): the SBC connects to the PBX and the whole call runs over that
/// connection.
#[test]
fn tcp_pbx_takes_a_call_from_a_udp_phone() {
    tcp_pbx_call(1, "auto", "", "300", None);
}

/// [`tcp_pbx_takes_a_call_from_a_udp_phone`] on the epoll driver.
#[test]
fn tcp_pbx_takes_a_call_on_the_epoll_driver() {
    tcp_pbx_call(9, "epoll", "", "300", None);
}

/// The idle timer (2 s here) does not close the connection to the PBX under a live call: a call of
/// 4.5 s without a message in between ends with its BYE over the same connection.
#[test]
fn idle_timer_spares_a_connection_with_a_live_call() {
    let log = tcp_pbx_call(
        11,
        "auto",
        "[transport]\ntcp_idle_timeout_secs = 2\n",
        "4500",
        None,
    );
    assert_eq!(counter(&log, "tcp_idle_closed"), 0, "{log}");
}

/// A call of `ms` from an outside UDP phone to a TCP PBX through the SBC of test `n` on `driver`
/// (`top`: more settings); the SBC's log.
fn tcp_pbx_call(n: u8, driver: &str, top: &str, ms: &str, dead_first: Option<&str>) -> String {
    let mut pbx = format!(
        "{{ address = \"{}:5090\", transport = \"tcp\", priority = 1 }}",
        ip(n, 2)
    );
    if let Some(dead) = dead_first {
        pbx = format!("{{ address = \"{dead}\", transport = \"tcp\" }}, {pbx}");
    }
    let extra = format!("{top}{}", inside_pbx(n, &pbx));
    let sbc = start_sbc(n, &format!("tcp-pbx-{n}"), driver, &extra);
    let dir = sbc.dir.path().to_owned();
    let callee = sipp(
        &dir,
        "uas_basic.xml",
        (&ip(n, 2), 5090),
        None,
        &["-t", "t1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        &dir,
        "uac_basic.xml",
        (&ip(n, 3), 5070),
        Some(&target),
        &["-s", "1000", "-d", ms],
    );
    let (uac_status, uac_err) = finish(caller);
    let (uas_status, uas_err) = finish(callee);
    let sipp_logs = logs(&dir, "u");
    let log = sbc.stop();
    assert!(
        uac_status.success() && uas_status.success(),
        "caller: {uac_status} {uac_err}\npbx: {uas_status} {uas_err}\n{sipp_logs}\n{log}"
    );
    // Over TCP, as the SBC's Via says, on one connection the SBC opened.
    assert!(
        sipp_logs.contains(&format!("Via: SIP/2.0/TCP {}:508", ip(n, 11))),
        "{sipp_logs}"
    );
    // One connection made, to the PBX that took the call.
    let made = counter(&log, "tcp_connects") - counter(&log, "tcp_connect_failures");
    assert_eq!(made, 1, "{log}");
    assert!(log.contains("live_calls: 0,"), "{log}");
    log
}

/// A PBX group whose first member refuses connections (nothing listens there): the INVITE fails
/// at once and goes on to the next member, which takes the call in well under Timer B's 32 s.
#[test]
fn refused_connection_fails_over_at_once() {
    let n = 12;
    let start = Instant::now();
    let log = tcp_pbx_call(n, "auto", "", "300", Some(&format!("{}:5090", ip(n, 6))));
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(counter(&log, "tcp_connect_failures"), 1, "{log}");
    assert!(counter(&log, "call_failovers") >= 1, "{log}");
}

// ---- a TLS trunk ----

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `trunk.test` and `server_ip`, and a client certificate, all
/// signed by the CA: `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key` in `dir`.
fn make_pki(dir: &Path, server_ip: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sbc test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (who, cn, ext) in [
        (
            "server",
            "trunk.test",
            format!(
                "subjectAltName=DNS:trunk.test,IP:{server_ip}\nextendedKeyUsage=serverAuth\n\
                 basicConstraints=CA:FALSE\n"
            ),
        ),
        (
            "client",
            "sbc.test",
            "subjectAltName=DNS:sbc.test\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
                .to_owned(),
        ),
    ] {
        std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
        let (key, csr, pem, extf, subj) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
            format!("/CN={cn}"),
        );
        let mut req = vec!["req"];
        req.extend_from_slice(&ec);
        req.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extf,
            ],
        );
    }
}

fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let f = std::fs::File::open(path).unwrap();
    rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The trunk's TLS server: its certificate, and a client certificate required (mutual TLS).
fn trunk_tls_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&dir.join("ca.pem")) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = {
        let f = std::fs::File::open(dir.join("server.key")).unwrap();
        rustls_pemfile::private_key(&mut std::io::BufReader::new(f))
            .unwrap()
            .unwrap()
    };
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pem_certs(&dir.join("server.pem")), key)
            .unwrap(),
    )
}

/// A TCP stream that keeps a copy of every byte read from the wire.
struct Tap {
    sock: TcpStream,
    wire: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.wire.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// What the trunk saw on its one connection.
#[derive(Debug, Default)]
struct TrunkSaw {
    /// The decrypted requests, in order.
    requests: Vec<String>,
    /// Every byte as it came over the wire.
    wire: Vec<u8>,
    /// The SNI the client sent.
    sni: Option<String>,
    /// Whether the client presented a certificate.
    client_cert: bool,
    /// How the session ended, when it failed.
    error: Option<String>,
}

/// The next whole SIP message of `buf` (header section and Content-Length body), removed.
fn take_message(buf: &mut Vec<u8>) -> Option<String> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("l"))
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let msg = String::from_utf8_lossy(&buf[..end + len]).into_owned();
    buf.drain(..end + len);
    Some(msg)
}

/// The 486 of request `req`: its Via, From, Call-ID and CSeq, To with a tag.
fn busy(req: &str) -> String {
    let mut out = String::from("SIP/2.0 486 Busy Here\r\n");
    for l in req.lines() {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(l);
                out.push_str(";tag=trunk1\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// A carrier trunk over TLS (rustls, client certificate required): takes one connection, answers
/// an INVITE with 486 and waits for its ACK, for at most `wait`.
fn tls_trunk(listener: TcpListener, config: Arc<rustls::ServerConfig>, wait: Duration) -> TrunkSaw {
    let mut saw = TrunkSaw::default();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    let sock = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                saw.error = Some(format!("no connection: {e}"));
                return saw;
            }
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut conn = rustls::ServerConnection::new(config).unwrap();
    let mut tap = Tap {
        sock,
        wire: Vec::new(),
    };
    let mut plain = Vec::new();
    let mut answered = false;
    while Instant::now() < deadline {
        if conn.wants_write() {
            if let Err(e) = conn.write_tls(&mut tap) {
                saw.error = Some(format!("write: {e}"));
                break;
            }
            continue;
        }
        match conn.read_tls(&mut tap) {
            Ok(0) => {
                saw.error.get_or_insert("closed by the SBC".into());
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => {
                saw.error = Some(format!("read: {e}"));
                break;
            }
        }
        if let Err(e) = conn.process_new_packets() {
            saw.error = Some(format!("tls: {e}"));
            let _ = conn.write_tls(&mut tap);
            break;
        }
        if !conn.is_handshaking() {
            saw.sni = conn.server_name().map(str::to_owned);
            saw.client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
        }
        let mut buf = [0u8; 4096];
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(k) => plain.extend_from_slice(&buf[..k]),
                Err(_) => break,
            }
        }
        while let Some(msg) = take_message(&mut plain) {
            if msg.starts_with("INVITE ") {
                conn.writer().write_all(busy(&msg).as_bytes()).unwrap();
            }
            answered |= msg.starts_with("ACK ");
            saw.requests.push(msg);
        }
        if answered {
            break;
        }
    }
    saw.wire = tap.wire;
    saw
}

/// The SBC of test `n` with a carrier trunk over TLS at `.2:5061` (verified as `server_name`, the
/// SBC's client certificate presented), the PBX at `.4:5070`, and the route of every call of the
/// PBX to the trunk.
fn start_tls_trunk_sbc(n: u8, name: &str, pki: &Path, server_name: &str) -> Sbc {
    let trunk = format!(
        "[tls]\nca_file = \"{ca}\"\nclient_cert = \"{cc}\"\nclient_key = \"{ck}\"\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{{ address = \"{pbx}:5070\" }}]\n\
         options_interval_secs = 0\n\
         [[trunk]]\nname = \"carrier\"\ntransport = \"tls\"\nserver_name = \"{server_name}\"\n\
         outbound = {{ proxy = \"{trunk}:5061\" }}\noptions_interval_secs = 0\n\
         [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
        ca = pki.join("ca.pem").display(),
        cc = pki.join("client.pem").display(),
        ck = pki.join("client.key").display(),
        inside = ip(n, 11),
        pbx = ip(n, 4),
        trunk = ip(n, 2),
    );
    start_sbc(n, name, "auto", &trunk)
}

/// The caller's exit status, its stderr and the sipp logs.
type CallerEnd = (std::process::ExitStatus, String, String);

/// Test `n`: the PBX calls through the SBC toward the TLS trunk configured under `server_name`;
/// the trunk waits `trunk_secs` at most, the caller `caller_timeout`. What the caller, the trunk
/// and the SBC (its log) saw.
fn trunk_call(
    n: u8,
    server_name: &str,
    trunk_secs: u64,
    caller_timeout: &str,
) -> (CallerEnd, TrunkSaw, String) {
    let pki = TempDir::new(&format!("tls-pki-{n}"));
    make_pki(pki.path(), &ip(n, 2));
    let listener = TcpListener::bind(format!("{}:5061", ip(n, 2))).unwrap();
    let config = trunk_tls_config(pki.path());
    let wait = Duration::from_secs(trunk_secs);
    let trunk = std::thread::spawn(move || tls_trunk(listener, config, wait));
    let sbc = start_tls_trunk_sbc(n, &format!("tls-trunk-{n}"), pki.path(), server_name);
    let dir = sbc.dir.path().to_owned();
    let target = format!("{}:5080", ip(n, 11));
    let caller = sipp(
        &dir,
        "uac_expect_486.xml",
        (&ip(n, 4), 5070),
        Some(&target),
        &["-s", "4930123", "-timeout", caller_timeout],
    );
    let saw = trunk.join().unwrap();
    let (status, err) = finish(caller);
    let sipp_logs = logs(&dir, "u");
    ((status, err, sipp_logs), saw, sbc.stop())
}

/// A call of the PBX toward a carrier trunk with `transport = "tls"`: the SBC connects, verifies the trunk's
/// certificate against `tls.ca_file` under `server_name` (sent as SNI), presents its client
/// certificate, and the INVITE (and the ACK of the 486) cross encrypted: the bytes on the wire are
/// TLS records, never SIP text.
#[test]
fn tls_trunk_gets_the_invite_encrypted_and_verified() {
    let ((status, err, sipp_logs), saw, log) = trunk_call(2, "trunk.test", 20, "35s");
    assert!(
        status.success(),
        "caller: {status} {err}\ntrunk: {saw:?}\n{sipp_logs}\n{log}"
    );
    assert!(
        saw.requests
            .first()
            .is_some_and(|r| r.starts_with("INVITE ")),
        "{saw:?}\n{log}"
    );
    assert!(
        saw.requests.iter().any(|r| r.starts_with("ACK ")),
        "{saw:?}"
    );
    // The SBC's Via names the transport the request crossed.
    assert!(
        saw.requests
            .iter()
            .all(|r| r.contains(&format!("\r\nVia: SIP/2.0/TLS {}:", ip(2, 1)))),
        "{saw:?}"
    );
    assert_eq!(saw.sni.as_deref(), Some("trunk.test"), "{saw:?}");
    assert!(saw.client_cert, "no client certificate: {saw:?}");
    // The wire carried TLS records (handshake first), and no SIP in clear.
    assert_eq!(
        saw.wire.first(),
        Some(&0x16),
        "{:?}",
        &saw.wire[..8.min(saw.wire.len())]
    );
    for clear in [&b"INVITE"[..], b"SIP/2.0", b"Call-ID"] {
        assert!(
            !saw.wire.windows(clear.len()).any(|w| w == clear),
            "{} in clear on the wire",
            String::from_utf8_lossy(clear)
        );
    }
    assert_eq!(counter(&log, "tcp_connects"), 1, "{log}");
}

/// The same trunk under a name its certificate does not carry: the SBC refuses the server (the
/// handshake fails, no INVITE is ever decrypted by the trunk) and says why.
#[test]
fn tls_trunk_with_the_wrong_name_is_refused() {
    // The caller gives up after a few seconds; only what the trunk saw matters.
    let ((_, _, sipp_logs), saw, log) = trunk_call(3, "wrong.test", 10, "6s");
    assert!(saw.requests.is_empty(), "{saw:?}\n{log}");
    assert!(saw.error.is_some(), "{saw:?}");
    assert!(
        log.contains(
            "tls: invalid peer certificate: certificate not valid for name \"wrong.test\""
        ),
        "{log}"
    );
    assert!(counter(&log, "tls_errors") >= 1, "{log}");
    // The failed connection fails the INVITE at once (not after Timer B's 32 s): the PBX has its
    // final answer within the caller's 6 s.
    let final_answer = sipp_logs.lines().find(|l| {
        ["SIP/2.0 408", "SIP/2.0 503", "SIP/2.0 500"]
            .iter()
            .any(|c| l.starts_with(c))
    });
    assert!(final_answer.is_some(), "{sipp_logs}\n{log}");
}

// ---- phones over TCP ----

/// How the phone and the PBX speak: sipp's `-t` (`u1` UDP, `t1` one TCP connection).
#[derive(Clone, Copy)]
struct Over {
    phone: &'static str,
    pbx: &'static str,
}

/// A phone registers through the SBC (its REGISTER relayed to the PBX's registrar), and the PBX
/// calls it `idle_wait` later (from `.4`, to the Contact the SBC registered); the call must reach the
/// phone at the address, or over the connection, its REGISTER came from.
fn phone_called_back(n: u8, name: &str, over: Over, top: &str, idle_wait: Duration) -> String {
    let transport = if over.pbx == "t1" { "tcp" } else { "udp" };
    // The PBX places its call from .4, an inside address too.
    let pbx = format!(
        "{{ address = \"{}:5090\", transport = \"{transport}\" }}, \
         {{ address = \"{}:5070\", transport = \"{transport}\", priority = 1 }}",
        ip(n, 2),
        ip(n, 4)
    );
    let sbc = start_sbc(n, name, "auto", &format!("{top}{}", inside_pbx(n, &pbx)));
    let dir = sbc.dir.path().to_owned();
    let pbx_t = ["-t", over.pbx];
    let registrar = sipp(&dir, "reg_registrar.xml", (&ip(n, 2), 5090), None, &pbx_t);
    std::thread::sleep(Duration::from_millis(300));
    let sbc_out = format!("{}:5060", ip(n, 1));
    let phone = sipp(
        &dir,
        "reg_then_answer.xml",
        (&ip(n, 5), 5070),
        Some(&sbc_out),
        &[
            "-t",
            over.phone,
            "-oocsf",
            scenario("reg_then_answer_ooc.xml").to_str().unwrap(),
        ],
    );
    let (reg_status, reg_err) = finish(registrar);
    let reg_logs = logs(&dir, "reg_registrar");
    assert!(
        reg_status.success(),
        "registrar: {reg_status} {reg_err}\n{reg_logs}\n{}",
        sbc.log_text()
    );
    let contact = reg_logs
        .lines()
        .find_map(|l| l.strip_prefix("registrar got Contact: "))
        .unwrap_or_else(|| panic!("no Contact logged:\n{reg_logs}"))
        .trim()
        .to_owned();
    let uri = contact.trim_start_matches('<').split('>').next().unwrap();
    let (user, hostport) = uri.trim_start_matches("sip:").split_once('@').unwrap();
    let hostport = hostport.split(';').next().unwrap().to_owned();
    std::thread::sleep(idle_wait);
    let pbx = sipp(
        &dir,
        "pbx_call_out.xml",
        (&ip(n, 4), 5070),
        Some(&hostport),
        &["-s", user, "-d", "300", "-t", over.pbx],
    );
    let (pbx_status, pbx_err) = finish(pbx);
    let (phone_status, phone_err) = finish(phone);
    let all = logs(&dir, "");
    let phone_log = logs(&dir, "reg_then_answer");
    let log = sbc.stop();
    assert!(
        pbx_status.success() && phone_status.success(),
        "pbx: {pbx_status} {pbx_err}\nphone: {phone_status} {phone_err}\n{all}\n{log}"
    );
    // The INVITE reached the phone (its Contact is unreachable: only its connection leads to it).
    assert!(
        phone_log.contains("INVITE sip:alice@192.168.1.50:5062 SIP/2.0"),
        "{phone_log}"
    );
    // One connection accepted (the phone's, or the PBX's for its call), never closed under it.
    assert_eq!(counter(&log, "tcp_accepted"), 1, "{log}");
    log
}

const TCP_PHONE: Over = Over {
    phone: "t1",
    pbx: "u1",
};

/// A phone registered over TCP is reached by the PBX's INVITE over the connection it registered
/// on.
#[test]
fn phone_registered_over_tcp_is_called_over_its_connection() {
    phone_called_back(4, "tcp-phone", TCP_PHONE, "", Duration::ZERO);
}

/// The idle timer (2 s here) does not close a connection that carries a live registration: the
/// PBX's call 4 s after the REGISTER, with no traffic in between, still reaches the phone.
#[test]
fn idle_timer_spares_a_connection_with_a_live_registration() {
    let log = phone_called_back(
        5,
        "tcp-idle",
        TCP_PHONE,
        "[transport]\ntcp_idle_timeout_secs = 2\n",
        Duration::from_secs(4),
    );
    assert_eq!(counter(&log, "tcp_idle_closed"), 0, "{log}");
}

/// The inside over TCP both ways: a PBX with `transport = "tcp"` gets the phone's REGISTER over the
/// connection the SBC opens, and places its call to the phone over a connection of its own to the
/// SBC's inside address (the worker's port, as in the Contact the SBC registered).
#[test]
fn tcp_pbx_registers_and_calls_a_udp_phone() {
    let over = Over {
        phone: "u1",
        pbx: "t1",
    };
    let log = phone_called_back(10, "tcp-inside", over, "", Duration::ZERO);
    // The REGISTER went over a connection the SBC opened to the PBX.
    assert!(counter(&log, "tcp_connects") >= 1, "{log}");
}

// ---- bounds on accepted connections ----

/// Whether the SBC closed `s` within `within` (EOF or reset), as opposed to keeping it open.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A TCP connection from `local` (any port) to `to`.
fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{local}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

/// `transport.tcp_max_connections_per_source = 2` (one worker): a third connection from the same
/// address is closed at once, the first two stay, and another address still gets in.
#[test]
fn connections_per_source_are_bounded() {
    let n = 6;
    // Counted per worker: one worker, for an exact count.
    let text = format!(
        "workers = 1\n[sip]\nudp = [\"{o}:5060\"]\ntcp = [\"{o}:5060\"]\n\
         [transport]\ntcp_max_connections_per_source = 2\n[inside]\naddress = \"{i}\"\n\
         [media]\nport_min = 20000\nport_max = 20199\n",
        o = ip(n, 1),
        i = ip(n, 11)
    );
    let sbc = Sbc::start_in(TempDir::new("per-source-1"), "auto", 5060, &text);
    let to: SocketAddr = format!("{}:5060", ip(n, 1)).parse().unwrap();
    let mut a = connect_from(&ip(n, 3), to);
    let mut b = connect_from(&ip(n, 3), to);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = connect_from(&ip(n, 3), to);
    assert!(
        closed_within(&mut c, Duration::from_secs(2)),
        "third connection kept"
    );
    assert!(
        !closed_within(&mut a, Duration::from_millis(300)),
        "first closed"
    );
    assert!(
        !closed_within(&mut b, Duration::from_millis(300)),
        "second closed"
    );
    let mut other = connect_from(&ip(n, 4), to);
    assert!(
        !closed_within(&mut other, Duration::from_millis(300)),
        "another source refused"
    );
    // Closing one frees its slot for the same source.
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut d = connect_from(&ip(n, 3), to);
    assert!(
        !closed_within(&mut d, Duration::from_millis(300)),
        "freed slot not reusable"
    );
    drop((b, c, d, other));
    let log = sbc.stop();
    assert_eq!(counter(&log, "tcp_source_refused"), 1, "{log}");
}

/// A client that connects to the TLS listener and sends nothing is dropped after
/// `transport.tls_handshake_timeout_secs` (2 s here), long before the idle timeout (60 s).
#[test]
fn silent_tls_client_is_dropped_after_the_handshake_deadline() {
    let n = 7;
    let pki = TempDir::new("tls-pki-listen");
    make_pki(pki.path(), &ip(n, 1));
    let o = ip(n, 1);
    let text = format!(
        "workers = 2\n[sip]\nudp = [\"{o}:5060\"]\ntls = [\"{o}:5061\"]\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [transport]\ntls_handshake_timeout_secs = 2\ntcp_idle_timeout_secs = 60\n\
         [inside]\naddress = \"{}\"\n[media]\nport_min = 20000\nport_max = 20199\n",
        pki.path().join("server.pem").display(),
        pki.path().join("server.key").display(),
        ip(n, 11)
    );
    let sbc = Sbc::start_in(TempDir::new("tls-deadline"), "auto", 5060, &text);
    let to: SocketAddr = format!("{o}:5061").parse().unwrap();
    let start = Instant::now();
    let mut s = connect_from(&ip(n, 3), to);
    assert!(
        closed_within(&mut s, Duration::from_secs(6)),
        "silent client kept past the deadline"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "closed too early: {took:?}"
    );
    let log = sbc.stop();
    assert_eq!(counter(&log, "tls_handshake_timeouts"), 1, "{log}");
    assert_eq!(counter(&log, "tcp_idle_closed"), 0, "{log}");
}

// ---- the open-file budget ----

/// Run the binary under `prlimit --nofile=<soft>:<hard>` with `config`; its exit status (`None`:
/// still running after 3 s, then stopped) and its log.
fn run_with_nofile(name: &str, nofile: &str, config: &str) -> (Option<bool>, String) {
    let dir = TempDir::new(name);
    let cfg = dir.path().join("sbc.toml");
    std::fs::write(&cfg, config).unwrap();
    let log: PathBuf = dir.path().join("sbc.log");
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}"))
        .arg(env!("CARGO_BIN_EXE_sbc"))
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("prlimit");
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s.success());
        }
        if Instant::now() > deadline {
            // SAFETY: signalling our own child by PID.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

/// The open-file budget is checked at start: too low a hard limit for the configured connections
/// and media ports refuses the start with a message naming the keys; a low soft limit under a
/// sufficient hard one is raised.
#[test]
fn open_file_budget_is_checked_at_start() {
    let n = 8;
    let config = format!(
        "workers = 2\n[sip]\nudp = [\"{o}:5060\"]\ntcp = [\"{o}:5060\"]\n\
         [transport]\ntcp_max_connections = 1000\n[inside]\naddress = \"{i}\"\n\
         [media]\nport_min = 20000\nport_max = 20199\n",
        o = ip(n, 1),
        i = ip(n, 11)
    );
    let (status, log) = run_with_nofile("nofile-short", "256:256", &config);
    assert_eq!(status, Some(false), "{log}");
    assert!(
        log.contains("open-file limit too low")
            && log.contains("transport.tcp_max_connections")
            && log.contains("the hard limit is 256"),
        "{log}"
    );
    // Same needs, soft limit low but the hard limit enough: raised, and the SBC runs.
    let (status, log) = run_with_nofile("nofile-raised", "256:4096", &config);
    assert_eq!(status, None, "{log}");
    assert!(log.contains("sbc listening"), "{log}");
    assert!(log.contains("open-file budget"), "{log}");
}

// ---- the inside over TLS ----

/// A PBX on the inside over TLS (a rustls client verifying the SBC's certificate against the test
/// CA), connected from its own address to the SBC's inside TLS listener; the carrier behind the SBC
/// is the sipp `carrier` scenario on UDP.
struct InsideTlsPbx {
    sbc: Sbc,
    _pki: TempDir,
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    carrier: std::process::Child,
    /// The PBX's address, its connection's port, the SBC's inside address.
    pbx: String,
    port: u16,
    inside: String,
    buf: Vec<u8>,
}

impl InsideTlsPbx {
    fn start(n: u8, name: &str, carrier: &str) -> Self {
        let pki = TempDir::new(&format!("{name}-pki"));
        make_pki(pki.path(), &ip(n, 11));
        let extra = format!(
            "[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
             [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
             [[target_group]]\nname = \"pbx\"\ntargets = [{{ address = \"{pbx}:5061\", transport = \"tls\" }}]\n\
             options_interval_secs = 0\n\
             [[trunk]]\nname = \"carrier\"\noutbound = {{ proxy = \"{carrier}:5090\" }}\noptions_interval_secs = 0\n\
             [[route]]\nname = \"out\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"carrier\"\n",
            cert = pki.path().join("server.pem").display(),
            key = pki.path().join("server.key").display(),
            inside = ip(n, 11),
            pbx = ip(n, 4),
            carrier = ip(n, 2),
        );
        let sbc = start_sbc(n, name, "auto", &extra);
        let dir = sbc.dir.path().to_owned();
        let carrier = sipp(&dir, carrier, (&ip(n, 2), 5090), None, &[]);
        std::thread::sleep(Duration::from_millis(300));

        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let local: SocketAddr = format!("{}:0", ip(n, 4)).parse().unwrap();
        sock.bind(&local.into()).unwrap();
        let remote: SocketAddr = format!("{}:5080", ip(n, 11)).parse().unwrap();
        sock.connect(&remote.into()).unwrap();
        let tcp: TcpStream = sock.into();
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let port = tcp.local_addr().unwrap().port();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(&pki.path().join("ca.pem")) {
            roots.add(c).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(ip(n, 11)).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        Self {
            sbc,
            _pki: pki,
            tls: rustls::StreamOwned::new(conn, tcp),
            carrier,
            pbx: ip(n, 4),
            port,
            inside: ip(n, 11),
            buf: Vec::new(),
        }
    }

    /// Read messages into `got` until one satisfies `done` or 10 s pass.
    fn read_until(&mut self, got: &mut Vec<String>, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline && !got.iter().any(|m| done(m)) {
            match self.tls.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("PBX connection: {e}"),
            }
            while let Some(m) = take_message(&mut self.buf) {
                got.push(m);
            }
        }
    }

    /// The PBX's INVITE to 4930123 (`body`: an SDP offer or nothing).
    fn invite(&mut self, body: &str) {
        let (pbx, port, inside) = (&self.pbx, self.port, &self.inside);
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let invite = format!(
            "INVITE sip:4930123@{inside}:5080 SIP/2.0\r\n\
             Via: SIP/2.0/TLS {pbx}:{port};branch=z9hG4bKtlsin1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:200@{pbx}>;tag=p1\r\nTo: <sip:4930123@{inside}>\r\n\
             Call-ID: tls-inside-1@{pbx}\r\nCSeq: 1 INVITE\r\nContact: <sip:200@{pbx}:{port};transport=tls>\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.tls.write_all(invite.as_bytes()).unwrap();
    }

    /// The PBX's ACK to the final response `resp` of its INVITE.
    fn ack(&mut self, resp: &str) {
        let (pbx, port, inside) = (&self.pbx, self.port, &self.inside);
        let to = resp.lines().find(|l| l.starts_with("To:")).unwrap();
        let ack = format!(
            "ACK sip:4930123@{inside}:5080 SIP/2.0\r\n\
             Via: SIP/2.0/TLS {pbx}:{port};branch=z9hG4bKtlsin1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:200@{pbx}>;tag=p1\r\n{to}\r\n\
             Call-ID: tls-inside-1@{pbx}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        self.tls.write_all(ack.as_bytes()).unwrap();
    }
}

/// The PBX reaches the SBC over TLS on the inside: with a PBX member of `transport = "tls"` and a
/// certificate in `[tls]`, the SBC listens TLS at `inside.address`. The PBX (a rustls client that
/// verifies the SBC's certificate) places a call toward a UDP carrier (sipp answering 486): the
/// INVITE goes out, and the carrier's answer comes back over the PBX's own TLS connection.
#[test]
fn pbx_calls_out_over_the_inside_tls_listener() {
    let mut p = InsideTlsPbx::start(20, "tls-inside", "uas_486.xml");
    p.invite("");
    let mut got = Vec::new();
    p.read_until(&mut got, |m| m.starts_with("SIP/2.0 486"));
    let final_486 = got.iter().find(|m| m.starts_with("SIP/2.0 486")).cloned();
    if let Some(resp) = &final_486 {
        p.ack(resp);
    }
    let dir = p.sbc.dir.path().to_owned();
    let (status, err) = finish(p.carrier);
    let sipp_logs = logs(&dir, "uas_486");
    drop(p.tls);
    let log = p.sbc.stop();
    assert!(final_486.is_some(), "no 486 over TLS: {got:#?}\n{log}");
    assert!(
        status.success(),
        "carrier: {status} {err}\n{sipp_logs}\n{log}"
    );
    // The answer names the PBX's own transaction, and came over the PBX's connection.
    assert!(
        final_486.unwrap().contains("branch=z9hG4bKtlsin1"),
        "{got:#?}"
    );
    assert!(counter(&log, "tcp_accepted") >= 1, "{log}");
    assert_eq!(counter(&log, "tls_errors"), 0, "{log}");
}

/// A request the SBC sends over a TLS connection the peer opened (here the carrier's BYE, relayed
/// to the PBX over the PBX's own connection) names `TLS` in its top Via (RFC 3261 §18.1.1), not
/// `TCP`, and the PBX's answer to it reaches the carrier.
#[test]
fn a_request_over_the_pbxs_own_tls_connection_says_tls_in_its_via() {
    let mut p = InsideTlsPbx::start(21, "tls-inside-bye", "uas_bye.xml");
    let offer = format!(
        "v=0\r\no=pbx 1 1 IN IP4 {pbx}\r\ns=-\r\nc=IN IP4 {pbx}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        pbx = p.pbx
    );
    p.invite(&offer);
    let mut got = Vec::new();
    p.read_until(&mut got, |m| m.starts_with("SIP/2.0 200"));
    let ok = got.iter().find(|m| m.starts_with("SIP/2.0 200")).cloned();
    if let Some(resp) = &ok {
        p.ack(resp);
    }
    p.read_until(&mut got, |m| m.starts_with("BYE "));
    let bye = got.iter().find(|m| m.starts_with("BYE ")).cloned();
    if let Some(bye) = &bye {
        // 200 to the BYE: its Via, From, To, Call-ID and CSeq as received.
        let copied: String = bye
            .lines()
            .filter(|l| {
                [
                    "Via:", "v:", "From:", "f:", "To:", "t:", "Call-ID:", "i:", "CSeq:",
                ]
                .iter()
                .any(|h| l.starts_with(h))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let answer = format!("SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n");
        p.tls.write_all(answer.as_bytes()).unwrap();
    }
    let dir = p.sbc.dir.path().to_owned();
    let (status, err) = finish(p.carrier);
    let sipp_logs = logs(&dir, "uas_bye");
    drop(p.tls);
    let log = p.sbc.stop();
    assert!(ok.is_some(), "no 200 over TLS: {got:#?}\n{log}");
    let bye = bye.unwrap_or_else(|| panic!("no BYE over TLS: {got:#?}\n{log}"));
    let top_via = bye
        .lines()
        .find(|l| l.starts_with("Via:") || l.starts_with("v:"))
        .unwrap_or_default();
    assert!(
        top_via.contains("SIP/2.0/TLS "),
        "top Via of the BYE: {top_via}\n{bye}"
    );
    assert!(
        status.success(),
        "carrier: {status} {err}\n{sipp_logs}\n{log}"
    );
    assert_eq!(counter(&log, "tls_errors"), 0, "{log}");
}
