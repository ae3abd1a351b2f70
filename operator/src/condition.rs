//! A condition's status and state, and the API's `Condition` made from them: shared by the status of Services, of
//! revisions and of DomainMappings, and read from the conditions of pods and Deployments.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition's status. The API spells it as a string: see `as_str`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// The status as the API writes it: "True", "False" or "Unknown".
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// A condition's state before timestamps: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) status: ConditionStatus,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl State {
    pub(crate) fn new(status: ConditionStatus, reason: &str, message: impl Into<String>) -> State {
        State {
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The condition `type_` in `state`, keeping its lastTransitionTime from `previous` while its status stays the same.
pub(crate) fn condition(
    previous: &[Condition],
    type_: &str,
    state: State,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == state.status.as_str())
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: state.status.as_str().to_owned(),
        reason: state.reason,
        message: state.message,
        observed_generation: generation,
        last_transition_time,
    }
}
