//! Far-end NAT handling: telling whether a user agent sits behind a NAT, where to send its responses,
//! what to add to its Via when relaying, and how to rewrite its Contact to the address it is really
//! reachable at.
//!
//! References:
//! - RFC 3261 §18.2.1: a server adds `received` to the top Via when the sent-by host differs from the
//!   packet's source address.
//! - RFC 3261 §18.2.2 and RFC 3581 §4: responses over unreliable transports go to `received` and, when
//!   the client asked with `rport`, to the source port (symmetric response routing).
//! - RFC 5626 (outbound) ideas: the flow the request arrived on is what reaches the UA; the SBC keeps
//!   that flow (source address, transport, connection) per binding, see
//!   [`crate::registration::registrar`].
//!
//! # Rules chosen
//!
//! - **Detection is a comparison.** A UA is NATed when its top Via sent-by, or its Contact, names an
//!   address other than the one the packet came from. A private Contact alone is *not* a verdict: a UA
//!   on the SBC's own network (or on loopback, as in the integration tests where UAs send from
//!   127.0.0.x) writes its private address and is reached at exactly that address. [`is_private`] is
//!   reported beside the verdict for logs and policy.
//! - **Ports over reliable transports are not compared.** A TCP/TLS client sends from an ephemeral
//!   port while its Via and Contact name its listening port; only the address is compared, and the
//!   SBC answers on the connection anyway.
//! - **Responses over UDP go to the observed source address, always** (it is the `received` value we
//!   add whenever sent-by differs, §18.2.1/§18.2.2). The port is the observed source port when the UA
//!   asked with `rport`, or when its sent-by host is not its source address (a NATed UA: its sent-by
//!   port lies behind the NAT and is unreachable); otherwise the sent-by port (default 5060, 5061 for
//!   TLS), as §18.2.2 says.
//! - **Contact rewriting adds no `;alias`.** RFC 5923 aliases ask the next hop to reuse the connection;
//!   here the PBX never sees the UA's Contact (the SBC registers with its own), so the real flow is kept
//!   in the registrar instead and the rewritten Contact only needs to name the reachable address.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sbc_sip::header::{NameAddr, Params, Via};
use sbc_sip::message::HeaderName;
use sbc_sip::uri::{Host, Scheme};
use sbc_sip::{Message, Method, ParseError};

/// Whether `ip` is an address that is not reachable from the public internet: RFC 1918
/// (10/8, 172.16/12, 192.168/16), RFC 6598 carrier-grade NAT (100.64/10), link-local (169.254/16,
/// fe80::/10), loopback (127/8, ::1), unspecified, IPv6 unique-local (fc00::/7). IPv4-mapped IPv6
/// addresses are judged as their IPv4 address.
///
/// Loopback counts as private (it is not routable), but see the module doc: detection compares
/// addresses, so a UA on loopback that writes its loopback address is not NATed.
pub fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        // RFC 6598 shared address space 100.64.0.0/10
        || (a == 100 && (b & 0xc0) == 64)
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments().first().copied().unwrap_or(0);
    ip.is_loopback()
        || ip.is_unspecified()
        // unique local fc00::/7
        || (first & 0xfe00) == 0xfc00
        // link local fe80::/10
        || (first & 0xffc0) == 0xfe80
}

/// The verdict of [`detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatVerdict {
    /// The UA names the address it sends from: reach it at what it wrote.
    Direct,
    /// The UA names an address other than its source: reach it at the observed source only.
    Nated,
}

/// What [`detect`] found about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatInfo {
    /// The verdict: [`NatVerdict::Nated`] when any `*_differs` field is set.
    pub verdict: NatVerdict,
    /// The top Via sent-by host is not the source address (a domain name counts as different, as in
    /// RFC 3261 §18.2.1).
    pub via_host_differs: bool,
    /// The top Via sent-by port (default 5060, 5061 for TLS) is not the source port. Only compared
    /// over unreliable transports.
    pub via_port_differs: bool,
    /// The first Contact names an IP address that is private ([`is_private`]).
    pub contact_private: bool,
    /// The first Contact names an IP address other than the source address, or (over unreliable
    /// transports) a port other than the source port. A Contact with a domain name, `*` or no Contact
    /// at all does not count.
    pub contact_differs: bool,
    /// The top Via carries `rport` (RFC 3581 §3).
    pub rport_requested: bool,
    /// The top Via names a reliable transport (TCP, TLS, SCTP, WS, WSS).
    pub reliable: bool,
}

impl NatInfo {
    /// Whether the verdict is [`NatVerdict::Nated`].
    pub fn is_nated(&self) -> bool {
        self.verdict == NatVerdict::Nated
    }
}

/// Whether a Via transport token names a reliable (connection-oriented) transport.
pub fn is_reliable_transport(transport: &str) -> bool {
    ["TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(transport))
}

/// The port a Via sent-by implies when none is written (RFC 3261 §18.2.2, §19.1.2).
fn default_port(transport: &str) -> u16 {
    if transport.eq_ignore_ascii_case("TLS") || transport.eq_ignore_ascii_case("WSS") {
        5061
    } else {
        5060
    }
}

/// Whether `host` is exactly the address `ip` (IPv4-mapped IPv6 compared as IPv4).
fn host_is(host: &Host<'_>, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    match host {
        Host::V4(a) => ip == IpAddr::V4(*a),
        Host::V6(a) => ip == IpAddr::V6(*a).to_canonical(),
        Host::Domain(_) => false,
    }
}

/// The address `host` names, if it is an IP address.
fn host_ip(host: &Host<'_>) -> Option<IpAddr> {
    match host {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    }
}

/// Judge one request received from `source` (see the module doc for the rules).
pub fn detect(msg: &Message, source: SocketAddr) -> NatInfo {
    let via = msg.top_via();
    let reliable = is_reliable_transport(via.transport);
    let via_host_differs = !host_is(&via.host, source.ip());
    let via_port_differs =
        !reliable && via.port.unwrap_or_else(|| default_port(via.transport)) != source.port();

    let contact = msg
        .header_values(HeaderName::Contact)
        .next()
        .and_then(|v| NameAddr::parse(v).ok());
    let (contact_private, contact_differs) = match contact
        .as_ref()
        .and_then(|c| host_ip(&c.uri.host).map(|ip| (ip, c.uri.port, c.uri.scheme == Scheme::Sips)))
    {
        Some((ip, port, sips)) => {
            let tls = sips || via.transport.eq_ignore_ascii_case("TLS");
            let port = port.unwrap_or(if tls { 5061 } else { 5060 });
            let differs = ip.to_canonical() != source.ip().to_canonical()
                || (!reliable && port != source.port());
            (is_private(ip), differs)
        }
        None => (false, false),
    };

    let nated = via_host_differs || via_port_differs || contact_differs;
    NatInfo {
        verdict: if nated {
            NatVerdict::Nated
        } else {
            NatVerdict::Direct
        },
        via_host_differs,
        via_port_differs,
        contact_private,
        contact_differs,
        rport_requested: via.rport().is_some(),
        reliable,
    }
}

/// Where to send a response to a request whose top Via is `via` and which arrived from `source`
/// (RFC 3261 §18.2.2, RFC 3581 §4; the rule is in the module doc).
///
/// Over a reliable transport this is `source`: the driver answers on the connection the request came
/// on, and only falls back to a new connection (to this address) when that one is gone.
pub fn response_target(via: &Via<'_>, source: SocketAddr, reliable: bool) -> SocketAddr {
    if reliable {
        return source;
    }
    let symmetric = via.rport().is_some() || !host_is(&via.host, source.ip());
    if symmetric {
        source
    } else {
        let port = via.port.unwrap_or_else(|| default_port(via.transport));
        SocketAddr::new(source.ip(), port)
    }
}

/// The `received`/`rport` parameters to set on a Via when relaying a request (RFC 3261 §18.2.1,
/// RFC 3581 §4). Written with [`fmt::Display`] as `;received=...;rport=...` (each only when set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViaStamp {
    /// The source address, when the sent-by host differs from it.
    pub received: Option<IpAddr>,
    /// The source port, when the client asked with `rport`.
    pub rport: Option<u16>,
}

impl ViaStamp {
    /// The stamp for a Via received from `source`.
    pub fn new(via: &Via<'_>, source: SocketAddr) -> Self {
        let ip = source.ip().to_canonical();
        Self {
            received: (!host_is(&via.host, ip)).then_some(ip),
            rport: via.rport().is_some().then_some(source.port()),
        }
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.received.is_none() && self.rport.is_none()
    }
}

impl fmt::Display for ViaStamp {
    /// IPv6 addresses are written without brackets (RFC 3261 §20.42 `via-received`, RFC 5118 §4.5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.received {
            write!(f, ";received={ip}")?;
        }
        if let Some(port) = self.rport {
            write!(f, ";rport={port}")?;
        }
        Ok(())
    }
}

/// Write `host` as URI/Via text (IPv6 in brackets).
fn write_host(out: &mut String, host: &Host<'_>) {
    let _ = match host {
        Host::Domain(d) => write!(out, "{d}"),
        Host::V4(a) => write!(out, "{a}"),
        Host::V6(a) => write!(out, "[{a}]"),
    };
}

/// The Via value `value` (one value, as received from `source`) with its `received` and `rport`
/// parameters set per [`ViaStamp`]: any `received` the client wrote is dropped and a valueless
/// `rport` is filled in. Other parameters keep their order and text.
pub fn stamp_via(value: &str, source: SocketAddr) -> Result<String, ParseError> {
    Ok(stamp_parsed(&Via::parse(value)?, source))
}

/// [`stamp_via`] of an already parsed Via.
fn stamp_parsed(via: &Via<'_>, source: SocketAddr) -> String {
    let stamp = ViaStamp::new(via, source);
    let mut out = String::with_capacity(via.params.raw.len() + 96);
    let _ = write!(out, "SIP/2.0/{} ", via.transport);
    write_host(&mut out, &via.host);
    if let Some(p) = via.port {
        let _ = write!(out, ":{p}");
    }
    push_params_except(&mut out, via.params, |name| {
        name.eq_ignore_ascii_case("received")
            || (name.eq_ignore_ascii_case("rport") && stamp.rport.is_some())
    });
    let _ = write!(out, "{stamp}");
    out
}

/// `req` as received from `source`, with its top Via stamped per [`ViaStamp`] (`received`, and the
/// source port in a valueless `rport`), so that every response built from it, stateless or relayed,
/// tells the client its public address (RFC 3581 §4, RFC 3261 §18.2.1). Returned unchanged when
/// there is nothing to stamp (no `rport` asked and the sent-by is the source, or already stamped),
/// when it is a response or an ACK (never answered), or when the stamped message would not fit.
pub fn stamp_request(req: Message, source: SocketAddr) -> Message {
    // An ACK is never answered: its Via is read by no response.
    if !req.is_request() || matches!(req.method(), Some(Method::Ack)) {
        return req;
    }
    let stamped = match quick_stamp(req.top_via_text(), source) {
        Quick::Unchanged => return req,
        Quick::Stamped(s) => s,
        Quick::Parse => match slow_stamp(&req, source) {
            Some(s) => s,
            None => return req,
        },
    };
    let mut req = req;
    req.set_valid_top_via(&stamped);
    req
}

/// What [`quick_stamp`] found.
#[derive(Debug, PartialEq, Eq)]
enum Quick {
    /// Nothing to stamp.
    Unchanged,
    /// The stamped value.
    Stamped(String),
    /// A form the quick reading leaves to [`Via::parse`] (LWS inside the sent-by, quoted parameters).
    Parse,
}

/// The stamp of the top Via value `top` (validated at the message's parse) read without parsing it
/// again, for the common form `SIP/2.0/<transport> <host>[:<port>][;params]` with unquoted
/// parameters: the same decision and the same parameters as [`stamp_parsed`], the Via's own text
/// kept as it came. Anything else is [`Quick::Parse`].
fn quick_stamp(top: &str, source: SocketAddr) -> Quick {
    let (sent, params) = top.split_once(';').unwrap_or((top, ""));
    let mut words = sent.split_ascii_whitespace();
    let (Some(_protocol), Some(host_port), None) = (words.next(), words.next(), words.next())
    else {
        return Quick::Parse;
    };
    if params.contains('"') {
        return Quick::Parse;
    }
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h),
        None => Some(host_port.split_once(':').map_or(host_port, |(h, _)| h)),
    };
    let Some(host) = host else {
        return Quick::Parse;
    };
    let ip = source.ip().to_canonical();
    let same_host = host.parse::<IpAddr>().is_ok_and(|h| h.to_canonical() == ip);
    let (mut rport, mut asked, mut received) = (false, false, false);
    for p in params.split(';') {
        let (name, value) = p.split_once('=').map_or((p, None), |(n, v)| (n, Some(v)));
        let name = name.trim_matches(|c: char| c.is_ascii_whitespace());
        if name.eq_ignore_ascii_case("rport") {
            rport = true;
            asked |= value.is_none();
        } else if name.eq_ignore_ascii_case("received") {
            received = true;
        }
    }
    if !asked && (same_host || received) {
        return Quick::Unchanged;
    }
    let stamp = ViaStamp {
        received: (!same_host).then_some(ip),
        rport: rport.then_some(source.port()),
    };
    let mut out = String::with_capacity(top.len() + 48);
    out.push_str(sent.trim_end_matches(|c: char| c.is_ascii_whitespace()));
    for p in params.split(';').filter(|p| !p.is_empty()) {
        let name = p
            .split_once('=')
            .map_or(p, |(n, _)| n)
            .trim_matches(|c: char| c.is_ascii_whitespace());
        if name.eq_ignore_ascii_case("received")
            || (name.eq_ignore_ascii_case("rport") && stamp.rport.is_some())
        {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    let _ = write!(out, "{stamp}");
    Quick::Stamped(out)
}

/// The stamp of `req`'s top Via through [`Via::parse`]: `None` when there is nothing to stamp.
fn slow_stamp(req: &Message, source: SocketAddr) -> Option<String> {
    let value = req.header_values(HeaderName::Via).next()?;
    let via = Via::parse(value).ok()?;
    let asked = via.rport() == Some(None);
    let elsewhere = !host_is(&via.host, source.ip().to_canonical()) && via.received().is_none();
    if !asked && !elsewhere {
        return None;
    }
    Some(stamp_parsed(&via, source))
}

/// The Contact value `value` with its URI host:port replaced by `public` (the observed source).
///
/// Kept: display name, scheme, user and password, URI parameters other than `transport` and `maddr`,
/// URI headers, and every header parameter (`expires`, `q`, `+sip.instance`, `reg-id`, ...).
/// `maddr` is dropped (it would override the host), `transport` is dropped and, when `transport` is
/// given, written once as `;transport=<value>` (lower case). The result always uses the `<...>` form.
/// No `;alias` is added (module doc). Fails on an unparsable value, `*`, or a non-SIP URI.
pub fn rewrite_contact(
    value: &str,
    public: SocketAddr,
    transport: Option<&str>,
) -> Result<String, ParseError> {
    let na = NameAddr::parse(value)?;
    let scheme = match na.uri.scheme {
        Scheme::Sip => "sip",
        Scheme::Sips => "sips",
        Scheme::Tel | Scheme::Other => return Err(ParseError::BadUri),
    };
    let public = SocketAddr::new(public.ip().to_canonical(), public.port());
    let mut out = String::with_capacity(value.len() + 32);
    if let Some(d) = na.display {
        out.push_str(d);
        out.push(' ');
    }
    let _ = write!(out, "<{scheme}:");
    if let Some(u) = na.uri.user {
        out.push_str(u);
        if let Some(p) = na.uri.password {
            out.push(':');
            out.push_str(p);
        }
        out.push('@');
    }
    // SocketAddr's Display is URI hostport: `1.2.3.4:5060`, `[2001:db8::1]:5060`.
    let _ = write!(out, "{public}");
    push_params_except(&mut out, na.uri.params, |name| {
        name.eq_ignore_ascii_case("transport") || name.eq_ignore_ascii_case("maddr")
    });
    if let Some(t) = transport {
        let _ = write!(out, ";transport={}", t.to_ascii_lowercase());
    }
    if let Some(h) = na.uri.headers {
        out.push('?');
        out.push_str(h);
    }
    out.push('>');
    if !na.params.raw.trim().is_empty() {
        out.push(';');
        out.push_str(na.params.raw.trim());
    }
    Ok(out)
}

/// Append `;name[=value]` for every parameter of `params` that `skip` does not name.
fn push_params_except(out: &mut String, params: Params<'_>, skip: impl Fn(&str) -> bool) {
    for (name, v) in params.iter() {
        if skip(name) {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn register(via: &str, contact: &str) -> Message {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn private_ranges() {
        let cases = [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("100.64.0.1", true),
            ("100.127.255.255", true),
            ("100.128.0.1", false),
            ("169.254.1.1", true),
            ("127.0.0.2", true),
            ("203.0.113.5", false),
            ("8.8.8.8", false),
            ("fd00::1", true),
            ("fc12::1", true),
            ("fe80::1", true),
            ("::1", true),
            ("2001:db8::1", false),
            ("::ffff:192.168.0.1", true),
            ("::ffff:198.51.100.1", false),
        ];
        for (ip, want) in cases {
            assert_eq!(is_private(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn detect_table() {
        // (via, contact, source, nated, via_host_differs, via_port_differs, contact_private,
        //  contact_differs, rport)
        let cases = [
            (
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport",
                "<sip:alice@192.168.1.10:5060>",
                "203.0.113.7:40001",
                true,
                true,
                true,
                true,
                true,
                true,
            ),
            (
                "SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK1",
                "<sip:alice@198.51.100.4>",
                "198.51.100.4:5060",
                false,
                false,
                false,
                false,
                false,
                false,
            ),
            // a UA on loopback, as in the integration tests
            (
                "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK1;rport",
                "<sip:bob@127.0.0.2:5070>",
                "127.0.0.2:5070",
                false,
                false,
                false,
                true,
                false,
                true,
            ),
            // port-only NAT (same address, port mapped)
            (
                "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1;rport",
                "<sip:alice@198.51.100.4>",
                "198.51.100.4:61000",
                true,
                false,
                true,
                false,
                true,
                true,
            ),
            // TCP: ephemeral source port is not a NAT sign
            (
                "SIP/2.0/TCP 198.51.100.4:5060;branch=z9hG4bK1",
                "<sip:alice@198.51.100.4:5060;transport=tcp>",
                "198.51.100.4:53122",
                false,
                false,
                false,
                false,
                false,
                false,
            ),
            // TCP behind NAT
            (
                "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bK1",
                "<sip:alice@10.0.0.5:5060;transport=tcp>",
                "203.0.113.9:53122",
                true,
                true,
                false,
                true,
                true,
                false,
            ),
            // IPv6 source, direct
            (
                "SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK1;rport",
                "<sip:alice@[2001:db8::5]>",
                "[2001:db8::5]:5060",
                false,
                false,
                false,
                false,
                false,
                true,
            ),
            // IPv6 ULA behind NAT66
            (
                "SIP/2.0/UDP [fd00::5]:5060;branch=z9hG4bK1",
                "<sip:alice@[fd00::5]>",
                "[2001:db8::77]:5060",
                true,
                true,
                false,
                true,
                true,
                false,
            ),
            // domain names: Via counts as different (§18.2.1), Contact does not
            (
                "SIP/2.0/UDP ua.example.com;branch=z9hG4bK1",
                "<sip:alice@ua.example.com>",
                "198.51.100.4:5060",
                true,
                true,
                false,
                false,
                false,
                false,
            ),
        ];
        for (via, contact, src, nated, vh, vp, cp, cd, rport) in cases {
            let info = detect(&register(via, contact), sa(src));
            assert_eq!(info.is_nated(), nated, "{via} {src}");
            assert_eq!(info.via_host_differs, vh, "via host {via}");
            assert_eq!(info.via_port_differs, vp, "via port {via}");
            assert_eq!(info.contact_private, cp, "contact private {contact}");
            assert_eq!(info.contact_differs, cd, "contact differs {contact}");
            assert_eq!(info.rport_requested, rport, "rport {via}");
        }
    }

    #[test]
    fn detect_star_contact_is_not_a_sign() {
        let info = detect(
            &register("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1", "*"),
            sa("198.51.100.4:5060"),
        );
        assert_eq!(info.verdict, NatVerdict::Direct);
        assert!(!info.contact_differs);
    }

    #[test]
    fn response_target_table() {
        // (via, source, reliable, target)
        let cases = [
            // rport without value: symmetric
            (
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport",
                "203.0.113.7:40001",
                false,
                "203.0.113.7:40001",
            ),
            // rport with a value already filled by someone: still the source we saw
            (
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport=5060",
                "203.0.113.7:40001",
                false,
                "203.0.113.7:40001",
            ),
            // public UA without rport: received + sent-by port
            (
                "SIP/2.0/UDP 198.51.100.4:5070;branch=z9hG4bK1",
                "198.51.100.4:33000",
                false,
                "198.51.100.4:5070",
            ),
            // default port
            (
                "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1",
                "198.51.100.4:33000",
                false,
                "198.51.100.4:5060",
            ),
            // NATed UA without rport: the observed source
            (
                "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1",
                "203.0.113.7:40001",
                false,
                "203.0.113.7:40001",
            ),
            // TCP: the connection's peer
            (
                "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bK1",
                "203.0.113.7:40001",
                true,
                "203.0.113.7:40001",
            ),
            // IPv6
            (
                "SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bK1",
                "[2001:db8::5]:40000",
                false,
                "[2001:db8::5]:5062",
            ),
        ];
        for (via, src, reliable, want) in cases {
            let v = Via::parse(via).unwrap();
            assert_eq!(response_target(&v, sa(src), reliable), sa(want), "{via}");
        }
    }

    #[test]
    fn stamp_table() {
        let cases = [
            (
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport",
                "203.0.113.7:40001",
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;received=203.0.113.7;rport=40001",
            ),
            (
                "SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK1",
                "198.51.100.4:5060",
                "SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK1",
            ),
            (
                "SIP/2.0/UDP 198.51.100.4;rport;branch=z9hG4bK1",
                "198.51.100.4:5060",
                "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1;rport=5060",
            ),
            // a forged received is replaced
            (
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=1.2.3.4",
                "203.0.113.7:5060",
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=203.0.113.7",
            ),
            (
                "SIP/2.0/UDP [fd00::5]:5060;branch=z9hG4bK1;rport",
                "[2001:db8::77]:40000",
                "SIP/2.0/UDP [fd00::5]:5060;branch=z9hG4bK1;received=2001:db8::77;rport=40000",
            ),
            (
                "SIP/2.0/TCP ua.example.com;branch=z9hG4bK1",
                "198.51.100.4:53000",
                "SIP/2.0/TCP ua.example.com;branch=z9hG4bK1;received=198.51.100.4",
            ),
        ];
        for (via, src, want) in cases {
            assert_eq!(stamp_via(via, sa(src)).unwrap(), want, "{via}");
        }
        let v = Via::parse("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1").unwrap();
        assert!(ViaStamp::new(&v, sa("198.51.100.4:5060")).is_empty());
    }

    #[test]
    fn rewrite_contact_table() {
        let cases = [
            (
                "<sip:alice@192.168.1.10:5060>;expires=3600",
                "203.0.113.7:40001",
                None,
                "<sip:alice@203.0.113.7:40001>;expires=3600",
            ),
            (
                "\"Alice\" <sip:alice@10.0.0.5:5060;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
                "203.0.113.7:53122",
                Some("TCP"),
                "\"Alice\" <sip:alice@203.0.113.7:53122;ob;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
            ),
            (
                "sip:alice@10.0.0.5;expires=60",
                "203.0.113.7:5060",
                None,
                "<sip:alice@203.0.113.7:5060>;expires=60",
            ),
            (
                "<sip:10.0.0.5;maddr=10.0.0.9;transport=udp;lr>",
                "[2001:db8::77]:40000",
                None,
                "<sip:[2001:db8::77]:40000;lr>",
            ),
            (
                "Bob <sips:bob:pw@[fd00::5]:5061?subject=x>",
                "[::ffff:203.0.113.7]:5061",
                Some("tls"),
                "Bob <sips:bob:pw@203.0.113.7:5061;transport=tls?subject=x>",
            ),
        ];
        for (value, public, transport, want) in cases {
            let got = rewrite_contact(value, sa(public), transport).unwrap();
            assert_eq!(got, want, "{value}");
            // the result parses again
            NameAddr::parse(&got).unwrap();
        }
        assert!(rewrite_contact("*", sa("203.0.113.7:5060"), None).is_err());
        assert!(rewrite_contact("<tel:+15551234>", sa("203.0.113.7:5060"), None).is_err());
        assert!(rewrite_contact("<sip:alice@", sa("203.0.113.7:5060"), None).is_err());
    }

    #[test]
    fn transports() {
        assert!(is_reliable_transport("tcp"));
        assert!(is_reliable_transport("TLS"));
        assert!(!is_reliable_transport("UDP"));
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;
    use bytes::Bytes;
    use sbc_sip::build;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn options(via: &str) -> Message {
        let text = format!(
            "OPTIONS sip:sbc@203.0.113.1 SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlow\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:sbc@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nab"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn top_via_of_response(req: &Message) -> String {
        let mut out = Vec::new();
        build::response(req, 200, "OK", Some("t"), &mut out).finish(None, b"");
        let resp = Message::parse(Bytes::from(out)).unwrap();
        let top = resp
            .header_values(HeaderName::Via)
            .next()
            .unwrap()
            .to_owned();
        top
    }

    #[test]
    fn responses_to_a_client_that_asked_rport_carry_received_and_rport() {
        let source: SocketAddr = "198.51.100.7:40123".parse().unwrap();
        // A NATed phone: private sent-by, valueless rport.
        let req = stamp_request(
            options("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa;rport"),
            source,
        );
        assert_eq!(
            top_via_of_response(&req),
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa;received=198.51.100.7;rport=40123"
        );
        // The rest of the request is untouched: the second Via, the body.
        assert_eq!(req.header_values(HeaderName::Via).count(), 2);
        assert_eq!(req.body(), b"ab");
        // Public sent-by, rport asked: rport filled, no received (RFC 3581 §4 allows it either way).
        let req = stamp_request(
            options("SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bKb"),
            source,
        );
        assert_eq!(
            top_via_of_response(&req),
            "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKb;rport=40123"
        );
        // No rport asked and the sent-by is the source: unchanged (no cost).
        let plain = options("SIP/2.0/UDP 198.51.100.7:40123;branch=z9hG4bKc");
        let same = stamp_request(plain.clone(), source);
        assert_eq!(same.raw(), plain.raw());
        // No rport, other sent-by host: received only (RFC 3261 §18.2.1).
        let req = stamp_request(options("SIP/2.0/UDP pbx.example;branch=z9hG4bKd"), source);
        assert_eq!(
            top_via_of_response(&req),
            "SIP/2.0/UDP pbx.example;branch=z9hG4bKd;received=198.51.100.7"
        );
        // Stamped once: stamping again changes nothing.
        let again = stamp_request(req.clone(), source);
        assert_eq!(again.raw(), req.raw());
    }

    /// The quick reading of the top Via decides and writes exactly what the full parse does, for
    /// every common form; the other forms are left to the parse.
    #[test]
    fn the_quick_stamp_agrees_with_the_parsed_one() {
        let sources = [
            sa("198.51.100.7:40123"),
            sa("192.168.1.20:5060"),
            sa("[2001:db8::7]:5062"),
            sa("[::ffff:192.168.1.20]:5060"),
        ];
        let vias = [
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 192.168.1.20:5060;rport;branch=z9hG4bKb",
            "SIP/2.0/UDP 192.168.1.20;branch=z9hG4bKc",
            "SIP/2.0/UDP 198.51.100.7:5060;rport=1234;branch=z9hG4bKd",
            "SIP/2.0/TCP pbx.example:5060;branch=z9hG4bKe;received=10.0.0.1",
            "SIP/2.0/UDP pbx.example;branch=z9hG4bKf;received=10.0.0.1;rport",
            "SIP/2.0/TLS [2001:db8::7]:5062;branch=z9hG4bKg;RPORT",
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKh;maddr=10.1.1.1;ttl=3;rport",
            "SIP/2.0/UDP 192.168.1.20:5060;Branch=z9hG4bKi;Received=1.2.3.4",
        ];
        for source in sources {
            for via in vias {
                let slow = Via::parse(via).ok().and_then(|v| {
                    let asked = v.rport() == Some(None);
                    let elsewhere =
                        !host_is(&v.host, source.ip().to_canonical()) && v.received().is_none();
                    (asked || elsewhere).then(|| stamp_parsed(&v, source))
                });
                let quick = match quick_stamp(via, source) {
                    Quick::Unchanged => None,
                    Quick::Stamped(s) => Some(s),
                    Quick::Parse => panic!("{via}: left to the parse"),
                };
                assert_eq!(quick, slow, "{via} from {source}");
            }
        }
        for odd in [
            "SIP / 2.0 / UDP 192.168.1.20;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 192.168.1.20 : 5060;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 192.168.1.20;x=\"a;rport\";branch=z9hG4bKa",
        ] {
            assert_eq!(quick_stamp(odd, sources[0]), Quick::Parse, "{odd}");
        }
    }

    /// The stamp is written from one parse of the Via and spliced in without parsing it again: the
    /// stamped request reads exactly as the same bytes parsed afresh, quoted parameters included.
    #[test]
    fn a_stamped_request_reads_as_its_bytes_parsed_afresh() {
        let source: SocketAddr = "198.51.100.7:40123".parse().unwrap();
        for via in [
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 192.168.1.20:5060;x=\"q;branch=no\";rport;branch=z9hG4bKq",
            "SIP/2.0/TCP [2001:db8::7]:5060;rport;branch=z9hG4bKv6",
            "SIP/2.0/UDP pbx.example;BRANCH=z9hG4bKcase",
            "SIP/2.0/UDP 192.168.1.20:5060;rport",
        ] {
            let stamped = stamp_request(options(via), source);
            assert_ne!(stamped.top_via(), options(via).top_via(), "{via}");
            let fresh = Message::parse(stamped.raw().clone()).unwrap();
            assert_eq!(stamped.top_via(), fresh.top_via(), "{via}");
            assert_eq!(stamped.top_branch(), fresh.top_branch(), "{via}");
            assert_eq!(stamped.call_id(), fresh.call_id(), "{via}");
            assert_eq!(stamped.to_tag(), fresh.to_tag(), "{via}");
            assert_eq!(stamped.body(), fresh.body(), "{via}");
        }
    }
}
