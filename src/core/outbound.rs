//! A session's outbound queue: bounded, and costing (almost) nothing while it is empty.
//!
//! The core pushes [`Event`]s into it without ever waiting ([`Outbound::try_send`]); the adapter
//! that owns the session awaits them ([`Inbox::recv`]) and writes them to its socket or stream.
//!
//! **Why not `tokio::sync::mpsc`?** It would work, and did, but a bounded tokio channel allocates
//! a block of 32 slots when it is created and keeps up to four such blocks after a burst, about
//! 1 to 4 KiB for every connection, idle or not: with ten thousand mostly idle clients that was
//! the largest item of chatd's memory. A session has exactly one reader and a handful of writers
//! that never wait, so a `VecDeque` behind a short mutex plus a [`Notify`] is enough: nothing is
//! allocated until an event arrives, and the deque's buffer is given back when it drains.
//! This is the seed's "memory per connection" lesson in code: what an idle connection holds is a
//! design choice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::event::Event;

/// A drained queue whose buffer holds more events than this gives the buffer back.
const KEEP_WHEN_EMPTY: usize = 8;

/// A new queue holding at most `capacity` events (at least one).
pub fn channel(capacity: usize) -> (Outbound, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: VecDeque::new(),
            senders: 1,
            inbox_gone: false,
        }),
        ready: Notify::new(),
        capacity: capacity.max(1),
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
    /// Woken when an event arrives or the last sender goes.
    ready: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct State {
    events: VecDeque<Event>,
    senders: usize,
    inbox_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing here can panic half-way through an update.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why [`Outbound::try_send`] did not queue an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds `capacity` events already: the reader is not keeping up.
    Full,
    /// The reader is gone.
    Closed,
}

/// The sending side, held by the core's [`Session`](super::Session). Cloning adds a sender.
#[derive(Debug)]
pub struct Outbound {
    shared: Arc<Shared>,
}

impl Outbound {
    /// Queues `event` if there is room, without waiting.
    ///
    /// # Errors
    /// [`Refused`] says why it was not queued; the event is dropped.
    pub fn try_send(&self, event: Event) -> Result<(), Refused> {
        let mut state = self.shared.lock();
        if state.inbox_gone {
            return Err(Refused::Closed);
        }
        if state.events.len() >= self.shared.capacity {
            return Err(Refused::Full);
        }
        state.events.push_back(event);
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// The most events the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
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
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
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
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(event) = Self::pop(&mut state) {
                    return Some(event);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            // A `notify_one` that lands between the unlock above and this await is kept as a
            // permit, so the wake-up cannot be missed; a stale permit only costs another look.
            self.shared.ready.notified().await;
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        Self::pop(&mut self.shared.lock())
    }

    fn pop(state: &mut State) -> Option<Event> {
        let event = state.events.pop_front()?;
        if state.events.is_empty() && state.events.capacity() > KEEP_WHEN_EMPTY {
            state.events = VecDeque::new();
        }
        Some(event)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.inbox_gone = true;
        state.events = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(n: usize) -> Event {
        Event::notice(n.to_string())
    }

    fn text(event: Event) -> String {
        event.text().trim_start_matches("* ").to_string()
    }

    #[tokio::test]
    async fn bounded_in_order_and_refuses_when_full() {
        let (tx, mut rx) = channel(2);
        assert_eq!(tx.try_send(notice(1)), Ok(()));
        assert_eq!(tx.try_send(notice(2)), Ok(()));
        assert_eq!(tx.try_send(notice(3)), Err(Refused::Full));
        assert_eq!(text(rx.recv().await.unwrap()), "1");
        assert_eq!(tx.try_send(notice(4)), Ok(()));
        assert_eq!(text(rx.try_recv().unwrap()), "2");
        assert_eq!(text(rx.try_recv().unwrap()), "4");
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn recv_wakes_for_a_later_event() {
        let (tx, mut rx) = channel(4);
        let reader = tokio::spawn(async move { rx.recv().await.map(text) });
        tokio::task::yield_now().await;
        tx.try_send(notice(7)).unwrap();
        assert_eq!(reader.await.unwrap().as_deref(), Some("7"));
    }

    #[tokio::test]
    async fn ends_when_every_sender_is_gone_after_draining() {
        let (tx, mut rx) = channel(4);
        let other = tx.clone();
        tx.try_send(notice(1)).unwrap();
        drop(tx);
        other.try_send(notice(2)).unwrap();
        drop(other);
        assert_eq!(text(rx.recv().await.unwrap()), "1");
        assert_eq!(text(rx.recv().await.unwrap()), "2");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_reader_sees_the_last_sender_go() {
        let (tx, mut rx) = channel(4);
        let reader = tokio::spawn(async move { rx.recv().await.is_none() });
        tokio::task::yield_now().await;
        drop(tx);
        assert!(reader.await.unwrap());
    }

    #[test]
    fn sending_to_a_dropped_inbox_is_refused() {
        let (tx, rx) = channel(4);
        drop(rx);
        assert_eq!(tx.try_send(notice(1)), Err(Refused::Closed));
    }

    #[test]
    fn a_drained_queue_gives_its_buffer_back() {
        let (tx, mut rx) = channel(1000);
        for n in 0..100 {
            tx.try_send(notice(n)).unwrap();
        }
        assert!(rx.shared.lock().events.capacity() >= 100);
        while rx.try_recv().is_some() {}
        assert_eq!(rx.shared.lock().events.capacity(), 0);
    }
}
