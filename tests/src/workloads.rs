//! Manifests of the sample app (`runway-hello`) for tests.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::{Value, json};

/// The port the sample app listens on in its pods.
pub const HELLO_PORT: u16 = 8080;

/// The sample app's image, as the suite's release pushed it to the cluster's registry (pinned by digest).
pub fn hello_image() -> String {
    crate::release::Release::current().images.hello.clone()
}

/// The sample app's container running `image`: readiness on /healthz, non-root, `env` added.
fn container(image: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    json!({
        "name": "hello",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": HELLO_PORT}],
        "env": env,
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": HELLO_PORT}, "periodSeconds": 1},
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false},
    })
}

/// A Deployment of the sample app ([`hello_image`]) whose pods carry the label `app=<name>`.
pub fn hello_deployment(name: &str, replicas: i32, env: &[(&str, &str)]) -> Deployment {
    deployment(&hello_image(), name, replicas, env)
}

fn deployment(image: &str, name: &str, replicas: i32, env: &[(&str, &str)]) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container(image, env)], "terminationGracePeriodSeconds": 5},
            },
        },
    }))
    .expect("a valid Deployment")
}

/// A bare pod of the sample app labelled `app=<name>`; also usable as a client (`runway-hello get URL`).
pub fn hello_pod(name: &str, env: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container(&hello_image(), env)], "terminationGracePeriodSeconds": 1},
    }))
    .expect("a valid Pod")
}

/// A ClusterIP Service `name` on `port`, sending to `target_port` of the pods labelled `app=<app>`.
pub fn cluster_ip_service(name: &str, app: &str, port: u16, target_port: u16) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": app},
            "ports": [{"name": "http", "port": port, "targetPort": target_port}],
        },
    }))
    .expect("a valid Service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_selects_its_own_pods() {
        let d = deployment("registry.example/hello:1", "web", 2, &[("REJECT_OVERLAP", "true")]);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(spec.selector.match_labels.unwrap(), labels);
        let container = &spec.template.spec.unwrap().containers[0];
        assert_eq!(container.image.as_deref(), Some("registry.example/hello:1"));
        assert_eq!(container.env.as_ref().unwrap()[0].name, "REJECT_OVERLAP");
    }

    #[test]
    fn service_targets_the_app_port() {
        let s = cluster_ip_service("web", "web", 80, HELLO_PORT).spec.unwrap();
        assert_eq!(s.selector.unwrap()["app"], "web");
        assert_eq!(s.ports.unwrap()[0].port, 80);
    }
}
