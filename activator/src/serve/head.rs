//! Checks on a request head before it is routed, and the host it is routed by: one Host, agreeing with the request
//! target's authority (RFC 9112 §3.2, RFC 9113 §8.3.1), and no transfer coding but chunked (RFC 9112 §6.1).

use std::ops::Deref;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{StatusCode, Version};

use crate::model::Origin;

/// Why a request head is refused; its `Display` is the one-line body of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("missing Host header")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid Host header")]
    InvalidHost,
    #[error("invalid authority in the request target")]
    InvalidAuthority,
    #[error("the Host header does not match the request target")]
    HostMismatch,
    #[error("transfer codings other than chunked are not supported")]
    UnsupportedTransferCoding,
    #[error("chunked is applied more than once")]
    RepeatedChunked,
}

impl HeadError {
    pub fn status(self) -> StatusCode {
        match self {
            // RFC 9112 §6.1: a transfer coding the server does not understand is 501, not a malformed request.
            HeadError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The host a request is routed by. Both kinds share the bytes of the parsed request head: taking one allocates
/// nothing.
#[derive(Clone, Debug, Default)]
pub enum RoutingHost {
    /// An HTTP/1.0 request without Host: it names no Service.
    #[default]
    None,
    /// The Host header of an origin-form request (or one forwarded by a peer activator).
    Header(HeaderValue),
    /// The authority of an absolute-form request target or the HTTP/2 `:authority`.
    Authority(Authority),
}

impl RoutingHost {
    pub fn as_str(&self) -> &str {
        match self {
            RoutingHost::None => "",
            // `check` only returns visible-ASCII Host values, so this never falls back.
            RoutingHost::Header(value) => value.to_str().unwrap_or_default(),
            RoutingHost::Authority(authority) => authority.as_str(),
        }
    }

    /// The Host header the request is forwarded with when it must change: the authority it was routed by (RFC 9112
    /// §3.2.2 for absolute-form; HTTP/2 clients often send no Host, and pods and peers read it).
    pub fn host_header(&self) -> Option<HeaderValue> {
        match self {
            RoutingHost::Authority(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            RoutingHost::None | RoutingHost::Header(_) => None,
        }
    }
}

impl Deref for RoutingHost {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// Checks a request head and returns the host to route it by. A request a peer activator forwarded has this
/// activator's address as its `:authority` (HTTP/2) and the Service's in its Host header, so the Host header routes it.
pub fn check(version: Version, uri: &Uri, headers: &HeaderMap, origin: Origin) -> Result<RoutingHost, HeadError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HeadError::DuplicateHost);
    }
    check_transfer_coding(headers)?;
    let host = host
        .map(|value| {
            let parsed = value
                .to_str()
                .ok()
                .and_then(host_and_port)
                .ok_or(HeadError::InvalidHost)?;
            Ok((value, parsed))
        })
        .transpose()?;
    let authority = uri
        .authority()
        .map(|authority| {
            // Userinfo is deprecated in http(s) URIs and has no place in :authority (RFC 9110 §4.2.4).
            let parsed = (!authority.as_str().contains('@'))
                .then(|| host_and_port(authority.as_str()))
                .flatten()
                .ok_or(HeadError::InvalidAuthority)?;
            Ok((authority, parsed))
        })
        .transpose()?;
    match (host, authority) {
        (Some((value, _)), _) if origin == Origin::Peer => Ok(RoutingHost::Header(value.clone())),
        (Some((_, from_header)), Some((authority, from_target))) => {
            let default_port = if uri.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 };
            if same_host(from_header, from_target, default_port) {
                Ok(RoutingHost::Authority(authority.clone()))
            } else {
                Err(HeadError::HostMismatch)
            }
        }
        (Some((value, _)), None) => Ok(RoutingHost::Header(value.clone())),
        // HTTP/1.1 requires Host even with an absolute-form target (RFC 9112 §3.2); HTTP/2 has :authority instead.
        (None, Some(_)) if version == Version::HTTP_11 => Err(HeadError::MissingHost),
        (None, Some((authority, _))) => Ok(RoutingHost::Authority(authority.clone())),
        (None, None) if version >= Version::HTTP_11 => Err(HeadError::MissingHost),
        (None, None) => Ok(RoutingHost::None),
    }
}

/// Only chunked, at most once (RFC 9112 §6.1). Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), HeadError> {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnsupportedTransferCoding);
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err(HeadError::RepeatedChunked);
    }
    Ok(())
}

/// Splits `uri-host [ ":" port ]` (RFC 9110 §7.2), `None` when it is not one. The host is an IPv6 literal in
/// brackets or a non-empty reg-name (IPv4 addresses are reg-names here); an empty port is no port.
fn host_and_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(literal) = text.strip_prefix('[') {
        let end = literal.find(']')?;
        literal[..end].parse::<std::net::Ipv6Addr>().ok()?;
        text.split_at(end + 2)
    } else {
        let end = text.find(':').unwrap_or(text.len());
        let host = &text[..end];
        (!host.is_empty() && host.bytes().all(is_reg_name_byte)).then_some(())?;
        text.split_at(end)
    };
    let port = match port {
        "" | ":" => None,
        _ => {
            let digits = port.strip_prefix(':')?;
            digits.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            Some(digits.parse().ok()?)
        }
    };
    Some((host, port))
}

/// unreserved, sub-delims and the `%` of pct-encoding (RFC 3986 §3.2.2).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b)
}

/// Whether two `host_and_port` results name the same host: case-insensitively, ignoring a trailing dot, and with
/// the scheme's default port the same as none.
fn same_host(a: (&str, Option<u16>), b: (&str, Option<u16>), default_port: u16) -> bool {
    fn name(host: &str) -> &str {
        host.strip_suffix('.').unwrap_or(host)
    }
    let port = |port: Option<u16>| port.filter(|&p| p != default_port);
    name(a.0).eq_ignore_ascii_case(name(b.0)) && port(a.1) == port(b.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::host::service_for_host;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        headers
    }

    /// The routing host of an HTTP/1.1 request, or why it is refused.
    fn http11(target: &str, pairs: &[(&str, &[u8])]) -> Result<String, HeadError> {
        check(
            Version::HTTP_11,
            &target.parse().unwrap(),
            &headers(pairs),
            Origin::Client,
        )
        .map(|host| host.to_string())
    }

    #[test]
    fn origin_form_routes_by_the_one_host_header() {
        assert_eq!(
            http11("/", &[("host", b"Hello.Default:8080")]).unwrap(),
            "Hello.Default:8080"
        );
        assert_eq!(http11("/", &[]), Err(HeadError::MissingHost));
        assert_eq!(
            http11("/", &[("host", b"a.b"), ("host", b"a.b")]),
            Err(HeadError::DuplicateHost)
        );
        for invalid in [
            &b""[..],
            b"a b",
            b"a/b",
            b"a@b",
            b":80",
            b"a:8o",
            b"a:65536",
            b"[::1",
            b"[x]",
            b"a\xff",
        ] {
            assert_eq!(
                http11("/", &[("host", invalid)]),
                Err(HeadError::InvalidHost),
                "{invalid:?}"
            );
        }
        for valid in ["[::1]:8080", "10.0.0.1", "a.b:", "a.b."] {
            assert_eq!(http11("/", &[("host", valid.as_bytes())]).unwrap(), valid);
        }
    }

    #[test]
    fn absolute_form_routes_by_its_authority_when_the_host_agrees() {
        let target = "http://hello.default.example.com/x";
        for host in [
            "hello.default.example.com",
            "HELLO.default.example.com.",
            "hello.default.example.com:80",
        ] {
            assert_eq!(
                http11(target, &[("host", host.as_bytes())]).unwrap(),
                "hello.default.example.com",
                "{host}"
            );
        }
        for host in [
            "other.default.example.com",
            "hello.default.example.com:8080",
            "hello.default.example.com..",
        ] {
            assert_eq!(
                http11(target, &[("host", host.as_bytes())]),
                Err(HeadError::HostMismatch),
                "{host}"
            );
        }
        assert_eq!(http11("https://a.b:443/", &[("host", b"a.b")]).unwrap(), "a.b:443");
        assert_eq!(
            http11("https://a.b/", &[("host", b"a.b:80")]),
            Err(HeadError::HostMismatch)
        );
        assert_eq!(http11(target, &[]), Err(HeadError::MissingHost));
        assert_eq!(
            http11("http://u@a.b/", &[("host", b"a.b")]),
            Err(HeadError::InvalidAuthority)
        );
    }

    #[test]
    fn http2_routes_by_authority_and_peers_by_host() {
        let uri: Uri = "http://hello.default/".parse().unwrap();
        let h2 = |pairs: &[(&str, &[u8])], origin| {
            check(Version::HTTP_2, &uri, &headers(pairs), origin).map(|host| host.to_string())
        };
        assert_eq!(h2(&[], Origin::Client).unwrap(), "hello.default");
        assert_eq!(
            h2(&[("host", b"HELLO.default")], Origin::Client).unwrap(),
            "hello.default"
        );
        assert_eq!(
            h2(&[("host", b"other.default")], Origin::Client),
            Err(HeadError::HostMismatch)
        );
        // A peer's :authority is this activator's address; its Host names the Service.
        assert_eq!(
            h2(&[("host", b"other.default")], Origin::Peer).unwrap(),
            "other.default"
        );
        let no_authority: Uri = "/".parse().unwrap();
        assert_eq!(
            check(Version::HTTP_2, &no_authority, &HeaderMap::new(), Origin::Client).unwrap_err(),
            HeadError::MissingHost
        );
    }

    #[test]
    fn http10_needs_no_host() {
        let http10 = |target: &str| {
            check(
                Version::HTTP_10,
                &target.parse().unwrap(),
                &HeaderMap::new(),
                Origin::Client,
            )
        };
        let routed = http10("/").unwrap();
        assert_eq!(routed.as_str(), "");
        let absolute = http10("http://a.b/").unwrap();
        assert_eq!(absolute.host_header().unwrap(), "a.b");
    }

    #[test]
    fn only_chunked_once_is_a_transfer_coding() {
        let te = |values: &[&str]| {
            let mut pairs: Vec<(&str, &[u8])> = vec![("host", b"a.b")];
            pairs.extend(values.iter().map(|v| ("transfer-encoding", v.as_bytes())));
            http11("/", &pairs).map(drop)
        };
        assert_eq!(te(&[]), Ok(()));
        assert_eq!(te(&["chunked"]), Ok(()));
        assert_eq!(te(&["Chunked, "]), Ok(()));
        for unsupported in [
            &["gzip, chunked"][..],
            &["gzip", "chunked"],
            &["identity"],
            &["chunked;x=1"],
        ] {
            assert_eq!(
                te(unsupported),
                Err(HeadError::UnsupportedTransferCoding),
                "{unsupported:?}"
            );
        }
        assert_eq!(te(&["chunked", "chunked"]), Err(HeadError::RepeatedChunked));
        assert_eq!(te(&["chunked, chunked"]), Err(HeadError::RepeatedChunked));
        assert_eq!(
            HeadError::UnsupportedTransferCoding.status(),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(HeadError::RepeatedChunked.status(), StatusCode::BAD_REQUEST);
    }

    /// Host-like text: mostly the pieces routing looks at, sometimes anything.
    fn host_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9]{1,8}\\.[a-z0-9]{1,8}(\\.example\\.com|\\.svc)?\\.?(:80|:[0-9]{1,6})?",
            "[a-zA-Z0-9-]{0,8}(\\.[a-zA-Z0-9-]{0,8}){0,4}\\.?(\\.example\\.com|\\.svc|\\.svc\\.cluster\\.local)?\\.?(:[0-9]{0,6})?",
            "\\[[0-9a-fA-F:.]{0,20}\\](:[0-9]{0,6})?",
            "[ -~]{0,40}",
        ]
    }

    fn any_version() -> impl Strategy<Value = Version> {
        prop_oneof![Just(Version::HTTP_10), Just(Version::HTTP_11), Just(Version::HTTP_2)]
    }

    fn any_origin() -> impl Strategy<Value = Origin> {
        prop_oneof![Just(Origin::Client), Just(Origin::Peer)]
    }

    proptest! {
        #[test]
        fn no_head_panics_and_routed_hosts_name_valid_services(
            version in any_version(),
            host in proptest::option::of(prop_oneof![
                host_text().prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..40),
            ]),
            authority in proptest::option::of(host_text()),
            codings in proptest::collection::vec("[a-zA-Z, ]{0,16}", 0..3),
            origin in any_origin(),
        ) {
            let mut pairs: Vec<(&str, &[u8])> = codings.iter().map(|c| ("transfer-encoding", c.as_bytes())).collect();
            if let Some(host) = host.as_deref().filter(|h| HeaderValue::from_bytes(h).is_ok()) {
                pairs.push(("host", host));
            }
            let uri = authority
                .and_then(|a| format!("http://{a}/").parse().ok())
                .unwrap_or_else(|| Uri::from_static("/"));
            if let Ok(routed) = check(version, &uri, &headers(&pairs), origin)
                && let Some(key) = service_for_host(&routed, "example.com")
            {
                // The key is made of DNS labels that route back to it.
                let short = format!("{}.{}", key.name, key.namespace);
                prop_assert_eq!(service_for_host(&short, "example.com"), Some(key.clone()));
                prop_assert_eq!(service_for_host(&format!("{short}.example.com"), "example.com"), Some(key));
            }
        }

        #[test]
        fn two_host_headers_are_never_accepted(
            version in any_version(),
            first in host_text(),
            second in host_text(),
            absolute in any::<bool>(),
            origin in any_origin(),
        ) {
            let uri: Uri = if absolute { format!("http://{first}/").parse().unwrap_or_default() } else { Uri::default() };
            let pairs = [("host", first.as_bytes()), ("host", second.as_bytes())];
            prop_assert!(check(version, &uri, &headers(&pairs), origin).is_err());
        }

        #[test]
        fn agreeing_hosts_are_accepted_and_others_refused(
            name in "[a-z0-9]{1,10}\\.[a-z0-9]{1,10}",
            other in "[a-z0-9]{1,10}\\.[a-z0-9]{1,10}",
            upper in any::<bool>(),
            dot in any::<bool>(),
            port in prop_oneof![Just(None), Just(Some(80u16)), any::<u16>().prop_map(Some)],
        ) {
            let mut host = if upper { name.to_ascii_uppercase() } else { name.clone() };
            if dot {
                host.push('.');
            }
            if let Some(port) = port {
                host.push_str(&format!(":{port}"));
            }
            let routed = http11(&format!("http://{name}/"), &[("host", host.as_bytes())]);
            if port.is_none_or(|p| p == 80) {
                prop_assert_eq!(routed, Ok(name.clone()));
            } else {
                prop_assert_eq!(routed, Err(HeadError::HostMismatch));
            }
            if other != name {
                prop_assert_eq!(http11(&format!("http://{other}/"), &[("host", host.as_bytes())]), Err(HeadError::HostMismatch));
            }
        }
    }
}
