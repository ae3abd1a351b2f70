//! Two activators sharing one containerConcurrency=1 pod: together they never send it two requests at once.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::*;
use http::StatusCode;
use runway_activator::app::Activator;
use runway_activator::peers::Peers;
use runway_activator::slots::first_ranked;

#[tokio::test]
async fn two_activators_never_overlap_on_a_single_slot_pod() {
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let a = Activator::start(options(ip_a)).await.unwrap();
    let b = Activator::start(options(ip_b)).await.unwrap();
    a.registry.set_peers(Peers::new(ip_a, [a.proxy_addr, b.proxy_addr]));
    b.registry.set_peers(Peers::new(ip_b, [a.proxy_addr, b.proxy_addr]));

    let detector = Arc::new(OverlapDetector::default());
    let pod = single_request_backend(detector.clone(), Duration::from_millis(5)).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
    }
    let owner = first_ranked(pod.ip(), &[ip_a, ip_b]).unwrap();

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

    // The activator without slots forwarded its half and did not count it as its own load.
    let (owner, non_owner) = if owner == ip_a { (&a, &b) } else { (&b, &a) };
    let loads = non_owner.registry.take_loads(tokio::time::Instant::now());
    assert!(loads.is_empty(), "{loads:?}");
    let loads = owner.registry.take_loads(tokio::time::Instant::now());
    assert!(loads[0].rps > 0.0, "{loads:?}");
}
