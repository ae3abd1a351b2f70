//! What a pod's status says of it: whether it has stopped for good and whether the kubelet calls it ready. The
//! operator diagnoses a revision's pods by these rules and the activator routes to a pod its status shows before an
//! EndpointSlice lists it, so they are written once, here.

use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// The pod's condition of type `type_`, if its status has one.
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the kubelet reports the pod ready (its Ready condition is True).
pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// Whether the pod has finished (phase Succeeded or Failed): its containers will not run again, and a ReplicaSet
/// replaces it (an evicted pod, for one).
/// The node agent's mark on a pod it froze (`names::FROZEN_ANNOTATION`); the operator counts frozen pods by it and
/// the activator tells an agent's restart by it.
pub fn frozen_mark(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(crate::names::FROZEN_ANNOTATION)
        .map(String::as_str)
}

pub fn has_stopped(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}, "status": status})).unwrap()
    }

    #[test]
    fn a_pod_is_ready_when_its_ready_condition_is_true() {
        let ready = |status| {
            is_ready(&pod(
                serde_json::json!({"conditions": [{"type": "Ready", "status": status}]}),
            ))
        };
        assert!(ready("True"));
        assert!(!ready("False"));
        assert!(!is_ready(&pod(serde_json::json!({"phase": "Running"}))));
    }

    #[test]
    fn a_pod_has_stopped_once_it_succeeded_or_failed() {
        for (phase, stopped) in [
            ("Pending", false),
            ("Running", false),
            ("Succeeded", true),
            ("Failed", true),
        ] {
            assert_eq!(
                has_stopped(&pod(serde_json::json!({"phase": phase}))),
                stopped,
                "{phase}"
            );
        }
        assert!(!has_stopped(&pod(serde_json::json!({}))));
    }
}
