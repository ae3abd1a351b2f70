//! `runway_operator_service_ready`: every Service's Ready condition as 1 or 0, read once a second from the leader's
//! Service cache, and the series of a deleted Service removed. Read from the cache rather than set by reconciles:
//! a Service deleted without a finalizer is never reconciled again, and its series would stay at its last value.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use runway_api::Service;
use runway_api::conditions::READY;

use crate::metrics::{Metrics, ServiceLabels};

const PERIOD: Duration = Duration::from_secs(1);

/// Runs until the task is dropped (on losing leadership or shutdown).
pub(crate) async fn run(services: Store<Service>, metrics: Arc<Metrics>) {
    let mut exported = HashSet::new();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        export(&metrics, &services.state(), &mut exported);
    }
}

/// Sets each Service's series and removes those of Services no longer there; `exported` is what the last call set.
fn export(metrics: &Metrics, services: &[Arc<Service>], exported: &mut HashSet<ServiceLabels>) {
    let mut now = HashSet::with_capacity(services.len());
    for service in services {
        let labels = ServiceLabels {
            namespace: service.namespace().unwrap_or_default(),
            service: service.name_any(),
        };
        metrics
            .service_ready
            .get_or_create(&labels)
            .set(i64::from(is_ready(service)));
        now.insert(labels);
    }
    for gone in exported.difference(&now) {
        metrics.service_ready.remove(gone);
    }
    *exported = now;
}

fn is_ready(service: &Service) -> bool {
    service
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
    use runway_api::ServiceStatus;

    fn service(name: &str, ready: Option<&str>) -> Arc<Service> {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}}
        }))
        .unwrap();
        service.status = ready.map(|status| ServiceStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: status.into(),
                reason: "R".into(),
                message: String::new(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..ServiceStatus::default()
        });
        Arc::new(service)
    }

    #[test]
    fn each_service_is_one_while_ready_and_a_deleted_ones_series_goes() {
        let metrics = Metrics::default();
        let mut exported = HashSet::new();
        let series = |name: &str, value: u8| {
            format!(r#"runway_operator_service_ready{{namespace="ns",service="{name}"}} {value}"#)
        };
        export(
            &metrics,
            &[
                service("up", Some("True")),
                service("down", Some("False")),
                service("new", None),
            ],
            &mut exported,
        );
        let text = metrics.encode();
        for line in [series("up", 1), series("down", 0), series("new", 0)] {
            assert!(text.contains(&line), "{line} in {text}");
        }
        export(&metrics, &[service("up", Some("True"))], &mut exported);
        let text = metrics.encode();
        assert!(text.contains(&series("up", 1)), "{text}");
        assert!(!text.contains("down") && !text.contains("new"), "{text}");
    }
}
