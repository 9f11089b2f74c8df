//! chatd's integration tests, in one test binary: `cargo test --test it`.
//!
//! Each module is one suite that used to be a binary of its own (`tcp_chat`, `cluster_valkey`,
//! ...); they share one build of the harness in `support/` and one link of the crate, which is
//! what a change to `src/` costs CI. A suite runs alone with a filter on its module path:
//! `cargo test --test it tcp_chat::`, and one test with its full name and `--exact`:
//! `cargo test --test it -- --exact readme::the_readme_curl_commands_work`.
//!
//! The suites share one process, so nothing here may change what is global to it (environment
//! variables, the working directory, process limits) behind another test's back. The one global
//! they share is the `tracing` subscriber, installed once by [`support::logs`].

mod support;

mod abuse;
mod abuse_memory;
mod bad_input;
mod browser;
mod chaos;
mod cli;
mod cluster_poll;
mod cluster_presence;
mod cluster_valkey;
mod consistency;
mod faults;
mod http;
mod irc;
mod limits;
mod ops;
mod persist_postgres;
mod persist_sqlite;
mod properties;
mod ratelimit;
mod readme;
mod tcp_chat;
mod tcp_commands;
