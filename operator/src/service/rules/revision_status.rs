//! A revision's status, computed by pure functions from its Deployment, its pods' diagnosis and the Service's
//! routing table; written by `service/revision_status.rs`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use runway_api::conditions::{self, READY, is_failure_reason};
use runway_api::serving::serving_port;
use runway_api::{ReplicaStatus, Revision, RevisionStatus};

use super::status::ChildProblem;
use super::traffic::Share;
use crate::condition::{ConditionStatus, State, condition};
use crate::failure::Failure;

/// Added to the last failure's message while a revision is at zero after it.
const AT_ZERO_SUFFIX: &str = "; no pods are running now: the next request starts one and tries again";

/// What the reconciler saw of one revision.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    pub(crate) deployment: Option<Deployment>,
    /// Its Deployment or pods' Service could not be put in place.
    pub(crate) problem: Option<ChildProblem>,
    /// Why its pods cannot start or become ready, from `failure::diagnose`.
    pub(crate) failure: Option<Failure>,
    /// The serving container's image digest, from its pods.
    pub(crate) image_digest: Option<String>,
    /// Its pods the node agent has marked frozen.
    pub(crate) frozen: i32,
}

/// The revision's Ready condition before timestamps.
pub(crate) fn readiness(revision: &Revision, observed: &Observed) -> State {
    if let Some(problem) = &observed.problem {
        return State::new(ConditionStatus::False, &problem.reason, problem.message.clone());
    }
    let previous = revision
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    deployment_state(observed.deployment.as_ref(), observed.failure.as_ref(), previous)
}

/// Ready from the Deployment and the pods' failure:
/// - False when the Deployment cannot create pods, when no pod is ready and the pods are failing (with the pods'
///   reason), or when the Deployment's rollout is stuck (Kubernetes' progress deadline);
/// - at zero: True, or, after a failure and until a pod becomes ready, still False with that failure, so that it
///   stays visible (`previous` is the condition as last written; a revision's spec never changes);
/// - True once a pod is ready and the Deployment available, Unknown while pods start.
fn deployment_state(deployment: Option<&Deployment>, failure: Option<&Failure>, previous: Option<&Condition>) -> State {
    let Some(deployment) = deployment else {
        return State::new(
            ConditionStatus::Unknown,
            "Deploying",
            "the Deployment does not exist yet",
        );
    };
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let ready = status.ready_replicas.unwrap_or(0);
    if let Some(c) = find("ReplicaFailure").filter(|c| c.status == ConditionStatus::True.as_str()) {
        return State::new(
            ConditionStatus::False,
            conditions::REPLICA_FAILURE,
            c.message.clone().unwrap_or_default(),
        );
    }
    if let Some(failure) = failure.filter(|_| ready == 0 && desired > 0) {
        return State::new(ConditionStatus::False, failure.reason, failure.message.clone());
    }
    if let Some(c) = find("Progressing").filter(|c| c.status == ConditionStatus::False.as_str()) {
        let deployment_reason = c
            .reason
            .clone()
            .unwrap_or_else(|| conditions::PROGRESS_DEADLINE_EXCEEDED.to_owned());
        let (reason, message) = match failure {
            Some(f) => (f.reason.to_owned(), f.message.clone()),
            None => (deployment_reason, c.message.clone().unwrap_or_default()),
        };
        if ready > 0 {
            let serving = if ready == 1 {
                "1 pod of the previous template serves".to_owned()
            } else {
                format!("{ready} pods of the previous template serve")
            };
            let message = format!("the rollout is stuck ({message}); {serving}");
            return State::new(ConditionStatus::False, &reason, message);
        }
        return State::new(ConditionStatus::False, &reason, message);
    }
    if desired == 0 {
        if let Some(last) =
            previous.filter(|c| c.status == ConditionStatus::False.as_str() && is_failure_reason(&c.reason))
        {
            let message = last.message.strip_suffix(AT_ZERO_SUFFIX).unwrap_or(&last.message);
            return State::new(
                ConditionStatus::False,
                &last.reason,
                format!("{message}{AT_ZERO_SUFFIX}"),
            );
        }
        return State::new(
            ConditionStatus::True,
            "ScaledToZero",
            "no pods are running; the next request starts one",
        );
    }
    let counts = format!("{ready} of {desired} pods ready");
    let counts = match failure {
        Some(f) => format!("{counts}; {}: {}", f.reason, f.message),
        None => counts,
    };
    if ready > 0 && find("Available").is_some_and(|c| c.status == ConditionStatus::True.as_str()) {
        return State::new(ConditionStatus::True, "PodsReady", counts);
    }
    State::new(ConditionStatus::Unknown, "Deploying", counts)
}

/// The revision's status: `ready` (from `readiness`), the counts of its Deployment, and its share of the traffic.
/// The image digest stays once known, also at zero.
pub(crate) fn compute(
    revision: &Revision,
    ready: State,
    observed: &Observed,
    share: &Share,
    now: Timestamp,
) -> RevisionStatus {
    let previous = revision.status.clone().unwrap_or_default();
    let generation = revision.metadata.generation;
    let deployment_status = observed
        .deployment
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let desired = observed
        .deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    RevisionStatus {
        observed_generation: generation,
        conditions: vec![condition(&previous.conditions, READY, ready, generation, now)],
        pods: ReplicaStatus::counted(
            deployment_status.replicas.unwrap_or(0),
            deployment_status.ready_replicas.unwrap_or(0),
            desired,
        )
        .with_frozen(observed.frozen),
        image_digest: observed.image_digest.clone().or(previous.image_digest),
        routed: share.routed(),
        traffic_percent: share.percent,
        tags: share.tags.clone(),
    }
}

/// The digest of the serving container's image as the kubelet reports it (`imageID`, e.g.
/// `docker.io/library/hello@sha256:...`), from the first of `pods` that has one: the `sha256:...` part.
pub(crate) fn image_digest<'a>(revision: &Revision, pods: impl IntoIterator<Item = &'a Pod>) -> Option<String> {
    let containers = &revision.spec.template.spec.containers;
    let serving = containers.get(serving_port(containers).container_index)?;
    let name = if serving.name.is_empty() {
        runway_api::crd::DEFAULT_CONTAINER_NAME
    } else {
        serving.name.as_str()
    };
    pods.into_iter()
        .filter_map(|pod| pod.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter(|c| c.name == name)
        .find_map(|c| digest(&c.image_id))
}

fn digest(image_id: &str) -> Option<String> {
    let digest = image_id.rsplit_once('@').map_or(image_id, |(_, digest)| digest);
    digest.starts_with("sha256:").then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use runway_api::RevisionSpec;

    fn revision() -> Revision {
        let spec: RevisionSpec = serde_json::from_value(serde_json::json!({
            "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "proxy"},
                {"name": "web", "image": "hello", "ports": [{"containerPort": 9000}]}
            ]}},
            "timeoutSeconds": 300, "progressDeadlineSeconds": 120
        }))
        .unwrap();
        let mut r = Revision::new("hello-00001", spec);
        r.metadata.generation = Some(1);
        r
    }

    fn deployment(desired: i32, ready: i32, conditions: &[(&str, &str, &str)]) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(desired),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                replicas: Some(ready),
                ready_replicas: Some(ready),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s, r)| DeploymentCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            reason: Some((*r).into()),
                            message: Some(format!("{t} says {r}")),
                            ..DeploymentCondition::default()
                        })
                        .collect(),
                ),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    fn observed(deployment: Deployment) -> Observed {
        Observed {
            deployment: Some(deployment),
            ..Observed::default()
        }
    }

    fn failing(deployment: Deployment, reason: &'static str, message: &str) -> Observed {
        Observed {
            deployment: Some(deployment),
            failure: Some(Failure {
                reason,
                message: message.into(),
            }),
            ..Observed::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    /// The status computed for `observed`, with the revision's previous status `before`.
    fn status(before: Option<RevisionStatus>, observed: &Observed, now: i64) -> RevisionStatus {
        let mut r = revision();
        r.status = before;
        compute(&r, readiness(&r, observed), observed, &Share::default(), at(now))
    }

    fn ready_condition(status: &RevisionStatus) -> Option<&Condition> {
        status.conditions.iter().find(|c| c.type_ == READY)
    }

    fn ready(status: &RevisionStatus) -> (&str, &str, &str) {
        let c = ready_condition(status).unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    const EXITS: &str = "container exits with code 1 (DATABASE_URL is not set), restarted 3 times";

    #[test]
    fn available_pods_make_it_ready_with_counts() {
        let s = status(
            None,
            &observed(deployment(2, 2, &[("Available", "True", "MinimumReplicasAvailable")])),
            10,
        );
        assert_eq!(ready(&s), ("True", "PodsReady", "2 of 2 pods ready"));
        assert_eq!(
            (s.pods.replicas, s.pods.ready_replicas, s.pods.desired_replicas),
            (2, 2, 2)
        );
        assert_eq!(s.pods.replica_summary.as_deref(), Some("2/2"));
        assert_eq!(s.observed_generation, Some(1));
    }

    #[test]
    fn starting_pods_are_unknown_and_no_deployment_too() {
        let s = status(None, &observed(deployment(1, 0, &[])), 10);
        assert_eq!(ready(&s).0, "Unknown");
        assert_eq!(ready(&s).1, "Deploying");
        assert_eq!(ready(&status(None, &Observed::default(), 10)).1, "Deploying");
    }

    #[test]
    fn at_zero_it_is_ready_unless_it_failed_before() {
        let zero = status(None, &observed(deployment(0, 0, &[])), 10);
        assert_eq!(ready(&zero).1, "ScaledToZero");
        let crashed = status(
            None,
            &failing(deployment(1, 0, &[]), conditions::CONTAINER_EXITS, EXITS),
            10,
        );
        assert_eq!(ready(&crashed), ("False", "ContainerExits", EXITS));
        let stopped = status(Some(crashed), &observed(deployment(0, 0, &[])), 20);
        let expected = format!("{EXITS}{AT_ZERO_SUFFIX}");
        assert_eq!(ready(&stopped), ("False", "ContainerExits", expected.as_str()));
        assert_eq!(ready_condition(&stopped).unwrap().last_transition_time, Time(at(10)));
        let again = status(Some(stopped), &observed(deployment(0, 0, &[])), 30);
        assert_eq!(ready(&again).2, expected, "suffixed once");
        let recovered = status(
            Some(again),
            &observed(deployment(1, 1, &[("Available", "True", "MinimumReplicasAvailable")])),
            40,
        );
        assert_eq!(ready(&recovered).0, "True");
    }

    #[test]
    fn the_pods_reason_wins_over_the_deployments_progress_deadline() {
        let d = deployment(1, 0, &[("Progressing", "False", "ProgressDeadlineExceeded")]);
        assert_eq!(
            ready(&status(None, &observed(d.clone()), 10)).1,
            "ProgressDeadlineExceeded"
        );
        let pulled = failing(d, conditions::IMAGE_PULL_FAILED, "image \"x\" cannot be pulled");
        assert_eq!(ready(&status(None, &pulled, 10)).1, "ImagePullFailed");
    }

    #[test]
    fn a_stuck_template_change_says_the_old_pods_serve() {
        let d = deployment(2, 1, &[("Progressing", "False", "ProgressDeadlineExceeded")]);
        let s = status(None, &failing(d, conditions::CONTAINER_EXITS, EXITS), 10);
        assert_eq!(
            ready(&s).2,
            format!("the rollout is stuck ({EXITS}); 1 pod of the previous template serves")
        );
    }

    #[test]
    fn a_failure_beside_ready_pods_is_told_without_failing() {
        let d = deployment(2, 1, &[("Available", "True", "MinimumReplicasAvailable")]);
        let s = status(
            None,
            &failing(d, conditions::UNSCHEDULABLE, "no node can run the pod"),
            10,
        );
        assert_eq!(
            ready(&s),
            (
                "True",
                "PodsReady",
                "1 of 2 pods ready; Unschedulable: no node can run the pod"
            )
        );
    }

    #[test]
    fn a_child_problem_or_a_replica_failure_is_not_ready() {
        let problem = Observed {
            problem: Some(ChildProblem {
                condition: READY,
                reason: "NotOwned".into(),
                message: "Deployment default/hello-00001 exists and is not owned by this Runway Revision".into(),
            }),
            ..observed(deployment(1, 1, &[("Available", "True", "MinimumReplicasAvailable")]))
        };
        assert_eq!(ready(&status(None, &problem, 10)).1, "NotOwned");
        let quota = deployment(1, 0, &[("ReplicaFailure", "True", "FailedCreate")]);
        assert_eq!(ready(&status(None, &observed(quota), 10)).1, "ReplicaFailure");
    }

    #[test]
    fn routing_and_the_digest_are_recorded_and_the_digest_is_kept_at_zero() {
        let mut r = revision();
        let share = Share {
            percent: 10,
            tags: vec!["canary".into()],
        };
        let mut o = observed(deployment(0, 0, &[]));
        o.image_digest = Some("sha256:abc".into());
        let s = compute(&r, readiness(&r, &o), &o, &share, at(1));
        assert_eq!(
            (
                s.routed,
                s.traffic_percent,
                s.tags.as_slice(),
                s.image_digest.as_deref()
            ),
            (true, 10, ["canary".to_owned()].as_slice(), Some("sha256:abc"))
        );
        r.status = Some(s);
        let later = compute(
            &r,
            readiness(&r, &Observed::default()),
            &Observed::default(),
            &Share::default(),
            at(2),
        );
        assert_eq!(later.image_digest.as_deref(), Some("sha256:abc"));
        assert!(!later.routed);
    }

    #[test]
    fn the_digest_is_the_serving_containers() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [
                {"name": "sidecar", "image": "proxy", "imageID": "docker.io/proxy@sha256:111", "ready": true, "restartCount": 0},
                {"name": "web", "image": "hello", "imageID": "runway.local/hello@sha256:222", "ready": true, "restartCount": 0}
            ]}
        }))
        .unwrap();
        assert_eq!(image_digest(&revision(), [&pod]).as_deref(), Some("sha256:222"));
        let mut starting = pod.clone();
        starting.status.as_mut().unwrap().container_statuses.as_mut().unwrap()[1].image_id = String::new();
        assert_eq!(image_digest(&revision(), [&starting]), None);
        assert_eq!(digest("sha256:333").as_deref(), Some("sha256:333"));
    }
}
