//! The test process's one `tracing` subscriber, for the in-process servers' logs.
//!
//! A subscriber is global to the process, and every suite runs in this one process: two suites
//! that each installed their own would race, and the loser would see nothing. So there is one,
//! installed by the first [`capture`]: chatd's `info` and above go to the output libtest captures
//! (shown when a test fails), and every warning and error is also kept in memory, so that a test
//! can assert that something was logged ([`warnings`]).
//!
//! The kept lines come from every test that ran in the process so far: a test that counts lines
//! picks out its own by something only it logs (a room name of its own, say).

use std::io::Write;
use std::sync::{Mutex, Once};

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// Every warning and error logged in this process since [`capture`] first ran.
static WARNINGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Installs the process's subscriber, once; later calls do nothing.
pub fn capture() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let shown = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(EnvFilter::new("chatd=info"));
        let kept = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(BoxMakeWriter::new(|| Keep))
            .with_filter(LevelFilter::WARN);
        // Someone else's subscriber (none in this crate) would keep the warnings from being
        // kept; the tests that read them would then fail and say so.
        let _ = tracing_subscriber::registry()
            .with(shown)
            .with(kept)
            .try_init();
    });
}

/// The warnings and errors kept so far, one line each.
pub fn warnings() -> String {
    let kept = WARNINGS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&kept).into_owned()
}

/// A writer that appends to [`WARNINGS`]; the formatter writes each event whole.
struct Keep;

impl Write for Keep {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        WARNINGS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
