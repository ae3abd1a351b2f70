//! What the activator records of requests, end to end on loopback: request IDs, access log lines (with their
//! sampling, per Service and by default), the cold-start and queue metrics, and a cold start's spans.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use parking_lot::Mutex;
use runway_activator::app::Activator;
use runway_activator::model::{AccessLogShare, EndpointState, ServiceTraffic};

const LONG: Duration = Duration::from_secs(30);

/// The access log's output, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The JSON lines written so far.
    fn json(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock())
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Waits until `count` lines were written, and returns them.
    async fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.json();
            if lines.len() >= count {
                return lines;
            }
            assert!(Instant::now() < deadline, "expected {count} lines, got {lines:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An activator logging every request (`default` percent) to the returned lines.
async fn logging_activator(default: i64) -> (Activator, Lines) {
    let lines = Lines::default();
    let mut options = options(IpAddr::from([127, 0, 0, 1]));
    options.access_log.default = AccessLogShare::percent(default).unwrap();
    let activator = Activator::start_logging_to(options, lines.clone()).await.unwrap();
    (activator, lines)
}

/// A pod that answers with the request ID it got and the size of the body it read.
async fn echo_pod() -> std::net::SocketAddr {
    backend(|request: Request<hyper::body::Incoming>| async move {
        let id = request
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(Full::new(Bytes::from(format!(
            "id={} read={}",
            id.unwrap_or_default(),
            body.len()
        ))))
    })
    .await
}

fn with_service_share(percent: Option<i64>) -> ServiceTraffic {
    ServiceTraffic {
        access_log: percent.map(|p| AccessLogShare::percent(p).unwrap()),
        ..traffic(&[(REVISION, 100)], &[])
    }
}

#[tokio::test]
async fn a_request_keeps_its_id_and_gets_one_access_log_line() {
    let (activator, lines) = logging_activator(100).await;
    route(&activator, 0, LONG, &[echo_pod().await]);
    let request = Request::post(format!("http://{}/greet?secret=1", activator.proxy_addr))
        .header("host", HOST)
        .header("x-request-id", "client-chosen-1")
        .header("user-agent", "observe-test/1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let (status, headers, body) = send(&client(), request).await;
    assert_eq!(status, 200);
    assert_eq!(body, "id=client-chosen-1 read=5");
    assert_eq!(headers["x-request-id"], "client-chosen-1");
    let lines = lines.wait_for(1).await;
    let line = &lines[0];
    assert_eq!(line["request_id"], "client-chosen-1", "{line}");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/greet", "the query is not logged: {line}");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["bytes_out"], body.len());
    assert_eq!(line["revision"], REVISION);
    assert_eq!(line["service"], "hello");
    assert_eq!(line["namespace"], "default");
    assert_eq!(line["user_agent"], "observe-test/1");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["entry"], "external");
    assert_eq!(line["via"], "client");
    assert_eq!(line["cold_start"], false);
    assert!(
        line["pod"].as_str().is_some_and(|pod| pod.starts_with("127.0.0.1:")),
        "{line}"
    );
    assert!(line["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");
}

#[tokio::test]
async fn a_request_without_an_id_gets_one_that_the_app_and_the_client_both_see() {
    let (activator, lines) = logging_activator(100).await;
    route(&activator, 0, LONG, &[echo_pod().await]);
    let (_, headers, body) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(body, format!("id={id} read=0"));
    // Unknown hosts are logged too, without a revision.
    let (_, headers, _) = send(&client(), get(activator.proxy_addr, "nope.default.example.com", "/")).await;
    assert!(headers.contains_key("x-request-id"));
    let lines = lines.wait_for(2).await;
    assert_eq!(lines[0]["request_id"], id);
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["revision"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_services_share_overrides_the_default() {
    let (activator, lines) = logging_activator(0).await;
    route(&activator, 0, LONG, &[echo_pod().await]);
    send(&client(), get(activator.proxy_addr, HOST, "/off-by-default")).await;
    activator
        .registry
        .set_service(&key(), Some(with_service_share(Some(100))));
    send(&client(), get(activator.proxy_addr, HOST, "/on-for-the-service")).await;
    activator
        .registry
        .set_service(&key(), Some(with_service_share(Some(0))));
    send(&client(), get(activator.proxy_addr, HOST, "/off-for-the-service")).await;
    activator
        .registry
        .set_service(&key(), Some(with_service_share(Some(100))));
    send(&client(), get(activator.proxy_addr, HOST, "/on-again")).await;
    let lines = lines.wait_for(2).await;
    let paths: Vec<_> = lines.iter().map(|line| line["path"].clone()).collect();
    assert_eq!(paths, ["/on-for-the-service", "/on-again"]);
}

#[tokio::test]
async fn a_cold_start_is_logged_and_timed() {
    let (activator, lines) = logging_activator(100).await;
    set_settings(&activator, settings(0, LONG));
    let proxy = activator.proxy_addr;
    let waiting = tokio::spawn(async move { send(&client(), get(proxy, HOST, "/")).await });
    // The pod comes once the request waits, as a cold start's does.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric_value(&activator, "runway_activator_queue_depth{").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    activator
        .registry
        .set_endpoints(&revision(), &[ready(echo_pod().await)]);
    let (status, headers, _) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["x-runway-cold-start"], "true");
    let line = &lines.wait_for(1).await[0];
    assert_eq!(line["cold_start"], true, "{line}");
    let queued = line["queue_ms"].as_f64().unwrap();
    assert!(queued >= 100.0, "{line}");
    assert_eq!(
        metric_value(&activator, "runway_activator_cold_start_duration_seconds_count{").await,
        Some(1.0)
    );
    assert_eq!(
        metric_value(&activator, "runway_activator_queue_wait_seconds_count{").await,
        Some(1.0)
    );
    let cold = metric_value(&activator, "runway_activator_cold_start_duration_seconds_sum{")
        .await
        .unwrap();
    assert!(
        cold >= 0.1 && cold <= queued / 1000.0 + 0.01,
        "cold start {cold} s, queued {queued} ms"
    );
}

/// Spans as the SDK hands them to an exporter, kept for the test.
#[derive(Clone, Debug, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().extend(batch);
        Ok(())
    }
}

impl Collected {
    /// Waits until the span named `name` ended, and returns every span of the trace.
    async fn wait_for(&self, name: &str) -> Vec<SpanData> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let spans = self.0.lock().clone();
            if spans.iter().any(|span| span.name == name) {
                return spans;
            }
            assert!(Instant::now() < deadline, "no span {name} in {spans:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn millis(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64() * 1000.0
}

/// A cold start's trace: the activator's server span under the client's traceparent, a queue wait whose cold-start
/// steps add up to it, and a client span whose context the app got as its traceparent.
#[tokio::test]
async fn a_cold_start_is_traced_under_the_callers_trace() {
    let spans = Collected::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let mut options = options(IpAddr::from([127, 0, 0, 1]));
    options.tracer = Some(provider.tracer("test"));
    let activator = Activator::start_logging_to(options, Lines::default()).await.unwrap();
    set_settings(&activator, settings(0, LONG));
    let proxy = activator.proxy_addr;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let waiting = tokio::spawn(async move {
        let request = Request::get(format!("http://{proxy}/"))
            .header("host", HOST)
            .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
            .body(Full::default())
            .unwrap();
        send(&client(), request).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric_value(&activator, "runway_activator_queue_depth{").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The pod is listed unready first, as a starting pod is, then ready.
    let pod = backend(|request: Request<hyper::body::Incoming>| async move {
        let parent = request
            .headers()
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(Full::new(Bytes::from(parent.unwrap_or_default())))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    activator.registry.set_endpoints(
        &revision(),
        &[EndpointState {
            ready: false,
            ..ready(pod)
        }],
    );
    let (status, _, app_parent) = waiting.await.unwrap();
    assert_eq!(status, 200);
    let spans = spans.wait_for("GET").await;
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("a server span");
    assert_eq!(server.span_context.trace_id().to_string(), caller_trace);
    assert_eq!(server.parent_span_id.to_string(), caller_span);
    let child_of = |parent: &SpanData| -> Vec<&SpanData> {
        let id = parent.span_context.span_id();
        spans.iter().filter(|s| s.parent_span_id == id).collect()
    };
    let wait = *child_of(server)
        .iter()
        .find(|s| s.name == "queue wait")
        .expect("a queue wait span");
    let steps = child_of(wait);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names.first(), Some(&"scale"), "{names:?}");
    assert!(names.contains(&"pod start"), "{names:?}");
    let total: f64 = steps.iter().map(|s| millis(s.start_time, s.end_time)).sum();
    let waited = millis(wait.start_time, wait.end_time);
    assert!(
        (total - waited).abs() < 1.0,
        "steps {total} ms of a {waited} ms wait: {steps:#?}"
    );
    let attempt = *child_of(server)
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("a client span");
    assert_eq!(
        app_parent,
        format!("00-{caller_trace}-{}-01", attempt.span_context.span_id()),
        "the app's traceparent names the attempt's span"
    );
    drop(provider);
}
