//! End-to-end tests of traffic between revisions: a blue/green switch under load fails no request, a 90/10 split
//! sends 100 of 1,000 sequential requests to the canary, and a tag URL answers from its revision only (also by the
//! tag's own Kubernetes Service inside the cluster).
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t23` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_traffic -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Service as KubeService;
use kube::Api;
use runway_api::Visibility;
use runway_api::names::{revision_name, tag_url};
use runway_tests::answers::{
    answered_by_the_header, answers_only_from, ensure_all_ok, print_failures, settled, unix_ms,
};
use runway_tests::http::get_from_a_pod;
use runway_tests::load::{self, Load, Outcome, Target};
use runway_tests::runway::{self, DOMAIN, READY, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t23_a_blue_green_switch_under_load_fails_no_request() {
    runway_scenario("e2e-bluegreen", |cluster, ns| async move {
        let target = deploy(
            &cluster,
            &ns,
            "bg",
            &[("COLOR", "blue")],
            json!({"containerConcurrency": 10}),
        )
        .await?;
        let blue = runway::revision_of(&cluster, &ns, "bg").await?;
        ensure!(blue == revision_name("bg", 1), "the first revision is {blue}");
        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=50", 8, REQUEST);
        settled(&target, &blue, 5).await?;

        runway::set_env(&cluster, &ns, "bg", &[("COLOR", "green")]).await?;
        let green = revision_name("bg", 2);
        runway::wait_latest_ready(&cluster, &ns, "bg", &green, READY).await?;
        runway::wait_service(
            &cluster,
            &ns,
            "bg",
            &format!("all traffic on {green}"),
            READY,
            |service| {
                let shares = runway::traffic_shares(service);
                if shares == [(green.clone(), 100)].into_iter().collect() {
                    Ok(())
                } else {
                    Err(format!("shares {shares:?}"))
                }
            },
        )
        .await?;
        settled(&target, &green, 20).await?;
        // From here on every activator routes to green: requests sent later must all be answered by it.
        let switched_at = load.elapsed();
        let switched = Instant::now();
        // Keep the load on green a while (collecting answers, not waiting for anything).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let outcomes = load.finish().await;
        eprintln!(
            "switched {switched_at:?} after the load started; {:?} of load on green since",
            switched.elapsed()
        );
        print_failures(started_ms, &outcomes);
        ensure_all_ok("8 clients through a blue/green switch", &outcomes)?;
        answered_by_the_header(&outcomes)?;
        let counts = load::by_revision(&outcomes);
        eprintln!("answers by revision: {counts:?}");
        ensure!(
            counts.len() == 2 && counts.get(&blue) > Some(&0) && counts.get(&green) > Some(&0),
            "want answers from {blue} and {green} only, got {counts:?}"
        );
        let late_blue: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.sent_at > switched_at && o.revision.as_deref() != Some(&*green))
            .collect();
        ensure!(
            late_blue.is_empty(),
            "{} requests sent after the switch were not answered by {green}, e.g. {:?}",
            late_blue.len(),
            late_blue.first()
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t24_a_90_10_split_sends_100_of_1000_sequential_requests_to_the_canary() {
    runway_scenario("e2e-split", |cluster, ns| async move {
        // minScale 1 holds a pod of each routed revision, so no request of the count waits for a cold start.
        let target = deploy(
            &cluster,
            &ns,
            "split",
            &[("VERSION", "1")],
            json!({"scaling": {"minScale": 1}}),
        )
        .await?;
        let stable = runway::revision_of(&cluster, &ns, "split").await?;
        runway::set_env(&cluster, &ns, "split", &[("VERSION", "2")]).await?;
        let canary = revision_name("split", 2);
        runway::wait_latest_ready(&cluster, &ns, "split", &canary, READY).await?;
        runway::patch_spec(
            &cluster,
            &ns,
            "split",
            json!({"traffic": [
                {"revisionName": stable, "percent": 90},
                {"revisionName": canary, "percent": 10},
            ]}),
        )
        .await?;
        let want: std::collections::BTreeMap<String, i32> = [(stable.clone(), 90), (canary.clone(), 10)].into();
        runway::wait_service(&cluster, &ns, "split", "traffic 90/10", READY, |service| {
            let shares = runway::traffic_shares(service);
            let current = service.status.as_ref().and_then(|s| s.observed_generation) == service.metadata.generation;
            if current && shares == want {
                Ok(())
            } else {
                Err(format!("shares {shares:?}"))
            }
        })
        .await?;
        for (revision, percent) in &want {
            runway::wait_revision(&cluster, &ns, revision, &format!("{percent}%, serving"), READY, |r| {
                let status = r.status.clone().unwrap_or_default();
                let ready = runway::revision_condition(r, "Ready").starts_with("True/");
                if ready && status.pods.ready_replicas > 0 && status.routed && status.traffic_percent == *percent {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            })
            .await?;
        }
        // The activators follow the status: both revisions answer.
        wait_until("answers from both revisions", READY, || async {
            let outcomes = load::burst(&target, "/", 40, REQUEST).await;
            let counts = load::by_revision(&outcomes);
            if counts.get(&stable) > Some(&0) && counts.get(&canary) > Some(&0) && outcomes.iter().all(Outcome::ok) {
                Ok(())
            } else {
                Err(format!("{counts:?} {:?}", load::tally(&outcomes)))
            }
        })
        .await?;

        let outcomes = load::sequential(&target, "/", 1000, REQUEST).await;
        ensure_all_ok("1,000 sequential requests", &outcomes)?;
        answered_by_the_header(&outcomes)?;
        let counts = load::by_revision(&outcomes);
        eprintln!("1,000 requests at 90/10: {counts:?}");
        let to_canary = counts.get(&canary).copied().unwrap_or(0);
        let to_stable = counts.get(&stable).copied().unwrap_or(0);
        ensure!(
            (95..=105).contains(&to_canary) && to_canary + to_stable == 1000,
            "want 100 +- 5 answers from the canary {canary} and the rest from {stable}: {counts:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t25_a_tag_url_answers_from_its_revision_only() {
    runway_scenario("e2e-tag", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "tagged", &[("VERSION", "1")], json!({})).await?;
        let stable = runway::revision_of(&cluster, &ns, "tagged").await?;
        // A new template with its own revision name, tagged, at 0%: all traffic stays on the first revision.
        let green = "tagged-green";
        runway::patch_spec(
            &cluster,
            &ns,
            "tagged",
            json!({
                "template": {
                    "metadata": {"name": green},
                    "spec": {"containers": [runway::hello_container(&[("VERSION", "2")])]},
                },
                "traffic": [
                    {"revisionName": stable, "percent": 100},
                    {"revisionName": green, "percent": 0, "tag": "canary"},
                ],
            }),
        )
        .await?;
        let url = tag_url("canary", "tagged", &ns, DOMAIN, Visibility::External);
        runway::wait_service(
            &cluster,
            &ns,
            "tagged",
            &format!("{green} tagged canary at {url}"),
            READY,
            |service| {
                let status = service.status.clone().unwrap_or_default();
                let tagged = status.traffic.iter().any(|t| {
                    t.revision_name == green
                        && t.tag.as_deref() == Some("canary")
                        && t.percent == 0
                        && t.url.as_deref() == Some(&*url)
                });
                let shares = runway::traffic_shares(service);
                let all_stable = shares.get(&stable) == Some(&100) && shares.values().sum::<i32>() == 100;
                let created = status.latest_created_revision_name.as_deref() == Some(green);
                if tagged && all_stable && created {
                    Ok(())
                } else {
                    Err(format!(
                        "tagged {tagged}, all on {stable} {all_stable}, {green} created {created}"
                    ))
                }
            },
        )
        .await?;
        runway::wait_revision(&cluster, &ns, green, "Ready", READY, |r| {
            if runway::revision_condition(r, "Ready").starts_with("True/") {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        })
        .await?;

        let tag_target = Target {
            address: target.address,
            host: format!("canary-tagged.{ns}.{DOMAIN}"),
        };
        settled(&tag_target, green, 5).await?;
        answers_only_from(&tag_target, "/", green, 30)
            .await
            .map_err(anyhow::Error::msg)?;
        answers_only_from(&target, "/", &stable, 30)
            .await
            .map_err(anyhow::Error::msg)?;

        // From inside the cluster, by the tag's own Kubernetes Service (an ExternalName to the activator).
        let route = runway_api::names::tag_route_name("canary", "tagged");
        let kube_services: Api<KubeService> = Api::namespaced(cluster.client.clone(), &ns);
        let external_name = kube_services
            .get(&route)
            .await
            .with_context(|| format!("the tag's Service {route}"))?
            .spec
            .and_then(|s| s.external_name);
        eprintln!("Service {route}: ExternalName {external_name:?}");
        let inside = format!("http://{route}.{ns}.svc.cluster.local/");
        let body = get_from_a_pod(&cluster, &ns, &inside, &format!("hello from {green}-")).await?;
        eprintln!("from pod client, {inside}: {}", body.trim());
        Ok(())
    })
    .await;
}
