//! Who the users of this instance are: what each one told about itself, its away message and
//! user modes, and the nicks that were recently here.
//!
//! A session is a nick and a queue (`core::session`); this registry holds the rest of what
//! people ask about each other (`/whois`, IRC's `WHO`): the user name and real name an IRC
//! client gives at registration (netcat and browser users get `netcat user` or `web user`), the
//! away message of `/away`, the user modes (`+i` invisible, `+w` wallops, `+o` server operator,
//! `+B` bot), and when the session signed on and last spoke. It is kept apart from the sessions
//! so that delivery (the hot path, under the sessions' lock) never waits on it.
//!
//! **Recently here** (`WHOWAS`) is a bounded list of nicks that quit or were renamed, newest
//! last, on this instance only: another instance's departures are not known here.
//!
//! **What it teaches.** State that is about people, not rooms, and that no message carries:
//! it lives once per instance, is read on request, and is bounded (one profile per session, a
//! fixed number of departures).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::channel::Rank;
use super::identity::Protocol;
use super::identity::SessionId;
use super::message::now_ms;
use super::names::{Nick, RoomName};

/// How many departures `WHOWAS` remembers on one instance.
pub const DEPARTED_KEPT: usize = 256;

/// The host part of every user's `nick!user@host`: chatd shows nobody's address.
pub const HOST: &str = "chatd";

/// A user's modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserModes {
    /// `+o`: a server operator (after `/oper`).
    pub oper: bool,
    /// `+i`: left out of `WHO` masks and counted apart by `LUSERS`.
    pub invisible: bool,
    /// `+w`: receives `/wallops`.
    pub wallops: bool,
    /// `+B`: a bot, marked as one to others.
    pub bot: bool,
}

impl UserModes {
    /// The modes as IRC writes them: `+iw`, or `+` for none.
    pub fn letters(&self) -> String {
        let mut out = String::from("+");
        for (on, letter) in [
            (self.bot, 'B'),
            (self.invisible, 'i'),
            (self.oper, 'o'),
            (self.wallops, 'w'),
        ] {
            if on {
                out.push(letter);
            }
        }
        out
    }
}

/// What one session told about itself, and its state.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The user name (IRC's `USER`), shown as `nick!user@chatd`; empty for the nick itself
    /// (netcat and browser users, who give none): see [`Profile::user_or`].
    pub user: String,
    /// The real name (IRC's `USER` and `SETNAME`). Until one is given it is the protocol's
    /// placeholder, borrowed: no allocation for each of ten thousand sessions.
    pub realname: Cow<'static, str>,
    /// The away message, while away.
    pub away: Option<String>,
    /// The user modes.
    pub modes: UserModes,
    /// When the session was opened, in ms since the Unix epoch.
    pub signon_ms: i64,
    /// When it last sent a message (for `WHOIS`'s idle time).
    pub active: Instant,
    /// What its rooms are told when it quits (`/quit REASON`, or why it was killed).
    pub quit_reason: Option<String>,
}

impl Profile {
    /// The user name, or `nick` when none was given.
    pub fn user_or<'a>(&'a self, nick: &'a str) -> &'a str {
        match self.user.is_empty() {
            true => nick,
            false => &self.user,
        }
    }

    /// The profile of a session just opened over `protocol`.
    fn new(protocol: Protocol) -> Profile {
        let realname = match protocol {
            Protocol::Tcp => "netcat user",
            Protocol::Http => "web user",
            Protocol::Irc => "IRC user",
        };
        Profile {
            user: String::new(),
            realname: Cow::Borrowed(realname),
            away: None,
            modes: UserModes::default(),
            signon_ms: now_ms(),
            active: Instant::now(),
            quit_reason: None,
        }
    }
}

/// A nick that quit or was renamed (`WHOWAS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// The nick.
    pub nick: Nick,
    /// Its user name then.
    pub user: String,
    /// Its real name then.
    pub realname: String,
    /// When it left, in ms since the Unix epoch.
    pub at_ms: i64,
}

/// The counts behind IRC's `LUSERS`, for this instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Sessions open now.
    pub users: usize,
    /// Of them, invisible (`+i`).
    pub invisible: usize,
    /// Of them, server operators.
    pub opers: usize,
    /// The most sessions open at once since start.
    pub most: usize,
}

/// What is known of one user, for `/whois` and IRC's `WHO`.
#[derive(Debug, Clone)]
pub struct UserInfo {
    /// The nick.
    pub nick: Nick,
    /// The profile, for a user of this instance; `None` for one known only from the shared
    /// directory (another instance's user: only its nick and instance are known here).
    pub profile: Option<Profile>,
    /// The instance it is connected to.
    pub instance: String,
    /// The rooms it is in that the asker may see, with its rank in each (for `WHO #room`, that
    /// room only).
    pub rooms: Vec<(RoomName, Rank)>,
}

impl UserInfo {
    /// The user name: the profile's, or the nick for a user of another instance.
    pub fn user(&self) -> &str {
        let nick = self.nick.as_str();
        self.profile.as_ref().map_or(nick, |p| p.user_or(nick))
    }

    /// The real name: the profile's, or a placeholder naming the other instance.
    pub fn realname(&self) -> String {
        match &self.profile {
            Some(profile) => profile.realname.to_string(),
            None => format!("a user of instance {}", self.instance),
        }
    }

    /// `nick!user@chatd`, what masks match.
    pub fn mask(&self) -> String {
        format!("{}!{}@{HOST}", self.nick, self.user())
    }
}

/// Every profile of this instance, and its recent departures; see the module docs.
#[derive(Debug, Default)]
pub struct Users {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    profiles: HashMap<SessionId, Profile>,
    departed: VecDeque<Departed>,
    most: usize,
}

impl Users {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session was opened: it gets a profile.
    pub fn opened(&self, id: SessionId, protocol: Protocol) {
        let mut inner = self.inner();
        inner.profiles.insert(id, Profile::new(protocol));
        inner.most = inner.most.max(inner.profiles.len());
    }

    /// A session was closed: its profile goes, and its nick is remembered as departed.
    pub fn closed(&self, id: SessionId, nick: &Nick) -> Option<Profile> {
        let mut inner = self.inner();
        let profile = inner.profiles.remove(&id)?;
        remember(&mut inner.departed, nick, &profile);
        Some(profile)
    }

    /// A session's nick changed from `old`: the old nick is remembered as departed.
    pub fn renamed(&self, id: SessionId, old: &Nick) {
        let mut inner = self.inner();
        if let Some(profile) = inner.profiles.get(&id).cloned() {
            remember(&mut inner.departed, old, &profile);
        }
    }

    /// A copy of `id`'s profile.
    pub fn get(&self, id: SessionId) -> Option<Profile> {
        self.inner().profiles.get(&id).cloned()
    }

    /// Changes `id`'s profile with `change`, returning what it returns (`None` when the session
    /// has no profile: it is closed).
    pub fn update<R>(&self, id: SessionId, change: impl FnOnce(&mut Profile) -> R) -> Option<R> {
        self.inner().profiles.get_mut(&id).map(change)
    }

    /// The sessions whose modes satisfy `wanted` (the readers of `/wallops`).
    pub fn with_modes(&self, wanted: impl Fn(&UserModes) -> bool) -> Vec<SessionId> {
        let inner = self.inner();
        let ids = inner.profiles.iter().filter(|(_, p)| wanted(&p.modes));
        ids.map(|(id, _)| *id).collect()
    }

    /// The departures of `nick` (any case), newest first, at most `limit`.
    pub fn whowas(&self, nick: &Nick, limit: usize) -> Vec<Departed> {
        let key = nick.as_str().to_ascii_lowercase();
        let inner = self.inner();
        let matches = inner.departed.iter().rev();
        matches
            .filter(|d| d.nick.as_str().to_ascii_lowercase() == key)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The counts of this instance (see [`Census`]).
    pub fn census(&self) -> Census {
        let inner = self.inner();
        let profiles = inner.profiles.values();
        Census {
            users: inner.profiles.len(),
            invisible: profiles.clone().filter(|p| p.modes.invisible).count(),
            opers: profiles.filter(|p| p.modes.oper).count(),
            most: inner.most,
        }
    }
}

fn remember(departed: &mut VecDeque<Departed>, nick: &Nick, profile: &Profile) {
    if departed.len() == DEPARTED_KEPT {
        departed.pop_front();
    }
    departed.push_back(Departed {
        nick: nick.clone(),
        user: profile.user_or(nick.as_str()).to_string(),
        realname: profile.realname.to_string(),
        at_ms: now_ms(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(n: &str) -> Nick {
        Nick::parse(n).unwrap()
    }

    #[test]
    fn a_closed_session_is_remembered_newest_first() {
        let users = Users::default();
        users.opened(SessionId(1), Protocol::Irc);
        users.update(SessionId(1), |p| p.user = "first".into());
        users.closed(SessionId(1), &nick("bob"));
        users.opened(SessionId(2), Protocol::Irc);
        users.update(SessionId(2), |p| p.user = "second".into());
        users.closed(SessionId(2), &nick("Bob"));
        let was: Vec<String> = users
            .whowas(&nick("BOB"), 10)
            .into_iter()
            .map(|d| d.user)
            .collect();
        assert_eq!(was, ["second", "first"]);
        assert_eq!(users.whowas(&nick("bob"), 1).len(), 1);
        assert!(users.whowas(&nick("alice"), 10).is_empty());
    }

    #[test]
    fn the_census_counts_modes_and_remembers_the_most() {
        let users = Users::default();
        users.opened(SessionId(1), Protocol::Tcp);
        users.opened(SessionId(2), Protocol::Http);
        users.update(SessionId(2), |p| p.modes.invisible = true);
        users.closed(SessionId(1), &nick("a"));
        let census = users.census();
        assert_eq!((census.users, census.invisible, census.most), (1, 1, 2));
        assert_eq!(users.get(SessionId(2)).unwrap().realname, "web user");
    }

    #[test]
    fn modes_read_as_irc_writes_them() {
        let modes = UserModes {
            oper: true,
            wallops: true,
            ..UserModes::default()
        };
        assert_eq!(modes.letters(), "+ow");
        assert_eq!(UserModes::default().letters(), "+");
    }
}
