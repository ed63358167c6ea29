//! When a flow runs: every fixed interval counted from an anchor, or on a cron pattern in a time
//! zone (with daylight-saving changes handled by croner: a skipped local time fires at the
//! first valid moment after it, a repeated one once).
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use magpie_core::scheduler::Schedule;
//! let daily = Schedule::cron("0 3 * * *", chrono_tz::Europe::Berlin).unwrap();
//! let now = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
//! // 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC once summer time starts on the 29th.
//! assert_eq!(daily.next_after(now).unwrap(), Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
//! ```

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A flow's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `every`, at anchor + k × every.
    Interval {
        every: Duration,
        anchor: DateTime<Utc>,
    },
    /// A cron pattern (5 fields, or 6 with seconds) read in `tz`.
    Cron {
        pattern: Box<croner::Cron>,
        text: String,
        tz: chrono_tz::Tz,
    },
}

impl Schedule {
    /// Every `every` from `anchor` (e.g. the Unix epoch: runs on the interval's round times).
    pub fn every(every: Duration, anchor: DateTime<Utc>) -> Result<Self, String> {
        if every < Duration::from_secs(1) {
            return Err("an interval must be at least one second".into());
        }
        Ok(Schedule::Interval { every, anchor })
    }

    pub fn cron(text: &str, tz: chrono_tz::Tz) -> Result<Self, String> {
        let pattern = croner::Cron::from_str(text)
            .map_err(|e| format!("`{text}` is not a cron pattern: {e}"))?;
        Ok(Schedule::Cron {
            pattern: Box::new(pattern),
            text: text.to_string(),
            tz,
        })
    }

    /// The first scheduled moment strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Interval { every, anchor } => {
                let every_ms = every.as_millis() as i64;
                let since = (t - *anchor).num_milliseconds();
                // Slots are anchor + k × every for every integer k, before the anchor too.
                let k = since.div_euclid(every_ms) + 1;
                Some(*anchor + chrono::Duration::milliseconds(k * every_ms))
            }
            Schedule::Cron { pattern, tz, .. } => pattern
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|n| n.with_timezone(&Utc)),
        }
    }

    /// The slots after `last` up to and including `now`: the runs that were missed while
    /// magpie was down (at most `cap` are counted).
    pub fn missed(
        &self,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
        cap: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = last;
        while out.len() < cap {
            match self.next_after(t) {
                Some(n) if n <= now => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }

    /// For people: "every 30m" or "cron 0 3 * * * (Europe/Berlin)".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Interval { every, .. } => {
                format!("every {}", humantime::format_duration(*every))
            }
            Schedule::Cron { text, tz, .. } => format!("cron {text} ({tz})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn intervals_count_from_their_anchor() {
        let s = Schedule::every(Duration::from_secs(30 * 60), utc(2026, 1, 1, 0, 10)).unwrap();
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2026, 1, 1, 0, 10))
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 10)),
            Some(utc(2026, 1, 1, 0, 40))
        );
        assert_eq!(
            s.next_after(utc(2026, 5, 5, 13, 39)),
            Some(utc(2026, 5, 5, 13, 40))
        );
        assert_eq!(
            s.next_after(utc(2026, 5, 5, 13, 40)),
            Some(utc(2026, 5, 5, 14, 10))
        );
        assert!(Schedule::every(Duration::ZERO, utc(2026, 1, 1, 0, 0)).is_err());
    }

    #[test]
    fn cron_follows_local_time_across_dst() {
        let s = Schedule::cron("0 3 * * *", chrono_tz::Europe::Berlin).unwrap();
        // Winter: 03:00 CET = 02:00 UTC; summer: 03:00 CEST = 01:00 UTC.
        assert_eq!(
            s.next_after(utc(2026, 3, 27, 12, 0)),
            Some(utc(2026, 3, 28, 2, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 3, 28, 12, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 10, 24, 12, 0)),
            Some(utc(2026, 10, 25, 2, 0))
        );
        // 02:30 does not exist on the spring-forward night: it fires once, that night.
        let s = Schedule::cron("30 2 * * *", chrono_tz::Europe::Berlin).unwrap();
        let next = s.next_after(utc(2026, 3, 28, 12, 0)).unwrap();
        assert!(
            next > utc(2026, 3, 28, 12, 0) && next <= utc(2026, 3, 29, 2, 0),
            "{next}"
        );
        // 02:30 happens twice on the fall-back night: one run.
        let runs = s.missed(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0), 10);
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert!(Schedule::cron("61 * * * *", chrono_tz::UTC).is_err());
    }

    #[test]
    fn missed_slots_are_listed_up_to_now() {
        let s = Schedule::every(Duration::from_secs(3600), utc(2026, 1, 1, 0, 0)).unwrap();
        let missed = s.missed(utc(2026, 1, 1, 3, 0), utc(2026, 1, 1, 7, 30), 100);
        assert_eq!(
            missed,
            vec![
                utc(2026, 1, 1, 4, 0),
                utc(2026, 1, 1, 5, 0),
                utc(2026, 1, 1, 6, 0),
                utc(2026, 1, 1, 7, 0)
            ]
        );
        assert!(
            s.missed(utc(2026, 1, 1, 7, 0), utc(2026, 1, 1, 7, 30), 100)
                .is_empty()
        );
        assert_eq!(
            s.missed(utc(2025, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0), 3)
                .len(),
            3
        );
    }
}
