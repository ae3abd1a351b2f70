//! The admin port the operator and the node agent share: /healthz, /readyz and /metrics over HTTP/1.1 or h2c,
//! without authentication, and the shutdown signal both wait for. (The activator has its own, with the load stream
//! and the handoff's questions.)

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

/// What /readyz answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady,
}

/// The OpenMetrics text's content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Answers one admin request: /healthz always, /readyz by `readiness`, /metrics with the text `metrics` encodes.
pub fn respond(path: &str, readiness: Readiness, metrics: impl FnOnce() -> String) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (path, readiness) {
        ("/healthz", _) | ("/readyz", Readiness::Ready) => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        ("/readyz", Readiness::NotReady) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".to_owned()),
        ("/metrics", _) => (StatusCode::OK, OPENMETRICS, metrics()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

/// Serves `answer` (a request's path to its response) until the task is dropped.
pub async fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(&str) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(%e, "admin accept");
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = answer(request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::warn!(%e, "admin connection");
            }
        });
    }
}

/// Returns at SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_always_readiness_as_told_metrics_and_unknown_paths() {
        for readiness in [Readiness::Ready, Readiness::NotReady] {
            assert_eq!(respond("/healthz", readiness, String::new).status(), StatusCode::OK);
        }
        assert_eq!(
            respond("/readyz", Readiness::Ready, String::new).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond("/readyz", Readiness::NotReady, String::new).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            respond("/nope", Readiness::Ready, String::new).status(),
            StatusCode::NOT_FOUND
        );
        let metrics = respond("/metrics", Readiness::NotReady, || "m 1\n".to_owned());
        assert_eq!(metrics.headers()[http::header::CONTENT_TYPE], OPENMETRICS);
    }
}
