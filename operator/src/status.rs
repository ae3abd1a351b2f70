//! The Service's status, computed by a pure function from what the reconciler observed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use runway_api::conditions::{self, is_failure_reason};
use runway_api::{Service, ServiceStatus, names};

use crate::failure::Failure;

pub use runway_api::conditions::{CONFIGURATION_READY, READY, ROUTES_READY};

/// Added to the last failure's message while the Service is at zero after it.
pub const AT_ZERO_SUFFIX: &str = "; no pods are running now: the next request starts one and tries again";

/// A child object the reconciler could not put in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildProblem {
    /// Which condition it breaks: CONFIGURATION_READY (the Deployment) or ROUTES_READY (the Kubernetes Services).
    pub condition: &'static str,
    /// CamelCase reason, e.g. NotOwned or ApplyFailed.
    pub reason: String,
    pub message: String,
}

/// What the reconciler saw after applying the children.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub deployment: Option<Deployment>,
    pub problems: Vec<ChildProblem>,
    /// Why the pods cannot start or become ready, from `failure::diagnose`.
    pub failure: Option<Failure>,
}

/// A condition's state before timestamps: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    status: &'static str,
    reason: String,
    message: String,
}

impl State {
    pub(crate) fn new(status: &'static str, reason: &str, message: impl Into<String>) -> State {
        State {
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Computes the status. Conditions keep their lastTransitionTime while their status stays the same.
pub fn compute(service: &Service, observed: &Observed, domain: &str, now: Timestamp) -> ServiceStatus {
    let previous = service.status.clone().unwrap_or_default();
    let generation = service.metadata.generation;
    let previous_configuration = previous
        .conditions
        .iter()
        .find(|c| c.type_ == CONFIGURATION_READY && c.observed_generation == generation);
    let configuration = problem_state(observed, CONFIGURATION_READY).unwrap_or_else(|| {
        deployment_state(
            observed.deployment.as_ref(),
            observed.failure.as_ref(),
            previous_configuration,
        )
    });
    let routes = problem_state(observed, ROUTES_READY)
        .unwrap_or_else(|| State::new("True", "RoutesApplied", "the activator routes to the pods' Service"));
    let ready = [(CONFIGURATION_READY, &configuration), (ROUTES_READY, &routes)]
        .into_iter()
        .find(|(_, state)| state.status != "True")
        .map_or_else(
            || State::new("True", "Ready", "the Service answers at its URL"),
            |(_, state)| State {
                status: state.status,
                reason: state.reason.clone(),
                message: state.message.clone(),
            },
        );
    let conditions = [
        (READY, ready),
        (CONFIGURATION_READY, configuration),
        (ROUTES_READY, routes),
    ]
    .into_iter()
    .map(|(type_, state)| condition(&previous.conditions, type_, state, generation, now))
    .collect();

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
    let ready_replicas = deployment_status.ready_replicas.unwrap_or(0);
    ServiceStatus {
        url: Some(names::url(
            &service.name_any(),
            &service.namespace().unwrap_or_default(),
            domain,
            service.spec.visibility,
        )),
        observed_generation: generation,
        conditions,
        replicas: deployment_status.replicas.unwrap_or(0),
        ready_replicas,
        desired_replicas: desired,
        replica_summary: Some(format!("{ready_replicas}/{desired}")),
    }
}

fn problem_state(observed: &Observed, condition: &str) -> Option<State> {
    let problem = observed.problems.iter().find(|p| p.condition == condition)?;
    Some(State::new("False", &problem.reason, problem.message.clone()))
}

/// ConfigurationReady from the Deployment and the pods' failure:
/// - False when the Deployment cannot create pods, when no pod is ready and the pods are failing (with the pods'
///   reason), or when the rollout is stuck (Kubernetes' progress deadline);
/// - at zero: True, or, after a failure and until the spec changes or a pod becomes ready, still False with that
///   failure, so that it stays visible (`previous` is the condition as last written for this generation);
/// - True once a pod is ready and the Deployment available, Unknown while pods start.
fn deployment_state(deployment: Option<&Deployment>, failure: Option<&Failure>, previous: Option<&Condition>) -> State {
    let Some(deployment) = deployment else {
        return State::new("Unknown", "Deploying", "the Deployment does not exist yet");
    };
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let ready = status.ready_replicas.unwrap_or(0);
    if let Some(c) = find("ReplicaFailure").filter(|c| c.status == "True") {
        return State::new(
            "False",
            conditions::REPLICA_FAILURE,
            c.message.clone().unwrap_or_default(),
        );
    }
    if let Some(failure) = failure.filter(|_| ready == 0 && desired > 0) {
        return State::new("False", failure.reason, failure.message.clone());
    }
    if let Some(c) = find("Progressing").filter(|c| c.status == "False") {
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
            return State::new("False", &reason, message);
        }
        return State::new("False", &reason, message);
    }
    if desired == 0 {
        if let Some(last) = previous.filter(|c| c.status == "False" && is_failure_reason(&c.reason)) {
            let message = last.message.strip_suffix(AT_ZERO_SUFFIX).unwrap_or(&last.message);
            return State::new("False", &last.reason, format!("{message}{AT_ZERO_SUFFIX}"));
        }
        return State::new(
            "True",
            "ScaledToZero",
            "no pods are running; the next request starts one",
        );
    }
    let counts = format!("{ready} of {desired} pods ready");
    let counts = match failure {
        Some(f) => format!("{counts}; {}: {}", f.reason, f.message),
        None => counts,
    };
    if ready > 0 && find("Available").is_some_and(|c| c.status == "True") {
        return State::new("True", "PodsReady", counts);
    }
    State::new("Unknown", "Deploying", counts)
}

/// The event a status change deserves: a Warning when ConfigurationReady turns False with a failure reason it did
/// not have (not on every new restart count), with the reason and the message.
pub fn transition_event(before: Option<&ServiceStatus>, after: &ServiceStatus) -> Option<(EventType, String, String)> {
    let configuration = |status: &ServiceStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == CONFIGURATION_READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (status, reason, message) = configuration(after)?;
    if status != "False" || !is_failure_reason(&reason) {
        return None;
    }
    let same = before
        .and_then(configuration)
        .is_some_and(|(status, previous, _)| status == "False" && previous == reason);
    (!same).then_some((EventType::Warning, reason, message))
}

/// The condition `type_` in `state`, keeping its lastTransitionTime from `previous` while its status stays the same.
pub(crate) fn condition(
    previous: &[Condition],
    type_: &str,
    state: State,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == state.status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: state.status.to_owned(),
        reason: state.reason,
        message: state.message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use runway_api::{ServiceSpec, ServiceTemplate};

    fn service() -> Service {
        let mut s = Service::new(
            "hello",
            ServiceSpec {
                visibility: Default::default(),
                template: ServiceTemplate::default(),
                container_concurrency: 0,
                timeout_seconds: 300,
                progress_deadline_seconds: 120,
                scaling: Default::default(),
            },
        );
        s.metadata.namespace = Some("default".into());
        s.metadata.generation = Some(3);
        s
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

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn find<'a>(status: &'a ServiceStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn observed(deployment: Deployment) -> Observed {
        Observed {
            deployment: Some(deployment),
            problems: vec![],
            failure: None,
        }
    }

    #[test]
    fn available_pods_make_the_service_ready_with_url_and_counts() {
        let status = compute(
            &service(),
            &observed(deployment(2, 2, &[("Available", "True", "MinimumReplicasAvailable")])),
            "example.com",
            at(10),
        );
        assert_eq!(status.url.as_deref(), Some("http://hello.default.example.com"));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            (status.replicas, status.ready_replicas, status.desired_replicas),
            (2, 2, 2)
        );
        assert_eq!(status.replica_summary.as_deref(), Some("2/2"));
        for type_ in [READY, CONFIGURATION_READY, ROUTES_READY] {
            let c = find(&status, type_);
            assert_eq!((c.status.as_str(), c.observed_generation), ("True", Some(3)), "{type_}");
        }
    }

    #[test]
    fn scaled_to_zero_with_routes_is_ready() {
        let status = compute(&service(), &observed(deployment(0, 0, &[])), "example.com", at(10));
        assert_eq!(find(&status, READY).status, "True");
        assert_eq!(find(&status, CONFIGURATION_READY).reason, "ScaledToZero");
    }

    #[test]
    fn starting_pods_are_unknown() {
        let status = compute(
            &service(),
            &observed(deployment(
                1,
                0,
                &[("Available", "False", "MinimumReplicasUnavailable")],
            )),
            "example.com",
            at(10),
        );
        let ready = find(&status, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("Unknown", "Deploying"));
        assert_eq!(status.replica_summary.as_deref(), Some("0/1"));
    }

    #[test]
    fn a_stuck_rollout_is_not_ready_with_the_deployment_reason() {
        let d = deployment(1, 0, &[("Progressing", "False", "ProgressDeadlineExceeded")]);
        let status = compute(&service(), &observed(d), "example.com", at(10));
        let ready = find(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ProgressDeadlineExceeded")
        );
        assert_eq!(ready.message, "Progressing says ProgressDeadlineExceeded");
    }

    #[test]
    fn a_child_problem_sets_ready_false_with_its_reason() {
        let problem = ChildProblem {
            condition: ROUTES_READY,
            reason: "NotOwned".into(),
            message: "Service default/hello exists and is not owned by this Runway Service".into(),
        };
        let observed = Observed {
            deployment: Some(deployment(0, 0, &[])),
            problems: vec![problem],
            failure: None,
        };
        let status = compute(&service(), &observed, "example.com", at(10));
        let ready = find(&status, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "NotOwned"));
        assert_eq!(find(&status, CONFIGURATION_READY).status, "True");
        assert_eq!(find(&status, ROUTES_READY).status, "False");
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut svc = service();
        let first = compute(&svc, &observed(deployment(0, 0, &[])), "example.com", at(10));
        svc.status = Some(first);
        let same = compute(&svc, &observed(deployment(0, 0, &[])), "example.com", at(20));
        assert_eq!(find(&same, READY).last_transition_time, Time(at(10)));
        let changed = compute(&svc, &observed(deployment(1, 0, &[])), "example.com", at(30));
        assert_eq!(find(&changed, READY).last_transition_time, Time(at(30)));
        assert_eq!(find(&changed, ROUTES_READY).last_transition_time, Time(at(10)));
    }

    fn failing(deployment: Deployment, reason: &'static str, message: &str) -> Observed {
        Observed {
            deployment: Some(deployment),
            problems: vec![],
            failure: Some(Failure {
                reason,
                message: message.into(),
            }),
        }
    }

    const EXITS: &str = "container exits with code 1 (DATABASE_URL is not set), restarted 3 times";

    #[test]
    fn failing_pods_with_none_ready_make_ready_and_configuration_false_with_their_reason() {
        let d = deployment(1, 0, &[("Available", "False", "MinimumReplicasUnavailable")]);
        let status = compute(
            &service(),
            &failing(d, conditions::CONTAINER_EXITS, EXITS),
            "example.com",
            at(10),
        );
        for type_ in [READY, CONFIGURATION_READY] {
            let c = find(&status, type_);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
                ("False", "ContainerExits", EXITS),
                "{type_}"
            );
        }
        let mut svc = service();
        svc.status = Some(status);
        assert_eq!(
            runway_api::serving_failure(&svc).as_deref(),
            Some(format!("hello: {EXITS}").as_str()),
            "the activator reads the same"
        );
    }

    #[test]
    fn the_pods_reason_wins_over_the_deployments_progress_deadline() {
        let d = deployment(1, 0, &[("Progressing", "False", "ProgressDeadlineExceeded")]);
        let status = compute(
            &service(),
            &failing(
                d,
                conditions::IMAGE_PULL_FAILED,
                "image \"x\" cannot be pulled: not found",
            ),
            "example.com",
            at(10),
        );
        assert_eq!(find(&status, READY).reason, "ImagePullFailed");
    }

    #[test]
    fn a_stuck_rollout_says_the_old_pods_serve() {
        let d = deployment(2, 1, &[("Progressing", "False", "ProgressDeadlineExceeded")]);
        let status = compute(
            &service(),
            &failing(d, conditions::CONTAINER_EXITS, EXITS),
            "example.com",
            at(10),
        );
        let ready = find(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ContainerExits")
        );
        assert_eq!(
            ready.message,
            format!("the rollout is stuck ({EXITS}); 1 pod of the previous template serves")
        );
        let mut svc = service();
        svc.status = Some(status);
        assert_eq!(runway_api::serving_failure(&svc), None, "a ready pod serves");
    }

    #[test]
    fn a_failure_beside_ready_pods_is_told_without_failing() {
        let d = deployment(2, 1, &[("Available", "True", "MinimumReplicasAvailable")]);
        let status = compute(
            &service(),
            &failing(
                d,
                conditions::UNSCHEDULABLE,
                "no node can run the pod: 0/1 nodes are available",
            ),
            "example.com",
            at(10),
        );
        let ready = find(&status, READY);
        assert_eq!(ready.status, "True");
        assert_eq!(
            find(&status, CONFIGURATION_READY).message,
            "1 of 2 pods ready; Unschedulable: no node can run the pod: 0/1 nodes are available"
        );
    }

    #[test]
    fn at_zero_the_last_failure_stays_until_the_spec_changes() {
        let mut svc = service();
        let d = deployment(1, 0, &[]);
        svc.status = Some(compute(
            &svc,
            &failing(d, conditions::CONTAINER_EXITS, EXITS),
            "example.com",
            at(10),
        ));
        let zero = compute(&svc, &observed(deployment(0, 0, &[])), "example.com", at(20));
        let ready = find(&zero, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ContainerExits")
        );
        assert_eq!(ready.message, format!("{EXITS}{AT_ZERO_SUFFIX}"));
        assert_eq!(ready.last_transition_time, Time(at(10)));
        svc.status = Some(zero);
        assert_eq!(runway_api::serving_failure(&svc), None, "the next request tries again");
        let again = compute(&svc, &observed(deployment(0, 0, &[])), "example.com", at(30));
        assert_eq!(
            find(&again, READY).message,
            format!("{EXITS}{AT_ZERO_SUFFIX}"),
            "suffixed once"
        );
        svc.metadata.generation = Some(4);
        let edited = compute(&svc, &observed(deployment(0, 0, &[])), "example.com", at(40));
        assert_eq!(find(&edited, CONFIGURATION_READY).reason, "ScaledToZero");
        assert_eq!(find(&edited, READY).status, "True");
    }

    #[test]
    fn a_ready_pod_turns_everything_back_to_true() {
        let mut svc = service();
        svc.status = Some(compute(
            &svc,
            &failing(deployment(1, 0, &[]), conditions::CONTAINER_EXITS, EXITS),
            "example.com",
            at(10),
        ));
        let recovered = compute(
            &svc,
            &observed(deployment(1, 1, &[("Available", "True", "MinimumReplicasAvailable")])),
            "example.com",
            at(20),
        );
        for type_ in [READY, CONFIGURATION_READY, ROUTES_READY] {
            assert_eq!(find(&recovered, type_).status, "True", "{type_}");
        }
    }

    #[test]
    fn a_warning_comes_with_each_new_failure_reason() {
        let svc = service();
        let starting = compute(&svc, &observed(deployment(1, 0, &[])), "example.com", at(1));
        let crashing = compute(
            &svc,
            &failing(deployment(1, 0, &[]), conditions::CONTAINER_EXITS, EXITS),
            "example.com",
            at(2),
        );
        assert_eq!(
            transition_event(Some(&starting), &crashing),
            Some((EventType::Warning, "ContainerExits".into(), EXITS.into()))
        );
        let more = compute(
            &svc,
            &failing(deployment(1, 0, &[]), conditions::CONTAINER_EXITS, "restarted 4 times"),
            "example.com",
            at(3),
        );
        assert_eq!(
            transition_event(Some(&crashing), &more),
            None,
            "same reason, new message"
        );
        let timed_out = compute(
            &svc,
            &failing(
                deployment(1, 0, &[]),
                conditions::READINESS_TIMEOUT,
                "no pod became ready",
            ),
            "example.com",
            at(4),
        );
        assert_eq!(
            transition_event(Some(&more), &timed_out).map(|e| e.1),
            Some("ReadinessTimeout".into())
        );
        assert_eq!(
            transition_event(None, &crashing).map(|e| e.0),
            Some(EventType::Warning),
            "a failure found by a new operator is told too"
        );
        let ready = compute(
            &svc,
            &observed(deployment(1, 1, &[("Available", "True", "MinimumReplicasAvailable")])),
            "example.com",
            at(5),
        );
        assert_eq!(transition_event(Some(&timed_out), &ready), None);
    }
}
