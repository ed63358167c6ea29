//! Values over time: a column chart with a value axis, and the sparklines of the top lists.

use std::fmt::Write;

use super::{Point, empty, esc, linked, nice_scale, short_number};

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// A column per point (a day, week or month), the y axis in `unit`.
pub fn columns(points: &[Point], unit: &str) -> String {
    if points.is_empty() {
        return empty(WIDTH as u32, HEIGHT as u32, "No plays in this range");
    }
    let max = points.iter().map(|p| p.value).fold(0.0, f64::max);
    let (top, step) = nice_scale(max, 4);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / points.len() as f64;
    let gap = if slot >= 4.0 { slot * 0.18 } else { 0.0 };
    let mut svg = String::with_capacity(200 + points.len() * 220);
    let _ = write!(
        svg,
        r#"<svg class="chart columns" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{} per period">"#,
        esc(unit)
    );
    grid(&mut svg, top, step);
    // Columns: a full-height transparent hit area carries the tooltip and link.
    for (i, p) in points.iter().enumerate() {
        let x = LEFT + i as f64 * slot;
        let h = (p.value / top * plot_h).max(if p.value > 0.0 { 1.0 } else { 0.0 });
        let element = format!(
            r#"<g class="col" data-tip="{tip}" tabindex="0"><rect class="hit" x="{x:.2}" y="{TOP}" width="{slot:.2}" height="{plot_h}"/><rect class="bar" x="{bx:.2}" y="{by:.2}" width="{bw:.2}" height="{h:.2}"/></g>"#,
            tip = esc(&p.tip),
            bx = x + gap / 2.0,
            by = TOP + plot_h - h,
            bw = (slot - gap).max(0.5),
        );
        linked(&mut svg, p.href.as_deref(), &element);
    }
    axis_labels(&mut svg, points, slot);
    svg.push_str("</svg>");
    svg
}

/// Grid lines and value labels up to `top`, every `step`.
fn grid(svg: &mut String, top: f64, step: f64) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let y = TOP + plot_h - tick / top * plot_h;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{}</text>"#,
            short_number(tick),
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0
        );
        tick += step;
    }
}

/// About eight labels along the x axis, each centred in its slot.
fn axis_labels(svg: &mut String, points: &[Point], slot: f64) {
    let every = points.len().div_ceil(8).max(1);
    for (i, p) in points.iter().enumerate().step_by(every) {
        let x = LEFT + (i as f64 + 0.5) * slot;
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            esc(&p.label),
            y = HEIGHT - 8.0
        );
    }
}

/// A line through the points in order (an area under it when `filled`), the y axis in
/// `unit`; each point a dot with its tooltip and link.
pub fn line(points: &[Point], unit: &str, filled: bool) -> String {
    if points.is_empty() {
        return empty(WIDTH as u32, HEIGHT as u32, "No rows");
    }
    let max = points.iter().map(|p| p.value).fold(0.0, f64::max);
    let (top, step) = nice_scale(max, 4);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / points.len() as f64;
    let xy: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                LEFT + (i as f64 + 0.5) * slot,
                TOP + plot_h - (p.value.max(0.0) / top * plot_h),
            )
        })
        .collect();
    let mut svg = String::with_capacity(300 + points.len() * 160);
    let _ = write!(
        svg,
        r#"<svg class="chart line" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        esc(unit)
    );
    grid(&mut svg, top, step);
    let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    if filled {
        let (first, last) = (xy[0].0, xy[xy.len() - 1].0);
        let base = TOP + plot_h;
        let _ = write!(
            svg,
            r#"<polygon class="area" points="{first:.1},{base} {} {last:.1},{base}"/>"#,
            path.join(" ")
        );
    }
    let _ = write!(
        svg,
        r#"<polyline class="trend" points="{}"/>"#,
        path.join(" ")
    );
    for (p, (x, y)) in points.iter().zip(&xy) {
        let element = format!(
            r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="3" data-tip="{}" tabindex="0"/>"#,
            esc(&p.tip)
        );
        linked(&mut svg, p.href.as_deref(), &element);
    }
    axis_labels(&mut svg, points, slot);
    svg.push_str("</svg>");
    svg
}

/// A small trend line (no axes), e.g. an artist's plays per period in a top list.
pub fn sparkline(values: &[f64]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let max = values.iter().copied().fold(0.0, f64::max);
    if values.len() < 2 || max <= 0.0 {
        return format!(r#"<svg class="spark" viewBox="0 0 {W} {H}" aria-hidden="true"></svg>"#);
    }
    let step = W / (values.len() - 1) as f64;
    let mut path = String::new();
    for (i, v) in values.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            i as f64 * step,
            H - 2.0 - v / max * (H - 4.0)
        );
    }
    format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" aria-hidden="true"><path d="{path}"/></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, value: f64) -> Point {
        Point {
            label: label.into(),
            value,
            tip: format!("{label}: {value} plays"),
            href: Some(format!("/day/{label}")),
        }
    }

    #[test]
    fn one_column_per_point_with_tip_and_link() {
        let svg = columns(
            &[point("Jan", 10.0), point("Feb", 0.0), point("Mar", 35.0)],
            "plays",
        );
        assert_eq!(svg.matches(r#"class="col""#).count(), 3);
        assert!(svg.contains(r#"data-tip="Mar: 35 plays""#));
        assert!(svg.contains(r#"<a href="/day/Feb">"#));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The tallest column reaches the top of the nice scale's share.
        assert!(svg.contains(">40<"), "axis up to 40: {svg}");
    }

    #[test]
    fn empty_series_says_so() {
        assert!(columns(&[], "plays").contains("No plays in this range"));
        assert!(!sparkline(&[0.0, 0.0]).contains("<path"));
        assert!(sparkline(&[1.0, 3.0, 2.0]).contains("<path d=\"M0.0,"));
    }
}
