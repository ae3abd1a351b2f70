//! The `DomainMapping` custom resource: a custom domain (its name) routed to a Runway Service in its namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A custom domain for a Runway Service: `metadata.name` is the domain (e.g. `api.example.org`), served by the
/// activator's external entry point. One namespace may claim a domain: the oldest claim wins.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "serving.runway.dev",
    version = "v1alpha1",
    kind = "DomainMapping",
    plural = "domainmappings",
    singular = "domainmapping",
    shortname = "rdm",
    category = "runway",
    namespaced,
    status = "DomainMappingStatus",
    derive = "PartialEq",
    doc = "A custom domain (metadata.name) for a Runway Service in the same namespace.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.ref.name"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("self.metadata.name.size() <= 253 && self.metadata.name.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?[.])+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')")
        .message("metadata.name: must be a fully qualified host name such as api.example.org: lower-case DNS labels separated by dots, at least two of them, the last starting with a letter; wildcards are not allowed"),
)]
#[serde(rename_all = "camelCase")]
pub struct DomainMappingSpec {
    /// The Runway Service this domain routes to.
    #[serde(rename = "ref")]
    pub reference: ServiceReference,
}

/// A Runway Service in the DomainMapping's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServiceReference {
    /// The Service's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// What the operator observed of the DomainMapping.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainMappingStatus {
    /// Where the Service answers on this domain: http://{domain}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// DomainClaimed (this namespace holds the domain; False with reason DomainAlreadyClaimed when an older
    /// DomainMapping in another namespace does), ReferenceResolved (the Service exists; False with reason
    /// ServiceNotFound) and Ready (both, and the Service is Ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// This namespace holds the domain.
pub const DOMAIN_CLAIMED: &str = "DomainClaimed";
/// The referenced Service exists.
pub const REFERENCE_RESOLVED: &str = "ReferenceResolved";
/// Reason of DomainClaimed=False: another namespace's DomainMapping for the same domain is older.
pub const DOMAIN_ALREADY_CLAIMED: &str = "DomainAlreadyClaimed";
/// Reason of ReferenceResolved=False.
pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
/// Label on the routes (HTTPRoute, Ingress) the operator makes for a mapped domain: the DomainMapping's namespace.
pub const MAPPING_NAMESPACE_LABEL: &str = "serving.runway.dev/domain-mapping-namespace";
/// Label on those routes: the DomainMapping's name (the domain), shortened with a hash when longer than the 63
/// characters a label value may have.
pub const MAPPING_LABEL: &str = "serving.runway.dev/domain-mapping";

impl DomainMapping {
    /// The domain: the object's name.
    pub fn domain(&self) -> String {
        self.name_any()
    }

    /// Whether the operator found this namespace to hold the domain: the activator routes only such mappings.
    pub fn is_claimed(&self) -> bool {
        self.status.as_ref().is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == DOMAIN_CLAIMED && c.status == "True")
        })
    }
}

/// Of the DomainMappings for one domain, the one that holds it: the one that already does (its status says so),
/// else the oldest, ties broken by namespace (names are the same). A claim once granted is never taken away by a
/// newer one, also not by one created within the same second (creation times have one-second resolution). Both
/// binaries agree on the claim through the status the operator writes from this rule.
pub fn claim_holder<'a>(claims: impl IntoIterator<Item = &'a DomainMapping>) -> Option<&'a DomainMapping> {
    claims.into_iter().min_by(|a, b| {
        let created = |dm: &DomainMapping| dm.metadata.creation_timestamp.clone().map(|t| t.0);
        b.is_claimed()
            .cmp(&a.is_claimed())
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| a.namespace().cmp(&b.namespace()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn claim(namespace: &str, created_s: i64) -> DomainMapping {
        let mut dm = DomainMapping::new(
            "api.example.org",
            DomainMappingSpec {
                reference: ServiceReference { name: "hello".into() },
            },
        );
        dm.metadata.namespace = Some(namespace.into());
        dm.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created_s).unwrap()));
        dm
    }

    #[test]
    fn the_oldest_claim_holds_the_domain_then_the_namespace_decides() {
        let (late, early, tie) = (claim("a", 20), claim("b", 10), claim("c", 10));
        let holder = claim_holder([&late, &tie, &early]).unwrap();
        assert_eq!(holder.namespace().as_deref(), Some("b"));
        assert!(claim_holder(std::iter::empty()).is_none());
    }

    #[test]
    fn a_granted_claim_keeps_the_domain_against_a_claim_of_the_same_second() {
        let (mut holding, newcomer) = (claim("z", 10), claim("a", 10));
        holding.status = Some(DomainMappingStatus {
            conditions: vec![Condition {
                type_: DOMAIN_CLAIMED.into(),
                status: "True".into(),
                reason: "Claimed".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        });
        assert_eq!(
            claim_holder([&newcomer, &holding]).unwrap().namespace().as_deref(),
            Some("z")
        );
        assert_eq!(
            claim_holder([&newcomer, &claim("z", 10)])
                .unwrap()
                .namespace()
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn the_ref_field_is_spelled_ref() {
        let dm = claim("a", 1);
        let json = serde_json::to_value(&dm.spec).unwrap();
        assert_eq!(json, serde_json::json!({"ref": {"name": "hello"}}));
    }
}
