//! The Service's status, computed by a pure function from what the reconciler observed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use runway_api::{Service, ServiceStatus, names};

pub const READY: &str = "Ready";
pub const CONFIGURATION_READY: &str = "ConfigurationReady";
pub const ROUTES_READY: &str = "RoutesReady";

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
}

/// A condition's state before timestamps: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    status: &'static str,
    reason: String,
    message: String,
}

impl State {
    fn new(status: &'static str, reason: &str, message: impl Into<String>) -> State {
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
    let configuration =
        problem_state(observed, CONFIGURATION_READY).unwrap_or_else(|| deployment_state(observed.deployment.as_ref()));
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

/// ConfigurationReady from the Deployment: ready when it is available or scaled to zero, failed when Kubernetes
/// gave up progressing, unknown while pods are starting.
fn deployment_state(deployment: Option<&Deployment>) -> State {
    let Some(deployment) = deployment else {
        return State::new("Unknown", "Deploying", "the Deployment does not exist yet");
    };
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    if let Some(c) = find("ReplicaFailure").filter(|c| c.status == "True") {
        return State::new("False", "ReplicaFailure", c.message.clone().unwrap_or_default());
    }
    if let Some(c) = find("Progressing").filter(|c| c.status == "False") {
        let reason = c
            .reason
            .clone()
            .unwrap_or_else(|| "ProgressDeadlineExceeded".to_owned());
        return State::new("False", &reason, c.message.clone().unwrap_or_default());
    }
    let ready = status.ready_replicas.unwrap_or(0);
    if desired == 0 {
        return State::new(
            "True",
            "ScaledToZero",
            "no pods are running; the next request starts one",
        );
    }
    if ready > 0 && find("Available").is_some_and(|c| c.status == "True") {
        return State::new("True", "PodsReady", format!("{ready} of {desired} pods ready"));
    }
    State::new("Unknown", "Deploying", format!("{ready} of {desired} pods ready"))
}

fn condition(previous: &[Condition], type_: &str, state: State, generation: Option<i64>, now: Timestamp) -> Condition {
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
                template: ServiceTemplate::default(),
                container_concurrency: 0,
                timeout_seconds: 300,
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
}
