//! The slash commands about rooms' rules and people (`core::commands`): `/msg`, `/away`,
//! `/whois`, `/topic`, `/mode`, `/kick`, `/invite`, `/oper`..., and the forms of `/join`,
//! `/leave` and `/quit` that take one more word.
//!
//! Kept apart from the first commands so that each file reads as one grammar. A text argument
//! (a message, a reason, a topic) is the rest of the line as typed, spaces included.

use super::usage;
use crate::core::{ChatError, Command, Monitor, Nick, RoomCommand, RoomName, UserCommand};

/// The command `/name args...` means, if it is one of these; `rest` is the line after its `/`.
///
/// # Errors
/// A usage error naming the command's form, or the rule a nick or room name broke.
pub(super) fn parse(name: &str, args: &[&str], rest: &str) -> Result<Option<Command>, ChatError> {
    use RoomCommand as R;
    use UserCommand as U;
    let text = |skip: usize| tail(rest, skip + 1).to_string();
    let nick = |n: &str| Nick::parse(n);
    let room = |r: &str| RoomName::parse(r);
    let all = |nicks: &[&str]| {
        nicks
            .iter()
            .map(|n| Nick::parse(n))
            .collect::<Result<Vec<_>, _>>()
    };
    let command = match (name, args) {
        ("join", [r, key]) => Command::Room(R::JoinWithKey {
            room: room(r)?,
            key: key.to_string(),
        }),
        ("leave" | "part", [r, _, ..]) => Command::Room(R::Part {
            room: room(r)?,
            reason: text(1),
        }),
        ("quit", [_, ..]) => Command::User(U::QuitWith(text(0))),
        ("msg" | "query", [to, _, ..]) => Command::User(U::Direct {
            to: nick(to)?,
            text: text(1),
            notice: false,
        }),
        ("msg" | "query", _) => return Err(usage("/msg NICK TEXT")),
        ("away", []) => Command::User(U::Away(None)),
        ("away", _) => Command::User(U::Away(Some(text(0)))),
        ("whois", [n]) => Command::User(U::Whois(nick(n)?)),
        ("whois", _) => return Err(usage("/whois NICK")),
        ("whowas", [n]) => Command::User(U::Whowas {
            nick: nick(n)?,
            count: 10,
        }),
        ("whowas", _) => return Err(usage("/whowas NICK")),
        ("topic", []) => Command::Room(R::Topic {
            room: None,
            text: None,
        }),
        ("topic", ["-"]) => Command::Room(R::Topic {
            room: None,
            text: Some(String::new()),
        }),
        ("topic", _) => Command::Room(R::Topic {
            room: None,
            text: Some(text(0)),
        }),
        ("mode", [first, ..]) if !first.starts_with(['+', '-']) => {
            let args = args[1..].iter().map(|a| a.to_string()).collect();
            Command::Room(R::Mode {
                room: Some(room(first)?),
                args,
            })
        }
        ("mode", _) => {
            let args = args.iter().map(|a| a.to_string()).collect();
            Command::Room(R::Mode { room: None, args })
        }
        ("umode", [changes]) => Command::User(U::UserMode(changes.to_string())),
        ("umode", []) => Command::User(U::UserMode(String::new())),
        ("umode", _) => return Err(usage("/umode [+-iwB]")),
        ("kick", [n]) => Command::Room(R::Kick {
            room: None,
            nick: nick(n)?,
            reason: None,
        }),
        ("kick", [n, ..]) => Command::Room(R::Kick {
            room: None,
            nick: nick(n)?,
            reason: Some(text(1)),
        }),
        ("kick", _) => return Err(usage("/kick NICK [REASON]")),
        ("invite", [n]) => Command::Room(R::Invite {
            nick: nick(n)?,
            room: None,
        }),
        ("invite", [n, r]) => Command::Room(R::Invite {
            nick: nick(n)?,
            room: Some(room(r)?),
        }),
        ("invite", _) => return Err(usage("/invite NICK [ROOM]")),
        ("oper", [name, password]) => Command::User(U::Oper {
            name: name.to_string(),
            password: password.to_string(),
        }),
        ("oper", _) => return Err(usage("/oper NAME PASSWORD")),
        ("kill", [n, _, ..]) => Command::User(U::Kill {
            nick: nick(n)?,
            reason: text(1),
        }),
        ("kill", _) => return Err(usage("/kill NICK REASON")),
        ("wallops", [_, ..]) => Command::User(U::Wallops(text(0))),
        ("wallops", _) => return Err(usage("/wallops TEXT")),
        ("setname", [_, ..]) => Command::User(U::Profile {
            user: None,
            realname: Some(text(0)),
        }),
        ("setname", _) => return Err(usage("/setname NAME")),
        ("watch", []) => Command::User(U::Monitor(Monitor::Status)),
        ("watch", nicks) => Command::User(U::Monitor(Monitor::Add(all(nicks)?))),
        ("unwatch", []) => Command::User(U::Monitor(Monitor::Clear)),
        ("unwatch", nicks) => Command::User(U::Monitor(Monitor::Remove(all(nicks)?))),
        _ => return Ok(None),
    };
    Ok(Some(command))
}

/// `line` after its first `skip` words, as typed (inner spaces kept, outer ones trimmed).
fn tail(line: &str, skip: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..skip {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

#[cfg(test)]
mod tests {
    use super::super::parse_line;
    use super::*;

    fn cmd(line: &str) -> Command {
        parse_line(line).unwrap().unwrap()
    }

    fn nick(n: &str) -> Nick {
        Nick::parse(n).unwrap()
    }

    #[test]
    fn texts_are_the_rest_of_the_line_as_typed() {
        let to = nick("bob");
        let direct = UserCommand::Direct {
            to,
            text: "hi  there".into(),
            notice: false,
        };
        assert_eq!(cmd("/msg bob hi  there"), Command::User(direct));
        assert_eq!(
            cmd("/quit see you"),
            Command::User(UserCommand::QuitWith("see you".into()))
        );
        assert_eq!(
            cmd("/topic Friday:  release"),
            Command::Room(RoomCommand::Topic {
                room: None,
                text: Some("Friday:  release".into())
            })
        );
        assert_eq!(tail("  a b  c d ", 2), "c d");
    }

    #[test]
    fn a_mode_names_its_room_or_means_the_current_one() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let room = RoomName::parse("dev").unwrap();
        assert_eq!(
            cmd("/mode +o bob"),
            Command::Room(RoomCommand::Mode {
                room: None,
                args: args(&["+o", "bob"])
            })
        );
        assert_eq!(
            cmd("/mode #dev -t"),
            Command::Room(RoomCommand::Mode {
                room: Some(room),
                args: args(&["-t"])
            })
        );
    }

    #[test]
    fn keys_reasons_and_usages() {
        let room = RoomName::parse("dev").unwrap();
        assert_eq!(
            cmd("/join dev sesame"),
            Command::Room(RoomCommand::JoinWithKey {
                room: room.clone(),
                key: "sesame".into()
            })
        );
        assert_eq!(
            cmd("/leave dev gone fishing"),
            Command::Room(RoomCommand::Part {
                room,
                reason: "gone fishing".into()
            })
        );
        let err = |line: &str| parse_line(line).unwrap_err().message;
        assert_eq!(err("/msg bob"), "usage: /msg NICK TEXT");
        assert_eq!(err("/oper x"), "usage: /oper NAME PASSWORD");
        assert!(err("/whois b@d").contains("invalid nick"));
    }
}
