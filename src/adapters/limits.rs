//! Connection limits: how many connections (or HTTP sessions) one address, and everybody
//! together, may hold at once.
//!
//! "One address" is an [`AddressGroup`]: an IPv4 address, or an IPv6 prefix (`[server]
//! ipv6_prefix`, default /64), since one IPv6 client can use any address of its prefix. So
//! filling `max_connections` takes at least `max_connections / max_connections_per_ip` distinct
//! IPv4 addresses or IPv6 prefixes, never one machine cycling through its addresses.
//!
//! **Where it sits.** In the shared accept loop (`adapters::accept`), before a connection gets a
//! task of its own, and in `POST /connect` for HTTP sessions, which outlive their connections.
//! The adapter that refused decides how to say so in its protocol (a `! ` line, a JSON 429/503);
//! the words come from [`Refused`]'s `Display`, so both protocols read the same.
//!
//! **What it teaches.** A limit is a counter plus a guard: [`ConnectionLimits::admit`] counts a
//! connection in and returns a [`Permit`] whose `Drop` counts it out, so every way a connection
//! can end (the client leaves, a kick, a panic in its task, shutdown) gives its slot back, and
//! no code path has to remember to. The counts live behind one short mutex, never held across an
//! `.await`; an address with no connection left is removed from the map, so the map is as large
//! as the number of addresses connected now, not of all addresses ever seen.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::AddressGroup;
use crate::ops::logs::Throttle;

/// Counts of what is open now, per address and in total, against two maxima.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// What is counted, for messages: "connections" or "sessions".
    what: &'static str,
    per_ip: usize,
    total: usize,
    /// How IPv6 addresses are grouped (see the module docs).
    ipv6_prefix: u8,
    counts: Mutex<Counts>,
    /// Refusals over the per-address and the total limit, for a warning at most once a minute
    /// each (one refusal is a client's doing, a stream of them is worth an operator's glance).
    refused_per_ip: Throttle,
    refused_total: Throttle,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<AddressGroup, usize>,
}

/// Why [`ConnectionLimits::admit`] said no. `Display` is the sentence the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address holds `max` already.
    PerIp {
        /// What is counted: "connections" or "sessions".
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The whole server holds `max` already.
    Total {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::PerIp { what, max } => {
                write!(f, "too many {what} from your address (max {max})")
            }
            Refused::Total { what, max } => write!(
                f,
                "the server is full ({max} {what} at most): try again later"
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// One admitted connection (or session); dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: AddressGroup,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    /// At most `per_ip` from one address (IPv6: one prefix of `ipv6_prefix` bits) and `total`
    /// in all; `what` names the counted thing in messages ("connections", "sessions").
    pub fn new(
        what: &'static str,
        per_ip: usize,
        total: usize,
        ipv6_prefix: u8,
    ) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            what,
            per_ip,
            total,
            ipv6_prefix,
            counts: Mutex::default(),
            refused_per_ip: Throttle::new(),
            refused_total: Throttle::new(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more from `ip`, or says which limit it would break.
    ///
    /// # Errors
    /// [`Refused::PerIp`] or [`Refused::Total`]; nothing is counted then.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let ip = AddressGroup::of(ip, self.ipv6_prefix);
        let mut counts = self.counts();
        let what = self.what;
        if counts.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            drop(counts);
            let refused = Refused::PerIp {
                what,
                max: self.per_ip,
            };
            tracing::debug!(address = %ip, %refused, "refused");
            if let Some(n) = self.refused_per_ip.hit() {
                tracing::warn!(
                    refused = n,
                    latest = %ip,
                    "{what} refused over the per-address limit of {} (since the last such \
                     warning, at most a minute ago)",
                    self.per_ip
                );
            }
            return Err(refused);
        }
        if counts.total >= self.total {
            drop(counts);
            let refused = Refused::Total {
                what,
                max: self.total,
            };
            tracing::debug!(address = %ip, %refused, "refused");
            if let Some(n) = self.refused_total.hit() {
                tracing::warn!(
                    refused = n,
                    "{what} refused: the server holds its maximum of {} (since the last such \
                     warning, at most a minute ago)",
                    self.total
                );
            }
            return Err(refused);
        }
        counts.total += 1;
        *counts.by_ip.entry(ip).or_insert(0) += 1;
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    /// How many are open now (for tests and diagnostics).
    pub fn open(&self) -> usize {
        self.counts().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_limits_and_permits_give_slots_back() {
        let limits = ConnectionLimits::new("connections", 2, 3, 64);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        let refused = limits.admit(a).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "too many connections from your address (max 2)"
        );
        let _b1 = limits.admit(b).unwrap();
        let full = limits.admit(b).unwrap_err();
        assert_eq!(
            full.to_string(),
            "the server is full (3 connections at most): try again later"
        );
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _b2 = limits.admit(b).unwrap();
        assert_eq!(limits.counts().by_ip.len(), 2);
    }

    #[test]
    fn an_address_with_nothing_open_is_forgotten() {
        let limits = ConnectionLimits::new("sessions", 1, 10, 64);
        let ip: IpAddr = "::1".parse().unwrap();
        drop(limits.admit(ip).unwrap());
        assert!(limits.counts().by_ip.is_empty());
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn the_addresses_of_one_ipv6_prefix_share_one_allowance() {
        let limits = ConnectionLimits::new("connections", 2, 100, 64);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let _a = limits.admit(ip("2001:db8:0:1::a")).unwrap();
        let _b = limits.admit(ip("2001:db8:0:1::b")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:0:1:ffff::c")).unwrap_err(),
            Refused::PerIp {
                what: "connections",
                max: 2
            },
            "a third address of the same /64 is the same client"
        );
        assert!(limits.admit(ip("2001:db8:0:2::a")).is_ok(), "another /64");
        // Filling the server takes total / per_ip prefixes, however many addresses each has.
        let full = ConnectionLimits::new("connections", 2, 6, 64);
        let mut held = Vec::new();
        for prefix in 0..3 {
            for host in 0..100 {
                if let Ok(permit) = full.admit(ip(&format!("2001:db8:0:{prefix}::{host:x}"))) {
                    held.push(permit);
                }
            }
        }
        assert_eq!(held.len(), 6);
        assert_eq!(full.open(), 6, "3 prefixes x 2");
    }
}
