//! Upgrade from the release before revisions (decided by `rules/upgrade.rs`, which tells the whole story): its pods
//! join the Service's first revision at once, so that the activators route to them; they are handed over to the
//! revision's Deployment without a restart when their template is the revision's, else replaced once; the previous
//! release's objects go once that revision is ready. The API calls that does are here.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use runway_api::{Revision, names};
use tracing::{info, warn};

use super::context::{Run, Step};
use super::rules::desired;
use super::rules::upgrade::{self, Handover, UPGRADE_ANNOTATION};
use crate::children::{self, ChildError, FIELD_MANAGER};

/// How soon a reconcile looks again while the old pods are being handed over.
pub(super) const HANDOVER_RECHECK: Duration = Duration::from_secs(1);

/// Where the upgrade stands for the Service's latest revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upgrade {
    /// Nothing of the previous release is left.
    Done,
    /// The revision's Deployment must not be created yet: the old pods are being handed over to it.
    Pending,
    /// The revision's Deployment may be created, starting with `initial` pods when given.
    Proceed { initial: Option<i32> },
}

impl Run<'_> {
    /// Moves the upgrade on by one step for `revision`, the latest created; `legacy` is the previous release's
    /// Deployment while it exists. The step is Retry when something failed.
    pub(super) async fn upgrade(&self, revision: &Revision, legacy: Option<&Deployment>) -> (Upgrade, Step) {
        let marked = upgrade::upgrading(revision);
        let Some(legacy_name) = legacy
            .map(ResourceExt::name_any)
            .or(marked.then(|| self.service.name_any()))
        else {
            return (Upgrade::Done, Step::Done);
        };
        let mut step = Step::Done;
        if !marked {
            step = step.and(self.warn_on(
                "marking the first revision",
                mark(&self.apis.revisions, &revision.name_any(), Some(&legacy_name)).await,
            ));
        }
        step = step.and(self.adopt_legacy_pods(&revision.name_any()).await);
        let own = ObjectRef::new(&names::deployment_name(&revision.name_any())).within(&self.namespace);
        if self.ctx.deployments.get(&own).is_some() {
            return (Upgrade::Proceed { initial: None }, step);
        }
        let (upgrade, next) = match legacy {
            Some(legacy) => self.hand_over(legacy, revision).await,
            None => self.adopt_replica_set(revision).await,
        };
        (upgrade, step.and(next))
    }

    /// Before the revision's Deployment exists: deletes the old Deployment with its pods orphaned when they run the
    /// revision's template, else lets the revision start pods of its own, as many.
    async fn hand_over(&self, legacy: &Deployment, revision: &Revision) -> (Upgrade, Step) {
        let replace = Upgrade::Proceed {
            initial: Some(upgrade::replicas(legacy)),
        };
        match upgrade::handover(legacy) {
            Handover::Wait => return (Upgrade::Pending, Step::Done),
            Handover::Replace => return (replace, Step::Done),
            Handover::Ready => {}
        }
        let service = self.service.name_any();
        let probe = desired::deployment(&service, revision, Some(upgrade::replicas(legacy)));
        let params = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let dry_run = match self.apis.deployments.create(&params, &probe).await {
            Ok(dry_run) => dry_run,
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "dry run of the first revision's Deployment");
                return (Upgrade::Pending, Step::Retry);
            }
        };
        if !upgrade::same_pods(legacy, &dry_run, &revision.name_any()) {
            info!(%service, namespace = %self.namespace, "the previous release's pods run another template: the first revision replaces them");
            return (replace, Step::Done);
        }
        match orphan(&self.apis.deployments, legacy).await {
            Ok(deleted) => {
                if deleted {
                    let note = format!(
                        "handing the pods of Deployment {} over to revision {} without a restart",
                        legacy.name_any(),
                        revision.name_any()
                    );
                    info!(%service, namespace = %self.namespace, "{note}");
                    self.publish(EventType::Normal, "Upgrading", note).await;
                }
                (Upgrade::Pending, Step::Done)
            }
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "deleting the previous release's Deployment, its pods kept");
                (Upgrade::Pending, Step::Retry)
            }
        }
    }

    /// Once the old Deployment is gone: labels its orphaned ReplicaSet with the revision (then waits for the next
    /// look, so that the Deployment controller sees the label before the Deployment that selects it), deletes the
    /// stale ones, and lets the revision's Deployment be created with as many pods, so that it adopts the ReplicaSet.
    async fn adopt_replica_set(&self, revision: &Revision) -> (Upgrade, Step) {
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let service = self.service.name_any();
        let selector = format!("{}={service}", names::SERVICE_LABEL);
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(listed) => listed.items,
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "listing the previous release's ReplicaSets");
                return (Upgrade::Pending, Step::Retry);
            }
        };
        let orphans = upgrade::orphans(&listed, &revision.name_any());
        let mut step = Step::Done;
        for stale in &orphans.stale {
            step = step.and(self.warn_on(
                "deleting a stale ReplicaSet of the previous release",
                delete_replica_set(&api, stale).await,
            ));
        }
        if let Some(name) = &orphans.to_label {
            let labelled = label_replica_set(&api, name, &revision.name_any()).await;
            // After a failed deletion the labelling's own failure goes unlogged: the step is retried either way.
            let step = match step {
                Step::Retry => Step::Retry,
                Step::Done => self.warn_on("labelling the previous release's ReplicaSet", labelled),
            };
            return (Upgrade::Pending, step);
        }
        // Without a ReplicaSet to adopt (the old Deployment ran no pod), the revision starts as a new one would.
        let initial = orphans.labelled;
        (Upgrade::Proceed { initial }, step)
    }

    /// Labels the previous release's pods with the first revision, so that the activators route to them as to the
    /// revision's own pods; Retry when that failed.
    async fn adopt_legacy_pods(&self, revision: &str) -> Step {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let pods = upgrade::unlabelled_pods(&self.ctx.pods.state(), &self.namespace, &self.service.name_any());
        let mut step = Step::Done;
        for pod in pods {
            step = step.and(self.warn_on(
                "labelling a pod of the previous release",
                adopt(&api, &pod.name_any(), revision).await,
            ));
        }
        step
    }

    /// Once the first revision is ready: deletes what is left of the previous release, then the revision's mark;
    /// Retry when that failed.
    pub(super) async fn finish_upgrade(&self, revision: &str, legacy: Option<&Deployment>) -> Step {
        let apis = &self.apis;
        let name = self.service.name_any();
        match remove(&apis.deployments, &apis.kube_services, &name, legacy, &self.uid).await {
            Ok(deleted) => {
                if deleted {
                    let note = format!(
                        "revision {revision} serves: deleted what was left of the release before revisions \
                         (Service {}{})",
                        names::pods_service_name(&name),
                        legacy
                            .map(|d| format!(", Deployment {}", d.name_any()))
                            .unwrap_or_default()
                    );
                    info!(service = %name, namespace = %self.namespace, "{note}");
                    self.publish(EventType::Normal, "Upgraded", note).await;
                }
                self.warn_on(
                    "removing the first revision's upgrade mark",
                    mark(&apis.revisions, revision, None).await,
                )
            }
            Err(e) => {
                warn!(service = %name, namespace = %self.namespace, %e, "removing the previous release's objects");
                Step::Retry
            }
        }
    }

    /// Logs a failed part of the upgrade (`what` it was doing); Retry when it failed.
    fn warn_on(&self, what: &str, result: Result<(), kube::Error>) -> Step {
        let failed = result
            .inspect_err(|e| warn!(service = %self.service.name_any(), namespace = %self.namespace, %e, "{what}"))
            .is_err();
        Step::retry_if(failed)
    }

    /// The previous release's Deployment of the Service, from the watch's cache, while it exists.
    pub(super) fn legacy_deployment(&self) -> Option<Arc<Deployment>> {
        let (deployments, service) = (&self.ctx.deployments, self.service);
        let name = service.name_any();
        deployments
            .get(&ObjectRef::new(&name).within(&service.namespace()?))
            .filter(|d| children::is_controlled_by(d.as_ref(), &self.uid))
    }
}

/// Labels pod `name` with `revision` (a label change restarts nothing).
async fn adopt(api: &Api<Pod>, name: &str, revision: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"labels": {names::REVISION_LABEL: revision}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Labels ReplicaSet `name` and its template with `revision`, so that the revision's Deployment selects it and
/// finds its own template there (the pods it already runs carry the label).
async fn label_replica_set(api: &Api<ReplicaSet>, name: &str, revision: &str) -> Result<(), kube::Error> {
    let labels = serde_json::json!({names::REVISION_LABEL: revision});
    let patch = serde_json::json!({
        "metadata": {"labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}}},
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Sets (`Some`) or removes (`None`) the upgrade's mark on revision `name`.
async fn mark(api: &Api<Revision>, name: &str, value: Option<&str>) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"annotations": {UPGRADE_ANNOTATION: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Deletes the previous release's Deployment `legacy`, while it is still that object, leaving its ReplicaSets and
/// pods running. True when this call deleted it.
async fn orphan(api: &Api<Deployment>, legacy: &Deployment) -> Result<bool, ChildError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: legacy.uid(),
            resource_version: None,
        }),
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    match api.delete(&legacy.name_any(), &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(source) => Err(api_error(legacy, source)),
    }
}

/// Deletes ReplicaSet `name` and its pods.
async fn delete_replica_set(api: &Api<ReplicaSet>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        result => result.map(drop),
    }
}

fn api_error<K: Resource<DynamicType = ()>>(object: &K, source: kube::Error) -> ChildError {
    ChildError::Api {
        kind: K::kind(&()).into_owned(),
        name: object.name_any(),
        source,
    }
}

/// Deletes the previous release's pods' Service `{service}-pods` and, when it is still there, its Deployment
/// `legacy` (its pods with it): each only while it is still the object the Service (`uid`) controls. True when this
/// call deleted either.
async fn remove(
    deployments: &Api<Deployment>,
    kube_services: &Api<KubeService>,
    service: &str,
    legacy: Option<&Deployment>,
    uid: &str,
) -> Result<bool, ChildError> {
    let pods = names::pods_service_name(service);
    let live = kube_services.get_opt(&pods).await.map_err(|source| ChildError::Api {
        kind: "Service".to_owned(),
        name: pods.clone(),
        source,
    })?;
    let mut deleted = false;
    if let Some(live) = live.filter(|live| children::is_controlled_by(live, uid)) {
        deleted |= children::delete(kube_services, &live).await?;
    }
    if let Some(legacy) = legacy {
        deleted |= children::delete(deployments, legacy).await?;
    }
    Ok(deleted)
}
