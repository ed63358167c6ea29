//! The ListenBrainz (`/1/`) and Last.fm (`/2.0/`) submission APIs on a real server at
//! 127.0.0.1:0 over a built demo warehouse: what is stored (counted with SQL), what is refused
//! (in each service's own error shape, with nothing stored), retries that add nothing, a listen
//! that Spotify also reported counted once after a build, now playing, reading listens back,
//! and the admin's token page. Signatures are computed here with the `md-5` crate, not with
//! magpie's own code. (The same APIs driven by the real Python clients: crates/magpie/tests.)

mod common;

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::{Value, json};

use common::{Served, client, csrf_of, session_of};

fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 3_000);
    common::serve(wh, dir)
}

fn count(d: &Served, kind: &str) -> i64 {
    d.int(&format!(
        "SELECT count(*) FROM raw.listen_events WHERE source_kind = '{kind}'"
    ))
}

async fn submit(d: &Served, token: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(d.url("/1/submit-listens"))
        .header("authorization", format!("Token {token}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// GET a page or API answer as text, with a session cookie when given.
async fn text(d: &Served, path: &str, session: Option<&str>) -> String {
    let mut req = client().get(d.url(path));
    if let Some(cookie) = session {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap().text().await.unwrap()
}

/// GET an API answer as JSON, with a token when given.
async fn get_json(d: &Served, path: &str, token: Option<&str>) -> Value {
    let mut req = client().get(d.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Token {t}"));
    }
    req.send().await.unwrap().json().await.unwrap()
}

fn listen(ts: i64, artist: &str, track: &str) -> Value {
    json!({"listened_at": ts, "track_metadata": {"artist_name": artist, "track_name": track,
        "release_name": "An Album", "additional_info": {"duration_ms": 200000, "submission_client": "test client"}}})
}

#[tokio::test]
async fn listenbrainz_submissions_are_stored_once_and_refusals_store_nothing() {
    let d = served();
    let made = d
        .app
        .scrobbling()
        .tokens
        .create("alice", Some("phone"))
        .unwrap();
    let token = made.token.as_str();
    let http = client();

    // validate-token, from the header or ?token=.
    let v = get_json(&d, "/1/validate-token", Some(token)).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["user_name"], "alice");
    let v = get_json(&d, "/1/validate-token?token=not-a-token", None).await;
    assert_eq!(
        v,
        json!({"code": 200, "message": "Token invalid.", "valid": false})
    );

    // A single listen, then the same request again (a client's retry).
    let single =
        json!({"listen_type": "single", "payload": [listen(1_700_000_000, "Björk", "Jóga")]});
    assert_eq!(
        submit(&d, token, &single).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(submit(&d, token, &single).await.0, 200);
    assert_eq!(count(&d, "listenbrainz_api"), 1, "a retry adds nothing");
    assert_eq!(
        d.text(
            "SELECT source_path || ' ' || file_name FROM raw.import_batches WHERE format = 'listenbrainz_submit' ORDER BY batch_id LIMIT 1"
        ),
        format!("token:{} test client", made.info.id),
        "provenance: the token and the client"
    );

    // An import of 1,000 listens in one request, stored in one transaction.
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            listen(
                1_690_000_000 + i * 300,
                &format!("Artist {}", i % 37),
                &format!("Track {i}"),
            )
        })
        .collect();
    let import = json!({"listen_type": "import", "payload": batch});
    assert_eq!(submit(&d, token, &import).await.0, 200);
    assert_eq!(count(&d, "listenbrainz_api"), 1001);

    // Refusals in ListenBrainz's shape, and nothing of them stored.
    let mut too_many = batch.clone();
    too_many.push(listen(1_600_000_000, "X", "Y"));
    let cases = [
        (
            json!({"listen_type": "import", "payload": too_many}),
            "Too many listens",
        ),
        (
            json!({"listen_type": "single", "payload": [{"listened_at": 1_700_000_500, "track_metadata": {"artist_name": "A"}}]}),
            "track_metadata.track_name",
        ),
        (
            json!({"listen_type": "import", "payload": [listen(1_700_000_600, "A", "T"), {"listened_at": 5, "track_metadata": {"artist_name": "A", "track_name": "T"}}]}),
            "too low",
        ),
        (
            json!({"listen_type": "sometimes", "payload": [listen(1_700_000_700, "A", "T")]}),
            "valid listen_type",
        ),
        (
            json!({"payload": [listen(1_700_000_700, "A", "T")]}),
            "valid listen_type",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = submit(&d, token, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], 400);
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    let r = http
        .post(d.url("/1/submit-listens"))
        .header("authorization", format!("Token {token}"))
        .body("{\"listen_type\": \"single\", \"payload\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = "x".repeat(11_000);
    let (status, answer) = submit(
        &d,
        token,
        &json!({"listen_type": "single", "payload": [listen(1_700_000_800, "A", &big)]}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (400, json!(400)),
        "{answer}"
    );
    for auth in ["Token 00000000-0000-4000-8000-000000000000", "Bearer", ""] {
        let mut req = http
            .post(d.url("/1/submit-listens"))
            .body(single.to_string());
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["code"], 401, "{answer}");
    }
    assert_eq!(
        count(&d, "listenbrainz_api"),
        1001,
        "nothing of the refusals"
    );

    // playing_now: not a play; shown on the API and the overview until it ends.
    let playing = json!({"listen_type": "playing_now", "payload": [{"track_metadata": {"artist_name": "Nina Simone", "track_name": "Sinnerman", "additional_info": {"duration_ms": 600000}}}]});
    assert_eq!(submit(&d, token, &playing).await.0, 200);
    assert_eq!(count(&d, "listenbrainz_api"), 1001);
    let now = get_json(&d, "/1/user/alice/playing-now", None).await;
    assert_eq!(now["payload"]["count"], 1, "{now}");
    assert_eq!(
        now["payload"]["listens"][0]["track_metadata"]["track_name"],
        "Sinnerman"
    );

    // Reading back: newest first, count and min_ts as ListenBrainz has them.
    let back = get_json(&d, "/1/user/alice/listens?count=3", None).await;
    let listens = back["payload"]["listens"].as_array().unwrap();
    assert_eq!(listens.len(), 3);
    assert_eq!(listens[0]["listened_at"], 1_700_000_000);
    assert_eq!(listens[0]["track_metadata"]["artist_name"], "Björk");
    assert_eq!(back["payload"]["latest_listen_ts"], 1_700_000_000);
    let after = get_json(&d, "/1/user/alice/listens?min_ts=1690000000&count=2", None).await;
    let times: Vec<i64> = after["payload"]["listens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["listened_at"].as_i64().unwrap())
        .collect();
    assert_eq!(
        times,
        vec![1_690_000_600, 1_690_000_300],
        "just after min_ts, newest first"
    );
    let unknown = get_json(&d, "/1/user/nobody-here/playing-now", None).await;
    assert_eq!(
        unknown,
        json!({"code": 404, "error": "Cannot find user: nobody-here"})
    );
    // Over ListenBrainz's payload limit: refused before parsing, still in its shape.
    // (Only the headers are sent: the server answers from Content-Length without reading on.)
    let raw = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(d.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /1/submit-listens HTTP/1.1\r\nHost: localhost\r\nAuthorization: Token {token}\r\nContent-Length: 10300000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"code\":413"), "{raw}");
    let r = http
        .get(d.url("/1/user/alice/listens?min_ts=1&max_ts=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_submitted_listen_that_spotify_also_reported_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let wh = common::demo_warehouse(dir.path(), 3_000);
    let config = common::config(dir.path());
    let d = common::serve(wh, dir);
    let token = d
        .app
        .scrobbling()
        .tokens
        .create("default", None)
        .unwrap()
        .token;
    let plays_before = d.int("SELECT count(*) FROM marts.fact_plays");
    // A counted Spotify play: the player scrobbled it too, with its start 20 s off.
    let (artist, track) = (
        d.text("SELECT e.artist_name FROM marts.fact_plays f JOIN raw.listen_events e USING (event_id) ORDER BY event_id LIMIT 1"),
        d.text("SELECT e.track_name FROM marts.fact_plays f JOIN raw.listen_events e USING (event_id) ORDER BY event_id LIMIT 1"),
    );
    let started = d.int("SELECT epoch(e.started_at)::BIGINT FROM marts.fact_plays f JOIN raw.listen_events e USING (event_id) ORDER BY event_id LIMIT 1");
    let body = json!({"listen_type": "import", "payload": [
        listen(started + 20, &artist, &track),
        listen(1_500_000_000, "Someone New", "A New Song"),
    ]});
    assert_eq!(submit(&d, &token, &body).await.0, 200);
    assert_eq!(
        d.int("SELECT count(*) FROM raw.listen_events WHERE source_kind = 'listenbrainz_api' AND duplicate_of IS NOT NULL"),
        1,
        "the same listen, marked as seen from Spotify"
    );
    // The next build: one more play (the new song), not two.
    d.build(&config);
    assert_eq!(
        d.int("SELECT count(*) FROM marts.fact_plays"),
        plays_before + 1
    );
    assert_eq!(
        d.int("SELECT count(*) FROM marts.fact_plays WHERE source_kind = 'listenbrainz_api'"),
        1
    );
    // It shows on the pages after the build (the snapshot is published).
    let (_, html) = common::get(&d.url("/top/artists?range=all")).await;
    assert!(
        html.contains("Someone New"),
        "the new artist on the top list"
    );
}

/// `api_sig` as Last.fm defines it, computed independently.
fn sign(params: &BTreeMap<&str, String>, secret: &str) -> String {
    let mut text = String::new();
    for (k, v) in params {
        if *k != "format" && *k != "api_sig" {
            text.push_str(k);
            text.push_str(v);
        }
    }
    text.push_str(secret);
    hex::encode(Md5::digest(text.as_bytes()))
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

async fn call(d: &Served, mut params: BTreeMap<&str, String>, secret: &str) -> (u16, String) {
    let sig = sign(&params, secret);
    params.insert("api_sig", sig);
    let r = client()
        .post(d.url("/2.0/"))
        .form(&params)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let at = text
        .find(open)
        .unwrap_or_else(|| panic!("{open} in {text}"))
        + open.len();
    &text[at..at + text[at..].find(close).unwrap()]
}

#[tokio::test]
async fn lastfm_sessions_scrobbles_and_errors_in_lastfms_shapes() {
    let d = served();
    let scrobbling = d.app.scrobbling();
    let made = scrobbling.tokens.create("bob", None).unwrap();
    let api = scrobbling.tokens.api_key().unwrap();
    let key = api.key.clone();
    let p = |pairs: &[(&'static str, &str)]| -> BTreeMap<&'static str, String> {
        let mut m: BTreeMap<&str, String> =
            pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        m.insert("api_key", key.clone());
        m
    };

    // A session from the password (the token), and from pylast's authToken.
    let (status, xml) = call(
        &d,
        p(&[
            ("method", "auth.getMobileSession"),
            ("username", "bob"),
            ("password", &made.token),
        ]),
        &api.secret,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<lfm status=\"ok\">") && xml.contains("<name>bob</name>"),
        "{xml}"
    );
    let sk = between(&xml, "<key>", "</key>").to_string();
    let auth_token = md5_hex(&format!("bob{}", md5_hex(&made.token)));
    let (status, xml) = call(
        &d,
        p(&[
            ("method", "auth.getMobileSession"),
            ("username", "bob"),
            ("authToken", &auth_token),
        ]),
        &api.secret,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let (status, xml) = call(
        &d,
        p(&[
            ("method", "auth.getMobileSession"),
            ("username", "bob"),
            ("password", "wrong"),
        ]),
        &api.secret,
    )
    .await;
    assert_eq!(status, 403);
    assert!(xml.contains("<error code=\"4\">"), "{xml}");

    // Bad signature, bad key, bad session, unknown method: Last.fm's codes, nothing stored.
    let scrobble_one = |sk: &str| {
        p(&[
            ("method", "track.scrobble"),
            ("sk", sk),
            ("artist[0]", "Portishead"),
            ("track[0]", "Roads"),
            ("timestamp[0]", "1700001000"),
        ])
    };
    let (_, xml) = call(&d, scrobble_one(&sk), "not the secret").await;
    assert!(xml.contains("<error code=\"13\">"), "{xml}");
    let mut wrong_key = scrobble_one(&sk);
    wrong_key.insert("api_key", "0".repeat(32));
    let (_, xml) = call(&d, wrong_key, &api.secret).await;
    assert!(xml.contains("<error code=\"10\">"), "{xml}");
    let (status, xml) = call(&d, scrobble_one(&"f".repeat(32)), &api.secret).await;
    assert_eq!(status, 403);
    assert!(xml.contains("<error code=\"9\">"), "{xml}");
    let (_, xml) = call(&d, p(&[("method", "user.getInfo")]), &api.secret).await;
    assert!(xml.contains("<error code=\"3\">"), "{xml}");
    assert_eq!(count(&d, "lastfm_api"), 0);

    // A batch of three, one with no artist: two accepted, one ignored; a retry adds nothing.
    let batch = p(&[
        ("method", "track.scrobble"),
        ("sk", &sk),
        ("artist[0]", "Portishead"),
        ("track[0]", "Roads"),
        ("album[0]", "Dummy"),
        ("duration[0]", "305"),
        ("timestamp[0]", "1700001000"),
        ("artist[1]", "Massive Attack & <friends>"),
        ("track[1]", "Teardrop"),
        ("timestamp[1]", "1700001400"),
        ("artist[2]", ""),
        ("track[2]", "Nameless"),
        ("timestamp[2]", "1700001700"),
    ]);
    let (status, xml) = call(&d, batch.clone(), &api.secret).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<scrobbles accepted=\"2\" ignored=\"1\">"),
        "{xml}"
    );
    assert!(
        xml.contains("Massive Attack &amp; &lt;friends&gt;"),
        "{xml}"
    );
    assert!(xml.contains("<ignoredMessage code=\"1\">"), "{xml}");
    let (_, _) = call(&d, batch, &api.secret).await;
    assert_eq!(count(&d, "lastfm_api"), 2);
    assert_eq!(
        d.int("SELECT count(*) FROM raw.listen_events WHERE source_kind = 'lastfm_api' AND track_duration_ms = 305000 AND album_name = 'Dummy'"),
        1
    );

    // JSON with format=json; now playing.
    let mut np = p(&[
        ("method", "track.updateNowPlaying"),
        ("sk", &sk),
        ("artist", "Low"),
        ("track", "Sunflower"),
    ]);
    np.insert("format", "json".into());
    let (status, body) = call(&d, np, &api.secret).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nowplaying"]["track"]["#text"], "Sunflower");
    let now: Value = common::json(&d.url("/1/user/bob/playing-now")).await;
    assert_eq!(
        now["payload"]["listens"][0]["track_metadata"]["artist_name"],
        "Low"
    );
    let mut bad = scrobble_one(&sk);
    bad.insert("format", "json".into());
    let (_, body) = call(&d, bad, "wrong").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], 13);

    // The desktop flow: a request token, refused until the admin approves it.
    let (_, xml) = call(&d, p(&[("method", "auth.getToken")]), &api.secret).await;
    let request = between(&xml, "<token>", "</token>").to_string();
    let (_, xml) = call(
        &d,
        p(&[("method", "auth.getSession"), ("token", &request)]),
        &api.secret,
    )
    .await;
    assert!(xml.contains("<error code=\"14\">"), "{xml}");
    let http = client();
    let r = http
        .get(d.url(&format!("/api/auth/?api_key={}&token={request}", api.key)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a person logs in first");
    let session = login(&d).await;
    let auth_page = format!("/api/auth/?api_key={}&token={request}", api.key);
    let html = text(&d, &auth_page, Some(&session)).await;
    let csrf = csrf_of(&html);
    let r = http
        .post(d.url("/api/auth/"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", &request),
            ("listener", "carol"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, xml) = call(
        &d,
        p(&[("method", "auth.getSession"), ("token", &request)]),
        &api.secret,
    )
    .await;
    assert!(xml.contains("<name>carol</name>"), "{xml}");
    let (_, xml) = call(
        &d,
        p(&[("method", "auth.getSession"), ("token", &request)]),
        &api.secret,
    )
    .await;
    assert!(xml.contains("<error code=\"15\">"), "used once: {xml}");

    // Revoking the token ends its sessions at once.
    scrobbling.tokens.revoke(&made.info.id).unwrap();
    let (_, xml) = call(&d, scrobble_one(&sk), &api.secret).await;
    assert!(xml.contains("<error code=\"9\">"), "{xml}");
}

async fn login(d: &Served) -> String {
    magpie_core::secrets::set_admin_password(d.dir(), "a long admin secret").unwrap();
    let r = client()
        .post(d.url("/login"))
        .form(&[("password", "a long admin secret"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    session_of(&r)
}

#[tokio::test]
async fn the_token_page_makes_shows_once_and_revokes() {
    let d = served();
    let session = login(&d).await;
    let http = client();
    let html = text(&d, "/admin/scrobbling", Some(&session)).await;
    let csrf = csrf_of(&html);
    let html = http
        .post(d.url("/admin/scrobbling"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("listener", "dana"),
            ("label", "navidrome"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = between(&html, "<code id=\"new-token\">", "</code>").to_string();
    assert_eq!(token.len(), 36);
    assert!(
        html.replace("&#x2f;", "/")
            .contains(&format!("{}/2.0/", d.base)),
        "the base URL to paste"
    );
    let listed = d.app.scrobbling().tokens.list(Some("dana")).unwrap();
    assert_eq!(listed.len(), 1);
    let single = json!({"listen_type": "single", "payload": [listen(1_700_000_000, "A", "T")]});
    assert_eq!(submit(&d, &token, &single).await.0, 200);
    let html = text(&d, "/admin/scrobbling", Some(&session)).await;
    assert!(!html.contains(&token), "shown once");
    assert!(
        html.contains("test client"),
        "the last submission's client: {html}"
    );
    let r = http
        .post(d.url(&format!("/admin/scrobbling/{}/revoke", listed[0].id)))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(submit(&d, &token, &single).await.0, 401);
}
