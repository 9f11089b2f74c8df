//! History windows (`Command::Window`): IRC's `CHATHISTORY`, in the core's terms.
//!
//! A window is the messages of a room strictly between two bounds, the oldest or the newest
//! `limit` of them. It is answered with the same reads as a join or `/history`
//! ([`HistoryQuery`]: the ring first, then the store), so every protocol sees one history.
//!
//! **Seqs, not times.** A room's messages are numbered in order, so a bound given as a seq is
//! exact. A bound given as a time is first turned into a seq: the last message stamped at or
//! before it. Timestamps grow with seqs (both are taken when the route layer numbers a message),
//! so the last recent messages answer most of these with one read, and an older time is found by
//! a binary search over seqs, one single-message read per step (~20 for a million messages).
//! With several instances a timestamp comes from the clock of the instance that numbered the
//! message, so a time bound is as precise as those clocks agree; a seq bound is exact anywhere.
//!
//! **Oldest first.** A [`HistoryQuery`] returns the newest `limit` messages below its `upto`. The
//! oldest `limit` after a point are the newest below `after + limit` when no seq between carries
//! nothing; the read goes on past seqs that do (abandoned after numbering, or a jump in the
//! numbering after a crash), [`MAX_READS`] times at most: past a longer stretch of empty seqs the
//! window holds fewer messages than asked.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use crate::core::{Bound, ChatError, ChatMessage, HistoryQuery, HistoryWindow, Session};
use crate::layers::Inner;
use crate::layers::parse::MAX_HISTORY;

/// Messages read at once to place a recent time bound without a search.
const RECENT: usize = MAX_HISTORY;
/// Reads an oldest-first window makes at most (each past seqs that were given up on).
const MAX_READS: usize = 8;

impl<S: Inner> Ctx<'_, S> {
    /// Answers a history window for a member of its room.
    pub(super) async fn window(
        &mut self,
        session: &Session,
        window: HistoryWindow,
    ) -> Result<Vec<Arc<ChatMessage>>, BoxError> {
        let name = window.room.clone();
        let room = match self.hub().rooms().get(&name) {
            Some(room) if room.is_member(session.id) => room,
            _ => {
                return Err(ChatError::forbidden(format!(
                    "you are not in {name}: /join {name} first"
                ))
                .into());
            }
        };
        let delivered = room.delivered();
        let limit = window.limit.clamp(1, MAX_HISTORY);
        let low = match window.after {
            Bound::Open => 0,
            Bound::Seq(seq) => seq,
            Bound::Time(ms) => {
                self.last_at_or_before(session, &window, ms, delivered)
                    .await?
            }
        };
        let high = match window.before {
            Bound::Open => delivered,
            Bound::Seq(seq) => seq.saturating_sub(1).min(delivered),
            Bound::Time(ms) => {
                self.last_at_or_before(session, &window, ms.saturating_sub(1), delivered)
                    .await?
            }
        };
        if low >= high {
            return Ok(Vec::new());
        }
        let query = |after: u64, upto: u64, limit: usize| HistoryQuery {
            room: name.clone(),
            upto,
            after,
            limit,
        };
        if !window.oldest_first {
            return Ok(self
                .read_history(session, query(low, high, limit))
                .await?
                .messages);
        }
        let mut found = Vec::with_capacity(limit);
        let mut after = low;
        for _ in 0..MAX_READS {
            if found.len() >= limit || after >= high {
                break;
            }
            let wanted = limit - found.len();
            let upto = high.min(after + wanted as u64);
            found.extend(
                self.read_history(session, query(after, upto, wanted))
                    .await?
                    .messages,
            );
            after = upto;
        }
        Ok(found)
    }

    /// The seq of the last message of the window's room stamped at or before `ms` (0 if none),
    /// among the first `delivered`; see the module docs.
    async fn last_at_or_before(
        &mut self,
        session: &Session,
        window: &HistoryWindow,
        ms: i64,
        delivered: u64,
    ) -> Result<u64, BoxError> {
        let read = |upto: u64, limit: usize| HistoryQuery {
            room: window.room.clone(),
            upto,
            after: 0,
            limit,
        };
        let recent = self
            .read_history(session, read(delivered, RECENT))
            .await?
            .messages;
        if let Some(hit) = recent.iter().rev().find(|m| m.ts_ms <= ms) {
            return Ok(hit.seq);
        }
        // Every recent message is later than `ms`: search below the oldest of them.
        let Some(oldest) = recent.first() else {
            return Ok(0);
        };
        // Invariant: the answer is in [low, high]; `low` is 0 or a message stamped at or
        // before `ms`.
        let (mut low, mut high) = (0, oldest.seq - 1);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            match self
                .read_history(session, read(mid, 1))
                .await?
                .messages
                .pop()
            {
                Some(msg) if msg.seq > low && msg.ts_ms <= ms => low = msg.seq,
                Some(msg) if msg.seq > low => high = msg.seq - 1,
                // Nothing between `low` and `mid` (seqs given up on): look below.
                _ => high = mid - 1,
            }
        }
        Ok(low)
    }
}

#[cfg(test)]
mod tests {
    //! Over a scripted history below the route layer: seqs 1 to 300 stamped 10 ms apart, with
    //! seqs 50 to 59 given up on (never stored), answered as the ring and store would.

    use std::sync::Arc;

    use tower::{BoxError, Layer, ServiceExt, service_fn};

    use super::super::RouteLayer;
    use crate::backends::directory::LocalDirectory;
    use crate::backends::sequencer::LocalSequencer;
    use crate::core::ChatService;
    use crate::core::{
        Action, Bound, ChatError, ChatMessage, Command, Connect, ErrorKind, HistoryWindow, Hub,
        Nick, Origin, Outcome, Page, Protocol, Reply, Request, RoomName, SessionId, ask,
    };
    use crate::layers::route::RouteConfig;

    fn stamped(seq: u64) -> i64 {
        1_000 + 10 * seq as i64
    }

    fn history() -> Vec<Arc<ChatMessage>> {
        (1..=300)
            .filter(|seq| !(50..60).contains(seq))
            .map(|seq| {
                let room = RoomName::parse("hist").unwrap();
                let nick = Nick::parse("alice").unwrap();
                let origin = Origin::Remote("a".into());
                Arc::new(ChatMessage::at(
                    room,
                    seq,
                    nick,
                    format!("m{seq}"),
                    origin,
                    stamped(seq),
                ))
            })
            .collect()
    }

    /// A route layer over the scripted history, with session `s1` a member of `hist`, whose
    /// messages are delivered up to 300.
    async fn member() -> (Hub, ChatService) {
        let hub = Hub::new("test");
        let all = history();
        let inner = service_fn(move |req: Request| {
            let reply = match req.action {
                Action::History(query) => {
                    let messages = all
                        .iter()
                        .filter(|m| m.seq > query.after && m.seq <= query.upto)
                        .cloned()
                        .collect();
                    let page = Page {
                        messages,
                        ..Page::default()
                    };
                    Reply::default().with(Outcome::History {
                        room: query.room.clone(),
                        answer: query.answer(Vec::new(), page),
                    })
                }
                _ => Reply::default(),
            };
            std::future::ready(Ok::<_, BoxError>(reply))
        });
        let layer = RouteLayer::new(
            &RouteConfig::default(),
            hub.clone(),
            Arc::new(LocalSequencer::default()),
            Arc::new(LocalDirectory::new(hub.clone())),
            10,
            None,
        );
        let svc = ChatService::new(layer.layer(ChatService::new(inner)));
        let (connect, _) = Connect::sample(Protocol::Irc, Some("gina"), 16);
        ask(&mut svc.clone(), None, connect).await.unwrap();
        let join = Command::Join(RoomName::parse("hist").unwrap());
        svc.clone()
            .oneshot(Request::from(SessionId(1), Action::Command(join)))
            .await
            .unwrap();
        let room = hub.rooms().get(&RoomName::parse("hist").unwrap()).unwrap();
        room.start(crate::core::Start {
            at: 300,
            ..crate::core::Start::default()
        });
        (hub, svc)
    }

    async fn window(
        svc: &ChatService,
        session: u64,
        (after, before): (Bound, Bound),
        limit: usize,
        oldest_first: bool,
    ) -> Result<Vec<u64>, ChatError> {
        let window = HistoryWindow {
            room: RoomName::parse("hist").unwrap(),
            after,
            before,
            limit,
            oldest_first,
        };
        let req = Request::from(SessionId(session), Action::Command(Command::Window(window)));
        match svc.clone().oneshot(req).await {
            Ok(reply) => match reply.outcome {
                Outcome::History { answer, .. } => {
                    Ok(answer.messages.iter().map(|m| m.seq).collect())
                }
                other => panic!("not a history: {other:?}"),
            },
            Err(e) => Err(ChatError::from_box(&e)),
        }
    }

    #[tokio::test]
    async fn seq_bounds_count_from_either_end_and_step_over_seqs_given_up_on() {
        let (_hub, svc) = member().await;
        let (open, seq) = (Bound::Open, Bound::Seq);
        assert_eq!(
            window(&svc, 1, (open, open), 3, false).await.unwrap(),
            [298, 299, 300]
        );
        assert_eq!(
            window(&svc, 1, (open, seq(100)), 2, false).await.unwrap(),
            [98, 99]
        );
        let across = window(&svc, 1, (seq(45), open), 8, true).await.unwrap();
        assert_eq!(across, [46, 47, 48, 49, 60, 61, 62, 63]);
        assert_eq!(
            window(&svc, 1, (seq(2), seq(6)), 10, true).await.unwrap(),
            [3, 4, 5]
        );
        assert!(
            window(&svc, 1, (seq(6), seq(2)), 10, true)
                .await
                .unwrap()
                .is_empty()
        );
        let capped = window(&svc, 1, (open, open), 1000, false).await.unwrap();
        assert_eq!(capped.len(), 100, "at most 100, as /history");
    }

    #[tokio::test]
    async fn time_bounds_are_found_in_the_recent_messages_or_by_a_search() {
        let (_hub, svc) = member().await;
        let (open, time) = (Bound::Open, Bound::Time);
        // Recent: within the last 100 messages.
        let after = window(&svc, 1, (time(stamped(250)), open), 2, true).await;
        assert_eq!(after.unwrap(), [251, 252]);
        let before = window(&svc, 1, (open, time(stamped(250))), 2, false).await;
        assert_eq!(before.unwrap(), [248, 249]);
        // Older: found by the binary search, also between two stamps and inside the gap.
        let after = window(&svc, 1, (time(stamped(20) + 5), open), 2, true).await;
        assert_eq!(after.unwrap(), [21, 22]);
        let in_gap = window(&svc, 1, (time(stamped(55)), open), 2, true).await;
        assert_eq!(in_gap.unwrap(), [60, 61]);
        let first = window(&svc, 1, (time(0), open), 2, true).await;
        assert_eq!(first.unwrap(), [1, 2]);
        let none = window(&svc, 1, (open, time(0)), 2, false).await;
        assert!(none.unwrap().is_empty());
    }

    #[tokio::test]
    async fn only_members_read_a_room() {
        let (_hub, svc) = member().await;
        let err = window(&svc, 7, (Bound::Open, Bound::Open), 5, false).await;
        assert_eq!(err.unwrap_err().kind, ErrorKind::Unauthenticated);
        let (connect, _) = Connect::sample(Protocol::Tcp, Some("outsider"), 16);
        ask(&mut svc.clone(), None, connect).await.unwrap();
        let err = window(&svc, 2, (Bound::Open, Bound::Open), 5, false).await;
        assert_eq!(err.unwrap_err().kind, ErrorKind::Forbidden);
    }
}
