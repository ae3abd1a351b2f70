//! Cluster mode: Runway Services, their pods' EndpointSlices and the peer activators, mirrored with kube-runtime
//! reflectors (watches, no polling) into the registry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::domain_mapping::DomainMapping;
use runway_api::names::SERVICE_LABEL;
use tokio::sync::mpsc;

use crate::endpoints::{
    SLICE_CONTROLLER, SLICE_MANAGED_BY_LABEL, SLICE_SERVICE_NAME_LABEL, ServiceSettings, activator_ips,
    endpoints_from_slices, peer_ips, slice_service,
};
use crate::host::ServiceKey;
use crate::peers::Peers;
use crate::registry::Registry;

/// Where the activators' own Service lives, and the ports peers listen on (the same as this one's).
#[derive(Clone, Debug)]
pub struct PeerSource {
    pub namespace: String,
    pub service: String,
    pub internal_port: u16,
    pub admin_port: u16,
}

/// How many mirrors `run` runs.
const MIRRORS: usize = 4;

/// Runs the mirrors until the process ends; `synced` is sent once all of them have listed everything.
pub async fn run(client: Client, registry: Arc<Registry>, peers: PeerSource, synced: mpsc::Sender<()>) {
    let (listed, mut listed_rx) = mpsc::channel::<&'static str>(MIRRORS);
    tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while let Some(name) = listed_rx.recv().await {
            seen.insert(name);
            if seen.len() == MIRRORS {
                let _ = synced.send(()).await;
                return;
            }
        }
    });
    tokio::join!(
        mirror_services(client.clone(), registry.clone(), listed.clone()),
        mirror_domain_mappings(client.clone(), registry.clone(), listed.clone()),
        mirror_pod_slices(client.clone(), registry.clone(), listed.clone()),
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
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
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

async fn mirror_services(client: Client, registry: Arc<Registry>, listed: mpsc::Sender<&'static str>) {
    let mut known: BTreeSet<ServiceKey> = BTreeSet::new();
    let api: Api<runway_api::Service> = Api::all(client);
    reflect(api, watcher::Config::default(), "services", listed, |store, touched| {
        let current: BTreeMap<ServiceKey, ServiceSettings> = store
            .state()
            .iter()
            .map(|s| (service_key(s), ServiceSettings::from_service(s)))
            .collect();
        let keys: BTreeSet<ServiceKey> = match touched {
            Some(service) => BTreeSet::from([service_key(service)]),
            None => known.iter().chain(current.keys()).cloned().collect(),
        };
        for key in keys {
            let settings = current.get(&key).cloned();
            if settings.is_some() {
                known.insert(key.clone());
            } else {
                known.remove(&key);
            }
            registry.set_settings(&key, settings);
        }
    })
    .await;
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

fn service_key(service: &runway_api::Service) -> ServiceKey {
    ServiceKey::new(service.namespace().unwrap_or_default(), service.name_any())
}

async fn mirror_pod_slices(client: Client, registry: Arc<Registry>, listed: mpsc::Sender<&'static str>) {
    let mut known: BTreeSet<ServiceKey> = BTreeSet::new();
    let api: Api<EndpointSlice> = Api::all(client);
    let selector = format!("{SERVICE_LABEL},{SLICE_MANAGED_BY_LABEL}={SLICE_CONTROLLER}");
    let config = watcher::Config::default().labels(&selector);
    reflect(api, config, "pod endpoint slices", listed, |store, touched| {
        let touched_key = touched.map(slice_service);
        let mut by_service: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
        for slice in store.state() {
            if let Some(key) = slice_service(&slice)
                && touched_key
                    .as_ref()
                    .is_none_or(|touched| touched.as_ref() == Some(&key))
            {
                by_service.entry(key).or_default().push(slice);
            }
        }
        let keys: BTreeSet<ServiceKey> = match touched_key {
            Some(key) => key.into_iter().collect(),
            None => known.iter().chain(by_service.keys()).cloned().collect(),
        };
        for key in keys {
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            let endpoints = endpoints_from_slices(slices.iter().map(|s| &**s));
            if endpoints.is_empty() {
                known.remove(&key);
            } else {
                known.insert(key.clone());
            }
            registry.set_endpoints(&key, &endpoints);
        }
    })
    .await;
}

async fn mirror_peers(client: Client, registry: Arc<Registry>, source: PeerSource, listed: mpsc::Sender<&'static str>) {
    let api: Api<EndpointSlice> = Api::namespaced(client, &source.namespace);
    let config = watcher::Config::default().labels(&format!("{SLICE_SERVICE_NAME_LABEL}={}", source.service));
    let me = registry.peers().me();
    reflect(api, config, "activator endpoint slices", listed, |store, _| {
        let slices = store.state();
        let ready: Vec<IpAddr> = peer_ips(slices.iter().map(|s| &**s));
        let listed = activator_ips(slices.iter().map(|s| &**s));
        registry.set_peers(Peers::from_ready(me, &ready, source.internal_port, source.admin_port).with_members(listed));
    })
    .await;
}
