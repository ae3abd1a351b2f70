//! The operator's Prometheus metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub(crate) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// The autoscaler's series are per revision; the Service's name is there to select all of a Service's revisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RevisionLabels {
    pub(crate) namespace: String,
    pub(crate) service: String,
    pub(crate) revision: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the operator exports, registered once.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) reconciles: Family<ResultLabels, Counter>,
    pub(crate) reconcile_errors: Family<ReasonLabels, Counter>,
    pub(crate) reconcile_duration: Histogram,
    pub(crate) leader: Gauge,
    pub(crate) stable_average: Family<RevisionLabels, FloatGauge>,
    pub(crate) panic_average: Family<RevisionLabels, FloatGauge>,
    pub(crate) desired_pods: Family<RevisionLabels, Gauge>,
    pub(crate) panic_mode: Family<RevisionLabels, Gauge>,
    pub(crate) scale_writes: Family<ResultLabels, Counter>,
    pub(crate) connected_activators: Gauge,
    pub(crate) tick_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("runway_operator");
        let reconciles = Family::default();
        registry.register("reconciles", "Reconciles of Services, by result", reconciles.clone());
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        let stable_average = Family::default();
        registry.register(
            "autoscaler_stable_average",
            "Metric averaged over the stable window",
            stable_average.clone(),
        );
        let panic_average = Family::default();
        registry.register(
            "autoscaler_panic_average",
            "Metric averaged over the panic window",
            panic_average.clone(),
        );
        let desired_pods = Family::default();
        registry.register(
            "autoscaler_desired_pods",
            "Pods the autoscaler asks for",
            desired_pods.clone(),
        );
        let panic_mode = Family::default();
        registry.register(
            "autoscaler_panic_mode",
            "1 while the revision is in panic mode",
            panic_mode.clone(),
        );
        let scale_writes = Family::default();
        registry.register(
            "autoscaler_scale_writes",
            "Writes of Deployment scale, by result",
            scale_writes.clone(),
        );
        let connected_activators = Gauge::default();
        registry.register(
            "autoscaler_connected_activators",
            "Activators whose load stream is open",
            connected_activators.clone(),
        );
        let tick_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "autoscaler_tick_duration_seconds",
            "Time one autoscaler tick took, over every revision",
            tick_duration.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            stable_average,
            panic_average,
            desired_pods,
            panic_mode,
            scale_writes,
            connected_activators,
            tick_duration,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Drops a deleted revision's series.
    pub(crate) fn forget_revision(&self, labels: &RevisionLabels) {
        self.stable_average.remove(labels);
        self.panic_average.remove(labels);
        self.desired_pods.remove(labels);
        self.panic_mode.remove(labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_revisions_series_are_dropped() {
        let metrics = Metrics::default();
        let labels = |revision: &str| RevisionLabels {
            namespace: "ns".into(),
            service: "web".into(),
            revision: revision.into(),
        };
        for revision in ["web-00001", "web-00002"] {
            metrics.desired_pods.get_or_create(&labels(revision)).set(1);
            metrics.stable_average.get_or_create(&labels(revision)).set(1.0);
            metrics.panic_average.get_or_create(&labels(revision)).set(1.0);
            metrics.panic_mode.get_or_create(&labels(revision)).set(0);
        }
        metrics.tick_duration.observe(0.001);
        metrics.forget_revision(&labels("web-00001"));
        let text = metrics.encode();
        assert!(!text.contains("web-00001"), "{text}");
        assert!(
            text.contains(
                r#"runway_operator_autoscaler_desired_pods{namespace="ns",service="web",revision="web-00002"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("runway_operator_autoscaler_tick_duration_seconds_count 1"),
            "{text}"
        );
    }
}
