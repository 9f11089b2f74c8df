//! Logs: `tracing` events on stderr, as human-readable text or as one JSON object per line.
//!
//! `RUST_LOG` filters them as everywhere in the tracing ecosystem (`RUST_LOG=chatd=debug`,
//! `RUST_LOG=warn`; `info` when unset). Text is for a terminal; JSON (`--log-format json`) is for
//! a log shipper: every line is one object with `timestamp`, `level`, `target` and `fields`
//! (whose `message` is the text), so fields such as `room` or `seq` stay searchable.
//!
//! Text is coloured only when stderr is a terminal (and `NO_COLOR` is unset): a log file or a
//! pipe gets plain text, without escape codes to strip.

use std::io::IsTerminal;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: `format` on stderr, filtered by `RUST_LOG` (default `info`).
/// Call it once, first thing; a second call is ignored.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(err) = installed {
        eprintln!("chatd: logging was set up already: {err}");
    }
}
