//! How the data path names a revision: by its key, with its Service for load reports and metrics.

use runway_api::RevisionKey;

/// A revision and the Service it belongs to: the data path keeps a handle per revision (by `key`), and names the
/// Service in load reports and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionId {
    pub key: RevisionKey,
    /// The Service's name (in the revision's namespace).
    pub service: String,
}

impl RevisionId {
    pub fn new(namespace: impl Into<String>, service: impl Into<String>, revision: impl Into<String>) -> Self {
        RevisionId {
            key: RevisionKey::new(namespace, revision),
            service: service.into(),
        }
    }
}
