//! One open event stream: the rest of its replay, a page at a time, then live events.
//!
//! **Backpressure.** Frames go to the response body through a small channel ([`BODY_QUEUE`]),
//! which hyper empties only as fast as the socket takes them. While a replay is under way the
//! stream asks the core for its next page (`Command::ReplayPage`) only once that channel is
//! empty, that is once hyper has taken everything sent so far: a client that stops reading
//! leaves one page in the channel and at most hyper's write buffer (`HTTP_BUFFER`) plus one frame
//! in hyper, and the stream waits without reading further. Live events meanwhile wait in the
//! stream's tap, which is bounded like every outbound queue (`sessions`); a tap that overflows
//! is cut, the stream ends after what it holds, and the browser resumes from there. Live, a frame
//! gathers at most [`FRAME_BYTES`] of events, so the channel holds at most a few of those.
//!
//! **Rate limits.** Each page is a request through the stack and costs a token from the
//! session's bucket. A page refused for lack of one is asked again after the wait the refusal
//! names: the replay slows down to the client's rate, it does not fail.
//!
//! **Adaptive spans.** A page reads at most `REPLAY_PAGE` seqs and holds at most
//! `REPLAY_PAGE_BYTES` of messages. When a page was cut by bytes (long messages), the next one
//! asks for as many seqs as that page held; when it was not, for twice as many (up to the
//! maximum): the store is not asked for rows the page would throw away.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::State;
use super::frames::{answer_frames, direct_frame, gap_frame, message_frame, presence_frame};
use super::sessions::TapGuard;
use crate::core::{
    ChatError, ErrorKind, Event, Inbox, NextPage, ReplayPage, RoomName, SessionId, Stats,
};
use crate::layers::route::REPLAY_PAGE;

/// Frames in the channel between the stream and the response body. hyper takes them as fast as
/// the socket does, so a few are enough to keep it busy; each is at most a page of a replay or
/// [`FRAME_BYTES`] of live events (plus one).
pub(super) const BODY_QUEUE: usize = 4;
/// Live events gathered into one frame at most; the rest wait in the tap, where they count
/// against its bounds.
const FRAME_BYTES: usize = 64 * 1024;
/// A comment line this often keeps idle streams open through proxies.
const PING: std::time::Duration = std::time::Duration::from_secs(15);

/// The part of a replay still to send: `(cursor, upto]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replay {
    /// The last seq sent or accounted for.
    pub(super) cursor: u64,
    /// The end of the replay: live events take over after it.
    pub(super) upto: u64,
    /// How many seqs to ask for next.
    span: u64,
}

impl Replay {
    /// What is left after a first page that ended at `until` holding `held` messages: the next
    /// page asks for twice as many (the first may have been cut by bytes; if so, the one after
    /// adapts).
    pub(super) fn after_first(until: u64, upto: u64, held: usize) -> Option<Replay> {
        (until < upto).then(|| Replay {
            cursor: until,
            upto,
            span: (2 * held as u64).clamp(1, REPLAY_PAGE),
        })
    }

    /// Adds the frames of `page`, the answer to the request for `(cursor, cursor + span]`, to
    /// `out`, and moves on after it. Seqs between the cursor and the first seq the page vouches
    /// for are not held by the server any more (they left the ring while the replay went on,
    /// with no store behind it): the client is told, with a `gap`.
    fn sent(&mut self, room: &RoomName, page: ReplayPage, out: &mut BytesMut) {
        let answer = &page.answer;
        if answer.from > self.cursor + 1 {
            let to = (answer.from - 1).min(page.until);
            out.extend_from_slice(&gap_frame(room, self.cursor + 1, to));
        }
        answer_frames(room, answer, out);
        let asked = self.cursor.saturating_add(self.span).min(self.upto);
        self.span = match page.until < asked {
            true => (answer.messages.len() as u64).clamp(1, REPLAY_PAGE),
            false => (self.span * 2).min(REPLAY_PAGE),
        };
        self.cursor = self.cursor.max(page.until);
    }

    fn done(&self) -> bool {
        self.cursor >= self.upto
    }
}

/// One open stream; see the module docs.
pub(super) struct Stream {
    pub(super) state: Arc<State>,
    pub(super) session: SessionId,
    pub(super) room: RoomName,
    pub(super) frames: mpsc::Sender<Bytes>,
    pub(super) live: Inbox,
    /// Keeps the tap attached while the stream runs.
    pub(super) _tap: TapGuard,
    pub(super) last_sent: u64,
    /// Where a live message's delivery latency is recorded.
    pub(super) stats: Arc<Stats>,
    /// The rest of the replay, while there is one.
    pub(super) replay: Option<Replay>,
}

impl Stream {
    /// Sends `out` (the opening), the rest of the replay, then live events, until the client
    /// goes, the tap is cut, or the server shuts down.
    pub(super) async fn run(mut self, mut out: BytesMut) {
        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
        loop {
            if !out.is_empty() {
                // A copy of exactly the bytes: `out` grew by doubling, and a frame frozen from it
                // would keep its spare capacity alive for as long as the client takes to read it.
                let frame = Bytes::copy_from_slice(&out);
                out = BytesMut::new();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    sent = self.frames.send(frame) => if sent.is_err() { return },
                }
            }
            if let Some(mut replay) = self.replay.take() {
                // The next page only once the client has taken everything sent so far.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    drained = self.frames.reserve_many(BODY_QUEUE) => if drained.is_err() { return },
                    _ = ping.tick() => {
                        out.extend_from_slice(b": ping\n\n");
                        self.replay = Some(replay);
                        continue;
                    }
                }
                let Some(page) = self.next_page(&replay, &shutdown).await else {
                    return;
                };
                replay.sent(&self.room, page, &mut out);
                self.replay = Some(replay).filter(|r| !r.done());
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.frames.closed() => return, // the client went away
                event = self.live.recv() => match event {
                    None => return, // cut as too slow, or the session ended: the browser resumes
                    Some(event) => {
                        self.push(event, &mut out);
                        while out.len() < FRAME_BYTES && let Some(event) = self.live.try_recv() {
                            self.push(event, &mut out);
                        }
                    }
                },
                _ = ping.tick() => out.extend_from_slice(b": ping\n\n"),
            }
        }
    }

    /// The next page of `replay`, waiting out rate-limit refusals; `None` when the stream must
    /// end (the client went, the server stops, or the core refused for good: the session left
    /// the room, the store is down; the browser resumes from what it has).
    async fn next_page(&self, replay: &Replay, shutdown: &CancellationToken) -> Option<ReplayPage> {
        let next = NextPage {
            room: self.room.clone(),
            after: replay.cursor,
            upto: replay.upto,
            span: replay.span,
        };
        loop {
            let err = match self.state.ask(Some(self.session), next.clone()).await {
                Ok(answered) => return Some(answered.answer),
                Err(err) => ChatError::from_box(&err),
            };
            let ErrorKind::RateLimited { retry_after } = err.kind else {
                tracing::debug!(session = %self.session, room = %self.room, "replay ended: {err}");
                return None;
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = self.frames.closed() => return None,
                _ = tokio::time::sleep(retry_after) => {}
            }
        }
    }

    fn push(&mut self, event: Event, out: &mut BytesMut) {
        match event {
            Event::Message(msg) if msg.seq > self.last_sent => {
                self.last_sent = msg.seq;
                self.stats.handed_over(&msg);
                out.extend_from_slice(&message_frame(&msg));
            }
            Event::Presence(presence) => out.extend_from_slice(&presence_frame(&presence)),
            Event::Direct(direct) => out.extend_from_slice(&direct_frame(&direct)),
            Event::Missed(missed) if missed.to > self.last_sent => {
                let from = missed.from.max(self.last_sent + 1);
                self.last_sent = missed.to;
                out.extend_from_slice(&gap_frame(&missed.room, from, missed.to));
            }
            _ => {} // already sent in the replay, or not for streams
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::HistoryAnswer;
    use crate::core::message::sample;

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    fn page(seqs: impl IntoIterator<Item = u64>, from: u64, until: u64) -> ReplayPage {
        ReplayPage {
            answer: HistoryAnswer {
                messages: seqs
                    .into_iter()
                    .map(|s| sample("general", s, "a", "x"))
                    .collect(),
                from,
                missing: vec![],
            },
            until,
        }
    }

    fn ids(out: &BytesMut) -> Vec<String> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter(|frame| !frame.is_empty())
            .map(|frame| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .map_or_else(|| frame.lines().next().unwrap().to_string(), String::from)
            })
            .collect()
    }

    #[test]
    fn pages_follow_each_other_until_the_end_of_the_replay() {
        let mut replay = Replay::after_first(10, 25, 5).unwrap();
        let mut out = BytesMut::new();
        replay.sent(&general(), page(11..=20, 11, 20), &mut out);
        assert!(!replay.done());
        replay.sent(&general(), page(21..=25, 21, 25), &mut out);
        assert!(replay.done());
        let expected: Vec<String> = (11..=25).map(|s| s.to_string()).collect();
        assert_eq!(ids(&out), expected, "each seq once, in order");
    }

    #[test]
    fn what_left_the_server_between_two_pages_is_a_gap() {
        let mut replay = Replay::after_first(10, 30, 10).unwrap();
        let mut out = BytesMut::new();
        replay.sent(&general(), page(16..=20, 16, 20), &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("event: gap\ndata: {\"from\":11,\"room\":\"general\",\"to\":15}"),
            "{text}"
        );
        assert_eq!(replay.cursor, 20);
    }

    #[test]
    fn a_page_cut_by_bytes_makes_the_next_one_smaller_and_a_full_one_larger() {
        let mut replay = Replay::after_first(0, 1000, 100).unwrap();
        assert_eq!(replay.span, 100, "at most a full page");
        let mut out = BytesMut::new();
        replay.sent(&general(), page(1..=8, 1, 8), &mut out);
        assert_eq!(replay.span, 8, "the page held 8: ask for 8");
        replay.sent(&general(), page(9..=16, 9, 16), &mut out);
        assert_eq!(replay.span, 16, "all 8 fit: ask for twice as many");
        replay.sent(&general(), page(17..=32, 17, 32), &mut out);
        assert_eq!(replay.span, 32);
    }
}
