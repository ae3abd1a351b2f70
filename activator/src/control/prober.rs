//! Readiness probes of new pods, so that a cold start does not wait for the kubelet's probe period. One prober runs
//! for the activator's lifetime; the revisions send it the pods to probe on their probe channel, and it reports a
//! pass through the request, never holding a revision itself.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::control::http_get::get_status;
use crate::revision::{ProbeKind, ProbeRequest};

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Pause between attempts during the first `fast_window` of a pod's probing: an app usually listens within a
    /// few hundred milliseconds of its IP appearing, and at a cold start a request waits for exactly that moment.
    pub fast_interval: Duration,
    /// How long a pod is probed at `fast_interval`.
    pub fast_window: Duration,
    /// Pause between attempts after that: a slow starter is not probed at the fast rate for minutes.
    pub interval: Duration,
    /// Bound on one attempt.
    pub timeout: Duration,
}

impl ProbeConfig {
    /// The pause before the next attempt, `probing` after the first one.
    fn pause(&self, probing: Duration) -> Duration {
        if probing < self.fast_window {
            self.fast_interval
        } else {
            self.interval
        }
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            fast_interval: Duration::from_millis(10),
            fast_window: Duration::from_secs(2),
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
        }
    }
}

/// Runs until every revision's probe channel is closed: probes each requested pod on a task of its own.
pub async fn run(mut requests: mpsc::UnboundedReceiver<ProbeRequest>, config: ProbeConfig) {
    while let Some(request) = requests.recv().await {
        tokio::spawn(probe(request, config.clone()));
    }
}

/// Probes the pod until it answers or no longer needs probing (routable through Kubernetes, gone, terminating).
async fn probe(request: ProbeRequest, config: ProbeConfig) {
    let started = tokio::time::Instant::now();
    while let Some(kind) = request.plan() {
        let ready = tokio::time::timeout(config.timeout, probe_once(request.addr, &kind))
            .await
            .unwrap_or(false);
        if ready {
            request.answered();
            return;
        }
        tokio::time::sleep(config.pause(started.elapsed())).await;
    }
}

/// One attempt: a TCP connect, or HTTP GETs (one connection each, as the kubelet's) that must all answer 2xx or 3xx.
async fn probe_once(addr: SocketAddr, kind: &ProbeKind) -> bool {
    let ProbeKind::Http(paths) = kind else {
        return TcpStream::connect(addr).await.is_ok();
    };
    for path in paths {
        let Ok(stream) = TcpStream::connect(addr).await else {
            return false;
        };
        let answer = get_status(stream, addr, path, "runway-activator-probe").await;
        if !answer.is_some_and(|status| status.is_success() || status.is_redirection()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pod_is_probed_fast_at_first_then_at_the_slow_interval() {
        let config = ProbeConfig::default();
        assert_eq!(config.pause(Duration::ZERO), Duration::from_millis(10));
        assert_eq!(config.pause(Duration::from_millis(1_999)), Duration::from_millis(10));
        assert_eq!(config.pause(Duration::from_secs(2)), Duration::from_millis(100));
    }
}
