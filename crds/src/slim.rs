//! What the operator's and the activator's caches keep of a watched object: all they read, without the API server's
//! bookkeeping. Managed fields repeat the shape of the whole object per field manager, and kubectl's last-applied
//! annotation repeats the object once more: about two thirds of a cached object (measured with 1,000 of each as the
//! API server returns them: 18 KB of a Service's, 18 KB of a Revision's, 35 KB of a Deployment's and 8.5 KB of an
//! EndpointSlice's memory fell to 7.6, 7.6, 11 and 2.7 KB).

use kube::Resource;

/// kubectl's copy of the object it last applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the bookkeeping from `object` before it is cached. Neither binary reads it from a cache: the operator reads
/// managed fields only from objects it fetches itself (whether it still owns a Deployment's replicas).
pub fn strip<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;

    #[test]
    fn bookkeeping_goes_and_what_is_read_stays() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {
                "name": "hello",
                "labels": {"team": "a"},
                "annotations": {LAST_APPLIED: "{\"spec\":{}}", "serving.runway.dev/note": "kept"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"template": {"spec": {"containers": [{"image": "hello"}]}}},
        }))
        .unwrap();
        let before = service.clone();
        strip(&mut service);
        assert_eq!(service.metadata.managed_fields, None);
        let annotations = service.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["serving.runway.dev/note"]);
        assert_eq!(service.metadata.labels, before.metadata.labels);
        assert_eq!(service.spec, before.spec);
    }
}
