//! A registered client's commands: each becomes a core `Command` (or is answered here when it
//! is only about the IRC connection), and the reply becomes numerics and lines.
//!
//! The refusals are the core's (`ChatError`), told in IRC's numerics: a room the client is not
//! in is `442`/`404`, a nick in use `433`, a bad name `432` or `403`. What chatd does not have
//! (private messages, channel modes, topics, operators) gets the numeric a client expects for
//! "not here", with a sentence saying so. Channel commands are in `channels.rs`.

use bytes::Bytes;

use super::caps;
use super::chathistory;
use super::connection::{Client, End};
use super::message::{Line, Message};
use super::registration::erroneous_nick;
use super::render;
use crate::core::{ChatError, Command, Detail, ErrorKind, Nick, RoomName};

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
                let (lines, _) = caps::cap(&self.options.server_name, &self.nick, &msg.params, &mut self.caps);
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
                (Some(target), Some(text)) => {
                    self.say(command, target, text, label).await?
                }
            },
            "JOIN" => match p(0) {
                None => vec![self.need_more("JOIN")],
                Some(targets) => self.join(targets).await?,
            },
            "PART" => match p(0) {
                None => vec![self.need_more("PART")],
                Some(targets) => self.part(targets, msg.param(1).unwrap_or("")).await?,
            },
            "NAMES" => self.names(p(0)).await?,
            "LIST" => self.list(p(0)).await?,
            "WHO" => self.who(p(0)).await?,
            "WHOIS" => match (p(0), p(1)) {
                (None, _) => vec![self.numeric("431").trailing("No nickname given").bytes()],
                (Some(_), Some(nick)) | (Some(nick), None) => self.whois(nick).await?,
            },
            "TOPIC" => match p(0) {
                None => vec![self.need_more("TOPIC")],
                Some(channel) => self.topic(channel, msg.params.len() > 1).await?,
            },
            "MODE" => match p(0) {
                None => vec![self.need_more("MODE")],
                Some(target) => self.mode(target, p(1)).await?,
            },
            "CHATHISTORY" => self.chathistory(&msg.params).await?,
            // Client-only tags are not relayed (CLIENTTAGDENY=*), so neither is a TAGMSG.
            "TAGMSG" => Vec::new(),
            "AWAY" => match p(0) {
                None => vec![self.numeric("305").trailing("You are no longer marked as being away").bytes()],
                Some(_) => vec![self.numeric("306").trailing("You have been marked as being away (nobody is told: chatd has no private messages)").bytes()],
            },
            "TIME" => {
                let now = crate::core::message::rfc3339(crate::core::message::now_ms());
                vec![self.numeric("391").param(self.server()).trailing(&now).bytes()]
            }
            // chatd keeps no record of nicks that are gone.
            "WHOWAS" => match p(0) {
                None => vec![self.numeric("431").trailing("No nickname given").bytes()],
                Some(nick) => vec![
                    self.numeric("406").param(nick).trailing("There was no such nickname").bytes(),
                    self.numeric("369").param(nick).trailing("End of WHOWAS").bytes(),
                ],
            },
            // chatd's instances share rooms without being linked IRC servers: none to list.
            "LINKS" => vec![self.numeric("365").param("*").trailing("End of /LINKS list").bytes()],
            "USERHOST" => {
                let own = format!("{}=+{}", self.nick, render::source(&self.nick).split('!').nth(1).unwrap_or(""));
                let mine = msg.params.iter().any(|n| n.eq_ignore_ascii_case(&self.nick));
                vec![self.numeric("302").trailing(if mine { &own } else { "" }).bytes()]
            }
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
        Ok(match self.call(Command::Nick(nick)).await? {
            Ok(reply) => match reply.detail {
                Some(Detail::Nick(nick)) => {
                    let line = Line::new(&render::source(&self.nick), "NICK")
                        .trailing(nick.as_str())
                        .bytes();
                    self.nick = nick.to_string();
                    vec![line]
                }
                _ => Vec::new(),
            },
            Err(e) if e.kind == ErrorKind::Conflict => vec![
                self.numeric("433")
                    .param(new)
                    .trailing("Nickname is already in use")
                    .bytes(),
            ],
            Err(e) => vec![self.notice(&e)],
        })
    }

    /// `PRIVMSG`/`NOTICE`: to a channel, a chat message (`/me` for an ACTION); to a nick, a
    /// refusal, as chatd has no private messages. A `NOTICE` is never answered with an error.
    async fn say(
        &mut self,
        command: &str,
        target: &str,
        text: &str,
        label: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let quiet = command == "NOTICE";
        let Some(name) = target.strip_prefix('#') else {
            if quiet {
                return Ok(Vec::new());
            }
            return Ok(vec![
                self.numeric("401")
                    .param(target)
                    .trailing("No such channel: chatd has no private messages, talk in a #channel")
                    .bytes(),
            ]);
        };
        let room = match RoomName::parse(name) {
            Ok(room) => room,
            Err(_) if quiet => return Ok(Vec::new()),
            Err(_) => return Ok(vec![self.no_such_channel(target)]),
        };
        let say = Command::Say {
            room: Some(room),
            text: render::inbound_text(text),
        };
        Ok(match self.call(say).await? {
            Ok(reply) => {
                // With echo-message, the echo is the answer to a labeled message: it is sent
                // with the label when it comes back from the room.
                if let (Some(label), Some(Detail::Sent { room, seq })) = (label, reply.detail)
                    && self.caps.has(caps::Cap::ECHO)
                    && self.caps.has(caps::Cap::LABELED)
                {
                    self.echo_label = Some((room, seq, label.to_string()));
                    self.label_deferred = true;
                }
                Vec::new()
            }
            Err(_) if quiet => Vec::new(),
            Err(e) if e.kind == ErrorKind::Forbidden => vec![
                self.numeric("404")
                    .param(target)
                    .trailing(&format!("Cannot send to channel: {}", e.message))
                    .bytes(),
            ],
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
            match self.call(Command::Window(window)).await? {
                Ok(reply) => {
                    if let Some(Detail::History { answer, .. }) = reply.detail {
                        messages.extend(answer.messages);
                    }
                }
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

    /// `WHOIS nick`: the client itself, or someone in one of its rooms (chatd answers who is
    /// in a room, not where a nick is, so a user sharing no room with the client is not found).
    /// Each room looked into is one `Users` command, so a `WHOIS` of someone else costs a rate
    /// limit token per channel the client is in; one of itself costs none.
    async fn whois(&mut self, nick: &str) -> Result<Vec<Bytes>, End> {
        let mut shared = Vec::new();
        let mut found = nick.eq_ignore_ascii_case(&self.nick);
        let (mut name, mut real) = (nick.to_string(), "chatd user".to_string());
        let mut look_in = self.rooms.clone();
        if found {
            name = self.nick.clone();
            if let Some((_, realname)) = &self.user {
                real = realname.clone();
            }
            shared = look_in.drain(..).map(|room| format!("#{room}")).collect();
        }
        for room in look_in {
            if let Ok(reply) = self.call(Command::Users(Some(room.clone()))).await?
                && let Some(Detail::Users { nicks, .. }) = reply.detail
                && let Some(member) = nicks.iter().find(|n| n.as_str().eq_ignore_ascii_case(nick))
            {
                found = true;
                name = member.to_string();
                shared.push(format!("#{room}"));
            }
        }
        if !found {
            return Ok(vec![
                self.numeric("401")
                    .param(nick)
                    .trailing("No such nick (or not in any of your channels)")
                    .bytes(),
                self.numeric("318")
                    .param(nick)
                    .trailing("End of /WHOIS list")
                    .bytes(),
            ]);
        }
        let user = match (&self.user, name == self.nick) {
            (Some((user, _)), true) => user.clone(),
            _ => name.clone(),
        };
        let mut out = vec![
            self.numeric("311")
                .param(&name)
                .param(&user)
                .param(render::HOST)
                .param("*")
                .trailing(&real)
                .bytes(),
        ];
        if !shared.is_empty() {
            out.push(
                self.numeric("319")
                    .param(&name)
                    .trailing(&shared.join(" "))
                    .bytes(),
            );
        }
        out.push(
            self.numeric("312")
                .param(&name)
                .param(self.server())
                .trailing("chatd")
                .bytes(),
        );
        out.push(
            self.numeric("318")
                .param(&name)
                .trailing("End of /WHOIS list")
                .bytes(),
        );
        Ok(out)
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
