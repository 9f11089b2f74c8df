//! Under load, write less often and more at a time.
//!
//! A connection writes whatever is waiting for it as soon as it can: on a quiet server that is
//! one write per line, and a line reaches its reader a fraction of a millisecond after it was
//! said. Under load that eagerness is what costs. Every write is a system call and, on the
//! reader's side of the kernel, a wake-up, whatever it carries: at 1,000 readers more than half
//! of chatd's time goes to the kernel's TCP path, per write. A server that keeps writing small
//! batches as fast as it can uses all the CPU it is given, and on a shared machine takes it
//! from everything else, its readers included.
//!
//! So each connection watches how long its events wait for it: from the moment the room handed
//! a message to the queues ([`ChatMessage::handed`](crate::core::ChatMessage::handed)) to the
//! moment the connection takes it, net of the time the connection itself was not ready to take
//! anything (it was writing, or pausing on purpose). On a quiet server that is the time the
//! runtime takes to wake a task, some microseconds; on a saturated one it is milliseconds, since
//! every connection waits its turn behind the others. While the wait, smoothed, is above
//! [`BEHIND`], a connection that has just written pauses [`LINGER`] before it takes its next
//! events, which then go out in one write; once it falls below [`CAUGHT_UP`], it writes eagerly
//! again. A quiet server never pauses, so its latency is untouched; a saturated one trades a few
//! milliseconds for fewer, larger writes, and gets them back, since it was queueing anyway
//! (`docs/BENCHMARKS.md`, "Write pacing", has the figures).
//!
//! **Why per connection, from its own waits.** An earlier version asked the runtime how busy its
//! workers were: a server at half its CPU is not behind, and a threshold on busy time paced
//! readers that did not need it (workload A's p99 went from 2 to 10 ms). The wait a connection
//! sees is the thing pacing is meant to cure, costs no timer, and needs no clock reading beyond
//! the one the delivery-latency histogram takes per write (and one per message, in the room).
//!
//! The same idea runs network cards (interrupt moderation), Nagle's algorithm and Kafka's
//! `linger.ms`: batch under load, not at rest.

use std::time::{Duration, Instant};

/// How long a connection that is behind waits after a write before it takes its next events.
pub const LINGER: Duration = Duration::from_millis(10);

/// The smoothed wait of a connection's events (net of its own pauses) from which it paces.
pub const BEHIND: Duration = Duration::from_millis(2);

/// The smoothed wait below which a pacing connection writes eagerly again.
pub const CAUGHT_UP: Duration = Duration::from_micros(500);

/// One connection's pacing: how long its events wait, and whether it should pause after a
/// write (see the module docs).
#[derive(Debug)]
pub struct Pace {
    /// When the connection was last ready to take events: its last take, or the end of the
    /// pause it took after it.
    ready: Instant,
    /// Its last two takes.
    last_take: Instant,
    take_before: Instant,
    /// The events' wait, smoothed (an exponential moving average over takes, weight 1/8), in
    /// microseconds.
    wait_us: u64,
    behind: bool,
}

impl Default for Pace {
    fn default() -> Pace {
        let now = Instant::now();
        Pace {
            ready: now,
            last_take: now,
            take_before: now,
            wait_us: 0,
            behind: false,
        }
    }
}

impl Pace {
    /// The connection took a batch of events `now`, the oldest chat message of which the room
    /// handed out at `oldest_handed` (`None` for a batch without one: nothing to measure).
    pub fn took(&mut self, now: Instant, oldest_handed: Option<Instant>) {
        if let Some(handed) = oldest_handed {
            let waited = now.saturating_duration_since(handed.max(self.ready));
            let waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
            self.wait_us = (self.wait_us.saturating_mul(7).saturating_add(waited_us)) / 8;
            let wait = Duration::from_micros(self.wait_us);
            self.behind = match self.behind {
                true => wait >= CAUGHT_UP,
                false => wait >= BEHIND,
            };
        }
        self.take_before = self.last_take;
        self.last_take = now;
        self.ready = now;
    }

    /// Called once what was taken last is written: when to take the next events, if the
    /// connection should wait. It waits only while it is behind, and only if its takes come
    /// less than two [`LINGER`]s apart: a connection whose lines come further apart than that
    /// would wait for nothing to join them (a room of 2,000 where each reader gets 20 lines a
    /// second).
    pub fn after_write(&mut self) -> Option<Instant> {
        let dense = self.last_take.saturating_duration_since(self.take_before) < 2 * LINGER;
        if !(self.behind && dense) {
            return None;
        }
        self.ready = self.last_take + LINGER;
        Some(self.ready)
    }

    /// Whether the connection paces now.
    pub fn behind(&self) -> bool {
        self.behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader takes a message every `every` (after any pause it is told to take), each
    /// message taken the next of `waits` after the room handed it out; returns how many pauses
    /// it was told to take.
    fn run(
        pace: &mut Pace,
        start: Instant,
        every: Duration,
        waits: impl IntoIterator<Item = Duration>,
    ) -> usize {
        let mut now = start;
        let mut pauses = 0;
        for wait in waits {
            let handed = now;
            now += wait;
            pace.took(now, Some(handed));
            if let Some(until) = pace.after_write() {
                pauses += 1;
                now = now.max(until);
            }
            now += every;
        }
        pauses
    }

    fn times(n: usize, wait: Duration) -> impl Iterator<Item = Duration> {
        std::iter::repeat_n(wait, n)
    }

    #[test]
    fn a_reader_whose_events_wait_microseconds_never_pauses() {
        let mut pace = Pace::default();
        let waits = [50, 80, 1_500, 60, 40]; // one slow turn among quick ones
        let waits = waits
            .iter()
            .cycle()
            .take(500)
            .map(|us| Duration::from_micros(*us));
        let every = Duration::from_millis(1);
        assert_eq!(
            run(&mut pace, Instant::now(), every, waits),
            0,
            "a quiet reader writes at once"
        );
    }

    #[test]
    fn a_reader_whose_events_wait_milliseconds_pauses_and_stops_once_caught_up() {
        let mut pace = Pace::default();
        let start = Instant::now();
        let every = Duration::from_millis(1);
        run(&mut pace, start, every, times(20, Duration::from_millis(8)));
        assert!(pace.behind());
        // While pacing, what the reader waits on purpose is not counted as its events' wait.
        let later = start + Duration::from_secs(1);
        run(
            &mut pace,
            later,
            every,
            times(40, Duration::from_micros(100)),
        );
        assert!(!pace.behind(), "caught up: eager again");
    }

    #[test]
    fn a_reader_whose_lines_come_far_apart_does_not_pause() {
        let mut pace = Pace::default();
        let start = Instant::now();
        let sparse = Duration::from_millis(50);
        run(
            &mut pace,
            start,
            sparse,
            times(20, Duration::from_millis(8)),
        );
        assert!(pace.behind());
        let now = start + Duration::from_secs(2);
        pace.took(now, Some(now - Duration::from_millis(8)));
        pace.took(now + sparse, Some(now + sparse - Duration::from_millis(8)));
        assert_eq!(pace.after_write(), None, "nothing would join its next line");
    }
}
