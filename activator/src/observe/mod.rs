//! What is recorded of each request: its ID, the client it came from, its access log line and its spans. Pure
//! formatting and rules, plus the access log's writer thread. Imports `model`, `revision` and `route`.

mod access_log;
mod client;
mod request_id;
mod trace;

pub use access_log::{AccessLog, AccessRecord, Via};
pub use client::client_address;
pub use request_id::{REQUEST_ID, request_id, trace_id};
pub use trace::RequestTrace;
