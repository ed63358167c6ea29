//! Question alerts through the real scheduler on a paused clock: the built-in
//! `question-alerts` flow ticks every minute for hours of virtual time; each question's alert
//! runs when its own `every` or `cron` says, on the published snapshot, and what fires is
//! delivered; broken questions are warnings (reported once, not every minute) and never fail
//! the run; a restart neither repeats nor skips an alert.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use magpie_core::config::Config;
use magpie_core::scheduler::alerts::{AlertEvent, Alerter};
use magpie_core::scheduler::{
    Clock, FlowSpec, RunStore, Scheduler, TaskContext, TaskResult, TaskRunner, TokioClock,
};
use magpie_core::warehouse::reader::ReaderOptions;
use magpie_core::{OpenOptions, Warehouse};
use magpie_questions::alert::{self, Checker, Deliver};

/// Remembers every event instead of posting it.
#[derive(Default)]
struct Recorder {
    events: RefCell<Vec<AlertEvent>>,
}

impl Deliver for Recorder {
    fn targets(&self) -> usize {
        1
    }

    fn deliver<'a>(
        &'a self,
        event: &'a AlertEvent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + 'a>> {
        self.events.borrow_mut().push(event.clone());
        Box::pin(async { 1 })
    }
}

/// The flow's one task, as magpie's own task runner calls it.
struct Alerts<'a> {
    data_dir: PathBuf,
    snapshot: PathBuf,
    state: &'a duckdb::Connection,
    deliver: &'a Recorder,
    clock: TokioClock,
}

impl TaskRunner for &Alerts<'_> {
    fn run<'a>(
        &'a self,
        flow: &'a str,
        task: &'a str,
        _changed: bool,
        ctx: &'a TaskContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TaskResult> + 'a>> {
        Box::pin(async move {
            assert_eq!(task, "alerts");
            let checker = Checker {
                data_dir: &self.data_dir,
                snapshot: &self.snapshot,
                reader: ReaderOptions::default(),
                tz: chrono_tz::UTC,
                timeout: alert::TIMEOUT,
                flow,
            };
            checker
                .run(self.state, self.deliver, ctx, self.clock.now())
                .await
                .map(|_| ())
        })
    }
}

fn question(dir: &Path, slug: &str, text: &str) {
    let folder = dir.join("questions");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{slug}.sql")), text).unwrap();
}

/// A warehouse with a tiny mart, published, and the questions.
fn setup() -> (tempfile::TempDir, Warehouse, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    wh.conn()
        .execute_batch(
            "CREATE SCHEMA IF NOT EXISTS marts;
             CREATE TABLE marts.top_now (artist VARCHAR, plays INTEGER);
             INSERT INTO marts.top_now VALUES ('Nina Simone', 120), ('Can', 40), ('Sade', 5);",
        )
        .unwrap();
    let snapshot = dir.path().join("snapshot/magpie-readonly.duckdb");
    wh.publish(&snapshot).unwrap();
    let d = dir.path();
    // Hourly, on rows, with a variable's default bound and an unqualified mart name.
    question(
        d,
        "new-in-top",
        "-- title: New in my top list\n\
         -- variables:\n\
         --   min: {type: number, default: 10}\n\
         -- alert: {every: 1h, when: rows, message: New in your top 10}\n\
         SELECT artist, plays FROM top_now WHERE plays > {{min}} ORDER BY plays DESC\n",
    );
    // Daily at noon (UTC), on a threshold.
    question(
        d,
        "lots-of-plays",
        "-- title: Lots of plays\n\
         -- alert: {cron: \"0 12 * * *\", when: {above: {column: total, value: 100}}}\n\
         SELECT sum(plays) AS total FROM top_now\n",
    );
    question(
        d,
        "quiet",
        "-- alert: {every: 1h, when: {below: {column: total, value: 0}}}\n\
         SELECT sum(plays) AS total FROM top_now\n",
    );
    question(
        d,
        "no-table",
        "-- alert: {every: 1h, when: rows}\nSELECT * FROM no_such_table\n",
    );
    question(
        d,
        "no-column",
        "-- alert: {every: 1h, when: {above: {column: hours, value: 1}}}\n\
         SELECT 1 AS minutes\n",
    );
    question(
        d,
        "writes",
        "-- alert: {every: 1h, when: rows}\nDELETE FROM marts.top_now RETURNING *\n",
    );
    question(
        d,
        "two-statements",
        "-- alert: {every: 1h, when: rows}\nSELECT 1; SELECT 2\n",
    );
    question(
        d,
        "too-often",
        "-- alert: {every: 10s, when: rows}\nSELECT 1\n",
    );
    question(d, "broken-file", "-- title: [unclosed\nSELECT 1\n");
    question(d, "no-alert", "-- title: Just a question\nSELECT 1\n");
    (dir, wh, snapshot)
}

fn utc(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap()
}

/// The built-in alerts flow, set to tick every minute (its default is every 15 minutes) so
/// that each alert's own schedule is what decides, to the minute.
fn flows() -> Vec<FlowSpec> {
    let config = Config::load(
        &magpie_core::ConfigSources::default()
            .with_env(Vec::<(String, String)>::new())
            .with_override("flows.question_alerts.every", "1m"),
    )
    .unwrap();
    let flows = FlowSpec::built_in(&config).unwrap();
    let alerts: Vec<FlowSpec> = flows
        .into_iter()
        .filter(|f| f.name == "question-alerts")
        .collect();
    assert_eq!(alerts.len(), 1, "a built-in flow");
    assert_eq!(alerts[0].tasks, ["alerts"]);
    assert_eq!(
        alerts[0].schedule.as_ref().unwrap().describe(),
        "every 1m",
        "it ticks every minute; each alert's own schedule says when it runs"
    );
    alerts
}

/// Every log line of every run of the flow: (level, message).
fn log_lines(wh: &Warehouse) -> Vec<(String, String)> {
    let mut stmt = wh
        .conn()
        .prepare(
            "SELECT level, message FROM meta.run_logs l JOIN meta.flow_runs r USING (run_id)
             WHERE r.flow = 'question-alerts' ORDER BY l.run_id, l.logged_at",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn count_lines(lines: &[(String, String)], level: &str, needle: &str) -> usize {
    lines
        .iter()
        .filter(|(l, m)| l == level && m.contains(needle))
        .count()
}

#[tokio::test(start_paused = true)]
async fn alerts_run_on_their_own_schedules_under_the_minute_flow() {
    let (dir, wh, snapshot) = setup();
    let recorder = Recorder::default();
    let scheduler_conn = wh.try_clone().unwrap();
    let clock = TokioClock::starting_at(utc(10, 0));
    let tasks = Alerts {
        data_dir: dir.path().to_path_buf(),
        snapshot: snapshot.clone(),
        state: wh.conn(),
        deliver: &recorder,
        clock,
    };
    {
        let (s, _h) = Scheduler::new(
            flows(),
            &scheduler_conn,
            clock,
            &tasks,
            Alerter::new(vec![]),
        );
        // 10:00 to 13:05: runs at 10:01, 10:02, ..., 13:05.
        s.run_until(tokio::time::sleep(Duration::from_secs(
            3 * 3600 + 5 * 60 + 30,
        )))
        .await
        .unwrap();
    }

    let runs = RunStore::new(wh.conn())
        .recent(Some("question-alerts"), 1000)
        .unwrap();
    assert_eq!(runs.len(), 185, "one run a minute");
    assert!(
        runs.iter().all(|r| r.state == "Completed"),
        "broken questions never fail the run: {:?}",
        runs.iter().find(|r| r.state != "Completed")
    );

    let events = recorder.events.borrow().clone();
    let fired: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.question.clone().unwrap(), e.ended_at[11..16].to_string()))
        .collect();
    let of = |slug: &str| -> Vec<&str> {
        fired
            .iter()
            .filter(|(s, _)| s == slug)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(
        of("new-in-top"),
        ["10:01", "11:01", "12:01", "13:01"],
        "hourly, from its first run"
    );
    assert_eq!(
        of("lots-of-plays"),
        ["10:01", "12:00"],
        "at once (never run), then at the cron's noon"
    );
    assert_eq!(fired.len(), 6, "nothing else fires: {fired:?}");

    let first = events
        .iter()
        .find(|e| e.question.as_deref() == Some("new-in-top"))
        .unwrap();
    assert_eq!(first.flow, "question-alerts");
    assert_eq!(first.state, "Alert");
    assert_eq!(first.title.as_deref(), Some("New in your top 10"));
    assert_eq!(
        first.message, "2 rows\n\nartist | plays\nNina Simone | 120\nCan | 40",
        "the variable's default (10) was bound: Sade's 5 plays are not in it"
    );
    let noon = events
        .iter()
        .find(|e| e.question.as_deref() == Some("lots-of-plays"))
        .unwrap();
    assert_eq!(
        noon.title.as_deref(),
        Some("Lots of plays"),
        "the question's title"
    );
    assert!(
        noon.message.starts_with("total = 165 (above 100)"),
        "{}",
        noon.message
    );

    let lines = log_lines(&wh);
    // A failing question is a warning each time it is due (hourly), not every minute.
    assert_eq!(count_lines(&lines, "warn", "no-table: "), 4, "{lines:#?}");
    assert!(count_lines(&lines, "warn", "no_such_table") >= 4);
    assert_eq!(
        count_lines(
            &lines,
            "warn",
            "no-column: the result has no column `hours`"
        ),
        4
    );
    assert_eq!(
        count_lines(&lines, "warn", "writes: only a query"),
        4,
        "a DELETE never runs: {lines:#?}"
    );
    assert_eq!(
        count_lines(&lines, "warn", "two-statements: one statement per request"),
        4
    );
    // A problem that does not change is said once.
    assert_eq!(
        count_lines(&lines, "warn", "too-often: the alert is not valid"),
        1
    );
    assert_eq!(
        count_lines(&lines, "warn", "broken-file.sql"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count_lines(
            &lines,
            "info",
            "new-in-top: fired (2 rows); delivered to 1 of 1"
        ),
        4
    );
    assert_eq!(
        count_lines(&lines, "info", "quiet: checked, nothing to say"),
        4
    );
    assert!(
        lines.iter().any(|(_, m)| m
            == "8 questions with an alert: 7 due, 2 fired, 4 failed; 1 question files are broken (see /questions)"),
        "{lines:#?}"
    );
    let rows: i64 = wh
        .conn()
        .query_row("SELECT count(*) FROM marts.top_now", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3, "nothing was written");

    // The state is kept in the warehouse.
    let state = alert::load_state(wh.conn()).unwrap();
    assert_eq!(state["new-in-top"].last_run_at, Some(utc(13, 1)));
    assert_eq!(state["new-in-top"].last_fired_at, Some(utc(13, 1)));
    assert_eq!(state["new-in-top"].last_error, None);
    assert_eq!(state["lots-of-plays"].last_fired_at, Some(utc(12, 0)));
    assert_eq!(state["quiet"].last_fired_at, None);
    assert!(
        state["no-table"]
            .last_error
            .as_deref()
            .unwrap()
            .contains("no_such_table")
    );
    assert!(!state.contains_key("no-alert"));

    // A restart at 13:40: nothing is due again until its time, then it is.
    recorder.events.borrow_mut().clear();
    let clock = TokioClock::starting_at(utc(13, 40));
    let tasks = Alerts { clock, ..tasks };
    let (s, _h) = Scheduler::new(
        flows(),
        &scheduler_conn,
        clock,
        &tasks,
        Alerter::new(vec![]),
    );
    s.run_until(tokio::time::sleep(Duration::from_secs(30 * 60)))
        .await
        .unwrap();
    let after: Vec<(String, String)> = recorder
        .events
        .borrow()
        .iter()
        .map(|e| (e.question.clone().unwrap(), e.ended_at[11..16].to_string()))
        .collect();
    assert_eq!(
        after,
        [("new-in-top".to_string(), "14:01".to_string())],
        "the hourly alert fires an hour after 13:01, not at the restart"
    );
}

#[tokio::test]
async fn a_runaway_alert_query_is_interrupted_at_its_time_limit() {
    let (dir, wh, snapshot) = setup();
    let found = tokio::task::spawn_blocking({
        let snapshot = snapshot.clone();
        move || {
            let started = std::time::Instant::now();
            let result = alert::query(
                &snapshot,
                &ReaderOptions::default(),
                "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000) b",
                &[],
                Duration::from_millis(500),
            );
            (result, started.elapsed())
        }
    })
    .await
    .unwrap();
    let (result, took) = found;
    let err = result.unwrap_err();
    assert!(err.contains("stopped after 0.5 s"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop((dir, wh));
}

#[test]
fn rows_are_capped() {
    let (_dir, _wh, snapshot) = setup();
    let found = alert::query(
        &snapshot,
        &ReaderOptions::default(),
        "SELECT range AS n FROM range(5000)",
        &[],
        alert::TIMEOUT,
    )
    .unwrap();
    assert_eq!(found.columns, ["n"]);
    assert_eq!(found.rows.len(), alert::MAX_ROWS);
    assert!(found.truncated);
    let none = alert::query(
        &snapshot,
        &ReaderOptions::default(),
        "SELECT 1 AS a, 'x' AS b WHERE false",
        &[],
        alert::TIMEOUT,
    )
    .unwrap();
    assert_eq!(none.columns, ["a", "b"], "columns of an empty result");
    assert!(none.rows.is_empty() && !none.truncated);
}

#[test]
fn a_warehouse_never_built_has_no_marts_and_alerts_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    let snapshot = dir.path().join("snapshot/magpie-readonly.duckdb");
    wh.publish(&snapshot).unwrap();
    let found = alert::query(
        &snapshot,
        &ReaderOptions::default(),
        "SELECT count(*) AS n FROM listeners",
        &[],
        alert::TIMEOUT,
    )
    .unwrap();
    assert_eq!(found.rows, [[serde_json::json!(1)]]);
}
