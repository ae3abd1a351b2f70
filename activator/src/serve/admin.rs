//! The admin port: the load stream for the autoscaler, Prometheus metrics, liveness and readiness.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use runway_api::stats::{LOAD_STREAM_CONTENT_TYPE, LOAD_STREAM_PATH};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::control::handoff::{self, HANDOFF_PATH};
use crate::control::reports::LoadHub;
use crate::revision::Metrics;
use crate::route::Registry;
use crate::serve::respond;
use crate::serve::threads::run_on_own_thread;

/// Readiness: ready once the routing data is synced, unready again while draining.
#[derive(Default)]
pub struct Health {
    synced: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct Admin {
    /// For the slot handoff questions of the other activators.
    pub registry: Arc<Registry>,
    pub hub: Arc<LoadHub>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

type AdminBody = BoxBody<Bytes, Infallible>;

/// Time an admin client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections at once: the autoscaler's streams, probes and scrapes need a handful.
const MAX_CONNECTIONS: usize = 64;

/// The admin port runs on a thread and scheduler of its own, so that however busy the data port is, liveness and
/// readiness answer and the autoscaler's load stream flows. Stops when dropped.
pub struct AdminServer {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts serving the admin endpoints on `listener` (bound, not yet registered with a runtime).
pub fn spawn(listener: std::net::TcpListener, admin: Admin) -> anyhow::Result<AdminServer> {
    listener.set_nonblocking(true)?;
    let (stop, stopped) = oneshot::channel();
    run_on_own_thread("admin", move || async move {
        let Ok(listener) = TcpListener::from_std(listener) else {
            tracing::error!("admin listener unusable");
            return;
        };
        tokio::select! {
            () = serve(listener, admin) => {}
            _ = stopped => {}
        }
    })?;
    Ok(AdminServer { stop: Some(stop) })
}

async fn serve(listener: TcpListener, admin: Admin) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let admin = admin.clone();
        let service = service_fn(move |request| {
            let admin = admin.clone();
            async move { Ok::<_, Infallible>(admin.handle(&request).await) }
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}

impl Admin {
    async fn handle(&self, request: &Request<Incoming>) -> Response<AdminBody> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
        }
        match request.uri().path() {
            LOAD_STREAM_PATH => self.load_stream(),
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                response
            }
            HANDOFF_PATH => self.handoff(request.uri().query()).await,
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.health.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Another activator asks whether this one works with its list and holds within it: 200 once so, 409 if
    /// still not after a while (it asks again).
    async fn handoff(&self, query: Option<&str>) -> Response<AdminBody> {
        match handoff::parse_query(query) {
            Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
            Ok(list) if handoff::await_release(&self.registry, &list, handoff::HOLD).await => {
                text(StatusCode::OK, "released\n")
            }
            Ok(_) => text(StatusCode::CONFLICT, "not yet\n"),
        }
    }

    /// The never-ending ndjson stream of load reports: the latest at once, then every report as it is sent.
    fn load_stream(&self) -> Response<AdminBody> {
        let (first, receiver) = self.hub.subscribe();
        let rest = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(line) => return Some((line, receiver)),
                    // A slow reader misses reports rather than holding memory; the next one is complete anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let lines = futures::stream::once(async move { first })
            .chain(rest)
            .map(|line| Ok::<_, Infallible>(Frame::data(line)));
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(lines)));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(LOAD_STREAM_CONTENT_TYPE));
        response
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<AdminBody> {
    respond::text(status, body).map(BodyExt::boxed)
}
