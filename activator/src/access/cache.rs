//! A bounded cache of review answers, each fresh for its own time, with concurrent lookups of one key coalesced:
//! while one request reviews a token, the others with the same token wait for its answer instead of asking too.
//!
//! quick_cache holds at most its capacity of entries and evicts by S3-FIFO: a new entry stays in a small queue
//! until it is read again, so a flood of one-off tokens churns that queue and leaves the tokens in use in place.
//! Expired entries are not swept; they are replaced when read, or evicted like the others.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use quick_cache::sync::{Cache as Entries, DefaultLifecycle, EntryAction, EntryResult, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, UnitWeighter};
use tokio::time::Instant;

use crate::access::keys::Key;

/// An answer and when it was made; it is reused until `fresh_until`.
#[derive(Clone, Debug)]
struct Stored<V> {
    value: V,
    made: Instant,
    fresh_until: Instant,
}

impl<V> Stored<V> {
    /// Whether a lookup that started at `since` may take this answer at `now`: while it is fresh, or when it was
    /// made after the lookup started, that is by the review the lookup waited for. So an answer reused by nobody
    /// (an API error, cached for zero seconds) still reaches every request that waited for it, and only those.
    fn serves(&self, since: Instant, now: Instant) -> bool {
        now < self.fresh_until || self.made >= since
    }
}

type Guard<'a, V> =
    PlaceholderGuard<'a, Key, Stored<V>, UnitWeighter, DefaultHashBuilder, DefaultLifecycle<Key, Stored<V>>>;

/// What a lookup found.
pub enum Lookup<'a, V: Clone> {
    Hit(V),
    /// No answer to reuse: the caller reviews and fills it in. Other lookups of the key wait meanwhile; dropping the
    /// `Fill` unfilled lets the next of them try.
    Miss(Fill<'a, V>),
}

/// The right, and the duty, to put a fresh answer in.
pub struct Fill<'a, V: Clone> {
    guard: Guard<'a, V>,
    cache: &'a Cache<V>,
}

impl<V: Clone> Fill<'_, V> {
    /// Stores `value`, made at `made`, for `ttl` (zero: only for the lookups waiting now).
    pub fn fill(self, value: V, made: Instant, ttl: Duration) {
        let stored = Stored {
            value,
            made,
            fresh_until: made + ttl,
        };
        let _ = self.guard.insert(stored);
        self.cache.size.set(self.cache.entries.len() as i64);
    }
}

pub struct Cache<V: Clone> {
    entries: Entries<Key, Stored<V>>,
    /// Entries held, for /metrics.
    size: Gauge,
}

impl<V: Clone> Cache<V> {
    pub fn new(capacity: usize, size: Gauge) -> Self {
        Cache {
            entries: Entries::new(capacity.max(1)),
            size,
        }
    }

    /// The answer for `key` that a lookup started at `since` may use, or the right to fill it in.
    pub async fn lookup(&self, key: &Key, since: Instant) -> Lookup<'_, V> {
        // The common case, a fresh answer, under the shard's read lock.
        if let Some(stored) = self.entries.get(key)
            && stored.serves(since, Instant::now())
        {
            return Lookup::Hit(stored.value);
        }
        let found = self
            .entries
            .entry_async(key, |_, stored| {
                if stored.serves(since, Instant::now()) {
                    EntryAction::Retain(stored.value.clone())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await;
        match found {
            EntryResult::Retained(value) => Lookup::Hit(value),
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => Lookup::Miss(Fill { guard, cache: self }),
            // Neither is returned: the callback never removes, and only the blocking `entry` times out.
            EntryResult::Removed(..) | EntryResult::Timeout => {
                unreachable!("entry_async neither removes nor times out")
            }
        }
    }

    /// Entries held, expired ones included until they are replaced or evicted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The most entries it holds.
    #[cfg(test)]
    pub fn capacity(&self) -> u64 {
        self.entries.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn key(n: u32) -> Key {
        let mut key = [0; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        key
    }

    fn cache(capacity: usize) -> Cache<u32> {
        Cache::new(capacity, Gauge::default())
    }

    /// The value for `n`, filled in with `ttl` on a miss; whether it was a hit.
    async fn get(cache: &Cache<u32>, n: u32, value: u32, ttl: Duration) -> (u32, bool) {
        match cache.lookup(&key(n), Instant::now()).await {
            Lookup::Hit(value) => (value, true),
            Lookup::Miss(fill) => {
                fill.fill(value, Instant::now(), ttl);
                (value, false)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_reused_until_its_time_is_up() {
        let cache = cache(100);
        let minute = Duration::from_secs(60);
        assert_eq!(get(&cache, 1, 10, minute).await, (10, false));
        assert_eq!(get(&cache, 1, 11, minute).await, (10, true));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(get(&cache, 1, 12, minute).await, (10, true));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(get(&cache, 1, 13, minute).await, (13, false), "expired: reviewed again");
        assert_eq!(cache.len(), 1, "the stale entry was replaced, not added to");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_for_zero_seconds_is_not_reused() {
        let cache = cache(100);
        assert_eq!(get(&cache, 1, 10, Duration::ZERO).await, (10, false));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(get(&cache, 1, 11, Duration::ZERO).await, (11, false));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_holds_at_most_its_capacity() {
        let cache = cache(100);
        for n in 0..10_000 {
            get(&cache, n, n, Duration::from_secs(60)).await;
            assert!(cache.len() as u64 <= cache.capacity(), "{} entries", cache.len());
        }
        assert!(cache.capacity() <= 110, "capacity {}", cache.capacity());
        assert!(cache.len() >= 50, "it still caches: {}", cache.len());
    }

    #[tokio::test(start_paused = true)]
    async fn entries_in_use_survive_a_flood_of_one_off_keys() {
        let cache = cache(1_000);
        let minute = Duration::from_secs(60);
        get(&cache, 0, 7, minute).await;
        for n in 1..100_000 {
            get(&cache, n, n, minute).await;
            if n % 10 == 0 {
                assert_eq!(get(&cache, 0, 8, minute).await, (7, true), "after {n} one-off keys");
            }
        }
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_key_wait_for_one_review() {
        let cache = Arc::new(cache(100));
        let reviews = Arc::new(AtomicU32::new(0));
        let lookups = (0..50).map(|_| {
            let (cache, reviews) = (cache.clone(), reviews.clone());
            tokio::spawn(async move {
                match cache.lookup(&key(1), Instant::now()).await {
                    Lookup::Hit(value) => value,
                    Lookup::Miss(fill) => {
                        reviews.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        // Zero seconds: still given to every lookup that waited for it.
                        fill.fill(42, Instant::now(), Duration::ZERO);
                        42
                    }
                }
            })
        });
        for lookup in futures::future::join_all(lookups.collect::<Vec<_>>()).await {
            assert_eq!(lookup.unwrap(), 42);
        }
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_dropped_fill_lets_a_waiting_lookup_review() {
        let cache = cache(100);
        let Lookup::Miss(fill) = cache.lookup(&key(1), Instant::now()).await else {
            panic!("empty cache")
        };
        let waiting = async {
            match cache.lookup(&key(1), Instant::now()).await {
                Lookup::Hit(_) => panic!("nothing was filled in"),
                Lookup::Miss(fill) => fill.fill(5, Instant::now(), Duration::from_secs(1)),
            }
        };
        let give_up = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(fill);
        };
        tokio::join!(waiting, give_up);
        assert_eq!(get(&cache, 1, 6, Duration::from_secs(1)).await, (5, true));
    }
}
