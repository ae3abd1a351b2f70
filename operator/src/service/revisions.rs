//! The revision the Service's spec needs (decided by `rules/revisions.rs`): reused, created, or refused.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use runway_api::conditions::CONFIGURATION_READY;
use runway_api::{Revision, Service};

use super::context::{Error, Run};
use super::rules::desired;
use super::rules::pod_security::PodSecurity;
use super::rules::revisions::{self, Plan};
use super::rules::status::ChildProblem;
use crate::children::{ChildError, FIELD_MANAGER, Outcome};

impl Run<'_> {
    /// The Service's revisions (oldest first) and the latest created one: the revision the spec needs, or while it
    /// cannot be had (its name is taken, its creation failed), the previous one. `legacy` is the Deployment of the
    /// release before revisions while the Service still has it.
    pub(super) async fn latest_created(
        &self,
        problems: &mut Vec<ChildProblem>,
        legacy: Option<&Deployment>,
    ) -> Result<(Vec<Arc<Revision>>, Option<String>), Error> {
        let (service, uid) = (self.service, self.uid.as_str());
        let in_namespace: Vec<Arc<Revision>> = self
            .ctx
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(&self.namespace) && r.metadata.deletion_timestamp.is_none())
            .collect();
        let mut owned = revisions::owned(&in_namespace, uid);
        let planned = match revisions::plan(service, uid, &in_namespace) {
            Plan::Reuse(revision) => Some(revision),
            Plan::Create(name) => {
                let security = PodSecurity::for_new_revision(self.ctx.settings.pod_security, legacy);
                match create(&self.apis.revisions, service, uid, &name, security).await {
                    Ok((Plan::Reuse(created), outcome)) => {
                        owned.push(created.clone());
                        self.record_outcome(created.as_ref(), outcome).await;
                        Some(created)
                    }
                    Ok((Plan::Taken(message), _)) => {
                        problems.push(self.refuse(message).await);
                        None
                    }
                    // Not from a decision over the revision that holds the name.
                    Ok((Plan::Create(_), _)) => None,
                    Err(e) => {
                        problems.push(self.problem(CONFIGURATION_READY, e).await?);
                        None
                    }
                }
            }
            Plan::Taken(message) => {
                problems.push(self.refuse(message).await);
                None
            }
        };
        let latest = planned.map(|r| r.name_any()).or_else(|| {
            self.previous
                .latest_created_revision_name
                .clone()
                .filter(|previous| owned.iter().any(|r| r.name_any() == *previous))
        });
        Ok((owned, latest))
    }
}

/// Creates revision `name` under pod security policy `security` (Reuse with it, Created). When it exists already
/// (the watch's cache had not shown it yet), decides again on the revision the API server has: Reuse with it
/// (Unchanged) or Taken.
async fn create(
    api: &Api<Revision>,
    service: &Service,
    uid: &str,
    name: &str,
    security: PodSecurity,
) -> Result<(Plan, Outcome), ChildError> {
    let api_error = |source| ChildError::Api {
        kind: "Revision".to_owned(),
        name: name.to_owned(),
        source,
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, &desired::revision(service, name, security)).await {
        Ok(created) => Ok((Plan::Reuse(Arc::new(created)), Outcome::Created)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(name).await.map_err(api_error)?;
            if existing.metadata.deletion_timestamp.is_some() {
                let message = format!("revision {name} is being deleted; it is made again once it is gone");
                return Ok((Plan::Taken(message), Outcome::Unchanged));
            }
            Ok((revisions::plan(service, uid, &[Arc::new(existing)]), Outcome::Unchanged))
        }
        Err(source) => Err(api_error(source)),
    }
}
