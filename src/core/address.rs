//! Client addresses as the per-address limits count them: IPv4 per address, IPv6 per prefix.
//!
//! **Why a prefix.** An IPv4 client rarely has more than one public address, so one address is
//! one client (or one office behind a NAT). An IPv6 client usually gets a whole /64 (or more)
//! from its provider and can pick any of its 2^64 addresses for each connection: counting /128s
//! apart would let one machine open a fresh "address" per connection and walk around every
//! per-address limit. So IPv6 addresses are grouped by their first `[server] ipv6_prefix` bits
//! (default 64, the size one subscriber gets); an IPv4 address mapped into IPv6
//! (`::ffff:192.0.2.7`, what a dual-stack listener sees) counts as the IPv4 address it is.
//!
//! Every per-address limit (connections and HTTP sessions in `adapters::limits`, the per-address
//! token bucket of `layers::rate_limit`) keys its counts by an [`AddressGroup`], so the grouping
//! is written once.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The IPv6 prefix length when the pipeline does not set `[server] ipv6_prefix`.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The unit a per-address limit counts: an IPv4 address, or an IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressGroup {
    /// The address with every bit past the prefix cleared.
    network: IpAddr,
    /// The prefix length: 32 for IPv4, `ipv6_prefix` for IPv6.
    prefix: u8,
}

impl AddressGroup {
    /// The group `ip` belongs to, IPv6 addresses grouped by their first `ipv6_prefix` bits
    /// (clamped to 0..=128).
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> AddressGroup {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressGroup {
                network: IpAddr::V4(v4),
                prefix: 32,
            },
            IpAddr::V6(v6) => {
                let prefix = ipv6_prefix.min(128);
                let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
                AddressGroup {
                    network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    prefix,
                }
            }
        }
    }
}

/// `192.0.2.7` for IPv4, `2001:db8:1:2::/64` for an IPv6 group: what an operator greps for.
impl fmt::Display for AddressGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.network {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ip: &str, prefix: u8) -> AddressGroup {
        AddressGroup::of(ip.parse().unwrap(), prefix)
    }

    #[test]
    fn ipv4_addresses_count_one_by_one() {
        assert_ne!(group("192.0.2.7", 64), group("192.0.2.8", 64));
        assert_eq!(group("192.0.2.7", 64).to_string(), "192.0.2.7");
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_count_together() {
        let a = group("2001:db8:1:2:aaaa::1", 64);
        let b = group("2001:db8:1:2:ffff:1:2:3", 64);
        let other = group("2001:db8:1:3::1", 64);
        assert_eq!(a, b, "one /64, one client");
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        // A finer grouping tells them apart; /128 counts every address on its own.
        assert_ne!(group("2001:db8::1", 128), group("2001:db8::2", 128));
        assert_eq!(group("2001:db8:1:2::1", 48), group("2001:db8:1:3::1", 48));
        assert_eq!(group("2001:db8::1", 0), group("fe80::1", 0));
    }

    #[test]
    fn an_ipv4_address_seen_through_a_dual_stack_listener_is_that_ipv4_address() {
        assert_eq!(group("::ffff:192.0.2.7", 64), group("192.0.2.7", 64));
    }
}
