//! ng requests: [`Request`] parsed from a decoded dictionary (liberally, as rtpengine parses them)
//! and encoded back (for the load tester), with the protocol's vocabulary as enums.
//!
//! Keys understood (each in any ASCII case, with `-`, `_` or a space between words):
//! `command`, `call-id`, `from-tag`, `to-tag`, `via-branch`, `sdp`, `label` (or `from-label`),
//! `flags`, `replace`, `rtcp-mux`, `SDES`, `direction` (or `from-interface` / `to-interface`),
//! `ICE`, `transport-protocol`, `media-address`, `address-family`, `received-from`,
//! `record-call`, `delete-delay`, `all`, `limit` (for `list`) and `rtpp-flags` (the whole option
//! string of newer clients, `key=value` and bare flags separated by spaces). Any other key is
//! listed in [`Request::ignored_keys`]. When a key comes more than once, the last value wins for
//! single values and list values add up.

use std::net::IpAddr;

use super::bencode::{self, Dict, Value};
use super::{name_eq, strip_name_prefix, EnumSet, NgError};

keywords! {
    /// An ng command (the request's `command`).
    pub enum Command {
        /// Liveness check; answered `pong`.
        Ping = "ping",
        /// SDP offer: allocate or update media and rewrite the SDP.
        Offer = "offer",
        /// SDP answer: complete the media of an offer and rewrite the SDP.
        Answer = "answer",
        /// End a call or one of its branches.
        Delete = "delete",
        /// Statistics of a call.
        Query = "query",
        /// The call-ids of current calls.
        List = "list",
        /// Start recording a call.
        StartRecording = "start recording",
        /// Stop recording a call.
        StopRecording = "stop recording",
        /// Pause recording a call.
        PauseRecording = "pause recording",
        /// Block DTMF events.
        BlockDtmf = "block DTMF",
        /// Unblock DTMF events.
        UnblockDtmf = "unblock DTMF",
        /// Block media.
        BlockMedia = "block media",
        /// Unblock media.
        UnblockMedia = "unblock media",
        /// Replace media with silence.
        SilenceMedia = "silence media",
        /// Stop replacing media with silence.
        UnsilenceMedia = "unsilence media",
        /// Start forwarding decoded media.
        StartForwarding = "start forwarding",
        /// Stop forwarding decoded media.
        StopForwarding = "stop forwarding",
        /// Play a media file into a call.
        PlayMedia = "play media",
        /// Stop playing a media file.
        StopMedia = "stop media",
        /// Inject a DTMF event.
        PlayDtmf = "play DTMF",
        /// Global statistics.
        Statistics = "statistics",
        /// Publish a media source (conferencing).
        Publish = "publish",
        /// Subscribe to a media source.
        SubscribeRequest = "subscribe request",
        /// Answer a subscription.
        SubscribeAnswer = "subscribe answer",
        /// End a subscription.
        Unsubscribe = "unsubscribe",
    }
}

impl Command {
    /// Whether the ng engine carries this command out. The others are parsed so that they can
    /// be answered with the error `unsupported` ([`NgError::Unsupported`]).
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::Ping | Self::Offer | Self::Answer | Self::Delete | Self::Query | Self::List
        )
    }
}

keywords! {
    /// A flag of the `flags` list. Unknown flags are kept in [`Request::other_flags`].
    pub enum Flag {
        /// Use the addresses of the SDP, not the SIP source address.
        TrustAddress = "trust-address",
        /// Use the SIP source address (`received-from`), not the SDP's.
        SipSourceAddress = "SIP-source-address",
        /// The endpoint uses symmetric RTP (the default).
        Symmetric = "symmetric",
        /// The endpoint uses asymmetric RTP: do not learn its address from received media.
        Asymmetric = "asymmetric",
        /// After learning, drop media from any other source.
        StrictSource = "strict-source",
        /// After learning, follow a source that moves instead of dropping its media.
        MediaHandover = "media-handover",
        /// Keep the local ports when the remote port changes.
        PortLatching = "port-latching",
        /// Change the local ports when the remote port changes, even with ICE.
        NoPortLatching = "no-port-latching",
        /// Omit `a=rtcp` from the rewritten SDP.
        NoRtcpAttribute = "no-rtcp-attribute",
        /// Write `a=rtcp` with the address, not only the port.
        FullRtcpAttribute = "full-rtcp-attribute",
        /// Mark the rewritten SDP and leave an already marked SDP alone (signalling loops).
        LoopProtect = "loop-protect",
        /// The SDP is a fragment (trickle ICE).
        Fragment = "fragment",
        /// Apply to every branch or party (`delete`: the whole call).
        All = "all",
        /// Errors such as an unknown call-id are errors, not warnings (`delete`).
        Fatal = "fatal",
        /// Record the call.
        RecordCall = "record-call",
        /// Reject the ICE of the offer.
        RejectIce = "reject-ICE" | "ICE-reject",
        /// Advertise trickle ICE.
        TrickleIce = "trickle-ICE",
        /// Add `a=mid` where missing.
        GenerateMid = "generate-mid",
        /// Consume RTCP and generate it.
        GenerateRtcp = "generate-RTCP",
        /// Keep the direction attributes of the received SDP.
        OriginalSendrecv = "original-sendrecv",
        /// Keep only the first codec of an answer.
        SingleCodec = "single-codec",
        /// Forget learned ICE and SRTP support of the endpoint.
        Reset = "reset",
        /// The offer is directional (one way).
        Directional = "directional",
        /// Send nothing to an endpoint before media came from it.
        NatWait = "NAT-wait",
        /// Send empty packets to open the NAT binding.
        PierceNat = "pierce-NAT",
        /// Remove `a=extmap` attributes.
        StripExtmap = "strip-extmap",
        /// Relay one-way media in the fast path too.
        Unidirectional = "unidirectional",
        /// Start the audio player on the offer.
        EarlyMedia = "early-media",
        /// Log this call at debug level.
        Debug = "debug" | "debugging",
        /// Keep the codecs chosen earlier.
        ReuseCodecs = "reuse-codecs" | "no-codec-renegotiation",
        /// Keep `=` padding in SDES keys.
        PadCrypto = "pad-crypto",
    }
}

keywords! {
    /// A part of the SDP to rewrite (the `replace` list, or `replace-` flags).
    pub enum Replace {
        /// The address of the `o=` line.
        Origin = "origin",
        /// The whole `o=` line.
        OriginFull = "origin-full",
        /// The session-level `c=` line.
        SessionConnection = "session-connection",
        /// The `s=` line.
        SessionName = "session-name",
        /// The SDP version of `o=`, increased on change.
        SdpVersion = "SDP-version",
        /// The username of `o=`.
        Username = "username",
        /// Zero addresses (old-style hold).
        ZeroAddress = "zero-address",
        /// Increase the SDP version even without change.
        ForceIncrementSdpVersion = "force-increment-sdp-ver",
    }
}

keywords! {
    /// An rtcp-mux option (RFC 5761; the `rtcp-mux` list, or `rtcp-mux-` flags).
    pub enum RtcpMux {
        /// Offer rtcp-mux even if the client did not.
        Offer = "offer",
        /// Do not offer the client's rtcp-mux onward, but accept it back.
        Demux = "demux",
        /// Accept rtcp-mux and offer it onward.
        Accept = "accept",
        /// Reject offered rtcp-mux.
        Reject = "reject",
        /// Require rtcp-mux (no separate RTCP port, even in an offer).
        Require = "require",
    }
}

keywords! {
    /// ICE handling (the `ICE` key).
    pub enum Ice {
        /// Strip ICE attributes.
        Remove = "remove",
        /// Strip them and insert the relay as the only candidate.
        Force = "force",
        /// Like `force` if the SDP had ICE, else nothing.
        Default = "default",
        /// Add the relay as a low-priority candidate.
        Optional = "optional",
        /// Keep candidates except relays and insert the relay as a `relay` candidate.
        ForceRelay = "force-relay",
    }
}

keywords! {
    /// The transport protocol to write in the SDP (the `transport-protocol` key).
    pub enum TransportProtocol {
        /// Plain RTP.
        RtpAvp = "RTP/AVP",
        /// SRTP.
        RtpSavp = "RTP/SAVP",
        /// RTP with feedback.
        RtpAvpf = "RTP/AVPF",
        /// SRTP with feedback.
        RtpSavpf = "RTP/SAVPF",
        /// DTLS-SRTP.
        UdpTlsRtpSavp = "UDP/TLS/RTP/SAVP",
        /// DTLS-SRTP with feedback.
        UdpTlsRtpSavpf = "UDP/TLS/RTP/SAVPF",
        /// In an answer: take the protocol the answerer chose.
        Accept = "accept",
    }
}

keywords! {
    /// An address family as the ng protocol spells it.
    pub enum AddressFamily {
        /// IPv4.
        Ip4 = "IP4",
        /// IPv6.
        Ip6 = "IP6",
    }
}

keywords! {
    /// A key of the request dictionary.
    enum Key {
        Command = "command",
        CallId = "call-id",
        FromTag = "from-tag",
        ToTag = "to-tag",
        ViaBranch = "via-branch",
        Sdp = "sdp",
        Label = "label" | "from-label",
        Flags = "flags",
        Replace = "replace",
        RtcpMux = "rtcp-mux",
        Sdes = "SDES",
        Direction = "direction",
        FromInterface = "from-interface",
        ToInterface = "to-interface",
        Ice = "ICE",
        TransportProtocol = "transport-protocol",
        MediaAddress = "media-address",
        AddressFamily = "address-family",
        ReceivedFrom = "received-from",
        RecordCall = "record-call",
        DeleteDelay = "delete-delay",
        All = "all",
        Limit = "limit",
        RtppFlags = "rtpp-flags",
    }
}

/// A request field whose absence makes a request invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `sdp` (offer, answer).
    Sdp,
    /// `call-id` (offer, answer, delete, query).
    CallId,
    /// `from-tag` (offer, answer).
    FromTag,
    /// `to-tag` (answer).
    ToTag,
}

/// The SIP source of the message that carried the SDP (`received-from`): `[family, address]`,
/// or the address alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedFrom {
    /// The family given, if any.
    pub family: Option<AddressFamily>,
    /// The address.
    pub address: IpAddr,
}

/// An ng request. Byte strings borrow from the datagram. Build one with [`Request::new`] and the
/// public fields to encode it; [`super::Codec::parse_request`] makes one from a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The command.
    pub command: Command,
    /// SIP Call-ID.
    pub call_id: Option<&'a [u8]>,
    /// SIP From tag (for an answer: of the side that sent the offer).
    pub from_tag: Option<&'a [u8]>,
    /// SIP To tag.
    pub to_tag: Option<&'a [u8]>,
    /// SIP Via branch, to tell forked branches apart.
    pub via_branch: Option<&'a [u8]>,
    /// The SDP body to rewrite.
    pub sdp: Option<&'a [u8]>,
    /// A free label for this party (`label` or `from-label`).
    pub label: Option<&'a [u8]>,
    /// Known flags, from `flags`, `rtpp-flags` and the `all` key.
    pub flags: EnumSet<Flag>,
    /// Flags (and `replace` or `rtcp-mux` options) not recognised, as given: the caller may warn;
    /// the encoder writes them in `flags` as given.
    pub other_flags: Vec<&'a [u8]>,
    /// SDP parts to rewrite, from `replace` and `replace-` flags.
    pub replace: EnumSet<Replace>,
    /// rtcp-mux options, from `rtcp-mux` and `rtcp-mux-` flags.
    pub rtcp_mux: EnumSet<RtcpMux>,
    /// SDES options as given (`off`, `no-AES_CM_128_HMAC_SHA1_32`, ...), from `SDES` and `SDES-`
    /// flags.
    pub sdes: Vec<&'a [u8]>,
    /// Interfaces: where the message came from, where it goes (`direction`).
    pub direction: [Option<&'a [u8]>; 2],
    /// ICE handling.
    pub ice: Option<Ice>,
    /// Transport protocol to write in the SDP.
    pub transport_protocol: Option<TransportProtocol>,
    /// Address to use instead of the SDP's and the source's.
    pub media_address: Option<IpAddr>,
    /// Address family to write in the SDP.
    pub address_family: Option<AddressFamily>,
    /// SIP source of the message.
    pub received_from: Option<ReceivedFrom>,
    /// Record the call (`yes`/`on`) or not (`no`/`off`).
    pub record_call: Option<bool>,
    /// Seconds to keep a deleted call (`delete`); 0 deletes at once.
    pub delete_delay: Option<i64>,
    /// Most call-ids to return (`list`).
    pub limit: Option<u64>,
    /// Keys not understood, as given.
    pub ignored_keys: Vec<&'a [u8]>,
    /// Keys understood whose value could not be used (wrong type, unknown keyword, bad address).
    pub invalid_values: Vec<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// An empty request for `command`.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            call_id: None,
            from_tag: None,
            to_tag: None,
            via_branch: None,
            sdp: None,
            label: None,
            flags: EnumSet::new(),
            other_flags: Vec::new(),
            replace: EnumSet::new(),
            rtcp_mux: EnumSet::new(),
            sdes: Vec::new(),
            direction: [None, None],
            ice: None,
            transport_protocol: None,
            media_address: None,
            address_family: None,
            received_from: None,
            record_call: None,
            delete_delay: None,
            limit: None,
            ignored_keys: Vec::new(),
            invalid_values: Vec::new(),
        }
    }

    /// Read a request from its decoded dictionary, then check that the fields its command needs
    /// are there. Unsupported commands are read but not checked.
    pub fn from_dict(dict: Dict<'a, '_>) -> Result<Self, NgError> {
        let command = dict
            .iter()
            .find(|(k, _)| name_eq(k, "command"))
            .and_then(|(_, v)| v.as_bytes())
            .ok_or(NgError::NoCommand)?;
        let command = Command::parse(command).ok_or(NgError::UnknownCommand)?;
        let mut request = Self::new(command);
        for (key, value) in dict.iter() {
            request.apply(key, value);
        }
        request.check()?;
        Ok(request)
    }

    /// The first field the command requires that is missing, in rtpengine's order.
    fn check(&self) -> Result<(), NgError> {
        let need: &[Field] = match self.command {
            Command::Offer => &[Field::Sdp, Field::CallId, Field::FromTag],
            Command::Answer => &[Field::Sdp, Field::CallId, Field::FromTag, Field::ToTag],
            Command::Delete | Command::Query => &[Field::CallId],
            _ => &[],
        };
        for &field in need {
            let present = match field {
                Field::Sdp => self.sdp.is_some(),
                Field::CallId => self.call_id.is_some(),
                Field::FromTag => self.from_tag.is_some(),
                Field::ToTag => self.to_tag.is_some(),
            };
            if !present {
                return Err(NgError::Missing(field));
            }
        }
        Ok(())
    }

    /// Apply one dictionary pair.
    fn apply(&mut self, key: &'a [u8], value: Value<'a, '_>) {
        let Some(known) = Key::parse(key) else {
            self.ignored_keys.push(key);
            return;
        };
        let ok = match known {
            Key::Command => true,
            Key::CallId => set_str(&mut self.call_id, value),
            Key::FromTag => set_str(&mut self.from_tag, value),
            Key::ToTag => set_str(&mut self.to_tag, value),
            Key::ViaBranch => set_str(&mut self.via_branch, value),
            Key::Sdp => set_str(&mut self.sdp, value),
            Key::Label => set_str(&mut self.label, value),
            Key::Flags => for_each_str(value, |s| self.apply_flag(s)),
            Key::Replace => for_each_str(value, |s| match Replace::parse(s) {
                Some(r) => self.replace.insert(r),
                None => self.other_flags.push(s),
            }),
            Key::RtcpMux => for_each_str(value, |s| match RtcpMux::parse(s) {
                Some(r) => self.rtcp_mux.insert(r),
                None => self.other_flags.push(s),
            }),
            Key::Sdes => for_each_str(value, |s| self.sdes.push(s)),
            Key::Direction => self.set_direction(value),
            Key::FromInterface => set_str(&mut self.direction[0], value),
            Key::ToInterface => set_str(&mut self.direction[1], value),
            Key::Ice => set_keyword(&mut self.ice, value, Ice::parse),
            Key::TransportProtocol => set_keyword(
                &mut self.transport_protocol,
                value,
                TransportProtocol::parse,
            ),
            Key::AddressFamily => {
                set_keyword(&mut self.address_family, value, AddressFamily::parse)
            }
            Key::MediaAddress => match value.as_bytes().and_then(parse_ip) {
                Some(ip) => {
                    self.media_address = Some(ip);
                    true
                }
                None => false,
            },
            Key::ReceivedFrom => self.set_received_from(value),
            Key::RecordCall => match value.as_bytes().and_then(parse_yes_no) {
                Some(b) => {
                    self.record_call = Some(b);
                    true
                }
                None => false,
            },
            Key::DeleteDelay => match int_value(value) {
                Some(v) => {
                    self.delete_delay = Some(v);
                    true
                }
                None => false,
            },
            Key::Limit => match int_value(value).and_then(|v| u64::try_from(v).ok()) {
                Some(v) => {
                    self.limit = Some(v);
                    true
                }
                None => false,
            },
            Key::All => match value.as_bytes() {
                Some(s) if name_eq(s, "all") => {
                    self.flags.insert(Flag::All);
                    true
                }
                Some(s) if name_eq(s, "none") => true,
                _ => false,
            },
            Key::RtppFlags => match value.as_bytes() {
                Some(s) => {
                    self.apply_rtpp_flags(s);
                    true
                }
                None => false,
            },
        };
        if !ok {
            self.invalid_values.push(key);
        }
    }

    /// One entry of `flags`, with rtpengine's prefixed aliases for other lists.
    fn apply_flag(&mut self, raw: &'a [u8]) {
        if let Some(flag) = Flag::parse(raw) {
            self.flags.insert(flag);
        } else if let Some(r) = strip_name_prefix(raw, "replace-").and_then(Replace::parse) {
            self.replace.insert(r);
        } else if let Some(r) = strip_name_prefix(raw, "rtcp-mux-").and_then(RtcpMux::parse) {
            self.rtcp_mux.insert(r);
        } else if let Some(option) = strip_name_prefix(raw, "SDES-") {
            self.sdes.push(option);
        } else {
            self.other_flags.push(raw);
        }
    }

    /// `rtpp-flags`: space-separated tokens, each `key=value` (a dictionary pair with a string
    /// value), a transport protocol (`RTP/AVP`, ...) or a flag.
    fn apply_rtpp_flags(&mut self, all: &'a [u8]) {
        for token in all.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            if let Some(eq) = token.iter().position(|&b| b == b'=') {
                let (key, rest) = token.split_at(eq);
                let value = rest.get(1..).unwrap_or_default();
                if Key::parse(key) == Some(Key::RtppFlags) {
                    // Not applied: `rtpp-flags=rtpp-flags=...` would recurse once per level.
                    self.invalid_values.push(key);
                    continue;
                }
                self.apply(key, Value::Bytes(value));
            } else if let Some(proto) = TransportProtocol::parse(token) {
                self.transport_protocol = Some(proto);
            } else {
                self.apply_flag(token);
            }
        }
    }

    /// `direction`: a list of two interface names; a single string fills the next free slot (so
    /// `direction=in direction=out` in `rtpp-flags` works).
    fn set_direction(&mut self, value: Value<'a, '_>) -> bool {
        match value {
            Value::List(list) => {
                let mut ok = true;
                for (slot, item) in self.direction.iter_mut().zip(list.iter()) {
                    ok &= set_str(slot, item);
                }
                ok
            }
            Value::Bytes(name) => match self.direction.iter_mut().find(|d| d.is_none()) {
                Some(slot) => {
                    *slot = Some(name);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// `received-from`: `[family, address]`, or the address alone.
    fn set_received_from(&mut self, value: Value<'a, '_>) -> bool {
        let parsed = match value {
            Value::List(list) => {
                let mut items = list.iter();
                let family = items.next().and_then(|v| v.as_bytes());
                let address = items.next().and_then(|v| v.as_bytes()).and_then(parse_ip);
                address.map(|address| ReceivedFrom {
                    family: family.and_then(AddressFamily::parse),
                    address,
                })
            }
            Value::Bytes(s) => parse_ip(s).map(|address| ReceivedFrom {
                family: None,
                address,
            }),
            _ => None,
        };
        self.received_from = parsed.or(self.received_from);
        parsed.is_some()
    }

    /// Encode the request dictionary (without cookie) into `out`. Keys are written in bencode's
    /// canonical (sorted) order, with their canonical spelling; empty fields are left out.
    pub fn encode(&self, out: &mut Vec<u8>) {
        bencode::dict(out, |d| {
            if let Some(ice) = self.ice {
                d.bytes("ICE", ice.name().as_bytes());
            }
            if !self.sdes.is_empty() {
                d.list("SDES", |l| {
                    for s in &self.sdes {
                        l.bytes(s);
                    }
                });
            }
            if let Some(family) = self.address_family {
                d.bytes("address-family", family.name().as_bytes());
            }
            d.opt_bytes("call-id", self.call_id);
            d.bytes("command", self.command.name().as_bytes());
            if let Some(delay) = self.delete_delay {
                d.int("delete-delay", delay);
            }
            if let [Some(from), Some(to)] = self.direction {
                d.list("direction", |l| {
                    l.bytes(from).bytes(to);
                });
            }
            let [from_interface, to_interface] = match self.direction {
                [Some(_), Some(_)] => [None, None],
                one => one,
            };
            if !self.flags.is_empty() || !self.other_flags.is_empty() {
                d.list("flags", |l| {
                    for flag in self.flags.members(Flag::ALL) {
                        l.bytes(flag.name().as_bytes());
                    }
                    for raw in &self.other_flags {
                        l.bytes(raw);
                    }
                });
            }
            d.opt_bytes("from-interface", from_interface);
            d.opt_bytes("from-tag", self.from_tag);
            d.opt_bytes("label", self.label);
            if let Some(limit) = self.limit {
                d.uint("limit", limit);
            }
            if let Some(ip) = self.media_address {
                d.bytes("media-address", ip_text(&ip).as_bytes());
            }
            if let Some(rf) = self.received_from {
                let family = rf.family.unwrap_or(match rf.address {
                    IpAddr::V4(_) => AddressFamily::Ip4,
                    IpAddr::V6(_) => AddressFamily::Ip6,
                });
                d.list("received-from", |l| {
                    l.bytes(family.name().as_bytes())
                        .bytes(ip_text(&rf.address).as_bytes());
                });
            }
            if let Some(record) = self.record_call {
                d.bytes("record-call", if record { b"yes" } else { b"no" });
            }
            if !self.replace.is_empty() {
                d.list("replace", |l| {
                    for r in self.replace.members(Replace::ALL) {
                        l.bytes(r.name().as_bytes());
                    }
                });
            }
            if !self.rtcp_mux.is_empty() {
                d.list("rtcp-mux", |l| {
                    for r in self.rtcp_mux.members(RtcpMux::ALL) {
                        l.bytes(r.name().as_bytes());
                    }
                });
            }
            d.opt_bytes("sdp", self.sdp);
            d.opt_bytes("to-interface", to_interface);
            d.opt_bytes("to-tag", self.to_tag);
            if let Some(proto) = self.transport_protocol {
                d.bytes("transport-protocol", proto.name().as_bytes());
            }
            d.opt_bytes("via-branch", self.via_branch);
        });
    }
}

/// The text form of an address, on the stack (an IPv6 address is at most 45 characters).
fn ip_text(ip: &IpAddr) -> IpText {
    use std::io::Write;
    let mut text = IpText {
        buf: [0; 48],
        len: 0,
    };
    let mut cursor = std::io::Cursor::new(text.buf.as_mut_slice());
    // The buffer holds any address, so the write cannot fail; an error would leave it empty.
    if write!(cursor, "{ip}").is_ok() {
        text.len = usize::try_from(cursor.position()).unwrap_or(0);
    }
    text
}

struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Store a byte-string value; false for any other type.
fn set_str<'a>(slot: &mut Option<&'a [u8]>, value: Value<'a, '_>) -> bool {
    match value.as_bytes() {
        Some(s) => {
            *slot = Some(s);
            true
        }
        None => false,
    }
}

/// Store a keyword value; false for an unknown keyword or another type.
fn set_keyword<K>(
    slot: &mut Option<K>,
    value: Value<'_, '_>,
    parse: impl Fn(&[u8]) -> Option<K>,
) -> bool {
    match value.as_bytes().and_then(parse) {
        Some(k) => {
            *slot = Some(k);
            true
        }
        None => false,
    }
}

/// Call `f` on each string of a list value, or on each comma-separated part of a string value.
/// False when the value (or an element) is of another type.
fn for_each_str<'a>(value: Value<'a, '_>, mut f: impl FnMut(&'a [u8])) -> bool {
    match value {
        Value::List(list) => {
            let mut ok = true;
            for item in list.iter() {
                match item.as_bytes() {
                    Some(s) => f(s),
                    None => ok = false,
                }
            }
            ok
        }
        Value::Bytes(s) => {
            for part in s.split(|&b| b == b',').filter(|p| !p.is_empty()) {
                f(part);
            }
            true
        }
        _ => false,
    }
}

/// An integer given as an integer or as a decimal string (optionally signed).
fn int_value(value: Value<'_, '_>) -> Option<i64> {
    match value {
        Value::Int(v) => Some(v),
        Value::Bytes(s) => {
            let text = std::str::from_utf8(s).ok()?;
            text.trim().parse().ok()
        }
        _ => None,
    }
}

/// An IPv4 or IPv6 address in text form; IPv6 may be bracketed.
fn parse_ip(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse().ok()
}

fn parse_yes_no(raw: &[u8]) -> Option<bool> {
    if name_eq(raw, "yes") || name_eq(raw, "on") {
        Some(true)
    } else if name_eq(raw, "no") || name_eq(raw, "off") {
        Some(false)
    } else {
        None
    }
}
