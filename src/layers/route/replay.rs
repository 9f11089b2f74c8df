//! Event-stream replays, read one page at a time as the client takes them.
//!
//! **Why pages.** A browser resuming with `Last-Event-ID` may have missed a thousand messages of
//! up to 8 KiB each. Read and rendered in one go, that is 8 MB or more in one buffer per stream,
//! and a client that opens the stream and never reads keeps it alive: sixty such streams took an
//! instance from 47 MB to 739 MB. So a replay is a sequence of small reads: the stream opens with
//! the first page (`Command::Replay`), and asks for the next one (`Command::ReplayPage`) only
//! once the client has taken the previous one off the socket. A client that does not read holds
//! one page, never the replay. Each page is a request through the stack like any other, so each
//! costs a rate-limit token: a replay is not free, and a client cannot make the server read
//! faster than its bucket allows.
//!
//! **What a page is.** The replay covers `(after, upto]`, where `upto` is the room's watermark
//! when the stream joined (`Room::join`): everything after it arrives live on the stream's tap,
//! attached before the join, so pages and live events meet exactly. A page is a span of at most
//! [`REPLAY_PAGE`] seqs (the first one [`FIRST_SPAN`]), `(cursor, cursor + span]`, read oldest first (a span of that many seqs
//! holds at most that many rows, so the history layer's "newest `limit`" read returns all of
//! it), and cut at [`REPLAY_PAGE_BYTES`] of messages: the page then ends at its last message
//! (`until`), and the next page starts right after it. A span the server holds nothing of
//! (older than its ring, with no store) is skipped within the same page, so a far resume costs
//! no more tokens than the part that exists. The stream tells its client what the pages do not
//! cover: `truncated` for what is older than anything kept, `gap` for holes.
//!
//! A resume from further back than [`MAX_REPLAY`] seqs starts `MAX_REPLAY` seqs before `upto`
//! (the stream says `truncated`). A first open (or a reset) starts with the room's newest
//! messages, as many as a joiner sees, at most one page.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use crate::core::outbound::message_bytes;
use crate::core::{
    ChatError, HistoryAnswer, HistoryQuery, Outcome, ReplayPage, Replayed, Reply, RoomName, Session,
};
use crate::layers::Inner;

/// The most seqs a resuming event stream is replayed; beyond it the stream says `truncated`.
pub const MAX_REPLAY: u64 = 1000;
/// The most seqs one page of a replay reads.
pub const REPLAY_PAGE: u64 = 100;
/// The seqs the first page of a resume reads: the stream learns from it how long the messages
/// are before it asks for more (see `adapters::http::stream`), so a room of the longest messages
/// is never read 100 at a time only to keep 8.
pub const FIRST_SPAN: u64 = 16;
/// The most bytes of messages (by `core::outbound::message_bytes`) one page holds; a page holds
/// at least one message, however long.
pub const REPLAY_PAGE_BYTES: usize = 64 * 1024;

impl<S: Inner> Ctx<'_, S> {
    /// Starts a room's event stream: enters the room if needed, then reads the first page of
    /// what the client missed after `after` or, on a first open, of the recent history. A client
    /// resuming after a seq this room never reached is told its numbering is gone (`reset`) and
    /// gets the recent history instead; one that is merely ahead of this instance (it saw the
    /// newest messages on another one) gets nothing now and the rest live.
    pub(super) async fn replay(
        &mut self,
        session: &Arc<Session>,
        name: RoomName,
        after: Option<u64>,
    ) -> Result<Reply, BoxError> {
        let joined = self.enter(session, &name, None).await?;
        let upto = joined.upto;
        let mut reset = None;
        if let Some(after) = after.filter(|after| *after > upto) {
            let room = self.hub().rooms().get_or_create(&name);
            let high = self.shared.sequencer.high_water(&room).await?;
            if after > high {
                reset = Some(high);
            }
        }
        let page = match after.filter(|_| reset.is_none()) {
            None => {
                let query = HistoryQuery {
                    room: name.clone(),
                    upto,
                    after: 0,
                    limit: self.shared.join_replay.min(REPLAY_PAGE as usize),
                };
                trimmed(self.read_history(session, query).await?, upto)
            }
            Some(after) if after >= upto => ReplayPage {
                answer: HistoryAnswer {
                    from: after + 1,
                    ..HistoryAnswer::default()
                },
                until: after,
            },
            Some(after) => {
                let start = after.max(upto.saturating_sub(MAX_REPLAY));
                self.page(session, &name, start, upto, FIRST_SPAN).await?
            }
        };
        self.hub().stats().replay_pages.inc();
        Ok(Reply::default().with(Outcome::Replayed(Replayed {
            room: name,
            upto,
            page,
            reset,
        })))
    }

    /// The next page of a replay of `name` (see the module docs); the session must still be in
    /// the room.
    pub(super) async fn replay_page(
        &mut self,
        session: &Session,
        name: RoomName,
        after: u64,
        upto: u64,
        span: u64,
    ) -> Result<Reply, BoxError> {
        let room = match self.hub().rooms().get(&name) {
            Some(room) if room.is_member(session.id) => room,
            _ => return Err(ChatError::forbidden(format!("you are not in {name}")).into()),
        };
        // Never above what the room has delivered: that is the live tap's.
        let upto = upto.min(room.delivered());
        drop(room);
        let page = self
            .page(session, &name, after, upto, span.clamp(1, REPLAY_PAGE))
            .await?;
        self.hub().stats().replay_pages.inc();
        Ok(Reply::default().with(Outcome::ReplayPage(page)))
    }

    /// One page of `(after, upto]`: a span of at most `span` seqs, cut at [`REPLAY_PAGE_BYTES`];
    /// spans the server holds nothing of are skipped (see the module docs).
    async fn page(
        &mut self,
        session: &Session,
        name: &RoomName,
        after: u64,
        upto: u64,
        span: u64,
    ) -> Result<ReplayPage, BoxError> {
        let mut from = after;
        loop {
            let end = upto.min(from.saturating_add(span)).max(from);
            let query = HistoryQuery {
                room: name.clone(),
                upto: end,
                after: from,
                limit: usize::try_from(end - from).unwrap_or(usize::MAX).max(1),
            };
            let answer = self.read_history(session, query).await?;
            if answer.from > end && end < upto {
                from = end; // older than anything kept here: on to the next span
                continue;
            }
            return Ok(trimmed(answer, end));
        }
    }
}

/// `answer`, a read that ends at `end`, cut after the messages that fit in
/// [`REPLAY_PAGE_BYTES`] (at least one): the page then ends at its last message, and its holes
/// beyond are left to the next page.
fn trimmed(mut answer: HistoryAnswer, end: u64) -> ReplayPage {
    let mut bytes = 0;
    let fit = answer
        .messages
        .iter()
        .take_while(|msg| {
            bytes += message_bytes(msg);
            bytes <= REPLAY_PAGE_BYTES
        })
        .count()
        .max(1);
    if fit >= answer.messages.len() {
        return ReplayPage { answer, until: end };
    }
    answer.messages.truncate(fit);
    let until = answer.messages.last().map_or(end, |msg| msg.seq);
    answer.missing.retain_mut(|(from, to)| {
        *to = (*to).min(until);
        *from <= until
    });
    ReplayPage { answer, until }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    fn answer(seqs: impl IntoIterator<Item = u64>, text: &str) -> HistoryAnswer {
        HistoryAnswer {
            messages: seqs
                .into_iter()
                .map(|s| sample("general", s, "a", text))
                .collect(),
            from: 1,
            missing: vec![],
        }
    }

    #[test]
    fn a_page_that_fits_ends_where_its_read_ends() {
        let page = trimmed(answer(1..=100, "short"), 100);
        assert_eq!((page.answer.messages.len(), page.until), (100, 100));
    }

    #[test]
    fn a_page_of_long_messages_ends_at_its_last_message_and_leaves_later_holes() {
        let long = "x".repeat(8000);
        let mut read = answer([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30], &long);
        read.missing = vec![(11, 19), (21, 29)];
        let page = trimmed(read, 30);
        let fit = REPLAY_PAGE_BYTES / message_bytes(&sample("general", 1, "a", &long));
        assert_eq!(page.answer.messages.len(), fit);
        assert_eq!(page.until, fit as u64);
        assert!(page.answer.missing.is_empty(), "beyond the page");
        let mut holes = answer([1, 9, 10, 11, 12, 13, 14, 15, 16, 17], &long);
        holes.missing = vec![(2, 8)];
        let page = trimmed(holes, 17);
        assert_eq!(page.answer.missing, vec![(2, 8)], "within the page");
    }

    #[test]
    fn one_message_larger_than_a_page_is_a_page_of_its_own() {
        let huge = "x".repeat(REPLAY_PAGE_BYTES * 2);
        let page = trimmed(answer([4, 5], &huge), 9);
        assert_eq!((page.answer.messages.len(), page.until), (1, 4));
    }
}
