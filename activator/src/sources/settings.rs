//! A revision's settings as its Revision object gives them: what the mirror keeps of a watched Revision, its
//! `RevisionSettings`, and how far the activator's own probe may bring a new pod forward.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use runway_api::serving::{ServingPort, serving_port};
use runway_api::{Revision, RevisionSpec, ServiceTemplate};

use crate::model::{FastProbe, Idle, RevisionSettings};

/// Drops from a watched Revision all that `settings_of_revision` does not read (the pod template but for each
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

/// The settings of a Revision object, with the failure its status reports (the rule lives in runway-api, so that
/// the operator that writes the status and the activator agree).
pub fn settings_of_revision(revision: &Revision) -> RevisionSettings {
    RevisionSettings {
        failure: runway_api::revision_failure(revision).map(Arc::from),
        ..settings_of_spec(&revision.spec)
    }
}

/// The settings a revision's spec gives, with no failure.
pub fn settings_of_spec(spec: &RevisionSpec) -> RevisionSettings {
    let pod = &spec.template.spec;
    let gated = pod.readiness_gates.as_ref().is_some_and(|gates| !gates.is_empty());
    let (idle, role) = match spec.freeze {
        Some(freeze) => (
            Idle::Freeze {
                after: Duration::from_millis(u64::try_from(freeze.after_millis).unwrap_or(0)),
            },
            ProbeRole::InsteadOfKubelet,
        ),
        None => (Idle::Stop, ProbeRole::AheadOfKubelet),
    };
    let fast_probe = match (gated, role) {
        (true, ProbeRole::AheadOfKubelet) => FastProbe::KubernetesOnly,
        (_, role) => fast_probe(&pod.containers, role),
    };
    RevisionSettings {
        container_concurrency: u32::try_from(spec.container_concurrency).unwrap_or(0),
        timeout: Duration::from_secs(u64::try_from(spec.timeout_seconds).unwrap_or(1).max(1)),
        fast_probe,
        failure: None,
        idle,
    }
}

/// Whose readiness check the activator's probe is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeRole {
    /// The kubelet's probes run too: the activator's may only bring a pod forward where it proves the same.
    AheadOfKubelet,
    /// A revision whose idle pods freeze: the operator takes the readiness probe out of the pod (a frozen pod cannot
    /// answer it), so the activator's probe is the only one. It repeats the serving container's probes without their
    /// initial delay and success threshold (a probe that fails until the app is ready needs neither), and falls back
    /// to a TCP connect of the serving port where it cannot repeat one.
    InsteadOfKubelet,
}

/// What the serving container's probes let the activator check by itself, following the kubelet's rule: a container
/// is ready once its startup probe has passed and then its readiness probe passes (or at once without one). The
/// serving container and port are the ones the operator writes into the Deployment (runway-api's rules), so a probe
/// of the port the operator declared for a container without one (8080, named `http`) counts as one of the serving
/// port.
fn fast_probe(containers: &[Container], role: ProbeRole) -> FastProbe {
    let cannot_repeat = match role {
        ProbeRole::AheadOfKubelet => FastProbe::KubernetesOnly,
        ProbeRole::InsteadOfKubelet => FastProbe::Tcp,
    };
    let serving = serving_port(containers);
    let Some(container) = serving.container(containers) else {
        return cannot_repeat;
    };
    let others_probed = containers.iter().enumerate().any(|(index, c)| {
        index != serving.container_index && (c.readiness_probe.is_some() || c.startup_probe.is_some())
    });
    if others_probed && role == ProbeRole::AheadOfKubelet {
        return FastProbe::KubernetesOnly;
    }
    let mut paths = Vec::new();
    // The startup probe first: the kubelet runs the readiness probe only once it has passed.
    for probe in [&container.startup_probe, &container.readiness_probe]
        .into_iter()
        .flatten()
    {
        match check(probe, &serving, role) {
            Some(Check::Http(path)) => paths.push(path),
            Some(Check::Tcp) => {}
            None => return cannot_repeat,
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
fn check(probe: &Probe, serving: &ServingPort, role: ProbeRole) -> Option<Check> {
    let delayed = probe.initial_delay_seconds.is_some_and(|seconds| seconds > 0);
    let repeated = probe.success_threshold.is_some_and(|times| times > 1);
    if (delayed || repeated) && role == ProbeRole::AheadOfKubelet {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead_of_kubelet(containers: &[Container]) -> FastProbe {
        fast_probe(containers, ProbeRole::AheadOfKubelet)
    }
    use crate::model::RevisionId;
    use crate::sources::keys::revision_id;
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, HTTPGetAction, PodReadinessGate, TCPSocketAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use runway_api::names::SERVICE_LABEL;

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
        assert_eq!(ahead_of_kubelet(&[by_name]), FastProbe::Http(vec!["/ready".into()]));
        let by_number = container(named_port(), http_probe(IntOrString::Int(9000), "/ready"));
        assert_eq!(ahead_of_kubelet(&[by_number]), FastProbe::Http(vec!["/ready".into()]));
        // No declared port: the operator declares 8080 named `http`, so either names the serving port.
        let default_port = container(None, http_probe(IntOrString::Int(8080), "/healthz"));
        assert_eq!(
            ahead_of_kubelet(&[default_port]),
            FastProbe::Http(vec!["/healthz".into()])
        );
        let default_name = container(None, http_probe(IntOrString::String("http".into()), "/healthz"));
        assert_eq!(
            ahead_of_kubelet(&[default_name]),
            FastProbe::Http(vec!["/healthz".into()])
        );
    }

    #[test]
    fn no_readiness_probe_or_a_tcp_one_on_the_serving_port_means_a_tcp_connect() {
        assert_eq!(ahead_of_kubelet(&[container(None, None)]), FastProbe::Tcp);
        let tcp = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(ahead_of_kubelet(&[container(None, tcp)]), FastProbe::Tcp);
    }

    #[test]
    fn readiness_the_activator_cannot_check_waits_for_kubernetes() {
        let other_port = container(named_port(), http_probe(IntOrString::Int(9001), "/ready"));
        assert_eq!(ahead_of_kubelet(&[other_port]), FastProbe::KubernetesOnly);
        let exec = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        });
        assert_eq!(ahead_of_kubelet(&[container(None, exec)]), FastProbe::KubernetesOnly);
        let tcp_elsewhere = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(9999),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            ahead_of_kubelet(&[container(None, tcp_elsewhere)]),
            FastProbe::KubernetesOnly
        );
        let https = Some(Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(8080),
                scheme: Some("HTTPS".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(ahead_of_kubelet(&[container(None, https)]), FastProbe::KubernetesOnly);
        let sidecar = Container {
            name: "sidecar".into(),
            ..container(None, http_probe(IntOrString::Int(15000), "/ready"))
        };
        assert_eq!(
            ahead_of_kubelet(&[container(named_port(), None), sidecar]),
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
        assert_eq!(ahead_of_kubelet(&[warming]), FastProbe::Http(vec!["/started".into()]));
        let both = with_startup(
            container(None, http_probe(IntOrString::Int(8080), "/ready")),
            http_probe(IntOrString::Int(8080), "/started"),
        );
        assert_eq!(
            ahead_of_kubelet(&[both]),
            FastProbe::Http(vec!["/started".into(), "/ready".into()])
        );
        let exec_startup = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        });
        assert_eq!(
            ahead_of_kubelet(&[with_startup(container(None, None), exec_startup)]),
            FastProbe::KubernetesOnly
        );
        let sidecar = Container {
            name: "sidecar".into(),
            ..with_startup(container(None, None), http_probe(IntOrString::Int(15000), "/started"))
        };
        assert_eq!(
            ahead_of_kubelet(&[container(named_port(), None), sidecar]),
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
        assert_eq!(ahead_of_kubelet(&[ready]), FastProbe::KubernetesOnly);
        let startup = with_startup(
            container(None, None),
            delayed(http_probe(IntOrString::Int(8080), "/started")),
        );
        assert_eq!(ahead_of_kubelet(&[startup]), FastProbe::KubernetesOnly);
        let twice = http_probe(IntOrString::Int(8080), "/ready").map(|p| Probe {
            success_threshold: Some(2),
            ..p
        });
        assert_eq!(ahead_of_kubelet(&[container(None, twice)]), FastProbe::KubernetesOnly);
        let no_delay = http_probe(IntOrString::Int(8080), "/ready").map(|p| Probe {
            initial_delay_seconds: Some(0),
            ..p
        });
        assert_eq!(
            ahead_of_kubelet(&[container(None, no_delay)]),
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
        assert_eq!(settings_of_spec(&spec).fast_probe, FastProbe::Tcp);
        spec.template.spec.readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/warm".into(),
        }]);
        assert_eq!(settings_of_spec(&spec).fast_probe, FastProbe::KubernetesOnly);
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
        keep_only_settings(&mut kept);
        let settings = settings_of_revision(&kept);
        assert_eq!(settings, settings_of_revision(&revision));
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
        let settings = settings_of_revision(&revision);
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
            settings_of_revision(&revision).failure.as_deref(),
            Some("hello-00002: container exits with code 1")
        );
    }
}
