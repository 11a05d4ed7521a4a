//! Integration tests of the `sbc` binary's transports: the real binary on 127.0.0.1, one free port per
//! test, both drivers (io_uring and epoll), sipp as the independent peer where it can be.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{options, sipp_options, Sbc, XorShift};
use sbc_sip::framing::{next_frame, Frame, Limits};
use sbc_sip::Message;

/// The log names the driver that ran; io_uring may fall back only with a stated reason.
fn assert_driver(log: &str, driver: &str) {
    if driver == "epoll" {
        assert!(log.contains("transport driver: epoll"), "{log}");
    } else if log.contains("io_uring unavailable") {
        eprintln!("NOTE: io_uring unavailable here, the epoll fallback ran");
    } else {
        assert!(log.contains("transport driver: io_uring"), "{log}");
    }
}

// ---- OPTIONS → 200 from real peers, on both drivers: sipp over UDP and TCP, sipsak over TLS ----

fn sipp_udp(driver: &str) {
    let sbc = Sbc::udp_tcp(&format!("sipp-udp-{driver}"), driver);
    let (status, err) = sipp_options(sbc.addr(), "u1", sbc.dir.path(), &[]);
    let log = sbc.stop();
    assert!(status.success(), "sipp u1 failed ({status}): {err}\n{log}");
    assert_driver(&log, driver);
}

fn sipp_tcp(driver: &str) {
    let sbc = Sbc::udp_tcp(&format!("sipp-tcp-{driver}"), driver);
    let (status, err) = sipp_options(sbc.addr(), "t1", sbc.dir.path(), &[]);
    let log = sbc.stop();
    assert!(status.success(), "sipp t1 failed ({status}): {err}\n{log}");
    assert_driver(&log, driver);
}

/// A TLS server config: self-signed certificate for "localhost" written as PEM into `dir`.
fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    ck.cert.der().to_vec()
}

fn tls_sbc(name: &str, driver: &str) -> (Sbc, Vec<u8>) {
    let mut der = Vec::new();
    let sbc = Sbc::start(name, driver, |port, dir| {
        der = write_cert(dir);
        format!(
            "workers = 2\n[sip]\nudp = [\"127.0.0.1:{port}\"]\ntls = [\"127.0.0.1:{port}\"]\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n{}",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            common::inside_section()
        )
    });
    (sbc, der)
}

/// OPTIONS over TLS from sipsak (Debian's sipsak, GnuTLS), an independent TLS peer: Debian's sipp is
/// built without OpenSSL. Each run is its own connection and handshake; sipsak exits 0 only on a 2xx.
/// sipsak compares the certificate's name against "host:port" (its own quirk), so the name check is
/// off; the handshake, the record layer and the SIP exchange are real.
fn sipsak_tls(driver: &str) {
    let (sbc, _) = tls_sbc(&format!("sipsak-tls-{driver}"), driver);
    let target = format!("sip:ping@{}", sbc.addr());
    for run in 0..5 {
        let out = Command::new("sipsak")
            .args([
                "-s",
                &target,
                "--transport=tls",
                "--tls-ignore-cert-failure",
                "-vv",
            ])
            .output()
            .expect("sipsak is installed by .ci/setup (Debian package sipsak)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && text.contains("SIP/2.0 200 OK"),
            "run {run}: sipsak over TLS got no 200 ({}):\n{text}\n{}",
            out.status,
            sbc.log_text()
        );
    }
    let log = sbc.stop();
    assert_driver(&log, driver);
}

#[test]
fn sipp_udp_io_uring() {
    sipp_udp("io_uring");
}
#[test]
fn sipp_udp_epoll() {
    sipp_udp("epoll");
}
#[test]
fn sipp_tcp_io_uring() {
    sipp_tcp("io_uring");
}
#[test]
fn sipp_tcp_epoll() {
    sipp_tcp("epoll");
}
#[test]
fn sipsak_tls_io_uring() {
    sipsak_tls("io_uring");
}
#[test]
fn sipsak_tls_epoll() {
    sipsak_tls("epoll");
}

// ---- TCP stream: 50 OPTIONS + keep-alives in random chunks ----

/// Read responses from `r` until `want` messages arrived; returns (CSeq numbers in order, CRLF pongs).
fn read_responses(r: &mut impl Read, want: usize) -> (Vec<u32>, usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut cseqs = Vec::new();
    let mut pongs = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while cseqs.len() < want {
        assert!(
            Instant::now() < deadline,
            "timed out with {} responses",
            cseqs.len()
        );
        loop {
            if buf.starts_with(b"\r\n") {
                pongs += 1;
                buf.drain(..2);
                continue;
            }
            match next_frame(&buf, &Limits::default()).unwrap() {
                Frame::Complete(n) => {
                    let msg = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
                    assert_eq!(
                        msg.status(),
                        Some(200),
                        "{}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    assert!(msg.to_tag().is_some());
                    cseqs.push(msg.cseq().seq);
                    buf.drain(..n);
                }
                _ => break,
            }
        }
        if cseqs.len() >= want {
            break;
        }
        match r.read(&mut chunk) {
            Ok(0) => panic!("connection closed after {} responses", cseqs.len()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    // The pongs may trail the last response.
    if buf.starts_with(b"\r\n") {
        pongs += buf.len() / 2;
    }
    (cseqs, pongs)
}

fn tcp_stream(driver: &str, seed: u64) {
    let sbc = Sbc::udp_tcp(&format!("tcp-stream-{driver}"), driver);
    let mut s = TcpStream::connect(sbc.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = s.local_addr().unwrap();
    let mut stream = b"\r\n\r\n".to_vec();
    let mut pings = 1;
    for i in 1..=50u32 {
        stream.extend_from_slice(&options("TCP", local, i, "stream"));
        if i % 10 == 0 && i < 50 {
            stream.extend_from_slice(b"\r\n\r\n");
            pings += 1;
        }
    }
    let mut reader = s.try_clone().unwrap();
    let collector = std::thread::spawn(move || read_responses(&mut reader, 50));
    let mut rng = XorShift(seed);
    let mut pos = 0;
    while pos < stream.len() {
        let n = (rng.range(1, 300) as usize).min(stream.len() - pos);
        s.write_all(&stream[pos..pos + n]).unwrap();
        pos += n;
        std::thread::sleep(Duration::from_micros(rng.range(0, 2000)));
    }
    let (cseqs, _) = collector.join().unwrap();
    assert_eq!(
        cseqs,
        (1..=50).collect::<Vec<_>>(),
        "each response once, in order"
    );
    // Pongs: read whatever trails, then count all CRLFs seen between and after responses.
    let log = sbc.stop();
    assert!(
        log.contains(&format!("keepalives: {pings}")),
        "{pings} keep-alives answered:\n{log}"
    );
    assert!(log.contains("stream_rx_messages: 50"), "{log}");
    assert_driver(&log, driver);
}

#[test]
fn tcp_stream_chunks_io_uring() {
    tcp_stream("io_uring", 0x9e37_79b9_7f4a_7c15);
}
#[test]
fn tcp_stream_chunks_epoll() {
    tcp_stream("epoll", 0x2545_f491_4f6c_dd1d);
}

/// Pongs come back on the wire: a lone ping gets exactly one CRLF.
#[test]
fn tcp_keepalive_pong() {
    let sbc = Sbc::udp_tcp("tcp-pong", "epoll");
    let mut s = TcpStream::connect(sbc.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\r\n\r\n").unwrap();
    let mut b = [0u8; 8];
    let n = s.read(&mut b).unwrap();
    assert_eq!(&b[..n], b"\r\n");
    drop(sbc);
}

// ---- TCP connection table: capacity and idle timeout ----

fn tcp_limits(driver: &str) {
    let sbc = Sbc::start(&format!("tcp-limits-{driver}"), driver, |port, _| {
        format!(
            "workers = 1\n[sip]\ntcp = [\"127.0.0.1:{port}\"]\n\
             [transport]\ntcp_max_connections = 2\ntcp_idle_timeout_secs = 1\n{}",
            common::inside_section()
        )
    });
    let connect = || {
        let s = TcpStream::connect(sbc.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let mut a = connect();
    let mut b = connect();
    // Both answered: they hold the two slots.
    for (i, s) in [&mut a, &mut b].into_iter().enumerate() {
        let local = s.local_addr().unwrap();
        s.write_all(&options("TCP", local, i as u32 + 1, "limits"))
            .unwrap();
        let (cseqs, _) = read_responses(s, 1);
        assert_eq!(cseqs, vec![i as u32 + 1]);
    }
    // The third is over capacity: closed at once.
    let mut c = connect();
    let mut byte = [0u8; 1];
    match c.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("over-capacity connection not closed: {other:?}"),
    }
    // Idle for over a second: both are closed by the server (the scan runs every second).
    let start = Instant::now();
    assert_eq!(a.read(&mut byte).unwrap(), 0, "idle connection closed");
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(b.read(&mut byte).unwrap(), 0);
    let log = sbc.stop();
    assert!(log.contains("tcp_refused: 1"), "{log}");
    assert!(log.contains("tcp_idle_closed: 2"), "{log}");
    assert_driver(&log, driver);
}

#[test]
fn tcp_limits_io_uring() {
    tcp_limits("io_uring");
}
#[test]
fn tcp_limits_epoll() {
    tcp_limits("epoll");
}

/// A framing fault (no Content-Length on a stream) closes the connection.
#[test]
fn tcp_missing_content_length_closes() {
    let sbc = Sbc::udp_tcp("tcp-no-cl", "epoll");
    let mut s = TcpStream::connect(sbc.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    let msg = String::from_utf8(options("TCP", local, 1, "nocl"))
        .unwrap()
        .replace("Content-Length: 0\r\n", "");
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    assert_eq!(s.read(&mut buf).unwrap(), 0);
    let log = sbc.stop();
    assert!(log.contains("framing_errors: 1"), "{log}");
}

// ---- TLS with a Rust client (rustls), both drivers ----

fn tls_options(driver: &str) {
    let (sbc, der) = tls_sbc(&format!("tls-rust-{driver}"), driver);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(sbc.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut all = Vec::new();
    for i in 1..=10 {
        all.extend_from_slice(&options("TLS", local, i, "tls"));
    }
    all.extend_from_slice(b"\r\n\r\n");
    tls.write_all(&all).unwrap();
    tls.flush().unwrap();
    let (cseqs, _) = read_responses(&mut tls, 10);
    assert_eq!(cseqs, (1..=10).collect::<Vec<_>>());
    let log = sbc.stop();
    assert!(log.contains("keepalives: 1"), "{log}");
    assert_driver(&log, driver);
}

#[test]
fn tls_options_io_uring() {
    tls_options("io_uring");
}
#[test]
fn tls_options_epoll() {
    tls_options("epoll");
}

// ---- malformed UDP ----

fn udp_malformed(driver: &str) {
    let sbc = Sbc::udp_tcp(&format!("udp-malformed-{driver}"), driver);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut buf = [0u8; 65536];

    let bad = String::from_utf8(options("UDP", local, 1, "bad"))
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    sock.send_to(bad.as_bytes(), sbc.addr()).unwrap();
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("an answer to the malformed request");
    assert_eq!(from, sbc.addr());
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("SIP/2.0 400 Bad CSeq\r\n"), "{text}");
    assert!(text.contains("Call-ID: bad"), "{text}");

    sock.send_to(b"\x00\xff\x13 not sip at all \r\n\r\n", sbc.addr())
        .unwrap();
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "garbage is dropped silently"
    );

    sock.send_to(&options("UDP", local, 2, "good"), sbc.addr())
        .unwrap();
    let (n, _) = sock.recv_from(&mut buf).expect("the server still answers");
    let msg = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!(msg.status(), Some(200));
    assert_eq!(msg.cseq().seq, 2);
    let log = sbc.stop();
    assert!(log.contains("parse_errors: 2"), "{log}");
    assert_driver(&log, driver);
}

#[test]
fn udp_malformed_io_uring() {
    udp_malformed("io_uring");
}
#[test]
fn udp_malformed_epoll() {
    udp_malformed("epoll");
}

/// More datagrams than the io_uring driver has receive buffers: buffers are recycled, every request is
/// answered exactly once.
fn udp_burst(driver: &str) {
    let sbc = Sbc::udp_tcp(&format!("udp-burst-{driver}"), driver);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    // Bursts of 50 (socket buffers hold them all; UDP may drop beyond that), 20 bursts in all.
    const BURST: u32 = 50;
    const N: u32 = 1000;
    let mut seen = vec![0u32; N as usize + 1];
    let mut buf = [0u8; 65536];
    for first in (1..=N).step_by(BURST as usize) {
        for i in first..first + BURST {
            sock.send_to(&options("UDP", local, i, "burst"), sbc.addr())
                .unwrap();
        }
        for _ in 0..BURST {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                panic!("answers missing after CSeq {first}:\n{}", sbc.stop());
            };
            let msg = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
            assert_eq!(msg.status(), Some(200));
            seen[msg.cseq().seq as usize] += 1;
        }
    }
    assert!(
        seen[1..].iter().all(|&c| c == 1),
        "each request answered once"
    );
    let log = sbc.stop();
    assert_driver(&log, driver);
}

#[test]
fn udp_burst_io_uring() {
    udp_burst("io_uring");
}
#[test]
fn udp_burst_epoll() {
    udp_burst("epoll");
}

// ---- configuration ----

#[test]
fn check_config_unknown_key() {
    let dir = common::TempDir::new("check-config");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\nudp = [\"127.0.0.1:5060\"]\nlisten_everywhere = true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sbc"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_everywhere"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[sip]\nudp = [\"127.0.0.1:5060\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sbc"))
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_tls_without_cert() {
    let dir = common::TempDir::new("check-config-tls");
    let path = dir.path().join("tls.toml");
    std::fs::write(&path, "[sip]\ntls = [\"127.0.0.1:5061\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sbc"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cert"));
}
