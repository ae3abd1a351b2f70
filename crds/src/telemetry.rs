//! The trace flags and OpenTelemetry setup both binaries share (feature `telemetry`): spans go to an OTLP/HTTP
//! endpoint in protobuf, sampled parent-based, and W3C `traceparent`/`tracestate` carry a trace across hops.
//!
//! Off (no endpoint), [`Telemetry::tracer`] is `None` and nothing else exists: no exporter, no thread, no queue.
//! On, finished spans go into the SDK's batch processor: a queue bounded at 2,048 spans (the SDK's default,
//! `OTEL_BSP_MAX_QUEUE_SIZE`) that a thread of its own exports in batches of up to 512 every 5 s. A full queue drops
//! the new span (logged once) and a failed export is logged and dropped: neither blocks nor fails the caller.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, Request, Response, Uri};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

/// Where OTLP/HTTP receivers take spans, below their base URL.
const TRACES_PATH: &str = "/v1/traces";
/// Bound on one export request (OTLP's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--otlp-endpoint` and `--trace-sampling-ratio`, flattened into each binary's flags.
#[derive(Args, Clone, Debug)]
pub struct TraceArgs {
    /// OTLP/HTTP base URL of a trace receiver (an OpenTelemetry Collector, Jaeger, Tempo), e.g.
    /// http://otel-collector.observability:4318; spans are sent in protobuf to its /v1/traces. Unset or empty:
    /// no tracing.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded, 0 to 1. A request whose traceparent says sampled is always recorded, one that
    /// says not sampled never.
    #[arg(long, env = "RUNWAY_TRACE_SAMPLING_RATIO", default_value_t = 0.1, value_parser = sampling_ratio)]
    pub trace_sampling_ratio: f64,
}

/// Who sends the spans: the resource attributes on each of them.
#[derive(Clone, Debug)]
pub struct Origin {
    /// `service.name`: runway-activator or runway-operator.
    pub service: &'static str,
    /// `service.version`.
    pub version: &'static str,
    /// `k8s.pod.name`, when running in a cluster.
    pub pod_name: Option<String>,
    /// `k8s.namespace.name`, when running in a cluster.
    pub namespace: Option<String>,
}

/// The tracer of a process, and the exporter behind it; dropping it (or [`Telemetry::shutdown`]) exports the spans
/// still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
}

impl TraceArgs {
    /// The OTLP endpoint's traces URL, `None` when tracing is off.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref().filter(|e| !e.is_empty())?;
        Some(format!("{}{TRACES_PATH}", base.trim_end_matches('/')))
    }

    /// Starts the exporter when there is an endpoint: a thread for the batch processor, and at the first export
    /// one for the requests.
    pub fn init(&self, origin: &Origin) -> Result<Telemetry, ExporterBuildError> {
        let Some(url) = self.traces_url() else {
            return Ok(Telemetry::off());
        };
        let client = ExportClient {
            runtime: OnceLock::new(),
            client: HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_http_client(client)
            .build()?;
        // Parent-based: a caller's sampling decision stands, so a trace is whole or absent across the hops; a trace
        // that starts here is kept at the ratio, decided from its trace id.
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(self.trace_sampling_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(origin.resource())
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer(origin.service);
        Ok(Telemetry {
            provider: Some(provider),
            tracer: Some(tracer),
        })
    }
}

impl Origin {
    /// The SDK's resource (which also reads `OTEL_RESOURCE_ATTRIBUTES`, e.g. for `deployment.environment`), with
    /// our names over it.
    fn resource(&self) -> Resource {
        let k8s = [
            ("k8s.pod.name", &self.pod_name),
            ("k8s.namespace.name", &self.namespace),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(KeyValue::new(key, value.clone()?)));
        Resource::builder()
            .with_service_name(self.service)
            .with_attribute(KeyValue::new("service.version", self.version))
            .with_attributes(k8s)
            .build()
    }
}

impl Telemetry {
    /// Tracing off: no tracer.
    pub fn off() -> Telemetry {
        Telemetry {
            provider: None,
            tracer: None,
        }
    }

    /// The tracer to start spans with; `None` when tracing is off.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.tracer.as_ref()
    }

    /// Exports the spans still queued and stops the exporter; blocks until then (at most the export timeout).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tracer = None;
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "exporting the last spans");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The trace context a request's `traceparent` and `tracestate` headers carry; with none (or a malformed one) the
/// empty context, under which a new span starts a new trace.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Sets `traceparent` (and `tracestate`, when there is one) to `context`'s span, replacing what the headers had;
/// leaves them as they are when `context` has no span.
pub fn inject(context: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

/// `--otlp-endpoint`: empty (off), or an absolute `http://` URL without query; https is refused, since the exporter
/// has no TLS (a Collector in the cluster is the usual receiver).
fn otlp_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let uri: Uri = value
        .parse()
        .map_err(|error| format!("{value:?} is not a URL ({error}): use e.g. http://otel-collector:4318"))?;
    match (uri.scheme_str(), uri.authority(), uri.query()) {
        (Some("http"), Some(_), None) => Ok(value.to_owned()),
        (Some("https"), _, _) => Err(format!(
            "{value:?}: https is not supported (no TLS in the exporter); send to a Collector over http"
        )),
        _ => Err(format!(
            "{value:?} is not an http://host[:port][/path] base URL, e.g. http://otel-collector:4318"
        )),
    }
}

/// `--trace-sampling-ratio`: a number from 0 to 1.
fn sampling_ratio(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!(
            "{value:?} is not a ratio from 0 to 1 (0.1 records one new trace in ten)"
        )),
    }
}

/// The exporter's HTTP client: hyper-util's, through opentelemetry-http, on a one-thread runtime of its own. The
/// batch processor exports from a plain thread, where hyper would find no runtime; the binaries' runtimes are not
/// used, so exports never take time from the request path, and shutting down from a runtime thread cannot wait on
/// itself.
#[derive(Debug)]
struct ExportClient {
    /// Made by the first export, on the batch processor's thread, which drops it too: a runtime dropped in an async
    /// context (an exporter that failed to build in the operator's main) would panic.
    runtime: OnceLock<tokio::runtime::Runtime>,
    client: HyperClient,
}

impl ExportClient {
    fn runtime(&self) -> std::io::Result<&tokio::runtime::Runtime> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            // Name resolution runs on the blocking pool; one request at a time needs one thread.
            .max_blocking_threads(1)
            .thread_name("otlp-export")
            .enable_io()
            .enable_time()
            .build()?;
        Ok(self.runtime.get_or_init(|| runtime))
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime()?
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        trace: TraceArgs,
    }

    fn parse(args: &[&str]) -> Result<TraceArgs, String> {
        Flags::try_parse_from([&["test"][..], args].concat())
            .map(|flags| flags.trace)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_or_with_an_empty_one() {
        for args in [&[][..], &["--otlp-endpoint="], &["--otlp-endpoint", " "]] {
            let trace = parse(args).unwrap();
            assert_eq!(trace.traces_url(), None, "{args:?}");
            assert_eq!(trace.trace_sampling_ratio, 0.1);
        }
    }

    #[test]
    fn spans_go_to_the_traces_path_of_the_endpoint() {
        for (endpoint, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("http://10.0.0.1/otlp", "http://10.0.0.1/otlp/v1/traces"),
        ] {
            let trace = parse(&["--otlp-endpoint", endpoint]).unwrap();
            assert_eq!(trace.traces_url().as_deref(), Some(url));
        }
    }

    #[test]
    fn bad_endpoints_and_ratios_are_refused_naming_the_flag() {
        for (args, says) in [
            (&["--otlp-endpoint", "collector:4318"][..], "http://host"),
            (&["--otlp-endpoint", "https://collector:4318"], "https is not supported"),
            (&["--otlp-endpoint", "http://collector:4318/?a=b"], "base URL"),
            (&["--otlp-endpoint", "http://exa mple"], "not a URL"),
            (&["--trace-sampling-ratio", "1.5"], "from 0 to 1"),
            (&["--trace-sampling-ratio=-0.1"], "from 0 to 1"),
            (&["--trace-sampling-ratio", "NaN"], "from 0 to 1"),
            (&["--trace-sampling-ratio", "a tenth"], "from 0 to 1"),
        ] {
            let error = parse(args).unwrap_err();
            let flag = args[0].split('=').next().unwrap();
            assert!(error.contains(flag) && error.contains(says), "{args:?}: {error}");
        }
        assert_eq!(
            parse(&["--trace-sampling-ratio", "0"]).unwrap().trace_sampling_ratio,
            0.0
        );
        assert_eq!(
            parse(&["--trace-sampling-ratio", "1"]).unwrap().trace_sampling_ratio,
            1.0
        );
    }

    #[test]
    fn a_context_extracted_from_headers_is_injected_unchanged() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", parent.parse().unwrap());
        incoming.insert("tracestate", "vendor=x".parse().unwrap());
        let context = extract(&incoming);
        let mut outgoing = HeaderMap::new();
        inject(&context, &mut outgoing);
        assert_eq!(outgoing["traceparent"], parent);
        assert_eq!(outgoing["tracestate"], "vendor=x");
        // No traceparent (or a malformed one): nothing to pass on, and what was there stays.
        let mut kept = incoming.clone();
        inject(&extract(&HeaderMap::new()), &mut kept);
        let mut malformed = HeaderMap::new();
        malformed.insert("traceparent", "00-zz-b7ad6b7169203331-01".parse().unwrap());
        inject(&extract(&malformed), &mut kept);
        assert_eq!(kept, incoming);
    }
}
