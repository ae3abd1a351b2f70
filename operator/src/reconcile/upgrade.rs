//! Upgrade from the release before revisions (see `crate::legacy`): its pods join the Service's first revision at
//! once, so that the activators route to them; they are handed over to the revision's Deployment without a restart
//! when their template is the revision's, else replaced once; the previous release's objects go once that revision
//! is ready.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use runway_api::{Revision, names};
use tracing::{info, warn};

use super::Run;
use crate::children::FIELD_MANAGER;
use crate::desired;
use crate::legacy::{self, Handover};

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
    /// Deployment while it exists. The second value is false when a step failed and should be retried.
    pub(super) async fn upgrade(&self, revision: &Revision, legacy: Option<&Deployment>) -> (Upgrade, bool) {
        let marked = legacy::upgrading(revision);
        let Some(legacy_name) = legacy
            .map(ResourceExt::name_any)
            .or(marked.then(|| self.service.name_any()))
        else {
            return (Upgrade::Done, true);
        };
        let mut ok = true;
        if !marked {
            ok &= self.warn_on(
                "marking the first revision",
                legacy::mark(&self.apis.revisions, &revision.name_any(), Some(&legacy_name)).await,
            );
        }
        ok &= self.adopt_legacy_pods(&revision.name_any()).await;
        let own = ObjectRef::new(&names::deployment_name(&revision.name_any())).within(&self.namespace);
        if self.ctx.deployments.get(&own).is_some() {
            return (Upgrade::Proceed { initial: None }, ok);
        }
        let (upgrade, step_ok) = match legacy {
            Some(legacy) => self.hand_over(legacy, revision).await,
            None => self.adopt_replica_set(revision).await,
        };
        (upgrade, ok && step_ok)
    }

    /// Before the revision's Deployment exists: deletes the old Deployment with its pods orphaned when they run the
    /// revision's template, else lets the revision start pods of its own, as many.
    async fn hand_over(&self, legacy: &Deployment, revision: &Revision) -> (Upgrade, bool) {
        let replace = Upgrade::Proceed {
            initial: Some(legacy::replicas(legacy)),
        };
        match legacy::handover(legacy) {
            Handover::Wait => return (Upgrade::Pending, true),
            Handover::Replace => return (replace, true),
            Handover::Ready => {}
        }
        let service = self.service.name_any();
        let probe = desired::deployment(&service, revision, Some(legacy::replicas(legacy)));
        let params = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let dry_run = match self.apis.deployments.create(&params, &probe).await {
            Ok(dry_run) => dry_run,
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "dry run of the first revision's Deployment");
                return (Upgrade::Pending, false);
            }
        };
        if !legacy::same_pods(legacy, &dry_run, &revision.name_any()) {
            info!(%service, namespace = %self.namespace, "the previous release's pods run another template: the first revision replaces them");
            return (replace, true);
        }
        match legacy::orphan(&self.apis.deployments, legacy).await {
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
                (Upgrade::Pending, true)
            }
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "deleting the previous release's Deployment, its pods kept");
                (Upgrade::Pending, false)
            }
        }
    }

    /// Once the old Deployment is gone: labels its orphaned ReplicaSet with the revision (then waits for the next
    /// look, so that the Deployment controller sees the label before the Deployment that selects it), deletes the
    /// stale ones, and lets the revision's Deployment be created with as many pods, so that it adopts the ReplicaSet.
    async fn adopt_replica_set(&self, revision: &Revision) -> (Upgrade, bool) {
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let service = self.service.name_any();
        let selector = format!("{}={service}", names::SERVICE_LABEL);
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(listed) => listed.items,
            Err(e) => {
                warn!(%service, namespace = %self.namespace, %e, "listing the previous release's ReplicaSets");
                return (Upgrade::Pending, false);
            }
        };
        let orphans = legacy::orphans(&listed, &revision.name_any());
        let mut ok = true;
        for stale in &orphans.stale {
            ok &= self.warn_on(
                "deleting a stale ReplicaSet of the previous release",
                legacy::delete_replica_set(&api, stale).await,
            );
        }
        if let Some(name) = &orphans.to_label {
            let labelled = legacy::label_replica_set(&api, name, &revision.name_any()).await;
            return (
                Upgrade::Pending,
                ok && self.warn_on("labelling the previous release's ReplicaSet", labelled),
            );
        }
        // Without a ReplicaSet to adopt (the old Deployment ran no pod), the revision starts as a new one would.
        let initial = orphans.labelled;
        (Upgrade::Proceed { initial }, ok)
    }

    /// Labels the previous release's pods with the first revision, so that the activators route to them as to the
    /// revision's own pods; false when that failed.
    async fn adopt_legacy_pods(&self, revision: &str) -> bool {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let pods = legacy::unlabelled_pods(&self.ctx.pods.state(), &self.namespace, &self.service.name_any());
        let mut adopted = true;
        for pod in pods {
            adopted &= self.warn_on(
                "labelling a pod of the previous release",
                legacy::adopt(&api, &pod.name_any(), revision).await,
            );
        }
        adopted
    }

    /// Once the first revision is ready: deletes what is left of the previous release, then the revision's mark;
    /// false when that failed.
    pub(super) async fn finish_upgrade(&self, revision: &str, legacy: Option<&Deployment>) -> bool {
        let apis = &self.apis;
        let name = self.service.name_any();
        match legacy::remove(&apis.deployments, &apis.kube_services, &name, legacy, &self.uid).await {
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
                    legacy::mark(&apis.revisions, revision, None).await,
                )
            }
            Err(e) => {
                warn!(service = %name, namespace = %self.namespace, %e, "removing the previous release's objects");
                false
            }
        }
    }

    /// Logs a failed step of the upgrade; true when it succeeded.
    fn warn_on(&self, step: &str, result: Result<(), kube::Error>) -> bool {
        result
            .inspect_err(|e| warn!(service = %self.service.name_any(), namespace = %self.namespace, %e, "{step}"))
            .is_ok()
    }
}
