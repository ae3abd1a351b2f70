//! Network isolation of a revision's pods: the NetworkPolicy `{revision}` that admits connections to them only from
//! Runway's activators and from the sources of the kubelet's probes, built by a pure function.
//!
//! NetworkPolicies add up: a Service's own policy selecting its pods (label `serving.runway.dev/service`) admits
//! more sources beside these, such as a metrics scraper.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Resource, ResourceExt};
use runway_api::cidr::Cidr;
use runway_api::{Revision, names};

use super::desired::{meta, revision_labels, selector};

/// The label Kubernetes gives every namespace: its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Whether revisions' pods are isolated (`--workload-network-policy`), and from whom they take connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetworkIsolation {
    /// Each revision has its NetworkPolicy, admitting these sources.
    Enforce(Admitted),
    /// No revision has one: the operator deletes those it made.
    Off,
}

/// The sources a revision's pods take connections from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The activators' namespace.
    pub(crate) activator_namespace: String,
    /// Labels every activator pod has (and no other pod of that namespace).
    pub(crate) activator_labels: BTreeMap<String, String>,
    /// Where the kubelet's probes come from, when the network plugin does not admit the node's own traffic anyway
    /// (NetworkPolicy has no peer for "the node"; many plugins always admit it, some do not).
    pub(crate) probe_sources: Vec<Cidr>,
}

/// The NetworkPolicy of `revision` of Service `service`, controlled by the revision: it selects the revision's pods
/// and admits ingress from the activator pods and the probe sources only. Egress is left alone.
///
/// On any port: the activator connects only to the serving port, but the kubelet's probes may use others (a liveness
/// port, named ports of any container), and the sources are narrow already.
pub(crate) fn network_policy(service: &str, revision: &Revision, admitted: &Admitted) -> NetworkPolicy {
    let name = revision.name_any();
    let activators = NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_owned(),
            admitted.activator_namespace.clone(),
        )]))),
        pod_selector: Some(match_labels(admitted.activator_labels.clone())),
        ip_block: None,
    };
    let probes = admitted.probe_sources.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            except: None,
        }),
        ..NetworkPolicyPeer::default()
    });
    NetworkPolicy {
        metadata: meta(
            names::network_policy_name(&name),
            revision.namespace(),
            revision_labels(service, &name),
            revision.controller_owner_ref(&()),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(selector(&name))),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(std::iter::once(activators).chain(probes).collect()),
                ports: None,
            }]),
            egress: None,
        }),
    }
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn revision() -> Revision {
        let mut revision = Revision::new(
            "hello-00002",
            serde_json::from_value(json!({
                "template": {"spec": {"containers": [{"name": "app"}]}},
                "timeoutSeconds": 300,
                "progressDeadlineSeconds": 120,
            }))
            .unwrap(),
        );
        revision.metadata.namespace = Some("default".into());
        revision.metadata.uid = Some("rev-uid".into());
        revision
    }

    fn admitted(probe_sources: &str) -> Admitted {
        Admitted {
            activator_namespace: "runway-system".into(),
            activator_labels: BTreeMap::from([("app.kubernetes.io/name".into(), "runway-activator".into())]),
            probe_sources: probe_sources.parse::<runway_api::cidr::CidrList>().unwrap().0,
        }
    }

    #[test]
    fn the_policy_selects_the_revisions_pods_and_admits_only_the_activators() {
        let policy = network_policy("hello", &revision(), &admitted(""));
        let meta = &policy.metadata;
        assert_eq!(
            (meta.name.as_deref(), meta.namespace.as_deref()),
            (Some("hello-00002"), Some("default"))
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Revision", "rev-uid", Some(true))
        );
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(
            (
                labels[names::SERVICE_LABEL].as_str(),
                labels[names::REVISION_LABEL].as_str(),
                labels[names::MANAGED_BY_LABEL].as_str()
            ),
            ("hello", "hello-00002", "runway")
        );
        assert_eq!(
            serde_json::to_value(policy.spec).unwrap(),
            json!({
                "podSelector": {"matchLabels": {"serving.runway.dev/revision": "hello-00002"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "runway-system"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "runway-activator"}},
                }]}],
            }),
            "one peer: both selectors, so activator pods of that namespace only; no ports"
        );
    }

    #[test]
    fn probe_sources_are_admitted_as_ip_blocks() {
        let policy = network_policy("hello", &revision(), &admitted("10.88.0.1/32, fd00::/64"));
        let from = serde_json::to_value(&policy.spec.unwrap().ingress.unwrap()[0].from).unwrap();
        assert_eq!(from.as_array().unwrap().len(), 3);
        assert_eq!(from[1], json!({"ipBlock": {"cidr": "10.88.0.1/32"}}));
        assert_eq!(from[2], json!({"ipBlock": {"cidr": "fd00::/64"}}));
    }
}
