//! Upgrade from the release before revisions: the pure decisions (`service/upgrade.rs` acts on them). A Service
//! that release reconciled has a Deployment `{service}` and a headless Service `{service}-pods`, both controlled by
//! the Service itself, and pods labelled with the Service only. The reconciler makes the Service's first revision,
//! marks it with [`UPGRADE_ANNOTATION`] and labels the old pods with it: the new activators route to them at once
//! (they also appear in the revision's pods' Service), while the previous activators keep routing through
//! `{service}-pods`, which selects them too (they carry the Service's label).
//!
//! Then the old pods are handed over without a restart when they run exactly the pod template the revision's
//! Deployment would (the API server's dry run says so, defaults included): the old Deployment is deleted with its
//! ReplicaSet orphaned, the ReplicaSet and its template get the revision's label, and the revision's Deployment,
//! created after that, adopts it as its own current ReplicaSet (its template matches). When the templates differ,
//! the revision's Deployment starts its own pods with as many replicas, and the old Deployment goes once the
//! revision is ready, its pods with it. Either way `{service}-pods` goes once the revision is ready, and the mark
//! with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::ResourceExt;
use runway_api::{Revision, names};

use crate::condition::ConditionStatus;

/// Marks the Service's first revision while objects of the release before revisions are left; its value names the
/// previous release's Deployment. Only the reconciler reads it.
pub(crate) const UPGRADE_ANNOTATION: &str = "serving.runway.dev/upgraded-from";

/// The label the Deployment controller gives each ReplicaSet and its pods: a hash of the template it was made from.
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The previous release's Deployment's replicas: the first revision starts with as many.
pub(crate) fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Whether `revision` carries the upgrade's mark.
pub(crate) fn upgrading(revision: &Revision) -> bool {
    revision.annotations().contains_key(UPGRADE_ANNOTATION)
}

/// What the previous release's Deployment allows before the first revision's own Deployment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handover {
    /// It is still rolling out, scaling or going away: look again shortly.
    Wait,
    /// Its rollout is complete: its pods can be handed over if their template is the revision's.
    Ready,
    /// It runs no pod, or its rollout failed: the revision starts pods of its own.
    Replace,
}

/// Decides from the Deployment's spec and status. Nobody scales the old Deployment any more, so one that is not yet
/// settled settles within seconds, unless its rollout failed.
pub(crate) fn handover(deployment: &Deployment) -> Handover {
    if deployment.metadata.deletion_timestamp.is_some() {
        return Handover::Wait;
    }
    let wanted = replicas(deployment);
    let status = deployment.status.clone().unwrap_or_default();
    let failed = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing"
            && c.status == ConditionStatus::False.as_str()
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if wanted == 0 || failed {
        return Handover::Replace;
    }
    let observed = status.observed_generation >= deployment.metadata.generation;
    let rolled_out = status.replicas == Some(wanted) && status.updated_replicas == Some(wanted);
    if observed && rolled_out {
        Handover::Ready
    } else {
        Handover::Wait
    }
}

/// Whether the previous release's pods run what revision `revision`'s Deployment would run: its template with the
/// revision's label is the one the API server's dry run of that Deployment returned (defaults included), which is
/// also how the Deployment controller recognises a ReplicaSet as its current one.
pub(crate) fn same_pods(legacy: &Deployment, revision_deployment: &Deployment, revision: &str) -> bool {
    let template = |deployment: &Deployment| deployment.spec.as_ref().map(|s| s.template.clone());
    let relabelled = template(legacy).map(|mut t| {
        labels_of(&mut t).insert(names::REVISION_LABEL.to_owned(), revision.to_owned());
        t
    });
    let unhashed = |t: Option<PodTemplateSpec>| {
        t.map(|mut t| {
            labels_of(&mut t).remove(TEMPLATE_HASH_LABEL);
            t
        })
    };
    let revision_template = template(revision_deployment);
    revision_template.is_some() && unhashed(relabelled) == unhashed(revision_template)
}

fn labels_of(template: &mut PodTemplateSpec) -> &mut BTreeMap<String, String> {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
}

/// The previous release's ReplicaSets left without a controller once its Deployment was deleted with them orphaned,
/// sorted by what becomes of them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Orphans {
    /// The one that runs the pods, not yet labelled with the revision.
    pub(crate) to_label: Option<String>,
    /// Its replicas once it is labelled: the revision's Deployment, created with as many, adopts it.
    pub(crate) labelled: Option<i32>,
    /// Earlier templates' ReplicaSets (without pods), and any other that runs pods: deleted.
    pub(crate) stale: Vec<String>,
}

/// Sorts ReplicaSets of the Service (its label) without a controller, for revision `revision`.
pub(crate) fn orphans(replica_sets: &[ReplicaSet], revision: &str) -> Orphans {
    let mut sorted = Orphans::default();
    let mut candidates: Vec<(&ReplicaSet, i32)> = replica_sets
        .iter()
        .filter(|rs| !rs.owner_references().iter().any(|o| o.controller == Some(true)))
        .map(|rs| (rs, rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)))
        .collect();
    // The most pods first: with several, the one kept is the one whose loss would cost the most capacity.
    candidates.sort_by_key(|(_, replicas)| -replicas);
    for (rs, replicas) in candidates {
        match rs.labels().get(names::REVISION_LABEL).map(String::as_str) {
            Some(labelled) if labelled == revision => {
                sorted.labelled.get_or_insert(replicas);
            }
            // Another revision's: not the previous release's.
            Some(_) => {}
            None if replicas > 0 && sorted.to_label.is_none() && sorted.labelled.is_none() => {
                sorted.to_label = Some(rs.name_any());
            }
            None => sorted.stale.push(rs.name_any()),
        }
    }
    sorted
}

/// The previous release's pods of Service `service` not yet labelled with a revision.
pub(crate) fn unlabelled_pods(pods: &[Arc<Pod>], namespace: &str, service: &str) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|pod| {
            let labels = pod.labels();
            pod.namespace().as_deref() == Some(namespace)
                && labels.get(names::SERVICE_LABEL).map(String::as_str) == Some(service)
                && !labels.contains_key(names::REVISION_LABEL)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, labels: &[(&str, &str)]) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
        Arc::new(pod)
    }

    /// A Deployment of the previous release at `generation` wanting `replicas`, with `status` as JSON.
    fn deployment(replicas: i32, generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hello", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn only_a_rolled_out_deployment_hands_its_pods_over() {
        let rolled_out = serde_json::json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3});
        assert_eq!(handover(&deployment(3, 2, rolled_out.clone())), Handover::Ready);
        let stale_status = serde_json::json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3});
        assert_eq!(handover(&deployment(3, 2, stale_status)), Handover::Wait);
        let rolling = serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1});
        assert_eq!(handover(&deployment(3, 2, rolling)), Handover::Wait);
        let scaling = serde_json::json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2});
        assert_eq!(handover(&deployment(3, 2, scaling)), Handover::Wait);
        assert_eq!(handover(&deployment(3, 2, serde_json::json!({}))), Handover::Wait);
        let mut going = deployment(3, 2, rolled_out.clone());
        going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(handover(&going), Handover::Wait, "being deleted with its pods orphaned");
    }

    #[test]
    fn a_deployment_without_pods_or_with_a_failed_rollout_is_replaced() {
        let idle = serde_json::json!({"observedGeneration": 2});
        assert_eq!(handover(&deployment(0, 2, idle)), Handover::Replace);
        let failed = serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        assert_eq!(handover(&deployment(3, 2, failed)), Handover::Replace);
    }

    /// A Deployment whose pod template has `labels` and runs `image`.
    fn with_template(labels: serde_json::Value, image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "any"},
            "spec": {"selector": {}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]},
            }},
        }))
        .unwrap()
    }

    #[test]
    fn the_pods_are_the_revisions_when_only_the_revision_label_differs() {
        let legacy = with_template(serde_json::json!({names::SERVICE_LABEL: "hello"}), "hello:1");
        let revision = |image| {
            with_template(
                serde_json::json!({names::SERVICE_LABEL: "hello", names::REVISION_LABEL: "hello-00001"}),
                image,
            )
        };
        assert!(same_pods(&legacy, &revision("hello:1"), "hello-00001"));
        assert!(
            !same_pods(&legacy, &revision("hello:2"), "hello-00001"),
            "another image"
        );
        assert!(
            !same_pods(&legacy, &revision("hello:1"), "hello-00002"),
            "another revision's label"
        );
        let extra = with_template(
            serde_json::json!({names::SERVICE_LABEL: "hello", names::REVISION_LABEL: "hello-00001", "team": "a"}),
            "hello:1",
        );
        assert!(!same_pods(&legacy, &extra, "hello-00001"), "another label");
    }

    /// A ReplicaSet `name` with `replicas`, labelled with `revision` when given, controlled by a Deployment or not.
    fn replica_set(name: &str, replicas: i32, revision: Option<&str>, controlled: bool) -> ReplicaSet {
        let mut labels = serde_json::json!({names::SERVICE_LABEL: "hello"});
        if let Some(revision) = revision {
            labels[names::REVISION_LABEL] = revision.into();
        }
        let owners = if controlled {
            serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u",
                "controller": true}])
        } else {
            serde_json::json!([])
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .unwrap()
    }

    #[test]
    fn the_orphaned_replica_set_that_runs_the_pods_is_labelled_and_earlier_ones_go() {
        let listed = [
            replica_set("hello-old", 0, None, false),
            replica_set("hello-current", 3, None, false),
            replica_set("hello-00002-abc", 2, Some("hello-00002"), true),
            replica_set("other-revision", 1, Some("hello-00009"), false),
        ];
        let sorted = orphans(&listed, "hello-00001");
        assert_eq!(
            sorted,
            Orphans {
                to_label: Some("hello-current".into()),
                labelled: None,
                stale: vec!["hello-old".into()],
            }
        );
    }

    #[test]
    fn a_labelled_orphan_gives_the_revision_its_pod_count() {
        let listed = [
            replica_set("hello-current", 3, Some("hello-00001"), false),
            replica_set("hello-old", 0, None, false),
        ];
        let sorted = orphans(&listed, "hello-00001");
        assert_eq!(sorted.labelled, Some(3));
        assert_eq!(
            sorted.to_label, None,
            "labelled already: the next step creates the Deployment"
        );
        assert_eq!(sorted.stale, ["hello-old"]);
        let adopted = [replica_set("hello-current", 3, Some("hello-00001"), true)];
        assert_eq!(
            orphans(&adopted, "hello-00001"),
            Orphans::default(),
            "its Deployment owns it"
        );
    }

    #[test]
    fn only_the_services_pods_without_a_revision_are_the_previous_releases() {
        let old = pod("default", &[(names::SERVICE_LABEL, "hello")]);
        let pods = [
            old.clone(),
            pod(
                "default",
                &[(names::SERVICE_LABEL, "hello"), (names::REVISION_LABEL, "hello-00001")],
            ),
            pod("default", &[(names::SERVICE_LABEL, "other")]),
            pod("elsewhere", &[(names::SERVICE_LABEL, "hello")]),
        ];
        assert_eq!(unlabelled_pods(&pods, "default", "hello"), [old]);
    }
}
