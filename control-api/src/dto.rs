//! The JSON bodies of every endpoint: what the API answers (`Serialize`) and what it accepts
//! (`Deserialize`, unknown fields refused so that a misspelt key is named in a 422).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `GET /health`: the process answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// Always `"ok"`.
    pub status: String,
}

/// `GET /ready`: whether every worker is running and reporting (503 when not).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ready {
    /// Every worker has reported within the last seconds.
    pub ready: bool,
    /// Workers started.
    pub workers: u32,
    /// Workers whose latest report is recent.
    pub workers_reporting: u32,
}

/// `GET /api/v1/version`: what runs, for how long.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    /// The SBC's version.
    pub version: String,
    /// Seconds since the start.
    pub uptime_secs: u64,
    /// Worker threads.
    pub workers: u32,
}

/// A page of a list: `items` from `offset`, at most `limit`, of `total`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries of this page.
    pub items: Vec<T>,
    /// Entries in the whole list.
    pub total: u64,
    /// The page's size asked for.
    pub limit: u32,
    /// The first entry's position in the whole list.
    pub offset: u32,
}

impl<T> Page<T> {
    /// The page `paging` of `all`.
    pub fn of(all: Vec<T>, paging: Paging) -> Self {
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(paging.offset as usize)
            .take(paging.limit as usize)
            .collect();
        Self {
            items,
            total,
            limit: paging.limit,
            offset: paging.offset,
        }
    }
}

/// `limit` (1 to 1000, default 100) and `offset` (default 0) of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// Entries per page.
    pub limit: u32,
    /// Entries skipped.
    pub offset: u32,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
        }
    }
}

/// The filters of `GET /api/v1/calls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Calls whose caller contains this.
    pub caller: Option<String>,
    /// Calls whose callee contains this.
    pub callee: Option<String>,
    /// Calls out to this trunk.
    pub trunk: Option<String>,
    /// Calls in this state (`"ringing"`, `"answered"`, `"confirmed"`, `"ending"`).
    pub state: Option<String>,
}

/// Media statistics of one leg.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LegMedia {
    /// Packets received from the leg's party.
    pub packets_rx: u64,
    /// Packets sent to it.
    pub packets_tx: u64,
    /// Bytes received.
    pub bytes_rx: u64,
    /// Bytes sent.
    pub bytes_tx: u64,
    /// Packets lost on the way in.
    pub lost: u64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Estimated MOS (1 to 4.5), when known.
    pub mos: Option<f64>,
    /// SRTP/SRTCP packets from the party that passed the SBC's SRTP stage (0 without SRTP
    /// terminated on the leg or toward the other).
    #[serde(default)]
    pub srtp_packets: u64,
    /// Packets from the party whose SRTP authentication tag did not verify (tampered, wrong key).
    #[serde(default)]
    pub srtp_auth_failures: u64,
    /// Packets from the party refused as SRTP replays.
    #[serde(default)]
    pub srtp_replays: u64,
    /// Every packet from the party the SRTP stage refused (the two above included).
    #[serde(default)]
    pub srtp_refused: u64,
    /// Audio frames from the party transcoded into the other leg's codec.
    #[serde(default)]
    pub transcoded_frames: u64,
}

/// One leg of a call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Leg {
    /// `"outside"` or `"inside"`.
    pub side: String,
    /// The leg's Call-ID.
    pub call_id: String,
    /// The party's address.
    pub remote: String,
    /// Its media, when anchored.
    pub media: Option<LegMedia>,
}

/// A call in progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Call {
    /// The call's id in this API.
    pub id: String,
    /// `"ringing"`, `"answered"` (the caller's ACK awaited), `"confirmed"` or `"ending"`.
    pub state: String,
    /// The caller (user of From), as received.
    pub caller: String,
    /// The called number sent to the target, after number rules.
    pub callee: String,
    /// The trunk the call went out to, if it went to one.
    pub trunk: Option<String>,
    /// The next hop it went to (`ip:port`).
    pub target: Option<String>,
    /// Seconds since the INVITE.
    pub age_secs: u64,
    /// The worker that owns it.
    pub worker: u32,
    /// Both legs.
    pub legs: Vec<Leg>,
}

/// A registration binding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registration {
    /// The address of record.
    pub aor: String,
    /// The contact the SBC relays to.
    pub contact: String,
    /// The phone's source address.
    pub source: String,
    /// `"udp"`, `"tcp"` or `"tls"`.
    pub transport: String,
    /// Seconds until it expires.
    pub expires_secs: u64,
    /// The worker that holds it.
    pub worker: u32,
}

/// The administrative state asked of a target or trunk.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdminAction {
    /// Take new calls again.
    Enable,
    /// Take no new call; calls in progress go on.
    Disable,
    /// As disable, and say when the last call has ended.
    Drain,
}

impl AdminAction {
    /// The action named in a path (`enable`, `disable`, `drain`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "enable" => Some(Self::Enable),
            "disable" => Some(Self::Disable),
            "drain" => Some(Self::Drain),
            _ => None,
        }
    }
}

/// One target of a group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    /// Its address.
    pub address: String,
    /// `"up"`, `"down"`, `"disabled"` or `"draining"`.
    pub state: String,
    /// Calls on it now.
    pub calls: u64,
}

/// A target group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its name.
    pub name: String,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// A carrier trunk.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Trunk {
    /// Its name.
    pub name: String,
    /// `"up"`, `"down"`, `"disabled"` or `"draining"`.
    pub state: String,
    /// Whether the SBC's registration with it is in force (`None`: it does not register).
    pub registered: Option<bool>,
    /// Calls on it now.
    pub calls: u64,
}

/// How many workers took a change (all of them, unless a worker's channel was full).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    /// Workers that took it.
    pub workers: u32,
    /// Workers asked.
    pub of: u32,
}

/// A ban in force.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ban {
    /// The banned address.
    pub ip: IpAddr,
    /// Seconds left (`None`: until removed).
    pub remaining_secs: Option<u64>,
    /// Bans in a row (each doubles the length).
    pub level: u8,
    /// Why: `flood`, `unknown_users`, `auth_failures`, `sweep`, `scanner` or `manual`.
    pub reason: String,
    /// Workers that hold it (the guard is per worker).
    pub workers: u32,
}

/// `POST /api/v1/bans`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// The address to ban.
    pub ip: IpAddr,
    /// Its length in seconds (absent: until removed).
    #[serde(default)]
    pub secs: Option<u64>,
}

/// An allowed (trusted) network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AllowEntry {
    /// The network (`"10.0.0.0/8"`).
    pub network: String,
    /// `"config"` (from `guard.trusted_networks`) or `"api"` (added at run time).
    pub source: String,
}

/// `POST /api/v1/allow`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowRequest {
    /// The network or address to trust.
    pub network: String,
}

/// What a rule's limits count.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// All the rule's calls together.
    Rule,
    /// Each source address apart.
    #[default]
    Source,
    /// Each caller apart.
    User,
}

/// A call rule, in the shape of a `[[rules]]` table of the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CallRule {
    /// Its name.
    pub name: String,
    /// Calls from or to this trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    /// Calls from these networks.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only calls from unknown outside sources.
    #[serde(default)]
    pub untrusted: bool,
    /// Callers refused.
    #[serde(default)]
    pub caller_blacklist: Vec<String>,
    /// When not empty, the only callers let through.
    #[serde(default)]
    pub caller_whitelist: Vec<String>,
    /// Numbers that cannot be called.
    #[serde(default)]
    pub callee_blacklist: Vec<String>,
    /// When not empty, the only numbers that can be called.
    #[serde(default)]
    pub callee_whitelist: Vec<String>,
    /// Concurrent calls per counter; 0: no limit.
    #[serde(default)]
    pub max_calls: u32,
    /// New calls per second per counter; 0: no limit.
    #[serde(default)]
    pub max_cps: f64,
    /// What the limits count.
    #[serde(default)]
    pub per: Per,
}

/// One of a rule's lists, as named in the path.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleList {
    /// `caller_blacklist`.
    CallerBlacklist,
    /// `caller_whitelist`.
    CallerWhitelist,
    /// `callee_blacklist`.
    CalleeBlacklist,
    /// `callee_whitelist`.
    CalleeWhitelist,
}

impl RuleList {
    /// The list named in a path.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "caller_blacklist" => Some(Self::CallerBlacklist),
            "caller_whitelist" => Some(Self::CallerWhitelist),
            "callee_blacklist" => Some(Self::CalleeBlacklist),
            "callee_whitelist" => Some(Self::CalleeWhitelist),
            _ => None,
        }
    }
}

/// `POST /api/v1/rules/{name}/{list}`: a number, or a prefix ending with `*`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    /// The entry.
    pub entry: String,
}

/// A warning and a critical threshold; 0 turns a level off.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Logged and reported.
    pub warning: u32,
    /// The call is refused.
    pub critical: u32,
}

fn yes() -> bool {
    true
}

/// A fraud rule, in the shape of a `[[fraud.rules]]` table of the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FraudRule {
    /// Its name.
    pub name: String,
    /// Only this caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Counters per caller (default) or one set for the rule.
    #[serde(default = "yes")]
    pub per_account: bool,
    /// Only calls from or to this trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    /// Only callees starting with this.
    #[serde(default)]
    pub prefix: String,
    /// Days it applies (`"mon-fri"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<String>,
    /// Hours it applies (`"20:00-07:00"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Calls per minute.
    #[serde(default)]
    pub calls_per_minute: Thresholds,
    /// Calls at once.
    #[serde(default)]
    pub concurrent_calls: Thresholds,
    /// Minutes per day.
    #[serde(default)]
    pub minutes_per_day: Thresholds,
    /// Calls in a row to numbers that follow each other.
    #[serde(default)]
    pub sequential_calls: Thresholds,
}

/// A fraud rule's threshold crossed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FraudEvent {
    /// The rule.
    pub rule: String,
    /// The caller.
    pub account: String,
    /// The number dialled.
    pub callee: String,
    /// The INVITE's source.
    pub source: IpAddr,
    /// What crossed the threshold.
    pub metric: String,
    /// Its value.
    pub value: u64,
    /// The threshold reached.
    pub threshold: u32,
    /// `"warning"` or `"critical"` (the call was refused).
    pub level: String,
}

/// A media session of the relay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaSession {
    /// The session's id.
    pub id: String,
    /// The call it belongs to.
    pub call: Option<String>,
    /// The relay ports.
    pub ports: Vec<u16>,
    /// Each side's statistics.
    pub legs: Vec<LegMedia>,
    /// The worker that owns it.
    pub worker: u32,
}

/// `POST /api/v1/config/check`: a config file's text to check without applying it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigText {
    /// The TOML text.
    pub toml: String,
}

/// The verdict on a config file: valid, or the error naming key and line.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigVerdict {
    /// It is valid (and, for a reload, now in force).
    pub ok: bool,
    /// What is wrong, naming key and line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The keys that differ from the configuration in force and change at run time (applied by
    /// a reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// The keys that differ and need a restart (a reload leaves them as they are in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_needed: Option<Vec<String>>,
    /// A reload: the workers that applied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
}

/// An error answer: what went wrong and, when one field is at fault, its name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The field (body key, query parameter or path segment) at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
