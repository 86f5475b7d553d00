//! Sign-in failure limit, kept in memory.
//!
//! The count is per replica: behind a load balancer with N replicas an attacker gets up to N
//! times the budget. That is acceptable for the small deployments this product targets; a
//! shared store would be needed beyond that.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// Failures allowed per key within [`SIGN_IN_WINDOW_MINUTES`].
pub const SIGN_IN_MAX_FAILURES: usize = 10;
/// Length of the sliding window.
pub const SIGN_IN_WINDOW_MINUTES: i64 = 15;

/// Past this many tracked keys, entries without recent failures are dropped.
const PRUNE_THRESHOLD: usize = 10_000;

/// Who is trying: the login as typed (case-folded) and the peer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    login: String,
    ip: Option<IpAddr>,
}

impl AttemptKey {
    /// The key for a login attempted from `ip`.
    pub fn new(login: &str, ip: Option<IpAddr>) -> Self {
        Self {
            login: login.trim().to_lowercase(),
            ip,
        }
    }
}

/// Counts failures per key in a sliding window.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<AttemptKey, VecDeque<DateTime<Utc>>>>,
}

impl FailureLimiter {
    /// A limiter allowing `max_failures` within `window`.
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The product's sign-in limit: 10 failures per 15 minutes.
    pub fn sign_in() -> Self {
        Self::new(
            SIGN_IN_MAX_FAILURES,
            Duration::minutes(SIGN_IN_WINDOW_MINUTES),
        )
    }

    /// `Err(seconds)` until the key may try again, if it has used up its failures.
    pub fn check(&self, key: &AttemptKey, now: DateTime<Utc>) -> Result<(), u64> {
        let mut failures = self.lock();
        let Some(times) = failures.get_mut(key) else {
            return Ok(());
        };
        self.forget_old(times, now);
        match times.front() {
            Some(oldest) if times.len() >= self.max_failures => {
                let wait = (*oldest + self.window - now).num_seconds().max(1);
                Err(u64::try_from(wait).unwrap_or(1))
            }
            _ => Ok(()),
        }
    }

    /// Records one failure.
    pub fn record_failure(&self, key: AttemptKey, now: DateTime<Utc>) {
        let mut failures = self.lock();
        if failures.len() >= PRUNE_THRESHOLD {
            failures.retain(|_, times| times.back().is_some_and(|last| *last + self.window > now));
        }
        let times = failures.entry(key).or_default();
        self.forget_old(times, now);
        times.push_back(now);
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    /// Forgets the key's failures (after a successful sign-in).
    pub fn reset(&self, key: &AttemptKey) {
        self.lock().remove(key);
    }

    fn forget_old(&self, times: &mut VecDeque<DateTime<Utc>>, now: DateTime<Utc>) {
        while times.front().is_some_and(|t| *t + self.window <= now) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AttemptKey, VecDeque<DateTime<Utc>>>> {
        // The map holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn the_eleventh_attempt_within_the_window_is_refused_until_the_first_failure_ages_out() {
        let limiter = FailureLimiter::sign_in();
        let key = AttemptKey::new("Tanaka", None);
        for minute in 0..10 {
            assert!(limiter.check(&key, t(minute)).is_ok());
            limiter.record_failure(key.clone(), t(minute));
        }
        assert_eq!(limiter.check(&key, t(10)), Err(5 * 60));
        assert!(limiter.check(&key, t(15)).is_ok());
    }

    #[test]
    fn keys_are_separate_per_address_and_fold_case() {
        let limiter = FailureLimiter::new(1, Duration::minutes(15));
        let home: IpAddr = [192, 0, 2, 1].into();
        limiter.record_failure(AttemptKey::new("tanaka", Some(home)), t(0));
        assert!(limiter
            .check(&AttemptKey::new(" TANAKA ", Some(home)), t(1))
            .is_err());
        assert!(limiter
            .check(&AttemptKey::new("tanaka", None), t(1))
            .is_ok());
        assert!(limiter
            .check(&AttemptKey::new("sato", Some(home)), t(1))
            .is_ok());
    }

    #[test]
    fn a_reset_forgets_the_failures() {
        let limiter = FailureLimiter::new(1, Duration::minutes(15));
        let key = AttemptKey::new("tanaka", None);
        limiter.record_failure(key.clone(), t(0));
        limiter.reset(&key);
        assert!(limiter.check(&key, t(0)).is_ok());
    }
}
