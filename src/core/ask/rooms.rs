//! The asks about rooms whose answer an adapter shows as data: members, names, the room list,
//! a topic, modes, a kick, an invitation, a window of history, a notice's seq.
//!
//! Each is one request kind of `core::commands` (or `core::request`), with the room always
//! named (an adapter that asks knows which room it means) and the answer its outcome carries.
//! The IRC adapter asks them for its numerics (`353`, `322`, `341`...); see `core::ask`.

use crate::core::channel::{Rank, Topic};
use crate::core::commands::RoomCommand;
use crate::core::history::{HistoryAnswer, HistoryWindow};
use crate::core::names::{Nick, RoomName};
use crate::core::reply::{ModeAnswer, Outcome, Sent};
use crate::core::request::{Action, Command};

/// The nicks in a room, on any instance (`/users ROOM`); refused for a room that does not
/// exist or that the session may not see.
#[derive(Debug, Clone)]
pub struct Members(pub RoomName);

/// A room's members with their ranks, for a member or a visible room (IRC's `NAMES`), answered
/// with whether it is secret (`+s`) and the members, sorted.
#[derive(Debug, Clone)]
pub struct NamesOf(pub RoomName);

/// Every room the session may see, with its member count, sorted by name (`/rooms`, `LIST`).
#[derive(Debug, Clone)]
pub struct RoomList;

/// A room's topic: read it (`text: None`) or set it (an empty text clears it). Answered with
/// the room and its topic now.
#[derive(Debug, Clone)]
pub struct RoomTopic {
    /// The room.
    pub room: RoomName,
    /// The new topic, if one is set.
    pub text: Option<String>,
}

/// A room's modes: shown (no `args`), one of its mask lists (`+b`), or changed.
#[derive(Debug, Clone)]
pub struct RoomModes {
    /// The room.
    pub room: RoomName,
    /// The mode string and its parameters, as typed (`["+ov", "ann", "bob"]`).
    pub args: Vec<String>,
}

/// An operator puts a member out of a room; answered with the room, who and why.
#[derive(Debug, Clone)]
pub struct Kick {
    /// The room.
    pub room: RoomName,
    /// Who.
    pub nick: Nick,
    /// Why; the operator's nick when none is given.
    pub reason: Option<String>,
}

/// Lets a nick into an invite-only room; answered with the room and the nick as written.
#[derive(Debug, Clone)]
pub struct Invite {
    /// Who.
    pub nick: Nick,
    /// The room.
    pub room: RoomName,
}

/// The rooms the session is invited to.
#[derive(Debug, Clone)]
pub struct Invitations;

/// A window of a member's room history (IRC's `CHATHISTORY`).
#[derive(Debug, Clone)]
pub struct ReadWindow(pub HistoryWindow);

/// A chat message of kind notice to a room (IRC's `NOTICE #room`), answered with its seq as a
/// message (`ask::Say`) is.
#[derive(Debug, Clone)]
pub struct RoomNotice {
    /// The room.
    pub room: RoomName,
    /// The text, checked as any message.
    pub text: String,
}

asks! {
    Members => Vec<Nick>, "listed no members",
    |Members(room)| Action::Command(Command::Users(Some(room))),
    Outcome::Users { nicks, .. } => nicks;

    NamesOf => (bool, Vec<(Nick, Rank)>), "named no members",
    |NamesOf(room)| room_command(RoomCommand::Names(room)),
    Outcome::Names { secret, members, .. } => (secret, members);

    RoomList => Vec<(RoomName, usize)>, "listed no rooms",
    |RoomList| Action::Command(Command::Rooms),
    Outcome::Rooms(rooms) => rooms;

    RoomTopic => (RoomName, Option<Topic>), "told no topic",
    |RoomTopic { room, text }| room_command(RoomCommand::Topic { room: Some(room), text }),
    Outcome::Topic { room, topic } => (room, topic);

    RoomModes => Box<ModeAnswer>, "told no modes",
    |RoomModes { room, args }| room_command(RoomCommand::Mode { room: Some(room), args }),
    Outcome::Mode(answer) => answer;

    Kick => (RoomName, Nick, String), "kicked nobody",
    |Kick { room, nick, reason }| {
        room_command(RoomCommand::Kick { room: Some(room), nick, reason })
    },
    Outcome::Kicked { room, nick, reason } => (room, nick, reason);

    Invite => (RoomName, Nick), "invited nobody",
    |Invite { nick, room }| room_command(RoomCommand::Invite { nick, room: Some(room) }),
    Outcome::Invited { room, nick } => (room, nick);

    Invitations => Vec<RoomName>, "listed no invitations",
    |Invitations| room_command(RoomCommand::Invitations),
    Outcome::Invitations(rooms) => rooms;

    ReadWindow => HistoryAnswer, "read no history",
    |ReadWindow(window)| Action::Command(Command::Window(window)),
    Outcome::History { answer, .. } => answer;

    RoomNotice => Sent, "numbered no notice",
    |RoomNotice { room, text }| room_command(RoomCommand::Notice { room, text }),
    Outcome::Sent(sent) => sent;
}

fn room_command(command: RoomCommand) -> Action {
    Action::Command(Command::Room(command))
}
