//! The objects a Service should have, built by pure functions: its revisions, each revision's Deployment and pods'
//! Service, and the Service's route Services (its own and one per tag). A revision's NetworkPolicy is built by
//! `network_policy.rs`, and the security defaults of its pods are `pod_security.rs`'s.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Lifecycle, LifecycleHandler, PodSpec, PodTemplateSpec, Probe,
    Service as KubeService, ServicePort, ServiceSpec as KubeServiceSpec, SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use runway_api::serving::{DEFAULT_PORT_NAME, ServingPort, serving_port};
use runway_api::{Revision, RevisionSpec, Service, names};

use super::pod_security::{self, POD_SECURITY_ANNOTATION, PodSecurity};

/// Seconds a pod keeps serving after it is marked terminating, so the activator stops routing to it before SIGTERM.
pub(crate) const PRE_STOP_SLEEP_SECONDS: i64 = 3;

/// The activator's internal Kubernetes Service: in-cluster calls to a Runway Service are sent there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActivatorRef {
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ActivatorRef {
    /// The activator Service's cluster DNS name.
    pub(crate) fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

/// Labels on every object derived from Service `service`.
pub(crate) fn labels(service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), service.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "service".to_owned()),
        (names::MANAGED_BY_LABEL.to_owned(), names::MANAGED_BY.to_owned()),
        (names::SERVICE_LABEL.to_owned(), service.to_owned()),
    ])
}

/// Labels on a revision, on the objects derived from it and on its pods.
pub(crate) fn revision_labels(service: &str, revision: &str) -> BTreeMap<String, String> {
    let mut labels = labels(service);
    labels.insert(names::REVISION_LABEL.to_owned(), revision.to_owned());
    labels
}

/// Labels that select a revision's pods.
pub(super) fn selector(revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(names::REVISION_LABEL.to_owned(), revision.to_owned())])
}

pub(super) fn meta(
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels),
        owner_references: owner.map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// Revision `name` of the Service, made from its current spec: labelled with the Service, its own name and the
/// Service's generation, annotated with the pod security policy its pods run under, and controlled by the Service.
pub(crate) fn revision(service: &Service, name: &str, security: PodSecurity) -> Revision {
    let mut labels = revision_labels(&service.name_any(), name);
    labels.insert(
        names::GENERATION_LABEL.to_owned(),
        service.metadata.generation.unwrap_or_default().to_string(),
    );
    let mut metadata = meta(
        name.to_owned(),
        service.namespace(),
        labels,
        service.controller_owner_ref(&()),
    );
    metadata.annotations = Some(BTreeMap::from([(
        POD_SECURITY_ANNOTATION.to_owned(),
        security.as_str().to_owned(),
    )]));
    Revision {
        metadata,
        spec: RevisionSpec::from_service_spec(&service.spec),
        status: None,
    }
}

/// The Deployment that runs revision's pods, controlled by the revision. `replicas` is set only when the
/// Deployment is created: afterwards the autoscaler owns that field.
pub(crate) fn deployment(service: &str, revision: &Revision, replicas: Option<i32>) -> Deployment {
    let name = revision.name_any();
    let template = &revision.spec.template;
    let user_meta = template.metadata.clone().unwrap_or_default();
    let mut pod_labels = user_meta.labels;
    pod_labels.extend(revision_labels(service, &name));
    Deployment {
        metadata: meta(
            names::deployment_name(&name),
            revision.namespace(),
            revision_labels(service, &name),
            revision.controller_owner_ref(&()),
        ),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector(&name)),
                ..LabelSelector::default()
            },
            // A revision's template changes only when a new operator fills in other defaults: new pods must then be
            // ready before old ones go, so that the revision never loses capacity.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(3),
            // The same deadline as the revision's: a rollout whose new pods never become ready is reported after it.
            progress_deadline_seconds: Some(revision.spec.progress_deadline_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(user_meta.annotations).filter(|a| !a.is_empty()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(&revision.spec, PodSecurity::of(revision))),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The user's pod spec with Runway's defaults filled in where the user left a field unset, the security defaults
/// too when the revision runs under the restricted policy.
fn pod_spec(revision: &RevisionSpec, security: PodSecurity) -> PodSpec {
    let mut pod = revision.template.spec.clone();
    // The CRD defaults a missing name, but a typed client may have sent an empty one.
    for container in pod.containers.iter_mut().filter(|c| c.name.is_empty()) {
        container.name = runway_api::crd::DEFAULT_CONTAINER_NAME.to_owned();
    }
    // A container that exits without writing a termination message gets the end of its log there instead, so the
    // Service's status can say why it exits.
    for container in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        container
            .termination_message_policy
            .get_or_insert_with(|| "FallbackToLogsOnError".to_owned());
    }
    let serving = serving_port(&pod.containers);
    if let Some(container) = pod.containers.get_mut(serving.container_index) {
        default_serving_container(container, &serving);
    }
    // A frozen container cannot answer the kubelet's readiness probe, which would take a frozen pod out of its
    // endpoints: for a revision whose idle pods freeze, the activator runs the probe instead, while the pod is thawed
    // (the CRD rejects liveness probes for it).
    if revision.freeze.is_some() {
        for container in &mut pod.containers {
            container.readiness_probe = None;
        }
    }
    // A pod must outlive its longest request plus the pre-stop pause, or scale-down would cut requests.
    pod.termination_grace_period_seconds
        .get_or_insert(i64::from(revision.timeout_seconds) + PRE_STOP_SLEEP_SECONDS);
    // Service links put an env var per Service of the namespace into every pod: slow starts, no use here.
    pod.enable_service_links.get_or_insert(false);
    match security {
        PodSecurity::Restricted => pod_security::restrict(&mut pod),
        PodSecurity::Unchanged => {}
    }
    pod
}

/// Fills what the user left unset on the serving container: the port `serving` found (declared, under the default
/// name, when the user declared none), PORT, a TCP readiness probe on it and a pre-stop pause.
fn default_serving_container(container: &mut Container, serving: &ServingPort) {
    let port = serving.port;
    let ports = container.ports.get_or_insert_with(Vec::new);
    if ports.is_empty() {
        ports.push(ContainerPort {
            container_port: port,
            name: serving.name.clone(),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        });
    }
    let env = container.env.get_or_insert_with(Vec::new);
    if !env.iter().any(|e| e.name == "PORT") {
        env.push(EnvVar {
            name: "PORT".to_owned(),
            value: Some(port.to_string()),
            value_from: None,
        });
    }
    container.readiness_probe.get_or_insert_with(|| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(1),
        ..Probe::default()
    });
    let lifecycle = container.lifecycle.get_or_insert_with(Lifecycle::default);
    lifecycle.pre_stop.get_or_insert_with(|| LifecycleHandler {
        sleep: Some(SleepAction {
            seconds: PRE_STOP_SLEEP_SECONDS,
        }),
        ..LifecycleHandler::default()
    });
}

/// The headless Kubernetes Service selecting a revision's pods, controlled by the revision: the activator routes to
/// the addresses in its EndpointSlices, which inherit its labels.
pub(crate) fn pods_service(service: &str, revision: &Revision) -> KubeService {
    let name = revision.name_any();
    let serving = serving_port(&revision.spec.template.spec.containers);
    KubeService {
        metadata: meta(
            names::pods_service_name(&name),
            revision.namespace(),
            revision_labels(service, &name),
            revision.controller_owner_ref(&()),
        ),
        spec: Some(KubeServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector(&name)),
            ports: Some(vec![ServicePort {
                app_protocol: serving.app_protocol().map(str::to_owned),
                name: Some(serving.name.unwrap_or_else(|| DEFAULT_PORT_NAME.to_owned())),
                port: serving.port,
                target_port: Some(IntOrString::Int(serving.port)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..KubeServiceSpec::default()
        }),
        status: None,
    }
}

/// The Kubernetes Service in-cluster clients call (http://{name}.{namespace}.svc.cluster.local): a DNS alias of the
/// activator, which routes on the Host header.
pub(crate) fn route_service(service: &Service, activator: &ActivatorRef) -> KubeService {
    alias(
        service,
        names::route_service_name(&service.name_any()),
        labels(&service.name_any()),
        activator,
    )
}

/// The Kubernetes Service of a tag (http://{tag}-{name}.{namespace}.svc.cluster.local), likewise an alias of the
/// activator; labelled with the tag so that the route Services of removed tags can be found.
pub(crate) fn tag_route_service(service: &Service, tag: &str, activator: &ActivatorRef) -> KubeService {
    let name = service.name_any();
    let mut labels = labels(&name);
    labels.insert(names::TAG_LABEL.to_owned(), tag.to_owned());
    alias(service, names::tag_route_name(tag, &name), labels, activator)
}

fn alias(service: &Service, name: String, labels: BTreeMap<String, String>, activator: &ActivatorRef) -> KubeService {
    KubeService {
        metadata: meta(name, service.namespace(), labels, service.controller_owner_ref(&())),
        spec: Some(KubeServiceSpec {
            type_: Some("ExternalName".to_owned()),
            external_name: Some(activator.fqdn()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..KubeServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPGetAction;
    use runway_api::{ServiceSpec, ServiceTemplate, TemplateMetadata};

    fn service(containers: Vec<Container>) -> Service {
        let mut service = Service::new(
            "hello",
            ServiceSpec {
                visibility: Default::default(),
                invokers: Default::default(),
                access_log_percent: None,
                template: ServiceTemplate {
                    metadata: Some(TemplateMetadata {
                        name: None,
                        labels: BTreeMap::from([("team".into(), "web".into())]),
                        annotations: BTreeMap::from([("note".into(), "kept".into())]),
                    }),
                    spec: PodSpec {
                        containers,
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
        service.metadata.namespace = Some("default".into());
        service.metadata.uid = Some("uid-1".into());
        service.metadata.generation = Some(2);
        service
    }

    /// The Service's revision hello-00002, as the API server returns it.
    fn rev(service: &Service) -> Revision {
        let mut revision = revision(service, "hello-00002", PodSecurity::Restricted);
        revision.metadata.uid = Some("rev-uid".into());
        revision
    }

    fn deploy(service: &Service, replicas: Option<i32>) -> Deployment {
        deployment("hello", &rev(service), replicas)
    }

    fn pods(service: &Service) -> KubeService {
        pods_service("hello", &rev(service))
    }

    fn container(image: &str, port: Option<(i32, &str)>) -> Container {
        Container {
            name: image.into(),
            image: Some(image.into()),
            ports: port.map(|(p, n)| {
                vec![ContainerPort {
                    container_port: p,
                    name: Some(n.into()),
                    ..ContainerPort::default()
                }]
            }),
            ..Container::default()
        }
    }

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn deployment_carries_runway_labels_owner_and_user_metadata() {
        let d = deploy(&service(vec![container("app", None)]), None);
        let meta = &d.metadata;
        assert_eq!(meta.name.as_deref(), Some("hello-00002"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Revision", "rev-uid", Some(true))
        );
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, None, "the autoscaler owns replicas");
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap(),
            &BTreeMap::from([(names::REVISION_LABEL.to_owned(), "hello-00002".to_owned())])
        );
        let template_meta = spec.template.metadata.as_ref().unwrap();
        let pod_labels = template_meta.labels.as_ref().unwrap();
        assert_eq!(pod_labels["team"], "web");
        assert_eq!(pod_labels[names::SERVICE_LABEL], "hello");
        assert_eq!(pod_labels[names::REVISION_LABEL], "hello-00002");
        assert_eq!(pod_labels[names::MANAGED_BY_LABEL], "runway");
        assert_eq!(template_meta.annotations.as_ref().unwrap()["note"], "kept");
    }

    #[test]
    fn a_revision_copies_the_spec_and_is_labelled_and_owned_by_its_service() {
        let mut svc = service(vec![container("app", None)]);
        svc.spec.template.metadata.as_mut().unwrap().name = Some("hello-blue".into());
        let r = revision(&svc, "hello-blue", PodSecurity::Restricted);
        assert_eq!(r.metadata.name.as_deref(), Some("hello-blue"));
        let labels = r.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (
                labels[names::SERVICE_LABEL].as_str(),
                labels[names::REVISION_LABEL].as_str(),
                labels[names::GENERATION_LABEL].as_str()
            ),
            ("hello", "hello-blue", "2")
        );
        let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "uid-1"));
        assert_eq!(r.spec, RevisionSpec::from_service_spec(&svc.spec));
        assert_eq!(r.annotations()[POD_SECURITY_ANNOTATION], "Restricted");
        assert_eq!(
            r.spec.template.metadata.unwrap().name,
            None,
            "the name is not part of the spec"
        );
    }

    #[test]
    fn a_restricted_revision_runs_restricted_pods_and_an_older_one_its_template_as_before() {
        let mut svc = service(vec![container("app", None)]);
        svc.spec.template.spec.init_containers = Some(vec![container("migrate", None)]);
        let restricted = deploy(&svc, None);
        let seccomp = pod(&restricted)
            .security_context
            .as_ref()
            .unwrap()
            .seccomp_profile
            .as_ref();
        assert_eq!(seccomp.unwrap().type_, "RuntimeDefault");
        for c in pod(&restricted)
            .containers
            .iter()
            .chain(pod(&restricted).init_containers.iter().flatten())
        {
            let context = c.security_context.as_ref().unwrap();
            assert_eq!(context.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(
                context.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..])
            );
        }

        // A revision made before the policy existed has no annotation: its Deployment's template stays what it was,
        // so that an operator upgrade restarts none of its pods.
        let mut older = rev(&svc);
        older.metadata.annotations = None;
        let unchanged = deployment("hello", &older, None);
        assert_eq!(pod(&unchanged).security_context, None);
        assert!(pod(&unchanged).containers.iter().all(|c| c.security_context.is_none()));
        let mut unchanged_now = rev(&svc);
        unchanged_now
            .annotations_mut()
            .insert(POD_SECURITY_ANNOTATION.into(), "Unchanged".into());
        assert_eq!(deployment("hello", &unchanged_now, None), unchanged);
    }

    #[test]
    fn replicas_are_set_only_when_asked() {
        let d = deploy(&service(vec![container("app", None)]), Some(0));
        assert_eq!(d.spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn a_container_without_port_gets_8080_port_env_probe_and_pre_stop() {
        let d = deploy(&service(vec![container("app", None)]), None);
        let c = &pod(&d).containers[0];
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.container_port, port.name.as_deref()), (8080, Some("http")));
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == "PORT" && e.value.as_deref() == Some("8080"))
        );
        let probe = c.readiness_probe.as_ref().unwrap();
        assert_eq!(probe.tcp_socket.as_ref().unwrap().port, IntOrString::Int(8080));
        assert_eq!(probe.period_seconds, Some(1));
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(pre_stop.sleep.as_ref().unwrap().seconds, PRE_STOP_SLEEP_SECONDS);
        assert_eq!(c.image_pull_policy, None, "the user's pull policy is left alone");
        assert_eq!(pod(&d).termination_grace_period_seconds, Some(303));
        assert_eq!(pod(&d).enable_service_links, Some(false));
    }

    #[test]
    fn exits_leave_the_log_tail_in_the_status_unless_the_user_chose_otherwise() {
        let mut own = container("sidecar", None);
        own.termination_message_policy = Some("File".into());
        let mut svc = service(vec![container("app", Some((8080, "http"))), own]);
        svc.spec.template.spec.init_containers = Some(vec![container("migrate", None)]);
        let d = deploy(&svc, None);
        let policies: Vec<_> = pod(&d)
            .containers
            .iter()
            .chain(pod(&d).init_containers.iter().flatten())
            .map(|c| c.termination_message_policy.as_deref())
            .collect();
        assert_eq!(
            policies,
            [
                Some("FallbackToLogsOnError"),
                Some("File"),
                Some("FallbackToLogsOnError")
            ]
        );
    }

    #[test]
    fn the_deployment_reports_a_stuck_rollout_after_the_services_progress_deadline() {
        let mut svc = service(vec![container("app", None)]);
        svc.spec.progress_deadline_seconds = 45;
        let d = deploy(&svc, None);
        assert_eq!(d.spec.unwrap().progress_deadline_seconds, Some(45));
    }

    #[test]
    fn an_empty_container_name_becomes_app() {
        let mut c = container("x", None);
        c.name = String::new();
        let d = deploy(&service(vec![c]), None);
        assert_eq!(pod(&d).containers[0].name, "app");
    }

    #[test]
    fn user_settings_win_over_defaults() {
        let mut c = container("app", Some((9000, "web")));
        c.readiness_probe = Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".into()),
                port: IntOrString::Int(9000),
                ..Default::default()
            }),
            ..Probe::default()
        });
        c.env = Some(vec![EnvVar {
            name: "PORT".into(),
            value: Some("9000".into()),
            value_from: None,
        }]);
        c.image_pull_policy = Some("Never".into());
        let mut svc = service(vec![c]);
        svc.spec.template.spec.termination_grace_period_seconds = Some(5);
        let d = deploy(&svc, None);
        let c = &pod(&d).containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/ready")
        );
        assert_eq!(c.env.as_ref().unwrap().len(), 1);
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(pod(&d).termination_grace_period_seconds, Some(5));
    }

    #[test]
    fn pods_of_a_freezing_revision_have_no_readiness_probe_for_the_kubelet_to_fail() {
        let mut svc = service(vec![container("app", Some((9000, "http")))]);
        svc.spec.scaling.idle = Some(runway_api::IdleAction::Freeze);
        let d = deploy(&svc, None);
        assert!(pod(&d).containers[0].readiness_probe.is_none());
        // Stop keeps the default probe.
        svc.spec.scaling.idle = Some(runway_api::IdleAction::Stop);
        assert!(pod(&deploy(&svc, None)).containers[0].readiness_probe.is_some());
    }

    #[test]
    fn only_the_serving_container_gets_defaults() {
        let d = deploy(
            &service(vec![container("sidecar", None), container("app", Some((9000, "http")))]),
            None,
        );
        let containers = &pod(&d).containers;
        assert!(containers[0].readiness_probe.is_none() && containers[0].env.is_none());
        assert!(containers[1].readiness_probe.is_some());
        assert_eq!(
            serving_port(&pod(&d).containers),
            ServingPort {
                container_index: 1,
                port: 9000,
                name: Some("http".into())
            }
        );
    }

    #[test]
    fn pods_service_is_headless_on_the_serving_port() {
        let s = pods(&service(vec![container("app", Some((9000, "http")))]));
        assert_eq!(s.metadata.name.as_deref(), Some("hello-00002-pods"));
        assert_eq!(s.metadata.owner_references.unwrap()[0].kind, "Revision");
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(
            spec.selector.unwrap(),
            BTreeMap::from([(names::REVISION_LABEL.to_owned(), "hello-00002".to_owned())])
        );
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.port, port.app_protocol.as_deref()), (9000, None));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(
            (
                labels[names::SERVICE_LABEL].as_str(),
                labels[names::REVISION_LABEL].as_str()
            ),
            ("hello", "hello-00002"),
            "EndpointSlices inherit them"
        );
    }

    #[test]
    fn a_tag_route_aliases_the_activator_and_names_its_tag() {
        let activator = ActivatorRef {
            namespace: "runway-system".into(),
            name: "runway-activator-internal".into(),
        };
        let s = tag_route_service(&service(vec![container("app", None)]), "canary", &activator);
        assert_eq!(s.metadata.name.as_deref(), Some("canary-hello"));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(
            (labels[names::SERVICE_LABEL].as_str(), labels[names::TAG_LABEL].as_str()),
            ("hello", "canary")
        );
        assert_eq!(s.metadata.owner_references.unwrap()[0].uid, "uid-1");
        assert_eq!(s.spec.unwrap().type_.as_deref(), Some("ExternalName"));
    }

    #[test]
    fn an_h2c_or_grpc_port_name_asks_for_http2() {
        for name in ["h2c", "grpc"] {
            let s = pods(&service(vec![container("app", Some((50051, name)))]));
            assert_eq!(
                s.spec.unwrap().ports.unwrap()[0].app_protocol.as_deref(),
                Some(runway_api::serving::H2C_APP_PROTOCOL)
            );
        }
    }

    #[test]
    fn route_service_aliases_the_activator() {
        let activator = ActivatorRef {
            namespace: "runway-system".into(),
            name: "runway-activator-internal".into(),
        };
        let s = route_service(&service(vec![container("app", None)]), &activator);
        assert_eq!(s.metadata.name.as_deref(), Some("hello"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(
            spec.external_name.as_deref(),
            Some("runway-activator-internal.runway-system.svc.cluster.local")
        );
        assert_eq!(spec.ports.unwrap()[0].port, 80);
    }
}
