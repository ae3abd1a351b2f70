//! Upgrade from the release before revisions: a Service it reconciled has a Deployment `{service}` and a headless
//! Service `{service}-pods`, both controlled by the Service itself, and pods labelled with the Service only. The
//! reconciler makes the Service's first revision with as many pods as that Deployment runs (so capacity is kept) and
//! labels the old pods with that revision: the new activators route to them at once (they also appear in the
//! revision's pods' Service), while the previous activators keep routing through `{service}-pods`, which selects the
//! revision's pods too (they carry the Service's label). Once the revision is Ready, both old objects are deleted,
//! and the old pods with them. The old pods are not taken over by the revision's Deployment (the ReplicaSet selects
//! its own template's hash): they restart as the revision's pods, without a request failing.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use runway_api::{Service, names};

use crate::children::{self, ChildError};

/// The previous release's Deployment of the Service, from the watch's cache, while it exists.
pub fn deployment(deployments: &Store<Deployment>, service: &Service, uid: &str) -> Option<Arc<Deployment>> {
    let name = service.name_any();
    deployments
        .get(&ObjectRef::new(&name).within(&service.namespace()?))
        .filter(|d| children::is_controlled_by(d.as_ref(), uid))
}

/// Its replicas: the first revision starts with as many.
pub fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The previous release's pods of Service `service` not yet labelled with a revision.
pub fn unlabelled_pods(pods: &[Arc<Pod>], namespace: &str, service: &str) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|pod| {
            let labels = pod.labels();
            pod.namespace().as_deref() == Some(namespace)
                && labels.get(names::SERVICE_LABEL).map(String::as_str) == Some(service)
                && !labels.contains_key(names::REVISION_LABEL)
        })
        .cloned()
        .collect()
}

/// Labels pod `name` with `revision` (a label change restarts nothing).
pub async fn adopt(api: &Api<Pod>, name: &str, revision: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"labels": {names::REVISION_LABEL: revision}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Deletes the previous release's pods' Service, then its Deployment `legacy`: each only while it is still the
/// object the Service controls. True when this call deleted the Deployment.
pub async fn remove(
    deployments: &Api<Deployment>,
    kube_services: &Api<KubeService>,
    legacy: &Deployment,
    uid: &str,
) -> Result<bool, ChildError> {
    let pods = names::pods_service_name(&legacy.name_any());
    let live = kube_services.get_opt(&pods).await.map_err(|source| ChildError::Api {
        kind: "Service".to_owned(),
        name: pods.clone(),
        source,
    })?;
    if let Some(live) = live.filter(|live| children::is_controlled_by(live, uid)) {
        children::delete(kube_services, &live).await?;
    }
    children::delete(deployments, legacy).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, labels: &[(&str, &str)]) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
        Arc::new(pod)
    }

    #[test]
    fn only_the_services_pods_without_a_revision_are_the_previous_releases() {
        let old = pod("default", &[(names::SERVICE_LABEL, "hello")]);
        let pods = [
            old.clone(),
            pod(
                "default",
                &[(names::SERVICE_LABEL, "hello"), (names::REVISION_LABEL, "hello-00001")],
            ),
            pod("default", &[(names::SERVICE_LABEL, "other")]),
            pod("elsewhere", &[(names::SERVICE_LABEL, "hello")]),
        ];
        assert_eq!(unlabelled_pods(&pods, "default", "hello"), [old]);
    }
}
