//! What a room is besides its members and messages: its topic, its modes, who operates it.
//!
//! **The rules**, the same on every protocol (IRC's, since that is where people learnt them):
//! the first member of a room becomes its operator (`@`); operators set modes and kick; a room
//! is `+nt` when created (only members talk, only operators set the topic). `+i` admits only the
//! invited, `+k` only those who give the key, `+l N` at most N members, `+b MASK` nobody who
//! matches (unless `+e` excepts them; `+I` masks may join an invite-only room); `+m` lets only
//! operators and voiced members (`+v`) talk, and `+s` keeps the room out of lists for outsiders.
//!
//! **Where it lives.** Per instance, in memory, while the room has members here: the state goes
//! with the room's last local member, as an IRC channel goes with its last one. With several
//! instances each one keeps its own; the changes made on one (a topic, a mode, a kick) travel to
//! the others as presence events and are applied there too (`layers::route::channel`), but an
//! instance that opens the room later starts it afresh. `docs/IRC.md` says what that means.
//!
//! Ranks are kept by nick key (case and look-alikes folded, like the nick's uniqueness), so that
//! members of other instances, known here only by nick, can hold them too.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::error::ChatError;
use super::message::now_ms;
use super::modes::{ChannelMode, ModeChange, glob};
use super::names::{Nick, RoomName};
use super::refusal::Refusal;

/// The most entries one mask list (`+b`, `+e`, `+I`) of a room holds.
pub const MAX_LIST: usize = 100;

/// A member's rank in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rank {
    /// A room operator (`@`).
    pub op: bool,
    /// Voiced (`+`): may talk in a moderated room.
    pub voice: bool,
}

impl Rank {
    /// IRC's prefix: the highest rank's symbol, or every one with `all` (`multi-prefix`).
    pub fn prefix(self, all: bool) -> &'static str {
        match (self.op, self.voice, all) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

/// A room's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The text.
    pub text: String,
    /// Who set it.
    pub by: Nick,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
}

/// An entry of a mask list (`+b`, `+e`, `+I`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// The mask, `nick!user@host` with globs.
    pub mask: String,
    /// Who set it.
    pub by: Nick,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
}

/// One room's state; see the module docs.
#[derive(Debug, Clone)]
pub struct Channel {
    /// When this instance created it, in ms since the Unix epoch.
    pub created_ms: i64,
    /// Its topic, if one is set.
    pub topic: Option<Topic>,
    /// Its modes without parameters (`i m n s t`).
    pub flags: HashSet<ChannelMode>,
    /// Its key (`+k`).
    pub key: Option<String>,
    /// Its member limit (`+l`).
    pub limit: Option<usize>,
    /// Its mask lists, by mode (`b e I`).
    pub lists: HashMap<ChannelMode, Vec<Mask>>,
    ranks: HashMap<String, Rank>,
    invited: HashSet<String>,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            created_ms: now_ms(),
            topic: None,
            flags: HashSet::from([ChannelMode::NoExternal, ChannelMode::TopicLocked]),
            key: None,
            limit: None,
            lists: HashMap::new(),
            ranks: HashMap::new(),
            invited: HashSet::new(),
        }
    }

    /// Whether flag `mode` is set.
    pub fn has(&self, mode: ChannelMode) -> bool {
        self.flags.contains(&mode)
    }

    /// The rank of the member whose nick key is `key`.
    pub fn rank(&self, key: &str) -> Rank {
        self.ranks.get(key).copied().unwrap_or_default()
    }

    /// The modes as IRC shows them: `+kln` and the parameters (`key` only for members).
    pub fn letters(&self, member: bool) -> Vec<String> {
        let mut letters: Vec<char> = self.flags.iter().map(|m| m.letter()).collect();
        letters.sort_unstable();
        let mut out = vec![format!("+{}", letters.into_iter().collect::<String>())];
        if let Some(key) = &self.key {
            out[0].push('k');
            out.push(if member { key.clone() } else { "*".into() });
        }
        if let Some(limit) = self.limit {
            out[0].push('l');
            out.push(limit.to_string());
        }
        out
    }

    fn matches(&self, list: ChannelMode, who: &str) -> bool {
        self.lists
            .get(&list)
            .is_some_and(|masks| masks.iter().any(|m| glob(&m.mask, who)))
    }

    /// Whether `who` (`nick!user@host`) is banned and not excepted.
    pub fn bans(&self, who: &str) -> bool {
        self.matches(ChannelMode::Ban, who) && !self.matches(ChannelMode::Except, who)
    }
}

/// Who asks to join or talk: their `nick!user@host` and their nick key.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// `nick!user@host`, matched against masks.
    pub mask: &'a str,
    /// The nick key, for ranks and invitations.
    pub key: &'a str,
}

/// The state of every room of this instance; see the module docs.
#[derive(Debug, Default)]
pub struct Channels {
    inner: Mutex<HashMap<RoomName, Channel>>,
}

impl Channels {
    fn inner(&self) -> MutexGuard<'_, HashMap<RoomName, Channel>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of `room`'s state, if it has one here.
    pub fn get(&self, room: &RoomName) -> Option<Channel> {
        self.inner().get(room).cloned()
    }

    /// Changes `room`'s state with `change` (creating it if needed), returning what it returns.
    pub fn update<R>(&self, room: &RoomName, change: impl FnOnce(&mut Channel) -> R) -> R {
        change(
            self.inner()
                .entry(room.clone())
                .or_insert_with(Channel::new),
        )
    }

    /// Whether `person` may join `room` with `key`, which has `members` members now.
    ///
    /// # Errors
    /// The rule that keeps them out: banned, invite-only, a wrong key, full.
    pub fn admit(
        &self,
        room: &RoomName,
        person: Person<'_>,
        key: Option<&str>,
        members: usize,
    ) -> Result<(), ChatError> {
        let inner = self.inner();
        let Some(channel) = inner.get(room) else {
            return Ok(()); // a new room: nobody has set anything
        };
        let invited = channel.invited.contains(person.key);
        let refuse = |why: &str, refusal| {
            Err(ChatError::forbidden(format!("cannot join {room}: {why}")).because(refusal))
        };
        if channel.bans(person.mask) && !invited {
            return refuse("you are banned", Refusal::Banned);
        }
        let excepted = channel.matches(ChannelMode::InviteException, person.mask);
        if channel.has(ChannelMode::InviteOnly) && !invited && !excepted {
            return refuse("it is invite-only (+i)", Refusal::InviteOnly);
        }
        if channel.key.as_deref().is_some_and(|k| Some(k) != key) {
            return refuse("it needs the right key (+k)", Refusal::BadKey);
        }
        if channel.limit.is_some_and(|limit| members >= limit) {
            return refuse("it is full (+l)", Refusal::RoomFull);
        }
        Ok(())
    }

    /// `person` joined `room`; the first member of a room becomes its operator.
    pub fn joined(&self, room: &RoomName, person: Person<'_>, first: bool) {
        self.update(room, |channel| {
            channel.invited.remove(person.key);
            if first {
                channel.ranks.insert(
                    person.key.to_string(),
                    Rank {
                        op: true,
                        voice: false,
                    },
                );
            }
        });
    }

    /// The member with nick key `key` left `room`; with no member left here (`empty`), the
    /// room's state is forgotten.
    pub fn left(&self, room: &RoomName, key: &str, empty: bool) {
        let mut inner = self.inner();
        if empty {
            inner.remove(room);
        } else if let Some(channel) = inner.get_mut(room) {
            channel.ranks.remove(key);
        }
    }

    /// A nick changed: its ranks and invitations follow it.
    pub fn renamed(&self, old: &str, new: &str) {
        for channel in self.inner().values_mut() {
            if let Some(rank) = channel.ranks.remove(old) {
                channel.ranks.insert(new.to_string(), rank);
            }
            if channel.invited.remove(old) {
                channel.invited.insert(new.to_string());
            }
        }
    }

    /// Whether `person` (a member or not) may send to `room`.
    ///
    /// # Errors
    /// `CannotSend` with the rule: not a member of a `+n` room, not voiced in a `+m` room, or
    /// banned.
    pub fn may_send(
        &self,
        room: &RoomName,
        person: Person<'_>,
        member: bool,
    ) -> Result<(), ChatError> {
        let inner = self.inner();
        let channel = inner.get(room);
        let refuse = |why: &str| {
            let text = format!("cannot send to {room}: {why}");
            Err(ChatError::forbidden(text).because(Refusal::CannotSend))
        };
        let outsider = || {
            let text = format!("you are not in {room}: /join {room} first");
            Err(ChatError::forbidden(text).because(Refusal::CannotSend))
        };
        let Some(channel) = channel else {
            return if member { Ok(()) } else { outsider() };
        };
        let rank = channel.rank(person.key);
        let privileged = rank.op || rank.voice;
        if !member && channel.has(ChannelMode::NoExternal) {
            return outsider();
        }
        if channel.has(ChannelMode::Moderated) && !privileged {
            return refuse("it is moderated (+m) and you have no voice");
        }
        if channel.bans(person.mask) && !privileged {
            return refuse("you are banned");
        }
        Ok(())
    }

    /// Makes `changes` to `room` (their parameters already checked, their targets members),
    /// set by `by`; returns the changes that changed something, in order.
    pub fn apply(&self, room: &RoomName, changes: &[ModeChange], by: &Nick) -> Vec<ModeChange> {
        self.update(room, |channel| {
            let mut made = Vec::new();
            for change in changes {
                if apply_one(channel, change, by) {
                    made.push(change.clone());
                }
            }
            made
        })
    }

    /// Records that the nick with key `key` is invited to `room`.
    pub fn invite(&self, room: &RoomName, key: &str) {
        self.update(room, |channel| channel.invited.insert(key.to_string()));
    }

    /// The rooms the nick with key `key` is invited to, sorted.
    pub fn invitations(&self, key: &str) -> Vec<RoomName> {
        let inner = self.inner();
        let mut rooms: Vec<RoomName> = inner
            .iter()
            .filter(|(_, channel)| channel.invited.contains(key))
            .map(|(room, _)| room.clone())
            .collect();
        rooms.sort();
        rooms
    }
}

/// Makes one change; whether it changed anything.
fn apply_one(channel: &mut Channel, change: &ModeChange, by: &Nick) -> bool {
    let ModeChange { on, mode, param } = change;
    match (mode, param) {
        (ChannelMode::Op | ChannelMode::Voice, Some(nick)) => {
            let key = Nick::parse(nick).map(|n| n.key()).unwrap_or_default();
            let rank = channel.ranks.entry(key).or_default();
            let slot = match mode {
                ChannelMode::Op => &mut rank.op,
                _ => &mut rank.voice,
            };
            std::mem::replace(slot, *on) != *on
        }
        (ChannelMode::Key, key) => {
            let new = if *on { key.clone() } else { None };
            std::mem::replace(&mut channel.key, new.clone()) != new
        }
        (ChannelMode::Limit, limit) => {
            let new = limit
                .as_deref()
                .and_then(|l| l.parse().ok())
                .filter(|_| *on);
            std::mem::replace(&mut channel.limit, new) != new
        }
        (list, Some(mask)) if list.is_list() => {
            let masks = channel.lists.entry(*list).or_default();
            let present = masks.iter().position(|m| m.mask.eq_ignore_ascii_case(mask));
            match (on, present) {
                (true, None) if masks.len() < MAX_LIST => {
                    let (by, at_ms) = (by.clone(), now_ms());
                    masks.push(Mask {
                        mask: mask.clone(),
                        by,
                        at_ms,
                    });
                    true
                }
                (false, Some(i)) => {
                    masks.remove(i);
                    true
                }
                _ => false,
            }
        }
        (flag, None) if !flag.is_list() => match on {
            true => channel.flags.insert(*flag),
            false => channel.flags.remove(flag),
        },
        _ => false,
    }
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
