//! A standalone activator on loopback, started for the flood: one route without any backend, so every request
//! waits in the queue as it would for a Service whose first pod takes the route's timeout to start.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use runway_tests::wait::wait_until;
use tokio::process::{Child, Command};

pub struct Standalone {
    child: Child,
    pub pid: u32,
    pub proxy: SocketAddr,
    pub log: PathBuf,
}

impl Standalone {
    /// Starts `binary` with a route for `host` (no backend, `timeout`) and waits until `/readyz` answers 200.
    pub async fn start(binary: &Path, host: &str, timeout: Duration) -> anyhow::Result<Standalone> {
        let dir = std::env::temp_dir().join(format!("runway-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let routes = dir.join("routes.yaml");
        std::fs::write(&routes, routes_file(host, timeout))?;
        let log = dir.join("activator.log");
        let (proxy, admin) = (free_loopback_port()?, free_loopback_port()?);
        let child = Command::new(binary)
            .args(["--standalone", "--routes-file"])
            .arg(&routes)
            .args(["--listen", &proxy.to_string(), "--admin-listen", &admin.to_string()])
            .args(["--log-level", "warn"])
            // Its internal entry point is not flooded: any free port (older builds ignore the variable).
            .env("RUNWAY_INTERNAL_LISTEN", "127.0.0.1:0")
            // The chart's memory limit, as its Downward API passes it (older builds ignore the variable).
            .env("RUNWAY_MEMORY_LIMIT", (256u64 << 20).to_string())
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (cargo build --release -p runway-activator)",
                    binary.display()
                )
            })?;
        let pid = child.id().context("the activator exited at once")?;
        let readyz = format!("http://{admin}/readyz");
        wait_until(format!("{readyz} to answer 200"), Duration::from_secs(15), || async {
            match runway_tests::http::get(&readyz, Duration::from_secs(1)).await {
                Ok(r) if r.status.is_success() => Ok(()),
                Ok(r) => Err(r.status.to_string()),
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await
        .with_context(|| format!("the standalone activator did not get ready; its log: {}", log.display()))?;
        Ok(Standalone { child, pid, proxy, log })
    }

    /// How it ended, if it did (a kill by the kernel's OOM killer shows as signal 9).
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|status| status.to_string())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn routes_file(host: &str, timeout: Duration) -> String {
    format!(
        "routes:\n  - host: {host}\n    backends: []\n    timeoutSeconds: {}\n",
        timeout.as_secs().max(1)
    )
}

/// A loopback port nothing listens on right now (other work on this machine runs servers too).
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_has_no_backend() {
        assert_eq!(
            routes_file("flood.soak", Duration::from_secs(120)),
            "routes:\n  - host: flood.soak\n    backends: []\n    timeoutSeconds: 120\n"
        );
    }
}
