//! What is recorded of each request: its ID, the client it came from, and its access log line. Pure formatting and
//! rules, plus the access log's writer thread. Imports `model` and `route`.

mod access_log;
mod client;
mod request_id;

pub use access_log::{AccessLog, AccessRecord, Via};
pub use client::client_address;
pub use request_id::{REQUEST_ID, request_id, trace_id};
