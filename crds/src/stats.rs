//! The load reports activators stream to the autoscaler.
//!
//! The elected operator opens `GET /v1/load` on every activator pod's admin port; the activator answers with a
//! never-ending stream of newline-delimited JSON [`LoadReport`]s: one per second, and a poke at once when a request
//! arrives for a Service with no routable pod. A pull by the leader works with any number of activator and
//! operator replicas, and the pushed poke keeps scale-from-zero off the periodic tick.

use serde::{Deserialize, Serialize};

/// Path of the load stream on the activator's admin port.
pub const LOAD_STREAM_PATH: &str = "/v1/load";
/// Content type of the load stream.
pub const LOAD_STREAM_CONTENT_TYPE: &str = "application/x-ndjson";

/// Why a report was sent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// The regular report: averages over the last interval.
    Periodic,
    /// Sent at once: a request is waiting for a Service that has no routable pod.
    Poke,
}

/// One line of the load stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    /// The reporting activator (its pod name).
    pub activator: String,
    pub kind: ReportKind,
    /// Length of the interval the averages cover, in milliseconds (0 in a poke).
    pub interval_ms: u64,
    /// Services with traffic in the interval or requests held now; a Service left out had none.
    pub services: Vec<ServiceLoad>,
}

/// The load one activator saw for one revision of a Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLoad {
    pub namespace: String,
    /// The Service.
    pub name: String,
    /// The revision the load went to; empty in a report of an activator older than revisions (during an upgrade).
    #[serde(default)]
    pub revision: String,
    /// Requests in flight to pods plus requests queued, averaged over the interval.
    pub concurrency: f64,
    /// Requests that arrived per second over the interval.
    pub rps: f64,
    /// Requests queued at the end of the interval.
    pub queued: u32,
    /// Requests in flight to pods at the end of the interval.
    pub in_flight: u32,
    /// Responses finished in the interval, whatever their status.
    #[serde(default)]
    pub requests: u64,
    /// Of those, responses with a 5xx status, the activator's own 502, 503 and 504 included.
    #[serde(default)]
    pub server_errors: u64,
    /// Pods of the revision this activator cannot use though Kubernetes counts them ready: frozen pods whose thaw
    /// failed (spec.scaling.idle Freeze). The autoscaler starts as many more.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unusable_pods: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LoadReport {
    /// The report as one line of the stream, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a load report always serializes");
        line.push(b'\n');
        line
    }

    /// Parses one line of the stream (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_one_line() {
        let report = LoadReport {
            activator: "runway-activator-abc".into(),
            kind: ReportKind::Poke,
            interval_ms: 0,
            services: vec![ServiceLoad {
                namespace: "default".into(),
                name: "hello".into(),
                revision: "hello-00001".into(),
                concurrency: 1.5,
                rps: 3.0,
                queued: 1,
                in_flight: 0,
                requests: 3,
                server_errors: 1,
                unusable_pods: 0,
            }],
        };
        let line = report.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(LoadReport::from_line(&line[..line.len() - 1]).unwrap(), report);
        assert!(String::from_utf8(line).unwrap().contains("\"kind\":\"poke\""));
    }
}
