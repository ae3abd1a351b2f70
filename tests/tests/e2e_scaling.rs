//! End-to-end tests of scaling: an idle Service goes to zero and stays Ready, a cold start serves the first request
//! and a burst with one pod and decides at once, an app that warms behind a startup probe gets nothing early, steady
//! load scales to the expected count within the bound and back, maxScale holds under a burst on cc=1 pods, and
//! lowered bounds apply at once.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t03` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_scaling -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use runway_api::Service;
use runway_tests::answers::{ensure_all_ok, unix_ms};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Load};
use runway_tests::runway::{self, READY, REQUEST, deploy, quick_zero};
use runway_tests::scenario::runway_scenario;
use serde_json::json;

#[tokio::test]
async fn t03_an_idle_service_scales_to_zero_and_stays_ready() {
    runway_scenario("e2e-zero", |cluster, ns| async move {
        deploy(&cluster, &ns, "idle", &[], quick_zero()).await?;
        let started = Instant::now();
        runway::wait_zero(&cluster, &ns, "idle", Duration::from_secs(60)).await?;
        eprintln!("scaled to zero, pods gone {:?} after Ready", started.elapsed());
        let service = runway::wait_ready(&cluster, &ns, "idle", Duration::from_secs(5)).await?;
        ensure!(
            runway::condition(&service, "ConfigurationReady") == "True/ScaledToZero",
            "{:?}",
            service.status
        );
        Ok(())
    })
    .await;
}

/// The instant the pod's app started listening, from its log line `listening ... unix_ms=N`.
async fn listen_instant(cluster: &Cluster, ns: &str, pod: &str) -> anyhow::Result<u128> {
    let logs = cluster.kubectl().run(&["-n", ns, "logs", pod]).await?;
    let line = logs
        .lines()
        .find(|l| l.contains("listening"))
        .context("no listening line")?;
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("unix_ms="))
        .context("no unix_ms")?;
    Ok(value.parse()?)
}

/// When the latest ScaledFromZero event of the namespace was recorded, in Unix milliseconds (events.k8s.io keeps
/// microseconds).
async fn scaled_from_zero_at(cluster: &Cluster, ns: &str) -> anyhow::Result<u128> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client.clone(), ns);
    let list = events.list(&ListParams::default()).await?;
    let latest = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ScaledFromZero"))
        .filter_map(|e| e.event_time.as_ref())
        .map(|t| t.0.as_millisecond())
        .max()
        .context("no ScaledFromZero event")?;
    Ok(u128::try_from(latest)?)
}

#[tokio::test]
async fn t04_cold_start_serves_the_first_request_and_a_burst_with_one_pod() {
    runway_scenario("e2e-cold", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "cold", &[], quick_zero()).await?;
        runway::wait_zero(&cluster, &ns, "cold", Duration::from_secs(60)).await?;

        let sent_ms = unix_ms();
        let first = load::get(&load::client(), &target, "/", REQUEST).await;
        ensure!(first.ok() && first.cold_start, "first request at zero: {first:?}");
        let pod = first.body.trim().strip_prefix("hello from ").context("no pod name")?.to_owned();
        let listening_ms = listen_instant(&cluster, &ns, &pod).await?;
        eprintln!(
            "cold start: time to first byte {:?}; the app listened {} ms after the request was sent, answered {} ms after",
            first.time_to_headers,
            listening_ms.saturating_sub(sent_ms),
            (sent_ms + first.time_to_headers.as_millis()).saturating_sub(listening_ms),
        );
        // The scale-up decision follows the poke, not the autoscaler's tick (which would add up to a second).
        let decided_ms = scaled_from_zero_at(&cluster, &ns).await?;
        let decision = decided_ms.saturating_sub(sent_ms);
        eprintln!("scale-from-zero decision {decision} ms after the request was sent");
        ensure!(decision < 500, "the ScaledFromZero event came {decision} ms after the request");

        runway::wait_zero(&cluster, &ns, "cold", Duration::from_secs(60)).await?;
        let burst = load::burst(&target, "/", 50, REQUEST).await;
        ensure_all_ok("50 concurrent requests at zero", &burst)?;
        let mut ttfb: Vec<Duration> = burst.iter().map(|o| o.time_to_headers).collect();
        eprintln!("burst time to first byte: p50 {:?}, max {:?}", load::percentile(&mut ttfb, 0.5), load::percentile(&mut ttfb, 1.0));
        let started = runway::pods(&cluster, &ns, "cold").await?;
        ensure!(started.len() == 1, "one cold start, but {} pods were started", started.len());
        ensure!(burst.iter().all(|o| o.cold_start), "every request of the burst waited for the one cold start");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t05_steady_load_scales_to_the_expected_count_within_the_bound_and_back_to_zero() {
    runway_scenario("e2e-load", |cluster, ns| async move {
        // Per-pod target 10 x 70% = 7; 20 clients each holding a 200 ms request keep 20 in flight: ceil(20/7) = 3
        // pods, never more than ceil(3 x 1.1) = 4.
        let spec = json!({"scaling": {"target": 10, "stableWindowSeconds": 10, "scaleToZeroGracePeriodSeconds": 0}});
        let target = deploy(&cluster, &ns, "load", &[], spec).await?;
        let (expected, bound) = (3, 4);
        let load = Load::start(&target, "/sleep?ms=200", 20, REQUEST);
        let started = Instant::now();
        let mut highest = 0;
        let mut reached = None;
        // The panic window (1 s) plus pod start, with a margin for this 2-core machine.
        while started.elapsed() < Duration::from_secs(40) {
            let now = runway::scale(&cluster, &ns, "load").await?;
            highest = highest.max(now);
            if now >= expected && reached.is_none() {
                reached = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let outcomes = load.finish().await;
        eprintln!("reached {expected} pods after {reached:?}; highest {highest}");
        ensure!(
            reached.is_some_and(|t| t < Duration::from_secs(30)),
            "never reached {expected} pods in time"
        );
        ensure!(highest <= bound, "scaled to {highest} pods, above the bound {bound}");
        ensure_all_ok("steady load", &outcomes)?;
        runway::wait_scale(&cluster, &ns, "load", 0, Duration::from_secs(60)).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t07_container_concurrency_1_with_max_scale_10_serves_100_concurrent_requests() {
    runway_scenario("e2e-burst", |cluster, ns| async move {
        let spec = json!({"containerConcurrency": 1, "scaling": {"maxScale": 10}});
        let target = deploy(&cluster, &ns, "burst", &[("REJECT_OVERLAP", "true")], spec).await?;
        let outcomes = load::burst(&target, "/sleep?ms=300", 100, Duration::from_secs(120)).await;
        ensure_all_ok("100 concurrent 300 ms requests", &outcomes)?;
        let highest = runway::scale(&cluster, &ns, "burst").await?;
        ensure!(highest <= 10, "maxScale 10, but {highest} replicas");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t21_lowered_bounds_apply_at_once_also_within_the_first_stable_window() {
    runway_scenario("e2e-bounds", |cluster, ns| async move {
        // A 60 s stable window: a new Service's history holds its count that long unless the bounds say otherwise.
        let scaling = |n: i32| json!({"scaling": {"minScale": n, "maxScale": n, "stableWindowSeconds": 60}});
        runway::create(&cluster, &ns, &runway::hello_service("bounded", &[], scaling(4))?).await?;
        runway::wait_scale(&cluster, &ns, "bounded", 4, READY).await?;
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        let lowered = Instant::now();
        services
            .patch(
                "bounded",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": scaling(1)})),
            )
            .await?;
        runway::wait_scale(&cluster, &ns, "bounded", 1, Duration::from_secs(10)).await?;
        eprintln!("maxScale 4 -> 1 applied {:?} after the patch", lowered.elapsed());
        Ok(())
    })
    .await;
}

/// An app that answers 503 while it warms and declares a startup probe (as apps loading a model do) gets no request
/// before the kubelet would call it started, also at a cold start where the activator probes it itself.
#[tokio::test]
async fn t32_a_warming_app_with_a_startup_probe_gets_no_request_before_the_probe_passes() {
    runway_scenario("e2e-warming", |cluster, ns| async move {
        let mut container = runway::hello_container(&[("WARMUP_MS", "4000")]);
        container["startupProbe"] =
            json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "failureThreshold": 60});
        let mut spec = quick_zero();
        spec["template"] = json!({"spec": {"containers": [container]}});
        let target = deploy(&cluster, &ns, "warming", &[], spec).await?;
        runway::wait_zero(&cluster, &ns, "warming", Duration::from_secs(90)).await?;
        let burst = load::burst(&target, "/", 10, REQUEST).await;
        ensure_all_ok("10 concurrent requests at zero to an app warming for 4 s", &burst)?;
        let mut ttfb: Vec<Duration> = burst.iter().map(|o| o.time_to_headers).collect();
        let first = load::percentile(&mut ttfb, 0.0);
        eprintln!(
            "time to first byte: first {first:?}, last {:?}",
            load::percentile(&mut ttfb, 1.0)
        );
        ensure!(
            first >= Duration::from_secs(4),
            "a request was answered {first:?} after it was sent, before the app was warm"
        );
        Ok(())
    })
    .await;
}
