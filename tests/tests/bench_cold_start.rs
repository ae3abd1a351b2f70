//! Cold-start benchmark on the cluster: time to first byte of a request to a Runway Service at zero, against the
//! floor Kubernetes itself sets, measured in the same run: a plain Deployment scaled from 0 to 1 by an API call,
//! until the pod answers on its IP. Both use the same image and the same pod defaults Runway applies.
//!
//! `cargo test -p runway-tests --features cluster --test bench_cold_start -- --ignored --nocapture`
//! (ROUNDS=N, default 5). Prints a Markdown table for docs/benchmarks.md.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Target};
use runway_tests::runway::{self, READY};
use runway_tests::scenario::run_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

const NAME: &str = "cold";

#[tokio::test]
#[ignore = "a benchmark: run it with --ignored"]
async fn cold_start_against_the_kubernetes_floor() {
    run_scenario("bench-cold", |cluster, ns| async move {
        let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
        let spec = json!({"scaling": {"stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0}});
        runway::create(&cluster, &ns, &runway::hello_service(NAME, &[], spec)?).await?;
        runway::wait_ready(&cluster, &ns, NAME, READY).await?;
        // The floor: Runway's own Deployment copied under another name, so the pod spec is identical.
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let mut floor = deployments.get(NAME).await?;
        floor.metadata = kube::api::ObjectMeta {
            name: Some("floor".into()),
            ..Default::default()
        };
        let spec = floor.spec.as_mut().context("no spec")?;
        spec.replicas = Some(0);
        let labels = [("app".to_owned(), "floor".to_owned())].into_iter().collect();
        spec.selector.match_labels = Some(labels);
        let pod_meta = spec.template.metadata.get_or_insert_with(Default::default);
        pod_meta.labels = Some([("app".to_owned(), "floor".to_owned())].into_iter().collect());
        floor.status = None;
        deployments.create(&PostParams::default(), &floor).await?;

        let target = Target {
            address: runway::activator_address(&cluster).await?,
            host: runway::host(NAME, &ns),
        };
        let (mut runway_times, mut floor_times) = (vec![], vec![]);
        for round in 1..=rounds {
            let runway_time = runway_cold_start(&cluster, &ns, &target).await?;
            let floor_time = floor_cold_start(&cluster, &ns).await?;
            eprintln!("round {round}: Runway {runway_time:?}, Kubernetes floor {floor_time:?}");
            runway_times.push(runway_time);
            floor_times.push(floor_time);
        }
        let (r50, f50) = (
            load::percentile(&mut runway_times, 0.5),
            load::percentile(&mut floor_times, 0.5),
        );
        let (rmax, fmax) = (
            load::percentile(&mut runway_times, 1.0),
            load::percentile(&mut floor_times, 1.0),
        );
        println!("| measure | median | worst |\n| --- | --- | --- |");
        println!(
            "| Runway: request at zero -> first byte | {} ms | {} ms |",
            r50.as_millis(),
            rmax.as_millis()
        );
        println!(
            "| floor: scale 0 -> 1 -> pod answers on its IP | {} ms | {} ms |",
            f50.as_millis(),
            fmax.as_millis()
        );
        println!(
            "| ratio Runway / floor | {:.2} | |",
            r50.as_secs_f64() / f50.as_secs_f64()
        );
        Ok(())
    })
    .await;
}

/// Waits until Service NAME has no pod, then times one request through the activator.
async fn runway_cold_start(cluster: &Cluster, ns: &str, target: &Target) -> anyhow::Result<Duration> {
    runway::wait_zero(cluster, ns, NAME, Duration::from_secs(60)).await?;
    let outcome = load::get(&load::client(), target, "/", Duration::from_secs(60)).await;
    anyhow::ensure!(outcome.ok() && outcome.cold_start, "request at zero: {outcome:?}");
    Ok(outcome.time_to_headers)
}

/// Scales the floor Deployment from 0 to 1 and times until its pod answers on its IP; then back to 0.
async fn floor_cold_start(cluster: &Cluster, ns: &str) -> anyhow::Result<Duration> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = ListParams::default().labels("app=floor");
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    let started = Instant::now();
    deployments
        .patch_scale("floor", &PatchParams::default(), &scale(1))
        .await?;
    let client = load::client();
    loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the floor pod never answered"
        );
        let ip = pods
            .list(&selector)
            .await?
            .items
            .iter()
            .find_map(|p| p.status.as_ref()?.pod_ip.clone());
        if let Some(ip) = ip {
            let direct = Target {
                address: format!("{ip}:8080").parse()?,
                host: "floor".into(),
            };
            if load::get(&client, &direct, "/", Duration::from_millis(200)).await.ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    deployments
        .patch_scale("floor", &PatchParams::default(), &scale(0))
        .await?;
    wait_until("the floor pod gone", Duration::from_secs(60), || async {
        let n = pods.list(&selector).await.map_err(|e| e.to_string())?.items.len();
        if n == 0 { Ok(()) } else { Err(format!("{n} pods")) }
    })
    .await?;
    Ok(took)
}
