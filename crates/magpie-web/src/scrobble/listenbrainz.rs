//! ListenBrainz's API under `/1/`, as clients pointed at a custom ListenBrainz URL expect it:
//! `submit-listens`, `validate-token`, and a user's `playing-now` and `listens`, with
//! ListenBrainz's JSON shapes and errors (`{"code": 400, "error": "..."}`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use magpie_music::event::SourceFormat;
use magpie_music::submit::listenbrainz::{self, ListenType};
use magpie_music::submit::tokens::TokenInfo;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;

/// Listens returned by default, and at most, by `/user/<name>/listens`.
const DEFAULT_ITEMS_PER_GET: usize = 25;
const MAX_ITEMS_PER_GET: usize = 1000;

/// A ListenBrainz error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"code": status.as_u16(), "error": message.into()})),
    )
        .into_response()
}

/// The token in `Authorization: Token <token>`, checked; the response to send otherwise.
fn authorize(app: &App, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let unauthorized = |m: &str| error(StatusCode::UNAUTHORIZED, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("You need to provide an Authorization header."));
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
    else {
        return Err(unauthorized("Provided Authorization header is invalid."));
    };
    match app.scrobbling().tokens.verify(token) {
        Ok(Some(info)) => Ok(info),
        Ok(None) => {
            tracing::info!("a submission with an unknown token was refused");
            Err(unauthorized("Invalid authorization token."))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the listen tokens");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot check tokens right now.",
            ))
        }
    }
}

/// `POST /1/submit-listens`.
pub async fn submit(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let token = match authorize(&app, &headers) {
        Ok(t) => t,
        Err(response) => return response,
    };
    let now = chrono::Utc::now().timestamp();
    let parsed = match listenbrainz::parse(&body, now) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    let scrobbling = app.scrobbling();
    if parsed.listen_type == ListenType::PlayingNow {
        scrobbling.playing(&token, &parsed.events[0], parsed.client);
        return axum::Json(json!({"status": "ok"})).into_response();
    }
    let submitted = scrobbling
        .submit(
            &token,
            SourceFormat::ListenBrainzSubmit,
            parsed.events,
            parsed.client,
            body.to_vec(),
        )
        .await;
    match submitted {
        Ok(_) => axum::Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, token = %token.id, "a submission could not be stored");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot submit listens right now, please try again later.",
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ValidateQuery {
    token: Option<String>,
}

/// `GET /1/validate-token`: the token from `?token=` or the `Authorization` header.
pub async fn validate_token(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<ValidateQuery>,
) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = q.token.filter(|t| !t.is_empty()).or(from_header) else {
        return error(
            StatusCode::BAD_REQUEST,
            "You need to provide an Authorization token.",
        );
    };
    match app.scrobbling().tokens.verify(&token) {
        Ok(Some(info)) => axum::Json(json!({
            "code": 200, "message": "Token valid.", "valid": true, "user_name": info.listener
        }))
        .into_response(),
        Ok(None) => axum::Json(json!({"code": 200, "message": "Token invalid.", "valid": false}))
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Reading a listener's listens back: open like the pages for a listener everyone may see,
/// unless `server.require_login`; otherwise only with a token of that listener.
fn may_read(app: &App, headers: &HeaderMap, listener: &str) -> Result<(), Response> {
    // Open like the pages only for a listener whose pages everyone may see; a household-only
    // or private listener's listens need their own token (API clients carry no session).
    let open_to_all = magpie_core::household::Household::load(app.data_dir())
        .is_ok_and(|h| h.visibility(listener) == magpie_core::household::Visibility::Everyone);
    if !app.auth().require_login && open_to_all {
        return Ok(());
    }
    let token = authorize(app, headers)?;
    if token.listener == listener {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "This token may not read this user's listens.",
        ))
    }
}

/// ListenBrainz's 404 for a user (listener) that does not exist.
async fn known_user(app: &App, name: &str) -> Result<(), Response> {
    let user = name.to_string();
    match app
        .scrobbling()
        .read(move |s| s.listener_exists(&user))
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(error(
            StatusCode::NOT_FOUND,
            format!("Cannot find user: {name}"),
        )),
        Err(e) => Err(e.into_response()),
    }
}

/// A refusal from the layers in front of the handlers (a body over the limit) in
/// ListenBrainz's shape, so clients can show its message.
pub fn refusal(status: StatusCode) -> Response {
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "Payload too large. Payload must be less than {} bytes.",
            listenbrainz::MAX_PAYLOAD_SIZE
        )
    } else {
        status
            .canonical_reason()
            .unwrap_or("Request refused")
            .to_string()
    };
    error(status, message)
}

/// `GET /1/user/{name}/playing-now`.
pub async fn playing_now(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = may_read(&app, &headers, &name) {
        return r;
    }
    if let Err(r) = known_user(&app, &name).await {
        return r;
    }
    let listens: Vec<Value> = app
        .scrobbling()
        .now_playing
        .get(&name, chrono::Utc::now())
        .map(|p| {
            let mut info = serde_json::Map::new();
            if let Some(ms) = p.duration_ms {
                info.insert("duration_ms".into(), ms.into());
            }
            if let Some(c) = &p.client {
                info.insert("submission_client".into(), c.clone().into());
            }
            json!({
                "playing_now": true,
                "track_metadata": {
                    "artist_name": p.artist,
                    "track_name": p.track,
                    "release_name": p.album,
                    "additional_info": info,
                }
            })
        })
        .into_iter()
        .collect();
    axum::Json(json!({"payload": {
        "count": listens.len(),
        "user_id": name,
        "playing_now": true,
        "listens": listens,
    }}))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ListensQuery {
    min_ts: Option<String>,
    max_ts: Option<String>,
    count: Option<String>,
}

fn int_arg(name: &str, value: Option<&str>) -> Result<Option<i64>, Response> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("Invalid {name} argument: {v}"),
            )
        }),
    }
}

/// `GET /1/user/{name}/listens?min_ts=&max_ts=&count=`: newest first.
pub async fn listens(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListensQuery>,
) -> Response {
    if let Err(r) = may_read(&app, &headers, &name) {
        return r;
    }
    if let Err(r) = known_user(&app, &name).await {
        return r;
    }
    let args = (|| {
        let min_ts = int_arg("min_ts", q.min_ts.as_deref())?;
        let max_ts = int_arg("max_ts", q.max_ts.as_deref())?;
        let count = int_arg("count", q.count.as_deref())?;
        if min_ts.is_some() && max_ts.is_some() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "You may only specify max_ts or min_ts, not both.",
            ));
        }
        Ok((min_ts, max_ts, count))
    })();
    let (min_ts, max_ts, count) = match args {
        Ok(a) => a,
        Err(r) => return r,
    };
    let count = count.map_or(DEFAULT_ITEMS_PER_GET, |c| {
        usize::try_from(c).unwrap_or(0).min(MAX_ITEMS_PER_GET)
    });
    let user = name.clone();
    let read = app
        .scrobbling()
        .read(move |s| {
            let rows = s.recent(&user, min_ts, max_ts, count)?;
            let latest = s.latest(&user)?;
            Ok((rows, latest))
        })
        .await;
    let (rows, latest) = match read {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let listens: Vec<Value> = rows
        .into_iter()
        .map(|l| {
            let mut info = serde_json::Map::new();
            if let Some(v) = l.recording_mbid {
                info.insert("recording_mbid".into(), v.into());
            }
            if let Some(v) = l.release_mbid {
                info.insert("release_mbid".into(), v.into());
            }
            if let Some(v) = l.artist_mbid {
                info.insert("artist_mbids".into(), json!([v]));
            }
            if let Some(v) = l.spotify_track_uri {
                let id = v.rsplit(':').next().unwrap_or(&v).to_string();
                info.insert(
                    "spotify_id".into(),
                    format!("https://open.spotify.com/track/{id}").into(),
                );
            }
            if let Some(v) = l.duration_ms {
                info.insert("duration_ms".into(), v.into());
            }
            if let Some(v) = l.media_player {
                info.insert("media_player".into(), v.into());
            }
            info.insert("source".into(), l.source_kind.into());
            json!({
                "listened_at": l.listened_at,
                "user_name": name,
                "track_metadata": {
                    "artist_name": l.artist_name,
                    "track_name": l.track_name,
                    "release_name": l.release_name,
                    "additional_info": info,
                }
            })
        })
        .collect();
    axum::Json(json!({"payload": {
        "user_id": name,
        "count": listens.len(),
        "listens": listens,
        "latest_listen_ts": latest,
    }}))
    .into_response()
}
