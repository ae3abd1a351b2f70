//! Which of a Service's revisions garbage collection deletes: a pure decision.

use std::collections::BTreeSet;

/// One revision as garbage collection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    pub(crate) name: &'a str,
    pub(crate) generation: i64,
    /// Its Deployment still has pods, or asks for some.
    pub(crate) has_pods: bool,
}

/// The revisions to delete: all but those in `keep` (routed or tagged, latest created, latest ready, in a rollout)
/// and the `limit` most recent by generation. A revision that still has pods waits until the autoscaler has scaled
/// it to zero, so that requests it is serving finish first. Sorted by name.
pub(crate) fn collect(revisions: &[Candidate], keep: &BTreeSet<&str>, limit: usize) -> Vec<String> {
    let mut newest_first: Vec<&Candidate> = revisions.iter().collect();
    newest_first.sort_by(|a, b| b.generation.cmp(&a.generation).then_with(|| b.name.cmp(a.name)));
    let mut doomed: Vec<String> = newest_first
        .into_iter()
        .skip(limit)
        .filter(|r| !keep.contains(r.name) && !r.has_pods)
        .map(|r| r.name.to_owned())
        .collect();
    doomed.sort();
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, generation: i64, has_pods: bool) -> Candidate<'_> {
        Candidate {
            name,
            generation,
            has_pods,
        }
    }

    #[test]
    fn the_most_recent_and_the_kept_stay_the_rest_goes() {
        let revisions = [
            c("a-1", 1, false),
            c("a-2", 2, false),
            c("a-3", 3, false),
            c("a-4", 4, false),
            c("a-5", 5, false),
        ];
        let keep = BTreeSet::from(["a-1"]);
        assert_eq!(collect(&revisions, &keep, 2), ["a-2", "a-3"]);
        assert_eq!(collect(&revisions, &keep, 10), Vec::<String>::new());
        assert_eq!(
            collect(&revisions, &BTreeSet::from(["a-5", "a-3"]), 0),
            ["a-1", "a-2", "a-4"],
            "limit 0 keeps only what must stay"
        );
    }

    #[test]
    fn a_revision_with_pods_waits_for_zero() {
        let revisions = [c("a-1", 1, true), c("a-2", 2, false), c("a-3", 3, false)];
        assert_eq!(collect(&revisions, &BTreeSet::new(), 1), ["a-2"]);
    }
}
