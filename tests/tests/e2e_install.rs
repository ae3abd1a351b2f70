//! End-to-end tests of the install path a user's cluster takes (docs/install.md): Runway from the registry's OCI
//! chart and images, uninstalled with what stays shown, reinstalled with the Services serving again, `helm test`,
//! and an activator drain longer than the old fixed 60 s grace period. Each leaves the suite's release installed as
//! `runway_tests::install::upgrade_or_install` makes it.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t33` filters; one test at a time):
//! `cargo test -p runway-tests --features cluster --test e2e_install -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use runway_api::names::{GROUP, revision_name};
use runway_tests::answers::seen;
use runway_tests::cluster::Cluster;
use runway_tests::install::{self, helm, upgrade_with};
use runway_tests::load::{self, Target};
use runway_tests::release::Release;
use runway_tests::runway::{self, DOMAIN, NAMESPACE, READY, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

/// `helm uninstall` leaves the CRDs, the Services and their pods (docs/install.md says so); `helm install` of the
/// OCI chart from the cluster's registry, with the image registry set, brings the activators back, pulled from that
/// registry, and the Service answers through the ingress again without a new pod; `helm test` passes.
#[tokio::test]
async fn t33_uninstall_keeps_services_and_a_reinstall_from_the_registry_serves_them_again() {
    runway_scenario("e2e-reinstall", |cluster, ns| async move {
        let result = uninstall_and_reinstall(&cluster, &ns).await;
        // Whatever happened, the suite's release goes back for the tests that follow.
        let restored = install::upgrade_or_install(&cluster).await;
        result?;
        restored?;
        install::wait_components_ready(&cluster).await
    })
    .await;
}

async fn uninstall_and_reinstall(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    let spec = json!({"scaling": {"minScale": 1}});
    let target = deploy(cluster, ns, "keeper", &[], spec).await?;
    let first = load::sequential(&target, "/", 1, REQUEST).await;
    ensure!(first[0].ok(), "before uninstall: {}", seen(&first[0]));
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let revision = revision_name("keeper", 1);
    let uid_before = deployments.get(&revision).await?.metadata.uid;

    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    install::uninstall(cluster).await?;
    let stays = what_stays(cluster, ns, &revision).await?;
    eprintln!("after helm uninstall: {stays}");

    let release = Release::current();
    let mut args: Vec<String> = ["install", "runway"].map(String::from).to_vec();
    args.extend(release.chart_args());
    // The test bed's values and the release's digests (a tag alone may name an older image a node still has),
    // and the registry set as a user sets it.
    args.extend(release.values_args());
    args.extend(["--set".into(), format!("image.registry={}", release.registry)]);
    args.extend(
        [
            "--namespace",
            NAMESPACE,
            "--wait",
            "--timeout",
            "180s",
            "--kubeconfig",
            &kubeconfig,
        ]
        .map(String::from),
    );
    helm(&args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    install::wait_components_ready(cluster).await?;
    ensure_pulled_from(cluster, &release.registry).await?;

    let ingress = runway::ingress_address(cluster).await?;
    let through_ingress = Target {
        address: format!("{ingress}:80").parse()?,
        host: format!("keeper.{ns}.{DOMAIN}"),
    };
    wait_until(
        "keeper answering through the ingress after the reinstall",
        READY,
        || async {
            let outcome = load::get(&load::client(), &through_ingress, "/", REQUEST).await;
            if outcome.ok() { Ok(()) } else { Err(seen(&outcome)) }
        },
    )
    .await?;
    let uid_after = deployments.get(&revision).await?.metadata.uid;
    ensure!(
        uid_before == uid_after,
        "Deployment {revision} was replaced by the reinstall"
    );

    let tested = helm(&[
        "test",
        "runway",
        "--namespace",
        NAMESPACE,
        "--timeout",
        "180s",
        "--kubeconfig",
        &kubeconfig,
    ])
    .await?;
    eprintln!("helm test:\n{tested}");
    ensure!(
        tested.contains("Succeeded"),
        "helm test did not report a test that succeeded:\n{tested}"
    );
    Ok(())
}

/// What docs/install.md says `helm uninstall` leaves: the CRDs (kept by their resource policy), the Service and its
/// revision's Deployment with its pod; and no activator. Returns a summary.
async fn what_stays(cluster: &Cluster, ns: &str, revision: &str) -> anyhow::Result<String> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let kept: Vec<String> = crds
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|c| c.spec.group == GROUP)
        .map(ResourceExt::name_any)
        .collect();
    ensure!(
        kept.len() == 3,
        "the uninstall did not keep Runway's three CRDs: {kept:?}"
    );
    runway::get(cluster, ns, "keeper")
        .await
        .context("the uninstall deleted Service keeper")?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let workload = deployments
        .get(revision)
        .await
        .context("the uninstall deleted the revision's Deployment")?;
    let ready = workload.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    ensure!(ready == 1, "the revision's pod did not stay: {ready} ready");
    let components: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let left = components.list(&ListParams::default()).await?.items;
    ensure!(
        left.is_empty(),
        "components left: {:?}",
        left.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
    );
    Ok(format!(
        "CRDs {kept:?}, Service keeper, Deployment {revision} with {ready} ready pod, no component"
    ))
}

/// Every container of Runway's components runs an image the kubelet pulled from `registry`: its image ID is a
/// digest in that registry.
async fn ensure_pulled_from(cluster: &Cluster, registry: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component in (operator,activator)"))
        .await?;
    ensure!(!list.items.is_empty(), "no pods of Runway");
    let prefix = format!("{registry}/");
    for pod in &list.items {
        for status in pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
            ensure!(
                status.image_id.starts_with(&prefix),
                "{} runs {} ({}), not an image pulled from {registry}",
                pod.name_any(),
                status.image,
                status.image_id
            );
        }
    }
    Ok(())
}

/// With `shutdownTimeout: 120s` a request of 75 s through an activator that `kubectl rollout restart` replaces is
/// answered: the pod's grace period follows the drain settings (the chart had a fixed 60 s, and the kubelet killed
/// the draining activator then).
#[tokio::test]
async fn t34_an_activator_with_a_long_shutdown_timeout_drains_fully_on_a_rollout_restart() {
    runway_scenario("e2e-long-drain", |cluster, ns| async move {
        let result = long_drain(&cluster, &ns).await;
        let restored = upgrade_with(&cluster, &["activator.shutdownTimeout=30s"]).await;
        result?;
        restored.map(drop)
    })
    .await;
}

async fn long_drain(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    upgrade_with(cluster, &["activator.shutdownTimeout=120s"]).await?;
    install::wait_components_ready(cluster).await?;
    let components: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let activator = components.get("runway-activator").await?;
    let grace = activator
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.termination_grace_period_seconds);
    ensure!(
        grace >= Some(125),
        "the activator's grace period is {grace:?} s, below drainDelay + shutdownTimeout"
    );
    let spec = json!({"timeoutSeconds": 300, "scaling": {"minScale": 1}});
    let target = deploy(cluster, ns, "slow", &[], spec).await?;
    let request = tokio::spawn({
        let target = target.clone();
        async move {
            let started = Instant::now();
            let outcome = load::get(&load::client(), &target, "/sleep?ms=75000", Duration::from_secs(200)).await;
            (outcome, started.elapsed())
        }
    });
    wait_in_flight(cluster, ns).await?;
    cluster
        .kubectl()
        .run(&["-n", NAMESPACE, "rollout", "restart", "deployment/runway-activator"])
        .await?;
    let (outcome, took) = request.await?;
    eprintln!(
        "the 75 s request through the restart: {} after {took:?}",
        seen(&outcome)
    );
    ensure!(
        outcome.ok(),
        "the request through the draining activator failed: {}",
        seen(&outcome)
    );
    Ok(())
}

/// Waits until an activator reports the request to Service `slow` in flight to its pod.
async fn wait_in_flight(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    let series = format!("runway_activator_in_flight{{namespace=\"{ns}\"");
    wait_until("the slow request in flight at an activator", REQUEST, || async {
        let mut seen_lines = vec![];
        for pod in runway::activator_pods(cluster).await.map_err(|e| e.to_string())? {
            let admin = Target {
                address: std::net::SocketAddr::new(pod.address.ip(), 9090),
                host: "metrics".into(),
            };
            let outcome = load::get(&load::client(), &admin, "/metrics", REQUEST).await;
            let line = outcome.body.lines().find(|l| l.starts_with(&series)).map(str::to_owned);
            if line.as_deref().is_some_and(|l| l.ends_with(" 1")) {
                return Ok(());
            }
            seen_lines.push(format!("{}: {line:?}", pod.name));
        }
        Err(seen_lines.join("; "))
    })
    .await?;
    Ok(())
}
