//! Cross checks of a parsed file: ranges, keys that depend on each other, the media range against
//! the kernel's ephemeral ports, header names. References between sections (a route naming a
//! target group or trunk) are resolved, and checked, by the conversion ([`super::convert`]), which
//! loading runs too.

use sbc_core::signalling::topology::is_owned;

use super::*;

/// Headers whose handling depends on trust and that overrides never change.
const NOT_OVERRIDABLE: &[&str] = &[
    "User-Agent",
    "Server",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Authorization",
    "Proxy-Authorization",
];

impl TopologySection {
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

pub(super) fn check_number_rules(what: &str, rules: &[NumberRuleSection]) -> Result<(), String> {
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
    pub(super) fn validate(&self, text: &str, ephemeral: Option<(u16, u16)>) -> Result<(), String> {
        if self.workers == Some(0) || self.workers.is_some_and(|w| w > 1024) {
            return Err("workers: must be in 1..=1024".into());
        }
        if !self.sip.tls.is_empty() && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            return Err("sip.tls: TLS listeners need [tls] cert and key".into());
        }
        if self.sip.udp.is_empty() && self.sip.tcp.is_empty() && self.sip.tls.is_empty() {
            return Err("sip: no listen address (udp, tcp, tls are all empty)".into());
        }
        self.guard.check()?;
        self.cdr.check()?;
        self.events.check()?;
        self.codecs.policies()?;
        self.srtp_policy()?;
        self.dtmf.policy()?;
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
        self.validate_streams()?;
        self.validate_numbers()?;
        self.validate_registrar()?;
        self.validate_media(ephemeral)?;
        self.validate_limits()?;
        self.topology.validate()?;
        let sip_streams: Vec<_> = self.sip.tcp.iter().chain(&self.sip.tls).copied().collect();
        self.api.validate(&sip_streams)?;
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
        if let Some(ng) = m.ng_listen {
            if !ng.ip().is_loopback() && !m.ng_allow_public {
                return Err(format!(
                    "media.ng_listen: {ng} is not a loopback address; the ng protocol has no \
                     authentication (set media.ng_allow_public = true to bind it anyway, with \
                     media.ng_allowed naming the proxies)"
                ));
            }
        }
        if !(1..=8).contains(&m.early_streams) {
            return Err("media.early_streams: must be in 1..=8 (the streams of a session)".into());
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
        if l.drain_secs > 3600 {
            return Err("limits.drain_secs: at most 3600".into());
        }
        if l.first_response_ms > 32_000 {
            return Err("limits.first_response_ms: at most 32000 (Timer B)".into());
        }
        // Upper bounds keep every deadline computed from them far inside `Instant`'s range.
        for (key, v, max) in [
            (
                "max_call_duration_secs",
                l.max_call_duration_secs,
                7 * 86_400,
            ),
            ("ringing_timeout_secs", l.ringing_timeout_secs, 3_600),
            ("no_ack_timeout_secs", l.no_ack_timeout_secs, 300),
            // 64*T1, the RFC value.
            ("transaction_linger_secs", l.transaction_linger_secs, 32),
        ] {
            if v == 0 || v > max {
                return Err(format!("limits.{key}: must be in 1..={max}"));
            }
        }
        Ok(())
    }
}

impl MediaSection {
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
