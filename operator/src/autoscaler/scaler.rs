//! The autoscaler loop: every second, and at once on a poke, decide each Service's pod count and write it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use runway_api::{Service, ServiceKey, conditions, names};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::board::{Board, Totals};
use super::decision::{Decision, History, Observation, Reason, decide};
use super::policy::{Defaults, Policy};
use crate::children::apply_scale;
use crate::events::{self, Happening};
use crate::failure::{self, Diagnosis};
use crate::metrics::{Metrics, ResultLabels, ServiceLabels};

pub const TICK: Duration = Duration::from_secs(1);

/// Everything the loop reads and writes.
pub struct Scaler {
    pub client: Client,
    pub recorder: Recorder,
    pub services: Store<Service>,
    pub deployments: Store<Deployment>,
    /// Every Runway pod: whether a Service's pods fail to become ready.
    pub pods: Store<Pod>,
    pub board: Arc<Mutex<Board>>,
    pub metrics: Arc<Metrics>,
    pub defaults: Defaults,
}

/// A write the Deployment may not show yet: the reflector lags behind the API server.
const WRITE_SETTLE: Duration = Duration::from_secs(5);

/// Per-Service memory of the loop.
struct Tracked {
    history: History,
    poked: bool,
    last_write: Option<(i32, Instant)>,
}

impl Tracked {
    fn new(now: Duration) -> Tracked {
        Tracked {
            history: History::new(now),
            poked: false,
            last_write: None,
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

impl Scaler {
    /// Runs until the task is dropped (on losing leadership or shutdown).
    pub async fn run(self, mut pokes: mpsc::Receiver<ServiceKey>) {
        let origin = Instant::now();
        let mut tracked: HashMap<ServiceKey, Tracked> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick(origin, &mut tracked).await,
                Some(key) = pokes.recv() => self.poke(origin, &mut tracked, key).await,
            }
        }
    }

    async fn tick(&self, origin: Instant, tracked: &mut HashMap<ServiceKey, Tracked>) {
        let now = Instant::now();
        let (totals, complete) = self.board.lock().expect("board lock").totals(now);
        let services = self.services.state();
        let present: HashSet<ServiceKey> = services.iter().map(|s| ServiceKey::of(s)).collect();
        let pods = self.pods.state();
        let mut pods_by_service: HashMap<ServiceKey, Vec<&Pod>> = HashMap::new();
        for pod in &pods {
            if let Some(key) = failure::service_of(pod) {
                pods_by_service.entry(key).or_default().push(pod);
            }
        }
        let wall_clock = Timestamp::now();
        tracked.retain(|key, _| {
            let keep = present.contains(key);
            if !keep {
                self.metrics.forget_service(&labels(key));
            }
            keep
        });
        for service in services {
            let key = ServiceKey::of(&service);
            let Some(deployment) = self.deployment_of(&service) else {
                continue;
            };
            let entry = tracked.entry(key.clone()).or_insert_with(|| Tracked::new(now - origin));
            let load = totals.get(&key).copied().unwrap_or_default();
            let policy = Policy::from_spec(&service.spec, &self.defaults);
            let own_pods = pods_by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            let diagnosis = failure::diagnose(own_pods.iter().copied(), wall_clock, policy.progress_deadline);
            let observation = observe(
                now - origin,
                load,
                std::mem::take(&mut entry.poked),
                complete,
                &deployment,
                &diagnosis,
                service
                    .status
                    .as_ref()
                    .and_then(conditions::configuration_failure)
                    .is_some(),
            );
            let decision = decide(&policy, &mut entry.history, observation);
            self.export(&key, &decision);
            if entry.should_write(decision.desired, observation.current_scale, now)
                && self
                    .write(&service, &policy, &decision, observation.current_scale)
                    .await
            {
                entry.last_write = Some((decision.desired, now));
            }
        }
    }

    /// A request waits at zero: start the activation pods now instead of at the next tick.
    async fn poke(&self, origin: Instant, tracked: &mut HashMap<ServiceKey, Tracked>, key: ServiceKey) {
        let Some(service) = self.services.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            return;
        };
        let Some(deployment) = self.deployment_of(&service) else {
            return;
        };
        let now = Instant::now();
        let entry = tracked.entry(key).or_insert_with(|| Tracked::new(now - origin));
        entry.poked = true;
        let current = current_scale(&deployment);
        if current == 0 {
            let policy = Policy::from_spec(&service.spec, &self.defaults);
            let decision = Decision {
                desired: policy.clamp(policy.activation_scale),
                stable_average: 0.0,
                panic_average: 0.0,
                panicking: false,
                reason: Reason::Activation,
            };
            if entry.should_write(decision.desired, current, now)
                && self.write(&service, &policy, &decision, current).await
            {
                entry.last_write = Some((decision.desired, now));
            }
        }
    }

    fn deployment_of(&self, service: &Service) -> Option<Arc<Deployment>> {
        let name = names::deployment_name(&service.name_any());
        self.deployments
            .get(&ObjectRef::new(&name).within(&service.namespace()?))
    }

    fn export(&self, key: &ServiceKey, decision: &Decision) {
        let labels = labels(key);
        self.metrics
            .stable_average
            .get_or_create(&labels)
            .set(decision.stable_average);
        self.metrics
            .panic_average
            .get_or_create(&labels)
            .set(decision.panic_average);
        self.metrics
            .desired_pods
            .get_or_create(&labels)
            .set(i64::from(decision.desired));
        self.metrics
            .panic_mode
            .get_or_create(&labels)
            .set(i64::from(decision.panicking));
    }

    /// Writes the scale and announces it; false when the write failed.
    async fn write(&self, service: &Service, policy: &Policy, decision: &Decision, current: i32) -> bool {
        let Some(namespace) = service.namespace() else {
            return false;
        };
        let name = names::deployment_name(&service.name_any());
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let result = apply_scale(&api, &name, decision.desired).await;
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .scale_writes
            .get_or_create(&ResultLabels { result: label })
            .inc();
        if let Err(e) = result {
            warn!(%namespace, service = %service.name_any(), %e, "writing scale");
            return false;
        }
        let (reason, note) = event_for(policy, decision, current);
        info!(%namespace, service = %service.name_any(), from = current, to = decision.desired, %note, "{reason}");
        let happening = Happening {
            type_: EventType::Normal,
            action: "Scale",
            reason,
            note,
            related: None,
        };
        events::publish(&self.recorder, service, happening).await;
        true
    }
}

fn labels(key: &ServiceKey) -> ServiceLabels {
    ServiceLabels {
        namespace: key.namespace.clone(),
        service: key.name.clone(),
    }
}

fn current_scale(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn observe(
    now: Duration,
    load: Totals,
    poked: bool,
    complete: bool,
    deployment: &Deployment,
    pods: &Diagnosis,
    reported_failing: bool,
) -> Observation {
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
        failing: reported_failing,
    }
}

/// The event reason and its message with the numbers behind the decision.
pub fn event_for(policy: &Policy, decision: &Decision, current: i32) -> (&'static str, String) {
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
    let note = match decision.reason {
        Reason::Activation => format!("request waiting at zero: {}", pods(decision.desired)),
        Reason::Idle => format!(
            "no traffic for the stable window plus {} s grace: 0 pods",
            policy.scale_to_zero_grace.as_secs()
        ),
        Reason::Holding => format!("holding {}", pods(decision.desired)),
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
    (reason, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::{Scaling, ServiceSpec, ServiceTemplate};

    fn policy() -> Policy {
        let spec = ServiceSpec {
            visibility: Default::default(),
            template: ServiceTemplate::default(),
            container_concurrency: 10,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            scaling: Scaling::default(),
        };
        Policy::from_spec(&spec, &Defaults::default())
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
    fn events_name_the_direction_and_the_numbers() {
        let p = policy();
        assert_eq!(
            event_for(&p, &decision(5, Reason::Load, false), 2),
            (
                "ScaledUp",
                "concurrency 34.2 (stable window) over per-pod target 7.0: 5 pods".to_owned()
            )
        );
        assert_eq!(
            event_for(&p, &decision(8, Reason::Load, true), 2).1,
            "concurrency 50.0 (panic window) over per-pod target 7.0: 8 pods"
        );
        assert_eq!(
            event_for(&p, &decision(1, Reason::Activation, false), 0),
            ("ScaledFromZero", "request waiting at zero: 1 pod".to_owned())
        );
        assert_eq!(event_for(&p, &decision(0, Reason::Idle, false), 1).0, "ScaledToZero");
        assert_eq!(event_for(&p, &decision(3, Reason::Load, false), 5).0, "ScaledDown");
        assert_eq!(
            event_for(&p, &decision(0, Reason::Failing, false), 1),
            (
                "ScaledToZero",
                "no pod became ready within progressDeadlineSeconds (120 s): 0 pods; the next request tries again"
                    .to_owned()
            )
        );
    }
}
