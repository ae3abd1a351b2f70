//! Helpers for the activator's integration tests: activators, backends and clients on loopback.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
pub use hyper_util::rt::{TokioExecutor, TokioIo};
use runway_activator::app::{AccessLogSettings, Activator, Options};
use runway_activator::control::ProbeConfig;
use runway_activator::model::{
    AccessLogShare, EndpointState, FastProbe, Idle, RevisionId, RevisionSettings, ServiceTraffic,
};
use runway_activator::serve::ConnectionLimits;
use runway_api::ServiceKey;
use runway_api::logging::LogFormat;
use tokio::net::{TcpListener, TcpStream};

pub const HOST: &str = "hello.default.example.com";

pub fn key() -> ServiceKey {
    ServiceKey::new("default", "hello")
}

/// The test Service's only revision.
pub const REVISION: &str = "hello-00001";

pub fn revision() -> RevisionId {
    RevisionId::new("default", "hello", REVISION)
}

/// A routing table: `split` as (revision, percent), `tags` as (tag, revision).
pub fn traffic(split: &[(&str, u32)], tags: &[(&str, &str)]) -> ServiceTraffic {
    ServiceTraffic {
        visibility: runway_api::Visibility::External,
        invokers: runway_api::Invokers::Anyone,
        access_log: None,
        split: split.iter().map(|(r, p)| ((*r).to_owned(), *p)).collect(),
        tags: tags.iter().map(|(t, r)| ((*t).to_owned(), (*r).to_owned())).collect(),
    }
}

/// Installs the test Service, all of whose requests go to its revision, with the revision's settings.
pub fn set_settings(activator: &Activator, settings: Option<RevisionSettings>) {
    activator
        .registry
        .set_service(&key(), Some(traffic(&[(REVISION, 100)], &[])));
    activator.registry.set_revision(&revision(), settings);
}

pub fn options(ip: IpAddr) -> Options {
    Options {
        listen: SocketAddr::new(ip, 0),
        internal_listen: SocketAddr::new(ip, 0),
        admin_listen: SocketAddr::new(ip, 0),
        domain: "example.com".into(),
        queue_depth: 10_000,
        pod_name: format!("activator-{ip}"),
        pod_ip: ip,
        drain_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(5),
        limits: ConnectionLimits {
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1_000,
            max_concurrent_streams: 100,
            h2_keepalive: Duration::from_secs(20),
        },
        request_budget_bytes: 16 << 20,
        tunnel_idle_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Duration::from_secs(1),
        trusted_proxies: Default::default(),
        probe: ProbeConfig::default(),
        workers: 1,
        access: Default::default(),
        api: None,
        // Off: the loopback tests that read the access log turn it on.
        access_log: AccessLogSettings {
            format: LogFormat::Json,
            default: AccessLogShare::percent(0).unwrap(),
        },
        tracer: None,
        node_agents: None,
    }
}

pub async fn activator() -> Activator {
    Activator::start(options(IpAddr::from([127, 0, 0, 1]))).await.unwrap()
}

pub fn settings(cc: u32, timeout: Duration) -> Option<RevisionSettings> {
    Some(RevisionSettings {
        container_concurrency: cc,
        timeout,
        fast_probe: FastProbe::Tcp,
        failure: None,
        idle: Idle::Stop,
    })
}

pub fn ready(addr: SocketAddr) -> EndpointState {
    EndpointState {
        addr,
        h2c: false,
        ready: true,
        terminating: false,
        pod: None,
    }
}

/// A backend on loopback serving HTTP/1.1 and h2c with `handler`.
pub async fn backend<F, Fut, B>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A backend answering 200 with `hello` after `delay`.
pub async fn hello_backend(delay: Duration) -> SocketAddr {
    backend(move |_request| async move {
        tokio::time::sleep(delay).await;
        Response::new(Full::new(Bytes::from_static(b"hello")))
    })
    .await
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// GET `path` through the activator at `proxy` for `host`.
pub fn get(proxy: SocketAddr, host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{proxy}{path}"))
        .header(http::header::HOST, host)
        .body(Full::default())
        .unwrap()
}

/// Sends the request; status, headers and the whole body.
pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

/// Installs the test Service with the given pods.
pub fn route(activator: &Activator, cc: u32, timeout: Duration, pods: &[SocketAddr]) {
    set_settings(activator, settings(cc, timeout));
    let endpoints: Vec<EndpointState> = pods.iter().map(|addr| ready(*addr)).collect();
    activator.registry.set_endpoints(&revision(), &endpoints);
}

/// A loopback port with nothing listening.
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Tracks overlapping requests: a cc=1 app that fails when it sees two at once.
#[derive(Default)]
pub struct OverlapDetector {
    pub in_flight: std::sync::atomic::AtomicU32,
    pub overlaps: std::sync::atomic::AtomicU32,
    pub served: std::sync::atomic::AtomicU32,
}

/// A cc=1 app that works `work` per request (`?ms=N` overrides it) and answers 500 to overlapping requests.
pub async fn single_request_backend(detector: Arc<OverlapDetector>, work: Duration) -> SocketAddr {
    use std::sync::atomic::Ordering::SeqCst;
    backend(move |request: Request<Incoming>| {
        let detector = detector.clone();
        let work = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|ms| ms.parse().ok())
            .map_or(work, Duration::from_millis);
        async move {
            let overlapped = detector.in_flight.fetch_add(1, SeqCst) > 0;
            tokio::time::sleep(work).await;
            detector.in_flight.fetch_sub(1, SeqCst);
            detector.served.fetch_add(1, SeqCst);
            if overlapped {
                detector.overlaps.fetch_add(1, SeqCst);
                let mut response = Response::new(Full::new(Bytes::from_static(b"overlap")));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            } else {
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        }
    })
    .await
}

/// A GET for the test Service over HTTP/2, where the host travels as `:authority`.
pub fn h2c_get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{HOST}{path}"))
        .body(Full::default())
        .unwrap()
}

/// An HTTP/2 prior-knowledge connection to `proxy`, as `curl --http2-prior-knowledge` opens.
pub async fn h2c_connection(proxy: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// The value of the first series of the activator's `/metrics` whose line starts with `series`, if there is one.
pub async fn metric_value(activator: &Activator, series: &str) -> Option<f64> {
    let request = Request::get(format!("http://{}/metrics", activator.admin_addr))
        .body(Full::default())
        .unwrap();
    let (_, _, text) = send(&client(), request).await;
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
