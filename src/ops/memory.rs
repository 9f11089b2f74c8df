//! Giving memory back after a burst.
//!
//! A join storm (thousands of clients joining rooms of thousands, each join announced to every
//! member so far) fills the outbound queues with millions of small notices for a few seconds;
//! they are written and freed. glibc's `malloc` keeps what was freed for later: it returns only
//! the top of its heap to the system, and one allocation still alive above the freed pages pins
//! them all. So a server that took one burst keeps its peak size for good: 10,000 connections
//! whose live heap is 46 MB kept 116 MB resident after their storm (docs/BENCHMARKS.md, fifth
//! round). `malloc_trim(0)` hands every free page back to the system (it marks them unneeded;
//! nothing that is in use moves) and brought those 116 MB down to 64.
//!
//! **When.** This task reads the process's resident size once a second (`/proc/self/statm`, a
//! few microseconds). Once it has grown by [`GROWTH`] since the last trim (or since the least it
//! has been) and then stopped growing (by less than [`SETTLED`] in a second: the burst is over),
//! the task trims, once, on a blocking thread: a trim walks the heap, 3 to 30 ms after a storm of
//! 10,000 connections, which must not stall a worker that serves connections. A trim that finds
//! nothing to hand back (the memory is in use) makes the size it leaves the new starting point,
//! so trims come one per burst, never one a second.
//!
//! Memory freed without growth first (many connections leaving) is not handed back: malloc
//! reuses it for the next ones. The allocator's own count of free bytes (`mallinfo2`) would see
//! it, but reading that count walks malloc's free lists under each arena's lock, 1 to 5 ms per
//! read in the same storm: too dear to ask every second.
//!
//! **What it teaches.** An allocator trades memory for speed: keeping freed pages makes the next
//! burst cheaper. A server whose load comes in bursts has to decide when that trade stops paying;
//! "once, after each burst" costs one walk of the heap per burst (its time is logged at debug
//! level, with what it gave back).
//!
//! Other allocators (and other C libraries) give memory back on their own, or have no such call:
//! on anything but glibc the task returns at once.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How much the resident size must grow before a trim is worth a walk of the heap.
pub const GROWTH: usize = 16 * 1024 * 1024;

/// Growth below this between two looks counts as settled (pages touched for the first time trickle
/// in on a server at rest).
pub const SETTLED: usize = 1024 * 1024;

/// How long between two looks.
const EVERY: Duration = Duration::from_secs(1);

/// The decision, apart from the system so that it can be tested: fed the resident size once per
/// look, it says when to trim.
#[derive(Debug, Clone, Copy)]
pub struct Trimming {
    /// The resident size after the last trim, or the least seen since.
    base: usize,
    /// The resident size at the previous look.
    last: usize,
}

impl Trimming {
    /// Starts from `resident` bytes now.
    pub fn new(resident: usize) -> Self {
        Trimming {
            base: resident,
            last: resident,
        }
    }

    /// Whether to trim now, `resident` bytes being resident: grown by [`GROWTH`] or more since
    /// the last trim, and by less than [`SETTLED`] since the previous look.
    pub fn look(&mut self, resident: usize) -> bool {
        let growing = resident >= self.last + SETTLED;
        self.last = resident;
        self.base = self.base.min(resident);
        !growing && resident >= self.base + GROWTH
    }

    /// After a trim: `resident` is what it left, the new starting point.
    pub fn trimmed(&mut self, resident: usize) {
        (self.base, self.last) = (resident, resident);
    }
}

/// Looks at the resident size once a second until `stop`, trimming after each burst (see the
/// module docs). Returns at once where the allocator is not glibc's or the size cannot be read.
pub async fn give_back_after_bursts(stop: CancellationToken) {
    let Some(resident) = allocator::resident() else {
        return;
    };
    let mut trimming = Trimming::new(resident);
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(resident) = allocator::resident() else {
            return;
        };
        if !trimming.look(resident) {
            continue;
        }
        let started = Instant::now();
        if tokio::task::spawn_blocking(allocator::trim).await.is_err() {
            return;
        }
        let after = allocator::resident().unwrap_or(resident);
        trimming.trimmed(after);
        let took = started.elapsed();
        tracing::debug!(
            resident,
            after,
            ?took,
            "gave freed memory back to the system"
        );
    }
}

/// The allocator's side: glibc's, and no other.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub mod allocator {
    /// The process's resident size in bytes.
    pub fn resident() -> Option<usize> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: `sysconf` reads a constant of the system; it has no precondition.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * usize::try_from(page).ok()?)
    }

    /// Hands every free page of every arena back to the system.
    pub fn trim() {
        // SAFETY: `malloc_trim` only releases memory no allocation uses; it has no precondition.
        unsafe { libc::malloc_trim(0) };
    }
}

/// The allocator's side: not glibc's, which gives memory back by itself or not at all.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub mod allocator {
    /// Not looked at: there is nothing to do with it.
    pub fn resident() -> Option<usize> {
        None
    }

    /// Nothing to do.
    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn trims_once_after_a_burst_has_settled() {
        let mut t = Trimming::new(12 * MIB);
        assert!(!t.look(20 * MIB), "a small growth is not worth a walk");
        assert!(!t.look(60 * MIB), "still growing: the burst is not over");
        assert!(!t.look(110 * MIB), "still growing");
        assert!(t.look(110 * MIB + MIB / 2), "grown and settled: trim");
        t.trimmed(58 * MIB);
        assert!(!t.look(58 * MIB), "what the trim left is the new start");
        assert!(!t.look(65 * MIB), "7 MiB more is not worth a walk");
        assert!(!t.look(65 * MIB), "settled, still only 7 MiB above");
    }

    #[test]
    fn a_trim_that_gives_nothing_back_is_not_repeated() {
        let mut t = Trimming::new(10 * MIB);
        assert!(!t.look(40 * MIB));
        assert!(t.look(40 * MIB), "settled 30 MiB above the start");
        t.trimmed(40 * MIB);
        for _ in 0..5 {
            assert!(!t.look(40 * MIB), "all of it in use: no trim a second");
        }
        assert!(!t.look(60 * MIB), "the next burst, growing");
        assert!(t.look(60 * MIB), "and settled: trimmed again");
    }

    #[test]
    fn a_shrinking_size_lowers_the_start() {
        let mut t = Trimming::new(50 * MIB);
        assert!(!t.look(20 * MIB), "smaller: the start is 20 MiB now");
        assert!(!t.look(30 * MIB), "growing");
        assert!(!t.look(30 * MIB), "settled, 10 MiB above the start");
        assert!(!t.look(36 * MIB), "growing, 16 MiB above");
        assert!(t.look(36 * MIB), "settled, 16 MiB above");
    }

    /// The allocator's side, for real: memory freed in small pieces, with a few pieces kept alive
    /// among them (as a server's state outlives a storm's queues), stays resident until a trim.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_gives_freed_pages_back() {
        // 128 MiB in pieces of 512 bytes (under malloc's mmap threshold), written to so that
        // they are resident; then all freed but one in 64, which pins the freed pages between
        // them.
        let pieces: Vec<Box<[u8; 512]>> = (0..256 * 1024).map(|_| Box::new([1u8; 512])).collect();
        let kept: Vec<Box<[u8; 512]>> = pieces.into_iter().step_by(64).collect();
        let before = allocator::resident().unwrap();
        allocator::trim();
        let after = allocator::resident().unwrap();
        assert_eq!(kept.len(), 4096);
        assert!(
            before.saturating_sub(after) >= 64 * MIB,
            "a trim gave back {} MiB of ~126 MiB freed (resident {} -> {} MiB)",
            before.saturating_sub(after) / MIB,
            before / MIB,
            after / MIB
        );
    }
}
