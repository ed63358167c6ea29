//! The scheduler against a real warehouse: schedules firing on a controllable clock (tokio's
//! paused time), retries with backoff, timeouts, a second trigger while a run is going,
//! cancelling, crash recovery, missed schedules, panicking tasks, and alerts delivered to a
//! local webhook receiver.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use magpie_core::config::{WebhookConfig, WebhookFormat};
use magpie_core::scheduler::alerts::Alerter;
use magpie_core::scheduler::{
    Control, FlowSpec, RunState, RunStore, Schedule, Scheduler, TaskContext, TaskResult,
    TaskRunner, TokioClock,
};
use magpie_core::{OpenOptions, Secret, Warehouse};

/// How a test task behaves.
#[derive(Debug, Clone)]
enum Behaviour {
    Ok,
    /// Fail this many times, then succeed.
    FailTimes(u32),
    /// Never finish.
    Hang,
    /// Take this long.
    Sleep(Duration),
    /// Panic in `run` itself, before a future is returned.
    PanicInRun,
    /// Panic in the future, after an await.
    PanicAfterAwait,
}

#[derive(Default)]
struct Runner {
    behaviour: RefCell<HashMap<String, Behaviour>>,
}

impl Runner {
    fn with(tasks: &[(&str, Behaviour)]) -> Self {
        let r = Runner::default();
        for (t, b) in tasks {
            r.behaviour.borrow_mut().insert((*t).to_string(), b.clone());
        }
        r
    }
}

impl TaskRunner for &Runner {
    fn run<'a>(
        &'a self,
        _flow: &'a str,
        task: &'a str,
        _changed: bool,
        ctx: &'a TaskContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TaskResult> + 'a>> {
        if let Some(Behaviour::PanicInRun) = self.behaviour.borrow().get(task) {
            panic!("{task} went off before its future");
        }
        Box::pin(async move {
            ctx.info(format!("{task} starting"));
            let b = self
                .behaviour
                .borrow()
                .get(task)
                .cloned()
                .unwrap_or(Behaviour::Ok);
            match b {
                Behaviour::Ok | Behaviour::FailTimes(0) => Ok(()),
                Behaviour::FailTimes(n) => {
                    self.behaviour
                        .borrow_mut()
                        .insert(task.to_string(), Behaviour::FailTimes(n - 1));
                    Err(format!("{task} broke ({} more)", n - 1))
                }
                Behaviour::Hang => std::future::pending().await,
                Behaviour::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Behaviour::PanicInRun => unreachable!("panicked in run"),
                Behaviour::PanicAfterAwait => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    panic!("{task} went off after an await");
                }
            }
        })
    }
}

fn flow(name: &str, tasks: &[&str], schedule: Option<Schedule>, retries: u32) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        tasks: tasks.iter().map(|t| (*t).to_string()).collect(),
        schedule,
        paused: false,
        retries,
        retry_delay: Duration::from_secs(30),
        task_timeout: Duration::from_secs(300),
    }
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

fn warehouse() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    (dir, wh)
}

fn states(wh: &Warehouse, flow: &str) -> Vec<(String, String)> {
    let mut stmt = wh
        .conn()
        .prepare("SELECT state, trigger FROM meta.flow_runs WHERE flow = ? ORDER BY run_id")
        .unwrap();
    stmt.query_map([flow], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test(start_paused = true)]
async fn schedules_fire_on_time_on_the_clock() {
    let (_d, wh) = warehouse();
    let runner = Runner::default();
    let every = Schedule::every(Duration::from_secs(1800), chrono::DateTime::UNIX_EPOCH).unwrap();
    let (s, handle) = Scheduler::new(
        vec![flow("ingest", &["poll"], Some(every), 0)],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    // Three virtual hours.
    s.run_until(tokio::time::sleep(Duration::from_secs(3 * 3600 + 60)))
        .await
        .unwrap();
    let runs = RunStore::new(wh.conn())
        .recent(Some("ingest"), 100)
        .unwrap();
    let slots: Vec<String> = runs
        .iter()
        .rev()
        .map(|r| r.scheduled_for.unwrap().format("%H:%M").to_string())
        .collect();
    assert_eq!(
        slots,
        ["10:30", "11:00", "11:30", "12:00", "12:30", "13:00"]
    );
    assert!(runs.iter().all(|r| r.state == "Completed"));
    let status = handle.flows();
    assert_eq!(
        status[0].next_run.unwrap().format("%H:%M").to_string(),
        "13:30"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_then_fail_or_succeed() {
    let (_d, wh) = warehouse();
    let runner = Runner::with(&[
        ("flaky", Behaviour::FailTimes(2)),
        ("broken", Behaviour::FailTimes(9)),
    ]);
    let (s, _h) = Scheduler::new(
        vec![
            flow("recovers", &["flaky", "after"], None, 2),
            flow("gives-up", &["broken", "never"], None, 1),
        ],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    s.recover().await.unwrap();
    let before = tokio::time::Instant::now();
    let (id, state) = s.run_now("recovers", "cli", BTreeMap::new()).await.unwrap();
    assert_eq!(state, RunState::Completed);
    // Two retries: ~30 s then ~60 s (each jittered by ±25 %).
    let waited = tokio::time::Instant::now() - before;
    assert!(
        waited >= Duration::from_millis(67_500) && waited <= Duration::from_millis(112_500),
        "{waited:?}"
    );
    let store = RunStore::new(wh.conn());
    let tasks = store.tasks(id).unwrap();
    assert_eq!(
        (tasks[0].state.as_str(), tasks[0].attempt),
        ("Completed", 3)
    );
    assert_eq!(tasks[1].state, "Completed");
    let logs = store.logs(id).unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.starts_with("attempt 1 failed: flaky broke")),
        "{logs:?}"
    );

    let (id, state) = s.run_now("gives-up", "cli", BTreeMap::new()).await.unwrap();
    assert_eq!(state, RunState::Failed);
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.error.as_deref(), Some("broken: broken broke (7 more)"));
    let tasks = store.tasks(id).unwrap();
    assert_eq!(tasks.len(), 1, "the task after a failed one does not run");
    assert_eq!((tasks[0].state.as_str(), tasks[0].attempt), ("Failed", 2));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_task_times_out() {
    let (_d, wh) = warehouse();
    let runner = Runner::with(&[("stuck", Behaviour::Hang)]);
    let (s, _h) = Scheduler::new(
        vec![flow("hangs", &["stuck"], None, 0)],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    s.recover().await.unwrap();
    let (id, state) = s.run_now("hangs", "cli", BTreeMap::new()).await.unwrap();
    assert_eq!(state, RunState::Failed);
    let run = RunStore::new(wh.conn()).run(id).unwrap().unwrap();
    assert_eq!(run.error.as_deref(), Some("stuck: timed out after 5m"));
    assert_eq!(run.duration_ms, Some(300_000));
}

/// Issue 24, defect 7: a panic in a task used to unwind through the scheduler and end
/// `magpie serve`. Now it fails the task (after its retries) with the panic's message, and the
/// scheduler goes on to run the next flows, including the same flow once it works again.
#[tokio::test(start_paused = true)]
async fn a_panicking_task_fails_its_run_and_the_scheduler_keeps_going() {
    let (_d, wh) = warehouse();
    let runner = Runner::with(&[
        ("boom", Behaviour::PanicAfterAwait),
        ("early", Behaviour::PanicInRun),
    ]);
    let (s, handle) = Scheduler::new(
        vec![
            flow("explodes", &["boom", "never"], None, 1),
            flow("early", &["early"], None, 0),
            flow("fine", &["work"], None, 0),
        ],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    let run_now = |f: &str| {
        assert!(
            handle.send(Control::RunNow {
                flow: f.into(),
                params: BTreeMap::new(),
            }),
            "the scheduler is still running to take {f}"
        );
    };
    let driver = async {
        run_now("explodes");
        // One retry after ~30 s (at most 37.5 s with jitter), each attempt taking 1 s.
        tokio::time::sleep(Duration::from_secs(120)).await;
        run_now("early");
        tokio::time::sleep(Duration::from_secs(10)).await;
        run_now("fine");
        tokio::time::sleep(Duration::from_secs(10)).await;
        runner
            .behaviour
            .borrow_mut()
            .insert("boom".into(), Behaviour::Ok);
        run_now("explodes");
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    s.run_until(driver).await.unwrap();

    let store = RunStore::new(wh.conn());
    assert_eq!(
        states(&wh, "explodes"),
        [pair("Failed", "manual"), pair("Completed", "manual")]
    );
    let run = store.run(1).unwrap().unwrap();
    assert_eq!(
        run.error.as_deref(),
        Some("boom: panicked: boom went off after an await")
    );
    let tasks = store.tasks(1).unwrap();
    assert_eq!(
        tasks.len(),
        1,
        "the task after the panicking one does not run"
    );
    assert_eq!((tasks[0].state.as_str(), tasks[0].attempt), ("Failed", 2));
    assert_eq!(
        tasks[0].error.as_deref(),
        Some("panicked: boom went off after an await")
    );
    let logs = store.logs(1).unwrap();
    assert!(
        logs.iter().any(|l| l
            .message
            .starts_with("attempt 1 failed: panicked: boom went off after an await")),
        "retried like any failure: {logs:?}"
    );

    assert_eq!(states(&wh, "early"), [pair("Failed", "manual")]);
    let run = store.recent(Some("early"), 1).unwrap().remove(0);
    assert_eq!(
        run.error.as_deref(),
        Some("early: panicked: early went off before its future")
    );
    assert_eq!(states(&wh, "fine"), [pair("Completed", "manual")]);
    assert!(handle.flows().iter().all(|f| f.running.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_second_trigger_is_skipped_and_a_cancel_stops_the_run() {
    let (_d, wh) = warehouse();
    let runner = Runner::with(&[
        ("slow", Behaviour::Sleep(Duration::from_secs(120))),
        ("stuck", Behaviour::Hang),
    ]);
    let (s, handle) = Scheduler::new(
        vec![
            flow("slow", &["slow"], None, 0),
            flow("stuck", &["stuck"], None, 0),
        ],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    let run_now = |f: &str| {
        handle.send(Control::RunNow {
            flow: f.into(),
            params: BTreeMap::new(),
        })
    };
    let driver = async {
        assert!(run_now("slow"));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(handle.flows()[0].running, Some(1), "run 1 is going");
        assert!(run_now("slow"));
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert!(run_now("stuck"));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let running = handle.flows()[1].running.expect("stuck is running");
        handle.send(Control::Cancel(running));
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    s.run_until(driver).await.unwrap();
    assert_eq!(
        states(&wh, "slow"),
        [pair("Completed", "manual"), pair("Cancelled", "manual")]
    );
    let skipped = RunStore::new(wh.conn()).run(2).unwrap().unwrap();
    assert_eq!(
        skipped.error.as_deref(),
        Some("skipped: run 1 of this flow has not finished")
    );
    assert_eq!(states(&wh, "stuck"), [pair("Cancelled", "manual")]);
    let tasks = RunStore::new(wh.conn()).tasks(3).unwrap();
    assert_eq!(tasks[0].state, "Cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_schedule_missed_while_down_runs_once_late_and_pause_stops_it() {
    let (_d, wh) = warehouse();
    let runner = Runner::default();
    let hourly = Schedule::every(Duration::from_secs(3600), chrono::DateTime::UNIX_EPOCH).unwrap();
    // magpie last handled the 05:00 slot; it is 10:00 now: 06:00 ... 10:00 were missed.
    RunStore::new(wh.conn())
        .set_last_slot("hourly", Utc.with_ymd_and_hms(2026, 3, 1, 5, 0, 0).unwrap())
        .unwrap();
    let (s, handle) = Scheduler::new(
        vec![flow("hourly", &["work"], Some(hourly), 0)],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    let driver = async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        handle.send(Control::Pause("hourly".into()));
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    };
    s.run_until(driver).await.unwrap();
    assert_eq!(states(&wh, "hourly"), [pair("Completed", "late")]);
    let run = RunStore::new(wh.conn())
        .recent(Some("hourly"), 1)
        .unwrap()
        .remove(0);
    assert_eq!(
        run.scheduled_for.unwrap().format("%H:%M").to_string(),
        "10:00"
    );
    assert!(
        RunStore::new(wh.conn()).flow_state("hourly").unwrap().0,
        "the pause is kept"
    );
}

type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A local webhook receiver: (path, "ntfy title|body") of every POST.
async fn receiver() -> (String, Received) {
    use axum::extract::Path;
    use axum::http::HeaderMap;
    let got: Received = Arc::default();
    let store = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/{kind}",
        axum::routing::post(
            move |Path(kind): Path<String>, headers: HeaderMap, body: String| {
                let store = Arc::clone(&store);
                async move {
                    let title = headers
                        .get("Title")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    store
                        .lock()
                        .unwrap()
                        .push((kind, format!("{title}|{body}")));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn crashes_failures_and_recoveries_are_alerted() {
    let (_d, wh) = warehouse();
    let (url, got) = receiver().await;
    let mut hooks: Vec<WebhookConfig> = ["generic", "ntfy", "discord", "slack"]
        .iter()
        .map(|kind| WebhookConfig {
            url: Secret::new(format!("{url}/{kind}")),
            format: serde_json::from_value(serde_json::json!(kind)).unwrap(),
        })
        .collect();
    // A dead webhook is logged and skipped.
    hooks.push(WebhookConfig {
        url: Secret::new("http://127.0.0.1:9/nobody"),
        format: WebhookFormat::Generic,
    });
    let runner = Runner::with(&[("step", Behaviour::Hang)]);
    {
        // A first process starts a run and dies in the middle of it.
        let (s, _h) = Scheduler::new(
            vec![flow("etl", &["step"], None, 0)],
            wh.conn(),
            magpie_core::scheduler::SystemClock,
            &runner,
            Alerter::new(hooks.clone()),
        );
        s.recover().await.unwrap();
        let run = s.run_now("etl", "cli", BTreeMap::new());
        let _ = tokio::time::timeout(Duration::from_millis(200), run).await;
    }
    assert_eq!(states(&wh, "etl")[0].0, "Running", "as the kill left it");
    runner
        .behaviour
        .borrow_mut()
        .insert("step".into(), Behaviour::FailTimes(1));
    let (s, _h) = Scheduler::new(
        vec![flow("etl", &["step"], None, 0)],
        wh.conn(),
        magpie_core::scheduler::SystemClock,
        &runner,
        Alerter::new(hooks),
    );
    s.recover().await.unwrap();
    assert_eq!(states(&wh, "etl")[0].0, "Crashed");
    for expected in [RunState::Failed, RunState::Completed, RunState::Completed] {
        let (_, state) = s.run_now("etl", "cli", BTreeMap::new()).await.unwrap();
        assert_eq!(state, expected);
    }

    let got = got.lock().unwrap().clone();
    let of = |kind: &str| -> Vec<String> {
        got.iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, b)| b.clone())
            .collect()
    };
    let body = |s: &str| -> serde_json::Value {
        serde_json::from_str(s.split_once('|').unwrap().1).unwrap()
    };
    let generic: Vec<serde_json::Value> = of("generic").iter().map(|b| body(b)).collect();
    let states: Vec<&str> = generic
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["Crashed", "Failed", "Recovered"],
        "no alert for the second success"
    );
    assert_eq!(generic[1]["flow"], "etl");
    assert_eq!(generic[1]["error"], "step: step broke (0 more)");
    assert_eq!(
        of("ntfy")[0],
        "magpie: etl crashed|etl run 1: Crashed: magpie stopped during the run"
    );
    assert_eq!(
        body(&of("discord")[1])["content"],
        "etl run 2: Failed: step: step broke (0 more)"
    );
    assert_eq!(body(&of("slack")[2])["text"], "etl run 3: Recovered");
}

/// The built-in `question-alerts` flow (issue 25): one `alerts` task, every 15 minutes by
/// default, configurable like the others; on a paused clock it ticks on its schedule and a
/// pause stops it.
#[tokio::test(start_paused = true)]
async fn the_question_alerts_flow_ticks_on_its_schedule_and_is_configurable() {
    use magpie_core::config::{Config, ConfigSources};
    let built_in = |sources: ConfigSources| -> Result<FlowSpec, String> {
        let config = Config::load(&sources).map_err(|e| e.to_string())?;
        FlowSpec::built_in(&config)?
            .into_iter()
            .find(|f| f.name == "question-alerts")
            .ok_or_else(|| "no question-alerts flow".to_string())
    };
    let flow = built_in(ConfigSources::default()).unwrap();
    assert_eq!(flow.tasks, ["alerts"]);
    assert_eq!(flow.schedule.as_ref().unwrap().describe(), "every 15m");
    assert_eq!((flow.retries, flow.paused), (0, false));
    assert_eq!(flow.task_timeout, Duration::from_secs(300));
    let cron = built_in(
        ConfigSources::default()
            .with_override("flows.question_alerts.cron", "*/5 * * * *")
            .with_override("flows.question_alerts.paused", "true"),
    )
    .unwrap();
    assert_eq!(
        cron.schedule.as_ref().unwrap().describe(),
        "cron */5 * * * * (UTC)"
    );
    assert!(cron.paused);
    let err = built_in(ConfigSources::default().with_override("flows.question_alerts.every", "5s"))
        .unwrap_err();
    assert!(err.contains("flows.question_alerts.every"), "{err}");

    let (_d, wh) = warehouse();
    let runner = Runner::default();
    let (s, handle) = Scheduler::new(
        vec![flow],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    let driver = async {
        tokio::time::sleep(Duration::from_secs(150 * 60 + 30)).await;
        handle.send(Control::Pause("question-alerts".into()));
        tokio::time::sleep(Duration::from_secs(3600)).await;
    };
    s.run_until(driver).await.unwrap();
    let runs = RunStore::new(wh.conn())
        .recent(Some("question-alerts"), 1000)
        .unwrap();
    assert_eq!(runs.len(), 10, "10:15 ... 12:30, then paused");
    assert!(runs.iter().all(|r| r.state == "Completed"));
}

/// A flow's history keeps its newest finished runs and forgets the rest with their tasks and
/// log lines; other flows' runs and a run still going are kept.
#[test]
fn old_runs_of_a_flow_are_forgotten_beyond_the_newest_kept() {
    let (_d, wh) = warehouse();
    let store = RunStore::new(wh.conn());
    let now = start();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let id = store
            .create(
                "busy",
                RunState::Running,
                "schedule",
                None,
                &serde_json::json!({}),
                now,
            )
            .unwrap();
        store.task_started(id, "t", 0, 1, now).unwrap();
        store.log(id, "info", Some("t"), "hello", now).unwrap();
        store.finish(id, RunState::Completed, None, now).unwrap();
        ids.push(id);
    }
    let running = store
        .create(
            "busy",
            RunState::Running,
            "schedule",
            None,
            &serde_json::json!({}),
            now,
        )
        .unwrap();
    let other = store
        .create(
            "quiet",
            RunState::Running,
            "schedule",
            None,
            &serde_json::json!({}),
            now,
        )
        .unwrap();
    store
        .finish(other, RunState::Failed, Some("x"), now)
        .unwrap();
    assert_eq!(store.prune("busy", 2).unwrap(), 4);
    let kept: Vec<i64> = store
        .recent(Some("busy"), 100)
        .unwrap()
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(kept, [running, ids[5], ids[4]]);
    let count = |sql: &str| -> i64 { wh.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM meta.task_runs"), 2);
    assert_eq!(count("SELECT count(*) FROM meta.run_logs"), 2);
    assert_eq!(store.recent(Some("quiet"), 10).unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_history_that_cannot_be_written_pauses_the_scheduler_until_it_can() {
    // The run table goes away for 45 minutes (as on a full or read-only disk, every write of
    // the history fails): the scheduler logs, waits, and its schedules resume afterwards.
    let (_d, wh) = warehouse();
    let runner = Runner::default();
    let every = Schedule::every(Duration::from_secs(1800), chrono::DateTime::UNIX_EPOCH).unwrap();
    let (s, _handle) = Scheduler::new(
        vec![flow("ingest", &["poll"], Some(every), 0)],
        wh.conn(),
        TokioClock::starting_at(start()),
        &runner,
        Alerter::new(vec![]),
    );
    let outage = async {
        tokio::time::sleep(Duration::from_secs(40 * 60)).await;
        wh.conn()
            .execute_batch("ALTER TABLE meta.flow_runs RENAME TO flow_runs_away")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(45 * 60)).await;
        wh.conn()
            .execute_batch("ALTER TABLE meta.flow_runs_away RENAME TO flow_runs")
            .unwrap();
    };
    let (result, ()) = tokio::join!(
        s.run_until(tokio::time::sleep(Duration::from_secs(3 * 3600 + 60))),
        outage
    );
    result.expect("the scheduler outlives a run history it cannot write");
    let slots: Vec<String> = RunStore::new(wh.conn())
        .recent(Some("ingest"), 100)
        .unwrap()
        .iter()
        .rev()
        .filter(|r| r.state == "Completed")
        .map(|r| r.scheduled_for.unwrap().format("%H:%M").to_string())
        .collect();
    assert_eq!(slots[0], "10:30", "before the outage: {slots:?}");
    for slot in ["12:00", "12:30", "13:00"] {
        assert!(
            slots.iter().any(|s| s == slot),
            "{slot} ran after it: {slots:?}"
        );
    }
    let distinct: std::collections::BTreeSet<&String> = slots.iter().collect();
    assert_eq!(distinct.len(), slots.len(), "no slot ran twice: {slots:?}");
}
