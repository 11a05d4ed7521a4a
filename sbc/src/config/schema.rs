//! The serde structs of the file: one `…Section` per TOML table, with the defaults of every key and
//! the small value types (addresses, secrets, days and hours). Nothing here checks one key against
//! another ([`super::validate`]) or builds `sbc-core` types ([`super::convert`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use sbc_core::routing::TimeWindow;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Worker threads; `None` means one per core.
    #[serde(default)]
    pub(crate) workers: Option<usize>,
    #[serde(default)]
    pub(crate) sip: SipSection,
    #[serde(default)]
    pub(crate) tls: TlsSection,
    #[serde(default)]
    pub(crate) transport: TransportSection,
    #[serde(default)]
    pub(crate) outside: OutsideSection,
    #[serde(default)]
    pub(crate) inside: InsideSection,
    /// `[[target_group]]` tables.
    #[serde(default, rename = "target_group")]
    pub(crate) target_groups: Vec<TargetGroupSection>,
    /// `[[trunk]]` tables.
    #[serde(default, rename = "trunk")]
    pub(crate) trunks: Vec<TrunkSection>,
    /// `[[route]]` tables, in order of precedence for equal prefixes.
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteSection>,
    #[serde(default)]
    pub(crate) numbers: NumbersSection,
    #[serde(default)]
    pub(crate) registrar: RegistrarSection,
    #[serde(default)]
    pub(crate) media: MediaSection,
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    #[serde(default)]
    pub(crate) topology: TopologySection,
    #[serde(default)]
    pub(crate) api: super::api::ApiSection,
    #[serde(default)]
    pub(crate) guard: super::guard::GuardSection,
    #[serde(default)]
    pub(crate) codecs: super::codecs::CodecsSection,
    #[serde(default)]
    pub(crate) srtp: super::srtp::SrtpSection,
    /// `[dtmf]`: the DTMF mode of each side (see `config/dtmf.rs`).
    #[serde(default)]
    pub(crate) dtmf: super::dtmf::DtmfSection,
    /// `[[rules]]` tables and `[fraud]` (see `config/rules.rs`).
    #[serde(default)]
    pub(crate) rules: Vec<super::rules::RuleSection>,
    #[serde(default)]
    pub(crate) fraud: super::rules::FraudSection,
    /// `[cdr]` and `[events]` (see `config/cdr.rs`).
    #[serde(default)]
    pub(crate) cdr: super::cdr::CdrSection,
    #[serde(default)]
    pub(crate) events: super::cdr::EventsSection,
}

/// `[sip]`: listen addresses per transport.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipSection {
    #[serde(default)]
    pub(crate) udp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tcp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tls: Vec<SocketAddr>,
}

/// `[tls]`: certificate chain and key of the listeners, and what the connections the SBC opens
/// trust and present; PEM files.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    /// Roots trusted for the servers the SBC connects to; `None`: the system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// Certificate and key presented to servers that ask for one (mutual TLS).
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

/// Which IO driver the workers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DriverChoice {
    /// io_uring when available, else epoll.
    #[default]
    Auto,
    /// io_uring requested explicitly (falls back to epoll with a log line when unavailable).
    IoUring,
    /// epoll and recvmmsg.
    Epoll,
}

impl std::str::FromStr for DriverChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(Self::IoUring),
            "epoll" => Ok(Self::Epoll),
            other => Err(format!(
                "unknown driver {other:?} (expected auto, io_uring or epoll)"
            )),
        }
    }
}

/// `[transport]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TransportSection {
    pub(crate) driver: DriverChoice,
    pub(crate) tcp_max_connections: usize,
    pub(crate) tcp_idle_timeout_secs: u64,
    /// Connections accepted from one source IP address (per worker).
    pub(crate) tcp_max_connections_per_source: usize,
    /// A TLS connection whose handshake is not done this long after it was opened is closed.
    pub(crate) tls_handshake_timeout_secs: u64,
    pub(crate) max_message_size: usize,
    /// io_uring: how long a worker that woke for one completion may wait for more before it
    /// handles them (0: handle each at once). Trades that much latency for fewer wake-ups.
    pub(crate) batch_wait_us: u32,
}

impl Default for TransportSection {
    fn default() -> Self {
        Self {
            driver: DriverChoice::Auto,
            tcp_max_connections: 4096,
            tcp_idle_timeout_secs: 120,
            tcp_max_connections_per_source: 32,
            tls_handshake_timeout_secs: 10,
            max_message_size: 65535,
            batch_wait_us: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// B2BUA sections
// ---------------------------------------------------------------------------------------------

/// `[outside]`: the public side.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct OutsideSection {
    /// The IP written in Via, Contact and SDP toward the outside; default the first SIP listen IP.
    pub(crate) advertised_address: Option<IpAddr>,
}

/// `[inside]`: the private side (the PBX).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct InsideSection {
    /// The SBC's own address toward the PBX.
    pub(crate) address: IpAddr,
    /// UDP port for requests the PBX starts (calls toward trunks); worker `w` also owns port
    /// `port + 1 + w`, which it uses for all its traffic toward the inside.
    pub(crate) port: u16,
    /// Names of the target groups that make up the inside (the PBX and inside gateways).
    pub(crate) targets: Vec<Spanned<String>>,
}

impl Default for InsideSection {
    fn default() -> Self {
        Self {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5080,
            targets: Vec::new(),
        }
    }
}

/// A transport name: `"udp"`, `"tcp"` or `"tls"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportName {
    #[default]
    Udp,
    Tcp,
    Tls,
}

fn default_weight() -> u16 {
    100
}
fn default_probe_timeout() -> u64 {
    5
}

fn default_interval() -> u64 {
    10
}
fn default_down_after() -> u32 {
    3
}
fn default_up_after() -> u32 {
    2
}
fn default_register_expires() -> u64 {
    3600
}

fn default_trunk_options_interval() -> u64 {
    10
}

/// One member of a `[[target_group]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetSection {
    pub(crate) address: SocketAddr,
    #[serde(default)]
    pub(crate) transport: TransportName,
    #[serde(default)]
    pub(crate) priority: u8,
    #[serde(default = "default_weight")]
    pub(crate) weight: u16,
    /// TLS: the name the target's certificate must carry (also sent as SNI); default its IP.
    #[serde(default)]
    pub(crate) server_name: Option<String>,
}

/// `[[target_group]]`: inside destinations with their OPTIONS health check.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetGroupSection {
    pub(crate) name: String,
    pub(crate) targets: Vec<TargetSection>,
    #[serde(default = "default_interval")]
    pub(crate) options_interval_secs: u64,
    /// A probe not answered within this long counts as failed.
    #[serde(default = "default_probe_timeout")]
    pub(crate) options_timeout_secs: u64,
    #[serde(default = "default_down_after")]
    pub(crate) down_after: u32,
    #[serde(default = "default_up_after")]
    pub(crate) up_after: u32,
    /// Probe only members that are down (taken down by a failed call).
    #[serde(default)]
    pub(crate) probe_only_down: bool,
    /// The group's own `limits.first_response_ms`.
    #[serde(default)]
    pub(crate) first_response_ms: Option<u64>,
    /// SRTP mode of the legs toward the group (over `[srtp]`).
    #[serde(default)]
    pub(crate) srtp: Option<String>,
    /// Codec policy of the legs toward the group (over `[codecs.<side>]`).
    #[serde(default)]
    pub(crate) codecs: Option<super::codecs::CodecPolicySection>,
    /// DTMF mode of the legs toward the group (over `[dtmf]`).
    #[serde(default)]
    pub(crate) dtmf: Option<String>,
}

/// A secret from the file; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for computing digest responses only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// An IP network (`10.0.0.0/8`) or a single address (`192.0.2.7`), as the file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Cidr(pub(crate) sbc_core::cidr::Cidr);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Self)
            .map_err(|e| format!("addresses: {s:?} is not an IP address or CIDR network: {e}"))
    }
}

/// `outbound = { proxy = "ip:port" }` of a trunk: where calls toward the carrier are sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutboundSection {
    pub(crate) proxy: SocketAddr,
}

/// One entry of `number_rules`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NumberRuleSection {
    pub(crate) prefix: String,
    pub(crate) strip: usize,
    pub(crate) prepend: String,
    pub(crate) min_len: Option<usize>,
    pub(crate) max_len: Option<usize>,
}

/// `[[trunk]]`: a carrier or customer trunk.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkSection {
    pub(crate) name: String,
    /// Source ACL: calls from these addresses are recognised as coming from the trunk.
    #[serde(default)]
    pub(crate) addresses: Vec<Cidr>,
    #[serde(default)]
    pub(crate) transport: TransportName,
    /// TLS: the name the outbound proxy's certificate must carry (also sent as SNI); default its IP.
    #[serde(default)]
    pub(crate) server_name: Option<String>,
    /// Where calls from the trunk go.
    #[serde(default)]
    pub(crate) target_group: Option<Spanned<String>>,
    /// Where calls toward the trunk are sent.
    #[serde(default)]
    pub(crate) outbound: Option<OutboundSection>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    #[serde(default)]
    pub(crate) register: bool,
    #[serde(default = "default_register_expires")]
    pub(crate) register_expires: u64,
    /// OPTIONS probes of the outbound proxy, seconds; 0: not probed.
    #[serde(default = "default_trunk_options_interval")]
    pub(crate) options_interval_secs: u64,
    /// Whether P-Asserted-Identity from the trunk is trusted.
    #[serde(default)]
    pub(crate) trusted: bool,
    #[serde(default)]
    pub(crate) number_rules: Vec<NumberRuleSection>,
    /// SRTP mode of the legs toward the trunk (over `[srtp]`).
    #[serde(default)]
    pub(crate) srtp: Option<String>,
    /// Codec policy of the legs toward the trunk (over `[codecs.<side>]`).
    #[serde(default)]
    pub(crate) codecs: Option<super::codecs::CodecPolicySection>,
    /// DTMF mode of the legs toward the trunk (over `[dtmf]`).
    #[serde(default)]
    pub(crate) dtmf: Option<String>,
}

/// Days of the week, as a bit set of [`TimeWindow::days`]: `"mon-fri"`, `"sat,sun"` or a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Days(pub(crate) u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<u8> {
    let s = s.trim().to_ascii_lowercase();
    let i = DAY_NAMES
        .iter()
        .position(|d| s.get(..3).is_some_and(|p| d.starts_with(p)))?;
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (s.len() == 3 || full.get(i) == Some(&s.as_str())).then_some(i as u8)
}

impl Days {
    pub(super) fn parse_items<'a>(
        items: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let mut bits = 0u8;
        for item in items {
            let item = item.trim();
            let bad = || {
                format!(
                    "days: {item:?} is not a day or day range (expected e.g. \"mon-fri\", \
                     \"sat,sun\", \"all\" or [\"mon\", \"wed\"])"
                )
            };
            if item.eq_ignore_ascii_case("all") {
                bits |= TimeWindow::ALL_DAYS;
                continue;
            }
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day_index(a).ok_or_else(bad)?, day_index(b).ok_or_else(bad)?);
                    // A range may wrap the week ("fri-mon").
                    let mut d = a;
                    loop {
                        bits |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => bits |= 1 << day_index(item).ok_or_else(bad)?,
            }
        }
        if bits == 0 {
            return Err("days: no day given".into());
        }
        Ok(Self(bits))
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Days;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("days as a string (\"mon-fri\") or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Days, E> {
                Days::parse_items(v.split(',')).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Days, A::Error> {
                let mut items: Vec<String> = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    items.push(s);
                }
                Days::parse_items(items.iter().map(String::as_str))
                    .map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A daily time window `"HH:MM-HH:MM"` in minutes since midnight; wraps midnight when the end is
/// before the start, `"00:00-24:00"` is the whole day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Hours {
    pub(crate) start_min: u16,
    pub(crate) end_min: u16,
}

impl TryFrom<String> for Hours {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || {
            format!("hours: {s:?} is not a time window (expected \"HH:MM-HH:MM\", e.g. \"08:00-18:00\")")
        };
        let hm = |t: &str, end: bool| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            match (h, m) {
                (24, 0) if end => Some(1440),
                (0..=23, 0..=59) => Some(h * 60 + m),
                _ => None,
            }
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (hm(a, false).ok_or_else(bad)?, hm(b, true).ok_or_else(bad)?);
        if start == end {
            return Err(format!(
                "hours: {s:?} is empty (use \"00:00-24:00\" for the whole day)"
            ));
        }
        if end == 1440 && start == 0 {
            return Ok(Self {
                start_min: 0,
                end_min: 0,
            });
        }
        Ok(Self {
            start_min: start,
            end_min: end % 1440,
        })
    }
}

/// `[[route]]`: one routing rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    pub(crate) name: String,
    /// `"any"` (default), `"outside"`, `"inside"` or `"trunk:<name>"`.
    #[serde(default)]
    pub(crate) from: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) days: Option<Days>,
    #[serde(default)]
    pub(crate) hours: Option<Hours>,
    #[serde(default)]
    pub(crate) target_group: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) trunk: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) number_rules: Vec<NumberRuleSection>,
}

/// `[numbers]`: the local numbering plan.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NumbersSection {
    /// Country calling code without `+` (`"49"`); empty means numbers are not converted to E.164.
    pub(crate) country_code: String,
    pub(crate) national_prefix: String,
    pub(crate) international_prefix: String,
}

impl Default for NumbersSection {
    fn default() -> Self {
        Self {
            country_code: String::new(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }
}

/// `[registrar]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RegistrarSection {
    pub(crate) capacity: usize,
    pub(crate) nat_expires_secs: u64,
    pub(crate) min_expires_secs: u64,
    pub(crate) max_expires_secs: u64,
    pub(crate) keepalive_interval_secs: u64,
    /// Where the registrations are stored across a restart; empty: not stored.
    pub(crate) state_file: String,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            nat_expires_secs: 60,
            min_expires_secs: 60,
            max_expires_secs: 3600,
            keepalive_interval_secs: 25,
            state_file: String::new(),
        }
    }
}

/// `[media]`: RTP/RTCP relay ports.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MediaSection {
    /// Anchor the media of every call (rewrite SDP, relay RTP/RTCP); `false`: SDP passes through.
    pub(crate) enabled: bool,
    /// The address media sockets use; default the outside advertised address.
    pub(crate) address: Option<IpAddr>,
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
    /// A call with no RTP/RTCP on any leg for this long is ended (BYE both ways); 0: never.
    pub(crate) no_media_timeout_secs: u64,
    /// `strict`: after latching, packets from any other source are dropped; `loose`: they are
    /// forwarded, but never move the leg's destination outside a learning window.
    pub(crate) latching: Latching,
    /// Length of the learning window opened at each offer/answer.
    pub(crate) latch_window_secs: u64,
    /// The rtpengine "ng" control socket (UDP), served by worker 0; none by default. A loopback
    /// address unless `ng_allow_public`.
    pub(crate) ng_listen: Option<SocketAddr>,
    /// Allow `ng_listen` on an address that is not loopback (the ng protocol has no
    /// authentication: keep it on a private network, with `ng_allowed` naming the proxies).
    pub(crate) ng_allow_public: bool,
    /// Sources whose ng commands are answered; others are dropped and counted.
    pub(crate) ng_allowed: Vec<Cidr>,
    /// Most streams (`m=` lines) relayed for a call before it is answered; later lines get port 0.
    pub(crate) early_streams: usize,
    /// Most relay port pairs the unanswered calls from one outside source may hold, per worker;
    /// 0: no limit.
    pub(crate) early_pairs_per_source: usize,
}

/// `media.latching`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Latching {
    Strict,
    Loose,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            enabled: true,
            address: None,
            port_min: 20000,
            port_max: 29999,
            no_media_timeout_secs: 60,
            latching: Latching::Strict,
            latch_window_secs: 10,
            ng_listen: None,
            ng_allow_public: false,
            ng_allowed: ["127.0.0.0/8", "::1"]
                .into_iter()
                .filter_map(|c| c.parse().ok().map(Cidr))
                .collect(),
            early_streams: 4,
            early_pairs_per_source: 256,
        }
    }
}

impl MediaSection {
    /// RTP/RTCP port pairs in the range (an even RTP port and the odd RTCP port above it).
    pub(super) fn pairs(&self) -> u32 {
        (u32::from(self.port_max) + 1).saturating_sub(u32::from(self.port_min)) / 2
    }

    /// The ports of worker `worker` out of `workers`: the pairs of the range are split into
    /// contiguous, even-aligned slices with no gap and no overlap between consecutive workers
    /// (sizes differ by at most one pair). Empty when `worker >= workers`.
    pub(crate) fn media_ports_for(&self, worker: usize, workers: usize) -> Range<u16> {
        if workers == 0 || worker >= workers {
            return self.port_min..self.port_min;
        }
        let pairs = u64::from(self.pairs());
        let (w, n) = (worker as u64, workers as u64);
        let lo = pairs * w / n;
        let hi = pairs * (w + 1) / n;
        let at = |p: u64| u16::try_from(u64::from(self.port_min) + 2 * p).unwrap_or(u16::MAX);
        at(lo)..at(hi)
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    /// Dialogs per worker.
    pub(crate) max_dialogs: usize,
    pub(crate) max_call_duration_secs: u64,
    pub(crate) ringing_timeout_secs: u64,
    pub(crate) no_ack_timeout_secs: u64,
    /// New calls per second (whole SBC); 0 is unlimited.
    pub(crate) max_cps: u32,
    /// Live SIP transactions per worker; beyond it new requests get 503.
    pub(crate) max_transactions: usize,
    /// Seconds a finished transaction absorbs retransmissions (Timers J, L, M over UDP).
    pub(crate) transaction_linger_secs: u64,
    /// Milliseconds a new call waits for a target's first response before the next target of
    /// its group is tried; 0: only Timer B (32 s).
    pub(crate) first_response_ms: u64,
    /// Seconds a stopping SBC waits for calls to end (new calls get 503) before it sends BYE
    /// on both legs of the rest.
    pub(crate) drain_secs: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_dialogs: 100_000,
            max_call_duration_secs: 14_400,
            ringing_timeout_secs: 180,
            no_ack_timeout_secs: 32,
            max_cps: 0,
            max_transactions: 262_144,
            transaction_linger_secs: 5,
            first_response_ms: 4000,
            drain_secs: 10,
        }
    }
}

/// `[topology]`: the header policy at each crossing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TopologySection {
    /// Product string written as User-Agent/Server toward each side; empty writes none.
    pub(crate) user_agent: String,
    /// Headers copied as received in both directions (overrides the built-in allowlist).
    pub(crate) keep_headers: Vec<String>,
    /// Headers never copied in either direction.
    pub(crate) strip_headers: Vec<String>,
    /// Pass the user agents' Authorization/Proxy-Authorization to the inside (the PBX
    /// authenticates its users through the SBC).
    pub(crate) forward_credentials: bool,
}

impl Default for TopologySection {
    fn default() -> Self {
        Self {
            user_agent: "sbc".into(),
            keep_headers: Vec::new(),
            strip_headers: Vec::new(),
            forward_credentials: true,
        }
    }
}
