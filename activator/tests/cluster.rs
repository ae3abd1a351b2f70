//! Cluster mode against a scripted API server: the watches ask for the right objects, and what they list becomes
//! routes, pods and peers.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use runway_activator::cluster::{self, PeerSource};
use runway_activator::host::Entry;
use runway_activator::metrics::Metrics;
use runway_activator::probe::ProbeConfig;
use runway_activator::registry::{Registry, Route};
use runway_activator::reports::LoadHub;
use serde_json::{Value, json};

fn list(kind: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items
    }))
    .unwrap()
}

fn runway_service(namespace: &str, name: &str, cc: i32) -> Value {
    json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "hello"}]}}, "containerConcurrency": cc}
    })
}

/// A DomainMapping of `domain` to `service`, with DomainClaimed as the operator wrote it.
fn domain_mapping(namespace: &str, domain: &str, service: &str, claimed: bool) -> Value {
    let status = if claimed { "True" } else { "False" };
    json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "DomainMapping",
        "metadata": {"name": domain, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"ref": {"name": service}},
        "status": {"conditions": [{"type": "DomainClaimed", "status": status, "reason": "X", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    })
}

fn slice(namespace: &str, service_name: &str, runway_service: Option<&str>, ips: &[&str]) -> Value {
    let mut labels = json!({
        "kubernetes.io/service-name": service_name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    });
    if let Some(name) = runway_service {
        labels["serving.runway.dev/service"] = json!(name);
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service_name}-x"), "namespace": namespace, "labels": labels, "resourceVersion": "1"},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    })
}

/// A running pod of Runway Service `service` with an IP, Ready or not.
fn pod(namespace: &str, service: &str, ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{service}-{ip}"), "namespace": namespace, "resourceVersion": "1",
            "labels": {"serving.runway.dev/service": service}},
        "spec": {"containers": [{"name": "app", "image": "hello", "ports": [{"containerPort": 8080, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

#[tokio::test]
async fn watched_services_slices_pods_and_peers_become_routes() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let registry = Arc::new(Registry::new(
        "example.com",
        100,
        ProbeConfig::default(),
        Arc::new(LoadHub::new("test")),
        Arc::new(Metrics::default()),
        [10, 0, 0, 1].into(),
    ));
    let (synced_tx, mut synced) = tokio::sync::mpsc::channel(1);
    let source = PeerSource {
        namespace: "runway-system".into(),
        service: "runway-activator".into(),
        internal_port: 8081,
        admin_port: 9090,
    };
    tokio::spawn(cluster::run(client, registry.clone(), source, synced_tx));

    let api_server = tokio::spawn(async move {
        let mut pending_watches = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let uri = request.uri().to_string();
            let query = urlencoding_decode(request.uri().query().unwrap_or_default());
            if query.contains("watch=true") {
                pending_watches.push(respond); // a watch that never reports anything
                continue;
            }
            let body = if uri.starts_with("/apis/serving.runway.dev/v1alpha1/services") {
                list("ServiceList", vec![runway_service("default", "hello", 2)])
            } else if uri.starts_with("/apis/serving.runway.dev/v1alpha1/domainmappings") {
                list(
                    "DomainMappingList",
                    vec![
                        domain_mapping("default", "api.example.org", "hello", true),
                        // Another namespace's claim holds this domain: not routed.
                        domain_mapping("default", "www.example.org", "hello", false),
                    ],
                )
            } else if uri.starts_with("/apis/discovery.k8s.io/v1/namespaces/runway-system/endpointslices") {
                assert!(
                    query.contains("labelSelector=kubernetes.io/service-name=runway-activator"),
                    "{query}"
                );
                list(
                    "EndpointSliceList",
                    vec![slice(
                        "runway-system",
                        "runway-activator",
                        None,
                        &["10.0.0.1", "10.0.0.2"],
                    )],
                )
            } else if uri.starts_with("/apis/discovery.k8s.io/v1/endpointslices") {
                assert!(
                    query.contains("serving.runway.dev/service,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"),
                    "{query}"
                );
                list(
                    "EndpointSliceList",
                    vec![
                        slice("default", "hello-pods", Some("hello"), &["10.1.0.1"]),
                        // Claims to be hello's but belongs to another Kubernetes Service: ignored.
                        slice("default", "intruder", Some("hello"), &["10.9.9.9"]),
                    ],
                )
            } else if uri.starts_with("/api/v1/pods") {
                assert!(query.contains("labelSelector=serving.runway.dev/service"), "{query}");
                list(
                    "PodList",
                    vec![
                        // Listed by the slice too: the slice wins.
                        pod("default", "hello", "10.1.0.1", true),
                        // Ready, and no slice lists it yet.
                        pod("default", "hello", "10.1.0.3", true),
                        // Another namespace's Service of the same name.
                        pod("elsewhere", "hello", "10.1.0.4", true),
                    ],
                )
            } else {
                panic!("unexpected request {uri}");
            };
            respond.send_response(Response::new(Body::from(body)));
        }
    });

    tokio::time::timeout(Duration::from_secs(10), synced.recv())
        .await
        .expect("the watches sync")
        .unwrap();
    let Route::Service(hello) = registry.route("hello.default.svc.cluster.local", Entry::Internal) else {
        panic!("hello is routed");
    };
    assert!(matches!(
        registry.route("other.default", Entry::Internal),
        Route::Unknown
    ));
    // A claimed custom domain reaches its Service through the external entry point; an unclaimed one does not.
    assert!(matches!(
        registry.route("API.example.org:80", Entry::External),
        Route::Service(_)
    ));
    assert!(matches!(
        registry.route("www.example.org", Entry::External),
        Route::Unknown
    ));
    assert_eq!(registry.peers().ips().len(), 2);
    assert!(registry.peers().is_peer([10, 0, 0, 2].into()));
    // cc = 2 split between two activators: one slot here on each of the two pods (the slice's, and the pod that only
    // its own status shows yet); the intruder's address and the other namespace's pod are not pods of hello.
    use runway_activator::service::{Admission, Grant};
    let leases: Vec<_> = (0..2)
        .map(|_| match hello.admit(false) {
            Admission::Granted(Grant::Pod(lease)) => lease,
            _ => panic!("two pods are known and ready"),
        })
        .collect();
    let mut leased: Vec<String> = leases.iter().map(|l| l.target.addr.to_string()).collect();
    leased.sort();
    assert_eq!(leased, ["10.1.0.1:8080", "10.1.0.3:8080"]);
    assert!(
        matches!(hello.admit(false), Admission::Queued(..)),
        "no third slot, no other pod"
    );
    api_server.abort();
}

/// Percent-decodes a query string, enough for label selectors.
fn urlencoding_decode(query: &str) -> String {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&query[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
