//! Dashboards as files: `/dashboards` lists them (and broken files), `/d/{slug}` shows one:
//! its filters at the top (their values in the URL), its cards on the grid, each run through
//! the explorer's engine at once. The same rendering serves a dashboard behind a public link
//! ([`view`], with links off and some filters locked).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use magpie_questions::variables::{Values, VarDecl};
use magpie_questions::{CardBody, Dashboard, Library};
use serde::Serialize;

use super::questions::declared_values;
use super::{Frame, context, reply};
use crate::cards::{self, Input, Run, Shown};
use crate::render::{Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Listed {
    slug: String,
    title: String,
    description: Option<String>,
    cards: usize,
    builtin: bool,
}

#[derive(Debug, Serialize)]
struct DashboardsPage {
    dashboards: Vec<Listed>,
    broken: Vec<magpie_questions::Broken>,
}

/// `/dashboards`.
pub async fn list(State(app): State<App>, Query(q): Query<super::PageQuery>) -> Response {
    let library = app.library();
    let data = DashboardsPage {
        dashboards: library
            .dashboards
            .values()
            .map(|d| Listed {
                slug: d.slug.clone(),
                title: d.title.clone(),
                description: d.description.clone(),
                cards: d.cards.len(),
                builtin: d.builtin,
            })
            .collect(),
        broken: library.broken.clone(),
    };
    let mut table = Table::new(&["slug", "title", "cards"]);
    for d in &data.dashboards {
        table.push(vec![d.slug.clone(), d.title.clone(), d.cards.to_string()]);
    }
    let frame = Frame::plain(&app, "Dashboards", "dashboards", "/dashboards");
    let page = context(&frame, &data).map(|data| Rendered {
        template: "dashboards.html",
        data,
        charts: Vec::new(),
        table,
        name: "dashboards".into(),
    });
    reply(&app, &q, page)
}

/// A dashboard ready for its template.
#[derive(Debug, Serialize)]
pub struct View {
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub inputs: Vec<Input>,
    pub cards: Vec<Shown>,
}

/// The filters of a dashboard as variable declarations.
pub fn filter_decls(dashboard: &Dashboard) -> BTreeMap<String, VarDecl> {
    dashboard
        .filters
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                VarDecl {
                    kind: f.kind,
                    label: f.label.clone(),
                    default: f.default.clone(),
                    options: f.options.clone(),
                },
            )
        })
        .collect()
}

/// Run and draw every card of `dashboard` with the filter `values` (`locked` ones win and
/// cannot be changed); `links` to the built-in detail pages unless public.
pub async fn view(
    app: &App,
    library: &Library,
    dashboard: &Dashboard,
    values: &Values,
    locked: &BTreeMap<String, String>,
    links: bool,
) -> View {
    let filters = &filter_decls(dashboard);
    let mut values = values.clone();
    for (k, v) in locked {
        values.set(k, v.clone());
    }
    let runs = dashboard.cards.iter().map(|card| {
        let values = values.clone();
        async move {
            let mut shown = match &card.body {
                CardBody::Text(text) => Shown {
                    title: card.title.clone().unwrap_or_default(),
                    html: Some(cards::markdown(text)),
                    ..Default::default()
                },
                CardBody::Question(slug) => match library.question(slug) {
                    Ok(q) => {
                        let mut shown = cards::show(
                            app,
                            Run {
                                title: card.title.clone().unwrap_or_else(|| q.title.clone()),
                                sql: &q.sql,
                                decls: dashboard.decls(card, Some(q)),
                                chart: card.chart.as_ref().or(q.chart.as_ref()),
                                links,
                            },
                            &values,
                        )
                        .await;
                        shown.question = links.then(|| slug.clone());
                        shown
                    }
                    Err(e) => Shown {
                        title: card.title.clone().unwrap_or_else(|| slug.clone()),
                        error: Some(e.to_string()),
                        ..Default::default()
                    },
                },
                CardBody::Sql(sql) => {
                    cards::show(
                        app,
                        Run {
                            title: card.title.clone().unwrap_or_default(),
                            sql,
                            decls: dashboard.decls(card, None),
                            chart: card.chart.as_ref(),
                            links,
                        },
                        &values,
                    )
                    .await
                }
            };
            shown.width = card.width;
            shown
        }
    });
    let cards = futures_util::future::join_all(runs).await;
    View {
        slug: dashboard.slug.clone(),
        title: dashboard.title.clone(),
        description: dashboard.description.clone(),
        inputs: cards::inputs(app, filters, &values, locked).await,
        cards,
    }
}

#[derive(Debug, Serialize)]
struct DashboardPage {
    #[serde(flatten)]
    view: View,
    builtin: bool,
    admin: bool,
}

/// `/d/{slug}`.
pub async fn show(
    State(app): State<App>,
    jar: CookieJar,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<super::PageQuery>,
) -> Response {
    let library = app.library();
    let dashboard = match library.dashboard(&slug) {
        Ok(d) => d.clone(),
        Err(e) => return reply(&app, &q, Err(WebError::NotFound(e.to_string()))),
    };
    let values = declared_values(raw.as_deref(), &filter_decls(&dashboard));
    let view = view(&app, &library, &dashboard, &values, &BTreeMap::new(), true).await;
    let frame = Frame::plain(&app, &dashboard.title, "dashboards", &format!("/d/{slug}"));
    let data = DashboardPage {
        view,
        builtin: dashboard.builtin,
        admin: app.auth().session(&jar).is_some(),
    };
    let page = context(&frame, &data).map(|data| Rendered {
        template: "dashboard.html",
        data,
        charts: Vec::new(),
        table: Table::default(),
        name: slug.clone(),
    });
    reply(&app, &q, page)
}
