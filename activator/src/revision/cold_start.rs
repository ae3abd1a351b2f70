//! A cold start's timeline, and how it splits the wait of each request that went through it: the pure part of the
//! cold-start metric and of the trace spans of a queue wait.

use std::time::Duration;

use tokio::time::Instant;

/// When a cold start's steps happened, as this activator saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColdStart {
    /// The first request found the revision with no routable pod.
    pub began: Instant,
    /// A pod of the revision was first listed (the scale write, scheduling and the pod's IP are behind it).
    pub pod_listed: Option<Instant>,
    /// A pod first became routable: it answered its probe, or Kubernetes reported it ready.
    pub routable: Option<Instant>,
}

/// A step of a cold start, as a part of a request's queue wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColdStartPhase {
    /// Until a pod is listed: the poke, the autoscaler's scale write, scheduling, the pod's sandbox.
    Scale,
    /// Until the pod is routable: containers starting, the app booting, probes until the first success.
    PodStart,
    /// Until this request got its slot: its turn in the queue.
    Dispatch,
}

impl ColdStartPhase {
    pub fn name(self) -> &'static str {
        match self {
            ColdStartPhase::Scale => "scale",
            ColdStartPhase::PodStart => "pod start",
            ColdStartPhase::Dispatch => "dispatch",
        }
    }
}

impl ColdStart {
    /// A cold start that began at `at`; `pod_listed` when a pod (not yet routable) was listed already.
    pub fn began(at: Instant, pod_listed: bool) -> Self {
        ColdStart {
            began: at,
            pod_listed: pod_listed.then_some(at),
            routable: None,
        }
    }

    /// A pod was listed at `at`; only the first counts.
    pub fn pod_listed(&mut self, at: Instant) {
        self.pod_listed.get_or_insert(at);
    }

    /// The cold start ended at `at`, with a routable pod; its duration.
    pub fn finish(&mut self, at: Instant) -> Duration {
        let routable = *self.routable.get_or_insert(at);
        // A pod that became routable without being listed first (a probe beat the watch) ends both steps at once.
        self.pod_listed.get_or_insert(routable);
        routable - self.began
    }

    /// The wait of a request queued at `queued` and granted at `granted`, cut into this cold start's phases: each
    /// boundary is clamped into the wait, so the phases follow each other and add up to the whole wait. Empty
    /// phases are left out.
    pub fn phases(&self, queued: Instant, granted: Instant) -> Vec<(ColdStartPhase, Instant, Instant)> {
        let clamp = |at: Option<Instant>| at.unwrap_or(granted).clamp(queued, granted);
        let listed = clamp(self.pod_listed);
        let routable = clamp(self.routable).max(listed);
        [
            (ColdStartPhase::Scale, queued, listed),
            (ColdStartPhase::PodStart, listed, routable),
            (ColdStartPhase::Dispatch, routable, granted),
        ]
        .into_iter()
        .filter(|(_, start, end)| end > start)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn total(phases: &[(ColdStartPhase, Instant, Instant)]) -> Duration {
        phases.iter().map(|(_, start, end)| *end - *start).sum()
    }

    #[test]
    fn the_phases_of_a_wait_add_up_to_the_wait() {
        let t0 = Instant::now();
        let mut cold = ColdStart::began(t0, false);
        cold.pod_listed(t0 + ms(300));
        cold.pod_listed(t0 + ms(400));
        assert_eq!(cold.finish(t0 + ms(900)), ms(900));
        let first = cold.phases(t0, t0 + ms(901));
        assert_eq!(
            first.iter().map(|(p, _, _)| *p).collect::<Vec<_>>(),
            [
                ColdStartPhase::Scale,
                ColdStartPhase::PodStart,
                ColdStartPhase::Dispatch
            ]
        );
        assert_eq!(first[0].2 - first[0].1, ms(300));
        assert_eq!(total(&first), ms(901));
        // A request that came while the pod was starting waited only for the rest.
        let later = cold.phases(t0 + ms(500), t0 + ms(900));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].0, ColdStartPhase::PodStart);
        assert_eq!(total(&later), ms(400));
    }

    #[test]
    fn a_pod_routable_before_it_was_listed_ends_both_steps() {
        let t0 = Instant::now();
        let mut cold = ColdStart::began(t0, false);
        cold.finish(t0 + ms(200));
        let phases = cold.phases(t0, t0 + ms(200));
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].0, ColdStartPhase::Scale);
        assert_eq!(total(&phases), ms(200));
    }

    #[test]
    fn a_pod_listed_before_the_first_request_leaves_no_scale_phase() {
        let t0 = Instant::now();
        let mut cold = ColdStart::began(t0, true);
        cold.finish(t0 + ms(50));
        let phases = cold.phases(t0, t0 + ms(60));
        assert_eq!(
            phases.iter().map(|(p, _, _)| *p).collect::<Vec<_>>(),
            [ColdStartPhase::PodStart, ColdStartPhase::Dispatch]
        );
        assert_eq!(total(&phases), ms(60));
    }
}
