//! Header rewriting between client and backend.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

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
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, host: &str, trusted: &TrustedProxies) {
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

/// The networks of `--trusted-proxies`: comma-separated CIDRs. Empty items are skipped, so that an empty variable
/// (or a trailing comma) trusts nobody rather than failing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), for `--trusted-proxies`; a bare address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network. IPv4 clients of a dual-stack listener (`::ffff:10.1.2.3`) count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = || format!("{text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: u8's parser would also take `+8`.
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse().ok().filter(|&p| p <= bits).ok_or_else(invalid)?
            }
            Some(_) => return Err(invalid()),
        };
        // Bits past the prefix are more likely a typo (10.0.0.1/8 for 10.0.0.1/32) than a wish to trust a network.
        let base = masked(network, prefix);
        if base != network {
            return Err(format!(
                "{text:?} has bits set past the prefix: did you mean {base}/{prefix}?"
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

/// `ip` with the bits past `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    let shift = |bits: u32| bits.saturating_sub(u32::from(prefix));
    match ip {
        IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4) & u32::MAX.checked_shl(shift(32)).unwrap_or(0)).into(),
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & u128::MAX.checked_shl(shift(128)).unwrap_or(0)).into(),
    }
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

    fn cidrs(list: &str) -> TrustedProxies {
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

    #[test]
    fn cidrs_parse_and_match_ipv4_and_ipv6() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let private: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.255.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.0")));
        assert!(!private.contains(ip("::a00:1")));
        let host: Cidr = " 192.168.1.1/32 ".parse().unwrap();
        assert!(host.contains(ip("192.168.1.1")) && !host.contains(ip("192.168.1.2")));
        assert_eq!("192.168.1.1".parse::<Cidr>(), Ok(host));
        let ula: Cidr = "fd00::/8".parse().unwrap();
        assert!(ula.contains(ip("fd12::1")) && !ula.contains(ip("fe80::1")) && !ula.contains(ip("10.0.0.1")));
        assert!("::1/128".parse::<Cidr>().unwrap().contains(ip("::1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("255.255.255.255")) && !everything.contains(ip("::2")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0/8",
            "010.0.0.0/8",
            "x/8",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err("\"10.0.0.1/8\" has bits set past the prefix: did you mean 10.0.0.0/8?".to_owned())
        );
        assert!("fd00::1/8".parse::<Cidr>().unwrap_err().contains("fd00::/8"));

        let list = cidrs(" 10.0.0.0/8, ,fd00::/8,");
        assert!(list.contains(ip("10.1.1.1")) && list.contains(ip("fd00::1")) && !list.contains(ip("11.0.0.1")));
        assert_eq!(cidrs(""), TrustedProxies::default());
        assert!(
            "10.0.0.0/8,nope"
                .parse::<TrustedProxies>()
                .unwrap_err()
                .contains("nope")
        );
    }
}
