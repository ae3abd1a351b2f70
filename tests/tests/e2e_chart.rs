//! End-to-end tests of Runway's Helm chart: it lints clean, renders the committed manifests (`make manifests`), which
//! pass a server-side dry run, also with the entry points the defaults leave out (HTTPRoute, Ingress); and
//! `helm upgrade --install` leaves both components Ready. The first e2e file by name, as these were the first tests.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t00` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_chart -- --test-threads=1`.
#![forbid(unsafe_code)]

use anyhow::ensure;
use runway_tests::cluster::{Cluster, repo_root};
use runway_tests::install::{self, helm};
use runway_tests::runway::{self, NAMESPACE};
use runway_tests::scenario::runway_scenario;

/// `kubectl apply --server-side --dry-run=server` of the file at `path`: the API server validates every object.
async fn server_dry_run(cluster: &Cluster, path: &std::path::Path) -> anyhow::Result<String> {
    let path = path.to_string_lossy();
    let args = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        &path,
    ];
    cluster.kubectl().run(&args).await
}

#[tokio::test]
async fn t00_the_chart_lints_clean_renders_the_committed_manifests_and_passes_a_server_dry_run() {
    runway_scenario("e2e-chart", |cluster, _ns| async move {
        let lint = helm(&["lint", "deploy/runway"]).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint: {lint}"
        );
        let rendered = helm(&[
            "template",
            "runway",
            "deploy/runway",
            "--namespace",
            NAMESPACE,
            "--include-crds",
        ])
        .await?;
        let manifests = repo_root().join(runway::MANIFESTS);
        let committed = std::fs::read_to_string(&manifests)?;
        ensure!(
            rendered == committed,
            "{} is stale: run `make manifests` and commit it",
            runway::MANIFESTS
        );
        let dry_run = server_dry_run(&cluster, &manifests).await?;
        eprintln!("server-side dry run of {}:\n{dry_run}", runway::MANIFESTS);

        // The templates the defaults leave out: the HTTPRoute and the Ingress.
        let entry_points = [
            "--set=gateway.enabled=true",
            "--set=gateway.parentRefs[0].name=runway",
            "--set=gateway.parentRefs[0].namespace=traefik",
            "--set=ingress.enabled=true",
            "--set=ingress.namespaces={default}",
            "--set=ingress.tls.secretName=runway-tls",
        ];
        let lint = helm(&[&["lint", "deploy/runway"][..], &entry_points[..]].concat()).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint with the entry points: {lint}"
        );
        let template = ["template", "runway", "deploy/runway", "--namespace", NAMESPACE];
        let rendered = helm(&[&template[..], &entry_points[..]].concat()).await?;
        ensure!(
            rendered.contains("kind: HTTPRoute") && rendered.contains("kind: Ingress"),
            "the entry points did not render"
        );
        let path = std::env::temp_dir().join(format!("runway-entry-points-{}.yaml", std::process::id()));
        std::fs::write(&path, rendered)?;
        let dry_run = server_dry_run(&cluster, &path).await;
        let _ = std::fs::remove_file(&path);
        eprintln!("server-side dry run with the entry points:\n{}", dry_run?);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t01_helm_install_makes_operator_and_activator_ready() {
    runway_scenario("e2e-install", |cluster, _ns| async move {
        // `make up` installed the chart (or the scenario did, finding it missing); upgrading it in place must work
        // and leave both components Ready.
        install::upgrade_or_install(&cluster).await?;
        install::wait_components_ready(&cluster).await
    })
    .await;
}
