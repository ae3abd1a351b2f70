//! A revision's pod endpoints as Kubernetes publishes them: in the EndpointSlices of the revision's pod Service, and
//! in the pods' own status before any slice lists them; and their merge.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use runway_api::membership;
use runway_api::pods;
use runway_api::serving::{serving_port, speaks_h2c};

use crate::model::{EndpointState, PodRef, RevisionId};
use crate::sources::keys::pod_revision;

/// The endpoints of a Service's slices, one per address (the first slice listing an address wins).
pub fn endpoints_from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<EndpointState> {
    let mut by_addr: BTreeMap<SocketAddr, EndpointState> = BTreeMap::new();
    for slice in slices {
        let Some(port) = slice.ports.as_ref().and_then(|ports| ports.first()) else {
            continue;
        };
        let Some(number) = port.port.and_then(|n| u16::try_from(n).ok()) else {
            continue;
        };
        let h2c = speaks_h2c(port.name.as_deref(), port.app_protocol.as_deref());
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let ready = membership::is_ready(conditions);
            let terminating = membership::is_terminating(conditions);
            let pod = slice_pod(endpoint);
            for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                let addr = SocketAddr::new(ip, number);
                by_addr.entry(addr).or_insert_with(|| EndpointState {
                    addr,
                    h2c,
                    ready,
                    terminating,
                    pod: pod.clone(),
                });
            }
        }
    }
    by_addr.into_values().collect()
}

/// The ready node agents of the agents' Service's slices, by the node each runs on, at their port named `api`.
pub fn agents_by_node<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> HashMap<Arc<str>, SocketAddr> {
    let mut agents = HashMap::new();
    for slice in slices {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|port| port.name.as_deref() == Some(AGENT_PORT_NAME))
            .and_then(|port| u16::try_from(port.port?).ok());
        let Some(port) = port else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let ready = membership::is_ready(endpoint.conditions.as_ref());
            let (Some(node), true) = (endpoint.node_name.as_deref(), ready) else {
                continue;
            };
            if let Some(ip) = endpoint.addresses.iter().find_map(|a| a.parse::<IpAddr>().ok()) {
                agents.insert(Arc::from(node), SocketAddr::new(ip, port));
            }
        }
    }
    agents
}

/// The node agents' Service names its API port so.
const AGENT_PORT_NAME: &str = "api";

/// The pod a slice's endpoint names (the EndpointSlice controller writes its UID and node), without the frozen mark,
/// which only the pod carries.
fn slice_pod(endpoint: &Endpoint) -> Option<PodRef> {
    let uid = endpoint.target_ref.as_ref()?.uid.as_deref()?;
    Some(PodRef {
        uid: Arc::from(uid),
        node: Arc::from(endpoint.node_name.as_deref()?),
        frozen_mark: None,
    })
}

/// The endpoint of a Runway pod as its own status shows it, before the EndpointSlice controller has written it to a
/// slice: at a cold start the pod's watch event comes first, and every hop saved is time a request waits. Ready as
/// the kubelet reports it; `None` until the pod has an IP, and once it has stopped (a slice no longer lists it).
pub fn endpoint_from_pod(pod: &Pod) -> Option<(RevisionId, EndpointState)> {
    let key = pod_revision(pod)?;
    let status = pod.status.as_ref()?;
    if pods::has_stopped(pod) {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_ref()?.parse().ok()?;
    let containers = &pod.spec.as_ref()?.containers;
    let port = serving_port(containers);
    let endpoint = EndpointState {
        addr: SocketAddr::new(ip, u16::try_from(port.port).ok()?),
        h2c: speaks_h2c(port.name.as_deref(), port.app_protocol()),
        ready: pods::is_ready(pod),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        pod: pod_ref(pod),
    };
    Some((key, endpoint))
}

fn pod_ref(pod: &Pod) -> Option<PodRef> {
    Some(PodRef {
        uid: Arc::from(pod.metadata.uid.as_deref()?),
        node: Arc::from(pod.spec.as_ref()?.node_name.as_deref()?),
        frozen_mark: pods::frozen_mark(pod).map(Arc::from),
    })
}

/// A revision's endpoints from both sources: its slices, which win for an address they list, and its pods, which add
/// the addresses no slice lists yet. The pod's own object names it best (with the frozen mark).
fn merge_endpoints(from_slices: &[EndpointState], from_pods: &[EndpointState]) -> Vec<EndpointState> {
    let mut by_addr: BTreeMap<SocketAddr, EndpointState> = from_pods.iter().map(|e| (e.addr, e.clone())).collect();
    for endpoint in from_slices {
        let pod = by_addr
            .get(&endpoint.addr)
            .and_then(|from_pod| from_pod.pod.clone())
            .or_else(|| endpoint.pod.clone());
        by_addr.insert(
            endpoint.addr,
            EndpointState {
                pod,
                ..endpoint.clone()
            },
        );
    }
    by_addr.into_values().collect()
}

/// The endpoints of each revision as each source last gave them; the registry gets their merge.
#[derive(Default)]
pub struct EndpointSources {
    slices: HashMap<RevisionId, Vec<EndpointState>>,
    pods: HashMap<RevisionId, Vec<EndpointState>>,
}

/// One of the two sources of a revision's endpoints.
#[derive(Clone, Copy)]
pub enum EndpointSource {
    Slices,
    Pods,
}

impl EndpointSources {
    /// Replaces what `source` says about `key` and returns the merge of both sources.
    pub fn update(
        &mut self,
        source: EndpointSource,
        key: &RevisionId,
        endpoints: Vec<EndpointState>,
    ) -> Vec<EndpointState> {
        let map = match source {
            EndpointSource::Slices => &mut self.slices,
            EndpointSource::Pods => &mut self.pods,
        };
        if endpoints.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.clone(), endpoints);
        }
        let none = Vec::new();
        merge_endpoints(
            self.slices.get(key).unwrap_or(&none),
            self.pods.get(key).unwrap_or(&none),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::keys::tests::pods_slice_metadata;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use runway_api::names::{REVISION_LABEL, SERVICE_LABEL};
    use runway_api::serving::H2C_APP_PROTOCOL;

    /// A slice of the pods of revision `{service}-00001`.
    fn slice(service: &str, namespace: &str, port: EndpointPort, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: pods_slice_metadata(service, namespace),
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(vec![port]),
        }
    }

    fn endpoint(ip: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready,
                serving: ready,
                terminating,
            }),
            ..Default::default()
        }
    }

    fn port(name: Option<&str>, app_protocol: Option<&str>) -> EndpointPort {
        EndpointPort {
            name: name.map(Into::into),
            app_protocol: app_protocol.map(Into::into),
            port: Some(8080),
            protocol: Some("TCP".into()),
        }
    }

    fn pod(ip: Option<&str>, port: Option<(i32, &str)>, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hello-00001-abc", "namespace": "default",
                "labels": {SERVICE_LABEL: "hello", REVISION_LABEL: "hello-00001"}},
            "spec": {"containers": [{
                "name": "app",
                "image": "hello",
                "ports": port.map(|(n, name)| vec![serde_json::json!({"containerPort": n, "name": name})]),
            }]},
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_with_an_ip_is_an_endpoint_on_its_serving_port_before_any_slice_lists_it() {
        let (key, endpoint) = endpoint_from_pod(&pod(Some("10.88.0.7"), None, false)).unwrap();
        assert_eq!(key, RevisionId::new("default", "hello", "hello-00001"));
        assert_eq!(
            endpoint,
            EndpointState {
                addr: "10.88.0.7:8080".parse().unwrap(),
                h2c: false,
                ready: false,
                terminating: false,
                pod: None,
            }
        );
        let (_, grpc) = endpoint_from_pod(&pod(Some("10.88.0.7"), Some((9000, "grpc")), true)).unwrap();
        assert_eq!((grpc.addr.port(), grpc.h2c, grpc.ready), (9000, true, true));
        assert_eq!(endpoint_from_pod(&pod(None, None, false)), None, "no IP yet");

        let mut stopped = pod(Some("10.88.0.7"), None, false);
        stopped.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(endpoint_from_pod(&stopped), None);
        let mut deleted = serde_json::to_value(pod(Some("10.88.0.7"), None, true)).unwrap();
        deleted["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z".into();
        let deleted: Pod = serde_json::from_value(deleted).unwrap();
        assert!(endpoint_from_pod(&deleted).unwrap().1.terminating);
    }

    #[test]
    fn slices_win_for_the_addresses_they_list_and_pods_add_the_others() {
        let state = |addr: &str, ready: bool| EndpointState {
            addr: addr.parse().unwrap(),
            h2c: false,
            ready,
            terminating: false,
            pod: None,
        };
        let slices = [state("10.0.0.1:8080", false)];
        let pods = [state("10.0.0.1:8080", true), state("10.0.0.2:8080", false)];
        assert_eq!(
            merge_endpoints(&slices, &pods),
            vec![state("10.0.0.1:8080", false), state("10.0.0.2:8080", false)]
        );
    }

    #[test]
    fn endpoints_carry_port_readiness_and_termination() {
        let s = slice(
            "hello",
            "default",
            port(Some("http"), None),
            vec![
                endpoint("10.0.0.1", Some(true), None),
                endpoint("10.0.0.2", Some(false), None),
                endpoint("10.0.0.3", Some(false), Some(true)),
                endpoint("10.0.0.4", None, None),
            ],
        );
        let eps = endpoints_from_slices([&s]);
        let summary: Vec<(String, bool, bool, bool)> = eps
            .iter()
            .map(|e| (e.addr.to_string(), e.h2c, e.ready, e.terminating))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("10.0.0.1:8080".into(), false, true, false),
                ("10.0.0.2:8080".into(), false, false, false),
                ("10.0.0.3:8080".into(), false, false, true),
                ("10.0.0.4:8080".into(), false, true, false),
            ]
        );
    }

    // The rule itself is runway-api's (`serving::speaks_h2c`): this checks that it is asked about the slice's port.
    #[test]
    fn h2c_follows_the_slice_port() {
        for (name, proto, h2c) in [
            (None, Some(H2C_APP_PROTOCOL), true),
            (Some("grpc"), None, true),
            (Some("http"), None, false),
        ] {
            let s = slice(
                "a",
                "b",
                port(name, proto),
                vec![endpoint("10.0.0.1", Some(true), None)],
            );
            assert_eq!(endpoints_from_slices([&s])[0].h2c, h2c, "{name:?} {proto:?}");
        }
    }
}
