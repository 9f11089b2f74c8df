//! How a problem in a pipeline file is told: where it is, and what to do about it.
//!
//! Every problem is a [`ConfigError`] with a line, a [`Place`] (`[server]`, `layer 2 (fanot)`)
//! and a sentence; [`ConfigErrors`] collects all the problems of one file and prints them as a
//! list under the file's name. The sentences come from our own checks, except for the option
//! problems serde finds; [`explain`] rewords those in terms a pipeline author uses (an "option",
//! not a "field"), keeping serde's words for shapes it does not recognise.

use std::fmt;
use std::ops::Range;

use toml::de::DeTable;

/// Where in a pipeline file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole: its syntax, its top-level keys, or the stack as a whole.
    File,
    /// The `[server]` table.
    Server,
    /// A `[[layer]]` table.
    Layer {
        /// The position in the file, counted from 1: the first `[[layer]]` is layer 1.
        index: usize,
        /// The `kind` as written, `no kind` when missing, or `?` when not a string.
        kind: String,
    },
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line (from 1) the problem is on, when it belongs to one.
    pub line: Option<usize>,
    /// The table the problem is in.
    pub place: Place,
    /// What is wrong, and where possible what to write instead.
    pub problem: String,
}

/// Every problem found in one pipeline file: the error of [`super::parse`] and
/// [`super::load_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file (or `<embedded default: ...>`) the problems are in.
    pub source: String,
    /// The problems, in file order; those that belong to no line last.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File => Ok(()),
            Place::Server => write!(f, "[server]"),
            Place::Layer { index, kind } => write!(f, "layer {index} ({kind})"),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `line 7, layer 2 (fanot): unknown layer kind ...`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line.map(|line| format!("line {line}"));
        let place = Some(self.place.to_string()).filter(|place| !place.is_empty());
        let prefix: Vec<String> = line.into_iter().chain(place).collect();
        if prefix.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", prefix.join(", "), self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigErrors {
    /// The file's name and the number of problems, then one problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{}: {count} problem{plural}", self.source)?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The key a serde error is about, with its span. An unknown option is named in the message
/// (inside a tagged enum its error carries no span); otherwise it is the key whose key or value
/// holds the start of the error's span.
pub(super) fn culprit(
    table: &DeTable<'_>,
    error: &toml::de::Error,
) -> Option<(String, Range<usize>)> {
    let named = unknown_field(error.message());
    let entry = match (named, error.span()) {
        (Some((name, _)), _) => table.get_key_value(name),
        (None, Some(at)) => table
            .iter()
            .find(|(k, v)| k.span().contains(&at.start) || v.span().contains(&at.start)),
        (None, None) => None,
    };
    entry.map(|(key, _)| (key.get_ref().to_string(), key.span()))
}

/// Rewords serde's `message` about the option `key` of `subject` (such as "`history`").
pub(super) fn explain(message: &str, key: Option<&str>, subject: &str) -> String {
    if let Some((field, expected)) = unknown_field(message) {
        // serde lists the valid fields in backticks: "expected `a`", "expected one of `a`, `b`",
        // or says "there are no fields".
        let takes: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return if takes.is_empty() {
            format!("unknown option `{field}`; {subject} takes no options")
        } else {
            let takes = takes.join(", ");
            format!("unknown option `{field}`; {subject} takes: {takes}")
        };
    }
    if let Some(field) = missing_field(message) {
        return format!("missing option `{field}`, which {subject} requires");
    }
    if let (Some(key), Some(value)) = (key, bad_integer(message)) {
        // `capacity = -1`: serde's "expected usize" says nothing a pipeline author can use.
        return match super::values::range_of(subject, key) {
            Some(range) => format!("option `{key}` = {value} is out of range; it must be {range}"),
            None => format!("option `{key}` = {value} is out of range; it must be 0 or more"),
        };
    }
    let detail = match message {
        // What `SocketAddr` says for "localhost:9001" as much as for "nonsense".
        "invalid socket address syntax" => {
            "not an address; write an IP address and a port, such as \"127.0.0.1:9001\"".to_string()
        }
        _ => message
            .replace("expected usize", "expected a whole number")
            .replace("expected u64", "expected a whole number")
            .replace("expected u32", "expected a whole number"),
    };
    match key {
        Some(key) => format!("option `{key}`: {detail}"),
        None => detail,
    }
}

/// The number in serde's "invalid value: integer `-1`, expected usize": an integer that does not
/// fit the option's unsigned type (negative, or too large).
fn bad_integer(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("invalid value: integer `")?;
    let (value, expected) = rest.split_once('`')?;
    [", expected usize", ", expected u64", ", expected u32"]
        .contains(&expected)
        .then_some(value)
}

/// The field and the rest of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<(&str, &str)> {
    message.strip_prefix("unknown field `")?.split_once('`')
}

/// The field of serde's "missing field `x`" message.
pub(super) fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_option_messages_are_reworded() {
        let reworded = explain("unknown field `a`, expected one of `b`, `c`", None, "`x`");
        assert_eq!(reworded, "unknown option `a`; `x` takes: b, c");
        let reworded = explain("unknown field `a`, there are no fields", None, "`x`");
        assert_eq!(reworded, "unknown option `a`; `x` takes no options");
        let reworded = explain("missing field `url`", None, "`x`");
        assert_eq!(reworded, "missing option `url`, which `x` requires");
        let reworded = explain(
            "invalid value: integer `-1`, expected usize",
            Some("capacity"),
            "`history`",
        );
        assert_eq!(
            reworded,
            "option `capacity` = -1 is out of range; it must be from 1 to 10000"
        );
        let reworded = explain(
            "invalid value: integer `-5`, expected u64",
            Some("gap_wait_ms"),
            "`fanout` with `backend = \"valkey\"`",
        );
        assert_eq!(
            reworded,
            "option `gap_wait_ms` = -5 is out of range; it must be from 10 to 60000"
        );
        let reworded = explain(
            "invalid value: integer `-1`, expected usize",
            Some("n"),
            "`x`",
        );
        assert_eq!(
            reworded,
            "option `n` = -1 is out of range; it must be 0 or more"
        );
        assert_eq!(explain("something new", None, "`x`"), "something new");
    }

    #[test]
    fn a_problem_shows_only_what_is_known_of_its_place() {
        let error = |line, place| ConfigError {
            line,
            place,
            problem: "p".to_string(),
        };
        assert_eq!(error(None, Place::File).to_string(), "p");
        assert_eq!(error(Some(3), Place::File).to_string(), "line 3: p");
        assert_eq!(
            error(Some(3), Place::Server).to_string(),
            "line 3, [server]: p"
        );
        let layer = Place::Layer {
            index: 2,
            kind: "route".to_string(),
        };
        assert_eq!(error(None, layer).to_string(), "layer 2 (route): p");
        let errors = ConfigErrors {
            source: "f.toml".to_string(),
            errors: vec![error(None, Place::File)],
        };
        assert_eq!(errors.to_string(), "f.toml: 1 problem\n  - p");
    }
}
