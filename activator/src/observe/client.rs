//! Which address a request came from, for the access log: the connection's peer, or, behind proxies the activator
//! trusts (and behind a peer activator), the address they forwarded.

use std::net::IpAddr;

use http::HeaderMap;
use runway_api::cidr::CidrList;

use crate::model::Origin;

/// The client's address: `remote`, unless the connection came from a trusted proxy or a peer activator; then the
/// `X-Forwarded-For` entries are walked from the last, past every trusted proxy, to the first address nobody trusted
/// vouches for. An entry that is not an address stops the walk at the hop that added it.
pub fn client_address(remote: IpAddr, headers: &HeaderMap, trusted: &CidrList, origin: Origin) -> IpAddr {
    let mut forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev();
    let mut client = remote;
    // A peer activator added its client's address last, whatever that client was.
    let mut vouched = origin == Origin::Peer || trusted.contains(client);
    while vouched {
        match forwarded.next().and_then(|entry| entry.parse::<IpAddr>().ok()) {
            Some(address) => {
                client = address;
                vouched = trusted.contains(client);
            }
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(chain: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", chain.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_hops() {
        let trusted: CidrList = "10.0.0.0/8".parse().unwrap();
        let chain = forwarded("203.0.113.7, 198.51.100.2, 10.1.1.1");
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client_address(ip("192.0.2.1"), &chain, &trusted, Origin::Client),
            ip("192.0.2.1")
        );
        // Behind trusted hops, the first address nobody trusted vouches for.
        assert_eq!(
            client_address(ip("10.2.2.2"), &chain, &trusted, Origin::Client),
            ip("198.51.100.2")
        );
        // A peer activator is trusted for the last entry only.
        assert_eq!(
            client_address(
                ip("192.0.2.9"),
                &forwarded("203.0.113.7, 198.51.100.2"),
                &CidrList::default(),
                Origin::Peer
            ),
            ip("198.51.100.2")
        );
        // Garbage stops the walk at the hop that added it.
        assert_eq!(
            client_address(
                ip("10.2.2.2"),
                &forwarded("203.0.113.7, unknown"),
                &trusted,
                Origin::Client
            ),
            ip("10.2.2.2")
        );
        assert_eq!(
            client_address(ip("10.2.2.2"), &HeaderMap::new(), &trusted, Origin::Client),
            ip("10.2.2.2")
        );
    }
}
