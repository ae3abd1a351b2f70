//! The load stream to the autoscaler: periodic reports and pokes, fanned out to every open `/v1/load` stream, and the
//! ticker that takes every revision's load each interval.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use bytes::Bytes;
use runway_api::stats::{LoadReport, ReportKind, ServiceLoad};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use crate::route::Registry;

/// How often load is reported.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Reports kept for a stream that falls behind before it starts losing them.
const STREAM_BACKLOG: usize = 64;

/// Fans report lines out to the open load streams.
pub struct LoadHub {
    activator: String,
    lines: broadcast::Sender<Bytes>,
    latest_periodic: Mutex<Option<Bytes>>,
}

impl LoadHub {
    /// `activator` is this activator's pod name, as reports name it.
    pub fn new(activator: impl Into<String>) -> Self {
        LoadHub {
            activator: activator.into(),
            lines: broadcast::channel(STREAM_BACKLOG).0,
            latest_periodic: Mutex::new(None),
        }
    }

    /// Sends a periodic report covering `interval_ms`.
    pub fn publish_periodic(&self, interval_ms: u64, services: Vec<ServiceLoad>) {
        let line = self.line(ReportKind::Periodic, interval_ms, services);
        *self.latest_periodic.lock() = Some(line.clone());
        // No receiver is not an error: nobody listens yet.
        let _ = self.lines.send(line);
    }

    /// Sends a poke at once: requests are waiting for a revision with no routable pod.
    pub fn poke(&self, service: ServiceLoad) {
        let _ = self.lines.send(self.line(ReportKind::Poke, 0, vec![service]));
    }

    /// A new stream: the line to send at once (the latest periodic report, or an empty one before the first) and
    /// the reports that follow.
    pub fn subscribe(&self) -> (Bytes, broadcast::Receiver<Bytes>) {
        let receiver = self.lines.subscribe();
        let first = self.latest_periodic.lock().clone();
        let first = first.unwrap_or_else(|| self.line(ReportKind::Periodic, 0, Vec::new()));
        (first, receiver)
    }

    fn line(&self, kind: ReportKind, interval_ms: u64, services: Vec<ServiceLoad>) -> Bytes {
        LoadReport {
            activator: self.activator.clone(),
            kind,
            interval_ms,
            services,
        }
        .to_line()
        .into()
    }
}

/// Runs for the activator's lifetime: publishes every revision's load once per [`REPORT_INTERVAL`].
pub async fn report_periodically(registry: Arc<Registry>, hub: Arc<LoadHub>) {
    let mut ticker = tokio::time::interval_at(Instant::now() + REPORT_INTERVAL, REPORT_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let interval_ms = u64::try_from((now - last).as_millis()).unwrap_or(u64::MAX);
        last = now;
        hub.publish_periodic(interval_ms, registry.take_loads(now));
    }
}
