//! The requests of one revision waiting for a slot, first in first out, bounded. Every change is counted in the
//! revision's load as it happens, so the queued count can never drift from the queue.

use std::collections::VecDeque;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::model::Origin;
use crate::revision::load::LoadTracker;

/// One waiting request.
pub struct Waiter<G> {
    pub id: u64,
    /// A peer activator's request must not be forwarded again while views may differ.
    pub origin: Origin,
    pub grant: oneshot::Sender<G>,
}

pub struct WaitQueue<G> {
    waiters: VecDeque<Waiter<G>>,
    limit: usize,
    next_id: u64,
}

/// The queue is at its bound.
#[derive(Debug)]
pub struct QueueFull;

impl<G> WaitQueue<G> {
    pub fn new(limit: usize) -> Self {
        WaitQueue {
            waiters: VecDeque::new(),
            limit,
            next_id: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Adds a request at the back; its id (to leave with `remove`) and where its grant will arrive.
    pub fn push(
        &mut self,
        origin: Origin,
        load: &mut LoadTracker,
        now: Instant,
    ) -> Result<(u64, oneshot::Receiver<G>), QueueFull> {
        if self.waiters.len() >= self.limit {
            return Err(QueueFull);
        }
        let (grant, receiver) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.waiters.push_back(Waiter { id, origin, grant });
        load.change_queued(now, 1);
        Ok((id, receiver))
    }

    /// The request at the head, taken out.
    pub fn pop(&mut self, load: &mut LoadTracker, now: Instant) -> Option<Waiter<G>> {
        let waiter = self.waiters.pop_front()?;
        load.change_queued(now, -1);
        Some(waiter)
    }

    /// Takes out the request `id` (it gave up); false when it had already left.
    pub fn remove(&mut self, id: u64, load: &mut LoadTracker, now: Instant) -> bool {
        let Some(position) = self.waiters.iter().position(|w| w.id == id) else {
            return false;
        };
        self.waiters.remove(position);
        load.change_queued(now, -1);
        true
    }

    /// Takes out every request `take` accepts, keeping the others in order.
    pub fn take_where(
        &mut self,
        take: impl Fn(&Waiter<G>) -> bool,
        load: &mut LoadTracker,
        now: Instant,
    ) -> Vec<Waiter<G>> {
        let (taken, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.waiters).into_iter().partition(take);
        self.waiters = kept;
        load.change_queued(now, -(taken.len() as i32));
        taken.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_every_change() {
        let now = Instant::now();
        let mut load = LoadTracker::new(now);
        let mut queue: WaitQueue<()> = WaitQueue::new(3);
        let (a, _ra) = queue.push(Origin::Client, &mut load, now).unwrap();
        let (_b, _rb) = queue.push(Origin::Peer, &mut load, now).unwrap();
        let (_c, _rc) = queue.push(Origin::Client, &mut load, now).unwrap();
        assert!(queue.push(Origin::Client, &mut load, now).is_err());
        assert_eq!(load.queued(), 3);
        assert!(queue.remove(a, &mut load, now));
        assert!(!queue.remove(a, &mut load, now));
        assert_eq!(load.queued(), 2);
        let from_peers = queue.take_where(|w| w.origin == Origin::Peer, &mut load, now);
        assert_eq!((from_peers.len(), load.queued()), (1, 1));
        assert!(queue.pop(&mut load, now).is_some());
        assert!(queue.pop(&mut load, now).is_none());
        assert_eq!(load.queued(), 0);
    }
}
