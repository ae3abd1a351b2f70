//! One revision's pods, their in-flight counters and the requests waiting for a slot.
//!
//! All of it sits behind one small mutex. A slot that frees up is handed straight to the head of the queue, so the
//! counters are exact: a pod never has more requests in flight than this activator's slots on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::HeaderValue;
use parking_lot::{Mutex, MutexGuard};
use runway_api::stats::ServiceLoad;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::model::{Answerer, EndpointState, FastProbe, Idle, Origin, PodRef, RevisionId, RevisionSettings};
use crate::revision::balance::{PodLoad, choose_pod};
use crate::revision::cold_start::ColdStart;
use crate::revision::freeze::{Follow, FreezePlan};
use crate::revision::load::{LoadSample, LoadTracker};
use crate::revision::metrics::RevisionMetrics;
use crate::revision::peers::Peers;
use crate::revision::pod::{Pod, ProbeKind, Readiness, Target};
use crate::revision::queue::WaitQueue;
use crate::revision::releases::Releases;
use crate::revision::slots::{first_ranked, slots_for};

/// At most one poke per revision this often while requests keep arriving at zero.
pub const POKE_INTERVAL: Duration = Duration::from_millis(500);

/// What a request may do now.
pub enum Grant {
    /// Send it to this pod; the slot is held until the lease is dropped.
    Pod(Lease),
    /// This activator holds no slot on any routable pod: send it to the peer activator at this proxy address.
    Peer(SocketAddr),
    /// The revision's pods are known to be failing and none is routable: answer at once with this reason.
    Failing(Arc<str>),
}

/// The outcome of asking for a slot.
pub enum Admission {
    Granted(Grant),
    /// Wait in the queue; with the load to poke the autoscaler with, when the request found the revision at zero.
    Queued(Waiting, Option<ServiceLoad>),
    /// The queue is at its bound.
    QueueFull,
    /// The revision was deleted.
    Gone,
}

/// One revision as the data path sees it.
pub struct RevisionHandle {
    /// This handle, for the leases it hands out.
    this: Weak<RevisionHandle>,
    pub id: RevisionId,
    /// The revision's name as the response header that names it; made once, not per response.
    pub header: Option<HeaderValue>,
    pub metrics: RevisionMetrics,
    releases: Arc<Releases>,
    /// The revision's probe channel: the only way a probe of one of its pods starts (the prober reads the other end).
    probes: mpsc::UnboundedSender<ProbeRequest>,
    /// Where it sends the freezes and thaws of its pods (the freezer reads the other end).
    freezes: mpsc::UnboundedSender<FreezeOrder>,
    state: Mutex<RevisionState>,
}

struct RevisionState {
    settings: Option<RevisionSettings>,
    peers: Arc<Peers>,
    pods: Vec<Pod>,
    next_pod_id: u64,
    queue: WaitQueue<Grant>,
    rotation: usize,
    load: LoadTracker,
    last_poke: Option<Instant>,
    warmth: Warmth,
    /// The last cold start that ended, for the requests that waited through it.
    last_cold_start: Option<ColdStart>,
}

/// Whether a cold start is under way.
enum Warmth {
    /// A pod is routable, or no request has waited for one since the last went.
    Warm,
    /// Requests arrived with no routable pod; counted once, timed until a pod is routable.
    Cold(ColdStart),
}

/// Why a request waits in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Every slot is taken.
    Busy,
    /// The revision had no routable pod, and none to thaw: it waits for a pod to start.
    ColdStart,
    /// It waits for a frozen pod to be thawed.
    Thaw,
}

/// A freeze or thaw of one pod that this revision asks the freezer for, through the node agent of its node.
pub struct FreezeOrder {
    /// The pod, among the revision's.
    pub id: u64,
    pub pod: PodRef,
    pub action: FreezeAction,
    /// For a thaw: the mark the pod carried while frozen.
    mark: Option<Arc<str>>,
    revision: Weak<RevisionHandle>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeAction {
    /// Wait until the pod has been idle long enough (see `plan`), then freeze it.
    Freeze,
    Thaw,
}

impl FreezeOrder {
    /// Whether to freeze now, later or not at all; the pod is Freezing once this says `Freeze`.
    pub fn plan(&self) -> FreezePlan {
        self.revision
            .upgrade()
            .map_or(FreezePlan::Cancel, |revision| revision.freeze_plan(self.id))
    }

    /// The agent froze the pod (with its mark), or failed to.
    pub fn frozen(&self, outcome: Result<Arc<str>, ()>) {
        if let Some(revision) = self.revision.upgrade() {
            revision.freeze_finished(self.id, outcome);
        }
    }

    /// The agent thawed the pod after `took`, or failed to; on failure, the load to poke the autoscaler with when
    /// requests now wait for a pod start.
    pub fn thawed(&self, outcome: Result<(), ()>, took: Duration) -> Option<ServiceLoad> {
        let revision = self.revision.upgrade()?;
        revision.metrics.thaw_duration.observe(took.as_secs_f64());
        revision.thaw_finished(self.id, outcome, self.mark.clone())
    }

    /// The revision it belongs to, for logs.
    pub fn revision_name(&self) -> Option<String> {
        Some(self.revision.upgrade()?.id.key.to_string())
    }
}

/// A pod this revision wants probed, sent on its probe channel to the prober. The prober holds no more of the
/// revision than this: it asks `plan` before each attempt and reports a pass through `answered`.
pub struct ProbeRequest {
    /// The pod, among the revision's.
    pub id: u64,
    pub addr: SocketAddr,
    revision: Weak<RevisionHandle>,
}

impl ProbeRequest {
    /// How to probe the pod now; `None` once it needs no probe (routable through Kubernetes, gone, terminating, its
    /// revision forgotten), which ends the probing.
    pub fn plan(&self) -> Option<ProbeKind> {
        self.revision.upgrade()?.probe_plan(self.id)
    }

    /// The pod answered its probe: it is routable.
    pub fn answered(&self) {
        if let Some(revision) = self.revision.upgrade() {
            tracing::debug!(revision = %revision.id.key, pod = %self.addr, "probe succeeded");
            revision.probe_succeeded(self.id);
        }
    }
}

impl RevisionHandle {
    pub fn new(
        id: RevisionId,
        metrics: RevisionMetrics,
        queue_limit: usize,
        peers: Arc<Peers>,
        releases: Arc<Releases>,
        probes: mpsc::UnboundedSender<ProbeRequest>,
        freezes: mpsc::UnboundedSender<FreezeOrder>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| RevisionHandle {
            this: this.clone(),
            header: HeaderValue::from_str(&id.key.name).ok(),
            id,
            metrics,
            releases,
            probes,
            freezes,
            state: Mutex::new(RevisionState {
                settings: None,
                peers,
                pods: Vec::new(),
                next_pod_id: 0,
                queue: WaitQueue::new(queue_limit),
                rotation: 0,
                load: LoadTracker::new(Instant::now()),
                last_poke: None,
                warmth: Warmth::Warm,
                last_cold_start: None,
            }),
        })
    }

    fn arc(&self) -> Arc<Self> {
        self.this.upgrade().expect("a handle in use is held by an Arc")
    }

    fn lock(&self) -> MutexGuard<'_, RevisionState> {
        self.state.lock()
    }

    /// The revision's timeout; `None` once it was deleted.
    pub fn timeout(&self) -> Option<Duration> {
        self.lock().settings.as_ref().map(|s| s.timeout)
    }

    /// Counts a response of this revision: in the metrics, and in the load report when this activator answered it
    /// rather than the peer it forwarded the request to (which counts it in its own report).
    /// `elapsed`: from the request's arrival to the response head.
    pub fn answered(&self, status: u16, answerer: Answerer, elapsed: Duration) {
        self.metrics.count_response(status, elapsed);
        if answerer == Answerer::ThisActivator {
            self.lock().load.answered(status);
        }
    }

    /// The last cold start that ended: the timeline a request that waited through one splits its wait by.
    pub fn last_cold_start(&self) -> Option<ColdStart> {
        self.lock().last_cold_start
    }

    /// Asks for a slot for a request that just arrived from `origin`.
    pub fn admit(&self, origin: Origin) -> Admission {
        let now = Instant::now();
        let mut state = self.lock();
        if state.settings.is_none() {
            return Admission::Gone;
        }
        if let Some(reason) = state.failure() {
            return Admission::Granted(Grant::Failing(reason));
        }
        if state.queue.is_empty()
            && let Some(index) = state.choose()
        {
            state.load.arrived();
            let lease = state.lease(index, self.arc(), now);
            self.publish_gauges(&state);
            return Admission::Granted(Grant::Pod(lease));
        }
        if state.may_forward(origin)
            && let Some(peer) = state.forward_target()
        {
            return Admission::Granted(Grant::Peer(peer));
        }
        state.load.arrived();
        let state = &mut *state;
        let nobody_waited = state.queue.is_empty();
        let Ok((id, receiver)) = state.queue.push(origin, &mut state.load, now) else {
            return Admission::QueueFull;
        };
        let routable = state.pods.iter().any(Pod::routable);
        let resumable = state.pods.iter().any(|pod| pod.resumable() && state.decides(pod));
        let reason = match (routable, resumable) {
            (true, _) => WaitReason::Busy,
            (false, true) => WaitReason::Thaw,
            (false, false) => WaitReason::ColdStart,
        };
        let cold = reason == WaitReason::ColdStart;
        let thaws = state.claim_thaws(&self.this);
        // A cold start lasts while requests wait with no routable pod: one whose requests all gave up is over, and
        // the next request begins another (else its duration would count the idle time between them).
        if cold && (matches!(state.warmth, Warmth::Warm) || nobody_waited) {
            let listed = state.pods.iter().any(|pod| !pod.is_removed());
            state.warmth = Warmth::Cold(ColdStart::began(now, listed));
            self.metrics.cold_starts.inc();
        }
        let poke = cold && state.last_poke.is_none_or(|at| now - at >= POKE_INTERVAL);
        if poke {
            state.last_poke = Some(now);
        }
        let sample = state.load.peek(now);
        self.publish_gauges(state);
        self.send_orders(thaws);
        Admission::Queued(
            Waiting {
                id,
                reason,
                receiver: Some(receiver),
                revision: self.arc(),
            },
            poke.then(|| self.service_load(sample, state.unusable_pods())),
        )
    }

    /// Replaces the revision's settings; `None` when it was deleted (waiting requests are then let go).
    pub fn set_settings(&self, settings: Option<RevisionSettings>) {
        let mut state = self.lock();
        if settings.is_none() {
            let state = &mut *state;
            state.queue.take_where(|_| true, &mut state.load, Instant::now());
        }
        state.settings = settings;
        state.recompute_slots();
        self.dispatch(&mut state);
    }

    /// Replaces the peer activators; the slot split follows.
    pub fn set_peers(&self, peers: Arc<Peers>) {
        let mut state = self.lock();
        state.peers = peers;
        state.recompute_slots();
        self.dispatch(&mut state);
    }

    /// Replaces the endpoints; the new ones that need it are probed.
    pub fn set_endpoints(&self, endpoints: &[EndpointState]) {
        let now = Instant::now();
        let mut state = self.lock();
        for pod in &mut state.pods {
            match endpoints.iter().find(|e| e.addr == pod.target.addr) {
                Some(endpoint) => pod.update(endpoint, now),
                None => pod.remove(),
            }
        }
        for endpoint in endpoints {
            if !state.pods.iter().any(|p| p.target.addr == endpoint.addr) {
                let id = state.next_pod_id;
                state.next_pod_id += 1;
                state.pods.push(Pod::new(id, endpoint, now));
            }
        }
        state.pods.retain(|p| !p.is_removed() || p.in_flight > 0);
        let listed = state.pods.iter().any(|pod| !pod.is_removed());
        if let Warmth::Cold(cold) = &mut state.warmth
            && listed
        {
            cold.pod_listed(Instant::now());
        }
        state.recompute_slots();
        let probes = state.claim_probes(&self.this);
        self.dispatch(&mut state);
        drop(state);
        self.start_probes(probes);
    }

    /// How to probe pod `id` now, or `None` once it needs no probe (the probe task then ends).
    fn probe_plan(&self, id: u64) -> Option<ProbeKind> {
        let mut state = self.lock();
        let policy = state.fast_probe();
        let pod = state.pods.iter_mut().find(|p| p.id == id)?;
        let plan = pod.probe_needed(&policy);
        pod.probing = plan.is_some();
        plan
    }

    /// Pod `id` answered its probe: it is routable.
    fn probe_succeeded(&self, id: u64) {
        let mut state = self.lock();
        if let Some(pod) = state.pods.iter_mut().find(|p| p.id == id) {
            pod.answered();
            pod.probing = false;
        }
        self.dispatch(&mut state);
    }

    /// Whether to freeze pod `id` now: only a pod this activator decides for, thawed and idle for the revision's
    /// delay. The freeze timer ends on anything but `WaitUntil`.
    fn freeze_plan(&self, id: u64) -> FreezePlan {
        let now = Instant::now();
        let mut state = self.lock();
        let Idle::Freeze { after } = state.idle() else {
            return state.end_freeze_timer(id);
        };
        let Some(index) = state.pods.iter().position(|p| p.id == id) else {
            return FreezePlan::Cancel;
        };
        if !state.decides(&state.pods[index]) || !state.pods[index].routable() {
            return state.end_freeze_timer(id);
        }
        let pod = &mut state.pods[index];
        let plan = pod.freeze.plan(after, pod.in_flight, now);
        pod.freeze_timer = matches!(plan, FreezePlan::WaitUntil(_));
        if plan == FreezePlan::Freeze {
            // Not routable any more: no request takes it while it freezes.
            self.publish_gauges(&state);
        }
        plan
    }

    fn freeze_finished(&self, id: u64, outcome: Result<Arc<str>, ()>) {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(pod) = state.pods.iter_mut().find(|p| p.id == id) else {
            return;
        };
        let follow = pod.freeze.freeze_done(outcome.clone(), now);
        let thaw = (follow == Follow::Thaw).then(|| freeze_order(pod, FreezeAction::Thaw, outcome.ok(), &self.this));
        self.dispatch(&mut state);
        drop(state);
        self.send_orders(thaw.into_iter().flatten());
    }

    fn thaw_finished(&self, id: u64, outcome: Result<(), ()>, mark: Option<Arc<str>>) -> Option<ServiceLoad> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(pod) = state.pods.iter_mut().find(|p| p.id == id) {
            pod.freeze.thaw_done(outcome, mark, now);
        }
        if outcome.is_err() {
            self.metrics.failed_thaws.inc();
        }
        // A pod frozen before this activator ever probed it (another activator's) is probed now that it runs.
        let probes = state.claim_probes(&self.this);
        self.dispatch(&mut state);
        // With no pod left to serve or thaw, the waiting requests need a pod start, as at zero.
        let stranded = !state.queue.is_empty() && !state.pods.iter().any(|pod| pod.routable() || pod.resumable());
        let poke = if stranded && matches!(state.warmth, Warmth::Warm) {
            let listed = state.pods.iter().any(|pod| !pod.is_removed());
            state.warmth = Warmth::Cold(ColdStart::began(now, listed));
            self.metrics.cold_starts.inc();
            state.last_poke = Some(now);
            Some(self.service_load(state.load.peek(now), state.unusable_pods()))
        } else {
            None
        };
        self.publish_gauges(&state);
        drop(state);
        self.start_probes(probes);
        poke
    }

    /// Sends freezes and thaws to the freezer. Without a freezer (no node agent) nothing is frozen: a thaw cannot be
    /// asked for, as no pod was frozen by this activator.
    fn send_orders(&self, orders: impl IntoIterator<Item = FreezeOrder>) {
        for order in orders {
            let _ = self.freezes.send(order);
        }
    }

    /// The connection to the leased pod failed before the request was sent: stop routing to it until a probe
    /// succeeds, and probe it unless a probe is already running.
    pub fn connect_failed(&self, mut lease: Lease) {
        lease.released = true;
        let mut state = self.lock();
        state.release(lease.pod_id, Instant::now());
        let pod = state.pods.iter_mut().find(|p| p.id == lease.pod_id);
        let probe = pod.and_then(|pod| {
            pod.refused();
            (!pod.probing).then(|| probe_request(pod, &self.this))
        });
        self.dispatch(&mut state);
        drop(state);
        self.releases.changed();
        self.start_probes(probe);
    }

    /// Sends probe requests to the prober: the one place a probe starts. Without a prober (it stopped with the
    /// activator) nothing is probed.
    fn start_probes(&self, probes: impl IntoIterator<Item = ProbeRequest>) {
        for probe in probes {
            let _ = self.probes.send(probe);
        }
    }

    /// The interval's load, ending the interval; `None` when the revision was idle.
    pub fn take_load(&self, now: Instant) -> Option<ServiceLoad> {
        let mut state = self.lock();
        let sample = state.load.take(now);
        let unusable = state.unusable_pods();
        drop(state);
        sample.is_active().then(|| self.service_load(sample, unusable))
    }

    /// Nothing left to serve or to wait for: the registry may forget the revision.
    pub fn is_unused(&self) -> bool {
        let state = self.lock();
        state.settings.is_none() && state.pods.is_empty() && state.queue.is_empty()
    }

    /// Whether this activator has no more in flight on any pod than `list` would give `me`.
    pub fn holds_within(&self, me: IpAddr, list: &[IpAddr]) -> bool {
        let state = self.lock();
        let cc = state.cc();
        state
            .pods
            .iter()
            .all(|pod| slots_for(me, pod.target.addr.ip(), cc, list).covers(pod.in_flight))
    }

    fn release(&self, pod_id: u64) {
        let mut state = self.lock();
        state.release(pod_id, Instant::now());
        self.dispatch(&mut state);
        drop(state);
        self.releases.changed();
    }

    fn remove_waiter(&self, id: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.queue.remove(id, &mut state.load, Instant::now()) {
            self.publish_gauges(state);
        }
    }

    /// Hands free slots to the head of the queue, and forwards waiting requests when all slots belong to peers; lets
    /// every waiting request go with the reason when the pods are known to be failing.
    fn dispatch(&self, state: &mut RevisionState) {
        let now = Instant::now();
        if let Some(reason) = state.failure() {
            for waiter in state.queue.take_where(|_| true, &mut state.load, now) {
                let _ = waiter.grant.send(Grant::Failing(reason.clone()));
            }
        }
        while !state.queue.is_empty() {
            let Some(index) = state.choose() else {
                break;
            };
            let waiter = state.queue.pop(&mut state.load, now).expect("checked non-empty");
            let lease = state.lease(index, self.arc(), now);
            if let Err(Grant::Pod(mut lease)) = waiter.grant.send(Grant::Pod(lease)) {
                // The request gave up meanwhile; undo without the lease's Drop, which would take the lock again.
                lease.released = true;
                state.release(lease.pod_id, now);
            }
        }
        if !state.queue.is_empty()
            && let Some(peer) = state.forward_target()
        {
            let peers = state.peers.clone();
            let forwardable = state
                .queue
                .take_where(|w| may_forward(w.origin, &peers), &mut state.load, now);
            for waiter in forwardable {
                let _ = waiter.grant.send(Grant::Peer(peer));
            }
        }
        if let Warmth::Cold(cold) = &mut state.warmth
            && state.pods.iter().any(Pod::routable)
        {
            let took = cold.finish(now);
            self.metrics.cold_start_duration.observe(took.as_secs_f64());
            state.last_cold_start = Some(*cold);
            state.warmth = Warmth::Warm;
        }
        let mut orders = state.claim_thaws(&self.this);
        orders.extend(state.claim_freezes(&self.this));
        self.publish_gauges(state);
        self.send_orders(orders);
    }

    fn publish_gauges(&self, state: &RevisionState) {
        self.metrics.queue_depth.set(i64::from(state.load.queued()));
        self.metrics.in_flight.set(i64::from(state.load.in_flight()));
        // Only a revision whose idle pods freeze has frozen pods: the others' request path skips the count.
        if matches!(state.idle(), Idle::Freeze { .. }) {
            let frozen = state.pods.iter().filter(|pod| pod.freeze.is_frozen()).count();
            self.metrics.frozen_pods.set(i64::try_from(frozen).unwrap_or(i64::MAX));
        }
    }

    fn service_load(&self, sample: LoadSample, unusable_pods: u32) -> ServiceLoad {
        ServiceLoad {
            namespace: self.id.key.namespace.clone(),
            name: self.id.service.clone(),
            revision: self.id.key.name.clone(),
            concurrency: sample.concurrency,
            rps: sample.rps,
            queued: sample.queued,
            in_flight: sample.in_flight,
            requests: sample.requests,
            server_errors: sample.server_errors,
            unusable_pods,
        }
    }
}

/// A request a peer forwarded is not forwarded again while views may differ (it could bounce between activators
/// that each think the other holds the slots), except by an activator that is leaving: it holds no slots any more,
/// and the peer it forwards to will not bounce it back. Once this activator's view is settled every activator has
/// confirmed it, so the owner it names agrees: a request forwarded here under an older view goes on to that owner
/// instead of waiting for a slot this activator will never get.
fn may_forward(origin: Origin, peers: &Peers) -> bool {
    origin == Origin::Client || peers.is_leaving() || peers.is_settled()
}

/// A freeze or thaw of `pod`, when its source named it.
fn freeze_order(
    pod: &Pod,
    action: FreezeAction,
    mark: Option<Arc<str>>,
    revision: &Weak<RevisionHandle>,
) -> Option<FreezeOrder> {
    Some(FreezeOrder {
        id: pod.id,
        pod: pod.pod_ref.clone()?,
        action,
        mark,
        revision: revision.clone(),
    })
}

/// Marks `pod` as probed and asks for its probe.
fn probe_request(pod: &mut Pod, revision: &Weak<RevisionHandle>) -> ProbeRequest {
    pod.probing = true;
    ProbeRequest {
        id: pod.id,
        addr: pod.target.addr,
        revision: revision.clone(),
    }
}

impl RevisionState {
    fn choose(&mut self) -> Option<usize> {
        let loads: Vec<PodLoad> = self.pods.iter().map(Pod::load).collect();
        choose_pod(&loads, self.rotation, |n| fastrand::usize(..n))
    }

    fn lease(&mut self, index: usize, revision: Arc<RevisionHandle>, now: Instant) -> Lease {
        self.rotation = self.rotation.wrapping_add(1);
        let pod = &mut self.pods[index];
        pod.in_flight += 1;
        if pod.in_flight == 1 {
            pod.freeze.in_flight_changed(true, now);
        }
        self.load.change_in_flight(now, 1);
        Lease {
            revision,
            pod_id: pod.id,
            target: pod.target.clone(),
            released: false,
        }
    }

    fn release(&mut self, pod_id: u64, now: Instant) {
        self.load.change_in_flight(now, -1);
        if let Some(index) = self.pods.iter().position(|p| p.id == pod_id) {
            let pod = &mut self.pods[index];
            pod.in_flight -= 1;
            if pod.in_flight == 0 {
                pod.freeze.in_flight_changed(false, now);
            }
            if pod.is_removed() && pod.in_flight == 0 {
                self.pods.remove(index);
            }
        }
    }

    fn may_forward(&self, origin: Origin) -> bool {
        may_forward(origin, &self.peers)
    }

    /// Why requests cannot be served now: the revision reports its pods failing (never at zero, see
    /// `runway_api::revision_failure`: there a request pokes and waits for the next attempt), and none is routable. Pods need not be listed: an unschedulable one never gets an address.
    fn failure(&self) -> Option<Arc<str>> {
        let reason = self.settings.as_ref()?.failure.clone()?;
        (!self.pods.iter().any(Pod::routable)).then_some(reason)
    }

    fn cc(&self) -> u32 {
        self.settings.as_ref().map_or(0, |s| s.container_concurrency)
    }

    fn fast_probe(&self) -> FastProbe {
        self.settings
            .as_ref()
            .map_or(FastProbe::KubernetesOnly, |s| s.fast_probe.clone())
    }

    fn idle(&self) -> Idle {
        self.settings.as_ref().map_or(Idle::Stop, |s| s.idle)
    }

    /// Whether this activator freezes and thaws `pod`: the one holding its slots, which for a revision whose idle
    /// pods freeze are all one activator's (see `recompute_slots`), so that exactly one decides.
    fn decides(&self, pod: &Pod) -> bool {
        matches!(self.idle(), Idle::Freeze { .. }) && !pod.slots.is_zero()
    }

    /// Pods whose thaw failed, which Kubernetes still counts ready.
    fn unusable_pods(&self) -> u32 {
        let unusable = self.pods.iter().filter(|pod| pod.freeze.is_unusable()).count();
        u32::try_from(unusable).unwrap_or(u32::MAX)
    }

    fn end_freeze_timer(&mut self, id: u64) -> FreezePlan {
        if let Some(pod) = self.pods.iter_mut().find(|p| p.id == id) {
            pod.freeze_timer = false;
        }
        FreezePlan::Cancel
    }

    /// A revision whose idle pods freeze gives each pod's slots whole to one activator, the first ranked for it:
    /// only that one knows the pod's in-flight count, which the decision to freeze rests on. The others forward.
    fn recompute_slots(&mut self) {
        let cc = self.cc();
        let (readiness, whole) = match self.idle() {
            Idle::Stop => (Readiness::Kubelet, false),
            Idle::Freeze { .. } => (Readiness::Activator, true),
        };
        for pod in &mut self.pods {
            pod.readiness = readiness;
            pod.slots = if whole {
                self.peers.whole_slots_on(pod.target.addr.ip(), cc)
            } else {
                self.peers.slots_on(pod.target.addr.ip(), cc)
            };
        }
    }

    /// Thaws as many frozen pods as the waiting requests need beyond the slots of the pods already coming back.
    fn claim_thaws(&mut self, revision: &Weak<RevisionHandle>) -> Vec<FreezeOrder> {
        if self.queue.is_empty() || !matches!(self.idle(), Idle::Freeze { .. }) {
            return Vec::new();
        }
        let waiting = self.queue.len();
        let cc = self.cc();
        let slots = |_: &Pod| if cc == 0 { usize::MAX } else { cc as usize };
        let mut coming: usize = self
            .pods
            .iter()
            .filter(|pod| pod.freeze.coming_back() && !pod.slots.is_zero())
            .map(slots)
            .fold(0, usize::saturating_add);
        let mut orders = Vec::new();
        for index in 0..self.pods.len() {
            if coming >= waiting {
                break;
            }
            let pod = &self.pods[index];
            if !pod.resumable() || pod.freeze.coming_back() || !self.decides(pod) {
                continue;
            }
            let pod = &mut self.pods[index];
            let mark = pod.freeze.mark();
            if pod.freeze.wanted() == Follow::Thaw {
                orders.extend(freeze_order(pod, FreezeAction::Thaw, mark, revision));
            }
            coming = coming.saturating_add(slots(pod));
        }
        orders
    }

    /// Freeze timers for the idle pods this activator decides for that have none running.
    fn claim_freezes(&mut self, revision: &Weak<RevisionHandle>) -> Vec<FreezeOrder> {
        if !matches!(self.idle(), Idle::Freeze { .. }) {
            return Vec::new();
        }
        let mut orders = Vec::new();
        for index in 0..self.pods.len() {
            let pod = &self.pods[index];
            let idle = pod.in_flight == 0 && pod.routable() && !pod.freeze_timer;
            if !idle || !self.decides(pod) {
                continue;
            }
            let pod = &mut self.pods[index];
            if let Some(order) = freeze_order(pod, FreezeAction::Freeze, None, revision) {
                pod.freeze_timer = true;
                orders.push(order);
            }
        }
        orders
    }

    /// The peer to forward to when this activator holds no slot on any routable pod but a peer does. For a revision
    /// whose idle pods freeze, a frozen pod counts: the peer holding its slots thaws it.
    fn forward_target(&mut self) -> Option<SocketAddr> {
        let freeze = matches!(self.idle(), Idle::Freeze { .. });
        if self.cc() == 0 && !freeze {
            return None;
        }
        let routable: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| p.routable() || (freeze && p.resumable()))
            .collect();
        if routable.is_empty() || routable.iter().any(|p| !p.slots.is_zero()) {
            return None;
        }
        self.rotation = self.rotation.wrapping_add(1);
        let pod = routable[self.rotation % routable.len()];
        let owner = first_ranked(pod.target.addr.ip(), &self.peers.ips())?;
        self.peers.proxy_addr(owner)
    }

    /// Probe requests for the pods that need a probe and have none running.
    fn claim_probes(&mut self, revision: &Weak<RevisionHandle>) -> Vec<ProbeRequest> {
        let policy = self.fast_probe();
        self.pods
            .iter_mut()
            .filter(|p| !p.probing && p.probe_needed(&policy).is_some())
            .map(|pod| probe_request(pod, revision))
            .collect()
    }
}

/// A slot on one pod, held from dispatch until the pod has finished with the request: its response ended, the
/// upgraded connection closed, or the connection to the pod was closed.
pub struct Lease {
    revision: Arc<RevisionHandle>,
    pod_id: u64,
    pub target: Target,
    released: bool,
}

impl Lease {
    /// The revision the slot belongs to.
    pub fn revision(&self) -> &RevisionHandle {
        &self.revision
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            self.revision.release(self.pod_id);
        }
    }
}

/// A request waiting in the queue. Dropping it (timeout, client gone) takes it out of the queue.
pub struct Waiting {
    id: u64,
    pub reason: WaitReason,
    receiver: Option<oneshot::Receiver<Grant>>,
    revision: Arc<RevisionHandle>,
}

impl Waiting {
    /// Waits for a slot or a peer to forward to; `None` if the revision was deleted meanwhile.
    pub async fn granted(mut self) -> Option<Grant> {
        let receiver = self.receiver.as_mut().expect("present until granted or dropped");
        let grant = receiver.await.ok();
        self.receiver = None;
        grant
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            self.revision.remove_waiter(self.id);
            // A grant sent in the meantime is dropped with the receiver, which releases its slot.
            drop(receiver);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PodRef;
    use crate::revision::metrics::Metrics;

    fn service(cc: u32, queue_limit: usize) -> Arc<RevisionHandle> {
        probed_service(cc, queue_limit).0
    }

    /// A revision, and the other end of its probe channel.
    fn probed_service(cc: u32, queue_limit: usize) -> (Arc<RevisionHandle>, mpsc::UnboundedReceiver<ProbeRequest>) {
        let id = RevisionId::new("default", "hello", "hello-00001");
        let (probes, requested) = mpsc::unbounded_channel();
        let handle = RevisionHandle::new(
            id.clone(),
            Metrics::default().for_revision(&id),
            queue_limit,
            Arc::new(Peers::alone(IpAddr::from([10, 0, 0, 1]))),
            Arc::default(),
            probes,
            mpsc::unbounded_channel().0,
        );
        handle.set_settings(Some(RevisionSettings {
            container_concurrency: cc,
            timeout: Duration::from_secs(300),
            fast_probe: FastProbe::Tcp,
            failure: None,
            idle: Idle::Stop,
        }));
        (handle, requested)
    }

    /// The probe requests sent so far.
    fn sent(requested: &mut mpsc::UnboundedReceiver<ProbeRequest>) -> Vec<ProbeRequest> {
        std::iter::from_fn(|| requested.try_recv().ok()).collect()
    }

    fn ready(port: u16) -> EndpointState {
        EndpointState {
            addr: SocketAddr::from(([10, 1, 0, 1], port)),
            h2c: false,
            ready: true,
            terminating: false,
            pod: None,
        }
    }

    fn lease(admission: Admission) -> Lease {
        match admission {
            Admission::Granted(Grant::Pod(lease)) => lease,
            _ => panic!("expected a pod"),
        }
    }

    fn queued(admission: Admission) -> Waiting {
        match admission {
            Admission::Queued(waiting, _) => waiting,
            _ => panic!("expected to wait"),
        }
    }

    fn counts(service: &RevisionHandle) -> (u32, u32) {
        let state = service.lock();
        (state.load.in_flight(), state.load.queued())
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_head_of_the_queue() {
        let service = service(1, 10);
        service.set_endpoints(&[ready(8080)]);
        let first = lease(service.admit(Origin::Client));
        let second = queued(service.admit(Origin::Client));
        let third = queued(service.admit(Origin::Client));
        assert_eq!(counts(&service), (1, 2));
        drop(first);
        let Some(Grant::Pod(second)) = second.granted().await else {
            panic!("the head waiter gets the slot")
        };
        assert_eq!(counts(&service), (1, 1));
        drop(second);
        assert!(matches!(third.granted().await, Some(Grant::Pod(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_that_gave_up_are_skipped_and_uncounted() {
        let service = service(1, 10);
        service.set_endpoints(&[ready(8080)]);
        let first = lease(service.admit(Origin::Client));
        let gave_up = queued(service.admit(Origin::Client));
        let patient = queued(service.admit(Origin::Client));
        drop(gave_up);
        assert_eq!(counts(&service), (1, 1));
        drop(first);
        assert!(matches!(patient.granted().await, Some(Grant::Pod(_))));
        assert_eq!(counts(&service), (0, 0), "the grant was dropped with its lease");
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let service = service(0, 2);
        let _a = queued(service.admit(Origin::Client));
        let _b = queued(service.admit(Origin::Client));
        assert!(matches!(service.admit(Origin::Client), Admission::QueueFull));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_times_out_and_leaves_the_queue() {
        let service = service(0, 10);
        let waiting = queued(service.admit(Origin::Client));
        assert_eq!(waiting.reason, WaitReason::ColdStart);
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(300), waiting.granted()).await;
        assert!(outcome.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(300));
        assert_eq!(counts(&service), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_pods_take_every_request() {
        let service = service(0, 10);
        service.set_endpoints(&[ready(8080), ready(8081)]);
        let leases: Vec<Lease> = (0..100).map(|_| lease(service.admit(Origin::Client))).collect();
        assert_eq!(counts(&service), (100, 0));
        drop(leases);
        assert_eq!(counts(&service), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn terminating_pods_get_no_new_requests_but_finish_old_ones() {
        let service = service(0, 10);
        service.set_endpoints(&[ready(8080)]);
        let in_flight = lease(service.admit(Origin::Client));
        service.set_endpoints(&[EndpointState {
            terminating: true,
            ..ready(8080)
        }]);
        let waiting = queued(service.admit(Origin::Client));
        service.set_endpoints(&[]);
        assert_eq!(counts(&service), (1, 1));
        drop(in_flight);
        assert_eq!(counts(&service), (0, 1));
        service.set_endpoints(&[ready(9090)]);
        let Some(Grant::Pod(lease)) = waiting.granted().await else {
            panic!("the new pod serves the waiter")
        };
        assert_eq!(lease.target.addr.port(), 9090);
    }

    #[tokio::test(start_paused = true)]
    async fn unready_endpoints_are_probed_before_use() {
        let (service, mut requested) = probed_service(0, 10);
        service.set_endpoints(&[EndpointState {
            ready: false,
            ..ready(8080)
        }]);
        let probes = sent(&mut requested);
        assert_eq!(probes.len(), 1);
        let waiting = queued(service.admit(Origin::Client));
        assert_eq!(service.probe_plan(probes[0].id), Some(ProbeKind::Tcp));
        service.probe_succeeded(probes[0].id);
        assert!(matches!(waiting.granted().await, Some(Grant::Pod(_))));
        assert_eq!(service.probe_plan(probes[0].id), None, "routable pods are not probed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_that_refused_a_connection_waits_for_a_probe() {
        let (service, mut requested) = probed_service(0, 10);
        service.set_endpoints(&[ready(8080)]);
        service.connect_failed(lease(service.admit(Origin::Client)));
        let probe = requested.try_recv().expect("a probe starts");
        assert_eq!(queued(service.admit(Origin::Client)).reason, WaitReason::ColdStart);
        service.probe_succeeded(probe.id);
        lease(service.admit(Origin::Client));
    }

    #[tokio::test(start_paused = true)]
    async fn without_slots_requests_go_to_the_peer_that_has_them() {
        let me = IpAddr::from([10, 0, 0, 1]);
        let peer: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        let service = service(1, 10);
        // A view the other activator has not confirmed yet.
        let admin: SocketAddr = "10.0.0.2:9090".parse().unwrap();
        let view = Peers::new(me, [peer])
            .with_admins([admin])
            .succeeding(&Peers::alone(me));
        assert!(!view.is_settled());
        service.set_peers(Arc::new(view.clone()));
        // A pod whose single slot the peer holds.
        let pod_owned_by_peer = (1..=255u8)
            .map(|last| SocketAddr::new(IpAddr::from([10, 1, 0, last]), 8080))
            .find(|addr| first_ranked(addr.ip(), &[me, peer.ip()]) == Some(peer.ip()))
            .unwrap();
        let waiting_before = queued(service.admit(Origin::Client));
        service.set_endpoints(&[EndpointState {
            addr: pod_owned_by_peer,
            ..ready(8080)
        }]);
        assert!(matches!(waiting_before.granted().await, Some(Grant::Peer(addr)) if addr == peer));
        assert!(matches!(service.admit(Origin::Client), Admission::Granted(Grant::Peer(addr)) if addr == peer));
        // A request a peer already forwarded waits here while views may differ, instead of bouncing back...
        let forwarded_waiting = queued(service.admit(Origin::Peer));
        // ...and goes on to the owner once every activator has confirmed the view (before, it waited for a slot this
        // activator never gets, until its timeout).
        service.set_peers(Arc::new(view.settled()));
        let granted = tokio::time::timeout(Duration::from_secs(60), forwarded_waiting.granted()).await;
        assert!(matches!(granted, Ok(Some(Grant::Peer(addr))) if addr == peer));
        assert!(matches!(service.admit(Origin::Peer), Admission::Granted(Grant::Peer(addr)) if addr == peer));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leaving_activator_hands_its_slots_to_the_peers() {
        let me = IpAddr::from([10, 0, 0, 1]);
        let peer: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        let service = service(1, 10);
        let peers = Peers::new(me, [peer]);
        service.set_peers(Arc::new(peers.clone()));
        let pod_owned_by_me = (1..=255u8)
            .map(|last| SocketAddr::new(IpAddr::from([10, 1, 0, last]), 8080))
            .find(|addr| first_ranked(addr.ip(), &[me, peer.ip()]) == Some(me))
            .unwrap();
        service.set_endpoints(&[EndpointState {
            addr: pod_owned_by_me,
            ..ready(8080)
        }]);
        let in_flight = lease(service.admit(Origin::Client));
        let forwarded_waiting = queued(service.admit(Origin::Peer));
        service.set_peers(Arc::new(peers.leaving()));
        // Even the request a peer forwarded goes back out: this activator holds no slot any more.
        assert!(matches!(forwarded_waiting.granted().await, Some(Grant::Peer(addr)) if addr == peer));
        assert!(matches!(service.admit(Origin::Client), Admission::Granted(Grant::Peer(addr)) if addr == peer));
        drop(in_flight);
        assert_eq!(counts(&service), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_fail_at_once_while_the_pods_are_known_to_be_failing() {
        let service = service(0, 10);
        let failing = |failure: Option<&str>| {
            Some(RevisionSettings {
                container_concurrency: 0,
                timeout: Duration::from_secs(300),
                fast_probe: FastProbe::Tcp,
                failure: failure.map(Arc::from),
                idle: Idle::Stop,
            })
        };
        // At zero the revision reports no failure (the last one is history): a request waits for the next attempt.
        service.set_settings(failing(None));
        let waiting = queued(service.admit(Origin::Client));
        // The new pod starts and fails: the waiting request and new ones get the reason.
        service.set_endpoints(&[EndpointState {
            ready: false,
            ..ready(8080)
        }]);
        service.set_settings(failing(Some("hello-00001: container exits with code 127")));
        let reason = |grant: Option<Grant>| match grant {
            Some(Grant::Failing(reason)) => reason.to_string(),
            _ => panic!("expected the failure"),
        };
        assert_eq!(
            reason(waiting.granted().await),
            "hello-00001: container exits with code 127"
        );
        let Admission::Granted(grant) = service.admit(Origin::Client) else {
            panic!("answered at once")
        };
        assert_eq!(reason(Some(grant)), "hello-00001: container exits with code 127");
        assert_eq!(counts(&service), (0, 0));
        // Fixed: requests wait for the pod again, and are served once it is ready.
        service.set_settings(failing(None));
        let waiting = queued(service.admit(Origin::Client));
        service.set_endpoints(&[ready(8080)]);
        assert!(matches!(waiting.granted().await, Some(Grant::Pod(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_without_any_listed_pod_fails_requests_too() {
        // An unschedulable pod never gets an address, so no EndpointSlice lists it.
        let service = service(0, 10);
        let waiting = queued(service.admit(Origin::Client));
        service.set_settings(Some(RevisionSettings {
            container_concurrency: 0,
            timeout: Duration::from_secs(300),
            fast_probe: FastProbe::Tcp,
            failure: Some(Arc::from(
                "hello-00001: no node can run the pod: 0/1 nodes are available",
            )),
            idle: Idle::Stop,
        }));
        let granted = tokio::time::timeout(Duration::from_secs(1), waiting.granted()).await;
        assert!(
            matches!(granted, Ok(Some(Grant::Failing(_)))),
            "answered with the reason at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_poke_leaves_at_once_and_at_most_every_interval() {
        let service = service(0, 10);
        let poke = |admission: Admission| match admission {
            Admission::Queued(waiting, poke) => (waiting, poke),
            _ => panic!("expected to wait"),
        };
        let (_first, first_poke) = poke(service.admit(Origin::Client));
        let first_poke = first_poke.expect("poked at once");
        assert_eq!(
            (
                first_poke.name.as_str(),
                first_poke.revision.as_str(),
                first_poke.queued
            ),
            ("hello", "hello-00001", 1)
        );
        let (_second, second_poke) = poke(service.admit(Origin::Client));
        assert!(second_poke.is_none(), "rate-limited");
        tokio::time::advance(POKE_INTERVAL).await;
        let (_third, third_poke) = poke(service.admit(Origin::Client));
        assert!(third_poke.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn responses_a_peer_answered_are_left_to_its_report() {
        let service = service(0, 10);
        service.answered(200, Answerer::ThisActivator, Duration::from_millis(1));
        service.answered(503, Answerer::ThisActivator, Duration::from_millis(1));
        service.answered(500, Answerer::Peer, Duration::from_millis(1));
        let load = service
            .take_load(Instant::now())
            .expect("responses make the interval active");
        assert_eq!(
            (load.revision.as_str(), load.requests, load.server_errors),
            ("hello-00001", 2, 1)
        );
    }

    /// A revision whose idle pods freeze after a second, with the other ends of its probe and freeze channels.
    struct Freezing {
        revision: Arc<RevisionHandle>,
        probes: mpsc::UnboundedReceiver<ProbeRequest>,
        orders: mpsc::UnboundedReceiver<FreezeOrder>,
    }

    const AFTER: Duration = Duration::from_secs(1);

    fn freezing(cc: u32, peers: Peers) -> Freezing {
        let id = RevisionId::new("default", "hello", "hello-00001");
        let (probes, probe_requests) = mpsc::unbounded_channel();
        let (freezes, orders) = mpsc::unbounded_channel();
        let revision = RevisionHandle::new(
            id.clone(),
            Metrics::default().for_revision(&id),
            100,
            Arc::new(peers),
            Arc::default(),
            probes,
            freezes,
        );
        revision.set_settings(Some(RevisionSettings {
            container_concurrency: cc,
            timeout: Duration::from_secs(300),
            fast_probe: FastProbe::Tcp,
            failure: None,
            idle: Idle::Freeze { after: AFTER },
        }));
        Freezing {
            revision,
            probes: probe_requests,
            orders,
        }
    }

    fn pod(last: u8, mark: Option<&str>) -> EndpointState {
        EndpointState {
            addr: SocketAddr::from(([10, 1, 0, last], 8080)),
            h2c: false,
            ready: true,
            terminating: false,
            pod: Some(PodRef {
                uid: Arc::from(format!("uid-{last}")),
                node: Arc::from("node-a"),
                frozen_mark: mark.map(Arc::from),
            }),
        }
    }

    impl Freezing {
        /// Lists the pods and passes the activator's probe of each: without a readiness probe in the pod, only that
        /// makes it routable.
        fn start(&mut self, pods: &[EndpointState]) {
            self.revision.set_endpoints(pods);
            for probe in sent(&mut self.probes) {
                assert_eq!(probe.plan(), Some(ProbeKind::Tcp));
                probe.answered();
            }
        }

        fn orders(&mut self) -> Vec<FreezeOrder> {
            std::iter::from_fn(|| self.orders.try_recv().ok()).collect()
        }

        /// Freezes every pod whose timer is running, as the freezer would after the delay.
        async fn freeze_idle(&mut self) -> usize {
            let orders = self.orders();
            tokio::time::advance(AFTER).await;
            let mut frozen = 0;
            for order in orders {
                assert_eq!(order.action, FreezeAction::Freeze);
                if order.plan() == FreezePlan::Freeze {
                    order.frozen(Ok(Arc::from(format!("agent/{}", order.id))));
                    frozen += 1;
                }
            }
            frozen
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pod_freezes_and_a_request_waits_only_for_its_thaw() {
        let mut revision = freezing(0, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None)]);
        let timer = revision.orders();
        assert_eq!(timer.len(), 1, "idle from the start: its freeze timer runs");
        let served = lease(revision.revision.admit(Origin::Client));
        tokio::time::advance(AFTER).await;
        assert_eq!(timer[0].plan(), FreezePlan::Cancel, "a busy pod is not frozen");
        drop(served);
        assert_eq!(revision.freeze_idle().await, 1);
        assert_eq!(revision.revision.metrics.frozen_pods.get(), 1);

        let Admission::Queued(waiting, poke) = revision.revision.admit(Origin::Client) else {
            panic!("a frozen pod takes no request before its thaw")
        };
        assert_eq!(waiting.reason, WaitReason::Thaw);
        assert!(poke.is_none(), "a thaw is no cold start: the autoscaler is not poked");
        let thaws = revision.orders();
        assert_eq!(thaws.len(), 1);
        assert_eq!((thaws[0].action, &*thaws[0].pod.uid), (FreezeAction::Thaw, "uid-1"));
        assert!(thaws[0].thawed(Ok(()), Duration::from_millis(2)).is_none());
        assert!(matches!(waiting.granted().await, Some(Grant::Pod(_))));
        assert_eq!(revision.revision.metrics.cold_starts.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_arriving_while_its_pod_freezes_is_served_after_the_freeze_and_a_thaw() {
        let mut revision = freezing(0, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None)]);
        let orders = revision.orders();
        tokio::time::advance(AFTER).await;
        assert_eq!(orders[0].plan(), FreezePlan::Freeze);
        // The agent is freezing it when the request comes.
        let waiting = queued(revision.revision.admit(Origin::Client));
        assert_eq!(waiting.reason, WaitReason::Thaw);
        assert!(revision.orders().is_empty(), "no thaw before the freeze is done");
        orders[0].frozen(Ok(Arc::from("agent/1")));
        let thaws = revision.orders();
        assert_eq!(thaws.len(), 1);
        assert_eq!(thaws[0].action, FreezeAction::Thaw);
        thaws[0].thawed(Ok(()), Duration::from_millis(1));
        assert!(matches!(waiting.granted().await, Some(Grant::Pod(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_thaw_makes_the_pod_unusable_and_starts_a_cold_start() {
        let mut revision = freezing(0, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None)]);
        revision.freeze_idle().await;
        let waiting = queued(revision.revision.admit(Origin::Client));
        let thaw = revision.orders().pop().expect("a thaw");
        let poke = thaw.thawed(Err(()), Duration::from_millis(2000));
        let poke = poke.expect("the waiting request needs a pod start: the autoscaler is poked");
        assert_eq!(poke.queued, 1);
        assert_eq!(revision.revision.metrics.failed_thaws.get(), 1);
        assert_eq!(revision.revision.metrics.cold_starts.get(), 1);
        // A new pod starts and serves the request; none is lost.
        revision.start(&[pod(1, Some("agent/0")), pod(2, None)]);
        let Some(Grant::Pod(lease)) = waiting.granted().await else {
            panic!("the new pod serves the waiting request")
        };
        assert_eq!(lease.target.addr.ip(), IpAddr::from([10, 1, 0, 2]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_freeze_leaves_the_pod_serving() {
        let mut revision = freezing(0, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None)]);
        let orders = revision.orders();
        tokio::time::advance(AFTER).await;
        assert_eq!(orders[0].plan(), FreezePlan::Freeze);
        orders[0].frozen(Err(()));
        lease(revision.revision.admit(Origin::Client));
    }

    #[tokio::test(start_paused = true)]
    async fn as_many_frozen_pods_are_thawed_as_the_waiting_requests_need() {
        let mut revision = freezing(1, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None), pod(2, None), pod(3, None)]);
        assert_eq!(revision.freeze_idle().await, 3);
        let first = queued(revision.revision.admit(Origin::Client));
        assert_eq!(revision.orders().len(), 1, "one slot coming back covers one request");
        let second = queued(revision.revision.admit(Origin::Client));
        let thaws = revision.orders();
        assert_eq!(thaws.len(), 1, "the second request needs a second pod");
        let _third = queued(revision.revision.admit(Origin::Client));
        assert_eq!(revision.orders().len(), 1);
        thaws[0].thawed(Ok(()), Duration::from_millis(1));
        let Some(Grant::Pod(served)) = first.granted().await else {
            panic!("the first thawed pod serves the head of the queue")
        };
        drop(served);
        assert!(matches!(second.granted().await, Some(Grant::Pod(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_activator_holding_a_pods_slots_freezes_it_and_the_others_forward() {
        let me = IpAddr::from([10, 0, 0, 1]);
        let peer: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        let owned_by = |owner: IpAddr| {
            (1..=255u8)
                .find(|last| first_ranked(IpAddr::from([10, 1, 0, *last]), &[me, peer.ip()]) == Some(owner))
                .unwrap()
        };
        let mut revision = freezing(0, Peers::new(me, [peer]));
        let (mine, theirs) = (owned_by(me), owned_by(peer.ip()));
        revision.start(&[pod(mine, None), pod(theirs, None)]);
        let orders = revision.orders();
        assert_eq!(orders.len(), 1, "a freeze timer for its own pod only");
        assert_eq!(&*orders[0].pod.uid, format!("uid-{mine}"));
        tokio::time::advance(AFTER).await;
        assert_eq!(orders[0].plan(), FreezePlan::Freeze);
        orders[0].frozen(Ok(Arc::from("agent/1")));
        // The peer froze its own: this activator, seeing the mark, forwards to the peer instead of thawing it.
        revision
            .revision
            .set_endpoints(&[pod(mine, Some("agent/1")), pod(theirs, Some("agent/2"))]);
        let waiting = queued(revision.revision.admit(Origin::Client));
        let thaws = revision.orders();
        assert_eq!(thaws.len(), 1);
        assert_eq!(&*thaws[0].pod.uid, format!("uid-{mine}"), "it thaws only its own pod");
        drop(waiting);
        // With its own pod unusable, requests go to the peer that holds the other pod.
        thaws[0].thawed(Err(()), Duration::from_secs(2));
        assert!(matches!(
            revision.revision.admit(Origin::Client),
            Admission::Granted(Grant::Peer(addr)) if addr == peer
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn pods_a_leaving_activator_froze_are_thawed_by_the_one_that_takes_them_over() {
        let me = IpAddr::from([10, 0, 0, 1]);
        let mut revision = freezing(0, Peers::alone(me));
        // Another activator held the pod and froze it before it left: the pod carries its agent's mark.
        revision.start(&[pod(1, Some("agent/9"))]);
        let waiting = queued(revision.revision.admit(Origin::Client));
        assert_eq!(waiting.reason, WaitReason::Thaw);
        let thaw = revision.orders().into_iter().find(|o| o.action == FreezeAction::Thaw);
        let thaw = thaw.expect("the pod is thawed before any request goes to it");
        thaw.thawed(Ok(()), Duration::from_millis(1));
        // This activator never probed it: it does so now that the pod runs.
        let probe = revision.probes.try_recv().expect("a probe once thawed");
        probe.answered();
        assert!(matches!(waiting.granted().await, Some(Grant::Pod(_))));
        // A late update still showing the mark it cleared does not count as a freeze.
        revision.revision.set_endpoints(&[pod(1, Some("agent/9"))]);
        lease(revision.revision.admit(Origin::Client));
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_pod_thawed_by_its_restarted_agent_serves_again_without_a_thaw() {
        let mut revision = freezing(0, Peers::alone(IpAddr::from([10, 0, 0, 1])));
        revision.start(&[pod(1, None)]);
        revision.freeze_idle().await;
        // The mark appears, then goes: the agent restarted and thawed every pod.
        revision.revision.set_endpoints(&[pod(1, Some("agent/0"))]);
        revision.revision.set_endpoints(&[pod(1, None)]);
        lease(revision.revision.admit(Origin::Client));
        assert!(revision.orders().iter().all(|o| o.action == FreezeAction::Freeze));
    }
}
