//! Two activators sharing one containerConcurrency=1 pod: together they never send it two requests at once.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use runway_activator::app::Activator;
use runway_activator::revision::{Peers, first_ranked};

#[tokio::test]
async fn two_activators_never_overlap_on_a_single_slot_pod() {
    let (ip_a, ip_b, a, b) = two_activators().await;
    a.registry
        .set_peers(Peers::new(ip_a, [a.internal_addr, b.internal_addr]));
    b.registry
        .set_peers(Peers::new(ip_b, [a.internal_addr, b.internal_addr]));

    let detector = Arc::new(OverlapDetector::default());
    let pod = single_request_backend(detector.clone(), Duration::from_millis(5)).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
    }
    let owner = first_ranked(pod.ip(), &[ip_a, ip_b]).unwrap();

    // Every periodic report from here on: the reporter runs every second, and a slow machine may cross one.
    let mut reports_a = a.hub.subscribe().1;
    let mut reports_b = b.hub.subscribe().1;
    let client = client();
    let requests: Vec<_> = (0..80)
        .map(|i| {
            let proxy = if i % 2 == 0 { a.proxy_addr } else { b.proxy_addr };
            let client = client.clone();
            tokio::spawn(async move { send(&client, get(proxy, HOST, "/")).await })
        })
        .collect();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(detector.overlaps.load(SeqCst), 0);
    assert_eq!(detector.served.load(SeqCst), 80);

    // The activator without slots forwarded its half and did not count it as its own load: the owner reports
    // every one of the 80 responses, the other none.
    let responses_a = responses_reported(&a, &mut reports_a);
    let responses_b = responses_reported(&b, &mut reports_b);
    let (owner_responses, other_responses) = if owner == ip_a {
        (responses_a, responses_b)
    } else {
        (responses_b, responses_a)
    };
    assert_eq!((owner_responses, other_responses), (80, 0));
}

/// The responses an activator reported since `reports` subscribed, its load not yet reported included.
fn responses_reported(activator: &Activator, reports: &mut tokio::sync::broadcast::Receiver<bytes::Bytes>) -> u64 {
    let mut loads = activator.registry.take_loads(tokio::time::Instant::now());
    while let Ok(line) = reports.try_recv() {
        let report = runway_api::stats::LoadReport::from_line(line.strip_suffix(b"\n").unwrap_or(&line)).unwrap();
        if report.kind == runway_api::stats::ReportKind::Periodic {
            loads.extend(report.services);
        }
    }
    loads.iter().map(|load| load.requests).sum()
}

/// Two activators on 127.0.0.1 and 127.0.0.2 that do not know each other yet.
async fn two_activators() -> (IpAddr, IpAddr, Activator, Activator) {
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let a = Activator::start(options(ip_a)).await.unwrap();
    let b = Activator::start(options(ip_b)).await.unwrap();
    (ip_a, ip_b, a, b)
}

type Answer = (StatusCode, http::HeaderMap, String);

fn both_served_without_overlap(first: Answer, second: Answer, detector: &OverlapDetector) {
    assert_eq!((first.0, first.2.as_str()), (StatusCode::OK, "ok"));
    assert_eq!((second.0, second.2.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(detector.overlaps.load(SeqCst), 0);
}

/// Waits until the app has a request in flight.
async fn until_in_flight(detector: &OverlapDetector) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while detector.in_flight.load(SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first request never reached the app"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The view Kubernetes gives `me` when `members` are listed as ready: one not listed itself counts as leaving.
fn view(me: IpAddr, members: &[&Activator]) -> Peers {
    let peers =
        Peers::new(me, members.iter().map(|a| a.internal_addr)).with_admins(members.iter().map(|a| a.admin_addr));
    if members.iter().any(|a| a.proxy_addr.ip() == me) {
        peers
    } else {
        peers.leaving()
    }
}

/// The activator holding a cc=1 pod's slot leaves while a request is in flight there: the peer that gains the slot
/// waits for that request to end before it sends its own.
#[tokio::test]
async fn a_slot_given_up_by_a_leaving_activator_waits_for_its_request() {
    let (ip_a, ip_b, a, b) = two_activators().await;
    a.registry.set_peers(view(ip_a, &[&a, &b]));
    b.registry.set_peers(view(ip_b, &[&a, &b]));
    let detector = Arc::new(OverlapDetector::default());
    let pod = single_request_backend(detector.clone(), Duration::from_millis(600)).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
    }
    let (holder, gainer) = if first_ranked(pod.ip(), &[ip_a, ip_b]) == Some(ip_a) {
        (&a, &b)
    } else {
        (&b, &a)
    };

    let client = client();
    let first = tokio::spawn({
        let (client, proxy) = (client.clone(), holder.proxy_addr);
        async move { send(&client, get(proxy, HOST, "/")).await }
    });
    until_in_flight(&detector).await;
    // The holder drains; its peer sees it gone from the ready list.
    holder.registry.leave();
    gainer.registry.set_peers(view(gainer.registry.peers().me(), &[gainer]));
    let second = send(&client, get(gainer.proxy_addr, HOST, "/")).await;

    both_served_without_overlap(first.await.unwrap(), second, &detector);
}

/// An activator joins while the pod's slot, which moves to it, is busy at the one that held it alone: the newcomer
/// waits for that request to end.
#[tokio::test]
async fn a_slot_taken_by_a_joining_activator_waits_for_the_request_of_its_holder() {
    let (ip_a, ip_b, a, b) = two_activators().await;
    let detector = Arc::new(OverlapDetector::default());
    let pod = single_request_backend(detector.clone(), Duration::from_millis(600)).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
    }
    // The joiner is the one the pod's slot goes to once both count.
    let (joiner, holder) = if first_ranked(pod.ip(), &[ip_a, ip_b]) == Some(ip_a) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    holder.registry.set_peers(view(holder.registry.peers().me(), &[holder]));
    // Before it is ready, Kubernetes lists only the holder.
    joiner.registry.set_peers(view(joiner.registry.peers().me(), &[holder]));

    let client = client();
    let first = tokio::spawn({
        let (client, proxy) = (client.clone(), holder.proxy_addr);
        async move { send(&client, get(proxy, HOST, "/")).await }
    });
    until_in_flight(&detector).await;
    joiner.registry.set_peers(view(joiner.registry.peers().me(), &[&a, &b]));
    holder.registry.set_peers(view(holder.registry.peers().me(), &[&a, &b]));
    let second = send(&client, get(joiner.proxy_addr, HOST, "/")).await;

    both_served_without_overlap(first.await.unwrap(), second, &detector);
}

/// A draining activator forwards what it still receives, also over HTTP/2; the peer it forwards to no longer counts
/// it among the activators that share the slots, but still trusts it as an activator.
#[tokio::test]
async fn a_draining_activator_forwards_h2c_to_a_peer_that_no_longer_counts_it() {
    let (ip_a, ip_b, a, b) = two_activators().await;
    let pod = hello_backend(Duration::ZERO).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
    }
    // Kubernetes lists only `a` as ready; `b` is still listed, terminating.
    a.registry.set_peers(view(ip_a, &[&a]).with_members([ip_a, ip_b]));
    b.registry.set_peers(view(ip_b, &[&a]).with_members([ip_a, ip_b]));
    let mut h2c = h2c_connection(b.proxy_addr).await;
    let response = h2c.send_request(h2c_get("/")).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
}
