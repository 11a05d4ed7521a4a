//! Topology hiding: the header policy applied when a message crosses from one leg to the other.
//!
//! The SBC is a back-to-back user agent: it never forwards a message, it builds a new one for the other
//! leg. This module decides which header fields of the incoming message are copied into the outgoing
//! one, which are rewritten and which are dropped, so that nothing identifying the hosts, dialogs or
//! internal signalling of one side reaches the other (the concern RFC 3261 §26.3.1 raises about Via,
//! Record-Route and Contact, and which a proxy cannot avoid by design, RFC 3261 §16.6).
//!
//! Headers fall in four classes, checked in this order:
//!
//! 1. **Owned by the SBC** ([`is_owned`]): never copied, the SBC writes its own for the new leg: Via,
//!    Route, Record-Route, Path, Service-Route, Contact, Call-ID, CSeq, Max-Forwards (see
//!    [`next_max_forwards`]), From/To (written from the values the caller passes in [`Crossing`], with
//!    the SBC's tags, see [`with_tag`]), the body headers (Content-Length, Content-Type, Content-Encoding,
//!    Content-Disposition, Content-Language, MIME-Version: the SDP layer writes the body), challenges and
//!    per-hop security (WWW-/Proxy-Authenticate, Authentication-Info, Security-*), reliable provisional
//!    numbering (RSeq, RAck) and dialog references (Replaces, Join, Target-Dialog, Refer-To: rewritten
//!    by the transfer features, since they name the other leg's dialog).
//! 2. **Trust-dependent** (RFC 3325): P-Asserted-Identity is dropped when the source is untrusted (the
//!    Outside, unless the caller says the source is a trusted trunk) and when going to the Outside with
//!    `Privacy: id` (RFC 3325 §7); P-Preferred-Identity is never forwarded, but may be turned into
//!    P-Asserted-Identity when the caller asserts it ([`Crossing::assert_preferred_identity`]).
//!    Authorization/Proxy-Authorization are dropped unless [`HeaderPolicy::forward_credentials`] (the
//!    credentials belong to the hop that challenged). User-Agent/Server are masked with
//!    [`HeaderPolicy::product`], or dropped when it is `None`.
//! 3. **Per-header overrides** ([`HeaderPolicy::set`]), by name, case-insensitive, compact forms
//!    included. Any `X-` header is dropped unless an override keeps or rewrites it.
//! 4. **Everything else**: kept when on the end-to-end allowlist ([`END_TO_END`]; in the inside→outside
//!    direction without Diversion/History-Info, whose URIs name inside targets), otherwise
//!    [`HeaderPolicy::unknown`] applies (default: strip, since an unknown header may carry anything).
//!
//! [`leaks`] checks an outgoing message for markers of the inside (addresses, host names, Call-IDs,
//! tags); the integration tests use it to assert that nothing of the inside reaches the outside.

use std::borrow::Cow;
use std::net::SocketAddr;

use sbc_sip::header::NameAddr;
use sbc_sip::message::long_header_name;
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message};

use super::nat::rewrite_contact;

/// One of the two sides the SBC stands between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The public side: phones, customers, carrier trunks. Untrusted unless the caller says otherwise.
    Outside,
    /// The private side: PBX, inside trunks. Part of the trust domain (RFC 3325 §2.3).
    Inside,
}

/// What to do with one header field when building the message for the other leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderAction {
    /// Do not copy it.
    Strip,
    /// Copy the value as received.
    Keep,
    /// Write the header with this value instead of the received one.
    Rewrite(Cow<'static, str>),
}

/// Headers end-to-end by nature, copied by default in both directions: capabilities, session timers,
/// call information the far end needs, and nothing that names a host of the side they come from.
pub const END_TO_END: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Date",
    "Diversion",
    "Event",
    "Expires",
    "History-Info",
    "Identity",
    "Min-Expires",
    "Min-SE",
    "Priority",
    "Privacy",
    "Proxy-Require",
    "Reason",
    "Reject-Contact",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "Unsupported",
];

/// Headers of [`END_TO_END`] left out, by default, in the inside→outside direction: their URIs name
/// inside users and hosts (forwarding targets of the PBX).
/// Alert-Info too: its URL names a ring tone on a host of the inside (the PBX's web server).
const INSIDE_ONLY: &[&str] = &["Diversion", "History-Info", "Alert-Info"];

/// Header names (long form) the SBC always writes itself and never copies.
const OWNED: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Path",
    "Service-Route",
    "Contact",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "From",
    "To",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Content-Disposition",
    "Content-Language",
    "MIME-Version",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authentication-Info",
    "Proxy-Authentication-Info",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "RSeq",
    "RAck",
    "Replaces",
    "Join",
    "Target-Dialog",
    "Refer-To",
];

const PAI: &str = "P-Asserted-Identity";
const PPI: &str = "P-Preferred-Identity";

fn in_list(list: &[&str], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether the SBC always writes this header itself (long or compact name, any case): it is never
/// copied from the other leg, whatever the policy.
pub fn is_owned(name: &str) -> bool {
    in_list(OWNED, long_header_name(name))
}

/// The header policy of one direction (outside→inside or inside→outside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Headers copied as received unless overridden (long names, case-insensitive).
    pub end_to_end: Vec<Cow<'static, str>>,
    /// What happens to a header that is neither owned, overridden nor on the allowlist.
    pub unknown: HeaderAction,
    /// The product string written as User-Agent (requests) and Server (responses) in place of the
    /// received one; `None` drops both.
    pub product: Option<Cow<'static, str>>,
    /// Copy Authorization/Proxy-Authorization (off by default: credentials belong to their hop).
    pub forward_credentials: bool,
    /// P-Asserted-Identity sent this way has the host:port of its SIP URI replaced by this address
    /// (the SBC's own on that side), so the number passes but the host of the side it came from
    /// does not; a `tel:` identity has no host and passes as it is. `None`: sent as received.
    pub identity_host: Option<SocketAddr>,
    /// Per-header overrides, as (long name, action).
    overrides: Vec<(String, HeaderAction)>,
}

impl HeaderPolicy {
    /// The default policy toward the inside: the [`END_TO_END`] allowlist, unknown headers stripped,
    /// User-Agent/Server dropped, credentials not forwarded.
    pub fn toward_inside() -> Self {
        Self {
            end_to_end: END_TO_END.iter().map(|n| Cow::Borrowed(*n)).collect(),
            unknown: HeaderAction::Strip,
            product: None,
            forward_credentials: false,
            identity_host: None,
            overrides: Vec::new(),
        }
    }
    /// The default policy toward the outside: as [`HeaderPolicy::toward_inside`] without Diversion,
    /// History-Info and Alert-Info (their URIs name inside targets and hosts).
    pub fn toward_outside() -> Self {
        let mut p = Self::toward_inside();
        p.end_to_end.retain(|n| !in_list(INSIDE_ONLY, n));
        p
    }
    /// Override the action for one header name (long or compact form, case-insensitive). Owned
    /// headers ([`is_owned`]) and the trust-dependent ones (User-Agent, Server, P-Asserted-Identity,
    /// P-Preferred-Identity, Authorization, Proxy-Authorization) cannot be overridden: the override is
    /// recorded but never consulted. An override is the only way to let an `X-` header through.
    pub fn set(&mut self, name: &str, action: HeaderAction) -> &mut Self {
        let long = long_header_name(name).to_owned();
        self.overrides
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&long));
        self.overrides.push((long, action));
        self
    }
    /// The override for a header name, if any (long or compact form, case-insensitive).
    pub fn get(&self, name: &str) -> Option<&HeaderAction> {
        let long = long_header_name(name);
        self.overrides
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(long))
            .map(|(_, a)| a)
    }
}

/// The policies of both directions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyPolicy {
    /// Applied to messages going from the outside to the inside.
    pub toward_inside: HeaderPolicy,
    /// Applied to messages going from the inside to the outside.
    pub toward_outside: HeaderPolicy,
}

impl Default for TopologyPolicy {
    fn default() -> Self {
        Self {
            toward_inside: HeaderPolicy::toward_inside(),
            toward_outside: HeaderPolicy::toward_outside(),
        }
    }
}

impl TopologyPolicy {
    /// The policy for messages sent to `to`.
    pub fn toward(&self, to: Side) -> &HeaderPolicy {
        match to {
            Side::Inside => &self.toward_inside,
            Side::Outside => &self.toward_outside,
        }
    }
}

/// One crossing from a leg to the other: who sent, who receives, and the identity values the caller
/// (the B2BUA) decided for the new leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crossing<'a> {
    /// The side the message came from.
    pub from: Side,
    /// The side the new message goes to.
    pub to: Side,
    /// The source is trusted (RFC 3325 trust domain) even though it may be on the outside, e.g. a
    /// carrier trunk. Inside sources are always trusted.
    pub trusted_source: bool,
    /// The SBC vouches for the P-Preferred-Identity of an untrusted source (it authenticated the user):
    /// the PPI is sent on as P-Asserted-Identity (RFC 3325 §9.1).
    pub assert_preferred_identity: bool,
    /// From value for the new leg (with the SBC's tag, see [`with_tag`]); `None`: not written here.
    pub new_from: Option<&'a str>,
    /// To value for the new leg; `None`: not written here.
    pub new_to: Option<&'a str>,
}

impl<'a> Crossing<'a> {
    /// A crossing with no PPI assertion and no From/To written.
    pub fn new(from: Side, to: Side, trusted_source: bool) -> Self {
        Self {
            from,
            to,
            trusted_source,
            assert_preferred_identity: false,
            new_from: None,
            new_to: None,
        }
    }
    fn source_trusted(&self) -> bool {
        self.from == Side::Inside || self.trusted_source
    }
}

/// What [`copy_headers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Fields copied as received.
    pub kept: usize,
    /// Fields written with a different value (masking, rewrite overrides, PPI turned into PAI).
    pub rewritten: usize,
    /// Fields not copied because the SBC writes its own.
    pub owned: usize,
    /// Fields dropped by policy, trust or masking (long names, in message order).
    pub stripped: Vec<String>,
    /// P-Asserted-Identity was dropped (untrusted source, or `Privacy: id` toward the outside).
    pub identity_stripped: bool,
    /// P-Preferred-Identity was sent on as P-Asserted-Identity.
    pub identity_asserted: bool,
}

/// Copy the headers of `msg` allowed by `policy` into `w`, for a message going from side `from` to side
/// `to`. `trusted_source` marks an outside source as part of the trust domain (RFC 3325). From/To are
/// not written: use [`copy_headers_with`] to have them written too.
pub fn copy_headers(
    msg: &Message,
    from: Side,
    to: Side,
    trusted_source: bool,
    policy: &TopologyPolicy,
    w: &mut MessageWriter<'_>,
) -> CopyReport {
    copy_headers_with(msg, &Crossing::new(from, to, trusted_source), policy, w)
}

/// Whether a Privacy header value asks for `id` privacy (RFC 3325 §7; values separated by `;`).
fn privacy_id(msg: &Message) -> bool {
    msg.headers()
        .filter(|h| h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case("Privacy"))
        .flat_map(|h| h.value.split([';', ',']))
        .any(|v| v.trim().eq_ignore_ascii_case("id"))
}

/// [`copy_headers`] with every knob of the crossing: PPI assertion and the From/To values of the new
/// leg (written first, when given).
pub fn copy_headers_with(
    msg: &Message,
    c: &Crossing<'_>,
    policy: &TopologyPolicy,
    w: &mut MessageWriter<'_>,
) -> CopyReport {
    let p = policy.toward(c.to);
    let mut report = CopyReport::default();
    if let Some(f) = c.new_from {
        w.header("From", f);
    }
    if let Some(t) = c.new_to {
        w.header("To", t);
    }
    let privacy = c.to == Side::Outside && privacy_id(msg);
    // A trusted source's PAI wins over a PPI conversion: only assert when no PAI will be sent.
    let pai_passes = c.source_trusted() && !privacy;
    let has_pai = pai_passes
        && msg
            .headers()
            .any(|h| h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(PAI));
    let convert_ppi = c.assert_preferred_identity && !has_pai && !privacy;
    for h in msg.headers() {
        let long = match h.name.as_str() {
            Some(n) => n,
            None => long_header_name(h.raw_name),
        };
        if in_list(OWNED, long) {
            report.owned += 1;
            continue;
        }
        let action = decide(p, h.name, long, pai_passes, convert_ppi, &mut report);
        match action {
            HeaderAction::Keep if long.eq_ignore_ascii_case(PAI) && p.identity_host.is_some() => {
                match identity_on(h.value, p.identity_host) {
                    Some(v) => {
                        w.header(PAI, &v);
                        report.rewritten += 1;
                    }
                    None => {
                        w.header(PAI, h.value);
                        report.kept += 1;
                    }
                }
            }
            HeaderAction::Keep => {
                w.header(long, h.value);
                report.kept += 1;
            }
            HeaderAction::Rewrite(v) => {
                if long.eq_ignore_ascii_case(PPI) {
                    // the asserted identity is the preferred one, as received
                    w.header(PAI, h.value);
                } else {
                    w.header(long, &v);
                }
                report.rewritten += 1;
            }
            HeaderAction::Strip => report.stripped.push(long.to_owned()),
        }
    }
    report
}

/// A P-Asserted-Identity value with its SIP URI's host:port replaced by `host`; `None` when there
/// is nothing to replace (no host given, a `tel:` URI, a value that does not parse).
fn identity_on(value: &str, host: Option<SocketAddr>) -> Option<String> {
    rewrite_contact(value, host?, None).ok()
}

/// The action for one non-owned header.
fn decide(
    p: &HeaderPolicy,
    name: HeaderName,
    long: &str,
    pai_passes: bool,
    convert_ppi: bool,
    report: &mut CopyReport,
) -> HeaderAction {
    match name {
        HeaderName::UserAgent | HeaderName::Server => {
            return match &p.product {
                Some(product) => HeaderAction::Rewrite(product.clone()),
                None => HeaderAction::Strip,
            };
        }
        HeaderName::Other => {}
        _ => return p.get(long).cloned().unwrap_or_else(|| fallback(p, long)),
    }
    if long.eq_ignore_ascii_case(PAI) {
        if pai_passes {
            return HeaderAction::Keep;
        }
        report.identity_stripped = true;
        return HeaderAction::Strip;
    }
    if long.eq_ignore_ascii_case(PPI) {
        if convert_ppi {
            report.identity_asserted = true;
            // Rewrite marks the value as kept under the PAI name (see the caller).
            return HeaderAction::Rewrite(Cow::Borrowed(""));
        }
        return HeaderAction::Strip;
    }
    if long.eq_ignore_ascii_case("Authorization")
        || long.eq_ignore_ascii_case("Proxy-Authorization")
    {
        return if p.forward_credentials {
            HeaderAction::Keep
        } else {
            HeaderAction::Strip
        };
    }
    if let Some(a) = p.get(long) {
        return a.clone();
    }
    if long
        .get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("X-"))
    {
        return HeaderAction::Strip;
    }
    fallback(p, long)
}

fn fallback(p: &HeaderPolicy, long: &str) -> HeaderAction {
    if p.end_to_end.iter().any(|n| n.eq_ignore_ascii_case(long)) {
        HeaderAction::Keep
    } else {
        p.unknown.clone()
    }
}

/// Max-Forwards reached 0: the request must be answered 483 Too Many Hops (RFC 3261 §16.3 step 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyHops;

impl TooManyHops {
    /// The status code to answer with: 483.
    pub const STATUS: u16 = 483;
}

/// The Max-Forwards of the request the SBC sends on the other leg: the received one decremented, 70
/// when the received request had none (RFC 3261 §8.1.1.6), or [`TooManyHops`] when it was 0.
pub fn next_max_forwards(received: Option<u8>) -> Result<u8, TooManyHops> {
    match received {
        None => Ok(70),
        Some(0) => Err(TooManyHops),
        Some(n) => Ok(n - 1),
    }
}

/// A From/To value with its `tag` parameter replaced by `tag` (or removed when `None`): the hook for
/// writing the SBC's own tags while keeping (or, given a rewritten value, replacing) the URI. Returns
/// `None` when the value does not parse as a name-addr.
pub fn with_tag(value: &str, tag: Option<&str>) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    let trimmed = value.trim();
    let head = trimmed
        .strip_suffix(na.params.raw)
        .unwrap_or(trimmed)
        .trim_end()
        .trim_end_matches(';')
        .trim_end();
    let mut out = String::with_capacity(value.len() + 24);
    out.push_str(head);
    for (n, v) in na.params.iter() {
        if n.eq_ignore_ascii_case("tag") {
            continue;
        }
        out.push(';');
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
    if let Some(t) = tag {
        out.push_str(";tag=");
        out.push_str(t);
    }
    Some(out)
}

/// An SDP body with the lines that describe the party rather than the media made anonymous: the
/// session name `s=` becomes `s=-`, and the information, URI, e-mail and phone lines (`i=`, `u=`,
/// `e=`, `p=`, in any section) and `a=tool:` (the software that wrote it) are dropped. None of them
/// matter to offer/answer (RFC 8866 makes all but `s=` optional, and allows `s=-`); all of them
/// can name the hosts, people or products of the side the body came from.
pub fn scrub_sdp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let ending = line.get(text.len()..).unwrap_or_default();
        match text {
            [b'i' | b'u' | b'e' | b'p', b'=', ..] => {}
            [b's', b'=', ..] => {
                out.extend_from_slice(b"s=-");
                out.extend_from_slice(ending);
            }
            _ if text.starts_with(b"a=tool:") => {}
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// Every marker of `inside_markers` (inside address, host name, Call-ID, tag ...) found in an outgoing
/// message, in the order given. The search is a case-insensitive substring match over the whole
/// message, start line and body included; it errs on the side of reporting (`10.0.0.1` is found in
/// `10.0.0.17`). Empty markers are ignored.
pub fn leaks(msg_bytes: &[u8], inside_markers: &[&str]) -> Vec<String> {
    inside_markers
        .iter()
        .filter(|m| !m.is_empty())
        .filter(|m| {
            msg_bytes
                .windows(m.len())
                .any(|win| win.eq_ignore_ascii_case(m.as_bytes()))
        })
        .map(|m| (*m).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sbc_sip::Method;

    const INVITE_FROM_OUTSIDE: &str = "INVITE sip:+4930123@sbc.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKout1;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:sbc.example.com;lr>\r\n\
f: \"Alice\" <sip:alice@carrier.example.net>;tag=outtag1\r\n\
t: <sip:+4930123@sbc.example.com>\r\n\
i: outcall-1@198.51.100.7\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:alice@198.51.100.7:5060>\r\n\
User-Agent: CarrierSwitch 9.1\r\n\
P-Asserted-Identity: <sip:+4930999@carrier.example.net>\r\n\
P-Preferred-Identity: <sip:+4930555@carrier.example.net>\r\n\
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n\
k: timer, 100rel\r\n\
Require: timer\r\n\
Accept: application/sdp\r\n\
x: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
Alert-Info: <http://ring.example.net/r1>\r\n\
Diversion: <sip:+4930777@carrier.example.net>;reason=unconditional\r\n\
Authorization: Digest username=\"alice\", realm=\"sbc\", nonce=\"n\", uri=\"sip:sbc\", response=\"r\"\r\n\
X-Carrier-Route: trunk7\r\n\
Warning: 399 198.51.100.7 \"internal\"\r\n\
c: application/sdp\r\n\
l: 0\r\n\r\n";

    const OK_FROM_INSIDE: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.1.2.3:5062;branch=z9hG4bKin1\r\n\
Record-Route: <sip:10.1.2.9;lr>\r\n\
From: <sip:+4930999@sbc.example.com>;tag=sbctagA\r\n\
To: <sip:201@pbx.inside.lan>;tag=pbxtag9\r\n\
Call-ID: legb-42@10.1.2.3\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:201@10.1.2.9:5060>\r\n\
Server: InsidePBX 4.2 (10.1.2.9)\r\n\
P-Asserted-Identity: \"Reception\" <sip:201@pbx.inside.lan>\r\n\
Privacy: id\r\n\
Supported: timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Reason: Q.850;cause=16\r\n\
History-Info: <sip:200@10.1.2.9>;index=1\r\n\
X-Internal-Node: 10.1.2.9\r\n\
X-Billing-Id: 777\r\n\
Content-Length: 0\r\n\r\n";

    fn parse(text: &str) -> Message {
        match Message::parse(Bytes::copy_from_slice(text.as_bytes())) {
            Ok(m) => m,
            Err(e) => panic!("test message does not parse: {e:?}"),
        }
    }

    /// Run the crossing, finish the message with fresh SBC-owned headers, parse it back.
    fn cross(msg: &Message, c: &Crossing<'_>, policy: &TopologyPolicy) -> (Message, CopyReport) {
        let mut out = Vec::new();
        let mut w = if msg.is_request() {
            MessageWriter::request(&mut out, &Method::Invite, "sip:201@10.1.2.9")
        } else {
            MessageWriter::response(&mut out, msg.status().unwrap_or(500), "OK")
        };
        w.header("Via", "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsbc1");
        if c.new_from.is_none() {
            w.header("From", "<sip:a@sbc.example.com>;tag=sbc1");
            w.header("To", "<sip:b@sbc.example.com>");
        }
        w.header("Call-ID", "sbc-new-1");
        w.header("CSeq", "1 INVITE");
        let report = copy_headers_with(msg, c, policy, &mut w);
        w.finish(None, b"");
        let text = String::from_utf8(out).unwrap_or_default();
        (parse(&text), report)
    }

    fn count(m: &Message, name: &str) -> usize {
        m.headers()
            .filter(|h| long_header_name(h.raw_name).eq_ignore_ascii_case(long_header_name(name)))
            .count()
    }

    fn inbound(trusted: bool) -> (Message, CopyReport) {
        let msg = parse(INVITE_FROM_OUTSIDE);
        let c = Crossing::new(Side::Outside, Side::Inside, trusted);
        cross(&msg, &c, &TopologyPolicy::default())
    }

    fn outbound(policy: &TopologyPolicy) -> (Message, CopyReport) {
        let msg = parse(OK_FROM_INSIDE);
        let c = Crossing::new(Side::Inside, Side::Outside, false);
        cross(&msg, &c, policy)
    }

    #[test]
    fn identity_alert_info_and_sdp_details_of_the_inside_do_not_reach_the_outside() {
        // The PBX's PAI keeps its number and name, with the SBC's host.
        let text = OK_FROM_INSIDE.replace(
            "Privacy: id\r\n",
            "Alert-Info: <http://10.1.2.9/ring.wav>\r\n",
        );
        let msg = parse(&text);
        let c = Crossing::new(Side::Inside, Side::Outside, false);
        let mut policy = TopologyPolicy::default();
        policy.toward_outside.identity_host = Some("203.0.113.1:5060".parse().unwrap());
        let (out, _) = cross(&msg, &c, &policy);
        assert_eq!(
            out.header_by_name("P-Asserted-Identity"),
            Some("\"Reception\" <sip:201@203.0.113.1:5060>")
        );
        assert!(leaks(out.raw(), &["pbx.inside.lan", "10.1.2.9"]).is_empty());
        assert_eq!(count(&out, "Alert-Info"), 0);
        assert_eq!(
            count(&out, "Reason"),
            1,
            "a Q.850 cause names no host: kept"
        );
        // Toward the inside Alert-Info still passes (the PBX may ring differently).
        let (inside, _) = inbound(false);
        assert_eq!(count(&inside, "Alert-Info"), 1);
        // SDP: the session name, information, URI, e-mail, phone and tool lines.
        let sdp = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=PBX 10.1.2.9 session\r\n\
i=call via pbx.inside.lan\r\nu=http://pbx.inside.lan/\r\ne=ops@inside.lan\r\np=+49 30 1\r\n\
c=IN IP4 203.0.113.1\r\nt=0 0\r\na=tool:InsidePBX 4.2\r\nm=audio 30000 RTP/AVP 0\r\n\
i=line 7\r\na=sendrecv\r\n";
        let scrubbed = scrub_sdp(sdp.as_bytes());
        assert_eq!(
            String::from_utf8(scrubbed).unwrap(),
            "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0\r\na=sendrecv\r\n"
        );
    }

    #[test]
    fn owned_headers_of_the_source_leg_are_not_copied() {
        let (out, report) = inbound(false);
        assert_eq!(count(&out, "Via"), 1);
        assert_eq!(out.top_via().branch(), Some("z9hG4bKsbc1"));
        assert_eq!(count(&out, "Route"), 0);
        assert_eq!(count(&out, "Contact"), 0);
        assert_eq!(count(&out, "Max-Forwards"), 0);
        assert_eq!(out.call_id(), "sbc-new-1");
        assert_eq!(out.from_tag(), Some("sbc1"));
        assert_eq!(count(&out, "From"), 1);
        assert_eq!(count(&out, "Content-Type"), 0);
        assert!(report.owned >= 10, "{report:?}");
        let (out, _) = outbound(&TopologyPolicy::default());
        assert_eq!(count(&out, "Record-Route"), 0);
        assert_eq!(count(&out, "Contact"), 0);
        assert_eq!(count(&out, "Via"), 1);
        assert!(leaks(out.raw(), &["10.1.2.3", "10.1.2.9", "legb-42", "pbxtag9"]).is_empty());
    }

    #[test]
    fn user_agent_and_server_are_masked_or_stripped() {
        let (out, report) = inbound(false);
        assert_eq!(out.header(HeaderName::UserAgent), None);
        assert!(report.stripped.iter().any(|n| n == "User-Agent"));
        let mut policy = TopologyPolicy::default();
        policy.toward_outside.product = Some(Cow::Borrowed("ExampleSBC"));
        let (out, report) = outbound(&policy);
        assert_eq!(out.header(HeaderName::Server), Some("ExampleSBC"));
        assert_eq!(report.rewritten, 1);
    }

    #[test]
    fn pai_from_untrusted_outside_is_stripped_and_kept_from_trusted_trunk() {
        let (out, report) = inbound(false);
        assert_eq!(out.header_by_name(PAI), None);
        assert_eq!(out.header_by_name(PPI), None);
        assert!(report.identity_stripped);
        let (out, report) = inbound(true);
        assert_eq!(
            out.header_by_name("p-asserted-identity"),
            Some("<sip:+4930999@carrier.example.net>")
        );
        assert!(!report.identity_stripped);
        assert_eq!(out.header_by_name(PPI), None);
    }

    #[test]
    fn asserted_ppi_becomes_pai() {
        let msg = parse(INVITE_FROM_OUTSIDE);
        let mut c = Crossing::new(Side::Outside, Side::Inside, false);
        c.assert_preferred_identity = true;
        let (out, report) = cross(&msg, &c, &TopologyPolicy::default());
        assert!(report.identity_asserted);
        assert_eq!(
            out.header_by_name(PAI),
            Some("<sip:+4930555@carrier.example.net>")
        );
        assert_eq!(count(&out, PAI), 1);
        assert_eq!(out.header_by_name(PPI), None);
        // a trusted trunk's own PAI wins over the conversion
        c.trusted_source = true;
        let (out, report) = cross(&msg, &c, &TopologyPolicy::default());
        assert!(!report.identity_asserted);
        assert_eq!(count(&out, PAI), 1);
        assert_eq!(
            out.header_by_name(PAI),
            Some("<sip:+4930999@carrier.example.net>")
        );
    }

    #[test]
    fn privacy_id_strips_pai_toward_outside_only() {
        let (out, report) = outbound(&TopologyPolicy::default());
        assert_eq!(out.header_by_name(PAI), None);
        assert!(report.identity_stripped);
        assert_eq!(out.header_by_name("Privacy"), Some("id"));
        // the same response toward the inside keeps it (trusted destination)
        let msg = parse(OK_FROM_INSIDE);
        let c = Crossing::new(Side::Inside, Side::Inside, false);
        let (out, _) = cross(&msg, &c, &TopologyPolicy::default());
        assert!(out.header_by_name(PAI).is_some());
        // without Privacy: id, a PAI from the inside goes out
        let no_privacy = OK_FROM_INSIDE.replace("Privacy: id\r\n", "Privacy: none\r\n");
        let c = Crossing::new(Side::Inside, Side::Outside, false);
        let (out, _) = cross(&parse(&no_privacy), &c, &TopologyPolicy::default());
        assert!(out.header_by_name(PAI).is_some());
    }

    #[test]
    fn x_headers_are_stripped_unless_allowlisted() {
        let (out, _) = inbound(true);
        assert_eq!(out.header_by_name("X-Carrier-Route"), None);
        let mut policy = TopologyPolicy::default();
        policy
            .toward_outside
            .set("x-billing-id", HeaderAction::Keep);
        policy.toward_outside.unknown = HeaderAction::Keep;
        let (out, report) = outbound(&policy);
        assert_eq!(out.header_by_name("X-Billing-Id"), Some("777"));
        // unknown=Keep does not open the door to X- headers
        assert_eq!(out.header_by_name("X-Internal-Node"), None);
        assert!(report.stripped.iter().any(|n| n == "X-Internal-Node"));
    }

    #[test]
    fn end_to_end_headers_are_kept_with_compact_forms_expanded() {
        let (out, _) = inbound(false);
        assert_eq!(
            out.header(HeaderName::Allow),
            Some("INVITE, ACK, BYE, CANCEL, OPTIONS")
        );
        assert_eq!(out.header(HeaderName::Supported), Some("timer, 100rel"));
        assert_eq!(out.header(HeaderName::Require), Some("timer"));
        assert_eq!(out.header_by_name("Accept"), Some("application/sdp"));
        assert_eq!(
            out.header_by_name("Session-Expires"),
            Some("1800;refresher=uac")
        );
        assert_eq!(out.header_by_name("Min-SE"), Some("90"));
        assert_eq!(
            out.header_by_name("Alert-Info"),
            Some("<http://ring.example.net/r1>")
        );
        assert!(out.header_by_name("Diversion").is_some());
        // written in long form
        let text = String::from_utf8_lossy(out.raw());
        assert!(text.contains("\r\nSupported: ") && text.contains("\r\nSession-Expires: "));
        let (out, report) = outbound(&TopologyPolicy::default());
        assert_eq!(out.header(HeaderName::Supported), Some("timer"));
        assert_eq!(out.header_by_name("Reason"), Some("Q.850;cause=16"));
        assert_eq!(out.header_by_name("History-Info"), None);
        assert!(report.stripped.iter().any(|n| n == "History-Info"));
    }

    #[test]
    fn credentials_and_unknown_headers_are_stripped_by_default() {
        let (out, report) = inbound(true);
        assert_eq!(out.header_by_name("Authorization"), None);
        assert_eq!(out.header_by_name("Warning"), None);
        assert!(report.stripped.iter().any(|n| n == "Warning"));
        let mut policy = TopologyPolicy::default();
        policy.toward_inside.forward_credentials = true;
        policy.toward_inside.set(
            "WARNING",
            HeaderAction::Rewrite(Cow::Borrowed("399 sbc \"x\"")),
        );
        let msg = parse(INVITE_FROM_OUTSIDE);
        let (out, _) = cross(
            &msg,
            &Crossing::new(Side::Outside, Side::Inside, true),
            &policy,
        );
        assert!(out.header_by_name("Authorization").is_some());
        assert_eq!(out.header_by_name("Warning"), Some("399 sbc \"x\""));
    }

    #[test]
    fn overrides_use_compact_names_and_cannot_open_owned_headers() {
        let mut p = HeaderPolicy::toward_inside();
        p.set("x", HeaderAction::Strip);
        assert_eq!(p.get("Session-Expires"), Some(&HeaderAction::Strip));
        p.set("k", HeaderAction::Strip);
        p.set("v", HeaderAction::Keep);
        p.set("i", HeaderAction::Keep);
        let policy = TopologyPolicy {
            toward_inside: p,
            ..TopologyPolicy::default()
        };
        let msg = parse(INVITE_FROM_OUTSIDE);
        let (out, _) = cross(
            &msg,
            &Crossing::new(Side::Outside, Side::Inside, false),
            &policy,
        );
        assert_eq!(out.header_by_name("Session-Expires"), None);
        assert_eq!(out.header(HeaderName::Supported), None);
        assert_eq!(count(&out, "Via"), 1);
        assert_eq!(out.call_id(), "sbc-new-1");
        assert!(is_owned("v") && is_owned("RECORD-ROUTE") && is_owned("Path"));
        assert!(!is_owned("Allow"));
    }

    #[test]
    fn from_and_to_are_written_from_the_hook_with_sbc_tags() {
        let msg = parse(INVITE_FROM_OUTSIDE);
        let from = with_tag(
            msg.header(HeaderName::From).unwrap_or_default(),
            Some("sbcB1"),
        );
        let to = with_tag("<sip:201@pbx.inside.lan>", None);
        let mut c = Crossing::new(Side::Outside, Side::Inside, false);
        c.new_from = from.as_deref();
        c.new_to = to.as_deref();
        let (out, _) = cross(&msg, &c, &TopologyPolicy::default());
        assert_eq!(count(&out, "From"), 1);
        assert_eq!(count(&out, "To"), 1);
        assert_eq!(out.from_tag(), Some("sbcB1"));
        assert_eq!(out.from().display, Some("\"Alice\""));
        assert_eq!(out.to_tag(), None);
        assert!(leaks(out.raw(), &["outtag1", "outcall-1"]).is_empty());
    }

    #[test]
    fn max_forwards_is_decremented_or_refused() {
        assert_eq!(next_max_forwards(None), Ok(70));
        assert_eq!(next_max_forwards(Some(70)), Ok(69));
        assert_eq!(next_max_forwards(Some(1)), Ok(0));
        assert_eq!(next_max_forwards(Some(0)), Err(TooManyHops));
        assert_eq!(TooManyHops::STATUS, 483);
    }

    #[test]
    fn with_tag_replaces_or_removes_the_tag() {
        assert_eq!(
            with_tag("\"Alice\" <sip:alice@example.net>;tag=abc;x=1", Some("n1")).as_deref(),
            Some("\"Alice\" <sip:alice@example.net>;x=1;tag=n1")
        );
        assert_eq!(
            with_tag("sip:bob@example.net;tag=zz", None).as_deref(),
            Some("sip:bob@example.net")
        );
        assert_eq!(
            with_tag("<sip:bob@example.net>", Some("t")).as_deref(),
            Some("<sip:bob@example.net>;tag=t")
        );
        assert_eq!(with_tag("<sip:bob@", Some("t")), None);
    }

    #[test]
    fn leaks_finds_inside_markers() {
        let msg = parse(OK_FROM_INSIDE);
        let found = leaks(msg.raw(), &["10.1.2.9", "LEGB-42", "", "192.0.2.200"]);
        assert_eq!(found, vec!["10.1.2.9".to_owned(), "LEGB-42".to_owned()]);
        assert!(leaks(b"SIP/2.0 200 OK\r\n\r\n", &["10.1.2.9"]).is_empty());
    }
}
