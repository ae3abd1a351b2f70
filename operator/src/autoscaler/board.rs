//! The latest load report of every activator, summed per Service on each tick.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use runway_api::ServiceKey;
use runway_api::stats::{LoadReport, ReportKind};

/// A report older than this no longer counts: the activator is gone or its stream stalled.
pub const REPORT_TTL: Duration = Duration::from_millis(2500);

/// One Service's load summed over the activators that reported recently.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub concurrency: f64,
    pub rps: f64,
    /// Requests queued or in flight right now.
    pub held: u32,
}

#[derive(Debug)]
struct Latest {
    received: Instant,
    report: LoadReport,
}

/// What the autoscaler knows of the activators: who exists and what each said last.
#[derive(Debug, Default)]
pub struct Board {
    /// Activator addresses from their Service's EndpointSlices.
    known: BTreeSet<String>,
    latest: HashMap<String, Latest>,
}

impl Board {
    /// Replaces the set of activators; reports of activators that left are dropped.
    pub fn set_known(&mut self, addresses: BTreeSet<String>) {
        self.latest.retain(|address, _| addresses.contains(address));
        self.known = addresses;
    }

    /// Keeps a periodic report as the activator's latest; pokes are handled by the caller.
    pub fn record(&mut self, address: &str, report: LoadReport, now: Instant) {
        if report.kind == ReportKind::Periodic && self.known.contains(address) {
            self.latest.insert(address.to_owned(), Latest { received: now, report });
        }
    }

    /// Per-Service totals over fresh reports, and whether every known activator's report is fresh.
    pub fn totals(&self, now: Instant) -> (HashMap<ServiceKey, Totals>, bool) {
        let is_fresh = |latest: &&Latest| now.saturating_duration_since(latest.received) <= REPORT_TTL;
        let mut totals: HashMap<ServiceKey, Totals> = HashMap::new();
        for latest in self.latest.values().filter(is_fresh) {
            for load in &latest.report.services {
                let t = totals
                    .entry(ServiceKey::new(load.namespace.clone(), load.name.clone()))
                    .or_default();
                t.concurrency += load.concurrency;
                t.rps += load.rps;
                t.held += load.queued + load.in_flight;
            }
        }
        let complete = self
            .known
            .iter()
            .all(|a| self.latest.get(a).is_some_and(|l| is_fresh(&l)));
        (totals, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::stats::ServiceLoad;

    fn report(kind: ReportKind, loads: &[(&str, f64, f64, u32, u32)]) -> LoadReport {
        LoadReport {
            activator: "a".into(),
            kind,
            interval_ms: 1000,
            services: loads
                .iter()
                .map(|(name, concurrency, rps, queued, in_flight)| ServiceLoad {
                    namespace: "ns".into(),
                    name: (*name).into(),
                    concurrency: *concurrency,
                    rps: *rps,
                    queued: *queued,
                    in_flight: *in_flight,
                })
                .collect(),
        }
    }

    fn known(addresses: &[&str]) -> BTreeSet<String> {
        addresses.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn fresh_reports_are_summed_per_service() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        board.record(
            "10.0.0.1",
            report(
                ReportKind::Periodic,
                &[("web", 2.0, 10.0, 1, 2), ("api", 1.0, 1.0, 0, 1)],
            ),
            t0,
        );
        board.record("10.0.0.2", report(ReportKind::Periodic, &[("web", 3.0, 5.0, 0, 3)]), t0);
        let (totals, complete) = board.totals(t0 + Duration::from_secs(1));
        assert!(complete);
        assert_eq!(
            totals[&ServiceKey::new("ns", "web")],
            Totals {
                concurrency: 5.0,
                rps: 15.0,
                held: 6
            }
        );
        assert_eq!(totals[&ServiceKey::new("ns", "api")].held, 1);
    }

    #[test]
    fn stale_or_missing_reports_make_the_view_incomplete() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        board.record("10.0.0.1", report(ReportKind::Periodic, &[("web", 2.0, 1.0, 0, 0)]), t0);
        assert!(!board.totals(t0).1, "10.0.0.2 never reported");
        board.record(
            "10.0.0.2",
            report(ReportKind::Periodic, &[]),
            t0 + Duration::from_secs(3),
        );
        let (totals, complete) = board.totals(t0 + Duration::from_secs(3));
        assert!(!complete, "10.0.0.1's report is stale");
        assert!(totals.is_empty(), "stale load does not count");
    }

    #[test]
    fn pokes_and_unknown_activators_are_not_kept_and_leavers_are_forgotten() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1"]));
        board.record("10.0.0.1", report(ReportKind::Poke, &[("web", 0.0, 0.0, 1, 0)]), t0);
        board.record("10.0.0.9", report(ReportKind::Periodic, &[("web", 1.0, 0.0, 0, 0)]), t0);
        assert_eq!(board.totals(t0), (HashMap::new(), false), "neither is kept");
        board.record("10.0.0.1", report(ReportKind::Periodic, &[("web", 1.0, 0.0, 0, 0)]), t0);
        board.set_known(known(&[]));
        assert_eq!(board.totals(t0), (HashMap::new(), true));
    }
}
