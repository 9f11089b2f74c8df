//! How a problem in a pipeline file is told: where it is, and what to do about it.
//!
//! Every problem is a [`ConfigError`] with a line, a [`Place`] (`[server]`, `layer 2 (fanot)`)
//! and a sentence; [`ConfigErrors`] collects all the problems of one file and prints them as a
//! list under the file's name. The sentences come from the config readers (`crate::config`) and
//! the whole-stack checks (`graph.rs`).

use std::fmt;

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

/// Every problem found in one pipeline file: the error of [`super::load::parse`] and
/// [`super::load::load_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file (or `<embedded default: ...>`) the problems are in.
    pub source: String,
    /// The problems, in file order; those that belong to no line last.
    pub errors: Vec<ConfigError>,
}

impl ConfigError {
    /// The problem `problem` at `place`, on `line` if it has one.
    pub fn new(line: Option<usize>, place: Place, problem: impl Into<String>) -> ConfigError {
        let problem = problem.into();
        ConfigError {
            line,
            place,
            problem,
        }
    }
}

impl ConfigErrors {
    /// The one problem of `source` as a whole (it cannot be read, or rendered).
    pub fn one(source: &str, problem: String) -> ConfigErrors {
        let errors = vec![ConfigError::new(None, Place::File, problem)];
        let source = source.to_string();
        ConfigErrors { source, errors }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
