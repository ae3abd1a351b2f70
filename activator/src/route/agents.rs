//! Where each node's agent listens: the ready addresses of the node agents' Service, by the node each runs on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;

/// The node agents, by node name.
#[derive(Default)]
pub struct NodeAgents {
    by_node: RwLock<HashMap<Arc<str>, SocketAddr>>,
}

impl NodeAgents {
    /// Replaces them all.
    pub fn set(&self, agents: HashMap<Arc<str>, SocketAddr>) {
        *self.by_node.write() = agents;
    }

    /// The agent of `node`, while one is ready there.
    pub fn on(&self, node: &str) -> Option<SocketAddr> {
        self.by_node.read().get(node).copied()
    }
}
