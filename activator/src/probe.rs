//! Readiness probes of new pods, so that a cold start does not wait for the kubelet's probe period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::pod::ProbeKind;
use crate::service::{ProbeRequest, ServiceHandle};

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Pause between attempts.
    pub interval: Duration,
    /// Bound on one attempt.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
        }
    }
}

/// Probes the pod until it answers or no longer needs probing (routable through Kubernetes, gone, terminating).
pub fn spawn(service: Arc<ServiceHandle>, request: ProbeRequest, config: ProbeConfig) {
    tokio::spawn(async move {
        while let Some(kind) = service.probe_plan(request.id) {
            let ready = tokio::time::timeout(config.timeout, probe_once(request.addr, &kind))
                .await
                .unwrap_or(false);
            if ready {
                tracing::debug!(service = %service.key, pod = %request.addr, "probe succeeded");
                service.probe_succeeded(request.id);
                return;
            }
            tokio::time::sleep(config.interval).await;
        }
    });
}

/// One attempt: a TCP connect, or an HTTP GET that must answer 2xx or 3xx.
async fn probe_once(addr: SocketAddr, kind: &ProbeKind) -> bool {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let ProbeKind::Http(path) = kind else {
        return true;
    };
    get_status(stream, addr, path, "runway-activator-probe")
        .await
        .is_some_and(|status| status.is_success() || status.is_redirection())
}

/// The status of one HTTP/1.1 GET of `path` on a connected `stream` to `addr`; `None` when there is no answer.
pub async fn get_status(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    user_agent: &'static str,
) -> Option<StatusCode> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, user_agent)
        .body(Empty::<Bytes>::new())
        .ok()?;
    Some(sender.send_request(request).await.ok()?.status())
}
