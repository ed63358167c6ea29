//! Login throttling per client address: after [`MAX_FAILURES`] wrong passwords (or setup
//! codes) within [`WINDOW`], that address must wait; other addresses are not affected, so
//! nobody on the LAN can keep the owner locked out. IPv6 clients count per /64, the block one
//! household or host usually has. The table is bounded ([`MAX_CLIENTS`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per address within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at once; beyond it the one whose last failure is oldest is forgotten.
const MAX_CLIENTS: usize = 4096;

/// Failed logins per client address.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// The address a client's failures count under.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl Throttle {
    /// Whether `ip` may try now; if not, how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        let Some(times) = failures.get_mut(&key(ip)) else {
            return Ok(());
        };
        while times.front().is_some_and(|t| t.elapsed() >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= MAX_FAILURES {
            let oldest = times.front().copied().unwrap_or_else(Instant::now);
            return Err(WINDOW.saturating_sub(oldest.elapsed()));
        }
        Ok(())
    }

    /// Count a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_CLIENTS && !failures.contains_key(&key(ip)) {
            failures.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < WINDOW));
            if failures.len() >= MAX_CLIENTS
                && let Some(stalest) = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(ip, _)| *ip)
            {
                failures.remove(&stalest);
            }
        }
        let times = failures.entry(key(ip)).or_default();
        times.push_back(Instant::now());
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Forget `ip`'s failures (it logged in).
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_throttled_and_the_others_are_not() {
        let throttle = Throttle::default();
        let attacker: IpAddr = "192.168.1.66".parse().unwrap();
        let owner: IpAddr = "192.168.1.10".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(attacker).is_ok());
            throttle.failed(attacker);
        }
        let wait = throttle.check(attacker).unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
        assert!(throttle.check(owner).is_ok(), "the owner can still log in");
        throttle.succeeded(attacker);
        assert!(throttle.check(attacker).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let throttle = Throttle::default();
        for i in 0..MAX_FAILURES {
            throttle.failed(format!("2001:db8:1:2::{i:x}").parse().unwrap());
        }
        assert!(
            throttle
                .check("2001:db8:1:2:ffff::1".parse().unwrap())
                .is_err()
        );
        assert!(throttle.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
        for _ in 0..MAX_FAILURES {
            throttle.failed("::ffff:10.0.0.5".parse().unwrap());
        }
        assert!(throttle.check("10.0.0.5".parse().unwrap()).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = Throttle::default();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            throttle.failed(IpAddr::V4(i.into()));
        }
        assert!(throttle.failures.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
