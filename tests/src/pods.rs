//! Pod state: readiness checks and one-line summaries for failure messages.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::wait::{Timeout, wait_until};

/// True when the pod is Running and its Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `name phase ready=… containers: c1 waiting (ImagePullBackOff: …)`: what a timeout message should show.
pub fn summary(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(status) = &pod.status else {
        return format!("{name}: no status yet");
    };
    let containers: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| {
            let state = c.state.as_ref();
            let detail = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                format!(
                    "waiting ({}: {})",
                    w.reason.as_deref().unwrap_or("?"),
                    w.message.as_deref().unwrap_or("")
                )
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                format!(
                    "terminated (exit {}, {})",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("?")
                )
            } else {
                "running".to_owned()
            };
            format!("{} {} ready={} restarts={}", c.name, detail, c.ready, c.restart_count)
        })
        .collect();
    format!(
        "{name} phase={} ip={} ready={} [{}]",
        status.phase.as_deref().unwrap_or("?"),
        status.pod_ip.as_deref().unwrap_or("-"),
        is_ready(pod),
        containers.join("; ")
    )
}

/// Waits until exactly `count` pods match `selector` and all are Running and Ready; returns them.
pub async fn wait_ready(api: &Api<Pod>, selector: &str, count: usize, timeout: Duration) -> Result<Vec<Pod>, Timeout> {
    wait_until(format!("{count} ready pod(s) with {selector}"), timeout, || async {
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| format!("listing pods: {e}"))?;
        let live: Vec<Pod> = pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if live.len() == count && live.iter().all(is_ready) {
            Ok(live)
        } else {
            let seen: Vec<String> = live.iter().map(summary).collect();
            Err(format!("{} pod(s): {}", live.len(), seen.join(" | ")))
        }
    })
    .await
}

/// Waits until no pod matches `selector` (deleted, not merely terminating).
pub async fn wait_gone(api: &Api<Pod>, selector: &str, timeout: Duration) -> Result<(), Timeout> {
    wait_until(format!("no pods with {selector}"), timeout, || async {
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| format!("listing pods: {e}"))?;
        if pods.items.is_empty() {
            Ok(())
        } else {
            let seen: Vec<String> = pods.items.iter().map(summary).collect();
            Err(seen.join(" | "))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ready_needs_running_and_the_ready_condition() {
        let ready = pod(json!({
            "metadata": {"name": "a"},
            "status": {"phase": "Running", "podIP": "10.88.0.5",
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert!(is_ready(&ready));
        let pending = pod(json!({
            "metadata": {"name": "b"},
            "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                           "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "no"}}}]}
        }));
        assert!(!is_ready(&pending));
        assert_eq!(
            summary(&pending),
            "b phase=Pending ip=- ready=false [app waiting (ErrImagePull: no) ready=false restarts=0]"
        );
        assert!(!is_ready(&pod(json!({"metadata": {"name": "c"}}))));
    }
}
