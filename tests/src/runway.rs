//! Runway on the cluster: its installation, Services, and requests through the activator.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use kube::Api;
use kube::api::{ListParams, PostParams};
use runway_api::Service;
use serde_json::{Value, json};

use crate::cluster::{Cluster, repo_root};
use crate::kubectl::Kubectl;
use crate::wait::wait_until;
use crate::workloads::hello_image;

/// Namespace `make up` installs Runway into.
pub const NAMESPACE: &str = "runway-system";
/// The URL domain of the installation (the chart's default).
pub const DOMAIN: &str = "example.com";
/// The chart rendered with its defaults into namespace runway-system, for `kubectl apply` without Helm.
pub const MANIFESTS: &str = "deploy/manifests/runway.yaml";
/// A Service goes Ready within this time when its pod starts normally.
pub const READY: Duration = Duration::from_secs(90);

/// The helm binary: `$HELM`, else the one the local cluster built.
pub fn helm() -> String {
    std::env::var("HELM").unwrap_or_else(|_| repo_root().join(".cluster/bin/helm").display().to_string())
}

/// Overrides where the suite sends requests, e.g. a `kubectl port-forward` on kind, whose ClusterIPs the host
/// cannot reach.
pub const ACTIVATOR_ADDRESS_ENV: &str = "RUNWAY_ACTIVATOR_ADDRESS";

/// Where clients reach the activator: `$RUNWAY_ACTIVATOR_ADDRESS`, else its Service's ClusterIP and port (routed
/// from the host by kube-proxy on the local cluster).
pub async fn activator_address(cluster: &Cluster) -> anyhow::Result<SocketAddr> {
    if let Ok(address) = std::env::var(ACTIVATOR_ADDRESS_ENV) {
        return address
            .parse()
            .with_context(|| format!("{ACTIVATOR_ADDRESS_ENV}={address}"));
    }
    let services: Api<KubeService> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let service = services
        .get("runway-activator")
        .await
        .context("the runway-activator Service")?;
    let spec = service.spec.context("runway-activator has no spec")?;
    let ip = spec.cluster_ip.context("runway-activator has no ClusterIP")?;
    let port = spec.ports.and_then(|p| p.first().map(|p| p.port)).unwrap_or(80);
    Ok(SocketAddr::new(ip.parse()?, u16::try_from(port)?))
}

/// Selects the activator pods in [`NAMESPACE`].
pub const ACTIVATOR_SELECTOR: &str = "app.kubernetes.io/name=runway-activator";

/// One activator pod and the address of its proxy port.
#[derive(Clone, Debug)]
pub struct ActivatorPod {
    pub name: String,
    /// Pod IP and the container port named `http`: reachable from the host on the local cluster, whose pod network
    /// is routed onto the bridge (on kind it is not; such tests need the local cluster).
    pub address: SocketAddr,
}

/// The activator pods that are Running, Ready and not being deleted, sorted by name.
pub async fn activator_pods(cluster: &Cluster) -> anyhow::Result<Vec<ActivatorPod>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let list = api.list(&ListParams::default().labels(ACTIVATOR_SELECTOR)).await?;
    let mut found = vec![];
    for pod in list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && crate::pods::is_ready(p))
    {
        let name = pod.metadata.name.clone().context("an activator pod without a name")?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .with_context(|| format!("activator {name} has no pod IP"))?;
        let port = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some("http"))
            .map_or(8080, |p| p.container_port);
        found.push(ActivatorPod {
            address: SocketAddr::new(ip.parse()?, u16::try_from(port)?),
            name,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The Host header that routes to Service `name` in `ns`.
pub fn host(name: &str, ns: &str) -> String {
    format!("{name}.{ns}.{DOMAIN}")
}

/// A Service manifest of the sample app with `spec` merged over the defaults (image, pull policy) and `env` set.
pub fn hello_service(name: &str, env: &[(&str, &str)], spec: Value) -> anyhow::Result<Service> {
    let env: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    let mut manifest = json!({
        "apiVersion": "serving.runway.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "image": hello_image(),
            "imagePullPolicy": "IfNotPresent",
            "env": env,
        }]}}},
    });
    merge(&mut manifest["spec"], spec);
    Ok(serde_json::from_value(manifest)?)
}

/// Deep-merges `patch` into `base` (objects merge, anything else replaces).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// Creates the Service in `ns`.
pub async fn create(cluster: &Cluster, ns: &str, service: &Service) -> anyhow::Result<Service> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    Ok(api.create(&PostParams::default(), service).await?)
}

/// The condition `type_` of the Service as `status/reason`, or what is missing.
pub fn condition(service: &Service, type_: &str) -> String {
    service
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map_or_else(
            || format!("no {type_} condition"),
            |c| format!("{}/{}", c.status, c.reason),
        )
}

/// Waits until the Service is Ready=True and returns it.
pub async fn wait_ready(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) -> anyhow::Result<Service> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let service = wait_until(format!("Service {ns}/{name} Ready"), timeout, || async {
        let service = api.get(name).await.map_err(|e| e.to_string())?;
        let ready = condition(&service, "Ready");
        if ready.starts_with("True/") {
            Ok(service)
        } else {
            Err(format!("Ready={ready}"))
        }
    })
    .await?;
    Ok(service)
}

/// The Deployment's `spec.replicas` (what the autoscaler asks for).
pub async fn scale(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<i32> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let deployment = api.get(name).await?;
    Ok(deployment.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// Waits until the Deployment asks for `want` pods.
pub async fn wait_scale(cluster: &Cluster, ns: &str, name: &str, want: i32, timeout: Duration) -> anyhow::Result<()> {
    wait_until(
        format!("Deployment {ns}/{name} at {want} replicas"),
        timeout,
        || async {
            match scale(cluster, ns, name).await {
                Ok(n) if n == want => Ok(()),
                Ok(n) => Err(format!("{n} replicas")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?;
    Ok(())
}

/// Waits until the Deployment asks for no pod and every pod of the Service is gone.
pub async fn wait_zero(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_scale(cluster, ns, name, 0, timeout).await?;
    wait_until(format!("no pods of {ns}/{name}"), timeout, || async {
        match pods(cluster, ns, name).await {
            Ok(left) if left.is_empty() => Ok(()),
            Ok(left) => Err(format!("{} pods", left.len())),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await?;
    Ok(())
}

/// The pods of Service `name` (any phase).
pub async fn pods(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("{}={name}", runway_api::names::SERVICE_LABEL);
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// Runway's own state for a failure report: the Services of `ns` in full, and the components' recent logs.
pub async fn report(kubectl: &Kubectl, ns: &str) -> String {
    let mut out = String::new();
    for (title, args) in [
        (
            format!("Runway Services in {ns}"),
            vec!["-n", ns, "get", "rsvc", "-o", "yaml"],
        ),
        (
            "Runway components".to_owned(),
            vec!["-n", NAMESPACE, "get", "pods", "-o", "wide"],
        ),
        (
            "operator logs".to_owned(),
            vec![
                "-n",
                NAMESPACE,
                "logs",
                "-l",
                "app.kubernetes.io/name=runway-operator",
                "--tail=60",
                "--prefix",
            ],
        ),
        (
            "activator logs".to_owned(),
            vec![
                "-n",
                NAMESPACE,
                "logs",
                "-l",
                "app.kubernetes.io/name=runway-activator",
                "--tail=60",
                "--prefix",
            ],
        ),
    ] {
        let text = kubectl.run(&args).await.unwrap_or_else(|e| format!("({e:#})"));
        out.push_str(&format!("\n===== {title} =====\n{text}\n"));
    }
    out
}
