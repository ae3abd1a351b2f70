//! How a pod's containerConcurrency slots are split among activator replicas, so that together they never send a
//! pod more than its limit.
//!
//! Every activator ranks all known activators by a rendezvous hash of (activator IP, pod IP); each gets
//! floor(cc / n) slots and the first cc % n in rank order one more. The ranking of a pod depends only on that pod and
//! the set of activators, so adding or removing pods never moves another pod's slots.

use std::net::IpAddr;

/// The slots `me` holds on `pod` for a limit of `cc` shared by `activators`; none when `me` is not among them (it is
/// leaving). `cc == 0` (unlimited) is not split: every activator may use the whole pod.
pub fn slots_for(me: IpAddr, pod: IpAddr, cc: u32, activators: &[IpAddr]) -> Slots {
    if cc == 0 {
        return Slots::Unlimited;
    }
    let mut ranked: Vec<IpAddr> = activators.to_vec();
    ranked.sort_unstable();
    ranked.dedup();
    ranked.sort_by_key(|activator| std::cmp::Reverse(rendezvous_weight(*activator, pod)));
    match ranked.iter().position(|a| *a == me) {
        Some(rank) => Slots::Limited(share(cc, ranked.len() as u32, rank as u32)),
        None => Slots::Limited(0),
    }
}

/// The activator that ranks first for `pod`: the one holding the most slots on it.
pub fn first_ranked(pod: IpAddr, activators: &[IpAddr]) -> Option<IpAddr> {
    activators
        .iter()
        .copied()
        .max_by_key(|activator| (rendezvous_weight(*activator, pod), std::cmp::Reverse(*activator)))
}

/// How many requests one activator may have in flight on one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    Unlimited,
    Limited(u32),
}

impl Slots {
    pub fn has_room(self, in_flight: u32) -> bool {
        match self {
            Slots::Unlimited => true,
            Slots::Limited(limit) => in_flight < limit,
        }
    }

    /// Whether `in_flight` requests fit.
    pub fn covers(self, in_flight: u32) -> bool {
        match self {
            Slots::Unlimited => true,
            Slots::Limited(limit) => in_flight <= limit,
        }
    }

    pub fn is_zero(self) -> bool {
        self == Slots::Limited(0)
    }

    /// The smaller of two allowances.
    pub fn fewest(self, other: Slots) -> Slots {
        match (self, other) {
            (Slots::Limited(a), Slots::Limited(b)) => Slots::Limited(a.min(b)),
            (Slots::Limited(n), Slots::Unlimited) | (Slots::Unlimited, Slots::Limited(n)) => Slots::Limited(n),
            (Slots::Unlimited, Slots::Unlimited) => Slots::Unlimited,
        }
    }
}

/// The share of `cc` slots for the activator at `rank` among `n`.
fn share(cc: u32, n: u32, rank: u32) -> u32 {
    cc / n + u32::from(rank < cc % n)
}

/// A stable 64-bit weight of the pair; the same in every activator process and release (unlike std's hashers,
/// whose algorithm is not guaranteed to stay the same).
fn rendezvous_weight(activator: IpAddr, pod: IpAddr) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a offset basis
    for byte in ip_bytes(activator)
        .iter()
        .chain([0xff].iter())
        .chain(ip_bytes(pod).iter())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finalizer: FNV alone leaves nearby addresses with correlated high bits.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn activators(n: u8) -> Vec<IpAddr> {
        (1..=n).map(|i| ip(&format!("10.0.0.{i}"))).collect()
    }

    fn pods(n: u16) -> Vec<IpAddr> {
        (1..=n).map(|i| ip(&format!("10.1.{}.{}", i / 256, i % 256))).collect()
    }

    fn total(pod: IpAddr, cc: u32, activators: &[IpAddr]) -> u32 {
        activators
            .iter()
            .map(|me| match slots_for(*me, pod, cc, activators) {
                Slots::Limited(n) => n,
                Slots::Unlimited => panic!("limited cc must be split"),
            })
            .sum()
    }

    #[test]
    fn the_shares_add_up_to_the_limit() {
        for n in 1..=5 {
            let acts = activators(n);
            for cc in 1..=12 {
                for pod in pods(20) {
                    assert_eq!(total(pod, cc, &acts), cc, "n={n} cc={cc} pod={pod}");
                }
            }
        }
    }

    #[test]
    fn shares_differ_by_at_most_one() {
        let acts = activators(3);
        for pod in pods(10) {
            let shares: Vec<u32> = acts
                .iter()
                .map(|me| match slots_for(*me, pod, 10, &acts) {
                    Slots::Limited(n) => n,
                    Slots::Unlimited => unreachable!(),
                })
                .collect();
            assert_eq!(shares.iter().max().unwrap() - shares.iter().min().unwrap(), 1);
        }
    }

    #[test]
    fn unlimited_is_not_split() {
        assert_eq!(
            slots_for(ip("10.0.0.1"), ip("10.1.0.1"), 0, &activators(3)),
            Slots::Unlimited
        );
    }

    #[test]
    fn adding_a_pod_moves_no_other_pods_slots() {
        let acts = activators(3);
        let before: Vec<Vec<Slots>> = pods(30)
            .iter()
            .map(|pod| acts.iter().map(|me| slots_for(*me, *pod, 1, &acts)).collect())
            .collect();
        // The split of a pod is a function of that pod and the activators only; recomputing with more pods around
        // gives the same answer for the old ones.
        let after: Vec<Vec<Slots>> = pods(31)[..30]
            .iter()
            .map(|pod| acts.iter().map(|me| slots_for(*me, *pod, 1, &acts)).collect())
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn single_slots_spread_over_activators() {
        let acts = activators(3);
        let owners: Vec<IpAddr> = pods(300).iter().map(|pod| first_ranked(*pod, &acts).unwrap()).collect();
        for act in &acts {
            let owned = owners.iter().filter(|o| *o == act).count();
            assert!((60..=140).contains(&owned), "{act} owns {owned} of 300 pods");
        }
    }

    #[test]
    fn the_first_ranked_activator_holds_the_single_slot() {
        let acts = activators(4);
        for pod in pods(50) {
            let owner = first_ranked(pod, &acts).unwrap();
            assert_eq!(slots_for(owner, pod, 1, &acts), Slots::Limited(1));
        }
    }

    #[test]
    fn an_activator_leaving_only_moves_its_own_slots() {
        let acts = activators(4);
        let remaining = &acts[..3];
        for pod in pods(100) {
            let owner = first_ranked(pod, &acts).unwrap();
            if owner != acts[3] {
                assert_eq!(first_ranked(pod, remaining), Some(owner));
            }
        }
    }

    #[test]
    fn an_activator_missing_from_the_list_holds_no_slots() {
        assert_eq!(
            slots_for(ip("10.0.0.9"), ip("10.1.0.1"), 2, &activators(1)),
            Slots::Limited(0)
        );
    }
}
