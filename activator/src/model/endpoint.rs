//! One pod endpoint as its source lists it: an EndpointSlice, the pod's own status, or a static route.

use std::net::SocketAddr;
use std::sync::Arc;

/// One pod endpoint as seen in the EndpointSlices (or in a static route).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointState {
    pub addr: SocketAddr,
    /// Speak HTTP/2 with prior knowledge to it.
    pub h2c: bool,
    /// Kubernetes reports it ready (an absent condition counts as ready, as the API documents).
    pub ready: bool,
    /// Shutting down: no new requests.
    pub terminating: bool,
    /// The pod behind the address, when its source names it (a static route does not): what freezing it needs.
    pub pod: Option<PodRef>,
}

/// The pod behind an endpoint: which one, where it runs, and the node agent's mark while it is frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub uid: Arc<str>,
    pub node: Arc<str>,
    /// The node agent's mark (`runway_api::names::FROZEN_ANNOTATION`); only the pod's own object carries it.
    pub frozen_mark: Option<Arc<str>>,
}
