//! A Service's routing table as the operator resolved it in its status: what the mirror keeps of a watched Service,
//! and the `ServiceTraffic` read from it.

use runway_api::{Service, ServiceStatus, ServiceTemplate};

use crate::model::{AccessLogShare, ServiceTraffic};

/// Drops from a watched Service all that `traffic_of_service` does not read (its pod template, bookkeeping, the rest
/// of its status) before the mirror keeps it: with 1,000 Services, most of the memory their copies took.
pub fn keep_only_routing(service: &mut Service) {
    runway_api::slim::strip(service);
    service.spec.template = ServiceTemplate::default();
    service.status = service.status.take().map(|status| ServiceStatus {
        traffic: status.traffic,
        ..ServiceStatus::default()
    });
}

/// The Service's routing table as the operator resolved it in status.traffic. Empty until the operator wrote it
/// (within a second of the Service's creation): the Service then answers 503.
pub fn traffic_of_service(service: &Service) -> ServiceTraffic {
    let traffic = service
        .status
        .as_ref()
        .map(|s| s.traffic.as_slice())
        .unwrap_or_default();
    ServiceTraffic {
        visibility: service.spec.visibility,
        invokers: service.spec.invokers,
        access_log: service
            .spec
            .access_log_percent
            .and_then(|percent| AccessLogShare::percent(percent.into())),
        split: traffic
            .iter()
            .filter_map(|t| {
                Some((
                    t.revision_name.clone(),
                    u32::try_from(t.percent).ok().filter(|p| *p > 0)?,
                ))
            })
            .collect(),
        tags: traffic
            .iter()
            .filter_map(|t| Some((t.tag.clone()?, t.revision_name.clone())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::Visibility;

    #[test]
    fn a_service_kept_only_for_routing_routes_as_the_whole_service() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default", "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "visibility": "ClusterLocal",
                "invokers": "Authorized",
                "template": {"spec": {"containers": [{"image": "hello", "env": [{"name": "A", "value": "b"}]}]}},
            },
            "status": {
                "url": "http://hello.default.svc.cluster.local",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                    "lastTransitionTime": "2026-11-28T10:00:00Z"}],
                "traffic": [{"revisionName": "hello-00001", "percent": 90},
                    {"revisionName": "hello-00002", "percent": 10, "tag": "next"}],
            },
        }))
        .unwrap();
        let mut kept = service.clone();
        keep_only_routing(&mut kept);
        assert_eq!(traffic_of_service(&kept), traffic_of_service(&service));
        assert_eq!(traffic_of_service(&kept).invokers, runway_api::Invokers::Authorized);
        assert!(kept.spec.template.spec.containers.is_empty());
        assert_eq!(kept.metadata.managed_fields, None);
        assert!(kept.status.as_ref().unwrap().conditions.is_empty());
    }

    #[test]
    fn a_service_routes_by_its_resolved_traffic_with_percent_above_zero_and_its_tags() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}, "visibility": "ClusterLocal"},
        }))
        .unwrap();
        let none = traffic_of_service(&service);
        assert_eq!(
            (none.visibility, none.split.len(), none.tags.len()),
            (Visibility::ClusterLocal, 0, 0)
        );
        service.status = serde_json::from_value(serde_json::json!({
            "traffic": [
                {"revisionName": "hello-00003", "latestRevision": true, "percent": 90},
                {"revisionName": "hello-00002", "percent": 10, "tag": "previous"},
                {"revisionName": "hello-00004", "percent": 0, "tag": "next"},
            ],
        }))
        .unwrap();
        let traffic = traffic_of_service(&service);
        assert_eq!(
            traffic.split,
            [("hello-00003".to_owned(), 90), ("hello-00002".to_owned(), 10)]
        );
        assert_eq!(
            traffic.tags,
            [
                ("previous".to_owned(), "hello-00002".to_owned()),
                ("next".to_owned(), "hello-00004".to_owned())
            ]
        );
    }
}
