//! The Service reconciler: decide the revision the spec needs, put every revision's workload and the Service's routes
//! in place, resolve the routing table, write the revisions' and the Service's status, and collect old revisions.
//!
//! This file is the pipeline: it calls the steps in order. Each step is a file here that talks to the API server,
//! and the pure rules it follows are in `rules/` under the same name: `revisions`, `upgrade`, `rollout`, `traffic`,
//! `revision_status`, `status` and `gc`. `readiness` is no step: it exports the Services' Ready conditions as a
//! metric, beside the reconciler. `workloads` is the one step without rules of its own: it applies what
//! `rules/desired.rs` builds (as do `revisions`, `upgrade` and `traffic`) and diagnoses pods with `crate::failure`.
//! What the steps share (`Context`, `Run`, `Step`) is in `context.rs`; no step imports this file or another step.

mod context;
mod gc;
pub(crate) mod readiness;
mod revision_status;
mod revisions;
mod rollout;
mod rules;
mod status;
#[cfg(test)]
mod tests;
mod traffic;
mod upgrade;
mod workloads;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use runway_api::Service;
use tracing::warn;

use crate::condition::State;
use crate::metrics::{ReasonLabels, ResultLabels};
use crate::spans;
use context::{Apis, Run, Step};
use rules::revisions::Readiness;
use rules::status::Observed;
use upgrade::Upgrade;

pub(crate) use context::{Context, Error, Settings};
pub(crate) use rules::desired::ActivatorRef;
pub(crate) use rules::network_policy::{Admitted, NetworkIsolation};
pub(crate) use rules::pod_security::PodSecurity;

/// Reconcile again this often even without changes, to repair drift.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry this soon when a child could not be applied.
const RETRY: Duration = Duration::from_secs(15);
/// Look at a starting pod again this long after it reaches the progress deadline (clocks differ a little).
const RECHECK_MARGIN: Duration = Duration::from_secs(1);
/// How soon a reconcile that found the caches still listing runs again.
const CACHES_RETRY: Duration = Duration::from_millis(200);

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
pub(crate) async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !caches_listed(&ctx) {
        return Ok(Action::requeue(CACHES_RETRY));
    }
    let started = Instant::now();
    let span = spans::reconcile("Service", &service.namespace().unwrap_or_default(), &service.name_any());
    let result = spans::traced(span, async {
        match reconcile_inner(&service, &ctx).await {
            Err(Error::NamespaceTerminating) => Ok(Action::await_change()),
            other => other,
        }
    })
    .await;
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels { result: label })
        .inc();
    result
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
            network_policies: Api::namespaced(client.clone(), &namespace),
            revisions: Api::namespaced(client.clone(), &namespace),
            services: Api::namespaced(client.clone(), &namespace),
        },
        namespace,
        uid,
        previous: service.status.clone().unwrap_or_default(),
        now: Timestamp::now(),
    };
    let mut problems = vec![];

    let legacy = run.legacy_deployment();
    let (owned, latest_created) = run.latest_created(&mut problems, legacy.as_deref()).await?;
    let latest_revision = owned
        .iter()
        .find(|r| latest_created.as_deref() == r.metadata.name.as_deref())
        .cloned();
    let mut step = Step::Done;
    let upgrade = match &latest_revision {
        Some(revision) => {
            let (upgrade, upgrade_step) = run.upgrade(revision, legacy.as_deref()).await;
            step = step.and(upgrade_step);
            upgrade
        }
        None => Upgrade::Done,
    };
    if upgrade == Upgrade::Pending {
        // The first revision's Deployment waits for the old pods' hand-over; the rest follows once it exists.
        let next = match step {
            Step::Retry => RETRY,
            Step::Done => upgrade::HANDOVER_RECHECK,
        };
        return Ok(Action::requeue(next));
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
            generation: rules::revisions::generation(&s.revision),
            ready: s.ready.is_true(),
        })
        .collect();
    let latest_ready = rules::revisions::latest_ready(
        latest_created.as_deref(),
        run.previous.latest_ready_revision_name.as_deref(),
        &readiness,
    );
    let names: BTreeSet<String> = seen.iter().map(|s| s.name().to_owned()).collect();
    let rollout = run.decide_rollout(&seen, &names, latest_ready.as_deref());
    problems.extend(rollout::failure(&rollout, latest_created.as_deref()));
    let latest = traffic::Latest {
        created: latest_created.as_deref(),
        ready: latest_ready.as_deref(),
    };
    let traffic = run.route(&names, latest, &rollout, &mut problems).await?;

    // The revisions' status, then the Service's: the autoscaler reads whether a revision is routed from the former.
    let (replicas, latest_state) = run.write_revision_statuses(&seen, &traffic, latest.created).await?;
    let latest_is_ready = latest_state.as_ref().is_some_and(State::is_true);
    let observed = Observed {
        latest_created: latest_created.clone().zip(latest_state),
        latest_ready: latest_ready.clone(),
        problems,
        traffic,
        rollout: rollout.status.clone(),
        replicas,
    };
    step = step.and(Step::retry_if(
        !observed.problems.is_empty() || seen.iter().any(|s| s.observed.problem.is_some()),
    ));
    run.write_status(&observed).await?;
    run.rollout_effects(&rollout).await;

    if let Some(created) = latest.created.filter(|_| latest_is_ready && upgrade != Upgrade::Done) {
        step = step.and(run.finish_upgrade(created, legacy.as_deref()).await);
    }
    let mut keep: BTreeSet<&str> = observed.traffic.iter().map(|t| t.revision_name.as_str()).collect();
    keep.extend(latest.created);
    keep.extend(latest.ready);
    keep.extend(rollout::revisions(&rollout));
    step = step.and(run.collect_garbage(&seen, &keep).await);

    let next = match step {
        Step::Retry => RETRY,
        Step::Done => RESYNC,
    };
    // A pod that is still starting reaches the progress deadline without any event: look again then.
    let next = recheck.map_or(next, |left| next.min(left + RECHECK_MARGIN));
    // A rollout's next step is due then.
    let next = rollout.recheck.map_or(next, |due| next.min(due));
    Ok(Action::requeue(next))
}

/// Retries a failed reconcile after a pause.
pub(crate) fn error_policy(_service: Arc<Service>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels {
            reason: error.metric_label(),
        })
        .inc();
    Action::requeue(RETRY)
}
