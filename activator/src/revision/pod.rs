//! One pod as the data path sees it: what the EndpointSlices say of it, what this activator found by itself, and
//! its slots.

use std::net::SocketAddr;

use http::uri::Authority;

use tokio::time::Instant;

use crate::model::{EndpointState, FastProbe, PodRef};
use crate::revision::balance::PodLoad;
use crate::revision::freeze::FreezeState;
use crate::revision::slots::Slots;

/// Where to send a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once per pod rather than per request.
    pub authority: Authority,
    /// HTTP/2 with prior knowledge.
    pub h2c: bool,
}

impl Target {
    pub fn new(addr: SocketAddr, h2c: bool) -> Self {
        let authority = Authority::try_from(addr.to_string()).expect("a socket address is a valid authority");
        Target { addr, authority, h2c }
    }
}

/// What Kubernetes says of the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    /// Not ready yet, and never was.
    Starting,
    Ready,
    /// Was ready and is not now: only Kubernetes brings it back, our own probe does not.
    Unready,
    /// Shutting down: finishes its requests, gets no new ones.
    Terminating,
    /// Gone from the EndpointSlices; kept until its in-flight requests finish so the counters stay exact.
    Removed,
}

/// What this activator found by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Nothing,
    /// Our probe succeeded.
    Answered,
    /// A connection to it failed: unroutable until a probe succeeds.
    Refused,
}

/// Whose readiness check decides that a pod may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The kubelet's, which this activator's probe may only run ahead of.
    Kubelet,
    /// This activator's alone: a revision whose idle pods freeze has no readiness probe in its pods.
    Activator,
}

/// How to probe a pod: HTTP GETs of paths in order (each 2xx or 3xx), or a TCP connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Http(Vec<String>),
    Tcp,
}

pub struct Pod {
    pub id: u64,
    pub target: Target,
    listed: Listed,
    found: Found,
    /// A probe task is running for it.
    pub probing: bool,
    pub in_flight: u32,
    pub slots: Slots,
    pub readiness: Readiness,
    /// Which pod it is, where it runs and its frozen mark, when its source says.
    pub pod_ref: Option<PodRef>,
    pub freeze: FreezeState,
    /// A freeze timer task is running for it.
    pub freeze_timer: bool,
}

impl Pod {
    pub fn new(id: u64, endpoint: &EndpointState, now: Instant) -> Self {
        let mut pod = Pod {
            id,
            target: Target::new(endpoint.addr, endpoint.h2c),
            listed: Listed::Starting,
            found: Found::Nothing,
            probing: false,
            in_flight: 0,
            slots: Slots::Limited(0),
            readiness: Readiness::Kubelet,
            pod_ref: None,
            freeze: FreezeState::running(now),
            freeze_timer: false,
        };
        pod.update(endpoint, now);
        pod
    }

    /// The EndpointSlices list it with this state.
    pub fn update(&mut self, endpoint: &EndpointState, now: Instant) {
        self.target.h2c = endpoint.h2c;
        if let Some(pod_ref) = &endpoint.pod {
            self.freeze.sync_mark(pod_ref.frozen_mark.as_ref(), now);
            self.pod_ref = Some(pod_ref.clone());
        }
        self.listed = match (endpoint.terminating, endpoint.ready, self.listed) {
            (true, _, _) => Listed::Terminating,
            (false, true, _) => Listed::Ready,
            (false, false, Listed::Starting | Listed::Removed) => Listed::Starting,
            (false, false, Listed::Ready | Listed::Unready | Listed::Terminating) => Listed::Unready,
        };
    }

    /// The EndpointSlices no longer list it.
    pub fn remove(&mut self) {
        self.listed = Listed::Removed;
    }

    pub fn is_removed(&self) -> bool {
        self.listed == Listed::Removed
    }

    pub fn routable(&self) -> bool {
        let ready = match (self.listed, self.readiness) {
            (Listed::Ready, Readiness::Kubelet) => self.found != Found::Refused,
            // Only reached when the probe proves what Kubernetes would (see `probe_needed`), or, without a readiness
            // probe in the pod, what the pod's own would.
            (Listed::Starting, _) | (Listed::Ready, Readiness::Activator) => self.found == Found::Answered,
            (Listed::Unready | Listed::Terminating | Listed::Removed, _) => false,
        };
        ready && self.freeze.serves()
    }

    /// Frozen (or freezing, or thawing) yet listed: a request can have it without a pod start.
    pub fn resumable(&self) -> bool {
        matches!(self.listed, Listed::Ready | Listed::Starting) && self.freeze.resumable()
    }

    /// The probe that would make it routable, if one can. A pod Kubernetes has not called ready yet is brought
    /// forward only by a probe that proves what the kubelet's would (`policy`); one that refused a connection
    /// after Kubernetes called it ready only needs to accept connections again.
    pub fn probe_needed(&self, policy: &FastProbe) -> Option<ProbeKind> {
        if !self.freeze.serves() {
            // A frozen pod cannot answer.
            return None;
        }
        if self.readiness == Readiness::Activator {
            return match (self.listed, self.found) {
                (Listed::Ready | Listed::Starting, Found::Nothing | Found::Refused) => Some(match policy {
                    FastProbe::Http(paths) => ProbeKind::Http(paths.clone()),
                    FastProbe::Tcp | FastProbe::KubernetesOnly => ProbeKind::Tcp,
                }),
                _ => None,
            };
        }
        match (self.listed, self.found) {
            (Listed::Ready, Found::Refused) => Some(match policy {
                FastProbe::Http(paths) => ProbeKind::Http(paths.clone()),
                FastProbe::Tcp | FastProbe::KubernetesOnly => ProbeKind::Tcp,
            }),
            (Listed::Starting, Found::Nothing | Found::Refused) => match policy {
                FastProbe::Http(paths) => Some(ProbeKind::Http(paths.clone())),
                FastProbe::Tcp => Some(ProbeKind::Tcp),
                FastProbe::KubernetesOnly => None,
            },
            _ => None,
        }
    }

    pub fn answered(&mut self) {
        self.found = Found::Answered;
    }

    pub fn refused(&mut self) {
        self.found = Found::Refused;
    }

    pub fn load(&self) -> PodLoad {
        PodLoad {
            routable: self.routable(),
            in_flight: self.in_flight,
            slots: self.slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(ready: bool, terminating: bool) -> EndpointState {
        EndpointState {
            addr: SocketAddr::from(([10, 1, 0, 1], 8080)),
            h2c: false,
            ready,
            terminating,
            pod: None,
        }
    }

    const HTTP: fn() -> FastProbe = || FastProbe::Http(vec!["/ready".into()]);

    #[test]
    fn a_starting_pod_is_brought_forward_only_by_a_probe_kubernetes_would_agree_with() {
        let mut pod = Pod::new(1, &endpoint(false, false), Instant::now());
        assert!(!pod.routable());
        assert_eq!(pod.probe_needed(&HTTP()), Some(ProbeKind::Http(vec!["/ready".into()])));
        assert_eq!(pod.probe_needed(&FastProbe::Tcp), Some(ProbeKind::Tcp));
        assert_eq!(pod.probe_needed(&FastProbe::KubernetesOnly), None);
        pod.answered();
        assert!(pod.routable());
        assert_eq!(pod.probe_needed(&HTTP()), None);
    }

    #[test]
    fn once_kubernetes_called_it_ready_only_kubernetes_brings_it_back() {
        let mut pod = Pod::new(1, &endpoint(true, false), Instant::now());
        assert!(pod.routable());
        pod.update(&endpoint(false, false), Instant::now());
        assert!(!pod.routable());
        assert_eq!(pod.probe_needed(&HTTP()), None);
        pod.answered();
        assert!(!pod.routable());
        pod.update(&endpoint(true, false), Instant::now());
        assert!(pod.routable());
    }

    #[test]
    fn a_refused_connection_takes_a_ready_pod_out_until_a_probe_succeeds() {
        let mut pod = Pod::new(1, &endpoint(true, false), Instant::now());
        pod.refused();
        assert!(!pod.routable());
        assert_eq!(pod.probe_needed(&FastProbe::KubernetesOnly), Some(ProbeKind::Tcp));
        pod.answered();
        assert!(pod.routable());
    }

    #[test]
    fn terminating_and_removed_pods_get_nothing_new() {
        let mut pod = Pod::new(1, &endpoint(true, false), Instant::now());
        pod.update(&endpoint(true, true), Instant::now());
        assert!(!pod.routable());
        assert_eq!(pod.probe_needed(&HTTP()), None);
        pod.remove();
        assert!(pod.is_removed() && !pod.routable());
    }
}
