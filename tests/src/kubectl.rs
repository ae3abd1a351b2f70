//! Running kubectl (for what the kube client does not do simply: exec, logs, describe).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::cluster::repo_root;

/// How long one kubectl command may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// kubectl bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: PathBuf) -> Kubectl {
        Kubectl {
            binary: binary(),
            kubeconfig,
        }
    }

    /// Runs `kubectl ARGS`; returns stdout, or an error with the command, exit status, stdout and stderr.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_with_timeout(args, DEFAULT_TIMEOUT).await
    }

    pub async fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let command = format!("kubectl {}", args.join(" "));
        let output = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(timeout, output)
            .await
            .with_context(|| format!("{command}: no result within {timeout:?}"))?
            .with_context(|| format!("{command}: cannot run {}", self.binary.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("{command}: {}\nstdout: {stdout}\nstderr: {stderr}", output.status);
        }
        Ok(stdout)
    }
}

/// `$KUBECONFIG`'s kubectl: `$KUBECTL`, else the one `make up` links into `<repo>/.cluster/bin`, else `kubectl`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let local = repo_root().join(".cluster/bin/kubectl");
    if local.exists() {
        local
    } else {
        PathBuf::from("kubectl")
    }
}
