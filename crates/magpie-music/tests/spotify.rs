//! Live Spotify ingestion against a fake Spotify (accounts token endpoint + Web API) on
//! loopback, speaking the real wire format: items are the real recently-played payload from
//! ../shared/realdata with their track, time and id changed. The production client reaches it
//! through `spotify.accounts_url` / `spotify.api_url`.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::Utc;
use magpie_core::Config;
use magpie_music::spotify::{self, PollOutcome, Poller, TokenStore, Tokens};
use sha2::Digest;

/// What the fake answers next on recently-played, before serving plays.
#[derive(Clone)]
enum Reply {
    Status(u16),
    RateLimited(u64),
}

#[derive(Default)]
struct Fake {
    template: serde_json::Value,
    /// code -> PKCE challenge
    codes: HashMap<String, String>,
    refresh_tokens: HashSet<String>,
    access_tokens: HashMap<String, String>, // access -> refresh it came from
    /// End times (unix ms) of every play, newest last; only the latest 50 can be read.
    plays: Vec<i64>,
    script: VecDeque<Reply>,
    api_calls: usize,
    token_calls: usize,
    issued: usize,
}

type Shared = Arc<Mutex<Fake>>;

async fn token(State(fake): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut f = fake.lock().unwrap();
    f.token_calls += 1;
    let refresh = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(challenge) = f.codes.remove(&code) else {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "Invalid authorization code"}))).into_response();
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let digest = sha2::Sha256::digest(verifier.as_bytes());
            let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
            if expected != challenge
                || form.get("client_id").map(String::as_str) != Some("magpie-test")
            {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "code_verifier was incorrect"}))).into_response();
            }
            f.issued += 1;
            let refresh = format!("refresh-{}", f.issued);
            f.refresh_tokens.insert(refresh.clone());
            Some(refresh)
        }
        Some("refresh_token") => {
            let given = form.get("refresh_token").cloned().unwrap_or_default();
            if !f.refresh_tokens.contains(&given) {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "Refresh token revoked"}))).into_response();
            }
            None // Spotify often keeps the refresh token
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    };
    f.issued += 1;
    let access = format!("access-{}", f.issued);
    f.access_tokens
        .insert(access.clone(), refresh.clone().unwrap_or_default());
    let mut body = serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": "user-read-recently-played"});
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    axum::Json(body).into_response()
}

async fn recently_played(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut f = fake.lock().unwrap();
    f.api_calls += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !f
        .access_tokens
        .contains_key(bearer.trim_start_matches("Bearer "))
    {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": {"status": 401, "message": "The access token expired"}}))).into_response();
    }
    if let Some(reply) = f.script.pop_front() {
        return match reply {
            Reply::Status(code) => {
                (StatusCode::from_u16(code).unwrap(), "upstream trouble").into_response()
            }
            Reply::RateLimited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "",
            )
                .into_response(),
        };
    }
    let after: i64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    // Only the latest 50 plays exist; of those, the ones after the cursor, newest first.
    let latest: Vec<i64> = f
        .plays
        .iter()
        .rev()
        .take(50)
        .copied()
        .filter(|t| *t > after)
        .collect();
    let items: Vec<serde_json::Value> = latest
        .iter()
        .map(|&t| {
            let mut item = f.template.clone();
            let n = t / 1000;
            item["played_at"] = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
                .into();
            item["track"]["name"] = format!("Fake Song {}", n % 97).into();
            item["track"]["uri"] = format!("spotify:track:fake{}", n % 97).into();
            item["track"]["id"] = format!("fake{}", n % 97).into();
            item
        })
        .collect();
    let cursors = match (latest.first(), latest.last()) {
        (Some(newest), Some(oldest)) => {
            serde_json::json!({"after": newest.to_string(), "before": oldest.to_string()})
        }
        _ => serde_json::Value::Null,
    };
    axum::Json(serde_json::json!({"items": items, "next": null, "cursors": cursors, "limit": 50, "href": "fake"})).into_response()
}

struct Harness {
    fake: Shared,
    config: Config,
    dir: tempfile::TempDir,
}

impl Harness {
    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.fake.lock().unwrap()
    }

    /// `n` more plays, one every 4 minutes after the last one (the first ones ending
    /// `minutes_ago` minutes before now).
    fn listen(&self, n: usize, minutes_ago: i64) {
        let mut f = self.fake();
        let start = f.plays.last().copied().unwrap_or_else(|| {
            Utc::now().timestamp_millis() - minutes_ago * 60_000 - n as i64 * 240_000
        });
        for i in 1..=n as i64 {
            f.plays.push(start + i * 240_000);
        }
    }

    /// The browser half of connecting: approve the authorize link, return the redirect URL.
    fn approve(&self, link: &str) -> String {
        let url = url::Url::parse(link).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let code = format!("code-{}", rand_code());
        self.fake()
            .codes
            .insert(code.clone(), q["code_challenge"].clone());
        format!("{}?code={code}&state={}", q["redirect_uri"], q["state"])
    }
}

fn rand_code() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn harness() -> Option<Harness> {
    let real = common::realdata(
        "spotify_webapi/spotify-web-api-java/player/GetCurrentUsersRecentlyPlayedTracksRequest.json",
    )?;
    let payload: serde_json::Value = serde_json::from_slice(&std::fs::read(real).unwrap()).unwrap();
    let fake: Shared = Arc::new(Mutex::new(Fake {
        template: payload["items"][0].clone(),
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/api/token", post(token))
        .route("/v1/me/player/recently-played", get(recently_played))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.spotify.client_id = Some("magpie-test".into());
    config.spotify.accounts_url = base.clone();
    config.spotify.api_url = base;
    Some(Harness { fake, config, dir })
}

async fn connect(h: &Harness, listener: &str) -> Tokens {
    let pending = spotify::start_connect(&h.config.spotify, listener).unwrap();
    let pasted = h.approve(&pending.url);
    let http = spotify::http_client().unwrap();
    let tokens = spotify::finish_connect(&h.config.spotify, &http, pending, &pasted)
        .await
        .unwrap();
    TokenStore::new(&h.config.data_dir)
        .put(listener, tokens.clone())
        .unwrap();
    tokens
}

fn count(wh: &magpie_core::Warehouse, sql: &str) -> i64 {
    wh.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn connect_poll_refresh_gaps_and_rate_limits() {
    let Some(h) = harness().await else { return };
    let tokens = connect(&h, "ana").await;
    assert!(tokens.refresh_token.expose().starts_with("refresh-"));
    assert!(!tokens.reconnect_soon(Utc::now()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = TokenStore::new(&h.config.data_dir).path().to_path_buf();
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A wrong verifier or a replayed code is refused.
    let pending = spotify::start_connect(&h.config.spotify, "ana").unwrap();
    let pasted = h.approve(&pending.url);
    let http = spotify::http_client().unwrap();
    spotify::finish_connect(&h.config.spotify, &http, pending, &pasted)
        .await
        .unwrap();
    let pending = spotify::start_connect(&h.config.spotify, "ana").unwrap();
    let replay = pasted.replace(
        &pasted.split("state=").nth(1).unwrap().to_string(),
        &url::Url::parse(&pending.url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1,
    );
    assert!(
        spotify::finish_connect(&h.config.spotify, &http, pending, &replay)
            .await
            .is_err()
    );

    let wh = common::warehouse(h.dir.path());
    let poller = Poller::new(&wh, &h.config).unwrap();
    let api_plays = "SELECT count(*) FROM raw.listen_events WHERE source_kind = 'spotify_api'";

    // First poll: 30 plays.
    h.listen(30, 10);
    let out = poller.poll_all(false).await.unwrap();
    assert_eq!(
        out[0].1.as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 30,
            imported: 30,
            full_page: false
        }
    );
    assert_eq!(count(&wh, api_plays), 30);
    // Not due again for 30 minutes; forced, nothing new.
    assert!(matches!(
        poller.poll_all(false).await.unwrap()[0].1,
        Ok(PollOutcome::NotDue(_))
    ));
    assert_eq!(
        poller.poll_all(true).await.unwrap()[0].1.as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 0,
            imported: 0,
            full_page: false
        }
    );

    // 80 new plays: only the latest 50 are on the API, a gap is recorded, the next poll is sooner.
    h.listen(80, 0);
    assert_eq!(
        poller.poll_all(true).await.unwrap()[0].1.as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 50,
            imported: 50,
            full_page: true
        }
    );
    assert_eq!(count(&wh, "SELECT count(*) FROM raw.spotify_gaps"), 1);
    let next_in: i64 = count(
        &wh,
        "SELECT epoch(next_poll_at - now()::TIMESTAMP)::BIGINT FROM raw.spotify_poll_state",
    );
    assert!(next_in <= 5 * 60 + 5, "catch-up poll in {next_in} s");

    // The access token expires: one 401, a refresh, the poll goes through.
    h.fake().access_tokens.clear();
    h.listen(3, 0);
    let calls = h.fake().token_calls;
    assert_eq!(
        poller.poll_all(true).await.unwrap()[0].1.as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 3,
            imported: 3,
            full_page: false
        }
    );
    assert_eq!(h.fake().token_calls, calls + 1);
    let stored = TokenStore::new(&h.config.data_dir)
        .get("ana")
        .unwrap()
        .unwrap();
    assert!(
        h.fake()
            .access_tokens
            .contains_key(stored.access_token.expose()),
        "the new access token is saved"
    );

    // 5xx burst: retried with backoff, then the page.
    h.listen(2, 0);
    h.fake()
        .script
        .extend([Reply::Status(500), Reply::Status(502), Reply::Status(503)]);
    let calls = h.fake().api_calls;
    assert_eq!(
        poller.poll_all(true).await.unwrap()[0].1.as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 2,
            imported: 2,
            full_page: false
        }
    );
    assert_eq!(h.fake().api_calls, calls + 4);

    // 429: the wait is stored; a restarted poller keeps waiting without asking Spotify.
    h.fake().script.push_back(Reply::RateLimited(7200));
    assert!(matches!(
        poller.poll_all(true).await.unwrap()[0].1,
        Ok(PollOutcome::RateLimited(_))
    ));
    drop(poller);
    let calls = h.fake().api_calls;
    let restarted = Poller::new(&wh, &h.config).unwrap();
    match &restarted.poll_all(true).await.unwrap()[0].1 {
        Ok(PollOutcome::RateLimited(until)) => {
            assert!(*until > Utc::now() + chrono::Duration::minutes(119))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.fake().api_calls, calls, "no request while waiting");
    assert_eq!(count(&wh, api_plays), 85);
}

#[tokio::test(flavor = "current_thread")]
async fn a_revoked_listener_needs_reconnecting_and_the_others_go_on() {
    let Some(h) = harness().await else { return };
    connect(&h, "ana").await;
    let bob = connect(&h, "bob").await;
    h.fake().refresh_tokens.remove(bob.refresh_token.expose());
    let expired = Tokens {
        expires_at: Utc::now() - chrono::Duration::minutes(5),
        ..bob
    };
    TokenStore::new(&h.config.data_dir)
        .put("bob", expired)
        .unwrap();
    h.listen(5, 1);
    let wh = common::warehouse(h.dir.path());
    let poller = Poller::new(&wh, &h.config).unwrap();
    let out: HashMap<String, _> = poller.poll_all(true).await.unwrap().into_iter().collect();
    assert_eq!(
        out["ana"].as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 5,
            imported: 5,
            full_page: false
        }
    );
    assert_eq!(out["bob"].as_ref().unwrap(), &PollOutcome::ReconnectNeeded);
    let calls = h.fake().token_calls;
    let out: HashMap<String, _> = poller.poll_all(true).await.unwrap().into_iter().collect();
    assert_eq!(out["bob"].as_ref().unwrap(), &PollOutcome::ReconnectNeeded);
    assert_eq!(
        h.fake().token_calls,
        calls,
        "a listener needing reconnection is not retried"
    );
    let status: String = wh.conn().query_row(
        "SELECT status FROM raw.spotify_poll_state JOIN listeners USING (listener_id) WHERE name = 'bob'", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "reconnect_needed");
    // Connecting bob again resumes his polling.
    connect(&h, "bob").await;
    let out: HashMap<String, _> = poller.poll_all(true).await.unwrap().into_iter().collect();
    assert_eq!(
        out["bob"].as_ref().unwrap(),
        &PollOutcome::Polled {
            items: 5,
            imported: 5,
            full_page: false
        }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_export_imported_later_never_doubles_a_polled_play() {
    let Some(h) = harness().await else { return };
    connect(&h, "default").await;
    h.listen(20, 30);
    let wh = common::warehouse(h.dir.path());
    let poller = Poller::new(&wh, &h.config).unwrap();
    poller.poll_all(true).await.unwrap();
    // The same 20 plays, and 10 older ones the API never had, in an extended export.
    let plays = h.fake().plays.clone();
    let mut records = Vec::new();
    for (i, t) in plays
        .iter()
        .enumerate()
        .chain((0..10).map(|i| (100 + i, &0i64)))
    {
        let ended = if *t == 0 {
            plays[0] - (i as i64) * 600_000
        } else {
            *t
        };
        let n = ended / 1000;
        let artist = h.fake().template["track"]["artists"][0]["name"].clone();
        let album = h.fake().template["track"]["album"]["name"].clone();
        records.push(serde_json::json!({
            "ts": chrono::DateTime::from_timestamp_millis(ended).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "platform": "android", "ms_played": 200000, "conn_country": "SE",
            "master_metadata_track_name": format!("Fake Song {}", n % 97),
            "master_metadata_album_artist_name": artist, "master_metadata_album_album_name": album,
            "spotify_track_uri": format!("spotify:track:fake{}", n % 97),
            "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
            "reason_start": "trackdone", "reason_end": "trackdone", "shuffle": false, "skipped": false,
            "offline": false, "offline_timestamp": 0, "incognito_mode": false
        }));
    }
    let export = h.dir.path().join("Streaming_History_Audio_2026_0.json");
    std::fs::write(&export, serde_json::to_vec(&records).unwrap()).unwrap();
    let summary = common::import(&wh, &[export]);
    assert!(summary.all_ok());
    let counted = count(
        &wh,
        "SELECT count(*) FROM raw.listen_events WHERE duplicate_of IS NULL",
    );
    assert_eq!(counted, 30, "20 polled + 10 only in the export");
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE duplicate_of IS NOT NULL"
        ),
        20
    );
}
