//! Listening patterns: the hour x weekday heatmap, parts of the day, weekdays against
//! weekends.

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;

use super::{PageQuery, context, frame, reply};
use crate::charts::{self, Point, heatmap::Cell};
use crate::format::{hours, percent, thousands};
use crate::render::{Rendered, Table};
use crate::scope::Scoped;
use crate::{App, WebError};

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The marts' parts of the day (`dim_time.part_of_day`), by hour.
fn part_of_day(hour: usize) -> &'static str {
    match hour {
        0..6 => "night",
        6..12 => "morning",
        12..18 => "afternoon",
        _ => "evening",
    }
}

#[derive(Debug, Clone, Default, Serialize)]
struct Share {
    name: String,
    plays: i64,
    ms_played: i64,
    share: f64,
}

#[derive(Debug, Default, Serialize)]
struct Patterns {
    /// `grid[weekday][hour]` plays, Monday first.
    grid: Vec<Vec<i64>>,
    parts_of_day: Vec<Share>,
    week_split: Vec<Share>,
    /// Average plays per active weekday / weekend day.
    total_plays: i64,
}

pub async fn page(Scoped(app): Scoped, Query(query): Query<PageQuery>) -> Response {
    reply(&app, &query, build(&app, &query).await)
}

async fn build(app: &App, query: &PageQuery) -> Result<Rendered, WebError> {
    let frame = frame(
        app,
        query,
        "Patterns".into(),
        "patterns",
        "/patterns".into(),
    )
    .await?;
    let range = frame
        .range
        .clone()
        .unwrap_or_else(|| unreachable!("pages resolve a range"));
    let (listener, from, to) = (app.listener_id()?, range.from_id(), range.to_id());
    let cells = app
        .cached(format!("heatmap/{listener}/{}", range.key()), move |conn| {
            let mut stmt = conn.prepare(
                "SELECT d.day_of_week, h.hour, sum(h.plays)::BIGINT, sum(h.ms_played)::BIGINT
                 FROM marts.agg_hourly_listening AS h JOIN marts.dim_date AS d USING (date_id)
                 WHERE h.listener_id = ? AND h.date_id BETWEEN ? AND ?
                 GROUP BY 1, 2",
            )?;
            let mut grid = vec![vec![(0i64, 0i64); 24]; 7];
            let mut rows = stmt.query([listener, from, to])?;
            while let Some(r) = rows.next()? {
                let (dow, hour): (i64, i64) = (r.get(0)?, r.get(1)?);
                if let Some(cell) = grid
                    .get_mut((dow - 1) as usize)
                    .and_then(|row| row.get_mut(hour as usize))
                {
                    *cell = (r.get(2)?, r.get(3)?);
                }
            }
            Ok(grid)
        })
        .await?;

    let total_plays: i64 = cells.iter().flatten().map(|c| c.0).sum();
    let share = |name: &str, plays: i64, ms: i64| Share {
        name: name.into(),
        plays,
        ms_played: ms,
        share: if total_plays > 0 {
            plays as f64 / total_plays as f64
        } else {
            0.0
        },
    };
    let mut parts = Vec::new();
    for part in ["morning", "afternoon", "evening", "night"] {
        let (plays, ms) = cells
            .iter()
            .flat_map(|row| row.iter().enumerate())
            .filter(|(h, _)| part_of_day(*h) == part)
            .fold((0, 0), |acc, (_, c)| (acc.0 + c.0, acc.1 + c.1));
        parts.push(share(part, plays, ms));
    }
    let sum_days = |days: std::ops::Range<usize>| {
        cells[days]
            .iter()
            .flatten()
            .fold((0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1))
    };
    let (wd, wd_ms) = sum_days(0..5);
    let (we, we_ms) = sum_days(5..7);
    let week_split = vec![share("weekdays", wd, wd_ms), share("weekend", we, we_ms)];

    let hours_axis: Vec<String> = (0..24).map(|h| format!("{h}")).collect();
    let grid_cells: Vec<Vec<Cell>> = cells
        .iter()
        .enumerate()
        .map(|(d, row)| {
            row.iter()
                .enumerate()
                .map(|(h, &(plays, ms))| Cell {
                    value: plays as f64,
                    tip: format!(
                        "{} {h:02}:00–{h:02}:59: {} plays, {}",
                        WEEKDAYS[d],
                        thousands(plays),
                        hours(ms)
                    ),
                    href: None,
                })
                .collect()
        })
        .collect();
    let bars = |shares: &[Share]| -> Vec<Point> {
        shares
            .iter()
            .map(|s| Point {
                label: s.name.clone(),
                value: s.plays as f64,
                tip: format!(
                    "{}: {} plays ({})",
                    s.name,
                    thousands(s.plays),
                    percent(s.share)
                ),
                href: None,
            })
            .collect()
    };
    let mut table = Table::new(&["weekday", "hour", "plays", "ms_played"]);
    for (d, row) in cells.iter().enumerate() {
        for (h, (plays, ms)) in row.iter().enumerate() {
            table.push(vec![
                WEEKDAYS[d].into(),
                h.to_string(),
                plays.to_string(),
                ms.to_string(),
            ]);
        }
    }
    let charts = vec![
        (
            "heatmap".into(),
            charts::heatmap(&WEEKDAYS, &hours_axis, &grid_cells),
        ),
        (
            "parts".into(),
            charts::ranking(&bars(&parts), |p| thousands(p.value as i64)),
        ),
        (
            "week".into(),
            charts::ranking(&bars(&week_split), |p| thousands(p.value as i64)),
        ),
    ];
    let data = Patterns {
        grid: cells
            .iter()
            .map(|r| r.iter().map(|c| c.0).collect())
            .collect(),
        parts_of_day: parts,
        week_split,
        total_plays,
    };
    Ok(Rendered {
        template: "patterns.html",
        data: context(&frame, &data)?,
        charts,
        table,
        name: format!("patterns-{}", range.key()),
    })
}
