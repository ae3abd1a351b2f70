//! Which pod gets the next request.

use crate::revision::slots::Slots;

/// What the choice needs to know of one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodLoad {
    /// May receive new requests: ready (or probed) and not terminating.
    pub routable: bool,
    pub in_flight: u32,
    pub slots: Slots,
}

impl PodLoad {
    fn available(&self) -> bool {
        self.routable && self.slots.has_room(self.in_flight)
    }
}

/// The index of the pod for the next request, or `None` when every pod is full or unroutable.
///
/// Pods without a limit: power of two choices on in-flight requests, with `random(n)` picking in `0..n`. It avoids
/// herding onto one pod that every activator believes is least loaded. Limited pods: the least loaded pod with room,
/// ties broken by rotating the starting point with `rotation`, so equal pods take turns.
pub fn choose_pod(pods: &[PodLoad], rotation: usize, mut random: impl FnMut(usize) -> usize) -> Option<usize> {
    let limited = pods.iter().any(|p| matches!(p.slots, Slots::Limited(_)));
    if limited {
        return least_loaded(pods, rotation);
    }
    let available: Vec<usize> = (0..pods.len()).filter(|i| pods[*i].available()).collect();
    match available.len() {
        0 => None,
        1 => Some(available[0]),
        n => {
            let first = random(n);
            let second = (first + 1 + random(n - 1)) % n;
            let (a, b) = (available[first], available[second]);
            Some(if pods[b].in_flight < pods[a].in_flight { b } else { a })
        }
    }
}

fn least_loaded(pods: &[PodLoad], rotation: usize) -> Option<usize> {
    let n = pods.len();
    (0..n)
        .map(|offset| (rotation + offset) % n)
        .filter(|i| pods[*i].available())
        .min_by_key(|i| pods[*i].in_flight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(in_flight: u32, slots: Slots) -> PodLoad {
        PodLoad {
            routable: true,
            in_flight,
            slots,
        }
    }

    #[test]
    fn nothing_available_gives_none() {
        assert_eq!(choose_pod(&[], 0, |_| 0), None);
        let full = [pod(1, Slots::Limited(1)), pod(0, Slots::Limited(0))];
        assert_eq!(choose_pod(&full, 0, |_| 0), None);
        let unroutable = PodLoad {
            routable: false,
            ..pod(0, Slots::Unlimited)
        };
        assert_eq!(choose_pod(&[unroutable], 0, |_| 0), None);
    }

    #[test]
    fn limited_pods_take_the_least_loaded_with_room() {
        let pods = [
            pod(2, Slots::Limited(3)),
            pod(1, Slots::Limited(3)),
            pod(1, Slots::Limited(1)),
        ];
        assert_eq!(choose_pod(&pods, 0, |_| 0), Some(1));
    }

    #[test]
    fn equal_limited_pods_take_turns() {
        let pods = [
            pod(0, Slots::Limited(2)),
            pod(0, Slots::Limited(2)),
            pod(0, Slots::Limited(2)),
        ];
        let picks: Vec<_> = (0..3).map(|r| choose_pod(&pods, r, |_| 0).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }

    #[test]
    fn unlimited_pods_pick_the_lesser_of_two() {
        let pods = [
            pod(5, Slots::Unlimited),
            pod(3, Slots::Unlimited),
            pod(9, Slots::Unlimited),
        ];
        // random picks index 0 then offset 0 -> candidates 0 and 1.
        assert_eq!(choose_pod(&pods, 0, |_| 0), Some(1));
        // candidates 2 and 0 (first = 2, second = (2 + 1 + 0) % 3).
        let mut draws = [2, 0].into_iter();
        assert_eq!(choose_pod(&pods, 0, |_| draws.next().unwrap()), Some(0));
    }

    #[test]
    fn the_two_choices_are_distinct() {
        let pods = [pod(1, Slots::Unlimited), pod(0, Slots::Unlimited)];
        for first in 0..2 {
            let mut draws = [first, 0].into_iter();
            assert_eq!(choose_pod(&pods, 0, |_| draws.next().unwrap()), Some(1));
        }
    }

    #[test]
    fn unroutable_pods_are_skipped() {
        let mut pods = [pod(0, Slots::Unlimited), pod(7, Slots::Unlimited)];
        pods[0].routable = false;
        assert_eq!(choose_pod(&pods, 0, |_| 0), Some(1));
    }
}
