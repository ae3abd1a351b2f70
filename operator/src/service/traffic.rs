//! The routing table resolved (by `rules/traffic.rs`), and the route Services put in place for it: `{service}` and
//! one `{tag}-{service}` per routed tag, ExternalName aliases of the activator controlled by the Service (built by
//! `rules/desired.rs`); the route Services of tags no longer routed are deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service as KubeService;
use kube::api::ListParams;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use runway_api::conditions::ROUTES_READY;
use runway_api::{Service, TrafficTargetStatus, names};

use super::context::{Error, Run};
use super::rules::desired::{self, ActivatorRef};
use super::rules::rollout::Decision;
use super::rules::status::ChildProblem;
use super::rules::traffic;
use crate::children::{self, ChildError, Outcome, Owner};

/// The latest created and latest ready revisions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Latest<'a> {
    pub(super) created: Option<&'a str>,
    pub(super) ready: Option<&'a str>,
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
        let applied = apply_routes(&self.apis.kube_services, service, &self.uid, &tags, activator, sweep).await;
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

/// What putting the routes in place gave.
struct Applied {
    /// The Service's route Service, then each tag's.
    applied: Vec<Result<(KubeService, Outcome), ChildError>>,
    /// The route Services of removed tags: their names when this call deleted them, or why not.
    deleted: Vec<Result<Option<String>, ChildError>>,
}

/// Applies the route Services for `tags`. With `sweep`, also deletes the Service's tag route Services of other tags
/// (the caller sweeps only when the Service has or had tags, to spare a list per reconcile).
async fn apply_routes(
    api: &Api<KubeService>,
    service: &Service,
    uid: &str,
    tags: &BTreeSet<&str>,
    activator: &ActivatorRef,
    sweep: bool,
) -> Applied {
    let owner = Owner { kind: "Service", uid };
    let mut wanted = vec![desired::route_service(service, activator)];
    wanted.extend(
        tags.iter()
            .map(|tag| desired::tag_route_service(service, tag, activator)),
    );
    let mut applied = vec![];
    for desired in &wanted {
        let result = async {
            let live = children::fetch_owned(api, owner, &desired.name_any()).await?;
            children::apply(api, desired, live.as_ref()).await
        }
        .await;
        applied.push(result);
    }
    let deleted = if sweep {
        sweep_tags(api, service, uid, tags).await
    } else {
        vec![]
    };
    Applied { applied, deleted }
}

async fn sweep_tags(
    api: &Api<KubeService>,
    service: &Service,
    uid: &str,
    tags: &BTreeSet<&str>,
) -> Vec<Result<Option<String>, ChildError>> {
    let name = service.name_any();
    let selector = format!("{}={name},{}", names::SERVICE_LABEL, names::TAG_LABEL);
    let listed = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(listed) => listed,
        Err(source) => {
            return vec![Err(ChildError::Api {
                kind: "Service".to_owned(),
                name: names::tag_route_name("*", &name),
                source,
            })];
        }
    };
    let mut deleted = vec![];
    for route in listed.items.iter().filter(|route| {
        let tag = route.labels().get(names::TAG_LABEL).map(String::as_str);
        children::is_controlled_by(*route, uid) && !tag.is_some_and(|tag| tags.contains(tag))
    }) {
        deleted.push(
            children::delete(api, route)
                .await
                .map(|done| done.then(|| route.name_any())),
        );
    }
    deleted
}
