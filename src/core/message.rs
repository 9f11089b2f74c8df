//! What travels through a room: chat messages and presence changes.
//!
//! A [`ChatMessage`] is created once, by the route layer, and then shared as an
//! `Arc<ChatMessage>` by the ring, the store queue and every recipient's outbound queue. Its
//! wire form for the line protocol is rendered at most once ([`ChatMessage::line`]) and the bytes
//! are shared by every TCP recipient: with a thousand members in a room, formatting per recipient
//! would be a thousand allocations for the same bytes.
//!
//! Every message has a per-room sequence number (`seq`): 1, 2, 3, ... without gaps inside a room.
//! It is what lets a client say exactly what it has seen ("everything up to 41") and what lets
//! the fan-out deliver in order even when two senders race.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::budget::Holders;
use super::identity::SessionId;
use super::names::{Nick, RoomName};

/// Where a message entered the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Sent by a session connected to this process.
    Local(SessionId),
    /// Received from another instance (phases 2 and 3); named by that instance's id. Remote
    /// messages land in the local ring and reach local sessions, but are not persisted again.
    Remote(Arc<str>),
}

/// One chat line in one room.
#[derive(Debug)]
pub struct ChatMessage {
    /// The room it was said in.
    pub room: RoomName,
    /// Its place in the room: 1 for the first message, no gaps.
    pub seq: u64,
    /// Who said it (the nick at the time).
    pub nick: Nick,
    /// What was said; validated by [`check_text`].
    pub text: String,
    /// When the server accepted it, in milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Who sent it, so the sender's own TCP connection is not echoed.
    pub origin: Origin,
    /// A message or a notice (IRC's `NOTICE`); see [`MessageKind`].
    pub kind: MessageKind,
    /// Sent by a bot (user mode `+B`), which IRC marks with a `bot` tag; live only, as `kind`.
    pub bot: bool,
    /// When this process numbered it, on the monotonic clock; `None` for a message numbered
    /// elsewhere (another instance, a store). The delivery latency metric starts here.
    numbered_at: Option<Instant>,
    /// When this process's room handed it to its members' queues (see [`ChatMessage::handed`]).
    handed_at: OnceLock<Instant>,
    /// Set once the persist layer has started writing it ahead: from then on the write decides
    /// its fate (delivered if stored, abandoned if not), whatever becomes of the request that
    /// carried it (see `layers::persist`).
    claimed: AtomicBool,
    /// Each wire form, rendered on first use and shared by every recipient of that protocol.
    wire: [OnceLock<Bytes>; WIRE_FORMS],
    /// The queues holding it (see `core::budget`).
    pub(crate) holders: Holders,
}

/// What kind of chat message it is. Only IRC tells them apart (a `NOTICE` must never be
/// answered by a bot, so clients show it differently); the other protocols show both alike. The
/// kind travels live (to this instance's members and, on Valkey, to the others) but is not
/// stored: history replays a notice as a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageKind {
    /// An ordinary message.
    #[default]
    Say,
    /// A notice.
    Notice,
}

/// The wire forms a message is rendered into, one cache slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// The line protocol: `[room] nick: text\n`.
    Line = 0,
    /// A Server-Sent Events frame (rendered by the HTTP adapter).
    Sse = 1,
    /// An IRC line without tags (rendered by the IRC adapter).
    Irc = 2,
    /// An IRC line with the `time` tag only (a client with `server-time` and not `message-tags`).
    IrcTime = 3,
    /// An IRC line with every server tag (`time` and `msgid`: a client with `message-tags`).
    IrcTags = 4,
}

/// How many [`Wire`] forms there are.
const WIRE_FORMS: usize = 5;

impl ChatMessage {
    /// A message numbered now, by this process.
    pub fn new(room: RoomName, seq: u64, nick: Nick, text: String, origin: Origin) -> ChatMessage {
        ChatMessage {
            numbered_at: Some(Instant::now()),
            ..ChatMessage::at(room, seq, nick, text, origin, now_ms())
        }
    }

    /// A message with a given timestamp (from a store or another instance).
    pub fn at(
        room: RoomName,
        seq: u64,
        nick: Nick,
        text: String,
        origin: Origin,
        ts_ms: i64,
    ) -> ChatMessage {
        ChatMessage {
            room,
            seq,
            nick,
            text,
            ts_ms,
            origin,
            kind: MessageKind::Say,
            bot: false,
            numbered_at: None,
            handed_at: OnceLock::new(),
            claimed: AtomicBool::new(false),
            wire: Default::default(),
            holders: Holders::default(),
        }
    }

    /// The same message, of `kind`.
    pub fn with_kind(mut self, kind: MessageKind) -> ChatMessage {
        self.kind = kind;
        self
    }

    /// The same message, marked as a bot's (or not).
    pub fn by_bot(mut self, bot: bool) -> ChatMessage {
        self.bot = bot;
        self
    }

    /// How long ago the message was numbered. For a message numbered by this process it is
    /// measured on the monotonic clock; for one numbered elsewhere (another instance, or read
    /// back from a store) it is the wall clock now minus the message's timestamp, so it includes
    /// any difference between the two hosts' clocks, and is `None` when the timestamp is ahead
    /// of this host's clock.
    pub fn age(&self) -> Option<Duration> {
        self.age_at(Instant::now(), now_ms)
    }

    /// [`ChatMessage::age`] at `now` on the monotonic clock and `wall_ms()` on the wall clock
    /// (asked only for a message numbered elsewhere): one reading of the clocks serves a batch.
    pub fn age_at(&self, now: Instant, wall_ms: impl FnOnce() -> i64) -> Option<Duration> {
        match self.numbered_at {
            Some(at) => Some(now.saturating_duration_since(at)),
            None => u64::try_from(wall_ms() - self.ts_ms)
                .ok()
                .map(Duration::from_millis),
        }
    }

    /// Notes that the room hands it to its members' queues now (the first call counts; one
    /// clock reading per message, not per member).
    pub fn hand_out(&self) {
        self.handed_at.get_or_init(Instant::now);
    }

    /// When the room handed it to its members' queues, if it did: how long a reader took to
    /// take it from its queue is measured from here (see `adapters::pace`).
    pub fn handed(&self) -> Option<Instant> {
        self.handed_at.get().copied()
    }

    /// The line protocol form, `[room] nick: text` plus a newline, shared between recipients.
    pub fn line(&self) -> Bytes {
        self.line_ref().clone()
    }

    /// [`ChatMessage::line`] borrowed: copying from it takes no reference, so the recipients of
    /// a busy room do not all count references on one buffer (a cache line the cores would pass
    /// back and forth once per delivery).
    pub fn line_ref(&self) -> &Bytes {
        self.wire[Wire::Line as usize]
            .get_or_init(|| Bytes::from(format!("[{}] {}: {}\n", self.room, self.nick, self.text)))
    }

    /// The message in `wire` form: rendered by `render` the first time, then shared. A room of a
    /// thousand browsers encodes each message's SSE frame once, not a thousand times.
    pub fn wire(&self, wire: Wire, render: impl FnOnce(&ChatMessage) -> Bytes) -> Bytes {
        self.wire[wire as usize]
            .get_or_init(|| render(self))
            .clone()
    }

    /// Marks the message as the persist layer's to deliver or abandon (see the field's docs).
    pub fn claim(&self) {
        self.claimed.store(true, Ordering::Release);
    }

    /// Whether the persist layer decides the message's fate.
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// The session that sent it, if it was sent on this instance.
    pub fn sender(&self) -> Option<SessionId> {
        match self.origin {
            Origin::Local(id) => Some(id),
            Origin::Remote(_) => None,
        }
    }

    /// The timestamp as RFC 3339 UTC, e.g. `2026-11-27T16:46:26.123Z`.
    pub fn timestamp(&self) -> String {
        rfc3339(self.ts_ms)
    }
}

/// What happened to a member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceKind {
    /// `nick` entered the room.
    Joined,
    /// `nick` left the room with `/leave`.
    Left,
    /// `nick` disconnected or used `/quit`.
    Quit,
    /// `nick` is now called the given name.
    Renamed(Nick),
    /// `nick` was put out of the room by `by` (`/kick`).
    Kicked {
        /// The operator who kicked.
        by: Nick,
        /// Why, as they said (their nick when they said nothing).
        reason: String,
    },
    /// `nick` set the room's topic to this (empty: cleared it).
    Topic(String),
    /// `nick` changed the room's modes, as IRC writes them (`+o bob`).
    Mode(String),
    /// `nick` is away with this message, or back (`None`): told to each of its rooms.
    Away(Option<String>),
    /// `nick` changed its real name to this: told to each of its rooms.
    Realname(String),
}

/// A membership change, announced to the room's other members.
#[derive(Debug, Clone)]
pub struct Presence {
    /// The room it concerns.
    pub room: RoomName,
    /// The member it concerns (the old nick for a rename).
    pub nick: Nick,
    /// What happened.
    pub kind: PresenceKind,
    /// The session concerned, so it is not told about itself.
    pub session: Option<SessionId>,
    /// Why, for a leave or a quit that gave a reason (`/leave ROOM REASON`, `/quit REASON`).
    pub reason: Option<String>,
    /// Its wire forms, rendered once each and shared by every recipient (a join to a room of
    /// 2,000 is 2,000 deliveries of the same line or frame).
    wire: [OnceLock<Bytes>; WIRE_FORMS],
    /// The queues holding it (see `core::budget`).
    pub(crate) holders: Holders,
}

impl PartialEq for Presence {
    fn eq(&self, other: &Presence) -> bool {
        (&self.room, &self.nick, &self.kind, self.session)
            == (&other.room, &other.nick, &other.kind, other.session)
    }
}

impl Eq for Presence {}

impl Presence {
    /// A change of `nick`'s membership of `room`; `session` is set when it happened here.
    pub fn new(
        room: RoomName,
        nick: Nick,
        kind: PresenceKind,
        session: Option<SessionId>,
    ) -> Presence {
        Presence {
            room,
            nick,
            kind,
            session,
            reason: None,
            wire: Default::default(),
            holders: Holders::default(),
        }
    }

    /// The same change, with the reason given for it.
    pub fn with_reason(mut self, reason: Option<String>) -> Presence {
        self.reason = reason.filter(|r| !r.is_empty());
        self
    }

    /// The notice line, `* ` and newline included; rendered on first use, then shared.
    pub fn line(&self) -> Bytes {
        self.wire(Wire::Line, |p| Bytes::from(format!("* {}\n", p.text())))
    }

    /// The change in `wire` form: rendered by `render` the first time, then shared (as
    /// [`ChatMessage::wire`]).
    pub fn wire(&self, wire: Wire, render: impl FnOnce(&Presence) -> Bytes) -> Bytes {
        self.wire[wire as usize]
            .get_or_init(|| render(self))
            .clone()
    }

    /// The notice text, without the `* ` prefix.
    pub fn text(&self) -> String {
        let (nick, room) = (&self.nick, &self.room);
        let why = self
            .reason
            .as_ref()
            .map_or(String::new(), |r| format!(" ({r})"));
        match &self.kind {
            PresenceKind::Joined => format!("{nick} joined {room}"),
            PresenceKind::Left => format!("{nick} left {room}{why}"),
            PresenceKind::Quit => format!("{nick} quit{why}"),
            PresenceKind::Renamed(new) => format!("{nick} is now known as {new}"),
            PresenceKind::Kicked { by, reason } => {
                format!("{nick} was kicked from {room} by {by} ({reason})")
            }
            PresenceKind::Topic(text) if text.is_empty() => {
                format!("{nick} cleared the topic of {room}")
            }
            PresenceKind::Topic(text) => format!("{nick} set the topic of {room}: {text}"),
            PresenceKind::Mode(change) => format!("{nick} set mode {change} in {room}"),
            PresenceKind::Away(Some(text)) => format!("{nick} is away: {text}"),
            PresenceKind::Away(None) => format!("{nick} is back"),
            PresenceKind::Realname(name) => format!("{nick}'s real name is now {name}"),
        }
    }
}

/// Checks a chat message body: not empty, at most `max_chars` characters, and none of the
/// characters [`super::text`] refuses: controls (tab excepted), direction-changing and invisible
/// ones. They are refused rather than stripped so that the sender learns why: an ANSI escape
/// could repaint other users' terminals, a NUL cannot be stored in PostgreSQL text, and a
/// right-to-left override makes `x`, U+202E, `gnp.exe` read `xexe.png`.
///
/// # Errors
/// An `Invalid` error naming the broken rule (and the refused character's code point).
pub fn check_text(text: &str, max_chars: usize) -> Result<(), super::ChatError> {
    use super::ChatError;
    if text.trim().is_empty() {
        return Err(ChatError::invalid("empty message"));
    }
    if text.chars().nth(max_chars).is_some() {
        return Err(ChatError::invalid(format!(
            "message too long (max {max_chars} characters)"
        )));
    }
    if let Some(refused) = super::text::find_refused(text) {
        return Err(ChatError::invalid(format!(
            "{} are not allowed in messages (found {})",
            refused.kind(),
            refused.code_point()
        )));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC without pulling in a date crate
/// (the civil-from-days algorithm of Howard Hinnant's `date` library).
pub fn rfc3339(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let millis = ts_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// A convenience for tests and benches: a local message in `room` from `nick`.
pub fn sample(room: &str, seq: u64, nick: &str, text: &str) -> Arc<ChatMessage> {
    Arc::new(ChatMessage::new(
        RoomName::parse(room).expect("valid sample room"),
        seq,
        Nick::parse(nick).expect("valid sample nick"),
        text.to_string(),
        Origin::Remote("sample".into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_rendered_once_and_shared() {
        let msg = sample("general", 1, "alice", "hello");
        let a = msg.line();
        let b = msg.line();
        assert_eq!(&a[..], b"[general] alice: hello\n");
        assert_eq!(a.as_ptr(), b.as_ptr(), "both recipients share one buffer");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_797_986_500), "2026-11-27T16:46:26.500Z");
    }

    #[test]
    fn text_rules() {
        assert!(check_text("hi", 10).is_ok());
        assert!(check_text("tab\tok", 10).is_ok());
        assert_eq!(check_text("   ", 10).unwrap_err().message, "empty message");
        assert!(
            check_text(&"é".repeat(10), 10).is_ok(),
            "limit counts characters, not bytes"
        );
        assert!(
            check_text(&"é".repeat(11), 10)
                .unwrap_err()
                .message
                .contains("max 10 characters")
        );
        assert_eq!(
            check_text("a\u{1b}[2Jb", 10).unwrap_err().message,
            "control characters are not allowed in messages (found U+001B)"
        );
        assert_eq!(
            check_text("x\u{202e}gnp.exe", 20).unwrap_err().message,
            "direction-changing characters are not allowed in messages (found U+202E \
             RIGHT-TO-LEFT OVERRIDE)"
        );
        assert!(
            check_text("nul\0", 10)
                .unwrap_err()
                .message
                .contains("U+0000")
        );
    }

    #[test]
    fn presence_texts() {
        let p = |kind| {
            Presence::new(
                RoomName::parse("general").unwrap(),
                Nick::parse("alice").unwrap(),
                kind,
                None,
            )
        };
        assert_eq!(p(PresenceKind::Joined).text(), "alice joined general");
        assert_eq!(p(PresenceKind::Left).text(), "alice left general");
        assert_eq!(p(PresenceKind::Quit).text(), "alice quit");
        assert_eq!(
            p(PresenceKind::Renamed(Nick::parse("al").unwrap())).text(),
            "alice is now known as al"
        );
        let reason = Some("lunch".to_string());
        assert_eq!(
            p(PresenceKind::Quit).with_reason(reason).text(),
            "alice quit (lunch)"
        );
        let kicked = PresenceKind::Kicked {
            by: Nick::parse("op").unwrap(),
            reason: "spam".into(),
        };
        assert_eq!(
            p(kicked).text(),
            "alice was kicked from general by op (spam)"
        );
        assert_eq!(
            p(PresenceKind::Topic(String::new())).text(),
            "alice cleared the topic of general"
        );
        assert_eq!(
            p(PresenceKind::Mode("+o bob".into())).text(),
            "alice set mode +o bob in general"
        );
    }
}
