//! The flooded activator's memory over time: its peak, when it first crossed the limit, and whether it vanished.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::procfs;

/// Often enough to date the crossing of the limit to a tenth of a second.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, Default)]
pub struct Trace {
    pub peak_hwm_kib: u64,
    /// When VmRSS first reached the limit, and how many flood heads had been sent in full by then.
    pub crossed: Option<(Duration, usize)>,
    /// When the process was no longer there.
    pub gone_at: Option<Duration>,
}

/// Samples `pid` until `done` turns true or the process is gone.
pub async fn trace(
    pid: u32,
    limit_kib: u64,
    origin: Instant,
    open: Arc<AtomicUsize>,
    mut done: watch::Receiver<bool>,
) -> Trace {
    let mut trace = Trace::default();
    loop {
        match procfs::memory(pid) {
            Some(memory) => {
                trace.peak_hwm_kib = trace.peak_hwm_kib.max(memory.hwm_kib);
                if trace.crossed.is_none() && memory.rss_kib >= limit_kib {
                    trace.crossed = Some((origin.elapsed(), open.load(Ordering::Relaxed)));
                }
            }
            None => {
                trace.gone_at = Some(origin.elapsed());
                return trace;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = done.wait_for(|d| *d) => return trace,
        }
    }
}
