//! Events about Services, visible in `kubectl describe rsvc`: what the reconciler and the autoscaler did.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use runway_api::Service;
use tracing::warn;

/// What happened, for one event.
pub(crate) struct Happening<'a> {
    pub(crate) type_: EventType,
    /// What was being done: Reconcile or Scale.
    pub(crate) action: &'a str,
    /// CamelCase outcome, e.g. Created or ScaledUp.
    pub(crate) reason: &'a str,
    pub(crate) note: String,
    /// The child object it concerns, if any; this also keeps events about different children apart.
    pub(crate) related: Option<ObjectReference>,
}

/// Publishes an event about the Service; a failure to publish is logged, never fatal.
pub(crate) async fn publish(recorder: &Recorder, service: &Service, happening: Happening<'_>) {
    let event = Event {
        type_: happening.type_,
        reason: happening.reason.to_owned(),
        note: Some(happening.note),
        action: happening.action.to_owned(),
        secondary: happening.related,
    };
    if let Err(e) = recorder.publish(&event, &service.object_ref(&())).await {
        warn!(%e, reason = happening.reason, "publishing an event");
    }
}
