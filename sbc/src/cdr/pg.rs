//! The PostgreSQL backend (the synchronous `postgres` client, on the writer thread only): connected
//! on first use and again after an error, the schema created at connect and versioned.

use postgres::{Client, NoTls};

use super::sqlite::{CDR_COLUMNS, LEG_COLUMNS, SCHEMA};
use super::{Backend, Cdr, SCHEMA_VERSION};

/// CDRs in a PostgreSQL database.
pub(crate) struct Postgres {
    config: postgres::Config,
    client: Option<Client>,
}

impl Postgres {
    /// A backend for `url` (checked here; connected on the first write).
    pub(crate) fn new(url: &str) -> Result<Self, String> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| format!("cdr.postgres_url: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        Ok(Self {
            config,
            client: None,
        })
    }

    fn connect(&self) -> Result<Client, String> {
        let mut c = self
            .config
            .connect(NoTls)
            .map_err(|e| format!("connect: {e}"))?;
        let ddl = SCHEMA.replace("{ID}", "BIGSERIAL PRIMARY KEY");
        let mut tx = c.transaction().map_err(|e| e.to_string())?;
        // One SBC at a time creates the schema.
        tx.batch_execute("SELECT pg_advisory_xact_lock(7235001)")
            .map_err(|e| e.to_string())?;
        tx.batch_execute(&ddl).map_err(|e| e.to_string())?;
        let version: Option<i64> = tx
            .query_one("SELECT max(version) FROM schema_version", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| e.to_string())?;
        match version {
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .map_err(|e| e.to_string())?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(format!(
                    "schema version {v}, this SBC writes version {SCHEMA_VERSION}"
                ))
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        tracing::info!("CDRs: PostgreSQL connected");
        Ok(c)
    }

    fn insert(c: &mut Client, rows: &[Cdr]) -> Result<(), postgres::Error> {
        let mut tx = c.transaction()?;
        let call = tx.prepare(&format!(
            "INSERT INTO cdr ({CDR_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
             RETURNING id"
        ))?;
        let leg = tx.prepare(&format!(
            "INSERT INTO cdr_leg ({LEG_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))?;
        for r in rows {
            let worker = i32::try_from(r.worker).unwrap_or(i32::MAX);
            let status = i32::try_from(r.sip_status).unwrap_or(i32::MAX);
            let failovers = i32::try_from(r.failovers).unwrap_or(i32::MAX);
            let id: i64 = tx
                .query_one(
                    &call,
                    &[
                        &worker,
                        &r.call_handle,
                        &r.caller,
                        &r.dialled,
                        &r.callee,
                        &r.caller_side,
                        &r.target_side,
                        &r.trunk,
                        &r.route_label,
                        &r.setup_ms,
                        &r.ringing_ms,
                        &r.answer_ms,
                        &r.end_ms,
                        &r.duration_ms,
                        &r.outcome,
                        &status,
                        &r.reason,
                        &r.ended_by,
                        &failovers,
                        &r.flags,
                    ],
                )?
                .try_get(0)?;
            for l in &r.legs {
                let streams = i32::try_from(l.streams).unwrap_or(i32::MAX);
                tx.execute(
                    &leg,
                    &[
                        &id,
                        &l.leg,
                        &l.call_id,
                        &l.address,
                        &l.codec,
                        &streams,
                        &l.packets,
                        &l.bytes,
                        &l.rtcp_packets,
                        &l.lost,
                        &l.jitter_ms,
                    ],
                )?;
            }
        }
        tx.commit()
    }
}

impl Backend for Postgres {
    fn write(&mut self, rows: &[Cdr]) -> Result<(), String> {
        let mut client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect()?,
        };
        Self::insert(&mut client, rows).map_err(|e| e.to_string())?;
        self.client = Some(client);
        Ok(())
    }
}
