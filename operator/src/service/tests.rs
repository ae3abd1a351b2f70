//! The reconcile flow against a mocked API server: each test lists the requests it expects, in order.

use super::*;
use std::sync::Mutex;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, FieldsV1, ManagedFieldsEntry, OwnerReference, Time};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;
use runway_api::conditions::READY;
use runway_api::{
    Revision, RevisionStatus, RolloutPhase, ServiceSpec, ServiceStatus, ServiceTemplate, TemplateMetadata,
    TrafficTarget, names,
};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use crate::autoscaler::board::Board;
use crate::autoscaler::policy::Defaults;
use crate::children;
use crate::metrics::Metrics;
use rules::desired;
use rules::network_policy::{Admitted, NetworkIsolation};
use rules::pod_security::{POD_SECURITY_ANNOTATION, PodSecurity};
use rules::upgrade::UPGRADE_ANNOTATION;

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn service_with(image: &str, generation: i64) -> Service {
    let mut s = Service::new(
        "hello",
        ServiceSpec {
            visibility: Default::default(),
            invokers: Default::default(),
            access_log_percent: None,
            template: ServiceTemplate {
                metadata: None,
                spec: PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                },
            },
            container_concurrency: 0,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            scaling: Default::default(),
            traffic: None,
            rollout: None,
            revision_history_limit: None,
        },
    );
    s.metadata.namespace = Some("default".into());
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(generation);
    s
}

fn service() -> Service {
    service_with("hello:1", 1)
}

/// Revision `name` of the Service at `generation` with `image`, as the API server returns it.
fn revision(name: &str, image: &str, generation: i64) -> Revision {
    revision_under(PodSecurity::Restricted, name, image, generation)
}

/// Likewise, made under pod security policy `security`.
fn revision_under(security: PodSecurity, name: &str, image: &str, generation: i64) -> Revision {
    let mut r = desired::revision(&service_with(image, generation), name, security);
    r.metadata.uid = Some(format!("uid-{name}"));
    r.metadata.generation = Some(1);
    r
}

/// A revision whose Ready status is `ready`, with `percent` of the traffic.
fn with_status(mut r: Revision, ready: &str, percent: i32) -> Revision {
    r.status = Some(RevisionStatus {
        conditions: vec![Condition {
            type_: READY.into(),
            status: ready.into(),
            reason: "PodsReady".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }],
        routed: percent > 0,
        traffic_percent: percent,
        ..RevisionStatus::default()
    });
    r
}

/// The revision's Deployment as it runs: `desired` pods, `ready` of them ready.
fn live_deployment(r: &Revision, desired: i32, ready: i32) -> Value {
    let mut d = desired::deployment("hello", r, Some(desired));
    d.metadata.resource_version = Some("5".into());
    d.status = Some(DeploymentStatus {
        replicas: Some(desired),
        ready_replicas: Some(ready),
        conditions: Some(vec![DeploymentCondition {
            type_: "Available".into(),
            status: if ready > 0 { "True" } else { "False" }.into(),
            ..DeploymentCondition::default()
        }]),
        ..DeploymentStatus::default()
    });
    serde_json::to_value(d).unwrap()
}

/// What the watches' caches hold.
#[derive(Default)]
struct Caches {
    pods: Vec<Pod>,
    revisions: Vec<Revision>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    board: Board,
}

fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = kube::runtime::reflector::store();
    // As a watch's first list fills it: the store is ready once the list is done.
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

fn context(client: Client, caches: Caches) -> Arc<Context> {
    context_with(client, caches, isolated())
}

/// Revisions' pods take connections from the activators of runway-system only.
fn isolated() -> NetworkIsolation {
    NetworkIsolation::Enforce(Admitted {
        activator_namespace: "runway-system".into(),
        activator_labels: [("app.kubernetes.io/name".to_owned(), "runway-activator".to_owned())].into(),
        probe_sources: vec![],
    })
}

fn context_with(client: Client, caches: Caches, isolation: NetworkIsolation) -> Arc<Context> {
    let reporter = kube::runtime::events::Reporter {
        controller: "runway-operator".into(),
        instance: None,
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        settings: Settings {
            domain: "example.com".into(),
            activator: ActivatorRef {
                namespace: "runway-system".into(),
                name: "runway-activator".into(),
            },
            defaults: Defaults::default(),
            isolation,
            pod_security: PodSecurity::Restricted,
        },
        metrics: Arc::new(Metrics::default()),
        pods: store(caches.pods),
        revisions: store(caches.revisions),
        deployments: store(caches.deployments),
        services: store(caches.services),
        board: Arc::new(Mutex::new(caches.board)),
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

fn ok(body: Value) -> impl FnOnce(&Value) -> Response<Body> {
    move |_| json_response(StatusCode::OK, &body)
}

/// Takes the next request that is not an event (events are answered and returned separately), checks its method
/// and path, answers with `respond(body)` and returns the body sent.
async fn expect(
    handle: &mut ApiHandle,
    events: &mut Vec<Value>,
    method: Method,
    path: &str,
    respond: impl FnOnce(&Value) -> Response<Body>,
) -> Value {
    loop {
        let (request, send) = handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("no request, wanted {method} {path}"));
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        if parts.uri.path().starts_with("/apis/events.k8s.io/") {
            send.send_response(json_response(StatusCode::CREATED, &body));
            events.push(body);
            continue;
        }
        assert_eq!(
            (&parts.method, parts.uri.path()),
            (&method, path),
            "query: {:?}",
            parts.uri.query()
        );
        send.send_response(respond(&body));
        return body;
    }
}

/// Answers a status patch of the Service with the whole Service carrying that status.
fn service_status(body: &Value) -> Response<Body> {
    let mut object = serde_json::to_value(service()).unwrap();
    object["status"] = body["status"].clone();
    json_response(StatusCode::OK, &object)
}

/// Answers a status patch of a revision with the whole revision carrying that status.
fn revision_status(r: &Revision) -> impl FnOnce(&Value) -> Response<Body> {
    let mut object = serde_json::to_value(r).unwrap();
    move |body| {
        object["status"] = body["status"].clone();
        json_response(StatusCode::OK, &object)
    }
}

/// Answers a create or an apply with the object sent, given a uid and a resourceVersion.
fn echo(body: &Value) -> Response<Body> {
    let mut body = body.clone();
    body["metadata"]["resourceVersion"] = json!("2");
    let uid = format!("uid-{}", body["metadata"]["name"].as_str().unwrap_or_default());
    body["metadata"]["uid"] = json!(uid);
    json_response(StatusCode::OK, &body)
}

const REVISIONS: &str = "/apis/serving.runway.dev/v1alpha1/namespaces/default/revisions";
const ROUTE_SERVICE: &str = "/api/v1/namespaces/default/services/hello";
const STATUS: &str = "/apis/serving.runway.dev/v1alpha1/namespaces/default/services/hello/status";

fn deployment_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/default/deployments/{name}")
}

fn kube_service_path(name: &str) -> String {
    format!("/api/v1/namespaces/default/services/{name}")
}

fn revision_path(name: &str) -> String {
    format!("{REVISIONS}/{name}")
}

fn network_policy_path(name: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/{name}")
}

fn run_reconcile(service: Service, caches: Caches) -> (tokio::task::JoinHandle<Result<Action, Error>>, ApiHandle) {
    run_reconcile_with(service, caches, isolated())
}

fn run_reconcile_with(
    service: Service,
    caches: Caches,
    isolation: NetworkIsolation,
) -> (tokio::task::JoinHandle<Result<Action, Error>>, ApiHandle) {
    let (mock, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context_with(Client::new(mock, "default"), caches, isolation);
    (tokio::spawn(reconcile(Arc::new(service), ctx)), handle)
}

/// Expects the creation of a revision's NetworkPolicy, then its Deployment (at `replicas`, handed to the
/// autoscaler) and pods' Service.
async fn creates_workload(api: &mut ApiHandle, events: &mut Vec<Value>, revision: &str, replicas: i32) {
    let policy = network_policy_path(revision);
    expect(api, events, Method::GET, &policy, |_| not_found()).await;
    let policy = expect(api, events, Method::PATCH, &policy, echo).await;
    assert_eq!(
        policy["metadata"]["ownerReferences"][0]["uid"],
        format!("uid-{revision}"),
        "owned by the revision"
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"][names::REVISION_LABEL],
        revision,
        "before the pods it selects exist"
    );
    let path = deployment_path(revision);
    expect(api, events, Method::GET, &path, |_| not_found()).await;
    let deployment = expect(api, events, Method::PATCH, &path, echo).await;
    assert_eq!(deployment["spec"]["replicas"], replicas, "created at the initial scale");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        format!("uid-{revision}"),
        "owned by the revision"
    );
    let scale = expect(api, events, Method::PATCH, &format!("{path}/scale"), echo).await;
    assert_eq!(
        scale["spec"]["replicas"], replicas,
        "handed to the autoscaler's field manager"
    );
    let pods = kube_service_path(&format!("{revision}-pods"));
    expect(api, events, Method::GET, &pods, |_| not_found()).await;
    expect(api, events, Method::PATCH, &pods, echo).await;
}

/// Expects an existing revision's workload to be read, answering with `deployment`: it already has everything
/// Runway sets, so it is not patched. Its NetworkPolicy and pods' Service are missing, and created.
async fn applies_workload(api: &mut ApiHandle, events: &mut Vec<Value>, revision: &str, deployment: &Value) {
    let policy = network_policy_path(revision);
    expect(api, events, Method::GET, &policy, |_| not_found()).await;
    expect(api, events, Method::PATCH, &policy, echo).await;
    let path = deployment_path(revision);
    expect(api, events, Method::GET, &path, ok(deployment.clone())).await;
    let pods = kube_service_path(&format!("{revision}-pods"));
    expect(api, events, Method::GET, &pods, |_| not_found()).await;
    expect(api, events, Method::PATCH, &pods, echo).await;
}

async fn applies_route(api: &mut ApiHandle, events: &mut Vec<Value>) {
    expect(api, events, Method::GET, ROUTE_SERVICE, |_| not_found()).await;
    expect(api, events, Method::PATCH, ROUTE_SERVICE, echo).await;
}

/// Answers the requests left until the reconcile is done, which must all be events, and adds them to `events`.
async fn remaining_events(handle: &mut ApiHandle, events: &mut Vec<Value>) {
    while let Some((request, send)) = handle.next_request().await {
        let path = request.uri().path().to_owned();
        assert!(path.starts_with("/apis/events.k8s.io/"), "unexpected {path}");
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        send.send_response(json_response(StatusCode::CREATED, &body));
        events.push(body);
    }
}

fn reasons(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

fn state(status: &Value, type_: &str) -> (String, String) {
    let c = condition(status, type_);
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

#[tokio::test]
async fn a_new_service_gets_its_first_revision_its_workload_a_route_and_a_status() {
    let (task, mut api) = run_reconcile(service(), Caches::default());
    let mut events = vec![];
    let created = expect(&mut api, &mut events, Method::POST, REVISIONS, echo).await;
    assert_eq!(created["metadata"]["name"], "hello-00001");
    assert_eq!(created["metadata"]["labels"][names::GENERATION_LABEL], "1");
    assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(created["spec"]["template"]["spec"]["containers"][0]["image"], "hello:1");
    assert_eq!(
        created["metadata"]["annotations"][POD_SECURITY_ANNOTATION], "Restricted",
        "a new revision runs restricted pods"
    );
    creates_workload(&mut api, &mut events, "hello-00001", 1).await;
    applies_route(&mut api, &mut events).await;
    let created: Revision = serde_json::from_value(created).unwrap();
    let revision = expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &format!("{}/status", revision_path("hello-00001")),
        revision_status(&created),
    )
    .await;
    assert_eq!(state(&revision, "Ready"), pair("Unknown", "Deploying"));
    assert_eq!(
        (&revision["status"]["routed"], &revision["status"]["trafficPercent"]),
        (&json!(true), &json!(100)),
        "the first revision takes the requests while it starts"
    );
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(status["status"]["url"], "http://hello.default.example.com");
    assert_eq!(status["status"]["latestCreatedRevisionName"], "hello-00001");
    assert!(status["status"].get("latestReadyRevisionName").is_none());
    assert_eq!(
        status["status"]["traffic"],
        json!([{"revisionName": "hello-00001", "latestRevision": true, "percent": 100}])
    );
    assert_eq!(status["status"]["trafficSummary"], "hello-00001=100%");
    assert_eq!(state(&status, "RoutesReady").0, "True");
    assert_eq!(
        state(&status, "Ready"),
        pair("Unknown", "Deploying"),
        "the pod is not ready yet"
    );
    let action = task.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(
        reasons(&events),
        ["Created", "Created", "Created", "Created", "Created"]
    );
}

#[tokio::test]
async fn a_revision_the_cache_does_not_show_yet_is_used_as_the_api_server_has_it() {
    let (task, mut api) = run_reconcile(service(), Caches::default());
    let mut events = vec![];
    let exists =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409});
    expect(&mut api, &mut events, Method::POST, REVISIONS, |_| {
        json_response(StatusCode::CONFLICT, &exists)
    })
    .await;
    let r = revision("hello-00001", "hello:1", 1);
    let live = serde_json::to_value(&r).unwrap();
    expect(
        &mut api,
        &mut events,
        Method::GET,
        &revision_path("hello-00001"),
        ok(live),
    )
    .await;
    creates_workload(&mut api, &mut events, "hello-00001", 1).await;
    applies_route(&mut api, &mut events).await;
    let path = format!("{}/status", revision_path("hello-00001"));
    expect(&mut api, &mut events, Method::PATCH, &path, revision_status(&r)).await;
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(status["status"]["latestCreatedRevisionName"], "hello-00001");
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RESYNC));
    assert_eq!(
        reasons(&events),
        ["Created", "Created", "Created", "Created"],
        "no event for the revision"
    );
}

#[tokio::test]
async fn a_service_being_deleted_is_left_to_the_garbage_collector() {
    let mut deleting = service();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let (task, mut api) = run_reconcile(deleting, Caches::default());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    assert!(api.next_request().await.is_none(), "no request was made");
}

#[tokio::test]
async fn a_deployment_that_is_not_ours_is_left_alone_and_reported() {
    let r = revision("hello-00001", "hello:1", 1);
    let caches = Caches {
        revisions: vec![r.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(service(), caches);
    let mut events = vec![];
    let policy = network_policy_path("hello-00001");
    expect(&mut api, &mut events, Method::GET, &policy, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &policy, echo).await;
    let foreign = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello-00001", "namespace": "default"}});
    expect(
        &mut api,
        &mut events,
        Method::GET,
        &deployment_path("hello-00001"),
        ok(foreign),
    )
    .await;
    // The next request is already about the pods' Service: the Deployment was not patched.
    let pods = kube_service_path("hello-00001-pods");
    expect(&mut api, &mut events, Method::GET, &pods, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &pods, echo).await;
    applies_route(&mut api, &mut events).await;
    let revision = expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &format!("{}/status", revision_path("hello-00001")),
        revision_status(&r),
    )
    .await;
    assert_eq!(state(&revision, "Ready"), pair("False", "NotOwned"));
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(state(&status, "Ready"), pair("False", "NotOwned"));
    assert_eq!(
        condition(&status, "ConfigurationReady")["message"],
        "Deployment default/hello-00001 exists and is not owned by this Runway Revision"
    );
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RETRY));
    assert_eq!(reasons(&events), ["Created", "NotOwned", "Created", "Created"]);
}

#[tokio::test]
async fn an_unfinished_replicas_hand_over_is_completed_before_the_apply() {
    let r = revision("hello-00001", "hello:1", 1);
    let mut live = desired::deployment("hello", &r, None);
    live.metadata.resource_version = Some("7".into());
    live.spec = Some(DeploymentSpec {
        replicas: Some(3),
        ..live.spec.unwrap()
    });
    live.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some(children::FIELD_MANAGER.into()),
        operation: Some("Apply".into()),
        fields_v1: Some(FieldsV1(json!({"f:spec": {"f:replicas": {}}}))),
        ..ManagedFieldsEntry::default()
    }]);
    let mut live = serde_json::to_value(&live).unwrap();
    // Edited by hand meanwhile, so that the apply is sent.
    live["spec"]["revisionHistoryLimit"] = json!(10);
    let caches = Caches {
        revisions: vec![with_status(r.clone(), "Unknown", 100)],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(service(), caches);
    let mut events = vec![];
    let policy = network_policy_path("hello-00001");
    expect(&mut api, &mut events, Method::GET, &policy, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &policy, echo).await;
    let path = deployment_path("hello-00001");
    expect(&mut api, &mut events, Method::GET, &path, ok(live.clone())).await;
    let scale = expect(&mut api, &mut events, Method::PATCH, &format!("{path}/scale"), echo).await;
    assert_eq!(scale["spec"]["replicas"], 3, "the current count, unchanged");
    let applied = expect(&mut api, &mut events, Method::PATCH, &path, ok(live)).await;
    assert!(
        applied["spec"].get("replicas").is_none(),
        "the reconciler no longer sends replicas"
    );
    let pods = kube_service_path("hello-00001-pods");
    expect(&mut api, &mut events, Method::GET, &pods, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &pods, echo).await;
    applies_route(&mut api, &mut events).await;
    let status_path = format!("{}/status", revision_path("hello-00001"));
    expect(&mut api, &mut events, Method::PATCH, &status_path, revision_status(&r)).await;
    expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    task.await.unwrap().unwrap();
    assert_eq!(
        reasons(&events),
        ["Created", "Created", "Created"],
        "the unchanged Deployment has no event"
    );
}

#[tokio::test]
async fn a_child_that_drifted_is_patched_back_and_one_that_did_not_is_left_alone() {
    let r = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let caches = Caches {
        revisions: vec![r.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(service(), caches);
    let mut events = vec![];
    let mut live_policy = serde_json::to_value(rules::network_policy::network_policy(
        "hello",
        &r,
        &match isolated() {
            NetworkIsolation::Enforce(admitted) => admitted,
            NetworkIsolation::Off => unreachable!(),
        },
    ))
    .unwrap();
    live_policy["metadata"]["resourceVersion"] = json!("4");
    live_policy["metadata"]["generation"] = json!(1);
    let policy = network_policy_path("hello-00001");
    expect(&mut api, &mut events, Method::GET, &policy, ok(live_policy)).await;
    let path = deployment_path("hello-00001");
    let repaired = live_deployment(&r, 2, 2);
    let mut drifted = repaired.clone();
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello:edited");
    expect(&mut api, &mut events, Method::GET, &path, ok(drifted)).await;
    let applied = expect(&mut api, &mut events, Method::PATCH, &path, ok(repaired)).await;
    assert_eq!(applied["spec"]["template"]["spec"]["containers"][0]["image"], "hello:1");
    assert!(
        applied["spec"].get("replicas").is_none(),
        "replicas are the autoscaler's"
    );
    // The NetworkPolicy (above), the pods' Service and the route Service already have what Runway sets: read, not
    // patched.
    let pods = kube_service_path("hello-00001-pods");
    let mut live_pods = serde_json::to_value(desired::pods_service("hello", &r)).unwrap();
    live_pods["metadata"]["resourceVersion"] = json!("3");
    live_pods["spec"]["clusterIPs"] = json!(["None"]);
    expect(&mut api, &mut events, Method::GET, &pods, ok(live_pods)).await;
    let activator = ActivatorRef {
        namespace: "runway-system".into(),
        name: "runway-activator".into(),
    };
    let route = serde_json::to_value(desired::route_service(&service(), &activator)).unwrap();
    expect(&mut api, &mut events, Method::GET, ROUTE_SERVICE, ok(route)).await;
    expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &format!("{}/status", revision_path("hello-00001")),
        revision_status(&r),
    )
    .await;
    expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    task.await.unwrap().unwrap();
    remaining_events(&mut api, &mut events).await;
    assert_eq!(reasons(&events), ["Updated"], "only the Deployment changed");
}

#[tokio::test]
async fn with_isolation_off_the_policies_revisions_control_are_deleted_and_others_left_alone() {
    let first = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let second = with_status(revision("hello-00002", "hello:2", 2), "True", 0);
    let mut svc = service_with("hello:2", 2);
    svc.status = Some(ServiceStatus {
        latest_created_revision_name: Some("hello-00002".into()),
        latest_ready_revision_name: Some("hello-00002".into()),
        ..ServiceStatus::default()
    });
    let caches = Caches {
        revisions: vec![first.clone(), second.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile_with(svc, caches, NetworkIsolation::Off);
    let mut events = vec![];
    let policy = |name: &str, owner: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-policy-{name}"),
                "ownerReferences": [{"apiVersion": "serving.runway.dev/v1alpha1", "kind": "Revision", "name": name,
                    "uid": owner, "controller": true}]},
            "spec": {"podSelector": {}}})
    };
    // hello-00001's own policy, made while isolation was on: deleted, while it is still that object.
    let path = network_policy_path("hello-00001");
    let owned = policy("hello-00001", "uid-hello-00001");
    expect(&mut api, &mut events, Method::GET, &path, ok(owned)).await;
    let success = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let delete = expect(&mut api, &mut events, Method::DELETE, &path, ok(success)).await;
    assert_eq!(delete["preconditions"]["uid"], "uid-policy-hello-00001");
    let deployment = deployment_path("hello-00001");
    expect(
        &mut api,
        &mut events,
        Method::GET,
        &deployment,
        ok(live_deployment(&first, 1, 1)),
    )
    .await;
    let pods = kube_service_path("hello-00001-pods");
    expect(&mut api, &mut events, Method::GET, &pods, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &pods, echo).await;
    // hello-00002's name is taken by someone else's policy: not Runway's to delete, and no problem either.
    let foreign = policy("hello-00002", "someone-else");
    expect(
        &mut api,
        &mut events,
        Method::GET,
        &network_policy_path("hello-00002"),
        ok(foreign),
    )
    .await;
    let deployment = deployment_path("hello-00002");
    expect(
        &mut api,
        &mut events,
        Method::GET,
        &deployment,
        ok(live_deployment(&second, 1, 1)),
    )
    .await;
    let pods = kube_service_path("hello-00002-pods");
    expect(&mut api, &mut events, Method::GET, &pods, |_| not_found()).await;
    expect(&mut api, &mut events, Method::PATCH, &pods, echo).await;
    applies_route(&mut api, &mut events).await;
    for r in [&first, &second] {
        let path = format!("{}/status", revision_path(&r.name_any()));
        let written = expect(&mut api, &mut events, Method::PATCH, &path, revision_status(r)).await;
        assert_eq!(state(&written, "Ready").0, "True", "{}", r.name_any());
    }
    expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    remaining_events(&mut api, &mut events).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RESYNC));
    let deleted: Vec<&Value> = events.iter().filter(|e| e["reason"] == "Deleted").collect();
    assert_eq!(deleted.len(), 1, "{events:?}");
    assert_eq!(
        deleted[0]["note"],
        "NetworkPolicy hello-00001 deleted: workload network policies are off"
    );
}

fn crashing_pod(revision: &str, namespace: &str) -> Pod {
    let created = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(30);
    serde_json::from_value(json!({
        "metadata": {"name": format!("{revision}-5d8f7c9b4-x2x9k"), "namespace": namespace,
            "creationTimestamp": created.to_string(),
            "labels": {"serving.runway.dev/service": "hello", "serving.runway.dev/revision": revision,
                "pod-template-hash": "5d8f7c9b4"}},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "app", "image": "hello:1", "imageID": "", "ready": false,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "DATABASE_URL is not set"}}}]}
    }))
    .unwrap()
}

const EXITS: &str = "container exits with code 1 (DATABASE_URL is not set), restarted 3 times";

#[tokio::test]
async fn crashing_pods_make_the_revision_and_the_service_not_ready_with_their_reason_and_a_warning() {
    let r = revision("hello-00001", "hello:1", 1);
    let caches = Caches {
        pods: vec![
            crashing_pod("hello-00001", "default"),
            crashing_pod("hello-00001", "elsewhere"),
        ],
        revisions: vec![r.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(service(), caches);
    let mut events = vec![];
    applies_workload(&mut api, &mut events, "hello-00001", &live_deployment(&r, 1, 0)).await;
    applies_route(&mut api, &mut events).await;
    let status_path = format!("{}/status", revision_path("hello-00001"));
    let revision = expect(&mut api, &mut events, Method::PATCH, &status_path, revision_status(&r)).await;
    assert_eq!(state(&revision, "Ready"), pair("False", "ContainerExits"));
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    for type_ in ["Ready", "ConfigurationReady"] {
        let c = condition(&status, type_);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str(), c["message"].as_str()),
            (Some("False"), Some("ContainerExits"), Some(EXITS)),
            "{type_}"
        );
    }
    remaining_events(&mut api, &mut events).await;
    let action = task.await.unwrap().unwrap();
    assert_eq!(reasons(&events), ["Created", "Created", "Created", "ContainerExits"]);
    assert_eq!(events[3]["type"], "Warning");
    assert_eq!(events[3]["note"], format!("hello-00001: {EXITS}"));
    // The pod is 30 s into the 120 s deadline: look again when it passes.
    let after = format!("{action:?}");
    assert!(after.contains("requeue_after: Some(90."), "{after}");
}

#[tokio::test]
async fn a_new_template_makes_a_revision_while_the_ready_one_keeps_the_traffic() {
    let first = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let mut svc = service_with("hello:2", 2);
    svc.status = Some(ServiceStatus {
        latest_created_revision_name: Some("hello-00001".into()),
        latest_ready_revision_name: Some("hello-00001".into()),
        ..ServiceStatus::default()
    });
    let caches = Caches {
        revisions: vec![first.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    let created = expect(&mut api, &mut events, Method::POST, REVISIONS, echo).await;
    assert_eq!(created["metadata"]["name"], "hello-00002");
    let created: Revision = serde_json::from_value(created).unwrap();
    applies_workload(&mut api, &mut events, "hello-00001", &live_deployment(&first, 2, 2)).await;
    creates_workload(&mut api, &mut events, "hello-00002", 1).await;
    applies_route(&mut api, &mut events).await;
    let old = expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &format!("{}/status", revision_path("hello-00001")),
        revision_status(&first),
    )
    .await;
    assert_eq!(old["status"]["trafficPercent"], 100);
    let new = expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &format!("{}/status", revision_path("hello-00002")),
        revision_status(&created),
    )
    .await;
    assert_eq!(
        (&new["status"]["routed"], &new["status"]["trafficPercent"]),
        (&json!(false), &json!(0))
    );
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(status["status"]["latestCreatedRevisionName"], "hello-00002");
    assert_eq!(status["status"]["latestReadyRevisionName"], "hello-00001");
    assert_eq!(status["status"]["trafficSummary"], "hello-00001=100%");
    assert_eq!(state(&status, "ConfigurationReady"), pair("Unknown", "Deploying"));
    assert_eq!(
        condition(&status, "Ready")["message"],
        "0 of 1 pods ready; requests go to hello-00001=100%"
    );
    assert_eq!(status["status"]["replicaSummary"], "2/3");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn revisions_past_the_history_limit_are_deleted_once_at_zero_with_an_event() {
    let revisions: Vec<Revision> = (1..=3)
        .map(|g| {
            with_status(
                revision(&names::revision_name("hello", g), &format!("hello:{g}"), g),
                "True",
                0,
            )
        })
        .collect();
    let mut svc = service_with("hello:3", 3);
    svc.spec.revision_history_limit = Some(1);
    let caches = Caches {
        revisions: revisions.clone(),
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    // hello-00001 still has a pod, hello-00002 is at zero, hello-00003 serves.
    for (r, pods) in revisions.iter().zip([1, 0, 1]) {
        applies_workload(&mut api, &mut events, &r.name_any(), &live_deployment(r, pods, pods)).await;
    }
    applies_route(&mut api, &mut events).await;
    for r in &revisions {
        let path = format!("{}/status", revision_path(&r.name_any()));
        expect(&mut api, &mut events, Method::PATCH, &path, revision_status(r)).await;
    }
    expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    let delete = expect(
        &mut api,
        &mut events,
        Method::DELETE,
        &revision_path("hello-00002"),
        ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
    )
    .await;
    assert_eq!(delete["preconditions"]["uid"], "uid-hello-00002");
    remaining_events(&mut api, &mut events).await;
    task.await.unwrap().unwrap();
    let deleted = events.iter().find(|e| e["reason"] == "RevisionDeleted").unwrap();
    assert_eq!(
        deleted["note"],
        "deleted revision hello-00002: not routed, not the latest, and older than the 1 most recent (revisionHistoryLimit)"
    );
}

#[tokio::test]
async fn tags_get_route_services_and_removed_tags_lose_theirs() {
    let r = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let mut svc = service();
    svc.spec.traffic = Some(vec![TrafficTarget {
        latest_revision: Some(true),
        percent: Some(100),
        tag: Some("canary".into()),
        ..TrafficTarget::default()
    }]);
    let caches = Caches {
        revisions: vec![r.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    applies_workload(&mut api, &mut events, "hello-00001", &live_deployment(&r, 1, 1)).await;
    applies_route(&mut api, &mut events).await;
    let tag_path = kube_service_path("canary-hello");
    expect(&mut api, &mut events, Method::GET, &tag_path, |_| not_found()).await;
    let tag_route = expect(&mut api, &mut events, Method::PATCH, &tag_path, echo).await;
    assert_eq!(tag_route["metadata"]["labels"][names::TAG_LABEL], "canary");
    let owned = |name: &str, tag: &str| {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "labels": {names::SERVICE_LABEL: "hello", names::TAG_LABEL: tag},
            "ownerReferences": [{"apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service", "name": "hello",
                "uid": "uid-1", "controller": true}]}})
    };
    let list = json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {},
        "items": [owned("canary-hello", "canary"), owned("old-hello", "old")]});
    expect(
        &mut api,
        &mut events,
        Method::GET,
        "/api/v1/namespaces/default/services",
        ok(list),
    )
    .await;
    expect(
        &mut api,
        &mut events,
        Method::DELETE,
        &kube_service_path("old-hello"),
        ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
    )
    .await;
    let path = format!("{}/status", revision_path("hello-00001"));
    let revision = expect(&mut api, &mut events, Method::PATCH, &path, revision_status(&r)).await;
    assert_eq!(revision["status"]["tags"], json!(["canary"]));
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(
        status["status"]["traffic"][0]["url"],
        "http://canary-hello.default.example.com"
    );
    task.await.unwrap().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Deleted" && e["note"] == "Service old-hello deleted: its tag is no longer routed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_taken_revision_name_is_refused_and_the_previous_revision_stays() {
    let first = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let mut svc = service_with("hello:2", 3);
    svc.spec.template.metadata = Some(TemplateMetadata {
        name: Some("hello-blue".into()),
        ..TemplateMetadata::default()
    });
    svc.status = Some(ServiceStatus {
        latest_created_revision_name: Some("hello-00001".into()),
        latest_ready_revision_name: Some("hello-00001".into()),
        ..ServiceStatus::default()
    });
    let mut foreign = revision("hello-blue", "other:1", 1);
    foreign.metadata.owner_references = Some(vec![OwnerReference {
        uid: "someone-else".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    let caches = Caches {
        revisions: vec![first.clone(), foreign],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    applies_workload(&mut api, &mut events, "hello-00001", &live_deployment(&first, 1, 1)).await;
    applies_route(&mut api, &mut events).await;
    let path = format!("{}/status", revision_path("hello-00001"));
    expect(&mut api, &mut events, Method::PATCH, &path, revision_status(&first)).await;
    let status = expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    assert_eq!(state(&status, "ConfigurationReady"), pair("False", "RevisionNameTaken"));
    assert_eq!(status["status"]["latestCreatedRevisionName"], "hello-00001");
    assert_eq!(status["status"]["trafficSummary"], "hello-00001=100%");
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RETRY));
    assert_eq!(reasons(&events)[0], "RevisionNameTaken");
}

/// The Deployment the release before revisions made for the Service: rolled out at `replicas`, running the pods
/// revision `hello-00004` would run at `image` (the release's labels, without the revision's).
fn legacy_deployment(replicas: i32, image: &str) -> Deployment {
    let revision = revision_under(PodSecurity::Unchanged, "hello-00004", image, 4);
    let mut template = desired::deployment("hello", &revision, None).spec.unwrap().template;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(names::REVISION_LABEL);
    }
    serde_json::from_value(json!({
        "metadata": {"name": "hello", "namespace": "default", "uid": "uid-legacy", "generation": 2,
            "labels": {names::SERVICE_LABEL: "hello", names::MANAGED_BY_LABEL: names::MANAGED_BY},
            "ownerReferences": [{"apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service", "name": "hello",
                "uid": "uid-1", "controller": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {names::SERVICE_LABEL: "hello"}},
            "template": template},
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas},
    }))
    .unwrap()
}

/// Revision `hello-00004` at hello:1 with the upgrade's mark, made to run the old pods unchanged.
fn marked_revision() -> Revision {
    let mut r = revision_under(PodSecurity::Unchanged, "hello-00004", "hello:1", 4);
    r.metadata
        .annotations
        .get_or_insert_default()
        .insert(UPGRADE_ANNOTATION.into(), "hello".into());
    r
}

/// A pod the release before revisions started: labelled with the Service only.
fn old_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "hello-7c9d8-abcde", "namespace": "default",
            "labels": {names::SERVICE_LABEL: "hello", "pod-template-hash": "7c9d8"}}
    }))
    .unwrap()
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/default/replicasets";

/// Expects the first steps of every upgrade's first reconcile: revision `hello-00004` created and marked, the old
/// pod labelled with it; returns the revision.
async fn creates_the_marked_revision(api: &mut ApiHandle, events: &mut Vec<Value>) -> Revision {
    let created = expect(api, events, Method::POST, REVISIONS, echo).await;
    assert_eq!(created["metadata"]["name"], "hello-00004");
    assert_eq!(
        created["metadata"]["annotations"][POD_SECURITY_ANNOTATION], "Unchanged",
        "the old pods' template, so that they are handed over without a restart"
    );
    let created: Revision = serde_json::from_value(created).unwrap();
    let marked = serde_json::to_value(marked_revision()).unwrap();
    let mark = expect(api, events, Method::PATCH, &revision_path("hello-00004"), ok(marked)).await;
    assert_eq!(mark["metadata"]["annotations"][UPGRADE_ANNOTATION], "hello");
    let pod = "/api/v1/namespaces/default/pods/hello-7c9d8-abcde";
    let labelled = expect(api, events, Method::PATCH, pod, echo).await;
    assert_eq!(
        labelled,
        json!({"metadata": {"labels": {names::REVISION_LABEL: "hello-00004"}}}),
        "the old pod serves as the revision's at once"
    );
    created
}

fn upgrading_service() -> Service {
    let mut svc = service_with("hello:1", 4);
    // As the release before revisions wrote it: no revision names.
    svc.status = Some(ServiceStatus::default());
    svc
}

/// Expects the rest of an upgrade's reconcile once revision `hello-00004` may have its Deployment: created with the
/// old pods' count (3), the route, both statuses, and nothing else but events.
async fn creates_the_first_workload(api: &mut ApiHandle, events: &mut Vec<Value>, r: &Revision) {
    creates_workload(api, events, "hello-00004", 3).await;
    applies_route(api, events).await;
    let path = format!("{}/status", revision_path("hello-00004"));
    expect(api, events, Method::PATCH, &path, revision_status(r)).await;
    expect(api, events, Method::PATCH, STATUS, service_status).await;
    remaining_events(api, events).await;
}

/// The first reconcile after the upgrade, with the previous release's Deployment (3 pods at `image`) and one of
/// its pods.
fn upgrade_from(image: &str) -> (tokio::task::JoinHandle<Result<Action, Error>>, ApiHandle) {
    let caches = Caches {
        deployments: vec![legacy_deployment(3, image)],
        pods: vec![old_pod()],
        ..Caches::default()
    };
    run_reconcile(upgrading_service(), caches)
}

#[tokio::test]
async fn on_upgrade_pods_that_run_the_revisions_template_are_orphaned_for_it_not_restarted() {
    let (task, mut api) = upgrade_from("hello:1");
    let mut events = vec![];
    creates_the_marked_revision(&mut api, &mut events).await;
    // The dry run answers with the template the revision's Deployment would have: the old one plus the label.
    let probe = expect(&mut api, &mut events, Method::POST, DEPLOYMENTS, echo).await;
    assert_eq!(probe["metadata"]["name"], "hello-00004");
    let success = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let delete = expect(
        &mut api,
        &mut events,
        Method::DELETE,
        &deployment_path("hello"),
        ok(success),
    )
    .await;
    assert_eq!(delete["propagationPolicy"], "Orphan", "its ReplicaSet and pods stay");
    assert_eq!(delete["preconditions"]["uid"], "uid-legacy");
    // The revision's Deployment waits until the ReplicaSet is free to adopt.
    remaining_events(&mut api, &mut events).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(upgrade::HANDOVER_RECHECK));
    assert_eq!(reasons(&events), ["Created", "Upgrading"]);
}

/// A ReplicaSet of the old Deployment, orphaned, at `replicas`, labelled with `revision` when given.
fn orphaned_replica_set(name: &str, replicas: i32, revision: Option<&str>) -> Value {
    let mut labels = json!({names::SERVICE_LABEL: "hello", "pod-template-hash": "7c9d8"});
    if let Some(revision) = revision {
        labels[names::REVISION_LABEL] = revision.into();
    }
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {names::SERVICE_LABEL: "hello"}}}})
}

fn replica_set_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": items})
}

#[tokio::test]
async fn once_the_old_deployment_is_gone_its_replica_set_gets_the_revisions_label_and_earlier_ones_go() {
    let caches = Caches {
        revisions: vec![marked_revision()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(upgrading_service(), caches);
    let mut events = vec![];
    let listed = replica_set_list(vec![
        orphaned_replica_set("hello-old", 0, None),
        orphaned_replica_set("hello-7c9d8", 3, None),
    ]);
    expect(&mut api, &mut events, Method::GET, REPLICA_SETS, ok(listed)).await;
    let success = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let stale = format!("{REPLICA_SETS}/hello-old");
    expect(&mut api, &mut events, Method::DELETE, &stale, ok(success)).await;
    let current = format!("{REPLICA_SETS}/hello-7c9d8");
    let replica_set = orphaned_replica_set("hello-7c9d8", 3, Some("hello-00004"));
    let patch = expect(&mut api, &mut events, Method::PATCH, &current, ok(replica_set)).await;
    let label = json!({names::REVISION_LABEL: "hello-00004"});
    assert_eq!(patch["metadata"]["labels"], label);
    assert_eq!(
        patch["spec"]["template"]["metadata"]["labels"], label,
        "its template becomes the revision's"
    );
    remaining_events(&mut api, &mut events).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(upgrade::HANDOVER_RECHECK));
}

#[tokio::test]
async fn the_revisions_deployment_is_created_with_as_many_pods_as_the_replica_set_it_adopts() {
    let r = marked_revision();
    let caches = Caches {
        revisions: vec![r.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(upgrading_service(), caches);
    let mut events = vec![];
    let listed = replica_set_list(vec![orphaned_replica_set("hello-7c9d8", 3, Some("hello-00004"))]);
    expect(&mut api, &mut events, Method::GET, REPLICA_SETS, ok(listed)).await;
    creates_the_first_workload(&mut api, &mut events, &r).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn on_upgrade_pods_of_another_template_are_replaced_once_with_as_many() {
    let (task, mut api) = upgrade_from("hello:0");
    let mut events = vec![];
    let created = creates_the_marked_revision(&mut api, &mut events).await;
    expect(&mut api, &mut events, Method::POST, DEPLOYMENTS, echo).await;
    // The revision is not ready yet: the previous release's objects stay.
    creates_the_first_workload(&mut api, &mut events, &created).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn on_upgrade_the_previous_releases_objects_and_the_mark_go_once_the_first_revision_is_ready() {
    let r = with_status(marked_revision(), "True", 100);
    let svc = service_with("hello:1", 4);
    let caches = Caches {
        revisions: vec![r.clone()],
        deployments: vec![
            legacy_deployment(3, "hello:0"),
            serde_json::from_value(live_deployment(&r, 3, 3)).unwrap(),
        ],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    applies_workload(&mut api, &mut events, "hello-00004", &live_deployment(&r, 3, 3)).await;
    applies_route(&mut api, &mut events).await;
    let path = format!("{}/status", revision_path("hello-00004"));
    expect(&mut api, &mut events, Method::PATCH, &path, revision_status(&r)).await;
    expect(&mut api, &mut events, Method::PATCH, STATUS, service_status).await;
    let legacy_pods = json!({"metadata": {"name": "hello-pods", "namespace": "default", "uid": "uid-legacy-pods",
        "ownerReferences": [{"apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service", "name": "hello",
            "uid": "uid-1", "controller": true}]}});
    let success = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let pods_service = kube_service_path("hello-pods");
    expect(&mut api, &mut events, Method::GET, &pods_service, ok(legacy_pods)).await;
    let delete = expect(
        &mut api,
        &mut events,
        Method::DELETE,
        &pods_service,
        ok(success.clone()),
    )
    .await;
    assert_eq!(delete["preconditions"]["uid"], "uid-legacy-pods");
    let delete = expect(
        &mut api,
        &mut events,
        Method::DELETE,
        &deployment_path("hello"),
        ok(success),
    )
    .await;
    assert_eq!(delete["preconditions"]["uid"], "uid-legacy");
    let unmark = expect(
        &mut api,
        &mut events,
        Method::PATCH,
        &revision_path("hello-00004"),
        ok(serde_json::to_value(&r).unwrap()),
    )
    .await;
    assert_eq!(unmark["metadata"]["annotations"][UPGRADE_ANNOTATION], Value::Null);
    remaining_events(&mut api, &mut events).await;
    task.await.unwrap().unwrap();
    assert!(events.iter().any(|e| e["reason"] == "Upgraded"), "{events:?}");
}

fn rolling(revision_history: &[&str]) -> Service {
    let mut svc = service_with("hello:2", 2);
    svc.spec.rollout = Some(runway_api::Rollout {
        duration_seconds: 30,
        max_error_percent: Some(10),
    });
    svc.status = Some(ServiceStatus {
        latest_created_revision_name: revision_history.last().map(|r| (*r).to_owned()),
        latest_ready_revision_name: Some("hello-00001".into()),
        ..ServiceStatus::default()
    });
    svc
}

/// Expects the reconcile of revisions 1 (two ready pods) and 2 (`next_pods` ready), up to the Service's status,
/// which it returns.
async fn reconciles_two(
    api: &mut ApiHandle,
    events: &mut Vec<Value>,
    first: &Revision,
    second: &Revision,
    next_pods: i32,
) -> Value {
    applies_workload(api, events, "hello-00001", &live_deployment(first, 2, 2)).await;
    applies_workload(
        api,
        events,
        "hello-00002",
        &live_deployment(second, next_pods, next_pods),
    )
    .await;
    applies_route(api, events).await;
    for r in [first, second] {
        let path = format!("{}/status", revision_path(&r.name_any()));
        expect(api, events, Method::PATCH, &path, revision_status(r)).await;
    }
    expect(api, events, Method::PATCH, STATUS, service_status).await
}

#[tokio::test]
async fn a_new_ready_revision_starts_a_rollout_that_keeps_the_traffic_on_the_previous_one() {
    let first = with_status(revision("hello-00001", "hello:1", 1), "True", 100);
    let second = with_status(revision("hello-00002", "hello:2", 2), "True", 0);
    let caches = Caches {
        revisions: vec![first.clone(), second.clone()],
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(rolling(&["hello-00001", "hello-00002"]), caches);
    let mut events = vec![];
    let status = reconciles_two(&mut api, &mut events, &first, &second, 1).await;
    remaining_events(&mut api, &mut events).await;
    let rollout = &status["status"]["rollout"];
    assert_eq!(
        (
            &rollout["phase"],
            &rollout["previousRevisionName"],
            &rollout["nextRevisionName"],
            &rollout["nextPercent"]
        ),
        (
            &json!("Progressing"),
            &json!("hello-00001"),
            &json!("hello-00002"),
            &json!(0)
        )
    );
    assert_eq!(status["status"]["latestReadyRevisionName"], "hello-00002");
    assert_eq!(status["status"]["trafficSummary"], "hello-00001=100%");
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::ZERO),
        "the first step at once"
    );
    assert!(events.iter().any(|e| e["reason"] == "RolloutStarted"), "{events:?}");
}

#[tokio::test]
async fn a_rollout_whose_new_revision_answers_5xx_is_rolled_back_with_the_figures() {
    let first = with_status(revision("hello-00001", "hello:1", 1), "True", 90);
    let second = with_status(revision("hello-00002", "hello:2", 2), "True", 10);
    let mut svc = rolling(&["hello-00001", "hello-00002"]);
    let started = (Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(2)).to_string();
    svc.status.as_mut().unwrap().latest_ready_revision_name = Some("hello-00002".into());
    svc.status.as_mut().unwrap().rollout = Some(runway_api::RolloutStatus {
        phase: RolloutPhase::Progressing,
        previous_revision_name: "hello-00001".into(),
        next_revision_name: "hello-00002".into(),
        next_percent: 10,
        started_at: started.clone(),
        last_step_at: started,
        message: None,
    });
    let mut board = Board::default();
    board.set_known(["10.0.0.1".to_owned()].into());
    let load = |revision: &str, requests, server_errors| runway_api::stats::ServiceLoad {
        namespace: "default".into(),
        name: "hello".into(),
        revision: revision.into(),
        concurrency: 1.0,
        rps: 1.0,
        queued: 0,
        in_flight: 0,
        requests,
        server_errors,
        unusable_pods: 0,
    };
    let report = runway_api::stats::LoadReport {
        activator: "a".into(),
        kind: runway_api::stats::ReportKind::Periodic,
        interval_ms: 1000,
        services: vec![load("hello-00001", 90, 0), load("hello-00002", 10, 10)],
    };
    board.record("10.0.0.1", report, Instant::now());
    let caches = Caches {
        revisions: vec![first.clone(), second.clone()],
        board,
        ..Caches::default()
    };
    let (task, mut api) = run_reconcile(svc, caches);
    let mut events = vec![];
    let status = reconciles_two(&mut api, &mut events, &first, &second, 1).await;
    remaining_events(&mut api, &mut events).await;
    assert_eq!(status["status"]["rollout"]["phase"], "RolledBack");
    assert_eq!(status["status"]["trafficSummary"], "hello-00001=100%");
    assert_eq!(state(&status, "ConfigurationReady"), pair("False", "RolloutFailed"));
    assert_eq!(state(&status, "Ready"), pair("False", "RolloutFailed"));
    task.await.unwrap().unwrap();
    let failed = events.iter().find(|e| e["reason"] == "RolloutFailed").unwrap();
    assert_eq!(failed["type"], "Warning");
    assert!(
        failed["note"].as_str().unwrap().starts_with(
            "hello-00002 answered 10 of 10 requests with 5xx (100.0%), hello-00001 answered 0 of 90 (0.0%)"
        ),
        "{failed}"
    );
}

#[tokio::test]
async fn a_reconcile_before_the_revisions_are_listed_changes_nothing_and_runs_again() {
    let (mock, mut api) = mock::pair::<Request<Body>, Response<Body>>();
    let mut ctx = Arc::into_inner(context(Client::new(mock, "default"), Caches::default())).unwrap();
    let (revisions, mut writer) = kube::runtime::reflector::store();
    ctx.revisions = revisions;
    let ctx = Arc::new(ctx);
    // Only scaling changed since revision 1: the revision is reused, once the cache shows it.
    let service = Arc::new(service_with("hello:1", 2));
    let action = reconcile(service.clone(), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(CACHES_RETRY));
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitApply(revision("hello-00001", "hello:1", 1)));
    writer.apply_watcher_event(&Event::InitDone);
    let task = tokio::spawn(reconcile(service, ctx));
    let mut events = vec![];
    let path = network_policy_path("hello-00001");
    expect(&mut api, &mut events, Method::GET, &path, |_| not_found()).await;
    drop(api);
    let _ = task.await;
}

/// A new leader reconciles many Services while its caches still list (CI: a Service was never reconciled after a
/// `helm upgrade`, and the old leader's shutdown hung until it was killed). A store wakes only the last of the
/// futures waiting for it, so no reconcile may wait for one.
#[tokio::test]
async fn reconciles_that_start_before_the_caches_are_listed_all_finish() {
    let (mock, api) = mock::pair::<Request<Body>, Response<Body>>();
    drop(api); // an API call fails at once: only whether each reconcile returns matters
    let mut ctx = Arc::into_inner(context(Client::new(mock, "default"), Caches::default())).unwrap();
    let (revisions, mut writer) = kube::runtime::reflector::store();
    ctx.revisions = revisions;
    let ctx = Arc::new(ctx);
    let reconciles: Vec<_> = (0..4)
        .map(|_| tokio::spawn(reconcile(Arc::new(service_with("hello:1", 2)), ctx.clone())))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitDone);
    for (index, reconcile) in reconciles.into_iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(5), reconcile)
            .await
            .unwrap_or_else(|_| panic!("reconcile {index} still waits after the caches were listed"))
            .unwrap()
            .ok();
    }
}
