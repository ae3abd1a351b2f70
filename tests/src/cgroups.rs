//! A pod's cgroup on this machine, where the cluster's kubelets run (the local cluster's, or kind's node
//! containers): its CPU time and whether the kernel has it frozen (warm zero, docs/warm-zero.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;

/// The pod's cgroup directory under `hierarchy` (e.g. /sys/fs/cgroup/cpuacct), found by its UID in the cgroupfs or
/// systemd layout at any depth the local cluster or a kind node container gives it.
fn pod_cgroup(hierarchy: &Path, uid: &str) -> Option<PathBuf> {
    let systemd = uid.replace('-', "_");
    let mut level = vec![hierarchy.to_path_buf()];
    for _ in 0..9 {
        let mut next = Vec::new();
        for dir in level {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if name == format!("pod{uid}") || name.ends_with(&format!("-pod{systemd}.slice")) {
                    return Some(path);
                }
                next.push(path);
            }
        }
        level = next;
    }
    None
}

/// The pod's CPU time in nanoseconds, from the host's cgroup accounting (v1 cpuacct, else v2 cpu.stat).
pub fn pod_cpu_nanos(pod: &Pod) -> anyhow::Result<u64> {
    let uid = pod.metadata.uid.as_deref().context("a pod has a uid")?;
    if let Some(dir) = pod_cgroup(Path::new("/sys/fs/cgroup/cpuacct"), uid) {
        let text = std::fs::read_to_string(dir.join("cpuacct.usage"))?;
        return Ok(text.trim().parse()?);
    }
    if let Some(dir) = pod_cgroup(Path::new("/sys/fs/cgroup"), uid) {
        let text = std::fs::read_to_string(dir.join("cpu.stat"))?;
        let usec: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))
            .context("cpu.stat has usage_usec")?
            .trim()
            .parse()?;
        return Ok(usec * 1000);
    }
    bail!("no cgroup of pod {uid} under /sys/fs/cgroup on this machine: the cluster's kubelet must run here")
}

/// Whether the kernel has the pod's cgroup frozen (v1 freezer.state, else v2 cgroup.events).
pub fn kernel_frozen(pod: &Pod) -> anyhow::Result<bool> {
    let uid = pod.metadata.uid.as_deref().context("a pod has a uid")?;
    if let Some(dir) = pod_cgroup(Path::new("/sys/fs/cgroup/freezer"), uid) {
        return Ok(std::fs::read_to_string(dir.join("freezer.state"))?.trim() != "THAWED");
    }
    if let Some(dir) = pod_cgroup(Path::new("/sys/fs/cgroup"), uid) {
        return Ok(std::fs::read_to_string(dir.join("cgroup.events"))?.contains("frozen 1"));
    }
    bail!("no freezer cgroup of pod {uid} on this machine")
}
