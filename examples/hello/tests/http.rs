//! The server over real HTTP on loopback: routes, slow requests, overlap rejection, the WebSocket echo and graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use runway_hello::{app::App, client, server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A server on an ephemeral port with its own shutdown trigger.
struct Running {
    app: App,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(reject_overlap: bool) -> Running {
    let listener = server::bind(0).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
    let app = App::new("test-pod", reject_overlap);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    Running { app, addr, stop, task }
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    client::get(&format!("http://{addr}{path}"), TIMEOUT).await.unwrap()
}

/// Polls `cond` until it holds; panics with `what` after the deadline.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn spawn_get(addr: SocketAddr, path: &'static str) -> impl Future<Output = (StatusCode, String)> {
    let task = tokio::spawn(async move { get(addr, path).await });
    async { task.await.unwrap() }
}

#[tokio::test]
async fn answers_hello_and_holds_sleep() {
    let server = start(false).await;
    assert_eq!(
        get(server.addr, "/").await,
        (StatusCode::OK, "hello from test-pod\n".into())
    );
    let began = Instant::now();
    let (status, body) = get(server.addr, "/sleep?ms=200").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello from test-pod after 200 ms\n");
    assert!(
        began.elapsed() >= Duration::from_millis(200),
        "answered after {:?}",
        began.elapsed()
    );
    assert_eq!(get(server.addr, "/sleep?ms=x").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn overlapping_requests_both_fail_when_rejecting_overlap() {
    let server = start(true).await;
    let first = spawn_get(server.addr, "/sleep?ms=500");
    wait_until("the first request to be in flight", || server.app.in_flight() == 1).await;

    let (status, body) = get(server.addr, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.starts_with("overlap: 1 other request(s) in flight"), "{body}");

    let (status, body) = first.await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("another request arrived while this one was in flight"),
        "{body}"
    );
    assert_eq!(server.app.overlaps(), 1);

    // Once alone again, requests succeed.
    assert_eq!(get(server.addr, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn sequential_requests_and_probes_are_no_overlap() {
    let server = start(true).await;
    for _ in 0..5 {
        assert_eq!(get(server.addr, "/sleep?ms=1").await.0, StatusCode::OK);
    }
    let slow = spawn_get(server.addr, "/sleep?ms=300");
    wait_until("the slow request to be in flight", || server.app.in_flight() == 1).await;
    assert_eq!(get(server.addr, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    assert_eq!(slow.await.0, StatusCode::OK);
    assert_eq!(server.app.overlaps(), 0);
}

#[tokio::test]
async fn overlap_is_allowed_without_the_flag() {
    let server = start(false).await;
    let slow = spawn_get(server.addr, "/sleep?ms=300");
    wait_until("the slow request to be in flight", || server.app.in_flight() == 1).await;
    assert_eq!(get(server.addr, "/").await.0, StatusCode::OK);
    assert_eq!(slow.await.0, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_stops_listening() {
    let server = start(false).await;
    let slow = spawn_get(server.addr, "/sleep?ms=300");
    wait_until("the slow request to be in flight", || server.app.in_flight() == 1).await;
    server.stop.send(()).unwrap();

    assert_eq!(
        slow.await,
        (StatusCode::OK, "hello from test-pod after 300 ms\n".into())
    );
    tokio::time::timeout(TIMEOUT, server.task)
        .await
        .expect("serve did not return after draining")
        .unwrap();
    let refused = client::get(&format!("http://{}/", server.addr), TIMEOUT).await;
    assert!(refused.is_err(), "still answering after shutdown: {refused:?}");
}

#[tokio::test]
async fn websocket_echoes_messages() {
    use futures::{SinkExt, StreamExt};

    let server = start(true).await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["one", "two"] {
        socket.send(text.into()).await.unwrap();
        let echoed = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap(), text);
    }
    // An open socket is no request in flight: plain requests are not overlaps.
    assert_eq!(get(server.addr, "/").await.0, StatusCode::OK);
    socket.close(None).await.unwrap();
    assert_eq!(server.app.overlaps(), 0);
}
