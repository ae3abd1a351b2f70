//! Command-line flags, each with an environment variable fallback.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::access::AccessSettings;
use crate::app::{AccessLogSettings, Options};
use crate::control::{AgentAccess, ProbeConfig};
use crate::model::AccessLogShare;
use crate::serve::budget;
use crate::serve::server::{ConnectionLimits, H2_CONNECTION_WINDOW};
use crate::sources::standalone::{StaticRoute, parse_route_flag};
use runway_api::cidr::CidrList;

/// Runway's activator: the data plane in front of every Service's pods.
#[derive(Debug, Parser)]
#[command(name = "runway-activator", version, about)]
pub struct Args {
    /// External entry point: hosts under the domain, for Services whose visibility is External.
    #[arg(long, env = "RUNWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Internal entry point, for pods of the cluster: every host form, every Service; peers forward here.
    #[arg(long, env = "RUNWAY_INTERNAL_LISTEN", default_value = "0.0.0.0:8081")]
    pub internal_listen: SocketAddr,
    /// Admin address: /v1/load, /metrics, /healthz, /readyz.
    #[arg(long, env = "RUNWAY_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Domain of Service URLs: {name}.{namespace}.{domain}.
    #[arg(long, env = "RUNWAY_DOMAIN", default_value = "example.com")]
    pub domain: String,
    /// Requests that may wait per revision; more get 503.
    #[arg(long, env = "RUNWAY_QUEUE_DEPTH", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_depth: u32,
    /// Namespace of the activators' own Kubernetes Service (for finding peers).
    #[arg(long, env = "RUNWAY_NAMESPACE", default_value = "runway-system")]
    pub namespace: String,
    /// Name of the activators' own Kubernetes Service.
    #[arg(long, env = "RUNWAY_ACTIVATOR_SERVICE", default_value = "runway-activator")]
    pub activator_service: String,
    /// This pod's IP (downward API). Required in cluster mode; 127.0.0.1 in standalone mode.
    #[arg(long, env = "POD_IP")]
    pub pod_ip: Option<IpAddr>,
    /// This pod's name (downward API), as load reports name the activator.
    #[arg(long, env = "POD_NAME", default_value = "runway-activator")]
    pub pod_name: String,
    /// After SIGTERM, keep serving this long with /readyz failing.
    #[arg(long, env = "RUNWAY_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight requests.
    #[arg(long, env = "RUNWAY_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Largest request head accepted; larger gets 431. At least 8192.
    #[arg(long, env = "RUNWAY_MAX_HEADER_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(8192..=16_777_216))]
    pub max_header_bytes: u32,
    /// Time a client has to send its request head. hyper also applies it to idle keep-alive connections, so it is
    /// above the usual upstream keep-alive timeouts of proxies in front (60 s), which would otherwise race the close.
    #[arg(long, env = "RUNWAY_HEADER_READ_TIMEOUT", default_value = "65s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a new connection has to show its protocol (its first byte, or the whole HTTP/2 preface); then it closes.
    #[arg(long, env = "RUNWAY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// A client connection with no request in flight for this long is closed (HTTP/2 with GOAWAY). Above the usual
    /// upstream keep-alive timeouts of proxies in front (60 s), which would otherwise race the close.
    #[arg(long, env = "RUNWAY_IDLE_TIMEOUT", default_value = "65s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Upper bound on client connections open at once; the memory and open-files limits may lower it. More are
    /// answered 503 and closed.
    #[arg(long, env = "RUNWAY_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// This container's memory limit in bytes (the Downward API's limits.memory); the connection and request
    /// bounds are derived from it. Unset: only the open-files limit and --max-connections bound connections.
    #[arg(long, env = "RUNWAY_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
    /// Concurrent streams per HTTP/2 client connection.
    #[arg(long, env = "RUNWAY_MAX_CONCURRENT_STREAMS", default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive: a PING this often; a client that does not answer within as long is disconnected.
    #[arg(long, env = "RUNWAY_H2_KEEPALIVE", default_value = "20s", value_parser = parse_duration)]
    pub h2_keepalive: Duration,
    /// An upgraded connection (WebSocket) with no bytes either way for this long is closed, freeing its pod's slot;
    /// 0 turns it off.
    #[arg(long, env = "RUNWAY_TUNNEL_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub tunnel_idle_timeout: Duration,
    /// Bound on connecting to a pod or peer; a failed connect is retried on another pod.
    #[arg(long, env = "RUNWAY_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Pause between readiness probes of a new pod during its first --probe-fast-window.
    #[arg(long, env = "RUNWAY_PROBE_FAST_INTERVAL", default_value = "10ms", value_parser = parse_duration)]
    pub probe_fast_interval: Duration,
    /// How long a new pod is probed every --probe-fast-interval; after that, every --probe-interval.
    #[arg(long, env = "RUNWAY_PROBE_FAST_WINDOW", default_value = "2s", value_parser = parse_duration)]
    pub probe_fast_window: Duration,
    /// Pause between readiness probes of a new pod after its first --probe-fast-window.
    #[arg(long, env = "RUNWAY_PROBE_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// Bound on one readiness probe.
    #[arg(long, env = "RUNWAY_PROBE_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Authorized Services: how long an authenticated bearer token's TokenReview is reused (per token and Service),
    /// never past the token's own expiry (its exp claim).
    #[arg(long, env = "RUNWAY_AUTH_TOKEN_TTL", default_value = "60s", value_parser = parse_duration)]
    pub auth_token_ttl: Duration,
    /// Authorized Services: how long an allowed SubjectAccessReview is reused (per user and Service).
    #[arg(long, env = "RUNWAY_AUTH_ACCESS_TTL", default_value = "60s", value_parser = parse_duration)]
    pub auth_access_ttl: Duration,
    /// Authorized Services: how long an invalid token's or a denied user's answer is reused.
    #[arg(long, env = "RUNWAY_AUTH_NEGATIVE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub auth_negative_ttl: Duration,
    /// Authorized Services: entries of each review cache (tokens, users); past it the least used go.
    #[arg(long, env = "RUNWAY_AUTH_CACHE_ENTRIES", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub auth_cache_entries: u32,
    /// Authorized Services: token and access reviews per second this activator asks the API server for at most;
    /// past it and the burst, a request that needs a review gets 503.
    #[arg(long, env = "RUNWAY_AUTH_REVIEWS_PER_SECOND", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_reviews_per_second: u32,
    /// Authorized Services: reviews that may be asked for at once beyond the rate.
    #[arg(long, env = "RUNWAY_AUTH_REVIEW_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_review_burst: u32,
    /// Authorized Services: reviews waiting for the API server at once; a request that needs another gets 503.
    #[arg(long, env = "RUNWAY_AUTH_REVIEWS_IN_FLIGHT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub auth_reviews_in_flight: u32,
    /// Authorized Services: bound on one review; past it the request gets 503.
    #[arg(long, env = "RUNWAY_AUTH_REVIEW_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub auth_review_timeout: Duration,
    /// Networks (CIDRs, comma-separated) of proxies in front whose X-Forwarded-* and Forwarded headers are kept and
    /// appended to; from any other client they are replaced, since they could be forged.
    #[arg(long, env = "RUNWAY_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<CidrList>,
    /// Threads serving requests, each with its own listeners (SO_REUSEPORT), backend connection pools and
    /// single-threaded scheduler; defaults to the CPUs this process may use.
    #[arg(long, env = "RUNWAY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// The share of requests the access log (stdout, one line per request, in the --log-format) records, in
    /// percent: 0 none, 100 every one, between a random sample. A Service's spec.accessLogPercent overrides it.
    #[arg(long, env = "RUNWAY_ACCESS_LOG_PERCENT", default_value = "100")]
    pub access_log_percent: AccessLogShare,
    #[command(flatten)]
    pub logs: runway_api::logging::LogArgs,
    // Span export: --otlp-endpoint and --trace-sampling-ratio.
    #[command(flatten)]
    pub traces: runway_api::telemetry::TraceArgs,
    /// Name of the node agents' headless Service in --namespace (chart value nodeAgent.enabled): the agents that
    /// freeze and thaw the idle pods of Services with spec.scaling.idle Freeze. Unset: no pod is frozen.
    #[arg(long, env = "RUNWAY_NODE_AGENT_SERVICE")]
    pub node_agent_service: Option<String>,
    /// The ServiceAccount token (audience runway-node) the node agents check, read again every minute.
    #[arg(
        long,
        env = "RUNWAY_NODE_AGENT_TOKEN",
        default_value = "/var/run/secrets/runway-node/token"
    )]
    pub node_agent_token: PathBuf,
    /// Run without a cluster: routes from --route and --routes-file.
    #[arg(long, env = "RUNWAY_STANDALONE")]
    pub standalone: bool,
    /// Standalone routes file (YAML or JSON): routes (host, backends, containerConcurrency, timeoutSeconds, h2c)
    /// and peers.
    #[arg(long, env = "RUNWAY_ROUTES_FILE", requires = "standalone")]
    pub routes_file: Option<PathBuf>,
    /// Standalone route HOST=ADDR[,ADDR...] (unlimited concurrency, 300 s timeout); repeatable.
    #[arg(long = "route", env = "RUNWAY_ROUTE", requires = "standalone", value_parser = parse_route_flag)]
    pub routes: Vec<StaticRoute>,
    /// Standalone: proxy address (IP:port) of another activator sharing the pods; repeatable or comma-separated.
    #[arg(long = "peer", env = "RUNWAY_PEERS", requires = "standalone", value_delimiter = ',')]
    pub peers: Vec<SocketAddr>,
}

impl Args {
    /// The pod IP, defaulted in standalone mode; a clear error in cluster mode.
    pub fn resolved_pod_ip(&self) -> anyhow::Result<IpAddr> {
        match (self.pod_ip, self.standalone) {
            (Some(ip), _) => Ok(ip),
            (None, true) => Ok(IpAddr::from([127, 0, 0, 1])),
            (None, false) => anyhow::bail!("--pod-ip (or POD_IP from the downward API) is required in cluster mode"),
        }
    }

    pub fn worker_threads(&self) -> usize {
        self.worker_threads
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn options(&self) -> anyhow::Result<Options> {
        anyhow::ensure!(
            !self.auth_review_timeout.is_zero(),
            "--auth-review-timeout must be above zero"
        );
        let bounds = budget::derive(
            self.memory_limit,
            budget::open_files_limit(),
            self.max_header_bytes as usize,
            H2_CONNECTION_WINDOW,
            self.max_connections as usize,
        );
        Ok(Options {
            listen: self.listen,
            internal_listen: self.internal_listen,
            admin_listen: self.admin_listen,
            domain: self.domain.clone(),
            queue_depth: self.queue_depth as usize,
            pod_name: self.pod_name.clone(),
            pod_ip: self.resolved_pod_ip()?,
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
            limits: ConnectionLimits {
                max_header_bytes: self.max_header_bytes as usize,
                header_read_timeout: self.header_read_timeout,
                handshake_timeout: self.handshake_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: bounds.max_connections,
                max_concurrent_streams: self.max_concurrent_streams,
                h2_keepalive: self.h2_keepalive,
            },
            request_budget_bytes: bounds.request_bytes,
            tunnel_idle_timeout: (!self.tunnel_idle_timeout.is_zero()).then_some(self.tunnel_idle_timeout),
            connect_timeout: self.connect_timeout,
            trusted_proxies: self.trusted_proxies.clone().unwrap_or_default(),
            probe: ProbeConfig {
                fast_interval: self.probe_fast_interval,
                fast_window: self.probe_fast_window,
                interval: self.probe_interval,
                timeout: self.probe_timeout,
            },
            workers: self.worker_threads(),
            access_log: AccessLogSettings {
                format: self.logs.log_format,
                default: self.access_log_percent,
            },
            access: AccessSettings {
                token_ttl: self.auth_token_ttl,
                access_ttl: self.auth_access_ttl,
                negative_ttl: self.auth_negative_ttl,
                cache_entries: self.auth_cache_entries as usize,
                reviews_per_second: self.auth_reviews_per_second,
                review_burst: self.auth_review_burst,
                reviews_in_flight: self.auth_reviews_in_flight,
                review_timeout: self.auth_review_timeout,
            },
            node_agents: self
                .node_agent_service
                .as_ref()
                .filter(|_| !self.standalone)
                .map(|_| AgentAccess {
                    token_file: self.node_agent_token.clone(),
                }),
            // The cluster client and the tracer, made in main once the flags are read.
            api: None,
            tracer: None,
        })
    }
}

/// Parses a duration flag: `250ms`, `30s`, `5m`, `1h`, combinations such as `1m30s` or `1h 30m`, decimals such as
/// `1.5s` (humantime's syntax); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bare_number = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if bare_number {
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    parsed.map_err(|error| format!("{text:?} is not a duration ({error}): use {DURATION_FORMS}"))
}

/// The forms `parse_duration` accepts, as its errors name them.
const DURATION_FORMS: &str = "a number with a unit such as 250ms, 30s, 5m, 1h or 1m30s, or a bare number of seconds";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 30 "), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn bad_durations_are_refused_with_the_accepted_forms() {
        for bad in ["abc", "-1s", "", " ", "5 parsecs", "1.s", ".", "1m30", "s"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.contains("250ms") && error.contains("1m30s") && error.contains("bare number"),
                "{bad:?}: {error}"
            );
        }
        let error = Args::try_parse_from(["runway-activator", "--drain-delay", "abc"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--drain-delay") && error.contains("1m30s"), "{error}");
        let args =
            Args::try_parse_from(["runway-activator", "--shutdown-timeout", "1m30s", "--drain-delay", "10"]).unwrap();
        assert_eq!(
            (args.shutdown_timeout, args.drain_delay),
            (Duration::from_secs(90), Duration::from_secs(10))
        );
    }

    #[test]
    fn flags_have_defaults_and_cluster_mode_needs_the_pod_ip() {
        let args = Args::try_parse_from(["runway-activator"]).unwrap();
        assert_eq!(args.listen.port(), 8080);
        assert_eq!(args.internal_listen.port(), 8081);
        assert_eq!(args.admin_listen.port(), 9090);
        assert_eq!(args.domain, "example.com");
        assert!(args.options().unwrap_err().to_string().contains("--pod-ip"));
        let standalone =
            Args::try_parse_from(["runway-activator", "--standalone", "--route", "a.b=127.0.0.1:1"]).unwrap();
        assert_eq!(standalone.options().unwrap().pod_ip, IpAddr::from([127, 0, 0, 1]));
        assert!(Args::try_parse_from(["runway-activator", "--max-header-bytes", "100"]).is_err());
    }

    #[test]
    fn the_access_flags_default_to_the_access_settings_and_parse() {
        let args = Args::try_parse_from(["runway-activator", "--standalone"]).unwrap();
        assert_eq!(args.options().unwrap().access, AccessSettings::default());
        let args = Args::try_parse_from([
            "runway-activator",
            "--standalone",
            "--auth-token-ttl=2m",
            "--auth-negative-ttl=1s",
            "--auth-cache-entries=100",
            "--auth-reviews-per-second=5",
            "--auth-review-burst=7",
            "--auth-reviews-in-flight=3",
            "--auth-review-timeout=250ms",
        ])
        .unwrap();
        let access = args.options().unwrap().access;
        assert_eq!(
            (
                access.token_ttl,
                access.access_ttl,
                access.negative_ttl,
                access.cache_entries
            ),
            (
                Duration::from_secs(120),
                Duration::from_secs(60),
                Duration::from_secs(1),
                100
            )
        );
        assert_eq!(
            (access.reviews_per_second, access.review_burst, access.reviews_in_flight),
            (5, 7, 3)
        );
        assert_eq!(access.review_timeout, Duration::from_millis(250));
        let zero = Args::try_parse_from(["runway-activator", "--standalone", "--auth-review-timeout=0"]).unwrap();
        assert!(
            zero.options()
                .unwrap_err()
                .to_string()
                .contains("--auth-review-timeout")
        );
        assert!(Args::try_parse_from(["runway-activator", "--auth-reviews-per-second=0"]).is_err());
        assert!(Args::try_parse_from(["runway-activator", "--auth-cache-entries=0"]).is_err());
    }

    #[test]
    fn trusted_proxies_are_a_list_of_cidrs_and_a_bad_one_names_the_flag() {
        let parse = |list: &str| {
            let args = Args::try_parse_from(["runway-activator", "--standalone", "--trusted-proxies", list]).unwrap();
            args.options().unwrap().trusted_proxies
        };
        let trusted = parse("10.0.0.0/8, 192.168.1.1/32,fd00::/8");
        for ip in ["10.9.9.9", "192.168.1.1", "fd00::1"] {
            assert!(trusted.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(!trusted.contains("192.168.1.2".parse().unwrap()));
        // An empty list (RUNWAY_TRUSTED_PROXIES="") trusts nobody, like no flag at all.
        assert_eq!(parse(""), CidrList::default());
        let standalone = Args::try_parse_from(["runway-activator", "--standalone"]).unwrap();
        assert_eq!(standalone.options().unwrap().trusted_proxies, CidrList::default());
        let error = Args::try_parse_from(["runway-activator", "--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--trusted-proxies") && error.contains("10.0.0.0/33"),
            "{error}"
        );
    }
}
