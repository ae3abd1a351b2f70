//! End-to-end tests of gradual rollouts (`spec.rollout`): traffic moves to a new revision in steps under load and
//! the rollout completes; a new revision that answers 5xx is rolled back, with a Warning event, and only its own
//! requests failed.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t29` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_rollouts -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use runway_api::names::revision_name;
use runway_api::{RolloutPhase, Service};
use runway_tests::answers::{
    answered_by_the_header, answers_only_from, ensure_all_ok, print_failures, settled, unix_ms,
};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Load, Outcome};
use runway_tests::runway::{self, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

/// Polls Service `name` until its rollout reaches `phase`, recording each `nextPercent` seen while it progressed and
/// whether status.traffic ever split the requests between the two revisions; returns the Service, the percents
/// and whether a split was seen.
async fn follow_rollout(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    phase: RolloutPhase,
    timeout: Duration,
) -> anyhow::Result<(Service, Vec<i32>, bool)> {
    let seen = std::sync::Mutex::new((Vec::<i32>::new(), false));
    let service = runway::wait_service(cluster, ns, name, &format!("rollout {phase:?}"), timeout, |service| {
        let rollout = service.status.as_ref().and_then(|s| s.rollout.clone());
        let mut seen = seen.lock().expect("not poisoned");
        if let Some(rollout) = &rollout
            && rollout.phase == RolloutPhase::Progressing
        {
            if seen.0.last() != Some(&rollout.next_percent) {
                seen.0.push(rollout.next_percent);
            }
            let shares = runway::traffic_shares(service);
            let split = shares.get(&rollout.previous_revision_name) > Some(&0)
                && shares.get(&rollout.next_revision_name) > Some(&0);
            seen.1 |= split;
        }
        match rollout {
            Some(rollout) if rollout.phase == phase => Ok(service.clone()),
            _ => Err(format!("steps seen {:?}", seen.0)),
        }
    })
    .await?;
    let (steps, split) = seen.into_inner().expect("not poisoned");
    Ok((service, steps, split))
}

#[tokio::test]
async fn t29_a_gradual_rollout_moves_traffic_in_steps_and_completes() {
    runway_scenario("e2e-gradual", |cluster, ns| async move {
        let spec = json!({"rollout": {"durationSeconds": 40}});
        let target = deploy(&cluster, &ns, "gradual", &[("VERSION", "1")], spec).await?;
        let previous = runway::revision_of(&cluster, &ns, "gradual").await?;
        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=50", 4, REQUEST);
        settled(&target, &previous, 5).await?;

        runway::set_env(&cluster, &ns, "gradual", &[("VERSION", "2")]).await?;
        let next = revision_name("gradual", 2);
        let started = Instant::now();
        let (service, steps, split) = follow_rollout(
            &cluster,
            &ns,
            "gradual",
            RolloutPhase::Succeeded,
            Duration::from_secs(40 + 120),
        )
        .await?;
        eprintln!(
            "rollout succeeded {:?} after the update; next percents seen {steps:?}",
            started.elapsed()
        );
        let rollout = service
            .status
            .as_ref()
            .and_then(|s| s.rollout.clone())
            .context("no rollout")?;
        ensure!(
            rollout.previous_revision_name == previous
                && rollout.next_revision_name == next
                && rollout.next_percent == 100,
            "{}",
            runway::summary(&service)
        );
        ensure!(
            steps.iter().any(|p| (1..100).contains(p)) && steps.is_sorted(),
            "want steps strictly between 0 and 100, rising: {steps:?}"
        );
        ensure!(
            split,
            "status.traffic never split the requests between {previous} and {next}"
        );
        let shares = runway::traffic_shares(&service);
        ensure!(
            shares == [(next.clone(), 100)].into_iter().collect(),
            "after the rollout: {shares:?}"
        );
        settled(&target, &next, 20).await?;

        let outcomes = load.finish().await;
        print_failures(started_ms, &outcomes);
        ensure_all_ok("4 clients through a gradual rollout", &outcomes)?;
        answered_by_the_header(&outcomes)?;
        let counts = load::by_revision(&outcomes);
        eprintln!("answers by revision: {counts:?}");
        ensure!(
            counts.len() == 2 && counts.get(&previous) > Some(&0) && counts.get(&next) > Some(&0),
            "want answers from {previous} and {next}: {counts:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t30_a_rollout_whose_new_revision_answers_5xx_is_rolled_back_with_an_event() {
    runway_scenario("e2e-rollback", |cluster, ns| async move {
        let spec = json!({"rollout": {"durationSeconds": 60, "maxErrorPercent": 10}});
        let target = deploy(&cluster, &ns, "rollback", &[("VERSION", "1")], spec).await?;
        let previous = runway::revision_of(&cluster, &ns, "rollback").await?;
        // The new revision's app answers every request with 500 (FAIL_STATUS); the first one answers 200.
        let path = "/sleep?ms=100";
        let started_ms = unix_ms();
        let load = Load::start(&target, path, 16, REQUEST);
        settled(&target, &previous, 3).await?;

        runway::patch_spec(
            &cluster,
            &ns,
            "rollback",
            json!({
                "template": {"spec": {"containers": [runway::hello_container(&[("VERSION", "2"), ("FAIL_STATUS", "500")])]}},
            }),
        )
        .await?;
        let next = revision_name("rollback", 2);
        let started = Instant::now();
        let (service, steps, _) = follow_rollout(
            &cluster,
            &ns,
            "rollback",
            RolloutPhase::RolledBack,
            Duration::from_secs(60 + 120),
        )
        .await?;
        let rolled_back_at = load.elapsed();
        eprintln!(
            "rolled back {:?} after the update; next percents seen {steps:?}: {}",
            started.elapsed(),
            runway::summary(&service)
        );
        let rollout = service
            .status
            .as_ref()
            .and_then(|s| s.rollout.clone())
            .context("no rollout")?;
        ensure!(
            rollout.previous_revision_name == previous && rollout.next_revision_name == next,
            "{}",
            runway::summary(&service)
        );
        runway::wait_service(
            &cluster,
            &ns,
            "rollback",
            &format!("Ready=False/RolloutFailed, all traffic on {previous}"),
            Duration::from_secs(30),
            |service| {
                let shares = runway::traffic_shares(service);
                let back = shares == [(previous.clone(), 100)].into_iter().collect();
                let failed = runway::condition(service, "Ready") == "False/RolloutFailed";
                if back && failed {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await?;
        // A Warning event about the Service with the figures: the new revision and its error ratio.
        let warning = wait_until(
            "a Warning event about the rollback",
            Duration::from_secs(30),
            || async {
                let events = runway::events(&cluster, &ns).await.map_err(|e| format!("{e:#}"))?;
                let lines: Vec<String> = events.iter().map(ToString::to_string).collect();
                events
                    .iter()
                    .find(|e| {
                        e.type_ == "Warning"
                            && e.regarding == "Service/rollback"
                            && e.note.contains(&next)
                            && e.note.contains('%')
                    })
                    .map(ToString::to_string)
                    .ok_or_else(|| format!("events: {lines:#?}"))
            },
        )
        .await?;
        eprintln!("{warning}");

        // The new revision takes nothing any more.
        answers_only_from(&target, path, &previous, 10)
            .await
            .map_err(anyhow::Error::msg)?;
        let outcomes = load.finish().await;
        eprintln!(
            "answers by revision {:?}, by status {:?}",
            load::by_revision(&outcomes),
            load::tally(&outcomes)
        );
        let failed_previous = outcomes
            .iter()
            .filter(|o| !o.ok() && o.revision.as_deref() == Some(&*previous))
            .count();
        let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
        ensure!(failed_previous == 0, "{failed_previous} requests to {previous} failed");
        ensure!(
            !failed.is_empty(),
            "the new revision never answered a 5xx: what made the rollout fail?"
        );
        // Only the new revision failed, with its app's 500 and the revision header.
        let not_next: Vec<&&Outcome> = failed
            .iter()
            .filter(|o| o.status.map(|s| s.as_u16()) != Some(500) || o.revision.as_deref() != Some(&*next))
            .collect();
        ensure!(
            not_next.is_empty(),
            "{} failures other than {next}'s 500, e.g. {:?}",
            not_next.len(),
            not_next.first()
        );
        // Requests sent once the rollback was visible (with a margin for the activators to follow) all got 200.
        let margin = rolled_back_at + Duration::from_secs(3);
        let late: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent_at > margin && !o.ok()).collect();
        if !late.is_empty() {
            print_failures(started_ms, &outcomes);
        }
        ensure!(
            late.is_empty(),
            "{} requests sent after the rollback failed, e.g. {:?}",
            late.len(),
            late.first()
        );
        Ok(())
    })
    .await;
}
