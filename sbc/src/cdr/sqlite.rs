//! The SQLite backend: one file in WAL mode with `synchronous = FULL` (a committed transaction
//! survives a crash of the SBC and of the machine), the schema created at open and versioned.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Backend, Cdr, SCHEMA_VERSION};

/// The schema, for SQLite and PostgreSQL alike (`{ID}` is the key's type).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS cdr (
    id {ID},
    worker INTEGER NOT NULL,
    call_handle BIGINT NOT NULL,
    caller TEXT NOT NULL,
    dialled TEXT NOT NULL,
    callee TEXT NOT NULL,
    caller_side TEXT NOT NULL,
    target_side TEXT NOT NULL,
    trunk BOOLEAN NOT NULL,
    route_label TEXT,
    setup_ms BIGINT NOT NULL,
    ringing_ms BIGINT,
    answer_ms BIGINT,
    end_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    sip_status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ended_by TEXT NOT NULL,
    failovers INTEGER NOT NULL,
    flags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cdr_end_ms ON cdr (end_ms);
CREATE TABLE IF NOT EXISTS cdr_leg (
    cdr_id BIGINT NOT NULL REFERENCES cdr (id),
    leg TEXT NOT NULL,
    call_id TEXT NOT NULL,
    address TEXT NOT NULL,
    codec TEXT,
    streams INTEGER NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    rtcp_packets BIGINT NOT NULL,
    lost BIGINT NOT NULL,
    jitter_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (cdr_id, leg)
);
";

/// The columns of `cdr` after `id`, in the order of the inserts.
pub(crate) const CDR_COLUMNS: &str = "worker, call_handle, caller, dialled, callee, caller_side, \
     target_side, trunk, route_label, setup_ms, ringing_ms, answer_ms, end_ms, duration_ms, outcome, \
     sip_status, reason, ended_by, failovers, flags";

/// The columns of `cdr_leg`, in the order of the inserts.
pub(crate) const LEG_COLUMNS: &str =
    "cdr_id, leg, call_id, address, codec, streams, packets, bytes, rtcp_packets, lost, jitter_ms";

/// CDRs in a SQLite file.
pub(crate) struct Sqlite {
    db: Connection,
}

impl Sqlite {
    /// Open (or create, with its directory) the file at `path` and its schema.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let name = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let db = Connection::open(path).map_err(|e| format!("{name}: {e}"))?;
        let me = Self { db };
        me.prepare().map_err(|e| format!("{name}: {e}"))?;
        tracing::info!(file = %name, "CDRs: SQLite (WAL)");
        Ok(me)
    }

    fn prepare(&self) -> Result<(), String> {
        let e = |e: rusqlite::Error| e.to_string();
        // Another process (a CSV export) may hold the lock a moment: wait on this thread.
        self.db.busy_timeout(Duration::from_secs(5)).map_err(e)?;
        let mode: String = self
            .db
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("cannot switch to WAL (journal mode {mode})"));
        }
        self.db
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(e)?;
        let ddl = SCHEMA.replace("{ID}", "INTEGER PRIMARY KEY AUTOINCREMENT");
        self.db
            .execute_batch(&format!("BEGIN IMMEDIATE; {ddl} COMMIT;"))
            .map_err(e)?;
        let version: Option<i64> = self
            .db
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(e)?
            .flatten();
        match version {
            None => {
                self.db
                    .execute(
                        "INSERT INTO schema_version (version) VALUES (?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(e)?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(format!(
                    "schema version {v}, this SBC writes version {SCHEMA_VERSION}"
                ))
            }
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    fn write(&mut self, rows: &[Cdr]) -> Result<(), String> {
        let e = |e: rusqlite::Error| e.to_string();
        let tx = self.db.transaction().map_err(e)?;
        {
            let mut call = tx
                .prepare_cached(&format!(
                    "INSERT INTO cdr ({CDR_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
                ))
                .map_err(e)?;
            let mut leg = tx
                .prepare_cached(&format!(
                    "INSERT INTO cdr_leg ({LEG_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))
                .map_err(e)?;
            for r in rows {
                call.execute(params![
                    r.worker,
                    r.call_handle,
                    r.caller,
                    r.dialled,
                    r.callee,
                    r.caller_side,
                    r.target_side,
                    r.trunk,
                    r.route_label,
                    r.setup_ms,
                    r.ringing_ms,
                    r.answer_ms,
                    r.end_ms,
                    r.duration_ms,
                    r.outcome,
                    r.sip_status,
                    r.reason,
                    r.ended_by,
                    r.failovers,
                    r.flags,
                ])
                .map_err(e)?;
                let id = tx.last_insert_rowid();
                for l in &r.legs {
                    leg.execute(params![
                        id,
                        l.leg,
                        l.call_id,
                        l.address,
                        l.codec,
                        l.streams,
                        l.packets,
                        l.bytes,
                        l.rtcp_packets,
                        l.lost,
                        l.jitter_ms,
                    ])
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)
    }
}
