//! Channel commands: `JOIN`, `PART`, `NAMES`, `LIST`, `WHO`, `TOPIC`, `MODE`.
//!
//! A channel is a room: `#general` is `general`, folded to lower case like every room name. A
//! join is the core's join (the room is created on first use, its last messages come back as a
//! `chathistory` batch), then the core's member list as `353`/`366`. Rooms have no topics, modes
//! or operators; `TOPIC` and `MODE` answer with what every room is (`+nt`: only members talk,
//! nobody sets a topic) and refuse changes with `482`.

use bytes::Bytes;

use super::caps::Cap;
use super::chathistory;
use super::connection::{Client, End};
use super::message::Line;
use super::render;
use crate::core::{ChatError, Command, Detail, ErrorKind, Event, Nick, RoomName};

/// A `353` line holds this many bytes of nicks at most, well inside 512 with the rest.
const NAMES_PER_LINE: usize = 400;

impl Client {
    /// `JOIN #a,#b` (keys ignored: rooms have none), or `JOIN 0` to leave every room.
    pub(super) async fn join(&mut self, targets: &str) -> Result<Vec<Bytes>, End> {
        if targets == "0" {
            let all: Vec<String> = self.rooms.iter().map(|r| format!("#{r}")).collect();
            return self.part(&all.join(","), "").await;
        }
        let mut out = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let Some(room) = channel(target) else {
                out.push(self.no_such_channel(target));
                continue;
            };
            if self.rooms.contains(&room) {
                continue; // already in: nothing happens, as on any IRC server
            }
            match self.call(Command::Join(room.clone())).await? {
                Ok(reply) => {
                    self.rooms.push(room.clone());
                    let me = render::source(&self.nick);
                    out.push(Line::new(&me, "JOIN").param(&format!("#{room}")).bytes());
                    out.extend(self.names_of(&room).await?);
                    let history: Vec<_> = reply
                        .events
                        .into_iter()
                        .filter_map(|event| match event {
                            Event::Message(msg) => Some(msg),
                            _ => None,
                        })
                        .collect();
                    if !history.is_empty() {
                        let (server, caps) = (self.options.server_name.clone(), self.caps);
                        let target = format!("#{room}");
                        out.extend(chathistory::batch_of(
                            &server,
                            caps,
                            &mut self.batches,
                            &target,
                            &history,
                        ));
                    }
                }
                Err(e) if e.kind == ErrorKind::Forbidden => out.push(
                    self.numeric("405")
                        .param(target)
                        .trailing(&e.message)
                        .bytes(),
                ),
                Err(e) => out.push(self.notice(&e)),
            }
        }
        Ok(out)
    }

    /// `PART #a,#b [:reason]`.
    pub(super) async fn part(&mut self, targets: &str, reason: &str) -> Result<Vec<Bytes>, End> {
        let mut out = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let Some(room) = channel(target) else {
                out.push(self.no_such_channel(target));
                continue;
            };
            match self.call(Command::Leave(Some(room.clone()))).await? {
                Ok(_) => {
                    self.rooms.retain(|r| *r != room);
                    let me = render::source(&self.nick);
                    let mut line = Line::new(&me, "PART").param(&format!("#{room}"));
                    if !reason.is_empty() {
                        line = line.trailing(reason);
                    }
                    out.push(line.bytes());
                }
                Err(_) => out.push(self.not_on_channel(target, &room).await?),
            }
        }
        Ok(out)
    }

    /// `442` when the room exists, `403` when it does not.
    async fn not_on_channel(&mut self, target: &str, room: &RoomName) -> Result<Bytes, End> {
        Ok(match self.members(room).await? {
            Ok(_) => self
                .numeric("442")
                .param(target)
                .trailing("You're not on that channel")
                .bytes(),
            Err(_) => self.no_such_channel(target),
        })
    }

    /// The members of `room` anywhere (the core's directory), or why not.
    async fn members(&mut self, room: &RoomName) -> Result<Result<Vec<Nick>, ChatError>, End> {
        Ok(match self.call(Command::Users(Some(room.clone()))).await? {
            Ok(reply) => match reply.detail {
                Some(Detail::Users { nicks, .. }) => Ok(nicks),
                _ => Ok(Vec::new()),
            },
            Err(e) => Err(e),
        })
    }

    /// `NAMES [#a,#b]`.
    pub(super) async fn names(&mut self, targets: Option<&str>) -> Result<Vec<Bytes>, End> {
        let Some(targets) = targets else {
            return Ok(vec![self.end_of_names("*")]);
        };
        let mut out = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            match channel(target) {
                Some(room) => out.extend(self.names_of(&room).await?),
                None => out.push(self.end_of_names(target)),
            }
        }
        Ok(out)
    }

    /// `353` lines and the `366` for `room` (only the `366` for a room nobody is in).
    async fn names_of(&mut self, room: &RoomName) -> Result<Vec<Bytes>, End> {
        let target = format!("#{room}");
        let nicks = self.members(room).await?.unwrap_or_default();
        let full = self.caps.has(Cap::USERHOST_IN_NAMES);
        let mut out = Vec::new();
        let mut chunk = String::new();
        for nick in nicks {
            let name = match full {
                true => render::source(nick.as_str()),
                false => nick.to_string(),
            };
            if !chunk.is_empty() && chunk.len() + name.len() >= NAMES_PER_LINE {
                out.push(
                    self.numeric("353")
                        .param("=")
                        .param(&target)
                        .trailing(&chunk)
                        .bytes(),
                );
                chunk.clear();
            }
            if !chunk.is_empty() {
                chunk.push(' ');
            }
            chunk.push_str(&name);
        }
        if !chunk.is_empty() {
            out.push(
                self.numeric("353")
                    .param("=")
                    .param(&target)
                    .trailing(&chunk)
                    .bytes(),
            );
        }
        out.push(self.end_of_names(&target));
        Ok(out)
    }

    fn end_of_names(&self, target: &str) -> Bytes {
        self.numeric("366")
            .param(target)
            .trailing("End of /NAMES list")
            .bytes()
    }

    /// `LIST [#a,#b]`: every room (on every instance) with its member count.
    pub(super) async fn list(&mut self, targets: Option<&str>) -> Result<Vec<Bytes>, End> {
        let wanted: Option<Vec<RoomName>> =
            targets.map(|t| t.split(',').filter_map(channel).collect());
        let mut out = vec![
            self.numeric("321")
                .param("Channel")
                .trailing("Users  Name")
                .bytes(),
        ];
        match self.call(Command::Rooms).await? {
            Ok(reply) => {
                if let Some(Detail::Rooms(rooms)) = reply.detail {
                    for (room, members) in rooms {
                        if wanted.as_ref().is_some_and(|w| !w.contains(&room)) {
                            continue;
                        }
                        out.push(
                            self.numeric("322")
                                .param(&format!("#{room}"))
                                .param(&members.to_string())
                                .trailing("")
                                .bytes(),
                        );
                    }
                }
            }
            Err(e) => out.push(self.notice(&e)),
        }
        out.push(self.numeric("323").trailing("End of /LIST").bytes());
        Ok(out)
    }

    /// `WHO #room` (its members) or `WHO nick` (the client itself only; see `WHOIS`).
    pub(super) async fn who(&mut self, mask: Option<&str>) -> Result<Vec<Bytes>, End> {
        let mask = mask.unwrap_or("*");
        let mut out = Vec::new();
        let entry = |client: &Client, channel: &str, nick: &str| {
            client
                .numeric("352")
                .param(channel)
                .param(nick)
                .param(render::HOST)
                .param(client.server())
                .param(nick)
                .param("H")
                .trailing("0 chatd user")
                .bytes()
        };
        match channel(mask) {
            Some(room) => {
                if let Ok(nicks) = self.members(&room).await? {
                    let target = format!("#{room}");
                    out.extend(nicks.iter().map(|n| entry(self, &target, n.as_str())));
                }
            }
            None if mask.eq_ignore_ascii_case(&self.nick) => out.push(entry(self, "*", &self.nick)),
            None => {}
        }
        out.push(
            self.numeric("315")
                .param(mask)
                .trailing("End of WHO list")
                .bytes(),
        );
        Ok(out)
    }

    /// `TOPIC #room`: rooms have none (`331`); setting one is refused (`482`).
    pub(super) async fn topic(&mut self, target: &str, set: bool) -> Result<Vec<Bytes>, End> {
        let Some(room) = channel(target) else {
            return Ok(vec![self.no_such_channel(target)]);
        };
        if !self.rooms.contains(&room) {
            let line = match (set, self.members(&room).await?) {
                (_, Err(_)) => self.no_such_channel(target),
                (true, Ok(_)) => self
                    .numeric("442")
                    .param(target)
                    .trailing("You're not on that channel")
                    .bytes(),
                (false, Ok(_)) => self.no_topic(target),
            };
            return Ok(vec![line]);
        }
        Ok(vec![match set {
            true => self.not_operator(target, "chatd rooms have no topics"),
            false => self.no_topic(target),
        }])
    }

    fn no_topic(&self, target: &str) -> Bytes {
        self.numeric("331")
            .param(target)
            .trailing("No topic is set")
            .bytes()
    }

    fn not_operator(&self, target: &str, why: &str) -> Bytes {
        self.numeric("482")
            .param(target)
            .trailing(&format!("You're not a channel operator: {why}"))
            .bytes()
    }

    /// `MODE #room` shows `+nt`; `MODE nick` shows `+`; changes are refused or ignored.
    pub(super) async fn mode(
        &mut self,
        target: &str,
        modes: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let Some(room) = channel(target) else {
            return Ok(vec![match target.eq_ignore_ascii_case(&self.nick) {
                true => self.numeric("221").param("+").bytes(),
                false if target.starts_with('#') => self.no_such_channel(target),
                false => self
                    .numeric("502")
                    .trailing("Can't change mode for other users")
                    .bytes(),
            }]);
        };
        if !self.rooms.contains(&room) && self.members(&room).await?.is_err() {
            return Ok(vec![self.no_such_channel(target)]);
        }
        Ok(vec![match modes {
            None => self.numeric("324").param(target).param("+nt").bytes(),
            Some("b" | "+b") => self
                .numeric("368")
                .param(target)
                .trailing("End of channel ban list")
                .bytes(),
            Some(_) => self.not_operator(target, "chatd rooms have no modes to change"),
        }])
    }
}

/// The room a channel name means: `#` and a valid room name.
pub(super) fn channel(target: &str) -> Option<RoomName> {
    target
        .strip_prefix('#')
        .filter(|name| !name.starts_with('#'))
        .and_then(|name| RoomName::parse(name).ok())
}
