//! Runway on the cluster: its components, Services and Revisions, and where requests through the activator go
//! (its installation: [`crate::install`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use runway_api::names::{REVISION_LABEL, SERVICE_LABEL, deployment_name};
use runway_api::{Revision, Service};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::kubectl::Kubectl;
use crate::load::Target;
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
/// How long a test request through the activator may take, its whole answer read.
pub const REQUEST: Duration = Duration::from_secs(30);

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

/// The test bed's ingress (Traefik's Service) IP, port 80 and 443.
pub async fn ingress_address(cluster: &Cluster) -> anyhow::Result<String> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(cluster.client.clone(), "traefik");
    Ok(services
        .get("traefik")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default())
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

/// Sets the activator Deployment's replicas and waits until exactly that many are ready.
pub async fn set_activators(cluster: &Cluster, replicas: i32) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    api.patch_scale(
        "runway-activator",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait_until(format!("{replicas} activator pods, all ready"), READY, || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=runway-activator"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|p| crate::pods::is_ready(p)).count();
        if list.items.len() == replicas as usize && ready == replicas as usize {
            Ok(())
        } else {
            Err(format!("{ready} ready of {}", list.items.len()))
        }
    })
    .await?;
    Ok(())
}

/// The Host header that routes to Service `name` in `ns`.
pub fn host(name: &str, ns: &str) -> String {
    format!("{name}.{ns}.{DOMAIN}")
}

/// Where requests to Service `name` in `ns` go: [`activator_address`] with the Service's [`host`].
pub async fn target(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Target> {
    Ok(Target {
        address: activator_address(cluster).await?,
        host: host(name, ns),
    })
}

/// Creates the sample app as Service `name` ([`hello_service`]) and waits until it is Ready.
pub async fn deploy(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    env: &[(&str, &str)],
    spec: Value,
) -> anyhow::Result<Target> {
    create(cluster, ns, &hello_service(name, env, spec)?).await?;
    wait_ready(cluster, ns, name, READY).await?;
    target(cluster, ns, name).await
}

/// Settings that let a Service reach zero within seconds: a 6 s stable window and no grace period.
pub fn quick_zero() -> Value {
    json!({"scaling": {"stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0}})
}

/// A Service manifest of the sample app with `spec` merged over the defaults (image, pull policy) and `env` set.
pub fn hello_service(name: &str, env: &[(&str, &str)], spec: Value) -> anyhow::Result<Service> {
    let mut manifest = json!({
        "apiVersion": "serving.runway.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [hello_container(env)]}}},
    });
    merge(&mut manifest["spec"], spec);
    Ok(serde_json::from_value(manifest)?)
}

/// The sample app's container as [`hello_service`] writes it, whole: a merge patch replaces lists, so a patch that
/// changes the container sends all of it.
pub fn hello_container(env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    json!({
        "name": "app",
        "image": hello_image(),
        "imagePullPolicy": "IfNotPresent",
        "env": env,
    })
}

/// Deep-merges `patch` into `base` (objects merge, anything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
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

/// The Service `name` in `ns`.
pub async fn get(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Service> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    api.get(name).await.with_context(|| format!("Service {ns}/{name}"))
}

/// Merge-patches the Service's spec with `spec` (objects merge, lists are replaced) and returns the Service.
pub async fn patch_spec(cluster: &Cluster, ns: &str, name: &str, spec: Value) -> anyhow::Result<Service> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let patch = Patch::Merge(json!({ "spec": spec }));
    api.patch(name, &PatchParams::default(), &patch)
        .await
        .with_context(|| format!("patching Service {ns}/{name}"))
}

/// Replaces the sample app's container of Service `name` with one that has `env`: a new template, so a new
/// revision.
pub async fn set_env(cluster: &Cluster, ns: &str, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
    let spec = json!({"template": {"spec": {"containers": [hello_container(env)]}}});
    patch_spec(cluster, ns, name, spec).await
}

/// The revision a Service with one revision serves from: its latest ready revision, else its latest created one.
pub fn serving_revision(service: &Service) -> Option<String> {
    let status = service.status.as_ref()?;
    status
        .latest_ready_revision_name
        .clone()
        .or_else(|| status.latest_created_revision_name.clone())
}

/// [`serving_revision`] of Service `name`.
pub async fn revision_of(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<String> {
    let service = get(cluster, ns, name).await?;
    serving_revision(&service)
        .with_context(|| format!("Service {ns}/{name} has no revision yet: {}", summary(&service)))
}

/// The Service's resolved routing table (status.traffic) as the percent of each revision, summed over its targets.
pub fn traffic_shares(service: &Service) -> BTreeMap<String, i32> {
    let mut shares = BTreeMap::new();
    for target in service.status.iter().flat_map(|s| &s.traffic) {
        *shares.entry(target.revision_name.clone()).or_insert(0) += target.percent;
    }
    shares
}

/// One line of what the Service's status says about its revisions, for failure messages.
pub fn summary(service: &Service) -> String {
    let Some(status) = &service.status else {
        return "no status yet".to_owned();
    };
    let traffic: Vec<String> = status
        .traffic
        .iter()
        .map(|t| {
            let tag = t.tag.as_deref().map(|tag| format!(" tag {tag}")).unwrap_or_default();
            let latest = if t.latest_revision { " (latest)" } else { "" };
            format!("{}={}%{latest}{tag}", t.revision_name, t.percent)
        })
        .collect();
    let rollout = status.rollout.as_ref().map_or_else(
        || "none".to_owned(),
        |r| {
            format!(
                "{:?} {} -> {} at {}% ({})",
                r.phase,
                r.previous_revision_name,
                r.next_revision_name,
                r.next_percent,
                r.message.as_deref().unwrap_or("")
            )
        },
    );
    format!(
        "generation {:?} observed {:?}; latest created {:?}, latest ready {:?}; traffic [{}]; Ready={} \
         ConfigurationReady={} RoutesReady={}; replicas {:?}; rollout {rollout}",
        service.metadata.generation,
        status.observed_generation,
        status.latest_created_revision_name,
        status.latest_ready_revision_name,
        traffic.join(", "),
        condition(service, "Ready"),
        condition(service, "ConfigurationReady"),
        condition(service, "RoutesReady"),
        status.pods.replica_summary,
    )
}

/// Polls Service `name` until `check` accepts it (Ok) or `timeout` passes; `Err` says what was seen.
pub async fn wait_service<T>(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Service) -> Result<T, String>,
) -> anyhow::Result<T> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let check = &check;
    let value = wait_until(format!("Service {ns}/{name}: {what}"), timeout, || async {
        let service = api.get(name).await.map_err(|e| e.to_string())?;
        check(&service).map_err(|seen| format!("{seen}; {}", summary(&service)))
    })
    .await?;
    Ok(value)
}

/// Waits until `revision` is the Service's latest created and latest ready revision and its status describes the
/// current spec; returns the Service.
pub async fn wait_latest_ready(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    revision: &str,
    timeout: Duration,
) -> anyhow::Result<Service> {
    wait_service(
        cluster,
        ns,
        name,
        &format!("{revision} latest created and ready"),
        timeout,
        |service| {
            let status = service.status.as_ref().ok_or("no status")?;
            let current = status.observed_generation == service.metadata.generation;
            let created = status.latest_created_revision_name.as_deref() == Some(revision);
            let ready = status.latest_ready_revision_name.as_deref() == Some(revision);
            if current && created && ready {
                Ok(service.clone())
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await
}

/// The Revision `name` in `ns`, if it exists.
pub async fn revision(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Option<Revision>> {
    let api: Api<Revision> = Api::namespaced(cluster.client.clone(), ns);
    api.get_opt(name).await.with_context(|| format!("Revision {ns}/{name}"))
}

/// The Revisions of Service `service`, by name.
pub async fn revisions(cluster: &Cluster, ns: &str, service: &str) -> anyhow::Result<Vec<Revision>> {
    let api: Api<Revision> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("{SERVICE_LABEL}={service}");
    let mut list = api.list(&ListParams::default().labels(&selector)).await?.items;
    list.sort_by_key(ResourceExt::name_any);
    Ok(list)
}

/// The Revision's condition `type_` as `status/reason`, or what is missing.
pub fn revision_condition(revision: &Revision, type_: &str) -> String {
    revision
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map_or_else(
            || format!("no {type_} condition"),
            |c| format!("{}/{}", c.status, c.reason),
        )
}

/// One line of the Revision's status, for failure messages.
pub fn revision_summary(revision: &Revision) -> String {
    let name = revision.name_any();
    match &revision.status {
        None => format!("{name}: no status yet"),
        Some(s) => format!(
            "{name}: Ready={} replicas {}/{} (desired {}), routed {}, traffic {}%, tags {:?}",
            revision_condition(revision, "Ready"),
            s.pods.ready_replicas,
            s.pods.replicas,
            s.pods.desired_replicas,
            s.routed,
            s.traffic_percent,
            s.tags
        ),
    }
}

/// Polls Revision `name` until `check` accepts it or `timeout` passes (a missing Revision is "not yet").
pub async fn wait_revision<T>(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Revision) -> Result<T, String>,
) -> anyhow::Result<T> {
    let api: Api<Revision> = Api::namespaced(cluster.client.clone(), ns);
    let check = &check;
    let value = wait_until(format!("Revision {ns}/{name}: {what}"), timeout, || async {
        match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => Err("no such Revision".to_owned()),
            Some(revision) => check(&revision).map_err(|seen| format!("{seen}; {}", revision_summary(&revision))),
        }
    })
    .await?;
    Ok(value)
}

/// Waits until the Revision is Ready with at least one ready pod.
pub async fn wait_revision_serving(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_revision(cluster, ns, name, "Ready with a ready pod", timeout, |revision| {
        let ready = revision_condition(revision, "Ready").starts_with("True/");
        let pods = revision.status.as_ref().map_or(0, |s| s.pods.ready_replicas);
        if ready && pods > 0 {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await
}

/// The `spec.replicas` (what the autoscaler asks for) of the Deployment of Service `name`'s serving revision
/// ([`serving_revision`]).
pub async fn scale(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<i32> {
    let revision = revision_of(cluster, ns, name).await?;
    revision_scale(cluster, ns, &revision).await
}

/// The `spec.replicas` of the Deployment of `revision`.
pub async fn revision_scale(cluster: &Cluster, ns: &str, revision: &str) -> anyhow::Result<i32> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let deployment = api
        .get(&deployment_name(revision))
        .await
        .with_context(|| format!("the Deployment of revision {ns}/{revision}"))?;
    Ok(deployment.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// Waits until the Deployment of Service `name`'s serving revision asks for `want` pods.
pub async fn wait_scale(cluster: &Cluster, ns: &str, name: &str, want: i32, timeout: Duration) -> anyhow::Result<()> {
    let what = format!("the Deployment of Service {ns}/{name}");
    wait_replicas(what, want, timeout, || scale(cluster, ns, name)).await
}

/// Waits until the Deployment of `revision` asks for `want` pods.
pub async fn wait_revision_scale(
    cluster: &Cluster,
    ns: &str,
    revision: &str,
    want: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let what = format!("the Deployment of revision {ns}/{revision}");
    wait_replicas(what, want, timeout, || revision_scale(cluster, ns, revision)).await
}

/// Waits until `replicas` (a Deployment's `spec.replicas`, read again each time) gives `want`.
async fn wait_replicas<F, Fut>(what: String, want: i32, timeout: Duration, replicas: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<i32>>,
{
    wait_until(format!("{what} at {want} replicas"), timeout, || async {
        match replicas().await {
            Ok(n) if n == want => Ok(()),
            Ok(n) => Err(format!("{n} replicas")),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await?;
    Ok(())
}

/// Waits until the Deployment of Service `name`'s serving revision asks for no pod and every pod of the Service
/// is gone.
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

/// The pods of Service `name`, of all its revisions (any phase).
pub async fn pods(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("{SERVICE_LABEL}={name}");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// The pods of revision `revision` (any phase).
pub async fn revision_pods(cluster: &Cluster, ns: &str, revision: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("{REVISION_LABEL}={revision}");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// An event as `type reason: note`.
#[derive(Clone, Debug)]
pub struct EventLine {
    pub type_: String,
    pub reason: String,
    pub note: String,
    /// Kind and name of the object it is about.
    pub regarding: String,
}

impl std::fmt::Display for EventLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}: {}", self.regarding, self.type_, self.reason, self.note)
    }
}

/// The events of namespace `ns` (events.k8s.io), oldest first.
pub async fn events(cluster: &Cluster, ns: &str) -> anyhow::Result<Vec<EventLine>> {
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let mut list = api.list(&ListParams::default()).await?.items;
    list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    Ok(list
        .into_iter()
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            EventLine {
                type_: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                note: e.note.unwrap_or_default(),
                regarding: format!(
                    "{}/{}",
                    regarding.kind.unwrap_or_default(),
                    regarding.name.unwrap_or_default()
                ),
            }
        })
        .collect())
}

/// Runway's own state for a failure report: the Services of `ns` in full, and the components' recent logs.
pub async fn report(kubectl: &Kubectl, ns: &str) -> String {
    let mut out = String::new();
    for (title, args) in [
        (
            format!("Runway Services and Revisions in {ns}"),
            vec!["-n", ns, "get", "rsvc,rrev", "-o", "wide"],
        ),
        (
            format!("Runway Services in {ns}"),
            vec!["-n", ns, "get", "rsvc", "-o", "yaml"],
        ),
        (
            format!("Runway Revisions in {ns}"),
            vec!["-n", ns, "get", "rrev", "-o", "yaml"],
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
