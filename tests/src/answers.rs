//! What requests through the activator got, checked: every one a 200, every one from one revision, each answer's
//! revision header naming the revision of the pod that wrote it; and failed requests printed with the wall-clock
//! time they were sent, to find them in the components' logs.

use anyhow::ensure;

use crate::load::{self, Outcome, Target};
use crate::runway::{READY, REQUEST};
use crate::wait::wait_until;

/// The label and body of an outcome, for messages.
pub fn seen(outcome: &Outcome) -> String {
    format!("{} {:?}", outcome.label(), outcome.body.trim())
}

/// Now, in milliseconds since the Unix epoch: the clock of the components' log lines.
pub fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Each request that did not get a 200, with the wall-clock time it was sent (to find it in the logs), given the
/// [`unix_ms`] when the load started.
pub fn print_failures(started_ms: u128, outcomes: &[Outcome]) {
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

/// Prints the tally of `outcomes` and fails unless there are some and all got 200.
pub fn ensure_all_ok(what: &str, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let tally = load::tally(outcomes);
    eprintln!("{what}: {tally:?}");
    ensure!(
        !outcomes.is_empty() && outcomes.iter().all(Outcome::ok),
        "{what}: not all 200: {tally:?}"
    );
    Ok(())
}

/// Sends `count` requests to `target`, each on a connection of its own (so both activators get some), and checks
/// that every one got 200 from `revision`: its `x-runway-revision` header and the pod named in the body.
pub async fn answers_only_from(target: &Target, path: &str, revision: &str, count: usize) -> Result<(), String> {
    let mut outcomes = vec![];
    for _ in 0..count {
        outcomes.push(load::get(&load::client(), target, path, REQUEST).await);
    }
    let pod = format!("hello from {revision}-");
    let wrong: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !(o.ok() && o.revision.as_deref() == Some(revision) && o.body.starts_with(&pod)))
        .collect();
    match wrong.first() {
        None => Ok(()),
        Some(example) => Err(format!(
            "{} of {count} requests to {} not answered 200 by {revision}: by revision {:?}, statuses {:?}, e.g. {} from {:?}",
            wrong.len(),
            target.host,
            load::by_revision(&outcomes),
            load::tally(&outcomes),
            seen(example),
            example.revision
        )),
    }
}

/// Waits until [`answers_only_from`] holds for `count` requests to `/`: every activator routes `target` to
/// `revision`.
pub async fn settled(target: &Target, revision: &str, count: usize) -> anyhow::Result<()> {
    wait_until(
        format!("{} answered by {revision} only ({count} requests)", target.host),
        READY,
        || answers_only_from(target, "/", revision, count),
    )
    .await?;
    Ok(())
}

/// Checks that each answer's `x-runway-revision` header names the revision of the pod that wrote the body (`hello
/// from {revision}-...`), and that every answer of a pod has the header.
pub fn answered_by_the_header(outcomes: &[Outcome]) -> anyhow::Result<()> {
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|o| o.body.starts_with("hello from "))
        .filter(|o| match &o.revision {
            Some(revision) => !o.body.starts_with(&format!("hello from {revision}-")),
            None => true,
        })
        .map(|o| format!("{:?}: {}", o.revision, seen(o)))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} answers whose header does not name the pod's revision, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    Ok(())
}
