//! The activator's guarantees under clients that leave, time out, speak HTTP/2 through a peer, or abuse it: exact
//! per-pod limits, no lost requests, bounded connections and memory.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use runway_activator::app::Activator;
use runway_activator::model::EndpointState;
use runway_activator::revision::{Peers, first_ranked};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(30);

async fn metric(activator: &Activator, name: &str) -> f64 {
    metric_value(activator, name).await.unwrap_or(0.0)
}

#[tokio::test]
async fn a_client_that_gives_up_does_not_free_the_slot_before_the_pod_is_done() {
    let activator = activator().await;
    let detector = Arc::new(OverlapDetector::default());
    route(
        &activator,
        1,
        LONG,
        &[single_request_backend(detector.clone(), Duration::ZERO).await],
    );
    let client = client();
    for _ in 0..3 {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(500),
            send(&client, get(activator.proxy_addr, HOST, "/slow?ms=800")),
        )
        .await;
        assert!(gave_up.is_err(), "the client left before the answer");
        let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(detector.overlaps.load(SeqCst), 0);
    assert_eq!(
        metric(&activator, "runway_activator_abandoned_requests_total{").await,
        3.0
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_holds_the_slot_until_the_pod_is_done() {
    let activator = activator().await;
    let detector = Arc::new(OverlapDetector::default());
    route(
        &activator,
        1,
        Duration::from_secs(1),
        &[single_request_backend(detector.clone(), Duration::ZERO).await],
    );
    let client = client();
    let (status, _, _) = send(&client, get(activator.proxy_addr, HOST, "/slow?ms=1500")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    // Sent at ~1 s: waits for the slot until the slow request ends at 1.5 s, inside its own 1 s deadline.
    let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(detector.overlaps.load(SeqCst), 0);
}

#[tokio::test]
async fn a_client_leaving_mid_body_holds_the_slot_until_the_body_ends() {
    let activator = activator().await;
    let in_flight = Arc::new(AtomicU32::new(0));
    let overlaps = Arc::new(AtomicU32::new(0));
    let (counter, seen) = (in_flight.clone(), overlaps.clone());
    let pod = backend(move |request: Request<hyper::body::Incoming>| {
        let (counter, seen) = (counter.clone(), seen.clone());
        async move {
            if counter.fetch_add(1, SeqCst) > 0 {
                seen.fetch_add(1, SeqCst);
            }
            let slow = request.uri().path() == "/stream";
            let chunks = futures::stream::iter(0..5).then(move |i| {
                let counter = counter.clone();
                async move {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    if i == 4 {
                        counter.fetch_sub(1, SeqCst);
                    }
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"chunk\n")))
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
    })
    .await;
    route(&activator, 1, LONG, &[pod]);
    let client = client();
    let response = client
        .request(get(activator.proxy_addr, HOST, "/stream"))
        .await
        .unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body); // the client leaves after the first chunk
    let (status, _, _) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        overlaps.load(SeqCst),
        0,
        "the next request reached the pod while it was still streaming"
    );
}

/// Two activators on loopback sharing one cc=1 pod; the one returned first holds no slot on it.
async fn activator_pair(pod: SocketAddr) -> (Activator, Activator) {
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let a = Activator::start(options(ip_a)).await.unwrap();
    let b = Activator::start(options(ip_b)).await.unwrap();
    for (activator, me) in [(&a, ip_a), (&b, ip_b)] {
        activator
            .registry
            .set_peers(Peers::new(me, [a.internal_addr, b.internal_addr]));
        set_settings(activator, settings(1, LONG));
        activator.registry.set_endpoints(&revision(), &[ready(pod)]);
    }
    if first_ranked(pod.ip(), &[ip_a, ip_b]) == Some(ip_a) {
        (b, a)
    } else {
        (a, b)
    }
}

/// A GET whose :authority is the test Service's host.
#[tokio::test]
async fn h2c_requests_through_a_peer_are_served_and_stream() {
    let pod = backend(|request: Request<hyper::body::Incoming>| async move {
        if request.uri().path() == "/stream" {
            let chunks = futures::stream::iter(0..4).then(|i| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(format!("{i}"))))
            });
            return Response::new(BodyExt::boxed(StreamBody::new(chunks)));
        }
        Response::new(BodyExt::boxed(Full::new(Bytes::from(format!(
            "{:?}",
            request.version()
        )))))
    })
    .await;
    let (without_slot, with_slot) = activator_pair(pod).await;
    for activator in [&without_slot, &with_slot] {
        let mut h2c = h2c_connection(activator.proxy_addr).await;
        for _ in 0..5 {
            let response = h2c.send_request(h2c_get("/")).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"HTTP/1.1"[..]));
        }
    }
    let mut h2c = h2c_connection(without_slot.proxy_addr).await;
    let response = h2c.send_request(h2c_get("/stream")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.unwrap().into_data().unwrap());
    }
    assert_eq!(frames.concat(), b"0123", "streamed whole: {frames:?}");
}

/// Waits (bounded) until `n` requests wait in the activator's queue.
async fn wait_for_queue(activator: &Activator, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let depth = metric(activator, "runway_activator_queue_depth{").await;
        if depth == n {
            return;
        }
        assert!(Instant::now() < deadline, "queue depth {depth}, expected {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn past_the_request_budget_a_request_gets_503_at_once_and_admitted_ones_are_served() {
    let mut options = options([127, 0, 0, 1].into());
    options.request_budget_bytes = 200 * 1024;
    let activator = Activator::start(options).await.unwrap();
    set_settings(&activator, settings(0, LONG));
    // Heads of 12 KiB (the test activator refuses heads over 16 KiB): about 13 fit in the budget.
    let heavy = || {
        let mut request = get(activator.proxy_addr, HOST, "/");
        request
            .headers_mut()
            .insert("x-big", "a".repeat(12 * 1024).parse().unwrap());
        request
    };
    let client = client();
    let admitted: Vec<_> = (0..12)
        .map(|_| tokio::spawn(send_owned(client.clone(), heavy())))
        .collect();
    wait_for_queue(&activator, 12.0).await;
    let more: Vec<_> = (0..5)
        .map(|_| tokio::spawn(send_owned(client.clone(), heavy())))
        .collect();
    let mut refused = 0;
    for request in more {
        // Refused requests come back at once; admitted ones wait for a pod.
        if let Ok(outcome) = tokio::time::timeout(Duration::from_secs(2), request).await {
            let (status, headers, _) = outcome.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers.get("retry-after").unwrap(), "1");
            refused += 1;
        }
    }
    assert!(
        refused >= 3,
        "{refused} of 5 refused at once: the budget did not bound the queue"
    );
    // The pod appears: every request admitted before the budget ran out is served.
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    for request in admitted {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
}

async fn send_owned(client: TestClient, request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    send(&client, request).await
}

/// An activator with a limit of two client connections, and the two, each known to hold its place: each has been
/// answered once and stays open (keep-alive).
async fn at_its_connection_limit() -> (Activator, Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>) {
    let mut options = options([127, 0, 0, 1].into());
    options.limits.max_connections = 2;
    let activator = Activator::start(options).await.unwrap();
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get("/")
            .header(http::header::HOST, HOST)
            .body(Full::default())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
        held.push(sender);
    }
    (activator, held)
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_are_closed() {
    let (activator, _held) = at_its_connection_limit().await;
    let mut third = TcpStream::connect(activator.proxy_addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nhost: hello.default.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
        .await
        .expect("the connection is closed at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
}

#[tokio::test]
async fn more_rejections_than_are_answered_at_once_still_all_get_their_503() {
    let (activator, _held) = at_its_connection_limit().await;
    // More clients over the limit than the activator answers at once (256), each with a large head, each keeping
    // its connection open until every one has its answer: none of the answers under way ends early.
    let mut head = b"GET / HTTP/1.1\r\nhost: hello.default.example.com\r\nx-flood: ".to_vec();
    head.resize(head.len() + 60 * 1024, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    let head = Arc::new(head);
    let clients = (0..400).map(|_| {
        let head = head.clone();
        let addr = activator.proxy_addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
            let written = stream.write_all(&head).await;
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while !line.ends_with(b"\n") {
                match stream.read(&mut byte).await {
                    Ok(1) => line.push(byte[0]),
                    other => return Err(format!("no answer ({other:?}, write {written:?})")),
                }
            }
            Ok::<_, String>((String::from_utf8_lossy(&line).into_owned(), stream))
        }
    });
    let answers = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(clients))
        .await
        .expect("every client is answered within 30 s");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for answer in &answers {
        let label = match answer {
            Ok((line, _)) => line.trim().to_owned(),
            Err(error) => error.clone(),
        };
        *seen.entry(label).or_default() += 1;
    }
    assert_eq!(
        seen.get("HTTP/1.1 503 Service Unavailable"),
        Some(&400),
        "answers seen: {seen:?}"
    );
}

/// Reads one request head from `stream` (false at its end), counting it in `heads`.
async fn read_head(stream: &mut TcpStream, heads: &AtomicU32) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if !matches!(stream.read(&mut byte).await, Ok(1)) {
            return false;
        }
        head.push(byte[0]);
    }
    heads.fetch_add(1, SeqCst);
    true
}

/// A backend that answers the first request of each connection keep-alive, then reads the next one whole and closes
/// with no answer (a FIN, as nothing is left unread): what the activator sees when an app closes an idle keep-alive
/// connection as a request goes out on it. Counts the request heads it read.
async fn closes_before_answering_the_second() -> (SocketAddr, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicU32::new(0));
    let counted = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = counted.clone();
            tokio::spawn(async move {
                if read_head(&mut stream, &heads).await {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    read_head(&mut stream, &heads).await;
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn an_idempotent_request_the_pod_closed_on_unanswered_is_retried_and_a_post_is_not() {
    let activator = activator().await;
    let (pod, heads) = closes_before_answering_the_second().await;
    route(&activator, 0, LONG, &[pod]);
    let client = client();
    for _ in 0..3 {
        let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    let before = heads.load(SeqCst);
    let post = Request::post(format!("http://{}/", activator.proxy_addr))
        .header(http::header::HOST, HOST)
        .body(Full::default())
        .unwrap();
    let (status, _, _) = send(&client, post).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "a POST the pod may have acted on is not sent twice"
    );
    assert_eq!(heads.load(SeqCst) - before, 1, "the pod saw the POST once");
}

/// The keep-alive race itself, for figures (not run by default: it lasts 20 s and is timing-bound): a pod that closes
/// connections idle for 100 ms, as Node's `keepAliveTimeout` does after 5 s, and requests spaced near that. Without
/// the retry of `closed_unanswered`, 29 of 400 got 502 on the development machine.
/// `cargo test -p runway-activator --test limits -- --ignored --nocapture the_keep_alive_race`
#[tokio::test]
#[ignore = "a 20 s timing experiment; run it by name"]
async fn the_keep_alive_race_with_an_app_that_closes_idle_connections_fails_nothing() {
    let activator = activator().await;
    let idle = Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pod = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                while let Ok(true) = tokio::time::timeout(idle, read_head(&mut stream, &heads)).await {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    route(&activator, 0, LONG, &[pod]);
    let client = client();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..200u64 {
        let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
        *seen.entry(format!("{status} {}", body.trim())).or_default() += 1;
        // Spaced from 98 to 102 ms: some requests leave as the pod closes their connection.
        tokio::time::sleep(Duration::from_micros(98_000 + (i % 40) * 100)).await;
    }
    eprintln!("answers: {seen:?}");
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["200 OK ok"], "{seen:?}");
}

/// Waits (bounded) until the server closes `stream`; how long that took.
async fn closed_within(mut stream: TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    tokio::time::timeout(bound, async {
        while !matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {}
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

#[tokio::test]
async fn silent_connections_and_half_prefaces_are_closed_after_the_handshake_timeout() {
    let mut options = options([127, 0, 0, 1].into());
    options.limits.handshake_timeout = Duration::from_millis(300);
    let activator = Activator::start(options).await.unwrap();
    let silent = TcpStream::connect(activator.proxy_addr).await.unwrap();
    let mut half_preface = TcpStream::connect(activator.proxy_addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (what, stream) in [("silent", silent), ("half a preface", half_preface)] {
        let took = closed_within(stream, Duration::from_secs(5)).await;
        assert!(took.is_some(), "{what}: still open after 5 s");
    }
}

#[tokio::test]
async fn idle_http2_connections_are_closed() {
    let mut options = options([127, 0, 0, 1].into());
    options.limits.idle_timeout = Duration::from_millis(500);
    let activator = Activator::start(options).await.unwrap();
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let closed = tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get(format!("http://{HOST}/"))
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(5), closed).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is still open after 5 s");
}

#[tokio::test]
async fn an_idle_websocket_is_closed_and_frees_its_slot() {
    let mut options = options([127, 0, 0, 1].into());
    options.tunnel_idle_timeout = Some(Duration::from_millis(500));
    let activator = Activator::start(options).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pod = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // An echo server that never closes by itself.
                if let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await {
                    while let Some(Ok(message)) = socket.next().await {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    route(&activator, 1, LONG, &[pod]);
    let url = format!("ws://{}/", activator.proxy_addr);
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("host", HOST.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send("hi".into()).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap().into_text().unwrap(), "hi");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the idle WebSocket is still open after 5 s");
}

#[tokio::test]
async fn a_pod_whose_readiness_the_activator_cannot_check_waits_for_kubernetes() {
    let activator = activator().await;
    let spec: runway_api::ServiceSpec = serde_json::from_value(serde_json::json!({
        "template": {"spec": {"containers": [{
            "image": "app",
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}}
        }]}},
        "timeoutSeconds": 1
    }))
    .unwrap();
    set_settings(
        &activator,
        Some(runway_activator::sources::settings_of_spec(
            &runway_api::RevisionSpec::from_service_spec(&spec),
        )),
    );
    let pod = hello_backend(Duration::ZERO).await;
    let unready = EndpointState {
        ready: false,
        ..ready(pod)
    };
    activator.registry.set_endpoints(&revision(), &[unready]);
    // The app listens, but Kubernetes has not called it ready: the exec probe may still fail.
    let (status, _, _) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    activator.registry.set_endpoints(&revision(), &[ready(pod)]);
    let (status, _, body) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
}

/// A pod whose server answers the first request of each connection as keep-alive, then closes it 50 ms later
/// without reading more: what an app server does when it leaves a request body unread or closes idle connections.
async fn closes_after_one_answer() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if !matches!(stream.read(&mut byte).await, Ok(1)) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Dropped with the next request unread: the kernel answers it with a reset.
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_request_the_pod_reset_unread_on_a_pooled_connection_is_retried() {
    let activator = activator().await;
    route(&activator, 0, LONG, &[closes_after_one_answer().await]);
    let client = client();
    for _ in 0..5 {
        let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
}
