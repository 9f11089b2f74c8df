//! Adapters: protocols in, core types out. No chat logic lives here.
//!
//! Each adapter turns what its clients send into [`Request`](crate::core::Request)s for the one
//! shared stack, and renders the [`Reply`](crate::core::Reply)s and
//! [`Event`](crate::core::Event)s that come back. The words users read are decided by the core,
//! so netcat and browser users see the same messages and the same errors; the IRC adapter
//! speaks in IRC's numerics instead, about the same refusals.

pub mod http;
pub mod irc;
pub mod limits;
pub mod lines;
pub mod outgoing;
pub mod pace;
pub mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::core::{Protocol, Stats};

/// What an admitted connection holds while it lasts: it is counted as opened when made and as
/// closed when dropped, so that the `chatd_connections_open` gauge cannot drift whichever way a
/// connection's task ends, and its slot under the connection limits is given back just after.
/// Each adapter's connection task owns one.
struct Admitted {
    stats: Arc<Stats>,
    protocol: Protocol,
    _permit: Permit,
}

impl Admitted {
    fn new(stats: Arc<Stats>, protocol: Protocol, permit: Permit) -> Admitted {
        stats.connections_opened.get(protocol).inc();
        Admitted {
            stats,
            protocol,
            _permit: permit,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.stats.connections_closed.get(self.protocol).inc();
    }
}

use limits::{ConnectionLimits, Permit, Refused};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// TCP keepalive on every accepted connection: after this long without traffic either way, the
/// kernel starts probing the peer, every [`KEEPALIVE_INTERVAL`]; when its probes go unanswered
/// (Linux gives up after 9) it resets the connection, and the session ends as on a close. A peer
/// that vanished without a word (a laptop shut, a network gone) frees its slot within about
/// 60 + 9 x 10 seconds, instead of never.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between two keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Turns TCP keepalive on for `stream` (see [`KEEPALIVE_IDLE`]). A socket that refuses the option
/// is served without it: that costs a dead peer's slot, not the connection.
fn keep_alive(stream: &TcpStream) {
    let params = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!(error = %err, "cannot turn TCP keepalive on");
    }
}

/// How long a refused client gets to read why before its socket closes.
const REFUSAL_GRACE: Duration = Duration::from_secs(5);
/// How long a refused connection's input is drained before the socket is dropped anyway.
const REFUSAL_DRAIN: Duration = Duration::from_secs(2);

/// An occasional timer of a line connection (the join timeout, the pacing pause): boxed, and
/// made only when first set, since a timer is a hundred-odd bytes that every connection would
/// otherwise carry for its whole life (see `tcp::Connection::run`).
#[derive(Default)]
struct Timer(Option<std::pin::Pin<Box<tokio::time::Sleep>>>);

impl Timer {
    /// A timer set to fire `after` from now.
    fn after(after: Duration) -> Timer {
        Timer(Some(Box::pin(tokio::time::sleep(after))))
    }

    /// Sets it to fire at `until`, reusing its allocation if it has one.
    fn set(&mut self, until: std::time::Instant) {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().reset(until.into()),
            None => self.0 = Some(Box::pin(tokio::time::sleep_until(until.into()))),
        }
    }

    /// Drops it, and what it held.
    fn clear(&mut self) {
        self.0 = None;
    }

    /// Resolves when it fires; never, while it is not set.
    async fn fired(&mut self) {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// Writes `line` (why a connection is refused, in its protocol's words), then closes it. What the
/// client already sent is read and thrown away until it closes too (for at most
/// [`REFUSAL_DRAIN`]): closing a socket with unread input makes the kernel send a reset, which
/// can destroy the line before the client reads it.
async fn refuse_with(mut stream: TcpStream, line: String) {
    let _ = tokio::time::timeout(REFUSAL_GRACE, stream.write_all(line.as_bytes())).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Refused connections that may be kept open at once to be told why (each for a few seconds).
/// Beyond this a refused connection is closed at once, without a word: otherwise one address
/// connecting in a loop could hold a file descriptor per refusal and starve everybody.
const REFUSALS_IN_FLIGHT: usize = 64;

/// A connection the accept loop took, counted against the [`ConnectionLimits`] or refused by
/// them. A refused one is still open, so its adapter can say why before closing it.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    /// The slot it holds until it ends, or the limit it broke.
    admission: Result<Permit, Refusal>,
}

/// A refused connection: the limit it broke, and its place among the refusals in flight (given
/// back when the adapter has said why and closed it).
struct Refusal {
    refused: Refused,
    _slot: OwnedSemaphorePermit,
}

/// The next connection on `listener`, or `None` once `shutdown` fires. Every adapter accepts
/// through this, and so shares one set of `limits`: a client cannot dodge the per-address limit
/// by switching protocols. A failed accept (usually: out of file descriptors) is logged and
/// retried after a short pause instead of spinning.
async fn accept(
    listener: &TcpListener,
    limits: &Arc<ConnectionLimits>,
    refusals: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<Accepted> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    keep_alive(&stream);
                    let admission = match limits.admit(peer.ip()) {
                        Ok(permit) => Ok(permit),
                        Err(refused) => match refusals.clone().try_acquire_owned() {
                            Ok(slot) => {
                                tracing::debug!(%peer, %refused, "connection refused");
                                Err(Refusal { refused, _slot: slot })
                            }
                            Err(_) => {
                                tracing::debug!(%peer, %refused, "connection refused and closed at once: too many refusals in flight");
                                continue;
                            }
                        },
                    };
                    return Some(Accepted { stream, peer, admission });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}
