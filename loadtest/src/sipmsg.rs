//! A small SIP message model for the replay: start line, ordered headers (compact forms expanded),
//! body; the header values the replay reads (Call-ID, tags, CSeq, Via branch, Contact) and the SDP
//! rewrite (connection address and audio port). The tester generates every message it sends, so
//! this is deliberately simple; it is not the SBC's parser.

use std::net::SocketAddr;

/// One SIP message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// `INVITE sip:x SIP/2.0` or `SIP/2.0 200 OK`.
    pub(crate) start: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

const COMPACT: [(&str, &str); 9] = [
    ("v", "Via"),
    ("f", "From"),
    ("t", "To"),
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
];

impl Msg {
    /// Parses a datagram as a SIP message; `None` when it is not one.
    pub(crate) fn parse(data: &[u8]) -> Option<Self> {
        let split = data.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(data.get(..split)?).ok()?;
        // Lines split at each LF (a one-byte search) with the CR taken off.
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start = lines.next()?.trim().to_string();
        if !(start.starts_with("SIP/2.0 ") || start.ends_with(" SIP/2.0")) {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            let name = if name.len() == 1 {
                COMPACT
                    .iter()
                    .find(|(c, _)| c.eq_ignore_ascii_case(name))
                    .map_or(name, |(_, long)| long)
            } else {
                name
            };
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut body = data.get(split + 4..)?.to_vec();
        let mut msg = Self {
            start,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = msg
            .header("Content-Length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            body.truncate(len);
        }
        msg.body = body;
        Some(msg)
    }

    pub(crate) fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0 ")
    }

    /// The request method, or the CSeq method of a response.
    pub(crate) fn method(&self) -> &str {
        if self.is_request() {
            self.start.split(' ').next().unwrap_or("")
        } else {
            self.cseq().1
        }
    }

    /// The Request-URI of a request.
    pub(crate) fn ruri(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// The status code of a response (0 for a request).
    pub(crate) fn status(&self) -> u16 {
        if self.is_request() {
            return 0;
        }
        self.start
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or("")
    }

    /// CSeq number and method.
    pub(crate) fn cseq(&self) -> (u32, &str) {
        let v = self.header("CSeq").unwrap_or("");
        let mut it = v.split_whitespace();
        let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or(""))
    }

    pub(crate) fn tag_from(&self) -> Option<&str> {
        self.header("From").and_then(tag_of)
    }

    pub(crate) fn to_tag(&self) -> Option<&str> {
        self.header("To").and_then(tag_of)
    }

    /// The branch of the top Via.
    pub(crate) fn branch(&self) -> Option<&str> {
        self.header("Via").and_then(|v| param(v, "branch"))
    }

    /// The URI inside the first Contact.
    pub(crate) fn contact_uri(&self) -> Option<&str> {
        self.header("Contact").map(uri_of)
    }

    pub(crate) fn has_sdp(&self) -> bool {
        !self.body.is_empty()
            && self
                .header("Content-Type")
                .is_some_and(|t| t.to_ascii_lowercase().contains("sdp"))
    }

    /// The wire form, with a Content-Length that matches the body.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// The length of the first SIP message at the start of a stream (TCP, TLS) when it is all there:
/// its header and a body of its Content-Length; leading CRLFs (keep-alives) count as a frame of
/// their own.
pub(crate) fn stream_frame_len(buf: &[u8]) -> Option<usize> {
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if lead > 0 {
        return Some(lead);
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(buf.get(..head_end)?).ok()?;
    let mut len = 0usize;
    for line in head.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    // A Content-Length past any buffer never completes: the stream's bound closes the connection.
    let end = head_end.checked_add(len)?;
    (buf.len() >= end).then_some(end)
}

/// The value of `;name=value` in a header value.
pub(crate) fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    // Parameters after the URI: skip a bracketed URI so that its own parameters are not read.
    let params = match value.find('>') {
        Some(gt) => value.get(gt..)?,
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().split([',', ' ']).next().unwrap_or(""))
    })
}

pub(crate) fn tag_of(value: &str) -> Option<&str> {
    param(value, "tag")
}

/// A header value without its `;tag=` parameter.
pub(crate) fn without_tag(value: &str) -> String {
    match value.to_ascii_lowercase().find(";tag=") {
        Some(i) => {
            let rest = value.get(i + 5..).unwrap_or("");
            let end = rest.find(';').map_or("", |j| rest.get(j..).unwrap_or(""));
            format!("{}{}", value.get(..i).unwrap_or(""), end)
        }
        None => value.to_string(),
    }
}

/// The URI of a name-addr (`"x" <sip:a@b>;p`) or addr-spec.
pub(crate) fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b).unwrap_or(""),
        _ => value.split(';').next().unwrap_or("").trim(),
    }
}

/// The audio media address announced by an SDP body: the session or media `c=` address and the
/// first `m=audio` port.
pub(crate) fn sdp_audio(body: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?;
    let mut addr = None;
    let mut port = None;
    let mut in_audio = false;
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("c=") {
            if port.is_none() || in_audio {
                addr = c.split_whitespace().nth(2).map(str::to_string);
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio") && port.is_none();
            if in_audio {
                port = m
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<u16>().ok());
            }
        }
    }
    let ip = addr?.parse().ok()?;
    Some(SocketAddr::new(ip, port?))
}

/// The SDP with its `o=`/`c=` addresses set to `media.ip()` and the audio port to `media.port()`.
pub(crate) fn sdp_rewrite(body: &[u8], media: SocketAddr) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let fam = if media.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        let eol = line.get(bare.len()..).unwrap_or("");
        if let Some(c) = bare.strip_prefix("c=") {
            let _ = c;
            out.push_str(&format!("c=IN {fam} {}{eol}", media.ip()));
        } else if let Some(o) = bare.strip_prefix("o=") {
            let mut f: Vec<&str> = o.split_whitespace().collect();
            let ip = media.ip().to_string();
            if f.len() == 6 {
                f[4] = fam;
                f[5] = &ip;
            }
            out.push_str(&format!("o={}{eol}", f.join(" ")));
        } else if let Some(m) = bare.strip_prefix("m=audio ") {
            let rest = m.split_once(' ').map_or("", |(_, r)| r);
            out.push_str(&format!("m=audio {} {rest}{eol}", media.port()));
        } else if bare.starts_with("a=rtcp:") {
            out.push_str(&format!("a=rtcp:{}{eol}", media.port().wrapping_add(1)));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// The clock rate of the first audio payload type in an SDP (8000 when unknown).
pub(crate) fn sdp_clock_rate(body: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .find_map(|l| l.strip_prefix("a=rtpmap:"))
        .and_then(|r| r.split('/').nth(1))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(8000)
}

/// The payload type announced for `telephone-event`, if any.
pub(crate) fn sdp_event_pt(body: &[u8]) -> Option<u8> {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .find(|r| r.to_ascii_lowercase().contains("telephone-event"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|pt| pt.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:callee@127.46.0.2:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.46.0.1:5060;branch=z9hG4bK-1;rport\r\n\
From: \"uac\" <sip:uac@127.46.0.1:5060>;tag=abc\r\n\
To: <sip:callee@127.46.0.2:5060>\r\n\
i: call-1\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:uac@127.46.0.1:5060;transport=UDP>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 80\r\n\r\n\
v=0\r\no=uac 1 2 IN IP4 127.46.0.1\r\nc=IN IP4 127.46.0.1\r\nm=audio 10000 RTP/AVP 8\r\n";

    #[test]
    fn parses_and_reads_fields() {
        let m = Msg::parse(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), "INVITE");
        assert_eq!(m.ruri(), "sip:callee@127.46.0.2:5060");
        assert_eq!(m.call_id(), "call-1");
        assert_eq!(m.cseq(), (7, "INVITE"));
        assert_eq!(m.tag_from(), Some("abc"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.branch(), Some("z9hG4bK-1"));
        assert_eq!(
            m.contact_uri(),
            Some("sip:uac@127.46.0.1:5060;transport=UDP")
        );
        assert!(m.has_sdp());
        assert_eq!(
            sdp_audio(&m.body),
            Some("127.46.0.1:10000".parse().unwrap())
        );
        assert_eq!(
            without_tag("<sip:a@b>;tag=x;foo=1"),
            "<sip:a@b>;foo=1".to_string()
        );
    }

    #[test]
    fn rewrites_the_sdp() {
        let m = Msg::parse(INVITE).unwrap();
        let new = sdp_rewrite(&m.body, "127.46.1.9:30000".parse().unwrap());
        let s = String::from_utf8(new.clone()).unwrap();
        assert!(s.contains("o=uac 1 2 IN IP4 127.46.1.9\r\n"), "{s}");
        assert!(s.contains("c=IN IP4 127.46.1.9\r\n"));
        assert!(s.contains("m=audio 30000 RTP/AVP 8\r\n"));
        assert_eq!(sdp_audio(&new), Some("127.46.1.9:30000".parse().unwrap()));
    }

    #[test]
    fn stream_frames_by_content_length_and_survives_an_absurd_one() {
        let msg = b"BYE sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(stream_frame_len(msg), Some(msg.len() - 4));
        assert_eq!(stream_frame_len(b"\r\n\r\nINVITE"), Some(4));
        assert_eq!(
            stream_frame_len(b"BYE sip:a@b SIP/2.0\r\nl: 3\r\n\r\nab"),
            None
        );
        let huge = format!(
            "BYE sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\nx",
            usize::MAX
        );
        assert_eq!(stream_frame_len(huge.as_bytes()), None);
        assert_eq!(
            stream_frame_len(b"BYE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"),
            None
        );
    }

    #[test]
    fn serialises_with_a_matching_length() {
        let mut m = Msg::parse(INVITE).unwrap();
        m.body = b"x".to_vec();
        let again = Msg::parse(&m.to_bytes()).unwrap();
        assert_eq!(again.body, b"x");
        assert_eq!(again.header("Content-Length"), Some("1"));
        assert!(Msg::parse(b"\x80\x08 not sip").is_none());
    }

    /// Mangled messages (bytes flipped, cut short, random runs spliced in) go through every reader
    /// the worker applies to what the network sends, without a panic.
    #[test]
    fn mangled_messages_never_panic() {
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || crate::xorshift64(&mut rng);
        let base: &[u8] = INVITE;
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut m = base.to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % m.len().max(1);
                match next() % 4 {
                    0 => {
                        if let Some(b) = m.get_mut(at) {
                            *b = next() as u8;
                        }
                    }
                    1 => m.truncate(at),
                    2 => m
                        .splice(
                            at..at,
                            b": ;=<>\r\n0123456789"
                                .iter()
                                .copied()
                                .take(next() as usize % 17),
                        )
                        .for_each(drop),
                    _ => m.insert(at, b"\r\n:;=<>@ 0-9"[next() as usize % 12]),
                }
            }
            let _ = stream_frame_len(&m);
            let _ = sdp_audio(&m);
            let _ = sdp_rewrite(
                &m,
                "127.0.0.1:9"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0; 4], 9))),
            );
            let _ = sdp_clock_rate(&m);
            let _ = sdp_event_pt(&m);
            if let Some(msg) = Msg::parse(&m) {
                parsed += 1;
                let _ = (
                    msg.method(),
                    msg.ruri(),
                    msg.status(),
                    msg.cseq(),
                    msg.call_id(),
                );
                let _ = (
                    msg.tag_from(),
                    msg.to_tag(),
                    msg.branch(),
                    msg.contact_uri(),
                );
                let _ = (msg.has_sdp(), msg.to_bytes());
                for (_, v) in &msg.headers {
                    let _ = (param(v, "tag"), tag_of(v), without_tag(v), uri_of(v));
                }
            }
        }
        // Most mangled messages still parse, so their fields are read too.
        assert!(parsed > 5_000, "{parsed}");
    }
}
