//! The IRC adapter, over real sockets: one test crate, six files.
//!
//! * `irc/protocol.rs`: registration, numerics, errors, limits, pings, fakelag, slow readers.
//! * `irc/rooms.rs`: one room shared by netcat, a browser's SSE stream and IRC clients;
//!   presence as JOIN/PART/QUIT/NICK; echo-message, labels, history on join, CHATHISTORY.
//! * `irc/rules.rs`: a room's rules (operators, topics, modes, keys, bans, kicks, invitations).
//! * `irc/people.rs`: private messages, away, WHO/WHOIS/WHOWAS, operators, LUSERS.
//! * `irc/cluster.rs`: IRC users on different instances, phases 2 (poll) and 3 (Valkey).
//! * `irc/client.rs`: a real client, `weechat-headless`, against the real binary.
//!
//! No test asserts how fast anything happens; every read has a generous timeout.

mod client;
mod cluster;
mod people;
mod protocol;
mod rooms;
mod rules;

use crate::support;
use chatd::pipeline::PipelineConfig;
use chatd::server::Server;

/// The default pipeline (no rate limit) with an IRC listener on an ephemeral port.
pub fn irc_config() -> PipelineConfig {
    let mut config = support::default_config();
    config.server.irc = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// A server with [`irc_config`].
pub async fn start() -> Server {
    support::start_with(irc_config()).await
}

/// The IRC address of `server`.
pub fn irc(server: &Server) -> std::net::SocketAddr {
    server.irc_addr().expect("an IRC listener")
}
