//! Every revision's workload put in place and observed: its Deployment and its pods' headless Service, applied with
//! the revision as their controller (built by `rules/desired.rs`), and its pods diagnosed (`failure`); its Ready
//! state from `rules/revision_status.rs`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use kube::{Api, ResourceExt};
use runway_api::conditions::READY;
use runway_api::{Revision, RevisionKey, names};

use super::context::{Error, Run, Seen};
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
        let apis = &self.apis;
        let applied = apply(&apis.deployments, &apis.kube_services, service, revision, initial).await;
        let mut observed = revision_status::Observed::default();
        match applied.deployment {
            Ok((deployment, outcome)) => {
                self.record_outcome(&deployment, outcome).await;
                observed.deployment = Some(deployment);
            }
            Err(e) => observed.problem = Some(self.problem(READY, e).await?),
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
        Ok((observed, diagnosis.recheck_in))
    }
}

/// What applying one revision's children gave.
struct Applied {
    deployment: Result<(Deployment, Outcome), ChildError>,
    pods_service: Result<(KubeService, Outcome), ChildError>,
}

/// Applies revision's Deployment (created with `initial` pods) and pods' Service, for Service `service`.
async fn apply(
    deployments: &Api<Deployment>,
    kube_services: &Api<KubeService>,
    service: &str,
    revision: &Revision,
    initial: i32,
) -> Applied {
    let owner = Owner {
        kind: "Revision",
        uid: revision.metadata.uid.as_deref().unwrap_or_default(),
    };
    let deployment = apply_deployment(deployments, owner, service, revision, initial).await;
    let pods_service = async {
        let desired = desired::pods_service(service, revision);
        let live = children::fetch_owned(kube_services, owner, &desired.name_any()).await?;
        children::apply(kube_services, &desired, live.as_ref()).await
    }
    .await;
    Applied {
        deployment,
        pods_service,
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
