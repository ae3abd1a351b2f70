//! Revisions end to end on loopback: a Service's requests split by weight among its revisions, tags reach one
//! revision, every answer names its revision, and load is reported per revision.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use runway_activator::app::Activator;
use runway_activator::model::RevisionId;
use runway_activator::revision::{Peers, first_ranked};
use runway_activator::sources::standalone::{self, StaticConfig};
use runway_api::names::REVISION_HEADER;
use runway_api::stats::LoadReport;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(30);

/// A pod answering `status` with its revision's name as the body.
async fn pod_of(revision: &'static str, status: StatusCode) -> std::net::SocketAddr {
    backend(move |_request| async move {
        let mut response = Response::new(Full::new(Bytes::from_static(revision.as_bytes())));
        *response.status_mut() = status;
        response
    })
    .await
}

/// Sends `n` requests for `host` one after the other; the revisions that answered (by body), after checking that
/// each answer's header names the revision whose pod answered.
async fn answers(proxy: std::net::SocketAddr, host: &str, n: usize) -> BTreeMap<String, usize> {
    let client = client();
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let (status, headers, body) = send(&client, get(proxy, host, "/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers.get(REVISION_HEADER).unwrap(), body.as_str());
        *counts.entry(body).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_90_10_split_gives_the_canary_100_of_1000_and_its_tag_reaches_it_alone() {
    let activator = activator().await;
    let (stable, canary) = (
        pod_of("hello-stable", StatusCode::OK).await,
        pod_of("hello-canary", StatusCode::OK).await,
    );
    let config: StaticConfig = serde_saphyr::from_str(&format!(
        "routes:\n- host: hello.default\n  revisions:\n  \
         - {{name: hello-stable, backends: [\"{stable}\"], percent: 90}}\n  \
         - {{name: hello-canary, backends: [\"{canary}\"], percent: 10, tag: canary}}\n"
    ))
    .unwrap();
    standalone::apply(&activator.registry, &config, "example.com").unwrap();

    let counts = answers(activator.proxy_addr, HOST, 1000).await;
    let to_canary = counts["hello-canary"];
    assert!((95..=105).contains(&to_canary), "{counts:?}");
    assert_eq!(counts["hello-stable"] + to_canary, 1000);

    // The tag's host, at the external entry point and in the cluster's forms: the canary only.
    let tagged = answers(activator.proxy_addr, "canary-hello.default.example.com", 20).await;
    assert_eq!(tagged, [("hello-canary".to_owned(), 20)].into());
    for host in ["canary-hello.default.svc.cluster.local", "canary-hello.default"] {
        let tagged = answers(activator.internal_addr, host, 5).await;
        assert_eq!(tagged, [("hello-canary".to_owned(), 5)].into(), "{host}");
    }
    // An unknown tag names nothing.
    let (status, _, _) = send(
        &client(),
        get(activator.proxy_addr, "blue-hello.default.example.com", "/"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_cannot_choose_the_revision() {
    let activator = activator().await;
    let (a, b) = (
        pod_of("hello-a", StatusCode::OK).await,
        pod_of("hello-b", StatusCode::OK).await,
    );
    install_split(&activator, &[("hello-a", a), ("hello-b", b)]);
    let client = client();
    let mut counts = BTreeMap::<String, usize>::new();
    for _ in 0..10 {
        let mut request = get(activator.proxy_addr, HOST, "/");
        request
            .headers_mut()
            .insert(REVISION_HEADER, "hello-b".parse().unwrap());
        *counts.entry(send(&client, request).await.2).or_default() += 1;
    }
    assert_eq!(counts, [("hello-a".to_owned(), 5), ("hello-b".to_owned(), 5)].into());
}

/// The test Service split equally among `revisions`, each with one pod and containerConcurrency 1.
fn install_split(activator: &Activator, revisions: &[(&str, std::net::SocketAddr)]) {
    let percent = 100 / u32::try_from(revisions.len()).unwrap();
    let split: Vec<(&str, u32)> = revisions.iter().map(|(name, _)| (*name, percent)).collect();
    activator.registry.set_service(&key(), Some(traffic(&split, &[])));
    for (name, pod) in revisions {
        let id = RevisionId::new("default", "hello", *name);
        activator.registry.set_revision(&id, settings(1, LONG));
        activator.registry.set_endpoints(&id, &[ready(*pod)]);
    }
}

#[tokio::test]
async fn a_request_for_a_service_without_traffic_waits_until_its_status_routes() {
    let activator = activator().await;
    activator.registry.set_service(&key(), Some(traffic(&[], &[])));
    // Sent before the Service routes anywhere (as during an upgrade from a release without revisions, or right
    // after a create): held, then served once the routing table arrives, not answered 503.
    let client = client();
    let waiting = tokio::spawn({
        let request = get(activator.proxy_addr, HOST, "/");
        async move { send(&client, request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "answered before the Service routed: {:?}",
        waiting.await
    );
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    let (status, headers, _) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(REVISION_HEADER).unwrap(), REVISION);
}

#[tokio::test]
async fn a_failing_revision_answers_503_at_once_naming_itself() {
    let activator = activator().await;
    let mut failing = settings(0, LONG);
    failing.as_mut().unwrap().failure = Some("hello-00001: container exits with code 1".into());
    set_settings(&activator, failing);
    let started = Instant::now();
    let (status, headers, body) = send(&client(), get(activator.proxy_addr, HOST, "/")).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "hello-00001: container exits with code 1\n");
    assert_eq!(headers.get(REVISION_HEADER).unwrap(), REVISION);
}

#[tokio::test]
async fn load_reports_and_metrics_count_each_revisions_responses_and_server_errors() {
    let activator = activator().await;
    let (good, bad) = (
        pod_of("hello-good", StatusCode::OK).await,
        pod_of("hello-bad", StatusCode::INTERNAL_SERVER_ERROR).await,
    );
    install_split(&activator, &[("hello-good", good), ("hello-bad", bad)]);
    let mut reports = load_stream(&activator).await;
    let client = client();
    for _ in 0..20 {
        send(&client, get(activator.proxy_addr, HOST, "/")).await;
    }
    // Sums over the periodic reports until every response was counted.
    let mut totals = BTreeMap::<String, (String, u64, u64)>::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while totals.values().map(|(_, requests, _)| requests).sum::<u64>() < 20 {
        assert!(Instant::now() < deadline, "{totals:?}");
        for load in reports.next().await.services {
            let total = totals.entry(load.revision).or_insert((load.name, 0, 0));
            total.1 += load.requests;
            total.2 += load.server_errors;
        }
    }
    assert_eq!(
        totals,
        [
            ("hello-bad".to_owned(), ("hello".to_owned(), 10, 10)),
            ("hello-good".to_owned(), ("hello".to_owned(), 10, 0)),
        ]
        .into()
    );
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
            "runway_activator_requests_total{namespace=\"default\",service=\"hello\",revision=\"hello-bad\",code=\"500\"} 10"
        ),
        "{metrics}"
    );
    // A deleted revision's series go with it.
    activator
        .registry
        .set_revision(&RevisionId::new("default", "hello", "hello-bad"), None);
    activator
        .registry
        .set_endpoints(&RevisionId::new("default", "hello", "hello-bad"), &[]);
    let metrics = send(
        &client,
        Request::get(format!("http://{}/metrics", activator.admin_addr))
            .body(Full::default())
            .unwrap(),
    )
    .await
    .2;
    assert!(!metrics.contains("hello-bad"), "{metrics}");
    assert!(metrics.contains("hello-good"), "{metrics}");
}

/// The periodic reports of an activator's load stream.
struct Reports(BufReader<TcpStream>);

impl Reports {
    async fn next(&mut self) -> LoadReport {
        let mut line = String::new();
        loop {
            line.clear();
            self.0.read_line(&mut line).await.unwrap();
            if let Ok(report) = LoadReport::from_line(line.trim().as_bytes()) {
                return report;
            }
        }
    }
}

async fn load_stream(activator: &Activator) -> Reports {
    let mut stream = TcpStream::connect(activator.admin_addr).await.unwrap();
    stream
        .write_all(b"GET /v1/load HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut reports = Reports(BufReader::new(stream));
    reports.next().await; // the latest report, sent at once
    reports
}

/// An activator that holds no slot on a revision's pods forwards its requests to the peer that does, naming the
/// revision it picked: the peer serves that one, so the split is decided where the request arrived, once.
#[tokio::test]
async fn a_request_forwarded_to_a_peer_keeps_the_revision_it_was_given() {
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let a = Activator::start(options(ip_a)).await.unwrap();
    let b = Activator::start(options(ip_b)).await.unwrap();
    let (one, two) = (
        pod_of("hello-one", StatusCode::OK).await,
        pod_of("hello-two", StatusCode::OK).await,
    );
    for (activator, me) in [(&a, ip_a), (&b, ip_b)] {
        activator
            .registry
            .set_peers(Peers::new(me, [a.internal_addr, b.internal_addr]));
        install_split(activator, &[("hello-one", one), ("hello-two", two)]);
    }
    // Both pods listen on 127.0.0.1: one activator holds both single slots, the other forwards everything.
    let (holder, forwarder) = if first_ranked(one.ip(), &[ip_a, ip_b]) == Some(ip_a) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Requests arrive at both in turn. Were the holder to pick again for the forwarded ones, its single rotation
    // would give each activator's requests one revision only.
    let client = client();
    let mut by_entry = BTreeMap::<(bool, String), usize>::new();
    for i in 0..20 {
        let entry = if i % 2 == 0 { forwarder } else { holder };
        let (status, headers, body) = send(&client, get(entry.proxy_addr, HOST, "/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get(REVISION_HEADER).unwrap(), body.as_str());
        *by_entry.entry((i % 2 == 0, body)).or_default() += 1;
    }
    assert_eq!(
        by_entry,
        [
            ((false, "hello-one".to_owned()), 5),
            ((false, "hello-two".to_owned()), 5),
            ((true, "hello-one".to_owned()), 5),
            ((true, "hello-two".to_owned()), 5),
        ]
        .into()
    );
}
