//! The Runway release the suite runs: what `hack/release.sh` pushed to the cluster's registry (its images by
//! digest and its OCI chart), as recorded in its `release.json`.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::cluster::repo_root;

/// The images of one release, each as `registry/name:tag@digest`.
#[derive(Debug, Clone, Deserialize)]
pub struct Images {
    pub operator: String,
    pub activator: String,
    pub hello: String,
}

/// One release, as `hack/release.sh` records it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Where the images are: `host[:port][/path]`.
    pub registry: String,
    /// `oci://registry/charts/runway`.
    pub chart: String,
    pub chart_version: String,
    /// The registry has no TLS (the local cluster's): helm needs `--plain-http`.
    pub plain_http: bool,
    /// A values file pinning the images by digest.
    pub values: PathBuf,
    pub images: Images,
}

/// The record the suite reads: `$RUNWAY_RELEASE`, else the one `hack/install-runway.sh` writes for the local
/// cluster.
pub fn record_path() -> PathBuf {
    std::env::var_os("RUNWAY_RELEASE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/local/release.json"))
}

impl Release {
    /// The suite's release, read once. Panics with what to run when there is none: no test can go on without it.
    pub fn current() -> &'static Release {
        static CURRENT: OnceLock<Release> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let path = record_path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "no release record {} ({e}): `make up` (hack/install-runway.sh) releases Runway to the cluster's \
                     registry and writes it",
                    path.display()
                )
            });
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
    }

    /// helm arguments naming this release's chart: `oci://... --version V [--plain-http]`.
    pub fn chart_args(&self) -> Vec<String> {
        let mut args = vec![self.chart.clone(), "--version".into(), self.chart_version.clone()];
        if self.plain_http {
            args.push("--plain-http".into());
        }
        args
    }

    /// helm arguments with the values of an install on the test bed: the local cluster's settings
    /// (`hack/cluster/runway-values.yaml`) and this release's image digests.
    pub fn values_args(&self) -> Vec<String> {
        let local = repo_root().join("hack/cluster/runway-values.yaml");
        vec![
            "-f".into(),
            local.display().to_string(),
            "-f".into(),
            self.values.display().to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_written_by_release_sh_parses() {
        let release: Release = serde_json::from_str(
            r#"{"registry": "10.88.0.1:5000", "tag": "0.1.0", "chart": "oci://10.88.0.1:5000/charts/runway",
                "chartVersion": "0.1.0", "chartDigest": "sha256:1", "plainHttp": true, "values": "/v.yaml",
                "images": {"operator": "o", "activator": "a", "hello": "h"}}"#,
        )
        .unwrap();
        assert_eq!(
            release.chart_args(),
            [
                "oci://10.88.0.1:5000/charts/runway",
                "--version",
                "0.1.0",
                "--plain-http"
            ]
        );
        assert_eq!(release.images.hello, "h");
    }
}
