//! Running a test body in its own namespace, with diagnostics on failure; for Runway's suites, once Runway is
//! installed and ready.

use std::future::Future;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::{diagnostics, install, runway};

/// Set to keep the namespaces of failed scenarios for inspection.
pub const KEEP_ENV: &str = "RUNWAY_KEEP_NAMESPACES";

/// Connects to the cluster, creates a namespace named `<prefix>-<random>`, and runs `scenario(cluster,
/// namespace)`. If it returns an error or panics, prints the error and [`diagnostics::report`] and panics. The
/// namespace is deleted afterwards (without waiting), unless it failed and `RUNWAY_KEEP_NAMESPACES` is set.
pub async fn run_scenario<F, Fut>(prefix: &str, scenario: F)
where
    F: FnOnce(Cluster, String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let cluster = Cluster::connect().await.expect("cannot reach the cluster");
    let ns = create_namespace(&cluster, prefix)
        .await
        .expect("cannot create the test namespace");
    eprintln!("scenario {prefix}: namespace {ns}");
    // A task of its own, so a panic in the scenario still gets the diagnostics below.
    let outcome = match tokio::spawn(scenario(cluster.clone(), ns.clone())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(join) => Err(format!("the scenario panicked: {join}")),
    };
    if let Err(err) = &outcome {
        eprintln!(
            "scenario {prefix} failed: {err}\n{}",
            diagnostics::report(&cluster, &ns).await
        );
    }
    if outcome.is_ok() || std::env::var_os(KEEP_ENV).is_none() {
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        if let Err(err) = namespaces.delete(&ns, &DeleteParams::background()).await {
            eprintln!("could not delete namespace {ns}: {err}");
        }
    }
    if let Err(err) = outcome {
        panic!("scenario {prefix} in namespace {ns} failed: {err}");
    }
}

/// [`run_scenario`] for a test of Runway: first [`install::ensure_installed`], then `body`. A failure also prints
/// Runway's Services and component logs ([`runway::report`]), before the namespace diagnostics and the error itself.
pub async fn runway_scenario<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Cluster, String) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    run_scenario(prefix, |cluster, ns| async move {
        let kubectl = cluster.kubectl();
        let outcome = match install::ensure_installed(&cluster).await {
            Ok(()) => body(cluster, ns.clone()).await,
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            eprintln!("{}", runway::report(&kubectl, &ns).await);
        }
        outcome
    })
    .await;
}

/// Creates a namespace named `<prefix>-<5 random characters>` and returns its name.
pub async fn create_namespace(cluster: &Cluster, prefix: &str) -> anyhow::Result<String> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let request: Namespace = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{prefix}-"), "labels": {"runway.dev/test": prefix}}
    }))?;
    let created = namespaces
        .create(&PostParams::default(), &request)
        .await
        .with_context(|| format!("creating a namespace {prefix}-*"))?;
    created.metadata.name.context("the created namespace has no name")
}
