//! The activator's Prometheus metrics: the data path's, per revision, and the access checks' of Authorized Services
//! (one registry, so that /metrics and the docs' table have one source).

use std::sync::Arc;

use parking_lot::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::RevisionId;

/// A label value shared by all of a revision's series: cloning it is a reference count, not an allocation.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SharedLabel(Arc<str>);

impl EncodeLabelValue for SharedLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    pub namespace: SharedLabel,
    pub service: SharedLabel,
    pub revision: SharedLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub namespace: SharedLabel,
    pub service: SharedLabel,
    pub revision: SharedLabel,
    pub code: u16,
}

/// A review's or an access check's result, one of a few fixed values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Which cache of the access checks: `token` (TokenReviews) or `access` (SubjectAccessReviews).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
}

/// The results a TokenReview counts under: the three answers, and a review not made for the rate limit.
pub const TOKEN_REVIEW_RESULTS: [&str; 4] = ["authenticated", "unauthenticated", "error", "limited"];
/// The results a SubjectAccessReview counts under.
pub const ACCESS_REVIEW_RESULTS: [&str; 4] = ["allowed", "denied", "error", "limited"];
/// The caches of the access checks.
pub const ACCESS_CACHES: [&str; 2] = ["token", "access"];

#[derive(Clone, Copy, Debug)]
struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        // 0.5 ms .. ~60 s
        Histogram::new(exponential_buckets(0.0005, 2.5, 14))
    }
}

/// All series, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    queue_depth: Family<RevisionLabels, Gauge>,
    in_flight: Family<RevisionLabels, Gauge>,
    cold_starts: Family<RevisionLabels, Counter>,
    abandoned: Family<RevisionLabels, Counter>,
    abandoned_cut: Family<RevisionLabels, Counter>,
    latency: Family<RevisionLabels, Histogram, LatencyBuckets>,
    token_reviews: Family<ResultLabels, Counter>,
    access_reviews: Family<ResultLabels, Counter>,
    auth_cache_hits: Family<CacheLabels, Counter>,
    auth_cache_entries: Family<CacheLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("runway_activator");
        let metrics = Metrics {
            requests: Family::default(),
            queue_depth: Family::default(),
            in_flight: Family::default(),
            cold_starts: Family::default(),
            abandoned: Family::default(),
            abandoned_cut: Family::default(),
            latency: Family::new_with_constructor(LatencyBuckets),
            token_reviews: Family::default(),
            access_reviews: Family::default(),
            auth_cache_hits: Family::default(),
            auth_cache_entries: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by Service, revision and status code",
            metrics.requests.clone(),
        );
        registry.register("queue_depth", "Requests waiting for a pod", metrics.queue_depth.clone());
        registry.register("in_flight", "Requests in flight to pods", metrics.in_flight.clone());
        registry.register(
            "cold_starts",
            "Times a request arrived while the revision had no routable pod",
            metrics.cold_starts.clone(),
        );
        registry.register(
            "abandoned_requests",
            "Requests whose client or deadline left before the pod finished; the pod's slot stayed taken until it did",
            metrics.abandoned.clone(),
        );
        registry.register(
            "abandoned_requests_cut",
            "Abandoned requests the pod had not finished within the bound, whose backend connection was closed",
            metrics.abandoned_cut.clone(),
        );
        registry.register(
            "proxy_duration_seconds",
            "Time from request arrival to response headers, queueing included",
            metrics.latency.clone(),
        );
        registry.register(
            "token_reviews",
            "Bearer tokens of requests to Authorized Services, by the TokenReview's result (limited: not reviewed, past the rate limit)",
            metrics.token_reviews.clone(),
        );
        registry.register(
            "access_reviews",
            "Callers of Authorized Services, by the SubjectAccessReview's result (limited: not reviewed, past the rate limit)",
            metrics.access_reviews.clone(),
        );
        registry.register(
            "auth_cache_hits",
            "Access checks answered from a cache instead of a review",
            metrics.auth_cache_hits.clone(),
        );
        registry.register(
            "auth_cache_entries",
            "Entries in a cache of the access checks (bounded by --auth-cache-entries)",
            metrics.auth_cache_entries.clone(),
        );
        // Every series from the start: a counter that appears only at its first increment hides that increment from
        // rate(), and the fixed label values cost nothing.
        for result in TOKEN_REVIEW_RESULTS {
            let _ = metrics.token_reviews.get_or_create(&ResultLabels { result });
        }
        for result in ACCESS_REVIEW_RESULTS {
            let _ = metrics.access_reviews.get_or_create(&ResultLabels { result });
        }
        for cache in ACCESS_CACHES {
            let _ = metrics.auth_cache_hits.get_or_create(&CacheLabels { cache });
            let _ = metrics.auth_cache_entries.get_or_create(&CacheLabels { cache });
        }
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// The counter of TokenReviews with `result` (one of `TOKEN_REVIEW_RESULTS`).
    pub fn token_reviews(&self, result: &'static str) -> Counter {
        self.token_reviews.get_or_create(&ResultLabels { result }).clone()
    }

    /// The counter of SubjectAccessReviews with `result` (one of `ACCESS_REVIEW_RESULTS`).
    pub fn access_reviews(&self, result: &'static str) -> Counter {
        self.access_reviews.get_or_create(&ResultLabels { result }).clone()
    }

    /// The hits and the size of one of `ACCESS_CACHES`.
    pub fn auth_cache(&self, cache: &'static str) -> (Counter, Gauge) {
        let labels = CacheLabels { cache };
        (
            self.auth_cache_hits.get_or_create(&labels).clone(),
            self.auth_cache_entries.get_or_create(&labels).clone(),
        )
    }

    /// The series of one revision, resolved once so that the request path only touches atomics.
    pub fn for_revision(&self, id: &RevisionId) -> RevisionMetrics {
        let labels = RevisionLabels {
            namespace: SharedLabel(id.key.namespace.as_str().into()),
            service: SharedLabel(id.service.as_str().into()),
            revision: SharedLabel(id.key.name.as_str().into()),
        };
        RevisionMetrics {
            queue_depth: self.queue_depth.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            cold_starts: self.cold_starts.get_or_create(&labels).clone(),
            abandoned: self.abandoned.get_or_create(&labels).clone(),
            abandoned_cut: self.abandoned_cut.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            requests: self.requests.clone(),
            by_code: Mutex::new(Vec::new()),
            labels,
        }
    }

    /// Drops a deleted revision's series, so that their number follows the revisions that exist.
    pub fn forget(&self, series: &RevisionMetrics) {
        let labels = &series.labels;
        self.queue_depth.remove(labels);
        self.in_flight.remove(labels);
        self.cold_starts.remove(labels);
        self.abandoned.remove(labels);
        self.abandoned_cut.remove(labels);
        self.latency.remove(labels);
        for (code, _) in series.by_code.lock().iter() {
            self.requests.remove(&series.request_labels(*code));
        }
    }
}

/// One revision's series.
pub struct RevisionMetrics {
    labels: RevisionLabels,
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    pub cold_starts: Counter,
    pub abandoned: Counter,
    pub abandoned_cut: Counter,
    pub latency: Histogram,
    requests: Family<RequestLabels, Counter>,
    /// Counters per status code seen so far (a handful per revision).
    by_code: Mutex<Vec<(u16, Counter)>>,
}

impl RevisionMetrics {
    pub fn count_response(&self, code: u16) {
        let mut by_code = self.by_code.lock();
        if let Some((_, counter)) = by_code.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        let counter = self.requests.get_or_create(&self.request_labels(code)).clone();
        counter.inc();
        by_code.push((code, counter));
    }

    fn request_labels(&self, code: u16) -> RequestLabels {
        RequestLabels {
            namespace: self.labels.namespace.clone(),
            service: self.labels.service.clone(),
            revision: self.labels.revision.clone(),
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_revision_and_go_with_it() {
        let metrics = Metrics::default();
        let old = metrics.for_revision(&RevisionId::new("default", "hello", "hello-00001"));
        let new = metrics.for_revision(&RevisionId::new("default", "hello", "hello-00002"));
        old.count_response(200);
        new.count_response(503);
        let text = metrics.encode();
        assert!(
            text.contains(
                "runway_activator_requests_total{namespace=\"default\",service=\"hello\",revision=\"hello-00002\",code=\"503\"} 1"
            ),
            "{text}"
        );
        metrics.forget(&old);
        let text = metrics.encode();
        assert!(!text.contains("hello-00001"), "{text}");
        assert!(text.contains("hello-00002"), "{text}");
    }
}
