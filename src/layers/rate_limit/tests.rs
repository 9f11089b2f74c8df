//! Unit tests of the rate-limit layer: the bucket's arithmetic on tokio's paused clock, and the
//! layer over a service that answers everything (sessions, addresses, connects, sweeps).

use std::sync::atomic::{AtomicU64, Ordering};

use super::bucket::SWEEP_FLOOR;
use super::*;
use crate::core::{Command, Connect, Connected, ErrorKind, Nick, Outcome, Protocol, RoomName, ask};
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
    by_address(per_second, burst, 10_000, 100_000)
}

/// As [`limited`], with the per-address bucket's rate and size too.
fn by_address(
    per_second: u32,
    burst: u32,
    per_address_per_second: u32,
    per_address_burst: u32,
) -> (RateLimitLayer, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let config = RateLimitConfig {
        per_second,
        burst,
        per_address_per_second,
        per_address_burst,
    };
    (RateLimitLayer::new(&config, 64, stats.clone()), stats)
}

/// Numbers the sessions a stack under test opens.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1000);

/// Connects from `peer` through `layer` over a stand-in for route that opens a session: its id.
async fn connect(layer: &RateLimitLayer, peer: &str) -> Result<SessionId, BoxError> {
    let stack = layer.layer(service_fn(|req: Request| async move {
        let session = SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed));
        let nick = Nick::parse("guest-1").unwrap();
        Ok(match req.action {
            Action::Connect(_) => {
                Reply::default().with(Outcome::Connected(Connected { session, nick }))
            }
            _ => Reply::default(),
        })
    }));
    let (mut connect, _inbox) = Connect::sample(Protocol::Tcp, None, 1);
    connect.peer = Some(peer.parse().unwrap());
    Ok(ask(&mut { stack }, None, connect).await?.answer.session)
}

/// Sends one line as `session`, returning whether it went through.
async fn line(layer: &RateLimitLayer, session: SessionId) -> bool {
    send(layer, session.0, Action::Line("hi".into()))
        .await
        .is_ok()
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

#[tokio::test(start_paused = true)]
async fn reconnecting_does_not_refill_anything_the_address_shares_one_bucket() {
    // 10 lines per session, 30 per address (connects included).
    let (layer, stats) = by_address(1, 10, 1, 30);
    let mut through = 0;
    for _ in 0..3 {
        let session = connect(&layer, "10.0.0.1:5000").await.unwrap();
        for _ in 0..10 {
            through += usize::from(line(&layer, session).await);
        }
        send(&layer, session.0, Action::Disconnect).await.unwrap();
    }
    assert_eq!(
        through, 27,
        "30 tokens for the address, 3 of them spent by the first 3 connects"
    );
    let refused = connect(&layer, "10.0.0.1:5001").await.unwrap_err();
    assert_eq!(
        ChatError::from_box(&refused).message,
        "slow down: at most 1 line a second from your address (all its sessions together), 30 \
         at once (try again in 1000 ms)"
    );
    assert_eq!(
        stats.rate_limited.get(),
        3 + 1,
        "3 lines and a connect refused"
    );
    // Another address has its own bucket.
    let other = connect(&layer, "10.0.0.2:5000").await.unwrap();
    assert!(line(&layer, other).await);
}

#[tokio::test(start_paused = true)]
async fn a_line_refused_by_the_address_costs_its_session_nothing() {
    let (layer, _) = by_address(1, 5, 1, 4);
    let (a, b) = (
        connect(&layer, "10.0.0.1:1").await.unwrap(),
        connect(&layer, "10.0.0.1:2").await.unwrap(),
    );
    assert!(line(&layer, a).await);
    assert!(line(&layer, b).await);
    assert!(!line(&layer, a).await, "the address is empty");
    tokio::time::advance(Duration::from_secs(1)).await;
    // One token came back to the address; a's bucket still holds 4 of its 5.
    assert!(line(&layer, a).await);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..4 {
        assert!(line(&layer, a).await);
    }
}

#[tokio::test(start_paused = true)]
async fn the_addresses_of_one_ipv6_prefix_share_a_bucket_and_a_disconnect_forgets_the_session() {
    let (layer, _) = by_address(100, 100, 1, 3);
    let a = connect(&layer, "[2001:db8:0:1::a]:1").await.unwrap();
    let b = connect(&layer, "[2001:db8:0:1::b]:1").await.unwrap();
    assert!(line(&layer, a).await);
    assert!(
        !line(&layer, b).await,
        "a, b and their connects: one /64, 3 tokens"
    );
    assert!(
        connect(&layer, "[2001:db8:0:2::a]:1").await.is_ok(),
        "another /64"
    );
    assert_eq!(layer.address_buckets(), 2);
    send(&layer, b.0, Action::Disconnect).await.unwrap();
    assert!(!layer.buckets.maps().address_of.contains_key(&b));
    assert!(layer.buckets.maps().address_of.contains_key(&a));
}

#[tokio::test(start_paused = true)]
async fn a_quit_is_never_refused_for_want_of_a_token() {
    use crate::core::UserCommand;
    let (layer, stats) = limited(1, 2);
    for _ in 0..2 {
        send(&layer, 1, Action::Line("hi".into())).await.unwrap();
    }
    assert!(send(&layer, 1, Action::Line("hi".into())).await.is_err());
    send(&layer, 1, Action::Command(Command::Quit))
        .await
        .expect("/quit with an empty bucket");
    let quit = Command::User(UserCommand::QuitWith("bye".into()));
    send(&layer, 1, Action::Command(quit))
        .await
        .expect("QUIT :bye with an empty bucket");
    assert_eq!(stats.rate_limited.get(), 1, "only the line was refused");
}
