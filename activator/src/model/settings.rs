//! The settings of a revision that the data path needs, whatever they were read from (a Revision object or a static
//! route).

use std::sync::Arc;
use std::time::Duration;

/// The settings of a revision that the data path needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionSettings {
    /// Requests in flight per pod; 0 is unlimited.
    pub container_concurrency: u32,
    /// Bound on the time until response headers, queueing included.
    pub timeout: Duration,
    /// How this activator may prove a new pod ready before Kubernetes does.
    pub fast_probe: FastProbe,
    /// Set while the revision reports its pods failing (`{revision}: {why}`): requests then fail at once with it.
    pub failure: Option<Arc<str>>,
    /// What becomes of a pod with no request.
    pub idle: Idle,
}

/// What becomes of a pod with no request in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Idle {
    /// Nothing here: the autoscaler removes idle pods.
    #[default]
    Stop,
    /// The activator that holds its slots has it frozen after this long idle, and thawed by the next request.
    Freeze { after: Duration },
}

/// How the activator's own probe may bring a new pod forward: only by proving what the kubelet's startup and
/// readiness checks would prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastProbe {
    /// The serving container's startup and readiness probes are HTTP GETs of these paths on the serving port (or
    /// one of them is a TCP check of it), in the order the kubelet passes them: each must answer 2xx or 3xx.
    Http(Vec<String>),
    /// No check beyond a running container (or TCP probes of the serving port): a TCP connect to the
    /// serving port proves at least as much.
    Tcp,
    /// The pod's readiness rests on something this activator cannot check (exec, gRPC, another port or scheme,
    /// an initial delay, another container's probe, readiness gates): wait for Kubernetes.
    KubernetesOnly,
}
