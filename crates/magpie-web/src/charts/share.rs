//! Shares over time: 100% stacked columns (genres per month).

use std::fmt::Write;

use super::{empty, esc};

/// `series[k].1[i]` is series k's value in bucket i; each column shows the shares.
pub fn stacked_share(buckets: &[String], series: &[(String, Vec<f64>)]) -> String {
    const WIDTH: f64 = 800.0;
    const HEIGHT: f64 = 240.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 26.0;
    if buckets.is_empty() || series.is_empty() {
        return empty(800, 240, "No genres in this range");
    }
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - 10.0;
    let slot = plot_w / buckets.len() as f64;
    let gap = if slot >= 4.0 { slot * 0.12 } else { 0.0 };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart share" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="shares over time">"#
    );
    for pct in [0, 50, 100] {
        let y = 10.0 + plot_h - f64::from(pct) / 100.0 * plot_h;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{pct}%</text>"#,
            x2 = WIDTH - 8.0,
            lx = LEFT - 6.0,
            ty = y + 4.0
        );
    }
    for (i, bucket) in buckets.iter().enumerate() {
        let total: f64 = series
            .iter()
            .map(|(_, v)| v.get(i).copied().unwrap_or(0.0))
            .sum();
        if total <= 0.0 {
            continue;
        }
        let x = LEFT + i as f64 * slot + gap / 2.0;
        let mut y = 10.0 + plot_h;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v / total * plot_h;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect class="seg s{k}" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" data-tip="{tip}" tabindex="0"/>"#,
                k = k % 8,
                w = (slot - gap).max(0.5),
                tip = esc(&format!("{name}: {:.1}% in {bucket}", v / total * 100.0))
            );
        }
    }
    let every = buckets.len().div_ceil(8).max(1);
    for (i, b) in buckets.iter().enumerate().step_by(every) {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            esc(b),
            x = LEFT + (i as f64 + 0.5) * slot,
            y = HEIGHT - 8.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_shares_of_their_column() {
        let svg = stacked_share(
            &["2024-01".into()],
            &[("rock".into(), vec![3.0]), ("jazz".into(), vec![1.0])],
        );
        assert!(svg.contains("rock: 75.0% in 2024-01"));
        assert!(svg.contains("jazz: 25.0% in 2024-01"));
        assert!(stacked_share(&[], &[]).contains("No genres"));
    }
}
