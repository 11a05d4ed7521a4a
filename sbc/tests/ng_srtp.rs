//! SRTP bridging over the ng protocol, through the real binary, checked by an independent SRTP
//! implementation: libsrtp via `pylibsrtp` (`tests/srtp/libsrtp_peer.py`). An ng client offers a
//! plain RTP caller with `transport-protocol: RTP/SAVP` (as Kamailio's `rtpengine_offer("RTP/SAVP")`
//! does), the callee answers `RTP/SAVP` with its own SDES key; then libsrtp protects the callee's
//! packets, which must reach the caller as the exact plain packets, and unprotects what the relay
//! sends the callee with the key the relay offered, which must give back the caller's exact
//! packets. A tampered packet is not relayed. Addresses 127.59.0.x:
//!
//! | host | who |
//! |---|---|
//! | `.1` | the SBC: ng control `:2223`, media relay (ports 20000-20019) |
//! | `.2:6000` | the callee (SRTP) |
//! | `.3:7000` | the caller (plain RTP) |
//! | `.9` | this test's ng client |

mod common;
#[path = "common/libsrtp.rs"]
mod libsrtp_peer;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use libsrtp_peer::unhex;
use sbc_core::ng::codec::{
    encode_request, Codec, Command as NgCommand, Request, TransportProtocol,
};
use sbc_sip::sdp::sdes::{crypto_value, InlineKey};
use sbc_sip::sdp::Crypto;

const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// libsrtp over RTP `packets` with `key` (`protect` or `unprotect`): one line per packet, the
/// result in hex or `error ...`.
fn libsrtp(key: &[u8], mode: &str, packets: &[Vec<u8>]) -> Vec<String> {
    let packets: Vec<(&str, Vec<u8>)> = packets.iter().map(|p| ("rtp", p.clone())).collect();
    libsrtp_peer::libsrtp(SUITE, key, mode, &packets)
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i * 7 + u32::from(seq)) as u8));
    p
}

fn sdp(ip: &str, port: u16, proto: &str, crypto: Option<&str>) -> String {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    if let Some(line) = crypto {
        s.push_str(&format!("a=crypto:{line}\r\n"));
    }
    s
}

/// One `a=crypto` line: tag, suite, key||salt.
type Line = (u32, String, Vec<u8>);

/// The audio port, the `m=` proto and the `a=crypto` lines of an SDP.
fn read_sdp(sdp: &str) -> (u16, String, Vec<Line>) {
    let m = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap();
    let mut f = m.split_whitespace();
    let port = f.next().unwrap().parse().unwrap();
    let proto = f.next().unwrap().to_owned();
    let cryptos = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .map(|v| {
            let c = Crypto::parse(v).unwrap();
            let k = InlineKey::parse(c.key_params).unwrap();
            (c.tag, c.suite.to_owned(), k.key_salt)
        })
        .collect();
    (port, proto, cryptos)
}

/// Send an ng request, return the reply's SDP (the reply must be `ok`).
fn ng(sock: &UdpSocket, to: SocketAddr, cookie: &str, req: &Request<'_>) -> String {
    let mut msg = Vec::new();
    encode_request(cookie.as_bytes(), req, &mut msg);
    let mut buf = vec![0u8; 65_536];
    for _ in 0..5 {
        sock.send_to(&msg, to).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let mut codec = Codec::default();
        let (ck, reply) = codec.parse_reply(&buf[..n]).unwrap();
        assert_eq!(ck, cookie.as_bytes());
        let sdp = reply.sdp.map(|s| String::from_utf8_lossy(s).into_owned());
        return sdp.unwrap_or_else(|| {
            panic!(
                "no SDP in the reply: {:?}",
                reply.error_reason.map(String::from_utf8_lossy)
            )
        });
    }
    panic!("no ng reply from {to}");
}

/// The datagrams `sock` receives until it has been quiet for `quiet`.
fn receive(sock: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => got.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn rtp_to_srtp_over_ng_interoperates_with_libsrtp() {
    let text = "workers = 1\n\
         [sip]\nudp = [\"127.59.0.1:5060\"]\n\
         [inside]\naddress = \"127.59.0.11\"\nport = 5080\n\
         [media]\nenabled = true\naddress = \"127.59.0.1\"\nport_min = 20000\nport_max = 20019\n\
         ng_listen = \"127.59.0.1:2223\"\nng_allowed = [\"127.59.0.9\"]\n";
    let sbc = Sbc::start_in(TempDir::new("ng-srtp"), "epoll", 5060, text);
    let control = UdpSocket::bind("127.59.0.9:0").unwrap();
    control
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let ng_addr = sa("127.59.0.1:2223");
    let caller = UdpSocket::bind("127.59.0.3:7000").unwrap();
    let callee = UdpSocket::bind("127.59.0.2:6000").unwrap();

    // Offer: the caller's plain RTP, SRTP asked for the callee.
    let offer_sdp = sdp("127.59.0.3", 7000, "RTP/AVP", None);
    let mut offer = Request::new(NgCommand::Offer);
    offer.call_id = Some(b"srtp-call-1");
    offer.from_tag = Some(b"caller");
    offer.sdp = Some(offer_sdp.as_bytes());
    offer.transport_protocol = Some(TransportProtocol::RtpSavp);
    let to_callee = ng(&control, ng_addr, "c1", &offer);
    let (port_b, proto, lines) = read_sdp(&to_callee);
    assert_eq!(proto, "RTP/SAVP", "{to_callee}");
    let (tag, _, relay_key) = lines
        .iter()
        .find(|l| l.1 == SUITE)
        .cloned()
        .unwrap_or_else(|| panic!("no {SUITE} line: {to_callee}"));

    // Answer: the callee keeps that line with a key of its own.
    let callee_key: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let line = crypto_value(tag, SUITE, &callee_key);
    let answer_sdp = sdp("127.59.0.2", 6000, "RTP/SAVP", Some(&line));
    let mut answer = Request::new(NgCommand::Answer);
    answer.call_id = Some(b"srtp-call-1");
    answer.from_tag = Some(b"caller");
    answer.to_tag = Some(b"callee");
    answer.sdp = Some(answer_sdp.as_bytes());
    let to_caller = ng(&control, ng_addr, "c2", &answer);
    let (port_a, proto, lines) = read_sdp(&to_caller);
    assert_eq!(proto, "RTP/AVP", "{to_caller}");
    assert!(lines.is_empty(), "{to_caller}");
    let relay_for_a = SocketAddr::new(sa("127.59.0.1:0").ip(), port_a);
    let relay_for_b = SocketAddr::new(sa("127.59.0.1:0").ip(), port_b);

    // Callee -> caller: libsrtp protects with the callee's key; the caller gets the plain packets.
    let plain_b: Vec<Vec<u8>> = (0..5).map(|i| rtp(0xB0B0_0001, 100 + i)).collect();
    let sealed: Vec<Vec<u8>> = libsrtp(&callee_key, "protect", &plain_b)
        .iter()
        .map(|h| unhex(h))
        .collect();
    assert_eq!(sealed[0].len(), plain_b[0].len() + 10);
    for p in &sealed {
        callee.send_to(p, relay_for_b).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let got_a = receive(&caller, Duration::from_millis(500));
    assert_eq!(
        got_a, plain_b,
        "the caller gets the callee's packets in clear"
    );

    // Caller -> callee: the relay protects with the key it offered; libsrtp unprotects.
    let plain_a: Vec<Vec<u8>> = (0..5).map(|i| rtp(0xA0A0_0001, 500 + i)).collect();
    for p in &plain_a {
        caller.send_to(p, relay_for_a).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let got_b = receive(&callee, Duration::from_millis(500));
    assert_eq!(got_b.len(), plain_a.len());
    assert!(got_b.iter().all(|p| p.len() == plain_a[0].len() + 10));
    let opened: Vec<Vec<u8>> = libsrtp(&relay_key, "unprotect", &got_b)
        .iter()
        .map(|h| unhex(h))
        .collect();
    assert_eq!(opened, plain_a, "libsrtp opens the relay's SRTP");
    // With another key (the callee's own), libsrtp refuses them: they really are protected.
    let wrong = libsrtp(&callee_key, "unprotect", &got_b[..1]);
    assert!(wrong[0].starts_with("error"), "{wrong:?}");

    // A tampered packet from the callee is not relayed; the next good one is.
    let more: Vec<Vec<u8>> = (0..2).map(|i| rtp(0xB0B0_0001, 200 + i)).collect();
    let mut sealed: Vec<Vec<u8>> = libsrtp(&callee_key, "protect", &more)
        .iter()
        .map(|h| unhex(h))
        .collect();
    sealed[0][20] ^= 0x01;
    for p in &sealed {
        callee.send_to(p, relay_for_b).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let got_a = receive(&caller, Duration::from_millis(500));
    assert_eq!(
        got_a,
        vec![more[1].clone()],
        "only the intact packet is relayed"
    );

    let mut delete = Request::new(NgCommand::Delete);
    delete.call_id = Some(b"srtp-call-1");
    delete.from_tag = Some(b"caller");
    let mut msg = Vec::new();
    encode_request(b"c3", &delete, &mut msg);
    control.send_to(&msg, ng_addr).unwrap();
    let mut buf = [0u8; 65_536];
    assert!(control.recv_from(&mut buf).is_ok(), "no reply to delete");
    sbc.stop();
}
