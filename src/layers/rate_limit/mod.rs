//! The rate-limit layer: a token bucket per session and one per address, so that no client can
//! send faster than the pipeline file allows, however many sessions it opens.
//!
//! **What it does.** Every line or command a session sends (see `layers::sent_by_a_user`)
//! costs one token from that session's bucket *and* one from its address's bucket. A session's
//! bucket holds at most `burst` tokens and refills at `per_second` tokens a second; an address's
//! (an IPv4 address, or an IPv6 prefix: see `core::address`) holds `per_address_burst` and
//! refills at `per_address_per_second`, shared by all the sessions of that address, and a new
//! session's connect costs a token from it too. A request that finds either bucket empty is
//! refused with a [`ErrorKind::RateLimited`](crate::core::ErrorKind::RateLimited) error that says
//! which rule and how long to wait: the TCP user reads `! slow down: ... (try again in N ms)`, an
//! HTTP client gets `429` with `Retry-After`. The connection stays open and nothing else happens
//! to the session: it can talk again as soon as a token is back (a refused connect is refused,
//! and the TCP adapter closes that connection after the line). The opening of an HTTP event
//! stream and each page of its replay cost a token too (reading history is work a client
//! causes). Disconnects and messages from other instances cost nothing, as they are not
//! something a client did, and neither does a quit: a client that is leaving is never told to
//! slow down.
//!
//! **Where it sits.** Above route (the pipeline check insists), usually right after parse, so
//! that a refused line never reaches the layers that take locks, number messages or write to a
//! store. Refusing early is the point: a flood is cheapest to stop before it has cost anything.
//!
//! **What it teaches.**
//! * *Token buckets.* A bucket allows short bursts (a pasted paragraph, a quick `/join` and
//!   `/history`) while holding the long-run average to the refill rate, which a fixed "N per
//!   second" window cannot do without either refusing bursts or letting two windows' worth
//!   through at their boundary. This bucket is kept as one instant, the moment it will be full
//!   again, rather than as a token count and a last-refill time: the tokens at any moment follow
//!   from it, and integer `Duration` arithmetic has none of a floating count's rounding (this is
//!   the "generic cell rate algorithm" that ATM switches and many rate limiters use).
//! * *Why per session and per address.* A limit shared by everyone lets one flooder use up
//!   everyone's allowance. The session is the unit that sends, so it has a bucket; but a session
//!   is free to make, and a bucket per session alone is bypassed by reconnecting (eight clients
//!   reconnecting in a loop from one address once got 262 messages a second through a limit of
//!   10). The address is what a client cannot change at will, so it has a bucket too, sized for
//!   the honest case of a whole office behind one NAT address (docs/CONFIG.md says why 50 a
//!   second and 200 at once): a long-run average of five busy sessions, never 26.
//! * *Why a layer, not adapter code.* Both adapters would otherwise need the same bucket, and an
//!   operator could not move, tune or remove it from the pipeline file. As a layer it sees the
//!   one protocol-neutral request type, and the adapters only render its error.
//!
//! **Bounded memory.** The buckets live in two maps, by session id and by address, and a third
//! map remembers each session's address (from its connect, until its disconnect). A session's
//! bucket is removed when its `Disconnect` passes through, and a bucket that has refilled
//! completely is indistinguishable from a new one, so each bucket map is also swept of full
//! buckets whenever it has doubled since its last sweep (and holds at least 1,024 buckets): it
//! holds the sessions (addresses) that sent something recently, plus at most about as many
//! stale ones again (or up to the floor) between two sweeps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::ready;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, sent_by_a_user, take};

mod bucket;
use crate::core::{
    Action, AddressGroup, ChatError, Connected, Outcome, Reply, Request, SessionId, Stats,
};
use crate::ops::logs::Throttle;

mod config;
use bucket::BucketMap;
pub use bucket::{Bucket, Rate};
pub use config::RateLimitConfig;

/// How many requests the rate limit refused, for the warning it logs at most once a minute.
static REFUSED: Throttle = Throttle::new();

/// Which bucket refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Empty {
    /// The session's.
    Session(Duration),
    /// The address's, shared by its sessions.
    Address(Duration),
}

/// The buckets of all sessions and addresses, shared by every clone of the layer's service.
#[derive(Debug)]
struct Buckets {
    /// How IPv6 addresses are grouped into one "address".
    ipv6_prefix: u8,
    map: Mutex<Maps>,
}

#[derive(Debug)]
struct Maps {
    sessions: BucketMap<SessionId>,
    addresses: BucketMap<AddressGroup>,
    /// Each session's address, from its connect until its disconnect.
    address_of: HashMap<SessionId, AddressGroup>,
}

impl Buckets {
    /// Takes a token from `session`'s bucket (if any) and from its address's (if it is known),
    /// at `now`: both or neither.
    fn take(
        &self,
        session: Option<SessionId>,
        address: Option<AddressGroup>,
        now: Instant,
    ) -> Result<(), Empty> {
        let mut maps = self.maps();
        let address = address.or_else(|| maps.address_of.get(&session?).copied());
        let by_session = match session {
            Some(id) => Some((id, maps.sessions.check(id, now).map_err(Empty::Session)?)),
            None => None,
        };
        let by_address = match address {
            Some(group) => Some((
                group,
                maps.addresses.check(group, now).map_err(Empty::Address)?,
            )),
            None => None,
        };
        if let Some((id, bucket)) = by_session {
            maps.sessions.put(id, bucket);
        }
        if let Some((group, bucket)) = by_address {
            maps.addresses.put(group, bucket);
        }
        Ok(())
    }

    /// The address group of a client at `peer`.
    fn group(&self, peer: Option<SocketAddr>) -> Option<AddressGroup> {
        peer.map(|peer| AddressGroup::of(peer.ip(), self.ipv6_prefix))
    }

    /// Remembers that `session` comes from `address`.
    fn remember(&self, session: SessionId, address: AddressGroup) {
        self.maps().address_of.insert(session, address);
    }

    /// Drops `session`'s bucket and address: the session is going away.
    fn forget(&self, session: SessionId) {
        let mut maps = self.maps();
        maps.sessions.buckets.remove(&session);
        maps.address_of.remove(&session);
    }

    /// The maps, locked; held only for a lookup, never across an `.await`.
    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic cannot leave a bucket half-updated in a way that matters: use it as is.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds [`RateLimit`] services; every service it builds shares one set of buckets.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    buckets: Arc<Buckets>,
    stats: Arc<Stats>,
    /// The session's rule in words, for the error: `at most 10 lines a second, 20 at once`.
    rule: Arc<str>,
    /// The address's rule in words.
    address_rule: Arc<str>,
}

impl RateLimitLayer {
    /// A rate-limit layer with the pipeline's options, IPv6 addresses grouped by their first
    /// `ipv6_prefix` bits (`[server] ipv6_prefix`), counting refusals in `stats`.
    pub fn new(config: &RateLimitConfig, ipv6_prefix: u8, stats: Arc<Stats>) -> RateLimitLayer {
        let lines = |n: u32| if n == 1 { "line" } else { "lines" };
        let rule = format!(
            "at most {} {} a second, {} at once",
            config.per_second,
            lines(config.per_second),
            config.burst
        );
        let address_rule = format!(
            "at most {} {} a second from your address (all its sessions together), {} at once",
            config.per_address_per_second,
            lines(config.per_address_per_second),
            config.per_address_burst
        );
        let maps = Maps {
            sessions: BucketMap::new(Rate::new(config.per_second, config.burst)),
            addresses: BucketMap::new(Rate::new(
                config.per_address_per_second,
                config.per_address_burst,
            )),
            address_of: HashMap::new(),
        };
        RateLimitLayer {
            buckets: Arc::new(Buckets {
                ipv6_prefix,
                map: Mutex::new(maps),
            }),
            stats,
            rule: rule.into(),
            address_rule: address_rule.into(),
        }
    }

    /// How many session buckets exist (one per session that sent something recently).
    pub fn buckets(&self) -> usize {
        self.buckets.maps().sessions.buckets.len()
    }

    /// How many address buckets exist (one per address that sent something recently).
    pub fn address_buckets(&self) -> usize {
        self.buckets.maps().addresses.buckets.len()
    }

    /// The refusal for an empty bucket, counted and logged (see `ops::logs` for the levels).
    fn refuse(&self, empty: Empty, session: Option<SessionId>) -> BoxError {
        self.stats.rate_limited.inc();
        let (rule, wait) = match empty {
            Empty::Session(wait) => (&self.rule, wait),
            Empty::Address(wait) => (&self.address_rule, wait),
        };
        tracing::debug!(session = ?session, ?empty, "rate limited");
        if let Some(refused) = REFUSED.hit() {
            tracing::warn!(
                refused,
                "requests refused by the rate limit (since the last such warning, at most a \
                 minute ago); some client sends faster than the pipeline allows"
            );
        }
        ChatError::rate_limited(rule, wait).into()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: self.clone(),
        }
    }
}

/// Refuses a session's lines and commands, and an address's connects, beyond their rates; see
/// the module docs.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limits: RateLimitLayer,
}

impl<S: Inner> Service<Request> for RateLimit<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        // The readied inner service: called below, or dropped with a refusal so that whatever
        // it reserved in `poll_ready` (a `concurrency_limit` permit, say) is released at once.
        let mut inner = take(&mut self.inner);
        let buckets = self.limits.buckets.clone();
        let mut connecting_from = None;
        match (&req.action, req.session) {
            (_, Some(session)) if sent_by_a_user(&req) => {
                if let Err(empty) = buckets.take(Some(session), None, Instant::now()) {
                    let refusal = self.limits.refuse(empty, Some(session));
                    return Box::pin(ready(Err(refusal)));
                }
            }
            // A new session costs its address a token: reconnecting is not free.
            (Action::Connect(connect), None) => {
                connecting_from = buckets.group(connect.peer);
                if let Some(group) = connecting_from
                    && let Err(empty) = buckets.take(None, Some(group), Instant::now())
                {
                    return Box::pin(ready(Err(self.limits.refuse(empty, None))));
                }
            }
            // Forgotten before the request goes on, so that even a disconnect that fails below
            // leaves no bucket behind.
            (Action::Disconnect, Some(session)) => buckets.forget(session),
            _ => {}
        }
        Box::pin(async move {
            let reply = call_inner(&mut inner, req).await?;
            if let (Some(group), Outcome::Connected(Connected { session, .. })) =
                (connecting_from, &reply.outcome)
            {
                buckets.remember(*session, group);
            }
            Ok(reply)
        })
    }
}

#[cfg(test)]
mod tests;
