//! What every step of a Service's reconcile shares: the operator-wide `Context`, one reconcile's `Run` with the
//! revisions it saw, what a step asks of the next reconcile (`Step`), and the events and problems a step reports.
//! The steps import this module, never the pipeline in `mod.rs`.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service as KubeService};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::conditions::{CONFIGURATION_READY, REVISION_NAME_TAKEN};
use runway_api::{Revision, Service, ServiceStatus};
use tracing::{info, warn};

use super::rules::desired::ActivatorRef;
use super::rules::network_policy::NetworkIsolation;
use super::rules::pod_security::PodSecurity;
use super::rules::revision_status;
use super::rules::status::ChildProblem;
use crate::autoscaler::board::Board;
use crate::autoscaler::policy::Defaults;
use crate::children::{ChildError, Outcome};
use crate::condition::State;
use crate::events::{self, Happening};
use crate::metrics::{Metrics, ReasonLabels};

/// Operator-wide settings the reconciler needs.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) domain: String,
    pub(crate) activator: ActivatorRef,
    pub(crate) defaults: Defaults,
    /// Whether each revision gets its NetworkPolicy, and whom it admits.
    pub(crate) isolation: NetworkIsolation,
    /// The pod security policy of the revisions made from now on.
    pub(crate) pod_security: PodSecurity,
}

/// Shared by every reconcile.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
    pub(crate) settings: Settings,
    pub(crate) metrics: Arc<Metrics>,
    /// Every Runway pod, from the watch that also triggers reconciles when a pod's state changes.
    pub(crate) pods: Store<Pod>,
    /// Every Revision, from the watch that also triggers its Service's reconcile.
    pub(crate) revisions: Store<Revision>,
    /// Every Runway Deployment: the previous release's Deployment of a Service is found here.
    pub(crate) deployments: Store<Deployment>,
    /// Every Runway Service: the hosts a tag may not take.
    pub(crate) services: Store<Service>,
    /// The autoscaler's board: the revisions' responses a rollout compares, and the pod floors it sets.
    pub(crate) board: Arc<Mutex<Board>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("the Service has no namespace")]
    NoNamespace,
    #[error("the Service has no uid yet")]
    NoUid,
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    /// Nothing can be created in the namespace, and the Service goes with it: not an error, the reconcile stops.
    #[error("the namespace is being deleted")]
    NamespaceTerminating,
}

impl Error {
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Error::NoNamespace => "no_namespace",
            Error::NoUid => "no_uid",
            Error::Status(_) => "status_write",
            Error::NamespaceTerminating => "namespace_terminating",
        }
    }
}

/// What a step asks of the next reconcile, besides the rechecks it plans (a starting pod's deadline, a rollout's
/// next step).
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Step {
    /// Everything it did went through: the next reconcile can wait for a change or the resync.
    #[default]
    Done,
    /// Something failed: reconcile again soon.
    Retry,
}

impl Step {
    /// Retry when `failed`, else Done.
    pub(super) fn retry_if(failed: bool) -> Step {
        if failed { Step::Retry } else { Step::Done }
    }

    /// What this step and `other` ask together: Retry when either does.
    pub(super) fn and(self, other: Step) -> Step {
        Step::retry_if(self == Step::Retry || other == Step::Retry)
    }
}

/// The namespace's APIs a reconcile uses.
pub(super) struct Apis {
    pub(super) deployments: Api<Deployment>,
    pub(super) kube_services: Api<KubeService>,
    pub(super) network_policies: Api<NetworkPolicy>,
    pub(super) revisions: Api<Revision>,
    pub(super) services: Api<Service>,
}

/// One reconcile of one Service: what every step reads.
pub(super) struct Run<'a> {
    pub(super) ctx: &'a Context,
    pub(super) service: &'a Service,
    pub(super) namespace: String,
    pub(super) uid: String,
    pub(super) apis: Apis,
    /// The status as last written.
    pub(super) previous: ServiceStatus,
    pub(super) now: Timestamp,
}

/// One revision of the Service as this reconcile saw it.
pub(super) struct Seen {
    pub(super) revision: Arc<Revision>,
    pub(super) observed: revision_status::Observed,
    pub(super) ready: State,
}

impl Seen {
    pub(super) fn name(&self) -> &str {
        self.revision.metadata.name.as_deref().unwrap_or_default()
    }
}

impl Run<'_> {
    /// Publishes an event about the Service.
    pub(super) async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let happening = Happening {
            type_,
            action: "Reconcile",
            reason,
            note,
            related: None,
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Publishes an event about the Service that concerns `related` (a revision, a child).
    pub(super) async fn publish_related(&self, type_: EventType, reason: &str, note: String, related: ObjectReference) {
        let happening = Happening {
            type_,
            action: "Reconcile",
            reason,
            note,
            related: Some(related),
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Tells what applying a child did, when it did something.
    pub(super) async fn record_outcome<K: Resource<DynamicType = ()>>(&self, child: &K, outcome: Outcome) {
        let reason = match outcome {
            Outcome::Created => "Created",
            Outcome::Updated => "Updated",
            Outcome::Unchanged => return,
        };
        let (kind, name) = (K::kind(&()), child.name_any());
        info!(service = %self.service.name_any(), namespace = %self.namespace, %kind, %name, reason, "applied child");
        let happening = Happening {
            type_: EventType::Normal,
            action: "Reconcile",
            reason,
            note: format!("{kind} {name} {}", reason.to_lowercase()),
            related: Some(child.object_ref(&())),
        };
        events::publish(&self.ctx.recorder, self.service, happening).await;
    }

    /// Reports a child that could not be put in place: a Warning event, a metric and the problem for the status. In
    /// a namespace being deleted, stops the reconcile instead.
    pub(super) async fn problem(&self, condition: &'static str, error: ChildError) -> Result<ChildProblem, Error> {
        if error.namespace_terminating() {
            return Err(Error::NamespaceTerminating);
        }
        let reason = match error {
            ChildError::NotOwned { .. } => "NotOwned",
            ChildError::Api { .. } => "ApplyFailed",
        };
        warn!(service = %self.service.name_any(), namespace = %self.namespace, %error, "child not applied");
        self.ctx
            .metrics
            .reconcile_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
        self.publish(EventType::Warning, reason, error.to_string()).await;
        Ok(ChildProblem {
            condition,
            reason: reason.to_owned(),
            message: error.to_string(),
        })
    }

    /// Refuses spec.template.metadata.name: a Warning event and the problem for ConfigurationReady.
    pub(super) async fn refuse(&self, message: String) -> ChildProblem {
        warn!(service = %self.service.name_any(), namespace = %self.namespace, %message, "revision name taken");
        self.publish(EventType::Warning, REVISION_NAME_TAKEN, message.clone())
            .await;
        ChildProblem {
            condition: CONFIGURATION_READY,
            reason: REVISION_NAME_TAKEN.to_owned(),
            message,
        }
    }
}
