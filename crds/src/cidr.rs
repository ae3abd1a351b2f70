//! IP networks in CIDR notation, as both binaries take them from flags: the activator's `--trusted-proxies` and the
//! operator's `--probe-source-cidrs` (rendered into NetworkPolicy ipBlocks). One parser, so both refuse the same
//! typos.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Comma-separated CIDRs. Empty items are skipped, so that an empty variable (or a trailing comma) is an empty list
/// rather than an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl CidrList {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }
}

impl FromStr for CidrList {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(CidrList)
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is one host (`10.0.0.1/32`).
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

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &str) -> CidrList {
        list.parse().unwrap()
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
        assert_eq!(cidrs(""), CidrList::default());
        assert!("10.0.0.0/8,nope".parse::<CidrList>().unwrap_err().contains("nope"));
    }

    #[test]
    fn a_cidr_is_written_in_full() {
        for (text, shown) in [
            ("10.88.0.1", "10.88.0.1/32"),
            ("10.88.0.0/16", "10.88.0.0/16"),
            ("fd00::/64", "fd00::/64"),
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), shown, "{text}");
        }
    }
}
