//! The activator's Prometheus metrics: the data path's, per revision, and the access checks' of Authorized Services
//! (one registry, so that /metrics and the docs' table have one source).

use std::sync::Arc;
use std::time::Duration;

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

/// A response's status class, as `2xx`: the label of the request duration histogram, few values per revision.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct StatusClass(u16);

impl StatusClass {
    pub fn of(code: u16) -> Self {
        StatusClass(code / 100)
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_fmt(encoder, format_args!("{}xx", self.0))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub namespace: SharedLabel,
    pub service: SharedLabel,
    pub revision: SharedLabel,
    pub status_class: StatusClass,
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

#[derive(Clone, Copy, Debug)]
struct ColdStartBuckets;

impl MetricConstructor<Histogram> for ColdStartBuckets {
    fn new_metric(&self) -> Histogram {
        // 50 ms .. ~102 s: from a warm node's fastest pod start to a large model server's.
        Histogram::new(exponential_buckets(0.05, 2.0, 12))
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
    request_duration: Family<DurationLabels, Histogram, LatencyBuckets>,
    queue_wait: Family<RevisionLabels, Histogram, LatencyBuckets>,
    cold_start_duration: Family<RevisionLabels, Histogram, ColdStartBuckets>,
    frozen_pods: Family<RevisionLabels, Gauge>,
    thaw_duration: Family<RevisionLabels, Histogram, LatencyBuckets>,
    failed_thaws: Family<RevisionLabels, Counter>,
    access_log_dropped: Counter,
    token_reviews: Family<ResultLabels, Counter>,
    access_reviews: Family<ResultLabels, Counter>,
    auth_cache_hits: Family<CacheLabels, Counter>,
    auth_cache_entries: Family<CacheLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        runway_api::build::register(&mut root, "activator");
        let registry = root.sub_registry_with_prefix("runway_activator");
        let metrics = Metrics {
            requests: Family::default(),
            queue_depth: Family::default(),
            in_flight: Family::default(),
            cold_starts: Family::default(),
            abandoned: Family::default(),
            abandoned_cut: Family::default(),
            request_duration: Family::new_with_constructor(LatencyBuckets),
            queue_wait: Family::new_with_constructor(LatencyBuckets),
            cold_start_duration: Family::new_with_constructor(ColdStartBuckets),
            frozen_pods: Family::default(),
            thaw_duration: Family::new_with_constructor(LatencyBuckets),
            failed_thaws: Family::default(),
            access_log_dropped: Counter::default(),
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
            "request_duration_seconds",
            "Time from a request's arrival to its response head, queueing included, by status class",
            metrics.request_duration.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time requests that found no free slot waited in the queue",
            metrics.queue_wait.clone(),
        );
        registry.register(
            "cold_start_duration_seconds",
            "Time from the first request that found the revision with no routable pod to its first routable pod",
            metrics.cold_start_duration.clone(),
        );
        registry.register(
            "frozen_pods",
            "Pods this activator had frozen while idle (spec.scaling.idle Freeze)",
            metrics.frozen_pods.clone(),
        );
        registry.register(
            "thaw_duration_seconds",
            "Time from asking a node agent to thaw a frozen pod to its answer",
            metrics.thaw_duration.clone(),
        );
        registry.register(
            "failed_thaws",
            "Thaws that failed, each making its pod unusable and starting a normal scale-up",
            metrics.failed_thaws.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind (its queue is bounded)",
            metrics.access_log_dropped.clone(),
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
        Metrics {
            registry: root,
            ..metrics
        }
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

    /// The access log's counter of dropped lines.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
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
            queue_wait: self.queue_wait.get_or_create(&labels).clone(),
            cold_start_duration: self.cold_start_duration.get_or_create(&labels).clone(),
            frozen_pods: self.frozen_pods.get_or_create(&labels).clone(),
            thaw_duration: self.thaw_duration.get_or_create(&labels).clone(),
            failed_thaws: self.failed_thaws.get_or_create(&labels).clone(),
            requests: self.requests.clone(),
            request_duration: self.request_duration.clone(),
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
        self.queue_wait.remove(labels);
        self.cold_start_duration.remove(labels);
        self.frozen_pods.remove(labels);
        self.thaw_duration.remove(labels);
        self.failed_thaws.remove(labels);
        for response in series.by_code.lock().iter() {
            self.requests.remove(&series.request_labels(response.code));
            self.request_duration.remove(&series.duration_labels(response.code));
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
    pub queue_wait: Histogram,
    pub cold_start_duration: Histogram,
    pub frozen_pods: Gauge,
    pub thaw_duration: Histogram,
    pub failed_thaws: Counter,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<DurationLabels, Histogram, LatencyBuckets>,
    /// The series of each status code seen so far (a handful per revision).
    by_code: Mutex<Vec<CodeSeries>>,
}

/// The series a response with one status code counts in.
struct CodeSeries {
    code: u16,
    requests: Counter,
    /// Shared by the codes of one class.
    duration: Histogram,
}

impl RevisionMetrics {
    /// Counts a response with status `code` whose head left `elapsed` after the request arrived.
    pub fn count_response(&self, code: u16, elapsed: Duration) {
        let mut by_code = self.by_code.lock();
        let index = match by_code.iter().position(|series| series.code == code) {
            Some(index) => index,
            None => {
                by_code.push(CodeSeries {
                    code,
                    requests: self.requests.get_or_create(&self.request_labels(code)).clone(),
                    duration: self.request_duration.get_or_create(&self.duration_labels(code)).clone(),
                });
                by_code.len() - 1
            }
        };
        let series = &by_code[index];
        series.requests.inc();
        series.duration.observe(elapsed.as_secs_f64());
    }

    fn duration_labels(&self, code: u16) -> DurationLabels {
        DurationLabels {
            namespace: self.labels.namespace.clone(),
            service: self.labels.service.clone(),
            revision: self.labels.revision.clone(),
            status_class: StatusClass::of(code),
        }
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
        old.count_response(200, Duration::from_millis(3));
        new.count_response(503, Duration::from_millis(3));
        let text = metrics.encode();
        assert!(
            text.contains(
                "runway_activator_requests_total{namespace=\"default\",service=\"hello\",revision=\"hello-00002\",code=\"503\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "runway_activator_request_duration_seconds_count{namespace=\"default\",service=\"hello\",revision=\"hello-00002\",status_class=\"5xx\"} 1"
            ),
            "{text}"
        );
        metrics.forget(&old);
        let text = metrics.encode();
        assert!(!text.contains("hello-00001"), "{text}");
        assert!(text.contains("hello-00002"), "{text}");
    }
}
