//! The operator's Prometheus metrics, and `runway_build_info` (`runway_api::build`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use runway_api::ScalingMetric;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub(crate) namespace: String,
    pub(crate) service: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the operator exports, registered once.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) reconciles: Family<ResultLabels, Counter>,
    pub(crate) reconcile_errors: Family<ReasonLabels, Counter>,
    pub(crate) reconcile_duration: Histogram,
    pub(crate) leader: Gauge,
    pub(crate) service_ready: Family<ServiceLabels, Gauge>,
    stable_concurrency: Family<RevisionLabels, FloatGauge>,
    panic_concurrency: Family<RevisionLabels, FloatGauge>,
    stable_rps: Family<RevisionLabels, FloatGauge>,
    panic_rps: Family<RevisionLabels, FloatGauge>,
    pub(crate) desired_pods: Family<RevisionLabels, Gauge>,
    pub(crate) ready_pods: Family<RevisionLabels, Gauge>,
    pub(crate) panic_mode: Family<RevisionLabels, Gauge>,
    pub(crate) scale_writes: Family<ResultLabels, Counter>,
    pub(crate) connected_activators: Gauge,
    pub(crate) tick_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        runway_api::build::register(&mut root, "operator");
        let registry = root.sub_registry_with_prefix("runway_operator");
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
        let service_ready = Family::default();
        registry.register(
            "service_ready",
            "1 while the Service's Ready condition is True, else 0 (leader only)",
            service_ready.clone(),
        );
        let stable_concurrency = Family::default();
        registry.register(
            "autoscaler_stable_concurrency",
            "Requests in flight or queued, averaged over the stable window (Services scaling on concurrency)",
            stable_concurrency.clone(),
        );
        let panic_concurrency = Family::default();
        registry.register(
            "autoscaler_panic_concurrency",
            "Requests in flight or queued, averaged over the panic window (Services scaling on concurrency)",
            panic_concurrency.clone(),
        );
        let stable_rps = Family::default();
        registry.register(
            "autoscaler_stable_requests_per_second",
            "Request arrivals per second over the stable window (Services scaling on rps)",
            stable_rps.clone(),
        );
        let panic_rps = Family::default();
        registry.register(
            "autoscaler_panic_requests_per_second",
            "Request arrivals per second over the panic window (Services scaling on rps)",
            panic_rps.clone(),
        );
        let desired_pods = Family::default();
        registry.register(
            "autoscaler_desired_pods",
            "Pods the autoscaler asks for",
            desired_pods.clone(),
        );
        let ready_pods = Family::default();
        registry.register(
            "autoscaler_ready_pods",
            "Ready pods the autoscaler counts (the Deployment's readyReplicas)",
            ready_pods.clone(),
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
            registry: root,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            service_ready,
            stable_concurrency,
            panic_concurrency,
            stable_rps,
            panic_rps,
            desired_pods,
            ready_pods,
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

    /// The revision's stable and panic averages under the names of the metric its Service scales on; the other
    /// metric's pair is dropped, so a Service that changed metric leaves no stale series.
    pub(crate) fn set_averages(&self, labels: &RevisionLabels, metric: ScalingMetric, stable: f64, panic: f64) {
        let ((stable_family, panic_family), (stale_stable, stale_panic)) = match metric {
            ScalingMetric::Concurrency => (
                (&self.stable_concurrency, &self.panic_concurrency),
                (&self.stable_rps, &self.panic_rps),
            ),
            ScalingMetric::Rps => (
                (&self.stable_rps, &self.panic_rps),
                (&self.stable_concurrency, &self.panic_concurrency),
            ),
        };
        stable_family.get_or_create(labels).set(stable);
        panic_family.get_or_create(labels).set(panic);
        stale_stable.remove(labels);
        stale_panic.remove(labels);
    }

    /// Drops a deleted revision's series.
    pub(crate) fn forget_revision(&self, labels: &RevisionLabels) {
        for family in self.averages() {
            family.remove(labels);
        }
        for family in self.pod_counts() {
            family.remove(labels);
        }
    }

    /// This replica stopped leading: it no longer autoscales nor reconciles, so it exports no Service's or revision's
    /// state (the new leader does; two replicas with both would double every sum and keep an old 0 alerting).
    pub(crate) fn stopped_leading(&self) {
        self.leader.set(0);
        self.service_ready.clear();
        for family in self.averages() {
            family.clear();
        }
        for family in self.pod_counts() {
            family.clear();
        }
    }

    fn averages(&self) -> [&Family<RevisionLabels, FloatGauge>; 4] {
        [
            &self.stable_concurrency,
            &self.panic_concurrency,
            &self.stable_rps,
            &self.panic_rps,
        ]
    }

    fn pod_counts(&self) -> [&Family<RevisionLabels, Gauge>; 3] {
        [&self.desired_pods, &self.ready_pods, &self.panic_mode]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(revision: &str) -> RevisionLabels {
        RevisionLabels {
            namespace: "ns".into(),
            service: "web".into(),
            revision: revision.into(),
        }
    }

    #[test]
    fn a_deleted_revisions_series_are_dropped() {
        let metrics = Metrics::default();
        for revision in ["web-00001", "web-00002"] {
            metrics.desired_pods.get_or_create(&labels(revision)).set(1);
            metrics.ready_pods.get_or_create(&labels(revision)).set(1);
            metrics.set_averages(&labels(revision), ScalingMetric::Concurrency, 1.0, 1.0);
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

    #[test]
    fn averages_carry_the_name_of_the_services_metric_only() {
        let metrics = Metrics::default();
        let web = labels("web-00001");
        metrics.set_averages(&web, ScalingMetric::Concurrency, 3.5, 7.0);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"runway_operator_autoscaler_stable_concurrency{namespace="ns",service="web",revision="web-00001"} 3.5"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"runway_operator_autoscaler_panic_concurrency{namespace="ns",service="web",revision="web-00001"} 7.0"#
            ),
            "{text}"
        );
        assert!(!text.contains("requests_per_second{"), "{text}");

        metrics.set_averages(&web, ScalingMetric::Rps, 40.0, 80.0);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"runway_operator_autoscaler_stable_requests_per_second{namespace="ns",service="web",revision="web-00001"} 40.0"#
            ),
            "{text}"
        );
        assert!(!text.contains("concurrency{"), "the Service changed metric: {text}");
    }

    #[test]
    fn a_replica_that_stops_leading_exports_no_service_or_revision_state() {
        let metrics = Metrics::default();
        metrics.leader.set(1);
        metrics.set_averages(&labels("web-00001"), ScalingMetric::Rps, 1.0, 1.0);
        metrics.desired_pods.get_or_create(&labels("web-00001")).set(2);
        metrics
            .service_ready
            .get_or_create(&ServiceLabels {
                namespace: "ns".into(),
                service: "web".into(),
            })
            .set(0);
        metrics.stopped_leading();
        let text = metrics.encode();
        assert!(!text.contains("web"), "{text}");
        assert!(text.contains("runway_operator_leader 0"), "{text}");
    }

    #[test]
    fn the_build_is_exported_next_to_the_operators_metrics() {
        let text = Metrics::default().encode();
        assert!(
            text.contains(r#"runway_build_info{component="operator",version=""#),
            "{text}"
        );
        assert!(text.contains("# TYPE runway_operator_leader gauge"), "{text}");
    }
}
