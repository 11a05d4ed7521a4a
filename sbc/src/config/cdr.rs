//! `[cdr]` (call detail records: where they are written) and `[events]` (the webhook that call,
//! ban and fraud events are posted to), with their defaults and checks.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the embedded default writes CDRs.
pub(crate) const DEFAULT_SQLITE_PATH: &str = "/var/lib/sbc/cdr.sqlite";

/// `[cdr]`: one record per call, written by the CDR thread (docs/cdr.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CdrSection {
    /// Write CDRs at all.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// The SQLite file; `None`: [`DEFAULT_SQLITE_PATH`], and CDRs are turned off with a warning
    /// when it cannot be created (a set path that cannot be opened fails the start).
    #[serde(default)]
    pub(crate) sqlite_path: Option<PathBuf>,
    /// A PostgreSQL connection string (`postgresql://user@host/db` or `host=... user=...`); when
    /// set, CDRs go there instead of SQLite.
    #[serde(default)]
    pub(crate) postgres_url: Option<String>,
    /// Records waiting for the writer, over all workers; past it new records are dropped (counted).
    #[serde(default = "default_queue")]
    pub(crate) queue: usize,
    /// The most records written in one transaction.
    #[serde(default = "default_batch")]
    pub(crate) batch: usize,
}

impl Default for CdrSection {
    fn default() -> Self {
        Self {
            enabled: true,
            sqlite_path: None,
            postgres_url: None,
            queue: default_queue(),
            batch: default_batch(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_queue() -> usize {
    10_000
}

fn default_batch() -> usize {
    500
}

impl CdrSection {
    /// Checks of the values alone.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.queue == 0 || self.queue > 1_000_000 {
            return Err("cdr.queue: must be between 1 and 1000000".into());
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Err("cdr.batch: must be between 1 and 10000".into());
        }
        if let Some(url) = &self.postgres_url {
            url.parse::<postgres::Config>()
                .map_err(|e| format!("cdr.postgres_url: {e}"))?;
        }
        Ok(())
    }
}

/// `[events]`: call start/answer/end, bans and fraud warnings posted as JSON to a webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsSection {
    /// `http://` or `https://` URL the events are POSTed to; `None`: no webhook.
    #[serde(default)]
    pub(crate) webhook_url: Option<String>,
    /// Events waiting to be posted; past it new events are dropped (counted).
    #[serde(default = "default_events_queue")]
    pub(crate) queue: usize,
    /// Attempts per event (the first and the retries) before it is dropped (counted).
    #[serde(default = "default_attempts")]
    pub(crate) attempts: u32,
    /// The timeout of one POST, connect included (ms).
    #[serde(default = "default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// The wait before the first retry (ms), doubled for each next one, at most 30 s.
    #[serde(default = "default_backoff_ms")]
    pub(crate) retry_backoff_ms: u64,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            webhook_url: None,
            queue: default_events_queue(),
            attempts: default_attempts(),
            timeout_ms: default_timeout_ms(),
            retry_backoff_ms: default_backoff_ms(),
        }
    }
}

fn default_events_queue() -> usize {
    10_000
}

fn default_attempts() -> u32 {
    5
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_backoff_ms() -> u64 {
    200
}

impl EventsSection {
    /// Checks of the values alone.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "events.webhook_url: must start with http:// or https://, not {url:?}"
                ));
            }
            url.parse::<ureq::http::Uri>()
                .map_err(|e| format!("events.webhook_url: {e}"))?;
        }
        if self.queue == 0 || self.queue > 1_000_000 {
            return Err("events.queue: must be between 1 and 1000000".into());
        }
        if self.attempts == 0 || self.attempts > 100 {
            return Err("events.attempts: must be between 1 and 100".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err("events.timeout_ms: must be between 1 and 60000".into());
        }
        if self.retry_backoff_ms > 30_000 {
            return Err("events.retry_backoff_ms: at most 30000".into());
        }
        Ok(())
    }
}
