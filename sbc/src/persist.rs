//! Registrations across a restart: the bindings the workers hold (with the SBC's registration of
//! each at the PBX) are stored in `registrar.state_file` and put back at start, so the PBX's calls
//! to phones that are not behind NAT keep reaching them after an upgrade.
//!
//! - Written by a thread of its own (`sbc-persist`), never on the packet path: a worker sends a
//!   snapshot of its bindings over a bounded channel from its 1 s tick when a binding was created,
//!   moved or removed since the last one, and always when it stops. A full channel drops the
//!   snapshot (the next tick sends a newer one).
//! - Atomic: the file is written to `<file>.tmp`, synced and renamed over the old one.
//! - Bounded: at most `registrar.capacity` bindings are written and read; a file larger than
//!   [`ENTRY_BYTES`] per binding is refused.
//! - Only UDP bindings are stored (a TCP or TLS connection does not survive the restart; such a
//!   phone registers again on a new one). Expiries are stored as wall-clock times; bindings
//!   expired at load are dropped, and so are those of workers the new configuration does not have
//!   (the PBX reaches worker `w` on its own inside port).
//! - A file that cannot be read as a state file is refused with a log line, kept aside as
//!   `<file>.corrupt`, and the SBC starts with no registration.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sbc_core::b2bua::StoredRegistration;
use sbc_core::registration::registrar::{Aor, Binding, Transport};
use serde::{Deserialize, Serialize};

/// The most bytes a stored binding may take in the file, on average (the file bound).
pub(crate) const ENTRY_BYTES: u64 = 2048;
/// The version written in the file; another version is refused.
const VERSION: u32 = 1;
/// Snapshots waiting for the writer, per worker.
const QUEUE_PER_WORKER: usize = 2;

/// The file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default)]
    binding: Vec<Entry>,
}

/// One binding in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    worker: u16,
    aor: String,
    contact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    source: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<u64>,
    nated: bool,
    call_id: String,
    cseq: u32,
    /// Unix time the UA binding expires.
    ua_until: u64,
    /// Unix time the PBX binding expires.
    pbx_until: u64,
    /// The expiry the PBX granted, in seconds.
    pbx_expires: u64,
    /// The SBC's registration at the PBX (an empty token: none).
    token: String,
    pbx_call_id: String,
    pbx_tag: String,
    pbx_cseq: u32,
    pbx: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pbx_uri: Option<String>,
    pbx_reliable: bool,
    pbx_flow: u64,
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whole seconds of `d`, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

impl Entry {
    fn from_stored(worker: u16, s: StoredRegistration, unix: u64) -> Self {
        let b = s.binding;
        Self {
            worker,
            aor: b.aor.as_str().to_owned(),
            contact: b.contact_uri,
            instance: b.instance,
            source: b.source,
            connection: b.connection,
            nated: b.nated,
            call_id: b.call_id,
            cseq: b.cseq,
            ua_until: unix.saturating_add(ceil_secs(s.ua_left)),
            pbx_until: unix.saturating_add(ceil_secs(s.pbx_left)),
            pbx_expires: b.expires_pbx.as_secs(),
            token: s.token,
            pbx_call_id: s.call_id,
            pbx_tag: s.tag,
            pbx_cseq: s.cseq,
            pbx: s.dest,
            pbx_uri: s.uri,
            pbx_reliable: s.reliable,
            pbx_flow: s.flow,
        }
    }

    /// The binding to put back at `now` (wall clock `unix`); `None` when expired or unreadable.
    fn into_stored(self, now: Instant, unix: u64) -> Option<StoredRegistration> {
        let ua_left = self.ua_until.checked_sub(unix).filter(|s| *s > 0)?;
        let pbx_left = self.pbx_until.checked_sub(unix).filter(|s| *s > 0)?;
        let aor = Aor::parse(&self.aor).ok()?;
        Some(StoredRegistration {
            binding: Binding {
                aor,
                contact_uri: self.contact,
                instance: self.instance,
                source: self.source,
                transport: Transport::Udp,
                connection: self.connection,
                nated: self.nated,
                // Set again by the registrar from the time left.
                expires_ua: now,
                expires_pbx: Duration::from_secs(self.pbx_expires),
                pbx_until: now,
                call_id: self.call_id,
                cseq: self.cseq,
            },
            ua_left: Duration::from_secs(ua_left),
            pbx_left: Duration::from_secs(pbx_left),
            token: self.token,
            call_id: self.pbx_call_id,
            tag: self.pbx_tag,
            cseq: self.pbx_cseq,
            dest: self.pbx,
            uri: self.pbx_uri,
            reliable: self.pbx_reliable,
            flow: self.pbx_flow,
        })
    }
}

/// `<path><suffix>`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The bindings stored in `path`, per worker (`workers` lists), at most `capacity` in all. A
/// missing file gives none; a corrupt one is logged, kept aside and gives none.
pub(crate) fn load(
    path: &Path,
    capacity: usize,
    workers: usize,
    now: Instant,
) -> Vec<Vec<StoredRegistration>> {
    let mut out = vec![Vec::new(); workers];
    let text = match read_bounded(path, capacity) {
        Ok(Some(t)) => t,
        Ok(None) => return out,
        Err(e) => {
            refuse(path, &e);
            return out;
        }
    };
    let file: StateFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            refuse(path, &e.to_string());
            return out;
        }
    };
    if file.version != VERSION {
        refuse(
            path,
            &format!("version {} (expected {VERSION})", file.version),
        );
        return out;
    }
    let unix = unix_now();
    let (mut taken, mut dropped) = (0usize, 0usize);
    for e in file.binding {
        let worker = usize::from(e.worker);
        match (out.get_mut(worker), taken < capacity) {
            (Some(list), true) => match e.into_stored(now, unix) {
                Some(s) => {
                    list.push(s);
                    taken += 1;
                }
                None => dropped += 1,
            },
            _ => dropped += 1,
        }
    }
    tracing::info!(
        file = %path.display(),
        read = taken,
        dropped,
        "registrar.state_file: stored registrations read"
    );
    out
}

/// The file's text, `None` when it does not exist; an error when it cannot be read or is larger
/// than the bound for `capacity` bindings.
fn read_bounded(path: &Path, capacity: usize) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let bound = ENTRY_BYTES
        .saturating_mul(capacity as u64)
        .saturating_add(4096);
    if meta.len() > bound {
        return Err(format!(
            "{} bytes, more than the {bound} allowed",
            meta.len()
        ));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Log why the file at `path` is refused and keep it aside.
fn refuse(path: &Path, why: &str) {
    let aside = with_suffix(path, ".corrupt");
    let kept = std::fs::rename(path, &aside).is_ok();
    tracing::error!(
        file = %path.display(),
        kept_as = %if kept { aside.display().to_string() } else { "-".into() },
        "registrar.state_file: refused ({why}); starting with no registration"
    );
}

/// One worker's bindings, sent to the writer.
pub(crate) struct Snapshot {
    worker: u16,
    entries: Vec<Entry>,
}

/// A worker's side of the store: when to send a snapshot, and where.
pub(crate) struct WorkerStore {
    worker: u16,
    tx: SyncSender<Snapshot>,
    /// The B2BUA's change counter at the last snapshot sent.
    sent: Option<u64>,
}

impl WorkerStore {
    /// From the 1 s tick: a snapshot when the bindings changed (`generation` moved) since the
    /// last one. Nothing is sent while nothing changed.
    pub(crate) fn tick(
        &mut self,
        generation: u64,
        export: impl FnOnce() -> Vec<StoredRegistration>,
    ) {
        if self.sent == Some(generation) {
            return;
        }
        if self.send(export()) {
            self.sent = Some(generation);
        }
    }

    /// At stop: the last snapshot, always (expiries are current).
    pub(crate) fn finish(self, export: Vec<StoredRegistration>) {
        let mut me = self;
        me.send(export);
    }

    fn send(&mut self, export: Vec<StoredRegistration>) -> bool {
        let unix = unix_now();
        let entries = export
            .into_iter()
            .map(|s| Entry::from_stored(self.worker, s, unix))
            .collect();
        match self.tx.try_send(Snapshot {
            worker: self.worker,
            entries,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The writer thread of `path` for `workers` workers, and each worker's side. The thread ends
/// when every worker's side is gone, after its last write.
pub(crate) fn start(
    path: PathBuf,
    workers: usize,
    capacity: usize,
) -> std::io::Result<(Vec<WorkerStore>, JoinHandle<()>)> {
    let (tx, rx) = sync_channel(QUEUE_PER_WORKER.saturating_mul(workers.max(1)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), "registrar.state_file: cannot create the directory: {e}");
        }
    }
    let thread = std::thread::Builder::new()
        .name("sbc-persist".into())
        .spawn(move || write_loop(&path, &rx, capacity))?;
    let stores = (0..workers)
        .map(|w| WorkerStore {
            worker: u16::try_from(w).unwrap_or(u16::MAX),
            tx: tx.clone(),
            sent: None,
        })
        .collect();
    Ok((stores, thread))
}

/// Keep each worker's latest snapshot and write the file after each batch of them.
fn write_loop(path: &Path, rx: &Receiver<Snapshot>, capacity: usize) {
    let mut latest: BTreeMap<u16, Vec<Entry>> = BTreeMap::new();
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        latest.insert(first.worker, first.entries);
        while let Ok(more) = rx.try_recv() {
            latest.insert(more.worker, more.entries);
        }
        let file = StateFile {
            version: VERSION,
            binding: latest.values().flatten().take(capacity).cloned().collect(),
        };
        match write_atomic(path, &file) {
            Ok(()) => failing = false,
            Err(e) => {
                // Once per run of failures: a read-only disk must not flood the log.
                if !failing {
                    tracing::warn!(file = %path.display(), "registrar.state_file: cannot write: {e}");
                }
                failing = true;
            }
        }
    }
}

/// Write `file` to `<path>.tmp`, sync it, and rename it over `path`.
fn write_atomic(path: &Path, file: &StateFile) -> Result<(), String> {
    let text = toml::to_string(file).map_err(|e| e.to_string())?;
    let tmp = with_suffix(path, ".tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    f.write_all(b"# Registrations held by the SBC (registrar.state_file); rewritten by the SBC.\n")
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
