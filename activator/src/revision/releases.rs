//! Wakes the handoff questions of other activators that wait for this one's in-flight requests to end (see
//! `control::handoff`): a revision signals every released slot and every change of view here.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Wakes handoff questions waiting for in-flight requests to end. Releasing costs one atomic load while nobody
/// waits, which is nearly always.
#[derive(Default)]
pub struct Releases {
    waiting: AtomicUsize,
    notify: Notify,
}

impl Releases {
    /// A slot was released or the view changed.
    pub fn changed(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Waits until `holds` is true, looking again after each change, at most until `deadline`; whether it held.
    pub async fn wait_until(&self, holds: impl Fn() -> bool, deadline: Instant) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let held = loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if holds() {
                break true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break holds();
            }
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        held
    }
}
