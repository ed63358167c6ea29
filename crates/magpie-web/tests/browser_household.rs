//! The household in real headless Chromium: the listener switcher moves every page to another
//! listener and to the everyone view, and the comparison page compares two listeners chosen by
//! their checkboxes. Screenshots are saved in the folder the test prints.
//!
//! Without chromedriver the test prints a notice and passes, unless REQUIRE_BROWSER_TESTS is
//! set (CI sets it), which makes a missing browser a failure.

mod common;

use std::path::PathBuf;

use common::browser::{browser, chromedriver, click, script, shot, wait_for};
use fantoccini::Locator;

/// Choose `value` in the listener switcher (the page reloads on change).
async fn switch_to(client: &fantoccini::Client, value: &str) {
    let before = client.current_url().await.unwrap();
    script(
        client,
        &format!(
            "var s = document.getElementById('listener-switch'); s.value = '{value}';
             s.dispatchEvent(new Event('change'));"
        ),
    )
    .await;
    for _ in 0..100 {
        let now = client.current_url().await.unwrap();
        if now != before
            && now
                .query()
                .is_some_and(|q| q.contains(&format!("listener={value}")))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the switcher did not move to {value}");
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switcher_and_the_comparison_in_headless_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = common::household_warehouse(dir.path());
    let d = common::serve(wh, dir);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("magpie-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots in {}", shots.display());
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;

    client.goto(&d.url("/top/artists?range=all")).await.unwrap();
    wait_for(&client, "#listener-switch").await;
    let default_first = text_of(&client, "table.sortable tbody tr td:nth-child(2)").await;
    switch_to(&client, "bob").await;
    wait_for(&client, "table.sortable tbody tr svg.spark").await;
    assert!(text_of(&client, "footer").await.contains("bob"));
    let bob_first = text_of(&client, "table.sortable tbody tr td:nth-child(2)").await;
    assert_ne!(default_first, bob_first, "bob's top artist list is his own");
    let url = client.current_url().await.unwrap();
    assert!(
        url.query().unwrap().contains("range=all"),
        "the range is kept: {url}"
    );
    shot(&client, &shots, "household-switcher-bob").await;
    // The nav keeps bob.
    click(&client, "header nav a[href*='timeline']").await;
    wait_for(&client, "svg.chart.columns g.col").await;
    let url = client.current_url().await.unwrap();
    assert!(url.query().unwrap().contains("listener=bob"), "{url}");

    switch_to(&client, "everyone").await;
    wait_for(&client, "svg.chart.columns g.col").await;
    assert!(text_of(&client, "footer").await.contains("everyone"));
    shot(&client, &shots, "household-everyone").await;

    client.goto(&d.url("/compare?range=all")).await.unwrap();
    wait_for(&client, "#compare-hint").await;
    for name in ["default", "bob"] {
        click(&client, &format!("#compare-pick input[value='{name}']")).await;
    }
    click(&client, "#compare-pick button[type='submit']").await;
    wait_for(&client, "#blend table tbody tr td").await;
    let url = client.current_url().await.unwrap();
    let query = url.query().unwrap();
    assert!(
        query.contains("with=default") && query.contains("with=bob"),
        "{url}"
    );
    let affinity = text_of(&client, "section.kpis").await;
    assert!(
        affinity.contains("Affinity") && affinity.contains('%'),
        "{affinity}"
    );
    wait_for(&client, "#time svg.chart.ranking g.row").await;
    shot(&client, &shots, "household-compare").await;
    client.close().await.unwrap();
}
