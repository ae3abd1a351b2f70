//! End-to-end tests of revisions: a new revision takes over without failed requests and the old one scales to zero
//! (and stays, as history); garbage collection keeps tagged and latest revisions and names what it deleted.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t09` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_revisions -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use runway_api::names::{deployment_name, revision_name};
use runway_tests::answers::{answered_by_the_header, ensure_all_ok, seen, settled};
use runway_tests::load::{self, Load, Target};
use runway_tests::runway::{self, DOMAIN, READY, REQUEST, deploy, quick_zero};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t09_a_new_revision_takes_over_without_failed_requests_and_the_old_one_scales_to_zero() {
    runway_scenario("e2e-rollout", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "roll", &[("VERSION", "1")], quick_zero()).await?;
        let old = runway::revision_of(&cluster, &ns, "roll").await?;
        ensure!(old == revision_name("roll", 1), "the first revision is {old}");
        let load = Load::start(&target, "/sleep?ms=100", 2, REQUEST);
        settled(&target, &old, 5).await?;

        let new = revision_name("roll", 2);
        runway::set_env(&cluster, &ns, "roll", &[("VERSION", "2")]).await?;
        runway::wait_latest_ready(&cluster, &ns, "roll", &new, READY).await?;
        settled(&target, &new, 20).await?;
        // The old revision keeps its pods until the traffic has moved away, then scales to zero like an idle
        // Service (stable window 6 s, no grace period); the Revision itself stays, as history.
        runway::wait_revision_scale(&cluster, &ns, &old, 0, Duration::from_secs(90)).await?;
        wait_until(
            format!("no pods of revision {old}"),
            Duration::from_secs(60),
            || async {
                let left = runway::revision_pods(&cluster, &ns, &old)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                if left.is_empty() {
                    Ok(())
                } else {
                    let seen: Vec<String> = left.iter().map(runway_tests::pods::summary).collect();
                    Err(seen.join(" | "))
                }
            },
        )
        .await?;
        let outcomes = load.finish().await;
        ensure_all_ok("light load through the switch to a new revision", &outcomes)?;
        answered_by_the_header(&outcomes)?;
        let counts = load::by_revision(&outcomes);
        ensure!(
            counts.len() == 2 && counts.contains_key(&old) && counts.contains_key(&new),
            "want answers from {old} then {new}, got {counts:?}"
        );
        let last = outcomes.last().context("no requests")?;
        ensure!(
            last.revision.as_deref() == Some(&*new),
            "the last answer came from {:?}: {}",
            last.revision,
            seen(last)
        );
        let kept = runway::revision(&cluster, &ns, &old)
            .await?
            .context("the old Revision was deleted")?;
        let status = kept.status.clone().unwrap_or_default();
        ensure!(
            !status.routed && status.traffic_percent == 0,
            "the old revision: {}",
            runway::revision_summary(&kept)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t27_garbage_collection_keeps_tagged_and_latest_revisions_and_names_what_it_deleted() {
    runway_scenario("e2e-gc", |cluster, ns| async move {
        // A revision is deleted only once it has no pods: quick_zero lets the unrouted ones get there in seconds.
        let mut spec = quick_zero();
        spec["revisionHistoryLimit"] = json!(1);
        let target = deploy(&cluster, &ns, "gc", &[("VERSION", "1")], spec).await?;
        let first = runway::revision_of(&cluster, &ns, "gc").await?;
        // Version 2, with a tag that pins the first revision.
        runway::patch_spec(
            &cluster,
            &ns,
            "gc",
            json!({
                "template": {"spec": {"containers": [runway::hello_container(&[("VERSION", "2")])]}},
                "traffic": [
                    {"latestRevision": true, "percent": 100},
                    {"revisionName": first, "percent": 0, "tag": "pinned"},
                ],
            }),
        )
        .await?;
        let mut made = vec![first.clone()];
        for version in 2..=4 {
            if version > 2 {
                runway::set_env(&cluster, &ns, "gc", &[("VERSION", &version.to_string())]).await?;
            }
            // One template change per generation: revision N is made at generation N.
            let revision = revision_name("gc", version);
            runway::wait_latest_ready(&cluster, &ns, "gc", &revision, READY).await?;
            made.push(revision);
        }
        let latest = made.last().cloned().context("no revision")?;
        // Kept: the tagged first one and the latest (routed, and the one most recent of the history limit).
        let deleted: Vec<String> = made[1..made.len() - 1].to_vec();
        let want = vec![first.clone(), latest.clone()];
        wait_until(
            format!("only {want:?} left of {made:?}"),
            Duration::from_secs(120),
            || async {
                let left = runway::revisions(&cluster, &ns, "gc")
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let names: Vec<String> = left.iter().map(kube::ResourceExt::name_any).collect();
                if names == want {
                    Ok(())
                } else {
                    Err(format!("{names:?}"))
                }
            },
        )
        .await?;
        // Their Deployments and pods go with them.
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        wait_until(
            format!("no Deployment or pod of {deleted:?}"),
            Duration::from_secs(90),
            || async {
                let mut left = vec![];
                for revision in &deleted {
                    if deployments
                        .get_opt(&deployment_name(revision))
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some()
                    {
                        left.push(format!("Deployment {revision}"));
                    }
                    let pods = runway::revision_pods(&cluster, &ns, revision)
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    left.extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
                }
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("left: {left:?}"))
                }
            },
        )
        .await?;
        // An event names each deleted revision.
        let told = wait_until(
            "a RevisionDeleted event for each deleted revision",
            Duration::from_secs(30),
            || async {
                let events = runway::events(&cluster, &ns).await.map_err(|e| format!("{e:#}"))?;
                let deletions: Vec<String> = events
                    .iter()
                    .filter(|e| e.reason == "RevisionDeleted")
                    .map(ToString::to_string)
                    .collect();
                let untold: Vec<&String> = deleted
                    .iter()
                    .filter(|revision| !deletions.iter().any(|e| e.contains(revision.as_str())))
                    .collect();
                if untold.is_empty() {
                    Ok(deletions)
                } else {
                    Err(format!("nothing about {untold:?} in {deletions:?}"))
                }
            },
        )
        .await?;
        eprintln!("events: {told:#?}");

        // The tag still reaches the first revision, the Service the latest.
        let pinned = Target {
            address: target.address,
            host: format!("pinned-gc.{ns}.{DOMAIN}"),
        };
        settled(&pinned, &first, 3).await?;
        settled(&target, &latest, 3).await?;
        Ok(())
    })
    .await;
}
