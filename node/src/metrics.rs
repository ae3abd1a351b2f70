//! The node agent's Prometheus metrics, and `runway_build_info` (`runway_api::build`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// What failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Freeze,
    Thaw,
    /// Writing or removing a pod's frozen mark.
    Mark,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Freeze => "freeze",
            Operation::Thaw => "thaw",
            Operation::Mark => "mark",
        }
    }
}

/// Every metric the agent exports, registered once.
pub struct Metrics {
    registry: Registry,
    pub freeze_duration: Histogram,
    pub thaw_duration: Histogram,
    pub operation_errors: Family<OperationLabels, Counter>,
    pub frozen_pods: Gauge,
    pub start_thawed_pods: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        runway_api::build::register(&mut root, "node");
        let registry = root.sub_registry_with_prefix("runway_node");
        // 100 µs to about 1.6 s: a thaw is typically well under a millisecond, a freeze may wait for tasks.
        let buckets = || exponential_buckets(0.0001, 2.0, 15);
        let freeze_duration = Histogram::new(buckets());
        registry.register(
            "freeze_duration_seconds",
            "Time from a freeze request to the kernel reporting the pod's cgroup frozen, the mark included",
            freeze_duration.clone(),
        );
        let thaw_duration = Histogram::new(buckets());
        registry.register(
            "thaw_duration_seconds",
            "Time from a thaw request to the kernel reporting the pod's cgroup thawed",
            thaw_duration.clone(),
        );
        let operation_errors = Family::default();
        registry.register(
            "operation_errors",
            "Failed freezes, thaws and writes of the frozen mark",
            operation_errors.clone(),
        );
        let frozen_pods = Gauge::default();
        registry.register(
            "frozen_pods",
            "Pods this agent instance has frozen now",
            frozen_pods.clone(),
        );
        let start_thawed_pods = Counter::default();
        registry.register(
            "start_thawed_pods",
            "Pods found frozen at the agent's start and thawed",
            start_thawed_pods.clone(),
        );
        Metrics {
            registry: root,
            freeze_duration,
            thaw_duration,
            operation_errors,
            frozen_pods,
            start_thawed_pods,
        }
    }
}

impl Metrics {
    pub fn error(&self, operation: Operation) {
        self.operation_errors
            .get_or_create(&OperationLabels {
                operation: operation.label(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exported_under_runway_node() {
        let metrics = Metrics::default();
        metrics.error(Operation::Mark);
        metrics.frozen_pods.set(2);
        metrics.thaw_duration.observe(0.0002);
        let text = metrics.encode();
        for series in [
            "runway_node_freeze_duration_seconds_bucket{le=\"0.0001\"} 0",
            "runway_node_thaw_duration_seconds_count 1",
            "runway_node_operation_errors_total{operation=\"mark\"} 1",
            "runway_node_frozen_pods 2",
            "runway_node_start_thawed_pods_total 0",
            "runway_build_info{component=\"node\"",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }
}
