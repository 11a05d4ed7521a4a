//! The SBC's answers at the edge, with the real binary on loopback (127.34.n.x only): a refused
//! INVITE from a source that never ACKs draws one answer, not a retransmission train (reflection),
//! and answers to a client that asked with `rport` tell it its public address (RFC 3581 §4).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Sbc, TempDir};
use sbc_sip::{HeaderName, Message};

fn ip(n: u8, host: u8) -> String {
    format!("127.34.{n}.{host}")
}

/// An SBC on 127.34.`n`.1:5060 whose only route sends numbers starting with 1 to a PBX that never
/// answers; any other number has no route.
fn start_sbc(n: u8, name: &str) -> Sbc {
    let text = format!(
        "workers = 1\n\
         [sip]\nudp = [\"{}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\ntargets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"1\"\ntarget_group = \"pbx\"\n\
         [media]\nport_min = 20000\nport_max = 20099\n",
        ip(n, 1),
        ip(n, 11),
        ip(n, 2)
    );
    Sbc::start_in(TempDir::new(name), "epoll", 5060, &text)
}

fn request(method: &str, called: &str, via_host: &str, branch: &str) -> Vec<u8> {
    format!(
        "{method} sip:{called}@sbc.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host}:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:{called}@sbc.example>\r\n\
         Call-ID: {branch}@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@{via_host}:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Every message `sock` receives within `window`.
fn collect(sock: &UdpSocket, window: Duration) -> Vec<Message> {
    let end = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push(Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap()),
            Err(_) => break,
        }
    }
    got
}

fn top_via(m: &Message) -> String {
    m.header_values(HeaderName::Via).next().unwrap().to_owned()
}

#[test]
fn a_refused_invite_is_answered_once_and_tells_the_client_its_address() {
    let sbc = start_sbc(1, "edge-reflection");
    let target: SocketAddr = format!("{}:5060", ip(1, 1)).parse().unwrap();
    // A "phone" behind NAT (private sent-by) that never ACKs, as a spoofed source would not.
    let sock = UdpSocket::bind(format!("{}:0", ip(1, 20))).unwrap();
    sock.connect(target).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send(&request("INVITE", "999", "192.168.1.20", "z9hG4bKrefl1"))
        .unwrap();
    // Linger is 5 s by default: RFC 3261's Timer G would resend at 0.5, 1.5 and 3.5 s.
    let got = collect(&sock, Duration::from_secs(6));
    let codes: Vec<u16> = got.iter().filter_map(Message::status).collect();
    assert_eq!(codes, vec![404], "one answer, never retransmitted");
    let stamped = format!(";received={};rport={port}", ip(1, 20));
    assert!(top_via(&got[0]).ends_with(&stamped), "{}", top_via(&got[0]));
    // A retransmitted INVITE (a real client's) gets the answer again, once.
    sock.send(&request("INVITE", "999", "192.168.1.20", "z9hG4bKrefl2"))
        .unwrap();
    let got = collect(&sock, Duration::from_secs(2));
    assert_eq!(
        got.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![404]
    );
    drop(sbc.stop());
}

#[test]
fn a_stateless_answer_carries_received_and_rport() {
    let sbc = start_sbc(2, "edge-rport");
    let target: SocketAddr = format!("{}:5060", ip(2, 1)).parse().unwrap();
    let sock = UdpSocket::bind(format!("{}:0", ip(2, 20))).unwrap();
    sock.connect(target).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send(&request("OPTIONS", "sbc", "10.1.2.3", "z9hG4bKopt1"))
        .unwrap();
    let got = collect(&sock, Duration::from_millis(800));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status(), Some(200));
    assert_eq!(
        top_via(&got[0]),
        format!(
            "SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bKopt1;received={};rport={port}",
            ip(2, 20)
        )
    );
    drop(sbc.stop());
}
