//! The freeze/thaw API (HTTP/1.1): `POST /v1/pods/{uid}/freeze` and `POST /v1/pods/{uid}/thaw`, for the
//! activator. Every request is authenticated first (`auth.rs`); every answer is JSON.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::agent::{Agent, OpError};
use crate::auth::{Authenticator, Decision};
use crate::cgroup::PodUid;

/// Where the agent is in its life: the API answers 503 but while serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The pod cache is not listed yet, or the fail-safe thaw has not finished.
    Starting,
    Serving,
    /// SIGTERM: the agent thaws what it froze and exits.
    Stopping,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Freeze(PodUid),
    Thaw(PodUid),
    /// 404 with the reason.
    NotFound(String),
    MethodNotAllowed,
}

/// Reads a request's method and path.
pub fn route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v1/pods/") else {
        return Route::NotFound(format!("no such path: {path}"));
    };
    let Some((uid, action)) = rest.split_once('/') else {
        return Route::NotFound(format!("no such path: {path}"));
    };
    if action != "freeze" && action != "thaw" {
        return Route::NotFound(format!("no such path: {path}"));
    }
    if method != Method::POST {
        return Route::MethodNotAllowed;
    }
    match (PodUid::parse(uid), action) {
        (Err(e), _) => Route::NotFound(e),
        (Ok(uid), "freeze") => Route::Freeze(uid),
        (Ok(uid), _) => Route::Thaw(uid),
    }
}

/// What the API needs to answer.
pub struct Api {
    pub agent: Arc<Agent>,
    pub auth: Arc<Authenticator>,
    pub phase: watch::Receiver<Phase>,
}

impl Api {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match self.auth.check(request.headers()).await {
            Ok(Decision::Allowed) => {}
            Ok(Decision::Unauthenticated) => return error(StatusCode::UNAUTHORIZED, "a valid bearer token is needed"),
            Ok(Decision::Forbidden) => return error(StatusCode::FORBIDDEN, "this identity may not freeze pods"),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
        }
        let route = route(request.method(), request.uri().path());
        let phase = *self.phase.borrow();
        match (route, phase) {
            (Route::NotFound(why), _) => error(StatusCode::NOT_FOUND, &why),
            (Route::MethodNotAllowed, _) => error(StatusCode::METHOD_NOT_ALLOWED, "only POST"),
            (_, Phase::Starting) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: the pod cache is not listed yet",
            ),
            (_, Phase::Stopping) => error(StatusCode::SERVICE_UNAVAILABLE, "stopping"),
            (Route::Freeze(uid), Phase::Serving) => match self.agent.freeze(&uid).await {
                Ok(mark) => ok(json!({"state": "Frozen", "mark": mark.to_string()})),
                Err(e) => failed(&e),
            },
            (Route::Thaw(uid), Phase::Serving) => match self.agent.thaw(&uid).await {
                Ok(()) => ok(json!({"state": "Thawed"})),
                Err(e) => failed(&e),
            },
        }
    }
}

fn ok(body: serde_json::Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, body)
}

fn failed(failure: &OpError) -> Response<Full<Bytes>> {
    let status = match failure {
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::Cgroup(_) | OpError::Mark(_) => {
            warn!(error = %failure, "operation failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &failure.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, json!({"error": message}))
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static headers are valid")
}

/// Serves until `stop` fires, then lets requests in flight finish, at most `drain`.
pub async fn serve(listener: TcpListener, api: Arc<Api>, stop: impl Future<Output = ()>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(%e, "API accept");
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let api = api.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.answer(request).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%e, %peer, "API connection");
            }
        });
    }
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        warn!(?drain, "API requests still in flight at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0c3a5b9e-7d1f-4f2a-9b8c-1d2e3f4a5b6c";

    #[test]
    fn freeze_and_thaw_are_posts_to_a_pods_path() {
        let uid = PodUid::parse(UID).unwrap();
        assert_eq!(
            route(&Method::POST, &format!("/v1/pods/{UID}/freeze")),
            Route::Freeze(uid.clone())
        );
        assert_eq!(route(&Method::POST, &format!("/v1/pods/{UID}/thaw")), Route::Thaw(uid));
        assert_eq!(
            route(&Method::GET, &format!("/v1/pods/{UID}/thaw")),
            Route::MethodNotAllowed
        );
    }

    #[test]
    fn other_paths_and_bad_uids_are_not_found() {
        for path in [
            "/",
            "/v1/pods",
            "/v1/pods/x",
            &format!("/v1/pods/{UID}/kill"),
            &format!("/v2/pods/{UID}/thaw"),
        ] {
            assert!(matches!(route(&Method::POST, path), Route::NotFound(_)), "{path}");
        }
        let Route::NotFound(why) = route(&Method::POST, "/v1/pods/..%2F/freeze") else {
            panic!("a bad uid is not found");
        };
        assert!(why.contains("not a pod uid"), "{why}");
    }

    #[test]
    fn errors_are_json_with_their_status() {
        let response = failed(&OpError::NotFound("pod x is not a Runway pod on this node".into()));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/json");
        let response = failed(&OpError::Cgroup("freezing pod x: timed out".into()));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = format!("{:?}", response.into_body());
        assert!(body.contains("freezing pod x"), "{body}");
    }
}
