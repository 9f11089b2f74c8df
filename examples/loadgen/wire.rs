//! What loadgen puts on the wire and reads back: the timestamped message text, and the three
//! ways a message comes back (a chatd line, an IRC `PRIVMSG`, an SSE `data:` line).
//!
//! Every function here is pure, so the encoding and the parsers are unit-tested without a server.
//! They run once per delivery on the receiving side, which is loadgen's hot path: they borrow
//! from the line and allocate nothing (except the SSE JSON, which `serde_json` parses).

use std::fmt::Write as _;

/// A message's text: `lg<RUN> <SENDER> <MICROS>`, where `RUN` tells this run's messages from
/// earlier ones (a room's history replays old messages on join), `SENDER` is the sending
/// client's index and `MICROS` the send time in µs since the run's shared start `Instant`.
/// All clients live in one process, so one monotonic clock serves sender and receiver.
pub fn encode_payload(out: &mut String, run: u32, sender: usize, micros: u64) {
    // Writing into a String cannot fail.
    let _ = write!(out, "lg{run:x} {sender} {micros}");
}

/// A decoded message text: who sent it and when (µs since the run's start).
#[derive(Debug, PartialEq, Eq)]
pub struct Stamp {
    pub sender: usize,
    pub micros: u64,
}

/// Reads a text written by [`encode_payload`]; `None` for anything else, including messages
/// from another run.
pub fn decode_payload(text: &str, run: u32) -> Option<Stamp> {
    let rest = text.strip_prefix("lg")?;
    let mut parts = rest.split(' ');
    let tag = u32::from_str_radix(parts.next()?, 16).ok()?;
    let sender = parts.next()?.parse().ok()?;
    let micros = parts.next()?.parse().ok()?;
    (tag == run && parts.next().is_none()).then_some(Stamp { sender, micros })
}

/// A chat line of chatd's line protocol, `[room] nick: text`, split into `(room, nick, text)`.
/// Notices (`* `) and errors (`! `) give `None`.
pub fn chatd_message(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (room, rest) = rest.split_once("] ")?;
    // Nicks cannot contain ':' or ' ', so the first ": " ends the nick.
    let (nick, text) = rest.split_once(": ")?;
    Some((room, nick, text))
}

/// One IRC line (RFC 1459 §2.3.1) split into its prefix, command and parameters, the trailing
/// one (after ` :`) included as the last parameter. Message tags (`@...`) are skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct IrcLine<'a> {
    pub prefix: Option<&'a str>,
    pub command: &'a str,
    pub params: Vec<&'a str>,
}

impl<'a> IrcLine<'a> {
    /// Parses a line without its `\r\n`; `None` when it has no command.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut rest = line;
        if rest.starts_with('@') {
            rest = rest.split_once(' ')?.1;
        }
        let prefix = match rest.strip_prefix(':') {
            Some(p) => {
                let (prefix, after) = p.split_once(' ')?;
                rest = after;
                Some(prefix)
            }
            None => None,
        };
        let rest = rest.trim_start_matches(' ');
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param);
            rest = after;
        }
        Some(IrcLine {
            prefix,
            command,
            params,
        })
    }

    /// The nick of the prefix `nick!user@host` (or the whole prefix of a server).
    pub fn nick(&self) -> Option<&'a str> {
        self.prefix.map(|p| p.split('!').next().unwrap_or(p))
    }
}

/// The fast path for the line most received: `:nick!u@h PRIVMSG #room :text` gives `text`.
/// Anything else gives `None` and goes through [`IrcLine::parse`].
pub fn irc_privmsg_text(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(':')?;
    let (_prefix, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("PRIVMSG ")?;
    let (_target, text) = rest.split_once(" :")?;
    Some(text)
}

/// The `text` of an SSE `event: message` data line (`{"room", "seq", "nick", "text", "ts"}`).
pub fn sse_message_text(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Message {
        text: String,
    }
    serde_json::from_str::<Message>(data).ok().map(|m| m.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_rejects_other_runs() {
        let mut text = String::new();
        encode_payload(&mut text, 0xbeef, 17, 1_234_567);
        assert_eq!(text, "lgbeef 17 1234567");
        assert_eq!(
            decode_payload(&text, 0xbeef),
            Some(Stamp {
                sender: 17,
                micros: 1_234_567
            })
        );
        assert_eq!(decode_payload(&text, 0xbeee), None, "another run's message");
        assert_eq!(decode_payload("hello", 0xbeef), None);
        assert_eq!(decode_payload("lgbeef 17 12 extra", 0xbeef), None);
    }

    #[test]
    fn chatd_lines() {
        assert_eq!(
            chatd_message("[lg0] guest-12: lgbeef 3 99"),
            Some(("lg0", "guest-12", "lgbeef 3 99"))
        );
        assert_eq!(
            chatd_message("[r] a: text: with colons"),
            Some(("r", "a", "text: with colons"))
        );
        assert_eq!(
            chatd_message("* you joined lg0 (2 members); no messages yet"),
            None
        );
        assert_eq!(chatd_message("! join a room first: /join ROOM"), None);
    }

    #[test]
    fn irc_lines() {
        let line = IrcLine::parse(":lg7!~lg7@localhost PRIVMSG #lg0 :lgbeef 7 42").unwrap();
        assert_eq!(line.prefix, Some("lg7!~lg7@localhost"));
        assert_eq!(line.nick(), Some("lg7"));
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, vec!["#lg0", "lgbeef 7 42"]);
        assert_eq!(
            irc_privmsg_text(":lg7!~lg7@localhost PRIVMSG #lg0 :lgbeef 7 42"),
            Some("lgbeef 7 42")
        );

        let ping = IrcLine::parse("PING :irc.example.net").unwrap();
        assert_eq!((ping.prefix, ping.command), (None, "PING"));
        assert_eq!(ping.params, vec!["irc.example.net"]);

        let welcome = IrcLine::parse(":irc.example.net 001 lg1 :Welcome to the net").unwrap();
        assert_eq!(welcome.command, "001");
        assert_eq!(welcome.params, vec!["lg1", "Welcome to the net"]);

        let names = IrcLine::parse(":srv 366 lg1 #lg0 :End of NAMES list").unwrap();
        assert_eq!(names.params, vec!["lg1", "#lg0", "End of NAMES list"]);

        let tagged = IrcLine::parse("@time=x :a!b@c JOIN #lg0").unwrap();
        assert_eq!((tagged.nick(), tagged.command), (Some("a"), "JOIN"));
        assert_eq!(irc_privmsg_text(":srv 001 lg1 :Welcome"), None);
        assert_eq!(IrcLine::parse(""), None);
    }

    #[test]
    fn sse_data() {
        let data =
            r#"{"room":"lg0","seq":4,"nick":"g","text":"lgbeef 1 5","ts":"2026-11-27T00:00:00Z"}"#;
        assert_eq!(sse_message_text(data).as_deref(), Some("lgbeef 1 5"));
        assert_eq!(sse_message_text("{}"), None);
    }
}
