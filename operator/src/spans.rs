//! The spans the operator exports when tracing is on: one per reconcile of a Service or DomainMapping, one per
//! scale write of the autoscaler, with the events logged inside them. Written with `tracing`; exported through
//! [`export_layer`], which takes only them, so kube's and hyper's spans and every debug span stay out of traces.

use std::fmt::Display;
use std::future::Future;

use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::Empty;
use tracing::{Instrument, Level, Span, info_span};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{Layer, Registry};

/// The subscriber layer exporting the operator's own spans at info level or above (those of this module), and the
/// events at info or above logged within them, as span events.
pub fn export_layer(tracer: SdkTracer) -> impl Layer<Registry> + Send + Sync {
    let ours = filter_fn(|metadata| {
        metadata.target().starts_with(env!("CARGO_CRATE_NAME")) && *metadata.level() <= Level::INFO
    });
    tracing_opentelemetry::layer().with_tracer(tracer).with_filter(ours)
}

/// A reconcile of one object: `kind` is Service or DomainMapping.
pub(crate) fn reconcile(kind: &'static str, namespace: &str, name: &str) -> Span {
    info_span!(
        "reconcile",
        otel.name = %format_args!("reconcile {kind}"),
        k8s.namespace.name = namespace,
        runway.kind = kind,
        runway.name = name,
        runway.result = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// A write of a revision's scale, from `from` pods to `to`.
pub(crate) fn scale(namespace: &str, revision: &str, from: i32, to: i32) -> Span {
    info_span!(
        "scale",
        k8s.namespace.name = namespace,
        runway.revision = revision,
        runway.from = from,
        runway.to = to,
        runway.result = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// Runs `work` in `span` and records on it how it ended: `runway.result` success or error (as the metrics' result
/// label), and on error the span's status with the error's message.
pub(crate) async fn traced<T, E: Display>(span: Span, work: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let result = work.instrument(span.clone()).await;
    match &result {
        Ok(_) => {
            span.record("runway.result", "success");
        }
        Err(error) => {
            span.record("runway.result", "error");
            span.record("otel.status_code", "error");
            span.record("otel.status_description", error.to_string());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{Status, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing::{debug_span, info, warn};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Keeps the spans exported.
    #[derive(Clone, Debug, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        let found = span.attributes.iter().find(|kv| kv.key.as_str() == key);
        found.map(|kv| kv.value.to_string())
    }

    #[tokio::test]
    async fn only_the_reconcile_and_scale_spans_are_exported_with_their_results() {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(kept.clone()).build();
        let subscriber = Registry::default().with(export_layer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);
        let controller = info_span!(target: "kube_runtime::controller", "reconciling object");
        let failed: Result<(), String> = traced(reconcile("Service", "ns", "web"), async {
            let _noise = debug_span!("reading the caches").entered();
            warn!("a child could not be applied");
            Err("conflict".to_owned())
        })
        .instrument(controller)
        .await;
        assert!(failed.is_err());
        let scaled: Result<u8, String> = traced(scale("ns", "web-00001", 0, 2), async {
            info!("scaled up");
            Ok(2)
        })
        .await;
        assert_eq!(scaled, Ok(2));
        let spans = kept.0.lock().unwrap();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["reconcile Service", "scale"]);
        let (reconciled, scaled) = (&spans[0], &spans[1]);
        // kube's span is not exported, so the reconcile starts its own trace.
        assert_eq!(reconciled.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert_eq!(attribute(reconciled, "k8s.namespace.name").as_deref(), Some("ns"));
        assert_eq!(attribute(reconciled, "runway.name").as_deref(), Some("web"));
        assert_eq!(attribute(reconciled, "runway.result").as_deref(), Some("error"));
        assert_eq!(reconciled.status, Status::error("conflict"));
        let events: Vec<&str> = reconciled.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(events, ["a child could not be applied"]);
        assert_eq!(attribute(scaled, "runway.to").as_deref(), Some("2"));
        assert_eq!(attribute(scaled, "runway.result").as_deref(), Some("success"));
        assert_eq!(scaled.status, Status::Unset);
    }
}
