//! The consistency checks: what was sent, what each reader saw and what the store holds, held
//! against chatd's promise (per room, one gap-free order, every message exactly once, nothing
//! acknowledged lost). Each broken promise is one [`Anomaly`] naming the room, the seq, who saw
//! it and why it is wrong, in one line.
//!
//! Per room:
//! * (a) one text per seq across every acknowledgement, every reader and the store (and one seq
//!   per text);
//! * (b) every acknowledged message is stored (write-ahead); in write-behind an acknowledged
//!   message missing from the store is a *write-behind loss*, counted, not an anomaly;
//! * (c) each view shows seqs strictly increasing, without duplicates, and every hole is either
//!   covered by a signal to that reader (`truncated`, `gap`, `reset`, the TCP missed notice) or
//!   a seq that nobody was acknowledged, shown or stored (numbered, then abandoned);
//! * (d) whatever a reader saw is stored (write-ahead; write-behind: a loss);
//! * (e) a TCP join's history is the store's last messages up to its last one;
//! * (f) a refused message is shown to nobody and not stored.
//!
//! TCP lines carry no seq: their texts are mapped to seqs through the store and the SSE and
//! HTTP records (texts are unique in a run).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::record::{Outcome, Protocol, Seen, Sent, View};

mod views;

#[allow(unused_imports)] // used by some test crates, not all
pub use views::against_store;

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The room.
    pub room: String,
    /// The seq concerned, if one is.
    pub seq: Option<u64>,
    /// The reader, client or instance concerned.
    pub who: String,
    /// A one-line explanation.
    pub what: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq.map_or("-".to_string(), |s| s.to_string());
        write!(
            f,
            "room {} seq {seq} [{}]: {}",
            self.room, self.who, self.what
        )
    }
}

/// What the checks counted and found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Acknowledged messages.
    pub acked: usize,
    /// Messages whose sender never learnt their outcome (a connection cut, an HTTP 504, a
    /// request given up on): neither acknowledged nor refused, they may be stored or not.
    pub unknown: usize,
    /// Messages shown to readers (each copy counts).
    pub deliveries: usize,
    /// Write-behind losses: acknowledged or shown, not stored.
    pub losses: usize,
    /// Every broken promise.
    pub anomalies: Vec<Anomaly>,
}

/// The store's rows, per room, as `(seq, text)` in seq order.
pub type Stored = BTreeMap<String, Vec<(u64, String)>>;

/// Runs every check; `ahead` is write-ahead (`durability = "sync"`), `capacity` the ring's size
/// (how many messages a join replays).
pub fn check(
    sent: &[Sent],
    views: &[View],
    stored: &Stored,
    ahead: bool,
    capacity: usize,
) -> Findings {
    let mut rooms: BTreeSet<&str> = stored.keys().map(String::as_str).collect();
    rooms.extend(sent.iter().map(|s| s.room.as_str()));
    rooms.extend(views.iter().map(|v| v.room.as_str()));
    let mut findings = Findings::default();
    for room in rooms {
        let rows = stored.get(room).map(Vec::as_slice).unwrap_or_default();
        let sent: Vec<&Sent> = sent.iter().filter(|s| s.room == room).collect();
        let views: Vec<&View> = views.iter().filter(|v| v.room == room).collect();
        RoomCheck::new(room, rows, &sent, &views, ahead, capacity).run(&mut findings);
    }
    findings
}

/// The checks of one room.
struct RoomCheck<'a> {
    room: &'a str,
    rows: &'a [(u64, String)],
    sent: &'a [&'a Sent],
    views: &'a [&'a View],
    ahead: bool,
    capacity: usize,
    /// seq -> text -> where it was first seen with that seq.
    by_seq: BTreeMap<u64, BTreeMap<&'a str, String>>,
    stored: HashMap<&'a str, u64>,
}

impl<'a> RoomCheck<'a> {
    fn new(
        room: &'a str,
        rows: &'a [(u64, String)],
        sent: &'a [&'a Sent],
        views: &'a [&'a View],
        ahead: bool,
        capacity: usize,
    ) -> RoomCheck<'a> {
        let mut by_seq: BTreeMap<u64, BTreeMap<&str, String>> = BTreeMap::new();
        let mut note = |seq: u64, text: &'a str, source: String| {
            by_seq.entry(seq).or_default().entry(text).or_insert(source);
        };
        for (seq, text) in rows {
            note(*seq, text, "the store".into());
        }
        for s in sent {
            if let Outcome::Acked(Some(seq)) = s.outcome {
                note(
                    seq,
                    &s.text,
                    format!("the 202 to {} on {}", s.client, s.instance),
                );
            }
        }
        for view in views {
            let mut instance = "";
            for item in &view.items {
                match item {
                    Seen::Open { instance: i, .. } => instance = i,
                    Seen::Message {
                        seq: Some(seq),
                        text,
                    } => note(*seq, text, format!("{} on {instance}", view.reader)),
                    _ => {}
                }
            }
        }
        let stored = rows
            .iter()
            .map(|(seq, text)| (text.as_str(), *seq))
            .collect();
        RoomCheck {
            room,
            rows,
            sent,
            views,
            ahead,
            capacity,
            by_seq,
            stored,
        }
    }

    fn anomaly(&self, findings: &mut Findings, seq: Option<u64>, who: &str, what: String) {
        findings.anomalies.push(Anomaly {
            room: self.room.to_string(),
            seq,
            who: who.to_string(),
            what,
        });
    }

    /// The seq a text carries: the store's, else the only one anybody saw.
    fn seq_of(&self, text: &str) -> Option<u64> {
        if let Some(seq) = self.stored.get(text) {
            return Some(*seq);
        }
        let seqs: Vec<u64> = (self.by_seq.iter())
            .filter(|(_, texts)| texts.contains_key(text))
            .map(|(seq, _)| *seq)
            .collect();
        (seqs.len() == 1).then(|| seqs[0])
    }

    fn run(&self, findings: &mut Findings) {
        let mut lost: HashSet<&str> = HashSet::new();
        self.one_text_per_seq(findings);
        self.acked_is_stored(findings, &mut lost);
        self.seen_is_stored(findings, &mut lost);
        self.refused_is_nowhere(findings);
        for view in self.views {
            self.view_order(view, findings);
            if view.protocol == Protocol::Tcp {
                self.join_history(view, findings);
            }
        }
        findings.losses += lost.len();
    }

    /// (a)
    fn one_text_per_seq(&self, findings: &mut Findings) {
        let mut seqs_of_text: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (seq, texts) in &self.by_seq {
            for text in texts.keys() {
                seqs_of_text.entry(text).or_default().push(*seq);
            }
            if texts.len() > 1 {
                let list: Vec<String> = texts
                    .iter()
                    .map(|(t, src)| format!("{t:?} ({src})"))
                    .collect();
                let what = format!("one seq, {} texts: {}", texts.len(), list.join(", "));
                self.anomaly(findings, Some(*seq), "-", what);
            }
        }
        for (text, seqs) in seqs_of_text.into_iter().filter(|(_, s)| s.len() > 1) {
            let what = format!("one text, {} seqs: {text:?} carries {seqs:?}", seqs.len());
            self.anomaly(findings, seqs.first().copied(), "-", what);
        }
    }

    /// (b)
    fn acked_is_stored(&self, findings: &mut Findings, lost: &mut HashSet<&'a str>) {
        for s in self.sent {
            let seq = match s.outcome {
                Outcome::Acked(seq) => seq,
                Outcome::Unknown => {
                    findings.unknown += 1;
                    continue;
                }
                Outcome::Refused(_) => continue,
            };
            findings.acked += 1;
            if self.stored.contains_key(s.text.as_str()) {
                continue;
            }
            if self.ahead {
                let how = seq.map_or("over TCP".to_string(), |n| format!("with seq {n}"));
                let what = format!(
                    "{:?} acknowledged {how} (write-ahead) but not stored",
                    s.text
                );
                self.anomaly(
                    findings,
                    seq,
                    &format!("{} on {}", s.client, s.instance),
                    what,
                );
            } else {
                lost.insert(&s.text);
            }
        }
    }

    /// (d)
    fn seen_is_stored(&self, findings: &mut Findings, lost: &mut HashSet<&'a str>) {
        let mut reported: HashSet<&str> = HashSet::new();
        for view in self.views {
            let mut instance = "";
            for item in &view.items {
                match item {
                    Seen::Open { instance: i, .. } => instance = i,
                    Seen::Message { seq, text } => {
                        findings.deliveries += 1;
                        if self.stored.contains_key(text.as_str()) {
                            continue;
                        }
                        if !self.ahead {
                            lost.insert(text);
                        } else if reported.insert(text) {
                            let what =
                                format!("{text:?} was shown (write-ahead) but is not stored");
                            let who = format!("{} on {instance}", view.reader);
                            self.anomaly(findings, seq.or_else(|| self.seq_of(text)), &who, what);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// (f)
    fn refused_is_nowhere(&self, findings: &mut Findings) {
        let mut shown: HashMap<&str, &str> = HashMap::new();
        for view in self.views {
            for item in &view.items {
                if let Seen::Message { text, .. } = item {
                    shown.entry(text).or_insert(&view.reader);
                }
            }
        }
        for s in self.sent {
            let Outcome::Refused(why) = &s.outcome else {
                continue;
            };
            let who = format!("{} on {}", s.client, s.instance);
            let why: String = why.chars().take(80).collect();
            if let Some(seq) = self.stored.get(s.text.as_str()) {
                let what = format!("{:?} was refused ({why}) but is stored", s.text);
                self.anomaly(findings, Some(*seq), &who, what);
            }
            if let Some(reader) = shown.get(s.text.as_str()) {
                let what = format!("{:?} was refused ({why}) but shown to {reader}", s.text);
                self.anomaly(findings, self.seq_of(&s.text), &who, what);
            }
        }
    }
}
