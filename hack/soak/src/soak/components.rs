//! Watches Runway's own pods during a soak: container restarts, pods that failed or whose container ended with an
//! error (a rollout's pods end with exit 0), and the activators' memory (read from /proc every second, since
//! rollouts replace the processes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use runway_tests::cluster::Cluster;
use runway_tests::runway::NAMESPACE;

use crate::procfs;
use crate::stop::Stop;

const COMPONENTS: [&str; 2] = ["runway-activator", "runway-operator"];
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Memory of one activator pod's process over the run, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peak {
    pub pid: u32,
    pub hwm_kib: u64,
    pub last_rss_kib: u64,
}

#[derive(Debug, Default)]
pub struct Findings {
    /// `pod: 1 container restart (last: OOMKilled)`, per component.
    pub restarts: BTreeMap<&'static str, Vec<String>>,
    /// `pod: container terminated (OOMKilled, exit 137)` or `pod: phase Failed (Evicted)`, per component.
    pub failed: BTreeMap<&'static str, Vec<String>>,
    /// Activator pod name -> memory.
    pub activator_memory: BTreeMap<String, Peak>,
    /// Activator pods and ReplicaSets (one per rollout) seen over the run.
    pub activator_pods: usize,
    pub activator_replica_sets: usize,
}

impl Findings {
    pub fn unexpected(&self, component: &str) -> usize {
        let count = |m: &BTreeMap<&str, Vec<String>>| m.get(component).map_or(0, Vec::len);
        count(&self.restarts) + count(&self.failed)
    }
}

/// One pod's identity for the bookkeeping.
struct Seen {
    component: &'static str,
    template_hash: String,
    restarts: i32,
    last_reason: String,
    /// Why the pod or a container of it ended badly, if it did.
    failure: Option<String>,
}

pub async fn watch(cluster: Cluster, stop: Stop) -> Findings {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/name in ({})", COMPONENTS.join(",")));
    // Restarts and failures of each pod at the first look: what came before the soak is not the soak's doing.
    let mut baseline: Option<HashMap<String, (i32, bool)>> = None;
    let mut latest_restarts: HashMap<String, Seen> = HashMap::new();
    let mut by_hash: BTreeMap<(&'static str, String), BTreeSet<String>> = BTreeMap::new();
    let mut failed: BTreeMap<String, (&'static str, String)> = BTreeMap::new();
    let mut pod_names: HashMap<String, String> = HashMap::new();
    let mut findings = Findings::default();
    loop {
        if let Ok(list) = pods.list(&selector).await {
            for pod in &list.items {
                let (Some(name), Some(seen)) = (pod.metadata.name.clone(), seen(pod)) else {
                    continue;
                };
                if let Some(failure) = &seen.failure {
                    failed.entry(name.clone()).or_insert((seen.component, failure.clone()));
                }
                if let Some(uid) = &pod.metadata.uid {
                    pod_names.insert(uid.clone(), name.clone());
                }
                by_hash
                    .entry((seen.component, seen.template_hash.clone()))
                    .or_default()
                    .insert(name.clone());
                latest_restarts.insert(name, seen);
            }
            baseline.get_or_insert_with(|| {
                let before = |(name, seen): (&String, &Seen)| (name.clone(), (seen.restarts, seen.failure.is_some()));
                latest_restarts.iter().map(before).collect()
            });
        }
        sample_memory(&pod_names, &mut findings.activator_memory);
        if !stop.sleep(SAMPLE_EVERY).await {
            break;
        }
    }
    let baseline = baseline.unwrap_or_default();
    for (name, seen) in &latest_restarts {
        let new = seen.restarts - baseline.get(name).map_or(0, |(restarts, _)| *restarts);
        if new > 0 {
            findings.restarts.entry(seen.component).or_default().push(format!(
                "{name}: {new} container restart(s) (last: {})",
                seen.last_reason
            ));
        }
    }
    for (name, (component, failure)) in failed {
        if baseline.get(&name).is_some_and(|(_, failed_before)| *failed_before) {
            continue;
        }
        findings
            .failed
            .entry(component)
            .or_default()
            .push(format!("{name}: {failure}"));
    }
    findings.activator_pods = by_hash
        .iter()
        .filter(|((component, _), _)| *component == COMPONENTS[0])
        .map(|(_, names)| names.len())
        .sum();
    findings.activator_replica_sets = by_hash
        .keys()
        .filter(|(component, _)| *component == COMPONENTS[0])
        .count();
    findings
}

fn seen(pod: &Pod) -> Option<Seen> {
    let labels = pod.metadata.labels.as_ref()?;
    let name_label = labels.get("app.kubernetes.io/name")?;
    let component = COMPONENTS.into_iter().find(|c| c == name_label)?;
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let last_reason = statuses
        .iter()
        .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref())
        .map(|t| format!("{} exit {}", t.reason.as_deref().unwrap_or("?"), t.exit_code))
        .next_back()
        .unwrap_or_else(|| "-".to_owned());
    let status = pod.status.as_ref();
    let failure = if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
        let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("?");
        Some(format!("phase Failed ({reason})"))
    } else {
        statuses
            .iter()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
            .find(|t| t.exit_code != 0)
            .map(|t| {
                format!(
                    "container terminated ({}, exit {})",
                    t.reason.as_deref().unwrap_or("?"),
                    t.exit_code
                )
            })
    };
    Some(Seen {
        component,
        template_hash: labels.get("pod-template-hash").cloned().unwrap_or_default(),
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        last_reason,
        failure,
    })
}

/// Reads every activator process of the cluster once and keeps each pod's highest VmHWM.
fn sample_memory(pod_names: &HashMap<String, String>, peaks: &mut BTreeMap<String, Peak>) {
    for process in procfs::pod_processes(COMPONENTS[0]) {
        let Some(memory) = procfs::memory(process.pid) else {
            continue;
        };
        let pod = pod_names
            .get(&process.pod_uid)
            .cloned()
            .unwrap_or_else(|| format!("pod uid {}", process.pod_uid));
        let peak = peaks.entry(pod).or_default();
        peak.pid = process.pid;
        peak.hwm_kib = peak.hwm_kib.max(memory.hwm_kib);
        peak.last_rss_kib = memory.rss_kib;
    }
}
