//! The Service reconciler's pure rules: decisions and objects computed from what a reconcile read, with the clock
//! passed in and no client, so that unit tests call them directly. Each is named after the step in `service/` that
//! acts on it; `desired` builds the objects those steps apply, with `network_policy` (a revision's NetworkPolicy) and
//! `pod_security` (the security defaults of its pods).

pub(super) mod desired;
pub(super) mod gc;
pub(super) mod network_policy;
pub(super) mod pod_security;
pub(super) mod revision_status;
pub(super) mod revisions;
pub(super) mod rollout;
pub(super) mod status;
pub(super) mod traffic;
pub(super) mod upgrade;
