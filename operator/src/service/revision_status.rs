//! Every revision's status written, as `rules/revision_status.rs` computes it from what `workloads.rs` observed and
//! the routing table.

use runway_api::TrafficTargetStatus;

use super::context::{Error, Run, Seen};
use super::rules::revision_status;
use super::rules::status::Replicas;
use super::rules::traffic;
use crate::children::{self, FIELD_MANAGER};
use crate::condition::State;

impl Run<'_> {
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
            replicas.replicas += status.pods.replicas;
            replicas.ready += status.pods.ready_replicas;
            replicas.desired += status.pods.desired_replicas;
            replicas.frozen += status.pods.frozen_replicas;
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
