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

use super::message::now_ms;
use super::modes::{ChannelMode, ModeChange, glob};
use super::names::Nick;

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
    pub(super) ranks: HashMap<String, Rank>,
    pub(super) invited: HashSet<String>,
}

impl Channel {
    pub(super) fn new() -> Channel {
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

    pub(super) fn matches(&self, list: ChannelMode, who: &str) -> bool {
        self.lists
            .get(&list)
            .is_some_and(|masks| masks.iter().any(|m| glob(&m.mask, who)))
    }

    /// Whether `who` (`nick!user@host`) is banned and not excepted.
    pub fn bans(&self, who: &str) -> bool {
        self.matches(ChannelMode::Ban, who) && !self.matches(ChannelMode::Except, who)
    }

    /// Makes one change (its parameter checked, its target a member), set by `by`; whether it
    /// changed anything.
    pub fn apply(&mut self, change: &ModeChange, by: &Nick) -> bool {
        let ModeChange { on, mode, param } = change;
        match (mode, param) {
            (ChannelMode::Op | ChannelMode::Voice, Some(nick)) => {
                let key = Nick::parse(nick).map(|n| n.key()).unwrap_or_default();
                let rank = self.ranks.entry(key).or_default();
                let slot = match mode {
                    ChannelMode::Op => &mut rank.op,
                    _ => &mut rank.voice,
                };
                std::mem::replace(slot, *on) != *on
            }
            (ChannelMode::Key, key) => {
                let new = if *on { key.clone() } else { None };
                std::mem::replace(&mut self.key, new.clone()) != new
            }
            (ChannelMode::Limit, limit) => {
                let new = limit
                    .as_deref()
                    .and_then(|l| l.parse().ok())
                    .filter(|_| *on);
                std::mem::replace(&mut self.limit, new) != new
            }
            (list, Some(mask)) if list.is_list() => {
                let masks = self.lists.entry(*list).or_default();
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
                true => self.flags.insert(*flag),
                false => self.flags.remove(flag),
            },
            _ => false,
        }
    }
}
