//! Runway's API: the `Service` custom resource (serving.runway.dev/v1alpha1), the names of the objects derived
//! from it, and the wire format in which activators report load to the autoscaler.
#![forbid(unsafe_code)]

pub mod crd;
#[cfg(feature = "logging")]
pub mod logging;
pub mod names;
pub mod service;
pub mod stats;

pub use service::{Scaling, ScalingMetric, Service, ServiceSpec, ServiceStatus, ServiceTemplate, TemplateMetadata};
