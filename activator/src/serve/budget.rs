//! What the activator may hold at once, derived from its memory limit and file-descriptor limit, so that no client
//! can make it run out of either: client connections, and the bytes of requests not yet answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Request;

/// Memory the process needs whatever the traffic: runtime, watch caches, metrics, allocator slack.
const BASELINE_BYTES: u64 = 32 << 20;
/// A connection's own cost beyond its request head buffer or HTTP/2 window: task, socket buffers in user space,
/// protocol state.
const CONNECTION_OVERHEAD_BYTES: u64 = 32 << 10;
/// A request's cost beyond its head: parsed parts, futures, queue entry.
pub const REQUEST_OVERHEAD_BYTES: usize = 2 << 10;
/// File descriptors kept free for the admin port, the Kubernetes watches and probes.
const FD_HEADROOM: u64 = 256;
/// Used when no memory limit is known.
const DEFAULT_REQUEST_BUDGET_BYTES: usize = 64 << 20;

/// The bounds in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Client connections open at once.
    pub max_connections: usize,
    /// Bytes of requests admitted and not yet answered (queued, or waiting for the pod's response head).
    pub request_bytes: usize,
}

/// Derives the bounds. Half of the memory above the baseline goes to connections, each counted at its worst (a
/// full request head buffer, or a full HTTP/2 connection window), a quarter to requests; the last quarter is slack
/// for bodies in transit. Each proxied connection may need a second descriptor for its pod, so the descriptor limit
/// allows half as many connections. `configured` caps the result.
pub fn derive(
    memory_limit: Option<u64>,
    open_files_limit: Option<u64>,
    max_header_bytes: usize,
    h2_connection_window: u32,
    configured: usize,
) -> Bounds {
    let per_connection = (max_header_bytes as u64).max(u64::from(h2_connection_window)) + CONNECTION_OVERHEAD_BYTES;
    let usable = memory_limit.map(|limit| limit.saturating_sub(BASELINE_BYTES));
    let by_memory = usable.map_or(u64::MAX, |usable| usable / 2 / per_connection);
    let by_files = open_files_limit.map_or(u64::MAX, |files| files.saturating_sub(FD_HEADROOM) / 2);
    let max_connections = by_memory.min(by_files).min(configured as u64).max(1);
    let request_bytes = usable.map_or(DEFAULT_REQUEST_BUDGET_BYTES, |usable| {
        usize::try_from(usable / 4).unwrap_or(usize::MAX)
    });
    Bounds {
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        request_bytes,
    }
}

/// The soft limit on open files of this process, from /proc (no libc call needed).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What a request holds while it waits: its head's bytes plus a fixed overhead.
pub fn request_cost<B>(request: &Request<B>) -> usize {
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    REQUEST_OVERHEAD_BYTES + headers + request.uri().path_and_query().map_or(0, |p| p.as_str().len())
}

/// The shared count of request bytes held, against its bound; clones share it.
#[derive(Clone, Debug)]
pub struct RequestBudget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

/// Bytes taken from the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    bytes: usize,
    used: Arc<AtomicUsize>,
}

impl RequestBudget {
    pub fn new(limit: usize) -> Self {
        RequestBudget {
            limit,
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes `bytes`, or `None` when that would pass the bound.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Reservation {
            bytes,
            used: self.used.clone(),
        })
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_256_mib_activator_bounds_connections_and_requests_within_its_limit() {
        let bounds = derive(Some(256 * MIB), Some(1_048_576), 64 << 10, 128 << 10, 100_000);
        // (256 - 32) MiB / 2 / (128 + 32) KiB
        assert_eq!(bounds.max_connections, 716);
        assert_eq!(bounds.request_bytes, 56 << 20);
        let worst = BASELINE_BYTES
            + bounds.max_connections as u64 * ((128 << 10) + CONNECTION_OVERHEAD_BYTES)
            + bounds.request_bytes as u64;
        assert!(worst < 256 * MIB, "{worst}");
    }

    #[test]
    fn file_descriptors_and_the_flag_cap_connections() {
        assert_eq!(
            derive(None, Some(1024), 64 << 10, 256 << 10, 100_000).max_connections,
            384
        );
        assert_eq!(derive(None, None, 64 << 10, 256 << 10, 5_000).max_connections, 5_000);
        assert_eq!(
            derive(Some(MIB), Some(10), 64 << 10, 256 << 10, 5_000).max_connections,
            1
        );
        assert_eq!(
            derive(None, None, 64 << 10, 256 << 10, 5_000).request_bytes,
            DEFAULT_REQUEST_BUDGET_BYTES
        );
    }

    #[test]
    fn reservations_stay_within_the_budget_and_return_when_dropped() {
        let budget = RequestBudget::new(100);
        let first = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_none());
        let second = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(first);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
