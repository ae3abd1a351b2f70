//! A pod's cgroup on this machine, where the cluster's kubelets run (the local cluster's, or kind's node
//! containers): its CPU time and whether the kernel has it frozen (warm zero, docs/warm-zero.md). Directories are
//! named and freezer states read by the node agent's own rules (`runway_node::cgroup`); only the walk differs: it
//! searches the whole host, where kind's nodes nest their kubelets' cgroups under their containers'.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use runway_node::cgroup::{FreezerState, Layout, PodUid};

/// The host's cgroup hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pod's cgroup directory under `hierarchy` (e.g. /sys/fs/cgroup/cpuacct) at any depth the local cluster or a
/// kind node container gives it.
fn pod_cgroup(hierarchy: &Path, uid: &PodUid) -> Option<PathBuf> {
    let mut level = vec![hierarchy.to_path_buf()];
    for _ in 0..9 {
        let mut next = Vec::new();
        for dir in level {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if uid.names_dir(&entry.file_name().to_string_lossy()) {
                    return Some(entry.path());
                }
                next.push(entry.path());
            }
        }
        level = next;
    }
    None
}

fn uid_of(pod: &Pod) -> anyhow::Result<PodUid> {
    let uid = pod.metadata.uid.as_deref().context("a pod has a uid")?;
    PodUid::parse(uid).map_err(|e| anyhow!(e))
}

/// The pod's CPU time in nanoseconds, from the host's cgroup accounting (v1 cpuacct, else v2 cpu.stat).
pub fn pod_cpu_nanos(pod: &Pod) -> anyhow::Result<u64> {
    let uid = uid_of(pod)?;
    if let Some(dir) = pod_cgroup(&Path::new(CGROUP_ROOT).join("cpuacct"), &uid) {
        let text = std::fs::read_to_string(dir.join("cpuacct.usage"))?;
        return Ok(text.trim().parse()?);
    }
    if let Some(dir) = pod_cgroup(Path::new(CGROUP_ROOT), &uid) {
        let text = std::fs::read_to_string(dir.join("cpu.stat"))?;
        let usec: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))
            .context("cpu.stat has usage_usec")?
            .trim()
            .parse()?;
        return Ok(usec * 1000);
    }
    bail!("no cgroup of pod {uid} under {CGROUP_ROOT} on this machine: the cluster's kubelet must run here")
}

/// Whether the kernel has the pod's cgroup frozen, or freezing.
pub fn kernel_frozen(pod: &Pod) -> anyhow::Result<bool> {
    let uid = uid_of(pod)?;
    let layout = Layout::detect(Path::new(CGROUP_ROOT))?;
    let dir = pod_cgroup(layout.search_root(), &uid)
        .with_context(|| format!("no freezer cgroup of pod {uid} on this machine"))?;
    Ok(layout.state(&dir)? != FreezerState::Thawed)
}
