//! Question alerts: a saved question with a schedule and a condition; the scheduler runs it and
//! the configured webhooks deliver what it found ("a new artist entered my top 10 this week").
//!
//! ```yaml
//! -- alert: {every: 1d, when: rows, message: "New in your top 10"}
//! -- alert: {cron: "0 9 * * MON", when: {above: {column: plays, value: 100}}}
//! ```
//!
//! The built-in flow `question-alerts` ticks every minute; its task ([`Checker::run`]) runs
//! each question whose alert is due ([`AlertSpec::due`]) with its variables' defaults, on a
//! locked read-only instance over the published snapshot (never the writer), at most
//! [`MAX_ROWS`] rows and [`TIMEOUT`] long, and sends what fires ([`Condition::check`]) to the
//! webhooks. When each question last ran, last fired and its last problem are kept in
//! `meta.question_alerts` (written through the task's own connection with fixed SQL), so a
//! restart neither repeats nor skips an alert, and one problem is reported once, not every
//! minute. A broken question is a warning in the run's log; the others still run.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use duckdb::types::Value;
use magpie_core::scheduler::TaskContext;
use magpie_core::scheduler::alerts::{AlertEvent, Alerter};
use magpie_core::warehouse::reader::{self, ReaderOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Library;
use crate::question::Question;
use crate::variables::{Param, Values};

/// When a question alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Run this often (`1h`, `1d`) ...
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<std::time::Duration>,
    /// ... or on this cron schedule (in `timezone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `rows`, or `{above: {column, value}}` / `{below: …}` (a one-key map, not a YAML tag).
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub when: Condition,
    /// The alert's first line (default: the question's title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What makes a run alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The question returns at least one row.
    Rows,
    /// The first row's `column` is above `value`.
    Above { column: String, value: f64 },
    /// The first row's `column` is below `value`.
    Below { column: String, value: f64 },
}

/// How much earlier than `every` a run still counts as due: the flow that checks alerts ticks
/// once a minute, and a tick a few seconds early must not push a daily alert a day later.
pub const DUE_SLACK: std::time::Duration = std::time::Duration::from_secs(30);

/// Shortest `every`.
pub const MIN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl AlertSpec {
    /// Whether the spec can run: exactly one of `every` and `cron`, `every` at least a minute,
    /// the cron pattern valid (read in `tz`). The message names the problem.
    pub fn validate(&self, tz: chrono_tz::Tz) -> Result<(), String> {
        match (&self.every, &self.cron) {
            (Some(_), Some(_)) => Err("an alert has `every` or `cron`, not both".into()),
            (None, None) => {
                Err("an alert needs `every` (e.g. 1d) or `cron` (e.g. \"0 9 * * MON\")".into())
            }
            (Some(every), None) if *every < MIN_EVERY => Err(format!(
                "an alert runs at most once a minute: `every: {}s` is too often",
                every.as_secs_f64()
            )),
            (Some(_), None) => self.when.validate(),
            (None, Some(cron)) => {
                magpie_core::scheduler::Schedule::cron(cron, tz)?;
                self.when.validate()
            }
        }
    }

    /// Whether a run is due at `now`, the last one having been at `last` (`None`: never run,
    /// so due). With `every`: that long has passed (less [`DUE_SLACK`]); with `cron`: a slot
    /// of the pattern (in `tz`) came after `last`. An invalid spec is never due.
    pub fn due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: chrono_tz::Tz) -> bool {
        if self.validate(tz).is_err() {
            return false;
        }
        let Some(last) = last else { return true };
        match (&self.every, &self.cron) {
            (Some(every), None) => {
                let wait = every.saturating_sub(DUE_SLACK);
                chrono::Duration::from_std(wait).is_ok_and(|wait| now - last >= wait)
            }
            (None, Some(cron)) => magpie_core::scheduler::Schedule::cron(cron, tz)
                .ok()
                .and_then(|s| s.next_after(last))
                .is_some_and(|next| next <= now),
            _ => false,
        }
    }
}

impl Condition {
    fn validate(&self) -> Result<(), String> {
        match self {
            Condition::Rows => Ok(()),
            Condition::Above { column, value } | Condition::Below { column, value } => {
                if column.trim().is_empty() {
                    Err("the condition's `column` is empty".into())
                } else if !value.is_finite() {
                    Err(format!("the condition's value {value} is not a number"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether a result (`columns`, `rows`) makes the alert fire, and if so a one-line
    /// description of what was found: `Rows` fires on at least one row ("12 rows"); `Above`
    /// and `Below` compare the first row's `column` (a number, or text that reads as one; no
    /// row or NULL does not fire). A column the result lacks, or a value that is not a
    /// number, is an error naming it.
    pub fn check(
        &self,
        columns: &[String],
        rows: &[Vec<serde_json::Value>],
    ) -> Result<Option<String>, String> {
        let (column, threshold, above) = match self {
            Condition::Rows => {
                return Ok(match rows.len() {
                    0 => None,
                    1 => Some("1 row".to_string()),
                    n => Some(format!("{n} rows")),
                });
            }
            Condition::Above { column, value } => (column, *value, true),
            Condition::Below { column, value } => (column, *value, false),
        };
        let index = columns.iter().position(|c| c == column).ok_or_else(|| {
            format!(
                "the result has no column `{column}` (it has {})",
                columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let Some(cell) = rows.first().and_then(|r| r.get(index)) else {
            return Ok(None);
        };
        let number = match cell {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
        .ok_or_else(|| {
            let mut shown = cell.to_string();
            if shown.len() > 60 {
                let cut = (0..=60)
                    .rev()
                    .find(|i| shown.is_char_boundary(*i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            format!("`{column}` is not a number in the first row: {shown}")
        })?;
        let fires = if above {
            number > threshold
        } else {
            number < threshold
        };
        Ok(fires.then(|| {
            format!(
                "{column} = {} ({} {})",
                number_text(number),
                if above { "above" } else { "below" },
                number_text(threshold)
            )
        }))
    }
}

/// 12 rather than 12.0; 0.5 as 0.5.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Rows of a question's result an alert reads at most (the condition sees these).
pub const MAX_ROWS: usize = 1000;
/// An alert's query is interrupted after this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Rows of the result shown in an alert's message.
const ROWS_SHOWN: usize = 10;
/// Columns shown per row, and characters per cell.
const COLUMNS_SHOWN: usize = 8;
const CELL_CHARS: usize = 60;
/// The session's search path: `FROM fact_plays` means the mart, as in the explorer.
const SEARCH_PATH: &str = "SET search_path = 'marts,main'";

/// Where fired alerts go: the configured webhooks ([`Alerter`]), or a test's recorder.
pub trait Deliver {
    /// How many destinations there are (0: a fired alert reaches nobody).
    fn targets(&self) -> usize;
    /// Send `event`; how many destinations accepted it.
    fn deliver<'a>(&'a self, event: &'a AlertEvent) -> Pin<Box<dyn Future<Output = usize> + 'a>>;
}

impl Deliver for Alerter {
    fn targets(&self) -> usize {
        self.webhooks()
    }

    fn deliver<'a>(&'a self, event: &'a AlertEvent) -> Pin<Box<dyn Future<Output = usize> + 'a>> {
        Box::pin(self.send(event))
    }
}

/// One question's alert state, as kept in `meta.question_alerts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The last problem (a query error, a missing column, an invalid spec, a broken file).
    pub last_error: Option<String>,
}

/// Every question's alert state, by slug.
pub fn load_state(conn: &Connection) -> duckdb::Result<BTreeMap<String, AlertState>> {
    let mut stmt = conn
        .prepare("SELECT slug, last_run_at, last_fired_at, last_error FROM meta.question_alerts")?;
    let rows = stmt.query_map([], |r| {
        let at = |i: usize| -> duckdb::Result<Option<DateTime<Utc>>> {
            Ok(r.get::<_, Option<chrono::NaiveDateTime>>(i)?
                .map(|t| t.and_utc()))
        };
        Ok((
            r.get::<_, String>(0)?,
            AlertState {
                last_run_at: at(1)?,
                last_fired_at: at(2)?,
                last_error: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

fn save_state(conn: &Connection, slug: &str, state: &AlertState) -> duckdb::Result<()> {
    let naive = |t: Option<DateTime<Utc>>| t.map(|t| t.naive_utc());
    conn.execute(
        "INSERT INTO meta.question_alerts (slug, last_run_at, last_fired_at, last_error)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (slug) DO UPDATE SET last_run_at = excluded.last_run_at,
             last_fired_at = excluded.last_fired_at, last_error = excluded.last_error",
        duckdb::params![
            slug,
            naive(state.last_run_at),
            naive(state.last_fired_at),
            state.last_error
        ],
    )?;
    Ok(())
}

/// What one run of the alerts task did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Questions with an alert.
    pub with_alert: usize,
    /// Of those, run this time.
    pub due: usize,
    /// Of those, fired.
    pub fired: usize,
    /// Of those, failed (query error, missing column); invalid specs are not counted here.
    pub failed: usize,
    /// Question files that could not be read.
    pub broken_files: usize,
}

/// A question's result, as an alert reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub columns: Vec<String>,
    /// At most [`MAX_ROWS`].
    pub rows: Vec<Vec<Json>>,
    /// More rows than [`MAX_ROWS`] came.
    pub truncated: bool,
}

/// Runs the alerts that are due (the `alerts` task of the `question-alerts` flow).
#[derive(Debug, Clone)]
pub struct Checker<'a> {
    /// The data folder: its `questions/`.
    pub data_dir: &'a Path,
    /// The published read-only snapshot the queries read.
    pub snapshot: &'a Path,
    /// How that snapshot is opened (a locked-down instance of its own).
    pub reader: ReaderOptions,
    /// The listener's time zone, for cron alerts.
    pub tz: chrono_tz::Tz,
    /// Longest query ([`TIMEOUT`]).
    pub timeout: Duration,
    /// The flow's name, for the events.
    pub flow: &'a str,
}

impl Checker<'_> {
    /// Load the questions, run each one whose alert is due at `now`, deliver what fires, and
    /// record every question's state through `state` (the task's own warehouse connection).
    /// Problems of one question are warnings in `ctx`'s log; only failing to keep the state
    /// is an error.
    pub async fn run(
        &self,
        state: &Connection,
        deliver: &dyn Deliver,
        ctx: &TaskContext,
        now: DateTime<Utc>,
    ) -> Result<Summary, String> {
        let library = Library::load(self.data_dir);
        let mut states = load_state(state).map_err(|e| format!("the alert state: {e}"))?;
        let keep = |slug: &str, s: &AlertState| {
            save_state(state, slug, s).map_err(|e| format!("the alert state of {slug}: {e}"))
        };
        let mut summary = Summary::default();
        // Broken question files: said once per problem, not every minute.
        for broken in &library.broken {
            let file = Path::new(&broken.path);
            if file.extension().and_then(|e| e.to_str()) != Some("sql") {
                continue;
            }
            let Some(stem) = file.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            summary.broken_files += 1;
            let message = broken.to_string();
            let current = states.entry(stem.to_string()).or_default();
            if current.last_error.as_deref() != Some(message.as_str()) {
                ctx.warn(format!(
                    "{message} (an alert in this file does not run until it is fixed)"
                ));
                current.last_error = Some(message);
                keep(stem, current)?;
            }
        }
        for question in library.questions.values() {
            let Some(alert) = &question.alert else {
                continue;
            };
            summary.with_alert += 1;
            let slug = question.slug.as_str();
            let mut current = states.get(slug).cloned().unwrap_or_default();
            if let Err(problem) = alert.validate(self.tz) {
                let message = format!("{slug}: the alert is not valid: {problem}");
                if current.last_error.as_deref() != Some(message.as_str()) {
                    ctx.warn(message.clone());
                    current.last_error = Some(message);
                    keep(slug, &current)?;
                }
                continue;
            }
            if !alert.due(current.last_run_at, now, self.tz) {
                continue;
            }
            summary.due += 1;
            current.last_run_at = Some(now);
            match self.check(question, alert).await {
                Err(problem) => {
                    summary.failed += 1;
                    ctx.warn(format!("{slug}: {problem}"));
                    current.last_error = Some(problem);
                }
                Ok((found, None)) => {
                    current.last_error = None;
                    ctx.info(format!(
                        "{slug}: checked, nothing to say ({})",
                        row_count(&found)
                    ));
                }
                Ok((found, Some(what))) => {
                    current.last_error = None;
                    current.last_fired_at = Some(now);
                    summary.fired += 1;
                    let title = alert.message.as_deref().unwrap_or(&question.title);
                    let body = message_body(&what, &found);
                    let event =
                        AlertEvent::question(self.flow, ctx.run_id, slug, title, &body, now);
                    let targets = deliver.targets();
                    if targets == 0 {
                        ctx.warn(format!(
                            "{slug}: fired ({what}), but no [[alerts.webhooks]] are configured to deliver it"
                        ));
                    } else {
                        let delivered = deliver.deliver(&event).await;
                        let line = format!(
                            "{slug}: fired ({what}); delivered to {delivered} of {targets} webhooks"
                        );
                        if delivered < targets {
                            ctx.warn(line);
                        } else {
                            ctx.info(line);
                        }
                    }
                }
            }
            keep(slug, &current)?;
        }
        ctx.info(format!(
            "{} questions with an alert: {} due, {} fired, {} failed{}",
            summary.with_alert,
            summary.due,
            summary.fired,
            summary.failed,
            if summary.broken_files > 0 {
                format!(
                    "; {} question files are broken (see /questions)",
                    summary.broken_files
                )
            } else {
                String::new()
            }
        ));
        Ok(summary)
    }

    /// Run `question` with its defaults and check `alert`'s condition: the result and, when
    /// it fires, what it found.
    async fn check(
        &self,
        question: &Question,
        alert: &AlertSpec,
    ) -> Result<(Found, Option<String>), String> {
        let bound = question
            .template
            .bind(&question.variables, &Values::default())
            .map_err(|e| format!("cannot run with the variables' defaults: {e}"))?;
        let params: Vec<Value> = bound.params.into_iter().map(to_duckdb).collect();
        let (snapshot, options, timeout) = (
            self.snapshot.to_path_buf(),
            self.reader.clone(),
            self.timeout,
        );
        let sql = bound.sql;
        let found =
            tokio::task::spawn_blocking(move || query(&snapshot, &options, &sql, &params, timeout))
                .await
                .map_err(|e| format!("the query stopped: {e}"))??;
        let fired = alert.when.check(&found.columns, &found.rows)?;
        Ok((found, fired))
    }
}

fn to_duckdb(param: Param) -> Value {
    match param {
        Param::Text(s) => Value::Text(s),
        Param::Int(i) => Value::BigInt(i),
        Param::Float(f) => Value::Double(f),
        Param::Date(d) => Value::Date32(
            (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32,
        ),
    }
}

/// Run one SELECT (`sql` with `params`) on a locked read-only instance over `snapshot`: at
/// most [`MAX_ROWS`] rows kept, interrupted after `timeout`. Blocking.
pub fn query(
    snapshot: &Path,
    options: &ReaderOptions,
    sql: &str,
    params: &[Value],
    timeout: Duration,
) -> Result<Found, String> {
    let conn = reader::open_locked(snapshot, options).map_err(|e| e.to_string())?;
    // A warehouse that was never built has no marts schema, and DuckDB refuses a search path
    // naming it: then names resolve in main only.
    let _ = conn.execute_batch(SEARCH_PATH);
    magpie_core::warehouse::reader::check_single_select(&conn, sql)?;
    // A watchdog interrupts the query at the time limit, unless told it finished.
    let handle = conn.interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let timed_out = matches!(
            finished.recv_timeout(timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if timed_out {
            handle.interrupt();
        }
        timed_out
    });
    let result = read_rows(&conn, sql, params);
    drop(done);
    let timed_out = watchdog.join().unwrap_or(false);
    match result {
        Err(_) if timed_out => Err(format!(
            "the query was stopped after {} s",
            timeout.as_secs_f64()
        )),
        Err(e) => Err(e.to_string()),
        Ok(found) => Ok(found),
    }
}

fn read_rows(conn: &Connection, sql: &str, params: &[Value]) -> duckdb::Result<Found> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(duckdb::params_from_iter(params.iter()))?;
    let mut found = Found::default();
    let mut named = false;
    while let Some(row) = rows.next()? {
        let statement = row.as_ref();
        if !named {
            found.columns = statement.column_names();
            named = true;
        }
        if found.rows.len() == MAX_ROWS {
            found.truncated = true;
            break;
        }
        let mut values = Vec::with_capacity(statement.column_count());
        for i in 0..statement.column_count() {
            values.push(
                if statement.column_type(i) == duckdb::arrow::datatypes::DataType::Null {
                    Json::Null
                } else {
                    magpie_core::values::to_json(&row.get::<_, Value>(i)?)
                },
            );
        }
        found.rows.push(values);
    }
    drop(rows);
    if !named {
        found.columns = stmt.column_names();
    }
    Ok(found)
}

fn row_count(found: &Found) -> String {
    match found.rows.len() {
        _ if found.truncated => format!("more than {MAX_ROWS} rows"),
        1 => "1 row".to_string(),
        n => format!("{n} rows"),
    }
}

/// The alert's text: what was found, then the first rows as a small table.
pub fn message_body(what: &str, found: &Found) -> String {
    let mut out = what.to_string();
    if found.rows.is_empty() {
        return out;
    }
    let cell = |v: &Json| -> String {
        let text = match v {
            Json::Null => String::new(),
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().count() > CELL_CHARS {
            let mut cut: String = text.chars().take(CELL_CHARS - 1).collect();
            cut.push('…');
            cut
        } else {
            text
        }
    };
    let more_columns = found.columns.len() > COLUMNS_SHOWN;
    let line = |cells: Vec<String>| {
        let mut l = cells.join(" | ");
        if more_columns {
            l.push_str(" | …");
        }
        l
    };
    out.push_str("\n\n");
    out.push_str(&line(
        found
            .columns
            .iter()
            .take(COLUMNS_SHOWN)
            .map(|c| cell(&Json::String(c.clone())))
            .collect(),
    ));
    for row in found.rows.iter().take(ROWS_SHOWN) {
        out.push('\n');
        out.push_str(&line(row.iter().take(COLUMNS_SHOWN).map(cell).collect()));
    }
    let rest = found.rows.len().saturating_sub(ROWS_SHOWN);
    if found.truncated {
        out.push_str(&format!("\n… and more rows (over {MAX_ROWS})"));
    } else if rest > 0 {
        out.push_str(&format!(
            "\n… and {rest} more row{}",
            if rest == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use std::time::Duration;

    fn spec(every: Option<u64>, cron: Option<&str>) -> AlertSpec {
        AlertSpec {
            every: every.map(Duration::from_secs),
            cron: cron.map(str::to_string),
            when: Condition::Rows,
            message: None,
        }
    }

    fn utc(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap()
    }

    #[test]
    fn specs_are_validated_with_a_reason() {
        let tz = chrono_tz::UTC;
        assert!(spec(Some(3600), None).validate(tz).is_ok());
        assert!(spec(None, Some("0 9 * * MON")).validate(tz).is_ok());
        for (bad, needle) in [
            (spec(None, None), "needs `every`"),
            (spec(Some(3600), Some("* * * * *")), "not both"),
            (spec(Some(59), None), "at most once a minute"),
            (spec(None, Some("61 * * * *")), "not a cron pattern"),
        ] {
            let err = bad.validate(tz).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let mut nan = spec(Some(60), None);
        nan.when = Condition::Above {
            column: "x".into(),
            value: f64::NAN,
        };
        assert!(nan.validate(tz).is_err());
    }

    #[test]
    fn every_is_due_once_its_time_has_passed() {
        let tz = chrono_tz::UTC;
        let hourly = spec(Some(3600), None);
        assert!(hourly.due(None, utc(1, 10, 0, 0), tz), "never run: due");
        let last = utc(1, 10, 0, 2);
        assert!(!hourly.due(Some(last), utc(1, 10, 0, 30), tz));
        assert!(!hourly.due(Some(last), utc(1, 10, 59, 0), tz));
        // The next minute tick a second early still counts.
        assert!(hourly.due(Some(last), utc(1, 11, 0, 1), tz));
        assert!(hourly.due(Some(last), utc(2, 0, 0, 0), tz));
        assert!(
            !spec(None, None).due(None, utc(1, 0, 0, 0), tz),
            "invalid: never due"
        );
    }

    #[test]
    fn cron_is_due_when_a_slot_came_since_the_last_run() {
        let berlin = chrono_tz::Europe::Berlin;
        // 09:00 in Berlin is 08:00 UTC in March (before summer time).
        let daily = spec(None, Some("0 9 * * *"));
        let last = utc(2, 8, 0, 3);
        assert!(!daily.due(Some(last), utc(2, 12, 0, 0), berlin));
        assert!(!daily.due(Some(last), utc(3, 7, 59, 0), berlin));
        assert!(daily.due(Some(last), utc(3, 8, 0, 0), berlin));
        assert!(
            daily.due(Some(last), utc(5, 8, 0, 0), berlin),
            "missed days: one run"
        );
    }

    #[test]
    fn rows_fire_when_there_are_any() {
        let cols = vec!["a".to_string()];
        assert_eq!(Condition::Rows.check(&cols, &[]), Ok(None));
        assert_eq!(
            Condition::Rows.check(&cols, &[vec![json!(1)]]),
            Ok(Some("1 row".into()))
        );
        assert_eq!(
            Condition::Rows.check(&cols, &[vec![json!(1)], vec![json!(2)]]),
            Ok(Some("2 rows".into()))
        );
    }

    #[test]
    fn thresholds_compare_the_first_rows_value() {
        let cols = vec!["artist".to_string(), "plays".to_string()];
        let above = Condition::Above {
            column: "plays".into(),
            value: 100.0,
        };
        let below = Condition::Below {
            column: "plays".into(),
            value: 100.0,
        };
        let rows = |v: serde_json::Value| vec![vec![json!("x"), v], vec![json!("y"), json!(1000)]];
        assert_eq!(
            above.check(&cols, &rows(json!(120))),
            Ok(Some("plays = 120 (above 100)".into()))
        );
        assert_eq!(above.check(&cols, &rows(json!(100))), Ok(None), "not above");
        assert_eq!(
            below.check(&cols, &rows(json!(99.5))),
            Ok(Some("plays = 99.5 (below 100)".into()))
        );
        assert_eq!(below.check(&cols, &rows(json!(120))), Ok(None));
        assert_eq!(
            above.check(&cols, &rows(json!(" 250 "))),
            Ok(Some("plays = 250 (above 100)".into())),
            "a numeric string (a DECIMAL or HUGEINT as text)"
        );
        assert_eq!(above.check(&cols, &rows(json!(null))), Ok(None));
        assert_eq!(above.check(&cols, &[]), Ok(None), "no row");
        let err = above.check(&cols, &rows(json!("lots"))).unwrap_err();
        assert!(err.contains("`plays` is not a number"), "{err}");
        let missing = Condition::Above {
            column: "hours".into(),
            value: 1.0,
        };
        let err = missing.check(&cols, &rows(json!(1))).unwrap_err();
        assert!(
            err.contains("no column `hours`") && err.contains("`plays`"),
            "{err}"
        );
    }

    #[test]
    fn alert_headers_parse() {
        let a: AlertSpec =
            serde_yaml_ng::from_str("{every: 1d, when: rows, message: New in your top 10}")
                .unwrap();
        assert_eq!(a.every, Some(Duration::from_secs(86_400)));
        assert_eq!(a.when, Condition::Rows);
        let b: AlertSpec = serde_yaml_ng::from_str(
            "{cron: \"0 9 * * MON\", when: {above: {column: plays, value: 100}}}",
        )
        .unwrap();
        assert_eq!(
            b.when,
            Condition::Above {
                column: "plays".into(),
                value: 100.0
            }
        );
        assert!(b.validate(chrono_tz::UTC).is_ok());
        let back = serde_yaml_ng::to_string(&b).unwrap();
        assert!(back.contains("above:") && !back.contains('!'), "{back}");
        assert_eq!(serde_yaml_ng::from_str::<AlertSpec>(&back).unwrap(), b);
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["when"]["above"]["column"], "plays");
    }

    #[test]
    fn messages_show_the_first_rows() {
        let found = Found {
            columns: vec!["artist".into(), "plays".into()],
            rows: (0..12)
                .map(|i| vec![json!(format!("artist {i}\nx")), json!(i)])
                .collect(),
            truncated: false,
        };
        let body = message_body("12 rows", &found);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "12 rows");
        assert_eq!(lines[2], "artist | plays");
        assert_eq!(lines[3], "artist 0 x | 0");
        assert_eq!(lines.len(), 2 + 1 + 10 + 1);
        assert_eq!(lines[13], "… and 2 more rows");
        assert_eq!(message_body("x", &Found::default()), "x");
    }
}
