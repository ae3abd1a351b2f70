//! Names and labels shared by the operator and the activator: how a Service is keyed, what its derived objects are
//! called and how they are found.

use std::fmt;

use kube::ResourceExt;

use crate::revision::Revision;
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

/// A Revision, by namespace and name: what the data path and the autoscaler keep per revision (slots, queue, load,
/// scale). A revision's name is unique in its namespace, whatever its Service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    pub namespace: String,
    pub name: String,
}

impl RevisionKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RevisionKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Revision object.
    pub fn of(revision: &Revision) -> Self {
        RevisionKey::new(revision.namespace().unwrap_or_default(), revision.name_any())
    }
}

impl fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Label on every object derived from a Service, and on its pods: the Service's name.
pub const SERVICE_LABEL: &str = "serving.runway.dev/service";
/// Label on a Revision, on the objects derived from it and on its pods: the revision's name.
pub const REVISION_LABEL: &str = "serving.runway.dev/revision";
/// Label on a Revision: the Service's metadata.generation it was created from.
pub const GENERATION_LABEL: &str = "serving.runway.dev/generation";
/// Label on a tag's route Service: the tag.
pub const TAG_LABEL: &str = "serving.runway.dev/tag";
/// Annotation on a pod whose cgroup the node agent (runway-node) froze: `{instance}/{sequence}`, the agent instance
/// that froze it (16 hex digits, new at each agent start) and that instance's count of freezes. Set before the pod is
/// frozen and removed after it is thawed, so a frozen pod always carries it; an agent removes at start every mark
/// that is not its own.
pub const FROZEN_ANNOTATION: &str = "serving.runway.dev/frozen";
/// Response header naming the revision that answered.
pub const REVISION_HEADER: &str = "x-runway-revision";
/// `app.kubernetes.io/managed-by` value on every derived object.
pub const MANAGED_BY: &str = "runway";
/// The well-known managed-by label key.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The API group of Runway's resources.
pub const GROUP: &str = "serving.runway.dev";
/// Response header set when a request waited for its Service to scale up from zero.
pub const COLD_START_HEADER: &str = "x-runway-cold-start";

/// Name of the revision created from a Service's spec at `generation`, unless its template names it.
pub fn revision_name(service: &str, generation: i64) -> String {
    format!("{service}-{generation:05}")
}

/// Name of the Deployment that runs a revision's pods.
pub fn deployment_name(revision: &str) -> String {
    revision.to_owned()
}

/// Name of the NetworkPolicy that admits connections to a revision's pods only from the activators (and the probes'
/// sources).
pub fn network_policy_name(revision: &str) -> String {
    revision.to_owned()
}

/// Name of the headless Kubernetes Service that selects a revision's pods; the activator reads its EndpointSlices.
pub fn pods_service_name(revision: &str) -> String {
    format!("{revision}-pods")
}

/// Name of the Kubernetes Service that in-cluster clients call for a tag: an ExternalName to the activator. It is
/// also the first label of the tag's hosts.
pub fn tag_route_name(tag: &str, service: &str) -> String {
    format!("{tag}-{service}")
}

/// A tag's URL: as the Service's, with `{tag}-{service}` in place of the Service's name.
pub fn tag_url(tag: &str, service: &str, namespace: &str, domain: &str, visibility: Visibility) -> String {
    url(&tag_route_name(tag, service), namespace, domain, visibility)
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

/// The audiences a token must be for to invoke an Authorized Service: its URL under the domain and its cluster URL,
/// whatever its visibility, so that one token works at both entry points and a caller need not know which URL
/// `status.url` shows. A token for another Service (or for the API server) has neither and is refused.
pub fn invoke_audiences(service: &str, namespace: &str, domain: &str) -> [String; 2] {
    [
        url(service, namespace, domain, Visibility::External),
        url(service, namespace, domain, Visibility::ClusterLocal),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_of_the_longest_valid_name_are_dns_labels() {
        let longest = "a".repeat(crate::service::MAX_NAME_LENGTH);
        let revision = revision_name(&longest, 99_999);
        assert!(revision.len() <= crate::revision::MAX_NAME_LENGTH, "{revision}");
        for derived in [
            deployment_name(&revision),
            network_policy_name(&revision),
            pods_service_name(&revision),
            pods_service_name(&"r".repeat(crate::revision::MAX_NAME_LENGTH)),
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
    fn a_revision_is_named_after_its_service_and_generation() {
        assert_eq!(revision_name("hello", 3), "hello-00003");
        assert_eq!(revision_name("hello", 123_456), "hello-123456");
    }

    #[test]
    fn a_tag_url_puts_the_tag_before_the_service_name() {
        assert_eq!(
            tag_url("canary", "hello", "default", "example.com", Visibility::External),
            "http://canary-hello.default.example.com"
        );
        assert_eq!(
            tag_url("canary", "hello", "default", "example.com", Visibility::ClusterLocal),
            "http://canary-hello.default.svc.cluster.local"
        );
    }

    #[test]
    fn a_service_is_invoked_with_a_token_for_either_of_its_urls() {
        assert_eq!(
            invoke_audiences("hello", "default", "example.com"),
            [
                "http://hello.default.example.com".to_owned(),
                "http://hello.default.svc.cluster.local".to_owned()
            ]
        );
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
