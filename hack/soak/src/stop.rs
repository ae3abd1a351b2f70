//! When a run ends: at its deadline, or earlier on Ctrl-C / SIGTERM, so that loops end by themselves and the
//! cleanup (namespace, child activator) still happens.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::time::Instant;

/// Turns true on the first SIGINT or SIGTERM.
pub type Interrupted = watch::Receiver<bool>;

pub fn on_interrupt() -> Interrupted {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("runway-soak: interrupted, stopping and cleaning up");
        tx.send_replace(true);
    });
    rx
}

/// Resolves once interrupted (never if the sender is gone without interrupting).
pub async fn interrupted(mut rx: Interrupted) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A deadline that an interrupt brings forward.
#[derive(Clone, Debug)]
pub struct Stop {
    deadline: Instant,
    interrupted: Interrupted,
}

impl Stop {
    pub fn after(run_for: Duration, interrupted: Interrupted) -> Stop {
        Stop {
            deadline: Instant::now() + run_for,
            interrupted,
        }
    }

    pub fn done(&self) -> bool {
        *self.interrupted.borrow() || Instant::now() >= self.deadline
    }

    pub fn remaining(&self) -> Duration {
        if *self.interrupted.borrow() {
            Duration::ZERO
        } else {
            self.deadline.saturating_duration_since(Instant::now())
        }
    }

    /// Sleeps `pause`, cut short by the deadline or an interrupt; true if the run goes on afterwards.
    pub async fn sleep(&self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause.min(self.remaining())) => {}
            () = interrupted(self.interrupted.clone()) => {}
        }
        !self.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_ends_the_run() {
        let (_tx, rx) = watch::channel(false);
        let stop = Stop::after(Duration::from_millis(50), rx);
        assert!(!stop.done());
        assert!(
            !stop.sleep(Duration::from_secs(5)).await,
            "the sleep ends at the deadline"
        );
        assert!(stop.done());
    }

    #[tokio::test]
    async fn an_interrupt_ends_it_early() {
        let (tx, rx) = watch::channel(false);
        let stop = Stop::after(Duration::from_secs(60), rx);
        let sleeper = tokio::spawn({
            let stop = stop.clone();
            async move { stop.sleep(Duration::from_secs(60)).await }
        });
        tx.send_replace(true);
        assert!(
            !tokio::time::timeout(Duration::from_secs(5), sleeper)
                .await
                .unwrap()
                .unwrap()
        );
        assert_eq!(stop.remaining(), Duration::ZERO);
    }
}
