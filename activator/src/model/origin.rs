//! Where a request came from and which activator answers for it: the two facts that tell the activators sharing a
//! revision's pods apart on the request path.

/// Who sent a request to this activator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client: a load balancer or ingress in front, or a pod of the cluster.
    Client,
    /// A peer activator that holds no slot for the request and forwarded it here (with the hop header, from its own
    /// IP). Its Host header routes it, its forwarded headers are set already, and it is not forwarded again while
    /// the activators' views may differ.
    Peer,
}

/// Which activator answers for a request in the load reports, so that the autoscaler counts each response once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answerer {
    /// This activator: through a slot on one of the revision's pods, or by itself (an answer it made up).
    ThisActivator,
    /// The peer activator this one forwarded the request to, which counts the response in its own report.
    Peer,
}
