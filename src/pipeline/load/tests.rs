//! Tests of the loader as a whole: the embedded default, syntax, top-level keys, `${VAR}`s,
//! problems of every phase together, revalidation.

use super::*;
use crate::pipeline::config::{
    Durability, FanoutConfig, HistoryConfig, LayerConfig, ParseConfig, PersistConfig,
    RateLimitConfig, RouteConfig, ServerConfig,
};

/// Every kind, in an order that works.
pub(crate) const FULL: &[&str] = &["parse", "route", "history", "persist", "fanout"];

/// A fake environment with `TCP=127.0.0.1:7000` and nothing else.
fn fake_env(name: &str) -> Option<String> {
    (name == "TCP").then(|| "127.0.0.1:7000".to_string())
}

/// A pipeline of `kinds`, each `[[layer]]` with the options it needs. With [`FULL`], layer
/// N's header is on line 3N, its `kind` on line 3N+1, and `store` on line 14.
pub(crate) fn stack(kinds: &[&str]) -> String {
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
pub(crate) fn errors(text: &str) -> Vec<ConfigError> {
    match parse("test.toml", text, &fake_env) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(errors) => errors.errors,
    }
}

/// The one problem `text` has, rendered.
pub(crate) fn only_error(text: &str) -> String {
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
        error
            .starts_with("line 2, [server]: option `http`: environment variable `HTTP` is not set"),
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

/// By default a slow reader's bytes decide, not its count of events: a burst of the shortest
/// events (a join storm's notices; any event carries some text) fills the byte bound first, so
/// that it is absorbed as a few long messages would be (docs/BENCHMARKS.md, "seventh round").
#[test]
fn by_default_a_queue_is_full_by_its_bytes_before_its_events() {
    use crate::core::Event;
    use crate::core::outbound::{Overflow, QueueBudget, QueueLimits, Refused, bounded};
    let server = ServerConfig::default();
    let limits = QueueLimits {
        events: server.outbound_queue,
        bytes: server.outbound_queue_bytes,
        budget: QueueBudget::default(),
    };
    let (tx, _rx) = bounded(&limits);
    let refused = loop {
        if let Err(refused) = tx.try_send(Event::notice("x")) {
            break refused;
        }
    };
    assert_eq!(
        refused,
        Refused::Full(Overflow::Bytes(server.outbound_queue_bytes))
    );
}
