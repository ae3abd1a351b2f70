//! The scaling decision: a pure function of a revision's policy, its history and one new observation.
//!
//! Time is a `Duration` since an arbitrary origin, so tests drive it like a fake clock.

use std::collections::VecDeque;
use std::time::Duration;

use super::policy::Policy;
use runway_api::ScalingMetric;

/// What one tick observed for one revision.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Observation {
    pub(crate) now: Duration,
    /// Requests in flight or queued, averaged over the last second and summed over activators.
    pub(crate) concurrency: f64,
    /// Requests per second over the last second, summed over activators.
    pub(crate) rps: f64,
    /// Requests held right now by any activator (queued or in flight).
    pub(crate) held: u32,
    /// An activator reported a request waiting at zero since the last tick.
    pub(crate) poked: bool,
    /// Whether every activator reported recently: without that, held requests might be unseen.
    pub(crate) reports_complete: bool,
    pub(crate) ready_pods: i32,
    /// The Deployment's current replica count.
    pub(crate) current_scale: i32,
    /// While no pod is ready: how long the newest pod has been starting (`failure::Diagnosis::unready_for`).
    pub(crate) unready_for: Option<Duration>,
    /// The revision's status reports its pods failing (Ready False with a failure reason, e.g. a crash or
    /// ReadinessTimeout). Giving up waits for it, so that requests waiting for the pods are answered with the
    /// failure before the revision goes to zero.
    pub(crate) failing: bool,
    /// Pods a rollout asks to keep at least (`Board::set_floor`), 0 for none.
    pub(crate) floor: i32,
    /// Ready pods the activators cannot use (frozen pods whose thaw failed): started again on top of the count.
    pub(crate) unusable_pods: i32,
}

/// Per-revision memory between ticks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct History {
    /// When this history began (operator start, leader change or revision creation): before a whole stable window
    /// of fresh data exists, nothing is scaled down.
    since: Duration,
    /// One metric value per one-second bucket (whole seconds of the clock), newest last, covering at most the
    /// stable window. Bucketing keeps a tick that runs a little early or late from counting twice in a window.
    samples: VecDeque<(u64, f64)>,
    /// Last time any request was seen (or the history began).
    last_active: Duration,
    /// Last time the panic window was over the threshold, while in panic mode.
    panic_last_over: Option<Duration>,
    /// The count decided on the previous tick.
    last_desired: Option<i32>,
    /// Desired counts over the scale-down delay window.
    recent_desired: VecDeque<(Duration, i32)>,
    /// When the revision was stopped because no pod became ready within the progress deadline: from then on it
    /// stays at zero (or minScale) until a new request, whatever its past load says.
    gave_up: Option<Duration>,
}

/// After giving up, requests reported held only count this long afterwards: reports up to REPORT_TTL old may still
/// show requests that the activator has since answered with the failure. A poke counts at once.
pub(crate) const GIVE_UP_SETTLE: Duration = Duration::from_secs(5);

/// The outcome of one tick.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub(crate) desired: i32,
    pub(crate) stable_average: f64,
    pub(crate) panic_average: f64,
    pub(crate) panicking: bool,
    pub(crate) reason: Reason,
}

/// Why the count is what it is, for events and logs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reason {
    /// The averages asked for this count.
    Load,
    /// A request waited at zero.
    Activation,
    /// Traffic stopped for the stable window plus the grace period.
    Idle,
    /// Nothing was scaled down: not enough fresh data yet, pods still starting, an activator's report is missing, or
    /// idle pods are kept frozen for the frozen retention.
    Holding,
    /// No pod became ready within the progress deadline: stopped (down to minScale) until the next request.
    Failing,
    /// A rollout asked for at least this many pods before giving the revision a larger share of the traffic.
    Rollout,
}

impl History {
    pub(crate) fn new(now: Duration) -> History {
        History {
            since: now,
            samples: VecDeque::new(),
            last_active: now,
            panic_last_over: None,
            last_desired: None,
            recent_desired: VecDeque::new(),
            gave_up: None,
        }
    }

    /// Records the tick's value in its one-second bucket; a second tick in the same bucket replaces the first.
    fn record(&mut self, now: Duration, value: f64, keep: Duration) {
        let bucket = bucket_of(now);
        match self.samples.back_mut() {
            Some((last, slot)) if *last == bucket => *slot = value,
            _ => self.samples.push_back((bucket, value)),
        }
        let oldest = bucket.saturating_sub(seconds(keep));
        while self.samples.front().is_some_and(|(b, _)| *b <= oldest) {
            self.samples.pop_front();
        }
    }

    /// Average of the buckets within `window` of `now`, over the window or, while the history is shorter, over the
    /// buckets it covers.
    fn average(&self, now: Duration, window: Duration) -> f64 {
        let (bucket, width) = (bucket_of(now), seconds(window));
        let from = bucket.saturating_sub(width);
        let sum: f64 = self.samples.iter().filter(|(b, _)| *b > from).map(|(_, v)| v).sum();
        let covered = width.min(bucket.saturating_sub(bucket_of(self.since)) + 1);
        sum / covered.max(1) as f64
    }
}

/// The one-second bucket an instant falls in (the nearest whole second).
fn bucket_of(at: Duration) -> u64 {
    (at + Duration::from_millis(500)).as_secs()
}

/// A window's length in whole buckets, at least one.
fn seconds(window: Duration) -> u64 {
    (window.as_secs_f64().ceil() as u64).max(1)
}

/// Decides the pod count for one tick and updates the history.
pub(crate) fn decide(policy: &Policy, history: &mut History, obs: Observation) -> Decision {
    let now = obs.now;
    let value = match policy.metric {
        ScalingMetric::Concurrency => obs.concurrency,
        ScalingMetric::Rps => obs.rps,
    };
    history.record(now, value, policy.stable_window);
    let active = value > 0.0 || obs.held > 0 || obs.poked;
    if active {
        history.last_active = now;
    }

    let stable_average = history.average(now, policy.stable_window);
    let panic_average = history.average(now, policy.panic_window);
    // Rates and the panic ratio are relative to ready pods; a revision with none counts as one.
    let ready = f64::from(obs.ready_pods.max(1));
    let max_up = (ready * policy.max_scale_up_rate).ceil() as i32;
    let max_down = (ready / policy.max_scale_down_rate).floor() as i32;
    let pods_for = |average: f64| ((average / policy.target_per_pod).ceil() as i32).clamp(max_down, max_up.max(1));
    let stable_want = pods_for(stable_average);
    let panic_want = pods_for(panic_average);

    if f64::from(panic_want) / ready >= policy.panic_threshold {
        history.panic_last_over = Some(now);
    } else if history
        .panic_last_over
        .is_some_and(|t| now.saturating_sub(t) >= policy.stable_window)
    {
        history.panic_last_over = None;
    }
    let panicking = history.panic_last_over.is_some();

    let mut reason = Reason::Load;
    let mut desired = if panicking {
        // In panic mode the count never goes down.
        panic_want.max(history.last_desired.unwrap_or(0)).max(obs.current_scale)
    } else {
        stable_want
    };

    if policy.scale_down_delay > Duration::ZERO {
        history.recent_desired.push_back((now, desired));
        let oldest = now.saturating_sub(policy.scale_down_delay);
        while history.recent_desired.front().is_some_and(|(t, _)| *t <= oldest) {
            history.recent_desired.pop_front();
        }
        desired = history.recent_desired.iter().map(|(_, d)| *d).max().unwrap_or(desired);
    }

    // Idle pods of a revision whose pods freeze stay, frozen, until the revision has been idle for the retention
    // (a pod that never served is kept as long as one that did); under load, the retention is a scale-down delay.
    let idle_for = now.saturating_sub(history.last_active);
    if !active && desired < obs.current_scale && policy.frozen_retention.is_some_and(|retention| idle_for < retention) {
        desired = obs.current_scale;
        reason = Reason::Holding;
    }

    if desired == 0 {
        if obs.current_scale == 0 && active {
            desired = policy.activation_scale;
            reason = Reason::Activation;
        } else if obs.held > 0
            || (obs.current_scale > 0 && idle_for < policy.stable_window + policy.scale_to_zero_grace)
        {
            // Held requests, or traffic too recent: keep one pod.
            desired = 1;
        } else if obs.current_scale > 0 && !obs.reports_complete {
            // An activator we cannot hear from may be holding requests.
            desired = 1;
            reason = Reason::Holding;
        } else {
            reason = Reason::Idle;
        }
    } else if obs.current_scale == 0 {
        desired = desired.max(policy.activation_scale);
        reason = Reason::Activation;
    }

    if obs.floor > desired {
        desired = obs.floor;
        reason = Reason::Rollout;
    }

    // Pods that count as ready but cannot serve (a failed thaw) are replaced as a stopped pod would be: a request that
    // waits for them gets a pod start.
    if desired > 0 && obs.unusable_pods > 0 {
        desired = desired.saturating_add(obs.unusable_pods);
        reason = Reason::Load;
    }

    // Pods known to be failing with none ready: more of them would fail the same way.
    if obs.failing && obs.ready_pods == 0 && obs.current_scale > 0 {
        desired = desired.min(obs.current_scale);
    }

    // Before a stable window of fresh data nothing is scaled down; nor while pods start and none is ready yet (a
    // new revision takes no traffic until one is, so the idle window must not stop it): they are kept until ready or
    // reported failing.
    let fresh = now.saturating_sub(history.since) < policy.stable_window;
    let starting = obs.unready_for.is_some() && !obs.failing;
    if (fresh || starting) && desired < obs.current_scale {
        desired = obs.current_scale;
        reason = Reason::Holding;
    }
    // The bounds win over every hold (fresh history, panic, scale-down delay): a lowered maxScale applies at once.
    desired = policy.clamp(desired);

    // A new request, or a ready pod, ends a give-up; held requests only once earlier reports have expired.
    if obs.poked
        || obs.ready_pods > 0
        || (obs.held > 0
            && history
                .gave_up
                .is_some_and(|at| now.saturating_sub(at) >= GIVE_UP_SETTLE))
    {
        history.gave_up = None;
    }
    let stuck = obs.ready_pods == 0
        && obs.current_scale > 0
        && obs.failing
        && obs
            .unready_for
            .is_some_and(|starting| starting >= policy.progress_deadline);
    if stuck {
        // Stop burning resources on pods that do not become ready; minScale may hold some.
        history.gave_up.get_or_insert(now);
        desired = policy.clamp(0);
        reason = Reason::Failing;
    } else if history.gave_up.is_some() {
        // Stay stopped (also while the Deployment does not show the write yet) until a new request.
        desired = policy.clamp(0);
        reason = Reason::Failing;
    }
    history.last_desired = Some(desired);
    Decision {
        desired,
        stable_average,
        panic_average,
        panicking,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscaler::policy::Defaults;
    use runway_api::{RevisionSpec, Scaling, ServiceTemplate};

    /// A routed revision with a per-pod concurrency target of 10 (100% utilization), a 10 s stable window (so a 1 s
    /// panic window) and a 5 s grace period, unless the scenario changes it.
    fn policy(change: impl FnOnce(&mut Scaling)) -> Policy {
        resolve(true, change)
    }

    /// As `policy`, for a revision with no percent and no tag.
    fn unrouted(change: impl FnOnce(&mut Scaling)) -> Policy {
        resolve(false, change)
    }

    fn resolve(routed: bool, change: impl FnOnce(&mut Scaling)) -> Policy {
        let mut scaling = Scaling {
            target: Some(10),
            target_utilization_percentage: Some(100),
            stable_window_seconds: Some(10),
            scale_to_zero_grace_period_seconds: Some(5),
            ..Scaling::default()
        };
        change(&mut scaling);
        let revision = RevisionSpec {
            template: ServiceTemplate::default(),
            container_concurrency: 0,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            freeze: None,
        };
        Policy::new(&scaling, &revision, routed, &Defaults::default())
    }

    /// One tick of a scenario: the load seen that second.
    #[derive(Clone, Copy)]
    struct Tick {
        concurrency: f64,
        rps: f64,
        held: u32,
        poked: bool,
    }

    fn load(concurrency: f64) -> Tick {
        Tick {
            concurrency,
            rps: 0.0,
            held: 0,
            poked: false,
        }
    }

    fn repeat(tick: Tick, seconds: usize) -> Vec<Tick> {
        vec![tick; seconds]
    }

    /// Runs ticks one second apart, starting at second 1, with a simulated cluster where pods become ready at once
    /// and the Deployment follows each decision; returns the decided count after every tick.
    fn run(policy: &Policy, start_scale: i32, ticks: &[Tick]) -> Vec<i32> {
        run_from(policy, &mut History::new(Duration::ZERO), start_scale, 1, ticks)
    }

    fn run_from(policy: &Policy, history: &mut History, start_scale: i32, first: u64, ticks: &[Tick]) -> Vec<i32> {
        let mut scale = start_scale;
        ticks
            .iter()
            .zip(first..)
            .map(|(tick, second)| {
                let obs = Observation {
                    now: Duration::from_secs(second),
                    concurrency: tick.concurrency,
                    rps: tick.rps,
                    held: tick.held,
                    poked: tick.poked,
                    reports_complete: true,
                    ready_pods: scale,
                    current_scale: scale,
                    unready_for: None,
                    failing: false,
                    floor: 0,
                    unusable_pods: 0,
                };
                scale = decide(policy, history, obs).desired;
                scale
            })
            .collect()
    }

    #[test]
    fn ticks_that_drift_inside_a_second_do_not_count_twice() {
        let p = policy(|_| {});
        let mut history = History::new(Duration::ZERO);
        let at = |ms| Observation {
            now: Duration::from_millis(ms),
            concurrency: 20.0,
            reports_complete: true,
            ready_pods: 2,
            current_scale: 2,
            ..Observation::default()
        };
        // A late tick then an early one: 999 ms apart, in consecutive buckets.
        decide(&p, &mut history, at(10_400));
        let decision = decide(&p, &mut history, at(11_399));
        assert_eq!(decision.panic_average, 20.0, "one bucket in the 1 s panic window");
        let decision = decide(&p, &mut history, at(11_450));
        assert_eq!(
            decision.panic_average, 20.0,
            "a second tick in the same bucket replaces the first"
        );
    }

    #[test]
    fn steady_load_settles_on_load_over_target() {
        let got = run(&policy(|_| {}), 1, &repeat(load(35.0), 12));
        assert_eq!(got, vec![4; 12]);
    }

    #[test]
    fn a_step_up_panics_holds_and_ends_after_a_stable_window_below_threshold() {
        let p = policy(|_| {});
        let mut ticks = repeat(load(10.0), 10);
        ticks.extend(repeat(load(100.0), 3));
        ticks.extend(repeat(load(10.0), 14));
        let got = run(&p, 1, &ticks);
        // Second 11 panics: 10 pods wanted on 1 ready is over 200%. At 12-13 the 10 ready pods carry the burst, under
        // the threshold, so panic mode ends 10 s after second 11; until then the count never goes down.
        assert_eq!(&got[..10], &[1; 10]);
        assert_eq!(&got[10..20], &[10; 10]);
        // Then the stable average decides (28, 19, 10 ...), each tick at most halving the ready pods.
        assert_eq!(&got[20..], &[5, 2, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn burst_then_idle_reaches_zero_after_window_plus_grace() {
        let p = policy(|_| {});
        let mut ticks = repeat(load(20.0), 3);
        ticks.extend(repeat(load(0.0), 20));
        let got = run(&p, 2, &ticks);
        // Last traffic at second 3; zero is allowed from 3 + 10 + 5 = 18 on.
        let first_zero = got.iter().position(|&d| d == 0).map(|i| i + 1);
        assert_eq!(first_zero, Some(18), "{got:?}");
        assert!(got[3..17].iter().all(|&d| d >= 1), "{got:?}");
        assert!(got[17..].iter().all(|&d| d == 0), "{got:?}");
    }

    #[test]
    fn held_requests_block_scale_to_zero() {
        let p = policy(|_| {});
        let mut ticks = repeat(load(0.0), 30);
        ticks[25].held = 1;
        let got = run(&p, 1, &ticks);
        assert_eq!(got[16], 0, "idle since start: zero after window + grace {got:?}");
        // A request held at zero activates at once; then it keeps a pod for window + grace.
        assert_eq!(&got[25..], &[1, 1, 1, 1, 1]);
    }

    #[test]
    fn idle_pods_that_freeze_stay_for_the_retention_then_go() {
        let p = policy(|s| s.frozen_retention_seconds = Some(30));
        let p = Policy {
            frozen_retention: Some(Duration::from_secs(30)),
            ..p
        };
        let mut history = History::new(Duration::ZERO);
        let idle = |now| Observation {
            now: Duration::from_secs(now),
            reports_complete: true,
            ready_pods: 2,
            current_scale: 2,
            ..Observation::default()
        };
        // Never used: kept as long as a pod that served.
        for second in 1..30 {
            assert_eq!(decide(&p, &mut history, idle(second)).desired, 2, "second {second}");
        }
        // Then they go as with Stop (at most half of them per tick).
        assert_eq!(decide(&p, &mut history, idle(31)).desired, 1);
        let last = Observation {
            ready_pods: 1,
            current_scale: 1,
            ..idle(32)
        };
        let decision = decide(&p, &mut history, last);
        assert_eq!((decision.desired, decision.reason), (0, Reason::Idle));
    }

    #[test]
    fn a_pod_whose_thaw_failed_is_replaced_while_requests_wait() {
        let p = policy(|_| {});
        let mut history = History::new(Duration::ZERO);
        let obs = Observation {
            now: Duration::from_secs(30),
            concurrency: 1.0,
            held: 1,
            reports_complete: true,
            ready_pods: 1,
            current_scale: 1,
            unusable_pods: 1,
            ..Observation::default()
        };
        assert_eq!(decide(&p, &mut history, obs).desired, 2);
    }

    #[test]
    fn missing_activator_reports_block_scale_to_zero() {
        let p = policy(|_| {});
        let mut history = History::new(Duration::ZERO);
        let obs = |now| Observation {
            now: Duration::from_secs(now),
            reports_complete: false,
            ready_pods: 1,
            current_scale: 1,
            ..Observation::default()
        };
        for second in 1..30 {
            assert_eq!(decide(&p, &mut history, obs(second)).desired, 1);
        }
        let decision = decide(
            &p,
            &mut history,
            Observation {
                reports_complete: true,
                ..obs(30)
            },
        );
        assert_eq!((decision.desired, decision.reason), (0, Reason::Idle));
    }

    #[test]
    fn min_and_max_scale_clamp() {
        let p = policy(|s| {
            s.min_scale = Some(2);
            s.max_scale = Some(3);
        });
        let mut ticks = repeat(load(0.0), 20);
        ticks.extend(repeat(load(100.0), 3));
        assert_eq!(run(&p, 2, &ticks), [vec![2; 20], vec![3; 3]].concat());
    }

    #[test]
    fn scale_down_is_limited_to_half_the_ready_pods_per_tick() {
        let p = policy(|_| {});
        // Eight idle pods: held for the first stable window (fresh history), then halved each tick down to one,
        // which stays until window + grace since the history began.
        let got = run(&p, 8, &repeat(load(0.0), 15));
        assert_eq!(got, [vec![8; 9], vec![4, 2, 1, 1, 1, 0]].concat());
    }

    #[test]
    fn scale_down_follows_the_maximum_over_the_delay_window() {
        let p = policy(|s| {
            s.scale_down_delay_seconds = Some(5);
            s.panic_threshold_percentage = Some(1000);
        });
        let mut history = History::new(Duration::ZERO);
        run_from(&p, &mut history, 1, 1, &repeat(load(40.0), 10));
        let got = run_from(&p, &mut history, 4, 11, &repeat(load(10.0), 14));
        // Without the delay the count would fall from second 14 on (4, 4, 4, 3, 3, 3, 2, ...).
        assert_eq!(&got[..8], &[4, 4, 4, 4, 4, 4, 4, 3]);
        assert_eq!(got.last(), Some(&1));
    }

    #[test]
    fn a_restart_holds_the_count_for_a_stable_window() {
        let p = policy(|_| {});
        let mut history = History::new(Duration::from_secs(100));
        let got = run_from(&p, &mut history, 5, 101, &repeat(load(0.0), 12));
        assert_eq!(&got[..9], &[5; 9]);
        assert!(got[9] < 5, "{got:?}");
    }

    #[test]
    fn lowered_bounds_win_over_the_restart_hold() {
        // minScale = maxScale = 4 lowered to 1 right after the history began (a new revision, an operator restart).
        let p = policy(|s| {
            s.min_scale = Some(1);
            s.max_scale = Some(1);
        });
        let got = run(&p, 4, &repeat(load(0.0), 3));
        assert_eq!(got, vec![1, 1, 1]);
    }

    #[test]
    fn a_restart_still_scales_up() {
        let p = policy(|_| {});
        let got = run(&p, 1, &repeat(load(50.0), 2));
        assert_eq!(got, vec![5, 5]);
    }

    #[test]
    fn rps_metric_scales_on_requests_per_second() {
        let p = policy(|s| s.metric = ScalingMetric::Rps);
        let tick = Tick {
            concurrency: 1.0,
            rps: 45.0,
            held: 0,
            poked: false,
        };
        assert_eq!(run(&p, 1, &repeat(tick, 12)), vec![5; 12]);
    }

    #[test]
    fn a_poke_at_zero_starts_activation_scale_pods() {
        let p = policy(|s| s.activation_scale = Some(3));
        let poke = Tick {
            concurrency: 0.0,
            rps: 0.0,
            held: 1,
            poked: true,
        };
        let mut history = History::new(Duration::ZERO);
        let got = run_from(&p, &mut history, 0, 1, &[poke]);
        assert_eq!(got, vec![3]);
        let decision = decide(
            &p,
            &mut History::new(Duration::ZERO),
            Observation {
                now: Duration::from_secs(1),
                poked: true,
                ..Observation::default()
            },
        );
        assert_eq!((decision.desired, decision.reason), (3, Reason::Activation));
    }

    #[test]
    fn initial_pods_stay_for_window_plus_grace_without_traffic() {
        let p = policy(|_| {});
        let got = run(&p, 1, &repeat(load(0.0), 16));
        assert_eq!(&got[..14], &[1; 14]);
        assert_eq!(got[14], 0);
    }

    /// The simulated pods of a broken revision: how many, and since when they start.
    struct Pods {
        scale: i32,
        started: Duration,
    }

    fn pods(scale: i32) -> Pods {
        Pods {
            scale,
            started: Duration::ZERO,
        }
    }

    /// A revision whose pods never become ready: each tick sees its current scale, no ready pod, and pods starting
    /// since the last time it went from zero to some. Returns each tick's decision.
    fn run_broken(policy: &Policy, history: &mut History, pods: &mut Pods, ticks: &[(u64, Tick)]) -> Vec<Decision> {
        let Pods { scale, started } = pods;
        ticks
            .iter()
            .map(|(second, tick)| {
                let now = Duration::from_secs(*second);
                let obs = Observation {
                    now,
                    concurrency: tick.concurrency,
                    rps: tick.rps,
                    held: tick.held,
                    poked: tick.poked,
                    reports_complete: true,
                    ready_pods: 0,
                    current_scale: *scale,
                    unready_for: (*scale > 0).then(|| now - *started),
                    failing: true,
                    floor: 0,
                    unusable_pods: 0,
                };
                let decision = decide(policy, history, obs);
                if *scale == 0 && decision.desired > 0 {
                    *started = now;
                }
                *scale = decision.desired;
                decision
            })
            .collect()
    }

    fn with_deadline(mut p: Policy, seconds: u64) -> Policy {
        p.progress_deadline = Duration::from_secs(seconds);
        p
    }

    /// Requests answered at once with the failure: a little concurrency, nothing held.
    fn answered() -> Tick {
        load(0.2)
    }

    fn poke() -> Tick {
        Tick {
            concurrency: 0.0,
            rps: 0.0,
            held: 1,
            poked: true,
        }
    }

    #[test]
    fn pods_that_never_become_ready_stop_at_the_deadline_and_stay_stopped_until_a_request() {
        let p = with_deadline(policy(|_| {}), 30);
        let mut history = History::new(Duration::ZERO);
        let mut broken = pods(1);
        let ticks: Vec<(u64, Tick)> = (1..=45).map(|s| (s, answered())).collect();
        let got = run_broken(&p, &mut history, &mut broken, &ticks);
        assert!(got[..29].iter().all(|d| d.desired == 1), "kept while starting");
        assert_eq!(
            (got[29].desired, got[29].reason.clone()),
            (0, Reason::Failing),
            "stopped at 30 s"
        );
        assert!(
            got[30..].iter().all(|d| d.desired == 0),
            "traffic answered with the failure does not restart it"
        );
        // The next request: its poke starts a pod, whose deadline counts from then.
        let got = run_broken(&p, &mut history, &mut broken, &[(46, poke()), (47, answered())]);
        assert_eq!((got[0].desired, got[0].reason.clone()), (1, Reason::Activation));
        assert_eq!(got[1].desired, 1);
        let later: Vec<(u64, Tick)> = (48..=80).map(|s| (s, answered())).collect();
        let got = run_broken(&p, &mut history, &mut broken, &later);
        let stop = got.iter().position(|d| d.desired == 0).map(|i| i + 48);
        assert_eq!(stop, Some(76), "30 s after the restart at 46");
    }

    #[test]
    fn requests_held_right_after_giving_up_wait_for_the_reports_to_settle() {
        let p = with_deadline(policy(|_| {}), 10);
        let mut history = History::new(Duration::ZERO);
        let mut broken = pods(1);
        let ticks: Vec<(u64, Tick)> = (1..=10).map(|s| (s, answered())).collect();
        let got = run_broken(&p, &mut history, &mut broken, &ticks);
        assert_eq!(got[9].desired, 0, "gave up at 10 s");
        let held = Tick { held: 1, ..load(1.0) };
        // A report from before the give-up still shows a request the activator has since answered.
        let got = run_broken(&p, &mut history, &mut broken, &[(11, held), (12, held)]);
        assert!(got.iter().all(|d| d.desired == 0));
        // A request still held once earlier reports expired is a new one: start again.
        let got = run_broken(&p, &mut history, &mut broken, &[(15, held)]);
        assert_eq!((got[0].desired, got[0].reason.clone()), (1, Reason::Activation));
    }

    #[test]
    fn min_scale_holds_pods_that_never_become_ready() {
        let p = with_deadline(policy(|s| s.min_scale = Some(2)), 10);
        let mut history = History::new(Duration::ZERO);
        let mut broken = pods(2);
        let ticks: Vec<(u64, Tick)> = (1..=20).map(|s| (s, answered())).collect();
        let got = run_broken(&p, &mut history, &mut broken, &ticks);
        assert!(got.iter().all(|d| d.desired == 2), "{got:?}");
        assert_eq!(got[19].reason, Reason::Failing);
    }

    #[test]
    fn failing_pods_are_not_scaled_out_on_queued_requests() {
        let p = policy(|_| {});
        let obs = |failing| Observation {
            now: Duration::from_secs(1),
            concurrency: 50.0,
            held: 50,
            reports_complete: true,
            ready_pods: 0,
            current_scale: 1,
            unready_for: Some(Duration::from_secs(5)),
            failing,
            ..Observation::default()
        };
        assert_eq!(decide(&p, &mut History::new(Duration::ZERO), obs(false)).desired, 5);
        assert_eq!(decide(&p, &mut History::new(Duration::ZERO), obs(true)).desired, 1);
    }

    #[test]
    fn giving_up_waits_for_the_status_to_report_the_failure() {
        let p = with_deadline(policy(|_| {}), 10);
        let obs = |failing| Observation {
            now: Duration::from_secs(11),
            reports_complete: true,
            ready_pods: 0,
            current_scale: 1,
            unready_for: Some(Duration::from_secs(11)),
            failing,
            ..Observation::default()
        };
        let mut history = History::new(Duration::ZERO);
        assert_eq!(
            decide(&p, &mut history, obs(false)).desired,
            1,
            "past the deadline, not reported yet"
        );
        assert_eq!(decide(&p, &mut history, obs(true)).desired, 0);
    }

    #[test]
    fn slow_pods_within_the_deadline_are_left_alone() {
        let p = with_deadline(policy(|_| {}), 120);
        let mut history = History::new(Duration::ZERO);
        let mut broken = pods(1);
        let ticks: Vec<(u64, Tick)> = (1..=60).map(|s| (s, load(3.0))).collect();
        let got = run_broken(&p, &mut history, &mut broken, &ticks);
        assert!(got.iter().all(|d| d.desired == 1 && d.reason != Reason::Failing));
    }

    #[test]
    fn an_unrouted_revision_goes_to_zero_after_the_idle_window_whatever_its_min_scale() {
        let routed = policy(|s| s.min_scale = Some(2));
        let mut history = History::new(Duration::ZERO);
        let mut ticks = repeat(load(20.0), 5);
        ticks.extend(repeat(load(0.0), 20));
        let got = run_from(&routed, &mut history, 2, 1, &ticks);
        assert!(got.iter().all(|&d| d == 2), "minScale holds a routed revision {got:?}");
        // Its traffic moves away at second 26: from then on only the idle window since its last request (second 5)
        // and the halving of ready pods decide.
        let got = run_from(
            &unrouted(|s| s.min_scale = Some(2)),
            &mut history,
            2,
            26,
            &repeat(load(0.0), 3),
        );
        assert_eq!(got, vec![1, 0, 0]);
    }

    #[test]
    fn an_unrouted_revision_keeps_a_pod_while_its_last_requests_finish() {
        let p = unrouted(|s| s.min_scale = Some(3));
        let mut ticks = repeat(load(20.0), 5);
        let draining = Tick { held: 1, ..load(1.0) };
        ticks.extend(repeat(draining, 5));
        ticks.extend(repeat(load(0.0), 16));
        let got = run(&p, 3, &ticks);
        assert!(got[..24].iter().all(|&d| d >= 1), "{got:?}");
        // Last request at second 10: zero from 10 + 10 + 5 = 25 on.
        assert_eq!(got.iter().position(|&d| d == 0).map(|i| i + 1), Some(25), "{got:?}");
    }

    /// A revision whose first pods take `ready_at` seconds to become ready, without traffic: the decided counts.
    fn run_starting(policy: &Policy, start_scale: i32, ready_at: u64, seconds: u64) -> Vec<Decision> {
        let mut history = History::new(Duration::ZERO);
        let mut scale = start_scale;
        (1..=seconds)
            .map(|second| {
                let now = Duration::from_secs(second);
                let ready = second >= ready_at;
                let obs = Observation {
                    now,
                    reports_complete: true,
                    ready_pods: if ready { scale } else { 0 },
                    current_scale: scale,
                    unready_for: (!ready && scale > 0).then_some(now),
                    ..Observation::default()
                };
                let decision = decide(policy, &mut history, obs);
                scale = decision.desired;
                decision
            })
            .collect()
    }

    #[test]
    fn pods_of_a_new_revision_are_kept_until_ready_then_follow_the_idle_window() {
        // Slower than the 15 s idle window: held while starting, then stopped at once, idle since the history began.
        let got = run_starting(&unrouted(|_| {}), 2, 40, 41);
        assert!(got[..39].iter().all(|d| d.desired == 2), "{got:?}");
        assert_eq!(got[16].reason, Reason::Holding);
        assert_eq!((got[39].desired, got[40].desired), (1, 0), "halved, then idle");
    }

    #[test]
    fn max_scale_wins_over_the_hold_of_starting_pods() {
        let got = run_starting(&unrouted(|s| s.max_scale = Some(1)), 3, 40, 20);
        assert!(got.iter().all(|d| d.desired == 1), "{got:?}");
    }

    #[test]
    fn starting_pods_reported_failing_are_not_held() {
        let p = policy(|_| {});
        let mut history = History::new(Duration::ZERO);
        let obs = |second, failing| Observation {
            now: Duration::from_secs(second),
            reports_complete: true,
            current_scale: 1,
            unready_for: Some(Duration::from_secs(second)),
            failing,
            ..Observation::default()
        };
        assert_eq!(decide(&p, &mut history, obs(20, false)).desired, 1, "still starting");
        let decision = decide(&p, &mut history, obs(21, true));
        assert_eq!((decision.desired, decision.reason), (0, Reason::Idle));
    }

    #[test]
    fn a_rollout_floor_scales_an_idle_revision_up_and_holds_it_under_max_scale() {
        let p = unrouted(|s| s.max_scale = Some(6));
        let mut history = History::new(Duration::ZERO);
        let mut scale = 0;
        let mut tick = |second, floor| {
            let obs = Observation {
                now: Duration::from_secs(second),
                reports_complete: true,
                ready_pods: scale,
                current_scale: scale,
                floor,
                ..Observation::default()
            };
            let decision = decide(&p, &mut history, obs);
            scale = decision.desired;
            (decision.desired, decision.reason)
        };
        assert_eq!(tick(1, 4), (4, Reason::Rollout), "from zero");
        assert!(
            (2..40).all(|second| tick(second, 4) == (4, Reason::Rollout)),
            "idle, held"
        );
        assert_eq!(tick(40, 9), (6, Reason::Rollout), "maxScale wins");
        // The floor lifted: idle since the history began, halved each tick then stopped.
        assert_eq!([tick(41, 0).0, tick(42, 0).0, tick(43, 0).0], [3, 1, 0]);
    }

    #[test]
    fn a_rollout_floor_does_not_grow_failing_pods() {
        let p = policy(|_| {});
        let obs = Observation {
            now: Duration::from_secs(20),
            reports_complete: true,
            current_scale: 1,
            unready_for: Some(Duration::from_secs(20)),
            failing: true,
            floor: 4,
            ..Observation::default()
        };
        assert_eq!(decide(&p, &mut History::new(Duration::ZERO), obs).desired, 1);
    }
}
