//! Waiting for a condition with a deadline, keeping what was seen for the failure message.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often [`wait_until`] checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what} ({attempts} checks); last seen: {last_seen}")]
pub struct Timeout {
    pub what: String,
    pub timeout: Duration,
    pub attempts: u32,
    pub last_seen: String,
}

/// Calls `check` every [`POLL_INTERVAL`] until it returns `Ok`, and returns that value. `Err(observation)` means
/// "not yet" and says what was seen (an API error counts as an observation too); the last one goes into the
/// [`Timeout`]. A check that hangs is cut off at the deadline.
pub async fn wait_until<T, F, Fut>(what: impl Into<String>, timeout: Duration, mut check: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut attempts = 0;
    let mut last_seen = String::from("nothing yet");
    loop {
        attempts += 1;
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(seen)) => last_seen = seen,
            Err(_) => last_seen = format!("the check was still running at the deadline (before: {last_seen})"),
        }
        if Instant::now() >= deadline {
            return Err(Timeout {
                what: what.into(),
                timeout,
                attempts,
                last_seen,
            });
        }
        tokio::time::sleep_until((Instant::now() + POLL_INTERVAL).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = wait_until("three calls", Duration::from_secs(5), || {
            calls += 1;
            let now = calls;
            async move { if now >= 3 { Ok(now) } else { Err(format!("call {now}")) } }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_observation() {
        let err = wait_until("never", Duration::from_millis(600), || async {
            Err::<(), _>("still no".to_owned())
        })
        .await
        .unwrap_err();
        assert_eq!(err.what, "never");
        assert_eq!(err.last_seen, "still no");
        assert!(err.attempts >= 2, "{err}");
        assert!(err.to_string().contains("last seen: still no"));
    }

    #[tokio::test]
    async fn cuts_off_a_hanging_check() {
        let started = Instant::now();
        let err = wait_until("hang", Duration::from_millis(300), || {
            std::future::pending::<Result<(), String>>()
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.last_seen.contains("still running"), "{err}");
    }
}
