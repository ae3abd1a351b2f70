//! The disruptions of a soak, one after another on a fixed cycle while the load runs: scaling out and in through
//! minScale/maxScale, scale to zero and back, rollouts of the activator and of the operator, scaling the activators
//! in and out (one joining while app pods start), deleting an app pod.

use std::fmt;
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use runway_api::Service;
use runway_tests::cluster::Cluster;
use runway_tests::pods::is_ready;
use runway_tests::runway::{self, NAMESPACE};
use runway_tests::wait::wait_until;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::services::{CC0, CC1, CC10, H2C, WS};
use crate::stop::Stop;

/// Bound on each wait of a step (pods ready, a rollout, scale to zero).
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug)]
enum Step {
    ScaleOut,
    DeletePod(&'static str),
    RestartActivator,
    ScaleIn,
    ToZeroAndBack,
    RestartOperator,
    ScaleBack,
    /// The activator Deployment scaled in to one replica.
    ActivatorsIn,
    /// The activator Deployment scaled back to two while app pods start (minScale raised at the same moment).
    ActivatorJoinsAsPodsStart,
}

/// The order of the disruptions; a long run goes round it again. Scaling in right after an activator rollout and
/// before a scale to zero keeps the activators' views changing while queues are long.
const CYCLE: [Step; 11] = [
    Step::ScaleOut,
    Step::DeletePod(CC1.name),
    Step::RestartActivator,
    Step::ScaleIn,
    Step::ActivatorsIn,
    Step::ToZeroAndBack,
    Step::DeletePod(H2C.name),
    Step::ActivatorJoinsAsPodsStart,
    Step::RestartOperator,
    Step::ScaleBack,
    Step::DeletePod(WS.name),
];

/// Activator replicas the chart runs, which the soak scales in from and back to.
const ACTIVATORS: u32 = 2;

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ScaleOut => write!(f, "scale out {} (minScale 3, maxScale 5)", CC10.name),
            Step::DeletePod(service) => write!(f, "delete a pod of {service}"),
            Step::RestartActivator => write!(f, "kubectl rollout restart deployment/runway-activator"),
            Step::ScaleIn => write!(f, "scale in {} (minScale 1, maxScale 1)", CC10.name),
            Step::ToZeroAndBack => write!(f, "scale {} to zero (its clients pause) and back", CC0.name),
            Step::RestartOperator => write!(f, "kubectl rollout restart deployment/runway-operator"),
            Step::ScaleBack => write!(f, "scale {} back (minScale 1, maxScale 4)", CC10.name),
            Step::ActivatorsIn => write!(f, "kubectl scale deployment/runway-activator --replicas=1"),
            Step::ActivatorJoinsAsPodsStart => write!(
                f,
                "kubectl scale deployment/runway-activator --replicas={ACTIVATORS} while {} starts 2 pods (minScale 3)",
                CC10.name
            ),
        }
    }
}

/// One disruption as it happened.
#[derive(Clone, Debug)]
pub struct Event {
    /// Since the load started.
    pub at: Duration,
    pub what: String,
    pub took: Duration,
    /// What was seen, or why the step did not complete (which fails the run).
    pub result: Result<String, String>,
}

pub struct Chaos {
    pub cluster: Cluster,
    pub ns: String,
    pub interval: Duration,
    /// Pauses the clients of [`CC0`] while it scales to zero.
    pub pause_cc0: watch::Sender<bool>,
    pub stop: Stop,
    pub origin: Instant,
}

impl Chaos {
    /// Runs steps until the deadline. A step starts only when a whole interval of load remains after it, so every
    /// disruption has traffic running through it and after it.
    pub async fn run(self) -> Vec<Event> {
        let mut events = vec![];
        for step in CYCLE.iter().cycle() {
            if !self.stop.sleep(self.interval).await || self.stop.remaining() < self.interval {
                break;
            }
            let at = self.origin.elapsed();
            eprintln!("+{:6.1}s {step}", at.as_secs_f64());
            let started = Instant::now();
            let result = self.step(*step).await.map_err(|e| format!("{e:#}"));
            let event = Event {
                at,
                what: step.to_string(),
                took: started.elapsed(),
                result,
            };
            eprintln!("         {}", describe(&event));
            events.push(event);
        }
        events
    }

    async fn step(&self, step: Step) -> anyhow::Result<String> {
        match step {
            Step::ScaleOut => {
                self.scaling(CC10.name, json!({"minScale": 3, "maxScale": 5})).await?;
                let ready = self.wait_ready_pods(CC10.name, 3).await?;
                Ok(format!("{ready} pods ready"))
            }
            Step::ScaleIn => {
                self.scaling(CC10.name, json!({"minScale": 1, "maxScale": 1})).await?;
                runway::wait_scale(&self.cluster, &self.ns, CC10.name, 1, STEP_TIMEOUT).await?;
                Ok("the Deployment asks for 1 pod".to_owned())
            }
            Step::ScaleBack => {
                self.scaling(CC10.name, json!({"minScale": 1, "maxScale": 4})).await?;
                Ok("patched".to_owned())
            }
            Step::ToZeroAndBack => {
                self.pause_cc0.send_replace(true);
                let zero = runway::wait_zero(&self.cluster, &self.ns, CC0.name, STEP_TIMEOUT).await;
                // Resumed in every case: the clients' next requests are the cold start.
                self.pause_cc0.send_replace(false);
                zero?;
                Ok("no pod left; clients resumed".to_owned())
            }
            Step::DeletePod(service) => self.delete_pod(service).await,
            Step::RestartActivator => self.restart("runway-activator").await,
            Step::ActivatorsIn => self.scale_activators(1).await,
            Step::ActivatorJoinsAsPodsStart => {
                let (joined, scaled) = tokio::join!(
                    self.scale_activators(ACTIVATORS),
                    self.scaling(CC10.name, json!({"minScale": 3, "maxScale": 5}))
                );
                scaled?;
                let ready = self.wait_ready_pods(CC10.name, 3).await?;
                Ok(format!("{}; {ready} pods ready", joined?))
            }
            Step::RestartOperator => self.restart("runway-operator").await,
        }
    }

    async fn scaling(&self, service: &str, scaling: Value) -> anyhow::Result<()> {
        let api: Api<Service> = Api::namespaced(self.cluster.client.clone(), &self.ns);
        let patch = json!({"spec": {"scaling": scaling}});
        api.patch(service, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn wait_ready_pods(&self, service: &str, want: usize) -> anyhow::Result<usize> {
        let (cluster, ns) = (&self.cluster, &self.ns);
        let ready = wait_until(format!("{want} ready pods of {service}"), STEP_TIMEOUT, || async move {
            let pods = runway::pods(cluster, ns, service).await.map_err(|e| format!("{e:#}"))?;
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            if ready >= want {
                Ok(ready)
            } else {
                Err(format!("{ready} ready"))
            }
        })
        .await?;
        Ok(ready)
    }

    async fn delete_pod(&self, service: &str) -> anyhow::Result<String> {
        let pods = runway::pods(&self.cluster, &self.ns, service).await?;
        let victim = pods
            .iter()
            .find(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .and_then(|p| p.metadata.name.clone())
            .ok_or_else(|| anyhow::anyhow!("{service} has no ready pod to delete"))?;
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.cluster.client.clone(), &self.ns);
        api.delete(&victim, &DeleteParams::default()).await?;
        Ok(format!("deleted {victim}"))
    }

    async fn scale_activators(&self, replicas: u32) -> anyhow::Result<String> {
        let kubectl = self.cluster.kubectl();
        let target = "deployment/runway-activator";
        let count = format!("--replicas={replicas}");
        kubectl.run(&["-n", NAMESPACE, "scale", target, &count]).await?;
        self.rolled_out(target).await?;
        Ok(format!("{replicas} activator(s)"))
    }

    async fn rolled_out(&self, target: &str) -> anyhow::Result<()> {
        let timeout = format!("--timeout={}s", STEP_TIMEOUT.as_secs());
        self.cluster
            .kubectl()
            .run_with_timeout(
                &["-n", NAMESPACE, "rollout", "status", target, &timeout],
                STEP_TIMEOUT + Duration::from_secs(10),
            )
            .await?;
        Ok(())
    }

    async fn restart(&self, deployment: &str) -> anyhow::Result<String> {
        let kubectl = self.cluster.kubectl();
        let target = format!("deployment/{deployment}");
        kubectl.run(&["-n", NAMESPACE, "rollout", "restart", &target]).await?;
        self.rolled_out(&target).await?;
        Ok("rolled out".to_owned())
    }
}

/// `ok after 12.3 s: 3 pods ready` or `FAILED after …: why`.
pub fn describe(event: &Event) -> String {
    match &event.result {
        Ok(seen) => format!("ok after {:.1} s: {seen}", event.took.as_secs_f64()),
        Err(why) => format!("FAILED after {:.1} s: {why}", event.took.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_has_every_kind_of_disruption() {
        let names: Vec<String> = CYCLE.iter().map(Step::to_string).collect();
        for wanted in [
            "scale out",
            "scale in",
            "to zero",
            "runway-activator",
            "runway-operator",
            "delete a pod",
            "--replicas=1",
            "--replicas=2 while",
        ] {
            assert!(
                names.iter().any(|n| n.contains(wanted)),
                "{wanted} missing from {names:?}"
            );
        }
    }
}
