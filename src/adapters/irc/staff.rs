//! Operators, user modes and the server's own texts: `OPER`, `KILL`, `WALLOPS`, `MODE nick`,
//! `SETNAME`, `INFO`, `HELP`.
//!
//! `OPER`, `KILL` and `WALLOPS` are the core's `/oper`, `/kill` and `/wallops` (server
//! operators are named in the route layer's `opers` option); `INFO` and `HELP` are text this
//! adapter writes, about chatd and about the IRC commands it understands.

use bytes::Bytes;

use super::caps::Cap;
use super::connection::{Client, End};
use super::message::Line;
use super::render;
use crate::core::ask::people::SetUserModes;
use crate::core::{Command, Nick, UserCommand};

/// `INFO`'s lines.
const INFO: &[&str] = &[
    "chatd: a teaching chat server in Rust (tokio, tower, hyper).",
    "One stack of layers serves three protocols: netcat lines, HTTP with Server-Sent Events, IRC.",
    "Rooms are shared with netcat and browser users; history is numbered per room.",
];

/// `HELP`'s subjects: the commands this adapter understands, each with one line.
const HELP: &[(&str, &str)] = &[
    (
        "AWAY",
        "AWAY [:message]: mark yourself away, or back without a message",
    ),
    (
        "CHATHISTORY",
        "CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN #channel ...: older messages",
    ),
    (
        "INVITE",
        "INVITE nick #channel: let nick into an invite-only channel",
    ),
    (
        "JOIN",
        "JOIN #channel[,#other] [key]: enter channels (0 leaves them all)",
    ),
    (
        "KICK",
        "KICK #channel nick [:reason]: put a member out (channel operators)",
    ),
    ("LIST", "LIST [#channel]: channels with their member counts"),
    (
        "MODE",
        "MODE #channel [+-modes [params]]: channel modes; MODE nick [+-iwB]: yours",
    ),
    ("NAMES", "NAMES #channel: who is in a channel"),
    ("NICK", "NICK newnick: change your nick"),
    (
        "NOTICE",
        "NOTICE target :text: like PRIVMSG, never answered automatically",
    ),
    ("PART", "PART #channel [:reason]: leave a channel"),
    (
        "PRIVMSG",
        "PRIVMSG #channel|nick :text: talk in a channel or to one user",
    ),
    ("QUIT", "QUIT [:reason]: leave"),
    (
        "TOPIC",
        "TOPIC #channel [:topic]: show or set a channel's topic",
    ),
    ("WHO", "WHO #channel|mask [%fields]: who is there"),
    ("WHOIS", "WHOIS nick: who somebody is"),
];

impl Client {
    /// `OPER name password`: `381` and the mode `+o`, or `464`.
    pub(super) async fn oper(&mut self, name: &str, password: &str) -> Result<Vec<Bytes>, End> {
        let command = UserCommand::Oper {
            name: name.to_string(),
            password: password.to_string(),
        };
        Ok(match self.call(Command::User(command)).await? {
            Ok(_) => vec![
                self.numeric("381")
                    .trailing("You are now an IRC operator")
                    .bytes(),
                Line::new(&render::source(&self.nick), "MODE")
                    .param(&self.nick)
                    .trailing("+o")
                    .bytes(),
            ],
            Err(e) => vec![self.refusal(&e, name)],
        })
    }

    /// `KILL nick [:reason]`.
    pub(super) async fn kill(&mut self, nick: &str, reason: &str) -> Result<Vec<Bytes>, End> {
        let Ok(target) = Nick::parse(nick) else {
            return Ok(vec![self.no_such_nick(nick)]);
        };
        let reason = if reason.is_empty() {
            "no reason given"
        } else {
            reason
        };
        let command = UserCommand::Kill {
            nick: target,
            reason: reason.to_string(),
        };
        Ok(match self.call(Command::User(command)).await? {
            Ok(_) => Vec::new(),
            Err(e) => vec![self.refusal(&e, nick)],
        })
    }

    /// `WALLOPS :text`: to every user with `+w` (the sender sees its own).
    pub(super) async fn wallops(&mut self, text: &str) -> Result<Vec<Bytes>, End> {
        let command = UserCommand::Wallops(text.to_string());
        Ok(match self.call(Command::User(command)).await? {
            Ok(_) => Vec::new(),
            Err(e) => vec![self.refusal(&e, "*")],
        })
    }

    /// `MODE nick [changes]`: the client's own modes (`221`), or a change (`MODE nick :+i`).
    pub(super) async fn user_mode(
        &mut self,
        target: &str,
        changes: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        if !target.eq_ignore_ascii_case(&self.nick) {
            let code = match Nick::parse(target).is_ok() {
                true => self
                    .numeric("502")
                    .trailing("Can't change mode for other users"),
                false => self
                    .numeric("401")
                    .param(target)
                    .trailing("No such nick/channel"),
            };
            return Ok(vec![code.bytes()]);
        }
        let asked = SetUserModes(changes.unwrap_or("").to_string());
        Ok(match self.ask_lagged(asked).await? {
            Ok((modes, _)) if changes.is_none() => {
                vec![self.numeric("221").param(&modes.letters()).bytes()]
            }
            Ok((_, changed)) if changed.is_empty() => Vec::new(), // nothing changed
            Ok((_, changed)) => {
                let me = render::source(&self.nick);
                vec![
                    Line::new(&me, "MODE")
                        .param(&self.nick)
                        .trailing(&changed)
                        .bytes(),
                ]
            }
            Err(e) => vec![self.numeric("501").trailing(&e.message).bytes()],
        })
    }

    /// `SETNAME :realname` (IRCv3 `setname`): the real name `WHOIS` shows.
    pub(super) async fn setname(&mut self, realname: &str) -> Result<Vec<Bytes>, End> {
        let command = UserCommand::Profile {
            user: None,
            realname: Some(realname.to_string()),
        };
        Ok(match self.call(Command::User(command)).await? {
            Ok(_) if self.caps.has(Cap::SETNAME) => {
                let me = render::source(&self.nick);
                vec![Line::new(&me, "SETNAME").trailing(realname).bytes()]
            }
            Ok(_) => Vec::new(),
            Err(e) => vec![
                Line::new(self.server(), "FAIL")
                    .param("SETNAME")
                    .param("INVALID_REALNAME")
                    .trailing(&e.message)
                    .bytes(),
            ],
        })
    }

    /// `INFO [server]`: `371` lines and `374`, or `402` for another server.
    pub(super) fn info(&self, target: Option<&str>) -> Vec<Bytes> {
        if let Some(target) = target
            && !crate::core::modes::glob(target, self.server())
            && !target.eq_ignore_ascii_case(&self.nick)
        {
            return vec![
                self.numeric("402")
                    .param(target)
                    .trailing("No such server")
                    .bytes(),
            ];
        }
        let mut out: Vec<Bytes> = INFO
            .iter()
            .map(|l| self.numeric("371").trailing(l).bytes())
            .collect();
        out.push(self.numeric("374").trailing("End of INFO list").bytes());
        out
    }

    /// `HELP [subject]` (and `HELPOP`): `704`, `705`..., `706`; `524` for an unknown subject.
    pub(super) fn help(&self, subject: Option<&str>) -> Vec<Bytes> {
        let line = |code: &str, subject: &str, text: &str| {
            self.numeric(code).param(subject).trailing(text).bytes()
        };
        let Some(subject) = subject else {
            let mut out = vec![line(
                "704",
                "*",
                "chatd's IRC commands (HELP <command> for one):",
            )];
            out.extend(HELP.iter().map(|(name, _)| line("705", "*", name)));
            out.push(line("706", "*", "End of /HELP"));
            return out;
        };
        match HELP
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(subject))
        {
            Some((name, text)) => vec![line("704", name, text), line("706", name, "End of /HELP")],
            None => vec![line("524", subject, "No help available on this topic")],
        }
    }
}
