//! The Service reconciler: fetch, build the desired children, apply them, write the status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use runway_api::Service;
use tracing::{info, warn};

use crate::autoscaler::policy::{Defaults, Policy};
use crate::children::{self, ChildError, FIELD_MANAGER, Outcome};
use crate::desired::{self, ActivatorRef};
use crate::events::{self, Happening};
use crate::failure;
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};
use crate::status::{self, CONFIGURATION_READY, ChildProblem, Observed, ROUTES_READY};

/// Reconcile again this often even without changes, to repair drift.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry this soon when a child could not be applied.
const RETRY: Duration = Duration::from_secs(15);
/// Look at a starting pod again this long after it reaches the progress deadline (clocks differ a little).
const RECHECK_MARGIN: Duration = Duration::from_secs(1);

/// Operator-wide settings the reconciler needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub domain: String,
    pub activator: ActivatorRef,
    pub defaults: Defaults,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Every Runway pod, from the watch that also triggers reconciles when a pod's state changes.
    pub pods: Store<Pod>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Service has no namespace")]
    NoNamespace,
    #[error("the Service has no uid yet")]
    NoUid,
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoNamespace => "no_namespace",
            Error::NoUid => "no_uid",
            Error::Status(_) => "status_write",
        }
    }
}

/// Brings the Service's children and status in line with its spec.
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&service, &ctx).await;
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels { result: label })
        .inc();
    result
}

async fn reconcile_inner(service: &Service, ctx: &Context) -> Result<Action, Error> {
    let namespace = service.namespace().ok_or(Error::NoNamespace)?;
    let uid = service.uid().ok_or(Error::NoUid)?;
    let client = ctx.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let kube_services: Api<KubeService> = Api::namespaced(client.clone(), &namespace);

    if service.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the children; recreating them now would only race it.
        return Ok(Action::await_change());
    }
    let deployment = apply_deployment(&deployments, service, &uid, &ctx.settings).await;
    let mut routes = vec![];
    for desired in [
        desired::pods_service(service),
        desired::route_service(service, &ctx.settings.activator),
    ] {
        routes.push(apply_service(&kube_services, &uid, &desired).await);
    }
    let errors = deployment
        .as_ref()
        .err()
        .into_iter()
        .chain(routes.iter().filter_map(|r| r.as_ref().err()));
    if errors.into_iter().any(ChildError::namespace_terminating) {
        return Ok(Action::await_change());
    }

    let mut observed = Observed::default();
    match deployment {
        Ok((deployment, outcome)) => {
            record_outcome(ctx, service, &deployment, outcome).await;
            observed.deployment = Some(deployment);
        }
        Err(e) => observed
            .problems
            .push(problem(ctx, service, CONFIGURATION_READY, e).await),
    }
    for route in routes {
        match route {
            Ok((applied, outcome)) => record_outcome(ctx, service, &applied, outcome).await,
            Err(e) => observed.problems.push(problem(ctx, service, ROUTES_READY, e).await),
        }
    }

    let now = Timestamp::now();
    let diagnosis = diagnose(service, &namespace, &ctx.pods, now);
    observed.failure = diagnosis.failure;
    let status = status::compute(service, &observed, &ctx.settings.domain, now);
    if service.status.as_ref() != Some(&status) {
        let services: Api<Service> = Api::namespaced(client, &namespace);
        children::apply_status(&services, &service.name_any(), &status, FIELD_MANAGER)
            .await
            .map_err(Error::Status)?;
        if let Some((type_, reason, note)) = status::transition_event(service.status.as_ref(), &status) {
            if type_ == EventType::Warning {
                warn!(service = %service.name_any(), %namespace, %reason, %note, "pods failing");
            }
            let happening = Happening {
                type_,
                action: "Reconcile",
                reason: &reason,
                note,
                related: None,
            };
            events::publish(&ctx.recorder, service, happening).await;
        }
    }
    let next = if observed.problems.is_empty() { RESYNC } else { RETRY };
    // A pod that is still starting reaches the progress deadline without any event: look again then.
    let next = diagnosis
        .recheck_in
        .map_or(next, |left| next.min(left + RECHECK_MARGIN));
    Ok(Action::requeue(next))
}

/// The Service's pods, from the watch's cache, diagnosed against its progress deadline.
fn diagnose(service: &Service, namespace: &str, pods: &Store<Pod>, now: Timestamp) -> failure::Diagnosis {
    let name = service.name_any();
    let pods = pods.state();
    let own = pods
        .iter()
        .filter(|pod| failure::service_of(pod).is_some_and(|key| key.namespace == namespace && key.name == name))
        .map(|pod| &**pod);
    failure::diagnose(own, now, progress_deadline(service))
}

/// The Service's spec.progressDeadlineSeconds.
fn progress_deadline(service: &Service) -> Duration {
    Duration::from_secs(u64::try_from(service.spec.progress_deadline_seconds).unwrap_or(0))
}

/// Applies the Deployment. Creation sets the initial scale and hands `spec.replicas` to the autoscaler's field
/// manager at once; from then on the reconciler never sends replicas, so it never fights the autoscaler.
async fn apply_deployment(
    api: &Api<Deployment>,
    service: &Service,
    uid: &str,
    settings: &Settings,
) -> Result<(Deployment, Outcome), ChildError> {
    let name = runway_api::names::deployment_name(&service.name_any());
    let api_error = |source| ChildError::Api {
        kind: "Deployment".to_owned(),
        name: name.clone(),
        source,
    };
    let live = children::fetch_owned(api, uid, &name).await?;
    let initial = match &live {
        None => Some(Policy::from_spec(&service.spec, &settings.defaults).initial_scale),
        Some(live) => {
            // A reconcile that created the Deployment but stopped before the hand-over: finish it now.
            if children::reconciler_owns_replicas(live) {
                let current = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                children::apply_scale(api, &name, current).await.map_err(api_error)?;
            }
            None
        }
    };
    let (applied, outcome) = children::apply(api, &desired::deployment(service, initial), live.as_ref()).await?;
    if let Some(replicas) = initial {
        children::apply_scale(api, &name, replicas).await.map_err(api_error)?;
    }
    Ok((applied, outcome))
}

async fn apply_service(
    api: &Api<KubeService>,
    uid: &str,
    desired: &KubeService,
) -> Result<(KubeService, Outcome), ChildError> {
    let live = children::fetch_owned(api, uid, &desired.name_any()).await?;
    children::apply(api, desired, live.as_ref()).await
}

async fn record_outcome<K: Resource<DynamicType = ()>>(ctx: &Context, service: &Service, child: &K, outcome: Outcome) {
    let reason = match outcome {
        Outcome::Created => "Created",
        Outcome::Updated => "Updated",
        Outcome::Unchanged => return,
    };
    let (kind, name) = (K::kind(&()), child.name_any());
    info!(service = %service.name_any(), namespace = ?service.namespace(), %kind, %name, reason, "applied child");
    let note = format!("{kind} {name} {}", reason.to_lowercase());
    let related = Some(child.object_ref(&()));
    let happening = Happening {
        type_: EventType::Normal,
        action: "Reconcile",
        reason,
        note,
        related,
    };
    events::publish(&ctx.recorder, service, happening).await;
}

async fn problem(ctx: &Context, service: &Service, condition: &'static str, error: ChildError) -> ChildProblem {
    let reason = match error {
        ChildError::NotOwned { .. } => "NotOwned",
        ChildError::Api { .. } => "ApplyFailed",
    };
    warn!(service = %service.name_any(), namespace = ?service.namespace(), %error, "child not applied");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels { reason })
        .inc();
    let note = error.to_string();
    let happening = Happening {
        type_: EventType::Warning,
        action: "Reconcile",
        reason,
        note,
        related: None,
    };
    events::publish(&ctx.recorder, service, happening).await;
    ChildProblem {
        condition,
        reason: reason.to_owned(),
        message: error.to_string(),
    }
}

/// Retries a failed reconcile after a pause.
pub fn error_policy(_service: Arc<Service>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels {
            reason: error.metric_label(),
        })
        .inc();
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    //! The reconcile flow against a mocked API server: each test lists the requests it expects, in order.

    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, OwnerReference};
    use kube::client::Body;
    use runway_api::{ServiceSpec, ServiceTemplate};
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle};

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    fn service() -> Service {
        let mut s = Service::new(
            "hello",
            ServiceSpec {
                visibility: Default::default(),
                template: ServiceTemplate {
                    metadata: None,
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some("hello:1".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    },
                },
                container_concurrency: 0,
                timeout_seconds: 300,
                progress_deadline_seconds: 120,
                scaling: Default::default(),
            },
        );
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("uid-1".into());
        s.metadata.generation = Some(1);
        s
    }

    fn context(client: Client, pods: Store<Pod>) -> Arc<Context> {
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
            },
            metrics: Arc::new(Metrics::default()),
            pods,
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

    /// Answers a status patch with the whole Service carrying that status.
    fn with_status(body: &Value) -> Response<Body> {
        let mut object = serde_json::to_value(service()).unwrap();
        object["status"] = body["status"].clone();
        json_response(StatusCode::OK, &object)
    }

    fn echo(body: &Value) -> Response<Body> {
        let mut body = body.clone();
        body["metadata"]["resourceVersion"] = json!("2");
        json_response(StatusCode::OK, &body)
    }

    const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/hello";
    const SCALE: &str = "/apis/apps/v1/namespaces/default/deployments/hello/scale";
    const PODS_SERVICE: &str = "/api/v1/namespaces/default/services/hello-pods";
    const ROUTE_SERVICE: &str = "/api/v1/namespaces/default/services/hello";
    const STATUS: &str = "/apis/serving.runway.dev/v1alpha1/namespaces/default/services/hello/status";

    fn run_reconcile(service: Service) -> (tokio::task::JoinHandle<Result<Action, Error>>, ApiHandle) {
        run_reconcile_with_pods(service, vec![])
    }

    /// Reconciles with these pods in the watch's cache.
    fn run_reconcile_with_pods(
        service: Service,
        pods: Vec<Pod>,
    ) -> (tokio::task::JoinHandle<Result<Action, Error>>, ApiHandle) {
        let (store, mut writer) = kube::runtime::reflector::store();
        for pod in pods {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pod));
        }
        let (mock, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(mock, "default"), store);
        (tokio::spawn(reconcile(Arc::new(service), ctx)), handle)
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

    #[tokio::test]
    async fn a_new_service_gets_its_children_the_initial_scale_and_a_status() {
        let (task, mut api) = run_reconcile(service());
        let mut events = vec![];
        expect(&mut api, &mut events, Method::GET, DEPLOYMENT, |_| not_found()).await;
        let deployment = expect(&mut api, &mut events, Method::PATCH, DEPLOYMENT, echo).await;
        assert_eq!(deployment["spec"]["replicas"], 1, "created at the initial scale");
        assert_eq!(deployment["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let scale = expect(&mut api, &mut events, Method::PATCH, SCALE, echo).await;
        assert_eq!(
            scale["spec"]["replicas"], 1,
            "replicas handed to the autoscaler's field manager"
        );
        for path in [PODS_SERVICE, ROUTE_SERVICE] {
            expect(&mut api, &mut events, Method::GET, path, |_| not_found()).await;
            expect(&mut api, &mut events, Method::PATCH, path, echo).await;
        }
        let status = expect(&mut api, &mut events, Method::PATCH, STATUS, with_status).await;
        assert_eq!(status["status"]["url"], "http://hello.default.example.com");
        assert_eq!(condition(&status, "RoutesReady")["status"], "True");
        assert_eq!(
            condition(&status, "Ready")["status"],
            "Unknown",
            "the pod is not ready yet"
        );
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(RESYNC));
        assert_eq!(reasons(&events), ["Created", "Created", "Created"]);
    }

    #[tokio::test]
    async fn a_service_being_deleted_is_left_to_the_garbage_collector() {
        let mut deleting = service();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        let (task, mut api) = run_reconcile(deleting);
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
        assert!(api.next_request().await.is_none(), "no request was made");
    }

    #[tokio::test]
    async fn a_deployment_that_is_not_ours_is_left_alone_and_reported() {
        let (task, mut api) = run_reconcile(service());
        let mut events = vec![];
        let foreign = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello", "namespace": "default"}});
        expect(&mut api, &mut events, Method::GET, DEPLOYMENT, |_| {
            json_response(StatusCode::OK, &foreign)
        })
        .await;
        // The next request is already about the pods' Service: the Deployment was not patched.
        for path in [PODS_SERVICE, ROUTE_SERVICE] {
            expect(&mut api, &mut events, Method::GET, path, |_| not_found()).await;
            expect(&mut api, &mut events, Method::PATCH, path, echo).await;
        }
        let status = expect(&mut api, &mut events, Method::PATCH, STATUS, with_status).await;
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("NotOwned"))
        );
        assert_eq!(
            ready["message"],
            "Deployment default/hello exists and is not owned by this Runway Service"
        );
        assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RETRY));
        assert_eq!(reasons(&events), ["NotOwned", "Created", "Created"]);
    }

    #[tokio::test]
    async fn an_unfinished_replicas_hand_over_is_completed_before_the_apply() {
        let mut live = desired::deployment(&service(), None);
        live.metadata.resource_version = Some("7".into());
        live.metadata.owner_references = Some(vec![OwnerReference {
            uid: "uid-1".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
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
        let live = serde_json::to_value(&live).unwrap();
        let (task, mut api) = run_reconcile(service());
        let mut events = vec![];
        expect(&mut api, &mut events, Method::GET, DEPLOYMENT, |_| {
            json_response(StatusCode::OK, &live)
        })
        .await;
        let scale = expect(&mut api, &mut events, Method::PATCH, SCALE, echo).await;
        assert_eq!(scale["spec"]["replicas"], 3, "the current count, unchanged");
        let applied = expect(&mut api, &mut events, Method::PATCH, DEPLOYMENT, |_| {
            json_response(StatusCode::OK, &live)
        })
        .await;
        assert!(
            applied["spec"].get("replicas").is_none(),
            "the reconciler no longer sends replicas"
        );
        for path in [PODS_SERVICE, ROUTE_SERVICE] {
            expect(&mut api, &mut events, Method::GET, path, |_| not_found()).await;
            expect(&mut api, &mut events, Method::PATCH, path, echo).await;
        }
        expect(&mut api, &mut events, Method::PATCH, STATUS, with_status).await;
        task.await.unwrap().unwrap();
        assert_eq!(
            reasons(&events),
            ["Created", "Created"],
            "the unchanged Deployment has no event"
        );
    }

    #[tokio::test]
    async fn crashing_pods_make_the_service_not_ready_with_their_reason_and_a_warning() {
        let created = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(30);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "hello-5d8f7c9b4-x2x9k", "namespace": "default",
                "creationTimestamp": created.to_string(),
                "labels": {"serving.runway.dev/service": "hello", "pod-template-hash": "5d8f7c9b4"}},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": "app", "image": "hello:1", "imageID": "", "ready": false,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "DATABASE_URL is not set"}}}]}
        }))
        .unwrap();
        let mut other = pod.clone();
        other.metadata.namespace = Some("elsewhere".into());
        other.metadata.name = Some("hello-other".into());
        let (task, mut api) = run_reconcile_with_pods(service(), vec![pod, other]);
        let mut events = vec![];
        expect(&mut api, &mut events, Method::GET, DEPLOYMENT, |_| not_found()).await;
        expect(&mut api, &mut events, Method::PATCH, DEPLOYMENT, echo).await;
        expect(&mut api, &mut events, Method::PATCH, SCALE, echo).await;
        for path in [PODS_SERVICE, ROUTE_SERVICE] {
            expect(&mut api, &mut events, Method::GET, path, |_| not_found()).await;
            expect(&mut api, &mut events, Method::PATCH, path, echo).await;
        }
        let status = expect(&mut api, &mut events, Method::PATCH, STATUS, with_status).await;
        for type_ in ["Ready", "ConfigurationReady"] {
            let c = condition(&status, type_);
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str(), c["message"].as_str()),
                (
                    Some("False"),
                    Some("ContainerExits"),
                    Some("container exits with code 1 (DATABASE_URL is not set), restarted 3 times")
                ),
                "{type_}"
            );
        }
        remaining_events(&mut api, &mut events).await;
        let action = task.await.unwrap().unwrap();
        assert_eq!(reasons(&events), ["Created", "Created", "Created", "ContainerExits"]);
        assert_eq!(events[3]["type"], "Warning");
        // The pod is 30 s into the 120 s deadline: look again when it passes.
        let after = format!("{action:?}");
        assert!(after.contains("requeue_after: Some(90."), "{after}");
    }
}
