//! Cluster mode: Runway Services (their routing tables), their Revisions, the revisions' pods and the pods'
//! EndpointSlices, and the peer activators, mirrored with kube-runtime reflectors (watches, no polling) into the
//! registry.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use runway_api::domain_mapping::DomainMapping;
use runway_api::membership;
use runway_api::names::{REVISION_LABEL, SERVICE_LABEL};
use runway_api::{Revision, ServiceKey, slim};
use tokio::sync::mpsc;

use crate::model::{EndpointState, RevisionId};
use crate::revision::Peers;
use crate::route::Registry;
use crate::sources::endpoints::{
    EndpointSource, EndpointSources, agents_by_node, endpoint_from_pod, endpoints_from_slices,
};
use crate::sources::groups::Groups;
use crate::sources::keys::{SLICE_CONTROLLER, SLICE_MANAGED_BY_LABEL, pod_revision, revision_id, slice_revision};
use crate::sources::settings::{keep_only_settings, settings_of_revision};
use crate::sources::traffic::{keep_only_routing, traffic_of_service};

/// Where the activators' own Service lives, and the ports peers listen on (the same as this one's).
#[derive(Clone, Debug)]
pub struct PeerSource {
    pub namespace: String,
    pub service: String,
    pub internal_port: u16,
    pub admin_port: u16,
    /// The node agents' Service in the same namespace, when pods may be frozen.
    pub node_agent_service: Option<String>,
}

/// How many mirrors `run` runs besides the node agents'.
const MIRRORS: usize = 6;

/// Runs the mirrors until the process ends; `synced` is sent once all of them have listed everything.
pub async fn run(client: Client, registry: Arc<Registry>, peers: PeerSource, synced: mpsc::Sender<()>) {
    let mirrors = MIRRORS + usize::from(peers.node_agent_service.is_some());
    let (listed, mut listed_rx) = mpsc::channel::<&'static str>(mirrors);
    tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while let Some(name) = listed_rx.recv().await {
            seen.insert(name);
            if seen.len() == mirrors {
                let _ = synced.send(()).await;
                return;
            }
        }
    });
    let sources = Arc::new(Mutex::new(EndpointSources::default()));
    tokio::join!(
        mirror_services(client.clone(), registry.clone(), listed.clone()),
        mirror_revisions(client.clone(), registry.clone(), listed.clone()),
        mirror_domain_mappings(client.clone(), registry.clone(), listed.clone()),
        mirror_pod_slices(client.clone(), registry.clone(), sources.clone(), listed.clone()),
        mirror_pods(client.clone(), registry.clone(), sources, listed.clone()),
        mirror_node_agents(client.clone(), registry.clone(), peers.clone(), listed.clone()),
        mirror_peers(client, registry, peers, listed),
    );
}

/// Reflects `api` into a store and calls `changed` with the store and the objects touched by each event; `None`
/// after a (re)list, when anything may have changed.
async fn reflect<K, F>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    listed: mpsc::Sender<&'static str>,
    mut changed: F,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    F: FnMut(&Store<K>, Option<&K>),
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff().modify(slim::strip));
    let mut stream: std::pin::Pin<Box<dyn Stream<Item = _> + Send>> = Box::pin(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => changed(&store, Some(&object)),
            Ok(watcher::Event::InitDone) => {
                changed(&store, None);
                let _ = listed.send(what).await;
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(error) => tracing::warn!(%error, what, "watch failed; retrying"),
        }
    }
}

/// Services: their routing tables (status.traffic, tags, visibility).
async fn mirror_services(client: Client, registry: Arc<Registry>, listed: mpsc::Sender<&'static str>) {
    let api: Api<runway_api::Service> = Api::all(client);
    let service_of = |service: &runway_api::Service| Some(ServiceKey::of(service));
    mirror_grouped(
        api,
        watcher::Config::default(),
        "services",
        listed,
        service_of,
        keep_only_routing,
        |key, services| {
            registry.set_service(key, services.first().map(|s| traffic_of_service(s)));
        },
    )
    .await;
}

/// Revisions: each one's concurrency, timeout, readiness probe and failure.
async fn mirror_revisions(client: Client, registry: Arc<Registry>, listed: mpsc::Sender<&'static str>) {
    let api: Api<Revision> = Api::all(client);
    mirror_grouped(
        api,
        watcher::Config::default(),
        "revisions",
        listed,
        revision_id,
        keep_only_settings,
        |id, revisions| {
            registry.set_revision(id, revisions.first().map(|r| settings_of_revision(r)));
        },
    )
    .await;
}

/// Watches `api` and calls `changed` with every object of a group (a Service's or a revision's) each time one of
/// them changes (all groups after a relist); only that group is looked at, whatever the number of objects watched.
/// `keep` drops from an object all that `changed` does not read before it is kept (most of an object's memory is
/// bookkeeping).
async fn mirror_grouped<K, G, F>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    listed: mpsc::Sender<&'static str>,
    group_of: fn(&K) -> Option<G>,
    keep: fn(&mut K),
    mut changed: F,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    G: Clone + Eq + Hash + Ord,
    F: FnMut(&G, &[Arc<K>]),
{
    let mut groups = Groups::new(group_of);
    // Objects of a relist in progress: they replace the groups once it is done.
    let mut relisted = Vec::new();
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().modify(keep));
    while let Some(event) = stream.next().await {
        let (keys, done_listing) = match event {
            Ok(watcher::Event::Apply(object)) => (groups.apply(object), false),
            Ok(watcher::Event::Delete(object)) => (groups.delete(&object), false),
            Ok(watcher::Event::Init) => {
                relisted.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                relisted.push(object);
                continue;
            }
            Ok(watcher::Event::InitDone) => (groups.relist(std::mem::take(&mut relisted)), true),
            Err(error) => {
                tracing::warn!(%error, what, "watch failed; retrying");
                continue;
            }
        };
        for key in &keys {
            changed(key, &groups.group(key));
        }
        if done_listing {
            let _ = listed.send(what).await;
        }
    }
}

/// The custom domains whose claim the operator found to hold (DomainClaimed=True), each to its Service.
async fn mirror_domain_mappings(client: Client, registry: Arc<Registry>, listed: mpsc::Sender<&'static str>) {
    let api: Api<DomainMapping> = Api::all(client);
    reflect(
        api,
        watcher::Config::default(),
        "domain mappings",
        listed,
        |store, _| {
            let domains: HashMap<String, ServiceKey> = store
                .state()
                .iter()
                .filter(|dm| dm.is_claimed())
                .map(|dm| {
                    let key = ServiceKey::new(dm.namespace().unwrap_or_default(), dm.spec.reference.name.clone());
                    (dm.domain(), key)
                })
                .collect();
            registry.set_domains(domains);
        },
    )
    .await;
}

/// How one source's objects map to revisions and endpoints.
struct EndpointMirror<K> {
    source: EndpointSource,
    what: &'static str,
    /// The revision an object belongs to, if any.
    revision_of: fn(&K) -> Option<RevisionId>,
    /// The endpoints that a revision's objects list.
    endpoints_of: fn(&[Arc<K>]) -> Vec<EndpointState>,
}

/// Pods and slices of revisions: labelled with the revision and its Service.
fn revision_selector() -> String {
    format!("{SERVICE_LABEL},{REVISION_LABEL}")
}

/// The EndpointSlices of the revisions' headless pod Services: the endpoints Kubernetes publishes.
async fn mirror_pod_slices(
    client: Client,
    registry: Arc<Registry>,
    sources: Arc<Mutex<EndpointSources>>,
    listed: mpsc::Sender<&'static str>,
) {
    let selector = format!("{},{SLICE_MANAGED_BY_LABEL}={SLICE_CONTROLLER}", revision_selector());
    let mirror = EndpointMirror {
        source: EndpointSource::Slices,
        what: "pod endpoint slices",
        revision_of: slice_revision,
        endpoints_of: |slices: &[Arc<EndpointSlice>]| endpoints_from_slices(slices.iter().map(|s| &**s)),
    };
    mirror_endpoints(Api::all(client), &selector, mirror, registry, sources, listed).await;
}

/// The revisions' pods themselves: a new pod's IP is in its status before the EndpointSlice controller publishes
/// it, and a cold start's request waits for exactly that.
async fn mirror_pods(
    client: Client,
    registry: Arc<Registry>,
    sources: Arc<Mutex<EndpointSources>>,
    listed: mpsc::Sender<&'static str>,
) {
    let mirror = EndpointMirror {
        source: EndpointSource::Pods,
        what: "pods",
        revision_of: pod_revision,
        endpoints_of: |pods: &[Arc<Pod>]| {
            pods.iter()
                .filter_map(|p| endpoint_from_pod(p))
                .map(|(_, e)| e)
                .collect()
        },
    };
    mirror_endpoints(
        Api::all(client),
        &revision_selector(),
        mirror,
        registry,
        sources,
        listed,
    )
    .await;
}

async fn mirror_endpoints<K>(
    api: Api<K>,
    selector: &str,
    mirror: EndpointMirror<K>,
    registry: Arc<Registry>,
    sources: Arc<Mutex<EndpointSources>>,
    listed: mpsc::Sender<&'static str>,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let config = watcher::Config::default().labels(selector);
    mirror_grouped(
        api,
        config,
        mirror.what,
        listed,
        mirror.revision_of,
        slim::strip,
        |key, objects| {
            let merged = sources
                .lock()
                .update(mirror.source, key, (mirror.endpoints_of)(objects));
            registry.set_endpoints(key, &merged);
        },
    )
    .await;
}

async fn mirror_peers(client: Client, registry: Arc<Registry>, source: PeerSource, listed: mpsc::Sender<&'static str>) {
    let api: Api<EndpointSlice> = Api::namespaced(client, &source.namespace);
    let config = watcher::Config::default().labels(&membership::slices_of(&source.service));
    let me = registry.peers().me();
    reflect(api, config, "activator endpoint slices", listed, |store, _| {
        let slices = store.state();
        // The ready ones share the slots; every listed one (starting or draining too) is trusted as a peer.
        let ready = ips(membership::ready_addresses(slices.iter().map(|s| &**s)));
        let listed = ips(membership::listed_addresses(slices.iter().map(|s| &**s)));
        registry.set_peers(Peers::from_ready(me, &ready, source.internal_port, source.admin_port).with_members(listed));
    })
    .await;
}

/// The ready node agents, by node, from their Service's EndpointSlices (port `api`); nothing without the Service.
async fn mirror_node_agents(
    client: Client,
    registry: Arc<Registry>,
    source: PeerSource,
    listed: mpsc::Sender<&'static str>,
) {
    let Some(service) = source.node_agent_service else {
        return;
    };
    let api: Api<EndpointSlice> = Api::namespaced(client, &source.namespace);
    let config = watcher::Config::default().labels(&membership::slices_of(&service));
    reflect(api, config, "node agent endpoint slices", listed, |store, _| {
        let slices = store.state();
        registry.node_agents().set(agents_by_node(slices.iter().map(|s| &**s)));
    })
    .await;
}

/// The addresses that are IPs, in order, each once.
fn ips(addresses: BTreeSet<&str>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = addresses.into_iter().filter_map(|a| a.parse().ok()).collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}
