//! The binaries' span export (runway-api's telemetry setup) against the suite's OTLP receiver, without a cluster:
//! spans arrive with the trace and parent of the request's `traceparent`, sampling follows the parent's decision,
//! and without an endpoint there is no tracer.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderMap;
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use runway_api::telemetry::{self, Origin, Telemetry, TraceArgs};
use runway_tests::otlp::Receiver;

const SAMPLED_PARENT: (&str, &str) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
const UNSAMPLED_PARENT: (&str, &str) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");

fn origin() -> Origin {
    Origin {
        service: "runway-test",
        version: "1.2.3",
        pod_name: Some("pod-a".into()),
        namespace: Some("ns-a".into()),
    }
}

fn tracing_to(receiver: &Receiver, ratio: f64) -> Telemetry {
    let args = TraceArgs {
        otlp_endpoint: Some(receiver.endpoint([127, 0, 0, 1].into())),
        trace_sampling_ratio: ratio,
    };
    args.init(&origin()).unwrap()
}

/// Headers carrying `traceparent` for `(trace, span)`, with the sampled flag or not.
fn traceparent((trace, span): (&str, &str), sampled: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let flags = if sampled { "01" } else { "00" };
    headers.insert("traceparent", format!("00-{trace}-{span}-{flags}").parse().unwrap());
    headers
}

/// Starts and ends a span `name` under the context of `headers`, with an attribute and an event; returns the
/// `traceparent` it passes on.
fn request_span(telemetry: &Telemetry, name: &'static str, headers: &HeaderMap) -> Option<String> {
    let tracer = telemetry.tracer().expect("tracing is on");
    let parent = telemetry::extract(headers);
    let mut span = tracer.start_with_context(name, &parent);
    span.set_attribute(KeyValue::new("http.request.method", "GET"));
    span.add_event("queued", vec![KeyValue::new("queue.depth", 3)]);
    let context: Context = parent.with_span(span);
    let mut outgoing = HeaderMap::new();
    telemetry::inject(&context, &mut outgoing);
    context.span().end();
    outgoing.get("traceparent").map(|v| v.to_str().unwrap().to_owned())
}

/// Exports what is queued: shutting down waits for the export, off the runtime that serves the receiver.
async fn flush(telemetry: Telemetry) {
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();
}

#[tokio::test]
async fn spans_arrive_under_the_requests_traceparent_and_follow_its_sampling() {
    let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();

    // At ratio 0 only a sampled parent gets a span recorded.
    let never = tracing_to(&receiver, 0.0);
    let passed_on = request_span(&never, "sampled parent", &traceparent(SAMPLED_PARENT, true));
    request_span(&never, "no parent at ratio 0", &HeaderMap::new());
    flush(never).await;
    // At ratio 1 every new trace is recorded, but a parent's "not sampled" stands.
    let always = tracing_to(&receiver, 1.0);
    request_span(&always, "unsampled parent", &traceparent(UNSAMPLED_PARENT, false));
    request_span(&always, "no parent at ratio 1", &HeaderMap::new());
    flush(always).await;

    let trace = receiver
        .wait_for_trace(SAMPLED_PARENT.0, Duration::from_secs(10), |spans| !spans.is_empty())
        .await
        .unwrap();
    let [span] = &trace[..] else {
        panic!("one span in the trace: {trace:?}");
    };
    assert_eq!(span.name, "sampled parent");
    assert_eq!(span.trace_id, SAMPLED_PARENT.0);
    assert_eq!(span.parent_span_id.as_deref(), Some(SAMPLED_PARENT.1));
    assert_eq!(span.service(), "runway-test");
    assert_eq!(span.resource["service.version"], "1.2.3");
    assert_eq!(span.resource["k8s.pod.name"], "pod-a");
    assert_eq!(span.resource["k8s.namespace.name"], "ns-a");
    assert_eq!(span.attributes["http.request.method"], "GET");
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "queued");
    assert_eq!(span.events[0].attributes["queue.depth"], "3");
    assert!(
        span.start_unix_nanos > 0 && span.start_unix_nanos <= span.end_unix_nanos,
        "{span:?}"
    );
    // The next hop gets this span as its parent, in the same trace, sampled.
    let expected = format!("00-{}-{}-01", span.trace_id, span.span_id);
    assert_eq!(passed_on, Some(expected));

    // Both exporters were flushed: what is not here was not recorded.
    let names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["sampled parent", "no parent at ratio 1"]);
    let root = &receiver.spans()[1];
    assert_eq!(root.parent_span_id, None);
    assert_ne!(root.trace_id, SAMPLED_PARENT.0);
}

#[test]
fn without_an_endpoint_there_is_no_tracer() {
    for endpoint in [None, Some(String::new())] {
        let args = TraceArgs {
            otlp_endpoint: endpoint,
            trace_sampling_ratio: 1.0,
        };
        assert!(args.init(&origin()).unwrap().tracer().is_none());
    }
}
