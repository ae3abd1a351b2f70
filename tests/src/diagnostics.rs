//! What to print when a cluster test fails: the namespace's objects, events, pod descriptions and container
//! logs, the node, and the end of each cluster component's log. Collecting never fails: an error is reported
//! in place of the section it concerns.

use std::fmt::Write as _;
use std::path::Path;

use crate::cluster::{Cluster, state_dir};

/// How many lines of each component log and each container log to include.
pub const TAIL_LINES: usize = 40;

/// The full report for a failure in namespace `ns`.
pub async fn report(cluster: &Cluster, ns: &str) -> String {
    let mut out = namespace_report(cluster, ns).await;
    out.push_str(&cluster_report(cluster).await);
    out
}

/// Objects, events (oldest first), pod descriptions and container logs (current and previous) of `ns`.
pub async fn namespace_report(cluster: &Cluster, ns: &str) -> String {
    let kubectl = cluster.kubectl();
    let tail = format!("--tail={TAIL_LINES}");
    let mut out = String::new();
    section(
        &mut out,
        &format!("objects in {ns}"),
        kubectl.run(&["-n", ns, "get", "all", "-o", "wide"]).await,
    );
    let events = kubectl
        .run(&["-n", ns, "get", "events", "--sort-by=.lastTimestamp"])
        .await;
    section(&mut out, &format!("events in {ns}"), events);
    section(
        &mut out,
        &format!("pods in {ns}"),
        kubectl.run(&["-n", ns, "describe", "pods"]).await,
    );
    let names = kubectl
        .run(&["-n", ns, "get", "pods", "-o", "name"])
        .await
        .unwrap_or_default();
    for pod in names.lines() {
        let logs = kubectl
            .run(&["-n", ns, "logs", pod, "--all-containers", "--prefix", &tail])
            .await;
        section(&mut out, &format!("logs of {pod}"), logs);
        if let Ok(previous) = kubectl
            .run(&[
                "-n",
                ns,
                "logs",
                pod,
                "--all-containers",
                "--prefix",
                "--previous",
                &tail,
            ])
            .await
        {
            section(&mut out, &format!("logs of {pod}, previous run"), Ok(previous));
        }
    }
    out
}

/// Nodes, all pods, kube-system events and the end of each component log of the local cluster.
pub async fn cluster_report(cluster: &Cluster) -> String {
    let kubectl = cluster.kubectl();
    let mut out = String::new();
    section(&mut out, "nodes", kubectl.run(&["describe", "nodes"]).await);
    section(
        &mut out,
        "all pods",
        kubectl.run(&["get", "pods", "-A", "-o", "wide"]).await,
    );
    let events = kubectl
        .run(&["-n", "kube-system", "get", "events", "--sort-by=.lastTimestamp"])
        .await;
    section(&mut out, "events in kube-system", events);
    out.push_str(&component_logs(&state_dir().join("logs")));
    out
}

/// The last [`TAIL_LINES`] lines of every `*.log` in `dir` (the local cluster's component logs).
pub fn component_logs(dir: &Path) -> String {
    let mut out = String::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            let _ = writeln!(out, "=== component logs: cannot read {}: {err}", dir.display());
            return out;
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).map(|t| last_lines(&t, TAIL_LINES));
        section(
            &mut out,
            &format!("{} (last {TAIL_LINES} lines)", file.display()),
            text.map_err(Into::into),
        );
    }
    out
}

/// The last `n` lines of `text`, each ending in a newline.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect()
}

fn section(out: &mut String, title: &str, body: anyhow::Result<String>) {
    let _ = writeln!(out, "=== {title}");
    match body {
        Ok(text) => out.push_str(&text),
        Err(err) => {
            let _ = writeln!(out, "(could not collect: {err:#})");
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb", 5), "a\nb\n");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn component_logs_reads_each_log_file() {
        let dir = std::env::temp_dir().join(format!("runway-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("etcd.log"), "one\ntwo\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let report = component_logs(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(report.contains("etcd.log (last"), "{report}");
        assert!(report.contains("one\ntwo\n"), "{report}");
        assert!(!report.contains("ignored"), "{report}");
        assert!(component_logs(Path::new("/nonexistent/runway")).contains("cannot read"));
    }
}
