//! Tests of the values of each table: types, ranges and the rules between options.

use super::tests::{FULL, only_error, stack};
use crate::pipeline::load::parse;

#[test]
fn out_of_range_values_are_errors() {
    for (from, to, option) in [
        (
            "kind = \"history\"",
            "kind = \"history\"\ncapacity = 0",
            "`capacity` = 0",
        ),
        (
            "kind = \"history\"",
            "kind = \"history\"\ncapacity = 10001",
            "`capacity` = 10001",
        ),
        (
            "kind = \"route\"",
            "kind = \"route\"\nmax_message_chars = 0",
            "`max_message_chars` = 0",
        ),
        (
            "kind = \"route\"",
            "kind = \"route\"\nmax_message_chars = 65537",
            "`max_message_chars` = 65537",
        ),
        (
            "kind = \"route\"",
            "kind = \"route\"\npresence_ttl_secs = 1",
            "`presence_ttl_secs` = 1",
        ),
        (
            "[server]",
            "[server]\nmax_line_bytes = 63",
            "`max_line_bytes` = 63",
        ),
        (
            "[server]",
            "[server]\nmax_line_bytes = 1048577",
            "`max_line_bytes` = 1048577",
        ),
        (
            "[server]",
            "[server]\noutbound_queue = 0",
            "`outbound_queue` = 0",
        ),
        (
            "[server]",
            "[server]\noutbound_queue = 65537",
            "`outbound_queue` = 65537",
        ),
        (
            "[server]",
            "[server]\nsession_idle_secs = 0",
            "`session_idle_secs` = 0",
        ),
        (
            "[server]",
            "[server]\nmax_body_bytes = 10",
            "`max_body_bytes` = 10",
        ),
        (
            "[server]",
            "[server]\nmax_connections_per_ip = 0",
            "`max_connections_per_ip` = 0",
        ),
        (
            "[server]",
            "[server]\nmax_connections = 1000001",
            "`max_connections` = 1000001",
        ),
        (
            "[server]",
            "[server]\nheader_read_timeout_secs = 0",
            "`header_read_timeout_secs` = 0",
        ),
        (
            "kind = \"route\"",
            "kind = \"route\"\nmax_rooms_per_session = 0",
            "`max_rooms_per_session` = 0",
        ),
        (
            "kind = \"route\"",
            "kind = \"route\"\nmax_rooms = 0",
            "`max_rooms` = 0",
        ),
        (
            "[server]",
            "[server]\nipv6_prefix = 31",
            "`ipv6_prefix` = 31",
        ),
        (
            "[server]",
            "[server]\njoin_timeout_secs = 0",
            "`join_timeout_secs` = 0",
        ),
    ] {
        let error = only_error(&stack(FULL).replacen(from, to, 1));
        assert!(
            error.contains(&format!("option {option} is out of range")),
            "{error}"
        );
        assert!(
            error.starts_with("line 2, [server]") || error.contains("layer"),
            "{error}"
        );
    }
}

#[test]
fn bad_guard_options_are_errors() {
    let guarded = [
        "parse",
        "rate_limit",
        "timeout",
        "concurrency_limit",
        "route",
        "fanout",
    ];
    let text = stack(&guarded);
    assert!(parse("t", &text, &|_| None).is_ok());
    for (from, to, expected) in [
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nper_second = 0",
            "line 8, layer 2 (rate_limit): option `per_second` = 0 would refuse every line \
             after the first burst, for good; write at least 1 (or remove the `rate_limit` \
             layer to turn rate limiting off)",
        ),
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nburst = 0",
            "line 8, layer 2 (rate_limit): option `burst` = 0 is out of range; it must be \
             from 1 to 100000",
        ),
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nper_second = 10001",
            "option `per_second` = 10001 is out of range",
        ),
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nper_minute = 10",
            "unknown option `per_minute`; `rate_limit` takes: per_second, burst, \
             per_address_per_second, per_address_burst",
        ),
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nper_address_burst = 0",
            "option `per_address_burst` = 0 is out of range; it must be from 1 to 1000000",
        ),
        (
            "\"rate_limit\"",
            "\"rate_limit\"\nper_second = 20\nper_address_per_second = 19",
            "option `per_address_per_second` = 19 is less than `per_second` = 20; all the \
             sessions of one address together cannot have less than one session alone",
        ),
        ("ms = 1000", "ms = 0", "option `ms` = 0 is out of range"),
        ("max = 64", "max = 0", "option `max` = 0 is out of range"),
        (
            "ms = 1000\n",
            "",
            "missing option `ms`, which `timeout` requires",
        ),
    ] {
        let error = only_error(&text.replacen(from, to, 1));
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_per_address_or_per_session_limit_above_the_total_is_an_error() {
    let text = stack(FULL).replace(
        "[server]",
        "[server]\nmax_connections = 10\nmax_connections_per_ip = 11",
    );
    let error = only_error(&text);
    assert!(
        error.starts_with("line 3, [server]: option `max_connections_per_ip` = 11 is more than `max_connections` = 10"),
        "{error}"
    );
    let text = stack(FULL).replace(
        "kind = \"route\"",
        "kind = \"route\"\nmax_rooms = 5\nmax_rooms_per_session = 6",
    );
    let error = only_error(&text);
    assert!(
        error.contains(
            "layer 2 (route): option `max_rooms_per_session` = 6 is more than `max_rooms` = 5"
        ),
        "{error}"
    );
}

#[test]
fn bad_persist_options_are_errors() {
    let sqlite = "store = \"sqlite\"\npath = \"x.db\"";
    for (options, expected) in [
        (
            "store = \"sqlite\"\npath = \" \"".to_string(),
            "option `path` is empty",
        ),
        (
            format!("{sqlite}\nqueue = 0"),
            "option `queue` = 0 is out of range",
        ),
        (
            format!("{sqlite}\nbatch = 10001"),
            "option `batch` = 10001 is out of range",
        ),
        (
            format!("{sqlite}\nsync_timeout_ms = 0"),
            "option `sync_timeout_ms` = 0 is out of range",
        ),
        (
            "store = \"postgres\"\nurl = \"postgres://h/db\"\npool_size = 0".to_string(),
            "option `pool_size` = 0 is out of range",
        ),
        (
            "store = \"postgres\"\nurl = \"host=h port=notanumber\"".to_string(),
            "option `url` is not a PostgreSQL connection string",
        ),
        (
            format!("{sqlite}\ndurability = \"eventually\""),
            "unknown variant `eventually`, expected `async` or `sync`",
        ),
        (format!("{sqlite}\nurl = \"x\""), "unknown option `url`"),
    ] {
        let text = stack(FULL).replace("store = \"none\"", &options);
        let error = only_error(&text);
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("layer 4 (persist)"), "{error}");
    }
}

#[test]
fn bad_valkey_options_are_errors() {
    let persist = "store = \"postgres\"\nurl = \"postgres://h/db\"";
    for (options, expected) in [
        (
            "url = \"http://h\"",
            "option `url` = \"http://h\" is not a Valkey url",
        ),
        (
            "url = \"redis://h\"\npool_size = 0",
            "option `pool_size` = 0 is out of range",
        ),
        (
            "url = \"redis://h\"\ngap_wait_ms = 1",
            "option `gap_wait_ms` = 1 is out of range",
        ),
        ("pool_size = 2", "missing option `url`"),
    ] {
        let text = stack(FULL).replace("store = \"none\"", persist).replace(
            "backend = \"local\"",
            &format!("backend = \"valkey\"\n{options}"),
        );
        let error = only_error(&text);
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("layer 5 (fanout)"), "{error}");
    }
}

#[test]
fn bad_poll_options_are_errors() {
    let poll = stack(FULL).replace("\"local\"", "\"poll\"").replace(
        "store = \"none\"",
        "store = \"postgres\"\nurl = \"postgres://h/db\"",
    );
    assert!(parse("t", &poll, &|_| None).is_ok());
    for (options, expected) in [
        (
            "interval_ms = 0",
            "option `interval_ms` = 0 is out of range",
        ),
        ("interval_ms = 60001", "option `interval_ms` = 60001 is out"),
        (
            "gap_wait_ms = 99",
            "option `gap_wait_ms` = 99 is out of range",
        ),
        ("interval = 100", "unknown option `interval`"),
    ] {
        let text = poll.replace("\"poll\"", &format!("\"poll\"\n{options}"));
        let error = only_error(&text);
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("layer 5 (fanout)"), "{error}");
    }
}

#[test]
fn a_bad_instance_name_is_an_error() {
    for name in ["", "has space", "ünïcode", &"x".repeat(33)] {
        let text = stack(FULL).replace("[server]", &format!("[server]\ninstance = {name:?}"));
        let error = only_error(&text);
        assert!(
            error.starts_with("line 2, [server]: option `instance`"),
            "{error}"
        );
    }
    let text = stack(FULL).replace("[server]", "[server]\ninstance = \"eu-1.chat_b\"");
    assert!(parse("t", &text, &|_| None).is_ok());
}
