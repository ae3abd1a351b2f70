//! Memory of processes on this host, from /proc. The local cluster runs containers as plain host processes, so the
//! activators of the cluster are readable here like the standalone one.

use std::fs;

/// What /proc/PID/status says of a process's memory, KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the highest resident size the process ever had.
    pub hwm_kib: u64,
}

/// None when the process is gone, or a zombie (which has no memory lines left).
pub fn memory(pid: u32) -> Option<Memory> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// The soft limit on open files of this process (and of the children it starts), from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    parse_open_files(&fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A container process of the local cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProcess {
    pub pid: u32,
    pub pod_uid: String,
}

/// Processes running `binary` (the file name of argv\[0\]) inside a Kubernetes pod, found by their cgroup.
pub fn pod_processes(binary: &str) -> Vec<PodProcess> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv0 = cmdline.split(|b| *b == 0).next()?;
            let name = argv0.rsplit(|b| *b == b'/').next()?;
            if name != binary.as_bytes() {
                return None;
            }
            let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            Some(PodProcess {
                pid,
                pod_uid: pod_uid(&cgroup)?,
            })
        })
        .collect()
}

/// The pod UID in a cgroup path such as `/kubepods/burstable/pod0d46…-…/f8c1…` (cgroupfs driver) or
/// `…/kubepods-burstable-pod0d46…_…slice/…` (systemd driver, underscores for dashes).
fn pod_uid(cgroup: &str) -> Option<String> {
    let path = cgroup.lines().find(|line| line.contains("kubepods"))?;
    path.split('/')
        .filter_map(|part| {
            part.rsplit_once("-pod")
                .map(|(_, uid)| uid)
                .or_else(|| part.strip_prefix("pod"))
        })
        .map(|uid| uid.trim_end_matches(".slice").replace('_', "-"))
        .find(|uid| uid.len() == 36)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_rss_and_high_water_mark() {
        let text = "Name:\trunway-activato\nVmPeak:\t  100 kB\nVmHWM:\t   24420 kB\nVmRSS:\t   23548 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 23548,
                hwm_kib: 24420
            })
        );
        assert_eq!(parse_status("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn open_files_limit_is_the_soft_one() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                1048576              files\n";
        assert_eq!(parse_open_files(limits), Some(20000));
        assert!(open_files_limit().is_some());
    }

    #[test]
    fn pod_uid_from_either_cgroup_driver() {
        let cgroupfs = "12:pids:/kubepods/burstable/podb0b47b52-32e7-4a78-bffc-9239abf0fa10/47ad8c\n\
                        4:memory:/kubepods/burstable/podb0b47b52-32e7-4a78-bffc-9239abf0fa10/47ad8c\n";
        assert_eq!(
            pod_uid(cgroupfs).as_deref(),
            Some("b0b47b52-32e7-4a78-bffc-9239abf0fa10")
        );
        let systemd = "0::/kubepods.slice/kubepods-burstable.slice/\
                       kubepods-burstable-podb0b47b52_32e7_4a78_bffc_9239abf0fa10.slice/cri-containerd-47ad8c.scope\n";
        assert_eq!(
            pod_uid(systemd).as_deref(),
            Some("b0b47b52-32e7-4a78-bffc-9239abf0fa10")
        );
        assert_eq!(pod_uid("4:memory:/process_api/a2af85c6\n"), None);
    }

    #[test]
    fn this_process_is_readable_and_in_no_pod() {
        let me = memory(std::process::id()).unwrap();
        assert!(me.hwm_kib >= me.rss_kib && me.rss_kib > 0);
        assert!(pod_processes("no-such-binary-anywhere").is_empty());
    }
}
