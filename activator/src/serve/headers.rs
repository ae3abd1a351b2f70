//! Header rewriting between client and backend.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use runway_api::cidr::CidrList;

/// Request header marking a request one activator forwarded to another.
pub const HOP_HEADER: &str = "x-runway-hop";

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Removes the hop-by-hop headers: Connection and the headers it names, Keep-Alive, Proxy-*, TE (except
/// `te: trailers`, which gRPC needs end to end), Trailer, Transfer-Encoding and Upgrade.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    let trailers_only = headers
        .get_all(header::TE)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !trailers_only {
        headers.remove(header::TE);
    }
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` plus `Upgrade`), if any.
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts the upgrade headers back after [`remove_hop_by_hop`].
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host for the backend. A client `trusted` contains is a
/// proxy in front (an ingress terminating TLS) that saw the original request: it is appended to its X-Forwarded-For,
/// and the Proto, Host and Forwarded it set are kept. Anybody else could forge them, so they are replaced: the client
/// alone, `http`, the routing host, and no Forwarded.
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, host: &str, trusted: &CidrList) {
    let client_text = client.to_string();
    if !trusted.contains(client) {
        headers.remove(header::FORWARDED);
        headers.remove(X_FORWARDED_PROTO);
        headers.remove(X_FORWARDED_HOST);
        set_or_remove(headers, X_FORWARDED_FOR, &client_text);
    } else {
        // Every X-Forwarded-For line, in order: a proxy may have added its own line rather than appended.
        let mut chain: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        chain.push(&client_text);
        let chain = chain.join(", ");
        set_or_remove(headers, X_FORWARDED_FOR, &chain);
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(X_FORWARDED_HOST) {
        set_or_remove(headers, X_FORWARDED_HOST, host);
    }
}

fn set_or_remove(headers: &mut HeaderMap, name: &'static str, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => headers.insert(name, value),
        Err(_) => headers.remove(name),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "basic x"),
            ("proxy-connection", "close"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
            ("content-type", "text/plain"),
        ]);
        remove_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-type", "x-kept"]);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut headers = map(&[("te", "trailers")]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.get("te").unwrap(), "trailers");
    }

    #[test]
    fn upgrades_need_both_headers() {
        assert_eq!(
            requested_upgrade(&map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(requested_upgrade(&map(&[("upgrade", "websocket")])), None);
        assert_eq!(requested_upgrade(&map(&[("connection", "upgrade")])), None);
    }

    fn cidrs(list: &str) -> CidrList {
        list.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_from_untrusted_clients_are_replaced() {
        let forged = || {
            map(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "5.6.7.8"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "for=1.2.3.4"),
            ])
        };
        let mut headers = forged();
        set_forwarded(
            &mut headers,
            "10.0.0.9".parse().unwrap(),
            "hello.default.example.com",
            &cidrs(""),
        );
        assert_eq!(
            headers.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["10.0.0.9"]
        );
        assert_eq!(headers.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(headers.get("x-forwarded-host").unwrap(), "hello.default.example.com");
        assert!(headers.get("forwarded").is_none());

        // Trusting another network is no trust in this client.
        let mut headers = forged();
        set_forwarded(
            &mut headers,
            "10.0.0.9".parse().unwrap(),
            "h",
            &cidrs("192.168.0.0/16,::/0"),
        );
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "10.0.0.9");
        assert!(headers.get("forwarded").is_none());
    }

    #[test]
    fn forwarded_headers_from_trusted_proxies_are_appended_to_and_kept() {
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let trusted = cidrs("10.0.0.0/8");
        set_forwarded(
            &mut headers,
            "10.0.0.9".parse().unwrap(),
            "hello.default.example.com",
            &trusted,
        );
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "1.2.3.4, 5.6.7.8, 10.0.0.9");
        assert_eq!(headers.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(headers.get("x-forwarded-host").unwrap(), "hello.default.example.com");
        assert_eq!(headers.get("forwarded").unwrap(), "for=1.2.3.4");

        let mut fresh = HeaderMap::new();
        set_forwarded(&mut fresh, "::1".parse().unwrap(), "h", &cidrs("::1"));
        assert_eq!(fresh.get("x-forwarded-for").unwrap(), "::1");
        assert_eq!(fresh.get("x-forwarded-proto").unwrap(), "http");
    }
}
