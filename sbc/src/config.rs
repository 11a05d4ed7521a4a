//! Configuration: one TOML file, read and validated once at start.
//!
//! Unknown keys are errors (`deny_unknown_fields`), and every error names the file, the key and the
//! line (toml's messages carry line and column). The embedded default (`config/default.toml`) shows every
//! key with its default and is used when no file is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            driver: DriverChoice::Auto,
            tcp_max_connections: 4096,
            tcp_idle_timeout_secs: 120,
            max_message_size: 65535,
        }
    }
}

impl Config {
    /// Parse and validate TOML text; `origin` names the source in errors.
    pub(crate) fn from_toml(text: &str, origin: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        config.validate().map_err(|e| format!("{origin}: {e}"))?;
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
        // The embedded file is checked by a unit test below.
        Self::from_toml(DEFAULT_TOML, "embedded default config")
            .unwrap_or_else(|e| panic!("embedded default config is invalid: {e}"))
    }

    fn validate(&self) -> Result<(), String> {
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
        Ok(())
    }

    /// The number of workers: configured, or one per core.
    pub(crate) fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(cores)
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
}
