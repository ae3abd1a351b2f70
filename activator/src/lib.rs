//! Runway's activator: the only data-plane component. It routes every request by host to one of its Service's
//! revisions (split by weight) and on to one of that revision's pods, holds requests while a revision scales from
//! zero, enforces containerConcurrency (split across activator replicas) and streams load reports to the autoscaler.
//!
//! In layers, each folder importing only those listed before it (`runway-tests`' `layers` test checks it):
//! `model` (the values), `revision` (the per-revision core), `route` (host to revision), `sources` (what feeds the
//! registry), `control` (background tasks), `access` (who may invoke an Authorized Service), `observe` (request IDs and the access
//! log), `serve` (sockets and HTTP); `app` and `config` sit on top. See docs/architecture.md.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod config;
pub mod control;
pub mod model;
pub mod observe;
pub mod revision;
pub mod route;
pub mod serve;
pub mod sources;
