//! SIP handling for now: parse, answer OPTIONS, refuse other requests with 501, drop responses.
//!
//! The B2BUA replaces [`Handler::handle`]'s dispatch; parsing, the stateless error answers and the
//! counters stay. The handler is transport-agnostic: it gets the bytes of one message and appends the
//! answer, if any, to a caller-supplied buffer. Where the answer goes is the transport's business
//! (RFC 3261 §18.2.2 / RFC 3581: the packet's source for UDP, the same connection for TCP and TLS).

use bytes::Bytes;
use sbc_sip::message::looks_like_request;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{build, Message, Method, Verdict};

/// Per-worker counters: single writer (the worker), read once at shutdown.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) udp_rx: u64,
    pub(crate) udp_tx: u64,
    pub(crate) udp_send_errors: u64,
    pub(crate) udp_truncated: u64,
    pub(crate) udp_no_buffers: u64,
    pub(crate) stream_rx_messages: u64,
    pub(crate) keepalives: u64,
    pub(crate) tcp_accepted: u64,
    pub(crate) tcp_refused: u64,
    pub(crate) tcp_closed: u64,
    pub(crate) tcp_idle_closed: u64,
    pub(crate) framing_errors: u64,
    pub(crate) tls_errors: u64,
    pub(crate) parse_errors: u64,
    pub(crate) parse_errors_answered: u64,
    pub(crate) parse_errors_dropped: u64,
    pub(crate) options_answered: u64,
    pub(crate) not_implemented: u64,
    pub(crate) acks_absorbed: u64,
    pub(crate) responses_dropped: u64,
}

impl Counters {
    pub(crate) fn add(&mut self, o: &Self) {
        macro_rules! sum { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        sum!(
            udp_rx,
            udp_tx,
            udp_send_errors,
            udp_truncated,
            udp_no_buffers,
            stream_rx_messages,
            keepalives,
            tcp_accepted,
            tcp_refused,
            tcp_closed,
            tcp_idle_closed,
            framing_errors,
            tls_errors,
            parse_errors,
            parse_errors_answered,
            parse_errors_dropped,
            options_answered,
            not_implemented,
            acks_absorbed,
            responses_dropped
        );
    }
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// The SIP message handler of one worker.
pub(crate) struct Handler {
    worker: u16,
    tag_seq: u64,
    tag: String,
    pub(crate) counters: Counters,
}

impl Handler {
    pub(crate) fn new(worker: u16) -> Self {
        Self {
            worker,
            tag_seq: 0,
            tag: String::with_capacity(24),
            counters: Counters::default(),
        }
    }

    /// Handle one message; append the answer (if any) to `out`. Returns whether something was appended.
    pub(crate) fn handle(&mut self, raw: Bytes, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let msg = match Message::parse(raw.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.counters.parse_errors += 1;
                return match e.verdict(looks_like_request(&raw)) {
                    Verdict::Reply(code, reason) => {
                        let ok = stateless_error(&raw, code, reason, out);
                        if ok {
                            self.counters.parse_errors_answered += 1;
                        } else {
                            out.truncate(start);
                            self.counters.parse_errors_dropped += 1;
                        }
                        ok
                    }
                    Verdict::Drop => {
                        self.counters.parse_errors_dropped += 1;
                        false
                    }
                };
            }
        };
        let Some(method) = msg.method() else {
            // RFC 3261 §18.1.2: a response that matches no transaction is dropped.
            self.counters.responses_dropped += 1;
            return false;
        };
        match method {
            Method::Ack => {
                // Never answered (RFC 3261 §17.2.3 / §13.3.1.4).
                self.counters.acks_absorbed += 1;
                false
            }
            Method::Options => {
                self.next_tag();
                let mut w = build::response(&msg, 200, "OK", Some(&self.tag), out);
                w.header("Allow", ALLOW)
                    .header("Accept", "application/sdp")
                    .header("Supported", "")
                    .header("Server", "sbc");
                w.finish(None, b"");
                self.counters.options_answered += 1;
                true
            }
            _ => {
                self.next_tag();
                let mut w = build::response(&msg, 501, "Not Implemented", Some(&self.tag), out);
                w.header("Allow", ALLOW).header("Server", "sbc");
                w.finish(None, b"");
                self.counters.not_implemented += 1;
                true
            }
        }
    }

    /// A fresh to-tag: worker id and a per-worker sequence, unique for the life of the process.
    fn next_tag(&mut self) {
        use std::fmt::Write as _;
        self.tag_seq += 1;
        self.tag.clear();
        let _ = write!(self.tag, "w{:x}t{:x}", self.worker, self.tag_seq);
    }
}

/// A stateless error answer to a request that failed to parse (RFC 3261 §8.2.6, §16.3): Via, From, To,
/// Call-ID and CSeq are copied as received (long or compact names). Without a Via nothing can be routed
/// and `false` is returned.
fn stateless_error(raw: &[u8], code: u16, reason: &str, out: &mut Vec<u8>) -> bool {
    let head_end = memchr_find(raw, b"\r\n\r\n").unwrap_or(raw.len());
    let head = &raw[..head_end];
    let Ok(head) = std::str::from_utf8(head) else {
        return false;
    };
    let mut lines = head.split("\r\n").skip_while(|l| l.is_empty());
    lines.next(); // start line
    let mut w = MessageWriter::response(out, code, reason);
    let mut have_via = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        const COPIED: [(&str, &str, &str); 5] = [
            ("via", "v", "Via"),
            ("from", "f", "From"),
            ("to", "t", "To"),
            ("call-id", "i", "Call-ID"),
            ("cseq", "cseq", "CSeq"),
        ];
        let Some(&(_, _, canonical)) = COPIED.iter().find(|(long, short, _)| {
            name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(short)
        }) else {
            continue;
        };
        have_via |= canonical == "Via";
        w.header(canonical, value);
    }
    if !have_via {
        return false;
    }
    w.header("Server", "sbc");
    w.finish(None, b"");
    true
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(extra: &str) -> Bytes {
        Bytes::from(format!(
            "OPTIONS sip:sbc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:sbc@127.0.0.1>\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nCall-ID: c1\r\n{extra}\
Content-Length: 0\r\n\r\n"
        ))
    }

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn options_gets_200() {
        let mut h = Handler::new(3);
        let mut out = Vec::new();
        assert!(h.handle(options("CSeq: 7 OPTIONS\r\n"), &mut out));
        let t = text(&out);
        assert!(t.starts_with("SIP/2.0 200 OK\r\n"), "{t}");
        for want in [
            "Allow: ",
            "Accept: application/sdp",
            "Supported:",
            "Server: sbc",
            ";tag=w3t1",
            "CSeq: 7 OPTIONS",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        let reply = Message::parse(Bytes::from(out.clone())).unwrap();
        assert_eq!(reply.status(), Some(200));
    }

    #[test]
    fn bad_cseq_gets_400_naming_it() {
        let mut h = Handler::new(0);
        let mut out = Vec::new();
        assert!(h.handle(options("CSeq: x OPTIONS\r\n"), &mut out));
        let t = text(&out);
        assert!(t.starts_with("SIP/2.0 400 Bad CSeq\r\n"), "{t}");
        assert!(t.contains("Call-ID: c1"), "{t}");
        assert_eq!(h.counters.parse_errors_answered, 1);
    }

    #[test]
    fn garbage_and_responses_dropped_ack_absorbed() {
        let mut h = Handler::new(0);
        let mut out = Vec::new();
        assert!(!h.handle(Bytes::from_static(b"\x00\x01garbage"), &mut out));
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@h>;tag=2\r\n\
From: <sip:b@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert!(!h.handle(Bytes::from_static(resp), &mut out));
        let ack = Bytes::from(
            String::from_utf8(options("CSeq: 1 ACK\r\n").to_vec())
                .unwrap()
                .replacen("OPTIONS", "ACK", 1),
        );
        assert!(!h.handle(ack, &mut out));
        assert!(out.is_empty());
        assert_eq!(h.counters.responses_dropped, 1);
        assert_eq!(h.counters.acks_absorbed, 1);
    }

    #[test]
    fn other_requests_get_501() {
        let mut h = Handler::new(0);
        let mut out = Vec::new();
        let reg = Bytes::from(
            String::from_utf8(options("CSeq: 1 REGISTER\r\n").to_vec())
                .unwrap()
                .replacen("OPTIONS", "REGISTER", 1),
        );
        assert!(h.handle(reg, &mut out));
        assert!(text(&out).starts_with("SIP/2.0 501 Not Implemented\r\n"));
    }
}
