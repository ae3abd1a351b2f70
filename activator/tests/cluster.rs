//! Cluster mode against a scripted API server: the watches ask for the right objects, and what they list becomes
//! routing tables, revisions, pods and peers.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use runway_activator::model::Origin;
use runway_activator::revision::Metrics;
use runway_activator::route::{Entry, Registry, Route};
use runway_activator::sources::cluster::{self, PeerSource};
use serde_json::{Value, json};

fn list(kind: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items
    }))
    .unwrap()
}

/// A Service whose status routes as `traffic` says (no status when `None`).
fn runway_service(namespace: &str, name: &str, traffic: Option<Value>) -> Value {
    json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "hello"}]}}},
        "status": traffic.map(|traffic| json!({"traffic": traffic})),
    })
}

/// `service` with `spec.invokers: Authorized`.
fn authorized(mut service: Value) -> Value {
    service["spec"]["invokers"] = json!("Authorized");
    service
}

fn revision(namespace: &str, service: &str, name: &str, cc: i32) -> Value {
    json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Revision",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1",
            "labels": {"serving.runway.dev/service": service, "serving.runway.dev/revision": name}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "hello"}]}},
            "containerConcurrency": cc, "timeoutSeconds": 300, "progressDeadlineSeconds": 120}
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

/// A slice of Kubernetes Service `service_name`, labelled with a Runway Service and revision when given.
fn slice(namespace: &str, service_name: &str, revision: Option<(&str, &str)>, ips: &[&str]) -> Value {
    let mut labels = json!({
        "kubernetes.io/service-name": service_name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    });
    if let Some((service, revision)) = revision {
        labels["serving.runway.dev/service"] = json!(service);
        labels["serving.runway.dev/revision"] = json!(revision);
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service_name}-x"), "namespace": namespace, "labels": labels, "resourceVersion": "1"},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    })
}

/// A running pod of revision `revision` of Runway Service `service` with an IP, Ready or not.
fn pod(namespace: &str, (service, revision): (&str, &str), ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{revision}-{ip}"), "namespace": namespace, "resourceVersion": "1",
            "labels": {"serving.runway.dev/service": service, "serving.runway.dev/revision": revision}},
        "spec": {"containers": [{"name": "app", "image": "hello", "ports": [{"containerPort": 8080, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

const NEW: (&str, &str) = ("hello", "hello-00002");
const OLD: (&str, &str) = ("hello", "hello-00001");

#[tokio::test]
async fn watched_services_revisions_slices_pods_and_peers_become_routes() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    // Nobody probes here: the pods are ready.
    let (probes, _probe_requests) = tokio::sync::mpsc::unbounded_channel();
    let registry = Arc::new(Registry::new(
        "example.com",
        100,
        probes,
        tokio::sync::mpsc::unbounded_channel().0,
        Arc::new(Metrics::default()),
        [10, 0, 0, 1].into(),
    ));
    let (synced_tx, mut synced) = tokio::sync::mpsc::channel(1);
    let source = PeerSource {
        namespace: "runway-system".into(),
        service: "runway-activator".into(),
        internal_port: 8081,
        admin_port: 9090,
        node_agent_service: None,
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
                let traffic = json!([
                    {"revisionName": "hello-00002", "latestRevision": true, "percent": 90},
                    {"revisionName": "hello-00001", "percent": 10, "tag": "previous"},
                ]);
                list(
                    "ServiceList",
                    vec![
                        runway_service("default", "hello", Some(traffic)),
                        // Just created: the operator has not resolved its traffic yet. Only authorized callers.
                        authorized(runway_service("default", "fresh", None)),
                    ],
                )
            } else if uri.starts_with("/apis/serving.runway.dev/v1alpha1/revisions") {
                list(
                    "RevisionList",
                    vec![
                        revision("default", "hello", "hello-00001", 2),
                        revision("default", "hello", "hello-00002", 2),
                    ],
                )
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
                    query.contains("labelSelector=serving.runway.dev/service,serving.runway.dev/revision,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"),
                    "{query}"
                );
                list(
                    "EndpointSliceList",
                    vec![
                        slice("default", "hello-00002-pods", Some(NEW), &["10.1.0.1"]),
                        // Claims to be hello-00002's but belongs to another Kubernetes Service: ignored.
                        slice("default", "intruder", Some(NEW), &["10.9.9.9"]),
                    ],
                )
            } else if uri.starts_with("/api/v1/pods") {
                assert!(
                    query.contains("labelSelector=serving.runway.dev/service,serving.runway.dev/revision"),
                    "{query}"
                );
                list(
                    "PodList",
                    vec![
                        // Listed by the slice too: the slice wins.
                        pod("default", NEW, "10.1.0.1", true),
                        // Ready, and no slice lists it yet.
                        pod("default", NEW, "10.1.0.3", true),
                        // Another namespace's revision of the same name.
                        pod("elsewhere", NEW, "10.1.0.4", true),
                        pod("default", OLD, "10.1.0.5", true),
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
    // The first request of a 90/10 split goes to the 90% revision.
    let Route::Revision(hello, _) = registry.route("hello.default.svc.cluster.local", Entry::Internal, None) else {
        panic!("hello is routed");
    };
    assert_eq!(hello.id.key.name, "hello-00002");
    assert!(matches!(
        registry.route("other.default", Entry::Internal, None),
        Route::Unknown
    ));
    let fresh = registry.route("fresh.default", Entry::Internal, None);
    assert!(matches!(fresh, Route::NotReady(..)));
    // Who may invoke a Service comes with its routes, as its visibility does.
    assert_eq!(fresh.authorized_only(), Some(("default", "fresh")));
    assert_eq!(
        registry
            .route("hello.default.svc.cluster.local", Entry::Internal, None)
            .authorized_only(),
        None
    );
    // A claimed custom domain reaches its Service through the external entry point; an unclaimed one does not.
    assert!(matches!(
        registry.route("API.example.org:80", Entry::External, None),
        Route::Revision(..)
    ));
    assert!(matches!(
        registry.route("www.example.org", Entry::External, None),
        Route::Unknown
    ));
    // The tag's host reaches its revision and that revision's pod only.
    let Route::Revision(previous, _) = registry.route("previous-hello.default.example.com", Entry::External, None)
    else {
        panic!("the tag is routed");
    };
    assert_eq!(previous.id.key.name, "hello-00001");
    use runway_activator::revision::{Admission, Grant};
    let Admission::Granted(Grant::Pod(lease)) = previous.admit(Origin::Client) else {
        panic!("the old revision's pod is ready");
    };
    assert_eq!(lease.target.addr.to_string(), "10.1.0.5:8080");
    assert_eq!(registry.peers().ips().len(), 2);
    assert!(registry.peers().is_peer([10, 0, 0, 2].into()));
    // cc = 2 split between two activators: one slot here on each of the two pods (the slice's, and the pod that only
    // its own status shows yet); the intruder's address and the other namespace's pod are not pods of hello-00002.
    let leases: Vec<_> = (0..2)
        .map(|_| match hello.admit(Origin::Client) {
            Admission::Granted(Grant::Pod(lease)) => lease,
            _ => panic!("two pods are known and ready"),
        })
        .collect();
    let mut leased: Vec<String> = leases.iter().map(|l| l.target.addr.to_string()).collect();
    leased.sort();
    assert_eq!(leased, ["10.1.0.1:8080", "10.1.0.3:8080"]);
    assert!(
        matches!(hello.admit(Origin::Client), Admission::Queued(..)),
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
