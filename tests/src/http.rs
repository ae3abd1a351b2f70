//! HTTP requests from the test process (the host) to pod IPs, ClusterIPs or anything else on this machine; and
//! [`get_from_a_pod`], from a pod of the sample app inside the cluster (by cluster DNS names).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::cluster::Cluster;
use crate::runway::READY;
use crate::wait::wait_until;

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

/// Starts a pod of the sample app named `name` in `ns` (unless it exists) and waits until it is ready: a client for
/// requests from inside the cluster ([`get_once_from_a_pod`]).
pub async fn client_pod(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    if pods.get_opt(name).await?.is_none() {
        pods.create(&Default::default(), &crate::workloads::hello_pod(name, &[]))
            .await?;
    }
    crate::pods::wait_ready(&pods, &format!("app={name}"), 1, READY).await?;
    Ok(())
}

/// One GET of `url` (with `host` as the Host header if given) from the client pod `pod` in `ns`, bounded by
/// `timeout`: the body of a 2xx answer, or what went wrong (no answer, or another status).
pub async fn get_once_from_a_pod(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    url: &str,
    host: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let timeout = format!("{}ms", timeout.as_millis());
    let mut args = vec![
        "-n",
        ns,
        "exec",
        pod,
        "--",
        "/usr/local/bin/runway-hello",
        "get",
        url,
        "--timeout",
        &timeout,
    ];
    if let Some(host) = host {
        args.extend(["--host", host]);
    }
    cluster.kubectl().run(&args).await.map_err(|e| format!("{e:#}"))
}

/// GETs `url` from a pod of the sample app in `ns` (started on first use, named `client`) until the body starts
/// with `want`.
pub async fn get_from_a_pod(cluster: &Cluster, ns: &str, url: &str, want: &str) -> anyhow::Result<String> {
    client_pod(cluster, ns, "client").await?;
    let body = wait_until(format!("GET {url} from a pod"), Duration::from_secs(30), || async {
        get_once_from_a_pod(cluster, ns, "client", url, None, Duration::from_secs(10))
            .await
            .and_then(|body| if body.starts_with(want) { Ok(body) } else { Err(body) })
    })
    .await?;
    Ok(body)
}
