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
//!
//! This file loads (and names key and line in errors); [`schema`] holds the serde structs,
//! [`validate`] the cross checks, [`convert`] the conversion into `sbc-core` types.

mod api;
mod cdr;
mod codecs;
mod convert;
mod dtmf;
mod guard;
mod legmedia;
mod rules;
mod schema;
mod srtp;
mod streams;
#[cfg(test)]
mod tests;
mod validate;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;

pub(crate) use cdr::{CdrSection, EventsSection, DEFAULT_SQLITE_PATH};
pub(crate) use convert::{CoreSettings, TrunkSettings};
pub(crate) use rules::{FraudRuleSection, RuleSection, UNTRUSTED_RULE};
pub(crate) use schema::*;
pub(crate) use streams::StreamPeer;

/// Where the kernel publishes its ephemeral (local) port range.
pub(crate) const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The embedded default configuration, also the documented example of every key.
pub(crate) const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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

/// The weekly window of `days` and `hours` (of a route or a fraud rule); `None` when neither is
/// given (always).
pub(crate) fn time_window(
    days: Option<Days>,
    hours: Option<Hours>,
) -> Option<sbc_core::routing::TimeWindow> {
    (days.is_some() || hours.is_some()).then(|| {
        let h = hours.unwrap_or(Hours {
            start_min: 0,
            end_min: 0,
        });
        sbc_core::routing::TimeWindow {
            days: days.map_or(sbc_core::routing::TimeWindow::ALL_DAYS, |d| d.0),
            start_min: h.start_min,
            end_min: h.end_min,
        }
    })
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
}

/// Cores available to this process.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
