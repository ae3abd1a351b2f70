//! The routing table resolved, and the route Services put in place for it.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use runway_api::{TrafficTargetStatus, names};

use super::{Error, Run};
use crate::rollout::Decision;
use crate::routes;
use crate::status::{ChildProblem, ROUTES_READY};
use crate::traffic;

/// The latest created and latest ready revisions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Latest<'a> {
    pub created: Option<&'a str>,
    pub ready: Option<&'a str>,
}

impl Run<'_> {
    /// Resolves the routing table and applies the route Services of the Service and its tags; returns the table.
    pub(super) async fn route(
        &self,
        revisions: &BTreeSet<String>,
        latest: Latest<'_>,
        rollout: &Decision,
        problems: &mut Vec<ChildProblem>,
    ) -> Result<Vec<TrafficTargetStatus>, Error> {
        let service = self.service;
        let name = service.name_any();
        let taken = {
            let services = self.ctx.services.state();
            let neighbours = services
                .iter()
                .filter(|s| s.namespace().as_deref() == Some(self.namespace.as_str()))
                .map(|s| s.as_ref());
            traffic::taken(service, neighbours)
        };
        let input = traffic::Input {
            targets: service.spec.traffic.as_deref(),
            revisions,
            latest_created: latest.created,
            latest_ready: latest.ready,
            split: rollout
                .split()
                .map(|(previous, next_percent)| traffic::Split { previous, next_percent }),
            taken: &taken,
            previous: &self.previous.traffic,
        };
        let resolution = traffic::resolve(&input, &name, |tag| {
            let domain = &self.ctx.settings.domain;
            names::tag_url(tag, &name, &self.namespace, domain, service.spec.visibility)
        });
        problems.extend(resolution.problems.iter().map(|p| ChildProblem {
            condition: ROUTES_READY,
            reason: p.reason().to_owned(),
            message: p.message(),
        }));

        let tags: BTreeSet<&str> = resolution.traffic.iter().filter_map(|t| t.tag.as_deref()).collect();
        // Route Services of removed tags are looked for only when the Service has or had tags.
        let sweep = self.previous.traffic.iter().any(|t| t.tag.is_some())
            || service.spec.traffic.iter().flatten().any(|t| t.tag.is_some());
        let activator = &self.ctx.settings.activator;
        let applied = routes::apply(&self.apis.kube_services, service, &self.uid, &tags, activator, sweep).await;
        for result in applied.applied {
            match result {
                Ok((route, outcome)) => self.record_outcome(&route, outcome).await,
                Err(e) => problems.push(self.problem(ROUTES_READY, e).await?),
            }
        }
        for result in applied.deleted {
            match result {
                Ok(Some(route)) => {
                    let note = format!("Service {route} deleted: its tag is no longer routed");
                    self.publish(EventType::Normal, "Deleted", note).await;
                }
                Ok(None) => {}
                Err(e) => problems.push(self.problem(ROUTES_READY, e).await?),
            }
        }
        Ok(resolution.traffic)
    }
}
