//! Handler tests: every page and its JSON on a demo warehouse, with the numbers checked
//! against SQL written here over the marts (fact_plays and the dims, not the aggregates the
//! pages read), and bad requests answered with a 4xx, never a 500.

mod common;

use common::{demo, get, json};

const YEAR: &str = "date_id BETWEEN 20250101 AND 20251231";

#[tokio::test]
async fn overview_totals_match_fact_plays() {
    let d = demo();
    let page = json(&d.url("/?range=2025&format=json")).await;
    let t = &page["totals"];
    assert_eq!(
        t["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    assert_eq!(
        t["ms_played"],
        d.int(&format!(
            "SELECT sum(ms_played) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    assert_eq!(
        t["artists"],
        d.int(&format!(
            "SELECT count(DISTINCT artist_id) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    assert_eq!(
        t["tracks"],
        d.int(&format!(
            "SELECT count(DISTINCT track_id) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    assert_eq!(
        t["albums"],
        d.int(&format!(
            "SELECT count(DISTINCT album_id) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    assert_eq!(
        t["new_artists"],
        d.int(
            "SELECT count(*) FROM (SELECT artist_id, min(date_id) AS first FROM marts.fact_plays GROUP BY 1)
             WHERE first BETWEEN 20250101 AND 20251231"
        )
    );
    assert_eq!(
        t["active_days"],
        d.int(&format!(
            "SELECT count(DISTINCT date_id) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    // The previous period is 2024.
    assert_eq!(
        page["previous"]["plays"],
        d.int("SELECT count(*) FROM marts.fact_plays WHERE date_id BETWEEN 20240101 AND 20241231")
    );
    // Weekly buckets over the year add up to the total.
    let series = page["series"].as_array().unwrap();
    assert!(
        series.len() >= 52 && series.len() <= 54,
        "{} weeks",
        series.len()
    );
    let sum: i64 = series.iter().map(|b| b["plays"].as_i64().unwrap()).sum();
    assert_eq!(sum, t["plays"].as_i64().unwrap());

    let (status, html) = get(&d.url("/?range=2025")).await;
    assert_eq!(status, 200);
    let plays = t["plays"].as_i64().unwrap();
    let shown = format!("{},{:03}", plays / 1000, plays % 1000);
    assert!(html.contains(&shown), "the page shows {shown} plays");
    assert!(html.contains("<svg class=\"chart columns\""));
    assert!(html.contains("data-tip="), "charts carry tooltips");
}

#[tokio::test]
async fn top_lists_match_group_by_on_fact_plays() {
    let d = demo();
    for (kind, column) in [
        ("artists", "artist_id"),
        ("tracks", "track_id"),
        ("albums", "album_id"),
    ] {
        let page = json(&d.url(&format!("/top/{kind}?range=2025&format=json"))).await;
        let rows = page["rows"].as_array().unwrap();
        let expected = d.pairs(&format!(
            "SELECT {column}, count(*) FROM marts.fact_plays WHERE {YEAR} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        ));
        for (row, (id, plays)) in rows.iter().zip(&expected) {
            assert_eq!(row["id"], id.as_str(), "{kind}");
            assert_eq!(row["plays"], *plays, "{kind}");
            let trend: i64 = row["trend"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .sum();
            assert_eq!(trend, *plays, "{kind}: the sparkline adds up to the plays");
        }
        assert!(rows.len() <= 100 && rows.len() >= 10);
    }
    // By time ranks by ms_played.
    let page = json(&d.url("/top/artists?range=2025&by=time&format=json")).await;
    let expected = d.pairs(&format!(
        "SELECT artist_id, sum(ms_played)::BIGINT FROM marts.fact_plays WHERE {YEAR} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ));
    assert_eq!(page["rows"][0]["id"], expected[0].0.as_str());
    assert_eq!(page["rows"][0]["ms_played"], expected[0].1);
    // CSV: a header and one line per row.
    let (status, csv) = get(&d.url("/top/tracks?range=2025&format=csv")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "rank,id,name,artist,plays,ms_played");
    let first = json(&d.url("/top/tracks?range=2025&format=json")).await;
    assert!(lines[1].starts_with(&format!("1,{},", first["rows"][0]["id"].as_str().unwrap())));
    assert_eq!(lines.len() - 1, first["rows"].as_array().unwrap().len());
}

#[tokio::test]
async fn timeline_months_match_fact_plays_per_month() {
    let d = demo();
    let page = json(&d.url("/timeline?range=all&grain=month&format=json")).await;
    let expected = d.pairs(
        "SELECT strftime(date_trunc('month', dd.date_day), '%Y-%m'), count(*)
         FROM marts.fact_plays f JOIN marts.dim_date dd USING (date_id) GROUP BY 1 ORDER BY 1",
    );
    let buckets: Vec<(String, i64)> = page["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["plays"].as_i64().unwrap() > 0)
        .map(|b| {
            (
                b["label"].as_str().unwrap().to_string(),
                b["plays"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(buckets, expected);
    let (status, html) = get(&d.url("/timeline?range=90d&grain=day")).await;
    assert_eq!(status, 200);
    assert_eq!(
        html.matches("class=\"col\"").count(),
        3 * 90,
        "three charts of 90 days"
    );
}

#[tokio::test]
async fn patterns_grid_matches_hours_and_weekdays_of_plays() {
    let d = demo();
    let page = json(&d.url("/patterns?range=2025&format=json")).await;
    let grid = page["grid"].as_array().unwrap();
    for (dow, hour, plays) in d
        .pairs(&format!(
            "SELECT dd.day_of_week || '/' || t.hour, count(*) FROM marts.fact_plays f
             JOIN marts.dim_date dd USING (date_id) JOIN marts.dim_time t USING (time_id)
             WHERE f.{YEAR} GROUP BY 1"
        ))
        .into_iter()
        .map(|(k, n)| {
            let (dow, hour) = k.split_once('/').unwrap();
            (
                dow.parse::<usize>().unwrap(),
                hour.parse::<usize>().unwrap(),
                n,
            )
        })
    {
        assert_eq!(grid[dow - 1][hour], plays, "weekday {dow} hour {hour}");
    }
    let evening = d.int(&format!(
        "SELECT count(*) FROM marts.fact_plays f JOIN marts.dim_time t USING (time_id)
         WHERE f.{YEAR} AND t.part_of_day = 'evening'"
    ));
    let parts = page["parts_of_day"].as_array().unwrap();
    assert_eq!(
        parts.iter().find(|p| p["name"] == "evening").unwrap()["plays"],
        evening
    );
    let weekend = d.int(&format!(
        "SELECT count(*) FROM marts.fact_plays f JOIN marts.dim_date dd USING (date_id) WHERE f.{YEAR} AND dd.is_weekend"
    ));
    assert_eq!(page["week_split"][1]["plays"], weekend);
}

#[tokio::test]
async fn detail_pages_match_their_plays() {
    let d = demo();
    let top = json(&d.url("/top/tracks?range=2025&format=json")).await;
    let track = &top["rows"][0];
    let (track_id, artist_id) = (
        track["id"].as_str().unwrap(),
        track["artist_id"].as_str().unwrap(),
    );
    let page = json(&d.url(&format!("/artist/{artist_id}?range=2025&format=json"))).await;
    assert_eq!(
        page["all_time"]["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE artist_id = '{artist_id}'"
        ))
    );
    assert_eq!(
        page["in_range"]["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE artist_id = '{artist_id}' AND {YEAR}"
        ))
    );
    assert_eq!(page["in_range"]["skips"], d.int(&format!("SELECT count(*) FROM marts.fact_plays WHERE artist_id = '{artist_id}' AND {YEAR} AND skipped")));
    let first = d.pairs(&format!(
        "SELECT strftime(min(played_at_local), '%Y-%m-%d %H:%M'), 0 FROM marts.fact_plays WHERE artist_id = '{artist_id}'"
    ));
    assert_eq!(page["all_time"]["first_played"], first[0].0.as_str());
    assert!(
        page["top_tracks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == track_id)
    );
    assert!(page["header"]["popularity_group"].is_string());
    let history: i64 = page["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plays"].as_i64().unwrap())
        .sum();
    assert_eq!(history, page["in_range"]["plays"].as_i64().unwrap());

    let page = json(&d.url(&format!("/track/{track_id}?range=2025&format=json"))).await;
    assert_eq!(page["in_range"]["plays"], track["plays"]);
    assert_eq!(page["header"]["artist_id"], artist_id);
    let album_id = page["header"]["album_id"].as_str().unwrap().to_string();
    let page = json(&d.url(&format!("/album/{album_id}?range=all&format=json"))).await;
    assert_eq!(
        page["all_time"]["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE album_id = '{album_id}'"
        ))
    );
    for path in [
        format!("/artist/{artist_id}"),
        format!("/track/{track_id}"),
        format!("/album/{album_id}"),
    ] {
        let (status, html) = get(&d.url(&path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains("<svg class=\"chart columns\""), "{path}");
    }
}

#[tokio::test]
async fn discoveries_streaks_and_year_in_review() {
    let d = demo();
    let page = json(&d.url("/discoveries?range=2025&format=json")).await;
    assert_eq!(
        page["new_tracks"],
        d.int("SELECT count(*) FROM (SELECT track_id, min(date_id) AS first FROM marts.fact_plays GROUP BY 1)
               WHERE first BETWEEN 20250101 AND 20251231")
    );
    let best = &page["artists"][0];
    assert_eq!(
        best["plays_since"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE artist_id = '{}'",
            best["id"].as_str().unwrap()
        ))
    );

    // Longest run of consecutive days, computed here with a self-join free of window tricks:
    // a day starts a streak when the day before has no plays.
    let page = json(&d.url("/streaks?range=all&format=json")).await;
    let longest = d.int(
        "WITH days AS (SELECT DISTINCT dd.date_day FROM marts.fact_plays f JOIN marts.dim_date dd USING (date_id)),
              starts AS (SELECT date_day FROM days WHERE date_day - 1 NOT IN (SELECT date_day FROM days)),
              ends AS (SELECT date_day FROM days WHERE date_day + 1 NOT IN (SELECT date_day FROM days))
         SELECT max((SELECT min(e.date_day) FROM ends e WHERE e.date_day >= s.date_day) - s.date_day + 1) FROM starts s",
    );
    assert_eq!(page["longest"][0]["days"], longest);
    assert!(page["current"]["end"] == common::LAST_DAY || page["current"].is_null());

    let page = json(&d.url("/year/2025?format=json")).await;
    assert_eq!(
        page["totals"]["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE {YEAR}"
        ))
    );
    let top = d.pairs(&format!(
        "SELECT artist_id, count(*) FROM marts.fact_plays WHERE {YEAR} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ));
    assert_eq!(page["top_artists"][0]["id"], top[0].0.as_str());
    let months: i64 = page["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["plays"].as_i64().unwrap())
        .sum();
    assert_eq!(months, page["totals"]["plays"].as_i64().unwrap());
    let busiest = d.int(&format!("SELECT max(n) FROM (SELECT count(*) AS n FROM marts.fact_plays WHERE {YEAR} GROUP BY date_id)"));
    assert_eq!(page["highlights"]["busiest_day_plays"], busiest);
    let (status, _) = get(&d.url("/year")).await;
    assert_eq!(status, 200, "/year redirects to the latest year");
}

#[tokio::test]
async fn genres_and_map_say_enrichment_is_pending() {
    let d = demo();
    let (status, html) = get(&d.url("/genres")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"enrichment-pending\""));
    let (status, html) = get(&d.url("/map")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"enrichment-pending\""));
    assert!(
        html.matches("<path class=\"country\"").count() > 150,
        "the map draws the countries"
    );
}

#[tokio::test]
async fn every_page_renders_with_its_range_control() {
    let d = demo();
    for path in [
        "/",
        "/top/artists",
        "/top/tracks",
        "/top/albums",
        "/timeline",
        "/patterns",
        "/genres",
        "/map",
        "/discoveries",
        "/streaks",
        "/year/2025",
        "/?range=7d",
        "/?range=30d",
        "/?range=90d",
        "/?range=year",
        "/?range=all",
        "/?range=custom&from=2025-02-01&to=2025-03-15",
    ] {
        let (status, html) = get(&d.url(path)).await;
        assert_eq!(status, 200, "{path}");
        if path != "/genres" {
            assert!(html.contains("<svg"), "{path} has a chart");
        }
        assert!(html.contains("</html>"), "{path} is complete");
        if !path.starts_with("/year") {
            assert!(
                html.contains("id=\"range-preset\""),
                "{path} has the range control"
            );
        }
    }
    let (status, css) = get(&d.url("/assets/app.css")).await;
    assert_eq!(status, 200);
    assert!(css.contains("prefers-color-scheme: dark"));
    let (status, _) = get(&d.url("/assets/app.js")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_requests_get_a_4xx_and_a_reason() {
    let d = demo();
    let missing = "0123456789abcdef0123456789abcdef";
    for (path, status, needle) in [
        ("/?range=fortnight", 400, "not one of"),
        (
            "/?range=custom&from=2025-05-01&to=2025-04-01",
            400,
            "before it starts",
        ),
        (
            "/?range=custom&from=0001-01-01&to=9999-12-31",
            400,
            "dates must lie between",
        ),
        (
            "/?range=custom&from=yesterday&to=2025-01-01",
            400,
            "not a date",
        ),
        (
            "/timeline?range=custom&from=1950-01-01&to=2026-01-01&grain=day",
            400,
            "too many columns",
        ),
        ("/timeline?grain=hour", 400, "not one of day, week, month"),
        ("/top/artists?by=mood", 400, "plays or time"),
        ("/?format=xml", 400, "not one of html, json, csv"),
        ("/map?country=FRA", 400, "two-letter"),
        (&format!("/artist/{missing}"), 404, "no artist"),
        ("/track/not-an-id", 404, "no track"),
        ("/album/%27%3B%20DROP%20TABLE", 404, "no album"),
        ("/top/genres", 404, "no top list"),
        ("/year/1950", 404, "no plays in 1950"),
        ("/year/abcd", 404, "not a year"),
        ("/no/such/page", 404, "no page"),
    ] {
        let (got, body) = get(&d.url(path)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
        assert!(body.contains("<html"), "{path}: a friendly page");
        let sep = if path.contains('?') { '&' } else { '?' };
        if !path.contains("format=") {
            let (got, body) = get(&d.url(&format!("{path}{sep}format=json"))).await;
            assert_eq!(got, status, "{path} as JSON");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["status"], status);
            assert!(body["error"].as_str().unwrap().contains(needle));
        }
    }
}

#[tokio::test]
async fn health_and_cache() {
    let d = demo();
    let live = json(&d.url("/health")).await;
    assert_eq!(live["status"], "ok");
    let ready = json(&d.url("/health/ready")).await;
    assert_eq!(ready["status"], "ready");
    json(&d.url("/?range=2024&format=json")).await;
    assert!(!d.app.cache().is_empty());
    d.app.cache().clear();
    assert!(d.app.cache().is_empty());
}

#[tokio::test]
async fn enrichment_fills_the_map_and_genres() {
    // A warehouse of its own, with the demo's MusicBrainz-shaped enrichment built into the
    // marts by the shipped models.
    let dir = tempfile::tempdir().unwrap();
    let options = common::demo_options(dir.path(), 3_000);
    let wh = common::demo_warehouse_with(dir.path(), 3_000, |wh| {
        magpie_music::demo::enrichment::write(wh.conn(), &options).unwrap();
    });
    let d = common::serve(wh, dir);
    let country = d.text(
        "SELECT a.country_code FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id)
         GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    );
    let page = json(&d.url(&format!("/map?range=all&country={country}&format=json"))).await;
    let top = page["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == country.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        top["plays"],
        d.int(&format!("SELECT count(*) FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id) WHERE a.country_code = '{country}'"))
    );
    assert_eq!(
        top["name"],
        d.text(&format!(
            "SELECT country_name FROM marts.dim_location WHERE country_code = '{country}'"
        ))
    );
    assert_eq!(page["unknown_plays"], 0, "every demo artist has a country");
    assert!(!page["artists"].as_array().unwrap().is_empty());
    let (_, html) = get(&d.url("/map?range=all")).await;
    assert!(!html.contains("enrichment-pending"));
    assert_eq!(
        html.matches("country has").count() as i64,
        d.int("SELECT count(DISTINCT a.country_code) FROM marts.fact_plays f JOIN marts.dim_artist a USING (artist_id)"),
        "every country with plays is shaded"
    );

    let page = json(&d.url("/genres?range=all&format=json")).await;
    assert_eq!(page["enriched"], true);
    let genres = page["genres"].as_array().unwrap();
    let top = &genres[0];
    assert_eq!(
        top["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays f JOIN marts.bridge_artist_genre b USING (artist_id)
             JOIN marts.dim_genre g USING (genre_id) WHERE g.genre_name = '{}'",
            top["genre"].as_str().unwrap()
        ))
    );
    // Families split each play across its artist's genres: they add up to the plays.
    let families: f64 = page["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["plays"].as_f64().unwrap())
        .sum();
    let plays = d.int("SELECT count(*) FROM marts.fact_plays");
    assert!(
        (families - plays as f64).abs() < 0.01,
        "{families} vs {plays}"
    );
    let (_, html) = get(&d.url("/genres?range=all")).await;
    assert!(html.contains("class=\"chart share\""));
    assert!(html.contains("Genre families"));

    // The enrichment page reads the queue live.
    let page = json(&d.url("/enrichment?format=json")).await;
    let source = |name: &str| {
        page["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        source("musicbrainz")["done"],
        d.int("SELECT count(*) FROM raw.enrichment_queue WHERE source = 'musicbrainz' AND state = 'done'")
    );
    assert_eq!(source("geo")["percent"], 100.0);
    assert_eq!(
        page["spotify_ready"], false,
        "no Spotify credentials in the tests"
    );
    d.execute(
        "INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, state, attempts, last_error, queued_at, finished_at)
         VALUES ('musicbrainz', 'artist', 'zzz', 'Zed', 'not_found', 1, 'ambiguous: 2 MusicBrainz artists named `zzz`', now()::TIMESTAMP, now()::TIMESTAMP)",
    );
    let (status, html) = get(&d.url("/enrichment")).await;
    assert_eq!(status, 200);
    assert!(html.contains("ambiguous: 2 MusicBrainz artists named `zzz`"));
}

#[tokio::test]
async fn a_warehouse_without_marts_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let wh =
        magpie_core::Warehouse::open(dir.path().join("empty.duckdb"), &Default::default()).unwrap();
    let d = common::serve(wh, dir);
    let (status, body) = get(&d.url("/health/ready")).await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = get(&d.url("/health")).await;
    assert_eq!(status, 200);
    let (status, body) = get(&d.url("/top/artists")).await;
    assert_eq!(status, 503);
    assert!(body.contains("magpie build"), "{body}");
}

#[tokio::test]
async fn completeness_lists_polling_gaps_and_whether_an_export_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse_with(dir.path(), 3_000, |wh| {
        wh.conn()
            .execute_batch(
                "INSERT INTO raw.spotify_gaps
                 SELECT listener_id, min(ended_at), min(ended_at) + INTERVAL 30 DAY, now()::TIMESTAMP, 'full_page'
                 FROM raw.listen_events GROUP BY listener_id;
                 INSERT INTO raw.spotify_gaps
                 SELECT listener_id, TIMESTAMP '2001-02-03 10:00', TIMESTAMP '2001-02-03 12:30', now()::TIMESTAMP, 'full_page'
                 FROM listeners;",
            )
            .unwrap();
    });
    let d = common::serve(wh, dir);
    let page = json(&d.url("/completeness?format=json")).await;
    assert_eq!(page["covered"], 1, "{page}");
    assert_eq!(page["open"], 1);
    let gaps = page["gaps"].as_array().unwrap();
    let open = gaps.iter().find(|g| g["covered"] == false).unwrap();
    assert_eq!(
        (open["from"].as_str(), open["minutes"].as_i64()),
        (Some("2001-02-03 10:00"), Some(150))
    );
    let covered = gaps.iter().find(|g| g["covered"] == true).unwrap();
    assert_eq!(
        covered["export_events"],
        d.int("SELECT count(*) FROM raw.listen_events e, (SELECT min(ended_at) AS t FROM raw.listen_events) m
               WHERE e.ended_at > m.t AND e.ended_at < m.t + INTERVAL 30 DAY")
    );
    let (status, html) = get(&d.url("/completeness")).await;
    assert_eq!(status, 200);
    assert!(html.contains("open: import an export covering it"));
    assert!(
        !html.contains("class=\"alert\""),
        "no alerts unless the runner gives some"
    );
}

#[tokio::test]
async fn alerts_from_the_runner_show_on_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 2_000);
    let config = common::config(dir.path());
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&asked);
    let app = magpie_web::App::new(&config, &wh)
        .unwrap()
        .with_alerts(std::sync::Arc::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vec!["Spotify ends ana's authorisation on 2026-12-01 <soon>".to_string()]
        }));
    let d = common::serve_app(app, wh, dir);
    for path in ["/", "/top/artists", "/completeness"] {
        let (status, html) = get(&d.url(path)).await;
        assert_eq!(status, 200);
        assert!(html.contains("<p class=\"alert\" role=\"alert\">Spotify ends ana&#x27;s authorisation on 2026-12-01 &lt;soon&gt;</p>"), "{path}: escaped alert");
    }
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "asked once per 30 s"
    );
}

#[tokio::test]
async fn status_and_metrics_describe_the_process_and_the_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 3_000);
    let config = magpie_core::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    // The one recorder of this test binary.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.01, 0.1, 1.0])
        .unwrap()
        .install_recorder()
        .unwrap();
    let app = magpie_web::App::new(&config, &wh)
        .unwrap()
        .with_metrics(std::sync::Arc::new(move || recorder.render()));
    let d = common::serve_app(app, wh, tempfile::tempdir().unwrap());

    let status = json(&d.url("/status?format=json")).await;
    assert!(status["process_rss_bytes"].as_u64().unwrap() > 5_000_000);
    assert_eq!(status["memory_budget_bytes"], 160_000_000);
    assert!(status["warehouse_bytes"].as_i64().unwrap() > 100_000);
    assert!(
        status["data_dir_bytes"].as_u64().unwrap() >= status["warehouse_bytes"].as_u64().unwrap()
    );
    let (code, html) = get(&d.url("/status")).await;
    assert_eq!(code, 200);
    assert!(html.contains("of its budget"));

    assert_eq!(get(&d.url("/?range=all")).await.0, 200);
    assert_eq!(get(&d.url("/no/such/page")).await.0, 404);
    let text = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "magpie_http_requests_total{route=\"/\",status=\"200\"} 1",
        "magpie_http_request_duration_seconds_bucket{route=\"/\",le=\"0.1\"}",
        "magpie_process_resident_memory_bytes ",
        "magpie_warehouse_size_bytes ",
        "magpie_duckdb_memory_bytes ",
        "magpie_memory_budget_bytes 160000000",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(!text.contains("unmatched"), "only routes are counted");
    let samples = parse_prometheus(&text);
    assert!(samples.len() > 20, "{} samples", samples.len());
    // Histogram buckets are cumulative: each bucket counts at least as many as the one before.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(name, labels, _)| {
            name == "magpie_http_request_duration_seconds_bucket" && labels.contains("route=\"/\"")
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 4, "three bounds and +Inf");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

/// Parse Prometheus' text exposition format (version 0.0.4) strictly enough to catch a
/// malformed page: `# HELP` / `# TYPE` lines with a known type, and samples
/// `name{label="value",...} value` with a valid metric name, quoted label values and a float.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            assert!(valid_name(parts.next().unwrap()), "{line}");
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("label: {line}"));
                    assert!(valid_name(key), "{line}");
                    assert!(quoted.starts_with('"'), "{line}");
                }
                (name, labels.to_string())
            }
            None => (series, String::new()),
        };
        assert!(valid_name(name), "{line}");
        samples.push((name.to_string(), labels, value));
    }
    samples
}

/// Last.fm scrobbles (the real export's columns and, for Rihanna and Stevie Wonder, its wrong
/// MBIDs) beside the demo, and what MusicBrainz enrichment would have said of them: a supplied
/// MBID distrusted and resolved, one distrusted and not resolved, and two artists whose area
/// is no single country (XW "[Worldwide]", XE Europe).
fn lastfm_beside_the_demo(wh: &magpie_core::Warehouse, dir: &std::path::Path) {
    const RHIANNA: &str = "db36a76f-4cdf-43ac-8cd0-5e48092d2bae";
    const RIHANNA: &str = "73e5e69d-3554-40d8-8516-00cb38737a1c";
    const SUPREMES: &str = "c1aa2ec9-53e7-4d90-8d36-bac75832e986";
    // Last.fm's columns, without the optional date text.
    let mut csv = String::from("artist,artist_mbid,album,album_mbid,track,track_mbid,timestamp\n");
    let mut uts = 1_735_000_000i64;
    for (artist, mbid, track, n) in [
        ("Rihanna", RHIANNA, "Same Ol’ Mistakes", 2),
        ("Stevie Wonder", SUPREMES, "Superstition", 2),
        // Two spellings of one artist key: the more played one's MBID is the larger.
        ("Beyoncé", "859d0860-d480-4efd-970c-c05d5f1776b8", "Halo", 3),
        ("Beyonce", "11111111-0000-4000-8000-000000000001", "Halo", 1),
        (
            "The Wandering Choir",
            "22222222-0000-4000-8000-000000000002",
            "Hymn",
            2,
        ),
        (
            "Euro Collective",
            "33333333-0000-4000-8000-000000000003",
            "Anthem",
            1,
        ),
    ] {
        for _ in 0..n {
            uts += 600;
            csv += &format!("{artist},{mbid},Album,,{track},,{uts}\n");
        }
    }
    let file = dir.join("lastfm_scrobbles.csv");
    std::fs::write(&file, csv).unwrap();
    let summary = magpie_music::import::Importer::new(wh, Default::default())
        .unwrap()
        .import_paths(&[file], &mut |_| {});
    assert!(summary.all_ok());
    let area = |code: &str, name: &str| {
        format!(
            r#"{{"country": "{code}", "area": {{"name": "{name}", "iso-3166-1-codes": ["{code}"]}}}}"#
        )
    };
    wh.conn()
        .execute_batch(&format!(
            "INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, state, attempts, last_error, queued_at, finished_at) VALUES
               ('musicbrainz', 'artist', 'rihanna', 'Rihanna', 2, 'done', 1, NULL, now()::TIMESTAMP, now()::TIMESTAMP),
               ('musicbrainz', 'artist', 'stevie wonder', 'Stevie Wonder', 2, 'not_found', 1,
                'the supplied MBID {SUPREMES} is MusicBrainz''s `The Supremes`, not `Stevie Wonder`; no MusicBrainz artist named `stevie wonder` scores 90 or more',
                now()::TIMESTAMP, now()::TIMESTAMP);
             INSERT INTO raw.enrichment_responses VALUES
               ('musicbrainz', 'mbid_check', 'rihanna', 'derived', 0, now()::TIMESTAMP,
                '{{\"claimed_mbid\": \"{RHIANNA}\", \"played_name\": \"Rihanna\", \"musicbrainz_name\": \"Rhianna\", \"trusted\": false}}'),
               ('musicbrainz', 'artist', 'rihanna', '/ws/2/artist/{RIHANNA}', 200, now()::TIMESTAMP,
                '{{\"id\": \"{RIHANNA}\", \"name\": \"Rihanna\", \"country\": \"BB\"}}'),
               ('geo', 'artist', 'rihanna', 'derived', 0, now()::TIMESTAMP, '{{\"country_code\": \"BB\"}}'),
               ('musicbrainz', 'mbid_check', 'stevie wonder', 'derived', 0, now()::TIMESTAMP,
                '{{\"claimed_mbid\": \"{SUPREMES}\", \"played_name\": \"Stevie Wonder\", \"musicbrainz_name\": \"The Supremes\", \"trusted\": false}}'),
               ('musicbrainz', 'artist', 'the wandering choir', '', 200, now()::TIMESTAMP,
                '{{\"id\": \"22222222-0000-4000-8000-000000000002\", \"name\": \"The Wandering Choir\", {}'),
               ('geo', 'artist', 'the wandering choir', 'derived', 0, now()::TIMESTAMP, '{{\"country_code\": \"XW\"}}'),
               ('musicbrainz', 'artist', 'euro collective', '', 200, now()::TIMESTAMP,
                '{{\"id\": \"33333333-0000-4000-8000-000000000003\", \"name\": \"Euro Collective\", {}'),
               ('geo', 'artist', 'euro collective', 'derived', 0, now()::TIMESTAMP, '{{\"country_code\": \"XE\"}}');",
            &area("XW", "[Worldwide]")[1..],
            &area("XE", "Europe")[1..],
        ))
        .unwrap();
}

#[tokio::test]
async fn supplied_mbids_and_areas_without_a_country_reach_the_marts_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let options = common::demo_options(dir.path(), 3_000);
    let path = dir.path().to_path_buf();
    let wh = common::demo_warehouse_with(dir.path(), 3_000, |wh| {
        magpie_music::demo::enrichment::write(wh.conn(), &options).unwrap();
        lastfm_beside_the_demo(wh, &path);
    });
    let d = common::serve(wh, dir);
    let artist = |key: &str, column: &str| {
        d.text(&format!(
            "SELECT coalesce(CAST({column} AS VARCHAR), 'NULL') FROM marts.dim_artist WHERE artist_key = '{key}'"
        ))
    };
    // Of two spellings, the more played one's MBID (not the smaller).
    assert_eq!(
        artist("beyonce", "musicbrainz_id"),
        "859d0860-d480-4efd-970c-c05d5f1776b8"
    );
    // A distrusted MBID gives way to the artist enrichment resolved, or to none.
    assert_eq!(
        artist("rihanna", "musicbrainz_id"),
        "73e5e69d-3554-40d8-8516-00cb38737a1c"
    );
    assert_eq!(artist("rihanna", "country_code"), "BB");
    assert_eq!(artist("stevie wonder", "musicbrainz_id"), "NULL");
    // XW and XE are kept, labelled, and not on the map (no location).
    assert_eq!(artist("the wandering choir", "country_code"), "XW");
    assert_eq!(artist("the wandering choir", "country_name"), "Worldwide");
    assert_eq!(artist("the wandering choir", "location_id"), "NULL");
    assert_eq!(artist("euro collective", "country_name"), "Europe");
    assert_eq!(
        artist("rihanna", "country_name"),
        d.text("SELECT country_name FROM marts.dim_location WHERE country_code = 'BB'")
    );

    let page = json(&d.url("/map?range=all&format=json")).await;
    let elsewhere = d.int(
        "SELECT count(*) FROM marts.dim_artist WHERE country_code IS NOT NULL AND location_id IS NULL",
    );
    assert_eq!(elsewhere, 2);
    assert_eq!(page["elsewhere_artists"], elsewhere);
    assert_eq!(
        page["elsewhere"],
        serde_json::json!([
            {"code": "XE", "name": "Europe", "artists": 1},
            {"code": "XW", "name": "Worldwide", "artists": 1}
        ])
    );
    assert_eq!(page["elsewhere_plays"], 3);
    assert!(
        page["countries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["code"] != "XW" && c["code"] != "XE"),
        "not placed on the map"
    );
    let (_, html) = get(&d.url("/map?range=all")).await;
    assert!(html.contains("2 artists have no single country:"), "{html}");
    assert!(html.contains("country=XW\">Worldwide</a> 1"));
    assert_eq!(
        page["countries"].as_array().unwrap().len() as i64,
        d.int(
            "SELECT count(DISTINCT a.country_code) FROM marts.fact_plays f
             JOIN marts.dim_artist a USING (artist_id) WHERE a.location_id IS NOT NULL"
        ),
        "every placed country is listed, and only those"
    );
    let page = json(&d.url("/map?range=all&country=XW&format=json")).await;
    assert_eq!(page["selected_name"], "Worldwide");
    assert_eq!(page["artists"][0]["name"], "The Wandering Choir");

    // The enrichment page lists the distrusted MBIDs with what they resolved to.
    let page = json(&d.url("/enrichment?format=json")).await;
    assert_eq!(page["distrusted_total"], 2);
    let (status, html) = get(&d.url("/enrichment")).await;
    assert_eq!(status, 200);
    let table = &html[html.find("id=\"distrusted\"").unwrap()..];
    for text in [
        "Rihanna",
        "db36a76f-4cdf-43ac-8cd0-5e48092d2bae",
        "Rhianna",
        "73e5e69d-3554-40d8-8516-00cb38737a1c",
        "The Supremes",
        "nothing: the supplied MBID",
    ] {
        assert!(table.contains(text), "{text} in {table}");
    }
}

/// After a new snapshot, the main pages' default views are computed before anyone asks: the
/// cache fills without a request, and a visitor then adds nothing to it (every result was there).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_snapshot_warms_the_main_pages() {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 3_000);
    let served = common::serve(wh, dir);
    // A build publishing its snapshot, as the scheduler's does.
    let s = &served;
    tokio::task::block_in_place(|| s.execute("SELECT 1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut warmed = 0;
    while std::time::Instant::now() < deadline {
        let before = served.app.cache().len();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        warmed = served.app.cache().len();
        if warmed > 0 && warmed == before {
            break;
        }
    }
    assert!(warmed >= common::PAGES.len(), "{warmed} results cached");
    let client = reqwest::Client::new();
    for page in common::PAGES {
        let response = client.get(served.url(page)).send().await.unwrap();
        assert!(response.status().is_success(), "{page}");
        assert_eq!(
            served.app.cache().len(),
            warmed,
            "{page} computed a result the warm-up had not"
        );
    }
}
