//! The core's events as IRC lines, for one client.
//!
//! A chat message becomes `:nick!nick@chatd PRIVMSG #room :text`, with the tags the client asked
//! for: `time` (`server-time`) and `msgid` (`message-tags`). There are three forms (no tags,
//! `time` only, both), and each is rendered once per message and shared by every IRC recipient
//! that reads that form (`ChatMessage::wire`), as the line protocol shares its line.
//!
//! **msgid** is `ROOM:SEQ`, the message's place in its room: the same on every instance, so a
//! client can name a message to any instance (`CHATHISTORY ... msgid=general:41`). The room is
//! part of it because IRCv3 requires a msgid that no other message on the network shares, and a
//! seq is unique only within its room.
//!
//! **Presence** becomes `JOIN`, `PART`, `QUIT` and `NICK`. The core announces a quit or a rename
//! once per room, but IRC shows it once per user: a client that shares three rooms with `bob`
//! would otherwise read `bob` quit three times. [`Presence`] remembers what it just showed.
//!
//! **`/me`**: IRC's CTCP ACTION (`\x01ACTION waves\x01`) travels through the core as the text
//! `/me waves`, which a netcat user reads as the convention it is; a message that starts with
//! `/me ` is rendered back as an ACTION here. Formatting codes (bold, colours) are control
//! characters, which the core refuses in every message; [`inbound_text`] drops them.

use std::collections::VecDeque;

use bytes::Bytes;

use super::caps::{Cap, Caps};
use super::message::Line;
use crate::core::message::Wire;
use crate::core::{ChatMessage, Direct, DirectKind, MessageKind, Presence, PresenceKind};

/// The host part of every user's `nick!user@host`: chatd shows no addresses.
pub use crate::core::users::HOST;

/// How many recent quits and renames a client remembers, to show each once.
const REMEMBERED: usize = 32;

/// `nick!nick@chatd`, the source of everything a user does.
pub fn source(nick: &str) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// A message's `msgid`: `ROOM:SEQ` (see the module docs).
pub fn msgid(msg: &ChatMessage) -> String {
    format!("{}:{}", msg.room, msg.seq)
}

/// The form of chat messages a client with `caps` reads.
pub fn form(caps: Caps) -> Wire {
    if caps.has(Cap::TAGS) {
        Wire::IrcTags
    } else if caps.has(Cap::SERVER_TIME) {
        Wire::IrcTime
    } else {
        Wire::Irc
    }
}

/// `msg` as a `PRIVMSG` line in `form`, rendered once per form and shared.
pub fn message(msg: &ChatMessage, form: Wire) -> Bytes {
    msg.wire(form, |m| {
        let text = outbound_text(&m.text);
        let verb = match m.kind {
            MessageKind::Say => "PRIVMSG",
            MessageKind::Notice => "NOTICE",
        };
        let mut line = Line::new(&source(m.nick.as_str()), verb);
        if form != Wire::Irc {
            line = line.tag("time", &m.timestamp());
        }
        if form == Wire::IrcTags {
            line = line.tag("msgid", &msgid(m));
            if m.bot {
                line = line.tag("bot", "");
            }
        }
        line.param(&format!("#{}", m.room)).trailing(&text).bytes()
    })
}

/// A message's text as IRC shows it: `/me waves` is the ACTION `\x01ACTION waves\x01`.
fn outbound_text(text: &str) -> String {
    match text.strip_prefix("/me ") {
        Some(action) => format!("\u{1}ACTION {action}\u{1}"),
        None => text.to_string(),
    }
}

/// Something said to one client (`core::Direct`) as its line, with the tags its `caps` ask
/// for; also the echo a sender with `echo-message` gets of its own private message. A watched
/// nick coming online or going offline is the server's `730`/`731` (`MONITOR`).
pub fn direct(d: &Direct, caps: Caps, server: &str) -> Bytes {
    let from = source(d.from.as_str());
    let to = d.to.as_str();
    let mut line = match &d.kind {
        DirectKind::Message(text) => Line::new(&from, "PRIVMSG")
            .param(to)
            .trailing(&outbound_text(text)),
        DirectKind::Notice(text) => Line::new(&from, "NOTICE")
            .param(to)
            .trailing(&outbound_text(text)),
        DirectKind::Invite(room) => Line::new(&from, "INVITE")
            .param(to)
            .param(&format!("#{room}")),
        DirectKind::Wallops(text) => Line::new(&from, "WALLOPS").trailing(text),
        DirectKind::Online(true) => Line::new(server, "730").param(to).trailing(&from),
        DirectKind::Online(false) => Line::new(server, "731").param(to).trailing(d.from.as_str()),
    };
    if let DirectKind::Online(_) = d.kind {
        return line.bytes(); // a numeric, not a message: no tags
    }
    if caps.has(Cap::SERVER_TIME) || caps.has(Cap::TAGS) {
        line = line.tag("time", &crate::core::message::rfc3339(d.ts_ms));
    }
    if caps.has(Cap::TAGS) {
        line = line.tag("msgid", &d.id);
        if d.bot {
            line = line.tag("bot", "");
        }
    }
    line.bytes()
}

/// The text a `PRIVMSG` carries into the core: an ACTION becomes `/me ...`, and IRC formatting
/// (bold `\x02`, colour `\x03` with its digits, italics, underline, reverse, reset, monospace)
/// is dropped, since no other protocol can show it.
pub fn inbound_text(text: &str) -> String {
    let text = match text
        .strip_prefix("\u{1}ACTION ")
        .map(|rest| rest.strip_suffix('\u{1}').unwrap_or(rest))
    {
        Some(action) => return format!("/me {}", strip_formatting(action)),
        None => text,
    };
    strip_formatting(text)
}

fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            '\u{3}' => {
                // Up to two digits of foreground, then `,` and up to two of background.
                skip_digits(&mut chars);
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        skip_digits(&mut chars);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn skip_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for _ in 0..2 {
        if chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
        } else {
            break;
        }
    }
}

/// What a client has been shown of presence, so that a quit or rename is shown once.
#[derive(Debug, Default)]
pub struct Presences {
    recent: VecDeque<String>,
}

impl Presences {
    /// The line for `presence`, or `None` when this client was just shown the same change (a
    /// quit or a rename announced in each room it shares with the user).
    pub fn line(&mut self, presence: &Presence) -> Option<Bytes> {
        let nick = presence.nick.as_str();
        let key = match &presence.kind {
            PresenceKind::Quit => Some(format!("Q {nick}")),
            PresenceKind::Renamed(new) => Some(format!("N {nick} {new}")),
            PresenceKind::Away(text) => Some(format!("A {nick} {text:?}")),
            PresenceKind::Realname(name) => Some(format!("R {nick} {name}")),
            _ => None,
        };
        match &key {
            Some(key) if self.recent.contains(key) => return None,
            Some(key) => {
                if self.recent.len() == REMEMBERED {
                    self.recent.pop_front();
                }
                self.recent.push_back(key.clone());
            }
            None => {}
        }
        // Somebody who joins, or takes a nick, may quit or be renamed again later: forget the
        // old change so the new one is shown.
        let fresh = match &presence.kind {
            PresenceKind::Joined => Some(nick),
            PresenceKind::Renamed(new) => Some(new.as_str()),
            _ => None,
        };
        if let Some(fresh) = fresh {
            self.recent
                .retain(|k| k.strip_prefix("Q ").is_none_or(|n| n != fresh));
        }
        Some(presence_line(presence))
    }
}

/// `presence` as an IRC line, rendered once and shared.
pub fn presence_line(presence: &Presence) -> Bytes {
    presence.wire(Wire::Irc, |p| {
        let who = source(p.nick.as_str());
        let room = format!("#{}", p.room);
        let line = match &p.kind {
            PresenceKind::Joined => Line::new(&who, "JOIN").param(&room),
            PresenceKind::Left => match &p.reason {
                Some(reason) => Line::new(&who, "PART").param(&room).trailing(reason),
                None => Line::new(&who, "PART").param(&room),
            },
            PresenceKind::Quit => {
                Line::new(&who, "QUIT").trailing(p.reason.as_deref().unwrap_or("Quit"))
            }
            PresenceKind::Renamed(new) => Line::new(&who, "NICK").trailing(new.as_str()),
            PresenceKind::Kicked { by, reason } => Line::new(&source(by.as_str()), "KICK")
                .param(&room)
                .param(p.nick.as_str())
                .trailing(reason),
            PresenceKind::Topic(text) => Line::new(&who, "TOPIC").param(&room).trailing(text),
            PresenceKind::Mode(change) => {
                let mut line = Line::new(&who, "MODE").param(&room);
                for param in change.split(' ').filter(|p| !p.is_empty()) {
                    line = line.param(param);
                }
                line
            }
            PresenceKind::Away(Some(text)) => Line::new(&who, "AWAY").trailing(text),
            PresenceKind::Away(None) => Line::new(&who, "AWAY"),
            PresenceKind::Realname(name) => Line::new(&who, "SETNAME").trailing(name),
        };
        line.bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;
    use crate::core::{Nick, RoomName};

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn a_message_has_three_forms_each_rendered_once() {
        let msg = sample("general", 7, "alice", "hi there");
        let plain = message(&msg, form(Caps::default()));
        assert_eq!(
            text(&plain),
            ":alice!alice@chatd PRIVMSG #general :hi there\r\n"
        );
        let again = message(&msg, Wire::Irc);
        assert_eq!(plain.as_ptr(), again.as_ptr(), "shared, not rendered twice");
        let time = text(&message(&msg, Wire::IrcTime)).to_string();
        assert!(
            time.starts_with("@time=") && !time.contains("msgid"),
            "{time}"
        );
        let tags = text(&message(&msg, Wire::IrcTags)).to_string();
        assert!(tags.contains(";msgid=general:7 :alice!"), "{tags}");
    }

    #[test]
    fn actions_and_formatting_translate_both_ways() {
        assert_eq!(inbound_text("\u{1}ACTION waves\u{1}"), "/me waves");
        assert_eq!(
            inbound_text("\u{2}bold\u{2} \u{3}04,12red\u{3} 5\u{f}"),
            "bold red 5"
        );
        assert_eq!(
            inbound_text("\u{3}4,x"),
            ",x",
            "a comma without digits stays"
        );
        let msg = sample("general", 1, "bob", "/me waves");
        assert_eq!(
            text(&message(&msg, Wire::Irc)),
            ":bob!bob@chatd PRIVMSG #general :\u{1}ACTION waves\u{1}\r\n"
        );
    }

    #[test]
    fn a_quit_announced_in_several_rooms_is_shown_once() {
        let p = |room: &str, kind| {
            Presence::new(
                RoomName::parse(room).unwrap(),
                Nick::parse("bob").unwrap(),
                kind,
                None,
            )
        };
        let mut shown = Presences::default();
        let line = shown.line(&p("a", PresenceKind::Quit)).unwrap();
        assert_eq!(text(&line), ":bob!bob@chatd QUIT :Quit\r\n");
        assert!(shown.line(&p("b", PresenceKind::Quit)).is_none());
        let join = shown.line(&p("a", PresenceKind::Joined)).unwrap();
        assert_eq!(text(&join), ":bob!bob@chatd JOIN #a\r\n");
        assert!(
            shown.line(&p("a", PresenceKind::Quit)).is_some(),
            "a new quit"
        );
        let renamed = PresenceKind::Renamed(Nick::parse("robert").unwrap());
        let nick = shown.line(&p("a", renamed.clone())).unwrap();
        assert_eq!(text(&nick), ":bob!bob@chatd NICK :robert\r\n");
        assert!(shown.line(&p("b", renamed)).is_none());
    }
}
