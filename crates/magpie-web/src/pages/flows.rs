//! The scheduler's pages: flows with their schedule, next run, last state and duration, and
//! the run history (`/flows`); one run with its task timeline and log lines (`/runs/ID`); and
//! the actions, which sit behind the session layer: run now, pause, resume, cancel.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use magpie_core::scheduler::store::{LogRow, RunRow, TaskRow};
use magpie_core::scheduler::{Control, FlowStatus};
use serde::Serialize;

use super::{PageQuery, context, plain_frame, reply};
use crate::render::{Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Flow {
    #[serde(flatten)]
    status: FlowStatus,
    next_run: Option<String>,
    last: Option<RunRow>,
}

#[derive(Debug, Serialize)]
struct Flows {
    /// The session's CSRF token for the action forms (none when not logged in).
    csrf: Option<String>,
    scheduler: bool,
    flows: Vec<Flow>,
    runs: Vec<RunRow>,
    snapshot: Option<String>,
}

pub async fn page(
    State(app): State<App>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let csrf = app.auth().session(&jar).map(|s| s.csrf);
    reply(&app, &query, build(&app, &query, csrf).await)
}

async fn build(app: &App, query: &PageQuery, csrf: Option<String>) -> Result<Rendered, WebError> {
    let frame = plain_frame(app, query, "Flows".into(), "flows", "/flows".into())?;
    let statuses = app.flows().map(|h| h.flows()).unwrap_or_default();
    let scheduler = app.flows().is_some();
    let snapshot = Some(app.snapshot_path().display().to_string());
    let runs = app.live().runs(None, 50).await?;
    let lasts = app
        .live()
        .last_runs(statuses.iter().map(|s| s.name.clone()).collect())
        .await?;
    let flows = statuses
        .into_iter()
        .zip(lasts)
        .map(|(status, last)| Flow {
            next_run: status
                .next_run
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            status,
            last,
        })
        .collect();
    let data = Flows {
        csrf,
        scheduler,
        flows,
        runs,
        snapshot,
    };
    let mut table = Table::new(&[
        "run_id",
        "flow",
        "state",
        "trigger",
        "started_at",
        "duration_ms",
        "error",
    ]);
    for r in &data.runs {
        table.push(vec![
            r.run_id.to_string(),
            r.flow.clone(),
            r.state.clone(),
            r.trigger.clone(),
            r.started_at.map(|t| t.to_string()).unwrap_or_default(),
            r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    Ok(Rendered {
        template: "flows.html",
        data: context(&frame, &data)?,
        charts: Vec::new(),
        table,
        name: "flows".into(),
    })
}

#[derive(Debug, Serialize)]
struct RunPage {
    csrf: Option<String>,
    run: RunRow,
    tasks: Vec<TaskBar>,
    logs: Vec<LogRow>,
    cancellable: bool,
}

/// A task on the timeline: its offset and width as percentages of the run.
#[derive(Debug, Serialize)]
struct TaskBar {
    #[serde(flatten)]
    task: TaskRow,
    left: f64,
    width: f64,
}

pub async fn run(
    State(app): State<App>,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let csrf = app.auth().session(&jar).map(|s| s.csrf);
    reply(&app, &query, build_run(&app, &query, &id, csrf).await)
}

async fn build_run(
    app: &App,
    query: &PageQuery,
    id: &str,
    csrf: Option<String>,
) -> Result<Rendered, WebError> {
    let run_id: i64 = id
        .parse()
        .map_err(|_| WebError::NotFound(format!("no run `{id}`")))?;
    let frame = plain_frame(
        app,
        query,
        format!("Run {run_id}"),
        "flows",
        format!("/runs/{run_id}"),
    )?;
    let detail = app.live().run(run_id).await?;
    let run = detail.run;
    let start = run.started_at;
    let total = run.duration_ms.unwrap_or(0).max(1) as f64;
    let tasks = detail
        .tasks
        .into_iter()
        .map(|t| {
            let offset = match (start, t.started_at) {
                (Some(s), Some(t)) => (t - s).num_milliseconds() as f64,
                _ => 0.0,
            };
            let width = t.duration_ms.unwrap_or(0) as f64;
            TaskBar {
                left: (offset / total * 100.0).clamp(0.0, 100.0),
                width: (width / total * 100.0).clamp(0.5, 100.0),
                task: t,
            }
        })
        .collect();
    let cancellable = matches!(
        run.state.as_str(),
        "Running" | "Retrying" | "Pending" | "Scheduled" | "Late"
    );
    let data = RunPage {
        csrf,
        run,
        tasks,
        logs: detail.logs,
        cancellable,
    };
    let mut table = Table::new(&["logged_at", "level", "task", "message"]);
    for l in &data.logs {
        table.push(vec![
            l.at.to_string(),
            l.level.clone(),
            l.task.clone().unwrap_or_default(),
            l.message.clone(),
        ]);
    }
    Ok(Rendered {
        template: "run.html",
        data: context(&frame, &data)?,
        charts: Vec::new(),
        table,
        name: format!("run-{run_id}"),
    })
}

/// POST /flows/{flow}/{action}: run, pause or resume (behind the session layer).
pub async fn act(State(app): State<App>, Path((flow, action)): Path<(String, String)>) -> Response {
    let Some(handle) = app.flows() else {
        return WebError::Unavailable("the scheduler is not running".into()).into_response();
    };
    if !handle.knows(&flow) {
        return WebError::NotFound(format!("no flow `{flow}`")).into_response();
    }
    let control = match action.as_str() {
        "run" => Control::RunNow {
            flow,
            params: Default::default(),
        },
        "pause" => Control::Pause(flow),
        "resume" => Control::Resume(flow),
        other => return WebError::NotFound(format!("no action `{other}`")).into_response(),
    };
    if !handle.send(control) {
        return WebError::Unavailable("the scheduler has stopped".into()).into_response();
    }
    // Give the scheduler a moment, so the page shows the change.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    Redirect::to("/flows").into_response()
}

/// POST /runs/{id}/cancel (behind the session layer).
pub async fn cancel(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let Some(handle) = app.flows() else {
        return WebError::Unavailable("the scheduler is not running".into()).into_response();
    };
    if !handle.send(Control::Cancel(id)) {
        return WebError::Unavailable("the scheduler has stopped".into()).into_response();
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    Redirect::to(&format!("/runs/{id}")).into_response()
}
