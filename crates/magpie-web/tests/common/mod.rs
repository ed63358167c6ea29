//! Test fixtures: a demo warehouse built through the real importer and models, served by the
//! real server on 127.0.0.1:0.

#![allow(dead_code)]

pub mod browser;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use chrono::NaiveDate;
use magpie_core::{Config, OpenOptions, Warehouse};
use magpie_models::runner::{BuildOptions, Runner, Status};
use magpie_music::demo::{GenerateOptions, generate};
use magpie_music::import::{ImportOptions, Importer};
use magpie_web::App;

/// The demo history's last day: ranges in the tests are fixed against it.
pub const LAST_DAY: &str = "2026-05-31";

pub struct Served {
    pub base: String,
    pub app: App,
    warehouse: Mutex<Warehouse>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// One number from SQL on the served warehouse.
    pub fn int(&self, sql: &str) -> i64 {
        let wh = self.warehouse.lock().unwrap();
        wh.conn()
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or(0)
    }

    /// One text value from SQL on the served warehouse.
    pub fn text(&self, sql: &str) -> String {
        let wh = self.warehouse.lock().unwrap();
        wh.conn()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of (text, number) from SQL on the served warehouse.
    pub fn pairs(&self, sql: &str) -> Vec<(String, i64)> {
        let wh = self.warehouse.lock().unwrap();
        let mut stmt = wh.conn().prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Run statements on the served warehouse, then publish its snapshot (as a build's last
    /// step does) so the pages show them.
    pub fn execute(&self, sql: &str) {
        let wh = self.warehouse.lock().unwrap();
        wh.conn().execute_batch(sql).unwrap();
        self.app.publish(&wh).unwrap();
    }

    /// The data folder (the configuration's `data_dir`).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Build the models on the served warehouse and publish the snapshot, as the daily
    /// flow's build does.
    pub fn build(&self, config: &Config) {
        let wh = self.warehouse.lock().unwrap();
        run_build(&wh, config.data_dir.as_path());
        self.app.publish(&wh).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The configuration of a served test warehouse: its data (the snapshot the pages read
/// among it) in `dir`.
pub fn config(dir: &Path) -> Config {
    Config {
        timezone: "Europe/Berlin".into(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    }
}

/// Generate, import and build a demo history of `plays` plays in `dir`.
pub fn demo_warehouse(dir: &Path, plays: u64) -> Warehouse {
    demo_warehouse_with(dir, plays, |_| {})
}

/// The demo history the test warehouses hold.
pub fn demo_options(dir: &Path, plays: u64) -> GenerateOptions {
    GenerateOptions {
        plays,
        years: 3,
        seed: 11,
        end: NaiveDate::parse_from_str(LAST_DAY, "%Y-%m-%d").ok(),
        timezone: chrono_tz::Europe::Berlin,
        out_dir: dir.join("export"),
        records_per_file: 10_000,
    }
}

/// The same, running `before_build` on the warehouse between import and build.
pub fn demo_warehouse_with(
    dir: &Path,
    plays: u64,
    before_build: impl FnOnce(&Warehouse),
) -> Warehouse {
    let export = dir.join("export");
    generate(&demo_options(dir, plays)).unwrap();
    let wh = Warehouse::open(dir.join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    let summary = Importer::new(&wh, ImportOptions::default())
        .unwrap()
        .import_paths(&[export], &mut |_| {});
    assert!(summary.all_ok());
    before_build(&wh);
    run_build(&wh, dir);
    wh
}

/// `default` (the demo's 8,000 plays) and `bob` (6,000 others, another seed), built.
pub fn household_warehouse(dir: &std::path::Path) -> Warehouse {
    let wh = Warehouse::open(dir.join("magpie.duckdb"), &OpenOptions::default()).unwrap();
    for (listener, plays, seed) in [("default", 8_000, 11), ("bob", 6_000, 23)] {
        let mut options = demo_options(dir, plays);
        options.seed = seed;
        options.out_dir = dir.join(format!("export-{listener}"));
        generate(&options).unwrap();
        let summary = Importer::new(
            &wh,
            ImportOptions {
                listener: listener.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .import_paths(&[options.out_dir], &mut |_| {});
        assert!(summary.all_ok());
    }
    run_build(&wh, dir);
    wh
}

/// Build every model with its data tests, asserting all succeed.
pub fn run_build(wh: &Warehouse, dir: &Path) {
    magpie_models::timezone::write_offsets(wh.conn(), chrono_tz::Europe::Berlin).unwrap();
    let project = magpie_models::embedded::project().unwrap();
    let report = Runner::new(wh.conn(), &project)
        .build(
            &BuildOptions {
                run_tests: true,
                temp_dir: dir.to_path_buf(),
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap();
    let failed: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.status != Status::Success)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// Serve `warehouse` on a free loopback port from a thread of its own.
pub fn serve(warehouse: Warehouse, dir: tempfile::TempDir) -> Served {
    serve_app(
        App::new(&config(dir.path()), &warehouse).unwrap(),
        warehouse,
        dir,
    )
}

/// Serve `warehouse` through `app` (built over it).
pub fn serve_app(app: App, warehouse: Warehouse, dir: tempfile::TempDir) -> Served {
    let (tx, rx) = std::sync::mpsc::channel();
    let served_app = app.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            magpie_web::serve(listener, served_app, std::future::pending())
                .await
                .unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    Served {
        base: format!("http://{addr}"),
        app,
        warehouse: Mutex::new(warehouse),
        _dir: dir,
    }
}

/// The main pages with a range control (the ones the cache warmer computes after a build).
#[allow(unused_imports)] // not every test binary uses it
pub use magpie_web::warm::PAGES;

/// The shared demo (20,000 plays over three years), built once per test binary.
pub fn demo() -> &'static Served {
    static DEMO: OnceLock<Served> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = demo_warehouse(dir.path(), 20_000);
        serve(wh, dir)
    })
}

/// GET a URL: status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GET a URL as JSON, asserting 200.
pub async fn json(url: &str) -> serde_json::Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// The CSRF token of a page's forms (`<input type="hidden" name="csrf" value="...">`).
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

/// A client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session cookie (`name=value`) a login response set.
pub fn session_of(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}
