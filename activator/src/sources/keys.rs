//! Which revision a watched object belongs to: a Revision by its own name, its pods and the EndpointSlices of its pod
//! Service by their labels. The mirrors group what they watch by these keys.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use runway_api::Revision;
use runway_api::membership::SLICE_SERVICE_NAME_LABEL;
use runway_api::names::{REVISION_LABEL, SERVICE_LABEL, pods_service_name};

use crate::model::RevisionId;

/// Label naming the controller that manages an EndpointSlice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The built-in EndpointSlice controller; slices written by anyone else are ignored.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// A Revision object's own identity, with its Service from its label.
pub fn revision_id(revision: &Revision) -> Option<RevisionId> {
    let service = revision.labels().get(SERVICE_LABEL)?;
    Some(RevisionId::new(
        revision.namespace()?,
        service.as_str(),
        revision.name_any(),
    ))
}

/// The revision an object belongs to, by its labels: the revision's and its Service's (both binaries' objects carry
/// both: Revisions, their pods, and the EndpointSlices of their pods' Services).
fn labelled_revision(metadata: &ObjectMeta) -> Option<RevisionId> {
    let labels = metadata.labels.as_ref()?;
    Some(RevisionId::new(
        metadata.namespace.clone()?,
        labels.get(SERVICE_LABEL)?.as_str(),
        labels.get(REVISION_LABEL)?.as_str(),
    ))
}

/// The revision whose pods a slice lists, if it is a slice of a revision's pod Service managed by Kubernetes:
/// labelled with the revision and its Service, written by the EndpointSlice controller, and belonging to
/// `{revision}-pods` in the same namespace.
pub fn slice_revision(slice: &EndpointSlice) -> Option<RevisionId> {
    let id = labelled_revision(&slice.metadata)?;
    let labels = slice.metadata.labels.as_ref()?;
    let managed = labels.get(SLICE_MANAGED_BY_LABEL).map(String::as_str) == Some(SLICE_CONTROLLER);
    let owned = labels.get(SLICE_SERVICE_NAME_LABEL) == Some(&pods_service_name(&id.key.name));
    (managed && owned).then_some(id)
}

/// The revision a pod belongs to, by its labels.
pub fn pod_revision(pod: &Pod) -> Option<RevisionId> {
    labelled_revision(&pod.metadata)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The name and labels of a slice of the pods of revision `{service}-00001`.
    pub(crate) fn pods_slice_metadata(service: &str, namespace: &str) -> ObjectMeta {
        let revision = format!("{service}-00001");
        ObjectMeta {
            name: Some(format!("{revision}-pods-abc")),
            namespace: Some(namespace.into()),
            labels: Some(
                [
                    (SERVICE_LABEL, service.to_owned()),
                    (REVISION_LABEL, revision.clone()),
                    (SLICE_MANAGED_BY_LABEL, SLICE_CONTROLLER.to_owned()),
                    (SLICE_SERVICE_NAME_LABEL, pods_service_name(&revision)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn only_controller_managed_slices_of_the_pod_service_count() {
        let good = EndpointSlice {
            metadata: pods_slice_metadata("hello", "default"),
            ..EndpointSlice::default()
        };
        assert_eq!(
            slice_revision(&good),
            Some(RevisionId::new("default", "hello", "hello-00001"))
        );

        let mut foreign = good.clone();
        foreign
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_MANAGED_BY_LABEL.into(), "someone-else".into());
        assert_eq!(slice_revision(&foreign), None);

        let mut other_service = good.clone();
        other_service
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SLICE_SERVICE_NAME_LABEL.into(), "kube-dns".into());
        assert_eq!(slice_revision(&other_service), None);

        // The Service's pods Service of before revisions, or a slice without its revision: not a revision's.
        for (label, value) in [(SLICE_SERVICE_NAME_LABEL, Some("hello-pods")), (REVISION_LABEL, None)] {
            let mut other = good.clone();
            let labels = other.metadata.labels.as_mut().unwrap();
            match value {
                Some(value) => labels.insert(label.into(), value.into()),
                None => labels.remove(label),
            };
            assert_eq!(slice_revision(&other), None, "{label}");
        }
    }
}
