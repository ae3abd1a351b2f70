//! The pod counts that a Service's status and each Revision's status report, in one shape, with the summary that
//! `kubectl get rsvc` and `kubectl get rrev` print made by one rule.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pods that exist, are ready and are asked for; flattened into the status, so its fields sit beside the others.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pods the autoscaler currently asks for.
    #[serde(default)]
    pub desired_replicas: i32,

    /// Ready pods that are frozen while idle (spec.scaling.idle Freeze); a request thaws one in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frozen_replicas: i32,

    /// readyReplicas/desiredReplicas, and how many of them are frozen, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_summary: Option<String>,
}

impl ReplicaStatus {
    /// The counts with their summary.
    pub fn counted(replicas: i32, ready_replicas: i32, desired_replicas: i32) -> Self {
        ReplicaStatus {
            replicas,
            ready_replicas,
            desired_replicas,
            frozen_replicas: 0,
            replica_summary: Some(format!("{ready_replicas}/{desired_replicas}")),
        }
    }

    /// The counts, with `frozen` of the ready pods frozen: the summary says so, e.g. `2/2 (1 frozen)`.
    pub fn with_frozen(self, frozen: i32) -> Self {
        let summary = match frozen {
            0 => self.replica_summary,
            n => Some(format!(
                "{}/{} ({n} frozen)",
                self.ready_replicas, self.desired_replicas
            )),
        };
        ReplicaStatus {
            frozen_replicas: frozen,
            replica_summary: summary,
            ..self
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_ready_over_desired_and_the_fields_keep_their_api_names() {
        let counts = ReplicaStatus::counted(3, 2, 4);
        assert_eq!(counts.replica_summary.as_deref(), Some("2/4"));
        assert_eq!(
            serde_json::to_value(&counts).unwrap(),
            serde_json::json!({"replicas": 3, "readyReplicas": 2, "desiredReplicas": 4, "replicaSummary": "2/4"})
        );
        let frozen = ReplicaStatus::counted(2, 2, 2).with_frozen(1);
        assert_eq!(
            (frozen.frozen_replicas, frozen.replica_summary.as_deref()),
            (1, Some("2/2 (1 frozen)"))
        );
    }
}
