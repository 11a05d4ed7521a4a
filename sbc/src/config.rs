//! Configuration: one TOML file, read and validated once at start.
//!
//! Unknown keys are errors (`deny_unknown_fields`), and every error names the file, the key and the
//! line (toml's messages carry line and column). The embedded default (`config/default.toml`) shows every
//! key with its default and is used when no file is given.
//!
//! Beyond listeners and transport, the file describes the B2BUA: the two sides (`[outside]`,
//! `[inside]`), target groups, trunks, routes, number handling, the registrar, media ports, limits,
//! the header policy and the control API. Those sections are validated here and converted into the
//! pure `sbc-core` types by [`Config::b2bua`]; cross references (a route naming a target group or
//! trunk) are checked at load, so a loaded configuration always converts.
// The B2BUA sections are validated and converted here before the workers read them.
#![cfg_attr(not(test), allow(dead_code))]

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sbc_core::registration::registrar::RegistrarConfig;
use sbc_core::routing::{
    self as core_routing, HealthConfig, NumberRule, Route, SourceMatch, TargetGroup, TargetGroupId,
    TimeWindow, TrunkId,
};
use sbc_core::signalling::topology::{is_owned, HeaderAction, HeaderPolicy, TopologyPolicy};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// Where the kernel publishes its ephemeral (local) port range.
pub(crate) const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The embedded default configuration, also the documented example of every key.
pub(crate) const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Worker threads; `None` means one per core.
    #[serde(default)]
    pub(crate) workers: Option<usize>,
    #[serde(default)]
    pub(crate) sip: Sip,
    #[serde(default)]
    pub(crate) tls: Tls,
    #[serde(default)]
    pub(crate) transport: Transport,
    #[serde(default)]
    pub(crate) outside: Outside,
    #[serde(default)]
    pub(crate) inside: Inside,
    /// `[[target_group]]` tables.
    #[serde(default, rename = "target_group")]
    pub(crate) target_groups: Vec<TargetGroupConf>,
    /// `[[trunk]]` tables.
    #[serde(default, rename = "trunk")]
    pub(crate) trunks: Vec<TrunkConf>,
    /// `[[route]]` tables, in order of precedence for equal prefixes.
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteConf>,
    #[serde(default)]
    pub(crate) numbers: Numbers,
    #[serde(default)]
    pub(crate) registrar: Registrar,
    #[serde(default)]
    pub(crate) media: Media,
    #[serde(default)]
    pub(crate) limits: Limits,
    #[serde(default)]
    pub(crate) topology: Topology,
    #[serde(default)]
    pub(crate) api: Api,
}

/// `[sip]`: listen addresses per transport.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sip {
    #[serde(default)]
    pub(crate) udp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tcp: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tls: Vec<SocketAddr>,
}

/// `[tls]`: certificate chain and key, PEM files.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
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
pub(crate) struct Transport {
    pub(crate) driver: DriverChoice,
    pub(crate) tcp_max_connections: usize,
    pub(crate) tcp_idle_timeout_secs: u64,
    pub(crate) max_message_size: usize,
    /// io_uring: how long a worker that woke for one completion may wait for more before it
    /// handles them (0: handle each at once). Trades that much latency for fewer wake-ups.
    pub(crate) batch_wait_us: u32,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            driver: DriverChoice::Auto,
            tcp_max_connections: 4096,
            tcp_idle_timeout_secs: 120,
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
pub(crate) struct Outside {
    /// The IP written in Via, Contact and SDP toward the outside; default the first SIP listen IP.
    pub(crate) advertised_address: Option<IpAddr>,
}

/// `[inside]`: the private side (the PBX).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Inside {
    /// The SBC's own address toward the PBX.
    pub(crate) address: IpAddr,
    /// UDP port for requests the PBX starts (calls toward trunks); worker `w` also owns port
    /// `port + 1 + w`, which it uses for all its traffic toward the inside.
    pub(crate) port: u16,
    /// Names of the target groups that make up the inside (the PBX and inside gateways).
    pub(crate) targets: Vec<Spanned<String>>,
}

impl Default for Inside {
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

impl From<TransportName> for core_routing::Transport {
    fn from(t: TransportName) -> Self {
        match t {
            TransportName::Udp => Self::Udp,
            TransportName::Tcp => Self::Tcp,
            TransportName::Tls => Self::Tls,
        }
    }
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
pub(crate) struct TargetConf {
    pub(crate) address: SocketAddr,
    #[serde(default)]
    pub(crate) transport: TransportName,
    #[serde(default)]
    pub(crate) priority: u8,
    #[serde(default = "default_weight")]
    pub(crate) weight: u16,
}

/// `[[target_group]]`: inside destinations with their OPTIONS health check.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetGroupConf {
    pub(crate) name: String,
    pub(crate) targets: Vec<TargetConf>,
    #[serde(default = "default_interval")]
    pub(crate) options_interval_secs: u64,
    /// A probe not answered within this long counts as failed.
    #[serde(default = "default_probe_timeout")]
    pub(crate) options_timeout_secs: u64,
    #[serde(default = "default_down_after")]
    pub(crate) down_after: u32,
    #[serde(default = "default_up_after")]
    pub(crate) up_after: u32,
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

/// An IP network (`10.0.0.0/8`) or a single address (`192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Cidr {
    pub(crate) addr: IpAddr,
    pub(crate) prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask32(u32::from(a), self.prefix_len) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                mask128(u128::from(a), self.prefix_len) == u128::from(n)
            }
            _ => false,
        }
    }
}

fn mask32(v: u32, len: u8) -> u32 {
    v.checked_shl(32 - u32::from(len))
        .map_or(0, |_| v & (u32::MAX << (32 - u32::from(len))))
}

fn mask128(v: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        v & (u128::MAX << (128 - u32::from(len)))
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            |why: &str| format!("addresses: {s:?} is not an IP address or CIDR network: {why}");
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s.as_str(), None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| bad("bad address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad(&format!("prefix length must be 0..={max}"))),
            },
        };
        let host_bits = match addr {
            IpAddr::V4(a) => mask32(u32::from(a), prefix_len) != u32::from(a),
            IpAddr::V6(a) => mask128(u128::from(a), prefix_len) != u128::from(a),
        };
        if host_bits {
            return Err(bad("host bits are set after the prefix length"));
        }
        Ok(Self { addr, prefix_len })
    }
}

/// `outbound = { proxy = "ip:port" }` of a trunk: where calls toward the carrier are sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Outbound {
    pub(crate) proxy: SocketAddr,
}

/// One entry of `number_rules`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NumberRuleConf {
    pub(crate) prefix: String,
    pub(crate) strip: usize,
    pub(crate) prepend: String,
    pub(crate) min_len: Option<usize>,
    pub(crate) max_len: Option<usize>,
}

impl NumberRuleConf {
    fn to_core(&self) -> NumberRule {
        NumberRule {
            match_prefix: self.prefix.clone(),
            strip: self.strip,
            prepend: self.prepend.clone(),
            min_len: self.min_len,
            max_len: self.max_len,
        }
    }
}

/// `[[trunk]]`: a carrier or customer trunk.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkConf {
    pub(crate) name: String,
    /// Source ACL: calls from these addresses are recognised as coming from the trunk.
    #[serde(default)]
    pub(crate) addresses: Vec<Cidr>,
    #[serde(default)]
    pub(crate) transport: TransportName,
    /// Where calls from the trunk go.
    #[serde(default)]
    pub(crate) target_group: Option<Spanned<String>>,
    /// Where calls toward the trunk are sent.
    #[serde(default)]
    pub(crate) outbound: Option<Outbound>,
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
    pub(crate) number_rules: Vec<NumberRuleConf>,
}

/// Days of the week, as a bit set of [`TimeWindow::days`]: `"mon-fri"`, `"sat,sun"` or a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Days(pub(crate) u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<u8> {
    let s = s.trim().to_ascii_lowercase();
    let i = DAY_NAMES
        .iter()
        .position(|d| s.len() >= 3 && d.starts_with(&s[..3]))?;
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
    fn parse_items<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
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
pub(crate) struct RouteConf {
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
    pub(crate) number_rules: Vec<NumberRuleConf>,
}

/// `[numbers]`: the local numbering plan.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Numbers {
    /// Country calling code without `+` (`"49"`); empty means numbers are not converted to E.164.
    pub(crate) country_code: String,
    pub(crate) national_prefix: String,
    pub(crate) international_prefix: String,
}

impl Default for Numbers {
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
pub(crate) struct Registrar {
    pub(crate) capacity: usize,
    pub(crate) nat_expires_secs: u64,
    pub(crate) min_expires_secs: u64,
    pub(crate) max_expires_secs: u64,
    pub(crate) keepalive_interval_secs: u64,
}

impl Default for Registrar {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            nat_expires_secs: 60,
            min_expires_secs: 60,
            max_expires_secs: 3600,
            keepalive_interval_secs: 25,
        }
    }
}

impl Registrar {
    /// The `sbc-core` registrar settings.
    pub(crate) fn to_core(&self) -> RegistrarConfig {
        let d = RegistrarConfig::default();
        RegistrarConfig {
            capacity: self.capacity,
            min_expires: Duration::from_secs(self.min_expires_secs),
            max_expires: Duration::from_secs(self.max_expires_secs),
            default_expires: d.default_expires.clamp(
                Duration::from_secs(self.min_expires_secs),
                Duration::from_secs(self.max_expires_secs),
            ),
            nat_expires: Duration::from_secs(self.nat_expires_secs),
            keepalive_interval: Duration::from_secs(self.keepalive_interval_secs),
            ..d
        }
    }
}

/// `[media]`: RTP/RTCP relay ports.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Media {
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
    /// The rtpengine "ng" control socket (UDP), served by worker 0; none by default.
    pub(crate) ng_listen: Option<SocketAddr>,
}

/// `media.latching`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Latching {
    Strict,
    Loose,
}

impl Default for Media {
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
        }
    }
}

impl Media {
    /// RTP/RTCP port pairs in the range (an even RTP port and the odd RTCP port above it).
    fn pairs(&self) -> u32 {
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

    /// Checks the range against the kernel's ephemeral port range (inclusive bounds).
    pub(crate) fn check_ephemeral(&self, (lo, hi): (u16, u16)) -> Result<(), String> {
        if self.port_min <= hi && lo <= self.port_max {
            let (a, b) = (self.port_min.max(lo), self.port_max.min(hi));
            return Err(format!(
                "media.port_min/media.port_max: {}-{} overlaps the kernel's ephemeral port range \
                 {lo}-{hi} ({LOCAL_PORT_RANGE}) at {a}-{b}; move the media range or narrow \
                 net.ipv4.ip_local_port_range",
                self.port_min, self.port_max
            ));
        }
        Ok(())
    }
}

/// Parses the content of `ip_local_port_range` ("32768\t60999").
pub(crate) fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    (lo <= hi).then_some((lo, hi))
}

/// The host's ephemeral port range, or `None` (with a log line) when it cannot be read.
pub(crate) fn local_port_range() -> Option<(u16, u16)> {
    match std::fs::read_to_string(LOCAL_PORT_RANGE)
        .ok()
        .and_then(|t| parse_port_range(&t))
    {
        Some(r) => Some(r),
        None => {
            tracing::info!(
                "{LOCAL_PORT_RANGE} unreadable: media port range not checked against ephemeral ports"
            );
            None
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_dialogs: 100_000,
            max_call_duration_secs: 14_400,
            ringing_timeout_secs: 180,
            no_ack_timeout_secs: 32,
            max_cps: 0,
            max_transactions: 262_144,
            transaction_linger_secs: 5,
        }
    }
}

/// `[topology]`: the header policy at each crossing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Topology {
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

impl Default for Topology {
    fn default() -> Self {
        Self {
            user_agent: "sbc".into(),
            keep_headers: Vec::new(),
            strip_headers: Vec::new(),
            forward_credentials: true,
        }
    }
}

/// Headers whose handling depends on trust and that overrides never change.
const NOT_OVERRIDABLE: &[&str] = &[
    "User-Agent",
    "Server",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Authorization",
    "Proxy-Authorization",
];

impl Topology {
    /// The `sbc-core` policy of both directions.
    pub(crate) fn to_core(&self) -> TopologyPolicy {
        let mut p = TopologyPolicy::default();
        let product = (!self.user_agent.is_empty()).then(|| Cow::Owned(self.user_agent.clone()));
        for dir in [&mut p.toward_inside, &mut p.toward_outside] {
            apply_lists(dir, self, product.clone());
        }
        p.toward_inside.forward_credentials = self.forward_credentials;
        p
    }

    fn validate(&self) -> Result<(), String> {
        let ua = &self.user_agent;
        if ua.len() > 128 || ua.chars().any(char::is_control) {
            return Err(
                "topology.user_agent: at most 128 characters, no control characters".into(),
            );
        }
        for (key, list) in [
            ("keep_headers", &self.keep_headers),
            ("strip_headers", &self.strip_headers),
        ] {
            for h in list {
                let token = !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
                if !token {
                    return Err(format!("topology.{key}: {h:?} is not a header name"));
                }
                if is_owned(h) || NOT_OVERRIDABLE.iter().any(|n| n.eq_ignore_ascii_case(h)) {
                    return Err(format!(
                        "topology.{key}: {h:?} is always written by the SBC and cannot be listed"
                    ));
                }
            }
        }
        if let Some(h) = self
            .keep_headers
            .iter()
            .find(|k| self.strip_headers.iter().any(|s| s.eq_ignore_ascii_case(k)))
        {
            return Err(format!(
                "topology.keep_headers/strip_headers: {h:?} is in both lists"
            ));
        }
        Ok(())
    }
}

fn apply_lists(p: &mut HeaderPolicy, t: &Topology, product: Option<Cow<'static, str>>) {
    p.product = product;
    for h in &t.keep_headers {
        p.set(h, HeaderAction::Keep);
    }
    for h in &t.strip_headers {
        p.set(h, HeaderAction::Strip);
    }
}

/// `[api]`: the control API (reserved; validated only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Api {
    pub(crate) listen: SocketAddr,
    pub(crate) enabled: bool,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            enabled: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Converted B2BUA configuration
// ---------------------------------------------------------------------------------------------

/// A trunk as the B2BUA uses it.
#[derive(Clone, Debug)]
pub(crate) struct Trunk {
    pub(crate) id: TrunkId,
    pub(crate) name: String,
    pub(crate) acl: Vec<Cidr>,
    pub(crate) transport: core_routing::Transport,
    /// Where calls from the trunk go.
    pub(crate) inbound: Option<TargetGroupId>,
    /// The group (holding the outbound proxy) calls toward the trunk are sent to.
    pub(crate) outbound: Option<TargetGroupId>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) register: bool,
    pub(crate) register_expires: Duration,
    pub(crate) trusted: bool,
    pub(crate) number_rules: Vec<NumberRule>,
}

/// The B2BUA configuration in `sbc-core` types.
#[derive(Clone, Debug)]
pub(crate) struct B2bua {
    pub(crate) outside_address: IpAddr,
    pub(crate) inside_address: IpAddr,
    pub(crate) media_address: IpAddr,
    /// The target groups forming the inside.
    pub(crate) inside_groups: Vec<TargetGroupId>,
    /// Configured groups first, then one per trunk with an outbound proxy (named `trunk:<name>`);
    /// `groups[i].id == TargetGroupId(i)`.
    pub(crate) groups: Vec<TargetGroup>,
    /// Name of each group, by id.
    pub(crate) group_names: Vec<String>,
    /// Health-check settings of each group, by id.
    pub(crate) health: Vec<HealthConfig>,
    pub(crate) trunks: Vec<Trunk>,
    pub(crate) routes: Vec<Route>,
    pub(crate) registrar: RegistrarConfig,
    pub(crate) topology: TopologyPolicy,
}

/// " (line N)" for a span of `text`, or nothing when the text is not at hand.
fn at_line(text: &str, span: Range<usize>) -> String {
    match text.as_bytes().get(..span.start) {
        Some(before) if !text.is_empty() => {
            format!(
                " (line {})",
                before.iter().filter(|&&b| b == b'\n').count() + 1
            )
        }
        _ => String::new(),
    }
}

fn check_number_rules(what: &str, rules: &[NumberRuleConf]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        if let (Some(a), Some(b)) = (r.min_len, r.max_len) {
            if a > b {
                return Err(format!(
                    "{what}: number_rules[{i}]: min_len {a} > max_len {b}"
                ));
            }
        }
        let ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b"+*#".contains(&b));
        if !ok(&r.prefix) || !ok(&r.prepend) {
            return Err(format!(
                "{what}: number_rules[{i}]: prefix and prepend take digits, +, * and # only"
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Parse and validate TOML text; `origin` names the source in errors. The media port range is
    /// checked against this host's ephemeral port range.
    pub(crate) fn from_toml(text: &str, origin: &str) -> Result<Self, String> {
        Self::from_toml_with(text, origin, local_port_range())
    }

    /// As [`Config::from_toml`], with the ephemeral port range given (`None` skips that check).
    pub(crate) fn from_toml_with(
        text: &str,
        origin: &str,
        ephemeral: Option<(u16, u16)>,
    ) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        config
            .validate(text, ephemeral)
            .map_err(|e| format!("{origin}: {e}"))?;
        Ok(config)
    }

    /// Read, parse and validate a file.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The embedded default configuration.
    pub(crate) fn embedded_default() -> Self {
        // The embedded file is checked by a unit test below. On a host whose ephemeral port range
        // covers the default media ports the SBC still starts, and says so.
        let c = Self::from_toml_with(DEFAULT_TOML, "embedded default config", None)
            .unwrap_or_else(|e| panic!("embedded default config is invalid: {e}"));
        if let Some(Err(e)) = local_port_range().map(|r| c.media.check_ephemeral(r)) {
            tracing::warn!("embedded default config: {e}");
        }
        c
    }

    fn validate(&self, text: &str, ephemeral: Option<(u16, u16)>) -> Result<(), String> {
        if self.workers == Some(0) || self.workers.is_some_and(|w| w > 1024) {
            return Err("workers: must be in 1..=1024".into());
        }
        if !self.sip.tls.is_empty() && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            return Err("sip.tls: TLS listeners need [tls] cert and key".into());
        }
        if self.sip.udp.is_empty() && self.sip.tcp.is_empty() && self.sip.tls.is_empty() {
            return Err("sip: no listen address (udp, tcp, tls are all empty)".into());
        }
        let t = &self.transport;
        if t.tcp_max_connections == 0 || t.tcp_max_connections > 1 << 20 {
            return Err("transport.tcp_max_connections: must be in 1..=1048576".into());
        }
        if t.tcp_idle_timeout_secs == 0 {
            return Err("transport.tcp_idle_timeout_secs: must be at least 1".into());
        }
        if !(1024..=1 << 20).contains(&t.max_message_size) {
            return Err("transport.max_message_size: must be in 1024..=1048576".into());
        }
        if t.batch_wait_us > 1000 {
            return Err("transport.batch_wait_us: must be in 0..=1000".into());
        }
        if self
            .outside
            .advertised_address
            .is_some_and(|a| a.is_unspecified())
        {
            return Err(
                "outside.advertised_address: must be a concrete address, not 0.0.0.0/::".into(),
            );
        }
        if self.inside.address.is_unspecified() {
            return Err("inside.address: must be a concrete address, not 0.0.0.0/::".into());
        }
        let last = usize::from(self.inside.port) + 1 + self.worker_count();
        if self.inside.port == 0 || last > usize::from(u16::MAX) {
            return Err(format!(
                "inside.port: {} leaves no room for one port per worker above it",
                self.inside.port
            ));
        }
        let inside_ports = usize::from(self.inside.port)..=last;
        let clash = self.sip.udp.iter().find(|a| {
            (a.ip() == self.inside.address || a.ip().is_unspecified())
                && inside_ports.contains(&usize::from(a.port()))
        });
        if let Some(a) = clash {
            return Err(format!(
                "inside.port: {}..={last} on {} overlaps the SIP listener {a}",
                self.inside.port, self.inside.address
            ));
        }
        self.validate_numbers()?;
        self.validate_registrar()?;
        self.validate_media(ephemeral)?;
        self.validate_limits()?;
        self.topology.validate()?;
        if self.api.listen.port() == 0 {
            return Err("api.listen: port must not be 0".into());
        }
        if self.api.enabled
            && self
                .sip
                .tcp
                .iter()
                .chain(&self.sip.tls)
                .any(|a| *a == self.api.listen)
        {
            return Err(format!(
                "api.listen: {} is also a SIP listen address",
                self.api.listen
            ));
        }
        // Cross references and per-entry checks of groups, trunks and routes.
        self.b2bua_in(text).map(|_| ())
    }

    fn validate_numbers(&self) -> Result<(), String> {
        let n = &self.numbers;
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits(&n.country_code) || n.country_code.len() > 3 || n.country_code.starts_with('0') {
            return Err(format!(
                "numbers.country_code: {:?} must be 1 to 3 digits without + or leading 0 (or empty)",
                n.country_code
            ));
        }
        if !digits(&n.national_prefix) || n.national_prefix.len() > 4 {
            return Err("numbers.national_prefix: at most 4 digits".into());
        }
        if !digits(&n.international_prefix)
            || n.international_prefix.is_empty()
            || n.international_prefix.len() > 4
        {
            return Err("numbers.international_prefix: 1 to 4 digits".into());
        }
        Ok(())
    }

    fn validate_registrar(&self) -> Result<(), String> {
        let r = &self.registrar;
        if r.capacity == 0 || r.capacity > 10_000_000 {
            return Err("registrar.capacity: must be in 1..=10000000".into());
        }
        if r.min_expires_secs == 0 {
            return Err("registrar.min_expires_secs: must be at least 1".into());
        }
        if r.min_expires_secs > r.max_expires_secs {
            return Err(
                "registrar.min_expires_secs: must not exceed registrar.max_expires_secs".into(),
            );
        }
        if r.max_expires_secs > 86_400 {
            return Err("registrar.max_expires_secs: at most 86400".into());
        }
        if r.nat_expires_secs == 0 || r.nat_expires_secs > r.max_expires_secs {
            return Err(
                "registrar.nat_expires_secs: must be in 1..=registrar.max_expires_secs".into(),
            );
        }
        if r.keepalive_interval_secs > r.nat_expires_secs.max(1) * 10 {
            return Err("registrar.keepalive_interval_secs: implausibly long (0 disables)".into());
        }
        Ok(())
    }

    fn validate_media(&self, ephemeral: Option<(u16, u16)>) -> Result<(), String> {
        let m = &self.media;
        if m.port_min < 1024 {
            return Err("media.port_min: must be at least 1024".into());
        }
        if m.port_min % 2 != 0 {
            return Err(format!(
                "media.port_min: {} is odd; RTP takes the even port and RTCP the odd one above it",
                m.port_min
            ));
        }
        if m.port_min >= m.port_max {
            return Err(format!(
                "media.port_min/media.port_max: port_min {} must be below port_max {}",
                m.port_min, m.port_max
            ));
        }
        if m.port_max == u16::MAX {
            return Err("media.port_max: at most 65534".into());
        }
        let workers = self.worker_count();
        if (m.pairs() as usize) < workers {
            return Err(format!(
                "media.port_min/media.port_max: {} port pairs cannot be split over {workers} workers",
                m.pairs()
            ));
        }
        if m.address.is_some_and(|a| a.is_unspecified()) {
            return Err("media.address: must be a concrete address, not 0.0.0.0/::".into());
        }
        if m.ng_listen.is_some() && !m.enabled {
            return Err(
                "media.ng_listen: needs media.enabled = true (the ng calls use the relay)".into(),
            );
        }
        if !(1..=3600).contains(&m.latch_window_secs) {
            return Err("media.latch_window_secs: must be in 1..=3600".into());
        }
        if let Some(r) = ephemeral {
            m.check_ephemeral(r)?;
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_dialogs == 0 || l.max_dialogs > 10_000_000 {
            return Err("limits.max_dialogs: must be in 1..=10000000".into());
        }
        if l.max_transactions < 16 || l.max_transactions > 10_000_000 {
            return Err("limits.max_transactions: must be in 16..=10000000".into());
        }
        if l.transaction_linger_secs > 32 {
            return Err("limits.transaction_linger_secs: at most 32 (64*T1, the RFC value)".into());
        }
        for (key, v) in [
            ("max_call_duration_secs", l.max_call_duration_secs),
            ("ringing_timeout_secs", l.ringing_timeout_secs),
            ("no_ack_timeout_secs", l.no_ack_timeout_secs),
            ("transaction_linger_secs", l.transaction_linger_secs),
        ] {
            if v == 0 {
                return Err(format!("limits.{key}: must be at least 1"));
            }
        }
        Ok(())
    }

    /// The number of workers: configured, or one per core.
    pub(crate) fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(cores)
    }

    /// The IP shown toward the outside: configured, or the first SIP listen IP.
    pub(crate) fn advertised_address(&self) -> IpAddr {
        self.outside.advertised_address.unwrap_or_else(|| {
            self.sip
                .udp
                .iter()
                .chain(&self.sip.tcp)
                .chain(&self.sip.tls)
                .next()
                .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), SocketAddr::ip)
        })
    }

    /// The B2BUA configuration in `sbc-core` types. Infallible in practice for a loaded
    /// configuration (the same conversion runs at load).
    pub(crate) fn b2bua(&self) -> Result<B2bua, String> {
        self.b2bua_in("")
    }

    /// The conversion; `text` (the file, when at hand) gives lines in errors.
    fn b2bua_in(&self, text: &str) -> Result<B2bua, String> {
        let mut groups = Vec::new();
        let mut group_names: Vec<String> = Vec::new();
        let mut health = Vec::new();
        for (i, g) in self.target_groups.iter().enumerate() {
            let what = format!("target_group {:?}", g.name);
            if g.name.is_empty() || g.name.starts_with("trunk:") {
                return Err(format!(
                    "target_group[{i}].name: must be non-empty and not start with \"trunk:\""
                ));
            }
            if group_names.contains(&g.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            if g.targets.is_empty() {
                return Err(format!("{what}: targets: at least one target"));
            }
            for (j, t) in g.targets.iter().enumerate() {
                if t.address.ip().is_unspecified() || t.address.port() == 0 {
                    return Err(format!(
                        "{what}: targets[{j}].address: needs a concrete ip:port"
                    ));
                }
                if g.targets
                    .get(..j)
                    .is_some_and(|prev| prev.iter().any(|p| p.address == t.address))
                {
                    return Err(format!(
                        "{what}: targets[{j}].address: {} listed twice",
                        t.address
                    ));
                }
            }
            if g.down_after == 0 || g.up_after == 0 {
                return Err(format!("{what}: down_after/up_after: must be at least 1"));
            }
            let id = TargetGroupId(i as u32);
            groups.push(TargetGroup {
                id,
                targets: g
                    .targets
                    .iter()
                    .map(|t| core_routing::Target {
                        addr: t.address,
                        transport: t.transport.into(),
                        priority: t.priority,
                        weight: t.weight,
                    })
                    .collect(),
            });
            group_names.push(g.name.clone());
            health.push(HealthConfig {
                interval: Duration::from_secs(g.options_interval_secs),
                timeout: Duration::from_secs(g.options_timeout_secs),
                down_after: g.down_after,
                up_after: g.up_after,
            });
        }
        let configured = group_names.clone();
        let group_ref = |what: &str, key: &str, name: &Spanned<String>| {
            configured
                .iter()
                .position(|n| n == name.get_ref())
                .map(|i| TargetGroupId(i as u32))
                .ok_or_else(|| {
                    format!(
                        "{what}: {key}: no [[target_group]] named {:?}{}",
                        name.get_ref(),
                        at_line(text, name.span())
                    )
                })
        };

        let mut inside_groups = Vec::new();
        for t in &self.inside.targets {
            inside_groups.push(group_ref("inside", "targets", t)?);
        }

        let mut trunks: Vec<Trunk> = Vec::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let what = format!("trunk {:?}", t.name);
            if t.name.is_empty() {
                return Err(format!("trunk[{i}].name: must not be empty"));
            }
            if trunks.iter().any(|o| o.name == t.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            if t.target_group.is_none() && t.outbound.is_none() {
                return Err(format!(
                    "{what}: needs target_group (where its calls go) or outbound (calls toward it)"
                ));
            }
            let inbound = t
                .target_group
                .as_ref()
                .map(|g| group_ref(&what, "target_group", g))
                .transpose()?;
            if inbound.is_some() && t.addresses.is_empty() {
                return Err(format!(
                    "{what}: addresses: needed to recognise calls from the trunk"
                ));
            }
            if t.username.is_some() != t.password.is_some() {
                return Err(format!("{what}: username/password: give both or neither"));
            }
            if t.register && (t.outbound.is_none() || t.username.is_none()) {
                return Err(format!(
                    "{what}: register: needs outbound, username and password"
                ));
            }
            if !(60..=86_400).contains(&t.register_expires) {
                return Err(format!("{what}: register_expires: must be in 60..=86400"));
            }
            check_number_rules(&what, &t.number_rules)?;
            let outbound = t.outbound.as_ref().map(|o| {
                let id = TargetGroupId(groups.len() as u32);
                groups.push(TargetGroup {
                    id,
                    targets: vec![core_routing::Target {
                        addr: o.proxy,
                        transport: t.transport.into(),
                        priority: 0,
                        weight: 100,
                    }],
                });
                group_names.push(format!("trunk:{}", t.name));
                health.push(HealthConfig {
                    interval: Duration::from_secs(t.options_interval_secs),
                    ..HealthConfig::default()
                });
                id
            });
            trunks.push(Trunk {
                id: TrunkId(i as u32),
                name: t.name.clone(),
                acl: t.addresses.clone(),
                transport: t.transport.into(),
                inbound,
                outbound,
                username: t.username.clone(),
                password: t.password.clone(),
                register: t.register,
                register_expires: Duration::from_secs(t.register_expires),
                trusted: t.trusted,
                number_rules: t.number_rules.iter().map(NumberRuleConf::to_core).collect(),
            });
        }

        let mut routes: Vec<Route> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let what = format!("route {:?}", r.name);
            if r.name.is_empty() {
                return Err(format!("route[{i}].name: must not be empty"));
            }
            if routes.iter().any(|o| o.name == r.name) {
                return Err(format!("{what}: name: defined twice"));
            }
            let trunk_named = |key: &str, name: &str, span: Range<usize>| {
                trunks.iter().find(|t| t.name == name).ok_or_else(|| {
                    format!(
                        "{what}: {key}: no [[trunk]] named {name:?}{}",
                        at_line(text, span)
                    )
                })
            };
            let source = match &r.from {
                None => SourceMatch::Any,
                Some(f) => match f.get_ref().as_str() {
                    "any" => SourceMatch::Any,
                    "outside" => SourceMatch::Outside,
                    "inside" => SourceMatch::Inside,
                    s => match s.strip_prefix("trunk:") {
                        Some(name) => SourceMatch::Trunk(trunk_named("from", name, f.span())?.id),
                        None => {
                            return Err(format!(
                                "{what}: from: {s:?} is not \"any\", \"outside\", \"inside\" or \
                                 \"trunk:<name>\"{}",
                                at_line(text, f.span())
                            ))
                        }
                    },
                },
            };
            if !r
                .prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+*#".contains(&b))
            {
                return Err(format!("{what}: prefix: digits, +, * and # only"));
            }
            let target = match (&r.target_group, &r.trunk) {
                (Some(g), None) => group_ref(&what, "target_group", g)?,
                (None, Some(t)) => {
                    let trunk = trunk_named("trunk", t.get_ref(), t.span())?;
                    trunk.outbound.ok_or_else(|| {
                        format!(
                            "{what}: trunk: trunk {:?} has no outbound proxy{}",
                            t.get_ref(),
                            at_line(text, t.span())
                        )
                    })?
                }
                _ => {
                    return Err(format!(
                        "{what}: give exactly one of target_group and trunk"
                    ))
                }
            };
            check_number_rules(&what, &r.number_rules)?;
            let time = (r.days.is_some() || r.hours.is_some()).then(|| {
                let h = r.hours.unwrap_or(Hours {
                    start_min: 0,
                    end_min: 0,
                });
                TimeWindow {
                    days: r.days.map_or(TimeWindow::ALL_DAYS, |d| d.0),
                    start_min: h.start_min,
                    end_min: h.end_min,
                }
            });
            routes.push(Route {
                name: r.name.clone(),
                source,
                prefix: r.prefix.clone(),
                time,
                target,
                number_rules: r.number_rules.iter().map(NumberRuleConf::to_core).collect(),
            });
        }

        let outside_address = self.advertised_address();
        Ok(B2bua {
            outside_address,
            inside_address: self.inside.address,
            media_address: self.media.address.unwrap_or(outside_address),
            inside_groups,
            groups,
            group_names,
            health,
            trunks,
            routes,
            registrar: self.registrar.to_core(),
            topology: self.topology.to_core(),
        })
    }
}

/// Cores available to this process.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_complete() {
        let c = Config::embedded_default();
        assert_eq!(c.sip.udp, vec!["127.0.0.1:5060".parse().unwrap()]);
        assert_eq!(c.sip.tcp, vec!["127.0.0.1:5060".parse().unwrap()]);
        assert!(c.sip.tls.is_empty());
        assert_eq!(c.transport.driver, DriverChoice::Auto);
        assert_eq!(c.transport.tcp_max_connections, 4096);
        assert_eq!(c.transport.tcp_idle_timeout_secs, 120);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::from_toml(
            "[sip]\nudp = []\ntcp = [\"127.0.0.1:1\"]\nudpp = 3\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.contains("x.toml"), "{e}");
        assert!(e.contains("udpp"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn tls_needs_cert() {
        let e = Config::from_toml("[sip]\ntls = [\"127.0.0.1:5061\"]\n", "t").unwrap_err();
        assert!(e.contains("cert"), "{e}");
    }

    #[test]
    fn bad_driver() {
        let e = Config::from_toml(
            "[sip]\nudp=[\"127.0.0.1:1\"]\n[transport]\ndriver = \"kqueue\"\n",
            "t",
        )
        .unwrap_err();
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn batch_wait_is_bounded() {
        let cfg = |v: u32| {
            Config::from_toml(
                &format!("[sip]\nudp=[\"127.0.0.1:1\"]\n[transport]\nbatch_wait_us = {v}\n"),
                "t",
            )
        };
        assert_eq!(cfg(0).unwrap().transport.batch_wait_us, 0);
        assert_eq!(cfg(1000).unwrap().transport.batch_wait_us, 1000);
        let e = cfg(1001).unwrap_err();
        assert!(e.contains("transport.batch_wait_us"), "{e}");
    }

    const EPHEMERAL: Option<(u16, u16)> = Some((32768, 60999));

    /// A full configuration: the SBC in front of a PBX with one carrier trunk.
    const FULL: &str = r#"
workers = 2
[sip]
udp = ["127.0.0.1:5060"]
[outside]
advertised_address = "203.0.113.10"
[inside]
address = "10.0.0.1"
targets = ["pbx"]

[[target_group]]
name = "pbx"
targets = [
  { address = "127.0.0.2:5060", transport = "udp", priority = 0, weight = 100 },
  { address = "127.0.0.3:5060", transport = "tcp", priority = 1, weight = 0 },
]
options_interval_secs = 5
down_after = 2
up_after = 1

[[trunk]]
name = "carrier"
addresses = ["198.51.100.0/24", "192.0.2.7"]
transport = "udp"
target_group = "pbx"
outbound = { proxy = "198.51.100.1:5060" }
username = "sbc01"
password = "hunter2"
register = true
trusted = true
number_rules = [{ prefix = "+49", strip = 3, prepend = "0" }]

[[route]]
name = "office-hours"
from = "trunk:carrier"
days = "mon-fri"
hours = "08:00-18:00"
target_group = "pbx"

[[route]]
name = "to-carrier"
from = "inside"
prefix = "0"
days = ["sat", "sun"]
trunk = "carrier"
number_rules = [{ prefix = "0", strip = 1, prepend = "+49", min_len = 4, max_len = 16 }]

[numbers]
country_code = "49"
[registrar]
capacity = 5000
[media]
port_min = 20000
port_max = 20099
[limits]
max_cps = 50
[topology]
user_agent = "edge"
keep_headers = ["X-Account"]
strip_headers = ["Subject"]
[api]
enabled = true
"#;

    /// The 1-based line of the first occurrence of `needle` in [`FULL`].
    fn line_in_full(needle: &str) -> String {
        let at = FULL.find(needle).unwrap();
        format!("line {}", FULL[..at].matches('\n').count() + 1)
    }

    fn err(text: &str) -> String {
        Config::from_toml_with(text, "t.toml", EPHEMERAL).unwrap_err()
    }

    #[test]
    fn example_pbx_config_is_valid() {
        let text = include_str!("../config/example-pbx.toml");
        let c = Config::from_toml_with(text, "example-pbx.toml", EPHEMERAL).unwrap();
        let b = c.b2bua().unwrap();
        assert_eq!(b.groups.len(), 1);
        assert_eq!(b.routes.len(), 1);
        assert_eq!(c.limits.max_cps, 50);
        assert!(b.topology.toward_inside.forward_credentials);
        assert!(!b.topology.toward_outside.forward_credentials);
    }

    #[test]
    fn embedded_default_b2bua_sections() {
        let c = Config::from_toml_with(DEFAULT_TOML, "d", EPHEMERAL).unwrap();
        let b = c.b2bua().unwrap();
        assert_eq!(b.outside_address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(b.groups.is_empty() && b.trunks.is_empty() && b.routes.is_empty());
        assert_eq!(b.registrar.capacity, 100_000);
        assert_eq!((c.media.port_min, c.media.port_max), (20000, 29999));
        assert_eq!(c.limits.max_dialogs, 100_000);
        assert_eq!(c.api.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.numbers.international_prefix, "00");
    }

    #[test]
    fn full_example_loads_and_converts() {
        let c = Config::from_toml_with(FULL, "full", EPHEMERAL).unwrap();
        let b = c.b2bua().unwrap();
        assert_eq!(b.outside_address, "203.0.113.10".parse::<IpAddr>().unwrap());
        assert_eq!(b.media_address, b.outside_address);
        assert_eq!(b.inside_groups, vec![TargetGroupId(0)]);
        // The configured group, then the carrier's outbound proxy.
        assert_eq!(
            b.group_names,
            vec!["pbx".to_owned(), "trunk:carrier".to_owned()]
        );
        assert_eq!(
            b.groups[0].targets[1].transport,
            core_routing::Transport::Tcp
        );
        assert_eq!(b.health[0].interval, Duration::from_secs(5));
        assert_eq!(b.health[0].down_after, 2);
        let trunk = &b.trunks[0];
        assert_eq!(trunk.inbound, Some(TargetGroupId(0)));
        assert_eq!(trunk.outbound, Some(TargetGroupId(1)));
        assert!(trunk.acl[0].contains("198.51.100.77".parse().unwrap()));
        assert!(trunk.acl[1].contains("192.0.2.7".parse().unwrap()));
        assert!(!trunk.acl[1].contains("192.0.2.8".parse().unwrap()));
        assert_eq!(trunk.register_expires, Duration::from_secs(3600));
        assert_eq!(trunk.transport, core_routing::Transport::Udp);
        assert_eq!(trunk.username.as_deref(), Some("sbc01"));
        assert!(trunk.register && trunk.trusted);
        assert_eq!(trunk.number_rules[0].apply("+4930123"), "030123");
        assert_eq!(b.inside_address, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(trunk.password.as_ref().unwrap().expose(), "hunter2");
        let debug = format!("{c:?} {b:?}");
        assert!(!debug.contains("hunter2"), "password leaked into Debug");
        assert_eq!(b.routes[0].source, SourceMatch::Trunk(TrunkId(0)));
        assert_eq!(
            b.routes[0].time,
            Some(TimeWindow {
                days: TimeWindow::WORKDAYS,
                start_min: 480,
                end_min: 1080
            })
        );
        assert_eq!(b.routes[1].target, TargetGroupId(1));
        assert_eq!(
            b.routes[1].time.unwrap().days,
            TimeWindow::SAT | TimeWindow::SUN
        );
        assert_eq!(b.routes[1].rewrite_outbound("0301234"), "+49301234");
        let router = sbc_core::routing::Router::new(b.routes.clone());
        assert_eq!(router.routes().len(), 2);
        let p = &b.topology.toward_outside;
        assert_eq!(p.product.as_deref(), Some("edge"));
        assert_eq!(p.get("x-account"), Some(&HeaderAction::Keep));
        assert_eq!(
            b.topology.toward_inside.get("Subject"),
            Some(&HeaderAction::Strip)
        );
        assert_eq!(b.registrar.capacity, 5000);
        assert_eq!(c.limits.max_cps, 50);
    }

    #[test]
    fn check_config_passes_on_full_example() {
        // The same load function `--check-config` uses, on a file.
        let path = std::env::temp_dir().join(format!("sbc-config-{}.toml", std::process::id()));
        std::fs::write(&path, FULL).unwrap();
        let r = Config::load(&path);
        std::fs::remove_file(&path).ok();
        // The host's ephemeral range may differ; only that check may fail here.
        if let Err(e) = r {
            assert!(e.contains("ip_local_port_range"), "{e}");
        }
    }

    #[test]
    fn route_to_unknown_target_group_names_route_key_and_line() {
        let t = FULL.replace(
            "target_group = \"pbx\"\n\n[[route]]",
            "target_group = \"pbxx\"\n\n[[route]]",
        );
        let e = err(&t);
        assert!(e.contains("route \"office-hours\""), "{e}");
        assert!(e.contains("target_group") && e.contains("pbxx"), "{e}");
        assert!(
            e.contains(&line_in_full("target_group = \"pbx\"\n\n[[route]]")),
            "{e}"
        );
        let e = err(&FULL.replace("trunk = \"carrier\"", "trunk = \"nope\""));
        assert!(
            e.contains("route \"to-carrier\": trunk:") && e.contains("nope"),
            "{e}"
        );
        let e = err(&FULL.replace("from = \"trunk:carrier\"", "from = \"trunk:x\""));
        assert!(e.contains("from:"), "{e}");
    }

    #[test]
    fn media_range_overlapping_ephemeral_ports_names_keys_and_range() {
        let e = Config::from_toml_with(FULL, "t.toml", Some((20050, 40000))).unwrap_err();
        assert!(e.contains("media.port_min/media.port_max"), "{e}");
        assert!(
            e.contains("20050-40000") && e.contains("20050-20099"),
            "{e}"
        );
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("garbage"), None);
    }

    #[test]
    fn odd_port_min_and_inverted_range() {
        let e = err(&FULL.replace("port_min = 20000", "port_min = 20001"));
        assert!(e.contains("media.port_min") && e.contains("odd"), "{e}");
        let e = err(&FULL.replace("port_max = 20099", "port_max = 19000"));
        assert!(e.contains("media.port_min/media.port_max"), "{e}");
    }

    #[test]
    fn bad_hours_names_key_and_line() {
        let e = err(&FULL.replace("08:00-18:00", "8-18"));
        assert!(
            e.contains("hours") && e.contains(&line_in_full("hours =")),
            "{e}"
        );
        let e = err(&FULL.replace("08:00-18:00", "08:00-24:30"));
        assert!(e.contains("hours"), "{e}");
        let e = err(&FULL.replace("\"mon-fri\"", "\"mon-fry\""));
        assert!(
            e.contains("days") && e.contains(&line_in_full("days = \"mon")),
            "{e}"
        );
        let h = Hours::try_from("22:00-06:00".to_owned()).unwrap();
        assert_eq!((h.start_min, h.end_min), (1320, 360));
        let h = Hours::try_from("00:00-24:00".to_owned()).unwrap();
        assert_eq!((h.start_min, h.end_min), (0, 0));
        assert_eq!(Days::parse_items(["fri-mon"]).unwrap().0, 0b111_0001);
    }

    #[test]
    fn bad_cidr_names_key_and_line() {
        let e = err(&FULL.replace("198.51.100.0/24", "198.51.100.0/33"));
        assert!(
            e.contains("addresses") && e.contains(&line_in_full("addresses =")),
            "{e}"
        );
        let e = err(&FULL.replace("198.51.100.0/24", "198.51.100.1/24"));
        assert!(e.contains("host bits"), "{e}");
        let e = err(&FULL.replace("198.51.100.0/24", "not-an-ip"));
        assert!(e.contains("addresses"), "{e}");
    }

    #[test]
    fn other_validation_errors_name_their_keys() {
        let cases = [
            (
                "register = true",
                "register = true\nregister_expires = 5",
                "register_expires",
            ),
            ("password = \"hunter2\"\n", "", "username/password"),
            (
                "user_agent = \"edge\"",
                "user_agent = \"edge\"\nkeep_headers = [\"Via\"]",
                "keep_headers",
            ),
            (
                "country_code = \"49\"",
                "country_code = \"+49\"",
                "numbers.country_code",
            ),
            ("capacity = 5000", "capacity = 0", "registrar.capacity"),
            (
                "max_cps = 50",
                "max_cps = 50\nmax_dialogs = 0",
                "limits.max_dialogs",
            ),
            (
                "enabled = true",
                "enabled = true\nlisten = \"127.0.0.1:0\"",
                "api.listen",
            ),
            (
                "advertised_address = \"203.0.113.10\"",
                "advertised_address = \"0.0.0.0\"",
                "outside.advertised_address",
            ),
            (
                "targets = [\"pbx\"]",
                "targets = [\"nope\"]",
                "inside: targets",
            ),
        ];
        for (from, to, key) in cases {
            let t = FULL.replacen(from, to, 1);
            assert_ne!(t, FULL, "{from}");
            let e = err(&t);
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn media_ports_split_per_worker() {
        for (min, max) in [
            (20000u16, 29999u16),
            (20000, 20099),
            (10000, 10010),
            (40000, 65534),
        ] {
            let m = Media {
                port_min: min,
                port_max: max,
                ..Media::default()
            };
            for workers in 1..=13 {
                let mut next = min;
                for w in 0..workers {
                    let r = m.media_ports_for(w, workers);
                    assert_eq!(r.start, next, "contiguous, no gap, no overlap");
                    assert_eq!(r.start % 2, 0, "even-aligned start");
                    assert_eq!(r.len() % 2, 0, "whole pairs");
                    assert!(r.end <= max + 1);
                    next = r.end;
                }
                // Every pair is used: at most the odd top port is left over.
                assert!(max + 1 - next <= 1, "{min}-{max} {workers}: ends at {next}");
            }
            assert!(m.media_ports_for(3, 3).is_empty());
        }
    }
}
