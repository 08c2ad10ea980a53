//! Who a client is, for per-client limits and idempotency scopes: its address, or, behind a
//! trusted proxy, the address the proxy saw, reduced to the unit one client controls.
//!
//! An IPv6 client usually holds a whole /64 (often a /56 or /48): keying limits on the full
//! address would let it take a fresh key for every request. So an IPv6 address is keyed by its
//! first `ipv6_prefix` bits (64 by default), and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! as a dual-stack socket reports IPv4 peers) is keyed as the IPv4 address it is.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// A proxy whose `X-Forwarded-For` is believed: one address or a CIDR range, v4 or v6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyRange(IpNet);

impl ProxyRange {
    /// Whether `address` (IPv4-mapped or not) is in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&canonical(address))
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let range = match text.parse::<IpNet>() {
            Ok(range) => range,
            Err(_) => text
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR range"))?,
        };
        // An IPv4-mapped range (::ffff:10.0.0.0/104) is the IPv4 range it maps.
        let range = match range {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                    .map_err(|error| error.to_string())?,
                None => range,
            },
            _ => range,
        };
        Ok(ProxyRange(range.trunc()))
    }
}

impl fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for ProxyRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ProxyRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How client addresses are found and keyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddresses {
    trusted: Vec<ProxyRange>,
    ipv6_prefix: u8,
}

impl Default for ClientAddresses {
    fn default() -> Self {
        Self::new(Vec::new(), 64)
    }
}

impl ClientAddresses {
    /// `ipv6_prefix` is clamped to 1..=128.
    pub fn new(trusted: Vec<ProxyRange>, ipv6_prefix: u8) -> Self {
        Self {
            trusted,
            ipv6_prefix: ipv6_prefix.clamp(1, 128),
        }
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(address))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not itself a trusted proxy. Anything unreadable in
    /// the header stops the walk at the peer, so a client cannot forge its way past a proxy.
    pub fn resolve(&self, peer: IpAddr, forwarded_for: Option<&[u8]>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let Some(header) = forwarded_for.and_then(|value| std::str::from_utf8(value).ok()) else {
            return peer;
        };
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(address) if self.is_trusted(address) => continue,
                Ok(address) => return address,
                Err(_) => return peer,
            }
        }
        peer
    }

    /// The key per-client limits count under: an IPv4 address as it is (IPv4-mapped ones
    /// included), an IPv6 address reduced to its first `ipv6_prefix` bits.
    pub fn key(&self, address: IpAddr) -> IpAddr {
        match canonical(address) {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ranges(texts: &[&str]) -> Vec<ProxyRange> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let addresses = ClientAddresses::new(ranges(&["10.0.0.1", "10.0.0.2"]), 64);
        let header = Some(&b"203.0.113.9, 10.0.0.2"[..]);
        assert_eq!(addresses.resolve(ip("192.0.2.1"), header), ip("192.0.2.1"));
        assert_eq!(addresses.resolve(ip("10.0.0.1"), header), ip("203.0.113.9"));
        assert_eq!(addresses.resolve(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(
            addresses.resolve(ip("10.0.0.1"), Some(b"garbage, 10.0.0.2")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_may_be_cidr_ranges_and_match_ipv4_mapped_peers() {
        let addresses = ClientAddresses::new(ranges(&["10.0.0.0/8", "2001:db8::/32"]), 64);
        let header = Some(&b"198.51.100.7, 10.9.9.9"[..]);
        assert_eq!(
            addresses.resolve(ip("10.1.2.3"), header),
            ip("198.51.100.7")
        );
        assert_eq!(
            addresses.resolve(ip("::ffff:10.1.2.3"), header),
            ip("198.51.100.7")
        );
        assert_eq!(
            addresses.resolve(ip("2001:db8:1::5"), header),
            ip("198.51.100.7")
        );
        assert_eq!(addresses.resolve(ip("11.0.0.1"), header), ip("11.0.0.1"));
        let mapped = ClientAddresses::new(ranges(&["::ffff:192.0.2.0/120"]), 64);
        assert_eq!(
            mapped.resolve(ip("192.0.2.77"), Some(b"198.51.100.7")),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_proxy_range_that_is_neither_address_nor_range_is_refused() {
        for text in ["", "10.0.0", "10.0.0.0/33", "example.com", "::1/129"] {
            assert!(text.parse::<ProxyRange>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_per_64_and_ipv4_mapped_ones_as_ipv4() {
        let addresses = ClientAddresses::default();
        assert_eq!(
            addresses.key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(addresses.key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(addresses.key(ip("192.0.2.1")), ip("192.0.2.1"));
        let exact = ClientAddresses::new(Vec::new(), 128);
        assert_eq!(exact.key(ip("2001:db8::1")), ip("2001:db8::1"));
        let wide = ClientAddresses::new(Vec::new(), 48);
        assert_eq!(wide.key(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
    }

    proptest! {
        /// Every address of one /64 shares one key; addresses in different /64s never do.
        #[test]
        fn one_key_per_prefix(a in any::<u128>(), b in any::<u128>()) {
            let addresses = ClientAddresses::default();
            // Keep clear of the IPv4-mapped block, which is keyed as IPv4.
            let (a, b) = (a | 1 << 127, b | 1 << 127);
            let key = |bits: u128| addresses.key(IpAddr::V6(Ipv6Addr::from(bits)));
            prop_assert_eq!(key(a) == key(b), a >> 64 == b >> 64);
        }
    }
}
