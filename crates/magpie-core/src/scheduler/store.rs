//! The run history in the warehouse (`meta.flow_runs`, `meta.task_runs`, `meta.run_logs`,
//! `meta.flow_state`): every state change is written as it happens, so the UI and `magpie
//! runs` see runs live, and a crash leaves runs marked Running for the next start to find.

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::{Connection, OptionalExt, params};

use super::RunState;

/// Log lines kept per run; later ones are counted, not kept.
pub const MAX_LOG_LINES: i64 = 300;

/// Finished runs kept per flow (with their tasks and log lines); older ones are forgotten
/// when a run ends, so a flow that runs every few minutes does not grow the history forever.
pub const RUNS_KEPT_PER_FLOW: usize = 1000;

fn ts(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// A run as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub run_id: i64,
    pub flow: String,
    pub state: String,
    pub trigger: String,
    pub scheduled_for: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub duration_ms: Option<i64>,
    pub parameters: Option<String>,
    pub error: Option<String>,
}

/// A task run as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    pub task: String,
    pub position: i32,
    pub state: String,
    pub attempt: i32,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

/// A log line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRow {
    pub at: NaiveDateTime,
    pub level: String,
    pub task: Option<String>,
    pub message: String,
}

/// The history over one connection.
pub struct RunStore<'c> {
    conn: &'c Connection,
}

const RUN_COLUMNS: &str = "run_id, flow, state, trigger, scheduled_for, started_at, ended_at, duration_ms, CAST(parameters AS VARCHAR), error";

fn run_row(r: &duckdb::Row<'_>) -> duckdb::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        flow: r.get(1)?,
        state: r.get(2)?,
        trigger: r.get(3)?,
        scheduled_for: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        duration_ms: r.get(7)?,
        parameters: r.get(8)?,
        error: r.get(9)?,
    })
}

impl<'c> RunStore<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }

    /// A new run in `state`; its id.
    pub fn create(
        &self,
        flow: &str,
        state: RunState,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
        parameters: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> duckdb::Result<i64> {
        let id: i64 = self
            .conn
            .query_row("SELECT nextval('meta.flow_run_seq')", [], |r| r.get(0))?;
        self.conn
            .prepare_cached(
                "INSERT INTO meta.flow_runs (run_id, flow, state, trigger, scheduled_for, created_at, parameters)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                id,
                flow,
                state.as_str(),
                trigger,
                scheduled_for.map(ts),
                ts(now),
                parameters.to_string()
            ])?;
        Ok(id)
    }

    pub fn set_state(
        &self,
        run_id: i64,
        state: RunState,
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE meta.flow_runs SET state = ?, started_at = coalesce(started_at, ?) WHERE run_id = ?",
            )?
            .execute(params![state.as_str(), ts(now), run_id])?;
        Ok(())
    }

    /// A run's end: final state, error, duration since it started.
    pub fn finish(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE meta.flow_runs SET state = ?, error = ?, ended_at = ?,
                     started_at = coalesce(started_at, ?),
                     duration_ms = CAST(epoch_ms(?::TIMESTAMP) - epoch_ms(coalesce(started_at, ?::TIMESTAMP)) AS BIGINT)
                 WHERE run_id = ?",
            )?
            .execute(params![state.as_str(), error, ts(now), ts(now), ts(now), ts(now), run_id])?;
        Ok(())
    }

    /// Forget all but the newest `keep` finished runs of `flow`, with their task runs and log
    /// lines (in one transaction); how many runs went.
    pub fn prune(&self, flow: &str, keep: usize) -> duckdb::Result<usize> {
        const OLD: &str = "SELECT run_id FROM meta.flow_runs
             WHERE flow = ? AND state IN ('Completed', 'Failed', 'Cancelled', 'Crashed')
             ORDER BY run_id DESC OFFSET ?";
        let keep = keep as i64;
        crate::warehouse::in_transaction(self.conn, || {
            for table in ["meta.run_logs", "meta.task_runs"] {
                self.conn
                    .prepare_cached(&format!("DELETE FROM {table} WHERE run_id IN ({OLD})"))?
                    .execute(params![flow, keep])?;
            }
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM meta.flow_runs WHERE run_id IN ({OLD})"
                ))?
                .execute(params![flow, keep])
        })
    }

    /// A task attempt starts (or the task's row is updated for a retry).
    pub fn task_started(
        &self,
        run_id: i64,
        task: &str,
        position: usize,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO meta.task_runs (run_id, task, position, state, attempt, started_at)
                 VALUES (?, ?, ?, 'Running', ?, coalesce((SELECT started_at FROM meta.task_runs WHERE run_id = ? AND task = ?), ?))",
            )?
            .execute(params![run_id, task, position as i32, attempt, run_id, task, ts(now)])?;
        Ok(())
    }

    pub fn task_state(
        &self,
        run_id: i64,
        task: &str,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        let done = matches!(
            state,
            RunState::Completed | RunState::Failed | RunState::Cancelled | RunState::Crashed
        );
        self.conn
            .prepare_cached(
                "UPDATE meta.task_runs SET state = ?, error = ?,
                     ended_at = CASE WHEN ? THEN ?::TIMESTAMP END,
                     duration_ms = CASE WHEN ? THEN CAST(epoch_ms(?::TIMESTAMP) - epoch_ms(started_at) AS BIGINT) END
                 WHERE run_id = ? AND task = ?",
            )?
            .execute(params![state.as_str(), error, done, ts(now), done, ts(now), run_id, task])?;
        Ok(())
    }

    /// Keep a log line (beyond [`MAX_LOG_LINES`] per run they are dropped).
    pub fn log(
        &self,
        run_id: i64,
        level: &str,
        task: Option<&str>,
        message: &str,
        now: DateTime<Utc>,
    ) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta.run_logs
                 SELECT ?, ?, ?, ?, ? WHERE (SELECT count(*) FROM meta.run_logs WHERE run_id = ?) < ?",
            )?
            .execute(params![run_id, ts(now), level, task, message, run_id, MAX_LOG_LINES])?;
        Ok(())
    }

    /// Runs a crash left unfinished become Crashed; returns them (id, flow).
    pub fn mark_crashed(&self, now: DateTime<Utc>) -> duckdb::Result<Vec<(i64, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT run_id, flow FROM meta.flow_runs WHERE state IN ('Running', 'Retrying', 'Pending')",
        )?;
        let crashed: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, _) in &crashed {
            self.finish(
                *id,
                RunState::Crashed,
                Some("magpie stopped during the run"),
                now,
            )?;
            self.conn.execute(
                "UPDATE meta.task_runs SET state = 'Crashed', ended_at = ? WHERE run_id = ? AND state IN ('Running', 'Retrying')",
                params![ts(now), id],
            )?;
        }
        Ok(crashed)
    }

    /// (paused, last slot) of a flow.
    pub fn flow_state(&self, flow: &str) -> duckdb::Result<(bool, Option<DateTime<Utc>>)> {
        let row: Option<(bool, Option<NaiveDateTime>)> = self
            .conn
            .prepare_cached("SELECT paused, last_slot FROM meta.flow_state WHERE flow = ?")?
            .query_row([flow], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map_or((false, None), |(p, s)| (p, s.map(|t| t.and_utc()))))
    }

    pub fn set_last_slot(&self, flow: &str, slot: DateTime<Utc>) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta.flow_state (flow, last_slot) VALUES (?, ?)
                 ON CONFLICT (flow) DO UPDATE SET last_slot = excluded.last_slot",
            )?
            .execute(params![flow, ts(slot)])?;
        Ok(())
    }

    pub fn set_paused(&self, flow: &str, paused: bool) -> duckdb::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta.flow_state (flow, paused) VALUES (?, ?)
                 ON CONFLICT (flow) DO UPDATE SET paused = excluded.paused",
            )?
            .execute(params![flow, paused])?;
        Ok(())
    }

    /// The state of the flow's latest finished run before `run_id`.
    pub fn previous_final_state(&self, flow: &str, run_id: i64) -> duckdb::Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT state FROM meta.flow_runs
                 WHERE flow = ? AND run_id < ? AND state IN ('Completed', 'Failed', 'Crashed')
                 ORDER BY run_id DESC LIMIT 1",
            )?
            .query_row(params![flow, run_id], |r| r.get(0))
            .optional()
    }

    /// The latest runs, newest first (of one flow when given).
    pub fn recent(&self, flow: Option<&str>, limit: usize) -> duckdb::Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM meta.flow_runs WHERE ? IS NULL OR flow = ? ORDER BY run_id DESC LIMIT ?"
        ))?;
        stmt.query_map(params![flow, flow, limit as i64], run_row)?
            .collect()
    }

    pub fn run(&self, run_id: i64) -> duckdb::Result<Option<RunRow>> {
        self.conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM meta.flow_runs WHERE run_id = ?"
            ))?
            .query_row([run_id], run_row)
            .optional()
    }

    pub fn tasks(&self, run_id: i64) -> duckdb::Result<Vec<TaskRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT task, position, state, attempt, started_at, ended_at, duration_ms, error
             FROM meta.task_runs WHERE run_id = ? ORDER BY position",
        )?;
        stmt.query_map([run_id], |r| {
            Ok(TaskRow {
                task: r.get(0)?,
                position: r.get(1)?,
                state: r.get(2)?,
                attempt: r.get(3)?,
                started_at: r.get(4)?,
                ended_at: r.get(5)?,
                duration_ms: r.get(6)?,
                error: r.get(7)?,
            })
        })?
        .collect()
    }

    pub fn logs(&self, run_id: i64) -> duckdb::Result<Vec<LogRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT logged_at, level, task, message FROM meta.run_logs WHERE run_id = ? ORDER BY logged_at, rowid",
        )?;
        stmt.query_map([run_id], |r| {
            Ok(LogRow {
                at: r.get(0)?,
                level: r.get(1)?,
                task: r.get(2)?,
                message: r.get(3)?,
            })
        })?
        .collect()
    }
}
