//! A revision's workload: its Deployment and its pods' headless Service, applied with the revision as their
//! controller.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service as KubeService;
use kube::{Api, ResourceExt};
use runway_api::{Revision, names};

use crate::children::{self, ChildError, Outcome, Owner};
use crate::desired;

/// What applying one revision's children gave.
pub struct Applied {
    pub deployment: Result<(Deployment, Outcome), ChildError>,
    pub pods_service: Result<(KubeService, Outcome), ChildError>,
}

/// Applies revision's Deployment (created with `initial` pods) and pods' Service, for Service `service`.
pub async fn apply(
    deployments: &Api<Deployment>,
    kube_services: &Api<KubeService>,
    service: &str,
    revision: &Revision,
    initial: i32,
) -> Applied {
    let owner = Owner {
        kind: "Revision",
        uid: revision.metadata.uid.as_deref().unwrap_or_default(),
    };
    let deployment = apply_deployment(deployments, owner, service, revision, initial).await;
    let pods_service = async {
        let desired = desired::pods_service(service, revision);
        let live = children::fetch_owned(kube_services, owner, &desired.name_any()).await?;
        children::apply(kube_services, &desired, live.as_ref()).await
    }
    .await;
    Applied {
        deployment,
        pods_service,
    }
}

/// Applies the Deployment. Creation sets the initial scale and hands `spec.replicas` to the autoscaler's field
/// manager at once; from then on the reconciler never sends replicas, so it never fights the autoscaler.
async fn apply_deployment(
    api: &Api<Deployment>,
    owner: Owner<'_>,
    service: &str,
    revision: &Revision,
    initial: i32,
) -> Result<(Deployment, Outcome), ChildError> {
    let name = names::deployment_name(&revision.name_any());
    let api_error = |source| ChildError::Api {
        kind: "Deployment".to_owned(),
        name: name.clone(),
        source,
    };
    let live = children::fetch_owned(api, owner, &name).await?;
    let initial = match &live {
        None => Some(initial),
        Some(live) => {
            // A reconcile that created the Deployment but stopped before the hand-over: finish it now.
            if children::reconciler_owns_replicas(live) {
                let current = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                children::apply_scale(api, &name, current).await.map_err(api_error)?;
            }
            None
        }
    };
    let desired = desired::deployment(service, revision, initial);
    let (applied, outcome) = children::apply(api, &desired, live.as_ref()).await?;
    if let Some(replicas) = initial {
        children::apply_scale(api, &name, replicas).await.map_err(api_error)?;
    }
    Ok((applied, outcome))
}
