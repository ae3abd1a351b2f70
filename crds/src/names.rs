//! Names and labels shared by the operator and the activator: how a Service is keyed, what its derived objects are
//! called and how they are found.

use std::fmt;

use kube::ResourceExt;

use crate::service::{Service, Visibility};

/// A Runway Service, by namespace and name: how both binaries key what they keep per Service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Service object (one read from the API server always has a namespace).
    pub fn of(service: &Service) -> Self {
        ServiceKey::new(service.namespace().unwrap_or_default(), service.name_any())
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Label on every object derived from a Service, and on its pods: the Service's name.
pub const SERVICE_LABEL: &str = "serving.runway.dev/service";
/// `app.kubernetes.io/managed-by` value on every derived object.
pub const MANAGED_BY: &str = "runway";
/// The well-known managed-by label key.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The API group of Runway's resources.
pub const GROUP: &str = "serving.runway.dev";
/// Response header set when a request waited for its Service to scale up from zero.
pub const COLD_START_HEADER: &str = "x-runway-cold-start";

/// Name of the Deployment that runs a Service's pods.
pub fn deployment_name(service: &str) -> String {
    service.to_owned()
}

/// Name of the headless Kubernetes Service that selects a Service's pods; the activator reads its EndpointSlices.
pub fn pods_service_name(service: &str) -> String {
    format!("{service}-pods")
}

/// Name of the Kubernetes Service that in-cluster clients call: an ExternalName to the activator.
pub fn route_service_name(service: &str) -> String {
    service.to_owned()
}

/// The Service's URL: under the domain, or its cluster DNS name when only the cluster may call it.
pub fn url(service: &str, namespace: &str, domain: &str, visibility: Visibility) -> String {
    match visibility {
        Visibility::External => format!("http://{service}.{namespace}.{domain}"),
        Visibility::ClusterLocal => format!("http://{service}.{namespace}.svc.cluster.local"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_of_the_longest_valid_name_are_dns_labels() {
        let longest = "a".repeat(crate::service::MAX_NAME_LENGTH);
        for derived in [
            deployment_name(&longest),
            pods_service_name(&longest),
            route_service_name(&longest),
        ] {
            assert!(derived.len() <= 63, "{derived} is longer than a DNS label");
        }
    }

    #[test]
    fn a_key_is_namespace_and_name_and_shows_as_a_path() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}}
        }))
        .unwrap();
        assert_eq!(ServiceKey::of(&service), ServiceKey::new("default", "hello"));
        assert_eq!(ServiceKey::of(&service).to_string(), "default/hello");
        service.metadata.namespace = None;
        assert_eq!(ServiceKey::of(&service), ServiceKey::new("", "hello"));
    }

    #[test]
    fn url_is_name_namespace_domain_or_the_cluster_name() {
        assert_eq!(
            url("hello", "default", "example.com", Visibility::External),
            "http://hello.default.example.com"
        );
        assert_eq!(
            url("hello", "default", "example.com", Visibility::ClusterLocal),
            "http://hello.default.svc.cluster.local"
        );
    }
}
