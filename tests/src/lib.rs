//! Helpers for suites that run against a real Kubernetes cluster, by default the local one that `make up` starts
//! (kubeconfig in `<repo>/.cluster/kubeconfig`, or `$KUBECONFIG`).
//!
//! - [`cluster::Cluster`]: a kube client and a [`kubectl::Kubectl`] for the same kubeconfig.
//! - [`wait::wait_until`]: polls a condition until a deadline and reports what it saw last.
//! - [`scenario::run_scenario`]: runs a test body in a fresh namespace and prints diagnostics if it fails;
//!   [`scenario::runway_scenario`] does so once [`install::ensure_installed`] has found (or made) Runway ready.
//! - [`chart`]: the chart rendered with `helm template` and dry-run on the server; [`prometheus`]: queries of the
//!   cluster's Prometheus.
//! - [`install`]: Runway's Helm release; [`release`]: the images and OCI chart it installs from; [`command`]: helm, openssl, curl and the repository's scripts.
//! - [`runway`]: Runway's components and Services, and where requests go; [`load`]: the requests themselves;
//!   [`answers`]: checks of what they got.
//! - [`diagnostics`]: events, pod descriptions, container logs and the cluster components' logs.
//! - [`workloads`], [`pods`]: the sample app's manifests and pod readiness checks.
//! - [`http`]: a plain HTTP client for requests from the host, and requests from a pod.
//! - [`domains`]: DomainMappings and the routes the operator makes for them.
//! - [`otlp`]: a trace receiver that keeps the spans Runway exports, for tests to read back.
//! - [`cgroups`]: a pod's cgroup on this machine: its CPU time, and whether it is frozen.
#![forbid(unsafe_code)]

pub mod answers;
pub mod cgroups;
pub mod chart;
pub mod cluster;
pub mod command;
pub mod diagnostics;
pub mod domains;
pub mod http;
pub mod install;
pub mod kubectl;
pub mod load;
pub mod otlp;
pub mod pods;
pub mod prometheus;
pub mod release;
pub mod runway;
pub mod scenario;
pub mod wait;
pub mod workloads;
