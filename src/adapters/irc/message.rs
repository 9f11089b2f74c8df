//! IRC messages on the wire: parsing what a client sends, and building what the server sends.
//!
//! A line is `[@tags] [:source] COMMAND [params...] [:trailing]` (the "Modern" IRC documentation,
//! RFC 1459 §2.3.1, and IRCv3 message-tags for the `@` part). Parsing borrows from the line and
//! never fails: a line without a command is an empty [`Message`] the caller ignores. The two
//! length limits are checked here too, because they are about the wire form: at most 512 bytes
//! for the message without its tags (the CRLF included), and at most 4094 bytes of tags from a
//! client. What the server sends is built with [`Line`], which escapes tag values and puts the
//! colon before a last parameter that needs one.

use std::fmt::Write as _;

use bytes::Bytes;

/// The longest message from a client, tags excluded, without its CRLF (RFC 1459: 512 with it).
pub const MAX_BODY: usize = 510;
/// The most tag bytes a client may send (IRCv3 message-tags: 4094, without the `@` and space).
pub const MAX_CLIENT_TAGS: usize = 4094;
/// The longest line the framing accepts before the checks above: server tags may add up to 8191
/// bytes, so a line up to that plus a message is read whole and then judged, not cut mid-line.
pub const MAX_LINE: usize = 8191 + 512;

/// One parsed line from a client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// The raw tags, without the `@` (values still escaped); empty when there are none.
    pub tags: &'a str,
    /// The command, as sent (compare with `eq_ignore_ascii_case`).
    pub command: &'a str,
    /// The parameters, the trailing one (after ` :`) included as the last.
    pub params: Vec<&'a str>,
}

/// Why a line was refused before it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLong {
    /// More than [`MAX_CLIENT_TAGS`] bytes of tags.
    Tags,
    /// More than [`MAX_BODY`] bytes after the tags.
    Body,
}

impl<'a> Message<'a> {
    /// Parses `line` (without its line ending), checking the two length limits.
    ///
    /// # Errors
    /// [`TooLong`] when the tags or the rest are over their limit.
    pub fn parse(line: &'a str) -> Result<Message<'a>, TooLong> {
        let mut rest = line;
        let mut tags = "";
        if let Some(tagged) = rest.strip_prefix('@') {
            let (t, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
            if t.len() > MAX_CLIENT_TAGS {
                return Err(TooLong::Tags);
            }
            tags = t;
            rest = after;
        }
        let rest = rest.trim_start_matches(' ');
        if rest.len() > MAX_BODY {
            return Err(TooLong::Body);
        }
        // A source from a client is ignored (only servers send one that means anything).
        let rest = match rest.strip_prefix(':') {
            Some(source) => source.split_once(' ').map_or("", |(_, after)| after),
            None => rest,
        };
        let rest = rest.trim_start_matches(' ');
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
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
        Ok(Message {
            tags,
            command,
            params,
        })
    }

    /// The value of tag `key` (unescaped), if the client sent it.
    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| unescape(v))
        })
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }
}

/// A line the server sends, built piece by piece: `Line::new(...).tag(...).param(...)`.
#[derive(Debug, Clone, Default)]
pub struct Line {
    tags: String,
    rest: String,
}

impl Line {
    /// A line from `source` (a server name or `nick!user@host`) with `command`.
    pub fn new(source: &str, command: &str) -> Line {
        Line {
            tags: String::new(),
            rest: format!(":{source} {command}"),
        }
    }

    /// Adds the tag `key=value`, escaping the value.
    pub fn tag(mut self, key: &str, value: &str) -> Line {
        if !self.tags.is_empty() {
            self.tags.push(';');
        }
        self.tags.push_str(key);
        if !value.is_empty() {
            self.tags.push('=');
            escape_into(&mut self.tags, value);
        }
        self
    }

    /// Adds a middle parameter. One that could not be a middle parameter (empty, starting with
    /// `:` or holding a space: a client's odd input quoted back) is sent as `*`.
    pub fn param(mut self, param: &str) -> Line {
        self.rest.push(' ');
        if param.is_empty() || param.starts_with(':') || param.contains(' ') {
            self.rest.push('*');
        } else {
            self.rest.push_str(param);
        }
        self
    }

    /// Adds the last parameter, with a colon so that it may hold spaces or be empty.
    pub fn trailing(mut self, param: &str) -> Line {
        self.rest.push_str(" :");
        self.rest.push_str(param);
        self
    }

    /// The wire form, CRLF included.
    pub fn bytes(&self) -> Bytes {
        let mut out = String::with_capacity(self.tags.len() + self.rest.len() + 4);
        if !self.tags.is_empty() {
            out.push('@');
            out.push_str(&self.tags);
            out.push(' ');
        }
        out.push_str(&self.rest);
        out.push_str("\r\n");
        Bytes::from(out)
    }
}

/// `line` (a whole wire line) with `tags` (`k=v;k2=v2`, already escaped) added in front of any
/// it has: how a shared, pre-rendered line gets a `label` or `batch` tag for one recipient.
pub fn with_tags(line: &[u8], tags: &str) -> Bytes {
    let mut out = Vec::with_capacity(line.len() + tags.len() + 2);
    out.push(b'@');
    out.extend_from_slice(tags.as_bytes());
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.push(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.push(b' ');
            out.extend_from_slice(line);
        }
    }
    Bytes::from(out)
}

/// A tag pair `key=value` with the value escaped, for [`with_tags`].
pub fn tag_pair(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    out.push_str(key);
    out.push('=');
    escape_into(&mut out, value);
    out
}

/// Escapes a tag value (IRCv3 message-tags: `;`, space, `\`, CR and LF).
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => {
                let _ = out.write_char(c);
            }
        }
    }
}

/// Undoes [`escape_into`]; an unknown escape stands for its character, a lone `\` at the end
/// for nothing (as the spec says).
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_into_tags_command_and_params() {
        let m = Message::parse("@label=a\\sb;+x PRIVMSG #chan :hello  there").unwrap();
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#chan", "hello  there"]);
        assert_eq!(m.tag("label").as_deref(), Some("a b"));
        assert_eq!(m.tag("+x").as_deref(), Some(""));
        assert_eq!(m.tag("y"), None);
        let m = Message::parse(":ignored!u@h JOIN  #a,#b key").unwrap();
        assert_eq!((m.command, m.params), ("JOIN", vec!["#a,#b", "key"]));
        let m = Message::parse("PING :").unwrap();
        assert_eq!(m.params, vec![""]);
        assert_eq!(Message::parse("").unwrap().command, "");
    }

    #[test]
    fn the_limits_are_512_bytes_of_message_and_4094_of_tags() {
        let at_limit = format!("PING {}", "x".repeat(MAX_BODY - 5));
        assert!(Message::parse(&at_limit).is_ok());
        let over = format!("PING {}", "x".repeat(MAX_BODY - 4));
        assert_eq!(Message::parse(&over), Err(TooLong::Body));
        let tags = format!("@+a={} PING x", "y".repeat(MAX_CLIENT_TAGS - 3));
        assert!(Message::parse(&tags).is_ok());
        let tags = format!("@+a={} PING x", "y".repeat(MAX_CLIENT_TAGS - 2));
        assert_eq!(Message::parse(&tags), Err(TooLong::Tags));
    }

    #[test]
    fn lines_escape_tag_values_and_colon_the_trailing_parameter() {
        let line = Line::new("srv", "PRIVMSG")
            .tag("time", "2026-01-01T00:00:00.000Z")
            .tag("label", "a;b c\\")
            .param("#chan")
            .trailing("hi there");
        assert_eq!(
            &line.bytes()[..],
            b"@time=2026-01-01T00:00:00.000Z;label=a\\:b\\sc\\\\ :srv PRIVMSG #chan :hi there\r\n"
        );
        assert_eq!(
            &Line::new("srv", "PONG").param("srv").trailing("").bytes()[..],
            b":srv PONG srv :\r\n"
        );
    }

    #[test]
    fn tags_are_added_in_front_of_a_rendered_line() {
        assert_eq!(
            &with_tags(b":a PRIVMSG #c :x\r\n", "label=1")[..],
            b"@label=1 :a PRIVMSG #c :x\r\n"
        );
        assert_eq!(
            &with_tags(b"@time=t :a PRIVMSG #c :x\r\n", &tag_pair("batch", "b 1"))[..],
            b"@batch=b\\s1;time=t :a PRIVMSG #c :x\r\n"
        );
    }
}
