//! The Service's gradual rollout: the inputs of the decision (`rules/rollout.rs`) gathered, and its effects (pod
//! floor, events) carried out.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::runtime::events::EventType;
use runway_api::conditions::{CONFIGURATION_READY, ROLLOUT_FAILED};
use runway_api::{RevisionKey, RolloutPhase};
use tracing::info;

use super::context::{Run, Seen};
use super::rules::rollout::{self, Compared, Decision, Happened, Pods};
use super::rules::status::ChildProblem;
use crate::autoscaler::board::RESPONSE_HISTORY;

/// A rollout's pod floor outlives the next planned look by this much.
const FLOOR_MARGIN: Duration = Duration::from_secs(30);

impl Run<'_> {
    /// Where the Service's rollout stands, from its last status, the two revisions' ready pods and their responses
    /// since the rollout started. A rollout applies only when some traffic follows the latest revision.
    pub(super) fn decide_rollout(
        &self,
        seen: &[Seen],
        names: &BTreeSet<String>,
        latest_ready: Option<&str>,
    ) -> Decision {
        let spec = &self.service.spec;
        let current = self.previous.rollout.as_ref();
        let follows_latest = spec
            .traffic
            .as_ref()
            .is_none_or(|targets| targets.iter().any(|t| t.latest_revision == Some(true)));
        let ready_pods = |name: &str| {
            seen.iter()
                .find(|s| s.name() == name)
                .and_then(|s| s.observed.deployment.as_ref()?.status.as_ref()?.ready_replicas)
                .unwrap_or(0)
        };
        let (pods, responses) = match current {
            Some(current) => {
                let elapsed = rollout::started_at(current)
                    .and_then(|at| Duration::try_from(self.now.duration_since(at)).ok())
                    .unwrap_or_default()
                    .min(RESPONSE_HISTORY);
                let since = Instant::now().checked_sub(elapsed).unwrap_or_else(Instant::now);
                let board = self.ctx.board.lock().expect("board lock");
                let responses = |name: &str| board.responses(&RevisionKey::new(self.namespace.clone(), name), since);
                let pods = Pods {
                    previous: ready_pods(&current.previous_revision_name),
                    next: ready_pods(&current.next_revision_name),
                };
                let compared = Compared {
                    previous: responses(&current.previous_revision_name),
                    next: responses(&current.next_revision_name),
                };
                (pods, compared)
            }
            None => Default::default(),
        };
        let input = rollout::Input {
            spec: spec.rollout.as_ref().filter(|_| follows_latest),
            current,
            latest_ready,
            previous_latest_ready: self.previous.latest_ready_revision_name.as_deref(),
            revisions: names,
            ready_pods: pods,
            responses,
            progress_deadline: Duration::from_secs(u64::try_from(spec.progress_deadline_seconds).unwrap_or(0)),
        };
        rollout::decide(&input, self.now)
    }

    /// Keeps the next revision's pods for its share (the autoscaler reads the floor) and tells what the rollout did.
    pub(super) async fn rollout_effects(&self, decision: &Decision) {
        let Some(status) = &decision.status else {
            return;
        };
        if let Some(pods) = decision.floor {
            let key = RevisionKey::new(self.namespace.clone(), &status.next_revision_name);
            // Held until a little after the next look, which renews it.
            let until = Instant::now() + decision.recheck.unwrap_or_default() + FLOOR_MARGIN;
            self.ctx.board.lock().expect("board lock").set_floor(key, pods, until);
        }
        let message = || status.message.clone().unwrap_or_default();
        let (type_, reason, note) = match &decision.happened {
            None => return,
            Some(Happened::Started) => (EventType::Normal, "RolloutStarted", message()),
            Some(Happened::Succeeded) => (EventType::Normal, "RolloutSucceeded", message()),
            Some(Happened::Failed(figures)) => (EventType::Warning, ROLLOUT_FAILED, figures.clone()),
        };
        info!(service = ?self.service.metadata.name, namespace = %self.namespace, %reason, %note, "rollout");
        self.publish(type_, reason, note).await;
    }
}

/// ConfigurationReady's problem while the latest created revision's rollout is rolled back.
pub(super) fn failure(decision: &Decision, latest_created: Option<&str>) -> Option<ChildProblem> {
    let status = decision.status.as_ref()?;
    (status.phase == RolloutPhase::RolledBack && latest_created == Some(status.next_revision_name.as_str())).then(
        || ChildProblem {
            condition: CONFIGURATION_READY,
            reason: ROLLOUT_FAILED.to_owned(),
            message: status.message.clone().unwrap_or_default(),
        },
    )
}

/// The revisions a rollout needs kept.
pub(super) fn revisions(decision: &Decision) -> impl Iterator<Item = &str> {
    decision
        .status
        .iter()
        .flat_map(|s| [s.previous_revision_name.as_str(), s.next_revision_name.as_str()])
}
