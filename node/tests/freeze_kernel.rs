//! The freezer against the real kernel (cgroup v1): a busy child process in a pod-like cgroup stops using CPU while
//! the library says it is frozen, and runs again once thawed. It needs root and a v1 freezer hierarchy at
//! /sys/fs/cgroup/freezer; elsewhere (a CI runner without them, a v2-only host) it says why and passes without
//! checking anything, as the rest of the agent is covered by the unit tests against fake cgroup trees.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use runway_node::cgroup::{self, FreezerState, Layout, PodUid, Target};

const ROOT: &str = "/sys/fs/cgroup";

/// The test's cgroups and child, removed and killed even when an assertion fails.
struct Sandbox {
    parent: PathBuf,
    pod: PathBuf,
    child: Child,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A frozen task cannot die: thaw first.
        let _ = std::fs::write(self.pod.join("freezer.state"), "THAWED");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.pod);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15, after the command in parentheses).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_command = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // Field 3 (state) is the first after the command, so utime (14) and stime (15) are the 12th and 13th.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// CPU ticks the process uses over `span`.
fn ticks_over(pid: u32, span: Duration) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(span);
    cpu_ticks(pid) - before
}

fn skip_reason() -> Option<String> {
    let root_user = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .map(|uids| uids.split_whitespace().next() == Some("0"));
    if root_user != Some(true) {
        return Some("not running as root".into());
    }
    if !Path::new(ROOT).join("freezer").is_dir() {
        return Some(format!("no cgroup v1 freezer hierarchy at {ROOT}/freezer"));
    }
    None
}

#[tokio::test]
async fn a_frozen_pod_cgroup_uses_no_cpu_until_thawed() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let layout = Layout::detect(Path::new(ROOT)).unwrap();
    assert!(matches!(layout, Layout::V1 { .. }), "{layout:?}");
    let uid = PodUid::parse(&format!("{:08x}-0000-4000-8000-000000000001", std::process::id())).unwrap();
    let parent = Path::new(ROOT).join(format!("freezer/runway-node-test-{}", std::process::id()));
    let pod = parent.join(format!("pod{uid}"));
    std::fs::create_dir_all(&pod).unwrap();
    let child = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let pid = child.id();
    let sandbox = Sandbox { parent, pod, child };
    std::fs::write(sandbox.pod.join("cgroup.procs"), pid.to_string()).unwrap();

    let span = Duration::from_millis(300);
    assert!(ticks_over(pid, span) > 0, "the child runs before the freeze");

    cgroup::apply(&layout, &sandbox.pod, Target::Frozen, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(layout.state(&sandbox.pod).unwrap(), FreezerState::Frozen);
    assert_eq!(
        std::fs::read_to_string(sandbox.pod.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    assert_eq!(ticks_over(pid, span), 0, "a frozen child used CPU");

    cgroup::apply(&layout, &sandbox.pod, Target::Thawed, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(layout.state(&sandbox.pod).unwrap(), FreezerState::Thawed);
    assert!(ticks_over(pid, span) > 0, "the child runs again after the thaw");
}
