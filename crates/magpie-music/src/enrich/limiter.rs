//! A request-rate limiter for one service (governor's GCRA, burst of one), which also says
//! whether a request is waiting for it, for progress displays.
//!
//! One `Limiter` per service per process: every MusicBrainz request (artist lookups, searches,
//! area walks) goes through the same one, so the 1 request/s rule holds for the whole process.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// At most `per_second` requests a second, evenly spaced; `None` inside means no limit.
#[derive(Debug)]
pub struct Limiter {
    inner: Option<DefaultDirectRateLimiter>,
    waiting: Arc<AtomicBool>,
}

impl Limiter {
    /// `per_second <= 0` turns the limiter off.
    pub fn per_second(per_second: f64) -> Self {
        let inner = (per_second > 0.0).then(|| {
            let period = Duration::from_secs_f64(1.0 / per_second);
            let quota = Quota::with_period(period)
                .expect("a positive rate has a positive period")
                .allow_burst(NonZeroU32::MIN);
            RateLimiter::direct(quota)
        });
        Self {
            inner,
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Wait until the next request may go.
    pub async fn ready(&self) {
        if let Some(limiter) = &self.inner {
            if limiter.check().is_ok() {
                return;
            }
            self.waiting.store(true, Ordering::Relaxed);
            limiter.until_ready().await;
            self.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// Whether a request is waiting for its turn right now.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The "waiting" flag, to watch from elsewhere (a progress display).
    pub fn waiting_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.waiting)
    }

    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn spaces_requests_by_the_period() {
        let limiter = Limiter::per_second(20.0);
        let start = std::time::Instant::now();
        for _ in 0..5 {
            limiter.ready().await;
        }
        // The first goes at once, the next four 50 ms apart.
        assert!(
            start.elapsed() >= Duration::from_millis(195),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn off_means_no_wait() {
        let limiter = Limiter::per_second(0.0);
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            limiter.ready().await;
        }
        assert!(!limiter.is_limited());
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
