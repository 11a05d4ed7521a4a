//! CSV export of the SQLite CDRs for billing: one row per call, a header row, times in ISO 8601
//! UTC, durations in seconds; and the `sbc cdr export` command around it.
//!
//! `sbc cdr export --since T --until T [--format csv] [--db FILE | --config FILE]` writes the calls
//! that ended in `[since, until)` to standard output. `T` is `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or
//! seconds since the Unix epoch.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The header row, and the layout of every row (docs/cdr.md).
pub(crate) const CSV_HEADER: &str = "cdr_id,start_utc,ringing_utc,answer_utc,end_utc,duration_s,\
     total_s,caller,dialled,callee,route,target,outcome,sip_status,reason,ended_by,caller_codec,\
     callee_codec,a_call_id,b_call_id,a_packets,a_lost,a_jitter_ms,b_packets,b_lost,b_jitter_ms,flags";

const QUERY: &str = "SELECT c.id, c.setup_ms, c.ringing_ms, c.answer_ms, c.end_ms, c.duration_ms, \
     c.caller, c.dialled, c.callee, c.route_label, b.address, c.outcome, c.sip_status, c.reason, \
     c.ended_by, a.codec, b.codec, a.call_id, b.call_id, a.packets, a.lost, a.jitter_ms, \
     b.packets, b.lost, b.jitter_ms, c.flags \
     FROM cdr c JOIN cdr_leg a ON a.cdr_id = c.id AND a.leg = 'a' \
     JOIN cdr_leg b ON b.cdr_id = c.id AND b.leg = 'b' \
     WHERE c.end_ms >= ?1 AND c.end_ms < ?2 ORDER BY c.end_ms, c.id";

/// Write the calls of the SQLite file `db` that ended in `[since_ms, until_ms)` (ms since the
/// epoch) to `out` as CSV; the number of calls written.
pub(crate) fn export_csv(
    db: &Path,
    since_ms: i64,
    until_ms: i64,
    out: &mut dyn Write,
) -> Result<usize, String> {
    let name = db.display();
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{name}: {e}"))?;
    let e = |e: rusqlite::Error| format!("{name}: {e}");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(e)?;
    let mut stmt = conn.prepare(QUERY).map_err(e)?;
    let mut rows = stmt.query([since_ms, until_ms]).map_err(e)?;
    let w = |r: std::io::Result<()>| r.map_err(|e| format!("write: {e}"));
    w(writeln!(out, "{CSV_HEADER}"))?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(e)? {
        let text = |i: usize| -> Result<String, String> {
            Ok(r.get::<_, Option<String>>(i)
                .map_err(e)?
                .unwrap_or_default())
        };
        let int = |i: usize| r.get::<_, Option<i64>>(i).map_err(e);
        let time =
            |i: usize| -> Result<String, String> { Ok(int(i)?.map(iso8601).unwrap_or_default()) };
        let secs = |ms: i64| format!("{}.{:03}", ms / 1000, (ms % 1000).abs());
        let setup = int(1)?.unwrap_or(0);
        let end = int(4)?.unwrap_or(0);
        let fields = [
            int(0)?.unwrap_or(0).to_string(),
            time(1)?,
            time(2)?,
            time(3)?,
            time(4)?,
            secs(int(5)?.unwrap_or(0)),
            secs(end.saturating_sub(setup).max(0)),
            text(6)?,
            text(7)?,
            text(8)?,
            text(9)?,
            text(10)?,
            text(11)?,
            int(12)?.unwrap_or(0).to_string(),
            text(13)?,
            text(14)?,
            text(15)?,
            text(16)?,
            text(17)?,
            text(18)?,
            int(19)?.unwrap_or(0).to_string(),
            int(20)?.unwrap_or(0).to_string(),
            format!("{:.1}", r.get::<_, f64>(21).map_err(e)?),
            int(22)?.unwrap_or(0).to_string(),
            int(23)?.unwrap_or(0).to_string(),
            format!("{:.1}", r.get::<_, f64>(24).map_err(e)?),
            text(25)?,
        ];
        let line: Vec<String> = fields.iter().map(|f| quote(f)).collect();
        w(writeln!(out, "{}", line.join(",")))?;
        n += 1;
    }
    Ok(n)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `ms` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn iso8601(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]Z` (or with a space, or without the `Z`: UTC all the same),
/// or seconds since the epoch, as ms since the epoch.
pub(crate) fn parse_time(t: &str) -> Result<i64, String> {
    let bad = || format!("not a time: {t:?} (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds)");
    if let Ok(secs) = t.parse::<i64>() {
        return secs.checked_mul(1000).ok_or_else(bad);
    }
    let t2 = t.trim_end_matches('Z');
    let (date, time) = match t2.split_once(['T', ' ']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t2, None),
    };
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(tm) = time {
        let p: Vec<&str> = tm.split(':').collect();
        let (h, min, s) = match p.as_slice() {
            [h, mi] => (num(h)?, num(mi)?, 0),
            [h, mi, s] => (num(h)?, num(mi)?, num(s)?),
            _ => return Err(bad()),
        };
        if h > 23 || min > 59 || s > 60 {
            return Err(bad());
        }
        secs += h * 3600 + min * 60 + s;
    }
    Ok(secs * 1000)
}

const USAGE: &str = "usage: sbc cdr export --since TIME --until TIME [--format csv] \
     [--db FILE | --config FILE]\n  TIME: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds (UTC); \
     calls that ended in [since, until)";

/// `sbc cdr ...` with `args` after `cdr`: the process's exit code.
pub(crate) fn command(args: &[String]) -> u8 {
    match run_command(args) {
        Ok(n) => {
            eprintln!("{n} calls exported");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

fn run_command(args: &[String]) -> Result<usize, String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("export") {
        return Err(USAGE.into());
    }
    let (mut since, mut until, mut db, mut config) = (None, None, None, None);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--since" => since = Some(parse_time(&value()?)?),
            "--until" => until = Some(parse_time(&value()?)?),
            "--format" => {
                let f = value()?;
                if f != "csv" {
                    return Err(format!("--format: only csv, not {f:?}"));
                }
            }
            "--db" => db = Some(PathBuf::from(value()?)),
            "--config" | "-c" => config = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    let since = since.ok_or_else(|| format!("--since is needed\n{USAGE}"))?;
    let until = until.ok_or_else(|| format!("--until is needed\n{USAGE}"))?;
    let db = match (db, config) {
        (Some(db), _) => db,
        (None, Some(c)) => crate::config::Config::load(&c)
            .map_err(|e| e.to_string())?
            .cdr
            .sqlite_path
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_SQLITE_PATH)),
        (None, None) => PathBuf::from(crate::config::DEFAULT_SQLITE_PATH),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = export_csv(&db, since, until, &mut out)?;
    out.flush().map_err(|e| format!("write: {e}"))?;
    Ok(n)
}
