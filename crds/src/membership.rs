//! Which activators there are, as Kubernetes lists them in the EndpointSlices of the activators' own Service, and
//! what an EndpointSlice's conditions say of an endpoint. The activator shares its slots with the ready activators
//! and trusts requests forwarded by any listed one; the autoscaler reads load from every listed one (a draining
//! activator may still hold requests). Both binaries read the slices by these rules, so they are written once, here.

use std::collections::BTreeSet;

use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};

/// Label with which Kubernetes names an EndpointSlice's Service.
pub const SLICE_SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label selector of the EndpointSlices of the Kubernetes Service `service` (in the namespace watched).
pub fn slices_of(service: &str) -> String {
    format!("{SLICE_SERVICE_NAME_LABEL}={service}")
}

/// Whether an endpoint is ready: an absent condition counts as ready, as the API documents.
pub fn is_ready(conditions: Option<&EndpointConditions>) -> bool {
    conditions.and_then(|c| c.ready).unwrap_or(true)
}

/// Whether an endpoint is shutting down: an absent condition counts as not terminating.
pub fn is_terminating(conditions: Option<&EndpointConditions>) -> bool {
    conditions.and_then(|c| c.terminating).unwrap_or(false)
}

/// Every address the activators' slices list, ready or not, terminating or not, each once and in order.
pub fn listed_addresses<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> BTreeSet<&'a str> {
    addresses(slices, |_| true)
}

/// The addresses of the activators listed as ready and not terminating: those that share the slots.
pub fn ready_addresses<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> BTreeSet<&'a str> {
    addresses(slices, |c| is_ready(c) && !is_terminating(c))
}

fn addresses<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    keep: impl Fn(Option<&EndpointConditions>) -> bool,
) -> BTreeSet<&'a str> {
    slices
        .into_iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| keep(e.conditions.as_ref()))
        .flat_map(|e| &e.addresses)
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A slice listing `endpoints` (as the API writes them).
    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({"addressType": "IPv4", "endpoints": endpoints})).unwrap()
    }

    #[test]
    fn peers_are_ready_and_not_terminating() {
        let s = slice(json!([
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.1"], "conditions": {}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
            {"addresses": ["10.0.0.4"], "conditions": {"ready": true, "terminating": true}},
        ]));
        let ips: Vec<String> = ready_addresses([&s]).iter().map(ToString::to_string).collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"]);
        let all: Vec<String> = listed_addresses([&s]).iter().map(ToString::to_string).collect();
        assert_eq!(all, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    }

    #[test]
    fn addresses_include_every_endpoint_of_every_slice() {
        let slices = [
            slice(json!([{"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.1"]}])),
            slice(json!([{"addresses": ["10.0.0.3"]}])),
        ];
        let got = listed_addresses(&slices);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
    }

    #[test]
    fn the_selector_names_the_service() {
        assert_eq!(
            slices_of("runway-activator"),
            "kubernetes.io/service-name=runway-activator"
        );
    }
}
