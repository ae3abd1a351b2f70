//! Standalone mode: routes from flags or a file instead of the cluster, for benchmarks and local experiments.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::model::{EndpointState, FastProbe, Idle, RevisionId, RevisionSettings, ServiceTraffic};
use crate::revision::Peers;
use crate::route::Registry;
use crate::route::host::{is_dns_label, service_for_host};

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

/// One Service: its host and backends, or its revisions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRoute {
    /// `{name}.{namespace}`, optionally followed by the domain or `.svc[.cluster.local]`.
    pub host: String,
    /// The backends of the Service's only revision, which is named as the Service and takes every request.
    #[serde(default)]
    pub backends: Vec<SocketAddr>,
    /// Instead of `backends`: revisions with their own backends, splitting the requests by their percents.
    #[serde(default)]
    pub revisions: Vec<StaticRevision>,
    #[serde(default)]
    pub container_concurrency: u32,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Speak HTTP/2 with prior knowledge to the backends.
    #[serde(default)]
    pub h2c: bool,
}

/// One revision of a static Service; the Service's concurrency, timeout and protocol apply to it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRevision {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    /// Share of the Service's requests; the revisions' percents sum to 100.
    #[serde(default)]
    pub percent: u32,
    /// Gives the revision its own host, `{tag}-{name}.{namespace}`.
    #[serde(default)]
    pub tag: Option<String>,
}

fn default_timeout_seconds() -> u64 {
    300
}

impl StaticConfig {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read routes file {}: {error}", path.display()))?;
        serde_saphyr::from_str(&text)
            .map_err(|error| anyhow::anyhow!("invalid routes file {}: {error}", path.display()))
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
        revisions: Vec::new(),
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
        let revisions = revisions(route, &key.name)?;
        registry.set_service(
            &key,
            Some(ServiceTraffic {
                visibility: runway_api::Visibility::External,
                invokers: runway_api::Invokers::Anyone,
                access_log: None,
                split: revisions.iter().map(|r| (r.name.clone(), r.percent)).collect(),
                tags: revisions
                    .iter()
                    .filter_map(|r| Some((r.tag.clone()?, r.name.clone())))
                    .collect(),
            }),
        );
        for revision in &revisions {
            let id = RevisionId::new(key.namespace.as_str(), key.name.as_str(), revision.name.as_str());
            registry.set_revision(
                &id,
                Some(RevisionSettings {
                    container_concurrency: route.container_concurrency,
                    timeout: Duration::from_secs(route.timeout_seconds),
                    fast_probe: FastProbe::Tcp,
                    failure: None,
                    idle: Idle::Stop,
                }),
            );
            let endpoints: Vec<EndpointState> = revision
                .backends
                .iter()
                .map(|addr| EndpointState {
                    addr: *addr,
                    h2c: route.h2c,
                    ready: true,
                    terminating: false,
                    pod: None,
                })
                .collect();
            registry.set_endpoints(&id, &endpoints);
        }
    }
    if !config.peers.is_empty() {
        registry.set_peers(Peers::new(registry.peers().me(), config.peers.iter().copied()));
    }
    Ok(())
}

/// The revisions of a route: as listed, or one named as the Service with the route's backends and every request.
fn revisions(route: &StaticRoute, service: &str) -> anyhow::Result<Vec<StaticRevision>> {
    if route.revisions.is_empty() {
        return Ok(vec![StaticRevision {
            name: service.to_owned(),
            backends: route.backends.clone(),
            percent: 100,
            tag: None,
        }]);
    }
    let host = &route.host;
    anyhow::ensure!(
        route.backends.is_empty(),
        "route {host}: list backends or revisions, not both"
    );
    let total: u32 = route.revisions.iter().map(|r| r.percent).sum();
    anyhow::ensure!(
        total == 100,
        "route {host}: the revisions' percents sum to {total}, not 100"
    );
    for (index, revision) in route.revisions.iter().enumerate() {
        let name = &revision.name;
        anyhow::ensure!(
            is_dns_label(name),
            "route {host}: revision name {name:?} is not a DNS label"
        );
        anyhow::ensure!(
            route.revisions[..index].iter().all(|r| r.name != *name),
            "route {host}: revision {name} is listed twice"
        );
        if let Some(tag) = &revision.tag {
            anyhow::ensure!(is_dns_label(tag), "route {host}: tag {tag:?} is not a DNS label");
        }
    }
    Ok(route.revisions.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_accepts_yaml() {
        let config: StaticConfig = serde_saphyr::from_str(
            "routes:\n- host: hello.default\n  backends: [\"127.0.0.1:9000\"]\n  containerConcurrency: 1\npeers: [\"127.0.0.2:8080\"]\n",
        )
        .unwrap();
        assert_eq!(config.routes[0].container_concurrency, 1);
        assert_eq!(config.routes[0].timeout_seconds, 300);
        assert_eq!(config.peers.len(), 1);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let error = serde_saphyr::from_str::<StaticConfig>("routes: []\nextra: 1\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `extra`"), "{error}");
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

    #[test]
    fn a_route_lists_backends_or_revisions_whose_percents_sum_to_100() {
        let route = |yaml: &str| serde_saphyr::from_str::<StaticRoute>(yaml).unwrap();
        let single = revisions(&route("host: hello.default\nbackends: [\"127.0.0.1:9000\"]\n"), "hello").unwrap();
        assert_eq!((single[0].name.as_str(), single[0].percent), ("hello", 100));
        let split = route(
            "host: hello.default\nrevisions:\n- {name: hello-1, backends: [\"127.0.0.1:9000\"], percent: 90}\n\
             - {name: hello-2, backends: [\"127.0.0.1:9001\"], percent: 10, tag: canary}\n",
        );
        let listed = revisions(&split, "hello").unwrap();
        assert_eq!(listed[1].tag.as_deref(), Some("canary"));
        let mut wrong_sum = split.clone();
        wrong_sum.revisions[1].percent = 20;
        assert!(
            revisions(&wrong_sum, "hello")
                .unwrap_err()
                .to_string()
                .contains("sum to 110")
        );
        let mut both = split.clone();
        both.backends = vec!["127.0.0.1:9002".parse().unwrap()];
        assert!(revisions(&both, "hello").unwrap_err().to_string().contains("not both"));
        let mut twice = split;
        twice.revisions[1].name = "hello-1".into();
        assert!(revisions(&twice, "hello").unwrap_err().to_string().contains("twice"));
    }
}
