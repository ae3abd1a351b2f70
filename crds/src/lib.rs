//! Runway's API: the `Service` custom resource (serving.runway.dev/v1alpha1), its conditions and when they say the
//! Service is failing, the names of the objects derived from it, which of its containers serves on which port, and
//! the wire format in which activators report load to the autoscaler.
#![forbid(unsafe_code)]

pub mod conditions;
pub mod crd;
pub mod domain_mapping;
#[cfg(feature = "logging")]
pub mod logging;
pub mod names;
pub mod service;
pub mod serving;
pub mod stats;

pub use conditions::serving_failure;
pub use names::ServiceKey;
pub use service::{
    Scaling, ScalingMetric, Service, ServiceSpec, ServiceStatus, ServiceTemplate, TemplateMetadata, Visibility,
};
