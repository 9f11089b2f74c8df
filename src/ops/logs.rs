//! Logs: `tracing` events on stderr, as human-readable text or as one JSON object per line.
//!
//! `RUST_LOG` filters them as everywhere in the tracing ecosystem (`RUST_LOG=chatd=debug`,
//! `RUST_LOG=warn`; `info` when unset). Text is for a terminal; JSON (`--log-format json`) is for
//! a log shipper: every line is one object with `timestamp`, `level`, `target` and `fields`
//! (whose `message` is the text), so fields such as `room` or `seq` stay searchable.
//!
//! Text is coloured only when stderr is a terminal (and `NO_COLOR` is unset): a log file or a
//! pipe gets plain text, without escape codes to strip.
//!
//! **Levels an operator can trust.** A level says whose doing a line is, so that an alert on
//! `ERROR` wakes somebody only for the server's own faults:
//!
//! | level | for | examples |
//! |---|---|---|
//! | `error` | the server's own faults: something it should do and could not | a message not stored, an HTTP `500` |
//! | `warn` | the server degraded, or a summary of what clients are refused | a store retrying; "refused 812 connections over their limits in the last 60 s" |
//! | `info` | what the server does, and a client-caused `503` | listening, stopping; a `/join` refused because the server is full |
//! | `debug` | every single refusal a client causes, and each HTTP request | a `429`, a line over the rate limit, a cross-site request refused |
//!
//! A client can cause as many refusals as it likes, so none of them is logged above `debug` one
//! by one: each kind of refusal is counted by a [`Throttle`], which says at most once a minute
//! how many there were ("... in the last 60 s"), at `warn`. A flood costs the log one line a
//! minute per kind, and the operator still learns that it happens and how much.
//!
//! **A log that cannot be written loses lines, never work.** Writing to stderr can fail: the
//! file it goes to is on a full disk, or the pipe it goes to has lost its reader (a log collector
//! that stopped). Such a line is dropped. Left to itself, `tracing-subscriber` would report the
//! failed write on stderr with `eprintln!`, which panics when stderr fails, and so would panic
//! whichever task logged: a connection, a request, the store's writer (and with it every later
//! message). So its own error report is turned off, and the lines `main` prints itself go
//! through [`stderr_line`]. `tests/it/faults/disk.rs` runs chatd with its log pipe closed and
//! with its log on a full disk.
//!
//! **Secrets.** No log line carries a session token, at any level: the HTTP adapter logs a
//! request's path with its `session=` query value replaced (`adapters::http::routes`), and no
//! header is ever logged. `tests/it/abuse/` greps a `RUST_LOG=trace` log for the token.

use std::fmt::Display;
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(err) = installed {
        stderr_line(format_args!("chatd: logging was set up already: {err}"));
    }
}

/// Writes `line` and a newline to stderr, dropping it if stderr cannot take it (see the module
/// docs): `eprintln!` would panic instead.
pub fn stderr_line(line: impl Display) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How often a [`Throttle`] speaks at most.
pub const THROTTLE_PERIOD: Duration = Duration::from_secs(60);

/// Counts events of one kind (say, connections refused over the per-address limit) and says when
/// a warning about them is due: for the first event, then at most once per [`THROTTLE_PERIOD`],
/// with how many there were since the last warning. Meant to live in a `static` next to the code
/// that counts, one per kind:
///
/// ```
/// use chatd::ops::logs::Throttle;
/// static REFUSED: Throttle = Throttle::new();
/// if let Some(refused) = REFUSED.hit() {
///     tracing::warn!(refused, "connections refused over their limits (in the last 60 s at most)");
/// }
/// ```
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    /// When the last warning was due; `None` before the first event.
    warned_at: Option<Instant>,
    /// Events counted since then, this one included once it is reported.
    count: u64,
}

impl Throttle {
    /// A throttle that has counted nothing.
    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(ThrottleState {
                warned_at: None,
                count: 0,
            }),
        }
    }

    /// Counts one event. When a warning is due (the first event, or the first after a
    /// [`THROTTLE_PERIOD`] since the last warning), returns the events counted since the last
    /// warning, this one included, and starts counting afresh.
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.count += 1;
        let due = state
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= THROTTLE_PERIOD);
        if !due {
            return None;
        }
        state.warned_at = Some(now);
        Some(std::mem::take(&mut state.count))
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_speaks_for_the_first_event_then_once_a_period_with_the_count() {
        let throttle = Throttle::new();
        let start = Instant::now();
        assert_eq!(throttle.hit_at(start), Some(1));
        for i in 1..1000 {
            let now = start + THROTTLE_PERIOD * i / 1000;
            assert_eq!(throttle.hit_at(now), None, "event {i} is only counted");
        }
        assert_eq!(
            throttle.hit_at(start + THROTTLE_PERIOD),
            Some(1000),
            "999 counted in the period, and this one"
        );
        assert_eq!(throttle.hit_at(start + THROTTLE_PERIOD), None);
        assert_eq!(throttle.hit_at(start + 5 * THROTTLE_PERIOD), Some(2));
    }
}
