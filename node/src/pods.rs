//! Runway's pods on this node: the watch that fills the agent's cache (only pods in it may be frozen), lookups by
//! uid, and the writes of the frozen mark, the only change the agent ever makes to a pod.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use runway_api::names::{FROZEN_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL};
use serde_json::json;

use crate::cgroup::PodUid;
use crate::mark::Mark;

/// The watch of Runway's pods scheduled to `node`.
pub fn watch_config(node: &str) -> watcher::Config {
    watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
}

/// Starts the watch: the cache, and the stream of pods as they change, which must be polled to keep the cache
/// filled.
pub fn watch(client: Client, node: &str) -> (Store<Pod>, impl Stream<Item = Pod> + Send + 'static) {
    let (store, writer) = reflector::store();
    let changes = watcher(Api::<Pod>::all(client), watch_config(node))
        .default_backoff()
        .modify(runway_api::slim::strip)
        .reflect(writer)
        .touched_objects()
        .filter_map(|pod| async move { pod.ok() });
    (store, changes)
}

/// The cached pod with this uid.
pub fn find(store: &Store<Pod>, uid: &PodUid) -> Option<Arc<Pod>> {
    store.find(|pod| pod.uid().as_deref() == Some(uid.as_str()))
}

/// Where a pod is in its life, as far as freezing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Running,
    /// It has a deletionTimestamp: it must not stay frozen, or (cgroup v1) its processes could never be killed.
    Deleting,
}

pub fn lifecycle(pod: &Pod) -> Lifecycle {
    match pod.metadata.deletion_timestamp {
        Some(_) => Lifecycle::Deleting,
        None => Lifecycle::Running,
    }
}

/// What a conditional removal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The pod is gone, or carries another mark (or none) now: nothing to remove.
    Changed,
}

/// Sets the mark (a merge patch of the one annotation).
pub async fn set_mark(client: &Client, namespace: &str, name: &str, mark: Mark) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {FROZEN_ANNOTATION: mark.to_string()}}});
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// Removes the mark if it still reads `value`: a JSON Patch whose first operation tests it, so that a removal that
/// comes late never takes away a newer freeze's mark.
pub async fn remove_mark(client: &Client, namespace: &str, name: &str, value: &str) -> Result<Removal, kube::Error> {
    let patch = serde_json::from_value(removal(value)).expect("a valid JSON Patch");
    let result = Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await;
    match result {
        Ok(_) => Ok(Removal::Removed),
        // 404: the pod is gone; 422: the test failed (another value, or no annotation).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 422 => Ok(Removal::Changed),
        Err(e) => Err(e),
    }
}

/// The JSON Patch that removes the annotation only while it reads `value`.
fn removal(value: &str) -> serde_json::Value {
    // RFC 6901: `/` in a key is written `~1`.
    let path = format!(
        "/metadata/annotations/{}",
        FROZEN_ANNOTATION.replace('~', "~0").replace('/', "~1")
    );
    json!([
        {"op": "test", "path": path, "value": value},
        {"op": "remove", "path": path},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_selects_runway_pods_of_this_node() {
        let config = watch_config("node-1");
        assert_eq!(config.field_selector.as_deref(), Some("spec.nodeName=node-1"));
        assert_eq!(
            config.label_selector.as_deref(),
            Some("app.kubernetes.io/managed-by=runway")
        );
    }

    #[test]
    fn a_removal_tests_the_value_before_it_removes() {
        assert_eq!(
            removal("00000000000000ab/3"),
            json!([
                {"op": "test", "path": "/metadata/annotations/serving.runway.dev~1frozen", "value": "00000000000000ab/3"},
                {"op": "remove", "path": "/metadata/annotations/serving.runway.dev~1frozen"},
            ])
        );
    }

    #[test]
    fn a_pod_with_a_deletion_timestamp_is_deleting() {
        let mut pod = Pod::default();
        assert_eq!(lifecycle(&pod), Lifecycle::Running);
        pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(lifecycle(&pod), Lifecycle::Deleting);
    }
}
