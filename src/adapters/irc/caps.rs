//! IRCv3 capability negotiation (`CAP LS`, `REQ`, `LIST`, `END`).
//!
//! A client asks which optional behaviours the server has and turns some on; each changes how
//! the server writes to that one client (tags on messages, its own messages echoed, batches...).
//! The set lives in the connection and is consulted when something is rendered: the chat core
//! never sees it. A `REQ` is all or nothing, as the specification says.

use super::message::Line;

/// The capabilities a client turned on, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(u16);

/// One capability: its bit and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(u16, &'static str);

impl Cap {
    /// `BATCH` groups (chat history, labeled responses).
    pub const BATCH: Cap = Cap(1, "batch");
    /// `CHATHISTORY`: history on request, by msgid (the room's seq) or time.
    pub const CHATHISTORY: Cap = Cap(1 << 1, "draft/chathistory");
    /// The client's own channel messages come back to it.
    pub const ECHO: Cap = Cap(1 << 2, "echo-message");
    /// A command's response carries the client's `label` tag.
    pub const LABELED: Cap = Cap(1 << 3, "labeled-response");
    /// Tags on messages: `msgid` (and `time`).
    pub const TAGS: Cap = Cap(1 << 4, "message-tags");
    /// Every status prefix in `NAMES` (chatd has none, so nothing changes).
    pub const MULTI_PREFIX: Cap = Cap(1 << 5, "multi-prefix");
    /// SASL: acknowledged, but chatd has no accounts, so every `AUTHENTICATE` fails (904).
    pub const SASL: Cap = Cap(1 << 6, "sasl");
    /// The `time` tag: when the server accepted a message.
    pub const SERVER_TIME: Cap = Cap(1 << 7, "server-time");
    /// `nick!user@host` instead of nicks in `NAMES`.
    pub const USERHOST_IN_NAMES: Cap = Cap(1 << 8, "userhost-in-names");
    /// `SETNAME`: a real name can be changed, and the change is shown.
    pub const SETNAME: Cap = Cap(1 << 9, "setname");
    /// `AWAY` lines when people in the client's channels go away or come back.
    pub const AWAY_NOTIFY: Cap = Cap(1 << 10, "away-notify");

    /// Every capability chatd offers, in the order `CAP LS` lists them.
    pub const ALL: [Cap; 11] = [
        Cap::AWAY_NOTIFY,
        Cap::BATCH,
        Cap::CHATHISTORY,
        Cap::ECHO,
        Cap::LABELED,
        Cap::TAGS,
        Cap::MULTI_PREFIX,
        Cap::SASL,
        Cap::SERVER_TIME,
        Cap::SETNAME,
        Cap::USERHOST_IN_NAMES,
    ];

    /// The capability called `name`, if chatd has it.
    pub fn named(name: &str) -> Option<Cap> {
        Cap::ALL
            .into_iter()
            .find(|cap| cap.1.eq_ignore_ascii_case(name))
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.1
    }
}

impl Caps {
    /// Whether `cap` is on.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.0 != 0
    }

    fn set(&mut self, cap: Cap, on: bool) {
        if on {
            self.0 |= cap.0;
        } else {
            self.0 &= !cap.0;
        }
    }

    /// The names of the capabilities that are on, space-separated.
    pub fn names(self) -> String {
        let on: Vec<&str> = Cap::ALL
            .into_iter()
            .filter(|cap| self.has(*cap))
            .map(Cap::name)
            .collect();
        on.join(" ")
    }
}

/// What a `CAP` command changed about registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// `CAP LS` or `REQ` before registration: registration waits for `CAP END`.
    Started,
    /// `CAP END`: registration may go on.
    Ended,
    /// Nothing that concerns registration.
    Unchanged,
}

/// Answers `CAP <params>` from a client called `nick` (`*` before it has one), updating `caps`.
pub fn cap(server: &str, nick: &str, params: &[&str], caps: &mut Caps) -> (Vec<Line>, Negotiation) {
    let reply = |sub: &str, text: &str| {
        Line::new(server, "CAP")
            .param(nick)
            .param(sub)
            .trailing(text)
    };
    let Some(sub) = params.first() else {
        let line = Line::new(server, "461")
            .param(nick)
            .param("CAP")
            .trailing("Not enough parameters");
        return (vec![line], Negotiation::Unchanged);
    };
    match sub.to_ascii_uppercase().as_str() {
        "LS" => {
            let all: Vec<&str> = Cap::ALL.into_iter().map(Cap::name).collect();
            (vec![reply("LS", &all.join(" "))], Negotiation::Started)
        }
        "LIST" => (vec![reply("LIST", &caps.names())], Negotiation::Unchanged),
        "REQ" => {
            let asked = params.get(1).copied().unwrap_or("");
            let mut changes = Vec::new();
            for word in asked.split_whitespace() {
                let (name, on) = match word.strip_prefix('-') {
                    Some(name) => (name, false),
                    None => (word, true),
                };
                match Cap::named(name) {
                    Some(cap) => changes.push((cap, on)),
                    None => return (vec![reply("NAK", asked)], Negotiation::Started),
                }
            }
            for (cap, on) in changes {
                caps.set(cap, on);
            }
            (vec![reply("ACK", asked)], Negotiation::Started)
        }
        "END" => (Vec::new(), Negotiation::Ended),
        _ => {
            let line = Line::new(server, "410")
                .param(nick)
                .param(sub)
                .trailing("Invalid CAP command");
            (vec![line], Negotiation::Unchanged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes()).trim_end().to_string())
            .collect()
    }

    #[test]
    fn ls_lists_every_capability_and_starts_negotiation() {
        let mut caps = Caps::default();
        let (lines, n) = cap("srv", "*", &["LS", "302"], &mut caps);
        assert_eq!(n, Negotiation::Started);
        let ls = &text(&lines)[0];
        assert!(
            ls.starts_with(":srv CAP * LS :away-notify batch draft/chathistory echo-message"),
            "{ls}"
        );
    }

    #[test]
    fn a_request_is_all_or_nothing_and_can_turn_caps_off() {
        let mut caps = Caps::default();
        let (lines, _) = cap("srv", "*", &["REQ", "echo-message bogus"], &mut caps);
        assert_eq!(text(&lines), vec![":srv CAP * NAK :echo-message bogus"]);
        assert_eq!(caps, Caps::default());
        let (lines, _) = cap("srv", "al", &["REQ", "echo-message server-time"], &mut caps);
        assert_eq!(
            text(&lines),
            vec![":srv CAP al ACK :echo-message server-time"]
        );
        assert!(caps.has(Cap::ECHO) && caps.has(Cap::SERVER_TIME));
        cap("srv", "al", &["req", "-echo-message"], &mut caps);
        assert_eq!(caps.names(), "server-time");
        let (lines, n) = cap("srv", "al", &["END"], &mut caps);
        assert!(lines.is_empty());
        assert_eq!(n, Negotiation::Ended);
    }

    #[test]
    fn an_unknown_subcommand_gets_410() {
        let (lines, n) = cap("srv", "*", &["NOTACOMMAND"], &mut Caps::default());
        assert_eq!(
            text(&lines),
            vec![":srv 410 * NOTACOMMAND :Invalid CAP command"]
        );
        assert_eq!(n, Negotiation::Unchanged);
    }
}
