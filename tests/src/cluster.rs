//! Finding and connecting to the cluster.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::kubectl::Kubectl;

/// The repository root (this crate lives in `<repo>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

/// `$KUBECONFIG` (its first entry), else the local cluster's `<repo>/.cluster/kubeconfig`.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG") {
        Some(list) if !list.is_empty() => std::env::split_paths(&list)
            .next()
            .unwrap_or_else(|| repo_root().join(".cluster/kubeconfig")),
        _ => repo_root().join(".cluster/kubeconfig"),
    }
}

/// Where the local cluster keeps its state and component logs (`$RUNWAY_CLUSTER_DIR`, as hack/cluster/lib.sh).
pub fn state_dir() -> PathBuf {
    std::env::var_os("RUNWAY_CLUSTER_DIR").map_or_else(|| PathBuf::from("/var/lib/runway-cluster"), PathBuf::from)
}

/// A connection to the cluster: a kube client and kubectl, both from one kubeconfig.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    kubeconfig: PathBuf,
}

impl Cluster {
    /// Connects with [`kubeconfig_path`] and checks that the API server answers.
    pub async fn connect() -> anyhow::Result<Cluster> {
        Cluster::connect_with(kubeconfig_path()).await
    }

    pub async fn connect_with(kubeconfig: PathBuf) -> anyhow::Result<Cluster> {
        let parsed = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("reading {} (is the cluster up? `make up`)", kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        let version = client
            .apiserver_version()
            .await
            .with_context(|| format!("the API server of {} does not answer", kubeconfig.display()))?;
        eprintln!(
            "connected to Kubernetes {} ({})",
            version.git_version,
            kubeconfig.display()
        );
        Ok(Cluster { client, kubeconfig })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubeconfig.clone())
    }
}
