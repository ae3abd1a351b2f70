//! Starting and stopping an activator: the registry, the listeners, the background tasks (prober, handoff, load
//! reports) and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::access::{AccessCheck, AccessSettings, ApiClient};
use crate::control::reports::{self, LoadHub};
use crate::control::{AgentAccess, ProbeConfig, freezer, handoff, prober};
use crate::model::AccessLogShare;
use crate::observe::AccessLog;
use crate::revision::Metrics;
use crate::route::Registry;
use crate::serve::admin::{self, Admin, AdminServer, Health};
use crate::serve::budget::RequestBudget;
use crate::serve::proxy::{Proxy, ProxySettings};
use crate::serve::server::{self, ConnectionLimits, Phase};
use opentelemetry_sdk::trace::SdkTracer;
use runway_api::cidr::CidrList;
use runway_api::logging::LogFormat;

/// Everything an activator needs to run, whatever feeds its routes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The external entry point.
    pub listen: SocketAddr,
    /// The internal entry point.
    pub internal_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub domain: String,
    pub queue_depth: usize,
    /// Names this activator in load reports.
    pub pod_name: String,
    /// This activator's IP as peers see it: the slot split and the source of forwarded requests.
    pub pod_ip: IpAddr,
    /// Time between failing readiness and closing the listener.
    pub drain_delay: Duration,
    /// Bound on waiting for in-flight requests after the listener closed.
    pub shutdown_timeout: Duration,
    pub limits: ConnectionLimits,
    /// Bytes of requests admitted and not yet answered; past it requests get 503 at once.
    pub request_budget_bytes: usize,
    /// Upgraded connections idle this long are closed; `None` never.
    pub tunnel_idle_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// Networks whose forwarded headers are kept (`--trusted-proxies`).
    pub trusted_proxies: CidrList,
    pub probe: ProbeConfig,
    /// Threads serving requests, each with its own listeners, backend pools and single-threaded scheduler.
    pub workers: usize,
    /// How the callers of Authorized Services are checked (`--auth-*`).
    pub access: AccessSettings,
    /// The API server that reviews their tokens; without one (standalone mode) they get 503.
    pub api: Option<ApiClient>,
    pub access_log: AccessLogSettings,
    /// Starts the requests' spans; `None` when tracing is off (`--otlp-endpoint` unset).
    pub tracer: Option<SdkTracer>,
    /// How to reach the node agents that freeze idle pods; `None`: no pod is frozen.
    pub node_agents: Option<AgentAccess>,
}

/// The access log's format and the share of requests it records by default.
#[derive(Clone, Copy, Debug)]
pub struct AccessLogSettings {
    pub format: LogFormat,
    pub default: AccessLogShare,
}

/// A running activator.
pub struct Activator {
    pub registry: Arc<Registry>,
    pub health: Arc<Health>,
    /// The access checks of Authorized Services.
    pub access: Arc<AccessCheck>,
    /// The load reports, as the autoscaler's streams get them.
    pub hub: Arc<LoadHub>,
    /// The external entry point.
    pub proxy_addr: SocketAddr,
    /// The internal entry point, where peers forward.
    pub internal_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    drain_delay: Duration,
    phase: watch::Sender<Phase>,
    /// One per serving thread; each completes when its thread has stopped.
    workers: Vec<oneshot::Receiver<()>>,
    /// Serves until the activator is dropped or shut down.
    _admin: AdminServer,
    background: Vec<JoinHandle<()>>,
}

impl Activator {
    /// Binds both ports and starts serving, with the access log on stdout. Routes come later, through `registry`.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        Self::start_logging_to(options, std::io::stdout()).await
    }

    /// [`Activator::start`], with the access log written to `access_log`.
    pub async fn start_logging_to(
        options: Options,
        access_log: impl std::io::Write + Send + 'static,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(LoadHub::new(options.pod_name.clone()));
        let (probes, probe_requests) = mpsc::unbounded_channel();
        let (freezes, freeze_orders) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry::new(
            options.domain.clone(),
            options.queue_depth,
            probes,
            freezes,
            metrics.clone(),
            options.pod_ip,
        ));
        let health = Arc::new(Health::default());
        let count = options.workers.max(1);
        let external = server::bind_each(options.listen, count)?;
        let internal = server::bind_each(options.internal_listen, count)?;
        let admin_listener = server::bind(options.admin_listen, false)?;
        let proxy_addr = external[0].local_addr()?;
        let internal_addr = internal[0].local_addr()?;
        let admin_addr = admin_listener.local_addr()?;

        let (phase, phase_receiver) = watch::channel(Phase::Serving);
        let gate = server::Gate::new(options.limits.max_connections);
        let budget = RequestBudget::new(options.request_budget_bytes);
        let access = Arc::new(AccessCheck::new(
            options.access.clone(),
            options.domain.clone(),
            options.api.clone(),
            &metrics,
        ));
        let access_log = Arc::new(AccessLog::start(
            options.access_log.format,
            options.access_log.default,
            metrics.access_log_dropped(),
            access_log,
        ));
        let settings = ProxySettings {
            connect_timeout: options.connect_timeout,
            trusted_proxies: options.trusted_proxies.clone(),
            tunnel_idle_timeout: options.tunnel_idle_timeout,
            tracer: options.tracer.clone(),
        };
        let mut workers = Vec::with_capacity(count);
        for (index, (external, internal)) in external.into_iter().zip(internal).enumerate() {
            let proxy = Proxy::new(
                registry.clone(),
                hub.clone(),
                access.clone(),
                access_log.clone(),
                settings.clone(),
                budget.clone(),
            );
            let worker = server::Worker {
                external,
                internal,
                proxy: Arc::new(proxy),
                limits: options.limits.clone(),
                gate: gate.clone(),
                phase: phase_receiver.clone(),
                drain: options.shutdown_timeout,
            };
            // The first serves beside the watches and reports; the others get threads of their own.
            let own_thread = (index > 0).then(|| format!("serve-{index}"));
            workers.push(worker.start(own_thread)?);
        }
        let admin = Admin {
            registry: registry.clone(),
            hub: hub.clone(),
            metrics,
            health: health.clone(),
        };
        let admin = admin::spawn(admin_listener, admin)?;
        let mut background = vec![
            tokio::spawn(prober::run(probe_requests, options.probe.clone())),
            tokio::spawn(reports::report_periodically(registry.clone(), hub.clone())),
            tokio::spawn(handoff::settle_views(registry.clone())),
        ];
        // Without agents the freeze channel's receiver is dropped: nothing is frozen, idle pods stay as they are.
        if let Some(access) = options.node_agents.clone() {
            background.push(tokio::spawn(freezer::run(
                freeze_orders,
                access,
                registry.clone(),
                hub.clone(),
            )));
        }
        tracing::info!(
            max_connections = options.limits.max_connections,
            request_budget_bytes = options.request_budget_bytes,
            "bounds derived"
        );
        tracing::info!(%proxy_addr, %internal_addr, %admin_addr, "activator serving");
        Ok(Activator {
            registry,
            health,
            access,
            hub,
            proxy_addr,
            internal_addr,
            admin_addr,
            drain_delay: options.drain_delay,
            phase,
            workers,
            _admin: admin,
            background,
        })
    }

    /// Graceful stop: fail readiness, keep serving for the drain delay (so that load balancers stop sending new
    /// connections, and clients move their keep-alive connections elsewhere), stop accepting, then wait (bounded)
    /// for in-flight requests.
    pub async fn shutdown(self) {
        self.health.set_draining();
        self.registry.leave();
        self.phase.send_replace(Phase::Draining);
        tracing::info!(delay = ?self.drain_delay, "draining");
        tokio::time::sleep(self.drain_delay).await;
        self.phase.send_replace(Phase::Stopped);
        for worker in self.workers {
            let _ = worker.await;
        }
        for task in self.background {
            task.abort();
        }
        tracing::info!("stopped");
    }
}
