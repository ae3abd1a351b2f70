//! The routes of mapped domains: for each DomainMapping whose namespace holds the domain and whose Service exists,
//! a Gateway API HTTPRoute and/or an Ingress for the domain, to the activator's external Service. They live in the
//! activator's namespace, next to their backend, so no ReferenceGrant is needed; an owner reference cannot cross
//! namespaces, so they are found by their labels and removed by the DomainMapping's finalizer and by a sweep.
//! Pure functions decide (`desired_routes`, `stale_routes`); the rest applies their answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use kube::{Api, Client, ResourceExt};
use runway_api::domain_mapping::{
    DOMAIN_CLAIMED, DomainMapping, MAPPING_LABEL, MAPPING_NAMESPACE_LABEL, REFERENCE_RESOLVED,
};
use runway_api::names::{MANAGED_BY, MANAGED_BY_LABEL};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::children::FIELD_MANAGER;
use crate::condition::ConditionStatus;

/// How often the sweep looks for routes whose mapping is gone or routes nothing.
const SWEEP_PERIOD: Duration = Duration::from_secs(60);
/// Longest label value.
const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (a DNS subdomain).
const MAX_NAME: usize = 253;

/// Which routes the operator makes and where they send traffic: the chart's gateway and ingress values.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RouteSettings {
    /// Namespace of the routes: the activator's.
    pub(crate) namespace: String,
    /// The activator's external Service and its port: every route's backend.
    pub(crate) service: String,
    pub(crate) port: i32,
    /// parentRefs (a JSON list) of an HTTPRoute per mapped domain; None: no HTTPRoutes.
    pub(crate) gateway: Option<Value>,
    /// None: no Ingresses.
    pub(crate) ingress: Option<IngressSettings>,
}

/// The Ingress per mapped domain.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct IngressSettings {
    /// spec.ingressClassName; None: the cluster's default class.
    pub(crate) class_name: Option<String>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// A tls entry for the domain with the Secret `tls_secret_name(domain)`.
    pub(crate) tls: bool,
}

impl RouteSettings {
    /// Whether any route is made (and so DomainMappings get the finalizer that removes them).
    pub(crate) fn enabled(&self) -> bool {
        self.gateway.is_some() || self.ingress.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RouteKind {
    HttpRoute,
    Ingress,
}

impl RouteKind {
    const ALL: [RouteKind; 2] = [RouteKind::HttpRoute, RouteKind::Ingress];

    fn api_resource(self) -> ApiResource {
        match self {
            RouteKind::HttpRoute => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
                "httproutes",
            ),
            RouteKind::Ingress => ApiResource::erase::<Ingress>(&()),
        }
    }
}

/// A route by kind and name; every route is in the settings' namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RouteId {
    pub(crate) kind: RouteKind,
    pub(crate) name: String,
}

/// A route as the operator applies it.
#[derive(Clone, Debug)]
pub(super) struct Route {
    pub(crate) kind: RouteKind,
    pub(crate) object: DynamicObject,
}

impl Route {
    pub(super) fn id(&self) -> RouteId {
        RouteId {
            kind: self.kind,
            name: self.object.name_any(),
        }
    }
}

/// Name of the routes of `domain` mapped in `namespace`: `dm-{namespace}.{domain}`. A namespace has no dot, so no two
/// mappings share a name (replacing the domain's dots with dashes would: `a-b.c` and `a.b-c`).
pub(super) fn route_name(namespace: &str, domain: &str) -> String {
    bounded(&format!("dm-{namespace}.{domain}"), MAX_NAME)
}

/// The Secret an Ingress serves for `domain`: `{domain}-tls`, the name cert-manager's ingress-shim gives the
/// certificate it issues for the Ingress.
pub(super) fn tls_secret_name(domain: &str) -> String {
    bounded(&format!("{domain}-tls"), MAX_NAME)
}

/// `value` if it has at most `max` characters, else its start and `-{hash of the whole}`: still unique, and still a
/// valid name or label value (the start ends in a letter or digit, the hash is hex).
fn bounded(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let hash = format!("{:016x}", fnv1a(value));
    let start: String = value.chars().take(max - hash.len() - 1).collect();
    format!("{}-{hash}", start.trim_end_matches(['.', '-']))
}

/// FNV-1a, 64 bits: the same on every platform and release (std's hasher is not), so names never change.
fn fnv1a(value: &str) -> u64 {
    value.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The labels of a mapping's routes: managed by Runway, and which mapping they belong to.
fn labels(namespace: &str, domain: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (MAPPING_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
        (MAPPING_LABEL.to_owned(), bounded(domain, MAX_LABEL_VALUE)),
    ])
}

/// Label selector of the routes of one mapping.
fn mapping_selector(mapping: &DomainMapping) -> String {
    labels(&mapping.namespace().unwrap_or_default(), &mapping.domain())
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Label selector of every route made for a mapping (not the chart's own routes, which Helm manages).
fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{MAPPING_LABEL}")
}

/// Whether `mapping` gets routes: its namespace holds the domain, its Service exists, and it is not being deleted.
/// Whether the Service is Ready does not matter: a failing Service keeps its route, so that clients get the
/// activator's 503 naming the failure rather than the ingress's 404.
pub(super) fn routable(mapping: &DomainMapping) -> bool {
    let holds = |type_: &str| {
        mapping
            .status
            .iter()
            .flat_map(|status| &status.conditions)
            .any(|c| c.type_ == type_ && c.status == ConditionStatus::True.as_str())
    };
    mapping.metadata.deletion_timestamp.is_none() && holds(DOMAIN_CLAIMED) && holds(REFERENCE_RESOLVED)
}

/// The routes `mapping` should have, given its status: one per enabled kind, or none.
pub(super) fn desired_routes(mapping: &DomainMapping, settings: &RouteSettings) -> Vec<Route> {
    if !routable(mapping) {
        return vec![];
    }
    let (namespace, domain) = (mapping.namespace().unwrap_or_default(), mapping.domain());
    let metadata = ObjectMeta {
        name: Some(route_name(&namespace, &domain)),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(&namespace, &domain)),
        ..ObjectMeta::default()
    };
    let http_route = settings.gateway.as_ref().map(|parent_refs| {
        let spec = json!({
            "parentRefs": parent_refs,
            "hostnames": [domain],
            "rules": [{"backendRefs": [{"name": settings.service, "port": settings.port}]}],
        });
        route(RouteKind::HttpRoute, metadata.clone(), spec)
    });
    let ingress = settings
        .ingress
        .as_ref()
        .map(|ingress| ingress_route(metadata.clone(), &domain, ingress, settings));
    http_route.into_iter().chain(ingress).collect()
}

fn ingress_route(mut metadata: ObjectMeta, domain: &str, ingress: &IngressSettings, settings: &RouteSettings) -> Route {
    if !ingress.annotations.is_empty() {
        metadata.annotations = Some(ingress.annotations.clone());
    }
    let backend = json!({"service": {"name": settings.service, "port": {"number": settings.port}}});
    let mut spec = json!({
        "rules": [{"host": domain, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
    });
    if let Some(class_name) = &ingress.class_name {
        spec["ingressClassName"] = json!(class_name);
    }
    if ingress.tls {
        spec["tls"] = json!([{"hosts": [domain], "secretName": tls_secret_name(domain)}]);
    }
    route(RouteKind::Ingress, metadata, spec)
}

fn route(kind: RouteKind, metadata: ObjectMeta, spec: Value) -> Route {
    let mut object = DynamicObject::new("", &kind.api_resource()).data(json!({ "spec": spec }));
    object.metadata = metadata;
    Route { kind, object }
}

/// Of the `existing` routes made for mappings, those none of `mappings` should have: their mapping is gone, lost
/// its claim or its Service, is being deleted, or their kind is turned off.
pub(super) fn stale_routes(existing: &[RouteId], mappings: &[DomainMapping], settings: &RouteSettings) -> Vec<RouteId> {
    let desired: BTreeSet<RouteId> = mappings
        .iter()
        .flat_map(|mapping| desired_routes(mapping, settings))
        .map(|route| route.id())
        .collect();
    existing.iter().filter(|id| !desired.contains(id)).cloned().collect()
}

/// Puts `mapping`'s routes in place as its status says, and deletes the ones it should not have (all of them when it
/// is being deleted).
pub(super) async fn sync(
    client: &Client,
    mapping: &DomainMapping,
    settings: &RouteSettings,
) -> Result<(), kube::Error> {
    for route in desired_routes(mapping, settings) {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api(client, settings, route.kind)
            .patch(&route.object.name_any(), &params, &Patch::Apply(&route.object))
            .await?;
    }
    let existing = list(client, settings, &mapping_selector(mapping)).await?;
    for stale in stale_routes(&existing, std::slice::from_ref(mapping), settings) {
        delete(client, settings, &stale).await?;
    }
    Ok(())
}

/// Every `SWEEP_PERIOD`, deletes the routes that no DomainMapping should have: behind the finalizer, this catches a
/// mapping removed while it had none (its finalizer taken off by hand) and routes of a kind turned off since.
pub(super) async fn sweep(client: Client, settings: RouteSettings) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    loop {
        tick.tick().await;
        if let Err(error) = sweep_once(&client, &settings).await {
            warn!(%error, "sweeping the routes of mapped domains");
        }
    }
}

async fn sweep_once(client: &Client, settings: &RouteSettings) -> Result<(), kube::Error> {
    // The routes before the mappings: a route listed was made from a status at least as old as the one listed
    // after it, so a route just made for a mapping just claimed is not taken for stale.
    let existing = list(client, settings, &managed_selector()).await?;
    if existing.is_empty() {
        return Ok(());
    }
    let mappings = Api::<DomainMapping>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    for stale in stale_routes(&existing, &mappings, settings) {
        info!(kind = ?stale.kind, name = %stale.name, "deleting the route of a mapped domain that routes nothing");
        delete(client, settings, &stale).await?;
    }
    Ok(())
}

fn api(client: &Client, settings: &RouteSettings, kind: RouteKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &settings.namespace, &kind.api_resource())
}

/// The routes of both kinds that match `selector`. A cluster without the Gateway API has no HTTPRoutes, rather
/// than an error: it must work with the gateway turned off.
async fn list(client: &Client, settings: &RouteSettings, selector: &str) -> Result<Vec<RouteId>, kube::Error> {
    let mut routes = vec![];
    for kind in RouteKind::ALL {
        match api(client, settings, kind)
            .list_metadata(&ListParams::default().labels(selector))
            .await
        {
            Ok(list) => routes.extend(list.items.iter().map(|o| RouteId {
                kind,
                name: o.name_any(),
            })),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(routes)
}

async fn delete(client: &Client, settings: &RouteSettings, route: &RouteId) -> Result<(), kube::Error> {
    match api(client, settings, route.kind)
        .delete(&route.name, &DeleteParams::default())
        .await
    {
        Err(error) if !is_not_found(&error) => Err(error),
        _ => Ok(()),
    }
}

/// By the code: an API the cluster lacks answers 404 in plain text, without the NotFound reason of a JSON status.
fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
    use runway_api::domain_mapping::{DomainMappingSpec, DomainMappingStatus, ServiceReference};

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    /// A mapping of `domain` in `namespace` with DomainClaimed and ReferenceResolved as given.
    fn mapping(namespace: &str, domain: &str, claimed: &str, resolved: &str) -> DomainMapping {
        let mut dm = DomainMapping::new(
            domain,
            DomainMappingSpec {
                reference: ServiceReference { name: "hello".into() },
            },
        );
        dm.metadata.namespace = Some(namespace.into());
        dm.status = Some(DomainMappingStatus {
            conditions: vec![
                condition(DOMAIN_CLAIMED, claimed),
                condition(REFERENCE_RESOLVED, resolved),
                condition("Ready", "False"),
            ],
            ..Default::default()
        });
        dm
    }

    fn ready(namespace: &str, domain: &str) -> DomainMapping {
        mapping(namespace, domain, "True", "True")
    }

    fn settings() -> RouteSettings {
        RouteSettings {
            namespace: "runway-system".into(),
            service: "runway-activator".into(),
            port: 80,
            gateway: Some(json!([{"name": "runway", "namespace": "traefik"}])),
            ingress: Some(IngressSettings {
                class_name: Some("traefik".into()),
                annotations: BTreeMap::from([("cert-manager.io/cluster-issuer".into(), "letsencrypt-http01".into())]),
                tls: true,
            }),
        }
    }

    fn id(kind: RouteKind, name: &str) -> RouteId {
        RouteId {
            kind,
            name: name.into(),
        }
    }

    fn is_label_value(value: &str) -> bool {
        value.len() <= MAX_LABEL_VALUE
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }

    #[test]
    fn a_ready_mapping_gets_an_httproute_to_the_activator_through_the_parent_refs() {
        let routes = desired_routes(&ready("shop", "api.example.org"), &settings());
        let route = &routes[0];
        assert_eq!(route.kind, RouteKind::HttpRoute);
        let json = serde_json::to_value(&route.object).unwrap();
        assert_eq!(json["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(json["kind"], "HTTPRoute");
        assert_eq!(json["metadata"]["name"], "dm-shop.api.example.org");
        assert_eq!(json["metadata"]["namespace"], "runway-system");
        assert_eq!(
            json["metadata"]["labels"],
            json!({
                "app.kubernetes.io/managed-by": "runway",
                "serving.runway.dev/domain-mapping-namespace": "shop",
                "serving.runway.dev/domain-mapping": "api.example.org",
            })
        );
        assert_eq!(
            json["spec"],
            json!({
                "parentRefs": [{"name": "runway", "namespace": "traefik"}],
                "hostnames": ["api.example.org"],
                "rules": [{"backendRefs": [{"name": "runway-activator", "port": 80}]}],
            })
        );
        assert!(json["metadata"].get("annotations").is_none(), "{json}");
    }

    #[test]
    fn a_ready_mapping_gets_an_ingress_with_the_class_annotations_and_its_own_tls_secret() {
        let routes = desired_routes(&ready("shop", "api.example.org"), &settings());
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].kind, RouteKind::Ingress);
        // The JSON is a valid Ingress: it reads back into the typed object.
        let ingress: Ingress = serde_json::from_value(serde_json::to_value(&routes[1].object).unwrap()).unwrap();
        assert_eq!(ingress.metadata.name.as_deref(), Some("dm-shop.api.example.org"));
        assert_eq!(
            ingress
                .annotations()
                .get("cert-manager.io/cluster-issuer")
                .map(String::as_str),
            Some("letsencrypt-http01")
        );
        let spec = ingress.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("traefik"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(tls.hosts.as_deref(), Some(&["api.example.org".to_owned()][..]));
        assert_eq!(tls.secret_name.as_deref(), Some("api.example.org-tls"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("api.example.org"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!((path.path.as_deref(), path.path_type.as_str()), (Some("/"), "Prefix"));
        let service = path.backend.service.as_ref().unwrap();
        assert_eq!(service.name, "runway-activator");
        assert_eq!(service.port.as_ref().and_then(|p| p.number), Some(80));
    }

    #[test]
    fn an_ingress_without_class_annotations_or_tls_leaves_them_out() {
        let settings = RouteSettings {
            gateway: None,
            ingress: Some(IngressSettings::default()),
            ..settings()
        };
        let routes = desired_routes(&ready("shop", "api.example.org"), &settings);
        assert_eq!(routes.len(), 1);
        let json = serde_json::to_value(&routes[0].object).unwrap();
        assert!(json["metadata"].get("annotations").is_none(), "{json}");
        for field in ["ingressClassName", "tls"] {
            assert!(json["spec"].get(field).is_none(), "{field}: {json}");
        }
    }

    #[test]
    fn only_a_held_claim_with_its_service_found_and_not_being_deleted_routes() {
        let settings = settings();
        assert!(desired_routes(&mapping("other", "api.example.org", "False", "True"), &settings).is_empty());
        assert!(desired_routes(&mapping("shop", "api.example.org", "True", "False"), &settings).is_empty());
        let mut no_status = ready("shop", "api.example.org");
        no_status.status = None;
        assert!(desired_routes(&no_status, &settings).is_empty());
        let mut deleting = ready("shop", "api.example.org");
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(desired_routes(&deleting, &settings).is_empty());
    }

    #[test]
    fn no_kind_enabled_makes_no_routes() {
        let off = RouteSettings {
            gateway: None,
            ingress: None,
            ..settings()
        };
        assert!(!off.enabled());
        assert!(desired_routes(&ready("shop", "api.example.org"), &off).is_empty());
    }

    #[test]
    fn stale_routes_are_those_of_gone_refused_or_turned_off_mappings() {
        let existing = [
            id(RouteKind::HttpRoute, "dm-shop.api.example.org"),
            id(RouteKind::Ingress, "dm-shop.api.example.org"),
            id(RouteKind::HttpRoute, "dm-gone.old.example.org"),
            id(RouteKind::HttpRoute, "dm-other.api.example.org"),
        ];
        let mappings = [
            ready("shop", "api.example.org"),
            mapping("other", "api.example.org", "False", "True"),
        ];
        assert_eq!(
            stale_routes(&existing, &mappings, &settings()),
            [
                id(RouteKind::HttpRoute, "dm-gone.old.example.org"),
                id(RouteKind::HttpRoute, "dm-other.api.example.org"),
            ]
        );
        let gateway_only = RouteSettings {
            ingress: None,
            ..settings()
        };
        assert_eq!(
            stale_routes(&existing[..2], &mappings, &gateway_only),
            [id(RouteKind::Ingress, "dm-shop.api.example.org")]
        );
    }

    #[test]
    fn names_tell_namespaces_and_domains_apart() {
        assert_ne!(route_name("a-b", "c.x.org"), route_name("a", "b-c.x.org"));
        assert_ne!(route_name("a", "b.c-x.org"), route_name("a", "b-c.x.org"));
    }

    #[test]
    fn long_domains_get_bounded_unique_names_and_label_values() {
        let label = "a".repeat(63);
        let domain = format!("{label}.{label}.{label}.{}.example.org", "b".repeat(49));
        assert_eq!(domain.len(), 253);
        let other = format!("{label}.{label}.{label}.{}.example.com", "b".repeat(49));
        let name = route_name(&"n".repeat(63), &domain);
        assert_eq!(name.len(), MAX_NAME);
        assert_ne!(name, route_name(&"n".repeat(63), &other));
        assert!(name.starts_with("dm-nnn"), "{name}");
        let secret = tls_secret_name(&domain);
        assert!(
            secret.len() <= MAX_NAME && secret != tls_secret_name(&other),
            "{secret}"
        );
        let labels = labels("shop", &domain);
        let value = &labels[MAPPING_LABEL];
        assert!(is_label_value(value), "{value}");
        assert_ne!(value, &self::labels("shop", &other)[MAPPING_LABEL]);
        // A start cut right after a dot loses the dot: `.-` may not appear in a name.
        let cut = bounded(&format!("{}.{}", "a".repeat(45), "b".repeat(20)), MAX_LABEL_VALUE);
        assert!(is_label_value(&cut) && !cut.contains(".-"), "{cut}");
        assert_eq!(bounded("api.example.org", MAX_LABEL_VALUE), "api.example.org");
    }

    #[test]
    fn a_missing_api_counts_as_not_found_like_a_missing_object() {
        let error = |code, reason| {
            let status = kube::core::Status::failure("404 page not found", reason).with_code(code);
            kube::Error::Api(status.boxed())
        };
        assert!(is_not_found(&error(404, "Failed to parse error data")));
        assert!(is_not_found(&error(404, "NotFound")));
        assert!(!is_not_found(&error(403, "Forbidden")));
    }

    #[test]
    fn the_hash_is_fnv1a_64() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn selectors_pick_one_mapping_or_every_mapping_route() {
        assert_eq!(
            mapping_selector(&ready("shop", "api.example.org")),
            "app.kubernetes.io/managed-by=runway,serving.runway.dev/domain-mapping=api.example.org,\
             serving.runway.dev/domain-mapping-namespace=shop"
        );
        assert_eq!(
            managed_selector(),
            "app.kubernetes.io/managed-by=runway,serving.runway.dev/domain-mapping"
        );
    }
}
