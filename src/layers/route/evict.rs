//! The sweep that evicts idle rooms from memory (`core::rooms` says which, and why it is safe).
//!
//! An `Action::EvictIdleRooms` arrives every fraction of `route.room_idle_secs` (from a task of
//! `pipeline::build`). The rooms that have been quiet long enough are taken out of the table;
//! each one then gives back what it holds, in the order a clean shutdown does: first the seqs
//! it reserved and did not use (`Sequencer::give_back`; a room never opened has none), then,
//! through the stack (`Action::CloseRoom`), the bus's subscription or watch (a room that never
//! opened may have one: an open subscribes before it reads the store, and the read may have
//! failed or the join been dropped while it waited). Only then may its name be opened again,
//! by the full open path, which subscribes first and reads the store after: a message published
//! meanwhile is in the store, one published later arrives live.
//!
//! If the seqs cannot be given back (the store is down), the room goes back into memory as it
//! was and a later sweep tries again; evicting it anyway would leave the rest of its block as a
//! jump in the numbering.

use tower::BoxError;

use super::Ctx;
use crate::core::rooms::Evicted;
use crate::core::{Action, Reply, Request};
use crate::layers::{Inner, call_inner};

impl<S: Inner> Ctx<'_, S> {
    /// Evicts the rooms that have been idle for `room_idle_secs` (see the module docs).
    pub(super) async fn evict_idle_rooms(&mut self) -> Result<Reply, BoxError> {
        let evicted = self.hub().rooms().take_idle(self.shared.room_idle);
        for room in evicted {
            self.evict(room).await;
        }
        Ok(Reply::default())
    }

    async fn evict(&mut self, evicted: Evicted) {
        let name = evicted.room.name.clone();
        // Never opened, a room reserved nothing; but a bus may listen to it all the same (an
        // open subscribes before it reads the store, and that read may have failed, or the
        // join been dropped while it waited), so it is closed like the others.
        let given_back = match evicted.room.is_open() {
            true => self.shared.sequencer.give_back(&evicted.room).await,
            false => Ok(()),
        };
        let evicted = match given_back {
            Ok(()) => evicted,
            Err(err) => match self.hub().rooms().restore(evicted) {
                Ok(()) => {
                    tracing::warn!(room = %name, "idle room kept in memory: cannot give back its unused seqs ({err})");
                    return;
                }
                Err(evicted) => {
                    tracing::warn!(room = %name, "idle room evicted without giving back its unused seqs ({err}): its numbering will jump");
                    evicted
                }
            },
        };
        let close = Request::anonymous(Action::CloseRoom(name.clone()));
        if let Err(err) = call_inner(&mut self.inner, close).await {
            tracing::warn!(room = %name, "closing an evicted room failed: {err}");
        }
        tracing::debug!(room = %name, "idle room evicted from memory");
        self.hub().rooms().closed(evicted);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use tower::{Layer, ServiceExt, service_fn};

    use super::super::RouteLayer;
    use crate::backends::mock::Mock;
    use crate::backends::sequencer::{BLOCK, LocalSequencer};
    use crate::backends::{LocalDirectory, Store};
    use crate::core::ChatService;
    use crate::core::{
        Action, Command, Connect, Hub, Inbox, Outcome, Protocol, Reply, Request, RoomName, Sent,
        SessionId, ask,
    };
    use crate::layers::route::RouteConfig;

    /// The route layer over `store` (numbering in memory, reserving there), with an inner stack
    /// that opens rooms from the store, delivers what is published and records what it closes.
    fn stack(hub: &Hub, store: &Arc<Mock>, closed: &Closed) -> ChatService {
        let (inner_hub, inner_store, inner_closed) = (hub.clone(), store.clone(), closed.clone());
        let inner = service_fn(move |req: Request| {
            let (hub, store, closed) =
                (inner_hub.clone(), inner_store.clone(), inner_closed.clone());
            async move {
                match &req.action {
                    Action::OpenRoom(open) => {
                        if open.room.as_str().starts_with("hanging") {
                            std::future::pending::<()>().await; // a store that never answers
                        }
                        // Subscribed first: while the store is down, the bus still brings a
                        // message before the read fails.
                        if store.down.load(std::sync::atomic::Ordering::SeqCst)
                            && !open.room.as_str().starts_with("silent")
                            && let Some(room) = hub.rooms().get(&open.room)
                        {
                            let name = open.room.as_str();
                            room.commit(crate::core::message::sample(name, 7, "far", "bus"));
                        }
                        open.answer(store.open_room(&open.room, 10).await?)
                    }
                    Action::Publish(msg) => {
                        hub.rooms().get_or_create(&msg.room).commit(msg.clone());
                    }
                    Action::CloseRoom(room) => closed.lock().unwrap().push(room.clone()),
                    _ => {}
                }
                Ok::<_, tower::BoxError>(Reply::default())
            }
        });
        route_over(hub, store, ChatService::new(inner))
    }

    /// The route layer over `inner`, numbering in memory and reserving in `store`, with rooms
    /// idle at once (every sweep may evict).
    fn route_over(hub: &Hub, store: &Arc<Mock>, inner: ChatService) -> ChatService {
        let config = RouteConfig {
            room_idle_secs: 0,
            ..RouteConfig::default()
        };
        let sequencer = Arc::new(LocalSequencer::new(
            Some(store.clone() as Arc<dyn Store>),
            Arc::from("test"),
        ));
        let directory = Arc::new(LocalDirectory::new(hub.clone()));
        let layer = RouteLayer::new(&config, hub.clone(), sequencer, directory, 10, None);
        ChatService::new(layer.layer(inner))
    }

    /// The rooms the stack was asked to close.
    type Closed = Arc<Mutex<Vec<RoomName>>>;

    /// A hub that evicts rooms with stored history, the stack over a mock store with what it
    /// closed, and `ann`'s session (with its inbox, kept open).
    async fn ann() -> (Hub, Arc<Mock>, Closed, ChatService, (SessionId, Inbox)) {
        let hub = Hub::new("test");
        hub.rooms().evict_stored_rooms();
        let store = Arc::new(Mock::default());
        let closed = Arc::new(Mutex::new(Vec::new()));
        let svc = stack(&hub, &store, &closed);
        let (connect, inbox) = Connect::sample(Protocol::Tcp, Some("ann"), 64);
        let id = ask(&mut svc.clone(), None, connect)
            .await
            .expect("a session")
            .answer
            .session;
        (hub, store, closed, svc, (id, inbox))
    }

    async fn call(svc: &ChatService, req: Request) -> Reply {
        svc.clone().oneshot(req).await.expect("answered")
    }

    /// `id` joins `room`.
    fn join(id: SessionId, room: &RoomName) -> Request {
        Request::from(id, Action::Command(Command::Join(room.clone())))
    }

    /// Two sweeps: the first finds the quiet rooms idle, the second evicts them (their
    /// `room_idle_secs` is 0).
    async fn sweep(svc: &ChatService) {
        for _ in 0..2 {
            call(svc, Request::anonymous(Action::EvictIdleRooms)).await;
        }
    }

    async fn say(svc: &ChatService, id: SessionId, text: &str) -> u64 {
        let say = Command::Say {
            room: None,
            text: text.into(),
        };
        match call(svc, Request::from(id, Action::Command(say)))
            .await
            .outcome
        {
            Outcome::Sent(Sent { seq, .. }) => seq,
            other => panic!("not sent: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_idle_room_gives_back_its_seqs_then_closes_and_reopens_where_it_stopped() {
        let (hub, store, closed, svc, (id, _inbox)) = ann().await;
        let general = RoomName::parse("general").unwrap();
        call(&svc, join(id, &general)).await;
        for n in 1..=3 {
            assert_eq!(say(&svc, id, &format!("m{n}")).await, n);
        }
        assert_eq!(store.reserved.lock().unwrap()[&general], BLOCK);
        call(
            &svc,
            Request::from(id, Action::Command(Command::Leave(None))),
        )
        .await;

        // The store is down: the seqs cannot be given back, so the room stays as it was.
        store.set_down(true);
        sweep(&svc).await;
        assert!(hub.rooms().get(&general).is_some(), "kept in memory");
        assert!(closed.lock().unwrap().is_empty());

        store.set_down(false);
        sweep(&svc).await;
        assert!(hub.rooms().get(&general).is_none(), "evicted");
        assert_eq!(
            store.reserved.lock().unwrap()[&general],
            3,
            "the rest given back"
        );
        assert_eq!(*closed.lock().unwrap(), vec![general.clone()]);
        assert_eq!(hub.stats().rooms_evicted.get(), 1);

        call(&svc, join(id, &general)).await;
        assert_eq!(say(&svc, id, "again").await, 4, "no jump after the reopen");
    }

    #[tokio::test]
    async fn a_room_whose_opening_failed_is_closed_when_it_is_evicted() {
        // An open subscribes before it reads the store. When the read fails, the open closes
        // what it subscribed; the room never starts, and the bus may have brought it a message
        // meanwhile: idle, it is evicted and closed like an opened room.
        let (hub, store, closed, svc, (id, _inbox)) = ann().await;
        let general = RoomName::parse("general").unwrap();
        store.set_down(true);
        assert!(
            svc.clone().oneshot(join(id, &general)).await.is_err(),
            "the store is down"
        );
        let closes = closed.lock().unwrap().clone();
        assert_eq!(closes, vec![general.clone()], "by the failed open");
        assert!(
            hub.rooms().get(&general).is_some(),
            "kept: it holds a message"
        );
        sweep(&svc).await;
        assert!(hub.rooms().get(&general).is_none(), "evicted");
        let closes = closed.lock().unwrap().clone();
        assert_eq!(
            closes,
            vec![general.clone(), general],
            "and by the eviction"
        );
    }

    #[tokio::test]
    async fn a_room_whose_failed_open_closed_what_it_asked_is_freed_at_once() {
        // With a bus that keeps per-room state, a room whose open failed and was closed again
        // holds nothing there: like any unused room, it goes with the join that created it.
        let (hub, store, closed, svc, (id, _inbox)) = ann().await;
        hub.rooms().keep_opened_rooms();
        let silent = RoomName::parse("silent").unwrap();
        store.set_down(true);
        assert!(
            svc.clone().oneshot(join(id, &silent)).await.is_err(),
            "the store is down"
        );
        assert_eq!(*closed.lock().unwrap(), vec![silent.clone()]);
        assert!(hub.rooms().get(&silent).is_none(), "freed with the join");
    }

    #[tokio::test]
    async fn a_room_whose_open_was_dropped_half_way_is_closed_when_it_is_evicted() {
        // The open asked the bus to listen, then the join was dropped (a `timeout` layer, a
        // client gone) while the store's read hung: nothing ran to close what the bus holds.
        // With a bus that keeps per-room state, the room stays for eviction to close it.
        let (hub, _store, closed, svc, (id, _inbox)) = ann().await;
        hub.rooms().keep_opened_rooms();
        let hanging = RoomName::parse("hanging").unwrap();
        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            svc.clone().oneshot(join(id, &hanging)),
        );
        assert!(dropped.await.is_err(), "the open hangs until dropped");
        assert!(closed.lock().unwrap().is_empty(), "nothing closed it");
        assert!(
            hub.rooms().get(&hanging).is_some(),
            "kept for eviction: the bus may listen to it"
        );
        sweep(&svc).await;
        assert!(hub.rooms().get(&hanging).is_none(), "evicted");
        assert_eq!(*closed.lock().unwrap(), vec![hanging], "and closed");
    }

    /// What the bus below route listens to: an `OpenRoom` that reaches it subscribes its room,
    /// a `CloseRoom` unsubscribes it.
    type Listening = Arc<Mutex<HashSet<RoomName>>>;

    /// The route layer over `store`, above a bus that records what it listens to and takes its
    /// time: an open waits 0 to 19 ms and fails one time in five, a publish waits 0 to 4 ms.
    fn wobbly_stack(hub: &Hub, store: &Arc<Mock>, listening: &Listening, seed: u64) -> ChatService {
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let (hub_in, store_in, listening_in) = (hub.clone(), store.clone(), listening.clone());
        let inner = service_fn(move |req: Request| {
            let (hub, store, listening, rng) = (
                hub_in.clone(),
                store_in.clone(),
                listening_in.clone(),
                rng.clone(),
            );
            async move {
                let (wait, fails) = {
                    let mut rng = rng.lock().unwrap();
                    (rng.random_range(0..20), rng.random_range(0..5) == 0)
                };
                match &req.action {
                    Action::OpenRoom(open) => {
                        listening.lock().unwrap().insert(open.room.clone());
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        if fails {
                            return Err("the store is not answering".into());
                        }
                        open.answer(store.open_room(&open.room, 10).await?)
                    }
                    Action::Publish(msg) => {
                        tokio::time::sleep(Duration::from_millis(wait / 4)).await;
                        hub.rooms().get_or_create(&msg.room).commit(msg.clone());
                    }
                    Action::CloseRoom(room) => {
                        listening.lock().unwrap().remove(room);
                    }
                    _ => {}
                }
                Ok::<_, tower::BoxError>(Reply::default())
            }
        });
        route_over(hub, store, ChatService::new(inner))
    }

    /// Rooms the bus listens to that are neither in the table nor closing: nothing would ever
    /// close them.
    fn forgotten(hub: &Hub, listening: &Listening) -> Vec<RoomName> {
        let listening = listening.lock().unwrap();
        let rooms = hub.rooms();
        (listening.iter())
            .filter(|name| rooms.get(name).is_none() && rooms.closing(name).is_none())
            .cloned()
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_given_up_on_anywhere_leave_no_room_listened_to_and_forgotten() {
        // Four users join, leave and talk in five rooms, each request given up on after 1 to
        // 29 ms (a `timeout` layer, a client gone), while the sweep evicts idle rooms every
        // 5 ms. At every sweep, every room the bus listens to must be one the table has or is
        // closing; once everyone has gone, nothing may be left listened to or in memory.
        for seed in 0..20 {
            let hub = Hub::new("test");
            hub.rooms().evict_stored_rooms();
            hub.rooms().keep_opened_rooms();
            let store = Arc::new(Mock::default());
            let listening = Listening::default();
            let svc = wobbly_stack(&hub, &store, &listening, seed);
            let mut users = Vec::new();
            for user in 0..4u64 {
                let (connect, inbox) =
                    Connect::sample(Protocol::Tcp, Some(&format!("u{user}")), 4096);
                let id = ask(&mut svc.clone(), None, connect)
                    .await
                    .expect("a session")
                    .answer
                    .session;
                let svc = svc.clone();
                users.push(tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed * 100 + user);
                    for n in 0..150 {
                        let room =
                            RoomName::parse(&format!("r{}", rng.random_range(0..5))).unwrap();
                        let command = match rng.random_range(0..3) {
                            0 => Command::Join(room),
                            1 => Command::Leave(Some(room)),
                            _ => Command::Say {
                                room: Some(room),
                                text: format!("m{n}"),
                            },
                        };
                        let req = Request::from(id, Action::Command(command));
                        let patience = Duration::from_millis(rng.random_range(1..30));
                        let _ = tokio::time::timeout(patience, svc.clone().oneshot(req)).await;
                    }
                    let _ = svc
                        .clone()
                        .oneshot(Request::from(id, Action::Disconnect))
                        .await;
                    drop(inbox);
                }));
            }
            let mut problems = Vec::new();
            while !users.iter().all(|user| user.is_finished()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = svc
                    .clone()
                    .oneshot(Request::anonymous(Action::EvictIdleRooms))
                    .await;
                for name in forgotten(&hub, &listening) {
                    problems.push(format!(
                        "seed {seed}: the bus listens to {name}, which nothing will close"
                    ));
                }
            }
            for _ in 0..3 {
                let _ = svc
                    .clone()
                    .oneshot(Request::anonymous(Action::EvictIdleRooms))
                    .await;
            }
            let left = listening.lock().unwrap().len();
            if left > 0 || !hub.rooms().is_empty() {
                problems.push(format!(
                    "seed {seed}: after everyone left, {left} rooms listened to and {} in memory",
                    hub.rooms().len()
                ));
            }
            problems.dedup();
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
}
