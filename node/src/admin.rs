//! The admin HTTP server, without authentication: /healthz, /readyz (ready once the fail-safe thaw at start is
//! done, until SIGTERM) and /metrics, on runway-api's admin port.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use runway_api::admin::{self, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::Phase;
use crate::metrics::Metrics;

/// Answers one admin request.
pub fn respond(path: &str, phase: Phase, metrics: &Metrics) -> Response<Full<Bytes>> {
    let readiness = match phase {
        Phase::Serving => Readiness::Ready,
        Phase::Starting | Phase::Stopping => Readiness::NotReady,
    };
    admin::respond(path, readiness, || metrics.encode())
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, phase: watch::Receiver<Phase>) {
    admin::serve(listener, move |path| respond(path, *phase.borrow(), &metrics)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn ready_only_while_serving_and_healthy_throughout() {
        let metrics = Metrics::default();
        for phase in [Phase::Starting, Phase::Serving, Phase::Stopping] {
            assert_eq!(respond("/healthz", phase, &metrics).status(), StatusCode::OK);
            let ready = respond("/readyz", phase, &metrics).status();
            assert_eq!(ready == StatusCode::OK, phase == Phase::Serving, "{phase:?}");
        }
        assert_eq!(
            respond("/nope", Phase::Serving, &metrics).status(),
            StatusCode::NOT_FOUND
        );
        let body = format!("{:?}", respond("/metrics", Phase::Starting, &metrics).into_body());
        assert!(body.contains("runway_node_frozen_pods 0"), "{body}");
    }
}
