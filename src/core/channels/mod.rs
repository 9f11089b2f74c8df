//! Every room's state on this instance (`core::channel`), and the rules as questions: may this
//! person join, may they talk, what did this change of modes change.
//!
//! One lock for all rooms, held briefly and never across an `.await`: each question reads or
//! changes one room's state and returns.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::channel::{Channel, Rank};
use super::error::ChatError;
use super::modes::{ChannelMode, ModeChange};
use super::names::{Nick, RoomName};
use super::refusal::Refusal;

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
                if channel.apply(change, by) {
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

#[cfg(test)]
mod tests;
