//! The values the other layers pass around: which revision, what its Service routes to it, its settings, its pods'
//! endpoints as Kubernetes lists them, and where a request came from. Plain data: nothing here locks, waits or reads
//! a Kubernetes object, and nothing here imports another part of the activator.

mod endpoint;
mod ids;
mod origin;
mod settings;
mod traffic;

pub use endpoint::{EndpointState, PodRef};
pub use ids::RevisionId;
pub(crate) use origin::Answerer;
pub use origin::Origin;
pub use settings::{FastProbe, Idle, RevisionSettings};
pub use traffic::{AccessLogShare, ServicePolicy, ServiceTraffic};
