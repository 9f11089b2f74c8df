//! The commands that change a room: `/topic`, `/mode`, `/kick`, `/invite`.
//!
//! Each checks who asks (a member, an operator where the room's rules say so), changes the
//! room's state (`core::channel`), and announces the change to the room as a presence event,
//! which reaches the members of every instance. The refusals name their rule
//! (`core::Refusal`), so that IRC clients get the numeric they expect.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use crate::core::message::{check_text, now_ms};
use crate::core::modes::{self, ChannelMode};
use crate::core::{
    ChatError, Direct, DirectKind, Event, ModeAnswer, Nick, Outcome, Presence, PresenceKind,
    Refusal, Reply, RoomName, Session, Topic,
};
use crate::layers::Inner;

impl<S: Inner> Ctx<'_, S> {
    /// The topic `text` set by `nick` now; `None` for an empty text (cleared).
    pub(super) fn topic_of(&self, nick: &Nick, text: &str) -> Option<Topic> {
        (!text.is_empty()).then(|| Topic {
            text: text.to_string(),
            by: nick.clone(),
            at_ms: now_ms(),
        })
    }

    /// The room a command names or means (the current one), which must exist somewhere.
    async fn existing(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
    ) -> Result<RoomName, BoxError> {
        let name = self
            .target(session, named)
            .ok_or_else(|| ChatError::invalid("join a room first: /join ROOM"))?;
        let known = self.hub().rooms().get(&name).is_some()
            || self
                .directory()
                .members(&name)
                .await
                .is_ok_and(|m| m.is_some());
        match known {
            true => Ok(name),
            false => Err(no_such_room(&name).into()),
        }
    }

    /// Whether `session` is a member of `name` here, and operates it.
    fn standing(&self, session: &Session, name: &RoomName) -> (bool, bool) {
        let member = self
            .hub()
            .rooms()
            .get(name)
            .is_some_and(|r| r.is_member(session.id));
        let channel = self.hub().channels().get(name);
        let op = channel.is_some_and(|c| c.rank(&session.nick().key()).op);
        (member, member && op)
    }

    pub(super) async fn topic(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
        text: Option<String>,
    ) -> Result<Reply, BoxError> {
        let name = self.existing(session, named).await?;
        let (member, op) = self.standing(session, &name);
        let Some(text) = text else {
            if !self.visible(session, &name) {
                return Err(no_such_room(&name).into());
            }
            let topic = self.hub().channels().get(&name).and_then(|c| c.topic);
            let shown = match &topic {
                Some(topic) => format!("the topic of {name}: {}", topic.text),
                None => format!("{name} has no topic"),
            };
            return Ok(Reply::notice(shown).with(Outcome::Topic { room: name, topic }));
        };
        if !member {
            return Err(not_in(&name).into());
        }
        let locked = self
            .hub()
            .channels()
            .get(&name)
            .is_some_and(|c| c.has(ChannelMode::TopicLocked));
        if locked && !op {
            return Err(not_operator(&name, "set its topic (+t)").into());
        }
        if !text.is_empty() {
            check_text(&text, self.shared.max_message_chars)?;
        }
        let nick = session.nick();
        let topic = self.topic_of(&nick, &text);
        self.hub()
            .channels()
            .update(&name, |c| c.topic = topic.clone());
        let presence = Presence::new(
            name.clone(),
            nick,
            PresenceKind::Topic(text),
            Some(session.id),
        );
        self.announce_change(session, presence).await?;
        let shown = match &topic {
            Some(topic) => format!("you set the topic of {name}: {}", topic.text),
            None => format!("you cleared the topic of {name}"),
        };
        Ok(Reply::notice(shown).with(Outcome::Topic { room: name, topic }))
    }

    pub(super) async fn mode(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
        args: Vec<String>,
    ) -> Result<Reply, BoxError> {
        let name = self.existing(session, named).await?;
        let (member, op) = self.standing(session, &name);
        let channel = self.hub().channels().get(&name);
        let mut answer = ModeAnswer {
            room: name.clone(),
            applied: Vec::new(),
            refused: Vec::new(),
            channel: None,
            list: None,
            member,
        };
        if args.is_empty() {
            answer.channel = channel;
            let shown = match &answer.channel {
                Some(c) => format!("{name} has modes {}", c.letters(member).join(" ")),
                None => format!("{name} has modes +nt"),
            };
            return Ok(Reply::notice(shown).with(Outcome::Mode(Box::new(answer))));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (changes, refused) = modes::parse(&args);
        answer.refused = refused;
        let mut wanted = Vec::new();
        for change in changes {
            if change.mode.is_list() && change.param.is_none() {
                let masks = channel
                    .as_ref()
                    .and_then(|c| c.lists.get(&change.mode).cloned());
                answer.list = Some((change.mode, masks.unwrap_or_default()));
            } else if !member {
                answer.refused.push(not_in(&name));
                break;
            } else if !op {
                answer.refused.push(not_operator(&name, "change its modes"));
                break;
            } else {
                match self.rank_target(&name, &change).await? {
                    Ok(()) => wanted.push(change),
                    Err(refusal) => answer.refused.push(refusal),
                }
            }
        }
        let nick = session.nick();
        answer.applied = self.hub().channels().apply(&name, &wanted, &nick);
        let mut shown = Vec::new();
        if !answer.applied.is_empty() {
            let change = modes::render(&answer.applied).join(" ");
            shown.push(format!("you set mode {change} in {name}"));
            let kind = PresenceKind::Mode(change);
            let presence = Presence::new(name.clone(), nick, kind, Some(session.id));
            self.announce_change(session, presence).await?;
        }
        if let Some((mode, masks)) = &answer.list {
            let list: Vec<&str> = masks.iter().map(|m| m.mask.as_str()).collect();
            shown.push(format!(
                "+{} list of {name}: {}",
                mode.letter(),
                list.join(" ")
            ));
        }
        shown.extend(
            answer
                .refused
                .iter()
                .map(|e| format!("refused: {}", e.message)),
        );
        let events = shown.into_iter().map(Event::notice).collect();
        Ok(Reply {
            events,
            outcome: Outcome::Mode(Box::new(answer)),
            close: false,
        })
    }

    /// For `+o`/`+v`: the nick must be connected and in the room (on any instance).
    async fn rank_target(
        &mut self,
        name: &RoomName,
        change: &crate::core::ModeChange,
    ) -> Result<Result<(), ChatError>, BoxError> {
        if !matches!(change.mode, ChannelMode::Op | ChannelMode::Voice) {
            return Ok(Ok(()));
        }
        let Some(target) = change.param.as_deref().and_then(|n| Nick::parse(n).ok()) else {
            return Ok(Err(no_such_nick(change.param.as_deref().unwrap_or(""))));
        };
        let members = self
            .directory()
            .members(name)
            .await
            .map_err(super::directory_down)?;
        let is_member = members.is_some_and(|m| m.iter().any(|n| n.key() == target.key()));
        if is_member {
            return Ok(Ok(()));
        }
        Ok(Err(match self.find_user(&target).await? {
            Some(_) => not_a_member(&target, name),
            None => no_such_nick(target.as_str()),
        }))
    }

    pub(super) async fn kick(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
        nick: Nick,
        reason: Option<String>,
    ) -> Result<Reply, BoxError> {
        let name = self.existing(session, named).await?;
        match self.standing(session, &name) {
            (false, _) => return Err(not_in(&name).into()),
            (true, false) => return Err(not_operator(&name, "kick").into()),
            (true, true) => {}
        }
        let members = self
            .directory()
            .members(&name)
            .await
            .map_err(super::directory_down)?;
        let Some(target) = members
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.key() == nick.key())
        else {
            return Err(not_a_member(&nick, &name).into());
        };
        let by = session.nick();
        let reason = reason
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| by.to_string());
        let kind = PresenceKind::Kicked {
            by,
            reason: reason.clone(),
        };
        let presence = Presence::new(name.clone(), target.clone(), kind, Some(session.id));
        // Announced first, so that the one kicked hears it while still a member.
        self.announce_change(session, presence).await?;
        let local = self.hub().sessions().find(&target);
        match (local, self.hub().rooms().get(&name)) {
            (Some(member), Some(room)) => self.remove_member(&member, &room).await,
            _ => self.hub().channels().left(&name, &target.key(), false),
        }
        let text = format!("you kicked {target} from {name} ({reason})");
        Ok(Reply::notice(text).with(Outcome::Kicked {
            room: name,
            nick: target,
            reason,
        }))
    }

    pub(super) async fn invite(
        &mut self,
        session: &Session,
        nick: Nick,
        named: Option<RoomName>,
    ) -> Result<Reply, BoxError> {
        let name = self.existing(session, named).await?;
        let (member, op) = self.standing(session, &name);
        if !member {
            return Err(not_in(&name).into());
        }
        let invite_only = self
            .hub()
            .channels()
            .get(&name)
            .is_some_and(|c| c.has(ChannelMode::InviteOnly));
        if invite_only && !op {
            return Err(not_operator(&name, "invite to it (+i)").into());
        }
        let Some(target) = self.hub().sessions().find(&nick) else {
            return Err(match self.find_user(&nick).await? {
                Some(_) => other_instance(&nick),
                None => no_such_nick(nick.as_str()),
            }
            .into());
        };
        let target_nick = target.nick();
        if self
            .hub()
            .rooms()
            .get(&name)
            .is_some_and(|r| r.is_member(target.id))
        {
            let text = format!("{target_nick} is in {name} already");
            let refusal = Refusal::AlreadyInRoom(target_nick.to_string());
            return Err(ChatError::invalid(text).because(refusal).into());
        }
        self.hub().channels().invite(&name, &target_nick.key());
        let kind = DirectKind::Invite(name.clone());
        let direct = Direct::new(session.nick(), target_nick.clone(), kind);
        let _ = target.deliver(Event::Direct(Arc::new(direct)));
        let text = format!("you invited {target_nick} to {name}");
        Ok(Reply::notice(text).with(Outcome::Invited {
            room: name,
            nick: target_nick,
        }))
    }
}

/// `403`'s rule: no room by that name.
pub(super) fn no_such_room(name: &RoomName) -> ChatError {
    ChatError::not_found(format!("no room named {name}")).because(Refusal::NoSuchRoom)
}

fn not_in(name: &RoomName) -> ChatError {
    ChatError::forbidden(format!("you are not in {name}")).because(Refusal::NotInRoom)
}

fn not_operator(name: &RoomName, to: &str) -> ChatError {
    let text = format!("only operators of {name} may {to}");
    ChatError::forbidden(text).because(Refusal::NotOperator)
}

fn not_a_member(nick: &Nick, name: &RoomName) -> ChatError {
    let text = format!("{nick} is not in {name}");
    ChatError::not_found(text).because(Refusal::UserNotInRoom(nick.to_string()))
}

/// `401`'s rule: nobody connected by that nick.
pub(super) fn no_such_nick(nick: &str) -> ChatError {
    ChatError::not_found(format!("nobody is called {nick}")).because(Refusal::NoSuchNick)
}

/// A user connected to another instance, which this request cannot reach.
pub(super) fn other_instance(nick: &Nick) -> ChatError {
    let text = format!(
        "{nick} is connected to another instance: private messages and invitations reach users \
         of this instance only"
    );
    ChatError::forbidden(text).because(Refusal::OtherInstance)
}
