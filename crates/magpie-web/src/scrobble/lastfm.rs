//! Last.fm's scrobbling API at `/2.0/` (what Libre.fm / GNU FM-style clients expect):
//! `auth.getToken` + `auth.getSession` (the desktop flow, approved by the admin at
//! `/api/auth/`), `auth.getMobileSession`, `track.scrobble` and `track.updateNowPlaying`. Every
//! call is checked in one place ([`call`]): a known API key, a valid `api_sig`, and for the
//! track methods a live session key. Answers are Last.fm's XML, or JSON with `format=json`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use magpie_music::event::SourceFormat;
use magpie_music::submit::lastfm::{self, ApiError, ErrorCode, Params, Scrobble};
use magpie_music::submit::tokens::TokenInfo;
use serde_json::{Value, json};

use crate::App;

/// An answer in either format: XML elements under `<lfm status="ok">`, and the JSON object.
struct Answer {
    xml: String,
    json: Value,
}

/// Escape text for XML content and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn respond(json_wanted: bool, status: StatusCode, xml_body: &str, json: &Value) -> Response {
    if json_wanted {
        return (status, axum::Json(json)).into_response();
    }
    let lfm_status = if status.is_success() { "ok" } else { "failed" };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lfm status=\"{lfm_status}\">\n{xml_body}</lfm>\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn failure(json_wanted: bool, e: &ApiError) -> Response {
    let code = e.code as u8;
    let status = match e.code {
        ErrorCode::InvalidParameters | ErrorCode::InvalidMethod | ErrorCode::InvalidService => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::OperationFailed | ErrorCode::ServiceUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::FORBIDDEN,
    };
    respond(
        json_wanted,
        status,
        &format!("<error code=\"{code}\">{}</error>\n", esc(&e.message)),
        &json!({"error": code, "message": e.message}),
    )
}

/// A refusal from the layers in front of the handler (a body over the limit) as a Last.fm
/// error, so clients can read it.
pub fn refusal(status: StatusCode) -> Response {
    let mut response = failure(
        false,
        &ApiError::new(
            ErrorCode::InvalidParameters,
            format!(
                "Invalid parameters - {}",
                status.canonical_reason().unwrap_or("request refused")
            ),
        ),
    );
    *response.status_mut() = status;
    response
}

/// `GET` or `POST /2.0/`: the parameters from the query string and the form body together
/// (pylast sends `username` in the query and signs it with the rest).
pub async fn endpoint(State(app): State<App>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let pairs = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .chain(url::form_urlencoded::parse(&body))
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    let params = Params::from_pairs(pairs);
    let json_wanted = params.wants_json();
    match call(&app, &params).await {
        Ok(answer) => respond(json_wanted, StatusCode::OK, &answer.xml, &answer.json),
        Err(e) => {
            tracing::info!(
                code = e.code as u8,
                method = params.get("method").unwrap_or(""),
                "a Last.fm API call was refused: {}",
                e.message
            );
            failure(json_wanted, &e)
        }
    }
}

fn err(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

/// Check the API key and signature, then run the method.
async fn call(app: &App, params: &Params) -> Result<Answer, ApiError> {
    let method = params
        .get("method")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    const METHODS: [&str; 5] = [
        "auth.gettoken",
        "auth.getsession",
        "auth.getmobilesession",
        "track.scrobble",
        "track.updatenowplaying",
    ];
    if !METHODS.contains(&method.as_str()) {
        return Err(err(
            ErrorCode::InvalidMethod,
            "Invalid Method - No method with that name in this package",
        ));
    }
    let scrobbling = app.scrobbling();
    let unavailable = |e: magpie_music::submit::tokens::TokenError| {
        tracing::error!(error = %e, "cannot read the listen tokens");
        err(
            ErrorCode::ServiceUnavailable,
            "Service Temporarily Unavailable",
        )
    };
    let api = scrobbling.tokens.api_key().map_err(unavailable)?;
    if params.get("api_key") != Some(api.key.as_str()) {
        return Err(err(
            ErrorCode::InvalidApiKey,
            "Invalid API key - You must be granted a valid key by last.fm",
        ));
    }
    if !lastfm::signed_with(params, &api.secret) {
        return Err(err(
            ErrorCode::InvalidSignature,
            "Invalid method signature supplied",
        ));
    }
    match method.as_str() {
        "auth.gettoken" => {
            let token = scrobbling.new_request();
            Ok(Answer {
                xml: format!("<token>{token}</token>\n"),
                json: json!({ "token": token }),
            })
        }
        "auth.getsession" => {
            let request = params.required("token")?;
            let listener = scrobbling.take_approved(request).map_err(|waiting| {
                if waiting {
                    err(
                        ErrorCode::UnauthorizedToken,
                        "Unauthorized Token - This token has not been authorized",
                    )
                } else {
                    err(
                        ErrorCode::TokenExpired,
                        "Token Expired - This token has expired",
                    )
                }
            })?;
            let made = scrobbling
                .tokens
                .create(&listener, Some("Last.fm desktop authorization"))
                .map_err(unavailable)?;
            session_answer(app, &made.info)
        }
        "auth.getmobilesession" => {
            let username = params.required("username")?;
            let token = match (params.get("password"), params.get("authToken")) {
                (Some(password), _) => scrobbling
                    .tokens
                    .verify(password)
                    .map_err(unavailable)?
                    .filter(|t| t.listener.eq_ignore_ascii_case(username)),
                (None, Some(auth)) => scrobbling
                    .tokens
                    .verify_auth_token(username, auth)
                    .map_err(unavailable)?,
                (None, None) => {
                    return Err(params.required("password").unwrap_err());
                }
            };
            let token = token.ok_or_else(|| {
                err(
                    ErrorCode::AuthenticationFailed,
                    "Authentication Failed - Invalid username or password",
                )
            })?;
            session_answer(app, &token)
        }
        _ => {
            let sk = params.required("sk")?;
            let token = scrobbling
                .tokens
                .session(sk)
                .map_err(unavailable)?
                .ok_or_else(|| {
                    err(
                        ErrorCode::InvalidSessionKey,
                        "Invalid session key - Please re-authenticate",
                    )
                })?;
            if method == "track.scrobble" {
                scrobble(app, params, &token).await
            } else {
                now_playing(app, params, &token)
            }
        }
    }
}

/// A new session key for `token`.
fn session_answer(app: &App, token: &TokenInfo) -> Result<Answer, ApiError> {
    let key = app
        .scrobbling()
        .tokens
        .open_session(&token.id)
        .map_err(|e| err(ErrorCode::OperationFailed, &e.to_string()))?;
    tracing::info!(token = %token.id, listener = %token.listener, "a Last.fm session was opened");
    Ok(Answer {
        xml: format!(
            "<session>\n<name>{}</name>\n<key>{key}</key>\n<subscriber>0</subscriber>\n</session>\n",
            esc(&token.listener)
        ),
        json: json!({"session": {"name": token.listener, "key": key, "subscriber": 0}}),
    })
}

fn corrected_xml(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("<{name} corrected=\"0\">{}</{name}>\n", esc(v)),
        None => format!("<{name} corrected=\"0\"></{name}>\n"),
    }
}

fn corrected_json(value: Option<&str>) -> Value {
    json!({"corrected": "0", "#text": value.unwrap_or("")})
}

/// `track.scrobble`: the accepted ones stored in one transaction, the others reported.
async fn scrobble(app: &App, params: &Params, token: &TokenInfo) -> Result<Answer, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let scrobbles: Vec<Scrobble> = lastfm::scrobbles(params, now)?;
    let accepted: Vec<_> = scrobbles
        .iter()
        .filter_map(|s| s.outcome.as_ref().ok().cloned())
        .collect();
    let count = accepted.len();
    if !accepted.is_empty() {
        let body: String = params
            .to_pairs()
            .into_iter()
            .filter(|(k, _)| k != "sk" && k != "api_sig")
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        app.scrobbling()
            .submit(
                token,
                SourceFormat::LastFmScrobble,
                accepted,
                Some(client_name(params)),
                body.into_bytes(),
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, token = %token.id, "scrobbles could not be stored");
                err(
                    ErrorCode::ServiceUnavailable,
                    "Service Temporarily Unavailable - please try again",
                )
            })?;
    }
    let ignored = scrobbles.len() - count;
    let mut xml = format!("<scrobbles accepted=\"{count}\" ignored=\"{ignored}\">\n");
    let mut items = Vec::new();
    for s in &scrobbles {
        let (code, message) = match s.outcome {
            Ok(_) => (0, ""),
            Err(why) => (why as u8, why.message()),
        };
        let ts = s.timestamp.map(|t| t.to_string()).unwrap_or_default();
        xml.push_str("<scrobble>\n");
        xml.push_str(&corrected_xml("track", Some(&s.track)));
        xml.push_str(&corrected_xml("artist", Some(&s.artist)));
        xml.push_str(&corrected_xml("album", s.album.as_deref()));
        xml.push_str(&corrected_xml("albumArtist", s.album_artist.as_deref()));
        xml.push_str(&format!("<timestamp>{ts}</timestamp>\n"));
        xml.push_str(&format!(
            "<ignoredMessage code=\"{code}\">{}</ignoredMessage>\n</scrobble>\n",
            esc(message)
        ));
        items.push(json!({
            "track": corrected_json(Some(&s.track)),
            "artist": corrected_json(Some(&s.artist)),
            "album": corrected_json(s.album.as_deref()),
            "albumArtist": corrected_json(s.album_artist.as_deref()),
            "timestamp": ts,
            "ignoredMessage": {"code": code.to_string(), "#text": message},
        }));
    }
    xml.push_str("</scrobbles>\n");
    // Last.fm answers one scrobble as an object, several as a list.
    let scrobble = if items.len() == 1 {
        items.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    };
    Ok(Answer {
        xml,
        json: json!({"scrobbles": {
            "scrobble": scrobble,
            "@attr": {"accepted": count, "ignored": ignored},
        }}),
    })
}

/// `track.updateNowPlaying`.
fn now_playing(app: &App, params: &Params, token: &TokenInfo) -> Result<Answer, ApiError> {
    let event = lastfm::now_playing(params)?;
    app.scrobbling()
        .playing(token, &event, Some(client_name(params)));
    let (artist, track) = (event.artist_name.as_deref(), event.track_name.as_deref());
    let album_artist = params.get("albumArtist");
    let xml = format!(
        "<nowplaying>\n{}{}{}{}<ignoredMessage code=\"0\"></ignoredMessage>\n</nowplaying>\n",
        corrected_xml("track", track),
        corrected_xml("artist", artist),
        corrected_xml("album", event.album_name.as_deref()),
        corrected_xml("albumArtist", album_artist),
    );
    Ok(Answer {
        xml,
        json: json!({"nowplaying": {
            "track": corrected_json(track),
            "artist": corrected_json(artist),
            "album": corrected_json(event.album_name.as_deref()),
            "albumArtist": corrected_json(album_artist),
            "ignoredMessage": {"code": "0", "#text": ""},
        }}),
    })
}

/// How the calling program is named in the submission's provenance: Last.fm calls carry no
/// client name, so the API key (and the user agent is not kept).
fn client_name(params: &Params) -> String {
    let key = params.get("api_key").unwrap_or("");
    format!("last.fm api ({})", &key[..key.len().min(8)])
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn xml_text_is_escaped_and_cannot_break_the_document() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
