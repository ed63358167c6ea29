//! Saved questions: `/questions` lists them (and the files that are broken, by name and line),
//! `/q/{slug}` runs one with its variables from the URL (`?artist=…`) and shows its chart and
//! first rows; `?format=json` gives the result, `?format=csv` streams all of it.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use magpie_questions::variables::Values;
use serde::Serialize;

use super::{Frame, context, reply};
use crate::cards::{self, Input, Run, Shown};
use crate::explore::api::streamed;
use crate::explore::engine::{Download, Request};
use crate::render::{Format, Rendered, Table};
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Listed {
    slug: String,
    title: String,
    description: Option<String>,
    variables: Vec<String>,
    chart: String,
    alert: bool,
}

#[derive(Debug, Serialize)]
struct QuestionsPage {
    questions: Vec<Listed>,
    broken: Vec<magpie_questions::Broken>,
    admin: bool,
}

/// `/questions`.
pub async fn list(
    State(app): State<App>,
    jar: CookieJar,
    Query(q): Query<super::PageQuery>,
) -> Response {
    let library = app.library();
    let data = QuestionsPage {
        questions: library
            .questions
            .values()
            .map(|q| Listed {
                slug: q.slug.clone(),
                title: q.title.clone(),
                description: q.description.clone(),
                variables: q.variables.keys().cloned().collect(),
                chart: q
                    .chart
                    .as_ref()
                    .map_or("table", |c| c.kind.as_str())
                    .to_string(),
                alert: q.alert.is_some(),
            })
            .collect(),
        broken: library.broken.clone(),
        admin: app.auth().session(&jar).is_some(),
    };
    let mut table = Table::new(&["slug", "title", "chart"]);
    for q in &data.questions {
        table.push(vec![q.slug.clone(), q.title.clone(), q.chart.clone()]);
    }
    let frame = Frame::plain(&app, "Questions", "questions", "/questions");
    let page = context(&frame, &data).map(|data| Rendered {
        template: "questions.html",
        data,
        charts: Vec::new(),
        table,
        name: "questions".into(),
    });
    reply(&app, &q, page)
}

#[derive(Debug, Serialize)]
struct QuestionPage {
    slug: String,
    sql: String,
    inputs: Vec<Input>,
    card: Shown,
    /// The query string of the current values, for the download links.
    qs: String,
}

/// The values of `decls` named in a raw query string (nothing else is taken).
pub(crate) fn declared_values(raw: Option<&str>, decls: &BTreeMap<String, impl Sized>) -> Values {
    let mut values = Values::default();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if decls.contains_key(k.as_ref()) {
            values.set(&k, v.into_owned());
        }
    }
    values
}

/// `/q/{slug}`.
pub async fn show(
    State(app): State<App>,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<super::PageQuery>,
) -> Response {
    let library = app.library();
    let question = match library.question(&slug) {
        Ok(question) => question.clone(),
        Err(e) => return reply(&app, &q, Err(WebError::NotFound(e.to_string()))),
    };
    let values = declared_values(raw.as_deref(), &question.variables);
    if q.format() == Format::Csv {
        return match cards::resolve_ranges(&app, &question.variables, &values).await {
            Ok(values) => streamed(
                app,
                Request {
                    sql: question.sql.clone(),
                    decls: question.variables.clone(),
                    values,
                },
                Download::Csv,
                &slug,
            ),
            Err(e) => reply(&app, &q, Err(e)),
        };
    }
    let card = cards::show(
        &app,
        Run {
            title: question.title.clone(),
            sql: &question.sql,
            decls: question.variables.clone(),
            chart: question.chart.as_ref(),
            links: true,
        },
        &values,
    )
    .await;
    let inputs = cards::inputs(&app, &question.variables, &values, &BTreeMap::new()).await;
    let qs: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(values.0.iter())
        .finish();
    let data = QuestionPage {
        slug: slug.clone(),
        sql: question.sql.clone(),
        inputs,
        card: Shown {
            description: question.description.clone(),
            ..card
        },
        qs,
    };
    let frame = Frame::plain(&app, &question.title, "questions", &format!("/q/{slug}"));
    let page = context(&frame, &data).map(|data| Rendered {
        template: "question.html",
        data,
        charts: Vec::new(),
        table: Table::default(),
        name: slug.clone(),
    });
    reply(&app, &q, page)
}
