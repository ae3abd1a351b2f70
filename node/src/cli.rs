//! The node agent's command-line flags, each with an environment variable fallback.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use runway_api::logging::LogArgs;

/// Freezes and thaws the cgroups of Runway's pods on this node, for the activator (warm zero).
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Address of the freeze/thaw API (HTTP/1.1; every request needs a bearer token of an --allowed-client).
    #[arg(long, env = "RUNWAY_NODE_LISTEN", default_value = "0.0.0.0:9095")]
    pub listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics (no authentication).
    #[arg(long, env = "RUNWAY_ADMIN_LISTEN", default_value = "0.0.0.0:9096")]
    pub admin_listen: SocketAddr,
    /// The node this agent runs on (its pods are the ones it may freeze).
    #[arg(long, env = "NODE_NAME", value_parser = non_empty)]
    pub node_name: String,
    /// Where the host's /sys/fs/cgroup is mounted (cgroup v1 with a freezer hierarchy, or v2).
    #[arg(long, env = "RUNWAY_CGROUP_ROOT", default_value = "/host/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// A user allowed to call the API, as a TokenReview names it, e.g.
    /// system:serviceaccount:runway-system:runway-activator; repeat the flag for more. None: every call gets 403.
    #[arg(long = "allowed-client", env = "RUNWAY_NODE_ALLOWED_CLIENTS", value_delimiter = ',', value_parser = non_empty)]
    pub allowed_clients: Vec<String>,
    /// The audience callers' tokens must be for.
    #[arg(long, env = "RUNWAY_NODE_TOKEN_AUDIENCE", default_value = "runway-node", value_parser = non_empty)]
    pub token_audience: String,
    #[command(flatten)]
    pub logs: LogArgs,
}

fn non_empty(value: &str) -> Result<String, String> {
    match value.trim() {
        "" => Err("must not be empty".into()),
        value => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["runway-node"][..], extra].concat())
    }

    #[test]
    fn defaults_are_the_contracts_ports_and_the_hosts_cgroups_under_host() {
        let args = parse(&["--node-name=n1"]).unwrap();
        assert_eq!(args.listen.port(), 9095);
        assert_eq!(args.admin_listen.port(), 9096);
        assert_eq!(args.cgroup_root, PathBuf::from("/host/sys/fs/cgroup"));
        assert_eq!(args.token_audience, "runway-node");
        assert!(args.allowed_clients.is_empty());
    }

    #[test]
    fn allowed_clients_repeat() {
        let args = parse(&[
            "--node-name=n1",
            "--allowed-client=system:serviceaccount:runway-system:runway-activator",
            "--allowed-client=system:serviceaccount:other:client",
        ])
        .unwrap();
        assert_eq!(args.allowed_clients.len(), 2);
    }

    #[test]
    fn the_node_name_is_required_and_not_empty() {
        // NODE_NAME is not set in tests: the flag is the only source.
        assert!(parse(&[]).is_err());
        let error = parse(&["--node-name="]).unwrap_err().to_string();
        assert!(error.contains("must not be empty"), "{error}");
    }
}
