//! End-to-end tests of warm zero (`spec.scaling.idle: Freeze`, docs/warm-zero.md): an idle pod is frozen by its
//! node's agent and stays in the API, uses no CPU while frozen and is thawed by the next request, which names the
//! thaw in Server-Timing; a cc=1 revision with two frozen pods serves a burst without overlap; frozen pods go after
//! frozenRetentionSeconds; a killed agent leaves no pod frozen and loses no request; the API server rejects a
//! liveness probe with Freeze.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`, see e2e_scaling.rs): the cluster's kubelets run on this machine
//! (the local cluster's processes, or kind's node containers), so the tests read the pods' cgroups on the host.
//! `cargo test -p runway-tests --features cluster --test e2e_warm_zero -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use runway_tests::cgroups::{kernel_frozen, pod_cpu_nanos};
use runway_tests::cluster::Cluster;
use runway_tests::http::{self, Response};
use runway_tests::load::{self, Target};
use runway_tests::runway::{self, REQUEST};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::{Value, json};

/// Scaling settings of a Service whose idle pods freeze after half a second, kept frozen `retention` seconds after
/// the autoscaler would remove them (6 s stable window, no grace).
fn freezing(retention: u32, extra: Value) -> Value {
    let mut spec = json!({"scaling": {
        "idle": "Freeze",
        "freezeAfterMillis": 500,
        "frozenRetentionSeconds": retention,
        "stableWindowSeconds": 6,
        "scaleToZeroGracePeriodSeconds": 0,
    }});
    runway::merge(&mut spec, extra);
    spec
}

/// One GET of `path` through the activator, on a connection of its own.
async fn get(target: &Target, path: &str) -> anyhow::Result<Response> {
    let request = ::http::Request::get(format!("http://{}{path}", target.address))
        .header(::http::header::HOST, &target.host)
        .body(Full::new(Bytes::new()))?;
    http::send(request, REQUEST).await
}

/// The Service's pods that exist (not terminating).
async fn live_pods(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Vec<Pod>> {
    let pods = runway::pods(cluster, ns, name).await?;
    Ok(pods
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect())
}

fn is_marked(pod: &Pod) -> bool {
    runway_api::pods::frozen_mark(pod).is_some()
}

/// Waits until `count` pods of the Service carry the agent's frozen mark and its status counts them frozen.
async fn wait_frozen(cluster: &Cluster, ns: &str, name: &str, count: usize) -> anyhow::Result<Vec<Pod>> {
    let what = format!("{count} frozen pod(s) of {ns}/{name} (marked, and status.frozenReplicas)");
    let pods = wait_until(what, Duration::from_secs(60), || async {
        let pods = live_pods(cluster, ns, name).await.map_err(|e| e.to_string())?;
        let service = runway::get(cluster, ns, name).await.map_err(|e| e.to_string())?;
        let frozen = service.status.as_ref().map_or(0, |s| s.pods.frozen_replicas);
        let marked = pods.iter().filter(|pod| is_marked(pod)).count();
        if marked == count && usize::try_from(frozen) == Ok(count) {
            Ok(pods)
        } else {
            Err(format!(
                "{} pod(s), {marked} marked, status.frozenReplicas {frozen}",
                pods.len()
            ))
        }
    })
    .await?;
    Ok(pods)
}

fn ticks_of(response: &Response) -> anyhow::Result<u64> {
    ensure!(
        response.status == 200,
        "GET /ticks: {} {}",
        response.status,
        response.body
    );
    Ok(response.body.trim().parse()?)
}

fn server_timing(response: &Response) -> String {
    response
        .headers
        .get_all("server-timing")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The duration in milliseconds of the `name` entry of a Server-Timing header.
fn timing_ms(timing: &str, name: &str) -> Option<f64> {
    timing
        .split(',')
        .map(str::trim)
        .find_map(|entry| entry.strip_prefix(name)?.strip_prefix(";dur=")?.parse().ok())
}

#[tokio::test]
async fn t44_an_idle_freeze_pod_is_frozen_uses_no_cpu_and_the_next_request_thaws_it() {
    runway_scenario("e2e-freeze", |cluster, ns| async move {
        let target = runway::deploy(&cluster, &ns, "warm", &[], freezing(600, json!({}))).await?;
        let before = ticks_of(&get(&target, "/ticks").await?)?;
        let asked = Instant::now();
        let pods = wait_frozen(&cluster, &ns, "warm", 1).await?;
        let pod = &pods[0];
        ensure!(kernel_frozen(pod)?, "the pod is marked frozen but its cgroup runs");
        let cpu_then = pod_cpu_nanos(pod)?;
        // A window to observe: a frozen cgroup's CPU time does not move at all.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let cpu_now = pod_cpu_nanos(pod)?;
        ensure!(
            cpu_now == cpu_then,
            "the frozen pod used {} ns of CPU in 3 s",
            cpu_now - cpu_then
        );
        ensure!(
            live_pods(&cluster, &ns, "warm").await?.len() == 1,
            "the frozen pod stays in the API"
        );

        let thawed = get(&target, "/ticks").await?;
        let elapsed = asked.elapsed();
        let after = ticks_of(&thawed)?;
        let timing = server_timing(&thawed);
        let thaw = timing_ms(&timing, "runway-thaw")
            .with_context(|| format!("no runway-thaw in Server-Timing: {timing:?}"))?;
        ensure!(
            !thawed.headers.contains_key(runway_api::names::COLD_START_HEADER),
            "a thaw is no cold start"
        );
        // The ticker counts every 10 ms while the app runs: over the wait it ran for the idle delay and the freeze,
        // not for the 3 s and more it was frozen.
        let wall_ticks = u64::try_from(elapsed.as_millis() / 10)?;
        let ran = after - before;
        eprintln!("thaw {thaw:.1} ms; ticker advanced {ran} of {wall_ticks} ticks of wall time; {timing}");
        ensure!(
            ran + 250 < wall_ticks,
            "the ticker advanced {ran} ticks in {wall_ticks} ticks of wall time: the app ran while frozen"
        );
        ensure!(!kernel_frozen(pod)?, "the cgroup is thawed");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t45_a_burst_at_two_frozen_cc1_pods_is_served_without_overlap_or_a_pod_start() {
    runway_scenario("e2e-freeze-cc1", |cluster, ns| async move {
        let spec = freezing(
            600,
            json!({"containerConcurrency": 1, "scaling": {"minScale": 2, "maxScale": 2}}),
        );
        let target = runway::deploy(&cluster, &ns, "single", &[("REJECT_OVERLAP", "true")], spec).await?;
        runway::wait_scale(&cluster, &ns, "single", 2, runway::READY).await?;
        wait_until("2 ready pods", runway::READY, || async {
            let pods = live_pods(&cluster, &ns, "single").await.map_err(|e| e.to_string())?;
            let ready = pods.iter().filter(|p| runway_tests::pods::is_ready(p)).count();
            if ready == 2 {
                Ok(())
            } else {
                Err(format!("{ready} ready of {}", pods.len()))
            }
        })
        .await?;
        let pods = wait_frozen(&cluster, &ns, "single", 2).await?;
        let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        let outcomes = load::burst(&target, "/sleep?ms=100", 20, REQUEST).await;
        let failed: Vec<String> = outcomes.iter().filter(|o| !o.ok()).map(load::Outcome::label).collect();
        ensure!(failed.is_empty(), "{} of 20 failed: {failed:?}", failed.len());
        ensure!(
            outcomes.iter().all(|o| !o.cold_start),
            "no request waited for a pod start"
        );
        let now: Vec<String> = live_pods(&cluster, &ns, "single")
            .await?
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        ensure!(now == names, "the same two pods served: {names:?} then {now:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t46_frozen_pods_are_deleted_after_the_retention_and_the_next_request_is_a_cold_start() {
    runway_scenario("e2e-freeze-retention", |cluster, ns| async move {
        let target = runway::deploy(&cluster, &ns, "brief", &[], freezing(10, json!({}))).await?;
        ensure!(get(&target, "/").await?.status == 200);
        wait_frozen(&cluster, &ns, "brief", 1).await?;
        let frozen_at = Instant::now();
        runway::wait_zero(&cluster, &ns, "brief", Duration::from_secs(90)).await?;
        eprintln!("deleted {:?} after it froze", frozen_at.elapsed());
        ensure!(
            frozen_at.elapsed() >= Duration::from_secs(5),
            "deleted after {:?}: before the retention",
            frozen_at.elapsed()
        );
        let cold = get(&target, "/").await?;
        ensure!(cold.status == 200, "{} {}", cold.status, cold.body);
        ensure!(
            cold.headers.contains_key(runway_api::names::COLD_START_HEADER),
            "a pod start after the retention: {:?}",
            cold.headers
        );
        Ok(())
    })
    .await;
}

/// Kills every node agent process on this machine at once (SIGKILL: no chance to thaw anything).
async fn kill_node_agents() -> anyhow::Result<()> {
    let output = tokio::process::Command::new("pkill")
        .args(["-KILL", "-x", "runway-node"])
        .output()
        .await
        .context("running pkill")?;
    ensure!(output.status.success(), "no runway-node process to kill: {output:?}");
    Ok(())
}

#[tokio::test]
async fn t47_a_killed_agent_loses_no_request_and_thaws_its_pods_when_it_comes_back() {
    runway_scenario("e2e-freeze-agent", |cluster, ns| async move {
        let target = runway::deploy(&cluster, &ns, "orphan", &[], freezing(600, json!({}))).await?;
        let pods = wait_frozen(&cluster, &ns, "orphan", 1).await?;
        let frozen = pods[0].clone();
        let old_mark = runway_api::pods::frozen_mark(&frozen).context("marked")?.to_owned();
        kill_node_agents().await?;
        // The thaw fails while the agent is gone: the pod is unusable, a new one starts, the request is served.
        let answer = get(&target, "/").await?;
        ensure!(answer.status == 200, "{} {}", answer.status, answer.body);
        // Back (after the kubelet's restart back-off), the agent thaws every pod it finds frozen and clears the old
        // instance's marks. Idle, the pod may be frozen again at once, under the new instance's mark: the old mark
        // going is what only the restarted agent's sweep does, as no agent ran in between.
        let name = frozen.metadata.name.clone().context("named")?;
        let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
        let old_instance = format!("{}/", old_mark.split('/').next().unwrap_or_default());
        let what = format!("{name} free of the killed agent's mark {old_mark}");
        wait_until(what, Duration::from_secs(120), || async {
            let pod = api.get(&name).await.map_err(|e| e.to_string())?;
            match runway_api::pods::frozen_mark(&pod) {
                Some(mark) if mark.starts_with(&old_instance) => Err(format!("still marked {mark}")),
                Some(mark) => {
                    eprintln!("thawed by the restarted agent, and frozen again while idle: {mark}");
                    Ok(())
                }
                None => match kernel_frozen(&pod) {
                    Ok(false) => Ok(()),
                    Ok(true) => Err("unmarked, but its cgroup is frozen".to_owned()),
                    Err(e) => Err(e.to_string()),
                },
            }
        })
        .await?;
        // The kubelet reports the restart (its status may lag the new process).
        let agents: Api<Pod> = Api::namespaced(cluster.client.clone(), runway::NAMESPACE);
        wait_until(
            "the killed agent's restart in its pod's status",
            Duration::from_secs(60),
            || async {
                let list = agents
                    .list(&ListParams::default().labels("app.kubernetes.io/name=runway-node"))
                    .await
                    .map_err(|e| e.to_string())?;
                let restarts: Vec<i32> = list
                    .items
                    .iter()
                    .flat_map(|pod| pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
                    .map(|c| c.restart_count)
                    .collect();
                if restarts.iter().any(|n| *n > 0) {
                    Ok(())
                } else {
                    Err(format!("restart counts {restarts:?}"))
                }
            },
        )
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t48_the_api_server_rejects_a_liveness_probe_with_freeze_and_says_why() {
    runway_scenario("e2e-freeze-liveness", |cluster, ns| async move {
        let mut service = runway::hello_service("alive", &[], freezing(600, json!({})))?;
        let container = &mut service.spec.template.spec.containers[0];
        container.liveness_probe = Some(serde_json::from_value(
            json!({"httpGet": {"path": "/healthz", "port": 8080}}),
        )?);
        let api: Api<runway_api::Service> = Api::namespaced(cluster.client.clone(), &ns);
        let error = match api.create(&PostParams::default(), &service).await {
            Ok(_) => bail!("a liveness probe with idle Freeze was accepted"),
            Err(error) => error.to_string(),
        };
        ensure!(
            error.contains("livenessProbe: not allowed with spec.scaling.idle Freeze"),
            "unexpected rejection: {error}"
        );
        Ok(())
    })
    .await;
}
