//! The Metabase half in real headless Chromium, as an admin would use it: log in through the
//! login form, run SQL in the explorer with Ctrl+Enter, draw a bar chart of the result, save
//! it as a question, add it to a new dashboard, give that dashboard a date-range filter (by
//! editing its file, as the docs invite) and change it, change a built-in dashboard's filter,
//! make a public share link, open it in a second, logged-out browser (only the cards, no way
//! to anything else, no console errors), revoke it and see the link answer 404. Every number
//! checked is compared with SQL run on the warehouse directly. A screenshot of every step is
//! saved in the folder the test prints.
//!
//! Without chromedriver the test prints a notice and passes, unless REQUIRE_BROWSER_TESTS is
//! set (CI sets it), which makes a missing browser a failure.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::browser::{Driver, browser_with, chromedriver, click, path, script, shot, wait_for};
use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};

const PASSWORD: &str = "a long admin secret";

/// chromedriver's console log of a session (`goog:loggingPrefs` must ask for it): the entries
/// since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type": "browser"}"#.into()),
        )
    }
}

/// A Chromium session whose console errors can be read with [`console_errors`].
async fn logging_browser(driver: &Driver, profile: &Path) -> Client {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({ "browser": "ALL" }),
    );
    browser_with(driver, profile, extra).await
}

/// The console errors (JavaScript errors, refused scripts or styles, failed requests, the
/// favicon included) since the last read.
async fn console_errors(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Poll `js` (a function body) until it returns something truthy, up to 10 s; that value.
async fn wait_until(client: &Client, what: &str, js: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = script(client, js).await;
        let truthy = !matches!(
            &value,
            serde_json::Value::Null | serde_json::Value::Bool(false)
        ) && value != "";
        if truthy {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still not so after 10 s on {:?}",
            client.current_url().await.ok()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css).await.text().await.unwrap()
}

/// Replace the text of the input or textarea `css` by typing `value`.
async fn type_into(client: &Client, css: &str, value: &str) {
    let input = wait_for(client, css).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// Ctrl+Enter, as a person presses it: Control down, Enter down and up, Control up.
async fn ctrl_enter(client: &Client) {
    let chord = KeyActions::new("keyboard".into())
        .then(KeyAction::Down {
            value: Key::Control.into(),
        })
        .then(KeyAction::Down {
            value: Key::Enter.into(),
        })
        .then(KeyAction::Up {
            value: Key::Enter.into(),
        })
        .then(KeyAction::Up {
            value: Key::Control.into(),
        });
    client.perform_actions(chord).await.unwrap();
}

/// Type `sql` into the explorer, run it with Ctrl+Enter and wait for its table, whose first
/// column is `first_column`; the status line.
async fn run_in_explorer(client: &Client, sql: &str, first_column: &str) -> String {
    type_into(client, "#sql", sql).await;
    ctrl_enter(client).await;
    wait_until(
        client,
        &format!("the result of {sql}"),
        &format!(
            "var th = document.querySelector('#result table th'); \
             return th && th.textContent === '{first_column}' && !document.getElementById('run').disabled"
        ),
    )
    .await;
    text(client, "#status").await
}

/// The big number of the number card `#card-N` on a page whose URL's query contains `query`.
async fn number_card(client: &Client, card: usize, query: &str) -> i64 {
    let value = wait_until(
        client,
        &format!("card {card} after {query}"),
        &format!(
            "if (location.search.indexOf('{query}') < 0) return null; \
             var t = document.querySelector('#card-{card} svg.number text.big'); \
             return t && t.textContent"
        ),
    )
    .await;
    value
        .as_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("card {card} shows {value}: {e}"))
}

/// Submit a dashboard's filter form with `range` typed into its `range` input.
async fn apply_range(client: &Client, range: &str) {
    type_into(client, "form.vars input[name=range]", range).await;
    click(client, "form.vars button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_save_dashboard_and_share_in_headless_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let wh = common::demo_warehouse(dir.path(), 5_000);
    magpie_core::secrets::set_admin_password(dir.path(), PASSWORD).unwrap();
    let app = magpie_web::App::new(&common::config(dir.path()), &wh).unwrap();
    let served = common::serve_app(app, wh, dir);
    let started = Instant::now();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("magpie-screenshots/explore");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots in {}", shots.display());
    let profile = tempfile::tempdir().unwrap();
    let admin = logging_browser(&driver, profile.path()).await;

    // Log in through the form: /explore asks for the password and comes back.
    admin.goto(&served.url("/explore")).await.unwrap();
    wait_for(&admin, "input[name=password]").await;
    assert_eq!(path(&admin).await, "/login");
    type_into(&admin, "input[name=password]", PASSWORD).await;
    shot(&admin, &shots, "01-login").await;
    click(&admin, "form[action='/login'] button[type=submit]").await;
    wait_for(&admin, "#explore textarea#sql").await;
    assert_eq!(path(&admin).await, "/explore");
    // The console log is read (so an empty one below means no errors).
    script(&admin, "console.error('the console is read')").await;
    let errors = console_errors(&admin).await;
    assert!(
        errors.len() == 1 && errors[0].contains("the console is read"),
        "{errors:?}"
    );

    // 1. A simple aggregate, run with Ctrl+Enter: one row, the warehouse's number.
    let status = run_in_explorer(&admin, "SELECT count(*) AS plays FROM fact_plays", "plays").await;
    assert!(status.starts_with("1 row in "), "{status}");
    let plays = served.int("SELECT count(*) FROM marts.fact_plays");
    assert_eq!(
        text(&admin, "#result table tbody td").await,
        plays.to_string()
    );
    shot(&admin, &shots, "02-explore-count").await;

    // Then the top artists: the status counts what SQL on the warehouse counts.
    let status = run_in_explorer(
        &admin,
        "SELECT a.artist_name, count(*) AS plays, round(sum(f.ms_played) / 3600000, 1) AS hours \
         FROM fact_plays f JOIN dim_artist a USING (artist_id) GROUP BY 1 ORDER BY 2 DESC, 1",
        "artist_name",
    )
    .await;
    let artists = served.int(
        "SELECT count(DISTINCT a.artist_name) FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id)",
    );
    assert!(
        status.starts_with(&format!("{artists} rows")),
        "{artists} artists, the explorer says {status}"
    );
    let shown = script(
        &admin,
        "return document.querySelectorAll('#result table tbody tr').length",
    )
    .await;
    assert_eq!(shown, artists.min(1000), "{status}");
    let (top, top_plays) = served
        .pairs(
            "SELECT a.artist_name, count(*) FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id) \
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        )
        .remove(0);
    assert_eq!(
        text(&admin, "#result table tbody tr td").await,
        top,
        "the first row is the top artist"
    );
    assert!(console_errors(&admin).await.is_empty());
    shot(&admin, &shots, "03-explore-top-artists").await;

    // 2. A bar chart of it. The axes start from this result's columns (not the last
    // query's): the first column along x, the first number after it as y.
    assert_eq!(
        script(
            &admin,
            "return [document.getElementById('chart-x').value, document.getElementById('chart-y').value]"
        )
        .await,
        serde_json::json!(["artist_name", "plays"])
    );
    // Kind, x and y chosen: the server's SVG appears.
    wait_for(&admin, "#chart-kind")
        .await
        .select_by_value("bar")
        .await
        .unwrap();
    wait_for(&admin, "#chart-x")
        .await
        .select_by_value("artist_name")
        .await
        .unwrap();
    wait_for(&admin, "#chart-y")
        .await
        .select_by_value("plays")
        .await
        .unwrap();
    let first_bar = wait_for(&admin, "#chart svg.chart.ranking g.row").await;
    let label = first_bar
        .find(Locator::Css("text.label"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        top.starts_with(label.trim_end_matches('…')),
        "the first bar is {label}, the top artist {top}"
    );
    let value = first_bar
        .find(Locator::Css("text.value"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if top_plays < 1000 {
        assert_eq!(value, top_plays.to_string(), "the first bar's value");
    }
    shot(&admin, &shots, "04-explore-bar-chart").await;

    // 3. Save it as a question: a file in DATA_DIR/questions.
    type_into(&admin, "#save-title", "Top artists by plays").await;
    click(&admin, "#save-question").await;
    let saved = wait_for(&admin, "#saved-link").await;
    assert_eq!(saved.text().await.unwrap(), "/q/top-artists-by-plays");
    let file = data.join("questions/top-artists-by-plays.sql");
    let question =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        question.starts_with("-- title: Top artists by plays")
            && question.contains("kind: bar")
            && question.contains("JOIN dim_artist a USING (artist_id)"),
        "{question}"
    );
    shot(&admin, &shots, "05-explore-saved").await;

    // 4. Add it to a new dashboard, then follow the link: the card shows its chart.
    wait_for(&admin, "#dashboard")
        .await
        .select_by_value("")
        .await
        .unwrap();
    wait_for(&admin, "#new-dashboard-label:not([hidden])").await;
    type_into(&admin, "#new-dashboard", "Explorer picks").await;
    click(&admin, "#add-card").await;
    let added = wait_for(&admin, "#added-link").await;
    assert_eq!(added.text().await.unwrap(), "/d/explorer-picks");
    assert!(data.join("dashboards/explorer-picks.yml").exists());
    shot(&admin, &shots, "06-explore-added").await;
    added.click().await.unwrap();
    wait_for(&admin, "#card-0 svg.chart.ranking g.row").await;
    assert_eq!(path(&admin).await, "/d/explorer-picks");
    assert_eq!(text(&admin, "h1").await, "Explorer picks");
    assert_eq!(text(&admin, "#card-0 h2").await, "Top artists by plays");
    shot(&admin, &shots, "07-dashboard-new").await;

    // 5. Give the dashboard a date-range filter and a number card by editing its file, then
    // change the filter on the page: the number is what SQL says for the range.
    let dashboard_file = data.join("dashboards/explorer-picks.yml");
    let yaml = std::fs::read_to_string(&dashboard_file).unwrap();
    let (head, items) = yaml
        .split_once("cards:\n")
        .unwrap_or_else(|| panic!("a list of cards: {yaml}"));
    assert!(!head.contains("filters"), "{yaml}");
    let i: String = items.chars().take_while(|c| *c == ' ').collect();
    std::fs::write(
        &dashboard_file,
        format!(
            "{head}filters:\n{i}- {{name: range, type: date_range, default: all, label: Dates}}\ncards:\n\
             {i}- title: Plays in the range\n\
             {i}  sql: |\n\
             {i}    SELECT count(*) AS plays FROM fact_plays JOIN dim_date USING (date_id)\n\
             {i}    WHERE dim_date.date_day BETWEEN {{{{range.from}}}} AND {{{{range.to}}}}\n\
             {i}  chart: {{kind: number, y: plays}}\n\
             {i}  width: 4\n\
             {items}"
        ),
    )
    .unwrap();
    let edited = magpie_questions::Library::load(&data);
    let edited = edited.dashboard("explorer-picks").unwrap();
    assert_eq!((edited.filters.len(), edited.cards.len()), (1, 2));
    admin.refresh().await.unwrap();
    assert_eq!(number_card(&admin, 0, "").await, plays, "all by default");
    wait_for(&admin, "#card-1 svg.chart.ranking g.row").await;
    shot(&admin, &shots, "08-dashboard-filter-all").await;
    apply_range(&admin, "2025-01-01..2025-01-31").await;
    let january = served.int(
        "SELECT count(*) FROM marts.fact_plays JOIN marts.dim_date USING (date_id) \
         WHERE date_day BETWEEN DATE '2025-01-01' AND DATE '2025-01-31'",
    );
    assert!(0 < january && january < plays, "{january} of {plays}");
    assert_eq!(
        number_card(&admin, 0, "range=2025-01-01..2025-01-31").await,
        january
    );
    assert_eq!(
        script(
            &admin,
            "return document.querySelector('form.vars input[name=range]').value"
        )
        .await,
        "2025-01-01..2025-01-31",
        "the filter keeps its value"
    );
    shot(&admin, &shots, "09-dashboard-filter-january").await;

    // The same on a built-in dashboard: the year 2025 on the listening overview.
    admin
        .goto(&served.url("/d/listening-overview"))
        .await
        .unwrap();
    let last_year = number_card(&admin, 0, "").await;
    apply_range(&admin, "2025").await;
    let in_2025 = served.int(
        "SELECT coalesce(sum(l.plays), 0)::BIGINT FROM marts.agg_daily_listening l \
         JOIN marts.dim_date d USING (date_id) \
         WHERE d.date_day BETWEEN DATE '2025-01-01' AND DATE '2025-12-31'",
    );
    assert_eq!(number_card(&admin, 0, "range=2025").await, in_2025);
    assert_ne!(in_2025, last_year, "the range changed the number");
    wait_for(&admin, "#card-4 svg.chart").await;
    shot(&admin, &shots, "10-builtin-overview-2025").await;
    assert!(console_errors(&admin).await.is_empty());

    // 6. A share link for the dashboard, made on /admin/shares.
    admin.goto(&served.url("/admin/shares")).await.unwrap();
    wait_for(&admin, "#share-target")
        .await
        .select_by_value("dashboard:explorer-picks")
        .await
        .unwrap();
    click(&admin, "#new-share button[type=submit]").await;
    let link = text(&admin, "#share-url").await;
    assert!(
        link.starts_with(&format!("{}/public/", served.base)),
        "{link}"
    );
    shot(&admin, &shots, "11-share-created").await;

    // 7. A fresh browser, not logged in: the link shows the dashboard's cards and nothing
    // else.
    let other_profile = tempfile::tempdir().unwrap();
    let visitor = logging_browser(&driver, other_profile.path()).await;
    visitor.goto(&served.url("/explore")).await.unwrap();
    wait_for(&visitor, "input[name=password]").await;
    assert_eq!(path(&visitor).await, "/login", "not logged in");
    visitor.goto(&link).await.unwrap();
    wait_for(&visitor, "#card-1 svg.chart.ranking g.row").await;
    assert_eq!(text(&visitor, "h1").await, "Explorer picks");
    assert_eq!(number_card(&visitor, 0, "").await, plays);
    assert_eq!(text(&visitor, "#card-1 h2").await, "Top artists by plays");
    let hrefs = script(
        &visitor,
        "return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))",
    )
    .await;
    let token_path = url::Url::parse(&link).unwrap().path().to_string();
    for href in hrefs.as_array().unwrap() {
        let href = href.as_str().unwrap_or_default();
        assert!(
            href.starts_with(&format!("{token_path}?")),
            "the public page links to {href}"
        );
    }
    assert_eq!(
        script(
            &visitor,
            "return document.querySelectorAll('header, nav, form.range').length"
        )
        .await,
        0,
        "no navigation"
    );
    // Every chart is drawn with a size, styled by the stylesheet, and the tooltips work.
    let sizes = script(
        &visitor,
        "return Array.from(document.querySelectorAll('.grid svg')).map(s => { \
           var r = s.getBoundingClientRect(); return [r.width, r.height]; })",
    )
    .await;
    let sizes = sizes.as_array().unwrap();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    for size in sizes {
        assert!(
            size[0].as_f64() > Some(50.0) && size[1].as_f64() > Some(20.0),
            "{sizes:?}"
        );
    }
    let bar_fill = script(
        &visitor,
        "return getComputedStyle(document.querySelector('#card-1 rect.bar')).fill",
    )
    .await;
    assert_ne!(bar_fill, "rgb(0, 0, 0)", "the stylesheet colours the bars");
    let row = wait_for(&visitor, "#card-1 svg.chart.ranking g.row").await;
    let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: row,
        duration: Some(Duration::from_millis(50)),
        x: 0.0,
        y: 0.0,
    });
    visitor.perform_actions(hover).await.unwrap();
    let tip = text(&visitor, "#tip:not([hidden])").await;
    assert!(tip.contains(&top), "tooltip: {tip}");
    let errors = console_errors(&visitor).await;
    assert!(errors.is_empty(), "the public page's console: {errors:#?}");
    shot(&visitor, &shots, "12-public").await;

    // 8. Revoked on /admin/shares: the visitor's reload is a 404 page.
    admin.goto(&served.url("/admin/shares")).await.unwrap();
    click(
        &admin,
        "#shares form[action$='/revoke'] button[type=submit]",
    )
    .await;
    wait_until(
        &admin,
        "the link is gone from the list",
        "return location.pathname === '/admin/shares' && \
         document.querySelector('#shares tbody').textContent.indexOf('No links.') >= 0",
    )
    .await;
    shot(&admin, &shots, "13-share-revoked").await;
    visitor.refresh().await.unwrap();
    assert_eq!(text(&visitor, "h1").await, "Not Found");
    assert_eq!(
        script(
            &visitor,
            "return performance.getEntriesByType('navigation')[0].responseStatus"
        )
        .await,
        404
    );
    assert!(
        script(&visitor, "return document.querySelectorAll('svg').length").await == 0,
        "nothing of the dashboard is left"
    );
    shot(&visitor, &shots, "14-public-revoked").await;

    visitor.close().await.unwrap();
    admin.close().await.unwrap();
    println!("the walk in the browser took {:?}", started.elapsed());
}
