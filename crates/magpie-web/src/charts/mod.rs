//! Charts as SVG rendered on the server.
//!
//! Why our own module rather than a chart crate: the pages need per-element links (click a
//! bar, land on the detail page) and per-element tooltips (`data-tip`, read by `app.js`),
//! colours from CSS variables so one SVG works in light and dark themes, and no fonts or
//! rasteriser in the binary. charts-rs and plotters draw static images with their own styling
//! and text metrics and would still need post-processing for links. These five chart kinds
//! are ~400 lines, render a page's charts in well under a millisecond on a weak CPU, and weigh
//! a few kilobytes per chart.

mod bars;
pub mod heatmap;
mod map;
pub mod result;
mod series;
mod share;

pub use bars::ranking;
pub use heatmap::heatmap;
pub use map::{WorldMap, world_map};
pub use series::{columns, line, sparkline};
pub use share::stacked_share;

use std::fmt::Write;

/// One value to draw: its label (axis or row), value, the tooltip text and where a click goes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    pub label: String,
    pub value: f64,
    pub tip: String,
    pub href: Option<String>,
}

/// Escape text for SVG/HTML content and attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis maximum and tick step for values up to `max` (1, 2 or 5 times a power of ten).
pub fn nice_scale(max: f64, ticks: usize) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / ticks.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// A compact axis label: 1200 → 1.2k.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6).replace(".0M", "M")
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Wrap an element in a link when it has one.
fn linked(out: &mut String, href: Option<&str>, element: &str) {
    match href {
        Some(h) => {
            let _ = write!(out, r#"<a href="{}">{element}</a>"#, esc(h));
        }
        None => out.push_str(element),
    }
}

/// The empty-state SVG: a frame with a message.
fn empty(width: u32, height: u32, message: &str) -> String {
    format!(
        r#"<svg class="chart empty" viewBox="0 0 {width} {height}" role="img" aria-label="{m}"><text x="{x}" y="{y}" text-anchor="middle" class="muted">{m}</text></svg>"#,
        x = width / 2,
        y = height / 2,
        m = esc(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_scales_cover_the_maximum() {
        assert_eq!(nice_scale(87.0, 4), (100.0, 50.0));
        let (top, step) = nice_scale(1234.0, 4);
        assert!(top >= 1234.0 && step > 0.0 && (top / step) <= 5.0);
        assert_eq!(nice_scale(0.0, 4), (1.0, 1.0));
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(2_000_000.0), "2M");
        assert_eq!(esc(r#"<a&"'>"#), "&lt;a&amp;&quot;&#39;&gt;");
    }
}
