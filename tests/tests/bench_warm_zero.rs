//! Warm-zero benchmark on the cluster (docs/benchmarks.md, "Warm zero"): for the same app and the same client, time
//! to first byte of a request to a warm pod, to a frozen pod (resumed by a thaw) and to a Service at zero (a real
//! cold start), all measured in one run; and the app's CPU time while frozen against while idle and running.
//!
//! `hack/bench/warm-zero/run.sh` (ROUNDS=N warm and frozen rounds, default 20; COLD_ROUNDS=N, default 5), or
//! `cargo test -p runway-tests --features cluster --test bench_warm_zero -- --ignored --nocapture`. Writes
//! target/bench/warm-zero.json and prints a Markdown table.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use runway_tests::cgroups::{kernel_frozen, pod_cpu_nanos};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, HttpClient, Outcome, Target};
use runway_tests::runway::{self, READY, REQUEST};
use runway_tests::scenario::run_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

/// Frozen this long after its last request.
const FREEZE_AFTER_MS: u64 = 500;
/// The window over which CPU time is read.
const CPU_WINDOW: Duration = Duration::from_secs(5);

fn env_rounds(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|r| r.parse().ok()).unwrap_or(default)
}

async fn ttfb(client: &HttpClient, target: &Target) -> anyhow::Result<Outcome> {
    let outcome = load::get(client, target, "/", REQUEST).await;
    ensure!(outcome.ok(), "GET /: {}", outcome.label());
    Ok(outcome)
}

/// Waits until the kernel has the Service's one pod frozen (the kernel's word, not the mark alone: a thawed pod's
/// mark goes only after the thaw's answer).
async fn wait_frozen(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Pod> {
    let what = format!("{ns}/{name}'s pod frozen");
    let pod = wait_until(what, Duration::from_secs(30), || async {
        let pods = runway::pods(cluster, ns, name).await.map_err(|e| e.to_string())?;
        match pods.iter().find(|pod| kernel_frozen(pod).unwrap_or(false)) {
            Some(pod) => Ok(pod.clone()),
            None => Err(format!("{} pod(s), none frozen", pods.len())),
        }
    })
    .await?;
    Ok(pod)
}

/// CPU time per second of wall time of the pod over `CPU_WINDOW`, in milliseconds.
async fn cpu_ms_per_s(pod: &Pod) -> anyhow::Result<f64> {
    let before = pod_cpu_nanos(pod)?;
    tokio::time::sleep(CPU_WINDOW).await;
    let used = pod_cpu_nanos(pod)? - before;
    Ok(used as f64 / 1e6 / CPU_WINDOW.as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(outcomes: &[Outcome]) -> Vec<f64> {
    let mut ms: Vec<f64> = outcomes.iter().map(|o| o.time_to_headers.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

#[tokio::test]
#[ignore = "a benchmark: run it with --ignored"]
async fn resume_from_frozen_against_warm_and_cold() {
    run_scenario("bench-warm-zero", |cluster, ns| async move {
        let rounds = env_rounds("ROUNDS", 20);
        let cold_rounds = env_rounds("COLD_ROUNDS", 5);
        let quick = json!({"stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0});
        let mut frozen_spec = quick.clone();
        frozen_spec["idle"] = json!("Freeze");
        frozen_spec["freezeAfterMillis"] = json!(FREEZE_AFTER_MS);
        frozen_spec["frozenRetentionSeconds"] = json!(3600);
        runway::create(
            &cluster,
            &ns,
            &runway::hello_service("frozen", &[], json!({"scaling": frozen_spec}))?,
        )
        .await?;
        runway::create(
            &cluster,
            &ns,
            &runway::hello_service("cold", &[], json!({"scaling": quick}))?,
        )
        .await?;
        // The CPU baseline: the same app idle and running.
        let idle = json!({"scaling": {"minScale": 1}});
        runway::create(&cluster, &ns, &runway::hello_service("running", &[], idle)?).await?;
        runway::wait_ready(&cluster, &ns, "frozen", READY).await?;
        runway::wait_ready(&cluster, &ns, "cold", READY).await?;
        runway::wait_ready(&cluster, &ns, "running", READY).await?;
        let address = runway::activator_address(&cluster).await?;
        let frozen = Target {
            address,
            host: runway::host("frozen", &ns),
        };
        let cold = Target {
            address,
            host: runway::host("cold", &ns),
        };
        let client = load::client();

        // Warm and frozen, round by round on one keep-alive client: a warm request right after the last one, then a
        // request once the pod is frozen.
        ttfb(&client, &frozen).await?;
        let (mut warm, mut resumed) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            warm.push(ttfb(&client, &frozen).await?);
            wait_frozen(&cluster, &ns, "frozen").await?;
            let outcome = ttfb(&client, &frozen).await?;
            ensure!(!outcome.cold_start, "round {round}: a cold start instead of a thaw");
            resumed.push(outcome);
        }
        // CPU: the pod frozen, then the same pod thawed and idle (its ticker runs).
        let pod = wait_frozen(&cluster, &ns, "frozen").await?;
        let frozen_cpu = cpu_ms_per_s(&pod).await?;
        let running = runway::pods(&cluster, &ns, "running").await?;
        let running = running.first().context("the running Service's pod")?;
        let idle_cpu = cpu_ms_per_s(running).await?;

        // Real cold starts of the same app, each from zero.
        let mut cold_starts = Vec::new();
        for round in 0..cold_rounds {
            runway::wait_zero(&cluster, &ns, "cold", Duration::from_secs(90)).await?;
            let outcome = ttfb(&client, &cold).await?;
            ensure!(outcome.cold_start, "round {round}: no cold start");
            cold_starts.push(outcome);
        }

        let (warm_ms, resumed_ms, cold_ms) = (millis(&warm), millis(&resumed), millis(&cold_starts));
        let row = |name: &str, ms: &[f64]| {
            format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} |",
                ms.len(),
                percentile(ms, 50.0),
                percentile(ms, 95.0),
                ms.last().copied().unwrap_or_default()
            )
        };
        println!("| request | rounds | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|");
        println!("{}", row("warm (pod running)", &warm_ms));
        println!("{}", row("resumed (pod frozen, thawed by the request)", &resumed_ms));
        println!("{}", row("cold start (Service at zero)", &cold_ms));
        let gap = percentile(&resumed_ms, 50.0) - percentile(&warm_ms, 50.0);
        println!(
            "\nresume - warm at p50: {gap:.2} ms; cold / resume at p50: {:.0}x",
            percentile(&cold_ms, 50.0) / percentile(&resumed_ms, 50.0)
        );
        println!("app CPU while frozen: {frozen_cpu:.3} ms/s; while idle and running: {idle_cpu:.3} ms/s");
        let report = json!({
            "rounds": rounds,
            "freeze_after_ms": FREEZE_AFTER_MS,
            "warm_ms": warm_ms,
            "resumed_ms": resumed_ms,
            "cold_ms": cold_ms,
            "frozen_cpu_ms_per_s": frozen_cpu,
            "idle_cpu_ms_per_s": idle_cpu,
        });
        let dir = runway_tests::cluster::repo_root().join("target/bench");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("warm-zero.json"), serde_json::to_string_pretty(&report)?)?;
        Ok(())
    })
    .await;
}
