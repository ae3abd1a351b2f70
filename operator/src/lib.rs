//! Runway's operator: reconciles Services into Deployments and Kubernetes Services, and autoscales them on the load
//! the activators report.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod autoscaler;
pub mod children;
pub mod cli;
pub mod desired;
pub mod domain_routes;
pub mod domains;
pub mod events;
pub mod failure;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod status;
