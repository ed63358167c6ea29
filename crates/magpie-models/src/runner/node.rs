//! Running one node of a build on one connection: rendering and materialising a model, or
//! counting a data test's failing rows. A node that runs out of memory asks to run again alone
//! on one DuckDB thread (each thread keeps buffers of its own; near the memory limit one
//! thread fits where two do not, and nodes running beside it share the limit) before it
//! counts as failed.

use std::collections::{BTreeSet, HashMap};

use duckdb::Connection;

use super::{Plan, Status};
use crate::ModelsError;
use crate::materialize;
use crate::project::Project;
use crate::render::{self, RenderContext};

/// How an attempt at a model ended.
pub(crate) enum ModelAttempt {
    Built {
        rows: Option<u64>,
        /// Whether the model ran its `is_incremental()` branch.
        incremental: bool,
    },
    Failed(String),
    OutOfMemory,
}

/// How an attempt at a data test ended.
#[derive(Debug, PartialEq)]
pub(crate) enum TestAttempt {
    Ran(Status),
    OutOfMemory,
}

/// What a model is built from: the project, the plan, and what existed when the build began.
pub(crate) struct ModelInputs<'a> {
    pub project: &'a Project,
    pub plan: &'a Plan,
    pub context: &'a RenderContext,
    /// Relation kinds by (schema, name) before the build (only a model's own build changes
    /// its relation).
    pub existing: &'a HashMap<(String, String), String>,
    /// Incremental models to build from scratch ([`crate::state::to_rebuild`]).
    pub rebuild: &'a BTreeSet<String>,
}

/// Build model `name`; `alone` means nothing else runs and DuckDB is to use one thread.
pub(crate) fn build_model(
    conn: &Connection,
    inputs: &ModelInputs,
    name: &str,
    alone: bool,
) -> ModelAttempt {
    let ModelInputs {
        project,
        plan,
        context: base,
        existing,
        rebuild,
    } = *inputs;
    let model = project.model(name).expect("planned models exist");
    let failed = |message: String| {
        ModelAttempt::Failed(
            ModelsError::Render {
                file: model.path.display().to_string(),
                message,
            }
            .to_string(),
        )
    };
    let cfg = &plan.configs[name];
    let schema = cfg.schema.clone().unwrap_or_else(|| "main".into());
    let relation = &plan.relations[name];
    let existing = existing.get(&(schema.clone(), name.to_string())).cloned();
    let incremental = cfg.materialized == render::Materialized::Incremental
        && existing.as_deref() == Some("BASE TABLE")
        && !rebuild.contains(name);
    let mut ctx = base.clone();
    ctx.this = Some(relation.clone());
    ctx.incremental = incremental;
    let rendered = match render::render(name, &model.sql, &project.macros, &ctx) {
        Ok(rendered) => rendered,
        Err(e) => return ModelAttempt::Failed(super::render_error(&model.path, &e).to_string()),
    };
    let build = || {
        materialize::materialize(
            conn,
            relation,
            existing.as_deref(),
            &rendered.sql,
            cfg,
            incremental,
            &rendered.post_hooks,
        )
    };
    match run_node(conn, "model", name, alone, build) {
        Run::Done(rows) => ModelAttempt::Built { rows, incremental },
        Run::OutOfMemory => ModelAttempt::OutOfMemory,
        Run::Failed(message) => failed(message),
    }
}

/// Run data test `name`: success when its SQL returns no rows; `alone` means nothing else
/// runs and DuckDB is to use one thread.
pub(crate) fn run_test(
    conn: &Connection,
    name: &str,
    sql: &Result<String, ModelsError>,
    alone: bool,
) -> TestAttempt {
    let sql = match sql {
        Ok(sql) => sql,
        Err(e) => return TestAttempt::Ran(Status::Error(e.to_string())),
    };
    let count = || {
        conn.query_row(&format!("SELECT count(*) FROM (\n{sql}\n)"), [], |r| {
            r.get::<_, i64>(0)
        })
    };
    match run_node(conn, "test", name, alone, count) {
        Run::Done(0) => TestAttempt::Ran(Status::Success),
        Run::Done(n) => TestAttempt::Ran(Status::Fail(n as u64)),
        Run::OutOfMemory => TestAttempt::OutOfMemory,
        Run::Failed(message) => TestAttempt::Ran(Status::Error(message)),
    }
}

/// How running a node's SQL ended.
enum Run<T> {
    Done(T),
    /// Out of memory beside other nodes: to run again alone.
    OutOfMemory,
    Failed(String),
}

/// Run `work` for node `name` (a `kind`: model or test), on one DuckDB thread when `alone`.
/// Running out of memory beside other nodes asks to run again alone; alone, it is a failure
/// that says which setting to raise.
fn run_node<T>(
    conn: &Connection,
    kind: &str,
    name: &str,
    alone: bool,
    work: impl FnOnce() -> duckdb::Result<T>,
) -> Run<T> {
    let result = if alone {
        single_threaded(conn, work)
    } else {
        work()
    };
    match result {
        Ok(value) => Run::Done(value),
        Err(e) if is_out_of_memory(&e) && !alone => {
            let text = e.to_string();
            tracing::warn!(
                kind,
                node = name,
                error = text.lines().next().unwrap_or_default(),
                "out of memory; running it again alone, with one thread"
            );
            Run::OutOfMemory
        }
        Err(e) if is_out_of_memory(&e) => Run::Failed(out_of_memory_message(conn, &e, kind)),
        Err(e) => Run::Failed(e.to_string()),
    }
}

fn is_out_of_memory(error: &duckdb::Error) -> bool {
    error.to_string().contains("Out of Memory Error")
}

/// DuckDB's first line, without its advice (SET threads, SET memory_limit) that a magpie user
/// cannot follow, and what the user can do instead. DuckDB says "Out of Memory" too when what
/// did not fit in memory found no room on disk either (its `max_temp_directory_size` is the
/// free space of the disk holding its temporary folder): that is said as a full disk.
fn out_of_memory_message(conn: &Connection, error: &duckdb::Error, kind: &str) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    if magpie_core::host::disk_failure(&text).is_some() {
        return format!(
            "{first}\nNo space left on device for what this {kind} spills to DuckDB's temporary \
             folder: free space on the data folder's disk (or raise `memory_budget`, so that \
             less is spilled)."
        );
    }
    let limit: String = conn
        .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
        .unwrap_or_else(|_| "its limit".into());
    let share = magpie_core::warehouse::DUCKDB_SHARE_PERCENT;
    format!(
        "{first}\nThis {kind} needs more memory than DuckDB's {limit}, even on one thread: \
         raise `memory_budget` in magpie.toml (DuckDB gets {share}% of it)."
    )
}

/// Run `work` with DuckDB's `threads` set to 1, restoring the setting afterwards.
fn single_threaded<T>(
    conn: &Connection,
    work: impl FnOnce() -> duckdb::Result<T>,
) -> duckdb::Result<T> {
    let threads: i64 = conn.query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
        r.get(0)
    })?;
    conn.execute_batch("SET threads = 1")?;
    let result = work();
    conn.execute_batch(&format!("SET threads = {threads}"))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_threaded_runs_with_one_thread_and_restores_the_setting() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("SET threads = 2").unwrap();
        let inside: i64 = single_threaded(&conn, || {
            conn.query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
                r.get(0)
            })
        })
        .unwrap();
        assert_eq!(inside, 1);
        let after: i64 = conn
            .query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(after, 2);
        let oom = conn
            .execute_batch("SET memory_limit = '1MB'; SELECT count(*) FROM (SELECT range::VARCHAR || repeat('x', 100) AS s FROM range(2000000) ORDER BY s)")
            .unwrap_err();
        assert!(is_out_of_memory(&oom), "{oom}");
        let message = out_of_memory_message(&conn, &oom, "model");
        assert!(message.starts_with("Out of Memory Error"), "{message}");
        assert!(
            message.contains("This model needs more memory"),
            "{message}"
        );
        assert!(message.contains("raise `memory_budget`"), "{message}");
        assert!(!message.contains("SET threads"), "{message}");
        // Spilling to a disk that is full (here: DuckDB's limit on it) is said as such.
        let temp = tempfile::tempdir().unwrap();
        let full = conn
            .execute_batch(&format!(
                "SET memory_limit = '16MB'; SET temp_directory = '{}'; SET max_temp_directory_size = '1MB'; \
                 SELECT count(*) FROM (SELECT range::VARCHAR || repeat('x', 100) AS s FROM range(2000000) ORDER BY s)",
                temp.path().display()
            ))
            .unwrap_err();
        let message = out_of_memory_message(&conn, &full, "model");
        assert!(
            message.contains("No space left on device for what this model spills"),
            "{message}"
        );
    }

    #[test]
    fn a_test_passes_fails_or_errs_by_its_rows() {
        let conn = Connection::open_in_memory().unwrap();
        let run = |sql: Result<String, ModelsError>| run_test(&conn, "t", &sql, false);
        assert_eq!(
            run(Ok("SELECT 1 WHERE false".into())),
            TestAttempt::Ran(Status::Success)
        );
        assert_eq!(
            run(Ok("SELECT * FROM range(3)".into())),
            TestAttempt::Ran(Status::Fail(3))
        );
        assert!(matches!(
            run(Ok("SELECT * FROM nowhere".into())),
            TestAttempt::Ran(Status::Error(e)) if e.contains("nowhere")
        ));
        assert_eq!(
            run(Err(ModelsError::Test("bad yaml".into()))),
            TestAttempt::Ran(Status::Error("test: bad yaml".into()))
        );
    }

    #[test]
    fn a_test_out_of_memory_asks_to_run_alone_then_says_what_to_raise() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("SET memory_limit = '1MB'").unwrap();
        let sql = Ok(
            "SELECT s FROM (SELECT range::VARCHAR || repeat('x', 100) AS s FROM range(2000000)) \
             GROUP BY s HAVING count(*) > 1"
                .to_string(),
        );
        assert_eq!(
            run_test(&conn, "unique_s", &sql, false),
            TestAttempt::OutOfMemory
        );
        match run_test(&conn, "unique_s", &sql, true) {
            TestAttempt::Ran(Status::Error(message)) => {
                assert!(message.contains("This test needs more memory"), "{message}");
                assert!(message.contains("raise `memory_budget`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
