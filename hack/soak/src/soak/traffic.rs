//! HTTP client loops through the activator: each sends its next request once the previous one finished (and at
//! most one per [`PACE`]), until the run's deadline or its request budget, whichever comes first.

use std::time::Duration;

use http::StatusCode;
use runway_tests::load::{self, Outcome, Target};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::counts::Counts;
use crate::stop::Stop;

/// Attempts of an h2c request that never reached the server (refused by GOAWAY, or canceled before it was sent).
const H2C_ATTEMPTS: usize = 3;

/// Longer than any cold start or rollout hiccup the run expects; a request still unanswered by then is a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest time between two requests of one client: steady load, not a saturation benchmark, on a machine that
/// other work (and other test suites against the same cluster) shares.
pub const PACE: Duration = Duration::from_millis(10);

/// One client loop.
pub struct HttpLoop {
    pub target: Target,
    pub path: &'static str,
    pub h2c: bool,
    /// While true the loop sends nothing (the schedule lets the Service scale to zero).
    pub paused: watch::Receiver<bool>,
    pub stop: Stop,
    /// Upper bound on requests, so a loop ends even if the clock misbehaved.
    pub budget: u64,
    /// The start of the load, for the time of surprises.
    pub origin: Instant,
}

impl HttpLoop {
    pub async fn run(self) -> Counts {
        let client = load::client();
        // h2c: one connection at a time, made again when it breaks (an activator rollout closes it), as gRPC does.
        let mut h2c: Option<load::H2c> = None;
        let mut counts = Counts::default();
        let mut next = Instant::now();
        for _ in 0..self.budget {
            tokio::time::sleep_until(next).await;
            if !self.wait_unpaused().await {
                break;
            }
            next = Instant::now() + PACE;
            let outcome = if self.h2c {
                self.h2c_get(&mut h2c).await
            } else {
                load::get(&client, &self.target, self.path, REQUEST_TIMEOUT).await
            };
            let (label, expected) = classify(&outcome);
            let detail = outcome.error.as_deref().unwrap_or(outcome.body.trim());
            counts.add(&label, expected, self.origin.elapsed(), detail);
        }
        counts
    }

    /// One h2c GET the way a gRPC client sends it: on a connection that still takes streams (after GOAWAY a new one),
    /// and again (up to [`H2C_ATTEMPTS`] in all) on a new connection when an attempt provably never reached the server (RFC 9113 §8.7:
    /// such a request may always be retried): hyper reports it as canceled (never sent), or as a remote GOAWAY (h2
    /// fails with that only the streams above the GOAWAY's last stream id, which the server did not process).
    async fn h2c_get(&self, connection: &mut Option<load::H2c>) -> Outcome {
        if let Some(h2c) = connection
            && !h2c.is_open().await
        {
            *connection = None;
        }
        let mut outcome = self.h2c_attempt(connection).await;
        // Like gRPC's transparent retry, bounded: the new connection may reach an activator that is itself draining
        // (kube-proxy still lists it for a moment), which refuses the stream again.
        for _ in 1..H2C_ATTEMPTS {
            let unsent = outcome
                .error
                .as_deref()
                .is_some_and(|e| e.contains("Canceled") || (e.contains("GoAway(") && e.contains("Remote")));
            if !unsent {
                break;
            }
            outcome = self.h2c_attempt(connection).await;
        }
        outcome
    }

    async fn h2c_attempt(&self, connection: &mut Option<load::H2c>) -> Outcome {
        let h2c = match connection {
            Some(h2c) => h2c,
            None => match load::H2c::connect(&self.target).await {
                Ok(h2c) => connection.insert(h2c),
                Err(error) => {
                    return Outcome {
                        status: None,
                        error: Some(format!("h2c connect: {error}")),
                        time_to_headers: Duration::ZERO,
                        cold_start: false,
                        revision: None,
                        body: String::new(),
                        sent_at: Duration::ZERO,
                    };
                }
            },
        };
        let outcome = h2c.get(self.path, REQUEST_TIMEOUT).await;
        if outcome.status.is_none() {
            *connection = None;
        }
        outcome
    }

    /// False once the run is over.
    async fn wait_unpaused(&self) -> bool {
        while *self.paused.borrow() {
            if !self.stop.sleep(Duration::from_millis(100)).await {
                return false;
            }
        }
        !self.stop.done()
    }
}

/// The label an outcome is counted under, and whether the run asked for it: every 2xx is fine; the sample app's
/// 500 for overlapping requests gets a label of its own.
pub fn classify(outcome: &Outcome) -> (String, bool) {
    match outcome.status {
        Some(status) if status.is_success() => (status.as_u16().to_string(), true),
        Some(StatusCode::INTERNAL_SERVER_ERROR) if outcome.body.starts_with("overlap") => {
            ("500 overlap".to_owned(), false)
        }
        _ => (outcome.label(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, body: &str, error: Option<&str>) -> Outcome {
        Outcome {
            status: status.map(|s| StatusCode::from_u16(s).unwrap()),
            error: error.map(str::to_owned),
            time_to_headers: Duration::ZERO,
            cold_start: false,
            revision: None,
            body: body.to_owned(),
            sent_at: Duration::ZERO,
        }
    }

    #[test]
    fn overlaps_and_errors_are_surprises() {
        assert_eq!(classify(&outcome(Some(200), "hello", None)), ("200".into(), true));
        assert_eq!(
            classify(&outcome(Some(500), "overlap: 1 other request(s) in flight\n", None)),
            ("500 overlap".into(), false)
        );
        assert_eq!(classify(&outcome(Some(500), "boom", None)), ("500".into(), false));
        assert_eq!(classify(&outcome(Some(503), "", None)), ("503".into(), false));
        assert_eq!(
            classify(&outcome(None, "", Some("connection reset"))),
            ("error: connection reset".into(), false)
        );
    }
}
