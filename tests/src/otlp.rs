//! A trace receiver for the suites: a minimal OTLP/HTTP server that keeps the spans it is sent, in memory, for a test
//! to read back by trace id.
//!
//! Why our own and not the OpenTelemetry Collector: the Collector is a Go program that we would build from source
//! (there is no Debian package, and the test bed has no Docker to pull its image), which adds minutes to CI's first
//! run, and it would then need an exporter and a file or backend to read the spans back from. A test only needs the
//! spans that arrived, so this server takes what Runway's exporters send (POST /v1/traces, protobuf, uncompressed),
//! decodes it with the OTLP crate the exporter already builds (`opentelemetry-proto`), and answers as OTLP says (200
//! with an empty `ExportTraceServiceResponse`). OTLP/JSON is refused (415): no exporter of ours sends it, and
//! decoding it would need the proto crate's serde feature, one more dependency and a longer build.
//!
//! Pods reach it on the host running the tests: [`Receiver::start_for_pods`] listens on every interface at
//! [`TEST_BED_PORT`], and [`Receiver::endpoint_for_pods`] gives the URL for the chart's `tracing.otlpEndpoint`. The
//! port is fixed, so that the endpoint a test installs stays the same from run to run and installing it again rolls
//! nothing out.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::release::Release;
use crate::wait::wait_until;

/// OTLP/HTTP's usual port, where the suites' receiver listens for pods.
pub const TEST_BED_PORT: u16 = 4318;
/// Where OTLP/HTTP takes spans.
const TRACES_PATH: &str = "/v1/traces";
/// OTLP/HTTP's binary encoding.
const PROTOBUF: &str = "application/x-protobuf";
/// Overrides the address pods reach the test host at (kind with Docker: the kind network's gateway).
pub const HOST_ADDRESS_ENV: &str = "RUNWAY_TEST_HOST_ADDRESS";

/// A span as received. Ids are lowercase hex, as in `traceparent`; attribute values are rendered as text (a string
/// as it is, a number or a bool as written, an array as `[a, b]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The sender's resource attributes: `service.name`, `k8s.pod.name`, ...
    pub resource: BTreeMap<String, String>,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// `None` for the root of a trace.
    pub parent_span_id: Option<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<ReceivedEvent>,
}

impl ReceivedSpan {
    /// The sender's `service.name`.
    pub fn service(&self) -> &str {
        self.resource.get("service.name").map_or("", String::as_str)
    }
}

/// An event of a [`ReceivedSpan`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEvent {
    pub name: String,
    pub unix_nanos: u64,
    pub attributes: BTreeMap<String, String>,
}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    address: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Listens on `bind` (port 0: any free one) and serves until dropped.
    pub async fn start(bind: SocketAddr) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the OTLP receiver to {bind}"))?;
        let address = listener.local_addr()?;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(serve(listener, spans.clone()));
        Ok(Receiver { address, spans, server })
    }

    /// Listens on every interface, at [`TEST_BED_PORT`], for pods of the cluster to send to.
    pub async fn start_for_pods() -> anyhow::Result<Receiver> {
        Receiver::start(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), TEST_BED_PORT)).await
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Its OTLP/HTTP base URL at `host` (`http://host:port`), for `--otlp-endpoint`.
    pub fn endpoint(&self, host: IpAddr) -> String {
        format!("http://{}", SocketAddr::new(host, self.address.port()))
    }

    /// Its base URL as pods reach it: at [`host_address_for_pods`].
    pub fn endpoint_for_pods(&self) -> anyhow::Result<String> {
        Ok(self.endpoint(host_address_for_pods()?))
    }

    /// Every span received so far, in order of arrival.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the spans received of trace `trace_id` (hex) satisfy `complete` (e.g. hold the spans a test
    /// expects), and returns them. Spans come in batches, a few seconds apart; on timeout the error lists every span
    /// received, of all traces.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        complete: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedSpan>> {
        let trace_id = trace_id.to_ascii_lowercase();
        let found = wait_until(format!("the spans of trace {trace_id}"), timeout, || {
            let all = self.spans();
            let trace: Vec<ReceivedSpan> = all.iter().filter(|s| s.trace_id == trace_id).cloned().collect();
            let seen = if complete(&trace) {
                Ok(trace)
            } else {
                Err(summary(&all))
            };
            std::future::ready(seen)
        })
        .await?;
        Ok(found)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The address pods reach the host running the tests at: `$RUNWAY_TEST_HOST_ADDRESS`, else the host of the
/// release's registry, which the cluster's nodes pull from this host (the local cluster's node IP, the gateway of
/// its pods' bridge; the kind network's gateway for kind under podman).
pub fn host_address_for_pods() -> anyhow::Result<IpAddr> {
    if let Ok(address) = std::env::var(HOST_ADDRESS_ENV) {
        return address.parse().with_context(|| format!("{HOST_ADDRESS_ENV}={address}"));
    }
    let registry = &Release::current().registry;
    registry_host(registry).with_context(|| {
        format!(
            "the release's registry {registry} is not an address pods reach this host at (kind with Docker \
             publishes it on localhost): set {HOST_ADDRESS_ENV} to one, e.g. the kind network's gateway"
        )
    })
}

/// The IP address of a registry `host[:port][/path]`, when it is one other than loopback.
fn registry_host(registry: &str) -> Option<IpAddr> {
    let host_port = registry.split('/').next()?;
    let ip = host_port
        .parse::<SocketAddr>()
        .map(|address| address.ip())
        .or_else(|_| host_port.parse::<IpAddr>())
        .ok()?;
    (!ip.is_loopback()).then_some(ip)
}

async fn serve(listener: TcpListener, spans: Arc<Mutex<Vec<ReceivedSpan>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let spans = spans.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let spans = spans.clone();
                async move { Ok::<_, Infallible>(answer(request, &spans).await) }
            });
            // A sender that goes away mid-request is no concern of the test reading spans.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Takes one export request, as an OTLP/HTTP server answers it.
async fn answer(request: Request<Incoming>, spans: &Mutex<Vec<ReceivedSpan>>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST || request.uri().path() != TRACES_PATH {
        return plain(StatusCode::NOT_FOUND, "only POST /v1/traces");
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let encoded = request.headers().get(header::CONTENT_ENCODING).is_some();
    if content_type != Some(PROTOBUF) || encoded {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only uncompressed application/x-protobuf",
        );
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let export = match ExportTraceServiceRequest::decode(body) {
        Ok(export) => export,
        Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    spans.lock().unwrap().extend(received(export));
    let mut response = Response::new(Full::new(ExportTraceServiceResponse::default().encode_to_vec().into()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(PROTOBUF));
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

/// The spans of an export request, each with its sender's resource.
fn received(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = vec![];
    for resource_spans in export.resource_spans {
        let resource = attributes(resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
        for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
            out.push(ReceivedSpan {
                resource: resource.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                start_unix_nanos: span.start_time_unix_nano,
                end_unix_nanos: span.end_time_unix_nano,
                attributes: attributes(span.attributes),
                events: span
                    .events
                    .into_iter()
                    .map(|event| ReceivedEvent {
                        name: event.name,
                        unix_nanos: event.time_unix_nano,
                        attributes: attributes(event.attributes),
                    })
                    .collect(),
            });
        }
    }
    out
}

fn attributes(list: Vec<KeyValue>) -> BTreeMap<String, String> {
    list.into_iter()
        .map(|kv| (kv.key, kv.value.as_ref().map(text).unwrap_or_default()))
        .collect()
}

/// An attribute value as text.
fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex(bytes),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(text).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = attributes(list.values.clone())
                .into_iter()
                .map(|(key, value)| format!("{key}: {value}"))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a timed-out wait saw: every span, one per line.
fn summary(spans: &[ReceivedSpan]) -> String {
    if spans.is_empty() {
        return "no spans at all".into();
    }
    let lines: Vec<String> = spans
        .iter()
        .map(|s| {
            let parent = s.parent_span_id.as_deref().unwrap_or("root");
            format!(
                "trace {} span {} (parent {parent}) {}: {:?} {:?}",
                s.trace_id,
                s.span_id,
                s.service(),
                s.name,
                s.attributes
            )
        })
        .collect();
    format!("{} spans:\n{}", spans.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_registry_address_is_where_pods_reach_this_host() {
        assert_eq!(registry_host("10.88.0.1:5000"), Some([10, 88, 0, 1].into()));
        assert_eq!(registry_host("10.213.1.1:5001/runway"), Some([10, 213, 1, 1].into()));
        assert_eq!(registry_host("[fd00::1]:5000"), "fd00::1".parse().ok());
        assert_eq!(registry_host("localhost:5001"), None);
        assert_eq!(registry_host("127.0.0.1:5001"), None);
        assert_eq!(registry_host("ghcr.io/acme"), None);
    }

    #[tokio::test]
    async fn other_paths_and_encodings_are_refused_and_nothing_is_kept() {
        let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = receiver.endpoint([127, 0, 0, 1].into());
        let post = |path: &str, content_type: &str, body: &'static [u8]| {
            Request::post(format!("{url}{path}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from_static(body)))
                .unwrap()
        };
        let timeout = Duration::from_secs(5);
        let json = crate::http::send(post(TRACES_PATH, "application/json", b"{}"), timeout)
            .await
            .unwrap();
        assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let metrics = crate::http::send(post("/v1/metrics", PROTOBUF, b""), timeout)
            .await
            .unwrap();
        assert_eq!(metrics.status, StatusCode::NOT_FOUND);
        let garbage = crate::http::send(post(TRACES_PATH, PROTOBUF, b"\xff\xff"), timeout)
            .await
            .unwrap();
        assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
        let empty = crate::http::send(post(TRACES_PATH, PROTOBUF, b""), timeout)
            .await
            .unwrap();
        assert_eq!(empty.status, StatusCode::OK);
        assert!(receiver.spans().is_empty());
        let error = receiver
            .wait_for_trace("00", Duration::from_millis(300), |spans| !spans.is_empty())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no spans at all"), "{error}");
    }
}
