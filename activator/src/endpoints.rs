//! What the activator takes from Kubernetes objects: a Service's settings, its pods' endpoints and the peer
//! activators. Pure functions; the watchers in `cluster` feed them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runway_api::names::{SERVICE_LABEL, pods_service_name};

use crate::host::ServiceKey;

/// Label with which Kubernetes names an EndpointSlice's Service.
pub const SLICE_SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages an EndpointSlice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The built-in EndpointSlice controller; slices written by anyone else are ignored.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// appProtocol that asks for HTTP/2 over cleartext with prior knowledge.
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// The settings of a Service that the data path needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Requests in flight per pod; 0 is unlimited.
    pub container_concurrency: u32,
    /// Bound on the time until response headers, queueing included.
    pub timeout: Duration,
    /// Path of the serving container's HTTP readiness probe when it probes the serving port; else TCP connects.
    pub readiness_path: Option<String>,
}

impl ServiceSettings {
    pub fn from_spec(spec: &runway_api::ServiceSpec) -> Self {
        ServiceSettings {
            container_concurrency: u32::try_from(spec.container_concurrency).unwrap_or(0),
            timeout: Duration::from_secs(u64::try_from(spec.timeout_seconds).unwrap_or(1).max(1)),
            readiness_path: readiness_path(&spec.template.spec.containers),
        }
    }
}

/// The serving container: the only one, or the one that declares a port.
fn serving_container(containers: &[Container]) -> Option<&Container> {
    match containers {
        [only] => Some(only),
        _ => containers
            .iter()
            .find(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty())),
    }
}

/// The readiness probe path when the serving container probes its serving port over plain HTTP.
fn readiness_path(containers: &[Container]) -> Option<String> {
    let container = serving_container(containers)?;
    let port = container.ports.as_ref().and_then(|ports| ports.first());
    let (number, name) = (
        port.map_or(8080, |p| p.container_port),
        port.and_then(|p| p.name.as_deref()),
    );
    let http_get = container.readiness_probe.as_ref()?.http_get.as_ref()?;
    let on_serving_port = match &http_get.port {
        IntOrString::Int(n) => *n == number,
        IntOrString::String(s) => Some(s.as_str()) == name,
    };
    let plain_http = http_get
        .scheme
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case("http"));
    (on_serving_port && plain_http).then(|| http_get.path.clone().unwrap_or_else(|| "/".to_owned()))
}

/// One pod endpoint as seen in the EndpointSlices (or in a static route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointState {
    pub addr: SocketAddr,
    /// Speak HTTP/2 with prior knowledge to it.
    pub h2c: bool,
    /// Kubernetes reports it ready (an absent condition counts as ready, as the API documents).
    pub ready: bool,
    /// Shutting down: no new requests.
    pub terminating: bool,
}

/// The Service whose pods a slice lists, if it is a slice of a Runway pod Service managed by Kubernetes: labelled
/// with the Service, written by the EndpointSlice controller, and belonging to `{name}-pods` in the same namespace.
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let labels = slice.metadata.labels.as_ref()?;
    let name = labels.get(SERVICE_LABEL)?;
    let managed = labels.get(SLICE_MANAGED_BY_LABEL).map(String::as_str) == Some(SLICE_CONTROLLER);
    let owned = labels.get(SLICE_SERVICE_NAME_LABEL) == Some(&pods_service_name(name));
    let namespace = slice.metadata.namespace.as_ref()?;
    (managed && owned).then(|| ServiceKey::new(namespace.clone(), name.clone()))
}

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
        let h2c = port.app_protocol.as_deref() == Some(H2C_APP_PROTOCOL)
            || matches!(port.name.as_deref(), Some("h2c" | "grpc"));
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                let addr = SocketAddr::new(ip, number);
                by_addr.entry(addr).or_insert(EndpointState {
                    addr,
                    h2c,
                    ready,
                    terminating,
                });
            }
        }
    }
    by_addr.into_values().collect()
}

/// The activators listed as ready and not terminating in the activators' own slices.
pub fn peer_ips<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = slices
        .into_iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| {
            let c = e.conditions.as_ref();
            c.and_then(|c| c.ready).unwrap_or(true) && !c.and_then(|c| c.terminating).unwrap_or(false)
        })
        .flat_map(|e| &e.addresses)
        .filter_map(|a| a.parse().ok())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(service: &str, namespace: &str, port: EndpointPort, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-pods-abc")),
                namespace: Some(namespace.into()),
                labels: Some(
                    [
                        (SERVICE_LABEL, service.to_owned()),
                        (SLICE_MANAGED_BY_LABEL, SLICE_CONTROLLER.to_owned()),
                        (SLICE_SERVICE_NAME_LABEL, pods_service_name(service)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                ),
                ..Default::default()
            },
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

    #[test]
    fn only_controller_managed_slices_of_the_pod_service_count() {
        let good = slice("hello", "default", port(None, None), vec![]);
        assert_eq!(slice_service(&good), Some(ServiceKey::new("default", "hello")));

        let mut foreign = good.clone();
        foreign
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_MANAGED_BY_LABEL.into(), "someone-else".into());
        assert_eq!(slice_service(&foreign), None);

        let mut other_service = good.clone();
        other_service
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_SERVICE_NAME_LABEL.into(), "kube-dns".into());
        assert_eq!(slice_service(&other_service), None);
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

    #[test]
    fn h2c_comes_from_app_protocol_or_port_name() {
        for (name, proto, h2c) in [
            (None, Some(H2C_APP_PROTOCOL), true),
            (Some("h2c"), None, true),
            (Some("grpc"), None, true),
            (Some("http"), None, false),
            (None, Some("http"), false),
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

    #[test]
    fn peers_are_ready_and_not_terminating() {
        let s = slice(
            "x",
            "runway-system",
            port(None, None),
            vec![
                endpoint("10.0.0.2", Some(true), None),
                endpoint("10.0.0.1", None, None),
                endpoint("10.0.0.3", Some(false), None),
                endpoint("10.0.0.4", Some(true), Some(true)),
            ],
        );
        let ips: Vec<String> = peer_ips([&s]).iter().map(ToString::to_string).collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"]);
    }

    fn container(port: Option<ContainerPort>, probe_port: IntOrString, path: &str) -> Container {
        Container {
            name: "app".into(),
            ports: port.map(|p| vec![p]),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(path.into()),
                    port: probe_port,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_readiness_path_is_used_only_on_the_serving_port() {
        let named = ContainerPort {
            container_port: 9000,
            name: Some("http".into()),
            ..Default::default()
        };
        assert_eq!(
            readiness_path(&[container(
                Some(named.clone()),
                IntOrString::String("http".into()),
                "/ready"
            )]),
            Some("/ready".into())
        );
        assert_eq!(
            readiness_path(&[container(Some(named.clone()), IntOrString::Int(9000), "/ready")]),
            Some("/ready".into())
        );
        assert_eq!(
            readiness_path(&[container(Some(named), IntOrString::Int(9001), "/ready")]),
            None
        );
        // No declared port: the serving port is 8080.
        assert_eq!(
            readiness_path(&[container(None, IntOrString::Int(8080), "/healthz")]),
            Some("/healthz".into())
        );
    }
}
