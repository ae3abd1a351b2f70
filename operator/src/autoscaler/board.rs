//! The latest load report of every activator, summed per revision on each tick; the responses each revision gave
//! over the last minutes; and the floors a rollout puts under revisions' counts.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use runway_api::RevisionKey;
use runway_api::stats::{LoadReport, ReportKind};

/// A report older than this no longer counts: the activator is gone or its stream stalled.
pub(crate) const REPORT_TTL: Duration = Duration::from_millis(2500);
/// How far back the board remembers the responses of each revision.
pub(crate) const RESPONSE_HISTORY: Duration = Duration::from_secs(300);
/// Responses are counted in buckets of this length, by when their report arrived.
const RESPONSE_BUCKET: Duration = Duration::from_secs(1);

/// One revision's load summed over the activators that reported recently.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) concurrency: f64,
    pub(crate) rps: f64,
    /// Requests queued or in flight right now.
    pub(crate) held: u32,
    /// Ready pods an activator cannot use (a failed thaw), the most any activator reports.
    pub(crate) unusable_pods: u32,
}

/// Responses of one revision, summed over the activators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Responses {
    /// Responses finished, whatever their status.
    pub(crate) requests: u64,
    /// Of those, responses with a 5xx status (the activator's own 502, 503 and 504 included).
    pub(crate) server_errors: u64,
}

/// Responses reported in one bucket, from `from` to `from + RESPONSE_BUCKET`.
#[derive(Debug)]
struct Bucket {
    from: Instant,
    responses: Responses,
}

/// At least `pods` until `until`.
#[derive(Debug)]
struct Floor {
    pods: i32,
    until: Instant,
}

#[derive(Debug)]
struct Latest {
    received: Instant,
    report: LoadReport,
}

/// What the autoscaler knows of the activators: who exists and what each said last.
#[derive(Debug, Default)]
pub(crate) struct Board {
    /// Activator addresses from their Service's EndpointSlices.
    known: BTreeSet<String>,
    latest: HashMap<String, Latest>,
    /// Per revision, responses over the last RESPONSE_HISTORY, oldest bucket first; a revision without responses in
    /// that time has no entry.
    responses: HashMap<RevisionKey, VecDeque<Bucket>>,
    floors: HashMap<RevisionKey, Floor>,
}

impl Board {
    /// Replaces the set of activators; reports of activators that left are dropped.
    pub(crate) fn set_known(&mut self, addresses: BTreeSet<String>) {
        self.latest.retain(|address, _| addresses.contains(address));
        self.known = addresses;
    }

    /// Keeps a periodic report as the activator's latest and counts its responses; pokes are handled by the caller.
    pub(crate) fn record(&mut self, address: &str, report: LoadReport, now: Instant) {
        if report.kind != ReportKind::Periodic || !self.known.contains(address) {
            return;
        }
        for load in &report.services {
            if load.requests == 0 && load.server_errors == 0 {
                continue;
            }
            let buckets = self
                .responses
                .entry(RevisionKey::new(load.namespace.clone(), load.revision.clone()))
                .or_default();
            let bucket = match buckets.back_mut() {
                Some(last) if now.saturating_duration_since(last.from) < RESPONSE_BUCKET => last,
                _ => {
                    buckets.push_back(Bucket {
                        from: now,
                        responses: Responses::default(),
                    });
                    buckets.back_mut().expect("just pushed")
                }
            };
            bucket.responses.requests += load.requests;
            bucket.responses.server_errors += load.server_errors;
        }
        // Forget old buckets, and with them revisions that were deleted or went quiet.
        self.responses.retain(|_, buckets| {
            while buckets
                .front()
                .is_some_and(|b| now.saturating_duration_since(b.from) > RESPONSE_HISTORY)
            {
                buckets.pop_front();
            }
            !buckets.is_empty()
        });
        self.floors.retain(|_, floor| floor.until > now);
        self.latest.insert(address.to_owned(), Latest { received: now, report });
    }

    /// Per-revision totals over fresh reports, and whether every known activator's report is fresh.
    pub(crate) fn totals(&self, now: Instant) -> (HashMap<RevisionKey, Totals>, bool) {
        let is_fresh = |latest: &&Latest| now.saturating_duration_since(latest.received) <= REPORT_TTL;
        let mut totals: HashMap<RevisionKey, Totals> = HashMap::new();
        for latest in self.latest.values().filter(is_fresh) {
            for load in &latest.report.services {
                let t = totals
                    .entry(RevisionKey::new(load.namespace.clone(), load.revision.clone()))
                    .or_default();
                t.concurrency += load.concurrency;
                t.rps += load.rps;
                t.held += load.queued + load.in_flight;
                // Only the activator holding a pod's slots thaws it: the reports do not overlap, but a pod that
                // changes hands may be in two.
                t.unusable_pods = t.unusable_pods.max(load.unusable_pods);
            }
        }
        let complete = self
            .known
            .iter()
            .all(|a| self.latest.get(a).is_some_and(|l| is_fresh(&l)));
        (totals, complete)
    }

    /// Keeps the revision at `pods` or more (maxScale still applies) until `until`, e.g. before a rollout step gives
    /// it a larger share of the traffic. A later call replaces the floor; 0 pods removes it.
    pub(crate) fn set_floor(&mut self, key: RevisionKey, pods: i32, until: Instant) {
        if pods > 0 {
            self.floors.insert(key, Floor { pods, until });
        } else {
            self.floors.remove(&key);
        }
    }

    /// The floors in force at `now`.
    pub(crate) fn floors(&self, now: Instant) -> HashMap<RevisionKey, i32> {
        self.floors
            .iter()
            .filter(|(_, floor)| floor.until > now)
            .map(|(key, floor)| (key.clone(), floor.pods))
            .collect()
    }

    /// The revision's responses, summed over every activator, in the reports that arrived at or after `since`, to
    /// within one second (a one-second bucket counts when it began at or after `since`). Only the last
    /// RESPONSE_HISTORY is remembered: an earlier `since` gives the responses of that time.
    pub(crate) fn responses(&self, key: &RevisionKey, since: Instant) -> Responses {
        let buckets = self.responses.get(key).into_iter().flatten();
        buckets
            .filter(|b| b.from >= since)
            .fold(Responses::default(), |sum, b| Responses {
                requests: sum.requests + b.responses.requests,
                server_errors: sum.server_errors + b.responses.server_errors,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::stats::ServiceLoad;

    fn load(revision: &str, concurrency: f64, rps: f64, queued: u32, in_flight: u32) -> ServiceLoad {
        ServiceLoad {
            namespace: "ns".into(),
            name: "web".into(),
            revision: revision.into(),
            concurrency,
            rps,
            queued,
            in_flight,
            requests: 0,
            server_errors: 0,
            unusable_pods: 0,
        }
    }

    fn report(kind: ReportKind, loads: &[(&str, f64, f64, u32, u32)]) -> LoadReport {
        with_loads(
            kind,
            loads
                .iter()
                .map(|(revision, concurrency, rps, queued, in_flight)| {
                    load(revision, *concurrency, *rps, *queued, *in_flight)
                })
                .collect(),
        )
    }

    fn with_loads(kind: ReportKind, services: Vec<ServiceLoad>) -> LoadReport {
        LoadReport {
            activator: "a".into(),
            kind,
            interval_ms: 1000,
            services,
        }
    }

    /// A periodic report of responses per revision: (revision, requests, server errors).
    fn answered(counts: &[(&str, u64, u64)]) -> LoadReport {
        with_loads(
            ReportKind::Periodic,
            counts
                .iter()
                .map(|(revision, requests, server_errors)| ServiceLoad {
                    requests: *requests,
                    server_errors: *server_errors,
                    ..load(revision, 1.0, 1.0, 0, 0)
                })
                .collect(),
        )
    }

    fn known(addresses: &[&str]) -> BTreeSet<String> {
        addresses.iter().map(|a| (*a).to_owned()).collect()
    }

    fn key(revision: &str) -> RevisionKey {
        RevisionKey::new("ns", revision)
    }

    fn responses(requests: u64, server_errors: u64) -> Responses {
        Responses {
            requests,
            server_errors,
        }
    }

    #[test]
    fn fresh_reports_are_summed_per_revision() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        board.record(
            "10.0.0.1",
            report(
                ReportKind::Periodic,
                &[("web-00002", 2.0, 10.0, 1, 2), ("web-00001", 1.0, 1.0, 0, 1)],
            ),
            t0,
        );
        board.record(
            "10.0.0.2",
            report(ReportKind::Periodic, &[("web-00002", 3.0, 5.0, 0, 3)]),
            t0,
        );
        let (totals, complete) = board.totals(t0 + Duration::from_secs(1));
        assert!(complete);
        assert_eq!(
            totals[&key("web-00002")],
            Totals {
                concurrency: 5.0,
                rps: 15.0,
                held: 6,
                unusable_pods: 0,
            }
        );
        assert_eq!(
            totals[&key("web-00001")].held,
            1,
            "each revision of a Service on its own"
        );
    }

    #[test]
    fn stale_or_missing_reports_make_the_view_incomplete() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        board.record(
            "10.0.0.1",
            report(ReportKind::Periodic, &[("web-00001", 2.0, 1.0, 0, 0)]),
            t0,
        );
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
        board.record(
            "10.0.0.1",
            report(ReportKind::Poke, &[("web-00001", 0.0, 0.0, 1, 0)]),
            t0,
        );
        board.record(
            "10.0.0.9",
            report(ReportKind::Periodic, &[("web-00001", 1.0, 0.0, 0, 0)]),
            t0,
        );
        assert_eq!(board.totals(t0), (HashMap::new(), false), "neither is kept");
        board.record(
            "10.0.0.1",
            report(ReportKind::Periodic, &[("web-00001", 1.0, 0.0, 0, 0)]),
            t0,
        );
        board.set_known(known(&[]));
        assert_eq!(board.totals(t0), (HashMap::new(), true));
    }

    #[test]
    fn responses_are_summed_over_activators_since_an_instant() {
        let t0 = Instant::now();
        let at = |seconds| t0 + Duration::from_secs(seconds);
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        for second in 0..10 {
            board.record(
                "10.0.0.1",
                answered(&[("web-00002", 10, 1), ("web-00001", 90, 0)]),
                at(second),
            );
            board.record("10.0.0.2", answered(&[("web-00002", 10, 0)]), at(second));
        }
        assert_eq!(board.responses(&key("web-00002"), t0), responses(200, 10));
        assert_eq!(board.responses(&key("web-00002"), at(5)), responses(100, 5));
        assert_eq!(board.responses(&key("web-00001"), at(9)), responses(90, 0));
        assert_eq!(board.responses(&key("web-00001"), at(10)), responses(0, 0));
        assert_eq!(board.responses(&key("other"), t0), responses(0, 0));
        // Pokes and activators that are not known count no responses.
        board.record("10.0.0.9", answered(&[("web-00001", 5, 5)]), at(10));
        let mut poke = answered(&[("web-00001", 5, 5)]);
        poke.kind = ReportKind::Poke;
        board.record("10.0.0.1", poke, at(10));
        assert_eq!(board.responses(&key("web-00001"), at(10)), responses(0, 0));
    }

    #[test]
    fn reports_a_little_apart_share_a_bucket() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1", "10.0.0.2"]));
        board.record("10.0.0.1", answered(&[("web-00001", 1, 0)]), t0);
        board.record(
            "10.0.0.2",
            answered(&[("web-00001", 2, 1)]),
            t0 + Duration::from_millis(400),
        );
        assert_eq!(board.responses(&key("web-00001"), t0), responses(3, 1));
        assert_eq!(
            board.responses(&key("web-00001"), t0 + Duration::from_millis(1)),
            responses(0, 0),
            "the bucket began before"
        );
        assert_eq!(board.responses[&key("web-00001")].len(), 1);
    }

    #[test]
    fn response_history_is_bounded_and_quiet_revisions_are_forgotten() {
        let t0 = Instant::now();
        let at = |seconds| t0 + Duration::from_secs(seconds);
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1"]));
        board.record("10.0.0.1", answered(&[("deleted", 7, 7)]), t0);
        for second in 0..=1000 {
            board.record("10.0.0.1", answered(&[("web-00001", 1, 0)]), at(second));
        }
        let kept = board.responses[&key("web-00001")].len();
        assert_eq!(kept, 301, "one bucket per second of the last RESPONSE_HISTORY");
        assert_eq!(board.responses(&key("web-00001"), t0), responses(301, 0));
        assert!(!board.responses.contains_key(&key("deleted")));
        assert_eq!(board.responses(&key("deleted"), t0), responses(0, 0));
    }

    #[test]
    fn floors_hold_until_they_expire_are_replaced_or_cleared() {
        let t0 = Instant::now();
        let at = |seconds| t0 + Duration::from_secs(seconds);
        let mut board = Board::default();
        board.set_known(known(&["10.0.0.1"]));
        board.set_floor(key("web-00002"), 3, at(10));
        board.set_floor(key("web-00003"), 1, at(5));
        assert_eq!(
            board.floors(at(4)),
            HashMap::from([(key("web-00002"), 3), (key("web-00003"), 1)])
        );
        assert_eq!(board.floors(at(5)), HashMap::from([(key("web-00002"), 3)]), "expired");
        board.set_floor(key("web-00002"), 5, at(20));
        assert_eq!(board.floors(at(15)), HashMap::from([(key("web-00002"), 5)]), "replaced");
        board.set_floor(key("web-00002"), 0, at(20));
        assert!(board.floors(at(15)).is_empty(), "cleared");
        // Expired floors are dropped as reports arrive.
        board.set_floor(key("web-00004"), 2, at(5));
        board.record("10.0.0.1", answered(&[]), at(6));
        assert!(board.floors.is_empty());
    }
}
