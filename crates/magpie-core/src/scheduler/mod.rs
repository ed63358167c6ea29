//! The in-process scheduler (what Prefect's server, worker and Postgres did): flows as data
//! (named lists of tasks with a schedule), every flow run and task run recorded in the
//! warehouse with its state and log lines, retries with exponential backoff and jitter, a
//! timeout per task, at most one run per flow at a time, crash recovery (runs left Running
//! become Crashed) and one Late run for schedules missed while magpie was down, webhook alerts
//! on failure and recovery, and Prometheus metrics.
//!
//! The scheduler runs on one thread with the warehouse connection it is given; tasks are
//! provided by a [`TaskRunner`] (the binary's: poll Spotify, enrich, build, snapshot, back up),
//! so this module knows nothing of music. Time comes from a [`Clock`], so tests run days of
//! schedule in milliseconds.

pub mod alerts;
pub mod clock;
pub mod engine;
pub mod schedule;
pub mod store;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

pub use clock::{Clock, SystemClock, TokioClock};
pub use engine::{Control, FlowStatus, Handle, Scheduler};
pub use schedule::Schedule;
pub use store::RunStore;

use crate::config::Config;

/// A run's (or task run's) state, as Prefect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RunState {
    Scheduled,
    Pending,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
    Crashed,
    Late,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "Scheduled",
            RunState::Pending => "Pending",
            RunState::Running => "Running",
            RunState::Retrying => "Retrying",
            RunState::Completed => "Completed",
            RunState::Failed => "Failed",
            RunState::Cancelled => "Cancelled",
            RunState::Crashed => "Crashed",
            RunState::Late => "Late",
        }
    }
}

/// A flow: its tasks in order, its schedule, and how its tasks are retried and timed out.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub name: String,
    pub tasks: Vec<String>,
    /// `None`: runs only when started by hand.
    pub schedule: Option<Schedule>,
    pub paused: bool,
    pub retries: u32,
    pub retry_delay: Duration,
    pub task_timeout: Duration,
}

/// The built-in flows and their tasks. `question-alerts` runs the saved questions whose alert
/// is due (each question's own schedule) and delivers those that fire to the webhooks.
pub const BUILT_IN: [(&str, &[&str]); 4] = [
    ("spotify-ingest", &["poll", "build"]),
    ("enrich", &["enrich", "build"]),
    ("daily-etl", &["enrich", "build", "snapshot", "backup"]),
    ("question-alerts", &["alerts"]),
];

impl FlowSpec {
    /// The built-in flows as configured.
    pub fn built_in(config: &Config) -> Result<Vec<FlowSpec>, String> {
        BUILT_IN
            .iter()
            .map(|(name, tasks)| {
                let s = config
                    .flows
                    .resolved(name)
                    .ok_or_else(|| format!("no settings for flow {name}"))?;
                let schedule = match (&s.every, &s.cron) {
                    (Some(every), _) => Some(Schedule::every(*every, s.anchor)?),
                    (None, Some(cron)) => Some(Schedule::cron(cron, config.tz())?),
                    (None, None) => None,
                };
                Ok(FlowSpec {
                    name: (*name).to_string(),
                    tasks: tasks.iter().map(|t| (*t).to_string()).collect(),
                    schedule,
                    paused: s.paused,
                    retries: s.retries,
                    retry_delay: s.retry_delay,
                    task_timeout: s.task_timeout,
                })
            })
            .collect()
    }
}

/// What a task gets: the run's parameters, a log, and a way to ask for an early next run.
#[derive(Debug, Default)]
pub struct TaskContext {
    pub run_id: i64,
    pub params: BTreeMap<String, String>,
    lines: RefCell<Vec<(&'static str, String)>>,
    rerun_after: Cell<Option<Duration>>,
    /// Whether the task did anything that calls for the next task (e.g. new plays to build).
    changed: Cell<bool>,
}

impl TaskContext {
    pub fn new(run_id: i64, params: BTreeMap<String, String>) -> Self {
        Self {
            run_id,
            params,
            ..Default::default()
        }
    }

    /// A line for the run's log (and the process log).
    pub fn info(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(run_id = self.run_id, "{message}");
        self.lines.borrow_mut().push(("info", message));
    }

    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(run_id = self.run_id, "{message}");
        self.lines.borrow_mut().push(("warn", message));
    }

    /// Run this flow again after `after` (sooner than its schedule), e.g. when Spotify returned
    /// a full page and plays may be waiting.
    pub fn rerun_after(&self, after: Duration) {
        self.rerun_after.set(Some(after));
    }

    /// Say that the task changed the data (later tasks such as `build` may check).
    pub fn mark_changed(&self) {
        self.changed.set(true);
    }

    pub(crate) fn take_lines(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.lines.borrow_mut())
    }
}

/// The result of one task.
pub type TaskResult = Result<(), String>;

/// Runs tasks by name (implemented where the tasks' dependencies live: the binary).
pub trait TaskRunner {
    /// Run `task` of `flow`. `changed` says whether an earlier task of this run changed data.
    fn run<'a>(
        &'a self,
        flow: &'a str,
        task: &'a str,
        changed: bool,
        ctx: &'a TaskContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TaskResult> + 'a>>;
}
