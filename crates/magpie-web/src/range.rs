//! The date range every page shares: presets (last 7/30/90/365 days, this year, a given year,
//! all time) or a custom span, in the listener's local calendar.
//!
//! Relative presets end on the last day with plays when the history stops before today, so a
//! history imported from an old export still opens on its own last month rather than on an
//! empty one; the label says which day the range ends.
//!
//! ```
//! use chrono::NaiveDate;
//! use magpie_web::range::{DateRange, RangeQuery, DataBounds};
//! let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
//! let bounds = DataBounds { first: Some(d("2020-01-01")), last: Some(d("2024-06-30")) };
//! let q = RangeQuery { range: Some("30d".into()), ..Default::default() };
//! let r = DateRange::resolve(&q, d("2026-11-23"), &bounds).unwrap();
//! assert_eq!((r.from, r.to), (d("2024-06-01"), d("2024-06-30")));
//! assert_eq!(r.previous().unwrap().to, d("2024-05-31"));
//! ```

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::WebError;

/// The range parameters of a request (`?range=30d`, `?range=2023`,
/// `?range=custom&from=2024-01-01&to=2024-03-31`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// First and last local day with a play, if any.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DataBounds {
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
}

/// How finely a chart over the range buckets time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Day,
    Week,
    Month,
    Year,
}

impl Grain {
    /// DuckDB's `date_trunc` part.
    pub fn sql_part(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Year => "year",
        }
    }

    pub fn parse(text: &str) -> Result<Self, WebError> {
        match text {
            "day" => Ok(Grain::Day),
            "week" => Ok(Grain::Week),
            "month" => Ok(Grain::Month),
            "year" => Ok(Grain::Year),
            other => Err(WebError::BadRequest(format!(
                "grain `{other}` is not one of day, week, month, year"
            ))),
        }
    }
}

/// The preset names offered in the range control, with their labels.
pub const PRESETS: [(&str, &str); 6] = [
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("365d", "Last 12 months"),
    ("year", "This year"),
    ("all", "All time"),
];

/// The default preset of every page.
pub const DEFAULT_PRESET: &str = "365d";

/// Oldest and newest years a range may touch.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// A resolved, inclusive range of local days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The preset key (`30d`, `2023`, `all`, `custom`), for links and the control.
    pub preset: String,
    pub label: String,
}

impl DateRange {
    /// Resolve request parameters against today and the history's bounds.
    pub fn resolve(
        query: &RangeQuery,
        today: NaiveDate,
        bounds: &DataBounds,
    ) -> Result<Self, WebError> {
        let preset = query
            .range
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PRESET);
        let anchor = bounds.last.map_or(today, |last| last.min(today));
        let ends = |label: &str| {
            if anchor == today {
                label.to_string()
            } else {
                format!("{label} to {anchor}")
            }
        };
        let relative = |days: i64, label: &str| Self {
            from: anchor - Duration::days(days - 1),
            to: anchor,
            preset: preset.to_string(),
            label: ends(label),
        };
        let range = match preset {
            "7d" => relative(7, "Last 7 days"),
            "30d" => relative(30, "Last 30 days"),
            "90d" => relative(90, "Last 90 days"),
            "365d" => relative(365, "Last 12 months"),
            "year" => Self {
                from: NaiveDate::from_ymd_opt(anchor.year(), 1, 1).unwrap_or(anchor),
                to: anchor,
                preset: preset.into(),
                label: ends(&format!("{}", anchor.year())),
            },
            "all" => Self {
                from: bounds.first.unwrap_or(anchor),
                to: bounds
                    .last
                    .unwrap_or(anchor)
                    .max(bounds.first.unwrap_or(anchor)),
                preset: preset.into(),
                label: "All time".into(),
            },
            "custom" => {
                let from = parse_day("from", query.from.as_deref())?;
                let to = parse_day("to", query.to.as_deref())?;
                if to < from {
                    return Err(WebError::BadRequest(format!(
                        "the range ends ({to}) before it starts ({from})"
                    )));
                }
                Self {
                    from,
                    to,
                    preset: preset.into(),
                    label: format!("{from} to {to}"),
                }
            }
            year if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) => {
                let y: i32 = year.parse().unwrap_or(0);
                check_year(y)?;
                Self {
                    from: NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or(anchor),
                    to: NaiveDate::from_ymd_opt(y, 12, 31).unwrap_or(anchor),
                    preset: preset.into(),
                    label: format!("{y}"),
                }
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "range `{other}` is not one of 7d, 30d, 90d, 365d, year, all, custom or a year like 2024"
                )));
            }
        };
        check_year(range.from.year())?;
        check_year(range.to.year())?;
        Ok(range)
    }

    /// The range of the same length just before this one (the previous year for a year);
    /// none for all time.
    pub fn previous(&self) -> Option<Self> {
        if self.preset == "all" {
            return None;
        }
        if self.preset.len() == 4 && self.preset.bytes().all(|b| b.is_ascii_digit()) {
            let y = self.from.year() - 1;
            return Some(Self {
                from: NaiveDate::from_ymd_opt(y, 1, 1)?,
                to: NaiveDate::from_ymd_opt(y, 12, 31)?,
                preset: y.to_string(),
                label: y.to_string(),
            });
        }
        let to = self.from - Duration::days(1);
        let from = to - Duration::days(self.days() - 1);
        Some(Self {
            label: format!("{from} to {to}"),
            from,
            to,
            preset: "custom".into(),
        })
    }

    /// Number of days in the range.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The marts' `date_id` (local `yyyymmdd`) of the first day.
    pub fn from_id(&self) -> i32 {
        date_id(self.from)
    }

    /// The marts' `date_id` of the last day.
    pub fn to_id(&self) -> i32 {
        date_id(self.to)
    }

    /// The bucket size charts over this range use.
    pub fn grain(&self) -> Grain {
        match self.days() {
            days if days <= 120 => Grain::Day,
            days if days <= 1100 => Grain::Week,
            days if days <= 15 * 366 => Grain::Month,
            _ => Grain::Year,
        }
    }

    /// The coarser buckets of a sparkline (a few dozen points at most).
    pub fn spark_grain(&self) -> Grain {
        match self.days() {
            days if days <= 60 => Grain::Day,
            days if days <= 400 => Grain::Week,
            days if days <= 10 * 366 => Grain::Month,
            _ => Grain::Year,
        }
    }

    /// The query string that reproduces this range (for links).
    pub fn query_string(&self) -> String {
        if self.preset == "custom" {
            format!("range=custom&from={}&to={}", self.from, self.to)
        } else {
            format!("range={}", self.preset)
        }
    }

    /// A cache key part.
    pub fn key(&self) -> String {
        format!("{}..{}", self.from_id(), self.to_id())
    }
}

/// `yyyymmdd` as an integer, the marts' date key.
pub fn date_id(day: NaiveDate) -> i32 {
    day.year() * 10_000 + day.month() as i32 * 100 + day.day() as i32
}

fn parse_day(field: &str, text: Option<&str>) -> Result<NaiveDate, WebError> {
    let text = text.filter(|t| !t.is_empty()).ok_or_else(|| {
        WebError::BadRequest(format!(
            "a custom range needs `{field}` (a date like 2024-01-31)"
        ))
    })?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        WebError::BadRequest(format!(
            "`{field}` = `{text}` is not a date like 2024-01-31"
        ))
    })
}

fn check_year(year: i32) -> Result<(), WebError> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(WebError::BadRequest(format!(
            "the range reaches the year {year}; dates must lie between {} and {}",
            YEARS.start(),
            YEARS.end()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn resolve(range: &str, from: Option<&str>, to: Option<&str>) -> Result<DateRange, WebError> {
        let q = RangeQuery {
            range: Some(range.into()),
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        let bounds = DataBounds {
            first: Some(d("2019-03-04")),
            last: Some(d("2026-11-23")),
        };
        DateRange::resolve(&q, d("2026-11-23"), &bounds)
    }

    #[test]
    fn presets_resolve_against_today() {
        let r = resolve("7d", None, None).unwrap();
        assert_eq!(
            (r.from, r.to, r.days()),
            (d("2026-11-17"), d("2026-11-23"), 7)
        );
        assert_eq!(r.label, "Last 7 days");
        let r = resolve("year", None, None).unwrap();
        assert_eq!(r.from, d("2026-01-01"));
        let r = resolve("all", None, None).unwrap();
        assert_eq!((r.from, r.to), (d("2019-03-04"), d("2026-11-23")));
        assert!(r.previous().is_none());
        let r = resolve("2021", None, None).unwrap();
        assert_eq!((r.from, r.to), (d("2021-01-01"), d("2021-12-31")));
        assert_eq!(r.previous().unwrap().preset, "2020");
        assert_eq!(r.grain(), Grain::Week);
        assert_eq!(r.from_id(), 20210101);
    }

    #[test]
    fn previous_period_has_the_same_length_and_ends_the_day_before() {
        let r = resolve("custom", Some("2024-03-01"), Some("2024-03-31")).unwrap();
        let p = r.previous().unwrap();
        assert_eq!((p.from, p.to), (d("2024-01-30"), d("2024-02-29")));
        assert_eq!(
            r.query_string(),
            "range=custom&from=2024-03-01&to=2024-03-31"
        );
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        for (range, from, to, needle) in [
            ("fortnight", None, None, "not one of"),
            ("custom", Some("2024-13-01"), Some("2024-12-01"), "`from`"),
            ("custom", None, Some("2024-12-01"), "needs `from`"),
            (
                "custom",
                Some("2024-05-01"),
                Some("2024-04-01"),
                "before it starts",
            ),
            ("custom", Some("0001-01-01"), Some("9999-12-31"), "year 1"),
            ("1492", None, None, "year 1492"),
        ] {
            let err = resolve(range, from, to).unwrap_err().to_string();
            assert!(err.contains(needle), "{range}: {err}");
        }
    }
}
