//! The mark a frozen pod carries (annotation `serving.runway.dev/frozen`, `runway_api::names::FROZEN_ANNOTATION`):
//! `{instance}/{sequence}`, which agent instance froze it and that instance's count of freezes. The activator reads
//! it to know a pod is frozen; an agent at start removes every mark that is not its own, since it has just thawed
//! every pod.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use runway_api::names::FROZEN_ANNOTATION;

/// One run of the agent: 16 hex digits, random at each start, so that marks of an earlier run are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance(u64);

impl Instance {
    /// A new random instance id.
    pub fn random() -> Instance {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 8];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random source answers");
        Instance(u64::from_be_bytes(bytes))
    }

    #[cfg(test)]
    pub fn fixed(id: u64) -> Instance {
        Instance(id)
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A mark: which instance froze the pod, and its sequence number in that instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub instance: Instance,
    pub sequence: u64,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.instance, self.sequence)
    }
}

impl Mark {
    /// Reads a mark; `None` for a value this agent never writes.
    pub fn parse(text: &str) -> Option<Mark> {
        let (instance, sequence) = text.split_once('/')?;
        let hex = instance.len() == 16 && instance.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Mark {
            instance: Instance(u64::from_str_radix(instance, 16).ok().filter(|_| hex)?),
            sequence: sequence.parse().ok()?,
        })
    }
}

/// Hands out one instance's marks, in sequence.
#[derive(Debug)]
pub struct Marks {
    instance: Instance,
    next: AtomicU64,
}

impl Marks {
    pub fn new(instance: Instance) -> Marks {
        Marks {
            instance,
            next: AtomicU64::new(1),
        }
    }

    pub fn instance(&self) -> Instance {
        self.instance
    }

    pub fn next(&self) -> Mark {
        Mark {
            instance: self.instance,
            sequence: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// A mark to remove: the pod, and the value seen (the removal is conditional on it, so that a newer mark stays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleMark {
    pub namespace: String,
    pub name: String,
    pub value: String,
}

/// The marks on `pods` that `instance` did not write: at start, all of them (an unreadable value too).
pub fn stale_marks<'a>(pods: impl IntoIterator<Item = &'a Pod>, instance: Instance) -> Vec<StaleMark> {
    pods.into_iter()
        .filter_map(|pod| {
            let value = pod.annotations().get(FROZEN_ANNOTATION)?;
            let own = Mark::parse(value).is_some_and(|mark| mark.instance == instance);
            (!own).then(|| StaleMark {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
                value: value.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, mark: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        if let Some(mark) = mark {
            pod.annotations_mut().insert(FROZEN_ANNOTATION.into(), mark.into());
        }
        pod
    }

    #[test]
    fn a_mark_is_the_instance_in_16_hex_digits_and_the_sequence() {
        let marks = Marks::new(Instance::fixed(0xab));
        assert_eq!(marks.next().to_string(), "00000000000000ab/1");
        let second = marks.next();
        assert_eq!(second.to_string(), "00000000000000ab/2");
        assert_eq!(Mark::parse("00000000000000ab/2"), Some(second));
    }

    #[test]
    fn random_instances_differ_and_print_as_16_hex_digits() {
        let (a, b) = (Instance::random(), Instance::random());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 16);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    }

    #[test]
    fn values_the_agent_never_writes_are_not_marks() {
        for bad in [
            "",
            "abc",
            "00000000000000ab",
            "00000000000000ab/",
            "ab/1",
            "0000000000000zab/1",
            "00000000000000ab/x",
        ] {
            assert_eq!(Mark::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn at_start_every_mark_of_another_instance_is_stale_and_its_value_kept() {
        let me = Instance::fixed(1);
        let pods = [
            pod("unmarked", None),
            pod("mine", Some("0000000000000001/7")),
            pod("earlier-run", Some("0000000000000002/3")),
            pod("garbled", Some("frozen")),
        ];
        let stale = stale_marks(&pods, me);
        assert_eq!(
            stale,
            vec![
                StaleMark {
                    namespace: "default".into(),
                    name: "earlier-run".into(),
                    value: "0000000000000002/3".into()
                },
                StaleMark {
                    namespace: "default".into(),
                    name: "garbled".into(),
                    value: "frozen".into()
                },
            ]
        );
    }
}
