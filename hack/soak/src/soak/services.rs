//! The Runway Services a soak deploys, one per data-path feature, and the load each gets.

use runway_api::Service;
use serde_json::{Value, json};

/// The sample app's port in its pods.
const PORT: u16 = 8080;

/// How clients talk to the activator for a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge, client to activator and activator to pod.
    H2c,
    /// Short WebSocket sessions on `/ws`.
    WebSocket,
}

#[derive(Clone, Copy, Debug)]
pub struct SoakService {
    pub name: &'static str,
    pub container_concurrency: i32,
    /// The serving port's name: `h2c` makes the operator mark it `kubernetes.io/h2c`, so the activator speaks
    /// HTTP/2 to the pods.
    pub port_name: &'static str,
    pub reject_overlap: bool,
    /// Merged into `spec.scaling`.
    pub scaling: fn() -> Value,
    pub protocol: Protocol,
    /// Path of the HTTP requests.
    pub path: &'static str,
    /// Concurrent client loops.
    pub clients: usize,
}

/// containerConcurrency 1 with overlap detection: any overlap is a broken limit.
pub const CC1: SoakService = SoakService {
    name: "cc1",
    container_concurrency: 1,
    port_name: "http",
    reject_overlap: true,
    scaling: || json!({"minScale": 1, "maxScale": 3}),
    protocol: Protocol::Http1,
    path: "/sleep?ms=20",
    clients: 4,
};

/// The Service the schedule scales in and out.
pub const CC10: SoakService = SoakService {
    name: "cc10",
    container_concurrency: 10,
    port_name: "http",
    reject_overlap: false,
    scaling: || json!({"minScale": 1, "maxScale": 4}),
    protocol: Protocol::Http1,
    path: "/sleep?ms=50",
    clients: 10,
};

/// Unlimited concurrency; the schedule takes it to zero and back, so it may reach zero within seconds.
pub const CC0: SoakService = SoakService {
    name: "cc0",
    container_concurrency: 0,
    port_name: "http",
    reject_overlap: false,
    scaling: || json!({"minScale": 0, "stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0}),
    protocol: Protocol::Http1,
    path: "/",
    clients: 4,
};

pub const H2C: SoakService = SoakService {
    name: "h2c",
    container_concurrency: 5,
    port_name: "h2c",
    reject_overlap: false,
    scaling: || json!({"minScale": 1, "maxScale": 3}),
    protocol: Protocol::H2c,
    path: "/sleep?ms=10",
    clients: 4,
};

pub const WS: SoakService = SoakService {
    name: "ws",
    container_concurrency: 0,
    port_name: "http",
    reject_overlap: false,
    scaling: || json!({"minScale": 1, "maxScale": 2}),
    protocol: Protocol::WebSocket,
    path: "/ws",
    clients: 2,
};

pub const ALL: [SoakService; 5] = [CC1, CC10, CC0, H2C, WS];

impl SoakService {
    /// The Runway Service object: the sample app with a readiness probe on /healthz, so that the activator probes
    /// that path too.
    pub fn manifest(&self, image: &str) -> anyhow::Result<Service> {
        let env: Vec<Value> = if self.reject_overlap {
            vec![json!({"name": "REJECT_OVERLAP", "value": "true"})]
        } else {
            vec![]
        };
        Ok(serde_json::from_value(json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {"name": self.name, "labels": {"runway.dev/soak": "true"}},
            "spec": {
                "containerConcurrency": self.container_concurrency,
                "scaling": (self.scaling)(),
                "template": {"spec": {"containers": [{
                    "name": "app",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": self.port_name, "containerPort": PORT}],
                    "env": env,
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1},
                }]}},
            },
        }))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_is_a_valid_service() {
        for service in ALL {
            let manifest = service.manifest("runway.local/hello:soak").unwrap();
            assert_eq!(manifest.spec.container_concurrency, service.container_concurrency);
            let container = &manifest.spec.template.spec.containers[0];
            assert_eq!(container.image.as_deref(), Some("runway.local/hello:soak"));
        }
        let cc1 = CC1.manifest("x").unwrap();
        assert_eq!(
            cc1.spec.template.spec.containers[0].env.as_ref().unwrap()[0].name,
            "REJECT_OVERLAP"
        );
        assert_eq!(CC0.manifest("x").unwrap().spec.scaling.min_scale, Some(0));
    }

    #[test]
    fn the_h2c_service_names_its_port_h2c() {
        let manifest = H2C.manifest("x").unwrap();
        let ports = manifest.spec.template.spec.containers[0].ports.clone().unwrap();
        assert_eq!(ports[0].name.as_deref(), Some("h2c"));
    }
}
