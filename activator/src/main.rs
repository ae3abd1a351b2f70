//! The activator binary: reads its flags, starts serving, feeds the registry from the cluster's watches (or from
//! standalone routes), and drains on SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use clap::Parser;
use runway_activator::access::ApiClient;
use runway_activator::app::Activator;
use runway_activator::config::Args;
use runway_activator::sources::cluster::{self, PeerSource};
use runway_activator::sources::standalone::{self, StaticConfig};
use runway_api::telemetry::{Origin, Telemetry};
use tokio::signal::unix::{SignalKind, signal};

// Every proxied request allocates headers, URIs and futures; mimalloc's thread-local free lists make that cheaper
// than glibc's arenas (measured with the benchmark in hack/bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.logs.init();
    // In a cluster, spans name this pod; standalone, --pod-name is only a default.
    let origin = Origin {
        service: "runway-activator",
        version: env!("CARGO_PKG_VERSION"),
        pod_name: (!args.standalone).then(|| args.pod_name.clone()),
        namespace: (!args.standalone).then(|| args.namespace.clone()),
    };
    let telemetry = args.traces.init(&origin)?;
    // The watches, reports and the first serving worker share this thread; further workers get threads of their
    // own (`Options::workers`), each with a single-threaded scheduler: no work stealing, no cross-thread wake-ups.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(args, telemetry))
}

async fn run(args: Args, telemetry: Telemetry) -> anyhow::Result<()> {
    let mut options = args.options()?;
    options.tracer = telemetry.tracer().cloned();
    // Read the routes before binding anything: a bad file is a startup error, not a half-configured proxy.
    let mut routes = match &args.routes_file {
        Some(path) => StaticConfig::from_file(path)?,
        None => StaticConfig::default(),
    };
    routes.routes.extend(args.routes.iter().cloned());
    routes.peers.extend(args.peers.iter().copied());

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // In a cluster the client both watches and reviews the tokens of Authorized Services' callers.
    let client = if args.standalone {
        None
    } else {
        let client = kube::Client::try_default()
            .await
            .map_err(|error| anyhow::anyhow!("cannot reach the Kubernetes API: {error}"))?;
        Some(client)
    };
    options.api = client.clone().map(ApiClient::new);
    let activator = Activator::start(options).await?;
    if let Some(client) = client {
        let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel(1);
        let source = PeerSource {
            namespace: args.namespace.clone(),
            service: args.activator_service.clone(),
            internal_port: activator.internal_addr.port(),
            admin_port: activator.admin_addr.port(),
            node_agent_service: args.node_agent_service.clone(),
        };
        tokio::spawn(cluster::run(client, activator.registry.clone(), source, synced_tx));
        let health = activator.health.clone();
        tokio::spawn(async move {
            if synced_rx.recv().await.is_some() {
                tracing::info!("watches synced; ready");
                health.set_synced();
            }
        });
    } else {
        standalone::apply(&activator.registry, &routes, &args.domain)?;
        activator.health.set_synced();
    }
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM"),
        _ = interrupt.recv() => tracing::info!("SIGINT"),
    }
    activator.shutdown().await;
    // The last requests' spans.
    telemetry.shutdown();
    Ok(())
}
