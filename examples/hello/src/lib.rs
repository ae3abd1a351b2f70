//! A small HTTP server used as the sample workload of Runway's local cluster and its tests.
//!
//! `/` answers `hello from <pod name>`, `/sleep?ms=N` answers after N ms, `/healthz` is for probes, `/ws` is a
//! WebSocket echo. With `REJECT_OVERLAP=true` every request that overlaps another in time fails with 500, which
//! proves (or disproves) that a concurrency limit of one holds. The binary also has a tiny client mode
//! (`runway-hello get URL`, with `--host`, `--timeout` and `--retry-for`) for checks from inside a pod, where no
//! other tool exists; the Helm chart's `helm test` is one.
#![forbid(unsafe_code)]

pub mod app;
pub mod client;
pub mod config;
pub mod server;
pub mod websocket;
