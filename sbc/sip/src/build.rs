//! Messages derived from others, as RFC 3261 defines them: a response to a request (§8.2.6), the ACK a
//! client transaction sends for a non-2xx final response (§17.1.1.3), and a CANCEL (§9.1).
//!
//! Each writes into a caller-supplied buffer. `response` returns the writer so that the caller can add
//! headers (Contact, Allow, Server, ...) before [`MessageWriter::finish`].

use crate::header::NameAddr;
use crate::message::{line_at, skip_leading_crlf, HeaderName, Message, Method};
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
/// §16.3), started in `out`: every Via (in order), From, To, Call-ID and CSeq copied as received, long
/// or compact names, written under their long names. The parse index of the message is gone, so the
/// header section is cut into lines leniently, the way the parser does (CRLF or bare LF, leading line
/// breaks skipped, folded lines joined). `to_tag` is added to To when it carries none (not to a 100).
///
/// `None`, with nothing written, when no Via is found (such a response could not be routed: the caller
/// drops the request) or when the header section is not UTF-8 (RFC 3261 §7.3). Otherwise the caller
/// may add headers (Server, ...) before [`MessageWriter::finish`].
pub fn stateless_error<'b>(
    raw: &[u8],
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    out: &'b mut Vec<u8>,
) -> Option<MessageWriter<'b>> {
    stateless_error_stamped(raw, code, reason, to_tag, &|_| None, out)
}

/// [`stateless_error`] with the top Via value passed through `stamp` first: where it returns a
/// value, that value is written instead (the transport layer adds `received` and `rport=` there,
/// RFC 3581 §4, so that even a client whose request failed to parse learns its public address).
/// When the first Via field holds several values, only the first is offered to `stamp`.
pub fn stateless_error_stamped<'b>(
    raw: &[u8],
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    stamp: &dyn Fn(&str) -> Option<String>,
    out: &'b mut Vec<u8>,
) -> Option<MessageWriter<'b>> {
    let head = header_section(raw)?;
    let unfolded;
    let head = if lines(head).skip(1).any(is_continuation) {
        unfolded = unfold_lines(head);
        unfolded.as_str()
    } else {
        head
    };
    if !fields(head).any(|(name, _)| name == HeaderName::Via) {
        return None;
    }
    let mut w = MessageWriter::response(out, code, reason);
    let mut top = true;
    for (name, value) in fields(head) {
        match name {
            HeaderName::Via if top => {
                top = false;
                let (first, rest) = match value.split_once(',') {
                    Some((first, rest)) => (first.trim(), Some(rest.trim())),
                    None => (value, None),
                };
                match (stamp(first), rest) {
                    (Some(stamped), Some(rest)) => {
                        w.header_parts("Via", &[&stamped, ", ", rest]);
                    }
                    (Some(stamped), None) => {
                        w.header("Via", &stamped);
                    }
                    (None, _) => {
                        w.header("Via", value);
                    }
                }
            }
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                w.header(name.as_str().unwrap_or_default(), value);
            }
            HeaderName::To => match to_tag {
                Some(tag) if code > 100 && !has_tag(value) => {
                    w.header_parts("To", &[value, ";tag=", tag]);
                }
                _ => {
                    w.header("To", value);
                }
            },
            _ => {}
        }
    }
    Some(w)
}

/// The header fields of a raw message, after its start line and up to the empty line (or the end), as
/// text; `None` when there is no line after the start line or the section is not UTF-8.
fn header_section(raw: &[u8]) -> Option<&str> {
    let (_, mut pos) = line_at(raw, skip_leading_crlf(raw))?;
    let start = pos;
    let end = loop {
        match line_at(raw, pos) {
            Some((end, _)) if end == pos => break pos,
            Some((_, next)) => pos = next,
            None => break raw.len(),
        }
    };
    std::str::from_utf8(raw.get(start..end)?).ok()
}

/// The lines of a header section, without their line breaks.
fn lines(head: &str) -> impl Iterator<Item = &str> {
    head.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// A line continuing the field before it (RFC 3261 §7.3.1).
fn is_continuation(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

/// The header section with each folded field on one line (the line break before a continuation is
/// dropped, its whitespace kept: LWS is equivalent to one space). Only on the error path.
fn unfold_lines(head: &str) -> String {
    let mut out = String::with_capacity(head.len());
    for line in lines(head) {
        if !out.is_empty() && !is_continuation(line) {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// Each `name: value` line of an unfolded header section as (recognised name, trimmed value); lines
/// without a colon are skipped.
fn fields(head: &str) -> impl Iterator<Item = (HeaderName, &str)> {
    lines(head).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.trim_matches(is_lws).as_bytes());
        Some((name, value.trim_matches(is_lws)))
    })
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether a To value already carries a tag (read as a name-addr, or by its `;tag=` when it is too
/// broken to read).
fn has_tag(to: &str) -> bool {
    match NameAddr::parse(to) {
        Ok(n) => n.tag().is_some(),
        Err(_) => to.to_ascii_lowercase().contains(";tag="),
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
    /// The stateless answer to `raw`, finished, as text; `None` when it is refused.
    fn stateless(raw: &[u8], tag: Option<&str>) -> Option<String> {
        let mut out = Vec::new();
        let w = stateless_error(raw, 400, "Bad Request", tag, &mut out)?;
        w.finish(None, b"");
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn stateless_error_copies_compact_names_under_long_ones() {
        // Bad CSeq: the parser refuses it, the 400 still names the request's transaction.
        let raw = b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKx1;rport\r\n\
f: <sip:a@example.com>;tag=9\r\nt: <sip:bob@example.com>\r\ni: c1@x\r\nCSeq: nope\r\nm: <sip:a@192.0.2.7>\r\n\r\n";
        let mut out = Vec::new();
        let mut w = stateless_error(raw, 400, "Bad CSeq", Some("sbc0"), &mut out).unwrap();
        w.header("Server", "sbc");
        w.finish(None, b"");
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 400 Bad CSeq\r\nVia: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKx1;rport\r\n\
From: <sip:a@example.com>;tag=9\r\nTo: <sip:bob@example.com>;tag=sbc0\r\nCall-ID: c1@x\r\n\
CSeq: nope\r\nServer: sbc\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn stateless_error_stamped_rewrites_only_the_top_via_value() {
        let raw = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a:5070;rport;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c;rport;branch=z9hG4bK3\r\nFrom: <sip:a@h>;tag=y\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: x\r\n\r\n";
        let mut out = Vec::new();
        let stamp = |v: &str| Some(format!("{v};received=192.0.2.9"));
        let w = stateless_error_stamped(raw, 400, "Bad CSeq", None, &stamp, &mut out).unwrap();
        w.finish(None, b"");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP a:5070;rport;branch=z9hG4bK1;received=192.0.2.9, SIP/2.0/UDP b;branch=z9hG4bK2\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP c;rport;branch=z9hG4bK3\r\n"),
            "{text}"
        );
    }

    #[test]
    fn stateless_error_keeps_every_via_in_order_and_an_existing_tag() {
        let raw = b"BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVIA : SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
To: <sip:b@h>;TAG=x\r\nFrom: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nMax-Forwards: x\r\n\r\n";
        let text = stateless(raw, Some("sbc1")).unwrap();
        let rsp = Message::parse(Bytes::from(text.clone())).unwrap();
        let branches: Vec<_> = rsp.vias().map(|v| v.branch()).collect();
        assert_eq!(branches, [Some("z9hG4bK1"), Some("z9hG4bK2")], "{text}");
        assert_eq!(rsp.to_tag(), Some("x"), "no second tag: {text}");
        assert!(!text.contains("Max-Forwards"), "{text}");
        // Without a tag to give, To is copied as it is.
        let raw =
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:x>\r\n\r\n";
        assert!(stateless(raw, None).unwrap().contains("To: <sip:x>\r\n"));
    }

    #[test]
    fn stateless_error_without_a_via_writes_nothing() {
        let mut out = b"keep".to_vec();
        assert!(stateless_error(
            b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nVias: x\r\n\r\nVia: in the body\r\n",
            400,
            "x",
            Some("t"),
            &mut out
        )
        .is_none());
        assert_eq!(out, b"keep");
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0",
            b"\x00\x01garbage",
        ] {
            assert!(stateless(raw, None).is_none(), "{raw:?}");
        }
        // A header section that is not UTF-8 is not echoed.
        let raw =
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: \xff\r\n\r\n";
        assert!(stateless(raw, None).is_none());
    }

    #[test]
    fn stateless_error_cuts_lines_as_the_parser_does() {
        // Leading line breaks, bare LF line ends, no empty line at the end.
        let raw = b"\r\n\r\nOPTIONS sip:x SIP/2.0\nv: SIP/2.0/UDP a;branch=z9hG4bK1\ni: c9\nl: 0";
        let text = stateless(raw, Some("t")).unwrap();
        assert!(
            text.contains("Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"),
            "{text}"
        );
        assert!(text.contains("Call-ID: c9\r\n"), "{text}");
        // Folded fields are joined.
        let raw = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n ;branch=z9hG4bK1\r\nCall-ID:\r\n\tc9\r\n\r\n";
        let text = stateless(raw, None).unwrap();
        assert!(
            text.contains("Via: SIP/2.0/UDP a ;branch=z9hG4bK1\r\n"),
            "{text}"
        );
        assert!(text.contains("Call-ID: c9\r\n"), "{text}");
    }

    #[test]
    fn stateless_error_answers_rfc_4475_messages() {
        // §3.1.1.1: folding, compact forms, odd whitespace; the To already has a tag.
        let wsinv = include_bytes!("../tests/data/rfc4475/3.1.1.1-wsinv.sip");
        let text = stateless(wsinv, Some("sbc2")).unwrap();
        let rsp = Message::parse(Bytes::from(text.clone())).unwrap();
        assert_eq!(rsp.vias().count(), 3, "{text}");
        assert_eq!(rsp.to_tag(), Some("1918181833n"), "{text}");
        assert_eq!(rsp.from_tag(), Some("98asjd8"), "{text}");
        assert_eq!(rsp.call_id(), "wsinv.ndaksdj@192.0.2.1");
        assert_eq!(rsp.cseq().seq, 9);
        // §3.1.2.17: CSeq method mismatch, answered with the CSeq as received.
        let mismatch = include_bytes!("../tests/data/rfc4475/3.1.2.17-mismatch01.sip");
        let req = Message::parse(Bytes::from_static(mismatch)).unwrap_err();
        assert_eq!(req, crate::ParseError::CSeqMethodMismatch);
        let text = stateless(mismatch, Some("sbc3")).unwrap();
        let rsp = Message::parse(Bytes::from(text.clone())).unwrap();
        assert_eq!(rsp.top_branch(), Some("z9hG4bKkdjuw"));
        assert_eq!(rsp.to_tag(), Some("sbc3"));
        assert_eq!(rsp.cseq().method, Method::Invite);
    }
}
