//! The freezer: carries out the freezes and thaws the revisions ask for on their freeze channel, each on a task of its
//! own, by calling the node agent of the pod's node (`runway-node`, issue 27). A freeze order waits until its pod has
//! been idle long enough, asking the revision before each step; a thaw goes at once, as a request waits for it.
//! The freezer holds no revision: the order gives it the plan and takes the outcome back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::control::reports::LoadHub;
use crate::revision::{FreezeAction, FreezeOrder, FreezePlan};
use crate::route::Registry;

/// A freeze waits for the kernel to stop every task of the pod; past this the agent gives up and thaws it back.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request waits on a thaw; the kernel thaws at once, so a slow answer means a sick agent: give up on the pod.
const THAW_TIMEOUT: Duration = Duration::from_secs(2);
/// The kubelet rotates the projected token well before it expires; reading it this often follows.
const TOKEN_REREAD: Duration = Duration::from_secs(60);

/// How the activator reaches the node agents.
#[derive(Clone, Debug)]
pub struct AgentAccess {
    /// The ServiceAccount token (audience `runway-node`) the agents check.
    pub token_file: PathBuf,
}

/// Reads the freeze channel until every revision is gone, starting one task per order.
pub async fn run(
    mut orders: mpsc::UnboundedReceiver<FreezeOrder>,
    access: AgentAccess,
    registry: Arc<Registry>,
    hub: Arc<LoadHub>,
) {
    let agents = Arc::new(AgentClient::new(access));
    while let Some(order) = orders.recv().await {
        let agents = agents.clone();
        let registry = registry.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            match order.action {
                FreezeAction::Freeze => freeze_when_due(order, &agents, &registry).await,
                FreezeAction::Thaw => thaw(order, &agents, &registry, &hub).await,
            }
        });
    }
}

async fn freeze_when_due(order: FreezeOrder, agents: &AgentClient, registry: &Registry) {
    loop {
        match order.plan() {
            FreezePlan::WaitUntil(due) => tokio::time::sleep_until(due).await,
            FreezePlan::Cancel => return,
            FreezePlan::Freeze => {
                let outcome = agents.call(registry, &order, Operation::Freeze).await;
                let outcome = match outcome {
                    Ok(Answer { mark: Some(mark), .. }) => Ok(Arc::from(mark)),
                    Ok(Answer { mark: None, .. }) => Err("the agent gave no mark".to_owned()),
                    Err(error) => Err(error),
                };
                if let Err(error) = &outcome {
                    tracing::warn!(revision = order.revision_name(), pod = %order.pod.uid, node = %order.pod.node, %error, "freeze failed; the pod keeps running");
                }
                order.frozen(outcome.map_err(drop));
                return;
            }
        }
    }
}

async fn thaw(order: FreezeOrder, agents: &AgentClient, registry: &Registry, hub: &LoadHub) {
    let started = Instant::now();
    let outcome = agents.call(registry, &order, Operation::Thaw).await;
    if let Err(error) = &outcome {
        tracing::warn!(revision = order.revision_name(), pod = %order.pod.uid, node = %order.pod.node, %error, "thaw failed; the pod is unusable and the revision scales up");
    }
    if let Some(load) = order.thawed(outcome.map(drop).map_err(drop), started.elapsed()) {
        hub.poke(load);
    }
}

#[derive(Clone, Copy)]
enum Operation {
    Freeze,
    Thaw,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Operation::Freeze => "freeze",
            Operation::Thaw => "thaw",
        }
    }

    fn timeout(self) -> Duration {
        match self {
            Operation::Freeze => FREEZE_TIMEOUT,
            Operation::Thaw => THAW_TIMEOUT,
        }
    }
}

/// The agent's answer to a freeze or thaw.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    mark: Option<String>,
}

/// A pooled HTTP/1.1 client to the agents: a thaw reuses an open connection instead of paying a connect.
struct AgentClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    access: AgentAccess,
    token: Mutex<Option<(Instant, Arc<str>)>>,
}

impl AgentClient {
    fn new(access: AgentAccess) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(THAW_TIMEOUT));
        AgentClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            access,
            token: Mutex::new(None),
        }
    }

    /// The token, read again once it is older than `TOKEN_REREAD`.
    fn token(&self) -> Result<Arc<str>, String> {
        let mut cached = self.token.lock();
        if let Some((read, token)) = cached.as_ref()
            && read.elapsed() < TOKEN_REREAD
        {
            return Ok(token.clone());
        }
        let text = std::fs::read_to_string(&self.access.token_file)
            .map_err(|e| format!("reading the token {}: {e}", self.access.token_file.display()))?;
        let token: Arc<str> = Arc::from(text.trim());
        *cached = Some((Instant::now(), token.clone()));
        Ok(token)
    }

    async fn call(&self, registry: &Registry, order: &FreezeOrder, operation: Operation) -> Result<Answer, String> {
        let agent = registry
            .node_agents()
            .on(&order.pod.node)
            .ok_or_else(|| format!("no node agent is ready on node {}", order.pod.node))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{agent}/v1/pods/{}/{}", order.pod.uid, operation.path()))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token()?))
            .header(header::USER_AGENT, "runway-activator")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body.to_bytes()))
        };
        let (status, body) = tokio::time::timeout(operation.timeout(), exchange)
            .await
            .map_err(|_| format!("the agent at {agent} did not answer within {:?}", operation.timeout()))??;
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("the agent at {agent} answered {status}: {}", text.trim()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("the agent at {agent} answered {e}"))
    }
}
