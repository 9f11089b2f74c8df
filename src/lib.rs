//! chatd: a small, fast chat server that teaches distributed-systems fundamentals by being real.
//!
//! People connect with netcat (a line protocol over TCP) or a browser, join rooms and chat with
//! IRC-style slash commands. Both adapters feed ONE tower `Service` stack whose layers (parse,
//! route, history, persist, fan-out) and backends are chosen by a TOML pipeline file.
//!
//! Where to start reading:
//! * [`pipeline`]: the TOML file and how it becomes a stack;
//! * [`layers`]: one file per layer, each explaining what it does and teaches;
//! * [`core`]: sessions, rooms, messages, the ring buffer; no sockets;
//! * [`adapters`]: TCP (and HTTP) translating bytes to and from core types;
//! * [`backends`]: the stores (SQLite, PostgreSQL) and the write-behind writer;
//! * [`ops`]: logs, `/metrics` and `/readyz`: what an operator sees;
//! * [`server`]: binding listeners and the shutdown story.

#![warn(missing_docs)]

pub mod adapters;
pub mod backends;
pub mod config;
pub mod core;
pub mod layers;
pub mod ops;
pub mod pipeline;
pub mod server;
