//! Runway's API: the `Service` and `Revision` custom resources (serving.runway.dev/v1alpha1), its conditions and when they say the
//! Service is failing, the names of the objects derived from it, which of its containers serves on which port, and
//! the wire format in which activators report load to the autoscaler, and which build a binary is (`build`).
#![forbid(unsafe_code)]

#[cfg(feature = "admin")]
pub mod admin;
pub mod build;
pub mod cidr;
pub mod conditions;
pub mod crd;
pub mod domain_mapping;
#[cfg(feature = "logging")]
pub mod logging;
pub mod membership;
pub mod names;
pub mod pods;
pub mod replicas;
pub mod revision;
pub mod service;
pub mod serving;
pub mod slim;
pub mod stats;
#[cfg(feature = "telemetry")]
pub mod telemetry;

pub use conditions::revision_failure;
pub use names::{RevisionKey, ServiceKey};
pub use replicas::ReplicaStatus;
pub use revision::{Revision, RevisionSpec, RevisionStatus};
pub use service::{
    Freeze, IdleAction, Invokers, Rollout, RolloutPhase, RolloutStatus, Scaling, ScalingMetric, Service, ServiceSpec,
    ServiceStatus, ServiceTemplate, TemplateMetadata, TrafficTarget, TrafficTargetStatus, Visibility,
};
