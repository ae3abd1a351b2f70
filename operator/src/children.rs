//! Applies child objects with server-side apply, refusing to take over objects that belong to someone else.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager of everything the reconciler applies. Deployment replicas belong to the autoscaler's manager.
pub(crate) const FIELD_MANAGER: &str = "runway-operator";
/// Field manager of the Deployment's replicas.
pub(crate) const SCALE_FIELD_MANAGER: &str = "runway-autoscaler";

/// What applying a child did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Why a child was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChildError {
    #[error("{kind} {namespace}/{name} exists and is not owned by this Runway {owner}")]
    NotOwned {
        kind: String,
        namespace: String,
        name: String,
        /// The owner's kind: Service or Revision.
        owner: &'static str,
    },
    #[error("applying {kind} {name}: {}", api_message(.source))]
    Api {
        kind: String,
        name: String,
        source: kube::Error,
    },
}

impl ChildError {
    /// The namespace is being deleted: nothing can be created in it, and the Service goes with it.
    pub(crate) fn namespace_terminating(&self) -> bool {
        let ChildError::Api {
            source: kube::Error::Api(status),
            ..
        } = self
        else {
            return false;
        };
        status
            .details
            .iter()
            .flat_map(|d| &d.causes)
            .any(|cause| cause.reason == "NamespaceTerminating")
    }
}

/// The API server's own message when it gave one: it names the field and the rule, without the Rust wrapping.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Whether `object`'s controller is the object with `owner_uid`.
pub(crate) fn is_controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

/// The owner of children: its kind (for messages) and uid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner<'a> {
    pub(crate) kind: &'static str,
    pub(crate) uid: &'a str,
}

/// Reads the live child, refusing one controlled by anything but the owner.
pub(crate) async fn fetch_owned<K>(api: &Api<K>, owner: Owner<'_>, name: &str) -> Result<Option<K>, ChildError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let kind = K::kind(&()).into_owned();
    let live = api.get_opt(name).await.map_err(|source| ChildError::Api {
        kind: kind.clone(),
        name: name.to_owned(),
        source,
    })?;
    match live {
        Some(live) if !is_controlled_by(&live, owner.uid) => Err(ChildError::NotOwned {
            kind,
            namespace: live.namespace().unwrap_or_default(),
            name: name.to_owned(),
            owner: owner.kind,
        }),
        live => Ok(live),
    }
}

/// Applies `desired`, forcing ownership of the fields it sets (they are Runway's), and says what changed compared
/// with `live`, the object `fetch_owned` returned. A live object that already has everything `desired` sets is
/// left alone: with many Services, the periodic resync would otherwise patch every child each time.
pub(crate) async fn apply<K>(api: &Api<K>, desired: &K, live: Option<&K>) -> Result<(K, Outcome), ChildError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    if let Some(live) = live.filter(|live| has_applied(*live, desired)) {
        return Ok((live.clone(), Outcome::Unchanged));
    }
    let name = desired.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(|source| ChildError::Api {
            kind: K::kind(&()).into_owned(),
            name: name.clone(),
            source,
        })?;
    let outcome = match live {
        None => Outcome::Created,
        Some(live) if differs(live, &applied) => Outcome::Updated,
        Some(_) => Outcome::Unchanged,
    };
    Ok((applied, outcome))
}

/// Whether applying changed what the object says (its spec, labels or owners); bookkeeping such as managed fields
/// or a status write does not count.
fn differs<K: Resource + Serialize>(before: &K, after: &K) -> bool {
    let spec = |object: &K| serde_json::to_value(object).ok().and_then(|v| v.get("spec").cloned());
    spec(before) != spec(after)
        || before.labels() != after.labels()
        || before.owner_references() != after.owner_references()
}

/// Whether `live` already has every field `desired` sets, with the same value. Fields only `live` has (the API
/// server's defaults, status, other managers' fields) do not count; a field `desired` no longer sets is not
/// noticed, which is fine for children whose desired form only changes when a revision is made.
fn has_applied<K: Serialize>(live: &K, desired: &K) -> bool {
    match (serde_json::to_value(live), serde_json::to_value(desired)) {
        (Ok(live), Ok(desired)) => covers(&live, &desired),
        _ => false,
    }
}

/// Whether JSON `live` contains `desired`: every member of an object (an empty list or object also matches a
/// missing member, as Go's omitempty drops them), every item of a list of the same length, equal scalars.
fn covers(live: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired.iter().all(|(key, wanted)| match live.get(key) {
            Some(have) => covers(have, wanted),
            None => is_empty(wanted),
        }),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(have, wanted)| covers(have, wanted))
        }
        (live, desired) => live == desired || (live.is_null() && is_empty(desired)),
    }
}

/// What the API server leaves out when it serializes: null, an empty list or object.
fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

/// Deletes `object` while it is still the same object (its uid), letting garbage collection remove what it owns in
/// the background. True when this call deleted it; false when it was gone already, or replaced since.
pub(crate) async fn delete<K>(api: &Api<K>, object: &K) -> Result<bool, ChildError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let name = object.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: object.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(source) => Err(ChildError::Api {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        }),
    }
}

/// Sets the Deployment's replicas through its scale subresource, as the replicas' owner.
pub(crate) async fn apply_scale(api: &Api<Deployment>, name: &str, replicas: i32) -> Result<(), kube::Error> {
    let scale = serde_json::json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": name },
        "spec": { "replicas": replicas },
    });
    api.patch_scale(
        name,
        &PatchParams::apply(SCALE_FIELD_MANAGER).force(),
        &Patch::Apply(&scale),
    )
    .await?;
    Ok(())
}

/// Whether the reconciler's field manager still owns `spec.replicas`: true right after it created the Deployment
/// with the initial scale, until it hands the field to the autoscaler.
pub(crate) fn reconciler_owns_replicas(deployment: &Deployment) -> bool {
    deployment.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
            && entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .is_some_and(|spec| spec.get("f:replicas").is_some())
    })
}

/// Writes `status` into the status subresource of object `name` by server-side apply under `manager`: only the
/// status, so the spec stays the user's.
pub(crate) async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
    manager: &str,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(manager).force(), &Patch::Apply(&patch))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, OwnerReference};
    use serde_json::{Value, json};

    fn managed(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn replicas_ownership_is_read_from_managed_fields() {
        let mut d = Deployment::default();
        d.metadata.managed_fields = Some(vec![managed(
            SCALE_FIELD_MANAGER,
            "Apply",
            serde_json::json!({"f:spec": {"f:replicas": {}}}),
        )]);
        assert!(!reconciler_owns_replicas(&d));
        d.metadata.managed_fields.as_mut().unwrap().push(managed(
            FIELD_MANAGER,
            "Apply",
            serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {}}}),
        ));
        assert!(reconciler_owns_replicas(&d));
    }

    #[test]
    fn only_spec_labels_or_owners_count_as_a_change() {
        let mut before = Deployment::default();
        before.metadata.resource_version = Some("1".into());
        let mut after = before.clone();
        after.metadata.resource_version = Some("2".into());
        after.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        assert!(!differs(&before, &after));
        after.spec = Some(Default::default());
        assert!(differs(&before, &after));
    }

    #[test]
    fn what_runway_sets_is_compared_and_what_the_api_server_adds_is_not() {
        let desired = json!({
            "metadata": {"name": "hello-00001", "labels": {"app": "hello"}, "ownerReferences": [{"uid": "r1", "controller": true}]},
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "hello:1", "env": []}]}},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
            },
        });
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["labels"]["added-by-someone"] = json!("x");
        live["metadata"]["managedFields"] = json!([{"manager": "runway-operator"}]);
        live["spec"]["replicas"] = json!(3);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("env");
        live["status"] = json!({"readyReplicas": 3});
        assert!(
            covers(&live, &desired),
            "defaults, status and bookkeeping are not Runway's"
        );

        let drifted = |change: fn(&mut Value)| {
            let mut drifted = live.clone();
            change(&mut drifted);
            covers(&drifted, &desired)
        };
        assert!(!drifted(
            |d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hello:2")
        ));
        assert!(!drifted(|d| d["metadata"]["labels"]["app"] = json!("other")));
        assert!(!drifted(|d| {
            d["metadata"]["labels"].as_object_mut().unwrap().remove("app");
        }));
        assert!(!drifted(
            |d| d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("25%")
        ));
        assert!(!drifted(|d| d["metadata"]["ownerReferences"][0]["uid"] = json!("r2")));
        assert!(
            !drifted(|d| d["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "sidecar"}))),
            "a container someone added"
        );
        assert!(!drifted(|d| {
            d["spec"]["strategy"].as_object_mut().unwrap().remove("rollingUpdate");
        }));
    }

    #[test]
    fn a_child_created_from_the_same_desired_object_is_already_applied() {
        let mut live = Deployment::default();
        live.metadata.name = Some("hello-00001".into());
        live.metadata.labels = Some([("app".to_owned(), "hello".to_owned())].into());
        let desired = live.clone();
        live.metadata.uid = Some("u".into());
        live.status = Some(Default::default());
        assert!(has_applied(&live, &desired));
        live.metadata.labels = None;
        assert!(!has_applied(&live, &desired));
    }

    #[test]
    fn a_terminating_namespace_is_recognised_by_its_cause() {
        let status = |cause: &str| -> kube::core::Status {
            serde_json::from_value(serde_json::json!({
                "code": 403, "reason": "Forbidden", "details": {"causes": [{"reason": cause}]}
            }))
            .unwrap()
        };
        let error = |cause| ChildError::Api {
            kind: "Service".into(),
            name: "x".into(),
            source: kube::Error::Api(Box::new(status(cause))),
        };
        assert!(error("NamespaceTerminating").namespace_terminating());
        assert!(!error("FieldValueRequired").namespace_terminating());
    }

    #[test]
    fn control_needs_the_controller_flag_and_the_uid() {
        let mut d = Deployment::default();
        let owner = |uid: &str, controller| OwnerReference {
            uid: uid.into(),
            controller: Some(controller),
            ..OwnerReference::default()
        };
        d.metadata.owner_references = Some(vec![owner("a", false), owner("b", true)]);
        assert!(is_controlled_by(&d, "b"));
        assert!(!is_controlled_by(&d, "a"));
        assert!(!is_controlled_by(&Deployment::default(), "b"));
    }
}
