//! End-to-end tests of what Runway records of a request (docs/observability.md): a cold start's access log line,
//! request ID, trace and metrics.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone:
//! `cargo test -p runway-tests --features cluster --test e2e_observability -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use runway_tests::cluster::{Cluster, repo_root};
use runway_tests::http::send;
use runway_tests::otlp::{ReceivedSpan, Receiver};
use runway_tests::runway::{self, NAMESPACE, REQUEST, deploy, quick_zero};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use runway_tests::{install, prometheus};

/// What the test reads of an access log line, in either format of `logFormat`.
#[derive(Debug)]
struct AccessLine {
    activator: String,
    text: String,
    cold_start: bool,
    queue_ms: Option<f64>,
    via_peer: bool,
}

impl AccessLine {
    /// The line of request `id`, if `line` is an access log line of it.
    fn parse(activator: &str, line: &str, id: &str) -> Option<Self> {
        let (cold_start, queue_ms, via_peer) = if line.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            if json["request_id"] != id {
                return None;
            }
            (
                json["cold_start"] == true,
                json["queue_ms"].as_f64(),
                json["via"] == "peer",
            )
        } else {
            let words: Vec<&str> = line.split(' ').collect();
            if !words.contains(&format!("id={id}").as_str()) {
                return None;
            }
            let queue = words
                .iter()
                .find_map(|w| w.strip_prefix("queue=")?.strip_suffix("ms")?.parse().ok());
            (words.contains(&"cold-start"), queue, words.contains(&"via=peer"))
        };
        Some(AccessLine {
            activator: activator.to_owned(),
            text: line.to_owned(),
            cold_start,
            queue_ms,
            via_peer,
        })
    }
}

/// The access log lines of request `id` in the logs of every activator pod of the last minutes.
async fn access_lines(cluster: &Cluster, id: &str) -> anyhow::Result<Vec<AccessLine>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let mut found = Vec::new();
    for pod in runway::activator_pods(cluster).await? {
        let params = LogParams {
            container: Some("activator".into()),
            since_seconds: Some(600),
            ..LogParams::default()
        };
        let logs = api.logs(&pod.name, &params).await?;
        found.extend(logs.lines().filter_map(|line| AccessLine::parse(&pod.name, line, id)));
    }
    Ok(found)
}

/// The client's trace, which the request joins.
const CALLER_TRACE: &str = "5f2c8a0e1d3b4c6a9e8f7a6b5c4d3e2f";
const CALLER_SPAN: &str = "1a2b3c4d5e6f7a8b";

/// A request at zero: its client gets a request ID and the cold-start marks; the activator that took it writes one
/// access log line with that ID, `cold_start` and its queue wait, which is the wait the client was told of; its
/// spans reach the trace receiver under the client's `traceparent`, with a queue wait whose cold-start steps add up
/// to that wait; and the cluster's Prometheus has the revision's cold-start histogram.
#[tokio::test]
async fn t41_a_cold_start_is_logged_traced_and_measured() {
    runway_scenario("e2e-observe", |cluster, ns| async move {
        // The activators export to this test's receiver; the same endpoint again changes nothing.
        let receiver = Receiver::start_for_pods().await?;
        let endpoint = format!("tracing.otlpEndpoint={}", receiver.endpoint_for_pods()?);
        install::upgrade_with(&cluster, &[&endpoint]).await?;
        let target = deploy(&cluster, &ns, "observed", &[], quick_zero()).await?;
        let revision = runway::revision_of(&cluster, &ns, "observed").await?;
        runway::wait_zero(&cluster, &ns, "observed", Duration::from_secs(60)).await?;
        let request = Request::get(format!("http://{}/", target.address))
            .header("host", &target.host)
            .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
            .body(Full::new(Bytes::new()))?;
        let response = send(request, REQUEST).await?;
        ensure!(response.status == 200, "the first request at zero: {response:?}");
        ensure!(
            response.headers.contains_key(runway_api::names::COLD_START_HEADER),
            "the first request at zero was not a cold start: {response:?}"
        );
        let id = response
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .context("no X-Request-Id on the response")?
            .to_owned();
        let told = server_timing_ms(&response.headers).context("no Server-Timing queue wait on the response")?;
        let lines = wait_until(
            format!("the access log line of request {id}"),
            Duration::from_secs(30),
            || async {
                let lines = access_lines(&cluster, &id).await.map_err(|e| e.to_string())?;
                if lines.iter().any(|line| !line.via_peer) {
                    Ok(lines)
                } else {
                    Err(format!("{lines:?}"))
                }
            },
        )
        .await?;
        let from_client: Vec<_> = lines.iter().filter(|line| !line.via_peer).collect();
        ensure!(
            from_client.len() == 1,
            "one line from the client's activator: {lines:#?}"
        );
        let line = from_client[0];
        eprintln!("access log line of {}: {}", line.activator, line.text);
        ensure!(line.cold_start, "the line does not say cold start: {line:?}");
        let queued = line.queue_ms.with_context(|| format!("no queue wait in {line:?}"))?;
        ensure!(
            (queued - told).abs() < 1.0,
            "the line's queue wait {queued} ms is not the {told} ms the client was told"
        );
        check_trace(&receiver, told).await?;
        let prometheus = prometheus::wait_for(
            &cluster.client,
            "the revision's cold start in Prometheus",
            &format!(
                "runway_activator_cold_start_duration_seconds_count{{namespace=\"{ns}\",revision=\"{revision}\"}}"
            ),
            Duration::from_secs(60),
            |samples| samples.iter().map(|s| s.value).sum::<f64>() >= 1.0,
        )
        .await?;
        eprintln!("Prometheus: {}", prometheus::describe(&prometheus));
        Ok(())
    })
    .await;
}

/// The activator's spans of the request: its server span under the caller's, a queue wait marked cold whose steps
/// add up to the wait the client was told of (`told`, ms) within a few milliseconds, and the attempt to the pod. The
/// trace is written to target/observability/cold-start-trace.json for `hack/bench/plot-trace.py`.
async fn check_trace(receiver: &Receiver, told: f64) -> anyhow::Result<()> {
    let spans = receiver
        .wait_for_trace(CALLER_TRACE, Duration::from_secs(30), |spans| {
            spans.iter().any(|s| s.name == "queue wait") && spans.iter().any(|s| s.name == "GET")
        })
        .await?;
    let activator: Vec<_> = spans.iter().filter(|s| s.service() == "runway-activator").collect();
    let server = activator
        .iter()
        .find(|s| s.parent_span_id.as_deref() == Some(CALLER_SPAN))
        .with_context(|| format!("no activator span under the caller's span: {spans:#?}"))?;
    let children = |parent: &str| -> Vec<&ReceivedSpan> {
        activator
            .iter()
            .copied()
            .filter(|s| s.parent_span_id.as_deref() == Some(parent))
            .collect()
    };
    let wait = *children(&server.span_id)
        .iter()
        .find(|s| s.name == "queue wait")
        .with_context(|| format!("no queue wait under {server:#?}"))?;
    ensure!(
        wait.attributes.get("runway.cold_start").map(String::as_str) == Some("true"),
        "{wait:#?}"
    );
    let steps = children(&wait.span_id);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    ensure!(
        names.first() == Some(&"scale") && names.contains(&"pod start"),
        "cold-start steps {names:?}"
    );
    let millis = |s: &ReceivedSpan| (s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6;
    let total: f64 = steps.iter().map(|s| millis(s)).sum();
    eprintln!(
        "trace: queue wait {:.1} ms = {} (the client was told {told} ms)",
        millis(wait),
        steps
            .iter()
            .map(|s| format!("{} {:.1} ms", s.name, millis(s)))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    ensure!(
        (total - told).abs() < 5.0,
        "the cold-start steps add up to {total:.1} ms, the client waited {told} ms: {steps:#?}"
    );
    ensure!(
        children(&server.span_id).iter().any(|s| s.name == "GET"),
        "no attempt span under {server:#?}"
    );
    let exported: Vec<serde_json::Value> = activator
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "span_id": s.span_id, "parent_span_id": s.parent_span_id.clone().unwrap_or_default(),
                "start_unix_nano": s.start_unix_nanos, "end_unix_nano": s.end_unix_nanos,
            })
        })
        .collect();
    let out = repo_root().join("target/observability");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("cold-start-trace.json"),
        serde_json::to_string_pretty(&exported)?,
    )?;
    Ok(())
}

/// The `runway-queue` duration of a `Server-Timing` header, in milliseconds.
fn server_timing_ms(headers: &http::HeaderMap) -> Option<f64> {
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|metric| metric.trim().strip_prefix("runway-queue;dur=")?.parse().ok())
}
