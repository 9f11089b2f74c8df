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
//!
//! **What is counted: memory, once.** A chat message or a presence notice for a room is one
//! shared payload that every member's queue points at. Charging each queue the whole payload
//! counted a message to a room of 2,000 members 2,000 times: a join storm in such rooms (each
//! join a notice to every member so far) "used up" 128 MiB while the process held about a tenth
//! of that, and cut readers who were only a moment behind. So a payload handed to many queues
//! is taken from the budget once, when it goes from held by no queue to held by some, and given
//! back when the last queue lets it go; each queue is charged only its slot ([`SLOT_BYTES`]).
//! The per-queue bounds still count the whole payload in every queue: what one slow reader alone
//! keeps alive is what they bound.
//!
//! **Who holds a payload: a count inside it** ([`Holders`], a field of the chat message, the
//! presence notice and the missed-messages notice). A queue entry reaches it through the event
//! it holds anyway, so a fan-out adds no handle per recipient. The count is *biased* while the
//! fan-out runs: the broadcast adds a huge constant before the first queue takes the payload and
//! takes it off, less the queues that took it, when it is done. Readers that let the payload go
//! meanwhile cannot bring the count to zero early, so whoever brings it to zero, the last reader
//! or the broadcast itself, knows that nobody holds the payload and gives its charge back (the
//! same trick as biased reference counting). A payload handed out twice while still held is
//! charged once and given back once: only its crossings of zero count.
//!
//! **What it costs: two updates per broadcast, not per recipient.** The budget is one counter
//! that every worker thread updates. A room's fan-out pays the payload and its members' slots in
//! one update before the first queue takes the event (`QueueBudget::prepay`), each queue then
//! only checks the budget (`QueueBudget::admits`), and the slots of queues that refused or
//! were closed are given back in one update at the end: a fan-out to 100 members touches the
//! shared counter twice instead of 100 times, and each member's queue once more as its reader
//! takes the event (one update per batch taken).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a queue is charged for each event whose payload it shares with other queues: its
/// entry in the queue (the event and its charge), rounded up.
pub const SLOT_BYTES: usize = 48;

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

    /// Whether `other` is this budget (a clone of it), not another one.
    pub(super) fn is(&self, other: &QueueBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// How many queues hold at least one event now.
    pub fn queues_holding(&self) -> usize {
        self.inner.holding.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes for a queue that holds `held` bytes already, unless the budget is used
    /// up and that would take the queue beyond its share (see the module docs).
    pub(super) fn take(&self, n: usize, held: usize) -> bool {
        if !self.admits(n, held) {
            return false;
        }
        self.inner.used.fetch_add(n, Ordering::AcqRel);
        true
    }

    /// Whether a queue holding `held` bytes may take `n` more: yes while the budget is not used
    /// up, and beyond it only within the queue's share. Takes nothing.
    pub(super) fn admits(&self, n: usize, held: usize) -> bool {
        let max = self.max();
        let over = self.used().saturating_add(n) > max;
        if over && held > 0 {
            let share = max / self.inner.holding.load(Ordering::Relaxed).max(1);
            if held.saturating_add(n) > share {
                return false;
            }
        }
        true
    }

    /// Takes `n` bytes whatever the budget holds already: slots paid for ahead of a broadcast,
    /// each of which then passes [`QueueBudget::admits`] as its queue takes it.
    pub(super) fn prepay(&self, n: usize) {
        self.inner.used.fetch_add(n, Ordering::AcqRel);
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

/// Added to a payload's [`Holders`] while a broadcast hands it out (see the module docs): far
/// above any number of queues, far below overflow.
const BIAS: usize = usize::MAX / 4;

/// How many queues hold a payload handed to many of them, kept in the payload (see the module
/// docs). Starts at zero; a clone (a copy of the payload) starts at zero too.
#[derive(Default)]
pub struct Holders(AtomicUsize);

impl Holders {
    /// A broadcast of the payload starts: whether nobody held it (then its bytes are to be
    /// charged).
    pub(super) fn start(&self) -> bool {
        self.0.fetch_add(BIAS, Ordering::AcqRel) == 0
    }

    /// The broadcast is done, having handed the payload to `taken` queues: whether nobody holds
    /// it any more (then its bytes are to be given back).
    pub(super) fn finish(&self, taken: usize) -> bool {
        self.release(BIAS - taken)
    }

    /// A queue let the payload go: whether it was the last holder.
    pub(super) fn release_one(&self) -> bool {
        self.release(1)
    }

    fn release(&self, n: usize) -> bool {
        self.0.fetch_sub(n, Ordering::AcqRel) == n
    }
}

impl Clone for Holders {
    /// A copy of a payload is a payload of its own, held by nobody yet.
    fn clone(&self) -> Holders {
        Holders::default()
    }
}

impl PartialEq for Holders {
    /// Who holds a payload is no part of what it says: two equal messages are equal.
    fn eq(&self, _: &Holders) -> bool {
        true
    }
}

impl Eq for Holders {}

impl std::fmt::Debug for Holders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Holders({})", self.0.load(Ordering::Relaxed))
    }
}
