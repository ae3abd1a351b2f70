//! Sockets and HTTP: the listeners of both entry points (HTTP/1.1 and h2c, bounded connections, timeouts, graceful
//! shutdown), the request path from a request head to a pod or peer and back, upgraded connections, the admin port,
//! and `respond`, which builds every answer the activator makes up itself. Imports every folder above it: `model`,
//! `revision`, `route` and `control`.

mod activity;
pub(crate) mod admin;
mod body;
pub(crate) mod budget;
mod exchange;
mod head;
pub(crate) mod headers;
pub(crate) mod proxy;
mod respond;
pub(crate) mod server;
mod threads;
mod tunnel;

pub use server::ConnectionLimits;
