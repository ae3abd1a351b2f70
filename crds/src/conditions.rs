//! The Service's conditions and the reasons that say its pods are failing: written by the operator, read by the
//! activator (through `serving_failure`) so that both binaries agree on when a Service is known to be failing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::{Service, ServiceStatus};

/// The Service answers at its URL: ConfigurationReady and RoutesReady are both True.
pub const READY: &str = "Ready";
/// The pods' Deployment exists and its pods become ready (or the Service is at zero).
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

/// Why requests to the Service cannot be served right now, as one line `"{name}: {message}"` (e.g.
/// `hello: container exits with code 1 (DATABASE_URL is not set), restarted 3 times`), or None.
///
/// Some exactly when the Service's status, written for its current generation, says its pods are known to be
/// failing and none can serve:
/// - the ConfigurationReady condition is False with one of `FAILURE_REASONS`, and its observedGeneration is the
///   Service's metadata.generation (a Service just edited is given the benefit of the doubt until the operator has
///   looked at it);
/// - status.readyReplicas is 0 (a rollout whose new pods fail while old pods serve is not failing here);
/// - status.desiredReplicas is above 0: at zero, the status keeps the last failure for people to read, but the
///   next request must still start a pod and try again.
///
/// The message is the condition's. The operator computes it from the pods; the activator calls this on the
/// Services it already watches to answer requests at once (503) instead of holding them until their timeout.
pub fn serving_failure(service: &Service) -> Option<String> {
    let status = service.status.as_ref()?;
    if status.ready_replicas > 0 || status.desired_replicas <= 0 {
        return None;
    }
    let condition = configuration_failure(status)?;
    let current =
        condition.observed_generation.is_some() && condition.observed_generation == service.metadata.generation;
    current.then(|| format!("{}: {}", service.name_any(), condition.message))
}

/// The ConfigurationReady condition when it is False with one of `FAILURE_REASONS`, whatever the replicas.
pub fn configuration_failure(status: &ServiceStatus) -> Option<&Condition> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == CONFIGURATION_READY && c.status == "False" && is_failure_reason(&c.reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn service(configuration: (&str, &str), ready: i32, desired: i32, observed_generation: i64) -> Service {
        let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
            "template": {"spec": {"containers": [{"image": "app"}]}}
        }))
        .unwrap();
        let mut service = Service::new("hello", spec);
        service.metadata.generation = Some(2);
        service.status = Some(ServiceStatus {
            conditions: vec![Condition {
                type_: CONFIGURATION_READY.into(),
                status: configuration.0.into(),
                reason: configuration.1.into(),
                message: "container exits with code 1, restarted 3 times".into(),
                observed_generation: Some(observed_generation),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ready_replicas: ready,
            desired_replicas: desired,
            ..ServiceStatus::default()
        });
        service
    }

    #[test]
    fn failing_pods_with_none_ready_give_the_name_and_the_message() {
        assert_eq!(
            serving_failure(&service(("False", CONTAINER_EXITS), 0, 1, 2)).as_deref(),
            Some("hello: container exits with code 1, restarted 3 times")
        );
    }

    #[test]
    fn a_ready_pod_zero_desired_pods_or_a_stale_generation_are_not_failing() {
        assert_eq!(serving_failure(&service(("False", CONTAINER_EXITS), 1, 2, 2)), None);
        assert_eq!(
            serving_failure(&service(("False", CONTAINER_EXITS), 0, 0, 2)),
            None,
            "at zero the next request tries again"
        );
        assert_eq!(serving_failure(&service(("False", CONTAINER_EXITS), 0, 1, 1)), None);
    }

    #[test]
    fn only_failure_reasons_of_a_false_condition_count() {
        assert_eq!(serving_failure(&service(("Unknown", "Deploying"), 0, 1, 2)), None);
        assert_eq!(serving_failure(&service(("False", "NotOwned"), 0, 1, 2)), None);
        assert_eq!(serving_failure(&service(("True", "PodsReady"), 0, 1, 2)), None);
        for reason in FAILURE_REASONS {
            assert!(
                serving_failure(&service(("False", reason), 0, 1, 2)).is_some(),
                "{reason}"
            );
        }
        let mut no_status = service(("False", CONTAINER_EXITS), 0, 1, 2);
        no_status.status = None;
        assert_eq!(serving_failure(&no_status), None);
    }
}
