//! Which revision of a Service takes the next request: nginx's smooth weighted round robin.
//!
//! Deterministic, so that a split holds exactly and not only on average: every run of `total weight` picks gives each
//! target its weight (1,000 requests at 90/10 give the 10% revision exactly 100). Smooth: a target's picks are spread
//! evenly over the run instead of coming in a burst, so a canary at 10% sees one request in ten, not ten in a row.

/// The targets of one Service and where the rotation stands.
#[derive(Clone, Debug)]
pub struct Split<T> {
    targets: Vec<Weighted<T>>,
    total: i64,
}

#[derive(Clone, Debug)]
struct Weighted<T> {
    target: T,
    weight: i64,
    /// nginx's `current_weight`: raised by the weight at every pick, lowered by the total when picked.
    current: i64,
}

impl<T: PartialEq> Split<T> {
    /// The targets with a weight above 0, in the given order (it breaks ties); a target listed twice gets the sum
    /// of its weights, as a Service's traffic may name one revision in several entries.
    pub fn new(weights: impl IntoIterator<Item = (T, u32)>) -> Self {
        let mut targets: Vec<Weighted<T>> = Vec::new();
        for (target, weight) in weights.into_iter().filter(|(_, weight)| *weight > 0) {
            match targets.iter_mut().find(|t| t.target == target) {
                Some(existing) => existing.weight += i64::from(weight),
                None => targets.push(Weighted {
                    target,
                    weight: i64::from(weight),
                    current: 0,
                }),
            }
        }
        let total = targets.iter().map(|t| t.weight).sum();
        Split { targets, total }
    }

    /// The target of the next request; `None` when no target has a weight.
    pub fn pick(&mut self) -> Option<&T> {
        let mut best: Option<usize> = None;
        for index in 0..self.targets.len() {
            let target = &mut self.targets[index];
            target.current += target.weight;
            let current = target.current;
            // Strictly greater: ties go to the earlier target.
            if best.is_none_or(|b| current > self.targets[b].current) {
                best = Some(index);
            }
        }
        let chosen = &mut self.targets[best?];
        chosen.current -= self.total;
        Some(&chosen.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(split: &mut Split<&'static str>, picks: usize) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..picks {
            *counts.entry(*split.pick().unwrap()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn a_90_10_split_gives_the_canary_exactly_100_of_1000_spread_evenly() {
        for order in [[("stable", 90), ("canary", 10)], [("canary", 10), ("stable", 90)]] {
            let mut split = Split::new(order);
            let picks: Vec<&str> = (0..1000).map(|_| *split.pick().unwrap()).collect();
            assert_eq!(picks.iter().filter(|p| **p == "canary").count(), 100, "{order:?}");
            // Smooth: every run of ten consecutive requests has exactly one for the canary.
            for window in picks.chunks(10) {
                assert_eq!(window.iter().filter(|p| **p == "canary").count(), 1, "{window:?}");
            }
        }
    }

    #[test]
    fn a_target_at_zero_is_never_picked_and_no_target_gives_none() {
        let mut split = Split::new([("old", 0), ("new", 100)]);
        assert_eq!(counts(&mut split, 500), [("new", 500)].into());
        assert_eq!(Split::<&str>::new([]).pick(), None);
        assert_eq!(Split::new([("old", 0)]).pick(), None);
    }

    #[test]
    fn equal_weights_alternate() {
        let mut split = Split::new([("blue", 50), ("green", 50)]);
        let picks: Vec<&str> = (0..6).map(|_| *split.pick().unwrap()).collect();
        assert_eq!(picks, ["blue", "green", "blue", "green", "blue", "green"]);
    }

    #[test]
    fn a_target_named_twice_gets_the_sum_of_its_weights() {
        let mut split = Split::new([("a", 25), ("b", 50), ("a", 25)]);
        assert_eq!(counts(&mut split, 100), [("a", 50), ("b", 50)].into());
    }

    #[test]
    fn new_weights_hold_from_the_first_pick_after_the_change() {
        let mut split = Split::new([("old", 80), ("new", 20)]);
        assert_eq!(counts(&mut split, 37).get("new"), Some(&7));
        // The rollout's next step: a fresh split with the new weights.
        let mut split = Split::new([("old", 40), ("new", 60)]);
        assert_eq!(counts(&mut split, 1000), [("new", 600), ("old", 400)].into());
        let mut split = Split::new([("old", 0), ("new", 100)]);
        assert_eq!(counts(&mut split, 10), [("new", 10)].into());
    }

    #[test]
    fn uneven_weights_stay_within_one_of_their_share_at_every_point() {
        let weights = [("a", 33), ("b", 33), ("c", 34)];
        let mut split = Split::new(weights);
        let mut seen = std::collections::BTreeMap::<&str, f64>::new();
        for n in 1..=1000 {
            *seen.entry(*split.pick().unwrap()).or_default() += 1.0;
            for (target, weight) in weights {
                let expected = f64::from(weight) * f64::from(n) / 100.0;
                let got = seen.get(target).copied().unwrap_or(0.0);
                assert!(
                    (got - expected).abs() < 1.0 + 1e-9,
                    "{target} after {n}: {got} vs {expected}"
                );
            }
        }
    }
}
