//! Command-line flags of both modes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as FlagGroup, Parser};
use runway_activator::config::parse_duration;

#[derive(Parser, Debug)]
#[command(
    name = "runway-soak",
    about = "Soak the local cluster with mixed load and disruptions, or flood one activator on loopback (--flood)"
)]
pub struct Args {
    /// Flood mode: abuse one activator on loopback instead of soaking the cluster.
    #[arg(long)]
    pub flood: bool,
    #[command(flatten)]
    pub soak_args: SoakArgs,
    #[command(flatten)]
    pub flood_args: FloodArgs,
}

#[derive(FlagGroup, Debug, Clone)]
#[command(next_help_heading = "Soak mode")]
pub struct SoakArgs {
    /// How long the load runs, once every Service is ready (e.g. 10m, 120s).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Pause between two disruptions (each waits for its own completion first).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Image of the sample app; it must serve /ws (hack/soak/soak.sh builds and imports this tag).
    #[arg(long, default_value = "runway.local/hello:soak")]
    pub image: String,
}

#[derive(FlagGroup, Debug, Clone)]
#[command(next_help_heading = "Flood mode")]
pub struct FloodArgs {
    /// A running activator's proxy address to flood (loopback only). Default: start a standalone activator.
    #[arg(long, value_parser = parse_loopback)]
    pub address: Option<SocketAddr>,
    /// Pid of the activator at --address, to read its memory from /proc.
    #[arg(long, requires = "address")]
    pub pid: Option<u32>,
    /// Host header of the flood requests, under the activator's domain (its external entry point serves only
    /// {name}.{namespace}.{domain}); with --address, a Service whose requests wait (no ready pod).
    #[arg(long, default_value = "flood.soak.example.com")]
    pub host: String,
    /// The activator binary to start in standalone mode.
    #[arg(long, default_value = "target/release/runway-activator")]
    pub activator_bin: PathBuf,
    /// timeoutSeconds of the standalone route (a Service that takes this long to start).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub route_timeout: Duration,
    /// Connections, each sending one GET with a large head.
    #[arg(long, default_value_t = 2500)]
    pub connections: usize,
    /// Size of the one large header of each flood request, in bytes.
    #[arg(long, default_value_t = 60 * 1024)]
    pub header_bytes: usize,
    /// How long a flood connection waits for its answer.
    #[arg(long, default_value = "130s", value_parser = parse_duration)]
    pub answer_wait: Duration,
    /// Idle connections of each kind (nothing sent, half an HTTP/2 preface, a partial HTTP/1 head).
    #[arg(long, default_value_t = 100)]
    pub idle: usize,
    /// How long to watch an idle connection before giving up on it being closed.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_wait: Duration,
    /// An idle connection open longer than this is a failure (the default header read timeout is 65 s).
    #[arg(long, default_value = "70s", value_parser = parse_duration)]
    pub idle_limit: Duration,
    /// Memory the activator must stay under (the chart's default limit), MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_limit_mib: u64,
}

/// The flood must never leave this machine.
fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IP:port address"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address: the flood only targets this machine"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_flooded() {
        assert!(parse_loopback("127.0.0.1:8080").is_ok());
        assert!(parse_loopback("[::1]:8080").is_ok());
        assert!(parse_loopback("10.96.0.10:80").unwrap_err().contains("loopback"));
    }

    #[test]
    fn the_defaults_parse() {
        let args = Args::try_parse_from(["runway-soak"]).unwrap();
        assert!(!args.flood);
        assert_eq!(args.soak_args.duration, Duration::from_secs(600));
        assert_eq!(args.flood_args.connections, 2500);
        assert!(
            Args::try_parse_from(["runway-soak", "--pid", "1"]).is_err(),
            "--pid needs --address"
        );
    }
}
