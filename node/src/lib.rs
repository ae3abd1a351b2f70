//! runway-node, the node agent of warm zero: freezes the cgroups of idle Runway pods on its node and thaws them when
//! the activator asks (docs/warm-zero.md). The modules are public for the binary, the real-kernel test and the docs
//! tests.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agent;
pub mod api;
pub mod app;
pub mod auth;
pub mod cgroup;
pub mod cli;
pub mod mark;
pub mod metrics;
pub mod pods;
