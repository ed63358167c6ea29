//! `/admin/shares` (behind the session layer): the public links, a form to make one for a
//! dashboard or question (with variables locked), and Revoke. A new link's URL is shown once:
//! only its hash is kept.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use magpie_questions::{ShareStore, ShareTarget};
use serde::{Deserialize, Serialize};

use super::Frame;
use crate::auth::Session;
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: &'static str,
    slug: String,
    locked: Vec<String>,
    created: String,
}

#[derive(Debug, Default, Serialize)]
struct SharesPage {
    csrf: String,
    shares: Vec<Row>,
    dashboards: Vec<(String, String)>,
    questions: Vec<(String, String)>,
    /// A link just made: shown once.
    created: Option<String>,
    error: Option<String>,
}

fn page(app: &App, status: StatusCode, data: SharesPage) -> Response {
    crate::admin::page(
        app,
        status,
        &Frame::plain(app, "Share links", "admin", "/admin/shares"),
        &data,
        "shares.html",
    )
}

fn listing(app: &App, session: &Session) -> Result<SharesPage, WebError> {
    let library = app.library();
    let shares = ShareStore::new(app.data_dir())
        .list()
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(SharesPage {
        csrf: session.csrf.clone(),
        shares: shares
            .into_iter()
            .map(|s| {
                let (kind, slug) = match s.target {
                    ShareTarget::Dashboard(d) => ("dashboard", d),
                    ShareTarget::Question(q) => ("question", q),
                };
                Row {
                    id: s.id,
                    kind,
                    slug,
                    locked: s.locked.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    created: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                }
            })
            .collect(),
        dashboards: library
            .dashboards
            .values()
            .map(|d| (d.slug.clone(), d.title.clone()))
            .collect(),
        questions: library
            .questions
            .values()
            .map(|q| (q.slug.clone(), q.title.clone()))
            .collect(),
        ..Default::default()
    })
}

/// `GET /admin/shares`.
pub async fn list(State(app): State<App>, Extension(session): Extension<Session>) -> Response {
    match listing(&app, &session) {
        Ok(data) => page(&app, StatusCode::OK, data),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    /// `dashboard:SLUG` or `question:SLUG`.
    target: String,
    /// One `name=value` per line.
    #[serde(default)]
    locked: String,
}

/// `POST /admin/shares`: make a link.
pub async fn create(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: axum::http::HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let made = (|| {
        let library = app.library();
        let (target, declared): (ShareTarget, Vec<String>) = match form.target.split_once(':') {
            Some(("dashboard", slug)) => {
                let d = library
                    .dashboard(slug)
                    .map_err(|e| WebError::BadRequest(e.to_string()))?;
                (
                    ShareTarget::Dashboard(slug.to_string()),
                    d.filters.iter().map(|f| f.name.clone()).collect(),
                )
            }
            Some(("question", slug)) => {
                let q = library
                    .question(slug)
                    .map_err(|e| WebError::BadRequest(e.to_string()))?;
                (
                    ShareTarget::Question(slug.to_string()),
                    q.template.variables(),
                )
            }
            _ => {
                return Err(WebError::BadRequest(
                    "choose a dashboard or a question".into(),
                ));
            }
        };
        let mut locked = BTreeMap::new();
        for line in form.locked.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| WebError::BadRequest(format!("`{line}` is not name=value")))?;
            let k = k.trim();
            if !declared.iter().any(|d| d == k) {
                return Err(WebError::BadRequest(format!(
                    "`{k}` is not a variable of this {}",
                    if matches!(target, ShareTarget::Dashboard(_)) {
                        "dashboard"
                    } else {
                        "question"
                    }
                )));
            }
            locked.insert(k.to_string(), v.trim().to_string());
        }
        let (share, token) = ShareStore::new(app.data_dir())
            .create(target, locked)
            .map_err(|e| WebError::Internal(e.to_string()))?;
        tracing::info!(share = %share.id, "public share link created");
        Ok(format!(
            "{}/public/{token}",
            super::base_url(&app, &headers)
        ))
    })();
    let mut data = match listing(&app, &session) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    match made {
        Ok(url) => {
            data.created = Some(url);
            page(&app, StatusCode::OK, data)
        }
        Err(e) => {
            data.error = Some(e.to_string());
            page(&app, StatusCode::BAD_REQUEST, data)
        }
    }
}

/// `POST /admin/shares/{id}/revoke`.
pub async fn revoke(State(app): State<App>, Path(id): Path<String>) -> Response {
    match ShareStore::new(app.data_dir()).revoke(&id) {
        Ok(true) => {
            tracing::info!(share = %id, "public share link revoked");
            Redirect::to("/admin/shares").into_response()
        }
        Ok(false) => WebError::NotFound(format!("no share link `{id}`")).into_response(),
        Err(e) => WebError::Internal(e.to_string()).into_response(),
    }
}
