//! The scheduler loop: wait for the next due slot or a control message, run one flow at a time
//! (tasks in order, each with retries and a timeout), and record everything as it happens.
//!
//! Control messages ([`Control`]: run now, pause, resume, cancel) arrive through a [`Handle`]
//! that the web server and signal handlers hold; they are handled between runs and during one
//! (a second trigger of the running flow is recorded as skipped, a cancel drops the running
//! task at its next await).
//!
//! A full disk fails the run, not the scheduler: a reserve of space beside the warehouse is
//! given back when a task (or the run's own record) fails for want of space, so the run is
//! still recorded as Failed with the disk's error.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::alerts::{AlertEvent, Alerter};
use super::store::RunStore;
use super::{Clock, FlowSpec, RunState, TaskContext, TaskResult, TaskRunner};
use crate::host::{DiskFailure, DiskState, disk_failure};

/// How long the scheduler waits before trying again when its run history cannot be written.
pub const STORE_RETRY: Duration = Duration::from_secs(60);

/// Schedules missed while down: at most this many are looked at (one Late run is made).
const MISSED_CAP: usize = 100_000;

/// What the UI and the CLI can ask of a running scheduler.
#[derive(Debug, Clone)]
pub enum Control {
    RunNow {
        flow: String,
        params: BTreeMap<String, String>,
    },
    Pause(String),
    Resume(String),
    Cancel(i64),
}

/// A flow as the UI shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlowStatus {
    pub name: String,
    pub schedule: String,
    pub tasks: Vec<String>,
    pub paused: bool,
    pub next_run: Option<DateTime<Utc>>,
    pub running: Option<i64>,
}

/// A cheap, thread-safe handle on a running scheduler.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Control>,
    status: Arc<Mutex<Vec<FlowStatus>>>,
}

impl Handle {
    /// Send a control message; false when the scheduler has stopped.
    pub fn send(&self, control: Control) -> bool {
        self.tx.send(control).is_ok()
    }

    /// Every flow's schedule, next run and running run.
    pub fn flows(&self) -> Vec<FlowStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn knows(&self, flow: &str) -> bool {
        self.flows().iter().any(|f| f.name == flow)
    }
}

/// Space set aside for recording runs when the disk fills up: a file of [`Reserve::BYTES`]
/// beside the warehouse (`magpie.duckdb.reserve`), made before each run when the disk has room
/// for it, removed when a run fails for want of space so that its Failed state, error and log
/// fit in the warehouse's write-ahead log. (An in-memory warehouse has none.)
struct Reserve(Option<PathBuf>);

impl Reserve {
    const BYTES: usize = 1 << 20;

    /// The reserve of the database `conn` writes to.
    fn of(conn: &Connection) -> Self {
        let file: Option<String> = conn
            .query_row(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()",
                [],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        Reserve(
            file.filter(|f| !f.is_empty())
                .map(|f| PathBuf::from(format!("{f}.reserve"))),
        )
    }

    /// Make the file when it is missing and the disk has room for it twice over. Not zeros,
    /// which a compressing file system would store in nothing.
    fn ensure(&self) {
        let Some(path) = &self.0 else { return };
        let room = path
            .parent()
            .map_or(0, |dir| DiskState::read(dir).available_bytes);
        if path.exists() || room < 2 * Self::BYTES as u64 {
            return;
        }
        let bytes: Vec<u8> = (0..Self::BYTES).map(|i| (i * 7919 % 251) as u8).collect();
        if std::fs::write(path, bytes).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Give the space back when `error` says the disk is full.
    fn release_for(&self, error: &str) {
        if disk_failure(error) == Some(DiskFailure::Full)
            && let Some(path) = &self.0
            && std::fs::remove_file(path).is_ok()
        {
            tracing::warn!(path = %path.display(), "the disk is full: released the space set aside to record the failed run");
        }
    }
}

/// A run waiting to start.
#[derive(Debug, Clone)]
struct Trigger {
    run_id: i64,
    flow: String,
}

/// The scheduler over one warehouse connection.
pub struct Scheduler<'c, C: Clock, R: TaskRunner> {
    flows: Vec<FlowSpec>,
    conn: &'c Connection,
    clock: C,
    runner: R,
    alerter: Alerter,
    /// Control messages; a tokio mutex only because the receiver is held across an await
    /// (one holder at a time: the idle wait or the running flow).
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Control>>,
    status: Arc<Mutex<Vec<FlowStatus>>>,
    queue: RefCell<VecDeque<Trigger>>,
    /// Next due slot per scheduled flow (the earliest of the schedule and a rerun request).
    next: RefCell<BTreeMap<String, DateTime<Utc>>>,
    paused: RefCell<BTreeMap<String, bool>>,
    running: RefCell<Option<(i64, String)>>,
    reserve: Reserve,
}

impl<'c, C: Clock, R: TaskRunner> Scheduler<'c, C, R> {
    pub fn new(
        flows: Vec<FlowSpec>,
        conn: &'c Connection,
        clock: C,
        runner: R,
        alerter: Alerter,
    ) -> (Self, Handle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(Vec::new()));
        let handle = Handle {
            tx,
            status: Arc::clone(&status),
        };
        let scheduler = Self {
            flows,
            conn,
            clock,
            runner,
            alerter,
            rx: tokio::sync::Mutex::new(rx),
            status,
            queue: RefCell::new(VecDeque::new()),
            next: RefCell::new(BTreeMap::new()),
            paused: RefCell::new(BTreeMap::new()),
            running: RefCell::new(None),
            reserve: Reserve::of(conn),
        };
        scheduler.publish();
        (scheduler, handle)
    }

    fn store(&self) -> RunStore<'c> {
        RunStore::new(self.conn)
    }

    fn flow(&self, name: &str) -> Option<&FlowSpec> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// Start-up: runs a crash left unfinished become Crashed (and are alerted); each schedule
    /// missed while magpie was down gets one run, marked Late.
    pub async fn recover(&self) -> duckdb::Result<()> {
        let now = self.clock.now();
        let store = self.store();
        for (run_id, flow) in store.mark_crashed(now)? {
            tracing::warn!(run_id, flow = %flow, "a run was interrupted by a crash or kill");
            metrics::counter!("magpie_flow_runs_total", "flow" => flow.clone(), "state" => "Crashed")
                .increment(1);
            self.alert(
                &flow,
                run_id,
                "Crashed",
                Some("magpie stopped during the run"),
            )
            .await;
        }
        for flow in &self.flows {
            let (stored_paused, last) = store.flow_state(&flow.name)?;
            if flow.paused && !stored_paused {
                store.set_paused(&flow.name, true)?;
            }
            let paused = flow.paused || stored_paused;
            self.paused.borrow_mut().insert(flow.name.clone(), paused);
            let Some(schedule) = &flow.schedule else {
                continue;
            };
            let from = match last {
                // First start: nothing was missed.
                None => {
                    store.set_last_slot(&flow.name, now)?;
                    now
                }
                Some(last) => {
                    let missed = schedule.missed(last, now, MISSED_CAP);
                    if let Some(latest) = missed.last() {
                        store.set_last_slot(&flow.name, *latest)?;
                        if !paused {
                            tracing::info!(flow = %flow.name, missed = missed.len(), "schedule missed while stopped: one late run");
                            self.enqueue(
                                &flow.name,
                                RunState::Late,
                                "late",
                                Some(*latest),
                                &BTreeMap::new(),
                            )?;
                        }
                        *latest
                    } else {
                        last
                    }
                }
            };
            if let Some(next) = schedule.next_after(from) {
                self.next.borrow_mut().insert(flow.name.clone(), next);
            }
        }
        self.publish();
        Ok(())
    }

    /// Create a run record and queue it, unless a run of the flow is already running or
    /// queued: then the trigger is recorded as skipped. Returns the run id.
    fn enqueue(
        &self,
        flow: &str,
        state: RunState,
        trigger: &str,
        slot: Option<DateTime<Utc>>,
        params: &BTreeMap<String, String>,
    ) -> duckdb::Result<i64> {
        let store = self.store();
        let params_json = serde_json::to_value(params).unwrap_or_default();
        let busy = self
            .running
            .borrow()
            .as_ref()
            .filter(|(_, f)| f == flow)
            .map(|(id, _)| *id)
            .or_else(|| {
                self.queue
                    .borrow()
                    .iter()
                    .find(|t| t.flow == flow)
                    .map(|t| t.run_id)
            });
        let now = self.clock.now();
        if let Some(other) = busy {
            let id = store.create(flow, RunState::Cancelled, trigger, slot, &params_json, now)?;
            store.finish(
                id,
                RunState::Cancelled,
                Some(&format!(
                    "skipped: run {other} of this flow has not finished"
                )),
                now,
            )?;
            metrics::counter!("magpie_flow_runs_total", "flow" => flow.to_string(), "state" => "Skipped")
                .increment(1);
            return Ok(id);
        }
        let id = store.create(flow, state, trigger, slot, &params_json, now)?;
        self.queue.borrow_mut().push_back(Trigger {
            run_id: id,
            flow: flow.to_string(),
        });
        Ok(id)
    }

    /// Queue every flow whose slot has come.
    fn enqueue_due(&self) -> duckdb::Result<()> {
        let now = self.clock.now();
        let due: Vec<(String, DateTime<Utc>)> = self
            .next
            .borrow()
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(f, at)| (f.clone(), *at))
            .collect();
        for (name, slot) in due {
            let Some(flow) = self.flow(&name) else {
                continue;
            };
            let paused = self.paused.borrow().get(&name).copied().unwrap_or(false);
            if !paused {
                self.enqueue(
                    &name,
                    RunState::Scheduled,
                    "schedule",
                    Some(slot),
                    &BTreeMap::new(),
                )?;
            }
            self.store().set_last_slot(&name, slot.max(now))?;
            if let Some(next) = flow
                .schedule
                .as_ref()
                .and_then(|s| s.next_after(slot.max(now)))
            {
                self.next.borrow_mut().insert(name.clone(), next);
            }
        }
        Ok(())
    }

    fn handle(&self, control: Control) -> duckdb::Result<()> {
        match control {
            Control::RunNow { flow, params } => {
                if self.flow(&flow).is_some() {
                    self.enqueue(&flow, RunState::Pending, "manual", None, &params)?;
                }
            }
            Control::Pause(flow) | Control::Resume(flow) if self.flow(&flow).is_none() => {}
            Control::Pause(flow) => {
                self.store().set_paused(&flow, true)?;
                self.paused.borrow_mut().insert(flow, true);
            }
            Control::Resume(flow) => {
                self.store().set_paused(&flow, false)?;
                self.paused.borrow_mut().insert(flow, false);
            }
            Control::Cancel(run_id) => {
                // A queued run is dropped here; the running one by the run loop.
                let mut queue = self.queue.borrow_mut();
                if let Some(i) = queue.iter().position(|t| t.run_id == run_id) {
                    queue.remove(i);
                    self.store().finish(
                        run_id,
                        RunState::Cancelled,
                        Some("cancelled before it started"),
                        self.clock.now(),
                    )?;
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// Share flows' status with the handle.
    fn publish(&self) {
        let running = self.running.borrow().clone();
        let status: Vec<FlowStatus> = self
            .flows
            .iter()
            .map(|f| FlowStatus {
                name: f.name.clone(),
                schedule: f
                    .schedule
                    .as_ref()
                    .map_or_else(|| "by hand".to_string(), |s| s.describe()),
                tasks: f.tasks.clone(),
                paused: self
                    .paused
                    .borrow()
                    .get(&f.name)
                    .copied()
                    .unwrap_or(f.paused),
                next_run: self.next.borrow().get(&f.name).copied(),
                running: running
                    .as_ref()
                    .filter(|(_, n)| *n == f.name)
                    .map(|(id, _)| *id),
            })
            .collect();
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    /// Run until `stop` completes (shutdown), then return after the current task's next await.
    ///
    /// Only the recovery at start is fatal. When the run history cannot be written later (a
    /// full or read-only disk), the error is logged, the run in hand is marked Failed if that
    /// can be written, and the scheduler tries again after [`STORE_RETRY`]: scheduled flows
    /// resume by themselves once the disk has room.
    pub async fn run_until(
        &self,
        stop: impl std::future::Future<Output = ()>,
    ) -> duckdb::Result<()> {
        self.recover().await?;
        tokio::pin!(stop);
        loop {
            let error = match self.turn(stop.as_mut()).await {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                Err(e) => e.to_string(),
            };
            let running = self.running.borrow_mut().take();
            if let Some((run_id, flow)) = running {
                let note = format!("recording the run: {error}");
                let _ =
                    self.store()
                        .finish(run_id, RunState::Failed, Some(&note), self.clock.now());
                tracing::error!(run_id, flow = %flow, "a run ended without its record");
            }
            self.reserve.release_for(&error);
            tracing::error!(error = %error, retry_in = ?STORE_RETRY, "the scheduler could not write its run history");
            metrics::counter!("magpie_scheduler_store_errors_total").increment(1);
            let retry =
                self.clock.now() + chrono::Duration::from_std(STORE_RETRY).unwrap_or_default();
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                () = self.clock.sleep_until(retry) => {}
            }
        }
    }

    /// One turn of the loop: start what is due, or wait for the next schedule or a control
    /// message. `true` once `stop` has completed.
    async fn turn<F: std::future::Future<Output = ()>>(
        &self,
        mut stop: std::pin::Pin<&mut F>,
    ) -> duckdb::Result<bool> {
        self.enqueue_due()?;
        self.publish();
        let next = self.queue.borrow_mut().pop_front();
        if let Some(trigger) = next {
            let run_id = trigger.run_id;
            tokio::select! {
                biased;
                () = &mut stop => {
                    // Best effort: at shutdown the warehouse may be being interrupted; a run
                    // left Running is marked Crashed at the next start instead.
                    if let Err(e) = self.store().finish(run_id, RunState::Cancelled, Some("magpie was stopped"), self.clock.now()) {
                        tracing::warn!(run_id, error = %e, "could not record the stopped run");
                    }
                    return Ok(true);
                }
                result = self.execute(trigger) => { result?; }
            }
            return Ok(false);
        }
        let wake = self
            .next
            .borrow()
            .iter()
            .filter(|(f, _)| !self.paused.borrow().get(*f).copied().unwrap_or(false))
            .map(|(_, at)| *at)
            .min()
            .unwrap_or_else(|| self.clock.now() + chrono::Duration::hours(24));
        let message = {
            let mut rx = self.rx.lock().await;
            tokio::select! {
                biased;
                () = &mut stop => return Ok(true),
                message = rx.recv() => message,
                () = self.clock.sleep_until(wake) => None,
            }
        };
        if let Some(control) = message {
            self.handle(control)?;
        }
        Ok(false)
    }

    /// Run `flow` once now, in the foreground (`magpie run`); its final state.
    pub async fn run_now(
        &self,
        flow: &str,
        trigger: &str,
        params: BTreeMap<String, String>,
    ) -> duckdb::Result<(i64, RunState)> {
        let id = self.enqueue(flow, RunState::Pending, trigger, None, &params)?;
        let Some(t) = self.queue.borrow_mut().pop_back() else {
            return Ok((id, RunState::Cancelled));
        };
        let state = self.execute(t).await?;
        Ok((id, state))
    }

    /// Run one queued flow, listening for control messages meanwhile.
    async fn execute(&self, trigger: Trigger) -> duckdb::Result<RunState> {
        let Some(flow) = self.flow(&trigger.flow).cloned() else {
            return Ok(RunState::Cancelled);
        };
        let store = self.store();
        let started = self.clock.now();
        self.reserve.ensure();
        store.set_state(trigger.run_id, RunState::Running, started)?;
        tracing::info!(run_id = trigger.run_id, flow = %flow.name, "flow run started");
        *self.running.borrow_mut() = Some((trigger.run_id, flow.name.clone()));
        self.publish();
        let params: BTreeMap<String, String> = store
            .run(trigger.run_id)?
            .and_then(|r| r.parameters)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default();
        let work = self.run_tasks(trigger.run_id, &flow, params);
        tokio::pin!(work);
        let (state, error) = loop {
            let control = {
                let mut rx = self.rx.lock().await;
                tokio::select! {
                    result = &mut work => match result {
                        Ok(outcome) => break outcome,
                        // Recording a task failed for want of space: the run fails with that.
                        Err(e) if disk_failure(&e.to_string()).is_some() => {
                            let error = e.to_string();
                            self.reserve.release_for(&error);
                            break (RunState::Failed, Some(format!("recording the run: {error}")));
                        }
                        Err(e) => return Err(e),
                    },
                    control = rx.recv() => control,
                }
            };
            match control {
                Some(Control::Cancel(id)) if id == trigger.run_id => {
                    break (RunState::Cancelled, Some("cancelled".to_string()));
                }
                Some(other) => self.handle(other)?,
                None => {}
            }
        };
        let now = self.clock.now();
        if state != RunState::Completed {
            // A cancelled task, or one whose end could not be recorded, ends with the run.
            self.conn.execute(
                "UPDATE meta.task_runs SET state = ?, ended_at = ? WHERE run_id = ? AND state IN ('Running', 'Retrying')",
                duckdb::params![state.as_str(), now.naive_utc(), trigger.run_id],
            )?;
        }
        store.finish(trigger.run_id, state, error.as_deref(), now)?;
        store.prune(&flow.name, super::store::RUNS_KEPT_PER_FLOW)?;
        *self.running.borrow_mut() = None;
        self.publish();
        let seconds = (now - started).num_milliseconds() as f64 / 1000.0;
        metrics::counter!("magpie_flow_runs_total", "flow" => flow.name.clone(), "state" => state.as_str())
            .increment(1);
        metrics::histogram!("magpie_flow_run_duration_seconds", "flow" => flow.name.clone())
            .record(seconds);
        match state {
            RunState::Completed => {
                metrics::gauge!("magpie_flow_last_success_timestamp_seconds", "flow" => flow.name.clone())
                    .set(now.timestamp() as f64);
                let before = store.previous_final_state(&flow.name, trigger.run_id)?;
                if matches!(before.as_deref(), Some("Failed") | Some("Crashed")) {
                    self.alert(&flow.name, trigger.run_id, "Recovered", None)
                        .await;
                }
            }
            RunState::Failed => {
                self.alert(&flow.name, trigger.run_id, "Failed", error.as_deref())
                    .await;
            }
            _ => {}
        }
        Ok(state)
    }

    /// The tasks in order; the first that fails after its retries fails the run.
    async fn run_tasks(
        &self,
        run_id: i64,
        flow: &FlowSpec,
        params: BTreeMap<String, String>,
    ) -> duckdb::Result<(RunState, Option<String>)> {
        let store = self.store();
        let mut changed = false;
        for (position, task) in flow.tasks.iter().enumerate() {
            let mut attempt = 1u32;
            loop {
                store.task_started(run_id, task, position, attempt, self.clock.now())?;
                let ctx = TaskContext::new(run_id, params.clone());
                let result = self.attempt(run_id, flow, task, changed, &ctx).await;
                if let Err(error) = &result {
                    self.reserve.release_for(error);
                }
                let now = self.clock.now();
                for (level, line) in ctx.take_lines() {
                    store.log(run_id, level, Some(task), &line, now)?;
                }
                if ctx.changed.get() {
                    changed = true;
                }
                if let Some(after) = ctx.rerun_after.get() {
                    let at = now + chrono::Duration::from_std(after).unwrap_or_default();
                    let mut next = self.next.borrow_mut();
                    let slot = next.entry(flow.name.clone()).or_insert(at);
                    *slot = (*slot).min(at);
                }
                match result {
                    Ok(()) => {
                        store.task_state(run_id, task, RunState::Completed, None, now)?;
                        break;
                    }
                    Err(error) if attempt <= flow.retries => {
                        let delay = backoff(flow.retry_delay, attempt);
                        store.task_state(run_id, task, RunState::Retrying, Some(&error), now)?;
                        store.set_state(run_id, RunState::Retrying, now)?;
                        store.log(
                            run_id,
                            "warn",
                            Some(task),
                            &format!(
                                "attempt {attempt} failed: {error}; retrying in {}",
                                humantime::format_duration(Duration::from_secs(delay.as_secs()))
                            ),
                            now,
                        )?;
                        self.clock
                            .sleep_until(
                                now + chrono::Duration::from_std(delay).unwrap_or_default(),
                            )
                            .await;
                        store.set_state(run_id, RunState::Running, self.clock.now())?;
                        attempt += 1;
                    }
                    Err(error) => {
                        store.task_state(run_id, task, RunState::Failed, Some(&error), now)?;
                        store.log(run_id, "error", Some(task), &error, now)?;
                        return Ok((RunState::Failed, Some(format!("{task}: {error}"))));
                    }
                }
            }
        }
        Ok((RunState::Completed, None))
    }

    /// One attempt at `task`, within the flow's timeout. A panic in the task (in the runner's
    /// `run` call itself or anywhere in its future, before or after an await) is caught here
    /// and becomes the attempt's error, `panicked: <message>`, logged with tracing, so it is
    /// retried and recorded like any other failure and the scheduler (and `magpie serve` with
    /// it) keeps running.
    async fn attempt(
        &self,
        run_id: i64,
        flow: &FlowSpec,
        task: &str,
        changed: bool,
        ctx: &TaskContext,
    ) -> TaskResult {
        // `run` is called inside the caught future, so a panic before it returns a future is
        // caught too. Unwind safety: nothing the task borrows is used after its panic but the
        // context's log lines (a RefCell released by the unwinding) and the runner, whose own
        // state is its business, as with any error.
        let work =
            AssertUnwindSafe(async { self.runner.run(&flow.name, task, changed, ctx).await })
                .catch_unwind();
        match tokio::time::timeout(flow.task_timeout, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(payload)) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(run_id, flow = %flow.name, task, panic = %message, "a task panicked");
                Err(format!("panicked: {message}"))
            }
            Err(_) => Err(format!(
                "timed out after {}",
                humantime::format_duration(flow.task_timeout)
            )),
        }
    }

    async fn alert(&self, flow: &str, run_id: i64, state: &str, error: Option<&str>) {
        let run = self.store().run(run_id).ok().flatten();
        let message = match error {
            Some(e) => format!("{flow} run {run_id}: {state}: {e}"),
            None => format!("{flow} run {run_id}: {state}"),
        };
        let event = AlertEvent {
            flow: flow.to_string(),
            run_id,
            state: state.to_string(),
            error: error.map(str::to_string),
            started_at: run
                .as_ref()
                .and_then(|r| r.started_at)
                .map(|t| t.to_string()),
            ended_at: self.clock.now().naive_utc().to_string(),
            message,
            title: None,
            question: None,
        };
        self.alerter.send(&event).await;
    }
}

/// The message of a caught panic: the `&str` or `String` given to `panic!` (or to `expect`,
/// `unwrap` and the like), else a placeholder for a payload of another type.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a payload that is not a string".to_string()
    }
}

/// The wait before retry `attempt` (1-based): `base` doubled each time, times a jitter
/// between 0.75 and 1.25.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let doubled = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    doubled.mul_f64(0.75 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let payload = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "plain");
        let payload = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "formatted 7");
        let payload = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(
            panic_message(payload.as_ref()),
            "a panic with a payload that is not a string"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempt in 1..=4 {
            let d = backoff(Duration::from_secs(10), attempt);
            let base = 10.0 * 2f64.powi(attempt as i32 - 1);
            assert!(
                d.as_secs_f64() >= base * 0.75 && d.as_secs_f64() <= base * 1.25,
                "{d:?}"
            );
        }
    }
}
