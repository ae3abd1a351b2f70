//! The Service's status written (computed by `rules/status.rs`), with a Warning when its latest revision starts
//! failing.

use kube::ResourceExt;
use tracing::warn;

use super::context::{Error, Run};
use super::rules::status::{self, Observed};
use crate::children::{self, FIELD_MANAGER};

impl Run<'_> {
    /// Writes the Service's status when it changed, with a Warning when its latest revision starts failing.
    pub(super) async fn write_status(&self, observed: &Observed) -> Result<(), Error> {
        let service = self.service;
        let status = status::compute(service, observed, &self.ctx.settings.domain, self.now);
        if service.status.as_ref() == Some(&status) {
            return Ok(());
        }
        children::apply_status(&self.apis.services, &service.name_any(), &status, FIELD_MANAGER)
            .await
            .map_err(Error::Status)?;
        if let Some((type_, reason, note)) = status::transition_event(service.status.as_ref(), &status) {
            warn!(service = %service.name_any(), namespace = %self.namespace, %reason, %note, "pods failing");
            self.publish(type_, &reason, note).await;
        }
        Ok(())
    }
}
