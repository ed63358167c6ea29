//! A chart of any query result, for the explorer, saved questions and dashboard cards: the
//! chart spec names the columns (`x`, `y`, `series`), and the same SVG kinds as the built-in
//! pages draw them. A row that carries an artist, album or track id, or a country code, links
//! its element to the built-in detail page (unless links are off, as on public pages).

use std::collections::{BTreeMap, HashMap};

use magpie_questions::chart::{ChartKind, ChartSpec};
use serde_json::Value;

use super::heatmap::Cell;
use super::{Point, columns, esc, heatmap, line, ranking, short_number, stacked_share, world_map};

/// Most elements drawn of one chart: a result can be big, a chart cannot.
const MAX_POINTS: usize = 500;

/// The SVG of `rows` (named by `names`) as `spec` says, or `None` for a table. An error names
/// a column the spec asks for that the result lacks.
pub fn render(
    spec: &ChartSpec,
    names: &[String],
    rows: &[Vec<Value>],
    links: bool,
) -> Result<Option<String>, String> {
    if spec.kind == ChartKind::Table {
        return Ok(None);
    }
    let find =
        |name: &Option<String>, fallback: Option<usize>, role: &str| -> Result<usize, String> {
            match name {
                Some(n) => names
                    .iter()
                    .position(|c| c == n)
                    .ok_or_else(|| format!("the chart's {role} column `{n}` is not in the result")),
                None => fallback.ok_or_else(|| format!("the chart needs a {role} column")),
            }
        };
    let first_numeric =
        (0..names.len()).find(|i| rows.iter().take(20).any(|r| number(&r[*i]).is_some()));
    let x = find(&spec.x, (!names.is_empty()).then_some(0), "x")?;
    let y = find(
        &spec.y,
        first_numeric.filter(|i| *i != x).or_else(|| {
            (0..names.len())
                .find(|i| *i != x && rows.iter().take(20).any(|r| number(&r[*i]).is_some()))
        }),
        "y (a number)",
    )?;
    let href = |row: &[Value]| -> Option<String> { links.then(|| link(names, row)).flatten() };
    let points = || -> Vec<Point> {
        rows.iter()
            .take(MAX_POINTS)
            .map(|r| {
                let label = text(&r[x]);
                let value = number(&r[y]).unwrap_or(0.0);
                Point {
                    tip: format!("{label}: {}", short_number(value)),
                    label,
                    value,
                    href: href(r),
                }
            })
            .collect()
    };
    let svg = match spec.kind {
        ChartKind::Table => unreachable!("returned above"),
        ChartKind::Column => columns(&points(), &names[y]),
        ChartKind::Bar => ranking(&points(), |p| short_number(p.value)),
        ChartKind::Line => line(&points(), &names[y], false),
        ChartKind::Area => line(&points(), &names[y], true),
        ChartKind::Number => {
            let value = rows
                .first()
                .map(|r| text(&r[y]))
                .unwrap_or_else(|| "–".into());
            format!(
                r#"<svg class="chart number" viewBox="0 0 400 90" role="img" aria-label="{label}"><text class="big" x="200" y="56" text-anchor="middle">{value}</text><text x="200" y="82" text-anchor="middle">{label}</text></svg>"#,
                value = esc(&value),
                label = esc(&names[y])
            )
        }
        ChartKind::Share => {
            let s = find(&spec.series, None, "series")?;
            let (buckets, by_series) = pivot(rows, x, s, y);
            let series: Vec<(String, Vec<f64>)> = by_series.into_iter().collect();
            stacked_share(&buckets, &series)
        }
        ChartKind::Heatmap => {
            let s = find(&spec.series, None, "series (rows)")?;
            let (columns_, by_row) = pivot(rows, x, s, y);
            let row_labels: Vec<&str> = by_row.keys().map(String::as_str).collect();
            let cells: Vec<Vec<Cell>> = by_row
                .iter()
                .map(|(row, values)| {
                    values
                        .iter()
                        .zip(&columns_)
                        .map(|(v, col)| Cell {
                            value: *v,
                            tip: format!("{row}, {col}: {}", short_number(*v)),
                            href: None,
                        })
                        .collect()
                })
                .collect();
            heatmap(&row_labels, &columns_, &cells)
        }
        ChartKind::Map => {
            let values: HashMap<String, (f64, String)> = rows
                .iter()
                .filter_map(|r| {
                    let code = text(&r[x]).to_ascii_uppercase();
                    let value = number(&r[y])?;
                    (code.len() == 2).then(|| {
                        (
                            code.clone(),
                            (value, format!("{code}: {}", short_number(value))),
                        )
                    })
                })
                .collect();
            world_map(&values, |code| {
                links.then(|| format!("/map?range=all&country={code}"))
            })
        }
    };
    Ok(Some(svg))
}

/// Distinct `x` values in order of appearance, and per distinct `s` value the sum of `y` for
/// each of them.
fn pivot(
    rows: &[Vec<Value>],
    x: usize,
    s: usize,
    y: usize,
) -> (Vec<String>, BTreeMap<String, Vec<f64>>) {
    let mut buckets: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in rows {
        let key = text(&r[x]);
        if !index.contains_key(&key) && buckets.len() < MAX_POINTS {
            index.insert(key.clone(), buckets.len());
            buckets.push(key);
        }
    }
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let Some(&i) = index.get(&text(&r[x])) else {
            continue;
        };
        let entry = series
            .entry(text(&r[s]))
            .or_insert_with(|| vec![0.0; buckets.len()]);
        entry[i] += number(&r[y]).unwrap_or(0.0);
    }
    (buckets, series)
}

/// A cell as a number (JSON numbers, and numeric text such as DuckDB's HUGEINTs).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A cell as label text.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The built-in detail page a row is about: an artist, album or track id (md5 hex), or a
/// country code.
pub fn link(names: &[String], row: &[Value]) -> Option<String> {
    for (kind, column) in [
        ("artist", "artist_id"),
        ("album", "album_id"),
        ("track", "track_id"),
    ] {
        if let Some(i) = names.iter().position(|n| n == column)
            && let Value::String(id) = &row[i]
            && id.len() == 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Some(format!("/{kind}/{id}?range=all"));
        }
    }
    let i = names.iter().position(|n| n == "country_code")?;
    let code = text(&row[i]);
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| format!("/map?range=all&country={}", code.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_kind_draws_and_rows_with_ids_link_to_their_page() {
        let id = "0123456789abcdef0123456789abcdef";
        let cols = names(&["artist_name", "artist_id", "plays", "country_code", "year"]);
        let rows = vec![
            vec![
                json!("Ana"),
                json!(id),
                json!(10),
                json!("DE"),
                json!("2024"),
            ],
            vec![json!("Bo"), json!(id), json!(5), json!("FR"), json!("2025")],
        ];
        for kind in ChartKind::ALL {
            let spec = ChartSpec {
                kind,
                x: Some(
                    if kind == ChartKind::Map {
                        "country_code"
                    } else {
                        "artist_name"
                    }
                    .into(),
                ),
                y: Some("plays".into()),
                series: Some("year".into()),
            };
            let svg = render(&spec, &cols, &rows, true).unwrap();
            match kind {
                ChartKind::Table => assert!(svg.is_none()),
                _ => assert!(svg.as_deref().unwrap().starts_with("<svg"), "{kind:?}"),
            }
        }
        let bars = render(
            &ChartSpec {
                kind: ChartKind::Bar,
                ..Default::default()
            },
            &cols,
            &rows,
            true,
        )
        .unwrap()
        .unwrap();
        assert!(bars.contains(&format!("/artist/{id}")), "{bars}");
        let public = render(
            &ChartSpec {
                kind: ChartKind::Bar,
                ..Default::default()
            },
            &cols,
            &rows,
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!public.contains("href"), "no links on public pages");
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = render(
            &ChartSpec {
                kind: ChartKind::Column,
                x: Some("nope".into()),
                ..Default::default()
            },
            &names(&["a", "b"]),
            &[vec![json!("x"), json!(1)]],
            true,
        )
        .unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
    }
}
