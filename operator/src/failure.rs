//! Why a revision's pods cannot start or become ready: a pure function from the pods, as the scheduler and the kubelet
//! describe them in pod status, and the clock to one reason and a one-line message.
//!
//! Crashes, image pull failures, configuration errors and scheduling failures are reported as soon as the pod status
//! shows them; a pod that is merely slow is reported (ReadinessTimeout) once it has tried for the progress deadline.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use runway_api::conditions::{
    CONTAINER_CANNOT_START, CONTAINER_CONFIG_ERROR, CONTAINER_EXITS, IMAGE_PULL_FAILED, READINESS_TIMEOUT,
    UNSCHEDULABLE,
};
use runway_api::pods::{condition, has_stopped, is_ready};
use runway_api::{RevisionKey, names};

use crate::condition::ConditionStatus;

/// Label the Deployment controller puts on the pods of one pod template.
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Waiting reasons of a container whose image cannot be pulled.
const IMAGE_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];
/// Waiting reasons of a container that cannot be created from its configuration.
const CONFIG_REASONS: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];
/// Time between the kubelet's first Ready=False and Initialized=True of a pod that was never ready (both come with its
/// first status report; seconds apart at most).
const FIRST_REPORT_SLACK: Duration = Duration::from_secs(2);
/// Longest detail (termination message, log tail, kubelet message) kept in a message, in characters.
const MAX_DETAIL: usize = 300;

/// Why the pods cannot start or become ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// CamelCase, one of `runway_api::conditions::FAILURE_REASONS`.
    pub(crate) reason: &'static str,
    /// One line, e.g. `container exits with code 1 (DATABASE_URL is not set), restarted 3 times`.
    pub(crate) message: String,
}

/// What the pods of one revision say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    /// Why the pods of the newest template that are not ready cannot become ready, when known.
    pub(crate) failure: Option<Failure>,
    pub(crate) ready_pods: usize,
    /// While pods exist and none is ready: how long the newest of them has been starting (since its creation); None
    /// when a pod is ready, none exists, or the newest was ready before.
    pub(crate) unready_for: Option<Duration>,
    /// When the next pod that is not ready reaches the progress deadline, so that it is looked at again then even
    /// if nothing about it changes.
    pub(crate) recheck_in: Option<Duration>,
}

/// Diagnoses a revision's pods at `now`, given its progress deadline. Terminating and finished pods do not count.
pub(crate) fn diagnose<'a>(pods: impl IntoIterator<Item = &'a Pod>, now: Timestamp, deadline: Duration) -> Diagnosis {
    let mut live: Vec<&Pod> = pods.into_iter().filter(|pod| is_live(pod)).collect();
    // Newest first; the name breaks ties so the result does not depend on the order of the store.
    live.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    // How long a pod has been starting; None for a pod that is ready, or that was and is only unready now.
    let starting_for = |pod: &Pod| {
        (!is_ready(pod) && !was_ready(pod)).then(|| created(pod).map_or(Duration::ZERO, |at| elapsed(at, now)))
    };
    let ready_pods = live.iter().filter(|pod| is_ready(pod)).count();
    let newest_template = live.first().and_then(|pod| template_hash(pod));
    let failure = live
        .iter()
        .filter(|pod| !is_ready(pod) && template_hash(pod) == newest_template)
        .find_map(|pod| pod_failure(pod, starting_for(pod), deadline));
    let unready_for = if ready_pods == 0 {
        live.first().and_then(|pod| starting_for(pod))
    } else {
        None
    };
    let recheck_in = live
        .iter()
        .filter_map(|pod| starting_for(pod))
        .filter_map(|age| deadline.checked_sub(age))
        .filter(|left| !left.is_zero())
        .min();
    Diagnosis {
        failure,
        ready_pods,
        unready_for,
        recheck_in,
    }
}

/// Whether the pod counts: not being deleted and not finished (the ReplicaSet replaces evicted pods).
fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !has_stopped(pod)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

fn template_hash(pod: &Pod) -> Option<&String> {
    pod.labels().get(TEMPLATE_HASH_LABEL)
}

/// Whether a pod that is not ready was ready before: the kubelet sets Ready=False when it first reports the pod,
/// together with Initialized=True (or before it, with init containers), and only moves its transition time when
/// Ready changes, so a later transition means the pod was ready in between. Such a pod is not starting: it gets no
/// ReadinessTimeout and does not count towards giving up.
fn was_ready(pod: &Pod) -> bool {
    let since = |type_| condition(pod, type_).and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    match (since("Ready"), since("Initialized")) {
        (Some(unready), Some(initialized)) => elapsed(initialized, unready) > FIRST_REPORT_SLACK,
        _ => false,
    }
}

/// The first cause found for one pod that is not ready: scheduling, then init containers, then containers, then
/// the deadline (for a pod that has been starting that long).
fn pod_failure(pod: &Pod, starting_for: Option<Duration>, deadline: Duration) -> Option<Failure> {
    if let Some(c) = condition(pod, "PodScheduled")
        .filter(|c| c.status == ConditionStatus::False.as_str() && c.reason.as_deref() == Some("Unschedulable"))
    {
        return Some(Failure {
            reason: UNSCHEDULABLE,
            message: format!(
                "no node can run the pod: {}",
                detail(c.message.as_deref().unwrap_or_default())
            ),
        });
    }
    let status = pod.status.as_ref();
    let init = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let main = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    // Since when the pod has been unready: a container that exited before is no news after that.
    let unready_since = condition(pod, "Ready").and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let several = main.len() > 1;
    let named = init
        .iter()
        .map(|s| (format!("init container \"{}\"", s.name), s))
        .chain(main.iter().map(|s| {
            let who = if several {
                format!("container \"{}\"", s.name)
            } else {
                "container".to_owned()
            };
            (who, s)
        }));
    for (who, container) in named {
        if let Some(failure) = container_failure(&who, container, unready_since) {
            return Some(failure);
        }
    }
    starting_for
        .is_some_and(|age| age >= deadline)
        .then(|| readiness_timeout(main, deadline))
}

fn container_failure(who: &str, status: &ContainerStatus, unready_since: Option<Timestamp>) -> Option<Failure> {
    let state = status.state.as_ref();
    let last_terminated = status.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref().unwrap_or_default();
        if IMAGE_REASONS.contains(&reason) {
            return Some(Failure {
                reason: IMAGE_PULL_FAILED,
                message: format!(
                    "image \"{}\" cannot be pulled: {}",
                    status.image,
                    pull_detail(reason, message)
                ),
            });
        }
        if CONFIG_REASONS.contains(&reason) {
            return Some(Failure {
                reason: CONTAINER_CONFIG_ERROR,
                message: format!("{who} cannot be created: {}", or_reason(message, reason)),
            });
        }
        if reason == "RunContainerError" {
            return Some(Failure {
                reason: CONTAINER_CANNOT_START,
                message: format!(
                    "{who} cannot start ({}){}",
                    start_error(or_reason(message, reason)),
                    restarts(status.restart_count)
                ),
            });
        }
        if reason == "CrashLoopBackOff" {
            return Some(match last_terminated {
                Some(terminated) => exited(who, terminated, status.restart_count),
                None => Failure {
                    reason: CONTAINER_EXITS,
                    message: format!("{who} keeps exiting{}", restarts(status.restart_count)),
                },
            });
        }
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        return Some(exited(who, terminated, status.restart_count));
    }
    // Running again but not ready: the last exit counts when it happened while the pod was already unready (a crash
    // loop), not when it is an old crash of a pod that later served and is only briefly unready now.
    let running = state.is_some_and(|s| s.running.is_some());
    let recent = |t: &&ContainerStateTerminated| match (t.finished_at.as_ref(), unready_since) {
        (Some(finished), Some(since)) => finished.0 >= since,
        _ => true,
    };
    match last_terminated.filter(recent) {
        Some(terminated) if running && !status.ready => Some(exited(who, terminated, status.restart_count)),
        _ => None,
    }
}

/// A container that ended: it could not start (the runtime's StartError), or it exited with a code.
fn exited(who: &str, terminated: &ContainerStateTerminated, restart_count: i32) -> Failure {
    let reason = terminated.reason.as_deref().unwrap_or_default();
    let message = terminated.message.as_deref().unwrap_or_default().trim();
    if reason == "StartError" || reason == "ContainerCannotRun" {
        return Failure {
            reason: CONTAINER_CANNOT_START,
            message: format!(
                "{who} cannot start ({}){}",
                start_error(or_reason(message, reason)),
                restarts(restart_count)
            ),
        };
    }
    let explained = match (reason, message) {
        ("" | "Error", "") => String::new(),
        ("" | "Error", message) => format!(" ({})", detail(message)),
        (reason, "") => format!(" ({reason})"),
        (reason, message) => format!(" ({reason}: {})", detail(message)),
    };
    Failure {
        reason: CONTAINER_EXITS,
        message: format!(
            "{who} exits with code {}{explained}{}",
            terminated.exit_code,
            restarts(restart_count)
        ),
    }
}

fn readiness_timeout(containers: &[ContainerStatus], deadline: Duration) -> Failure {
    let how = containers.iter().find(|c| !c.ready).map_or_else(
        || "its readiness gates never passed".to_owned(),
        |c| {
            let state = c.state.as_ref();
            match state.and_then(|s| s.waiting.as_ref()) {
                Some(waiting) => {
                    let reason = waiting.reason.as_deref().unwrap_or("Waiting");
                    match waiting.message.as_deref().filter(|m| !m.trim().is_empty()) {
                        Some(message) => format!("container \"{}\" is still {reason}: {}", c.name, detail(message)),
                        None => format!("container \"{}\" is still {reason}", c.name),
                    }
                }
                None if state.is_some_and(|s| s.running.is_some()) => {
                    format!("container \"{}\" runs but its readiness probe never passed", c.name)
                }
                None => format!("container \"{}\" is not ready", c.name),
            }
        },
    );
    let how = if containers.is_empty() {
        "its containers never started".to_owned()
    } else {
        how
    };
    Failure {
        reason: READINESS_TIMEOUT,
        message: format!(
            "no pod became ready within progressDeadlineSeconds ({} s): {how}",
            deadline.as_secs()
        ),
    }
}

fn restarts(count: i32) -> String {
    match count {
        0 => String::new(),
        1 => ", restarted 1 time".to_owned(),
        n => format!(", restarted {n} times"),
    }
}

fn or_reason<'a>(message: &'a str, reason: &'a str) -> &'a str {
    if message.trim().is_empty() { reason } else { message }
}

/// The pull error without the kubelet's and gRPC's wrapping: `Back-off pulling image "x": ErrImagePull: rpc error:
/// code = NotFound desc = failed to pull and unpack image ...` becomes `failed to pull and unpack image ...`.
fn pull_detail(reason: &str, message: &str) -> String {
    let mut rest = message.trim();
    if let Some(after) = rest
        .strip_prefix("Back-off pulling image \"")
        .and_then(|r| r.split_once("\""))
    {
        rest = after.1.trim_start_matches(':').trim_start();
    }
    for prefix in ["ErrImagePull: ", "RegistryUnavailable: ", "SignatureValidationFailed: "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    detail(or_reason(strip_rpc(rest), reason))
}

/// `rpc error: code = X desc = message` becomes `message`.
fn strip_rpc(message: &str) -> &str {
    match message.strip_prefix("rpc error: code = ") {
        Some(rest) => rest.split_once(" desc = ").map_or(message, |(_, desc)| desc),
        None => message,
    }
}

/// The runtime's start error without its wrapping: `failed to create containerd task: failed to create shim task:
/// OCI runtime create failed: runc create failed: unable to start container process: error during container init:
/// exec: "/nope": stat /nope: no such file or directory: unknown` becomes `exec: "/nope": stat /nope: no such file
/// or directory`.
fn start_error(message: &str) -> String {
    let mut rest = strip_rpc(message.trim());
    for marker in ["unable to start container process: ", "error during container init: "] {
        if let Some((_, after)) = rest.rsplit_once(marker) {
            rest = after;
        }
    }
    detail(rest.strip_suffix(": unknown").unwrap_or(rest))
}

/// Makes a message one line (a log tail has several) of at most `MAX_DETAIL` characters, keeping the end, where
/// the error that ended a log usually is.
fn detail(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let count = line.chars().count();
    if count <= MAX_DETAIL {
        return line;
    }
    let tail: String = line.chars().skip(count - (MAX_DETAIL - 3)).collect();
    format!("...{tail}")
}

/// The revision a pod belongs to (its namespace and the value of the revision label).
pub(crate) fn revision_of(pod: &Pod) -> Option<RevisionKey> {
    Some(RevisionKey::new(
        pod.namespace()?,
        pod.labels().get(names::REVISION_LABEL)?.clone(),
    ))
}

/// Keeps only what diagnosing needs of a watched pod (metadata and status) and the node agent's frozen mark, which
/// the status counts, to keep the operator's cache small.
pub(crate) fn trim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    let mark = runway_api::pods::frozen_mark(pod).map(str::to_owned);
    pod.metadata.annotations = mark.map(|mark| [(runway_api::names::FROZEN_ANNOTATION.to_owned(), mark)].into());
    pod.spec = None;
}

/// A hash of what diagnosing and the status read from a pod: a pod event that leaves it unchanged (a probe time, an
/// IP) does not start a reconcile; a freeze or a thaw does.
pub(crate) fn fingerprint(pod: &Pod) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    pod.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    runway_api::pods::frozen_mark(pod).is_some().hash(&mut hasher);
    let Some(status) = pod.status.as_ref() else {
        return Some(hasher.finish());
    };
    status.phase.hash(&mut hasher);
    for c in status.conditions.iter().flatten() {
        (&c.type_, &c.status, &c.reason).hash(&mut hasher);
    }
    let containers = status.init_container_statuses.iter().chain(&status.container_statuses);
    for c in containers.flatten() {
        (&c.name, c.ready, c.restart_count).hash(&mut hasher);
        let state = c.state.as_ref();
        state
            .and_then(|s| s.waiting.as_ref())
            .map(|w| &w.reason)
            .hash(&mut hasher);
        state
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
            .hash(&mut hasher);
        state.is_some_and(|s| s.running.is_some()).hash(&mut hasher);
    }
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    //! Pod statuses as the kubelet and the scheduler of Kubernetes 1.34 write them (containerd and runc).

    use super::*;
    use serde_json::{Value, json};

    const NOW: &str = "2025-06-01T12:02:00Z";
    const DEADLINE: Duration = Duration::from_secs(120);

    fn at(time: &str) -> Timestamp {
        time.parse().unwrap()
    }

    /// A pod of Service hello created at `created` with this status.
    fn pod(name: &str, created: &str, hash: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "creationTimestamp": created,
                "labels": {"serving.runway.dev/service": "hello", "pod-template-hash": hash},
            },
            "status": status,
        }))
        .unwrap()
    }

    fn one(status: Value) -> Diagnosis {
        let p = pod("hello-5d8f7c9b4-x2x9k", "2025-06-01T12:00:00Z", "5d8f7c9b4", status);
        diagnose([&p], at(NOW), DEADLINE)
    }

    fn failure(status: Value) -> Option<(&'static str, String)> {
        one(status).failure.map(|f| (f.reason, f.message))
    }

    fn not_ready() -> Value {
        json!([
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2025-06-01T12:00:02Z"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2025-06-01T12:00:00Z"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "2025-06-01T12:00:00Z",
             "reason": "ContainersNotReady", "message": "containers with unready status: [app]"},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": "2025-06-01T12:00:00Z",
             "reason": "ContainersNotReady", "message": "containers with unready status: [app]"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-06-01T12:00:00Z"}
        ])
    }

    fn running(container: Value) -> Value {
        json!({"phase": "Running", "conditions": not_ready(), "containerStatuses": [container]})
    }

    fn pending(container: Value) -> Value {
        json!({"phase": "Pending", "conditions": not_ready(), "containerStatuses": [container]})
    }

    #[test]
    fn a_missing_command_cannot_start_with_the_runtime_error_unwrapped() {
        let status = running(json!({
            "name": "app", "image": "runway.local/hello:0.1.0", "imageID": "", "ready": false, "started": false,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=app pod=hello-5d8f7c9b4-x2x9k_default(0f4f6c1e-6b0a-4c53-9a55-2a1f1b0c9d11)"}},
            "lastState": {"terminated": {"exitCode": 128, "reason": "StartError",
                "message": "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: exec: \"/nope\": stat /nope: no such file or directory: unknown",
                "startedAt": "1970-01-01T00:00:00Z", "finishedAt": "2025-06-01T12:01:10Z",
                "containerID": "containerd://4b1c"}}
        }));
        assert_eq!(
            failure(status),
            Some((
                CONTAINER_CANNOT_START,
                "container cannot start (exec: \"/nope\": stat /nope: no such file or directory), restarted 3 times"
                    .into()
            ))
        );
    }

    #[test]
    fn a_crash_loop_gives_the_exit_code_the_log_tail_and_the_restarts() {
        let status = running(json!({
            "name": "app", "image": "runway.local/hello:0.1.0", "imageID": "", "ready": false, "started": false,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=app pod=hello-5d8f7c9b4-x2x9k_default(0f4f)"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "message": "2025-06-01T12:01:30Z INFO starting\nError: DATABASE_URL is not set\n",
                "startedAt": "2025-06-01T12:01:30Z", "finishedAt": "2025-06-01T12:01:31Z"}}
        }));
        assert_eq!(
            failure(status),
            Some((
                CONTAINER_EXITS,
                "container exits with code 1 (2025-06-01T12:01:30Z INFO starting; Error: DATABASE_URL is not set), restarted 4 times".into()
            ))
        );
    }

    #[test]
    fn an_exit_without_message_names_the_code_and_an_oom_kill_its_reason() {
        let terminated = |reason: &str, code: i32| {
            pending(json!({
                "name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason,
                    "startedAt": "2025-06-01T12:00:05Z", "finishedAt": "2025-06-01T12:00:06Z"}}
            }))
        };
        assert_eq!(
            failure(terminated("Error", 2)),
            Some((CONTAINER_EXITS, "container exits with code 2".into()))
        );
        assert_eq!(
            failure(terminated("OOMKilled", 137)),
            Some((CONTAINER_EXITS, "container exits with code 137 (OOMKilled)".into()))
        );
    }

    #[test]
    fn a_running_restart_of_a_crash_loop_still_counts_but_an_old_crash_does_not() {
        let container = |finished: &str| {
            json!({
                "name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 1,
                "state": {"running": {"startedAt": "2025-06-01T12:01:50Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": "2025-06-01T11:00:00Z", "finishedAt": finished}}
            })
        };
        // Unready since 12:00:00 and exited at 12:01:40: part of the current attempt.
        assert_eq!(
            failure(running(container("2025-06-01T12:01:40Z"))).map(|f| f.0),
            Some(CONTAINER_EXITS)
        );
        // Exited at 11:30, before the pod last became unready: it served since, and is only briefly unready now (not
        // starting either, so it gets no ReadinessTimeout).
        let mut status = running(container("2025-06-01T11:30:00Z"));
        status["conditions"][2]["lastTransitionTime"] = json!("2025-06-01T12:01:55Z");
        assert_eq!(failure(status), None);
    }

    #[test]
    fn a_missing_image_is_a_pull_failure_with_the_kubelets_last_pull_error() {
        let pull = |reason: &str, message: &str| {
            pending(json!({
                "name": "app", "image": "runway.local/nope:0.1.0", "imageID": "", "ready": false,
                "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": reason, "message": message}}
            }))
        };
        let error = "rpc error: code = NotFound desc = failed to pull and unpack image \"runway.local/nope:0.1.0\": failed to resolve reference \"runway.local/nope:0.1.0\": runway.local/nope:0.1.0: not found";
        let expected = "image \"runway.local/nope:0.1.0\" cannot be pulled: failed to pull and unpack image \"runway.local/nope:0.1.0\": failed to resolve reference \"runway.local/nope:0.1.0\": runway.local/nope:0.1.0: not found";
        assert_eq!(
            failure(pull("ErrImagePull", error)),
            Some((IMAGE_PULL_FAILED, expected.into()))
        );
        let back_off = format!("Back-off pulling image \"runway.local/nope:0.1.0\": ErrImagePull: {error}");
        assert_eq!(
            failure(pull("ImagePullBackOff", &back_off)),
            Some((IMAGE_PULL_FAILED, expected.into())),
            "the back-off carries the same error"
        );
        assert_eq!(
            failure(pull(
                "ImagePullBackOff",
                "Back-off pulling image \"runway.local/nope:0.1.0\""
            )),
            Some((
                IMAGE_PULL_FAILED,
                "image \"runway.local/nope:0.1.0\" cannot be pulled: ImagePullBackOff".into()
            )),
            "kubelets before 1.33 say no more"
        );
        assert_eq!(
            failure(pull(
                "InvalidImageName",
                "Failed to apply default image tag \"Hello:latest!\": couldn't parse image name \"Hello:latest!\": invalid reference format"
            ))
            .map(|f| f.0),
            Some(IMAGE_PULL_FAILED)
        );
        assert_eq!(
            failure(pull(
                "ErrImageNeverPull",
                "Container image \"runway.local/nope:0.1.0\" is not present with pull policy of Never"
            )),
            Some((
                IMAGE_PULL_FAILED,
                "image \"runway.local/nope:0.1.0\" cannot be pulled: Container image \"runway.local/nope:0.1.0\" is not present with pull policy of Never".into()
            ))
        );
    }

    #[test]
    fn a_missing_secret_key_is_a_configuration_error() {
        let config = |reason: &str, message: &str| {
            pending(json!({
                "name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}}
            }))
        };
        assert_eq!(
            failure(config(
                "CreateContainerConfigError",
                "couldn't find key PASSWORD in Secret default/db"
            )),
            Some((
                CONTAINER_CONFIG_ERROR,
                "container cannot be created: couldn't find key PASSWORD in Secret default/db".into()
            ))
        );
        assert_eq!(
            failure(config("CreateContainerConfigError", "secret \"db\" not found")).map(|f| f.1),
            Some("container cannot be created: secret \"db\" not found".into())
        );
        assert_eq!(
            failure(config(
                "CreateContainerError",
                "failed to generate container \"4b1c\" spec: failed to apply OCI options: no command specified"
            ))
            .map(|f| f.0),
            Some(CONTAINER_CONFIG_ERROR)
        );
    }

    #[test]
    fn an_unschedulable_pod_gives_the_schedulers_message() {
        let status = json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastTransitionTime": "2025-06-01T12:00:00Z",
                "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."}]
        });
        assert_eq!(
            failure(status),
            Some((
                UNSCHEDULABLE,
                "no node can run the pod: 0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".into()
            ))
        );
    }

    #[test]
    fn a_readiness_probe_that_never_passes_times_out_at_the_deadline_only() {
        let container = json!({
            "name": "app", "image": "hello", "imageID": "", "ready": false, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2025-06-01T12:00:03Z"}}
        });
        let p = pod("hello-1", "2025-06-01T12:00:00Z", "a", running(container));
        let early = diagnose([&p], at("2025-06-01T12:01:30Z"), DEADLINE);
        assert_eq!(early.failure, None);
        assert_eq!(early.unready_for, Some(Duration::from_secs(90)));
        assert_eq!(early.recheck_in, Some(Duration::from_secs(30)));
        let late = diagnose([&p], at("2025-06-01T12:02:00Z"), DEADLINE);
        assert_eq!(
            late.failure,
            Some(Failure {
                reason: READINESS_TIMEOUT,
                message: "no pod became ready within progressDeadlineSeconds (120 s): container \"app\" runs but its readiness probe never passed".into()
            })
        );
        assert_eq!(late.recheck_in, None);
    }

    #[test]
    fn a_pod_still_creating_is_no_failure_until_the_deadline() {
        let status = pending(json!({
            "name": "app", "image": "big:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}
        }));
        let p = pod("hello-1", "2025-06-01T12:01:00Z", "a", status);
        assert_eq!(diagnose([&p], at(NOW), DEADLINE).failure, None);
        let timed_out = diagnose([&p], at("2025-06-01T12:03:00Z"), DEADLINE).failure.unwrap();
        assert_eq!(
            timed_out.message,
            "no pod became ready within progressDeadlineSeconds (120 s): container \"app\" is still ContainerCreating"
        );
    }

    #[test]
    fn a_failing_init_container_or_sidecar_is_named() {
        let status = json!({
            "phase": "Pending", "conditions": not_ready(),
            "initContainerStatuses": [{"name": "migrate", "image": "tools", "imageID": "", "ready": false,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": "relation \"users\" does not exist",
                    "finishedAt": "2025-06-01T12:01:00Z"}}}],
            "containerStatuses": [{"name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]
        });
        assert_eq!(
            failure(status).map(|f| f.1),
            Some(
                "init container \"migrate\" exits with code 3 (relation \"users\" does not exist), restarted 2 times"
                    .into()
            )
        );
        let two = json!({
            "phase": "Running", "conditions": not_ready(),
            "containerStatuses": [
                {"name": "app", "image": "hello", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2025-06-01T12:00:02Z"}}},
                {"name": "proxy", "image": "proxy", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "configmap \"proxy\" not found"}}}
            ]
        });
        assert_eq!(
            failure(two).map(|f| f.1),
            Some("container \"proxy\" cannot be created: configmap \"proxy\" not found".into())
        );
    }

    #[test]
    fn a_long_log_tail_keeps_its_end_on_one_line() {
        let long = format!("{}\npanic: boom", "x".repeat(400));
        let message = detail(&long);
        assert_eq!(message.chars().count(), MAX_DETAIL);
        assert!(
            message.starts_with("...") && message.ends_with("; panic: boom"),
            "{message}"
        );
    }

    fn ready_pod(name: &str, created: &str, hash: &str) -> Pod {
        pod(
            name,
            created,
            hash,
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": created}],
                "containerStatuses": [{"name": "app", "image": "hello", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"running": {"startedAt": created}}}]}),
        )
    }

    fn crashing_pod(name: &str, created: &str, hash: &str) -> Pod {
        pod(
            name,
            created,
            hash,
            pending(
                json!({"name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2025-06-01T12:01:50Z"}}}),
            ),
        )
    }

    #[test]
    fn a_ready_pod_stops_the_clock_and_old_templates_are_not_blamed() {
        // A rollout: the old template's pod serves, the new one crashes.
        let old = ready_pod("hello-old", "2025-06-01T10:00:00Z", "old");
        let new = crashing_pod("hello-new", "2025-06-01T12:01:00Z", "new");
        let d = diagnose([&old, &new], at(NOW), DEADLINE);
        assert_eq!((d.ready_pods, d.unready_for), (1, None));
        assert_eq!(d.failure.map(|f| f.reason), Some(CONTAINER_EXITS));
        // The fix rolls out: the newest template's pod starts, the old crashing pod is no longer the news.
        let fixed = pod(
            "hello-fixed",
            "2025-06-01T12:01:55Z",
            "fixed",
            pending(
                json!({"name": "app", "image": "hello", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}),
            ),
        );
        let d = diagnose([&new, &fixed], at(NOW), DEADLINE);
        assert_eq!(d.failure, None);
        assert_eq!(d.unready_for, Some(Duration::from_secs(5)), "the newest pod's age");
    }

    #[test]
    fn a_pod_that_served_and_is_unready_now_is_not_starting() {
        let container = json!({
            "name": "app", "image": "hello", "imageID": "", "ready": false, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2025-06-01T09:00:02Z"}}
        });
        let mut status = running(container);
        // Initialized at 09:00, unready since 11:50: ready in between, failing its probe for 12 minutes now.
        status["conditions"][1]["lastTransitionTime"] = json!("2025-06-01T09:00:00Z");
        status["conditions"][2]["lastTransitionTime"] = json!("2025-06-01T11:50:00Z");
        let p = pod("hello-1", "2025-06-01T09:00:00Z", "a", status);
        let d = diagnose([&p], at(NOW), DEADLINE);
        assert_eq!((d.failure, d.unready_for, d.recheck_in), (None, None, None));
    }

    #[test]
    fn terminating_and_evicted_pods_do_not_count() {
        let mut leaving = crashing_pod("hello-a", "2025-06-01T12:00:00Z", "a");
        leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
        let evicted = pod(
            "hello-b",
            "2025-06-01T12:00:00Z",
            "a",
            json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
        );
        assert_eq!(diagnose([&leaving, &evicted], at(NOW), DEADLINE), Diagnosis::default());
    }

    #[test]
    fn the_fingerprint_ignores_what_diagnosing_does_not_read() {
        let p = crashing_pod("hello-a", "2025-06-01T12:00:00Z", "a");
        let mut moved = p.clone();
        moved.status.as_mut().unwrap().pod_ip = Some("10.0.0.9".into());
        assert_eq!(fingerprint(&p), fingerprint(&moved));
        let mut restarted = p.clone();
        restarted.status.as_mut().unwrap().container_statuses.as_mut().unwrap()[0].restart_count = 3;
        assert_ne!(fingerprint(&p), fingerprint(&restarted));
        // A freeze: the status counts frozen pods, so the mark is kept through the trim and changes the fingerprint.
        let mut frozen = p.clone();
        frozen.metadata.annotations = Some(
            [
                (
                    runway_api::names::FROZEN_ANNOTATION.to_owned(),
                    "0123456789abcdef/1".to_owned(),
                ),
                ("other".to_owned(), "dropped".to_owned()),
            ]
            .into(),
        );
        trim(&mut frozen);
        assert_eq!(frozen.metadata.annotations.as_ref().map(|a| a.len()), Some(1));
        assert_ne!(fingerprint(&p), fingerprint(&frozen));
    }

    #[test]
    fn a_pod_names_its_revision() {
        let mut p = ready_pod("hello-a", "2025-06-01T12:00:00Z", "a");
        assert_eq!(revision_of(&p), None, "a pod of the release before revisions");
        p.labels_mut()
            .insert(names::REVISION_LABEL.into(), "hello-00001".into());
        assert_eq!(revision_of(&p), Some(RevisionKey::new("default", "hello-00001")));
    }
}
