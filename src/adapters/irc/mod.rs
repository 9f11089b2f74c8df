//! The IRC adapter: the protocol netcat chat descends from, over the same stack.
//!
//! **What it is.** A third adapter next to the line protocol (`tcp.rs`) and HTTP (`http/`): an
//! IRC client (irssi, WeeChat, a bot) connects, registers with `NICK`/`USER`, and chats in the
//! same rooms as everybody else. The room `general` is the channel `#general`; a `PRIVMSG
//! #general` is a `Command::Say`, a `JOIN` a `Command::Join`, and what the core pushes back
//! (messages, joins, leaves, renames) is rendered as IRC lines. Nicks, rooms, history, rate
//! limits and delivery order are the stack's, so a netcat user, a browser and an IRC client in
//! one room see one conversation, on one instance or across several.
//!
//! **What it teaches.** That the protocol abstraction holds: this adapter adds a protocol with
//! its own registration, numerics and IRCv3 extensions, and the core gained only what every
//! protocol can use (a history window, an IRC wire slot per message, a protocol label). The
//! translation is explicit where the two worlds differ: IRC's per-client `echo-message` is a
//! filter here over the core's per-protocol echo; the core's refusal of a too-fast client
//! becomes IRC's "fakelag" (the command waits instead of failing, see `fakelag.rs`); a
//! message's `msgid` is its room seq, the same on every instance; a room's history is served by
//! `CHATHISTORY` ([`chathistory`]) from the ring and the store like `/history`.
//!
//! **Layout.** [`message`] parses and builds lines; [`caps`] negotiates capabilities;
//! `registration` opens the session and [`welcome`] is what it sends; [`connection`] is the
//! per-client loop (framing, pings, writes that a kick or shutdown can interrupt); `fakelag`
//! calls the stack; `commands` and `channels` map IRC commands onto it; `events` and
//! [`render`] turn the core's events into lines; [`chathistory`] serves `CHATHISTORY` and the
//! join replay as batches; [`response`] applies `labeled-response`.

pub mod caps;
mod channels;
pub mod chathistory;
mod commands;
pub mod connection;
mod events;
mod fakelag;
pub mod message;
mod moderation;
mod monitor;
mod people;
pub mod refusals;
mod registration;
pub mod render;
pub mod response;
mod staff;
pub mod welcome;
mod who;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::ConnectionLimits;
use crate::core::ChatService;
use crate::core::outbound::QueueLimits;
use crate::core::{Protocol, Stats};

/// How long a departing client gets to read its last line.
const FAREWELL_GRACE: Duration = Duration::from_secs(5);

/// The IRC adapter's settings, from the `[server]` table and the pipeline.
#[derive(Debug, Clone)]
pub struct IrcOptions {
    /// The server's name in every line it sends: this instance's name.
    pub server_name: Arc<str>,
    /// A client silent this long is sent a `PING`; silent as long again, it is disconnected.
    pub ping: Duration,
    /// The bounds of each session's outbound queue: events, bytes, and the instance's budget
    /// that every queue (TCP, HTTP, IRC) draws on.
    pub queue: QueueLimits,
    /// Rooms one session may be in (the route layer's limit, announced as `CHANLIMIT`).
    pub max_rooms_per_session: usize,
    /// Messages a joiner is shown (the history layer's capacity).
    pub join_replay: usize,
}

/// Accepts IRC clients until `shutdown`, each served by its own task on `tracker`; `limits`
/// are shared with the other listeners, so an address cannot dodge them by switching protocol.
pub async fn serve(
    listener: TcpListener,
    stack: ChatService,
    options: IrcOptions,
    stats: Arc<Stats>,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let options = Arc::new(options);
    let refusals = Arc::new(Semaphore::new(super::REFUSALS_IN_FLIGHT));
    while let Some(accepted) = super::accept(&listener, &limits, &refusals, &shutdown).await {
        let (stream, peer) = (accepted.stream, accepted.peer);
        let permit = match accepted.admission {
            Ok(permit) => permit,
            Err(refusal) => {
                tracker.spawn(refuse(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let admitted = super::Admitted::new(stats.clone(), Protocol::Irc, permit);
        let connection = connection::Connection::new(
            stack.clone(),
            options.clone(),
            stats.clone(),
            shutdown.clone(),
        );
        // The connection's own future, with nothing around it (see `Connection::run`); the
        // count and the slot are let go as it ends.
        tracker.spawn(connection.run(stream, peer, admitted));
    }
}

/// Tells a refused client why, the IRC way (`ERROR`), and closes the connection.
async fn refuse(stream: TcpStream, refusal: super::Refusal) {
    super::refuse_with(
        stream,
        format!("ERROR :Closing link: {}\r\n", refusal.refused),
    )
    .await;
}
