//! The DomainMapping controller: which namespace holds each custom domain, and whether the Service it names is
//! there. Writes their status (the activators route the mappings whose claim holds) and, when the chart turns them
//! on, their domains' routes at the ingress (`routes`).

mod routes;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use runway_api::Service;
use runway_api::conditions::READY;
use runway_api::domain_mapping::{
    DOMAIN_ALREADY_CLAIMED, DOMAIN_CLAIMED, DomainMapping, DomainMappingStatus, REFERENCE_RESOLVED, SERVICE_NOT_FOUND,
    claim_holder,
};
use tracing::warn;

use crate::children::apply_status;
use crate::condition::{ConditionStatus, State, condition};
use crate::spans;

pub(crate) use routes::{IngressSettings, RouteSettings};

const FIELD_MANAGER: &str = "runway-operator-domains";
/// Keeps a DomainMapping until its routes are deleted: they live in the activator's namespace, where no owner
/// reference to the mapping can take them along.
const FINALIZER: &str = "serving.runway.dev/domain-routes";
/// After a failed status write.
const RETRY: Duration = Duration::from_secs(5);
/// While routes are on, each mapping is checked again this often: a route deleted by hand comes back.
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("listing the claims of the domain: {0}")]
    Claims(#[source] kube::Error),
    #[error("reading the Service: {0}")]
    Service(#[source] kube::Error),
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    #[error("putting the routes of the domain in place: {0}")]
    Routes(#[source] kube::Error),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

struct Context {
    client: Client,
    routes: RouteSettings,
}

/// Reconciles every DomainMapping, and sweeps the routes of mapped domains, until the caller drops the future.
pub(crate) async fn run(client: Client, routes: RouteSettings) {
    let mappings: Api<DomainMapping> = Api::all(client.clone());
    let controller = Controller::new(mappings.clone(), watcher::Config::default());
    let (same_domain, referencing) = (controller.store(), controller.store());
    let context = Arc::new(Context {
        client: client.clone(),
        routes: routes.clone(),
    });
    let reconciles = controller
        // A claim that comes or goes changes who holds the domain for every other claim of it.
        .watches(mappings, watcher::Config::default(), move |changed: DomainMapping| {
            other_claims(&same_domain.state(), &changed)
        })
        // A Service that comes, goes or turns ready changes its mappings' ReferenceResolved and Ready.
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            move |service: Service| mappings_of_service(&referencing.state(), &service),
        )
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            match result {
                // A Service's trigger raced the deletion of a mapping that named it: nothing to do.
                Err(ControllerError::ObjectNotFound(_)) | Ok(_) => {}
                Err(error) => warn!(%error, "domain mapping controller"),
            }
            std::future::ready(())
        });
    tokio::join!(reconciles, routes::sweep(client, routes));
}

/// Of the cached mappings, the claims of `changed`'s domain in the other namespaces. Not `changed` itself: its own
/// watch reconciles it, and once it is deleted there is nothing left to reconcile.
fn other_claims(mappings: &[Arc<DomainMapping>], changed: &DomainMapping) -> Vec<ObjectRef<DomainMapping>> {
    mappings
        .iter()
        .filter(|dm| dm.domain() == changed.domain() && dm.namespace() != changed.namespace())
        .map(|dm| ObjectRef::from_obj(&**dm))
        .collect()
}

/// Of the cached mappings, those that name `service`: same namespace, spec.ref.name its name.
fn mappings_of_service(mappings: &[Arc<DomainMapping>], service: &Service) -> Vec<ObjectRef<DomainMapping>> {
    let (namespace, name) = (service.namespace(), service.name_any());
    mappings
        .iter()
        .filter(|dm| dm.namespace() == namespace && dm.spec.reference.name == name)
        .map(|dm| ObjectRef::from_obj(&**dm))
        .collect()
}

async fn reconcile(mapping: Arc<DomainMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = spans::reconcile(
        "DomainMapping",
        &mapping.namespace().unwrap_or_default(),
        &mapping.name_any(),
    );
    spans::traced(span, reconcile_mapping(mapping, ctx)).await
}

async fn reconcile_mapping(mapping: Arc<DomainMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Without routes a mapping gets no finalizer, which would hold it if the operator went away; one it got while
    // routes were on still runs, to delete them.
    if !ctx.routes.enabled() && !mapping.finalizers().iter().any(|f| f == FINALIZER) {
        return update(mapping, &ctx).await;
    }
    let mappings = Api::<DomainMapping>::namespaced(ctx.client.clone(), &mapping.namespace().unwrap_or_default());
    let ctx = &*ctx;
    finalizer(&mappings, FINALIZER, mapping, move |event| async move {
        match event {
            Event::Apply(mapping) => update(mapping, ctx).await,
            // Being deleted: it routes nothing, so syncing deletes every route it has.
            Event::Cleanup(mapping) => {
                routes::sync(&ctx.client, &mapping, &ctx.routes)
                    .await
                    .map_err(Error::Routes)?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))
}

/// Writes the mapping's status, then puts its routes in place as that status says.
async fn update(mapping: Arc<DomainMapping>, ctx: &Context) -> Result<Action, Error> {
    let namespace = mapping.namespace().unwrap_or_default();
    // Every claim of the domain from the API server, not the cache: a claim the cache has not seen yet must not
    // let this one be told it holds the domain.
    let same_domain = ListParams::default().fields(&format!("metadata.name={}", mapping.name_any()));
    let claims = Api::<DomainMapping>::all(ctx.client.clone())
        .list(&same_domain)
        .await
        .map_err(Error::Claims)?;
    // Deleted since the trigger: its status cannot be written, and the other claims were triggered by its deletion.
    if !claims.items.iter().any(|dm| dm.namespace() == mapping.namespace()) {
        return Ok(Action::await_change());
    }
    let holder = claim_holder(&claims.items).and_then(|dm| dm.namespace());
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let service = services
        .get_opt(&mapping.spec.reference.name)
        .await
        .map_err(Error::Service)?;
    let status = status(&mapping, holder.as_deref(), service.as_ref(), Timestamp::now());
    if mapping.status.as_ref() != Some(&status) {
        let mappings = Api::<DomainMapping>::namespaced(ctx.client.clone(), &namespace);
        apply_status(&mappings, &mapping.name_any(), &status, FIELD_MANAGER)
            .await
            .map_err(Error::Status)?;
    }
    if !ctx.routes.enabled() {
        return Ok(Action::await_change());
    }
    // After the status write: a route exists only once the status that asks for it does (the sweep relies on it).
    let mut current = (*mapping).clone();
    current.status = Some(status);
    routes::sync(&ctx.client, &current, &ctx.routes)
        .await
        .map_err(Error::Routes)?;
    Ok(Action::requeue(RESYNC))
}

fn error_policy(_mapping: Arc<DomainMapping>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "domain mapping reconcile failed");
    Action::requeue(RETRY)
}

/// The status of `mapping`, given the namespace whose claim holds its domain and its Service (if it exists).
pub(crate) fn status(
    mapping: &DomainMapping,
    holder: Option<&str>,
    service: Option<&Service>,
    now: Timestamp,
) -> DomainMappingStatus {
    let domain = mapping.domain();
    let service_name = &mapping.spec.reference.name;
    let claimed = holder.is_none_or(|holder| Some(holder) == mapping.namespace().as_deref());
    let claim = if claimed {
        State::new(ConditionStatus::True, "Claimed", "this namespace holds the domain")
    } else {
        State::new(
            ConditionStatus::False,
            DOMAIN_ALREADY_CLAIMED,
            format!(
                "{domain} is claimed by a DomainMapping in namespace {}",
                holder.unwrap_or_default()
            ),
        )
    };
    let reference = match service {
        Some(_) => State::new(
            ConditionStatus::True,
            "ServiceFound",
            format!("Service {service_name} exists"),
        ),
        None => State::new(
            ConditionStatus::False,
            SERVICE_NOT_FOUND,
            format!("no Runway Service {service_name} in this namespace"),
        ),
    };
    let service_ready = service.and_then(|s| {
        s.status
            .as_ref()
            .and_then(|status| status.conditions.iter().find(|c| c.type_ == READY))
    });
    let ready = if !claimed {
        claim.clone()
    } else if service.is_none() {
        reference.clone()
    } else {
        match service_ready {
            Some(c) if c.status == ConditionStatus::True.as_str() => State::new(
                ConditionStatus::True,
                "Ready",
                format!("http://{domain} routes to Service {service_name}"),
            ),
            Some(c) => State::new(
                ConditionStatus::False,
                "ServiceNotReady",
                format!("Service {service_name} is not ready: {}", c.message),
            ),
            None => State::new(
                ConditionStatus::False,
                "ServiceNotReady",
                format!("Service {service_name} has no status yet"),
            ),
        }
    };
    let previous = mapping
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = mapping.metadata.generation;
    DomainMappingStatus {
        url: Some(format!("http://{domain}")),
        observed_generation: generation,
        conditions: vec![
            condition(previous, DOMAIN_CLAIMED, claim, generation, now),
            condition(previous, REFERENCE_RESOLVED, reference, generation, now),
            condition(previous, READY, ready, generation, now),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use runway_api::ServiceStatus;
    use runway_api::domain_mapping::{DomainMappingSpec, ServiceReference};

    fn mapping(namespace: &str) -> DomainMapping {
        let mut dm = DomainMapping::new(
            "api.example.org",
            DomainMappingSpec {
                reference: ServiceReference { name: "hello".into() },
            },
        );
        dm.metadata.namespace = Some(namespace.into());
        dm.metadata.generation = Some(1);
        dm
    }

    fn service(ready: &str) -> Service {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}},
        }))
        .unwrap();
        service.status = Some(ServiceStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: ready.into(),
                reason: "R".into(),
                message: "0 of 1 pods ready".into(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        });
        service
    }

    fn cached(namespace: &str, domain: &str, service: &str) -> Arc<DomainMapping> {
        let mut dm = DomainMapping::new(
            domain,
            DomainMappingSpec {
                reference: ServiceReference { name: service.into() },
            },
        );
        dm.metadata.namespace = Some(namespace.into());
        Arc::new(dm)
    }

    fn names(triggered: Vec<ObjectRef<DomainMapping>>) -> Vec<String> {
        triggered
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect()
    }

    #[test]
    fn a_changed_claim_triggers_the_claims_of_its_domain_in_the_other_namespaces() {
        let store = [
            cached("shop", "api.example.org", "hello"),
            cached("other", "api.example.org", "web"),
            cached("third", "api.example.org", "web"),
            cached("other", "www.example.org", "hello"),
        ];
        assert_eq!(
            names(other_claims(&store, &store[0])),
            ["other/api.example.org", "third/api.example.org"]
        );
        assert!(other_claims(&store, &store[3]).is_empty());
    }

    #[test]
    fn a_changed_service_triggers_the_mappings_that_name_it_in_its_namespace() {
        let store = [
            cached("shop", "api.example.org", "hello"),
            cached("shop", "www.example.org", "hello"),
            cached("shop", "web.example.org", "web"),
            cached("other", "api.example.org", "hello"),
        ];
        assert_eq!(
            names(mappings_of_service(&store, &service("True"))),
            ["shop/api.example.org", "shop/www.example.org"]
        );
    }

    fn summary(status: &DomainMappingStatus) -> Vec<String> {
        status
            .conditions
            .iter()
            .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
            .collect()
    }

    #[test]
    fn the_holder_with_a_ready_service_is_ready() {
        let status = status(
            &mapping("shop"),
            Some("shop"),
            Some(&service("True")),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.url.as_deref(), Some("http://api.example.org"));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            summary(&status),
            [
                "DomainClaimed=True/Claimed",
                "ReferenceResolved=True/ServiceFound",
                "Ready=True/Ready"
            ]
        );
    }

    #[test]
    fn a_second_claim_is_refused_and_names_the_holder() {
        let status = status(
            &mapping("other"),
            Some("shop"),
            Some(&service("True")),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            summary(&status),
            [
                "DomainClaimed=False/DomainAlreadyClaimed",
                "ReferenceResolved=True/ServiceFound",
                "Ready=False/DomainAlreadyClaimed"
            ]
        );
        assert!(
            status.conditions[0].message.contains("namespace shop"),
            "{:?}",
            status.conditions[0]
        );
    }

    #[test]
    fn when_the_holder_goes_the_next_claim_holds_and_only_changed_conditions_move_their_time() {
        let at = |second| Timestamp::from_second(second).unwrap();
        let times = |status: &DomainMappingStatus| {
            status
                .conditions
                .iter()
                .map(|c| c.last_transition_time.0.as_second())
                .collect::<Vec<_>>()
        };
        let mut refused = mapping("other");
        refused.status = Some(status(&refused, Some("shop"), Some(&service("True")), at(10)));
        let unchanged = status(&refused, Some("shop"), Some(&service("True")), at(20));
        assert_eq!(times(&unchanged), [10, 10, 10]);
        refused.status = Some(unchanged);
        let holding = status(&refused, Some("other"), Some(&service("True")), at(30));
        assert_eq!(
            summary(&holding),
            [
                "DomainClaimed=True/Claimed",
                "ReferenceResolved=True/ServiceFound",
                "Ready=True/Ready"
            ]
        );
        assert_eq!(times(&holding), [30, 10, 30]);
    }

    #[test]
    fn a_missing_or_unready_service_keeps_it_unready() {
        let missing = status(&mapping("shop"), Some("shop"), None, Timestamp::UNIX_EPOCH);
        assert_eq!(
            summary(&missing)[1..],
            ["ReferenceResolved=False/ServiceNotFound", "Ready=False/ServiceNotFound"]
        );
        let unready = status(
            &mapping("shop"),
            Some("shop"),
            Some(&service("False")),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(summary(&unready)[2], "Ready=False/ServiceNotReady");
        assert!(unready.conditions[2].message.ends_with("0 of 1 pods ready"));
    }
}
