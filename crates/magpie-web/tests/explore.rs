//! The Metabase half over HTTP: `/api/sql` with variables and optional clauses, what it
//! refuses and why, Cancel, the time limit, streamed downloads, the schema browser, saved
//! questions (and a broken file), dashboards as files, and public share links.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{client, session_of};
use serde_json::{Value, json};

/// A demo served with an admin password, logged in; its session cookie and CSRF token.
struct Admin {
    served: common::Served,
    data: std::path::PathBuf,
    session: String,
    csrf: String,
}

async fn admin_with(change: impl FnOnce(&mut magpie_core::Config)) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 4_000);
    let mut config = common::config(dir.path());
    change(&mut config);
    magpie_core::secrets::set_admin_password(dir.path(), "a long admin secret").unwrap();
    let app = magpie_web::App::new(&config, &wh).unwrap();
    let data = dir.path().to_path_buf();
    let served = common::serve_app(app, wh, dir);
    let http = client();
    let r = http
        .post(served.url("/login"))
        .form(&[("password", "a long admin secret")])
        .send()
        .await
        .unwrap();
    let session = session_of(&r);
    let html = http
        .get(served.url("/explore"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("data-csrf=\"")
        .expect("the explorer carries the token")
        + 11;
    let csrf: String = html[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(csrf.len(), 64, "{html}");
    Admin {
        served,
        data,
        session,
        csrf,
    }
}

impl Admin {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = client()
            .post(self.served.url(path))
            .header("cookie", &self.session)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })),
        )
    }

    async fn sql(&self, sql: &str, params: Value) -> (u16, Value) {
        self.post("/api/sql", json!({ "sql": sql, "params": params }))
            .await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = client()
            .get(self.served.url(path))
            .header("cookie", &self.session)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// One admin demo for the tests that only read.
async fn shared() -> &'static Admin {
    static ADMIN: OnceLock<Admin> = OnceLock::new();
    if let Some(a) = ADMIN.get() {
        return a;
    }
    let admin = admin_with(|_| {}).await;
    let _ = ADMIN.set(admin);
    ADMIN.get().unwrap()
}

#[tokio::test]
async fn api_sql_answers_columns_rows_counts_and_binds_variables() {
    let a = admin_with(|c| c.explore.max_rows = 5).await;
    let (status, r) = a
        .sql(
            "SELECT artist_name, count(*) AS plays FROM fact_plays JOIN dim_artist USING (artist_id) GROUP BY 1 ORDER BY 2 DESC",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["columns"][0],
        json!({"name": "artist_name", "type": "VARCHAR"})
    );
    assert_eq!(r["columns"][1]["type"], "BIGINT");
    assert_eq!(r["rows"].as_array().unwrap().len(), 5, "explore.max_rows");
    let artists = a
        .served
        .int("SELECT count(DISTINCT artist_id) FROM marts.fact_plays");
    assert_eq!(r["row_count"], artists);
    assert_eq!(r["truncated"], true);
    assert!(r["elapsed_ms"].is_u64());
    let top = r["rows"][0][0].as_str().unwrap().to_string();

    // An optional clause and a typed variable.
    let sql = "SELECT count(*) AS n FROM fact_plays JOIN dim_artist USING (artist_id)
               WHERE fact_plays.ms_played >= {{min_ms}} [[AND artist_name = {{artist}}]]";
    let body = |params: Value| json!({ "sql": sql, "params": params, "variables": {"min_ms": {"type": "number", "default": 0}} });
    let (_, all) = a.post("/api/sql", body(json!({}))).await;
    let (_, one) = a.post("/api/sql", body(json!({ "artist": top }))).await;
    let plays = a.served.int("SELECT count(*) FROM marts.fact_plays");
    assert_eq!(
        all["rows"][0][0], plays,
        "no artist: the clause is dropped: {all}"
    );
    let expected = a.served.int(&format!(
        "SELECT count(*) FROM marts.fact_plays JOIN marts.dim_artist USING (artist_id) WHERE artist_name = '{}'",
        top.replace('\'', "''")
    ));
    assert_eq!(one["rows"][0][0], expected);
    let (status, bad) = a.post("/api/sql", body(json!({ "min_ms": "lots" }))).await;
    assert_eq!(status, 400);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("`lots` is not a number"),
        "{bad}"
    );
    // A value that tries to be SQL is a value.
    let (status, r) = a
        .sql(
            "SELECT count(*) FROM dim_artist WHERE artist_name = {{name}}",
            json!({ "name": "x' OR 1=1; DROP TABLE dim_artist; --" }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["rows"][0][0], 0);
    assert!(a.served.int("SELECT count(*) FROM marts.dim_artist") > 0);
}

#[tokio::test]
async fn api_sql_refuses_everything_but_one_query_and_says_why() {
    let a = shared().await;
    for (sql, needle) in [
        ("CREATE TABLE x AS SELECT 1", "only a query"),
        ("CREATE TEMP TABLE x AS SELECT 1", "only a query"),
        ("DELETE FROM fact_plays", "only a query"),
        (
            "INSERT INTO dim_artist SELECT * FROM dim_artist",
            "only a query",
        ),
        ("UPDATE dim_artist SET artist_name = 'x'", "only a query"),
        ("DROP TABLE fact_plays", "only a query"),
        ("COPY fact_plays TO '/tmp/out.csv'", "only a query"),
        ("EXPORT DATABASE '/tmp/export'", "only a query"),
        ("ATTACH '/tmp/other.duckdb' AS other", "only a query"),
        ("INSTALL httpfs", "only a query"),
        ("LOAD httpfs", "only a query"),
        ("SET memory_limit = '10GB'", "only a query"),
        ("RESET memory_limit", "only a query"),
        ("PRAGMA threads = 64", "only a query"),
        ("CALL duckdb_settings()", "only a query"),
        ("SELECT 1; SELECT 2", "one statement per request"),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "disabled by configuration",
        ),
        (
            "SELECT * FROM read_text('/etc/hostname')",
            "disabled by configuration",
        ),
        ("SELECT * FROM glob('/etc/*')", "disabled by configuration"),
        ("SELECT * FROM 'data/magpie.duckdb'", ""),
        ("", "no query"),
    ] {
        let (status, r) = a.sql(sql, json!({})).await;
        assert!((400..500).contains(&status), "{sql}: answered {status} {r}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{sql}: {error}");
    }
    // Nothing changed, and the connection serves on.
    assert!(a.served.int("SELECT count(*) FROM marts.fact_plays") > 0);
    let (status, _) = a.sql("SELECT 1", json!({})).await;
    assert_eq!(status, 200);
    // Without the CSRF token, or without a session: refused before anything runs.
    let r = client()
        .post(a.served.url("/api/sql"))
        .header("cookie", &a.session)
        .json(&json!({ "sql": "SELECT 1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(a.served.url("/api/sql"))
        .header("accept", "application/json")
        .json(&json!({ "sql": "SELECT 1" }))
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 303), "{}", r.status());
    let (status, r) = a
        .post("/api/sql", json!({ "sql": "SELECT 1", "bogus": 1 }))
        .await;
    assert_eq!(status, 400, "{r}");
}

#[tokio::test]
async fn a_runaway_query_is_stopped_at_the_time_limit_while_pages_answer() {
    let a = admin_with(|c| c.explore.timeout = Duration::from_secs(2)).await;
    let started = Instant::now();
    let runaway = tokio::spawn({
        let (session, csrf, url) = (a.session.clone(), a.csrf.clone(), a.served.url("/api/sql"));
        async move {
            let r = client()
                .post(url)
                .header("cookie", session)
                .header("x-csrf-token", csrf)
                .json(&json!({ "sql": "SELECT sum(a.ms_played * b.ms_played) FROM fact_plays a, fact_plays b, fact_plays c" }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = Instant::now();
    let (status, _) = a.get("/top/artists?range=all").await;
    assert_eq!(status, 200);
    let page_ms = page.elapsed().as_millis();
    let (status, body) = runaway.await.unwrap();
    let stopped_after = started.elapsed();
    eprintln!(
        "the runaway query was stopped after {stopped_after:?}; a page meanwhile took {page_ms} ms"
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("longer than 2 s"), "{body}");
    assert!(stopped_after < Duration::from_secs(8), "{stopped_after:?}");
    let (status, _) = a.sql("SELECT 42", json!({})).await;
    assert_eq!(status, 200, "the connection is usable again");
}

#[tokio::test]
async fn cancel_interrupts_a_running_query() {
    let a = shared().await;
    let query = tokio::spawn({
        let (session, csrf, url) = (a.session.clone(), a.csrf.clone(), a.served.url("/api/sql"));
        async move {
            let r = client()
                .post(url)
                .header("cookie", session)
                .header("x-csrf-token", csrf)
                .json(&json!({ "sql": "SELECT sum(a.ms_played * b.ms_played) FROM fact_plays a, fact_plays b, fact_plays c", "query_id": "long-one" }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    let mut cancelled = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, r) = a
            .post("/api/sql/cancel", json!({ "query_id": "long-one" }))
            .await;
        if r["cancelled"] == true {
            cancelled = true;
            break;
        }
    }
    assert!(cancelled, "the query was found running");
    let (status, body) = query.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cancelled"), "{body}");
}

#[tokio::test]
async fn downloads_stream_the_whole_result() {
    let a = shared().await;
    let download = |format: &'static str| {
        client()
            .post(a.served.url("/api/sql/download"))
            .header("cookie", &a.session)
            .form(&[
                ("csrf", a.csrf.as_str()),
                (
                    "sql",
                    "SELECT range AS i, 'row ' || range AS label FROM range({{n}})",
                ),
                ("params", r#"{"n": 30000}"#),
                ("variables", r#"{"n": {"type": "number"}}"#),
                ("format", format),
            ])
            .send()
    };
    let r = download("csv").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("result.csv")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 30_001);
    assert_eq!(csv.lines().next().unwrap(), "i,label");
    assert_eq!(csv.lines().last().unwrap(), "29999,row 29999");
    let r = download("json").await.unwrap();
    let rows: Vec<Value> = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(rows.len(), 30_000);
    assert_eq!(rows[7], json!({"i": 7, "label": "row 7"}));
}

#[tokio::test]
async fn the_schema_browser_lists_marts_first_with_their_columns() {
    let a = shared().await;
    let r = client()
        .get(a.served.url("/api/schema"))
        .header("cookie", &a.session)
        .send()
        .await
        .unwrap();
    let schema: Value = r.json().await.unwrap();
    let tables = schema["tables"].as_array().unwrap();
    assert_eq!(tables[0]["schema"], "marts");
    let fact = tables.iter().find(|t| t["name"] == "fact_plays").unwrap();
    assert!(
        fact["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "ms_played")
    );
    assert!(
        tables.iter().any(|t| t["schema"] == "raw"),
        "raw tables too"
    );
    let (status, html) = a.get("/explore").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-table=\"fact_plays\"") && html.contains("/assets/explore.js"));
}

#[tokio::test]
async fn a_chart_is_drawn_from_a_result() {
    let a = shared().await;
    let (_, result) = a
        .sql(
            "SELECT a.artist_name, a.artist_id, count(*) AS plays FROM fact_plays f JOIN dim_artist a USING (artist_id) GROUP BY ALL ORDER BY 3 DESC LIMIT 5",
            json!({}),
        )
        .await;
    let (status, r) = a
        .post(
            "/api/chart",
            json!({ "chart": {"kind": "bar", "x": "artist_name", "y": "plays"}, "columns": result["columns"], "rows": result["rows"] }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let svg = r["svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("/artist/"), "{svg}");
    let (status, r) = a
        .post("/api/chart", json!({ "chart": {"kind": "bar", "x": "nope"}, "columns": result["columns"], "rows": result["rows"] }))
        .await;
    assert_eq!(status, 400);
    assert!(r["error"].as_str().unwrap().contains("`nope`"));
}

#[tokio::test]
async fn questions_are_saved_as_files_listed_run_and_broken_files_reported() {
    let a = admin_with(|_| {}).await;
    let (status, r) = a
        .post(
            "/api/questions",
            json!({
                "title": "Plays of an artist",
                "description": "How often one artist was played.",
                "sql": "SELECT a.artist_name, count(*) AS plays FROM fact_plays f JOIN dim_artist a USING (artist_id)\nWHERE true [[AND a.artist_name = {{artist}}]] GROUP BY 1 ORDER BY 2 DESC",
                "variables": {"artist": {"type": "list", "options": "SELECT artist_name FROM dim_artist ORDER BY 1"}},
                "chart": {"kind": "bar", "x": "artist_name", "y": "plays"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["slug"], "plays-of-an-artist", "{r}");
    let file = a.data.join("questions/plays-of-an-artist.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("-- title: Plays of an artist"), "{text}");
    // A broken file beside it.
    std::fs::write(
        a.data.join("questions/broken.sql"),
        "-- title: [unclosed\nSELECT 1\n",
    )
    .unwrap();
    let (status, html) = a.get("/questions").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Plays of an artist"), "{html}");
    assert!(
        html.contains("broken.sql") && html.contains("line 1"),
        "{html}"
    );
    let top = a.served.text(
        "SELECT a.artist_name FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id) GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    );
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("artist", &top)
        .append_pair("format", "json")
        .finish();
    let (status, body) = a.get(&format!("/q/plays-of-an-artist?{query}")).await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["card"]["row_count"], 1);
    assert_eq!(page["card"]["rows"][0][0], top);
    let (status, html) = a.get("/q/plays-of-an-artist").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<svg class=\"chart"),
        "the saved chart is drawn"
    );
    assert!(
        html.contains("<select name=\"artist\">"),
        "a list variable offers its values"
    );
    let (status, csv) = a.get("/q/plays-of-an-artist?format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(
        csv.lines().count() as i64 - 1,
        a.served
            .int("SELECT count(DISTINCT artist_id) FROM marts.fact_plays")
    );
    // An edit by hand shows at the next load, without a restart.
    std::fs::write(&file, text.replace("Plays of an artist", "Renamed by hand")).unwrap();
    let (_, html) = a.get("/questions").await;
    assert!(html.contains("Renamed by hand"));
    assert_eq!(a.get("/q/no-such-question").await.0, 404);
}

#[tokio::test]
async fn dashboards_render_their_cards_with_filters_and_take_new_cards() {
    let a = admin_with(|_| {}).await;
    std::fs::create_dir_all(a.data.join("dashboards")).unwrap();
    std::fs::write(
        a.data.join("dashboards/mine.yml"),
        r#"title: Mine
description: A test dashboard.
filters:
  - {name: range, type: date_range, default: all}
cards:
  - title: Plays in the range
    sql: |
      SELECT count(*) AS plays FROM fact_plays JOIN dim_date USING (date_id)
      WHERE dim_date.date_day BETWEEN {{range.from}} AND {{range.to}}
    chart: {kind: number, y: plays}
    width: 4
  - text: "Numbers are **plays**."
    width: 8
"#,
    )
    .unwrap();
    let (status, body) = a.get("/d/mine?format=json").await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let plays = a.served.int("SELECT count(*) FROM marts.fact_plays");
    assert_eq!(page["cards"][0]["rows"][0][0], plays, "{page}");
    assert!(
        page["cards"][1]["html"]
            .as_str()
            .unwrap()
            .contains("<strong>plays</strong>")
    );
    let (_, body) = a
        .get("/d/mine?range=2025-01-01..2025-01-31&format=json")
        .await;
    let january: Value = serde_json::from_str(&body).unwrap();
    let expected = a.served.int(
        "SELECT count(*) FROM marts.fact_plays JOIN marts.dim_date USING (date_id) WHERE date_day BETWEEN DATE '2025-01-01' AND DATE '2025-01-31'",
    );
    assert_eq!(january["cards"][0]["rows"][0][0], expected);
    let (status, html) = a.get("/d/mine").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("class=\"card dash-card w4\"") && html.contains("<strong>plays</strong>")
    );
    // Add a card from the explorer.
    let (status, r) = a
        .post(
            "/api/dashboards/mine/cards",
            json!({ "title": "Top 3", "sql": "SELECT artist_name, count(*) AS plays FROM fact_plays JOIN dim_artist USING (artist_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 3", "chart": {"kind": "bar"} }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, body) = a.get("/d/mine?format=json").await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["cards"].as_array().unwrap().len(), 3);
    assert_eq!(page["cards"][2]["title"], "Top 3");
    // A new dashboard made by adding a card; every built-in one renders.
    let (status, _) = a
        .post(
            "/api/dashboards/fresh/cards",
            json!({ "sql": "SELECT 1 AS one", "dashboard_title": "Fresh" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, html) = a.get("/dashboards").await;
    assert_eq!(status, 200);
    assert!(html.contains("/d/fresh") && html.contains("/d/mine"));
    let builtins: Vec<String> = {
        let library = magpie_questions::Library::load(&a.data);
        library
            .dashboards
            .values()
            .filter(|d| d.builtin)
            .map(|d| d.slug.clone())
            .collect()
    };
    assert!(!builtins.is_empty(), "examples are built in");
    for slug in builtins {
        let (status, body) = a.get(&format!("/d/{slug}?format=json")).await;
        assert_eq!(status, 200, "{slug}");
        let page: Value = serde_json::from_str(&body).unwrap();
        for card in page["cards"].as_array().unwrap() {
            assert!(card["error"].is_null(), "{slug}: {card}");
        }
    }
}

#[tokio::test]
async fn share_links_show_only_their_object_lock_variables_and_die_when_revoked() {
    let a = admin_with(|c| c.explore.public_requests_per_minute = 1000).await;
    std::fs::create_dir_all(a.data.join("questions")).unwrap();
    std::fs::write(
        a.data.join("questions/artist-plays.sql"),
        "-- title: Artist plays\n-- variables:\n--   artist: {type: text}\nSELECT a.artist_name, count(*) AS plays FROM fact_plays f JOIN dim_artist a USING (artist_id)\nWHERE true [[AND a.artist_name = {{artist}}]] GROUP BY 1 ORDER BY 2 DESC\n",
    )
    .unwrap();
    let top = a.served.text(
        "SELECT a.artist_name FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id) GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    );
    let r = client()
        .post(a.served.url("/admin/shares"))
        .header("cookie", &a.session)
        .form(&[
            ("csrf", a.csrf.as_str()),
            ("target", "question:artist-plays"),
            ("locked", &format!("artist={top}")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap().replace("&#x2f;", "/");
    let at = html.find("/public/").unwrap_or_else(|| {
        panic!(
            "the new link is shown: {}",
            &html[html.find("<main>").unwrap_or(0)..]
                .chars()
                .take(1500)
                .collect::<String>()
        )
    }) + 8;
    let token: String = html[at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    assert!(token.len() >= 22, "{token}");
    assert!(
        !std::fs::read_to_string(a.data.join("secrets/shares.json"))
            .unwrap()
            .contains(&token),
        "only a hash is stored"
    );
    let base = a.served.base.clone();
    let public = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let r = client().get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, page) = public(format!("/public/{token}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&top.replace('&', "&amp;").replace('\'', "&#x27;")),
        "the locked artist"
    );
    for elsewhere in [
        "/top/artists",
        "/admin",
        "/explore",
        "/flows",
        "href=\"/artist/",
        "href=\"/q/",
    ] {
        assert!(!page.contains(elsewhere), "no way to {elsewhere}");
    }
    // The locked value cannot be changed from the URL.
    let (_, json_page) = public(format!("/public/{token}?artist=nobody&format=json")).await;
    let json_page: Value = serde_json::from_str(&json_page).unwrap();
    assert_eq!(json_page["cards"][0]["row_count"], 1);
    assert_eq!(json_page["cards"][0]["rows"][0][0], top);
    let (status, csv) = public(format!("/public/{token}?format=csv")).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 2);
    // A guessed token, or any other path under /public, is a plain 404.
    let guess = "0".repeat(token.len());
    assert_eq!(public(format!("/public/{guess}")).await.0, 404);
    assert_eq!(public("/public/x".into()).await.0, 404);
    // Revoked: gone at once.
    let id = {
        let html = a.get("/admin/shares").await.1.replace("&#x2f;", "/");
        let at = html.find("/admin/shares/").unwrap() + 14;
        html[at..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
    };
    let r = client()
        .post(a.served.url(&format!("/admin/shares/{id}/revoke")))
        .header("cookie", &a.session)
        .form(&[("csrf", a.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(public(format!("/public/{token}")).await.0, 404);
}

#[tokio::test]
async fn a_shared_question_can_run_only_its_own_sql_and_refuses_the_rest() {
    let a = admin_with(|c| c.explore.public_requests_per_minute = 1000).await;
    std::fs::create_dir_all(a.data.join("questions")).unwrap();
    let store = magpie_questions::ShareStore::new(&a.data);
    for (i, sql) in [
        "COPY fact_plays TO '/tmp/leak.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "SELECT 1; DELETE FROM fact_plays",
        "ATTACH '/tmp/x.duckdb'",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(
            a.data.join(format!("questions/evil-{i}.sql")),
            format!("-- title: Evil {i}\n{sql}\n"),
        )
        .unwrap();
        let (_, token) = store
            .create(
                magpie_questions::ShareTarget::Question(format!("evil-{i}")),
                Default::default(),
            )
            .unwrap();
        let r = client()
            .get(a.served.url(&format!("/public/{token}?format=json")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let error = page["cards"][0]["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{sql} ran: {page}");
    }
    assert!(!std::path::Path::new("/tmp/leak.csv").exists());
    assert!(a.served.int("SELECT count(*) FROM marts.fact_plays") > 0);
}

#[tokio::test]
async fn public_links_are_rate_limited_per_client() {
    let a = admin_with(|c| c.explore.public_requests_per_minute = 3).await;
    let store = magpie_questions::ShareStore::new(&a.data);
    let slug = magpie_questions::Library::load(&a.data)
        .dashboards
        .keys()
        .next()
        .cloned()
        .expect("a built-in dashboard");
    let (_, token) = store
        .create(
            magpie_questions::ShareTarget::Dashboard(slug),
            Default::default(),
        )
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = client()
            .get(a.served.url(&format!("/public/{token}?format=json")))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
}
