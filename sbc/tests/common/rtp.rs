//! A small SIP + RTP peer on raw UDP for the media tests (`tests/media.rs` includes this file): a
//! caller (UAC) that sends INVITE/re-INVITE with an SDP offer, ACK and BYE; a callee (the "PBX", UAS)
//! that answers with an SDP; SDP read back with `sbc_sip::sdp::Sdp`; RTP/RTCP senders and sinks.
//!
//! Everything is single-threaded and bounded in time except the RTP sinks, which run in their own
//! thread until told to stop. Every SIP message sent or received is kept in a trace that the tests
//! print when an assertion fails.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::sdp::{Connection, Direction, Scope, Sdp, ICE_ATTRIBUTES};
use sbc_sip::{HeaderName, Message, Method};

// -------------------------------------------------------------------------------------------------
// SIP transport

/// One UDP SIP endpoint: sends, receives, keeps messages not asked for yet, and traces everything.
pub(crate) struct SipSocket {
    sock: UdpSocket,
    pub(crate) local: SocketAddr,
    pending: VecDeque<(Message, SocketAddr)>,
    trace: Vec<String>,
    name: &'static str,
}

impl SipSocket {
    pub(crate) fn bind(name: &'static str, local: SocketAddr) -> Self {
        let sock = UdpSocket::bind(local).unwrap_or_else(|e| panic!("{name}: bind {local}: {e}"));
        Self {
            sock,
            local,
            pending: VecDeque::new(),
            trace: Vec::new(),
            name,
        }
    }

    pub(crate) fn send(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.trace.push(format!(
            "---- {} {} -> {to}\n{}",
            self.name,
            self.local,
            String::from_utf8_lossy(bytes)
        ));
        self.sock
            .send_to(bytes, to)
            .unwrap_or_else(|e| panic!("{}: send to {to}: {e}", self.name));
    }

    /// The first message (kept or new) that `want` accepts, within `timeout`. Messages it does not
    /// accept are kept for later calls.
    pub(crate) fn recv_where(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&Message) -> bool,
    ) -> Option<(Message, SocketAddr)> {
        if let Some(i) = self.pending.iter().position(|(m, _)| want(m)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok((len, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let raw = Bytes::copy_from_slice(&buf[..len]);
            self.trace.push(format!(
                "---- {} {} <- {from}\n{}",
                self.name,
                self.local,
                String::from_utf8_lossy(&raw)
            ));
            let Ok(msg) = Message::parse(raw) else {
                continue;
            };
            if want(&msg) {
                return Some((msg, from));
            }
            self.pending.push_back((msg, from));
        }
    }

    pub(crate) fn trace(&self) -> String {
        self.trace.join("")
    }
}

/// A unique token for branches, tags and Call-IDs.
pub(crate) fn token(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The URI inside a Contact (or From/To) value: between `<` and `>`, else up to `;`.
pub(crate) fn uri_of(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or_default().to_owned(),
    }
}

fn is_response_to(m: &Message, method: &Method, seq: u32) -> bool {
    !m.is_request() && m.cseq().method == *method && m.cseq().seq == seq
}

fn is_request(m: &Message, method: &Method) -> bool {
    m.method() == Some(method)
}

/// A response to `req` with the given To tag, a Contact and an optional SDP body.
fn response(req: &Message, code: u16, tag: &str, contact: &str, sdp: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let reason = sbc_sip::build::reason_phrase(code);
    let mut w = sbc_sip::build::response(req, code, reason, Some(tag), &mut out);
    w.header("Contact", contact);
    match sdp {
        Some(body) => w.finish(Some("application/sdp"), body.as_bytes()),
        None => w.finish(None, b""),
    }
    out
}

// -------------------------------------------------------------------------------------------------
// User agents

/// What a side's in-dialog requests carry.
#[derive(Clone, Debug)]
struct Dialog {
    call_id: String,
    /// From of its requests (its own tag).
    local: String,
    /// To of its requests (the far end's tag once known).
    remote: String,
    /// Request-URI (the far end's Contact once known).
    target: String,
    /// Where its requests go.
    peer: SocketAddr,
    cseq: u32,
}

/// A user agent on one UDP socket with at most one dialog: the caller (toward the SBC's outside
/// address) or the PBX (answering the SBC's inside leg, and sending its own in-dialog requests).
pub(crate) struct Ua {
    pub(crate) sip: SipSocket,
    tag: String,
    contact: String,
    dialog: Option<Dialog>,
    /// The last request sent: method, CSeq, branch.
    sent: Option<(Method, u32, String)>,
    /// Call-ID and CSeq of the last INVITE received (retransmissions told apart from re-INVITEs).
    last_invite: Option<(String, u32)>,
}

pub(crate) type Caller = Ua;
pub(crate) type Pbx = Ua;

impl Ua {
    /// The caller on `local`, calling `called` at the SBC's `sbc` address.
    pub(crate) fn caller(local: SocketAddr, sbc: SocketAddr, called: &str) -> Self {
        let tag = token("ft");
        Self {
            sip: SipSocket::bind("caller", local),
            contact: format!("<sip:alice@{local}>"),
            dialog: Some(Dialog {
                call_id: token("media-call-"),
                local: format!("<sip:alice@{local}>;tag={tag}"),
                remote: format!("<sip:{called}@{sbc}>"),
                target: format!("sip:{called}@{sbc}"),
                peer: sbc,
                cseq: 0,
            }),
            tag,
            sent: None,
            last_invite: None,
        }
    }

    /// The PBX on `local`; its dialog starts with the first INVITE it answers.
    pub(crate) fn pbx(local: SocketAddr) -> Self {
        Self {
            sip: SipSocket::bind("pbx", local),
            tag: token("pt"),
            contact: format!("<sip:pbx@{local}>"),
            dialog: None,
            sent: None,
            last_invite: None,
        }
    }

    pub(crate) fn call_id(&self) -> &str {
        self.dialog.as_ref().map_or("", |d| &d.call_id)
    }

    fn dialog(&mut self) -> &mut Dialog {
        let trace = self.sip.trace();
        self.dialog
            .as_mut()
            .unwrap_or_else(|| panic!("no dialog yet\n{trace}"))
    }

    fn build(&mut self, method: &str, seq: u32, branch: &str, body: Option<&str>) -> Vec<u8> {
        let local = self.sip.local;
        let contact = self.contact.clone();
        let d = self.dialog().clone();
        let mut s = String::new();
        let _ = write!(
            s,
            "{method} {} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {}\r\n\
             To: {}\r\n\
             Call-ID: {}\r\n\
             CSeq: {seq} {method}\r\n\
             Contact: {contact}\r\n",
            d.target, d.local, d.remote, d.call_id
        );
        match body {
            Some(b) => {
                let _ = write!(
                    s,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        s.into_bytes()
    }

    /// Send a request (not ACK) in the dialog, with its next CSeq.
    pub(crate) fn send_request(&mut self, method: &str, body: Option<&str>) {
        let d = self.dialog();
        d.cseq += 1;
        let (seq, peer) = (d.cseq, d.peer);
        let branch = token("b");
        let msg = self.build(method, seq, &branch, body);
        self.sip.send(peer, &msg);
        let m = Method::from_token(method.as_bytes()).unwrap();
        self.sent = Some((m, seq, branch));
    }

    /// Send a request (not ACK) in the dialog, with its next CSeq and a body of `content_type`.
    pub(crate) fn send_request_typed(&mut self, method: &str, content_type: &str, body: &str) {
        let d = self.dialog();
        d.cseq += 1;
        let (seq, peer) = (d.cseq, d.peer);
        let branch = token("b");
        let msg = String::from_utf8(self.build(method, seq, &branch, Some(body)))
            .unwrap_or_default()
            .replacen(
                "Content-Type: application/sdp",
                &format!("Content-Type: {content_type}"),
                1,
            );
        self.sip.send(peer, msg.as_bytes());
        let m = Method::from_token(method.as_bytes()).unwrap();
        self.sent = Some((m, seq, branch));
    }

    /// The final response to the last request sent; a 2xx to INVITE updates the dialog (To tag,
    /// Contact) and is ACKed, a failure to INVITE is ACKed too. Panics with the trace when none
    /// comes within `timeout`.
    pub(crate) fn finish(&mut self, timeout: Duration) -> Message {
        let (method, seq, branch) = self.sent.clone().expect("a request was sent");
        let (msg, _) = self
            .sip
            .recv_where(timeout, |m| {
                is_response_to(m, &method, seq) && m.status().unwrap_or(0) >= 200
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: no final response to {} CSeq {seq}\n{}",
                    self.sip.name,
                    method.as_str(),
                    self.sip.trace()
                )
            });
        let status = msg.status().unwrap_or(0);
        if method == Method::Invite {
            let peer = self.dialog().peer;
            let ack = if (200..300).contains(&status) {
                let to = msg.header(HeaderName::To).unwrap_or_default().to_owned();
                let contact = msg.header(HeaderName::Contact).map(uri_of);
                let d = self.dialog();
                d.remote = to;
                if let Some(c) = contact {
                    d.target = c;
                }
                self.build("ACK", seq, &token("b"), None)
            } else {
                let to = msg.header(HeaderName::To).unwrap_or_default().to_owned();
                self.dialog().remote = to;
                self.build("ACK", seq, &branch, None)
            };
            self.sip.send(peer, &ack);
        }
        msg
    }

    /// Send an INVITE (initial or re-INVITE) with `sdp`.
    pub(crate) fn send_invite(&mut self, sdp: &str) {
        self.send_request("INVITE", Some(sdp));
    }

    /// The final response to the INVITE just sent, ACKed.
    pub(crate) fn finish_invite(&mut self, timeout: Duration) -> Message {
        self.finish(timeout)
    }

    pub(crate) fn send_bye(&mut self) {
        self.send_request("BYE", None);
    }

    pub(crate) fn finish_bye(&mut self, timeout: Duration) -> Message {
        self.finish(timeout)
    }

    /// The next new INVITE (initial or re-INVITE, not a retransmission) within `timeout`; panics with
    /// the trace when none comes. The PBX's dialog starts with its first INVITE.
    pub(crate) fn recv_invite(&mut self, timeout: Duration) -> (Message, SocketAddr) {
        let last = self.last_invite.clone();
        let got = self.sip.recv_where(timeout, |m| {
            is_request(m, &Method::Invite)
                && match &last {
                    Some((cid, seq)) => m.call_id() != cid || m.cseq().seq > *seq,
                    None => true,
                }
        });
        let name = self.sip.name;
        let (msg, from) = got.unwrap_or_else(|| panic!("{name}: no INVITE\n{}", self.sip.trace()));
        self.last_invite = Some((msg.call_id().to_owned(), msg.cseq().seq));
        if self.dialog.is_none() {
            let to = msg.header(HeaderName::To).unwrap_or_default();
            self.dialog = Some(Dialog {
                call_id: msg.call_id().to_owned(),
                local: format!("{to};tag={}", self.tag),
                remote: msg.header(HeaderName::From).unwrap_or_default().to_owned(),
                target: msg
                    .header(HeaderName::Contact)
                    .map(uri_of)
                    .unwrap_or_default(),
                peer: from,
                cseq: 0,
            });
        }
        (msg, from)
    }

    /// Answer `req` (from `to`) with `code` and an optional SDP.
    pub(crate) fn respond(&mut self, req: &Message, to: SocketAddr, code: u16, sdp: Option<&str>) {
        let tag = self.tag.clone();
        let contact = self.contact.clone();
        let out = response(req, code, &tag, &contact, sdp);
        self.sip.send(to, &out);
    }

    /// Take the next INVITE, answer (180 first for an initial one) 200 with `answer(&offer)`;
    /// returns the INVITE. The ACK is left to [`Self::expect_ack`].
    pub(crate) fn answer_invite(
        &mut self,
        timeout: Duration,
        answer: impl FnOnce(&Message) -> String,
    ) -> Message {
        let (invite, from) = self.recv_invite(timeout);
        let sdp = answer(&invite);
        if invite.to_tag().is_none() {
            self.respond(&invite, from, 180, None);
        }
        self.respond(&invite, from, 200, Some(&sdp));
        invite
    }

    /// Take the next request `method` and answer it 200 with `sdp`; returns it.
    pub(crate) fn answer_request(
        &mut self,
        method: &Method,
        timeout: Duration,
        sdp: Option<&str>,
    ) -> Message {
        let name = self.sip.name;
        let (req, from) = self
            .recv_request(method, timeout)
            .unwrap_or_else(|| panic!("{name}: no {}\n{}", method.as_str(), self.sip.trace()));
        self.respond(&req, from, 200, sdp);
        req
    }

    /// The next request `method` within `timeout`.
    pub(crate) fn recv_request(
        &mut self,
        method: &Method,
        timeout: Duration,
    ) -> Option<(Message, SocketAddr)> {
        self.sip.recv_where(timeout, |m| is_request(m, method))
    }

    /// The ACK of the last 2xx, or a panic with the trace.
    pub(crate) fn expect_ack(&mut self, timeout: Duration) -> Message {
        let name = self.sip.name;
        self.recv_request(&Method::Ack, timeout)
            .unwrap_or_else(|| panic!("{name}: no ACK\n{}", self.sip.trace()))
            .0
    }

    /// A BYE within `timeout`, answered with 200.
    pub(crate) fn expect_bye(&mut self, timeout: Duration) -> Option<Message> {
        let (bye, from) = self.recv_request(&Method::Bye, timeout)?;
        self.respond(&bye, from, 200, None);
        Some(bye)
    }
}

// -------------------------------------------------------------------------------------------------
// SDP

/// An SDP offer or answer for one audio stream (PCMU + telephone-event), with `a=rtcp`, the given
/// direction and, when `ice`, ICE attributes (which the SBC must remove).
pub(crate) fn sdp_body(
    user: &str,
    version: u32,
    ip: &str,
    port: u16,
    dir: &str,
    ice: bool,
) -> String {
    let mut s = format!(
        "v=0\r\n\
         o={user} 4711 {version} IN IP4 {ip}\r\n\
         s=-\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=rtcp:{}\r\n",
        port + 1
    );
    if ice {
        let _ = write!(
            s,
            "a=ice-ufrag:F7gI\r\n\
             a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
             a=candidate:1 1 UDP 2130706431 {ip} {port} typ host\r\n\
             a=candidate:1 2 UDP 2130706430 {ip} {} typ host\r\n\
             a=candidate:2 1 UDP 1694498815 198.51.100.7 {port} typ srflx raddr {ip} rport {port}\r\n\
             a=end-of-candidates\r\n",
            port + 1
        );
    }
    let _ = write!(s, "a={dir}\r\n");
    s
}

/// What a side read from the SDP it received (first `m=` line).
#[derive(Debug)]
pub(crate) struct SdpSeen {
    pub(crate) text: String,
    /// Every `c=` address (session and media level), as written.
    pub(crate) connections: Vec<String>,
    /// The connection that applies to the first stream.
    pub(crate) ip: Option<IpAddr>,
    pub(crate) port: u16,
    /// `a=rtcp` port and address, if present.
    pub(crate) rtcp: Option<(u16, Option<String>)>,
    pub(crate) direction: Direction,
    /// ICE attributes left in (name:value lines).
    pub(crate) ice: Vec<String>,
    pub(crate) media_count: usize,
}

impl SdpSeen {
    /// Parse the body of `msg`; panics with the message when it is no valid SDP.
    pub(crate) fn of(msg: &Message) -> Self {
        let body = msg.body();
        let text = String::from_utf8_lossy(body).into_owned();
        let sdp = Sdp::parse(body).unwrap_or_else(|e| {
            panic!("SDP does not parse ({e:?}):\n{}", msg.raw().escape_ascii())
        });
        let connections = sdp
            .lines()
            .filter_map(|l| l.strip_prefix(b"c="))
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(|v| {
                Connection::parse(v)
                    .map(|c| c.address.to_owned())
                    .unwrap_or_else(|| v.to_owned())
            })
            .collect();
        let m = sdp
            .media(0)
            .unwrap_or_else(|| panic!("SDP without m= line:\n{text}"));
        let ice = ICE_ATTRIBUTES
            .iter()
            .flat_map(|name| {
                [Scope::Session, Scope::Media(0)]
                    .into_iter()
                    .flat_map(|scope| {
                        sdp.attribute_values(scope, name)
                            .map(|v| format!("{name}:{v}"))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Self {
            connections,
            ip: sdp.effective_connection(0).and_then(|c| c.ip()),
            port: m.port,
            rtcp: sdp
                .rtcp(0)
                .map(|r| (r.port, r.connection.map(|c| c.address.to_owned()))),
            direction: sdp.effective_direction(0),
            ice,
            media_count: sdp.media_count(),
            text,
        }
    }
}

// -------------------------------------------------------------------------------------------------
// RTP / RTCP

/// RTP payload bytes: a pattern derived from the SSRC and sequence number, so that a sink can check
/// that the relay forwarded the packet unchanged.
fn payload_byte(ssrc: u32, seq: u16, i: usize) -> u8 {
    (ssrc as u8) ^ (seq as u8).wrapping_mul(31) ^ (i as u8)
}

pub(crate) const RTP_LEN: usize = 12 + 160;

/// An RTP packet (version 2, no CSRC or extension) of payload type `pt` carrying `payload`.
pub(crate) fn rtp_with(
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// One RTP packet: V=2, PT 0 (PCMU), 160 bytes of payload (20 ms at 8 kHz).
pub(crate) fn rtp_packet(ssrc: u32, seq: u16) -> [u8; RTP_LEN] {
    let mut p = [0u8; RTP_LEN];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = payload_byte(ssrc, seq, i);
    }
    p
}

/// An RTCP receiver report without report blocks (valid compound of one packet).
pub(crate) fn rtcp_rr(ssrc: u32) -> [u8; 8] {
    let mut p = [0x80, 201, 0, 1, 0, 0, 0, 0];
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// A datagram a sink received.
#[derive(Clone, Debug)]
pub(crate) struct Got {
    pub(crate) from: SocketAddr,
    pub(crate) rtcp: bool,
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) len: usize,
    /// For RTP: the packet is byte for byte what [`rtp_packet`] made.
    pub(crate) intact: bool,
    /// The datagram as received.
    pub(crate) bytes: Vec<u8>,
}

fn classify(buf: &[u8], from: SocketAddr) -> Got {
    let len = buf.len();
    let rtcp = len >= 8 && (200..=204).contains(&buf[1]);
    let ssrc = if rtcp {
        u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
    } else if len >= 12 {
        u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])
    } else {
        0
    };
    let seq = if len >= 4 {
        u16::from_be_bytes([buf[2], buf[3]])
    } else {
        0
    };
    let intact = !rtcp && len == RTP_LEN && buf == rtp_packet(ssrc, seq).as_slice();
    Got {
        from,
        rtcp,
        ssrc,
        seq,
        len,
        intact,
        bytes: buf.to_vec(),
    }
}

/// Receives on a clone of a socket in its own thread until stopped.
pub(crate) struct Sink {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Got>>>,
}

impl Sink {
    pub(crate) fn spawn(sock: &UdpSocket) -> Self {
        let sock = sock.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            // A stop request still drains what is queued.
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((len, from)) => got.push(classify(&buf[..len], from)),
                    Err(_) if s.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            got
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop after `linger` more time and return what arrived.
    pub(crate) fn finish(mut self, linger: Duration) -> Vec<Got> {
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One stream to send: from `sock` to `to` with `ssrc`, sequence numbers from `first_seq`.
pub(crate) struct Stream<'a> {
    pub(crate) sock: &'a UdpSocket,
    pub(crate) to: SocketAddr,
    pub(crate) ssrc: u32,
    pub(crate) first_seq: u16,
}

/// Send `count` packets on every stream, one packet per stream every 20 ms (in the order given).
pub(crate) fn send_streams(streams: &[Stream<'_>], count: u16) {
    let start = Instant::now();
    for k in 0..count {
        for s in streams {
            s.sock
                .send_to(&rtp_packet(s.ssrc, s.first_seq.wrapping_add(k)), s.to)
                .unwrap();
        }
        let next = start + Duration::from_millis(20) * u32::from(k + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// A UDP socket on `ip:port`.
pub(crate) fn udp(ip: &str, port: u16) -> UdpSocket {
    UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"))
}

/// The RTP packets of `ssrc` in `got`.
pub(crate) fn of_ssrc(got: &[Got], ssrc: u32) -> Vec<&Got> {
    got.iter().filter(|g| !g.rtcp && g.ssrc == ssrc).collect()
}

/// A short description of what a sink got, for assertion messages.
pub(crate) fn summary(got: &[Got]) -> String {
    let mut by: Vec<(SocketAddr, bool, u32, usize)> = Vec::new();
    for g in got {
        match by
            .iter_mut()
            .find(|(f, r, s, _)| *f == g.from && *r == g.rtcp && *s == g.ssrc)
        {
            Some(e) => e.3 += 1,
            None => by.push((g.from, g.rtcp, g.ssrc, 1)),
        }
    }
    let mut s = format!("{} datagrams:", got.len());
    for (from, rtcp, ssrc, n) in by {
        let kind = if rtcp { "RTCP" } else { "RTP" };
        let _ = write!(s, " [{n} {kind} ssrc {ssrc:#x} from {from}]");
    }
    s
}

// -------------------------------------------------------------------------------------------------
// The SBC's exit counters

/// Counter `name` of the `sbc stopped` line (the sum over workers) in the SBC log.
pub(crate) fn counter(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("sbc stopped"))
        .unwrap_or_else(|| panic!("no 'sbc stopped' line in the log:\n{log}"));
    let key = format!(" {name}: ");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("no counter {name} in: {line}"));
    line[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("counter {name} unreadable in: {line}"))
}
