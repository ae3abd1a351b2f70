//! The activator replicas that share the pods' containerConcurrency slots, and the views of them still in force.
//!
//! When the set of activators changes, slots move between them. An activator that gains slots must not use them
//! before the ones that lost them have finished their requests there, or a pod gets more than its limit. So a new
//! view does not replace the old ones at once: until every other activator confirms that it works with the new
//! view and holds no more than its new share (the handoff, see `handoff.rs`), this activator uses on each pod the
//! smallest share any view in force gives it. Losing slots takes effect at once; gaining waits for the handoff.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use crate::revision::slots::{Slots, first_ranked, slots_for};

/// The activators this one knows of, itself included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    me: IpAddr,
    /// This activator is draining: its slots go to the others (when there are others).
    leaving: bool,
    /// Every known activator (`me` included) and the address of its internal entry point, where peers forward.
    proxies: BTreeMap<IpAddr, SocketAddr>,
    /// Admin ports, where the handoff is confirmed; also of activators that only earlier views still name.
    admins: BTreeMap<IpAddr, SocketAddr>,
    /// Every activator listed at all, also starting or draining ones: their forwarded requests are trusted.
    members: BTreeSet<IpAddr>,
    /// Earlier activator lists not yet settled by a handoff, oldest first.
    unsettled: Vec<Vec<IpAddr>>,
    /// Counts changes of the list, so that a handoff confirmed for an earlier epoch settles nothing.
    epoch: u64,
}

impl Peers {
    /// Only this activator: every slot is its own.
    pub fn alone(me: IpAddr) -> Self {
        Peers::new(me, [])
    }

    /// This activator and the others, each with the address of its internal entry point.
    pub fn new(me: IpAddr, others: impl IntoIterator<Item = SocketAddr>) -> Self {
        let proxies = others.into_iter().map(|addr| (addr.ip(), addr)).collect();
        Peers {
            me,
            leaving: false,
            proxies,
            admins: BTreeMap::new(),
            members: BTreeSet::new(),
            unsettled: Vec::new(),
            epoch: 0,
        }
    }

    /// The same activators with the addresses of their admin ports, where they confirm handoffs. Without them a
    /// change of view settles at once (a fixed list, as in standalone mode, never changes).
    pub fn with_admins(mut self, admins: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.admins = admins.into_iter().map(|addr| (addr.ip(), addr)).collect();
        self
    }

    /// The same activators, knowing `listed` as activators too (any condition): a request one of them forwards is
    /// trusted as a peer's even while it is starting or draining and shares no slot.
    pub fn with_members(mut self, listed: impl IntoIterator<Item = IpAddr>) -> Self {
        self.members = listed.into_iter().collect();
        self
    }

    /// The activators Kubernetes lists as ready, each serving its internal entry point and admin port on the same ports as this
    /// one. One that is not listed itself (a failed readiness check, or not ready yet) counts as leaving: its peers
    /// do not count it, so it must not use the slots they believe it gave up.
    pub fn from_ready(me: IpAddr, ready: &[IpAddr], internal_port: u16, admin_port: u16) -> Self {
        let peers = Peers::new(me, ready.iter().map(|ip| SocketAddr::new(*ip, internal_port)))
            .with_admins(ready.iter().map(|ip| SocketAddr::new(*ip, admin_port)));
        if ready.contains(&me) { peers } else { peers.leaving() }
    }

    /// The same activators, with this one leaving: it hands its slots to the others and forwards to them, so that
    /// the requests it still receives while draining do not overlap with the others' use of its former slots.
    pub fn leaving(self) -> Self {
        Peers { leaving: true, ..self }
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    pub fn me(&self) -> IpAddr {
        self.me
    }

    /// The IPs of the activators that share the slots, sorted: every known one including `me`, except `me` while
    /// leaving if any other remains.
    pub fn ips(&self) -> Vec<IpAddr> {
        let others: Vec<IpAddr> = self.proxies.keys().copied().filter(|ip| *ip != self.me).collect();
        if self.leaving && !others.is_empty() {
            return others;
        }
        let mut ips = others;
        ips.push(self.me);
        ips.sort_unstable();
        ips
    }

    /// Whether a connection from `ip` comes from another activator.
    pub fn is_peer(&self, ip: IpAddr) -> bool {
        ip != self.me && (self.proxies.contains_key(&ip) || self.members.contains(&ip))
    }

    /// Where to forward to another activator: its internal entry point.
    pub fn proxy_addr(&self, ip: IpAddr) -> Option<SocketAddr> {
        self.proxies.get(&ip).copied().filter(|_| ip != self.me)
    }

    /// This view replacing `previous`: a different list keeps the earlier ones in force until they are settled.
    pub fn succeeding(mut self, previous: &Peers) -> Self {
        let current = self.ips();
        self.epoch = previous.epoch + u64::from(current != previous.ips());
        let mut unsettled = previous.unsettled.clone();
        unsettled.push(previous.ips());
        unsettled.retain(|list| *list != current);
        unsettled.dedup();
        let mut admins = previous.admins.clone();
        admins.append(&mut self.admins);
        admins.retain(|ip, _| *ip != self.me && (current.contains(ip) || unsettled.iter().any(|l| l.contains(ip))));
        self.admins = admins;
        self.unsettled = unsettled;
        self
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether every other activator has confirmed this view.
    pub fn is_settled(&self) -> bool {
        self.unsettled.is_empty()
    }

    /// This view with its handoff done: only the current list counts.
    pub fn settled(self) -> Self {
        let current = self.ips();
        let mut admins = self.admins;
        admins.retain(|ip, _| current.contains(ip));
        Peers {
            unsettled: Vec::new(),
            admins,
            ..self
        }
    }

    /// The admin addresses of the other activators any view in force names: the ones that must confirm the handoff.
    pub fn handoff_parties(&self) -> Vec<SocketAddr> {
        self.admins
            .iter()
            .filter(|(ip, _)| **ip != self.me)
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// All of `pod`'s slots when this activator ranks first for it in every view in force, else none: for pods that
    /// one activator alone must know the in-flight count of.
    pub fn whole_slots_on(&self, pod: IpAddr, cc: u32) -> Slots {
        let all = if cc == 0 { Slots::Unlimited } else { Slots::Limited(cc) };
        let first_everywhere = std::iter::once(self.ips())
            .chain(self.unsettled.iter().cloned())
            .all(|list| first_ranked(pod, &list) == Some(self.me));
        if first_everywhere { all } else { Slots::Limited(0) }
    }

    /// The slots this activator may use on `pod`: the smallest share any view in force gives it.
    pub fn slots_on(&self, pod: IpAddr, cc: u32) -> Slots {
        let current = slots_for(self.me, pod, cc, &self.ips());
        self.unsettled
            .iter()
            .map(|list| slots_for(self.me, pod, cc, list))
            .fold(current, Slots::fewest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_is_always_known_but_never_a_peer() {
        let me: IpAddr = "10.0.0.2".parse().unwrap();
        let peers = Peers::new(me, ["10.0.0.1:8080".parse().unwrap()]);
        assert_eq!(peers.ips(), vec!["10.0.0.1".parse::<IpAddr>().unwrap(), me]);
        assert!(peers.is_peer("10.0.0.1".parse().unwrap()));
        assert!(!peers.is_peer(me));
        assert_eq!(peers.proxy_addr(me), None);
        assert_eq!(Peers::alone(me).ips(), vec![me]);
    }

    #[test]
    fn an_activator_not_listed_as_ready_gives_its_slots_away() {
        let (me, other): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let listed = Peers::from_ready(me, &[other, me], 8080, 9090);
        assert!(!listed.is_leaving());
        assert_eq!(listed.ips(), vec![other, me]);
        let unlisted = Peers::from_ready(me, &[other], 8080, 9090);
        assert!(unlisted.is_leaving());
        assert_eq!(unlisted.ips(), vec![other]);
        assert_eq!(unlisted.proxy_addr(other), Some(SocketAddr::new(other, 8080)));
        // A draining activator no longer shares the slots, but its forwarded requests are still a peer's.
        let draining: IpAddr = "10.0.0.3".parse().unwrap();
        let listed = Peers::from_ready(me, &[other, me], 8080, 9090).with_members([other, me, draining]);
        assert!(listed.is_peer(draining) && !listed.ips().contains(&draining));
        // Nobody else to give them to: it keeps serving with every slot.
        assert_eq!(Peers::from_ready(me, &[], 8080, 9090).ips(), vec![me]);
    }

    #[test]
    fn a_leaving_activator_drops_out_unless_it_is_alone() {
        let me: IpAddr = "10.0.0.2".parse().unwrap();
        let peers = Peers::new(me, ["10.0.0.1:8080".parse().unwrap()]).leaving();
        assert_eq!(peers.ips(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(Peers::alone(me).leaving().ips(), vec![me]);
    }

    #[test]
    fn a_new_view_keeps_the_earlier_shares_in_force_until_settled() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (me, other) = (ip("10.0.0.2"), ip("10.0.0.1"));
        let with = |members: &[IpAddr]| {
            Peers::new(me, members.iter().map(|ip| SocketAddr::new(*ip, 8080)))
                .with_admins(members.iter().map(|ip| SocketAddr::new(*ip, 9090)))
        };
        // A pod whose single slot is the other's while both count, and mine when I am alone.
        let pod = (1..=255u8)
            .map(|i| IpAddr::from([10, 1, 0, i]))
            .find(|pod| crate::revision::slots::first_ranked(*pod, &[me, other]) == Some(other))
            .unwrap();
        let both = with(&[me, other]).settled();
        assert_eq!(both.slots_on(pod, 1), Slots::Limited(0));

        let alone = with(&[me]).succeeding(&both);
        assert!(!alone.is_settled());
        assert_eq!(alone.epoch(), 1);
        // The other held the slot: it must confirm before I use it.
        assert_eq!(alone.slots_on(pod, 1), Slots::Limited(0));
        assert_eq!(alone.handoff_parties(), vec![SocketAddr::new(other, 9090)]);
        let settled = alone.settled();
        assert_eq!(settled.slots_on(pod, 1), Slots::Limited(1));
        assert!(settled.handoff_parties().is_empty());

        // Losing takes effect at once.
        let back = with(&[me, other]).succeeding(&settled);
        assert_eq!(back.slots_on(pod, 1), Slots::Limited(0));
        // The same list again changes nothing.
        let again = with(&[me, other]).succeeding(&back);
        assert_eq!(again, back);
        assert_eq!(Peers::alone(me).slots_on(pod, 0), Slots::Unlimited);
    }
}
