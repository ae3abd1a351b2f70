//! The Service reconciler: decide the revision the spec needs, put every revision's workload and the Service's routes
//! in place, resolve the routing table, write the revisions' and the Service's status, and collect old revisions.

mod cleanup;
mod latest;
mod observe;
mod rollouts;
mod routing;
#[cfg(test)]
mod tests;
mod upgrade;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service as KubeService};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::conditions::REVISION_NAME_TAKEN;
use runway_api::{Revision, Service, ServiceStatus};
use tracing::{info, warn};

use crate::autoscaler::board::Board;
use crate::autoscaler::policy::Defaults;
use crate::children;
use crate::children::{ChildError, FIELD_MANAGER, Outcome};
use crate::desired::ActivatorRef;
use crate::events::{self, Happening};
use crate::legacy;
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};
use crate::revision_status;
use crate::revisions::{self, Readiness};
use crate::status::{self, CONFIGURATION_READY, ChildProblem, State};
use upgrade::Upgrade;

/// Reconcile again this often even without changes, to repair drift.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry this soon when a child could not be applied.
const RETRY: Duration = Duration::from_secs(15);
/// Look at a starting pod again this long after it reaches the progress deadline (clocks differ a little).
const RECHECK_MARGIN: Duration = Duration::from_secs(1);
/// How soon a reconcile that found the caches still listing runs again.
const CACHES_RETRY: Duration = Duration::from_millis(200);

/// Operator-wide settings the reconciler needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub domain: String,
    pub activator: ActivatorRef,
    pub defaults: Defaults,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Every Runway pod, from the watch that also triggers reconciles when a pod's state changes.
    pub pods: Store<Pod>,
    /// Every Revision, from the watch that also triggers its Service's reconcile.
    pub revisions: Store<Revision>,
    /// Every Runway Deployment: the previous release's Deployment of a Service is found here.
    pub deployments: Store<Deployment>,
    /// Every Runway Service: the hosts a tag may not take.
    pub services: Store<Service>,
    /// The autoscaler's board: the revisions' responses a rollout compares, and the pod floors it sets.
    pub board: Arc<Mutex<Board>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Service has no namespace")]
    NoNamespace,
    #[error("the Service has no uid yet")]
    NoUid,
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    /// Nothing can be created in the namespace, and the Service goes with it: not an error, the reconcile stops.
    #[error("the namespace is being deleted")]
    NamespaceTerminating,
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoNamespace => "no_namespace",
            Error::NoUid => "no_uid",
            Error::Status(_) => "status_write",
            Error::NamespaceTerminating => "namespace_terminating",
        }
    }
}

/// Whether the caches a reconcile reads have been listed. They fill from watches of their own, which a new leader
/// starts together with the Services' watch: a reconcile before the revisions are listed takes the Service for one
/// without revisions and makes another (a restarted operator created revision 3 of a Service whose minScale had
/// changed, at 1 pod). Looked at, never waited for: a store wakes only the last of the futures waiting for it, and
/// a reconcile left waiting also holds up the leader's shutdown. A cache whose watch ended counts as listed.
fn caches_listed(ctx: &Context) -> bool {
    ctx.revisions.wait_until_ready().now_or_never().is_some()
        && ctx.deployments.wait_until_ready().now_or_never().is_some()
        && ctx.pods.wait_until_ready().now_or_never().is_some()
}

/// Brings the Service's revisions, routes and status in line with its spec.
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !caches_listed(&ctx) {
        return Ok(Action::requeue(CACHES_RETRY));
    }
    let started = Instant::now();
    let result = match reconcile_inner(&service, &ctx).await {
        Err(Error::NamespaceTerminating) => Ok(Action::await_change()),
        other => other,
    };
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels { result: label })
        .inc();
    result
}

/// The namespace's APIs a reconcile uses.
struct Apis {
    deployments: Api<Deployment>,
    kube_services: Api<KubeService>,
    revisions: Api<Revision>,
    services: Api<Service>,
}

/// One reconcile of one Service: what every step reads.
struct Run<'a> {
    ctx: &'a Context,
    service: &'a Service,
    namespace: String,
    uid: String,
    apis: Apis,
    /// The status as last written.
    previous: ServiceStatus,
    now: Timestamp,
}

/// One revision of the Service as this reconcile saw it.
struct Seen {
    revision: Arc<Revision>,
    observed: revision_status::Observed,
    ready: State,
}

impl Seen {
    fn name(&self) -> &str {
        self.revision.metadata.name.as_deref().unwrap_or_default()
    }
}

async fn reconcile_inner(service: &Service, ctx: &Context) -> Result<Action, Error> {
    let namespace = service.namespace().ok_or(Error::NoNamespace)?;
    let uid = service.uid().ok_or(Error::NoUid)?;
    if service.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the revisions and routes; recreating them now would only race it.
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let run = Run {
        ctx,
        service,
        apis: Apis {
            deployments: Api::namespaced(client.clone(), &namespace),
            kube_services: Api::namespaced(client.clone(), &namespace),
            revisions: Api::namespaced(client.clone(), &namespace),
            services: Api::namespaced(client.clone(), &namespace),
        },
        namespace,
        uid,
        previous: service.status.clone().unwrap_or_default(),
        now: Timestamp::now(),
    };
    let mut problems = vec![];

    let (owned, latest_created) = run.latest_created(&mut problems).await?;
    let legacy = legacy::deployment(&ctx.deployments, service, &run.uid);
    let latest_revision = owned
        .iter()
        .find(|r| latest_created.as_deref() == r.metadata.name.as_deref())
        .cloned();
    let mut retry = false;
    let upgrade = match &latest_revision {
        Some(revision) => {
            let (upgrade, ok) = run.upgrade(revision, legacy.as_deref()).await;
            retry |= !ok;
            upgrade
        }
        None => Upgrade::Done,
    };
    if upgrade == Upgrade::Pending {
        // The first revision's Deployment waits for the old pods' hand-over; the rest follows once it exists.
        return Ok(Action::requeue(if retry { RETRY } else { upgrade::HANDOVER_RECHECK }));
    }
    let taken_over = match upgrade {
        Upgrade::Proceed { initial } => initial,
        Upgrade::Done | Upgrade::Pending => None,
    };
    let (seen, recheck) = run.observe(owned, latest_created.as_deref(), taken_over).await?;
    let readiness: Vec<Readiness> = seen
        .iter()
        .map(|s| Readiness {
            name: s.name(),
            generation: revisions::generation(&s.revision),
            ready: s.ready.is_true(),
        })
        .collect();
    let latest_ready = revisions::latest_ready(
        latest_created.as_deref(),
        run.previous.latest_ready_revision_name.as_deref(),
        &readiness,
    );
    let names: BTreeSet<String> = seen.iter().map(|s| s.name().to_owned()).collect();
    let rollout = run.decide_rollout(&seen, &names, latest_ready.as_deref());
    problems.extend(rollouts::failure(&rollout, latest_created.as_deref()));
    let latest = routing::Latest {
        created: latest_created.as_deref(),
        ready: latest_ready.as_deref(),
    };
    let traffic = run.route(&names, latest, &rollout, &mut problems).await?;

    // The revisions' status, then the Service's: the autoscaler reads whether a revision is routed from the former.
    let (replicas, latest_state) = run.write_revision_statuses(&seen, &traffic, latest.created).await?;
    let latest_is_ready = latest_state.as_ref().is_some_and(State::is_true);
    let observed = status::Observed {
        latest_created: latest_created.clone().zip(latest_state),
        latest_ready: latest_ready.clone(),
        problems,
        traffic,
        rollout: rollout.status.clone(),
        replicas,
    };
    retry |= !observed.problems.is_empty() || seen.iter().any(|s| s.observed.problem.is_some());
    run.write_status(&observed).await?;
    run.rollout_effects(&rollout).await;

    if let Some(created) = latest.created.filter(|_| latest_is_ready && upgrade != Upgrade::Done) {
        retry |= !run.finish_upgrade(created, legacy.as_deref()).await;
    }
    let mut keep: BTreeSet<&str> = observed.traffic.iter().map(|t| t.revision_name.as_str()).collect();
    keep.extend(latest.created);
    keep.extend(latest.ready);
    keep.extend(rollouts::revisions(&rollout));
    retry |= !run.collect_garbage(&seen, &keep).await;

    let next = if retry { RETRY } else { RESYNC };
    // A pod that is still starting reaches the progress deadline without any event: look again then.
    let next = recheck.map_or(next, |left| next.min(left + RECHECK_MARGIN));
    // A rollout's next step is due then.
    let next = rollout.recheck.map_or(next, |due| next.min(due));
    Ok(Action::requeue(next))
}

impl Run<'_> {
    /// Writes the Service's status when it changed, with a Warning when its latest revision starts failing.
    async fn write_status(&self, observed: &status::Observed) -> Result<(), Error> {
        let service = self.service;
        let status = status::compute(service, observed, &self.ctx.settings.domain, self.now);
        if service.status.as_ref() == Some(&status) {
            return Ok(());
        }
        children::apply_status(&self.apis.services, &service.name_any(), &status, FIELD_MANAGER)
            .await
            .map_err(Error::Status)?;
        if let Some((type_, reason, note)) = status::transition_event(service.status.as_ref(), &status) {
            warn!(service = %service.name_any(), namespace = %self.namespace, %reason, %note, "pods failing");
            self.publish(type_, &reason, note).await;
        }
        Ok(())
    }

    /// Publishes an event about the Service.
    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let happening = Happening {
            type_,
            action: "Reconcile",
            reason,
            note,
            related: None,
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Publishes an event about the Service that concerns `related` (a revision, a child).
    async fn publish_related(&self, type_: EventType, reason: &str, note: String, related: ObjectReference) {
        let happening = Happening {
            type_,
            action: "Reconcile",
            reason,
            note,
            related: Some(related),
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Tells what applying a child did, when it did something.
    async fn record_outcome<K: Resource<DynamicType = ()>>(&self, child: &K, outcome: Outcome) {
        let reason = match outcome {
            Outcome::Created => "Created",
            Outcome::Updated => "Updated",
            Outcome::Unchanged => return,
        };
        let (kind, name) = (K::kind(&()), child.name_any());
        info!(service = %self.service.name_any(), namespace = %self.namespace, %kind, %name, reason, "applied child");
        let happening = Happening {
            type_: EventType::Normal,
            action: "Reconcile",
            reason,
            note: format!("{kind} {name} {}", reason.to_lowercase()),
            related: Some(child.object_ref(&())),
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Reports a child that could not be put in place: a Warning event, a metric and the problem for the status. In
    /// a namespace being deleted, stops the reconcile instead.
    async fn problem(&self, condition: &'static str, error: ChildError) -> Result<ChildProblem, Error> {
        if error.namespace_terminating() {
            return Err(Error::NamespaceTerminating);
        }
        let reason = match error {
            ChildError::NotOwned { .. } => "NotOwned",
            ChildError::Api { .. } => "ApplyFailed",
        };
        warn!(service = %self.service.name_any(), namespace = %self.namespace, %error, "child not applied");
        self.ctx
            .metrics
            .reconcile_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
        self.publish(EventType::Warning, reason, error.to_string()).await;
        Ok(ChildProblem {
            condition,
            reason: reason.to_owned(),
            message: error.to_string(),
        })
    }

    /// Refuses spec.template.metadata.name: a Warning event and the problem for ConfigurationReady.
    async fn refuse(&self, message: String) -> ChildProblem {
        warn!(service = %self.service.name_any(), namespace = %self.namespace, %message, "revision name taken");
        self.publish(EventType::Warning, REVISION_NAME_TAKEN, message.clone())
            .await;
        ChildProblem {
            condition: CONFIGURATION_READY,
            reason: REVISION_NAME_TAKEN.to_owned(),
            message,
        }
    }
}

/// Retries a failed reconcile after a pause.
pub fn error_policy(_service: Arc<Service>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels {
            reason: error.metric_label(),
        })
        .inc();
    Action::requeue(RETRY)
}
