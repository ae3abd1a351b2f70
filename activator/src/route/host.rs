//! Which Service (or which tag of a Service) a request is for, from its Host header or HTTP/2 :authority.

use std::borrow::Cow;

use runway_api::ServiceKey;

/// The activator's two entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Faces the outside (a load balancer, an ingress): only hosts under the domain, only External Services.
    External,
    /// For pods of the cluster: every host form, every Service.
    Internal,
}

/// What a host's first label names in its namespace: a Service, or a tag of one (`{tag}-{service}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    Service(ServiceKey),
    Tag { service: ServiceKey, tag: String },
}

/// What `{label}.{namespace}` (as [`service_for_host`] gives it) names, given the Services that exist and their
/// tags: the Service `label` itself when it exists, as an exact Service host wins over a tag host; else the first way
/// of reading `label` as `{tag}-{service}`, shortest tag first, whose Service has that tag. Tags and Service names both
/// contain '-', so a label may read several ways; the operator refuses a tag whose host is another Service's, and
/// the shortest tag first keeps the choice deterministic otherwise.
pub fn resolve(
    key: ServiceKey,
    exists: impl Fn(&ServiceKey) -> bool,
    has_tag: impl Fn(&ServiceKey, &str) -> bool,
) -> Option<Named> {
    if exists(&key) {
        return Some(Named::Service(key));
    }
    key.name
        .match_indices('-')
        .map(|(dash, _)| (&key.name[..dash], &key.name[dash + 1..]))
        .filter(|(tag, service)| is_dns_label(tag) && is_dns_label(service))
        .find_map(|(tag, service)| {
            let service = ServiceKey::new(key.namespace.as_str(), service);
            has_tag(&service, tag).then(|| Named::Tag {
                service,
                tag: tag.to_owned(),
            })
        })
}

/// The Service a host names: `{name}.{namespace}` followed by `.{domain}`, `.svc.cluster.local`, `.svc` or nothing.
/// A port and a trailing dot are ignored and the match is case-insensitive. `None` when the host names no Service.
pub fn service_for_host(host: &str, domain: &str) -> Option<ServiceKey> {
    let host = host_name(host);
    under_domain(&host, domain)
        .into_iter()
        .chain(
            [".svc.cluster.local", ".svc", ""]
                .into_iter()
                .filter_map(|suffix| host.strip_suffix(suffix)),
        )
        .find_map(name_and_namespace)
}

/// The Service a host names in the form the external entry point accepts: `{name}.{namespace}.{domain}` only.
pub fn service_for_domain_host(host: &str, domain: &str) -> Option<ServiceKey> {
    under_domain(&host_name(host), domain).and_then(name_and_namespace)
}

/// The host name a Host header or authority names: without port and trailing dot, lower-case. Hosts are nearly
/// always lower-case already: only allocate when they are not (this runs for every request).
pub fn host_name(host: &str) -> Cow<'_, str> {
    let host = strip_port(host).trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// What comes before `.{domain}` in `host`.
fn under_domain<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let domain = domain.trim_matches('.');
    host.len()
        .checked_sub(domain.len() + 1)
        .filter(|&dot| host.as_bytes()[dot] == b'.' && host[dot + 1..].eq_ignore_ascii_case(domain))
        .map(|dot| &host[..dot])
}

/// `host` without a trailing `:port`; IPv6 literals (`[::1]:80`) keep their brackets and never name a Service.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn name_and_namespace(labels: &str) -> Option<ServiceKey> {
    let (name, namespace) = labels.split_once('.')?;
    (is_dns_label(name) && is_dns_label(namespace)).then(|| ServiceKey::new(namespace, name))
}

pub(crate) fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(host: &str) -> Option<ServiceKey> {
        service_for_host(host, "example.com")
    }

    #[test]
    fn every_host_form_names_the_service() {
        let hello = Some(ServiceKey::new("default", "hello"));
        for host in [
            "hello.default.example.com",
            "hello.default.svc.cluster.local",
            "hello.default.svc",
            "hello.default",
        ] {
            assert_eq!(key(host), hello, "{host}");
        }
    }

    #[test]
    fn port_case_and_trailing_dot_are_ignored() {
        let hello = Some(ServiceKey::new("default", "hello"));
        assert_eq!(key("hello.default.example.com:8080"), hello);
        assert_eq!(key("HeLLo.Default.EXAMPLE.com"), hello);
        assert_eq!(key("hello.default.svc.cluster.local."), hello);
        assert_eq!(key("hello.default:80"), hello);
    }

    #[test]
    fn hosts_that_name_no_service_are_rejected() {
        for host in [
            "",
            "hello",
            "a.b.c.example.com",
            "hello.default.other.org",
            "hello..example.com",
            "-x.default",
            "hel_lo.default",
            "[::1]:8080",
            "127.0.0.1:8080",
            "hello.default.svc.cluster",
            "héllo.default.example.com",
            "hello.défault",
            "é.example.com",
        ] {
            assert_eq!(key(host), None, "{host}");
        }
    }

    #[test]
    fn the_external_form_is_the_domain_form_only() {
        let hello = Some(ServiceKey::new("default", "hello"));
        assert_eq!(
            service_for_domain_host("Hello.default.example.com.:80", "example.com"),
            hello
        );
        for host in [
            "hello.default.svc.cluster.local",
            "hello.default.svc",
            "hello.default",
            "hello.default.other.org",
        ] {
            assert_eq!(service_for_domain_host(host, "example.com"), None, "{host}");
        }
    }

    #[test]
    fn the_domain_is_configurable() {
        assert_eq!(
            service_for_host("api.prod.apps.corp.net", "apps.corp.net"),
            Some(ServiceKey::new("prod", "api"))
        );
        assert_eq!(service_for_host("api.prod.example.com", "apps.corp.net"), None);
        assert_eq!(
            service_for_host("api.prod.Apps.Corp.Net", ".apps.corp.net."),
            Some(ServiceKey::new("prod", "api"))
        );
    }

    fn named(host: &str, services: &[&str], tags: &[(&str, &str)]) -> Option<Named> {
        let key = service_for_host(host, "example.com")?;
        resolve(
            key,
            |k| k.namespace == "default" && services.contains(&k.name.as_str()),
            |k, tag| k.namespace == "default" && tags.contains(&(k.name.as_str(), tag)),
        )
    }

    fn tag(service: &str, tag: &str) -> Option<Named> {
        Some(Named::Tag {
            service: ServiceKey::new("default", service),
            tag: tag.into(),
        })
    }

    #[test]
    fn a_tag_host_names_the_tag_in_every_host_form() {
        let services = ["hello"];
        let tags = [("hello", "canary")];
        for host in [
            "canary-hello.default.example.com",
            "canary-hello.default.svc.cluster.local",
            "canary-hello.default.svc",
            "Canary-Hello.default:80",
        ] {
            assert_eq!(named(host, &services, &tags), tag("hello", "canary"), "{host}");
        }
        assert_eq!(
            named("hello.default.example.com", &services, &tags),
            Some(Named::Service(ServiceKey::new("default", "hello")))
        );
        // An unknown tag, a tag of another Service, another namespace: nothing.
        for host in [
            "blue-hello.default",
            "canary-other.default",
            "canary-hello.prod",
            "canary.default",
            "-hello.default",
        ] {
            assert_eq!(named(host, &services, &tags), None, "{host}");
        }
    }

    #[test]
    fn an_exact_service_host_wins_over_a_tag_host() {
        let tags = [("hello", "canary")];
        assert_eq!(
            named("canary-hello.default", &["hello", "canary-hello"], &tags),
            Some(Named::Service(ServiceKey::new("default", "canary-hello")))
        );
    }

    #[test]
    fn names_with_dashes_read_as_the_first_tag_and_service_that_exist() {
        // Tag `v2-beta` of `my-app`, not tag `v2` of `beta-my-app`, which does not exist.
        assert_eq!(
            named("v2-beta-my-app.default", &["my-app"], &[("my-app", "v2-beta")]),
            tag("my-app", "v2-beta")
        );
        // Both readings exist: the shortest tag first.
        assert_eq!(
            named("a-b-c.default", &["b-c", "c"], &[("b-c", "a"), ("c", "a-b")]),
            tag("b-c", "a")
        );
    }

    proptest! {
        #[test]
        fn hosts_that_route_name_dns_labels_and_every_form_routes_back(
            host in prop_oneof![
                // Mostly routable, then near misses, then anything.
                "([a-zA-Z0-9][a-z0-9-]{0,5}[a-z0-9]|[a-z0-9])\\.([a-z0-9][a-z0-9-]{0,5}[a-zA-Z0-9]|[a-z0-9])(\\.example\\.com|\\.svc|\\.svc\\.cluster\\.local)?\\.?(:[0-9]{1,5})?",
                "[a-zA-Z0-9_-]{0,8}(\\.[a-zA-Z0-9-]{0,8}){0,3}(\\.example\\.com|\\.svc|\\.svc\\.cluster\\.local)?\\.?(:[0-9a-z]{0,6})?",
                any::<String>(),
            ],
            domain in prop::sample::select(vec!["example.com", ".Example.com.", "svc", ""]),
        ) {
            if let Some(key) = service_for_host(&host, domain) {
                prop_assert!(is_dns_label(&key.name) && is_dns_label(&key.namespace), "{key}");
                let short = format!("{}.{}", key.name, key.namespace);
                for suffix in ["", ".svc", ".svc.cluster.local", ".example.com"] {
                    prop_assert_eq!(service_for_host(&format!("{short}{suffix}"), "example.com"), Some(key.clone()));
                }
            }
        }
    }
}
