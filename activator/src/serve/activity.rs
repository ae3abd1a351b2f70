//! When a connection or a tunnel was last active, for their idle timeouts: a moment kept in an atomic, so that the
//! request path and the copy loops record it without a lock or a clock read beyond their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A moment (milliseconds since the thing it watches began) that any task may move forward.
#[derive(Debug)]
pub struct LastActive {
    epoch: Instant,
    since_epoch_ms: AtomicU64,
}

impl LastActive {
    /// Active now, at the start.
    pub fn new() -> Self {
        LastActive {
            epoch: Instant::now(),
            since_epoch_ms: AtomicU64::new(0),
        }
    }

    /// Active now.
    pub fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since_epoch_ms.store(now, Ordering::Relaxed);
    }

    /// When it was last active.
    pub fn at(&self) -> Instant {
        self.epoch + Duration::from_millis(self.since_epoch_ms.load(Ordering::Relaxed))
    }

    /// Resolves once it has not been active for `idle`.
    pub async fn silent_for(&self, idle: Duration) {
        loop {
            let at = self.at() + idle;
            if at <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_is_measured_from_the_last_bytes() {
        let activity = LastActive::new();
        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        activity.touch();
        activity.silent_for(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(8));
    }
}
