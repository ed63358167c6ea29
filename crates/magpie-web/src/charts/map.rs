//! The world map of artist origins: countries shaded by plays.
//!
//! Country shapes are Natural Earth's 1:110m countries (public domain), taken from the npm
//! package `world-atlas` and projected to SVG paths once by `scripts/make-world-map.sh`; the
//! file is embedded in the binary so the map works offline.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::OnceLock;

use serde::Deserialize;

use super::{esc, linked};

const WORLD_JSON: &str = include_str!("../../assets/world-110m.json");

#[derive(Debug, Deserialize)]
struct Shape {
    iso2: String,
    name: String,
    d: String,
}

/// The embedded shapes.
#[derive(Debug, Deserialize)]
pub struct WorldMap {
    width: f64,
    height: f64,
    countries: Vec<Shape>,
}

impl WorldMap {
    /// The shapes, parsed once.
    pub fn get() -> &'static WorldMap {
        static MAP: OnceLock<WorldMap> = OnceLock::new();
        MAP.get_or_init(|| {
            serde_json::from_str(WORLD_JSON).expect("the embedded world map is valid JSON")
        })
    }

    /// Number of countries drawn.
    pub fn len(&self) -> usize {
        self.countries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.countries.is_empty()
    }

    /// The English name of a country code, if the map has it.
    pub fn name(&self, iso2: &str) -> Option<&str> {
        self.countries
            .iter()
            .find(|c| c.iso2 == iso2)
            .map(|c| c.name.as_str())
    }
}

/// Shade each country by `values[iso2] = (value, tooltip)`; `href(iso2)` makes a country a link.
pub fn world_map(
    values: &HashMap<String, (f64, String)>,
    href: impl Fn(&str) -> Option<String>,
) -> String {
    let map = WorldMap::get();
    let max = values.values().map(|v| v.0).fold(0.0, f64::max);
    let mut svg = String::with_capacity(WORLD_JSON.len() + 64 * map.len());
    let _ = write!(
        svg,
        r#"<svg class="chart worldmap" viewBox="0 0 {} {}" role="img" aria-label="world map">"#,
        map.width, map.height
    );
    for shape in &map.countries {
        match values.get(&shape.iso2) {
            Some((value, tip)) if *value > 0.0 && max > 0.0 => {
                // Square-root scale: one dominant country should not wash out the rest.
                let opacity = 0.15 + 0.85 * (value / max).sqrt();
                let element = format!(
                    r#"<path class="country has" d="{}" fill-opacity="{opacity:.3}" data-tip="{}" tabindex="0"/>"#,
                    shape.d,
                    esc(tip)
                );
                linked(&mut svg, href(&shape.iso2).as_deref(), &element);
            }
            _ => {
                let _ = write!(
                    svg,
                    r#"<path class="country" d="{}" data-tip="{}"/>"#,
                    shape.d,
                    esc(&shape.name)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_is_drawn_and_values_shade_them() {
        let map = WorldMap::get();
        assert!(map.len() > 150, "{} countries", map.len());
        assert_eq!(map.name("FR"), Some("France"));
        let mut values = HashMap::new();
        values.insert("FR".to_string(), (100.0, "France: 100 plays".to_string()));
        values.insert("SE".to_string(), (25.0, "Sweden: 25 plays".to_string()));
        let svg = world_map(&values, |c| Some(format!("/map?country={c}")));
        assert_eq!(svg.matches("<path").count(), map.len());
        assert_eq!(svg.matches("country has").count(), 2);
        assert!(svg.contains(r#"fill-opacity="1.000" data-tip="France: 100 plays""#));
        assert!(
            svg.contains(r#"fill-opacity="0.575""#),
            "sqrt scale for Sweden"
        );
    }
}
