//! A pod's cgroup: which hierarchy the node has (v1 with its freezer controller, or v2), where the pod-level
//! directory of a pod is under either kubelet cgroup driver, and the freezer's file protocol. Freezing the pod-level
//! cgroup freezes every container of the pod: both versions freeze all descendants.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// How deep below the hierarchy's root a pod's directory may be: `kubelet.slice/kubelet-kubepods.slice/
/// kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod<uid>.slice` (kind) is 4.
const MAX_DEPTH: usize = 5;

/// The cgroup hierarchy of the node, found under the agent's `--cgroup-root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: the freezer controller's own hierarchy, `<root>/freezer`.
    V1 { freezer: PathBuf },
    /// cgroup v2: one unified hierarchy at the root.
    V2 { root: PathBuf },
}

/// The state the kernel reports for a cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// v1 only: asked to freeze, some task not frozen yet.
    Freezing,
    Frozen,
}

/// What the agent asks of a cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Frozen,
    Thawed,
}

impl Target {
    /// The state that means the kernel did it.
    pub fn reached(self, state: FreezerState) -> bool {
        matches!(
            (self, state),
            (Target::Frozen, FreezerState::Frozen) | (Target::Thawed, FreezerState::Thawed)
        )
    }
}

impl Layout {
    /// The hierarchy under `root`: v1 when it has a freezer controller, v2 when it is a unified hierarchy. A hybrid
    /// v1 host (systemd's `unified` beside the v1 controllers) has both; the freezer is v1's there.
    pub fn detect(root: &Path) -> io::Result<Layout> {
        let freezer = root.join("freezer");
        if freezer.is_dir() {
            Ok(Layout::V1 { freezer })
        } else if root.join("cgroup.controllers").is_file() {
            Ok(Layout::V2 { root: root.to_owned() })
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} has neither a v1 freezer hierarchy (freezer/) nor a v2 one (cgroup.controllers): is the host's \
                     /sys/fs/cgroup mounted there?",
                    root.display()
                ),
            ))
        }
    }

    /// Where pods' directories are searched from: the freezer's hierarchy.
    pub fn search_root(&self) -> &Path {
        match self {
            Layout::V1 { freezer } => freezer,
            Layout::V2 { root } => root,
        }
    }

    /// Finds the pod-level cgroup of the pod `uid` with a bounded walk: only directories of the kubelet's
    /// (`is_kubelets`) are entered, at most `MAX_DEPTH` deep. `None` when the pod has none on this node.
    pub fn locate(&self, uid: &PodUid) -> io::Result<Option<PathBuf>> {
        let mut level = vec![self.search_root().to_owned()];
        for _ in 0..MAX_DEPTH {
            let mut next = vec![];
            for dir in level {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    // Removed while walking (a pod of another uid went away): nothing under it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    if !entry.file_type()?.is_dir() {
                        continue;
                    }
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if uid.names_dir(name) {
                        return Ok(Some(entry.path()));
                    }
                    if is_kubelets(name) {
                        next.push(entry.path());
                    }
                }
            }
            level = next;
        }
        Ok(None)
    }

    /// Asks the kernel to freeze or thaw the cgroup `dir`; [`Layout::state`] says when it is done.
    pub fn request(&self, dir: &Path, target: Target) -> io::Result<()> {
        let (file, value) = match (self, target) {
            (Layout::V1 { .. }, Target::Frozen) => ("freezer.state", "FROZEN"),
            (Layout::V1 { .. }, Target::Thawed) => ("freezer.state", "THAWED"),
            (Layout::V2 { .. }, Target::Frozen) => ("cgroup.freeze", "1"),
            (Layout::V2 { .. }, Target::Thawed) => ("cgroup.freeze", "0"),
        };
        // Never create the file: a missing one means the cgroup is gone (ENOENT, the caller locates it again).
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(dir.join(file))?
            .write_all(value.as_bytes())
    }

    /// What the kernel reports of the cgroup `dir` now.
    pub fn state(&self, dir: &Path) -> io::Result<FreezerState> {
        match self {
            Layout::V1 { .. } => parse_v1_state(&std::fs::read_to_string(dir.join("freezer.state"))?),
            Layout::V2 { .. } => parse_v2_events(&std::fs::read_to_string(dir.join("cgroup.events"))?),
        }
    }
}

/// Whether the walk enters a directory: the kubelet's own (`kubepods…`, `…kubelet…`) and, under the cgroupfs
/// driver, its QoS classes' (`kubepods/burstable`, `kubepods/besteffort`).
fn is_kubelets(name: &str) -> bool {
    name.contains("kubepods") || name.contains("kubelet") || name == "burstable" || name == "besteffort"
}

/// Why a cgroup did not reach its target.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the kernel still reports {state:?} after {waited:?}")]
    Timeout { state: FreezerState, waited: Duration },
}

impl ApplyError {
    /// The cgroup is gone (its pod was removed, or it moved): locate it again.
    pub fn is_gone(&self) -> bool {
        matches!(self, ApplyError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// Asks for `target` and waits until the kernel reports it, at most `bound`. The first read comes right after the
/// write (a thaw is usually done by then), then reads back off from 100 µs to 10 ms: a request is waiting on it.
pub async fn apply(layout: &Layout, dir: &Path, target: Target, bound: Duration) -> Result<(), ApplyError> {
    let start = Instant::now();
    layout.request(dir, target)?;
    let mut pause = Duration::from_micros(100);
    loop {
        let state = layout.state(dir)?;
        if target.reached(state) {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= bound {
            return Err(ApplyError::Timeout { state, waited });
        }
        tokio::time::sleep(pause.min(bound - waited)).await;
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// A pod's uid as the API server gives it, checked before it becomes part of a directory name: lower-case hex and
/// dashes only, so that no `/` or `..` reaches the walk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodUid(String);

impl PodUid {
    pub fn parse(text: &str) -> Result<PodUid, String> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
        if valid {
            Ok(PodUid(text.to_owned()))
        } else {
            Err(format!("{text:?} is not a pod uid (lower-case hex digits and dashes)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is this pod's pod-level directory: `pod<uid>` (cgroupfs driver) or `…-pod<uid with _ for
    /// ->.slice` (systemd driver, whatever the slices before it).
    pub fn names_dir(&self, name: &str) -> bool {
        if name.strip_prefix("pod") == Some(self.0.as_str()) {
            return true;
        }
        let systemd = format!("-pod{}.slice", self.0.replace('-', "_"));
        name.ends_with(&systemd)
    }
}

impl std::fmt::Display for PodUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// v1 `freezer.state`: THAWED, FREEZING or FROZEN.
fn parse_v1_state(text: &str) -> io::Result<FreezerState> {
    match text.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        other => Err(unexpected(format!("freezer.state reads {other:?}"))),
    }
}

/// v2 `cgroup.events`: `key value` lines, `frozen 1` once every task is frozen.
fn parse_v2_events(text: &str) -> io::Result<FreezerState> {
    let frozen = text.lines().find_map(|line| line.strip_prefix("frozen "));
    match frozen.map(str::trim) {
        Some("1") => Ok(FreezerState::Frozen),
        Some("0") => Ok(FreezerState::Thawed),
        _ => Err(unexpected(format!("cgroup.events has no frozen 0|1 line: {text:?}"))),
    }
}

fn unexpected(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0c3a5b9e-7d1f-4f2a-9b8c-1d2e3f4a5b6c";

    /// A temporary directory, removed when dropped.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("runway-node-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempTree(dir)
        }

        fn dir(&self, path: &str) -> PathBuf {
            let dir = self.0.join(path);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        fn file(&self, path: &str, text: &str) {
            std::fs::write(self.0.join(path), text).unwrap();
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn uid() -> PodUid {
        PodUid::parse(UID).unwrap()
    }

    fn v1(tree: &TempTree) -> Layout {
        tree.dir("freezer");
        tree.dir("memory/kubepods");
        Layout::detect(&tree.0).unwrap()
    }

    fn v2(tree: &TempTree) -> Layout {
        tree.file("cgroup.controllers", "cpu memory pids\n");
        Layout::detect(&tree.0).unwrap()
    }

    #[test]
    fn a_freezer_hierarchy_is_v1_and_a_unified_one_v2() {
        let tree = TempTree::new("detect-v1");
        assert_eq!(
            v1(&tree),
            Layout::V1 {
                freezer: tree.0.join("freezer")
            }
        );
        let tree = TempTree::new("detect-v2");
        assert_eq!(v2(&tree), Layout::V2 { root: tree.0.clone() });
        let tree = TempTree::new("detect-none");
        let error = Layout::detect(&tree.0).unwrap_err();
        assert!(error.to_string().contains("neither"), "{error}");
    }

    #[test]
    fn v1_cgroupfs_pods_are_found_in_each_qos_class() {
        for qos in ["", "burstable/", "besteffort/"] {
            let tree = TempTree::new(&format!("v1-cgroupfs-{}", qos.trim_end_matches('/')));
            let layout = v1(&tree);
            tree.dir("freezer/kubepods/burstable/pod11111111-2222-3333-4444-555555555555/abc");
            let pod = tree.dir(&format!("freezer/kubepods/{qos}pod{UID}"));
            tree.dir(&format!("freezer/kubepods/{qos}pod{UID}/0123456789abcdef"));
            assert_eq!(layout.locate(&uid()).unwrap(), Some(pod), "{qos}");
        }
    }

    #[test]
    fn v1_systemd_pods_are_found_by_their_slice() {
        let tree = TempTree::new("v1-systemd");
        let layout = v1(&tree);
        let slice = format!(
            "freezer/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
            UID.replace('-', "_")
        );
        let pod = tree.dir(&slice);
        tree.dir(&format!("{slice}/cri-containerd-0123.scope"));
        assert_eq!(layout.locate(&uid()).unwrap(), Some(pod));
    }

    #[test]
    fn v2_systemd_pods_are_found_by_their_slice() {
        let tree = TempTree::new("v2-systemd");
        let layout = v2(&tree);
        tree.dir("system.slice/containerd.service");
        let pod = tree.dir(&format!("kubepods.slice/kubepods-pod{}.slice", UID.replace('-', "_")));
        assert_eq!(layout.locate(&uid()).unwrap(), Some(pod));
    }

    #[test]
    fn kinds_prefixed_cgroup_root_is_walked_under_both_drivers() {
        let tree = TempTree::new("kind-systemd");
        let layout = v2(&tree);
        let pod = tree.dir(&format!(
            "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/\
             kubelet-kubepods-burstable-pod{}.slice",
            UID.replace('-', "_")
        ));
        assert_eq!(layout.locate(&uid()).unwrap(), Some(pod));
        let tree = TempTree::new("kind-cgroupfs");
        let layout = v1(&tree);
        let pod = tree.dir(&format!("freezer/kubelet/kubepods/burstable/pod{UID}"));
        assert_eq!(layout.locate(&uid()).unwrap(), Some(pod));
    }

    #[test]
    fn a_pod_without_a_cgroup_or_outside_the_kubelets_directories_is_not_found() {
        let tree = TempTree::new("absent");
        let layout = v1(&tree);
        tree.dir("freezer/kubepods/burstable");
        assert_eq!(layout.locate(&uid()).unwrap(), None);
        // Not below a kubelet directory: some other tool's cgroup, never the pod's.
        tree.dir(&format!("freezer/system.slice/pod{UID}"));
        assert_eq!(layout.locate(&uid()).unwrap(), None);
        // Deeper than the bound.
        tree.dir(&format!(
            "freezer/kubepods/a-kubelet/b-kubelet/c-kubelet/d-kubelet/pod{UID}"
        ));
        assert_eq!(layout.locate(&uid()).unwrap(), None);
    }

    #[test]
    fn only_hex_and_dashes_make_a_uid() {
        assert!(PodUid::parse(UID).is_ok());
        for bad in ["", "../etc", "ABC", "a/b", "pod-x", &"a".repeat(65)] {
            let error = PodUid::parse(bad).unwrap_err();
            assert!(error.contains("not a pod uid"), "{error}");
        }
    }

    #[test]
    fn v1_requests_write_freezer_state_and_read_it_back() {
        let tree = TempTree::new("v1-protocol");
        let layout = v1(&tree);
        let pod = tree.dir(&format!("freezer/kubepods/pod{UID}"));
        tree.file(&format!("freezer/kubepods/pod{UID}/freezer.state"), "THAWED\n");
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Thawed);
        layout.request(&pod, Target::Frozen).unwrap();
        assert_eq!(std::fs::read_to_string(pod.join("freezer.state")).unwrap(), "FROZEN");
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Frozen);
        // The kernel's answer while a task resists.
        std::fs::write(pod.join("freezer.state"), "FREEZING\n").unwrap();
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Freezing);
        layout.request(&pod, Target::Thawed).unwrap();
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Thawed);
    }

    #[test]
    fn v2_requests_write_cgroup_freeze_and_read_cgroup_events() {
        let tree = TempTree::new("v2-protocol");
        let layout = v2(&tree);
        let pod = tree.dir(&format!("kubepods.slice/kubepods-pod{}.slice", UID.replace('-', "_")));
        std::fs::write(pod.join("cgroup.freeze"), "0\n").unwrap();
        std::fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Thawed);
        layout.request(&pod, Target::Frozen).unwrap();
        assert_eq!(std::fs::read_to_string(pod.join("cgroup.freeze")).unwrap(), "1");
        // The kernel flips cgroup.events once every task is frozen; here the test does.
        std::fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert_eq!(layout.state(&pod).unwrap(), FreezerState::Frozen);
        layout.request(&pod, Target::Thawed).unwrap();
        assert_eq!(std::fs::read_to_string(pod.join("cgroup.freeze")).unwrap(), "0");
    }

    #[test]
    fn a_removed_cgroup_is_an_enoent_and_odd_contents_an_error() {
        let tree = TempTree::new("gone");
        let layout = v1(&tree);
        let gone = tree.0.join("freezer/kubepods/podgone");
        let error = layout.request(&gone, Target::Frozen).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            parse_v1_state("PARTIAL").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(parse_v2_events("populated 1\n").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn apply_waits_for_the_kernel_and_gives_up_at_its_bound() {
        // v2 keeps the request (cgroup.freeze) and the answer (cgroup.events) apart, so a fake kernel can lag.
        let tree = TempTree::new("apply");
        let layout = v2(&tree);
        let pod = tree.dir(&format!("kubepods.slice/kubepods-pod{}.slice", UID.replace('-', "_")));
        std::fs::write(pod.join("cgroup.freeze"), "0\n").unwrap();
        let events = pod.join("cgroup.events");
        std::fs::write(&events, "populated 1\nfrozen 0\n").unwrap();
        let kernel = tokio::spawn({
            let events = events.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::fs::write(&events, "populated 1\nfrozen 1\n").unwrap();
            }
        });
        let start = Instant::now();
        apply(&layout, &pod, Target::Frozen, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "returned before the kernel said frozen"
        );
        kernel.await.unwrap();
        // A kernel that never gets there.
        let error = apply(&layout, &pod, Target::Thawed, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ApplyError::Timeout { state: FreezerState::Frozen, waited } if waited >= Duration::from_secs(2)),
            "{error}"
        );
        let gone = tree.0.join("kubepods.slice/gone.slice");
        let error = apply(&layout, &gone, Target::Thawed, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(error.is_gone(), "{error}");
    }

    #[test]
    fn a_target_is_reached_only_by_its_own_state() {
        assert!(Target::Frozen.reached(FreezerState::Frozen));
        assert!(!Target::Frozen.reached(FreezerState::Freezing));
        assert!(!Target::Frozen.reached(FreezerState::Thawed));
        assert!(Target::Thawed.reached(FreezerState::Thawed));
        assert!(!Target::Thawed.reached(FreezerState::Freezing));
    }
}
