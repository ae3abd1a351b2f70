//! A small HTTP server used as the sample workload of Runway's local cluster and its tests.
//!
//! `/` answers `hello from <pod name>`, `/sleep?ms=N` answers after N ms, `/healthz` is for probes, `/ws` is a
//! WebSocket echo. With `REJECT_OVERLAP=true` every request that overlaps another in time fails with 500, which
//! proves (or disproves) that a concurrency limit of one holds. The binary also has a tiny client mode (`runway-hello get URL`) for
//! checks from inside a pod, where no other tool exists.
#![forbid(unsafe_code)]

pub mod app;
pub mod client;
pub mod config;
pub mod server;
pub mod websocket;
