//! The agent process: the admin server, the pod watch, the fail-safe thaw at start, the API, and at SIGTERM the
//! thaw of every pod this instance froze.
//!
//! Why thaw at SIGTERM rather than leave the pods to the next agent: the next agent may never come (the DaemonSet
//! deleted, `nodeAgent.enabled` turned off, the node drained of it), and a pod frozen with no agent on its node
//! stays frozen until someone thaws it by hand. A rolling upgrade wakes the pods this agent froze, which costs them
//! memory and a wake-up, never a stuck request; the activator freezes them again when they are idle again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::agent::Agent;
use crate::api::{self, Api, Phase};
use crate::auth::Authenticator;
use crate::cgroup::Layout;
use crate::cli::Args;
use crate::mark::{Instance, Marks};
use crate::metrics::Metrics;
use crate::{admin, pods};

/// How long API requests in flight at SIGTERM may take to finish.
const API_DRAIN: Duration = Duration::from_secs(3);
/// How long the thaw at SIGTERM may take (the DaemonSet's terminationGracePeriodSeconds is above both).
const SHUTDOWN_THAW: Duration = Duration::from_secs(10);
/// Pause between attempts at the fail-safe thaw at start.
const RECOVER_RETRY: Duration = Duration::from_secs(2);

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let layout = Layout::detect(&args.cgroup_root)?;
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let instance = Instance::random();
    info!(node = %args.node_name, %instance, ?layout, "starting");
    if args.allowed_clients.is_empty() {
        warn!("no --allowed-client: every API call will be refused");
    }

    let (phase_tx, phase) = watch::channel(Phase::Starting);
    let admin = TcpListener::bind(args.admin_listen).await?;
    tokio::spawn(admin::serve(admin, metrics.clone(), phase.clone()));

    let (store, changes) = pods::watch(client.clone(), &args.node_name);
    let agent = Arc::new(Agent::new(
        layout,
        client.clone(),
        store.clone(),
        Marks::new(instance),
        metrics,
    ));
    // The watch must be polled for the cache to fill; a pod that starts terminating while frozen is thawed.
    let watch_agent = agent.clone();
    tokio::spawn(changes.for_each(move |pod| {
        watch_agent.pod_changed(&pod);
        async {}
    }));

    // The API answers 503 until the fail-safe is done, rather than refusing connections.
    let listener = TcpListener::bind(args.listen).await?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let api = Arc::new(Api {
        agent: agent.clone(),
        auth: Authenticator::new(client, args.token_audience.clone(), args.allowed_clients.clone()),
        phase,
    });
    let api_task = tokio::spawn(api::serve(
        listener,
        api,
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
        API_DRAIN,
    ));

    let start = async {
        store.wait_until_ready().await?;
        while let Err(e) = agent.recover().await {
            warn!(error = %e, "fail-safe thaw at start; trying again");
            tokio::time::sleep(RECOVER_RETRY).await;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    tokio::select! {
        started = start => {
            started?;
            phase_tx.send_replace(Phase::Serving);
            info!("serving");
            runway_api::admin::shutdown_signal().await;
        }
        () = runway_api::admin::shutdown_signal() => {}
    }

    phase_tx.send_replace(Phase::Stopping);
    stop_tx.send_replace(true);
    let _ = api_task.await;
    agent.thaw_all(SHUTDOWN_THAW).await;
    info!("stopped");
    Ok(())
}
