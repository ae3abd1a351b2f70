//! The operator's Prometheus metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub namespace: String,
    pub service: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the operator exports, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_errors: Family<ReasonLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub leader: Gauge,
    pub stable_average: Family<ServiceLabels, FloatGauge>,
    pub panic_average: Family<ServiceLabels, FloatGauge>,
    pub desired_pods: Family<ServiceLabels, Gauge>,
    pub panic_mode: Family<ServiceLabels, Gauge>,
    pub scale_writes: Family<ResultLabels, Counter>,
    pub connected_activators: Gauge,
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
            "1 while the Service is in panic mode",
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
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Drops a deleted Service's series.
    pub fn forget_service(&self, labels: &ServiceLabels) {
        self.stable_average.remove(labels);
        self.panic_average.remove(labels);
        self.desired_pods.remove(labels);
        self.panic_mode.remove(labels);
    }
}
