//! How a result is drawn: the chart kinds the built-in dashboards use, and which columns go
//! where. A chart spec is part of a question's header and of a dashboard card.

use serde::{Deserialize, Serialize};

/// The chart kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// The result as a sortable table.
    #[default]
    Table,
    /// Vertical columns: `x` the category or time, `y` the value.
    Column,
    /// Horizontal bars (a ranking): `x` the label, `y` the value.
    Bar,
    /// A line over `x` (in result order), `y` the value.
    Line,
    /// The same, filled.
    Area,
    /// Columns of `x` split into the shares of `series`, by `y`.
    Share,
    /// One big number: the first row's `y`.
    Number,
    /// A grid of `x` (columns) by `series` (rows), shaded by `y`.
    Heatmap,
    /// The world, countries (ISO alpha-2 codes in `x`) shaded by `y`.
    Map,
}

impl ChartKind {
    pub const ALL: [ChartKind; 9] = [
        ChartKind::Table,
        ChartKind::Column,
        ChartKind::Bar,
        ChartKind::Line,
        ChartKind::Area,
        ChartKind::Share,
        ChartKind::Number,
        ChartKind::Heatmap,
        ChartKind::Map,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Table => "table",
            ChartKind::Column => "column",
            ChartKind::Bar => "bar",
            ChartKind::Line => "line",
            ChartKind::Area => "area",
            ChartKind::Share => "share",
            ChartKind::Number => "number",
            ChartKind::Heatmap => "heatmap",
            ChartKind::Map => "map",
        }
    }
}

/// A chart of a result: its kind and the columns it uses (by name). Columns left out are
/// guessed: `x` the first column, `y` the first numeric one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    #[serde(default)]
    pub kind: ChartKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
}
