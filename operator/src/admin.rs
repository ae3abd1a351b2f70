//! The admin HTTP server: /healthz, /readyz and /metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tracing::warn;

use crate::metrics::Metrics;

/// Answers one admin request.
pub(crate) fn respond(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" | "/readyz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/metrics" => (
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
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(%e, "admin accept");
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(request.uri().path(), &metrics);
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

/// Binds the admin address.
pub(crate) async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
