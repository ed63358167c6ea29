//! A grid of cells shaded by value: hour of day × weekday.

use std::fmt::Write;

use super::{esc, linked};

/// One cell: its value, tooltip and optional link.
#[derive(Debug, Clone)]
pub struct Cell {
    pub value: f64,
    pub tip: String,
    pub href: Option<String>,
}

/// `cells[row][col]`, rows labelled on the left, columns along the top.
pub fn heatmap(row_labels: &[&str], col_labels: &[String], cells: &[Vec<Cell>]) -> String {
    const LEFT: f64 = 44.0;
    const TOP: f64 = 20.0;
    const CELL_W: f64 = 31.0;
    const CELL_H: f64 = 26.0;
    let width = LEFT + CELL_W * col_labels.len() as f64 + 4.0;
    let height = TOP + CELL_H * row_labels.len() as f64 + 4.0;
    let max = cells
        .iter()
        .flatten()
        .map(|c| c.value)
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart heatmap" viewBox="0 0 {width} {height}" role="img" aria-label="heatmap">"#
    );
    for (c, label) in col_labels.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x:.1}" y="14" text-anchor="middle">{}</text>"#,
            esc(label),
            x = LEFT + (c as f64 + 0.5) * CELL_W
        );
    }
    for (r, label) in row_labels.iter().enumerate() {
        let y = TOP + r as f64 * CELL_H;
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x}" y="{ty:.1}" text-anchor="end">{}</text>"#,
            esc(label),
            x = LEFT - 6.0,
            ty = y + CELL_H / 2.0 + 4.0
        );
        for (c, cell) in cells.get(r).into_iter().flatten().enumerate() {
            let opacity = if cell.value > 0.0 {
                0.08 + 0.92 * cell.value / max
            } else {
                0.0
            };
            let element = format!(
                r#"<rect class="cell" x="{x:.1}" y="{y:.1}" width="{w}" height="{h}" rx="3" fill-opacity="{opacity:.3}" data-tip="{tip}" tabindex="0"/>"#,
                x = LEFT + c as f64 * CELL_W + 1.0,
                w = CELL_W - 2.0,
                h = CELL_H - 2.0,
                tip = esc(&cell.tip)
            );
            linked(&mut svg, cell.href.as_deref(), &element);
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_by_value() {
        let cell = |v: f64| Cell {
            value: v,
            tip: format!("{v}"),
            href: None,
        };
        let svg = heatmap(
            &["Mon"],
            &["0".into(), "1".into()],
            &[vec![cell(0.0), cell(10.0)]],
        );
        assert!(svg.contains(r#"fill-opacity="0.000""#));
        assert!(svg.contains(r#"fill-opacity="1.000""#));
        assert_eq!(svg.matches("class=\"cell\"").count(), 2);
    }
}
