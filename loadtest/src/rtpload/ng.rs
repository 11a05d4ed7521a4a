//! The ng control protocol (a cookie, a space, then a bencoded dictionary, over UDP) as a client:
//! `ping`, and per call `offer` (SDP of endpoint A) then `answer` (SDP of endpoint B), from whose
//! returned SDPs the relay's ports are learned; `delete` at the end. Commands are pipelined (a window
//! of calls in flight, matched by cookie) and retransmitted with the same cookie on timeout, which the
//! protocol makes idempotent. Requests are encoded and replies parsed by the product's own ng codec
//! ([`sbc_core::ng::codec`]), so every run against rtpengine also checks that codec against real replies.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use sbc_core::ng::codec::{
    encode_request, Codec, Command, Limits, NgError, ParseError, ReplyView, Request, ResultCode,
    TransportProtocol,
};
use sbc_sip::sdp::sdes::{crypto_value, InlineKey};
use sbc_sip::sdp::Crypto;

/// The SRTP suite endpoint B asks for and answers with (the one every relay offers).
pub(crate) const SRTP_SUITE: &str = "AES_CM_128_HMAC_SHA1_80";
/// Its key||salt length.
const SRTP_KEY_LEN: usize = 30;

/// Tries per command before the setup gives up.
const TRIES: u32 = 4;

pub(crate) struct NgClient {
    sock: UdpSocket,
    peer: SocketAddr,
    prefix: String,
    serial: u64,
    timeout: Duration,
    window: usize,
    codec: Codec,
    /// Endpoint B speaks SRTP: the offer asks `transport-protocol: RTP/SAVP` for leg B.
    srtp_b: bool,
}

/// The relay's addresses for one call, learned from the returned SDPs.
#[derive(Clone, Debug)]
pub(crate) struct RelayPorts {
    /// Where endpoint A sends (from the SDP returned by `answer`).
    pub(crate) for_a: SocketAddrV4,
    /// Where endpoint B sends (from the SDP returned by `offer`).
    pub(crate) for_b: SocketAddrV4,
    /// Leg B's SRTP keys, when B speaks SRTP.
    pub(crate) srtp_b: Option<SrtpKeys>,
}

/// The SDES keys of an SRTP endpoint ([`SRTP_SUITE`], key||salt).
#[derive(Clone, Debug)]
pub(crate) struct SrtpKeys {
    /// What the endpoint sends with: its own key, announced in its SDP.
    pub(crate) own: Vec<u8>,
    /// What the relay sends to it with: the key of the relay's line the endpoint chose.
    pub(crate) relay: Vec<u8>,
}

/// The line endpoint B keeps from the relay's offer: the first [`SRTP_SUITE`] line, its tag and
/// key.
fn pick_crypto(sdp: &[u8]) -> Option<(u32, Vec<u8>)> {
    let text = std::str::from_utf8(sdp).ok()?;
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .filter_map(Crypto::parse)
        .filter(|c| c.suite == SRTP_SUITE && c.session_params.is_none())
        .find_map(|c| {
            let k = InlineKey::parse(c.key_params).ok()?;
            (k.key_salt.len() == SRTP_KEY_LEN && k.mki.is_none()).then_some((c.tag, k.key_salt))
        })
}

/// The generator's endpoints of one call, as announced in the SDPs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallEndpoints {
    pub(crate) index: usize,
    pub(crate) a: SocketAddrV4,
    pub(crate) b: SocketAddrV4,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offer,
    Answer,
    Delete,
}

struct Pending {
    call: CallEndpoints,
    phase: Phase,
    msg: Vec<u8>,
    sent_at: Instant,
    tries: u32,
}

impl NgClient {
    pub(crate) fn new(
        peer: SocketAddr,
        timeout: Duration,
        window: usize,
        srtp_b: bool,
    ) -> Result<Self, String> {
        let bind: SocketAddr = if peer.is_ipv4() {
            (Ipv4Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let sock = UdpSocket::bind(bind).map_err(|e| format!("ng socket: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| format!("ng socket: {e}"))?;
        Ok(Self {
            sock,
            peer,
            prefix: format!("rl{:x}", std::process::id()),
            serial: 0,
            timeout,
            window: window.max(1),
            codec: Codec::new(Limits::default()),
            srtp_b,
        })
    }

    fn cookie(&mut self) -> String {
        self.serial += 1;
        format!("{}_{}", self.prefix, self.serial)
    }

    /// `ping`: Ok when the peer answers `pong` within the timeout (retransmitted once or twice).
    pub(crate) fn ping(&mut self) -> Result<(), String> {
        let cookie = self.cookie();
        let mut msg = Vec::new();
        encode_request(cookie.as_bytes(), &Request::new(Command::Ping), &mut msg);
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            self.send(&msg)?;
            let resend_at = Instant::now() + self.timeout / 3;
            while Instant::now() < resend_at.min(deadline) {
                let Some((ck, reply)) = self.recv(&mut buf)? else {
                    continue;
                };
                if ck != cookie.as_bytes() {
                    continue;
                }
                let result = result_of(reply.as_ref());
                return if result == Some(ResultCode::Pong) {
                    Ok(())
                } else {
                    Err(format!("ping answered {:?}, not pong", result_name(result)))
                };
            }
        }
        Err(format!("no answer to ng ping from {}", self.peer))
    }

    /// Offer/answer for every call of `calls`; returns the relay ports of each, in order. Stops at the
    /// first call the relay refuses (error result, unparsable SDP, no answer), returning what was set
    /// up before it together with the reason.
    pub(crate) fn setup(
        &mut self,
        calls: &[CallEndpoints],
        call_id: &dyn Fn(usize) -> String,
    ) -> (Vec<RelayPorts>, Option<String>) {
        let mut for_b: HashMap<usize, (SocketAddrV4, Option<SrtpKeys>)> = HashMap::new();
        let mut done: BTreeMap<usize, RelayPorts> = BTreeMap::new();
        let mut err = None;
        let srtp_b = self.srtp_b;
        let result = self.pipeline(calls, Phase::Offer, call_id, &mut |call, phase, reply| {
            let sdp = reply.sdp.ok_or("reply without sdp")?;
            let relay =
                parse_sdp_audio(sdp).ok_or("no IPv4 c= and m=audio port in the reply's SDP")?;
            match phase {
                Phase::Offer if srtp_b => {
                    let (tag, relay_key) = pick_crypto(sdp)
                        .ok_or("no AES_CM_128_HMAC_SHA1_80 a=crypto line in the offer's SDP")?;
                    let own =
                        sbc_core::media::sdes::new_key(SRTP_KEY_LEN).ok_or("no random key")?;
                    let line = format!("a=crypto:{}\r\n", crypto_value(tag, SRTP_SUITE, &own));
                    let keys = SrtpKeys {
                        own,
                        relay: relay_key,
                    };
                    for_b.insert(call.index, (relay, Some(keys)));
                    Ok(Some((Phase::Answer, Some(line))))
                }
                Phase::Offer => {
                    for_b.insert(call.index, (relay, None));
                    Ok(Some((Phase::Answer, None)))
                }
                _ => {
                    let (b, keys) = for_b.remove(&call.index).ok_or("answer before offer")?;
                    done.insert(
                        call.index,
                        RelayPorts {
                            for_a: relay,
                            for_b: b,
                            srtp_b: keys,
                        },
                    );
                    Ok(None)
                }
            }
        });
        if let Err(e) = result {
            err = Some(e);
        }
        // Only the calls set up without a gap from the first one count.
        let mut out = Vec::with_capacity(calls.len());
        for c in calls {
            match done.remove(&c.index) {
                Some(p) => out.push(p),
                None => break,
            }
        }
        if err.is_none() && out.len() < calls.len() {
            err = Some("calls left unanswered".into());
        }
        (out, err)
    }

    /// `delete` for every call; returns how many the relay refused or never answered.
    pub(crate) fn delete(
        &mut self,
        calls: &[CallEndpoints],
        call_id: &dyn Fn(usize) -> String,
    ) -> Result<(), String> {
        self.pipeline(calls, Phase::Delete, call_id, &mut |_, _, _| Ok(None))
    }

    /// Runs every call through its commands, `window` calls in flight. `on_reply` gets each successful
    /// reply and says which command comes next for that call, if any.
    fn pipeline(
        &mut self,
        calls: &[CallEndpoints],
        first: Phase,
        call_id: &dyn Fn(usize) -> String,
        on_reply: &mut OnReply<'_>,
    ) -> Result<(), String> {
        let mut pending: HashMap<Vec<u8>, Pending> = HashMap::new();
        let mut next = 0;
        let mut buf = vec![0u8; 65_536];
        let mut first_error: Option<String> = None;
        loop {
            while first_error.is_none() && pending.len() < self.window && next < calls.len() {
                let call = calls[next];
                next += 1;
                self.issue(&mut pending, call, first, &call_id(call.index), None)?;
            }
            if pending.is_empty() {
                break;
            }
            if let Some((ck, reply)) = self.recv(&mut buf)? {
                if let Some(p) = pending.remove(ck) {
                    let reply = match reply {
                        Some(r) if r.result == ResultCode::Ok => r,
                        other => {
                            let other = other.as_ref();
                            let reason = String::from_utf8_lossy(
                                other.and_then(|r| r.error_reason).unwrap_or_default(),
                            );
                            let what = format!(
                                "ng {} for call {} answered {:?} {reason:?}",
                                phase_name(p.phase),
                                p.call.index,
                                result_name(result_of(other))
                            );
                            first_error.get_or_insert(what);
                            continue;
                        }
                    };
                    match on_reply(p.call, p.phase, &reply) {
                        Ok(Some((phase, crypto))) if first_error.is_none() => {
                            let id = call_id(p.call.index);
                            self.issue(&mut pending, p.call, phase, &id, crypto.as_deref())?;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            first_error.get_or_insert(format!(
                                "ng {} for call {}: {e}",
                                phase_name(p.phase),
                                p.call.index
                            ));
                        }
                    }
                }
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            for (ck, p) in &pending {
                if now.duration_since(p.sent_at) >= self.timeout {
                    expired.push(ck.clone());
                }
            }
            for ck in expired {
                let Some(p) = pending.get_mut(&ck) else {
                    continue;
                };
                if p.tries >= TRIES {
                    let what = format!(
                        "no ng reply to {} for call {} after {TRIES} tries",
                        phase_name(p.phase),
                        p.call.index
                    );
                    pending.remove(&ck);
                    first_error.get_or_insert(what);
                    continue;
                }
                p.tries += 1;
                p.sent_at = now;
                let msg = p.msg.clone();
                self.send(&msg)?;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn issue(
        &mut self,
        pending: &mut HashMap<Vec<u8>, Pending>,
        call: CallEndpoints,
        phase: Phase,
        call_id: &str,
        crypto: Option<&str>,
    ) -> Result<(), String> {
        let cookie = self.cookie();
        let from_tag = format!("a{}", call.index);
        let to_tag = format!("b{}", call.index);
        let body = match phase {
            Phase::Offer => sdp(call.a, 2 * call.index as u64 + 1),
            Phase::Answer => match crypto {
                Some(line) => srtp_sdp(call.b, 2 * call.index as u64 + 2, line),
                None => sdp(call.b, 2 * call.index as u64 + 2),
            },
            Phase::Delete => String::new(),
        };
        let mut req = Request::new(match phase {
            Phase::Offer => Command::Offer,
            Phase::Answer => Command::Answer,
            Phase::Delete => Command::Delete,
        });
        req.call_id = Some(call_id.as_bytes());
        req.from_tag = Some(from_tag.as_bytes());
        if phase != Phase::Delete {
            req.sdp = Some(body.as_bytes());
        }
        if phase == Phase::Answer {
            req.to_tag = Some(to_tag.as_bytes());
        }
        if phase == Phase::Offer && self.srtp_b {
            req.transport_protocol = Some(TransportProtocol::RtpSavp);
        }
        let mut msg = Vec::new();
        encode_request(cookie.as_bytes(), &req, &mut msg);
        self.send(&msg)?;
        pending.insert(
            cookie.into_bytes(),
            Pending {
                call,
                phase,
                msg,
                sent_at: Instant::now(),
                tries: 1,
            },
        );
        Ok(())
    }

    fn send(&self, msg: &[u8]) -> Result<(), String> {
        self.sock
            .send_to(msg, self.peer)
            .map(|_| ())
            .map_err(|e| format!("ng send to {}: {e}", self.peer))
    }

    /// One reply from the peer: its cookie and the parsed reply, the latter `None` for a dictionary
    /// without a `result` string (an answer, but not a successful one). `None` on timeout or on
    /// anything that is not a well-formed reply (no cookie, not a bencoded dictionary).
    fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<Received<'b>>, String> {
        let (n, from) = match self.sock.recv_from(buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(format!("ng receive: {e}")),
        };
        if from != self.peer {
            return Ok(None);
        }
        let data: &'b [u8] = buf.get(..n).unwrap_or_default();
        Ok(split_reply(&mut self.codec, data))
    }
}

/// A reply's cookie, and the reply (`None`: a dictionary without a `result` string).
type Received<'b> = (&'b [u8], Option<ReplyView<'b>>);

/// `cookie SP bencoded-dict` → (cookie, reply); `None` if malformed. Keys need not be sorted: peers
/// do not all sort them.
fn split_reply<'b>(codec: &mut Codec, data: &'b [u8]) -> Option<Received<'b>> {
    match codec.parse_reply(data) {
        Ok((cookie, reply)) => Some((cookie, Some(reply))),
        Err(ParseError {
            cookie: Some(cookie),
            error: NgError::NoResult,
        }) => Some((cookie, None)),
        Err(_) => None,
    }
}

fn result_of(reply: Option<&ReplyView<'_>>) -> Option<ResultCode> {
    reply.map(|r| r.result)
}

/// A reply's `result` for messages: its wire spelling, `""` when it had none.
fn result_name(result: Option<ResultCode>) -> &'static str {
    match result {
        None => "",
        Some(ResultCode::Ok) => "ok",
        Some(ResultCode::Pong) => "pong",
        Some(ResultCode::Error) => "error",
        Some(ResultCode::LoadLimit) => "load limit",
        // The codec keeps no text for a result it does not know.
        Some(ResultCode::Other) => "(unknown result)",
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Offer => "offer",
        Phase::Answer => "answer",
        Phase::Delete => "delete",
    }
}

/// The next command of a call and the `a=crypto` line its SDP carries, if any.
type Next = Option<(Phase, Option<String>)>;

/// Handles one successful reply of a call's command; returns the call's next command, if any.
type OnReply<'a> =
    dyn FnMut(CallEndpoints, Phase, &ReplyView<'_>) -> Result<Next, &'static str> + 'a;

/// The SDP a generator endpoint announces: one G.711 µ-law audio stream, 20 ms packets.
pub(crate) fn sdp(at: SocketAddrV4, session: u64) -> String {
    let ip = at.ip();
    format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=rtpload\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
        at.port()
    )
}

/// The SDP of an SRTP endpoint: [`sdp`] as `RTP/SAVP` with one `a=crypto` line (`line`, with its
/// CRLF).
pub(crate) fn srtp_sdp(at: SocketAddrV4, session: u64, line: &str) -> String {
    let mut s = sdp(at, session).replace(" RTP/AVP ", " RTP/SAVP ");
    s.push_str(line);
    s
}

/// The address of the first audio stream of an SDP: its port from `m=audio`, its address from the
/// media-level `c=` if any, else the session-level one.
pub(crate) fn parse_sdp_audio(sdp: &[u8]) -> Option<SocketAddrV4> {
    let text = std::str::from_utf8(sdp).ok()?;
    let mut session_c: Option<Ipv4Addr> = None;
    let mut media_c: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    let mut seen_m = false;
    let mut in_audio = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            if port.is_some() {
                break;
            }
            seen_m = true;
            let mut f = rest.split_ascii_whitespace();
            in_audio = f.next() == Some("audio");
            if in_audio {
                port = f.next()?.split('/').next()?.parse().ok();
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let mut f = rest.split_ascii_whitespace();
            let (Some("IN"), Some("IP4"), Some(addr)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let ip = addr.split('/').next()?.parse().ok();
            if !seen_m {
                session_c = ip;
            } else if in_audio {
                media_c = ip;
            }
        }
    }
    let port = port.filter(|&p| p != 0)?;
    Some(SocketAddrV4::new(media_c.or(session_c)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_round_trip() {
        let a = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 10_000);
        assert_eq!(parse_sdp_audio(sdp(a, 1).as_bytes()), Some(a));
        let media_level = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n\
            c=IN IP4 10.0.0.9\r\nm=audio 30002 RTP/AVP 0\r\n";
        // The video stream and its c= line are skipped; the audio one has no c= of its own.
        assert_eq!(
            parse_sdp_audio(media_level),
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 30_002))
        );
        let audio = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 30002 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(
            parse_sdp_audio(audio),
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 30_002))
        );
    }

    #[test]
    fn the_b_endpoint_picks_the_relays_80_bit_line_and_announces_its_own_key() {
        let relay = [9u8; SRTP_KEY_LEN];
        let offer = format!(
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30000 RTP/SAVP 0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n\
             a=crypto:{}\r\n",
            crypto_value(2, SRTP_SUITE, &relay)
        );
        assert_eq!(pick_crypto(offer.as_bytes()), Some((2, relay.to_vec())));
        assert_eq!(pick_crypto(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"), None);
        let b = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 10_000);
        let line = format!("a=crypto:{}\r\n", crypto_value(2, SRTP_SUITE, &[1u8; 30]));
        let answer = srtp_sdp(b, 2, &line);
        assert!(answer.contains("m=audio 10000 RTP/SAVP 0\r\n"));
        assert!(answer.ends_with(&line));
        assert_eq!(parse_sdp_audio(answer.as_bytes()), Some(b));
    }

    #[test]
    fn encode_and_split() {
        let mut msg = Vec::new();
        encode_request(b"c1", &Request::new(Command::Ping), &mut msg);
        assert_eq!(msg, b"c1 d7:command4:pinge".to_vec());
        let mut req = Request::new(Command::Answer);
        req.call_id = Some(b"x");
        req.from_tag = Some(b"a0");
        req.to_tag = Some(b"b0");
        req.sdp = Some(b"v=0");
        msg.clear();
        encode_request(b"c2", &req, &mut msg);
        // Keys sorted, as bencode requires: the same bytes as before the codec was shared.
        assert_eq!(
            msg,
            b"c2 d7:call-id1:x7:command6:answer8:from-tag2:a03:sdp3:v=06:to-tag2:b0e".to_vec()
        );

        let mut codec = Codec::new(Limits::default());
        let (ck, reply) = split_reply(&mut codec, b"c1 d6:result4:ponge").unwrap_or_default();
        assert_eq!(ck, b"c1");
        assert_eq!(result_of(reply.as_ref()), Some(ResultCode::Pong));
        assert!(split_reply(&mut codec, b"c1 d6:result").is_none());
        assert!(split_reply(&mut codec, b"nospace").is_none());
        assert!(split_reply(&mut codec, b"c1 l4:pinge").is_none());
        // A dictionary without `result`: an answer, not a successful one.
        let (ck, reply) = split_reply(&mut codec, b"c3 d3:sdp3:v=0e").unwrap_or_default();
        assert_eq!((ck, reply), (&b"c3"[..], None));
        // Unsorted keys, as some peers send them.
        let (_, reply) =
            split_reply(&mut codec, b"c2 d3:sdp3:v=06:result2:oke").unwrap_or_default();
        let reply = reply.as_ref();
        assert_eq!(result_of(reply), Some(ResultCode::Ok));
        assert_eq!(reply.and_then(|r| r.sdp), Some(&b"v=0"[..]));
        let (_, reply) = split_reply(
            &mut codec,
            b"c4 d6:result5:error12:error-reason15:Unknown call-ide",
        )
        .unwrap_or_default();
        assert_eq!(result_name(result_of(reply.as_ref())), "error");
        assert_eq!(
            reply.and_then(|r| r.error_reason),
            Some(&b"Unknown call-id"[..])
        );
    }
}
