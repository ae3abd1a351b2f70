//! Runway's operator: reconciles Services into Revisions, their Deployments and Kubernetes Services, and the routing
//! table among them, and autoscales each revision on the load the activators report.
//!
//! Layers, each importing only those below it: the process (`app`, with `cli`, `admin`, `leader`) runs the
//! controllers; the controllers are `service` (a Service's revisions, routes and status), `domain` (DomainMappings
//! and their routes) and `autoscaler`; below them what they share: `children` (applying child objects), `failure`
//! (why pods cannot start), `condition` (condition statuses), `events`, `metrics` and `spans` (what tracing exports).
#![forbid(unsafe_code)]

mod admin;
pub mod app;
mod autoscaler;
mod children;
pub mod cli;
mod condition;
mod domain;
mod events;
mod failure;
mod leader;
mod metrics;
mod service;
pub mod spans;
