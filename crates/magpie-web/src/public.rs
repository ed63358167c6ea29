//! Public share links: `/public/{token}` shows the one dashboard or question a link was made
//! for, and nothing else: no navigation, no links to the built-in pages, locked variables
//! fixed, free ones limited to the variables the object declares (and to their types). As
//! JSON with `?format=json`; a card's rows as CSV with `?format=csv&card=N` (N from 0).
//! Requests are limited per client address (`explore.public_requests_per_minute`); an unknown
//! or revoked token is a 404 like any missing page.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::Extension;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use magpie_questions::{CardBody, ShareStore, ShareTarget};
use serde::{Deserialize, Serialize};

use crate::auth::login::ClientIp;
use crate::cards::{self, Run, Shown};
use crate::explore::api::streamed;
use crate::explore::engine::{Download, Request};
use crate::pages::dashboards::{View, filter_decls, view};
use crate::pages::questions::declared_values;
use crate::render::{self, Format};
use crate::{App, WebError};

/// Requests per client address to public links.
pub struct Limiter(DefaultKeyedRateLimiter<IpAddr>);

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least 1"));
        Self(DefaultKeyedRateLimiter::keyed(quota))
    }

    /// Whether `ip` may have another page now.
    fn allow(&self, ip: IpAddr) -> bool {
        if self.0.len() > 10_000 {
            self.0.retain_recent();
        }
        self.0.check_key(&ip).is_ok()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PublicQuery {
    pub format: Option<String>,
    pub card: Option<usize>,
}

#[derive(Debug, Serialize)]
struct PublicPage {
    title: String,
    description: Option<String>,
    inputs: Vec<cards::Input>,
    cards: Vec<Shown>,
    token: String,
}

/// The policy of public pages: the site's, but they may be embedded in other pages.
const EMBEDDABLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors *";

/// `/public/{token}`.
pub async fn show(
    State(app): State<App>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<PublicQuery>,
) -> Response {
    if !app.public_limiter().allow(ip) {
        metrics::counter!("magpie_public_limited_total").increment(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests: try again in a minute\n",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    let format = match q.format.as_deref() {
        None | Some("" | "html") => Format::Html,
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(other) => {
            return WebError::BadRequest(format!("format `{other}` is html, json or csv"))
                .into_response();
        }
    };
    let store = ShareStore::new(app.data_dir());
    let looked_up = {
        let token = token.clone();
        tokio::task::spawn_blocking(move || store.find(&token)).await
    };
    let share = match looked_up {
        Ok(Ok(Some(share))) => share,
        Ok(Ok(None)) => return not_found(&app, format),
        Ok(Err(e)) => {
            return render::error_response(
                app.templates(),
                format,
                WebError::Internal(e.to_string()),
            );
        }
        Err(e) => {
            return render::error_response(
                app.templates(),
                format,
                WebError::Internal(e.to_string()),
            );
        }
    };
    metrics::counter!("magpie_public_views_total").increment(1);
    let library = app.library();
    let result = match &share.target {
        ShareTarget::Dashboard(slug) => {
            let Ok(dashboard) = library.dashboard(slug) else {
                return not_found(&app, format);
            };
            let decls = filter_decls(dashboard);
            let free = declared_values(raw.as_deref(), &decls);
            if format == Format::Csv {
                let Some(card) = q.card.and_then(|i| dashboard.cards.get(i)) else {
                    return WebError::BadRequest("`card=N` names a card of this dashboard".into())
                        .into_response();
                };
                let (sql, decls) = match &card.body {
                    CardBody::Sql(sql) => (sql.clone(), dashboard.decls(card, None)),
                    CardBody::Question(s) => match library.question(s) {
                        Ok(question) => {
                            (question.sql.clone(), dashboard.decls(card, Some(question)))
                        }
                        Err(_) => return not_found(&app, format),
                    },
                    CardBody::Text(_) => {
                        return WebError::BadRequest("a text card has no rows".into())
                            .into_response();
                    }
                };
                return csv(&app, sql, decls, &free, &share.locked, "card").await;
            }
            let View {
                title,
                description,
                inputs,
                cards,
                ..
            } = view(&app, &library, dashboard, &free, &share.locked, false).await;
            PublicPage {
                title,
                description,
                inputs,
                cards,
                token: token.clone(),
            }
        }
        ShareTarget::Question(slug) => {
            let Ok(question) = library.question(slug) else {
                return not_found(&app, format);
            };
            let mut values = declared_values(raw.as_deref(), &question.variables);
            if format == Format::Csv {
                return csv(
                    &app,
                    question.sql.clone(),
                    question.variables.clone(),
                    &values,
                    &share.locked,
                    slug,
                )
                .await;
            }
            for (k, v) in &share.locked {
                values.set(k, v.clone());
            }
            let card = cards::show(
                &app,
                Run {
                    title: question.title.clone(),
                    sql: &question.sql,
                    decls: question.variables.clone(),
                    chart: question.chart.as_ref(),
                    links: false,
                },
                &values,
            )
            .await;
            PublicPage {
                title: question.title.clone(),
                description: question.description.clone(),
                inputs: cards::inputs(&app, &question.variables, &values, &share.locked).await,
                cards: vec![card],
                token: token.clone(),
            }
        }
    };
    if format == Format::Json {
        return axum::Json(result).into_response();
    }
    let html = app
        .templates()
        .render("public.html", minijinja::Value::from_serialize(&result));
    match html {
        Ok(html) => {
            let mut response = axum::response::Html(html).into_response();
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(EMBEDDABLE_CSP),
            );
            response
        }
        Err(e) => render::error_response(app.templates(), Format::Html, e),
    }
}

/// The rows of one shared SQL as CSV, with the locked values applied.
async fn csv(
    app: &App,
    sql: String,
    decls: BTreeMap<String, magpie_questions::VarDecl>,
    free: &magpie_questions::Values,
    locked: &BTreeMap<String, String>,
    name: &str,
) -> Response {
    let mut values = free.clone();
    for (k, v) in locked {
        values.set(k, v.clone());
    }
    match cards::resolve_ranges(app, &decls, &values).await {
        Ok(values) => streamed(
            app.clone(),
            Request { sql, decls, values },
            Download::Csv,
            name,
        ),
        Err(e) => e.into_response(),
    }
}

fn not_found(app: &App, format: Format) -> Response {
    render::error_response(
        app.templates(),
        format,
        WebError::NotFound("there is no page here".into()),
    )
}
