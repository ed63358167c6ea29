//! The login page, logging in and out, and first-run setup of the admin password.
//!
//! Checking or hashing a password runs argon2 (~19 MiB and tens of milliseconds each) on
//! tokio's blocking threads, one at a time, so logins neither stall the pages nor add up in
//! memory. Failures are throttled per client address ([`super::throttle`]).

use std::net::IpAddr;
use std::time::Duration;

use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use magpie_core::household::{self, Viewer};
use serde::{Deserialize, Serialize};

use super::client_ip::client_ip;
use super::sessions;
use crate::pages::Frame;
use crate::{App, WebError};

/// Where a login goes when no (usable) `next` is given.
const HOME: &str = "/admin/spotify";

/// `next` as a path on this server, or [`HOME`]. It is parsed as a relative reference
/// against this server: anything that would leave it (`//host`, `/\host`, a scheme) or that
/// holds control or whitespace characters (browsers drop a tab or newline, so `/\t/evil.example`
/// becomes `//evil.example`) is refused.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next else {
        return HOME.into();
    };
    if !next.starts_with('/')
        || next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return HOME.into();
    }
    let base = url::Url::parse("http://magpie.invalid/").expect("a valid base");
    match base.join(next) {
        Ok(url) if url.origin() == base.origin() && !next.starts_with("//") => {
            let mut local = url.path().to_string();
            if let Some(q) = url.query() {
                local.push('?');
                local.push_str(q);
            }
            local
        }
        _ => HOME.into(),
    }
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
    crate::admin::page(
        app,
        status,
        &Frame::plain(app, "Log in", "admin", "/login"),
        &data,
        "login.html",
    )
}

pub async fn login_form(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    login_page(&app, StatusCode::OK, q.next.as_deref(), None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// A listener's name for their own login; empty or absent for the admin.
    #[serde(default)]
    name: String,
    password: String,
    next: Option<String>,
}

/// The client's address for throttling.
pub async fn with_client_ip(
    State(app): State<App>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let ip = client_ip(&request, &app.auth().trusted_proxies);
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// The client address of a request, as [`with_client_ip`] found it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub async fn login(
    State(app): State<App>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(wait) = app.auth().throttle.check(ip) {
        tracing::warn!(client = %ip, "login refused: too many failed attempts from this address");
        let error = format!(
            "Too many wrong passwords from this address: try again in {} minutes.",
            wait.as_secs() / 60 + 1
        );
        return login_page(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            form.next.as_deref(),
            Some(error),
        );
    }
    let dir = app.data_dir().to_path_buf();
    let password = form.password;
    let name = form.name.trim().to_string();
    let viewer = if name.is_empty() {
        Viewer::Admin
    } else {
        Viewer::Listener(name.clone())
    };
    let checked = hashing(&app, move || {
        if name.is_empty() {
            magpie_core::secrets::verify_admin_password(&dir, &password).map_err(|e| e.to_string())
        } else {
            household::verify(&dir, &name, &password).map_err(|e| e.to_string())
        }
    })
    .await;
    match checked {
        Ok(Ok(true)) => {
            app.auth().throttle.succeeded(ip);
            tracing::info!(client = %ip, who = ?viewer, "logged in");
            // A listener goes to their own pages unless they came from somewhere.
            let next = match (&viewer, form.next.as_deref()) {
                (Viewer::Listener(me), None | Some("" | HOME)) => Some(format!(
                    "/?listener={}",
                    url::form_urlencoded::byte_serialize(me.as_bytes()).collect::<String>()
                )),
                (_, next) => next.map(str::to_string),
            };
            start_session(&app, jar, viewer, next.as_deref())
        }
        Ok(Ok(false)) => {
            app.auth().throttle.failed(ip);
            // A failed attempt costs time, which slows guessing further.
            tokio::time::sleep(Duration::from_millis(300)).await;
            tracing::warn!(client = %ip, who = ?viewer, "failed login");
            login_page(
                &app,
                StatusCode::UNAUTHORIZED,
                form.next.as_deref(),
                Some("Wrong name or password.".into()),
            )
        }
        Ok(Err(e)) => crate::render::error_response(
            app.templates(),
            crate::render::Format::Html,
            WebError::Internal(e),
        ),
        Err(e) => e.into_response(),
    }
}

/// Run a password check or hash on a blocking thread, one at a time.
pub(crate) async fn hashing<T: Send + 'static>(
    app: &App,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WebError> {
    let permit = std::sync::Arc::clone(&app.auth().hashing)
        .acquire_owned()
        .await
        .map_err(|_| WebError::Unavailable("shutting down".into()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| WebError::Internal(format!("password check failed: {e}")))
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    password: String,
    confirm: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

/// First run: set the admin password, with the setup code magpie printed at start, then log
/// in. Only while no password is set; of two at once, one wins.
pub async fn setup(
    State(app): State<App>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    jar: CookieJar,
    Form(form): Form<SetupForm>,
) -> Response {
    let next = form.next.clone();
    let refuse =
        |status: StatusCode, error: String| login_page(&app, status, next.as_deref(), Some(error));
    if magpie_core::secrets::admin_password_set(app.data_dir()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "An admin password is set already: log in with it (change it with `magpie admin password`).".into(),
        );
    }
    if let Err(wait) = app.auth().throttle.check(ip) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many wrong setup codes from this address: try again in {} minutes.",
                wait.as_secs() / 60 + 1
            ),
        );
    }
    if !app.auth().setup.matches(&form.code) {
        app.auth().throttle.failed(ip);
        tracing::warn!(client = %ip, "first-run setup refused: wrong setup code");
        return refuse(
            StatusCode::FORBIDDEN,
            "That is not the setup code. magpie printed it to its log and terminal when it started \
             (`docker logs magpie` shows it); or set the password with `magpie admin password`."
                .into(),
        );
    }
    if form.password != form.confirm {
        return refuse(StatusCode::BAD_REQUEST, "The two passwords differ.".into());
    }
    let dir = app.data_dir().to_path_buf();
    let password = form.password;
    let created = hashing(&app, move || {
        magpie_core::secrets::create_admin_password(&dir, &password)
    })
    .await;
    match created {
        Ok(Ok(())) => {
            app.auth().setup.spend();
            app.auth().throttle.succeeded(ip);
            tracing::info!(client = %ip, "admin password set from the first-run page");
            start_session(&app, jar, Viewer::Admin, form.next.as_deref())
        }
        Ok(Err(magpie_core::secrets::SecretsError::AlreadySet)) => refuse(
            StatusCode::FORBIDDEN,
            "An admin password was set a moment ago: log in with it.".into(),
        ),
        Ok(Err(e)) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => e.into_response(),
    }
}

/// Open a session for `viewer` and go to `next`.
fn start_session(app: &App, jar: CookieJar, viewer: Viewer, next: Option<&str>) -> Response {
    let id = app.auth().sessions.open(viewer);
    (
        jar.add(sessions::cookie(id, app.auth().https)),
        Redirect::to(&safe_next(next)),
    )
        .into_response()
}

/// `POST /logout` (behind the session layer, with its CSRF token).
pub async fn logout(State(app): State<App>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(sessions::COOKIE) {
        app.auth().sessions.close(c.value());
    }
    (jar.remove(sessions::removal()), Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/flows")), "/flows");
        assert_eq!(
            safe_next(Some("/top/artists?range=all")),
            "/top/artists?range=all"
        );
        for evil in [
            "//evil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
            "/\u{0}/x",
            "",
        ] {
            let got = safe_next(Some(evil));
            assert!(
                got == HOME || (!got.starts_with("//") && got.starts_with('/')),
                "{evil:?} gave {got:?}"
            );
            let url = url::Url::parse("http://magpie.invalid/")
                .unwrap()
                .join(&got)
                .unwrap();
            assert_eq!(
                url.host_str(),
                Some("magpie.invalid"),
                "{evil:?} gave {got:?}"
            );
        }
        assert_eq!(safe_next(Some("/\t/evil.example")), HOME);
        assert_eq!(safe_next(None), HOME);
    }
}
