//! Phase 4: checks on the stack as a whole, once every layer's own table has been read.
//!
//! Each layer relies on the ones above it: route needs the commands parse makes, history and
//! persist keep only the messages route has numbered, and fanout delivers what all the others
//! accepted. So the order is fixed except that history and persist may swap; each kind appears
//! at most once, and parse, route and fanout are required. The rules are written as a rank per
//! kind: a layer must come after every layer of a lower rank.
//!
//! The guard layers (`rate_limit` and tower's `timeout`, `concurrency_limit` and `load_shed`) may
//! go anywhere above route, in any order, because what they limit is what users send, which
//! route consumes; `load_shed` also needs a `concurrency_limit` below it, the only layer that
//! is ever "not ready" for it to shed on.
//!
//! One rule looks at options rather than kinds ([`shared_store`]): a fan-out backend that shares
//! rooms between instances, and a shared presence directory, need a store that every instance
//! reaches, which is PostgreSQL. [`Cluster`] holds that rule, for start-up as for here.

use super::cluster::Cluster;
use super::config::{LayerConfig, LayerKind};
use super::report::{ConfigError, Place};

/// A layer whose kind is known, which is all the whole-stack checks need.
pub(super) struct Found {
    /// Position in the file, from 1.
    pub(super) index: usize,
    pub(super) kind: LayerKind,
    /// The line of its `[[layer]]` header, if it comes from a file.
    pub(super) line: Option<usize>,
    /// Its options; `None` when they have problems of their own (reported already).
    pub(super) config: Option<LayerConfig>,
}

impl Found {
    fn problem(&self, problem: String) -> ConfigError {
        let (index, kind) = (self.index, self.kind.to_string());
        ConfigError::new(self.line, Place::Layer { index, kind }, problem)
    }
}

/// The kinds every pipeline needs, and why.
const REQUIRED: &[(LayerKind, &str)] = &[
    (LayerKind::Parse, "it turns input lines into commands"),
    (LayerKind::Route, "it handles nicks, rooms and membership"),
    (
        LayerKind::Fanout,
        "it delivers messages to the members of a room",
    ),
];

/// The guard layers: each must come before route, and apart from that anywhere (see the module
/// docs).
fn is_guard(kind: LayerKind) -> bool {
    use LayerKind::*;
    matches!(kind, RateLimit | Timeout | ConcurrencyLimit | LoadShed)
}

/// The rank of `kind`, and why it must come after the lower ranks. Guards have none: they follow
/// the rule of [`guards`] instead.
fn rank(kind: LayerKind) -> (u8, &'static str) {
    match kind {
        LayerKind::Route => (1, "route works on the commands that parse produces"),
        LayerKind::History | LayerKind::Persist => (
            2,
            "it keeps only messages that route has checked and numbered",
        ),
        LayerKind::Fanout => (
            3,
            "fanout delivers what every other layer has accepted, so it is the last layer",
        ),
        _ => (0, ""),
    }
}

/// Every whole-stack problem of the layers `found`. `had_layers` is false for a file without a
/// single `[[layer]]`, which gets one message instead of one per missing kind.
pub(super) fn check(found: &[Found], had_layers: bool) -> Vec<ConfigError> {
    if !had_layers {
        let problem = "the pipeline has no `[[layer]]` tables; it needs at least parse, route \
                       and fanout, in that order";
        return vec![problem_in_file(problem.to_string())];
    }
    let mut errors = Vec::new();
    for (i, layer) in found.iter().enumerate() {
        if let Some(first) = found[..i].iter().find(|other| other.kind == layer.kind) {
            errors.push(layer.problem(format!(
                "`{}` appears twice, as layer {} and layer {}; each kind may appear only once",
                layer.kind, first.index, layer.index
            )));
        }
        // Listing every lower-ranked layer below this one says where it may go in one message.
        if is_guard(layer.kind) {
            continue;
        }
        let (my_rank, why) = rank(layer.kind);
        let mut must_follow: Vec<String> = found[i + 1..]
            .iter()
            .filter(|other| !is_guard(other.kind) && rank(other.kind).0 < my_rank)
            .map(|other| format!("`{}` (layer {})", other.kind, other.index))
            .collect();
        if let Some(last) = must_follow.pop() {
            let list = if must_follow.is_empty() {
                last
            } else {
                format!("{} and {last}", must_follow.join(", "))
            };
            let problem = format!("`{}` must come after {list}, because {why}", layer.kind);
            errors.push(layer.problem(problem));
        }
    }
    errors.extend(guards(found));
    for (kind, why) in REQUIRED {
        if !found.iter().any(|layer| layer.kind == *kind) {
            errors.push(problem_in_file(format!(
                "missing required layer `{kind}` ({why}); add a `[[layer]]` with \
                 `kind = \"{kind}\"`"
            )));
        }
    }
    errors
}

/// The rules of the guard layers: above route, and `load_shed` above a `concurrency_limit`.
fn guards(found: &[Found]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let route = found.iter().find(|layer| layer.kind == LayerKind::Route);
    for layer in found.iter().filter(|layer| is_guard(layer.kind)) {
        if let Some(route) = route.filter(|route| route.index < layer.index) {
            errors.push(layer.problem(format!(
                "`{}` must come before `route` (layer {}), because it limits the lines and \
                 commands users send, and route turns those into other requests: below route it \
                 would see none",
                layer.kind, route.index
            )));
        }
        let limit_below = found
            .iter()
            .any(|other| other.kind == LayerKind::ConcurrencyLimit && other.index > layer.index);
        if layer.kind == LayerKind::LoadShed && !limit_below {
            errors.push(layer.problem(
                "`load_shed` refuses a request only when the layers below it are not ready, and \
                 only a `concurrency_limit` ever is: add a `[[layer]]` with \
                 `kind = \"concurrency_limit\"` after it, or remove it"
                    .to_string(),
            ));
        }
    }
    errors
}

/// The whole-stack rule on options, [`Cluster::problems`], told at the layer each problem is
/// about.
pub(super) fn shared_store(found: &[Found]) -> Vec<ConfigError> {
    let layer = |kind| found.iter().find(|layer: &&Found| layer.kind == kind);
    let config = |kind| layer(kind).and_then(|layer| layer.config.as_ref());
    let store = match (layer(LayerKind::Persist), config(LayerKind::Persist)) {
        (_, Some(LayerConfig::Persist(persist))) => Some(persist),
        (None, _) => None,
        // A persist layer with problems of its own: which store it meant is unknown.
        (Some(_), _) => return Vec::new(),
    };
    let fanout = match config(LayerKind::Fanout) {
        Some(LayerConfig::Fanout(fanout)) => Some(fanout),
        _ => None,
    };
    let route = match config(LayerKind::Route) {
        Some(LayerConfig::Route(route)) => Some(route),
        _ => None,
    };
    let problems = Cluster::of(store, fanout, route).problems().into_iter();
    problems
        .filter_map(|(kind, problem)| Some(layer(kind)?.problem(problem)))
        .collect()
}

fn problem_in_file(problem: String) -> ConfigError {
    ConfigError::new(None, Place::File, problem)
}

#[cfg(test)]
mod tests {
    use crate::pipeline::load::parse;
    use crate::pipeline::load::tests::{FULL, only_error, stack};

    #[test]
    fn history_and_persist_may_come_in_either_order_or_not_at_all() {
        let swapped = ["parse", "route", "persist", "history", "fanout"];
        for kinds in [FULL, &swapped, &["parse", "route", "fanout"]] {
            assert!(parse("t", &stack(kinds), &|_| None).is_ok(), "{kinds:?}");
        }
    }

    #[test]
    fn a_missing_required_layer_is_named() {
        let error = only_error(&stack(&["parse", "history", "fanout"]));
        assert!(
            error.starts_with("missing required layer `route`"),
            "{error}"
        );
        let errors = parse("t", &stack(&["history"]), &|_| None)
            .unwrap_err()
            .errors;
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn a_file_without_layers_gets_one_message() {
        let error = only_error("[server]\n");
        assert!(
            error.starts_with("the pipeline has no `[[layer]]` tables"),
            "{error}"
        );
    }

    #[test]
    fn a_duplicate_layer_names_both_indexes() {
        let error = only_error(&stack(&["parse", "route", "history", "history", "fanout"]));
        let expected =
            "line 12, layer 4 (history): `history` appears twice, as layer 3 and layer 4";
        assert!(error.starts_with(expected), "{error}");
    }

    #[test]
    fn parse_must_come_before_route() {
        let error = only_error(&stack(&["route", "parse", "fanout"]));
        let expected =
            "line 3, layer 1 (route): `route` must come after `parse` (layer 2), because";
        assert!(error.starts_with(expected), "{error}");
    }

    #[test]
    fn route_must_come_before_history_and_persist() {
        let error = only_error(&stack(&["parse", "history", "route", "fanout"]));
        let expected = "line 6, layer 2 (history): `history` must come after `route` (layer 3)";
        assert!(error.starts_with(expected), "{error}");
        let error = only_error(&stack(&["parse", "persist", "route", "fanout"]));
        let expected = "line 6, layer 2 (persist): `persist` must come after `route` (layer 3)";
        assert!(error.starts_with(expected), "{error}");
    }

    #[test]
    fn fanout_must_come_last() {
        let error = only_error(&stack(&["parse", "route", "fanout", "history"]));
        let expected = "line 9, layer 3 (fanout): `fanout` must come after `history` (layer 4)";
        assert!(error.starts_with(expected), "{error}");
    }

    /// The full stack with `store` and a valkey fan-out.
    fn valkey_over(store: &str) -> String {
        stack(FULL).replace("store = \"none\"", store).replace(
            "backend = \"local\"",
            "backend = \"valkey\"\nurl = \"redis://127.0.0.1:6379\"",
        )
    }

    #[test]
    fn valkey_needs_the_postgres_store() {
        let error = only_error(&valkey_over("store = \"sqlite\"\npath = \"x.db\""));
        assert!(
            error.starts_with(
                "line 17, layer 5 (fanout): `backend = \"valkey\"` needs a `persist` layer with \
                 `store = \"postgres\"`"
            ),
            "{error}"
        );
        assert!(error.contains("sqlite, one file on one machine"), "{error}");
        let error = only_error(&valkey_over("store = \"none\""));
        assert!(error.contains("the store here is none"), "{error}");
        let no_persist = stack(&["parse", "route", "fanout"]).replace(
            "backend = \"local\"",
            "backend = \"valkey\"\nurl = \"redis://h\"",
        );
        assert!(only_error(&no_persist).contains("there is no persist layer"));
        let ok = valkey_over("store = \"postgres\"\nurl = \"postgres://h/db\"");
        assert!(parse("t", &ok, &|_| None).is_ok());
    }

    #[test]
    fn poll_needs_the_postgres_store() {
        let poll = stack(FULL).replace("\"local\"", "\"poll\"");
        let postgres = poll.replace(
            "store = \"none\"",
            "store = \"postgres\"\nurl = \"postgres://h/db\"",
        );
        assert!(parse("t", &postgres, &|_| None).is_ok());
        for (text, store) in [
            (
                poll.replace("store = \"none\"", "store = \"sqlite\"\npath = \"x.db\""),
                "the store here is sqlite, one file on one machine",
            ),
            (poll.clone(), "the store here is none"),
            (
                stack(&["parse", "route", "fanout"]).replace("\"local\"", "\"poll\""),
                "there is no persist layer",
            ),
        ] {
            let error = only_error(&text);
            assert!(
                error.contains(
                    "(fanout): `backend = \"poll\"` needs a `persist` layer with \
                                `store = \"postgres\"`"
                ),
                "{error}"
            );
            assert!(error.contains(store), "{error}");
        }
    }

    #[test]
    fn guards_go_anywhere_above_route_in_any_order() {
        let guards = [
            "rate_limit",
            "parse",
            "load_shed",
            "timeout",
            "concurrency_limit",
            "route",
            "history",
            "fanout",
        ];
        assert!(parse("t", &stack(&guards), &|_| None).is_ok());
        let after_parse = ["parse", "rate_limit", "route", "persist", "fanout"];
        assert!(parse("t", &stack(&after_parse), &|_| None).is_ok());
    }

    #[test]
    fn a_guard_below_route_is_an_error() {
        for guard in ["rate_limit", "timeout", "concurrency_limit"] {
            let error = only_error(&stack(&["parse", "route", guard, "fanout"]));
            let expected = format!(
                "line 9, layer 3 ({guard}): `{guard}` must come before `route` (layer 2), \
                 because it limits the lines and commands users send"
            );
            assert!(error.starts_with(&expected), "{error}");
        }
    }

    #[test]
    fn load_shed_needs_a_concurrency_limit_below_it() {
        for kinds in [
            &["parse", "load_shed", "route", "fanout"][..],
            &["concurrency_limit", "load_shed", "parse", "route", "fanout"],
        ] {
            let error = only_error(&stack(kinds));
            assert!(
                error.contains(
                    "(load_shed): `load_shed` refuses a request only when the layers below it \
                     are not ready, and only a `concurrency_limit` ever is"
                ),
                "{error}"
            );
        }
    }

    #[test]
    fn one_misplaced_layer_lists_everything_it_must_follow() {
        let error = only_error(&stack(&["fanout", "parse", "route", "persist"]));
        let expected = "`fanout` must come after `parse` (layer 2), `route` (layer 3) and \
                        `persist` (layer 4), because";
        assert!(error.contains(expected), "{error}");
    }
}
