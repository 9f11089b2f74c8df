//! The asks about people whose answer an adapter shows as data: a rename, a private message,
//! away, who is who, user modes, the census.
//!
//! Each is one request kind of `core::commands` (`UserCommand`) or `Command::Nick`, with the
//! answer its outcome carries. The IRC adapter asks them for its numerics (`311`, `352`,
//! `301`, `251`...); see `core::ask`.

use std::sync::Arc;

use crate::core::commands::UserCommand;
use crate::core::direct::Direct;
use crate::core::names::Nick;
use crate::core::reply::Outcome;
use crate::core::request::{Action, Command};
use crate::core::users::{Census, Departed, UserInfo, UserModes};

/// A new nick for the session, answered with the nick as it is now written.
#[derive(Debug, Clone)]
pub struct Rename(pub Nick);

/// A private message or notice to a nick, answered with what the recipient got and, for a
/// message, its away message if it is away.
#[derive(Debug, Clone)]
pub struct SendDirect {
    /// The recipient.
    pub to: Nick,
    /// The text, checked as any message.
    pub text: String,
    /// A notice rather than a message.
    pub notice: bool,
}

/// Away with a message, or back (`None` or empty); answered with the away message now.
#[derive(Debug, Clone)]
pub struct SetAway(pub Option<String>);

/// What is known of a nick (`/whois`); refused when nobody has it.
#[derive(Debug, Clone)]
pub struct Whois(pub Nick);

/// The users matching a mask (IRC's `WHO`; for `#room`, its members with their rank there).
#[derive(Debug, Clone)]
pub struct Who(pub String);

/// The recent departures of a nick on this instance, newest first (IRC's `WHOWAS`).
#[derive(Debug, Clone)]
pub struct Whowas {
    /// The nick.
    pub nick: Nick,
    /// At most this many.
    pub count: usize,
}

/// A change of the session's own user modes (`+iw`; empty: none, to see them), answered with
/// the modes now and the change made.
#[derive(Debug, Clone)]
pub struct SetUserModes(pub String);

/// How many are here and everywhere (IRC's `LUSERS`), answered with this instance's counts,
/// the users connected to any instance, and the rooms with members.
#[derive(Debug, Clone)]
pub struct CountUsers;

asks! {
    Rename => Nick, "changed no nick",
    |Rename(nick)| Action::Command(Command::Nick(nick)),
    Outcome::Nick(nick) => nick;

    SendDirect => (Arc<Direct>, Option<String>), "delivered no private message",
    |SendDirect { to, text, notice }| user_command(UserCommand::Direct { to, text, notice }),
    Outcome::Direct { direct, away } => (direct, away);

    SetAway => Option<String>, "told no away message",
    |SetAway(text)| user_command(UserCommand::Away(text)),
    Outcome::Away(away) => away;

    Whois => Box<UserInfo>, "found nobody",
    |Whois(nick)| user_command(UserCommand::Whois(nick)),
    Outcome::Whois(info) => info;

    Who => Vec<UserInfo>, "listed no users",
    |Who(mask)| user_command(UserCommand::Who(mask)),
    Outcome::Who(found) => found;

    Whowas => Vec<Departed>, "listed no departures",
    |Whowas { nick, count }| user_command(UserCommand::Whowas { nick, count }),
    Outcome::Whowas(found) => found;

    SetUserModes => (UserModes, String), "told no user modes",
    |SetUserModes(changes)| user_command(UserCommand::UserMode(changes)),
    Outcome::UserModes { modes, changed } => (modes, changed);

    CountUsers => (Census, usize, usize), "counted nobody",
    |CountUsers| user_command(UserCommand::Census),
    Outcome::Census { here, everywhere, rooms } => (here, everywhere, rooms);
}

fn user_command(command: UserCommand) -> Action {
    Action::Command(Command::User(command))
}
