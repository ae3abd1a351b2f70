//! Which container of a Service's pods serves, on which port, and whether the activator speaks HTTP/2 cleartext to
//! it. The operator writes the Deployment and the pods' Service by these rules and the activator reads the Service
//! and its EndpointSlices by them, so they are written once, here.
//!
//! Where the API server's rules (see `ServiceTemplate`) leave a case open, e.g. a spec sent past them or a container
//! without a port, the answer is what the operator writes into the Deployment: the first container serves, on port
//! 8080, named `http`. A reader that asked the spec otherwise would disagree with the pods that actually run.

use k8s_openapi::api::core::v1::{Container, ContainerPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Port the serving container listens on when it declares none, as on Cloud Run.
pub const DEFAULT_PORT: i32 = 8080;
/// Name of the port the operator declares on a serving container that declares none; also the name of the pods'
/// Service port when the container's port has no name.
pub const DEFAULT_PORT_NAME: &str = "http";
/// appProtocol that asks for HTTP/2 over cleartext with prior knowledge to the pods.
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";
/// Port names that ask for HTTP/2 cleartext, as in Knative.
const H2C_PORT_NAMES: [&str; 2] = ["h2c", "grpc"];

/// The serving container's position in the pod spec and the port it serves on, as the Deployment has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingPort {
    pub container_index: usize,
    pub port: i32,
    /// The container port's name: the declared one, or [`DEFAULT_PORT_NAME`] when the operator declares the port.
    /// `None` only when the user declared a port without a name.
    pub name: Option<String>,
}

/// Finds the serving container: the only container, or the one that declares a port (the API server's rules
/// guarantee exactly one such container when there are several). When none does, the first: the operator gives it
/// the default port, so that is the container that serves.
pub fn serving_port(containers: &[Container]) -> ServingPort {
    let container_index = if containers.len() == 1 {
        0
    } else {
        containers.iter().position(|c| declared_port(c).is_some()).unwrap_or(0)
    };
    match containers.get(container_index).and_then(declared_port) {
        Some(declared) => ServingPort {
            container_index,
            port: declared.container_port,
            name: declared.name.clone(),
        },
        None => ServingPort {
            container_index,
            port: DEFAULT_PORT,
            name: Some(DEFAULT_PORT_NAME.to_owned()),
        },
    }
}

/// The port a container declares (the API server's rules allow at most one).
fn declared_port(container: &Container) -> Option<&ContainerPort> {
    container.ports.as_ref().and_then(|ports| ports.first())
}

impl ServingPort {
    /// The serving container of `containers`, the list this was found in; `None` when the list is empty.
    pub fn container<'a>(&self, containers: &'a [Container]) -> Option<&'a Container> {
        containers.get(self.container_index)
    }

    /// Whether a probe's port (a number or a container port name) is the serving port.
    pub fn is_port(&self, port: &IntOrString) -> bool {
        match port {
            IntOrString::Int(number) => *number == self.port,
            IntOrString::String(name) => self.name.as_deref() == Some(name.as_str()),
        }
    }

    /// The appProtocol of the pods' Service port: h2c when the port's name asks for it, else none (HTTP/1.1).
    pub fn app_protocol(&self) -> Option<&'static str> {
        self.name
            .as_deref()
            .is_some_and(is_h2c_port_name)
            .then_some(H2C_APP_PROTOCOL)
    }
}

/// Whether the activator speaks HTTP/2 cleartext to a pods' Service port (as its EndpointSlices list it): by its
/// appProtocol, which the operator sets, or by its name, which asks for it on its own.
pub fn speaks_h2c(port_name: Option<&str>, app_protocol: Option<&str>) -> bool {
    app_protocol == Some(H2C_APP_PROTOCOL) || port_name.is_some_and(is_h2c_port_name)
}

fn is_h2c_port_name(name: &str) -> bool {
    H2C_PORT_NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, port: Option<(i32, Option<&str>)>) -> Container {
        Container {
            name: name.into(),
            ports: port.map(|(number, name)| {
                vec![ContainerPort {
                    container_port: number,
                    name: name.map(Into::into),
                    ..ContainerPort::default()
                }]
            }),
            ..Container::default()
        }
    }

    fn serving(index: usize, port: i32, name: Option<&str>) -> ServingPort {
        ServingPort {
            container_index: index,
            port,
            name: name.map(Into::into),
        }
    }

    #[test]
    fn the_only_container_serves_on_its_port_or_8080_named_http() {
        assert_eq!(
            serving_port(&[container("app", Some((9000, Some("web"))))]),
            serving(0, 9000, Some("web"))
        );
        assert_eq!(
            serving_port(&[container("app", Some((9000, None)))]),
            serving(0, 9000, None)
        );
        assert_eq!(serving_port(&[container("app", None)]), serving(0, 8080, Some("http")));
        let mut empty_list = container("app", None);
        empty_list.ports = Some(vec![]);
        assert_eq!(serving_port(&[empty_list]), serving(0, 8080, Some("http")));
    }

    #[test]
    fn of_several_containers_the_one_with_a_port_serves() {
        let containers = [container("sidecar", None), container("app", Some((9000, Some("http"))))];
        let found = serving_port(&containers);
        assert_eq!(found, serving(1, 9000, Some("http")));
        assert_eq!(found.container(&containers).map(|c| c.name.as_str()), Some("app"));
    }

    #[test]
    fn without_a_declared_port_the_first_container_serves_as_the_operator_writes_it() {
        let containers = [container("app", None), container("sidecar", None)];
        assert_eq!(serving_port(&containers), serving(0, 8080, Some("http")));
        let none = serving_port(&[]);
        assert_eq!(none, serving(0, 8080, Some("http")));
        assert!(none.container(&[]).is_none());
    }

    #[test]
    fn a_probe_port_is_the_serving_port_by_number_or_name() {
        let declared = serving(0, 9000, Some("web"));
        assert!(declared.is_port(&IntOrString::Int(9000)));
        assert!(declared.is_port(&IntOrString::String("web".into())));
        assert!(!declared.is_port(&IntOrString::Int(9001)));
        assert!(!declared.is_port(&IntOrString::String("http".into())));
        // The operator names the default port `http`, so a probe of `http` reaches it.
        let defaulted = serving_port(&[container("app", None)]);
        assert!(defaulted.is_port(&IntOrString::Int(8080)));
        assert!(defaulted.is_port(&IntOrString::String("http".into())));
        let unnamed = serving(0, 9000, None);
        assert!(!unnamed.is_port(&IntOrString::String("http".into())));
    }

    #[test]
    fn an_h2c_or_grpc_port_name_asks_for_http2() {
        for (name, app_protocol) in [
            (Some("h2c"), Some(H2C_APP_PROTOCOL)),
            (Some("grpc"), Some(H2C_APP_PROTOCOL)),
            (Some("http"), None),
            (Some("web"), None),
            (None, None),
        ] {
            assert_eq!(serving(0, 50051, name).app_protocol(), app_protocol, "{name:?}");
        }
    }

    #[test]
    fn h2c_comes_from_app_protocol_or_port_name() {
        for (name, app_protocol, h2c) in [
            (None, Some(H2C_APP_PROTOCOL), true),
            (Some("http"), Some(H2C_APP_PROTOCOL), true),
            (Some("h2c"), None, true),
            (Some("grpc"), None, true),
            (Some("http"), None, false),
            (None, Some("http"), false),
            (None, None, false),
        ] {
            assert_eq!(speaks_h2c(name, app_protocol), h2c, "{name:?} {app_protocol:?}");
        }
    }

    #[test]
    fn what_the_operator_writes_the_activator_reads_as_h2c() {
        for name in ["h2c", "grpc", "http"] {
            let port = serving(0, 50051, Some(name));
            assert_eq!(
                speaks_h2c(None, port.app_protocol()),
                name != "http",
                "{name}: appProtocol alone"
            );
        }
    }
}
