//! Host to revision: the registry of every Service's routing table, the custom domains and the revisions known to
//! this activator, the host forms that name a Service or a tag, and the weighted split between a Service's
//! revisions. It also keeps the view of the peer activators that the revisions' slots follow. Imports `model` and
//! `revision`.

mod agents;
pub(crate) mod host;
mod registry;
mod split;

pub use agents::NodeAgents;
pub use host::Entry;
pub use registry::{Registry, Route};
