//! The commands that look at or change a channel's rules: `TOPIC`, `MODE #channel`, `KICK`,
//! `INVITE`.
//!
//! They are the core's `/topic`, `/mode`, `/kick` and `/invite` (`core::RoomCommand`). The
//! client that makes a change reads it as every member does (`:nick TOPIC #room :text`); the
//! others get it from the room, as a presence event, on whichever instance they are.

use bytes::Bytes;

use super::channels::channel;
use super::connection::{Client, End};
use super::message::Line;
use super::render;
use crate::core::ask::rooms::{Invitations, Invite, Kick, RoomModes, RoomTopic};
use crate::core::modes::{self, ChannelMode};
use crate::core::{ModeAnswer, Nick, Topic};

impl Client {
    /// `TOPIC #channel [:text]`: `332`/`333` or `331`; a change is echoed as `TOPIC`.
    pub(super) async fn topic(
        &mut self,
        target: &str,
        text: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let Some(room) = channel(target) else {
            return Ok(vec![self.no_such_channel(target)]);
        };
        let asked = RoomTopic {
            room,
            text: text.map(str::to_string),
        };
        let (room, topic) = match self.ask_lagged(asked).await? {
            Ok(answer) => answer,
            Err(e) => return Ok(vec![self.refusal(&e, target)]),
        };
        let name = format!("#{room}");
        if let Some(text) = text {
            let me = render::source(&self.nick);
            return Ok(vec![
                Line::new(&me, "TOPIC").param(&name).trailing(text).bytes(),
            ]);
        }
        Ok(match topic {
            Some(topic) => self.topic_lines(&name, &topic),
            None => vec![
                self.numeric("331")
                    .param(&name)
                    .trailing("No topic is set")
                    .bytes(),
            ],
        })
    }

    /// `332` and `333` for a channel's topic (also sent on joining it).
    pub(super) fn topic_lines(&self, name: &str, topic: &Topic) -> Vec<Bytes> {
        vec![
            self.numeric("332")
                .param(name)
                .trailing(&topic.text)
                .bytes(),
            self.numeric("333")
                .param(name)
                .param(topic.by.as_str())
                .param(&(topic.at_ms / 1000).to_string())
                .bytes(),
        ]
    }

    /// `MODE #channel [modes [params]]`: `324`/`329`, a list (`367`/`368`...), or the change.
    pub(super) async fn channel_mode(
        &mut self,
        target: &str,
        args: &[&str],
    ) -> Result<Vec<Bytes>, End> {
        let Some(room) = channel(target) else {
            return Ok(vec![self.no_such_channel(target)]);
        };
        let args = args.iter().map(|a| a.to_string()).collect();
        Ok(match self.ask_lagged(RoomModes { room, args }).await? {
            Ok(answer) => self.mode_lines(&answer),
            Err(e) => vec![self.refusal(&e, target)],
        })
    }

    fn mode_lines(&self, answer: &ModeAnswer) -> Vec<Bytes> {
        let name = format!("#{}", answer.room);
        let mut out = Vec::new();
        if !answer.applied.is_empty() {
            let me = render::source(&self.nick);
            let mut line = Line::new(&me, "MODE").param(&name);
            for param in modes::render(&answer.applied) {
                line = line.param(&param);
            }
            out.push(line.bytes());
        }
        if let Some((mode, masks)) = &answer.list {
            let (item, end, what) = match mode {
                ChannelMode::Except => ("348", "349", "exception"),
                ChannelMode::InviteException => ("346", "347", "invite exception"),
                _ => ("367", "368", "ban"),
            };
            for mask in masks {
                let line = self.numeric(item).param(&name).param(&mask.mask);
                let line = line
                    .param(mask.by.as_str())
                    .param(&(mask.at_ms / 1000).to_string());
                out.push(line.bytes());
            }
            let text = format!("End of channel {what} list");
            out.push(self.numeric(end).param(&name).trailing(&text).bytes());
        }
        out.extend(answer.refused.iter().map(|e| self.refusal(e, &name)));
        let Some(state) = &answer.channel else {
            return out;
        };
        let mut line = self.numeric("324").param(&name);
        for param in state.letters(answer.member) {
            line = line.param(&param);
        }
        out.push(line.bytes());
        let created = (state.created_ms / 1000).to_string();
        out.push(self.numeric("329").param(&name).param(&created).bytes());
        out
    }

    /// `KICK #a[,#b] nick[,nick] [:reason]`: one kick per nick (with as many channels, each
    /// nick its own; with one, every nick from it).
    pub(super) async fn kick(
        &mut self,
        targets: &str,
        nicks: &str,
        reason: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let channels: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
        let mut out = Vec::new();
        for (i, nick) in nicks.split(',').filter(|n| !n.is_empty()).enumerate() {
            let target = match channels.len() {
                1 => channels[0],
                _ => match channels.get(i) {
                    Some(target) => target,
                    None => break,
                },
            };
            let Some(room) = channel(target) else {
                out.push(self.no_such_channel(target));
                continue;
            };
            let Ok(nick) = Nick::parse(nick) else {
                out.push(self.no_such_nick(nick));
                continue;
            };
            let reason = reason.filter(|r| !r.is_empty()).map(str::to_string);
            match self.ask_lagged(Kick { room, nick, reason }).await? {
                Ok((room, nick, reason)) => {
                    let me = render::source(&self.nick);
                    let line = Line::new(&me, "KICK").param(&format!("#{room}"));
                    out.push(line.param(nick.as_str()).trailing(&reason).bytes());
                }
                Err(e) => out.push(self.refusal(&e, target)),
            }
        }
        Ok(out)
    }

    /// `INVITE nick #channel`: `341`; alone, the channels the client is invited to (`336`,
    /// `337`).
    pub(super) async fn invite(
        &mut self,
        nick: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let (Some(nick), Some(target)) = (nick, target) else {
            if nick.is_some() {
                return Ok(vec![self.need_more("INVITE")]);
            }
            return self.invitations().await;
        };
        let Some(room) = channel(target) else {
            return Ok(vec![self.no_such_channel(target)]);
        };
        let Ok(who) = Nick::parse(nick) else {
            return Ok(vec![self.no_such_nick(nick)]);
        };
        Ok(match self.ask_lagged(Invite { nick: who, room }).await? {
            Ok((room, nick)) => vec![
                self.numeric("341")
                    .param(nick.as_str())
                    .param(&format!("#{room}"))
                    .bytes(),
            ],
            Err(e) => vec![self.refusal(&e, target)],
        })
    }

    async fn invitations(&mut self) -> Result<Vec<Bytes>, End> {
        let mut out = Vec::new();
        if let Ok(rooms) = self.ask_lagged(Invitations).await? {
            out.extend(
                rooms
                    .iter()
                    .map(|room| self.numeric("336").param(&format!("#{room}")).bytes()),
            );
        }
        out.push(self.numeric("337").trailing("End of /INVITE list").bytes());
        Ok(out)
    }
}
