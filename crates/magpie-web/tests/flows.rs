//! The scheduler's pages and actions over HTTP, with a real scheduler running on a thread of
//! its own: flows with their next run, run now / pause / resume / cancel behind the admin
//! login, the run detail page, and /metrics.

mod common;

use common::client;

use std::time::Duration;

use magpie_core::scheduler::alerts::Alerter;
use magpie_core::scheduler::{
    FlowSpec, Schedule, Scheduler, SystemClock, TaskContext, TaskResult, TaskRunner,
};

/// `ok` finishes at once; `hang` never does.
struct Tasks;

impl TaskRunner for Tasks {
    fn run<'a>(
        &'a self,
        _flow: &'a str,
        task: &'a str,
        _changed: bool,
        ctx: &'a TaskContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TaskResult> + 'a>> {
        Box::pin(async move {
            ctx.info(format!("{task} says hello"));
            match task {
                "hang" => std::future::pending().await,
                _ => Ok(()),
            }
        })
    }
}

fn flow(name: &str, task: &str, schedule: Option<Schedule>) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        tasks: vec![task.into()],
        schedule,
        paused: false,
        retries: 0,
        retry_delay: Duration::from_secs(1),
        task_timeout: Duration::from_secs(600),
    }
}

/// Wait until run `run` is in state `wanted`.
async fn wait_for(d: &common::Served, run: i64, wanted: &str) {
    for _ in 0..100 {
        let n = d.int(&format!(
            "SELECT count(*) FROM meta.flow_runs WHERE run_id = {run} AND state = '{wanted}'"
        ));
        if n == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never became {wanted}");
}

#[tokio::test]
async fn flows_are_listed_run_paused_and_cancelled_by_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let config = magpie_core::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    magpie_core::secrets::set_admin_password(dir.path(), "a long admin secret").unwrap();
    let wh =
        magpie_core::Warehouse::open(dir.path().join("w.duckdb"), &Default::default()).unwrap();
    let conn = wh.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let hourly =
                Schedule::every(Duration::from_secs(3600), chrono::DateTime::UNIX_EPOCH).unwrap();
            let (scheduler, handle) = Scheduler::new(
                vec![
                    flow("quick", "ok", None),
                    flow("stuck", "hang", None),
                    flow("hourly", "ok", Some(hourly)),
                ],
                &conn,
                SystemClock,
                Tasks,
                Alerter::new(vec![]),
            );
            tx.send(handle).unwrap();
            scheduler.run_until(std::future::pending()).await.unwrap();
        });
    });
    let handle = rx.recv().unwrap();
    let app = magpie_web::App::new(&config, &wh)
        .unwrap()
        .with_flows(handle)
        .with_metrics(std::sync::Arc::new(|| "magpie_test_metric 1\n".into()));
    let d = common::serve_app(app, wh, tempfile::tempdir().unwrap());
    let http = client();

    // Once the scheduler has started, the hourly flow has its next run.
    let mut page = common::json(&d.url("/flows?format=json")).await;
    for _ in 0..50 {
        if page["flows"][2]["next_run"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        page = common::json(&d.url("/flows?format=json")).await;
    }
    let flows = page["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 3);
    assert_eq!(flows[0]["name"], "quick");
    assert!(flows[0]["next_run"].is_null(), "by hand only");
    assert_eq!(flows[2]["schedule"], "every 1h");
    assert!(flows[2]["next_run"].as_str().unwrap().ends_with(":00 UTC"));

    // Actions need the login; the browser comes back to the form's page after it.
    let r = http
        .post(d.url("/flows/quick/run"))
        .header("referer", d.url("/flows"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fflows");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(d.int("SELECT count(*) FROM meta.flow_runs"), 0);

    let r = http
        .post(d.url("/login"))
        .form(&[("password", "a long admin secret"), ("next", "/flows")])
        .send()
        .await
        .unwrap();
    let session = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = http
        .get(d.url("/flows"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = common::csrf_of(&html);
    assert_eq!(csrf.len(), 64);
    // Without the token (a form from elsewhere): refused, nothing runs.
    let r = http
        .post(d.url("/flows/quick/run"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nor in the query string, where it would reach logs and history.
    let r = http
        .post(d.url(&format!("/flows/quick/run?csrf={csrf}")))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let post = |path: &str| {
        http.post(d.url(path))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str())])
            .send()
    };

    let r = post("/flows/quick/run").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/flows")
    );
    wait_for(&d, 1, "Completed").await;
    let run = common::json(&d.url("/runs/1?format=json")).await;
    assert_eq!(run["run"]["trigger"], "manual");
    assert_eq!(run["tasks"][0]["task"], "ok");
    assert_eq!(run["tasks"][0]["state"], "Completed");
    assert_eq!(run["logs"][0]["message"], "ok says hello");
    let (status, html) = common::get(&d.url("/runs/1")).await;
    assert_eq!(status, 200);
    assert!(html.contains("ok says hello") && html.contains("task-bar"));

    post("/flows/hourly/pause").await.unwrap();
    let page = common::json(&d.url("/flows?format=json")).await;
    assert_eq!(page["flows"][2]["paused"], true);
    assert_eq!(
        d.int("SELECT count(*) FROM meta.flow_state WHERE flow = 'hourly' AND paused"),
        1
    );
    post("/flows/hourly/resume").await.unwrap();
    let page = common::json(&d.url("/flows?format=json")).await;
    assert_eq!(page["flows"][2]["paused"], false);

    post("/flows/stuck/run").await.unwrap();
    wait_for(&d, 2, "Running").await;
    // A second trigger while it runs is recorded as skipped.
    post("/flows/stuck/run").await.unwrap();
    wait_for(&d, 3, "Cancelled").await;
    let r = post("/runs/2/cancel").await.unwrap();
    assert_eq!(r.headers()["location"], "/runs/2");
    wait_for(&d, 2, "Cancelled").await;
    let page = common::json(&d.url("/flows?format=json")).await;
    let runs: Vec<(i64, String)> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_i64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (3, "Cancelled".into()),
            (2, "Cancelled".into()),
            (1, "Completed".into())
        ]
    );

    assert_eq!(post("/flows/nosuch/run").await.unwrap().status(), 404);
    assert_eq!(post("/flows/quick/explode").await.unwrap().status(), 404);
    assert_eq!(common::get(&d.url("/runs/999")).await.0, 404);
    assert_eq!(common::get(&d.url("/runs/abc")).await.0, 404);
    let r = reqwest::get(d.url("/metrics")).await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "magpie_test_metric 1\n");
}
