//! Running and drawing one card: a saved question on its page, a card of a dashboard, or the
//! object behind a public link. The SQL runs through the explorer's engine; the result
//! becomes a chart (if the card has one) and a table of its first rows.

use std::collections::BTreeMap;

use magpie_questions::chart::{ChartKind, ChartSpec};
use magpie_questions::variables::{Values, VarDecl, VarType};
use serde::Serialize;

use crate::explore::engine::{self, Request};
use crate::range::{DateRange, RangeQuery};
use crate::{App, WebError};

/// Rows a card shows (its CSV has them all).
pub const CARD_ROWS: usize = 200;

/// A card ready for its template.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shown {
    pub title: String,
    pub description: Option<String>,
    /// The chart, when the card has one (SVG).
    pub svg: Option<String>,
    pub columns: Vec<String>,
    /// The first rows.
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: u64,
    pub truncated: bool,
    pub elapsed_ms: u64,
    /// What went wrong, for the card (the others still show).
    pub error: Option<String>,
    /// A text card's Markdown as HTML.
    pub html: Option<String>,
    /// Columns of 12 on a wide screen.
    pub width: u8,
    /// The saved question it shows, if any.
    pub question: Option<String>,
}

/// What a card runs.
pub struct Run<'a> {
    pub title: String,
    pub sql: &'a str,
    pub decls: BTreeMap<String, VarDecl>,
    pub chart: Option<&'a ChartSpec>,
    /// Links to the built-in detail pages (off on public pages).
    pub links: bool,
}

/// Run a card with `values` and draw it; a failure is shown on the card, not raised.
pub async fn show(app: &App, run: Run<'_>, values: &Values) -> Shown {
    let mut shown = Shown {
        title: run.title,
        width: 12,
        ..Default::default()
    };
    let values = match resolve_ranges(app, &run.decls, values).await {
        Ok(v) => v,
        Err(e) => {
            shown.error = Some(e.to_string());
            return shown;
        }
    };
    let request = Request {
        sql: run.sql.to_string(),
        decls: run.decls,
        values,
    };
    match engine::run_cached(app, request, CARD_ROWS).await {
        Ok(result) => {
            let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
            if let Some(spec) = run.chart.filter(|c| c.kind != ChartKind::Table) {
                match crate::charts::result::render(spec, &names, &result.rows, run.links) {
                    Ok(svg) => shown.svg = svg,
                    Err(e) => shown.error = Some(e),
                }
            }
            shown.rows = result.rows.clone();
            shown.columns = names;
            shown.row_count = result.row_count;
            shown.truncated = result.truncated;
            shown.elapsed_ms = result.elapsed_ms;
        }
        Err(e) => shown.error = Some(e.public_message()),
    }
    shown
}

fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Date range variables may be given as a preset of the range control (`365d`, `all`,
/// `2024`): those become `from..to` against today and the history's bounds.
pub async fn resolve_ranges(
    app: &App,
    decls: &BTreeMap<String, VarDecl>,
    values: &Values,
) -> Result<Values, WebError> {
    let mut out = values.clone();
    for (name, decl) in decls {
        if decl.kind != VarType::DateRange {
            continue;
        }
        let Some(value) = values
            .get(name)
            .map(str::to_string)
            .or_else(|| decl.default.clone())
        else {
            continue;
        };
        if value.contains("..") || value.len() == 10 {
            continue;
        }
        let bounds = crate::pages::bounds(app).await?;
        let range = DateRange::resolve(
            &RangeQuery {
                range: Some(value),
                from: None,
                to: None,
            },
            app.today(),
            &bounds,
        )?;
        out.set(name, format!("{}..{}", range.from, range.to));
    }
    Ok(out)
}

/// The choices of a list variable: the first column of its `options` query (at most 500).
pub async fn options(app: &App, decl: &VarDecl) -> Vec<String> {
    let Some(sql) = decl
        .options
        .as_deref()
        .filter(|_| decl.kind == VarType::List)
    else {
        return Vec::new();
    };
    let limits = app.explore_config();
    match engine::run(
        app,
        Request::plain(sql, Values::default()),
        500,
        limits.timeout,
        None,
    )
    .await
    {
        Ok(result) => result
            .rows
            .iter()
            .filter_map(|r| r.first().map(cell_text))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "a list variable's options failed");
            Vec::new()
        }
    }
}

/// A variable's input on a page: its name, label, type, current value and choices.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<String>,
    /// Fixed by a share link: shown, not editable.
    pub locked: bool,
}

/// The inputs for `decls`, with the values given (or the defaults).
pub async fn inputs(
    app: &App,
    decls: &BTreeMap<String, VarDecl>,
    values: &Values,
    locked: &BTreeMap<String, String>,
) -> Vec<Input> {
    let mut out = Vec::with_capacity(decls.len());
    for (name, decl) in decls {
        out.push(Input {
            name: name.clone(),
            label: decl.label.clone().unwrap_or_else(|| name.replace('_', " ")),
            kind: decl.kind.as_str(),
            value: values
                .get(name)
                .map(str::to_string)
                .or_else(|| decl.default.clone())
                .unwrap_or_default(),
            options: options(app, decl).await,
            locked: locked.contains_key(name),
        });
    }
    out
}

/// Markdown as HTML, with any raw HTML in it shown as text (the CSP allows no inline script
/// anyway, but a card must not be able to add forms or links elsewhere unnoticed).
pub fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html};
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(
        |event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        },
    );
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_raw_html_is_text() {
        let html = markdown("## Notes\n\nSome **bold** <script>alert(1)</script>");
        assert!(html.contains("<h2>Notes</h2>") && html.contains("<strong>bold</strong>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
