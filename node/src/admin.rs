//! The admin HTTP server, without authentication: /healthz, /readyz (ready once the fail-safe thaw at start is
//! done, until SIGTERM) and /metrics.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::api::Phase;
use crate::metrics::Metrics;

/// Answers one admin request.
pub fn respond(path: &str, phase: Phase, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (path, phase) {
        ("/healthz", _) | ("/readyz", Phase::Serving) => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        ("/readyz", _) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".to_owned()),
        ("/metrics", _) => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, phase: watch::Receiver<Phase>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(%e, "admin accept");
                continue;
            }
        };
        let (metrics, phase) = (metrics.clone(), phase.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(request.uri().path(), *phase.borrow(), &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                warn!(%e, "admin connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
