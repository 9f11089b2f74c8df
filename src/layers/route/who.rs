//! Who is who (`/whois`, IRC's `WHO`): what this instance knows of its users (their
//! profiles, rooms and ranks) and what the shared directory knows of the others' (a nick and an
//! instance). What a user may see follows the rooms' rules: secret rooms (`+s`) only for their
//! members, invisible users (`+i`) only to those sharing a room with them, or by exact nick.

use tower::BoxError;

use super::Ctx;
use super::moderation::no_such_nick;
use crate::core::modes::glob;
use crate::core::{ChannelMode, Event, Nick, Outcome, Rank, Reply, RoomName, Session, UserInfo};
use crate::layers::Inner;

impl<S: Inner> Ctx<'_, S> {
    /// The user holding `nick`, here or on another instance; `None` when nobody does.
    pub(super) async fn find_user(&mut self, nick: &Nick) -> Result<Option<UserInfo>, BoxError> {
        if let Some(found) = self.hub().sessions().find(nick) {
            return Ok(Some(UserInfo {
                nick: found.nick(),
                profile: self.hub().users().get(found.id),
                instance: self.hub().instance().to_string(),
                rooms: Vec::new(),
            }));
        }
        let located = self
            .directory()
            .locate(nick)
            .await
            .map_err(super::directory_down)?;
        Ok(located.map(|(nick, instance)| UserInfo {
            nick,
            profile: None,
            instance,
            rooms: Vec::new(),
        }))
    }

    /// What `asker` may know of the rooms of `member`: the visible ones, with its ranks.
    fn rooms_of(&self, asker: &Session, member: &Session) -> Vec<(RoomName, Rank)> {
        let rooms = member.state().rooms.clone();
        let key = member.nick().key();
        rooms
            .into_iter()
            .filter(|room| self.visible(asker, room))
            .map(|room| {
                let rank = self.hub().channels().get(&room).map(|c| c.rank(&key));
                (room, rank.unwrap_or_default())
            })
            .collect()
    }

    pub(super) async fn whois(&mut self, session: &Session, nick: Nick) -> Result<Reply, BoxError> {
        let Some(mut info) = self.find_user(&nick).await? else {
            return Err(no_such_nick(nick.as_str()).into());
        };
        if let Some(member) = self.hub().sessions().find(&nick) {
            info.rooms = self.rooms_of(session, &member);
        }
        let rooms: Vec<&str> = info.rooms.iter().map(|(r, _)| r.as_str()).collect();
        let mut text = format!(
            "{} is {} ({}), on instance {}",
            info.nick,
            info.mask(),
            info.realname(),
            info.instance
        );
        if !rooms.is_empty() {
            text.push_str(&format!(", in {}", rooms.join(", ")));
        }
        let mut reply = Reply::notice(text);
        if let Some(away) = info.profile.as_ref().and_then(|p| p.away.as_ref()) {
            reply
                .events
                .push(Event::notice(format!("{} is away: {away}", info.nick)));
        }
        Ok(reply.with(Outcome::Whois(Box::new(info))))
    }

    /// IRC's `WHO`: a room's members (`#room`, all of them for a member, the visible ones
    /// otherwise), or the users of this instance whose nick matches a mask (`*` for all).
    pub(super) async fn who(&mut self, session: &Session, mask: String) -> Result<Reply, BoxError> {
        let mut found = Vec::new();
        if let Some(name) = mask.strip_prefix('#').and_then(|n| RoomName::parse(n).ok()) {
            let (channel, shared) = (
                self.hub().channels().get(&name),
                self.visible(session, &name),
            );
            let member = self
                .hub()
                .rooms()
                .get(&name)
                .is_some_and(|r| r.is_member(session.id));
            let nicks = match shared
                && !channel
                    .as_ref()
                    .is_some_and(|c| c.has(ChannelMode::Secret) && !member)
            {
                true => self
                    .directory()
                    .members(&name)
                    .await
                    .map_err(super::directory_down)?,
                false => None,
            };
            for nick in nicks.unwrap_or_default() {
                if let Some(mut info) = self.find_user(&nick).await? {
                    let invisible = info.profile.as_ref().is_some_and(|p| p.modes.invisible);
                    if invisible && !member {
                        continue;
                    }
                    let rank = channel.as_ref().map(|c| c.rank(&nick.key()));
                    info.rooms = vec![(name.clone(), rank.unwrap_or_default())];
                    found.push(info);
                }
            }
        } else if let Ok(nick) = Nick::parse(&mask) {
            found.extend(self.find_user(&nick).await?);
        } else {
            for member in self.hub().sessions().all() {
                let nick = member.nick();
                let profile = self.hub().users().get(member.id);
                let invisible = profile.as_ref().is_some_and(|p| p.modes.invisible);
                let seen =
                    !invisible || member.id == session.id || self.share_a_room(session, &member);
                if glob(&mask, nick.as_str()) && seen {
                    let instance = self.hub().instance().to_string();
                    found.push(UserInfo {
                        nick,
                        profile,
                        instance,
                        rooms: Vec::new(),
                    });
                }
            }
            found.sort_by_key(|info| info.nick.as_str().to_ascii_lowercase());
        }
        let shown: Vec<String> = found.iter().map(|i| i.mask()).collect();
        Ok(Reply::notice(format!("who {mask}: {}", shown.join(", "))).with(Outcome::Who(found)))
    }

    /// Whether `a` and `b` are in a room together (here).
    fn share_a_room(&self, a: &Session, b: &Session) -> bool {
        let theirs = b.state().rooms.clone();
        a.state().rooms.iter().any(|room| theirs.contains(room))
    }
}
