//! Browser tests in real headless Chromium (Debian's chromium + chromium-driver, installed by
//! `.ci/run`): every page of the demo renders its charts, a hover shows a tooltip, a click on a
//! chart lands on the detail page, the range control changes the range, tables sort, the theme
//! switches and the overview fits a phone. A screenshot of every page is saved in the folder
//! the test prints.
//!
//! Without chromedriver the test prints a notice and passes, unless REQUIRE_BROWSER_TESTS is
//! set (CI sets it), which makes a missing browser a failure.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::{browser, chromedriver, click, path, script, shot, wait_for};
use fantoccini::Locator;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_in_headless_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let d = common::demo();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("magpie-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots in {}", shots.display());
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;

    // Every page renders its charts.
    for (name, path, ready) in [
        ("overview", "/?range=365d", "svg.chart.columns g.col"),
        (
            "top-artists",
            "/top/artists",
            "table.sortable tbody tr svg.spark",
        ),
        ("top-tracks", "/top/tracks", "table.sortable tbody tr"),
        ("top-albums", "/top/albums", "table.sortable tbody tr"),
        ("timeline", "/timeline?range=all", "svg.chart.columns g.col"),
        ("patterns", "/patterns", "svg.chart.heatmap rect.cell"),
        ("genres", "/genres", "#enrichment-pending"),
        ("map", "/map", "svg.worldmap path.country"),
        (
            "discoveries",
            "/discoveries?range=all",
            "svg.chart.columns g.col",
        ),
        ("streaks", "/streaks?range=all", "svg.chart.ranking g.row"),
        ("year", "/year/2025", "svg.chart.ranking g.row"),
        ("enrichment", "/enrichment", "#sources table tbody tr"),
        ("status", "/status", "section.kpis .kpi"),
        ("flows", "/flows", "#runs table"),
        ("market", "/market", "#events table"),
    ] {
        client.goto(&d.url(path)).await.unwrap();
        wait_for(&client, ready).await;
        let title = client
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!title.is_empty(), "{name} has a title");
        shot(&client, &shots, name).await;
    }

    // Hover a column of the overview chart: the tooltip shows its values.
    client.goto(&d.url("/?range=365d")).await.unwrap();
    let column = wait_for(&client, "svg.chart.columns a:nth-of-type(10) g.col").await;
    let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: column,
        duration: Some(Duration::from_millis(50)),
        x: 0.0,
        y: 0.0,
    });
    client.perform_actions(hover).await.unwrap();
    let tip = wait_for(&client, "#tip:not([hidden])").await;
    let text = tip.text().await.unwrap();
    assert!(text.contains("plays"), "tooltip: {text}");
    shot(&client, &shots, "overview-hover").await;

    // Click the top artist in the ranking chart: its detail page opens.
    let bar = wait_for(&client, "svg.chart.ranking a").await;
    let expected = bar
        .find(Locator::Css("text.label"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    bar.click().await.unwrap();
    let detail_chart = wait_for(&client, "#history svg.chart.columns").await;
    assert!(detail_chart.is_displayed().await.unwrap());
    let url = client.current_url().await.unwrap();
    assert!(url.path().starts_with("/artist/"), "{url}");
    let h1 = client
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, expected.trim_end_matches('…'));
    shot(&client, &shots, "artist").await;

    // Click through from the artist to a track, then to its album.
    let track = wait_for(&client, "#top-tracks svg.chart.ranking a").await;
    track.click().await.unwrap();
    wait_for(&client, "#history svg.chart.columns").await;
    assert!(path(&client).await.starts_with("/track/"));
    shot(&client, &shots, "track").await;
    click(&client, ".subtitle a[href^='/album/']").await;
    wait_for(&client, "#history svg.chart.columns").await;
    assert!(path(&client).await.starts_with("/album/"));
    shot(&client, &shots, "album").await;

    // Change the range with the control: a preset applies at once.
    client.goto(&d.url("/")).await.unwrap();
    let select = wait_for(&client, "#range-preset").await;
    select.select_by_value("30d").await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&d.url("/?range=30d")).unwrap())
        .await
        .unwrap();
    let label = wait_for(&client, ".range-label")
        .await
        .text()
        .await
        .unwrap();
    assert!(label.starts_with("Last 30 days"), "{label}");
    // A custom range: the date fields appear, and Apply submits them.
    let select = wait_for(&client, "#range-preset").await;
    select.select_by_value("custom").await.unwrap();
    wait_for(&client, ".custom:not([hidden]) input[name=from]").await;
    script(&client, "document.querySelector('input[name=from]').value='2025-03-01';document.querySelector('input[name=to]').value='2025-03-31';").await;
    click(&client, "form.range button[type=submit]").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//span[contains(@class,'range-label') and contains(., '2025-03-01 to 2025-03-31')]",
        ))
        .await
        .unwrap_or_else(|_| panic!("custom range applied"));
    shot(&client, &shots, "overview-custom-range").await;

    // Sort a table by a column.
    client.goto(&d.url("/top/artists?range=all")).await.unwrap();
    wait_for(&client, "table.sortable tbody tr").await;
    let first_rank =
        "return document.querySelector('table.sortable tbody tr td').textContent.trim()";
    assert_eq!(script(&client, first_rank).await, "1");
    click(&client, "table.sortable th:nth-child(4)").await;
    let ascending = script(&client, first_rank).await;
    assert_ne!(
        ascending, "1",
        "sorted by plays ascending, the most played is last"
    );

    // Dark theme.
    client.goto(&d.url("/")).await.unwrap();
    wait_for(&client, "#theme").await.click().await.unwrap();
    let theme = script(&client, "return document.documentElement.dataset.theme").await;
    assert!(theme == "dark" || theme == "light", "{theme}");
    if theme == "light" {
        wait_for(&client, "#theme").await.click().await.unwrap();
    }
    let background = script(
        &client,
        "return getComputedStyle(document.body).backgroundColor",
    )
    .await;
    assert_eq!(background, "rgb(18, 20, 23)", "dark background");
    shot(&client, &shots, "overview-dark").await;
    script(&client, "localStorage.removeItem('magpie-theme')").await;

    // A phone: nothing wider than the screen.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&d.url("/")).await.unwrap();
    wait_for(&client, "svg.chart.columns").await;
    let overflow = script(
        &client,
        "return document.documentElement.scrollWidth - window.innerWidth",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap() <= 1,
        "the overview is {overflow} px too wide for a phone"
    );
    shot(&client, &shots, "overview-phone").await;

    client.close().await.unwrap();
}
