//! A request's spans, when tracing is on (`--otlp-endpoint`): the activator's server span under the caller's
//! `traceparent`, a `queue wait` span with the steps of a cold start below it, and a client span per attempt to a
//! pod or peer, whose context goes on to the app in `traceparent`. Spans are built from the instants the request path
//! measures anyway, so a cold start's steps add up to its wait exactly.

use std::net::SocketAddr;
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::time::Instant;

use crate::revision::ColdStart;

/// Maps the monotonic instants the request path measures onto the wall-clock times spans carry.
#[derive(Clone, Copy)]
struct Clock {
    instant: Instant,
    system: SystemTime,
}

impl Clock {
    fn now() -> Self {
        Clock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    fn at(self, instant: Instant) -> SystemTime {
        match instant.checked_duration_since(self.instant) {
            Some(after) => self.system + after,
            None => self.system - (self.instant - instant),
        }
    }
}

/// The spans of one request.
pub struct RequestTrace {
    tracer: SdkTracer,
    /// The caller's context, with the request's server span in it.
    context: Context,
    clock: Clock,
}

impl RequestTrace {
    /// Starts the server span of a request that arrived at `arrival`, under the context of its `traceparent`.
    pub fn start(tracer: &SdkTracer, headers: &HeaderMap, method: &http::Method, path: &str, arrival: Instant) -> Self {
        let parent = runway_api::telemetry::extract(headers);
        let clock = Clock::now();
        let span = tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Server)
            .with_start_time(clock.at(arrival))
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(tracer, &parent);
        RequestTrace {
            tracer: tracer.clone(),
            context: parent.with_span(span),
            clock,
        }
    }

    /// Whether the spans are recorded (the trace is sampled): else nothing more is built for them.
    fn recording(&self) -> bool {
        self.context.span().is_recording()
    }

    /// The trace's ID, as 32 hex digits.
    pub fn trace_id(&self) -> Option<String> {
        let span_context = self.context.span().span_context().clone();
        span_context.is_valid().then(|| span_context.trace_id().to_string())
    }

    /// Adds attributes to the server span.
    pub fn describe(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if self.recording() {
            self.context.span().set_attributes(attributes);
        }
    }

    /// Records a wait for a slot from `queued` to `granted`; with the cold start it waited through, split into its
    /// steps (child spans that add up to the wait), with its events.
    pub fn queue_wait(&self, queued: Instant, granted: Instant, cold: Option<&ColdStart>) {
        if !self.recording() {
            return;
        }
        let mut wait = self
            .tracer
            .span_builder("queue wait")
            .with_kind(SpanKind::Internal)
            .with_start_time(self.clock.at(queued))
            .start_with_context(&self.tracer, &self.context);
        if let Some(cold) = cold {
            wait.set_attribute(KeyValue::new("runway.cold_start", true));
            let during = |at: Option<Instant>| at.filter(|at| (queued..=granted).contains(at));
            if let Some(at) = during(cold.pod_listed) {
                wait.add_event_with_timestamp("pod listed", self.clock.at(at), vec![]);
            }
            if let Some(at) = during(cold.routable) {
                wait.add_event_with_timestamp("pod routable", self.clock.at(at), vec![]);
            }
            let context = self.context.with_span(wait);
            for (phase, start, end) in cold.phases(queued, granted) {
                self.tracer
                    .span_builder(phase.name())
                    .with_kind(SpanKind::Internal)
                    .with_start_time(self.clock.at(start))
                    .start_with_context(&self.tracer, &context)
                    .end_with_timestamp(self.clock.at(end));
            }
            context.span().end_with_timestamp(self.clock.at(granted));
        } else {
            wait.end_with_timestamp(self.clock.at(granted));
        }
    }

    /// Starts the client span of one attempt to send the request to `backend`: its context is what the app (or the
    /// peer activator) gets as `traceparent`.
    pub fn attempt(&self, method: &http::Method, backend: SocketAddr) -> Context {
        let span = self
            .tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("network.peer.address", backend.ip().to_string()),
                KeyValue::new("network.peer.port", i64::from(backend.port())),
            ])
            .start_with_context(&self.tracer, &self.context);
        self.context.with_span(span)
    }

    /// Ends an attempt's span when its response head arrived (`status`) or it failed (`None`).
    pub fn attempt_ended(attempt: &Context, status: Option<u16>) {
        let span = attempt.span();
        match status {
            Some(status) => {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
                if status >= 500 {
                    span.set_status(Status::error(""));
                }
            }
            None => span.set_status(Status::error("no response")),
        }
        span.end();
    }

    /// Ends the server span once the response was sent (or the client left) with `status`.
    pub fn end(self, status: u16) {
        let span = self.context.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        // A server span is an error only for 5xx: a 4xx is the client's (OpenTelemetry's HTTP conventions).
        if status >= 500 {
            span.set_status(Status::error(""));
        }
        span.end();
    }
}
