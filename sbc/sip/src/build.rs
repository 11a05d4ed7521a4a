//! Messages derived from others, as RFC 3261 defines them: a response to a request (§8.2.6), the ACK a
//! client transaction sends for a non-2xx final response (§17.1.1.3), and a CANCEL (§9.1).
//!
//! Each writes into a caller-supplied buffer. `response` returns the writer so that the caller can add
//! headers (Contact, Allow, Server, ...) before [`MessageWriter::finish`].

use crate::message::{HeaderName, Message, Method};
use crate::writer::{decimal, MessageWriter};

/// Start a response to `req` (RFC 3261 §8.2.6.2): every Via (in order, as received), From, To, Call-ID
/// and CSeq copied. `to_tag` is added to To when the request's To has no tag and the response is not a
/// 100 (a 100 Trying never establishes a dialog, §8.2.6.2).
pub fn response<'b>(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    out: &'b mut Vec<u8>,
) -> MessageWriter<'b> {
    let mut w = MessageWriter::response(out, code, reason);
    for field in req.headers() {
        if field.name == HeaderName::Via {
            w.header("Via", field.value);
        }
    }
    w.header("From", req.header(HeaderName::From).unwrap_or_default());
    let to = req.header(HeaderName::To).unwrap_or_default();
    match to_tag {
        Some(tag) if code > 100 && req.to_tag().is_none() => {
            w.header_parts("To", &[to, ";tag=", tag]);
        }
        _ => {
            w.header("To", to);
        }
    }
    w.header("Call-ID", req.call_id());
    w.header("CSeq", req.header(HeaderName::CSeq).unwrap_or_default());
    w
}

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): same Request-URI, Call-ID,
/// From and CSeq number as the INVITE, To from the response (it carries the tag), only the INVITE's top
/// Via, and the INVITE's Route headers.
pub fn ack_for_non_2xx(invite: &Message, response: &Message, out: &mut Vec<u8>) {
    let to = response.header(HeaderName::To).unwrap_or_default();
    request_for_invite_transaction(invite, Method::Ack, to, out);
}

/// A CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From and CSeq number, only the
/// INVITE's top Via (so the branch matches), and the INVITE's Route headers.
pub fn cancel(invite: &Message, out: &mut Vec<u8>) {
    let to = invite.header(HeaderName::To).unwrap_or_default();
    request_for_invite_transaction(invite, Method::Cancel, to, out);
}

/// ACK and CANCEL belong to the INVITE's transaction: they copy its Request-URI, top Via, From,
/// Call-ID, CSeq number and Route set; only the method and the To differ.
fn request_for_invite_transaction(invite: &Message, method: Method, to: &str, out: &mut Vec<u8>) {
    let uri = invite.request_uri().unwrap_or_default();
    let mut w = MessageWriter::request(out, &method, uri);
    w.header(
        "Via",
        invite
            .header_values(HeaderName::Via)
            .next()
            .unwrap_or_default(),
    );
    w.header_u32("Max-Forwards", 70);
    w.header("From", invite.header(HeaderName::From).unwrap_or_default());
    w.header("To", to);
    w.header("Call-ID", invite.call_id());
    let mut seq = [0u8; 10];
    w.header_parts(
        "CSeq",
        &[decimal(invite.cseq().seq, &mut seq), " ", method.as_str()],
    );
    for field in invite.headers() {
        if field.name == HeaderName::Route {
            w.header("Route", field.value);
        }
    }
    w.finish(None, b"");
}

/// A stateless error response (400, 505, 416, ...) to a request that failed to parse (RFC 3261 §8.2.6,
/// §16.3). The index of the failed message is gone, so this scans `raw` leniently, line by line, for the
/// headers a response must echo: every Via, From, To, Call-ID and CSeq (long or compact names). `to_tag`
/// is appended to To when it carries none. Returns `false`, writing nothing, when no Via line is found:
/// such a response could not be routed, so the caller drops the request instead.
pub fn error_response_for_raw(
    raw: &[u8],
    code: u16,
    reason: &str,
    to_tag: &str,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    let mut w = MessageWriter::response(out, code, reason);
    let mut vias = 0usize;
    // Skip the start line; stop at the blank line that ends the header section.
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = HeaderName::from_bytes(trim(name));
        let Ok(value) = std::str::from_utf8(trim(value.get(1..).unwrap_or_default())) else {
            continue;
        };
        match name {
            HeaderName::Via => {
                vias += 1;
                w.header("Via", value);
            }
            HeaderName::From => {
                w.header("From", value);
            }
            HeaderName::To if !value.contains(";tag=") && !to_tag.is_empty() => {
                w.header_parts("To", &[value, ";tag=", to_tag]);
            }
            HeaderName::To => {
                w.header("To", value);
            }
            HeaderName::CallId => {
                w.header("Call-ID", value);
            }
            HeaderName::CSeq => {
                w.header("CSeq", value);
            }
            _ => {}
        }
    }
    if vias == 0 {
        out.truncate(start);
        return false;
    }
    w.finish(None, b"");
    true
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => s.get(i..).unwrap_or_default(),
        None => return &[],
    };
    match s.iter().rposition(|b| !b.is_ascii_whitespace()) {
        Some(i) => s.get(..=i).unwrap_or_default(),
        None => &[],
    }
}

/// The default reason phrase of a status code (RFC 3261 §21 and the extensions an SBC answers with).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Message {
        Message::parse(Bytes::from_static(INVITE.as_bytes())).unwrap()
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let req = invite();
        let mut out = Vec::new();
        response(&req, 486, reason_phrase(486), Some("sbc1"), &mut out).finish(None, b"");
        let rsp = Message::parse(Bytes::from(out)).unwrap();
        assert_eq!(rsp.status(), Some(486));
        assert_eq!(rsp.reason(), Some("Busy Here"));
        assert_eq!(rsp.vias().count(), 2, "all Vias are copied, in order");
        assert_eq!(rsp.top_via().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(rsp.to_tag(), Some("sbc1"));
        assert_eq!(rsp.from_tag(), Some("1928301774"));
        assert_eq!(rsp.call_id(), req.call_id());
        assert_eq!(rsp.cseq().seq, 314159);
        assert_eq!(rsp.cseq().method, Method::Invite);
    }

    #[test]
    fn trying_gets_no_tag() {
        let mut out = Vec::new();
        response(&invite(), 100, "Trying", Some("sbc1"), &mut out).finish(None, b"");
        let rsp = Message::parse(Bytes::from(out)).unwrap();
        assert_eq!(rsp.to_tag(), None);
    }

    #[test]
    fn ack_for_non_2xx_follows_17_1_1_3() {
        let req = invite();
        let mut out = Vec::new();
        response(&req, 486, "Busy Here", Some("callee9"), &mut out).finish(None, b"");
        let rsp = Message::parse(Bytes::from(out)).unwrap();
        let mut ack = Vec::new();
        ack_for_non_2xx(&req, &rsp, &mut ack);
        let ack = Message::parse(Bytes::from(ack)).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri(), req.request_uri());
        assert_eq!(ack.vias().count(), 1, "only the top Via");
        assert_eq!(ack.top_via().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(ack.to_tag(), Some("callee9"), "To comes from the response");
        assert_eq!(ack.cseq().seq, 314159);
        assert_eq!(ack.cseq().method, Method::Ack);
        assert_eq!(
            ack.header(HeaderName::Route),
            Some("<sip:p1.example.com;lr>")
        );
    }

    #[test]
    fn cancel_follows_9_1() {
        let req = invite();
        let mut out = Vec::new();
        cancel(&req, &mut out);
        let c = Message::parse(Bytes::from(out)).unwrap();
        assert_eq!(c.method(), Some(&Method::Cancel));
        assert_eq!(c.vias().count(), 1);
        assert_eq!(c.top_via().branch(), req.top_via().branch());
        assert_eq!(c.to_tag(), None);
        assert_eq!(c.cseq().seq, 314159);
        assert_eq!(c.cseq().method, Method::Cancel);
    }
    #[test]
    fn error_response_echoes_what_it_can_find() {
        // Bad CSeq: the parser refuses it, the 400 still names the request's transaction.
        let raw = b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKx1;rport\r\n\
f: <sip:a@example.com>;tag=9\r\nt: <sip:bob@example.com>\r\ni: c1@x\r\nCSeq: nope\r\n\r\n";
        let mut out = Vec::new();
        assert!(error_response_for_raw(
            raw, 400, "Bad CSeq", "sbc0", &mut out
        ));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad CSeq\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKx1;rport\r\n"));
        assert!(text.contains("To: <sip:bob@example.com>;tag=sbc0\r\n"));
        assert!(text.contains("Call-ID: c1@x\r\n"));
        assert!(text.contains("CSeq: nope\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn error_response_without_via_writes_nothing() {
        let mut out = b"keep".to_vec();
        assert!(!error_response_for_raw(
            b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n",
            400,
            "x",
            "t",
            &mut out
        ));
        assert_eq!(out, b"keep");
    }
}
