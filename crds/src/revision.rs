//! The `Revision` custom resource: an immutable snapshot of a Service's template, concurrency and timeouts. The
//! operator creates one for each change of those fields; each revision runs its own pods, and the Service's traffic
//! is split among its revisions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::replicas::ReplicaStatus;

use crate::service::{Freeze, ServiceSpec, ServiceTemplate};

/// Longest revision name: `{name}-pods`, the headless Service of its pods, must stay a 63-character DNS label.
pub const MAX_NAME_LENGTH: usize = 58;

/// What a revision runs: copied from its Service's spec when the revision is created, never changed afterwards.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "serving.runway.dev",
    version = "v1alpha1",
    kind = "Revision",
    plural = "revisions",
    singular = "revision",
    shortname = "rrev",
    category = "runway",
    namespaced,
    status = "RevisionStatus",
    derive = "PartialEq",
    doc = "A Revision: an immutable snapshot of a Runway Service's template, concurrency and timeouts, with its own pods. The operator creates one for each change of those fields.",
    printcolumn(name = "Service", type_ = "string", json_path = ".metadata.labels['serving\\.runway\\.dev/service']"),
    printcolumn(name = "Generation", type_ = "string", description = "the Service's generation it was made from", json_path = ".metadata.labels['serving\\.runway\\.dev/generation']"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "string", description = "ready/desired pods, and how many are frozen", json_path = ".status.replicaSummary"),
    printcolumn(name = "Traffic%", type_ = "integer", description = "percent of the Service's requests", json_path = ".status.trafficPercent"),
    printcolumn(name = "Reason", type_ = "string", description = "why the revision is not ready", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("self.metadata.name.size() <= 58")
        .message("metadata.name: a revision's name has at most 58 characters, so that '{name}-pods' is a valid name"),
    validation = kube::core::Rule::new("self.spec == oldSelf.spec")
        .message("spec: a revision is immutable; change its Service, which makes a new revision"),
)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The pod to run, as in the Service's spec.template.
    pub template: ServiceTemplate,

    /// Hard limit of requests in flight per pod; 0 means unlimited.
    #[serde(default)]
    pub container_concurrency: i32,

    /// Longest time one request may take until its response starts, queueing included.
    pub timeout_seconds: i32,

    /// Seconds a pod may take to become ready.
    pub progress_deadline_seconds: i32,

    /// Set when its idle pods are frozen rather than removed (the Service's spec.scaling.idle Freeze).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Freeze>,
}

impl RevisionSpec {
    /// The revision a Service's spec asks for. Equal specs make the same revision: a Service whose spec changes
    /// only outside these fields (scaling, traffic, visibility) keeps its revision.
    pub fn from_service_spec(spec: &ServiceSpec) -> Self {
        let mut template = spec.template.clone();
        // The name is the revision's own name, not part of what it runs.
        if let Some(metadata) = template.metadata.as_mut() {
            metadata.name = None;
        }
        RevisionSpec {
            template,
            container_concurrency: spec.container_concurrency,
            timeout_seconds: spec.timeout_seconds,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            freeze: spec.scaling.freeze(),
        }
    }
}

/// What the operator observed of the revision.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: True when its pods serve, or when it is at zero with no known failure; Unknown (Deploying) while its
    /// first pods start; False with the cause as reason (ContainerExits, ImagePullFailed, ...) and a one-line
    /// message taken from the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Its pods: replicas, readyReplicas, desiredReplicas and replicaSummary.
    #[serde(flatten)]
    pub pods: ReplicaStatus,

    /// The digest of the serving container's image, as the kubelet reports it once a pod ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,

    /// Whether the Service routes requests to it: it has a percent above 0 or a tag.
    #[serde(default)]
    pub routed: bool,

    /// Its share of the Service's requests, summed over the traffic targets that name it.
    #[serde(default)]
    pub traffic_percent: i32,

    /// The tags that give it its own URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}
