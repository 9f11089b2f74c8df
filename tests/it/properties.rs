//! Property tests (`proptest`) for the two parsers that read untrusted or hand-written text: the
//! command parser (`layers::parse`) and the pipeline loader (`pipeline::load`).
//!
//! The case counts are modest (CI has two cores); a failure prints the smallest input proptest
//! could shrink it to, and `properties.proptest-regressions` (next to this file) keeps it for the
//! next runs.

use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use chatd::core::{Command, ErrorKind, Nick, RoomName};
use chatd::layers::parse::{MAX_HISTORY, parse_line};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{
    DirectoryMode, Durability, FanoutConfig, HistoryConfig, LayerConfig, ParseConfig,
    PersistConfig, RouteConfig, ServerConfig,
};
use chatd::pipeline::load;

/// `cases` cases a property, and the failures found before read from (and new ones written to)
/// `properties.proptest-regressions` beside this file. proptest's default looks for them under
/// `tests/proptest-regressions/` instead, because `tests/it/` holds a `main.rs`.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

// ---- the command parser ----------------------------------------------------------------------

/// A valid nick or room name, before folding.
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,32}"
}

/// Blanks between words: the parser splits on any whitespace.
fn gap() -> impl Strategy<Value = String> {
    "[ \t]{1,3}"
}

/// `word` with each ASCII letter's case chosen at random.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// A room as a user may write it (`#General`) and the room it means.
fn room() -> impl Strategy<Value = (String, RoomName)> {
    (name(), any::<bool>(), any::<bool>()).prop_map(|(name, hash, upper)| {
        let written = match (hash, upper) {
            (true, true) => format!("#{}", name.to_ascii_uppercase()),
            (true, false) => format!("#{name}"),
            (false, true) => name.to_ascii_uppercase(),
            (false, false) => name.clone(),
        };
        (written, RoomName::parse(&name).unwrap())
    })
}

/// A valid command line and the command it must parse to.
fn valid_command() -> impl Strategy<Value = (String, Command)> {
    prop_oneof![
        ("[A-Za-z0-9_-]{1,32}", gap(), any_case("nick")).prop_map(|(nick, gap, cmd)| (
            format!("/{cmd}{gap}{nick}"),
            Command::Nick(Nick::parse(&nick).unwrap())
        )),
        (room(), gap(), any_case("join")).prop_map(|((written, room), gap, cmd)| (
            format!("/{cmd}{gap}{written}"),
            Command::Join(room)
        )),
        (proptest::option::of(room()), gap()).prop_map(|(room, gap)| match room {
            Some((written, room)) => (format!("/leave{gap}{written}"), Command::Leave(Some(room))),
            None => ("/leave".to_string(), Command::Leave(None)),
        }),
        (proptest::option::of(room()), gap()).prop_map(|(room, gap)| match room {
            Some((written, room)) => (format!("/users{gap}{written}"), Command::Users(Some(room))),
            None => ("/users".to_string(), Command::Users(None)),
        }),
        (1..=MAX_HISTORY, gap())
            .prop_map(|(n, gap)| (format!("/history{gap}{n}"), Command::History(n))),
        any_case("rooms").prop_map(|cmd| (format!("/{cmd}"), Command::Rooms)),
        any_case("help").prop_map(|cmd| (format!("/{cmd}"), Command::Help)),
        any_case("quit").prop_map(|cmd| (format!("/{cmd}"), Command::Quit)),
        // A message: as typed, or behind the `//` escape when it starts with a slash.
        "[^\n]{0,200}"
            .prop_filter("not blank", |t| !t.trim().is_empty())
            .prop_map(|text| {
                let line = if text.starts_with('/') {
                    format!("/{text}")
                } else {
                    text.clone()
                };
                (line, Command::Say { room: None, text })
            }),
    ]
}

/// Any text, with control characters (C0, C1, DEL, ESC) much likelier than among all chars:
/// `any::<String>()` alone almost never produces one.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('\0', '\u{1f}'),
        1 => proptest::char::range('\u{7f}', '\u{9f}'),
        1 => Just('\u{1b}'),
        2 => proptest::char::range(' ', '~'),
    ];
    proptest::collection::vec(c, 0..64).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(cases(512))]

    /// Any string at all: an answer, never a panic; and an error is the user's fault (Invalid),
    /// short, and free of control characters (it is printed to a terminal).
    #[test]
    fn the_parser_never_panics_and_its_errors_are_safe_to_print(
        line in prop_oneof![text(), text().prop_map(|s| format!("/{s}"))],
    ) {
        check_answer(&line)?;
    }

    /// Strings that look like commands reach the argument checks, not just the first branch.
    #[test]
    fn command_like_lines_too(
        cmd in prop_oneof![
            Just("nick"), Just("join"), Just("leave"), Just("part"), Just("users"), Just("who"),
            Just("history"), Just("rooms"), Just("help"), Just("quit"), Just("xyzzy"), Just(""),
        ],
        args in proptest::collection::vec(text(), 0..4),
    ) {
        check_answer(&format!("/{cmd} {}", args.join(" ")))?;
    }

    /// A valid command, however it is spaced and cased, parses to what it says.
    #[test]
    fn valid_commands_round_trip((line, command) in valid_command()) {
        prop_assert_eq!(parse_line(&line).unwrap(), Some(command));
    }

    /// A message that is sent as its own line reads back unchanged.
    #[test]
    fn a_message_survives_its_escape(text in "/[^\n]{0,100}") {
        let parsed = parse_line(&format!("/{text}")).unwrap();
        prop_assert_eq!(parsed, Some(Command::Say { room: None, text }));
    }
}

fn check_answer(line: &str) -> Result<(), TestCaseError> {
    match parse_line(line) {
        Ok(None) => prop_assert!(line.trim().is_empty()),
        Ok(Some(_)) => {}
        Err(err) => {
            prop_assert_eq!(err.kind, ErrorKind::Invalid);
            prop_assert!(err.message.len() < 512, "{}", err.message);
            prop_assert!(
                !err.message.chars().any(char::is_control),
                "a raw control character in {:?}",
                err.message
            );
        }
    }
    Ok(())
}

// ---- the pipeline loader ---------------------------------------------------------------------

/// A line of something that looks like a pipeline file, right or (often) wrong.
fn toml_ish_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("kind".to_string()),
        Just("store".to_string()),
        Just("backend".to_string()),
        Just("tcp".to_string()),
        Just("max_line_bytes".to_string()),
        Just("max_connections_per_ip".to_string()),
        Just("max_rooms".to_string()),
        Just("capacity".to_string()),
        Just("path".to_string()),
        Just("url".to_string()),
        Just("durability".to_string()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop_oneof![
            Just("parse"),
            Just("route"),
            Just("history"),
            Just("persist"),
            Just("fanout"),
            Just("none"),
            Just("sqlite"),
            Just("postgres"),
            Just("local"),
            Just("poll"),
            Just("valkey"),
            Just("sync"),
            Just("127.0.0.1:0"),
            Just("${HOME}"),
            Just("${UNSET_VAR}"),
            Just("${"),
            Just("$${x}"),
        ]
        .prop_map(|s| format!("{s:?}")),
        "[^\n]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("[1, \"a\", {}]".to_string()),
        Just("{ a = 1 }".to_string()),
    ];
    prop_oneof![
        Just("[server]".to_string()),
        Just("[[layer]]".to_string()),
        Just("[layer]".to_string()),
        Just("[[layers]]".to_string()),
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "[^\n]{0,30}",
    ]
}

/// A listening address.
fn addr() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

/// A `[server]` table with every value in its valid range.
fn server() -> impl Strategy<Value = ServerConfig> {
    (
        (addr(), addr(), proptest::option::of("[A-Za-z0-9_.-]{1,32}")),
        (64..=1_048_576usize, 1..=65_536usize, 1..=86_400u64),
        (1024..=16_777_216usize, 1..=1_000_000usize, 1..=3600u64),
        (32..=128u8, 1..=86_400u64),
    )
        .prop_flat_map(|(ids, sizes, rest, edge)| {
            let (max_body, total, header) = rest;
            (1..=total).prop_map(move |per_ip| ServerConfig {
                tcp: ids.0,
                http: ids.1,
                instance: ids.2.clone(),
                max_line_bytes: sizes.0,
                outbound_queue: sizes.1,
                session_idle_secs: sizes.2,
                max_body_bytes: max_body,
                max_connections_per_ip: per_ip,
                max_connections: total,
                header_read_timeout_secs: header,
                ipv6_prefix: edge.0,
                join_timeout_secs: edge.1,
                irc: None,
                irc_ping_secs: 120,
                ..ServerConfig::default()
            })
        })
}

fn route() -> impl Strategy<Value = RouteConfig> {
    (
        1..=65_536usize,
        prop_oneof![Just(DirectoryMode::Auto), Just(DirectoryMode::Local)],
        2..=3600u64,
        1..=10_000usize,
    )
        .prop_flat_map(|(chars, directory, ttl, per_session)| {
            (per_session.max(1)..=10_000_000usize).prop_map(move |max_rooms| RouteConfig {
                max_message_chars: chars,
                directory,
                presence_ttl_secs: ttl,
                max_rooms_per_session: per_session,
                max_rooms,
                max_rooms_per_ip: max_rooms.min(500),
                ..RouteConfig::default()
            })
        })
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![Just(Durability::Async), Just(Durability::Sync)]
}

/// A store and a fan-out backend that can go together.
fn persist_and_fanout() -> impl Strategy<Value = (PersistConfig, FanoutConfig)> {
    let postgres = (
        1..=64u32,
        durability(),
        1..=1_000_000usize,
        1..=10_000usize,
        100..=15_000u64,
    )
        .prop_map(|(pool_size, durability, queue, batch, sync_timeout_ms)| {
            PersistConfig::Postgres {
                url: "postgres://chatd@db:5432/chatd".into(),
                pool_size,
                durability,
                queue,
                batch,
                sync_timeout_ms,
            }
        });
    let shared = prop_oneof![
        Just(FanoutConfig::Local {}),
        (10..=60_000u64, 100..=600_000u64).prop_map(|(interval_ms, gap_wait_ms)| {
            FanoutConfig::Poll {
                interval_ms,
                gap_wait_ms,
            }
        }),
        (1..=64usize, 10..=60_000u64).prop_map(|(pool_size, gap_wait_ms)| FanoutConfig::Valkey {
            url: "redis://valkey:6379".into(),
            pool_size,
            gap_wait_ms,
        }),
    ];
    let sqlite = (
        "[a-z][a-z/_-]{0,20}\\.db",
        durability(),
        1..=1_000_000usize,
        1..=10_000usize,
        100..=15_000u64,
    )
        .prop_map(
            |(path, durability, queue, batch, sync_timeout_ms)| PersistConfig::Sqlite {
                path,
                durability,
                queue,
                batch,
                sync_timeout_ms,
            },
        );
    prop_oneof![
        (postgres, shared),
        (sqlite, Just(FanoutConfig::Local {})),
        Just((PersistConfig::None {}, FanoutConfig::Local {})),
    ]
}

/// A whole valid pipeline: parse and route first, history and persist (each optional) in either
/// order, fan-out last.
fn pipeline() -> impl Strategy<Value = PipelineConfig> {
    (
        server(),
        route(),
        proptest::option::of(1..=10_000usize),
        any::<bool>(),
        persist_and_fanout(),
        any::<bool>(),
    )
        .prop_map(
            |(server, route, history, with_persist, (persist, fanout), persist_first)| {
                let mut middle = Vec::new();
                if let Some(capacity) = history {
                    middle.push(LayerConfig::History(HistoryConfig { capacity }));
                }
                // A shared fan-out backend needs the store, so it is only optional without one.
                if with_persist || fanout.is_cross_instance() {
                    middle.push(LayerConfig::Persist(persist));
                }
                if persist_first {
                    middle.reverse();
                }
                let mut layers = vec![
                    LayerConfig::Parse(ParseConfig {}),
                    LayerConfig::Route(route),
                ];
                layers.extend(middle);
                layers.push(LayerConfig::Fanout(fanout));
                PipelineConfig {
                    source: "generated.toml".into(),
                    server,
                    layers,
                }
            },
        )
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any text: a config or a list of problems, never a panic, and every problem says something.
    #[test]
    fn the_loader_never_panics_on_toml_ish_text(
        lines in proptest::collection::vec(toml_ish_line(), 0..24),
    ) {
        let text = lines.join("\n");
        if let Err(errors) = load::parse("fuzz.toml", &text, &|name| {
            (name == "HOME").then(|| "/home/x".to_string())
        }) {
            prop_assert!(!errors.errors.is_empty());
            for error in &errors.errors {
                prop_assert!(!error.to_string().trim().is_empty());
            }
        }
    }

    /// Any bytes that happen to be a string: the same.
    #[test]
    fn the_loader_never_panics_on_any_string(text in text()) {
        let _ = load::parse("fuzz.toml", &text, &|_| None);
    }

    /// A valid config, written out as TOML, reads back as the same config: every option that
    /// `--check` prints (or leaves out as a default) means what it says.
    #[test]
    fn a_valid_config_round_trips_through_toml(config in pipeline()) {
        prop_assert_eq!(load::revalidate(&config), Ok(()));
        let text = toml::to_string(&config).unwrap();
        let again = load::parse("generated.toml", &text, &|_| None);
        prop_assert_eq!(again.as_ref(), Ok(&config), "{}", text);
    }
}
