//! A registered client's commands: each becomes a core `Command` (or is answered here when it
//! is only about the IRC connection), and the reply becomes numerics and lines.
//!
//! The refusals are the core's (`ChatError`), told in IRC's numerics (`refusals.rs`): a room
//! the client is not in is `442`/`404`, a nick in use `433`, a bad name `432` or `403`, a ban
//! `474`. Channel commands are in `channels.rs` and `moderation.rs`, commands about people in
//! `people.rs` and `staff.rs`.

use bytes::Bytes;

use super::caps;
use super::chathistory;
use super::connection::{Client, End};
use super::message::{Line, Message};
use super::refusals::erroneous_nick;
use super::render;
use crate::core::ask::people::Rename;
use crate::core::ask::rooms::{ReadWindow, RoomNotice};
use crate::core::{ChatError, ErrorKind, Nick, RoomName, Say, Sent};

/// How many targets one `PRIVMSG`, `NOTICE`, `KICK`... may name (`TARGMAX`).
pub const MAX_TARGETS: usize = 4;

impl Client {
    /// A line from a registered client.
    pub(super) async fn registered(
        &mut self,
        command: &str,
        msg: &Message<'_>,
        label: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let p = |i: usize| msg.param(i).filter(|p| !p.is_empty());
        Ok(match command {
            "PING" | "PONG" | "QUIT" | "AUTHENTICATE" => return self.anytime(command, msg),
            "CAP" => {
                let (lines, _) = caps::cap(
                    &self.options.server_name,
                    &self.nick,
                    &msg.params,
                    &mut self.caps,
                );
                lines.iter().map(Line::bytes).collect()
            }
            "NICK" => match p(0) {
                None => vec![self.numeric("431").trailing("No nickname given").bytes()],
                Some(nick) => self.nick_change(nick).await?,
            },
            "USER" | "PASS" => vec![
                self.numeric("462")
                    .trailing("You may not reregister")
                    .bytes(),
            ],
            "PRIVMSG" | "NOTICE" => match (p(0), msg.param(1)) {
                (None, _) => vec![self.numeric("411").trailing("No recipient given").bytes()],
                (Some(_), None | Some("")) => {
                    vec![self.numeric("412").trailing("No text to send").bytes()]
                }
                (Some(targets), Some(text)) => {
                    let mut out = Vec::new();
                    for target in targets
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .take(MAX_TARGETS)
                    {
                        out.extend(self.say(command, target, text, label).await?);
                    }
                    out
                }
            },
            "JOIN" => match p(0) {
                None => vec![self.need_more("JOIN")],
                Some(targets) => self.join(targets, p(1)).await?,
            },
            "PART" => match p(0) {
                None => vec![self.need_more("PART")],
                Some(targets) => self.part(targets, msg.param(1).unwrap_or("")).await?,
            },
            "NAMES" => self.names(p(0)).await?,
            "LIST" => self.list(p(0)).await?,
            "WHO" => {
                self.who(p(0).unwrap_or("*"), p(1).filter(|f| f.starts_with('%')))
                    .await?
            }
            "WHOIS" => match (p(0), p(1)) {
                (None, _) => vec![self.numeric("431").trailing("No nickname given").bytes()],
                (Some(_), Some(nick)) | (Some(nick), None) => self.whois(nick).await?,
            },
            "WHOWAS" => match p(0) {
                None => vec![self.numeric("431").trailing("No nickname given").bytes()],
                Some(nick) => self.whowas(nick, p(1)).await?,
            },
            "TOPIC" => match p(0) {
                None => vec![self.need_more("TOPIC")],
                Some(channel) => self.topic(channel, msg.param(1)).await?,
            },
            "MODE" => match p(0) {
                None => vec![self.need_more("MODE")],
                Some(target) if target.starts_with('#') => {
                    self.channel_mode(target, &msg.params[1..]).await?
                }
                Some(target) => self.user_mode(target, p(1)).await?,
            },
            "KICK" => match (p(0), p(1)) {
                (Some(channels), Some(nicks)) => self.kick(channels, nicks, msg.param(2)).await?,
                _ => vec![self.need_more("KICK")],
            },
            "INVITE" => self.invite(p(0), p(1)).await?,
            "CHATHISTORY" => self.chathistory(&msg.params).await?,
            // Client-only tags are not relayed (CLIENTTAGDENY=*), so neither is a TAGMSG.
            "TAGMSG" => Vec::new(),
            "AWAY" => self.away(p(0)).await?,
            "USERHOST" => self.userhost(&msg.params).await?,
            "ISON" => self.ison(&msg.params).await?,
            "LUSERS" => self.lusers().await?,
            "OPER" => match (p(0), p(1)) {
                (Some(name), Some(password)) => self.oper(name, password).await?,
                _ => vec![self.need_more("OPER")],
            },
            "KILL" => match p(0) {
                None => vec![self.need_more("KILL")],
                Some(nick) => self.kill(nick, msg.param(1).unwrap_or("")).await?,
            },
            "WALLOPS" => match p(0) {
                None => vec![self.need_more("WALLOPS")],
                Some(text) => self.wallops(text).await?,
            },
            "SETNAME" => match p(0) {
                None => vec![self.need_more("SETNAME")],
                Some(realname) => self.setname(realname).await?,
            },
            "MONITOR" => self.monitor(p(0), p(1)).await?,
            "INFO" => self.info(p(0)),
            "HELP" | "HELPOP" => self.help(p(0)),
            "TIME" => {
                let now = crate::core::message::rfc3339(crate::core::message::now_ms());
                vec![
                    self.numeric("391")
                        .param(self.server())
                        .trailing(&now)
                        .bytes(),
                ]
            }
            // chatd's instances share rooms without being linked IRC servers: none to list.
            "LINKS" => vec![
                self.numeric("365")
                    .param("*")
                    .trailing("End of /LINKS list")
                    .bytes(),
            ],
            _ => vec![
                self.numeric("421")
                    .param(msg.command)
                    .trailing("Unknown command")
                    .bytes(),
            ],
        })
    }

    /// `461` for `command`.
    pub(super) fn need_more(&self, command: &str) -> Bytes {
        self.numeric("461")
            .param(command)
            .trailing("Not enough parameters")
            .bytes()
    }

    /// `NICK new`: a rename through the core (unique on every instance); the client sees
    /// `:old NICK new`, the rooms it is in see the same.
    async fn nick_change(&mut self, new: &str) -> Result<Vec<Bytes>, End> {
        let nick = match Nick::parse(new) {
            Ok(nick) => nick,
            Err(e) => return Ok(vec![erroneous_nick(self, new, &e.message)]),
        };
        if nick.as_str() == self.nick {
            return Ok(Vec::new());
        }
        Ok(match self.ask_lagged(Rename(nick)).await? {
            Ok(nick) => {
                let line = Line::new(&render::source(&self.nick), "NICK")
                    .trailing(nick.as_str())
                    .bytes();
                self.nick = nick.to_string();
                vec![line]
            }
            Err(e) if e.kind == ErrorKind::Conflict => vec![
                self.numeric("433")
                    .param(new)
                    .trailing("Nickname is already in use")
                    .bytes(),
            ],
            Err(e) => vec![self.notice(&e)],
        })
    }

    /// `PRIVMSG`/`NOTICE` to one target: a chat message (`/me` for an ACTION) to a channel,
    /// or a private message to a nick (`people.rs`). A `NOTICE` is never answered with an
    /// error.
    async fn say(
        &mut self,
        command: &str,
        target: &str,
        text: &str,
        label: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let quiet = command == "NOTICE";
        let Some(name) = target.strip_prefix('#') else {
            return self.direct(target, text, quiet).await;
        };
        let room = match RoomName::parse(name) {
            Ok(room) => room,
            Err(_) if quiet => return Ok(Vec::new()),
            Err(_) => return Ok(vec![self.no_such_channel(target)]),
        };
        let text = render::inbound_text(text);
        let sent = match quiet {
            true => self.ask_lagged(RoomNotice { room, text }).await?,
            false => self.ask_lagged(Say { room, text }).await?,
        };
        Ok(match sent {
            Ok(Sent { room, seq }) => {
                // With echo-message, the echo is the answer to a labeled message: it is sent
                // with the label when it comes back from the room.
                if let Some(label) = label
                    && self.caps.has(caps::Cap::ECHO)
                    && self.caps.has(caps::Cap::LABELED)
                {
                    self.echo_label = Some((room, seq, label.to_string()));
                    self.label_deferred = true;
                }
                Vec::new()
            }
            Err(_) if quiet => Vec::new(),
            Err(e) if e.refusal.is_some() => vec![self.refusal(&e, target)],
            Err(e) => vec![
                self.numeric("404")
                    .param(target)
                    .trailing(&e.message)
                    .bytes(),
            ],
        })
    }

    /// `CHATHISTORY`: the windows it asks for, read through the stack, as one batch.
    async fn chathistory(&mut self, params: &[&str]) -> Result<Vec<Bytes>, End> {
        let query = match chathistory::parse(params) {
            Ok(query) => query,
            Err(refusal) => return Ok(vec![refusal.line(self.server())]),
        };
        let mut messages = Vec::new();
        for window in query.windows {
            match self.ask_lagged(ReadWindow(window)).await? {
                Ok(answer) => messages.extend(answer.messages),
                Err(e) => {
                    let sub = params[0].to_ascii_uppercase();
                    let refusal = chathistory::Refusal::new(
                        "INVALID_TARGET",
                        &[&sub, &query.target],
                        &e.message,
                    );
                    return Ok(vec![refusal.line(self.server())]);
                }
            }
        }
        let (server, caps) = (self.options.server_name.clone(), self.caps);
        Ok(chathistory::batch_of(
            &server,
            caps,
            &mut self.batches,
            &query.target,
            &messages,
        ))
    }

    /// `403` for `channel`.
    pub(super) fn no_such_channel(&self, channel: &str) -> Bytes {
        self.numeric("403")
            .param(channel)
            .trailing("No such channel")
            .bytes()
    }

    /// A refusal with no better numeric, as a `NOTICE` with the core's words.
    pub(super) fn notice(&self, e: &ChatError) -> Bytes {
        Line::new(self.server(), "NOTICE")
            .param(&self.nick)
            .trailing(&e.message)
            .bytes()
    }
}
