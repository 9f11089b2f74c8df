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
//! So the server watches how busy it is: every tenth of a second a probe reads how long the
//! runtime's worker threads were busy since the last look ([`Pace::spawn`]; tokio counts it).
//! From [`BEHIND_PERCENT`] busy, a connection that has just written waits [`LINGER`] before it
//! takes its next events, which then go out in one write ([`Linger`]); after a [`HOLD`] under
//! [`CALM_PERCENT`], connections write eagerly again. A quiet server never lingers, so its
//! latency is untouched; a busy one trades a few milliseconds for fewer, larger writes, and
//! gets them back with interest, since it was queueing anyway (docs/BENCHMARKS.md, "Write
//! pacing", has the figures: at 1,000 readers of 1,000 messages a second the p99 halves).
//!
//! The same idea runs network cards (interrupt moderation), Nagle's algorithm and Kafka's
//! `linger.ms`: batch under load, not at rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the probe looks: ten wake-ups a second, idle or not.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The share of the workers' time spent busy (in percent) from which the server counts as
/// behind. Measured on two cores: 50 readers of 1,000 messages a second keep the workers 20 to
/// 30% busy; 1,000 readers of 500 or 1,000, 55 to 100%.
pub const BEHIND_PERCENT: u64 = 50;

/// The share below which a look counts as calm.
pub const CALM_PERCENT: u64 = 35;

/// How long a server that was behind must be caught up before connections write eagerly again.
pub const HOLD: Duration = Duration::from_secs(1);

/// How long a connection that has just written waits before its next write while the server is
/// behind.
pub const LINGER: Duration = Duration::from_millis(10);

/// Whether the server is behind, shared by every connection (see the module docs). Cheap to
/// clone and to ask.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    behind: Arc<AtomicBool>,
}

impl Pace {
    /// Starts the probe on the current runtime; it runs until `shutdown`.
    pub fn spawn(shutdown: CancellationToken) -> Pace {
        let pace = Pace::default();
        let behind = pace.behind.clone();
        tokio::spawn(async move {
            let metrics = tokio::runtime::Handle::current().metrics();
            let workers = metrics.num_workers();
            let busy_now = || -> Duration {
                (0..workers)
                    .map(|worker| metrics.worker_total_busy_duration(worker))
                    .sum()
            };
            let workers = u32::try_from(workers).unwrap_or(u32::MAX);
            let (mut busy_then, mut then) = (busy_now(), Instant::now());
            let mut calm_since: Option<Instant> = None;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(PROBE_EVERY) => {}
                }
                let (busy, now) = (busy_now(), Instant::now());
                let share = busy_percent(busy.saturating_sub(busy_then), (now - then) * workers);
                (busy_then, then) = (busy, now);
                let was = behind.load(Ordering::Relaxed);
                let is = if was {
                    // Pacing is what lets the server catch up: it stops only after a whole
                    // `HOLD` of calm, not at the first calm probe.
                    if share >= CALM_PERCENT {
                        calm_since = None;
                    }
                    now.saturating_duration_since(*calm_since.get_or_insert(now)) < HOLD
                } else {
                    share >= BEHIND_PERCENT
                };
                if is != was {
                    calm_since = None;
                    behind.store(is, Ordering::Relaxed);
                    tracing::debug!(behind = is, busy_percent = share, "write pacing");
                }
            }
        });
        pace
    }

    /// Whether a connection that has just written should wait [`LINGER`] before its next
    /// write.
    pub fn behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }
}

/// One connection's side of pacing: after each write, whether to wait before the next.
#[derive(Debug)]
pub struct Linger {
    pace: Pace,
    last_write: Instant,
}

impl Linger {
    /// A connection's pacing, by the server's `pace`.
    pub fn new(pace: Pace) -> Linger {
        Linger {
            pace,
            last_write: Instant::now(),
        }
    }

    /// Called after a write: when the connection should take its next events, if it should
    /// wait. It waits only while the server is behind, and only if it wrote less than two
    /// [`LINGER`]s ago: a connection whose lines come further apart than that would wait for
    /// nothing to join them (a room of 2,000 where each reader gets 20 lines a second).
    pub fn after_write(&mut self) -> Option<Instant> {
        if !self.pace.behind() {
            return None;
        }
        let now = Instant::now();
        let dense = now < self.last_write + 2 * LINGER;
        self.last_write = now;
        dense.then_some(now + LINGER)
    }
}

/// `busy` out of `all`, in percent.
fn busy_percent(busy: Duration, all: Duration) -> u64 {
    let percent = busy.as_micros() * 100 / all.as_micros().max(1);
    u64::try_from(percent).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind() -> Pace {
        let pace = Pace::default();
        pace.behind.store(true, Ordering::Relaxed);
        pace
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_lingers_only_while_the_server_is_behind_and_its_lines_come_close() {
        let mut calm = Linger::new(Pace::default());
        assert_eq!(calm.after_write(), None, "a quiet server writes at once");

        let mut busy = Linger::new(behind());
        tokio::time::advance(LINGER / 2).await;
        let now = Instant::now();
        assert_eq!(
            busy.after_write(),
            Some(now + LINGER),
            "lines close together wait"
        );
        tokio::time::advance(3 * LINGER).await;
        assert_eq!(
            busy.after_write(),
            None,
            "a line long after the last one has nothing to wait for"
        );
        assert!(
            busy.after_write().is_some(),
            "the next close one waits again"
        );
    }

    #[test]
    fn busy_shares_are_percentages_of_the_workers_time() {
        let ms = Duration::from_millis;
        assert_eq!(busy_percent(ms(50), ms(200)), 25);
        assert_eq!(busy_percent(ms(200), ms(200)), 100);
        assert!(
            busy_percent(ms(5), Duration::ZERO) >= 100,
            "no time at all counts as all busy, not as a division by zero"
        );
    }

    /// A worker kept busy (a task that blocks its thread, as a flood of work would) makes the
    /// server count as behind; once it is idle for a whole `HOLD`, it no longer does.
    #[tokio::test]
    async fn the_probe_sees_a_busy_runtime_and_then_a_calm_one() {
        let stop = CancellationToken::new();
        let pace = Pace::spawn(stop.clone());
        assert!(!pace.behind());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !pace.behind() {
            assert!(std::time::Instant::now() < deadline, "never behind");
            std::thread::sleep(PROBE_EVERY); // the only worker, busy
            tokio::task::yield_now().await; // the probe gets its turn
        }
        while pace.behind() {
            assert!(std::time::Instant::now() < deadline, "never calm again");
            tokio::time::sleep(PROBE_EVERY).await;
        }
        stop.cancel();
    }
}
