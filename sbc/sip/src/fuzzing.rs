//! Fuzz target bodies, one function per target.
//!
//! They live in the library, not in the fuzz crate, so that they compile and run with every normal
//! build: `tests/fuzz_seeds.rs` replays the checked-in seeds and regressions through them on stable, and
//! `fuzz/fuzz_targets/*.rs` only forward the fuzzer's bytes. Each function asserts invariants of the
//! code under test and panics with a message naming the broken one; "no panic" alone proves little.
//!
//! Not part of the API: hidden from the docs, and free to change with the code it checks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::build;
use crate::framing::{self, Frame, Limits};
use crate::message::{looks_like_request, HeaderName, Message};
use crate::sdp::{Direction, Scope, Sdp, SdpError, ICE_ATTRIBUTES};
use crate::transaction::{
    ClientTxId, ServerTxId, TransactionConfig, Transactions, TxError, TxEvent, TxId, TxState,
};
use crate::uri::Uri;
use crate::{ParseError, Verdict};

/// The headers a stateless error response echoes from the request.
const ECHOED: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
];

// -------------------------------------------------------------------------------------------------
// sip_message

/// One datagram through [`Message::parse`]: accessors, canonical round trip, verdicts, and the stateless
/// error response built from the raw bytes.
pub fn sip_message(data: &[u8]) {
    match Message::parse(Bytes::copy_from_slice(data)) {
        Ok(m) => {
            exercise_accessors(&m);
            check_canonical(&m);
            check_raw_error_response(data, Some(&m), None);
            check_top_via_stamp(&m);
        }
        Err(e) => {
            check_verdicts(data, e);
            check_raw_error_response(data, None, Some(e));
        }
    }
}

/// Replacing the top Via by a longer and by a shorter value gives exactly what parsing the edited
/// bytes gives (the shifted index equals a fresh one).
fn check_top_via_stamp(m: &Message) {
    let top = m.header_values(HeaderName::Via).next().unwrap_or_default();
    let longer = format!("{top};received=192.0.2.1;rport=5060");
    for value in [longer.as_str(), "SIP/2.0/UDP h;branch=z9hG4bKs"] {
        let Some(stamped) = m.with_top_via(value) else {
            continue;
        };
        let reparsed = Message::parse(stamped.raw().clone())
            .unwrap_or_else(|e| panic!("the stamped message no longer parses ({e:?}): {value}"));
        assert_eq!(summary(&stamped), summary(&reparsed), "{value}");
        assert_eq!(stamped.top_via(), reparsed.top_via(), "{value}");
        assert_eq!(stamped.body(), m.body());
    }
}

/// Facts about a parsed message that must survive a canonical round trip.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    method: Option<String>,
    request_uri: Option<String>,
    status: Option<u16>,
    call_id: String,
    cseq: (u32, String),
    branch: Option<String>,
    from_tag: Option<String>,
    to_tag: Option<String>,
    /// Header fields other than Content-Length (the canonical form writes exactly one of those).
    headers: Vec<(HeaderName, String)>,
    vias: usize,
    max_forwards: Option<u8>,
    body: Vec<u8>,
}

fn summary(m: &Message) -> Summary {
    Summary {
        method: m.method().map(|x| x.as_str().to_owned()),
        request_uri: m.request_uri().map(str::to_owned),
        status: m.status(),
        call_id: m.call_id().to_owned(),
        cseq: (m.cseq().seq, m.cseq().method.as_str().to_owned()),
        branch: m.top_via().branch().map(str::to_owned),
        from_tag: m.from_tag().map(str::to_owned),
        to_tag: m.to_tag().map(str::to_owned),
        headers: m
            .headers()
            .filter(|h| h.name != HeaderName::ContentLength)
            .map(|h| (h.name, h.value.to_owned()))
            .collect(),
        vias: m.vias().count(),
        max_forwards: m.max_forwards(),
        body: m.body().to_vec(),
    }
}

fn exercise_accessors(m: &Message) {
    assert_eq!(
        m.is_request(),
        m.method().is_some(),
        "is_request() disagrees with method()"
    );
    assert_eq!(
        m.is_request(),
        m.status().is_none(),
        "is_request() disagrees with status()"
    );
    assert_eq!(
        m.is_request(),
        m.request_uri().is_some(),
        "is_request() disagrees with request_uri()"
    );
    if let Some(status) = m.status() {
        assert!(
            (100..=699).contains(&status),
            "parsed status {status} outside 100..=699"
        );
        let _ = m.reason();
    }
    if let (Some(method), Some(uri)) = (m.method(), m.request_uri()) {
        assert_eq!(
            method.as_str(),
            m.cseq().method.as_str(),
            "request accepted with a CSeq method that differs from the request method"
        );
        if let Err(e) = Uri::parse(uri) {
            panic!("accepted Request-URI {uri:?} fails Uri::parse: {e:?}");
        }
    }
    assert!(
        m.cseq().seq < 1 << 31,
        "accepted CSeq number {} not below 2^31",
        m.cseq().seq
    );
    for h in m.headers() {
        assert!(
            m.header_by_name(h.raw_name).is_some(),
            "header {:?} listed by headers() but not found by header_by_name",
            h.raw_name
        );
        if let Some(name) = h.name.as_str() {
            assert_eq!(
                HeaderName::from_bytes(name.as_bytes()),
                h.name,
                "canonical name {name:?} does not map back to its HeaderName"
            );
        }
    }
    // Every recognised name, and `Other`, through each name-keyed accessor.
    for name in HeaderName::ALL.into_iter().chain([HeaderName::Other]) {
        let first = m.header(name);
        let values = m.header_values(name).count();
        if name == HeaderName::Other {
            assert!(first.is_none(), "header(Other) returned a value");
            assert_eq!(values, 0, "header_values(Other) returned values");
        } else if first.is_none() {
            assert_eq!(
                values, 0,
                "header_values({name:?}) without header({name:?})"
            );
        }
        if let Some(long) = name.as_str() {
            assert_eq!(
                m.header_by_name(long),
                first,
                "header_by_name({long:?}) differs from header({name:?})"
            );
        }
    }
    let top = m.top_via();
    let _ = (top.received(), top.rport(), top.params.is_valid());
    assert!(
        m.vias().next().is_some(),
        "accepted message has no Via that parses"
    );
    let _ = (m.call_id(), m.from(), m.to(), m.max_forwards(), m.body());
    for v in m.header_values(HeaderName::Contact) {
        let _ = crate::header::NameAddr::parse(v);
    }
    for v in m.header_values(HeaderName::Route) {
        let _ = crate::header::NameAddr::parse(v);
    }
    for v in m.header_values(HeaderName::RecordRoute) {
        let _ = crate::header::NameAddr::parse(v);
    }
    let from = m.from();
    let _ = (
        from.display,
        from.params.is_valid(),
        from.uri.host,
        from.uri.port,
    );
}

fn check_canonical(m: &Message) {
    let mut first = Vec::new();
    m.write_to(&mut first);
    let again = match Message::parse(Bytes::from(first.clone())) {
        Ok(again) => again,
        Err(e) => panic!(
            "canonical form does not parse again ({e:?}):\n{}",
            String::from_utf8_lossy(&first)
        ),
    };
    let (a, b) = (summary(m), summary(&again));
    assert_eq!(a, b, "canonical round trip changed the message");
    let lengths = again
        .headers()
        .filter(|h| h.name == HeaderName::ContentLength)
        .count();
    assert_eq!(
        lengths, 1,
        "canonical form carries {lengths} Content-Length fields"
    );
    let mut second = Vec::new();
    again.write_to(&mut second);
    assert!(
        first == second,
        "canonical form is not a fixed point:\n{}\n---\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    // A canonical message is exactly one stream frame.
    match framing::next_frame(&first, &Limits::default()) {
        Ok(Frame::Complete(n)) => assert_eq!(
            n,
            first.len(),
            "canonical form frames as {n} of its {} bytes",
            first.len()
        ),
        Err(framing::FramingError::HeaderTooLarge | framing::FramingError::BodyTooLarge) => {}
        other => panic!("canonical form does not frame as one message: {other:?}"),
    }
}

fn check_verdicts(data: &[u8], e: ParseError) {
    let _ = (e.reason(), e.label(), e.to_string());
    assert!(!e.label().is_empty(), "empty label for {e:?}");
    assert_eq!(
        e.verdict(false),
        Verdict::Drop,
        "a faulty response must be dropped, {e:?} is not"
    );
    for is_request in [true, looks_like_request(data)] {
        if let Verdict::Reply(code, reason) = e.verdict(is_request) {
            assert!(
                (400..=599).contains(&code),
                "verdict for {e:?} replies with {code}"
            );
            assert!(!reason.is_empty(), "verdict for {e:?} has an empty reason");
        }
    }
}

/// Whether a parse fault lies in a header the error response echoes (then the response may carry the
/// same fault).
fn fault_in_echoed(e: ParseError) -> bool {
    match e {
        ParseError::MissingHeader(n) | ParseError::DuplicateHeader(n) => ECHOED.contains(&n),
        ParseError::BadVia
        | ParseError::UnroutableVia
        | ParseError::BadFrom
        | ParseError::BadTo
        | ParseError::BadCallId
        | ParseError::BadCSeq => true,
        _ => false,
    }
}

fn check_raw_error_response(data: &[u8], parsed: Option<&Message>, fault: Option<ParseError>) {
    let mut out = b"prefix".to_vec();
    let answered = build::stateless_error(data, 400, "x", Some("t"), &mut out)
        .map(|w| w.finish(None, b""))
        .is_some();
    if !answered {
        assert_eq!(out, b"prefix", "stateless_error wrote but returned None");
        return;
    }
    let body = out.get(6..).unwrap_or_default();
    assert!(
        out.starts_with(b"prefixSIP/2.0 400 x\r\n"),
        "stateless_error clobbered the buffer or wrote a bad status line"
    );
    match framing::next_frame(body, &Limits::default()) {
        Ok(Frame::Complete(n)) if n == body.len() => {}
        Err(framing::FramingError::HeaderTooLarge) => {}
        other => panic!(
            "error response is not one whole frame ({other:?}):\n{}",
            String::from_utf8_lossy(body)
        ),
    }
    let resp = Message::parse(Bytes::copy_from_slice(body));
    match (&resp, parsed) {
        (Ok(r), _) => {
            assert_eq!(r.status(), Some(400), "error response has the wrong status");
            assert!(r.body().is_empty(), "error response has a body");
        }
        // The request was valid as received (not unfolded): every echoed header was valid.
        (Err(e), Some(m)) if m.raw().as_ref() == data && !matches!(e, ParseError::TooLarge) => {
            panic!(
                "error response to a valid request does not parse ({e:?}):\n{}",
                String::from_utf8_lossy(body)
            )
        }
        (Err(e), None) => {
            let fault = fault.unwrap_or(ParseError::Empty);
            assert!(
                fault_in_echoed(*e) || matches!(e, ParseError::TooLarge),
                "error response fails with {e:?}, though the request's fault ({fault:?}) was elsewhere:\n{}",
                String::from_utf8_lossy(body)
            );
        }
        (Err(_), Some(_)) => {}
    }
}

// -------------------------------------------------------------------------------------------------
// sip_framing

/// A byte stream through [`framing::next_frame`]: frame bounds, split independence, and frames cut one
/// after another until the buffer is used up.
pub fn sip_framing(data: &[u8]) {
    // The first byte picks the limits: the defaults, or small ones that the fuzzer can hit.
    let (limits, data) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (
            Limits {
                max_header: usize::from(b >> 1) + 4,
                max_body: usize::from(b >> 2),
            },
            rest,
        ),
        Some((_, rest)) => (Limits::default(), rest),
        None => (Limits::default(), data),
    };
    let full = framing::next_frame(data, &limits);
    check_frame(data, full);

    // A prefix of the buffer (the same bytes, arriving split) either needs more bytes or already says
    // exactly what the whole buffer says.
    let step = (data.len() / 256).max(1);
    for k in (0..data.len()).step_by(step) {
        let prefix = data.get(..k).unwrap_or_default();
        let early = framing::next_frame(prefix, &limits);
        check_frame(prefix, early);
        if early != Ok(Frame::Incomplete) {
            assert_eq!(
                early,
                full,
                "the first {k} bytes frame differently from all {} bytes",
                data.len()
            );
        }
    }

    // Cut frames one after another, as a connection reader does.
    let mut rest = data;
    while let Ok(Frame::Complete(used) | Frame::KeepAlive(used) | Frame::Skip(used)) =
        framing::next_frame(rest, &limits)
    {
        assert!(used > 0, "a frame of zero bytes would stall the reader");
        let Some(next) = rest.get(used..) else {
            panic!("frame of {used} bytes overruns the {} buffered", rest.len());
        };
        if let Some(frame) = rest.get(..used) {
            if let Ok(m) = Message::parse(Bytes::copy_from_slice(frame)) {
                // The parser must split header and body where the framer did: a disagreement lets
                // bytes the framer counted as body be read as a message, or the reverse.
                if m.raw().as_ref() == frame {
                    // The frame ends where the framer's Content-Length said; the parser, reading its
                    // own header section, must end the body at that same byte and discard nothing.
                    let raw = m.raw().as_ref();
                    let body_end = (m.body().as_ptr() as usize)
                        .saturating_sub(raw.as_ptr() as usize)
                        .saturating_add(m.body().len());
                    assert!(
                        body_end == raw.len(),
                        "framer and parser split the message at different places: frame of {} \
                         bytes, parser body ends at {body_end}: {:?}",
                        raw.len(),
                        String::from_utf8_lossy(m.body().get(..48).unwrap_or(m.body()))
                    );
                }
                let mut canon = Vec::new();
                m.write_to(&mut canon);
                let again = framing::next_frame(&canon, &limits);
                if let Ok(f) = again {
                    assert_eq!(
                        f,
                        Frame::Complete(canon.len()),
                        "the canonical form of a framed message is not one frame"
                    );
                }
            }
        }
        rest = next;
    }
}

fn check_frame(buf: &[u8], frame: Result<Frame, framing::FramingError>) {
    match frame {
        Ok(Frame::Complete(n)) => {
            assert!(n <= buf.len(), "Complete({n}) on {} bytes", buf.len());
            assert!(n >= 4, "Complete({n}) shorter than an empty line");
        }
        Ok(Frame::KeepAlive(n)) => assert!(
            n == 4 && buf.starts_with(b"\r\n\r\n"),
            "KeepAlive({n}) not on a CRLFCRLF"
        ),
        Ok(Frame::Skip(n)) => assert!(
            (n == 2 && buf.starts_with(b"\r\n"))
                || (n == 1 && matches!(buf.first(), Some(b'\r' | b'\n'))),
            "Skip({n}) not on a CRLF, nor one stray CR or LF"
        ),
        Ok(Frame::Incomplete) => {}
        Err(e) => assert!(!e.label().is_empty(), "empty framing error label"),
    }
}

// -------------------------------------------------------------------------------------------------
// sdp

/// The address every connection line gets in the edit pass.
const PUBLIC_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
/// The port every accepted media line gets in the edit pass.
const PUBLIC_PORT: u16 = 40000;

/// A body through [`Sdp::parse`]: accessors, the serialization fixed point, and the edits the SBC makes
/// when it anchors media.
pub fn sdp(data: &[u8]) {
    let Ok(mut s) = Sdp::parse(data) else {
        return;
    };
    exercise_sdp(&s);
    let first = s.to_vec();
    assert_eq!(
        first.len(),
        s.encoded_len(),
        "encoded_len() disagrees with write_to()"
    );
    let reparsed = match Sdp::parse(&first) {
        Ok(r) => r,
        Err(e) => panic!(
            "serialized SDP does not parse again ({e:?}):\n{}",
            String::from_utf8_lossy(&first)
        ),
    };
    assert_eq!(
        reparsed.line_count(),
        s.line_count(),
        "re-parse changed the line count"
    );
    assert_eq!(
        reparsed.media_count(),
        s.media_count(),
        "re-parse changed the media count"
    );
    assert!(
        reparsed.to_vec() == first,
        "SDP serialization is not a fixed point"
    );

    // The edits of a media-anchoring SBC.
    let old_version = s.origin().session_version;
    let rejected: Vec<bool> = (0..s.media_count())
        .map(|i| s.media(i).is_none_or(|m| m.is_rejected()))
        .collect();
    s.set_all_connection_addrs(PUBLIC_IP);
    for (i, &rej) in rejected.iter().enumerate() {
        if !rej {
            if let Err(e) = s.set_media_port(i, PUBLIC_PORT) {
                panic!("set_media_port({i}) on an accepted stream failed: {e:?}");
            }
        }
    }
    s.remove_ice();
    let version = s.bump_origin_version();
    assert_eq!(
        version,
        old_version.saturating_add(1),
        "origin version not bumped"
    );
    if s.media_count() > 0 {
        if let Err(e) = s.set_direction(Scope::Media(0), Direction::SendOnly) {
            panic!("set_direction on media 0 failed: {e:?}");
        }
    }
    let edited = s.to_vec();
    let e = match Sdp::parse(&edited) {
        Ok(e) => e,
        Err(err) => panic!(
            "edited SDP does not parse ({err:?}):\n{}",
            String::from_utf8_lossy(&edited)
        ),
    };
    exercise_sdp(&e);
    assert!(e.to_vec() == edited, "edited SDP is not a fixed point");
    assert_eq!(
        e.origin().session_version,
        version,
        "bumped version lost in re-parse"
    );
    assert_eq!(
        e.media_count(),
        rejected.len(),
        "edits changed the media count"
    );
    for (i, &rej) in rejected.iter().enumerate() {
        let port = e.media(i).map(|m| m.port);
        if !rej {
            assert_eq!(port, Some(PUBLIC_PORT), "media {i} port not rewritten");
        }
        if let Some(c) = e.connection(Scope::Media(i)) {
            assert_eq!(
                c.ip(),
                Some(PUBLIC_IP),
                "media {i} connection not rewritten"
            );
        }
    }
    if let Some(c) = e.connection(Scope::Session) {
        assert_eq!(c.ip(), Some(PUBLIC_IP), "session connection not rewritten");
    }
    for scope in scopes(&e) {
        for name in ICE_ATTRIBUTES {
            assert!(
                !e.has_attribute(scope, name),
                "ICE attribute {name} left in {scope:?}"
            );
        }
    }
    if e.media_count() > 0 {
        assert_eq!(
            e.effective_direction(0),
            Direction::SendOnly,
            "media 0 direction not sendonly"
        );
    }
}

fn scopes(s: &Sdp<'_>) -> impl Iterator<Item = Scope> {
    std::iter::once(Scope::Session).chain((0..s.media_count()).map(Scope::Media))
}

fn exercise_sdp(s: &Sdp<'_>) {
    let _ = (
        s.origin(),
        s.lines().count(),
        s.to_string(),
        format!("{s:?}"),
    );
    assert_eq!(
        s.lines().count(),
        s.line_count(),
        "lines() disagrees with line_count()"
    );
    assert_eq!(
        s.media_lines().count(),
        s.media_count(),
        "an indexed m= line does not parse"
    );
    for scope in scopes(s) {
        let _ = (
            s.connection(scope),
            s.direction(scope),
            s.ptime(scope),
            s.maxptime(scope),
            s.scope_lines(scope).count(),
        );
        for a in s.attributes(scope) {
            let _ = (a.key(), a.is("rtpmap"));
        }
    }
    for i in 0..s.media_count() {
        let _ = (
            s.effective_connection(i),
            s.effective_direction(i),
            s.rtcp(i),
            s.rtcp_mux(i),
        );
        for map in s.rtpmaps(i) {
            let _ = map;
        }
        for c in s.cryptos(i) {
            let _ = c.inline_keys().count();
        }
        if let Some(m) = s.media(i) {
            for f in m.formats() {
                let _ = s.fmtp(i, f);
            }
            let _ = (m.is_rtp(), m.is_rejected());
        }
    }
    assert!(
        s.media(s.media_count()).is_none(),
        "media() past the end returned a line"
    );
    let _ = SdpError::Empty.reason();
}

// -------------------------------------------------------------------------------------------------
// transactions

const METHODS: &[&str] = &["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"];
const BRANCHES: &[&str] = &["z9hG4bK-a", "z9hG4bK-b", "z9hG4bK-c", "rfc2543-d"];
const STATUSES: &[u16] = &[100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603];
const PEERS: &[&str] = &["192.0.2.1", "192.0.2.2"];
/// Ten minutes: far beyond the longest timer (64*T1 = 32 s), so no transaction has a reason to live on.
const QUIET: Duration = Duration::from_secs(600);

/// The fuzz bytes, read as small numbers; zeros once they run out. Shared by the fuzz targets of
/// the crates above this one.
pub struct Ops<'a>(pub &'a [u8]);

impl Ops<'_> {
    /// The next byte, 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// An element of `from` chosen by the next byte; `None` for an empty list.
    pub fn choose<'t, T>(&mut self, from: &'t [T]) -> Option<&'t T> {
        if from.is_empty() {
            return None;
        }
        from.get(usize::from(self.byte()) % from.len())
    }
    /// An element of the non-empty list `from` chosen by the next byte.
    pub fn pick<'t, T>(&mut self, from: &'t [T]) -> &'t T {
        match self.choose(from) {
            Some(x) => x,
            None => panic!("pick from an empty list"),
        }
    }
    /// The next `n` bytes (fewer when the input ends first).
    pub fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_built(text: String) -> Message {
    match Message::parse(Bytes::from(text)) {
        Ok(m) => m,
        Err(e) => panic!("a fuzz template does not parse: {e:?}"),
    }
}

fn request_template(method: &str, branch: &str, cseq: u8, peer: &str) -> Message {
    parse_built(format!(
        "{method} sip:bob@192.0.2.4 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {peer}:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: c{cseq}@example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn response_template(code: u16, branch: &str, method: &str, cseq: u8) -> Message {
    parse_built(format!(
        "SIP/2.0 {code} Fuzz\r\n\
         Via: SIP/2.0/UDP 203.0.113.1:5060;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=b2\r\n\
         Call-ID: c{cseq}@example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn peer_addr(ip: &str) -> SocketAddr {
    match format!("{ip}:5060").parse() {
        Ok(a) => a,
        Err(e) => panic!("bad peer address {ip}: {e}"),
    }
}

fn raw_id(tx: TxId) -> u64 {
    match tx {
        TxId::Client(ClientTxId(id)) | TxId::Server(ServerTxId(id)) => id,
    }
}

/// The model the fuzz target keeps of the table, from what it did and what the layer reported.
#[derive(Default)]
struct Model {
    /// Server transactions the TU heard of, with their request.
    servers: Vec<(ServerTxId, Message)>,
    /// Client transactions the TU started, and whether each is an INVITE.
    clients: Vec<(ClientTxId, bool)>,
    /// Transactions reported as terminated.
    terminated: HashMap<u64, ()>,
}

/// Drain outputs after a mutation at `now`; `timers_fired` when the mutation was `handle_timeout(now)`.
fn drain(t: &mut Transactions, model: &mut Model, now: Instant, timers_fired: bool) {
    while let Some(tx) = t.poll_transmit() {
        if let Err(e) = Message::parse(tx.bytes.clone()) {
            panic!(
                "transaction layer sent bytes that do not parse ({e:?}):\n{}",
                String::from_utf8_lossy(&tx.bytes)
            );
        }
    }
    while let Some(ev) = t.poll_event() {
        match ev {
            TxEvent::Request { tx, request, .. } => {
                assert!(
                    t.state(TxId::Server(tx)).is_some(),
                    "Request event for a transaction not in the table"
                );
                model.servers.push((tx, request));
            }
            TxEvent::Cancelled { invite, cancel } => {
                assert_ne!(invite, cancel, "CANCEL reported as cancelling itself");
            }
            TxEvent::Terminated { tx } => {
                assert!(
                    t.state(tx).is_none(),
                    "{tx:?} reported terminated but still in the table"
                );
                let fresh = model.terminated.insert(raw_id(tx), ()).is_none();
                assert!(fresh, "{tx:?} reported terminated twice");
            }
            TxEvent::Response { tx, response } => {
                assert!(!response.is_request(), "Response event carries a request");
                assert!(
                    !model.terminated.contains_key(&tx.0),
                    "Response event for terminated {tx:?}"
                );
            }
            TxEvent::Timeout { .. }
            | TxEvent::TransportError { .. }
            | TxEvent::Refused { .. }
            | TxEvent::Stray { .. } => {}
        }
    }
    let next = t.poll_timeout();
    assert_eq!(next, t.poll_timeout(), "poll_timeout() not stable");
    if let Some(at) = next {
        if timers_fired {
            assert!(
                at > now,
                "a deadline {:?} at or before now is still pending after handle_timeout(now)",
                now.saturating_duration_since(at)
            );
        } else {
            assert!(
                at >= now,
                "a mutation armed a deadline {:?} in the past",
                now.saturating_duration_since(at)
            );
        }
    }
    if t.is_empty() {
        assert_eq!(next, None, "empty table still reports a deadline");
    }
}

/// The transaction table driven by fuzz-chosen operations: messages from templates (method, branch,
/// status, CSeq picked by the input), virtual time, and TU commands. Outputs must parse, deadlines never
/// lie in the past, and after ten quiet minutes only transactions waiting for the TU remain; once the TU
/// has answered those, ten more minutes empty the table.
pub fn transactions(data: &[u8]) {
    let mut ops = Ops(data);
    let max_transactions = match ops.byte() {
        0..=127 => 65_536,
        b => usize::from(b & 7) + 1,
    };
    let mut t = Transactions::new(TransactionConfig {
        max_transactions,
        ..TransactionConfig::default()
    });
    let mut model = Model::default();
    // The harness is the driver here: one reading of the clock gives the origin of virtual time, which
    // only ever moves forward by the amounts the input picks.
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut steps = 0;
    while !ops.0.is_empty() && steps < 256 {
        steps += 1;
        let mut timers_fired = false;
        match ops.byte() % 8 {
            0 => {
                let method = *ops.pick(METHODS);
                let branch = *ops.pick(BRANCHES);
                let cseq = ops.byte() % 4 + 1;
                let peer = *ops.pick(PEERS);
                let reliable = ops.byte() & 1 == 1;
                let m = request_template(method, branch, cseq, peer);
                t.handle_message(now, m, peer_addr(peer), reliable);
            }
            1 => {
                let code = *ops.pick(STATUSES);
                let branch = *ops.pick(BRANCHES);
                let method = *ops.pick(METHODS);
                let cseq = ops.byte() % 4 + 1;
                let m = response_template(code, branch, method, cseq);
                t.handle_message(now, m, peer_addr("198.51.100.9"), false);
            }
            2 => {
                let ms = u64::from(ops.byte()) << 8 | u64::from(ops.byte());
                now += Duration::from_millis(ms);
                t.handle_timeout(now);
                timers_fired = true;
            }
            3 => {
                if model.servers.is_empty() {
                    continue;
                }
                let (tx, req) = ops.pick(&model.servers).clone();
                let code = *ops.pick(STATUSES);
                let mut out = Vec::new();
                build::response(&req, code, "TU", Some("tu1"), &mut out).finish(None, b"");
                let resp = parse_built(String::from_utf8_lossy(&out).into_owned());
                let result = t.send_response(now, tx, resp);
                if model.terminated.contains_key(&tx.0) {
                    assert!(
                        result.is_err(),
                        "send_response on terminated {tx:?} succeeded"
                    );
                }
            }
            4 => {
                let method = *ops.pick(METHODS);
                let branch = *ops.pick(BRANCHES);
                let cseq = ops.byte() % 4 + 1;
                let reliable = ops.byte() & 1 == 1;
                let m = request_template(method, branch, cseq, "203.0.113.1");
                let dest = peer_addr("198.51.100.9");
                if let Ok(tx) = t.send_request(now, m, dest, reliable) {
                    model.clients.push((tx, method == "INVITE"));
                }
            }
            5 => {
                if model.clients.is_empty() {
                    continue;
                }
                let (tx, _) = *ops.pick(&model.clients);
                if let Ok(cancel) = t.send_cancel(now, tx) {
                    model.clients.push((cancel, false));
                }
            }
            6 => {
                let n = model.clients.len() + model.servers.len();
                if n == 0 {
                    continue;
                }
                let i = usize::from(ops.byte()) % n;
                let tx = match model.clients.get(i) {
                    Some(&(c, _)) => TxId::Client(c),
                    None => match model.servers.get(i - model.clients.len()) {
                        Some((s, _)) => TxId::Server(*s),
                        None => continue,
                    },
                };
                t.handle_transport_error(tx);
                assert!(t.state(tx).is_none(), "{tx:?} survived a transport error");
            }
            _ => {
                // Jump to the next deadline exactly.
                if let Some(at) = t.poll_timeout() {
                    now = now.max(at);
                }
                t.handle_timeout(now);
                timers_fired = true;
            }
        }
        drain(&mut t, &mut model, now, timers_fired);
        assert!(
            t.len() <= max_transactions,
            "{} transactions in a table of {max_transactions}",
            t.len()
        );
    }

    // Ten quiet minutes: only transactions that wait for the TU may be left.
    now += QUIET;
    t.handle_timeout(now);
    drain(&mut t, &mut model, now, true);
    let mut waiting_servers = Vec::new();
    for (tx, req) in &model.servers {
        match t.state(TxId::Server(*tx)) {
            None => {}
            Some(TxState::Proceeding | TxState::Trying) => waiting_servers.push((*tx, req)),
            Some(state) => panic!("server {tx:?} still in {state:?} after ten quiet minutes"),
        }
    }
    let mut waiting_clients = Vec::new();
    for &(tx, invite) in &model.clients {
        match t.state(TxId::Client(tx)) {
            None => {}
            Some(TxState::Proceeding) if invite => waiting_clients.push(tx),
            Some(state) => panic!("client {tx:?} still in {state:?} after ten quiet minutes"),
        }
    }
    assert_eq!(
        t.len(),
        waiting_servers.len() + waiting_clients.len(),
        "transactions the TU does not know of survived ten quiet minutes"
    );
    // The TU answers every request it holds and cancels every INVITE still ringing.
    for (tx, req) in waiting_servers {
        let mut out = Vec::new();
        build::response(req, 500, "TU", Some("tu1"), &mut out).finish(None, b"");
        let resp = parse_built(String::from_utf8_lossy(&out).into_owned());
        if let Err(e) = t.send_response(now, tx, resp) {
            panic!("final response on waiting server {tx:?} refused: {e:?}");
        }
    }
    for tx in waiting_clients {
        match t.send_cancel(now, tx) {
            Ok(_) => {}
            // No room for the CANCEL's own transaction: the TU gives the INVITE up.
            Err(TxError::Full) => t.handle_transport_error(TxId::Client(tx)),
            Err(e) => panic!("CANCEL of waiting client INVITE {tx:?} refused: {e:?}"),
        }
    }
    drain(&mut t, &mut model, now, false);
    // Once the TU has answered and cancelled, ten more minutes empty the table.
    now += QUIET;
    t.handle_timeout(now);
    drain(&mut t, &mut model, now, true);
    assert!(
        t.is_empty(),
        "{} transactions left after the TU answered and ten more quiet minutes",
        t.len()
    );
    assert_eq!(t.poll_timeout(), None, "deadline left in an empty table");
}
