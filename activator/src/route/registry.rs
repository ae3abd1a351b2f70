//! All Services and revisions known to this activator, found by host and split by weight, and the peer activators
//! they share slots with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use runway_api::stats::ServiceLoad;
use runway_api::{Invokers, RevisionKey, ServiceKey};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::model::{EndpointState, RevisionId, RevisionSettings, ServicePolicy, ServiceTraffic};
use crate::revision::{FreezeOrder, Metrics, Peers, ProbeRequest, Releases, RevisionHandle};
use crate::route::agents::NodeAgents;
use crate::route::host::{Entry, Named, host_name, resolve, service_for_domain_host, service_for_host};
use crate::route::split::Split;

/// The routing tables and the shared pieces each revision needs.
pub struct Registry {
    domain: String,
    queue_limit: usize,
    /// Given to each revision: where it sends the probes of its pods.
    probes: mpsc::UnboundedSender<ProbeRequest>,
    /// Given to each revision: where it sends the freezes and thaws of its pods.
    freezes: mpsc::UnboundedSender<FreezeOrder>,
    /// The node agents that freeze and thaw pods, by node.
    agents: NodeAgents,
    metrics: Arc<Metrics>,
    /// Each Service's routing table.
    services: RwLock<HashMap<ServiceKey, Arc<Table>>>,
    /// Each revision's pods, queue and settings; kept after its Revision was deleted while it has requests or pods.
    revisions: RwLock<HashMap<RevisionKey, Arc<RevisionHandle>>>,
    /// The revisions whose Revision object exists: the only ones requests are routed to.
    routable: RwLock<HashMap<RevisionKey, Arc<RevisionHandle>>>,
    /// Custom domains (DomainMappings whose claim holds), lower-case, each to its Service.
    domains: RwLock<HashMap<String, ServiceKey>>,
    peers: watch::Sender<Arc<Peers>>,
    /// Serialises changes of view, so that the revisions see them in the order they were made.
    changing_peers: Mutex<()>,
    releases: Arc<Releases>,
    leaving: AtomicBool,
    /// Woken whenever a routing table or a revision arrives: requests for a Service that has nothing to route to
    /// yet wait for it.
    routes_changed: Notify,
}

/// One Service's routing table.
struct Table {
    traffic: ServiceTraffic,
    /// Where the weighted rotation stands; a request holds it for one pick.
    split: Mutex<Split<RevisionKey>>,
}

impl Table {
    fn new(key: &ServiceKey, traffic: ServiceTraffic) -> Self {
        let weights = traffic
            .split
            .iter()
            .map(|(revision, percent)| (RevisionKey::new(key.namespace.as_str(), revision.as_str()), *percent));
        Table {
            split: Mutex::new(Split::new(weights)),
            traffic,
        }
    }

    fn tagged(&self, tag: &str) -> Option<&str> {
        self.traffic
            .tags
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, revision)| revision.as_str())
    }

    fn serves(&self, entry: Entry) -> bool {
        entry == Entry::Internal || self.traffic.visibility == runway_api::Visibility::External
    }
}

/// What a host leads to. Both routes to a Service carry who may invoke it: a request is checked before anything is
/// done for it, also before it waits for a revision.
pub enum Route {
    Revision(Arc<RevisionHandle>, ServicePolicy),
    /// The Service exists but routes to no revision known here yet (its status has no traffic yet, or the watch
    /// has not brought the revision yet): answer 503, the client may retry.
    NotReady(ServiceKey, ServicePolicy),
    /// The host names no Service known here.
    Unknown,
}

impl Route {
    /// The policy of the Service the route leads to, if it leads to one.
    pub fn policy(&self) -> Option<ServicePolicy> {
        match self {
            Route::Revision(_, policy) | Route::NotReady(_, policy) => Some(*policy),
            Route::Unknown => None,
        }
    }

    /// The namespace and name of the Service the route leads to, when only authorized callers may invoke it.
    pub fn authorized_only(&self) -> Option<(&str, &str)> {
        match self {
            Route::Revision(revision, policy) if policy.invokers == Invokers::Authorized => {
                Some((revision.id.key.namespace.as_str(), revision.id.service.as_str()))
            }
            Route::NotReady(service, policy) if policy.invokers == Invokers::Authorized => {
                Some((service.namespace.as_str(), service.name.as_str()))
            }
            Route::Revision(..) | Route::NotReady(..) | Route::Unknown => None,
        }
    }
}

impl Registry {
    /// `probes`: the prober's channel, where the revisions send the probes of their pods; `freezes`: the freezer's,
    /// for the freezes and thaws of their pods.
    pub fn new(
        domain: impl Into<String>,
        queue_limit: usize,
        probes: mpsc::UnboundedSender<ProbeRequest>,
        freezes: mpsc::UnboundedSender<FreezeOrder>,
        metrics: Arc<Metrics>,
        me: IpAddr,
    ) -> Self {
        Registry {
            domain: domain.into(),
            queue_limit,
            probes,
            freezes,
            agents: NodeAgents::default(),
            metrics,
            services: RwLock::default(),
            revisions: RwLock::default(),
            routable: RwLock::default(),
            domains: RwLock::default(),
            peers: watch::Sender::new(Arc::new(Peers::alone(me))),
            changing_peers: Mutex::new(()),
            releases: Arc::default(),
            leaving: AtomicBool::new(false),
            routes_changed: Notify::new(),
        }
    }

    /// The revision that serves a request for the Host header or :authority `host` at `entry`: the Service's (its
    /// split picks the revision), or a tag's, if it exists and that entry point serves it. The external entry point
    /// answers for a ClusterLocal Service or a cluster host form exactly as for a Service that does not exist.
    ///
    /// A mapped custom domain routes to its Service at both entry points, whatever the Service's visibility: mapping
    /// a domain is the decision to publish it.
    ///
    /// `pinned`: the revision a peer activator already picked for the request it forwards, so that a split is
    /// decided once; taken when it is a revision of the Service the host names.
    pub fn route(&self, host: &str, entry: Entry, pinned: Option<&str>) -> Route {
        let host = host_name(host);
        let mapped = self.domains.read().get(&*host).cloned();
        let (key, table, tag) = match mapped {
            Some(key) => match self.services.read().get(&key) {
                Some(table) => (key, table.clone(), None),
                None => return Route::Unknown,
            },
            None => {
                let key = match entry {
                    Entry::External => service_for_domain_host(&host, &self.domain),
                    Entry::Internal => service_for_host(&host, &self.domain),
                };
                let Some(key) = key else {
                    return Route::Unknown;
                };
                let services = self.services.read();
                let named = resolve(
                    key,
                    |k| services.contains_key(k),
                    |k, tag| services.get(k).is_some_and(|t| t.tagged(tag).is_some()),
                );
                let (key, tag) = match named {
                    Some(Named::Service(key)) => (key, None),
                    Some(Named::Tag { service, tag }) => (service, Some(tag)),
                    None => return Route::Unknown,
                };
                match services.get(&key) {
                    Some(table) if table.serves(entry) => (key, table.clone(), tag),
                    _ => return Route::Unknown,
                }
            }
        };
        let routable = self.routable.read();
        let known = |revision: &RevisionKey| routable.get(revision).cloned();
        let handle = match (tag, pinned) {
            (Some(tag), _) => table
                .tagged(&tag)
                .and_then(|name| known(&RevisionKey::new(key.namespace.as_str(), name))),
            (None, Some(name)) => known(&RevisionKey::new(key.namespace.as_str(), name))
                .filter(|r| r.id.service == key.name)
                .or_else(|| table.split.lock().pick().and_then(known)),
            (None, None) => table.split.lock().pick().and_then(known),
        };
        let policy = table.traffic.policy();
        match handle {
            Some(handle) => Route::Revision(handle, policy),
            None => Route::NotReady(key, policy),
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
        self.all_revisions()
            .iter()
            .all(|revision| revision.holds_within(peers.me(), list))
    }

    /// Replaces the custom domains: each (lower-case) to its Service.
    pub fn set_domains(&self, domains: HashMap<String, ServiceKey>) {
        *self.domains.write() = domains;
    }

    /// A Service was created or its routing changed (`Some`), or it was deleted (`None`). A table equal to the
    /// current one changes nothing: status updates that leave the traffic alone (replicas, conditions) come often,
    /// and a new split would start its rotation over each time. A split with the same weights keeps its place.
    pub fn set_service(&self, key: &ServiceKey, traffic: Option<ServiceTraffic>) {
        let mut services = self.services.write();
        let Some(traffic) = traffic else {
            services.remove(key);
            return;
        };
        let table = match services.get(key) {
            Some(current) if current.traffic == traffic => return,
            Some(current) if current.traffic.split == traffic.split => Table {
                split: Mutex::new(current.split.lock().clone()),
                traffic,
            },
            _ => Table::new(key, traffic),
        };
        services.insert(key.clone(), Arc::new(table));
        drop(services);
        self.routes_changed.notify_waiters();
    }

    /// Resolves once a routing table or a revision arrived after this call.
    pub fn routes_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.routes_changed.notified()
    }

    /// A revision was created or its status changed (`Some`), or it was deleted (`None`).
    pub fn set_revision(&self, id: &RevisionId, settings: Option<RevisionSettings>) {
        match settings {
            Some(settings) => {
                let revision = self.revision(id);
                revision.set_settings(Some(settings));
                self.routable.write().insert(id.key.clone(), revision);
                self.routes_changed.notify_waiters();
            }
            None => {
                self.routable.write().remove(&id.key);
                if let Some(revision) = self.existing(&id.key) {
                    revision.set_settings(None);
                    self.forget_if_unused(&id.key);
                }
            }
        }
    }

    /// The pods of a revision changed; the revision has the new ones probed.
    pub fn set_endpoints(&self, id: &RevisionId, endpoints: &[EndpointState]) {
        if endpoints.is_empty() && self.existing(&id.key).is_none() {
            return;
        }
        self.revision(id).set_endpoints(endpoints);
        self.forget_if_unused(&id.key);
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
        for revision in self.all_revisions() {
            revision.set_peers(peers.clone());
        }
        self.releases.changed();
    }

    /// This activator is draining: from now on its slots belong to the other activators.
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let peers = (*self.peers()).clone();
        self.set_peers(peers);
    }

    /// Every revision with load in the interval ending now.
    pub fn take_loads(&self, now: Instant) -> Vec<ServiceLoad> {
        let mut loads: Vec<ServiceLoad> = self.all_revisions().iter().filter_map(|r| r.take_load(now)).collect();
        loads.sort_by(|a, b| (&a.namespace, &a.name, &a.revision).cmp(&(&b.namespace, &b.name, &b.revision)));
        loads
    }

    fn all_revisions(&self) -> Vec<Arc<RevisionHandle>> {
        self.revisions.read().values().cloned().collect()
    }

    /// The node agents, by node.
    pub fn node_agents(&self) -> &NodeAgents {
        &self.agents
    }

    fn existing(&self, key: &RevisionKey) -> Option<Arc<RevisionHandle>> {
        self.revisions.read().get(key).cloned()
    }

    fn revision(&self, id: &RevisionId) -> Arc<RevisionHandle> {
        if let Some(revision) = self.existing(&id.key) {
            return revision;
        }
        let mut revisions = self.revisions.write();
        revisions
            .entry(id.key.clone())
            .or_insert_with(|| {
                RevisionHandle::new(
                    id.clone(),
                    self.metrics.for_revision(id),
                    self.queue_limit,
                    self.peers(),
                    self.releases.clone(),
                    self.probes.clone(),
                    self.freezes.clone(),
                )
            })
            .clone()
    }

    /// Forgets a revision with nothing left to serve or wait for, and its metrics series: what is kept follows the
    /// revisions that exist, however many come and go.
    fn forget_if_unused(&self, key: &RevisionKey) {
        let mut revisions = self.revisions.write();
        if let Some(revision) = revisions.get(key)
            && revision.is_unused()
        {
            self.metrics.forget(&revision.metrics);
            revisions.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Idle;
    use runway_api::Visibility;
    use std::time::Duration;

    fn registry() -> Registry {
        Registry::new(
            "example.com",
            10,
            mpsc::unbounded_channel().0,
            mpsc::unbounded_channel().0,
            Arc::default(),
            [10, 0, 0, 1].into(),
        )
    }

    fn traffic(split: &[(&str, u32)], tags: &[(&str, &str)], visibility: Visibility) -> Option<ServiceTraffic> {
        Some(ServiceTraffic {
            visibility,
            invokers: runway_api::Invokers::Anyone,
            access_log: None,
            split: split.iter().map(|(r, p)| ((*r).to_owned(), *p)).collect(),
            tags: tags.iter().map(|(t, r)| ((*t).to_owned(), (*r).to_owned())).collect(),
        })
    }

    fn add_revision(registry: &Registry, service: &str, name: &str) {
        let settings = RevisionSettings {
            container_concurrency: 0,
            timeout: Duration::from_secs(1),
            fast_probe: crate::model::FastProbe::Tcp,
            failure: None,
            idle: Idle::Stop,
        };
        registry.set_revision(&RevisionId::new("default", service, name), Some(settings));
    }

    /// The revision `host` leads to at `entry`, or what else it leads to.
    fn revision(registry: &Registry, host: &str, entry: Entry, pinned: Option<&str>) -> String {
        match registry.route(host, entry, pinned) {
            Route::Revision(revision, _) => revision.id.key.name.clone(),
            Route::NotReady(key, _) => format!("not ready: {key}"),
            Route::Unknown => "unknown".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_split_picks_the_revision_and_an_unchanged_table_keeps_its_rotation() {
        let registry = registry();
        add_revision(&registry, "hello", "hello-1");
        add_revision(&registry, "hello", "hello-2");
        let table = traffic(&[("hello-1", 50), ("hello-2", 50)], &[], Visibility::External);
        registry.set_service(&ServiceKey::new("default", "hello"), table.clone());
        let next = || revision(&registry, "hello.default", Entry::Internal, None);
        assert_eq!(next(), "hello-1");
        // A status update that leaves the traffic alone: the rotation goes on instead of starting over.
        registry.set_service(&ServiceKey::new("default", "hello"), table);
        assert_eq!(next(), "hello-2");
        // Only a tag changes: the split keeps its place too.
        let tagged = traffic(
            &[("hello-1", 50), ("hello-2", 50)],
            &[("x", "hello-1")],
            Visibility::External,
        );
        registry.set_service(&ServiceKey::new("default", "hello"), tagged);
        assert_eq!(next(), "hello-1");
        assert_eq!(next(), "hello-2");
    }

    #[tokio::test]
    async fn tags_reach_their_revision_at_the_entry_points_that_serve_the_service() {
        let registry = registry();
        add_revision(&registry, "hello", "hello-1");
        add_revision(&registry, "hello", "hello-2");
        add_revision(&registry, "private", "private-1");
        registry.set_service(
            &ServiceKey::new("default", "hello"),
            traffic(&[("hello-2", 100)], &[("old", "hello-1")], Visibility::External),
        );
        registry.set_service(
            &ServiceKey::new("default", "private"),
            traffic(&[("private-1", 100)], &[("t", "private-1")], Visibility::ClusterLocal),
        );
        let external = |host| revision(&registry, host, Entry::External, None);
        assert_eq!(external("old-hello.default.example.com"), "hello-1");
        assert_eq!(external("hello.default.example.com"), "hello-2");
        assert_eq!(
            external("old-hello.default.svc"),
            "unknown",
            "cluster forms are internal"
        );
        assert_eq!(external("t-private.default.example.com"), "unknown", "ClusterLocal");
        assert_eq!(
            revision(&registry, "t-private.default.svc", Entry::Internal, None),
            "private-1"
        );
        // A mapped domain reaches the Service's split, not a tag.
        registry.set_domains([("app.example.org".to_owned(), ServiceKey::new("default", "hello"))].into());
        assert_eq!(external("app.example.org"), "hello-2");
    }

    #[tokio::test]
    async fn a_revision_not_known_yet_or_deleted_is_not_ready_and_a_deleted_service_is_unknown() {
        let registry = registry();
        let key = ServiceKey::new("default", "hello");
        registry.set_service(
            &key,
            traffic(&[("hello-1", 100)], &[("t", "hello-1")], Visibility::External),
        );
        assert_eq!(
            revision(&registry, "hello.default", Entry::Internal, None),
            "not ready: default/hello"
        );
        assert_eq!(
            revision(&registry, "t-hello.default", Entry::Internal, None),
            "not ready: default/hello"
        );
        add_revision(&registry, "hello", "hello-1");
        assert_eq!(revision(&registry, "hello.default", Entry::Internal, None), "hello-1");
        registry.set_revision(&RevisionId::new("default", "hello", "hello-1"), None);
        assert_eq!(
            revision(&registry, "hello.default", Entry::Internal, None),
            "not ready: default/hello"
        );
        registry.set_service(&key, None);
        assert_eq!(revision(&registry, "hello.default", Entry::Internal, None), "unknown");
    }

    #[tokio::test]
    async fn every_route_to_an_authorized_service_says_so_and_names_the_service() {
        let registry = registry();
        add_revision(&registry, "hello", "hello-1");
        let key = ServiceKey::new("default", "hello");
        let authorized = |split: &[(&str, u32)]| {
            let mut table = traffic(split, &[("t", "hello-1")], Visibility::External);
            if let Some(table) = table.as_mut() {
                table.invokers = Invokers::Authorized;
            }
            table
        };
        registry.set_service(&key, authorized(&[("hello-1", 100)]));
        registry.set_domains([("app.example.org".to_owned(), key.clone())].into());
        for (host, entry) in [
            ("hello.default.example.com", Entry::External),
            ("t-hello.default.example.com", Entry::External),
            ("app.example.org", Entry::External),
            ("hello.default.svc.cluster.local", Entry::Internal),
        ] {
            let route = registry.route(host, entry, None);
            assert!(matches!(route, Route::Revision(..)), "{host}");
            assert_eq!(route.authorized_only(), Some(("default", "hello")), "{host}");
        }
        // Before its revision is known too: the request is checked before it waits.
        registry.set_service(&key, authorized(&[("hello-2", 100)]));
        let route = registry.route("hello.default.example.com", Entry::External, None);
        assert!(matches!(route, Route::NotReady(..)));
        assert_eq!(route.authorized_only(), Some(("default", "hello")));
        // Anyone may invoke it again: nothing to check.
        registry.set_service(&key, traffic(&[("hello-1", 100)], &[], Visibility::External));
        assert_eq!(
            registry
                .route("hello.default.example.com", Entry::External, None)
                .authorized_only(),
            None
        );
        assert_eq!(
            registry
                .route("nothing.default.example.com", Entry::External, None)
                .authorized_only(),
            None
        );
    }

    #[tokio::test]
    async fn a_pinned_revision_is_taken_only_when_it_belongs_to_the_service() {
        let registry = registry();
        add_revision(&registry, "hello", "hello-1");
        add_revision(&registry, "hello", "hello-2");
        add_revision(&registry, "other", "other-1");
        registry.set_service(
            &ServiceKey::new("default", "hello"),
            traffic(&[("hello-1", 100)], &[], Visibility::External),
        );
        let pinned = |name| revision(&registry, "hello.default", Entry::Internal, Some(name));
        // Out of the split already (traffic moved on), but still the Service's: the peer's choice holds.
        assert_eq!(pinned("hello-2"), "hello-2");
        assert_eq!(pinned("other-1"), "hello-1");
        assert_eq!(pinned("missing"), "hello-1");
    }
}
