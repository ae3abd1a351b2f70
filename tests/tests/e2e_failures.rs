//! End-to-end tests of failures: losing an activator and an app pod under load fails nothing and an operator restart
//! scales nothing down; Services whose pods cannot start or get ready say why, fail requests fast and recover when
//! fixed; an activator rollout under load on a cc=1 pod overlaps and fails nothing; a crash-looping new revision
//! takes no traffic and the Service says why.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t12` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_failures -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use runway_api::Service;
use runway_api::names::revision_name;
use runway_tests::answers::{answers_only_from, ensure_all_ok, print_failures, seen, settled, unix_ms};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Load};
use runway_tests::runway::{self, NAMESPACE, READY, REQUEST, deploy, set_activators, target};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t12_losing_an_activator_and_a_pod_under_load_fails_nothing_and_an_operator_restart_scales_nothing_down() {
    runway_scenario("e2e-chaos", |cluster, ns| async move {
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

#[tokio::test]
async fn t16_services_whose_pods_cannot_start_or_get_ready_say_why_fail_requests_fast_and_recover_when_fixed() {
    runway_scenario("e2e-broken", |cluster, ns| async move {
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

/// The sample app's container ([`runway::hello_container`]) with the fields of `wrong` put over its own, whole: lists
/// replace rather than merge in a patch.
fn broken_container(wrong: serde_json::Value) -> serde_json::Value {
    let mut container = runway::hello_container(&[]);
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
        "template": {"spec": {"containers": [broken_container(wrong)]}},
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

    // The failing revision: the first, since none was ever ready.
    let revision = runway::revision_of(cluster, ns, name).await?;
    ensure!(
        revision == revision_name(name, 1),
        "{name}: serving revision {revision}"
    );
    // The Warning event, on the Service or on its revision.
    let events = cluster
        .kubectl()
        .run(&[
            "-n",
            ns,
            "get",
            "events",
            "--field-selector",
            "type=Warning",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name} {.reason}{\"\\n\"}{end}",
        ])
        .await?;
    let warned = events.lines().any(|line| {
        let mut words = line.split_whitespace();
        let about = words.next().unwrap_or_default();
        (about == name || about == revision) && words.next() == Some(reason)
    });
    ensure!(
        warned,
        "{name}: no Warning event {reason} about {name} or {revision}: {events:?}"
    );

    let target = target(cluster, ns, name).await?;
    let client = load::client();
    // The activator's fast 503 names the revision.
    let body = format!("{revision}: {starts}");
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

    // The fix is a new template, so a second revision, which takes the traffic once ready.
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [runway::hello_container(&[])]}}}})),
    )
    .await?;
    let fixed = revision_name(name, 2);
    runway::wait_latest_ready(cluster, ns, name, &fixed, READY).await?;
    runway::wait_ready(cluster, ns, name, READY).await?;
    answers_only_from(&target, "/", &fixed, 3)
        .await
        .map_err(|e| anyhow::anyhow!("{name} after the fix: {e}"))?;
    Ok(())
}

#[tokio::test]
async fn t17_an_activator_rollout_under_load_on_a_cc1_pod_overlaps_nothing_and_fails_nothing() {
    runway_scenario("e2e-rollout", |cluster, ns| async move {
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

#[tokio::test]
async fn t26_a_crash_looping_new_revision_takes_no_traffic_and_the_service_says_why() {
    runway_scenario("e2e-badrev", |cluster, ns| async move {
        let spec = json!({"progressDeadlineSeconds": 30});
        let target = deploy(&cluster, &ns, "keep", &[("VERSION", "1")], spec).await?;
        let good = runway::revision_of(&cluster, &ns, "keep").await?;
        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=50", 2, REQUEST);
        settled(&target, &good, 5).await?;

        // The sample app exits with its usage message when given an argument it does not know.
        let mut crashing = runway::hello_container(&[("VERSION", "2")]);
        crashing["args"] = json!(["crash"]);
        runway::patch_spec(
            &cluster,
            &ns,
            "keep",
            json!({"template": {"spec": {"containers": [crashing]}}}),
        )
        .await?;
        let bad = revision_name("keep", 2);
        let message = runway::wait_service(
            &cluster,
            &ns,
            "keep",
            &format!("ConfigurationReady=False/ContainerExits for {bad}, {good} still serving"),
            Duration::from_secs(120),
            |service| {
                let status = service.status.clone().unwrap_or_default();
                let failing = runway::condition(service, "ConfigurationReady") == "False/ContainerExits";
                let created = status.latest_created_revision_name.as_deref() == Some(&*bad);
                let ready = status.latest_ready_revision_name.as_deref() == Some(&*good);
                let shares = runway::traffic_shares(service);
                let routed = shares == [(good.clone(), 100)].into_iter().collect();
                if failing && created && ready && routed {
                    Ok(status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "ConfigurationReady")
                        .map(|c| c.message.clone())
                        .unwrap_or_default())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await?;
        eprintln!("ConfigurationReady=False/ContainerExits: {message}");
        ensure!(
            message.starts_with("container exits with code 1 (") && message.contains("usage: runway-hello"),
            "the message does not say why: {message:?}"
        );
        runway::wait_revision(
            &cluster,
            &ns,
            &bad,
            "Ready=False/ContainerExits, no traffic",
            READY,
            |r| {
                let status = r.status.clone().unwrap_or_default();
                let failing = runway::revision_condition(r, "Ready") == "False/ContainerExits";
                if failing && !status.routed && status.traffic_percent == 0 {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await?;
        answers_only_from(&target, "/", &good, 20)
            .await
            .map_err(anyhow::Error::msg)?;

        let outcomes = load.finish().await;
        print_failures(started_ms, &outcomes);
        ensure_all_ok("2 clients while the new revision crash-looped", &outcomes)?;
        let counts = load::by_revision(&outcomes);
        ensure!(
            counts.keys().eq([&good]),
            "want every answer from {good}, got {counts:?}"
        );
        Ok(())
    })
    .await;
}
