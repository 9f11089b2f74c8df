//! Unit tests of the route layer's use of the presence directory, over a scripted directory that
//! plays "the other instances": which nicks they hold, and whether the directory is reachable;
//! and of a room opened while another instance's messages arrive.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::{Route, RouteLayer};
use crate::backends::sequencer::LocalSequencer;
use crate::backends::{Directory, StoreError};
use crate::core::ChatService;
use crate::core::{
    Action, ChatError, Command, Connect, Connected, ErrorKind, Hub, Nick, OpenReplay, Outcome,
    Protocol, Reply, Request, RoomName, SessionId, ask,
};
use crate::layers::route::RouteConfig;

/// Nicks held elsewhere, guest draws to refuse, whether it is down (for claims) or cannot list a
/// room's members, and what it was told.
#[derive(Debug, Default)]
struct Scripted {
    elsewhere: Vec<&'static str>,
    refuse_guests: Mutex<usize>,
    down: bool,
    members_down: bool,
    told: Mutex<Vec<String>>,
}

impl Scripted {
    fn tell(&self, what: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.told.lock().unwrap().push(what);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether another instance holds `nick` (or a look-alike: they share its key).
    fn holds(&self, nick: &Nick) -> bool {
        let held = |n: &&str| Nick::parse(n).is_ok_and(|n| n.key() == nick.key());
        self.elsewhere.iter().any(held)
    }

    fn told(&self) -> Vec<String> {
        self.told.lock().unwrap().clone()
    }
}

impl Directory for Scripted {
    fn claim<'a>(
        &'a self,
        session: SessionId,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let answer = if self.down {
            Err(StoreError::Unavailable("down".into()))
        } else if self.holds(nick) {
            Ok(false)
        } else if nick.as_str().starts_with("guest-") && *self.refuse_guests.lock().unwrap() > 0 {
            *self.refuse_guests.lock().unwrap() -= 1;
            Ok(false)
        } else {
            self.told.lock().unwrap().push(format!("claim {session}"));
            Ok(true)
        };
        Box::pin(std::future::ready(answer))
    }

    fn rename<'a>(
        &'a self,
        _: SessionId,
        old: &'a Nick,
        new: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let free = !self.holds(new);
        if free {
            self.told
                .lock()
                .unwrap()
                .push(format!("rename {old} {new}"));
        }
        Box::pin(std::future::ready(Ok(free)))
    }

    fn release(&self, session: SessionId) -> BoxFuture<'_, Result<(), StoreError>> {
        self.tell(format!("release {session}"))
    }

    fn joined<'a>(&'a self, r: &'a RoomName, n: &'a Nick) -> BoxFuture<'a, Result<(), StoreError>> {
        self.tell(format!("join {r} {n}"))
    }

    fn left<'a>(&'a self, r: &'a RoomName, n: &'a Nick) -> BoxFuture<'a, Result<(), StoreError>> {
        self.tell(format!("leave {r} {n}"))
    }

    fn members<'a>(
        &'a self,
        _: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Vec<Nick>>, StoreError>> {
        let answer = match self.members_down {
            true => Err(StoreError::Unavailable("down".into())),
            false => Ok(Some(vec![nick("faraway")])),
        };
        Box::pin(std::future::ready(answer))
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Vec<(RoomName, usize)>, StoreError>> {
        Box::pin(std::future::ready(Ok(vec![(room("far"), 3)])))
    }
}

fn nick(s: &str) -> Nick {
    Nick::parse(s).unwrap()
}

fn room(s: &str) -> RoomName {
    RoomName::parse(s).unwrap()
}

fn stack(hub: &Hub, directory: &Arc<Scripted>) -> Route<ChatService> {
    let inner = service_fn(|_: Request| std::future::ready(Ok::<_, BoxError>(Reply::default())));
    let layer = RouteLayer::new(
        &RouteConfig::default(),
        hub.clone(),
        Arc::new(LocalSequencer::default()),
        directory.clone(),
        10,
        None,
    );
    layer.layer(ChatService::new(inner))
}

async fn call(svc: &mut Route<ChatService>, req: Request) -> Result<Reply, ChatError> {
    let reply = svc.ready().await.unwrap().call(req).await;
    reply.map_err(|e| ChatError::from_box(&e))
}

async fn connect(svc: &mut Route<ChatService>, nick: Option<&str>) -> Result<Connected, ChatError> {
    let (connect, _) = Connect::sample(Protocol::Tcp, nick, 16);
    match ask(svc, None, connect).await {
        Ok(answered) => Ok(answered.answer),
        Err(err) => Err(ChatError::from_box(&err)),
    }
}

#[tokio::test]
async fn a_nick_held_on_another_instance_is_refused_and_leaves_no_session() {
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted {
        elsewhere: vec!["alice"],
        ..Scripted::default()
    });
    let mut svc = stack(&hub, &directory);
    let err = connect(&mut svc, Some("Alice")).await.unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Conflict, "nick Alice is taken")
    );
    assert!(hub.sessions().is_empty());
}

#[tokio::test]
async fn a_guest_draws_again_when_its_nick_is_held_elsewhere() {
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted {
        refuse_guests: Mutex::new(2),
        ..Scripted::default()
    });
    let mut svc = stack(&hub, &directory);
    let connected = connect(&mut svc, None).await.unwrap();
    assert!(connected.nick.as_str().starts_with("guest-"));
    assert_eq!(
        hub.sessions().len(),
        1,
        "the refused draws left no session behind"
    );
    assert_eq!(directory.told(), ["claim s3"]);
}

#[tokio::test]
async fn an_unreachable_directory_refuses_connects() {
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted {
        down: true,
        ..Scripted::default()
    });
    let mut svc = stack(&hub, &directory);
    let err = connect(&mut svc, Some("bob")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(hub.sessions().is_empty());
}

#[tokio::test]
async fn renames_joins_leaves_and_quits_reach_the_directory_which_answers_users_and_rooms() {
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted {
        elsewhere: vec!["alice"],
        ..Scripted::default()
    });
    let mut svc = stack(&hub, &directory);
    connect(&mut svc, Some("bob")).await.unwrap();
    let id = SessionId(1);
    let command = |c| Request::from(id, Action::Command(c));

    let err = call(&mut svc, command(Command::Nick(nick("alice")))).await;
    assert_eq!(err.unwrap_err().message, "nick alice is taken");
    assert_eq!(hub.sessions().get(id).unwrap().nick(), nick("bob"));
    call(&mut svc, command(Command::Nick(nick("bobby"))))
        .await
        .unwrap();
    call(&mut svc, command(Command::Join(room("rust"))))
        .await
        .unwrap();
    let users = call(&mut svc, command(Command::Users(None))).await.unwrap();
    assert!(matches!(users.outcome, Outcome::Users { nicks, .. } if nicks == [nick("faraway")]));
    let rooms = call(&mut svc, command(Command::Rooms)).await.unwrap();
    assert!(matches!(rooms.outcome, Outcome::Rooms(list) if list == [(room("far"), 3)]));
    call(&mut svc, command(Command::Leave(None))).await.unwrap();
    call(&mut svc, Request::from(id, Action::Disconnect))
        .await
        .unwrap();
    assert_eq!(
        directory.told(),
        [
            "claim s1",
            "rename bob bobby",
            "join rust bobby",
            "leave rust bobby",
            "release s1"
        ]
    );
}

#[tokio::test]
async fn a_join_dropped_while_its_room_opens_leaves_no_room_behind() {
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted::default());
    // Opening a room never finishes here (a store or bus that hangs).
    let inner = service_fn(|req: Request| async move {
        if matches!(req.action, Action::OpenRoom(_)) {
            std::future::pending::<()>().await;
        }
        Ok::<_, BoxError>(Reply::default())
    });
    let layer = RouteLayer::new(
        &RouteConfig::default(),
        hub.clone(),
        Arc::new(LocalSequencer::default()),
        directory.clone(),
        10,
        None,
    );
    let mut svc = layer.layer(ChatService::new(inner));
    let session = connect(&mut svc, Some("ann")).await.unwrap().session;
    let join = Request::from(session, Action::Command(Command::Join(room("lost"))));
    let gave_up =
        tokio::time::timeout(std::time::Duration::from_millis(50), call(&mut svc, join)).await;
    assert!(gave_up.is_err(), "the join is still waiting for the room");
    assert!(
        hub.rooms().get(&room("lost")).is_none(),
        "the room the dropped join created is gone"
    );
}

mod opening {
    use super::super::starting_point;
    use crate::core::message::sample;
    use crate::core::{Page, StoredRoom};

    fn stored(messages: &[u64], skipped: &[u64], numbered: u64) -> StoredRoom {
        StoredRoom {
            newest: Page {
                messages: messages
                    .iter()
                    .map(|s| sample("general", *s, "a", "x"))
                    .collect(),
                skipped: skipped.to_vec(),
                more: false,
            },
            numbered,
            written_ahead: false,
            reserved_by: Some("a".into()),
        }
    }

    #[test]
    fn with_other_instances_a_room_starts_after_the_settled_prefix() {
        // 8 is numbered elsewhere and not stored yet; 9 and 10 are (10 a tombstone).
        let start = starting_point(&stored(&[5, 6, 7, 9], &[10], 12), None, 2);
        assert_eq!(start.at, 7, "not after 9, nor after the counter");
        let held: Vec<(u64, bool)> = start
            .pending
            .iter()
            .map(|(s, m)| (*s, m.is_some()))
            .collect();
        assert_eq!(held, vec![(9, true), (10, false)]);
        let history: Vec<u64> = start.history.iter().map(|m| m.seq).collect();
        assert_eq!(history, vec![6, 7]);
        assert!(!start.history_complete, "5 is older than the memory");
        assert!(start.unknown.is_empty());
    }

    #[test]
    fn alone_a_room_starts_after_everything_numbered_and_a_crash_jump_is_unknown() {
        let start = starting_point(&stored(&[1, 2, 3], &[], 1000), Some(Some("a")), 10);
        assert_eq!(start.at, 1000);
        assert!(start.pending.is_empty());
        assert!(start.history_complete);
        assert_eq!(start.unknown, vec![(4, 1000)], "3 was the last stored");
        // After a second, clean restart the jump is a hole in the stored history: still unknown.
        let later = starting_point(&stored(&[1, 2, 3, 1001], &[], 1001), Some(Some("a")), 10);
        assert_eq!((later.at, later.unknown), (1001, vec![(4, 1000)]));
        let clean = starting_point(&stored(&[1, 2, 3], &[], 3), Some(Some("a")), 10);
        assert_eq!(
            (clean.at, clean.unknown),
            (3, vec![]),
            "a clean stop gave the rest back"
        );
        let ahead = StoredRoom {
            written_ahead: true,
            ..stored(&[1, 2, 3, 1001], &[], 1500)
        };
        assert!(
            starting_point(&ahead, Some(Some("a")), 10)
                .unknown
                .is_empty(),
            "written ahead, whatever was shown is stored"
        );
        let others = starting_point(&stored(&[1, 2, 3], &[], 1000), Some(Some("b")), 10);
        assert_eq!(
            (others.at, others.unknown),
            (1000, vec![]),
            "another instance's reservation: above it, and not this instance's loss"
        );
    }
}

#[test]
fn a_hole_inside_a_history_is_told_in_its_place() {
    use crate::core::HistoryAnswer;
    use crate::core::message::sample;
    // The last 10 of a room that lost 12..=1000 in a crash, with another hole after the last.
    let answer = HistoryAnswer {
        messages: vec![
            sample("r", 10, "a", "ten"),
            sample("r", 11, "a", "eleven"),
            sample("r", 1001, "a", "after"),
        ],
        from: 10,
        missing: vec![(12, 1000), (1002, 1003)],
    };
    let lines: Vec<String> = super::with_messages("header".into(), &room("r"), &answer)
        .iter()
        .map(|event| event.text())
        .collect();
    assert_eq!(
        lines,
        [
            "* header",
            "[r] a: ten",
            "[r] a: eleven",
            "* missed messages #12 to #1000 in r",
            "[r] a: after",
            "* missed messages #1002 to #1003 in r",
        ]
    );
}

/// Route over history over a stand-in for the fan-out and persist layers: while it "reads the
/// store" for an `OpenRoom`, the bus brings another instance's first message, `1`, which the
/// store's answer holds too (a unit test of the layers above it).
fn opening_while_the_bus_delivers(hub: &Hub) -> ChatService {
    use crate::core::message::sample;
    use crate::core::{Page, StoredRoom};
    use crate::layers::history::{HistoryConfig, HistoryLayer};
    let bus_hub = hub.clone();
    let inner = service_fn(move |req: Request| {
        let hub = bus_hub.clone();
        async move {
            if let Action::OpenRoom(open) = &req.action {
                let room = hub.rooms().get(&open.room).expect("created by the join");
                room.commit(sample(open.room.as_str(), 1, "far", "from the bus"));
                let newest = Page {
                    messages: vec![sample(open.room.as_str(), 1, "far", "from the store")],
                    ..Page::default()
                };
                open.answer(StoredRoom {
                    written_ahead: true,
                    ..StoredRoom::from_counter(newest, Some((1, None)))
                });
            }
            Ok::<_, BoxError>(Reply::default())
        }
    });
    let history = HistoryLayer::new(&HistoryConfig::default(), hub.clone());
    let route = RouteLayer::new(
        &RouteConfig::default(),
        hub.clone(),
        Arc::new(LocalSequencer::default()),
        Arc::new(Scripted::default()),
        10,
        None,
    );
    ChatService::new(route.layer(history.layer(ChatService::new(inner))))
}

#[tokio::test]
async fn a_stream_opened_while_the_bus_delivers_the_rooms_first_message_shows_it_once() {
    let hub = Hub::new("b");
    let mut svc = opening_while_the_bus_delivers(&hub);
    let (connect, _inbox) = Connect::sample(Protocol::Http, Some("reader"), 16);
    let session = ask(&mut svc, None, connect)
        .await
        .expect("connected")
        .answer
        .session;
    let opened = OpenReplay {
        room: room("busy"),
        after: None,
    };
    let replayed = ask(&mut svc, Some(session), opened)
        .await
        .expect("a replay")
        .answer;
    let (upto, page) = (replayed.upto, replayed.page);
    let seqs: Vec<u64> = page.answer.messages.iter().map(|m| m.seq).collect();
    assert_eq!((upto, seqs), (1, vec![1]), "the first page shows 1 once");
}

#[tokio::test]
async fn a_room_opened_without_a_store_runs_its_gate_as_usual() {
    // With no store the route layer starts the room itself, at 0: a hole that outlasts the
    // room's bound is then given up on (a room never started would wait, holding the newest).
    use crate::core::message::sample;
    use crate::core::room::MAX_PENDING;
    let hub = Hub::new("test");
    let mut svc = stack(&hub, &Arc::new(Scripted::default()));
    let id = connect(&mut svc, Some("bob")).await.unwrap().session;
    let join = Request::from(id, Action::Command(Command::Join(room("rust"))));
    call(&mut svc, join).await.unwrap();
    let rust = hub.rooms().get(&room("rust")).expect("opened by the join");
    let newest = MAX_PENDING as u64 + 2;
    for seq in 2..=newest {
        rust.commit(sample("rust", seq, "far", "behind a hole"));
    }
    assert_eq!(
        rust.delivered(),
        newest,
        "1 given up on, the rest delivered"
    );
}

#[tokio::test]
async fn a_joiner_is_not_made_operator_on_a_guess_when_the_directory_cannot_list_the_room() {
    // The first member of a room operates it. With several instances only the directory knows
    // whether the room has members elsewhere: when it cannot say, nobody is made operator (the
    // room may well have one on another instance), though the join itself goes ahead.
    let hub = Hub::new("test");
    let directory = Arc::new(Scripted {
        members_down: true,
        ..Scripted::default()
    });
    let mut svc = stack(&hub, &directory);
    let id = connect(&mut svc, Some("bob")).await.unwrap().session;
    let join = Request::from(id, Action::Command(Command::Join(room("rust"))));
    call(&mut svc, join).await.expect("the join goes ahead");
    let channel = hub.channels().get(&room("rust")).expect("joined");
    assert!(
        !channel.rank(&nick("bob").key()).op,
        "not operator on a guess"
    );
}
