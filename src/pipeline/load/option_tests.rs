//! Tests of each table on its own: kinds, tags and unknown options.

use super::tests::{FULL, errors, only_error, stack};
use strum::VariantNames;

use crate::layers::fanout::Backend;
use crate::layers::persist::StoreKind;
use crate::pipeline::load::parse;

#[test]
fn the_listed_stores_and_backends_all_exist() {
    for store in <StoreKind as VariantNames>::VARIANTS {
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
    for backend in <Backend as VariantNames>::VARIANTS {
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
        <Backend as VariantNames>::VARIANTS.join(", ")
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
        error.starts_with("line 2, [server]: unknown option `port`; `[server]` takes: tcp, http"),
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

#[test]
fn operators_are_read_with_their_passwords_substituted_and_hidden_when_shown() {
    use crate::pipeline::config::LayerConfig;
    let text = stack(FULL).replace(
        "kind = \"route\"",
        "kind = \"route\"\nopers = [{ name = \"admin\", password = \"${PASS}\" }]",
    );
    let env = |name: &str| (name == "PASS").then(|| "s3cret".to_string());
    let config = parse("t", &text, &env).expect("valid");
    let route = config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::Route(route) => Some(route),
            _ => None,
        })
        .expect("a route layer");
    assert_eq!(route.opers.len(), 1);
    assert_eq!(
        (
            route.opers[0].name.as_str(),
            route.opers[0].password.as_str()
        ),
        ("admin", "s3cret")
    );
    let shown = toml::to_string(&route.opers[0]).unwrap();
    assert!(
        !shown.contains("s3cret") && shown.contains("(hidden)"),
        "{shown}"
    );
}

#[test]
fn an_operator_needs_a_name_and_a_password_and_nothing_else() {
    for (opers, problem) in [
        (
            "[{ name = \"admin\", password = \"\" }]",
            "option `opers` entry 1: `name` and `password` must not be empty",
        ),
        (
            "[{ name = \"a\", password = \"p\" }, { name = \" \", password = \"p\" }]",
            "option `opers` entry 2: `name` and `password` must not be empty",
        ),
        (
            "[{ name = \"a\", password = \"p\", role = \"root\" }]",
            "option `opers` entry 1: unknown option `role`; an operator takes: name, password",
        ),
        (
            "\"admin\"",
            "option `opers`: invalid type: string \"admin\", expected a list",
        ),
    ] {
        let text = stack(FULL).replace(
            "kind = \"route\"",
            &format!("kind = \"route\"\nopers = {opers}"),
        );
        let error = only_error(&text);
        assert!(error.contains(problem), "{opers}: {error}");
        assert!(error.contains("layer 2 (route)"), "{error}");
    }
}
