//! The revisions garbage collection drops (decided by `rules/gc.rs`), deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use runway_api::service::DEFAULT_REVISION_HISTORY_LIMIT;
use tracing::{info, warn};

use super::context::{Run, Seen, Step};
use super::rules::{gc, revisions};
use crate::children;

impl Run<'_> {
    /// Deletes the revisions garbage collection drops, with one event naming them; Retry when a deletion failed.
    pub(super) async fn collect_garbage(&self, seen: &[Seen], keep: &BTreeSet<&str>) -> Step {
        let limit = self
            .service
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
        let candidates: Vec<gc::Candidate> = seen
            .iter()
            .map(|s| gc::Candidate {
                name: s.name(),
                generation: revisions::generation(&s.revision),
                // Without its Deployment in hand, assume pods: the next reconcile looks again.
                has_pods: s.observed.deployment.as_ref().is_none_or(has_pods),
            })
            .collect();
        let mut deleted = vec![];
        let mut step = Step::Done;
        for doomed in gc::collect(&candidates, keep, usize::try_from(limit).unwrap_or(0)) {
            let Some(s) = seen.iter().find(|s| s.name() == doomed) else {
                continue;
            };
            match children::delete(&self.apis.revisions, s.revision.as_ref()).await {
                Ok(true) => deleted.push((doomed, s.revision.object_ref(&()))),
                Ok(false) => {}
                Err(e) => {
                    warn!(service = %self.service.name_any(), revision = %doomed, %e, "deleting a revision");
                    step = Step::Retry;
                }
            }
        }
        // One event per revision, related to it: the recorder folds events that differ only in their note into the
        // first one's series, which would hide every later deletion.
        for (name, revision) in deleted {
            let note = format!(
                "deleted revision {name}: not routed, not the latest, and older than the {limit} most recent \
                 (revisionHistoryLimit)"
            );
            info!(service = %self.service.name_any(), namespace = %self.namespace, "{note}");
            self.publish_related(EventType::Normal, "RevisionDeleted", note, revision)
                .await;
        }
        step
    }
}

/// Whether a Deployment runs pods or asks for some.
fn has_pods(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let running = deployment.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    wanted > 0 || running > 0
}
