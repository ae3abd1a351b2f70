//! Runway's Helm release on the cluster: installing or upgrading it in place, waiting for its components, changing
//! its values, and [`ensure_installed`], which every suite runs first so that each test file stands on its own.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use tokio::sync::OnceCell;

use crate::cluster::{Cluster, repo_root};
use crate::command;
use crate::release::Release;
use crate::runway::{NAMESPACE, READY};
use crate::wait::wait_until;

/// The Deployments of Runway's components in [`NAMESPACE`].
const COMPONENTS: [&str; 2] = ["runway-operator", "runway-activator"];

/// The helm binary: `$HELM`, else the one the local cluster built.
fn binary() -> String {
    std::env::var("HELM").unwrap_or_else(|_| repo_root().join(".cluster/bin/helm").display().to_string())
}

/// Runs helm with `args` in the repository and returns its stdout, or fails with its stderr.
pub async fn helm(args: &[&str]) -> anyhow::Result<String> {
    command::run(&binary(), args, &repo_root()).await
}

/// `helm upgrade --install` of the suite's release ([`Release::current`]: the OCI chart in the cluster's registry,
/// images by digest) as release `runway` in [`NAMESPACE`] with the test bed's values, waiting up to 180 s.
pub async fn upgrade_or_install(cluster: &Cluster) -> anyhow::Result<()> {
    let release = Release::current();
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    let mut args: Vec<String> = ["upgrade", "--install", "runway"].map(String::from).to_vec();
    args.extend(release.chart_args());
    args.extend(release.values_args());
    args.extend(
        [
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "180s",
            "--kubeconfig",
        ]
        .map(String::from),
    );
    args.push(kubeconfig);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(&args).await.map(drop)
}

/// Whether the Deployment has at least two replicas, all ready; `Err` says what was seen.
fn all_ready(deployment: &Deployment) -> Result<(), String> {
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    if ready == want && want >= 2 {
        Ok(())
    } else {
        Err(format!("{ready}/{want} ready"))
    }
}

/// Waits until the operator and the activator each run at least two replicas, all ready.
pub async fn wait_components_ready(cluster: &Cluster) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    for name in COMPONENTS {
        wait_until(format!("{name} ready"), READY, || async {
            let d = deployments.get(name).await.map_err(|e| e.to_string())?;
            all_ready(&d)
        })
        .await?;
    }
    Ok(())
}

/// What keeps Runway from counting as installed and ready now (a component missing, or not all its replicas
/// ready), or None.
async fn not_ready(cluster: &Cluster) -> anyhow::Result<Option<String>> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    for name in COMPONENTS {
        let Some(deployment) = deployments.get_opt(name).await? else {
            return Ok(Some(format!("no Deployment {NAMESPACE}/{name}")));
        };
        if let Err(seen) = all_ready(&deployment) {
            return Ok(Some(format!("{name}: {seen}")));
        }
    }
    Ok(None)
}

/// Whether [`ensure_installed`] has found (or made) Runway ready in this process.
static INSTALLED: OnceCell<()> = OnceCell::const_new();

/// Makes sure Runway is installed and ready, once per test process: when a component is missing or not ready, does
/// what e2e test t01 does ([`upgrade_or_install`], then [`wait_components_ready`]); otherwise nothing. Each suite
/// file runs as a process of its own, and may run alone, so every test awaits this first. A failure is not
/// remembered: the next test tries again.
pub async fn ensure_installed(cluster: &Cluster) -> anyhow::Result<()> {
    INSTALLED
        .get_or_try_init(|| async {
            match not_ready(cluster).await? {
                None => eprintln!("Runway is installed and ready"),
                Some(why) => {
                    eprintln!("Runway is not installed and ready ({why}): helm upgrade --install");
                    upgrade_or_install(cluster).await?;
                    wait_components_ready(cluster).await?;
                }
            }
            anyhow::Ok(())
        })
        .await?;
    Ok(())
}

/// `helm uninstall` of release `runway`, waiting until its objects are gone (the CRDs stay: they are kept).
pub async fn uninstall(cluster: &Cluster) -> anyhow::Result<()> {
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    helm(&[
        "uninstall",
        "runway",
        "--namespace",
        NAMESPACE,
        "--wait",
        "--kubeconfig",
        &kubeconfig,
    ])
    .await
    .map(drop)
}

/// `helm upgrade` of the installed release to the suite's chart with its values kept and `sets` (`key=value`)
/// changed, waiting for it.
pub async fn upgrade_with(cluster: &Cluster, sets: &[&str]) -> anyhow::Result<String> {
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    let mut args: Vec<String> = vec!["upgrade".into(), "runway".into()];
    args.extend(Release::current().chart_args());
    args.extend(
        [
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--wait",
            "--kubeconfig",
            &kubeconfig,
        ]
        .map(String::from),
    );
    for set in sets {
        args.extend(["--set".to_owned(), (*set).to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(&args).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, ready: Option<i32>) -> Deployment {
        let status = ready.map_or_else(|| json!({}), |ready| json!({"readyReplicas": ready}));
        serde_json::from_value(json!({
            "metadata": {"name": "runway-activator"},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_component_counts_as_ready_with_two_or_more_replicas_all_ready() {
        assert_eq!(all_ready(&deployment(2, Some(2))), Ok(()));
        assert_eq!(all_ready(&deployment(3, Some(3))), Ok(()));
        assert_eq!(all_ready(&deployment(2, Some(1))), Err("1/2 ready".to_owned()));
        assert_eq!(all_ready(&deployment(2, None)), Err("0/2 ready".to_owned()));
        // Scaled in by a test that did not finish (t06 runs with one activator): not the installation's state.
        assert_eq!(all_ready(&deployment(1, Some(1))), Err("1/1 ready".to_owned()));
    }
}
