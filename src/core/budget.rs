//! The instance's budget of bytes waiting in outbound queues (`[server] max_queued_bytes`).
//!
//! Every queue (`super::outbound`) takes from it what it holds and gives it back as its reader
//! takes events. The per-queue bounds stop one slow reader; this one stops many of them together
//! from adding up to more than the configuration allows.
//!
//! **Who is cut when the budget is used up.** Not whoever happens to receive the next
//! event: a reader that keeps up holds an event or two for a moment, and must not pay for others'
//! backlog. Over budget, a queue may still grow up to its *share*, the budget divided by the
//! queues that hold anything; a queue beyond its share is refused, so the readers furthest behind
//! are cut first, and an empty queue always takes its event. Queues below their share can only
//! fill up to it, and those above it cannot grow, so all of them together hold at most about
//! twice the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes every outbound queue of the instance holds together, against a maximum
/// (`[server] max_queued_bytes`). Cheap to clone: clones share the count.
#[derive(Debug, Clone)]
pub struct QueueBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    used: AtomicUsize,
    max: AtomicUsize,
    /// Queues holding at least one event: the budget's share per queue divides by this.
    holding: AtomicUsize,
}

impl Default for QueueBudget {
    /// A budget without a maximum (until [`QueueBudget::set_max`]).
    fn default() -> QueueBudget {
        QueueBudget::new(usize::MAX)
    }
}

impl QueueBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> QueueBudget {
        QueueBudget {
            inner: Arc::new(BudgetInner {
                used: AtomicUsize::new(0),
                max: AtomicUsize::new(max),
                holding: AtomicUsize::new(0),
            }),
        }
    }

    /// Sets the maximum (at start, from the configuration).
    pub fn set_max(&self, max: usize) {
        self.inner.max.store(max, Ordering::Relaxed);
    }

    /// The maximum.
    pub fn max(&self) -> usize {
        self.inner.max.load(Ordering::Relaxed)
    }

    /// The bytes queued now, in all queues.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// How many queues hold at least one event now.
    pub fn queues_holding(&self) -> usize {
        self.inner.holding.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes for a queue that holds `held` bytes already, unless the budget is used
    /// up and that would take the queue beyond its share (see the module docs).
    pub(super) fn take(&self, n: usize, held: usize) -> bool {
        let max = self.max();
        let over = self.used().saturating_add(n) > max;
        if over && held > 0 {
            let share = max / self.inner.holding.load(Ordering::Relaxed).max(1);
            if held.saturating_add(n) > share {
                return false;
            }
        }
        self.inner.used.fetch_add(n, Ordering::AcqRel);
        true
    }

    /// A queue went from empty to holding something (`true`), or back.
    pub(super) fn holding(&self, now: bool) {
        let holding = &self.inner.holding;
        match now {
            true => holding.fetch_add(1, Ordering::Relaxed),
            false => holding.fetch_sub(1, Ordering::Relaxed),
        };
    }

    pub(super) fn give_back(&self, n: usize) {
        // Never below zero, even if a bug gave back twice: a budget that wraps would refuse all.
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}
