//! The activator replicas that share the pods' containerConcurrency slots.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// The activators this one knows of, itself included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    me: IpAddr,
    /// This activator is draining: its slots go to the others (when there are others).
    leaving: bool,
    /// Every known activator (`me` included) and the address of its proxy port.
    proxies: BTreeMap<IpAddr, SocketAddr>,
}

impl Peers {
    /// Only this activator: every slot is its own.
    pub fn alone(me: IpAddr) -> Self {
        Peers {
            me,
            leaving: false,
            proxies: BTreeMap::new(),
        }
    }

    /// This activator and the others, each with the address of its proxy port.
    pub fn new(me: IpAddr, others: impl IntoIterator<Item = SocketAddr>) -> Self {
        let proxies = others.into_iter().map(|addr| (addr.ip(), addr)).collect();
        Peers {
            me,
            leaving: false,
            proxies,
        }
    }

    /// The activators Kubernetes lists as ready, each serving its proxy on `proxy_port`. One that is not listed
    /// itself (a failed readiness check, or not ready yet) counts as leaving: its peers do not count it, so it must
    /// not use the slots they believe it gave up.
    pub fn from_ready(me: IpAddr, ready: &[IpAddr], proxy_port: u16) -> Self {
        let peers = Peers::new(me, ready.iter().map(|ip| SocketAddr::new(*ip, proxy_port)));
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
        ip != self.me && self.proxies.contains_key(&ip)
    }

    /// The proxy address of another activator.
    pub fn proxy_addr(&self, ip: IpAddr) -> Option<SocketAddr> {
        self.proxies.get(&ip).copied().filter(|_| ip != self.me)
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
        let listed = Peers::from_ready(me, &[other, me], 8080);
        assert!(!listed.is_leaving());
        assert_eq!(listed.ips(), vec![other, me]);
        let unlisted = Peers::from_ready(me, &[other], 8080);
        assert!(unlisted.is_leaving());
        assert_eq!(unlisted.ips(), vec![other]);
        assert_eq!(unlisted.proxy_addr(other), Some(SocketAddr::new(other, 8080)));
        // Nobody else to give them to: it keeps serving with every slot.
        assert_eq!(Peers::from_ready(me, &[], 8080).ips(), vec![me]);
    }

    #[test]
    fn a_leaving_activator_drops_out_unless_it_is_alone() {
        let me: IpAddr = "10.0.0.2".parse().unwrap();
        let peers = Peers::new(me, ["10.0.0.1:8080".parse().unwrap()]).leaving();
        assert_eq!(peers.ips(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(Peers::alone(me).leaving().ips(), vec![me]);
    }
}
