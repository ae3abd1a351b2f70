//! The Service's status, computed by a pure function from what the reconciler observed of its revisions and routes;
//! written by `service/status.rs`.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use runway_api::conditions::{CONFIGURATION_READY, READY, ROUTES_READY, is_failure_reason};
use runway_api::{ReplicaStatus, RolloutStatus, Service, ServiceStatus, TrafficTargetStatus, names};

use super::traffic;
use crate::condition::{ConditionStatus, State, condition};

/// Something the reconciler could not put in place, or a part of the spec it refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChildProblem {
    /// Which condition it breaks: CONFIGURATION_READY (the revision), ROUTES_READY (routes and traffic), or READY
    /// on a revision (its Deployment or pods' Service).
    pub(crate) condition: &'static str,
    /// CamelCase reason, e.g. NotOwned or ApplyFailed.
    pub(crate) reason: String,
    pub(crate) message: String,
}

/// Pod counts summed over the Service's revisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Replicas {
    pub(crate) replicas: i32,
    pub(crate) ready: i32,
    pub(crate) desired: i32,
    pub(crate) frozen: i32,
}

/// What the reconciler saw after putting the revisions and routes in place.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    /// The revision the current spec runs, and its Ready state.
    pub(crate) latest_created: Option<(String, State)>,
    pub(crate) latest_ready: Option<String>,
    pub(crate) problems: Vec<ChildProblem>,
    /// The resolved routing table.
    pub(crate) traffic: Vec<TrafficTargetStatus>,
    pub(crate) rollout: Option<RolloutStatus>,
    pub(crate) replicas: Replicas,
}

/// Computes the status. ConfigurationReady is the latest created revision's Ready; RoutesReady says whether the
/// routes and the routing table are as asked; Ready is both, and when it is not True while other revisions serve,
/// it says where the requests go. Conditions keep their lastTransitionTime while their status stays the same.
pub(crate) fn compute(service: &Service, observed: &Observed, domain: &str, now: Timestamp) -> ServiceStatus {
    let previous = service.status.clone().unwrap_or_default();
    let generation = service.metadata.generation;
    let configuration = problem_state(observed, CONFIGURATION_READY).unwrap_or_else(|| {
        observed.latest_created.as_ref().map_or_else(
            || State::new(ConditionStatus::Unknown, "Deploying", "the revision does not exist yet"),
            |(_, state)| state.clone(),
        )
    });
    let summary = traffic::summary(&observed.traffic);
    let routes = problem_state(observed, ROUTES_READY).unwrap_or_else(|| {
        let message = summary.as_ref().map_or_else(
            || "the activator routes to the Service's revisions".to_owned(),
            |summary| format!("the activator routes requests to {summary}"),
        );
        State::new(ConditionStatus::True, "RoutesApplied", message)
    });
    let ready = if !configuration.is_true() {
        // A new revision that fails or still starts: say which revisions serve meanwhile.
        let latest = observed.latest_created.as_ref().map(|(name, _)| name.as_str());
        let others_serve = observed
            .traffic
            .iter()
            .any(|t| t.percent > 0 && Some(t.revision_name.as_str()) != latest);
        let message = match &summary {
            Some(summary) if others_serve => format!("{}; requests go to {summary}", configuration.message),
            _ => configuration.message.clone(),
        };
        State::new(configuration.status, &configuration.reason, message)
    } else if !routes.is_true() {
        routes.clone()
    } else {
        State::new(ConditionStatus::True, "Ready", "the Service answers at its URL")
    };
    let conditions = [
        (READY, ready),
        (CONFIGURATION_READY, configuration),
        (ROUTES_READY, routes),
    ]
    .into_iter()
    .map(|(type_, state)| condition(&previous.conditions, type_, state, generation, now))
    .collect();
    let Replicas {
        replicas,
        ready,
        desired,
        frozen,
    } = observed.replicas;
    ServiceStatus {
        url: Some(names::url(
            &service.name_any(),
            &service.namespace().unwrap_or_default(),
            domain,
            service.spec.visibility,
        )),
        observed_generation: generation,
        conditions,
        pods: ReplicaStatus::counted(replicas, ready, desired).with_frozen(frozen),
        latest_created_revision_name: observed.latest_created.as_ref().map(|(name, _)| name.clone()),
        latest_ready_revision_name: observed.latest_ready.clone(),
        traffic: observed.traffic.clone(),
        traffic_summary: summary,
        rollout: observed.rollout.clone(),
    }
}

fn problem_state(observed: &Observed, condition: &str) -> Option<State> {
    let problem = observed.problems.iter().find(|p| p.condition == condition)?;
    Some(State::new(
        ConditionStatus::False,
        &problem.reason,
        problem.message.clone(),
    ))
}

/// The event a status change deserves: a Warning when ConfigurationReady turns False with a failure reason it did
/// not have for the same latest revision (not on every new restart count), naming the revision, with the message.
pub(crate) fn transition_event(
    before: Option<&ServiceStatus>,
    after: &ServiceStatus,
) -> Option<(EventType, String, String)> {
    let configuration = |status: &ServiceStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == CONFIGURATION_READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (status, reason, message) = configuration(after)?;
    if status != ConditionStatus::False.as_str() || !is_failure_reason(&reason) {
        return None;
    }
    let revision = after.latest_created_revision_name.clone().unwrap_or_default();
    let same = before.is_some_and(|before| {
        before.latest_created_revision_name.as_deref() == Some(revision.as_str())
            && configuration(before)
                .is_some_and(|(status, previous, _)| status == ConditionStatus::False.as_str() && previous == reason)
    });
    (!same).then(|| (EventType::Warning, reason, format!("{revision}: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use runway_api::conditions::{CONTAINER_EXITS, READINESS_TIMEOUT, REVISION_NAME_TAKEN, TAG_COLLISION};
    use runway_api::{ServiceSpec, ServiceTemplate};

    fn service() -> Service {
        let mut s = Service::new(
            "hello",
            ServiceSpec {
                visibility: Default::default(),
                invokers: Default::default(),
                access_log_percent: None,
                template: ServiceTemplate::default(),
                container_concurrency: 0,
                timeout_seconds: 300,
                progress_deadline_seconds: 120,
                scaling: Default::default(),
                traffic: None,
                rollout: None,
                revision_history_limit: None,
            },
        );
        s.metadata.namespace = Some("default".into());
        s.metadata.generation = Some(3);
        s
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn find<'a>(status: &'a ServiceStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn state(c: &Condition) -> (&str, &str, &str) {
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    fn to(revision: &str, percent: i32) -> TrafficTargetStatus {
        TrafficTargetStatus {
            revision_name: revision.into(),
            latest_revision: true,
            percent,
            tag: None,
            url: None,
        }
    }

    /// Revision `latest` in `ready`, all traffic on `serving`.
    fn observed(latest: &str, ready: State, serving: &str) -> Observed {
        Observed {
            latest_created: Some((latest.into(), ready)),
            latest_ready: Some(serving.into()),
            problems: vec![],
            traffic: vec![to(serving, 100)],
            rollout: None,
            replicas: Replicas {
                replicas: 2,
                ready: 2,
                desired: 2,
                frozen: 0,
            },
        }
    }

    fn pods_ready() -> State {
        State::new(ConditionStatus::True, "PodsReady", "2 of 2 pods ready")
    }

    const EXITS: &str = "container exits with code 1 (DATABASE_URL is not set), restarted 3 times";

    #[test]
    fn a_ready_latest_revision_makes_the_service_ready_with_url_counts_and_traffic() {
        let status = compute(
            &service(),
            &observed("hello-00003", pods_ready(), "hello-00003"),
            "example.com",
            at(10),
        );
        assert_eq!(status.url.as_deref(), Some("http://hello.default.example.com"));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            (
                status.pods.replicas,
                status.pods.ready_replicas,
                status.pods.desired_replicas
            ),
            (2, 2, 2)
        );
        assert_eq!(status.pods.replica_summary.as_deref(), Some("2/2"));
        assert_eq!(status.latest_created_revision_name.as_deref(), Some("hello-00003"));
        assert_eq!(status.latest_ready_revision_name.as_deref(), Some("hello-00003"));
        assert_eq!(status.traffic_summary.as_deref(), Some("hello-00003=100%"));
        for type_ in [READY, CONFIGURATION_READY, ROUTES_READY] {
            let c = find(&status, type_);
            assert_eq!((c.status.as_str(), c.observed_generation), ("True", Some(3)), "{type_}");
        }
        assert_eq!(
            find(&status, ROUTES_READY).message,
            "the activator routes requests to hello-00003=100%"
        );
    }

    #[test]
    fn a_failing_new_revision_fails_configuration_and_ready_while_the_old_one_serves() {
        let failing = State::new(ConditionStatus::False, CONTAINER_EXITS, EXITS);
        let status = compute(
            &service(),
            &observed("hello-00003", failing, "hello-00002"),
            "example.com",
            at(10),
        );
        assert_eq!(
            state(find(&status, CONFIGURATION_READY)),
            ("False", CONTAINER_EXITS, EXITS)
        );
        let expected = format!("{EXITS}; requests go to hello-00002=100%");
        assert_eq!(
            state(find(&status, READY)),
            ("False", CONTAINER_EXITS, expected.as_str())
        );
        assert_eq!(find(&status, ROUTES_READY).status, "True");
        assert_eq!(status.latest_created_revision_name.as_deref(), Some("hello-00003"));
        assert_eq!(status.latest_ready_revision_name.as_deref(), Some("hello-00002"));
    }

    #[test]
    fn the_first_revision_failing_says_so_without_other_revisions() {
        let failing = State::new(ConditionStatus::False, CONTAINER_EXITS, EXITS);
        let mut seen = observed("hello-00001", failing, "hello-00001");
        seen.latest_ready = None;
        let status = compute(&service(), &seen, "example.com", at(10));
        assert_eq!(state(find(&status, READY)), ("False", CONTAINER_EXITS, EXITS));
    }

    #[test]
    fn problems_set_their_condition_false_and_ready_with_it() {
        let mut seen = observed("hello-00003", pods_ready(), "hello-00003");
        seen.problems.push(ChildProblem {
            condition: ROUTES_READY,
            reason: TAG_COLLISION.into(),
            message: "tag canary is not routed: its host canary-hello is another Service's".into(),
        });
        let status = compute(&service(), &seen, "example.com", at(10));
        assert_eq!(state(find(&status, READY)).1, TAG_COLLISION);
        assert_eq!(find(&status, CONFIGURATION_READY).status, "True");
        seen.problems.push(ChildProblem {
            condition: CONFIGURATION_READY,
            reason: REVISION_NAME_TAKEN.into(),
            message: "revision hello-blue exists with another template".into(),
        });
        let status = compute(&service(), &seen, "example.com", at(10));
        assert_eq!(
            state(find(&status, READY)).1,
            REVISION_NAME_TAKEN,
            "configuration first"
        );
    }

    #[test]
    fn without_a_revision_the_configuration_is_unknown() {
        let seen = Observed::default();
        let status = compute(&service(), &seen, "example.com", at(10));
        assert_eq!(state(find(&status, CONFIGURATION_READY)).0, "Unknown");
        assert_eq!(status.traffic_summary, None);
        assert_eq!(status.pods.replica_summary.as_deref(), Some("0/0"));
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut svc = service();
        let first = compute(
            &svc,
            &observed("hello-00003", pods_ready(), "hello-00003"),
            "example.com",
            at(10),
        );
        svc.status = Some(first);
        let same = compute(
            &svc,
            &observed("hello-00003", pods_ready(), "hello-00003"),
            "example.com",
            at(20),
        );
        assert_eq!(find(&same, READY).last_transition_time, Time(at(10)));
        let starting = State::new(ConditionStatus::Unknown, "Deploying", "0 of 1 pods ready");
        let changed = compute(
            &svc,
            &observed("hello-00004", starting, "hello-00003"),
            "example.com",
            at(30),
        );
        assert_eq!(find(&changed, READY).last_transition_time, Time(at(30)));
        assert_eq!(find(&changed, ROUTES_READY).last_transition_time, Time(at(10)));
    }

    #[test]
    fn a_warning_comes_with_each_new_failure_reason() {
        let svc = service();
        let compute_with = |ready: State, now| {
            compute(
                &svc,
                &observed("hello-00003", ready, "hello-00002"),
                "example.com",
                at(now),
            )
        };
        let starting = compute_with(
            State::new(ConditionStatus::Unknown, "Deploying", "0 of 1 pods ready"),
            1,
        );
        let crashing = compute_with(State::new(ConditionStatus::False, CONTAINER_EXITS, EXITS), 2);
        assert_eq!(
            transition_event(Some(&starting), &crashing),
            Some((
                EventType::Warning,
                "ContainerExits".into(),
                format!("hello-00003: {EXITS}")
            ))
        );
        let more = compute_with(
            State::new(ConditionStatus::False, CONTAINER_EXITS, "restarted 4 times"),
            3,
        );
        assert_eq!(
            transition_event(Some(&crashing), &more),
            None,
            "same reason, new message"
        );
        let timed_out = compute_with(
            State::new(ConditionStatus::False, READINESS_TIMEOUT, "no pod became ready"),
            4,
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
        assert_eq!(transition_event(Some(&timed_out), &compute_with(pods_ready(), 5)), None);
        let mut next = timed_out.clone();
        next.latest_created_revision_name = Some("hello-00004".into());
        assert!(
            transition_event(Some(&timed_out), &next).is_some(),
            "the same reason on a new revision is news"
        );
    }
}
