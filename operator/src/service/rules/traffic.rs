//! The Service's routing table: spec.traffic resolved against its revisions (status.traffic), by a pure function,
//! with what the activator and `kubectl get` read from it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use runway_api::conditions::{REVISION_MISSING, TAG_COLLISION};
use runway_api::{Service, TrafficTarget, TrafficTargetStatus, names};

/// A gradual rollout under way: the latest ready revision takes `next_percent` of each latestRevision target's share,
/// `previous` the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    pub(crate) previous: &'a str,
    pub(crate) next_percent: i32,
}

/// What the routing table is resolved from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Input<'a> {
    /// spec.traffic; None routes everything to the latest revision.
    pub(crate) targets: Option<&'a [TrafficTarget]>,
    /// The names of the Service's revisions.
    pub(crate) revisions: &'a BTreeSet<String>,
    pub(crate) latest_created: Option<&'a str>,
    pub(crate) latest_ready: Option<&'a str>,
    pub(crate) split: Option<Split<'a>>,
    /// First labels of hosts other Services hold (see `taken`): a tag whose `{tag}-{service}` is among them gets no
    /// route.
    pub(crate) taken: &'a BTreeSet<String>,
    /// The routing table as last written, kept while spec.traffic names a revision that does not exist.
    pub(crate) previous: &'a [TrafficTargetStatus],
}

/// Why a part of spec.traffic is not routed as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The tag's host is another Service's: the tag gets no route.
    TagCollision { tag: String, host: String },
    /// A target names a revision the Service does not have.
    RevisionMissing { revision: String },
}

impl Problem {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Problem::TagCollision { .. } => TAG_COLLISION,
            Problem::RevisionMissing { .. } => REVISION_MISSING,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Problem::TagCollision { tag, host } => {
                format!("tag {tag} is not routed: its host {host} is another Service's")
            }
            Problem::RevisionMissing { revision } => format!(
                "spec.traffic names revision {revision}, which this Service does not have; the previous routing stays"
            ),
        }
    }
}

/// The resolved table and what could not be resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Resolution {
    pub(crate) traffic: Vec<TrafficTargetStatus>,
    pub(crate) problems: Vec<Problem>,
}

/// Resolves spec.traffic for Service `service`; `url` gives a tag's URL.
/// - No spec.traffic: all traffic to the latest revision.
/// - A latestRevision target goes to the latest ready revision, or, when none was ever ready, to the latest created
///   one (the first deploy's requests then wait for its pods or fail fast with its failure). During a rollout its
///   share is split between the latest ready revision and the previous one.
/// - Targets keep their order and stay separate entries, also when they name the same revision.
/// - A tag whose host another Service holds is left out (the target keeps its percent).
/// - While a named revision is missing, the previous table stays (a typo must not move traffic); with no previous
///   table, the missing targets are left out.
pub(crate) fn resolve(input: &Input, service: &str, url: impl Fn(&str) -> String) -> Resolution {
    let latest_everywhere = [TrafficTarget {
        latest_revision: Some(true),
        percent: Some(100),
        ..TrafficTarget::default()
    }];
    let targets = input.targets.unwrap_or(&latest_everywhere);
    let mut problems = vec![];
    for name in targets.iter().filter_map(|t| t.revision_name.as_ref()) {
        if !input.revisions.contains(name) {
            problems.push(Problem::RevisionMissing { revision: name.clone() });
        }
    }
    let previous_holds = input
        .previous
        .iter()
        .all(|t| input.revisions.contains(&t.revision_name));
    if !problems.is_empty() && !input.previous.is_empty() && previous_holds {
        return Resolution {
            traffic: input.previous.to_vec(),
            problems,
        };
    }
    let mut traffic = vec![];
    for target in targets {
        let latest = target.latest_revision == Some(true);
        let revision = match &target.revision_name {
            Some(name) if input.revisions.contains(name) => name.as_str(),
            Some(_) => continue,
            None => match input.latest_ready.or(input.latest_created) {
                Some(name) => name,
                None => continue,
            },
        };
        let tag = target.tag.as_ref().filter(|tag| {
            let host = names::tag_route_name(tag, service);
            let free = !input.taken.contains(&host);
            if !free {
                problems.push(Problem::TagCollision {
                    tag: (*tag).clone(),
                    host,
                });
            }
            free
        });
        let percent = target.percent.unwrap_or(0);
        let entry = |revision: &str, percent: i32, latest: bool, tag: Option<&String>| TrafficTargetStatus {
            revision_name: revision.to_owned(),
            latest_revision: latest,
            percent,
            tag: tag.cloned(),
            url: tag.map(|tag| url(tag)),
        };
        match input.split.filter(|_| latest && Some(revision) == input.latest_ready) {
            Some(split) => {
                let next = split_share(percent, split.next_percent);
                if next > 0 || tag.is_some() {
                    traffic.push(entry(revision, next, true, tag));
                }
                if percent - next > 0 {
                    traffic.push(entry(split.previous, percent - next, false, None));
                }
            }
            None => traffic.push(entry(revision, percent, latest, tag)),
        }
    }
    Resolution { traffic, problems }
}

/// `next_percent` percent of `percent`, rounded to the nearest whole percent.
fn split_share(percent: i32, next_percent: i32) -> i32 {
    (percent * next_percent.clamp(0, 100) + 50) / 100
}

/// The first labels of `service`'s tag hosts (`{tag}-{service}`) that Services of the namespace other than `service`
/// hold, and that its tags therefore cannot have: another Service's name (exact Service hosts win), or a tag host of a
/// Service created before it (the first to claim a tag host keeps it). Only `service`'s own tag hosts are looked
/// for: a Service without tags costs nothing, whatever the number of its neighbours.
pub(crate) fn taken<'a>(
    service: &Service,
    namespace_services: impl IntoIterator<Item = &'a Service>,
) -> BTreeSet<String> {
    let name = service.name_any();
    let tag_hosts = |s: &Service| -> Vec<String> {
        let tags = s.spec.traffic.iter().flatten().filter_map(|t| t.tag.as_deref());
        tags.map(|tag| names::tag_route_name(tag, &s.name_any())).collect()
    };
    let own: BTreeSet<String> = tag_hosts(service).into_iter().collect();
    if own.is_empty() {
        return BTreeSet::new();
    }
    let age = |s: &Service| (s.metadata.creation_timestamp.as_ref().map(|t| t.0), s.name_any());
    let own_age: (Option<Timestamp>, String) = age(service);
    let mut taken = BTreeSet::new();
    for other in namespace_services.into_iter().filter(|s| s.name_any() != name) {
        let mut held = vec![names::route_service_name(&other.name_any())];
        if age(other) < own_age {
            held.extend(tag_hosts(other));
        }
        taken.extend(held.into_iter().filter(|host| own.contains(host)));
    }
    taken
}

/// What the table gives one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Share {
    /// Its percent, summed over the entries that name it.
    pub(crate) percent: i32,
    pub(crate) tags: Vec<String>,
}

impl Share {
    /// Whether the activator routes requests to it: a percent or a tag.
    pub(crate) fn routed(&self) -> bool {
        self.percent > 0 || !self.tags.is_empty()
    }
}

/// Each routed revision's share.
pub(crate) fn shares(traffic: &[TrafficTargetStatus]) -> BTreeMap<String, Share> {
    let mut shares: BTreeMap<String, Share> = BTreeMap::new();
    for target in traffic {
        let share = shares.entry(target.revision_name.clone()).or_default();
        share.percent += target.percent;
        share.tags.extend(target.tag.clone());
    }
    shares
}

/// The printer column: `{revision}={percent}%` per revision with a percent, highest first, e.g.
/// `hello-00002=90% hello-00001=10%`; None when no revision has one.
pub(crate) fn summary(traffic: &[TrafficTargetStatus]) -> Option<String> {
    let mut routed: Vec<(String, i32)> = shares(traffic)
        .into_iter()
        .filter(|(_, share)| share.percent > 0)
        .map(|(name, share)| (name, share.percent))
        .collect();
    routed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let parts: Vec<String> = routed
        .iter()
        .map(|(name, percent)| format!("{name}={percent}%"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn revisions(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn target(revision: Option<&str>, percent: i32, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget {
            revision_name: revision.map(str::to_owned),
            latest_revision: revision.is_none().then_some(true),
            percent: Some(percent),
            tag: tag.map(str::to_owned),
        }
    }

    fn status(revision: &str, percent: i32, latest: bool, tag: Option<&str>) -> TrafficTargetStatus {
        TrafficTargetStatus {
            revision_name: revision.into(),
            latest_revision: latest,
            percent,
            tag: tag.map(str::to_owned),
            url: tag.map(|t| format!("http://{t}-hello.default.example.com")),
        }
    }

    fn url(tag: &str) -> String {
        names::tag_url(tag, "hello", "default", "example.com", Default::default())
    }

    struct Case<'a> {
        targets: Option<Vec<TrafficTarget>>,
        revisions: BTreeSet<String>,
        latest_created: Option<&'a str>,
        latest_ready: Option<&'a str>,
        split: Option<Split<'a>>,
        taken: BTreeSet<String>,
        previous: Vec<TrafficTargetStatus>,
    }

    impl Default for Case<'_> {
        fn default() -> Self {
            Case {
                targets: None,
                revisions: revisions(&["hello-00001", "hello-00002"]),
                latest_created: Some("hello-00002"),
                latest_ready: Some("hello-00002"),
                split: None,
                taken: BTreeSet::new(),
                previous: vec![],
            }
        }
    }

    impl Case<'_> {
        fn resolve(&self) -> Resolution {
            let input = Input {
                targets: self.targets.as_deref(),
                revisions: &self.revisions,
                latest_created: self.latest_created,
                latest_ready: self.latest_ready,
                split: self.split,
                taken: &self.taken,
                previous: &self.previous,
            };
            resolve(&input, "hello", url)
        }
    }

    #[test]
    fn without_spec_traffic_all_goes_to_the_latest_ready_revision() {
        let resolved = Case::default().resolve();
        assert_eq!(resolved.traffic, [status("hello-00002", 100, true, None)]);
        assert!(resolved.problems.is_empty());
    }

    #[test]
    fn a_new_revision_that_is_not_ready_takes_nothing_while_an_older_one_is_ready() {
        let case = Case {
            revisions: revisions(&["hello-00001", "hello-00002"]),
            latest_created: Some("hello-00002"),
            latest_ready: Some("hello-00001"),
            ..Case::default()
        };
        assert_eq!(case.resolve().traffic, [status("hello-00001", 100, true, None)]);
    }

    #[test]
    fn before_any_revision_was_ready_the_latest_created_one_takes_the_requests() {
        let case = Case {
            revisions: revisions(&["hello-00001"]),
            latest_created: Some("hello-00001"),
            latest_ready: None,
            ..Case::default()
        };
        assert_eq!(case.resolve().traffic, [status("hello-00001", 100, true, None)]);
        let nothing = Case {
            revisions: revisions(&[]),
            latest_created: None,
            latest_ready: None,
            ..Case::default()
        };
        assert_eq!(nothing.resolve(), Resolution::default(), "no revision could be created");
    }

    #[test]
    fn a_split_with_tags_keeps_each_target_and_its_url() {
        let case = Case {
            targets: Some(vec![
                target(Some("hello-00001"), 90, Some("stable")),
                target(None, 10, Some("canary")),
                target(Some("hello-00001"), 0, Some("old")),
            ]),
            ..Case::default()
        };
        let resolved = case.resolve();
        assert_eq!(
            resolved.traffic,
            [
                status("hello-00001", 90, false, Some("stable")),
                status("hello-00002", 10, true, Some("canary")),
                status("hello-00001", 0, false, Some("old")),
            ]
        );
        assert!(resolved.problems.is_empty());
        let shares = shares(&resolved.traffic);
        assert_eq!(
            shares["hello-00001"],
            Share {
                percent: 90,
                tags: vec!["stable".into(), "old".into()]
            }
        );
        assert_eq!(
            summary(&resolved.traffic).as_deref(),
            Some("hello-00001=90% hello-00002=10%")
        );
    }

    #[test]
    fn a_tag_that_collides_is_dropped_and_reported_but_its_percent_stays() {
        let case = Case {
            targets: Some(vec![
                target(None, 100, Some("canary")),
                target(Some("hello-00001"), 0, Some("blue")),
            ]),
            taken: ["canary-hello".to_owned()].into(),
            ..Case::default()
        };
        let resolved = case.resolve();
        assert_eq!(
            resolved.traffic,
            [
                status("hello-00002", 100, true, None),
                status("hello-00001", 0, false, Some("blue")),
            ]
        );
        assert_eq!(
            resolved.problems,
            [Problem::TagCollision {
                tag: "canary".into(),
                host: "canary-hello".into()
            }]
        );
        assert_eq!(resolved.problems[0].reason(), "TagCollision");
    }

    #[test]
    fn a_missing_revision_keeps_the_previous_table() {
        let previous = vec![status("hello-00001", 100, false, None)];
        let case = Case {
            targets: Some(vec![target(Some("hello-00009"), 100, None)]),
            previous: previous.clone(),
            ..Case::default()
        };
        let resolved = case.resolve();
        assert_eq!(resolved.traffic, previous);
        assert_eq!(
            resolved.problems,
            [Problem::RevisionMissing {
                revision: "hello-00009".into()
            }]
        );
        let first = Case {
            targets: Some(vec![target(Some("hello-00009"), 50, None), target(None, 50, None)]),
            ..Case::default()
        };
        assert_eq!(
            first.resolve().traffic,
            [status("hello-00002", 50, true, None)],
            "nothing to keep: the missing target is left out"
        );
    }

    #[test]
    fn a_rollout_splits_the_latest_share_between_previous_and_next() {
        let split = |next_percent| Case {
            targets: Some(vec![
                target(None, 80, Some("latest")),
                target(Some("hello-00001"), 20, None),
            ]),
            split: Some(Split {
                previous: "hello-00001",
                next_percent,
            }),
            ..Case::default()
        };
        assert_eq!(
            split(25).resolve().traffic,
            [
                status("hello-00002", 20, true, Some("latest")),
                status("hello-00001", 60, false, None),
                status("hello-00001", 20, false, None),
            ]
        );
        assert_eq!(
            summary(&split(25).resolve().traffic).as_deref(),
            Some("hello-00001=80% hello-00002=20%")
        );
        assert_eq!(
            split(0).resolve().traffic[..2],
            [
                status("hello-00002", 0, true, Some("latest")),
                status("hello-00001", 80, false, None)
            ],
            "the tag stays on the next revision"
        );
        assert_eq!(
            split(100).resolve().traffic[..2],
            [
                status("hello-00002", 80, true, Some("latest")),
                status("hello-00001", 20, false, None)
            ]
        );
        let untagged = Case {
            split: Some(Split {
                previous: "hello-00001",
                next_percent: 0,
            }),
            ..Case::default()
        };
        assert_eq!(
            untagged.resolve().traffic,
            [status("hello-00001", 100, false, None)],
            "a 0% entry without a tag is left out"
        );
        assert_eq!(split_share(10, 33), 3);
        assert_eq!(split_share(100, 150), 100);
    }

    fn svc(name: &str, created: i64, tags: &[&str]) -> Service {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.runway.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}}
        }))
        .unwrap();
        s.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        s.spec.traffic = Some(tags.iter().map(|t| target(None, 0, Some(t))).collect());
        s
    }

    #[test]
    fn a_tag_host_is_taken_by_a_service_of_that_name_or_an_older_services_tag() {
        let me = svc("a-b", 100, &["x", "y"]);
        let others = [
            me.clone(),
            svc("x-a-b", 200, &[]),
            svc("b", 50, &["y-a"]),
            svc("world", 50, &["q"]),
        ];
        assert_eq!(
            taken(&me, &others),
            ["x-a-b", "y-a-b"].into_iter().map(str::to_owned).collect()
        );
        let younger = [svc("b", 300, &["y-a"])];
        assert!(
            taken(&me, &younger).is_empty(),
            "the first to claim a tag host keeps it"
        );
    }

    #[test]
    fn a_service_without_tags_has_nothing_taken() {
        let me = svc("hello", 100, &[]);
        let others = [svc("canary-hello", 200, &[]), svc("world", 50, &["hello"])];
        assert!(taken(&me, &others).is_empty());
    }

    #[test]
    fn the_summary_is_empty_when_nothing_has_a_percent() {
        assert_eq!(summary(&[status("hello-00001", 0, false, Some("x"))]), None);
        assert!(shares(&[status("hello-00001", 0, false, Some("x"))])["hello-00001"].routed());
        assert!(!Share::default().routed());
    }
}
