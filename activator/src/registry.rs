//! All Services known to this activator, found by host, and the peer activators they share slots with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use runway_api::stats::ServiceLoad;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::endpoints::{EndpointState, ServiceSettings};
use crate::handoff::Releases;
use crate::host::{Entry, ServiceKey, host_name, service_for_domain_host, service_for_host};
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::probe;
use crate::reports::LoadHub;
use crate::service::ServiceHandle;

/// The routing table and the shared pieces each Service needs.
pub struct Registry {
    domain: String,
    queue_limit: usize,
    probe: probe::ProbeConfig,
    pub hub: Arc<LoadHub>,
    pub metrics: Arc<Metrics>,
    services: RwLock<HashMap<ServiceKey, Arc<ServiceHandle>>>,
    /// Custom domains (DomainMappings whose claim holds), lower-case, each to its Service.
    domains: RwLock<HashMap<String, ServiceKey>>,
    peers: watch::Sender<Arc<Peers>>,
    /// Serialises changes of view, so that the Services see them in the order they were made.
    changing_peers: Mutex<()>,
    releases: Arc<Releases>,
    leaving: AtomicBool,
}

/// What a host leads to.
pub enum Route {
    Service(Arc<ServiceHandle>),
    /// The host names no Service known here.
    Unknown,
}

impl Registry {
    pub fn new(
        domain: impl Into<String>,
        queue_limit: usize,
        probe: probe::ProbeConfig,
        hub: Arc<LoadHub>,
        metrics: Arc<Metrics>,
        me: IpAddr,
    ) -> Self {
        Registry {
            domain: domain.into(),
            queue_limit,
            probe,
            hub,
            metrics,
            services: RwLock::default(),
            domains: RwLock::default(),
            peers: watch::Sender::new(Arc::new(Peers::alone(me))),
            changing_peers: Mutex::new(()),
            releases: Arc::default(),
            leaving: AtomicBool::new(false),
        }
    }

    /// The Service a Host header or :authority names at `entry`, if it exists and that entry point serves it. The
    /// external entry point answers for a ClusterLocal Service or a cluster host form exactly as for a Service that
    /// does not exist.
    ///
    /// A mapped custom domain routes to its Service at both entry points, whatever the Service's visibility: mapping
    /// a domain is the decision to publish it.
    pub fn route(&self, host: &str, entry: Entry) -> Route {
        let host = host_name(host);
        let mapped = self.domains.read().get(&*host).cloned();
        if let Some(key) = mapped {
            return match self.services.read().get(&key) {
                Some(service) if service.exists() => Route::Service(service.clone()),
                _ => Route::Unknown,
            };
        }
        let key = match entry {
            Entry::External => service_for_domain_host(&host, &self.domain),
            Entry::Internal => service_for_host(&host, &self.domain),
        };
        let Some(key) = key else {
            return Route::Unknown;
        };
        match self.services.read().get(&key) {
            Some(service) if service.serves(entry) => Route::Service(service.clone()),
            _ => Route::Unknown,
        }
    }

    pub fn peers(&self) -> Arc<Peers> {
        self.peers.borrow().clone()
    }

    /// Every change of view, for the handoff.
    pub fn watch_peers(&self) -> watch::Receiver<Arc<Peers>> {
        self.peers.subscribe()
    }

    pub fn releases(&self) -> &Releases {
        &self.releases
    }

    /// Whether this activator works with `list` and holds no more on any pod than `list` gives it.
    pub fn holds_within(&self, list: &[IpAddr]) -> bool {
        let peers = self.peers();
        if peers.ips() != list {
            return false;
        }
        let services: Vec<Arc<ServiceHandle>> = self.services.read().values().cloned().collect();
        services.iter().all(|service| service.holds_within(peers.me(), list))
    }

    /// Replaces the custom domains: each (lower-case) to its Service.
    pub fn set_domains(&self, domains: HashMap<String, ServiceKey>) {
        *self.domains.write() = domains;
    }

    /// A Service was created or changed (`Some`) or deleted (`None`).
    pub fn set_settings(&self, key: &ServiceKey, settings: Option<ServiceSettings>) {
        match settings {
            Some(settings) => self.service(key).set_settings(Some(settings)),
            None => {
                if let Some(service) = self.existing(key) {
                    service.set_settings(None);
                    self.forget_if_unused(key);
                }
            }
        }
    }

    /// The pods of a Service changed; new ones are probed.
    pub fn set_endpoints(&self, key: &ServiceKey, endpoints: &[EndpointState]) {
        if endpoints.is_empty() && self.existing(key).is_none() {
            return;
        }
        let service = self.service(key);
        for request in service.set_endpoints(endpoints) {
            probe::spawn(service.clone(), request, self.probe.clone());
        }
        self.forget_if_unused(key);
    }

    /// The activators as Kubernetes (or the static configuration) lists them now. A different list keeps the
    /// earlier ones in force until the handoff settles it.
    pub fn set_peers(&self, peers: Peers) {
        let _changing = self.changing_peers.lock();
        let peers = if self.leaving.load(Ordering::SeqCst) {
            peers.leaving()
        } else {
            peers
        };
        let previous = self.peers();
        let peers = peers.succeeding(&previous);
        if peers.ips() != previous.ips() {
            tracing::info!(activators = ?peers.ips(), leaving = peers.is_leaving(), "peer activators changed");
        }
        let peers = if peers.handoff_parties().is_empty() {
            peers.settled()
        } else {
            peers
        };
        if peers != *previous {
            self.apply_peers(peers);
        }
    }

    /// Every other activator confirmed the view of `epoch`: only it counts from now on. False when the view has
    /// changed since.
    pub fn settle(&self, epoch: u64) -> bool {
        let _changing = self.changing_peers.lock();
        let current = self.peers();
        if current.epoch() != epoch || current.is_settled() {
            return false;
        }
        self.apply_peers((*current).clone().settled());
        true
    }

    fn apply_peers(&self, peers: Peers) {
        let peers = Arc::new(peers);
        self.peers.send_replace(peers.clone());
        let services: Vec<Arc<ServiceHandle>> = self.services.read().values().cloned().collect();
        for service in services {
            service.set_peers(peers.clone());
        }
        self.releases.changed();
    }

    /// This activator is draining: from now on its slots belong to the other activators.
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let peers = (*self.peers()).clone();
        self.set_peers(peers);
    }

    /// Every Service with load in the interval ending now.
    pub fn take_loads(&self, now: Instant) -> Vec<ServiceLoad> {
        let services: Vec<Arc<ServiceHandle>> = self.services.read().values().cloned().collect();
        let mut loads: Vec<ServiceLoad> = services.iter().filter_map(|s| s.take_load(now)).collect();
        loads.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        loads
    }

    pub fn probe_config(&self) -> &probe::ProbeConfig {
        &self.probe
    }

    fn existing(&self, key: &ServiceKey) -> Option<Arc<ServiceHandle>> {
        self.services.read().get(key).cloned()
    }

    fn service(&self, key: &ServiceKey) -> Arc<ServiceHandle> {
        if let Some(service) = self.existing(key) {
            return service;
        }
        let mut services = self.services.write();
        services
            .entry(key.clone())
            .or_insert_with(|| {
                ServiceHandle::new(
                    key.clone(),
                    self.metrics.for_service(key),
                    self.queue_limit,
                    self.peers(),
                    self.releases.clone(),
                )
            })
            .clone()
    }

    fn forget_if_unused(&self, key: &ServiceKey) {
        let mut services = self.services.write();
        if let Some(service) = services.get(key)
            && service.is_unused()
        {
            self.metrics.forget(&service.metrics);
            services.remove(key);
        }
    }
}
