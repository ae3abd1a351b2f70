//! The conditions of Services and Revisions and the reasons that say a revision's pods are failing: written by the
//! operator, read by the activator (through `revision_failure`) so that both binaries agree on when a revision is
//! known to be failing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::{Revision, ServiceStatus};

/// The Service answers at its URL: ConfigurationReady and RoutesReady are both True. On a Revision: its pods serve
/// (or it is at zero with no known failure).
pub const READY: &str = "Ready";
/// The latest created revision is ready (its pods become ready, or it is at zero).
pub const CONFIGURATION_READY: &str = "ConfigurationReady";
/// The Kubernetes Services the activator routes through exist.
pub const ROUTES_READY: &str = "RoutesReady";

/// A container exits (crash loop): its exit code, its termination message or log tail, and the restart count.
pub const CONTAINER_EXITS: &str = "ContainerExits";
/// A container cannot be started: its command does not exist or is not executable, or the runtime refused it.
pub const CONTAINER_CANNOT_START: &str = "ContainerCannotStart";
/// An image cannot be pulled, or its name is invalid.
pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
/// A container cannot be created from its configuration: a missing ConfigMap, Secret or key, or a bad setting.
pub const CONTAINER_CONFIG_ERROR: &str = "ContainerConfigError";
/// The scheduler finds no node for a pod; the message is the scheduler's.
pub const UNSCHEDULABLE: &str = "Unschedulable";
/// A pod did not become ready within spec.progressDeadlineSeconds, with no more precise cause.
pub const READINESS_TIMEOUT: &str = "ReadinessTimeout";
/// The Deployment cannot create pods (a quota, a LimitRange or an admission policy refuses them).
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
/// The Deployment's own progress deadline passed without the rollout progressing.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// RoutesReady=False: a tag's host is another Service's host; the tag gets no route.
pub const TAG_COLLISION: &str = "TagCollision";
/// RoutesReady=False: spec.traffic names a revision that does not exist or belongs to another Service.
pub const REVISION_MISSING: &str = "RevisionMissing";
/// ConfigurationReady=False: spec.template.metadata.name names a revision that exists with another spec.
pub const REVISION_NAME_TAKEN: &str = "RevisionNameTaken";
/// Ready=False: a gradual rollout was rolled back because the new revision answered too many 5xx.
pub const ROLLOUT_FAILED: &str = "RolloutFailed";

/// Reasons of ConfigurationReady=False that mean the Service's pods cannot start or become ready.
pub const FAILURE_REASONS: [&str; 8] = [
    CONTAINER_EXITS,
    CONTAINER_CANNOT_START,
    IMAGE_PULL_FAILED,
    CONTAINER_CONFIG_ERROR,
    UNSCHEDULABLE,
    READINESS_TIMEOUT,
    REPLICA_FAILURE,
    PROGRESS_DEADLINE_EXCEEDED,
];

/// Whether a condition reason says the pods are failing (one of `FAILURE_REASONS`).
pub fn is_failure_reason(reason: &str) -> bool {
    FAILURE_REASONS.contains(&reason)
}

/// Why requests to a revision cannot be served right now, as one line `"{revision}: {message}"` (e.g.
/// `hello-00002: container exits with code 1 (DATABASE_URL is not set), restarted 3 times`), or None.
///
/// Some exactly when the revision's status says its pods are known to be failing and none can serve:
/// - its Ready condition is False with one of `FAILURE_REASONS`;
/// - status.readyReplicas is 0;
/// - status.desiredReplicas is above 0: at zero, the status keeps the last failure for people to read, but the
///   next request must still start a pod and try again.
///
/// The message is the condition's. The operator computes it from the pods; the activator calls this on the
/// revisions it already watches to answer requests at once (503) instead of holding them until their timeout. A
/// revision's spec never changes, so its status never describes another spec.
pub fn revision_failure(revision: &Revision) -> Option<String> {
    let status = revision.status.as_ref()?;
    if status.pods.ready_replicas > 0 || status.pods.desired_replicas <= 0 {
        return None;
    }
    let condition = failure_condition(&status.conditions, READY)?;
    Some(format!("{}: {}", revision.name_any(), condition.message))
}

/// The condition of `type_` when it is False with one of `FAILURE_REASONS`.
pub fn failure_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "False" && is_failure_reason(&c.reason))
}

/// The Service's ConfigurationReady condition when it is False with one of `FAILURE_REASONS`, whatever the replicas.
pub fn configuration_failure(status: &ServiceStatus) -> Option<&Condition> {
    failure_condition(&status.conditions, CONFIGURATION_READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RevisionSpec, RevisionStatus, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn revision(ready: (&str, &str), ready_replicas: i32, desired: i32) -> Revision {
        let spec = RevisionSpec::from_service_spec(
            &serde_json::from_value::<ServiceSpec>(serde_json::json!({
                "template": {"spec": {"containers": [{"image": "app"}]}}
            }))
            .unwrap(),
        );
        let mut revision = Revision::new("hello-00002", spec);
        revision.status = Some(RevisionStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: ready.0.into(),
                reason: ready.1.into(),
                message: "container exits with code 1, restarted 3 times".into(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            pods: crate::ReplicaStatus {
                ready_replicas,
                desired_replicas: desired,
                ..crate::ReplicaStatus::default()
            },
            ..RevisionStatus::default()
        });
        revision
    }

    #[test]
    fn failing_pods_with_none_ready_give_the_name_and_the_message() {
        assert_eq!(
            revision_failure(&revision(("False", CONTAINER_EXITS), 0, 1)).as_deref(),
            Some("hello-00002: container exits with code 1, restarted 3 times")
        );
    }

    #[test]
    fn a_ready_pod_or_zero_desired_pods_are_not_failing() {
        assert_eq!(revision_failure(&revision(("False", CONTAINER_EXITS), 1, 2)), None);
        assert_eq!(
            revision_failure(&revision(("False", CONTAINER_EXITS), 0, 0)),
            None,
            "at zero the next request tries again"
        );
    }

    #[test]
    fn only_failure_reasons_of_a_false_condition_count() {
        assert_eq!(revision_failure(&revision(("Unknown", "Deploying"), 0, 1)), None);
        assert_eq!(revision_failure(&revision(("False", "NotOwned"), 0, 1)), None);
        assert_eq!(revision_failure(&revision(("True", "PodsReady"), 0, 1)), None);
        for reason in FAILURE_REASONS {
            assert!(
                revision_failure(&revision(("False", reason), 0, 1)).is_some(),
                "{reason}"
            );
        }
        let mut no_status = revision(("False", CONTAINER_EXITS), 0, 1);
        no_status.status = None;
        assert_eq!(revision_failure(&no_status), None);
    }
}
