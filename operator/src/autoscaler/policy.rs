//! A revision's scaling settings (its Service's spec.scaling and its own concurrency and deadline) resolved into the
//! numbers the decision works with.

use std::time::Duration;

use runway_api::{RevisionSpec, Scaling, ScalingMetric};

/// Operator-wide autoscaler settings: the rates limiting one tick, and the defaults of every scaling field a Service
/// leaves out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Defaults {
    /// One tick may grow the count to at most ceil(ready x this).
    pub(crate) max_scale_up_rate: f64,
    /// One tick may shrink the count to no less than floor(ready / this).
    pub(crate) max_scale_down_rate: f64,
    pub(crate) concurrency_target: i32,
    pub(crate) rps_target: i32,
    pub(crate) target_utilization_percentage: i32,
    pub(crate) stable_window_seconds: i32,
    pub(crate) panic_window_percentage: i32,
    pub(crate) panic_threshold_percentage: i32,
    pub(crate) scale_to_zero_grace_period_seconds: i32,
    pub(crate) scale_down_delay_seconds: i32,
}

impl Default for Defaults {
    /// Knative's defaults, which Cloud Run and Knative users know.
    fn default() -> Self {
        Defaults {
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            concurrency_target: 100,
            rps_target: 200,
            target_utilization_percentage: 70,
            stable_window_seconds: 60,
            panic_window_percentage: 10,
            panic_threshold_percentage: 200,
            scale_to_zero_grace_period_seconds: 30,
            scale_down_delay_seconds: 0,
        }
    }
}

/// Everything the decision needs to know about one revision.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    pub(crate) metric: ScalingMetric,
    /// The metric's per-pod value to aim for: target x utilization.
    pub(crate) target_per_pod: f64,
    /// minScale while the revision is routed, 0 otherwise.
    pub(crate) min_scale: i32,
    /// None when unlimited.
    pub(crate) max_scale: Option<i32>,
    pub(crate) initial_scale: i32,
    pub(crate) activation_scale: i32,
    pub(crate) stable_window: Duration,
    pub(crate) panic_window: Duration,
    /// Panic mode starts when panic-desired / ready reaches this ratio.
    pub(crate) panic_threshold: f64,
    pub(crate) scale_to_zero_grace: Duration,
    pub(crate) scale_down_delay: Duration,
    /// For a revision whose idle pods freeze: how long idle pods stay (frozen) before they are removed.
    pub(crate) frozen_retention: Option<Duration>,
    pub(crate) max_scale_up_rate: f64,
    pub(crate) max_scale_down_rate: f64,
    /// Pods that have not become ready after starting this long are stopped (spec.progressDeadlineSeconds).
    pub(crate) progress_deadline: Duration,
}

impl Policy {
    /// Resolves a revision's settings: its Service's `scaling`, filling what it leaves out from the operator's
    /// defaults, and the revision's own concurrency and progress deadline. minScale holds only a `routed` revision
    /// (one with a percent or a tag); initialScale and activationScale do not depend on it, so a new revision starts
    /// its pods before it takes traffic.
    pub(crate) fn new(s: &Scaling, revision: &RevisionSpec, routed: bool, defaults: &Defaults) -> Policy {
        let target = s.target.unwrap_or(match (s.metric, revision.container_concurrency) {
            (ScalingMetric::Concurrency, cc) if cc > 0 => cc,
            (ScalingMetric::Concurrency, _) => defaults.concurrency_target,
            (ScalingMetric::Rps, _) => defaults.rps_target,
        });
        let utilization = s
            .target_utilization_percentage
            .unwrap_or(defaults.target_utilization_percentage);
        let stable_window = secs(s.stable_window_seconds.unwrap_or(defaults.stable_window_seconds));
        let panic_percentage = s.panic_window_percentage.unwrap_or(defaults.panic_window_percentage);
        // The panic window is a share of the stable window, never shorter than one bucket.
        let panic_window =
            (stable_window * u32::try_from(panic_percentage).unwrap_or(0) / 100).max(Duration::from_secs(1));
        let min_scale = s.min_scale.unwrap_or(0);
        let at_least_one = min_scale.max(1);
        Policy {
            metric: s.metric,
            target_per_pod: f64::from(target) * f64::from(utilization) / 100.0,
            min_scale: if routed { min_scale } else { 0 },
            max_scale: s.max_scale.filter(|max| *max > 0),
            initial_scale: s.initial_scale.unwrap_or(at_least_one),
            activation_scale: s.activation_scale.unwrap_or(at_least_one),
            stable_window,
            panic_window,
            panic_threshold: f64::from(
                s.panic_threshold_percentage
                    .unwrap_or(defaults.panic_threshold_percentage),
            ) / 100.0,
            scale_to_zero_grace: secs(
                s.scale_to_zero_grace_period_seconds
                    .unwrap_or(defaults.scale_to_zero_grace_period_seconds),
            ),
            scale_down_delay: scale_down_delay(s, revision, defaults),
            frozen_retention: revision.freeze.map(|_| secs(retention_seconds(s))),
            max_scale_up_rate: defaults.max_scale_up_rate,
            max_scale_down_rate: defaults.max_scale_down_rate,
            progress_deadline: secs(revision.progress_deadline_seconds),
        }
    }

    /// Applies minScale and maxScale.
    pub(crate) fn clamp(&self, pods: i32) -> i32 {
        let pods = pods.max(self.min_scale);
        self.max_scale.map_or(pods, |max| pods.min(max))
    }
}

/// The Service's scale-down delay; for a revision whose idle pods freeze, at least the frozen retention: idle pods
/// stay (frozen) that long after the autoscaler would have removed them.
fn scale_down_delay(s: &Scaling, revision: &RevisionSpec, defaults: &Defaults) -> Duration {
    let delay = secs(s.scale_down_delay_seconds.unwrap_or(defaults.scale_down_delay_seconds));
    match revision.freeze {
        Some(_) => delay.max(secs(retention_seconds(s))),
        None => delay,
    }
}

fn retention_seconds(s: &Scaling) -> i32 {
    s.frozen_retention_seconds
        .unwrap_or(runway_api::service::DEFAULT_FROZEN_RETENTION_SECONDS)
}

fn secs(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::ServiceTemplate;

    fn revision(cc: i32) -> RevisionSpec {
        RevisionSpec {
            template: ServiceTemplate::default(),
            container_concurrency: cc,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            freeze: None,
        }
    }

    /// The policy of a routed revision with concurrency `cc`.
    fn resolve(cc: i32, scaling: Scaling, defaults: &Defaults) -> Policy {
        Policy::new(&scaling, &revision(cc), true, defaults)
    }

    #[test]
    fn idle_pods_of_a_freezing_revision_stay_for_the_frozen_retention() {
        let freezing = RevisionSpec {
            freeze: Some(runway_api::Freeze { after_millis: 1000 }),
            ..revision(0)
        };
        let retained = |scaling: Scaling| Policy::new(&scaling, &freezing, true, &Defaults::default()).scale_down_delay;
        assert_eq!(retained(Scaling::default()), Duration::from_secs(900));
        let short = Scaling {
            frozen_retention_seconds: Some(20),
            scale_down_delay_seconds: Some(60),
            ..Scaling::default()
        };
        assert_eq!(
            retained(short.clone()),
            Duration::from_secs(60),
            "the longer of the two"
        );
        // A revision that stops its idle pods keeps the plain delay.
        assert_eq!(
            resolve(0, short, &Defaults::default()).scale_down_delay,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn defaults_follow_knative() {
        let p = resolve(0, Scaling::default(), &Defaults::default());
        assert_eq!(p.target_per_pod, 70.0);
        assert_eq!(p.stable_window, Duration::from_secs(60));
        assert_eq!(p.panic_window, Duration::from_secs(6));
        assert_eq!(p.panic_threshold, 2.0);
        assert_eq!(
            (p.min_scale, p.max_scale, p.initial_scale, p.activation_scale),
            (0, None, 1, 1)
        );
    }

    #[test]
    fn target_defaults_to_container_concurrency_then_metric_default() {
        assert_eq!(
            resolve(10, Scaling::default(), &Defaults::default()).target_per_pod,
            7.0
        );
        let rps = Scaling {
            metric: ScalingMetric::Rps,
            ..Scaling::default()
        };
        assert_eq!(resolve(10, rps, &Defaults::default()).target_per_pod, 140.0);
        let explicit = Scaling {
            target: Some(5),
            target_utilization_percentage: Some(100),
            ..Scaling::default()
        };
        assert_eq!(resolve(10, explicit, &Defaults::default()).target_per_pod, 5.0);
    }

    #[test]
    fn panic_window_is_at_least_one_second_and_initial_scale_follows_min_scale() {
        let s = Scaling {
            stable_window_seconds: Some(6),
            panic_window_percentage: Some(1),
            min_scale: Some(3),
            ..Scaling::default()
        };
        let p = resolve(0, s, &Defaults::default());
        assert_eq!(p.panic_window, Duration::from_secs(1));
        assert_eq!((p.initial_scale, p.activation_scale), (3, 3));
    }

    #[test]
    fn operator_defaults_fill_what_the_service_leaves_out() {
        let defaults = Defaults {
            target_utilization_percentage: 50,
            stable_window_seconds: 120,
            ..Defaults::default()
        };
        let p = resolve(0, Scaling::default(), &defaults);
        assert_eq!(
            (p.target_per_pod, p.stable_window, p.panic_window),
            (50.0, Duration::from_secs(120), Duration::from_secs(12))
        );
        let own = Scaling {
            target_utilization_percentage: Some(90),
            ..Scaling::default()
        };
        assert_eq!(resolve(0, own, &defaults).target_per_pod, 90.0);
    }

    #[test]
    fn clamp_applies_min_and_max() {
        let s = Scaling {
            min_scale: Some(2),
            max_scale: Some(5),
            ..Scaling::default()
        };
        let p = resolve(0, s, &Defaults::default());
        assert_eq!([p.clamp(0), p.clamp(3), p.clamp(9)], [2, 3, 5]);
    }

    #[test]
    fn min_scale_holds_only_a_routed_revision() {
        let s = Scaling {
            min_scale: Some(2),
            max_scale: Some(5),
            ..Scaling::default()
        };
        let unrouted = Policy::new(&s, &revision(0), false, &Defaults::default());
        assert_eq!([unrouted.clamp(0), unrouted.clamp(9)], [0, 5], "maxScale still applies");
        assert_eq!(
            (unrouted.initial_scale, unrouted.activation_scale),
            (2, 2),
            "a new revision starts as many pods as a routed one"
        );
        let deadline = RevisionSpec {
            progress_deadline_seconds: 30,
            ..revision(0)
        };
        assert_eq!(
            Policy::new(&s, &deadline, true, &Defaults::default()).progress_deadline,
            Duration::from_secs(30)
        );
    }
}
