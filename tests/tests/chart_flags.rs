//! Every flag of the activator, the operator and the node agent is reachable through the chart: its template passes it
//! (`--flag-name`, from a Helm value or from what the chart knows, such as the release namespace), or it is in the
//! short list below of flags the chart sets otherwise (the downward API, through the flag's environment variable)
//! or never needs (the activator's standalone mode). And the default of each value that sets a flag is the flag's
//! default, but where the chart chooses another on purpose. No cluster, no helm.

use std::path::Path;

use clap::CommandFactory;
use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// Why a flag is not in its component's template.
#[derive(Debug, Clone, Copy)]
enum NotInTemplate {
    /// The chart sets the flag's environment variable from the downward API (what it says).
    DownwardApi(&'static str),
    /// Only for running without a cluster; the chart runs the component in a cluster.
    StandaloneOnly(&'static str),
}

const ACTIVATOR_NOT_IN_TEMPLATE: [(&str, NotInTemplate); 7] = [
    ("--pod-ip", NotInTemplate::DownwardApi("status.podIP")),
    ("--pod-name", NotInTemplate::DownwardApi("metadata.name")),
    (
        "--memory-limit",
        NotInTemplate::DownwardApi("the container's limits.memory"),
    ),
    (
        "--standalone",
        NotInTemplate::StandaloneOnly("switches standalone mode on"),
    ),
    ("--routes-file", NotInTemplate::StandaloneOnly("static routes")),
    ("--route", NotInTemplate::StandaloneOnly("static routes")),
    (
        "--peer",
        NotInTemplate::StandaloneOnly("in a cluster, peers come from the activator Service's EndpointSlices"),
    ),
];

const OPERATOR_NOT_IN_TEMPLATE: [(&str, NotInTemplate); 2] = [
    // The leader Lease is in the operator's own namespace.
    ("--lease-namespace", NotInTemplate::DownwardApi("metadata.namespace")),
    ("--identity", NotInTemplate::DownwardApi("metadata.name")),
];

const NODE_NOT_IN_TEMPLATE: [(&str, NotInTemplate); 1] = [("--node-name", NotInTemplate::DownwardApi("spec.nodeName"))];

/// Whether `text` has `flag` as a whole word: `--listen` is not found in `--internal-listen` nor `--listen-x`.
fn mentions(text: &str, flag: &str) -> bool {
    let part_of_a_flag = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.match_indices(flag).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + flag.len()..].chars().next();
        !before.is_some_and(part_of_a_flag) && !after.is_some_and(part_of_a_flag)
    })
}

/// Checks `command`'s flags against `template` (the component's template file) and `not_in_template`.
fn check(command: clap::Command, template: &str, not_in_template: &[(&str, NotInTemplate)]) {
    let text = repo_file(template);
    // The downward API environment shared by both components is in a helper.
    let helpers = repo_file("deploy/runway/templates/_helpers.tpl");
    let arguments: Vec<&clap::Arg> = command.get_arguments().filter(|a| a.get_long().is_some()).collect();
    assert!(arguments.len() >= 5, "the flags were read");
    let mut problems = vec![];
    for arg in &arguments {
        let flag = format!("--{}", arg.get_long().unwrap());
        let excluded = not_in_template.iter().find(|(name, _)| *name == flag);
        match (mentions(&text, &flag), excluded) {
            (true, None) => {}
            (false, None) => problems.push(format!(
                "{flag}: not passed by {template}: add a value for it (or, if the chart must not set it, say why in \
                 the list of this test)"
            )),
            (true, Some(_)) => problems.push(format!("{flag}: {template} passes it now: drop it from the list")),
            (false, Some((_, NotInTemplate::DownwardApi(source)))) => {
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let env = env.unwrap_or_else(|| panic!("{flag} reads no environment variable"));
                let set = format!("name: {env}");
                if !text.contains(&set) && !helpers.contains(&set) {
                    problems.push(format!(
                        "{flag}: listed as set from {source} through {env}, which the chart does not set"
                    ));
                }
            }
            (false, Some((_, NotInTemplate::StandaloneOnly(why)))) => assert!(!why.is_empty()),
        }
    }
    for (name, _) in not_in_template {
        if !arguments
            .iter()
            .any(|a| format!("--{}", a.get_long().unwrap()) == *name)
        {
            problems.push(format!("{name}: listed here, but no such flag"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_activator_flag_is_passed_by_the_chart_or_listed() {
    check(
        runway_activator::config::Args::command(),
        "deploy/runway/templates/activator.yaml",
        &ACTIVATOR_NOT_IN_TEMPLATE,
    );
}

#[test]
fn every_operator_flag_is_passed_by_the_chart_or_listed() {
    check(
        runway_operator::cli::Args::command(),
        "deploy/runway/templates/operator.yaml",
        &OPERATOR_NOT_IN_TEMPLATE,
    );
}

#[test]
fn every_node_agent_flag_is_passed_by_the_chart_or_listed() {
    check(
        runway_node::cli::Args::command(),
        "deploy/runway/templates/node-agent.yaml",
        &NODE_NOT_IN_TEMPLATE,
    );
}

#[test]
fn a_flag_is_found_as_a_whole_word_only() {
    assert!(mentions("- --listen=0.0.0.0:8080", "--listen"));
    assert!(mentions("- --ingress-routes\n", "--ingress-routes"));
    assert!(!mentions("- --internal-listen=0.0.0.0:8081", "--listen"));
    assert!(!mentions("- --route-file=x", "--route"));
    assert!(!mentions("- --peers=x", "--peer"));
}

/// The Helm value behind each flag the chart passes from a value with the same default, by component.
const VALUE_OF_FLAG: [(&str, &str, &str); 49] = [
    ("activator", "--domain", "domain"),
    ("activator", "--log-level", "logLevel"),
    ("activator", "--log-format", "logFormat"),
    ("activator", "--otlp-endpoint", "tracing.otlpEndpoint"),
    ("activator", "--trace-sampling-ratio", "tracing.samplingRatio"),
    ("activator", "--queue-depth", "activator.queueDepth"),
    ("activator", "--drain-delay", "activator.drainDelay"),
    ("activator", "--shutdown-timeout", "activator.shutdownTimeout"),
    ("activator", "--max-connections", "activator.maxConnections"),
    (
        "activator",
        "--max-header-bytes",
        "activator.connections.maxHeaderBytes",
    ),
    (
        "activator",
        "--header-read-timeout",
        "activator.connections.headerReadTimeout",
    ),
    (
        "activator",
        "--handshake-timeout",
        "activator.connections.handshakeTimeout",
    ),
    ("activator", "--idle-timeout", "activator.connections.idleTimeout"),
    (
        "activator",
        "--max-concurrent-streams",
        "activator.connections.maxConcurrentStreams",
    ),
    ("activator", "--h2-keepalive", "activator.connections.h2Keepalive"),
    (
        "activator",
        "--tunnel-idle-timeout",
        "activator.connections.tunnelIdleTimeout",
    ),
    ("activator", "--connect-timeout", "activator.backends.connectTimeout"),
    (
        "activator",
        "--probe-fast-interval",
        "activator.backends.probe.fastInterval",
    ),
    (
        "activator",
        "--probe-fast-window",
        "activator.backends.probe.fastWindow",
    ),
    ("activator", "--probe-interval", "activator.backends.probe.interval"),
    ("activator", "--probe-timeout", "activator.backends.probe.timeout"),
    ("activator", "--auth-token-ttl", "activator.auth.tokenTtl"),
    ("activator", "--auth-access-ttl", "activator.auth.accessTtl"),
    ("activator", "--auth-negative-ttl", "activator.auth.negativeTtl"),
    ("activator", "--auth-cache-entries", "activator.auth.cacheEntries"),
    (
        "activator",
        "--auth-reviews-per-second",
        "activator.auth.reviewsPerSecond",
    ),
    ("activator", "--auth-review-burst", "activator.auth.reviewBurst"),
    (
        "activator",
        "--auth-reviews-in-flight",
        "activator.auth.reviewsInFlight",
    ),
    ("activator", "--auth-review-timeout", "activator.auth.reviewTimeout"),
    ("node", "--log-level", "logLevel"),
    ("node", "--log-format", "logFormat"),
    ("operator", "--domain", "domain"),
    ("operator", "--log-level", "logLevel"),
    ("operator", "--log-format", "logFormat"),
    ("operator", "--otlp-endpoint", "tracing.otlpEndpoint"),
    ("operator", "--trace-sampling-ratio", "tracing.samplingRatio"),
    ("operator", "--lease-name", "operator.leaseName"),
    ("operator", "--workload-pod-security", "workloads.podSecurity"),
    ("operator", "--activator-service-port", "activator.service.port"),
    ("operator", "--max-scale-up-rate", "autoscaler.maxScaleUpRate"),
    ("operator", "--max-scale-down-rate", "autoscaler.maxScaleDownRate"),
    (
        "operator",
        "--default-concurrency-target",
        "autoscaler.concurrencyTarget",
    ),
    ("operator", "--default-rps-target", "autoscaler.rpsTarget"),
    (
        "operator",
        "--default-target-utilization-percentage",
        "autoscaler.targetUtilizationPercentage",
    ),
    (
        "operator",
        "--default-stable-window-seconds",
        "autoscaler.stableWindowSeconds",
    ),
    (
        "operator",
        "--default-panic-window-percentage",
        "autoscaler.panicWindowPercentage",
    ),
    (
        "operator",
        "--default-panic-threshold-percentage",
        "autoscaler.panicThresholdPercentage",
    ),
    (
        "operator",
        "--default-scale-to-zero-grace-period-seconds",
        "autoscaler.scaleToZeroGracePeriodSeconds",
    ),
    (
        "operator",
        "--default-scale-down-delay-seconds",
        "autoscaler.scaleDownDelaySeconds",
    ),
];

/// Values whose default differs from their flag's on purpose (docs/configuration.md says why).
const OTHER_DEFAULT: [(&str, &str, &str); 1] = [(
    "activator",
    "--worker-threads",
    "activator.workerThreads: 2, where the flag's default is every CPU the process may use, all of the node's \
     without a CPU limit",
)];

/// Whether a value's default (from values.yaml) and a flag's (clap's text) are the same setting.
fn same_default(value: &Value, flag: &str) -> bool {
    match value {
        Value::Number(n) => flag.parse::<f64>().is_ok_and(|f| Some(f) == n.as_f64()),
        Value::String(text) => {
            let duration = runway_activator::config::parse_duration;
            text == flag || matches!((duration(text), duration(flag)), (Ok(a), Ok(b)) if a == b)
        }
        _ => false,
    }
}

#[test]
fn each_value_defaults_to_its_flags_default() {
    let values: Value = serde_saphyr::from_str(&repo_file("deploy/runway/values.yaml")).expect("values.yaml parses");
    let commands = [
        ("activator", runway_activator::config::Args::command()),
        ("operator", runway_operator::cli::Args::command()),
        ("node", runway_node::cli::Args::command()),
    ];
    let default_of = |component: &str, flag: &str| {
        let (_, command) = commands.iter().find(|(c, _)| *c == component).unwrap();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|long| format!("--{long}") == flag))
            .unwrap_or_else(|| panic!("{component} has no flag {flag}"));
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        defaults.join(",")
    };
    let mut wrong = vec![];
    for (component, flag, path) in VALUE_OF_FLAG {
        let value = path.split('.').fold(&values, |node, key| &node[key]);
        let default = default_of(component, flag);
        if !same_default(value, &default) {
            wrong.push(format!("{path} defaults to {value}, {component} {flag} to {default:?}"));
        }
    }
    for (component, flag, why) in OTHER_DEFAULT {
        assert!(!why.is_empty());
        default_of(component, flag);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
