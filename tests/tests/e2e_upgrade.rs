//! End-to-end test of an upgrade: a Service made by the previous release keeps answering while `helm upgrade` moves
//! it to this tree's release, whose chart upgrades the CRDs (the previous chart had them in `crds/`, which helm
//! never upgrades; this one has them in its templates, adopted as docs/install.md says). It uninstalls Runway and reinstalls it, so it is the last e2e file by name; it always
//! leaves this tree's release installed (`hack/install-runway.sh`), as `make up` does.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t31` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_upgrade -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, CustomResourceExt, ResourceExt};
use runway_api::names::revision_name;
use runway_tests::answers::{ensure_all_ok, print_failures, seen, unix_ms};
use runway_tests::cluster::{Cluster, repo_root};
use runway_tests::command::run;
use runway_tests::install::{self, helm};
use runway_tests::load::{self, Load};
use runway_tests::runway::{self, DOMAIN, NAMESPACE, READY, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

/// Last in the suite, as it reinstalls Runway: a Service made by the previous release (the commit before
/// revisions, built by hack/upgrade/previous-release.sh) keeps answering every request while `helm upgrade` moves
/// it to this tree's release, and ends as revision 1 of itself with the old Deployment and pod Service gone.
#[tokio::test]
async fn t31_an_upgrade_from_the_previous_release_fails_no_request() {
    runway_scenario("e2e-upgrade", |cluster, ns| async move {
        let chart = run("hack/upgrade/previous-release.sh", &[], &repo_root()).await?;
        let upgraded = upgrade_from_previous(&cluster, &ns, chart.trim()).await;
        // Whatever happened, the cluster goes back to this tree's release for whoever runs tests next.
        let restored = run("hack/install-runway.sh", &[], &repo_root()).await;
        upgraded?;
        restored.map(drop)
    })
    .await;
}

async fn upgrade_from_previous(cluster: &Cluster, ns: &str, chart: &str) -> anyhow::Result<()> {
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    install::uninstall(cluster).await?;
    // A cluster that only ever had the previous release: its CRDs, as its chart's crds/ folder installs them.
    delete_crds(cluster).await?;
    helm(&[
        "install",
        "runway",
        chart,
        "--namespace",
        NAMESPACE,
        "--set",
        &format!("domain={DOMAIN}"),
        "--set",
        "operator.image.tag=previous",
        "--set",
        "activator.image.tag=previous",
        "--wait",
        "--timeout",
        "180s",
        "--kubeconfig",
        &kubeconfig,
    ])
    .await?;
    // Two pods held by the bounds, so that the old Deployment is at rest when the new operator takes over.
    let spec = json!({"containerConcurrency": 10, "scaling": {"minScale": 2, "maxScale": 2}});
    let target = deploy(cluster, ns, "legacy", &[], spec).await?;
    let pods_api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("{}=legacy", runway_api::names::SERVICE_LABEL);
    let old_pods = runway_tests::pods::wait_ready(&pods_api, &selector, 2, Duration::from_secs(120)).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let legacy = deployments
        .get("legacy")
        .await
        .context("the previous release runs a Service's pods in a Deployment named after it")?;
    let before = load::sequential(&target, "/", 5, REQUEST).await;
    ensure_all_ok("the previous release", &before)?;

    let started_ms = unix_ms();
    let load = Load::start(&target, "/sleep?ms=50", 8, REQUEST);
    adopt_crds(cluster).await?;
    run("hack/install-runway.sh", &[], &repo_root()).await?;
    ensure_crds_upgraded(cluster).await?;
    let revision = revision_name("legacy", 1);
    runway::wait_latest_ready(cluster, ns, "legacy", &revision, Duration::from_secs(180)).await?;
    let uid = legacy.metadata.uid.clone();
    let kube_services: Api<KubeService> = Api::namespaced(cluster.client.clone(), ns);
    wait_until(
        "the previous release's Deployment legacy and Service legacy-pods deleted",
        Duration::from_secs(120),
        || async {
            let deployment = deployments.get_opt("legacy").await.map_err(|e| e.to_string())?;
            let pods_service = kube_services.get_opt("legacy-pods").await.map_err(|e| e.to_string())?;
            match (deployment.filter(|d| d.metadata.uid == uid), pods_service) {
                (None, None) => Ok(()),
                (deployment, service) => Err(format!(
                    "Deployment legacy left: {}, Service legacy-pods left: {}",
                    deployment.is_some(),
                    service.is_some()
                )),
            }
        },
    )
    .await?;
    // Every activator routes to the revision, which answers from the pods the previous release started.
    let bodies: Vec<String> = old_pods
        .iter()
        .map(|p| format!("hello from {}", kube::ResourceExt::name_any(p)))
        .collect();
    wait_until(
        format!("{} answered by {revision} from the pods it took over", target.host),
        READY,
        || async {
            for _ in 0..5 {
                let outcome = load::get(&load::client(), &target, "/", REQUEST).await;
                let from_old_pod = bodies.iter().any(|b| outcome.body.starts_with(b.as_str()));
                if !(outcome.ok() && outcome.revision.as_deref() == Some(revision.as_str()) && from_old_pod) {
                    return Err(format!("{} from {:?}", seen(&outcome), outcome.revision));
                }
            }
            Ok(())
        },
    )
    .await?;
    let outcomes = load.finish().await;
    eprintln!("through the upgrade: {:?}", load::tally(&outcomes));
    print_failures(started_ms, &outcomes);
    ensure_all_ok("requests during the upgrade", &outcomes)?;
    // The template did not change: the revision's Deployment runs the very pods the previous release started.
    let now = runway_tests::pods::wait_ready(&pods_api, &selector, 2, Duration::from_secs(30)).await?;
    let uids = |pods: &[Pod]| -> std::collections::BTreeSet<String> {
        pods.iter().filter_map(|p| p.metadata.uid.clone()).collect()
    };
    ensure!(
        uids(&now) == uids(&old_pods),
        "pods restarted on upgrade: before {:?}, after {:?}",
        old_pods.iter().map(kube::ResourceExt::name_any).collect::<Vec<_>>(),
        now.iter().map(runway_tests::pods::summary).collect::<Vec<_>>()
    );
    let own = deployments.get(&revision).await?;
    let ready = own.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    ensure!(
        ready == 2,
        "Deployment {revision} has {ready} ready pods, not the 2 it took over"
    );
    let events = runway::events(cluster, ns).await?;
    let upgrading = events.iter().find(|e| e.reason == "Upgrading");
    ensure!(upgrading.is_some(), "no Upgrading event: {events:?}");
    eprintln!("{:?}", upgrading);
    Ok(())
}

/// The CRDs of serving.runway.dev in the cluster.
async fn runway_crds(cluster: &Cluster) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let all = crds.list(&Default::default()).await?;
    Ok(all
        .items
        .into_iter()
        .filter(|c| c.spec.group == runway_api::names::GROUP)
        .collect())
}

/// Deletes Runway's CRDs (and so every Runway object) and waits until they are gone.
async fn delete_crds(cluster: &Cluster) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for crd in runway_crds(cluster).await? {
        crds.delete(&crd.name_any(), &Default::default()).await?;
    }
    wait_until("Runway's CRDs deleted", Duration::from_secs(120), || async {
        let left: Vec<String> = runway_crds(cluster)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|c| c.name_any())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left: {left:?}"))
        }
    })
    .await?;
    Ok(())
}

/// The one-time step docs/install.md gives for an upgrade from a chart that had the CRDs in `crds/`: label and
/// annotate them as the release's, so that helm adopts them instead of refusing to upgrade.
async fn adopt_crds(cluster: &Cluster) -> anyhow::Result<()> {
    for crd in runway_crds(cluster).await? {
        let name = format!("crd/{}", crd.name_any());
        let kubectl = cluster.kubectl();
        kubectl
            .run(&["label", "--overwrite", &name, "app.kubernetes.io/managed-by=Helm"])
            .await?;
        let release = format!("meta.helm.sh/release-namespace={NAMESPACE}");
        kubectl
            .run(&[
                "annotate",
                "--overwrite",
                &name,
                "meta.helm.sh/release-name=runway",
                &release,
            ])
            .await?;
    }
    Ok(())
}

/// Every CRD this tree generates is in the cluster with this tree's schema, kept on uninstall.
async fn ensure_crds_upgraded(cluster: &Cluster) -> anyhow::Result<()> {
    let installed = runway_crds(cluster).await?;
    let generated = [
        runway_api::crd::service_crd(),
        runway_api::crd::revision_crd(),
        runway_api::domain_mapping::DomainMapping::crd(),
    ];
    for want in generated {
        let name = want.name_any();
        let have = installed
            .iter()
            .find(|c| c.name_any() == name)
            .with_context(|| format!("CRD {name} not installed by the upgrade"))?;
        let schema =
            |crd: &CustomResourceDefinition| normalized(serde_json::to_value(&crd.spec.versions[0].schema).unwrap());
        ensure!(
            schema(have) == schema(&want),
            "CRD {name} still has the previous release's schema"
        );
        let keep = have.annotations().get("helm.sh/resource-policy").map(String::as_str);
        ensure!(
            keep == Some("keep"),
            "CRD {name} is not kept on uninstall: {:?}",
            have.annotations()
        );
    }
    eprintln!(
        "the upgrade installed this tree's CRDs: {:?}",
        installed.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    );
    Ok(())
}

/// A schema as the API server keeps it: numbers as floats (`1000` and `1000.0` are one bound) and no empty lists
/// (it drops `required: []`).
fn normalized(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), |f| json!(f)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !matches!(v, Value::Array(items) if items.is_empty()))
                .map(|(k, v)| (k, normalized(v)))
                .collect(),
        ),
        other => other,
    }
}
