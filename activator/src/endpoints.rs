//! What the activator takes from Kubernetes objects: a Service's routing table, a revision's settings, its pods'
//! endpoints and the peer activators. Pure functions; the watchers in `cluster` feed them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use runway_api::names::{REVISION_LABEL, SERVICE_LABEL, pods_service_name};
use runway_api::serving::{ServingPort, serving_port, speaks_h2c};
use runway_api::{Revision, RevisionSpec, Service, ServiceStatus, ServiceTemplate, Visibility};

use crate::revision::RevisionId;

/// Label with which Kubernetes names an EndpointSlice's Service.
pub const SLICE_SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages an EndpointSlice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The built-in EndpointSlice controller; slices written by anyone else are ignored.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// What routing needs of a Service: who may call it, and which revisions take its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTraffic {
    /// Whether the external entry point serves it.
    pub visibility: Visibility,
    /// The revisions with a share of the requests and their percents, above 0 (a revision may be listed twice).
    pub split: Vec<(String, u32)>,
    /// Each tag and the revision it reaches.
    pub tags: Vec<(String, String)>,
}

impl ServiceTraffic {
    /// Drops from a watched Service all that `from_service` does not read (its pod template, bookkeeping, the rest
    /// of its status) before the mirror keeps it: with 1,000 Services, most of the memory their copies took.
    pub fn keep_only_routing(service: &mut Service) {
        runway_api::slim::strip(service);
        service.spec.template = ServiceTemplate::default();
        service.status = service.status.take().map(|status| ServiceStatus {
            traffic: status.traffic,
            ..ServiceStatus::default()
        });
    }

    /// The Service's routing table as the operator resolved it in status.traffic. Empty until the operator wrote
    /// it (within a second of the Service's creation): the Service then answers 503.
    pub fn from_service(service: &Service) -> Self {
        let traffic = service
            .status
            .as_ref()
            .map(|s| s.traffic.as_slice())
            .unwrap_or_default();
        ServiceTraffic {
            visibility: service.spec.visibility,
            split: traffic
                .iter()
                .filter_map(|t| {
                    Some((
                        t.revision_name.clone(),
                        u32::try_from(t.percent).ok().filter(|p| *p > 0)?,
                    ))
                })
                .collect(),
            tags: traffic
                .iter()
                .filter_map(|t| Some((t.tag.clone()?, t.revision_name.clone())))
                .collect(),
        }
    }
}

/// The settings of a revision that the data path needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionSettings {
    /// Requests in flight per pod; 0 is unlimited.
    pub container_concurrency: u32,
    /// Bound on the time until response headers, queueing included.
    pub timeout: Duration,
    /// How this activator may prove a new pod ready before Kubernetes does.
    pub fast_probe: FastProbe,
    /// Set while the revision reports its pods failing (`{revision}: {why}`): requests then fail at once with it.
    pub failure: Option<Arc<str>>,
}

/// How the activator's own probe may bring a new pod forward: only by proving what the kubelet's startup and
/// readiness checks would prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastProbe {
    /// The serving container's startup and readiness probes are HTTP GETs of these paths on the serving port (or
    /// one of them is a TCP check of it), in the order the kubelet passes them: each must answer 2xx or 3xx.
    Http(Vec<String>),
    /// No check beyond a running container (or TCP probes of the serving port): a TCP connect to the
    /// serving port proves at least as much.
    Tcp,
    /// The pod's readiness rests on something this activator cannot check (exec, gRPC, another port or scheme,
    /// an initial delay, another container's probe, readiness gates): wait for Kubernetes.
    KubernetesOnly,
}

impl RevisionSettings {
    /// Drops from a watched Revision all that `from_revision` does not read (the pod template but for each
    /// container's name, ports, startup and readiness probes and the readiness gates; bookkeeping) before the mirror keeps it.
    pub fn keep_only_settings(revision: &mut Revision) {
        runway_api::slim::strip(revision);
        let pod = std::mem::take(&mut revision.spec.template.spec);
        revision.spec.template = ServiceTemplate {
            metadata: None,
            spec: PodSpec {
                containers: pod
                    .containers
                    .into_iter()
                    .map(|container| Container {
                        name: container.name,
                        ports: container.ports,
                        readiness_probe: container.readiness_probe,
                        startup_probe: container.startup_probe,
                        ..Container::default()
                    })
                    .collect(),
                readiness_gates: pod.readiness_gates,
                ..PodSpec::default()
            },
        };
    }

    /// The settings of a Revision object, with the failure its status reports (the rule lives in runway-api, so
    /// that the operator that writes the status and the activator agree).
    pub fn from_revision(revision: &Revision) -> Self {
        RevisionSettings {
            failure: runway_api::revision_failure(revision).map(Arc::from),
            ..Self::from_spec(&revision.spec)
        }
    }

    pub fn from_spec(spec: &RevisionSpec) -> Self {
        let pod = &spec.template.spec;
        let gated = pod.readiness_gates.as_ref().is_some_and(|gates| !gates.is_empty());
        RevisionSettings {
            container_concurrency: u32::try_from(spec.container_concurrency).unwrap_or(0),
            timeout: Duration::from_secs(u64::try_from(spec.timeout_seconds).unwrap_or(1).max(1)),
            fast_probe: if gated {
                FastProbe::KubernetesOnly
            } else {
                fast_probe(&pod.containers)
            },
            failure: None,
        }
    }
}

/// What the serving container's probes let the activator check by itself, following the kubelet's rule: a container
/// is ready once its startup probe has passed and then its readiness probe passes (or at once without one). The
/// serving container and port are the ones the operator writes into the Deployment (runway-api's rules), so a probe
/// of the port the operator declared for a container without one (8080, named `http`) counts as one of the serving
/// port.
fn fast_probe(containers: &[Container]) -> FastProbe {
    let serving = serving_port(containers);
    let Some(container) = serving.container(containers) else {
        return FastProbe::KubernetesOnly;
    };
    let others_probed = containers.iter().enumerate().any(|(index, c)| {
        index != serving.container_index && (c.readiness_probe.is_some() || c.startup_probe.is_some())
    });
    if others_probed {
        return FastProbe::KubernetesOnly;
    }
    let mut paths = Vec::new();
    // The startup probe first: the kubelet runs the readiness probe only once it has passed.
    for probe in [&container.startup_probe, &container.readiness_probe]
        .into_iter()
        .flatten()
    {
        match check(probe, &serving) {
            Some(Check::Http(path)) => paths.push(path),
            Some(Check::Tcp) => {}
            None => return FastProbe::KubernetesOnly,
        }
    }
    // An HTTP answer also proves the TCP connect a TCP probe asks for.
    if paths.is_empty() {
        FastProbe::Tcp
    } else {
        FastProbe::Http(paths)
    }
}

/// One kubelet probe as the activator can repeat it.
enum Check {
    Http(String),
    Tcp,
}

/// How the activator repeats `probe`, or `None` when it cannot prove what the kubelet would: a check it cannot run
/// (exec, gRPC, another port or scheme or host), an initial delay (counted from the container's start, which the
/// activator does not see), or more than one success asked for.
fn check(probe: &Probe, serving: &ServingPort) -> Option<Check> {
    let delayed = probe.initial_delay_seconds.is_some_and(|seconds| seconds > 0);
    let repeated = probe.success_threshold.is_some_and(|times| times > 1);
    if delayed || repeated {
        return None;
    }
    if let Some(http_get) = &probe.http_get {
        let plain_http = http_get
            .scheme
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("http"));
        return (serving.is_port(&http_get.port) && plain_http && http_get.host.is_none())
            .then(|| Check::Http(http_get.path.clone().unwrap_or_else(|| "/".to_owned())));
    }
    let tcp = probe.tcp_socket.as_ref()?;
    (serving.is_port(&tcp.port) && tcp.host.is_none()).then_some(Check::Tcp)
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

/// The revision an object belongs to, by its labels: the revision's and its Service's (both binaries' objects carry
/// both: Revisions, their pods, and the EndpointSlices of their pods' Services).
fn labelled_revision(metadata: &ObjectMeta) -> Option<RevisionId> {
    let labels = metadata.labels.as_ref()?;
    Some(RevisionId::new(
        metadata.namespace.clone()?,
        labels.get(SERVICE_LABEL)?.as_str(),
        labels.get(REVISION_LABEL)?.as_str(),
    ))
}

/// A Revision object's own identity, with its Service from its label.
pub fn revision_id(revision: &Revision) -> Option<RevisionId> {
    let service = revision.labels().get(SERVICE_LABEL)?;
    Some(RevisionId::new(
        revision.namespace()?,
        service.as_str(),
        revision.name_any(),
    ))
}

/// The revision whose pods a slice lists, if it is a slice of a revision's pod Service managed by Kubernetes:
/// labelled with the revision and its Service, written by the EndpointSlice controller, and belonging to
/// `{revision}-pods` in the same namespace.
pub fn slice_revision(slice: &EndpointSlice) -> Option<RevisionId> {
    let id = labelled_revision(&slice.metadata)?;
    let labels = slice.metadata.labels.as_ref()?;
    let managed = labels.get(SLICE_MANAGED_BY_LABEL).map(String::as_str) == Some(SLICE_CONTROLLER);
    let owned = labels.get(SLICE_SERVICE_NAME_LABEL) == Some(&pods_service_name(&id.key.name));
    (managed && owned).then_some(id)
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
        let h2c = speaks_h2c(port.name.as_deref(), port.app_protocol.as_deref());
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

/// The endpoint of a Runway pod as its own status shows it, before the EndpointSlice controller has written it to a
/// slice: at a cold start the pod's watch event comes first, and every hop saved is time a request waits. Ready as
/// the kubelet reports it; `None` until the pod has an IP, and once it has stopped (a slice no longer lists it).
pub fn endpoint_from_pod(pod: &Pod) -> Option<(RevisionId, EndpointState)> {
    let key = pod_revision(pod)?;
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_ref()?.parse().ok()?;
    let containers = &pod.spec.as_ref()?.containers;
    let port = serving_port(containers);
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let endpoint = EndpointState {
        addr: SocketAddr::new(ip, u16::try_from(port.port).ok()?),
        h2c: speaks_h2c(port.name.as_deref(), port.app_protocol()),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    };
    Some((key, endpoint))
}

/// The revision a pod belongs to, by its labels.
pub fn pod_revision(pod: &Pod) -> Option<RevisionId> {
    labelled_revision(&pod.metadata)
}

/// A revision's endpoints from both sources: its slices, which win for an address they list, and its pods, which add
/// the addresses no slice lists yet.
pub fn merge_endpoints(from_slices: &[EndpointState], from_pods: &[EndpointState]) -> Vec<EndpointState> {
    let mut by_addr: BTreeMap<SocketAddr, EndpointState> = from_pods.iter().map(|e| (e.addr, *e)).collect();
    by_addr.extend(from_slices.iter().map(|e| (e.addr, *e)));
    by_addr.into_values().collect()
}

/// The activators listed as ready and not terminating in the activators' own slices: those that share the slots.
pub fn peer_ips<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<IpAddr> {
    addresses(slices, |c| {
        c.and_then(|c| c.ready).unwrap_or(true) && !c.and_then(|c| c.terminating).unwrap_or(false)
    })
}

/// Every activator the activators' own slices list, ready or not, terminating or not: the ones whose forwarded
/// requests are trusted (one that is starting or draining still forwards).
pub fn activator_ips<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<IpAddr> {
    addresses(slices, |_| true)
}

fn addresses<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    keep: impl Fn(Option<&EndpointConditions>) -> bool,
) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = slices
        .into_iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| keep(e.conditions.as_ref()))
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
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, HTTPGetAction, PodReadinessGate, Probe, TCPSocketAction,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use runway_api::serving::H2C_APP_PROTOCOL;

    /// A slice of the pods of revision `{service}-00001`.
    fn slice(service: &str, namespace: &str, port: EndpointPort, endpoints: Vec<Endpoint>) -> EndpointSlice {
        let revision = format!("{service}-00001");
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{revision}-pods-abc")),
                namespace: Some(namespace.into()),
                labels: Some(
                    [
                        (SERVICE_LABEL, service.to_owned()),
                        (REVISION_LABEL, revision.clone()),
                        (SLICE_MANAGED_BY_LABEL, SLICE_CONTROLLER.to_owned()),
                        (SLICE_SERVICE_NAME_LABEL, pods_service_name(&revision)),
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
    fn a_service_kept_only_for_routing_routes_as_the_whole_service() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default", "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "visibility": "ClusterLocal",
                "template": {"spec": {"containers": [{"image": "hello", "env": [{"name": "A", "value": "b"}]}]}},
            },
            "status": {
                "url": "http://hello.default.svc.cluster.local",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                    "lastTransitionTime": "2026-11-28T10:00:00Z"}],
                "traffic": [{"revisionName": "hello-00001", "percent": 90},
                    {"revisionName": "hello-00002", "percent": 10, "tag": "next"}],
            },
        }))
        .unwrap();
        let mut kept = service.clone();
        ServiceTraffic::keep_only_routing(&mut kept);
        assert_eq!(
            ServiceTraffic::from_service(&kept),
            ServiceTraffic::from_service(&service)
        );
        assert!(kept.spec.template.spec.containers.is_empty());
        assert_eq!(kept.metadata.managed_fields, None);
        assert!(kept.status.as_ref().unwrap().conditions.is_empty());
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
        };
        let slices = [state("10.0.0.1:8080", false)];
        let pods = [state("10.0.0.1:8080", true), state("10.0.0.2:8080", false)];
        assert_eq!(
            merge_endpoints(&slices, &pods),
            vec![state("10.0.0.1:8080", false), state("10.0.0.2:8080", false)]
        );
    }

    #[test]
    fn only_controller_managed_slices_of_the_pod_service_count() {
        let good = slice("hello", "default", port(None, None), vec![]);
        assert_eq!(
            slice_revision(&good),
            Some(RevisionId::new("default", "hello", "hello-00001"))
        );

        let mut foreign = good.clone();
        foreign
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_MANAGED_BY_LABEL.into(), "someone-else".into());
        assert_eq!(slice_revision(&foreign), None);

        let mut other_service = good.clone();
        other_service
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_SERVICE_NAME_LABEL.into(), "kube-dns".into());
        assert_eq!(slice_revision(&other_service), None);

        // The Service's pods Service of before revisions, or a slice without its revision: not a revision's.
        for (label, value) in [(SLICE_SERVICE_NAME_LABEL, Some("hello-pods")), (REVISION_LABEL, None)] {
            let mut other = good.clone();
            let labels = other.metadata.labels.as_mut().unwrap();
            match value {
                Some(value) => labels.insert(label.into(), value.into()),
                None => labels.remove(label),
            };
            assert_eq!(slice_revision(&other), None, "{label}");
        }
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
        let all: Vec<String> = activator_ips([&s]).iter().map(ToString::to_string).collect();
        assert_eq!(all, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    }

    fn container(port: Option<ContainerPort>, probe: Option<Probe>) -> Container {
        Container {
            name: "app".into(),
            ports: port.map(|p| vec![p]),
            readiness_probe: probe,
            ..Default::default()
        }
    }

    fn http_probe(port: IntOrString, path: &str) -> Option<Probe> {
        Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn named_port() -> Option<ContainerPort> {
        Some(ContainerPort {
            container_port: 9000,
            name: Some("http".into()),
            ..Default::default()
        })
    }

    #[test]
    fn an_http_readiness_probe_on_the_serving_port_is_probed_the_same_way() {
        let by_name = container(named_port(), http_probe(IntOrString::String("http".into()), "/ready"));
        assert_eq!(fast_probe(&[by_name]), FastProbe::Http(vec!["/ready".into()]));
        let by_number = container(named_port(), http_probe(IntOrString::Int(9000), "/ready"));
        assert_eq!(fast_probe(&[by_number]), FastProbe::Http(vec!["/ready".into()]));
        // No declared port: the operator declares 8080 named `http`, so either names the serving port.
        let default_port = container(None, http_probe(IntOrString::Int(8080), "/healthz"));
        assert_eq!(fast_probe(&[default_port]), FastProbe::Http(vec!["/healthz".into()]));
        let default_name = container(None, http_probe(IntOrString::String("http".into()), "/healthz"));
        assert_eq!(fast_probe(&[default_name]), FastProbe::Http(vec!["/healthz".into()]));
    }

    #[test]
    fn no_readiness_probe_or_a_tcp_one_on_the_serving_port_means_a_tcp_connect() {
        assert_eq!(fast_probe(&[container(None, None)]), FastProbe::Tcp);
        let tcp = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(fast_probe(&[container(None, tcp)]), FastProbe::Tcp);
    }

    #[test]
    fn readiness_the_activator_cannot_check_waits_for_kubernetes() {
        let other_port = container(named_port(), http_probe(IntOrString::Int(9001), "/ready"));
        assert_eq!(fast_probe(&[other_port]), FastProbe::KubernetesOnly);
        let exec = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        });
        assert_eq!(fast_probe(&[container(None, exec)]), FastProbe::KubernetesOnly);
        let tcp_elsewhere = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(9999),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(fast_probe(&[container(None, tcp_elsewhere)]), FastProbe::KubernetesOnly);
        let https = Some(Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(8080),
                scheme: Some("HTTPS".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(fast_probe(&[container(None, https)]), FastProbe::KubernetesOnly);
        let sidecar = Container {
            name: "sidecar".into(),
            ..container(None, http_probe(IntOrString::Int(15000), "/ready"))
        };
        assert_eq!(
            fast_probe(&[container(named_port(), None), sidecar]),
            FastProbe::KubernetesOnly
        );
    }

    fn with_startup(container: Container, startup: Option<Probe>) -> Container {
        Container {
            startup_probe: startup,
            ..container
        }
    }

    #[test]
    fn a_startup_probe_must_pass_before_the_readiness_probe_counts() {
        // The operator's default readiness probe is a TCP one: the app's own startup check is what counts.
        let tcp = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            ..Default::default()
        });
        let warming = with_startup(container(None, tcp), http_probe(IntOrString::Int(8080), "/started"));
        assert_eq!(fast_probe(&[warming]), FastProbe::Http(vec!["/started".into()]));
        let both = with_startup(
            container(None, http_probe(IntOrString::Int(8080), "/ready")),
            http_probe(IntOrString::Int(8080), "/started"),
        );
        assert_eq!(
            fast_probe(&[both]),
            FastProbe::Http(vec!["/started".into(), "/ready".into()])
        );
        let exec_startup = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        });
        assert_eq!(
            fast_probe(&[with_startup(container(None, None), exec_startup)]),
            FastProbe::KubernetesOnly
        );
        let sidecar = Container {
            name: "sidecar".into(),
            ..with_startup(container(None, None), http_probe(IntOrString::Int(15000), "/started"))
        };
        assert_eq!(
            fast_probe(&[container(named_port(), None), sidecar]),
            FastProbe::KubernetesOnly
        );
    }

    #[test]
    fn an_initial_delay_or_several_successes_wait_for_kubernetes() {
        let delayed = |probe: Option<Probe>| {
            probe.map(|p| Probe {
                initial_delay_seconds: Some(5),
                ..p
            })
        };
        let ready = container(None, delayed(http_probe(IntOrString::Int(8080), "/ready")));
        assert_eq!(fast_probe(&[ready]), FastProbe::KubernetesOnly);
        let startup = with_startup(
            container(None, None),
            delayed(http_probe(IntOrString::Int(8080), "/started")),
        );
        assert_eq!(fast_probe(&[startup]), FastProbe::KubernetesOnly);
        let twice = http_probe(IntOrString::Int(8080), "/ready").map(|p| Probe {
            success_threshold: Some(2),
            ..p
        });
        assert_eq!(fast_probe(&[container(None, twice)]), FastProbe::KubernetesOnly);
        let no_delay = http_probe(IntOrString::Int(8080), "/ready").map(|p| Probe {
            initial_delay_seconds: Some(0),
            ..p
        });
        assert_eq!(
            fast_probe(&[container(None, no_delay)]),
            FastProbe::Http(vec!["/ready".into()])
        );
    }

    fn revision_spec() -> RevisionSpec {
        RevisionSpec::from_service_spec(
            &serde_json::from_value(serde_json::json!({
                "template": {"spec": {"containers": [{"image": "app"}]}},
                "containerConcurrency": 3,
                "timeoutSeconds": 20,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn readiness_gates_wait_for_kubernetes() {
        let mut spec = revision_spec();
        assert_eq!(RevisionSettings::from_spec(&spec).fast_probe, FastProbe::Tcp);
        spec.template.spec.readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/warm".into(),
        }]);
        assert_eq!(RevisionSettings::from_spec(&spec).fast_probe, FastProbe::KubernetesOnly);
    }

    #[test]
    fn a_revision_kept_only_for_its_settings_gives_the_same_settings() {
        let revision: Revision = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Revision",
            "metadata": {"name": "hello-00001", "namespace": "default", "managedFields": [{"manager": "runway"}]},
            "spec": {
                "template": {
                    "metadata": {"labels": {"team": "a"}},
                    "spec": {
                        "containers": [
                            {"name": "sidecar", "image": "proxy", "env": [{"name": "A", "value": "b"}]},
                            {"name": "app", "image": "app", "args": ["--serve"],
                             "ports": [{"containerPort": 9000, "name": "web"}],
                             "startupProbe": {"httpGet": {"path": "/started", "port": "web"}},
                             "readinessProbe": {"httpGet": {"path": "/ready", "port": "web"}}},
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
                "containerConcurrency": 4, "timeoutSeconds": 30, "progressDeadlineSeconds": 600,
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainerExits",
                    "message": "container exits with code 1", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "desiredReplicas": 1,
            },
        }))
        .unwrap();
        let mut kept = revision.clone();
        RevisionSettings::keep_only_settings(&mut kept);
        let settings = RevisionSettings::from_revision(&kept);
        assert_eq!(settings, RevisionSettings::from_revision(&revision));
        assert_eq!(
            settings.fast_probe,
            FastProbe::Http(vec!["/started".into(), "/ready".into()])
        );
        assert!(settings.failure.is_some());
        let pod = &kept.spec.template.spec;
        assert_eq!((pod.volumes.as_ref(), pod.containers[1].image.as_ref()), (None, None));
        assert_eq!(kept.metadata.managed_fields, None);
    }

    #[test]
    fn a_revision_gives_its_settings_its_failure_and_its_service() {
        let mut revision = Revision::new("hello-00002", revision_spec());
        revision.metadata.namespace = Some("default".into());
        assert_eq!(revision_id(&revision), None, "no Service label");
        revision.metadata.labels = Some([(SERVICE_LABEL.to_owned(), "hello".to_owned())].into());
        assert_eq!(
            revision_id(&revision),
            Some(RevisionId::new("default", "hello", "hello-00002"))
        );
        let settings = RevisionSettings::from_revision(&revision);
        assert_eq!(
            (settings.container_concurrency, settings.timeout, settings.failure),
            (3, Duration::from_secs(20), None)
        );
        revision.status = serde_json::from_value(serde_json::json!({
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainerExits",
                "message": "container exits with code 1", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "desiredReplicas": 1,
        }))
        .unwrap();
        assert_eq!(
            RevisionSettings::from_revision(&revision).failure.as_deref(),
            Some("hello-00002: container exits with code 1")
        );
    }

    #[test]
    fn a_service_routes_by_its_resolved_traffic_with_percent_above_zero_and_its_tags() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}, "visibility": "ClusterLocal"},
        }))
        .unwrap();
        let none = ServiceTraffic::from_service(&service);
        assert_eq!(
            (none.visibility, none.split.len(), none.tags.len()),
            (Visibility::ClusterLocal, 0, 0)
        );
        service.status = serde_json::from_value(serde_json::json!({
            "traffic": [
                {"revisionName": "hello-00003", "latestRevision": true, "percent": 90},
                {"revisionName": "hello-00002", "percent": 10, "tag": "previous"},
                {"revisionName": "hello-00004", "percent": 0, "tag": "next"},
            ],
        }))
        .unwrap();
        let traffic = ServiceTraffic::from_service(&service);
        assert_eq!(
            traffic.split,
            [("hello-00003".to_owned(), 90), ("hello-00002".to_owned(), 10)]
        );
        assert_eq!(
            traffic.tags,
            [
                ("previous".to_owned(), "hello-00002".to_owned()),
                ("next".to_owned(), "hello-00004".to_owned())
            ]
        );
    }
}
