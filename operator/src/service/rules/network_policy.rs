//! Network isolation of a revision's pods: the NetworkPolicy `{revision}` that admits connections to them only from
//! Runway's activators and from the sources of the kubelet's probes, built by a pure function.
//!
//! NetworkPolicies add up: a Service's own policy selecting its pods (label `serving.runway.dev/service`) admits
//! more sources beside these, such as a metrics scraper.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Resource, ResourceExt};
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

/// An IP network in CIDR notation, as a NetworkPolicy's ipBlock takes it: `10.88.0.0/16`, `fd00::/8`; a bare address
/// is one host (`10.88.0.1` is `10.88.0.1/32`). Host bits must be zero, so that what is admitted is what was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = || format!("{text:?} is not a CIDR such as 10.88.0.0/16, 10.88.0.1/32 or fd00::/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(invalid)?,
        };
        let host_bits = match network {
            IpAddr::V4(v4) => u128::from(u32::from(v4) & u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0)),
            IpAddr::V6(v6) => u128::from(v6) & u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0),
        };
        if host_bits != 0 {
            return Err(format!("{text:?} has host bits set: write the network's first address"));
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A comma-separated list of [`Cidr`]s (`--probe-source-cidrs`); empty items are skipped, so an empty list is "".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CidrList(pub(crate) Vec<Cidr>);

impl FromStr for CidrList {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(CidrList)
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
            probe_sources: probe_sources.parse::<CidrList>().unwrap().0,
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

    #[test]
    fn cidrs_are_written_in_full_and_bad_ones_refused() {
        for (text, shown) in [
            ("10.88.0.1", "10.88.0.1/32"),
            (" 10.88.0.0/16 ", "10.88.0.0/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("fd00::1", "fd00::1/128"),
            ("fd00::/8", "fd00::/8"),
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), shown, "{text}");
        }
        for bad in ["", "10.88.0.1/33", "10.88.0.0/x", "node", "fd00::/129", "10.88.0.1/16"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert_eq!("".parse::<CidrList>().unwrap(), CidrList::default());
        assert_eq!("10.88.0.1,".parse::<CidrList>().unwrap().0.len(), 1);
        assert!("10.88.0.1,bad".parse::<CidrList>().is_err());
    }
}
