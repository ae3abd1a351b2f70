//! Gradual rollouts (spec.rollout): when the latest ready revision changes, its latestRevision share grows from the
//! revision that served before in equal steps over spec.rollout.durationSeconds. Before each step the new revision
//! is given pods for its larger share, and the step waits until they are ready. With maxErrorPercent, the new
//! revision's share of 5xx responses since the rollout started is compared with the previous revision's at each
//! reconcile; past the threshold, all traffic goes back to the previous revision.
//!
//! A pure function of the previous rollout status, what the revisions show and the clock.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use runway_api::{Rollout, RolloutPhase, RolloutStatus};

use crate::autoscaler::board::Responses;

/// At most this many steps, so that each step lasts long enough to see errors.
const MAX_STEPS: i64 = 10;
/// Steps last at least this long (shorter rollouts take fewer steps).
const MIN_STEP_SECONDS: i64 = 3;
/// The new revision's error ratio is judged only over at least this many responses.
const MIN_RESPONSES: u64 = 5;
/// While a step waits for pods, look again this soon.
const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// What the decision reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Input<'a> {
    pub(crate) spec: Option<&'a Rollout>,
    /// status.rollout as last written.
    pub(crate) current: Option<&'a RolloutStatus>,
    /// The latest ready revision, as just decided.
    pub(crate) latest_ready: Option<&'a str>,
    /// status.latestReadyRevisionName as last written.
    pub(crate) previous_latest_ready: Option<&'a str>,
    /// The Service's revisions.
    pub(crate) revisions: &'a BTreeSet<String>,
    /// Ready pods of the rollout's previous and next revision (the current rollout's, or the one starting).
    pub(crate) ready_pods: Pods,
    /// Responses of the current rollout's next and previous revision since it started.
    pub(crate) responses: Compared,
    /// How long a step may wait for the new revision's pods before the rollout gives up.
    pub(crate) progress_deadline: Duration,
}

/// Ready pods of the two revisions of a rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pods {
    pub(crate) previous: i32,
    pub(crate) next: i32,
}

/// Responses of the two revisions of a rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Compared {
    pub(crate) previous: Responses,
    pub(crate) next: Responses,
}

/// Why the decision wants an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Happened {
    Started,
    Succeeded,
    /// Rolled back, with the figures.
    Failed(String),
}

/// What the decision gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Decision {
    /// The new status.rollout.
    pub(crate) status: Option<RolloutStatus>,
    /// Pods the next revision must keep (its share, or the share of the step it waits for).
    pub(crate) floor: Option<i32>,
    /// When to look again.
    pub(crate) recheck: Option<Duration>,
    pub(crate) happened: Option<Happened>,
}

impl Decision {
    /// The split traffic resolution applies: the previous revision and the next one's percent.
    pub(crate) fn split(&self) -> Option<(&str, i32)> {
        let status = self.status.as_ref()?;
        match status.phase {
            RolloutPhase::Progressing => Some((&status.previous_revision_name, status.next_percent)),
            RolloutPhase::RolledBack => Some((&status.previous_revision_name, 0)),
            RolloutPhase::Succeeded => None,
        }
    }
}

/// Where the rollout stands at `now`.
pub(crate) fn decide(input: &Input, now: Timestamp) -> Decision {
    let (Some(spec), Some(next)) = (input.spec, input.latest_ready) else {
        return Decision::default();
    };
    let exists = |name: &str| input.revisions.contains(name);
    match input.current {
        Some(current) if current.next_revision_name == next && exists(&current.previous_revision_name) => {
            match current.phase {
                RolloutPhase::Progressing => progress(spec, current, input, now),
                RolloutPhase::Succeeded | RolloutPhase::RolledBack => Decision {
                    status: Some(current.clone()),
                    ..Decision::default()
                },
            }
        }
        _ => {
            // A new latest ready revision: roll out from the revision that served most until now.
            let from = match input.current {
                Some(current) => serving(current),
                None => input.previous_latest_ready,
            };
            match from.filter(|from| *from != next && exists(from)) {
                Some(from) => start(from, next, now),
                None => Decision::default(),
            }
        }
    }
}

/// The revision of a rollout that takes most of the traffic.
fn serving(status: &RolloutStatus) -> Option<&str> {
    let next_serves = status.phase == RolloutPhase::Succeeded
        || (status.phase == RolloutPhase::Progressing && status.next_percent >= 50);
    Some(if next_serves {
        &status.next_revision_name
    } else {
        &status.previous_revision_name
    })
}

fn start(from: &str, next: &str, now: Timestamp) -> Decision {
    let now = now.to_string();
    Decision {
        status: Some(RolloutStatus {
            phase: RolloutPhase::Progressing,
            previous_revision_name: from.to_owned(),
            next_revision_name: next.to_owned(),
            next_percent: 0,
            started_at: now.clone(),
            last_step_at: now,
            message: Some(format!("moving traffic from {from} to {next}")),
        }),
        // The first step is due at once: look again as soon as the status is written.
        recheck: Some(Duration::ZERO),
        happened: Some(Happened::Started),
        ..Decision::default()
    }
}

fn progress(spec: &Rollout, current: &RolloutStatus, input: &Input, now: Timestamp) -> Decision {
    if let Some(failure) = spec
        .max_error_percent
        .and_then(|max| too_many_errors(max, current, &input.responses))
    {
        return rolled_back(current, now, failure);
    }
    let steps = steps(spec.duration_seconds);
    let interval = Duration::from_millis(u64::try_from(spec.duration_seconds).unwrap_or(1) * 1000 / steps as u64);
    let last_step = parse(&current.last_step_at).unwrap_or(now);
    // The first step is due when the rollout starts, each next one an interval after the last.
    let due = if current.next_percent == 0 {
        last_step
    } else {
        last_step + interval
    };
    // The pods the Service needs, as the larger revision holds them: not their sum, since the previous revision
    // keeps its pods for a stable window after its share falls, and the next one's floor would then chase a total
    // that its own pods keep raising.
    let total = input.ready_pods.previous.max(input.ready_pods.next);
    if now < due {
        return Decision {
            status: Some(current.clone()),
            floor: Some(share_of(total, current.next_percent)),
            recheck: Some(elapsed(now, due)),
            happened: None,
        };
    }
    if current.next_percent >= 100 {
        let status = RolloutStatus {
            phase: RolloutPhase::Succeeded,
            last_step_at: now.to_string(),
            message: Some(format!(
                "all latestRevision traffic moved from {} to {}",
                current.previous_revision_name, current.next_revision_name
            )),
            ..current.clone()
        };
        return Decision {
            status: Some(status),
            floor: None,
            recheck: None,
            happened: Some(Happened::Succeeded),
        };
    }
    let target = next_step(current.next_percent, steps);
    let needed = share_of(total, target);
    if input.ready_pods.next >= needed {
        let status = RolloutStatus {
            next_percent: target,
            last_step_at: now.to_string(),
            message: Some(format!(
                "{}% of latestRevision traffic on {}, the rest on {}",
                target, current.next_revision_name, current.previous_revision_name
            )),
            ..current.clone()
        };
        return Decision {
            status: Some(status),
            floor: Some(needed),
            recheck: Some(interval),
            happened: None,
        };
    }
    if elapsed(due, now) > input.progress_deadline {
        let failure = format!(
            "{} did not get {needed} ready pods for {target}% of the traffic within progressDeadlineSeconds ({} s); \
             all traffic is back on {}",
            current.next_revision_name,
            input.progress_deadline.as_secs(),
            current.previous_revision_name
        );
        return rolled_back(current, now, failure);
    }
    let status = RolloutStatus {
        message: Some(format!(
            "waiting for {needed} ready pods of {} (it has {}) before moving {target}% of the traffic to it",
            current.next_revision_name, input.ready_pods.next
        )),
        ..current.clone()
    };
    Decision {
        status: Some(status),
        floor: Some(needed),
        recheck: Some(WAIT_RECHECK),
        happened: None,
    }
}

fn rolled_back(current: &RolloutStatus, now: Timestamp, failure: String) -> Decision {
    let status = RolloutStatus {
        phase: RolloutPhase::RolledBack,
        next_percent: 0,
        last_step_at: now.to_string(),
        message: Some(failure.clone()),
        ..current.clone()
    };
    Decision {
        status: Some(status),
        floor: Some(0),
        recheck: None,
        happened: Some(Happened::Failed(failure)),
    }
}

/// The failure, with the figures, when the next revision's 5xx ratio exceeds the previous one's by more than `max`
/// percentage points (judged over at least MIN_RESPONSES of the next revision's responses).
fn too_many_errors(max: i32, current: &RolloutStatus, responses: &Compared) -> Option<String> {
    let (next, previous) = (responses.next, responses.previous);
    if next.requests < MIN_RESPONSES {
        return None;
    }
    let ratio = |r: Responses| {
        if r.requests == 0 {
            0.0
        } else {
            r.server_errors as f64 * 100.0 / r.requests as f64
        }
    };
    if ratio(next) - ratio(previous) <= f64::from(max) {
        return None;
    }
    Some(format!(
        "{} answered {} of {} requests with 5xx ({:.1}%), {} answered {} of {} ({:.1}%): more than maxErrorPercent \
         ({max}) points worse; all traffic is back on {}",
        current.next_revision_name,
        next.server_errors,
        next.requests,
        ratio(next),
        current.previous_revision_name,
        previous.server_errors,
        previous.requests,
        ratio(previous),
        current.previous_revision_name
    ))
}

/// How many equal steps a rollout of `duration_seconds` takes.
fn steps(duration_seconds: i32) -> i64 {
    (i64::from(duration_seconds) / MIN_STEP_SECONDS).clamp(1, MAX_STEPS)
}

/// The percent of the step after `percent`.
fn next_step(percent: i32, steps: i64) -> i32 {
    (1..=steps)
        .map(|k| i32::try_from(k * 100 / steps).unwrap_or(100))
        .find(|p| *p > percent)
        .unwrap_or(100)
}

/// Pods for `percent` of `total`, rounded up.
fn share_of(total: i32, percent: i32) -> i32 {
    (total.max(0) * percent.clamp(0, 100) + 99) / 100
}

fn parse(at: &str) -> Option<Timestamp> {
    at.parse().ok()
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// When the rollout started, for reading the responses since then.
pub(crate) fn started_at(status: &RolloutStatus) -> Option<Timestamp> {
    parse(&status.started_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    /// The fake clock: seconds after a fixed instant.
    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap() + SignedDuration::from_secs(seconds)
    }

    fn spec(duration: i32, max_error: Option<i32>) -> Rollout {
        Rollout {
            duration_seconds: duration,
            max_error_percent: max_error,
        }
    }

    fn revisions() -> BTreeSet<String> {
        ["a-1", "a-2", "a-3"].into_iter().map(str::to_owned).collect()
    }

    /// Runs the decision: `current` and the given ready pods of (previous, next) and responses.
    struct Run<'a> {
        spec: Rollout,
        current: Option<RolloutStatus>,
        latest_ready: &'a str,
        previous_latest_ready: Option<&'a str>,
        pods: (i32, i32),
        responses: Compared,
    }

    impl Run<'_> {
        fn at(&self, seconds: i64) -> Decision {
            let revisions = revisions();
            let input = Input {
                spec: Some(&self.spec),
                current: self.current.as_ref(),
                latest_ready: Some(self.latest_ready),
                previous_latest_ready: self.previous_latest_ready,
                revisions: &revisions,
                ready_pods: Pods {
                    previous: self.pods.0,
                    next: self.pods.1,
                },
                responses: self.responses,
                progress_deadline: Duration::from_secs(120),
            };
            decide(&input, at(seconds))
        }
    }

    fn run(duration: i32) -> Run<'static> {
        Run {
            spec: spec(duration, None),
            current: None,
            latest_ready: "a-2",
            previous_latest_ready: Some("a-1"),
            pods: (4, 4),
            responses: Compared::default(),
        }
    }

    fn phase(d: &Decision) -> (RolloutPhase, i32) {
        let s = d.status.as_ref().unwrap();
        (s.phase, s.next_percent)
    }

    #[test]
    fn a_new_latest_ready_revision_starts_a_rollout_from_the_previous_one() {
        let d = run(30).at(0);
        let status = d.status.clone().unwrap();
        assert_eq!(
            (
                status.phase,
                status.previous_revision_name.as_str(),
                status.next_revision_name.as_str(),
                status.next_percent
            ),
            (RolloutPhase::Progressing, "a-1", "a-2", 0)
        );
        assert_eq!(status.started_at, at(0).to_string());
        assert_eq!(d.happened, Some(Happened::Started));
        assert_eq!(d.split(), Some(("a-1", 0)));
    }

    #[test]
    fn no_rollout_without_spec_without_a_previous_revision_or_for_the_same_one() {
        let revisions = revisions();
        let mut input = Input {
            spec: None,
            current: None,
            latest_ready: Some("a-2"),
            previous_latest_ready: Some("a-1"),
            revisions: &revisions,
            ready_pods: Pods::default(),
            responses: Compared::default(),
            progress_deadline: Duration::from_secs(120),
        };
        assert_eq!(decide(&input, at(0)), Decision::default());
        let rollout = spec(30, None);
        input.spec = Some(&rollout);
        input.previous_latest_ready = None;
        assert_eq!(decide(&input, at(0)), Decision::default(), "the first revision");
        input.previous_latest_ready = Some("a-2");
        assert_eq!(decide(&input, at(0)), Decision::default(), "still the same revision");
        input.previous_latest_ready = Some("gone");
        assert_eq!(
            decide(&input, at(0)),
            Decision::default(),
            "the previous one was deleted"
        );
    }

    #[test]
    fn steps_are_equal_and_taken_once_per_interval_until_success() {
        // 30 s: 10 steps of 10%, 3 s apart. The new revision has the pods for every share.
        let mut r = run(30);
        r.pods = (0, 4);
        r.current = r.at(0).status;
        let mut clock = 0;
        let mut percents = vec![];
        loop {
            let d = r.at(clock);
            if d.status.as_ref().unwrap().phase == RolloutPhase::Succeeded {
                assert_eq!(d.happened, Some(Happened::Succeeded));
                assert_eq!(d.split(), None);
                break;
            }
            if d.status != r.current {
                percents.push((clock, d.status.as_ref().unwrap().next_percent));
            }
            r.current = d.status;
            clock += 1;
            assert!(clock < 100, "no end: {percents:?}");
        }
        assert_eq!(
            percents,
            (0..10).map(|k| (k * 3, (k as i32 + 1) * 10)).collect::<Vec<_>>()
        );
        assert_eq!(clock, 30, "done after durationSeconds");
    }

    #[test]
    fn the_floor_does_not_chase_the_pods_it_added_itself() {
        // The previous revision keeps its 8 pods for a stable window while the next one grows to 8: the Service
        // needs 8, not 16, so every step finds enough ready pods and the rollout ends on time.
        let mut r = run(30);
        r.pods = (8, 8);
        let mut clock = 0;
        loop {
            let d = r.at(clock);
            assert!(d.floor.is_none_or(|floor| floor <= 8), "floor {:?} at {clock}", d.floor);
            if d.status.as_ref().unwrap().phase == RolloutPhase::Succeeded {
                break;
            }
            r.current = d.status;
            clock += 1;
            assert!(clock <= 40, "still {:?} long after durationSeconds", r.current);
        }
    }

    #[test]
    fn between_steps_it_holds_and_says_when_to_look_again() {
        let mut r = run(30);
        r.current = r.at(0).status;
        r.current = r.at(0).status;
        assert_eq!(phase(&r.at(0)), (RolloutPhase::Progressing, 10));
        let d = r.at(1);
        assert_eq!(phase(&d), (RolloutPhase::Progressing, 10));
        assert_eq!(d.recheck, Some(Duration::from_secs(2)));
        assert_eq!(d.floor, Some(1), "10% of 8 pods, rounded up");
        assert_eq!(d.split(), Some(("a-1", 10)));
    }

    #[test]
    fn a_step_waits_for_the_pods_of_its_share_and_gives_up_after_the_deadline() {
        let mut r = run(30);
        r.current = r.at(0).status;
        r.current = r.at(0).status; // 10%
        r.pods = (9, 1);
        let waiting = r.at(3);
        assert_eq!(
            phase(&waiting),
            (RolloutPhase::Progressing, 10),
            "20% of 10 pods needs 2"
        );
        assert_eq!(waiting.floor, Some(2));
        assert_eq!(waiting.recheck, Some(WAIT_RECHECK));
        r.pods = (8, 2);
        assert_eq!(phase(&r.at(4)), (RolloutPhase::Progressing, 20));
        r.pods = (9, 1);
        let stuck = r.at(3 + 121);
        assert_eq!(phase(&stuck), (RolloutPhase::RolledBack, 0));
        let Some(Happened::Failed(message)) = stuck.happened else {
            panic!("rolled back");
        };
        assert!(message.starts_with("a-2 did not get 2 ready pods"), "{message}");
    }

    #[test]
    fn at_zero_steps_need_no_pods() {
        let mut r = run(30);
        r.pods = (0, 0);
        r.current = r.at(0).status;
        assert_eq!(phase(&r.at(0)), (RolloutPhase::Progressing, 10));
    }

    #[test]
    fn too_many_errors_roll_back_with_the_figures_and_it_stays_rolled_back() {
        let mut r = run(30);
        r.spec.max_error_percent = Some(10);
        r.current = r.at(0).status;
        r.current = r.at(0).status;
        r.responses = Compared {
            previous: Responses {
                requests: 400,
                server_errors: 2,
            },
            next: Responses {
                requests: 40,
                server_errors: 40,
            },
        };
        let d = r.at(1);
        assert_eq!(phase(&d), (RolloutPhase::RolledBack, 0));
        assert_eq!(d.split(), Some(("a-1", 0)), "all traffic back on a-1");
        assert_eq!(d.floor, Some(0));
        let expected = "a-2 answered 40 of 40 requests with 5xx (100.0%), a-1 answered 2 of 400 (0.5%): more than \
                        maxErrorPercent (10) points worse; all traffic is back on a-1";
        assert_eq!(d.happened, Some(Happened::Failed(expected.into())));
        assert_eq!(d.status.as_ref().unwrap().message.as_deref(), Some(expected));
        r.current = d.status;
        let later = r.at(100);
        assert_eq!(phase(&later), (RolloutPhase::RolledBack, 0));
        assert_eq!(later.happened, None, "told once");
        // A new revision becomes ready: it rolls out from the one that kept serving.
        r.latest_ready = "a-3";
        let next = r.at(200).status.unwrap();
        assert_eq!(
            (next.previous_revision_name.as_str(), next.next_revision_name.as_str()),
            ("a-1", "a-3")
        );
    }

    #[test]
    fn errors_within_the_threshold_or_too_few_responses_do_not_roll_back() {
        let mut r = run(30);
        r.spec.max_error_percent = Some(10);
        r.current = r.at(0).status;
        r.current = r.at(0).status;
        let responses = |requests, errors| Compared {
            previous: Responses {
                requests: 100,
                server_errors: 5,
            },
            next: Responses {
                requests,
                server_errors: errors,
            },
        };
        r.responses = responses(100, 15);
        assert_eq!(
            phase(&r.at(1)).0,
            RolloutPhase::Progressing,
            "10 points worse is allowed"
        );
        r.responses = responses(4, 4);
        assert_eq!(
            phase(&r.at(1)).0,
            RolloutPhase::Progressing,
            "4 responses are too few to judge"
        );
        r.responses = responses(5, 5);
        assert_eq!(phase(&r.at(1)).0, RolloutPhase::RolledBack);
    }

    #[test]
    fn a_newer_revision_during_a_rollout_starts_from_the_one_serving_most() {
        let mut r = run(30);
        r.current = r.at(0).status;
        for clock in [0, 3, 6, 9, 12] {
            r.current = r.at(clock).status;
        }
        assert_eq!(phase(&r.at(12)), (RolloutPhase::Progressing, 50));
        r.latest_ready = "a-3";
        assert_eq!(r.at(13).status.unwrap().previous_revision_name, "a-2");
    }

    #[test]
    fn short_rollouts_take_fewer_steps() {
        assert_eq!(steps(1), 1);
        assert_eq!(steps(10), 3);
        assert_eq!(steps(600), 10);
        assert_eq!(
            (next_step(0, 3), next_step(33, 3), next_step(66, 3), next_step(100, 3)),
            (33, 66, 100, 100)
        );
        assert_eq!((share_of(7, 33), share_of(0, 50), share_of(3, 100)), (3, 0, 3));
    }
}
