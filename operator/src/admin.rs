//! The admin HTTP server: /healthz, /readyz and /metrics (runway-api's admin port; the operator is ready once
//! started, leading or not).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use runway_api::admin::{self, Readiness};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Answers one admin request.
pub(crate) fn respond(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    admin::respond(path, Readiness::Ready, || metrics.encode())
}

/// Serves until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    admin::serve(listener, move |path| respond(path, &metrics)).await;
}

/// Binds the admin address.
pub(crate) async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn health_metrics_and_unknown_paths() {
        let metrics = Metrics::default();
        metrics.leader.set(1);
        assert_eq!(respond("/healthz", &metrics).status(), StatusCode::OK);
        assert_eq!(respond("/readyz", &metrics).status(), StatusCode::OK);
        assert_eq!(respond("/nope", &metrics).status(), StatusCode::NOT_FOUND);
        let body = format!("{:?}", respond("/metrics", &metrics).into_body());
        assert!(body.contains("runway_operator_leader 1"), "{body}");
    }
}
