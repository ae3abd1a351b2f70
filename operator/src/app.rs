//! The operator process: admin server, leader election, and while leading the Service and DomainMapping
//! reconcilers, the load collector and the autoscaler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::{Revision, Service, names, slim};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::admin;
use crate::autoscaler::board::Board;
use crate::autoscaler::collector::{self, ActivatorEndpoints};
use crate::autoscaler::scaler::Scaler;
use crate::cli::Args;
use crate::domain;
use crate::failure;
use crate::leader::{self, ElectionConfig};
use crate::metrics::Metrics;
use crate::service::{self, ActivatorRef, Context, NetworkIsolation, Settings};

/// Services reconciled at once.
const RECONCILE_CONCURRENCY: u16 = 32;

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let admin = admin::bind(args.admin_listen).await?;
    tokio::spawn(admin::serve(admin, metrics.clone()));

    let election = ElectionConfig {
        lease_name: args.lease_name.clone(),
        identity: args.identity.clone(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    let (leading_tx, mut leading) = watch::channel(false);
    let election_task = tokio::spawn(leader::run(leases.clone(), election.clone(), leading_tx));

    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        runway_api::admin::shutdown_signal().await;
        shutdown_tx.send_replace(true);
    });

    info!(identity = %args.identity, "waiting for leadership");
    loop {
        let mut stop = shutdown.clone();
        tokio::select! {
            _ = leading.wait_for(|leads| *leads) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        metrics.leader.set(1);
        info!("leading: reconciling and autoscaling");
        let mut lost = leading.clone();
        let mut stop = shutdown.clone();
        let scope_end = async move {
            tokio::select! {
                _ = lost.wait_for(|leads| !*leads) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        };
        lead(client.clone(), &args, metrics.clone(), scope_end).await;
        metrics.stopped_leading();
        if *shutdown.borrow() {
            break;
        }
        warn!("lost leadership");
    }
    election_task.abort();
    leader::release(&leases, &election).await;
    info!("stopped");
    Ok(())
}

/// Everything the leader runs: the Service reconciler (which manages revisions), the DomainMapping reconciler, the activator load collector
/// and the autoscaler. Returns once `scope_end` fires and in-flight Service reconciles are done (a DomainMapping
/// status write cut short is harmless: the next leader computes it again from the API server).
async fn lead(
    client: Client,
    args: &Args,
    metrics: Arc<Metrics>,
    scope_end: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let managed = watcher::Config::default().labels(&format!("{}={}", names::MANAGED_BY_LABEL, names::MANAGED_BY));
    let reporter = Reporter {
        controller: "runway-operator".into(),
        instance: Some(args.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let defaults = args.autoscaler.defaults();
    let settings = Settings {
        domain: args.domain.clone(),
        activator: ActivatorRef {
            namespace: args.activator_namespace.clone(),
            name: args.activator_internal_service.clone(),
        },
        defaults,
        isolation: args.isolation(),
        pod_security: args.workloads.workload_pod_security,
    };
    // One watch of Runway's pods fills the cache that the reconciler and the autoscaler diagnose, and reconciles a
    // Service when something diagnosing reads of one of its pods changes (a restart, a waiting reason, readiness), or
    // when one is frozen or thawed (the status counts frozen pods).
    let (pods, pod_writer) = reflector::store();
    let pod_changes = watcher(Api::<Pod>::all(client.clone()), managed.clone())
        .default_backoff()
        .modify(failure::trim)
        .reflect(pod_writer)
        .touched_objects()
        .predicate_filter(failure::fingerprint, Default::default());
    // Likewise one watch of Revisions and one of Runway's Deployments: each fills the cache both loops read and
    // reconciles the Service the object belongs to. Every cache keeps its objects without the API server's
    // bookkeeping: with 1,000 Services that is most of the operator's memory.
    let (revisions, revision_writer) = reflector::store();
    let revision_changes = watcher(Api::<Revision>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(slim::strip)
        .reflect(revision_writer)
        .touched_objects();
    let (deployments, deployment_writer) = reflector::store();
    let deployment_changes = watcher(Api::<Deployment>::all(client.clone()), managed.clone())
        .default_backoff()
        .modify(slim::strip)
        .reflect(deployment_writer)
        .touched_objects();
    let (services, service_writer) = reflector::store();
    let service_changes = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(slim::strip)
        .reflect(service_writer)
        .applied_objects();

    // Of the route and pods' Services, and of the Services whose spec changed, only names, labels and generations
    // are read: metadata-only watches spare decoding (and, while listing, holding) thousands of whole objects.
    let kube_service_changes = watcher(
        Api::<PartialObjectMeta<KubeService>>::all(client.clone()),
        managed.clone(),
    )
    .default_backoff()
    .touched_objects();
    // The revisions' NetworkPolicies, likewise: one deleted or edited by hand is put back. Not watched while isolation
    // is off: the reconcile that deletes each one reads it itself.
    let network_policy_changes = match settings.isolation {
        NetworkIsolation::Enforce(_) => watcher(Api::<PartialObjectMeta<NetworkPolicy>>::all(client.clone()), managed)
            .default_backoff()
            .touched_objects()
            .boxed(),
        NetworkIsolation::Off => futures::stream::empty().boxed(),
    };
    let service_specs = watcher(
        Api::<PartialObjectMeta<Service>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::generation, Default::default());

    let board = Arc::new(Mutex::new(Board::default()));
    let tag_holders = services.clone();
    // Reconciles at once: unbounded, a resync of 1,000 Services ran them all together, each future holding the
    // children it had fetched and each its own API connection and read buffer (heaptrack: most of the leading
    // operator's memory); a few in flight keep the API server just as busy.
    let controller = Controller::for_stream(service_changes, services.clone())
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .watches_stream(pod_changes, |pod| service_ref(&pod))
        .watches_stream(revision_changes, |revision| service_ref(&revision))
        .watches_stream(deployment_changes, |deployment| service_ref(&deployment))
        // Route Services (the Service's own and its tags') and the revisions' pods' Services.
        .watches_stream(kube_service_changes, |kube_service| service_ref(&kube_service))
        .watches_stream(network_policy_changes, |policy| service_ref(&policy))
        // A new Service, or one whose spec changed, may take the host of another Service's tag (status writes do not
        // count; a tag freed by a deletion is found by the colliding Service's retries).
        .watches_stream(service_specs, move |changed| {
            tagged_neighbours(&tag_holders.state(), &changed)
        })
        .graceful_shutdown_on(scope_end);
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: recorder.clone(),
        settings,
        metrics: metrics.clone(),
        pods: pods.clone(),
        revisions: revisions.clone(),
        deployments: deployments.clone(),
        services: services.clone(),
        board: board.clone(),
    });

    let domain_client = client.clone();
    let (poke_tx, poke_rx) = mpsc::channel(1024);
    let endpoints = ActivatorEndpoints {
        namespace: args.activator_namespace.clone(),
        service: args.activator_service.clone(),
        admin_port: args.activator_admin_port,
    };
    let collector = collector::run(client.clone(), endpoints, board.clone(), poke_tx, metrics.clone());
    let readiness = service::readiness::run(services.clone(), metrics.clone());
    let scaler = Scaler {
        client,
        recorder,
        services,
        revisions,
        deployments,
        pods,
        board,
        metrics,
        defaults,
    }
    .run(poke_rx);

    let reconciles = controller
        .run(service::reconcile, service::error_policy, context)
        .for_each(|result| {
            match result {
                // A watched child or pod of a Service that was just deleted: nothing to do.
                Err(e @ kube::runtime::controller::Error::ObjectNotFound(_)) => debug!(%e, "controller"),
                Err(e) => warn!(%e, "controller"),
                Ok(_) => {}
            }
            std::future::ready(())
        });
    // The controller stream ends on scope end; the background loops end with it.
    tokio::select! {
        _ = reconciles => {}
        _ = async { tokio::join!(collector, scaler, readiness, domain::run(domain_client, args.route_settings())) } => {}
    }
}

/// The Service an object belongs to: its namespace and service label.
fn service_ref<K: Resource>(object: &K) -> Option<ObjectRef<Service>> {
    let name = object.labels().get(names::SERVICE_LABEL)?;
    Some(ObjectRef::new(name).within(&object.namespace()?))
}

/// The other Services of `changed`'s namespace that have tags: whether their tags' hosts are free may have changed.
fn tagged_neighbours(services: &[Arc<Service>], changed: &impl ResourceExt) -> Vec<ObjectRef<Service>> {
    let namespace = changed.namespace();
    services
        .iter()
        .filter(|s| s.namespace() == namespace && s.name_any() != changed.name_any())
        .filter(|s| s.spec.traffic.iter().flatten().any(|t| t.tag.is_some()))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}
