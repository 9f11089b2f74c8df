//! Nicks and room names: validated once, at the edge, then cheap to clone everywhere.
//!
//! Both are `Arc<str>` newtypes. A message carries its room and nick to every recipient, so a
//! clone must not copy the string; and because a `Nick` or `RoomName` can only be built by
//! `parse`, every layer behind the parser can trust that the value obeys the rules.
//!
//! **Look-alike nicks.** Both are plain ASCII, so no invisible or direction-changing character can
//! hide in them (a name that tries gets an error naming the character, see `core::text`). What
//! ASCII still allows is look-alikes: `aIice` (capital i) or `a1ice` beside `alice`, `b0b` beside
//! `bob`. A nick is therefore unique by its *skeleton* ([`Nick::key`]), the spelling in which
//! every look-alike is folded into one: the second of two look-alikes is refused as taken, on
//! this instance and, through the shared directory's `nick_key`, on every other. The table is
//! our own and small (the confusables of Unicode's UTS #39 that ASCII letters and digits have
//! among themselves), because nicks are ASCII: a crate of all of Unicode's would be a lot of
//! data to fold 36 characters.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::error::ChatError;
use super::text;

/// The longest nick or room name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// A user's display name: 1 to 32 of `A-Z a-z 0-9 _ -`. Uniqueness is case-insensitive
/// (`Alice` and `alice` cannot both be connected), as on IRC, and blind to look-alikes (`aIice`,
/// `a1ice` and `alice` neither: see [`Nick::key`]); the chosen spelling is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Nick(Arc<str>);

impl Nick {
    /// Checks `raw` against the nick rules.
    ///
    /// # Errors
    /// An `Invalid` error naming the rule when `raw` is empty, too long or has other characters.
    pub fn parse(raw: &str) -> Result<Nick, ChatError> {
        let ok = (1..=MAX_NAME_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Nick(raw.into()))
        } else if let Some(refused) = hidden(raw) {
            Err(ChatError::invalid(format!(
                "invalid nick: {} are not allowed in nicks (found {})",
                refused.kind(),
                refused.code_point()
            )))
        } else {
            Err(ChatError::invalid(format!(
                "invalid nick {:?}: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ -",
                shorten(raw)
            )))
        }
    }

    /// The key under which the nick is unique: its skeleton, in which case and look-alikes are
    /// folded away. Lowercase first (so `I` is `i`), then `0` is `o`; `1`, `i` and `l` are `l`
    /// (capital I and small l look the same in most fonts, and case folding already made I and
    /// i one); then `rn` is `m` and `vv` is `w`. So `alice`, `ALICE`, `aIice` and `a1ice` share
    /// the key `allce`. Migration 6 (`migrations/postgres/0006_nick_skeleton.sql`) writes the same
    /// folding in SQL as `chatd_nick_key`, for the rows of a shared directory.
    pub fn key(&self) -> String {
        skeleton(&self.0)
    }

    /// The nick as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room: 1 to 32 of `a-z 0-9 _ -` after case folding; a leading `#` is accepted and dropped,
/// so `/join #General` and `/join general` enter the same room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Folds and checks `raw` against the room rules.
    ///
    /// # Errors
    /// An `Invalid` error naming the rule when the folded name is empty, too long or has other
    /// characters.
    pub fn parse(raw: &str) -> Result<RoomName, ChatError> {
        let folded = raw.strip_prefix('#').unwrap_or(raw).to_ascii_lowercase();
        let ok = (1..=MAX_NAME_LEN).contains(&folded.len())
            && folded
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(RoomName(folded.into()))
        } else if let Some(refused) = hidden(raw) {
            Err(ChatError::invalid(format!(
                "invalid room name: {} are not allowed in room names (found {})",
                refused.kind(),
                refused.code_point()
            )))
        } else {
            Err(ChatError::invalid(format!(
                "invalid room name {:?}: use 1 to {MAX_NAME_LEN} of a-z 0-9 _ - (an optional leading # is fine)",
                shorten(raw)
            )))
        }
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first direction-changing or invisible character of `raw`, named in the error rather than
/// quoted: the reader could not see it in a quote. Input with a control character keeps the
/// quoted error, which shows every character escaped (`\u{1b}`).
fn hidden(raw: &str) -> Option<text::Refusal> {
    if raw.chars().any(char::is_control) {
        return None;
    }
    text::find_refused(raw)
}

/// The look-alike folding of [`Nick::key`], on a string that follows the nick rules.
fn skeleton(nick: &str) -> String {
    let folded: String = nick
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            '0' => 'o',
            '1' | 'i' => 'l',
            lower => lower,
        })
        .collect();
    // After the characters, the pairs: left to right and without overlaps, as SQL's `replace`.
    folded.replace("rn", "m").replace("vv", "w")
}

/// Echoing a 1 MiB argument back in an error would be its own problem: quote at most 40 chars.
fn shorten(raw: &str) -> String {
    match raw.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_follow_the_rules() {
        assert_eq!(Nick::parse("Alice_9-x").unwrap().as_str(), "Alice_9-x");
        assert!(Nick::parse("").is_err());
        assert!(Nick::parse(&"a".repeat(33)).is_err());
        assert!(Nick::parse(&"a".repeat(32)).is_ok());
        assert!(Nick::parse("al ice").is_err());
        assert!(Nick::parse("émile").is_err());
        let err = Nick::parse("a!").unwrap_err();
        assert!(err.message.contains("1 to 32 of A-Z a-z 0-9 _ -"), "{err}");
    }

    fn key(nick: &str) -> String {
        Nick::parse(nick).unwrap().key()
    }

    #[test]
    fn nick_keys_are_case_insensitive() {
        assert_eq!(key("Alice"), key("aLICE"));
    }

    #[test]
    fn look_alike_nicks_share_a_key() {
        for (a, b) in [
            ("alice", "aIice"),
            ("alice", "a1ice"),
            ("alice", "ALICE"),
            ("bob", "b0b"),
            ("BOB", "B0B"),
            ("modern", "rnodern"),
            ("will", "vvi11"),
            ("guest-1010", "guest-IOlo"),
        ] {
            assert_eq!(key(a), key(b), "{a} and {b}");
        }
        for (a, b) in [("alice", "alicia"), ("bob", "bobby"), ("a_b", "a-b")] {
            assert_ne!(key(a), key(b), "{a} and {b}");
        }
        assert_eq!(key("Alice"), "allce");
        assert_eq!(key("rrnn"), "rmn", "left to right, no overlaps");
    }

    #[test]
    fn invisible_or_direction_changing_characters_in_names_are_named() {
        let err = Nick::parse("x\u{202e}gnp").unwrap_err();
        assert_eq!(
            err.message,
            "invalid nick: direction-changing characters are not allowed in nicks (found U+202E \
             RIGHT-TO-LEFT OVERRIDE)"
        );
        let err = RoomName::parse("gen\u{200b}eral").unwrap_err();
        assert_eq!(
            err.message,
            "invalid room name: invisible characters are not allowed in room names (found \
             U+200B ZERO WIDTH SPACE)"
        );
        // Other bad input is quoted with its escapes, never raw.
        let err = Nick::parse("a\u{1b}[2J").unwrap_err();
        assert!(!err.message.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn room_names_fold_case_and_drop_one_hash() {
        assert_eq!(RoomName::parse("#General").unwrap().as_str(), "general");
        assert_eq!(RoomName::parse("dev_ops-2").unwrap().as_str(), "dev_ops-2");
        assert!(RoomName::parse("#").is_err());
        assert!(RoomName::parse("##x").is_err());
        assert!(RoomName::parse("a b").is_err());
        assert!(RoomName::parse(&"r".repeat(33)).is_err());
    }

    #[test]
    fn long_bad_input_is_quoted_short() {
        let err = Nick::parse(&"!".repeat(10_000)).unwrap_err();
        assert!(err.message.len() < 200);
    }
}
