//! DomainMappings (custom domains for a Service) and the HTTPRoutes the operator makes for them where the chart
//! turns the Gateway on.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use runway_api::domain_mapping::{DomainMapping, MAPPING_NAMESPACE_LABEL};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::runway::{NAMESPACE, READY};
use crate::wait::wait_until;

/// A DomainMapping of `domain` to Service `service` (of the namespace it is created in).
pub fn domain_mapping(domain: &str, service: &str) -> anyhow::Result<DomainMapping> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "DomainMapping",
        "metadata": {"name": domain},
        "spec": {"ref": {"name": service}},
    }))?)
}

/// The DomainMapping's condition `type_` as `status/reason`, or what is missing.
pub fn mapping_condition(dm: &DomainMapping, type_: &str) -> String {
    dm.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map_or_else(
            || format!("no {type_} condition"),
            |c| format!("{}/{}", c.status, c.reason),
        )
}

/// Waits until the DomainMapping `domain` of `api` has its condition `type_` starting with `want` (`status` or
/// `status/reason`), and returns it.
pub async fn wait_mapping(
    api: &Api<DomainMapping>,
    domain: &str,
    type_: &str,
    want: &str,
) -> anyhow::Result<DomainMapping> {
    let ns = api.get(domain).await?.metadata.namespace.unwrap_or_default();
    Ok(wait_until(format!("{ns}/{domain}: {type_}={want}"), READY, || async {
        let dm = api.get(domain).await.map_err(|e| e.to_string())?;
        let seen = mapping_condition(&dm, type_);
        if seen.starts_with(want) { Ok(dm) } else { Err(seen) }
    })
    .await?)
}

/// The HTTPRoutes the operator made in the release namespace for the DomainMappings of namespace `ns`, each as its
/// name and spec.
pub async fn mapped_http_routes(cluster: &Cluster, ns: &str) -> Result<Vec<(String, Value)>, String> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    let routes: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource);
    let selector = format!("{MAPPING_NAMESPACE_LABEL}={ns}");
    let list = routes
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("listing HTTPRoutes: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|route| (route.metadata.name.unwrap_or_default(), route.data["spec"].clone()))
        .collect())
}

/// Waits until `ns`'s mappings have `want` HTTPRoutes (0 or 1), the one for `domain` attached to the local cluster's
/// Gateway and sending to the activator's external Service; returns the route's name.
pub async fn wait_mapped_routes(cluster: &Cluster, ns: &str, domain: &str, want: usize) -> anyhow::Result<String> {
    let what = format!("{want} HTTPRoute(s) for the DomainMappings of {ns}, for {domain} to runway-activator");
    Ok(wait_until(what, READY, || async {
        let routes = mapped_http_routes(cluster, ns).await?;
        let seen = format!("{routes:?}");
        match &routes[..] {
            [] if want == 0 => Ok(String::new()),
            [(name, spec)] if want == 1 && routes_domain_to_the_activator(spec, domain) => Ok(name.clone()),
            _ => Err(seen),
        }
    })
    .await?)
}

fn routes_domain_to_the_activator(spec: &Value, domain: &str) -> bool {
    let parent = &spec["parentRefs"][0];
    let backend = &spec["rules"][0]["backendRefs"][0];
    spec["hostnames"] == json!([domain])
        && (parent["name"] == "runway" && parent["namespace"] == "traefik")
        && (backend["name"] == "runway-activator" && backend["port"] == 80)
}

/// Whether the installed operator makes HTTPRoutes for mapped domains (the chart's gateway.enabled).
pub async fn gateway_routes_on(cluster: &Cluster) -> anyhow::Result<bool> {
    let operator = Api::<Deployment>::namespaced(cluster.client.clone(), NAMESPACE)
        .get("runway-operator")
        .await?;
    let args = operator
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    Ok(args.iter().any(|arg| arg.starts_with("--gateway-parent-refs=")))
}
