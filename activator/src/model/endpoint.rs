//! One pod endpoint as its source lists it: an EndpointSlice, the pod's own status, or a static route.

use std::net::SocketAddr;

/// One pod endpoint as seen in the EndpointSlices (or in a static route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointState {
    pub addr: SocketAddr,
    /// Speak HTTP/2 with prior knowledge to it.
    pub h2c: bool,
    /// Kubernetes reports it ready (an absent condition counts as ready, as the API documents).
    pub ready: bool,
    /// Shutting down: no new requests.
    pub terminating: bool,
}
