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
         [media]\nport_min = 20000\nport_max = 20099\n\
         [limits]\ndrain_secs = 0\n\
         [guard]\nhide_unknown_users = false\n",
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

/// An SBC (see [`start_sbc`]) and a client socket on 127.34.`n`.20 talking to it, with its port.
fn sbc_and_client(n: u8, name: &str) -> (Sbc, UdpSocket, u16) {
    let sbc = start_sbc(n, name);
    let target: SocketAddr = format!("{}:5060", ip(n, 1)).parse().unwrap();
    let sock = UdpSocket::bind(format!("{}:0", ip(n, 20))).unwrap();
    sock.connect(target).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sbc, sock, port)
}

fn top_via(m: &Message) -> String {
    m.header_values(HeaderName::Via).next().unwrap().to_owned()
}

#[test]
fn a_refused_invite_is_answered_once_and_tells_the_client_its_address() {
    // A "phone" behind NAT (private sent-by) that never ACKs, as a spoofed source would not.
    let (sbc, sock, port) = sbc_and_client(1, "edge-reflection");
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
    let (sbc, sock, port) = sbc_and_client(2, "edge-rport");
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
    // A request that fails to parse gets its 400 stamped the same way.
    let bad = String::from_utf8(request("OPTIONS", "sbc", "10.1.2.3", "z9hG4bKopt2"))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: many");
    sock.send(bad.as_bytes()).unwrap();
    let got = collect(&sock, Duration::from_millis(800));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status(), Some(400));
    assert_eq!(
        top_via(&got[0]),
        format!(
            "SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bKopt2;received={};rport={port}",
            ip(2, 20)
        )
    );
    drop(sbc.stop());
}

/// Receive one SIP message on `sock` within `wait`, with its source.
fn recv(sock: &UdpSocket, wait: Duration) -> (Message, SocketAddr) {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 8192];
    let (n, from) = sock.recv_from(&mut buf).expect("no message");
    (
        Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap(),
        from,
    )
}

/// The PBX's answer to `req` with extra headers and a body.
fn pbx_answer(req: &Message, code: u16, extra: &str, sdp: &str) -> Vec<u8> {
    let mut text = format!("SIP/2.0 {code} X\r\n");
    for v in req.header_values(HeaderName::Via) {
        text.push_str(&format!("Via: {v}\r\n"));
    }
    let ct = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    text.push_str(&format!(
        "From: {}\r\nTo: {};tag=pbx1\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:200@{}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.call_id(),
        req.header(HeaderName::CSeq).unwrap(),
        ip(3, 2),
        sdp.len()
    ));
    text.into_bytes()
}

/// A call through the SBC: what the PBX says about itself in P-Asserted-Identity, Alert-Info and
/// its SDP's descriptive lines does not reach the caller; the number, the Reason cause and the
/// media description do.
#[test]
fn the_pbx_identity_ring_tone_and_sdp_details_stay_inside() {
    let n = 3;
    let sbc = start_sbc(n, "edge-topology");
    let pbx = UdpSocket::bind(format!("{}:5090", ip(n, 2))).unwrap();
    let caller = UdpSocket::bind(format!("{}:5070", ip(n, 3))).unwrap();
    let sbc_addr: SocketAddr = format!("{}:5060", ip(n, 1)).parse().unwrap();
    let offer = format!(
        "v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        ip(n, 3)
    );
    let invite = format!(
        "INVITE sip:100@{sbc_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {c}:5070;branch=z9hG4bKtop1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{c}>;tag=c1\r\nTo: <sip:100@{sbc_addr}>\r\n\
         Call-ID: top-1@{c}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{c}:5070>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        c = ip(n, 3),
        len = offer.len()
    );
    caller.send_to(invite.as_bytes(), sbc_addr).unwrap();
    let (inv, from) = recv(&pbx, Duration::from_secs(5));
    let pbx_ip = ip(n, 2);
    let leaky = format!(
        "P-Asserted-Identity: \"Reception\" <sip:200@{pbx_ip}:5090;user=phone>\r\n\
         Alert-Info: <http://{pbx_ip}/ring.wav>\r\nReason: Q.850;cause=16\r\n"
    );
    pbx.send_to(&pbx_answer(&inv, 180, &leaky, ""), from)
        .unwrap();
    let answer = format!(
        "v=0\r\no=pbx 7 7 IN IP4 {pbx_ip}\r\ns=PBX {pbx_ip}\r\ni=Reception line\r\n\
         u=http://{pbx_ip}/\r\ne=ops@pbx.inside\r\nc=IN IP4 {pbx_ip}\r\nt=0 0\r\n\
         a=tool:InsidePBX 4.2\r\nm=audio 6000 RTP/AVP 0\r\n"
    );
    pbx.send_to(&pbx_answer(&inv, 200, &leaky, &answer), from)
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (m, _) = recv(&caller, Duration::from_secs(5));
        if m.status().is_some_and(|s| s > 100) {
            seen.push(m);
        }
    }
    let outside_host = ip(n, 1);
    for m in &seen {
        let text = String::from_utf8_lossy(m.raw()).into_owned();
        assert!(
            !text.contains(&pbx_ip),
            "the PBX's address reached the caller:\n{text}"
        );
        assert_eq!(
            m.header_by_name("P-Asserted-Identity"),
            Some(format!("\"Reception\" <sip:200@{outside_host}:5060;user=phone>").as_str()),
            "{text}"
        );
        assert_eq!(m.header_by_name("Alert-Info"), None, "{text}");
        // A relayed response answers `rport` too (RFC 3581 §4).
        assert!(top_via(m).ends_with(";rport=5070"), "{text}");
        assert_eq!(m.header_by_name("Reason"), Some("Q.850;cause=16"), "{text}");
    }
    let body = String::from_utf8_lossy(seen[1].body()).into_owned();
    assert!(
        body.contains("\r\ns=-\r\n") && body.contains("m=audio "),
        "{body}"
    );
    for gone in ["i=", "u=", "e=", "a=tool"] {
        assert!(
            !body.contains(&format!("\n{gone}")),
            "{gone} crossed:\n{body}"
        );
    }
    drop(sbc.stop());
}
