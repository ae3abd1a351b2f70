//! Standalone mode: routes from flags or a file instead of the cluster, for benchmarks and local experiments.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::endpoints::{EndpointState, FastProbe, ServiceSettings};
use crate::host::service_for_host;
use crate::peers::Peers;
use crate::registry::Registry;

/// The routes file (YAML or JSON).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    /// Proxy addresses of the other activators (IP:port), for the multi-activator slot split.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
}

/// One Service: its host and backends.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRoute {
    /// `{name}.{namespace}`, optionally followed by the domain or `.svc[.cluster.local]`.
    pub host: String,
    pub backends: Vec<SocketAddr>,
    #[serde(default)]
    pub container_concurrency: u32,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Speak HTTP/2 with prior knowledge to the backends.
    #[serde(default)]
    pub h2c: bool,
}

fn default_timeout_seconds() -> u64 {
    300
}

impl StaticConfig {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read routes file {}: {error}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|error| anyhow::anyhow!("invalid routes file {}: {error}", path.display()))
    }
}

/// Parses a `--route HOST=ADDR[,ADDR...]` flag.
pub fn parse_route_flag(flag: &str) -> Result<StaticRoute, String> {
    let (host, addrs) = flag
        .split_once('=')
        .ok_or_else(|| format!("route {flag:?}: expected HOST=ADDR[,ADDR...]"))?;
    let backends = addrs
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|addr| {
            addr.trim()
                .parse()
                .map_err(|_| format!("route {flag:?}: {addr:?} is not an IP:port address"))
        })
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    Ok(StaticRoute {
        host: host.to_owned(),
        backends,
        container_concurrency: 0,
        timeout_seconds: default_timeout_seconds(),
        h2c: false,
    })
}

/// Installs the routes and peers in the registry. Static backends count as ready, as if Kubernetes said so.
pub fn apply(registry: &Registry, config: &StaticConfig, domain: &str) -> anyhow::Result<()> {
    for route in &config.routes {
        let key = service_for_host(&route.host, domain).ok_or_else(|| {
            anyhow::anyhow!(
                "route host {:?} names no service: use {{name}}.{{namespace}}[.{domain}]",
                route.host
            )
        })?;
        anyhow::ensure!(
            route.timeout_seconds > 0,
            "route {}: timeoutSeconds must be positive",
            route.host
        );
        registry.set_settings(
            &key,
            Some(ServiceSettings {
                container_concurrency: route.container_concurrency,
                timeout: Duration::from_secs(route.timeout_seconds),
                fast_probe: FastProbe::Tcp,
                failure: None,
                visibility: runway_api::Visibility::External,
            }),
        );
        let endpoints: Vec<EndpointState> = route
            .backends
            .iter()
            .map(|addr| EndpointState {
                addr: *addr,
                h2c: route.h2c,
                ready: true,
                terminating: false,
            })
            .collect();
        registry.set_endpoints(&key, &endpoints);
    }
    if !config.peers.is_empty() {
        registry.set_peers(Peers::new(registry.peers().me(), config.peers.iter().copied()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_accepts_yaml() {
        let config: StaticConfig = serde_yaml::from_str(
            "routes:\n- host: hello.default\n  backends: [\"127.0.0.1:9000\"]\n  containerConcurrency: 1\npeers: [\"127.0.0.2:8080\"]\n",
        )
        .unwrap();
        assert_eq!(config.routes[0].container_concurrency, 1);
        assert_eq!(config.routes[0].timeout_seconds, 300);
        assert_eq!(config.peers.len(), 1);
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(serde_yaml::from_str::<StaticConfig>("routes: []\nextra: 1\n").is_err());
    }

    #[test]
    fn route_flags_parse_or_explain() {
        let route = parse_route_flag("hello.default=127.0.0.1:9000,127.0.0.1:9001").unwrap();
        assert_eq!(route.backends.len(), 2);
        assert!(parse_route_flag("hello.default").unwrap_err().contains("HOST=ADDR"));
        assert!(
            parse_route_flag("hello.default=localhost")
                .unwrap_err()
                .contains("IP:port")
        );
    }
}
