//! Strict request heads on loopback: Host rules, absolute-form routing, transfer codings and the forwarded headers.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use runway_activator::app::Activator;
use runway_activator::revision::{Peers, first_ranked};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const LONG: Duration = Duration::from_secs(30);

/// A pod that answers with the request target and the headers a proxy sets, each as all its lines joined by ` | `.
async fn echo_pod() -> SocketAddr {
    backend(|request: Request<Incoming>| async move {
        let headers = request.headers();
        let all = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let text = format!(
            "{} host={} xff={} proto={} xfh={} fwd={}",
            request.uri(),
            all("host"),
            all("x-forwarded-for"),
            all("x-forwarded-proto"),
            all("x-forwarded-host"),
            all("forwarded"),
        );
        Response::new(Full::new(Bytes::from(text)))
    })
    .await
}

/// An activator routing the test Service to an echo pod.
async fn echoing_activator() -> Activator {
    let activator = activator().await;
    route(&activator, 0, LONG, &[echo_pod().await]);
    activator
}

/// Writes `request` on a new connection and returns the status code and body of the answer. The requests ask for
/// `Connection: close`, so everything up to the close is one response.
async fn raw(proxy: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    // Until end of stream, or a reset when the activator closes without reading a body it refused.
    while let Ok(Ok(read @ 1..)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, body.to_owned())
}

#[tokio::test]
async fn an_http11_request_without_host_gets_400() {
    let activator = echoing_activator().await;
    let (status, body) = raw(activator.proxy_addr, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (400, "missing Host header\n"));
    // HTTP/1.0 has no Host requirement: no host simply names no Service.
    let (status, _) = raw(activator.proxy_addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn two_host_headers_get_400() {
    let activator = echoing_activator().await;
    let request = format!("GET / HTTP/1.1\r\nhost: {HOST}\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
    let (status, body) = raw(activator.proxy_addr, &request).await;
    assert_eq!((status, body.as_str()), (400, "more than one Host header\n"));
}

#[tokio::test]
async fn absolute_form_requests_are_routed_and_forwarded_by_their_authority() {
    let activator = echoing_activator().await;
    // The Host agrees (case, trailing dot and the default port aside); the pod sees the URI's authority.
    let request =
        format!("GET http://{HOST}/x?y=1 HTTP/1.1\r\nhost: HELLO.default.example.com.:80\r\nconnection: close\r\n\r\n");
    let (status, body) = raw(activator.proxy_addr, &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("/x?y=1 host={HOST} xff=127.0.0.1 proto=http xfh={HOST} fwd=")
    );
}

#[tokio::test]
async fn a_host_that_disagrees_with_the_absolute_form_authority_gets_400() {
    let activator = echoing_activator().await;
    let request =
        format!("GET http://other.default.example.com/ HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
    let (status, body) = raw(activator.proxy_addr, &request).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "the Host header does not match the request target\n")
    );
}

/// Sends an HTTP/2 request (prior knowledge) from `source` to `proxy`.
async fn h2_send(source: IpAddr, proxy: SocketAddr, request: Request<Full<Bytes>>) -> (StatusCode, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(proxy).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn an_http2_host_that_disagrees_with_the_authority_gets_400() {
    let activator = echoing_activator().await;
    let localhost = IpAddr::from([127, 0, 0, 1]);
    let request = |authority: &str, host: &str| {
        Request::get(format!("http://{authority}/"))
            .header(http::header::HOST, host)
            .body(Full::default())
            .unwrap()
    };
    let (status, body) = h2_send(
        localhost,
        activator.proxy_addr,
        request("other.default.example.com", HOST),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "the Host header does not match the request target\n"
        )
    );
    let (status, _) = h2_send(
        localhost,
        activator.proxy_addr,
        request(HOST, "Hello.Default.Example.com."),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let activator = echoing_activator().await;
    let post = |codings: &str| {
        format!("POST / HTTP/1.1\r\nhost: {HOST}\r\n{codings}connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    };
    for codings in [
        "transfer-encoding: gzip, chunked\r\n",
        "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
    ] {
        let (status, body) = raw(activator.proxy_addr, &post(codings)).await;
        assert_eq!(
            (status, body.as_str()),
            (501, "transfer codings other than chunked are not supported\n"),
            "{codings}"
        );
    }
    let (status, _) = raw(activator.proxy_addr, &post("transfer-encoding: chunked\r\n")).await;
    assert_eq!(status, 200);
    // Not ending in chunked: hyper's parser refuses it before the activator sees it.
    let (status, _) = raw(activator.proxy_addr, &post("transfer-encoding: chunked, gzip\r\n")).await;
    assert_eq!(status, 400);
}

/// A GET for the test Service carrying forwarded headers a client could forge.
fn forged(proxy: SocketAddr) -> Request<Full<Bytes>> {
    let mut request = get(proxy, HOST, "/");
    for (name, value) in [
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=1.2.3.4;proto=https"),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn forwarded_headers_from_clients_are_replaced() {
    let activator = echoing_activator().await;
    let (status, _, body) = send(&client(), forged(activator.proxy_addr)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("/ host={HOST} xff=127.0.0.1 proto=http xfh={HOST} fwd="));
}

#[tokio::test]
async fn forwarded_headers_from_trusted_proxies_are_kept() {
    let start = |trusted: &str| {
        let mut options = options([127, 0, 0, 1].into());
        options.trusted_proxies = trusted.parse().unwrap();
        Activator::start(options)
    };
    let pod = echo_pod().await;
    let trusting = start("10.0.0.0/8,127.0.0.0/8").await.unwrap();
    route(&trusting, 0, LONG, &[pod]);
    let (_, _, body) = send(&client(), forged(trusting.proxy_addr)).await;
    assert_eq!(
        body,
        format!("/ host={HOST} xff=1.2.3.4, 127.0.0.1 proto=https xfh=evil.example fwd=for=1.2.3.4;proto=https")
    );
    // Other networks trusted: this client is not.
    let other = start("10.0.0.0/8,::1/128").await.unwrap();
    route(&other, 0, LONG, &[pod]);
    let (_, _, body) = send(&client(), forged(other.proxy_addr)).await;
    assert_eq!(body, format!("/ host={HOST} xff=127.0.0.1 proto=http xfh={HOST} fwd="));
}

#[test]
fn a_bad_trusted_proxy_cidr_stops_the_activator_at_startup() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runway-activator"))
        .args([
            "--standalone",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUNWAY_TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.1/8")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--trusted-proxies") && stderr.contains("did you mean 10.0.0.0/8?"),
        "{stderr}"
    );
}

/// Two activators (127.0.0.1 and 127.0.0.2) sharing one cc=1 pod, and the one of them that holds no slot on it (so
/// forwards every request to the other).
async fn two_activators() -> (Activator, Activator, SocketAddr) {
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let a = Activator::start(options(ip_a)).await.unwrap();
    let b = Activator::start(options(ip_b)).await.unwrap();
    a.registry
        .set_peers(Peers::new(ip_a, [a.internal_addr, b.internal_addr]));
    b.registry
        .set_peers(Peers::new(ip_b, [a.internal_addr, b.internal_addr]));
    let pod = echo_pod().await;
    for activator in [&a, &b] {
        route(activator, 1, LONG, &[pod]);
    }
    let non_owner = if first_ranked(pod.ip(), &[ip_a, ip_b]) == Some(ip_a) {
        b.proxy_addr
    } else {
        a.proxy_addr
    };
    (a, b, non_owner)
}

#[tokio::test]
async fn requests_forwarded_between_activators_keep_their_headers() {
    let (_a, _b, non_owner) = two_activators().await;
    // From an address that is neither activator: the pod must see it, not the forwarding activator's.
    let client_ip = IpAddr::from([127, 0, 0, 3]);
    let expected = format!("/ host={HOST} xff=127.0.0.3 proto=http xfh={HOST} fwd=");

    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(client_ip));
    let http1 = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let (status, _, body) = send(&http1, forged(non_owner)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, expected.as_str()));

    // HTTP/2 to the peer: its :authority is the peer's address, the Host header the Service's.
    let request = Request::get(format!("http://{HOST}/")).body(Full::default()).unwrap();
    let (status, body) = h2_send(client_ip, non_owner, request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, expected.as_str()));
}
