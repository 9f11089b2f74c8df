//! Reading a pipeline file and checking it, reporting every problem at once.
//!
//! A newcomer editing a pipeline file makes several mistakes at a time: a typo in a kind, a
//! misspelt option, a layer in the wrong place. Fixing them one `chatd` run at a time is tedious,
//! so, like Vector's config compiler, [`parse`] keeps going after a problem and returns all of
//! them, each naming the file, the line, the layer and what to write instead. It checks in phases:
//!
//! 1. **TOML syntax.** A file that does not parse stops here: nothing after it can be trusted.
//! 2. **`${VAR}` substitution** in every string value ([`super::env`]). A key whose substitution
//!    fails is reported and set aside, so the later phases check the rest of its table without
//!    also complaining about the unsubstituted text.
//! 3. **Shape, per table** (`load/tables.rs`): `[server]` and each `[[layer]]` on its own, into
//!    its typed config; an unknown kind, option or top-level key (`[[layers]]`) is an error.
//! 4. **Values, per table** (`load/values.rs`): numbers in range, a well-formed instance name.
//! 5. **The whole stack** (`load/graph.rs`): required layers present, each kind once, in a
//!    working order, and a store that a cross-instance fan-out backend can share.
//!
//! The file is parsed into `toml`'s span-keeping [`DeTable`] rather than into `toml::Value`, so
//! every key and value still knows where it was written and each message can give its line.
//! `load/report.rs` holds the error types and their wording.

mod graph;
mod report;
mod tables;
mod values;

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use report::{ConfigError, ConfigErrors, Place};

use super::config::PipelineConfig;
use super::env::substitute;

/// The default pipeline, built into the binary so `chatd` runs from any directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../pipelines/phase1-single.toml");

/// How messages and `--check` name [`EMBEDDED_DEFAULT`].
pub const EMBEDDED_SOURCE: &str = "<embedded default: pipelines/phase1-single.toml>";

/// Reads and checks the pipeline file at `path`; `${VAR}`s come from the process environment.
///
/// # Errors
///
/// Every problem found, or a single one when the file cannot be read.
pub fn load_file(path: &Path) -> Result<PipelineConfig, ConfigErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        // A variable that is not valid Unicode counts as unset: no option has a use for one.
        Ok(text) => parse(&source, &text, &|name| std::env::var(name).ok()),
        Err(e) => {
            let problem = format!("cannot read the file: {e}");
            let error = ConfigError {
                line: None,
                place: Place::File,
                problem,
            };
            Err(ConfigErrors {
                source,
                errors: vec![error],
            })
        }
    }
}

/// Checks [`EMBEDDED_DEFAULT`]; its `${CHATD_DATA_DIR:-data}` comes from the process
/// environment.
///
/// # Errors
///
/// Only if the embedded file is broken, which a unit test rules out.
pub fn embedded_default() -> Result<PipelineConfig, ConfigErrors> {
    parse(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, &|name| {
        std::env::var(name).ok()
    })
}

/// Checks a config again after code changed it, such as command-line overrides: its values
/// (phase 4) and its stack (phase 5), which is all a typed config can get wrong. The problems
/// carry no line numbers, as the values need not come from the file.
///
/// # Errors
///
/// Every problem found, under the config's `source`.
pub fn revalidate(config: &PipelineConfig) -> Result<(), ConfigErrors> {
    let problem = |place: &Place, (_, problem)| ConfigError {
        line: None,
        place: place.clone(),
        problem,
    };
    let mut errors: Vec<ConfigError> = values::server_problems(&config.server)
        .into_iter()
        .map(|p| problem(&Place::Server, p))
        .collect();
    let mut found = Vec::new();
    for (i, layer) in config.layers.iter().enumerate() {
        let (index, kind) = (i + 1, layer.kind());
        let place = Place::Layer {
            index,
            kind: kind.to_string(),
        };
        errors.extend(
            values::layer_problems(layer)
                .into_iter()
                .map(|p| problem(&place, p)),
        );
        found.push(graph::Found {
            index,
            kind,
            line: None,
        });
    }
    errors.extend(graph::check(&found, !config.layers.is_empty()));
    let layers: Vec<_> = config.layers.iter().cloned().map(Some).collect();
    errors.extend(graph::shared_store(&found, &layers));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors {
            source: config.source.clone(),
            errors,
        })
    }
}

/// Checks the pipeline `text`, read from `source` (used in messages), asking `lookup` for the
/// value of each `${VAR}`.
///
/// # Errors
///
/// Every problem found in all five phases of the module docs.
pub fn parse(
    source: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PipelineConfig, ConfigErrors> {
    let mut checker = Checker {
        text,
        lookup,
        errors: Vec::new(),
    };
    match checker.pipeline(source) {
        Some(config) if checker.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors {
            source: source.to_string(),
            errors: checker.errors,
        }),
    }
}

/// One run of the checks: the text (to turn spans into lines), the environment, and the
/// problems found so far. The per-table phases live in `load/tables.rs`.
struct Checker<'a> {
    text: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    /// Runs every phase. `None` when some table did not read; problems of the file as a whole
    /// (an unknown top-level key, the order of the layers) still leave a config, so [`parse`]
    /// decides by `errors`.
    fn pipeline(&mut self, source: &str) -> Option<PipelineConfig> {
        let document = match DeTable::parse(self.text) {
            Ok(document) => document.into_inner(),
            Err(e) => {
                // The `toml` error's Display is a multi-line drawing; one line reads better here.
                let span = e.span().unwrap_or(0..0);
                let at = span.start.min(self.text.len());
                let before = self.text.get(..at).unwrap_or(self.text);
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
        let server = self.server(server);
        let layers = self.layers(layers);
        let layers = match layers {
            Some((found, layers)) => {
                self.errors.extend(graph::check(&found, !layers.is_empty()));
                self.errors.extend(graph::shared_store(&found, &layers));
                layers
            }
            // `layer` is not a list of tables: that one problem says it all.
            None => vec![None],
        };
        // Problems read best in file order, whichever phase found them, so that fixing them top
        // to bottom works; those of the whole file (no line) come last. The sort is stable: two
        // problems of one line keep the order they were found in.
        self.errors.sort_by_key(|e| (e.line.is_none(), e.line));
        Some(PipelineConfig {
            source: source.to_string(),
            server: server?,
            layers: layers.into_iter().collect::<Option<_>>()?,
        })
    }

    /// Phase 2 on every string of a `[server]` or `[[layer]]` table. The keys whose substitution
    /// failed are reported, then removed, so that phases 3 and 4 still check the others without
    /// tripping over the unsubstituted text; they are returned so those phases can tell.
    fn substitute_top(&mut self, table: &mut DeTable<'_>, place: &Place) -> Vec<String> {
        let mut failed = Vec::new();
        for (key, value) in table.iter_mut() {
            if !self.substitute_value(value, place, key.get_ref()) {
                failed.push(key.get_ref().to_string());
            }
        }
        for key in &failed {
            table.remove(key.as_str());
        }
        failed
    }

    /// Phase 2 in a nested table; false if any substitution failed. `path` is the dotted key
    /// of `table` itself.
    fn substitute_table(&mut self, table: &mut DeTable<'_>, place: &Place, path: &str) -> bool {
        let mut ok = true;
        for (key, value) in table.iter_mut() {
            ok &= self.substitute_value(value, place, &format!("{path}.{}", key.get_ref()));
        }
        ok
    }

    fn substitute_value(
        &mut self,
        value: &mut Spanned<DeValue<'_>>,
        place: &Place,
        path: &str,
    ) -> bool {
        let span = value.span();
        match value.get_mut() {
            DeValue::String(text) => match substitute(text, self.lookup) {
                Ok(done) => {
                    *text = Cow::Owned(done);
                    true
                }
                Err(e) => {
                    self.report(Some(span), place, format!("option `{path}`: {e}"));
                    false
                }
            },
            DeValue::Array(items) => items.iter_mut().enumerate().fold(true, |ok, (i, item)| {
                self.substitute_value(item, place, &format!("{path}[{i}]")) & ok
            }),
            DeValue::Table(table) => self.substitute_table(table, place, path),
            _ => true,
        }
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
        self.report_at_line(line, place, problem);
    }

    fn report_at_line(&mut self, line: Option<usize>, place: &Place, problem: impl Into<String>) {
        let error = ConfigError {
            line,
            place: place.clone(),
            problem: problem.into(),
        };
        self.errors.push(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::{
        Durability, FanoutConfig, HistoryConfig, LayerConfig, ParseConfig, PersistConfig,
        RateLimitConfig, RouteConfig, ServerConfig,
    };

    /// Every kind, in an order that works.
    pub(super) const FULL: &[&str] = &["parse", "route", "history", "persist", "fanout"];

    /// A fake environment with `TCP=127.0.0.1:7000` and nothing else.
    fn fake_env(name: &str) -> Option<String> {
        (name == "TCP").then(|| "127.0.0.1:7000".to_string())
    }

    /// A pipeline of `kinds`, each `[[layer]]` with the options it needs. With [`FULL`], layer
    /// N's header is on line 3N, its `kind` on line 3N+1, and `store` on line 14.
    pub(super) fn stack(kinds: &[&str]) -> String {
        let mut text = String::from("[server]\n");
        for kind in kinds {
            text.push_str(&format!("\n[[layer]]\nkind = \"{kind}\"\n"));
            match *kind {
                "persist" => text.push_str("store = \"none\"\n"),
                "fanout" => text.push_str("backend = \"local\"\n"),
                "timeout" => text.push_str("ms = 1000\n"),
                "concurrency_limit" => text.push_str("max = 64\n"),
                _ => {}
            }
        }
        text
    }

    /// Every problem `text` has; it must have some.
    pub(super) fn errors(text: &str) -> Vec<ConfigError> {
        match parse("test.toml", text, &fake_env) {
            Ok(config) => panic!("expected problems, got {config:?}"),
            Err(errors) => errors.errors,
        }
    }

    /// The one problem `text` has, rendered.
    pub(super) fn only_error(text: &str) -> String {
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].to_string()
    }

    #[test]
    fn the_embedded_default_is_valid_and_equals_the_defaults() {
        let config = parse(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, &|_| None).unwrap();
        assert_eq!(config.source, EMBEDDED_SOURCE);
        // The defaults, with the IRC listener on (without an `irc` line there is none).
        let irc_on = ServerConfig {
            irc: Some("127.0.0.1:6667".parse().unwrap()),
            ..ServerConfig::default()
        };
        assert_eq!(config.server, irc_on);
        let expected = vec![
            LayerConfig::Parse(ParseConfig::default()),
            LayerConfig::RateLimit(RateLimitConfig::default()),
            LayerConfig::Route(RouteConfig::default()),
            LayerConfig::History(HistoryConfig::default()),
            LayerConfig::Persist(PersistConfig::Sqlite {
                path: "data/chatd.db".into(),
                durability: Durability::Async,
                queue: 10_000,
                batch: 500,
                sync_timeout_ms: 5000,
            }),
            LayerConfig::Fanout(FanoutConfig::Local {}),
        ];
        assert_eq!(config.layers, expected);
        let with_dir = parse(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, &|name| {
            (name == "CHATD_DATA_DIR").then(|| "/srv/chatd".to_string())
        })
        .unwrap();
        assert!(
            matches!(&with_dir.layers[4], LayerConfig::Persist(PersistConfig::Sqlite { path, .. })
                if path == "/srv/chatd/chatd.db"),
            "{:?}",
            with_dir.layers[4]
        );
    }

    #[test]
    fn unknown_top_level_keys_and_a_single_layer_table_are_errors() {
        let text = stack(FULL) + "\n[[layers]]\nkind = \"parse\"\n";
        assert!(only_error(&text).starts_with("line 20: unknown top-level key `layers`"));
        let error = only_error("[layer]\nkind = \"parse\"\n");
        assert!(
            error.contains("write each one as `[[layer]]` (two brackets)"),
            "{error}"
        );
    }

    #[test]
    fn a_syntax_error_gives_its_line_in_one_line() {
        let text = stack(FULL)
            .replace("capacity", "x")
            .replace("kind = \"route\"", "kind = route");
        let error = only_error(&text);
        assert!(
            error.starts_with("line 7: invalid TOML at column 8 (at `route`): string values"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn a_variable_is_substituted_and_a_default_used() {
        let text = stack(FULL).replace(
            "[server]",
            "[server]\ntcp = \"${TCP}\"\nhttp = \"${HTTP:-0.0.0.0:8080}\"",
        );
        let config = parse("t", &text, &fake_env).unwrap();
        assert_eq!(config.server.tcp.to_string(), "127.0.0.1:7000");
        assert_eq!(config.server.http.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn an_unset_variable_names_the_table_and_option() {
        let text = stack(FULL).replace("[server]", "[server]\nhttp = \"${HTTP}\"");
        let error = only_error(&text);
        assert!(
            error.starts_with(
                "line 2, [server]: option `http`: environment variable `HTTP` is not set"
            ),
            "{error}"
        );
        let text = stack(FULL).replace("store = \"none\"", "store = \"${STORE}\"");
        let error = only_error(&text);
        assert!(
            error.starts_with(
                "line 14, layer 4 (persist): option `store`: environment variable `STORE`"
            ),
            "{error}"
        );
        let text = stack(FULL).replace("kind = \"route\"", "kind = \"${KIND}\"");
        // The layer's kind is unknown, so route is missing, but "no `kind`" would be wrong.
        let errors = errors(&text);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        let error = errors[0].to_string();
        assert!(
            error.starts_with("line 7, layer 2 (${KIND}): option `kind`: "),
            "{error}"
        );
    }

    #[test]
    fn an_unset_variable_does_not_hide_the_other_problems_of_its_table() {
        let text = stack(FULL).replace(
            "[server]",
            "[server]\nhttp = \"${HTTP}\"\noutbound_queue = 0\nport = 1",
        );
        let errors = errors(&text);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4)], "{errors:#?}");
    }

    #[test]
    fn problems_from_every_phase_are_reported_together() {
        let text = "[server]\n\
                    [[layer]]\nkind = \"fanout\"\nbackend = \"local\"\n\
                    [[layer]]\nkind = \"parse\"\n\
                    [[layer]]\nkind = \"fanot\"\n\
                    [[layer]]\nkind = \"route\"\n\
                    [[layer]]\nkind = \"history\"\ncapcity = 10\n";
        let errors = parse("pipelines/bad.toml", text, &fake_env).unwrap_err();
        let expected = "pipelines/bad.toml: 3 problems
  - line 2, layer 1 (fanout): `fanout` must come after `parse` (layer 2), `route` (layer 4) and `history` (layer 5), \
because fanout delivers what every other layer has accepted, so it is the last layer
  - line 8, layer 3 (fanot): unknown layer kind `fanot`; expected one of: parse, rate_limit, timeout, concurrency_limit, load_shed, route, history, persist, fanout
  - line 13, layer 5 (history): unknown option `capcity`; `history` takes: capacity";
        assert_eq!(errors.to_string(), expected);
    }

    #[test]
    fn revalidate_checks_values_and_order_changed_in_code() {
        let mut config = embedded_default().unwrap();
        assert_eq!(revalidate(&config), Ok(()));
        config.server.instance = Some("my host".to_string());
        config.layers.swap(1, 2); // rate_limit below route

        let errors = revalidate(&config).unwrap_err();
        let rendered = errors.to_string();
        let expected = format!(
            "{EMBEDDED_SOURCE}: 2 problems\n  - [server]: option `instance` = \"my host\" is not"
        );
        assert!(rendered.starts_with(&expected), "{rendered}");
        let order = "\n  - layer 3 (rate_limit): `rate_limit` must come before `route` (layer 2), \
                     because";
        assert!(rendered.contains(order), "{rendered}");
    }

    #[test]
    fn an_unreadable_file_is_one_problem() {
        let errors = load_file(Path::new("/nonexistent/pipeline.toml")).unwrap_err();
        assert_eq!(errors.errors.len(), 1);
        assert!(
            errors
                .to_string()
                .starts_with("/nonexistent/pipeline.toml: 1 problem\n  - cannot read the file: ")
        );
    }
}
