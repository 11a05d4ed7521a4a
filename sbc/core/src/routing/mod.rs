//! Routing: number normalization, routing rules with a prefix index, and inside targets with
//! health checks and fail-over.
//!
//! Everything here is plain data plus pure functions; the binary converts its configuration into
//! these types. Time is an input: the caller supplies the local wall time for routing decisions
//! ([`LocalTime`]) and a monotonic `now` for health checks ([`HealthMonitor`]).
//!
//! - Numbers: [`strip_visual_separators`], [`to_e164`], [`to_national`] and an ordered list of
//!   [`NumberRule`]s applied by [`normalize`] (first matching rule wins).
//! - Routes: [`Route`]s looked up by [`Router::route`] through a byte trie over the called number's
//!   prefixes, so a lookup costs O(length of the number) plus the rules stored on the matched path,
//!   never a scan of every rule. The longest matching prefix wins; among rules with the same prefix,
//!   the first in configuration order whose source and time window match.
//! - Targets: a [`TargetGroup`] of inside [`Target`]s, a sans-IO [`HealthMonitor`] that schedules
//!   SIP OPTIONS probes and tracks Up/Down, and [`select`], which orders the candidates for a new call
//!   so the B2BUA can fail over to the next one on 408, 503 or timeout.

pub mod policy;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::signalling::topology::Side;

// ---------------------------------------------------------------------------------------------
// Number normalization
// ---------------------------------------------------------------------------------------------

/// One number rewriting rule: if the number starts with `match_prefix` and its length (in
/// characters) is within `min_len..=max_len`, remove the first `strip` characters and put `prepend`
/// in front.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumberRule {
    /// The number must start with this (the empty string matches every number).
    pub match_prefix: String,
    /// How many leading characters to remove (saturating: stripping more than the number holds
    /// leaves the empty string).
    pub strip: usize,
    /// What to put in front after stripping.
    pub prepend: String,
    /// Smallest length, in characters, of the number for the rule to match.
    pub min_len: Option<usize>,
    /// Largest length, in characters, of the number for the rule to match.
    pub max_len: Option<usize>,
}

impl NumberRule {
    /// Whether this rule applies to `number`.
    pub fn matches(&self, number: &str) -> bool {
        if !number.starts_with(self.match_prefix.as_str()) {
            return false;
        }
        if self.min_len.is_none() && self.max_len.is_none() {
            return true;
        }
        let len = number.chars().count();
        self.min_len.is_none_or(|min| len >= min) && self.max_len.is_none_or(|max| len <= max)
    }

    /// Applies the rewrite (strip, then prepend) without checking [`NumberRule::matches`].
    pub fn apply(&self, number: &str) -> String {
        let rest = match number.char_indices().nth(self.strip) {
            Some((i, _)) => number.get(i..).unwrap_or(""),
            None => "",
        };
        let mut out = String::with_capacity(self.prepend.len() + rest.len());
        out.push_str(&self.prepend);
        out.push_str(rest);
        out
    }
}

/// Applies the first rule of `rules` that matches `number`; returns the number unchanged (borrowed)
/// when none matches.
pub fn normalize<'a>(rules: &[NumberRule], number: &'a str) -> Cow<'a, str> {
    match rules.iter().find(|r| r.matches(number)) {
        Some(rule) => Cow::Owned(rule.apply(number)),
        None => Cow::Borrowed(number),
    }
}

/// Whether `c` is a visual separator of RFC 3966 (`-`, `.`, `(`, `)`) or a space, as people write
/// them in dialled numbers.
fn is_visual_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '(' | ')' | ' ')
}

/// Removes visual separators (`-`, `.`, ` `, `(`, `)`) from a number: `"+49 (30) 123-45.67"` becomes
/// `"+49301234567"`. Borrows when there is none.
pub fn strip_visual_separators(number: &str) -> Cow<'_, str> {
    if number.contains(is_visual_separator) {
        Cow::Owned(
            number
                .chars()
                .filter(|c| !is_visual_separator(*c))
                .collect(),
        )
    } else {
        Cow::Borrowed(number)
    }
}

/// Converts a dialled number to E.164 (`+` followed by the country code):
///
/// - already starting with `+`: unchanged;
/// - starting with `international_prefix` (e.g. `"00"`): the prefix becomes `+`
///   (`"00441234"` → `"+441234"`);
/// - starting with `national_prefix` (e.g. `"0"`): the prefix becomes `+` and the country code
///   (`"0301234567"`, cc 49 → `"+49301234567"`);
/// - anything else (a short or local number, a service code): unchanged, since no area code can be
///   inferred.
///
/// The international prefix is tested first, because it usually starts with the national one.
/// An empty prefix never matches. Separators are not removed here; see
/// [`strip_visual_separators`].
pub fn to_e164<'a>(
    number: &'a str,
    country_code: u16,
    national_prefix: &str,
    international_prefix: &str,
) -> Cow<'a, str> {
    if number.starts_with('+') {
        return Cow::Borrowed(number);
    }
    if !international_prefix.is_empty() {
        if let Some(rest) = number.strip_prefix(international_prefix) {
            return Cow::Owned(format!("+{rest}"));
        }
    }
    if !national_prefix.is_empty() {
        if let Some(rest) = number.strip_prefix(national_prefix) {
            return Cow::Owned(format!("+{country_code}{rest}"));
        }
    }
    Cow::Borrowed(number)
}

/// Converts an E.164 number to the national dialling format, for trunks that want it:
/// `"+49301234567"` with cc 49 and national prefix `"0"` → `"0301234567"`; a number of another
/// country gets the international prefix (`"+441234"` → `"00441234"`). A number without `+` is
/// returned unchanged.
pub fn to_national<'a>(
    number: &'a str,
    country_code: u16,
    national_prefix: &str,
    international_prefix: &str,
) -> Cow<'a, str> {
    let Some(rest) = number.strip_prefix('+') else {
        return Cow::Borrowed(number);
    };
    let cc = country_code.to_string();
    match rest.strip_prefix(cc.as_str()) {
        Some(national) => Cow::Owned(format!("{national_prefix}{national}")),
        None => Cow::Owned(format!("{international_prefix}{rest}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Routing rules
// ---------------------------------------------------------------------------------------------

/// Identifier of a configured trunk (the binary maps trunk names to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub u32);

/// Identifier of a configured [`TargetGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetGroupId(pub u32);

/// Where a new call comes from, as known to the B2BUA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallSource {
    /// The side it arrived on.
    pub side: Side,
    /// The trunk it was recognised as coming from, if any.
    pub trunk: Option<TrunkId>,
}

/// Which calls a [`Route`] applies to, by source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceMatch {
    /// Every call.
    Any,
    /// Calls recognised as coming from this trunk.
    Trunk(TrunkId),
    /// Calls arriving on the inside.
    Inside,
    /// Calls arriving on the outside.
    Outside,
}

impl SourceMatch {
    /// Whether `source` is matched.
    pub fn matches(&self, source: &CallSource) -> bool {
        match self {
            Self::Any => true,
            Self::Trunk(t) => source.trunk == Some(*t),
            Self::Inside => source.side == Side::Inside,
            Self::Outside => source.side == Side::Outside,
        }
    }
}

/// Local wall time supplied by the caller (the core reads no clock and knows no time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    /// Day of the week: 0 = Monday … 6 = Sunday. Other values match no time window.
    pub weekday: u8,
    /// Minutes since local midnight, 0..1440. Other values match no time window.
    pub minute_of_day: u16,
}

/// A weekly time window. `start_min..end_min` is half-open; when `start_min > end_min` the window
/// wraps midnight and belongs to the day it starts on (Friday 22:00–06:00 covers Friday night and
/// Saturday morning until 06:00). `start_min == end_min` means the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// Days the window starts on: bit 0 = Monday … bit 6 = Sunday (see the constants).
    pub days: u8,
    /// Start, minutes since midnight (inclusive).
    pub start_min: u16,
    /// End, minutes since midnight (exclusive).
    pub end_min: u16,
}

impl TimeWindow {
    /// Monday's bit in [`TimeWindow::days`].
    pub const MON: u8 = 1 << 0;
    /// Tuesday's bit.
    pub const TUE: u8 = 1 << 1;
    /// Wednesday's bit.
    pub const WED: u8 = 1 << 2;
    /// Thursday's bit.
    pub const THU: u8 = 1 << 3;
    /// Friday's bit.
    pub const FRI: u8 = 1 << 4;
    /// Saturday's bit.
    pub const SAT: u8 = 1 << 5;
    /// Sunday's bit.
    pub const SUN: u8 = 1 << 6;
    /// Monday to Friday.
    pub const WORKDAYS: u8 = 0b001_1111;
    /// Every day.
    pub const ALL_DAYS: u8 = 0b111_1111;

    fn has_day(&self, weekday: u8) -> bool {
        weekday < 7 && self.days & (1 << weekday) != 0
    }

    /// Whether `t` falls inside the window.
    pub fn contains(&self, t: LocalTime) -> bool {
        if t.weekday > 6 || t.minute_of_day >= 1440 {
            return false;
        }
        let m = t.minute_of_day;
        let (start, end) = (self.start_min, self.end_min);
        let today = self.has_day(t.weekday);
        if start == end {
            today
        } else if start < end {
            today && start <= m && m < end
        } else {
            let yesterday = self.has_day((t.weekday + 6) % 7);
            (today && m >= start) || (yesterday && m < end)
        }
    }
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Name, for logs and CDRs.
    pub name: String,
    /// Which sources the rule applies to.
    pub source: SourceMatch,
    /// Prefix of the called number (after normalization); empty matches every number.
    pub prefix: String,
    /// When the rule applies; `None` is always.
    pub time: Option<TimeWindow>,
    /// Where matched calls go.
    pub target: TargetGroupId,
    /// Number rules applied to numbers on the way out (see [`Route::rewrite_outbound`]).
    pub number_rules: Vec<NumberRule>,
}

impl Route {
    /// Whether the rule's source and time conditions hold (the prefix is checked by the router).
    pub fn applies(&self, source: &CallSource, time: LocalTime) -> bool {
        self.source.matches(source) && self.time.is_none_or(|w| w.contains(time))
    }

    /// Applies this route's outbound number rules to a number.
    pub fn rewrite_outbound<'a>(&self, number: &'a str) -> Cow<'a, str> {
        normalize(&self.number_rules, number)
    }
}

/// Node of the prefix trie.
#[derive(Debug, Default)]
struct Node {
    /// Children by next byte, sorted by byte.
    children: Vec<(u8, u32)>,
    /// Parent node; `None` for the root.
    parent: Option<u32>,
    /// Rules whose prefix ends at this node, in configuration order.
    rules: Vec<u32>,
}

/// The routing table: rules indexed by a byte trie over their prefixes.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    nodes: Vec<Node>,
}

impl Router {
    /// Builds the index. Rule order is kept: among rules with the same prefix the earlier wins.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut nodes = vec![Node::default()];
        for (ri, route) in routes.iter().enumerate() {
            let mut cur = 0usize;
            for b in route.prefix.bytes() {
                cur = match Self::child_of(&nodes, cur, b) {
                    Some(c) => c,
                    None => {
                        let new = nodes.len();
                        nodes.push(Node {
                            parent: u32::try_from(cur).ok(),
                            ..Node::default()
                        });
                        if let Some(n) = nodes.get_mut(cur) {
                            let pos = n.children.partition_point(|(k, _)| *k < b);
                            n.children
                                .insert(pos, (b, u32::try_from(new).unwrap_or(u32::MAX)));
                        }
                        new
                    }
                };
            }
            if let (Some(n), Ok(ri)) = (nodes.get_mut(cur), u32::try_from(ri)) {
                n.rules.push(ri);
            }
        }
        Self { routes, nodes }
    }

    fn child_of(nodes: &[Node], node: usize, b: u8) -> Option<usize> {
        let n = nodes.get(node)?;
        n.children
            .binary_search_by_key(&b, |(k, _)| *k)
            .ok()
            .and_then(|i| n.children.get(i))
            .map(|(_, c)| *c as usize)
    }

    /// The rules, in configuration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a call: the longest prefix of `called` that has a rule whose source and
    /// time window match; among rules with that prefix, the first in configuration order. A prefix
    /// whose rules all fail their conditions falls back to shorter prefixes. `called` should already
    /// be normalized (e.g. E.164). No allocation.
    pub fn route(&self, source: &CallSource, called: &str, time: LocalTime) -> Option<&Route> {
        let mut node = 0usize;
        for b in called.bytes() {
            match Self::child_of(&self.nodes, node, b) {
                Some(c) => node = c,
                None => break,
            }
        }
        let mut cur = Some(node);
        while let Some(n) = cur {
            let nd = self.nodes.get(n)?;
            for &ri in &nd.rules {
                if let Some(r) = self.routes.get(ri as usize) {
                    if r.applies(source, time) {
                        return Some(r);
                    }
                }
            }
            cur = nd.parent.map(|p| p as usize);
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Targets, health, selection
// ---------------------------------------------------------------------------------------------

/// Transport used toward a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS.
    Tls,
}

/// One inside destination (PBX, trunk gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Where to send.
    pub addr: SocketAddr,
    /// How to send.
    pub transport: Transport,
    /// Lower values are tried first.
    pub priority: u8,
    /// Relative share among targets of equal priority; 0 means only after the others of that
    /// priority.
    pub weight: u16,
}

/// A group of targets a route points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Identifier referenced by [`Route::target`].
    pub id: TargetGroupId,
    /// The members.
    pub targets: Vec<Target>,
}

/// Health of a target as seen by OPTIONS probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No verdict yet (just started). Treated as [`Health::Up`] for selection, so calls flow at
    /// start-up before the first probe returns.
    Unknown,
    /// Answering.
    Up,
    /// Failed `down_after` consecutive probes.
    Down,
}

/// Index of a target in a [`HealthMonitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetIdx(pub usize);

/// Health-check and fail-over settings of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between the sending of two probes to one target.
    pub interval: Duration,
    /// A probe with no result after this long counts as failed (a guard in case the caller does not
    /// report the transaction timeout itself).
    pub timeout: Duration,
    /// Consecutive failures that take a target Down.
    pub down_after: u32,
    /// Consecutive successes that bring a Down target back Up.
    pub up_after: u32,
    /// Probe only targets that are Down (taken down by failed calls, see
    /// [`HealthMonitor::mark_down`]): the others are trusted until a call fails on them.
    pub only_down: bool,
    /// How long a new call waits for a target's first response before the next target is tried
    /// ([`Target::first_response`](crate::b2bua::Target::first_response)); `None`: the B2BUA's
    /// default.
    pub first_response: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(32),
            down_after: 3,
            up_after: 2,
            only_down: false,
            first_response: None,
        }
    }
}

/// The probe verdict is the B2BUA's (it sends the OPTIONS and reads the answer).
pub use crate::b2bua::response_means_alive;

#[derive(Debug, Clone)]
struct Probed {
    addr: SocketAddr,
    health: Health,
    failures: u32,
    successes: u32,
    next_probe: Instant,
    /// Deadline of the outstanding probe, if one is in flight.
    outstanding: Option<Instant>,
}

/// Sans-IO health monitor: tells the driver when to send an OPTIONS probe to each target and turns
/// the results into Up/Down states. At most one probe per target is outstanding.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    config: HealthConfig,
    targets: Vec<Probed>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl HealthMonitor {
    /// Monitors `addrs` (duplicates are monitored once); every target starts
    /// [`Health::Unknown`] and is due for a probe at `now`.
    pub fn new(
        config: HealthConfig,
        addrs: impl IntoIterator<Item = SocketAddr>,
        now: Instant,
    ) -> Self {
        let mut targets = Vec::new();
        let mut by_addr = HashMap::new();
        for addr in addrs {
            by_addr.entry(addr).or_insert_with(|| {
                targets.push(Probed {
                    addr,
                    health: Health::Unknown,
                    failures: 0,
                    successes: 0,
                    next_probe: now,
                    outstanding: None,
                });
                targets.len() - 1
            });
        }
        Self {
            config,
            targets,
            by_addr,
        }
    }

    /// Monitors every target of `groups`.
    pub fn for_groups(config: HealthConfig, groups: &[TargetGroup], now: Instant) -> Self {
        Self::new(
            config,
            groups.iter().flat_map(|g| g.targets.iter().map(|t| t.addr)),
            now,
        )
    }

    /// The index of `addr`, if monitored.
    pub fn index_of(&self, addr: SocketAddr) -> Option<TargetIdx> {
        self.by_addr.get(&addr).copied().map(TargetIdx)
    }

    /// Health of a target by index ([`Health::Unknown`] for an unknown index).
    pub fn health(&self, target: TargetIdx) -> Health {
        self.targets
            .get(target.0)
            .map_or(Health::Unknown, |t| t.health)
    }

    /// Health of a target by address ([`Health::Unknown`] if it is not monitored).
    pub fn health_of(&self, addr: SocketAddr) -> Health {
        self.index_of(addr)
            .map_or(Health::Unknown, |i| self.health(i))
    }

    /// Returns the next probe to send now, if any is due, and marks it outstanding. Call repeatedly
    /// until `None`. Expired outstanding probes are counted as failures first.
    pub fn poll_probe(&mut self, now: Instant) -> Option<(TargetIdx, SocketAddr)> {
        self.handle_timeout(now);
        let config = self.config;
        let (i, t) = self.targets.iter_mut().enumerate().find(|(_, t)| {
            t.outstanding.is_none()
                && t.next_probe <= now
                && (!config.only_down || t.health == Health::Down)
        })?;
        t.outstanding = Some(now + config.timeout);
        t.next_probe = now + config.interval;
        Some((TargetIdx(i), t.addr))
    }

    /// Reports the result of the outstanding probe of `target`: `ok` for a response that shows it
    /// alive (see [`response_means_alive`]), `false` for 408, 503 or a transaction timeout. A result
    /// with no probe outstanding (late, or already timed out here) is ignored. `now` is taken for
    /// symmetry with the other inputs; the next probe is already scheduled from the send time.
    pub fn handle_probe_result(&mut self, now: Instant, target: TargetIdx, ok: bool) {
        let _ = now;
        let config = self.config;
        let Some(t) = self.targets.get_mut(target.0) else {
            return;
        };
        if t.outstanding.take().is_none() {
            return;
        }
        Self::record(t, &config, ok);
    }

    fn record(t: &mut Probed, config: &HealthConfig, ok: bool) {
        if ok {
            t.failures = 0;
            t.successes = t.successes.saturating_add(1);
            // From Unknown one success is enough; from Down it takes `up_after`.
            if t.health == Health::Unknown || t.successes >= config.up_after {
                t.health = Health::Up;
            }
        } else {
            t.successes = 0;
            t.failures = t.failures.saturating_add(1);
            if t.failures >= config.down_after {
                t.health = Health::Down;
            }
        }
    }

    /// Passive health: a call failed on `addr` (no first response in time, no final response, or
    /// 503), so it is Down at once, without waiting for `down_after` probes; probes bring it back
    /// (`up_after` successes). The next probe is due at once. Unmonitored addresses are ignored.
    pub fn mark_down(&mut self, now: Instant, addr: SocketAddr) {
        let config = self.config;
        let Some(t) = self
            .by_addr
            .get(&addr)
            .and_then(|&i| self.targets.get_mut(i))
        else {
            return;
        };
        t.health = Health::Down;
        t.successes = 0;
        t.failures = t.failures.max(config.down_after);
        if t.outstanding.is_none() {
            t.next_probe = t.next_probe.min(now);
        }
    }

    /// Take over what `old` learned of the targets both monitor (health, counts, the next probe
    /// time); a probe `old` had in flight is forgotten (its result would name an old index).
    pub fn adopt(&mut self, old: &Self) {
        for t in &mut self.targets {
            let Some(o) = old.by_addr.get(&t.addr).and_then(|&i| old.targets.get(i)) else {
                continue;
            };
            t.health = o.health;
            t.failures = o.failures;
            t.successes = o.successes;
            t.next_probe = o.outstanding.map_or(o.next_probe, |_| t.next_probe);
        }
    }

    /// Counts every outstanding probe whose deadline has passed as a failure.
    pub fn handle_timeout(&mut self, now: Instant) {
        let config = self.config;
        for t in &mut self.targets {
            if t.outstanding.is_some_and(|d| d <= now) {
                t.outstanding = None;
                Self::record(t, &config, false);
            }
        }
    }

    /// The next instant at which [`HealthMonitor::poll_probe`] has work (a probe due or a probe
    /// deadline); `None` when nothing is monitored.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.targets
            .iter()
            .map(|t| t.outstanding.unwrap_or(t.next_probe))
            .min()
    }
}

/// Small deterministic generator (SplitMix64) for weighted ordering.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Candidate targets of a group in the order a new call should try them (see [`select`]).
#[derive(Debug)]
pub struct Candidates<'a> {
    group: &'a TargetGroup,
    order: std::vec::IntoIter<usize>,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Target;

    fn next(&mut self) -> Option<&'a Target> {
        let i = self.order.next()?;
        self.group.targets.get(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

/// Orders the targets of `group` for a new call; the B2BUA tries them in turn, moving to the next
/// on 408, 503 or timeout.
///
/// - Up and Unknown targets come first, Down targets last: Down targets are kept rather than
///   excluded, so that a call is still attempted when every target is marked down (the probe may
///   be wrong, e.g. a PBX that drops OPTIONS but takes calls).
/// - Within each of those two classes, lower `priority` first.
/// - Among equal priority, a weighted random order (each next pick with probability proportional to
///   its weight, as in RFC 2782); weight 0 targets follow the others of their priority in
///   configuration order. The randomness comes only from `seed`, so equal seeds give equal orders.
pub fn select<'a>(group: &'a TargetGroup, health: &HealthMonitor, seed: u64) -> Candidates<'a> {
    let mut rng = SplitMix(seed);
    let down = |t: &Target| health.health_of(t.addr) == Health::Down;
    let mut idx: Vec<usize> = (0..group.targets.len()).collect();
    let key = |i: &usize| {
        group
            .targets
            .get(*i)
            .map_or((true, u8::MAX), |t| (down(t), t.priority))
    };
    idx.sort_by_key(key); // stable: configuration order within a class and priority
    let mut order = Vec::with_capacity(idx.len());
    let mut rest = idx.as_slice();
    while let Some(first) = rest.first() {
        let k = key(first);
        let n = rest.iter().take_while(|i| key(i) == k).count();
        let (block, tail) = rest.split_at(n);
        weighted_order(group, block, &mut rng, &mut order);
        rest = tail;
    }
    Candidates {
        group,
        order: order.into_iter(),
    }
}

/// Appends `block` to `out` in weighted random order; zero weights last in given order.
fn weighted_order(group: &TargetGroup, block: &[usize], rng: &mut SplitMix, out: &mut Vec<usize>) {
    let weight = |i: usize| u64::from(group.targets.get(i).map_or(0, |t| t.weight));
    let mut pool: Vec<usize> = block.iter().copied().filter(|&i| weight(i) > 0).collect();
    while !pool.is_empty() {
        let total: u64 = pool.iter().map(|&i| weight(i)).sum();
        let mut r = rng.next() % total.max(1);
        let mut pick = 0usize;
        for (pos, &i) in pool.iter().enumerate() {
            let w = weight(i);
            if r < w {
                pick = pos;
                break;
            }
            r -= w;
        }
        out.push(pool.remove(pick));
    }
    out.extend(block.iter().copied().filter(|&i| weight(i) == 0));
}

#[cfg(test)]
mod tests;
