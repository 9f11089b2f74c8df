//! Nicks and room names: validated once, at the edge, then cheap to clone everywhere.
//!
//! Both are `Arc<str>` newtypes. A message carries its room and nick to every recipient, so a
//! clone must not copy the string; and because a `Nick` or `RoomName` can only be built by
//! `parse`, every layer behind the parser can trust that the value obeys the rules.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::error::ChatError;

/// The longest nick or room name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// A user's display name: 1 to 32 of `A-Z a-z 0-9 _ -`. Uniqueness is case-insensitive
/// (`Alice` and `alice` cannot both be connected), as on IRC; the chosen spelling is kept.
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
        } else {
            Err(ChatError::invalid(format!(
                "invalid nick {:?}: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ -",
                shorten(raw)
            )))
        }
    }

    /// The key under which the nick is unique: its lowercase form.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
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

    #[test]
    fn nick_keys_are_case_insensitive() {
        assert_eq!(
            Nick::parse("Alice").unwrap().key(),
            Nick::parse("aLICE").unwrap().key()
        );
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
