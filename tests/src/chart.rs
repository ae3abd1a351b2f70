//! Runway's chart rendered with `helm template`, its objects, and the API server's verdict on them (a server-side
//! dry run): shared by the chart's and the monitoring's e2e files.

use anyhow::Context;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::install::helm;
use crate::runway::NAMESPACE;

/// `helm template` as `make manifests` runs it: the chart's minimum Kubernetes version (a helm built without its
/// release ldflags defaults to 1.20, below the chart's kubeVersion), without the `helm test` hooks.
pub const TEMPLATE: [&str; 8] = [
    "template",
    "runway",
    "deploy/runway",
    "--namespace",
    NAMESPACE,
    "--kube-version",
    "1.30.0",
    "--skip-tests",
];

/// [`TEMPLATE`] with more arguments (`--set=...`, `--api-versions=...`).
pub async fn template(args: &[String]) -> anyhow::Result<String> {
    let args: Vec<&str> = TEMPLATE.into_iter().chain(args.iter().map(String::as_str)).collect();
    helm(&args).await
}

/// The objects of a rendered chart.
pub fn objects(rendered: &str) -> anyhow::Result<Vec<Value>> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(rendered).context("the chart renders YAML")?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} rendered"))
}

pub fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    find(objects, kind, name).is_ok()
}

/// `kubectl apply --server-side --dry-run=server` of the file at `path`: the API server validates every object.
pub async fn server_dry_run(cluster: &Cluster, path: &std::path::Path) -> anyhow::Result<String> {
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

/// [`server_dry_run`] of `text`, through a temporary file.
pub async fn server_dry_run_of(cluster: &Cluster, what: &str, text: &str) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("runway-{what}-{}.yaml", std::process::id()));
    std::fs::write(&path, text)?;
    let dry_run = server_dry_run(cluster, &path).await;
    let _ = std::fs::remove_file(&path);
    eprintln!("server-side dry run of {what}:\n{}", dry_run?);
    Ok(())
}
