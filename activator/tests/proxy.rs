//! The activator end to end on loopback: real HTTP servers, no cluster.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use runway_activator::model::{EndpointState, FastProbe, Idle, RevisionId};
use runway_api::names::COLD_START_HEADER;
use runway_api::stats::{LoadReport, ReportKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn unknown_hosts_get_404_naming_the_host() {
    let activator = activator().await;
    let (status, _, body) = send(&client(), get(activator.proxy_addr, "nope.default.example.com", "/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "no Runway service for host nope.default.example.com\n");
}

#[tokio::test]
async fn connect_is_refused() {
    let activator = activator().await;
    let mut stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
    stream
        .write_all(b"CONNECT 10.0.0.1:22 HTTP/1.1\r\nhost: hello.default\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    BufReader::new(stream).read_line(&mut head).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
}

#[tokio::test]
async fn requests_are_proxied_with_forwarded_headers() {
    let activator = activator().await;
    let pod = backend(|request: Request<hyper::body::Incoming>| async move {
        let headers = request.headers();
        let echo = format!(
            "{} {} hop={} xff={} proto={} host={}",
            request.method(),
            request.uri(),
            headers.contains_key("x-runway-hop"),
            headers.get("x-forwarded-for").map_or("", |v| v.to_str().unwrap()),
            headers.get("x-forwarded-proto").map_or("", |v| v.to_str().unwrap()),
            headers.get("host").map_or("", |v| v.to_str().unwrap()),
        );
        Response::new(Full::new(Bytes::from(echo)))
    })
    .await;
    route(&activator, 0, LONG, &[pod]);
    // A cluster host form: the internal entry point.
    let mut request = get(activator.internal_addr, "Hello.Default:8080", "/a?b=c");
    // Not from a peer: the hop header is dropped.
    request.headers_mut().insert("x-runway-hop", "1".parse().unwrap());
    let (status, headers, body) = send(&client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "GET /a?b=c hop=false xff=127.0.0.1 proto=http host=Hello.Default:8080"
    );
    assert!(headers.get(COLD_START_HEADER).is_none());
    assert!(headers.get("server-timing").is_none());
}

#[tokio::test]
async fn requests_wait_for_a_backend_then_all_succeed() {
    let activator = activator().await;
    set_settings(&activator, settings(0, LONG));
    let client = client();
    let waiting: Vec<_> = (0..20)
        .map(|_| tokio::spawn(send_owned(client.clone(), get(activator.proxy_addr, HOST, "/"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()));
    // The pod appears unready in its EndpointSlice; the activator's own probe makes it routable.
    let pod = hello_backend(Duration::ZERO).await;
    activator.registry.set_endpoints(
        &revision(),
        &[EndpointState {
            ready: false,
            ..ready(pod)
        }],
    );
    for request in waiting {
        let (status, headers, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
        assert_eq!(headers.get(COLD_START_HEADER).unwrap(), "true");
        assert!(
            headers
                .get("server-timing")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("runway-queue;dur=")
        );
    }
}

async fn send_owned(client: TestClient, request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    send(&client, request).await
}

#[tokio::test]
async fn container_concurrency_one_never_overlaps() {
    let activator = activator().await;
    let detector = Arc::new(OverlapDetector::default());
    let pods = [
        single_request_backend(detector.clone(), Duration::from_millis(5)).await,
        single_request_backend(Arc::new(OverlapDetector::default()), Duration::from_millis(5)).await,
    ];
    route(&activator, 1, LONG, &pods[..1]);
    let client = client();
    let requests: Vec<_> = (0..60)
        .map(|_| tokio::spawn(send_owned(client.clone(), get(activator.proxy_addr, HOST, "/"))))
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(detector.overlaps.load(SeqCst), 0);
    assert_eq!(detector.served.load(SeqCst), 60);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let mut options = options([127, 0, 0, 1].into());
    options.queue_depth = 2;
    let activator = runway_activator::app::Activator::start(options).await.unwrap();
    set_settings(&activator, settings(0, LONG));
    let client = client();
    let _held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(send_owned(client.clone(), get(activator.proxy_addr, HOST, "/"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, headers, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert!(body.contains("retry later"));
}

#[tokio::test]
async fn the_timeout_covers_queueing_and_gives_504() {
    let activator = activator().await;
    set_settings(&activator, settings(0, Duration::from_secs(1)));
    let started = Instant::now();
    let (status, _, _) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_secs(1) && started.elapsed() < Duration::from_secs(3));

    // A slow pod: the time until response headers counts too.
    let slow = hello_backend(Duration::from_secs(5)).await;
    route(&activator, 0, Duration::from_secs(1), &[slow]);
    let (status, _, _) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_pod() {
    let activator = activator().await;
    let live = hello_backend(Duration::ZERO).await;
    route(&activator, 0, LONG, &[dead_port().await, live]);
    let client = client();
    for _ in 0..20 {
        let (status, _, body) = send(&client, get(activator.proxy_addr, HOST, "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
}

#[tokio::test]
async fn request_heads_that_are_too_large_get_431() {
    let activator = activator().await;
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let mut request = get(activator.proxy_addr, HOST, "/");
    request
        .headers_mut()
        .insert("x-big", "a".repeat(32 * 1024).parse().unwrap());
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn h2c_clients_and_h2c_backends_work() {
    let activator = activator().await;
    let pod = backend(|request: Request<hyper::body::Incoming>| async move {
        let text = format!("{:?} {}", request.version(), request.uri().path());
        Response::new(Full::new(Bytes::from(text)))
    })
    .await;
    set_settings(&activator, settings(0, LONG));
    activator.registry.set_endpoints(
        &revision(),
        &[EndpointState {
            h2c: true,
            ..ready(pod)
        }],
    );
    // h2c client -> activator -> h2c backend; the Host header comes through as :authority is the activator's.
    let request = Request::get(format!("http://{HOST}/grpc.Service/Call"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = h2c_connection(activator.proxy_addr)
        .await
        .send_request(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/2.0 /grpc.Service/Call");

    // HTTP/1.1 client -> activator -> h2c backend.
    let (status, _, body) = send(&client(), get(activator.proxy_addr, HOST, "/x")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "HTTP/2.0 /x"));
}

#[tokio::test]
async fn websockets_pass_through() {
    let activator = activator().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pod = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    route(&activator, 1, Duration::from_secs(1), &[pod]);
    let url = format!("ws://{}/socket", activator.proxy_addr);
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("host", HOST.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // Longer than the Service timeout: upgraded connections are not cut by it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for text in ["one", "two"] {
        socket.send(text.into()).await.unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap(), text);
    }
    // The socket holds the pod's single slot: a plain request waits until the socket closes.
    let waiting = tokio::spawn(send_owned(client(), get(activator.proxy_addr, HOST, "/")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    socket.close(None).await.unwrap();
    drop(socket);
    let (status, _, _) = waiting.await.unwrap();
    assert_ne!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "the slot was released when the socket closed"
    );
}

#[tokio::test]
async fn the_first_request_at_zero_pokes_the_load_stream_within_50ms() {
    let activator = activator().await;
    set_settings(&activator, settings(0, LONG));
    let mut stream = TcpStream::connect(activator.admin_addr).await.unwrap();
    stream
        .write_all(b"GET /v1/load HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(stream);
    let mut first_report = None;
    let mut line = String::new();
    // Response head, then the chunked body: chunk-size lines alternate with report lines.
    while first_report.is_none() {
        line.clear();
        lines.read_line(&mut line).await.unwrap();
        if line.starts_with('{') {
            first_report = Some(LoadReport::from_line(line.trim().as_bytes()).unwrap());
        }
    }
    assert_eq!(first_report.unwrap().kind, ReportKind::Periodic);

    let sent = Instant::now();
    let _request = tokio::spawn(send_owned(client(), get(activator.proxy_addr, HOST, "/")));
    loop {
        line.clear();
        lines.read_line(&mut line).await.unwrap();
        if !line.starts_with('{') {
            continue;
        }
        let report = LoadReport::from_line(line.trim().as_bytes()).unwrap();
        if report.kind == ReportKind::Poke {
            let elapsed = sent.elapsed();
            assert!(elapsed < Duration::from_millis(50), "poke after {elapsed:?}");
            assert_eq!(report.services[0].name, "hello");
            assert_eq!(report.services[0].queued, 1);
            break;
        }
    }
}

#[tokio::test]
async fn periodic_reports_carry_concurrency_and_rps() {
    let activator = activator().await;
    route(&activator, 0, LONG, &[hello_backend(Duration::from_millis(300)).await]);
    let client = client();
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(send_owned(client.clone(), get(activator.proxy_addr, HOST, "/"))))
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    let mut stream = TcpStream::connect(activator.admin_addr).await.unwrap();
    stream
        .write_all(b"GET /v1/load HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        line.clear();
        lines.read_line(&mut line).await.unwrap();
        if let Ok(report) = LoadReport::from_line(line.trim().as_bytes())
            && let Some(load) = report.services.iter().find(|s| s.name == "hello")
        {
            assert!(load.rps > 0.0 && load.concurrency > 0.0, "{load:?}");
            seen = true;
        }
    }
    assert!(seen, "a periodic report listed the service");
    let metrics = send(
        &client,
        Request::get(format!("http://{}/metrics", activator.admin_addr))
            .body(Full::default())
            .unwrap(),
    )
    .await
    .2;
    assert!(
        metrics.contains(
            "runway_activator_requests_total{namespace=\"default\",service=\"hello\",revision=\"hello-00001\",code=\"200\"} 4"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn readiness_fails_while_draining_and_in_flight_requests_finish() {
    let activator = activator().await;
    activator.health.set_synced();
    route(&activator, 0, LONG, &[hello_backend(Duration::from_millis(500)).await]);
    let admin = activator.admin_addr;
    let readyz = || {
        send_owned(
            client(),
            Request::get(format!("http://{admin}/readyz"))
                .body(Full::default())
                .unwrap(),
        )
    };
    assert_eq!(readyz().await.0, StatusCode::OK);
    let in_flight = tokio::spawn(send_owned(client(), get(activator.proxy_addr, HOST, "/")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = activator.health.clone();
    let stopping = tokio::spawn(activator.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!health.is_ready());
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    stopping.await.unwrap();
}

#[tokio::test]
async fn the_external_entry_point_serves_external_services_under_the_domain_only() {
    let activator = activator().await;
    let pod = hello_backend(Duration::ZERO).await;
    route(&activator, 0, LONG, &[pod]);
    let private = runway_api::ServiceKey::new("default", "private");
    let private_revision = RevisionId::new("default", "private", "private-00001");
    let mut table = traffic(&[("private-00001", 100)], &[]);
    table.visibility = runway_api::Visibility::ClusterLocal;
    activator.registry.set_service(&private, Some(table));
    activator.registry.set_revision(&private_revision, settings(0, LONG));
    activator.registry.set_endpoints(&private_revision, &[ready(pod)]);
    let client = client();
    let answer = |entry, host: &'static str| {
        let client = client.clone();
        async move {
            let (status, _, body) = send(&client, get(entry, host, "/")).await;
            (status, body)
        }
    };
    let unknown = answer(activator.proxy_addr, "nothing.default.example.com").await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);
    let external = activator.proxy_addr;
    assert_eq!(answer(external, HOST).await, (StatusCode::OK, "hello".to_owned()));
    // A cluster host form, or a ClusterLocal Service, is answered exactly like a host that names nothing.
    for host in [
        "hello.default.svc.cluster.local",
        "hello.default.svc",
        "hello.default",
        "private.default.example.com",
    ] {
        let (status, body) = answer(external, host).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}");
        assert_eq!(body.replace(host, "nothing.default.example.com"), unknown.1, "{host}");
    }
    // A custom domain mapped to the ClusterLocal Service publishes it, at both entry points.
    let mapped = [("api.example.org".to_owned(), private.clone())].into_iter().collect();
    activator.registry.set_domains(mapped);
    assert_eq!(
        answer(external, "Api.Example.org").await,
        (StatusCode::OK, "hello".to_owned())
    );
    // The internal entry point serves every form and every Service.
    let internal = activator.internal_addr;
    for host in [
        HOST,
        "hello.default.svc.cluster.local",
        "hello.default",
        "private.default.svc.cluster.local",
        "private.default.example.com",
    ] {
        assert_eq!(
            answer(internal, host).await,
            (StatusCode::OK, "hello".to_owned()),
            "{host}"
        );
    }
}

#[tokio::test]
async fn while_draining_clients_are_told_to_move_their_keep_alive_connections() {
    let mut options = options([127, 0, 0, 1].into());
    options.drain_delay = Duration::from_secs(2);
    let activator = runway_activator::app::Activator::start(options).await.unwrap();
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
    let (mut http1, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut http2 = h2c_connection(activator.proxy_addr).await;
    let head =
        |response: &Response<hyper::body::Incoming>| (response.status(), response.headers().get("connection").cloned());
    let origin_form = || {
        Request::get("/")
            .header("host", HOST)
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let before = http1.send_request(origin_form()).await.unwrap();
    assert_eq!(head(&before), (StatusCode::OK, None));
    before.into_body().collect().await.unwrap();
    assert_eq!(http2.send_request(h2c_get("/")).await.unwrap().status(), StatusCode::OK);

    let health = activator.health.clone();
    let stopping = tokio::spawn(activator.shutdown());
    while health.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Still served during the drain delay, with the request to close after it.
    let during = http1.send_request(origin_form()).await.unwrap();
    assert_eq!(
        head(&during),
        (StatusCode::OK, Some(http::HeaderValue::from_static("close")))
    );
    // HTTP/2: GOAWAY, and the idle connection closes well before the drain delay ends.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !http2.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the HTTP/2 connection got no GOAWAY while draining"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_new_pod_is_routable_once_its_http_readiness_probe_passes() {
    let activator = activator().await;
    let ready_after = Instant::now() + Duration::from_millis(300);
    let pod = backend(move |request: Request<hyper::body::Incoming>| async move {
        let status = match request.uri().path() {
            "/ready" if Instant::now() < ready_after => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        let mut response = Response::new(Full::new(Bytes::from(request.uri().path().to_owned())));
        *response.status_mut() = status;
        response
    })
    .await;
    set_settings(
        &activator,
        Some(runway_activator::model::RevisionSettings {
            container_concurrency: 0,
            timeout: LONG,
            fast_probe: FastProbe::Http(vec!["/ready".into()]),
            failure: None,
            idle: Idle::Stop,
        }),
    );
    activator.registry.set_endpoints(
        &revision(),
        &[EndpointState {
            ready: false,
            ..ready(pod)
        }],
    );
    let (status, headers, body) = send(&client(), get(activator.proxy_addr, HOST, "/work")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "/work"));
    assert!(Instant::now() >= ready_after, "served only after the probe passed");
    assert_eq!(headers.get(COLD_START_HEADER).unwrap(), "true");
}

#[tokio::test]
async fn a_new_pod_with_a_startup_probe_gets_no_request_before_the_probe_passes() {
    let activator = activator().await;
    // The app answers 503 everywhere while it warms, as an app loading a model does; it declares only a startup
    // probe, so the operator gives it its default TCP readiness probe.
    let warm_after = Instant::now() + Duration::from_millis(300);
    let pod = backend(move |request: Request<hyper::body::Incoming>| async move {
        let mut response = Response::new(Full::new(Bytes::from(request.uri().path().to_owned())));
        if Instant::now() < warm_after {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        response
    })
    .await;
    let spec = runway_api::RevisionSpec::from_service_spec(&serde_json::from_value(serde_json::json!({
        "template": {"spec": {"containers": [{
            "image": "app",
            "ports": [{"containerPort": pod.port(), "name": "http"}],
            "startupProbe": {"httpGet": {"path": "/", "port": pod.port()}, "periodSeconds": 1, "failureThreshold": 60},
            "readinessProbe": {"tcpSocket": {"port": pod.port()}, "periodSeconds": 1},
        }]}},
        "timeoutSeconds": 30,
    }))
    .unwrap());
    set_settings(&activator, Some(runway_activator::sources::settings_of_spec(&spec)));
    activator.registry.set_endpoints(
        &revision(),
        &[EndpointState {
            ready: false,
            ..ready(pod)
        }],
    );
    let requests = (0..10).map(|_| send_owned(client(), get(activator.proxy_addr, HOST, "/work")));
    for (status, _, body) in futures::future::join_all(requests).await {
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "/work"),
            "a request reached the warming app"
        );
    }
    assert!(
        Instant::now() >= warm_after,
        "served only after the startup probe passed"
    );
}

/// Everything read until the activator closed the connection (within `bound`), and how the reading ended.
async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    bound: Duration,
) -> (Vec<u8>, std::io::Result<usize>) {
    let mut received = Vec::new();
    let ending = tokio::time::timeout(bound, tokio::io::AsyncReadExt::read_to_end(stream, &mut received))
        .await
        .expect("the activator closed the connection");
    (received, ending)
}

#[tokio::test]
async fn slow_clients_are_disconnected_after_the_header_read_timeout() {
    let mut options = options([127, 0, 0, 1].into());
    options.limits.header_read_timeout = Duration::from_millis(200);
    let activator = runway_activator::app::Activator::start(options).await.unwrap();
    let mut stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: hello.default\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // End of stream or a reset: either way the connection is gone, with no request served.
    let (buffer, _closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A client may still be sending when the activator closes its connection (the rest of a body nobody reads, the
/// next pipelined request, HTTP/2 frames crossing a GOAWAY). Closing a socket with unread bytes resets it, and the
/// reset throws away the part of the answer still in the activator's send buffer; the close must be orderly.
#[tokio::test]
async fn a_connection_closed_while_the_client_still_sends_keeps_its_whole_answer() {
    const ANSWER_BYTES: usize = 16 << 20;
    let activator = activator().await;
    let pod = backend(|_| async { Response::new(Full::new(Bytes::from(vec![b'a'; ANSWER_BYTES]))) }).await;
    route(&activator, 0, LONG, &[pod]);
    let (mut reading, mut writing) = TcpStream::connect(activator.proxy_addr).await.unwrap().into_split();
    let mut sent = format!("GET / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n").into_bytes();
    sent.extend(std::iter::repeat_n(b'x', 1 << 20));
    // Whether the activator reads all of it is its choice; the whole answer must arrive either way.
    tokio::spawn(async move { writing.write_all(&sent).await });
    let (received, ending) = read_until_closed(&mut reading, Duration::from_secs(10)).await;
    let head = String::from_utf8_lossy(&received[..received.len().min(17)]).into_owned();
    assert!(
        ending.is_ok()
            && head == "HTTP/1.1 200 OK\r\n"
            && received.ends_with(&[b'a'; 1024])
            && received.len() > ANSWER_BYTES,
        "ended with {ending:?} after {} bytes starting {head:?}",
        received.len()
    );
}

/// A client slowed down (a busy machine) may write again after the activator closed its connection: its next
/// request, sent before it read the answer's end, or HTTP/2 frames sent before it read a GOAWAY. The activator must
/// still be reading and dropping such bytes then; a closed socket answers them with a reset, and the reset throws
/// away what the client has not read yet (here the answer, for HTTP/2 the GOAWAY that says what may be sent again).
#[tokio::test]
async fn a_client_that_writes_again_after_a_pause_still_gets_its_whole_answer() {
    let activator = activator().await;
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let mut stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The slow client: it reads nothing for a while, so the answer and the activator's FIN wait in its buffer.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = stream.write_all(request.as_bytes()).await;
    // Time for a reset, if one comes, to arrive; after it every write fails (the broken pipe an HTTP/2 client
    // reports for all its open streams, without reading the GOAWAY waiting in its buffer).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = stream.write_all(request.as_bytes()).await;
    let (received, ending) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(
        late.is_ok() && later.is_ok(),
        "writes after the pause: {late:?}, then {later:?}"
    );
    assert!(
        ending.is_ok() && text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("hello"),
        "ended with {ending:?} after {text:?}"
    );
}

/// HTTP/2 clients that keep sending while the activator drains, as a gRPC channel does (a new connection when the
/// last one takes no more streams): every request the activator
/// did not take is one the client may send again (canceled, never sent, or refused by GOAWAY). None may end in a
/// reset connection, which leaves the client unable to tell whether the app saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_clients_sending_through_the_drain_see_goaway_never_a_reset() {
    let backend = hello_backend(Duration::ZERO).await;
    let mut unsafe_failures = Vec::new();
    let mut served = 0;
    for _ in 0..20 {
        let mut options = options([127, 0, 0, 1].into());
        options.drain_delay = Duration::from_millis(200);
        let activator = runway_activator::app::Activator::start(options).await.unwrap();
        route(&activator, 0, LONG, &[backend]);
        let mut clients = Vec::new();
        for _ in 0..32 {
            let proxy = activator.proxy_addr;
            clients.push(tokio::spawn(async move {
                let (mut served, mut failures) = (0, Vec::new());
                // A new connection whenever the last one takes no more streams, until the listener is gone.
                while let Ok(stream) = TcpStream::connect(proxy).await {
                    let Ok((mut http2, connection)) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await
                    else {
                        break;
                    };
                    tokio::spawn(connection);
                    while futures::future::poll_fn(|cx| http2.poll_ready(cx)).await.is_ok() {
                        match http2.send_request(h2c_get("/")).await {
                            Ok(response) if response.status() == StatusCode::OK => served += 1,
                            Ok(response) => failures.push(format!("status {}", response.status())),
                            Err(error) if may_send_again(&error) => {}
                            Err(error) => failures.push(format!("{error:?}")),
                        }
                    }
                }
                (served, failures)
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        activator.shutdown().await;
        for client in clients {
            let (ok, failures) = client.await.unwrap();
            served += ok;
            unsafe_failures.extend(failures);
        }
    }
    assert!(served > 0);
    assert!(
        unsafe_failures.is_empty(),
        "{} served; failures: {unsafe_failures:#?}",
        served
    );
}

/// Whether the request provably never reached the server (RFC 9113 §8.7): never sent, or refused by a GOAWAY whose
/// last stream id is below it (h2 reports those streams, and only those, as a remote GOAWAY).
fn may_send_again(error: &hyper::Error) -> bool {
    error.is_canceled()
        || std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<h2::Error>())
            .is_some_and(|h2| h2.is_go_away() && h2.is_remote())
}
