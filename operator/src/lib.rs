//! Runway's operator: reconciles Services into Revisions, their Deployments and Kubernetes Services, and the routing
//! table among them, and autoscales each revision on the load the activators report.
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
pub mod gc;
pub mod leader;
pub mod legacy;
pub mod metrics;
pub mod reconcile;
pub mod revision_status;
pub mod revisions;
pub mod rollout;
pub mod routes;
pub mod status;
pub mod traffic;
pub mod workloads;
