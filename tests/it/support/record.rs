//! What a consistency run records: every message a client sent with its outcome, and every
//! reader's view (what it was shown, in order, with every signal the server gave it).
//!
//! The clients (`support::clients`) write here while they run; the checks (`support::check`)
//! read it afterwards, together with what the store holds. Nothing here interprets anything:
//! a record is what was said on the wire.

use std::sync::{Arc, Mutex, MutexGuard};

/// How a sent message ended, as its sender knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: HTTP `202 {"seq": N}` (the seq), or a TCP line followed by a later command's
    /// reply with no `! ` line in between (no seq: the line protocol does not print them).
    Acked(Option<u64>),
    /// Refused with this status or `! ` line.
    Refused(String),
    /// Nobody knows: the connection was cut or the client gave up waiting.
    Unknown,
}

impl Outcome {
    /// The seq the message was acknowledged with, if it was and the protocol says (HTTP).
    pub fn seq(&self) -> Option<u64> {
        match self {
            Outcome::Acked(seq) => *seq,
            _ => None,
        }
    }
}

/// One message a client sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The room it was sent to.
    pub room: String,
    /// Its text, unique in the run.
    pub text: String,
    /// The sending client's session: its nick (`NAME-gN` for a sender's Nth session, so that
    /// a sender's messages to a restarted instance can be told from those before).
    pub client: String,
    /// The instance it was sent to.
    pub instance: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// One thing a reader was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The stream was (re)opened on `instance`: fresh (`after: None`, history then live), or
    /// resuming after seq `after` (`Last-Event-ID`).
    Open {
        /// Where.
        instance: String,
        /// The `Last-Event-ID` sent, if any.
        after: Option<u64>,
    },
    /// A chat message: its seq when the protocol shows it (SSE), and its text.
    Message {
        /// The SSE id.
        seq: Option<u64>,
        /// The text.
        text: String,
    },
    /// The end of a TCP join's history lines: what follows is live.
    HistoryEnd,
    /// SSE `event: truncated`: the replay starts at `first`.
    Truncated {
        /// `first_seq`.
        first: u64,
    },
    /// SSE `event: gap` or the TCP notice `* missed messages #A to #B in ROOM`.
    Gap {
        /// First seq not delivered.
        from: u64,
        /// Last seq not delivered.
        to: u64,
    },
    /// SSE `event: reset`: the numbering held so far is gone; the room starts afresh.
    Reset {
        /// `last_seq`.
        last: u64,
    },
}

/// Which protocol a reader speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Server-Sent Events (`GET /messages/ROOM`): seqs are shown.
    Sse,
    /// The line protocol: texts only.
    Tcp,
}

/// One reader's view of one room, across its reconnections.
#[derive(Debug, Clone)]
pub struct View {
    /// The reader's name (`sse-b-3`, `resumer-1`, ...).
    pub reader: String,
    /// The room.
    pub room: String,
    /// The protocol.
    pub protocol: Protocol,
    /// What it was shown, in order.
    pub items: Vec<Seen>,
}

/// A view being written by a running reader.
pub type SharedView = Arc<Mutex<View>>;

/// Everything recorded in one run.
#[derive(Debug, Default)]
pub struct Log {
    /// Every message sent, with its outcome.
    pub sent: Vec<Sent>,
    /// Every reader's view.
    pub views: Vec<SharedView>,
}

/// The run's log, shared by every client.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Log>>);

impl Recorder {
    /// Records a sent message.
    pub fn sent(&self, sent: Sent) {
        self.lock().sent.push(sent);
    }

    /// Starts a new view and returns the handle its reader writes to.
    pub fn view(&self, reader: &str, room: &str, protocol: Protocol) -> SharedView {
        let view = Arc::new(Mutex::new(View {
            reader: reader.to_string(),
            room: room.to_string(),
            protocol,
            items: Vec::new(),
        }));
        self.lock().views.push(view.clone());
        view
    }

    /// A copy of what was recorded so far: the sent messages and every view.
    pub fn snapshot(&self) -> (Vec<Sent>, Vec<View>) {
        let log = self.lock();
        let views = log
            .views
            .iter()
            .map(|v| v.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        (log.sent.clone(), views)
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes everything recorded, one line per event, to `path`: the evidence behind a run's
/// anomalies (which views saw what, in which order).
pub fn dump(path: &std::path::Path, sent: &[Sent], views: &[View]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in sent {
        writeln!(
            out,
            "sent {} {} by {} on {}: {:?}",
            s.room, s.text, s.client, s.instance, s.outcome
        )?;
    }
    for view in views {
        writeln!(
            out,
            "view {} of {} ({:?}):",
            view.reader, view.room, view.protocol
        )?;
        for item in &view.items {
            writeln!(out, "  {item:?}")?;
        }
    }
    out.flush()
}

/// Appends `seen` to `view`.
pub fn push(view: &SharedView, seen: Seen) {
    view.lock()
        .unwrap_or_else(|e| e.into_inner())
        .items
        .push(seen);
}

/// The seqs of `view`'s SSE messages, in order (for tests that look at one stream).
pub fn seqs(view: &View) -> Vec<u64> {
    view.items
        .iter()
        .filter_map(|item| match item {
            Seen::Message { seq, .. } => *seq,
            _ => None,
        })
        .collect()
}
