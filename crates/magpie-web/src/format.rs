//! How numbers look on the pages: thousands separators, hours of listening, percentages and
//! changes against the previous period. Registered as template filters too.

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds of listening as hours: `1,234 h`, or `12.5 h` / `45 min` when small.
pub fn hours(ms: i64) -> String {
    let h = ms as f64 / 3_600_000.0;
    if h >= 100.0 {
        format!("{} h", thousands(h.round() as i64))
    } else if h >= 1.0 {
        format!("{h:.1} h")
    } else {
        format!("{} min", (ms as f64 / 60_000.0).round() as i64)
    }
}

/// A share as a percentage: `0.256` → `25.6%`.
pub fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        "–".into()
    }
}

/// The change from `previous` to `current`: `+12.5%`, `−3.0%`, `new` (nothing before).
pub fn change(current: i64, previous: i64) -> String {
    if previous == 0 {
        return if current == 0 {
            "±0%".into()
        } else {
            "new".into()
        };
    }
    let pct = (current - previous) as f64 / previous as f64 * 100.0;
    if pct >= 0.0 {
        format!("+{pct:.1}%")
    } else {
        format!("−{:.1}%", -pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(hours(3_600_000 * 250), "250 h");
        assert_eq!(hours(5_400_000), "1.5 h");
        assert_eq!(hours(600_000), "10 min");
        assert_eq!(percent(0.256), "25.6%");
        assert_eq!(change(110, 100), "+10.0%");
        assert_eq!(change(90, 100), "−10.0%");
        assert_eq!(change(5, 0), "new");
    }
}
