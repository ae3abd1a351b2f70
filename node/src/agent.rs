//! The freezer: freezes and thaws pods' cgroups in the order the contract with the activator needs (the mark before
//! a freeze, the answer before the mark's removal after a thaw), one operation at a time per pod, and remembers
//! which pods this instance froze: for the gauge, for a pod that starts terminating, and for the thaw at SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use runway_api::names::FROZEN_ANNOTATION;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cgroup::{self, ApplyError, FreezerState, Layout, PodUid, Target};
use crate::mark::{self, Mark, Marks};
use crate::metrics::{Metrics, Operation};
use crate::pods::{self, Lifecycle};

/// How long the kernel gets to report a cgroup frozen or thawed.
const SETTLE_BOUND: Duration = Duration::from_secs(2);
/// Pauses between the attempts at removing a mark.
const MARK_RETRIES: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(800),
    Duration::from_secs(3),
    Duration::from_secs(10),
];

/// Why an operation failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// 404: not a Runway pod of this node, or no cgroup for it.
    #[error("{0}")]
    NotFound(String),
    /// 500: the cgroup could not be written or read, or did not get there in time.
    #[error("{0}")]
    Cgroup(String),
    /// 500: the mark could not be written.
    #[error("{0}")]
    Mark(String),
}

/// A pod this instance froze.
#[derive(Clone, Debug)]
struct Frozen {
    namespace: String,
    name: String,
    mark: Mark,
}

/// A mark to take off a thawed pod.
#[derive(Debug)]
pub struct MarkRemoval {
    namespace: String,
    name: String,
    value: String,
}

#[derive(Default)]
struct State {
    /// Where each pod's cgroup was found; dropped when it is gone, or when the pod terminates.
    paths: HashMap<PodUid, PathBuf>,
    frozen: HashMap<PodUid, Frozen>,
    /// One operation at a time per pod; an entry lives while someone holds or waits for it.
    locks: HashMap<PodUid, Arc<tokio::sync::Mutex<()>>>,
}

pub struct Agent {
    layout: Layout,
    client: Client,
    pods: Store<Pod>,
    marks: Marks,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

impl Agent {
    pub fn new(layout: Layout, client: Client, pods: Store<Pod>, marks: Marks, metrics: Arc<Metrics>) -> Agent {
        Agent {
            layout,
            client,
            pods,
            marks,
            metrics,
            state: Mutex::default(),
        }
    }

    /// Freezes the pod: marks it, then freezes its cgroup and waits for the kernel. A pod this instance froze
    /// already keeps its mark. A freeze that does not finish in time is thawed back.
    pub async fn freeze(&self, uid: &PodUid) -> Result<Mark, OpError> {
        let _turn = self.turn(uid).await;
        let start = Instant::now();
        let pod = pods::find(&self.pods, uid).ok_or_else(|| not_runways(uid))?;
        if pods::lifecycle(&pod) == Lifecycle::Deleting {
            return Err(OpError::NotFound(format!("pod {uid} is terminating")));
        }
        let known = self.state.lock().frozen.get(uid).map(|frozen| frozen.mark);
        let mark = match known {
            Some(mark) => mark,
            None => {
                // Found before the mark is written: a pod without a cgroup here gets no mark.
                self.dir(uid)?;
                let mark = self.marks.next();
                let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
                pods::set_mark(&self.client, &namespace, &name, mark)
                    .await
                    .map_err(|e| {
                        self.metrics.error(Operation::Mark);
                        OpError::Mark(format!("marking pod {namespace}/{name}: {e}"))
                    })?;
                mark
            }
        };
        if let Err(error) = self.apply(uid, Target::Frozen).await {
            self.metrics.error(Operation::Freeze);
            if known.is_none() {
                // Back to where it was: thawed, unmarked.
                if let Err(e) = self.apply(uid, Target::Thawed).await {
                    warn!(%uid, error = %e, "thawing a pod whose freeze failed");
                }
                let removal = MarkRemoval {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    value: mark.to_string(),
                };
                self.spawn_removal(removal);
            }
            return Err(error);
        }
        let mut state = self.state.lock();
        state.frozen.insert(
            uid.clone(),
            Frozen {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
                mark,
            },
        );
        self.metrics.frozen_pods.set(state.frozen.len() as i64);
        self.metrics.freeze_duration.observe(start.elapsed().as_secs_f64());
        Ok(mark)
    }

    /// Thaws the pod and waits for the kernel; its mark is removed in the background afterwards. No API server
    /// call comes before the answer.
    pub async fn thaw(self: &Arc<Self>, uid: &PodUid) -> Result<(), OpError> {
        let removal = self.thaw_cgroup(uid).await?;
        if let Some(removal) = removal {
            self.spawn_removal(removal);
        }
        Ok(())
    }

    /// Thaws the cgroup; gives back the mark to remove, if the pod has one.
    async fn thaw_cgroup(&self, uid: &PodUid) -> Result<Option<MarkRemoval>, OpError> {
        let _turn = self.turn(uid).await;
        let start = Instant::now();
        let frozen = self.state.lock().frozen.get(uid).cloned();
        let pod = pods::find(&self.pods, uid);
        if pod.is_none() && frozen.is_none() {
            return Err(not_runways(uid));
        }
        let result = self.apply(uid, Target::Thawed).await;
        if let Err(OpError::Cgroup(_)) = &result {
            self.metrics.error(Operation::Thaw);
            return Err(result.unwrap_err());
        }
        // Thawed, or its cgroup is gone with the pod: this instance holds it frozen no more.
        let mut state = self.state.lock();
        state.frozen.remove(uid);
        self.metrics.frozen_pods.set(state.frozen.len() as i64);
        drop(state);
        result?;
        self.metrics.thaw_duration.observe(start.elapsed().as_secs_f64());
        // The mark this instance wrote, else one the cache shows (a failed freeze's, not removed yet).
        let removal = match (frozen, pod) {
            (Some(frozen), _) => Some(MarkRemoval {
                namespace: frozen.namespace,
                name: frozen.name,
                value: frozen.mark.to_string(),
            }),
            (None, Some(pod)) => pod.annotations().get(FROZEN_ANNOTATION).map(|value| MarkRemoval {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
                value: value.clone(),
            }),
            (None, None) => None,
        };
        Ok(removal)
    }

    /// A pod in the cache changed: one that starts terminating while frozen is thawed at once (on cgroup v1 a frozen
    /// task cannot even die, so the kubelet could never stop it), and its cgroup's path forgotten.
    pub fn pod_changed(self: &Arc<Self>, pod: &Pod) {
        if pods::lifecycle(pod) != Lifecycle::Deleting {
            return;
        }
        let Some(uid) = pod.uid().and_then(|uid| PodUid::parse(&uid).ok()) else {
            return;
        };
        let frozen = self.state.lock().frozen.contains_key(&uid);
        let agent = self.clone();
        tokio::spawn(async move {
            if frozen {
                info!(%uid, "thawing a frozen pod that is terminating");
                if let Err(e) = agent.thaw(&uid).await {
                    warn!(%uid, error = %e, "thawing a terminating pod");
                }
            }
            let _turn = agent.turn(&uid).await;
            agent.state.lock().paths.remove(&uid);
        });
    }

    /// At SIGTERM: thaws every pod this instance froze and removes their marks, within `bound`.
    pub async fn thaw_all(&self, bound: Duration) {
        let uids: Vec<PodUid> = self.state.lock().frozen.keys().cloned().collect();
        let work = async {
            let mut removals = vec![];
            for uid in &uids {
                match self.thaw_cgroup(uid).await {
                    Ok(removal) => removals.extend(removal),
                    Err(e) => warn!(%uid, error = %e, "thawing at shutdown"),
                }
            }
            info!(pods = uids.len(), "thawed the pods this instance froze");
            for removal in removals {
                if let Err(e) = pods::remove_mark(&self.client, &removal.namespace, &removal.name, &removal.value).await
                {
                    warn!(pod = %format!("{}/{}", removal.namespace, removal.name), error = %e, "removing a mark at shutdown (the next agent removes it)");
                }
            }
        };
        if tokio::time::timeout(bound, work).await.is_err() {
            warn!(?bound, "shutdown thaw cut short");
        }
    }

    /// The fail-safe at start: thaws every Runway pod of the node whose cgroup is frozen (whoever froze it), then
    /// removes every mark that is not this instance's. `Err` lists what failed; the caller tries again.
    pub async fn recover(&self) -> Result<(), String> {
        let pods = self.pods.state();
        let mut failures = vec![];
        for pod in &pods {
            let Some(uid) = pod.uid().and_then(|uid| PodUid::parse(&uid).ok()) else {
                continue;
            };
            let dir = match self.dir(&uid) {
                Ok(dir) => dir,
                Err(OpError::NotFound(_)) => continue,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            match self.layout.state(&dir) {
                Ok(FreezerState::Thawed) => {}
                Ok(_) => match cgroup::apply(&self.layout, &dir, Target::Thawed, SETTLE_BOUND).await {
                    Ok(()) => {
                        info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), "thawed a pod found frozen at start");
                        self.metrics.start_thawed_pods.inc();
                    }
                    Err(e) => {
                        self.metrics.error(Operation::Thaw);
                        failures.push(format!("thawing {uid}: {e}"));
                    }
                },
                Err(e) => failures.push(format!("reading the state of {uid}: {e}")),
            }
        }
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        for stale in mark::stale_marks(pods.iter().map(|pod| pod.as_ref()), self.marks.instance()) {
            if let Err(e) = pods::remove_mark(&self.client, &stale.namespace, &stale.name, &stale.value).await {
                self.metrics.error(Operation::Mark);
                failures.push(format!("removing the mark of {}/{}: {e}", stale.namespace, stale.name));
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(failures.join("; ")),
        }
    }

    /// Freezes or thaws the pod's cgroup, locating it again once if it moved.
    async fn apply(&self, uid: &PodUid, target: Target) -> Result<(), OpError> {
        let dir = self.dir(uid)?;
        match cgroup::apply(&self.layout, &dir, target, SETTLE_BOUND).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_gone() => {
                self.state.lock().paths.remove(uid);
                let dir = self.dir(uid)?;
                cgroup::apply(&self.layout, &dir, target, SETTLE_BOUND)
                    .await
                    .map_err(|e| settle_error(uid, target, e))
            }
            Err(e) => Err(settle_error(uid, target, e)),
        }
    }

    /// The pod's cgroup directory: cached, or found now.
    fn dir(&self, uid: &PodUid) -> Result<PathBuf, OpError> {
        if let Some(dir) = self.state.lock().paths.get(uid) {
            return Ok(dir.clone());
        }
        match self.layout.locate(uid) {
            Ok(Some(dir)) => {
                self.state.lock().paths.insert(uid.clone(), dir.clone());
                Ok(dir)
            }
            Ok(None) => Err(OpError::NotFound(format!("pod {uid} has no cgroup on this node"))),
            Err(e) => Err(OpError::Cgroup(format!("looking for the cgroup of pod {uid}: {e}"))),
        }
    }

    /// Waits for this pod's turn: operations on one pod run one after another, in the order they came.
    async fn turn(&self, uid: &PodUid) -> Turn<'_> {
        let lock = self.state.lock().locks.entry(uid.clone()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Turn {
            agent: self,
            uid: uid.clone(),
            guard: Some(guard),
        }
    }

    /// Removes a mark in the background, a few times before giving up (the next start removes it anyway).
    fn spawn_removal(&self, removal: MarkRemoval) {
        let (client, metrics) = (self.client.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let pod = format!("{}/{}", removal.namespace, removal.name);
            for pause in std::iter::once(Duration::ZERO).chain(MARK_RETRIES) {
                tokio::time::sleep(pause).await;
                match pods::remove_mark(&client, &removal.namespace, &removal.name, &removal.value).await {
                    Ok(_) => return,
                    Err(e) => warn!(%pod, error = %e, "removing the frozen mark"),
                }
            }
            metrics.error(Operation::Mark);
            warn!(%pod, "gave up removing the frozen mark of a thawed pod");
        });
    }
}

/// A pod's turn; when it ends, the pod's lock is dropped from the map unless someone else waits for it.
struct Turn<'a> {
    agent: &'a Agent,
    uid: PodUid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut state = self.agent.state.lock();
        if state
            .locks
            .get(&self.uid)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            state.locks.remove(&self.uid);
        }
    }
}

fn not_runways(uid: &PodUid) -> OpError {
    OpError::NotFound(format!("pod {uid} is not a Runway pod on this node"))
}

fn settle_error(uid: &PodUid, target: Target, error: ApplyError) -> OpError {
    if error.is_gone() {
        return OpError::NotFound(format!("the cgroup of pod {uid} is gone"));
    }
    let what = match target {
        Target::Frozen => "freezing",
        Target::Thawed => "thawing",
    };
    OpError::Cgroup(format!("{what} pod {uid}: {error}"))
}
