//! The router layers of the trust boundary. Handlers behind [`require_session`] never check a
//! login or a CSRF token themselves: a request reaches them only with both.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use std::sync::Arc;

use magpie_core::config::MetricsAccess;
use magpie_core::household::{Household, Viewer};

use super::sessions::same_secret;
use crate::scope::{self, Listener, Scope};
use crate::{App, WebError};

/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a form sends it in.
pub const CSRF_FIELD: &str = "csrf";

/// Admin pages and every state-changing route: the admin's live session is required
/// (browsers are sent to the login, other clients get 401; a listener's own session gets 403),
/// and for anything but GET and HEAD the session's CSRF token too. The session is handed to
/// the handler as an extension.
pub async fn require_session(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    session_with_csrf(app, jar, request, next, true).await
}

/// A listener's own settings: any live session (the admin's or a listener's), with its CSRF
/// token for anything but GET and HEAD.
pub async fn require_member(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    session_with_csrf(app, jar, request, next, false).await
}

async fn session_with_csrf(
    app: App,
    jar: CookieJar,
    request: Request,
    next: Next,
    admin_only: bool,
) -> Response {
    let Some(session) = app.auth().session(&jar) else {
        return login_required(&request);
    };
    if admin_only && !session.is_admin() {
        tracing::warn!(
            path = request.uri().path(),
            who = ?session.viewer,
            "a listener's session was refused an admin route"
        );
        return WebError::Forbidden("this needs the admin's login".into()).into_response();
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    let mut request = request;
    if !safe {
        let (given, rebuilt) = match csrf_of(request, app.max_body()).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        request = rebuilt;
        if !given.is_some_and(|g| same_secret(&g, &session.csrf)) {
            tracing::warn!(
                path = request.uri().path(),
                "a request without its session's CSRF token was refused"
            );
            return WebError::Forbidden(
                "this form is stale or did not come from magpie: reload the page and try again"
                    .into(),
            )
            .into_response();
        }
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// Operational pages: with `server.require_login`, a live session is required.
pub async fn require_login_if_set(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    if app.auth().require_login && app.auth().session(&jar).is_none() {
        return login_required(&request);
    }
    next.run(request).await
}

/// Who is asking (the session's viewer, or nobody) and who may see whom; a visitor without a
/// session is sent to the login with `server.require_login`.
fn viewer_and_household(
    app: &App,
    jar: &CookieJar,
    request: &Request,
) -> Result<(Viewer, Household), Response> {
    let viewer = app
        .auth()
        .session(jar)
        .map_or(Viewer::Anonymous, |s| s.viewer);
    if app.auth().require_login && viewer == Viewer::Anonymous {
        return Err(login_required(request));
    }
    let household = Household::load(app.data_dir())
        .map_err(|e| WebError::Internal(e.to_string()).into_response())?;
    Ok((viewer, household))
}

/// Listening pages: with `server.require_login`, a live session; then whose listening the page
/// shows ([`Scope`]): the listener the request names (`?listener=`), `everyone` the viewer may
/// see, or by default the viewer's own listener or the configured one. A listener the viewer
/// may not see is answered like one that does not exist.
pub async fn listener_scope(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let (viewer, household) = match viewer_and_household(&app, &jar, &request) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let (all, default) = app.listeners();
    let any_listener = !all.is_empty();
    let choices: Vec<Listener> = all
        .into_iter()
        .filter(|l| household.may_see(&viewer, &l.name))
        .collect();
    let asked = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == scope::PARAM)
            .map(|(_, v)| v.trim().to_string())
    });
    let pick = |name: &str| choices.iter().find(|l| l.name == name).cloned();
    let (listeners, everyone, named) = match asked.as_deref() {
        Some(scope::EVERYONE) => (choices.clone(), true, true),
        Some(name) if !name.is_empty() => match pick(name) {
            Some(one) => (vec![one], false, true),
            None => {
                return WebError::NotFound(format!(
                    "there is no listener `{name}` whose pages you may see"
                ))
                .into_response();
            }
        },
        _ => {
            let own = match &viewer {
                Viewer::Listener(me) => pick(me),
                _ => None,
            };
            let first = own
                .or_else(|| pick(&default.name))
                .or_else(|| choices.first().cloned());
            (first.into_iter().collect(), false, false)
        }
    };
    if listeners.is_empty() {
        if viewer == Viewer::Anonymous && any_listener {
            return login_required(&request);
        }
        return WebError::NotFound("there are no listeners whose pages you may see".into())
            .into_response();
    }
    let scope = Scope {
        listeners,
        everyone,
        named,
        choices,
        viewer,
    };
    let mut request = request;
    request.extensions_mut().insert(Arc::new(scope));
    next.run(request).await
}

/// Pages over every listener's data at once (saved questions and dashboards, which run any SQL
/// over the marts; the enrichment queue): only for a viewer who may see every listener.
pub async fn whole_household(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let (viewer, household) = match viewer_and_household(&app, &jar, &request) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let (all, _) = app.listeners();
    if let Some(hidden) = all.iter().find(|l| !household.may_see(&viewer, &l.name)) {
        tracing::info!(path = request.uri().path(), listener = %hidden.name, "a page over every listener was refused");
        if viewer == Viewer::Anonymous {
            return login_required(&request);
        }
        return WebError::Forbidden(
            "this page reads every listener's data, and some listeners keep theirs private".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Every route: a state-changing request must come from magpie's own pages. Browsers send
/// `Origin` (and `Sec-Fetch-Site`) with every POST; one naming another site is refused, so a
/// page elsewhere cannot post to magpie at all, logged in or not (the login and first-run
/// forms included). Clients that send neither (curl, scrobblers) are left to the other checks.
pub async fn same_origin(State(app): State<App>, request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && !from_own_origin(request.headers(), app.auth().public_origin.as_deref()) {
        tracing::warn!(
            path = request.uri().path(),
            origin = ?request.headers().get(header::ORIGIN),
            "a cross-site request was refused"
        );
        return WebError::Forbidden("requests from other sites are not accepted".into())
            .into_response();
    }
    next.run(request).await
}

/// Whether the request's `Sec-Fetch-Site` / `Origin` allow it: same-origin, absent, or this
/// server's own origin (its `Host`, or `public_url`).
fn from_own_origin(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    // Browsers send Sec-Fetch-Site with every request and no page can forge it: when it is
    // there it decides (a reverse proxy that rewrites `Host` does not confuse it).
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if public_origin.is_some_and(|p| p.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // `Origin: null` (sandboxed frames, some redirects) has no host and is refused here.
    url::Url::parse(origin).is_ok_and(|o| {
        let port = o.port().map_or(String::new(), |p| format!(":{p}"));
        o.host_str()
            .is_some_and(|h| format!("{h}{port}").eq_ignore_ascii_case(host))
    })
}

/// `/metrics`: open, the admin session, or a bearer token, per `server.metrics`.
pub async fn metrics_access(
    State(app): State<App>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let auth = app.auth();
    let allowed = match auth.metrics {
        MetricsAccess::Open => true,
        MetricsAccess::Login => auth.session(&jar).is_some_and(|s| s.is_admin()),
        MetricsAccess::Token => {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match (given, &auth.metrics_token) {
                (Some(given), Some(token)) => same_secret(given.trim(), token.expose()),
                _ => false,
            }
        }
    };
    if allowed {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "metrics need authorisation (server.metrics)\n",
    )
        .into_response();
    if auth.metrics == MetricsAccess::Token {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"magpie metrics\""),
        );
    }
    response
}

/// No session: browsers go to the login page (coming back here after), other clients get 401.
/// `/api/auth/` is a page despite its path (Last.fm's, where a person approves a desktop app).
fn login_required(request: &Request) -> Response {
    let path = request.uri().path();
    let wants_json = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("format=json"))
        || (path.starts_with("/api/") && !path.starts_with("/api/auth"))
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("application/json"));
    if wants_json {
        let mut response = WebError::Unauthorized("log in first".into()).into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    // After a login, a browser goes back to the page it asked for; to a form's page, not to
    // the form's action (which it cannot GET).
    let target = if request.method() == Method::GET {
        request
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string())
    } else {
        request
            .headers()
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .map_or("/".to_string(), |u| u.path().to_string())
    };
    login_first(&target)
}

/// A redirect to the login page, which comes back to `path` after.
pub fn login_first(path: &str) -> Response {
    let next: String =
        url::form_urlencoded::byte_serialize(super::login::safe_next(Some(path)).as_bytes())
            .collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// The CSRF token of a request (header, or the `csrf` field of a urlencoded form body), and
/// the request rebuilt with its body for the handler.
async fn csrf_of(request: Request, limit: usize) -> Result<(Option<String>, Request), Response> {
    if let Some(token) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        let token = token.to_string();
        return Ok((Some(token), request));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, request));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        WebError::PayloadTooLarge(format!("a form may have at most {limit} bytes")).into_response()
    })?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins_are_compared_with_the_host_and_public_url() {
        let host = ("host", "nas.local:8080");
        assert!(from_own_origin(&headers(&[host]), None), "no Origin: curl");
        assert!(from_own_origin(
            &headers(&[host, ("origin", "http://nas.local:8080")]),
            None
        ));
        assert!(!from_own_origin(
            &headers(&[host, ("origin", "https://evil.example")]),
            None
        ));
        assert!(!from_own_origin(
            &headers(&[host, ("origin", "null")]),
            None
        ));
        assert!(!from_own_origin(
            &headers(&[host, ("origin", "http://nas.local:8081")]),
            None
        ));
        assert!(!from_own_origin(
            &headers(&[host, ("sec-fetch-site", "cross-site")]),
            None
        ));
        assert!(from_own_origin(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://music.example.org")
            ]),
            Some("https://music.example.org")
        ));
        assert!(from_own_origin(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://music.example.org"),
                ("sec-fetch-site", "same-origin")
            ]),
            None
        ));
        assert!(!from_own_origin(
            &headers(&[
                host,
                ("origin", "http://nas.local:8080"),
                ("sec-fetch-site", "same-site")
            ]),
            None
        ));
    }
}
