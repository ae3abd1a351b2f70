//! Upgrade from the release before revisions (see `crate::legacy`): its pods join the Service's first revision at
//! once, so that the activators route to them without waiting for the revision's own pods, and its Deployment and
//! pods' Service go once that revision is ready.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use runway_api::names;
use tracing::{info, warn};

use super::Run;
use crate::legacy;

impl Run<'_> {
    /// Labels the previous release's pods with the first revision, so that the activators route to them as to the
    /// revision's own pods (they stay owned by the previous release's ReplicaSet); false when that failed.
    pub(super) async fn adopt_legacy_pods(&self, revision: &str) -> bool {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let pods = legacy::unlabelled_pods(&self.ctx.pods.state(), &self.namespace, &self.service.name_any());
        let mut adopted = true;
        for pod in pods {
            if let Err(e) = legacy::adopt(&api, &pod.name_any(), revision).await {
                warn!(service = %self.service.name_any(), namespace = %self.namespace, pod = %pod.name_any(), %e, "labelling a pod of the previous release");
                adopted = false;
            }
        }
        adopted
    }

    /// Deletes the previous release's Deployment and pods' Service now that the first revision is ready; false when
    /// that failed.
    pub(super) async fn remove_legacy(&self, deployment: &Deployment, revision: Option<&str>) -> bool {
        let apis = &self.apis;
        match legacy::remove(&apis.deployments, &apis.kube_services, deployment, &self.uid).await {
            Ok(deleted) => {
                if deleted {
                    let name = self.service.name_any();
                    let note = format!(
                        "revision {} serves: deleted Deployment {name} and Service {} of the release before revisions",
                        revision.unwrap_or_default(),
                        names::pods_service_name(&name)
                    );
                    info!(service = %name, namespace = %self.namespace, "{note}");
                    self.publish(EventType::Normal, "Upgraded", note).await;
                }
                true
            }
            Err(e) => {
                warn!(service = %self.service.name_any(), namespace = %self.namespace, %e, "removing the previous release's objects");
                false
            }
        }
    }
}
