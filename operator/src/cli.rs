//! The operator's command-line flags, each with an environment variable fallback.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::Parser;
use runway_api::logging::LogArgs;
use runway_api::telemetry::{Origin, TraceArgs};
use serde_json::Value;

use crate::autoscaler::policy::Defaults;
use crate::domain::{IngressSettings, RouteSettings};
use runway_api::cidr::CidrList;

use crate::service::{Admitted, NetworkIsolation, PodSecurity};

/// Reconciles Runway Services into Deployments and Kubernetes Services, and scales them on request load.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Domain of Service URLs: http://{name}.{namespace}.{domain}.
    #[arg(long, env = "RUNWAY_DOMAIN", default_value = "example.com")]
    pub(crate) domain: String,
    /// Namespace of the activator's Kubernetes Service.
    #[arg(long, env = "RUNWAY_ACTIVATOR_NAMESPACE", default_value = "runway-system")]
    pub(crate) activator_namespace: String,
    /// Name of the activator's Kubernetes Service (its external entry point); its EndpointSlices list the
    /// activators whose load streams the autoscaler reads.
    #[arg(long, env = "RUNWAY_ACTIVATOR_SERVICE", default_value = "runway-activator")]
    pub(crate) activator_service: String,
    /// Port of the activator's external Kubernetes Service: the backend port of the routes of mapped domains.
    #[arg(long, env = "RUNWAY_ACTIVATOR_SERVICE_PORT", default_value_t = 80, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub(crate) activator_service_port: i32,
    /// Name of the activator's internal Kubernetes Service, where in-cluster calls to a Runway Service are sent
    /// (each Runway Service's own Kubernetes Service is an ExternalName to it).
    #[arg(
        long,
        env = "RUNWAY_ACTIVATOR_INTERNAL_SERVICE",
        default_value = "runway-activator-internal"
    )]
    pub(crate) activator_internal_service: String,
    /// Port of the activators' admin server, where their load stream is.
    #[arg(long, env = "RUNWAY_ACTIVATOR_ADMIN_PORT", default_value_t = 9090)]
    pub(crate) activator_admin_port: u16,
    /// Address of this process's /healthz, /readyz and /metrics.
    #[arg(long, env = "RUNWAY_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub(crate) admin_listen: SocketAddr,
    #[command(flatten)]
    pub(crate) autoscaler: AutoscalerArgs,
    #[command(flatten)]
    pub(crate) routes: RouteArgs,
    #[command(flatten)]
    pub(crate) workloads: WorkloadArgs,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "runway-system")]
    pub(crate) lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "RUNWAY_LEASE_NAME", default_value = "runway-operator")]
    pub(crate) lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "runway-operator")]
    pub(crate) identity: String,
    #[command(flatten)]
    pub logs: LogArgs,
    // Span export of reconciles and scale writes: --otlp-endpoint and --trace-sampling-ratio.
    #[command(flatten)]
    pub traces: TraceArgs,
}

impl Args {
    /// What the operator's spans say about where they come from: this pod, in the Lease's namespace (its own).
    pub fn origin(&self) -> Origin {
        Origin {
            service: "runway-operator",
            version: env!("CARGO_PKG_VERSION"),
            pod_name: Some(self.identity.clone()),
            namespace: Some(self.lease_namespace.clone()),
        }
    }

    /// Where the routes of mapped domains go and what they look like.
    pub(crate) fn route_settings(&self) -> RouteSettings {
        let routes = &self.routes;
        RouteSettings {
            namespace: self.activator_namespace.clone(),
            service: self.activator_service.clone(),
            port: self.activator_service_port,
            gateway: routes.gateway_parent_refs.clone(),
            ingress: routes.ingress_routes.then(|| IngressSettings {
                class_name: routes.ingress_class_name.clone().filter(|class| !class.is_empty()),
                annotations: routes.ingress_annotations.clone(),
                tls: routes.ingress_tls,
            }),
        }
    }
}

impl Args {
    /// Whether revisions' pods are isolated, and from whom they take connections: the activators of
    /// `--activator-namespace` and the probe sources.
    pub(crate) fn isolation(&self) -> NetworkIsolation {
        let workloads = &self.workloads;
        match workloads.workload_network_policy {
            NetworkPolicyMode::Enforce => NetworkIsolation::Enforce(Admitted {
                activator_namespace: self.activator_namespace.clone(),
                activator_labels: workloads.activator_pod_labels.clone(),
                probe_sources: workloads.probe_source_cidrs.clone().unwrap_or_default().0,
            }),
            NetworkPolicyMode::Off => NetworkIsolation::Off,
        }
    }
}

/// What the operator adds to the revisions' pods for their security.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkloadArgs {
    /// Enforce: each revision gets a NetworkPolicy admitting connections to its pods only from the activators and
    /// --probe-source-cidrs. Off: none, and the operator deletes those it made.
    #[arg(long, env = "RUNWAY_WORKLOAD_NETWORK_POLICY", value_enum, default_value = "Enforce")]
    pub(crate) workload_network_policy: NetworkPolicyMode,
    /// Labels of every activator pod, key=value[,key=value]: with --activator-namespace, the peer those
    /// NetworkPolicies admit.
    #[arg(
        long,
        env = "RUNWAY_ACTIVATOR_POD_LABELS",
        default_value = "app.kubernetes.io/name=runway-activator",
        value_parser = pod_labels
    )]
    pub(crate) activator_pod_labels: BTreeMap<String, String>,
    /// Comma-separated CIDRs the kubelet's probes come from (the nodes' addresses), admitted by those
    /// NetworkPolicies too; unset: none, for network plugins that admit a node's traffic to its own pods anyway.
    #[arg(long, env = "RUNWAY_PROBE_SOURCE_CIDRS")]
    pub(crate) probe_source_cidrs: Option<CidrList>,
    /// Restricted: new revisions' pods get the runtime's default seccomp profile, no privilege escalation and ALL
    /// capabilities dropped but CHOWN, SETGID, SETUID, NET_BIND_SERVICE and KILL, wherever their template leaves
    /// those fields unset. Unchanged: templates run as written. Existing revisions keep what they were made with.
    #[arg(long, env = "RUNWAY_WORKLOAD_POD_SECURITY", value_enum, default_value = "Restricted")]
    pub(crate) workload_pod_security: PodSecurity,
}

/// `--workload-network-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "PascalCase")]
pub(crate) enum NetworkPolicyMode {
    Enforce,
    Off,
}

/// Labels as `key=value[,key=value]`, at least one: an empty selector would admit every pod of the namespace.
fn pod_labels(value: &str) -> Result<BTreeMap<String, String>, String> {
    let labels = value
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
            _ => Err(format!("{pair:?} is not key=value")),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    if labels.is_empty() {
        return Err("at least one label is needed".into());
    }
    Ok(labels)
}

/// The routes of mapped domains (DomainMappings): per domain whose claim holds and whose Service exists, an
/// HTTPRoute and/or an Ingress to the activator's external Service, in the activator's namespace.
#[derive(clap::Args, Debug)]
pub(crate) struct RouteArgs {
    /// parentRefs of an HTTPRoute per mapped domain, a JSON list such as [{"name":"runway","namespace":"traefik"}];
    /// unset: no HTTPRoutes.
    #[arg(long, env = "RUNWAY_GATEWAY_PARENT_REFS", value_parser = parent_refs)]
    pub(crate) gateway_parent_refs: Option<Value>,
    /// Make an Ingress per mapped domain.
    #[arg(long, env = "RUNWAY_INGRESS_ROUTES")]
    pub(crate) ingress_routes: bool,
    /// spec.ingressClassName of those Ingresses; unset: the cluster's default IngressClass.
    #[arg(long, env = "RUNWAY_INGRESS_CLASS_NAME")]
    pub(crate) ingress_class_name: Option<String>,
    /// Annotations of those Ingresses, a JSON object of strings.
    #[arg(long, env = "RUNWAY_INGRESS_ANNOTATIONS", default_value = "{}", value_parser = annotations)]
    pub(crate) ingress_annotations: BTreeMap<String, String>,
    /// Give each of those Ingresses TLS for its domain with the Secret {domain}-tls in the activator's namespace.
    #[arg(long, env = "RUNWAY_INGRESS_TLS")]
    pub(crate) ingress_tls: bool,
}

/// A non-empty JSON list of objects that name their parent (the Gateway API requires `name`).
fn parent_refs(value: &str) -> Result<Value, String> {
    let refs: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(value).map_err(|e| format!("not a JSON list of objects: {e}"))?;
    if refs.is_empty() {
        return Err("at least one parentRef is needed".into());
    }
    if let Some(nameless) = refs.iter().find(|r| !r.get("name").is_some_and(Value::is_string)) {
        return Err(format!("a parentRef needs a name: {}", Value::Object(nameless.clone())));
    }
    Ok(Value::from(refs))
}

fn annotations(value: &str) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_str(value).map_err(|e| format!("not a JSON object of strings: {e}"))
}

/// Operator-wide autoscaler settings: rate limits, and the defaults of scaling fields a Service leaves out.
#[derive(clap::Args, Debug)]
pub(crate) struct AutoscalerArgs {
    /// One autoscaler tick may grow a Service to at most ready pods x this.
    #[arg(long, env = "RUNWAY_MAX_SCALE_UP_RATE", default_value_t = 1000.0, value_parser = at_least_one)]
    pub(crate) max_scale_up_rate: f64,
    /// One autoscaler tick may shrink a Service to no less than ready pods / this.
    #[arg(long, env = "RUNWAY_MAX_SCALE_DOWN_RATE", default_value_t = 2.0, value_parser = at_least_one)]
    pub(crate) max_scale_down_rate: f64,
    /// Default per-pod concurrency target (when containerConcurrency is 0).
    #[arg(long, env = "RUNWAY_DEFAULT_CONCURRENCY_TARGET", default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub(crate) default_concurrency_target: i32,
    /// Default per-pod requests-per-second target.
    #[arg(long, env = "RUNWAY_DEFAULT_RPS_TARGET", default_value_t = 200, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub(crate) default_rps_target: i32,
    /// Default targetUtilizationPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_TARGET_UTILIZATION_PERCENTAGE", default_value_t = 70, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub(crate) default_target_utilization_percentage: i32,
    /// Default stableWindowSeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_STABLE_WINDOW_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(i32).range(6..=3600))]
    pub(crate) default_stable_window_seconds: i32,
    /// Default panicWindowPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_PANIC_WINDOW_PERCENTAGE", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub(crate) default_panic_window_percentage: i32,
    /// Default panicThresholdPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_PANIC_THRESHOLD_PERCENTAGE", default_value_t = 200, value_parser = clap::value_parser!(i32).range(110..=1000))]
    pub(crate) default_panic_threshold_percentage: i32,
    /// Default scaleToZeroGracePeriodSeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_SCALE_TO_ZERO_GRACE_PERIOD_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(0..=3600))]
    pub(crate) default_scale_to_zero_grace_period_seconds: i32,
    /// Default scaleDownDelaySeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_SCALE_DOWN_DELAY_SECONDS", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=3600))]
    pub(crate) default_scale_down_delay_seconds: i32,
}

impl AutoscalerArgs {
    pub(crate) fn defaults(&self) -> Defaults {
        Defaults {
            max_scale_up_rate: self.max_scale_up_rate,
            max_scale_down_rate: self.max_scale_down_rate,
            concurrency_target: self.default_concurrency_target,
            rps_target: self.default_rps_target,
            target_utilization_percentage: self.default_target_utilization_percentage,
            stable_window_seconds: self.default_stable_window_seconds,
            panic_window_percentage: self.default_panic_window_percentage,
            panic_threshold_percentage: self.default_panic_threshold_percentage,
            scale_to_zero_grace_period_seconds: self.default_scale_to_zero_grace_period_seconds,
            scale_down_delay_seconds: self.default_scale_down_delay_seconds,
        }
    }
}

fn at_least_one(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate >= 1.0 => Ok(rate),
        _ => Err(format!("{value} is not a number >= 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["runway-operator"][..], extra].concat())
    }

    #[test]
    fn routes_are_off_by_default() {
        let settings = parse(&[]).unwrap().route_settings();
        assert!(!settings.enabled());
        assert_eq!((settings.service.as_str(), settings.port), ("runway-activator", 80));
    }

    #[test]
    fn route_flags_become_the_settings() {
        let args = parse(&[
            "--activator-namespace=runway",
            "--activator-service-port=8080",
            r#"--gateway-parent-refs=[{"name":"runway","namespace":"traefik","sectionName":"http"}]"#,
            "--ingress-routes",
            "--ingress-class-name=traefik",
            r#"--ingress-annotations={"cert-manager.io/cluster-issuer":"letsencrypt-http01"}"#,
            "--ingress-tls",
        ])
        .unwrap();
        let settings = args.route_settings();
        assert_eq!((settings.namespace.as_str(), settings.port), ("runway", 8080));
        assert_eq!(
            settings.gateway,
            Some(serde_json::json!([{"name": "runway", "namespace": "traefik", "sectionName": "http"}]))
        );
        let ingress = settings.ingress.unwrap();
        assert_eq!(ingress.class_name.as_deref(), Some("traefik"));
        assert_eq!(
            ingress.annotations["cert-manager.io/cluster-issuer"],
            "letsencrypt-http01"
        );
        assert!(ingress.tls);
    }

    #[test]
    fn an_empty_class_name_is_the_default_class() {
        let settings = parse(&["--ingress-routes", "--ingress-class-name="])
            .unwrap()
            .route_settings();
        assert_eq!(settings.ingress.unwrap().class_name, None);
    }

    #[test]
    fn isolation_is_enforced_by_default_and_admits_the_activator_pods() {
        let args = parse(&["--activator-namespace=runway"]).unwrap();
        let NetworkIsolation::Enforce(admitted) = args.isolation() else {
            panic!("isolation is on by default");
        };
        assert_eq!(admitted.activator_namespace, "runway");
        assert_eq!(
            admitted.activator_labels,
            BTreeMap::from([("app.kubernetes.io/name".to_owned(), "runway-activator".to_owned())])
        );
        assert!(admitted.probe_sources.is_empty());
        assert_eq!(args.workloads.workload_pod_security, PodSecurity::Restricted);
    }

    #[test]
    fn workload_flags_become_the_settings() {
        let args = parse(&[
            "--activator-pod-labels=app.kubernetes.io/name=runway-activator,app.kubernetes.io/instance=r1",
            "--probe-source-cidrs=10.88.0.1/32,10.89.0.0/16",
            "--workload-pod-security=Unchanged",
        ])
        .unwrap();
        let NetworkIsolation::Enforce(admitted) = args.isolation() else {
            panic!("enforced");
        };
        assert_eq!(admitted.activator_labels.len(), 2);
        let sources: Vec<String> = admitted.probe_sources.iter().map(ToString::to_string).collect();
        assert_eq!(sources, ["10.88.0.1/32", "10.89.0.0/16"]);
        assert_eq!(args.workloads.workload_pod_security, PodSecurity::Unchanged);
        let off = parse(&["--workload-network-policy=Off"]).unwrap();
        assert_eq!(off.isolation(), NetworkIsolation::Off);
    }

    #[test]
    fn bad_parent_refs_and_annotations_are_refused() {
        for bad in [
            "--gateway-parent-refs=[]",
            "--gateway-parent-refs={}",
            r#"--gateway-parent-refs=[{"namespace":"traefik"}]"#,
            r#"--ingress-annotations={"a":1}"#,
            "--activator-pod-labels=",
            "--activator-pod-labels=runway-activator",
            "--probe-source-cidrs=node",
            "--workload-network-policy=off",
            "--workload-pod-security=Privileged",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }
}
