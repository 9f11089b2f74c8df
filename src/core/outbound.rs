//! A session's outbound queue: bounded, and costing (almost) nothing while it is empty.
//!
//! The core pushes [`Event`]s into it without ever waiting ([`Outbound::try_send`]); the adapter
//! that owns the session awaits them ([`Inbox::recv`]) and writes them to its socket or stream.
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
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

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
            reader: None,
        }),
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
    capacity: usize,
}

#[derive(Debug)]
struct State {
    events: VecDeque<Event>,
    senders: usize,
    inbox_gone: bool,
    /// The reader, while it waits for an event; taken (and woken) by the next send.
    reader: Option<Waker>,
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
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
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
            if let Some(event) = Self::pop(&mut state) {
                return Poll::Ready(Some(event));
            }
            if state.senders == 0 {
                return Poll::Ready(None);
            }
            // Registered under the same lock a sender pushes under: a send either happened
            // before this look (and was popped above) or will find this waker.
            match &mut state.reader {
                Some(waker) => waker.clone_from(cx.waker()),
                none => *none = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
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
    fn a_burst_wakes_a_waiting_reader_once() {
        use std::future::Future;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::task::Context;

        use futures_util::task::{ArcWake, waker};

        struct Wakes(AtomicUsize);
        impl ArcWake for Wakes {
            fn wake_by_ref(this: &Arc<Self>) {
                this.0.fetch_add(1, SeqCst);
            }
        }
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = channel(16);
        {
            let mut recv = std::pin::pin!(rx.recv());
            assert!(recv.as_mut().poll(&mut cx).is_pending());
            for n in 0..10 {
                tx.try_send(notice(n)).unwrap();
            }
            assert_eq!(wakes.0.load(SeqCst), 1, "one wake-up for the whole burst");
            assert!(recv.as_mut().poll(&mut cx).is_ready());
        }
        assert_eq!(rx.try_recv().map(text).as_deref(), Some("1"));
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
