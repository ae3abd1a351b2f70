//! The bound on reviews: a token bucket (reviews per second with a burst) and a cap on reviews in flight, shared by
//! every serving thread. Past either, the request is refused at once (503) rather than queued: a flood of made-up
//! tokens must neither reach the API server nor hold memory while it waits.

use std::fmt;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Which bound a review would have crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The reviews per second (with the burst) are spent.
    Rate,
    /// As many reviews as allowed are waiting for the API server.
    InFlight,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Rate => "over the rate limit",
            Limit::InFlight => "over the in-flight limit",
        })
    }
}

/// A token bucket: `burst` reviews at once, refilled at `per_second`. Pure: the time is passed in.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_second: f64::from(per_second),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Both bounds together.
pub struct Limiter {
    bucket: Mutex<TokenBucket>,
    in_flight: Semaphore,
}

impl Limiter {
    pub fn new(per_second: u32, burst: u32, in_flight: u32) -> Self {
        Limiter {
            bucket: Mutex::new(TokenBucket::new(per_second, burst, Instant::now())),
            in_flight: Semaphore::new(in_flight.max(1) as usize),
        }
    }

    /// Leave for one review, held until it is answered; the in-flight cap first, so that a review refused for it
    /// spends no token.
    pub fn admit(&self) -> Result<SemaphorePermit<'_>, Limit> {
        let permit = self.in_flight.try_acquire().map_err(|_| Limit::InFlight)?;
        if self.bucket.lock().take(Instant::now()) {
            Ok(permit)
        } else {
            Err(Limit::Rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50, 100, start);
        let burst = (0..1_000).filter(|_| bucket.take(start)).count();
        assert_eq!(burst, 100);
        // A second later, 50 more; never more than the burst however long it rested.
        let later = start + Duration::from_secs(1);
        assert_eq!((0..1_000).filter(|_| bucket.take(later)).count(), 50);
        let much_later = later + Duration::from_secs(3_600);
        assert_eq!((0..1_000).filter(|_| bucket.take(much_later)).count(), 100);
        // 20 ms is one token at 50/s.
        let next = much_later + Duration::from_millis(20);
        assert!(bucket.take(next));
        assert!(!bucket.take(next));
        // Time going backwards (it cannot with Instant, but a caller's stale `now`) takes nothing extra.
        assert!(!bucket.take(much_later));
    }

    #[tokio::test(start_paused = true)]
    async fn over_a_duration_the_bucket_allows_burst_plus_rate_times_duration() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50, 100, start);
        let mut taken = 0;
        for step in 0..=2_000 {
            let now = start + Duration::from_millis(step);
            taken += (0..10).filter(|_| bucket.take(now)).count() as u64;
        }
        assert_eq!(taken, 100 + 2 * 50);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_refuses_past_the_in_flight_cap_without_spending_a_token() {
        let limiter = Limiter::new(1, 2, 1);
        let first = limiter.admit().unwrap();
        assert_eq!(limiter.admit().unwrap_err(), Limit::InFlight);
        drop(first);
        let _second = limiter.admit().unwrap();
        drop(_second);
        assert_eq!(limiter.admit().unwrap_err(), Limit::Rate);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.admit().is_ok());
    }
}
