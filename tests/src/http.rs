//! HTTP requests from the test process (the host) to pod IPs, ClusterIPs or anything else on this machine.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends `request` on a fresh connection (plain HTTP/1.1) and reads the whole answer within `timeout`.
pub async fn send(request: Request<Full<Bytes>>, timeout: Duration) -> anyhow::Result<Response> {
    let what = format!("{} {}", request.method(), request.uri());
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("{what}: no answer within {timeout:?}"))?
        .with_context(|| what.clone())
}

/// GET `url` with [`send`].
pub async fn get(url: &str, timeout: Duration) -> anyhow::Result<Response> {
    let request = Request::get(url)
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("{url} is not a valid URL"))?;
    send(request, timeout).await
}
