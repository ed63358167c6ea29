//! A ranking: one horizontal bar per entry, longest first (top artists on the overview).

use std::fmt::Write;

use super::{Point, empty, esc, linked};

/// Horizontal bars with the label on the left and the value at the bar's end.
pub fn ranking(points: &[Point], value_text: impl Fn(&Point) -> String) -> String {
    const WIDTH: f64 = 800.0;
    const ROW: f64 = 26.0;
    const LABEL: f64 = 250.0;
    const VALUE: f64 = 90.0;
    if points.is_empty() {
        return empty(800, 80, "No plays in this range");
    }
    let height = ROW * points.len() as f64 + 4.0;
    let max = points.iter().map(|p| p.value).fold(0.0, f64::max).max(1e-9);
    let plot = WIDTH - LABEL - VALUE;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart ranking" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="ranking">"#
    );
    for (i, p) in points.iter().enumerate() {
        let y = 2.0 + i as f64 * ROW;
        let w = (p.value / max * plot).max(1.0);
        let label: String = if p.label.chars().count() > 34 {
            p.label.chars().take(33).chain(['…']).collect()
        } else {
            p.label.clone()
        };
        let element = format!(
            r#"<g class="row" data-tip="{tip}" tabindex="0"><rect class="hit" x="0" y="{y}" width="{WIDTH}" height="{ROW}"/><text class="label" x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text><rect class="bar" x="{LABEL}" y="{by:.1}" width="{w:.1}" height="{bh}" rx="2"/><text class="value" x="{vx:.1}" y="{ty:.1}">{value}</text></g>"#,
            tip = esc(&p.tip),
            lx = LABEL - 8.0,
            ty = y + ROW / 2.0 + 4.0,
            by = y + 4.0,
            bh = ROW - 8.0,
            label = esc(&label),
            vx = LABEL + w + 6.0,
            value = esc(&value_text(p)),
        );
        linked(&mut svg, p.href.as_deref(), &element);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_longest_and_link() {
        let points = vec![
            Point {
                label: "A".into(),
                value: 50.0,
                tip: "A: 50".into(),
                href: Some("/artist/a".into()),
            },
            Point {
                label: "B & C".into(),
                value: 25.0,
                tip: "B: 25".into(),
                href: None,
            },
        ];
        let svg = ranking(&points, |p| format!("{}", p.value));
        assert!(
            svg.contains(r#"width="460.0""#),
            "longest bar fills the plot: {svg}"
        );
        assert!(svg.contains(r#"width="230.0""#));
        assert!(svg.contains("B &amp; C"));
        assert_eq!(svg.matches("<a href").count(), 1);
    }
}
