//! End-to-end suite: Runway installed with Helm on a real cluster (by default the local one from `make up`), real
//! pods of the sample app, real HTTP through the activator. Each test runs in its own namespace.
//! Run with `cargo test -p runway-tests --features cluster --test e2e -- --test-threads=1`: the tests measure pod
//! counts and latencies, so they run one at a time.
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service as KubeService};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use runway_api::Service;
use runway_api::domain_mapping::DomainMapping;
use runway_tests::cluster::{Cluster, repo_root};
use runway_tests::load::{self, Load, Outcome, Target};
use runway_tests::runway::{self, NAMESPACE, READY};
use runway_tests::scenario::run_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

const REQUEST: Duration = Duration::from_secs(30);
/// Settings that let a Service reach zero within seconds: a 6 s stable window and no grace period.
fn quick_zero() -> serde_json::Value {
    json!({"scaling": {"stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0}})
}

/// Runs `body` in a fresh namespace; a failure also prints Runway's Services and component logs (before the
/// namespace diagnostics and the error itself).
async fn scenario<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Cluster, String) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    run_scenario(prefix, |cluster, ns| async move {
        let kubectl = cluster.kubectl();
        match body(cluster, ns.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                eprintln!("{}", runway::report(&kubectl, &ns).await);
                Err(e)
            }
        }
    })
    .await;
}

async fn target(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Target> {
    Ok(Target {
        address: runway::activator_address(cluster).await?,
        host: runway::host(name, ns),
    })
}

/// Creates the sample app as Service `name` and waits until it is Ready.
async fn deploy(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    env: &[(&str, &str)],
    spec: serde_json::Value,
) -> anyhow::Result<Target> {
    runway::create(cluster, ns, &runway::hello_service(name, env, spec)?).await?;
    runway::wait_ready(cluster, ns, name, READY).await?;
    target(cluster, ns, name).await
}

/// Each request that did not get a 200, with the wall-clock time it was sent (to find it in the logs).
fn print_failures(started_ms: u128, outcomes: &[Outcome]) {
    for failed in outcomes.iter().filter(|o| !o.ok()) {
        eprintln!(
            "  sent at +{:?} (unix_ms {}): {} after {:?}",
            failed.sent_at,
            started_ms + failed.sent_at.as_millis(),
            seen(failed),
            failed.time_to_headers
        );
    }
}

fn ensure_all_ok(what: &str, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let tally = load::tally(outcomes);
    eprintln!("{what}: {tally:?}");
    ensure!(
        !outcomes.is_empty() && outcomes.iter().all(Outcome::ok),
        "{what}: not all 200: {tally:?}"
    );
    Ok(())
}

/// `kubectl apply --server-side --dry-run=server` of the file at `path`: the API server validates every object.
async fn server_dry_run(cluster: &Cluster, path: &std::path::Path) -> anyhow::Result<String> {
    let path = path.to_string_lossy();
    let args = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        &path,
    ];
    cluster.kubectl().run(&args).await
}

/// Runs helm with `args` in the repository and returns its stdout, or fails with its stderr.
async fn helm(args: &[&str]) -> anyhow::Result<String> {
    run(&runway::helm(), args, &repo_root()).await
}

/// Runs a command and returns its stdout, or fails with its stderr.
async fn run(program: &str, args: &[&str], dir: &std::path::Path) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "{program} {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

#[tokio::test]
async fn t00_the_chart_lints_clean_renders_the_committed_manifests_and_passes_a_server_dry_run() {
    scenario("e2e-chart", |cluster, _ns| async move {
        let lint = helm(&["lint", "deploy/runway"]).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint: {lint}"
        );
        let rendered = helm(&[
            "template",
            "runway",
            "deploy/runway",
            "--namespace",
            NAMESPACE,
            "--include-crds",
        ])
        .await?;
        let manifests = repo_root().join(runway::MANIFESTS);
        let committed = std::fs::read_to_string(&manifests)?;
        ensure!(
            rendered == committed,
            "{} is stale: run `make manifests` and commit it",
            runway::MANIFESTS
        );
        let dry_run = server_dry_run(&cluster, &manifests).await?;
        eprintln!("server-side dry run of {}:\n{dry_run}", runway::MANIFESTS);

        // The templates the defaults leave out: the HTTPRoute and the Ingress.
        let entry_points = [
            "--set=gateway.enabled=true",
            "--set=gateway.parentRefs[0].name=runway",
            "--set=gateway.parentRefs[0].namespace=traefik",
            "--set=ingress.enabled=true",
            "--set=ingress.namespaces={default}",
            "--set=ingress.tls.secretName=runway-tls",
        ];
        let lint = helm(&[&["lint", "deploy/runway"][..], &entry_points[..]].concat()).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint with the entry points: {lint}"
        );
        let template = ["template", "runway", "deploy/runway", "--namespace", NAMESPACE];
        let rendered = helm(&[&template[..], &entry_points[..]].concat()).await?;
        ensure!(
            rendered.contains("kind: HTTPRoute") && rendered.contains("kind: Ingress"),
            "the entry points did not render"
        );
        let path = std::env::temp_dir().join(format!("runway-entry-points-{}.yaml", std::process::id()));
        std::fs::write(&path, rendered)?;
        let dry_run = server_dry_run(&cluster, &path).await;
        let _ = std::fs::remove_file(&path);
        eprintln!("server-side dry run with the entry points:\n{}", dry_run?);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t01_helm_install_makes_operator_and_activator_ready() {
    scenario("e2e-install", |cluster, _ns| async move {
        // `make up` installed the chart; upgrading it in place must work and leave both components Ready.
        let output = tokio::process::Command::new(runway::helm())
            .args([
                "upgrade",
                "--install",
                "runway",
                "deploy/runway",
                "--namespace",
                NAMESPACE,
                "--create-namespace",
            ])
            .args(["--wait", "--timeout", "180s", "--kubeconfig"])
            .arg(cluster.kubeconfig())
            .current_dir(repo_root())
            .output()
            .await?;
        ensure!(
            output.status.success(),
            "helm upgrade --install: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
        for name in ["runway-operator", "runway-activator"] {
            wait_until(format!("{name} ready"), READY, || async {
                let d = deployments.get(name).await.map_err(|e| e.to_string())?;
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
                if ready == want && want >= 2 {
                    Ok(())
                } else {
                    Err(format!("{ready}/{want} ready"))
                }
            })
            .await?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t02_a_service_gets_a_url_and_answers_from_outside_and_inside_the_cluster() {
    scenario("e2e-ready", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "hello", &[], json!({})).await?;
        let service: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        let url = service.get("hello").await?.status.and_then(|s| s.url);
        ensure!(
            url.as_deref() == Some(&*format!("http://hello.{ns}.example.com")),
            "url {url:?}"
        );

        let outcome = load::get(&load::client(), &target, "/", REQUEST).await;
        ensure!(
            outcome.ok() && outcome.body.starts_with("hello from hello-"),
            "through the activator: {outcome:?}"
        );
        eprintln!(
            "through the activator with Host {}: {}",
            target.host,
            outcome.body.trim()
        );

        // From inside a pod, by the Service's cluster DNS name (an ExternalName to the activator).
        let url = format!("http://hello.{ns}.svc.cluster.local/");
        let body = get_from_a_pod(&cluster, &ns, &url, "hello from hello-").await?;
        eprintln!("from pod client, {url}: {}", body.trim());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t03_an_idle_service_scales_to_zero_and_stays_ready() {
    scenario("e2e-zero", |cluster, ns| async move {
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

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn t04_cold_start_serves_the_first_request_and_a_burst_with_one_pod() {
    scenario("e2e-cold", |cluster, ns| async move {
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
    scenario("e2e-load", |cluster, ns| async move {
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

/// Sets the activator Deployment's replicas and waits until exactly that many are ready.
async fn set_activators(cluster: &Cluster, replicas: i32) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    api.patch_scale(
        "runway-activator",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait_until(format!("{replicas} activator pods, all ready"), READY, || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=runway-activator"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|p| runway_tests::pods::is_ready(p)).count();
        if list.items.len() == replicas as usize && ready == replicas as usize {
            Ok(())
        } else {
            Err(format!("{ready} ready of {}", list.items.len()))
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn t06_container_concurrency_1_never_overlaps_with_one_or_two_activators() {
    scenario("e2e-cc1", |cluster, ns| async move {
        let target = deploy(
            &cluster,
            &ns,
            "single",
            &[("REJECT_OVERLAP", "true")],
            json!({"containerConcurrency": 1}),
        )
        .await?;
        for activators in [1, 2] {
            set_activators(&cluster, activators).await?;
            let load = Load::start(&target, "/sleep?ms=50", 5, REQUEST);
            tokio::time::sleep(Duration::from_secs(20)).await;
            let outcomes = load.finish().await;
            ensure_all_ok(&format!("5 clients for 20 s, {activators} activator(s)"), &outcomes)?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t07_container_concurrency_1_with_max_scale_10_serves_100_concurrent_requests() {
    scenario("e2e-burst", |cluster, ns| async move {
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
async fn t08_a_request_past_its_timeout_gets_504() {
    scenario("e2e-timeout", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "slow", &[], json!({"timeoutSeconds": 2})).await?;
        let outcome = load::get(&load::client(), &target, "/sleep?ms=5000", REQUEST).await;
        eprintln!(
            "5 s request with a 2 s timeout: {} after {:?}",
            outcome.label(),
            outcome.time_to_headers
        );
        ensure!(outcome.status == Some(http::StatusCode::GATEWAY_TIMEOUT), "{outcome:?}");
        let took = outcome.time_to_headers;
        ensure!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "504 after {took:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t09_a_new_revision_rolls_out_without_failed_requests() {
    scenario("e2e-rollout", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "roll", &[("VERSION", "1")], json!({})).await?;
        let old: Vec<String> = runway::pods(&cluster, &ns, "roll")
            .await?
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let load = Load::start(&target, "/sleep?ms=100", 2, REQUEST);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        let mut service = services.get("roll").await?;
        let env = service.spec.template.spec.containers[0]
            .env
            .as_mut()
            .context("no env")?;
        env[0].value = Some("2".to_owned());
        services.replace("roll", &Default::default(), &service).await?;
        wait_until("the old pods replaced", Duration::from_secs(120), || async {
            let pods = runway::pods(&cluster, &ns, "roll").await.map_err(|e| e.to_string())?;
            let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
            let all_new_ready = !names.is_empty()
                && names.iter().all(|n| !old.contains(n))
                && pods.iter().all(runway_tests::pods::is_ready);
            if all_new_ready {
                Ok(())
            } else {
                Err(format!("pods {names:?}"))
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let outcomes = load.finish().await;
        ensure_all_ok("light load through the rollout", &outcomes)?;
        let last = outcomes.last().context("no requests")?;
        ensure!(
            old.iter().all(|o| !last.body.contains(o.as_str())),
            "the last answer came from an old pod: {last:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t10_deleting_a_service_removes_every_child() {
    scenario("e2e-delete", |cluster, ns| async move {
        deploy(&cluster, &ns, "gone", &[], json!({})).await?;
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        services.delete("gone", &DeleteParams::foreground()).await?;
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let kube_services: Api<KubeService> = Api::namespaced(cluster.client.clone(), &ns);
        wait_until("every child removed", Duration::from_secs(60), || async {
            let mut left = vec![];
            if deployments.get_opt("gone").await.map_err(|e| e.to_string())?.is_some() {
                left.push("Deployment gone".to_owned());
            }
            for name in ["gone", "gone-pods"] {
                if kube_services.get_opt(name).await.map_err(|e| e.to_string())?.is_some() {
                    left.push(format!("Service {name}"));
                }
            }
            let pods = runway::pods(&cluster, &ns, "gone").await.map_err(|e| e.to_string())?;
            left.extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        })
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t11_invalid_manifests_are_rejected_with_a_message_naming_the_field() {
    scenario("e2e-invalid", |cluster, ns| async move {
        let table = std::fs::read_to_string(repo_root().join("tests/validation/invalid-services.yaml"))?;
        let table: serde_json::Value = serde_yaml::from_str(&table)?;
        let cases = table["cases"].as_array().context("no cases")?;
        ensure!(cases.len() >= 15, "only {} cases", cases.len());
        let mut wrong = vec![];
        for case in cases {
            let (name, expect) = (
                case["name"].as_str().unwrap_or("?"),
                case["expect"].as_str().unwrap_or("?"),
            );
            let file = std::env::temp_dir().join(format!("runway-invalid-{ns}.json"));
            std::fs::write(&file, serde_json::to_vec(&case["manifest"])?)?;
            let result = cluster
                .kubectl()
                .run(&["-n", &ns, "apply", "-f", &file.display().to_string()])
                .await;
            match result {
                Ok(out) => wrong.push(format!("{name}: accepted ({out})")),
                Err(e) if format!("{e:#}").contains(expect) => eprintln!("rejected, {name}"),
                Err(e) => wrong.push(format!("{name}: wanted {expect:?}, got {e:#}")),
            }
        }
        ensure!(
            wrong.is_empty(),
            "{} of {} cases wrong:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t12_losing_an_activator_and_a_pod_under_load_fails_nothing_and_an_operator_restart_scales_nothing_down() {
    scenario("e2e-chaos", |cluster, ns| async move {
        let spec = json!({"scaling": {"minScale": 2, "stableWindowSeconds": 20, "scaleToZeroGracePeriodSeconds": 30}});
        let target = deploy(&cluster, &ns, "sturdy", &[], spec).await?;
        runway::wait_scale(&cluster, &ns, "sturdy", 2, READY).await?;
        let load = Load::start(&target, "/sleep?ms=50", 4, REQUEST);
        tokio::time::sleep(Duration::from_secs(3)).await;

        let system_pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
        let activators = system_pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=runway-activator"))
            .await?;
        let victim = activators
            .items
            .first()
            .and_then(|p| p.metadata.name.clone())
            .context("no activator pod")?;
        let app_pods = runway::pods(&cluster, &ns, "sturdy").await?;
        let app_victim = app_pods
            .first()
            .and_then(|p| p.metadata.name.clone())
            .context("no app pod")?;
        eprintln!("deleting activator {victim} and app pod {app_victim} under load");
        let app_api: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
        system_pods.delete(&victim, &DeleteParams::default()).await?;
        app_api.delete(&app_victim, &DeleteParams::default()).await?;
        set_activators(&cluster, 2).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let outcomes = load.finish().await;
        ensure_all_ok("4 clients while an activator and an app pod were deleted", &outcomes)?;

        // Three pods held by minScale; with the operator stopped, minScale drops to 0. The restarted operator sees
        // no traffic, yet must hold the 3 pods until it has a whole stable window (20 s) of fresh data.
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        let min_scale = |n: i32| Patch::Merge(json!({"spec": {"scaling": {"minScale": n}}}));
        services.patch("sturdy", &PatchParams::default(), &min_scale(3)).await?;
        runway::wait_scale(&cluster, &ns, "sturdy", 3, READY).await?;
        set_operators(&cluster, 0).await?;
        services.patch("sturdy", &PatchParams::default(), &min_scale(0)).await?;
        set_operators(&cluster, 2).await?;
        let restarted = Instant::now();
        while restarted.elapsed() < Duration::from_secs(15) {
            let now = runway::scale(&cluster, &ns, "sturdy").await?;
            if now < 3 {
                bail!(
                    "scaled down to {now} {:?} after the operator restart",
                    restarted.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    })
    .await;
}

/// Scales the operator Deployment and waits for that many pods, and for a leader when there are any.
async fn set_operators(cluster: &Cluster, replicas: i32) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    deployments
        .patch_scale(
            "runway-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let selector = ListParams::default().labels("app.kubernetes.io/name=runway-operator");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait_until(
        format!("{replicas} operator pods ready, one leading"),
        READY,
        || async {
            let list = pods.list(&selector).await.map_err(|e| e.to_string())?;
            let names: Vec<String> = list.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
            let ready = list.items.iter().filter(|p| runway_tests::pods::is_ready(p)).count();
            let holder = leases.get_opt("runway-operator").await.map_err(|e| e.to_string())?;
            let holder = holder
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            let leading = replicas == 0 || names.contains(&holder);
            if names.len() == replicas as usize && ready == names.len() && leading {
                Ok(())
            } else {
                Err(format!("pods {names:?}, {ready} ready, lease holder {holder:?}"))
            }
        },
    )
    .await?;
    Ok(())
}

/// Both activator pods as request targets for Service `name` in `ns`, by pod IP rather than through the activator
/// Service (so each one is sure to get its share), once both route it: each has answered a plain HTTP/1.1 request.
async fn each_activator(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Vec<(String, Target)>> {
    set_activators(cluster, 2).await?;
    let pods = runway::activator_pods(cluster).await?;
    ensure!(pods.len() == 2, "want 2 ready activators, found {pods:?}");
    let mut targets = vec![];
    for pod in pods {
        let target = Target {
            address: pod.address,
            host: runway::host(name, ns),
        };
        let client = load::client();
        wait_until(format!("{} answering for {}", pod.name, target.host), READY, || async {
            let outcome = load::get(&client, &target, "/", REQUEST).await;
            if outcome.ok() {
                Ok(())
            } else {
                Err(format!("{}: {}", outcome.label(), outcome.body.trim()))
            }
        })
        .await?;
        targets.push((pod.name, target));
    }
    Ok(targets)
}

/// The label and body of an outcome, for messages.
fn seen(outcome: &Outcome) -> String {
    format!("{} {:?}", outcome.label(), outcome.body.trim())
}

#[tokio::test]
async fn t13_h2c_requests_reach_a_cc1_pod_through_either_activator_also_the_one_without_its_slot() {
    scenario("e2e-h2c", |cluster, ns| async move {
        // One pod with one slot: one activator holds it, the other must forward to that one, over HTTP/2 since the
        // client spoke it.
        let spec = json!({"containerConcurrency": 1, "scaling": {"minScale": 1, "maxScale": 1}});
        deploy(&cluster, &ns, "h2c", &[], spec).await?;
        let activators = each_activator(&cluster, &ns, "h2c").await?;
        let mut wrong = vec![];
        for (name, target) in &activators {
            // 10 requests at once, as streams of one h2c connection (HTTP/2 with prior knowledge).
            let client = load::H2c::connect(target).await?;
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move { client.get("/", REQUEST).await })
                })
                .collect();
            let mut outcomes = vec![];
            for task in tasks {
                outcomes.push(task.await?);
            }
            let tally = load::tally(&outcomes);
            eprintln!("10 h2c requests to {name} ({}): {tally:?}", target.address);
            if let Some(bad) = outcomes.iter().find(|o| !o.ok()) {
                wrong.push(format!(
                    "{name} ({}): 10 h2c requests got {tally:?}, e.g. {}",
                    target.address,
                    seen(bad)
                ));
            }
            // A slow answer (the app sends its response after 1.5 s) over the same h2c connection: all of it.
            let slow = client.get("/sleep?ms=1500", REQUEST).await;
            eprintln!(
                "slow h2c request to {name}: {} after {:?}",
                seen(&slow),
                slow.time_to_headers
            );
            if !(slow.ok() && slow.body.starts_with("hello from h2c-") && slow.body.ends_with(" after 1500 ms\n")) {
                wrong.push(format!(
                    "{name} ({}): slow h2c request got {}",
                    target.address,
                    seen(&slow)
                ));
            }
        }
        ensure!(wrong.is_empty(), "h2c through each activator:\n{}", wrong.join("\n"));
        Ok(())
    })
    .await;
}

/// Waits until the Service answers `/` with 200: its one REJECT_OVERLAP pod has nothing left in flight.
async fn wait_idle(client: &load::HttpClient, target: &Target) -> anyhow::Result<()> {
    wait_until(
        format!("{} answering 200 again", target.host),
        Duration::from_secs(10),
        || async {
            let outcome = load::get(client, target, "/", REQUEST).await;
            if outcome.ok() { Ok(()) } else { Err(seen(&outcome)) }
        },
    )
    .await?;
    Ok(())
}

/// When the second request of [`first_then_next`] is sent.
#[derive(Clone, Copy, Debug)]
enum Next {
    /// As soon as the first one ended (given up or answered).
    After,
    /// This long after the first one was sent, so it waits for the pod's one slot while the first holds it.
    Waiting(Duration),
}

/// The first request of a [`first_then_next`] check.
struct First {
    path: &'static str,
    /// Send a 64 KiB body, which the app never reads. The app's server then does not watch the connection, so when
    /// the activator drops it the app works on until its answer is due, as most app servers do (with nothing left to
    /// read, the sample app's server notices the close and abandons the request, which leaves only a race).
    unread_body: bool,
    /// The client gives up after this long.
    give_up: Duration,
}

/// GET `first.path` on a connection of its own, then GET `/` on `client`; returns both outcomes.
async fn first_then_next(client: &load::HttpClient, target: &Target, first: &First, next: Next) -> (Outcome, Outcome) {
    let started = Instant::now();
    let body = if first.unread_body {
        vec![b'x'; 64 * 1024]
    } else {
        vec![]
    };
    let request = http::Request::get(format!("http://{}{}", target.address, first.path))
        .header(http::header::HOST, &target.host)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("a valid request");
    let give_up = first.give_up;
    let first = tokio::spawn(async move {
        let result = runway_tests::http::send(request, give_up).await;
        (result, started.elapsed())
    });
    let (first, next) = match next {
        Next::After => {
            let first = first.await;
            (first, load::get(client, target, "/", REQUEST).await)
        }
        Next::Waiting(delay) => {
            // A fixed offset on purpose: the second request must arrive while the first is in flight.
            tokio::time::sleep(delay).await;
            let next = load::get(client, target, "/", REQUEST).await;
            (first.await, next)
        }
    };
    let (first, took) = first.expect("the first request's task panicked");
    let first = match first {
        Ok(response) => Outcome {
            status: Some(response.status),
            error: None,
            time_to_headers: took,
            cold_start: false,
            body: response.body,
            sent_at: Duration::ZERO,
        },
        Err(error) => Outcome {
            status: None,
            error: Some(format!("{error:#}")),
            time_to_headers: took,
            cold_start: false,
            body: String::new(),
            sent_at: Duration::ZERO,
        },
    };
    (first, next)
}

#[tokio::test]
async fn t14_a_cc1_pod_gets_no_new_request_while_one_its_client_gave_up_on_or_that_timed_out_still_runs() {
    scenario("e2e-giveup", |cluster, ns| async move {
        // The app answers 500 to a request that starts while another is in flight (and to the one it overlapped).
        let spec = json!({"containerConcurrency": 1, "timeoutSeconds": 1, "scaling": {"minScale": 1, "maxScale": 1}});
        deploy(&cluster, &ns, "giveup", &[("REJECT_OVERLAP", "true")], spec).await?;
        let activators = each_activator(&cluster, &ns, "giveup").await?;
        let gave_up = |path, unread_body| First {
            path,
            unread_body,
            give_up: Duration::from_millis(500),
        };
        let timed_out = |path, unread_body| First {
            path,
            unread_body,
            give_up: REQUEST,
        };
        let waiting = |ms| Next::Waiting(Duration::from_millis(ms));
        // (what, first request, what it must get (None: given up by its client), when the next one is sent)
        let cases = [
            // The client gives up on an 800 ms request after 0.5 s; the next request comes right after, or is
            // already waiting for the slot (from another client).
            ("client gave up on an 800 ms request", gave_up("/sleep?ms=800", false), None, Next::After),
            ("client gave up on an 800 ms request", gave_up("/sleep?ms=800", false), None, waiting(300)),
            ("client gave up on an 800 ms request with a body", gave_up("/sleep?ms=800", true), None, Next::After),
            // A 1.3 s request runs past the Service's 1 s timeout: 504. The pod still works on it for 0.3 s (it need
            // not notice that the activator gave up); the next request, sent right after or already waiting, may
            // wait for that within its own 1 s, but must not reach the pod before it is done. (After a 2.5 s request
            // the next one could not get 200 without the pod abandoning the first one.)
            ("1.3 s request past the 1 s timeout", timed_out("/sleep?ms=1300", false), Some(504), Next::After),
            ("1.3 s request past the 1 s timeout", timed_out("/sleep?ms=1300", false), Some(504), waiting(800)),
            ("1.3 s request with a body past the 1 s timeout", timed_out("/sleep?ms=1300", true), Some(504), Next::After),
        ];
        let mut wrong = vec![];
        let mut checks = 0;
        for (name, target) in &activators {
            // The next request comes on a kept-alive connection, as from a real client.
            let client = load::client();
            wait_idle(&client, target).await?;
            for round in 1..=1 {
                for (what, first, want_first, next_mode) in &cases {
                    let unread_body = first.unread_body;
                    let (first, next) = first_then_next(&client, target, first, *next_mode).await;
                    checks += 1;
                    let line = format!(
                        "{name} ({}) round {round}, {what}, next request {next_mode:?}: first got {} after {:?}, next got {}",
                        target.address,
                        first.label(),
                        first.time_to_headers,
                        seen(&next)
                    );
                    eprintln!("{line}");
                    // An app that leaves a request body unread closes the connection right after its answer, without
                    // saying so; the next request, handed the freed slot at once, can race that close on the pooled
                    // connection (a 502 unless the pod's reset proves the request unread). A known keep-alive race,
                    // not an overlap: this test is about the slot, so it tolerates that one answer there.
                    let keep_alive_race = unread_body
                        && next.status.map(|s| s.as_u16()) == Some(502)
                        && next.body == "the backend failed to answer\n";
                    if first.status.map(|s| s.as_u16()) != *want_first || !(next.ok() || keep_alive_race) {
                        wrong.push(line);
                    }
                    wait_idle(&client, target).await?;
                }
            }
        }
        ensure!(
            wrong.is_empty(),
            "{} of {checks} checks failed (want: the first request given up or 504, the next one 200):\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t15_steady_load_through_two_activators_gets_only_200s() {
    scenario("e2e-steady", |cluster, ns| async move {
        set_activators(&cluster, 2).await?;
        // 5 pods x 10 slots, split 5 + 5 between the activators: 8 clients never fill them, nothing is forwarded.
        let spec = json!({"containerConcurrency": 10, "scaling": {"minScale": 5, "maxScale": 5}});
        let target = deploy(&cluster, &ns, "steady", &[], spec).await?;
        runway::wait_scale(&cluster, &ns, "steady", 5, READY).await?;
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
        let selector = format!("{}=steady", runway_api::names::SERVICE_LABEL);
        runway_tests::pods::wait_ready(&pods, &selector, 5, READY).await?;

        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=100", 8, REQUEST);
        tokio::time::sleep(Duration::from_secs(40)).await;
        let outcomes = load.finish().await;
        print_failures(started_ms, &outcomes);
        ensure_all_ok(
            "8 clients sending 100 ms requests for 40 s through two activators",
            &outcomes,
        )?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t16_services_whose_pods_cannot_start_or_get_ready_say_why_fail_requests_fast_and_recover_when_fixed() {
    scenario("e2e-broken", |cluster, ns| async move {
        // (Service, what is wrong with its container, the reason, how the message starts, what it contains)
        let cases = [
            (
                "nocommand",
                json!({"command": ["/nope"]}),
                "ContainerCannotStart",
                "container cannot start (",
                "/nope",
            ),
            (
                "noimage",
                json!({"image": "runway.local/nope:0.1.0"}),
                "ImagePullFailed",
                "image \"runway.local/nope:0.1.0\" cannot be pulled",
                "",
            ),
            (
                "crashing",
                json!({"args": ["crash"]}),
                "ContainerExits",
                "container exits with code 1 (",
                "usage: runway-hello",
            ),
            (
                "unschedulable",
                json!({"resources": {"requests": {"cpu": "1000"}}}),
                "Unschedulable",
                "no node can run the pod: ",
                "cpu",
            ),
            (
                "nokey",
                json!({"env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]}),
                "ContainerConfigError",
                "container cannot be created: ",
                "password",
            ),
            (
                "neverready",
                json!({"readinessProbe": {"httpGet": {"path": "/never-ready", "port": 8080}, "periodSeconds": 1}}),
                "ReadinessTimeout",
                "no pod became ready within progressDeadlineSeconds (15 s): ",
                "container \"app\" runs but its readiness probe never passed",
            ),
        ];
        // The Secret exists; the key the container asks for does not.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cluster.client.clone(), &ns);
        let secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "stringData": {"user": "runway"},
        }))?;
        secrets.create(&Default::default(), &secret).await?;
        for (name, wrong, reason, starts, contains) in cases {
            fails_fast_then_recovers(&cluster, &ns, name, wrong, reason, starts, contains).await?;
        }
        Ok(())
    })
    .await;
}

/// The container the sample app needs, whole: lists replace rather than merge in a patch.
fn hello_container(wrong: serde_json::Value) -> serde_json::Value {
    let mut container = json!({
        "name": "app",
        "image": runway_tests::workloads::hello_image(),
        "imagePullPolicy": "IfNotPresent",
    });
    if let (Some(container), serde_json::Value::Object(wrong)) = (container.as_object_mut(), wrong) {
        container.extend(wrong);
    }
    container
}

/// Creates Service `name` with its container made `wrong`; checks the reason on both conditions, the Warning event
/// and a fast 503 naming it; then fixes the container and checks that the Service serves.
async fn fails_fast_then_recovers(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    wrong: serde_json::Value,
    reason: &str,
    starts: &str,
    contains: &str,
) -> anyhow::Result<()> {
    let spec = json!({
        "progressDeadlineSeconds": 15,
        "scaling": {"minScale": 1, "maxScale": 1},
        "template": {"spec": {"containers": [hello_container(wrong)]}},
    });
    runway::create(cluster, ns, &runway::hello_service(name, &[], spec)?).await?;
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let want = format!("False/{reason}");
    let message = wait_until(
        format!("{name}: ConfigurationReady={want}"),
        Duration::from_secs(90),
        || async {
            let service = api.get(name).await.map_err(|e| e.to_string())?;
            let (configuration, ready) = (
                runway::condition(&service, "ConfigurationReady"),
                runway::condition(&service, "Ready"),
            );
            if configuration != want || ready != want {
                return Err(format!("ConfigurationReady={configuration} Ready={ready}"));
            }
            Ok(service
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ConfigurationReady"))
                .map(|c| c.message.clone())
                .unwrap_or_default())
        },
    )
    .await?;
    eprintln!("{name}: ConfigurationReady={want}: {message}");
    ensure!(
        message.starts_with(starts) && message.contains(contains),
        "{name}: message {message:?}, want it to start with {starts:?} and contain {contains:?}"
    );

    let selector = format!("involvedObject.kind=Service,involvedObject.name={name},type=Warning");
    let events = cluster
        .kubectl()
        .run(&[
            "-n",
            ns,
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await?;
    ensure!(events.contains(reason), "{name}: Warning events {events:?}");

    let target = target(cluster, ns, name).await?;
    let client = load::client();
    let body = format!("{name}: {starts}");
    let outcome = wait_until(
        format!("{name}: a fast 503 naming the reason"),
        Duration::from_secs(30),
        || async {
            let outcome = load::get(&client, &target, "/", REQUEST).await;
            let fast = outcome.time_to_headers < Duration::from_secs(5);
            if outcome.status.map(|s| s.as_u16()) == Some(503) && outcome.body.starts_with(&body) && fast {
                Ok(outcome)
            } else {
                Err(format!("{} after {:?}", seen(&outcome), outcome.time_to_headers))
            }
        },
    )
    .await?;
    eprintln!("{name}: {} after {:?}", seen(&outcome), outcome.time_to_headers);

    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [hello_container(json!({}))]}}}})),
    )
    .await?;
    runway::wait_ready(cluster, ns, name, READY).await?;
    let outcome = load::get(&client, &target, "/", REQUEST).await;
    ensure!(outcome.ok(), "{name} after the fix: {}", seen(&outcome));
    Ok(())
}

#[tokio::test]
async fn t17_an_activator_rollout_under_load_on_a_cc1_pod_overlaps_nothing_and_fails_nothing() {
    scenario("e2e-rollout", |cluster, ns| async move {
        set_activators(&cluster, 2).await?;
        // One pod with one slot: whichever activator holds it, the slot moves at every step of the rollout.
        let spec = json!({"containerConcurrency": 1, "scaling": {"minScale": 1, "maxScale": 1}});
        let target = deploy(&cluster, &ns, "handoff", &[("REJECT_OVERLAP", "true")], spec).await?;
        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=50", 4, REQUEST);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let kubectl = cluster.kubectl();
        kubectl
            .run(&["-n", NAMESPACE, "rollout", "restart", "deployment/runway-activator"])
            .await?;
        kubectl
            .run_with_timeout(
                &[
                    "-n",
                    NAMESPACE,
                    "rollout",
                    "status",
                    "deployment/runway-activator",
                    "--timeout=180s",
                ],
                Duration::from_secs(190),
            )
            .await?;
        set_activators(&cluster, 2).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let outcomes = load.finish().await;
        print_failures(started_ms, &outcomes);
        ensure_all_ok(
            "4 clients on one cc=1 pod while the activators rolled (an overlap answers 500)",
            &outcomes,
        )?;
        Ok(())
    })
    .await;
}

/// GETs `url` from a pod of the sample app in `ns` (started on first use, named `client`) until the body starts
/// with `want`.
async fn get_from_a_pod(cluster: &Cluster, ns: &str, url: &str, want: &str) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    if pods.get_opt("client").await?.is_none() {
        pods.create(&Default::default(), &runway_tests::workloads::hello_pod("client", &[]))
            .await?;
    }
    runway_tests::pods::wait_ready(&pods, "app=client", 1, READY).await?;
    let body = wait_until(format!("GET {url} from a pod"), Duration::from_secs(30), || async {
        cluster
            .kubectl()
            .run(&[
                "-n",
                ns,
                "exec",
                "client",
                "--",
                "/usr/local/bin/runway-hello",
                "get",
                url,
            ])
            .await
            .map_err(|e| format!("{e:#}"))
            .and_then(|body| if body.starts_with(want) { Ok(body) } else { Err(body) })
    })
    .await?;
    Ok(body)
}

#[tokio::test]
async fn t18_a_cluster_local_service_answers_inside_and_the_external_entry_point_reveals_nothing() {
    scenario("e2e-entry", |cluster, ns| async move {
        let public = deploy(&cluster, &ns, "public", &[], json!({})).await?;
        runway::create(
            &cluster,
            &ns,
            &runway::hello_service("private", &[], json!({"visibility": "ClusterLocal"}))?,
        )
        .await?;
        let private = runway::wait_ready(&cluster, &ns, "private", READY).await?;
        let url = private.status.and_then(|s| s.url);
        let internal_url = format!("http://private.{ns}.svc.cluster.local");
        ensure!(url.as_deref() == Some(&*internal_url), "url {url:?}");

        let client = load::client();
        let external = |host: String| Target {
            address: public.address,
            host,
        };
        let outcome = load::get(&client, &public, "/", REQUEST).await;
        ensure!(
            outcome.ok(),
            "public through the external entry point: {}",
            seen(&outcome)
        );
        let unknown = load::get(&client, &external(format!("nothing.{ns}.example.com")), "/", REQUEST).await;
        ensure!(
            unknown.status.map(|s| s.as_u16()) == Some(404),
            "unknown host: {}",
            seen(&unknown)
        );
        // The ClusterLocal Service under the domain, and an External one by a cluster name (a spoofed Host): both
        // exactly like a host that names nothing.
        for host in [
            format!("private.{ns}.example.com"),
            format!("private.{ns}.svc.cluster.local"),
            format!("public.{ns}.svc.cluster.local"),
            format!("public.{ns}"),
        ] {
            let outcome = load::get(&client, &external(host.clone()), "/", REQUEST).await;
            let same_body = outcome.body.replace(&host, &format!("nothing.{ns}.example.com")) == unknown.body;
            ensure!(
                outcome.status.map(|s| s.as_u16()) == Some(404) && same_body,
                "{host} through the external entry point: {} (unknown host: {})",
                seen(&outcome),
                seen(&unknown)
            );
        }
        let body = get_from_a_pod(&cluster, &ns, &format!("{internal_url}/"), "hello from private-").await?;
        eprintln!("from pod client, {internal_url}: {}", body.trim());
        Ok(())
    })
    .await;
}

/// The DomainMapping's condition `type_` as `status/reason`, or what is missing.
fn mapping_condition(dm: &DomainMapping, type_: &str) -> String {
    dm.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map_or_else(
            || format!("no {type_} condition"),
            |c| format!("{}/{}", c.status, c.reason),
        )
}

async fn wait_mapping(
    api: &Api<DomainMapping>,
    domain: &str,
    type_: &str,
    want: &str,
) -> anyhow::Result<DomainMapping> {
    let ns = api.get(domain).await?.metadata.namespace.unwrap_or_default();
    Ok(wait_until(format!("{ns}/{domain}: {type_}={want}"), READY, || async {
        let dm = api.get(domain).await.map_err(|e| e.to_string())?;
        let seen = mapping_condition(&dm, type_);
        if seen.starts_with(want) { Ok(dm) } else { Err(seen) }
    })
    .await?)
}

fn domain_mapping(domain: &str, service: &str) -> anyhow::Result<DomainMapping> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "serving.runway.dev/v1alpha1", "kind": "DomainMapping",
        "metadata": {"name": domain},
        "spec": {"ref": {"name": service}},
    }))?)
}

#[tokio::test]
async fn t21_lowered_bounds_apply_at_once_also_within_the_first_stable_window() {
    scenario("e2e-bounds", |cluster, ns| async move {
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

#[tokio::test]
async fn t19_a_custom_domain_routes_to_its_service_and_a_second_claim_waits_for_the_first_to_go() {
    scenario("e2e-domain", |cluster, ns| async move {
        let first = deploy(&cluster, &ns, "first", &[], json!({})).await?;
        let other_ns = runway_tests::scenario::create_namespace(&cluster, "e2e-domain-other").await?;
        let result = async {
            deploy(&cluster, &other_ns, "second", &[], json!({})).await?;
            let domain = format!("{ns}.example.org");
            let mine: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
            let theirs: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &other_ns);
            mine.create(&Default::default(), &domain_mapping(&domain, "first")?)
                .await?;
            let dm = wait_mapping(&mine, &domain, "Ready", "True").await?;
            let url = dm.status.and_then(|s| s.url);
            ensure!(url.as_deref() == Some(&*format!("http://{domain}")), "url {url:?}");
            // Where the chart turns the Gateway on (the local cluster), the holder's domain gets an HTTPRoute.
            let routed = gateway_routes_on(&cluster).await?;
            if routed {
                wait_mapped_routes(&cluster, &ns, &domain, 1).await?;
            }

            let client = load::client();
            let mapped = Target {
                address: first.address,
                host: domain.clone(),
            };
            let answer = |want: &'static str| {
                let (client, mapped) = (client.clone(), mapped.clone());
                wait_until(format!("Host {} answered by {want}", mapped.host), READY, move || {
                    let (client, mapped) = (client.clone(), mapped.clone());
                    async move {
                        let outcome = load::get(&client, &mapped, "/", REQUEST).await;
                        if outcome.ok() && outcome.body.starts_with(want) {
                            Ok(())
                        } else {
                            Err(seen(&outcome))
                        }
                    }
                })
            };
            answer("hello from first-").await?;

            // A second namespace claims the same domain: refused while the first holds it, routes nothing.
            theirs
                .create(&Default::default(), &domain_mapping(&domain, "second")?)
                .await?;
            let refused = wait_mapping(&theirs, &domain, "DomainClaimed", "False/DomainAlreadyClaimed").await?;
            ensure!(mapping_condition(&refused, "Ready").starts_with("False"), "{refused:?}");
            answer("hello from first-").await?;
            if routed {
                // A refused claim routes nothing at the ingress either.
                let theirs_routes = mapped_http_routes(&cluster, &other_ns)
                    .await
                    .map_err(anyhow::Error::msg)?;
                ensure!(
                    theirs_routes.is_empty(),
                    "routes of the refused claim: {theirs_routes:?}"
                );
            }

            // The first claim goes: the second becomes Ready and the domain routes to its Service.
            mine.delete(&domain, &Default::default()).await?;
            wait_mapping(&theirs, &domain, "Ready", "True").await?;
            answer("hello from second-").await?;
            if routed {
                // The HTTPRoute moves with the claim: the first's goes with it, the second gets one.
                wait_mapped_routes(&cluster, &ns, &domain, 0).await?;
                wait_mapped_routes(&cluster, &other_ns, &domain, 1).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
        let _ = namespaces.delete(&other_ns, &Default::default()).await;
        result
    })
    .await;
}

/// A CA and a certificate it signed for `names`, made with openssl in `dir`: ca.pem, tls.crt, tls.key.
async fn test_certificate(dir: &std::path::Path, names: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=runway e2e CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    run("openssl", &[&ca[..], &ec[..]].concat(), dir).await?;
    let csr = [
        "req",
        "-subj",
        "/CN=runway e2e",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ];
    run("openssl", &[&csr[..], &ec[..]].concat(), dir).await?;
    let alt: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName={}\n", alt.join(",")))?;
    let sign = [
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
    ];
    run(
        "openssl",
        &[&sign[..], &["-days", "1", "-extfile", "ext.cnf", "-out", "tls.crt"]].concat(),
        dir,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn t20_through_the_ingress_https_and_h2_reach_external_services_and_mapped_domains_only() {
    scenario("e2e-ingress", |cluster, ns| async move {
        // The chart's HTTPRoute to the local cluster's Gateway (Traefik; `make up` installs both).
        upgrade_with(
            &cluster,
            &[
                "gateway.enabled=true",
                "gateway.parentRefs[0].name=runway",
                "gateway.parentRefs[0].namespace=traefik",
            ],
        )
        .await?;
        deploy(&cluster, &ns, "public", &[], json!({})).await?;
        let private = runway::hello_service("private", &[], json!({"visibility": "ClusterLocal"}))?;
        runway::create(&cluster, &ns, &private).await?;
        runway::wait_ready(&cluster, &ns, "private", READY).await?;
        let domain = format!("{ns}.example.org");
        let mappings: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
        mappings
            .create(&Default::default(), &domain_mapping(&domain, "public")?)
            .await?;
        wait_mapping(&mappings, &domain, "Ready", "True").await?;
        // The mapped domain's own HTTPRoute, made by the operator with the chart's parentRefs.
        let route = wait_mapped_routes(&cluster, &ns, &domain, 1).await?;
        eprintln!("the operator's route for {domain}: {route:?}");
        let kubectl = cluster.kubectl();
        let dir = std::env::temp_dir().join(format!("runway-{ns}"));
        let result = async {
            // HTTPS at the Gateway with a certificate from a CA made here.
            test_certificate(&dir, &[format!("*.{ns}.example.com"), domain.clone()]).await?;
            tls_secret(&kubectl, &dir, "traefik", "runway-gateway-tls").await?;
            let ingress = ingress_address(&cluster).await?;
            let curl = |host: String, want: &'static str| https_through(&dir, &ingress, host, want);
            let public = curl(format!("public.{ns}.example.com"), "200 HTTP/2: hello from public-").await?;
            eprintln!("public through the ingress: {public}");
            curl(domain.clone(), "200 HTTP/2: hello from public-").await?;
            // The ClusterLocal Service does not exist from outside, and a cluster name is no way in.
            curl(format!("private.{ns}.example.com"), "404 HTTP/2: no Runway service").await?;

            // Deleting the mapping deletes its route first (the finalizer), then the mapping; Traefik then has no
            // route for the domain.
            mappings.delete(&domain, &Default::default()).await?;
            wait_mapped_routes(&cluster, &ns, &domain, 0).await?;
            wait_until(format!("DomainMapping {ns}/{domain} gone"), READY, || async {
                match mappings.get_opt(&domain).await {
                    Ok(None) => Ok(()),
                    Ok(Some(dm)) => Err(format!("still there, finalizers {:?}", dm.metadata.finalizers)),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
            curl(domain.clone(), "404 HTTP/2: 404 page not found").await?;
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await;
}

/// The HTTPRoutes the operator made in the release namespace for the DomainMappings of namespace `ns`, each as its
/// name and spec.
async fn mapped_http_routes(cluster: &Cluster, ns: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
    let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource);
    let selector = format!("{}={ns}", runway_api::domain_mapping::MAPPING_NAMESPACE_LABEL);
    let list = routes
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("listing HTTPRoutes: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|route| (route.metadata.name.unwrap_or_default(), route.data["spec"].clone()))
        .collect())
}

/// Waits until `ns`'s mappings have `want` HTTPRoutes (0 or 1), the one for `domain` attached to the local cluster's
/// Gateway and sending to the activator's external Service; returns the route's name.
async fn wait_mapped_routes(cluster: &Cluster, ns: &str, domain: &str, want: usize) -> anyhow::Result<String> {
    let what = format!("{want} HTTPRoute(s) for the DomainMappings of {ns}, for {domain} to runway-activator");
    Ok(wait_until(what, READY, || async {
        let routes = mapped_http_routes(cluster, ns).await?;
        let seen = format!("{routes:?}");
        match &routes[..] {
            [] if want == 0 => Ok(String::new()),
            [(name, spec)] if want == 1 && routes_domain_to_the_activator(spec, domain) => Ok(name.clone()),
            _ => Err(seen),
        }
    })
    .await?)
}

fn routes_domain_to_the_activator(spec: &serde_json::Value, domain: &str) -> bool {
    let parent = &spec["parentRefs"][0];
    let backend = &spec["rules"][0]["backendRefs"][0];
    spec["hostnames"] == json!([domain])
        && (parent["name"] == "runway" && parent["namespace"] == "traefik")
        && (backend["name"] == "runway-activator" && backend["port"] == 80)
}

/// Whether the installed operator makes HTTPRoutes for mapped domains (the chart's gateway.enabled).
async fn gateway_routes_on(cluster: &Cluster) -> anyhow::Result<bool> {
    let operator = Api::<Deployment>::namespaced(cluster.client.clone(), NAMESPACE)
        .get("runway-operator")
        .await?;
    let args = operator
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    Ok(args.iter().any(|arg| arg.starts_with("--gateway-parent-refs=")))
}

/// Stores the certificate `test_certificate` made in `dir` as the TLS Secret `namespace/name`.
async fn tls_secret(
    kubectl: &runway_tests::kubectl::Kubectl,
    dir: &std::path::Path,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let secret = kubectl
        .run(&[
            "-n",
            namespace,
            "create",
            "secret",
            "tls",
            name,
            "--cert",
            &cert.to_string_lossy(),
            "--key",
            &key.to_string_lossy(),
            "--dry-run=client",
            "-o",
            "json",
        ])
        .await?;
    let file = dir.join(format!("{namespace}-{name}.json"));
    std::fs::write(&file, secret)?;
    kubectl.run(&["apply", "-f", &file.to_string_lossy()]).await?;
    Ok(())
}

/// The local cluster's ingress (Traefik's Service) IP.
async fn ingress_address(cluster: &Cluster) -> anyhow::Result<String> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(cluster.client.clone(), "traefik");
    Ok(services
        .get("traefik")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default())
}

/// Waits until `https://{host}/` through the ingress at `ingress` (HTTP/2, trusting `dir`'s test CA) answers with a
/// status line and body that start with `want`, e.g. "200 HTTP/2: hello".
async fn https_through(dir: &std::path::Path, ingress: &str, host: String, want: &str) -> anyhow::Result<String> {
    Ok(wait_until(
        format!("https://{host}/ through the ingress: {want}"),
        READY,
        || async {
            let resolve = format!("{host}:443:{ingress}");
            let url = format!("https://{host}/");
            let args = [
                "-sS",
                "--http2",
                "--cacert",
                "ca.pem",
                "--resolve",
                &resolve,
                "--max-time",
                "10",
                "-w",
                "\n%{http_code} HTTP/%{http_version}",
                &url,
            ];
            let answer = run("curl", &args, dir).await.map_err(|e| format!("{e:#}"))?;
            let (body, status) = answer.rsplit_once('\n').unwrap_or_default();
            let seen = format!("{status}: {}", body.trim());
            if seen.starts_with(want) { Ok(seen) } else { Err(seen) }
        },
    )
    .await?)
}

#[tokio::test]
async fn t22_through_an_ingress_controller_https_reaches_services_and_mapped_domains() {
    scenario("e2e-ingress-class", |cluster, ns| async move {
        // The chart's Ingress for this namespace's hosts and the operator's Ingress per mapped domain, on the local
        // cluster's Traefik as an Ingress controller; the Gateway route is off, so nothing else routes these hosts.
        let namespaces = format!("ingress.namespaces={{{ns}}}");
        upgrade_with(
            &cluster,
            &[
                "gateway.enabled=false",
                "ingress.enabled=true",
                "ingress.className=traefik",
                &namespaces,
                "ingress.tls.secretName=runway-ingress-tls",
                "ingress.tls.mappedDomains=true",
            ],
        )
        .await?;
        deploy(&cluster, &ns, "public", &[], json!({})).await?;
        let domain = format!("{ns}.example.net");
        let kubectl = cluster.kubectl();
        let dir = std::env::temp_dir().join(format!("runway-{ns}"));
        let result = async {
            test_certificate(&dir, &[format!("*.{ns}.example.com"), domain.clone()]).await?;
            tls_secret(&kubectl, &dir, NAMESPACE, "runway-ingress-tls").await?;
            tls_secret(&kubectl, &dir, NAMESPACE, &format!("{domain}-tls")).await?;
            let ingress = ingress_address(&cluster).await?;
            let public = https_through(
                &dir,
                &ingress,
                format!("public.{ns}.example.com"),
                "200 HTTP/2: hello from public-",
            )
            .await?;
            eprintln!("public through the Ingress: {public}");

            let mappings: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
            mappings
                .create(&Default::default(), &domain_mapping(&domain, "public")?)
                .await?;
            wait_mapping(&mappings, &domain, "Ready", "True").await?;
            let mapped = https_through(&dir, &ingress, domain.clone(), "200 HTTP/2: hello from public-").await?;
            eprintln!("{domain} through the operator's Ingress: {mapped}");
            mappings.delete(&domain, &Default::default()).await?;
            https_through(&dir, &ingress, domain.clone(), "404 HTTP/2: 404 page not found").await?;
            for secret in ["runway-ingress-tls".to_owned(), format!("{domain}-tls")] {
                kubectl.run(&["-n", NAMESPACE, "delete", "secret", &secret]).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await;
}

/// `helm upgrade` of the installed release with its values kept and `sets` (`key=value`) changed, waiting for it.
async fn upgrade_with(cluster: &Cluster, sets: &[&str]) -> anyhow::Result<String> {
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    let mut args = vec![
        "upgrade",
        "runway",
        "deploy/runway",
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--wait",
        "--kubeconfig",
        &kubeconfig,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args).await
}
