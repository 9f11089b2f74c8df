//! Channel commands: `JOIN`, `PART`, `NAMES`, `LIST`.
//!
//! A channel is a room: `#general` is `general`, folded to lower case like every room name. A
//! join is the core's join (the room is created on first use, its rules decide who may enter,
//! its last messages come back as a `chathistory` batch), then its topic (`332`/`333`) and the
//! members with their ranks (`353`/`366`). `TOPIC`, `MODE`, `KICK` and `INVITE` are in
//! `moderation.rs`.

use bytes::Bytes;

use super::caps::Cap;
use super::chathistory;
use super::connection::{Client, End};
use super::message::Line;
use super::render;
use crate::core::ask::rooms::{Members, NamesOf, RoomList, RoomTopic};
use crate::core::modes::glob;
use crate::core::{ChatError, Command, ErrorKind, Event, Nick, RoomCommand, RoomName};

/// A `353` line holds this many bytes of nicks at most, well inside 512 with the rest.
const NAMES_PER_LINE: usize = 400;

impl Client {
    /// `JOIN #a,#b [key_a,key_b]`, or `JOIN 0` to leave every room.
    pub(super) async fn join(
        &mut self,
        targets: &str,
        keys: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        if targets == "0" {
            let all: Vec<String> = self.rooms.iter().map(|r| format!("#{r}")).collect();
            return self.part(&all.join(","), "").await;
        }
        let mut keys = keys.unwrap_or("").split(',');
        let mut out = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let key = keys.next().filter(|k| !k.is_empty());
            let Some(room) = channel(target) else {
                out.push(self.no_such_channel(target));
                continue;
            };
            if self.rooms.contains(&room) {
                continue; // already in: nothing happens, as on any IRC server
            }
            let join = match key {
                Some(key) => Command::Room(RoomCommand::JoinWithKey {
                    room: room.clone(),
                    key: key.to_string(),
                }),
                None => Command::Join(room.clone()),
            };
            match self.call(join).await? {
                Ok(reply) => {
                    self.rooms.push(room.clone());
                    let me = render::source(&self.nick);
                    out.push(Line::new(&me, "JOIN").param(&format!("#{room}")).bytes());
                    let topic = RoomTopic {
                        room: room.clone(),
                        text: None,
                    };
                    if let Ok((_, Some(topic))) = self.ask_lagged(topic).await? {
                        out.extend(self.topic_lines(&format!("#{room}"), &topic));
                    }
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
                Err(e) if e.refusal.is_some() => out.push(self.refusal(&e, target)),
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
            let leave = match reason.is_empty() {
                true => Command::Leave(Some(room.clone())),
                false => Command::Room(RoomCommand::Part {
                    room: room.clone(),
                    reason: reason.to_string(),
                }),
            };
            match self.call(leave).await? {
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
        self.ask_lagged(Members(room.clone())).await
    }

    /// `NAMES [#a,#b]`: the `353` lines of each, then one `366` naming them all.
    pub(super) async fn names(&mut self, targets: Option<&str>) -> Result<Vec<Bytes>, End> {
        let Some(targets) = targets else {
            return Ok(vec![self.end_of_names("*")]);
        };
        let mut out = Vec::new();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            if let Some(room) = channel(target) {
                let mut lines = self.names_of(&room).await?;
                lines.pop(); // its own 366
                out.extend(lines);
            }
        }
        out.push(self.end_of_names(targets));
        Ok(out)
    }

    /// `353` lines and the `366` for `room` (only the `366` for a room nobody is in, or a
    /// secret one the client is not in).
    async fn names_of(&mut self, room: &RoomName) -> Result<Vec<Bytes>, End> {
        let target = format!("#{room}");
        // A refusal shows as a room nobody is in: only the `366`.
        let (secret, members) = self
            .ask_lagged(NamesOf(room.clone()))
            .await?
            .unwrap_or_default();
        let symbol = if secret { "@" } else { "=" };
        let full = self.caps.has(Cap::USERHOST_IN_NAMES);
        let all = self.caps.has(Cap::MULTI_PREFIX);
        let mut out = Vec::new();
        let mut chunk = String::new();
        for (nick, rank) in members {
            let name = match full {
                true => format!("{}{}", rank.prefix(all), render::source(nick.as_str())),
                false => format!("{}{nick}", rank.prefix(all)),
            };
            if !chunk.is_empty() && chunk.len() + name.len() >= NAMES_PER_LINE {
                out.push(
                    self.numeric("353")
                        .param(symbol)
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
                    .param(symbol)
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

    /// `LIST [filters]`: every room (on every instance) with its member count, or those the
    /// filters keep (`ELIST=MNU`: see [`ListFilter`]).
    pub(super) async fn list(&mut self, targets: Option<&str>) -> Result<Vec<Bytes>, End> {
        let filter = ListFilter::parse(targets.unwrap_or(""));
        let mut out = vec![
            self.numeric("321")
                .param("Channel")
                .trailing("Users  Name")
                .bytes(),
        ];
        match self.ask_lagged(RoomList).await? {
            Ok(rooms) => {
                for (room, members) in rooms {
                    let name = format!("#{room}");
                    if filter.keeps(&name, members) {
                        let line = self.numeric("322").param(&name);
                        out.push(line.param(&members.to_string()).trailing("").bytes());
                    }
                }
            }
            Err(e) => out.push(self.notice(&e)),
        }
        out.push(self.numeric("323").trailing("End of /LIST").bytes());
        Ok(out)
    }
}

/// What `LIST` keeps: channels named or matching a mask (`#dev`, `#c*`: any of them, or all
/// channels when none is given), none matching a `!mask`, and a member count above `>N` and
/// below `<N`.
#[derive(Debug, Default)]
pub(super) struct ListFilter {
    masks: Vec<String>,
    not: Vec<String>,
    more: Option<usize>,
    fewer: Option<usize>,
}

impl ListFilter {
    fn parse(targets: &str) -> ListFilter {
        let mut filter = ListFilter::default();
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let number = |n: &str| n.parse::<usize>().ok();
            if let Some(n) = target.strip_prefix('>').and_then(number) {
                filter.more = Some(n);
            } else if let Some(n) = target.strip_prefix('<').and_then(number) {
                filter.fewer = Some(n);
            } else if let Some(mask) = target.strip_prefix('!') {
                filter.not.push(mask.to_string());
            } else {
                filter.masks.push(target.to_string());
            }
        }
        filter
    }

    fn keeps(&self, name: &str, members: usize) -> bool {
        let named = self.masks.is_empty() || self.masks.iter().any(|m| glob(m, name));
        named
            && !self.not.iter().any(|m| glob(m, name))
            && self.more.is_none_or(|n| members > n)
            && self.fewer.is_none_or(|n| members < n)
    }
}

/// The room a channel name means: `#` and a valid room name.
pub(super) fn channel(target: &str) -> Option<RoomName> {
    target
        .strip_prefix('#')
        .filter(|name| !name.starts_with('#'))
        .and_then(|name| RoomName::parse(name).ok())
}

#[cfg(test)]
mod tests {
    use super::ListFilter;

    #[test]
    fn list_filters_keep_names_masks_and_member_counts() {
        let keeps = |f: &str, name: &str, n: usize| ListFilter::parse(f).keeps(name, n);
        assert!(keeps("", "#any", 0));
        assert!(keeps("#Dev", "#dev", 1), "names match ignoring case");
        assert!(keeps("*an1,#x", "#chan1", 1));
        assert!(!keeps("!#c*n2", "#chan2", 1));
        assert!(keeps(">0,<100", "#a", 3));
        assert!(!keeps("<1", "#a", 1));
    }
}
