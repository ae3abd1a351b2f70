//! Every revision's workload put in place and observed, and every revision's status written.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use runway_api::{Revision, RevisionKey, TrafficTargetStatus};

use super::{Error, Run, Seen};
use crate::autoscaler::policy::Policy;
use crate::children::{self, FIELD_MANAGER};
use crate::status::{READY, Replicas, State};
use crate::{failure, revision_status, traffic, workloads};

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
        let applied = workloads::apply(&apis.deployments, &apis.kube_services, service, revision, initial).await;
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

    /// Writes each revision's status where it changed; returns the pods summed over them and the latest created
    /// revision's Ready state.
    pub(super) async fn write_revision_statuses(
        &self,
        seen: &[Seen],
        routing: &[TrafficTargetStatus],
        latest_created: Option<&str>,
    ) -> Result<(Replicas, Option<State>), Error> {
        let shares = traffic::shares(routing);
        let mut replicas = Replicas::default();
        let mut latest_state = None;
        for s in seen {
            let share = shares.get(s.name()).cloned().unwrap_or_default();
            let status = revision_status::compute(&s.revision, s.ready.clone(), &s.observed, &share, self.now);
            replicas.replicas += status.replicas;
            replicas.ready += status.ready_replicas;
            replicas.desired += status.desired_replicas;
            if latest_created == Some(s.name()) {
                latest_state = Some(s.ready.clone());
            }
            if s.revision.status.as_ref() != Some(&status) {
                children::apply_status(&self.apis.revisions, s.name(), &status, FIELD_MANAGER)
                    .await
                    .map_err(Error::Status)?;
            }
        }
        Ok((replicas, latest_state))
    }
}
