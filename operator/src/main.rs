//! runway-operator: reconciles Runway Services and autoscales them, on the elected replica only.
#![forbid(unsafe_code)]

mod admin;
mod autoscaler;
mod children;
mod desired;
mod leader;
mod metrics;
mod reconcile;
mod status;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service as KubeService;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use runway_api::{Service, names};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use autoscaler::board::Board;
use autoscaler::collector::{self, ActivatorEndpoints};
use autoscaler::policy::Defaults;
use autoscaler::scaler::Scaler;
use desired::ActivatorRef;
use leader::ElectionConfig;
use metrics::Metrics;
use reconcile::{Context, Settings};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Reconciles Runway Services into Deployments and Kubernetes Services, and scales them on request load.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Domain of Service URLs: http://{name}.{namespace}.{domain}.
    #[arg(long, env = "RUNWAY_DOMAIN", default_value = "example.com")]
    domain: String,
    /// Namespace of the activator's Kubernetes Service.
    #[arg(long, env = "RUNWAY_ACTIVATOR_NAMESPACE", default_value = "runway-system")]
    activator_namespace: String,
    /// Name of the activator's Kubernetes Service.
    #[arg(long, env = "RUNWAY_ACTIVATOR_SERVICE", default_value = "runway-activator")]
    activator_service: String,
    /// Port of the activators' admin server, where their load stream is.
    #[arg(long, env = "RUNWAY_ACTIVATOR_ADMIN_PORT", default_value_t = 9090)]
    activator_admin_port: u16,
    /// Address of this process's /healthz, /readyz and /metrics.
    #[arg(long, env = "RUNWAY_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    #[command(flatten)]
    autoscaler: AutoscalerArgs,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "runway-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "RUNWAY_LEASE_NAME", default_value = "runway-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "runway-operator")]
    identity: String,
    /// Log format.
    #[arg(long, env = "RUNWAY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "RUNWAY_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// Operator-wide autoscaler settings: rate limits, and the defaults of scaling fields a Service leaves out.
#[derive(clap::Args, Debug)]
struct AutoscalerArgs {
    /// One autoscaler tick may grow a Service to at most ready pods x this.
    #[arg(long, env = "RUNWAY_MAX_SCALE_UP_RATE", default_value_t = 1000.0, value_parser = at_least_one)]
    max_scale_up_rate: f64,
    /// One autoscaler tick may shrink a Service to no less than ready pods / this.
    #[arg(long, env = "RUNWAY_MAX_SCALE_DOWN_RATE", default_value_t = 2.0, value_parser = at_least_one)]
    max_scale_down_rate: f64,
    /// Default per-pod concurrency target (when containerConcurrency is 0).
    #[arg(long, env = "RUNWAY_DEFAULT_CONCURRENCY_TARGET", default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    default_concurrency_target: i32,
    /// Default per-pod requests-per-second target.
    #[arg(long, env = "RUNWAY_DEFAULT_RPS_TARGET", default_value_t = 200, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    default_rps_target: i32,
    /// Default targetUtilizationPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_TARGET_UTILIZATION_PERCENTAGE", default_value_t = 70, value_parser = clap::value_parser!(i32).range(1..=100))]
    default_target_utilization_percentage: i32,
    /// Default stableWindowSeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_STABLE_WINDOW_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(i32).range(6..=3600))]
    default_stable_window_seconds: i32,
    /// Default panicWindowPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_PANIC_WINDOW_PERCENTAGE", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=100))]
    default_panic_window_percentage: i32,
    /// Default panicThresholdPercentage.
    #[arg(long, env = "RUNWAY_DEFAULT_PANIC_THRESHOLD_PERCENTAGE", default_value_t = 200, value_parser = clap::value_parser!(i32).range(110..=1000))]
    default_panic_threshold_percentage: i32,
    /// Default scaleToZeroGracePeriodSeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_SCALE_TO_ZERO_GRACE_PERIOD_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(0..=3600))]
    default_scale_to_zero_grace_period_seconds: i32,
    /// Default scaleDownDelaySeconds.
    #[arg(long, env = "RUNWAY_DEFAULT_SCALE_DOWN_DELAY_SECONDS", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=3600))]
    default_scale_down_delay_seconds: i32,
}

impl AutoscalerArgs {
    fn defaults(&self) -> Defaults {
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
    init_logs(&args);
    if let Err(e) = run(args).await {
        error!("{e}");
        std::process::exit(1);
    }
}

fn init_logs(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let admin = admin::bind(args.admin_listen).await?;
    tokio::spawn(admin::serve(admin, metrics.clone()));

    let election = ElectionConfig {
        lease_name: args.lease_name.clone(),
        identity: args.identity.clone(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    let (leading_tx, mut leading) = watch::channel(false);
    let election_task = tokio::spawn(leader::run(leases.clone(), election.clone(), leading_tx));

    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown_tx.send_replace(true);
    });

    info!(identity = %args.identity, "waiting for leadership");
    loop {
        let mut stop = shutdown.clone();
        tokio::select! {
            _ = leading.wait_for(|leads| *leads) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        metrics.leader.set(1);
        info!("leading: reconciling and autoscaling");
        let mut lost = leading.clone();
        let mut stop = shutdown.clone();
        let scope_end = async move {
            tokio::select! {
                _ = lost.wait_for(|leads| !*leads) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        };
        lead(client.clone(), &args, metrics.clone(), scope_end).await;
        metrics.leader.set(0);
        if *shutdown.borrow() {
            break;
        }
        warn!("lost leadership");
    }
    election_task.abort();
    leader::release(&leases, &election).await;
    info!("stopped");
    Ok(())
}

/// Everything the leader runs: the reconciler, the activator load collector and the autoscaler. Returns once
/// `scope_end` fires and in-flight reconciles are done.
async fn lead(
    client: Client,
    args: &Args,
    metrics: Arc<Metrics>,
    scope_end: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let managed = watcher::Config::default().labels(&format!("{}={}", names::MANAGED_BY_LABEL, names::MANAGED_BY));
    let reporter = Reporter {
        controller: "runway-operator".into(),
        instance: Some(args.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let defaults = args.autoscaler.defaults();
    let settings = Settings {
        domain: args.domain.clone(),
        activator: ActivatorRef {
            namespace: args.activator_namespace.clone(),
            name: args.activator_service.clone(),
        },
        defaults,
    };
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: recorder.clone(),
        settings,
        metrics: metrics.clone(),
    });

    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), managed.clone())
        .owns(Api::<KubeService>::all(client.clone()), managed.clone())
        .graceful_shutdown_on(scope_end);
    let services = controller.store();

    let (deployments, writer) = reflector::store();
    let deployment_events = reflector::reflector(writer, watcher(Api::<Deployment>::all(client.clone()), managed))
        .default_backoff()
        .touched_objects()
        .for_each(|_| std::future::ready(()));

    let board = Arc::new(Mutex::new(Board::default()));
    let (poke_tx, poke_rx) = mpsc::channel(1024);
    let endpoints = ActivatorEndpoints {
        namespace: args.activator_namespace.clone(),
        service: args.activator_service.clone(),
        admin_port: args.activator_admin_port,
    };
    let collector = collector::run(client.clone(), endpoints, board.clone(), poke_tx, metrics.clone());
    let scaler = Scaler {
        client,
        recorder,
        services,
        deployments,
        board,
        metrics,
        defaults,
    }
    .run(poke_rx);

    let reconciles = controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| {
            if let Err(e) = result {
                warn!(%e, "controller");
            }
            std::future::ready(())
        });
    // The controller stream ends on scope end; the background loops end with it.
    tokio::select! {
        _ = reconciles => {}
        _ = async { tokio::join!(deployment_events, collector, scaler) } => {}
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("shutting down");
}
