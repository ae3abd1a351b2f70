//! Every revision's workload put in place and observed: its NetworkPolicy (`rules/network_policy.rs`; deleted
//! instead while isolation is off), its Deployment and its pods' headless Service, applied with the revision as
//! their controller (built by `rules/desired.rs`), and its pods diagnosed (`failure`); its Ready state from
//! `rules/revision_status.rs`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use runway_api::conditions::READY;
use runway_api::{Revision, RevisionKey, names};
use tracing::{info, warn};

use super::context::{Apis, Error, Run, Seen};
use super::rules::network_policy::{self, NetworkIsolation};
use super::rules::{desired, revision_status};
use crate::autoscaler::policy::Policy;
use crate::children::{self, ChildError, Outcome, Owner};
use crate::failure;

impl Run<'_> {
    /// Applies every revision's workload and observes it; also says when a starting pod reaches its deadline.
    pub(super) async fn observe(
        &self,
        owned: Vec<Arc<Revision>>,
        latest_created: Option<&str>,
        taken_over: Option<i32>,
    ) -> Result<(Vec<Seen>, Option<Duration>), Error> {
        let mut seen = vec![];
        let mut recheck: Option<Duration> = None;
        for revision in owned {
            let latest = latest_created == revision.metadata.name.as_deref();
            let (observed, recheck_in) = self
                .observe_one(&revision, self.initial_scale(&revision, latest, taken_over))
                .await?;
            recheck = recheck.into_iter().chain(recheck_in).min();
            let ready = revision_status::readiness(&revision, &observed);
            seen.push(Seen {
                revision,
                observed,
                ready,
            });
        }
        Ok((seen, recheck))
    }

    /// Pods a revision's Deployment starts with when it is created: on upgrade, the count of the previous release's
    /// pods it takes over (`taken_over`) for the Service's first revision, so that capacity is kept; the Service's
    /// initial scale for the latest revision and for routed ones; none for an old unrouted revision whose Deployment
    /// went missing.
    fn initial_scale(&self, revision: &Revision, latest: bool, taken_over: Option<i32>) -> i32 {
        let routed = revision.status.as_ref().is_some_and(|s| s.routed);
        match taken_over {
            Some(pods) if latest => pods,
            _ if latest || routed => {
                let defaults = &self.ctx.settings.defaults;
                Policy::new(&self.service.spec.scaling, &revision.spec, true, defaults).initial_scale
            }
            _ => 0,
        }
    }

    /// Applies a revision's workload and diagnoses its pods.
    async fn observe_one(
        &self,
        revision: &Revision,
        initial: i32,
    ) -> Result<(revision_status::Observed, Option<Duration>), Error> {
        let service = self.service.metadata.name.as_deref().unwrap_or_default();
        let applied = apply(&self.apis, &self.ctx.settings.isolation, service, revision, initial).await;
        let mut observed = revision_status::Observed::default();
        match applied.isolation {
            Isolation::Applied(Ok((policy, outcome))) => self.record_outcome(&policy, outcome).await,
            Isolation::Applied(Err(e)) => observed.problem = Some(self.problem(READY, e).await?),
            Isolation::Removed(Ok(deleted)) => {
                if let Some(policy) = deleted {
                    self.record_removal(&policy).await;
                }
            }
            // Serving does not depend on it: a policy left behind is retried on the next reconcile, not reported.
            Isolation::Removed(Err(e)) => {
                warn!(service, namespace = %self.namespace, %e, "deleting a revision's NetworkPolicy");
            }
        }
        match applied.deployment {
            Ok((deployment, outcome)) => {
                self.record_outcome(&deployment, outcome).await;
                observed.deployment = Some(deployment);
            }
            Err(e) => {
                let problem = self.problem(READY, e).await?;
                observed.problem.get_or_insert(problem);
            }
        }
        match applied.pods_service {
            Ok((pods_service, outcome)) => self.record_outcome(&pods_service, outcome).await,
            Err(e) => {
                let problem = self.problem(READY, e).await?;
                observed.problem.get_or_insert(problem);
            }
        }
        let pods = self.ctx.pods.state();
        let key = RevisionKey::of(revision);
        let own: Vec<&Pod> = pods
            .iter()
            .filter(|pod| failure::revision_of(pod).as_ref() == Some(&key))
            .map(|pod| &**pod)
            .collect();
        let deadline = Duration::from_secs(u64::try_from(revision.spec.progress_deadline_seconds).unwrap_or(0));
        let diagnosis = failure::diagnose(own.iter().copied(), self.now, deadline);
        observed.failure = diagnosis.failure;
        observed.image_digest = revision_status::image_digest(revision, own.iter().copied());
        let frozen = own
            .iter()
            .filter(|pod| runway_api::pods::frozen_mark(pod).is_some())
            .count();
        observed.frozen = i32::try_from(frozen).unwrap_or(i32::MAX);
        Ok((observed, diagnosis.recheck_in))
    }

    /// Tells that the revision's NetworkPolicy `policy` was deleted because isolation is off.
    async fn record_removal(&self, policy: &NetworkPolicy) {
        let name = policy.name_any();
        info!(service = %self.service.name_any(), namespace = %self.namespace, %name, "deleted NetworkPolicy: isolation is off");
        let note = format!("NetworkPolicy {name} deleted: workload network policies are off");
        let related = policy.object_ref(&());
        self.publish_related(EventType::Normal, "Deleted", note, related).await;
    }
}

/// What applying one revision's children gave.
struct Applied {
    isolation: Isolation,
    deployment: Result<(Deployment, Outcome), ChildError>,
    pods_service: Result<(KubeService, Outcome), ChildError>,
}

/// What became of a revision's NetworkPolicy.
enum Isolation {
    /// Applied, isolation being enforced.
    Applied(Result<(NetworkPolicy, Outcome), ChildError>),
    /// Isolation being off: the policy this call deleted, if it did (one the revision does not control is left).
    Removed(Result<Option<NetworkPolicy>, ChildError>),
}

/// Applies revision's NetworkPolicy (or deletes it, as `isolation` says), then its Deployment (created with `initial`
/// pods) and pods' Service, for Service `service`. The policy goes first, so that a new revision's pods never run
/// without it, not even for a moment.
async fn apply(apis: &Apis, isolation: &NetworkIsolation, service: &str, revision: &Revision, initial: i32) -> Applied {
    let owner = Owner {
        kind: "Revision",
        uid: revision.metadata.uid.as_deref().unwrap_or_default(),
    };
    let isolation = isolate(&apis.network_policies, isolation, owner, service, revision).await;
    let deployment = apply_deployment(&apis.deployments, owner, service, revision, initial).await;
    let pods_service = async {
        let desired = desired::pods_service(service, revision);
        let live = children::fetch_owned(&apis.kube_services, owner, &desired.name_any()).await?;
        children::apply(&apis.kube_services, &desired, live.as_ref()).await
    }
    .await;
    Applied {
        isolation,
        deployment,
        pods_service,
    }
}

/// Puts the revision's NetworkPolicy in place while isolation is enforced; deletes the one the revision controls
/// while it is off, so that turning it off undoes what was made while it was on.
async fn isolate(
    api: &Api<NetworkPolicy>,
    isolation: &NetworkIsolation,
    owner: Owner<'_>,
    service: &str,
    revision: &Revision,
) -> Isolation {
    match isolation {
        NetworkIsolation::Enforce(admitted) => Isolation::Applied(
            async {
                let desired = network_policy::network_policy(service, revision, admitted);
                let live = children::fetch_owned(api, owner, &desired.name_any()).await?;
                children::apply(api, &desired, live.as_ref()).await
            }
            .await,
        ),
        NetworkIsolation::Off => Isolation::Removed(
            async {
                let name = names::network_policy_name(&revision.name_any());
                match children::fetch_owned(api, owner, &name).await {
                    Ok(Some(live)) => Ok(children::delete(api, &live).await?.then_some(live)),
                    Ok(None) | Err(ChildError::NotOwned { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            .await,
        ),
    }
}

/// Applies the Deployment. Creation sets the initial scale and hands `spec.replicas` to the autoscaler's field
/// manager at once; from then on the reconciler never sends replicas, so it never fights the autoscaler.
async fn apply_deployment(
    api: &Api<Deployment>,
    owner: Owner<'_>,
    service: &str,
    revision: &Revision,
    initial: i32,
) -> Result<(Deployment, Outcome), ChildError> {
    let name = names::deployment_name(&revision.name_any());
    let api_error = |source| ChildError::Api {
        kind: "Deployment".to_owned(),
        name: name.clone(),
        source,
    };
    let live = children::fetch_owned(api, owner, &name).await?;
    let initial = match &live {
        None => Some(initial),
        Some(live) => {
            // A reconcile that created the Deployment but stopped before the hand-over: finish it now.
            if children::reconciler_owns_replicas(live) {
                let current = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                children::apply_scale(api, &name, current).await.map_err(api_error)?;
            }
            None
        }
    };
    let desired = desired::deployment(service, revision, initial);
    let (applied, outcome) = children::apply(api, &desired, live.as_ref()).await?;
    if let Some(replicas) = initial {
        children::apply_scale(api, &name, replicas).await.map_err(api_error)?;
    }
    Ok((applied, outcome))
}
