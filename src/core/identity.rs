//! What names a session outside the session table: its id and the adapter that opened it.
//!
//! Messages carry their sender's id, the user table and the stats count by protocol, requests
//! say which session asks: all of them need these two small types, and none needs the session
//! itself. Kept apart from `session` (which holds the outbound queue and so depends on events and
//! messages) so that `message`, `users` and `request` can name a session without importing
//! the table that holds it: the core's modules then import one another in one direction only
//! (`scripts/module-cycles.sh core`).

use std::fmt;

/// A session's id, unique within this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// The adapters that can open sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The line protocol (netcat).
    Tcp,
    /// REST + Server-Sent Events (browsers).
    Http,
    /// IRC (irssi, WeeChat, bots).
    Irc,
}

impl Protocol {
    /// Every protocol, in the order the metrics list them.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Http, Protocol::Irc];

    /// The protocol's name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Irc => "irc",
        }
    }

    /// Whether a sender sees its own chat messages come back. A terminal already shows what was
    /// typed, so TCP does not echo; a browser renders the room from its event stream, so HTTP does.
    /// IRC leaves it to each client (the IRCv3 `echo-message` capability): its sessions get their
    /// own messages, in room order, and the IRC adapter drops them for a client that did not ask.
    pub fn echoes_own_messages(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Irc)
    }
}
