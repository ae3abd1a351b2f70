//! Whether a pod of a revision whose idle pods freeze is running, and the moves between its states. Pure: the
//! revision applies these moves under its lock, and the freezer (control layer) carries out the calls to the node
//! agent they ask for.
//!
//! ```text
//!   Thawed --idle long enough--> Freezing --agent froze it--> Frozen --a request needs it--> Thawing --thawed--> Thawed
//!                                   |  a request arrived: thaw as soon as the freeze is done          |
//!                                   +-- the freeze failed: Thawed (tried again later)                  +-- failed: Unusable
//! ```
//!
//! The node agent marks a pod it froze in the API; the mark tells this activator of freezes and thaws it did not ask
//! for itself: a frozen pod an activator that left handed over, and pods an agent thawed when it restarted.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// After a failed freeze, the next attempt waits this long (besides the idle delay): the agent may be restarting.
pub const FREEZE_RETRY: Duration = Duration::from_secs(10);

/// A pod's state as this activator knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeState {
    /// Running. `idle_since`: since when it had no request in flight (`None` while it has some); `cleared`: the mark
    /// of the last freeze this activator undid, which a late pod update may still show.
    Thawed {
        idle_since: Option<Instant>,
        cleared: Option<Arc<str>>,
    },
    /// The agent is freezing it.
    Freezing(AfterFreeze),
    /// Frozen; `mark` the agent's mark, `seen` once a pod update showed it (so that its absence later means the agent
    /// thawed the pod by itself).
    Frozen { mark: Option<Arc<str>>, seen: bool },
    /// The agent is thawing it for a request.
    Thawing,
    /// A thaw failed: no request goes to it. The agent thaws it when it is back, and its mark then goes.
    Unusable { mark: Option<Arc<str>> },
}

/// What happens once a freeze under way is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFreeze {
    Stay,
    /// A request arrived meanwhile.
    Thaw,
}

/// What to do next about freezing a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezePlan {
    /// Not idle long enough yet: ask again then.
    WaitUntil(Instant),
    /// Freeze it now (the state is Freezing).
    Freeze,
    /// Nothing to freeze: it is busy, already frozen or gone.
    Cancel,
}

/// What the revision must do after a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    Nothing,
    /// Ask the agent to thaw it.
    Thaw,
}

impl FreezeState {
    /// A pod that starts running, idle from `now`.
    pub fn running(now: Instant) -> Self {
        FreezeState::Thawed {
            idle_since: Some(now),
            cleared: None,
        }
    }

    /// Requests may go to it.
    pub fn serves(&self) -> bool {
        matches!(self, FreezeState::Thawed { .. })
    }

    /// It will serve once thawed, without a pod start.
    pub fn resumable(&self) -> bool {
        matches!(
            self,
            FreezeState::Freezing(_) | FreezeState::Frozen { .. } | FreezeState::Thawing
        )
    }

    /// It will serve soon without being asked again: a thaw is under way or follows the freeze under way.
    pub fn coming_back(&self) -> bool {
        matches!(self, FreezeState::Thawing | FreezeState::Freezing(AfterFreeze::Thaw))
    }

    pub fn is_unusable(&self) -> bool {
        matches!(self, FreezeState::Unusable { .. })
    }

    pub fn is_frozen(&self) -> bool {
        matches!(self, FreezeState::Frozen { .. })
    }

    /// Its in-flight count went from 0 to 1 (`busy`) or back to 0.
    pub fn in_flight_changed(&mut self, busy: bool, now: Instant) {
        if let FreezeState::Thawed { idle_since, .. } = self {
            *idle_since = (!busy).then_some(now);
        }
    }

    /// Whether to freeze it now, given how long it must be idle first; moves it to Freezing when so.
    pub fn plan(&mut self, after: Duration, in_flight: u32, now: Instant) -> FreezePlan {
        let FreezeState::Thawed {
            idle_since: Some(since),
            ..
        } = *self
        else {
            return FreezePlan::Cancel;
        };
        if in_flight > 0 {
            return FreezePlan::Cancel;
        }
        let due = since + after;
        if now < due {
            return FreezePlan::WaitUntil(due);
        }
        *self = FreezeState::Freezing(AfterFreeze::Stay);
        FreezePlan::Freeze
    }

    /// A request needs it: thaw it if it is frozen, or right after the freeze under way.
    pub fn wanted(&mut self) -> Follow {
        match self {
            FreezeState::Frozen { .. } => {
                *self = FreezeState::Thawing;
                Follow::Thaw
            }
            FreezeState::Freezing(then) => {
                *then = AfterFreeze::Thaw;
                Follow::Nothing
            }
            _ => Follow::Nothing,
        }
    }

    /// The agent answered the freeze: frozen with `mark`, or failed (the pod still runs).
    pub fn freeze_done(&mut self, outcome: Result<Arc<str>, ()>, now: Instant) -> Follow {
        let FreezeState::Freezing(then) = *self else {
            return Follow::Nothing;
        };
        match (outcome, then) {
            (Ok(_), AfterFreeze::Thaw) => {
                *self = FreezeState::Thawing;
                Follow::Thaw
            }
            (Ok(mark), AfterFreeze::Stay) => {
                *self = FreezeState::Frozen {
                    mark: Some(mark),
                    seen: false,
                };
                Follow::Nothing
            }
            (Err(()), then) => {
                let idle_since = match then {
                    AfterFreeze::Stay => Some(now + FREEZE_RETRY),
                    AfterFreeze::Thaw => None,
                };
                *self = FreezeState::Thawed {
                    idle_since,
                    cleared: None,
                };
                Follow::Nothing
            }
        }
    }

    /// The agent answered the thaw. `mark`: the mark the pod carried (so that a late update still showing it is not
    /// taken for a new freeze).
    pub fn thaw_done(&mut self, outcome: Result<(), ()>, mark: Option<Arc<str>>, now: Instant) {
        if *self != FreezeState::Thawing {
            return;
        }
        *self = match outcome {
            Ok(()) => FreezeState::Thawed {
                idle_since: Some(now),
                cleared: mark,
            },
            Err(()) => FreezeState::Unusable { mark },
        };
    }

    /// A pod update showed the agent's mark (or none): learn of the freezes and thaws this activator did not ask for.
    pub fn sync_mark(&mut self, shown: Option<&Arc<str>>, now: Instant) {
        match (&mut *self, shown) {
            // Frozen by someone else: an activator that held the pod before this one.
            (FreezeState::Thawed { cleared, .. }, Some(mark)) if cleared.as_ref() != Some(mark) => {
                *self = FreezeState::Frozen {
                    mark: Some(mark.clone()),
                    seen: true,
                };
            }
            (FreezeState::Frozen { mark, seen }, shown) => {
                if mark.as_ref() == shown {
                    *seen = true;
                } else if let Some(other) = shown {
                    *mark = Some(other.clone());
                    *seen = true;
                } else if *seen {
                    // The mark went: the agent thawed the pod (it does so for every pod when it starts).
                    *self = FreezeState::running(now);
                }
            }
            (FreezeState::Unusable { mark: Some(_) }, None) => *self = FreezeState::running(now),
            _ => {}
        }
    }

    /// The mark it carries while frozen, for the thaw to clear.
    pub fn mark(&self) -> Option<Arc<str>> {
        match self {
            FreezeState::Frozen { mark, .. } | FreezeState::Unusable { mark } => mark.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_millis(1000);

    fn mark(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn an_idle_pod_is_frozen_after_the_delay_and_a_busy_one_never() {
        let start = Instant::now();
        let mut state = FreezeState::running(start);
        assert_eq!(state.plan(AFTER, 0, start), FreezePlan::WaitUntil(start + AFTER));
        state.in_flight_changed(true, start + AFTER / 2);
        assert_eq!(state.plan(AFTER, 1, start + AFTER), FreezePlan::Cancel);
        let idle = start + AFTER;
        state.in_flight_changed(false, idle);
        assert_eq!(
            state.plan(AFTER, 0, idle + AFTER / 2),
            FreezePlan::WaitUntil(idle + AFTER)
        );
        assert_eq!(state.plan(AFTER, 0, idle + AFTER), FreezePlan::Freeze);
        assert_eq!(state, FreezeState::Freezing(AfterFreeze::Stay));
        assert!(!state.serves() && state.resumable());
        assert_eq!(state.freeze_done(Ok(mark("a/1")), idle + AFTER), Follow::Nothing);
        assert!(state.is_frozen());
    }

    #[test]
    fn a_request_arriving_while_the_pod_freezes_thaws_it_right_after() {
        let now = Instant::now();
        let mut state = FreezeState::Freezing(AfterFreeze::Stay);
        assert_eq!(state.wanted(), Follow::Nothing);
        assert!(state.coming_back());
        assert_eq!(state.freeze_done(Ok(mark("a/1")), now), Follow::Thaw);
        assert_eq!(state, FreezeState::Thawing);
        state.thaw_done(Ok(()), Some(mark("a/1")), now);
        assert!(state.serves());
    }

    #[test]
    fn a_failed_freeze_leaves_the_pod_serving_and_tries_again_later() {
        let now = Instant::now();
        let mut state = FreezeState::Freezing(AfterFreeze::Stay);
        state.freeze_done(Err(()), now);
        assert!(state.serves());
        assert_eq!(
            state.plan(AFTER, 0, now + AFTER),
            FreezePlan::WaitUntil(now + FREEZE_RETRY + AFTER)
        );
        // A request waited for it: it serves at once.
        let mut state = FreezeState::Freezing(AfterFreeze::Thaw);
        assert_eq!(state.freeze_done(Err(()), now), Follow::Nothing);
        assert!(state.serves());
    }

    #[test]
    fn a_failed_thaw_makes_the_pod_unusable_until_the_agent_thaws_it() {
        let now = Instant::now();
        let mut state = FreezeState::Frozen {
            mark: Some(mark("a/1")),
            seen: true,
        };
        assert_eq!(state.wanted(), Follow::Thaw);
        let carried = state.mark();
        state.thaw_done(Err(()), Some(mark("a/1")), now);
        assert_eq!(
            carried, None,
            "Thawing carries no mark: the revision keeps it for the thaw"
        );
        assert!(!state.serves() && !state.resumable());
        // The agent restarted and thawed every pod: the mark went.
        state.sync_mark(None, now);
        assert!(state.serves());
    }

    #[test]
    fn a_late_update_of_a_thawed_pod_still_showing_its_old_mark_is_not_a_freeze() {
        let now = Instant::now();
        let mut state = FreezeState::Thawing;
        state.thaw_done(Ok(()), Some(mark("a/1")), now);
        state.sync_mark(Some(&mark("a/1")), now);
        assert!(state.serves());
        // A mark it did not clear: another activator froze it.
        state.sync_mark(Some(&mark("b/7")), now);
        assert_eq!(
            state,
            FreezeState::Frozen {
                mark: Some(mark("b/7")),
                seen: true
            }
        );
    }

    #[test]
    fn a_frozen_pod_whose_mark_goes_was_thawed_by_its_agent() {
        let now = Instant::now();
        let mut state = FreezeState::Freezing(AfterFreeze::Stay);
        state.freeze_done(Ok(mark("a/2")), now);
        // An update from before the mark was written: not yet a sign of anything.
        state.sync_mark(None, now);
        assert!(state.is_frozen());
        state.sync_mark(Some(&mark("a/2")), now);
        state.sync_mark(None, now);
        assert!(state.serves());
    }
}
