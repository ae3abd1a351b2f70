//! The activator's background tasks: the prober that brings new pods forward (fed by the revisions' probe channel),
//! the freezer that has idle pods frozen and thawed by their node's agent (fed by the revisions' freeze channel),
//! the slot handoff that settles each new view of the activator set with the other activators, the load reports to
//! the autoscaler, and the one HTTP GET helper the first two share. Imports `model`, `revision` and `route`.

pub(crate) mod freezer;
pub(crate) mod handoff;
mod http_get;
pub(crate) mod prober;
pub(crate) mod reports;

pub use freezer::AgentAccess;
pub use prober::ProbeConfig;
