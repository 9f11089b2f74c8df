//! The parse layer: raw input lines become [`Command`]s.
//!
//! **Where it sits.** Outermost: the first thing a typed line meets. It handles only
//! `Action::Line` and passes every other action through untouched, so an HTTP client that posts
//! structured JSON (`{"room": "general", "text": "hi"}`) skips parsing entirely.
//!
//! **What it teaches.** This is the seed's "normalized commands": netcat and the browser's
//! command box send the same text, and after this layer nobody downstream knows or cares which
//! protocol it came in on. It is also the first line of defence: every malformed input gets a
//! specific error naming the rule it broke (`usage: /nick NAME`), never a silent drop.
//!
//! The grammar, IRC-style:
//! * an empty (or all-blank) line is ignored;
//! * `/name args...` is a command; names are case-insensitive (`/JOIN` works);
//! * `//text` sends the message `/text` (the escape for a message that starts with a slash);
//! * anything else is a message to the current room.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};

mod social;
use crate::core::{Action, ChatError, Command, Nick, Reply, Request, RoomName};

/// Options of `kind = "parse"` (none yet).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ParseConfig {}

/// The most messages `/history N` may ask for.
pub const MAX_HISTORY: usize = 100;

/// `/help`'s text: one line per command.
pub const HELP: &[&str] = &[
    "commands:",
    "  /nick NAME      choose your name (1 to 32 of A-Z a-z 0-9 _ -)",
    "  /join ROOM      enter a room (created on first join) and make it current; shows its last messages",
    "  /leave [ROOM]   leave a room (default: the current one)",
    "  /rooms          list rooms with their member counts",
    "  /users [ROOM]   list the members of a room (default: the current one)",
    "  /history [N]    show the last N messages of the current room (default 10, at most 100)",
    "  /msg NICK TEXT  a private message to NICK (a user of this instance)",
    "  /away [TEXT]    mark yourself away (without TEXT: back)",
    "  /whois NICK     who NICK is, and where",
    "  /topic [TEXT]   show or set the current room's topic (/topic - clears it)",
    "  /mode [ROOM] [+-MODES ARGS]  show or change a room's modes (+o NICK, +k KEY, +i, +m...)",
    "  /kick NICK [WHY]  put NICK out of the current room (its operators)",
    "  /invite NICK [ROOM]  invite NICK to a room (the current one by default)",
    "  /setname NAME   your real name, as /whois shows it",
    "  /watch [NICK...]  be told when NICKs come and go (alone: who is online); /unwatch [NICK...]",
    "  /help           show this list",
    "  /quit [WHY]     say goodbye and disconnect",
    "  any other line is a message to your current room; start it with // to send a leading /",
];

/// Parses one input line.
///
/// Returns `Ok(None)` for a blank line (nothing to do).
///
/// # Errors
/// An `Invalid` error for an unknown command or a bad argument, worded for the user.
pub fn parse_line(line: &str) -> Result<Option<Command>, ChatError> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Command::Say {
            room: None,
            text: line.to_string(),
        }));
    };
    if rest.starts_with('/') {
        return Ok(Some(Command::Say {
            room: None,
            text: rest.to_string(),
        }));
    }
    let mut words = rest.split_whitespace();
    let name = words.next().unwrap_or("").to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    if let Some(command) = social::parse(&name, &args, rest)? {
        return Ok(Some(command));
    }
    let command = match (name.as_str(), args.as_slice()) {
        ("nick", [nick]) => Command::Nick(Nick::parse(nick)?),
        ("nick", _) => return Err(usage("/nick NAME")),
        ("join", [room]) => Command::Join(RoomName::parse(room)?),
        ("join", _) => return Err(usage("/join ROOM [KEY]")),
        ("leave" | "part", []) => Command::Leave(None),
        ("leave" | "part", [room]) => Command::Leave(Some(RoomName::parse(room)?)),
        ("rooms" | "list", []) => Command::Rooms,
        ("rooms" | "list", _) => return Err(usage("/rooms")),
        ("users" | "who" | "names", []) => Command::Users(None),
        ("users" | "who" | "names", [room]) => Command::Users(Some(RoomName::parse(room)?)),
        ("users" | "who" | "names", _) => return Err(usage("/users [ROOM]")),
        ("history", []) => Command::History(10),
        ("history", [n]) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY).contains(&n) => Command::History(n),
            _ => {
                return Err(usage(&format!(
                    "/history [N], with N from 1 to {MAX_HISTORY}"
                )));
            }
        },
        ("history", _) => return Err(usage("/history [N]")),
        ("help", _) => Command::Help,
        ("quit", []) => Command::Quit,
        _ => {
            // Quoted back, so control characters are shown escaped (`\u{1b}`): an error must
            // not carry an ANSI sequence that repaints the reader's terminal (nor a bidi
            // override that reorders it, see `core::text`).
            let shown: String = name
                .chars()
                .take(32)
                .map(|c| match crate::core::text::quoted_escaped(c) {
                    true => c.escape_unicode().to_string(),
                    false => c.to_string(),
                })
                .collect();
            return Err(ChatError::invalid(format!(
                "unknown command /{shown} (try /help)"
            )));
        }
    };
    Ok(Some(command))
}

pub(crate) fn usage(form: &str) -> ChatError {
    ChatError::invalid(format!("usage: {form}"))
}

/// Builds [`Parse`] services.
#[derive(Debug, Clone, Default)]
pub struct ParseLayer {}

impl ParseLayer {
    /// A parse layer with the given (currently empty) options.
    pub fn new(_config: &ParseConfig) -> ParseLayer {
        ParseLayer {}
    }
}

impl<S> Layer<S> for ParseLayer {
    type Service = Parse<S>;

    fn layer(&self, inner: S) -> Parse<S> {
        Parse { inner }
    }
}

/// Turns `Action::Line` into `Action::Command`; see the module docs.
#[derive(Debug, Clone)]
pub struct Parse<S> {
    inner: S,
}

impl<S: Inner> Service<Request> for Parse<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> LayerFuture {
        let mut inner = take(&mut self.inner);
        Box::pin(async move {
            if let Action::Line(line) = &req.action {
                match parse_line(line)? {
                    Some(command) => req.action = Action::Command(command),
                    None => return Ok(Reply::default()),
                }
            }
            call_inner(&mut inner, req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        parse_line(line).unwrap().unwrap()
    }

    fn err(line: &str) -> String {
        parse_line(line).unwrap_err().message
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn blank_lines_are_nothing() {
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("   \t").unwrap(), None);
    }

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(
            cmd("hello there"),
            Command::Say {
                room: None,
                text: "hello there".into()
            }
        );
        assert_eq!(
            cmd("//not a command"),
            Command::Say {
                room: None,
                text: "/not a command".into()
            }
        );
    }

    #[test]
    fn every_command() {
        assert_eq!(
            cmd("/nick alice"),
            Command::Nick(Nick::parse("alice").unwrap())
        );
        assert_eq!(cmd("/join #General"), Command::Join(room("general")));
        assert_eq!(cmd("/JOIN  dev "), Command::Join(room("dev")));
        assert_eq!(cmd("/leave"), Command::Leave(None));
        assert_eq!(cmd("/leave dev"), Command::Leave(Some(room("dev"))));
        assert_eq!(cmd("/rooms"), Command::Rooms);
        assert_eq!(cmd("/users"), Command::Users(None));
        assert_eq!(cmd("/users dev"), Command::Users(Some(room("dev"))));
        assert_eq!(cmd("/history"), Command::History(10));
        assert_eq!(cmd("/history 100"), Command::History(100));
        assert_eq!(cmd("/help"), Command::Help);
        assert_eq!(cmd("/quit"), Command::Quit);
    }

    #[test]
    fn bad_arguments_name_the_rule() {
        assert_eq!(err("/nick"), "usage: /nick NAME");
        assert_eq!(err("/nick a b"), "usage: /nick NAME");
        assert!(err("/nick b@d").contains("1 to 32 of A-Z a-z 0-9 _ -"));
        assert_eq!(err("/join"), "usage: /join ROOM [KEY]");
        assert!(err("/join no/slash").contains("a-z 0-9 _ -"));
        assert_eq!(err("/rooms x"), "usage: /rooms");
        assert_eq!(err("/users a b"), "usage: /users [ROOM]");
        assert_eq!(
            err("/history 0"),
            "usage: /history [N], with N from 1 to 100"
        );
        assert_eq!(
            err("/history 101"),
            "usage: /history [N], with N from 1 to 100"
        );
        assert_eq!(
            err("/history x"),
            "usage: /history [N], with N from 1 to 100"
        );
    }

    #[test]
    fn unknown_commands_point_to_help() {
        assert_eq!(err("/dance"), "unknown command /dance (try /help)");
        assert_eq!(err("/"), "unknown command / (try /help)");
        assert!(err(&format!("/{}", "x".repeat(5000))).len() < 80);
        assert_eq!(
            err("/\x1b[2j"),
            "unknown command /\\u{1b}[2j (try /help)",
            "shown escaped, never raw"
        );
    }
}
