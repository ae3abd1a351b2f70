//! The `Service` custom resource: one container image served over HTTP, scaled on request load.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::replicas::ReplicaStatus;

/// Longest Service name: its revisions' names (`{name}-{5 digits}`) must leave room for `-pods` in a 63-character
/// DNS label.
pub const MAX_NAME_LENGTH: usize = 52;

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
    printcolumn(name = "Latest Ready", type_ = "string", description = "the newest revision that became ready", json_path = ".status.latestReadyRevisionName"),
    printcolumn(name = "Traffic", type_ = "string", description = "revisions and their share of requests", json_path = ".status.trafficSummary"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "string", description = "ready/desired pods, and how many are frozen", json_path = ".status.replicaSummary"),
    printcolumn(name = "Reason", type_ = "string", description = "why the Service is not ready, e.g. ContainerExits", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name: must be a DNS-1035 label of at most 52 characters (lowercase letters, digits and '-', starting with a letter), so that every derived object name is valid"),
    validation = kube::core::Rule::new("!has(self.spec.template.metadata) || !has(self.spec.template.metadata.name) || self.spec.template.metadata.name.startsWith(self.metadata.name + '-')")
        .message("spec.template.metadata.name: a revision's name must start with the Service's name and '-'")
        .field_path(".spec.template.metadata.name"),
    validation = kube::core::Rule::new("!has(self.spec.traffic) || self.spec.traffic.all(t, !has(t.tag) || t.tag.size() + self.metadata.name.size() < 63)")
        .message("spec.traffic[].tag: '{tag}-{name}' must fit a 63-character DNS label, as it names the tag's host")
        .field_path(".spec.traffic"),
    validation = kube::core::Rule::new("!has(self.spec.traffic) || self.spec.traffic.map(t, has(t.percent) ? t.percent : 0).sum() == 100")
        .message("spec.traffic: the percents must sum to 100")
        .field_path(".spec.traffic"),
    validation = kube::core::Rule::new("!has(self.spec.traffic) || self.spec.traffic.all(t, !has(t.tag) || self.spec.traffic.exists_one(u, has(u.tag) && u.tag == t.tag))")
        .message("spec.traffic[].tag: each tag may appear only once")
        .field_path(".spec.traffic"),
    validation = kube::core::Rule::new("!has(self.spec.scaling.idle) || self.spec.scaling.idle != 'Freeze' || self.spec.template.spec.containers.all(c, !has(c.livenessProbe))")
        .message("spec.template.spec.containers[].livenessProbe: not allowed with spec.scaling.idle Freeze: a frozen container cannot answer the kubelet's probes, and a liveness probe that fails while it is frozen would restart it (the activator checks readiness while the pod is thawed)")
        .field_path(".spec.template.spec.containers"),
    validation = kube::core::Rule::new("!has(self.spec.scaling.idle) || self.spec.scaling.idle != 'Freeze' || self.spec.template.spec.containers.all(c, !has(c.readinessProbe) || has(c.readinessProbe.httpGet) || has(c.readinessProbe.tcpSocket))")
        .message("spec.template.spec.containers[].readinessProbe: with spec.scaling.idle Freeze it must be an httpGet or tcpSocket probe: the activator runs it in place of the kubelet, which cannot probe a frozen container")
        .field_path(".spec.template.spec.containers"),
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

    /// How requests are split among revisions. Each target names a revision (revisionName) or follows the latest ready
    /// one (latestRevision: true), with a percent (the percents sum to 100) and an optional tag, which gives the
    /// target's revision its own URL: http://{tag}-{name}.{namespace}.{domain}. Left out, all requests go to the
    /// latest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub traffic: Option<Vec<TrafficTarget>>,

    /// Moves latestRevision traffic to a new revision gradually instead of at once, and can roll it back by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// How many of the most recent revisions to keep besides those that take traffic or have a tag; older ones are
    /// deleted. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub revision_history_limit: Option<i32>,

    /// Who may call the Service: External (the default) through the activator's external entry point at
    /// http://{name}.{namespace}.{domain} and from inside the cluster; ClusterLocal only from inside the cluster, at
    /// http://{name}.{namespace}.svc.cluster.local (the external entry point answers 404 for it, as for a Service
    /// that does not exist).
    #[serde(default)]
    pub visibility: Visibility,

    /// Who may invoke the Service, at every URL it has (its tags' and mapped domains' too). Anyone (the default):
    /// every request that reaches an entry point serving it. Authorized: only a caller that sends
    /// "Authorization: Bearer <token>" with a Kubernetes ServiceAccount token whose audience is the Service's URL
    /// (http://{name}.{namespace}.{domain} or http://{name}.{namespace}.svc.cluster.local, e.g. from `kubectl create
    /// token`), and whom RBAC allows the verb invoke on this Service (services.serving.runway.dev; the chart's
    /// ClusterRole runway-invoker grants it). The activator answers 401 without a valid token and 403 without
    /// permission, before the request can wake the Service; the header reaches the app unchanged.
    #[serde(default)]
    pub invokers: Invokers,

    /// The share of the Service's requests the activators' access log records, in percent: 0 none, 100 every one,
    /// between a random sample. Unset: the activators' default (the chart's activator.accessLog.percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub access_log_percent: Option<i32>,
}

/// The default of spec.revisionHistoryLimit.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// One entry of spec.traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.revisionName) != (has(self.latestRevision) && self.latestRevision)")
        .message("spec.traffic[]: set exactly one of revisionName and latestRevision: true"),
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// A revision of this Service, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 58), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub revision_name: Option<String>,

    /// true: the latest revision that became ready, following each new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,

    /// Share of the Service's requests, 0 to 100; left out, 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,

    /// Gives the target its own URL, http://{tag}-{name}.{namespace}.{domain}, which reaches this target's revision
    /// only, whatever its percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 62), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub tag: Option<String>,
}

/// A gradual rollout of each new latest ready revision.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Seconds over which latestRevision traffic moves from the previous revision to the new one, in steps.
    #[schemars(range(min = 1, max = 86400))]
    pub duration_seconds: i32,

    /// When set, the rollout compares the new revision's share of 5xx responses with the previous one's at each
    /// step; when the new one's is higher by more than this many percentage points, all traffic goes back to the
    /// previous revision and the Service reports RolloutFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_error_percent: Option<i32>,
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

/// Who may invoke a Service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Invokers {
    /// Every request that reaches an entry point serving the Service.
    #[default]
    Anyone,
    /// Callers with a ServiceAccount token for the Service's URL whom RBAC allows to invoke it.
    Authorized,
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
    /// Name of the revision made from this template, instead of {service}-{generation}: it must start with the
    /// Service's name and '-'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 58), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,

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

    /// What happens to a pod with no request: Stop (the default) lets the autoscaler remove it; Freeze stops all its
    /// processes with the kernel's cgroup freezer, keeping its memory, so that the next request resumes it in
    /// milliseconds instead of starting a pod (needs the node agent, Helm value nodeAgent.enabled). A change makes a
    /// new revision. See docs/warm-zero.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleAction>,

    /// With idle Freeze: milliseconds a pod must have had no request in flight before it is frozen. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 3600000))]
    pub freeze_after_millis: Option<i32>,

    /// With idle Freeze: seconds idle pods beyond minScale are kept (frozen) after the autoscaler would have removed
    /// them; then they are deleted and the next request is a real cold start. Default 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub frozen_retention_seconds: Option<i32>,
}

/// What happens to a pod with no request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdleAction {
    /// The autoscaler removes idle pods, down to minScale (zero by default).
    #[default]
    Stop,
    /// Idle pods are frozen (no CPU, memory kept) and thawed by the next request; removed after
    /// frozenRetentionSeconds.
    Freeze,
}

/// A frozen pod is thawed by the next request after this many milliseconds without one, unless the Service says.
pub const DEFAULT_FREEZE_AFTER_MILLIS: i32 = 1000;
/// Idle pods of a Freeze Service are kept this many seconds, unless the Service says.
pub const DEFAULT_FROZEN_RETENTION_SECONDS: i32 = 900;

impl Scaling {
    /// How the revisions made from this spec treat idle pods: `Some` with the delay when they freeze.
    pub fn freeze(&self) -> Option<Freeze> {
        (self.idle == Some(IdleAction::Freeze)).then(|| Freeze {
            after_millis: self.freeze_after_millis.unwrap_or(DEFAULT_FREEZE_AFTER_MILLIS),
        })
    }

    /// With idle Freeze, the seconds idle pods are kept before the autoscaler may remove them.
    pub fn frozen_retention_seconds(&self) -> Option<i32> {
        self.freeze().map(|_| {
            self.frozen_retention_seconds
                .unwrap_or(DEFAULT_FROZEN_RETENTION_SECONDS)
        })
    }
}

/// A revision whose idle pods are frozen rather than removed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Freeze {
    /// Milliseconds without a request in flight before a pod is frozen.
    pub after_millis: i32,
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

    /// Its pods: replicas, readyReplicas, desiredReplicas and replicaSummary.
    #[serde(flatten)]
    pub pods: ReplicaStatus,

    /// The revision made from the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,

    /// The newest revision that became ready: latestRevision targets route to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,

    /// How requests are routed now: spec.traffic with each target's revision resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTargetStatus>,

    /// The routed revisions and their percents, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_summary: Option<String>,

    /// The gradual rollout under way or last finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// One resolved traffic target.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTargetStatus {
    /// The revision requests go to.
    pub revision_name: String,
    /// Whether the target follows the latest ready revision.
    #[serde(default)]
    pub latest_revision: bool,
    /// Share of the Service's requests.
    #[serde(default)]
    pub percent: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The tag's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Where a gradual rollout stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RolloutPhase {
    /// Traffic is moving to the next revision step by step.
    #[default]
    Progressing,
    /// All latestRevision traffic is on the next revision.
    Succeeded,
    /// The next revision answered too many 5xx: all traffic went back to the previous one until the spec changes.
    RolledBack,
}

/// A gradual rollout from one revision to the next.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub phase: RolloutPhase,
    /// The revision traffic moves away from.
    pub previous_revision_name: String,
    /// The revision traffic moves to.
    pub next_revision_name: String,
    /// The next revision's share of the latestRevision traffic now, 0 to 100.
    #[serde(default)]
    pub next_percent: i32,
    /// When the rollout started (RFC 3339).
    pub started_at: String,
    /// When the last step was taken (RFC 3339).
    pub last_step_at: String,
    /// What the last step or the rollback found, e.g. the error ratios compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
