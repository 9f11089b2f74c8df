//! Reading a pipeline file and checking it, reporting every problem at once.
//!
//! A newcomer editing a pipeline file makes several mistakes at a time: a typo in a kind, a
//! misspelt option, a layer in the wrong place. Fixing them one `chatd` run at a time is tedious,
//! so, like Vector's config compiler, [`parse`] keeps going after a problem and returns all of
//! them, each naming the file, the line, the layer and what to write instead. It checks in phases:
//!
//! 1. **TOML syntax.** A file that does not parse stops here: nothing after it can be trusted.
//!    The file is parsed into `toml`'s span-keeping [`DeTable`], so every key still knows its line.
//! 2. **Top-level keys**: only `[server]` and `[[layer]]`.
//! 3. **Each table on its own**, by its config type's `read` with a [`Reader`]: `[server]`, and
//!    each `[[layer]]` by its `kind`. The reader substitutes `${VAR}`s ([`super::env`]) in each
//!    string it is asked for, checks types and ranges and reports unknown options.
//! 4. **The whole stack** (`graph.rs`): required layers present, each kind once, in a
//!    working order, and a store that a cross-instance fan-out backend can share.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use super::report::{ConfigError, ConfigErrors, Place};

use super::config::{LayerConfig, LayerKind, PipelineConfig, ServerConfig};
use super::env::substitute;
use super::graph::{self, Found};
use crate::config::{Problem, Reader};

/// The default pipeline, built into the binary so `chatd` runs from any directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../pipelines/phase1-single.toml");

/// How messages and `--check` name [`EMBEDDED_DEFAULT`].
pub const EMBEDDED_SOURCE: &str = "<embedded default: pipelines/phase1-single.toml>";

/// Looks up an environment variable for `${VAR}`; `None` when unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable that is not valid Unicode counts as unset: no option has a use for one.
fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and checks the pipeline file at `path`; `${VAR}`s come from the process environment.
///
/// # Errors
///
/// Every problem found, or a single one when the file cannot be read.
pub fn load_file(path: &Path) -> Result<PipelineConfig, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one(&source, format!("cannot read the file: {e}")))?;
    parse(&source, &text, &environment)
}

/// Checks [`EMBEDDED_DEFAULT`]; its `${CHATD_DATA_DIR:-data}` comes from the process
/// environment.
///
/// # Errors
///
/// Only if the embedded file is broken, which a unit test rules out.
pub fn embedded_default() -> Result<PipelineConfig, ConfigErrors> {
    parse(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, &environment)
}

/// Checks a config again after code changed it, such as command-line overrides, by reading its
/// own TOML rendering through the same checks as a file (without `${VAR}` substitution: its
/// strings are final). The problems carry no line numbers, as the values need not come from a
/// file.
///
/// # Errors
///
/// Every problem found, under the config's `source`.
pub fn revalidate(config: &PipelineConfig) -> Result<(), ConfigErrors> {
    let source = &config.source;
    let text = toml::to_string(config)
        .map_err(|e| ConfigErrors::one(source, format!("cannot render: {e}")))?;
    Checker::run(source, &text, None)
        .map(drop)
        .map_err(|mut e| {
            e.errors.iter_mut().for_each(|error| error.line = None);
            e
        })
}

/// Checks the pipeline `text`, read from `source` (used in messages), asking `lookup` for the
/// value of each `${VAR}`.
///
/// # Errors
///
/// Every problem found in all four phases of the module docs.
pub fn parse(source: &str, text: &str, lookup: Lookup<'_>) -> Result<PipelineConfig, ConfigErrors> {
    Checker::run(source, text, Some(lookup))
}

/// One run of the checks: the text (to turn spans into lines), the environment (none: no
/// substitution), and the problems found so far.
struct Checker<'a> {
    text: &'a str,
    lookup: Option<Lookup<'a>>,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    /// Runs every phase over `text`: the config, or every problem found.
    fn run(
        source: &str,
        text: &str,
        lookup: Option<Lookup<'_>>,
    ) -> Result<PipelineConfig, ConfigErrors> {
        let mut checker = Checker {
            text,
            lookup,
            errors: Vec::new(),
        };
        let config = checker.pipeline(source);
        // Problems read best in file order, whichever phase found them, so that fixing them top
        // to bottom works; those of the whole file (no line) come last. The sort is stable: two
        // problems of one line keep the order they were found in.
        let mut errors = checker.errors;
        errors.sort_by_key(|e| (e.line.is_none(), e.line));
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors {
                source: source.to_string(),
                errors,
            }),
        }
    }

    /// Runs every phase. `None` when some table did not read; problems of the file as a whole
    /// (an unknown top-level key, the order of the layers) still leave a config, so [`parse`]
    /// decides by `errors`.
    fn pipeline(&mut self, source: &str) -> Option<PipelineConfig> {
        let document = match DeTable::parse(self.text) {
            Ok(document) => document.into_inner(),
            Err(e) => {
                self.syntax(&e);
                return None;
            }
        };
        let (mut server, mut layers) = (None, None);
        for (key, value) in document {
            match key.get_ref().as_ref() {
                "server" => server = Some(value),
                "layer" => layers = Some(value),
                other => {
                    let problem = format!(
                        "unknown top-level key `{other}`; a pipeline file has only a `[server]` \
                         table and `[[layer]]` tables"
                    );
                    self.report(Some(key.span()), &Place::File, problem);
                }
            }
        }
        let server = match server {
            None => Some(ServerConfig::default()),
            Some(item) => self.server(item),
        };
        // `layer` not a list of tables is one problem that says it all.
        let (found, tables) = self.layers(layers)?;
        self.errors.extend(graph::check(&found, tables > 0));
        self.errors.extend(graph::shared_store(&found));
        let layers: Option<Vec<_>> = found.into_iter().map(|layer| layer.config).collect();
        Some(PipelineConfig {
            source: source.to_string(),
            server: server?,
            layers: layers.filter(|layers| layers.len() == tables)?,
        })
    }

    /// Phase 1's problem, on one line: the `toml` error's Display is a multi-line drawing.
    fn syntax(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        // Quote the offending text when short, as "duplicate key" alone does not say which.
        let quoted = match self.text.get(span.clone()) {
            Some(near) if (1..=40).contains(&near.len()) && !near.contains('\n') => {
                format!(" (at `{near}`)")
            }
            _ => String::new(),
        };
        let problem = format!("invalid TOML at column {column}{quoted}: {}", e.message());
        self.report(Some(span), &Place::File, problem);
    }

    /// Phase 3 for `[server]`.
    fn server(&mut self, item: Spanned<DeValue<'_>>) -> Option<ServerConfig> {
        let span = item.span();
        let DeValue::Table(table) = item.into_inner() else {
            let problem = "`server` must be a table: write `[server]` on a line of its own";
            self.report(Some(span), &Place::Server, problem);
            return None;
        };
        self.read(table, span, "`[server]`", &Place::Server, |r| {
            Some(ServerConfig::read(r))
        })
    }

    /// Phase 3 for every `[[layer]]`: the layers whose kind is known, each with its config
    /// (`None` where it has problems), for phase 4, and how many tables there are. `None` if
    /// `layer` is not a list of tables.
    fn layers(&mut self, item: Option<Spanned<DeValue<'_>>>) -> Option<(Vec<Found>, usize)> {
        let Some(item) = item else {
            return Some((Vec::new(), 0));
        };
        let span = item.span();
        let DeValue::Array(items) = item.into_inner() else {
            let problem = "`layer` must be a list of tables: write each one as `[[layer]]` (two \
                           brackets)";
            self.report(Some(span), &Place::File, problem);
            return None;
        };
        let (mut found, tables) = (Vec::new(), items.len());
        for (i, item) in items.into_iter().enumerate() {
            let (index, span) = (i + 1, item.span());
            let DeValue::Table(table) = item.into_inner() else {
                let kind = "?".to_string();
                let problem =
                    "a layer must be a table: write `[[layer]]` and then `kind = \"...\"`";
                self.report(Some(span), &Place::Layer { index, kind }, problem);
                continue;
            };
            // Named by its kind as written, even when the kind is unknown or a failed `${VAR}`.
            let kind = match table.get("kind").map(Spanned::get_ref) {
                Some(DeValue::String(kind)) => match self.lookup {
                    Some(lookup) => substitute(kind, lookup).unwrap_or_else(|_| kind.to_string()),
                    None => kind.to_string(),
                },
                Some(_) => "?".to_string(),
                None => "no kind".to_string(),
            };
            let line = Some(self.line(&span));
            let place = Place::Layer { index, kind };
            let mut known = None;
            let config = self.read(table, span, "layer", &place, |r| {
                let kind = r.tag::<LayerKind>("kind", "layer kind")?;
                known = Some(kind);
                LayerConfig::read(kind, r)
            });
            if let Some(kind) = known {
                found.push(Found {
                    index,
                    kind,
                    line,
                    config,
                });
            }
        }
        Some((found, tables))
    }

    /// Reads `table` (whose header is at `span`, named `subject` in messages) with `read`,
    /// reporting its problems at `place`; `None` when it has any.
    fn read<T>(
        &mut self,
        table: DeTable<'_>,
        span: Range<usize>,
        subject: &str,
        place: &Place,
        read: impl FnOnce(&mut Reader<'_, '_>) -> Option<T>,
    ) -> Option<T> {
        let lookup = self.lookup;
        let expand = move |text: &str| match lookup {
            Some(lookup) => substitute(text, lookup).map_err(|e| e.to_string()),
            None => Ok(text.to_string()),
        };
        let mut reader = Reader::new(table, span, subject, &expand);
        let config = read(&mut reader);
        let problems = reader.finish();
        let clean = problems.is_empty();
        for Problem { at, text } in problems {
            self.report(at, place, text);
        }
        config.filter(|_| clean)
    }

    /// The line (from 1) where `span` starts.
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn report(&mut self, span: Option<Range<usize>>, place: &Place, problem: impl Into<String>) {
        let line = span.map(|span| self.line(&span));
        self.errors
            .push(ConfigError::new(line, place.clone(), problem));
    }
}

#[cfg(test)]
mod option_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod value_tests;
