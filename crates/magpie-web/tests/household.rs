//! A household on one box: two listeners with different histories, every listening page for
//! each (numbers checked against SQL per listener), the everyone view, and the privacy rules
//! for each viewer and setting — a private listener's numbers never appear in another's pages,
//! JSON, CSV, the everyone view or the pages over every listener's data.

mod common;

use std::sync::OnceLock;

use common::{Served, client, csrf_of, household_warehouse, serve};
use magpie_core::household::{self, Visibility};

/// Every page about a listener, with the everyone view's where it has one.
const PAGES: [(&str, bool); 13] = [
    ("/", true),
    ("/top/artists", true),
    ("/top/tracks", true),
    ("/top/albums", true),
    ("/timeline", true),
    ("/map", true),
    ("/genres", true),
    ("/patterns", false),
    ("/discoveries", false),
    ("/streaks", false),
    ("/year", false),
    ("/completeness", false),
    ("/artist/x", false),
];

fn shared() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = household_warehouse(dir.path());
        serve(wh, dir)
    })
}

fn id_of(d: &Served, name: &str) -> i64 {
    d.int(&format!(
        "SELECT listener_id FROM listeners WHERE name = '{name}'"
    ))
}

async fn get_as(d: &Served, cookie: Option<&str>, path: &str) -> (u16, String) {
    let mut request = client().get(d.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn json_as(d: &Served, cookie: Option<&str>, path: &str) -> serde_json::Value {
    let (status, body) = get_as(d, cookie, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn every_page_shows_the_listener_asked_for() {
    let d = shared();
    let (default, bob) = (id_of(d, "default"), id_of(d, "bob"));
    for (name, id) in [("default", default), ("bob", bob)] {
        let page = json_as(d, None, &format!("/?listener={name}&range=all&format=json")).await;
        let plays = d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {id}"
        ));
        assert!(plays > 1_000, "{name} has plays");
        assert_eq!(page["totals"]["plays"], plays, "{name}");
        assert_eq!(page["frame"]["listener"], name);
        let ms = d.int(&format!(
            "SELECT sum(ms_played) FROM marts.fact_plays WHERE listener_id = {id}"
        ));
        assert_eq!(page["totals"]["ms_played"], ms, "{name}");
        let tracks = d.int(&format!(
            "SELECT count(DISTINCT track_id) FROM marts.fact_plays WHERE listener_id = {id}"
        ));
        assert_eq!(page["totals"]["tracks"], tracks, "{name}");

        let top = json_as(
            d,
            None,
            &format!("/top/artists?listener={name}&range=all&format=json"),
        )
        .await;
        let expected = d.pairs(&format!(
            "SELECT artist_id, count(*) FROM marts.fact_plays WHERE listener_id = {id}
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
        ));
        for (row, (artist, n)) in top["rows"].as_array().unwrap().iter().zip(&expected) {
            assert_eq!(
                (&row["id"], &row["plays"]),
                (&(*artist).clone().into(), &(*n).into())
            );
        }
        let timeline = json_as(
            d,
            None,
            &format!("/timeline?listener={name}&range=all&grain=month&format=json"),
        )
        .await;
        let sum: i64 = timeline["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["plays"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, plays, "{name}'s timeline");
        let streaks = json_as(
            d,
            None,
            &format!("/streaks?listener={name}&range=all&format=json"),
        )
        .await;
        let days = d.int(&format!(
            "SELECT count(DISTINCT date_id) FROM marts.fact_plays WHERE listener_id = {id}"
        ));
        assert_eq!(streaks["active_days"], days, "{name}'s streaks");
        // Every page answers for this listener, in JSON and CSV.
        for (path, _) in PAGES {
            let path = if path == "/artist/x" {
                format!("/artist/{}", expected[0].0)
            } else {
                path.to_string()
            };
            for format in ["json", "csv"] {
                let url = format!("{path}?listener={name}&format={format}");
                let (mut status, mut body) = get_as(d, None, &url).await;
                if path == "/year" {
                    // The latest year, with the listener and format kept.
                    assert_eq!(status, 307, "{url}");
                    let r = client().get(d.url(&url)).send().await.unwrap();
                    let to = r.headers()["location"].to_str().unwrap().to_string();
                    assert!(
                        to.starts_with("/year/20") && to.contains(&format!("listener={name}")),
                        "{to}"
                    );
                    (status, body) = get_as(d, None, &to).await;
                }
                assert_eq!(status, 200, "{path} for {name} as {format}: {body}");
            }
        }
    }
    // No listener named: the configured default's pages.
    let page = json_as(d, None, "/?range=all&format=json").await;
    assert_eq!(
        page["totals"]["plays"],
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {default}"
        ))
    );
    // The two histories differ, so a page that mixed them up would fail above.
    assert_ne!(
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {default}"
        )),
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {bob}"
        ))
    );
    let (status, body) = get_as(d, None, "/?listener=nobody").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn the_everyone_view_adds_up_every_listener() {
    let d = shared();
    let page = json_as(d, None, "/?listener=everyone&range=all&format=json").await;
    assert_eq!(page["frame"]["listener"], "everyone");
    assert_eq!(
        page["totals"]["plays"],
        d.int("SELECT count(*) FROM marts.fact_plays")
    );
    assert_eq!(
        page["totals"]["artists"],
        d.int("SELECT count(DISTINCT artist_id) FROM marts.fact_plays")
    );
    assert_eq!(
        page["totals"]["active_days"],
        d.int("SELECT count(DISTINCT date_id) FROM marts.fact_plays")
    );
    // The timeline's new artists: first played by anyone that month, each counted once.
    let timeline = json_as(
        d,
        None,
        "/timeline?listener=everyone&range=all&grain=month&format=json",
    )
    .await;
    let new_artists: i64 = timeline["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["new_artists"].as_i64().unwrap())
        .sum();
    assert_eq!(
        new_artists,
        d.int("SELECT count(DISTINCT artist_id) FROM marts.fact_plays"),
        "every artist is new once"
    );
    let top = json_as(
        d,
        None,
        "/top/tracks?listener=everyone&range=all&format=json",
    )
    .await;
    let expected = d.pairs(
        "SELECT track_id, count(*) FROM marts.fact_plays GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
    );
    for (row, (track, n)) in top["rows"].as_array().unwrap().iter().zip(&expected) {
        assert_eq!(row["id"], track.as_str());
        assert_eq!(row["plays"], *n);
    }
    for (path, everyone) in PAGES {
        if everyone {
            let (status, body) = get_as(d, None, &format!("{path}?listener=everyone")).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert!(
                body.contains("<option value=\"everyone\" selected>"),
                "{path}"
            );
            assert!(
                body.contains("listener=everyone"),
                "{path}: links keep the everyone view"
            );
        } else {
            let path = if path == "/year" { "/year/2025" } else { path };
            let (status, _) = get_as(d, None, &format!("{path}?listener=everyone")).await;
            assert!(status == 400 || status == 404, "{path}: {status}");
        }
    }
    // The switcher offers both listeners; the nav keeps the listener.
    let (_, html) = get_as(d, None, "/top/artists?listener=bob&range=all").await;
    assert!(html.contains("<option value=\"bob\" selected>bob</option>"));
    assert!(html.contains("<option value=\"default\">default</option>"));
    assert!(
        html.contains("streaks?range=all&listener=bob\""),
        "nav keeps bob: {}",
        &html[html.find("/streaks").unwrap_or(0)..][..60]
    );
    assert!(
        html.contains("year?listener=bob\""),
        "the year page keeps bob too"
    );
}

#[tokio::test]
async fn privacy_holds_for_every_viewer_and_setting() {
    let dir = tempfile::tempdir().unwrap();
    let wh = household_warehouse(dir.path());
    let d = serve(wh, dir);
    let data = d.dir().to_path_buf();
    let bob = id_of(&d, "bob");
    let default = id_of(&d, "default");
    let bob_plays = d.int(&format!(
        "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {bob}"
    ));
    let default_plays = d.int(&format!(
        "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {default}"
    ));
    // A track only bob plays, whose name must never show to those who may not see him.
    let bob_only = d.text(&format!(
        "SELECT t.track_name FROM marts.fact_plays f JOIN marts.dim_track t USING (track_id)
         WHERE f.listener_id = {bob} AND f.track_id NOT IN
           (SELECT track_id FROM marts.fact_plays WHERE listener_id = {default})
         GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ));
    magpie_core::secrets::set_admin_password(&data, "the admin's long secret").unwrap();
    household::set_password(&data, "bob", "bob's long secret").unwrap();
    household::set_password(&data, "default", "default's long secret").unwrap();
    let login = |name: &'static str, password: &'static str| {
        let d = &d;
        async move {
            let r = client()
                .post(d.url("/login"))
                .form(&[("name", name), ("password", password)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "{name} logs in");
            common::session_of(&r)
        }
    };
    let admin = login("", "the admin's long secret").await;
    let bob_session = login("bob", "bob's long secret").await;
    let default_session = login("default", "default's long secret").await;
    let wrong = client()
        .post(d.url("/login"))
        .form(&[("name", "bob"), ("password", "default's long secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        401,
        "a listener logs in with their own password only"
    );

    // Private: only bob and the admin see bob.
    household::set_visibility(&data, "bob", Visibility::Private).unwrap();
    for (who, cookie) in [
        ("anonymous", None),
        ("default", Some(default_session.as_str())),
    ] {
        for (path, _) in PAGES {
            for format in ["", "&format=json", "&format=csv"] {
                let (status, body) =
                    get_as(&d, cookie, &format!("{path}?listener=bob{format}")).await;
                assert!(
                    status == 404 || (cookie.is_none() && status == 303),
                    "{who} asked {path} for bob{format}: {status}"
                );
                assert!(!body.contains(&bob_only), "{who}: {path}{format}");
            }
        }
        for (path, everyone) in PAGES.into_iter().filter(|(_, e)| *e) {
            let _ = everyone;
            for format in ["", "&format=json", "&format=csv"] {
                let (status, body) = get_as(
                    &d,
                    cookie,
                    &format!("{path}?listener=everyone&range=all{format}"),
                )
                .await;
                assert_eq!(status, 200, "{who}: {path}{format}");
                assert!(
                    !body.contains(&bob_only),
                    "{who}: everyone's {path}{format}"
                );
                assert!(
                    !body.contains("value=\"bob\""),
                    "{who}: no bob in the switcher"
                );
            }
        }
        let everyone = json_as(&d, cookie, "/?listener=everyone&range=all&format=json").await;
        assert_eq!(
            everyone["totals"]["plays"], default_plays,
            "{who}: everyone without bob"
        );
        // Saved questions and dashboards read every listener's data.
        for path in ["/questions", "/dashboards", "/enrichment"] {
            let (status, _) = get_as(&d, cookie, path).await;
            assert!(
                status == 303 || status == 403,
                "{who}: {path} gave {status}"
            );
        }
    }
    for cookie in [&bob_session, &admin] {
        let page = json_as(&d, Some(cookie), "/?listener=bob&range=all&format=json").await;
        assert_eq!(page["totals"]["plays"], bob_plays);
        let everyone = json_as(
            &d,
            Some(cookie),
            "/?listener=everyone&range=all&format=json",
        )
        .await;
        assert_eq!(everyone["totals"]["plays"], bob_plays + default_plays);
    }
    // Bob's own session opens on his pages; the admin's pages stay closed to him.
    let own = json_as(&d, Some(&bob_session), "/?range=all&format=json").await;
    assert_eq!(own["frame"]["listener"], "bob");
    for path in ["/admin/spotify", "/admin/listeners", "/explore"] {
        let (status, _) = get_as(&d, Some(&bob_session), path).await;
        assert_eq!(status, 403, "bob may not open {path}");
    }
    let (_, flows) = get_as(&d, Some(&admin), "/flows").await;
    let _ = flows;
    let (status, me) = get_as(&d, Some(&bob_session), "/me").await;
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("name=\"csrf\""), "{me}");
    let r = client()
        .post(d.url("/flows/daily-etl/run"))
        .header("cookie", &bob_session)
        .form(&[("csrf", csrf_of(&me).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a listener cannot run flows");

    // Household: logged-in members see bob, anonymous visitors do not.
    let r = client()
        .post(d.url("/me/visibility"))
        .header("cookie", &bob_session)
        .form(&[("csrf", csrf_of(&me).as_str()), ("visibility", "household")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        household::Household::load(&data).unwrap().visibility("bob"),
        Visibility::Household
    );
    let page = json_as(
        &d,
        Some(&default_session),
        "/?listener=bob&range=all&format=json",
    )
    .await;
    assert_eq!(page["totals"]["plays"], bob_plays);
    let (status, _) = get_as(&d, None, "/?listener=bob").await;
    assert_eq!(status, 404);
    let everyone = json_as(&d, None, "/?listener=everyone&range=all&format=json").await;
    assert_eq!(everyone["totals"]["plays"], default_plays);
    // Nor do the ListenBrainz API's read endpoints show him, unless with his own token.
    let token = magpie_music::submit::tokens::TokenStore::new(&data)
        .create("bob", None)
        .unwrap()
        .token;
    for path in ["/1/user/bob/listens", "/1/user/bob/playing-now"] {
        assert_eq!(get_as(&d, None, path).await.0, 401, "{path}");
        let r = client()
            .get(d.url(path))
            .header("authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with bob's token");
    }
    assert_eq!(get_as(&d, None, "/1/user/default/listens").await.0, 200);
    // Bob may not change default's setting; without the CSRF token nothing changes.
    let r = client()
        .post(d.url("/me/visibility"))
        .header("cookie", &bob_session)
        .form(&[
            ("csrf", csrf_of(&me).as_str()),
            ("listener", "default"),
            ("visibility", "private"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(d.url("/me/visibility"))
        .header("cookie", &bob_session)
        .form(&[("visibility", "everyone")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        household::Household::load(&data).unwrap().visibility("bob"),
        Visibility::Household
    );

    // Everyone: anonymous visitors see bob again.
    household::set_visibility(&data, "bob", Visibility::Everyone).unwrap();
    let page = json_as(&d, None, "/?listener=bob&range=all&format=json").await;
    assert_eq!(page["totals"]["plays"], bob_plays);

    // The admin takes bob's login away: his session ends, his password no longer works.
    let (status, listeners) = get_as(&d, Some(&admin), "/admin/listeners").await;
    assert_eq!(status, 200, "{listeners}");
    assert!(listeners.contains("data-listener=\"bob\""));
    let r = client()
        .post(d.url("/admin/listeners/login"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", csrf_of(&listeners).as_str()),
            ("listener", "bob"),
            ("password", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = get_as(&d, Some(&bob_session), "/me").await;
    assert_eq!(status, 303, "bob's session ended");
    assert!(!household::verify(&data, "bob", "bob's long secret").unwrap());
}

#[tokio::test]
async fn comparing_two_listeners_matches_sql() {
    let d = shared();
    let (default, bob) = (id_of(d, "default"), id_of(d, "bob"));
    let page = json_as(d, None, "/compare?with=default,bob&range=all&format=json").await;
    let c = &page["comparison"];
    assert_eq!(page["compared"], serde_json::json!(["default", "bob"]));
    for (i, id) in [default, bob].into_iter().enumerate() {
        assert_eq!(
            c["sides"][i]["plays"],
            d.int(&format!(
                "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {id}"
            ))
        );
    }
    let shared_artists = d.int(&format!(
        "SELECT count(*) FROM (SELECT artist_id FROM marts.fact_plays WHERE listener_id IN ({default}, {bob})
         GROUP BY 1 HAVING count(DISTINCT listener_id) = 2)"
    ));
    let any_artists = d.int(&format!(
        "SELECT count(DISTINCT artist_id) FROM marts.fact_plays WHERE listener_id IN ({default}, {bob})"
    ));
    assert!(shared_artists > 0, "the two demo histories share artists");
    assert_eq!(c["shared_artists_count"], shared_artists);
    assert_eq!(c["any_artists_count"], any_artists);
    let overlap = c["artist_overlap"].as_f64().unwrap();
    assert!((overlap - shared_artists as f64 / any_artists as f64).abs() < 1e-9);
    let affinity = c["affinity"].as_f64().unwrap();
    assert!(affinity > 0.0 && affinity <= 1.0, "{affinity}");
    // Every blend track is played by both, with the counts shown.
    let blend = c["blend"].as_array().unwrap();
    assert!(!blend.is_empty());
    for track in blend {
        let id = track["id"].as_str().unwrap();
        for (i, listener) in [default, bob].into_iter().enumerate() {
            let n = d.int(&format!(
                "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {listener} AND track_id = '{id}'"
            ));
            assert!(n > 0);
            assert_eq!(track["plays"][i], n, "{id}");
        }
    }
    // The first to play each shared artist, ever.
    let first = &c["shared_artists"][0];
    let artist = first["id"].as_str().unwrap();
    let expected = d.text(&format!(
        "SELECT l.name FROM marts.fact_plays f JOIN listeners l USING (listener_id)
         WHERE f.artist_id = '{artist}' AND f.listener_id IN ({default}, {bob})
         ORDER BY f.played_at, l.name LIMIT 1"
    ));
    assert_eq!(first["first_listener"], expected.as_str());
    let (status, html) = get_as(d, None, "/compare?with=default&with=bob&range=all").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"blend\"") && html.contains("Affinity"));
    // One listener: the form and a hint, no numbers.
    let page = json_as(d, None, "/compare?with=bob&format=json").await;
    assert!(page["comparison"].is_null());
    let (status, _) = get_as(d, None, "/compare?with=bob,nobody").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_renames_merges_and_removes_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let wh = household_warehouse(dir.path());
    let d = serve(wh, dir);
    let data = d.dir().to_path_buf();
    let bob = id_of(&d, "bob");
    let bob_plays = d.int(&format!(
        "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {bob}"
    ));
    magpie_core::secrets::set_admin_password(&data, "the admin's long secret").unwrap();
    household::set_visibility(&data, "bob", Visibility::Household).unwrap();
    let r = client()
        .post(d.url("/login"))
        .form(&[("password", "the admin's long secret")])
        .send()
        .await
        .unwrap();
    let admin = common::session_of(&r);
    let (status, page) = get_as(&d, Some(&admin), "/admin/listeners").await;
    assert_eq!(status, 200, "{page}");
    // Each listener's sources: plays from the raw events.
    let bob_listens = d.int(&format!(
        "SELECT count(*) FROM raw.listen_events WHERE listener_id = {bob} AND duplicate_of IS NULL"
    ));
    assert!(
        page.contains(&common_number(bob_listens)),
        "bob's plays shown"
    );
    let csrf = csrf_of(&page);
    let post = |form: Vec<(&'static str, String)>| {
        let (d, admin, csrf) = (&d, admin.clone(), csrf.clone());
        async move {
            let mut fields = form;
            fields.push(("csrf", csrf));
            let r = client()
                .post(d.url("/admin/listeners"))
                .header("cookie", admin)
                .form(&fields)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    // Rename: the pages follow at once, with the visibility.
    let (status, body) = post(vec![
        ("action", "rename".into()),
        ("listener", "bob".into()),
        ("to", "robert".into()),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Renamed bob to robert"));
    let page = json_as(&d, Some(&admin), "/?listener=robert&range=all&format=json").await;
    assert_eq!(page["totals"]["plays"], bob_plays);
    assert_eq!(get_as(&d, Some(&admin), "/?listener=bob").await.0, 404);
    assert_eq!(
        household::Household::load(&data)
            .unwrap()
            .visibility("robert"),
        Visibility::Household
    );
    assert_eq!(
        get_as(&d, None, "/?listener=robert").await.0,
        404,
        "still household-only"
    );
    // A bad name is refused with the rule it broke.
    let (status, body) = post(vec![
        ("action", "rename".into()),
        ("listener", "robert".into()),
        ("to", "everyone".into()),
    ])
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("reserved"), "{body}");
    // Merge needs the name typed again; then a backup is taken first.
    let (status, _) = post(vec![
        ("action", "merge".into()),
        ("listener", "robert".into()),
        ("to", "default".into()),
        ("confirm", "rob".into()),
    ])
    .await;
    assert_eq!(status, 400);
    let events = d.int("SELECT count(*) FROM raw.listen_events");
    let (status, body) = post(vec![
        ("action", "merge".into()),
        ("listener", "robert".into()),
        ("to", "default".into()),
        ("confirm", "robert".into()),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Merged robert into default") && body.contains(".duckdb"));
    let backups: Vec<_> = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(backups.iter().any(|b| b.contains("merge")), "{backups:?}");
    assert_eq!(
        d.int("SELECT count(*) FROM raw.listen_events"),
        events,
        "no play lost"
    );
    assert_eq!(
        d.int(&format!(
            "SELECT count(*) FROM raw.listen_events WHERE listener_id = {bob}"
        )),
        0
    );
    assert_eq!(get_as(&d, Some(&admin), "/?listener=robert").await.0, 404);
    let (_, html) = get_as(&d, Some(&admin), "/?range=all").await;
    assert!(
        !html.contains("value=\"robert\""),
        "a merged name is not offered"
    );
    // The default listener is not removed from here.
    let (status, body) = post(vec![
        ("action", "remove".into()),
        ("listener", "default".into()),
        ("confirm", "default".into()),
    ])
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(d.int("SELECT count(*) FROM raw.listen_events") > 0);
    // A listener without a session cannot do any of it.
    let r = client()
        .post(d.url("/admin/listeners"))
        .form(&[("action", "add"), ("listener", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

/// A count as the pages print it (`1,234`).
fn common_number(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn a_listeners_filters_leave_plays_out_of_their_pages() {
    let dir = tempfile::tempdir().unwrap();
    let wh = household_warehouse(dir.path());
    let d = serve(wh, dir);
    let data = d.dir().to_path_buf();
    let (bob, default) = (id_of(&d, "bob"), id_of(&d, "default"));
    household::set_password(&data, "bob", "bob's long secret").unwrap();
    let r = client()
        .post(d.url("/login"))
        .form(&[("name", "bob"), ("password", "bob's long secret")])
        .send()
        .await
        .unwrap();
    let session = common::session_of(&r);
    let (top_id, top_name, top_plays) = {
        let top = json_as(&d, None, "/top/artists?listener=bob&range=all&format=json").await;
        let row = &top["rows"][0];
        (
            row["id"].as_str().unwrap().to_string(),
            row["name"].as_str().unwrap().to_string(),
            row["plays"].as_i64().unwrap(),
        )
    };
    let plays = |id: i64| {
        d.int(&format!(
            "SELECT count(*) FROM marts.fact_plays WHERE listener_id = {id}"
        ))
    };
    let (bob_before, default_before) = (plays(bob), plays(default));
    let me = get_as(&d, Some(&session), "/me").await.1;
    let filter = |action: &'static str, listener: &'static str| {
        let (d, session, csrf, name) = (&d, session.clone(), csrf_of(&me), top_name.clone());
        async move {
            let r = client()
                .post(d.url("/me/filters"))
                .header("cookie", session)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("listener", listener),
                    ("action", action),
                    ("kind", "artist"),
                    ("value", name.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(
        filter("add", "default").await.0,
        403,
        "only their own filters"
    );
    let (status, body) = filter("add", "bob").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("is hidden from bob"), "{body}");
    assert!(body.contains(&format!("data-filter=\"artist:{top_name}\"")));
    d.build(&common::config(&data));
    // The marts leave the artist's plays out, for bob only; the pages read the marts.
    assert_eq!(plays(bob), bob_before - top_plays);
    assert_eq!(plays(default), default_before);
    let top = json_as(&d, None, "/top/artists?listener=bob&range=all&format=json").await;
    assert!(
        top["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != top_id.as_str()),
        "the hidden artist is not ranked"
    );
    let page = json_as(&d, None, "/?listener=bob&range=all&format=json").await;
    assert_eq!(page["totals"]["plays"], bob_before - top_plays);
    assert!(
        d.int(&format!(
            "SELECT count(*) FROM raw.listen_events WHERE listener_id = {bob}"
        )) >= bob_before,
        "no event deleted"
    );
    // Shown again.
    let (status, _) = filter("remove", "bob").await;
    assert_eq!(status, 200);
    d.build(&common::config(&data));
    let page = json_as(&d, None, "/?listener=bob&range=all&format=json").await;
    assert_eq!(page["totals"]["plays"], bob_before);
}
