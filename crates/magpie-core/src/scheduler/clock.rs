//! The scheduler's clock: wall time for schedules and run records, and sleeping until a
//! moment. [`SystemClock`] in production; [`TokioClock`] in tests, which follows tokio's
//! paused time so hours of schedule pass in milliseconds.

use chrono::{DateTime, Utc};

/// Where "now" comes from.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;

    /// Sleep until `at` (returns at once when it has passed).
    fn sleep_until(&self, at: DateTime<Utc>) -> impl std::future::Future<Output = ()> {
        let left = (at - self.now()).to_std().unwrap_or_default();
        tokio::time::sleep(left)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that starts at `base` and moves with tokio's clock: under
/// `#[tokio::test(start_paused = true)]` sleeps complete as soon as nothing else can run, and
/// this clock moves by exactly as much.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.base + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}
