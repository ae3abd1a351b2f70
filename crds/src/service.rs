//! The `Service` custom resource: one container image served over HTTP, scaled on request load.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest Service name: every derived object name (`{name}`, `{name}-pods`) must stay a 63-character DNS label.
pub const MAX_NAME_LENGTH: usize = 58;

/// A Runway Service: a containerised HTTP app that gets a URL, scales to zero when idle and scales out on
/// concurrent requests per pod.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "serving.runway.dev",
    version = "v1alpha1",
    kind = "Service",
    plural = "services",
    singular = "service",
    shortname = "rsvc",
    category = "runway",
    namespaced,
    status = "ServiceStatus",
    derive = "PartialEq",
    doc = "A Runway Service: a containerised HTTP app that gets a URL, scales to zero when idle and scales out on concurrent requests per pod.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "string", description = "ready/desired pods", json_path = ".status.replicaSummary"),
    printcolumn(name = "Reason", type_ = "string", description = "why the Service is not ready, e.g. ContainerExits", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("self.metadata.name.size() <= 58 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name: must be a DNS-1035 label of at most 58 characters (lowercase letters, digits and '-', starting with a letter), so that every derived object name is valid"),
    validation = kube::core::Rule::new("!has(self.spec.scaling.target) || self.spec.containerConcurrency == 0 || self.spec.scaling.metric != 'concurrency' || self.spec.scaling.target <= self.spec.containerConcurrency")
        .message("spec.scaling.target: must not exceed spec.containerConcurrency when both are set (the soft target cannot be above the hard limit)")
        .field_path(".spec.scaling.target"),
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The pod to run: labels, annotations and a full PodSpec. The serving container is the only container, or the
    /// one container that declares a port; it receives HTTP on that port (8080 when none is declared) and finds it in
    /// the PORT environment variable.
    pub template: ServiceTemplate,

    /// Hard limit of requests in flight per pod, enforced by the activator; further requests wait in its queue.
    /// 0 means unlimited. Use 1 for apps that can only handle one request at a time.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub container_concurrency: i32,

    /// Longest time one request may take until its response starts, time spent queued included. A request past it
    /// gets 504.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: i32,

    /// Seconds a pod may take to become ready (scheduling, image pull, start and readiness probe). When no pod
    /// becomes ready within it, the Service is reported failed (reason ReadinessTimeout unless a crash, pull or
    /// configuration error was already reported) and its pods are stopped, unless minScale holds them; the next
    /// request starts them again. It is also the Deployment's progressDeadlineSeconds, so a rollout whose new pods
    /// never become ready is reported after it too. The default, 120, is shorter than a Deployment's 600 because with
    /// scale to zero every cold start happens while a request waits: two minutes covers a large image pull and a slow
    /// start, yet answers waiting requests before the default 300 s request timeout and stops a broken Service's pods
    /// early. Raise it for apps that take longer to start.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 5, max = 3600))]
    pub progress_deadline_seconds: i32,

    /// How the Service scales on load, to zero and back. Fields left out take the operator's defaults, which the
    /// installation can change (Helm values `autoscaler.*`).
    #[serde(default)]
    pub scaling: Scaling,

    /// Who may call the Service: External (the default) through the activator's external entry point at
    /// http://{name}.{namespace}.{domain} and from inside the cluster; ClusterLocal only from inside the cluster, at
    /// http://{name}.{namespace}.svc.cluster.local (the external entry point answers 404 for it, as for a Service
    /// that does not exist).
    #[serde(default)]
    pub visibility: Visibility,
}

/// Which entry points serve a Service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Visibility {
    /// The external entry point (under the domain) and the internal one.
    #[default]
    External,
    /// Only the internal entry point: pods of the cluster.
    ClusterLocal,
}

fn default_timeout_seconds() -> i32 {
    300
}

/// The default of spec.progressDeadlineSeconds.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 120;

fn default_progress_deadline_seconds() -> i32 {
    DEFAULT_PROGRESS_DEADLINE_SECONDS
}

/// Labels, annotations and pod spec of the Service's pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("self.spec.containers.size() >= 1 && self.spec.containers.all(c, has(c.image) && c.image != '')")
        .message("spec.template.spec.containers: at least one container is required and every container needs an image")
        .field_path(".spec.containers"),
    validation = kube::core::Rule::new("self.spec.containers.size() <= 1 || self.spec.containers.exists_one(c, has(c.ports) && c.ports.size() > 0)")
        .message("spec.template.spec.containers: with several containers, exactly one must declare the serving port")
        .field_path(".spec.containers"),
    validation = kube::core::Rule::new("self.spec.containers.all(c, !has(c.ports) || c.ports.size() <= 1)")
        .message("spec.template.spec.containers[].ports: the serving container declares at most one port")
        .field_path(".spec.containers"),
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTemplate {
    /// Labels and annotations added to every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// The pod specification, as in a Deployment's pod template.
    pub spec: PodSpec,
}

/// Labels and annotations of the Service's pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels added to every pod. Runway's own labels (app.kubernetes.io/*, serving.runway.dev/*) win over these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations added to every pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The load metric the autoscaler holds at the per-pod target.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScalingMetric {
    /// Requests in flight or queued, averaged over time.
    #[default]
    Concurrency,
    /// Requests per second.
    Rps,
}

/// Autoscaling settings: the target load per pod, the bounds, and how fast to react.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.minScale) || !has(self.maxScale) || self.maxScale == 0 || self.minScale <= self.maxScale")
        .message("spec.scaling.minScale: must not exceed spec.scaling.maxScale when maxScale is set")
        .field_path(".minScale"),
    validation = kube::core::Rule::new("!has(self.initialScale) || ((!has(self.minScale) || self.initialScale >= self.minScale) && (!has(self.maxScale) || self.maxScale == 0 || self.initialScale <= self.maxScale))")
        .message("spec.scaling.initialScale: must lie within [minScale, maxScale]")
        .field_path(".initialScale"),
    validation = kube::core::Rule::new("!has(self.activationScale) || ((!has(self.minScale) || self.activationScale >= self.minScale) && (!has(self.maxScale) || self.maxScale == 0 || self.activationScale <= self.maxScale))")
        .message("spec.scaling.activationScale: must lie within [minScale, maxScale]")
        .field_path(".activationScale"),
)]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    /// The metric scaled on: concurrency (requests in flight per pod) or rps (requests per second per pod).
    #[serde(default)]
    pub metric: ScalingMetric,

    /// Per-pod soft target of the metric. Defaults to containerConcurrency when that is set, else to the operator's
    /// default (100 for concurrency, 200 for rps, unless the installation changed them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub target: Option<i32>,

    /// Share of the target the autoscaler aims for, leaving headroom for bursts: pods = load / (target x this / 100).
    /// Defaults to the operator's setting (70).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_utilization_percentage: Option<i32>,

    /// Fewest pods, even when idle. 0 (the default) lets the Service scale to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_scale: Option<i32>,

    /// Most pods. 0 (the default) means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_scale: Option<i32>,

    /// Pods started when the Service is created, before any request; 0 is allowed. Defaults to max(1, minScale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub initial_scale: Option<i32>,

    /// Pods started by a request that arrives while the Service is at zero. Defaults to max(1, minScale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub activation_scale: Option<i32>,

    /// Seconds without any request, after the stable window, before the last pod is removed. Defaults to the
    /// operator's setting (30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_to_zero_grace_period_seconds: Option<i32>,

    /// Seconds of load history averaged for ordinary scaling decisions, and the quiet time that ends panic mode.
    /// Defaults to the operator's setting (60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6, max = 3600))]
    pub stable_window_seconds: Option<i32>,

    /// The panic window, as a percentage of the stable window (at least one second): the short average that reacts
    /// to bursts. Defaults to the operator's setting (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub panic_window_percentage: Option<i32>,

    /// Panic mode starts when the panic window asks for this percentage of the ready pods or more; while panicking
    /// the Service never scales down. Defaults to the operator's setting (200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 110, max = 1000))]
    pub panic_threshold_percentage: Option<i32>,

    /// Seconds a lower pod count must persist before scaling down to it: the Service scales down only to the
    /// highest count wanted over this trailing window. Defaults to the operator's setting (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_delay_seconds: Option<i32>,
}

/// What the operator observed of the Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Where the Service answers: http://{name}.{namespace}.{domain}, or for a ClusterLocal Service
    /// http://{name}.{namespace}.svc.cluster.local (which reaches every Service from inside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, ConfigurationReady (the pods' Deployment) and RoutesReady (the Kubernetes Services the activator
    /// routes through), with reason, message and last transition time. When the pods cannot start or become ready,
    /// Ready and ConfigurationReady are False with the cause as reason (ContainerExits, ContainerCannotStart,
    /// ImagePullFailed, ContainerConfigError, Unschedulable, ReadinessTimeout, ReplicaFailure,
    /// ProgressDeadlineExceeded) and a one-line message taken from the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pods the autoscaler currently asks for.
    #[serde(default)]
    pub desired_replicas: i32,

    /// readyReplicas/desiredReplicas, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_summary: Option<String>,
}
