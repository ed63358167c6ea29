//! Admin actions behind a login: the password is magpie's admin password (an argon2 hash in
//! `DATA_DIR/secrets`, set with `magpie admin password`); a login gives an HttpOnly,
//! SameSite=Strict session cookie. The admin pages connect Spotify accounts through a
//! [`Connector`] the running binary provides (the paste-back flow, as on the command line).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use crate::pages::Frame;
use crate::range::DataBounds;
use crate::render::{self, Format, Rendered, Table};
use crate::{App, WebError};

const COOKIE: &str = "magpie_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A future the connector returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A listener's Spotify connection as the admin page shows it (never a token).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedListener {
    pub name: String,
    pub status: String,
    pub authorisation_ends: String,
}

/// Connects Spotify accounts; implemented by the binary over magpie-music.
pub trait Connector: Send + Sync {
    /// The redirect URI to register in the Spotify dashboard.
    fn redirect_uri(&self) -> String;
    fn listeners(&self) -> Vec<ConnectedListener>;
    /// Begin connecting `listener`: the authorize link.
    fn start(&self, listener: &str) -> Result<String, String>;
    /// Finish with the pasted redirect URL: a success message.
    fn finish<'a>(
        &'a self,
        listener: &'a str,
        pasted: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
    /// Finish a direct redirect to magpie's own `/callback` (when the redirect URI points at
    /// this server): the attempt is found by its unguessable `state`.
    fn finish_redirect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// Logged-in sessions (in memory: a restart logs everyone out).
#[derive(Default)]
pub struct Sessions {
    /// Session id -> (opened, its CSRF token).
    live: Mutex<HashMap<String, (Instant, String)>>,
    /// Failed logins, for the rate limit.
    failures: Mutex<Vec<Instant>>,
}

/// Failed logins allowed per [`LOGIN_WINDOW`] before the login refuses to check passwords.
const MAX_FAILED_LOGINS: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Sessions {
    fn open(&self) -> String {
        let id = hex_token();
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, (at, _)| at.elapsed() < SESSION_TTL);
            live.insert(id.clone(), (Instant::now(), hex_token()));
        }
        id
    }

    fn valid(&self, id: &str) -> bool {
        self.live.lock().is_ok_and(|live| {
            live.get(id)
                .is_some_and(|(at, _)| at.elapsed() < SESSION_TTL)
        })
    }

    /// The CSRF token of a live session.
    fn csrf(&self, id: &str) -> Option<String> {
        let live = self.live.lock().ok()?;
        live.get(id)
            .filter(|(at, _)| at.elapsed() < SESSION_TTL)
            .map(|(_, token)| token.clone())
    }

    /// Whether a login may be tried now; if not, how long until it may.
    fn login_allowed(&self) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        failures.retain(|at| at.elapsed() < LOGIN_WINDOW);
        if failures.len() >= MAX_FAILED_LOGINS {
            let oldest = failures.iter().min().copied().unwrap_or_else(Instant::now);
            return Err(LOGIN_WINDOW.saturating_sub(oldest.elapsed()));
        }
        Ok(())
    }

    fn login_failed(&self) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(Instant::now());
        }
    }

    fn close(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
    }
}

fn hex_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The logged-in session's CSRF token (forms carry it as `?csrf=`).
pub(crate) fn csrf_token(app: &App, jar: &CookieJar) -> Option<String> {
    jar.get(COOKIE).and_then(|c| app.sessions().csrf(c.value()))
}

/// Every state-changing request (POST) but the login must carry the session's CSRF token as
/// `?csrf=`; without a session the handler sends the browser to the login.
pub(crate) async fn csrf_guard(
    State(app): State<App>,
    jar: CookieJar,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if request.method() != axum::http::Method::POST || path == "/login" || path == "/setup" {
        return next.run(request).await;
    }
    let Some(expected) = csrf_token(&app, &jar) else {
        return next.run(request).await;
    };
    let given = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
    });
    if given.as_deref() == Some(expected.as_str()) {
        next.run(request).await
    } else {
        tracing::warn!(
            path = request.uri().path(),
            "a form without its CSRF token was refused"
        );
        WebError::Forbidden(
            "this form is stale or did not come from magpie: reload the page and try again".into(),
        )
        .into_response()
    }
}

/// With `server.require_login`, every page but the login, health, metrics and assets needs
/// the admin session.
pub(crate) async fn login_guard(
    State(app): State<App>,
    jar: CookieJar,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let open = path == "/login"
        || path == "/setup"
        || path.starts_with("/health")
        || path == "/metrics"
        || path.starts_with("/assets/")
        // Spotify's redirect carries an unguessable state; SameSite=Strict drops the cookie on it.
        || path == "/callback";
    if !app.require_login() || open || logged_in(&app, &jar) {
        return next.run(request).await;
    }
    let wants_json = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("format=json"));
    if wants_json {
        return WebError::Forbidden("log in first (server.require_login is on)".into())
            .into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    login_first(&target)
}

pub(crate) fn logged_in(app: &App, jar: &CookieJar) -> bool {
    jar.get(COOKIE)
        .is_some_and(|c| app.sessions().valid(c.value()))
}

/// Only local paths, so a login cannot send the browser elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/admin/spotify".into(),
    }
}

fn frame(app: &App, title: &str, path: &str) -> Frame {
    Frame {
        title: title.into(),
        nav: "admin",
        listener: app.listener_name().to_string(),
        range: None,
        previous: None,
        bounds: DataBounds::default(),
        presets: Vec::new(),
        path: path.into(),
        keep: Vec::new(),
        qs: String::new(),
        alerts: app.alerts(),
    }
}

fn page<T: Serialize>(
    app: &App,
    status: StatusCode,
    frame: &Frame,
    data: &T,
    template: &'static str,
) -> Response {
    let rendered = crate::pages::context(frame, data).map(|data| Rendered {
        template,
        data,
        charts: Vec::new(),
        table: Table::default(),
        name: "admin".into(),
    });
    let mut response = render::respond(app.templates(), Format::Html, rendered);
    *response.status_mut() = status;
    response
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginPage {
    next: String,
    error: Option<String>,
    password_set: bool,
    min_length: usize,
}

/// The login page (or, before any password is set, the first-run form), with an error.
fn login_page(
    app: &App,
    status: StatusCode,
    next: Option<&str>,
    error: Option<String>,
) -> Response {
    let data = LoginPage {
        next: safe_next(next),
        error,
        password_set: magpie_core::secrets::admin_password_set(app.data_dir()),
        min_length: magpie_core::secrets::MIN_PASSWORD_LEN,
    };
    page(
        app,
        status,
        &frame(app, "Log in", "/login"),
        &data,
        "login.html",
    )
}

pub async fn login_form(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    login_page(&app, StatusCode::OK, q.next.as_deref(), None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(app): State<App>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(wait) = app.sessions().login_allowed() {
        tracing::warn!("admin login refused: too many failed attempts");
        let error = format!(
            "Too many wrong passwords: try again in {} minutes.",
            wait.as_secs() / 60 + 1
        );
        return login_page(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            form.next.as_deref(),
            Some(error),
        );
    }
    let ok = magpie_core::secrets::verify_admin_password(app.data_dir(), &form.password)
        .unwrap_or(false);
    if !ok {
        app.sessions().login_failed();
        // A failed attempt costs time, which slows guessing.
        tokio::time::sleep(Duration::from_millis(400)).await;
        tracing::warn!("failed admin login");
        let error = Some("Wrong password.".to_string());
        return login_page(&app, StatusCode::UNAUTHORIZED, form.next.as_deref(), error);
    }
    start_session(&app, jar, form.next.as_deref())
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    password: String,
    confirm: String,
    next: Option<String>,
}

/// First run: set the admin password from the login page (only while none is set), then log
/// in.
pub async fn setup(
    State(app): State<App>,
    jar: CookieJar,
    Form(form): Form<SetupForm>,
) -> Response {
    let refuse = |status: StatusCode, error: String| {
        login_page(&app, status, form.next.as_deref(), Some(error))
    };
    if magpie_core::secrets::admin_password_set(app.data_dir()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "An admin password is set already: log in with it (change it with `magpie admin password`).".into(),
        );
    }
    if form.password != form.confirm {
        return refuse(StatusCode::BAD_REQUEST, "The two passwords differ.".into());
    }
    if let Err(e) = magpie_core::secrets::set_admin_password(app.data_dir(), &form.password) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    tracing::info!("admin password set from the first-run page");
    start_session(&app, jar, form.next.as_deref())
}

/// Open a session (HttpOnly, SameSite=Strict cookie) and go to `next`.
fn start_session(app: &App, jar: CookieJar, next: Option<&str>) -> Response {
    let cookie = Cookie::build((COOKIE, app.sessions().open()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    (jar.add(cookie), Redirect::to(&safe_next(next))).into_response()
}

pub async fn logout(State(app): State<App>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(COOKIE) {
        app.sessions().close(c.value());
    }
    (
        jar.remove(Cookie::build(COOKIE).path("/")),
        Redirect::to("/"),
    )
        .into_response()
}

#[derive(Debug, Default, Serialize)]
struct SpotifyPage {
    available: bool,
    redirect_uri: String,
    listeners: Vec<ConnectedListener>,
    /// Set after "Connect": the link to open and the listener being connected.
    link: Option<String>,
    connecting: Option<String>,
    message: Option<String>,
    error: Option<String>,
    /// The session's CSRF token, for the forms.
    csrf: Option<String>,
}

fn spotify_page(app: &App, status: StatusCode, mut data: SpotifyPage) -> Response {
    if let Some(c) = app.connector() {
        data.available = true;
        data.redirect_uri = c.redirect_uri();
        data.listeners = c.listeners();
    }
    page(
        app,
        status,
        &frame(app, "Connect Spotify", "/admin/spotify"),
        &data,
        "admin_spotify.html",
    )
}

pub(crate) fn login_first(path: &str) -> Response {
    Redirect::to(&format!("/login?next={}", url_escape(path))).into_response()
}

fn url_escape(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn spotify(State(app): State<App>, jar: CookieJar) -> Response {
    if !logged_in(&app, &jar) {
        return login_first("/admin/spotify");
    }
    spotify_page(
        &app,
        StatusCode::OK,
        SpotifyPage {
            csrf: csrf_token(&app, &jar),
            ..Default::default()
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    listener: String,
}

fn valid_listener(name: &str) -> Result<(), WebError> {
    if (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(WebError::BadRequest(
            "a listener name has 1 to 40 letters, digits, - or _".into(),
        ))
    }
}

pub async fn spotify_start(
    State(app): State<App>,
    jar: CookieJar,
    Form(form): Form<StartForm>,
) -> Response {
    if !logged_in(&app, &jar) {
        return login_first("/admin/spotify");
    }
    let listener = form.listener.trim().to_string();
    let result = connector_for(&app, &listener).and_then(|c| c.start(&listener));
    match result {
        Ok(link) => spotify_page(
            &app,
            StatusCode::OK,
            SpotifyPage {
                link: Some(link),
                connecting: Some(listener),
                csrf: csrf_token(&app, &jar),
                ..Default::default()
            },
        ),
        Err(error) => refused(&app, error, csrf_token(&app, &jar)),
    }
}

/// The Spotify page after connecting.
fn connected(app: &App, message: String, csrf: Option<String>) -> Response {
    spotify_page(
        app,
        StatusCode::OK,
        SpotifyPage {
            message: Some(message),
            csrf,
            ..Default::default()
        },
    )
}

/// The Spotify page with an error, as a 400.
fn refused(app: &App, error: String, csrf: Option<String>) -> Response {
    spotify_page(
        app,
        StatusCode::BAD_REQUEST,
        SpotifyPage {
            error: Some(error),
            csrf,
            ..Default::default()
        },
    )
}

/// The connector, if this process has one and the listener name is valid.
fn connector_for<'a>(app: &'a App, listener: &str) -> Result<&'a dyn Connector, String> {
    valid_listener(listener).map_err(|e| e.to_string())?;
    app.connector()
        .ok_or_else(|| "Spotify is not available here".to_string())
}

#[derive(Debug, Deserialize)]
pub struct FinishForm {
    listener: String,
    pasted: String,
}

pub async fn spotify_finish(
    State(app): State<App>,
    jar: CookieJar,
    Form(form): Form<FinishForm>,
) -> Response {
    if !logged_in(&app, &jar) {
        return login_first("/admin/spotify");
    }
    let listener = form.listener.trim();
    let result = match connector_for(&app, listener) {
        Ok(connector) => connector.finish(listener, &form.pasted).await,
        Err(error) => Err(error),
    };
    let csrf = csrf_token(&app, &jar);
    match result {
        Ok(message) => connected(&app, message, csrf),
        Err(error) => refused(&app, error, csrf),
    }
}

/// `/callback`: Spotify's redirect straight to magpie (when `spotify.redirect_uri` points at
/// this server). No session is needed: the `state` ties it to an attempt an admin started, and
/// only this server holds that attempt's PKCE verifier.
pub async fn callback(State(app): State<App>, jar: CookieJar, uri: axum::http::Uri) -> Response {
    let csrf = csrf_token(&app, &jar);
    let Some(connector) = app.connector() else {
        return refused(&app, "Spotify is not available here".into(), csrf);
    };
    let url = format!("http://magpie{uri}");
    match connector.finish_redirect(&url).await {
        Ok(message) => connected(&app, message, csrf),
        Err(error) => refused(&app, error, csrf),
    }
}
