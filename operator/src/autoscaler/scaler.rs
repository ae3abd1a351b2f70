//! The autoscaler loop: every second, and at once on a poke, decide each revision's pod count and write it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::{Revision, RevisionKey, Service, conditions, names};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::board::{Board, Totals};
use super::decision::{Decision, History, Observation, Reason, decide};
use super::policy::{Defaults, Policy};
use crate::children::apply_scale;
use crate::events::{self, Happening};
use crate::failure::{self, Diagnosis};
use crate::metrics::{Metrics, ResultLabels, RevisionLabels};
use crate::spans;

pub(crate) const TICK: Duration = Duration::from_secs(1);

/// Everything the loop reads and writes.
pub(crate) struct Scaler {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
    /// Every Runway Service: the scaling settings of its revisions.
    pub(crate) services: Store<Service>,
    /// Every Revision: what is scaled, each on its own load.
    pub(crate) revisions: Store<Revision>,
    pub(crate) deployments: Store<Deployment>,
    /// Every Runway pod: whether a revision's pods fail to become ready.
    pub(crate) pods: Store<Pod>,
    pub(crate) board: Arc<Mutex<Board>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) defaults: Defaults,
}

/// A write the Deployment may not show yet: the reflector lags behind the API server.
const WRITE_SETTLE: Duration = Duration::from_secs(5);

/// Per-revision memory of the loop.
struct Tracked {
    history: History,
    poked: bool,
    last_write: Option<(i32, Instant)>,
    /// Its series, dropped when the revision is deleted.
    labels: RevisionLabels,
}

impl Tracked {
    fn new(now: Duration, labels: RevisionLabels) -> Tracked {
        Tracked {
            history: History::new(now),
            poked: false,
            last_write: None,
            labels,
        }
    }

    /// Whether `desired` needs writing: it differs from the Deployment and was not just written.
    fn should_write(&self, desired: i32, current: i32, now: Instant) -> bool {
        desired != current
            && !self
                .last_write
                .is_some_and(|(written, at)| written == desired && now.duration_since(at) < WRITE_SETTLE)
    }
}

/// A revision with what scaling it needs: its Service (for spec.scaling) and its Deployment.
struct Target {
    revision: Arc<Revision>,
    service: Arc<Service>,
    deployment: Arc<Deployment>,
}

impl Target {
    fn key(&self) -> RevisionKey {
        RevisionKey::of(&self.revision)
    }

    fn labels(&self) -> RevisionLabels {
        RevisionLabels {
            namespace: self.revision.namespace().unwrap_or_default(),
            service: self.service.name_any(),
            revision: self.revision.name_any(),
        }
    }

    fn policy(&self, defaults: &Defaults) -> Policy {
        let routed = self.revision.status.as_ref().is_some_and(|s| s.routed);
        Policy::new(&self.service.spec.scaling, &self.revision.spec, routed, defaults)
    }
}

impl Scaler {
    /// Runs until the task is dropped (on losing leadership or shutdown).
    pub(crate) async fn run(self, mut pokes: mpsc::Receiver<RevisionKey>) {
        let origin = Instant::now();
        let mut tracked: HashMap<RevisionKey, Tracked> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick(origin, &mut tracked).await,
                Some(key) = pokes.recv() => self.poke(origin, &mut tracked, key).await,
            }
        }
    }

    async fn tick(&self, origin: Instant, tracked: &mut HashMap<RevisionKey, Tracked>) {
        let now = Instant::now();
        let ((totals, complete), floors) = {
            let board = self.board.lock().expect("board lock");
            (board.totals(now), board.floors(now))
        };
        let revisions = self.revisions.state();
        let present: HashSet<RevisionKey> = revisions.iter().map(|r| RevisionKey::of(r)).collect();
        let pods = self.pods.state();
        let mut pods_by_revision: HashMap<RevisionKey, Vec<&Pod>> = HashMap::new();
        for pod in &pods {
            if let Some(key) = revision_of(pod) {
                pods_by_revision.entry(key).or_default().push(pod);
            }
        }
        let wall_clock = Timestamp::now();
        tracked.retain(|key, entry| {
            let keep = present.contains(key);
            if !keep {
                self.metrics.forget_revision(&entry.labels);
            }
            keep
        });
        for revision in revisions {
            let Some(target) = self.target(revision) else {
                continue;
            };
            let key = target.key();
            let entry = tracked
                .entry(key.clone())
                .or_insert_with(|| Tracked::new(now - origin, target.labels()));
            let load = totals.get(&key).copied().unwrap_or_default();
            let policy = target.policy(&self.defaults);
            let own_pods = pods_by_revision.get(&key).map(Vec::as_slice).unwrap_or_default();
            let diagnosis = failure::diagnose(own_pods.iter().copied(), wall_clock, policy.progress_deadline);
            let observation = observe(
                now - origin,
                load,
                std::mem::take(&mut entry.poked),
                complete,
                &target,
                &diagnosis,
                floors.get(&key).copied().unwrap_or(0),
            );
            let decision = decide(&policy, &mut entry.history, observation);
            self.export(&entry.labels, &policy, &observation, &decision);
            if entry.should_write(decision.desired, observation.current_scale, now)
                && self.write(&target, &policy, &decision, observation.current_scale).await
            {
                entry.last_write = Some((decision.desired, now));
            }
        }
        self.metrics.tick_duration.observe(now.elapsed().as_secs_f64());
    }

    /// A request waits at zero: start the activation pods now instead of at the next tick.
    async fn poke(&self, origin: Instant, tracked: &mut HashMap<RevisionKey, Tracked>, key: RevisionKey) {
        let Some(revision) = self.revisions.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            return;
        };
        let Some(target) = self.target(revision) else {
            return;
        };
        let now = Instant::now();
        let entry = tracked
            .entry(key)
            .or_insert_with(|| Tracked::new(now - origin, target.labels()));
        entry.poked = true;
        let current = current_scale(&target.deployment);
        if current == 0 {
            let policy = target.policy(&self.defaults);
            let decision = Decision {
                desired: policy.clamp(policy.activation_scale),
                stable_average: 0.0,
                panic_average: 0.0,
                panicking: false,
                reason: Reason::Activation,
            };
            if entry.should_write(decision.desired, current, now)
                && self.write(&target, &policy, &decision, current).await
            {
                entry.last_write = Some((decision.desired, now));
            }
        }
    }

    /// The revision's Service and Deployment, when both exist.
    fn target(&self, revision: Arc<Revision>) -> Option<Target> {
        let namespace = revision.namespace()?;
        let service = self
            .services
            .get(&ObjectRef::new(&service_name(&revision)?).within(&namespace))?;
        let deployment = self
            .deployments
            .get(&ObjectRef::new(&names::deployment_name(&revision.name_any())).within(&namespace))?;
        Some(Target {
            revision,
            service,
            deployment,
        })
    }

    fn export(&self, labels: &RevisionLabels, policy: &Policy, observation: &Observation, decision: &Decision) {
        self.metrics
            .set_averages(labels, policy.metric, decision.stable_average, decision.panic_average);
        self.metrics
            .desired_pods
            .get_or_create(labels)
            .set(i64::from(decision.desired));
        self.metrics
            .ready_pods
            .get_or_create(labels)
            .set(i64::from(observation.ready_pods));
        self.metrics
            .panic_mode
            .get_or_create(labels)
            .set(i64::from(decision.panicking));
    }

    /// Writes the scale of the revision's Deployment and announces it on the Service; false when the write failed.
    async fn write(&self, target: &Target, policy: &Policy, decision: &Decision, current: i32) -> bool {
        let Some(namespace) = target.revision.namespace() else {
            return false;
        };
        let revision = target.revision.name_any();
        let span = spans::scale(&namespace, &revision, current, decision.desired);
        let written = async {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
            let result = apply_scale(&api, &names::deployment_name(&revision), decision.desired).await;
            let label = if result.is_ok() { "success" } else { "error" };
            self.metrics
                .scale_writes
                .get_or_create(&ResultLabels { result: label })
                .inc();
            if let Err(e) = &result {
                warn!(%namespace, %revision, %e, "writing scale");
                return result;
            }
            let (reason, note) = event_for(&revision, policy, decision, current);
            info!(%namespace, %revision, from = current, to = decision.desired, %note, "{reason}");
            let happening = Happening {
                type_: EventType::Normal,
                action: "Scale",
                reason,
                note,
                related: Some(target.revision.object_ref(&())),
            };
            events::publish(&self.recorder, &target.service, happening).await;
            result
        };
        spans::traced(span, written).await.is_ok()
    }
}

/// The name of the Service a revision belongs to: its service label, else its controller owner.
fn service_name(revision: &Revision) -> Option<String> {
    if let Some(name) = revision.labels().get(names::SERVICE_LABEL) {
        return Some(name.clone());
    }
    let api_version = Service::api_version(&());
    revision
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Service" && o.api_version == api_version)
        .map(|o| o.name.clone())
}

/// The revision a pod belongs to (its namespace and the value of the revision label).
fn revision_of(pod: &Pod) -> Option<RevisionKey> {
    Some(RevisionKey::new(
        pod.namespace()?,
        pod.labels().get(names::REVISION_LABEL)?.clone(),
    ))
}

/// Whether the revision's status reports its pods failing: Ready False with a failure reason, whatever the replicas.
fn is_failing(revision: &Revision) -> bool {
    revision
        .status
        .as_ref()
        .and_then(|s| conditions::failure_condition(&s.conditions, conditions::READY))
        .is_some()
}

fn current_scale(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn observe(
    now: Duration,
    load: Totals,
    poked: bool,
    complete: bool,
    target: &Target,
    pods: &Diagnosis,
    floor: i32,
) -> Observation {
    let deployment = &target.deployment;
    Observation {
        now,
        concurrency: load.concurrency,
        rps: load.rps,
        held: load.held,
        poked,
        reports_complete: complete,
        ready_pods: deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        current_scale: current_scale(deployment),
        unready_for: pods.unready_for,
        failing: is_failing(&target.revision),
        floor,
        unusable_pods: i32::try_from(load.unusable_pods).unwrap_or(i32::MAX),
    }
}

/// The event reason and its message: the revision, then the numbers behind the decision.
pub(crate) fn event_for(revision: &str, policy: &Policy, decision: &Decision, current: i32) -> (&'static str, String) {
    let pods = |n: i32| {
        if n == 1 {
            "1 pod".to_owned()
        } else {
            format!("{n} pods")
        }
    };
    let reason = match (current, decision.desired) {
        (0, _) => "ScaledFromZero",
        (_, 0) => "ScaledToZero",
        (from, to) if to > from => "ScaledUp",
        _ => "ScaledDown",
    };
    let metric = match policy.metric {
        runway_api::ScalingMetric::Concurrency => "concurrency",
        runway_api::ScalingMetric::Rps => "rps",
    };
    let why = match decision.reason {
        Reason::Activation => format!("request waiting at zero: {}", pods(decision.desired)),
        Reason::Idle => format!(
            "no traffic for the stable window plus {} s grace: 0 pods",
            policy.scale_to_zero_grace.as_secs()
        ),
        Reason::Holding => format!("holding {}", pods(decision.desired)),
        Reason::Rollout => format!("{} for a larger share of the traffic (rollout)", pods(decision.desired)),
        Reason::Failing => format!(
            "no pod became ready within progressDeadlineSeconds ({} s): {}{}",
            policy.progress_deadline.as_secs(),
            pods(decision.desired),
            if decision.desired == 0 {
                "; the next request tries again"
            } else {
                " (minScale)"
            }
        ),
        Reason::Load => {
            let (window, average) = if decision.panicking {
                ("panic", decision.panic_average)
            } else {
                ("stable", decision.stable_average)
            };
            format!(
                "{metric} {average:.1} ({window} window) over per-pod target {:.1}: {}",
                policy.target_per_pod,
                pods(decision.desired)
            )
        }
    };
    (reason, format!("{revision}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
    use runway_api::{RevisionSpec, RevisionStatus, Scaling, ServiceTemplate};

    fn spec() -> RevisionSpec {
        RevisionSpec {
            template: ServiceTemplate::default(),
            container_concurrency: 10,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            freeze: None,
        }
    }

    fn policy() -> Policy {
        Policy::new(&Scaling::default(), &spec(), true, &Defaults::default())
    }

    fn decision(desired: i32, reason: Reason, panicking: bool) -> Decision {
        Decision {
            desired,
            stable_average: 34.2,
            panic_average: 50.0,
            panicking,
            reason,
        }
    }

    #[test]
    fn events_name_the_revision_the_direction_and_the_numbers() {
        let p = policy();
        let event = |desired, reason, panicking, current| {
            event_for("web-00002", &p, &decision(desired, reason, panicking), current)
        };
        assert_eq!(
            event(5, Reason::Load, false, 2),
            (
                "ScaledUp",
                "web-00002: concurrency 34.2 (stable window) over per-pod target 7.0: 5 pods".to_owned()
            )
        );
        assert_eq!(
            event(8, Reason::Load, true, 2).1,
            "web-00002: concurrency 50.0 (panic window) over per-pod target 7.0: 8 pods"
        );
        assert_eq!(
            event(1, Reason::Activation, false, 0),
            ("ScaledFromZero", "web-00002: request waiting at zero: 1 pod".to_owned())
        );
        assert_eq!(event(0, Reason::Idle, false, 1).0, "ScaledToZero");
        assert_eq!(event(3, Reason::Load, false, 5).0, "ScaledDown");
        assert_eq!(
            event(3, Reason::Rollout, false, 1),
            (
                "ScaledUp",
                "web-00002: 3 pods for a larger share of the traffic (rollout)".to_owned()
            )
        );
        assert_eq!(
            event(0, Reason::Failing, false, 1),
            (
                "ScaledToZero",
                "web-00002: no pod became ready within progressDeadlineSeconds (120 s): 0 pods; the next request tries again"
                    .to_owned()
            )
        );
    }

    fn revision(labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> Revision {
        let mut revision = Revision::new("web-00002", spec());
        revision.metadata.namespace = Some("ns".into());
        revision.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
        revision.metadata.owner_references = owner.map(|(api_version, kind)| {
            vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "web".into(),
                uid: "u".into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        });
        revision
    }

    #[test]
    fn a_revision_belongs_to_its_labelled_service_else_its_controller() {
        assert_eq!(
            service_name(&revision(&[(names::SERVICE_LABEL, "web")], None)).as_deref(),
            Some("web")
        );
        assert_eq!(
            service_name(&revision(&[], Some(("serving.runway.dev/v1alpha1", "Service")))).as_deref(),
            Some("web")
        );
        assert_eq!(
            service_name(&revision(&[], Some(("v1", "Service")))),
            None,
            "a core Service"
        );
        assert_eq!(service_name(&revision(&[], None)), None);
    }

    #[test]
    fn pods_belong_to_the_revision_they_are_labelled_with() {
        let pod = |labels: &[(&str, &str)]| {
            let mut pod = Pod::default();
            pod.metadata.namespace = Some("ns".into());
            pod.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
            pod
        };
        assert_eq!(
            revision_of(&pod(&[
                (names::SERVICE_LABEL, "web"),
                (names::REVISION_LABEL, "web-00002")
            ])),
            Some(RevisionKey::new("ns", "web-00002"))
        );
        assert_eq!(
            revision_of(&pod(&[(names::SERVICE_LABEL, "web")])),
            None,
            "a pod of the previous release"
        );
    }

    #[test]
    fn a_revision_fails_when_its_ready_condition_says_so() {
        let with_ready = |status: &str, reason: &str| {
            let mut r = revision(&[], None);
            r.status = Some(RevisionStatus {
                conditions: vec![Condition {
                    type_: conditions::READY.into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: "container exits with code 1".into(),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                    observed_generation: None,
                }],
                ..RevisionStatus::default()
            });
            r
        };
        assert!(is_failing(&with_ready("False", conditions::CONTAINER_EXITS)));
        assert!(!is_failing(&with_ready("Unknown", "Deploying")));
        assert!(!is_failing(&with_ready("True", "Ready")));
        assert!(!is_failing(&revision(&[], None)), "no status yet");
    }
}
