//! Which revision a Service's spec needs, and which of its revisions is the latest ready: pure decisions over the
//! Service and the revisions that exist.

use std::sync::Arc;

use kube::ResourceExt;
use runway_api::{Revision, RevisionSpec, Service, names};

use crate::children::is_controlled_by;

/// What the Service's current spec needs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan {
    /// An existing revision of the Service runs this spec.
    Reuse(Arc<Revision>),
    /// No revision runs it: create one with this name.
    Create(String),
    /// The name the spec asks for belongs to a revision that cannot be used; the message says why.
    Taken(String),
}

/// The Service's generation a revision was made from (its GENERATION_LABEL), 0 when unknown.
pub(crate) fn generation(revision: &Revision) -> i64 {
    revision
        .labels()
        .get(names::GENERATION_LABEL)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// The revisions the Service controls, among the revisions of its namespace, oldest first (so that reconciles work
/// through them in a stable order).
pub(crate) fn owned(all: &[Arc<Revision>], service_uid: &str) -> Vec<Arc<Revision>> {
    let mut owned: Vec<Arc<Revision>> = all
        .iter()
        .filter(|r| is_controlled_by(r.as_ref(), service_uid))
        .cloned()
        .collect();
    owned.sort_by_cached_key(|r| (generation(r), r.name_any()));
    owned
}

/// Decides the revision for the Service's spec, given every revision of its namespace (names are unique there,
/// whatever their Service):
/// - a name set in spec.template.metadata.name is used as is: its revision is reused when the Service controls it
///   and it runs this spec, created when it does not exist, and otherwise the name is taken;
/// - without one, a revision of the Service made from this generation or running an equal spec is reused (changes of
///   scaling, traffic or visibility make none, and going back to an earlier template goes back to its revision);
///   else `{service}-{generation:05}` is created.
pub(crate) fn plan(service: &Service, uid: &str, all: &[Arc<Revision>]) -> Plan {
    let wanted = RevisionSpec::from_service_spec(&service.spec);
    let current = service.metadata.generation.unwrap_or(0);
    let find = |name: &str| all.iter().find(|r| r.name_any() == name);
    let ours = |r: &Revision| is_controlled_by(r, uid);
    // A revision made from this very generation runs this spec, whatever a comparison of defaults might say.
    let fits = |r: &Revision| ours(r) && (generation(r) == current || same_spec(&r.spec, &wanted));
    let named = service.spec.template.metadata.as_ref().and_then(|m| m.name.clone());
    if named.is_none() {
        let newest = all
            .iter()
            .filter(|r| fits(r))
            .max_by_key(|r| (generation(r) == current, generation(r), r.name_any()));
        if let Some(revision) = newest {
            return Plan::Reuse(revision.clone());
        }
    }
    let name = named.unwrap_or_else(|| names::revision_name(&service.name_any(), current));
    match find(&name) {
        None => Plan::Create(name),
        Some(r) if fits(r) => Plan::Reuse(r.clone()),
        Some(r) if !ours(r) => Plan::Taken(format!(
            "revision {name} exists and belongs to {}; choose another spec.template.metadata.name",
            r.labels()
                .get(names::SERVICE_LABEL)
                .map_or_else(|| "another owner".to_owned(), |s| format!("Service {s}"))
        )),
        Some(_) => Plan::Taken(format!(
            "revision {name} exists with another template, and a revision never changes; choose a new \
             spec.template.metadata.name or leave it out"
        )),
    }
}

/// Whether two revision specs run the same: template metadata left empty equals none (a template that only names its
/// revision has metadata with nothing else once the name is taken out).
fn same_spec(a: &RevisionSpec, b: &RevisionSpec) -> bool {
    let normal = |spec: &RevisionSpec| {
        let mut spec = spec.clone();
        spec.template.metadata = spec
            .template
            .metadata
            .filter(|m| m.name.is_some() || !m.labels.is_empty() || !m.annotations.is_empty());
        spec
    };
    normal(a) == normal(b)
}

/// One revision as the latest-ready decision sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Readiness<'a> {
    pub(crate) name: &'a str,
    pub(crate) generation: i64,
    /// Its Ready condition is True.
    pub(crate) ready: bool,
}

/// The latest ready revision: the latest created one once it is ready; until then the previous latest ready one
/// while it exists (it never moves to a revision that is not ready); else the newest ready one by generation.
pub(crate) fn latest_ready(
    latest_created: Option<&str>,
    previous: Option<&str>,
    revisions: &[Readiness],
) -> Option<String> {
    let find = |name: &str| revisions.iter().find(|r| r.name == name);
    if let Some(created) = latest_created.and_then(find).filter(|r| r.ready) {
        return Some(created.name.to_owned());
    }
    if let Some(previous) = previous.and_then(find) {
        return Some(previous.name.to_owned());
    }
    revisions
        .iter()
        .filter(|r| r.ready)
        .max_by_key(|r| (r.generation, r.name))
        .map(|r| r.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use runway_api::{ServiceSpec, ServiceTemplate, TemplateMetadata};

    fn service(image: &str, generation: i64) -> Service {
        let spec = ServiceSpec {
            template: ServiceTemplate {
                metadata: None,
                spec: PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                },
            },
            container_concurrency: 0,
            timeout_seconds: 300,
            progress_deadline_seconds: 120,
            scaling: Default::default(),
            traffic: None,
            rollout: None,
            revision_history_limit: None,
            visibility: Default::default(),
            invokers: Default::default(),
            access_log_percent: None,
        };
        let mut s = Service::new("hello", spec);
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("uid-1".into());
        s.metadata.generation = Some(generation);
        s
    }

    /// A revision of `owner` made from `image` at `generation`.
    fn revision(name: &str, image: &str, generation: i64, owner: &str) -> Arc<Revision> {
        let mut r = crate::service::rules::desired::revision(
            &service(image, generation),
            name,
            crate::service::rules::pod_security::PodSecurity::Restricted,
        );
        r.metadata.owner_references = Some(vec![OwnerReference {
            uid: owner.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        Arc::new(r)
    }

    fn named(mut s: Service, name: &str) -> Service {
        s.spec.template.metadata = Some(TemplateMetadata {
            name: Some(name.into()),
            ..TemplateMetadata::default()
        });
        s
    }

    #[test]
    fn a_new_spec_makes_a_revision_named_after_the_generation() {
        let all = [revision("hello-00001", "app:1", 1, "uid-1")];
        assert_eq!(
            plan(&service("app:2", 3), "uid-1", &all),
            Plan::Create("hello-00003".into())
        );
        assert_eq!(
            plan(&service("app:1", 1), "uid-1", &[]),
            Plan::Create("hello-00001".into())
        );
    }

    #[test]
    fn an_equal_spec_reuses_its_revision_so_scaling_changes_make_none() {
        let all = [
            revision("hello-00001", "app:1", 1, "uid-1"),
            revision("hello-00002", "app:2", 2, "uid-1"),
        ];
        let mut scaled = service("app:2", 3);
        scaled.spec.scaling.min_scale = Some(2);
        assert_eq!(plan(&scaled, "uid-1", &all), Plan::Reuse(all[1].clone()));
        assert_eq!(
            plan(&service("app:1", 4), "uid-1", &all),
            Plan::Reuse(all[0].clone()),
            "back to the first template: back to its revision"
        );
        let other = [revision("hello-00001", "app:1", 1, "uid-other")];
        assert_eq!(
            plan(&service("app:1", 2), "uid-1", &other),
            Plan::Create("hello-00002".into()),
            "another Service's revision is not reused"
        );
    }

    #[test]
    fn the_revision_of_this_generation_is_reused_even_if_its_spec_reads_differently() {
        let all = [revision("hello-00003", "app:defaulted", 3, "uid-1")];
        assert_eq!(plan(&service("app:2", 3), "uid-1", &all), Plan::Reuse(all[0].clone()));
    }

    #[test]
    fn a_chosen_name_is_created_reused_or_refused() {
        let all = [
            revision("hello-blue", "app:1", 1, "uid-1"),
            revision("hello-green", "app:2", 2, "other-uid"),
        ];
        assert_eq!(
            plan(&named(service("app:1", 5), "hello-blue"), "uid-1", &all),
            Plan::Reuse(all[0].clone())
        );
        assert_eq!(
            plan(&named(service("app:1", 5), "hello-red"), "uid-1", &all),
            Plan::Create("hello-red".into()),
            "a new name makes a new revision even for an equal spec"
        );
        let Plan::Taken(changed) = plan(&named(service("app:3", 5), "hello-blue"), "uid-1", &all) else {
            panic!("a revision never changes");
        };
        assert!(changed.contains("exists with another template"), "{changed}");
        let Plan::Taken(foreign) = plan(&named(service("app:2", 5), "hello-green"), "uid-1", &all) else {
            panic!("another owner's revision");
        };
        assert!(foreign.contains("belongs to Service hello"), "{foreign}");
    }

    fn r(name: &str, generation: i64, ready: bool) -> Readiness<'_> {
        Readiness {
            name,
            generation,
            ready,
        }
    }

    #[test]
    fn latest_ready_follows_the_latest_created_once_ready_and_never_moves_to_a_failing_one() {
        let revisions = [r("a-1", 1, true), r("a-2", 2, true), r("a-3", 3, false)];
        assert_eq!(
            latest_ready(Some("a-2"), Some("a-1"), &revisions).as_deref(),
            Some("a-2")
        );
        assert_eq!(
            latest_ready(Some("a-3"), Some("a-2"), &revisions).as_deref(),
            Some("a-2"),
            "a-3 is not ready: the previous stays"
        );
        assert_eq!(
            latest_ready(Some("a-1"), Some("a-2"), &revisions).as_deref(),
            Some("a-1"),
            "back to an older template: its revision, once ready"
        );
        assert_eq!(
            latest_ready(Some("a-3"), None, &revisions).as_deref(),
            Some("a-2"),
            "without a previous one (an upgrade), the newest ready"
        );
        assert_eq!(
            latest_ready(Some("a-3"), Some("gone"), &revisions).as_deref(),
            Some("a-2"),
            "a deleted previous one is replaced"
        );
        assert_eq!(latest_ready(Some("a-3"), None, &[r("a-3", 3, false)]), None);
    }
}
