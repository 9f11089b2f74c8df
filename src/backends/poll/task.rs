//! The poll task: every interval, one query for every open room, fed into the stack as remote;
//! then the presence events other instances wrote for those rooms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{LastPoll, PollOptions, Watched, presence};
use crate::backends::gaps::Settler;
use crate::backends::postgres::{PostgresStore, classify};
use crate::backends::{StoreError, stored_message};
use crate::core::ChatService;
use crate::core::{Action, ChatMessage, Hub, Presence, Request, RoomName};

/// The most rows one poll reads; the rest come with the next one. It bounds the memory and the
/// time of a poll after a burst (or after this instance was away).
const MAX_ROWS: i64 = 1000;

/// Every open room's messages above its read point, in seq order: one statement, whatever the
/// number of rooms. `UNNEST` pairs each room with its own point, and each pair is a range scan
/// of the `(room, seq)` index.
const NEW_MESSAGES: &str = "SELECT m.room, m.seq, m.nick, m.body, m.ts_ms \
     FROM UNNEST($1::text[], $2::bigint[]) AS w(room, after) \
     JOIN messages m ON m.room = w.room AND m.seq > w.after \
     ORDER BY m.room, m.seq LIMIT $3";

/// How often old presence events are deleted.
const CLEAN_EVERY: Duration = Duration::from_secs(60);

/// What the poll task needs; see [`super::PollBus::start`].
pub(super) struct Poller {
    pub(super) store: PostgresStore,
    pub(super) watched: Arc<Watched>,
    pub(super) options: PollOptions,
    /// How holes that last are settled.
    pub(super) settler: Settler,
    pub(super) stack: ChatService,
    pub(super) hub: Hub,
    /// This instance's name: its own presence events are not read back.
    pub(super) instance: Arc<str>,
    /// The last presence event id read (or skipped).
    pub(super) presence_after: i64,
    /// Told of every poll's outcome: the bus's health.
    pub(super) last_poll: Arc<LastPoll>,
}

impl Poller {
    /// Polls until `stop` is cancelled. A failed poll is logged and counted; the next one reads
    /// from the same points, so nothing is missed, only late.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cleaned = Instant::now();
        let mut polled = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Under pub/sub, a healthy bus needs the safety net only every `idle`.
            if let Some((idle, degraded)) = &self.options.idle
                && !degraded.load(std::sync::atomic::Ordering::Relaxed)
                && polled.elapsed() < *idle
            {
                continue;
            }
            polled = Instant::now();
            let messages = match self.poll_once().await {
                Ok(fed) => {
                    self.hub
                        .stats()
                        .bus_received
                        .fetch_add(fed as u64, std::sync::atomic::Ordering::Relaxed);
                    if fed > 0 {
                        tracing::trace!(fed, "poll");
                    }
                    Ok(())
                }
                Err(err) => {
                    self.hub.stats().bus_failures.inc();
                    tracing::warn!("poll failed, retrying next interval: {err}");
                    Err(err.to_string())
                }
            };
            self.settle_gaps().await;
            let presence = self.poll_presence().await.map_err(|err| {
                self.hub.stats().bus_failures.inc();
                tracing::warn!("presence poll failed, retrying next interval: {err}");
                format!("presence: {err}")
            });
            // A poll counts as a success only when both reads did: with no room open the message
            // read asks nothing, and the presence read is what shows the database answers.
            match messages.and(presence) {
                Ok(()) => self.last_poll.succeeded(),
                Err(why) => self.last_poll.failed(why),
            }
            if cleaned.elapsed() >= CLEAN_EVERY {
                cleaned = Instant::now();
                if let Err(err) = self.clean_presence().await {
                    tracing::warn!("cannot delete old presence events: {err}");
                }
            }
        }
    }

    /// Reads the presence events other instances wrote for the open rooms since the last poll
    /// and feeds them into the stack. Best effort, see the module docs: an event that commits
    /// after a newer one was read is skipped.
    async fn poll_presence(&mut self) -> Result<(), StoreError> {
        let rooms: HashMap<RoomName, i64> = self
            .watched
            .lock()
            .iter()
            .map(|(name, watch)| (name.clone(), watch.presence_floor))
            .collect();
        let (rows, newest) = {
            let conn = self.store.conn().await?;
            // The newest id first, then the rows up to it: a row committed between the two
            // statements is read by the next poll, not skipped.
            let newest: i64 = conn
                .query_one(presence::NEWEST, &[])
                .await
                .map_err(classify)?
                .get(0);
            if rooms.is_empty() || newest <= self.presence_after {
                self.presence_after = self.presence_after.max(newest);
                return Ok(());
            }
            let names: Vec<&str> = rooms.keys().map(RoomName::as_str).collect();
            let rows = conn
                .query(
                    presence::SINCE,
                    &[
                        &names,
                        &self.presence_after,
                        &newest,
                        &&*self.instance,
                        &presence::MAX_ROWS,
                    ],
                )
                .await
                .map_err(classify)?;
            (rows, newest)
        };
        // All of them read: on from the newest. A full page: on from its last row.
        self.presence_after = match rows.last() {
            Some(last) if rows.len() as i64 >= presence::MAX_ROWS => last.get(0),
            _ => newest,
        };
        let names: HashMap<&str, (&RoomName, i64)> = rooms
            .iter()
            .map(|(room, floor)| (room.as_str(), (room, *floor)))
            .collect();
        for row in rows {
            let Some(&(room, floor)) = names.get(row.get::<_, &str>(1)) else {
                continue;
            };
            if row.get::<_, i64>(0) <= floor {
                continue; // from before the room was opened here
            }
            match presence::decode(room, row.get(2), row.get(3), row.get(4), row.get(5)) {
                Ok(change) => {
                    self.hub.stats().bus_received.inc();
                    self.feed_presence(change).await;
                }
                Err(err) => tracing::warn!(room = %room, "unreadable presence event: {err}"),
            }
        }
        Ok(())
    }

    /// Sends one presence change from another instance through the stack.
    async fn feed_presence(&self, change: Arc<Presence>) {
        let room = change.room.clone();
        let req = Request::anonymous(Action::Presence(change));
        if let Err(err) = self.stack.clone().oneshot(req).await {
            tracing::warn!(%room, "polled presence event refused by the stack: {err}");
        }
    }

    /// Deletes the presence events older than [`presence::KEEP`]: every instance has read them.
    async fn clean_presence(&self) -> Result<(), StoreError> {
        let conn = self.store.conn().await?;
        let deleted = conn
            .execute(presence::CLEAN, &[&presence::KEEP])
            .await
            .map_err(classify)?;
        if deleted > 0 {
            tracing::debug!(deleted, "old presence events deleted");
        }
        Ok(())
    }

    /// One poll: reads what is new in every open room and feeds it into the stack. Returns how
    /// many messages it fed.
    async fn poll_once(&self) -> Result<usize, StoreError> {
        let points = self.read_points();
        if points.is_empty() {
            return Ok(0);
        }
        let (rooms, afters): (Vec<&str>, Vec<i64>) = points
            .iter()
            .map(|(room, after)| (room.as_str(), crate::backends::db_seq(*after)))
            .unzip();
        let rows = {
            let conn = self.store.conn().await?;
            conn.query(NEW_MESSAGES, &[&rooms, &afters, &MAX_ROWS])
                .await
                .map_err(classify)?
        };
        let names: HashMap<&str, &RoomName> = points.iter().map(|(r, _)| (r.as_str(), r)).collect();
        let mut fresh = Vec::new();
        for row in rows {
            let Some(room) = names.get(row.get::<_, &str>(0)) else {
                continue;
            };
            let msg = stored_message(room, row.get(1), row.get(2), row.get(3), row.get(4));
            match msg {
                Ok(msg) => fresh.push(msg),
                Err(err) => tracing::warn!(room = %room, "unreadable stored message: {err}"),
            }
        }
        let fresh = self.not_in_hand(fresh);
        let fed = fresh.len();
        for msg in fresh {
            self.feed(msg).await;
        }
        Ok(fed)
    }

    /// Each open room with the seq to read after: what it has settled. Forgets the seqs in hand
    /// that the room has settled since. A room still opening is left for the next poll: where it
    /// starts is not decided yet.
    fn read_points(&self) -> Vec<(RoomName, u64)> {
        let mut watched = self.watched.lock();
        watched
            .iter_mut()
            .filter_map(|(name, watch)| {
                let room = self.hub.rooms().get(name).filter(|r| r.is_open())?;
                let after = room.delivered();
                watch.in_hand = watch.in_hand.split_off(&(after + 1));
                Some((name.clone(), after))
            })
            .collect()
    }

    /// Keeps the messages this instance does not have in hand yet, and marks them in hand.
    fn not_in_hand(&self, messages: Vec<Arc<ChatMessage>>) -> Vec<Arc<ChatMessage>> {
        let mut watched = self.watched.lock();
        messages
            .into_iter()
            .filter(|msg| {
                watched
                    .get_mut(&msg.room)
                    .is_some_and(|watch| watch.in_hand.insert(msg.seq))
            })
            .collect()
    }

    /// Sends one message through the stack, as a message from another instance. If the stack
    /// refuses it, it is no longer in hand, so the next poll tries again.
    async fn feed(&self, msg: Arc<ChatMessage>) {
        let (room, seq) = (msg.room.clone(), msg.seq);
        let req = Request::anonymous(Action::Publish(msg));
        if let Err(err) = self.stack.clone().oneshot(req).await {
            tracing::warn!(%room, seq, "polled message refused by the stack: {err}");
            if let Some(watch) = self.watched.lock().get_mut(&room) {
                watch.in_hand.remove(&seq);
            }
        }
    }

    /// Settles, with the other instances, every hole a room has had for longer than
    /// `gap_wait` (see `backends::gaps`), and feeds what that finds. A hole holding a seq that was
    /// numbered here is left alone: the local stack always either delivers that seq or abandons
    /// it.
    async fn settle_gaps(&self) {
        let gaps: Vec<_> = {
            let watched = self.watched.lock();
            watched
                .iter()
                .filter_map(|(name, watch)| {
                    let room = self.hub.rooms().get(name).filter(|r| r.is_open())?;
                    let gap = room.gap()?;
                    watch
                        .in_hand
                        .range(gap.from..=gap.to)
                        .next()
                        .is_none()
                        .then_some((room, gap))
                })
                .collect()
        };
        for (room, gap) in gaps {
            for msg in self.settler.settle(&room, &gap).await {
                self.hub.stats().gap_fills.inc();
                self.feed(msg).await;
            }
        }
    }
}
