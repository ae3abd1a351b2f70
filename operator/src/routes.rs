//! The Service's route Services: `{service}` and one `{tag}-{service}` per routed tag, ExternalName aliases of the
//! activator controlled by the Service; the route Services of tags no longer routed are deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service as KubeService;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use runway_api::{Service, names};

use crate::children::{self, ChildError, Outcome, Owner};
use crate::desired::{self, ActivatorRef};

/// What putting the routes in place gave.
pub struct Applied {
    /// The Service's route Service, then each tag's.
    pub applied: Vec<Result<(KubeService, Outcome), ChildError>>,
    /// The route Services of removed tags: their names when this call deleted them, or why not.
    pub deleted: Vec<Result<Option<String>, ChildError>>,
}

/// Applies the route Services for `tags`. With `sweep`, also deletes the Service's tag route Services of other tags
/// (the caller sweeps only when the Service has or had tags, to spare a list per reconcile).
pub async fn apply(
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
