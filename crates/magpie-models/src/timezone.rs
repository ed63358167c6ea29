//! The listener's time zone as data: `raw.tz_offsets(valid_from, utc_offset_seconds, tz)`, one
//! row per offset change from 1970 to 2060, computed with chrono-tz. `fact_plays` turns UTC into
//! local time with a join on it (by year, then the period), which needs no ICU in DuckDB and
//! runs the same under dbt.

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use duckdb::{Connection, params};

fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Offset changes of `tz`: (instant in UTC from which the offset holds, offset in seconds).
pub fn transitions(tz: Tz) -> Vec<(DateTime<Utc>, i32)> {
    let start = Utc
        .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let end = Utc
        .with_ymd_and_hms(2060, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let mut out = vec![(start, offset_at(tz, start))];
    let mut t = start; // whole seconds throughout, so the bisection lands on one
    while t < end {
        let next = t + Duration::hours(6);
        let off = offset_at(tz, next);
        if off != out.last().expect("non-empty").1 {
            // Narrow the change down to the second (whole seconds: no fractions creep in).
            let (mut lo, mut hi) = (t.timestamp(), next.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let at = DateTime::from_timestamp(mid, 0).expect("in range");
                if offset_at(tz, at) == off {
                    hi = mid
                } else {
                    lo = mid
                }
            }
            let hi = DateTime::from_timestamp(hi, 0).expect("in range");
            out.push((hi, off));
        }
        t = next;
    }
    out
}

/// Write `raw.tz_offsets` for `tz` (replacing what was there) in one transaction.
pub fn write_offsets(conn: &Connection, tz: Tz) -> duckdb::Result<usize> {
    let rows = transitions(tz);
    conn.execute_batch(
        "BEGIN TRANSACTION;
         CREATE OR REPLACE TABLE raw.tz_offsets (valid_from TIMESTAMP NOT NULL, utc_offset_seconds INTEGER NOT NULL, tz VARCHAR NOT NULL);",
    )?;
    let result = (|| {
        let mut stmt =
            conn.prepare("INSERT INTO raw.tz_offsets VALUES (make_timestamp(?), ?, ?)")?;
        for (from, offset) in &rows {
            stmt.execute(params![from.timestamp_micros(), offset, tz.name()])?;
        }
        Ok::<_, duckdb::Error>(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map(|_| rows.len()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_changes_twice_a_year() {
        let t = transitions(chrono_tz::Europe::Berlin);
        let in_2024: Vec<_> = t
            .iter()
            .filter(|(at, _)| at.format("%Y").to_string() == "2024")
            .collect();
        assert_eq!(in_2024.len(), 2);
        // 2024-03-31 01:00 UTC: +1h -> +2h.
        assert_eq!(
            in_2024[0].0,
            Utc.with_ymd_and_hms(2024, 3, 31, 1, 0, 0).unwrap()
        );
        assert_eq!(in_2024[0].1, 7200);
        assert_eq!(transitions(chrono_tz::UTC).len(), 1);
    }
}
