//! Phase 3: each table on its own, into its typed config, handing it to phase 4
//! ([`super::values`]).
//!
//! A `[[layer]]` table is read in three steps: its `kind` picks the options type and is removed;
//! for persist and fanout the `store`/`backend` key is checked against the known values (serde
//! would say "unknown variant" without listing them); then serde reads the remaining keys, and
//! `deny_unknown_fields` turns a misspelt option into an error. Serde stops at the first problem,
//! so [`Checker::options`] drops the key it names and tries again until the table reads or the
//! problem names no key: a layer with two typos gets two messages in one run.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Checker;
use super::graph::Found;
use super::report::{Place, culprit, explain, missing_field};
use super::values::{ValueProblems, layer_problems, server_problems};
use crate::pipeline::config::{FanoutConfig, LayerConfig, PersistConfig, ServerConfig};

/// The line of each key of a table, kept for phase 4 once the table is consumed by serde.
type KeyLines = Vec<(String, usize)>;

impl Checker<'_> {
    /// Phases 2 to 4 for `[server]`. A file without one gets the defaults.
    pub(super) fn server(&mut self, item: Option<Spanned<DeValue<'_>>>) -> Option<ServerConfig> {
        let Some(item) = item else {
            return Some(ServerConfig::default());
        };
        let (span, place, before) = (item.span(), Place::Server, self.errors.len());
        let DeValue::Table(mut table) = item.into_inner() else {
            let problem = "`server` must be a table: write `[server]` on a line of its own";
            self.report(Some(span), &place, problem);
            return None;
        };
        let failed = self.substitute_top(&mut table, &place);
        let lines = self.key_lines(&table);
        let server: ServerConfig = self.options(table, span, &place, "`[server]`", failed)?;
        self.report_values(&place, &lines, server_problems(&server));
        (self.errors.len() == before).then_some(server)
    }

    /// Phases 2 to 4 for every `[[layer]]`: the kinds found, for phase 5, and each layer's
    /// config, `None` where it has problems. `None` overall if `layer` is not a list of tables.
    pub(super) fn layers(
        &mut self,
        item: Option<Spanned<DeValue<'_>>>,
    ) -> Option<(Vec<Found>, Vec<Option<LayerConfig>>)> {
        let Some(item) = item else {
            return Some((Vec::new(), Vec::new()));
        };
        let span = item.span();
        let DeValue::Array(items) = item.into_inner() else {
            let problem = "`layer` must be a list of tables: write each one as `[[layer]]` (two \
                           brackets)";
            self.report(Some(span), &Place::File, problem);
            return None;
        };
        let mut found = Vec::new();
        let mut configs = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let (kind, config) = self.layer(i + 1, item);
            found.extend(kind);
            configs.push(config);
        }
        Some((found, configs))
    }

    /// Phases 2 to 4 for the layer at `index`.
    fn layer(
        &mut self,
        index: usize,
        item: Spanned<DeValue<'_>>,
    ) -> (Option<Found>, Option<LayerConfig>) {
        let (span, before) = (item.span(), self.errors.len());
        let line = self.line(&span);
        let DeValue::Table(mut table) = item.into_inner() else {
            let place = Place::Layer {
                index,
                kind: "?".to_string(),
            };
            let problem = "a layer must be a table: write `[[layer]]` and then `kind = \"...\"`";
            self.report(Some(span), &place, problem);
            return (None, None);
        };
        // Named by its kind as written, even when the kind itself is a failed `${VAR}`.
        let written = layer_place(index, &table);
        let failed = self.substitute_top(&mut table, &written);
        if failed.iter().any(|key| key == "kind") {
            return (None, None);
        }
        let place = layer_place(index, &table);
        let Some(kind) = self.kind(&mut table, &place, line) else {
            return (None, None);
        };
        let found = Some(Found {
            index,
            kind,
            line: Some(line),
        });
        let lines = self.key_lines(&table);
        // Persist and fanout pick their variant with a second key; messages name it too.
        let tag = match kind {
            "persist" => Some(("store", PersistConfig::STORES)),
            "fanout" => Some(("backend", FanoutConfig::BACKENDS)),
            _ => None,
        };
        let subject = match tag {
            None => format!("`{kind}`"),
            Some(tag) => match self.tag(&table, &place, line, tag, &failed) {
                Some(subject) => subject,
                None => return (found, None),
            },
        };
        let (subject, dropped) = (subject.as_str(), failed);
        let config = match kind {
            "parse" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::Parse),
            "rate_limit" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::RateLimit),
            "timeout" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::Timeout),
            "concurrency_limit" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::ConcurrencyLimit),
            "load_shed" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::LoadShed),
            "route" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::Route),
            "history" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::History),
            "persist" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::Persist),
            "fanout" => self
                .options(table, span, &place, subject, dropped)
                .map(LayerConfig::Fanout),
            // Reached only if a kind is added to `LayerConfig::KINDS` but not here.
            other => {
                let problem = format!("layer kind `{other}` is known but not supported yet");
                self.report_at_line(Some(line), &place, problem);
                None
            }
        };
        if let Some(config) = &config {
            self.report_values(&place, &lines, layer_problems(config));
        }
        let clean = self.errors.len() == before;
        (found, config.filter(|_| clean))
    }

    /// Reads and removes the `kind` key, which selects the options type of the rest.
    fn kind(
        &mut self,
        table: &mut DeTable<'_>,
        place: &Place,
        line: usize,
    ) -> Option<&'static str> {
        let expected = LayerConfig::KINDS.join(", ");
        let Some(kind) = table.remove("kind") else {
            let problem =
                format!("this layer has no `kind`; add `kind = \"...\"` with one of: {expected}");
            self.report_at_line(Some(line), place, problem);
            return None;
        };
        let problem = match kind.get_ref() {
            DeValue::String(name) => match LayerConfig::KINDS.iter().find(|k| **k == name.as_ref())
            {
                Some(known) => return Some(*known),
                None => format!("unknown layer kind `{name}`; expected one of: {expected}"),
            },
            other => {
                let found = other.type_str();
                format!("`kind` must be a string, not {found}; expected one of: {expected}")
            }
        };
        self.report(Some(kind.span()), place, problem);
        None
    }

    /// Checks the `store`/`backend` key that selects a persist/fanout variant, so a problem can
    /// list the `valid` values; silent when the key's `${VAR}` `failed`, which is reported
    /// already. Returns how option messages name the layer.
    fn tag(
        &mut self,
        table: &DeTable<'_>,
        place: &Place,
        line: usize,
        (tag, valid): (&str, &[&str]),
        failed: &[String],
    ) -> Option<String> {
        if failed.iter().any(|key| key == tag) {
            return None;
        }
        let expected = valid.join(", ");
        let Some(value) = table.get(tag) else {
            let problem =
                format!("this layer has no `{tag}`; add `{tag} = \"...\"` with one of: {expected}");
            self.report_at_line(Some(line), place, problem);
            return None;
        };
        let problem = match value.get_ref() {
            DeValue::String(name) if valid.contains(&name.as_ref()) => {
                let kind = match place {
                    Place::Layer { kind, .. } => kind.as_str(),
                    _ => "layer",
                };
                return Some(format!("`{kind}` with `{tag} = \"{name}\"`"));
            }
            DeValue::String(name) => format!("unknown {tag} `{name}`; expected one of: {expected}"),
            other => {
                let found = other.type_str();
                format!("`{tag}` must be a string, not {found}; expected one of: {expected}")
            }
        };
        self.report(Some(value.span()), place, problem);
        None
    }

    /// Deserializes `table` (whose header is at `span`) into `T`, reporting every problem serde
    /// finds, as the module docs explain. `subject` names the table in messages; `dropped` are
    /// keys removed for problems reported already. Problem keys take their defaults in the
    /// result, which is only good for phase 4: the caller sees the problems in `errors`.
    fn options<T: DeserializeOwned>(
        &mut self,
        mut table: DeTable<'_>,
        span: Range<usize>,
        place: &Place,
        subject: &str,
        mut dropped: Vec<String>,
    ) -> Option<T> {
        loop {
            let whole = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            let error = match T::deserialize(ValueDeserializer::from(whole)) {
                Ok(options) => return Some(options),
                Err(error) => error,
            };
            // A required option that was dropped is reported already.
            if missing_field(error.message())
                .is_some_and(|field| dropped.iter().any(|d| d == field))
            {
                return None;
            }
            let culprit = culprit(&table, &error);
            let key = culprit.as_ref().map(|(key, _)| key.as_str());
            let problem = explain(error.message(), key, subject);
            let at = error
                .span()
                .or_else(|| culprit.as_ref().map(|(_, at)| at.clone()));
            self.report(Some(at.unwrap_or(span.clone())), place, problem);
            // Each round removes a key, so this loop ends.
            let (key, _) = culprit?;
            table.remove(key.as_str());
            dropped.push(key);
        }
    }

    /// Reports phase 4 `problems` at the lines of the options they name.
    fn report_values(&mut self, place: &Place, lines: &KeyLines, problems: ValueProblems) {
        for (key, problem) in problems {
            self.report_at_line(line_of(lines, key), place, problem);
        }
    }

    fn key_lines(&self, table: &DeTable<'_>) -> KeyLines {
        table
            .iter()
            .map(|(key, _)| (key.get_ref().to_string(), self.line(&key.span())))
            .collect()
    }
}

/// The place of a layer, labelled with its `kind` as written.
fn layer_place(index: usize, table: &DeTable<'_>) -> Place {
    let kind = match table.get("kind").map(Spanned::get_ref) {
        Some(DeValue::String(kind)) => kind.to_string(),
        Some(_) => "?".to_string(),
        None => "no kind".to_string(),
    };
    Place::Layer { index, kind }
}

fn line_of(lines: &KeyLines, key: &str) -> Option<usize> {
    lines
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, line)| *line)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{FULL, errors, only_error, stack};
    use super::*;
    use crate::pipeline::load::parse;

    #[test]
    fn the_listed_stores_and_backends_all_exist() {
        for store in PersistConfig::STORES {
            // The options each store requires.
            let required = match *store {
                "sqlite" => "\npath = \"x.db\"",
                "postgres" => "\nurl = \"postgres://localhost/chatd\"",
                _ => "",
            };
            let text = stack(FULL).replace("\"none\"", &format!("{store:?}{required}"));
            assert!(parse("t", &text, &|_| None).is_ok(), "{store}");
        }
        // Cross-instance backends need the PostgreSQL store (see `graph::shared_store`).
        let postgres = stack(FULL).replace(
            "store = \"none\"",
            "store = \"postgres\"\nurl = \"postgres://localhost/chatd\"",
        );
        for backend in FanoutConfig::BACKENDS {
            // The options each backend requires.
            let required = match *backend {
                "valkey" => "\nurl = \"redis://127.0.0.1:6379\"",
                _ => "",
            };
            let text = postgres.replace("\"local\"", &format!("{backend:?}{required}"));
            assert!(parse("t", &text, &|_| None).is_ok(), "{backend}");
        }
    }

    #[test]
    fn an_unknown_kind_lists_the_valid_ones() {
        let text = stack(FULL).replace("kind = \"history\"", "kind = \"histroy\"");
        assert_eq!(
            only_error(&text),
            "line 10, layer 3 (histroy): unknown layer kind `histroy`; \
             expected one of: parse, rate_limit, timeout, concurrency_limit, load_shed, route, \
             history, persist, fanout"
        );
    }

    #[test]
    fn a_missing_or_non_string_kind_is_an_error() {
        let text = stack(FULL).replace("kind = \"history\"\n", "capacity = 5\n");
        let error = only_error(&text);
        assert!(
            error.starts_with("line 9, layer 3 (no kind): this layer has no `kind`"),
            "{error}"
        );
        let text = stack(FULL).replace("kind = \"history\"", "kind = 3");
        let error = only_error(&text);
        assert!(
            error.starts_with("line 10, layer 3 (?): `kind` must be a string, not integer"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_option_lists_the_options_of_its_kind() {
        let text = stack(FULL).replace("kind = \"history\"", "kind = \"history\"\ncapcity = 5");
        assert_eq!(
            only_error(&text),
            "line 11, layer 3 (history): unknown option `capcity`; `history` takes: capacity"
        );
        let text = stack(FULL).replace("kind = \"parse\"", "kind = \"parse\"\nstrict = true");
        assert_eq!(
            only_error(&text),
            "line 5, layer 1 (parse): unknown option `strict`; `parse` takes no options"
        );
    }

    #[test]
    fn every_unknown_option_of_a_layer_is_reported() {
        let text = stack(FULL).replace(
            "kind = \"route\"",
            "kind = \"route\"\nmax_chars = 1\nmax_message_chars = 9\nlimit = 2",
        );
        let errors = errors(&text);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors
                .iter()
                .all(|e| e.problem.contains("`route` takes: max_message_chars"))
        );
    }

    #[test]
    fn unknown_options_of_persist_and_fanout_are_errors() {
        let text = stack(FULL).replace("store = \"none\"", "store = \"none\"\npath = \"x.db\"");
        assert_eq!(
            only_error(&text),
            "line 15, layer 4 (persist): unknown option `path`; \
             `persist` with `store = \"none\"` takes no options"
        );
        let text = stack(FULL).replace("backend = \"local\"", "backend = \"local\"\nurl = \"x\"");
        assert!(
            only_error(&text).contains("unknown option `url`; `fanout` with `backend = \"local\"`")
        );
    }

    #[test]
    fn an_unknown_or_missing_store_or_backend_lists_the_valid_values() {
        let text = stack(FULL).replace("store = \"none\"", "store = \"postgresql\"");
        assert_eq!(
            only_error(&text),
            "line 14, layer 4 (persist): unknown store `postgresql`; expected one of: none, sqlite, postgres"
        );
        let text = stack(FULL).replace("store = \"none\"\n", "");
        assert_eq!(
            only_error(&text),
            "line 12, layer 4 (persist): this layer has no `store`; \
             add `store = \"...\"` with one of: none, sqlite, postgres"
        );
        let text = stack(FULL).replace("backend = \"local\"", "backend = \"pigeon\"");
        let expected = format!(
            "unknown backend `pigeon`; expected one of: {}",
            FanoutConfig::BACKENDS.join(", ")
        );
        assert!(only_error(&text).ends_with(&expected));
        let text = stack(FULL).replace("backend = \"local\"\n", "");
        assert!(only_error(&text).contains("layer 5 (fanout): this layer has no `backend`"));
    }

    #[test]
    fn bad_server_options_are_errors() {
        let text = stack(FULL).replace("[server]", "[server]\nport = 9001");
        let error = only_error(&text);
        assert!(
            error.starts_with(
                "line 2, [server]: unknown option `port`; `[server]` takes: tcp, http"
            ),
            "{error}"
        );
        let text = stack(FULL).replace("[server]", "[server]\ntcp = \"localhost:9001\"");
        let error = only_error(&text);
        assert!(
            error.starts_with("line 2, [server]: option `tcp`: not an address"),
            "{error}"
        );
        let text = stack(FULL).replace("[server]", "[server]\noutbound_queue = \"many\"");
        let error = only_error(&text);
        assert!(
            error.contains(
                "option `outbound_queue`: invalid type: string \"many\", expected a whole number"
            ),
            "{error}"
        );
    }
}
