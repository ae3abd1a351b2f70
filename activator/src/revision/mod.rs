//! The per-revision core of the data path: one `RevisionHandle` per revision, holding its pods, their slots and
//! in-flight counts, the requests waiting for a slot and the revision's load, all behind one lock. Admission hands a
//! request a lease on a pod's slot (or a place in the queue, or the peer activator to forward to); a lease or a
//! queue place is given back in `Drop`, so the counters stay exact. Which pods need probing is decided here and sent
//! on the revision's probe channel. Pure state and rules: no sockets, no tasks. Imports `model` only.

mod balance;
mod cold_start;
mod freeze;
mod handle;
mod load;
mod metrics;
mod peers;
mod pod;
mod queue;
mod releases;
mod slots;

pub use cold_start::{ColdStart, ColdStartPhase};
pub use freeze::FreezePlan;
pub use handle::{Admission, FreezeAction, Grant, WaitReason};
pub(crate) use handle::{FreezeOrder, Lease, ProbeRequest, RevisionHandle};
pub use metrics::Metrics;
pub use peers::Peers;
pub(crate) use pod::{ProbeKind, Target};
pub(crate) use releases::Releases;
pub use slots::first_ranked;
