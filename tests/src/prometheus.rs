//! The cluster's Prometheus (`hack/cluster/manifests/prometheus.yaml`, namespace `runway-monitoring`), queried
//! through the API server's service proxy with the suite's kube client: no port-forward, and no route from the
//! machine to the pod network, so the same works on kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::BodyExt;
use kube::Client;
use serde_json::Value;

use crate::wait::wait_until;

/// The Prometheus HTTP API under the API server.
const API: &str = "/api/v1/namespaces/runway-monitoring/services/prometheus:9090/proxy/api/v1";

/// One series of an instant query's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        write!(f, "{{{}}} {}", labels.join(","), self.value)
    }
}

/// The samples of the instant query `expr` now (a scalar result is one sample without labels), or the error
/// Prometheus gives for it (a parse or evaluation error, with its type).
pub async fn query(client: &Client, expr: &str) -> anyhow::Result<Vec<Sample>> {
    let request = http::Request::get(format!("{API}/query?query={}", percent_encode(expr)))
        .body(Vec::new())
        .context("building the query")?;
    // send, not request: a bad query is a 400 or 422 whose body says why, which the typed calls would hide.
    let response = client
        .send(request.map(Into::into))
        .await
        .context("sending the query")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&body)
        .with_context(|| format!("HTTP {status}, not JSON: {}", String::from_utf8_lossy(&body)))?;
    if answer["status"] != "success" {
        bail!("{expr}: {} {}", answer["errorType"], answer["error"]);
    }
    let data = &answer["data"];
    match data["resultType"].as_str() {
        Some("vector") => data["result"].as_array().into_iter().flatten().map(sample).collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: number(&data["result"])?,
        }]),
        other => bail!("{expr}: result type {other:?}, not an instant vector or scalar"),
    }
}

/// Polls `expr` until `accept` takes its samples or `timeout` passes; the timeout names what was seen last.
pub async fn wait_for(
    client: &Client,
    what: &str,
    expr: &str,
    timeout: Duration,
    accept: impl Fn(&[Sample]) -> bool,
) -> anyhow::Result<Vec<Sample>> {
    let found = wait_until(format!("{what} ({expr})"), timeout, || async {
        match query(client, expr).await {
            Ok(samples) if accept(&samples) => Ok(samples),
            Ok(samples) => Err(describe(&samples)),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await?;
    Ok(found)
}

/// The samples, one a line, or that there were none.
pub fn describe(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "no samples".to_owned();
    }
    samples.iter().map(Sample::to_string).collect::<Vec<_>>().join("\n")
}

fn sample(item: &Value) -> anyhow::Result<Sample> {
    let labels = item["metric"]
        .as_object()
        .context("a sample without labels")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    Ok(Sample {
        labels,
        value: number(&item["value"])?,
    })
}

/// The value of `[timestamp, "value"]`.
fn number(pair: &Value) -> anyhow::Result<f64> {
    let text = pair[1].as_str().with_context(|| format!("no value in {pair}"))?;
    // Prometheus writes NaN and infinities as Go does: NaN, +Inf, -Inf.
    text.parse().with_context(|| format!("value {text:?}"))
}

/// `text` as a URL query value: every byte but the unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{code=~"5.."}[1m])) > 0"#),
            "sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B1m%5D%29%29%20%3E%200"
        );
    }

    #[test]
    fn samples_read_labels_and_values_including_go_spellings() {
        let item = serde_json::json!({"metric": {"service": "web"}, "value": [1.5, "+Inf"]});
        let s = sample(&item).unwrap();
        assert_eq!(s.labels["service"], "web");
        assert!(s.value.is_infinite());
        assert!(number(&serde_json::json!([1, "NaN"])).unwrap().is_nan());
    }
}
