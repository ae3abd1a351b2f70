//! Runway's activator: the only data-plane component. It routes every request by host to one of its Service's
//! revisions (split by weight) and on to one of that revision's pods, holds requests while a revision scales from
//! zero, enforces containerConcurrency (split across activator replicas) and streams load reports to the autoscaler.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod balance;
pub mod body;
pub mod budget;
pub mod cluster;
pub mod config;
pub mod endpoints;
pub mod exchange;
pub mod groups;
pub mod handoff;
pub mod head;
pub mod headers;
pub mod host;
pub mod load;
pub mod metrics;
pub mod peers;
pub mod pod;
pub mod probe;
pub mod proxy;
pub mod queue;
pub mod registry;
pub mod reports;
pub mod revision;
pub mod server;
pub mod slots;
pub mod split;
pub mod standalone;
pub mod threads;
pub mod tunnel;
