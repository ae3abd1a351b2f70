//! Watched objects grouped by the Runway Service or revision they belong to, kept up to date event by event: a
//! change touches only its group, so a watch event costs the size of one group, not of every object in the cluster.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use kube::ResourceExt;

/// An object's identity within its kind.
type ObjectId = (String, String);

/// The objects of one kind, by group `G` (a Service's or a revision's key).
pub struct Groups<K, G> {
    /// Which group an object belongs to: `None` (not kept) for objects of none.
    group_of: fn(&K) -> Option<G>,
    groups: HashMap<G, BTreeMap<ObjectId, Arc<K>>>,
    /// The group each kept object is in, so that an object that moves (its label changed) leaves its old one.
    member_of: HashMap<ObjectId, G>,
}

impl<K: ResourceExt, G: Clone + Eq + Hash + Ord> Groups<K, G> {
    pub fn new(group_of: fn(&K) -> Option<G>) -> Self {
        Groups {
            group_of,
            groups: HashMap::new(),
            member_of: HashMap::new(),
        }
    }

    /// The objects of `key`'s group.
    pub fn group(&self, key: &G) -> Vec<Arc<K>> {
        self.groups
            .get(key)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// An object was added or changed; returns the groups that changed.
    pub fn apply(&mut self, object: K) -> Vec<G> {
        let id = id_of(&object);
        let mut changed: Vec<G> = self.remove(&id).into_iter().collect();
        if let Some(key) = (self.group_of)(&object) {
            self.groups
                .entry(key.clone())
                .or_default()
                .insert(id.clone(), Arc::new(object));
            self.member_of.insert(id, key.clone());
            if !changed.contains(&key) {
                changed.push(key);
            }
        }
        changed
    }

    /// An object was deleted; returns the group that changed, if it was in one.
    pub fn delete(&mut self, object: &K) -> Vec<G> {
        self.remove(&id_of(object)).into_iter().collect()
    }

    /// The watch listed everything again: the listed objects replace all; returns every group before or after.
    pub fn relist(&mut self, objects: Vec<K>) -> Vec<G> {
        let mut keys: Vec<G> = self.groups.drain().map(|(key, _)| key).collect();
        self.member_of.clear();
        for object in objects {
            keys.extend(self.apply(object));
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn remove(&mut self, id: &ObjectId) -> Option<G> {
        let key = self.member_of.remove(id)?;
        if let Some(group) = self.groups.get_mut(&key) {
            group.remove(id);
            if group.is_empty() {
                self.groups.remove(&key);
            }
        }
        Some(key)
    }
}

fn id_of<K: ResourceExt>(object: &K) -> ObjectId {
    (object.namespace().unwrap_or_default(), object.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use runway_api::ServiceKey;

    /// A ConfigMap standing for any labelled object: its `service` label names its group.
    fn object(name: &str, service: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: service.map(|s| [("service".to_owned(), s.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn groups() -> Groups<ConfigMap, ServiceKey> {
        Groups::new(|o| {
            let service = o.labels().get("service")?;
            Some(ServiceKey::new("default", service.clone()))
        })
    }

    fn names(groups: &Groups<ConfigMap, ServiceKey>, service: &str) -> Vec<String> {
        groups
            .group(&ServiceKey::new("default", service))
            .iter()
            .map(|o| o.name_any())
            .collect()
    }

    fn key(service: &str) -> ServiceKey {
        ServiceKey::new("default", service)
    }

    #[test]
    fn a_change_touches_only_its_group_and_a_moved_object_leaves_its_old_one() {
        let mut g = groups();
        assert_eq!(g.apply(object("a1", Some("a"))), [key("a")]);
        assert_eq!(g.apply(object("b1", Some("b"))), [key("b")]);
        assert_eq!(g.apply(object("a2", Some("a"))), [key("a")]);
        assert_eq!(names(&g, "a"), ["a1", "a2"]);
        // Relabelled from a to b: both groups change.
        assert_eq!(g.apply(object("a2", Some("b"))), [key("a"), key("b")]);
        assert_eq!(names(&g, "a"), ["a1"]);
        assert_eq!(names(&g, "b"), ["a2", "b1"]);
        // Loses its label: leaves b, joins nothing.
        assert_eq!(g.apply(object("a2", None)), [key("b")]);
        assert_eq!(g.delete(&object("a1", Some("a"))), [key("a")]);
        assert!(names(&g, "a").is_empty());
        assert!(g.delete(&object("never", Some("a"))).is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_and_names_every_group_before_or_after() {
        let mut g = groups();
        g.apply(object("a1", Some("a")));
        g.apply(object("b1", Some("b")));
        let changed = g.relist(vec![object("b2", Some("b")), object("c1", Some("c"))]);
        assert_eq!(changed, [key("a"), key("b"), key("c")]);
        assert!(names(&g, "a").is_empty());
        assert_eq!(names(&g, "b"), ["b2"]);
        assert_eq!(names(&g, "c"), ["c1"]);
    }
}
