//! The rate-limit layer's options (`kind = "rate_limit"`), read in one call each (see
//! `crate::config`).

use std::cmp::Ordering::Less;

use serde::Serialize;

use crate::config::Reader;

/// Options of `kind = "rate_limit"`: a token bucket per session and one per address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitConfig {
    /// Lines or commands a session may send per second, on average: the bucket's refill rate.
    pub per_second: u32,
    /// How many it may send at once after a quiet spell: the bucket's size.
    pub burst: u32,
    /// Lines, commands and connects all the sessions of one address (an IPv6 prefix, see
    /// `[server] ipv6_prefix`) may send per second together: a second bucket, per address, so
    /// that reconnecting (a fresh session, a fresh bucket) does not multiply the rate.
    pub per_address_per_second: u32,
    /// The per-address bucket's size.
    pub per_address_burst: u32,
}

impl RateLimitConfig {
    /// Reads the options of a `kind = "rate_limit"` table.
    pub fn read(r: &mut Reader<'_, '_>) -> RateLimitConfig {
        // Zero is the likely attempt to turn limiting off: say what it would really do.
        r.warn(
            "per_second",
            0,
            "option `per_second` = 0 would refuse every line after the first burst, for good; \
             write at least 1 (or remove the `rate_limit` layer to turn rate limiting off)",
        );
        // Beyond 10,000 a second the bucket no longer limits anything.
        let per_second = r.int("per_second", 1..=10_000, 10);
        let config = RateLimitConfig {
            per_second,
            // 0 would refuse every line; 100,000 is far past any person's paste.
            burst: r.int("burst", 1..=100_000, 20),
            // As the per-session ones, ten times over (an address may stand for a whole office).
            // The defaults: five sessions' worth, an office behind one NAT address of whom a
            // few talk at once, and room for all of them reconnecting at once after a restart
            // (see docs/CONFIG.md).
            per_address_per_second: r.int("per_address_per_second", 1..=100_000, 50),
            per_address_burst: r.int("per_address_burst", 1..=1_000_000, 200),
        };
        let why =
            "all the sessions of one address together cannot have less than one session alone";
        let per_address = ("per_address_per_second", config.per_address_per_second);
        r.never(per_address, Less, ("per_second", per_second), why);
        let per_address_burst = ("per_address_burst", config.per_address_burst);
        r.never(per_address_burst, Less, ("burst", config.burst), why);
        config
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Reader::defaults(RateLimitConfig::read)
    }
}
