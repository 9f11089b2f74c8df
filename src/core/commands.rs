//! The commands about rooms' rules and about people, beside the core set of `core::request`.
//!
//! The first commands were about being somewhere (`/nick`, `/join`, `/leave`) and saying
//! something there. These are the ones a chat grows next, which IRC has had for decades: a
//! room's topic and modes, operators who kick and invite, private messages, away messages,
//! asking who somebody is. They are ordinary commands of the shared stack: the line protocol
//! types them (`/msg bob hi`, `/topic Friday release`), the HTTP API posts the same lines, and
//! IRC sends its own verbs (`PRIVMSG bob`, `TOPIC #room`); the route layer handles them all
//! (`layers::route::channel` and `layers::route::people`).

use super::names::{Nick, RoomName};

/// A command about a room's rules or members; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCommand {
    /// `/join ROOM KEY`: a join that gives the room's key (`+k`).
    JoinWithKey {
        /// The room.
        room: RoomName,
        /// The key given.
        key: String,
    },
    /// `/leave ROOM REASON`: a leave that says why.
    Part {
        /// The room.
        room: RoomName,
        /// Why, shown to the room.
        reason: String,
    },
    /// IRC's `NOTICE #room`: a chat message of kind notice.
    Notice {
        /// The room.
        room: RoomName,
        /// The text, checked as any message.
        text: String,
    },
    /// `/topic [TEXT]` (IRC's `TOPIC #room [:text]`): read it (`None`), or set it (an empty
    /// text clears it).
    Topic {
        /// The room; `None` for the current room.
        room: Option<RoomName>,
        /// The new topic, if one is set.
        text: Option<String>,
    },
    /// `/mode [ROOM] [CHANGES...]`: show a room's modes (no changes), a mask list (`+b`), or
    /// change them, in IRC's letters (`+o bob`, `+k secret`, `-t`).
    Mode {
        /// The room; `None` for the current room.
        room: Option<RoomName>,
        /// The mode string and its parameters, as typed (`["+ov", "ann", "bob"]`).
        args: Vec<String>,
    },
    /// `/kick NICK [REASON]`: an operator puts a member out of a room.
    Kick {
        /// The room; `None` for the current room.
        room: Option<RoomName>,
        /// Who.
        nick: Nick,
        /// Why; the operator's nick when none is given.
        reason: Option<String>,
    },
    /// `/invite NICK [ROOM]`: lets `nick` into an invite-only room, and tells them.
    Invite {
        /// Who.
        nick: Nick,
        /// The room; `None` for the current room.
        room: Option<RoomName>,
    },
    /// IRC's `INVITE` alone: the rooms the session is invited to.
    Invitations,
    /// IRC's `NAMES #room`: the members with their ranks.
    Names(RoomName),
}

/// A command about people: private messages, away, who is who, server operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// `/msg NICK TEXT`, or IRC's `PRIVMSG nick` and `NOTICE nick`.
    Direct {
        /// The recipient.
        to: Nick,
        /// The text, checked as any message.
        text: String,
        /// A notice rather than a message.
        notice: bool,
    },
    /// `/away [TEXT]`: away with a message, or back (`None` or empty).
    Away(Option<String>),
    /// What a client says about itself: IRC's `USER` (user name and real name), `/setname`.
    Profile {
        /// The user name, shown as `nick!user@chatd`.
        user: Option<String>,
        /// The real name.
        realname: Option<String>,
    },
    /// `/whois NICK`.
    Whois(Nick),
    /// IRC's `WHO MASK`: a room's members (`#room`), or the users whose nick matches a mask.
    Who(String),
    /// IRC's `WHOWAS NICK [COUNT]`: recent departures of a nick on this instance.
    Whowas {
        /// The nick.
        nick: Nick,
        /// At most this many.
        count: usize,
    },
    /// `/umode CHANGES` (IRC's `MODE nick +iw`): the session's own user modes.
    UserMode(String),
    /// `/oper NAME PASSWORD`: become a server operator (the `route` layer's `opers`).
    Oper {
        /// The operator name.
        name: String,
        /// Its password.
        password: String,
    },
    /// `/kill NICK REASON`: a server operator disconnects a user of this instance.
    Kill {
        /// Who.
        nick: Nick,
        /// Why, shown to them and in their quit.
        reason: String,
    },
    /// `/wallops TEXT`: a server operator's message to every user with mode `+w`.
    Wallops(String),
    /// IRC's `LUSERS`: how many users and rooms there are.
    Census,
    /// `/quit REASON`: a quit whose reason the rooms are told.
    QuitWith(String),
    /// `/watch`, `/unwatch` (IRC's `MONITOR`): be told when nicks come online or go offline.
    Monitor(Monitor),
}

/// What a [`UserCommand::Monitor`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Monitor {
    /// Watch these nicks too (and be told which are online now).
    Add(Vec<Nick>),
    /// Stop watching these.
    Remove(Vec<Nick>),
    /// Stop watching anybody.
    Clear,
    /// The nicks watched.
    List,
    /// The nicks watched, and which are online now.
    Status,
}
