//! The rate-limit layer: a token bucket per session, so that no client can send faster than the
//! pipeline file allows.
//!
//! **What it does.** Every line or command a session sends (see `layers::sent_by_a_user`)
//! costs one token from that session's bucket. The bucket holds at most `burst` tokens and refills
//! at `per_second` tokens a second. A request that finds the bucket empty is refused with a
//! [`ErrorKind::RateLimited`](crate::core::ErrorKind::RateLimited) error that says how long to
//! wait: the TCP user reads `! slow down: ... (try again in N ms)`, an HTTP client gets `429` with
//! `Retry-After`. The connection stays open and nothing else happens to the session: it can talk
//! again as soon as a token is back. The opening of an HTTP event stream and each page of its
//! replay cost a token too (reading history is work a client causes). Connects, disconnects and
//! messages from other instances cost nothing, as they are not something a client did.
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
//! * *Why per session.* A limit shared by everyone lets one flooder use up everyone's allowance;
//!   a limit per address punishes everybody behind one NAT. The session is the unit that sends,
//!   so it is the unit that is limited.
//! * *Why a layer, not adapter code.* Both adapters would otherwise need the same bucket, and an
//!   operator could not move, tune or remove it from the pipeline file. As a layer it sees the
//!   one protocol-neutral request type, and the adapters only render its error.
//!
//! **Bounded memory.** The buckets live in one map by session id. A session's bucket is removed
//! when its `Disconnect` passes through, and a bucket that has refilled completely is
//! indistinguishable from a new one, so the map is also swept of full buckets whenever it has
//! doubled since the last sweep (and holds at least 1,024 buckets): it holds the
//! connected sessions that sent something, plus at most about as many stale ones again (or up to
//! the floor) between two sweeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::ready;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, sent_by_a_user, take};
use crate::core::{Action, ChatError, Reply, Request, SessionId, Stats};
use crate::pipeline::config::RateLimitConfig;

/// Below this many buckets the map is never swept: sweeping a small map saves nothing.
const SWEEP_FLOOR: usize = 1024;

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time for one token to come back: a second divided by `per_second`.
    interval: Duration,
    /// The most tokens the bucket holds.
    burst: u32,
}

impl Rate {
    /// `per_second` tokens a second, at most `burst` at once. Both are at least 1 (the pipeline
    /// check makes sure; a 0 here is treated as 1).
    pub fn new(per_second: u32, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: burst.max(1),
        }
    }

    /// How long an empty bucket takes to fill up.
    fn fill_time(&self) -> Duration {
        self.interval * self.burst
    }
}

/// One session's token bucket, kept as the instant it will be full again (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    full_at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(now: Instant) -> Bucket {
        Bucket { full_at: now }
    }

    /// Takes one token at `now`.
    ///
    /// # Errors
    /// When the bucket is empty: how long until it holds a token again.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> Result<(), Duration> {
        // Taking a token pushes the moment the bucket is full again one interval further. The
        // bucket is short of `burst` tokens exactly when that moment is a fill time away, so a
        // take is allowed while it stays within one fill time of now.
        let full_at = self.full_at.max(now) + rate.interval;
        let deficit = full_at - now;
        if deficit <= rate.fill_time() {
            self.full_at = full_at;
            Ok(())
        } else {
            Err(deficit - rate.fill_time())
        }
    }

    /// Whether the bucket has refilled completely by `now` (and so carries no information).
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }
}

/// The buckets of all sessions, shared by every clone of the layer's service.
#[derive(Debug)]
struct Buckets {
    rate: Rate,
    map: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    buckets: HashMap<SessionId, Bucket>,
    /// The map's size after its last sweep: the next sweep waits until it has doubled.
    swept_at: usize,
}

impl Buckets {
    /// Takes a token from `session`'s bucket at `now`, creating the bucket full on first use.
    fn take(&self, session: SessionId, now: Instant) -> Result<(), Duration> {
        let mut map = self.map();
        if map.buckets.len() >= (2 * map.swept_at).max(SWEEP_FLOOR) {
            map.buckets.retain(|_, bucket| !bucket.is_full(now));
            map.swept_at = map.buckets.len();
        }
        map.buckets
            .entry(session)
            .or_insert_with(|| Bucket::full(now))
            .take(&self.rate, now)
    }

    /// Drops `session`'s bucket: the session is going away.
    fn forget(&self, session: SessionId) {
        self.map().buckets.remove(&session);
    }

    fn len(&self) -> usize {
        self.map().buckets.len()
    }

    /// The map, locked; held only for a lookup, never across an `.await`.
    fn map(&self) -> MutexGuard<'_, Map> {
        // A panic cannot leave a bucket half-updated in a way that matters: use it as is.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds [`RateLimit`] services; every service it builds shares one set of buckets.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    buckets: Arc<Buckets>,
    stats: Arc<Stats>,
    /// The rule in words, for the error: `at most 10 lines a second, 20 at once`.
    rule: Arc<str>,
}

impl RateLimitLayer {
    /// A rate-limit layer with the pipeline's options, counting refusals in `stats`.
    pub fn new(config: &RateLimitConfig, stats: Arc<Stats>) -> RateLimitLayer {
        let lines = if config.per_second == 1 {
            "line"
        } else {
            "lines"
        };
        let rule = format!(
            "at most {} {lines} a second, {} at once",
            config.per_second, config.burst
        );
        RateLimitLayer {
            buckets: Arc::new(Buckets {
                rate: Rate::new(config.per_second, config.burst),
                map: Mutex::new(Map::default()),
            }),
            stats,
            rule: rule.into(),
        }
    }

    /// How many buckets exist (one per session that sent something recently).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
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

/// Refuses a session's lines and commands beyond its rate; see the module docs.
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
        match (&req.action, req.session) {
            (_, Some(session)) if sent_by_a_user(&req) => {
                if let Err(wait) = self.limits.buckets.take(session, Instant::now()) {
                    self.limits.stats.rate_limited.inc();
                    let refusal = ChatError::rate_limited(&self.limits.rule, wait);
                    return Box::pin(ready(Err(refusal.into())));
                }
            }
            // Forgotten before the request goes on, so that even a disconnect that fails below
            // leaves no bucket behind.
            (Action::Disconnect, Some(session)) => self.limits.buckets.forget(session),
            _ => {}
        }
        Box::pin(async move { call_inner(&mut inner, req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Command, ErrorKind, RoomName};
    use tower::{ServiceExt, service_fn};

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_allows_a_burst_then_one_token_per_interval() {
        let rate = Rate::new(10, 20);
        let mut bucket = Bucket::full(Instant::now());
        for i in 0..20 {
            assert_eq!(bucket.take(&rate, Instant::now()), Ok(()), "token {i}");
        }
        assert_eq!(bucket.take(&rate, Instant::now()), Err(100 * MS));
        tokio::time::advance(40 * MS).await;
        assert_eq!(bucket.take(&rate, Instant::now()), Err(60 * MS));
        tokio::time::advance(60 * MS).await;
        assert_eq!(bucket.take(&rate, Instant::now()), Ok(()));
        assert_eq!(bucket.take(&rate, Instant::now()), Err(100 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_to_its_burst_and_no_further() {
        let rate = Rate::new(10, 20);
        let mut bucket = Bucket::full(Instant::now());
        for _ in 0..20 {
            bucket.take(&rate, Instant::now()).unwrap();
        }
        assert!(!bucket.is_full(Instant::now()));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(bucket.is_full(Instant::now()));
        let allowed = (0..100)
            .filter(|_| bucket.take(&rate, Instant::now()).is_ok())
            .count();
        assert_eq!(
            allowed, 20,
            "a long quiet spell saves up one burst, not more"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_sender_at_the_rate_is_never_refused() {
        let rate = Rate::new(4, 1);
        let mut bucket = Bucket::full(Instant::now());
        for i in 0..50 {
            assert_eq!(bucket.take(&rate, Instant::now()), Ok(()), "send {i}");
            tokio::time::advance(250 * MS).await;
        }
    }

    /// A stack of the rate-limit layer over a service that answers everything.
    fn limited(per_second: u32, burst: u32) -> (RateLimitLayer, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let config = RateLimitConfig { per_second, burst };
        (RateLimitLayer::new(&config, stats.clone()), stats)
    }

    async fn send(layer: &RateLimitLayer, session: u64, action: Action) -> Result<Reply, BoxError> {
        let stack = layer.layer(service_fn(|_req: Request| async { Ok(Reply::default()) }));
        stack
            .oneshot(Request::from(SessionId(session), action))
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn only_lines_and_commands_cost_tokens_and_each_session_has_its_own_bucket() {
        let (layer, stats) = limited(1, 2);
        for _ in 0..2 {
            send(&layer, 1, Action::Line("hi".into())).await.unwrap();
        }
        let err = send(&layer, 1, Action::Command(Command::Rooms))
            .await
            .unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(
            err.kind,
            ErrorKind::RateLimited {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            err.message,
            "slow down: at most 1 line a second, 2 at once (try again in 1000 ms)"
        );
        assert_eq!(stats.rate_limited.get(), 1);
        // Opening an event stream costs a token like any command.
        let replay = Command::Replay {
            room: RoomName::parse("general").unwrap(),
            after: None,
        };
        assert!(send(&layer, 1, Action::Command(replay)).await.is_err());
        assert_eq!(stats.rate_limited.get(), 2);
        // Another session is not affected; a remote message (no session) costs nothing.
        send(&layer, 2, Action::Line("hi".into())).await.unwrap();
        for _ in 0..5 {
            let anonymous = Request::anonymous(Action::Line("x".into()));
            let stack = layer.layer(service_fn(|_req: Request| async { Ok(Reply::default()) }));
            stack.oneshot(anonymous).await.unwrap();
        }
        assert_eq!(stats.rate_limited.get(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_disconnect_drops_the_sessions_bucket() {
        let (layer, _) = limited(10, 20);
        send(&layer, 7, Action::Line("hi".into())).await.unwrap();
        send(&layer, 8, Action::Line("hi".into())).await.unwrap();
        assert_eq!(layer.buckets(), 2);
        send(&layer, 7, Action::Disconnect).await.unwrap();
        assert_eq!(layer.buckets(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_swept_once_the_map_grows() {
        let (layer, _) = limited(10, 20);
        // Sessions that each sent one line and went quiet without a disconnect.
        for session in 0..SWEEP_FLOOR as u64 {
            send(&layer, session, Action::Line("hi".into()))
                .await
                .unwrap();
        }
        assert_eq!(layer.buckets(), SWEEP_FLOOR);
        tokio::time::advance(Duration::from_secs(3)).await;
        // The next new session finds a map at the floor, all of it refilled: swept.
        send(&layer, 1_000_000, Action::Line("hi".into()))
            .await
            .unwrap();
        assert_eq!(layer.buckets(), 1);
    }
}
