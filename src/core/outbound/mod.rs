//! A session's outbound queue: bounded in events and in bytes, and costing (almost) nothing while
//! it is empty.
//!
//! The core pushes [`Event`]s into it without ever waiting ([`Outbound::try_send`]); the adapter
//! that owns the session awaits them ([`Inbox::recv`]) and writes them to its socket or stream.
//!
//! **Three bounds** ([`QueueLimits`]): a queue holds at most `events` events and `bytes` bytes
//! (`[server] outbound_queue` and `outbound_queue_bytes`), and all queues together hold at most
//! what the instance's [`QueueBudget`] allows (`[server] max_queued_bytes`). The event bound alone
//! is not a memory bound: 2,048 events of 16 bytes and 2,048 of 8 KiB are the same count. An
//! event is charged [`event_bytes`], its text plus a fixed overhead; a chat message is shared by every
//! queue that holds it, so for a queue's own bound the charge is what the queue keeps alive,
//! counted once per queue: an upper bound, never an underestimate. The instance's budget counts
//! such a shared payload once ([`Broadcast`], `super::budget`). A push that would break a bound
//! is refused
//! ([`Refused::Full`], saying which bound), and the session layer turns that into the
//! slow-consumer rule (`super::session`).
//!
//! Over the instance's budget, who is cut is [`QueueBudget`]'s to decide (`super::budget`).
//!
//! **Why not `tokio::sync::mpsc`?** It would work, and did, but a bounded tokio channel allocates
//! a block of 32 slots when it is created and keeps up to four such blocks after a burst, about
//! 1 to 4 KiB for every connection, idle or not: with ten thousand mostly idle clients that was
//! the largest item of chatd's memory. A session has exactly one reader and a handful of writers
//! that never wait, so a `VecDeque` and the reader's `Waker` behind one short mutex are enough:
//! nothing is allocated until an event arrives, the deque's buffer is given back when it drains,
//! and a send wakes the reader only if it is actually waiting (a burst of 100 events to a busy
//! reader costs one wake-up, not 100).
//! This is the seed's "memory per connection" lesson in code: what an idle connection holds is a
//! design choice.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

pub use super::budget::QueueBudget;
use super::budget::SLOT_BYTES;
use super::event::Event;
use super::message::{ChatMessage, Presence, PresenceKind};

/// What every event is charged beyond its text: the `Event` itself, the queue slot, the `Arc`
/// and struct of a message, and a share of its rendered forms' headers.
pub const EVENT_OVERHEAD: usize = 128;

/// The bytes `event` is charged in a queue: its text (a message's text, nick and room) plus
/// [`EVENT_OVERHEAD`].
pub fn event_bytes(event: &Event) -> usize {
    match event {
        Event::Message(msg) => message_bytes(msg),
        Event::Notice(text) | Event::Error(text) => EVENT_OVERHEAD + text.len(),
        Event::Presence(p) => {
            EVENT_OVERHEAD + 2 * p.nick.as_str().len() + p.room.as_str().len() + presence_text(p)
        }
        Event::Missed(missed) => EVENT_OVERHEAD + missed.room.as_str().len(),
        Event::Direct(d) => EVENT_OVERHEAD + d.text_bytes(),
    }
}

/// The text a presence event carries besides its nick and room: a reason, a topic, modes.
fn presence_text(p: &Presence) -> usize {
    let reason = p.reason.as_deref().map_or(0, str::len);
    reason
        + match &p.kind {
            PresenceKind::Kicked { by, reason } => by.as_str().len() + reason.len(),
            PresenceKind::Topic(text)
            | PresenceKind::Mode(text)
            | PresenceKind::Realname(text)
            | PresenceKind::Away(Some(text)) => text.len(),
            _ => 0,
        }
}

/// The bytes a chat message is charged: its text, nick and room plus [`EVENT_OVERHEAD`] (also
/// what a page of a replay counts, see `layers::route`).
pub fn message_bytes(msg: &ChatMessage) -> usize {
    EVENT_OVERHEAD + msg.text.len() + msg.nick.as_str().len() + msg.room.as_str().len()
}

/// The bounds of one queue and the budget it draws on.
#[derive(Debug, Clone)]
pub struct QueueLimits {
    /// The most events it holds (at least one).
    pub events: usize,
    /// The most bytes it holds, by [`event_bytes`]; one event larger than this is still taken by
    /// an empty queue.
    pub bytes: usize,
    /// The instance's budget, shared by every queue.
    pub budget: QueueBudget,
}

impl QueueLimits {
    /// At most `events` events, with no byte bound and a budget of its own (tests, tools).
    pub fn events(events: usize) -> QueueLimits {
        QueueLimits {
            events,
            bytes: usize::MAX,
            budget: QueueBudget::default(),
        }
    }
}

/// A new queue holding at most `capacity` events (at least one), without a byte bound.
pub fn channel(capacity: usize) -> (Outbound, Inbox) {
    bounded(&QueueLimits::events(capacity))
}

/// A new queue within `limits`.
pub fn bounded(limits: &QueueLimits) -> (Outbound, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: VecDeque::new(),
            bytes: 0,
            senders: 1,
            inbox_gone: false,
            reader: None,
        }),
        limits: QueueLimits {
            events: limits.events.max(1),
            ..limits.clone()
        },
    });
    (
        Outbound {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    limits: QueueLimits,
}

#[derive(Debug)]
struct State {
    /// The events, oldest first.
    events: VecDeque<Queued>,
    bytes: usize,
    senders: usize,
    inbox_gone: bool,
    /// The reader, while it waits for an event; taken (and woken) by the next send.
    reader: Option<Waker>,
}

/// One event in a queue, with what it was charged.
#[derive(Debug)]
struct Queued {
    event: Event,
    /// Its [`event_bytes`], for the queue's own bound.
    bytes: usize,
    /// Whether its payload is shared with other queues ([`Broadcast`]): then the instance's
    /// budget was charged its slot here and its payload once for all of them; otherwise `bytes`.
    shared: bool,
}

// `SLOT_BYTES` is what a shared entry is charged for itself: it must hold one.
const _: () = assert!(std::mem::size_of::<Queued>() <= SLOT_BYTES);

impl Queued {
    /// What the budget gets back as this entry leaves its queue: what the entry took itself
    /// (its slot, or all of it), and its payload's charge if it was the payload's last holder.
    /// Call once per entry: it counts the entry out of its payload's holders.
    fn give_back(&self) -> usize {
        if !self.shared {
            return self.bytes;
        }
        let last = self.event.holders().is_some_and(|h| h.release_one());
        SLOT_BYTES + if last { self.bytes } else { 0 }
    }
}

/// One event on its way to many queues (a room's message or notice to its members): its payload
/// is charged to the instance's budget once for all of them, with the slots of the queues it
/// expects, before the first queue takes it (see `super::budget`). Use one per event:
/// [`Outbound::try_send_shared`] with each queue. An event without a shared payload (a notice of
/// one session's own) is charged to each queue in full, and so is one offered to a queue on
/// another budget than the first queue's: each budget gets back exactly what it was charged.
/// A payload handed out again by a later broadcast while still held is charged once, so every
/// broadcast of it must reach queues on the same budget: every queue of a chatd process draws on
/// its one instance budget (TCP, IRC, event streams and the HTTP sessions' own queues).
#[derive(Debug, Default)]
pub struct Broadcast {
    /// How many queues the event is expected to reach: their slots are paid in one update.
    expected: usize,
    /// Slots paid for and not yet taken by a queue, given back when the broadcast is dropped.
    prepaid: usize,
    /// How many queues took the event.
    taken: usize,
    /// Once the first queue is offered the event: the budget, the event (whose payload counts
    /// its holders) and the payload's charge.
    started: Option<(QueueBudget, Event, usize)>,
}

impl Broadcast {
    /// A broadcast to about `recipients` queues (a room's members). More or fewer is fine:
    /// queues beyond the count pay their slots one by one, and slots not taken are given back.
    pub fn new(recipients: usize) -> Broadcast {
        Broadcast {
            expected: recipients,
            prepaid: 0,
            taken: 0,
            started: None,
        }
    }

    /// Whether a queue on `budget` may share the payload: the broadcast charges it to the
    /// budget of the first queue it is offered to, and gives it back to that budget only.
    fn draws_on(&self, budget: &QueueBudget) -> bool {
        self.started
            .as_ref()
            .is_none_or(|(charged, _, _)| charged.is(budget))
    }

    /// Whether a queue holding `held` bytes of `budget` may take `event` (this broadcast's,
    /// whose payload is charged `cost`); if so its slot is taken, from the prepaid ones first.
    fn admit(&mut self, budget: &QueueBudget, event: &Event, cost: usize, held: usize) -> bool {
        if self.started.is_none() {
            let fresh = event.holders().is_some_and(|h| h.start());
            let payload = if fresh { cost } else { 0 };
            budget.prepay(payload + SLOT_BYTES * self.expected);
            self.prepaid = self.expected;
            self.started = Some((budget.clone(), event.clone(), cost));
        }
        debug_assert!(
            self.started
                .as_ref()
                .and_then(|(_, first, _)| first.holders().zip(event.holders()))
                .is_some_and(|(first, this)| std::ptr::eq(first, this)),
            "a broadcast hands out one payload"
        );
        if self.prepaid > 0 {
            if !budget.admits(SLOT_BYTES, held) {
                return false;
            }
            self.prepaid -= 1;
        } else if !budget.take(SLOT_BYTES, held) {
            return false;
        }
        self.taken += 1;
        true
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        if let Some((budget, event, cost)) = self.started.take() {
            let nobody = event.holders().is_some_and(|h| h.finish(self.taken));
            budget.give_back(SLOT_BYTES * self.prepaid + if nobody { cost } else { 0 });
        }
    }
}

impl State {
    /// Registers the reader's waker, under the same lock a sender pushes under: a send either
    /// happened before the reader looked (and it took the event) or will find this waker.
    fn wait(&mut self, waker: &Waker) {
        match &mut self.reader {
            Some(reader) => reader.clone_from(waker),
            none => *none = Some(waker.clone()),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing here can panic half-way through an update.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Which bound a refused event would have broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The queue holds this many events already.
    Events(usize),
    /// The event would take the queue over this many bytes.
    Bytes(usize),
    /// All queues of the instance hold this many bytes (their budget) and this one holds more
    /// than its share.
    Instance(usize),
}

impl fmt::Display for Overflow {
    /// The end of the slow reader's farewell: what was waiting, in words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overflow::Events(n) => write!(f, "{n} events waiting"),
            Overflow::Bytes(n) => write!(f, "{} waiting", size(*n)),
            Overflow::Instance(n) => {
                write!(f, "the server's {} for waiting events is used up", size(*n))
            }
        }
    }
}

/// `n` bytes in words: `512 bytes`, `256 KiB`, `128 MiB`.
pub fn size(n: usize) -> String {
    const KIB: usize = 1024;
    match n {
        n if n >= KIB * KIB && n % (KIB * KIB) == 0 => format!("{} MiB", n / (KIB * KIB)),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// Why [`Outbound::try_send`] did not queue an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A bound is reached: the reader is not keeping up.
    Full(Overflow),
    /// The reader is gone.
    Closed,
}

/// The sending side, held by the core's [`Session`](super::Session). Cloning adds a sender.
#[derive(Debug)]
pub struct Outbound {
    shared: Arc<Shared>,
}

impl Outbound {
    /// Queues `event` if the bounds allow, without waiting (see the module docs).
    ///
    /// # Errors
    /// [`Refused`] says why it was not queued; the event is dropped.
    pub fn try_send(&self, event: Event) -> Result<(), Refused> {
        self.push(event, None)
    }

    /// [`Outbound::try_send`] for an event handed to many queues, all with the same
    /// `broadcast`: the budget counts its payload once (see [`Broadcast`]).
    ///
    /// # Errors
    /// As [`Outbound::try_send`].
    pub fn try_send_shared(&self, event: Event, broadcast: &mut Broadcast) -> Result<(), Refused> {
        self.push(event, Some(broadcast))
    }

    fn push(&self, event: Event, broadcast: Option<&mut Broadcast>) -> Result<(), Refused> {
        let limits = &self.shared.limits;
        let cost = event_bytes(&event);
        let mut state = self.shared.lock();
        if state.inbox_gone {
            return Err(Refused::Closed);
        }
        let empty = state.events.is_empty();
        if state.events.len() >= limits.events {
            return Err(Refused::Full(Overflow::Events(limits.events)));
        }
        if !empty && state.bytes.saturating_add(cost) > limits.bytes {
            return Err(Refused::Full(Overflow::Bytes(limits.bytes)));
        }
        // Only a payload that counts its holders can be shared, and only among queues on the
        // budget that was charged it; anything else is this queue's, charged in full.
        let broadcast = broadcast
            .filter(|broadcast| event.holders().is_some() && broadcast.draws_on(&limits.budget));
        let shared = broadcast.is_some();
        let admitted = match broadcast {
            Some(broadcast) => broadcast.admit(&limits.budget, &event, cost, state.bytes),
            None => limits.budget.take(cost, state.bytes),
        };
        if !admitted {
            return Err(Refused::Full(Overflow::Instance(limits.budget.max())));
        }
        if empty {
            limits.budget.holding(true);
        }
        state.bytes += cost;
        state.events.push_back(Queued {
            event,
            bytes: cost,
            shared,
        });
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// The queue's bounds.
    pub fn limits(&self) -> &QueueLimits {
        &self.shared.limits
    }
}

impl Clone for Outbound {
    fn clone(&self) -> Outbound {
        self.shared.lock().senders += 1;
        Outbound {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let reader = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders == 0 {
                state.reader.take()
            } else {
                None
            }
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The receiving side, held by the adapter serving the session.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

impl Inbox {
    /// The next event; `None` once the queue is empty and every [`Outbound`] is gone.
    ///
    /// Cancel-safe: an event is taken from the queue only when this returns it.
    pub async fn recv(&mut self) -> Option<Event> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some(event) = self.pop(&mut state) {
                return Poll::Ready(Some(event));
            }
            if state.senders == 0 {
                return Poll::Ready(None);
            }
            state.wait(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Waits for an event, then takes it and every event queued behind it, oldest first, until
    /// they are charged `max_bytes` (by [`event_bytes`]; the first is taken whatever its size),
    /// and returns them with what they were charged (more than their lines' length: enough for
    /// a buffer to hold them). `None` once the queue is empty and every [`Outbound`] is gone.
    ///
    /// One lock and one budget update for the lot, where [`Inbox::recv`] and
    /// [`Inbox::try_recv`] pay them once per event: under load a reader takes tens of events
    /// per turn. The list is the caller's to drop: a reader keeps none between turns, as the
    /// queue keeps no buffer once drained. Cancel-safe like [`Inbox::recv`].
    pub async fn recv_batch(&mut self, max_bytes: usize) -> Option<(Vec<Event>, usize)> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.events.is_empty() {
                if state.senders == 0 {
                    return Poll::Ready(None);
                }
                state.wait(cx.waker());
                return Poll::Pending;
            }
            let (mut taken, mut budgeted) = (0, 0);
            let mut batch = Vec::with_capacity(state.events.len());
            while let Some(queued) = state.events.pop_front() {
                taken += queued.bytes;
                budgeted += queued.give_back();
                batch.push(queued.event);
                if taken >= max_bytes {
                    break;
                }
            }
            state.bytes -= taken;
            self.given_back(&mut state, budgeted);
            Poll::Ready(Some((batch, taken)))
        })
        .await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        let mut state = self.shared.lock();
        self.pop(&mut state)
    }

    /// The bytes queued now (by [`event_bytes`]).
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    fn pop(&self, state: &mut State) -> Option<Event> {
        let queued = state.events.pop_front()?;
        state.bytes -= queued.bytes;
        self.given_back(state, queued.give_back());
        Some(queued.event)
    }

    /// Returns `bytes` taken out of the queue to the budget (see [`Queued::give_back`]); a queue
    /// left empty stops counting as holding and gives back its buffer.
    fn given_back(&self, state: &mut State, bytes: usize) {
        let budget = &self.shared.limits.budget;
        budget.give_back(bytes);
        if state.events.is_empty() {
            budget.holding(false);
            // Most queues are empty most of the time: none keeps a buffer (4 entries, 128 to
            // 192 bytes, were kept by every one of 10,000 connections); the next event
            // allocates one again.
            state.events = VecDeque::new();
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.inbox_gone = true;
        let budget = &self.shared.limits.budget;
        budget.give_back(state.events.iter().map(Queued::give_back).sum());
        if !state.events.is_empty() {
            budget.holding(false);
        }
        state.bytes = 0;
        state.events = VecDeque::new();
    }
}

#[cfg(test)]
mod tests;
