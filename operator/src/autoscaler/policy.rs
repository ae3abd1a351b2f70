//! A Service's scaling settings resolved into the numbers the decision works with.

use std::time::Duration;

use runway_api::{ScalingMetric, ServiceSpec};

/// Default per-pod concurrency target when the Service sets neither a target nor containerConcurrency.
pub const DEFAULT_CONCURRENCY_TARGET: i32 = 100;
/// Default per-pod requests-per-second target.
pub const DEFAULT_RPS_TARGET: i32 = 200;

/// Operator-wide limits on how fast one tick may change the pod count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// One tick may grow the count to at most ceil(ready x this).
    pub max_scale_up_rate: f64,
    /// One tick may shrink the count to no less than floor(ready / this).
    pub max_scale_down_rate: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
        }
    }
}

/// Everything the decision needs to know about one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub metric: ScalingMetric,
    /// The metric's per-pod value to aim for: target x utilization.
    pub target_per_pod: f64,
    pub min_scale: i32,
    /// None when unlimited.
    pub max_scale: Option<i32>,
    pub initial_scale: i32,
    pub activation_scale: i32,
    pub stable_window: Duration,
    pub panic_window: Duration,
    /// Panic mode starts when panic-desired / ready reaches this ratio.
    pub panic_threshold: f64,
    pub scale_to_zero_grace: Duration,
    pub scale_down_delay: Duration,
    pub rates: RateLimits,
}

impl Policy {
    /// Resolves the Service's settings, filling the defaults that depend on other fields.
    pub fn from_spec(spec: &ServiceSpec, rates: RateLimits) -> Policy {
        let s = &spec.scaling;
        let target = s.target.unwrap_or(match (s.metric, spec.container_concurrency) {
            (ScalingMetric::Concurrency, cc) if cc > 0 => cc,
            (ScalingMetric::Concurrency, _) => DEFAULT_CONCURRENCY_TARGET,
            (ScalingMetric::Rps, _) => DEFAULT_RPS_TARGET,
        });
        let stable_window = secs(s.stable_window_seconds);
        // The panic window is a share of the stable window, never shorter than one bucket.
        let panic_window = (stable_window * s.panic_window_percentage.max(0) as u32 / 100).max(Duration::from_secs(1));
        let at_least_one = s.min_scale.max(1);
        Policy {
            metric: s.metric,
            target_per_pod: f64::from(target) * f64::from(s.target_utilization_percentage) / 100.0,
            min_scale: s.min_scale,
            max_scale: (s.max_scale > 0).then_some(s.max_scale),
            initial_scale: s.initial_scale.unwrap_or(at_least_one),
            activation_scale: s.activation_scale.unwrap_or(at_least_one),
            stable_window,
            panic_window,
            panic_threshold: f64::from(s.panic_threshold_percentage) / 100.0,
            scale_to_zero_grace: secs(s.scale_to_zero_grace_period_seconds),
            scale_down_delay: secs(s.scale_down_delay_seconds),
            rates,
        }
    }

    /// Applies minScale and maxScale.
    pub fn clamp(&self, pods: i32) -> i32 {
        let pods = pods.max(self.min_scale);
        self.max_scale.map_or(pods, |max| pods.min(max))
    }
}

fn secs(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::{Scaling, ServiceTemplate};

    fn spec(cc: i32, scaling: Scaling) -> ServiceSpec {
        ServiceSpec {
            template: ServiceTemplate::default(),
            container_concurrency: cc,
            timeout_seconds: 300,
            scaling,
        }
    }

    #[test]
    fn defaults_follow_knative() {
        let p = Policy::from_spec(&spec(0, Scaling::default()), RateLimits::default());
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
            Policy::from_spec(&spec(10, Scaling::default()), RateLimits::default()).target_per_pod,
            7.0
        );
        let rps = Scaling {
            metric: ScalingMetric::Rps,
            ..Scaling::default()
        };
        assert_eq!(
            Policy::from_spec(&spec(10, rps), RateLimits::default()).target_per_pod,
            140.0
        );
        let explicit = Scaling {
            target: Some(5),
            target_utilization_percentage: 100,
            ..Scaling::default()
        };
        assert_eq!(
            Policy::from_spec(&spec(10, explicit), RateLimits::default()).target_per_pod,
            5.0
        );
    }

    #[test]
    fn panic_window_is_at_least_one_second_and_initial_scale_follows_min_scale() {
        let s = Scaling {
            stable_window_seconds: 6,
            panic_window_percentage: 1,
            min_scale: 3,
            ..Scaling::default()
        };
        let p = Policy::from_spec(&spec(0, s), RateLimits::default());
        assert_eq!(p.panic_window, Duration::from_secs(1));
        assert_eq!((p.initial_scale, p.activation_scale), (3, 3));
    }

    #[test]
    fn clamp_applies_min_and_max() {
        let s = Scaling {
            min_scale: 2,
            max_scale: 5,
            ..Scaling::default()
        };
        let p = Policy::from_spec(&spec(0, s), RateLimits::default());
        assert_eq!([p.clamp(0), p.clamp(3), p.clamp(9)], [2, 3, 5]);
    }
}
