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
//! few microseconds). When it is `GROWTH` (16 MiB) or more above the least it has been (at the
//! start, or after a trim) and has stopped growing (by less than `SETTLED`, 1 MiB, in a second),
//! the task trims, on a blocking thread: a trim walks the heap, 3 to 240 ms after a storm of 10,000
//! connections, which must not stall a worker that serves them.
//!
//! The resident size says when memory was taken, never when it was freed, so a trim can come
//! too early: the size stops growing for a second in the middle of a storm, while the queues
//! still hold what they will free a moment later. So a trim that hands back less than `GROWTH`
//! is tried again later, each time twice as late (2 s, 4 s, ... up to `MAX_WAIT`, 64 looks);
//! one that hands back more is followed by the next look. A server whose memory is all
//! in use (many connections, no burst) thus walks its heap about once a minute, and memory
//! freed by many connections leaving goes back within that minute too. The allocator's own count
//! of free bytes (`mallinfo2`) would say exactly when there is something to hand back, but it
//! walks malloc's free lists under each arena's lock, 1 to 5 ms per read after that storm: too
//! dear to read every second.
//!
//! **What it teaches.** An allocator trades memory for speed: keeping freed pages makes the next
//! burst cheaper. A server whose load comes in bursts has to decide when that trade stops paying;
//! "after each burst, and seldom otherwise" costs a walk of the heap per burst and one a minute
//! at most while the memory stays in use (each is logged at debug level, with its time and what
//! it gave back).
//!
//! Other allocators (and other C libraries) give memory back on their own, or have no such call:
//! on anything but glibc the task returns at once.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How much the resident size must grow before a trim is worth a walk of the heap.
const GROWTH: usize = 16 * 1024 * 1024;

/// Growth below this between two looks counts as settled (pages touched for the first time trickle
/// in on a server at rest).
const SETTLED: usize = 1024 * 1024;

/// The most looks skipped after trims that handed back little (see the module docs).
const MAX_WAIT: u32 = 64;

/// How long between two looks.
const EVERY: Duration = Duration::from_secs(1);

/// The decision, apart from the system so that it can be tested: fed the resident size once per
/// look, it says when to trim.
#[derive(Debug, Clone, Copy)]
struct Trimming {
    /// The least resident size seen (at the start, or after a trim).
    floor: usize,
    /// The resident size at the previous look.
    last: usize,
    /// Looks to skip before the next trim.
    wait: u32,
    /// What `wait` was set to after the last trim.
    backoff: u32,
}

impl Trimming {
    /// Starts from `resident` bytes now.
    fn new(resident: usize) -> Self {
        Trimming {
            floor: resident,
            last: resident,
            wait: 0,
            backoff: 0,
        }
    }

    /// Whether to trim now, `resident` bytes being resident: [`GROWTH`] or more above the floor,
    /// grown by less than [`SETTLED`] since the previous look, and no wait pending.
    fn look(&mut self, resident: usize) -> bool {
        let growing = resident >= self.last + SETTLED;
        self.last = resident;
        self.floor = self.floor.min(resident);
        if self.wait > 0 {
            self.wait -= 1;
            return false;
        }
        !growing && resident >= self.floor + GROWTH
    }

    /// After a trim that took the resident size from `before` to `after`: a trim that handed
    /// back [`GROWTH`] or more may be followed by another at the next look, one that handed back
    /// less waits twice as long as the one before it did.
    fn trimmed(&mut self, before: usize, after: usize) {
        self.floor = self.floor.min(after);
        self.last = after;
        self.backoff = if before.saturating_sub(after) >= GROWTH {
            0
        } else {
            (self.backoff * 2).clamp(2, MAX_WAIT)
        };
        self.wait = self.backoff;
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
        trimming.trimmed(resident, after);
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
mod allocator {
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
mod allocator {
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
    fn trims_after_a_burst_has_settled() {
        let mut t = Trimming::new(12 * MIB);
        assert!(!t.look(20 * MIB), "a small growth is not worth a walk");
        assert!(!t.look(60 * MIB), "still growing: the burst is not over");
        assert!(!t.look(110 * MIB), "still growing");
        assert!(t.look(110 * MIB + MIB / 2), "grown and settled: trim");
        t.trimmed(110 * MIB, 20 * MIB);
        assert!(!t.look(20 * MIB), "the trim handed it back");
        assert!(
            !t.look(27 * MIB),
            "7 MiB above the floor is not worth a walk"
        );
        assert!(!t.look(27 * MIB), "settled, still only 7 MiB above");
    }

    #[test]
    fn a_trim_too_early_is_tried_again_later() {
        let mut t = Trimming::new(10 * MIB);
        assert!(!t.look(80 * MIB));
        assert!(
            t.look(80 * MIB),
            "a pause in the middle of a storm looks settled"
        );
        t.trimmed(80 * MIB, 78 * MIB);
        assert!(!t.look(78 * MIB), "handed back little: wait");
        assert!(!t.look(78 * MIB), "wait, 2 looks");
        assert!(
            t.look(78 * MIB),
            "then again: the storm's queues are freed by now"
        );
        t.trimmed(78 * MIB, 30 * MIB);
        assert!(
            t.look(30 * MIB),
            "handed back 48 MiB: no wait, and 20 MiB above the floor"
        );
        t.trimmed(30 * MIB, 30 * MIB);
        assert!(!t.look(30 * MIB), "handed back nothing: wait");
    }

    #[test]
    fn memory_in_use_is_walked_at_most_once_a_minute() {
        let mut t = Trimming::new(10 * MIB);
        let mut trims = Vec::new();
        for second in 0..600 {
            if t.look(100 * MIB) {
                trims.push(second);
                t.trimmed(100 * MIB, 100 * MIB);
            }
        }
        let gaps: Vec<u32> = trims.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(&gaps[..6], [3, 5, 9, 17, 33, 65], "twice as late each time");
        assert!(
            gaps[6..].iter().all(|&gap| gap == 65),
            "then once a minute: {gaps:?}"
        );
    }

    #[test]
    fn a_shrinking_size_lowers_the_floor() {
        let mut t = Trimming::new(50 * MIB);
        assert!(!t.look(20 * MIB), "smaller: the floor is 20 MiB now");
        assert!(!t.look(30 * MIB), "growing");
        assert!(!t.look(30 * MIB), "settled, 10 MiB above the floor");
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
