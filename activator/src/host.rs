//! Which Service a request is for, from its Host header or HTTP/2 :authority.

use std::borrow::Cow;

/// What a host resolves to; defined in runway-api, where the operator keys Services by it too.
pub use runway_api::ServiceKey;

/// The activator's two entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Faces the outside (a load balancer, an ingress): only hosts under the domain, only External Services.
    External,
    /// For pods of the cluster: every host form, every Service.
    Internal,
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

fn is_dns_label(label: &str) -> bool {
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
