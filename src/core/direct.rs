//! What is said to one person rather than a room: private messages, notices, invitations and
//! operators' wallops.
//!
//! A room message is numbered, stored and fanned out through the room's ordered gate; none of
//! that applies here. A [`Direct`] goes from the route layer straight into its recipient's
//! outbound queue (`Session::deliver`, with the same slow-reader rule as everything else), is
//! not stored and has no seq: nobody but the recipient will ever ask for it again, and there is
//! no order to keep with anybody else's messages. It reaches users of the instance it was sent
//! on; a nick connected to another instance gets a refusal that says so (`docs/IRC.md`).
//!
//! Each has an id, unique enough to name it in IRC's `msgid` tag (a sender with
//! `echo-message` sees the same id as the recipient).

use super::message::now_ms;
use super::names::{Nick, RoomName};

/// One thing said to one person; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    /// Who says it.
    pub from: Nick,
    /// To whom.
    pub to: Nick,
    /// What.
    pub kind: DirectKind,
    /// When, in ms since the Unix epoch.
    pub ts_ms: i64,
    /// Its id (IRC's `msgid`).
    pub id: String,
    /// Whether the sender is a bot (user mode `+B`), which IRC marks with a `bot` tag.
    pub bot: bool,
}

/// What a [`Direct`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectKind {
    /// A private message (`/msg`, IRC's `PRIVMSG nick`).
    Message(String),
    /// A notice (IRC's `NOTICE nick`): never answered automatically.
    Notice(String),
    /// An invitation to a room (`/invite`).
    Invite(RoomName),
    /// A server operator's message to everybody who reads them (`/wallops`, user mode `+w`).
    Wallops(String),
    /// `from` came online (`true`) or went offline: told to those watching it (`/watch`).
    Online(bool),
}

impl Direct {
    /// `kind` from `from` to `to`, now, with a fresh id.
    pub fn new(from: Nick, to: Nick, kind: DirectKind) -> Direct {
        let ts_ms = now_ms();
        let id = format!("d{ts_ms:x}{:08x}", rand::random::<u32>());
        Direct {
            from,
            to,
            kind,
            ts_ms,
            id,
            bot: false,
        }
    }

    /// The line protocol form, without the newline: `*alice* hi` for a private message (as
    /// IRC clients have long shown them), `-alice- hi` for a notice, a notice line for the rest.
    pub fn text(&self) -> String {
        let from = &self.from;
        match &self.kind {
            DirectKind::Message(text) => format!("*{from}* {text}"),
            DirectKind::Notice(text) => format!("-{from}- {text}"),
            DirectKind::Invite(room) => {
                format!("* {from} invites you to {room}: /join {room}")
            }
            DirectKind::Wallops(text) => format!("* wallops from {from}: {text}"),
            DirectKind::Online(true) => format!("* {from} is online"),
            DirectKind::Online(false) => format!("* {from} went offline"),
        }
    }

    /// The bytes of text it carries (sender, id, and what is said), which a queue charges it
    /// besides `outbound::EVENT_OVERHEAD`.
    pub fn text_bytes(&self) -> usize {
        let said = match &self.kind {
            DirectKind::Message(text) | DirectKind::Notice(text) | DirectKind::Wallops(text) => {
                text.len()
            }
            DirectKind::Invite(room) => room.as_str().len(),
            DirectKind::Online(_) => 0,
        };
        self.from.as_str().len() + self.id.len() + said
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(kind: DirectKind) -> Direct {
        let nick = |n: &str| Nick::parse(n).unwrap();
        Direct::new(nick("alice"), nick("bob"), kind)
    }

    #[test]
    fn each_kind_reads_as_a_line() {
        assert_eq!(
            direct(DirectKind::Message("hi".into())).text(),
            "*alice* hi"
        );
        assert_eq!(direct(DirectKind::Notice("hi".into())).text(), "-alice- hi");
        let room = RoomName::parse("dev").unwrap();
        assert_eq!(
            direct(DirectKind::Invite(room)).text(),
            "* alice invites you to dev: /join dev"
        );
    }

    #[test]
    fn ids_differ() {
        let a = direct(DirectKind::Message("x".into()));
        let b = direct(DirectKind::Message("x".into()));
        assert_ne!(a.id, b.id);
    }
}
