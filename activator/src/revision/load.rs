//! Load accounting for one revision: time-averaged concurrency (in flight + queued), arrivals and responses per
//! interval.

use tokio::time::Instant;

/// Integrates the number of requests held (in flight + queued) over time, and counts arrivals, for one interval
/// at a time. Every change is stamped with the caller's clock so that the integral is exact.
#[derive(Debug)]
pub struct LoadTracker {
    interval_start: Instant,
    last_change: Instant,
    in_flight: u32,
    queued: u32,
    /// Request-seconds held since `interval_start`.
    area: f64,
    arrivals: u64,
    responses: u64,
    server_errors: u64,
}

/// One interval's load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadSample {
    pub concurrency: f64,
    pub rps: f64,
    pub in_flight: u32,
    pub queued: u32,
    /// Responses in the interval, and of those the 5xx: the rollout compares revisions by them.
    pub requests: u64,
    pub server_errors: u64,
}

impl LoadSample {
    /// Whether the interval saw traffic or requests are held now; idle revisions are left out of reports.
    pub fn is_active(&self) -> bool {
        self.concurrency > 0.0 || self.rps > 0.0 || self.in_flight > 0 || self.queued > 0 || self.requests > 0
    }
}

impl LoadTracker {
    pub fn new(now: Instant) -> Self {
        LoadTracker {
            interval_start: now,
            last_change: now,
            in_flight: 0,
            queued: 0,
            area: 0.0,
            arrivals: 0,
            responses: 0,
            server_errors: 0,
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn queued(&self) -> u32 {
        self.queued
    }

    pub fn arrived(&mut self) {
        self.arrivals += 1;
    }

    /// A response with `status` started.
    pub fn answered(&mut self, status: u16) {
        self.responses += 1;
        if (500..600).contains(&status) {
            self.server_errors += 1;
        }
    }

    pub fn change_in_flight(&mut self, now: Instant, delta: i32) {
        self.integrate(now);
        self.in_flight = self.in_flight.saturating_add_signed(delta);
    }

    pub fn change_queued(&mut self, now: Instant, delta: i32) {
        self.integrate(now);
        self.queued = self.queued.saturating_add_signed(delta);
    }

    /// The load since the interval started, without ending it.
    pub fn peek(&self, now: Instant) -> LoadSample {
        let held_since_change = f64::from(self.in_flight + self.queued) * secs(now - self.last_change);
        let interval = secs(now - self.interval_start);
        let (concurrency, rps) = if interval > 0.0 {
            (
                (self.area + held_since_change) / interval,
                self.arrivals as f64 / interval,
            )
        } else {
            (f64::from(self.in_flight + self.queued), 0.0)
        };
        LoadSample {
            concurrency,
            rps,
            in_flight: self.in_flight,
            queued: self.queued,
            requests: self.responses,
            server_errors: self.server_errors,
        }
    }

    /// The load of the interval ending now; the next interval starts now.
    pub fn take(&mut self, now: Instant) -> LoadSample {
        let sample = self.peek(now);
        self.interval_start = now;
        self.last_change = now;
        self.area = 0.0;
        self.arrivals = 0;
        self.responses = 0;
        self.server_errors = 0;
        sample
    }

    fn integrate(&mut self, now: Instant) {
        self.area += f64::from(self.in_flight + self.queued) * secs(now - self.last_change);
        self.last_change = now;
    }
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_averaged_over_time() {
        let start = Instant::now();
        let mut load = LoadTracker::new(start);
        // One request held for the whole second, a second one for the last half, one queued for a quarter.
        load.arrived();
        load.change_in_flight(start, 1);
        load.arrived();
        load.change_in_flight(start + Duration::from_millis(500), 1);
        load.change_queued(start + Duration::from_millis(750), 1);
        let sample = load.take(start + Duration::from_secs(1));
        assert!((sample.concurrency - 1.75).abs() < 1e-9, "{sample:?}");
        assert!((sample.rps - 2.0).abs() < 1e-9);
        assert_eq!((sample.in_flight, sample.queued), (2, 1));
        assert!(sample.is_active());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_interval_starts_after_take() {
        let start = Instant::now();
        let mut load = LoadTracker::new(start);
        load.change_in_flight(start, 1);
        load.take(start + Duration::from_secs(1));
        load.change_in_flight(start + Duration::from_millis(1500), -1);
        let sample = load.take(start + Duration::from_secs(2));
        assert!((sample.concurrency - 0.5).abs() < 1e-9);
        assert_eq!(sample.rps, 0.0);
        let idle = load.take(start + Duration::from_secs(3));
        assert!(!idle.is_active());
    }

    #[tokio::test(start_paused = true)]
    async fn peek_at_the_start_of_an_interval_reports_the_current_count() {
        let start = Instant::now();
        let mut load = LoadTracker::new(start);
        load.change_queued(start, 1);
        assert_eq!(load.peek(start).concurrency, 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn responses_and_server_errors_are_counted_per_interval() {
        let start = Instant::now();
        let mut load = LoadTracker::new(start);
        for status in [200, 404, 500, 502, 503, 504, 301] {
            load.answered(status);
        }
        let sample = load.take(start + Duration::from_secs(1));
        assert_eq!((sample.requests, sample.server_errors), (7, 4));
        assert!(sample.is_active(), "a response alone makes the interval active");
        let next = load.take(start + Duration::from_secs(2));
        assert_eq!((next.requests, next.server_errors), (0, 0));
        assert!(!next.is_active());
    }
}
